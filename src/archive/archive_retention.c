/*
 * archive_retention.c — retention policy, expiry computation, legal holds,
 * cases, the retention lock and four-eyes approvals (see the header for
 * the semantics).  The purge is in the second half of this file.
 *
 * Every change goes through one path: rt_change() checks it (lock, state),
 * decides whether it needs a second admin, and either records an approval
 * or carries it out (rt_exec) in the same store.db transaction.  A change
 * of the policy sets settings.recompute_next = 1; the recompute then walks
 * every indexed entry in batches (archive_retention_recompute), and a
 * crash in between is finished by the next change or purge.
 */
#include "archive/archive_retention.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "archive/archive_index.h"
#include "archive/archive_parse.h"
#include "archive/archive_store.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"

/* Entries recomputed per turn of the tenant lock. */
#define RT_RECOMPUTE_BATCH 10000
/* Entries purged per turn of the tenant lock. */
#define RT_PURGE_BATCH 500
/* Longest case / hold name. */
#define RT_NAME_MAX 128
/* Longest rule match. */
#define RT_MATCH_MAX 320

static const char *const rt_schema_sql =
    "CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS retention_rules(id INTEGER PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK(kind IN('folder','address','domain','keyword')),"
    " match TEXT NOT NULL, days INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    " created_by TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cases(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " description TEXT, created_at INTEGER, created_by TEXT, closed_at INTEGER);"
    "CREATE TABLE IF NOT EXISTS holds(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " case_id INTEGER REFERENCES cases(id), mailbox TEXT, query TEXT, date_from INTEGER,"
    " date_to INTEGER, created_at INTEGER, created_by TEXT, released_at INTEGER,"
    " released_by TEXT);"
    "CREATE TABLE IF NOT EXISTS approvals(id INTEGER PRIMARY KEY, action TEXT NOT NULL,"
    " args TEXT NOT NULL, requested_by TEXT NOT NULL, requested_at INTEGER NOT NULL,"
    " state TEXT NOT NULL, decided_by TEXT, decided_at INTEGER);"
    "CREATE TABLE IF NOT EXISTS purges(id INTEGER PRIMARY KEY, started_at INTEGER,"
    " finished_at INTEGER, messages INTEGER, blobs INTEGER, by TEXT, dry_run INTEGER);"
    "INSERT OR IGNORE INTO settings(key, value) VALUES ('default_days', '3650'),"
    " ('locked', '0'), ('four_eyes', '1'), ('four_eyes_export', '0'),"
    " ('retention_applied_upto', '0'), ('recompute_next', '0');";

/* ---------------------------------------------------------------- helpers */

static void rt_err(char **err_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
rt_err(char **err_r, const char *fmt, ...)
{
	if (err_r == NULL)
		return;
	struct buf e = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&e, fmt, ap);
	va_end(ap);
	free(*err_r);
	*err_r = buf_steal(&e);
}

static int
rt_db_err(sqlite3 *db, char **err_r, const char *what)
{
	rt_err(err_r, "retention: database error (%s): %s", what, sqlite3_errmsg(db));
	return -1;
}

static int
rt_exec(sqlite3 *db, const char *sql, char **err_r)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		rt_err(err_r, "retention: database error: %s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *
rt_prepare(sqlite3 *db, const char *sql, char **err_r)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		rt_db_err(db, err_r, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* Steps a statement expected to finish (no rows); finalizes it.  0 / -1. */
static int
rt_step_done(sqlite3 *db, sqlite3_stmt *st, char **err_r, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return rt_db_err(db, err_r, what);
	return 0;
}

static void
rt_bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void
rt_bind_ll_or_null(sqlite3_stmt *st, int i, long long v)
{
	if (v >= 0)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* One integer from a one-row query with an optional int64 parameter. */
static int
rt_query_ll(sqlite3 *db, const char *sql, long long param, long long *v_r, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, sql, err_r);
	if (st == NULL)
		return -1;
	if (sqlite3_bind_parameter_count(st) > 0)
		sqlite3_bind_int64(st, 1, param);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v_r = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		*v_r = 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rt_db_err(db, err_r, "query");
	return 0;
}

static int
rt_setting_get(sqlite3 *db, const char *key, long long *v_r, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?1",
	    err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*v_r = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rt_db_err(db, err_r, "settings");
	return 0;
}

static int
rt_setting_set_text(sqlite3 *db, const char *key, const char *value, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db,
	    "INSERT INTO settings(key, value) VALUES (?1, ?2) "
	    "ON CONFLICT(key) DO UPDATE SET value = excluded.value", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
	return rt_step_done(db, st, err_r, "settings");
}

static int
rt_setting_set(sqlite3 *db, const char *key, long long value, char **err_r)
{
	char v[32];
	snprintf(v, sizeof(v), "%lld", value);
	return rt_setting_set_text(db, key, v, err_r);
}

/* Is `a` days shorter than `b` days (-1 = forever)? */
static int
rt_days_shorter(long long a, long long b)
{
	if (a == b || a == -1)
		return 0;
	return b == -1 || a < b;
}

static int
rt_days_ok(long long days, char **err_r)
{
	if (days == -1 || (days >= 0 && days <= ARCHIVE_RETENTION_MAX_DAYS))
		return 0;
	rt_err(err_r, "bad retention %lld days (-1 for ever, or 0..%d)", days,
	    ARCHIVE_RETENTION_MAX_DAYS);
	return -1;
}

static int
rt_name_ok(const char *what, const char *name, char **err_r)
{
	size_t n = name ? strlen(name) : 0;
	int ok = n > 0 && n <= RT_NAME_MAX;
	for (size_t i = 0; ok && i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			ok = 0;
	if (!ok)
		rt_err(err_r, "bad %s name (1..%d printable characters)", what, RT_NAME_MAX);
	return ok ? 0 : -1;
}

static void
rt_fmt_time(long long t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, n, "%lld", t);
}

/* -1 with "retention is locked since ..." when the tenant is locked; 0 otherwise. */
static int
rt_refuse_if_locked(sqlite3 *db, const char *what, char **err_r)
{
	long long locked, at;
	if (rt_setting_get(db, "locked", &locked, err_r) < 0 ||
	    rt_setting_get(db, "locked_at", &at, err_r) < 0)
		return -1;
	if (!locked)
		return 0;
	char when[64];
	rt_fmt_time(at, when, sizeof(when));
	rt_err(err_r, "retention is locked since %s: %s", when, what);
	return -1;
}

/* Acquires the tenant and returns its store connection. */
static int
rt_acquire(struct archive *a, const char *tenant, int create, struct archive_tenant **t_r,
    sqlite3 **db_r, char **err_r)
{
	if (archive_tenant_acquire(a, tenant, create, t_r, err_r) < 0)
		return -1;
	*db_r = archive_store_db(archive_tenant_store(*t_r));
	return 0;
}

static int
rt_begin(struct archive_tenant *t, char **err_r)
{
	return archive_store_begin(archive_tenant_store(t), err_r);
}

/* Commits when rc >= 0, rolls back otherwise; returns rc (or -1 if the commit failed). */
static int
rt_end(struct archive_tenant *t, int rc, char **err_r)
{
	if (rc < 0) {
		archive_store_rollback(archive_tenant_store(t));
		return rc;
	}
	if (archive_store_commit(archive_tenant_store(t), err_r) < 0)
		return -1;
	return rc;
}

int
archive_retention_schema(struct sqlite3 *db, char **err_r)
{
	return rt_exec(db, rt_schema_sql, err_r);
}

/* ----------------------------------------------------------------- expiry */

/* ATTACHes index.db (next to store.db) as idx on the store connection, for
 * the keyword and From-address rules. */
static int
rt_attach_index(struct archive_tenant *t, sqlite3 *db, char **err_r)
{
	if (sqlite3_db_filename(db, "idx") != NULL)
		return 0;
	const char *store = sqlite3_db_filename(db, "main");
	const char *slash = store != NULL ? strrchr(store, '/') : NULL;
	if (slash == NULL) {
		rt_err(err_r, "retention: cannot locate index.db of tenant '%s'",
		    archive_tenant_name(t));
		return -1;
	}
	struct buf path = BUF_INIT;
	buf_append(&path, store, (size_t)(slash - store) + 1);
	buf_append_str(&path, "index.db");
	sqlite3_stmt *st = rt_prepare(db, "ATTACH DATABASE ?1 AS idx", err_r);
	if (st != NULL)
		sqlite3_bind_text(st, 1, buf_cstr(&path), -1, SQLITE_TRANSIENT);
	buf_free(&path);
	return st != NULL ? rt_step_done(db, st, err_r, "attach index") : -1;
}

/* The entries of [?1, ?2] a rule of this kind matches (?3 = the match). */
static const char *
rt_match_sql(const char *kind)
{
	if (strcmp(kind, "folder") == 0)
		return "SELECT id FROM messages WHERE id BETWEEN ?1 AND ?2 AND (lower(folder) = ?3"
		    " OR substr(lower(folder), 1, length(?3) + 1) = ?3 || '/')";
	if (strcmp(kind, "address") == 0)
		return "SELECT id FROM messages WHERE id BETWEEN ?1 AND ?2 AND (lower(mailbox) = ?3"
		    " OR lower(env_from) = ?3 OR instr(',' || lower(replace(env_rcpts, ' ', ''))"
		    " || ',', ',' || ?3 || ',') > 0)"
		    " UNION SELECT id FROM idx.docs WHERE id BETWEEN ?1 AND ?2"
		    " AND lower(from_addr) = ?3";
	if (strcmp(kind, "domain") == 0)
		return "SELECT id FROM messages WHERE id BETWEEN ?1 AND ?2 AND ("
		    "substr(lower(mailbox), -length(?3) - 1) = '@' || ?3"
		    " OR substr(lower(env_from), -length(?3) - 1) = '@' || ?3"
		    " OR instr(lower(replace(env_rcpts, ' ', '')) || ',', '@' || ?3 || ',') > 0)"
		    " UNION SELECT id FROM idx.docs WHERE id BETWEEN ?1 AND ?2"
		    " AND substr(lower(from_addr), -length(?3) - 1) = '@' || ?3";
	return "SELECT rowid FROM idx.fts WHERE fts MATCH ?3 AND rowid BETWEEN ?1 AND ?2";
}

/* `{subject body} : "kw"` with the keyword's quotes doubled (an FTS5 string). */
static char *
rt_fts_phrase(const char *kw)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "{subject body} : \"");
	for (const char *p = kw; *p; p++) {
		if (*p == '"')
			buf_append_char(&b, '"');
		buf_append_char(&b, *p);
	}
	buf_append_char(&b, '"');
	return buf_steal(&b);
}

/* Raises temp.rt_days for the entries one rule matches. */
static int
rt_apply_rule(sqlite3 *db, long long from, long long to, const char *kind, const char *match,
    long long days, char **err_r)
{
	struct buf sql = BUF_INIT;
	buf_appendf(&sql, "UPDATE temp.rt_days SET days = CASE WHEN days = -1 OR ?4 = -1 THEN -1"
	    " WHEN ?4 > days THEN ?4 ELSE days END WHERE id IN (%s)", rt_match_sql(kind));
	sqlite3_stmt *st = rt_prepare(db, buf_cstr(&sql), err_r);
	buf_free(&sql);
	if (st == NULL)
		return -1;
	char *m = strcmp(kind, "keyword") == 0 ? rt_fts_phrase(match) : xstrdup(match);
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	sqlite3_bind_text(st, 3, m, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, days);
	free(m);
	return rt_step_done(db, st, err_r, "retention rule");
}

/* Every rule longer than the default raises the entries it matches. */
static int
rt_apply_rules(sqlite3 *db, long long from, long long to, long long def, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "SELECT kind, match, days FROM retention_rules "
	    "ORDER BY id", err_r);
	if (st == NULL)
		return -1;
	int rc, ret = 0;
	while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		long long days = sqlite3_column_int64(st, 2);
		if (!rt_days_shorter(def, days))
			continue;
		ret = rt_apply_rule(db, from, to, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1), days, err_r);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = rt_db_err(db, err_r, "rules");
	sqlite3_finalize(st);
	return ret;
}

