/*
 * control_identity — control commands for users, groups and API tokens
 * ("user.add", "token.create", ...), dispatched by control_handlers.c.
 *
 * Tenant-scoped commands take the tenant in args.tenant (authorisation
 * scopes them by it); an absent tenant means the install's operators.
 * Every handler also checks that the object it touches belongs to that
 * tenant, and answers "no user" otherwise, so a caller can never reach
 * another tenant's user by naming their own tenant.  Token commands have
 * no tenant argument: the token's or the user's tenant is checked against
 * the caller here.  Passwords arrive in args.password and are removed
 * from args at once, so that no log line or audit entry can carry them.
 */
#include "control/control_handlers.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/principal.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "server.h"
#include "store/store.h"

static void
ci_err(char **err_r, const char *fmt, const char *a, const char *b)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a, b);
	*err_r = buf_steal(&e);
}

static const char *
ci_opt(json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

static const char *
ci_arg(json_t *args, const char *key, char **err_r)
{
	const char *v = ci_opt(args, key);
	if (v == NULL)
		ci_err(err_r, "missing argument '%s'%s", key, "");
	return v;
}

static json_t *
ci_str(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *
ci_time(time_t t)
{
	return t != 0 ? json_integer((json_int_t)t) : json_null();
}

/* Takes args.password out of args: the caller frees (and wipes) *pw_r. */
static void
ci_take_password(json_t *args, char **pw_r)
{
	json_t *v = json_object_get(args, "password");
	*pw_r = json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
	if (v != NULL)
		json_object_del(args, "password");
}

static void
ci_wipe(char *s)
{
	if (s != NULL) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

static int
ci_same_tenant(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcasecmp(a, b) == 0;
}

/* The user args.address of tenant args.tenant: 0 with *u_r, or -1. */
static int
ci_user(struct server *srv, json_t *args, const char *key, struct store_user *u_r,
    char **err_r)
{
	const char *tenant = ci_opt(args, "tenant"), *address = ci_arg(args, key, err_r);
	if (address == NULL)
		return -1;
	int found = store_user_get(srv->store, address, u_r);
	if (found == 1 && ci_same_tenant(u_r->tenant, tenant))
		return 0;
	if (found == 1)
		store_user_clear(u_r);
	if (found < 0)
		ci_err(err_r, "database error (%s)%s", "user", "");
	else if (tenant != NULL)
		ci_err(err_r, "no user '%s' in tenant '%s'", address, tenant);
	else
		ci_err(err_r, "no operator '%s'%s", address, "");
	return -1;
}

static json_t *
ci_strings_json(char **list, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_string(list[i]));
	return arr;
}

static json_t *
ci_user_json(struct server *srv, const struct store_user *u)
{
	json_t *o = json_pack("{s:I, s:o, s:s, s:o, s:s, s:s, s:s, s:b, s:b, s:I, s:I}",
	    "id", (json_int_t)u->id, "tenant", ci_str(u->tenant), "address", u->address,
	    "name", ci_str(u->display_name), "role", u->role, "status", u->status,
	    "source", u->source, "password", u->has_password, "totp", u->has_totp,
	    "created", (json_int_t)u->created, "updated", (json_int_t)u->updated);
	char **list;
	size_t n;
	if (store_user_aliases(srv->store, u->id, &list, &n) == 0) {
		json_object_set_new(o, "aliases", ci_strings_json(list, n));
		store_strings_free(list, n);
	}
	if (store_user_groups(srv->store, u->id, &list, &n) == 0) {
		json_object_set_new(o, "groups", ci_strings_json(list, n));
		store_strings_free(list, n);
	}
	return o;
}

/* Shows the user again after a change. */
static int
ci_user_result(struct server *srv, long long id, json_t **result_r)
{
	struct store_user u;
	if (store_user_get_id(srv->store, id, &u) == 1) {
		*result_r = ci_user_json(srv, &u);
		store_user_clear(&u);
	}
	return 0;
}

/* ---- users --------------------------------------------------------------- */

static int
ci_tenant_check(struct server *srv, const char *tenant, char **err_r)
{
	struct store_tenant t;
	int found = store_tenant_get(srv->store, tenant, &t);
	if (found == 1) {
		free(t.name);
		free(t.region);
		free(t.unknown_recipients);
		return 0;
	}
	ci_err(err_r, found == 0 ? "no tenant '%s'%s" : "database error (%s)%s", tenant, "");
	return -1;
}

static int
ci_hash_new_password(const char *pw, char **hash_r, char **err_r)
{
	if (auth_password_check(pw, err_r) < 0)
		return -1;
	if (auth_password_hash(pw, hash_r) < 0) {
		*err_r = xstrdup("cannot hash the password");
		return -1;
	}
	return 0;
}

static int
ci_user_add(struct server *srv, const struct principal *who, json_t *args, json_t **result_r,
    char **err_r)
{
	char *pw = NULL, *hash = NULL;
	ci_take_password(args, &pw);
	const char *tenant = ci_opt(args, "tenant"), *address = ci_arg(args, "address", err_r);
	const char *role = ci_opt(args, "role");
	long long id = 0;
	int rc = -1;
	if (role == NULL)
		role = tenant != NULL ? "user" : "operator";
	if (address == NULL)
		goto out;
	if (strcmp(role, "operator") == 0 && (who == NULL || who->role != ROLE_OPERATOR)) {
		ci_err(err_r, "%s%s", "only operators may create operators", "");
		goto out;
	}
	if (pw != NULL && ci_hash_new_password(pw, &hash, err_r) < 0)
		goto out;
	if (store_user_add(srv->store, tenant, address, ci_opt(args, "name"), role, hash, &id,
	    err_r) < 0)
		goto out;
	rc = ci_user_result(srv, id, result_r);
out:
	ci_wipe(pw);
	free(hash);
	return rc;
}

static int
ci_user_list(struct server *srv, const struct principal *who, json_t *args, json_t **result_r,
    char **err_r)
{
	const char *tenant = ci_opt(args, "tenant");
	struct store_user *list;
	size_t n;
	if (tenant != NULL && ci_tenant_check(srv, tenant, err_r) < 0)
		return -1;
	if (store_user_list(srv->store, tenant, &list, &n) < 0) {
		ci_err(err_r, "database error (%s)%s", "user list", "");
		return -1;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, ci_user_json(srv, &list[i]));
	store_users_free(list, n);
	*result_r = arr;
	return 0;
}

static int
ci_user_show(struct server *srv, const struct principal *who, json_t *args, json_t **result_r,
    char **err_r)
{
	struct store_user u;
	if (ci_user(srv, args, "address", &u, err_r) < 0)
		return -1;
	*result_r = ci_user_json(srv, &u);
	store_user_clear(&u);
	return 0;
}

static int
ci_user_status(struct server *srv, json_t *args, const char *status, json_t **result_r,
    char **err_r)
{
	struct store_user u;
	if (ci_user(srv, args, "address", &u, err_r) < 0)
		return -1;
	int rc = store_user_set_status(srv->store, u.id, status, err_r);
	if (rc == 0)
		rc = ci_user_result(srv, u.id, result_r);
	store_user_clear(&u);
	return rc;
}

static int
ci_user_disable(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	return ci_user_status(srv, args, "disabled", result_r, err_r);
}

static int
ci_user_enable(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	return ci_user_status(srv, args, "active", result_r, err_r);
}

static int
ci_user_passwd(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *pw = NULL, *hash = NULL;
	struct store_user u;
	int rc = -1;
	ci_take_password(args, &pw);
	if (ci_user(srv, args, "address", &u, err_r) < 0)
		goto out;
	if (pw == NULL)
		ci_err(err_r, "missing argument '%s'%s", "password", "");
	else if (ci_hash_new_password(pw, &hash, err_r) == 0 &&
	    store_user_set_password(srv->store, u.id, hash, err_r) == 0)
		rc = ci_user_result(srv, u.id, result_r);
	store_user_clear(&u);
out:
	ci_wipe(pw);
	free(hash);
	return rc;
}

static int
ci_alias_change(struct server *srv, json_t *args, int add, json_t **result_r, char **err_r)
{
	struct store_user u;
	const char *alias = ci_arg(args, "alias", err_r);
	if (alias == NULL || ci_user(srv, args, "address", &u, err_r) < 0)
		return -1;
	int rc = add ? store_alias_add(srv->store, u.id, alias, err_r) :
	    store_alias_remove(srv->store, u.id, alias, err_r);
	if (rc == 0)
		rc = ci_user_result(srv, u.id, result_r);
	store_user_clear(&u);
	return rc;
}

static int
ci_alias_add(struct server *srv, const struct principal *who, json_t *args, json_t **result_r,
    char **err_r)
{
	return ci_alias_change(srv, args, 1, result_r, err_r);
}

static int
ci_alias_remove(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	return ci_alias_change(srv, args, 0, result_r, err_r);
}

static int
ci_totp_enable(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	struct store_user u;
	unsigned char secret[AUTH_TOTP_SECRET_LEN];
	char *b32 = NULL;
	if (ci_user(srv, args, "address", &u, err_r) < 0)
		return -1;
	auth_totp_new(secret, &b32);
	int rc = store_user_set_totp(srv->store, u.id, secret, sizeof(secret), err_r);
	if (rc == 0) {
		char *uri = auth_totp_uri(u.address, b32);
		*result_r = json_pack("{s:s, s:s, s:s}", "address", u.address, "secret", b32,
		    "uri", uri);
		free(uri);
	}
	sodium_memzero(secret, sizeof(secret));
	ci_wipe(b32);
	store_user_clear(&u);
	return rc;
}

/* ---- groups -------------------------------------------------------------- */

static json_t *
ci_group_json(const struct store_group *g)
{
	return json_pack("{s:s, s:s, s:o}", "tenant", g->tenant, "name", g->name, "members",
	    ci_strings_json(g->members, g->nmembers));
}

static int
ci_group_add(struct server *srv, const struct principal *who, json_t *args, json_t **result_r,
    char **err_r)
{
	const char *tenant = ci_arg(args, "tenant", err_r);
	const char *name = tenant ? ci_arg(args, "name", err_r) : NULL;
	if (name == NULL || store_group_add(srv->store, tenant, name, err_r) < 0)
		return -1;
	*result_r = json_pack("{s:s, s:s, s:[]}", "tenant", tenant, "name", name, "members");
	return 0;
}

static int
ci_group_remove(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	const char *tenant = ci_arg(args, "tenant", err_r);
	const char *name = tenant ? ci_arg(args, "name", err_r) : NULL;
	if (name == NULL || store_group_remove(srv->store, tenant, name, err_r) < 0)
		return -1;
	*result_r = json_pack("{s:s, s:s}", "tenant", tenant, "name", name);
	return 0;
}

static int
ci_group_list(struct server *srv, const struct principal *who, json_t *args, json_t **result_r,
    char **err_r)
{
	const char *tenant = ci_arg(args, "tenant", err_r);
	struct store_group *list;
	size_t n;
	if (tenant == NULL || ci_tenant_check(srv, tenant, err_r) < 0)
		return -1;
	if (store_group_list(srv->store, tenant, &list, &n) < 0) {
		ci_err(err_r, "database error (%s)%s", "group list", "");
		return -1;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, ci_group_json(&list[i]));
	store_groups_free(list, n);
	*result_r = arr;
	return 0;
}

static int
ci_member_change(struct server *srv, json_t *args, int add, json_t **result_r, char **err_r)
{
	const char *tenant = ci_arg(args, "tenant", err_r);
	const char *group = tenant ? ci_arg(args, "group", err_r) : NULL;
	struct store_user u;
	if (group == NULL || ci_user(srv, args, "address", &u, err_r) < 0)
		return -1;
	int rc = add ? store_group_member_add(srv->store, tenant, group, u.id, err_r) :
	    store_group_member_remove(srv->store, tenant, group, u.id, err_r);
	if (rc == 0)
		*result_r = json_pack("{s:s, s:s, s:s}", "tenant", tenant, "group", group,
		    "address", u.address);
	store_user_clear(&u);
	return rc;
}

static int
ci_member_add(struct server *srv, const struct principal *who, json_t *args, json_t **result_r,
    char **err_r)
{
	return ci_member_change(srv, args, 1, result_r, err_r);
}

static int
ci_member_remove(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	return ci_member_change(srv, args, 0, result_r, err_r);
}

/* ---- tokens -------------------------------------------------------------- */

/* May who manage the tokens of a user of tenant `tenant` with this id? */
static int
ci_token_allowed(const struct principal *who, const char *tenant, long long user_id)
{
	if (who == NULL)
		return 0;
	if (who->role == ROLE_OPERATOR)
		return 1;
	if (who->user_id != 0 && who->user_id == user_id)
		return 1;
	return who->role == ROLE_ADMIN && tenant != NULL && ci_same_tenant(who->tenant, tenant);
}

/*
 * The user whose tokens a token command is about: args.user, else the
 * caller, else (the local CLI, which is no stored user) operator@local.
 */
static int
ci_token_user(struct server *srv, const struct principal *who, json_t *args,
    struct store_user *u_r, char **err_r)
{
	const char *address = ci_opt(args, "user");
	int found;
	if (address != NULL)
		found = store_user_get(srv->store, address, u_r);
	else if (who != NULL && who->user_id != 0)
		found = store_user_get_id(srv->store, who->user_id, u_r);
	else
		found = store_user_get(srv->store, address = "operator@local", u_r);
	if (found == 1 && ci_token_allowed(who, u_r->tenant, u_r->id))
		return 0;
	if (found == 1)
		store_user_clear(u_r);
	if (found < 0)
		ci_err(err_r, "database error (%s)%s", "token", "");
	else
		ci_err(err_r, "no user '%s'%s", address ? address : "?", "");
	return -1;
}

static int
ci_token_expiry(json_t *args, time_t *expires_r, char **err_r)
{
	const char *e = ci_opt(args, "expires");
	uint64_t secs;
	*expires_r = 0;
	if (e == NULL || strcmp(e, "never") == 0)
		return 0;
	if (str_parse_duration(e, &secs) < 0 || secs == 0 || secs > 100ULL * 365 * 86400) {
		ci_err(err_r, "invalid expiry '%s' (a duration such as 30d, 12h or never)%s", e, "");
		return -1;
	}
	*expires_r = time(NULL) + (time_t)secs;
	return 0;
}

static int
ci_token_create(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	struct store_user u;
	time_t expires;
	char *token = NULL;
	const char *name = ci_opt(args, "name");
	if (name == NULL)
		name = "token";
	if (ci_token_expiry(args, &expires, err_r) < 0 ||
	    ci_token_user(srv, who, args, &u, err_r) < 0)
		return -1;
	int rc = auth_token_create(srv, u.id, name, expires, &token, err_r);
	if (rc == 0) {
		/* "mk_" + id + "_": the id is the public part */
		char id[AUTH_TOKEN_ID_LEN + 1];
		memcpy(id, token + 3, AUTH_TOKEN_ID_LEN);
		id[AUTH_TOKEN_ID_LEN] = '\0';
		*result_r = json_pack("{s:s, s:s, s:s, s:o, s:o, s:s}", "id", id, "user", u.address,
		    "name", name, "tenant", ci_str(u.tenant), "expires", ci_time(expires),
		    "token", token);
		ci_wipe(token);
	}
	store_user_clear(&u);
	return rc;
}

static json_t *
ci_token_json(const struct store_token *t)
{
	return json_pack("{s:s, s:s, s:o, s:s, s:I, s:o, s:o, s:o}", "id", t->id,
	    "user", t->user_address, "tenant", ci_str(t->tenant), "name", t->name,
	    "created", (json_int_t)t->created, "expires", ci_time(t->expires),
	    "revoked", ci_time(t->revoked), "last_used", ci_time(t->last_used));
}

static int
ci_token_list(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long user_id = 0;
	struct store_token *list;
	size_t n;
	if (ci_opt(args, "user") != NULL || who == NULL || who->role != ROLE_OPERATOR) {
		struct store_user u;
		if (ci_token_user(srv, who, args, &u, err_r) < 0)
			return -1;
		user_id = u.id;
		store_user_clear(&u);
	}
	if (store_token_list(srv->store, user_id, &list, &n) < 0) {
		ci_err(err_r, "database error (%s)%s", "token list", "");
		return -1;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, ci_token_json(&list[i]));
	store_tokens_free(list, n);
	*result_r = arr;
	return 0;
}

static int
ci_token_revoke(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	const char *id = ci_arg(args, "id", err_r);
	struct store_token t;
	if (id == NULL)
		return -1;
	int found = store_token_get(srv->store, id, &t);
	if (found != 1 || !ci_token_allowed(who, t.tenant, t.user_id)) {
		if (found == 1)
			store_token_clear(&t);
		ci_err(err_r, found < 0 ? "database error (token %s)%s" : "no active token '%s'%s",
		    id, "");
		return -1;
	}
	int rc = store_token_revoke(srv->store, id, time(NULL), err_r);
	if (rc == 0)
		*result_r = json_pack("{s:s, s:s, s:b}", "id", t.id, "user", t.user_address,
		    "revoked", 1);
	store_token_clear(&t);
	return rc;
}

const struct control_command control_identity_commands[] = {
	{ "user.add", 1, ci_user_add },
	{ "user.list", 0, ci_user_list },
	{ "user.show", 0, ci_user_show },
	{ "user.disable", 1, ci_user_disable },
	{ "user.enable", 1, ci_user_enable },
	{ "user.passwd", 1, ci_user_passwd },
	{ "user.alias.add", 1, ci_alias_add },
	{ "user.alias.remove", 1, ci_alias_remove },
	{ "user.totp.enable", 1, ci_totp_enable },
	{ "group.add", 1, ci_group_add },
	{ "group.list", 0, ci_group_list },
	{ "group.remove", 1, ci_group_remove },
	{ "group.member.add", 1, ci_member_add },
	{ "group.member.remove", 1, ci_member_remove },
	{ "token.create", 1, ci_token_create },
	{ "token.list", 0, ci_token_list },
	{ "token.revoke", 1, ci_token_revoke },
	{ NULL, 0, NULL },
};
