/*
 * Unit tests for src/archive/archive_query: the search language parser, its
 * error messages, the exact SQL and FTS5 MATCH strings it produces, and that
 * hostile input (quotes, FTS5 operators, SQL) always stays plain text and
 * yields SQL that SQLite accepts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_query.h"

#define TXT ""
#define IN_FTS "docs.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)"
#define IN_FTA "docs.id IN (SELECT rowid FROM fta WHERE fta MATCH ?)"

static void
compiles(const char *q, struct archive_qsql *s)
{
	char *err = NULL;
	int rc = archive_query_compile(q, s, &err);
	if (rc != 0)
		fail_msg("query '%s' refused: %s", q, err);
	assert_null(err);
}

static void
refused(const char *q, const char *needle)
{
	struct archive_qsql s;
	char *err = NULL;
	int rc = archive_query_compile(q, &s, &err);
	if (rc != -1)
		fail_msg("query '%s' accepted: where=%s", q, s.where);
	assert_non_null(err);
	if (strstr(err, needle) == NULL)
		fail_msg("query '%s': error '%s' does not mention '%s'", q, err, needle);
	assert_null(s.where);
	free(err);
}

/* A pure FTS query: where is the one IN, the single parameter is the MATCH. */
static void
pure_match_in(const char *q, const char *match, const char *where)
{
	struct archive_qsql s;
	compiles(q, &s);
	assert_non_null(s.match);
	if (strcmp(s.match, match) != 0)
		fail_msg("query '%s': match\n  got  %s\n  want %s", q, s.match, match);
	assert_string_equal(s.where, where);
	assert_string_equal(s.match_table, strstr(where, "fta") ? "fta" : "fts");
	assert_int_equal(s.nparams, 1);
	assert_string_equal(s.params[0].s, match);
	archive_qsql_free(&s);
}

static void
pure_match(const char *q, const char *match)
{
	pure_match_in(q, match, IN_FTS);
}

static void
pure_addr(const char *q, const char *match)
{
	pure_match_in(q, match, IN_FTA);
}

static void
test_simple_words(void **state)
{
	pure_match("hello", TXT "\"hello\"");
	pure_match("Hello World", "(" TXT "\"hello\" AND " TXT "\"world\")");
	pure_match("hello AND world", "(" TXT "\"hello\" AND " TXT "\"world\")");
	pure_match("\"Quarterly Report\"", TXT "\"quarterly report\"");
	pure_match("foo.bar", TXT "\"foo bar\"");
	pure_match("jane@example.com", TXT "\"jane example com\"");
	pure_match("repo*", TXT "\"repo\" *");
	pure_match("\"annual rep\"*", TXT "\"annual rep\" *");
	pure_match("e-mail", TXT "\"e mail\"");
	pure_match("Ünïcode", TXT "\"Ünïcode\"");
}

static void
test_fields(void **state)
{
	pure_addr("from:jane@example.com", "{sender} : \"jane example com\"");
	pure_addr("FROM:\"Jane Doe\"", "{sender} : \"jane doe\"");
	pure_addr("to:bob", "{recipients cc} : \"bob\"");
	pure_addr("cc:carol", "{cc} : \"carol\"");
	pure_match("subject:invoice*", "{subject} : \"invoice\" *");
	pure_match("filename:report.pdf", "{filenames} : \"report pdf\"");
	struct archive_qsql q;
	compiles("from:jane subject:\"q3 numbers\" to:bob", &q);
	assert_null(q.match);
	assert_string_equal(q.where, "(" IN_FTS " AND " IN_FTA ")");
	assert_string_equal(q.params[0].s, "{subject} : \"q3 numbers\"");
	assert_string_equal(q.params[1].s, "({sender} : \"jane\" AND {recipients cc} : \"bob\")");
	archive_qsql_free(&q);
	compiles("from:jane OR to:jane OR jane", &q);
	assert_string_equal(q.where, "(" IN_FTS " OR " IN_FTA ")");
	assert_string_equal(q.params[0].s, "\"jane\"");
	assert_string_equal(q.params[1].s, "({sender} : \"jane\" OR {recipients cc} : \"jane\")");
	archive_qsql_free(&q);
	compiles("report -from:jane", &q);
	assert_string_equal(q.where, "(" IN_FTS " AND "
	    "docs.id NOT IN (SELECT rowid FROM fta WHERE fta MATCH ?))");
	archive_qsql_free(&q);
	pure_addr("from:jane -cc:bob", "(({sender} : \"jane\") NOT {cc} : \"bob\")");
}

