/*
 * directory.c — directory sync jobs, their timers and LDAP sign-in.
 *
 * A job copies the tenant's settings on the loop thread, reads the
 * directory on a worker (directory_ldap_read) and comes back to the loop
 * thread to apply the read through store_directory_apply() and record the
 * summary.  Jobs are found again by a 64-bit id, never by pointer: the CLI
 * starts a sync with "directory.sync" and polls "directory.job".  At most
 * one sync per tenant runs; a second request joins it.  Finished jobs are
 * kept (DIRECTORY_KEEP_DONE of them) so their result can be fetched.
 *
 * The state is one struct directory per process, created by
 * directory_start() (or the first directory command).
 *
 * The bind password is stored sealed (directory_secret.h).  The directory
 * key is derived from keys/master.key the first time it is needed and kept
 * until directory_stop(); each job carries a copy of it, and the worker
 * opens the password right before the LDAP bind and wipes it afterwards.
 * The loop thread never holds the plain text.
 */
#include "directory/directory.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "auth/principal.h"
#include "config/config.h"
#include "directory/directory_ldap.h"
#include "directory/directory_map.h"
#include "directory/directory_secret.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/worker.h"
#include "server.h"
#include "store/store.h"

#define DIRECTORY_KEEP_DONE 32

enum directory_job_kind { JOB_SYNC, JOB_LOGIN };

struct directory_job {
	uint64_t id;
	enum directory_job_kind kind;
	int done;
	char *tenant;
	struct store_directory conf;      /* a copy (password sealed): the worker reads it */
	unsigned char key[DIRECTORY_SECRET_KEY_LEN];   /* opens conf.bind_password */
	/* sync */
	struct directory_read read;
	char *err;
	int read_ok;
	/* sign-in */
	char *address;
	char *password;
	int auth;                         /* directory_ldap_auth() result */
	directory_auth_cb *cb;
	void *cb_arg;
	json_t *result;                   /* once done */
	struct directory_job *next;
};

struct directory_timer {
	char *tenant;
	struct event *ev;
	long long interval;
	struct directory_timer *next;
};

struct directory {
	struct server *srv;
	uint64_t next_id;
	struct directory_job *jobs;       /* newest first */
	struct directory_timer *timers;
	unsigned char key[DIRECTORY_SECRET_KEY_LEN];   /* the directory key, once loaded */
	int have_key;
};

/* One daemon per process; see the header comment. */
static struct directory *directory_state;

static const struct principal directory_system = {
	ROLE_OPERATOR, "directory-sync@local", NULL, 0, "local"
};

static void directory_timer_arm(struct directory *dir, const struct store_directory *d);

static struct directory *
directory_get(struct server *srv)
{
	if (directory_state == NULL) {
		directory_state = xcalloc(1, sizeof(*directory_state));
		directory_state->srv = srv;
		directory_state->next_id = 1;
		(void)directory_start(srv);
	}
	return directory_state;
}

static void
directory_wipe(char *s)
{
	if (s != NULL) {
		volatile char *p = s;
		while (*p != '\0')
			*p++ = '\0';
	}
}

/* The directory key, loaded from keys/master.key on first use: 0, -1 with *err_r. */
static int
directory_key(struct directory *dir, char **err_r)
{
	if (dir->have_key)
		return 0;
	if (directory_secret_key_load(dir->srv->cfg->data_dir, dir->key, err_r) < 0) {
		log_error("directory_key", "error=%s", log_str(*err_r));
		return -1;
	}
	dir->have_key = 1;
	return 0;
}

static void
directory_conf_copy(struct store_directory *dst, const struct store_directory *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->tenant = xstrdup(src->tenant);
	dst->url = xstrdup(src->url);
	dst->base_dn = xstrdup(src->base_dn);
	dst->bind_dn = xstrdup(src->bind_dn);
	dst->bind_password = xstrdup(src->bind_password);
	dst->user_filter = src->user_filter ? xstrdup(src->user_filter) : NULL;
	dst->group_filter = src->group_filter ? xstrdup(src->group_filter) : NULL;
	dst->interval = src->interval;
	dst->starttls = src->starttls;
}

