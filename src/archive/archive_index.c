/*
 * archive_index.c — index.db: documents, contentless FTS5 and search.
 *
 * Fixed statements are prepared at open; the search statements, whose text
 * depends on the query's shape, live in a small per-handle cache keyed by
 * their SQL.  The query (with the caller's mailbox restriction and the
 * filters as meta tokens) is usually one FTS5 MATCH; then its matching ids
 * are read once (the total) and the page, ordered msg_date DESC, id DESC,
 * is fetched the cheapest of three ways (ix_page_sql's cost estimate):
 *   - probe: walk docs newest first, running the MATCH for each row, when
 *     matches are dense (a page needs few rows);
 *   - walk: walk docs newest first (within the query's date bounds) testing
 *     membership in the collected ids;
 *   - join: join the (few) matches with docs and sort.
 * Other queries count and page with SQL over docs.
 * Free text lives in table fts, addresses in fta (see archive_index.h).
 *
 * Measured at 1M synthetic documents (test_archive_index, MAILARK_MEASURE=1,
 * 200 Zipf words each; 2-core VM): p95 of every query shape under 100 ms
 * (word + date range 8 ms, folder: + word 24, mailbox-restricted common word
 * 15, OR 10, NOT 74, prefix 76, common word 79) except a phrase of two top-20
 * words (~240 ms: FTS5 must compare the positions of both words in nearly
 * every document).  1278 bytes per document.  prefix='2 3' was measured and
 * left out: it made the index 79% larger (2309 instead of 1292 bytes per
 * document at 200k), and prefix searches stay under 100 ms without it once
 * their page is not fetched by per-row probes (ix_match_weight).
 */
#include "archive/archive_index.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "archive/archive_parse.h"
#include "archive/archive_query.h"
#include "archive/archive_store.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define IX_SCHEMA_VERSION 2
#define IX_PREVIEW_CHARS 120
#define IX_CACHE 16
#define IX_DEFAULT_LIMIT 50
#define IX_MAX_LIMIT 1000

enum ix_stmt {
	IX_BEGIN, IX_COMMIT, IX_ROLLBACK, IX_DOC_INS, IX_FTS_INS, IX_FTA_INS, IX_DOC_ENV,
	IX_FTS_DEL, IX_FTA_DEL, IX_DOC_DEL, IX_META_SET, IX_META_GET, IX_COUNT, IX_RESET_DOCS,
	IX_RESET_FTS, IX_RESET_FTA, IX_RESET_META, IX_STMT_COUNT
};

static const char *const ix_sql[IX_STMT_COUNT] = {
	[IX_BEGIN] = "BEGIN IMMEDIATE",
	[IX_COMMIT] = "COMMIT",
	[IX_ROLLBACK] = "ROLLBACK",
	[IX_DOC_INS] = "INSERT OR IGNORE INTO docs(id, hash, mailbox, folder, msg_date, size, "
	    "from_addr, subject, has_attachment, preview, env_from, env_rcpts) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[IX_FTS_INS] = "INSERT INTO fts(rowid, subject, body, filenames, meta) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)",
	[IX_FTA_INS] = "INSERT INTO fta(rowid, sender, recipients, cc) VALUES (?1, ?2, ?3, ?4)",
	[IX_DOC_ENV] = "SELECT env_from, env_rcpts, mailbox, folder, msg_date, has_attachment "
	    "FROM docs WHERE id = ?1",
	[IX_FTS_DEL] = "INSERT INTO fts(fts, rowid, subject, body, filenames, meta) "
	    "VALUES ('delete', ?1, ?2, ?3, ?4, ?5)",
	[IX_FTA_DEL] = "INSERT INTO fta(fta, rowid, sender, recipients, cc) "
	    "VALUES ('delete', ?1, ?2, ?3, ?4)",
	[IX_DOC_DEL] = "DELETE FROM docs WHERE id = ?1",
	[IX_META_SET] = "INSERT INTO meta(key, value) VALUES ('indexed_upto', ?1) "
	    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[IX_META_GET] = "SELECT value FROM meta WHERE key = 'indexed_upto'",
	[IX_COUNT] = "SELECT count(*) FROM docs",
	[IX_RESET_DOCS] = "DELETE FROM docs",
	[IX_RESET_FTS] = "INSERT INTO fts(fts) VALUES ('delete-all')",
	[IX_RESET_FTA] = "INSERT INTO fta(fta) VALUES ('delete-all')",
	[IX_RESET_META] = "DELETE FROM meta WHERE key = 'indexed_upto'",
};