static void
test_boolean_fts(void **state)
{
	pure_match("a OR b", "(" TXT "\"a\" OR " TXT "\"b\")");
	pure_match("invoice -draft", "((" TXT "\"invoice\") NOT " TXT "\"draft\")");
	pure_match("NOT draft invoice", "((" TXT "\"invoice\") NOT " TXT "\"draft\")");
	pure_match("a -b -c", "(((" TXT "\"a\") NOT " TXT "\"b\") NOT " TXT "\"c\")");
	pure_match("(a OR b) c",
	    "((" TXT "\"a\" OR " TXT "\"b\") AND " TXT "\"c\")");
	pure_match("a OR b c", "(" TXT "\"a\" OR (" TXT "\"b\" AND " TXT "\"c\"))");
	pure_match("x -(y OR z)", "((" TXT "\"x\") NOT (" TXT "\"y\" OR " TXT "\"z\"))");
}

/* A NOT with no positive FTS partner needs the SQL form. */
static void
test_not_sql_form(void **state)
{
	struct archive_qsql s;
	compiles("-draft", &s);
	assert_null(s.match);
	assert_string_equal(s.where,
	    "docs.id NOT IN (SELECT rowid FROM fts WHERE fts MATCH ?)");
	assert_int_equal(s.nparams, 1);
	assert_string_equal(s.params[0].s, TXT "\"draft\"");
	archive_qsql_free(&s);

	compiles("has:attachment -a -b", &s);
	assert_string_equal(s.where, "(docs.has_attachment <> 0 AND "
	    "docs.id NOT IN (SELECT rowid FROM fts WHERE fts MATCH ?) AND "
	    "docs.id NOT IN (SELECT rowid FROM fts WHERE fts MATCH ?))");
	assert_int_equal(s.nparams, 2);
	archive_qsql_free(&s);
}

static void
test_mixed_sql(void **state)
{
	struct archive_qsql s;
	compiles("folder:Inbox before:2019-03-01", &s);
	assert_null(s.match);
	assert_string_equal(s.where, "((docs.folder = ? OR docs.folder LIKE ? ESCAPE '\\') AND "
	    "docs.msg_date < ?)");
	assert_int_equal(s.nparams, 3);
	assert_string_equal(s.params[0].s, "Inbox");
	assert_string_equal(s.params[1].s, "Inbox/%");
	assert_true(s.params[2].is_int);
	assert_int_equal(s.params[2].i, 1551398400);
	archive_qsql_free(&s);

	/* FTS leaves of one AND merge into one MATCH, wherever they are. */
	compiles("(a OR b) has:attachment c -d after:2020", &s);
	assert_string_equal(s.where, "(" IN_FTS " AND docs.has_attachment <> 0 AND "
	    "docs.msg_date >= ?)");
	assert_int_equal(s.nparams, 2);
	assert_string_equal(s.params[0].s, "(((" TXT "\"a\" OR " TXT "\"b\") AND " TXT "\"c\")"
	    " NOT " TXT "\"d\")");
	assert_int_equal(s.params[1].i, 1577836800);
	assert_int_equal(s.nwords, 3);
	assert_string_equal(s.words[0], "a");
	assert_string_equal(s.words[2], "c");
	archive_qsql_free(&s);

	compiles("a OR b OR mailbox:Jane@Example.COM", &s);
	assert_string_equal(s.where, "(" IN_FTS " OR docs.mailbox = ?)");
	assert_string_equal(s.params[0].s, "(" TXT "\"a\" OR " TXT "\"b\")");
	assert_string_equal(s.params[1].s, "jane@example.com");
	archive_qsql_free(&s);

	compiles("folder:\"Sent Items/*\" OR folder:100%_off/", &s);
	assert_string_equal(s.where, "(docs.folder LIKE ? ESCAPE '\\' OR "
	    "(docs.folder = ? OR docs.folder LIKE ? ESCAPE '\\'))");
	assert_string_equal(s.params[0].s, "Sent Items%");
	assert_string_equal(s.params[1].s, "100%_off");
	assert_string_equal(s.params[2].s, "100\\%\\_off/%");
	archive_qsql_free(&s);

	compiles("-folder:Trash", &s);
	assert_string_equal(s.where, "NOT (docs.folder = ? OR docs.folder LIKE ? ESCAPE '\\')");
	archive_qsql_free(&s);

	compiles("  *  ", &s);
	assert_true(s.all);
	assert_string_equal(s.where, "1");
	assert_int_equal(s.nparams, 0);
	archive_qsql_free(&s);
}