static void
directory_job_free(struct directory_job *j)
{
	directory_wipe(j->conf.bind_password);    /* a legacy value is plain text */
	directory_wipe(j->password);
	directory_secret_wipe(j->key, sizeof(j->key));
	store_directory_clear(&j->conf);
	directory_read_clear(&j->read);
	free(j->err);
	free(j->tenant);
	free(j->address);
	free(j->password);
	if (j->result != NULL)
		json_decref(j->result);
	free(j);
}

/* Forgets the oldest finished jobs beyond DIRECTORY_KEEP_DONE. */
static void
directory_jobs_prune(struct directory *dir)
{
	unsigned kept = 0;
	for (struct directory_job **pp = &dir->jobs; *pp != NULL;) {
		struct directory_job *j = *pp;
		if (j->done && ++kept > DIRECTORY_KEEP_DONE) {
			*pp = j->next;
			directory_job_free(j);
			continue;
		}
		pp = &j->next;
	}
}

/* A new job with the tenant's settings, or NULL with *err_r. */
static struct directory_job *
directory_job_new(struct directory *dir, const char *tenant, enum directory_job_kind kind,
    char **err_r)
{
	struct store_directory d;
	int found = store_directory_get(dir->srv->store, tenant, &d);
	if (found <= 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, found == 0 ? "tenant '%s' has no directory (mailark directory set "
		    "%s ...)" : "database error reading the directory of '%s'%s", tenant,
		    found == 0 ? tenant : "");
		*err_r = buf_steal(&e);
		return NULL;
	}
	if (directory_key(dir, err_r) < 0) {
		store_directory_clear(&d);
		return NULL;
	}
	if (!directory_secret_is_sealed(d.bind_password))
		log_warn("directory_password_legacy", "tenant=%s reason=%s", log_str(d.tenant),
		    "stored in plain text; sealed by the next `mailark directory set`");
	struct directory_job *j = xcalloc(1, sizeof(*j));
	j->id = dir->next_id++;
	j->kind = kind;
	j->tenant = xstrdup(d.tenant);
	directory_conf_copy(&j->conf, &d);
	memcpy(j->key, dir->key, sizeof(j->key));
	directory_wipe(d.bind_password);
	store_directory_clear(&d);
	return j;
}

/*
 * Worker thread: the job's settings with the bind password opened, in
 * *conf_r (the strings are the job's but the password, which the caller
 * wipes and frees with directory_secret_free()).  0, or -1 with *err_r.
 */
static int
directory_job_open(struct directory_job *j, struct store_directory *conf_r, char **err_r)
{
	char *plain = NULL, *why = NULL;
	if (directory_secret_open(j->key, j->tenant, j->conf.bind_password, &plain, &why) < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "tenant %s: %s", j->tenant, why);
		*err_r = buf_steal(&e);
		free(why);
		return -1;
	}
	*conf_r = j->conf;
	conf_r->bind_password = plain;
	return 0;
}

/* ---- sync ---------------------------------------------------------------- */

static void
directory_sync_work(void *arg)
{
	struct directory_job *j = arg;
	struct store_directory conf;
	if (directory_job_open(j, &conf, &j->err) < 0)
		return;
	j->read_ok = directory_ldap_read(&conf, &j->read, &j->err) == 0;
	directory_secret_free(conf.bind_password);
}

static json_t *
directory_errors_json(const struct directory_read *r, const struct store_dir_stats *s)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < r->nerrors && i < STORE_DIR_ERRORS_KEPT; i++)
		json_array_append_new(arr, json_string(r->errors[i]));
	for (size_t i = 0; s != NULL && i < s->nerror_text; i++)
		json_array_append_new(arr, json_string(s->error_text[i]));
	return arr;
}

