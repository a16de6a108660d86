/*
 * control_hygiene.c — `policy.*` (each tenant's hygiene policy) and
 * `quarantine.*` (list, show, release, delete, digest):
 *
 *   policy.show        {tenant}                → [{key, value, default, set, help}]
 *   policy.set         {tenant, key, value}    → {tenant, key, value}
 *   quarantine.list    {tenant, rcpt?, limit?} → [items], newest first
 *   quarantine.show    {tenant, id}            → item + envelope + headers
 *   quarantine.release {tenant, id}            → {tenant, id, released}
 *   quarantine.delete  {tenant, id}            → {tenant, id, deleted}
 *   quarantine.digest  {tenant}                → {tenant, digests}
 *
 * control_authz.c has already checked the tenant and the minimum role.  A
 * principal with role user reaches only items addressed to its own address
 * or aliases (others are "not found"), and releases or deletes them only
 * when the tenant's quarantine.user_release is on.
 */
#include "control/control_handlers.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "auth/principal.h"
#include "control/control_args.h"
#include "hygiene/policy.h"
#include "hygiene/quarantine.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "server.h"
#include "store/store.h"

/* Default and largest page of quarantine.list. */
#define CHYG_LIST_DEFAULT 100
#define CHYG_LIST_MAX 1000
/* Longest policy value accepted (templates included). */
#define CHYG_VALUE_MAX 65536

/* ------------------------------------------------------------- policy */

static int
chyg_policy_show(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	if (srv->hygiene == NULL) {
		free(tenant);
		err_setf(err_r, "the hygiene pipeline is not running");
		return -1;
	}
	*result_r = policy_describe(srv->hygiene, tenant);
	free(tenant);
	return 0;
}

static int
chyg_policy_set(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	char *tenant = control_arg_tenant(srv, args, err_r);
	const char *key = tenant ? control_arg(args, "key", err_r) : NULL;
	if (key == NULL) {
		free(tenant);
		return -1;
	}
	/* An empty value is legal (an empty list, no disclaimer). */
	json_t *jv = json_object_get(args, "value");
	const char *value = json_string_value(jv);
	if (value == NULL && json_is_number(jv)) {
		char *num = json_dumps(jv, JSON_ENCODE_ANY);
		json_object_set_new(args, "value", json_string(num ? num : ""));
		free(num);
		value = json_string_value(json_object_get(args, "value"));
	}
	int rc = -1;
	if (value == NULL)
		err_setf(err_r, "missing argument 'value'");
	else if (strlen(value) > CHYG_VALUE_MAX)
		err_setf(err_r, "%s: value too long (at most %d bytes)", key, CHYG_VALUE_MAX);
	else if (srv->hygiene == NULL)
		err_setf(err_r, "the hygiene pipeline is not running");
	else
		rc = policy_set(srv->hygiene, tenant, key, value, err_r);
	if (rc == 0)
		*result_r = json_pack("{s:s, s:s, s:s}", "tenant", tenant, "key", key,
		    "value", value);
	free(tenant);
	return rc;
}

/* ------------------------------------------------ whose items, narrowing */

struct chyg_owner {
	int narrowed;        /* a role-user principal: only own addresses */
	char **addrs;        /* lower-cased address and aliases */
	size_t n;
};

static void
chyg_owner_init(struct server *srv, const struct principal *who, struct chyg_owner *o)
{
	memset(o, 0, sizeof(*o));
	if (who->role != ROLE_USER)
		return;
	o->narrowed = 1;
	struct store_user u;
	if (who->user_id <= 0 || store_user_get_id(srv->store, who->user_id, &u) <= 0)
		return;                              /* no stored user: sees nothing */
	char **aliases = NULL;
	size_t na = 0;
	if (store_user_aliases(srv->store, who->user_id, &aliases, &na) < 0)
		na = 0;
	o->addrs = xcalloc(na + 1, sizeof(*o->addrs));
	o->addrs[o->n++] = str_lower(xstrdup(u.address));
	for (size_t i = 0; i < na; i++)
		o->addrs[o->n++] = str_lower(xstrdup(aliases[i]));
	store_strings_free(aliases, na);
	store_user_clear(&u);
}

static void
chyg_owner_clear(struct chyg_owner *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->addrs[i]);
	free(o->addrs);
	memset(o, 0, sizeof(*o));
}

static int
chyg_owner_has(const struct chyg_owner *o, const char *addr)
{
	if (!o->narrowed)
		return 1;
	for (size_t i = 0; i < o->n; i++)
		if (str_eq_ci(o->addrs[i], addr))
			return 1;
	return 0;
}

/* May the owner see this item (one of its recipients is theirs)? */
static int
chyg_owner_sees(const struct chyg_owner *o, json_t *item)
{
	if (!o->narrowed)
		return 1;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(item, "rcpts"), i, r) {
		const char *a = json_string_value(r);
		if (a != NULL && chyg_owner_has(o, a))
			return 1;
	}
	return 0;
}

static int
chyg_not_found(char **err_r, const char *id)
{
	err_setf(err_r, "quarantined message not found: %s", id);
	return -1;
}

/* --------------------------------------------------------------- list */

static int
chyg_id_desc(const void *a, const void *b)
{
	json_t *const *x = a, *const *y = b;
	json_int_t tx = json_integer_value(json_object_get(*x, "time"));
	json_int_t ty = json_integer_value(json_object_get(*y, "time"));
	if (tx != ty)
		return tx < ty ? 1 : -1;
	return -strcmp(json_string_value(json_object_get(*x, "id")),
	    json_string_value(json_object_get(*y, "id")));
}

