/*
 * archive_store — one tenant's authoritative archive: <data_dir>/archive/<tenant>/store.db.
 *
 * Messages are stored once per content (table blobs, sealed with the
 * tenant's data key, see archive_crypto.h) and listed once per mailbox
 * they belong to (table messages: an "archive entry", whose id is the
 * archive ID).  Ingest is idempotent: the same bytes for the same mailbox
 * add nothing, for another mailbox one row and no blob.  A blob exists iff
 * a row names it (archive_store_delete_rows keeps that true).
 *
 *   struct archive_store *s;
 *   archive_store_open(data_dir, "acme", 1, &s, &err);
 *   archive_store_begin(s, &err);
 *   archive_store_put(s, &put, &res, ids, &err);    // any number of times
 *   archive_store_commit(s, &err);                  // or archive_store_rollback(s)
 *   archive_store_get(s, hash, &raw, &len, &err);   // free(raw)
 *   archive_store_close(&s);
 *
 * Blobs are compressed with a zstd dictionary trained on the tenant's own
 * mail once it has 500 blobs (done inside the archive_store_put that
 * crosses the threshold; the dictionary is stored sealed in table dicts).
 * Such blobs (format 2, see archive_crypto.h) open only through the store:
 * archive_store_get(), or archive_store_open_blob() for bytes read with SQL
 * or archive_store_foreach_blob().
 *
 * A struct archive_store is used by one thread at a time.  Everything
 * returned through *_r pointers is malloc'd and freed by the caller
 * (archive_row_free() for rows); error texts (*err_r) likewise.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_STORE_H
#define MAILARK_ARCHIVE_ARCHIVE_STORE_H

#include <stddef.h>
#include <time.h>

#include "archive/archive_crypto.h"

struct archive_store;

/*
 * Opens the tenant's store.  create: makes <data_dir>/archive/<tenant>/
 * (0700), the data key and the schema when missing; !create: -1 with an
 * error saying the tenant has no archive when store.db is missing.
 */
int archive_store_open(const char *data_dir, const char *tenant, int create,
    struct archive_store **s_r, char **err_r);
/* Closes, wipes the key, sets *s to NULL; NULL is fine. */
void archive_store_close(struct archive_store **s);
/* The sqlite3 * (for the retention and verify modules); owned by the store. */
void *archive_store_db(struct archive_store *s);
/* The tenant's data key (ARCHIVE_KEY_LEN bytes); owned by the store. */
const unsigned char *archive_store_key(struct archive_store *s);

struct archive_put {                  /* one message to store */
	const void *raw;
	size_t len;
	const char *hash;             /* hex SHA-256 of raw (caller computed) */
	const char *const *mailboxes; /* lower-cased when stored */
	size_t nmailboxes;            /* 0 → one row with mailbox '' */
	const char *folder;           /* NULL → '' */
	const char *source;           /* inbound | outbound | internal | journal | import | imap */
	const char *env_from, *env_rcpts, *queue_id;   /* NULL → NULL */
	time_t archived_at, msg_date;
	long long expires_at;         /* -1 = NULL (forever) */
};
struct archive_put_result {
	int blob_new;                 /* the content was not stored before */
	size_t rows_new, rows_dup;
	long long first_id;           /* first new row's id, 0 if none */
};

/* BEGIN IMMEDIATE: 0, -1 with *err_r. */
int archive_store_begin(struct archive_store *s, char **err_r);
/*
 * Stores one message: seals and inserts the blob only when its hash is new,
 * then one row per mailbox.  ids_r (NULL, or max(nmailboxes, 1) entries)
 * receives each row's id, 0 for a row that existed.  Meant to run between
 * begin and commit; outside a transaction it runs in one of its own.
 * 0, -1 with *err_r (the caller then rolls back).
 */
int archive_store_put(struct archive_store *s, const struct archive_put *p,
    struct archive_put_result *r, long long *ids_r, char **err_r);
/* COMMIT (durable: synchronous=FULL).  On failure rolls back: -1 with *err_r. */
int archive_store_commit(struct archive_store *s, char **err_r);
/* ROLLBACK if a transaction is open. */
void archive_store_rollback(struct archive_store *s);

/* 1 stored, 0 not, -1 database error. */
int archive_store_has_blob(struct archive_store *s, const char *hash);
/* Decrypts and verifies a blob: 0 with *raw_r (caller frees), -1 with *err_r. */
int archive_store_get(struct archive_store *s, const char *hash, unsigned char **raw_r,
    size_t *len_r, char **err_r);

/*
 * Opens sealed bytes of blob `hash` (read by the caller, e.g. in an
 * archive_store_foreach_blob callback), loading the dictionary it needs:
 * 0 with *raw_r (caller frees), -1 with *err_r (as archive_crypto_open).
 */
int archive_store_open_blob(struct archive_store *s, const char *hash, const void *sealed,
    size_t len, unsigned char **raw_r, size_t *len_r, char **err_r);
/*
 * Trains a new compression dictionary from the newest messages now and
 * makes it the one for new blobs (also when one exists; puts do this by
 * themselves at the threshold).  In the caller's transaction or its own.
 * 0, -1 with *err_r (e.g. too little mail to learn from).
 */
int archive_store_train(struct archive_store *s, char **err_r);

struct archive_row {
	long long id;
	char hash[65];
	char *mailbox, *folder, *source;
	char *env_from, *env_rcpts, *queue_id;   /* NULL when NULL */
	time_t archived_at, msg_date;
	long long expires_at;                     /* -1 = NULL (forever) */
};
/* 1 found (*r filled: archive_row_free), 0 no such id, -1 with *err_r. */
int archive_store_row(struct archive_store *s, long long id, struct archive_row *r, char **err_r);
/* Frees the strings of a row (not r itself). */
void archive_row_free(struct archive_row *r);

/* Called per row; the row is freed after the call.  Nonzero stops the walk. */
typedef int archive_row_cb(void *arg, const struct archive_row *r);
/* Rows with id > after_id in ascending order: 0 (also when stopped), -1 with *err_r. */
int archive_store_foreach_row(struct archive_store *s, long long after_id, archive_row_cb *cb,
    void *arg, char **err_r);

/*
 * Called per blob with its sealed bytes (valid during the call; open them
 * with archive_store_open_blob on the same handle).  Nonzero stops.
 */
typedef int archive_blob_cb(void *arg, const char *hash, size_t size, const void *sealed,
    size_t sealed_len);
/* Every blob, in storage order: 0 (also when stopped), -1 with *err_r. */
int archive_store_foreach_blob(struct archive_store *s, archive_blob_cb *cb, void *arg,
    char **err_r);

/* Highest id of an existing row, 0 when empty, -1 on a database error. */
long long archive_store_max_id(struct archive_store *s);

/*
 * Deletes the rows (unknown ids are skipped), then the blobs no row names
 * any more, in one transaction (its own, or the caller's when one is
 * open).  0 with *blobs_deleted_r (may be NULL), -1 with *err_r (nothing
 * deleted when the transaction was its own).
 */
int archive_store_delete_rows(struct archive_store *s, const long long *ids, size_t n,
    size_t *blobs_deleted_r, char **err_r);

struct archive_store_stats {
	long long messages;           /* rows */
	long long blobs;
	long long raw_bytes;          /* sum of blob sizes */
	long long sealed_bytes;       /* sum of sealed lengths */
	long long max_id;             /* as archive_store_max_id */
};
int archive_store_stats(struct archive_store *s, struct archive_store_stats *st, char **err_r);

#endif
