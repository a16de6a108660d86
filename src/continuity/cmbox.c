/*
 * cmbox.c — the continuity mailbox (see the header for the model).
 *
 * Message lists and bytes come from the archive through archive_mailbox
 * (pooled read connections, never the tenant's writer lock).  The user's
 * own state lives in <data_dir>/continuity/<tenant>/mailbox.db, one
 * connection per tenant behind a mutex (WAL, synchronous=FULL: these are
 * the user's own changes; except that a transaction changing only flags
 * commits with synchronous=NORMAL — FETCH sets \Seen on every slice of
 * messages it sends, and an fsync each would slow a full sync down, while
 * a power loss costs at most the newest flag changes, which the next
 * commit of anything else makes durable too):
 *
 *   flags(user, mailbox, uid, flags)      INBOX / Sent flags (0 is not stored)
 *   expunged(user, mailbox, uid)          INBOX / Sent entries the user removed
 *   placed(user, mailbox, uid)            INBOX / Sent entries added by an APPEND
 *                                         whose bytes were archived before in a
 *                                         way that does not show there
 *   appended(user, mailbox, uid, internaldate)
 *                                         the date-time an APPEND to INBOX / Sent
 *                                         gave an entry it archived (source
 *                                         "imap"): its INTERNALDATE there instead
 *                                         of the archive time; the first one wins
 *   folders(user, name, uidvalidity, uidnext)
 *   folder_msgs(user, folder, uid, archive_id, flags, internaldate, size)
 *   meta: 'archive_uidvalidity' (the archive the INBOX / Sent state is of:
 *         a recreated archive wipes it), 'last_uidvalidity' (of user folders)
 *
 * Every UID a client names is checked against the user's view before it is
 * read, flagged, copied or expunged: for INBOX / Sent the archive entry's
 * mailbox must be one of the user's addresses and the entry must pass the
 * mailbox's rule and window (or be placed), and not be expunged; for a
 * folder the (user, folder, uid) row must exist and the entry must still
 * belong to one of the user's addresses when it is read.
 */
#include "continuity/cmbox.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/archive_mailbox.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "lib/sys.h"

#define CMB_PICK_SNAPSHOT 1024        /* more UIDs than this: check against one snapshot */
#define CMB_ADDRESSES_MAX 64
#define CMB_INBOX "INBOX"
#define CMB_SENT "Sent"

enum cmb_stmt {
	CS_BEGIN, CS_COMMIT, CS_ROLLBACK,
	CS_META_GET, CS_META_SET,
	CS_STATE,
	CS_HIDDEN,
	CS_PLACED_LIST, CS_PLACED_ADD, CS_PLACED_DEL,
	CS_APPENDED_ADD,
	CS_EXP_ADD, CS_EXP_DEL,
	CS_FLAGS_GET, CS_FLAGS_SET, CS_FLAGS_DEL,
	CS_FOLDER_GET, CS_FOLDER_LIST, CS_FOLDER_ADD, CS_FOLDER_DEL, CS_FOLDER_NEXT,
	CS_FOLDER_RENAME, CS_FOLDER_COUNT,
	CS_FMSG_LIST, CS_FMSG_GET, CS_FMSG_ADD, CS_FMSG_FLAGS, CS_FMSG_DEL, CS_FMSG_DROP,
	CS_FMSG_RENAME,
	CS_COUNT
};

#define CMB_FMSG_COLS "uid, archive_id, size, internaldate, flags"

