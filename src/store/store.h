/*
 * store — mailark.db (SQLite, WAL): tenants, domains, routes and relay
 * networks.  Only this module includes sqlite3.h.
 *
 *   struct store *st;
 *   if (store_open(path, &st, &err) < 0) ...
 *   int found = store_domain_tenant(st, "example.com", &tenant);  // 1/0/-1
 *   free(tenant);
 *   store_close(&st);
 *
 * Lookups return 1 (found, *_r allocated: caller frees), 0 (not found) or
 * -1 (database error, logged).  Mutations return 0, or -1 with a human
 * reason in *err_r (caller frees): "tenant 'x' already exists".  Names and
 * domains are stored lower-case.  Used on the event-loop thread; each
 * mutation is one transaction.
 */
#ifndef MAILARK_STORE_STORE_H
#define MAILARK_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct store;

struct store_tenant {
	char *name;
	char *region;
	char *unknown_recipients;   /* "accept" (default) or "reject" */
	time_t created;
};

struct store_domain {
	char *domain;
	char *tenant;
	char *route;                /* route URL or NULL */
};

struct store_relay {
	char *tenant;
	char *cidr;                 /* canonical text */
};

int store_open(const char *path, struct store **st_r, char **err_r);
void store_close(struct store **st);

int store_tenant_add(struct store *st, const char *name, const char *region, char **err_r);
int store_tenant_remove(struct store *st, const char *name, char **err_r);
/* "accept" (any address of its domains) or "reject" (only users and aliases). */
int store_tenant_set_unknown_recipients(struct store *st, const char *name, const char *policy,
    char **err_r);
int store_tenant_get(struct store *st, const char *name, struct store_tenant *t_r);
/* *list_r: array of *n_r tenants, free with store_tenants_free(). */
int store_tenant_list(struct store *st, struct store_tenant **list_r, size_t *n_r);
void store_tenants_free(struct store_tenant *list, size_t n);

int store_domain_add(struct store *st, const char *tenant, const char *domain, char **err_r);
int store_domain_remove(struct store *st, const char *tenant, const char *domain, char **err_r);
/* tenant NULL: every domain. */
int store_domain_list(struct store *st, const char *tenant, struct store_domain **list_r,
    size_t *n_r);
void store_domains_free(struct store_domain *list, size_t n);
int store_domain_tenant(struct store *st, const char *domain, char **tenant_r);

/* The domain must belong to a tenant.  url already validated by route_parse. */
int store_route_set(struct store *st, const char *domain, const char *url, char **err_r);
int store_route_get(struct store *st, const char *domain, char **url_r);

int store_relay_add(struct store *st, const char *tenant, const char *cidr, char **err_r);
int store_relay_remove(struct store *st, const char *tenant, const char *cidr, char **err_r);
int store_relay_list(struct store *st, const char *tenant, struct store_relay **list_r,
    size_t *n_r);
void store_relays_free(struct store_relay *list, size_t n);
/* The tenant whose relay network contains the address, if any. */
int store_relay_tenant(struct store *st, const struct sockaddr *sa, char **tenant_r);

/* ---- users, groups, tokens (store_users.c) -------------------------------
 * Users belong to one tenant (operators: tenant NULL).  Addresses are
 * unique across the install (primary addresses and aliases alike) and a
 * tenant user's address must be in one of the tenant's domains.  Disabling
 * a user never deletes it.  Tokens keep only the SHA-256 of their secret.
 */
struct store_user {
	long long id;
	char *tenant;               /* NULL for operators */
	char *address;
	char *display_name;         /* NULL when unset */
	char *role;                 /* "operator", "admin", "auditor", "user" */
	char *status;               /* "active" or "disabled" */
	char *source;               /* "local" or "directory" */
	int has_password, has_totp;
	time_t created, updated;
};

