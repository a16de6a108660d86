/*
 * store_directory.c — per-tenant directory settings and the application of
 * one directory read (users, aliases, groups) to the identity tables.
 *
 * store_directory_apply() runs on the loop thread after the LDAP read on a
 * worker; it is one transaction, so a failure changes nothing.  It touches
 * only rows with source 'directory' of its own tenant: an address held by a
 * local user, by another tenant, or in a domain the tenant does not own is
 * refused and counted as an error.  Statements are prepared per call.
 */
#include "store/store.h"
#include "store/store_internal.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"

enum dq {
	DQ_USER_BY_ADDR,
	DQ_ALIAS_OWNER,
	DQ_DOMAIN_OWNER,
	DQ_USER_INSERT,
	DQ_USER_UPDATE,
	DQ_ALIASES_OF,
	DQ_ALIAS_DEL,
	DQ_ALIAS_ADD,
	DQ_DIR_USERS,
	DQ_DISABLE,
	DQ_GROUP_GET,
	DQ_GROUP_ADD,
	DQ_GROUPS_OF,
	DQ_MEMBERS_DIR,
	DQ_MEMBER_ADD,
	DQ_MEMBER_DEL,
	DQ_COUNT
};

static const char *const dq_sql[DQ_COUNT] = {
	[DQ_USER_BY_ADDR] = "SELECT id, tenant, source, display_name, status FROM users "
	    "WHERE address = ?1",
	[DQ_ALIAS_OWNER] = "SELECT user_id FROM aliases WHERE address = ?1",
	[DQ_DOMAIN_OWNER] = "SELECT tenant FROM domains WHERE domain = ?1",
	[DQ_USER_INSERT] = "INSERT INTO users(tenant, address, display_name, role, status, "
	    "source, created, updated) VALUES (?1, ?2, ?3, 'user', ?4, 'directory', ?5, ?5)",
	[DQ_USER_UPDATE] = "UPDATE users SET display_name = ?2, status = ?3, updated = ?4 "
	    "WHERE id = ?1",
	[DQ_ALIASES_OF] = "SELECT address FROM aliases WHERE user_id = ?1",
	[DQ_ALIAS_DEL] = "DELETE FROM aliases WHERE address = ?1 AND user_id = ?2",
	[DQ_ALIAS_ADD] = "INSERT INTO aliases(address, user_id) VALUES (?1, ?2)",
	[DQ_DIR_USERS] = "SELECT id, address FROM users WHERE tenant = ?1 "
	    "AND source = 'directory' AND status = 'active'",
	[DQ_DISABLE] = "UPDATE users SET status = 'disabled', updated = ?2 WHERE id = ?1",
	[DQ_GROUP_GET] = "SELECT id FROM groups WHERE tenant = ?1 AND name = ?2",
	[DQ_GROUP_ADD] = "INSERT INTO groups(tenant, name) VALUES (?1, ?2)",
	[DQ_GROUPS_OF] = "SELECT id, name FROM groups WHERE tenant = ?1",
	[DQ_MEMBERS_DIR] = "SELECT gm.user_id FROM group_members gm JOIN users u "
	    "ON u.id = gm.user_id WHERE gm.group_id = ?1 AND u.source = 'directory'",
	[DQ_MEMBER_ADD] = "INSERT OR IGNORE INTO group_members(group_id, user_id) VALUES (?1, ?2)",
	[DQ_MEMBER_DEL] = "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
};

/* One apply: the prepared statements, the tenant and the running totals. */
struct dapply {
	sqlite3 *db;
	sqlite3_stmt *q[DQ_COUNT];
	const char *tenant;
	long long now;
	long long *ids;               /* user id per input user, 0 when skipped */
	struct store_dir_stats *stats;
};

struct id_set {
	long long *v;
	size_t n;
};

static void
store_dir_err(char **err_r, const char *what, sqlite3 *db)
{
	log_error("store_error", "op=%s error=%s", what, log_str(sqlite3_errmsg(db)));
	if (err_r != NULL) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "database error (%s): %s", what, sqlite3_errmsg(db));
		*err_r = buf_steal(&e);
	}
}

static sqlite3_stmt *
dq(struct dapply *a, enum dq which)
{
	sqlite3_stmt *s = a->q[which];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static char *
dcol(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

static void
dapply_error(struct dapply *a, const char *what, const char *address)
{
	struct store_dir_stats *s = a->stats;
	s->errors++;
	log_warn("directory_conflict", "tenant=%s address=%s reason=%s", log_str(a->tenant),
	    log_str(address), what);
	if (s->nerror_text < STORE_DIR_ERRORS_KEPT) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "%s: %s", address, what);
		s->error_text[s->nerror_text++] = buf_steal(&e);
	}
}

