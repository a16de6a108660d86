/*
 * control_directory — control commands for directory sync, dispatched by
 * control_handlers.c:
 *
 *   directory.set    {tenant, url, base_dn, bind_dn, bind_password?, user_filter?,
 *                     group_filter?, interval?, starttls?}       (mutating)
 *   directory.show   {tenant}                 settings, password masked
 *   directory.sync   {tenant}                 starts a sync → {job}  (mutating)
 *   directory.job    {tenant, id}             {state: running | done, result}
 *   directory.login  {tenant, address, password}   LDAP bind check → {job}
 *
 * The LDAP work is asynchronous (worker pool): a command that needs it
 * returns a job id at once and the caller polls "directory.job".
 * directory.login is not "mutating" (its arguments hold a password, which
 * the admin log must not see); it records its own audit entry.
 */
#include "control/control_handlers.h"

#include <stdlib.h>
#include <string.h>

#include "directory/directory.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "server.h"
#include "store/store.h"

#define CONTROL_DIRECTORY_DEFAULT_INTERVAL (15 * 60)

static const char *
cdir_arg(json_t *args, const char *key, char **err_r)
{
	json_t *v = json_object_get(args, key);
	if (!json_is_string(v) || json_string_length(v) == 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "missing argument '%s'", key);
		*err_r = buf_steal(&e);
		return NULL;
	}
	return json_string_value(v);
}

static const char *
cdir_opt(json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

static void
cdir_err(char **err_r, const char *fmt, const char *a)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a);
	*err_r = buf_steal(&e);
}

/* The tenant argument, lower-cased, of an existing tenant (caller frees), or NULL. */
static char *
cdir_tenant(struct server *srv, json_t *args, char **err_r)
{
	const char *name = cdir_arg(args, "tenant", err_r);
	struct store_tenant t;
	if (name == NULL)
		return NULL;
	int found = store_tenant_get(srv->store, name, &t);
	if (found <= 0) {
		cdir_err(err_r, found == 0 ? "no tenant '%s'" : "database error (%s)", name);
		return NULL;
	}
	free(t.region);
	free(t.unknown_recipients);
	return t.name;
}

/* interval ("15m", "1h", "0" = no periodic sync) and starttls ("yes"/"no"). */
static int
cdir_parse_options(json_t *args, struct store_directory *d, char **err_r)
{
	const char *interval = cdir_opt(args, "interval");
	const char *starttls = cdir_opt(args, "starttls");
	uint64_t secs = CONTROL_DIRECTORY_DEFAULT_INTERVAL;
	int tls = 0;
	if (interval != NULL && (str_parse_duration(interval, &secs) < 0 || secs > 86400 * 30)) {
		cdir_err(err_r, "invalid interval '%s' (e.g. 15m, 1h; 0 for no periodic sync)",
		    interval);
		return -1;
	}
	if (starttls != NULL && str_parse_bool(starttls, &tls) < 0) {
		cdir_err(err_r, "invalid starttls '%s' (yes or no)", starttls);
		return -1;
	}
	d->interval = (long long)secs;
	d->starttls = tls;
	return 0;
}

static json_t *
cdir_show_json(struct server *srv, const struct store_directory *d)
{
	json_t *last = NULL;
	if (d->last_result != NULL)
		last = json_loads(d->last_result, 0, NULL);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:o, s:o}",
	    "tenant", d->tenant, "url", d->url, "base_dn", d->base_dn, "bind_dn", d->bind_dn,
	    "bind_password", "********",
	    "user_filter", d->user_filter ? d->user_filter : DIRECTORY_DEFAULT_USER_FILTER,
	    "group_filter", d->group_filter ? d->group_filter : DIRECTORY_DEFAULT_GROUP_FILTER,
	    "interval", (json_int_t)d->interval, "starttls", d->starttls != 0,
	    "last_sync", d->last_sync ? json_integer((json_int_t)d->last_sync) : json_null(),
	    "last_result", last ? last : json_null());
	json_t *status = directory_status(srv, d->tenant);
	json_object_update(o, status);
	json_decref(status);
	return o;
}

