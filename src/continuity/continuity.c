/*
 * continuity.c — per-tenant continuity state: settings, the outage state
 * machine (continuity.h), drills, route health and the once-a-second tick
 * that fails back automatically and ends a failback once nothing is owed.
 *
 * Every transition is written to mailark.db first (continuity_outages),
 * then audited, logged and alerted (alert.c).  Automatic failback (tenant
 * setting failback = auto) needs a reason to believe the primary was down:
 * the outage was started automatically, or one of the tenant's routes was
 * seen down during it; an outage an admin started while every route was
 * healthy (maintenance) waits for the admin's stop.  continuity_start() reloads
 * outages and drills that had not ended, so a restart (even kill -9) keeps
 * an ACTIVE tenant ACTIVE.  The ledger lives in continuity_ledger.c, the
 * reports in continuity_report.c.
 */
#include "continuity/continuity.h"
#include "continuity/continuity_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <event2/event.h>

#include "archive/archive.h"
#include "audit/audit.h"
#include "auth/principal.h"
#include "config/config.h"
#include "continuity/alert.h"
#include "deliver/route.h"
#include "deliver/scheduler.h"
#include "imap/imap_server.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "server.h"
#include "store/store.h"

/* ---- settings ----------------------------------------------------------- */

typedef int setting_check_fn(const char *value);

struct setting_def {
	const char *key;
	const char *def;
	setting_check_fn *check;
	const char *expect;           /* for the error message */
};

static int
check_auto_manual(const char *v)
{
	return strcmp(v, "auto") == 0 || strcmp(v, "manual") == 0;
}

static int
check_seconds(const char *v)
{
	uint64_t n;
	return str_parse_u64(v, &n) == 0 && n <= 86400 * 30;
}

static int
check_days(const char *v)
{
	uint64_t n;
	return str_parse_u64(v, &n) == 0 && n >= 1 && n <= 3650;
}

static int
check_addresses(const char *v)
{
	char *copy = xstrdup(v), *save = NULL;
	int ok = 1;
	for (char *a = strtok_r(copy, ",", &save); a != NULL && ok; a = strtok_r(NULL, ",", &save))
		ok = store_address_valid(str_trim(a));
	free(copy);
	return ok;
}

static int
check_url(const char *v)
{
	return *v == '\0' || strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0;
}

static int
check_sent_copy(const char *v)
{
	return strcmp(v, "header") == 0 || strcmp(v, "imap") == 0 || strcmp(v, "none") == 0;
}

static int
check_imap_url(const char *v)
{
	return *v == '\0' || strncmp(v, "imap://", 7) == 0 || strncmp(v, "imaps://", 8) == 0;
}

static int
check_any(const char *v)
{
	return strchr(v, '\n') == NULL && strchr(v, '\r') == NULL;
}

static const struct setting_def settings[] = {
	{ "mode", "manual", check_auto_manual, "auto or manual" },
	{ "failback", "auto", check_auto_manual, "auto or manual" },
	{ "failback_after", "300", check_seconds, "seconds (0..2592000)" },
	{ "window_days", "30", check_days, "days (1..3650)" },
	{ "alert_addresses", "", check_addresses, "comma-separated addresses" },
	{ "webhook", "", check_url, "an http(s) URL" },
	{ "sent_copy", "header", check_sent_copy, "header, imap or none" },
	{ "imap_url", "", check_imap_url, "imap[s]://HOST[:PORT]/FOLDER" },
	{ "imap_user", "", check_any, "a login" },
	{ "imap_password", "", check_any, "a password" },
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const struct setting_def *
setting_find(const char *key)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (strcmp(settings[i].key, key) == 0)
			return &settings[i];
	return NULL;
}

char *
cont_setting(struct continuity *c, const char *tenant, const char *key)
{
	const struct setting_def *d = setting_find(key);
	char *v = NULL;
	if (d == NULL)
		return NULL;
	if (store_cont_setting_get(c->srv->store, tenant, key, &v) != 1)
		v = xstrdup(d->def);
	return v;
}

