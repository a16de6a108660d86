/*
 * archive — every tenant's archive: ingest, search, read, verify, reindex,
 * and the jobs (import, export, purge, verify, reindex) that run in the
 * background with progress.
 *
 * One struct archive per process (the daemon keeps it in srv->archive; a
 * tool may open its own).  Each tenant's archive lives in
 * <data_dir>/archive/<tenant>/: store.db (authoritative: sealed blobs and
 * the archive entries), index.db (derived search index), datakey (the
 * tenant's data key wrapped by the master key).  See archive_store.h,
 * archive_index.h, archive_crypto.h.
 *
 *   struct archive *a;
 *   archive_open(data_dir, &a, &err);
 *   archive_ingest(a, "acme", &item, &res, &err);     // durable when it returns 0
 *   archive_search(a, "acme", &opts, &results, &err);
 *   archive_close(&a);
 *
 * Thread-safety: every function may be called from any thread.  A tenant
 * is opened once and kept; a mutex per tenant serialises its writer
 * connections (archive_tenant_acquire / _release), searches use a separate
 * reader connection per call.  Long work (purge, reindex, verify) takes the
 * tenant in short turns so ingest and search go on.
 *
 * Ingest is idempotent by content: the same bytes for the same mailbox
 * again add nothing.  It commits store.db (fsync) first, then indexes
 * (index.db, not fsynced: derived); messages committed but not yet indexed
 * are the "index lag", caught up at open and by archive_catch_up().
 *
 * Strings returned through *_r are the caller's to free; *err_r is a
 * human-readable reason.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_H
#define MAILARK_ARCHIVE_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct archive;
struct archive_tenant;
struct archive_store;
struct archive_index;
struct archive_search_opts;
struct archive_results;
struct archive_row;

int archive_open(const char *data_dir, struct archive **a_r, char **err_r);
void archive_close(struct archive **a);
const char *archive_data_dir(const struct archive *a);

/*
 * Exclusive use of one tenant's writer connections (store + index) until
 * release.  create: make the tenant's archive (dir, key, databases) when it
 * has none; otherwise a tenant without an archive is -1 ("tenant 'x' has no
 * archive").  Hold it briefly: ingest waits.
 */
int archive_tenant_acquire(struct archive *a, const char *tenant, int create,
    struct archive_tenant **t_r, char **err_r);
void archive_tenant_release(struct archive_tenant **t);
struct archive_store *archive_tenant_store(struct archive_tenant *t);
struct archive_index *archive_tenant_index(struct archive_tenant *t);
const char *archive_tenant_name(const struct archive_tenant *t);
/* 1 when the tenant has an archive on disk, else 0. */
int archive_tenant_has(const struct archive *a, const char *tenant);
/* Opens a new read-only index connection (search from any thread); caller closes it. */
int archive_tenant_reader(struct archive *a, const char *tenant, struct archive_index **ix_r,
    char **err_r);

/* One message to archive. */
struct archive_item {
	const void *raw;
	size_t len;
	const char *const *mailboxes;   /* addresses it belongs to; 0 → tenant-wide ('') */
	size_t nmailboxes;
	const char *folder;             /* NULL or "" none */
	const char *source;             /* inbound | outbound | internal | journal | import | imap */
	const char *env_from;           /* NULL unknown */
	const char *env_rcpts;          /* comma-separated, NULL unknown */
	const char *queue_id;           /* NULL for imports */
	int unwrap_journal;             /* an X-MS-Journal-Report is unwrapped (gateway mail) */
	const char *const *domains;     /* the tenant's domains: a journal's recipients in */
	size_t ndomains;                /* them become its mailboxes (0: every recipient) */
};

struct archive_ingest_result {
	char hash[65];                  /* of the bytes archived (the original, for a journal) */
	int blob_new;                   /* 0: the content was there already */
	size_t rows_new, rows_dup;      /* archive entries added / already present */
	int journal;                    /* it was a journal report, unwrapped */
};

/* Archives one message durably (fsynced) and indexes it.  0 / -1. */
int archive_ingest(struct archive *a, const char *tenant, const struct archive_item *it,
    struct archive_ingest_result *res, char **err_r);
/* Many in one transaction (imports): results[i] for items[i]; a malformed item
 * fails alone (errs_r[i] set, caller frees each), the others go on.  0 / -1. */
int archive_ingest_batch(struct archive *a, const char *tenant, const struct archive_item *items,
    size_t n, struct archive_ingest_result *results, char **errs_r, char **err_r);

/* Indexes whatever is committed but not indexed.  Returns the count, -1 on error. */
long long archive_catch_up(struct archive *a, const char *tenant, char **err_r);
/* Committed but not yet searchable, summed over every open tenant. */
long long archive_index_lag(struct archive *a);

int archive_search(struct archive *a, const char *tenant, const struct archive_search_opts *o,
    struct archive_results *res, char **err_r);
/* One entry and its exact bytes.  1 found, 0 no such id, -1 error. */
int archive_get(struct archive *a, const char *tenant, long long id, struct archive_row *row_r,
    unsigned char **raw_r, size_t *len_r, char **err_r);

struct archive_stats {
	long long messages, blobs, raw_bytes, sealed_bytes, index_bytes, store_bytes;
	long long max_id, indexed_upto;
};
int archive_stats(struct archive *a, const char *tenant, struct archive_stats *st, char **err_r);

/* Progress of a long operation: done of total units (total 0: unknown). */
typedef void archive_progress_cb(void *arg, uint64_t done, uint64_t total);

struct archive_verify_result {
	long long blobs, blobs_bad, rows, rows_missing_blob, blobs_unreferenced, index_missing,
	    index_extra;
	char *report;                   /* one line per discrepancy (capped), caller frees */
};
/* Re-reads every blob, checks hashes and that store and index agree. 0 ran (see counts), -1. */
int archive_verify(struct archive *a, const char *tenant, struct archive_verify_result *r,
    archive_progress_cb *progress, void *parg, char **err_r);
/* Rebuilds index.db from store.db alone.  Returns the number of entries indexed, -1. */
long long archive_reindex(struct archive *a, const char *tenant, archive_progress_cb *progress,
    void *parg, char **err_r);
/* Crypto-shredding: deletes the tenant's data key; its archive can never be read again. */
int archive_shred(struct archive *a, const char *tenant, char **err_r);

#endif
