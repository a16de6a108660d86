/*
 * quarantine.c — see quarantine.h.
 *
 * Layout: <data_dir>/quarantine/quarantine.db (SQLite, WAL) with
 *   items(id, tenant, qid, time, direction, sender, rcpts JSON, subject,
 *         hfrom, reasons, score, size, digest_sent, releasing, envelope JSON)
 *   item_rcpts(id, rcpt)  — one row per (lower-cased) recipient, for
 *                           per-recipient lists and digests
 * and <data_dir>/quarantine/<tenant>/<id>.eml.
 *
 * Item life cycle:
 *   (none) ──put: tmp file, fsync, rename, fsync dir──▶ FILE ──INSERT──▶ HELD
 *   HELD ──release: releasing=1, queue_inject──▶ RELEASING
 *   RELEASING ──committed──▶ delete (row, then file)
 *   RELEASING ──inject failed──▶ HELD            (crash: back to HELD at open)
 *   HELD ──delete / retention──▶ row deleted ──▶ file unlinked
 * A FILE without a row (crash during put or delete) is removed at open.
 *
 * One connection, one mutex: every function may be called from any
 * thread, except release, digest and the timer (loop thread: queue_inject
 * and policy_get).
 */
#include "hygiene/quarantine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "config/config.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "lib/sys.h"
#include "server.h"

/* How often the timer looks at retention and the digest hour. */
#define QUAR_TICK_SECONDS 600
/* Seconds from start to the first tick. */
#define QUAR_FIRST_TICK 2
/* Retention purge at most this often. */
#define QUAR_PURGE_EVERY 3600
/* Largest message file read back (release, show). */
#define QUAR_MAX_FILE ((size_t)1 << 30)
/* Header bytes returned by show. */
#define QUAR_MAX_HEADERS 65536
/* Items one digest lists (the rest are counted). */
#define QUAR_DIGEST_MAX 200
/* Items a list may return. */
#define QUAR_LIST_MAX 10000

struct quarantine {
	struct server *srv;
	pthread_mutex_t mu;
	sqlite3 *db;
	char *dir;                   /* <data_dir>/quarantine */
	struct event *timer;         /* loop thread */
	time_t last_purge;
	int last_digest_day;         /* days since the epoch of the last scheduled digest */
};

static const char quar_schema[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS items ("
    " id TEXT PRIMARY KEY, tenant TEXT NOT NULL, qid TEXT NOT NULL, time INTEGER NOT NULL,"
    " direction TEXT NOT NULL, sender TEXT NOT NULL, rcpts TEXT NOT NULL, subject TEXT,"
    " hfrom TEXT, reasons TEXT NOT NULL, score REAL NOT NULL, size INTEGER NOT NULL,"
    " digest_sent INTEGER NOT NULL DEFAULT 0, releasing INTEGER NOT NULL DEFAULT 0,"
    " envelope TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS items_tenant ON items(tenant, time);"
    "CREATE TABLE IF NOT EXISTS item_rcpts (id TEXT NOT NULL, rcpt TEXT NOT NULL,"
    " PRIMARY KEY(id, rcpt));"
    "CREATE INDEX IF NOT EXISTS item_rcpts_rcpt ON item_rcpts(rcpt);"
    "UPDATE items SET releasing = 0 WHERE releasing != 0;";

/* ------------------------------------------------------------ helpers */

static int
quar_db_fail(struct quarantine *q, char **err_r, const char *what)
{
	err_setf(err_r, "quarantine database: %s: %s", what, sqlite3_errmsg(q->db));
	return -1;
}

static char *
quar_tenant_dir(const struct quarantine *q, const char *tenant)
{
	return buf_printf("%s/%s", q->dir, tenant);
}

static char *
quar_file(const struct quarantine *q, const char *tenant, const char *id, const char *ext)
{
	return buf_printf("%s/%s/%s%s", q->dir, tenant, id, ext);
}

static const char *
quar_col(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	return s != NULL ? (const char *)s : "";
}

/* A JSON string of untrusted bytes: valid UTF-8 kept, other bytes as '?'. */
static json_t *
quar_json_text(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	if (j != NULL)
		return j;
	char *copy = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++)
		copy[i] = (s[i] == '\0' || (unsigned char)s[i] >= 0x80) ? '?' : s[i];
	copy[len] = '\0';
	j = json_string(copy);
	free(copy);
	return j != NULL ? j : json_string("");
}

/* ------------------------------------------------- envelope as JSON */

static json_t *
quar_env_json(const struct queue_envelope *env)
{
	json_t *rc = json_array();
	for (size_t i = 0; i < env->nrcpts; i++)
		json_array_append_new(rc, json_pack("{s:s, s:s?, s:i}", "addr", env->rcpts[i].addr,
		    "orcpt", env->rcpts[i].orcpt, "notify", (int)env->rcpts[i].notify));
	return json_pack("{s:s, s:i, s:s?, s:s, s:s?, s:b, s:b, s:b, s:s?, s:s?, s:s?, s:i,"
	    " s:I, s:o}",
	    "id", env->id, "direction", (int)env->direction, "tenant", env->tenant,
	    "sender", env->sender ? env->sender : "", "envid", env->envid,
	    "ret_hdrs", env->ret_hdrs != 0, "smtputf8", env->smtputf8 != 0,
	    "body_8bit", env->body_8bit != 0, "client_addr", env->client_addr,
	    "client_helo", env->client_helo, "auth_user", env->auth_user,
	    "flags", (int)env->flags, "arrival", (json_int_t)env->arrival, "rcpts", rc);
}

static char *
quar_jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? xstrdup(s) : NULL;
}