static long long
cont_setting_num(struct continuity *c, const char *tenant, const char *key)
{
	char *v = cont_setting(c, tenant, key);
	uint64_t n = 0;
	if (v == NULL || str_parse_u64(v, &n) < 0)
		n = 0;
	free(v);
	return (long long)n;
}

static int
cont_setting_is(struct continuity *c, const char *tenant, const char *key, const char *want)
{
	char *v = cont_setting(c, tenant, key);
	int is = v != NULL && strcmp(v, want) == 0;
	free(v);
	return is;
}

static int
cont_tenant_known(struct continuity *c, const char *tenant, char **err_r)
{
	struct store_tenant t;
	int rc = store_tenant_get(c->srv->store, tenant, &t);
	if (rc == 1) {
		free(t.name);
		free(t.region);
		free(t.unknown_recipients);
		return 0;
	}
	struct buf e = BUF_INIT;
	buf_appendf(&e, rc == 0 ? "no tenant '%s'" : "cannot look up tenant '%s'", tenant);
	*err_r = buf_steal(&e);
	return -1;
}

int
continuity_setting_set(struct continuity *c, const char *tenant, const char *key,
    const char *value, char **err_r)
{
	const struct setting_def *d = setting_find(key);
	struct buf e = BUF_INIT;
	if (d == NULL) {
		buf_appendf(&e, "unknown continuity setting '%s'", key);
		*err_r = buf_steal(&e);
		return -1;
	}
	if (value == NULL || !d->check(value)) {
		buf_appendf(&e, "%s: expected %s", key, d->expect);
		*err_r = buf_steal(&e);
		return -1;
	}
	if (cont_tenant_known(c, tenant, err_r) < 0)
		return -1;
	if (store_cont_setting_set(c->srv->store, tenant, key, value, err_r) < 0)
		return -1;
	log_info("continuity_setting", "tenant=%s key=%s", log_str(tenant), key);
	return 0;
}

int
continuity_setting_get(struct continuity *c, const char *tenant, const char *key,
    char **value_r)
{
	char *v = cont_setting(c, tenant, key);
	if (v == NULL)
		return -1;
	*value_r = v;
	return 0;
}

json_t *
continuity_settings_json(struct continuity *c, const char *tenant)
{
	json_t *o = json_object();
	for (size_t i = 0; i < NSETTINGS; i++) {
		char *v = cont_setting(c, tenant, settings[i].key);
		if (strcmp(settings[i].key, "imap_password") == 0)
			json_object_set_new(o, settings[i].key, json_string(*v ? "set" : ""));
		else if (strcmp(settings[i].key, "failback_after") == 0 ||
		    strcmp(settings[i].key, "window_days") == 0)
			json_object_set_new(o, settings[i].key, json_integer(atoll(v)));
		else
			json_object_set_new(o, settings[i].key, json_string(v));
		free(v);
	}
	return o;
}

int
continuity_window_days(struct continuity *c, const char *tenant)
{
	long long d = c != NULL ? cont_setting_num(c, tenant, "window_days") : 30;
	return d >= 1 && d <= 3650 ? (int)d : 30;
}

/* ---- tenants ------------------------------------------------------------ */

const char *
cont_state_name(enum continuity_state st)
{
	switch (st) {
	case CONTINUITY_ACTIVE: return "active";
	case CONTINUITY_FAILING_BACK: return "failing_back";
	default: return "normal";
	}
}

struct ctenant *
cont_tenant(struct continuity *c, const char *name, int create)
{
	if (c == NULL || name == NULL)
		return NULL;
	for (struct ctenant *t = c->tenants; t != NULL; t = t->next)
		if (strcmp(t->name, name) == 0)
			return t;
	if (!create)
		return NULL;
	struct ctenant *t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	t->state = CONTINUITY_NORMAL;
	t->since = time(NULL);
	t->next = c->tenants;
	c->tenants = t;
	return t;
}

