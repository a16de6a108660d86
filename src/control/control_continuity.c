/*
 * control_continuity — the control commands of continuity (continuity/),
 * dispatched by control_handlers.c.  Each one reads its arguments, calls
 * the continuity module and hands back its JSON:
 *
 *   continuity.status        {tenant}                      → status
 *   continuity.start         {tenant, reason?}             → status      (mutating)
 *   continuity.stop          {tenant}                      → status      (mutating; failback)
 *   continuity.report        {tenant, id?}                 → outage report
 *   continuity.settings      {tenant}                      → settings (imap_password "set")
 *   continuity.set           {tenant, key, value}          → settings    (mutating)
 *   continuity.drill.start   {tenant, users?: "a@x,b@x"}   → status      (mutating)
 *   continuity.drill.stop    {tenant}                      → status      (mutating)
 *   continuity.drill.report  {tenant, id?}                 → drill report
 *   continuity.probe         {}                            → {probing}   (mutating)
 *
 * Authorisation is control_authz.c's (reads: auditors of the tenant;
 * changes: its admins; probe: operators).  The dispatcher audits the
 * mutating ones; the continuity module records the transitions they cause
 * and sends the alerts.
 */
#include "control/control_handlers.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "continuity/continuity.h"
#include "continuity/probe.h"
#include "control/control_args.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "server.h"

/* Users one drill may name. */
#define CCONT_MAX_USERS 10000

static int
ccont_err(char **err_r, const char *msg)
{
	*err_r = xstrdup(msg);
	return -1;
}

/* The tenant argument, with continuity running; NULL with *err_r. */
static char *
ccont_tenant(struct server *srv, json_t *args, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant != NULL && srv->continuity == NULL) {
		free(tenant);
		ccont_err(err_r, "continuity is not running");
		return NULL;
	}
	return tenant;
}

/* The status of the tenant as the result; -1 if there is none. */
static int
ccont_status_result(struct server *srv, const char *tenant, json_t **result_r, char **err_r)
{
	*result_r = continuity_status_json(srv->continuity, tenant);
	if (*result_r == NULL)
		return ccont_err(err_r, "continuity status unavailable");
	return 0;
}

/* Takes ownership of *err (set by a continuity function, maybe NULL). */
static int
ccont_failed(char **err_r, char *err, const char *fallback)
{
	*err_r = err != NULL ? err : xstrdup(fallback);
	return -1;
}

static int
control_continuity_status(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	char *tenant = ccont_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	int rc = ccont_status_result(srv, tenant, result_r, err_r);
	free(tenant);
	return rc;
}

static int
control_continuity_start(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = ccont_tenant(srv, args, err_r), *err = NULL;
	if (tenant == NULL)
		return -1;
	int rc = continuity_admin_start(srv->continuity, tenant, who,
	    control_arg_opt(args, "reason"), &err);
	if (rc < 0)
		rc = ccont_failed(err_r, err, "continuity could not start");
	else
		rc = ccont_status_result(srv, tenant, result_r, err_r);
	free(tenant);
	return rc;
}

static int
control_continuity_stop(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = ccont_tenant(srv, args, err_r), *err = NULL;
	if (tenant == NULL)
		return -1;
	int rc = continuity_admin_stop(srv->continuity, tenant, who, &err);
	if (rc < 0)
		rc = ccont_failed(err_r, err, "continuity could not stop");
	else
		rc = ccont_status_result(srv, tenant, result_r, err_r);
	free(tenant);
	return rc;
}

typedef int ccont_report_fn(struct continuity *c, const char *tenant, long long id,
    json_t **report_r, char **err_r);

static int
ccont_report(struct server *srv, json_t *args, ccont_report_fn *fn, json_t **result_r,
    char **err_r)
{
	char *tenant = ccont_tenant(srv, args, err_r), *err = NULL;
	long long id;
	if (tenant == NULL)
		return -1;
	if (control_arg_int(args, "id", 0, 0, LLONG_MAX, &id, err_r) < 0) {
		free(tenant);
		return -1;
	}
	json_t *report = NULL;
	int rc = fn(srv->continuity, tenant, id, &report, &err);
	if (rc < 0)
		rc = ccont_failed(err_r, err, "no report");
	else if (report == NULL)
		rc = ccont_err(err_r, "no report");
	else
		*result_r = report;
	free(tenant);
	return rc;
}

static int
control_continuity_report(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	return ccont_report(srv, args, continuity_report, result_r, err_r);
}

static int
control_continuity_drill_report(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	return ccont_report(srv, args, continuity_drill_report, result_r, err_r);
}