/* Fills env (all strings malloc'd: queue_envelope_free) from quar_env_json. */
static int
quar_env_parse(const char *text, struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
	json_t *o = json_loads(text, 0, NULL);
	json_t *rc = o != NULL ? json_object_get(o, "rcpts") : NULL;
	if (!json_is_array(rc) || json_array_size(rc) == 0) {
		json_decref(o);
		return -1;
	}
	env->direction = (enum queue_direction)json_integer_value(json_object_get(o, "direction"));
	env->tenant = quar_jstr(o, "tenant");
	env->sender = quar_jstr(o, "sender");
	if (env->sender == NULL)
		env->sender = xstrdup("");
	env->envid = quar_jstr(o, "envid");
	env->ret_hdrs = json_is_true(json_object_get(o, "ret_hdrs"));
	env->smtputf8 = json_is_true(json_object_get(o, "smtputf8"));
	env->body_8bit = json_is_true(json_object_get(o, "body_8bit"));
	env->client_addr = quar_jstr(o, "client_addr");
	env->client_helo = quar_jstr(o, "client_helo");
	env->auth_user = quar_jstr(o, "auth_user");
	env->flags = (unsigned)json_integer_value(json_object_get(o, "flags"));
	env->arrival = (time_t)json_integer_value(json_object_get(o, "arrival"));
	env->nrcpts = json_array_size(rc);
	env->rcpts = xcalloc(env->nrcpts, sizeof(*env->rcpts));
	for (size_t i = 0; i < env->nrcpts; i++) {
		json_t *r = json_array_get(rc, i);
		env->rcpts[i].addr = quar_jstr(r, "addr");
		if (env->rcpts[i].addr == NULL)
			env->rcpts[i].addr = xstrdup("");
		env->rcpts[i].orcpt = quar_jstr(r, "orcpt");
		env->rcpts[i].notify = (unsigned)json_integer_value(json_object_get(r, "notify"));
		env->rcpts[i].state = RCPT_PENDING;
	}
	json_decref(o);
	return 0;
}

/* --------------------------------------------------------- open, close */

/* Removes <dir>/<tenant>/<file> unless it is "<id>.eml" of a stored item. */
static void
quar_sweep_file(struct quarantine *q, const char *tenant, const char *name)
{
	size_t n = strlen(name);
	if (name[0] == '.')
		return;
	int keep = 0;
	if (n == ID_LEN + 4 && strcmp(name + ID_LEN, ".eml") == 0) {
		char id[ID_LEN + 1];
		memcpy(id, name, ID_LEN);
		id[ID_LEN] = '\0';
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(q->db, "SELECT 1 FROM items WHERE id = ? AND tenant = ?", -1,
		    &st, NULL) != SQLITE_OK) {
			keep = 1;     /* in doubt, keep it */
		} else {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
			int rc = sqlite3_step(st);
			keep = rc != SQLITE_DONE;
		}
		sqlite3_finalize(st);
	}
	if (keep)
		return;
	char *path = buf_printf("%s/%s/%s", q->dir, tenant, name);
	if (sys_unlink(path) == 0)
		log_info("quarantine_orphan_removed", "file=%s", log_str(path));
	free(path);
}

/* Removes message files that have no row (a put or delete interrupted). */
static void
quar_sweep(struct quarantine *q)
{
	DIR *top = opendir(q->dir);
	if (top == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(top)) != NULL) {
		if (!str_tenant_name_valid(de->d_name))
			continue;
		char *tdir = quar_tenant_dir(q, de->d_name);
		DIR *d = opendir(tdir);
		if (d != NULL) {
			struct dirent *fe;
			while ((fe = readdir(d)) != NULL)
				quar_sweep_file(q, de->d_name, fe->d_name);
			closedir(d);
			if (sys_fsync_dir(tdir) < 0)
				log_warn("quarantine_fsync_failed", "dir=%s error=%s", log_str(tdir),
				    strerror(errno));
		}
		free(tdir);
	}
	closedir(top);
}

static void quar_timer_cb(evutil_socket_t fd, short what, void *arg);

static void
quar_timer_arm(struct quarantine *q, long seconds)
{
	struct timeval tv = { seconds, 0 };
	if (event_add(q->timer, &tv) < 0)
		log_error("quarantine_timer_failed", "error=%s", "event_add");
}

/* The first tick comes soon after start (a purge overdue while the daemon
 * was down happens now), then every QUAR_TICK_SECONDS. */
static int
quar_timer_start(struct quarantine *q)
{
	if (q->srv->base == NULL)
		return 0;             /* no loop (tools, unit tests): no timer */
	q->timer = evtimer_new(q->srv->base, quar_timer_cb, q);
	if (q->timer == NULL)
		return -1;
	quar_timer_arm(q, QUAR_FIRST_TICK);
	return 0;
}