static void
drill_users_clear(struct ctenant *t)
{
	for (size_t i = 0; i < t->ndrill_users; i++)
		free(t->drill_users[i]);
	free(t->drill_users);
	t->drill_users = NULL;
	t->ndrill_users = 0;
}

/* Parses the stored comma list of a drill's users. */
static void
drill_users_load(struct ctenant *t, const char *users)
{
	drill_users_clear(t);
	if (users == NULL || *users == '\0')
		return;
	char *copy = xstrdup(users), *save = NULL;
	size_t cap = 1;
	for (const char *p = users; *p; p++)
		cap += *p == ',';
	t->drill_users = xcalloc(cap, sizeof(*t->drill_users));
	for (char *a = strtok_r(copy, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save))
		if (*str_trim(a) != '\0' && t->ndrill_users < cap)
			t->drill_users[t->ndrill_users++] = str_lower(xstrdup(str_trim(a)));
	free(copy);
}

int
cont_drill_has_user(const struct ctenant *t, const char *address)
{
	if (t == NULL || t->drill.id == 0 || address == NULL)
		return 0;
	if (t->drill.users == NULL || *t->drill.users == '\0')
		return 1;
	for (size_t i = 0; i < t->ndrill_users; i++)
		if (strcasecmp(t->drill_users[i], address) == 0)
			return 1;
	return 0;
}

static void
ctenant_free(struct ctenant *t)
{
	store_cont_outage_clear(&t->outage);
	store_cont_outage_clear(&t->drill);
	drill_users_clear(t);
	free(t->name);
	free(t);
}

enum continuity_state
continuity_tenant_state(struct continuity *c, const char *tenant)
{
	struct ctenant *t = cont_tenant(c, tenant, 0);
	return t != NULL ? t->state : CONTINUITY_NORMAL;
}

int
continuity_route_held(struct continuity *c, const char *tenant)
{
	return continuity_tenant_state(c, tenant) == CONTINUITY_ACTIVE;
}

int
continuity_user_active(struct continuity *c, const char *tenant, const char *address)
{
	struct ctenant *t = cont_tenant(c, tenant, 0);
	if (t == NULL)
		return 0;
	if (t->state == CONTINUITY_ACTIVE || t->state == CONTINUITY_FAILING_BACK)
		return 1;
	return cont_drill_has_user(t, address);
}

void
continuity_note_signin(struct continuity *c, const char *tenant, const char *address,
    const char *service)
{
	struct ctenant *t = cont_tenant(c, tenant, 0);
	long long id = 0;
	if (t == NULL)
		return;
	if (t->state != CONTINUITY_NORMAL)
		id = t->outage.id;
	else if (cont_drill_has_user(t, address))
		id = t->drill.id;
	if (id != 0)
		store_cont_signin_add(c->srv->store, id, address, service, time(NULL));
	log_info("continuity_signin", "tenant=%s user=%s service=%s outage=%lld",
	    log_str(tenant), log_str(address), log_str(service), id);
}

/* ---- transitions -------------------------------------------------------- */

static long long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
who_name(const struct principal *who)
{
	return who != NULL && who->actor != NULL ? who->actor : "auto";
}

static const struct principal cont_auto = {
	.role = ROLE_OPERATOR, .actor = "auto", .source = "local",
};

