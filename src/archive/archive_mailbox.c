/*
 * archive_mailbox.c — pooled read connections to store.db for the
 * continuity mailbox (see the header).
 *
 * A pooled connection is an archive_store opened without create (it holds
 * the tenant's data key and caches the compression dictionaries, so
 * archive_store_open_blob works on it) plus our own prepared statements.
 * It is only ever used for reading, except for the one-time insert of the
 * UIDVALIDITY into meta.  The pool is a list per tenant under one mutex;
 * opening a connection happens outside that mutex.
 */
#include "archive/archive_mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "archive/archive.h"
#include "archive/archive_internal.h"
#include "archive/archive_store.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"

#define AMB_IDLE_MAX 4                /* idle connections kept per tenant */
#define AMB_MAILBOXES_MAX 64          /* addresses per query */
#define AMB_MMAP_SIZE "1073741824"    /* bytes of store.db a reader maps */
#define AMB_COLS "m.id, m.hash, b.size, m.archived_at, m.mailbox, m.folder, m.source, " \
	"m.env_from, m.env_rcpts"
#define AMB_UV_KEY "continuity_uidvalidity"

enum amb_stmt { AMS_READ, AMS_FIND, AMS_SEQ, AMS_BEGIN, AMS_END, AMS_COUNT };

static const char *const amb_sql[AMS_COUNT] = {
	[AMS_READ] = "SELECT " AMB_COLS ", b.sealed FROM messages m JOIN blobs b "
	    "ON b.hash = m.hash WHERE m.id = ?1",
	[AMS_FIND] = "SELECT id FROM messages WHERE hash = ?1 AND mailbox = ?2",
	[AMS_SEQ] = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), "
	    "(SELECT max(id) FROM messages), 0)",
	[AMS_BEGIN] = "BEGIN",
	[AMS_END] = "COMMIT",
};

struct amb_conn {
	struct archive_store *s;
	sqlite3 *db;                  /* owned by s */
	sqlite3_stmt *stmt[AMS_COUNT];
	dev_t dev;
	ino_t ino;
	struct amb_conn *next;
};

struct amb_tenant {
	char *name;
	dev_t dev;                    /* the store.db the pooled connections are of */
	ino_t ino;
	uint32_t uidvalidity;         /* 0: not read yet */
	struct amb_conn *idle;
	size_t nidle;
	struct amb_tenant *next;
};

struct archive_mailbox {
	struct archive *a;
	pthread_mutex_t mu;
	struct amb_tenant *tenants;
};

static void
amb_conn_close(struct amb_conn **cp)
{
	struct amb_conn *c = *cp;
	if (c == NULL)
		return;
	for (size_t i = 0; i < AMS_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	archive_store_close(&c->s);
	free(c);
	*cp = NULL;
}

static void
amb_drop_idle(struct amb_tenant *t)
{
	while (t->idle != NULL) {
		struct amb_conn *c = t->idle;
		t->idle = c->next;
		amb_conn_close(&c);
	}
	t->nidle = 0;
	t->uidvalidity = 0;
}

int
archive_mailbox_open(struct archive *a, struct archive_mailbox **mb_r)
{
	struct archive_mailbox *mb = xcalloc(1, sizeof(*mb));
	mb->a = a;
	pthread_mutex_init(&mb->mu, NULL);
	*mb_r = mb;
	return 0;
}

void
archive_mailbox_close(struct archive_mailbox **mbp)
{
	struct archive_mailbox *mb = *mbp;
	if (mb == NULL)
		return;
	*mbp = NULL;
	while (mb->tenants != NULL) {
		struct amb_tenant *t = mb->tenants;
		mb->tenants = t->next;
		amb_drop_idle(t);
		free(t->name);
		free(t);
	}
	pthread_mutex_destroy(&mb->mu);
	free(mb);
}

/* The tenant's slot, under mb->mu. */
static struct amb_tenant *
amb_slot(struct archive_mailbox *mb, const char *tenant)
{
	struct amb_tenant *t = mb->tenants;
	while (t != NULL && strcmp(t->name, tenant) != 0)
		t = t->next;
	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		t->name = xstrdup(tenant);
		t->next = mb->tenants;
		mb->tenants = t;
	}
	return t;
}

