/*
 * store_users.c — users, aliases, groups, API tokens and sign-in failure
 * counters in mailark.db (tables of migration 2, see store.c).
 *
 * Statements are prepared per call on the store's connection and
 * finalized before returning, so nothing here outlives store_close().
 * Addresses and tenant names are stored lower-case.  An address is unique
 * across the install: no user's primary address equals another's, nor any
 * alias.  Every mutation that checks before it writes runs in one
 * IMMEDIATE transaction, so the check and the write cannot be split.
 */
#include "store/store.h"
#include "store/store_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"

#define SU_ADDRESS_MAX 254
#define SU_LOCAL_MAX 64
#define SU_NAME_MAX 256
#define SU_GROUP_MAX 128

static void
su_db_err(struct store *st, const char *what, char **err_r)
{
	const char *msg = sqlite3_errmsg(store_sqlite(st));
	log_error("store_error", "op=%s error=%s", what, log_str(msg));
	err_setf(err_r, "database error (%s): %s", what, msg);
}

/* A statement on the store's connection (caller finalizes), or NULL. */
static sqlite3_stmt *
su_prep(struct store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(store_sqlite(st), sql, -1, &s, NULL) != SQLITE_OK) {
		log_error("store_error", "op=prepare error=%s",
		    log_str(sqlite3_errmsg(store_sqlite(st))));
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

static void
su_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static char *
su_col(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

/* Runs a statement expected to produce no row; returns the sqlite code. */
static int
su_step_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc;
}

static int
su_exec(struct store *st, const char *sql)
{
	return sqlite3_exec(store_sqlite(st), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int
su_begin(struct store *st, char **err_r)
{
	if (su_exec(st, "BEGIN IMMEDIATE") < 0) {
		su_db_err(st, "begin", err_r);
		return -1;
	}
	return 0;
}

/* Commits when ok == 0, else rolls back; returns ok or -1 when commit fails. */
static int
su_end(struct store *st, int ok, char **err_r)
{
	if (ok < 0) {
		(void)su_exec(st, "ROLLBACK");
		return -1;
	}
	if (su_exec(st, "COMMIT") < 0) {
		su_db_err(st, "commit", err_r);
		(void)su_exec(st, "ROLLBACK");
		return -1;
	}
	return 0;
}

/* ---- validation ---------------------------------------------------------- */

static int
su_domain_valid(const char *d)
{
	size_t n = strlen(d), label = 0;
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!(isalnum(c) || c == '-') || (label == 0 && c == '-'))
			return 0;
		label++;
	}
	return 1;
}

static int
su_local_char(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr(".!#$%&'*+/=?^_`{|}~-", c) != NULL);
}

int
store_address_valid(const char *a)
{
	const char *at = strrchr(a, '@');
	size_t n = strlen(a);
	if (at == NULL || at == a || n > SU_ADDRESS_MAX || (size_t)(at - a) > SU_LOCAL_MAX)
		return 0;
	for (const char *p = a; p < at; p++)
		if (!su_local_char((unsigned char)*p))
			return 0;
	if (a[0] == '.' || at[-1] == '.' || strstr(a, "..") != NULL)
		return 0;
	return su_domain_valid(at + 1);
}

static int
su_check_address(const char *a, char **err_r)
{
	if (store_address_valid(a))
		return 0;
	err_setf(err_r, "invalid address '%s' (expected local@domain)", a);
	return -1;
}