/* Audit, log and alert one transition. */
static void
cont_announce(struct continuity *c, const char *tenant, const struct principal *who,
    const char *action, const char *event, long long id, const char *route,
    const char *detail)
{
	struct buf obj = BUF_INIT, d = BUF_INIT;
	buf_appendf(&obj, "tenant:%s", tenant);
	buf_appendf(&d, "id=%lld%s%s", id, detail != NULL ? " " : "", detail != NULL ? detail : "");
	audit_record_tenant(c->srv, who != NULL ? who : &cont_auto, tenant, action,
	    buf_cstr(&obj), "ok", buf_cstr(&d));
	char logev[64];
	snprintf(logev, sizeof(logev), "%s", event);
	for (char *p = logev; *p; p++)
		if (*p == '.')
			*p = '_';
	log_info(logev, "tenant=%s by=%s id=%lld detail=%s", log_str(tenant),
	    log_str(who_name(who)), id, log_str(detail != NULL ? detail : "-"));
	char *addrs = cont_setting(c, tenant, "alert_addresses");
	char *hook = cont_setting(c, tenant, "webhook");
	struct alert_event ev = {
		.tenant = tenant, .event = event, .route = route, .actor = who_name(who),
		.detail = detail, .outage_id = id,
	};
	alert_send(c->srv, addrs, hook, &ev);
	free(addrs);
	free(hook);
	buf_free(&obj);
	buf_free(&d);
}

static int
cont_save(struct continuity *c, const struct store_cont_outage *o)
{
	char *err = NULL;
	if (store_cont_outage_update(c->srv->store, o, &err) < 0) {
		log_error("continuity_save_failed", "id=%lld error=%s", o->id, log_str(err));
		free(err);
		return -1;
	}
	return 0;
}

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v != NULL ? xstrdup(v) : NULL;
}

static int
any_route_down(struct continuity *c, const char *tenant)
{
	for (struct croute *r = c->routes; r != NULL; r = r->next)
		if (strcmp(r->tenant, tenant) == 0 && r->state == CROUTE_DOWN)
			return 1;
	return 0;
}

/* NORMAL -> ACTIVE: a new outage row, then every held recipient in the ledger. */
static int
cont_begin_outage(struct continuity *c, struct ctenant *t, const struct principal *who,
    const char *reason, char **err_r)
{
	long long t0 = now_ms();
	struct store_cont_outage o = {
		.tenant = t->name, .kind = "outage", .started_at = time(NULL),
		.started_by = (char *)who_name(who), .reason = (char *)reason, .failover_ms = -1,
		.state = "active",
	};
	long long id;
	if (store_cont_outage_add(c->srv->store, &o, &id, err_r) < 0)
		return -1;
	store_cont_outage_clear(&t->outage);
	if (store_cont_outage_get(c->srv->store, t->name, "outage", id, &t->outage) != 1) {
		*err_r = xstrdup("cannot read the new outage back");
		return -1;
	}
	t->state = CONTINUITY_ACTIVE;
	t->since = time(NULL);
	t->saw_down = any_route_down(c, t->name);
	t->outage.failover_ms = now_ms() - t0;
	cont_save(c, &t->outage);
	queue_foreach(c->srv->queue, cont_note_queued_cb, c);
	cont_announce(c, t->name, who, "continuity.start", "continuity.started", id, NULL, reason);
	return 0;
}

/* ACTIVE -> FAILING_BACK: release what was held, make the sent copies. */
static void
cont_failback(struct continuity *c, struct ctenant *t, const struct principal *who)
{
	t->state = CONTINUITY_FAILING_BACK;
	t->since = time(NULL);
	t->outage.failback_at = t->since;
	set_str(&t->outage.state, "failing_back");
	cont_save(c, &t->outage);
	cont_announce(c, t->name, who, "continuity.failback", "continuity.failback", t->outage.id,
	    NULL, NULL);
	if (c->srv->sched != NULL)
		scheduler_release_tenant(c->srv->sched, t->name);
	cont_sent_copies(c, t->name, t->outage.id, 0);
	cont_check_end(c, t);
}