static const char ix_schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS docs("
	"  id INTEGER PRIMARY KEY,"
	"  hash TEXT NOT NULL,"
	"  mailbox TEXT NOT NULL,"
	"  folder TEXT NOT NULL COLLATE NOCASE,"
	"  msg_date INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  from_addr TEXT,"
	"  subject TEXT,"
	"  has_attachment INTEGER NOT NULL,"
	"  preview TEXT,"
	"  env_from TEXT,"
	"  env_rcpts TEXT);"
	"CREATE INDEX IF NOT EXISTS docs_date ON docs(msg_date);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(subject, body, filenames, meta,"
	"  content='', columnsize=0,"
	"  tokenize='unicode61 remove_diacritics 2');"
	"CREATE VIRTUAL TABLE IF NOT EXISTS fta USING fts5(sender, recipients, cc,"
	"  content='', columnsize=0, tokenize='unicode61 remove_diacritics 2');";

#define IX_HIT_COLS "docs.id, docs.hash, docs.mailbox, docs.folder, docs.from_addr, " \
	"docs.subject, docs.preview, docs.msg_date, docs.size, docs.has_attachment"

struct ix_cached {
	char *sql;
	sqlite3_stmt *st;
};

struct archive_index {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *st[IX_STMT_COUNT];
	struct ix_cached cache[IX_CACHE];
	size_t cache_next;
	int in_txn;
};

static void
ix_err(struct archive_index *ix, char **err_r, const char *what)
{
	const char *msg = ix->db != NULL ? sqlite3_errmsg(ix->db) : "out of memory";
	log_error("archive_index_error", "path=%s op=%s error=%s", log_str(ix->path), what,
	    log_str(msg));
	struct buf b = BUF_INIT;
	buf_appendf(&b, "index database error (%s): %s", what, msg);
	*err_r = buf_steal(&b);
}

static void
ix_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Runs a fixed statement that returns no rows.  0 / -1. */
static int
ix_run(struct archive_index *ix, enum ix_stmt s, char **err_r, const char *what)
{
	int rc = sqlite3_step(ix->st[s]);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		ix_err(ix, err_r, what);
		ix_done(ix->st[s]);
		return -1;
	}
	ix_done(ix->st[s]);
	return 0;
}

/* ---------------------------------------------------------------- open */