/* Writes expires_at from temp.rt_days; when locked, never lower than before
 * for entries whose expiry was computed already (id <= applied). */
static int
rt_write_expiry(sqlite3 *db, long long locked, long long applied, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db,
	    "UPDATE messages SET expires_at = CASE"
	    " WHEN ?1 = 0 OR messages.id > ?2 THEN n.e"
	    " WHEN messages.expires_at IS NULL OR n.e IS NULL THEN NULL"
	    " ELSE max(messages.expires_at, n.e) END"
	    " FROM (SELECT d.id AS id, CASE WHEN d.days = -1 THEN NULL"
	    "   ELSE min(m.msg_date, m.archived_at) + d.days * 86400 END AS e"
	    "   FROM temp.rt_days d JOIN messages m ON m.id = d.id) AS n"
	    " WHERE messages.id = n.id", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, locked);
	sqlite3_bind_int64(st, 2, applied);
	return rt_step_done(db, st, err_r, "expiry");
}

/* Advances retention_applied_upto to `to` when nothing before `from` was missed. */
static int
rt_advance_applied(sqlite3 *db, long long applied, long long from, long long to, char **err_r)
{
	if (to <= applied)
		return 0;
	long long gap = 0;
	if (from > applied + 1) {
		sqlite3_stmt *st = rt_prepare(db, "SELECT count(*) FROM messages WHERE id > ?1 "
		    "AND id < ?2", err_r);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, applied);
		sqlite3_bind_int64(st, 2, from);
		int rc = sqlite3_step(st);
		gap = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
		sqlite3_finalize(st);
	}
	return gap == 0 ? rt_setting_set(db, "retention_applied_upto", to, err_r) : 0;
}

/* The expiry of [from, to], inside the caller's transaction. */
static int
rt_apply_range(sqlite3 *db, long long from, long long to, char **err_r)
{
	long long def, locked, applied;
	if (rt_setting_get(db, "default_days", &def, err_r) < 0 ||
	    rt_setting_get(db, "locked", &locked, err_r) < 0 ||
	    rt_setting_get(db, "retention_applied_upto", &applied, err_r) < 0)
		return -1;
	if (rt_exec(db, "CREATE TEMP TABLE IF NOT EXISTS rt_days(id INTEGER PRIMARY KEY, "
	    "days INTEGER NOT NULL); DELETE FROM temp.rt_days;", err_r) < 0)
		return -1;
	sqlite3_stmt *st = rt_prepare(db, "INSERT INTO temp.rt_days(id, days) SELECT id, ?3 "
	    "FROM messages WHERE id BETWEEN ?1 AND ?2", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	sqlite3_bind_int64(st, 3, def);
	if (rt_step_done(db, st, err_r, "expiry") < 0 ||
	    rt_apply_rules(db, from, to, def, err_r) < 0 ||
	    rt_write_expiry(db, locked, applied, err_r) < 0 ||
	    rt_advance_applied(db, applied, from, to, err_r) < 0)
		return -1;
	return rt_exec(db, "DELETE FROM temp.rt_days", err_r);
}

/*
 * One transaction: the expiry of [from, to]; next >= 0 also stores
 * recompute_next.  durable 0 (after each ingest): the commit does not
 * fsync (synchronous=NORMAL for it, restored after).  Expiries are derived
 * data: one lost in a crash is redone by the next apply, which starts
 * where retention_applied_upto left off.
 */
static int
rt_apply_txn(struct archive_tenant *t, long long from, long long to, long long next,
    int durable, char **err_r)
{
	sqlite3 *db = archive_store_db(archive_tenant_store(t));
	long long sync = -1;
	if (rt_attach_index(t, db, err_r) < 0)
		return -1;
	if (!durable && rt_query_ll(db, "PRAGMA synchronous", 0, &sync, NULL) == 0 && sync > 1 &&
	    rt_exec(db, "PRAGMA synchronous = NORMAL", NULL) < 0)
		sync = -1;
	int rc = rt_begin(t, err_r);
	if (rc == 0) {
		rc = from <= to ? rt_apply_range(db, from, to, err_r) : 0;
		if (rc == 0 && next >= 0)
			rc = rt_setting_set(db, "recompute_next", next, err_r);
		rc = rt_end(t, rc, err_r);
	}
	if (sync > 1) {
		char restore[64];
		snprintf(restore, sizeof(restore), "PRAGMA synchronous = %lld", sync);
		if (rt_exec(db, restore, NULL) < 0)
			log_error("archive_retention_pragma_failed", "tenant=%s",
			    archive_tenant_name(t));
	}
	return rc;
}

int
archive_retention_apply(struct archive_tenant *t, long long from_id, long long to_id,
    char **err_r)
{
	sqlite3 *db = archive_store_db(archive_tenant_store(t));
	long long applied;
	if (from_id < 1)
		from_id = 1;
	if (to_id < from_id)
		return 0;
	/* Entries a crash or an error left without expiry come along (a few batches' worth). */
	if (rt_setting_get(db, "retention_applied_upto", &applied, err_r) < 0)
		return -1;
	if (applied + 1 < from_id && from_id - applied <= RT_RECOMPUTE_BATCH)
		from_id = applied + 1;
	return rt_apply_txn(t, from_id, to_id, -1, 0, err_r);
}

/* One batch of a recompute: 1 more to do, 0 finished, -1 error. */
static int
rt_recompute_batch(struct archive *a, const char *tenant, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	long long next;
	if (rt_acquire(a, tenant, 0, &t, &db, err_r) < 0)
		return -1;
	if (rt_setting_get(db, "recompute_next", &next, err_r) < 0) {
		archive_tenant_release(&t);
		return -1;
	}
	if (next <= 0) {
		archive_tenant_release(&t);
		return 0;
	}
	long long upto = archive_index_indexed_upto(archive_tenant_index(t));
	long long end = next + RT_RECOMPUTE_BATCH - 1;
	int more = end < upto;
	if (!more)
		end = upto;
	int rc = rt_apply_txn(t, next, end, more ? end + 1 : 0, 1, err_r);
	archive_tenant_release(&t);
	if (rc < 0)
		return -1;
	if (more)
		sched_yield();
	return more;
}

int
archive_retention_recompute(struct archive *a, const char *tenant, char **err_r)
{
	int rc;
	while ((rc = rt_recompute_batch(a, tenant, err_r)) > 0)
		;
	return rc;
}

/* After a policy change (recompute_next set): recompute now; a failure is
 * logged, not returned (the change is done; the next purge finishes it). */
static void
rt_recompute_after_change(struct archive *a, const char *tenant)
{
	char *err = NULL;
	if (archive_retention_recompute(a, tenant, &err) < 0) {
		log_error("archive_retention_recompute_failed", "tenant=%s error=%s", tenant,
		    log_str(err));
		free(err);
	}
}

/* -------------------------------------------------------------- approvals */

/*
 * Each change that may need four eyes: check (is it allowed now? 1 when it
 * weakens retention, so needs a second admin if four_eyes is on) and exec
 * (carry it out; *recompute_r when expiries must be recomputed).
 */
struct rt_action {
	const char *name;
	int (*check)(sqlite3 *db, json_t *args, char **err_r);
	int (*exec)(sqlite3 *db, json_t *args, const char *actor, int *recompute_r, char **err_r);
};

static long long
rt_arg_ll(json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -2;
}

static const char *
rt_arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

static int
rt_check_set_default(sqlite3 *db, json_t *args, char **err_r)
{
	long long days = rt_arg_ll(args, "days"), old;
	if (rt_days_ok(days, err_r) < 0 || rt_setting_get(db, "default_days", &old, err_r) < 0)
		return -1;
	if (!rt_days_shorter(days, old))
		return 0;
	if (rt_refuse_if_locked(db, "the default retention cannot be shortened", err_r) < 0)
		return -1;
	return 1;
}

static int
rt_exec_set_default(sqlite3 *db, json_t *args, const char *actor, int *recompute_r,
    char **err_r)
{
	long long days = rt_arg_ll(args, "days"), old;
	if (rt_setting_get(db, "default_days", &old, err_r) < 0)
		return -1;
	if (old == days)
		return 0;
	*recompute_r = 1;
	return rt_setting_set(db, "default_days", days, err_r);
}

static int
rt_check_rule_remove(sqlite3 *db, json_t *args, char **err_r)
{
	long long id = rt_arg_ll(args, "id"), n;
	if (rt_query_ll(db, "SELECT count(*) FROM retention_rules WHERE id = ?1", id, &n,
	    err_r) < 0)
		return -1;
	if (n == 0) {
		rt_err(err_r, "no retention rule %lld", id);
		return -1;
	}
	if (rt_refuse_if_locked(db, "retention rules cannot be removed", err_r) < 0)
		return -1;
	return 1;
}

static int
rt_exec_rule_remove(sqlite3 *db, json_t *args, const char *actor, int *recompute_r,
    char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "DELETE FROM retention_rules WHERE id = ?1", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, rt_arg_ll(args, "id"));
	*recompute_r = 1;
	return rt_step_done(db, st, err_r, "rule remove");
}

