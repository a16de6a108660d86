/*
 * principal — who is asking: the identity every authorisation decision and
 * every audit record is made from.
 *
 * The control socket acts as the local operator ("cli@local"); the HTTP API
 * fills a principal from a bearer token or a session cookie.  A principal
 * is a plain value: strings are owned by whoever filled it (principal_clear
 * frees the ones auth_* functions allocated).
 */
#ifndef MAILARK_AUTH_PRINCIPAL_H
#define MAILARK_AUTH_PRINCIPAL_H

enum role {
	ROLE_NONE = 0,
	ROLE_USER,       /* own mail only */
	ROLE_AUDITOR,    /* one tenant: archive search, export, audit trail; no configuration */
	ROLE_ADMIN,      /* one tenant */
	ROLE_OPERATOR,   /* the whole install */
};

struct principal {
	enum role role;
	char *actor;     /* user address, "token:<id>", or "cli@local" */
	char *tenant;    /* NULL for operators */
	long long user_id;   /* 0 when not a stored user */
	char *source;    /* client address, "local" for the control socket */
};

const char *role_name(enum role r);
/* Returns 0, or -1 for an unknown name. */
int role_parse(const char *name, enum role *r_r);
void principal_clear(struct principal *p);

#endif
