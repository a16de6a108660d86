/*
 * Unit tests for src/continuity/cmbox (and archive_mailbox under it): a
 * real archive in a temporary data directory, entries ingested for two
 * users of tenant "acme" and one of tenant "beta" with different sources,
 * folders and dates, then the users' INBOX / Sent views (received rule,
 * window, aliases), exact reads, refused cross-user and cross-tenant
 * reads, flags and expunges persisted across close/open, APPEND (also of
 * bytes archived before, and its date-time as INTERNALDATE), user folders (create, copy, rename, delete) and
 * UIDVALIDITY.  The last test prints the time of a snapshot of 10 000
 * messages and of reading each (MAILARK_CMBOX_N changes the count).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "archive/archive.h"
#include "continuity/cmbox.h"
#include "lib/log.h"
#include "lib/sys.h"
#include "unit_tmp.h"

struct fixture {
	char dir[128];
	struct archive *a;
	struct cmbox *m;
	long long id[16];                 /* ids of the entries made by setup (see populate) */
	char *raw[16];
	size_t len[16];
};

static const char *const alice_addrs[] = { "alice@acme.test", "al@acme.test" };
static const char *const bob_addrs[] = { "bob@acme.test" };
static const char *const carol_addrs[] = { "carol@beta.test" };

static const struct cmbox_user alice = { "acme", "alice@acme.test", alice_addrs, 2, 30 };
static const struct cmbox_user bob = { "acme", "bob@acme.test", bob_addrs, 1, 30 };
static const struct cmbox_user carol = { "beta", "carol@beta.test", carol_addrs, 1, 30 };
/* Alice's address in the wrong tenant: must see nothing of beta's. */
static const struct cmbox_user alice_in_beta = { "beta", "alice@acme.test", alice_addrs, 2, 30 };

static char *
make_msg(int n, size_t body, size_t *len_r)
{
	char head[256];
	int h = snprintf(head, sizeof(head), "From: <sender%d@x.test>\r\n"
	    "To: <someone@acme.test>\r\nSubject: message %d\r\nMessage-ID: <%d.cmbox@x.test>\r\n"
	    "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n", n, n, n);
	char *m = malloc((size_t)h + body + 32);
	memcpy(m, head, (size_t)h);
	size_t len = (size_t)h;
	len += (size_t)sprintf(m + len, "body of %d\r\n", n);
	for (size_t i = 0; i < body; i++)
		m[len++] = (i % 72 == 71) ? '\n' : (char)('a' + (i * 7 + (size_t)n) % 26);
	*len_r = len;
	return m;
}