/* Applies a successful read; returns the summary. */
static json_t *
directory_sync_apply(struct directory *dir, struct directory_job *j)
{
	struct directory_read *r = &j->read;
	struct store_dir_user *users = xcalloc(r->nusers + 1, sizeof(*users));
	for (size_t i = 0; i < r->nusers; i++) {
		const struct directory_user *u = &r->users[i];
		users[i] = (struct store_dir_user){ u->address, u->display_name, u->disabled,
			(const char *const *)u->aliases, u->naliases,
			(const char *const *)u->groups, u->ngroups };
	}
	struct store_dir_stats st;
	char *err = NULL;
	int rc = store_directory_apply(dir->srv->store, j->tenant, users, r->nusers,
	    (const char *const *)r->groups, r->ngroups, &st, &err);
	free(users);
	if (rc < 0) {
		json_t *o = json_pack("{s:b, s:s}", "ok", 0, "error", err ? err : "database error");
		free(err);
		return o;
	}
	json_t *o = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "ok", 1,
	    "users_seen", (json_int_t)r->nusers, "users_skipped", (json_int_t)r->nskipped,
	    "users_added", (json_int_t)st.users_added,
	    "users_updated", (json_int_t)st.users_updated,
	    "users_disabled", (json_int_t)st.users_disabled,
	    "users_unchanged", (json_int_t)st.users_unchanged,
	    "groups_added", (json_int_t)st.groups_added,
	    "groups_updated", (json_int_t)st.groups_updated,
	    "errors", (json_int_t)(st.errors + r->nerrors),
	    "error_list", directory_errors_json(r, &st));
	store_dir_stats_clear(&st);
	return o;
}

static void
directory_sync_record(struct directory *dir, struct directory_job *j)
{
	json_t *res = j->result;
	char *text = json_dumps(res, JSON_COMPACT);
	int ok = json_is_true(json_object_get(res, "ok"));
	if (text != NULL)
		(void)store_directory_set_result(dir->srv->store, j->tenant, (long long)time(NULL),
		    text);
	if (ok)
		log_info("directory_sync", "tenant=%s job=%llu added=%lld updated=%lld "
		    "disabled=%lld groups_added=%lld groups_updated=%lld errors=%lld",
		    log_str(j->tenant), (unsigned long long)j->id,
		    (long long)json_integer_value(json_object_get(res, "users_added")),
		    (long long)json_integer_value(json_object_get(res, "users_updated")),
		    (long long)json_integer_value(json_object_get(res, "users_disabled")),
		    (long long)json_integer_value(json_object_get(res, "groups_added")),
		    (long long)json_integer_value(json_object_get(res, "groups_updated")),
		    (long long)json_integer_value(json_object_get(res, "errors")));
	else
		log_warn("directory_sync_failed", "tenant=%s job=%llu error=%s",
		    log_str(j->tenant), (unsigned long long)j->id,
		    log_str(json_string_value(json_object_get(res, "error"))));
	struct buf obj = BUF_INIT;
	buf_appendf(&obj, "tenant:%s", j->tenant);
	(void)audit_record(dir->srv, &directory_system, "directory.sync.finished",
	    buf_cstr(&obj), ok ? "ok" : "failed", text);
	buf_free(&obj);
	free(text);
}

static void
directory_sync_done(void *arg)
{
	struct directory_job *j = arg;
	struct directory *dir = directory_state;
	if (j->read_ok)
		j->result = directory_sync_apply(dir, j);
	else
		j->result = json_pack("{s:b, s:s}", "ok", 0, "error", j->err ? j->err : "?");
	json_object_set_new(j->result, "job", json_integer((json_int_t)j->id));
	json_object_set_new(j->result, "tenant", json_string(j->tenant));
	directory_read_clear(&j->read);
	directory_sync_record(dir, j);
	j->done = 1;
	directory_jobs_prune(dir);
}

static struct directory_job *
directory_running_sync(struct directory *dir, const char *tenant)
{
	for (struct directory_job *j = dir->jobs; j != NULL; j = j->next)
		if (!j->done && j->kind == JOB_SYNC && strcmp(j->tenant, tenant) == 0)
			return j;
	return NULL;
}

