/*
 * control_archive_retention — control commands of the archive's retention
 * policy, legal holds, cases and four-eyes approvals, dispatched by
 * control_handlers.c (semantics: archive/archive_retention.h):
 *
 *   archive.retention.show        {tenant}                          auditor
 *   archive.retention.set         {tenant, default_days}            admin
 *   archive.retention.rule.add    {tenant, kind, match, days}       admin
 *   archive.retention.rule.remove {tenant, id}                      admin
 *   archive.retention.lock        {tenant}                          admin
 *   archive.settings.set          {tenant, key, value}              admin
 *   archive.case.add              {tenant, name, description?}      admin
 *   archive.case.list             {tenant}                          auditor
 *   archive.case.close|delete     {tenant, name}                    admin
 *   archive.hold.add              {tenant, name, case?, mailbox?, query?, from?, to?}  admin
 *   archive.hold.list             {tenant}                          auditor
 *   archive.hold.release          {tenant, name}                    admin
 *   archive.approval.list         {tenant, pending?}                auditor
 *   archive.approval.approve|reject {tenant, id}                    admin
 *
 * Days: an integer (-1 for ever) or a string "forever", "N", "Nd", "Nw",
 * "Ny" (365 days).  Hold dates: YYYY-MM-DD (UTC); from inclusive, to
 * exclusive (like the query language's after:/before:).  A change that
 * went to four-eyes approval answers {"pending_approval": ID, "action": ...}.
 * Results are JSON objects; lists are arrays (paged by the API).  The
 * requester is who->actor; roles are checked by control_authz.c.
 */
#include "control/control_handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"
#include "archive/archive_retention.h"
#include "auth/principal.h"
#include "control/control_args.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "server.h"

static void
cret_err(char **err_r, const char *fmt, const char *a)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a);
	free(*err_r);
	*err_r = buf_steal(&e);
}

static const char *
cret_actor(const struct principal *who)
{
	return who != NULL && who->actor != NULL ? who->actor : "unknown";
}

/* "forever", "N", "Nd", "Nw", "Ny" → days (-1 for ever).  0 / -1. */
static int
cret_days_str(const char *s, long long *days_r)
{
	if (strcmp(s, "forever") == 0 || strcmp(s, "-1") == 0) {
		*days_r = -1;
		return 0;
	}
	char *end = NULL;
	long long n = strtoll(s, &end, 10);
	if (end == s || n < 0 || n > ARCHIVE_RETENTION_MAX_DAYS)
		return -1;
	long long mult = 1;
	if (*end == 'w')
		mult = 7;
	else if (*end == 'y')
		mult = 365;
	else if (*end != 'd' && *end != '\0')
		return -1;
	if (*end != '\0' && end[1] != '\0')
		return -1;
	*days_r = n * mult;
	return 0;
}

static int
cret_days(json_t *args, const char *key, long long *days_r, char **err_r)
{
	json_t *v = json_object_get(args, key);
	if (json_is_integer(v)) {
		*days_r = (long long)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && cret_days_str(json_string_value(v), days_r) == 0)
		return 0;
	cret_err(err_r, v == NULL ? "missing argument '%s'" :
	    "argument '%s' must be days: a number, Nd, Nw, Ny or forever", key);
	return -1;
}

/* YYYY-MM-DD → unix seconds (UTC midnight); absent → -1.  0 / -1. */
static int
cret_date(json_t *args, const char *key, long long *t_r, char **err_r)
{
	const char *s = control_arg_opt(args, key);
	int y, m, d, n = 0;
	*t_r = -1;
	if (s == NULL)
		return 0;
	if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
	    m < 1 || m > 12 || d < 1 || d > 31 || y < 1970) {
		cret_err(err_r, "bad date '%s' (YYYY-MM-DD)", s);
		return -1;
	}
	struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d };
	time_t t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d) {
		cret_err(err_r, "bad date '%s' (YYYY-MM-DD)", s);
		return -1;
	}
	*t_r = (long long)t;
	return 0;
}

/* The answer of a change: *done (stolen) when done, pending_approval when pending. */
static int
cret_answer(int rc, long long approval, const char *action, json_t *done, json_t **result_r)
{
	if (rc < 0) {
		json_decref(done);
		return -1;
	}
	if (rc == 1) {
		json_decref(done);
		*result_r = json_pack("{s:I, s:s}", "pending_approval", (json_int_t)approval,
		    "action", action);
		return 0;
	}
	*result_r = done;
	return 0;
}

static int
control_retention_show(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	*result_r = archive_retention_policy_json(srv->archive, tenant, err_r);
	free(tenant);
	return *result_r != NULL ? 0 : -1;
}