void
cont_check_end(struct continuity *c, struct ctenant *t)
{
	struct store_cont_counts n;
	if (t->state != CONTINUITY_FAILING_BACK ||
	    store_cont_ledger_counts(c->srv->store, t->outage.id, &n) < 0 || n.pending > 0)
		return;
	struct buf d = BUF_INIT;
	buf_appendf(&d, "accepted=%lld delivered=%lld skipped=%lld pending=%lld failed=%lld",
	    n.accepted, n.delivered + n.skipped, n.skipped, n.pending, n.failed);
	t->state = CONTINUITY_NORMAL;
	t->since = time(NULL);
	t->outage.ended_at = t->since;
	set_str(&t->outage.state, "ended");
	if (t->outage.ended_by == NULL)
		set_str(&t->outage.ended_by, "auto");
	cont_save(c, &t->outage);
	long long id = t->outage.id;
	cont_announce(c, t->name, NULL, "continuity.end", "continuity.ended", id, NULL,
	    buf_cstr(&d));
	store_cont_outage_clear(&t->outage);
	buf_free(&d);
	if (c->srv->imap != NULL)
		imap_server_kick_tenant(c->srv->imap, t->name);
}

int
continuity_admin_start(struct continuity *c, const char *tenant, const struct principal *who,
    const char *reason, char **err_r)
{
	if (cont_tenant_known(c, tenant, err_r) < 0)
		return -1;
	struct ctenant *t = cont_tenant(c, tenant, 1);
	if (t->state == CONTINUITY_ACTIVE) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "tenant '%s' is already in continuity", tenant);
		*err_r = buf_steal(&e);
		return -1;
	}
	if (t->state == CONTINUITY_NORMAL)
		return cont_begin_outage(c, t, who, reason, err_r);
	/* FAILING_BACK: the same outage goes on. */
	t->state = CONTINUITY_ACTIVE;
	t->since = time(NULL);
	set_str(&t->outage.state, "active");
	cont_save(c, &t->outage);
	cont_announce(c, tenant, who, "continuity.start", "continuity.started", t->outage.id, NULL,
	    reason != NULL ? reason : "re-entered during failback");
	return 0;
}

int
continuity_admin_stop(struct continuity *c, const char *tenant, const struct principal *who,
    char **err_r)
{
	struct ctenant *t = cont_tenant(c, tenant, 0);
	if (t == NULL || t->state != CONTINUITY_ACTIVE) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, t != NULL && t->state == CONTINUITY_FAILING_BACK ?
		    "tenant '%s' is already failing back" : "tenant '%s' is not in continuity", tenant);
		*err_r = buf_steal(&e);
		return -1;
	}
	set_str(&t->outage.ended_by, who_name(who));
	cont_failback(c, t, who);
	return 0;
}

/* ---- drills ------------------------------------------------------------- */

/* The canonical addresses of the drill's users, each checked against the tenant. */
static int
drill_users_join(struct continuity *c, const char *tenant, const char *const *users,
    size_t n, char **joined_r, char **err_r)
{
	struct buf j = BUF_INIT, e = BUF_INIT;
	*joined_r = NULL;
	for (size_t i = 0; i < n; i++) {
		struct store_user u;
		int rc = store_user_get(c->srv->store, users[i], &u);
		if (rc != 1 || u.tenant == NULL || strcmp(u.tenant, tenant) != 0) {
			if (rc == 1)
				store_user_clear(&u);
			buf_appendf(&e, "'%s' is not a user of tenant '%s'", users[i], tenant);
			*err_r = buf_steal(&e);
			buf_free(&j);
			return -1;
		}
		buf_appendf(&j, "%s%s", j.len > 0 ? "," : "", u.address);
		store_user_clear(&u);
	}
	if (j.len > 0)
		*joined_r = buf_steal(&j);
	buf_free(&j);
	return 0;
}