static int
quar_db_open(struct quarantine *q, char **err_r)
{
	char *path = buf_printf("%s/quarantine.db", q->dir);
	int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_FULLMUTEX, NULL);
	free(path);
	if (rc != SQLITE_OK)
		return quar_db_fail(q, err_r, "open");
	if (sqlite3_busy_timeout(q->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(q->db, quar_schema, NULL, NULL, NULL) != SQLITE_OK)
		return quar_db_fail(q, err_r, "schema");
	return 0;
}

static void
quar_free(struct quarantine *q)
{
	if (q == NULL)
		return;
	if (q->timer != NULL)
		event_free(q->timer);
	if (q->db != NULL)
		sqlite3_close(q->db);
	pthread_mutex_destroy(&q->mu);
	free(q->dir);
	free(q);
}

int
quarantine_open(struct server *srv, char **err_r)
{
	struct quarantine *q = xcalloc(1, sizeof(*q));
	q->srv = srv;
	pthread_mutex_init(&q->mu, NULL);
	q->dir = buf_printf("%s/quarantine", srv->cfg->data_dir);
	q->last_digest_day = -1;
	q->last_purge = 0;
	if (sys_mkdir_p(q->dir, 0700) < 0) {
		err_setf(err_r, "%s: %s", q->dir, strerror(errno));
		quar_free(q);
		return -1;
	}
	if (quar_db_open(q, err_r) < 0 || quar_timer_start(q) < 0) {
		if (err_r != NULL && *err_r == NULL)
			err_setf(err_r, "cannot start the quarantine timer");
		quar_free(q);
		return -1;
	}
	quar_sweep(q);
	srv->quarantine = q;
	return 0;
}

void
quarantine_close(struct server *srv)
{
	quar_free(srv->quarantine);
	srv->quarantine = NULL;
}

/* ---------------------------------------------------------------- put */

/* tmp file, fsync, close, rename to <id>.eml, fsync the directory. */
static int
quar_write_file(struct quarantine *q, const char *tenant, const char *id,
    const unsigned char *data, size_t len, char **err_r)
{
	char *tdir = quar_tenant_dir(q, tenant);
	char *tmp = quar_file(q, tenant, id, ".tmp");
	char *final = quar_file(q, tenant, id, ".eml");
	int rc = -1;
	int fd = -1;
	const char *step = "mkdir";
	if (sys_mkdir_p(tdir, 0700) < 0)
		goto out;
	step = "open";
	if ((fd = sys_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		goto out;
	step = "write";
	if (sys_write_all(fd, data, len) < 0)
		goto out;
	step = "fsync";
	if (sys_fsync(fd) < 0)
		goto out;
	step = "close";
	int cfd = fd;
	fd = -1;
	if (sys_close(cfd) < 0)
		goto out;
	step = "rename";
	if (sys_rename(tmp, final) < 0)
		goto out;
	step = "fsync dir";
	if (sys_fsync_dir(tdir) < 0) {
		int e = errno;
		(void)sys_unlink(final);
		errno = e;
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		int e = errno;
		err_setf(err_r, "quarantine %s %s: %s", step, tmp, strerror(e));
		if (fd >= 0)
			(void)close(fd);
		(void)unlink(tmp);
		errno = e;
	}
	free(tdir);
	free(tmp);
	free(final);
	return rc;
}

static int
quar_insert_rcpts(struct quarantine *q, const char *id, const struct queue_envelope *env)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, "INSERT OR IGNORE INTO item_rcpts (id, rcpt) VALUES (?, ?)",
	    -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < env->nrcpts && rc == 0; i++) {
		char *lc = str_lower(xstrdup(env->rcpts[i].addr ? env->rcpts[i].addr : ""));
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, lc, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = -1;
		sqlite3_reset(st);
		free(lc);
	}
	sqlite3_finalize(st);
	return rc;
}

