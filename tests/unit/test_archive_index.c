/*
 * Unit tests for src/archive/archive_index: add/search/delete on a fresh
 * index.db per test with hand-built rows and documents (no parser).
 *
 * With MAILARK_MEASURE=1, test_measure builds a synthetic index of
 * MAILARK_MEASURE_DOCS documents (default 1,000,000; Zipf-distributed words
 * from a 50,000-word vocabulary, ~200 words each) and prints p50/p95 search
 * latencies for a set of query shapes and the index size per document.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_index.h"
#include "archive/archive_parse.h"
#include "archive/archive_query.h"
#include "archive/archive_store.h"
#include "unit_tmp.h"

struct fixture {
	char dir[64];
	char path[128];
	struct archive_index *ix;
};

/* One hand-built message. */
struct spec {
	long long id;
	const char *mailbox, *folder;
	long long date;
	const char *from, *from_addr, *to, *cc, *bcc, *subject, *body, *filenames;
	int has_attachment;
	const char *env_from, *env_rcpts;
};

#define D2019_01_10 1547078400LL
#define D2019_06_01 1559347200LL
#define D2020_02_01 1580515200LL
#define D2018_12_31_END 1546300799LL
#define D2021_05_05 1620172800LL

static const struct spec base[] = {
	{ 1, "alice@x.com", "Inbox", D2019_01_10, "Jane Doe <jane@example.com>",
	  "jane@example.com", "Alice <alice@x.com>", NULL, NULL, "Quarterly report",
	  "Please find the quarterly numbers attached.\n\n  Revenue grew.", "report.pdf", 1,
	  "jane@example.com", "alice@x.com" },
	{ 2, "alice@x.com", "Inbox/Projects", D2019_06_01, "Bob <bob@example.org>",
	  "bob@example.org", "Alice <alice@x.com>", "Carol <carol@example.net>", NULL,
	  "Lunch plans", "Shall we have lunch on friday? zebracorn", NULL, 0, NULL, NULL },
	{ 3, "bob@x.com", "Sent Items", D2020_02_01, "Bob <bob@example.org>", "bob@example.org",
	  "Jane <jane@example.com>", NULL, "secret@hidden.org", "Re: Quarterly report",
	  "Thanks for the report. Draft follows.", NULL, 0, "bob@example.org",
	  "jane@example.com,audit@vault.io" },
	{ 4, "bob@x.com", "Inbox", D2018_12_31_END, "Mallory <mallory@evil.com>",
	  "mallory@evil.com", "Bob <bob@x.com>", NULL, NULL, "Invoice 4411",
	  "Pay this invoice now", "invoice.pdf\nterms.txt", 1, "bounce@evil.com", "bob@x.com" },
	{ 5, "alice@x.com", "Archive", D2021_05_05, "Chef <chef@cafe.fr>", "chef@cafe.fr",
	  "Alice <alice@x.com>", NULL, NULL, "Caf\xc3\xa9 menu", "Na\xc3\xafve caf\xc3\xa9 cr\xc3\xa8me",
	  NULL, 0, NULL, NULL },
};

static void
spec_doc(const struct spec *s, struct archive_row *row, struct archive_doc *doc)
{
	memset(row, 0, sizeof(*row));
	memset(doc, 0, sizeof(*doc));
	row->id = s->id;
	snprintf(row->hash, sizeof(row->hash), "%064lld", s->id);
	row->mailbox = (char *)s->mailbox;
	row->folder = (char *)s->folder;
	row->source = (char *)"inbound";
	row->env_from = (char *)s->env_from;
	row->env_rcpts = (char *)s->env_rcpts;
	row->msg_date = (time_t)s->date;
	row->archived_at = (time_t)s->date;
	row->expires_at = -1;
	doc->date = (time_t)s->date;
	doc->from = (char *)s->from;
	doc->from_addr = (char *)s->from_addr;
	doc->to = (char *)s->to;
	doc->cc = (char *)s->cc;
	doc->bcc = (char *)s->bcc;
	doc->subject = (char *)s->subject;
	doc->body = (char *)s->body;
	doc->filenames = (char *)s->filenames;
	doc->has_attachment = s->has_attachment;
}

static void
ok(int rc, char **errp)
{
	if (rc != 0)
		fail_msg("unexpected error: %s", *errp ? *errp : "(none)");
	assert_null(*errp);
}

static void
add_specs(struct archive_index *ix, const struct spec *specs, size_t n, long long upto)
{
	char *err = NULL;
	ok(archive_index_begin(ix, &err), &err);
	for (size_t i = 0; i < n; i++) {
		struct archive_row row;
		struct archive_doc doc;
		spec_doc(&specs[i], &row, &doc);
		ok(archive_index_add(ix, &row, 1000 + (size_t)specs[i].id, &doc, &err), &err);
	}
	ok(archive_index_commit(ix, upto, &err), &err);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (unit_tmpdir(f->dir, sizeof(f->dir), "test-index") < 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/index.db", f->dir);
	char *err = NULL;
	if (archive_index_open(f->path, &f->ix, &err) < 0) {
		fprintf(stderr, "archive_index_open: %s\n", err);
		return -1;
	}
	add_specs(f->ix, base, sizeof(base) / sizeof(base[0]), 5);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];
	archive_index_close(&f->ix);
	assert_null(f->ix);
	const char *suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Runs a search and compares the ids of the page (a 0-terminated list). */
static void
expect_opts(struct archive_index *ix, const struct archive_search_opts *o, size_t total,
    const long long *ids)
{
	struct archive_results res;
	char *err = NULL;
	if (archive_index_search(ix, o, &res, &err) != 0)
		fail_msg("query '%s': %s", o->query, err);
	size_t n = 0;
	while (ids[n] != 0)
		n++;
	char got[256] = "";
	size_t len = 0;
	for (size_t i = 0; i < res.nhits && len < sizeof(got) - 24; i++)
		len += (size_t)snprintf(got + len, sizeof(got) - len, " %lld", res.hits[i].id);
	if (res.total != total || res.nhits != n)
		fail_msg("query '%s': total %zu hits [%s ], want total %zu and %zu hits", o->query,
		    res.total, got, total, n);
	for (size_t i = 0; i < n; i++)
		if (res.hits[i].id != ids[i])
			fail_msg("query '%s': hits [%s ], hit %zu should be %lld", o->query, got, i,
			    ids[i]);
	archive_results_free(&res);
}

#define EXPECT(ix, q, ...) do { \
		const long long ids_[] = { __VA_ARGS__, 0 }; \
		struct archive_search_opts o_ = { .query = (q) }; \
		expect_opts((ix), &o_, sizeof(ids_) / sizeof(ids_[0]) - 1, ids_); \
	} while (0)