static int
rt_check_setting(sqlite3 *db, json_t *args, char **err_r)
{
	const char *key = rt_arg_str(args, "key");
	long long value = rt_arg_ll(args, "value"), old;
	if (key == NULL || (strcmp(key, "four_eyes") != 0 && strcmp(key, "four_eyes_export") != 0)) {
		rt_err(err_r, "unknown setting '%s' (four_eyes or four_eyes_export)", key ? key : "");
		return -1;
	}
	if (value != 0 && value != 1) {
		rt_err(err_r, "bad value for %s (on or off)", key);
		return -1;
	}
	if (rt_setting_get(db, key, &old, err_r) < 0)
		return -1;
	if (value >= old)
		return 0;
	if (strcmp(key, "four_eyes") == 0 &&
	    rt_refuse_if_locked(db, "four eyes cannot be turned off", err_r) < 0)
		return -1;
	return 1;
}

static int
rt_exec_setting(sqlite3 *db, json_t *args, const char *actor, int *recompute_r, char **err_r)
{
	return rt_setting_set(db, rt_arg_str(args, "key"), rt_arg_ll(args, "value"), err_r);
}

static int
rt_check_hold_release(sqlite3 *db, json_t *args, char **err_r)
{
	const char *name = rt_arg_str(args, "name");
	sqlite3_stmt *st = rt_prepare(db, "SELECT released_at IS NULL FROM holds WHERE name = ?1",
	    err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name ? name : "", -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	int active = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rt_db_err(db, err_r, "holds");
	if (active < 0) {
		rt_err(err_r, "no legal hold '%s'", name ? name : "");
		return -1;
	}
	if (active == 0) {
		rt_err(err_r, "legal hold '%s' is released already", name);
		return -1;
	}
	return 1;
}

static int
rt_exec_hold_release(sqlite3 *db, json_t *args, const char *actor, int *recompute_r,
    char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "UPDATE holds SET released_at = ?2, released_by = ?3 "
	    "WHERE name = ?1 AND released_at IS NULL", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, rt_arg_str(args, "name"), -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (long long)time(NULL));
	sqlite3_bind_text(st, 3, actor, -1, SQLITE_TRANSIENT);
	return rt_step_done(db, st, err_r, "hold release");
}

static int
rt_check_case_delete(sqlite3 *db, json_t *args, char **err_r)
{
	const char *name = rt_arg_str(args, "name");
	sqlite3_stmt *st = rt_prepare(db, "SELECT (SELECT count(*) FROM holds h WHERE "
	    "h.case_id = c.id AND h.released_at IS NULL) FROM cases c WHERE c.name = ?1", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name ? name : "", -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	long long holds = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rt_db_err(db, err_r, "cases");
	if (holds < 0) {
		rt_err(err_r, "no case '%s'", name ? name : "");
		return -1;
	}
	if (holds > 0) {
		rt_err(err_r, "case '%s' has %lld active legal hold%s; release them first", name,
		    holds, holds == 1 ? "" : "s");
		return -1;
	}
	return 1;
}

static int
rt_exec_case_delete(sqlite3 *db, json_t *args, const char *actor, int *recompute_r,
    char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "UPDATE holds SET case_id = NULL WHERE case_id = "
	    "(SELECT id FROM cases WHERE name = ?1)", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, rt_arg_str(args, "name"), -1, SQLITE_TRANSIENT);
	if (rt_step_done(db, st, err_r, "case delete") < 0)
		return -1;
	st = rt_prepare(db, "DELETE FROM cases WHERE name = ?1", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, rt_arg_str(args, "name"), -1, SQLITE_TRANSIENT);
	return rt_step_done(db, st, err_r, "case delete");
}

/* Exports (carried out by the control layer once approved): always four eyes. */
static int
rt_check_export(sqlite3 *db, json_t *args, char **err_r)
{
	return 1;
}

static const struct rt_action rt_actions[] = {
	{ "retention.set", rt_check_set_default, rt_exec_set_default },
	{ "retention.rule.remove", rt_check_rule_remove, rt_exec_rule_remove },
	{ "settings.set", rt_check_setting, rt_exec_setting },
	{ "hold.release", rt_check_hold_release, rt_exec_hold_release },
	{ "case.delete", rt_check_case_delete, rt_exec_case_delete },
	{ "export", rt_check_export, NULL },
	{ NULL, NULL, NULL },
};

static const struct rt_action *
rt_action_find(const char *name)
{
	for (const struct rt_action *x = rt_actions; x->name != NULL; x++)
		if (name != NULL && strcmp(x->name, name) == 0)
			return x;
	return NULL;
}

static int
rt_approval_insert(sqlite3 *db, const char *action, json_t *args, const char *actor,
    long long *id_r, char **err_r)
{
	char *text = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
	sqlite3_stmt *st = rt_prepare(db, "INSERT INTO approvals(action, args, requested_by, "
	    "requested_at, state) VALUES (?1, ?2, ?3, ?4, 'pending')", err_r);
	if (st == NULL || text == NULL) {
		sqlite3_finalize(st);
		free(text);
		if (text == NULL)
			rt_err(err_r, "retention: cannot encode the approval");
		return -1;
	}
	sqlite3_bind_text(st, 1, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, actor, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (long long)time(NULL));
	free(text);
	if (rt_step_done(db, st, err_r, "approval") < 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(db);
	return 0;
}

/* Checks a change and records it for approval or carries it out.  Locked. */
static int
rt_change_locked(sqlite3 *db, const struct rt_action *x, json_t *args, const char *actor,
    long long *approval_r, int *recompute_r, char **err_r)
{
	long long four_eyes;
	int need = x->check(db, args, err_r);
	if (need < 0 || rt_setting_get(db, "four_eyes", &four_eyes, err_r) < 0)
		return -1;
	if (need > 0 && (four_eyes || x->exec == NULL)) {
		if (rt_approval_insert(db, x->name, args, actor, approval_r, err_r) < 0)
			return -1;
		log_info("archive_approval_requested", "action=%s id=%lld by=%s", x->name,
		    *approval_r, log_str(actor));
		return 1;
	}
	return x->exec(db, args, actor, recompute_r, err_r);
}

/* The one path of every change that may need four eyes.  Consumes args. */
static int
rt_change(struct archive *a, const char *tenant, const char *action, json_t *args,
    const char *actor, long long *approval_r, char **err_r)
{
	const struct rt_action *x = rt_action_find(action);
	struct archive_tenant *t;
	sqlite3 *db;
	long long approval = 0;
	int recompute = 0;
	if (args == NULL) {
		rt_err(err_r, "retention: out of memory");
		return -1;
	}
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0) {
		json_decref(args);
		return -1;
	}
	int rc = rt_begin(t, err_r);
	if (rc == 0) {
		rc = rt_change_locked(db, x, args, actor ? actor : "unknown", &approval, &recompute,
		    err_r);
		if (rc == 0 && recompute)
			rc = rt_setting_set(db, "recompute_next", 1, err_r);
		rc = rt_end(t, rc, err_r);
	}
	archive_tenant_release(&t);
	json_decref(args);
	if (rc == 1 && approval_r != NULL)
		*approval_r = approval;
	if (rc == 0 && recompute)
		rt_recompute_after_change(a, tenant);
	return rc;
}

