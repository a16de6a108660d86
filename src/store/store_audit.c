/*
 * store_audit.c — the audit trail's rows in mailark.db (tables audit and
 * audit_checkpoints, migration 3 of store.c).
 *
 * The audit trail has its own SQLite connection to mailark.db, separate
 * from struct store: `mailark audit verify` opens it read-only while the
 * daemon is stopped (or running: WAL lets readers in), and the daemon
 * appends through it with synchronous=FULL.  Appends are serialised by
 * BEGIN IMMEDIATE, so the chain stays linear even if two processes write.
 *
 * There is deliberately no UPDATE or DELETE statement in this file: rows
 * of audit and audit_checkpoints are only ever inserted.
 */
#include "store/store.h"
#include "store/store_internal.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

enum store_audit_stmt {
	SA_BEGIN,
	SA_BEGIN_READ,
	SA_COMMIT,
	SA_ROLLBACK,
	SA_LAST,
	SA_INSERT,
	SA_CP_INSERT,
	SA_CP_LAST,
	SA_ALL,
	SA_CP_ALL,
	SA_LIST,
	SA_COUNT
};

#define SA_COLS "seq, time_us, actor, role, tenant, action, object, source, outcome, " \
	"detail, prev_hash, hash"

static const char *const store_audit_sql[SA_COUNT] = {
	[SA_BEGIN] = "BEGIN IMMEDIATE",
	[SA_BEGIN_READ] = "BEGIN",
	[SA_COMMIT] = "COMMIT",
	[SA_ROLLBACK] = "ROLLBACK",
	[SA_LAST] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
	[SA_INSERT] = "INSERT INTO audit(" SA_COLS ") "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[SA_CP_INSERT] = "INSERT INTO audit_checkpoints(seq, hash, time_us, key_id, signature) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)",
	[SA_CP_LAST] = "SELECT seq FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
	[SA_ALL] = "SELECT " SA_COLS " FROM audit ORDER BY seq",
	[SA_CP_ALL] = "SELECT seq, hash, time_us, key_id, signature FROM audit_checkpoints "
	    "ORDER BY seq",
	[SA_LIST] = "SELECT " SA_COLS " FROM audit WHERE (?1 IS NULL OR tenant = ?1) "
	    "AND (?2 IS NULL OR actor = ?2) AND time_us >= ?3 ORDER BY seq DESC LIMIT ?4",
};

struct store_audit {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[SA_COUNT];
};

static void
store_audit_err(struct store_audit *sa, const char *what, char **err_r)
{
	const char *msg = sa->db ? sqlite3_errmsg(sa->db) : "out of memory";
	log_error("store_error", "path=%s op=%s error=%s", log_str(sa->path), what, log_str(msg));
	if (err_r != NULL) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "%s: %s: %s", sa->path, what, msg);
		*err_r = buf_steal(&e);
	}
}