/* Sign-in material; store_user_secrets_clear() wipes and frees it. */
struct store_user_secrets {
	char *password_hash;        /* Argon2id string or NULL */
	unsigned char *totp_secret; /* raw secret or NULL */
	size_t totp_len;
};

struct store_group {
	long long id;
	char *tenant;
	char *name;
	char **members;             /* primary addresses */
	size_t nmembers;
};

struct store_token {
	char *id;                   /* public part */
	long long user_id;
	char *user_address;
	char *tenant;               /* the user's tenant; NULL for operators */
	char *name;
	unsigned char hash[32];     /* SHA-256 of the secret part */
	time_t created, expires, revoked, last_used;   /* 0: none */
};

struct store_auth_failure {
	long long count;
	time_t window_start;
	time_t locked_until;        /* 0: not locked */
};

/* 1 when a is a plausible local@domain address (no allocation). */
int store_address_valid(const char *a);
/* tenant NULL with role "operator".  password_hash may be NULL. */
int store_user_add(struct store *st, const char *tenant, const char *address,
    const char *display_name, const char *role, const char *password_hash, long long *id_r,
    char **err_r);
/* By primary address or alias: 1/0/-1; store_user_clear() frees *u_r. */
int store_user_get(struct store *st, const char *address, struct store_user *u_r);
int store_user_get_id(struct store *st, long long id, struct store_user *u_r);
/* tenant NULL: the operators. */
int store_user_list(struct store *st, const char *tenant, struct store_user **list_r,
    size_t *n_r);
void store_user_clear(struct store_user *u);
void store_users_free(struct store_user *list, size_t n);
int store_user_set_status(struct store *st, long long id, const char *status, char **err_r);
int store_user_set_password(struct store *st, long long id, const char *hash, char **err_r);
/* secret NULL removes the second factor. */
int store_user_set_totp(struct store *st, long long id, const unsigned char *secret,
    size_t len, char **err_r);
int store_user_secrets(struct store *st, long long id, struct store_user_secrets *s_r);
void store_user_secrets_clear(struct store_user_secrets *s);
/* Lists of strings; free with store_strings_free(). */
int store_user_aliases(struct store *st, long long user_id, char ***list_r, size_t *n_r);
int store_user_groups(struct store *st, long long user_id, char ***list_r, size_t *n_r);
void store_strings_free(char **list, size_t n);
/* The tenant of a user (by address or alias) or of a token: 1 with *tenant_r
 * (NULL for operators; caller frees), 0 unknown, -1 error.  For authorisation. */
int store_user_tenant(struct store *st, const char *address, char **tenant_r);
int store_token_tenant(struct store *st, const char *id, char **tenant_r);

int store_alias_add(struct store *st, long long user_id, const char *alias, char **err_r);
int store_alias_remove(struct store *st, long long user_id, const char *alias, char **err_r);

int store_group_add(struct store *st, const char *tenant, const char *name, char **err_r);
int store_group_remove(struct store *st, const char *tenant, const char *name, char **err_r);
int store_group_list(struct store *st, const char *tenant, struct store_group **list_r,
    size_t *n_r);
void store_groups_free(struct store_group *list, size_t n);
/* The user must belong to the tenant. */
int store_group_member_add(struct store *st, const char *tenant, const char *group,
    long long user_id, char **err_r);
int store_group_member_remove(struct store *st, const char *tenant, const char *group,
    long long user_id, char **err_r);

/* expires 0: never. */
int store_token_add(struct store *st, const char *id, long long user_id, const char *name,
    const unsigned char hash[32], time_t expires, char **err_r);
int store_token_get(struct store *st, const char *id, struct store_token *t_r);
/* user_id 0: every token. */
int store_token_list(struct store *st, long long user_id, struct store_token **list_r,
    size_t *n_r);
void store_token_clear(struct store_token *t);
void store_tokens_free(struct store_token *list, size_t n);
int store_token_revoke(struct store *st, const char *id, time_t now, char **err_r);
int store_token_touch(struct store *st, const char *id, time_t now);

