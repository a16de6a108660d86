/*
 * audit — the tamper-evident audit trail: every change, every sign-in
 * (good or bad) and every read of message content is one entry.
 *
 *   audit_record(srv, &principal, "tenant.add", "tenant:acme", "ok", NULL);
 *
 * Entries are append-only rows in mailark.db; each carries the SHA-256 of
 * the one before (a hash chain) and periodic checkpoints are signed with
 * an Ed25519 key kept in <data_dir>/keys/audit.key.  No API deletes
 * entries.  audit_verify() re-walks the chain and checks every signature,
 * naming the first bad entry.  audit_record() is synchronous on the loop
 * thread and returns -1 only when the database refuses the write; callers
 * then refuse the operation they were auditing.
 *
 * A running daemon keeps one struct audit in srv->audit (audit_start at
 * start-up, audit_stop at shutdown: that signs a last checkpoint).  Tools
 * open their own with audit_open(); audit_close() frees it.  A struct
 * audit may be used from any thread (a mutex serialises it).  Strings
 * returned through *_r parameters are the caller's to free.
 */
#ifndef MAILARK_AUDIT_AUDIT_H
#define MAILARK_AUDIT_AUDIT_H

#include <time.h>

struct server;
struct principal;
struct config;
struct json_t;
struct store_audit_filter;

#define AUDIT_CHECKPOINT_EVERY 100
#define AUDIT_PUBKEY_LEN 32

struct audit;

/* What one entry says; NULL fields are stored as NULL. */
struct audit_fields {
	const char *actor, *role, *tenant, *action, *object, *source, *outcome, *detail;
};

int audit_record(struct server *srv, const struct principal *who, const char *action,
    const char *object, const char *outcome, const char *detail);
/* The same, naming the tenant the action concerns (an operator acting on a
 * tenant's object); tenant NULL: the principal's own tenant. */
int audit_record_tenant(struct server *srv, const struct principal *who, const char *tenant,
    const char *action, const char *object, const char *outcome, const char *detail);

/* Daemon: opens srv->audit (creating the signing key if missing). */
int audit_start(struct server *srv, char **err_r);
/* Daemon shutdown: signs a checkpoint at the newest entry, closes srv->audit. */
void audit_stop(struct server *srv);

/* readonly: for verify/list without the daemon (no key needed, none created). */
int audit_open(const char *data_dir, int readonly, struct audit **a_r, char **err_r);
void audit_close(struct audit **a);
/* Appends one entry (and a signed checkpoint every AUDIT_CHECKPOINT_EVERY). */
int audit_append(struct audit *a, const struct audit_fields *f, char **err_r);
/* Signs a checkpoint at the newest entry unless it has one already. */
int audit_checkpoint(struct audit *a, char **err_r);

/* Creates keys/audit.key (0600) and keys/audit.pub when missing (mailark init). */
int audit_key_init(const char *data_dir, int *created_r, char **err_r);
/* Reads a public key file (64 hex digits) into pk. */
int audit_pubkey_load(const char *path, unsigned char pk[AUDIT_PUBKEY_LEN], char **err_r);

/*
 * Walks the whole trail.  pubkey NULL: keys/audit.pub (or the key derived
 * from keys/audit.key).  Returns 0 (intact), 1 (tampered: *report_r names
 * the first bad entry, "audit: entry 42: hash mismatch (edited?)") or -1
 * (cannot verify: *report_r says why).  *report_r is always set.
 */
int audit_verify(struct audit *a, const unsigned char *pubkey, char **report_r);

/* Entries as a JSON array (newest first): 0 with *result_r (new reference). */
int audit_list_json(struct audit *a, const struct store_audit_filter *f,
    struct json_t **result_r, char **err_r);
/* "2h", "3d", "2024-05-01", "2024-05-01T12:00[:00][Z|+02:00]" → µs since the epoch. */
int audit_parse_time(const char *s, time_t now, long long *us_r);

/* `mailark audit verify|list ...` (audit_cli.c); argv starts at "audit". */
int audit_cli_run(const struct config *cfg, int argc, char **argv);

#endif