int
continuity_drill_start(struct continuity *c, const char *tenant, const char *const *users,
    size_t nusers, const struct principal *who, char **err_r)
{
	long long t0 = now_ms();
	char *joined = NULL;
	if (cont_tenant_known(c, tenant, err_r) < 0 ||
	    drill_users_join(c, tenant, users, nusers, &joined, err_r) < 0)
		return -1;
	struct ctenant *t = cont_tenant(c, tenant, 1);
	if (t->drill.id != 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "a drill of tenant '%s' is already running", tenant);
		*err_r = buf_steal(&e);
		free(joined);
		return -1;
	}
	struct store_cont_outage o = {
		.tenant = (char *)tenant, .kind = "drill", .users = joined, .started_at = time(NULL),
		.started_by = (char *)who_name(who), .failover_ms = -1, .state = "active",
	};
	long long id;
	int rc = store_cont_outage_add(c->srv->store, &o, &id, err_r);
	free(joined);
	if (rc < 0)
		return -1;
	if (store_cont_outage_get(c->srv->store, tenant, "drill", id, &t->drill) != 1) {
		*err_r = xstrdup("cannot read the new drill back");
		return -1;
	}
	drill_users_load(t, t->drill.users);
	/* Ready: committed, and the users' INBOX views have an archive to read. */
	if (c->srv->archive != NULL && !archive_tenant_has(c->srv->archive, tenant))
		log_warn("continuity_drill_no_archive", "tenant=%s", log_str(tenant));
	t->drill.failover_ms = now_ms() - t0;
	cont_save(c, &t->drill);
	cont_announce(c, tenant, who, "continuity.drill.start", "drill.started", id, NULL,
	    t->drill.users != NULL ? t->drill.users : "all users");
	return 0;
}

int
continuity_drill_stop(struct continuity *c, const char *tenant, const struct principal *who,
    char **err_r)
{
	struct ctenant *t = cont_tenant(c, tenant, 0);
	if (t == NULL || t->drill.id == 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "no drill of tenant '%s' is running", tenant);
		*err_r = buf_steal(&e);
		return -1;
	}
	long long id = t->drill.id;
	t->drill.failback_at = time(NULL);
	t->drill.ended_at = t->drill.failback_at;
	set_str(&t->drill.ended_by, who_name(who));
	set_str(&t->drill.state, "ended");
	cont_save(c, &t->drill);
	store_cont_outage_clear(&t->drill);
	drill_users_clear(t);
	cont_sent_copies(c, tenant, id, 0);
	cont_announce(c, tenant, who, "continuity.drill.end", "drill.ended", id, NULL, NULL);
	if (c->srv->imap != NULL)
		imap_server_kick_tenant(c->srv->imap, tenant);
	return 0;
}

/* ---- route health ------------------------------------------------------- */

static struct croute *
croute_get(struct continuity *c, const char *tenant, const char *route)
{
	for (struct croute *r = c->routes; r != NULL; r = r->next)
		if (strcmp(r->tenant, tenant) == 0 && strcmp(r->route, route) == 0)
			return r;
	struct croute *r = xcalloc(1, sizeof(*r));
	r->tenant = xstrdup(tenant);
	r->route = xstrdup(route);
	r->state = CROUTE_UNKNOWN;
	r->since = time(NULL);
	r->next = c->routes;
	c->routes = r;
	return r;
}

static void
route_went_down(struct continuity *c, struct croute *r)
{
	struct ctenant *t = cont_tenant(c, r->tenant, 1);
	struct buf why = BUF_INIT;
	buf_appendf(&why, "route %s down: %s", r->route, r->last_error ? r->last_error : "-");
	log_warn("route_down", "tenant=%s route=%s failures=%u error=%s", log_str(r->tenant),
	    log_str(r->route), r->failures, log_str(r->last_error ? r->last_error : "-"));
	char *addrs = cont_setting(c, r->tenant, "alert_addresses");
	char *hook = cont_setting(c, r->tenant, "webhook");
	struct alert_event ev = {
		.tenant = r->tenant, .event = "route.down", .route = r->route, .actor = "auto",
		.detail = buf_cstr(&why), .outage_id = t->outage.id,
	};
	alert_send(c->srv, addrs, hook, &ev);
	free(addrs);
	free(hook);
	if (t->state != CONTINUITY_NORMAL)
		t->saw_down = 1;
	if (t->state == CONTINUITY_NORMAL && cont_setting_is(c, r->tenant, "mode", "auto")) {
		char *err = NULL;
		if (cont_begin_outage(c, t, NULL, buf_cstr(&why), &err) < 0) {
			log_error("continuity_start_failed", "tenant=%s error=%s", log_str(r->tenant),
			    log_str(err));
			free(err);
		} else {
			t->saw_down = 1;
		}
	}
	buf_free(&why);
}