static const char *const cmb_sql[CS_COUNT] = {
	[CS_BEGIN] = "BEGIN IMMEDIATE",
	[CS_COMMIT] = "COMMIT",
	[CS_ROLLBACK] = "ROLLBACK",
	[CS_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[CS_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
	[CS_STATE] = "SELECT uid, 2, 0 FROM expunged WHERE user = ?1 AND mailbox = ?2 "
	    "UNION ALL SELECT uid, 1, internaldate FROM appended WHERE user = ?1 AND "
	    "mailbox = ?2 UNION ALL SELECT uid, 0, flags FROM flags WHERE user = ?1 AND "
	    "mailbox = ?2 ORDER BY 1, 2 DESC",
	[CS_PLACED_LIST] = "SELECT uid FROM placed WHERE user = ?1 AND mailbox = ?2",
	[CS_HIDDEN] = "SELECT EXISTS (SELECT 1 FROM expunged WHERE user = ?1 AND mailbox = ?2 "
	    "AND uid = ?3), EXISTS (SELECT 1 FROM placed WHERE user = ?1 AND mailbox = ?2 "
	    "AND uid = ?3), (SELECT internaldate FROM appended WHERE user = ?1 AND "
	    "mailbox = ?2 AND uid = ?3)",
	[CS_PLACED_ADD] = "INSERT OR IGNORE INTO placed(user, mailbox, uid) VALUES (?1, ?2, ?3)",
	[CS_PLACED_DEL] = "DELETE FROM placed WHERE user = ?1 AND mailbox = ?2 AND uid = ?3",
	[CS_APPENDED_ADD] = "INSERT OR IGNORE INTO appended(user, mailbox, uid, internaldate) "
	    "VALUES (?1, ?2, ?3, ?4)",
	[CS_EXP_ADD] = "INSERT OR IGNORE INTO expunged(user, mailbox, uid) VALUES (?1, ?2, ?3)",
	[CS_EXP_DEL] = "DELETE FROM expunged WHERE user = ?1 AND mailbox = ?2 AND uid = ?3",
	[CS_FLAGS_GET] = "SELECT flags FROM flags WHERE user = ?1 AND mailbox = ?2 AND uid = ?3",
	[CS_FLAGS_SET] = "INSERT OR REPLACE INTO flags(user, mailbox, uid, flags) "
	    "VALUES (?1, ?2, ?3, ?4)",
	[CS_FLAGS_DEL] = "DELETE FROM flags WHERE user = ?1 AND mailbox = ?2 AND uid = ?3",
	[CS_FOLDER_GET] = "SELECT uidvalidity, uidnext FROM folders WHERE user = ?1 AND name = ?2",
	[CS_FOLDER_LIST] = "SELECT name FROM folders WHERE user = ?1 ORDER BY name",
	[CS_FOLDER_ADD] = "INSERT INTO folders(user, name, uidvalidity, uidnext) "
	    "VALUES (?1, ?2, ?3, 1)",
	[CS_FOLDER_DEL] = "DELETE FROM folders WHERE user = ?1 AND name = ?2",
	[CS_FOLDER_NEXT] = "UPDATE folders SET uidnext = ?3 WHERE user = ?1 AND name = ?2",
	[CS_FOLDER_RENAME] = "UPDATE folders SET name = ?3, uidvalidity = ?4 "
	    "WHERE user = ?1 AND name = ?2",
	[CS_FOLDER_COUNT] = "SELECT count(*) FROM folders WHERE user = ?1",
	[CS_FMSG_LIST] = "SELECT " CMB_FMSG_COLS " FROM folder_msgs WHERE user = ?1 AND "
	    "folder = ?2 ORDER BY uid",
	[CS_FMSG_GET] = "SELECT " CMB_FMSG_COLS " FROM folder_msgs WHERE user = ?1 AND "
	    "folder = ?2 AND uid = ?3",
	[CS_FMSG_ADD] = "INSERT INTO folder_msgs(user, folder, uid, archive_id, flags, "
	    "internaldate, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[CS_FMSG_FLAGS] = "UPDATE folder_msgs SET flags = ?4 WHERE user = ?1 AND folder = ?2 "
	    "AND uid = ?3",
	[CS_FMSG_DEL] = "DELETE FROM folder_msgs WHERE user = ?1 AND folder = ?2 AND uid = ?3",
	[CS_FMSG_DROP] = "DELETE FROM folder_msgs WHERE user = ?1 AND folder = ?2",
	[CS_FMSG_RENAME] = "UPDATE folder_msgs SET folder = ?3 WHERE user = ?1 AND folder = ?2",
};

static const char *const cmb_schema =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS flags(user TEXT NOT NULL, mailbox TEXT NOT NULL,"
	"  uid INTEGER NOT NULL, flags INTEGER NOT NULL,"
	"  PRIMARY KEY(user, mailbox, uid)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS expunged(user TEXT NOT NULL, mailbox TEXT NOT NULL,"
	"  uid INTEGER NOT NULL, PRIMARY KEY(user, mailbox, uid)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS placed(user TEXT NOT NULL, mailbox TEXT NOT NULL,"
	"  uid INTEGER NOT NULL, PRIMARY KEY(user, mailbox, uid)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS appended(user TEXT NOT NULL, mailbox TEXT NOT NULL,"
	"  uid INTEGER NOT NULL, internaldate INTEGER NOT NULL,"
	"  PRIMARY KEY(user, mailbox, uid)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS folders(user TEXT NOT NULL, name TEXT NOT NULL,"
	"  uidvalidity INTEGER NOT NULL, uidnext INTEGER NOT NULL,"
	"  PRIMARY KEY(user, name)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS folder_msgs(user TEXT NOT NULL, folder TEXT NOT NULL,"
	"  uid INTEGER NOT NULL, archive_id INTEGER NOT NULL, flags INTEGER NOT NULL,"
	"  internaldate INTEGER NOT NULL, size INTEGER NOT NULL,"
	"  PRIMARY KEY(user, folder, uid)) WITHOUT ROWID;";

struct cmb_tenant {
	char *name;
	pthread_mutex_t mu;           /* serialises db and archive_uv */
	sqlite3 *db;                  /* NULL until first use */
	sqlite3_stmt *stmt[CS_COUNT];
	uint32_t archive_uv;          /* archive UIDVALIDITY the state is of, 0 unknown */
	struct cmb_tenant *next;
};

struct cmbox {
	struct archive *a;
	char *data_dir;
	struct archive_mailbox *mb;
	pthread_mutex_t mu;           /* guards the tenant list */
	struct cmb_tenant *tenants;
};

/* A mailbox of the user, resolved. */
struct cmb_box {
	enum cmbox_special special;
	const char *key;              /* "INBOX", "Sent", or the folder name (the caller's) */
	uint32_t uidvalidity;
	uint32_t uidnext;             /* folders only */
};

struct cmb_list {
	struct cmbox_msg *v;
	size_t n, cap;
};

static int
cmb_db_err(struct cmb_tenant *t, const char *what, char **err_r)
{
	const char *msg = sqlite3_errmsg(t->db);
	log_error("cmbox_error", "tenant=%s op=%s error=%s", t->name, what, log_str(msg));
	err_setf(err_r, "continuity mailbox of tenant '%s': %s: %s", t->name, what, msg);
	return -1;
}

static void
cmb_list_push(struct cmb_list *l, const struct cmbox_msg *msg)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *msg;
}

/* ------------------------------------------------------------ statements */

static sqlite3_stmt *
cmb_st(struct cmb_tenant *t, enum cmb_stmt which)
{
	sqlite3_stmt *st = t->stmt[which];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

/* The statement with (user, key[, uid]) bound. */
static sqlite3_stmt *
cmb_st_uk(struct cmb_tenant *t, enum cmb_stmt which, const char *user, const char *key,
    long long uid)
{
	sqlite3_stmt *st = cmb_st(t, which);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	if (uid >= 0)
		sqlite3_bind_int64(st, 3, uid);
	return st;
}

/* Runs a statement that returns no rows: 0, -1 with *err_r. */
static int
cmb_run(struct cmb_tenant *t, sqlite3_stmt *st, const char *what, char **err_r)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : cmb_db_err(t, what, err_r);
}

static int
cmb_begin(struct cmb_tenant *t, char **err_r)
{
	return cmb_run(t, cmb_st(t, CS_BEGIN), "begin", err_r);
}

/* Commits, or rolls back when rc < 0 or the commit fails.  Returns rc or -1. */
static int
cmb_end(struct cmb_tenant *t, int rc, char **err_r)
{
	if (rc >= 0 && cmb_run(t, cmb_st(t, CS_COMMIT), "commit", err_r) == 0)
		return rc;
	if (sqlite3_get_autocommit(t->db) == 0)
		(void)sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* ------------------------------------------------------------ tenants */

static void
cmb_tenant_close_db(struct cmb_tenant *t)
{
	for (size_t i = 0; i < CS_COUNT; i++) {
		sqlite3_finalize(t->stmt[i]);
		t->stmt[i] = NULL;
	}
	if (t->db != NULL)
		sqlite3_close(t->db);
	t->db = NULL;
}

/* Creates mailbox.db 0600 in a 0700 directory when missing: 0, -1. */
static int
cmb_db_file(const char *dir, const char *path, char **err_r)
{
	if (sys_mkdir_p(dir, 0700) < 0) {
		err_setf(err_r, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		err_setf(err_r, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static int
cmb_tenant_open_db(struct cmbox *m, struct cmb_tenant *t, char **err_r)
{
	struct buf dir = BUF_INIT, path = BUF_INIT;
	buf_appendf(&dir, "%s/continuity/%s", m->data_dir, t->name);
	buf_appendf(&path, "%s/mailbox.db", buf_cstr(&dir));
	int rc = cmb_db_file(buf_cstr(&dir), buf_cstr(&path), err_r);
	if (rc == 0 && sqlite3_open_v2(buf_cstr(&path), &t->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		err_setf(err_r, "%s: cannot open: %s", buf_cstr(&path),
		    t->db ? sqlite3_errmsg(t->db) : "out of memory");
		rc = -1;
	}
	char *msg = NULL;
	if (rc == 0 && (sqlite3_busy_timeout(t->db, 10000) != SQLITE_OK ||
	    sqlite3_exec(t->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
	    &msg) != SQLITE_OK || sqlite3_exec(t->db, cmb_schema, NULL, NULL, &msg) != SQLITE_OK)) {
		err_setf(err_r, "%s: %s", buf_cstr(&path), msg ? msg : sqlite3_errmsg(t->db));
		rc = -1;
	}
	sqlite3_free(msg);
	for (size_t i = 0; rc == 0 && i < CS_COUNT; i++) {
		if (sqlite3_prepare_v3(t->db, cmb_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &t->stmt[i], NULL) != SQLITE_OK) {
			err_setf(err_r, "%s: cannot prepare: %s", buf_cstr(&path),
			    sqlite3_errmsg(t->db));
			rc = -1;
		}
	}
	if (rc < 0)
		cmb_tenant_close_db(t);
	buf_free(&dir);
	buf_free(&path);
	return rc;
}

/* The user's tenant, locked, its database open: 0, -1 with *err_r. */
static int
cmb_lock(struct cmbox *m, const struct cmbox_user *u, struct cmb_tenant **t_r, char **err_r)
{
	if (u == NULL || !str_tenant_name_valid(u->tenant) || u->address == NULL ||
	    u->address[0] == '\0' || u->naddresses == 0 || u->naddresses > CMB_ADDRESSES_MAX) {
		err_setf(err_r, "continuity mailbox: invalid user");
		return -1;
	}
	for (size_t i = 0; i < u->naddresses; i++) {
		if (u->addresses == NULL || u->addresses[i] == NULL) {
			err_setf(err_r, "continuity mailbox: invalid user");
			return -1;
		}
	}
	pthread_mutex_lock(&m->mu);
	struct cmb_tenant *t = m->tenants;
	while (t != NULL && strcmp(t->name, u->tenant) != 0)
		t = t->next;
	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		t->name = xstrdup(u->tenant);
		pthread_mutex_init(&t->mu, NULL);
		t->next = m->tenants;
		m->tenants = t;
	}
	pthread_mutex_unlock(&m->mu);
	pthread_mutex_lock(&t->mu);
	if (t->db == NULL && cmb_tenant_open_db(m, t, err_r) < 0) {
		pthread_mutex_unlock(&t->mu);
		return -1;
	}
	*t_r = t;
	return 0;
}

static void
cmb_unlock(struct cmb_tenant *t)
{
	pthread_mutex_unlock(&t->mu);
}

/* meta[key] as a number: 0 with *v_r (0 when absent), -1. */
static int
cmb_meta_get(struct cmb_tenant *t, const char *key, unsigned long long *v_r, char **err_r)
{
	sqlite3_stmt *st = cmb_st(t, CS_META_GET);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*v_r = 0;
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		*v_r = strtoull((const char *)sqlite3_column_text(st, 0), NULL, 10);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : cmb_db_err(t, "read meta", err_r);
}

static int
cmb_meta_set(struct cmb_tenant *t, const char *key, unsigned long long v, char **err_r)
{
	char num[32];
	snprintf(num, sizeof(num), "%llu", v);
	sqlite3_stmt *st = cmb_st(t, CS_META_SET);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, num, -1, SQLITE_TRANSIENT);
	return cmb_run(t, st, "write meta", err_r);
}

/*
 * The archive's UIDVALIDITY (1 when the tenant has no archive yet), and
 * the INBOX / Sent state made consistent with it: state kept for another
 * archive (one since shredded and recreated) names entries that no longer
 * exist and is dropped.  Locked.  0, -1.
 */
static int
cmb_archive_uv(struct cmbox *m, struct cmb_tenant *t, uint32_t *uv_r, char **err_r)
{
	uint32_t uv = 0;
	unsigned long long stored = t->archive_uv;
	if (stored == 0 && cmb_meta_get(t, "archive_uidvalidity", &stored, err_r) < 0)
		return -1;
	uint32_t floor = stored > 0 && stored < UINT32_MAX ? (uint32_t)stored + 1 : 1;
	int rc = archive_mailbox_uidvalidity(m->mb, t->name, floor, &uv, err_r);
	if (rc < 0)
		return -1;
	*uv_r = rc == 0 ? 1 : uv;
	if (rc == 0 || uv == t->archive_uv)
		return 0;
	if (stored != uv) {
		char *msg = NULL;
		if (stored != 0)
			log_info("cmbox_state_reset", "tenant=%s reason=new_archive", t->name);
		static const char *const wipe = "BEGIN IMMEDIATE; DELETE FROM flags; "
		    "DELETE FROM expunged; DELETE FROM placed; DELETE FROM appended; "
		    "DELETE FROM folder_msgs;";
		if (sqlite3_exec(t->db, wipe, NULL, NULL, &msg) != SQLITE_OK) {
			err_setf(err_r, "continuity mailbox of tenant '%s': %s", t->name,
			    msg ? msg : sqlite3_errmsg(t->db));
			sqlite3_free(msg);
			return cmb_end(t, -1, NULL);
		}
		if (cmb_end(t, cmb_meta_set(t, "archive_uidvalidity", uv, err_r), err_r) < 0)
			return -1;
	}
	t->archive_uv = uv;
	return 0;
}

/* A fresh UIDVALIDITY for a user folder (in the caller's transaction): 0, -1. */
static int
cmb_folder_uv(struct cmb_tenant *t, uint32_t *uv_r, char **err_r)
{
	unsigned long long last;
	if (cmb_meta_get(t, "last_uidvalidity", &last, err_r) < 0)
		return -1;
	unsigned long long now = (unsigned long long)time(NULL);
	unsigned long long v = now > last ? now : last + 1;
	if (v > UINT32_MAX)
		v = (last % UINT32_MAX) + 1;
	if (cmb_meta_set(t, "last_uidvalidity", v, err_r) < 0)
		return -1;
	*uv_r = (uint32_t)v;
	return 0;
}

/* ------------------------------------------------------------ names, rules */

static int
cmb_is_inbox(const char *name)
{
	return strcasecmp(name, CMB_INBOX) == 0;
}

static int
cmb_is_sent(const char *name)
{
	return strcmp(name, CMB_SENT) == 0;
}

/* A name a user folder may have: 1, or 0 with *err_r. */
static int
cmb_name_ok(const char *name, char **err_r)
{
	size_t n = name ? strlen(name) : 0;
	const char *why = NULL;
	if (n == 0)
		why = "is empty";
	else if (n > CMBOX_NAME_MAX)
		why = "is too long";
	else if (name[0] == '/' || name[n - 1] == '/' || strstr(name, "//") != NULL)
		why = "has an empty component";
	for (size_t i = 0; why == NULL && i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			why = "has a control character";
		else if (c == '*' || c == '%')
			why = "has a wildcard";
	}
	if (why != NULL)
		err_setf(err_r, "[CANNOT] the mailbox name %s", why);
	return why == NULL;
}

/* Is a (len bytes, trimmed of spaces and <>) one of the user's addresses? */
static int
cmb_is_addr(const struct cmbox_user *u, const char *a, size_t len)
{
	while (len > 0 && (*a == ' ' || *a == '<' || *a == '\t')) {
		a++;
		len--;
	}
	while (len > 0 && (a[len - 1] == ' ' || a[len - 1] == '>' || a[len - 1] == '\t'))
		len--;
	for (size_t i = 0; i < u->naddresses; i++)
		if (u->addresses[i] != NULL && strlen(u->addresses[i]) == len &&
		    strncasecmp(u->addresses[i], a, len) == 0)
			return 1;
	return 0;
}

/* Is one of the user's addresses among the comma-separated recipients? */
static int
cmb_in_rcpts(const struct cmbox_user *u, const char *rcpts)
{
	while (rcpts != NULL && *rcpts != '\0') {
		const char *comma = strchr(rcpts, ',');
		size_t len = comma ? (size_t)(comma - rcpts) : strlen(rcpts);
		if (cmb_is_addr(u, rcpts, len))
			return 1;
		rcpts = comma ? comma + 1 : NULL;
	}
	return 0;
}

/* Does the entry belong to one of the user's addresses? */
static int
cmb_owns(const struct cmbox_user *u, const struct archive_mailbox_row *r)
{
	return cmb_is_addr(u, r->mailbox, strlen(r->mailbox));
}

/* Does an entry of the user's addresses show in INBOX / Sent by the rules? */
static int
cmb_rule(const struct cmbox_user *u, enum cmbox_special special,
    const struct archive_mailbox_row *r)
{
	if (special == CMBOX_SENT)
		return strcmp(r->folder, CMB_SENT) == 0;
	if (strcmp(r->source, "import") == 0 || strcmp(r->folder, CMB_SENT) == 0)
		return 0;
	if (strcmp(r->source, "imap") == 0 && r->folder[0] != '\0')
		return 0;     /* APPENDed to a user folder */
	if (r->env_from != NULL && cmb_is_addr(u, r->env_from, strlen(r->env_from)) &&
	    !cmb_in_rcpts(u, r->env_rcpts))
		return 0;     /* sent by the user, not to the user */
	return 1;
}

static time_t
cmb_since(const struct cmbox_user *u)
{
	if (u->window_days <= 0)
		return 0;
	time_t since = time(NULL) - (time_t)u->window_days * 86400;
	return since > 0 ? since : 0;
}

/* Resolves a mailbox name of the user: 1, 0 no such mailbox, -1.  Locked. */
static int
cmb_box(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u, const char *name,
    struct cmb_box *b, char **err_r)
{
	memset(b, 0, sizeof(*b));
	if (name == NULL)
		return 0;
	if (cmb_is_inbox(name) || cmb_is_sent(name)) {
		b->special = cmb_is_inbox(name) ? CMBOX_INBOX : CMBOX_SENT;
		b->key = b->special == CMBOX_INBOX ? CMB_INBOX : CMB_SENT;
		return cmb_archive_uv(m, t, &b->uidvalidity, err_r) < 0 ? -1 : 1;
	}
	if (strlen(name) > CMBOX_NAME_MAX)
		return 0;
	sqlite3_stmt *st = cmb_st_uk(t, CS_FOLDER_GET, u->address, name, -1);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		b->special = CMBOX_PLAIN;
		b->key = name;
		b->uidvalidity = (uint32_t)sqlite3_column_int64(st, 0);
		b->uidnext = (uint32_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : cmb_db_err(t, "read folder", err_r);
}

/* ------------------------------------------------------------ views */

struct cmb_scan {
	const struct cmbox_user *u;
	enum cmbox_special special;
	time_t since;
	int placed;                   /* check: the entry is placed in the mailbox */
	int appended;                 /* check: the user's entry has source "imap" */
	struct cmb_list *l;
	struct cmbox_msg found;       /* check: the entry's data when allowed */
};

static void
cmb_msg_of(const struct archive_mailbox_row *r, struct cmbox_msg *msg)
{
	memset(msg, 0, sizeof(*msg));
	msg->uid = r->id > 0 && r->id <= UINT32_MAX ? (uint32_t)r->id : 0;
	msg->archive_id = r->id;
	msg->size = r->size;
	msg->internaldate = r->archived_at;
}

static int
cmb_scan_row(void *arg, const struct archive_mailbox_row *r)
{
	struct cmb_scan *s = arg;
	struct cmbox_msg msg;
	if (!cmb_rule(s->u, s->special, r))
		return 0;
	cmb_msg_of(r, &msg);
	if (msg.uid != 0)
		cmb_list_push(s->l, &msg);
	return 0;
}

/* Check callback: is entry r in the user's INBOX / Sent (placed or by rule)? */
static int
cmb_check_view(void *arg, const struct archive_mailbox_row *r)
{
	struct cmb_scan *s = arg;
	if (!cmb_owns(s->u, r))
		return 0;
	s->appended = strcmp(r->source, "imap") == 0;
	if (!s->placed && (r->archived_at < s->since || !cmb_rule(s->u, s->special, r)))
		return 0;
	cmb_msg_of(r, &s->found);
	return s->found.uid != 0;
}

/* Check callback: does entry r belong to the user? */
static int
cmb_check_owner(void *arg, const struct archive_mailbox_row *r)
{
	struct cmb_scan *s = arg;
	if (!cmb_owns(s->u, r))
		return 0;
	cmb_msg_of(r, &s->found);
	return 1;
}

static int
cmb_msg_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct cmbox_msg *)a)->uid, y = ((const struct cmbox_msg *)b)->uid;
	return x < y ? -1 : x > y;
}

/* Adds the entries placed in the mailbox by APPEND (sorted, unique after). */
static int
cmb_add_placed(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u,
    const struct cmb_box *b, struct cmb_list *l, char **err_r)
{
	sqlite3_stmt *st = cmb_st_uk(t, CS_PLACED_LIST, u->address, b->key, -1);
	size_t before = l->n;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct cmb_scan s = { .u = u, .special = b->special, .placed = 1 };
		int ok = archive_mailbox_read(m->mb, t->name, sqlite3_column_int64(st, 0),
		    cmb_check_owner, &s, NULL, NULL, err_r);
		if (ok < 0) {
			sqlite3_reset(st);
			return -1;
		}
		if (ok == 1 && s.found.uid != 0)
			cmb_list_push(l, &s.found);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return cmb_db_err(t, "read placed entries", err_r);
	if (l->n == before)
		return 0;
	qsort(l->v, l->n, sizeof(*l->v), cmb_msg_cmp);
	size_t w = 0;
	for (size_t i = 0; i < l->n; i++)
		if (w == 0 || l->v[w - 1].uid != l->v[i].uid)
			l->v[w++] = l->v[i];
	l->n = w;
	return 0;
}

/* Applies the user's expunges (drop), APPEND dates and flags to a sorted list.  Locked. */
static int
cmb_apply_state(struct cmb_tenant *t, const struct cmbox_user *u, const struct cmb_box *b,
    struct cmb_list *l, char **err_r)
{
	sqlite3_stmt *st = cmb_st_uk(t, CS_STATE, u->address, b->key, -1);
	size_t i = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		long long uid = sqlite3_column_int64(st, 0);
		while (i < l->n && (long long)l->v[i].uid < uid)
			i++;
		if (i == l->n)
			break;
		if ((long long)l->v[i].uid != uid)
			continue;
		int kind = sqlite3_column_int(st, 1);
		if (kind == 2)
			l->v[i].archive_id = 0;       /* expunged: dropped below */
		else if (kind == 1)
			l->v[i].internaldate = (time_t)sqlite3_column_int64(st, 2);
		else
			l->v[i].flags = (unsigned)sqlite3_column_int(st, 2) & CMBOX_F_ALL;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return cmb_db_err(t, "read flags", err_r);
	size_t w = 0;
	for (i = 0; i < l->n; i++)
		if (l->v[i].archive_id != 0)
			l->v[w++] = l->v[i];
	l->n = w;
	return 0;
}

/* INBOX or Sent now: the list and *seq_r (highest archive id).  Locked.  0, -1. */
static int
cmb_view_archive(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u,
    const struct cmb_box *b, struct cmb_list *l, long long *seq_r, char **err_r)
{
	struct cmb_scan s = { .u = u, .special = b->special, .since = cmb_since(u), .l = l };
	struct archive_mailbox_query q = {
		.mailboxes = u->addresses, .nmailboxes = u->naddresses, .since = s.since,
		.folder = CMB_SENT, .folder_not = b->special == CMBOX_INBOX,
	};
	*seq_r = 0;
	if (archive_mailbox_rows(m->mb, t->name, &q, cmb_scan_row, &s, seq_r, err_r) < 0 ||
	    cmb_add_placed(m, t, u, b, l, err_r) < 0 || cmb_apply_state(t, u, b, l, err_r) < 0)
		return -1;
	return 0;
}

static void
cmb_fmsg_fill(sqlite3_stmt *st, struct cmbox_msg *msg)
{
	memset(msg, 0, sizeof(*msg));
	msg->uid = (uint32_t)sqlite3_column_int64(st, 0);
	msg->archive_id = sqlite3_column_int64(st, 1);
	long long size = sqlite3_column_int64(st, 2);
	msg->size = size > 0 ? (uint64_t)size : 0;
	msg->internaldate = (time_t)sqlite3_column_int64(st, 3);
	msg->flags = (unsigned)sqlite3_column_int(st, 4) & CMBOX_F_ALL;
}

/* A user folder now.  Locked.  0, -1. */
static int
cmb_view_folder(struct cmb_tenant *t, const struct cmbox_user *u, const struct cmb_box *b,
    struct cmb_list *l, char **err_r)
{
	sqlite3_stmt *st = cmb_st_uk(t, CS_FMSG_LIST, u->address, b->key, -1);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct cmbox_msg msg;
		cmb_fmsg_fill(st, &msg);
		cmb_list_push(l, &msg);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : cmb_db_err(t, "list folder", err_r);
}

/* One UID of INBOX / Sent checked alone: 1 in view (*msg_r), 0 not, -1.  Locked. */
static int
cmb_pick_one(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u,
    const struct cmb_box *b, uint32_t uid, struct cmbox_msg *msg_r, char **err_r)
{
	struct cmb_scan s = { .u = u, .special = b->special, .since = cmb_since(u) };
	sqlite3_stmt *st = cmb_st_uk(t, CS_HIDDEN, u->address, b->key, uid);
	int rc = sqlite3_step(st);
	int expunged = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
	s.placed = rc == SQLITE_ROW && sqlite3_column_int(st, 1);
	int dated = rc == SQLITE_ROW && sqlite3_column_type(st, 2) != SQLITE_NULL;
	time_t date = dated ? (time_t)sqlite3_column_int64(st, 2) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return cmb_db_err(t, "read expunged", err_r);
	if (expunged)
		return 0;
	rc = archive_mailbox_read(m->mb, t->name, uid, cmb_check_view, &s, NULL, NULL, err_r);
	if (rc <= 0)
		return rc;
	*msg_r = s.found;
	if (dated)
		msg_r->internaldate = date;
	st = cmb_st_uk(t, CS_FLAGS_GET, u->address, b->key, uid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		msg_r->flags = (unsigned)sqlite3_column_int(st, 0) & CMBOX_F_ALL;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 1 : cmb_db_err(t, "read flags", err_r);
}

/* One UID of a folder: 1 (*msg_r), 0 not there, -1.  Locked. */
static int
cmb_pick_folder(struct cmb_tenant *t, const struct cmbox_user *u, const struct cmb_box *b,
    uint32_t uid, struct cmbox_msg *msg_r, char **err_r)
{
	sqlite3_stmt *st = cmb_st_uk(t, CS_FMSG_GET, u->address, b->key, uid);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		cmb_fmsg_fill(st, msg_r);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : cmb_db_err(t, "read folder", err_r);
}

/*
 * The UIDs that are in the user's view of the mailbox: out[i] for uids[i],
 * out[i].uid 0 when it is not.  Many UIDs of INBOX / Sent are checked
 * against one snapshot, a few one by one.  Locked.  0, -1.
 */
static int
cmb_pick(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u,
    const struct cmb_box *b, const uint32_t *uids, size_t n, struct cmbox_msg *out,
    char **err_r)
{
	memset(out, 0, n * sizeof(*out));
	if (b->special == CMBOX_PLAIN || n <= CMB_PICK_SNAPSHOT) {
		for (size_t i = 0; i < n; i++) {
			int rc = b->special == CMBOX_PLAIN ?
			    cmb_pick_folder(t, u, b, uids[i], &out[i], err_r) :
			    cmb_pick_one(m, t, u, b, uids[i], &out[i], err_r);
			if (rc < 0)
				return -1;
			if (rc == 0)
				out[i].uid = 0;
		}
		return 0;
	}
	struct cmb_list l = { 0 };
	long long seq;
	if (cmb_view_archive(m, t, u, b, &l, &seq, err_r) < 0) {
		free(l.v);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct cmbox_msg key = { .uid = uids[i] };
		const struct cmbox_msg *hit = uids[i] == 0 ? NULL :
		    bsearch(&key, l.v, l.n, sizeof(*l.v), cmb_msg_cmp);
		if (hit != NULL)
			out[i] = *hit;
	}
	free(l.v);
	return 0;
}

/* ------------------------------------------------------------ API */

int
cmbox_open(struct archive *a, const char *data_dir, struct cmbox **m_r, char **err_r)
{
	struct cmbox *m = xcalloc(1, sizeof(*m));
	m->a = a;
	m->data_dir = xstrdup(data_dir);
	pthread_mutex_init(&m->mu, NULL);
	if (archive_mailbox_open(a, &m->mb) < 0) {
		err_setf(err_r, "continuity mailbox: cannot open the archive reader");
		free(m->data_dir);
		pthread_mutex_destroy(&m->mu);
		free(m);
		return -1;
	}
	*m_r = m;
	return 0;
}

void
cmbox_close(struct cmbox **mp)
{
	struct cmbox *m = *mp;
	if (m == NULL)
		return;
	*mp = NULL;
	while (m->tenants != NULL) {
		struct cmb_tenant *t = m->tenants;
		m->tenants = t->next;
		cmb_tenant_close_db(t);
		pthread_mutex_destroy(&t->mu);
		free(t->name);
		free(t);
	}
	archive_mailbox_close(&m->mb);
	pthread_mutex_destroy(&m->mu);
	free(m->data_dir);
	free(m);
}

static void
cmb_folder_push(struct cmbox_folder **v, size_t *n, const char *name, enum cmbox_special sp)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[*n].name = xstrdup(name);
	(*v)[*n].special = sp;
	(*n)++;
}

int
cmbox_list(struct cmbox *m, const struct cmbox_user *u, struct cmbox_folder **list_r,
    size_t *n_r, char **err_r)
{
	struct cmb_tenant *t;
	struct cmbox_folder *v = NULL;
	size_t n = 0;
	*list_r = NULL;
	*n_r = 0;
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	cmb_folder_push(&v, &n, CMB_INBOX, CMBOX_INBOX);
	cmb_folder_push(&v, &n, CMB_SENT, CMBOX_SENT);
	sqlite3_stmt *st = cmb_st(t, CS_FOLDER_LIST);
	sqlite3_bind_text(st, 1, u->address, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		cmb_folder_push(&v, &n, (const char *)sqlite3_column_text(st, 0), CMBOX_PLAIN);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		cmb_db_err(t, "list folders", err_r);
		cmb_unlock(t);
		cmbox_folders_free(v, n);
		return -1;
	}
	cmb_unlock(t);
	*list_r = v;
	*n_r = n;
	return 0;
}

void
cmbox_folders_free(struct cmbox_folder *list, size_t n)
{
	for (size_t i = 0; list != NULL && i < n; i++)
		free(list[i].name);
	free(list);
}

int
cmbox_snapshot(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    struct cmbox_snapshot *s_r, char **err_r)
{
	struct cmb_tenant *t;
	struct cmb_box b;
	struct cmb_list l = { 0 };
	memset(s_r, 0, sizeof(*s_r));
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	int rc = cmb_box(m, t, u, mailbox, &b, err_r);
	long long seq = 0;
	if (rc == 1 && b.special != CMBOX_PLAIN) {
		if (cmb_view_archive(m, t, u, &b, &l, &seq, err_r) < 0)
			rc = -1;
		if (l.n > 0 && (long long)l.v[l.n - 1].uid > seq)
			seq = l.v[l.n - 1].uid;
		b.uidnext = seq >= UINT32_MAX ? UINT32_MAX : (uint32_t)seq + 1;
	} else if (rc == 1 && cmb_view_folder(t, u, &b, &l, err_r) < 0) {
		rc = -1;
	}
	cmb_unlock(t);
	if (rc != 1) {
		free(l.v);
		return rc;
	}
	s_r->uidvalidity = b.uidvalidity;
	s_r->uidnext = b.uidnext;
	s_r->msgs = l.v;
	s_r->n = l.n;
	return 1;
}

void
cmbox_snapshot_free(struct cmbox_snapshot *s)
{
	if (s == NULL)
		return;
	free(s->msgs);
	s->msgs = NULL;
	s->n = 0;
}

int
cmbox_read(struct cmbox *m, const struct cmbox_user *u, const char *mailbox, uint32_t uid,
    unsigned char **raw_r, size_t *len_r, char **err_r)
{
	struct cmb_tenant *t;
	struct cmb_box b;
	struct cmb_scan s = { .u = u, .since = cmb_since(u) };
	long long id = uid;
	memset(&b, 0, sizeof(b));
	*raw_r = NULL;
	*len_r = 0;
	if (uid == 0 || cmb_lock(m, u, &t, err_r) < 0)
		return uid == 0 ? 0 : -1;
	/* INBOX / Sent resolve without the archive's UIDVALIDITY (a snapshot
	 * came first); the cheap checks under the lock, the archive read outside. */
	int rc = mailbox != NULL && (cmb_is_inbox(mailbox) || cmb_is_sent(mailbox)) ? 1 :
	    cmb_box(m, t, u, mailbox, &b, err_r);
	if (rc == 1 && (cmb_is_inbox(mailbox) || cmb_is_sent(mailbox))) {
		b.special = cmb_is_inbox(mailbox) ? CMBOX_INBOX : CMBOX_SENT;
		b.key = b.special == CMBOX_INBOX ? CMB_INBOX : CMB_SENT;
	}
	s.special = b.special;
	if (rc == 1 && b.special != CMBOX_PLAIN) {
		sqlite3_stmt *st = cmb_st_uk(t, CS_HIDDEN, u->address, b.key, uid);
		int step = sqlite3_step(st);
		if (step == SQLITE_ROW) {
			rc = sqlite3_column_int(st, 0) ? 0 : 1;     /* expunged */
			s.placed = sqlite3_column_int(st, 1);
		}
		sqlite3_reset(st);
		if (step != SQLITE_ROW)
			rc = cmb_db_err(t, "read expunged", err_r);
	} else if (rc == 1) {
		struct cmbox_msg msg = { 0 };
		rc = cmb_pick_folder(t, u, &b, uid, &msg, err_r);
		id = msg.archive_id;
	}
	cmb_unlock(t);
	if (rc != 1)
		return rc;
	return archive_mailbox_read(m->mb, u->tenant, id, b.special != CMBOX_PLAIN ?
	    cmb_check_view : cmb_check_owner, &s, raw_r, len_r, err_r);
}

static unsigned
cmb_flags_apply(unsigned old, enum cmbox_flag_op op, unsigned flags)
{
	flags &= CMBOX_F_ALL;
	switch (op) {
	case CMBOX_FLAGS_SET:
		return flags;
	case CMBOX_FLAGS_ADD:
		return (old | flags) & CMBOX_F_ALL;
	case CMBOX_FLAGS_REMOVE:
		return old & ~flags & CMBOX_F_ALL;
	}
	return old;
}

/* Stores one message's flags.  Locked, in a transaction.  0, -1. */
static int
cmb_store_flags(struct cmb_tenant *t, const struct cmbox_user *u, const struct cmb_box *b,
    uint32_t uid, unsigned flags, char **err_r)
{
	if (b->special == CMBOX_PLAIN) {
		sqlite3_stmt *st = cmb_st_uk(t, CS_FMSG_FLAGS, u->address, b->key, uid);
		sqlite3_bind_int(st, 4, (int)flags);
		return cmb_run(t, st, "store flags", err_r);
	}
	if (flags == 0)
		return cmb_run(t, cmb_st_uk(t, CS_FLAGS_DEL, u->address, b->key, uid),
		    "store flags", err_r);
	sqlite3_stmt *st = cmb_st_uk(t, CS_FLAGS_SET, u->address, b->key, uid);
	sqlite3_bind_int(st, 4, (int)flags);
	return cmb_run(t, st, "store flags", err_r);
}

/*
 * The mailbox `name` of the user and which of the UIDs are in its view
 * (*cur_r[i] as cmb_pick; caller frees *cur_r, also on error).  Locked.
 * 0, -1 (also for "no such mailbox").
 */
static int
cmb_box_pick(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u,
    const char *name, struct cmb_box *b, const uint32_t *uids, size_t n,
    struct cmbox_msg **cur_r, char **err_r)
{
	*cur_r = xcalloc(n ? n : 1, sizeof(**cur_r));
	int rc = cmb_box(m, t, u, name, b, err_r);
	if (rc == 0)
		err_setf(err_r, "no such mailbox");
	if (rc != 1)
		return -1;
	return cmb_pick(m, t, u, b, uids, n, *cur_r, err_r);
}

int
cmbox_set_flags(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    const uint32_t *uids, size_t n, enum cmbox_flag_op op, unsigned flags, char **err_r)
{
	struct cmb_tenant *t;
	struct cmb_box b;
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	struct cmbox_msg *cur = NULL;
	int rc = cmb_box_pick(m, t, u, mailbox, &b, uids, n, &cur, err_r);
	/* Flags alone are committed without fsync (see the top of the file). */
	(void)sqlite3_exec(t->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	if (rc == 0 && (rc = cmb_begin(t, err_r)) == 0) {
		for (size_t i = 0; i < n && rc == 0; i++) {
			unsigned nf = cmb_flags_apply(cur[i].flags, op, flags);
			if (cur[i].uid != 0 && nf != cur[i].flags)
				rc = cmb_store_flags(t, u, &b, cur[i].uid, nf, err_r);
		}
		rc = cmb_end(t, rc, err_r);
	}
	if (sqlite3_exec(t->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
		/* Never leave the connection without fsync for the other writes. */
		cmb_tenant_close_db(t);
	}
	cmb_unlock(t);
	free(cur);
	return rc < 0 ? -1 : 0;
}

/* Removes one message from the user's view.  Locked, in a transaction.  0, -1. */
static int
cmb_expunge_one(struct cmb_tenant *t, const struct cmbox_user *u, const struct cmb_box *b,
    uint32_t uid, char **err_r)
{
	if (b->special == CMBOX_PLAIN)
		return cmb_run(t, cmb_st_uk(t, CS_FMSG_DEL, u->address, b->key, uid), "expunge",
		    err_r);
	if (cmb_run(t, cmb_st_uk(t, CS_EXP_ADD, u->address, b->key, uid), "expunge", err_r) < 0 ||
	    cmb_run(t, cmb_st_uk(t, CS_FLAGS_DEL, u->address, b->key, uid), "expunge", err_r) < 0 ||
	    cmb_run(t, cmb_st_uk(t, CS_PLACED_DEL, u->address, b->key, uid), "expunge", err_r) < 0)
		return -1;
	return 0;
}

int
cmbox_expunge(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    const uint32_t *uids, size_t n, char **err_r)
{
	struct cmb_tenant *t;
	struct cmb_box b;
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	struct cmbox_msg *cur = NULL;
	int rc = cmb_box_pick(m, t, u, mailbox, &b, uids, n, &cur, err_r);
	if (rc == 0 && (rc = cmb_begin(t, err_r)) == 0) {
		for (size_t i = 0; i < n && rc == 0; i++)
			if (cur[i].uid != 0)
				rc = cmb_expunge_one(t, u, &b, cur[i].uid, err_r);
		rc = cmb_end(t, rc, err_r);
	}
	cmb_unlock(t);
	free(cur);
	return rc < 0 ? -1 : 0;
}

/* Adds a reference to archive entry msg to folder b as UID uid.  In a txn. */
static int
cmb_fmsg_add(struct cmb_tenant *t, const struct cmbox_user *u, const struct cmb_box *b,
    uint32_t uid, const struct cmbox_msg *msg, char **err_r)
{
	sqlite3_stmt *st = cmb_st_uk(t, CS_FMSG_ADD, u->address, b->key, uid);
	sqlite3_bind_int64(st, 4, msg->archive_id);
	sqlite3_bind_int(st, 5, (int)(msg->flags & CMBOX_F_ALL));
	sqlite3_bind_int64(st, 6, (sqlite3_int64)msg->internaldate);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)msg->size);
	return cmb_run(t, st, "add to folder", err_r);
}

static int
cmb_folder_next(struct cmb_tenant *t, const struct cmbox_user *u, const struct cmb_box *b,
    uint32_t next, char **err_r)
{
	sqlite3_stmt *st = cmb_st_uk(t, CS_FOLDER_NEXT, u->address, b->key, next);
	return cmb_run(t, st, "advance UIDNEXT", err_r);
}

/*
 * APPEND's bookkeeping for INBOX / Sent: make entry id show there, with
 * internaldate (when not 0) as its INTERNALDATE if the APPEND archived it
 * (source "imap"; an entry that came another way keeps its archive time).
 * Locked.
 */
static int
cmb_append_archive(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u,
    const struct cmb_box *b, long long id, unsigned flags, time_t internaldate, char **err_r)
{
	struct cmb_scan s = { .u = u, .special = b->special, .since = cmb_since(u) };
	int natural = archive_mailbox_read(m->mb, t->name, id, cmb_check_view, &s, NULL, NULL,
	    err_r);
	if (natural < 0 || cmb_begin(t, err_r) < 0)
		return -1;
	int rc = cmb_run(t, cmb_st_uk(t, CS_EXP_DEL, u->address, b->key, id), "append", err_r);
	if (rc == 0 && natural == 0)
		rc = cmb_run(t, cmb_st_uk(t, CS_PLACED_ADD, u->address, b->key, id), "append",
		    err_r);
	if (rc == 0 && internaldate != 0 && s.appended) {
		sqlite3_stmt *st = cmb_st_uk(t, CS_APPENDED_ADD, u->address, b->key, id);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)internaldate);
		rc = cmb_run(t, st, "append date", err_r);
	}
	if (rc == 0 && (flags & CMBOX_F_ALL) != 0) {
		unsigned old = 0;
		sqlite3_stmt *st = cmb_st_uk(t, CS_FLAGS_GET, u->address, b->key, id);
		if (sqlite3_step(st) == SQLITE_ROW)
			old = (unsigned)sqlite3_column_int(st, 0);
		sqlite3_reset(st);
		rc = cmb_store_flags(t, u, b, (uint32_t)id, (old | flags) & CMBOX_F_ALL, err_r);
	}
	return cmb_end(t, rc, err_r);
}

/* APPEND's bookkeeping for a user folder: a new UID for entry id.  Locked.  1, 0, -1. */
static int
cmb_append_folder(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u,
    const char *mailbox, long long id, size_t len, unsigned flags, time_t internaldate,
    struct cmb_box *b, char **err_r)
{
	if (cmb_begin(t, err_r) < 0)
		return -1;
	int rc = cmb_box(m, t, u, mailbox, b, err_r);     /* it may be gone meanwhile */
	if (rc == 1 && b->uidnext == UINT32_MAX) {
		err_setf(err_r, "[LIMIT] the mailbox has run out of UIDs");
		rc = -1;
	}
	if (rc == 1) {
		struct cmbox_msg msg = { .archive_id = id, .size = len, .flags = flags,
		    .internaldate = internaldate != 0 ? internaldate : time(NULL) };
		if (cmb_fmsg_add(t, u, b, b->uidnext, &msg, err_r) < 0 ||
		    cmb_folder_next(t, u, b, b->uidnext + 1, err_r) < 0)
			rc = -1;
	}
	return cmb_end(t, rc, err_r);
}

int
cmbox_append(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    const void *raw, size_t len, unsigned flags, time_t internaldate,
    uint32_t *uidvalidity_r, uint32_t *uid_r, char **err_r)
{
	struct cmb_tenant *t;
	struct cmb_box b;
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	int rc = cmb_box(m, t, u, mailbox, &b, err_r);
	cmb_unlock(t);
	if (rc != 1)
		return rc;
	/* Archive first (durable, slow: not under our lock), then the bookkeeping. */
	const char *mailboxes[1] = { u->address };
	struct archive_item it = {
		.raw = raw, .len = len, .mailboxes = mailboxes, .nmailboxes = 1,
		.folder = b.special == CMBOX_INBOX ? "" : b.special == CMBOX_SENT ? CMB_SENT :
		    mailbox,
		.source = "imap",
	};
	struct archive_ingest_result res;
	long long id = 0;
	if (archive_ingest(m->a, u->tenant, &it, &res, err_r) < 0)
		return -1;
	rc = archive_mailbox_find(m->mb, u->tenant, res.hash, u->address, &id, err_r);
	if (rc < 0)
		return -1;
	if (rc == 0 || id <= 0 || id > UINT32_MAX) {
		err_setf(err_r, "the appended message is not in the archive");
		return -1;
	}
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	if (b.special != CMBOX_PLAIN) {
		rc = cmb_box(m, t, u, mailbox, &b, err_r);   /* the archive may be new */
		if (rc == 1 && cmb_append_archive(m, t, u, &b, id, flags, internaldate, err_r) < 0)
			rc = -1;
		*uid_r = (uint32_t)id;
	} else {
		rc = cmb_append_folder(m, t, u, mailbox, id, len, flags & CMBOX_F_ALL, internaldate,
		    &b, err_r);
		*uid_r = rc == 1 ? b.uidnext : 0;
	}
	cmb_unlock(t);
	*uidvalidity_r = b.uidvalidity;
	return rc;
}

int
cmbox_copy(struct cmbox *m, const struct cmbox_user *u, const char *from,
    const uint32_t *uids, size_t n, const char *to, uint32_t *uidvalidity_r,
    uint32_t *new_uids_r, char **err_r)
{
	struct cmb_tenant *t;
	struct cmb_box fb, tb;
	if (to == NULL || cmb_is_inbox(to) || cmb_is_sent(to)) {
		err_setf(err_r, "[CANNOT] messages cannot be copied into %s", to ? to : "nothing");
		return -1;
	}
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	memset(new_uids_r, 0, n * sizeof(*new_uids_r));
	struct cmbox_msg *cur = xcalloc(n ? n : 1, sizeof(*cur));
	int rc = cmb_box(m, t, u, from, &fb, err_r);
	if (rc == 0) {
		err_setf(err_r, "no such mailbox");
		rc = -1;
	}
	if (rc == 1)
		rc = cmb_box(m, t, u, to, &tb, err_r);
	if (rc == 1 && cmb_pick(m, t, u, &fb, uids, n, cur, err_r) < 0)
		rc = -1;
	if (rc == 1 && cmb_begin(t, err_r) < 0)
		rc = -1;
	if (rc == 1) {
		uint32_t next = tb.uidnext;
		int wrc = 0;
		for (size_t i = 0; i < n && wrc == 0; i++) {
			if (cur[i].uid == 0)
				continue;
			if (next == UINT32_MAX) {
				err_setf(err_r, "[LIMIT] the mailbox has run out of UIDs");
				wrc = -1;
				break;
			}
			wrc = cmb_fmsg_add(t, u, &tb, next, &cur[i], err_r);
			new_uids_r[i] = next++;
		}
		if (wrc == 0)
			wrc = cmb_folder_next(t, u, &tb, next, err_r);
		if (cmb_end(t, wrc, err_r) < 0) {
			memset(new_uids_r, 0, n * sizeof(*new_uids_r));
			rc = -1;
		}
		*uidvalidity_r = tb.uidvalidity;
	}
	cmb_unlock(t);
	free(cur);
	return rc;
}

int
cmbox_create(struct cmbox *m, const struct cmbox_user *u, const char *name, char **err_r)
{
	struct cmb_tenant *t;
	struct cmb_box b;
	if (!cmb_name_ok(name, err_r))
		return -1;
	if (cmb_is_inbox(name) || cmb_is_sent(name)) {
		err_setf(err_r, "mailbox exists");
		return -1;
	}
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	int rc = cmb_begin(t, err_r);
	int have = rc == 0 ? cmb_box(m, t, u, name, &b, err_r) : -1;
	sqlite3_stmt *st = cmb_st(t, CS_FOLDER_COUNT);
	sqlite3_bind_text(st, 1, u->address, -1, SQLITE_STATIC);
	long long count = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	uint32_t uv = 0;
	if (have != 0) {
		if (have > 0)
			err_setf(err_r, "mailbox exists");
		rc = -1;
	} else if (count < 0) {
		rc = cmb_db_err(t, "count folders", err_r);
	} else if (count >= CMBOX_MAX_FOLDERS) {
		err_setf(err_r, "[LIMIT] at most %d mailboxes", CMBOX_MAX_FOLDERS);
		rc = -1;
	} else if (cmb_folder_uv(t, &uv, err_r) < 0) {
		rc = -1;
	} else {
		st = cmb_st_uk(t, CS_FOLDER_ADD, u->address, name, uv);
		rc = cmb_run(t, st, "create folder", err_r);
	}
	if (sqlite3_get_autocommit(t->db) == 0)
		rc = cmb_end(t, rc, err_r);
	cmb_unlock(t);
	return rc < 0 ? -1 : 0;
}

int
cmbox_delete(struct cmbox *m, const struct cmbox_user *u, const char *name, char **err_r)
{
	struct cmb_tenant *t;
	struct cmb_box b;
	if (name == NULL || cmb_is_inbox(name) || cmb_is_sent(name)) {
		err_setf(err_r, "[CANNOT] %s cannot be deleted", name && cmb_is_sent(name) ?
		    CMB_SENT : CMB_INBOX);
		return -1;
	}
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	int rc = cmb_box(m, t, u, name, &b, err_r);
	if (rc == 0) {
		err_setf(err_r, "[NONEXISTENT] no such mailbox");
		rc = -1;
	}
	if (rc == 1 && (rc = cmb_begin(t, err_r)) == 0) {
		rc = cmb_run(t, cmb_st_uk(t, CS_FMSG_DROP, u->address, name, -1), "delete folder",
		    err_r);
		if (rc == 0)
			rc = cmb_run(t, cmb_st_uk(t, CS_FOLDER_DEL, u->address, name, -1),
			    "delete folder", err_r);
		rc = cmb_end(t, rc, err_r);
	}
	cmb_unlock(t);
	return rc < 0 ? -1 : 0;
}

/* The user's folder names equal to `from` or under it ("from/..."). */
static int
cmb_subtree(struct cmb_tenant *t, const struct cmbox_user *u, const char *from,
    char ***names_r, size_t *n_r, char **err_r)
{
	size_t flen = strlen(from);
	sqlite3_stmt *st = cmb_st(t, CS_FOLDER_LIST);
	sqlite3_bind_text(st, 1, u->address, -1, SQLITE_STATIC);
	int rc;
	*names_r = NULL;
	*n_r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (name == NULL || strncmp(name, from, flen) != 0 ||
		    (name[flen] != '\0' && name[flen] != '/'))
			continue;
		*names_r = xrealloc(*names_r, (*n_r + 1) * sizeof(**names_r));
		(*names_r)[(*n_r)++] = xstrdup(name);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : cmb_db_err(t, "list folders", err_r);
}

/* Renames one folder (and its messages) to `to` with a new UIDVALIDITY.  In a txn. */
static int
cmb_rename_one(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u,
    const char *from, const char *to, char **err_r)
{
	struct cmb_box b;
	uint32_t uv;
	int have = cmb_box(m, t, u, to, &b, err_r);
	if (have != 0) {
		if (have > 0)
			err_setf(err_r, "mailbox exists");
		return -1;
	}
	if (cmb_folder_uv(t, &uv, err_r) < 0)
		return -1;
	sqlite3_stmt *st = cmb_st_uk(t, CS_FOLDER_RENAME, u->address, from, -1);
	sqlite3_bind_text(st, 3, to, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, uv);
	if (cmb_run(t, st, "rename folder", err_r) < 0)
		return -1;
	st = cmb_st_uk(t, CS_FMSG_RENAME, u->address, from, -1);
	sqlite3_bind_text(st, 3, to, -1, SQLITE_STATIC);
	return cmb_run(t, st, "rename folder", err_r);
}

/* Renames `from` and the folders under it.  Locked, in a transaction. */
static int
cmb_rename_tree(struct cmbox *m, struct cmb_tenant *t, const struct cmbox_user *u,
    const char *from, const char *to, char **err_r)
{
	char **names = NULL;
	size_t n = 0;
	int rc = cmb_subtree(t, u, from, &names, &n, err_r);
	if (rc == 0 && n == 0) {
		err_setf(err_r, "[NONEXISTENT] no such mailbox");
		rc = -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct buf nn = BUF_INIT;
		buf_appendf(&nn, "%s%s", to, names[i] + strlen(from));
		if (!cmb_name_ok(buf_cstr(&nn), err_r))
			rc = -1;
		else
			rc = cmb_rename_one(m, t, u, names[i], buf_cstr(&nn), err_r);
		buf_free(&nn);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int
cmbox_rename(struct cmbox *m, const struct cmbox_user *u, const char *from, const char *to,
    char **err_r)
{
	struct cmb_tenant *t;
	if (from == NULL || cmb_is_inbox(from) || cmb_is_sent(from)) {
		err_setf(err_r, "[CANNOT] %s cannot be renamed", from && cmb_is_sent(from) ?
		    CMB_SENT : CMB_INBOX);
		return -1;
	}
	if (!cmb_name_ok(to, err_r))
		return -1;
	if (cmb_is_inbox(to) || cmb_is_sent(to)) {
		err_setf(err_r, "mailbox exists");
		return -1;
	}
	size_t flen = strlen(from);
	if (strncmp(to, from, flen) == 0 && (to[flen] == '/' || to[flen] == '\0')) {
		err_setf(err_r, "[CANNOT] a mailbox cannot be renamed into itself");
		return -1;
	}
	if (cmb_lock(m, u, &t, err_r) < 0)
		return -1;
	int rc = cmb_begin(t, err_r);
	if (rc == 0)
		rc = cmb_end(t, cmb_rename_tree(m, t, u, from, to, err_r), err_r);
	cmb_unlock(t);
	return rc < 0 ? -1 : 0;
}
