/*
 * continuity_report.c — failback and drill reports, and the status of a
 * tenant, as JSON (shapes in continuity.h).
 *
 * Every number is counted from the ledger when the report is asked for;
 * "reconciles" compares them (accepted == delivered + pending + failed,
 * delivered including skipped), it is never assumed.  Drill reports also
 * say what each user could see: the message count of their INBOX view
 * (cmbox) and how many messages they sent.
 */
#include "continuity/continuity.h"
#include "continuity/continuity_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "continuity/cmbox.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "server.h"
#include "store/store.h"

#define REPORT_LIST_MAX 100

static json_t *
time_or_null(long long t)
{
	return t > 0 ? json_integer(t) : json_null();
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

json_t *
cont_outage_brief(const struct store_cont_outage *o)
{
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(o->id));
	json_object_set_new(j, "kind", str_or_null(o->kind));
	json_object_set_new(j, "state", str_or_null(o->state));
	json_object_set_new(j, "users", str_or_null(o->users));
	json_object_set_new(j, "started_at", time_or_null(o->started_at));
	json_object_set_new(j, "started_by", str_or_null(o->started_by));
	json_object_set_new(j, "reason", str_or_null(o->reason));
	json_object_set_new(j, "failback_at", time_or_null(o->failback_at));
	json_object_set_new(j, "ended_at", time_or_null(o->ended_at));
	return j;
}

static void
report_lists(struct continuity *c, long long id, json_t *r)
{
	struct store_cont_ledger *rows = NULL;
	size_t n = 0;
	json_t *fails = json_array(), *pend = json_array();
	if (store_cont_ledger_list(c->srv->store, id, "failed", NULL, REPORT_LIST_MAX, &rows,
	    &n) == 0)
		for (size_t i = 0; i < n; i++) {
			json_t *f = json_object();
			json_object_set_new(f, "queue_id", json_string(rows[i].queue_id));
			json_object_set_new(f, "rcpt", json_string(rows[i].rcpt));
			json_object_set_new(f, "reason", str_or_null(rows[i].reason));
			json_array_append_new(fails, f);
		}
	store_cont_ledger_free(rows, n);
	if (store_cont_ledger_list(c->srv->store, id, "pending", NULL, REPORT_LIST_MAX, &rows,
	    &n) == 0)
		for (size_t i = 0; i < n; i++) {
			json_t *p = json_object();
			json_object_set_new(p, "queue_id", json_string(rows[i].queue_id));
			json_object_set_new(p, "rcpt", json_string(rows[i].rcpt));
			json_object_set_new(p, "kind", json_string(rows[i].kind));
			json_array_append_new(pend, p);
		}
	store_cont_ledger_free(rows, n);
	json_object_set_new(r, "failures", fails);
	json_object_set_new(r, "pending_list", pend);
}

/* Messages in the user's INBOX view now; -1 when it cannot be read. */
static long long
user_inbox_count(struct continuity *c, const char *tenant, const char *address)
{
	struct store_user u;
	if (c->srv->cmbox == NULL || store_user_get(c->srv->store, address, &u) != 1)
		return -1;
	char **aliases = NULL;
	size_t nal = 0;
	if (store_user_aliases(c->srv->store, u.id, &aliases, &nal) < 0) {
		aliases = NULL;
		nal = 0;
	}
	const char **addrs = xcalloc(nal + 1, sizeof(*addrs));
	addrs[0] = u.address;
	for (size_t i = 0; i < nal; i++)
		addrs[i + 1] = aliases[i];
	struct cmbox_user cu = {
		.tenant = tenant, .address = u.address, .addresses = addrs, .naddresses = nal + 1,
		.window_days = continuity_window_days(c, tenant),
	};
	struct cmbox_snapshot snap;
	char *err = NULL;
	long long count = -1;
	if (cmbox_snapshot(c->srv->cmbox, &cu, "INBOX", &snap, &err) == 1) {
		count = (long long)snap.n;
		cmbox_snapshot_free(&snap);
	} else {
		log_warn("continuity_report_inbox", "tenant=%s user=%s error=%s", log_str(tenant),
		    log_str(address), log_str(err != NULL ? err : "no INBOX"));
	}
	free(err);
	free(addrs);
	store_strings_free(aliases, nal);
	store_user_clear(&u);
	return count;
}