static void
route_came_up(struct continuity *c, struct croute *r)
{
	struct ctenant *t = cont_tenant(c, r->tenant, 0);
	log_info("route_up", "tenant=%s route=%s", log_str(r->tenant), log_str(r->route));
	char *addrs = cont_setting(c, r->tenant, "alert_addresses");
	char *hook = cont_setting(c, r->tenant, "webhook");
	struct alert_event ev = {
		.tenant = r->tenant, .event = "route.up", .route = r->route, .actor = "auto",
		.outage_id = t != NULL ? t->outage.id : 0,
	};
	alert_send(c->srv, addrs, hook, &ev);
	free(addrs);
	free(hook);
}

static void
cont_route_result(struct continuity *c, const char *tenant, const char *route, int ok,
    const char *why)
{
	if (c == NULL || tenant == NULL || route == NULL)
		return;
	struct croute *r = croute_get(c, tenant, route);
	unsigned limit = c->srv->cfg->probe_failures > 0 ? (unsigned)c->srv->cfg->probe_failures : 1;
	if (ok) {
		enum croute_state was = r->state;
		r->failures = 0;
		if (was != CROUTE_UP) {
			r->state = CROUTE_UP;
			r->since = time(NULL);
			if (was == CROUTE_DOWN)
				route_came_up(c, r);
		}
		return;
	}
	r->failures++;
	set_str(&r->last_error, why != NULL ? why : "failed");
	if (r->failures >= limit && r->state != CROUTE_DOWN) {
		r->state = CROUTE_DOWN;
		r->since = time(NULL);
		route_went_down(c, r);
	}
}

void
continuity_probe_result(struct continuity *c, const char *tenant, const char *route, int ok,
    const char *why)
{
	cont_route_result(c, tenant, route, ok, why);
}

void
continuity_note_route_result(struct continuity *c, const char *tenant, const char *route,
    int ok, const char *why)
{
	cont_route_result(c, tenant, route, ok, why);
}

/* ---- the tick: automatic failback, end of failback ---------------------- */

/* Every known route of the tenant up for failback_after (counted from the outage start). */
static int
cont_failback_due(struct continuity *c, struct ctenant *t, time_t now)
{
	if (!cont_setting_is(c, t->name, "failback", "auto"))
		return 0;
	if (!t->saw_down && (t->outage.started_by == NULL ||
	    strcmp(t->outage.started_by, "auto") != 0))
		return 0;
	long long after = cont_setting_num(c, t->name, "failback_after");
	size_t n = 0;
	for (struct croute *r = c->routes; r != NULL; r = r->next) {
		if (strcmp(r->tenant, t->name) != 0)
			continue;
		time_t from = r->since > t->since ? r->since : t->since;
		if (r->state != CROUTE_UP || now - from < after)
			return 0;
		n++;
	}
	return n > 0;
}

/* The gauges of /metrics: tenants in continuity, routes down. */
static void
cont_update_metrics(struct continuity *c)
{
	long long tenants = 0, down = 0;
	for (struct ctenant *t = c->tenants; t != NULL; t = t->next)
		tenants += t->state != CONTINUITY_NORMAL;
	for (struct croute *r = c->routes; r != NULL; r = r->next)
		down += r->state == CROUTE_DOWN;
	atomic_store(&c->srv->metrics.continuity_tenants, tenants);
	atomic_store(&c->srv->metrics.continuity_routes_down, down);
}