int
directory_sync_start(struct server *srv, const char *tenant, uint64_t *job_r, char **err_r)
{
	struct directory *dir = directory_get(srv);
	struct directory_job *j = directory_running_sync(dir, tenant);
	if (j != NULL) {
		*job_r = j->id;
		return 0;
	}
	j = directory_job_new(dir, tenant, JOB_SYNC, err_r);
	if (j == NULL)
		return -1;
	j->next = dir->jobs;
	dir->jobs = j;
	*job_r = j->id;
	log_info("directory_sync_start", "tenant=%s job=%llu", log_str(j->tenant),
	    (unsigned long long)j->id);
	worker_submit(srv->workers, directory_sync_work, directory_sync_done, j);
	return 0;
}

int
directory_job_result(struct server *srv, const char *tenant, uint64_t id, json_t **result_r)
{
	struct directory *dir = directory_get(srv);
	for (struct directory_job *j = dir->jobs; j != NULL; j = j->next) {
		if (j->id != id || strcmp(j->tenant, tenant) != 0)
			continue;
		if (!j->done)
			return 0;
		*result_r = json_incref(j->result);
		return 1;
	}
	return -1;
}

json_t *
directory_status(struct server *srv, const char *tenant)
{
	struct directory *dir = directory_get(srv);
	struct directory_job *j = directory_running_sync(dir, tenant);
	return json_pack("{s:o}", "running", j ? json_integer((json_int_t)j->id) : json_null());
}

/* ---- sign-in ------------------------------------------------------------- */

static void
directory_auth_work(void *arg)
{
	struct directory_job *j = arg;
	struct store_directory conf;
	if (directory_job_open(j, &conf, &j->err) < 0) {
		j->auth = -1;
	} else {
		j->auth = directory_ldap_auth(&conf, j->address, j->password, &j->err);
		directory_secret_free(conf.bind_password);
	}
	directory_wipe(j->password);
}

static enum directory_auth_result
directory_auth_map(int auth)
{
	return auth == 1 ? DIRECTORY_AUTH_OK : auth == 0 ? DIRECTORY_AUTH_DENIED :
	    DIRECTORY_AUTH_ERROR;
}

static void
directory_auth_done(void *arg)
{
	struct directory_job *j = arg;
	enum directory_auth_result r = directory_auth_map(j->auth);
	const char *reason = r == DIRECTORY_AUTH_OK ? "ok" : j->err ? j->err : "?";
	log_info("directory_auth", "tenant=%s address=%s result=%s reason=%s",
	    log_str(j->tenant), log_str(j->address),
	    r == DIRECTORY_AUTH_OK ? "ok" : r == DIRECTORY_AUTH_DENIED ? "denied" : "error",
	    log_str(reason));
	j->cb(j->cb_arg, r, reason);
	directory_job_free(j);
}

/* A job that reports its error through the callback, on the loop thread. */
static void
directory_auth_nowork(void *arg)
{
	(void)arg;
}

void
directory_authenticate_async(struct server *srv, const char *tenant, const char *address,
    const char *password, directory_auth_cb *cb, void *arg)
{
	struct directory *dir = directory_get(srv);
	char *err = NULL;
	struct directory_job *j = directory_job_new(dir, tenant, JOB_LOGIN, &err);
	if (j == NULL) {
		j = xcalloc(1, sizeof(*j));
		j->tenant = xstrdup(tenant);
		j->auth = -1;
		j->err = err;
	}
	j->address = xstrdup(address);
	j->password = xstrdup(password);
	j->cb = cb;
	j->cb_arg = arg;
	worker_submit(srv->workers, err ? directory_auth_nowork : directory_auth_work,
	    directory_auth_done, j);
}

/* directory_login_start(): the login job waiting for its answer. */
struct directory_login {
	uint64_t id;
};