int
archive_retention_set_default(struct archive *a, const char *tenant, long long days,
    const char *actor, long long *approval_r, char **err_r)
{
	return rt_change(a, tenant, "retention.set", json_pack("{s:I}", "days", (json_int_t)days),
	    actor, approval_r, err_r);
}

int
archive_retention_rule_remove(struct archive *a, const char *tenant, long long id,
    const char *actor, long long *approval_r, char **err_r)
{
	return rt_change(a, tenant, "retention.rule.remove",
	    json_pack("{s:I}", "id", (json_int_t)id), actor, approval_r, err_r);
}

int
archive_retention_setting_set(struct archive *a, const char *tenant, const char *key,
    int value, const char *actor, long long *approval_r, char **err_r)
{
	return rt_change(a, tenant, "settings.set", json_pack("{s:s, s:i}", "key", key ? key : "",
	    "value", value), actor, approval_r, err_r);
}

int
archive_retention_hold_release(struct archive *a, const char *tenant, const char *name,
    const char *actor, long long *approval_r, char **err_r)
{
	return rt_change(a, tenant, "hold.release", json_pack("{s:s}", "name", name ? name : ""),
	    actor, approval_r, err_r);
}

int
archive_retention_case_delete(struct archive *a, const char *tenant, const char *name,
    const char *actor, long long *approval_r, char **err_r)
{
	return rt_change(a, tenant, "case.delete", json_pack("{s:s}", "name", name ? name : ""),
	    actor, approval_r, err_r);
}

int
archive_retention_request(struct archive *a, const char *tenant, const char *action,
    json_t *args, const char *actor, long long *approval_r, char **err_r)
{
	const struct rt_action *x = rt_action_find(action);
	if (x == NULL || x->exec != NULL || !json_is_object(args)) {
		rt_err(err_r, "retention: '%s' cannot be requested for approval",
		    action ? action : "");
		return -1;
	}
	int rc = rt_change(a, tenant, action, json_incref(args), actor, approval_r, err_r);
	return rc < 0 ? -1 : 0;
}

/* The pending approval `id`: action and args (new ref), requester.  -1 when not pending. */
static int
rt_approval_load(sqlite3 *db, long long id, const struct rt_action **x_r, json_t **args_r,
    char **requester_r, const char *want_state, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "SELECT action, args, requested_by, state FROM approvals "
	    "WHERE id = ?1", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return rt_db_err(db, err_r, "approvals");
		rt_err(err_r, "no approval %lld", id);
		return -1;
	}
	const char *state = (const char *)sqlite3_column_text(st, 3);
	if (strcmp(state, want_state) != 0) {
		rt_err(err_r, "approval %lld is %s, not %s", id, state, want_state);
		sqlite3_finalize(st);
		return -1;
	}
	*x_r = rt_action_find((const char *)sqlite3_column_text(st, 0));
	*args_r = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
	*requester_r = xstrdup((const char *)sqlite3_column_text(st, 2));
	sqlite3_finalize(st);
	if (*x_r == NULL || *args_r == NULL) {
		rt_err(err_r, "approval %lld is unreadable", id);
		json_decref(*args_r);
		free(*requester_r);
		return -1;
	}
	return 0;
}

static int
rt_approval_decide(sqlite3 *db, long long id, const char *state, const char *actor,
    char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "UPDATE approvals SET state = ?2, decided_by = "
	    "coalesce(decided_by, ?3), decided_at = coalesce(decided_at, ?4) WHERE id = ?1", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, actor, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (long long)time(NULL));
	return rt_step_done(db, st, err_r, "approval");
}

static json_t *rt_approvals_json(sqlite3 *db, long long id, int pending_only, char **err_r);

/* Approves inside the transaction: re-checks and carries the change out. */
static int
rt_approve_locked(sqlite3 *db, long long id, const char *approver, int *recompute_r,
    char **err_r)
{
	const struct rt_action *x;
	json_t *args;
	char *requester;
	if (rt_approval_load(db, id, &x, &args, &requester, "pending", err_r) < 0)
		return -1;
	int rc = 0;
	if (strcmp(requester, approver) == 0) {
		rt_err(err_r, "a second admin must approve: %s requested approval %lld", requester,
		    id);
		rc = -1;
	}
	if (rc == 0 && x->check(db, args, err_r) < 0)
		rc = -1;
	if (rc == 0 && x->exec != NULL)
		rc = x->exec(db, args, requester, recompute_r, err_r);
	if (rc == 0)
		rc = rt_approval_decide(db, id, x->exec != NULL ? "executed" : "approved", approver,
		    err_r);
	json_decref(args);
	free(requester);
	return rc;
}

int
archive_retention_approve(struct archive *a, const char *tenant, long long id,
    const char *approver, json_t **approval_r, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	int recompute = 0;
	if (approver == NULL || approver[0] == '\0') {
		rt_err(err_r, "an approval needs an approver");
		return -1;
	}
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0)
		return -1;
	int rc = rt_begin(t, err_r);
	if (rc == 0) {
		rc = rt_approve_locked(db, id, approver, &recompute, err_r);
		if (rc == 0 && recompute)
			rc = rt_setting_set(db, "recompute_next", 1, err_r);
		rc = rt_end(t, rc, err_r);
	}
	if (rc == 0 && approval_r != NULL) {
		json_t *list = rt_approvals_json(db, id, 0, NULL);
		*approval_r = list != NULL ? json_incref(json_array_get(list, 0)) : NULL;
		json_decref(list);
	}
	archive_tenant_release(&t);
	if (rc == 0) {
		log_info("archive_approval_approved", "tenant=%s id=%lld by=%s", tenant, id,
		    log_str(approver));
		if (recompute)
			rt_recompute_after_change(a, tenant);
	}
	return rc;
}

/* Sets a pending/approved approval's state under the lock. */
static int
rt_approval_transition(struct archive *a, const char *tenant, long long id, const char *from,
    const char *to, const char *actor, json_t **args_r, const char *want_action, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	const struct rt_action *x;
	json_t *args = NULL;
	char *requester = NULL;
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0)
		return -1;
	int rc = rt_begin(t, err_r);
	if (rc == 0) {
		rc = rt_approval_load(db, id, &x, &args, &requester, from, err_r);
		if (rc == 0 && want_action != NULL && strcmp(x->name, want_action) != 0) {
			rt_err(err_r, "approval %lld is not for %s", id, want_action);
			rc = -1;
		}
		if (rc == 0)
			rc = rt_approval_decide(db, id, to, actor ? actor : "unknown", err_r);
		rc = rt_end(t, rc, err_r);
	}
	archive_tenant_release(&t);
	free(requester);
	if (rc == 0 && args_r != NULL)
		*args_r = args;
	else
		json_decref(args);
	return rc;
}

int
archive_retention_reject(struct archive *a, const char *tenant, long long id,
    const char *actor, char **err_r)
{
	return rt_approval_transition(a, tenant, id, "pending", "rejected", actor, NULL, NULL,
	    err_r);
}

int
archive_retention_approval_take(struct archive *a, const char *tenant, long long id,
    const char *action, json_t **args_r, char **err_r)
{
	return rt_approval_transition(a, tenant, id, "approved", "executed", NULL, args_r, action,
	    err_r);
}

/* ------------------------------------------------- rules, lock, cases, holds */

/* The rule's match, normalised; NULL + *err_r when unusable. */
static char *
rt_rule_match(const char *kind, const char *match, char **err_r)
{
	size_t n = match ? strlen(match) : 0;
	if (n == 0 || n > RT_MATCH_MAX) {
		rt_err(err_r, "a %s rule needs a match of 1..%d characters", kind, RT_MATCH_MAX);
		return NULL;
	}
	char *m = xstrdup(match);
	if (strcmp(kind, "keyword") != 0)
		str_lower(str_trim(m));
	if (strcmp(kind, "folder") == 0) {
		size_t len = strlen(m);
		while (len > 0 && m[len - 1] == '/')
			m[--len] = '\0';
	}
	int bad = m[0] == '\0';
	if (strcmp(kind, "address") == 0)
		bad = bad || strchr(m, '@') == NULL || strchr(m, ',') != NULL;
	if (strcmp(kind, "domain") == 0)
		bad = bad || strchr(m, '@') != NULL || strchr(m, ',') != NULL;
	if (bad) {
		rt_err(err_r, "bad %s '%s'", kind, match);
		free(m);
		return NULL;
	}
	return m;
}

