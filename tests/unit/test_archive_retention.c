/*
 * Unit tests for src/archive/archive_retention: expiry (default, each rule
 * kind, longest wins, recompute), the retention lock, four eyes, legal
 * holds (mailbox, date range, query) and the purge (expired unheld only,
 * shared blobs, search, dry run, ingest going on during a purge).  Each
 * test gets a fresh data directory with a master key of its own and
 * archives small hand-written messages through the core API.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "archive/archive.h"
#include "archive/archive_index.h"
#include "archive/archive_retention.h"
#include "archive/archive_store.h"
#include "unit_tmp.h"

#define T "acme"
#define DAY 86400LL
/* Date: of the old test messages: 2018-01-01T00:00:00Z. */
#define OLD 1514764800LL
#define OLD_DATE "Mon, 01 Jan 2018 00:00:00 +0000"

struct fixture {
	char dir[64];
	struct archive *a;
	int seq;                 /* makes every message unique */
};

static void
rm_rf(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char p[128];
	if (unit_tmpdir(f->dir, sizeof(f->dir), "test-retention") < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/keys", f->dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/keys/master.key", f->dir);
	FILE *fp = fopen(p, "wb");
	unsigned char key[32];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 7 + 3);
	if (fp == NULL || fwrite(key, 1, sizeof(key), fp) != sizeof(key) || fclose(fp) != 0)
		return -1;
	chmod(p, 0600);
	char *err = NULL;
	if (archive_open(f->dir, &f->a, &err) < 0) {
		fprintf(stderr, "archive_open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	archive_close(&f->a);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void
ok(int rc, char **errp)
{
	if (rc != 0)
		fail_msg("unexpected error (rc %d): %s", rc, *errp ? *errp : "(none)");
	assert_null(*errp);
}

static void
refused(int rc, char **errp, const char *needle)
{
	assert_int_equal(rc, -1);
	assert_non_null(*errp);
	if (strstr(*errp, needle) == NULL)
		fail_msg("error '%s' does not mention '%s'", *errp, needle);
	free(*errp);
	*errp = NULL;
}

struct msg {
	const char *mailbox;     /* NULL: tenant-wide */
	const char *mailbox2;    /* a second mailbox of the same content */
	const char *folder;
	const char *env_from, *env_rcpts;
	const char *from, *subject, *body;
	const char *date;        /* NULL: no Date: header (msg_date = now) */
};

/* Archives one message; returns the id of its (first) entry. */
static long long
ingest(struct fixture *f, const struct msg *m)
{
	char raw[2048];
	char date[128] = "";
	if (m->date != NULL)
		snprintf(date, sizeof(date), "Date: %s\r\n", m->date);
	int n = snprintf(raw, sizeof(raw), "From: %s\r\nTo: someone@acme.example\r\n"
	    "Subject: %s\r\n%sMessage-ID: <m%d@test.example>\r\n\r\n%s\r\n",
	    m->from ? m->from : "Sender <sender@other.example>", m->subject ? m->subject : "hello",
	    date, ++f->seq, m->body ? m->body : "plain text body");
	const char *mbs[2] = { m->mailbox, m->mailbox2 };
	struct archive_item it = {
		.raw = raw, .len = (size_t)n, .mailboxes = mbs,
		.nmailboxes = m->mailbox == NULL ? 0 : m->mailbox2 == NULL ? 1 : 2,
		.folder = m->folder, .source = "import", .env_from = m->env_from,
		.env_rcpts = m->env_rcpts,
	};
	struct archive_ingest_result res;
	char *err = NULL;
	ok(archive_ingest(f->a, T, &it, &res, &err), &err);
	assert_int_equal(res.rows_new, it.nmailboxes ? it.nmailboxes : 1);
	struct archive_stats st;
	ok(archive_stats(f->a, T, &st, &err), &err);
	return st.max_id - (long long)res.rows_new + 1;
}

static sqlite3 *
store_db(struct fixture *f)
{
	char p[128];
	sqlite3 *db = NULL;
	snprintf(p, sizeof(p), "%s/archive/%s/store.db", f->dir, T);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	return db;
}

static long long
sql_ll(struct fixture *f, const char *sql, long long param)
{
	sqlite3 *db = store_db(f);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_bind_parameter_count(st) > 0)
		sqlite3_bind_int64(st, 1, param);
	int rc = sqlite3_step(st);
	long long v = -9;
	if (rc == SQLITE_ROW)
		v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void
sql_exec(struct fixture *f, const char *sql)
{
	sqlite3 *db = store_db(f);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* expires_at of an entry; -1 = NULL (for ever), -9 = no such entry. */
static long long
expires(struct fixture *f, long long id)
{
	return sql_ll(f, "SELECT expires_at FROM messages WHERE id = ?1", id);
}

static long long
rows(struct fixture *f)
{
	return sql_ll(f, "SELECT count(*) FROM messages", 0);
}

static long long
blobs(struct fixture *f)
{
	return sql_ll(f, "SELECT count(*) FROM blobs", 0);
}

static size_t
search_total(struct fixture *f, const char *query)
{
	struct archive_search_opts o = { .query = query, .limit = 10 };
	struct archive_results res;
	char *err = NULL;
	memset(&res, 0, sizeof(res));
	ok(archive_search(f->a, T, &o, &res, &err), &err);
	size_t n = res.total;
	archive_results_free(&res);
	return n;
}

/* Turns four eyes off the proper way: alice asks, bob approves. */
static void
four_eyes_off(struct fixture *f)
{
	long long ap = 0;
	char *err = NULL;
	assert_int_equal(archive_retention_setting_set(f->a, T, "four_eyes", 0, "alice", &ap,
	    &err), 1);
	assert_true(ap > 0);
	ok(archive_retention_approve(f->a, T, ap, "bob", NULL, &err), &err);
	long long v = 1;
	ok(archive_retention_setting_get(f->a, T, "four_eyes", &v, &err), &err);
	assert_int_equal(v, 0);
}

static void
set_default(struct fixture *f, long long days)
{
	char *err = NULL;
	ok(archive_retention_set_default(f->a, T, days, "alice", NULL, &err), &err);
}

/* ------------------------------------------------------------- expiry */

static void
test_default_expiry(void **state)
{
	struct fixture *f = *state;
	struct msg m = { .mailbox = "a@acme.example", .date = OLD_DATE };
	long long id = ingest(f, &m);
	assert_int_equal(expires(f, id), OLD + 3650 * DAY);

	/* A Date: in the future counts from the archiving time. */
	struct msg fut = { .mailbox = "a@acme.example", .date = "Fri, 01 Jan 2100 00:00:00 +0000" };
	time_t before = time(NULL);
	long long id2 = ingest(f, &fut);
	long long e = expires(f, id2);
	assert_true(e >= before + 3650 * DAY && e <= time(NULL) + 3650 * DAY);

	/* Lengthening needs no approval and recomputes what is there. */
	set_default(f, 4000);
	assert_int_equal(expires(f, id), OLD + 4000 * DAY);
	set_default(f, -1);
	assert_int_equal(expires(f, id), -1);

	char *err = NULL;
	refused(archive_retention_set_default(f->a, T, -5, "alice", NULL, &err), &err, "bad");
}

static void
test_rules_longest_wins(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long rid;
	four_eyes_off(f);
	set_default(f, 10);
	ok(archive_retention_rule_add(f->a, T, "folder", "Legal", 100, "alice", &rid, &err), &err);
	ok(archive_retention_rule_add(f->a, T, "folder", "legal", 50, "alice", &rid, &err), &err);
	ok(archive_retention_rule_add(f->a, T, "address", "CEO@acme.example", 200, "alice", &rid,
	    &err), &err);
	ok(archive_retention_rule_add(f->a, T, "domain", "partner.example", 300, "alice", &rid,
	    &err), &err);
	ok(archive_retention_rule_add(f->a, T, "keyword", "zephyr", 400, "alice", &rid, &err),
	    &err);
	ok(archive_retention_rule_add(f->a, T, "address", "boss@acme.example", 500, "alice", &rid,
	    &err), &err);
	refused(archive_retention_rule_add(f->a, T, "colour", "red", 5, "alice", &rid, &err), &err,
	    "unknown rule kind");
	refused(archive_retention_rule_add(f->a, T, "address", "nobody", 5, "alice", &rid, &err),
	    &err, "bad address");

	struct msg plain = { .mailbox = "a@acme.example", .date = OLD_DATE };
	struct msg folder = { .mailbox = "a@acme.example", .folder = "LEGAL/2019", .date = OLD_DATE };
	struct msg notsub = { .mailbox = "a@acme.example", .folder = "Legalese", .date = OLD_DATE };
	struct msg addr = { .mailbox = "ceo@acme.example", .date = OLD_DATE };
	struct msg rcpt = { .mailbox = "a@acme.example", .env_rcpts = "x@y.example, ceo@acme.example",
		.date = OLD_DATE };
	struct msg dom = { .mailbox = "a@acme.example", .env_from = "bob@partner.example",
		.date = OLD_DATE };
	struct msg subdom = { .mailbox = "a@acme.example", .env_from = "bob@sub.partner.example.org",
		.date = OLD_DATE };
	struct msg kw = { .mailbox = "a@acme.example", .subject = "Project Zephyr kickoff",
		.date = OLD_DATE };
	struct msg kwbody = { .mailbox = "a@acme.example", .body = "the zephyr numbers",
		.date = OLD_DATE };
	struct msg from = { .mailbox = "a@acme.example", .from = "The Boss <Boss@Acme.Example>",
		.date = OLD_DATE };
	struct msg both = { .mailbox = "ceo@acme.example", .folder = "Legal", .subject = "zephyr",
		.env_from = "x@partner.example", .date = OLD_DATE };
	assert_int_equal(expires(f, ingest(f, &plain)), OLD + 10 * DAY);
	assert_int_equal(expires(f, ingest(f, &folder)), OLD + 100 * DAY);
	assert_int_equal(expires(f, ingest(f, &notsub)), OLD + 10 * DAY);
	assert_int_equal(expires(f, ingest(f, &addr)), OLD + 200 * DAY);
	assert_int_equal(expires(f, ingest(f, &rcpt)), OLD + 200 * DAY);
	assert_int_equal(expires(f, ingest(f, &dom)), OLD + 300 * DAY);
	assert_int_equal(expires(f, ingest(f, &subdom)), OLD + 10 * DAY);
	long long kid = ingest(f, &kw);
	assert_int_equal(expires(f, kid), OLD + 400 * DAY);
	assert_int_equal(expires(f, ingest(f, &kwbody)), OLD + 400 * DAY);
	assert_int_equal(expires(f, ingest(f, &from)), OLD + 500 * DAY);
	long long bid = ingest(f, &both);
	assert_int_equal(expires(f, bid), OLD + 400 * DAY);

	/* A forever rule wins over everything; added later: recomputed. */
	ok(archive_retention_rule_add(f->a, T, "keyword", "zephyr", -1, "alice", &rid, &err), &err);
	assert_int_equal(expires(f, kid), -1);
	assert_int_equal(expires(f, bid), -1);
	/* Removing it (four eyes off: at once) recomputes back. */
	ok(archive_retention_rule_remove(f->a, T, rid, "alice", NULL, &err), &err);
	assert_int_equal(expires(f, kid), OLD + 400 * DAY);
	refused(archive_retention_rule_remove(f->a, T, rid, "alice", NULL, &err), &err,
	    "no retention rule");

	json_t *pol = archive_retention_policy_json(f->a, T, &err);
	assert_non_null(pol);
	assert_int_equal(json_array_size(json_object_get(pol, "rules")), 6);
	assert_int_equal(json_integer_value(json_object_get(pol, "default_days")), 10);
	json_decref(pol);
}

static void
test_recompute_batches(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long first = 0, last = 0;
	for (int i = 0; i < 30; i++) {
		struct msg m = { .mailbox = "a@acme.example", .folder = i % 2 ? "Keep" : "",
			.date = OLD_DATE };
		last = ingest(f, &m);
		if (i == 0)
			first = last;
	}
	/* Simulate a recompute interrupted by a crash: the purge must finish it. */
	sql_exec(f, "UPDATE messages SET expires_at = 0");
	sql_exec(f, "UPDATE settings SET value = '1' WHERE key = 'recompute_next'");
	ok(archive_retention_recompute(f->a, T, &err), &err);
	assert_int_equal(expires(f, first), OLD + 3650 * DAY);
	assert_int_equal(expires(f, last), OLD + 3650 * DAY);
	assert_int_equal(sql_ll(f, "SELECT value FROM settings WHERE key = 'recompute_next'", 0), 0);

	sql_exec(f, "UPDATE messages SET expires_at = 0");
	sql_exec(f, "UPDATE settings SET value = '1' WHERE key = 'recompute_next'");
	struct archive_purge_result r;
	ok(archive_retention_purge(f->a, T, (time_t)(OLD + 100 * DAY), 0, "test", &r, NULL, NULL,
	    &err), &err);
	assert_int_equal(r.messages, 0);
	assert_int_equal(rows(f), 30);
}

/* An expiry lost in a crash (not fsynced) is redone by the next ingest. */
static void
test_apply_repairs_gap(void **state)
{
	struct fixture *f = *state;
	struct msg m = { .mailbox = "a@acme.example", .date = OLD_DATE };
	long long id1 = ingest(f, &m), id2 = ingest(f, &m);
	assert_int_equal(sql_ll(f, "SELECT value FROM settings WHERE key = "
	    "'retention_applied_upto'", 0), id2);
	sql_exec(f, "UPDATE messages SET expires_at = NULL");
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE settings SET value = '%lld' WHERE key = "
	    "'retention_applied_upto'", id1 - 1);
	sql_exec(f, sql);
	long long id3 = ingest(f, &m);
	assert_int_equal(expires(f, id1), OLD + 3650 * DAY);
	assert_int_equal(expires(f, id2), OLD + 3650 * DAY);
	assert_int_equal(expires(f, id3), OLD + 3650 * DAY);
	assert_int_equal(sql_ll(f, "SELECT value FROM settings WHERE key = "
	    "'retention_applied_upto'", 0), id3);
}

/* --------------------------------------------------------------- lock */

static void
test_lock(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long rid, ap;
	ok(archive_retention_rule_add(f->a, T, "folder", "Legal", 5000, "alice", &rid, &err), &err);
	struct msg m = { .mailbox = "a@acme.example", .date = OLD_DATE };
	struct msg l = { .mailbox = "a@acme.example", .folder = "Legal", .date = OLD_DATE };
	long long id = ingest(f, &m), lid = ingest(f, &l);
	ok(archive_retention_lock(f->a, T, "alice", &err), &err);
	ok(archive_retention_lock(f->a, T, "bob", &err), &err);   /* again: nothing changes */

	refused(archive_retention_set_default(f->a, T, 100, "alice", &ap, &err), &err,
	    "retention is locked since");
	refused(archive_retention_rule_remove(f->a, T, rid, "alice", &ap, &err), &err,
	    "retention is locked since");
	refused(archive_retention_setting_set(f->a, T, "four_eyes", 0, "alice", &ap, &err), &err,
	    "retention is locked since");
	refused(archive_shred(f->a, T, &err), &err, "locked");
	assert_int_equal(sql_ll(f, "SELECT count(*) FROM approvals", 0), 0);

	/* Lengthening still works. */
	set_default(f, 4000);
	assert_int_equal(expires(f, id), OLD + 4000 * DAY);
	assert_int_equal(expires(f, lid), OLD + 5000 * DAY);

	/* A recompute never lowers an expiry under the lock. */
	sql_exec(f, "UPDATE messages SET expires_at = expires_at + 86400000");
	ok(archive_retention_rule_add(f->a, T, "keyword", "nothing-matches", 10, "bob", &rid, &err),
	    &err);
	assert_int_equal(expires(f, id), OLD + 4000 * DAY + 86400000LL);
	/* ... and a forever entry stays forever. */
	sql_exec(f, "UPDATE messages SET expires_at = NULL WHERE folder = 'Legal'");
	ok(archive_retention_rule_add(f->a, T, "keyword", "nothing-either", 10, "bob", &rid, &err),
	    &err);
	assert_int_equal(expires(f, lid), -1);

	json_t *pol = archive_retention_policy_json(f->a, T, &err);
	assert_true(json_is_true(json_object_get(pol, "locked")));
	assert_string_equal(json_string_value(json_object_get(pol, "locked_by")), "alice");
	json_decref(pol);
}

static void
test_unlocked_recompute_lowers(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long rid;
	struct msg m = { .mailbox = "a@acme.example", .date = OLD_DATE };
	long long id = ingest(f, &m);
	sql_exec(f, "UPDATE messages SET expires_at = expires_at + 86400000");
	ok(archive_retention_rule_add(f->a, T, "keyword", "nothing-matches", 10, "bob", &rid, &err),
	    &err);
	assert_int_equal(expires(f, id), OLD + 3650 * DAY);
}

/* ---------------------------------------------------------- four eyes */

static void
test_four_eyes(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long ap = 0, ap2 = 0;
	struct msg m = { .mailbox = "a@acme.example", .date = OLD_DATE };
	long long id = ingest(f, &m);

	assert_int_equal(archive_retention_set_default(f->a, T, 30, "alice", &ap, &err), 1);
	assert_null(err);
	/* Pending: no effect yet. */
	assert_int_equal(expires(f, id), OLD + 3650 * DAY);
	long long def = 0;
	ok(archive_retention_setting_get(f->a, T, "default_days", &def, &err), &err);
	assert_int_equal(def, 3650);
	json_t *list = archive_retention_approval_list(f->a, T, 1, &err);
	assert_int_equal(json_array_size(list), 1);
	json_t *a0 = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(a0, "action")), "retention.set");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a0, "args"), "days")),
	    30);
	json_decref(list);

	refused(archive_retention_approve(f->a, T, ap, "alice", NULL, &err), &err,
	    "a second admin must approve");
	assert_int_equal(expires(f, id), OLD + 3650 * DAY);
	json_t *done = NULL;
	ok(archive_retention_approve(f->a, T, ap, "bob", &done, &err), &err);
	assert_string_equal(json_string_value(json_object_get(done, "state")), "executed");
	assert_string_equal(json_string_value(json_object_get(done, "decided_by")), "bob");
	json_decref(done);
	assert_int_equal(expires(f, id), OLD + 30 * DAY);
	refused(archive_retention_approve(f->a, T, ap, "carol", NULL, &err), &err, "not pending");

	/* Rejected changes never happen. */
	assert_int_equal(archive_retention_set_default(f->a, T, 5, "alice", &ap2, &err), 1);
	ok(archive_retention_reject(f->a, T, ap2, "bob", &err), &err);
	refused(archive_retention_approve(f->a, T, ap2, "bob", NULL, &err), &err, "rejected");
	assert_int_equal(expires(f, id), OLD + 30 * DAY);

	/* Lengthening, adding rules, holds and cases: at once. */
	long long rid, cid, hid;
	ok(archive_retention_set_default(f->a, T, 60, "alice", &ap, &err), &err);
	ok(archive_retention_rule_add(f->a, T, "folder", "x", 9, "alice", &rid, &err), &err);
	ok(archive_retention_case_add(f->a, T, "Case 1", "fraud", "alice", &cid, &err), &err);
	struct archive_hold_spec h = { .name = "h1", .case_name = "Case 1", .date_from = -1,
		.date_to = -1 };
	ok(archive_retention_hold_add(f->a, T, &h, "alice", &hid, &err), &err);
	refused(archive_retention_hold_add(f->a, T, &h, "alice", &hid, &err), &err, "exists");

	/* Removing a rule, releasing a hold, deleting a case: pending. */
	assert_int_equal(archive_retention_rule_remove(f->a, T, rid, "alice", &ap, &err), 1);
	assert_int_equal(sql_ll(f, "SELECT count(*) FROM retention_rules", 0), 1);
	refused(archive_retention_case_delete(f->a, T, "Case 1", "alice", &ap, &err), &err,
	    "release them first");
	assert_int_equal(archive_retention_hold_release(f->a, T, "h1", "alice", &ap, &err), 1);
	assert_int_equal(sql_ll(f, "SELECT count(*) FROM holds WHERE released_at IS NULL", 0), 1);
	ok(archive_retention_approve(f->a, T, ap, "bob", NULL, &err), &err);
	assert_int_equal(sql_ll(f, "SELECT count(*) FROM holds WHERE released_at IS NULL", 0), 0);
	assert_int_equal(archive_retention_case_delete(f->a, T, "Case 1", "alice", &ap, &err), 1);
	assert_int_equal(sql_ll(f, "SELECT count(*) FROM cases", 0), 1);
	ok(archive_retention_approve(f->a, T, ap, "bob", NULL, &err), &err);
	assert_int_equal(sql_ll(f, "SELECT count(*) FROM cases", 0), 0);

	/* Exports under four_eyes_export: requested, approved, claimed once. */
	ok(archive_retention_setting_set(f->a, T, "four_eyes_export", 1, "alice", &ap, &err), &err);
	json_t *args = json_pack("{s:s}", "query", "from:x");
	ok(archive_retention_request(f->a, T, "export", args, "alice", &ap, &err), &err);
	json_decref(args);
	json_t *got = NULL;
	refused(archive_retention_approval_take(f->a, T, ap, "export", &got, &err), &err,
	    "pending");
	ok(archive_retention_approve(f->a, T, ap, "bob", NULL, &err), &err);
	ok(archive_retention_approval_take(f->a, T, ap, "export", &got, &err), &err);
	assert_string_equal(json_string_value(json_object_get(got, "query")), "from:x");
	json_decref(got);
	refused(archive_retention_approval_take(f->a, T, ap, "export", &got, &err), &err,
	    "executed");
}