/* Printable text of 1..max bytes, no control characters. */
static int
su_text_valid(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static const char *
su_domain_of(const char *address)
{
	return strrchr(address, '@') + 1;
}

/* 1 taken (as primary or alias), 0 free, -1 error. */
static int
su_address_taken(struct store *st, const char *a)
{
	sqlite3_stmt *s = su_prep(st, "SELECT 1 FROM users WHERE address = ?1 "
	    "UNION ALL SELECT 1 FROM aliases WHERE address = ?1");
	if (s == NULL)
		return -1;
	su_text(s, 1, a);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* 1 exists, 0 not, -1 error. */
static int
su_tenant_exists(struct store *st, const char *t)
{
	sqlite3_stmt *s = su_prep(st, "SELECT 1 FROM tenants WHERE name = ?1");
	if (s == NULL)
		return -1;
	su_text(s, 1, t);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The address's domain must be one of the tenant's domains. */
static int
su_check_domain_of(struct store *st, const char *tenant, const char *a, char **err_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT 1 FROM domains WHERE domain = ?1 AND tenant = ?2");
	if (s == NULL) {
		su_db_err(st, "domain check", err_r);
		return -1;
	}
	su_text(s, 1, su_domain_of(a));
	su_text(s, 2, tenant);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		err_setf(err_r, "domain '%s' of '%s' is not a domain of tenant '%s'",
		    su_domain_of(a), a, tenant);
	else
		su_db_err(st, "domain check", err_r);
	return -1;
}

static int
su_check_free(struct store *st, const char *a, char **err_r)
{
	int taken = su_address_taken(st, a);
	if (taken == 0)
		return 0;
	if (taken > 0)
		err_setf(err_r, "address '%s' is already in use", a);
	else
		su_db_err(st, "address check", err_r);
	return -1;
}

/* ---- users --------------------------------------------------------------- */

static int
su_user_add_tx(struct store *st, const char *t, const char *a, const char *display,
    const char *role, const char *hash, long long *id_r, char **err_r)
{
	if (t != NULL) {
		int exists = su_tenant_exists(st, t);
		if (exists <= 0) {
			if (exists == 0)
				err_setf(err_r, "no tenant '%s'", t);
			else
				su_db_err(st, "user add", err_r);
			return -1;
		}
		if (su_check_domain_of(st, t, a, err_r) < 0)
			return -1;
	}
	if (su_check_free(st, a, err_r) < 0)
		return -1;
	sqlite3_stmt *s = su_prep(st, "INSERT INTO users(tenant, address, display_name, role, "
	    "password_hash, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)");
	if (s == NULL) {
		su_db_err(st, "user add", err_r);
		return -1;
	}
	su_text(s, 1, t);
	su_text(s, 2, a);
	su_text(s, 3, display);
	su_text(s, 4, role);
	su_text(s, 5, hash);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)time(NULL));
	if (su_step_done(s) != SQLITE_DONE) {
		su_db_err(st, "user add", err_r);
		return -1;
	}
	if (id_r != NULL)
		*id_r = (long long)sqlite3_last_insert_rowid(store_sqlite(st));
	return 0;
}

static int
su_check_user_fields(const char *t, const char *a, const char *display, const char *role,
    char **err_r)
{
	static const char *const roles[] = { "operator", "admin", "auditor", "user" };
	int known = 0;
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		known |= strcmp(role, roles[i]) == 0;
	if (!known) {
		err_setf(err_r, "unknown role '%s' (operator, admin, auditor or user)", role);
		return -1;
	}
	if ((strcmp(role, "operator") == 0) != (t == NULL)) {
		err_setf(err_r, "%s", t == NULL ? "a user without a tenant must be an operator" :
		    "operators belong to no tenant");
		return -1;
	}
	if (display != NULL && !su_text_valid(display, SU_NAME_MAX)) {
		err_setf(err_r, "invalid display name (1-%d printable characters)", SU_NAME_MAX);
		return -1;
	}
	return su_check_address(a, err_r);
}

int
store_user_add(struct store *st, const char *tenant, const char *address,
    const char *display_name, const char *role, const char *password_hash, long long *id_r,
    char **err_r)
{
	char *t = tenant ? str_lower(xstrdup(tenant)) : NULL;
	char *a = str_lower(xstrdup(address));
	int ret = -1;
	if (su_check_user_fields(t, a, display_name, role, err_r) == 0 && su_begin(st, err_r) == 0)
		ret = su_end(st, su_user_add_tx(st, t, a, display_name, role, password_hash, id_r,
		    err_r), err_r);
	free(t);
	free(a);
	return ret;
}

#define SU_USER_COLS "u.id, u.tenant, u.address, u.display_name, u.role, u.status, " \
	"u.source, u.password_hash IS NOT NULL, u.totp_secret IS NOT NULL, u.created, u.updated"

static void
su_user_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_user *u = elem;
	memset(u, 0, sizeof(*u));
	u->id = (long long)sqlite3_column_int64(s, 0);
	u->tenant = su_col(s, 1);
	u->address = su_col(s, 2);
	u->display_name = su_col(s, 3);
	u->role = su_col(s, 4);
	u->status = su_col(s, 5);
	u->source = su_col(s, 6);
	u->has_password = sqlite3_column_int(s, 7);
	u->has_totp = sqlite3_column_int(s, 8);
	u->created = (time_t)sqlite3_column_int64(s, 9);
	u->updated = (time_t)sqlite3_column_int64(s, 10);
}

