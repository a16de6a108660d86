/*
 * control_handlers.c — one function per control command, found through
 * control_commands[] by name.  Handlers check their arguments, call store/,
 * queue/ and the scheduler, and build the JSON result the CLI prints.
 */
#include "control/control_handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "deliver/route.h"
#include "deliver/scheduler.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "queue/queue.h"
#include "audit/audit.h"
#include "auth/principal.h"
#include "hygiene/policy.h"
#include "server.h"
#include "store/store.h"

static void
control_err(char **err_r, const char *fmt, const char *a)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a);
	*err_r = buf_steal(&e);
}

/* A required string argument, or NULL with *err_r. */
static const char *
control_arg(json_t *args, const char *key, char **err_r)
{
	json_t *v = json_object_get(args, key);
	if (!json_is_string(v) || json_string_length(v) == 0) {
		control_err(err_r, "missing argument '%s'", key);
		return NULL;
	}
	return json_string_value(v);
}

/* An optional string argument: NULL when absent or empty. */
static const char *
control_opt(json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

static json_t *
control_str(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* ---- tenants ------------------------------------------------------------- */

static json_t *
control_tenant_json(const struct store_tenant *t)
{
	return json_pack("{s:s, s:s, s:s, s:I}", "name", t->name, "region", t->region,
	    "unknown_recipients", t->unknown_recipients, "created", (json_int_t)t->created);
}

static int
control_tenant_add(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	const char *name = control_arg(args, "name", err_r);
	const char *region = control_opt(args, "region");
	if (name == NULL)
		return -1;
	if (region == NULL)
		region = "default";
	if (!config_region_served(srv->cfg, region)) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "region '%s' is not served by this node (regions = %s)", region,
		    srv->cfg->regions);
		*err_r = buf_steal(&e);
		return -1;
	}
	if (store_tenant_add(srv->store, name, region, err_r) < 0)
		return -1;
	struct store_tenant t;
	if (store_tenant_get(srv->store, name, &t) == 1) {
		*result_r = control_tenant_json(&t);
		free(t.name);
		free(t.region);
		free(t.unknown_recipients);
	}
	return 0;
}

static int
control_tenant_list(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	struct store_tenant *list;
	size_t n;
	if (store_tenant_list(srv->store, &list, &n) < 0) {
		control_err(err_r, "%s", "database error");
		return -1;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, control_tenant_json(&list[i]));
	store_tenants_free(list, n);
	*result_r = arr;
	return 0;
}

static json_t *
control_domains_json(struct store_domain *list, size_t n, int routed_only)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		if (routed_only && list[i].route == NULL)
			continue;
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "domain", list[i].domain,
		    "tenant", list[i].tenant, "route", control_str(list[i].route)));
	}
	return arr;
}

static json_t *
control_relays_json(struct store_relay *list, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s}", "tenant", list[i].tenant,
		    "cidr", list[i].cidr));
	return arr;
}

static int
control_tenant_show(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	const char *name = control_arg(args, "name", err_r);
	struct store_tenant t;
	if (name == NULL)
		return -1;
	int found = store_tenant_get(srv->store, name, &t);
	if (found <= 0) {
		control_err(err_r, found == 0 ? "no tenant '%s'" : "database error (%s)", name);
		return -1;
	}
	json_t *o = control_tenant_json(&t);
	struct store_domain *doms;
	struct store_relay *rels;
	size_t nd, nr;
	if (store_domain_list(srv->store, t.name, &doms, &nd) == 0) {
		json_object_set_new(o, "domains", control_domains_json(doms, nd, 0));
		store_domains_free(doms, nd);
	}
	if (store_relay_list(srv->store, t.name, &rels, &nr) == 0) {
		json_object_set_new(o, "relays", control_relays_json(rels, nr));
		store_relays_free(rels, nr);
	}
	free(t.name);
	free(t.region);
	free(t.unknown_recipients);
	*result_r = o;
	return 0;
}

/* tenant.set NAME KEY VALUE: the per-tenant settings of the gateway. */
static int
control_tenant_set(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	const char *name = control_arg(args, "name", err_r);
	const char *key = name ? control_arg(args, "key", err_r) : NULL;
	const char *value = key ? control_arg(args, "value", err_r) : NULL;
	if (value == NULL)
		return -1;
	if (strcmp(key, "unknown_recipients") != 0 && strcmp(key, "unknown-recipients") != 0) {
		control_err(err_r, "unknown tenant setting '%s' (known: unknown-recipients)", key);
		return -1;
	}
	if (store_tenant_set_unknown_recipients(srv->store, name, value, err_r) < 0)
		return -1;
	*result_r = json_pack("{s:s, s:s}", "name", name, "unknown_recipients", value);
	return 0;
}

