/*
 * store_continuity.c — the continuity tables of mailark.db (migration 5):
 * per-tenant settings, outages and drills, the failback ledger, sign-ins
 * and the memory of what each tenant's primary already received.
 *
 * Used by continuity/ on the loop thread.  Statements are prepared per
 * call (these run a few times per message at most).  Every function logs
 * its database errors ("store_error") before returning -1.
 */
#include "store/store.h"
#include "store/store_internal.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

/* Entries of continuity_delivered older than this are forgotten. */
#define CONT_DELIVERED_KEEP (30LL * 86400)

static void
cont_err(sqlite3 *db, const char *what, char **err_r)
{
	log_error("store_error", "op=%s error=%s", what, log_str(sqlite3_errmsg(db)));
	if (err_r != NULL) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "database error (%s): %s", what, sqlite3_errmsg(db));
		*err_r = buf_steal(&e);
	}
}

static sqlite3_stmt *
cont_prepare(struct store *st, const char *sql, const char *what, char **err_r)
{
	sqlite3 *db = store_sqlite(st);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		cont_err(db, what, err_r);
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

static char *
cont_col(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

static void
cont_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static void
cont_bind_time(sqlite3_stmt *s, int i, long long v)
{
	if (v > 0)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

/* Steps a statement that returns no rows, finalizes it: 0 / -1. */
static int
cont_exec(struct store *st, sqlite3_stmt *s, const char *what, char **err_r)
{
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		cont_err(store_sqlite(st), what, err_r);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- settings ----------------------------------------------------------- */

int
store_cont_setting_get(struct store *st, const char *tenant, const char *key, char **value_r)
{
	sqlite3_stmt *s = cont_prepare(st, "SELECT value FROM continuity_settings "
	    "WHERE tenant = ?1 AND key = ?2", "continuity setting get", NULL);
	if (s == NULL)
		return -1;
	cont_bind_text(s, 1, tenant);
	cont_bind_text(s, 2, key);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*value_r = cont_col(s, 0);
	else if (rc != SQLITE_DONE)
		cont_err(store_sqlite(st), "continuity setting get", NULL);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
store_cont_setting_set(struct store *st, const char *tenant, const char *key, const char *value,
    char **err_r)
{
	sqlite3_stmt *s = cont_prepare(st, "INSERT INTO continuity_settings(tenant, key, value) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT(tenant, key) DO UPDATE SET value = excluded.value",
	    "continuity setting set", err_r);
	if (s == NULL)
		return -1;
	cont_bind_text(s, 1, tenant);
	cont_bind_text(s, 2, key);
	cont_bind_text(s, 3, value);
	return cont_exec(st, s, "continuity setting set", err_r);
}

/* ---- outages and drills ------------------------------------------------- */

#define OUTAGE_COLS "id, tenant, kind, users, started_at, started_by, reason, " \
	"failover_ms, failback_at, ended_at, ended_by, state"

static void
outage_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_cont_outage *o = elem;
	o->id = sqlite3_column_int64(s, 0);
	o->tenant = cont_col(s, 1);
	o->kind = cont_col(s, 2);
	o->users = cont_col(s, 3);
	o->started_at = sqlite3_column_int64(s, 4);
	o->started_by = cont_col(s, 5);
	o->reason = cont_col(s, 6);
	o->failover_ms = sqlite3_column_type(s, 7) == SQLITE_NULL ? -1 :
	    sqlite3_column_int64(s, 7);
	o->failback_at = sqlite3_column_int64(s, 8);
	o->ended_at = sqlite3_column_int64(s, 9);
	o->ended_by = cont_col(s, 10);
	o->state = cont_col(s, 11);
}

int
store_cont_outage_add(struct store *st, const struct store_cont_outage *o, long long *id_r,
    char **err_r)
{
	sqlite3_stmt *s = cont_prepare(st, "INSERT INTO continuity_outages(tenant, kind, users, "
	    "started_at, started_by, reason, failover_ms, state) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
	    "continuity outage add", err_r);
	if (s == NULL)
		return -1;
	cont_bind_text(s, 1, o->tenant);
	cont_bind_text(s, 2, o->kind);
	cont_bind_text(s, 3, o->users);
	sqlite3_bind_int64(s, 4, o->started_at);
	cont_bind_text(s, 5, o->started_by);
	cont_bind_text(s, 6, o->reason);
	if (o->failover_ms >= 0)
		sqlite3_bind_int64(s, 7, o->failover_ms);
	else
		sqlite3_bind_null(s, 7);
	cont_bind_text(s, 8, o->state);
	if (cont_exec(st, s, "continuity outage add", err_r) < 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(store_sqlite(st));
	return 0;
}

int
store_cont_outage_update(struct store *st, const struct store_cont_outage *o, char **err_r)
{
	sqlite3_stmt *s = cont_prepare(st, "UPDATE continuity_outages SET failover_ms = ?2, "
	    "failback_at = ?3, ended_at = ?4, ended_by = ?5, state = ?6 WHERE id = ?1",
	    "continuity outage update", err_r);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, o->id);
	if (o->failover_ms >= 0)
		sqlite3_bind_int64(s, 2, o->failover_ms);
	else
		sqlite3_bind_null(s, 2);
	cont_bind_time(s, 3, o->failback_at);
	cont_bind_time(s, 4, o->ended_at);
	cont_bind_text(s, 5, o->ended_by);
	cont_bind_text(s, 6, o->state);
	return cont_exec(st, s, "continuity outage update", err_r);
}

int
store_cont_outage_get(struct store *st, const char *tenant, const char *kind, long long id,
    struct store_cont_outage *o_r)
{
	sqlite3_stmt *s = cont_prepare(st, id > 0 ?
	    "SELECT " OUTAGE_COLS " FROM continuity_outages WHERE tenant = ?1 AND kind = ?2 "
	    "AND id = ?3" :
	    "SELECT " OUTAGE_COLS " FROM continuity_outages WHERE tenant = ?1 AND kind = ?2 "
	    "ORDER BY id DESC LIMIT 1", "continuity outage get", NULL);
	if (s == NULL)
		return -1;
	cont_bind_text(s, 1, tenant);
	cont_bind_text(s, 2, kind);
	if (id > 0)
		sqlite3_bind_int64(s, 3, id);
	memset(o_r, 0, sizeof(*o_r));
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		outage_from_row(s, o_r);
	else if (rc != SQLITE_DONE)
		cont_err(store_sqlite(st), "continuity outage get", NULL);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
store_cont_outages_open(struct store *st, struct store_cont_outage **list_r, size_t *n_r)
{
	*list_r = NULL;
	*n_r = 0;
	sqlite3_stmt *s = cont_prepare(st, "SELECT " OUTAGE_COLS " FROM continuity_outages "
	    "WHERE ended_at IS NULL ORDER BY id", "continuity outages open", NULL);
	if (s == NULL)
		return -1;
	void *list = NULL;
	int rc = store_rows_collect(s, sizeof(struct store_cont_outage), outage_from_row, &list,
	    n_r);
	*list_r = list;
	if (rc != SQLITE_DONE)
		cont_err(store_sqlite(st), "continuity outages open", NULL);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

void
store_cont_outage_clear(struct store_cont_outage *o)
{
	free(o->tenant);
	free(o->kind);
	free(o->users);
	free(o->started_by);
	free(o->reason);
	free(o->ended_by);
	free(o->state);
	memset(o, 0, sizeof(*o));
}

void
store_cont_outages_free(struct store_cont_outage *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_cont_outage_clear(&list[i]);
	free(list);
}

/* ---- ledger ------------------------------------------------------------- */

int
store_cont_ledger_add(struct store *st, long long outage_id, const char *queue_id,
    const char *rcpt, const char *kind, long long accepted_at, const char *message_id)
{
	sqlite3_stmt *s = cont_prepare(st, "INSERT OR IGNORE INTO continuity_ledger(outage_id, "
	    "queue_id, rcpt, kind, accepted_at, message_id) VALUES (?1,?2,?3,?4,?5,?6)",
	    "continuity ledger add", NULL);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, outage_id);
	cont_bind_text(s, 2, queue_id);
	cont_bind_text(s, 3, rcpt);
	cont_bind_text(s, 4, kind);
	sqlite3_bind_int64(s, 5, accepted_at);
	cont_bind_text(s, 6, message_id);
	if (cont_exec(st, s, "continuity ledger add", NULL) < 0)
		return -1;
	return sqlite3_changes(store_sqlite(st)) > 0;
}

int
store_cont_ledger_settle(struct store *st, long long outage_id, const char *queue_id,
    const char *rcpt, const char *kind, const char *state, const char *reason, long long at)
{
	sqlite3_stmt *s = cont_prepare(st, "UPDATE continuity_ledger SET state = ?4, reason = ?5, "
	    "done_at = ?6 WHERE queue_id = ?1 AND rcpt = ?2 COLLATE NOCASE AND kind = ?3 "
	    "AND state = 'pending' AND (?7 = 0 OR outage_id = ?7)",
	    "continuity ledger settle", NULL);
	if (s == NULL)
		return -1;
	cont_bind_text(s, 1, queue_id);
	cont_bind_text(s, 2, rcpt);
	cont_bind_text(s, 3, kind);
	cont_bind_text(s, 4, state);
	cont_bind_text(s, 5, reason);
	sqlite3_bind_int64(s, 6, at);
	sqlite3_bind_int64(s, 7, outage_id);
	if (cont_exec(st, s, "continuity ledger settle", NULL) < 0)
		return -1;
	return sqlite3_changes(store_sqlite(st));
}

int
store_cont_ledger_retarget(struct store *st, long long outage_id, const char *queue_id,
    const char *rcpt, const char *new_queue_id)
{
	sqlite3_stmt *s = cont_prepare(st, "UPDATE continuity_ledger SET queue_id = ?4 "
	    "WHERE outage_id = ?1 AND queue_id = ?2 AND rcpt = ?3 AND kind = 'sent'",
	    "continuity ledger retarget", NULL);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, outage_id);
	cont_bind_text(s, 2, queue_id);
	cont_bind_text(s, 3, rcpt);
	cont_bind_text(s, 4, new_queue_id);
	return cont_exec(st, s, "continuity ledger retarget", NULL);
}

int
store_cont_ledger_counts(struct store *st, long long outage_id, struct store_cont_counts *c_r)
{
	memset(c_r, 0, sizeof(*c_r));
	sqlite3_stmt *s = cont_prepare(st, "SELECT state, count(*) FROM continuity_ledger "
	    "WHERE outage_id = ?1 GROUP BY state", "continuity ledger counts", NULL);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, outage_id);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(s, 0);
		long long n = sqlite3_column_int64(s, 1);
		c_r->accepted += n;
		if (state == NULL)
			continue;
		if (strcmp(state, "pending") == 0)
			c_r->pending += n;
		else if (strcmp(state, "delivered") == 0)
			c_r->delivered += n;
		else if (strcmp(state, "skipped") == 0)
			c_r->skipped += n;
		else if (strcmp(state, "failed") == 0)
			c_r->failed += n;
	}
	if (rc != SQLITE_DONE)
		cont_err(store_sqlite(st), "continuity ledger counts", NULL);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
ledger_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_cont_ledger *l = elem;
	l->outage_id = sqlite3_column_int64(s, 0);
	l->queue_id = cont_col(s, 1);
	l->rcpt = cont_col(s, 2);
	l->kind = cont_col(s, 3);
	l->accepted_at = sqlite3_column_int64(s, 4);
	l->state = cont_col(s, 5);
	l->reason = cont_col(s, 6);
	l->message_id = cont_col(s, 7);
}

int
store_cont_ledger_list(struct store *st, long long outage_id, const char *state,
    const char *kind, long long limit, struct store_cont_ledger **list_r, size_t *n_r)
{
	*list_r = NULL;
	*n_r = 0;
	sqlite3_stmt *s = cont_prepare(st, "SELECT outage_id, queue_id, rcpt, kind, accepted_at, "
	    "state, reason, message_id FROM continuity_ledger WHERE outage_id = ?1 "
	    "AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR kind = ?3) "
	    "ORDER BY accepted_at, queue_id, rcpt LIMIT ?4", "continuity ledger list", NULL);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, outage_id);
	cont_bind_text(s, 2, state);
	cont_bind_text(s, 3, kind);
	sqlite3_bind_int64(s, 4, limit > 0 ? limit : -1);
	void *list = NULL;
	int rc = store_rows_collect(s, sizeof(struct store_cont_ledger), ledger_from_row, &list,
	    n_r);
	*list_r = list;
	if (rc != SQLITE_DONE)
		cont_err(store_sqlite(st), "continuity ledger list", NULL);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

void
store_cont_ledger_free(struct store_cont_ledger *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].queue_id);
		free(list[i].rcpt);
		free(list[i].kind);
		free(list[i].state);
		free(list[i].reason);
		free(list[i].message_id);
	}
	free(list);
}