static int
quar_insert(struct quarantine *q, const struct quarantine_item *item, const char *id,
    size_t len)
{
	const struct queue_envelope *env = item->env;
	json_t *rc = json_array();
	for (size_t i = 0; i < env->nrcpts; i++)
		json_array_append_new(rc, json_string(env->rcpts[i].addr ? env->rcpts[i].addr : ""));
	char *rcpts = json_dumps(rc, JSON_COMPACT);
	json_t *ej = quar_env_json(env);
	char *envtext = ej != NULL ? json_dumps(ej, JSON_COMPACT) : NULL;
	json_decref(rc);
	json_decref(ej);
	sqlite3_stmt *st = NULL;
	int ok = rcpts != NULL && envtext != NULL &&
	    sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	int began = ok;
	ok = ok && sqlite3_prepare_v2(q->db, "INSERT INTO items (id, tenant, qid, time, direction,"
	    " sender, rcpts, subject, hfrom, reasons, score, size, envelope)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, env->tenant, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, env->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
		sqlite3_bind_text(st, 5, queue_direction_name(env->direction), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, env->sender ? env->sender : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, rcpts, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, item->subject, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, item->from, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 10, item->action_reason ? item->action_reason : "", -1,
		    SQLITE_STATIC);
		sqlite3_bind_double(st, 11, item->score);
		sqlite3_bind_int64(st, 12, (sqlite3_int64)len);
		sqlite3_bind_text(st, 13, envtext, -1, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_DONE;
	}
	sqlite3_finalize(st);
	ok = ok && quar_insert_rcpts(q, id, env) == 0;
	ok = ok && sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	if (!ok && began)
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	free(rcpts);
	free(envtext);
	return ok ? 0 : -1;
}

int
quarantine_put(struct quarantine *q, const struct quarantine_item *item,
    const unsigned char *data, size_t len, char *id_out, char **err_r)
{
	id_out[0] = '\0';
	const struct queue_envelope *env = item->env;
	if (q == NULL) {
		err_setf(err_r, "the quarantine is not available");
		return -1;
	}
	if (env->tenant == NULL || !str_tenant_name_valid(env->tenant) || env->nrcpts == 0) {
		err_setf(err_r, "quarantine: a message needs a tenant and recipients");
		return -1;
	}
	char id[ID_LEN + 1];
	id_generate(id);
	if (quar_write_file(q, env->tenant, id, data, len, err_r) < 0)
		return -1;
	pthread_mutex_lock(&q->mu);
	int rc = quar_insert(q, item, id, len);
	if (rc < 0)
		quar_db_fail(q, err_r, "insert");
	pthread_mutex_unlock(&q->mu);
	if (rc < 0) {
		char *path = quar_file(q, env->tenant, id, ".eml");
		(void)sys_unlink(path);
		free(path);
		return -1;
	}
	memcpy(id_out, id, ID_LEN + 1);
	log_info("quarantined", "id=%s qid=%s tenant=%s from=%s rcpts=%zu size=%zu reasons=%s",
	    id, env->id, env->tenant, log_str(env->sender), env->nrcpts, len,
	    log_str(item->action_reason ? item->action_reason : ""));
	return 0;
}

/* --------------------------------------------------------- list, show */

#define QUAR_COLS "i.id, i.tenant, i.qid, i.time, i.direction, i.sender, i.rcpts, i.subject," \
    " i.hfrom, i.reasons, i.score, i.size, i.digest_sent, i.releasing, i.envelope"

static json_t *
quar_col_json(sqlite3_stmt *st, int i)
{
	const char *s = quar_col(st, i);
	return quar_json_text(s, strlen(s));
}

static json_t *
quar_row_json(sqlite3_stmt *st)
{
	json_t *rcpts = json_loads(quar_col(st, 6), 0, NULL);
	if (!json_is_array(rcpts)) {
		json_decref(rcpts);
		rcpts = json_array();
	}
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:f, s:I, s:b, s:b}",
	    "id", quar_col(st, 0), "tenant", quar_col(st, 1), "qid", quar_col(st, 2),
	    "time", (json_int_t)sqlite3_column_int64(st, 3), "direction", quar_col(st, 4),
	    "sender", quar_col_json(st, 5), "rcpts", rcpts,
	    "subject", quar_col_json(st, 7),
	    "from", quar_col_json(st, 8),
	    "reasons", quar_col_json(st, 9), "score", sqlite3_column_double(st, 10),
	    "size", (json_int_t)sqlite3_column_int64(st, 11),
	    "digest_sent", sqlite3_column_int(st, 12) != 0,
	    "releasing", sqlite3_column_int(st, 13) != 0);
}

json_t *
quarantine_list(struct quarantine *q, const char *tenant, const char *rcpt,
    size_t limit, char **err_r)
{
	if (q == NULL) {
		err_setf(err_r, "the quarantine is not available");
		return NULL;
	}
	if (limit == 0 || limit > QUAR_LIST_MAX)
		limit = QUAR_LIST_MAX;
	char *lc = rcpt != NULL ? str_lower(xstrdup(rcpt)) : NULL;
	const char *sql = rcpt == NULL ?
	    "SELECT " QUAR_COLS " FROM items i WHERE i.tenant = ?1"
	    " ORDER BY i.time DESC, i.id DESC LIMIT ?2" :
	    "SELECT " QUAR_COLS " FROM items i JOIN item_rcpts r ON r.id = i.id"
	    " WHERE i.tenant = ?1 AND r.rcpt = ?3 ORDER BY i.time DESC, i.id DESC LIMIT ?2";
	pthread_mutex_lock(&q->mu);
	sqlite3_stmt *st = NULL;
	json_t *arr = NULL;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) {
		quar_db_fail(q, err_r, "list");
	} else {
		sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
		if (lc != NULL)
			sqlite3_bind_text(st, 3, lc, -1, SQLITE_STATIC);
		arr = json_array();
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			json_array_append_new(arr, quar_row_json(st));
		if (rc != SQLITE_DONE) {
			quar_db_fail(q, err_r, "list");
			json_decref(arr);
			arr = NULL;
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->mu);
	free(lc);
	return arr;
}

/* The row of (tenant, id) as JSON plus its envelope text; 1 found, 0 not, -1 error. */
static int
quar_get(struct quarantine *q, const char *tenant, const char *id, json_t **row_r,
    char **envelope_r, char **err_r)
{
	*row_r = NULL;
	if (envelope_r != NULL)
		*envelope_r = NULL;
	if (!id_valid(id))
		return 0;
	pthread_mutex_lock(&q->mu);
	sqlite3_stmt *st = NULL;
	int found = -1;
	if (sqlite3_prepare_v2(q->db, "SELECT " QUAR_COLS " FROM items i WHERE i.id = ? AND"
	    " i.tenant = ?", -1, &st, NULL) != SQLITE_OK) {
		quar_db_fail(q, err_r, "get");
	} else {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*row_r = quar_row_json(st);
			if (envelope_r != NULL)
				*envelope_r = xstrdup(quar_col(st, 14));
			found = 1;
		} else if (rc == SQLITE_DONE) {
			found = 0;
		} else {
			quar_db_fail(q, err_r, "get");
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->mu);
	return found;
}