static void
directory_login_cb(void *arg, enum directory_auth_result r, const char *reason)
{
	struct directory_login *l = arg;
	struct directory *dir = directory_state;
	for (struct directory_job *j = dir->jobs; j != NULL; j = j->next) {
		if (j->id != l->id)
			continue;
		j->result = json_pack("{s:b, s:s}", "ok", r == DIRECTORY_AUTH_OK,
		    "result", r == DIRECTORY_AUTH_OK ? "ok" : r == DIRECTORY_AUTH_DENIED ?
		    "denied" : "error");
		if (r == DIRECTORY_AUTH_ERROR)
			json_object_set_new(j->result, "error", json_string(reason));
		json_object_set_new(j->result, "job", json_integer((json_int_t)j->id));
		struct buf obj = BUF_INIT;
		buf_appendf(&obj, "tenant:%s address:%s", j->tenant, j->address);
		struct principal who = { ROLE_USER, j->address, j->tenant, 0, "local" };
		(void)audit_record(dir->srv, &who, "directory.login", buf_cstr(&obj),
		    r == DIRECTORY_AUTH_OK ? "ok" : "failed", r == DIRECTORY_AUTH_OK ? NULL : reason);
		buf_free(&obj);
		j->done = 1;
	}
	free(l);
	directory_jobs_prune(dir);
}

int
directory_login_start(struct server *srv, const char *tenant, const char *address,
    const char *password, uint64_t *job_r, char **err_r)
{
	struct directory *dir = directory_get(srv);
	struct store_directory d;
	int found = store_directory_get(srv->store, tenant, &d);
	if (found <= 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, found == 0 ? "tenant '%s' has no directory" :
		    "database error reading the directory of '%s'", tenant);
		*err_r = buf_steal(&e);
		return -1;
	}
	directory_wipe(d.bind_password);
	store_directory_clear(&d);
	struct directory_job *j = xcalloc(1, sizeof(*j));
	j->id = dir->next_id++;
	j->kind = JOB_LOGIN;
	j->tenant = xstrdup(tenant);
	j->address = xstrdup(address);
	j->next = dir->jobs;
	dir->jobs = j;
	struct directory_login *l = xcalloc(1, sizeof(*l));
	l->id = j->id;
	*job_r = j->id;
	directory_authenticate_async(srv, tenant, address, password, directory_login_cb, l);
	return 0;
}

/* ---- settings and timers ------------------------------------------------- */

int
directory_settings_check(const struct store_directory *d, char **err_r)
{
	const char *why = NULL;
	if (!directory_ldap_url_valid(d->url))
		why = "the URL must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]";
	else if (d->base_dn[0] == '\0' || d->bind_dn[0] == '\0')
		why = "the base DN and the bind DN must not be empty";
	else if (d->bind_password != NULL && d->bind_password[0] == '\0')
		why = "the bind password must not be empty";
	else if (d->user_filter != NULL && !directory_filter_valid(d->user_filter))
		why = "the user filter is not a well-formed LDAP filter, e.g. (objectClass=user)";
	else if (d->group_filter != NULL && !directory_filter_valid(d->group_filter))
		why = "the group filter is not a well-formed LDAP filter, e.g. (objectClass=group)";
	else if (d->interval < 0)
		why = "the interval must not be negative";
	if (why == NULL)
		return 0;
	*err_r = xstrdup(why);
	return -1;
}

/*
 * The sealed password to store: *sealed_r from the new plain text, from a
 * legacy plain-text one already stored, or NULL to keep the stored one.
 */
static int
directory_settings_seal(struct directory *dir, const struct store_directory *d,
    char **sealed_r, char **err_r)
{
	struct store_directory old;
	*sealed_r = NULL;
	if (d->bind_password != NULL)
		return directory_secret_seal(dir->key, d->tenant, d->bind_password, sealed_r,
		    err_r);
	int found = store_directory_get(dir->srv->store, d->tenant, &old);
	if (found < 0) {
		*err_r = xstrdup("database error reading the directory settings");
		return -1;
	}
	if (found == 0)
		return 0;
	int rc = 0;
	if (!directory_secret_is_sealed(old.bind_password)) {
		rc = directory_secret_seal(dir->key, d->tenant, old.bind_password, sealed_r, err_r);
		if (rc == 0)
			log_info("directory_password_sealed", "tenant=%s", log_str(d->tenant));
	}
	directory_wipe(old.bind_password);
	store_directory_clear(&old);
	return rc;
}

