/*
 * archive_store.c — store.db of one tenant (see the header for the model).
 *
 * WAL, synchronous=FULL (a COMMIT is on disk when it returns), foreign
 * keys off, busy_timeout 10 s.  The schema version is meta 'schema'='1'
 * and meta 'tenant' names the tenant, so a store.db copied under another
 * tenant's name is refused.  Statements used per message are prepared once
 * at open time (enum ast_stmt); the walks (foreach_*) prepare their own so
 * that a callback may use the store meanwhile.
 *
 * The data key is created only together with a new store.db: an existing
 * store.db whose key is gone (shredded) never gets a fresh key, which
 * would silently leave every old blob unreadable.
 *
 * Compression dictionaries (table dicts, sealed like blobs): once the
 * tenant has AST_TRAIN_AT blobs and no dictionary, the put that crosses
 * the threshold trains one from the newest AST_SAMPLE_MAX messages (in the
 * ingest transaction, under its write lock, so two handles never both
 * train); new blobs use the newest dictionary.  Loaded dictionaries are
 * cached on the handle.  A dictionary made in a transaction that rolls back
 * is forgotten (rollback hook), so no blob names a dictionary that is not
 * stored.  A training failure (too little or too uniform mail) is logged
 * and retried AST_TRAIN_AT blobs later; blobs stay format 1 meanwhile.
 *
 * New store.dbs use AST_PAGE_SIZE pages: a sealed message is a few kB,
 * and 4 KiB pages hold one such record each, wasting the rest.  They have
 * no separate index messages_hash: UNIQUE(hash, mailbox) serves lookups by
 * hash (older files keep theirs).  Index messages_mailbox(mailbox, id) serves
 * the continuity mailbox (archive_mailbox.h); opening adds it to older files.
 * Source "imap" marks messages a user APPENDed over continuity IMAP.
 */
#include "archive/archive_store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define AST_SCHEMA "1"
#define AST_PAGE_SIZE 16384
#define AST_TRAIN_AT 500              /* blobs before the first dictionary */
#define AST_SAMPLE_MAX 2000           /* newest messages a dictionary learns from */
#define AST_SAMPLE_BYTES 8192         /* bytes used of each (its headers and first text) */
#define AST_DICT_CAPACITY (110 * 1024)
#define AST_MAILBOX_MAX 512
#define AST_STR2(x) #x
#define AST_STR(x) AST_STR2(x)
#define AST_ROW_COLS "id, hash, mailbox, folder, source, env_from, env_rcpts, queue_id, " \
	"archived_at, msg_date, expires_at"

enum ast_stmt {
	AS_BEGIN,
	AS_COMMIT,
	AS_ROLLBACK,
	AS_HAS_BLOB,
	AS_BLOB_INSERT,
	AS_ROW_INSERT,
	AS_BLOB_GET,
	AS_ROW_GET,
	AS_MAX_ID,
	AS_ROW_DELETE,
	AS_BLOB_DELETE,
	AS_STATS,
	AS_DICT_GET,
	AS_DICT_NEWEST,
	AS_DICT_INSERT,
	AS_BLOB_LAST,
	AS_SAMPLE,
	AS_COUNT
};

static const char *const ast_sql[AS_COUNT] = {
	[AS_BEGIN] = "BEGIN IMMEDIATE",
	[AS_COMMIT] = "COMMIT",
	[AS_ROLLBACK] = "ROLLBACK",
	[AS_HAS_BLOB] = "SELECT 1 FROM blobs WHERE hash = ?1",
	[AS_BLOB_INSERT] = "INSERT OR IGNORE INTO blobs(hash, size, sealed) VALUES (?1, ?2, ?3)",
	[AS_ROW_INSERT] = "INSERT OR IGNORE INTO messages(hash, mailbox, folder, source, env_from, "
	    "env_rcpts, queue_id, archived_at, msg_date, expires_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[AS_BLOB_GET] = "SELECT size, sealed FROM blobs WHERE hash = ?1",
	[AS_ROW_GET] = "SELECT " AST_ROW_COLS " FROM messages WHERE id = ?1",
	[AS_MAX_ID] = "SELECT coalesce(max(id), 0) FROM messages",
	[AS_ROW_DELETE] = "DELETE FROM messages WHERE id = ?1 RETURNING hash",
	[AS_BLOB_DELETE] = "DELETE FROM blobs WHERE hash = ?1 AND NOT EXISTS "
	    "(SELECT 1 FROM messages m WHERE m.hash = blobs.hash)",
	[AS_STATS] = "SELECT (SELECT count(*) FROM messages), "
	    "(SELECT coalesce(max(id), 0) FROM messages), "
	    "count(*), coalesce(sum(size), 0), coalesce(sum(length(sealed)), 0) FROM blobs",
	[AS_DICT_GET] = "SELECT sealed FROM dicts WHERE id = ?1",
	[AS_DICT_NEWEST] = "SELECT coalesce(max(id), 0) FROM dicts",
	[AS_DICT_INSERT] = "INSERT INTO dicts(id, created, sealed) VALUES (?1, ?2, ?3)",
	[AS_BLOB_LAST] = "SELECT coalesce(max(rowid), 0) FROM blobs",
	[AS_SAMPLE] = "SELECT hash, sealed FROM blobs ORDER BY rowid DESC LIMIT ?1",
};