int
archive_retention_rule_add(struct archive *a, const char *tenant, const char *kind,
    const char *match, long long days, const char *actor, long long *id_r, char **err_r)
{
	static const char *const kinds[] = { "folder", "address", "domain", "keyword" };
	int known = 0;
	for (size_t i = 0; i < 4; i++)
		known = known || (kind != NULL && strcmp(kind, kinds[i]) == 0);
	if (!known) {
		rt_err(err_r, "unknown rule kind '%s' (folder, address, domain, keyword)",
		    kind ? kind : "");
		return -1;
	}
	char *m = rt_days_ok(days, err_r) == 0 ? rt_rule_match(kind, match, err_r) : NULL;
	struct archive_tenant *t;
	sqlite3 *db;
	if (m == NULL || rt_acquire(a, tenant, 1, &t, &db, err_r) < 0) {
		free(m);
		return -1;
	}
	int rc = rt_begin(t, err_r);
	if (rc == 0) {
		sqlite3_stmt *st = rt_prepare(db, "INSERT INTO retention_rules(kind, match, days, "
		    "created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)", err_r);
		if (st != NULL) {
			sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, m, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(st, 3, days);
			sqlite3_bind_int64(st, 4, (long long)time(NULL));
			sqlite3_bind_text(st, 5, actor ? actor : "unknown", -1, SQLITE_TRANSIENT);
		}
		rc = st != NULL ? rt_step_done(db, st, err_r, "rule add") : -1;
		if (rc == 0 && id_r != NULL)
			*id_r = sqlite3_last_insert_rowid(db);
		if (rc == 0)
			rc = rt_setting_set(db, "recompute_next", 1, err_r);
		rc = rt_end(t, rc, err_r);
	}
	archive_tenant_release(&t);
	free(m);
	if (rc == 0)
		rt_recompute_after_change(a, tenant);
	return rc;
}

int
archive_retention_setting_get(struct archive *a, const char *tenant, const char *key,
    long long *value_r, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0)
		return -1;
	int rc = rt_setting_get(db, key, value_r, err_r);
	archive_tenant_release(&t);
	return rc;
}

static int
rt_lock_locked(sqlite3 *db, const char *actor, char **err_r)
{
	long long locked;
	if (rt_setting_get(db, "locked", &locked, err_r) < 0)
		return -1;
	if (locked)
		return 0;
	if (rt_setting_set(db, "locked", 1, err_r) < 0 ||
	    rt_setting_set(db, "locked_at", (long long)time(NULL), err_r) < 0 ||
	    rt_setting_set_text(db, "locked_by", actor ? actor : "unknown", err_r) < 0)
		return -1;
	return 0;
}

int
archive_retention_lock(struct archive *a, const char *tenant, const char *actor, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0)
		return -1;
	int rc = rt_begin(t, err_r);
	if (rc == 0)
		rc = rt_end(t, rt_lock_locked(db, actor, err_r), err_r);
	archive_tenant_release(&t);
	if (rc == 0)
		log_info("archive_retention_locked", "tenant=%s by=%s", tenant, log_str(actor));
	return rc;
}

/* Runs one prepared-and-bound write statement under the tenant lock. */
typedef sqlite3_stmt *rt_stmt_fn(sqlite3 *db, const void *arg, char **err_r);

static int
rt_write(struct archive *a, const char *tenant, rt_stmt_fn *fn, const void *arg,
    long long *id_r, long long *changes_r, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0)
		return -1;
	int rc = rt_begin(t, err_r);
	if (rc == 0) {
		sqlite3_stmt *st = fn(db, arg, err_r);
		rc = st != NULL ? rt_step_done(db, st, err_r, "write") : -1;
		if (rc == 0 && id_r != NULL)
			*id_r = sqlite3_last_insert_rowid(db);
		if (rc == 0 && changes_r != NULL)
			*changes_r = sqlite3_changes(db);
		rc = rt_end(t, rc, err_r);
	}
	archive_tenant_release(&t);
	return rc;
}

struct rt_case_arg {
	const char *name, *description, *actor;
};

static sqlite3_stmt *
rt_case_add_stmt(sqlite3 *db, const void *arg, char **err_r)
{
	const struct rt_case_arg *c = arg;
	sqlite3_stmt *st = rt_prepare(db, "INSERT INTO cases(name, description, created_at, "
	    "created_by) VALUES (?1, ?2, ?3, ?4)", err_r);
	if (st == NULL)
		return NULL;
	sqlite3_bind_text(st, 1, c->name, -1, SQLITE_TRANSIENT);
	rt_bind_text_or_null(st, 2, c->description);
	sqlite3_bind_int64(st, 3, (long long)time(NULL));
	sqlite3_bind_text(st, 4, c->actor ? c->actor : "unknown", -1, SQLITE_TRANSIENT);
	return st;
}

static int
rt_exists(struct archive *a, const char *tenant, const char *sql, const char *name,
    char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0)
		return -1;
	sqlite3_stmt *st = rt_prepare(db, sql, err_r);
	int rc = -1;
	if (st != NULL) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
		int s = sqlite3_step(st);
		rc = s == SQLITE_ROW ? 1 : s == SQLITE_DONE ? 0 : rt_db_err(db, err_r, "lookup");
		sqlite3_finalize(st);
	}
	archive_tenant_release(&t);
	return rc;
}

int
archive_retention_case_add(struct archive *a, const char *tenant, const char *name,
    const char *description, const char *actor, long long *id_r, char **err_r)
{
	struct rt_case_arg c = { name, description, actor };
	if (rt_name_ok("case", name, err_r) < 0)
		return -1;
	int ex = rt_exists(a, tenant, "SELECT 1 FROM cases WHERE name = ?1", name, err_r);
	if (ex != 0) {
		if (ex > 0)
			rt_err(err_r, "case '%s' exists", name);
		return -1;
	}
	return rt_write(a, tenant, rt_case_add_stmt, &c, id_r, NULL, err_r);
}

static sqlite3_stmt *
rt_case_close_stmt(sqlite3 *db, const void *arg, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "UPDATE cases SET closed_at = ?2 WHERE name = ?1 "
	    "AND closed_at IS NULL", err_r);
	if (st == NULL)
		return NULL;
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (long long)time(NULL));
	return st;
}

int
archive_retention_case_close(struct archive *a, const char *tenant, const char *name,
    const char *actor, char **err_r)
{
	long long changes = 0;
	if (rt_write(a, tenant, rt_case_close_stmt, name ? name : "", NULL, &changes, err_r) < 0)
		return -1;
	if (changes == 0) {
		int ex = rt_exists(a, tenant, "SELECT 1 FROM cases WHERE name = ?1",
		    name ? name : "", err_r);
		if (ex >= 0)
			rt_err(err_r, ex ? "case '%s' is closed already" : "no case '%s'",
			    name ? name : "");
		return -1;
	}
	return 0;
}

/* Makes sure the tenant has an archive (so a reader can open its index). */
static int
rt_ensure(struct archive *a, const char *tenant, char **err_r)
{
	struct archive_tenant *t;
	if (archive_tenant_acquire(a, tenant, 1, &t, err_r) < 0)
		return -1;
	archive_tenant_release(&t);
	return 0;
}

/* A hold's query must parse: one search with limit 1 tells. */
static int
rt_query_check(struct archive *a, const char *tenant, const char *query, char **err_r)
{
	struct archive_index *ix;
	struct archive_results res;
	struct archive_search_opts o = { .query = query, .limit = 1 };
	if (archive_tenant_reader(a, tenant, &ix, err_r) < 0)
		return -1;
	memset(&res, 0, sizeof(res));
	int rc = archive_index_search(ix, &o, &res, err_r);
	if (rc == 0)
		archive_results_free(&res);
	archive_index_close(&ix);
	return rc;
}

struct rt_hold_arg {
	const struct archive_hold_spec *h;
	const char *actor;
	char *mailbox;
};

static sqlite3_stmt *
rt_hold_add_stmt(sqlite3 *db, const void *arg, char **err_r)
{
	const struct rt_hold_arg *x = arg;
	sqlite3_stmt *st = rt_prepare(db, "INSERT INTO holds(name, case_id, mailbox, query, "
	    "date_from, date_to, created_at, created_by) VALUES (?1, (SELECT id FROM cases "
	    "WHERE name = ?2), ?3, ?4, ?5, ?6, ?7, ?8)", err_r);
	if (st == NULL)
		return NULL;
	sqlite3_bind_text(st, 1, x->h->name, -1, SQLITE_TRANSIENT);
	rt_bind_text_or_null(st, 2, x->h->case_name);
	rt_bind_text_or_null(st, 3, x->mailbox);
	rt_bind_text_or_null(st, 4, x->h->query);
	rt_bind_ll_or_null(st, 5, x->h->date_from);
	rt_bind_ll_or_null(st, 6, x->h->date_to);
	sqlite3_bind_int64(st, 7, (long long)time(NULL));
	sqlite3_bind_text(st, 8, x->actor ? x->actor : "unknown", -1, SQLITE_TRANSIENT);
	return st;
}