/* The addresses a report lists: a drill's users (all: the tenant's), else who signed in. */
static void
report_addresses(struct continuity *c, const struct store_cont_outage *o,
    const struct store_cont_signin *sg, size_t nsg, char ***list_r, size_t *n_r)
{
	size_t n = 0, cap = 16;
	char **list = xcalloc(cap, sizeof(*list));
	int drill = strcmp(o->kind, "drill") == 0;
	if (drill && o->users != NULL && *o->users != '\0') {
		char *copy = xstrdup(o->users), *save = NULL;
		for (char *a = strtok_r(copy, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save)) {
			if (n == cap)
				list = xrealloc(list, (cap *= 2) * sizeof(*list));
			list[n++] = xstrdup(a);
		}
		free(copy);
	} else if (drill) {
		struct store_user *users = NULL;
		size_t nu = 0;
		if (store_user_list(c->srv->store, o->tenant, &users, &nu) == 0) {
			for (size_t i = 0; i < nu; i++) {
				if (strcmp(users[i].status, "active") != 0)
					continue;
				if (n == cap)
					list = xrealloc(list, (cap *= 2) * sizeof(*list));
				list[n++] = xstrdup(users[i].address);
			}
			store_users_free(users, nu);
		}
	} else {
		for (size_t i = 0; i < nsg; i++) {
			int seen = 0;
			for (size_t k = 0; k < n && !seen; k++)
				seen = strcasecmp(list[k], sg[i].address) == 0;
			if (seen)
				continue;
			if (n == cap)
				list = xrealloc(list, (cap *= 2) * sizeof(*list));
			list[n++] = xstrdup(sg[i].address);
		}
	}
	*list_r = list;
	*n_r = n;
}

static void
report_users(struct continuity *c, const struct store_cont_outage *o, json_t *r)
{
	struct store_cont_signin *sg = NULL;
	struct store_cont_ledger *sent = NULL;
	size_t nsg = 0, nsent = 0, n = 0;
	char **addrs = NULL;
	if (store_cont_signins(c->srv->store, o->id, &sg, &nsg) < 0)
		nsg = 0;
	if (store_cont_ledger_list(c->srv->store, o->id, NULL, "sent", 0, &sent, &nsent) < 0)
		nsent = 0;
	report_addresses(c, o, sg, nsg, &addrs, &n);
	json_t *users = json_array();
	for (size_t i = 0; i < n; i++) {
		long long signins = 0, nsent_user = 0;
		for (size_t k = 0; k < nsg; k++)
			if (strcasecmp(sg[k].address, addrs[i]) == 0)
				signins += sg[k].count;
		for (size_t k = 0; k < nsent; k++)
			if (strcasecmp(sent[k].rcpt, addrs[i]) == 0)
				nsent_user++;
		json_t *u = json_object();
		json_object_set_new(u, "address", json_string(addrs[i]));
		json_object_set_new(u, "signed_in", json_boolean(signins > 0));
		json_object_set_new(u, "signins", json_integer(signins));
		long long inbox = user_inbox_count(c, o->tenant, addrs[i]);
		json_object_set_new(u, "inbox", inbox >= 0 ? json_integer(inbox) : json_null());
		json_object_set_new(u, "sent", json_integer(nsent_user));
		json_array_append_new(users, u);
		free(addrs[i]);
	}
	free(addrs);
	store_cont_signins_free(sg, nsg);
	store_cont_ledger_free(sent, nsent);
	json_object_set_new(r, "users", users);
}