static sqlite3_stmt *
store_audit_stmt(struct store_audit *sa, enum store_audit_stmt which)
{
	sqlite3_stmt *s = sa->stmt[which];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static int
store_audit_exec(struct store_audit *sa, enum store_audit_stmt which)
{
	sqlite3_stmt *s = store_audit_stmt(sa, which);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The schema must already be there (store_open creates it). */
static int
store_audit_prepare(struct store_audit *sa, char **err_r)
{
	for (int i = 0; i < SA_COUNT; i++) {
		if (sqlite3_prepare_v3(sa->db, store_audit_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &sa->stmt[i], NULL) != SQLITE_OK) {
			store_audit_err(sa, "no audit tables (run mailark init)", err_r);
			return -1;
		}
	}
	return 0;
}

int
store_audit_open(const char *path, int readonly, struct store_audit **sa_r, char **err_r)
{
	struct store_audit *sa = xcalloc(1, sizeof(*sa));
	sa->path = xstrdup(path);
	int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
	const char *pragmas = readonly ? "PRAGMA query_only=ON;" : "PRAGMA synchronous=FULL;";
	if (sqlite3_open_v2(path, &sa->db, flags, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(sa->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(sa->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
		store_audit_err(sa, "cannot open", err_r);
		store_audit_close(&sa);
		return -1;
	}
	if (store_audit_prepare(sa, err_r) < 0) {
		store_audit_close(&sa);
		return -1;
	}
	*sa_r = sa;
	return 0;
}

void
store_audit_close(struct store_audit **sap)
{
	struct store_audit *sa = *sap;
	if (sa == NULL)
		return;
	for (int i = 0; i < SA_COUNT; i++)
		sqlite3_finalize(sa->stmt[i]);
	if (sa->db != NULL && sqlite3_close(sa->db) != SQLITE_OK)
		log_warn("store_close", "path=%s error=%s", log_str(sa->path),
		    log_str(sqlite3_errmsg(sa->db)));
	free(sa->path);
	free(sa);
	*sap = NULL;
}

int
store_audit_begin(struct store_audit *sa, int write, char **err_r)
{
	if (store_audit_exec(sa, write ? SA_BEGIN : SA_BEGIN_READ) < 0) {
		store_audit_err(sa, "begin", err_r);
		return -1;
	}
	return 0;
}

int
store_audit_commit(struct store_audit *sa, char **err_r)
{
	if (store_audit_exec(sa, SA_COMMIT) < 0) {
		store_audit_err(sa, "commit", err_r);
		store_audit_rollback(sa);
		return -1;
	}
	return 0;
}

void
store_audit_rollback(struct store_audit *sa)
{
	if (sqlite3_get_autocommit(sa->db) == 0)
		(void)store_audit_exec(sa, SA_ROLLBACK);
}

/* A 32-byte hash column; 0 when it has another length or type. */
static int
store_audit_hash_col(sqlite3_stmt *s, int col, unsigned char out[STORE_AUDIT_HASH_LEN])
{
	const void *p = sqlite3_column_blob(s, col);
	if (p == NULL || sqlite3_column_bytes(s, col) != STORE_AUDIT_HASH_LEN) {
		memset(out, 0, STORE_AUDIT_HASH_LEN);
		return 0;
	}
	memcpy(out, p, STORE_AUDIT_HASH_LEN);
	return 1;
}

int
store_audit_last(struct store_audit *sa, long long *seq_r,
    unsigned char hash_r[STORE_AUDIT_HASH_LEN])
{
	sqlite3_stmt *s = store_audit_stmt(sa, SA_LAST);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		*seq_r = sqlite3_column_int64(s, 0);
		ret = store_audit_hash_col(s, 1, hash_r) ? 1 : -1;
	} else if (rc != SQLITE_DONE) {
		ret = -1;
	}
	sqlite3_reset(s);
	if (ret < 0)
		store_audit_err(sa, "audit last", NULL);
	return ret;
}

static void
store_audit_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

int
store_audit_insert(struct store_audit *sa, const struct store_audit_entry *e, char **err_r)
{
	sqlite3_stmt *s = store_audit_stmt(sa, SA_INSERT);
	sqlite3_bind_int64(s, 1, e->seq);
	sqlite3_bind_int64(s, 2, e->time_us);
	store_audit_bind_text(s, 3, e->actor);
	store_audit_bind_text(s, 4, e->role);
	store_audit_bind_text(s, 5, e->tenant);
	store_audit_bind_text(s, 6, e->action);
	store_audit_bind_text(s, 7, e->object);
	store_audit_bind_text(s, 8, e->source);
	store_audit_bind_text(s, 9, e->outcome);
	store_audit_bind_text(s, 10, e->detail);
	sqlite3_bind_blob(s, 11, e->prev_hash, STORE_AUDIT_HASH_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_blob(s, 12, e->hash, STORE_AUDIT_HASH_LEN, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_audit_err(sa, "audit insert", err_r);
		return -1;
	}
	return 0;
}

int
store_audit_checkpoint_insert(struct store_audit *sa, const struct store_audit_checkpoint *c,
    char **err_r)
{
	sqlite3_stmt *s = store_audit_stmt(sa, SA_CP_INSERT);
	sqlite3_bind_int64(s, 1, c->seq);
	sqlite3_bind_blob(s, 2, c->hash, STORE_AUDIT_HASH_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, c->time_us);
	store_audit_bind_text(s, 4, c->key_id);
	sqlite3_bind_blob(s, 5, c->signature, STORE_AUDIT_SIG_LEN, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_audit_err(sa, "audit checkpoint insert", err_r);
		return -1;
	}
	return 0;
}

int
store_audit_checkpoint_last(struct store_audit *sa, long long *seq_r)
{
	sqlite3_stmt *s = store_audit_stmt(sa, SA_CP_LAST);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		*seq_r = sqlite3_column_int64(s, 0);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		store_audit_err(sa, "audit checkpoint last", NULL);
		ret = -1;
	}
	sqlite3_reset(s);
	return ret;
}

/*
 * A text column.  A value with an embedded NUL (which audit_record never
 * writes) would hash like its prefix, so it marks the entry malformed.
 */
static char *
store_audit_text_col(sqlite3_stmt *s, int col, int *malformed)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	if (t == NULL)
		return NULL;
	size_t n = (size_t)sqlite3_column_bytes(s, col);
	if (strlen((const char *)t) != n)
		*malformed = 1;
	return xstrndup((const char *)t, n);
}

static void
store_audit_entry_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_audit_entry *e = elem;
	memset(e, 0, sizeof(*e));
	e->seq = sqlite3_column_int64(s, 0);
	e->time_us = sqlite3_column_int64(s, 1);
	char **fields[] = { &e->actor, &e->role, &e->tenant, &e->action, &e->object,
	    &e->source, &e->outcome, &e->detail };
	for (int i = 0; i < 8; i++)
		*fields[i] = store_audit_text_col(s, 2 + i, &e->malformed);
	if (sqlite3_column_type(s, 0) != SQLITE_INTEGER ||
	    sqlite3_column_type(s, 1) != SQLITE_INTEGER)
		e->malformed = 1;
	if (!store_audit_hash_col(s, 10, e->prev_hash) || !store_audit_hash_col(s, 11, e->hash))
		e->malformed = 1;
}

void
store_audit_entry_clear(struct store_audit_entry *e)
{
	free(e->actor);
	free(e->role);
	free(e->tenant);
	free(e->action);
	free(e->object);
	free(e->source);
	free(e->outcome);
	free(e->detail);
	memset(e, 0, sizeof(*e));
}

int
store_audit_foreach(struct store_audit *sa, store_audit_entry_cb *cb, void *arg)
{
	sqlite3_stmt *s = store_audit_stmt(sa, SA_ALL);
	int rc = SQLITE_DONE, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_audit_entry e;
		store_audit_entry_from_row(s, &e);
		stop = cb(arg, &e);
		store_audit_entry_clear(&e);
	}
	sqlite3_reset(s);
	if (!stop && rc != SQLITE_DONE) {
		store_audit_err(sa, "audit read", NULL);
		return -1;
	}
	return 0;
}

static void
store_audit_cp_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_audit_checkpoint *c = elem;
	memset(c, 0, sizeof(*c));
	c->seq = sqlite3_column_int64(s, 0);
	if (!store_audit_hash_col(s, 1, c->hash))
		c->malformed = 1;
	c->time_us = sqlite3_column_int64(s, 2);
	c->key_id = store_audit_text_col(s, 3, &c->malformed);
	const void *sig = sqlite3_column_blob(s, 4);
	if (sig != NULL && sqlite3_column_bytes(s, 4) == STORE_AUDIT_SIG_LEN)
		memcpy(c->signature, sig, STORE_AUDIT_SIG_LEN);
	else
		c->malformed = 1;
}