/* Sign-in failure counters, key "acct:<address>" or "ip:<address>": 1/0/-1. */
int store_auth_failure_get(struct store *st, const char *key, struct store_auth_failure *f_r);
int store_auth_failure_put(struct store *st, const char *key,
    const struct store_auth_failure *f);
int store_auth_failure_clear(struct store *st, const char *key);

/* ---- audit (store_audit.c): the audit trail's own connection ---------- */
/* Rows of tables audit and audit_checkpoints; only ever inserted.  The
 * audit trail opens mailark.db through its own connection (read-only for
 * `mailark audit verify`); strings in the structs below belong to them and
 * are freed by store_audit_entry_clear() / the *_free() functions. */
#define STORE_AUDIT_HASH_LEN 32
#define STORE_AUDIT_SIG_LEN 64

struct store_audit;

struct store_audit_entry {
	long long seq;
	long long time_us;
	char *actor, *role, *tenant, *action, *object, *source, *outcome, *detail;
	unsigned char prev_hash[STORE_AUDIT_HASH_LEN];
	unsigned char hash[STORE_AUDIT_HASH_LEN];
	int malformed;              /* read back: a column of the wrong type or size */
};

struct store_audit_checkpoint {
	long long seq;              /* last entry covered */
	unsigned char hash[STORE_AUDIT_HASH_LEN];
	long long time_us;
	char *key_id;
	unsigned char signature[STORE_AUDIT_SIG_LEN];
	int malformed;
};

struct store_audit_filter {
	const char *tenant;         /* NULL: any */
	const char *actor;          /* NULL: any */
	long long since_us;         /* 0: from the start */
	long long limit;            /* <= 0: no limit */
};

int store_audit_open(const char *path, int readonly, struct store_audit **sa_r, char **err_r);
void store_audit_close(struct store_audit **sa);
/* write: BEGIN IMMEDIATE (appends), else a read snapshot. */
int store_audit_begin(struct store_audit *sa, int write, char **err_r);
int store_audit_commit(struct store_audit *sa, char **err_r);
void store_audit_rollback(struct store_audit *sa);
/* The newest entry: 1 with its seq and hash, 0 when the trail is empty, -1. */
int store_audit_last(struct store_audit *sa, long long *seq_r,
    unsigned char hash_r[STORE_AUDIT_HASH_LEN]);
int store_audit_insert(struct store_audit *sa, const struct store_audit_entry *e, char **err_r);
int store_audit_checkpoint_insert(struct store_audit *sa, const struct store_audit_checkpoint *c,
    char **err_r);
/* 1 with the seq of the newest checkpoint, 0 none, -1 error. */
int store_audit_checkpoint_last(struct store_audit *sa, long long *seq_r);
/* Every entry in seq order; cb returns non-zero to stop.  0, or -1 on error. */
typedef int store_audit_entry_cb(void *arg, const struct store_audit_entry *e);
int store_audit_foreach(struct store_audit *sa, store_audit_entry_cb *cb, void *arg);
int store_audit_checkpoints(struct store_audit *sa, struct store_audit_checkpoint **list_r,
    size_t *n_r);
void store_audit_checkpoints_free(struct store_audit_checkpoint *list, size_t n);
/* Newest first. */
int store_audit_list(struct store_audit *sa, const struct store_audit_filter *f,
    struct store_audit_entry **list_r, size_t *n_r);
void store_audit_entries_free(struct store_audit_entry *list, size_t n);
void store_audit_entry_clear(struct store_audit_entry *e);

/* ---- directory (store_directory.c): per-tenant LDAP settings and sync ---- */

/* One tenant's directory settings (migration 7: table directory_settings). */
struct store_directory {
	char *tenant;
	char *url;                  /* ldap://host:port or ldaps://... */
	char *base_dn;
	char *bind_dn;
	char *bind_password;        /* sealed "v1:..." (directory_secret.h); never log it */
	char *user_filter;          /* NULL: the default */
	char *group_filter;         /* NULL: the default */
	long long interval;         /* seconds between periodic syncs; 0: none */
	int starttls;
	long long last_sync;        /* when the last sync finished; 0: never */
	char *last_result;          /* its summary (JSON text) or NULL */
};