static int
quar_not_found(char **err_r, const char *id)
{
	err_setf(err_r, "quarantined message not found: %s", id);
	return -1;
}

/* The header section of the stored file (up to the blank line), capped. */
static json_t *
quar_headers_json(struct quarantine *q, const char *tenant, const char *id)
{
	char *path = quar_file(q, tenant, id, ".eml");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return json_null();
	char *hb = xmalloc(QUAR_MAX_HEADERS);
	size_t n = 0;
	while (n < QUAR_MAX_HEADERS) {
		ssize_t r = read(fd, hb + n, QUAR_MAX_HEADERS - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	size_t end = n;
	for (size_t i = 0; i + 1 < n; i++) {
		if (hb[i] == '\n' && (hb[i + 1] == '\n' ||
		    (hb[i + 1] == '\r' && i + 2 < n && hb[i + 2] == '\n'))) {
			end = i + 1;
			break;
		}
	}
	json_t *j = quar_json_text(hb, end);
	free(hb);
	return j;
}

json_t *
quarantine_show(struct quarantine *q, const char *tenant, const char *id, char **err_r)
{
	if (q == NULL) {
		err_setf(err_r, "the quarantine is not available");
		return NULL;
	}
	json_t *row = NULL;
	char *envtext = NULL;
	int f = quar_get(q, tenant, id, &row, &envtext, err_r);
	if (f <= 0) {
		if (f == 0)
			quar_not_found(err_r, id);
		return NULL;
	}
	struct queue_envelope env;
	if (quar_env_parse(envtext, &env) == 0) {
		json_object_set_new(row, "client", json_string(env.client_addr ?
		    env.client_addr : ""));
		json_object_set_new(row, "helo", quar_json_text(env.client_helo ? env.client_helo :
		    "", env.client_helo ? strlen(env.client_helo) : 0));
		json_object_set_new(row, "flags", json_integer((json_int_t)env.flags));
		json_object_set_new(row, "arrival", json_integer((json_int_t)env.arrival));
		if (env.auth_user != NULL)
			json_object_set_new(row, "auth_user", json_string(env.auth_user));
		queue_envelope_free(&env);
	}
	json_object_set_new(row, "headers", quar_headers_json(q, tenant, id));
	free(envtext);
	return row;
}

/* ------------------------------------------------------------- delete */

/* Row first, then file: a crash between leaves an orphan the next open removes. */
static int
quar_remove(struct quarantine *q, const char *tenant, const char *id, char **err_r)
{
	pthread_mutex_lock(&q->mu);
	int ok = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	int began = ok;
	sqlite3_stmt *st = NULL;
	int changed = 0;
	ok = ok && sqlite3_prepare_v2(q->db, "DELETE FROM items WHERE id = ? AND tenant = ?", -1,
	    &st, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_DONE;
		changed = sqlite3_changes(q->db);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (ok && changed > 0) {
		ok = sqlite3_prepare_v2(q->db, "DELETE FROM item_rcpts WHERE id = ?", -1, &st,
		    NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			ok = sqlite3_step(st) == SQLITE_DONE;
		}
		sqlite3_finalize(st);
	}
	ok = ok && sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	if (!ok) {
		quar_db_fail(q, err_r, "delete");
		if (began)
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	}
	pthread_mutex_unlock(&q->mu);
	if (!ok)
		return -1;
	if (changed == 0)
		return quar_not_found(err_r, id);
	char *path = quar_file(q, tenant, id, ".eml");
	if (sys_unlink(path) < 0 && errno != ENOENT)
		log_warn("quarantine_unlink_failed", "file=%s error=%s", log_str(path),
		    strerror(errno));
	free(path);
	return 0;
}

int
quarantine_delete(struct quarantine *q, const char *tenant, const char *id, char **err_r)
{
	if (q == NULL) {
		err_setf(err_r, "the quarantine is not available");
		return -1;
	}
	if (!id_valid(id))
		return quar_not_found(err_r, id);
	if (quar_remove(q, tenant, id, err_r) < 0)
		return -1;
	log_info("quarantine_deleted", "id=%s tenant=%s", id, tenant);
	return 0;
}

/* ------------------------------------------------------------ release */

struct quar_release {
	struct quarantine *q;
	char *tenant;
	char id[ID_LEN + 1];
	char qid[ID_LEN + 1];
};

/* Sets releasing = to where it is `from`; 1 changed, 0 not, -1 error. */
static int
quar_set_releasing(struct quarantine *q, const char *tenant, const char *id, int from, int to)
{
	pthread_mutex_lock(&q->mu);
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (sqlite3_prepare_v2(q->db, "UPDATE items SET releasing = ?3 WHERE id = ?1 AND"
	    " tenant = ?2 AND releasing = ?4", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, to);
		sqlite3_bind_int(st, 4, from);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = sqlite3_changes(q->db) > 0;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

static void
quar_release_done(void *arg, int error)
{
	struct quar_release *r = arg;
	char *err = NULL;
	if (error != 0) {
		log_error("quarantine_release_failed", "id=%s tenant=%s error=%s", r->id, r->tenant,
		    strerror(error));
		(void)quar_set_releasing(r->q, r->tenant, r->id, 1, 0);
	} else if (quar_remove(r->q, r->tenant, r->id, &err) < 0) {
		log_error("quarantine_release_cleanup_failed", "id=%s tenant=%s error=%s", r->id,
		    r->tenant, log_str(err));
		free(err);
	} else {
		log_info("quarantine_released", "id=%s tenant=%s queued_as=%s", r->id, r->tenant,
		    r->qid);
	}
	free(r->tenant);
	free(r);
}

int
quarantine_read(struct quarantine *q, const char *tenant, const char *id, unsigned char **data_r,
    size_t *len_r, char **err_r)
{
	*data_r = NULL;
	*len_r = 0;
	json_t *row = NULL;
	char *envtext = NULL;
	int f = q != NULL ? quar_get(q, tenant, id, &row, &envtext, err_r) : -1;
	json_decref(row);
	free(envtext);
	if (f <= 0)
		return f == 0 ? quar_not_found(err_r, id) : -1;
	char *path = quar_file(q, tenant, id, ".eml");
	char *data = NULL;
	int rc = sys_read_file(path, QUAR_MAX_FILE, &data, len_r);
	free(path);
	if (rc < 0) {
		err_setf(err_r, "quarantined message %s: %s", id, strerror(errno));
		return -1;
	}
	*data_r = (unsigned char *)data;
	return 0;
}

int
quarantine_release(struct server *srv, const char *tenant, const char *id, char **err_r)
{
	struct quarantine *q = srv->quarantine;
	if (q == NULL || srv->queue == NULL) {
		err_setf(err_r, "the quarantine is not available");
		return -1;
	}
	json_t *row = NULL;
	char *envtext = NULL;
	int f = quar_get(q, tenant, id, &row, &envtext, err_r);
	json_decref(row);
	if (f <= 0) {
		free(envtext);
		return f == 0 ? quar_not_found(err_r, id) : -1;
	}
	struct queue_envelope env;
	int prc = quar_env_parse(envtext, &env);
	free(envtext);
	if (prc < 0) {
		err_setf(err_r, "quarantined message %s: unreadable envelope", id);
		return -1;
	}
	char *path = quar_file(q, tenant, id, ".eml");
	char *data = NULL;
	size_t len = 0;
	int rrc = sys_read_file(path, QUAR_MAX_FILE, &data, &len);
	if (rrc < 0)
		err_setf(err_r, "quarantined message %s: %s", id, strerror(errno));
	free(path);
	int sr = rrc < 0 ? -1 : quar_set_releasing(q, tenant, id, 0, 1);
	if (rrc == 0 && sr <= 0)
		err_setf(err_r, sr == 0 ? "quarantined message %s: already being released" :
		    "quarantined message %s: database error", id);
	if (sr <= 0) {
		free(data);
		queue_envelope_free(&env);
		return -1;
	}
	struct quar_release *r = xcalloc(1, sizeof(*r));
	r->q = q;
	r->tenant = xstrdup(tenant);
	memcpy(r->id, id, ID_LEN + 1);
	id_generate(env.id);
	memcpy(r->qid, env.id, ID_LEN + 1);
	env.flags |= QUEUE_F_RELEASED;
	queue_inject(srv->queue, &env, data, len, quar_release_done, r);
	free(data);
	queue_envelope_free(&env);
	return 0;
}

/* ------------------------------------------------------------- digest */

struct quar_digest_item {
	char *id, *from, *subject, *reasons;
	time_t time;
};

/* One line of untrusted text for a plain-text body: controls become spaces, capped. */
static void
quar_digest_text(struct buf *b, const char *s, size_t max)
{
	size_t n = 0;
	for (; *s != '\0' && n < max; s++, n++)
		buf_append_char(b, ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s);
	if (*s != '\0')
		buf_append_str(b, "...");
}

static char *
quar_digest_message(struct server *srv, const char *tenant, const char *rcpt,
    const struct quar_digest_item *items, size_t n, size_t more, size_t *len_r)
{
	struct buf m = BUF_INIT;
	char date[64], mid[ID_LEN + 1];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	id_generate(mid);
	const char *host = srv->cfg->hostname ? srv->cfg->hostname : "localhost";
	buf_appendf(&m, "From: Mailark quarantine <postmaster@%s>\r\nTo: <%s>\r\n"
	    "Subject: Quarantine digest: %zu held message%s\r\nDate: %s\r\n"
	    "Message-ID: <%s.digest@%s>\r\nAuto-Submitted: auto-generated\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n", host, rcpt, n + more,
	    n + more == 1 ? "" : "s", date, mid, host);
	buf_appendf(&m, "These messages addressed to %s were held in quarantine and not "
	    "delivered.\r\n\r\n", rcpt);
	for (size_t i = 0; i < n; i++) {
		char when[32];
		gmtime_r(&items[i].time, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
		buf_appendf(&m, "Date:    %s\r\nFrom:    ", when);
		quar_digest_text(&m, items[i].from, 200);
		buf_append_str(&m, "\r\nSubject: ");
		quar_digest_text(&m, items[i].subject, 200);
		buf_append_str(&m, "\r\nReason:  ");
		quar_digest_text(&m, items[i].reasons, 200);
		buf_appendf(&m, "\r\nId:      %s\r\n\r\n", items[i].id);
	}
	if (more > 0)
		buf_appendf(&m, "... and %zu more.\r\n\r\n", more);
	buf_appendf(&m, "To release a message, ask your administrator, or use:\r\n"
	    "  mailark quarantine release %s ID\r\n"
	    "  POST /api/v1/tenants/%s/quarantine/ID/release\r\n", tenant, tenant);
	*len_r = m.len;
	return buf_steal(&m);
}

static void
quar_digest_items_free(struct quar_digest_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].id);
		free(items[i].from);
		free(items[i].subject);
		free(items[i].reasons);
	}
	free(items);
}

/* Items of one recipient not yet in a digest (up to QUAR_DIGEST_MAX), and how many more. */
static int
quar_digest_collect(struct quarantine *q, const char *tenant, const char *rcpt,
    struct quar_digest_item **items_r, size_t *n_r, size_t *more_r)
{
	sqlite3_stmt *st = NULL;
	*items_r = NULL;
	*n_r = *more_r = 0;
	if (sqlite3_prepare_v2(q->db, "SELECT i.id, i.hfrom, i.subject, i.reasons, i.time, i.sender"
	    " FROM items i JOIN item_rcpts r ON r.id = i.id WHERE i.tenant = ? AND r.rcpt = ?"
	    " AND i.digest_sent = 0 ORDER BY i.time, i.id", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rcpt, -1, SQLITE_STATIC);
	struct quar_digest_item *items = xcalloc(QUAR_DIGEST_MAX, sizeof(*items));
	size_t n = 0, more = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == QUAR_DIGEST_MAX) {
			more++;
			continue;
		}
		items[n].id = xstrdup(quar_col(st, 0));
		const char *from = quar_col(st, 1);
		items[n].from = xstrdup(*from ? from : quar_col(st, 5));
		items[n].subject = xstrdup(quar_col(st, 2));
		items[n].reasons = xstrdup(quar_col(st, 3));
		items[n].time = (time_t)sqlite3_column_int64(st, 4);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		quar_digest_items_free(items, n);
		return -1;
	}
	*items_r = items;
	*n_r = n;
	*more_r = more;
	return 0;
}

static void
quar_digest_done(void *arg, int error)
{
	char *rcpt = arg;
	if (error != 0)
		log_error("quarantine_digest_failed", "rcpt=%s error=%s", log_str(rcpt),
		    strerror(error));
	free(rcpt);
}

static void
quar_digest_send(struct server *srv, const char *tenant, const char *rcpt,
    const struct quar_digest_item *items, size_t n, size_t more)
{
	size_t len = 0;
	char *msg = quar_digest_message(srv, tenant, rcpt, items, n, more, &len);
	struct queue_rcpt r = { .addr = (char *)rcpt, .state = RCPT_PENDING };
	struct queue_envelope env = {
		.direction = QUEUE_INBOUND, .tenant = (char *)tenant, .sender = (char *)"",
		.body_8bit = 1, .client_addr = (char *)"local", .flags = QUEUE_F_RELEASED,
		.arrival = time(NULL), .rcpts = &r, .nrcpts = 1,
	};
	id_generate(env.id);
	log_info("quarantine_digest", "id=%s tenant=%s rcpt=%s items=%zu", env.id, tenant,
	    log_str(rcpt), n + more);
	queue_inject(srv->queue, &env, msg, len, quar_digest_done, xstrdup(rcpt));
	free(msg);
}

/* The first column of every row of a prepared, bound statement (finalized
 * here); *n_r counts them. */
static char **
quar_rows_column(sqlite3_stmt *st, size_t *n_r)
{
	size_t cap = 16;
	char **list = xcalloc(cap, sizeof(*list));
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (*n_r == cap) {
			cap *= 2;
			list = xrealloc(list, cap * sizeof(*list));
		}
		list[(*n_r)++] = xstrdup(quar_col(st, 0));
	}
	sqlite3_finalize(st);
	return list;
}

static char **
quar_column_list(struct quarantine *q, const char *sql, const char *arg, size_t *n_r)
{
	sqlite3_stmt *st = NULL;
	*n_r = 0;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	return quar_rows_column(st, n_r);
}

static void
quar_strings_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static int
quar_mark_digested(struct quarantine *q, const struct quar_digest_item *items, size_t n)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, "UPDATE items SET digest_sent = 1 WHERE id = ?", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_text(st, 1, items[i].id, -1, SQLITE_STATIC);
		(void)sqlite3_step(st);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return 0;
}