static void
cont_tick(evutil_socket_t fd, short what, void *arg)
{
	struct continuity *c = arg;
	time_t now = time(NULL);
	cont_flush_delivered(c);
	for (struct ctenant *t = c->tenants; t != NULL; t = t->next) {
		if (t->state == CONTINUITY_ACTIVE && cont_failback_due(c, t, now)) {
			set_str(&t->outage.ended_by, "auto");
			cont_failback(c, t, NULL);
		} else if (t->state == CONTINUITY_FAILING_BACK) {
			cont_check_end(c, t);
		}
	}
	cont_update_metrics(c);
}

/* ---- start, stop -------------------------------------------------------- */

static enum continuity_state
state_parse(const char *s)
{
	if (s != NULL && strcmp(s, "active") == 0)
		return CONTINUITY_ACTIVE;
	if (s != NULL && strcmp(s, "failing_back") == 0)
		return CONTINUITY_FAILING_BACK;
	return CONTINUITY_NORMAL;
}

/* Outages and drills that had not ended when the daemon stopped. */
static int
cont_resume(struct continuity *c, char **err_r)
{
	struct store_cont_outage *list = NULL;
	size_t n = 0;
	if (store_cont_outages_open(c->srv->store, &list, &n) < 0) {
		*err_r = xstrdup("continuity: cannot read the outages");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct ctenant *t = cont_tenant(c, list[i].tenant, 1);
		if (strcmp(list[i].kind, "drill") == 0) {
			store_cont_outage_clear(&t->drill);
			t->drill = list[i];
			drill_users_load(t, t->drill.users);
		} else {
			store_cont_outage_clear(&t->outage);
			t->outage = list[i];
			t->state = state_parse(t->outage.state);
			if (t->state == CONTINUITY_NORMAL)
				t->state = CONTINUITY_ACTIVE;
		}
		memset(&list[i], 0, sizeof(list[i]));
		log_info("continuity_resumed", "tenant=%s kind=%s id=%lld state=%s",
		    log_str(t->name), t->drill.id != 0 && t->outage.id == 0 ? "drill" : "outage",
		    t->outage.id != 0 ? t->outage.id : t->drill.id, cont_state_name(t->state));
	}
	store_cont_outages_free(list, n);
	return 0;
}

int
continuity_start(struct server *srv, struct continuity **c_r, char **err_r)
{
	struct continuity *c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	if (cont_resume(c, err_r) < 0) {
		continuity_stop(&c);
		return -1;
	}
	c->tick = event_new(srv->base, -1, EV_PERSIST, cont_tick, c);
	struct timeval tv = { 1, 0 };
	if (c->tick == NULL || event_add(c->tick, &tv) < 0) {
		continuity_stop(&c);
		*err_r = xstrdup("continuity: cannot create the timer");
		return -1;
	}
	*c_r = c;
	/* Entries recovered before we existed; sent copies a crash interrupted. */
	if (srv->queue != NULL)
		queue_foreach(srv->queue, cont_note_queued_cb, c);
	for (struct ctenant *t = c->tenants; t != NULL; t = t->next) {
		if (t->state != CONTINUITY_FAILING_BACK)
			continue;
		/* The replay goes on in arrival order, not in recovery order. */
		if (srv->sched != NULL)
			scheduler_release_tenant(srv->sched, t->name);
		cont_sent_copies(c, t->name, t->outage.id, 1);
	}
	log_info("continuity_loaded", "tenants=%s", c->tenants != NULL ? "resumed" : "none");
	return 0;
}

void
continuity_stop(struct continuity **cp)
{
	struct continuity *c = *cp;
	if (c == NULL)
		return;
	if (c->tick != NULL)
		event_free(c->tick);
	cont_flush_delivered(c);
	free(c->delivered);
	free(c->msgid);
	while (c->tenants != NULL) {
		struct ctenant *t = c->tenants;
		c->tenants = t->next;
		ctenant_free(t);
	}
	while (c->routes != NULL) {
		struct croute *r = c->routes;
		c->routes = r->next;
		free(r->tenant);
		free(r->route);
		free(r->last_error);
		free(r);
	}
	free(c);
	*cp = NULL;
}