/* Creates or replaces; bind_password NULL keeps the stored one (refused when none). */
int store_directory_set(struct store *st, const struct store_directory *d, char **err_r);
/* 1 found (*d_r filled: store_directory_clear() it), 0 none, -1 error. */
int store_directory_get(struct store *st, const char *tenant, struct store_directory *d_r);
/* Every tenant's settings: free with store_directories_free(). */
int store_directory_list(struct store *st, struct store_directory **list_r, size_t *n_r);
void store_directory_clear(struct store_directory *d);
void store_directories_free(struct store_directory *list, size_t n);
int store_directory_set_result(struct store *st, const char *tenant, long long when,
    const char *result_json);

/* One user as the directory has it (addresses lower-case). */
struct store_dir_user {
	const char *address;
	const char *display_name;   /* or NULL */
	int disabled;
	const char *const *aliases;
	size_t naliases;
	const char *const *groups;  /* names of the groups the user is in */
	size_t ngroups;
};

#define STORE_DIR_ERRORS_KEPT 10

struct store_dir_stats {
	unsigned users_added, users_updated, users_disabled, users_unchanged;
	unsigned groups_added, groups_updated, errors;
	char *error_text[STORE_DIR_ERRORS_KEPT];   /* the first errors, for people */
	size_t nerror_text;
};

/*
 * Applies one full directory read to the tenant, in one transaction: users
 * (source 'directory', role 'user' when new) with aliases and groups; those
 * of the tenant's directory users missing from `users` are disabled, never
 * deleted; local users are never touched.  Conflicts (an address of a local
 * user, another tenant, a domain the tenant does not own) skip that address
 * and count as errors.  0 with *stats_r (store_dir_stats_clear() it), or -1
 * with *err_r when the database failed (nothing changed).
 */
int store_directory_apply(struct store *st, const char *tenant,
    const struct store_dir_user *users, size_t nusers, const char *const *groups,
    size_t ngroups, struct store_dir_stats *stats_r, char **err_r);
void store_dir_stats_clear(struct store_dir_stats *s);
/* 1 when address (primary or alias) is an active directory user of tenant, 0 not, -1 error. */
int store_directory_user_active(struct store *st, const char *tenant, const char *address);

/* ---- continuity (store_continuity.c): settings, outages, ledger ---------
 * Outages and drills are rows of continuity_outages (kind "outage" or
 * "drill"); the ledger lists what each owes the primary: one row per
 * (outage, queue ID, recipient, kind "inbound" | "sent"), state "pending"
 * -> "delivered" | "skipped" | "failed".  Times are Unix seconds.
 */
struct store_cont_outage {
	long long id;
	char *tenant;
	char *kind;                 /* "outage" or "drill" */
	char *users;                /* drills: comma list, NULL = every user */
	long long started_at;
	char *started_by;
	char *reason;               /* or NULL */
	long long failover_ms;      /* -1: not measured */
	long long failback_at;      /* 0: not yet */
	long long ended_at;         /* 0: still running */
	char *ended_by;             /* or NULL */
	char *state;                /* "active", "failing_back", "ended" */
};

struct store_cont_ledger {
	long long outage_id;
	char *queue_id;
	char *rcpt;
	char *kind;                 /* "inbound" or "sent" */
	long long accepted_at;
	char *state;
	char *reason;               /* or NULL */
	char *message_id;           /* or NULL */
};

struct store_cont_counts {
	long long accepted, delivered, skipped, pending, failed;
};

struct store_cont_signin {
	char *address;
	char *service;
	long long first_at;
	long long count;
};