#define EXPECT_NONE(ix, q) do { \
		const long long ids_[] = { 0 }; \
		struct archive_search_opts o_ = { .query = (q) }; \
		expect_opts((ix), &o_, 0, ids_); \
	} while (0)

static void
test_fields(void **state)
{
	struct fixture *f = *state;
	EXPECT(f->ix, "from:jane", 1);
	EXPECT(f->ix, "from:\"Jane Doe\"", 1);
	EXPECT(f->ix, "from:bounce@evil.com", 4);       /* envelope sender */
	EXPECT(f->ix, "from:bob@example.org", 3, 2);
	EXPECT(f->ix, "to:secret@hidden.org", 3);       /* Bcc */
	EXPECT(f->ix, "to:audit@vault.io", 3);          /* envelope recipient */
	EXPECT(f->ix, "to:carol", 2);                   /* to: includes Cc */
	EXPECT(f->ix, "cc:carol", 2);
	EXPECT_NONE(f->ix, "cc:alice");
	EXPECT(f->ix, "subject:quarterly", 3, 1);
	EXPECT_NONE(f->ix, "subject:revenue");
	EXPECT(f->ix, "filename:invoice", 4);
	EXPECT(f->ix, "filename:terms.txt", 4);
	EXPECT(f->ix, "pdf", 1, 4);                     /* free text sees attachment names */
	EXPECT_NONE(f->ix, "jane");                     /* ... but not addresses */
	EXPECT(f->ix, "REVENUE", 1);
	EXPECT(f->ix, "cafe", 5);                       /* diacritics removed */
	EXPECT(f->ix, "Naive", 5);
	EXPECT(f->ix, "quart*", 3, 1);
	EXPECT(f->ix, "has:attachment", 1, 4);
	EXPECT(f->ix, "mailbox:BOB@X.COM", 3, 4);
}

static void
test_boolean(void **state)
{
	struct fixture *f = *state;
	EXPECT(f->ix, "\"quarterly numbers\"", 1);
	EXPECT_NONE(f->ix, "\"numbers quarterly\"");
	EXPECT(f->ix, "quarterly report", 3, 1);
	EXPECT(f->ix, "quarterly -draft", 1);
	EXPECT(f->ix, "quarterly AND NOT draft", 1);
	EXPECT(f->ix, "lunch OR invoice", 2, 4);
	EXPECT(f->ix, "(lunch OR invoice) has:attachment", 4);
	EXPECT(f->ix, "-quarterly", 5, 2, 4);
	EXPECT(f->ix, "-quarterly -has:attachment", 5, 2);
	EXPECT(f->ix, "from:bob OR folder:archive", 5, 3, 2);
	EXPECT(f->ix, "(from:bob -lunch) OR (cafe mailbox:alice@x.com)", 5, 3);
	EXPECT(f->ix, "NOT (lunch OR invoice OR cafe)", 3, 1);
	EXPECT(f->ix, "*", 5, 3, 2, 1, 4);
}

static void
test_dates_and_folders(void **state)
{
	struct fixture *f = *state;
	EXPECT(f->ix, "after:2019 before:2020", 2, 1);
	EXPECT(f->ix, "before:2019", 4);                /* 23:59:59 on Dec 31 */
	EXPECT(f->ix, "after:2019-06-01", 5, 3, 2);     /* inclusive */
	EXPECT(f->ix, "before:2019-06-01", 1, 4);       /* exclusive */
	EXPECT(f->ix, "after:2019-01 before:2019-02 quarterly", 1);
	EXPECT(f->ix, "folder:inbox", 2, 1, 4);         /* with the subfolder */
	EXPECT(f->ix, "folder:\"Inbox/Projects\"", 2);
	EXPECT(f->ix, "folder:Inbox/", 2, 1, 4);
	EXPECT(f->ix, "folder:Sent*", 3);
	EXPECT(f->ix, "folder:in*", 2, 1, 4);
	EXPECT_NONE(f->ix, "folder:Inb");
	EXPECT_NONE(f->ix, "folder:Inbox/Proj");
}