static int
control_retention_set(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long days, approval = 0;
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL || cret_days(args, "default_days", &days, err_r) < 0) {
		free(tenant);
		return -1;
	}
	int rc = archive_retention_set_default(srv->archive, tenant, days, cret_actor(who),
	    &approval, err_r);
	free(tenant);
	return cret_answer(rc, approval, "retention.set",
	    json_pack("{s:I}", "default_days", (json_int_t)days), result_r);
}

/* The stored rule `id` (its match normalised) from the policy; NULL if gone. */
static json_t *
cret_rule_json(struct server *srv, const char *tenant, long long id)
{
	char *err = NULL;
	json_t *pol = archive_retention_policy_json(srv->archive, tenant, &err);
	json_t *rule = NULL, *r;
	size_t i;
	free(err);
	json_array_foreach(json_object_get(pol, "rules"), i, r)
		if (json_integer_value(json_object_get(r, "id")) == id)
			rule = json_incref(r);
	json_decref(pol);
	return rule;
}

static int
control_retention_rule_add(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long days, id = 0;
	char *tenant = control_arg_tenant(srv, args, err_r);
	const char *kind = tenant ? control_arg(args, "kind", err_r) : NULL;
	const char *match = kind ? control_arg(args, "match", err_r) : NULL;
	if (match == NULL || cret_days(args, "days", &days, err_r) < 0) {
		free(tenant);
		return -1;
	}
	int rc = archive_retention_rule_add(srv->archive, tenant, kind, match, days,
	    cret_actor(who), &id, err_r);
	if (rc < 0) {
		free(tenant);
		return -1;
	}
	*result_r = cret_rule_json(srv, tenant, id);
	free(tenant);
	if (*result_r == NULL) {
		*err_r = xstrdup("the new rule was removed meanwhile");
		return -1;
	}
	return 0;
}

static int
control_retention_rule_remove(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long id, approval = 0;
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL || control_arg_int(args, "id", -1, 1, (1LL << 62), &id, err_r) < 0 ||
	    id < 0) {
		if (tenant != NULL && *err_r == NULL)
			*err_r = xstrdup("missing argument 'id'");
		free(tenant);
		return -1;
	}
	int rc = archive_retention_rule_remove(srv->archive, tenant, id, cret_actor(who),
	    &approval, err_r);
	free(tenant);
	return cret_answer(rc, approval, "retention.rule.remove",
	    json_pack("{s:I}", "removed", (json_int_t)id), result_r);
}

static int
control_retention_lock(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	int rc = archive_retention_lock(srv->archive, tenant, cret_actor(who), err_r);
	if (rc == 0)
		*result_r = archive_retention_policy_json(srv->archive, tenant, err_r);
	free(tenant);
	return rc == 0 && *result_r != NULL ? 0 : -1;
}

static int
control_archive_settings_set(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long approval = 0;
	int value;
	char *tenant = control_arg_tenant(srv, args, err_r);
	const char *key = tenant ? control_arg(args, "key", err_r) : NULL;
	json_t *v = json_object_get(args, "value");
	if (key == NULL) {
		free(tenant);
		return -1;
	}
	if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
		value = (int)json_integer_value(v);
	} else if (v == NULL || control_arg_bool(args, "value", 0, &value, err_r) < 0) {
		if (*err_r == NULL)
			*err_r = xstrdup("missing argument 'value' (on or off)");
		free(tenant);
		return -1;
	}
	int rc = archive_retention_setting_set(srv->archive, tenant, key, value, cret_actor(who),
	    &approval, err_r);
	free(tenant);
	return cret_answer(rc, approval, "settings.set", json_pack("{s:b}", key, value), result_r);
}

static int
control_case_add(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long id = 0;
	char *tenant = control_arg_tenant(srv, args, err_r);
	const char *name = tenant ? control_arg(args, "name", err_r) : NULL;
	if (name == NULL) {
		free(tenant);
		return -1;
	}
	int rc = archive_retention_case_add(srv->archive, tenant, name,
	    control_arg_opt(args, "description"), cret_actor(who), &id, err_r);
	free(tenant);
	if (rc < 0)
		return -1;
	*result_r = json_pack("{s:I, s:s}", "id", (json_int_t)id, "name", name);
	return 0;
}

static int
control_case_list(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	*result_r = archive_retention_case_list(srv->archive, tenant, err_r);
	free(tenant);
	return *result_r != NULL ? 0 : -1;
}

static int
control_case_close(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	const char *name = tenant ? control_arg(args, "name", err_r) : NULL;
	if (name == NULL) {
		free(tenant);
		return -1;
	}
	int rc = archive_retention_case_close(srv->archive, tenant, name, cret_actor(who), err_r);
	free(tenant);
	if (rc < 0)
		return -1;
	*result_r = json_pack("{s:s}", "closed", name);
	return 0;
}