/* ------------------------------------------------------- holds, purge */

static struct archive_purge_result
purge(struct fixture *f, int dry_run)
{
	struct archive_purge_result r;
	char *err = NULL;
	ok(archive_retention_purge(f->a, T, time(NULL), dry_run, "test", &r, NULL, NULL, &err),
	    &err);
	return r;
}

static void
test_holds(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long hid;
	four_eyes_off(f);
	set_default(f, 1);
	struct msg mb = { .mailbox = "held@acme.example", .date = OLD_DATE };
	struct msg in_range = { .mailbox = "a@acme.example", .date = "Mon, 15 Mar 2010 10:00:00 +0000" };
	struct msg at_end = { .mailbox = "a@acme.example", .date = "Sun, 01 Jan 2012 00:00:00 +0000" };
	struct msg q = { .mailbox = "b@acme.example", .subject = "merger secret", .date = OLD_DATE };
	struct msg free1 = { .mailbox = "a@acme.example", .subject = "lunch", .date = OLD_DATE };
	struct msg fresh = { .mailbox = "a@acme.example", .subject = "today" };
	long long id_mb = ingest(f, &mb), id_r = ingest(f, &in_range), id_e = ingest(f, &at_end);
	long long id_q = ingest(f, &q), id_f = ingest(f, &free1), id_n = ingest(f, &fresh);

	struct archive_hold_spec h1 = { .name = "mailbox", .mailbox = "HELD@acme.example",
		.date_from = -1, .date_to = -1 };
	struct archive_hold_spec h2 = { .name = "range", .mailbox = "a@acme.example",
		.date_from = 1262304000 /* 2010-01-01 */, .date_to = 1325376000 /* 2012-01-01 */ };
	struct archive_hold_spec h3 = { .name = "query", .query = "subject:merger",
		.date_from = -1, .date_to = -1 };
	struct archive_hold_spec bad = { .name = "bad", .query = "subject:(", .date_from = -1,
		.date_to = -1 };
	struct archive_hold_spec nocase = { .name = "nc", .case_name = "nope", .date_from = -1,
		.date_to = -1 };
	ok(archive_retention_hold_add(f->a, T, &h1, "alice", &hid, &err), &err);
	ok(archive_retention_hold_add(f->a, T, &h2, "alice", &hid, &err), &err);
	ok(archive_retention_hold_add(f->a, T, &h3, "alice", &hid, &err), &err);
	assert_int_equal(archive_retention_hold_add(f->a, T, &bad, "alice", &hid, &err), -1);
	free(err);
	err = NULL;
	refused(archive_retention_hold_add(f->a, T, &nocase, "alice", &hid, &err), &err,
	    "no open case");

	struct archive_purge_result r = purge(f, 0);
	assert_int_equal(r.messages, 2);       /* at_end (to is exclusive) and free1 */
	assert_int_equal(r.held_skipped, 3);
	assert_true(expires(f, id_mb) > 0);
	assert_true(expires(f, id_r) > 0);
	assert_true(expires(f, id_q) > 0);
	assert_int_equal(expires(f, id_e), -9);
	assert_int_equal(expires(f, id_f), -9);
	assert_true(expires(f, id_n) > 0);     /* not expired */

	json_t *list = archive_retention_hold_list(f->a, T, &err);
	assert_int_equal(json_array_size(list), 3);
	json_decref(list);

	/* Released holds keep nothing. */
	ok(archive_retention_hold_release(f->a, T, "query", "alice", NULL, &err), &err);
	r = purge(f, 0);
	assert_int_equal(r.messages, 1);
	assert_int_equal(expires(f, id_q), -9);
	assert_int_equal(r.held_skipped, 2);
	assert_int_equal(sql_ll(f, "SELECT count(*) FROM purges WHERE finished_at IS NOT NULL", 0),
	    2);
}