/* One user row from a prepared query: 1/0/-1. */
static int
su_user_one(struct store *st, sqlite3_stmt *s, struct store_user *u_r)
{
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		su_user_from_row(s, u_r);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		su_db_err(st, "user get", NULL);
		ret = -1;
	}
	sqlite3_finalize(s);
	return ret;
}

int
store_user_get(struct store *st, const char *address, struct store_user *u_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT " SU_USER_COLS " FROM users u WHERE u.address = ?1 "
	    "UNION ALL SELECT " SU_USER_COLS " FROM aliases a JOIN users u ON u.id = a.user_id "
	    "WHERE a.address = ?1");
	if (s == NULL)
		return -1;
	char *a = str_lower(xstrdup(address));
	su_text(s, 1, a);
	free(a);
	return su_user_one(st, s, u_r);
}

int
store_user_get_id(struct store *st, long long id, struct store_user *u_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT " SU_USER_COLS " FROM users u WHERE u.id = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	return su_user_one(st, s, u_r);
}

int
store_user_list(struct store *st, const char *tenant, struct store_user **list_r, size_t *n_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT " SU_USER_COLS " FROM users u "
	    "WHERE u.tenant IS ?1 ORDER BY u.address");
	if (s == NULL)
		return -1;
	char *t = tenant ? str_lower(xstrdup(tenant)) : NULL;
	su_text(s, 1, t);
	free(t);
	struct store_user *list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), su_user_from_row, &rows, &n);
	list = rows;
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		su_db_err(st, "user list", NULL);
		store_users_free(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

void
store_user_clear(struct store_user *u)
{
	free(u->tenant);
	free(u->address);
	free(u->display_name);
	free(u->role);
	free(u->status);
	free(u->source);
	memset(u, 0, sizeof(*u));
}

void
store_users_free(struct store_user *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_user_clear(&list[i]);
	free(list);
}

/* UPDATE users SET <col> = ?2, updated = now WHERE id = ?1. */
static int
su_user_update(struct store *st, const char *sql, long long id, sqlite3_stmt **s_r,
    char **err_r)
{
	sqlite3_stmt *s = su_prep(st, sql);
	if (s == NULL) {
		su_db_err(st, "user update", err_r);
		return -1;
	}
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	*s_r = s;
	return 0;
}

static int
su_user_update_run(struct store *st, sqlite3_stmt *s, char **err_r)
{
	if (su_step_done(s) != SQLITE_DONE) {
		su_db_err(st, "user update", err_r);
		return -1;
	}
	if (sqlite3_changes(store_sqlite(st)) == 0) {
		err_setf(err_r, "%s", "no such user");
		return -1;
	}
	return 0;
}

int
store_user_set_status(struct store *st, long long id, const char *status, char **err_r)
{
	sqlite3_stmt *s;
	if (strcmp(status, "active") != 0 && strcmp(status, "disabled") != 0) {
		err_setf(err_r, "invalid status '%s'", status);
		return -1;
	}
	if (su_user_update(st, "UPDATE users SET status = ?2, updated = ?3 WHERE id = ?1", id,
	    &s, err_r) < 0)
		return -1;
	su_text(s, 2, status);
	return su_user_update_run(st, s, err_r);
}

int
store_user_set_password(struct store *st, long long id, const char *hash, char **err_r)
{
	sqlite3_stmt *s;
	if (su_user_update(st, "UPDATE users SET password_hash = ?2, updated = ?3 WHERE id = ?1",
	    id, &s, err_r) < 0)
		return -1;
	su_text(s, 2, hash);
	return su_user_update_run(st, s, err_r);
}

int
store_user_set_totp(struct store *st, long long id, const unsigned char *secret, size_t len,
    char **err_r)
{
	sqlite3_stmt *s;
	if (su_user_update(st, "UPDATE users SET totp_secret = ?2, updated = ?3 WHERE id = ?1",
	    id, &s, err_r) < 0)
		return -1;
	if (secret != NULL)
		sqlite3_bind_blob(s, 2, secret, (int)len, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, 2);
	return su_user_update_run(st, s, err_r);
}

static void
su_string_from_row(sqlite3_stmt *s, void *elem)
{
	*(char **)elem = su_col(s, 0);
}

int
store_user_secrets(struct store *st, long long id, struct store_user_secrets *s_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT password_hash, totp_secret FROM users WHERE id = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s), ret = 0;
	memset(s_r, 0, sizeof(*s_r));
	if (rc == SQLITE_ROW) {
		s_r->password_hash = su_col(s, 0);
		int len = sqlite3_column_bytes(s, 1);
		const void *b = sqlite3_column_blob(s, 1);
		if (b != NULL && len > 0) {
			s_r->totp_secret = xmemdup(b, (size_t)len);
			s_r->totp_len = (size_t)len;
		}
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		su_db_err(st, "user secrets", NULL);
		ret = -1;
	}
	sqlite3_finalize(s);
	return ret;
}