static void
test_mailbox_restriction(void **state)
{
	struct fixture *f = *state;
	const char *const alice[] = { "Alice@X.com" };
	const char *const both[] = { "alice@x.com", "bob@x.com" };
	struct archive_search_opts o = { .query = "*", .mailboxes = alice, .nmailboxes = 1 };
	expect_opts(f->ix, &o, 3, (const long long[]){ 5, 2, 1, 0 });
	o.query = "report";
	expect_opts(f->ix, &o, 1, (const long long[]){ 1, 0 });
	o.query = "from:bob";
	expect_opts(f->ix, &o, 1, (const long long[]){ 2, 0 });
	o.query = "mailbox:bob@x.com";
	expect_opts(f->ix, &o, 0, (const long long[]){ 0 });
	o.mailboxes = both;
	o.nmailboxes = 2;
	o.query = "report";
	expect_opts(f->ix, &o, 2, (const long long[]){ 3, 1, 0 });
}

static void
test_hits_and_snippets(void **state)
{
	struct fixture *f = *state;
	struct archive_search_opts o = { .query = "revenue OR lunch" };
	struct archive_results res;
	char *err = NULL;
	ok(archive_index_search(f->ix, &o, &res, &err), &err);
	assert_int_equal(res.nhits, 2);
	struct archive_hit *h = &res.hits[1];
	assert_int_equal(h->id, 1);
	assert_string_equal(h->hash, "0000000000000000000000000000000000000000000000000000000000000001");
	assert_string_equal(h->mailbox, "alice@x.com");
	assert_string_equal(h->folder, "Inbox");
	assert_string_equal(h->from, "jane@example.com");
	assert_string_equal(h->subject, "Quarterly report");
	assert_int_equal(h->date, D2019_01_10);
	assert_int_equal(h->size, 1001);
	assert_int_equal(h->has_attachment, 1);
	assert_string_equal(h->snippet,
	    "Please find the quarterly numbers attached. [Revenue] grew.");
	assert_string_equal(res.hits[0].snippet, "Shall we have [lunch] on friday? zebracorn");
	archive_results_free(&res);

	o.query = "from:jane";                  /* no free-text word: plain preview */
	ok(archive_index_search(f->ix, &o, &res, &err), &err);
	assert_string_equal(res.hits[0].snippet,
	    "Please find the quarterly numbers attached. Revenue grew.");
	archive_results_free(&res);

	o.ids_only = 1;
	o.query = "*";
	ok(archive_index_search(f->ix, &o, &res, &err), &err);
	assert_int_equal(res.nhits, 5);
	assert_null(res.hits[0].snippet);
	archive_results_free(&res);

	o.ids_only = 0;
	o.query = "form:jane";
	assert_int_equal(archive_index_search(f->ix, &o, &res, &err), -1);
	assert_string_equal(err, "unknown field 'form' (at 1)");
	free(err);
	err = NULL;
	o.query = "";
	assert_int_equal(archive_index_search(f->ix, &o, &res, &err), -1);
	assert_string_equal(err, "empty query");
	free(err);
}

/* 60 "bulk" documents with dates unrelated to their ids, 2 per second. */
static void
add_bulk(struct archive_index *ix)
{
	struct spec s[60];
	for (int i = 0; i < 60; i++) {
		s[i] = (struct spec){ .id = 100 + i, .mailbox = "c@x.com", .folder = "Bulk",
		    .date = 1600000000LL + (i * 37 % 60) / 2, .subject = "bulk mail",
		    .body = "bulk body" };
	}
	add_specs(ix, s, 60, 159);
}

/* Is the page newest first (date, then id)? */
static void
check_order(const struct archive_results *res)
{
	for (size_t i = 1; i < res->nhits; i++) {
		const struct archive_hit *a = &res->hits[i - 1], *b = &res->hits[i];
		assert_true(a->date > b->date || (a->date == b->date && a->id > b->id));
	}
}

static void
test_paging(void **state)
{
	struct fixture *f = *state;
	add_bulk(f->ix);
	struct archive_search_opts o = { .query = "bulk" };
	struct archive_results res, res2;
	char *err = NULL;
	ok(archive_index_search(f->ix, &o, &res, &err), &err);
	assert_int_equal(res.total, 60);
	assert_int_equal(res.nhits, 50);                /* default limit */
	check_order(&res);
	o.offset = 50;
	ok(archive_index_search(f->ix, &o, &res2, &err), &err);
	assert_int_equal(res2.total, 60);
	assert_int_equal(res2.nhits, 10);
	check_order(&res2);
	assert_true(res.hits[49].date > res2.hits[0].date ||
	    (res.hits[49].date == res2.hits[0].date && res.hits[49].id > res2.hits[0].id));
	archive_results_free(&res2);

	/* Small pages take the date-scan path: same order as the big page. */
	o.limit = 5;
	for (size_t off = 0; off < 60; off += 5) {
		o.offset = off;
		ok(archive_index_search(f->ix, &o, &res2, &err), &err);
		assert_int_equal(res2.nhits, 5);
		for (size_t i = 0; i < 5 && off + i < 50; i++)
			assert_int_equal(res2.hits[i].id, res.hits[off + i].id);
		archive_results_free(&res2);
	}
	archive_results_free(&res);

	o.offset = 100;
	expect_opts(f->ix, &o, 60, (const long long[]){ 0 });
	o.query = "*";
	o.offset = 0;
	o.limit = 5000;                                 /* capped at 1000 */
	ok(archive_index_search(f->ix, &o, &res, &err), &err);
	assert_int_equal(res.total, 65);
	assert_int_equal(res.nhits, 65);
	check_order(&res);
	archive_results_free(&res);
	o.ids_only = 1;
	o.limit = 3;
	o.offset = 1;
	ok(archive_index_search(f->ix, &o, &res, &err), &err);
	assert_int_equal(res.nhits, 3);
	archive_results_free(&res);
}