/* ---- what the primary already has --------------------------------------- */

int
store_cont_delivered_add(struct store *st, const char *tenant, const char *message_id,
    const char *rcpt, long long at)
{
	sqlite3_stmt *s = cont_prepare(st, "INSERT INTO continuity_delivered(tenant, message_id, "
	    "rcpt, at) VALUES (?1, ?2, lower(?3), ?4) ON CONFLICT(tenant, message_id, rcpt) "
	    "DO UPDATE SET at = excluded.at", "continuity delivered add", NULL);
	if (s == NULL)
		return -1;
	cont_bind_text(s, 1, tenant);
	cont_bind_text(s, 2, message_id);
	cont_bind_text(s, 3, rcpt);
	sqlite3_bind_int64(s, 4, at);
	if (cont_exec(st, s, "continuity delivered add", NULL) < 0)
		return -1;
	s = cont_prepare(st, "DELETE FROM continuity_delivered WHERE at < ?1",
	    "continuity delivered prune", NULL);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, at - CONT_DELIVERED_KEEP);
	return cont_exec(st, s, "continuity delivered prune", NULL);
}

int
store_cont_delivered_add_many(struct store *st, const struct store_cont_delivery *d, size_t n)
{
	sqlite3 *db = store_sqlite(st);
	if (n == 0)
		return 0;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		cont_err(db, "continuity delivered begin", NULL);
		return -1;
	}
	sqlite3_stmt *s = cont_prepare(st, "INSERT INTO continuity_delivered(tenant, message_id, "
	    "rcpt, at) VALUES (?1, ?2, lower(?3), ?4) ON CONFLICT(tenant, message_id, rcpt) "
	    "DO UPDATE SET at = excluded.at", "continuity delivered add", NULL);
	int rc = s != NULL ? SQLITE_DONE : SQLITE_ERROR;
	long long newest = 0;
	for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
		sqlite3_reset(s);
		cont_bind_text(s, 1, d[i].tenant);
		cont_bind_text(s, 2, d[i].message_id);
		cont_bind_text(s, 3, d[i].rcpt);
		sqlite3_bind_int64(s, 4, d[i].at);
		rc = sqlite3_step(s);
		if (d[i].at > newest)
			newest = d[i].at;
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE) {
		s = cont_prepare(st, "DELETE FROM continuity_delivered WHERE at < ?1",
		    "continuity delivered prune", NULL);
		if (s != NULL) {
			sqlite3_bind_int64(s, 1, newest - CONT_DELIVERED_KEEP);
			rc = sqlite3_step(s);
			sqlite3_finalize(s);
		} else {
			rc = SQLITE_ERROR;
		}
	}
	if (rc != SQLITE_DONE || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		cont_err(db, "continuity delivered add", NULL);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int
store_cont_delivered_has(struct store *st, const char *tenant, const char *message_id,
    const char *rcpt)
{
	sqlite3_stmt *s = cont_prepare(st, "SELECT 1 FROM continuity_delivered WHERE tenant = ?1 "
	    "AND message_id = ?2 AND rcpt = lower(?3)", "continuity delivered has", NULL);
	if (s == NULL)
		return -1;
	cont_bind_text(s, 1, tenant);
	cont_bind_text(s, 2, message_id);
	cont_bind_text(s, 3, rcpt);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		cont_err(store_sqlite(st), "continuity delivered has", NULL);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* ---- sign-ins ----------------------------------------------------------- */

int
store_cont_signin_add(struct store *st, long long outage_id, const char *address,
    const char *service, long long at)
{
	sqlite3_stmt *s = cont_prepare(st, "INSERT INTO continuity_signins(outage_id, address, "
	    "service, first_at, count) VALUES (?1, lower(?2), ?3, ?4, 1) "
	    "ON CONFLICT(outage_id, address, service) DO UPDATE SET count = count + 1",
	    "continuity signin add", NULL);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, outage_id);
	cont_bind_text(s, 2, address);
	cont_bind_text(s, 3, service);
	sqlite3_bind_int64(s, 4, at);
	return cont_exec(st, s, "continuity signin add", NULL);
}

static void
signin_from_row(sqlite3_stmt *s, void *elem)
{
	struct store_cont_signin *g = elem;
	g->address = cont_col(s, 0);
	g->service = cont_col(s, 1);
	g->first_at = sqlite3_column_int64(s, 2);
	g->count = sqlite3_column_int64(s, 3);
}

int
store_cont_signins(struct store *st, long long outage_id, struct store_cont_signin **list_r,
    size_t *n_r)
{
	*list_r = NULL;
	*n_r = 0;
	sqlite3_stmt *s = cont_prepare(st, "SELECT address, service, first_at, count FROM "
	    "continuity_signins WHERE outage_id = ?1 ORDER BY address, service",
	    "continuity signins", NULL);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, outage_id);
	void *list = NULL;
	int rc = store_rows_collect(s, sizeof(struct store_cont_signin), signin_from_row, &list,
	    n_r);
	*list_r = list;
	if (rc != SQLITE_DONE)
		cont_err(store_sqlite(st), "continuity signins", NULL);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

void
store_cont_signins_free(struct store_cont_signin *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].address);
		free(list[i].service);
	}
	free(list);
}