/* 1 with *value_r, 0 unset, -1 error. */
int store_cont_setting_get(struct store *st, const char *tenant, const char *key,
    char **value_r);
int store_cont_setting_set(struct store *st, const char *tenant, const char *key,
    const char *value, char **err_r);

/* Inserts o (its id is ignored): 0 with *id_r, -1. */
int store_cont_outage_add(struct store *st, const struct store_cont_outage *o, long long *id_r,
    char **err_r);
/* Writes failover_ms, failback_at, ended_at, ended_by and state of row o->id. */
int store_cont_outage_update(struct store *st, const struct store_cont_outage *o, char **err_r);
/* id 0: the tenant's newest of that kind.  1 / 0 / -1; clear with store_cont_outage_clear. */
int store_cont_outage_get(struct store *st, const char *tenant, const char *kind, long long id,
    struct store_cont_outage *o_r);
/* Every outage and drill not ended (oldest first). */
int store_cont_outages_open(struct store *st, struct store_cont_outage **list_r, size_t *n_r);
void store_cont_outage_clear(struct store_cont_outage *o);
void store_cont_outages_free(struct store_cont_outage *list, size_t n);

/* INSERT OR IGNORE: 1 added, 0 already there, -1 error. */
int store_cont_ledger_add(struct store *st, long long outage_id, const char *queue_id,
    const char *rcpt, const char *kind, long long accepted_at, const char *message_id);
/* Pending rows of (queue_id, rcpt, kind) -> state; outage_id 0: of any outage.
 * Returns the number of rows changed, -1 on error. */
int store_cont_ledger_settle(struct store *st, long long outage_id, const char *queue_id,
    const char *rcpt, const char *kind, const char *state, const char *reason, long long at);
/* Moves a 'sent' row to the queue ID of its failback copy. */
int store_cont_ledger_retarget(struct store *st, long long outage_id, const char *queue_id,
    const char *rcpt, const char *new_queue_id);
int store_cont_ledger_counts(struct store *st, long long outage_id, struct store_cont_counts *c_r);
/* Rows of the outage in a state (NULL: any) and kind (NULL: any), at most limit (<= 0: all). */
int store_cont_ledger_list(struct store *st, long long outage_id, const char *state,
    const char *kind, long long limit, struct store_cont_ledger **list_r, size_t *n_r);
void store_cont_ledger_free(struct store_cont_ledger *list, size_t n);

/* The failback dedupe memory; entries older than 30 days are pruned on add. */
int store_cont_delivered_add(struct store *st, const char *tenant, const char *message_id,
    const char *rcpt, long long at);
/* Many at once, in one transaction (the scheduler's deliveries of a second). */
struct store_cont_delivery {
	char *tenant, *message_id, *rcpt;
	long long at;
};
int store_cont_delivered_add_many(struct store *st, const struct store_cont_delivery *d,
    size_t n);
/* 1 known, 0 not, -1 error. */
int store_cont_delivered_has(struct store *st, const char *tenant, const char *message_id,
    const char *rcpt);

int store_cont_signin_add(struct store *st, long long outage_id, const char *address,
    const char *service, long long at);
int store_cont_signins(struct store *st, long long outage_id, struct store_cont_signin **list_r,
    size_t *n_r);
void store_cont_signins_free(struct store_cont_signin *list, size_t n);

/* ---- hygiene policy (store_hygiene.c): the tenant's KEY = VALUE settings of
 * hygiene/policy.c; rows go with their tenant.  Lists of keys and values:
 * free both with store_strings_free(). */
int store_hygiene_policy_list(struct store *st, const char *tenant, char ***keys_r,
    char ***values_r, size_t *n_r);
int store_hygiene_policy_set(struct store *st, const char *tenant, const char *key,
    const char *value, char **err_r);
/* Removes the setting (back to its default); 0 also when it was not set. */
int store_hygiene_policy_unset(struct store *st, const char *tenant, const char *key,
    char **err_r);

#endif