/* The hold's case must exist and be open; its name must be new. */
static int
rt_hold_refs_ok(struct archive *a, const char *tenant, const struct archive_hold_spec *h,
    char **err_r)
{
	int ex = rt_exists(a, tenant, "SELECT 1 FROM holds WHERE name = ?1", h->name, err_r);
	if (ex != 0) {
		if (ex > 0)
			rt_err(err_r, "legal hold '%s' exists", h->name);
		return -1;
	}
	if (h->case_name == NULL)
		return 0;
	ex = rt_exists(a, tenant, "SELECT 1 FROM cases WHERE name = ?1 AND closed_at IS NULL",
	    h->case_name, err_r);
	if (ex == 0)
		rt_err(err_r, "no open case '%s'", h->case_name);
	return ex > 0 ? 0 : -1;
}

int
archive_retention_hold_add(struct archive *a, const char *tenant,
    const struct archive_hold_spec *h, const char *actor, long long *id_r, char **err_r)
{
	if (rt_name_ok("hold", h->name, err_r) < 0)
		return -1;
	if (h->date_from >= 0 && h->date_to >= 0 && h->date_to <= h->date_from) {
		rt_err(err_r, "the hold's date range is empty (to must be after from)");
		return -1;
	}
	if (h->mailbox != NULL && (h->mailbox[0] == '\0' || strlen(h->mailbox) > RT_MATCH_MAX)) {
		rt_err(err_r, "bad mailbox for a hold");
		return -1;
	}
	if (rt_ensure(a, tenant, err_r) < 0)
		return -1;
	if (h->query != NULL && rt_query_check(a, tenant, h->query, err_r) < 0)
		return -1;
	if (rt_hold_refs_ok(a, tenant, h, err_r) < 0)
		return -1;
	struct rt_hold_arg x = { h, actor, h->mailbox ? str_lower(xstrdup(h->mailbox)) : NULL };
	int rc = rt_write(a, tenant, rt_hold_add_stmt, &x, id_r, NULL, err_r);
	free(x.mailbox);
	if (rc == 0)
		log_info("archive_hold_added", "tenant=%s name=%s by=%s", tenant, log_str(h->name),
		    log_str(actor));
	return rc;
}

/* ------------------------------------------------------------------ JSON */

/* A result row as an object: column name → integer, string or null. */
static json_t *
rt_row_json(sqlite3_stmt *st)
{
	json_t *o = json_object();
	for (int i = 0; i < sqlite3_column_count(st); i++) {
		json_t *v;
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			v = json_integer((json_int_t)sqlite3_column_int64(st, i));
			break;
		case SQLITE_NULL:
			v = json_null();
			break;
		default:
			v = json_string((const char *)sqlite3_column_text(st, i));
			break;
		}
		json_object_set_new(o, sqlite3_column_name(st, i), v ? v : json_null());
	}
	return o;
}

/* Every row of a query (?1 bound to param when the query has one) as an array. */
static json_t *
rt_rows_json(sqlite3 *db, const char *sql, long long param, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, sql, err_r);
	if (st == NULL)
		return NULL;
	if (sqlite3_bind_parameter_count(st) > 0)
		sqlite3_bind_int64(st, 1, param);
	json_t *list = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(list, rt_row_json(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rt_db_err(db, err_r, "list");
		json_decref(list);
		return NULL;
	}
	return list;
}

/* Runs fn on the tenant's store connection under the lock. */
static json_t *
rt_read_json(struct archive *a, const char *tenant, const char *sql, long long param,
    char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0)
		return NULL;
	json_t *list = rt_rows_json(db, sql, param, err_r);
	archive_tenant_release(&t);
	return list;
}

json_t *
archive_retention_case_list(struct archive *a, const char *tenant, char **err_r)
{
	return rt_read_json(a, tenant, "SELECT c.id, c.name, c.description, c.created_at, "
	    "c.created_by, c.closed_at, (SELECT count(*) FROM holds h WHERE h.case_id = c.id AND "
	    "h.released_at IS NULL) AS active_holds FROM cases c ORDER BY c.id", 0, err_r);
}

json_t *
archive_retention_hold_list(struct archive *a, const char *tenant, char **err_r)
{
	json_t *list = rt_read_json(a, tenant, "SELECT h.id, h.name, c.name AS \"case\", "
	    "h.mailbox, h.query, h.date_from AS \"from\", h.date_to AS \"to\", h.created_at, "
	    "h.created_by, h.released_at, h.released_by, h.released_at IS NULL AS active "
	    "FROM holds h LEFT JOIN cases c ON c.id = h.case_id ORDER BY h.id", 0, err_r);
	size_t i;
	json_t *o;
	json_array_foreach(list, i, o)
		json_object_set_new(o, "active",
		    json_boolean(json_integer_value(json_object_get(o, "active")) != 0));
	return list;
}

/* Approvals with args decoded back to JSON; id > 0: only that one. */
static json_t *
rt_approvals_json(sqlite3 *db, long long id, int pending_only, char **err_r)
{
	const char *sql = id > 0 ?
	    "SELECT id, action, args, requested_by, requested_at, state, decided_by, decided_at "
	    "FROM approvals WHERE id = ?1" : pending_only ?
	    "SELECT id, action, args, requested_by, requested_at, state, decided_by, decided_at "
	    "FROM approvals WHERE state = 'pending' ORDER BY id" :
	    "SELECT id, action, args, requested_by, requested_at, state, decided_by, decided_at "
	    "FROM approvals ORDER BY id";
	json_t *list = rt_rows_json(db, sql, id, err_r);
	size_t i;
	json_t *o;
	json_array_foreach(list, i, o) {
		json_t *args = json_loads(json_string_value(json_object_get(o, "args")), 0, NULL);
		json_object_set_new(o, "args", args ? args : json_object());
	}
	return list;
}

json_t *
archive_retention_approval_list(struct archive *a, const char *tenant, int pending_only,
    char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0)
		return NULL;
	json_t *list = rt_approvals_json(db, 0, pending_only, err_r);
	archive_tenant_release(&t);
	return list;
}

static void
rt_json_setting(json_t *o, sqlite3 *db, const char *key, int boolean)
{
	long long v = 0;
	if (rt_setting_get(db, key, &v, NULL) < 0)
		v = 0;
	json_object_set_new(o, key, boolean ? json_boolean(v != 0) : json_integer((json_int_t)v));
}

static json_t *
rt_policy_locked(sqlite3 *db, char **err_r)
{
	json_t *rules = rt_rows_json(db, "SELECT id, kind, match, days, created_at, created_by "
	    "FROM retention_rules ORDER BY id", 0, err_r);
	json_t *purges = rules ? rt_rows_json(db, "SELECT id, started_at, finished_at, messages, "
	    "blobs, by, dry_run FROM purges ORDER BY id DESC LIMIT 1", 0, err_r) : NULL;
	long long holds = 0, pending = 0;
	if (purges == NULL ||
	    rt_query_ll(db, "SELECT count(*) FROM holds WHERE released_at IS NULL", 0, &holds,
	    err_r) < 0 ||
	    rt_query_ll(db, "SELECT count(*) FROM approvals WHERE state = 'pending'", 0, &pending,
	    err_r) < 0) {
		json_decref(rules);
		json_decref(purges);
		return NULL;
	}
	json_t *o = json_object();
	rt_json_setting(o, db, "default_days", 0);
	rt_json_setting(o, db, "locked", 1);
	long long locked = 0;
	rt_setting_get(db, "locked", &locked, NULL);
	if (locked) {
		rt_json_setting(o, db, "locked_at", 0);
		sqlite3_stmt *st = rt_prepare(db, "SELECT value FROM settings WHERE key = "
		    "'locked_by'", NULL);
		if (st != NULL && sqlite3_step(st) == SQLITE_ROW)
			json_object_set_new(o, "locked_by",
			    json_string((const char *)sqlite3_column_text(st, 0)));
		sqlite3_finalize(st);
	}
	rt_json_setting(o, db, "four_eyes", 1);
	rt_json_setting(o, db, "four_eyes_export", 1);
	rt_json_setting(o, db, "recompute_next", 0);
	json_object_set_new(o, "recompute_pending",
	    json_boolean(json_integer_value(json_object_get(o, "recompute_next")) > 0));
	json_object_del(o, "recompute_next");
	json_object_set_new(o, "rules", rules);
	json_object_set_new(o, "active_holds", json_integer((json_int_t)holds));
	json_object_set_new(o, "pending_approvals", json_integer((json_int_t)pending));
	json_t *last = json_array_get(purges, 0);
	json_object_set(o, "last_purge", last ? last : json_null());
	json_decref(purges);
	return o;
}

json_t *
archive_retention_policy_json(struct archive *a, const char *tenant, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(a, tenant, 1, &t, &db, err_r) < 0)
		return NULL;
	json_t *o = rt_policy_locked(db, err_r);
	archive_tenant_release(&t);
	if (o != NULL)
		json_object_set_new(o, "tenant", json_string(tenant));
	return o;
}

json_t *
archive_purge_result_json(const struct archive_purge_result *r, int dry_run)
{
	return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "dry_run", dry_run != 0,
	    "messages", (json_int_t)r->messages, "blobs", (json_int_t)r->blobs,
	    "bytes", (json_int_t)r->bytes, "held_skipped", (json_int_t)r->held_skipped,
	    "failed", (json_int_t)r->failed, "purge_id", (json_int_t)r->purge_id);
}