/* count(*) of a raw MATCH on FTS table `table`, without the docs join. */
static long long
fts_count_in(const char *path, const char *table, const char *match)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE %s MATCH ?", table, table);
	sqlite3 *db;
	sqlite3_stmt *st;
	long long n = -1;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static long long
fts_count(const char *path, const char *match)
{
	return fts_count_in(path, "fts", match);
}

static void
test_delete(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct archive_row row;
	struct archive_doc doc;
	assert_int_equal(fts_count(f->path, "zebracorn"), 1);
	assert_int_equal(fts_count_in(f->path, "fta", "audit"), 1);
	assert_int_equal(fts_count(f->path, "{subject body} : \"quarterly\""), 2);
	ok(archive_index_begin(f->ix, &err), &err);
	spec_doc(&base[1], &row, &doc);
	ok(archive_index_delete(f->ix, 2, &doc, &err), &err);
	spec_doc(&base[2], &row, &doc);
	ok(archive_index_delete(f->ix, 3, &doc, &err), &err);
	ok(archive_index_delete(f->ix, 999, &doc, &err), &err);   /* absent: fine */
	ok(archive_index_commit(f->ix, -1, &err), &err);
	assert_int_equal(archive_index_indexed_upto(f->ix), 5);
	EXPECT_NONE(f->ix, "zebracorn");
	assert_int_equal(fts_count(f->path, "zebracorn"), 0);
	assert_int_equal(fts_count_in(f->path, "fta", "audit"), 0);   /* envelope text removed too */
	assert_int_equal(fts_count_in(f->path, "fta", "sender : bob"), 0);
	assert_int_equal(fts_count_in(f->path, "fta", "jane"), 1);    /* doc 1 only */
	EXPECT(f->ix, "quarterly", 1);                  /* shared tokens intact */
	EXPECT(f->ix, "from:jane", 1);
	EXPECT(f->ix, "*", 5, 1, 4);
	assert_int_equal(archive_index_count(f->ix), 3);

	/* Re-adding works; adding twice does not duplicate. */
	add_specs(f->ix, &base[1], 1, 5);
	add_specs(f->ix, &base[1], 1, 5);
	EXPECT(f->ix, "zebracorn", 2);
	assert_int_equal(fts_count(f->path, "zebracorn"), 1);
}

static void
test_reset_and_upto(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	assert_int_equal(archive_index_indexed_upto(f->ix), 5);
	ok(archive_index_begin(f->ix, &err), &err);
	ok(archive_index_commit(f->ix, 42, &err), &err);
	assert_int_equal(archive_index_indexed_upto(f->ix), 42);

	/* A rolled-back transaction leaves nothing. */
	ok(archive_index_begin(f->ix, &err), &err);
	struct archive_row row;
	struct archive_doc doc;
	struct spec s = base[0];
	s.id = 77;
	s.body = "rollbackword";
	spec_doc(&s, &row, &doc);
	ok(archive_index_add(f->ix, &row, 1, &doc, &err), &err);
	archive_index_rollback(f->ix);
	EXPECT_NONE(f->ix, "rollbackword");
	assert_int_equal(archive_index_indexed_upto(f->ix), 42);

	ok(archive_index_reset(f->ix, &err), &err);
	assert_int_equal(archive_index_indexed_upto(f->ix), 0);
	assert_int_equal(archive_index_count(f->ix), 0);
	EXPECT_NONE(f->ix, "*");
	assert_int_equal(fts_count(f->path, "quarterly"), 0);

	/* Survives close and reopen. */
	add_specs(f->ix, base, 2, 2);
	archive_index_close(&f->ix);
	ok(archive_index_open(f->path, &f->ix, &err), &err);
	assert_int_equal(archive_index_indexed_upto(f->ix), 2);
	EXPECT(f->ix, "*", 2, 1);
}

/* A second connection (the core's reader) searches while the writer holds a
 * write transaction, and sees only committed data. */
static void
test_reader_connection(void **state)
{
	struct fixture *f = *state;
	struct archive_index *rd;
	char *err = NULL;
	ok(archive_index_open(f->path, &rd, &err), &err);
	ok(archive_index_begin(f->ix, &err), &err);
	struct archive_row row;
	struct archive_doc doc;
	struct spec s = base[0];
	s.id = 6;
	s.body = "uncommittedword";
	spec_doc(&s, &row, &doc);
	ok(archive_index_add(f->ix, &row, 1, &doc, &err), &err);
	EXPECT_NONE(rd, "uncommittedword");
	EXPECT(rd, "quarterly", 3, 1);
	struct archive_index *rd2;
	ok(archive_index_open(f->path, &rd2, &err), &err);   /* open during a write txn */
	archive_index_close(&rd2);
	ok(archive_index_commit(f->ix, 6, &err), &err);
	EXPECT(rd, "uncommittedword", 6);
	assert_int_equal(archive_index_indexed_upto(rd), 6);
	archive_index_close(&rd);
}