void
store_user_secrets_clear(struct store_user_secrets *s)
{
	if (s->password_hash != NULL) {
		explicit_bzero(s->password_hash, strlen(s->password_hash));
		free(s->password_hash);
	}
	if (s->totp_secret != NULL) {
		explicit_bzero(s->totp_secret, s->totp_len);
		free(s->totp_secret);
	}
	memset(s, 0, sizeof(*s));
}

/* The strings of column 0 of every row of a query bound to one integer. */
static int
su_strings(struct store *st, const char *sql, long long id, char ***list_r, size_t *n_r)
{
	sqlite3_stmt *s = su_prep(st, sql);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	char **list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), su_string_from_row, &rows, &n);
	list = rows;
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		su_db_err(st, "list", NULL);
		store_strings_free(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

int
store_user_aliases(struct store *st, long long user_id, char ***list_r, size_t *n_r)
{
	return su_strings(st, "SELECT address FROM aliases WHERE user_id = ?1 ORDER BY address",
	    user_id, list_r, n_r);
}

int
store_user_groups(struct store *st, long long user_id, char ***list_r, size_t *n_r)
{
	return su_strings(st, "SELECT g.name FROM group_members m JOIN groups g "
	    "ON g.id = m.group_id WHERE m.user_id = ?1 ORDER BY g.name", user_id, list_r, n_r);
}

void
store_strings_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

int
store_user_tenant(struct store *st, const char *address, char **tenant_r)
{
	struct store_user u;
	int found = store_user_get(st, address, &u);
	if (found == 1) {
		*tenant_r = u.tenant;
		u.tenant = NULL;
		store_user_clear(&u);
	}
	return found;
}

/* ---- aliases ------------------------------------------------------------- */

static int
su_alias_add_tx(struct store *st, long long user_id, const char *a, char **err_r)
{
	struct store_user u;
	int found = store_user_get_id(st, user_id, &u);
	if (found <= 0) {
		err_setf(err_r, "%s", found == 0 ? "no such user" : "database error (alias add)");
		return -1;
	}
	int rc = u.tenant != NULL ? su_check_domain_of(st, u.tenant, a, err_r) : 0;
	store_user_clear(&u);
	if (rc < 0 || su_check_free(st, a, err_r) < 0)
		return -1;
	sqlite3_stmt *s = su_prep(st, "INSERT INTO aliases(address, user_id) VALUES (?1, ?2)");
	if (s == NULL) {
		su_db_err(st, "alias add", err_r);
		return -1;
	}
	su_text(s, 1, a);
	sqlite3_bind_int64(s, 2, user_id);
	if (su_step_done(s) != SQLITE_DONE) {
		su_db_err(st, "alias add", err_r);
		return -1;
	}
	return 0;
}

int
store_alias_add(struct store *st, long long user_id, const char *alias, char **err_r)
{
	char *a = str_lower(xstrdup(alias));
	int ret = -1;
	if (su_check_address(a, err_r) == 0 && su_begin(st, err_r) == 0)
		ret = su_end(st, su_alias_add_tx(st, user_id, a, err_r), err_r);
	free(a);
	return ret;
}

int
store_alias_remove(struct store *st, long long user_id, const char *alias, char **err_r)
{
	char *a = str_lower(xstrdup(alias));
	int ret = -1;
	sqlite3_stmt *s = su_prep(st, "DELETE FROM aliases WHERE address = ?1 AND user_id = ?2");
	if (s == NULL) {
		su_db_err(st, "alias remove", err_r);
		goto out;
	}
	su_text(s, 1, a);
	sqlite3_bind_int64(s, 2, user_id);
	if (su_step_done(s) != SQLITE_DONE)
		su_db_err(st, "alias remove", err_r);
	else if (sqlite3_changes(store_sqlite(st)) == 0)
		err_setf(err_r, "the user has no alias '%s'", a);
	else
		ret = 0;
out:
	free(a);
	return ret;
}

/* ---- groups -------------------------------------------------------------- */

static int
su_check_group(const char *name, char **err_r)
{
	if (su_text_valid(name, SU_GROUP_MAX))
		return 0;
	err_setf(err_r, "invalid group name (1-%d printable characters)", SU_GROUP_MAX);
	return -1;
}

int
store_group_add(struct store *st, const char *tenant, const char *name, char **err_r)
{
	char *t = str_lower(xstrdup(tenant));
	int ret = -1, exists;
	if (su_check_group(name, err_r) < 0)
		goto out;
	if ((exists = su_tenant_exists(st, t)) <= 0) {
		if (exists == 0)
			err_setf(err_r, "no tenant '%s'", t);
		else
			su_db_err(st, "group add", err_r);
		goto out;
	}
	sqlite3_stmt *s = su_prep(st, "INSERT INTO groups(tenant, name) VALUES (?1, ?2)");
	if (s == NULL) {
		su_db_err(st, "group add", err_r);
		goto out;
	}
	su_text(s, 1, t);
	su_text(s, 2, name);
	int rc = su_step_done(s);
	if (rc == SQLITE_CONSTRAINT)
		err_setf(err_r, "tenant '%s' already has a group '%s'", t, name);
	else if (rc != SQLITE_DONE)
		su_db_err(st, "group add", err_r);
	else
		ret = 0;
out:
	free(t);
	return ret;
}

int
store_group_remove(struct store *st, const char *tenant, const char *name, char **err_r)
{
	char *t = str_lower(xstrdup(tenant));
	int ret = -1;
	sqlite3_stmt *s = su_prep(st, "DELETE FROM groups WHERE tenant = ?1 AND name = ?2");
	if (s == NULL) {
		su_db_err(st, "group remove", err_r);
		goto out;
	}
	su_text(s, 1, t);
	su_text(s, 2, name);
	if (su_step_done(s) != SQLITE_DONE)
		su_db_err(st, "group remove", err_r);
	else if (sqlite3_changes(store_sqlite(st)) == 0)
		err_setf(err_r, "tenant '%s' has no group '%s'", t, name);
	else
		ret = 0;
out:
	free(t);
	return ret;
}

static void
su_group_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_group *g = elem;
	g->id = (long long)sqlite3_column_int64(s, 0);
	g->tenant = su_col(s, 1);
	g->name = su_col(s, 2);
}

