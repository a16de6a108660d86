/*
 * store.c — mailark.db on SQLite.
 *
 * The database runs in WAL mode with synchronous=FULL and foreign keys on.
 * The schema version lives in PRAGMA user_version; store_migrate() brings
 * an older file up to date one step at a time.  Every statement is prepared
 * once at open time (enum store_stmt) and reset after each use.
 *
 * Relay networks are read on every SMTP connection, so they are cached in
 * memory as parsed CIDRs and reloaded after every change to them.
 */
#include "store/store.h"
#include "store/store_internal.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"

#define STORE_SCHEMA_VERSION 6
#define STORE_TENANT_MAX 63
#define STORE_DOMAIN_MAX 253

enum store_stmt {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_TENANT_ADD,
	S_TENANT_GET,
	S_TENANT_LIST,
	S_TENANT_DEL,
	S_TENANT_DOMAINS,
	S_TENANT_RELAYS_DEL,
	S_TENANT_SET_UNKNOWN,
	S_DOMAIN_ADD,
	S_DOMAIN_OWNER,
	S_DOMAIN_DEL,
	S_DOMAIN_LIST_ALL,
	S_DOMAIN_LIST_TENANT,
	S_ROUTE_SET,
	S_ROUTE_GET,
	S_RELAY_ADD,
	S_RELAY_DEL,
	S_RELAY_LIST_ALL,
	S_RELAY_LIST_TENANT,
	S_COUNT
};

static const char *const store_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_TENANT_ADD] = "INSERT INTO tenants(name, region, unknown_recipients, created) "
	    "VALUES (?1, ?2, 'accept', ?3)",
	[S_TENANT_GET] = "SELECT name, region, unknown_recipients, created FROM tenants "
	    "WHERE name = ?1",
	[S_TENANT_LIST] = "SELECT name, region, unknown_recipients, created FROM tenants "
	    "ORDER BY name",
	[S_TENANT_DEL] = "DELETE FROM tenants WHERE name = ?1",
	[S_TENANT_DOMAINS] = "SELECT count(*) FROM domains WHERE tenant = ?1",
	[S_TENANT_RELAYS_DEL] = "DELETE FROM relays WHERE tenant = ?1",
	[S_TENANT_SET_UNKNOWN] = "UPDATE tenants SET unknown_recipients = ?2 WHERE name = ?1",
	[S_DOMAIN_ADD] = "INSERT INTO domains(domain, tenant) VALUES (?1, ?2)",
	[S_DOMAIN_OWNER] = "SELECT tenant FROM domains WHERE domain = ?1",
	[S_DOMAIN_DEL] = "DELETE FROM domains WHERE domain = ?1 AND tenant = ?2",
	[S_DOMAIN_LIST_ALL] = "SELECT d.domain, d.tenant, r.url FROM domains d "
	    "LEFT JOIN routes r ON r.domain = d.domain ORDER BY d.tenant, d.domain",
	[S_DOMAIN_LIST_TENANT] = "SELECT d.domain, d.tenant, r.url FROM domains d "
	    "LEFT JOIN routes r ON r.domain = d.domain WHERE d.tenant = ?1 ORDER BY d.domain",
	[S_ROUTE_SET] = "INSERT INTO routes(domain, url) VALUES (?1, ?2) "
	    "ON CONFLICT(domain) DO UPDATE SET url = excluded.url",
	[S_ROUTE_GET] = "SELECT url FROM routes WHERE domain = ?1",
	[S_RELAY_ADD] = "INSERT INTO relays(tenant, cidr) VALUES (?1, ?2)",
	[S_RELAY_DEL] = "DELETE FROM relays WHERE tenant = ?1 AND cidr = ?2",
	[S_RELAY_LIST_ALL] = "SELECT tenant, cidr FROM relays ORDER BY tenant, cidr",
	[S_RELAY_LIST_TENANT] = "SELECT tenant, cidr FROM relays WHERE tenant = ?1 "
	    "ORDER BY cidr",
};