/* The union of each own address's items, newest first, at most limit. */
static json_t *
chyg_list_owner(struct server *srv, const char *tenant, const struct chyg_owner *o,
    size_t limit, char **err_r)
{
	json_t *seen = json_object();
	for (size_t i = 0; i < o->n; i++) {
		json_t *part = quarantine_list(srv->quarantine, tenant, o->addrs[i], limit, err_r);
		if (part == NULL) {
			json_decref(seen);
			return NULL;
		}
		size_t k;
		json_t *it;
		json_array_foreach(part, k, it)
			json_object_set(seen, json_string_value(json_object_get(it, "id")), it);
		json_decref(part);
	}
	size_t n = json_object_size(seen), k = 0;
	json_t **items = xcalloc(n + 1, sizeof(*items));
	const char *key;
	json_t *it;
	json_object_foreach(seen, key, it)
		items[k++] = it;
	qsort(items, n, sizeof(*items), chyg_id_desc);
	json_t *arr = json_array();
	for (k = 0; k < n && k < limit; k++)
		json_array_append(arr, items[k]);
	free(items);
	json_decref(seen);
	return arr;
}

static int
chyg_quarantine_list(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	long long limit;
	if (tenant == NULL || control_arg_int(args, "limit", CHYG_LIST_DEFAULT, 1, CHYG_LIST_MAX,
	    &limit, err_r) < 0) {
		free(tenant);
		return -1;
	}
	const char *rcpt = control_arg_opt(args, "rcpt");
	struct chyg_owner o;
	chyg_owner_init(srv, who, &o);
	json_t *arr;
	if (o.narrowed && rcpt != NULL && !chyg_owner_has(&o, rcpt))
		arr = json_array();                  /* someone else's mail: nothing */
	else if (o.narrowed && rcpt == NULL)
		arr = chyg_list_owner(srv, tenant, &o, (size_t)limit, err_r);
	else
		arr = quarantine_list(srv->quarantine, tenant, rcpt, (size_t)limit, err_r);
	chyg_owner_clear(&o);
	free(tenant);
	if (arr == NULL)
		return -1;
	*result_r = arr;
	return 0;
}

/* ---------------------------------------------------- show, release, delete */

/* The tenant and id of args, and the item if this principal may see it. */
json_t *
control_quarantine_item(struct server *srv, const struct principal *who, json_t *args,
    char **tenant_r, const char **id_r, char **err_r)
{
	*tenant_r = control_arg_tenant(srv, args, err_r);
	*id_r = *tenant_r ? control_arg(args, "id", err_r) : NULL;
	if (*id_r == NULL)
		return NULL;
	json_t *item = quarantine_show(srv->quarantine, *tenant_r, *id_r, err_r);
	if (item == NULL)
		return NULL;
	struct chyg_owner o;
	chyg_owner_init(srv, who, &o);
	int sees = chyg_owner_sees(&o, item);
	chyg_owner_clear(&o);
	if (!sees) {
		json_decref(item);
		chyg_not_found(err_r, *id_r);
		return NULL;
	}
	return item;
}

static int
chyg_quarantine_show(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = NULL;
	const char *id = NULL;
	json_t *item = control_quarantine_item(srv, who, args, &tenant, &id, err_r);
	free(tenant);
	if (item == NULL)
		return -1;
	*result_r = item;
	return 0;
}

/* Users change items only when the tenant lets them. */
static int
chyg_user_may_change(struct server *srv, const struct principal *who, const char *tenant,
    const char *cmd, char **err_r)
{
	if (who->role != ROLE_USER)
		return 0;
	int allowed = 0;
	if (srv->hygiene != NULL) {
		const struct hygiene_policy *p = policy_get(srv->hygiene, tenant);
		allowed = p->quarantine_user_release;
		policy_release(&p);
	}
	if (allowed)
		return 0;
	err_setf(err_r, "not permitted: %s (quarantine.user_release is off for this tenant)", cmd);
	return -1;
}

static int
chyg_change(struct server *srv, const struct principal *who, json_t *args, int release,
    json_t **result_r, char **err_r)
{
	char *tenant = NULL;
	const char *id = NULL;
	const char *cmd = release ? "quarantine.release" : "quarantine.delete";
	json_t *item = control_quarantine_item(srv, who, args, &tenant, &id, err_r);
	int rc = -1;
	if (item != NULL && chyg_user_may_change(srv, who, tenant, cmd, err_r) == 0)
		rc = release ? quarantine_release(srv, tenant, id, err_r) :
		    quarantine_delete(srv->quarantine, tenant, id, err_r);
	if (rc == 0)
		*result_r = json_pack("{s:s, s:s, s:b}", "tenant", tenant, "id", id,
		    release ? "released" : "deleted", 1);
	json_decref(item);
	free(tenant);
	return rc;
}

static int
chyg_quarantine_release(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	return chyg_change(srv, who, args, 1, result_r, err_r);
}

static int
chyg_quarantine_delete(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	return chyg_change(srv, who, args, 0, result_r, err_r);
}

static int
chyg_quarantine_digest(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	int n = quarantine_digest_run(srv, tenant, err_r);
	if (n >= 0)
		*result_r = json_pack("{s:s, s:i}", "tenant", tenant, "digests", n);
	free(tenant);
	return n < 0 ? -1 : 0;
}

const struct control_command control_hygiene_commands[] = {
	{ "policy.show", 0, chyg_policy_show },
	{ "policy.set", 1, chyg_policy_set },
	{ "quarantine.list", 0, chyg_quarantine_list },
	{ "quarantine.show", 0, chyg_quarantine_show },
	{ "quarantine.release", 1, chyg_quarantine_release },
	{ "quarantine.delete", 1, chyg_quarantine_delete },
	{ "quarantine.digest", 1, chyg_quarantine_digest },
	{ NULL, 0, NULL },
};