static void
test_dates(void **state)
{
	struct archive_qsql s;
	compiles("after:2019-03 before:2020-02-29", &s);
	assert_int_equal(s.params[0].i, 1551398400);       /* 2019-03-01 */
	assert_int_equal(s.params[1].i, 1582934400);       /* 2020-02-29 */
	archive_qsql_free(&s);
	refused("before:2019-13-01", "bad date '2019-13-01' for before:");
	refused("after:2019-02-29", "bad date '2019-02-29' for after:");
	refused("before:2019-04-31", "bad date");
	refused("before:19-04-01", "bad date");
	refused("before:2019/04/01", "bad date");
	refused("after:yesterday", "bad date 'yesterday' for after:");
}

/* pre + n times unit + post into out. */
static void
repeat(char *out, size_t size, const char *pre, const char *unit, int n, const char *post)
{
	size_t len = (size_t)snprintf(out, size, "%s", pre);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, size - len, "%s", unit);
	snprintf(out + len, size - len, "%s", post);
}

/* n nested parentheses around "a". */
static void
nest(char *out, size_t size, int n)
{
	char open[32], close[32];
	repeat(open, sizeof(open), "", "(", n, "");
	repeat(close, sizeof(close), "", ")", n, "");
	snprintf(out, size, "%sa%s", open, close);
}

static void
test_errors(void **state)
{
	refused("form:jane", "unknown field 'form' (at 1)");
	refused("hello Form:jane", "unknown field 'Form' (at 7)");
	refused("(a OR b", "unbalanced parenthesis");
	refused("a b)", "unbalanced parenthesis");
	refused("((a)", "unbalanced parenthesis");
	refused("", "empty query");
	refused("   \t", "empty query");
	refused(NULL, "empty query");
	refused("has:pdf", "unknown value 'pdf' for has:");
	refused("a AND", "missing term after AND (at 3)");
	refused("a OR", "missing term after OR");
	refused("OR a", "missing term before OR (at 1)");
	refused("a OR AND b", "missing term after OR");
	refused("NOT", "missing term after NOT");
	refused("()", "empty parentheses (at 1)");
	refused("from:", "missing value for from:");
	refused("from: jane", "missing value for from:");
	refused("folder:/", "missing value for folder:");
	refused("^ \" -", "nothing to search for");

	char big[1100];
	memset(big, 'a', 1001);
	big[1001] = '\0';
	refused(big, "query too long");
	char terms[400], deep[64];
	repeat(terms, sizeof(terms), "", "w ", 65, "");
	refused(terms, "too many terms (max 64)");
	nest(deep, sizeof(deep), 17);
	refused(deep, "nested too deeply");
	nest(deep, sizeof(deep), 15);
	struct archive_qsql s;
	compiles(deep, &s);
	archive_qsql_free(&s);
}