int
store_group_list(struct store *st, const char *tenant, struct store_group **list_r,
    size_t *n_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT id, tenant, name FROM groups WHERE tenant = ?1 "
	    "ORDER BY name");
	if (s == NULL)
		return -1;
	char *t = str_lower(xstrdup(tenant));
	su_text(s, 1, t);
	free(t);
	struct store_group *list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), su_group_from_row, &rows, &n);
	list = rows;
	sqlite3_finalize(s);
	for (size_t i = 0; rc == SQLITE_DONE && i < n; i++)
		if (su_strings(st, "SELECT u.address FROM group_members m JOIN users u ON "
		    "u.id = m.user_id WHERE m.group_id = ?1 ORDER BY u.address", list[i].id,
		    &list[i].members, &list[i].nmembers) < 0)
			rc = SQLITE_ERROR;
	if (rc != SQLITE_DONE) {
		su_db_err(st, "group list", NULL);
		store_groups_free(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

void
store_groups_free(struct store_group *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].tenant);
		free(list[i].name);
		store_strings_free(list[i].members, list[i].nmembers);
	}
	free(list);
}

/* The group's id: 1/0/-1. */
static int
su_group_id(struct store *st, const char *t, const char *name, long long *id_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT id FROM groups WHERE tenant = ?1 AND name = ?2");
	if (s == NULL)
		return -1;
	su_text(s, 1, t);
	su_text(s, 2, name);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id_r = (long long)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int
su_member_change(struct store *st, const char *t, const char *group, long long user_id,
    int add, char **err_r)
{
	long long gid = 0;
	int found = su_group_id(st, t, group, &gid);
	if (found <= 0) {
		if (found == 0)
			err_setf(err_r, "tenant '%s' has no group '%s'", t, group);
		else
			su_db_err(st, "group member", err_r);
		return -1;
	}
	sqlite3_stmt *s = su_prep(st, add ?
	    "INSERT INTO group_members(group_id, user_id) SELECT ?1, id FROM users "
	    "WHERE id = ?2 AND tenant = ?3" :
	    "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2 AND ?3 IS NOT NULL");
	if (s == NULL) {
		su_db_err(st, "group member", err_r);
		return -1;
	}
	sqlite3_bind_int64(s, 1, gid);
	sqlite3_bind_int64(s, 2, user_id);
	su_text(s, 3, t);
	int rc = su_step_done(s);
	if (rc == SQLITE_CONSTRAINT) {
		err_setf(err_r, "already a member of group '%s'", group);
		return -1;
	}
	if (rc != SQLITE_DONE) {
		su_db_err(st, "group member", err_r);
		return -1;
	}
	if (sqlite3_changes(store_sqlite(st)) == 0) {
		if (add)
			err_setf(err_r, "no such user in tenant '%s'", t);
		else
			err_setf(err_r, "not a member of group '%s'", group);
		return -1;
	}
	return 0;
}

int
store_group_member_add(struct store *st, const char *tenant, const char *group,
    long long user_id, char **err_r)
{
	char *t = str_lower(xstrdup(tenant));
	int ret = su_member_change(st, t, group, user_id, 1, err_r);
	free(t);
	return ret;
}

int
store_group_member_remove(struct store *st, const char *tenant, const char *group,
    long long user_id, char **err_r)
{
	char *t = str_lower(xstrdup(tenant));
	int ret = su_member_change(st, t, group, user_id, 0, err_r);
	free(t);
	return ret;
}

/* ---- tokens -------------------------------------------------------------- */

int
store_token_add(struct store *st, const char *id, long long user_id, const char *name,
    const unsigned char hash[32], time_t expires, char **err_r)
{
	sqlite3_stmt *s = su_prep(st, "INSERT INTO tokens(id, user_id, name, hash, created, "
	    "expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
	if (s == NULL) {
		su_db_err(st, "token add", err_r);
		return -1;
	}
	su_text(s, 1, id);
	sqlite3_bind_int64(s, 2, user_id);
	su_text(s, 3, name);
	sqlite3_bind_blob(s, 4, hash, 32, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)time(NULL));
	if (expires != 0)
		sqlite3_bind_int64(s, 6, (sqlite3_int64)expires);
	else
		sqlite3_bind_null(s, 6);
	int rc = su_step_done(s);
	if (rc == SQLITE_CONSTRAINT) {
		err_setf(err_r, "token '%s' already exists (or no such user)", id);
		return -1;
	}
	if (rc != SQLITE_DONE) {
		su_db_err(st, "token add", err_r);
		return -1;
	}
	return 0;
}

#define SU_TOKEN_COLS "t.id, t.user_id, u.address, u.tenant, t.name, t.hash, t.created, " \
	"t.expires, t.revoked, t.last_used"

static void
su_token_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_token *t = elem;
	memset(t, 0, sizeof(*t));
	t->id = su_col(s, 0);
	t->user_id = (long long)sqlite3_column_int64(s, 1);
	t->user_address = su_col(s, 2);
	t->tenant = su_col(s, 3);
	t->name = su_col(s, 4);
	if (sqlite3_column_bytes(s, 5) == 32)
		memcpy(t->hash, sqlite3_column_blob(s, 5), 32);
	t->created = (time_t)sqlite3_column_int64(s, 6);
	t->expires = (time_t)sqlite3_column_int64(s, 7);
	t->revoked = (time_t)sqlite3_column_int64(s, 8);
	t->last_used = (time_t)sqlite3_column_int64(s, 9);
}