/* Migrations: store_migration[v] takes a database from version v to v+1. */
static const char *const store_migration[STORE_SCHEMA_VERSION] = {
	"CREATE TABLE tenants ("
	"  name TEXT PRIMARY KEY,"
	"  region TEXT NOT NULL,"
	"  unknown_recipients TEXT NOT NULL DEFAULT 'accept',"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE domains ("
	"  domain TEXT PRIMARY KEY,"
	"  tenant TEXT NOT NULL REFERENCES tenants(name));"
	"CREATE INDEX domains_tenant ON domains(tenant);"
	"CREATE TABLE routes ("
	"  domain TEXT PRIMARY KEY REFERENCES domains(domain) ON DELETE CASCADE,"
	"  url TEXT NOT NULL);"
	"CREATE TABLE relays ("
	"  tenant TEXT NOT NULL REFERENCES tenants(name),"
	"  cidr TEXT NOT NULL,"
	"  UNIQUE(tenant, cidr));",
	/* 2: identity — users, aliases, groups, API tokens, sign-in failures. */
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY,"
	"  tenant TEXT REFERENCES tenants(name),"      /* NULL for operators */
	"  address TEXT NOT NULL UNIQUE,"
	"  display_name TEXT,"
	"  role TEXT NOT NULL CHECK (role IN ('operator','admin','auditor','user')),"
	"  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','disabled')),"
	"  source TEXT NOT NULL DEFAULT 'local',"      /* 'local' or 'directory' */
	"  password_hash TEXT,"
	"  totp_secret BLOB,"
	"  created INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  CHECK ((role = 'operator') = (tenant IS NULL)));"
	"CREATE INDEX users_tenant ON users(tenant);"
	"CREATE TABLE aliases ("
	"  address TEXT PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE);"
	"CREATE TABLE groups ("
	"  id INTEGER PRIMARY KEY,"
	"  tenant TEXT NOT NULL REFERENCES tenants(name),"
	"  name TEXT NOT NULL,"
	"  UNIQUE(tenant, name));"
	"CREATE TABLE group_members ("
	"  group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  PRIMARY KEY (group_id, user_id));"
	"CREATE TABLE tokens ("
	"  id TEXT PRIMARY KEY,"                       /* public part of the token */
	"  user_id INTEGER NOT NULL REFERENCES users(id),"
	"  name TEXT NOT NULL,"
	"  hash BLOB NOT NULL,"                        /* SHA-256 of the secret part */
	"  created INTEGER NOT NULL,"
	"  expires INTEGER,"                           /* NULL: never */
	"  revoked INTEGER,"                           /* time of revocation or NULL */
	"  last_used INTEGER);"
	"CREATE INDEX tokens_user ON tokens(user_id);"
	"CREATE TABLE auth_failures ("
	"  key TEXT PRIMARY KEY,"                      /* 'acct:<address>' or 'ip:<address>' */
	"  count INTEGER NOT NULL,"
	"  window_start INTEGER NOT NULL,"
	"  locked_until INTEGER);",
	/* 3: the audit trail — append-only, hash-chained, signed checkpoints. */
	"CREATE TABLE audit ("
	"  seq INTEGER PRIMARY KEY,"
	"  time_us INTEGER NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  role TEXT NOT NULL,"
	"  tenant TEXT,"
	"  action TEXT NOT NULL,"
	"  object TEXT,"
	"  source TEXT,"
	"  outcome TEXT NOT NULL,"
	"  detail TEXT,"
	"  prev_hash BLOB NOT NULL,"
	"  hash BLOB NOT NULL);"
	"CREATE INDEX audit_tenant ON audit(tenant, seq);"
	"CREATE TABLE audit_checkpoints ("
	"  seq INTEGER PRIMARY KEY,"                   /* last audit seq covered */
	"  hash BLOB NOT NULL,"                        /* that entry's hash */
	"  time_us INTEGER NOT NULL,"
	"  key_id TEXT NOT NULL,"
	"  signature BLOB NOT NULL);",
	/* 4: directory sync — per-tenant LDAP / Active Directory settings. */
	"CREATE TABLE IF NOT EXISTS directory_settings ("
	"  tenant TEXT PRIMARY KEY REFERENCES tenants(name) ON DELETE CASCADE,"
	"  url TEXT NOT NULL,"
	"  base_dn TEXT NOT NULL,"
	"  bind_dn TEXT NOT NULL,"
	"  bind_password TEXT NOT NULL,"
	"  user_filter TEXT,"                          /* NULL: (objectClass=user) */
	"  group_filter TEXT,"                         /* NULL: (objectClass=group) */
	"  interval INTEGER NOT NULL,"                 /* seconds; 0: on demand only */
	"  starttls INTEGER NOT NULL DEFAULT 0,"
	"  last_sync INTEGER,"
	"  last_result TEXT,"                          /* JSON summary of the last sync */
	"  updated INTEGER NOT NULL);",
	/* 5: continuity — settings, outages and drills, their ledger, sign-ins,
	 * and the memory of what each primary already received (failback dedupe). */
	"CREATE TABLE continuity_settings ("
	"  tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (tenant, key));"
	"CREATE TABLE continuity_outages ("
	"  id INTEGER PRIMARY KEY,"
	"  tenant TEXT NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('outage','drill')),"
	"  users TEXT,"                                /* drills: comma list; NULL = all */
	"  started_at INTEGER NOT NULL,"
	"  started_by TEXT NOT NULL,"
	"  reason TEXT,"
	"  failover_ms INTEGER,"                       /* start -> ready */
	"  failback_at INTEGER,"
	"  ended_at INTEGER,"
	"  ended_by TEXT,"
	"  state TEXT NOT NULL);"                      /* active | failing_back | ended */
	"CREATE INDEX continuity_outages_tenant ON continuity_outages(tenant, kind, id);"
	"CREATE TABLE continuity_ledger ("
	"  outage_id INTEGER NOT NULL REFERENCES continuity_outages(id),"
	"  queue_id TEXT NOT NULL,"
	"  rcpt TEXT NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('inbound','sent')),"
	"  accepted_at INTEGER NOT NULL,"
	"  state TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (state IN ('pending','delivered','skipped','failed')),"
	"  reason TEXT,"
	"  done_at INTEGER,"
	"  message_id TEXT,"
	"  PRIMARY KEY (outage_id, queue_id, rcpt, kind));"
	"CREATE INDEX continuity_ledger_queue ON continuity_ledger(queue_id, rcpt);"
	"CREATE TABLE continuity_delivered ("
	"  tenant TEXT NOT NULL,"
	"  message_id TEXT NOT NULL,"
	"  rcpt TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  PRIMARY KEY (tenant, message_id, rcpt));"
	"CREATE INDEX continuity_delivered_at ON continuity_delivered(at);"
	"CREATE TABLE continuity_signins ("
	"  outage_id INTEGER NOT NULL REFERENCES continuity_outages(id),"
	"  address TEXT NOT NULL,"
	"  service TEXT NOT NULL,"
	"  first_at INTEGER NOT NULL,"
	"  count INTEGER NOT NULL,"
	"  PRIMARY KEY (outage_id, address, service));",
	/* 6: hygiene — each tenant's policy settings (hygiene/policy.c); a key
	 * without a row has its default. */
	"CREATE TABLE hygiene_policy ("
	"  tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (tenant, key));",
};

struct store_relay_cache {
	char *tenant;
	struct cidr net;
};

struct store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[S_COUNT];
	struct store_relay_cache *relays;
	size_t nrelays;
};

