/*
 * control_authz — who may run which control command: the one place
 * authorisation is decided, for the CLI and the HTTP API alike.
 *
 * One table (authz_rules[]) gives every command a minimum role and a
 * scope, i.e. how the tenant the command touches is found:
 *
 *   INSTALL   install-wide (tenant.add, route.list, queue.list, ...):
 *             operators only.
 *   TENANT    the tenant named by an argument ("tenant", or "name" for
 *             tenant.*): admins of that tenant; auditors too when the
 *             rule's minimum role is auditor (reads: tenant.show,
 *             domain.list, user.list, audit.list ...).  A user "address"
 *             argument must belong to that same tenant.
 *   DOMAIN    args.domain, resolved to its tenant (route.set).
 *   QUEUE     args.id, resolved to the queue entry's tenant.
 *   OWN_TENANT  like TENANT, but the tenant argument may be left out: it
 *             then means the principal's own tenant (audit.list, whose
 *             handler limits non-operators to their tenant).
 *   SELF      any signed-in principal acting on itself (token.create,
 *             token.list); a named "user" must be itself, or, for an
 *             admin, a user of its tenant.
 *   TOKEN     args.id, a token: its owner, an admin of the owner's
 *             tenant, or an operator.
 *
 * Operators may do everything.  A command missing from the table is for
 * operators only.  An object of another tenant (or one that does not
 * resolve to any tenant) is refused as "not found", exactly like a
 * missing object, never as "forbidden": its existence is not revealed.
 * A principal of the right tenant whose role is too low gets "forbidden".
 */
#include "control/control_handlers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/principal.h"
#include "control/control_authz.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "queue/queue.h"
#include "server.h"
#include "store/store.h"

struct authz_rule {
	const char *cmd;
	enum role min_role;
	enum authz_scope scope;
	const char *key;          /* the argument naming the object, if any */
};

static const struct authz_rule authz_rules[] = {
	{ "tenant.add", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },
	{ "tenant.list", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },
	{ "tenant.remove", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },
	{ "tenant.show", ROLE_AUDITOR, AUTHZ_TENANT, "name" },
	{ "tenant.set", ROLE_ADMIN, AUTHZ_TENANT, "name" },
	{ "domain.add", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "domain.list", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "domain.remove", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "route.set", ROLE_ADMIN, AUTHZ_DOMAIN, "domain" },
	{ "route.list", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },
	{ "relay.add", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "relay.list", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "relay.remove", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "queue.list", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },
	{ "queue.flush", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },
	{ "queue.show", ROLE_ADMIN, AUTHZ_QUEUE, "id" },
	{ "queue.hold", ROLE_ADMIN, AUTHZ_QUEUE, "id" },
	{ "queue.release", ROLE_ADMIN, AUTHZ_QUEUE, "id" },
	{ "queue.delete", ROLE_ADMIN, AUTHZ_QUEUE, "id" },
	{ "user.add", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "user.list", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "user.show", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "user.disable", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "user.enable", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "user.passwd", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "user.alias.add", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "user.alias.remove", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "user.totp.enable", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "group.add", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "group.list", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "group.remove", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "group.member.add", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "group.member.remove", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "directory.set", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "directory.sync", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "directory.show", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "directory.job", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "directory.login", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },   /* a password oracle */
	{ "token.create", ROLE_USER, AUTHZ_SELF, NULL },
	{ "token.list", ROLE_USER, AUTHZ_SELF, NULL },
	{ "token.revoke", ROLE_USER, AUTHZ_TOKEN, "id" },
	{ "audit.list", ROLE_AUDITOR, AUTHZ_OWN_TENANT, "tenant" },
	{ "audit.verify", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },
	/* archive (control_archive.c, control_archive_retention.c) */
	{ "archive.search", ROLE_USER, AUTHZ_TENANT, "tenant" },       /* users: own mailboxes */
	{ "archive.show", ROLE_USER, AUTHZ_TENANT, "tenant" },
	{ "archive.export", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.export.file", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.stats", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.job", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.jobs", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.verify", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.reindex", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.purge", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.import", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },  /* reads the node's files */
	{ "archive.shred", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },
	{ "archive.retention.show", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.retention.set", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.retention.rule.add", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.retention.rule.remove", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.retention.lock", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.settings.set", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.case.add", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.case.list", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.case.close", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.case.delete", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.hold.add", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.hold.list", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.hold.release", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.approval.list", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "archive.approval.approve", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "archive.approval.reject", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	/* continuity (control_continuity.c): auditors read status and reports */
	{ "continuity.status", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "continuity.report", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "continuity.settings", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "continuity.drill.report", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "continuity.start", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "continuity.stop", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "continuity.set", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "continuity.drill.start", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "continuity.drill.stop", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "continuity.probe", ROLE_OPERATOR, AUTHZ_INSTALL, NULL },
	/* hygiene (control_hygiene.c, control_spam.c, control_dkim.c).  Users reach
	 * the quarantine and spam reports for their own mail: the handlers narrow
	 * what a ROLE_USER principal sees to messages addressed to them. */
	{ "policy.show", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "policy.set", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "quarantine.list", ROLE_USER, AUTHZ_TENANT, "tenant" },
	{ "quarantine.show", ROLE_USER, AUTHZ_TENANT, "tenant" },
	{ "quarantine.release", ROLE_USER, AUTHZ_TENANT, "tenant" },
	{ "quarantine.delete", ROLE_USER, AUTHZ_TENANT, "tenant" },
	{ "quarantine.digest", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "spam.train", ROLE_ADMIN, AUTHZ_TENANT, "tenant" },
	{ "spam.classify", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "spam.report", ROLE_USER, AUTHZ_TENANT, "tenant" },
	{ "spam.stats", ROLE_AUDITOR, AUTHZ_TENANT, "tenant" },
	{ "dkim.keygen", ROLE_ADMIN, AUTHZ_DOMAIN, "domain" },
	{ "dkim.show", ROLE_AUDITOR, AUTHZ_DOMAIN, "domain" },
	{ NULL, ROLE_NONE, AUTHZ_INSTALL, NULL },
};

static int
authz_fail(char **err_r, const char *what, const char *cmd)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, "%s: %s", what, cmd);
	*err_r = buf_steal(&e);
	return -1;
}