static int
control_tenant_remove(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	const char *name = control_arg(args, "name", err_r);
	if (name == NULL || store_tenant_remove(srv->store, name, err_r) < 0)
		return -1;
	policy_forget(srv->hygiene, name);
	return 0;
}

/* ---- domains, routes, relays -------------------------------------------- */

/* {"k1": lower(v1), "k2": lower(v2)}: names as the store keeps them. */
static json_t *
control_pair(const char *k1, const char *v1, const char *k2, const char *v2)
{
	char *a = str_lower(xstrdup(v1)), *b = str_lower(xstrdup(v2));
	json_t *o = json_pack("{s:s, s:s}", k1, a, k2, b);
	free(a);
	free(b);
	return o;
}

static json_t *
control_relay_result(const char *tenant, const char *cidr)
{
	struct cidr c;
	char canon[64];
	if (cidr_parse(cidr, &c) < 0)
		return control_pair("tenant", tenant, "cidr", cidr);
	cidr_format(&c, canon, sizeof(canon));
	return control_pair("tenant", tenant, "cidr", canon);
}

static int
control_domain_add(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	const char *tenant = control_arg(args, "tenant", err_r);
	const char *domain = tenant ? control_arg(args, "domain", err_r) : NULL;
	if (domain == NULL || store_domain_add(srv->store, tenant, domain, err_r) < 0)
		return -1;
	*result_r = control_pair("tenant", tenant, "domain", domain);
	return 0;
}

static int
control_domain_remove(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	const char *tenant = control_arg(args, "tenant", err_r);
	const char *domain = tenant ? control_arg(args, "domain", err_r) : NULL;
	if (domain == NULL || store_domain_remove(srv->store, tenant, domain, err_r) < 0)
		return -1;
	*result_r = control_pair("tenant", tenant, "domain", domain);
	return 0;
}

static int
control_domain_list_common(struct server *srv, const char *tenant, int routed_only,
    json_t **result_r, char **err_r)
{
	struct store_domain *list;
	size_t n;
	if (tenant != NULL) {
		struct store_tenant t;
		int found = store_tenant_get(srv->store, tenant, &t);
		if (found <= 0) {
			control_err(err_r, found == 0 ? "no tenant '%s'" : "database error (%s)", tenant);
			return -1;
		}
		free(t.name);
		free(t.region);
		free(t.unknown_recipients);
	}
	if (store_domain_list(srv->store, tenant, &list, &n) < 0) {
		control_err(err_r, "%s", "database error");
		return -1;
	}
	*result_r = control_domains_json(list, n, routed_only);
	store_domains_free(list, n);
	return 0;
}

static int
control_domain_list(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	return control_domain_list_common(srv, control_opt(args, "tenant"), 0, result_r, err_r);
}

static int
control_route_set(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	const char *domain = control_arg(args, "domain", err_r);
	const char *url = domain ? control_arg(args, "url", err_r) : NULL;
	struct route r;
	const char *why;
	char canon[512];
	if (url == NULL)
		return -1;
	if (route_parse(url, &r, &why) < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "invalid route '%s': %s", url, why);
		*err_r = buf_steal(&e);
		return -1;
	}
	route_format(&r, canon, sizeof(canon));
	if (store_route_set(srv->store, domain, canon, err_r) < 0)
		return -1;
	*result_r = control_pair("domain", domain, "route", "");
	json_object_set_new(*result_r, "route", json_string(canon));
	return 0;
}

static int
control_route_list(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	return control_domain_list_common(srv, NULL, 1, result_r, err_r);
}

static int
control_relay_add(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	const char *tenant = control_arg(args, "tenant", err_r);
	const char *cidr = tenant ? control_arg(args, "cidr", err_r) : NULL;
	if (cidr == NULL || store_relay_add(srv->store, tenant, cidr, err_r) < 0)
		return -1;
	*result_r = control_relay_result(tenant, cidr);
	return 0;
}

static int
control_relay_remove(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	const char *tenant = control_arg(args, "tenant", err_r);
	const char *cidr = tenant ? control_arg(args, "cidr", err_r) : NULL;
	if (cidr == NULL || store_relay_remove(srv->store, tenant, cidr, err_r) < 0)
		return -1;
	*result_r = control_relay_result(tenant, cidr);
	return 0;
}

static int
control_relay_list(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	struct store_relay *list;
	size_t n;
	if (store_relay_list(srv->store, control_opt(args, "tenant"), &list, &n) < 0) {
		control_err(err_r, "%s", "database error");
		return -1;
	}
	*result_r = control_relays_json(list, n);
	store_relays_free(list, n);
	return 0;
}