static int
ix_schema_create(struct archive_index *ix, char **err_r)
{
	sqlite3_stmt *st;
	int version = -1;
	if (sqlite3_prepare_v2(ix->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
		ix_err(ix, err_r, "schema");
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version == IX_SCHEMA_VERSION)
		return 0;
	if (version != 0) {
		struct buf b = BUF_INIT;
		if (version > 0 && version < IX_SCHEMA_VERSION)
			buf_appendf(&b, "%s: index schema version %d is outdated (this build uses %d); "
			    "set it aside and reindex", ix->path, version, IX_SCHEMA_VERSION);
		else
			buf_appendf(&b, "%s: unknown index schema version %d", ix->path, version);
		*err_r = buf_steal(&b);
		return -1;
	}
	struct buf sql = BUF_INIT;
	buf_appendf(&sql, "BEGIN IMMEDIATE; %s PRAGMA user_version=%d; COMMIT;", ix_schema,
	    IX_SCHEMA_VERSION);
	int rc = sqlite3_exec(ix->db, sql.data, NULL, NULL, NULL);
	buf_free(&sql);
	if (rc != SQLITE_OK) {
		ix_err(ix, err_r, "schema");
		sqlite3_exec(ix->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int
archive_index_open(const char *path, struct archive_index **ix_r, char **err_r)
{
	struct archive_index *ix = xcalloc(1, sizeof(*ix));
	ix->path = xstrdup(path);
	*ix_r = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &ix->db, flags, NULL) != SQLITE_OK)
		goto fail;
	static const char pragmas[] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
	    "PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456; PRAGMA temp_store=MEMORY;";
	if (sqlite3_busy_timeout(ix->db, 10000) != SQLITE_OK ||
	    sqlite3_exec(ix->db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (ix_schema_create(ix, err_r) < 0)
		goto fail_err;
	for (size_t i = 0; i < IX_STMT_COUNT; i++)
		if (sqlite3_prepare_v3(ix->db, ix_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ix->st[i],
		    NULL) != SQLITE_OK)
			goto fail;
	*ix_r = ix;
	return 0;
fail:
	ix_err(ix, err_r, "open");
fail_err:
	archive_index_close(&ix);
	return -1;
}

void
archive_index_close(struct archive_index **ixp)
{
	struct archive_index *ix = *ixp;
	if (ix == NULL)
		return;
	*ixp = NULL;
	if (ix->in_txn)
		archive_index_rollback(ix);
	for (size_t i = 0; i < IX_STMT_COUNT; i++)
		sqlite3_finalize(ix->st[i]);
	for (size_t i = 0; i < IX_CACHE; i++) {
		sqlite3_finalize(ix->cache[i].st);
		free(ix->cache[i].sql);
	}
	sqlite3_close(ix->db);
	free(ix->path);
	free(ix);
}

/* --------------------------------------------------------- transactions */

int
archive_index_begin(struct archive_index *ix, char **err_r)
{
	if (ix_run(ix, IX_BEGIN, err_r, "begin") < 0)
		return -1;
	ix->in_txn = 1;
	return 0;
}

int
archive_index_commit(struct archive_index *ix, long long indexed_upto, char **err_r)
{
	if (indexed_upto >= 0) {
		sqlite3_bind_int64(ix->st[IX_META_SET], 1, indexed_upto);
		if (ix_run(ix, IX_META_SET, err_r, "commit") < 0) {
			archive_index_rollback(ix);
			return -1;
		}
	}
	if (ix_run(ix, IX_COMMIT, err_r, "commit") < 0) {
		archive_index_rollback(ix);
		return -1;
	}
	ix->in_txn = 0;
	return 0;
}

void
archive_index_rollback(struct archive_index *ix)
{
	if (sqlite3_get_autocommit(ix->db) == 0) {
		sqlite3_step(ix->st[IX_ROLLBACK]);
		ix_done(ix->st[IX_ROLLBACK]);
	}
	ix->in_txn = 0;
}

long long
archive_index_indexed_upto(struct archive_index *ix)
{
	sqlite3_stmt *st = ix->st[IX_META_GET];
	long long v = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	ix_done(st);
	return v;
}

long long
archive_index_count(struct archive_index *ix)
{
	sqlite3_stmt *st = ix->st[IX_COUNT];
	long long v = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	ix_done(st);
	return v;
}

int
archive_index_reset(struct archive_index *ix, char **err_r)
{
	int own = !ix->in_txn;
	if (own && archive_index_begin(ix, err_r) < 0)
		return -1;
	if (ix_run(ix, IX_RESET_DOCS, err_r, "reset") < 0 ||
	    ix_run(ix, IX_RESET_FTS, err_r, "reset") < 0 ||
	    ix_run(ix, IX_RESET_FTA, err_r, "reset") < 0 ||
	    ix_run(ix, IX_RESET_META, err_r, "reset") < 0) {
		if (own)
			archive_index_rollback(ix);
		return -1;
	}
	return own ? archive_index_commit(ix, -1, err_r) : 0;
}

/* ------------------------------------------------------------ documents */

static char *
ix_join(const char *a, const char *b, const char *c)
{
	struct buf out = BUF_INIT;
	const char *parts[3] = { a, b, c };
	for (size_t i = 0; i < 3; i++) {
		if (parts[i] == NULL || parts[i][0] == '\0')
			continue;
		if (out.len > 0)
			buf_append_char(&out, ' ');
		buf_append_str(&out, parts[i]);
	}
	buf_append_str(&out, "");
	return buf_steal(&out);
}

void
archive_fts_cols_make(const struct archive_doc *doc, const char *env_from,
    const char *env_rcpts, struct archive_fts_cols *c)
{
	char *rcpts = xstrdup(env_rcpts != NULL ? env_rcpts : "");
	for (char *p = rcpts; *p != '\0'; p++)
		if (*p == ',')
			*p = ' ';
	c->subject = xstrdup(doc->subject != NULL ? doc->subject : "");
	c->sender = ix_join(doc->from, env_from, NULL);
	c->recipients = ix_join(doc->to, doc->bcc, rcpts);
	c->cc = xstrdup(doc->cc != NULL ? doc->cc : "");
	c->body = xstrdup(doc->body != NULL ? doc->body : "");
	c->filenames = xstrdup(doc->filenames != NULL ? doc->filenames : "");
	free(rcpts);
}

void
archive_fts_cols_free(struct archive_fts_cols *c)
{
	free(c->subject);
	free(c->sender);
	free(c->recipients);
	free(c->cc);
	free(c->body);
	free(c->filenames);
	memset(c, 0, sizeof(*c));
}

/* Runs the fts (text) and fta (addresses) statements of one row: insert or
 * 'delete'.  0 / -1. */
static int
ix_fts_rows(struct archive_index *ix, enum ix_stmt text, enum ix_stmt addr, long long id,
    const struct archive_fts_cols *c, const char *meta, char **err_r)
{
	sqlite3_bind_text(ix->st[text], 5, meta, -1, SQLITE_STATIC);
	const char *v[2][3] = { { c->subject, c->body, c->filenames },
	    { c->sender, c->recipients, c->cc } };
	const enum ix_stmt st[2] = { text, addr };
	for (int t = 0; t < 2; t++) {
		sqlite3_bind_int64(ix->st[st[t]], 1, id);
		for (int i = 0; i < 3; i++)
			sqlite3_bind_text(ix->st[st[t]], i + 2, v[t][i], -1, SQLITE_STATIC);
		if (ix_run(ix, st[t], err_r, text == IX_FTS_INS ? "add" : "delete") < 0)
			return -1;
	}
	return 0;
}

/* The first IX_PREVIEW_CHARS characters of the body, white space collapsed. */
static char *
ix_preview(const char *body)
{
	struct buf b = BUF_INIT;
	size_t chars = 0;
	int space = 0;
	for (const unsigned char *p = (const unsigned char *)(body ? body : ""); *p != '\0'; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\f' || *p == '\v') {
			space = b.len > 0;
			continue;
		}
		int lead = (*p & 0xC0) != 0x80;
		if (lead && chars == IX_PREVIEW_CHARS)
			break;
		if (space && lead) {
			if (++chars == IX_PREVIEW_CHARS)
				break;
			buf_append_char(&b, ' ');
		}
		space = 0;
		chars += lead;
		buf_append_char(&b, (char)*p);
	}
	buf_append_str(&b, "");
	return buf_steal(&b);
}

static int
ix_insert_doc(struct archive_index *ix, const struct archive_row *row, size_t size,
    const struct archive_doc *doc, char **err_r)
{
	sqlite3_stmt *st = ix->st[IX_DOC_INS];
	char *preview = ix_preview(doc->body);
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_text(st, 2, row->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, row->mailbox != NULL ? row->mailbox : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, row->folder != NULL ? row->folder : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (long long)row->msg_date);
	sqlite3_bind_int64(st, 6, (long long)size);
	sqlite3_bind_text(st, 7, doc->from_addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, doc->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, doc->has_attachment != 0);
	sqlite3_bind_text(st, 10, preview, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, row->env_from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, row->env_rcpts, -1, SQLITE_STATIC);
	int rc = ix_run(ix, IX_DOC_INS, err_r, "add");
	free(preview);
	if (rc < 0)
		return -1;
	return sqlite3_changes(ix->db) > 0;
}

int
archive_index_add(struct archive_index *ix, const struct archive_row *row, size_t size,
    const struct archive_doc *doc, char **err_r)
{
	int rc = ix_insert_doc(ix, row, size, doc, err_r);
	if (rc <= 0)
		return rc;   /* -1, or 0: already indexed (its FTS row exists too) */
	struct archive_fts_cols c;
	archive_fts_cols_make(doc, row->env_from, row->env_rcpts, &c);
	char *meta = archive_query_meta_text(row->mailbox, row->folder, (long long)row->msg_date,
	    doc->has_attachment != 0);
	rc = ix_fts_rows(ix, IX_FTS_INS, IX_FTA_INS, row->id, &c, meta, err_r);
	free(meta);
	archive_fts_cols_free(&c);
	return rc;
}

int
archive_index_delete(struct archive_index *ix, long long id, const struct archive_doc *doc,
    char **err_r)
{
	sqlite3_stmt *st = ix->st[IX_DOC_ENV];
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ix_done(st);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		ix_err(ix, err_r, "delete");
		ix_done(st);
		return -1;
	}
	struct archive_fts_cols c;
	archive_fts_cols_make(doc, (const char *)sqlite3_column_text(st, 0),
	    (const char *)sqlite3_column_text(st, 1), &c);
	char *meta = archive_query_meta_text((const char *)sqlite3_column_text(st, 2),
	    (const char *)sqlite3_column_text(st, 3), sqlite3_column_int64(st, 4),
	    sqlite3_column_int(st, 5));
	ix_done(st);
	rc = ix_fts_rows(ix, IX_FTS_DEL, IX_FTA_DEL, id, &c, meta, err_r);
	free(meta);
	archive_fts_cols_free(&c);
	if (rc < 0)
		return -1;
	sqlite3_bind_int64(ix->st[IX_DOC_DEL], 1, id);
	return ix_run(ix, IX_DOC_DEL, err_r, "delete");
}

/* --------------------------------------------------------------- search */

/* A statement for dynamic SQL, from the cache or freshly prepared. */
static sqlite3_stmt *
ix_stmt(struct archive_index *ix, const char *sql, char **err_r)
{
	for (size_t i = 0; i < IX_CACHE; i++)
		if (ix->cache[i].sql != NULL && strcmp(ix->cache[i].sql, sql) == 0)
			return ix->cache[i].st;
	struct ix_cached *c = &ix->cache[ix->cache_next];
	ix->cache_next = (ix->cache_next + 1) % IX_CACHE;
	sqlite3_finalize(c->st);
	free(c->sql);
	c->sql = NULL;
	if (sqlite3_prepare_v3(ix->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st, NULL) !=
	    SQLITE_OK) {
		c->st = NULL;
		ix_err(ix, err_r, "search");
		return NULL;
	}
	c->sql = xstrdup(sql);
	return c->st;
}

struct ix_search {
	struct archive_index *ix;
	const struct archive_search_opts *o;
	struct archive_qsql q;      /* the mailbox restriction is part of it */
	long long limit, offset;
	long long date_min, date_max;   /* msg_date range in the index */
	long long *ids;             /* pure MATCH: every matching id, ascending */
	size_t nids;
};

/* Binds the query's where-parameters from index *i. */
static void
ix_bind_where(struct ix_search *s, sqlite3_stmt *st, int *i)
{
	for (size_t k = 0; k < s->q.nparams; k++, (*i)++) {
		const struct archive_qparam *p = &s->q.params[k];
		if (p->is_int)
			sqlite3_bind_int64(st, *i, p->i);
		else
			sqlite3_bind_text(st, *i, p->s, -1, SQLITE_STATIC);
	}
}

static void
ix_where_sql(struct ix_search *s, struct buf *b)
{
	buf_appendf(b, " WHERE (%s)", s->q.where);
}

static int
ix_pure_match(const struct ix_search *s)
{
	return s->q.match != NULL;
}

/* A pure MATCH query: reads every matching id once (the total, and the set
 * the page walk tests against).  0 / -1. */
static int
ix_collect(struct ix_search *s, size_t *total_r, char **err_r)
{
	struct buf sql = BUF_INIT;
	const char *t = s->q.match_table;
	buf_appendf(&sql, "SELECT rowid FROM %s WHERE %s MATCH ? ORDER BY rowid", t, t);
	sqlite3_stmt *st = ix_stmt(s->ix, sql.data, err_r);
	buf_free(&sql);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, s->q.match, -1, SQLITE_STATIC);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (s->nids == cap) {
			cap = cap ? cap * 2 : 1024;
			s->ids = xrealloc(s->ids, cap * sizeof(*s->ids));
		}
		s->ids[s->nids++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE)
		ix_err(s->ix, err_r, "search");
	ix_done(st);
	*total_r = s->nids;
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
ix_count(struct ix_search *s, size_t *total_r, char **err_r)
{
	struct buf sql = BUF_INIT;
	int i = 1;
	if (ix_pure_match(s))
		return ix_collect(s, total_r, err_r);
	if (s->q.all)
		buf_append_str(&sql, "SELECT count(*) FROM docs");
	else {
		buf_append_str(&sql, "SELECT count(*) FROM docs");
		ix_where_sql(s, &sql);
	}
	sqlite3_stmt *st = ix_stmt(s->ix, sql.data, err_r);
	buf_free(&sql);
	if (st == NULL)
		return -1;
	if (!s->q.all)
		ix_bind_where(s, st, &i);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*total_r = (size_t)sqlite3_column_int64(st, 0);
	else
		ix_err(s->ix, err_r, "search");
	ix_done(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int
isalnum_ascii(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    c >= 0x80;
}

/* Highlights the first query word found in the preview as [word]. */
static char *
ix_snippet(const char *preview, const struct archive_qsql *q)
{
	for (size_t w = 0; w < q->nwords; w++) {
		size_t len = strlen(q->words[w]);
		for (const char *p = preview; *p != '\0'; p++) {
			if (strncasecmp(p, q->words[w], len) != 0)
				continue;
			unsigned char before = p > preview ? (unsigned char)p[-1] : ' ';
			unsigned char after = (unsigned char)p[len];
			if (isalnum_ascii(before) || isalnum_ascii(after))
				continue;
			struct buf b = BUF_INIT;
			buf_appendf(&b, "%.*s[%.*s]%s", (int)(p - preview), preview, (int)len, p,
			    p + len);
			return buf_steal(&b);
		}
	}
	return xstrdup(preview);
}

static char *
ix_col_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	return xstrdup(v != NULL ? (const char *)v : "");
}

static void
ix_hit_read(struct ix_search *s, sqlite3_stmt *st, struct archive_hit *h)
{
	memset(h, 0, sizeof(*h));
	h->id = sqlite3_column_int64(st, 0);
	const unsigned char *hash = sqlite3_column_text(st, 1);
	snprintf(h->hash, sizeof(h->hash), "%s", hash != NULL ? (const char *)hash : "");
	h->mailbox = ix_col_dup(st, 2);
	h->folder = ix_col_dup(st, 3);
	h->from = ix_col_dup(st, 4);
	h->subject = ix_col_dup(st, 5);
	if (!s->o->ids_only) {
		const unsigned char *pv = sqlite3_column_text(st, 6);
		h->snippet = ix_snippet(pv != NULL ? (const char *)pv : "", &s->q);
	}
	h->date = (time_t)sqlite3_column_int64(st, 7);
	h->size = (size_t)sqlite3_column_int64(st, 8);
	h->has_attachment = sqlite3_column_int(st, 9);
}

/* Approximate number of documents (max id: O(log n), unlike count(*)). */
static long long
ix_ndocs(struct archive_index *ix, char **err_r)
{
	sqlite3_stmt *st = ix_stmt(ix, "SELECT max(id) FROM docs", err_r);
	if (st == NULL)
		return -1;
	long long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	ix_done(st);
	return n;
}

/* The msg_date range of the index (two docs_date lookups).  0 / -1. */
static int
ix_date_range(struct archive_index *ix, long long *min_r, long long *max_r, char **err_r)
{
	sqlite3_stmt *st = ix_stmt(ix, "SELECT (SELECT min(msg_date) FROM docs), "
	    "(SELECT max(msg_date) FROM docs)", err_r);
	if (st == NULL)
		return -1;
	*min_r = 1;
	*max_r = 0;     /* empty: no date matches */
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*min_r = sqlite3_column_int64(st, 0);
		*max_r = sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_ROW)
		ix_err(ix, err_r, "search");
	ix_done(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Whether the query bounds msg_date (then the page walk starts in range). */
static int
ix_dated(const struct ix_search *s)
{
	return s->q.date_lo != LLONG_MIN || s->q.date_hi != LLONG_MAX;
}

/* Relative costs (measured, microseconds at 200k documents) of the three
 * ways to fetch a page of a pure MATCH query in date order:
 *   probe: walk docs newest first, run the MATCH for each row (EXISTS);
 *   walk:  walk docs newest first testing membership in the matching ids
 *          (collected once, for the total too: ix_collect);
 *   join:  join every match with docs and sort. */
#define IX_COST_PROBE 25.0      /* per docs row walked, EXISTS */
#define IX_COST_COLLECT 0.15    /* per match, collecting rowids */
#define IX_COST_WALK 0.3        /* per docs row walked, membership test */
#define IX_COST_JOIN 1.0        /* per match, join + sort */

enum ix_plan { IX_PLAN_WHERE, IX_PLAN_JOIN, IX_PLAN_PROBE, IX_PLAN_WALK };

/* A probe sets up every phrase of the MATCH again, and a prefix phrase scans
 * the term dictionary each time (measured: 40 times a plain one).  User text
 * is always inside "..." and never contains '*', so counting is exact. */
static double
ix_match_weight(const char *match)
{
	double quotes = 0, prefix = 0;
	for (const char *p = match; *p != '\0'; p++) {
		quotes += *p == '"';
		prefix += *p == '*';
	}
	double phrases = quotes / 2 > 1 ? quotes / 2 : 1;
	return phrases * (prefix > 0 ? 40 : 1);
}

/* Estimated docs rows walked newest first (within the query's date bounds)
 * before a page of a query with total matches is complete. */
static double
ix_walk_rows(struct ix_search *s, size_t total, long long ndocs)
{
	double span = (double)s->date_max - (double)s->date_min + 1;
	double n = (double)ndocs;
	if (ix_dated(s) && span > 0) {
		double lo = s->q.date_lo > s->date_min ? (double)s->q.date_lo : (double)s->date_min;
		double hi = s->q.date_hi <= s->date_max ? (double)s->q.date_hi :
		    (double)s->date_max + 1;
		n = n * (hi > lo ? hi - lo : 1) / span + 1;
	}
	return (double)(s->offset + s->limit) * n / (double)total;
}

/* The SQL of the page query and how it binds (ix_page). */
static int
ix_page_sql(struct ix_search *s, size_t total, struct buf *sql, enum ix_plan *plan,
    char **err_r)
{
	buf_append_str(sql, "SELECT " IX_HIT_COLS);
	*plan = IX_PLAN_WHERE;
	if (!ix_pure_match(s)) {
		buf_append_str(sql, " FROM docs");
		ix_where_sql(s, sql);
	} else {
		long long ndocs = ix_ndocs(s->ix, err_r);
		if (ndocs < 0)
			return -1;
		double rows = ix_walk_rows(s, total, ndocs);
		double probe = rows * IX_COST_PROBE * ix_match_weight(s->q.match);
		double join = (double)total * IX_COST_JOIN;
		double walk = (double)total * IX_COST_COLLECT + rows * IX_COST_WALK;
		const char *t = s->q.match_table;
		*plan = IX_PLAN_JOIN;
		if (s->limit >= 0 && probe < join && probe < walk)
			*plan = IX_PLAN_PROBE;
		else if (s->limit >= 0 && walk < join)
			*plan = IX_PLAN_WALK;
		if (*plan == IX_PLAN_PROBE)
			buf_appendf(sql, " FROM docs WHERE docs.msg_date >= ? AND docs.msg_date < ? "
			    "AND EXISTS (SELECT 1 FROM %s WHERE %s MATCH ? AND %s.rowid = docs.id)",
			    t, t, t);
		else if (*plan == IX_PLAN_WALK)
			return 0;                       /* ix_page_walk: no SQL */
		else
			buf_appendf(sql, " FROM %s CROSS JOIN docs ON docs.id = %s.rowid "
			    "WHERE %s MATCH ?", t, t, t);
	}
	buf_append_str(sql, " ORDER BY docs.msg_date DESC, docs.id DESC LIMIT ? OFFSET ?");
	return 0;
}

static int
ix_id_cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

/* Appends the hit of document id.  0 / -1. */
static int
ix_hit_fetch(struct ix_search *s, long long id, struct archive_results *res, char **err_r)
{
	sqlite3_stmt *st = ix_stmt(s->ix, "SELECT " IX_HIT_COLS " FROM docs WHERE id = ?", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		res->hits = xrealloc(res->hits, (res->nhits + 1) * sizeof(*res->hits));
		ix_hit_read(s, st, &res->hits[res->nhits++]);
	} else if (rc != SQLITE_DONE) {
		ix_err(s->ix, err_r, "search");
	}
	ix_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* The page by walking docs newest first (within the date bounds) and keeping
 * the ids in s->ids.  0 / -1. */
static int
ix_page_walk(struct ix_search *s, struct archive_results *res, char **err_r)
{
	sqlite3_stmt *st = ix_stmt(s->ix, "SELECT id FROM docs WHERE msg_date >= ? AND "
	    "msg_date < ? ORDER BY msg_date DESC, id DESC", err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, s->q.date_lo);
	sqlite3_bind_int64(st, 2, s->q.date_hi);
	size_t cap = (size_t)s->limit < s->nids ? (size_t)s->limit : s->nids;
	long long *page = xcalloc(cap + 1, sizeof(*page));
	long long skip = s->offset;
	size_t n = 0;
	int rc = SQLITE_ROW;
	while (n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(st, 0);
		if (bsearch(&id, s->ids, s->nids, sizeof(*s->ids), ix_id_cmp) == NULL)
			continue;
		if (skip > 0)
			skip--;
		else
			page[n++] = id;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		ix_err(s->ix, err_r, "search");
		ix_done(st);
		free(page);
		return -1;
	}
	ix_done(st);
	for (size_t k = 0; k < n; k++)
		if (ix_hit_fetch(s, page[k], res, err_r) < 0) {
			free(page);
			return -1;
		}
	free(page);
	return 0;
}

static int
ix_page(struct ix_search *s, size_t total, struct archive_results *res, char **err_r)
{
	struct buf sql = BUF_INIT;
	enum ix_plan plan;
	int i = 1;
	if (ix_page_sql(s, total, &sql, &plan, err_r) < 0) {
		buf_free(&sql);
		return -1;
	}
	if (plan == IX_PLAN_WALK) {
		buf_free(&sql);
		return ix_page_walk(s, res, err_r);
	}
	sqlite3_stmt *st = ix_stmt(s->ix, sql.data, err_r);
	buf_free(&sql);
	if (st == NULL)
		return -1;
	if (plan == IX_PLAN_PROBE) {
		sqlite3_bind_int64(st, i++, s->q.date_lo);
		sqlite3_bind_int64(st, i++, s->q.date_hi);
	}
	if (plan != IX_PLAN_WHERE)
		sqlite3_bind_text(st, i++, s->q.match, -1, SQLITE_STATIC);
	else
		ix_bind_where(s, st, &i);
	sqlite3_bind_int64(st, i++, s->limit);
	sqlite3_bind_int64(st, i++, s->offset);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (res->nhits == cap) {
			cap = cap ? cap * 2 : 64;
			res->hits = xrealloc(res->hits, cap * sizeof(*res->hits));
		}
		ix_hit_read(s, st, &res->hits[res->nhits++]);
	}
	if (rc != SQLITE_DONE)
		ix_err(s->ix, err_r, "search");
	ix_done(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
ix_limits(struct ix_search *s)
{
	const struct archive_search_opts *o = s->o;
	s->offset = (long long)(o->offset > (size_t)1 << 40 ? (size_t)1 << 40 : o->offset);
	if (o->ids_only)
		s->limit = o->limit == 0 ? -1 : (long long)(o->limit > (size_t)1 << 40 ?
		    (size_t)1 << 40 : o->limit);
	else
		s->limit = o->limit == 0 ? IX_DEFAULT_LIMIT :
		    (long long)(o->limit > IX_MAX_LIMIT ? IX_MAX_LIMIT : o->limit);
}

int
archive_index_search(struct archive_index *ix, const struct archive_search_opts *o,
    struct archive_results *res, char **err_r)
{
	struct ix_search s = { .ix = ix, .o = o };
	memset(res, 0, sizeof(*res));
	if (ix_date_range(ix, &s.date_min, &s.date_max, err_r) < 0)
		return -1;
	struct archive_qopts qo = { .meta = 1, .date_min = s.date_min, .date_max = s.date_max,
	    .mailboxes = o->mailboxes, .nmailboxes = o->nmailboxes };
	if (archive_query_compile_opts(o->query, &qo, &s.q, err_r) < 0)
		return -1;
	ix_limits(&s);
	int rc = ix_count(&s, &res->total, err_r);
	if (rc == 0 && res->total > (size_t)s.offset && s.limit != 0)
		rc = ix_page(&s, res->total, res, err_r);
	free(s.ids);
	archive_qsql_free(&s.q);
	if (rc < 0)
		archive_results_free(res);
	return rc;
}

void
archive_results_free(struct archive_results *res)
{
	for (size_t i = 0; i < res->nhits; i++) {
		struct archive_hit *h = &res->hits[i];
		free(h->mailbox);
		free(h->folder);
		free(h->from);
		free(h->subject);
		free(h->snippet);
	}
	free(res->hits);
	memset(res, 0, sizeof(*res));
}