/* The only quotes in generated SQL are those of ESCAPE '\'. */
static int
quotes_only_in_escape(const char *where)
{
	size_t quotes = 0, escapes = 0;
	for (const char *p = where; *p != '\0'; p++)
		quotes += *p == '\'';
	for (const char *p = where; (p = strstr(p, "ESCAPE '\\'")) != NULL; p++)
		escapes++;
	return quotes == 2 * escapes;
}

/* Hostile text: every user token stays inside an FTS5 string, never in the
 * SQL, and the result runs on a real FTS5 table without a syntax error. */
static void
test_injection(void **state)
{
	static const char *const qs[] = {
		"\"", "'", ")", "(", "NEAR(", "NEAR(a b, 2)", "*", "^", "a^b", "^start",
		"foo\"bar", "\"a\"\"b\"", "it's", "'; DROP TABLE docs; --", "subject", "body",
		"sender:x", "{subject}:x", "subject : x", "a:b", "10:30", "a OR", "col:umn",
		"a + b", "\"unterminated phrase", "x* y*", "**", "-(a)", "- a", "--a",
		"AND", "and or not", "a NOT", "fts MATCH", "rowid = 1", "\\", "%", "_",
		"folder:'x", "mailbox:\"a' OR '1'='1\"", "\xff\xfe", "from:\"", "NOT NOT a",
		"caf\xc3\xa9 na\xc3\xafve", "x -y -z OR -w", "(a -b) OR (-c d)",
	};
	sqlite3 *db;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE docs(id INTEGER PRIMARY KEY, "
	    "mailbox TEXT, folder TEXT, msg_date INT, has_attachment INT);"
	    "CREATE VIRTUAL TABLE fts USING fts5(subject, body, filenames, content='', "
	    "tokenize='unicode61 remove_diacritics 2');"
	    "CREATE VIRTUAL TABLE fta USING fts5(sender, recipients, cc, content='', "
	    "tokenize='unicode61 remove_diacritics 2');"
	    "INSERT INTO docs VALUES (1, 'a', 'Inbox', 0, 0);"
	    "INSERT INTO fts(rowid, subject, body) VALUES (1, 'subject drop table', "
	    "'near a b start body');", NULL, NULL, NULL), SQLITE_OK);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		struct archive_qsql s;
		char *err = NULL;
		if (archive_query_compile(qs[i], &s, &err) < 0) {
			assert_non_null(err);   /* a clear refusal is fine; no crash */
			free(err);
			continue;
		}
		assert_true(quotes_only_in_escape(s.where));
		assert_null(strstr(s.where, "DROP"));
		char sql[2048];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM docs WHERE %s", s.where);
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
			fail_msg("query '%s': %s: %s", qs[i], sql, sqlite3_errmsg(db));
		for (size_t k = 0; k < s.nparams; k++)
			if (s.params[k].is_int)
				sqlite3_bind_int64(st, (int)k + 1, s.params[k].i);
			else
				sqlite3_bind_text(st, (int)k + 1, s.params[k].s, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			fail_msg("query '%s' (match %s): %s", qs[i], s.nparams ? s.params[0].s : "",
			    sqlite3_errmsg(db));
		sqlite3_finalize(st);
		archive_qsql_free(&s);
	}
	sqlite3_close(db);

	/* Specific texts stay text. */
	pure_match("NEAR(a b)", "(" TXT "\"near\" AND (" TXT "\"a\" AND " TXT "\"b\"))");
	pure_match("subject", TXT "\"subject\"");
	pure_match("foo\"bar\"", "(" TXT "\"foo\" AND " TXT "\"bar\")");
	pure_match("^start", TXT "\"start\"");
	pure_match("a ^ b", "(" TXT "\"a\" AND " TXT "\"b\")");
	pure_match("and or not", "(" TXT "\"and\" AND " TXT "\"or\" AND " TXT "\"not\")");
	pure_match("10:30", TXT "\"10 30\"");
	refused("sender:x", "unknown field 'sender'");
}