int
store_audit_checkpoints(struct store_audit *sa, struct store_audit_checkpoint **list_r,
    size_t *n_r)
{
	sqlite3_stmt *s = store_audit_stmt(sa, SA_CP_ALL);
	struct store_audit_checkpoint *list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), store_audit_cp_from_row, &rows, &n);
	list = rows;
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_audit_err(sa, "audit checkpoints", NULL);
		store_audit_checkpoints_free(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

void
store_audit_checkpoints_free(struct store_audit_checkpoint *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i].key_id);
	free(list);
}

int
store_audit_list(struct store_audit *sa, const struct store_audit_filter *f,
    struct store_audit_entry **list_r, size_t *n_r)
{
	sqlite3_stmt *s = store_audit_stmt(sa, SA_LIST);
	store_audit_bind_text(s, 1, f->tenant);
	store_audit_bind_text(s, 2, f->actor);
	sqlite3_bind_int64(s, 3, f->since_us);
	sqlite3_bind_int64(s, 4, f->limit > 0 ? f->limit : -1);
	struct store_audit_entry *list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), store_audit_entry_from_row, &rows, &n);
	list = rows;
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_audit_err(sa, "audit list", NULL);
		store_audit_entries_free(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

void
store_audit_entries_free(struct store_audit_entry *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_audit_entry_clear(&list[i]);
	free(list);
}