/*
 * One tenant's digests: each recipient with undigested items gets one.
 * Items are marked once every recipient's digest is queued (an item
 * addressed to two users appears in both digests).
 */
static int
quar_digest_tenant(struct server *srv, const char *tenant)
{
	struct quarantine *q = srv->quarantine;
	int sent = 0;
	pthread_mutex_lock(&q->mu);
	size_t nr = 0;
	char **rcpts = quar_column_list(q, "SELECT DISTINCT r.rcpt FROM item_rcpts r JOIN items i"
	    " ON i.id = r.id WHERE i.tenant = ? AND i.digest_sent = 0 ORDER BY r.rcpt", tenant, &nr);
	size_t nall = 0;
	struct quar_digest_item *all = NULL;
	for (size_t i = 0; rcpts != NULL && i < nr; i++) {
		struct quar_digest_item *items;
		size_t n, more;
		if (quar_digest_collect(q, tenant, rcpts[i], &items, &n, &more) < 0 || n == 0) {
			if (n == 0)
				quar_digest_items_free(items, 0);
			continue;
		}
		quar_digest_send(srv, tenant, rcpts[i], items, n, more);
		sent++;
		all = xrealloc(all, (nall + n) * sizeof(*all));
		memcpy(all + nall, items, n * sizeof(*items));
		nall += n;
		free(items);
	}
	if (nall > 0)
		(void)quar_mark_digested(q, all, nall);
	pthread_mutex_unlock(&q->mu);
	quar_digest_items_free(all, nall);
	quar_strings_free(rcpts, nr);
	return sent;
}