static void
test_purge_shared_blob_and_search(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long hid;
	four_eyes_off(f);
	set_default(f, 1);
	struct msg shared = { .mailbox = "a@acme.example", .mailbox2 = "b@acme.example",
		.subject = "quarterly xylophone", .date = OLD_DATE };
	long long ida = ingest(f, &shared), idb = ida + 1;
	struct msg other = { .mailbox = "a@acme.example", .subject = "marimba", .date = OLD_DATE };
	ingest(f, &other);
	assert_int_equal(blobs(f), 2);
	assert_int_equal(search_total(f, "xylophone"), 2);
	struct archive_hold_spec h = { .name = "b", .mailbox = "b@acme.example", .date_from = -1,
		.date_to = -1 };
	ok(archive_retention_hold_add(f->a, T, &h, "alice", &hid, &err), &err);

	/* Dry run: counts, changes nothing. */
	struct archive_purge_result r = purge(f, 1);
	assert_int_equal(r.messages, 2);
	assert_int_equal(r.blobs, 1);
	assert_true(r.bytes > 0);
	assert_int_equal(r.held_skipped, 1);
	assert_int_equal(rows(f), 3);
	assert_int_equal(blobs(f), 2);
	assert_int_equal(search_total(f, "marimba"), 1);

	r = purge(f, 0);
	assert_int_equal(r.messages, 2);
	assert_int_equal(r.blobs, 1);              /* marimba's; the shared one stays */
	assert_int_equal(r.held_skipped, 1);
	assert_int_equal(blobs(f), 1);
	assert_int_equal(search_total(f, "xylophone"), 1);
	assert_int_equal(search_total(f, "marimba"), 0);
	struct archive_row row;
	unsigned char *raw = NULL;
	size_t len = 0;
	assert_int_equal(archive_get(f->a, T, ida, &row, &raw, &len, &err), 0);
	assert_int_equal(archive_get(f->a, T, idb, &row, &raw, &len, &err), 1);
	assert_non_null(strstr((const char *)raw, "xylophone"));
	archive_row_free(&row);
	free(raw);

	/* The last reference goes: the blob goes. */
	ok(archive_retention_hold_release(f->a, T, "b", "alice", NULL, &err), &err);
	r = purge(f, 0);
	assert_int_equal(r.messages, 1);
	assert_int_equal(r.blobs, 1);
	assert_int_equal(blobs(f), 0);
	assert_int_equal(search_total(f, "xylophone"), 0);
}