/* ---- queue --------------------------------------------------------------- */

static json_t *
control_entry_json(const struct queue_entry *e)
{
	const struct queue_envelope *env = &e->env;
	json_t *rcpts = json_array();
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		json_array_append_new(rcpts, json_pack("{s:s, s:s, s:o}", "addr", r->addr,
		    "state", queue_rcpt_state_name(r->state), "last_reply",
		    control_str(r->last_reply)));
	}
	return json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:b, s:I, s:I, s:I, s:o, s:o}",
	    "id", env->id, "direction", queue_direction_name(env->direction),
	    "tenant", control_str(env->tenant), "sender", env->sender ? env->sender : "",
	    "arrival", (json_int_t)env->arrival, "size", (json_int_t)e->body_size,
	    "held", e->held != 0, "attempts", (json_int_t)e->attempts,
	    "next_attempt", (json_int_t)e->next_attempt,
	    "last_attempt", (json_int_t)e->last_attempt,
	    "client", control_str(env->client_addr), "recipients", rcpts);
}

static void
control_queue_list_cb(void *arg, struct queue_entry *e)
{
	json_array_append_new(arg, control_entry_json(e));
}

static int
control_queue_list(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	json_t *arr = json_array();
	queue_foreach(srv->queue, control_queue_list_cb, arr);
	*result_r = arr;
	return 0;
}

/* The entry named by args.id, or NULL with *err_r. */
static struct queue_entry *
control_queue_entry(struct server *srv, json_t *args, char **err_r)
{
	const char *id = control_arg(args, "id", err_r);
	if (id == NULL)
		return NULL;
	struct queue_entry *e = id_valid(id) ? queue_entry_find(srv->queue, id) : NULL;
	if (e == NULL)
		control_err(err_r, "no queued message '%s'", id);
	return e;
}

static int
control_queue_show(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	struct queue_entry *e = control_queue_entry(srv, args, err_r);
	if (e == NULL)
		return -1;
	*result_r = control_entry_json(e);
	return 0;
}

static int
control_queue_set_hold(struct server *srv, json_t *args, int held, json_t **result_r,
    char **err_r)
{
	struct queue_entry *e = control_queue_entry(srv, args, err_r);
	if (e == NULL)
		return -1;
	if (queue_entry_set_hold(srv->queue, e, held) < 0) {
		control_err(err_r, "cannot record the hold state of '%s'", e->env.id);
		return -1;
	}
	if (srv->sched != NULL)
		scheduler_entry_changed(srv->sched, e);
	*result_r = json_pack("{s:s, s:b}", "id", e->env.id, "held", held);
	return 0;
}

static int
control_queue_hold(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	return control_queue_set_hold(srv, args, 1, result_r, err_r);
}

static int
control_queue_release(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	return control_queue_set_hold(srv, args, 0, result_r, err_r);
}

static int
control_queue_delete(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	const char *id = control_arg(args, "id", err_r);
	if (id == NULL)
		return -1;
	if (!id_valid(id) || srv->sched == NULL || scheduler_delete(srv->sched, id) < 0) {
		control_err(err_r, "no queued message '%s'", id);
		return -1;
	}
	*result_r = json_pack("{s:s}", "id", id);
	return 0;
}