static int
control_case_delete(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long approval = 0;
	char *tenant = control_arg_tenant(srv, args, err_r);
	const char *name = tenant ? control_arg(args, "name", err_r) : NULL;
	if (name == NULL) {
		free(tenant);
		return -1;
	}
	int rc = archive_retention_case_delete(srv->archive, tenant, name, cret_actor(who),
	    &approval, err_r);
	free(tenant);
	return cret_answer(rc, approval, "case.delete", json_pack("{s:s}", "deleted", name),
	    result_r);
}

static int
control_hold_add(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long id = 0;
	struct archive_hold_spec h = { .date_from = -1, .date_to = -1 };
	char *tenant = control_arg_tenant(srv, args, err_r);
	h.name = tenant ? control_arg(args, "name", err_r) : NULL;
	if (h.name == NULL || cret_date(args, "from", &h.date_from, err_r) < 0 ||
	    cret_date(args, "to", &h.date_to, err_r) < 0) {
		free(tenant);
		return -1;
	}
	h.case_name = control_arg_opt(args, "case");
	h.mailbox = control_arg_opt(args, "mailbox");
	h.query = control_arg_opt(args, "query");
	int rc = archive_retention_hold_add(srv->archive, tenant, &h, cret_actor(who), &id, err_r);
	free(tenant);
	if (rc < 0)
		return -1;
	*result_r = json_pack("{s:I, s:s}", "id", (json_int_t)id, "name", h.name);
	return 0;
}

static int
control_hold_list(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	*result_r = archive_retention_hold_list(srv->archive, tenant, err_r);
	free(tenant);
	return *result_r != NULL ? 0 : -1;
}

static int
control_hold_release(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long approval = 0;
	char *tenant = control_arg_tenant(srv, args, err_r);
	const char *name = tenant ? control_arg(args, "name", err_r) : NULL;
	if (name == NULL) {
		free(tenant);
		return -1;
	}
	int rc = archive_retention_hold_release(srv->archive, tenant, name, cret_actor(who),
	    &approval, err_r);
	free(tenant);
	return cret_answer(rc, approval, "hold.release", json_pack("{s:s}", "released", name),
	    result_r);
}

static int
control_approval_list(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	int pending;
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL || control_arg_bool(args, "pending", 0, &pending, err_r) < 0) {
		free(tenant);
		return -1;
	}
	*result_r = archive_retention_approval_list(srv->archive, tenant, pending, err_r);
	free(tenant);
	return *result_r != NULL ? 0 : -1;
}

/* The tenant and the approval id of approve/reject (caller frees the tenant). */
static char *
cret_approval_args(struct server *srv, json_t *args, long long *id_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return NULL;
	if (control_arg_int(args, "id", -1, 1, (1LL << 62), id_r, err_r) < 0 || *id_r < 0) {
		if (*err_r == NULL)
			*err_r = xstrdup("missing argument 'id'");
		free(tenant);
		return NULL;
	}
	return tenant;
}

static int
control_approval_approve(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long id;
	json_t *approval = NULL;
	char *tenant = cret_approval_args(srv, args, &id, err_r);
	if (tenant == NULL)
		return -1;
	int rc = archive_retention_approve(srv->archive, tenant, id, cret_actor(who), &approval,
	    err_r);
	free(tenant);
	if (rc < 0)
		return -1;
	*result_r = approval != NULL ? approval : json_pack("{s:I}", "id", (json_int_t)id);
	return 0;
}

static int
control_approval_reject(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	long long id;
	char *tenant = cret_approval_args(srv, args, &id, err_r);
	if (tenant == NULL)
		return -1;
	int rc = archive_retention_reject(srv->archive, tenant, id, cret_actor(who), err_r);
	free(tenant);
	if (rc < 0)
		return -1;
	*result_r = json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "rejected");
	return 0;
}

const struct control_command control_archive_retention_commands[] = {
	{ "archive.retention.show", 0, control_retention_show },
	{ "archive.retention.set", 1, control_retention_set },
	{ "archive.retention.rule.add", 1, control_retention_rule_add },
	{ "archive.retention.rule.remove", 1, control_retention_rule_remove },
	{ "archive.retention.lock", 1, control_retention_lock },
	{ "archive.settings.set", 1, control_archive_settings_set },
	{ "archive.case.add", 1, control_case_add },
	{ "archive.case.list", 0, control_case_list },
	{ "archive.case.close", 1, control_case_close },
	{ "archive.case.delete", 1, control_case_delete },
	{ "archive.hold.add", 1, control_hold_add },
	{ "archive.hold.list", 0, control_hold_list },
	{ "archive.hold.release", 1, control_hold_release },
	{ "archive.approval.list", 0, control_approval_list },
	{ "archive.approval.approve", 1, control_approval_approve },
	{ "archive.approval.reject", 1, control_approval_reject },
	{ NULL, 0, NULL },
};