json_t *
cont_report_json(struct continuity *c, const struct store_cont_outage *o)
{
	struct store_cont_counts n;
	if (store_cont_ledger_counts(c->srv->store, o->id, &n) < 0)
		return NULL;
	json_t *r = cont_outage_brief(o);
	json_object_set_new(r, "tenant", json_string(o->tenant));
	json_object_set_new(r, "time_to_failover_ms",
	    o->failover_ms >= 0 ? json_integer(o->failover_ms) : json_null());
	long long delivered = n.delivered + n.skipped;
	json_object_set_new(r, "accepted", json_integer(n.accepted));
	json_object_set_new(r, "delivered", json_integer(delivered));
	json_object_set_new(r, "skipped", json_integer(n.skipped));
	json_object_set_new(r, "pending", json_integer(n.pending));
	json_object_set_new(r, "failed", json_integer(n.failed));
	json_object_set_new(r, "reconciles",
	    json_boolean(n.accepted == delivered + n.pending + n.failed));
	report_lists(c, o->id, r);
	report_users(c, o, r);
	return r;
}

static int
report_kind(struct continuity *c, const char *tenant, const char *kind, long long id,
    json_t **report_r, char **err_r)
{
	struct store_cont_outage o;
	int rc = store_cont_outage_get(c->srv->store, tenant, kind, id, &o);
	if (rc != 1) {
		struct buf e = BUF_INIT;
		if (rc < 0)
			buf_appendf(&e, "cannot read the %ss of tenant '%s'", kind, tenant);
		else if (id > 0)
			buf_appendf(&e, "tenant '%s' has no %s %lld", tenant, kind, id);
		else
			buf_appendf(&e, "tenant '%s' has had no %s", tenant, kind);
		*err_r = buf_steal(&e);
		return -1;
	}
	*report_r = cont_report_json(c, &o);
	store_cont_outage_clear(&o);
	if (*report_r == NULL) {
		*err_r = xstrdup("cannot read the ledger");
		return -1;
	}
	return 0;
}

int
continuity_report(struct continuity *c, const char *tenant, long long outage_id,
    json_t **report_r, char **err_r)
{
	return report_kind(c, tenant, "outage", outage_id, report_r, err_r);
}

int
continuity_drill_report(struct continuity *c, const char *tenant, long long drill_id,
    json_t **report_r, char **err_r)
{
	return report_kind(c, tenant, "drill", drill_id, report_r, err_r);
}

static const char *
route_state_name(enum croute_state s)
{
	return s == CROUTE_UP ? "up" : s == CROUTE_DOWN ? "down" : "unknown";
}

json_t *
continuity_status_json(struct continuity *c, const char *tenant)
{
	struct ctenant *t = cont_tenant(c, tenant, 0);
	json_t *j = json_object();
	json_object_set_new(j, "tenant", json_string(tenant));
	json_object_set_new(j, "state", json_string(cont_state_name(t != NULL ? t->state :
	    CONTINUITY_NORMAL)));
	json_object_set_new(j, "since", t != NULL ? json_integer(t->since) : json_null());
	json_object_set_new(j, "outage_id", t != NULL && t->outage.id != 0 ?
	    json_integer(t->outage.id) : json_null());
	json_object_set_new(j, "drill", t != NULL && t->drill.id != 0 ?
	    cont_outage_brief(&t->drill) : json_null());
	json_t *routes = json_array();
	for (struct croute *r = c->routes; r != NULL; r = r->next) {
		if (strcmp(r->tenant, tenant) != 0)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "route", json_string(r->route));
		json_object_set_new(o, "state", json_string(route_state_name(r->state)));
		json_object_set_new(o, "failures", json_integer(r->failures));
		json_object_set_new(o, "since", json_integer(r->since));
		json_object_set_new(o, "last_error", str_or_null(r->last_error));
		json_array_append_new(routes, o);
	}
	json_object_set_new(j, "routes", routes);
	json_object_set_new(j, "settings", continuity_settings_json(c, tenant));
	return j;
}