static void
test_cases(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long cid;
	ok(archive_retention_case_add(f->a, T, "Smith v. Acme", NULL, "alice", &cid, &err), &err);
	refused(archive_retention_case_add(f->a, T, "Smith v. Acme", NULL, "alice", &cid, &err),
	    &err, "exists");
	refused(archive_retention_case_add(f->a, T, "", NULL, "alice", &cid, &err), &err, "bad");
	ok(archive_retention_case_close(f->a, T, "Smith v. Acme", "alice", &err), &err);
	refused(archive_retention_case_close(f->a, T, "Smith v. Acme", "alice", &err), &err,
	    "closed already");
	refused(archive_retention_case_close(f->a, T, "nope", "alice", &err), &err, "no case");
	json_t *list = archive_retention_case_list(f->a, T, &err);
	assert_int_equal(json_array_size(list), 1);
	assert_true(json_integer_value(json_object_get(json_array_get(list, 0), "closed_at")) > 0);
	json_decref(list);
}

/* ------------------------------------------------- ingest during purge */

#define MANY 20000

struct ingester {
	struct fixture *f;
	atomic_int purging;        /* 1 while the purge runs */
	atomic_int done_during;    /* ingests finished while it ran */
	atomic_int searches_during;
	int failed;
};

static void *
ingest_thread(void *arg)
{
	struct ingester *in = arg;
	char raw[256];
	while (!atomic_load(&in->purging))
		usleep(100);
	for (int i = 0; i < 400 && atomic_load(&in->purging); i++) {
		int n = snprintf(raw, sizeof(raw), "From: x@other.example\r\nSubject: live %d\r\n"
		    "Message-ID: <live%d@test>\r\n\r\nduring the purge\r\n", i, i);
		const char *mb[1] = { "live@acme.example" };
		struct archive_item it = { .raw = raw, .len = (size_t)n, .mailboxes = mb,
			.nmailboxes = 1, .source = "inbound" };
		struct archive_ingest_result res;
		char *err = NULL;
		if (archive_ingest(in->f->a, T, &it, &res, &err) < 0) {
			fprintf(stderr, "ingest during purge: %s\n", err);
			free(err);
			in->failed++;
			continue;
		}
		struct archive_search_opts o = { .query = "during", .limit = 1 };
		struct archive_results rs;
		memset(&rs, 0, sizeof(rs));
		if (archive_search(in->f->a, T, &o, &rs, &err) == 0) {
			archive_results_free(&rs);
			if (atomic_load(&in->purging))
				atomic_fetch_add(&in->searches_during, 1);
		} else {
			free(err);
			in->failed++;
		}
		if (atomic_load(&in->purging))
			atomic_fetch_add(&in->done_during, 1);
	}
	return NULL;
}