/* A new connection to the tenant's store.db: 0, -1 with *err_r. */
static int
amb_conn_new(struct archive_mailbox *mb, const char *tenant, dev_t dev, ino_t ino,
    struct amb_conn **c_r, char **err_r)
{
	struct amb_conn *c = xcalloc(1, sizeof(*c));
	c->dev = dev;
	c->ino = ino;
	if (archive_store_open(archive_data_dir(mb->a), tenant, 0, &c->s, err_r) < 0) {
		free(c);
		return -1;
	}
	c->db = archive_store_db(c->s);
	/* Reads only: map the file (no copies through read()) and keep more pages. */
	(void)sqlite3_exec(c->db, "PRAGMA mmap_size=" AMB_MMAP_SIZE "; PRAGMA cache_size=-8192",
	    NULL, NULL, NULL);
	for (size_t i = 0; i < AMS_COUNT; i++) {
		if (sqlite3_prepare_v3(c->db, amb_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &c->stmt[i], NULL) != SQLITE_OK) {
			struct buf e = BUF_INIT;
			buf_appendf(&e, "archive of tenant '%s': cannot prepare a read: %s", tenant,
			    sqlite3_errmsg(c->db));
			*err_r = buf_steal(&e);
			amb_conn_close(&c);
			return -1;
		}
	}
	*c_r = c;
	return 0;
}

/* The tenant's store.db is gone (shredded): close its connections, whose
 * handles hold the data key. */
static void
amb_forget(struct archive_mailbox *mb, const char *tenant)
{
	pthread_mutex_lock(&mb->mu);
	for (struct amb_tenant *t = mb->tenants; t != NULL; t = t->next) {
		if (strcmp(t->name, tenant) == 0) {
			amb_drop_idle(t);
			t->dev = 0;
			t->ino = 0;
		}
	}
	pthread_mutex_unlock(&mb->mu);
}

/*
 * A connection for one call: 1 with *c_r, 0 the tenant has no archive,
 * -1 with *err_r.  *uv_r (may be NULL) the cached UIDVALIDITY (0 unknown).
 */
static int
amb_get(struct archive_mailbox *mb, const char *tenant, struct amb_conn **c_r, uint32_t *uv_r,
    char **err_r)
{
	*c_r = NULL;
	if (!str_tenant_name_valid(tenant))
		return 0;
	char *path = archive_tenant_path(mb->a, tenant, "store.db");
	struct stat st;
	int rc = stat(path, &st);
	int e = errno;
	free(path);
	if (rc < 0) {
		if (e == ENOENT) {
			amb_forget(mb, tenant);
			return 0;
		}
		struct buf b = BUF_INIT;
		buf_appendf(&b, "archive of tenant '%s': %s", tenant, strerror(e));
		*err_r = buf_steal(&b);
		return -1;
	}
	pthread_mutex_lock(&mb->mu);
	struct amb_tenant *t = amb_slot(mb, tenant);
	if (t->dev != st.st_dev || t->ino != st.st_ino) {
		amb_drop_idle(t);
		t->dev = st.st_dev;
		t->ino = st.st_ino;
	}
	if (t->idle != NULL) {
		*c_r = t->idle;
		t->idle = (*c_r)->next;
		t->nidle--;
	}
	if (uv_r != NULL)
		*uv_r = t->uidvalidity;
	pthread_mutex_unlock(&mb->mu);
	if (*c_r == NULL && amb_conn_new(mb, tenant, st.st_dev, st.st_ino, c_r, err_r) < 0)
		return -1;
	return 1;
}

/* Gives a connection back (kept when its store.db is still the tenant's). */
static void
amb_put(struct archive_mailbox *mb, const char *tenant, struct amb_conn *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < AMS_COUNT; i++)
		sqlite3_reset(c->stmt[i]);
	if (sqlite3_get_autocommit(c->db) == 0) {
		amb_conn_close(&c);   /* never pool a connection inside a transaction */
		return;
	}
	pthread_mutex_lock(&mb->mu);
	struct amb_tenant *t = amb_slot(mb, tenant);
	if (t->dev == c->dev && t->ino == c->ino && t->nidle < AMB_IDLE_MAX) {
		c->next = t->idle;
		t->idle = c;
		t->nidle++;
		c = NULL;
	}
	pthread_mutex_unlock(&mb->mu);
	amb_conn_close(&c);
}

static int
amb_db_err(struct amb_conn *c, const char *tenant, const char *what, char **err_r)
{
	const char *msg = sqlite3_errmsg(c->db);
	log_error("archive_mailbox_error", "tenant=%s op=%s error=%s", tenant, what, log_str(msg));
	struct buf e = BUF_INIT;
	buf_appendf(&e, "archive of tenant '%s': %s: %s", tenant, what, msg);
	*err_r = buf_steal(&e);
	return -1;
}

static const char *
amb_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