static int
control_continuity_settings(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	char *tenant = ccont_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	*result_r = continuity_settings_json(srv->continuity, tenant);
	free(tenant);
	return *result_r != NULL ? 0 : ccont_err(err_r, "continuity settings unavailable");
}

static int
control_continuity_set(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	char *tenant = ccont_tenant(srv, args, err_r), *err = NULL;
	const char *key = tenant != NULL ? control_arg(args, "key", err_r) : NULL;
	/* Not control_arg(): "" is a value, it clears a text setting. */
	const char *value = json_string_value(json_object_get(args, "value"));
	if (key != NULL && value == NULL)
		ccont_err(err_r, "missing argument 'value'");
	if (key == NULL || value == NULL) {
		free(tenant);
		return -1;
	}
	int rc = continuity_setting_set(srv->continuity, tenant, key, value, &err);
	if (rc < 0) {
		rc = ccont_failed(err_r, err, "bad setting");
	} else {
		*result_r = continuity_settings_json(srv->continuity, tenant);
	}
	free(tenant);
	return rc;
}

static void
ccont_users_free(char **users, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(users[i]);
	free(users);
}

/* Appends the addresses of "a@x, b@x" (empty items skipped). */
static int
ccont_users_split(const char *list, char ***users, size_t *n, char **err_r)
{
	const char *p = list;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char *u = str_trim(xstrndup(p, len));
		if (u[0] != '\0' && strchr(u, '@') == NULL) {
			struct buf e = BUF_INIT;
			buf_appendf(&e, "bad user address '%s'", u);
			free(u);
			*err_r = buf_steal(&e);
			return -1;
		}
		if (u[0] != '\0' && *n >= CCONT_MAX_USERS) {
			free(u);
			return ccont_err(err_r, "too many users for one drill");
		}
		if (u[0] != '\0') {
			*users = xrealloc(*users, (*n + 1) * sizeof(**users));
			(*users)[(*n)++] = str_lower(u);
		} else {
			free(u);
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* args.users: "a@x,b@x" or ["a@x", ...]; none: every user of the tenant. */
static int
ccont_users(json_t *args, char ***users_r, size_t *n_r, char **err_r)
{
	json_t *v = json_object_get(args, "users"), *item;
	size_t i;
	*users_r = NULL;
	*n_r = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v))
		return ccont_users_split(json_string_value(v), users_r, n_r, err_r);
	if (!json_is_array(v))
		return ccont_err(err_r, "argument 'users' must be a list of addresses");
	json_array_foreach(v, i, item) {
		if (!json_is_string(item))
			return ccont_err(err_r, "argument 'users' must be a list of addresses");
		if (ccont_users_split(json_string_value(item), users_r, n_r, err_r) < 0)
			return -1;
	}
	return 0;
}

static int
control_continuity_drill_start(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = ccont_tenant(srv, args, err_r), *err = NULL, **users = NULL;
	size_t n = 0;
	if (tenant == NULL)
		return -1;
	int rc = ccont_users(args, &users, &n, err_r);
	if (rc == 0 && continuity_drill_start(srv->continuity, tenant,
	    (const char *const *)users, n, who, &err) < 0)
		rc = ccont_failed(err_r, err, "the drill could not start");
	if (rc == 0)
		rc = ccont_status_result(srv, tenant, result_r, err_r);
	ccont_users_free(users, n);
	free(tenant);
	return rc;
}

static int
control_continuity_drill_stop(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = ccont_tenant(srv, args, err_r), *err = NULL;
	if (tenant == NULL)
		return -1;
	int rc = continuity_drill_stop(srv->continuity, tenant, who, &err);
	if (rc < 0)
		rc = ccont_failed(err_r, err, "the drill could not stop");
	else
		rc = ccont_status_result(srv, tenant, result_r, err_r);
	free(tenant);
	return rc;
}

static int
control_continuity_probe(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	(void)args;
	if (srv->probe == NULL)
		return ccont_err(err_r, "route probes are not running");
	probe_now(srv->probe);
	*result_r = json_pack("{s:b}", "probing", 1);
	return 0;
}

const struct control_command control_continuity_commands[] = {
	{ "continuity.status", 0, control_continuity_status },
	{ "continuity.start", 1, control_continuity_start },
	{ "continuity.stop", 1, control_continuity_stop },
	{ "continuity.report", 0, control_continuity_report },
	{ "continuity.settings", 0, control_continuity_settings },
	{ "continuity.set", 1, control_continuity_set },
	{ "continuity.drill.start", 1, control_continuity_drill_start },
	{ "continuity.drill.stop", 1, control_continuity_drill_stop },
	{ "continuity.drill.report", 0, control_continuity_drill_report },
	{ "continuity.probe", 1, control_continuity_probe },
	{ NULL, 0, NULL },
};