static void
store_set_err(char **err_r, const char *fmt, const char *a, const char *b)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a, b);
	if (err_r != NULL)
		*err_r = buf_steal(&e);
	else
		buf_free(&e);
}

static void
store_db_error(struct store *st, const char *what, char **err_r)
{
	log_error("store_error", "path=%s op=%s error=%s", log_str(st->path), what,
	    log_str(sqlite3_errmsg(st->db)));
	store_set_err(err_r, "database error (%s): %s", what, sqlite3_errmsg(st->db));
}

static sqlite3_stmt *
store_stmt(struct store *st, enum store_stmt which)
{
	sqlite3_stmt *s = st->stmt[which];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static int
store_exec_simple(struct store *st, enum store_stmt which)
{
	sqlite3_stmt *s = store_stmt(st, which);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
store_begin(struct store *st, char **err_r)
{
	if (store_exec_simple(st, S_BEGIN) < 0) {
		store_db_error(st, "begin", err_r);
		return -1;
	}
	return 0;
}

static int
store_commit(struct store *st, char **err_r)
{
	if (store_exec_simple(st, S_COMMIT) < 0) {
		store_db_error(st, "commit", err_r);
		(void)store_exec_simple(st, S_ROLLBACK);
		return -1;
	}
	return 0;
}

static void
store_rollback(struct store *st)
{
	if (sqlite3_get_autocommit(st->db) == 0)
		(void)store_exec_simple(st, S_ROLLBACK);
}

static char *
store_col_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

static char *
store_lower_dup(const char *s)
{
	return str_lower(xstrdup(s));
}

/* Domain names: LDH labels of 1..63, separated by dots, at most 253 in all. */
static int
store_domain_valid(const char *d)
{
	size_t n = strlen(d), label = 0;
	if (n == 0 || n > STORE_DOMAIN_MAX)
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
store_check_tenant(const char *name, char **err_r)
{
	if (str_tenant_name_valid(name))
		return 0;
	store_set_err(err_r, "invalid tenant name '%s' (1-63 of a-z, 0-9 and '-')%s", name, "");
	return -1;
}

static int
store_check_domain(const char *domain, char **err_r)
{
	if (store_domain_valid(domain))
		return 0;
	store_set_err(err_r, "invalid domain name '%s'%s", domain, "");
	return -1;
}

/* 1 exists, 0 not, -1 error. */
static int
store_tenant_exists(struct store *st, const char *name)
{
	sqlite3_stmt *s = store_stmt(st, S_TENANT_GET);
	sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- open, schema, close ----------------------------------------------- */

static int
store_pragmas(struct store *st, char **err_r)
{
	static const char *const pragmas =
	    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;";
	char *msg = NULL;
	if (sqlite3_busy_timeout(st->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(st->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		store_set_err(err_r, "%s: %s", st->path, msg ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
store_user_version(struct store *st, int *v_r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(s);
	*v_r = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int
store_migrate(struct store *st, char **err_r)
{
	int v;
	if (store_user_version(st, &v) < 0) {
		store_set_err(err_r, "%s: cannot read schema version: %s", st->path,
		    sqlite3_errmsg(st->db));
		return -1;
	}
	if (v > STORE_SCHEMA_VERSION) {
		store_set_err(err_r, "%s: schema version is newer than this mailark (%s)", st->path,
		    "upgrade mailark");
		return -1;
	}
	for (; v < STORE_SCHEMA_VERSION; v++) {
		struct buf sql = BUF_INIT;
		buf_appendf(&sql, "BEGIN IMMEDIATE; %s PRAGMA user_version=%d; COMMIT;",
		    store_migration[v], v + 1);
		char *msg = NULL;
		int rc = sqlite3_exec(st->db, buf_cstr(&sql), NULL, NULL, &msg);
		buf_free(&sql);
		if (rc != SQLITE_OK) {
			store_set_err(err_r, "%s: schema migration failed: %s", st->path,
			    msg ? msg : sqlite3_errmsg(st->db));
			sqlite3_free(msg);
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		log_info("store_migrated", "path=%s version=%d", log_str(st->path), v + 1);
	}
	return 0;
}

static int
store_prepare_all(struct store *st, char **err_r)
{
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, store_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &st->stmt[i], NULL) != SQLITE_OK) {
			store_set_err(err_r, "%s: cannot prepare statement: %s", st->path,
			    sqlite3_errmsg(st->db));
			return -1;
		}
	}
	return 0;
}

static void
store_relay_cache_clear(struct store *st)
{
	for (size_t i = 0; i < st->nrelays; i++)
		free(st->relays[i].tenant);
	xfree(&st->relays);
	st->nrelays = 0;
}

static int
store_relay_cache_load(struct store *st)
{
	struct store_relay *list;
	size_t n;
	if (store_relay_list(st, NULL, &list, &n) < 0)
		return -1;
	store_relay_cache_clear(st);
	st->relays = xcalloc(n ? n : 1, sizeof(*st->relays));
	for (size_t i = 0; i < n; i++) {
		if (cidr_parse(list[i].cidr, &st->relays[st->nrelays].net) < 0) {
			log_warn("store_bad_relay", "tenant=%s cidr=%s", log_str(list[i].tenant),
			    log_str(list[i].cidr));
			continue;
		}
		st->relays[st->nrelays++].tenant = xstrdup(list[i].tenant);
	}
	store_relays_free(list, n);
	return 0;
}

int
store_open(const char *path, struct store **st_r, char **err_r)
{
	struct store *st = xcalloc(1, sizeof(*st));
	st->path = xstrdup(path);
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
		store_set_err(err_r, "%s: cannot open: %s", path,
		    st->db ? sqlite3_errmsg(st->db) : "out of memory");
		store_close(&st);
		return -1;
	}
	if (store_pragmas(st, err_r) < 0 || store_migrate(st, err_r) < 0 ||
	    store_prepare_all(st, err_r) < 0) {
		store_close(&st);
		return -1;
	}
	if (store_relay_cache_load(st) < 0) {
		store_set_err(err_r, "%s: cannot load relay networks: %s", path,
		    sqlite3_errmsg(st->db));
		store_close(&st);
		return -1;
	}
	*st_r = st;
	return 0;
}

void
store_close(struct store **stp)
{
	struct store *st = *stp;
	if (st == NULL)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		log_warn("store_close", "path=%s error=%s", log_str(st->path),
		    log_str(sqlite3_errmsg(st->db)));
	store_relay_cache_clear(st);
	free(st->path);
	free(st);
	*stp = NULL;
}

int
store_rows_collect(sqlite3_stmt *s, size_t elem_size, store_row_fn *from_row, void **list_r,
    size_t *n_r)
{
	char *list = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			list = xrealloc(list, cap * elem_size);
		}
		memset(list + n * elem_size, 0, elem_size);
		from_row(s, list + n * elem_size);
		n++;
	}
	*list_r = list;
	*n_r = n;
	return rc;
}

sqlite3 *
store_sqlite(struct store *st)
{
	return st->db;
}

/* ---- tenants ------------------------------------------------------------- */

int
store_tenant_add(struct store *st, const char *name, const char *region, char **err_r)
{
	char *n = store_lower_dup(name), *r = store_lower_dup(region);
	int ret = -1;
	if (store_check_tenant(n, err_r) < 0)
		goto out;
	sqlite3_stmt *s = store_stmt(st, S_TENANT_ADD);
	sqlite3_bind_text(s, 1, n, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, r, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_CONSTRAINT)
		store_set_err(err_r, "tenant '%s' already exists%s", n, "");
	else if (rc != SQLITE_DONE)
		store_db_error(st, "tenant add", err_r);
	else
		ret = 0;
out:
	free(n);
	free(r);
	return ret;
}

static int
store_tenant_domain_count(struct store *st, const char *name, long *count_r)
{
	sqlite3_stmt *s = store_stmt(st, S_TENANT_DOMAINS);
	sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	*count_r = rc == SQLITE_ROW ? (long)sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int
store_tenant_remove_tx(struct store *st, const char *n, char **err_r)
{
	long ndomains;
	int exists = store_tenant_exists(st, n);
	if (exists <= 0) {
		if (exists == 0)
			store_set_err(err_r, "no tenant '%s'%s", n, "");
		else
			store_db_error(st, "tenant remove", err_r);
		return -1;
	}
	if (store_tenant_domain_count(st, n, &ndomains) < 0) {
		store_db_error(st, "tenant remove", err_r);
		return -1;
	}
	if (ndomains > 0) {
		store_set_err(err_r, "tenant '%s' has domains: remove its domains first%s", n, "");
		return -1;
	}
	sqlite3_stmt *s = store_stmt(st, S_TENANT_RELAYS_DEL);
	sqlite3_bind_text(s, 1, n, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_DONE) {
		s = store_stmt(st, S_TENANT_DEL);
		sqlite3_bind_text(s, 1, n, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
	}
	if (rc != SQLITE_DONE) {
		store_db_error(st, "tenant remove", err_r);
		return -1;
	}
	return 0;
}

/* Refused while the tenant has domains; its relay networks go with it. */
int
store_tenant_set_unknown_recipients(struct store *st, const char *name, const char *policy,
    char **err_r)
{
	if (strcmp(policy, "accept") != 0 && strcmp(policy, "reject") != 0) {
		store_set_err(err_r, "unknown-recipients must be accept or reject, not '%s'%s", policy,
		    "");
		return -1;
	}
	char *n = store_lower_dup(name);
	sqlite3_stmt *s = store_stmt(st, S_TENANT_SET_UNKNOWN);
	sqlite3_bind_text(s, 1, n, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, policy, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	int ret = -1;
	if (rc != SQLITE_DONE)
		store_db_error(st, "tenant set", err_r);
	else if (sqlite3_changes(st->db) == 0)
		store_set_err(err_r, "no tenant '%s'%s", n, "");
	else
		ret = 0;
	free(n);
	return ret;
}

int
store_tenant_remove(struct store *st, const char *name, char **err_r)
{
	char *n = store_lower_dup(name);
	int ret = -1;
	if (store_begin(st, err_r) < 0)
		goto out;
	if (store_tenant_remove_tx(st, n, err_r) < 0) {
		store_rollback(st);
		goto out;
	}
	if (store_commit(st, err_r) < 0)
		goto out;
	ret = 0;
	if (store_relay_cache_load(st) < 0)
		log_warn("store_relay_cache", "error=%s", log_str(sqlite3_errmsg(st->db)));
out:
	free(n);
	return ret;
}

static void
store_tenant_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_tenant *t = elem;
	t->name = store_col_dup(s, 0);
	t->region = store_col_dup(s, 1);
	t->unknown_recipients = store_col_dup(s, 2);
	t->created = (time_t)sqlite3_column_int64(s, 3);
}

int
store_tenant_get(struct store *st, const char *name, struct store_tenant *t_r)
{
	char *n = store_lower_dup(name);
	sqlite3_stmt *s = store_stmt(st, S_TENANT_GET);
	sqlite3_bind_text(s, 1, n, -1, SQLITE_TRANSIENT);
	free(n);
	int rc = sqlite3_step(s);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		store_tenant_from_row(s, t_r);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		store_db_error(st, "tenant get", NULL);
		ret = -1;
	}
	sqlite3_reset(s);
	return ret;
}

int
store_tenant_list(struct store *st, struct store_tenant **list_r, size_t *n_r)
{
	sqlite3_stmt *s = store_stmt(st, S_TENANT_LIST);
	struct store_tenant *list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), store_tenant_from_row, &rows, &n);
	list = rows;
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_db_error(st, "tenant list", NULL);
		store_tenants_free(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

void
store_tenants_free(struct store_tenant *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].name);
		free(list[i].region);
		free(list[i].unknown_recipients);
	}
	free(list);
}

/* ---- domains ------------------------------------------------------------- */

/* 1 with *tenant_r, 0 unknown, -1 error (lower-cased domain). */
static int
store_domain_owner(struct store *st, const char *d, char **tenant_r)
{
	sqlite3_stmt *s = store_stmt(st, S_DOMAIN_OWNER);
	sqlite3_bind_text(s, 1, d, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		*tenant_r = store_col_dup(s, 0);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		ret = -1;
	}
	sqlite3_reset(s);
	return ret;
}

static int
store_domain_add_checked(struct store *st, const char *t, const char *d, char **err_r)
{
	int exists = store_tenant_exists(st, t);
	if (exists == 0) {
		store_set_err(err_r, "no tenant '%s'%s", t, "");
		return -1;
	}
	char *owner = NULL;
	if (exists > 0 && store_domain_owner(st, d, &owner) == 1) {
		store_set_err(err_r, "domain '%s' already belongs to tenant '%s'", d, owner);
		free(owner);
		return -1;
	}
	sqlite3_stmt *s = store_stmt(st, S_DOMAIN_ADD);
	sqlite3_bind_text(s, 1, d, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, t, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_CONSTRAINT) {
		store_set_err(err_r, "domain '%s' already exists%s", d, "");
		return -1;
	}
	if (rc != SQLITE_DONE) {
		store_db_error(st, "domain add", err_r);
		return -1;
	}
	return 0;
}

int
store_domain_add(struct store *st, const char *tenant, const char *domain, char **err_r)
{
	char *t = store_lower_dup(tenant), *d = store_lower_dup(domain);
	int ret = -1;
	if (store_check_tenant(t, err_r) == 0 && store_check_domain(d, err_r) == 0)
		ret = store_domain_add_checked(st, t, d, err_r);
	free(t);
	free(d);
	return ret;
}

/* The domain's route goes with it (ON DELETE CASCADE). */
int
store_domain_remove(struct store *st, const char *tenant, const char *domain, char **err_r)
{
	char *t = store_lower_dup(tenant), *d = store_lower_dup(domain);
	sqlite3_stmt *s = store_stmt(st, S_DOMAIN_DEL);
	sqlite3_bind_text(s, 1, d, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, t, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	int ret = -1;
	if (rc != SQLITE_DONE)
		store_db_error(st, "domain remove", err_r);
	else if (sqlite3_changes(st->db) == 0)
		store_set_err(err_r, "tenant '%s' has no domain '%s'", t, d);
	else
		ret = 0;
	free(t);
	free(d);
	return ret;
}

static void
store_domain_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_domain *d = elem;
	d->domain = store_col_dup(s, 0);
	d->tenant = store_col_dup(s, 1);
	d->route = store_col_dup(s, 2);
}

int
store_domain_list(struct store *st, const char *tenant, struct store_domain **list_r,
    size_t *n_r)
{
	sqlite3_stmt *s = store_stmt(st, tenant ? S_DOMAIN_LIST_TENANT : S_DOMAIN_LIST_ALL);
	if (tenant != NULL) {
		char *t = store_lower_dup(tenant);
		sqlite3_bind_text(s, 1, t, -1, SQLITE_TRANSIENT);
		free(t);
	}
	struct store_domain *list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), store_domain_from_row, &rows, &n);
	list = rows;
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_db_error(st, "domain list", NULL);
		store_domains_free(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

void
store_domains_free(struct store_domain *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].domain);
		free(list[i].tenant);
		free(list[i].route);
	}
	free(list);
}