static int
quar_tenant_digest_on(struct server *srv, const char *tenant)
{
	if (srv->hygiene == NULL)
		return policy_defaults()->quarantine_digest;
	const struct hygiene_policy *p = policy_get(srv->hygiene, tenant);
	int on = p->quarantine_digest;
	policy_release(&p);
	return on;
}

int
quarantine_digest_run(struct server *srv, const char *tenant, char **err_r)
{
	struct quarantine *q = srv->quarantine;
	if (q == NULL || srv->queue == NULL) {
		err_setf(err_r, "the quarantine is not available");
		return -1;
	}
	size_t nt = 0;
	char **tenants;
	if (tenant != NULL) {
		tenants = xcalloc(1, sizeof(*tenants));
		tenants[nt++] = xstrdup(tenant);
	} else {
		pthread_mutex_lock(&q->mu);
		tenants = quar_column_list(q, "SELECT DISTINCT tenant FROM items WHERE"
		    " digest_sent = 0", NULL, &nt);
		pthread_mutex_unlock(&q->mu);
	}
	int sent = 0;
	for (size_t i = 0; tenants != NULL && i < nt; i++)
		if (quar_tenant_digest_on(srv, tenants[i]))
			sent += quar_digest_tenant(srv, tenants[i]);
	quar_strings_free(tenants, nt);
	return sent;
}