static void
test_open_garbage(void **state)
{
	char dir[64];
	char path[128];
	assert_int_equal(unit_tmpdir(dir, sizeof(dir), "test-index"), 0);
	snprintf(path, sizeof(path), "%s/index.db", dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fputs("this is not a database file at all ", fp);
	fclose(fp);
	struct archive_index *ix = NULL;
	char *err = NULL;
	assert_int_equal(archive_index_open(path, &ix, &err), -1);
	assert_null(ix);
	assert_non_null(err);
	free(err);
	unlink(path);
	rmdir(dir);
}


/* ------------------------------------------------ meta tokens vs. brute force */

static uint64_t rng(void);
static uint64_t rng_state;

static const char *const mf_folders[] = { "Inbox", "inbox/Sub", "INBOX/sub/deep", "Sent Items",
	"100%_off", "Zeta/zz", "Caf\xc3\xa9", "a//b", "/lead", "Inbox/", "" };
static const char *const mf_mboxes[] = { "a@x.com", "b@x.com", "", "zz@y.org" };
static const long long mf_dates[] = {
	1577836799, 1577836800, 1577836801,     /* around 2020-01-01 */
	1582934399, 1582934400, 1583020800,     /* 2020-02-28 end, 02-29, 03-01 */
	-1, 0, -2208988801LL,                   /* 1969-12-31 23:59:59, epoch, 1899-12-31 */
	1262304000, 1420070399, 1735689599,     /* 2010-01-01, 2014 end, 2024 end */
};

struct mf_doc {
	const char *folder, *mailbox;
	long long date;
	int att, alpha;
};

/* folder:x (x without trailing '/') as the docs predicate defines it. */
static int
mf_folder_match(const char *folder, const char *x)
{
	size_t n = strlen(x);
	while (n > 0 && x[n - 1] == '/')
		n--;
	return strncasecmp(folder, x, n) == 0 && (folder[n] == '\0' || folder[n] == '/');
}

static void
mf_build(struct archive_index *ix, struct mf_doc *d, size_t n, int far)
{
	char *err = NULL;
	ok(archive_index_begin(ix, &err), &err);
	for (size_t i = 0; i < n; i++) {
		d[i].folder = mf_folders[rng() % (sizeof(mf_folders) / sizeof(mf_folders[0]))];
		d[i].mailbox = mf_mboxes[rng() % 4];
		size_t nd = sizeof(mf_dates) / sizeof(mf_dates[0]);
		d[i].date = i % 3 == 0 ? mf_dates[rng() % nd] :
		    1262304000LL + (long long)(rng() % 473385600ULL);
		if (far && i == 7)
			d[i].date = 400000000000LL;     /* year > 9999: date filters fall back */
		d[i].att = rng() % 4 == 0;
		d[i].alpha = rng() % 2;
		struct spec sp = { .id = (long long)i + 1, .mailbox = d[i].mailbox,
		    .folder = d[i].folder, .date = d[i].date, .subject = "s",
		    .body = d[i].alpha ? "alpha zqa zqfinbox" : "beta", .has_attachment = d[i].att };
		struct archive_row row;
		struct archive_doc doc;
		spec_doc(&sp, &row, &doc);
		ok(archive_index_add(ix, &row, 10, &doc, &err), &err);
	}
	ok(archive_index_commit(ix, (long long)n, &err), &err);
}

enum mf_kind { MF_FOLDER, MF_MBOX, MF_AFTER, MF_BEFORE, MF_RANGE, MF_HAS };

static int
mf_filter(const struct mf_doc *d, enum mf_kind k, const char *v, long long t1, long long t2)
{
	switch (k) {
	case MF_FOLDER: return mf_folder_match(d->folder, v);
	case MF_MBOX: return strcmp(d->mailbox, v) == 0;
	case MF_AFTER: return d->date >= t1;
	case MF_BEFORE: return d->date < t1;
	case MF_RANGE: return d->date >= t1 && d->date < t2;
	default: return d->att;
	}
}

/* Runs q (ids only, all hits) and compares with the brute-force list:
 * mode 0 filter, 1 alpha AND filter, 2 alpha AND NOT filter. */
static void
mf_check(struct archive_index *ix, const struct mf_doc *d, size_t n, const char *q, int mode,
    enum mf_kind k, const char *v, long long t1, long long t2)
{
	struct archive_search_opts o = { .query = q, .ids_only = 1 };
	struct archive_results res;
	char *err = NULL;
	if (archive_index_search(ix, &o, &res, &err) != 0)
		fail_msg("query '%s': %s", q, err);
	size_t want = 0;
	unsigned char *in = calloc(n + 1, 1);
	for (size_t i = 0; i < n; i++) {
		int f = mf_filter(&d[i], k, v, t1, t2);
		int m = mode == 0 ? f : mode == 1 ? d[i].alpha && f : d[i].alpha && !f;
		want += (size_t)m;
		in[i + 1] = (unsigned char)m;
	}
	if (res.total != want || res.nhits != want)
		fail_msg("query '%s': total %zu hits %zu, want %zu", q, res.total, res.nhits, want);
	for (size_t i = 0; i < res.nhits; i++) {
		if (!in[res.hits[i].id])
			fail_msg("query '%s': %lld should not match", q, res.hits[i].id);
		if (i > 0 && (res.hits[i].date > res.hits[i - 1].date ||
		    (res.hits[i].date == res.hits[i - 1].date && res.hits[i].id > res.hits[i - 1].id)))
			fail_msg("query '%s': not newest first at %zu", q, i);
	}
	free(in);
	/* A page (whichever plan fetches it) is the same slice of that order. */
	struct archive_search_opts po = { .query = q, .offset = 3, .limit = 20 };
	struct archive_results page;
	if (archive_index_search(ix, &po, &page, &err) != 0)
		fail_msg("query '%s': %s", q, err);
	assert_int_equal(page.total, want);
	size_t pn = want > 3 ? (want - 3 < 20 ? want - 3 : 20) : 0;
	if (page.nhits != pn)
		fail_msg("query '%s': page of %zu hits, want %zu", q, page.nhits, pn);
	for (size_t i = 0; i < pn; i++)
		if (page.hits[i].id != res.hits[i + 3].id)
			fail_msg("query '%s': page hit %zu is %lld, want %lld", q, i, page.hits[i].id,
			    res.hits[i + 3].id);
	archive_results_free(&page);
	archive_results_free(&res);
}

static void
mf_run(struct archive_index *ix, const struct mf_doc *d, size_t n)
{
	static const char *const fq[] = { "Inbox", "inbox", "INBOX/SUB", "Inbox/", "inbox/sub/deep",
		"Sent Items", "sent items/", "100%_off", "100", "Zeta", "zeta/zz", "Caf\xc3\xa9",
		"caf\xc3\x89", "a", "a/", "a//b", "/lead", "lead", "Inbox/Sub/Deep/x" };
	static const char *const days[] = { "2020-01-01", "2020-01-02", "2019-12-31", "2020-02-29",
		"2020-03-01", "1970-01-01", "1969-12-31", "1900-01-01", "2010", "2014-06", "2024-12-31",
		"2025", "2017-03-15" };
	static const char *const pre[3] = { "", "alpha ", "alpha -" };
	char q[160];
	for (int mode = 0; mode < 3; mode++) {
		for (size_t i = 0; i < sizeof(fq) / sizeof(fq[0]); i++) {
			snprintf(q, sizeof(q), "%sfolder:\"%s\"", pre[mode], fq[i]);
			mf_check(ix, d, n, q, mode, MF_FOLDER, fq[i], 0, 0);
		}
		for (size_t i = 0; i < 4; i++) {
			snprintf(q, sizeof(q), "%smailbox:\"%s\"", pre[mode], mf_mboxes[i]);
			if (mf_mboxes[i][0] != '\0')
				mf_check(ix, d, n, q, mode, MF_MBOX, mf_mboxes[i], 0, 0);
		}
		snprintf(q, sizeof(q), "%shas:attachment", pre[mode]);
		mf_check(ix, d, n, q, mode, MF_HAS, NULL, 0, 0);
		for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
			struct archive_qsql s;
			char *err = NULL, dq[40];
			snprintf(dq, sizeof(dq), "after:%s", days[i]);
			ok(archive_query_compile(dq, &s, &err), &err);
			long long t1 = s.params[0].i;
			archive_qsql_free(&s);
			snprintf(q, sizeof(q), "%safter:%s", pre[mode], days[i]);
			mf_check(ix, d, n, q, mode, MF_AFTER, NULL, t1, 0);
			snprintf(q, sizeof(q), "%sbefore:%s", pre[mode], days[i]);
			mf_check(ix, d, n, q, mode, MF_BEFORE, NULL, t1, 0);
			if (mode == 2)
				continue;
			for (size_t j = 0; j < sizeof(days) / sizeof(days[0]); j++) {
				snprintf(dq, sizeof(dq), "after:%s", days[j]);
				ok(archive_query_compile(dq, &s, &err), &err);
				long long t2 = s.params[0].i;
				archive_qsql_free(&s);
				snprintf(q, sizeof(q), "%safter:%s before:%s", pre[mode], days[i], days[j]);
				mf_check(ix, d, n, q, mode, MF_RANGE, NULL, t1, t2);
			}
		}
	}
}

