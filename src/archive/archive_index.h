/*
 * archive_index — one tenant's derived search index (index.db, SQLite FTS5).
 *
 *   archive_index_open(path, &ix, &err);
 *   archive_index_begin(ix, &err);
 *   archive_index_add(ix, &row, size, &doc, &err);      (per stored message)
 *   archive_index_commit(ix, store_max_id, &err);
 *   archive_index_search(ix, &opts, &res, &err);  ... archive_results_free(&res);
 *   archive_index_close(&ix);
 *
 * index.db can be deleted at any time and rebuilt from store.db.  Schema
 * (PRAGMA user_version 2; an index of another version is refused by
 * archive_index_open, and the core sets it aside and rebuilds it):
 *
 *   meta(key PRIMARY KEY, value)           'indexed_upto' = highest messages.id indexed
 *   docs(id INTEGER PRIMARY KEY            = store messages.id
 *        hash, mailbox, folder COLLATE NOCASE, msg_date, size, from_addr, subject,
 *        has_attachment, preview          first 120 characters of the body text
 *        env_from, env_rcpts)             the row's envelope, kept because deleting
 *                                          from the contentless FTS table needs it
 *   index docs(msg_date)
 *   fts USING fts5(subject, body, filenames, meta, content='', columnsize=0,
 *                  tokenize='unicode61 remove_diacritics 2')   rowid = docs.id
 *   fta USING fts5(sender, recipients, cc, content='', columnsize=0, same tokenizer)
 *
 * meta holds filter tokens (archive_query_meta_text(): mailbox, folder and
 * each parent folder, year, month and day, has-attachment) so that folder:,
 * mailbox:, before:/after:, has: and the mailbox restriction join the words
 * in one FTS5 MATCH (see archive_query.h).  columnsize=0: no BM25 (results
 * are ordered by date).
 *
 * Two FTS tables (refining the contract's one): free text searches every
 * column of fts without a column filter, which FTS5 answers 3-4 times
 * faster on common words; `rowid IN (SELECT rowid FROM fts WHERE fts MATCH
 * '{subject body} : "kw"')` works as the contract describes.  Columns:
 * sender = From header + envelope sender; recipients = To + Bcc + envelope
 * recipients (commas become spaces); cc = Cc; body = body text; filenames =
 * attachment names.  archive_fts_cols_make() computes them for both add
 * and delete.
 *
 * A handle is used by one thread at a time.  The writer and any number of
 * readers (other handles on the same file, e.g. one per search) can work
 * concurrently: the database is in WAL mode.  Errors are malloc'd texts in
 * *err_r, which the caller frees.
 */
#ifndef MAILARK_ARCHIVE_INDEX_H
#define MAILARK_ARCHIVE_INDEX_H

#include <stddef.h>
#include <time.h>

struct archive_row;
struct archive_doc;
struct archive_index;

/* Opens (creating if needed) index.db.  0 / -1 (unusable file: the caller may
 * set it aside and open a fresh one). */
int archive_index_open(const char *path, struct archive_index **ix_r, char **err_r);
void archive_index_close(struct archive_index **ix);

/* Write transaction (BEGIN IMMEDIATE) around add/delete calls. */
int archive_index_begin(struct archive_index *ix, char **err_r);
/* Indexes one store row with its parsed document; a row already indexed is
 * left as it is (0).  0 / -1. */
int archive_index_add(struct archive_index *ix, const struct archive_row *row, size_t size,
    const struct archive_doc *doc, char **err_r);
/* Removes a row from docs and FTS; doc must be the document it was added
 * with.  An id not in the index is not an error.  0 / -1. */
int archive_index_delete(struct archive_index *ix, long long id, const struct archive_doc *doc,
    char **err_r);
/* Records indexed_upto (unless < 0) and commits.  0 / -1 (rolled back). */
int archive_index_commit(struct archive_index *ix, long long indexed_upto, char **err_r);
void archive_index_rollback(struct archive_index *ix);
/* The recorded indexed_upto; 0 when none (or on error). */
long long archive_index_indexed_upto(struct archive_index *ix);
/* Empties docs, FTS and meta (in its own transaction unless one is open). */
int archive_index_reset(struct archive_index *ix, char **err_r);
/* Number of indexed documents, -1 on error. */
long long archive_index_count(struct archive_index *ix);

struct archive_search_opts {
	const char *query;                   /* the query language string; "*" = everything */
	const char *const *mailboxes;        /* nmailboxes > 0: restrict to these (role user) */
	size_t nmailboxes;
	size_t limit, offset;                /* limit 0 → 50; max 1000 */
	int ids_only;                        /* export/holds: no snippet, no limit cap (0 = all) */
};

struct archive_hit {
	long long id;
	char hash[65];
	char *mailbox, *folder, *from, *subject, *snippet;   /* from = From address; snippet
	                                                         NULL when ids_only */
	time_t date;
	size_t size;
	int has_attachment;
};

struct archive_results {
	size_t total;                        /* all matches, not only this page */
	struct archive_hit *hits;            /* newest first (msg_date, then id) */
	size_t nhits;
};

/* 0 with *res filled (free with archive_results_free), or -1 and a clear
 * error (bad query, database failure). */
int archive_index_search(struct archive_index *ix, const struct archive_search_opts *o,
    struct archive_results *res, char **err_r);
void archive_results_free(struct archive_results *res);

/* The FTS5 column texts of one message (all malloc'd, "" when empty). */
struct archive_fts_cols {
	char *subject, *sender, *recipients, *cc, *body, *filenames;
};
void archive_fts_cols_make(const struct archive_doc *doc, const char *env_from,
    const char *env_rcpts, struct archive_fts_cols *c);
void archive_fts_cols_free(struct archive_fts_cols *c);

#endif
