/*
 * control_handlers — the commands of the control socket ("tenant.add",
 * "queue.list", ...).  control.c parses a request and calls
 * control_dispatch() on the loop thread; it returns 0 with *result_r (a new
 * jansson reference, or NULL for "no result") or -1 with *err_r (a human
 * reason, caller frees).  Every mutating command logs an "admin" line
 * and is recorded in the audit trail; every command is authorised first.
 */
#ifndef MAILARK_CONTROL_CONTROL_HANDLERS_H
#define MAILARK_CONTROL_CONTROL_HANDLERS_H

#include <jansson.h>

struct server;
struct principal;

typedef int control_handler_fn(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r);

struct control_command {
	const char *name;
	int mutating;          /* logs an "admin" line and an audit entry */
	control_handler_fn *fn;
};

/* Command tables, each ended by an entry whose name is NULL. */
extern const struct control_command control_core_commands[];     /* control_handlers.c */
extern const struct control_command control_identity_commands[]; /* control_identity.c */
extern const struct control_command control_audit_commands[];    /* control_audit.c */
extern const struct control_command control_directory_commands[]; /* control_directory.c */
extern const struct control_command control_archive_commands[];  /* control_archive.c */
extern const struct control_command control_archive_retention_commands[];
                                                   /* control_archive_retention.c */
extern const struct control_command control_continuity_commands[]; /* control_continuity.c */
extern const struct control_command control_hygiene_commands[];  /* control_hygiene.c: policy, quarantine */
extern const struct control_command control_spam_commands[];     /* control_spam.c */
extern const struct control_command control_dkim_commands[];     /* control_dkim.c */

/*
 * The quarantined item args name ({tenant, id}), when `who` may see it (a
 * role-user principal: only items addressed to its own addresses); NULL with
 * *err_r ("not found") otherwise.  *tenant_r (caller frees) and *id_r (in
 * args) are set on both paths as far as they are known.  control_hygiene.c.
 */
json_t *control_quarantine_item(struct server *srv, const struct principal *who, json_t *args,
    char **tenant_r, const char **id_r, char **err_r);

/* The scheduled purge of every tenant's archive ([archive] purge_interval). */
int control_archive_timer_start(struct server *srv);
void control_archive_timer_stop(struct server *srv);

int control_dispatch(struct server *srv, const struct principal *who, const char *cmd,
    json_t *args, json_t **result_r, char **err_r);

/*
 * Authorisation, in one place (control_authz.c): may `who` run `c` with
 * these arguments?  Objects of another tenant are reported as not found,
 * never as forbidden.  0 allowed; -1 with *err_r.
 */
int control_authorize(struct server *srv, const struct principal *who,
    const struct control_command *c, json_t *args, char **err_r);
/* "tenant:acme domain:acme.example" — what an audit entry names as object. */
const char *control_audit_object(json_t *args);

#endif