int
store_token_get(struct store *st, const char *id, struct store_token *t_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT " SU_TOKEN_COLS " FROM tokens t JOIN users u "
	    "ON u.id = t.user_id WHERE t.id = ?1");
	if (s == NULL)
		return -1;
	su_text(s, 1, id);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		su_token_from_row(s, t_r);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		su_db_err(st, "token get", NULL);
		ret = -1;
	}
	sqlite3_finalize(s);
	return ret;
}

int
store_token_list(struct store *st, long long user_id, struct store_token **list_r, size_t *n_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT " SU_TOKEN_COLS " FROM tokens t JOIN users u "
	    "ON u.id = t.user_id WHERE ?1 = 0 OR t.user_id = ?1 ORDER BY t.created, t.id");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, user_id);
	struct store_token *list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), su_token_from_row, &rows, &n);
	list = rows;
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		su_db_err(st, "token list", NULL);
		store_tokens_free(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

void
store_token_clear(struct store_token *t)
{
	free(t->id);
	free(t->user_address);
	free(t->tenant);
	free(t->name);
	explicit_bzero(t, sizeof(*t));
}

void
store_tokens_free(struct store_token *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_token_clear(&list[i]);
	free(list);
}

int
store_token_revoke(struct store *st, const char *id, time_t now, char **err_r)
{
	sqlite3_stmt *s = su_prep(st, "UPDATE tokens SET revoked = ?2 WHERE id = ?1 "
	    "AND revoked IS NULL");
	if (s == NULL) {
		su_db_err(st, "token revoke", err_r);
		return -1;
	}
	su_text(s, 1, id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)now);
	if (su_step_done(s) != SQLITE_DONE) {
		su_db_err(st, "token revoke", err_r);
		return -1;
	}
	if (sqlite3_changes(store_sqlite(st)) == 0) {
		err_setf(err_r, "no active token '%s'", id);
		return -1;
	}
	return 0;
}