/* Does the tenant own the address's domain? 1 / 0, -1 error. */
static int
dapply_domain_ok(struct dapply *a, const char *address)
{
	const char *at = strrchr(address, '@');
	if (at == NULL)
		return 0;
	sqlite3_stmt *s = dq(a, DQ_DOMAIN_OWNER);
	sqlite3_bind_text(s, 1, at + 1, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	int ok = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), a->tenant) == 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ok : -1;
}

/* The user holding address as an alias: 1 with *id_r, 0 none, -1 error. */
static int
dapply_alias_owner(struct dapply *a, const char *address, long long *id_r)
{
	sqlite3_stmt *s = dq(a, DQ_ALIAS_OWNER);
	sqlite3_bind_text(s, 1, address, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id_r = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

struct drow {
	long long id;
	char *tenant, *source, *display_name, *status;
};

static void
drow_clear(struct drow *r)
{
	free(r->tenant);
	free(r->source);
	free(r->display_name);
	free(r->status);
	memset(r, 0, sizeof(*r));
}

/* The user whose primary address this is: 1 with *r, 0 none, -1 error. */
static int
dapply_user_get(struct dapply *a, const char *address, struct drow *r)
{
	sqlite3_stmt *s = dq(a, DQ_USER_BY_ADDR);
	sqlite3_bind_text(s, 1, address, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r->id = sqlite3_column_int64(s, 0);
		r->tenant = dcol(s, 1);
		r->source = dcol(s, 2);
		r->display_name = dcol(s, 3);
		r->status = dcol(s, 4);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int
dstr_eq(const char *x, const char *y)
{
	if (x == NULL || y == NULL)
		return x == y;
	return strcmp(x, y) == 0;
}

static int
dapply_user_insert(struct dapply *a, const struct store_dir_user *u, long long *id_r)
{
	sqlite3_stmt *s = dq(a, DQ_USER_INSERT);
	sqlite3_bind_text(s, 1, a->tenant, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, u->address, -1, SQLITE_TRANSIENT);
	if (u->display_name != NULL)
		sqlite3_bind_text(s, 3, u->display_name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 4, u->disabled ? "disabled" : "active", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, a->now);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return -1;
	*id_r = sqlite3_last_insert_rowid(a->db);
	return 0;
}

/* 1 changed, 0 unchanged, -1 error.  *disabled_now_r: went active → disabled. */
static int
dapply_user_update(struct dapply *a, const struct store_dir_user *u, const struct drow *r,
    int *disabled_now_r)
{
	const char *status = u->disabled ? "disabled" : "active";
	*disabled_now_r = u->disabled && strcmp(r->status, "active") == 0;
	if (dstr_eq(r->display_name, u->display_name) && strcmp(r->status, status) == 0)
		return 0;
	sqlite3_stmt *s = dq(a, DQ_USER_UPDATE);
	sqlite3_bind_int64(s, 1, r->id);
	if (u->display_name != NULL)
		sqlite3_bind_text(s, 2, u->display_name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 3, status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, a->now);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 1 : -1;
}

/* May address be made an alias of user id?  1 yes, 0 conflict (counted), -1 error. */
static int
dapply_alias_allowed(struct dapply *a, const char *address, long long id)
{
	struct drow r = { 0 };
	int dom = dapply_domain_ok(a, address);
	if (dom <= 0) {
		if (dom == 0)
			dapply_error(a, "alias domain is not a domain of the tenant", address);
		return dom;
	}
	int found = dapply_user_get(a, address, &r);
	drow_clear(&r);
	if (found != 0) {
		if (found > 0)
			dapply_error(a, "alias is another user's primary address", address);
		return found > 0 ? 0 : -1;
	}
	long long owner = 0;
	found = dapply_alias_owner(a, address, &owner);
	if (found > 0 && owner != id) {
		dapply_error(a, "alias belongs to another user", address);
		return 0;
	}
	return found < 0 ? -1 : 1;
}

static int
dlist_has(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

/* Removes the user's aliases the directory no longer lists: 1 changed, 0 not, -1 error. */
static int
dapply_aliases_prune(struct dapply *a, const struct store_dir_user *u, long long id)
{
	struct buf gone = BUF_INIT;       /* NUL-separated addresses to delete */
	size_t ngone = 0;
	sqlite3_stmt *s = dq(a, DQ_ALIASES_OF);
	sqlite3_bind_int64(s, 1, id);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *cur = (const char *)sqlite3_column_text(s, 0);
		if (!dlist_has(u->aliases, u->naliases, cur)) {
			buf_append(&gone, cur, strlen(cur) + 1);
			ngone++;
		}
	}
	sqlite3_reset(s);
	int ret = rc == SQLITE_DONE ? ngone > 0 : -1;
	const char *p = gone.data;
	for (size_t i = 0; ret >= 0 && i < ngone; i++, p += strlen(p) + 1) {
		s = dq(a, DQ_ALIAS_DEL);
		sqlite3_bind_text(s, 1, p, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 2, id);
		if (sqlite3_step(s) != SQLITE_DONE)
			ret = -1;
		sqlite3_reset(s);
	}
	buf_free(&gone);
	return ret;
}

/* Adds the directory's aliases the user lacks: 1 changed, 0 not, -1 error. */
static int
dapply_aliases_add(struct dapply *a, const struct store_dir_user *u, long long id)
{
	int changed = 0;
	for (size_t i = 0; i < u->naliases; i++) {
		long long owner = 0;
		int found = dapply_alias_owner(a, u->aliases[i], &owner);
		if (found < 0)
			return -1;
		if (found > 0 && owner == id)
			continue;
		int ok = dapply_alias_allowed(a, u->aliases[i], id);
		if (ok < 0)
			return -1;
		if (ok == 0)
			continue;
		sqlite3_stmt *s = dq(a, DQ_ALIAS_ADD);
		sqlite3_bind_text(s, 1, u->aliases[i], -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 2, id);
		int rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return -1;
		changed = 1;
	}
	return changed;
}

/* Is the primary address usable for this tenant's directory user? 1 / 0 (counted) / -1. */
static int
dapply_primary_allowed(struct dapply *a, const struct store_dir_user *u, const struct drow *r,
    int found)
{
	if (found > 0 && (!dstr_eq(r->tenant, a->tenant) || strcmp(r->source, "directory") != 0)) {
		dapply_error(a, dstr_eq(r->tenant, a->tenant) ? "address belongs to a local user" :
		    "address belongs to another tenant", u->address);
		return 0;
	}
	if (found > 0)
		return 1;
	int dom = dapply_domain_ok(a, u->address);
	if (dom == 0)
		dapply_error(a, "domain is not a domain of the tenant", u->address);
	if (dom <= 0)
		return dom;
	long long owner;
	int alias = dapply_alias_owner(a, u->address, &owner);
	if (alias > 0)
		dapply_error(a, "address is another user's alias", u->address);
	return alias < 0 ? -1 : alias == 0;
}

static int
dapply_user(struct dapply *a, const struct store_dir_user *u, long long *id_r)
{
	struct drow r = { 0 };
	int found = dapply_user_get(a, u->address, &r);
	int ret = found < 0 ? -1 : dapply_primary_allowed(a, u, &r, found);
	int changed = 0, disabled_now = 0;
	*id_r = 0;
	if (ret <= 0)
		goto out;
	if (found == 0) {
		ret = dapply_user_insert(a, u, id_r);
	} else {
		*id_r = r.id;
		ret = changed = dapply_user_update(a, u, &r, &disabled_now);
	}
	int pruned = ret < 0 ? -1 : dapply_aliases_prune(a, u, *id_r);
	int added = pruned < 0 ? -1 : dapply_aliases_add(a, u, *id_r);
	if (added < 0) {
		ret = -1;
		goto out;
	}
	ret = 0;
	if (found == 0)
		a->stats->users_added++;
	else if (disabled_now)
		a->stats->users_disabled++;
	else if (changed || pruned || added)
		a->stats->users_updated++;
	else
		a->stats->users_unchanged++;
out:
	drow_clear(&r);
	return ret;
}

/* Disables the tenant's active directory users that the directory no longer lists. */
static int
dapply_vanished(struct dapply *a, size_t n)
{
	struct id_set gone = { NULL, 0 };
	sqlite3_stmt *s = dq(a, DQ_DIR_USERS);
	sqlite3_bind_text(s, 1, a->tenant, -1, SQLITE_TRANSIENT);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(s, 0);
		int seen = 0;
		for (size_t i = 0; i < n && !seen; i++)
			seen = a->ids[i] == id;
		if (!seen) {
			gone.v = xrealloc(gone.v, (gone.n + 1) * sizeof(*gone.v));
			gone.v[gone.n++] = id;
		}
	}
	sqlite3_reset(s);
	int ret = rc == SQLITE_DONE ? 0 : -1;
	for (size_t i = 0; ret == 0 && i < gone.n; i++) {
		s = dq(a, DQ_DISABLE);
		sqlite3_bind_int64(s, 1, gone.v[i]);
		sqlite3_bind_int64(s, 2, a->now);
		if (sqlite3_step(s) != SQLITE_DONE)
			ret = -1;
		sqlite3_reset(s);
		a->stats->users_disabled++;
	}
	free(gone.v);
	return ret;
}

/* The group's id, creating it: 1 created, 0 existed, -1 error. */
static int
dapply_group_id(struct dapply *a, const char *name, long long *id_r)
{
	sqlite3_stmt *s = dq(a, DQ_GROUP_GET);
	sqlite3_bind_text(s, 1, a->tenant, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id_r = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return -1;
	s = dq(a, DQ_GROUP_ADD);
	sqlite3_bind_text(s, 1, a->tenant, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return -1;
	*id_r = sqlite3_last_insert_rowid(a->db);
	return 1;
}

static int
dapply_member_change(struct dapply *a, enum dq which, long long gid, long long uid)
{
	sqlite3_stmt *s = dq(a, which);
	sqlite3_bind_int64(s, 1, gid);
	sqlite3_bind_int64(s, 2, uid);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
dapply_wants(struct dapply *a, const struct store_dir_user *users, size_t n, const char *group,
    long long uid)
{
	for (size_t i = 0; i < n; i++)
		if (a->ids[i] == uid)
			return group != NULL && dlist_has(users[i].groups, users[i].ngroups, group);
	return 0;
}

/*
 * Makes the group's directory members exactly those users that list it
 * (group NULL: none).  Local users' memberships stay.  1 changed, 0 not, -1.
 */
static int
dapply_members(struct dapply *a, long long gid, const char *group,
    const struct store_dir_user *users, size_t n)
{
	struct id_set cur = { NULL, 0 };
	sqlite3_stmt *s = dq(a, DQ_MEMBERS_DIR);
	sqlite3_bind_int64(s, 1, gid);
	int rc, changed = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		cur.v = xrealloc(cur.v, (cur.n + 1) * sizeof(*cur.v));
		cur.v[cur.n++] = sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	int ret = rc == SQLITE_DONE ? 0 : -1;
	for (size_t i = 0; ret == 0 && i < cur.n; i++) {
		if (dapply_wants(a, users, n, group, cur.v[i]))
			continue;
		ret = dapply_member_change(a, DQ_MEMBER_DEL, gid, cur.v[i]);
		changed = 1;
	}
	for (size_t i = 0; ret == 0 && group != NULL && i < n; i++) {
		int have = 0;
		if (a->ids[i] == 0 || !dlist_has(users[i].groups, users[i].ngroups, group))
			continue;
		for (size_t j = 0; j < cur.n && !have; j++)
			have = cur.v[j] == a->ids[i];
		if (!have) {
			ret = dapply_member_change(a, DQ_MEMBER_ADD, gid, a->ids[i]);
			changed = 1;
		}
	}
	free(cur.v);
	return ret < 0 ? -1 : changed;
}

/* Groups of the tenant the directory no longer has lose their directory members. */
static int
dapply_groups_vanished(struct dapply *a, const char *const *groups, size_t ngroups,
    const struct store_dir_user *users, size_t n)
{
	struct id_set gone = { NULL, 0 };
	sqlite3_stmt *s = dq(a, DQ_GROUPS_OF);
	sqlite3_bind_text(s, 1, a->tenant, -1, SQLITE_TRANSIENT);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (dlist_has(groups, ngroups, (const char *)sqlite3_column_text(s, 1)))
			continue;
		gone.v = xrealloc(gone.v, (gone.n + 1) * sizeof(*gone.v));
		gone.v[gone.n++] = sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	int ret = rc == SQLITE_DONE ? 0 : -1;
	for (size_t i = 0; ret == 0 && i < gone.n; i++) {
		int changed = dapply_members(a, gone.v[i], NULL, users, n);
		if (changed > 0)
			a->stats->groups_updated++;
		ret = changed < 0 ? -1 : 0;
	}
	free(gone.v);
	return ret;
}

static int
dapply_groups(struct dapply *a, const char *const *groups, size_t ngroups,
    const struct store_dir_user *users, size_t n)
{
	for (size_t g = 0; g < ngroups; g++) {
		long long gid;
		int created = dapply_group_id(a, groups[g], &gid);
		int changed = created < 0 ? -1 : dapply_members(a, gid, groups[g], users, n);
		if (changed < 0)
			return -1;
		if (created)
			a->stats->groups_added++;
		else if (changed)
			a->stats->groups_updated++;
	}
	return dapply_groups_vanished(a, groups, ngroups, users, n);
}

static int
dapply_run(struct dapply *a, const struct store_dir_user *users, size_t nusers,
    const char *const *groups, size_t ngroups)
{
	for (size_t i = 0; i < nusers; i++) {
		int dup = 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(users[j].address, users[i].address) == 0;
		if (dup) {
			dapply_error(a, "two directory entries have this address", users[i].address);
			continue;
		}
		if (dapply_user(a, &users[i], &a->ids[i]) < 0)
			return -1;
	}
	if (dapply_vanished(a, nusers) < 0)
		return -1;
	return dapply_groups(a, groups, ngroups, users, nusers);
}

static void
dapply_finalize(struct dapply *a)
{
	for (int i = 0; i < DQ_COUNT; i++)
		sqlite3_finalize(a->q[i]);
	free(a->ids);
}

int
store_directory_apply(struct store *st, const char *tenant,
    const struct store_dir_user *users, size_t nusers, const char *const *groups,
    size_t ngroups, struct store_dir_stats *stats_r, char **err_r)
{
	struct dapply a = { .db = store_sqlite(st), .tenant = tenant, .now = (long long)time(NULL),
		.stats = stats_r };
	memset(stats_r, 0, sizeof(*stats_r));
	a.ids = xcalloc(nusers ? nusers : 1, sizeof(*a.ids));
	for (int i = 0; i < DQ_COUNT; i++) {
		if (sqlite3_prepare_v2(a.db, dq_sql[i], -1, &a.q[i], NULL) != SQLITE_OK) {
			store_dir_err(err_r, "directory prepare", a.db);
			dapply_finalize(&a);
			return -1;
		}
	}
	if (sqlite3_exec(a.db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		store_dir_err(err_r, "directory begin", a.db);
		dapply_finalize(&a);
		return -1;
	}
	int ret = dapply_run(&a, users, nusers, groups, ngroups);
	if (ret < 0)
		store_dir_err(err_r, "directory apply", a.db);
	else if (sqlite3_exec(a.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		store_dir_err(err_r, "directory commit", a.db);
		ret = -1;
	}
	if (ret < 0) {
		if (sqlite3_get_autocommit(a.db) == 0)
			(void)sqlite3_exec(a.db, "ROLLBACK", NULL, NULL, NULL);
		store_dir_stats_clear(stats_r);
	}
	dapply_finalize(&a);
	return ret;
}

void
store_dir_stats_clear(struct store_dir_stats *s)
{
	for (size_t i = 0; i < s->nerror_text; i++)
		free(s->error_text[i]);
	memset(s, 0, sizeof(*s));
}

int
store_directory_user_active(struct store *st, const char *tenant, const char *address)
{
	static const char *const sql = "SELECT 1 FROM users u WHERE u.tenant = ?1 "
	    "AND u.source = 'directory' AND u.status = 'active' AND (u.address = ?2 OR "
	    "u.id IN (SELECT user_id FROM aliases WHERE address = ?2))";
	sqlite3 *db = store_sqlite(st);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_dir_err(NULL, "directory user", db);
		return -1;
	}
	char *addr = str_lower(xstrdup(address));
	sqlite3_bind_text(s, 1, tenant, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, addr, -1, SQLITE_TRANSIENT);
	free(addr);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* ---- settings ------------------------------------------------------------ */

#define DSET_COLS "tenant, url, base_dn, bind_dn, bind_password, user_filter, " \
	"group_filter, interval, starttls, last_sync, last_result"

static void
store_directory_from_row(sqlite3_stmt *s, struct store_directory *d)
{
	d->tenant = dcol(s, 0);
	d->url = dcol(s, 1);
	d->base_dn = dcol(s, 2);
	d->bind_dn = dcol(s, 3);
	d->bind_password = dcol(s, 4);
	d->user_filter = dcol(s, 5);
	d->group_filter = dcol(s, 6);
	d->interval = sqlite3_column_int64(s, 7);
	d->starttls = sqlite3_column_int(s, 8);
	d->last_sync = sqlite3_column_int64(s, 9);
	d->last_result = dcol(s, 10);
}

static void
dbind_opt(sqlite3_stmt *s, int col, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, col, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, col);
}

int
store_directory_set(struct store *st, const struct store_directory *d, char **err_r)
{
	static const char *const sql = "INSERT INTO directory_settings(tenant, url, base_dn, "
	    "bind_dn, bind_password, user_filter, group_filter, interval, starttls, updated) "
	    "SELECT ?1, ?2, ?3, ?4, coalesce(?5, (SELECT bind_password FROM directory_settings "
	    "WHERE tenant = ?1)), ?6, ?7, ?8, ?9, ?10 WHERE true "
	    "ON CONFLICT(tenant) DO UPDATE SET url = excluded.url, base_dn = excluded.base_dn, "
	    "bind_dn = excluded.bind_dn, bind_password = excluded.bind_password, "
	    "user_filter = excluded.user_filter, group_filter = excluded.group_filter, "
	    "interval = excluded.interval, starttls = excluded.starttls, "
	    "updated = excluded.updated";
	sqlite3 *db = store_sqlite(st);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_dir_err(err_r, "directory set", db);
		return -1;
	}
	sqlite3_bind_text(s, 1, d->tenant, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, d->url, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 3, d->base_dn, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 4, d->bind_dn, -1, SQLITE_TRANSIENT);
	dbind_opt(s, 5, d->bind_password);
	dbind_opt(s, 6, d->user_filter);
	dbind_opt(s, 7, d->group_filter);
	sqlite3_bind_int64(s, 8, d->interval);
	sqlite3_bind_int(s, 9, d->starttls != 0);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)time(NULL));
	int rc = sqlite3_step(s);
	int ret = 0;
	if (rc == SQLITE_CONSTRAINT) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "tenant '%s' does not exist or has no bind password yet "
		    "(give --bind-password-stdin)", d->tenant);
		*err_r = buf_steal(&e);
		ret = -1;
	} else if (rc != SQLITE_DONE) {
		store_dir_err(err_r, "directory set", db);
		ret = -1;
	}
	sqlite3_finalize(s);
	return ret;
}

int
store_directory_get(struct store *st, const char *tenant, struct store_directory *d_r)
{
	sqlite3 *db = store_sqlite(st);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "SELECT " DSET_COLS " FROM directory_settings "
	    "WHERE tenant = ?1", -1, &s, NULL) != SQLITE_OK) {
		store_dir_err(NULL, "directory get", db);
		return -1;
	}
	sqlite3_bind_text(s, 1, tenant, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		store_directory_from_row(s, d_r);
	else if (rc != SQLITE_DONE)
		store_dir_err(NULL, "directory get", db);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static void
store_directory_row(sqlite3_stmt *s, void *elem)
{
	store_directory_from_row(s, elem);
}

int
store_directory_list(struct store *st, struct store_directory **list_r, size_t *n_r)
{
	sqlite3 *db = store_sqlite(st);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "SELECT " DSET_COLS " FROM directory_settings "
	    "ORDER BY tenant", -1, &s, NULL) != SQLITE_OK) {
		store_dir_err(NULL, "directory list", db);
		return -1;
	}
	struct store_directory *list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), store_directory_row, &rows, &n);
	list = rows;
	if (rc != SQLITE_DONE) {
		store_dir_err(NULL, "directory list", db);
		store_directories_free(list, n);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	*list_r = list;
	*n_r = n;
	return 0;
}

void
store_directory_clear(struct store_directory *d)
{
	free(d->tenant);
	free(d->url);
	free(d->base_dn);
	free(d->bind_dn);
	free(d->bind_password);
	free(d->user_filter);
	free(d->group_filter);
	free(d->last_result);
	memset(d, 0, sizeof(*d));
}

void
store_directories_free(struct store_directory *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_directory_clear(&list[i]);
	free(list);
}

int
store_directory_set_result(struct store *st, const char *tenant, long long when,
    const char *result_json)
{
	sqlite3 *db = store_sqlite(st);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "UPDATE directory_settings SET last_sync = ?2, "
	    "last_result = ?3 WHERE tenant = ?1", -1, &s, NULL) != SQLITE_OK) {
		store_dir_err(NULL, "directory result", db);
		return -1;
	}
	sqlite3_bind_text(s, 1, tenant, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, when);
	sqlite3_bind_text(s, 3, result_json, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		store_dir_err(NULL, "directory result", db);
		return -1;
	}
	return 0;
}
