/*
 * store_internal — for src/store/store_*.c only: the SQLite handle of an
 * open store, so each module's SQL can live in its own file (store_users.c,
 * store_audit.c, ...) while store.c keeps the schema and the connection.
 * The handle belongs to the store: never close it; use it on the store's
 * thread only; finalize every statement you prepare on it before
 * store_close() (or prepare per call).
 */
#ifndef MAILARK_STORE_STORE_INTERNAL_H
#define MAILARK_STORE_STORE_INTERNAL_H

#include <sqlite3.h>

struct store;

sqlite3 *store_sqlite(struct store *st);

/* Fills one element (zeroed beforehand) from the current row of s. */
typedef void store_row_fn(sqlite3_stmt *s, void *elem);

/*
 * Steps s to its end, collecting one element of elem_size bytes per row
 * with from_row.  Returns SQLITE_DONE, or the code of the failing step; in
 * both cases *list_r (caller frees, elements included) and *n_r hold what
 * was read.  Leaves resetting or finalizing s to the caller.
 */
int store_rows_collect(sqlite3_stmt *s, size_t elem_size, store_row_fn *from_row,
    void **list_r, size_t *n_r);

#endif
