/*
 * store_hygiene — the hygiene_policy table of mailark.db: each tenant's
 * policy settings as KEY = VALUE text (hygiene/policy.c validates and
 * parses them; here they are only stored).  Loop thread, like the store.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "store/store_internal.h"

#define SH_MAX_ROWS 1024                 /* far more than policy.c has keys */

static void
sh_err(struct store *st, const char *what, char **err_r)
{
	sqlite3 *db = store_sqlite(st);
	log_error("store_error", "op=%s error=%s", what, log_str(sqlite3_errmsg(db)));
	if (err_r != NULL)
		err_setf(err_r, "database error (%s): %s", what, sqlite3_errmsg(db));
}

static sqlite3_stmt *
sh_prepare(struct store *st, const char *sql, const char *what, char **err_r)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(store_sqlite(st), sql, -1, &s, NULL) != SQLITE_OK) {
		sh_err(st, what, err_r);
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

static int
sh_exec(struct store *st, sqlite3_stmt *s, const char *what, char **err_r)
{
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		sh_err(st, what, err_r);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static char *
sh_col(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return xstrdup(t != NULL ? (const char *)t : "");
}

int
store_hygiene_policy_list(struct store *st, const char *tenant, char ***keys_r,
    char ***values_r, size_t *n_r)
{
	*keys_r = NULL;
	*values_r = NULL;
	*n_r = 0;
	sqlite3_stmt *s = sh_prepare(st, "SELECT key, value FROM hygiene_policy WHERE tenant = ?1 "
	    "ORDER BY key", "hygiene policy list", NULL);
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, tenant, -1, SQLITE_TRANSIENT);
	char **keys = NULL, **values = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < SH_MAX_ROWS) {
		if (n == cap) {
			cap = cap != 0 ? cap * 2 : 16;
			keys = xrealloc(keys, cap * sizeof(*keys));
			values = xrealloc(values, cap * sizeof(*values));
		}
		keys[n] = sh_col(s, 0);
		values[n] = sh_col(s, 1);
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sh_err(st, "hygiene policy list", NULL);
		sqlite3_finalize(s);
		store_strings_free(keys, n);
		store_strings_free(values, n);
		return -1;
	}
	sqlite3_finalize(s);
	*keys_r = keys;
	*values_r = values;
	*n_r = n;
	return 0;
}

int
store_hygiene_policy_set(struct store *st, const char *tenant, const char *key,
    const char *value, char **err_r)
{
	sqlite3_stmt *s = sh_prepare(st, "INSERT INTO hygiene_policy(tenant, key, value) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT(tenant, key) DO UPDATE SET value = excluded.value",
	    "hygiene policy set", err_r);
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, tenant, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 3, value, -1, SQLITE_TRANSIENT);
	return sh_exec(st, s, "hygiene policy set", err_r);
}

int
store_hygiene_policy_unset(struct store *st, const char *tenant, const char *key,
    char **err_r)
{
	sqlite3_stmt *s = sh_prepare(st, "DELETE FROM hygiene_policy WHERE tenant = ?1 AND key = ?2",
	    "hygiene policy unset", err_r);
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, tenant, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_TRANSIENT);
	return sh_exec(st, s, "hygiene policy unset", err_r);
}