/* Ingests message k of the fixture; its id for `mailbox` into f->id[k]. */
static void
ingest(struct fixture *f, int k, const char *tenant, const char *mailbox, const char *folder,
    const char *source, const char *env_from, const char *env_rcpts)
{
	const char *mbs[1] = { mailbox };
	free(f->raw[k]);
	f->raw[k] = make_msg(k, 300 + (size_t)k * 10, &f->len[k]);
	struct archive_item it = { .raw = f->raw[k], .len = f->len[k], .mailboxes = mbs,
		.nmailboxes = 1, .folder = folder, .source = source, .env_from = env_from,
		.env_rcpts = env_rcpts };
	struct archive_ingest_result res;
	char *err = NULL;
	if (archive_ingest(f->a, tenant, &it, &res, &err) != 0)
		fail_msg("ingest %d: %s", k, err);
	char path[256];
	snprintf(path, sizeof(path), "%s/archive/%s/store.db", f->dir, tenant);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT id FROM messages WHERE hash = ?1 AND "
	    "mailbox = ?2", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, res.hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, mailbox, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	f->id[k] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Moves an entry's archived_at into the past. */
static void
age(struct fixture *f, const char *tenant, long long id, time_t secs)
{
	char path[256], sql[128];
	snprintf(path, sizeof(path), "%s/archive/%s/store.db", f->dir, tenant);
	snprintf(sql, sizeof(sql), "UPDATE messages SET archived_at = archived_at - %lld "
	    "WHERE id = %lld", (long long)secs, id);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void
populate(struct fixture *f)
{
	ingest(f, 0, "acme", "alice@acme.test", "", "inbound", "ext@x.test", "alice@acme.test");
	ingest(f, 1, "acme", "bob@acme.test", "", "inbound", "ext@x.test", "bob@acme.test");
	/* alice sends out: not received */
	ingest(f, 2, "acme", "alice@acme.test", "", "outbound", "alice@acme.test", "ext@x.test");
	/* alice sends to someone and herself (case differs): received */
	ingest(f, 3, "acme", "alice@acme.test", "", "outbound", "ALICE@acme.test",
	    "ext@x.test, Alice@Acme.test");
	ingest(f, 4, "acme", "alice@acme.test", "Old stuff", "import", NULL, NULL);
	ingest(f, 5, "acme", "alice@acme.test", "Sent", "outbound", "alice@acme.test",
	    "ext@x.test");
	ingest(f, 6, "acme", "al@acme.test", "", "inbound", "ext@x.test", "al@acme.test");
	ingest(f, 7, "acme", "alice@acme.test", "", "inbound", "ext@x.test", "alice@acme.test");
	age(f, "acme", f->id[7], 40 * 86400);    /* out of the 30-day window */
	ingest(f, 8, "beta", "carol@beta.test", "", "inbound", "ext@x.test", "carol@beta.test");
	ingest(f, 9, "acme", "bob@acme.test", "", "inbound", "ext@x.test", "bob@acme.test");
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	unsigned char master[32];
	char p[256];
	char *err = NULL;
	if (f == NULL || unit_tmpdir(f->dir, sizeof(f->dir), "cmbox") < 0 || sodium_init() < 0)
		return -1;
	randombytes_buf(master, sizeof(master));
	snprintf(p, sizeof(p), "%s/keys", f->dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/keys/master.key", f->dir);
	if (sys_write_file_atomic(p, master, sizeof(master), 0600) < 0 ||
	    archive_open(f->dir, &f->a, &err) < 0 || cmbox_open(f->a, f->dir, &f->m, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[200];
	cmbox_close(&f->m);
	archive_close(&f->a);
	for (size_t i = 0; i < 16; i++)
		free(f->raw[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static int
setup_populated(void **state)
{
	if (setup(state) < 0)
		return -1;
	populate(*state);
	return 0;
}

static void
snap(struct fixture *f, const struct cmbox_user *u, const char *box, struct cmbox_snapshot *s)
{
	char *err = NULL;
	int rc = cmbox_snapshot(f->m, u, box, s, &err);
	if (rc != 1)
		fail_msg("snapshot %s of %s: %d %s", box, u->address, rc, err ? err : "");
}

/* The snapshot's UIDs are exactly ids[0..n) (ascending). */
static void
expect_uids(const struct cmbox_snapshot *s, const long long *ids, size_t n)
{
	if (s->n != n) {
		for (size_t i = 0; i < s->n; i++)
			print_message("have uid %u\n", s->msgs[i].uid);
	}
	assert_int_equal(s->n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->msgs[i].uid, ids[i]);
		assert_int_equal(s->msgs[i].archive_id, ids[i]);
		if (i > 0)
			assert_true(s->msgs[i].uid > s->msgs[i - 1].uid);
		assert_true(s->uidnext > s->msgs[i].uid);
	}
}

static void
test_views(void **state)
{
	struct fixture *f = *state;
	struct cmbox_snapshot s;
	char *err = NULL;

	snap(f, &alice, "INBOX", &s);
	long long inbox[] = { f->id[0], f->id[3], f->id[6] };
	expect_uids(&s, inbox, 3);
	assert_int_equal(s.msgs[0].size, f->len[0]);
	assert_int_equal(s.msgs[1].size, f->len[3]);
	assert_true(s.uidvalidity != 0);
	cmbox_snapshot_free(&s);

	snap(f, &alice, "inbox", &s);             /* INBOX is case-insensitive */
	expect_uids(&s, inbox, 3);
	cmbox_snapshot_free(&s);

	snap(f, &alice, "Sent", &s);
	long long sent[] = { f->id[5] };
	expect_uids(&s, sent, 1);
	cmbox_snapshot_free(&s);
	assert_int_equal(cmbox_snapshot(f->m, &alice, "sent", &s, &err), 0);    /* exact */

	snap(f, &bob, "INBOX", &s);
	long long binbox[] = { f->id[1], f->id[9] };
	expect_uids(&s, binbox, 2);
	cmbox_snapshot_free(&s);

	snap(f, &carol, "INBOX", &s);
	long long cinbox[] = { f->id[8] };
	expect_uids(&s, cinbox, 1);
	cmbox_snapshot_free(&s);

	snap(f, &alice_in_beta, "INBOX", &s);
	assert_int_equal(s.n, 0);
	cmbox_snapshot_free(&s);

	/* A longer window shows the old entry. */
	struct cmbox_user wide = alice;
	wide.window_days = 60;
	snap(f, &wide, "INBOX", &s);
	long long winbox[] = { f->id[0], f->id[3], f->id[6], f->id[7] };
	expect_uids(&s, winbox, 4);
	cmbox_snapshot_free(&s);

	assert_int_equal(cmbox_snapshot(f->m, &alice, "Nope", &s, &err), 0);
}

static void
expect_read(struct fixture *f, const struct cmbox_user *u, const char *box, uint32_t uid,
    int k)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	char *err = NULL;
	int rc = cmbox_read(f->m, u, box, uid, &raw, &len, &err);
	if (rc != 1)
		fail_msg("read %s %u: %d %s", box, uid, rc, err ? err : "");
	assert_int_equal(len, f->len[k]);
	assert_memory_equal(raw, f->raw[k], len);
	free(raw);
}

static void
expect_no_read(struct fixture *f, const struct cmbox_user *u, const char *box, long long uid)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	char *err = NULL;
	assert_int_equal(cmbox_read(f->m, u, box, (uint32_t)uid, &raw, &len, &err), 0);
	assert_null(raw);
}

static void
test_read(void **state)
{
	struct fixture *f = *state;
	expect_read(f, &alice, "INBOX", (uint32_t)f->id[0], 0);
	expect_read(f, &alice, "INBOX", (uint32_t)f->id[6], 6);   /* alias */
	expect_read(f, &alice, "Sent", (uint32_t)f->id[5], 5);
	expect_read(f, &bob, "INBOX", (uint32_t)f->id[1], 1);
	expect_no_read(f, &alice, "INBOX", f->id[1]);             /* bob's */
	expect_no_read(f, &bob, "INBOX", f->id[0]);               /* alice's */
	expect_no_read(f, &alice, "INBOX", f->id[2]);             /* sent, not received */
	expect_no_read(f, &alice, "INBOX", f->id[4]);             /* import */
	expect_no_read(f, &alice, "INBOX", f->id[5]);             /* Sent */
	expect_no_read(f, &alice, "INBOX", f->id[7]);             /* out of the window */
	expect_no_read(f, &alice, "Sent", f->id[0]);
	expect_no_read(f, &alice, "INBOX", 0);
	expect_no_read(f, &alice, "INBOX", 99999);
	expect_no_read(f, &alice_in_beta, "INBOX", f->id[8]);     /* carol's, other tenant */
	expect_read(f, &carol, "INBOX", (uint32_t)f->id[8], 8);
	expect_no_read(f, &alice, "Nope", f->id[0]);
}

static unsigned
flags_of(struct fixture *f, const struct cmbox_user *u, const char *box, long long uid)
{
	struct cmbox_snapshot s;
	unsigned fl = 0xffff;
	snap(f, u, box, &s);
	for (size_t i = 0; i < s.n; i++)
		if (s.msgs[i].uid == uid)
			fl = s.msgs[i].flags;
	cmbox_snapshot_free(&s);
	return fl;
}

static void
reopen(struct fixture *f)
{
	char *err = NULL;
	cmbox_close(&f->m);
	assert_null(f->m);
	assert_int_equal(cmbox_open(f->a, f->dir, &f->m, &err), 0);
}

static void
test_flags(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	uint32_t a0 = (uint32_t)f->id[0], a3 = (uint32_t)f->id[3], b1 = (uint32_t)f->id[1];
	uint32_t one[] = { a0 };
	uint32_t two[] = { a0, a3, b1 };
	assert_int_equal(cmbox_set_flags(f->m, &alice, "INBOX", one, 1, CMBOX_FLAGS_SET,
	    CMBOX_F_SEEN | CMBOX_F_RECENT, &err), 0);
	assert_int_equal(cmbox_set_flags(f->m, &alice, "INBOX", two, 3, CMBOX_FLAGS_ADD,
	    CMBOX_F_FLAGGED, &err), 0);
	assert_int_equal(cmbox_set_flags(f->m, &alice, "INBOX", two, 2, CMBOX_FLAGS_REMOVE,
	    CMBOX_F_SEEN, &err), 0);
	assert_int_equal(cmbox_set_flags(f->m, &alice, "INBOX", two + 1, 1, CMBOX_FLAGS_ADD,
	    CMBOX_F_ANSWERED | CMBOX_F_DRAFT, &err), 0);
	reopen(f);
	assert_int_equal(flags_of(f, &alice, "INBOX", a0), CMBOX_F_FLAGGED);
	assert_int_equal(flags_of(f, &alice, "INBOX", a3),
	    CMBOX_F_FLAGGED | CMBOX_F_ANSWERED | CMBOX_F_DRAFT);
	assert_int_equal(flags_of(f, &bob, "INBOX", b1), 0);      /* alice cannot touch it */
	assert_int_equal(cmbox_set_flags(f->m, &bob, "INBOX", &b1, 1, CMBOX_FLAGS_SET,
	    CMBOX_F_DELETED, &err), 0);
	assert_int_equal(flags_of(f, &bob, "INBOX", b1), CMBOX_F_DELETED);
	/* Many UIDs at once take the snapshot path. */
	uint32_t many[1100];
	for (size_t i = 0; i < 1100; i++)
		many[i] = (uint32_t)(i + 1);
	assert_int_equal(cmbox_set_flags(f->m, &alice, "INBOX", many, 1100, CMBOX_FLAGS_ADD,
	    CMBOX_F_SEEN, &err), 0);
	assert_int_equal(flags_of(f, &alice, "INBOX", a0), CMBOX_F_FLAGGED | CMBOX_F_SEEN);
	assert_int_equal(flags_of(f, &bob, "INBOX", b1), CMBOX_F_DELETED);
	assert_int_equal(cmbox_set_flags(f->m, &alice, "Nope", one, 1, CMBOX_FLAGS_SET, 0, &err),
	    -1);
	free(err);
}

static void
test_expunge(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct cmbox_snapshot s;
	uint32_t a0 = (uint32_t)f->id[0], b1 = (uint32_t)f->id[1];
	uint32_t both[] = { a0, b1 };
	assert_int_equal(cmbox_expunge(f->m, &alice, "INBOX", both, 2, &err), 0);
	reopen(f);
	snap(f, &alice, "INBOX", &s);
	long long inbox[] = { f->id[3], f->id[6] };
	expect_uids(&s, inbox, 2);
	assert_true(s.uidnext > (uint32_t)f->id[9]);
	cmbox_snapshot_free(&s);
	expect_no_read(f, &alice, "INBOX", a0);
	snap(f, &bob, "INBOX", &s);                 /* bob's entry is untouched */
	long long binbox[] = { f->id[1], f->id[9] };
	expect_uids(&s, binbox, 2);
	cmbox_snapshot_free(&s);
	expect_read(f, &bob, "INBOX", b1, 1);
}

static void
append(struct fixture *f, const struct cmbox_user *u, const char *box, const void *raw,
    size_t len, unsigned flags, uint32_t *uid_r)
{
	char *err = NULL;
	uint32_t uv = 0;
	int rc = cmbox_append(f->m, u, box, raw, len, flags, 0, &uv, uid_r, &err);
	if (rc != 1)
		fail_msg("append to %s: %d %s", box, rc, err ? err : "");
	assert_true(uv != 0);
}

static void
test_append(void **state)
{
	struct fixture *f = *state;
	struct cmbox_snapshot s;
	char *err = NULL;
	uint32_t uid, uid2, uv, sent_uid;

	snap(f, &alice, "INBOX", &s);
	uint32_t next = s.uidnext, uv0 = s.uidvalidity;
	cmbox_snapshot_free(&s);
	f->raw[10] = make_msg(10, 500, &f->len[10]);
	append(f, &alice, "INBOX", f->raw[10], f->len[10], CMBOX_F_SEEN, &uid);
	assert_true(uid >= next);
	snap(f, &alice, "INBOX", &s);
	assert_int_equal(s.uidvalidity, uv0);
	assert_int_equal(s.msgs[s.n - 1].uid, uid);
	assert_int_equal(s.msgs[s.n - 1].flags, CMBOX_F_SEEN);
	assert_true(s.uidnext > uid);
	cmbox_snapshot_free(&s);
	expect_read(f, &alice, "INBOX", uid, 10);
	expect_no_read(f, &bob, "INBOX", uid);
	append(f, &alice, "INBOX", f->raw[10], f->len[10], 0, &uid2);   /* the same bytes */
	assert_int_equal(uid2, uid);

	/* Sent: a new message, and one whose bytes were archived before for INBOX. */
	f->raw[11] = make_msg(11, 700, &f->len[11]);
	append(f, &alice, "Sent", f->raw[11], f->len[11], 0, &sent_uid);
	append(f, &alice, "Sent", f->raw[0], f->len[0], 0, &uid2);
	assert_int_equal(uid2, f->id[0]);
	snap(f, &alice, "Sent", &s);
	long long sent[] = { f->id[0], f->id[5], sent_uid };
	expect_uids(&s, sent, 3);
	cmbox_snapshot_free(&s);
	expect_read(f, &alice, "Sent", sent_uid, 11);
	expect_read(f, &alice, "Sent", (uint32_t)f->id[0], 0);
	snap(f, &alice, "INBOX", &s);               /* the Sent append is not received mail */
	for (size_t i = 0; i < s.n; i++)
		assert_int_not_equal(s.msgs[i].uid, sent_uid);
	cmbox_snapshot_free(&s);

	/* A user folder: its own UIDs from 1. */
	assert_int_equal(cmbox_create(f->m, &alice, "Drafts", &err), 0);
	append(f, &alice, "Drafts", f->raw[11], f->len[11], CMBOX_F_DRAFT, &uid);
	assert_int_equal(uid, 1);
	f->raw[12] = make_msg(12, 100, &f->len[12]);
	append(f, &alice, "Drafts", f->raw[12], f->len[12], 0, &uid);
	assert_int_equal(uid, 2);
	snap(f, &alice, "Drafts", &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.msgs[0].flags, CMBOX_F_DRAFT);
	assert_int_equal(s.msgs[1].size, f->len[12]);
	assert_int_equal(s.uidnext, 3);
	cmbox_snapshot_free(&s);
	expect_read(f, &alice, "Drafts", 2, 12);
	snap(f, &alice, "INBOX", &s);               /* a folder append is not INBOX mail */
	for (size_t i = 0; i < s.n; i++)
		assert_int_not_equal(s.msgs[i].size, f->len[12]);
	cmbox_snapshot_free(&s);
	expect_no_read(f, &bob, "Drafts", 2);

	assert_int_equal(cmbox_append(f->m, &alice, "Nope", f->raw[12], f->len[12], 0, 0, &uv,
	    &uid, &err), 0);
	assert_int_equal(cmbox_append(f->m, &alice, "INBOX", "", 0, 0, 0, &uv, &uid, &err), -1);
	free(err);
}

static time_t
date_of(struct fixture *f, const struct cmbox_user *u, const char *box, uint32_t uid)
{
	struct cmbox_snapshot s;
	time_t d = -1;
	snap(f, u, box, &s);
	for (size_t i = 0; i < s.n; i++)
		if (s.msgs[i].uid == uid)
			d = s.msgs[i].internaldate;
	cmbox_snapshot_free(&s);
	return d;
}

static void
append_dated(struct fixture *f, const struct cmbox_user *u, const char *box, int k,
    time_t date, uint32_t *uid_r)
{
	char *err = NULL;
	uint32_t uv = 0;
	if (cmbox_append(f->m, u, box, f->raw[k], f->len[k], 0, date, &uv, uid_r, &err) != 1)
		fail_msg("append to %s: %s", box, err ? err : "");
}

/*
 * The date-time of an APPEND to INBOX / Sent is the INTERNALDATE of the
 * entry it archived (snapshot and single-UID path, after reopen, in a
 * mailbox.db made before the table existed); an entry archived another
 * way keeps its archive time; the first date wins.
 */
static void
test_append_date(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, path[256];
	const time_t d1 = 1500000000, d2 = 1600000000, d3 = 1400000000;
	uint32_t in_uid, sent_uid, uid, copied[1];

	/* A mailbox.db of an older version: no table "appended" yet. */
	struct cmbox_snapshot s;
	snap(f, &alice, "INBOX", &s);                        /* creates mailbox.db */
	cmbox_snapshot_free(&s);
	cmbox_close(&f->m);
	snprintf(path, sizeof(path), "%s/continuity/acme/mailbox.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE appended", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(cmbox_open(f->a, f->dir, &f->m, &err), 0);

	f->raw[10] = make_msg(10, 400, &f->len[10]);
	f->raw[11] = make_msg(11, 500, &f->len[11]);
	append_dated(f, &alice, "INBOX", 10, d1, &in_uid);
	append_dated(f, &alice, "Sent", 11, d2, &sent_uid);
	append_dated(f, &alice, "Sent", 0, d3, &uid);        /* archived inbound before */
	assert_int_equal(uid, f->id[0]);
	assert_int_equal(date_of(f, &alice, "INBOX", in_uid), d1);
	assert_int_equal(date_of(f, &alice, "Sent", sent_uid), d2);
	time_t now = time(NULL);
	time_t kept = date_of(f, &alice, "Sent", uid);
	assert_true(kept > now - 3600 && kept <= now);      /* the archive time */
	assert_int_equal(date_of(f, &alice, "INBOX", (uint32_t)f->id[0]), kept);
	append_dated(f, &alice, "INBOX", 10, d3, &uid);      /* again: the first date stays */
	assert_int_equal(uid, in_uid);
	reopen(f);
	assert_int_equal(date_of(f, &alice, "INBOX", in_uid), d1);
	assert_int_equal(date_of(f, &alice, "Sent", sent_uid), d2);
	/* COPY checks one UID alone (not through a snapshot): the folder keeps the date. */
	assert_int_equal(cmbox_create(f->m, &alice, "Keep", &err), 0);
	uint32_t uv;
	assert_int_equal(cmbox_copy(f->m, &alice, "Sent", &sent_uid, 1, "Keep", &uv, copied,
	    &err), 1);
	assert_int_equal(date_of(f, &alice, "Keep", copied[0]), d2);
	/* Nobody else sees it, with or without its date. */
	assert_int_equal(date_of(f, &bob, "INBOX", in_uid), -1);
	assert_int_equal(date_of(f, &bob, "Sent", sent_uid), -1);
}

static void
expect_list(struct fixture *f, const struct cmbox_user *u, const char *const *names, size_t n)
{
	struct cmbox_folder *list;
	size_t got;
	char *err = NULL;
	assert_int_equal(cmbox_list(f->m, u, &list, &got, &err), 0);
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(list[i].name, names[i]);
	assert_int_equal(list[0].special, CMBOX_INBOX);
	assert_int_equal(list[1].special, CMBOX_SENT);
	for (size_t i = 2; i < n; i++)
		assert_int_equal(list[i].special, CMBOX_PLAIN);
	cmbox_folders_free(list, got);
}

static void
expect_create_fails(struct fixture *f, const char *name)
{
	char *err = NULL;
	assert_int_equal(cmbox_create(f->m, &alice, name, &err), -1);
	assert_non_null(err);
	free(err);
}

static void
test_folders(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct cmbox_snapshot s;
	uint32_t uv = 0;

	assert_int_equal(cmbox_create(f->m, &alice, "Work", &err), 0);
	assert_int_equal(cmbox_create(f->m, &alice, "Work/Sub", &err), 0);
	assert_int_equal(cmbox_create(f->m, &alice, "Archive", &err), 0);
	const char *const l1[] = { "INBOX", "Sent", "Archive", "Work", "Work/Sub" };
	expect_list(f, &alice, l1, 5);
	const char *const lb[] = { "INBOX", "Sent" };
	expect_list(f, &bob, lb, 2);
	expect_create_fails(f, "Work");
	expect_create_fails(f, "inbox");
	expect_create_fails(f, "Sent");
	expect_create_fails(f, "/abs");
	expect_create_fails(f, "a//b");
	expect_create_fails(f, "a/");
	expect_create_fails(f, "");
	expect_create_fails(f, "bad\001name");
	char longname[CMBOX_NAME_MAX + 2];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	expect_create_fails(f, longname);

	/* COPY: new UIDs ascending in the order given; not-in-view UIDs get 0. */
	uint32_t from[] = { (uint32_t)f->id[3], (uint32_t)f->id[0], (uint32_t)f->id[1] };
	uint32_t to[3];
	uint32_t fl = (uint32_t)f->id[3];
	assert_int_equal(cmbox_set_flags(f->m, &alice, "INBOX", &fl, 1, CMBOX_FLAGS_SET,
	    CMBOX_F_FLAGGED, &err), 0);
	assert_int_equal(cmbox_copy(f->m, &alice, "INBOX", from, 3, "Work", &uv, to, &err), 1);
	assert_int_equal(to[0], 1);
	assert_int_equal(to[1], 2);
	assert_int_equal(to[2], 0);
	snap(f, &alice, "Work", &s);
	assert_int_equal(s.uidvalidity, uv);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.msgs[0].archive_id, f->id[3]);
	assert_int_equal(s.msgs[0].flags, CMBOX_F_FLAGGED);
	assert_int_equal(s.msgs[1].size, f->len[0]);
	cmbox_snapshot_free(&s);
	expect_read(f, &alice, "Work", 1, 3);
	expect_no_read(f, &alice, "Work", 3);
	/* folder to folder */
	uint32_t w2 = 2, nu = 0;
	assert_int_equal(cmbox_copy(f->m, &alice, "Work", &w2, 1, "Work/Sub", &uv, &nu, &err), 1);
	assert_int_equal(nu, 1);
	expect_read(f, &alice, "Work/Sub", 1, 0);

	assert_int_equal(cmbox_copy(f->m, &alice, "Work", &w2, 1, "INBOX", &uv, &nu, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(cmbox_copy(f->m, &alice, "Work", &w2, 1, "Sent", &uv, &nu, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(cmbox_copy(f->m, &alice, "Work", &w2, 1, "Nope", &uv, &nu, &err), 0);
	/* bob cannot copy alice's UIDs */
	assert_int_equal(cmbox_create(f->m, &bob, "Loot", &err), 0);
	assert_int_equal(cmbox_copy(f->m, &bob, "INBOX", from, 2, "Loot", &uv, to, &err), 1);
	assert_int_equal(to[0], 0);
	assert_int_equal(to[1], 0);

	/* MOVE = copy + expunge; expunge in a folder */
	assert_int_equal(cmbox_expunge(f->m, &alice, "Work", &w2, 1, &err), 0);
	snap(f, &alice, "Work", &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.uidnext, 3);
	uint32_t work_uv = s.uidvalidity;
	cmbox_snapshot_free(&s);

	/* RENAME keeps the messages, takes the children along, new UIDVALIDITY. */
	assert_int_equal(cmbox_rename(f->m, &alice, "Work", "Projects", &err), 0);
	const char *const l2[] = { "INBOX", "Sent", "Archive", "Projects", "Projects/Sub" };
	expect_list(f, &alice, l2, 5);
	snap(f, &alice, "Projects", &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.msgs[0].archive_id, f->id[3]);
	assert_int_not_equal(s.uidvalidity, work_uv);
	cmbox_snapshot_free(&s);
	expect_read(f, &alice, "Projects/Sub", 1, 0);
	assert_int_equal(cmbox_rename(f->m, &alice, "Projects", "Archive", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(cmbox_rename(f->m, &alice, "INBOX", "Mail", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(cmbox_rename(f->m, &alice, "Nope", "Mail", &err), -1);
	free(err);
	err = NULL;

	/* DELETE */
	assert_int_equal(cmbox_delete(f->m, &alice, "Projects", &err), 0);
	const char *const l3[] = { "INBOX", "Sent", "Archive", "Projects/Sub" };
	expect_list(f, &alice, l3, 4);
	assert_int_equal(cmbox_snapshot(f->m, &alice, "Projects", &s, &err), 0);
	assert_int_equal(cmbox_delete(f->m, &alice, "INBOX", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(cmbox_delete(f->m, &alice, "Sent", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(cmbox_delete(f->m, &alice, "Projects", &err), -1);
	free(err);
	err = NULL;
	/* Recreated under the same name: a new UIDVALIDITY, no old messages. */
	assert_int_equal(cmbox_create(f->m, &alice, "Projects", &err), 0);
	snap(f, &alice, "Projects", &s);
	assert_int_equal(s.n, 0);
	assert_int_not_equal(s.uidvalidity, work_uv);
	cmbox_snapshot_free(&s);
}

static void
test_uidvalidity(void **state)
{
	struct fixture *f = *state;
	struct cmbox_snapshot s;
	snap(f, &alice, "INBOX", &s);
	uint32_t uv = s.uidvalidity;
	cmbox_snapshot_free(&s);
	snap(f, &alice, "Sent", &s);
	assert_int_equal(s.uidvalidity, uv);
	cmbox_snapshot_free(&s);
	reopen(f);
	snap(f, &alice, "INBOX", &s);
	assert_int_equal(s.uidvalidity, uv);
	cmbox_snapshot_free(&s);
	archive_close(&f->a);
	char *err = NULL;
	assert_int_equal(archive_open(f->dir, &f->a, &err), 0);
	reopen(f);
	snap(f, &alice, "INBOX", &s);
	assert_int_equal(s.uidvalidity, uv);
	cmbox_snapshot_free(&s);
	/* The state file is private. */
	char path[256];
	struct stat st;
	snprintf(path, sizeof(path), "%s/continuity/acme/mailbox.db", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/continuity/acme", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

static int
has_mailbox_index(struct fixture *f)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/archive/acme/store.db", f->dir);
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE "
	    "type = 'index' AND name = 'messages_mailbox'", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* An archive made before index messages_mailbox gets it when opened. */
static void
test_index_upgrade(void **state)
{
	struct fixture *f = *state;
	char path[256], *err = NULL;
	assert_int_equal(has_mailbox_index(f), 1);
	cmbox_close(&f->m);
	archive_close(&f->a);
	snprintf(path, sizeof(path), "%s/archive/acme/store.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP INDEX messages_mailbox", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(has_mailbox_index(f), 0);
	assert_int_equal(archive_open(f->dir, &f->a, &err), 0);
	struct archive_stats st;
	assert_int_equal(archive_stats(f->a, "acme", &st, &err), 0);
	assert_int_equal(has_mailbox_index(f), 1);
	assert_int_equal(cmbox_open(f->a, f->dir, &f->m, &err), 0);
	struct cmbox_snapshot s;
	snap(f, &alice, "INBOX", &s);
	assert_int_equal(s.n, 3);
	cmbox_snapshot_free(&s);
}

/* A shredded and recreated archive: new UIDVALIDITY, the old state is gone. */
static void
test_shred(void **state)
{
	struct fixture *f = *state;
	struct cmbox_snapshot s;
	char *err = NULL;
	uint32_t a0 = (uint32_t)f->id[0], uv, nu;
	assert_int_equal(cmbox_set_flags(f->m, &alice, "INBOX", &a0, 1, CMBOX_FLAGS_SET,
	    CMBOX_F_SEEN, &err), 0);
	assert_int_equal(cmbox_create(f->m, &alice, "Keep", &err), 0);
	assert_int_equal(cmbox_copy(f->m, &alice, "INBOX", &a0, 1, "Keep", &uv, &nu, &err), 1);
	snap(f, &alice, "INBOX", &s);
	uint32_t uv1 = s.uidvalidity;
	cmbox_snapshot_free(&s);
	if (archive_shred(f->a, "acme", &err) != 0)
		fail_msg("shred: %s", err);
	snap(f, &alice, "INBOX", &s);
	assert_int_equal(s.n, 0);
	cmbox_snapshot_free(&s);
	expect_no_read(f, &alice, "INBOX", a0);
	expect_no_read(f, &alice, "Keep", nu);
	ingest(f, 2, "acme", "alice@acme.test", "", "inbound", "ext@x.test", "alice@acme.test");
	assert_int_equal(f->id[2], a0);          /* the ids start again */
	snap(f, &alice, "INBOX", &s);
	assert_true(s.uidvalidity > uv1);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.msgs[0].uid, a0);
	assert_int_equal(s.msgs[0].flags, 0);    /* not the old entry's */
	cmbox_snapshot_free(&s);
	expect_read(f, &alice, "INBOX", a0, 2);
	snap(f, &alice, "Keep", &s);
	assert_int_equal(s.n, 0);
	cmbox_snapshot_free(&s);
}

struct reader {
	struct fixture *f;
	const struct cmbox_user *u;
	int ks[3];
	int bad;
};

static void *
reader_run(void *arg)
{
	struct reader *r = arg;
	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < 3; i++) {
			int k = r->ks[i];
			unsigned char *raw = NULL;
			size_t len = 0;
			char *err = NULL;
			int rc = cmbox_read(r->f->m, r->u, "INBOX", (uint32_t)r->f->id[k], &raw,
			    &len, &err);
			if (rc != 1 || len != r->f->len[k] || memcmp(raw, r->f->raw[k], len) != 0)
				r->bad++;
			free(raw);
			free(err);
		}
		struct cmbox_snapshot s;
		char *err = NULL;
		if (cmbox_snapshot(r->f->m, r->u, "INBOX", &s, &err) != 1)
			r->bad++;
		else
			cmbox_snapshot_free(&s);
		free(err);
	}
	return NULL;
}

/* Two threads (as the IMAP server's workers) read at once; a third ingests. */
static void
test_threads(void **state)
{
	struct fixture *f = *state;
	struct reader ra = { f, &alice, { 0, 3, 6 }, 0 }, rb = { f, &bob, { 1, 9, 1 }, 0 };
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, reader_run, &ra), 0);
	assert_int_equal(pthread_create(&tb, NULL, reader_run, &rb), 0);
	for (int i = 0; i < 20; i++)
		ingest(f, 10 + (i % 5), "acme", "bob@acme.test", "", "inbound", "ext@x.test",
		    "bob@acme.test");
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(pthread_join(tb, NULL), 0);
	assert_int_equal(ra.bad, 0);
	assert_int_equal(rb.bad, 0);
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_timing(void **state)
{
	struct fixture *f = *state;
	const char *e = getenv("MAILARK_CMBOX_N");
	size_t n = e ? (size_t)strtoul(e, NULL, 10) : 10000, batch = 500;
	const char *mbs[1] = { "perf@acme.test" };
	const char *const addrs[] = { "perf@acme.test" };
	const struct cmbox_user perf = { "acme", "perf@acme.test", addrs, 1, 30 };
	struct archive_item *items = calloc(batch, sizeof(*items));
	struct archive_ingest_result *res = calloc(batch, sizeof(*res));
	double t0 = now_s();
	for (size_t done = 0; done < n; done += batch) {
		size_t k = n - done < batch ? n - done : batch;
		for (size_t i = 0; i < k; i++) {
			size_t len;
			items[i] = (struct archive_item){ .mailboxes = mbs, .nmailboxes = 1,
				.source = "inbound", .env_from = "ext@x.test",
				.env_rcpts = "perf@acme.test" };
			items[i].raw = make_msg((int)(1000 + done + i), 4800, &len);
			items[i].len = len;
		}
		char *err = NULL;
		if (archive_ingest_batch(f->a, "acme", items, k, res, NULL, &err) != 0)
			fail_msg("ingest: %s", err);
		for (size_t i = 0; i < k; i++)
			free((void *)items[i].raw);
	}
	double t1 = now_s();
	struct cmbox_snapshot s, s2;
	snap(f, &perf, "INBOX", &s);       /* warms the pool */
	cmbox_snapshot_free(&s);
	double t2 = now_s();
	snap(f, &perf, "INBOX", &s);
	double t3 = now_s();
	assert_int_equal(s.n, n);
	size_t bytes = 0;
	for (size_t i = 0; i < s.n; i++) {
		unsigned char *raw = NULL;
		size_t len = 0;
		char *err = NULL;
		assert_int_equal(cmbox_read(f->m, &perf, "INBOX", s.msgs[i].uid, &raw, &len, &err),
		    1);
		assert_int_equal(len, s.msgs[i].size);
		bytes += len;
		free(raw);
	}
	double t4 = now_s();
	uint32_t *uids = calloc(n ? n : 1, sizeof(*uids));
	for (size_t i = 0; i < n; i++)
		uids[i] = s.msgs[i].uid;
	char *err = NULL;
	/* As FETCH BODY[] does: \Seen per slice of 100 messages. */
	for (size_t i = 0; i < n; i += 100)
		assert_int_equal(cmbox_set_flags(f->m, &perf, "INBOX", uids + i,
		    n - i < 100 ? n - i : 100, CMBOX_FLAGS_ADD, CMBOX_F_SEEN, &err), 0);
	double t5 = now_s();
	assert_int_equal(cmbox_set_flags(f->m, &perf, "INBOX", uids, n, CMBOX_FLAGS_ADD,
	    CMBOX_F_FLAGGED, &err), 0);
	double t6 = now_s();
	print_message("cmbox timing: %zu messages (%.1f kB avg): ingest %.2f s, snapshot "
	    "%.1f ms, read %.3f ms/message (%.0f MB/s), \\Seen in slices of 100 %.3f "
	    "ms/message, STORE +FLAGS on all %.1f ms\n", n,
	    n ? (double)bytes / (double)n / 1024.0 : 0.0, t1 - t0, (t3 - t2) * 1000.0,
	    n ? (t4 - t3) * 1000.0 / (double)n : 0.0, (double)bytes / (t4 - t3) / 1e6,
	    n ? (t5 - t4) * 1000.0 / (double)n : 0.0, (t6 - t5) * 1000.0);
	snap(f, &perf, "INBOX", &s2);
	for (size_t i = 0; i < s2.n; i++)
		assert_int_equal(s2.msgs[i].flags, CMBOX_F_SEEN | CMBOX_F_FLAGGED);
	cmbox_snapshot_free(&s2);
	cmbox_snapshot_free(&s);
	free(uids);
	free(items);
	free(res);
}

int
main(void)
{
	log_configure(LOGL_ERROR, LOGF_TEXT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_views, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_read, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_expunge, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_append, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_append_date, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_folders, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_uidvalidity, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_index_upgrade, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_shred, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup_populated, teardown),
		cmocka_unit_test_setup_teardown(test_timing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