int
store_domain_tenant(struct store *st, const char *domain, char **tenant_r)
{
	char *d = store_lower_dup(domain);
	int ret = store_domain_owner(st, d, tenant_r);
	if (ret < 0)
		store_db_error(st, "domain lookup", NULL);
	free(d);
	return ret;
}

/* ---- routes -------------------------------------------------------------- */

int
store_route_set(struct store *st, const char *domain, const char *url, char **err_r)
{
	char *d = store_lower_dup(domain), *owner = NULL;
	int ret = -1;
	int found = store_domain_owner(st, d, &owner);
	free(owner);
	if (found == 0) {
		store_set_err(err_r, "domain '%s' belongs to no tenant (add it with 'mailark "
		    "domain add TENANT %s' first)", d, d);
		goto out;
	}
	sqlite3_stmt *s = store_stmt(st, S_ROUTE_SET);
	sqlite3_bind_text(s, 1, d, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, url, -1, SQLITE_TRANSIENT);
	int rc = found < 0 ? SQLITE_ERROR : sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		store_db_error(st, "route set", err_r);
	else
		ret = 0;
out:
	free(d);
	return ret;
}

int
store_route_get(struct store *st, const char *domain, char **url_r)
{
	char *d = store_lower_dup(domain);
	sqlite3_stmt *s = store_stmt(st, S_ROUTE_GET);
	sqlite3_bind_text(s, 1, d, -1, SQLITE_TRANSIENT);
	free(d);
	int rc = sqlite3_step(s);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		*url_r = store_col_dup(s, 0);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		store_db_error(st, "route get", NULL);
		ret = -1;
	}
	sqlite3_reset(s);
	return ret;
}