/* The row at the statement's current step (columns AMB_COLS). */
static void
amb_row_fill(sqlite3_stmt *st, struct archive_mailbox_row *r)
{
	const char *v;
	r->id = sqlite3_column_int64(st, 0);
	r->hash = (v = amb_text(st, 1)) != NULL ? v : "";
	long long size = sqlite3_column_int64(st, 2);
	r->size = size > 0 ? (uint64_t)size : 0;
	r->archived_at = (time_t)sqlite3_column_int64(st, 3);
	r->mailbox = (v = amb_text(st, 4)) != NULL ? v : "";
	r->folder = (v = amb_text(st, 5)) != NULL ? v : "";
	r->source = (v = amb_text(st, 6)) != NULL ? v : "";
	r->env_from = amb_text(st, 7);
	r->env_rcpts = amb_text(st, 8);
}

/* SELECT for a query: mailboxes ?1..?n, then since, after_id, folder. */
static char *
amb_rows_sql(const struct archive_mailbox_query *q)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "SELECT " AMB_COLS " FROM messages m JOIN blobs b ON b.hash = m.hash "
	    "WHERE m.mailbox IN (");
	for (size_t i = 0; i < q->nmailboxes; i++)
		buf_appendf(&b, "%s?%zu", i ? ", " : "", i + 1);
	buf_appendf(&b, ") AND m.archived_at >= ?%zu AND m.id > ?%zu", q->nmailboxes + 1,
	    q->nmailboxes + 2);
	if (q->folder != NULL)
		buf_appendf(&b, " AND m.folder %s ?%zu", q->folder_not ? "<>" : "=",
		    q->nmailboxes + 3);
	buf_append_str(&b, " ORDER BY m.id");
	return buf_steal(&b);
}

static void
amb_rows_bind(sqlite3_stmt *st, const struct archive_mailbox_query *q)
{
	for (size_t i = 0; i < q->nmailboxes; i++) {
		char *low = xstrdup(q->mailboxes[i]);
		for (char *p = low; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		sqlite3_bind_text(st, (int)i + 1, low, -1, free);
	}
	sqlite3_bind_int64(st, (int)q->nmailboxes + 1, (sqlite3_int64)q->since);
	sqlite3_bind_int64(st, (int)q->nmailboxes + 2, q->after_id);
	if (q->folder != NULL)
		sqlite3_bind_text(st, (int)q->nmailboxes + 3, q->folder, -1, SQLITE_STATIC);
}

/* The walk itself, inside the read transaction. */
static int
amb_rows_walk(struct amb_conn *c, const char *tenant, const struct archive_mailbox_query *q,
    archive_mailbox_cb *cb, void *arg, long long *seq_r, char **err_r)
{
	char *sql = amb_rows_sql(q);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return amb_db_err(c, tenant, "list mailbox", err_r);
	amb_rows_bind(st, q);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct archive_mailbox_row r;
		amb_row_fill(st, &r);
		if (cb(arg, &r) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return amb_db_err(c, tenant, "list mailbox", err_r);
	sqlite3_stmt *sq = c->stmt[AMS_SEQ];
	sqlite3_reset(sq);
	if (sqlite3_step(sq) != SQLITE_ROW)
		return amb_db_err(c, tenant, "read the id sequence", err_r);
	if (seq_r != NULL)
		*seq_r = sqlite3_column_int64(sq, 0);
	sqlite3_reset(sq);
	return 1;
}

static int
amb_step_simple(struct amb_conn *c, enum amb_stmt which)
{
	sqlite3_stmt *st = c->stmt[which];
	sqlite3_reset(st);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
archive_mailbox_rows(struct archive_mailbox *mb, const char *tenant,
    const struct archive_mailbox_query *q, archive_mailbox_cb *cb, void *arg,
    long long *seq_r, char **err_r)
{
	if (q->nmailboxes == 0 || q->nmailboxes > AMB_MAILBOXES_MAX) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "a mailbox query needs 1 to %d addresses", AMB_MAILBOXES_MAX);
		*err_r = buf_steal(&e);
		return -1;
	}
	struct amb_conn *c;
	int rc = amb_get(mb, tenant, &c, NULL, err_r);
	if (rc <= 0)
		return rc;
	if (amb_step_simple(c, AMS_BEGIN) < 0) {
		rc = amb_db_err(c, tenant, "begin a read", err_r);
	} else {
		rc = amb_rows_walk(c, tenant, q, cb, arg, seq_r, err_r);
		/* The rows were read either way; a failed end of a read loses nothing. */
		if (amb_step_simple(c, AMS_END) < 0 && sqlite3_get_autocommit(c->db) == 0)
			(void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	}
	amb_put(mb, tenant, c);
	return rc;
}

/* Opens the sealed bytes of the current READ row: 0, -1 with *err_r. */
static int
amb_open_row(struct amb_conn *c, const struct archive_mailbox_row *r, unsigned char **raw_r,
    size_t *len_r, char **err_r)
{
	sqlite3_stmt *st = c->stmt[AMS_READ];
	if (archive_store_open_blob(c->s, r->hash, sqlite3_column_blob(st, 9),
	    (size_t)sqlite3_column_bytes(st, 9), raw_r, len_r, err_r) < 0)
		return -1;
	if ((uint64_t)*len_r != r->size) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "blob %s holds %zu bytes, its row says %llu", r->hash, *len_r,
		    (unsigned long long)r->size);
		*err_r = buf_steal(&e);
		free(*raw_r);
		*raw_r = NULL;
		return -1;
	}
	return 0;
}