int
control_authz_rule(const char *cmd, enum role *min_r, enum authz_scope *scope_r)
{
	for (const struct authz_rule *r = authz_rules; r->cmd != NULL; r++) {
		if (strcmp(r->cmd, cmd) == 0) {
			*min_r = r->min_role;
			*scope_r = r->scope;
			return 1;
		}
	}
	*min_r = ROLE_OPERATOR;
	*scope_r = AUTHZ_INSTALL;
	return 0;
}

/*
 * The pure decision, once the object's tenant is known: obj_tenant NULL
 * means "no tenant / no such object".  Returns AUTHZ_OK, AUTHZ_NOT_FOUND
 * or AUTHZ_FORBIDDEN.
 */
enum authz_result
control_authz_decide(const struct principal *who, enum role min_role, enum authz_scope scope,
    const char *obj_tenant)
{
	if (who == NULL || who->role == ROLE_NONE)
		return AUTHZ_FORBIDDEN;
	if (who->role == ROLE_OPERATOR)
		return AUTHZ_OK;
	if (scope == AUTHZ_INSTALL)
		return AUTHZ_FORBIDDEN;
	if (scope == AUTHZ_SELF)
		return who->role >= min_role ? AUTHZ_OK : AUTHZ_FORBIDDEN;
	if (obj_tenant == NULL || who->tenant == NULL || strcasecmp(obj_tenant, who->tenant) != 0)
		return AUTHZ_NOT_FOUND;
	return who->role >= min_role ? AUTHZ_OK : AUTHZ_FORBIDDEN;
}

