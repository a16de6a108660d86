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

#endif