/* Folder, mailbox, date and attachment filters (meta tokens in FTS, or the
 * docs predicates where tokens cannot serve) give exactly the brute-force
 * results, alone, AND-ed with a word and negated; words that look like meta
 * tokens never match them. */
static void
test_meta_filters(void **state)
{
	uint64_t saved = rng_state;     /* test_measure's queries stay the same */
	for (int far = 0; far < 2; far++) {
		char dir[64], path[128];
		assert_int_equal(unit_tmpdir(dir, sizeof(dir), "test-index"), 0);
		snprintf(path, sizeof(path), "%s/index.db", dir);
		struct archive_index *ix;
		char *err = NULL;
		ok(archive_index_open(path, &ix, &err), &err);
		struct mf_doc d[300];
		mf_build(ix, d, 300, far);
		mf_run(ix, d, 300);
		/* the body says "zqa zqfinbox": text, not the attachment/folder tokens */
		size_t alpha = 0;
		for (size_t i = 0; i < 300; i++)
			alpha += (size_t)d[i].alpha;
		struct archive_search_opts o = { .query = "zqa", .ids_only = 1 };
		struct archive_results res;
		ok(archive_index_search(ix, &o, &res, &err), &err);
		assert_int_equal(res.total, alpha);
		archive_results_free(&res);
		o.query = "zqy2020 OR zqb* OR zqm*";
		ok(archive_index_search(ix, &o, &res, &err), &err);
		assert_int_equal(res.total, 0);
		archive_results_free(&res);
		archive_index_close(&ix);
		char p[160];
		const char *suffix[] = { "", "-wal", "-shm" };
		for (size_t i = 0; i < 3; i++) {
			snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
			unlink(p);
		}
		rmdir(dir);
	}
	rng_state = saved;
}

struct pl_doc {
	long long id, date;
};

static int
pl_cmp(const void *a, const void *b)
{
	const struct pl_doc *x = a, *y = b;
	if (x->date != y->date)
		return x->date > y->date ? -1 : 1;
	return x->id > y->id ? -1 : x->id < y->id;
}

/* Many matches (the page probes FTS per docs row) as well as few: the page is
 * the newest first slice either way. */