/* -------------------------------------------------------------- timer */

/* Ids of the tenant's items stored before `before` (not being released). */
static char **
quar_expired(struct quarantine *q, const char *tenant, time_t before, size_t *n_r)
{
	sqlite3_stmt *st = NULL;
	*n_r = 0;
	if (sqlite3_prepare_v2(q->db, "SELECT id FROM items WHERE tenant = ? AND releasing = 0"
	    " AND time < ?", -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)before);
	return quar_rows_column(st, n_r);
}

/* Removes the items older than their tenant's quarantine.retention_days. */
static void
quar_purge(struct server *srv, time_t now)
{
	struct quarantine *q = srv->quarantine;
	size_t nt = 0;
	pthread_mutex_lock(&q->mu);
	char **tenants = quar_column_list(q, "SELECT DISTINCT tenant FROM items", NULL, &nt);
	pthread_mutex_unlock(&q->mu);
	for (size_t t = 0; tenants != NULL && t < nt; t++) {
		long days = policy_defaults()->quarantine_days;
		if (srv->hygiene != NULL) {
			const struct hygiene_policy *p = policy_get(srv->hygiene, tenants[t]);
			days = p->quarantine_days;
			policy_release(&p);
		}
		pthread_mutex_lock(&q->mu);
		size_t n = 0;
		char **ids = quar_expired(q, tenants[t], now - (time_t)days * 86400, &n);
		pthread_mutex_unlock(&q->mu);
		for (size_t i = 0; ids != NULL && i < n; i++) {
			char *err = NULL;
			if (quar_remove(q, tenants[t], ids[i], &err) < 0) {
				log_warn("quarantine_purge_failed", "id=%s error=%s", ids[i], log_str(err));
				free(err);
			}
		}
		if (n > 0)
			log_info("quarantine_purged", "tenant=%s items=%zu retention_days=%ld",
			    tenants[t], n, days);
		quar_strings_free(ids, n);
	}
	quar_strings_free(tenants, nt);
}

static void
quar_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct quarantine *q = arg;
	struct server *srv = q->srv;
	time_t now = time(NULL);
	if (srv->hygiene == NULL) {           /* no policies (tools, tests): nothing to do */
		quar_timer_arm(q, QUAR_TICK_SECONDS);
		return;
	}
	if (now - q->last_purge >= QUAR_PURGE_EVERY) {
		q->last_purge = now;
		quar_purge(srv, now);
	}
	struct tm tm;
	gmtime_r(&now, &tm);
	int day = (int)(now / 86400);
	if ((uint64_t)tm.tm_hour == srv->cfg->digest_hour && q->last_digest_day != day) {
		q->last_digest_day = day;
		char *err = NULL;
		int n = quarantine_digest_run(srv, NULL, &err);
		if (n < 0) {
			log_warn("quarantine_digest_failed", "error=%s", log_str(err));
			free(err);
		}
	}
	quar_timer_arm(q, QUAR_TICK_SECONDS);
}