/* ----------------------------------------------------------------- purge */

/* Is entry m held by an active hold?  Query holds: their hits are in temp.rt_qheld. */
#define RT_HELD_SQL \
	"EXISTS (SELECT 1 FROM holds h WHERE h.released_at IS NULL" \
	" AND (h.mailbox IS NULL OR h.mailbox = m.mailbox)" \
	" AND (h.date_from IS NULL OR m.msg_date >= h.date_from)" \
	" AND (h.date_to IS NULL OR m.msg_date < h.date_to)" \
	" AND (h.query IS NULL OR EXISTS (SELECT 1 FROM temp.rt_qheld q" \
	"  WHERE q.run = :run AND q.hold = h.id AND q.id = m.id)))"

#define RT_EXPIRED_SQL \
	"m.id <= :wm AND m.expires_at IS NOT NULL AND m.expires_at <= :now"

struct rt_purge {
	struct archive *a;
	const char *tenant;
	long long now;
	int dry_run;
	long long run;          /* purges.id */
	long long wm;           /* only entries indexed when the run began */
	long long after;        /* entries up to here are done */
	long long max_hold;     /* query holds with ids up to here are in rt_qheld */
	struct archive_purge_result *r;
};

/* One batch of candidates. */
struct rt_cands {
	long long ids[RT_PURGE_BATCH];
	char hashes[RT_PURGE_BATCH][65];
	long long sizes[RT_PURGE_BATCH];
	size_t n;
};

static void
rt_bind_named(sqlite3_stmt *st, const char *name, long long v)
{
	int i = sqlite3_bind_parameter_index(st, name);
	if (i > 0)
		sqlite3_bind_int64(st, i, v);
}

static void
rt_bind_purge(sqlite3_stmt *st, const struct rt_purge *p)
{
	rt_bind_named(st, ":run", p->run);
	rt_bind_named(st, ":wm", p->wm);
	rt_bind_named(st, ":now", p->now);
	rt_bind_named(st, ":after", p->after);
	rt_bind_named(st, ":maxhold", p->max_hold);
}

/* One integer from a query over the purge's parameters. */
static int
rt_purge_ll(sqlite3 *db, const struct rt_purge *p, const char *sql, long long *v_r,
    char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, sql, err_r);
	if (st == NULL)
		return -1;
	rt_bind_purge(st, p);
	int rc = sqlite3_step(st);
	*v_r = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rt_db_err(db, err_r, "purge");
	return 0;
}

/* A statement over the purge's parameters run to its end. */
static int
rt_purge_exec(sqlite3 *db, const struct rt_purge *p, const char *sql, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, sql, err_r);
	if (st == NULL)
		return -1;
	rt_bind_purge(st, p);
	return rt_step_done(db, st, err_r, "purge");
}

/* Records the run in purges and snapshots the watermark. */
static int
rt_purge_start(struct rt_purge *p, const char *actor, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(p->a, p->tenant, 0, &t, &db, err_r) < 0)
		return -1;
	p->wm = archive_index_indexed_upto(archive_tenant_index(t));
	int rc = rt_exec(db, "CREATE TEMP TABLE IF NOT EXISTS rt_qheld(run INTEGER, hold INTEGER,"
	    " id INTEGER, PRIMARY KEY(run, hold, id)) WITHOUT ROWID;"
	    "CREATE TEMP TABLE IF NOT EXISTS rt_cand(run INTEGER, id INTEGER,"
	    " PRIMARY KEY(run, id)) WITHOUT ROWID;", err_r);
	sqlite3_stmt *st = rc == 0 ? rt_prepare(db, "INSERT INTO purges(started_at, messages, "
	    "blobs, by, dry_run) VALUES (?1, 0, 0, ?2, ?3)", err_r) : NULL;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, (long long)time(NULL));
		sqlite3_bind_text(st, 2, actor ? actor : "unknown", -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 3, p->dry_run != 0);
		rc = rt_step_done(db, st, err_r, "purge record");
		p->run = sqlite3_last_insert_rowid(db);
	} else {
		rc = -1;
	}
	archive_tenant_release(&t);
	p->r->purge_id = p->run;
	return rc;
}

struct rt_qhold {
	long long id;
	char *query;
	struct archive_results res;
};

/* The active query holds not yet computed (read under the lock). */
static int
rt_qholds_read(struct rt_purge *p, struct rt_qhold **hs_r, size_t *n_r, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	*hs_r = NULL;
	*n_r = 0;
	if (rt_acquire(p->a, p->tenant, 0, &t, &db, err_r) < 0)
		return -1;
	sqlite3_stmt *st = rt_prepare(db, "SELECT id, query FROM holds WHERE released_at IS NULL "
	    "AND query IS NOT NULL AND id > :maxhold ORDER BY id", err_r);
	int rc = st != NULL ? SQLITE_ROW : SQLITE_ERROR;
	if (st != NULL) {
		rt_bind_purge(st, p);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			*hs_r = xrealloc(*hs_r, (*n_r + 1) * sizeof(**hs_r));
			struct rt_qhold *h = &(*hs_r)[(*n_r)++];
			memset(h, 0, sizeof(*h));
			h->id = sqlite3_column_int64(st, 0);
			h->query = xstrdup((const char *)sqlite3_column_text(st, 1));
		}
		if (rc != SQLITE_DONE)
			rt_db_err(db, err_r, "holds");
		sqlite3_finalize(st);
	}
	archive_tenant_release(&t);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Stores the hits of the query holds in temp.rt_qheld (under the lock). */
static int
rt_qholds_store(struct rt_purge *p, struct rt_qhold *hs, size_t n, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(p->a, p->tenant, 0, &t, &db, err_r) < 0)
		return -1;
	sqlite3_stmt *st = rt_prepare(db, "INSERT OR IGNORE INTO temp.rt_qheld(run, hold, id) "
	    "VALUES (?1, ?2, ?3)", err_r);
	int rc = st != NULL && rt_exec(db, "SAVEPOINT rt_qheld", err_r) == 0 ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		for (size_t k = 0; rc == 0 && k < hs[i].res.nhits; k++) {
			sqlite3_bind_int64(st, 1, p->run);
			sqlite3_bind_int64(st, 2, hs[i].id);
			sqlite3_bind_int64(st, 3, hs[i].res.hits[k].id);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = rt_db_err(db, err_r, "held entries");
			sqlite3_reset(st);
		}
		if (rc == 0 && hs[i].id > p->max_hold)
			p->max_hold = hs[i].id;
	}
	sqlite3_finalize(st);
	if (rc == 0)
		rc = rt_exec(db, "RELEASE rt_qheld", err_r);
	else
		sqlite3_exec(db, "ROLLBACK TO rt_qheld; RELEASE rt_qheld", NULL, NULL, NULL);
	archive_tenant_release(&t);
	return rc;
}

/* Computes the entries held by query holds added since the last call. */
static int
rt_qholds_refresh(struct rt_purge *p, char **err_r)
{
	struct rt_qhold *hs;
	size_t n;
	if (rt_qholds_read(p, &hs, &n, err_r) < 0)
		return -1;
	int rc = 0;
	struct archive_index *ix = NULL;
	if (n > 0)
		rc = archive_tenant_reader(p->a, p->tenant, &ix, err_r);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct archive_search_opts o = { .query = hs[i].query, .ids_only = 1 };
		if (archive_index_search(ix, &o, &hs[i].res, err_r) < 0) {
			char *e = *err_r;
			*err_r = NULL;
			rt_err(err_r, "legal hold %lld: %s", hs[i].id, e ? e : "search failed");
			free(e);
			memset(&hs[i].res, 0, sizeof(hs[i].res));
			rc = -1;
		}
	}
	archive_index_close(&ix);
	if (rc == 0 && n > 0)
		rc = rt_qholds_store(p, hs, n, err_r);
	for (size_t i = 0; i < n; i++) {
		free(hs[i].query);
		archive_results_free(&hs[i].res);
	}
	free(hs);
	return rc;
}

/* The next candidates after p->after (expired, indexed, not held). */
static int
rt_cands_read(sqlite3 *db, const struct rt_purge *p, struct rt_cands *c, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "SELECT m.id, m.hash, coalesce(b.size, 0) FROM "
	    "messages m LEFT JOIN blobs b ON b.hash = m.hash WHERE m.id > :after AND "
	    RT_EXPIRED_SQL " AND NOT " RT_HELD_SQL " ORDER BY m.id LIMIT 500", err_r);
	if (st == NULL)
		return -1;
	rt_bind_purge(st, p);
	int rc;
	c->n = 0;
	while (c->n < RT_PURGE_BATCH && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		c->ids[c->n] = sqlite3_column_int64(st, 0);
		snprintf(c->hashes[c->n], sizeof(c->hashes[c->n]), "%s",
		    (const char *)sqlite3_column_text(st, 1));
		c->sizes[c->n] = sqlite3_column_int64(st, 2);
		c->n++;
	}
	if (c->n < RT_PURGE_BATCH && rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return rt_db_err(db, err_r, "purge candidates");
	}
	sqlite3_finalize(st);
	return 0;
}