static void
test_ast(void **state)
{
	struct archive_qnode *root;
	char *err = NULL;
	assert_int_equal(archive_query_parse("a b OR -c (d OR e)", &root, &err), 0);
	assert_int_equal(root->kind, ARCHIVE_Q_OR);
	assert_int_equal(root->nkids, 2);
	assert_int_equal(root->kids[0]->kind, ARCHIVE_Q_AND);
	assert_int_equal(root->kids[0]->nkids, 2);
	struct archive_qnode *r = root->kids[1];
	assert_int_equal(r->kind, ARCHIVE_Q_AND);
	assert_int_equal(r->nkids, 2);
	assert_int_equal(r->kids[0]->kind, ARCHIVE_Q_NOT);
	assert_string_equal(r->kids[0]->kids[0]->value, "c");
	assert_int_equal(r->kids[1]->kind, ARCHIVE_Q_OR);
	archive_query_free(&root);
	assert_null(root);

	/* Dropped terms vanish: "a ^" is just a. */
	assert_int_equal(archive_query_parse("a ^ OR -", &root, &err), 0);
	assert_int_equal(root->kind, ARCHIVE_Q_TERM);
	assert_string_equal(root->value, "a");
	archive_query_free(&root);
}

/* compile_opts with meta tokens: filters become {meta} terms of one MATCH. */
static void
meta_match(const struct archive_qopts *o, const char *q, const char *match)
{
	struct archive_qsql s;
	char *err = NULL;
	if (archive_query_compile_opts(q, o, &s, &err) != 0)
		fail_msg("query '%s' refused: %s", q, err);
	if (s.match == NULL)
		fail_msg("query '%s': no single MATCH (where %s)", q, s.where);
	if (strcmp(s.match, match) != 0)
		fail_msg("query '%s': match\n  got  %s\n  want %s", q, s.match, match);
	assert_string_equal(s.match_table, "fts");
	archive_qsql_free(&s);
}