int
store_token_touch(struct store *st, const char *id, time_t now)
{
	sqlite3_stmt *s = su_prep(st, "UPDATE tokens SET last_used = ?2 WHERE id = ?1");
	if (s == NULL)
		return -1;
	su_text(s, 1, id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)now);
	if (su_step_done(s) != SQLITE_DONE) {
		su_db_err(st, "token touch", NULL);
		return -1;
	}
	return 0;
}

int
store_token_tenant(struct store *st, const char *id, char **tenant_r)
{
	struct store_token t;
	int found = store_token_get(st, id, &t);
	if (found == 1) {
		*tenant_r = t.tenant;
		t.tenant = NULL;
		store_token_clear(&t);
	}
	return found;
}

/* ---- sign-in failures ---------------------------------------------------- */

int
store_auth_failure_get(struct store *st, const char *key, struct store_auth_failure *f_r)
{
	sqlite3_stmt *s = su_prep(st, "SELECT count, window_start, locked_until FROM "
	    "auth_failures WHERE key = ?1");
	if (s == NULL)
		return -1;
	su_text(s, 1, key);
	int rc = sqlite3_step(s);
	memset(f_r, 0, sizeof(*f_r));
	if (rc == SQLITE_ROW) {
		f_r->count = (long long)sqlite3_column_int64(s, 0);
		f_r->window_start = (time_t)sqlite3_column_int64(s, 1);
		f_r->locked_until = (time_t)sqlite3_column_int64(s, 2);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		su_db_err(st, "auth failure get", NULL);
		return -1;
	}
	return rc == SQLITE_ROW;
}

int
store_auth_failure_put(struct store *st, const char *key, const struct store_auth_failure *f)
{
	sqlite3_stmt *s = su_prep(st, "INSERT INTO auth_failures(key, count, window_start, "
	    "locked_until) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET "
	    "count = excluded.count, window_start = excluded.window_start, "
	    "locked_until = excluded.locked_until");
	if (s == NULL)
		return -1;
	su_text(s, 1, key);
	sqlite3_bind_int64(s, 2, f->count);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)f->window_start);
	if (f->locked_until != 0)
		sqlite3_bind_int64(s, 4, (sqlite3_int64)f->locked_until);
	else
		sqlite3_bind_null(s, 4);
	if (su_step_done(s) != SQLITE_DONE) {
		su_db_err(st, "auth failure put", NULL);
		return -1;
	}
	return 0;
}

int
store_auth_failure_clear(struct store *st, const char *key)
{
	sqlite3_stmt *s = su_prep(st, "DELETE FROM auth_failures WHERE key = ?1");
	if (s == NULL)
		return -1;
	su_text(s, 1, key);
	if (su_step_done(s) != SQLITE_DONE) {
		su_db_err(st, "auth failure clear", NULL);
		return -1;
	}
	return 0;
}