static void
test_dense_page(void **state)
{
	struct fixture *f = *state;
	enum { N = 12000 };
	struct pl_doc *all = calloc(N, sizeof(*all)), *odd = calloc(N, sizeof(*odd));
	size_t nodd = 0;
	uint64_t saved = rng_state;     /* test_measure's queries stay the same */
	char *err = NULL;
	ok(archive_index_begin(f->ix, &err), &err);
	for (long long i = 0; i < N; i++) {
		long long id = 100 + i;
		long long date = 1262304000LL + (long long)(rng() % 31536000ULL) * 10;
		struct spec sp = { .id = id, .mailbox = "m", .folder = "f", .date = date,
		    .subject = "s", .body = i % 7 == 0 ? "common odd" : "common" };
		struct archive_row row;
		struct archive_doc doc;
		spec_doc(&sp, &row, &doc);
		ok(archive_index_add(f->ix, &row, 10, &doc, &err), &err);
		all[i] = (struct pl_doc){ id, date };
		if (i % 7 == 0)
			odd[nodd++] = all[i];
	}
	ok(archive_index_commit(f->ix, 100 + N, &err), &err);
	qsort(all, N, sizeof(*all), pl_cmp);
	qsort(odd, nodd, sizeof(*odd), pl_cmp);
	const char *qs[] = { "common", "odd common", "common after:2012 before:2013-06-10" };
	for (size_t k = 0; k < 3; k++) {
		struct pl_doc *want = k == 1 ? odd : all;
		size_t nwant = k == 1 ? nodd : N;
		if (k == 2) {
			nwant = 0;
			for (size_t i = 0; i < N; i++)
				if (all[i].date >= 1325376000LL && all[i].date < 1370822400LL)
					all[nwant++] = all[i];    /* in place: still sorted */
		}
		struct archive_search_opts o = { .query = qs[k], .offset = 10, .limit = 50 };
		struct archive_results res;
		ok(archive_index_search(f->ix, &o, &res, &err), &err);
		assert_int_equal(res.total, nwant);
		assert_int_equal(res.nhits, 50);
		for (size_t i = 0; i < 50; i++)
			if (res.hits[i].id != want[i + 10].id)
				fail_msg("query '%s': hit %zu is %lld, want %lld", qs[k], i,
				    res.hits[i].id, want[i + 10].id);
		archive_results_free(&res);
	}
	free(all);
	free(odd);
	rng_state = saved;
}

/* An index of the previous schema version is refused with a clear error
 * (the core then sets it aside and rebuilds it from the store). */
static void
test_old_version(void **state)
{
	struct fixture *f = *state;
	archive_index_close(&f->ix);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	char *err = NULL;
	assert_int_equal(archive_index_open(f->path, &f->ix, &err), -1);
	assert_null(f->ix);
	assert_non_null(strstr(err, "index schema version 1 is outdated"));
	free(err);
}

/* ------------------------------------------------------------- measure */

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

#define VOCAB 50000

/* Word i of the synthetic vocabulary ("w" + base-26 letters). */
static void
vocab_word(unsigned i, char *out)
{
	size_t n = 0;
	out[n++] = 'w';
	do {
		out[n++] = (char)('a' + i % 26);
		i /= 26;
	} while (i > 0);
	out[n] = '\0';
}

static double *zipf_cdf;