static void
test_meta_tokens(void **state)
{
	/* 2010-01-01 .. 2024-12-31 present in the index */
	struct archive_qopts o = { .meta = 1, .date_min = 1262304000, .date_max = 1735689599 };
	meta_match(&o, "folder:Inbox", "{meta} : \"zqfinbox\"");
	meta_match(&o, "folder:\"Sent Items/\"", "{meta} : \"zqfsentz20items\"");
	meta_match(&o, "folder:Zoo/a.b", "{meta} : \"zqfz7aooz2faz2eb\"");
	meta_match(&o, "mailbox:Bob@X.com", "{meta} : \"zqbbobz40xz2ecom\"");
	meta_match(&o, "has:attachment", "{meta} : \"zqa\"");
	meta_match(&o, "report folder:inbox -has:attachment",
	    "((\"report\" AND {meta} : \"zqfinbox\") NOT {meta} : \"zqa\")");
	/* Whole years, months and single days, exactly covering the range. */
	meta_match(&o, "after:2019-11-29 before:2020-03-02",
	    "{meta} : (\"zqd20191129\" OR \"zqd20191130\" OR \"zqm201912\" OR \"zqm202001\" OR "
	    "\"zqm202002\" OR \"zqd20200301\")");
	meta_match(&o, "after:2023-12-31",
	    "{meta} : (\"zqd20231231\" OR \"zqy2024\")");
	/* Several bounds in one AND: one range, the word stays. */
	meta_match(&o, "after:2019 x before:2021 after:2020-01",
	    "({meta} : (\"zqy2020\") AND \"x\")");
	struct archive_qsql s;
	char *err = NULL;
	assert_int_equal(archive_query_compile_opts("after:2019 x before:2021 after:2020-01", &o,
	    &s, &err), 0);
	assert_int_equal(s.date_lo, 1577836800);
	assert_int_equal(s.date_hi, 1609459200);
	archive_qsql_free(&s);
	meta_match(&o, "before:2010-01-03", "{meta} : (\"zqd20100101\" OR \"zqd20100102\")");
	meta_match(&o, "after:2030", "{meta} : \"zqnone\"");       /* past the newest */
	/* Words that could be meta tokens only search the text columns. */
	meta_match(&o, "zqa", "{subject body filenames} : \"zqa\"");
	meta_match(&o, "z*", "{subject body filenames} : \"z\" *");
	meta_match(&o, "zq*", "{subject body filenames} : \"zq\" *");
	meta_match(&o, "za*", "\"za\" *");
	/* The caller's mailbox restriction is AND-ed into the MATCH. */
	const char *const mb[] = { "A@x.com", "" };
	o.mailboxes = mb;
	o.nmailboxes = 2;
	meta_match(&o, "*", "({meta} : \"zqbaz40xz2ecom\" OR {meta} : \"zqb\")");
	meta_match(&o, "hello", "(\"hello\" AND ({meta} : \"zqbaz40xz2ecom\" OR {meta} : \"zqb\"))");
	o.nmailboxes = 0;

	/* What cannot be a token stays a docs predicate. */
	assert_int_equal(archive_query_compile_opts("report folder:Inb*", &o, &s, &err), 0);
	assert_null(s.match);
	assert_string_equal(s.where, "(" IN_FTS " AND docs.folder LIKE ? ESCAPE '\\')");
	archive_qsql_free(&s);
	o.date_min = -62135596800LL - 86400;                       /* year 0: no tokens */
	assert_int_equal(archive_query_compile_opts("before:2019", &o, &s, &err), 0);
	assert_string_equal(s.where, "docs.msg_date < ?");
	assert_int_equal(s.date_hi, 1546300800);
	archive_qsql_free(&s);
	o.date_min = -2208988800LL;                        /* 1900..2024: too many tokens */
	assert_int_equal(archive_query_compile_opts("after:1900-01-02", &o, &s, &err), 0);
	assert_string_equal(s.where, "docs.msg_date >= ?");
	assert_int_equal(s.date_lo, -2208988800LL + 86400);
	archive_qsql_free(&s);
	assert_int_equal(archive_query_compile_opts("after:1900-02", &o, &s, &err), 0);
	assert_non_null(s.match);                          /* 11 months + 124 years */
	archive_qsql_free(&s);
	char longf[300];
	memset(longf, 'x', 250);
	memcpy(longf, "folder:", 7);
	longf[250] = '\0';
	assert_int_equal(archive_query_compile_opts(longf, &o, &s, &err), 0);
	assert_null(s.match);
	archive_qsql_free(&s);
}

static void
test_meta_text(void **state)
{
	char *t = archive_query_meta_text("Bob@X.com", "Inbox/Sub z", 0, 1);
	assert_string_equal(t, "zqa zqbz42obz40z58z2ecom zqfinbox zqfinboxz2fsubz20z7a "
	    "zqy1970 zqm197001 zqd19700101");
	free(t);
	t = archive_query_meta_text("", "a//b/", -1, 0);           /* 1969-12-31 23:59:59 */
	assert_string_equal(t, "zqb zqfa zqfaz2f zqfaz2fz2fb zqfaz2fz2fbz2f "
	    "zqy1969 zqm196912 zqd19691231");
	free(t);
	t = archive_query_meta_text("m", "", 400000000000LL, 0);  /* year > 9999: no date */
	assert_string_equal(t, "zqbm");
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_words),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_boolean_fts),
		cmocka_unit_test(test_not_sql_form),
		cmocka_unit_test(test_mixed_sql),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_injection),
		cmocka_unit_test(test_ast),
		cmocka_unit_test(test_meta_tokens),
		cmocka_unit_test(test_meta_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