int
directory_settings_save(struct server *srv, const struct store_directory *d, char **err_r)
{
	struct directory *dir = directory_get(srv);
	struct store_directory row = *d;
	char *sealed;
	if (directory_key(dir, err_r) < 0 || directory_settings_seal(dir, d, &sealed, err_r) < 0)
		return -1;
	row.bind_password = sealed;       /* NULL: the store keeps the stored one */
	int ret = store_directory_set(srv->store, &row, err_r);
	free(sealed);
	return ret;
}

static void
directory_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct directory_timer *t = arg;
	struct directory *dir = directory_state;
	uint64_t job;
	char *err = NULL;
	(void)fd;
	(void)what;
	if (dir->srv->shutting_down)
		return;
	if (directory_sync_start(dir->srv, t->tenant, &job, &err) < 0) {
		log_warn("directory_sync_skipped", "tenant=%s reason=%s", log_str(t->tenant),
		    log_str(err));
		free(err);
		event_del(t->ev);       /* the directory was removed: re-armed by directory set */
	}
}

static struct directory_timer *
directory_timer_find(struct directory *dir, const char *tenant)
{
	for (struct directory_timer *t = dir->timers; t != NULL; t = t->next)
		if (strcmp(t->tenant, tenant) == 0)
			return t;
	return NULL;
}

static void
directory_timer_arm(struct directory *dir, const struct store_directory *d)
{
	struct directory_timer *t = directory_timer_find(dir, d->tenant);
	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		t->tenant = xstrdup(d->tenant);
		t->ev = event_new(dir->srv->base, -1, EV_PERSIST, directory_timer_cb, t);
		if (t->ev == NULL) {
			log_error("directory_timer", "tenant=%s error=event_new", log_str(d->tenant));
			free(t->tenant);
			free(t);
			return;
		}
		t->next = dir->timers;
		dir->timers = t;
	}
	event_del(t->ev);
	t->interval = d->interval;
	if (d->interval <= 0)
		return;
	struct timeval tv = { (time_t)d->interval, 0 };
	if (event_add(t->ev, &tv) < 0)
		log_error("directory_timer", "tenant=%s error=event_add", log_str(d->tenant));
}

void
directory_settings_changed(struct server *srv, const char *tenant)
{
	struct directory *dir = directory_get(srv);
	struct store_directory d;
	if (store_directory_get(srv->store, tenant, &d) != 1)
		return;
	directory_timer_arm(dir, &d);
	directory_wipe(d.bind_password);
	store_directory_clear(&d);
}

int
directory_start(struct server *srv)
{
	if (directory_state == NULL)
		return directory_get(srv) != NULL ? 0 : -1;
	struct directory *dir = directory_state;
	struct store_directory *list;
	size_t n;
	if (dir->timers != NULL)
		return 0;
	if (store_directory_list(srv->store, &list, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		directory_timer_arm(dir, &list[i]);
		directory_wipe(list[i].bind_password);
	}
	store_directories_free(list, n);
	return 0;
}

void
directory_stop(struct server *srv)
{
	struct directory *dir = directory_state;
	(void)srv;
	if (dir == NULL)
		return;
	while (dir->timers != NULL) {
		struct directory_timer *t = dir->timers;
		dir->timers = t->next;
		event_free(t->ev);
		free(t->tenant);
		free(t);
	}
	for (struct directory_job **pp = &dir->jobs; *pp != NULL;) {
		struct directory_job *j = *pp;
		if (j->done) {
			*pp = j->next;
			directory_job_free(j);
		} else {
			pp = &j->next;
		}
	}
	if (dir->jobs == NULL) {
		directory_secret_wipe(dir->key, sizeof(dir->key));
		free(dir);
		directory_state = NULL;
	}
}