static const char *const ast_dicts_sql =
	"CREATE TABLE IF NOT EXISTS dicts("
	"  id INTEGER PRIMARY KEY,"
	"  created INTEGER NOT NULL,"
	"  sealed BLOB NOT NULL);"
	"CREATE INDEX IF NOT EXISTS messages_mailbox ON messages(mailbox, id);";

static const char *const ast_schema_sql =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS blobs("
	"  hash TEXT PRIMARY KEY,"
	"  size INTEGER NOT NULL,"
	"  sealed BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS messages("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  hash TEXT NOT NULL,"
	"  mailbox TEXT NOT NULL,"
	"  folder TEXT NOT NULL DEFAULT '',"
	"  source TEXT NOT NULL,"
	"  env_from TEXT,"
	"  env_rcpts TEXT,"
	"  queue_id TEXT,"
	"  archived_at INTEGER NOT NULL,"
	"  msg_date INTEGER NOT NULL,"
	"  expires_at INTEGER,"
	"  UNIQUE(hash, mailbox));"
	"CREATE INDEX IF NOT EXISTS messages_expires ON messages(expires_at);"
	"CREATE INDEX IF NOT EXISTS messages_mailbox ON messages(mailbox, id);"
	"CREATE TABLE IF NOT EXISTS dicts("
	"  id INTEGER PRIMARY KEY,"
	"  created INTEGER NOT NULL,"
	"  sealed BLOB NOT NULL);";

struct archive_store {
	sqlite3 *db;
	char *tenant;
	char *path;
	unsigned char key[ARCHIVE_KEY_LEN];
	sqlite3_stmt *stmt[AS_COUNT];
	struct archive_zdict **zd;    /* loaded dictionaries (cache) */
	size_t nzd;
	uint32_t cur;                 /* dictionary for new blobs, 0 = none */
	uint32_t pending;             /* made in the open transaction, 0 = none */
	int reload;                   /* a transaction that made one rolled back */
	long long blobs_seen;         /* blobs so far (max rowid + new ones) */
	long long train_at;           /* next training attempt at this many blobs */
};

/* A database failure: logged (our environment) and reported. */
static void
ast_db_err(struct archive_store *s, const char *what, char **err_r)
{
	const char *msg = sqlite3_errmsg(s->db);
	log_error("archive_store_error", "tenant=%s op=%s error=%s", s->tenant, what,
	    log_str(msg));
	err_setf(err_r, "archive store of tenant '%s': %s: %s", s->tenant, what, msg);
}

static sqlite3_stmt *
ast_stmt(struct archive_store *s, enum ast_stmt which)
{
	sqlite3_stmt *st = s->stmt[which];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static int
ast_exec_simple(struct archive_store *s, enum ast_stmt which)
{
	sqlite3_stmt *st = ast_stmt(s, which);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
ast_in_txn(struct archive_store *s)
{
	return sqlite3_get_autocommit(s->db) == 0;
}

/* ------------------------------------------------------------ dictionaries */

/* Rollback hook: a dictionary made in the transaction is gone from the file. */
static void
ast_on_rollback(void *arg)
{
	struct archive_store *s = arg;
	if (s->pending != 0)
		s->reload = 1;
}

static struct archive_zdict *
ast_zdict_find(struct archive_store *s, uint32_t id)
{
	for (size_t i = 0; i < s->nzd; i++)
		if (archive_crypto_zdict_id(s->zd[i]) == id)
			return s->zd[i];
	return NULL;
}

/* Unseals the stored dictionary `id`: a new zdict, NULL with *err_r. */
static struct archive_zdict *
ast_zdict_read(struct archive_store *s, uint32_t id, char **err_r)
{
	sqlite3_stmt *st = ast_stmt(s, AS_DICT_GET);
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			err_setf(err_r, "archive store of tenant '%s' has no compression dictionary "
			    "%u", s->tenant, id);
		else
			ast_db_err(s, "read dictionary", err_r);
		sqlite3_reset(st);
		return NULL;
	}
	unsigned char *dict = NULL;
	size_t dlen = 0;
	struct archive_zdict *zd = NULL;
	if (archive_crypto_dict_open(s->key, id, sqlite3_column_blob(st, 0),
	    (size_t)sqlite3_column_bytes(st, 0), &dict, &dlen, err_r) == 0) {
		zd = archive_crypto_zdict_new(id, dict, dlen, err_r);
		archive_crypto_wipe(dict, dlen);
		free(dict);
	}
	sqlite3_reset(st);
	return zd;
}

static void
ast_zdict_add(struct archive_store *s, struct archive_zdict *zd)
{
	s->zd = xrealloc(s->zd, (s->nzd + 1) * sizeof(*s->zd));
	s->zd[s->nzd++] = zd;
}

/* The dictionary `id`, from the cache or the file: NULL with *err_r. */
static struct archive_zdict *
ast_zdict_get(struct archive_store *s, uint32_t id, char **err_r)
{
	struct archive_zdict *zd = ast_zdict_find(s, id);
	if (zd == NULL && id == 0)
		err_setf(err_r, "a blob names compression dictionary 0, which does not exist");
	else if (zd == NULL && (zd = ast_zdict_read(s, id, err_r)) != NULL)
		ast_zdict_add(s, zd);
	return zd;
}

static void
ast_zdict_drop(struct archive_store *s, uint32_t id)
{
	for (size_t i = 0; i < s->nzd; i++) {
		if (archive_crypto_zdict_id(s->zd[i]) == id) {
			archive_crypto_zdict_free(&s->zd[i]);
			s->zd[i] = s->zd[--s->nzd];
			return;
		}
	}
}

static long long
ast_query_ll(struct archive_store *s, enum ast_stmt which)
{
	sqlite3_stmt *st = ast_stmt(s, which);
	long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	return v;
}

/* Makes the newest stored dictionary the one for new blobs (none: 0). */
static void
ast_use_newest(struct archive_store *s)
{
	long long newest = ast_query_ll(s, AS_DICT_NEWEST);
	char *err = NULL;
	s->cur = 0;
	if (newest <= 0 || newest > UINT32_MAX)
		return;
	if (ast_zdict_get(s, (uint32_t)newest, &err) == NULL) {
		log_error("archive_dict_unusable", "tenant=%s id=%lld error=%s", s->tenant, newest,
		    log_str(err));
		free(err);
		return;
	}
	s->cur = (uint32_t)newest;
}

/* Initial dictionary state of a freshly opened handle. */
static int
ast_dict_init(struct archive_store *s, char **err_r)
{
	s->blobs_seen = ast_query_ll(s, AS_BLOB_LAST);
	if (s->blobs_seen < 0) {
		ast_db_err(s, "count blobs", err_r);
		return -1;
	}
	s->train_at = AST_TRAIN_AT;
	ast_use_newest(s);
	return 0;
}

/* After a rollback that undid a dictionary: forget it, use what the file has. */
static void
ast_dict_sync(struct archive_store *s)
{
	if (!s->reload)
		return;
	ast_zdict_drop(s, s->pending);
	s->pending = 0;
	s->reload = 0;
	long long last = ast_query_ll(s, AS_BLOB_LAST);
	if (last >= 0)
		s->blobs_seen = last;
	ast_use_newest(s);
}

/* Appends the start of one sampled blob's message to the samples. */
static void
ast_sample_one(struct archive_store *s, sqlite3_stmt *st, struct buf *b, size_t **lens,
    size_t *n)
{
	const char *hash = (const char *)sqlite3_column_text(st, 0);
	unsigned char *raw = NULL;
	size_t len = 0;
	char *err = NULL;
	if (hash == NULL || archive_store_open_blob(s, hash, sqlite3_column_blob(st, 1),
	    (size_t)sqlite3_column_bytes(st, 1), &raw, &len, &err) < 0) {
		free(err);    /* verify reports bad blobs; a sample just skips them */
		return;
	}
	size_t use = len < AST_SAMPLE_BYTES ? len : AST_SAMPLE_BYTES;
	if (use >= 8) {
		buf_append(b, raw, use);
		*lens = xrealloc(*lens, (*n + 1) * sizeof(**lens));
		(*lens)[(*n)++] = use;
	}
	archive_crypto_wipe(raw, len);
	free(raw);
}

/* The newest messages' beginnings, back to back: 0, -1 with *err_r. */
static int
ast_sample(struct archive_store *s, struct buf *b, size_t **lens, size_t *n, char **err_r)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, ast_sql[AS_SAMPLE], -1, &st, NULL) != SQLITE_OK) {
		ast_db_err(s, "sample blobs", err_r);
		return -1;
	}
	sqlite3_bind_int(st, 1, AST_SAMPLE_MAX);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		ast_sample_one(s, st, b, lens, n);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		ast_db_err(s, "sample blobs", err_r);
		return -1;
	}
	return 0;
}