static unsigned
zipf_pick(void)
{
	double u = (double)(rng() >> 11) / 9007199254740992.0;
	unsigned lo = 0, hi = VOCAB - 1;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (zipf_cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
measure_build(struct archive_index *ix, long long ndocs)
{
	char *err = NULL;
	char word[16];
	struct { char *p; size_t len, cap; } body = { malloc(8192), 0, 8192 };
	static const char *const folders[] = { "Inbox", "Inbox/Projects", "Sent Items", "Archive" };
	for (long long id = 1; id <= ndocs; id++) {
		if ((id - 1) % 20000 == 0)
			ok(archive_index_begin(ix, &err), &err);
		body.len = 0;
		for (int w = 0; w < 200; w++) {
			vocab_word(zipf_pick(), word);
			body.len += (size_t)snprintf(body.p + body.len, body.cap - body.len, "%s ", word);
		}
		char from[64], to[64], subject[64], mbox[32];
		snprintf(from, sizeof(from), "User %u <user%u@example.com>", (unsigned)(rng() % 5000),
		    (unsigned)(rng() % 5000));
		snprintf(mbox, sizeof(mbox), "user%u@example.com", (unsigned)(rng() % 1000));
		snprintf(to, sizeof(to), "<%s>", mbox);
		vocab_word(zipf_pick(), word);
		snprintf(subject, sizeof(subject), "Subject %s", word);
		struct spec s = { .id = id, .mailbox = mbox, .folder = folders[rng() % 4],
		    .date = 1262304000LL + (long long)(rng() % 441504000ULL), .from = from,
		    .from_addr = from, .to = to, .subject = subject, .body = body.p,
		    .has_attachment = rng() % 5 == 0 };
		struct archive_row row;
		struct archive_doc doc;
		spec_doc(&s, &row, &doc);
		ok(archive_index_add(ix, &row, 5000, &doc, &err), &err);
		if (id % 20000 == 0 || id == ndocs) {
			ok(archive_index_commit(ix, id, &err), &err);
			if (id % 200000 == 0)
				fprintf(stderr, "measure: %lld documents\n", id);
		}
	}
	free(body.p);
}

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct shape {
	const char *name;
	const char *fmt;          /* %s = a word of the given rank band */
	unsigned rank_lo, rank_hi;
	int restrict_mbox;
	int numeric;              /* %s = a number in [rank_lo, rank_hi] */
};

static void
measure_shape(const char *path, const struct shape *sh, int runs)
{
	double *t = calloc((size_t)runs, sizeof(double));
	size_t totals = 0;
	char q[256], w1[16], w2[16], mbox[32];
	for (int r = 0; r < runs; r++) {
		unsigned span = sh->rank_hi - sh->rank_lo + 1;
		vocab_word(sh->rank_lo + (unsigned)(rng() % span), w1);
		vocab_word(sh->rank_lo + (unsigned)(rng() % span), w2);
		if (sh->numeric)
			snprintf(w1, sizeof(w1), "%u", sh->rank_lo + (unsigned)(rng() % span));
		snprintf(q, sizeof(q), sh->fmt, w1, w2);
		snprintf(mbox, sizeof(mbox), "user%u@example.com", (unsigned)(rng() % 1000));
		const char *mboxes[1] = { mbox };
		struct archive_search_opts o = { .query = q, .mailboxes = mboxes,
		    .nmailboxes = sh->restrict_mbox ? 1 : 0 };
		struct archive_results res;
		char *err = NULL;
		/* A fresh reader per search, as the core does. */
		double t0 = now_ms();
		struct archive_index *ix;
		ok(archive_index_open(path, &ix, &err), &err);
		ok(archive_index_search(ix, &o, &res, &err), &err);
		archive_index_close(&ix);
		t[r] = now_ms() - t0;
		totals += res.total;
		archive_results_free(&res);
	}
	qsort(t, (size_t)runs, sizeof(double), cmp_double);
	printf("measure: %-28s p50 %7.2f ms  p95 %7.2f ms  max %7.2f ms  avg total %zu\n",
	    sh->name, t[runs / 2], t[(runs * 95) / 100], t[runs - 1], totals / (size_t)runs);
	free(t);
}

static void
test_measure(void **state)
{
	const char *m = getenv("MAILARK_MEASURE");
	if (m == NULL || strcmp(m, "1") != 0)
		skip();
	const char *nd = getenv("MAILARK_MEASURE_DOCS");
	long long ndocs = nd != NULL ? atoll(nd) : 1000000;
	const char *keep = getenv("MAILARK_MEASURE_PATH");    /* reuse a built index */
	char dir[64], path[160];
	if (keep != NULL)
		snprintf(path, sizeof(path), "%s", keep);
	else {
		assert_int_equal(unit_tmpdir(dir, sizeof(dir), "measure"), 0);
		snprintf(path, sizeof(path), "%s/index.db", dir);
	}
	zipf_cdf = malloc(VOCAB * sizeof(double));
	double sum = 0;
	for (unsigned i = 0; i < VOCAB; i++)
		sum += 1.0 / (i + 1);
	double acc = 0;
	for (unsigned i = 0; i < VOCAB; i++) {
		acc += 1.0 / (i + 1) / sum;
		zipf_cdf[i] = acc;
	}
	struct archive_index *ix;
	char *err = NULL;
	ok(archive_index_open(path, &ix, &err), &err);
	if (archive_index_count(ix) < ndocs) {
		double t0 = now_ms();
		ok(archive_index_reset(ix, &err), &err);
		measure_build(ix, ndocs);
		printf("measure: built %lld documents in %.1f s\n", ndocs, (now_ms() - t0) / 1000);
	}
	archive_index_close(&ix);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	printf("measure: index %lld bytes, %.0f bytes per document\n", (long long)st.st_size,
	    (double)st.st_size / (double)ndocs);
	static const struct shape shapes[] = {
		{ "common word", "%s", 0, 9, 0, 0 },
		{ "mid word", "%s", 100, 999, 0, 0 },
		{ "rare word", "%s", 20000, 49999, 0, 0 },
		{ "two common words", "%s %s", 0, 50, 0, 0 },
		{ "phrase (top-20 words)", "\"%s %s\"", 0, 20, 0, 0 },
		{ "phrase (mid words)", "\"%s %s\"", 20, 300, 0, 0 },
		{ "subject: word", "subject:%s", 0, 100, 0, 0 },
		{ "prefix", "%s*", 30, 60, 0, 0 },
		{ "from: address", "from:user%s@example.com", 0, 4999, 0, 1 },
		{ "date range + word", "after:2014-01 before:2014-07 %s", 50, 500, 0, 0 },
		{ "OR", "%s OR %s", 200, 2000, 0, 0 },
		{ "NOT", "%s -%s", 0, 30, 0, 0 },
		{ "folder: + word", "folder:inbox %s", 50, 500, 0, 0 },
		{ "folder: + rare word", "folder:\"Sent Items\" %s", 5000, 20000, 0, 0 },
		{ "mailbox-restricted *", "*", 0, 0, 1, 0 },
		{ "mailbox-restricted common", "%s", 0, 9, 1, 0 },
		{ "mailbox-restricted rare", "%s", 5000, 20000, 1, 0 },
		{ "everything *", "*", 0, 0, 0, 0 },
	};
	const char *only = getenv("MAILARK_MEASURE_ONLY");     /* substring of shape names */
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		if (only == NULL || strstr(shapes[i].name, only) != NULL)
			measure_shape(path, &shapes[i], 30);
	free(zipf_cdf);
	if (keep == NULL) {
		char p[200];
		const char *suffix[] = { "", "-wal", "-shm" };
		for (size_t i = 0; i < 3; i++) {
			snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
			unlink(p);
		}
		rmdir(dir);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_boolean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dates_and_folders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_restriction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hits_and_snippets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_and_upto, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_connection, setup, teardown),
		cmocka_unit_test(test_open_garbage),
		cmocka_unit_test(test_meta_filters),
		cmocka_unit_test_setup_teardown(test_old_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dense_page, setup, teardown),
		cmocka_unit_test(test_measure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