int
archive_mailbox_read(struct archive_mailbox *mb, const char *tenant, long long id,
    archive_mailbox_check *check, void *arg, unsigned char **raw_r, size_t *len_r,
    char **err_r)
{
	struct amb_conn *c;
	int rc = amb_get(mb, tenant, &c, NULL, err_r);
	if (rc <= 0)
		return rc;
	sqlite3_stmt *st = c->stmt[AMS_READ];
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		struct archive_mailbox_row r;
		amb_row_fill(st, &r);
		rc = check == NULL || check(arg, &r) ? 1 : 0;
		if (rc == 1 && raw_r != NULL && amb_open_row(c, &r, raw_r, len_r, err_r) < 0)
			rc = -1;
	} else {
		rc = step == SQLITE_DONE ? 0 : amb_db_err(c, tenant, "read message", err_r);
	}
	sqlite3_reset(st);
	amb_put(mb, tenant, c);
	return rc;
}

int
archive_mailbox_find(struct archive_mailbox *mb, const char *tenant, const char *hash,
    const char *mailbox, long long *id_r, char **err_r)
{
	struct amb_conn *c;
	int rc = amb_get(mb, tenant, &c, NULL, err_r);
	if (rc <= 0)
		return rc;
	char *low = xstrdup(mailbox);
	for (char *p = low; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	sqlite3_stmt *st = c->stmt[AMS_FIND];
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, low, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		*id_r = sqlite3_column_int64(st, 0);
		rc = 1;
	} else {
		rc = step == SQLITE_DONE ? 0 : amb_db_err(c, tenant, "find message", err_r);
	}
	sqlite3_reset(st);
	free(low);
	amb_put(mb, tenant, c);
	return rc;
}

/* Reads meta[AMB_UV_KEY], inserting it first when absent: 0 with *uv_r, -1. */
static int
amb_uv_load(struct amb_conn *c, const char *tenant, uint32_t floor, uint32_t *uv_r,
    char **err_r)
{
	uint32_t first = (uint32_t)time(NULL);
	if (first < floor)
		first = floor;
	char *ins = sqlite3_mprintf("INSERT OR IGNORE INTO meta(key, value) VALUES ('%s', '%u')",
	    AMB_UV_KEY, first != 0 ? first : 1);
	int rc = sqlite3_exec(c->db, ins, NULL, NULL, NULL);
	sqlite3_free(ins);
	if (rc != SQLITE_OK)
		return amb_db_err(c, tenant, "store the UIDVALIDITY", err_r);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE key = '" AMB_UV_KEY "'", -1,
	    &st, NULL) != SQLITE_OK)
		return amb_db_err(c, tenant, "read the UIDVALIDITY", err_r);
	rc = sqlite3_step(st);
	unsigned long long v = 0;
	if (rc == SQLITE_ROW)
		v = strtoull((const char *)sqlite3_column_text(st, 0), NULL, 10);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW || v == 0 || v > UINT32_MAX)
		return amb_db_err(c, tenant, "read the UIDVALIDITY", err_r);
	*uv_r = (uint32_t)v;
	return 0;
}

int
archive_mailbox_uidvalidity(struct archive_mailbox *mb, const char *tenant, uint32_t floor,
    uint32_t *uv_r, char **err_r)
{
	struct amb_conn *c;
	uint32_t uv = 0;
	int rc = amb_get(mb, tenant, &c, &uv, err_r);
	if (rc <= 0)
		return rc;
	if (uv == 0) {
		if (amb_uv_load(c, tenant, floor, &uv, err_r) < 0) {
			amb_put(mb, tenant, c);
			return -1;
		}
		pthread_mutex_lock(&mb->mu);
		struct amb_tenant *t = amb_slot(mb, tenant);
		if (t->dev == c->dev && t->ino == c->ino)
			t->uidvalidity = uv;
		pthread_mutex_unlock(&mb->mu);
	}
	amb_put(mb, tenant, c);
	*uv_r = uv;
	return 1;
}