/* Seals and inserts dictionary `id`: 0, -1 with *err_r. */
static int
ast_dict_store(struct archive_store *s, uint32_t id, const unsigned char *dict, size_t len,
    char **err_r)
{
	unsigned char *sealed = NULL;
	size_t slen = 0;
	if (archive_crypto_dict_seal(s->key, id, dict, len, &sealed, &slen, err_r) < 0)
		return -1;
	sqlite3_stmt *st = ast_stmt(s, AS_DICT_INSERT);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	sqlite3_bind_blob64(st, 3, sealed, slen, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	free(sealed);
	if (rc != SQLITE_DONE) {
		ast_db_err(s, "store dictionary", err_r);
		return -1;
	}
	return 0;
}

/* Adds the trained dictionary as the newest: 0, -1 with *err_r. */
static int
ast_dict_add(struct archive_store *s, const unsigned char *dict, size_t len, char **err_r)
{
	long long newest = ast_query_ll(s, AS_DICT_NEWEST);
	if (newest < 0 || newest >= UINT32_MAX) {
		ast_db_err(s, "number the dictionary", err_r);
		return -1;
	}
	uint32_t id = (uint32_t)newest + 1;
	struct archive_zdict *zd = archive_crypto_zdict_new(id, dict, len, err_r);
	if (zd == NULL)
		return -1;
	if (ast_dict_store(s, id, dict, len, err_r) < 0) {
		archive_crypto_zdict_free(&zd);
		return -1;
	}
	ast_zdict_add(s, zd);
	s->cur = id;
	s->pending = id;
	return 0;
}

static double
ast_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Trains a dictionary from the newest messages and makes it current (in a txn). */
static int
ast_train(struct archive_store *s, char **err_r)
{
	struct buf b = BUF_INIT;
	size_t *lens = NULL, n = 0, dlen = 0;
	unsigned char *dict = NULL;
	double t0 = ast_now();
	int rc = ast_sample(s, &b, &lens, &n, err_r);
	size_t cap = b.len / 8 < AST_DICT_CAPACITY ? b.len / 8 : AST_DICT_CAPACITY;
	if (rc == 0)
		rc = archive_crypto_dict_train(b.data, lens, n, cap, &dict, &dlen, err_r);
	if (rc == 0)
		rc = ast_dict_add(s, dict, dlen, err_r);
	if (rc == 0)
		log_info("archive_dict_trained", "tenant=%s id=%u samples=%zu sample_bytes=%zu "
		    "dict_bytes=%zu ms=%.0f", s->tenant, s->cur, n, b.len, dlen,
		    (ast_now() - t0) * 1000.0);
	archive_crypto_wipe(b.data, b.len);
	buf_free(&b);
	archive_crypto_wipe(dict, dlen);
	free(dict);
	free(lens);
	return rc;
}

/* Before sealing a new blob: load or train the first dictionary when it is time. */
static void
ast_maybe_train(struct archive_store *s)
{
	if (s->cur != 0 || s->blobs_seen < s->train_at)
		return;
	ast_use_newest(s);    /* another handle may have made one */
	if (s->cur != 0)
		return;
	char *err = NULL;
	if (ast_train(s, &err) < 0) {
		log_warn("archive_dict_not_trained", "tenant=%s blobs=%lld error=%s", s->tenant,
		    s->blobs_seen, log_str(err));
		free(err);
		s->train_at = s->blobs_seen + AST_TRAIN_AT;
	}
}

int
archive_store_train(struct archive_store *s, char **err_r)
{
	int own = !ast_in_txn(s);
	ast_dict_sync(s);
	if (own && archive_store_begin(s, err_r) < 0)
		return -1;
	if (ast_train(s, err_r) < 0) {
		if (own)
			archive_store_rollback(s);
		return -1;
	}
	return own ? archive_store_commit(s, err_r) : 0;
}

int
archive_store_open_blob(struct archive_store *s, const char *hash, const void *sealed,
    size_t len, unsigned char **raw_r, size_t *len_r, char **err_r)
{
	uint32_t id = 0;
	struct archive_zdict *zd = NULL;
	if (archive_crypto_hash_ok(hash) && archive_crypto_blob_dict(sealed, len, &id) == 1 &&
	    (zd = ast_zdict_get(s, id, err_r)) == NULL)
		return -1;
	return archive_crypto_open_zdict(s->key, hash, zd, sealed, len, raw_r, len_r, err_r);
}

/* ------------------------------------------------------------ open/close */

void
archive_store_close(struct archive_store **sp)
{
	struct archive_store *s = *sp;
	if (s == NULL)
		return;
	for (size_t i = 0; i < AS_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db != NULL)
		sqlite3_close(s->db);
	for (size_t i = 0; i < s->nzd; i++)
		archive_crypto_zdict_free(&s->zd[i]);
	free(s->zd);
	archive_crypto_wipe(s->key, sizeof(s->key));
	free(s->tenant);
	free(s->path);
	free(s);
	*sp = NULL;
}

static int
ast_pragmas(struct archive_store *s, char **err_r)
{
	/* page_size only applies to a database without tables yet (a new one). */
	static const char *const pragmas = "PRAGMA page_size=" AST_STR(AST_PAGE_SIZE) "; "
	    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;";
	char *msg = NULL;
	if (sqlite3_busy_timeout(s->db, 10000) != SQLITE_OK ||
	    sqlite3_exec(s->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		err_setf(err_r, "%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Creates the tables (idempotent) and records schema and tenant. */
static int
ast_create_schema(struct archive_store *s, char **err_r)
{
	struct buf sql = BUF_INIT;
	char *q = sqlite3_mprintf("%Q", s->tenant);
	buf_appendf(&sql, "BEGIN IMMEDIATE; %s INSERT OR IGNORE INTO meta(key, value) VALUES "
	    "('schema', '%s'), ('tenant', %s); COMMIT;", ast_schema_sql, AST_SCHEMA, q);
	sqlite3_free(q);
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, buf_cstr(&sql), NULL, NULL, &msg);
	buf_free(&sql);
	if (rc != SQLITE_OK) {
		err_setf(err_r, "%s: cannot create the schema: %s", s->path,
		    msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		if (ast_in_txn(s))
			(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* Reads meta[key] into *value_r: 1 found, 0 absent (or no meta table), -1 error. */
static int
ast_meta_get(struct archive_store *s, const char *key, char **value_r)
{
	sqlite3_stmt *st = NULL;
	*value_r = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return strstr(sqlite3_errmsg(s->db), "no such table") != NULL ? 0 : -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*value_r = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Checks (create: makes) the schema and that the file is this tenant's. */
static int
ast_schema(struct archive_store *s, int create, char **err_r)
{
	char *v = NULL;
	int rc = ast_meta_get(s, "schema", &v);
	if (rc == 0 && create) {
		if (ast_create_schema(s, err_r) < 0)
			return -1;
		rc = ast_meta_get(s, "schema", &v);
	}
	if (rc <= 0) {
		err_setf(err_r, "%s: %s", s->path, rc < 0 ? sqlite3_errmsg(s->db) :
		    "not an archive store (no schema)");
		return -1;
	}
	int ok = strcmp(v, AST_SCHEMA) == 0;
	free(v);
	if (!ok) {
		err_setf(err_r, "%s: unsupported archive schema version", s->path);
		return -1;
	}
	if (ast_meta_get(s, "tenant", &v) != 1 || strcmp(v, s->tenant) != 0) {
		err_setf(err_r, "%s belongs to another tenant ('%s'), not '%s'", s->path,
		    v ? log_str(v) : "?", s->tenant);
		free(v);
		return -1;
	}
	free(v);
	return 0;
}

static int
ast_prepare_all(struct archive_store *s, char **err_r)
{
	for (size_t i = 0; i < AS_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, ast_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &s->stmt[i], NULL) != SQLITE_OK) {
			err_setf(err_r, "%s: cannot prepare a statement: %s", s->path,
			    sqlite3_errmsg(s->db));
			return -1;
		}
	}
	return 0;
}

/* Does the file exist?  1 / 0, -1 with *err_r for any other stat() failure. */
static int
ast_exists(const char *path, char **err_r)
{
	struct stat st;
	if (stat(path, &st) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	err_setf(err_r, "cannot stat %s: %s", path, strerror(errno));
	return -1;
}

/* Adds table dicts and index messages_mailbox (the continuity mailbox's
 * lookups) to a store.db made before them (no-op otherwise). */
static int
ast_dicts_table(struct archive_store *s, char **err_r)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, ast_dicts_sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_setf(err_r, "%s: cannot create table dicts: %s", s->path,
		    msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
ast_open_db(struct archive_store *s, int create, char **err_r)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	if (sqlite3_open_v2(s->path, &s->db, flags, NULL) != SQLITE_OK) {
		err_setf(err_r, "%s: cannot open: %s", s->path,
		    s->db ? sqlite3_errmsg(s->db) : "out of memory");
		return -1;
	}
	sqlite3_extended_result_codes(s->db, 1);
	if (ast_pragmas(s, err_r) < 0 || ast_schema(s, create, err_r) < 0 ||
	    ast_dicts_table(s, err_r) < 0 || ast_prepare_all(s, err_r) < 0 ||
	    ast_dict_init(s, err_r) < 0)
		return -1;
	sqlite3_rollback_hook(s->db, ast_on_rollback, s);
	return 0;
}

int
archive_store_open(const char *data_dir, const char *tenant, int create,
    struct archive_store **s_r, char **err_r)
{
	*s_r = NULL;
	if (!archive_crypto_tenant_ok(tenant)) {
		err_setf(err_r, "'%s' is not a valid tenant name for the archive",
		    tenant ? log_str(tenant) : "");
		return -1;
	}
	struct archive_store *s = xcalloc(1, sizeof(*s));
	struct buf path = BUF_INIT;
	s->tenant = xstrdup(tenant);
	buf_appendf(&path, "%s/archive/%s/store.db", data_dir, tenant);
	s->path = buf_steal(&path);
	int exists = ast_exists(s->path, err_r);
	if (exists < 0)
		goto fail;
	if (!exists && !create) {
		err_setf(err_r, "tenant '%s' has no archive", tenant);
		goto fail;
	}
	/* A new key only with a new store.db (see the top of this file). */
	if (archive_crypto_datakey_load(data_dir, tenant, create && !exists, s->key, err_r) < 0 ||
	    ast_open_db(s, create, err_r) < 0)
		goto fail;
	*s_r = s;
	return 0;
fail:
	archive_store_close(&s);
	return -1;
}

void *
archive_store_db(struct archive_store *s)
{
	return s->db;
}

const unsigned char *
archive_store_key(struct archive_store *s)
{
	return s->key;
}

/* ------------------------------------------------------------ transactions */

int
archive_store_begin(struct archive_store *s, char **err_r)
{
	if (ast_in_txn(s)) {
		err_setf(err_r, "archive store of tenant '%s': a transaction is already open",
		    s->tenant);
		return -1;
	}
	if (ast_exec_simple(s, AS_BEGIN) < 0) {
		ast_db_err(s, "begin", err_r);
		return -1;
	}
	return 0;
}

int
archive_store_commit(struct archive_store *s, char **err_r)
{
	if (ast_exec_simple(s, AS_COMMIT) < 0) {
		ast_db_err(s, "commit", err_r);
		archive_store_rollback(s);
		return -1;
	}
	s->pending = 0;
	return 0;
}

void
archive_store_rollback(struct archive_store *s)
{
	if (s != NULL && ast_in_txn(s))
		(void)ast_exec_simple(s, AS_ROLLBACK);
}

/* ------------------------------------------------------------ put */

int
archive_store_has_blob(struct archive_store *s, const char *hash)
{
	sqlite3_stmt *st = ast_stmt(s, AS_HAS_BLOB);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int
ast_source_ok(const char *src)
{
	static const char *const ok[] = { "inbound", "outbound", "internal", "journal", "import",
		"imap" };
	for (size_t i = 0; src != NULL && i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(src, ok[i]) == 0)
			return 1;
	return 0;
}

static int
ast_put_check(struct archive_store *s, const struct archive_put *p, char **err_r)
{
	if (!archive_crypto_hash_ok(p->hash)) {
		err_setf(err_r, "cannot archive: the hash is not 64 lower-case hex digits");
		return -1;
	}
	if (p->raw == NULL && p->len > 0) {
		err_setf(err_r, "cannot archive message %s: no content", p->hash);
		return -1;
	}
	if (!ast_source_ok(p->source)) {
		err_setf(err_r, "cannot archive message %s: unknown source '%s'", p->hash,
		    p->source ? log_str(p->source) : "");
		return -1;
	}
	for (size_t i = 0; i < p->nmailboxes; i++) {
		const char *m = p->mailboxes[i];
		if (m == NULL || strlen(m) > AST_MAILBOX_MAX) {
			err_setf(err_r, "cannot archive message %s: mailbox %zu is %s", p->hash, i,
			    m == NULL ? "missing" : "too long");
			return -1;
		}
	}
	return 0;
}

/* Seals and inserts the blob when it is new: 1 new, 0 existed, -1 with *err_r. */
static int
ast_put_blob(struct archive_store *s, const struct archive_put *p, char **err_r)
{
	int have = archive_store_has_blob(s, p->hash);
	if (have != 0) {
		if (have < 0)
			ast_db_err(s, "look up blob", err_r);
		return have < 0 ? -1 : 0;
	}
	unsigned char *sealed = NULL;
	size_t slen = 0;
	ast_dict_sync(s);
	ast_maybe_train(s);
	struct archive_zdict *zd = s->cur != 0 ? ast_zdict_find(s, s->cur) : NULL;
	if (archive_crypto_seal_zdict(s->key, p->hash, zd, p->raw, p->len, &sealed, &slen,
	    err_r) < 0)
		return -1;
	sqlite3_stmt *st = ast_stmt(s, AS_BLOB_INSERT);
	sqlite3_bind_text(st, 1, p->hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)p->len);
	sqlite3_bind_blob64(st, 3, sealed, slen, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	free(sealed);
	if (rc != SQLITE_DONE) {
		ast_db_err(s, "insert blob", err_r);
		return -1;
	}
	if (sqlite3_changes(s->db) == 0)
		return 0;
	s->blobs_seen++;
	return 1;
}

static void
ast_bind_opt(sqlite3_stmt *st, int col, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(st, col);
	else
		sqlite3_bind_text(st, col, v, -1, SQLITE_TRANSIENT);
}

/* Inserts one row: its id, 0 when it existed, -1 with *err_r. */
static long long
ast_put_row(struct archive_store *s, const struct archive_put *p, const char *mailbox,
    char **err_r)
{
	char *lower = xstrdup(mailbox);
	for (char *c = lower; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	sqlite3_stmt *st = ast_stmt(s, AS_ROW_INSERT);
	sqlite3_bind_text(st, 1, p->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, lower, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, p->folder ? p->folder : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, p->source, -1, SQLITE_STATIC);
	ast_bind_opt(st, 5, p->env_from);
	ast_bind_opt(st, 6, p->env_rcpts);
	ast_bind_opt(st, 7, p->queue_id);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)p->archived_at);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)p->msg_date);
	if (p->expires_at < 0)
		sqlite3_bind_null(st, 10);
	else
		sqlite3_bind_int64(st, 10, p->expires_at);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	free(lower);
	if (rc != SQLITE_DONE) {
		ast_db_err(s, "insert message", err_r);
		return -1;
	}
	return sqlite3_changes(s->db) > 0 ? (long long)sqlite3_last_insert_rowid(s->db) : 0;
}

static int
ast_put(struct archive_store *s, const struct archive_put *p, struct archive_put_result *r,
    long long *ids_r, char **err_r)
{
	int bn = ast_put_blob(s, p, err_r);
	if (bn < 0)
		return -1;
	r->blob_new = bn;
	size_t n = p->nmailboxes > 0 ? p->nmailboxes : 1;
	for (size_t i = 0; i < n; i++) {
		long long id = ast_put_row(s, p, p->nmailboxes > 0 ? p->mailboxes[i] : "", err_r);
		if (id < 0)
			return -1;
		if (ids_r != NULL)
			ids_r[i] = id;
		if (id > 0 && r->first_id == 0)
			r->first_id = id;
		if (id > 0)
			r->rows_new++;
		else
			r->rows_dup++;
	}
	return 0;
}

int
archive_store_put(struct archive_store *s, const struct archive_put *p,
    struct archive_put_result *r, long long *ids_r, char **err_r)
{
	struct archive_put_result dummy;
	if (r == NULL)
		r = &dummy;
	memset(r, 0, sizeof(*r));
	if (ast_put_check(s, p, err_r) < 0)
		return -1;
	int own = !ast_in_txn(s);
	if (own && archive_store_begin(s, err_r) < 0)
		return -1;
	if (ast_put(s, p, r, ids_r, err_r) < 0) {
		if (own)
			archive_store_rollback(s);
		return -1;
	}
	return own ? archive_store_commit(s, err_r) : 0;
}

/* ------------------------------------------------------------ reading */

int
archive_store_get(struct archive_store *s, const char *hash, unsigned char **raw_r,
    size_t *len_r, char **err_r)
{
	if (!archive_crypto_hash_ok(hash)) {
		err_setf(err_r, "'%s' is not a message hash", hash ? log_str(hash) : "");
		return -1;
	}
	sqlite3_stmt *st = ast_stmt(s, AS_BLOB_GET);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			err_setf(err_r, "tenant '%s' has no stored message %s", s->tenant, hash);
		else
			ast_db_err(s, "read blob", err_r);
		sqlite3_reset(st);
		return -1;
	}
	long long size = sqlite3_column_int64(st, 0);
	const void *sealed = sqlite3_column_blob(st, 1);
	size_t slen = (size_t)sqlite3_column_bytes(st, 1);
	rc = archive_store_open_blob(s, hash, sealed, slen, raw_r, len_r, err_r);
	sqlite3_reset(st);
	if (rc == 0 && (long long)*len_r != size) {
		err_setf(err_r, "blob %s holds %zu bytes, its row says %lld", hash, *len_r, size);
		free(*raw_r);
		*raw_r = NULL;
		return -1;
	}
	return rc;
}

/* Copies a hash column into out (64 chars + NUL; "" when absent or malformed). */
static void
ast_hash_col(sqlite3_stmt *st, int col, char out[65])
{
	const unsigned char *h = sqlite3_column_text(st, col);
	out[0] = '\0';
	if (h != NULL && strlen((const char *)h) == ARCHIVE_HASH_HEX_LEN)
		memcpy(out, h, ARCHIVE_HASH_HEX_LEN + 1);
}

static char *
ast_col_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	return v != NULL ? xstrdup((const char *)v) : NULL;
}

static void
ast_row_fill(sqlite3_stmt *st, struct archive_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	ast_hash_col(st, 1, r->hash);
	r->mailbox = ast_col_dup(st, 2);
	r->folder = ast_col_dup(st, 3);
	r->source = ast_col_dup(st, 4);
	r->env_from = ast_col_dup(st, 5);
	r->env_rcpts = ast_col_dup(st, 6);
	r->queue_id = ast_col_dup(st, 7);
	r->archived_at = (time_t)sqlite3_column_int64(st, 8);
	r->msg_date = (time_t)sqlite3_column_int64(st, 9);
	r->expires_at = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 :
	    sqlite3_column_int64(st, 10);
	if (r->mailbox == NULL)
		r->mailbox = xstrdup("");
	if (r->folder == NULL)
		r->folder = xstrdup("");
	if (r->source == NULL)
		r->source = xstrdup("");
}

void
archive_row_free(struct archive_row *r)
{
	if (r == NULL)
		return;
	xfree(&r->mailbox);
	xfree(&r->folder);
	xfree(&r->source);
	xfree(&r->env_from);
	xfree(&r->env_rcpts);
	xfree(&r->queue_id);
}

int
archive_store_row(struct archive_store *s, long long id, struct archive_row *r, char **err_r)
{
	sqlite3_stmt *st = ast_stmt(s, AS_ROW_GET);
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ast_row_fill(st, r);
	else if (rc != SQLITE_DONE)
		ast_db_err(s, "read message", err_r);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
archive_store_foreach_row(struct archive_store *s, long long after_id, archive_row_cb *cb,
    void *arg, char **err_r)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT " AST_ROW_COLS " FROM messages WHERE id > ?1 "
	    "ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
		ast_db_err(s, "list messages", err_r);
		return -1;
	}
	sqlite3_bind_int64(st, 1, after_id);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct archive_row r;
		ast_row_fill(st, &r);
		int stop = cb(arg, &r);
		archive_row_free(&r);
		if (stop != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		ast_db_err(s, "list messages", err_r);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
archive_store_foreach_blob(struct archive_store *s, archive_blob_cb *cb, void *arg, char **err_r)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT hash, size, sealed FROM blobs", -1, &st, NULL) !=
	    SQLITE_OK) {
		ast_db_err(s, "list blobs", err_r);
		return -1;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *h = sqlite3_column_text(st, 0);
		long long size = sqlite3_column_int64(st, 1);
		const void *sealed = sqlite3_column_blob(st, 2);
		size_t slen = (size_t)sqlite3_column_bytes(st, 2);
		if (cb(arg, h ? (const char *)h : "", size > 0 ? (size_t)size : 0, sealed,
		    slen) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		ast_db_err(s, "list blobs", err_r);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

long long
archive_store_max_id(struct archive_store *s)
{
	sqlite3_stmt *st = ast_stmt(s, AS_MAX_ID);
	int rc = sqlite3_step(st);
	long long id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	return id;
}

int
archive_store_stats(struct archive_store *s, struct archive_store_stats *out, char **err_r)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st = ast_stmt(s, AS_STATS);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->messages = sqlite3_column_int64(st, 0);
		out->max_id = sqlite3_column_int64(st, 1);
		out->blobs = sqlite3_column_int64(st, 2);
		out->raw_bytes = sqlite3_column_int64(st, 3);
		out->sealed_bytes = sqlite3_column_int64(st, 4);
	} else {
		ast_db_err(s, "statistics", err_r);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* ------------------------------------------------------------ deleting */

/* Deletes one row; its hash into hash_r ("" when there was no such row): 0, -1. */
static int
ast_delete_row(struct archive_store *s, long long id, char hash_r[65], char **err_r)
{
	sqlite3_stmt *st = ast_stmt(s, AS_ROW_DELETE);
	sqlite3_bind_int64(st, 1, id);
	hash_r[0] = '\0';
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ast_hash_col(st, 0, hash_r);
		rc = sqlite3_step(st);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		ast_db_err(s, "delete message", err_r);
		return -1;
	}
	return 0;
}

/* Deletes the blob if no row names it: 1 deleted, 0 kept, -1 with *err_r. */
static int
ast_delete_blob(struct archive_store *s, const char *hash, char **err_r)
{
	sqlite3_stmt *st = ast_stmt(s, AS_BLOB_DELETE);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		ast_db_err(s, "delete blob", err_r);
		return -1;
	}
	return sqlite3_changes(s->db) > 0 ? 1 : 0;
}

static int
ast_delete(struct archive_store *s, const long long *ids, size_t n, size_t *blobs_r,
    char **err_r)
{
	char (*hashes)[65] = xcalloc(n > 0 ? n : 1, sizeof(*hashes));
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = ast_delete_row(s, ids[i], hashes[i], err_r);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (hashes[i][0] == '\0')
			continue;
		int d = ast_delete_blob(s, hashes[i], err_r);
		if (d < 0)
			rc = -1;
		else
			*blobs_r += (size_t)d;
	}
	free(hashes);
	return rc;
}

int
archive_store_delete_rows(struct archive_store *s, const long long *ids, size_t n,
    size_t *blobs_deleted_r, char **err_r)
{
	size_t blobs = 0;
	if (blobs_deleted_r != NULL)
		*blobs_deleted_r = 0;
	int own = !ast_in_txn(s);
	if (own && archive_store_begin(s, err_r) < 0)
		return -1;
	if (ast_delete(s, ids, n, &blobs, err_r) < 0) {
		if (own)
			archive_store_rollback(s);
		return -1;
	}
	if (own && archive_store_commit(s, err_r) < 0)
		return -1;
	if (blobs_deleted_r != NULL)
		*blobs_deleted_r = blobs;
	return 0;
}