static int
cdir_show_tenant(struct server *srv, const char *tenant, json_t **result_r, char **err_r)
{
	struct store_directory d;
	int found = store_directory_get(srv->store, tenant, &d);
	if (found <= 0) {
		cdir_err(err_r, found == 0 ? "tenant '%s' has no directory" :
		    "database error (%s)", tenant);
		return -1;
	}
	*result_r = cdir_show_json(srv, &d);
	store_directory_clear(&d);
	return 0;
}

static int
control_directory_set(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	struct store_directory d = { 0 };
	char *tenant = cdir_tenant(srv, args, err_r);
	int ret = -1;
	if (tenant == NULL)
		return -1;
	d.tenant = tenant;
	d.url = (char *)cdir_arg(args, "url", err_r);
	d.base_dn = d.url ? (char *)cdir_arg(args, "base_dn", err_r) : NULL;
	d.bind_dn = d.base_dn ? (char *)cdir_arg(args, "bind_dn", err_r) : NULL;
	d.bind_password = (char *)cdir_opt(args, "bind_password");
	d.user_filter = (char *)cdir_opt(args, "user_filter");
	d.group_filter = (char *)cdir_opt(args, "group_filter");
	if (d.bind_dn != NULL && cdir_parse_options(args, &d, err_r) == 0 &&
	    directory_settings_check(&d, err_r) == 0 &&
	    directory_settings_save(srv, &d, err_r) == 0) {
		directory_settings_changed(srv, tenant);
		ret = cdir_show_tenant(srv, tenant, result_r, err_r);
	}
	free(tenant);
	return ret;
}

static int
control_directory_show(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = cdir_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	int ret = cdir_show_tenant(srv, tenant, result_r, err_r);
	free(tenant);
	return ret;
}

static int
control_directory_sync(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = cdir_tenant(srv, args, err_r);
	uint64_t job;
	if (tenant == NULL)
		return -1;
	int ret = directory_sync_start(srv, tenant, &job, err_r);
	if (ret == 0)
		*result_r = json_pack("{s:s, s:I, s:s}", "tenant", tenant, "job", (json_int_t)job,
		    "state", "running");
	free(tenant);
	return ret;
}

static int
control_directory_job(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = cdir_tenant(srv, args, err_r);
	const char *id = tenant ? cdir_arg(args, "id", err_r) : NULL;
	uint64_t job;
	json_t *res = NULL;
	int ret = -1;
	if (id == NULL)
		goto out;
	int state = str_parse_u64(id, &job) < 0 ? -1 : directory_job_result(srv, tenant, job, &res);
	if (state < 0) {
		cdir_err(err_r, "no directory job '%s' (finished jobs are kept for a while only)",
		    id);
		goto out;
	}
	*result_r = json_pack("{s:s, s:I, s:s, s:o}", "tenant", tenant, "job", (json_int_t)job,
	    "state", state ? "done" : "running", "result", res ? res : json_null());
	ret = 0;
out:
	free(tenant);
	return ret;
}

static int
control_directory_login(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = cdir_tenant(srv, args, err_r);
	const char *address = tenant ? cdir_arg(args, "address", err_r) : NULL;
	const char *password = address ? cdir_arg(args, "password", err_r) : NULL;
	uint64_t job;
	int ret = -1;
	if (password != NULL && directory_login_start(srv, tenant, address, password, &job,
	    err_r) == 0) {
		*result_r = json_pack("{s:s, s:I, s:s}", "tenant", tenant, "job", (json_int_t)job,
		    "state", "running");
		ret = 0;
	}
	free(tenant);
	return ret;
}

const struct control_command control_directory_commands[] = {
	{ "directory.set", 1, control_directory_set },
	{ "directory.show", 0, control_directory_show },
	{ "directory.sync", 1, control_directory_sync },
	{ "directory.job", 0, control_directory_job },
	{ "directory.login", 0, control_directory_login },
	{ NULL, 0, NULL },
};