/* Removes one entry from the search index (its document comes from the blob). */
static int
rt_unindex(struct archive_tenant *t, long long id, const char *hash, int *unreadable_r,
    char **err_r)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	struct archive_doc doc;
	char *err = NULL;
	*unreadable_r = 0;
	if (archive_store_get(archive_tenant_store(t), hash, &raw, &len, &err) < 0 ||
	    archive_parse(raw, len, &doc, &err) < 0) {
		log_error("archive_purge_skipped", "tenant=%s id=%lld error=%s",
		    archive_tenant_name(t), id, log_str(err));
		free(err);
		free(raw);
		*unreadable_r = 1;
		return 0;
	}
	int rc = archive_index_delete(archive_tenant_index(t), id, &doc, err_r);
	archive_doc_free(&doc);
	free(raw);
	return rc;
}

/* Raw bytes of the blobs of this batch that are gone now. */
static long long
rt_bytes_gone(struct archive_tenant *t, const struct rt_cands *c, const int *keep)
{
	long long bytes = 0;
	for (size_t i = 0; i < c->n; i++) {
		int seen = !keep[i];
		for (size_t j = 0; !seen && j < i; j++)
			seen = keep[j] && strcmp(c->hashes[j], c->hashes[i]) == 0;
		if (!seen && archive_store_has_blob(archive_tenant_store(t), c->hashes[i]) == 0)
			bytes += c->sizes[i];
	}
	return bytes;
}

/* Deletes a batch: index entries first (committed), then the store rows. */
static int
rt_purge_delete(struct archive_tenant *t, struct rt_cands *c, struct archive_purge_result *r,
    char **err_r)
{
	struct archive_index *ix = archive_tenant_index(t);
	int keep[RT_PURGE_BATCH];
	long long ids[RT_PURGE_BATCH];
	size_t n = 0, blobs = 0;
	if (archive_index_begin(ix, err_r) < 0)
		return -1;
	for (size_t i = 0; i < c->n; i++) {
		int unreadable;
		if (rt_unindex(t, c->ids[i], c->hashes[i], &unreadable, err_r) < 0) {
			archive_index_rollback(ix);
			return -1;
		}
		keep[i] = !unreadable;
		r->failed += unreadable;
		if (keep[i])
			ids[n++] = c->ids[i];
	}
	if (archive_index_commit(ix, -1, err_r) < 0)
		return -1;
	if (n > 0 && archive_store_delete_rows(archive_tenant_store(t), ids, n, &blobs, err_r) < 0)
		return -1;
	r->messages += (long long)n;
	r->blobs += (long long)blobs;
	r->bytes += rt_bytes_gone(t, c, keep);
	return 0;
}

/* Dry run: remembers the candidates (for the blob count at the end). */
static int
rt_purge_note(sqlite3 *db, const struct rt_purge *p, const struct rt_cands *c, char **err_r)
{
	sqlite3_stmt *st = rt_prepare(db, "INSERT OR IGNORE INTO temp.rt_cand(run, id) "
	    "VALUES (?1, ?2)", err_r);
	if (st == NULL)
		return -1;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < c->n; i++) {
		sqlite3_bind_int64(st, 1, p->run);
		sqlite3_bind_int64(st, 2, c->ids[i]);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = rt_db_err(db, err_r, "dry run");
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	p->r->messages += rc == 0 ? (long long)c->n : 0;
	return rc;
}

/* One turn of the lock: 1 more to do, 0 finished, 2 new query holds to compute, -1. */
static int
rt_purge_batch(struct rt_purge *p, struct rt_cands *c, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	long long new_holds;
	if (rt_acquire(p->a, p->tenant, 0, &t, &db, err_r) < 0)
		return -1;
	int rc = rt_purge_ll(db, p, "SELECT count(*) FROM holds WHERE released_at IS NULL AND "
	    "query IS NOT NULL AND id > :maxhold", &new_holds, err_r);
	if (rc == 0 && new_holds > 0) {
		archive_tenant_release(&t);
		return 2;
	}
	if (rc == 0)
		rc = rt_cands_read(db, p, c, err_r);
	if (rc == 0 && c->n > 0)
		rc = p->dry_run ? rt_purge_note(db, p, c, err_r) : rt_purge_delete(t, c, p->r, err_r);
	archive_tenant_release(&t);
	if (rc < 0)
		return -1;
	if (c->n > 0)
		p->after = c->ids[c->n - 1];
	return c->n == RT_PURGE_BATCH;
}

/* Counts held entries (and, for a dry run, the blobs that would go); records the run. */
static int
rt_purge_finish(struct rt_purge *p, char **err_r)
{
	struct archive_tenant *t;
	sqlite3 *db;
	if (rt_acquire(p->a, p->tenant, 0, &t, &db, err_r) < 0)
		return -1;
	int rc = rt_purge_ll(db, p, "SELECT count(*) FROM messages m WHERE " RT_EXPIRED_SQL
	    " AND " RT_HELD_SQL, &p->r->held_skipped, err_r);
	if (rc == 0 && p->dry_run) {
		static const char *const gone = "FROM blobs b WHERE b.hash IN (SELECT m.hash FROM "
		    "messages m JOIN temp.rt_cand c ON c.run = :run AND c.id = m.id) AND NOT EXISTS "
		    "(SELECT 1 FROM messages m2 WHERE m2.hash = b.hash AND m2.id NOT IN "
		    "(SELECT id FROM temp.rt_cand WHERE run = :run))";
		struct buf q1 = BUF_INIT, q2 = BUF_INIT;
		buf_appendf(&q1, "SELECT count(*) %s", gone);
		buf_appendf(&q2, "SELECT coalesce(sum(b.size), 0) %s", gone);
		rc = rt_purge_ll(db, p, buf_cstr(&q1), &p->r->blobs, err_r);
		if (rc == 0)
			rc = rt_purge_ll(db, p, buf_cstr(&q2), &p->r->bytes, err_r);
		buf_free(&q1);
		buf_free(&q2);
	}
	sqlite3_stmt *st = rc == 0 ? rt_prepare(db, "UPDATE purges SET finished_at = ?2, "
	    "messages = ?3, blobs = ?4 WHERE id = ?1", err_r) : NULL;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, p->run);
		sqlite3_bind_int64(st, 2, (long long)time(NULL));
		sqlite3_bind_int64(st, 3, p->r->messages);
		sqlite3_bind_int64(st, 4, p->r->blobs);
		rc = rt_step_done(db, st, err_r, "purge record");
	} else {
		rc = -1;
	}
	archive_tenant_release(&t);
	return rc;
}

/* Drops the run's temporary rows (whatever happened). */
static void
rt_purge_cleanup(struct rt_purge *p)
{
	struct archive_tenant *t;
	sqlite3 *db;
	char *err = NULL;
	if (p->run <= 0 || rt_acquire(p->a, p->tenant, 0, &t, &db, &err) < 0) {
		free(err);
		return;
	}
	if (rt_purge_exec(db, p, "DELETE FROM temp.rt_qheld WHERE run = :run", &err) < 0 ||
	    rt_purge_exec(db, p, "DELETE FROM temp.rt_cand WHERE run = :run", &err) < 0) {
		log_warn("archive_purge_cleanup_failed", "tenant=%s error=%s", p->tenant,
		    log_str(err));
		free(err);
	}
	archive_tenant_release(&t);
}

static int
rt_purge_loop(struct rt_purge *p, archive_progress_cb *progress, void *parg, char **err_r)
{
	struct rt_cands *c = xmalloc(sizeof(*c));
	int rc = rt_qholds_refresh(p, err_r);
	while (rc >= 0) {
		rc = rt_purge_batch(p, c, err_r);
		if (rc == 2)
			rc = rt_qholds_refresh(p, err_r) < 0 ? -1 : 1;
		else if (rc == 0)
			break;
		if (progress != NULL && rc > 0)
			progress(parg, (uint64_t)p->after, (uint64_t)p->wm);
		sched_yield();
	}
	free(c);
	return rc;
}

int
archive_retention_purge(struct archive *a, const char *tenant, time_t now, int dry_run,
    const char *actor, struct archive_purge_result *r, archive_progress_cb *progress,
    void *parg, char **err_r)
{
	struct rt_purge p = { .a = a, .tenant = tenant, .now = (long long)now,
		.dry_run = dry_run, .r = r };
	memset(r, 0, sizeof(*r));
	if (!archive_tenant_has(a, tenant)) {
		rt_err(err_r, "tenant '%s' has no archive", tenant ? tenant : "");
		return -1;
	}
	/* Expiries must be current: finish a recompute a crash interrupted. */
	if (archive_retention_recompute(a, tenant, err_r) < 0 ||
	    rt_purge_start(&p, actor, err_r) < 0)
		return -1;
	int rc = rt_purge_loop(&p, progress, parg, err_r);
	if (rc == 0)
		rc = rt_purge_finish(&p, err_r);
	rt_purge_cleanup(&p);
	if (progress != NULL && rc == 0)
		progress(parg, (uint64_t)p.wm, (uint64_t)p.wm);
	log_info("archive_purged", "tenant=%s dry_run=%d messages=%lld blobs=%lld bytes=%lld "
	    "held=%lld failed=%lld result=%s", tenant, dry_run != 0, r->messages, r->blobs,
	    r->bytes, r->held_skipped, r->failed, rc == 0 ? "ok" : "error");
	return rc;
}