/* ---- relay networks ------------------------------------------------------ */

/* Canonical CIDR text of s into out, or -1 with *err_r. */
static int
store_canonical_cidr(const char *s, char *out, size_t size, char **err_r)
{
	struct cidr c;
	if (cidr_parse(s, &c) < 0) {
		store_set_err(err_r, "invalid network '%s' (expected e.g. 192.0.2.0/24)%s", s, "");
		return -1;
	}
	cidr_format(&c, out, size);
	return 0;
}

static int
store_relay_change(struct store *st, enum store_stmt which, const char *t, const char *cidr,
    char **err_r)
{
	sqlite3_stmt *s = store_stmt(st, which);
	sqlite3_bind_text(s, 1, t, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, cidr, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_CONSTRAINT) {
		store_set_err(err_r, "tenant '%s' already has relay network %s", t, cidr);
		return -1;
	}
	if (rc != SQLITE_DONE) {
		store_db_error(st, "relay change", err_r);
		return -1;
	}
	if (which == S_RELAY_DEL && sqlite3_changes(st->db) == 0) {
		store_set_err(err_r, "tenant '%s' has no relay network %s", t, cidr);
		return -1;
	}
	if (store_relay_cache_load(st) < 0)
		log_warn("store_relay_cache", "error=%s", log_str(sqlite3_errmsg(st->db)));
	return 0;
}

