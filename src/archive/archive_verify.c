/*
 * archive_verify.c — archive_verify() (every blob re-read and its hash
 * checked; store and index compared) and archive_reindex() (the index
 * rebuilt from the store alone).  Verify works on its own connections, so
 * ingest and search go on while it runs.
 */
#include "archive/archive.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "archive/archive_crypto.h"
#include "archive/archive_index.h"
#include "archive/archive_internal.h"
#include "archive/archive_store.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

/* Discrepancies listed in the report; the counts go on beyond it. */
#define VERIFY_REPORT_MAX 200

struct verify_ctx {
	struct archive_store *s;
	struct archive_verify_result *r;
	struct buf report;
	size_t lines;
	uint64_t done, total;
	archive_progress_cb *progress;
	void *parg;
};

static void
verify_note(struct verify_ctx *v, const char *what, const char *obj, const char *detail)
{
	if (v->lines++ >= VERIFY_REPORT_MAX)
		return;
	buf_appendf(&v->report, "%s %s%s%s\n", what, obj, detail ? ": " : "", detail ? detail : "");
}

static int
verify_blob(void *arg, const char *hash, size_t size, const void *sealed, size_t sealed_len)
{
	struct verify_ctx *v = arg;
	unsigned char *raw = NULL;
	size_t len = 0;
	char *err = NULL;
	v->r->blobs++;
	if (archive_store_open_blob(v->s, hash, sealed, sealed_len, &raw, &len, &err) < 0) {
		v->r->blobs_bad++;
		verify_note(v, "unreadable blob", hash, err);
	} else if (len != size) {
		v->r->blobs_bad++;
		verify_note(v, "blob", hash, "size differs from the recorded size");
	}
	free(err);
	free(raw);
	if (v->progress != NULL && (++v->done % 256) == 0)
		v->progress(v->parg, v->done, v->total);
	return 0;
}

/* Runs a query whose first column names a discrepancy; counts (and lists) its rows. */
static int
verify_query(struct verify_ctx *v, sqlite3 *db, const char *sql, const char *what,
    const char *detail, long long *count, char **err_r)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "verify: %s", sqlite3_errmsg(db));
		*err_r = buf_steal(&e);
		return -1;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		(*count)++;
		const unsigned char *obj = sqlite3_column_text(st, 0);
		verify_note(v, what, obj ? (const char *)obj : "?", detail);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "verify: %s", sqlite3_errmsg(db));
		*err_r = buf_steal(&e);
		return -1;
	}
	return 0;
}

static int
verify_store(struct verify_ctx *v, sqlite3 *db, char **err_r)
{
	struct archive_verify_result *r = v->r;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM messages", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		r->rows = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return verify_query(v, db, "SELECT 'entry ' || id || ' (' || hash || ')' FROM messages m "
	    "WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = m.hash)", "missing blob for",
	    NULL, &r->rows_missing_blob, err_r) < 0 ||
	    verify_query(v, db, "SELECT hash FROM blobs b WHERE NOT EXISTS "
	    "(SELECT 1 FROM messages m WHERE m.hash = b.hash)", "unreferenced blob", NULL,
	    &r->blobs_unreferenced, err_r) < 0 ? -1 : 0;
}

static int
verify_index(struct verify_ctx *v, const struct archive *a, const char *tenant, sqlite3 *db,
    char **err_r)
{
	struct archive_verify_result *r = v->r;
	char *path = archive_tenant_path(a, tenant, "index.db");
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (sqlite3_prepare_v2(db, "ATTACH DATABASE ? AS idx", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "verify: cannot open the index: %s", sqlite3_errmsg(db));
		*err_r = buf_steal(&e);
		sqlite3_finalize(st);
		free(path);
		return -1;
	}
	sqlite3_finalize(st);
	free(path);
	if (verify_query(v, db, "SELECT 'entry ' || m.id FROM messages m WHERE m.id <= "
	    "(SELECT CAST(value AS INTEGER) FROM idx.meta WHERE key = 'indexed_upto') AND NOT EXISTS "
	    "(SELECT 1 FROM idx.docs d WHERE d.id = m.id AND d.hash = m.hash)", "not in the index:",
	    NULL, &r->index_missing, err_r) == 0 &&
	    verify_query(v, db, "SELECT 'entry ' || d.id FROM idx.docs d WHERE NOT EXISTS "
	    "(SELECT 1 FROM messages m WHERE m.id = d.id AND m.hash = d.hash)",
	    "in the index but not in the store:", NULL, &r->index_extra, err_r) == 0)
		rc = 0;
	sqlite3_exec(db, "DETACH DATABASE idx", NULL, NULL, NULL);
	return rc;
}

int
archive_verify(struct archive *a, const char *tenant, struct archive_verify_result *r,
    archive_progress_cb *progress, void *parg, char **err_r)
{
	struct verify_ctx v = { .r = r, .report = BUF_INIT, .progress = progress, .parg = parg };
	struct archive_store_stats ss;
	memset(r, 0, sizeof(*r));
	if (!archive_tenant_has(a, tenant)) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "tenant '%s' has no archive", tenant);
		*err_r = buf_steal(&e);
		return -1;
	}
	if (archive_store_open(archive_data_dir(a), tenant, 0, &v.s, err_r) < 0)
		return -1;
	if (archive_store_stats(v.s, &ss, err_r) < 0)
		goto fail;
	v.total = (uint64_t)ss.blobs;
	if (archive_store_foreach_blob(v.s, verify_blob, &v, err_r) < 0)
		goto fail;
	sqlite3 *db = archive_store_db(v.s);
	if (verify_store(&v, db, err_r) < 0 || verify_index(&v, a, tenant, db, err_r) < 0)
		goto fail;
	if (v.lines > VERIFY_REPORT_MAX)
		buf_appendf(&v.report, "(%zu more not listed)\n", v.lines - VERIFY_REPORT_MAX);
	if (progress != NULL)
		progress(parg, v.total, v.total);
	r->report = buf_steal(&v.report);
	archive_store_close(&v.s);
	log_info("archive_verified", "tenant=%s blobs=%lld bad=%lld rows=%lld missing=%lld "
	    "unreferenced=%lld index_missing=%lld index_extra=%lld", tenant, r->blobs, r->blobs_bad,
	    r->rows, r->rows_missing_blob, r->blobs_unreferenced, r->index_missing, r->index_extra);
	return 0;
fail:
	buf_free(&v.report);
	archive_store_close(&v.s);
	return -1;
}

long long
archive_reindex(struct archive *a, const char *tenant, archive_progress_cb *progress, void *parg,
    char **err_r)
{
	struct archive_tenant *t;
	if (!archive_tenant_has(a, tenant)) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "tenant '%s' has no archive", tenant);
		*err_r = buf_steal(&e);
		return -1;
	}
	if (archive_tenant_acquire(a, tenant, 0, &t, err_r) < 0)
		return -1;
	int rc = archive_index_reset(archive_tenant_index(t), err_r);
	if (rc == 0)
		atomic_store(&t->indexed_upto, 0);
	archive_tenant_release(&t);
	if (rc < 0)
		return -1;
	log_info("archive_reindex_started", "tenant=%s", tenant);
	long long n = archive_catch_up_progress(a, tenant, progress, parg, err_r);
	if (n >= 0)
		log_info("archive_reindexed", "tenant=%s entries=%lld", tenant, n);
	return n;
}