/*
 * Purge progress, called between batches (tenant lock released): the first
 * time, it waits until the other thread has ingested and searched a few
 * times — which it can only do if a purge leaves the archive usable between
 * its batches.  No timing is asserted; 30 s is only a safety net.
 */
static void
purge_progress_wait(void *arg, uint64_t done, uint64_t total)
{
	struct ingester *in = arg;
	for (int i = 0; i < 30000 && (atomic_load(&in->done_during) < 3 ||
	    atomic_load(&in->searches_during) < 3); i++)
		usleep(1000);
}

static void
test_ingest_during_purge(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	static char raws[500][200];
	struct archive_item items[500];
	struct archive_ingest_result res[500];
	const char *mb[1] = { "bulk@acme.example" };
	for (int b = 0; b < MANY / 500; b++) {
		for (int i = 0; i < 500; i++) {
			int k = b * 500 + i;
			int n = snprintf(raws[i], sizeof(raws[i]), "From: y@other.example\r\n"
			    "Subject: bulk %d\r\nDate: " OLD_DATE "\r\nMessage-ID: <b%d@test>\r\n\r\n"
			    "bulk body\r\n", k, k);
			items[i] = (struct archive_item){ .raw = raws[i], .len = (size_t)n,
				.mailboxes = mb, .nmailboxes = 1, .source = "import" };
		}
		ok(archive_ingest_batch(f->a, T, items, 500, res, NULL, &err), &err);
	}
	assert_int_equal(rows(f), MANY);
	four_eyes_off(f);
	set_default(f, 1);

	struct ingester in = { .f = f };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, ingest_thread, &in), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	atomic_store(&in.purging, 1);
	struct archive_purge_result r;
	ok(archive_retention_purge(f->a, T, time(NULL), 0, "test", &r, purge_progress_wait, &in,
	    &err), &err);
	atomic_store(&in.purging, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(th, NULL);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "purged %lld entries in %.2f s; %d ingests and %d searches ran meanwhile\n",
	    r.messages, secs, atomic_load(&in.done_during), atomic_load(&in.searches_during));
	assert_int_equal(in.failed, 0);
	assert_int_equal(r.messages, MANY);
	assert_int_equal(r.blobs, MANY);
	assert_true(atomic_load(&in.done_during) > 0);
	assert_true(atomic_load(&in.searches_during) > 0);
	assert_int_equal(sql_ll(f, "SELECT count(*) FROM messages WHERE mailbox = "
	    "'bulk@acme.example'", 0), 0);
	assert_int_equal(search_total(f, "bulk"), 0);
	assert_true(search_total(f, "during") > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_longest_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recompute_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_repairs_gap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlocked_recompute_lowers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_four_eyes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_shared_blob_and_search, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_during_purge, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