int
store_relay_add(struct store *st, const char *tenant, const char *cidr, char **err_r)
{
	char canon[64];
	char *t = store_lower_dup(tenant);
	int ret = -1;
	if (store_canonical_cidr(cidr, canon, sizeof(canon), err_r) < 0)
		goto out;
	int exists = store_tenant_exists(st, t);
	if (exists == 0)
		store_set_err(err_r, "no tenant '%s'%s", t, "");
	else if (exists < 0)
		store_db_error(st, "relay add", err_r);
	else
		ret = store_relay_change(st, S_RELAY_ADD, t, canon, err_r);
out:
	free(t);
	return ret;
}

int
store_relay_remove(struct store *st, const char *tenant, const char *cidr, char **err_r)
{
	char canon[64];
	char *t = store_lower_dup(tenant);
	int ret = -1;
	if (store_canonical_cidr(cidr, canon, sizeof(canon), err_r) == 0)
		ret = store_relay_change(st, S_RELAY_DEL, t, canon, err_r);
	free(t);
	return ret;
}

static void
store_relay_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_relay *r = elem;
	r->tenant = store_col_dup(s, 0);
	r->cidr = store_col_dup(s, 1);
}

int
store_relay_list(struct store *st, const char *tenant, struct store_relay **list_r,
    size_t *n_r)
{
	sqlite3_stmt *s = store_stmt(st, tenant ? S_RELAY_LIST_TENANT : S_RELAY_LIST_ALL);
	if (tenant != NULL) {
		char *t = store_lower_dup(tenant);
		sqlite3_bind_text(s, 1, t, -1, SQLITE_TRANSIENT);
		free(t);
	}
	struct store_relay *list = NULL;
	size_t n = 0;
	void *rows;
	int rc = store_rows_collect(s, sizeof(*list), store_relay_from_row, &rows, &n);
	list = rows;
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_db_error(st, "relay list", NULL);
		store_relays_free(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

void
store_relays_free(struct store_relay *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].tenant);
		free(list[i].cidr);
	}
	free(list);
}

/* Most specific (longest prefix) match wins when tenants' networks overlap. */
int
store_relay_tenant(struct store *st, const struct sockaddr *sa, char **tenant_r)
{
	const struct store_relay_cache *best = NULL;
	for (size_t i = 0; i < st->nrelays; i++) {
		const struct store_relay_cache *r = &st->relays[i];
		if (cidr_match(&r->net, sa) && (best == NULL || r->net.prefix > best->net.prefix))
			best = r;
	}
	if (best == NULL)
		return 0;
	*tenant_r = xstrdup(best->tenant);
	return 1;
}