static int
control_queue_flush(struct server *srv, const struct principal *who, json_t *args, json_t **result_r, char **err_r)
{
	size_t n = queue_count(srv->queue);
	if (srv->sched != NULL)
		scheduler_flush(srv->sched);
	*result_r = json_pack("{s:I}", "entries", (json_int_t)n);
	return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

const struct control_command control_core_commands[] = {
	{ "tenant.add", 1, control_tenant_add },
	{ "tenant.list", 0, control_tenant_list },
	{ "tenant.show", 0, control_tenant_show },
	{ "tenant.remove", 1, control_tenant_remove },
	{ "tenant.set", 1, control_tenant_set },
	{ "domain.add", 1, control_domain_add },
	{ "domain.list", 0, control_domain_list },
	{ "domain.remove", 1, control_domain_remove },
	{ "route.set", 1, control_route_set },
	{ "route.list", 0, control_route_list },
	{ "relay.add", 1, control_relay_add },
	{ "relay.list", 0, control_relay_list },
	{ "relay.remove", 1, control_relay_remove },
	{ "queue.list", 0, control_queue_list },
	{ "queue.show", 0, control_queue_show },
	{ "queue.flush", 1, control_queue_flush },
	{ "queue.hold", 1, control_queue_hold },
	{ "queue.release", 1, control_queue_release },
	{ "queue.delete", 1, control_queue_delete },
	{ NULL, 0, NULL },
};

static const struct control_command *const control_tables[] = {
	control_core_commands,
	control_identity_commands,
	control_audit_commands,
	control_directory_commands,
	control_archive_commands,
	control_archive_retention_commands,
	control_continuity_commands,
	control_hygiene_commands,
	control_spam_commands,
	control_dkim_commands,
};

/*
 * "k=v k2=v2" of the string arguments, for the admin log line.  Secrets
 * never reach the log: arguments named *password*, and the "value" of a
 * setting whose "key" names a password or a webhook (continuity.set).
 */
static void
control_log_admin(const char *cmd, json_t *args)
{
	struct buf b = BUF_INIT;
	const char *key;
	json_t *v;
	const char *setting = json_string_value(json_object_get(args, "key"));
	int secret_value = setting != NULL && (strstr(setting, "password") != NULL ||
	    strcmp(setting, "webhook") == 0);   /* webhook URLs often carry a token */
	json_object_foreach(args, key, v) {
		if (json_is_string(v) && (strstr(key, "password") != NULL ||
		    (secret_value && strcmp(key, "value") == 0)))
			buf_appendf(&b, " %s=********", log_strn(key, strlen(key)));
		else if (json_is_string(v))
			buf_appendf(&b, " %s=%s", log_strn(key, strlen(key)),
			    log_str(json_string_value(v)));
	}
	log_info("admin", "cmd=%s%s", cmd, b.len ? buf_cstr(&b) : "");
	buf_free(&b);
}

const char *
control_audit_object(json_t *args)
{
	static const char *const keys[] = { "tenant", "domain", "cidr", "id", "address", "name",
		"key" };
	static __thread char out[512];
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = json_string_value(json_object_get(args, keys[i]));
		if (v == NULL)
			continue;
		int n = snprintf(out + o, sizeof(out) - o, "%s%s:%s", o ? " " : "", keys[i], v);
		if (n < 0 || (size_t)n >= sizeof(out) - o)
			break;
		o += (size_t)n;
	}
	return out;
}

/*
 * The tenant an audit entry belongs to: a tenant principal's own; for an
 * operator, the command's "tenant" argument or, for tenant.* commands, the
 * tenant they name.
 */
static const char *
control_audit_tenant(const struct principal *who, const struct control_command *c, json_t *args)
{
	if (who->role != ROLE_OPERATOR)
		return who->tenant;
	const char *t = json_string_value(json_object_get(args, "tenant"));
	if (t == NULL && strncmp(c->name, "tenant.", 7) == 0)
		t = json_string_value(json_object_get(args, "name"));
	return t;
}

static void
control_audit(struct server *srv, const struct principal *who, const struct control_command *c,
    json_t *args, const char *outcome, const char *detail)
{
	audit_record_tenant(srv, who, control_audit_tenant(who, c, args), c->name,
	    control_audit_object(args), outcome, detail);
}

static const struct control_command *
control_find(const char *cmd)
{
	for (size_t t = 0; t < sizeof(control_tables) / sizeof(control_tables[0]); t++)
		for (const struct control_command *c = control_tables[t]; c->name != NULL; c++)
			if (strcmp(c->name, cmd) == 0)
				return c;
	return NULL;
}

/*
 * The one path every administrative request takes, from the CLI or the
 * HTTP API: find the command, authorise the principal, run the handler,
 * and record the outcome of every mutating command in the audit trail.
 */
int
control_dispatch(struct server *srv, const struct principal *who, const char *cmd, json_t *args,
    json_t **result_r, char **err_r)
{
	*result_r = NULL;
	const struct control_command *c = control_find(cmd);
	if (c == NULL) {
		log_warn("control_bad_request", "cmd=%s error=unknown_command", log_str(cmd));
		control_err(err_r, "unknown command '%s'", cmd);
		return -1;
	}
	if (control_authorize(srv, who, c, args, err_r) < 0) {
		if (c->mutating)
			control_audit(srv, who, c, args, "denied", NULL);
		return -1;
	}
	if (c->fn(srv, who, args, result_r, err_r) < 0) {
		log_info("admin_refused", "cmd=%s reason=%s", c->name,
		    log_str(*err_r ? *err_r : "?"));
		if (c->mutating)
			control_audit(srv, who, c, args, "failed", *err_r);
		return -1;
	}
	if (c->mutating) {
		control_log_admin(c->name, args);
		control_audit(srv, who, c, args, "ok", NULL);
	}
	return 0;
}