static const char *
authz_arg(json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

/* The tenant of a queued message, or NULL (caller frees). */
static char *
authz_queue_tenant(struct server *srv, const char *id)
{
	if (srv->queue == NULL || id == NULL || !id_valid(id))
		return NULL;
	struct queue_entry *e = queue_entry_find(srv->queue, id);
	return e != NULL && e->env.tenant != NULL ? xstrdup(e->env.tenant) : NULL;
}

static char *
authz_domain_tenant(struct server *srv, const char *domain)
{
	char *t = NULL;
	if (domain == NULL || srv->store == NULL || store_domain_tenant(srv->store, domain, &t) != 1)
		return NULL;
	return t;
}

/*
 * TENANT scope: the named tenant, except that a named user "address" of
 * another tenant makes the object another tenant's.
 */
static char *
authz_tenant_of(struct server *srv, json_t *args, const char *key, int *bad_r)
{
	const char *t = authz_arg(args, key);
	const char *addr = authz_arg(args, "address");
	*bad_r = 0;
	if (t == NULL)
		return NULL;
	if (addr != NULL && srv->store != NULL) {
		char *ut = NULL;
		int found = store_user_tenant(srv->store, addr, &ut);
		int other = found == 1 && (ut == NULL || strcasecmp(ut, t) != 0);
		free(ut);
		if (other)
			*bad_r = 1;
	}
	return xstrdup(t);
}

/* SELF scope with a named address: one's own, or (admin) a user of one's tenant. */
static enum authz_result
authz_self(struct server *srv, const struct principal *who, json_t *args)
{
	const char *addr = authz_arg(args, "user");
	if (who->role == ROLE_OPERATOR || addr == NULL)
		return control_authz_decide(who, ROLE_USER, AUTHZ_SELF, NULL);
	if (who->actor != NULL && strcasecmp(addr, who->actor) == 0)
		return AUTHZ_OK;
	struct store_user u;
	if (srv->store == NULL || store_user_get(srv->store, addr, &u) != 1)
		return AUTHZ_NOT_FOUND;
	enum authz_result r = AUTHZ_NOT_FOUND;    /* other users are invisible to users */
	if (u.id == who->user_id && who->user_id != 0)
		r = AUTHZ_OK;
	else if (who->role == ROLE_ADMIN)
		r = control_authz_decide(who, ROLE_ADMIN, AUTHZ_TENANT, u.tenant);
	store_user_clear(&u);
	return r;
}

/* TOKEN scope: the owner, an admin of the owner's tenant, or an operator. */
static enum authz_result
authz_token(struct server *srv, const struct principal *who, const char *id)
{
	if (who->role == ROLE_OPERATOR)
		return AUTHZ_OK;
	struct store_token t;
	if (id == NULL || srv->store == NULL || store_token_get(srv->store, id, &t) != 1)
		return AUTHZ_NOT_FOUND;
	enum authz_result r;
	if (who->user_id != 0 && t.user_id == who->user_id)
		r = AUTHZ_OK;
	else if (who->role == ROLE_ADMIN)
		r = control_authz_decide(who, ROLE_ADMIN, AUTHZ_TENANT, t.tenant);
	else
		r = AUTHZ_NOT_FOUND;
	store_token_clear(&t);
	return r;
}

static enum authz_result
authz_scoped(struct server *srv, const struct principal *who, enum role min_role,
    enum authz_scope scope, const char *key, json_t *args)
{
	char *tenant = NULL;
	int bad = 0;
	switch (scope) {
	case AUTHZ_INSTALL:
		break;
	case AUTHZ_SELF:
		return authz_self(srv, who, args);
	case AUTHZ_TOKEN:
		return authz_token(srv, who, authz_arg(args, key));
	case AUTHZ_TENANT:
		if (authz_arg(args, key) == NULL && who->role != ROLE_OPERATOR)
			return AUTHZ_FORBIDDEN;   /* a non-operator must name the tenant */
		tenant = authz_tenant_of(srv, args, key, &bad);
		break;
	case AUTHZ_OWN_TENANT:
		if (authz_arg(args, key) == NULL) {
			tenant = who->tenant != NULL ? xstrdup(who->tenant) : NULL;
			break;
		}
		tenant = authz_tenant_of(srv, args, key, &bad);
		break;
	case AUTHZ_DOMAIN:
		tenant = authz_domain_tenant(srv, authz_arg(args, key));
		break;
	case AUTHZ_QUEUE:
		tenant = authz_queue_tenant(srv, authz_arg(args, key));
		break;
	}
	enum authz_result r = control_authz_decide(who, min_role, scope, tenant);
	if (r == AUTHZ_OK && bad && who->role != ROLE_OPERATOR)
		r = AUTHZ_NOT_FOUND;
	free(tenant);
	return r;
}

int
control_authorize(struct server *srv, const struct principal *who,
    const struct control_command *c, json_t *args, char **err_r)
{
	enum role min_role;
	enum authz_scope scope;
	const char *key = NULL;
	(void)control_authz_rule(c->name, &min_role, &scope);
	for (const struct authz_rule *r = authz_rules; r->cmd != NULL; r++)
		if (strcmp(r->cmd, c->name) == 0)
			key = r->key;
	if (who == NULL || who->role == ROLE_NONE)
		return authz_fail(err_r, "not permitted", c->name);
	enum authz_result res = authz_scoped(srv, who, min_role, scope, key, args);
	if (res == AUTHZ_OK)
		return 0;
	if (res == AUTHZ_NOT_FOUND)
		return authz_fail(err_r, "not found", c->name);
	return authz_fail(err_r, "not permitted", c->name);
}
