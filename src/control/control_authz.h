/*
 * control_authz — the authorisation policy behind control_authorize():
 * one table, command → minimum role and scope (see control_authz.c for
 * the rules).  Exposed for the unit tests and for the HTTP API, which maps
 * the results to 404 / 403.
 */
#ifndef MAILARK_CONTROL_CONTROL_AUTHZ_H
#define MAILARK_CONTROL_CONTROL_AUTHZ_H

#include "auth/principal.h"

enum authz_scope {
	AUTHZ_INSTALL,   /* operators only */
	AUTHZ_TENANT,    /* the tenant named by an argument */
	AUTHZ_OWN_TENANT, /* the same, or the principal's own when left out */
	AUTHZ_DOMAIN,    /* args.domain → its tenant */
	AUTHZ_QUEUE,     /* args.id → the queued message's tenant */
	AUTHZ_SELF,      /* the principal itself (own tokens) */
	AUTHZ_TOKEN,     /* args.id → the token's owner */
};

enum authz_result {
	AUTHZ_OK,
	AUTHZ_NOT_FOUND,   /* another tenant's object, or none: same answer */
	AUTHZ_FORBIDDEN,   /* role too low for an object one may see */
};

/* The rule for cmd: 1 found; 0 not in the table (then operator-only). */
int control_authz_rule(const char *cmd, enum role *min_r, enum authz_scope *scope_r);
/* The decision once the object's tenant is known (NULL: none/unknown). */
enum authz_result control_authz_decide(const struct principal *who, enum role min_role,
    enum authz_scope scope, const char *obj_tenant);

#endif
