/*
 * Unit tests for src/imap/imap_mime.c: ENVELOPE, BODY / BODYSTRUCTURE,
 * BODY[section] and the SEARCH helpers, on hand-made messages (simple,
 * multipart, nested message/rfc822, missing headers, broken boundaries,
 * LF-only, 8-bit headers, groups) and a sweep over the MIME corpus
 * (../shared/corpus/mime, or $MAILARK_CORPUS/mime; skipped when absent) that
 * checks every size and line count in BODYSTRUCTURE against the bytes
 * imap_mime_section() returns for the same part number.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "imap/imap_mime.h"
#include "lib/buf.h"

/* ------------------------------------------------------------ helpers */

static char *
bs(const char *msg, int ext)
{
	struct buf b = BUF_INIT;

	imap_mime_bodystructure(msg, strlen(msg), ext, &b);
	(void)buf_cstr(&b);
	return buf_steal(&b);
}

static char *
env(const char *msg)
{
	struct buf b = BUF_INIT;

	imap_mime_envelope(msg, strlen(msg), &b);
	(void)buf_cstr(&b);
	return buf_steal(&b);
}

static char *
sect(const char *msg, const char *section)
{
	struct buf b = BUF_INIT;

	if (imap_mime_section(msg, strlen(msg), section, &b) != 0)
		fail_msg("section %s refused", section);
	(void)buf_cstr(&b);
	return buf_steal(&b);
}

#define assert_str_free(expr, want) do { \
	char *got_ = (expr); \
	assert_string_equal(got_, (want)); \
	free(got_); \
} while (0)

/* ------------------------------------------------------------ messages */

static const char SIMPLE[] =
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.org\r\n"
    "Subject: Hello\r\n"
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    "Message-ID: <1@example.com>\r\n"
    "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
    "\r\n"
    "line one\r\n"
    "line two\r\n";

static const char ALT[] =
    "From: a@example.com\r\n"
    "Content-Type: multipart/alternative; boundary=\"XX\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--XX\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "plain\r\n"
    "--XX\r\n"
    "Content-Type: text/html; charset=\"iso-8859-1\"\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "<p>h=E9llo</p>\r\n"
    "--XX--\r\n"
    "epilogue\r\n";

static const char NESTED[] =
    "From: a@example.com\r\n"
    "Subject: outer\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=outer\r\n"
    "\r\n"
    "--outer\r\n"
    "\r\n"
    "body text\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "Content-Disposition: attachment; filename=\"fwd.eml\"\r\n"
    "Content-Language: en, de\r\n"
    "\r\n"
    "From: Inner <inner@example.net>\r\n"
    "Subject: inner\r\n"
    "Content-Type: multipart/mixed; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "inner one\r\n"
    "--inner\r\n"
    "Content-Type: application/pdf; name=x.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-ID: <cid1>\r\n"
    "\r\n"
    "JVBERi0=\r\n"
    "--inner--\r\n"
    "--outer--\r\n";

/* ------------------------------------------------------------ tests */

static void
test_simple(void **state)
{
	(void)state;
	assert_str_free(bs(SIMPLE, 0),
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\" \"FORMAT\" \"flowed\") NIL NIL \"7BIT\" 20 2)");
	assert_str_free(bs(SIMPLE, 1),
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\" \"FORMAT\" \"flowed\") NIL NIL \"7BIT\" 20 2"
	    " NIL NIL NIL NIL)");
	assert_str_free(env(SIMPLE),
	    "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hello\" ((\"Alice\" NIL \"alice\" \"example.com\"))"
	    " ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\"))"
	    " ((NIL NIL \"bob\" \"example.org\")) NIL NIL NIL \"<1@example.com>\")");
	assert_str_free(sect(SIMPLE, "1"), "line one\r\nline two\r\n");
	assert_str_free(sect(SIMPLE, "TEXT"), "line one\r\nline two\r\n");
	assert_str_free(sect(SIMPLE, ""), SIMPLE);
	char *h = sect(SIMPLE, "header");
	assert_int_equal(strlen(h), strlen(SIMPLE) - 20);
	assert_string_equal(h + strlen(h) - 4, "\r\n\r\n");
	free(h);
	assert_str_free(sect(SIMPLE, "2"), "");
	assert_str_free(sect(SIMPLE, "1.1"), "");
	assert_int_equal(imap_mime_date(SIMPLE, strlen(SIMPLE)), 760686745);
}

static void
test_alternative(void **state)
{
	(void)state;
	assert_str_free(bs(ALT, 1),
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 0 NIL NIL NIL NIL)"
	    "(\"TEXT\" \"HTML\" (\"CHARSET\" \"iso-8859-1\") NIL NIL \"QUOTED-PRINTABLE\" 14 0"
	    " NIL NIL NIL NIL) \"ALTERNATIVE\" (\"BOUNDARY\" \"XX\") NIL NIL NIL)");
	assert_str_free(bs(ALT, 0),
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 0)"
	    "(\"TEXT\" \"HTML\" (\"CHARSET\" \"iso-8859-1\") NIL NIL \"QUOTED-PRINTABLE\" 14 0)"
	    " \"ALTERNATIVE\")");
	assert_str_free(sect(ALT, "1"), "plain");
	assert_str_free(sect(ALT, "2"), "<p>h=E9llo</p>");
	assert_str_free(sect(ALT, "2.MIME"),
	    "Content-Type: text/html; charset=\"iso-8859-1\"\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	assert_str_free(sect(ALT, "3"), "");
	assert_str_free(sect(ALT, "1.TEXT"), "");  /* not a message/rfc822 */
	assert_true(imap_mime_body_contains(ALT, strlen(ALT), "HÉLLO"));
	assert_true(imap_mime_body_contains(ALT, strlen(ALT), "plain"));
	assert_false(imap_mime_body_contains(ALT, strlen(ALT), "preamble"));
	assert_false(imap_mime_body_contains(ALT, strlen(ALT), "=E9"));
}

static void
test_nested(void **state)
{
	(void)state;
	char *s = bs(NESTED, 1);
	assert_string_equal(s,
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 9 0 NIL NIL NIL NIL)"
	    "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 274"
	    " (NIL \"inner\" ((\"Inner\" NIL \"inner\" \"example.net\")) ((\"Inner\" NIL \"inner\" \"example.net\"))"
	    " ((\"Inner\" NIL \"inner\" \"example.net\")) NIL NIL NIL NIL NIL)"
	    " ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 9 0 NIL NIL NIL NIL)"
	    "(\"APPLICATION\" \"PDF\" (\"NAME\" \"x.pdf\") \"<cid1>\" NIL \"BASE64\" 8 NIL NIL NIL NIL)"
	    " \"MIXED\" (\"BOUNDARY\" \"inner\") NIL NIL NIL) 14"
	    " NIL (\"ATTACHMENT\" (\"FILENAME\" \"fwd.eml\")) (\"en\" \"de\") NIL)"
	    " \"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)");
	free(s);
	assert_str_free(sect(NESTED, "1"), "body text");
	assert_str_free(sect(NESTED, "1.MIME"), "\r\n");
	assert_str_free(sect(NESTED, "2.HEADER"),
	    "From: Inner <inner@example.net>\r\nSubject: inner\r\n"
	    "Content-Type: multipart/mixed; boundary=inner\r\n\r\n");
	assert_str_free(sect(NESTED, "2.HEADER.FIELDS (SUBJECT)"), "Subject: inner\r\n\r\n");
	assert_str_free(sect(NESTED, "2.1"), "inner one");
	assert_str_free(sect(NESTED, "2.2"), "JVBERi0=");
	assert_str_free(sect(NESTED, "2.2.MIME"),
	    "Content-Type: application/pdf; name=x.pdf\r\n"
	    "Content-Transfer-Encoding: base64\r\nContent-ID: <cid1>\r\n\r\n");
	assert_str_free(sect(NESTED, "2.3"), "");
	assert_str_free(sect(NESTED, "2.1.1"), "");
	char *t = sect(NESTED, "2.TEXT");
	assert_true(strncmp(t, "--inner\r\n", 9) == 0);
	assert_string_equal(t + strlen(t) - 9, "--inner--");
	free(t);
	char *whole = sect(NESTED, "2");
	assert_int_equal(strlen(whole), 274);
	assert_true(strncmp(whole, "From: Inner", 11) == 0);
	free(whole);
}

static void
test_missing_headers(void **state)
{
	(void)state;
	const char *m = "\r\njust a body\r\n";
	assert_str_free(env(m), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_str_free(bs(m, 1),
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 13 1 NIL NIL NIL NIL)");
	assert_str_free(sect(m, "HEADER"), "\r\n");
	assert_str_free(sect(m, "1"), "just a body\r\n");
	/* no blank line at all: everything is header */
	const char *h = "Subject: only\r\n";
	assert_str_free(bs(h, 0), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)");
	assert_str_free(sect(h, "TEXT"), "");
	assert_str_free(sect("", ""), "");
	assert_str_free(bs("", 0), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)");
	assert_int_equal(imap_mime_date(h, strlen(h)), -1);
	assert_int_equal(imap_mime_date("Date: garbage\r\n\r\n", 17), -1);
}

static void
test_broken_boundaries(void **state)
{
	(void)state;
	const char *m =
	    "Content-Type: multipart/mixed; boundary=b1\r\n"
	    "\r\n"
	    "--b1\r\n"
	    "\r\n"
	    "first\r\n"
	    "--b1-not-a-delimiter\r\n"
	    "--b1  \r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "second, never closed\r\n";
	assert_str_free(sect(m, "1"), "first\r\n--b1-not-a-delimiter");
	assert_str_free(sect(m, "2"), "second, never closed\r\n");
	assert_str_free(bs(m, 0),
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 27 1)"
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 22 1) \"MIXED\")");
	/* a multipart without any delimiter has one empty part (as in Dovecot);
	 * one without a boundary parameter is text */
	const char *n = "Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts\r\n";
	assert_str_free(bs(n, 0), "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0) \"MIXED\")");
	assert_str_free(sect(n, "1"), "");
	assert_str_free(sect(n, "TEXT"), "no parts\r\n");
	const char *o = "Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\na\r\n--x--\r\n";
	assert_str_free(sect(o, "1"), "--x\r\n\r\na\r\n--x--\r\n");
	/* empty part between adjacent delimiters */
	const char *e = "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n--q\r\n\r\nx\r\n--q--\r\n";
	assert_str_free(sect(e, "1"), "");
	assert_str_free(sect(e, "2"), "x");
	assert_str_free(sect(e, "1.MIME"), "");
}

static void
test_lf_only(void **state)
{
	(void)state;
	const char *m =
	    "Subject: lf\n"
	    "Content-Type: multipart/mixed;\n"
	    "\tboundary=\"lf\"\n"
	    "\n"
	    "--lf\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "one\n"
	    "two\n"
	    "--lf--\n";
	assert_str_free(sect(m, "1"), "one\ntwo");
	assert_str_free(sect(m, "1.MIME"), "Content-Type: text/plain\n\n");
	assert_str_free(bs(m, 0),
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 7 1) \"MIXED\")");
	assert_str_free(sect(m, "HEADER.FIELDS (SUBJECT)"), "Subject: lf\n\r\n");
	assert_true(imap_mime_header_contains(m, strlen(m), "content-type", "boundary=\"lf\""));
}

static void
test_8bit_headers(void **state)
{
	(void)state;
	const char *m = "Subject: caf\xc3\xa9 \"q\"\r\nFrom: J\xc3\xbcrgen <j@example.de>\r\n\r\nx\r\n";
	char *e = env(m);
	assert_non_null(strstr(e, "{9}\r\ncaf\xc3\xa9 \"q\""));
	/* a raw 8-bit name goes out as a literal */
	assert_non_null(strstr(e, "({7}\r\nJ\xc3\xbcrgen NIL \"j\" \"example.de\")"));
	free(e);
	/* an RFC 2047 name stays ASCII (encoded again), a bare odd address is kept */
	const char *w = "From: =?iso-8859-1?q?J=FCrgen?= <j@example.de>\r\nTo: f..k@example.com\r\n\r\n";
	e = env(w);
	assert_non_null(strstr(e, "((\"=?"));
	assert_non_null(strstr(e, "?=\" NIL \"j\" \"example.de\"))"));
	assert_non_null(strstr(e, "((NIL NIL \"f..k\" \"example.com\"))"));
	free(e);
	const char *q = "Subject: a \"quoted\" back\\slash\r\n\r\n";
	e = env(q);
	assert_non_null(strstr(e, "\"a \\\"quoted\\\" back\\\\slash\""));
	free(e);
}

static void
test_search(void **state)
{
	(void)state;
	const char *m =
	    "Subject: =?UTF-8?B?R3LDvMOfZQ==?= und\r\n"
	    " =?ISO-8859-1?Q?K=E4se?=\r\n"
	    "From: x@example.com\r\n"
	    "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "U2No9m5lIEdy/N9l\r\n";       /* "Schöne Grüße" in Latin-1 */
	size_t n = strlen(m);
	assert_true(imap_mime_header_contains(m, n, "subject", "grüße"));
	assert_true(imap_mime_header_contains(m, n, "SUBJECT", "UND KÄSE"));
	assert_false(imap_mime_header_contains(m, n, "subject", "=?UTF-8"));
	assert_true(imap_mime_header_contains(m, n, "from", ""));
	assert_false(imap_mime_header_contains(m, n, "cc", ""));
	assert_true(imap_mime_body_contains(m, n, "SCHÖNE"));
	assert_false(imap_mime_body_contains(m, n, "U2No"));
	assert_true(imap_mime_text_contains(m, n, "käse"));
	assert_true(imap_mime_text_contains(m, n, "schöne"));
	assert_false(imap_mime_text_contains(m, n, "absent"));
}

static void
test_header_fields(void **state)
{
	(void)state;
	const char *m =
	    "Received: one\r\n"
	    "Subject: folded\r\n"
	    "  continued\r\n"
	    "To: b@example.org\r\n"
	    "received: two\r\n"
	    "\r\n"
	    "body\r\n";
	assert_str_free(sect(m, "HEADER.FIELDS (Subject To)"),
	    "Subject: folded\r\n  continued\r\nTo: b@example.org\r\n\r\n");
	assert_str_free(sect(m, "header.fields (\"RECEIVED\")"), "Received: one\r\nreceived: two\r\n\r\n");
	assert_str_free(sect(m, "HEADER.FIELDS.NOT (RECEIVED SUBJECT)"), "To: b@example.org\r\n\r\n");
	assert_str_free(sect(m, "HEADER.FIELDS (X-NONE)"), "\r\n");
	assert_str_free(sect(m, "1.HEADER.FIELDS (TO)"), "");  /* part 1 is not a message */
	assert_true(imap_mime_header_contains(m, strlen(m), "Subject", "folded  continued"));
}

static void
test_sections_valid(void **state)
{
	(void)state;
	const char *good[] = { "", "HEADER", "text", "1", "1.2.3", "1.MIME", "2.header", "3.TEXT",
	    "HEADER.FIELDS (A B)", "header.fields.not (Subject)", "1.2.HEADER.FIELDS (\"X Y\" Z)",
	    "10.1" };
	const char *bad[] = { "MIME", "0", "1.0", "01", "1.", ".1", "HEADER.FIELDS", "HEADER.FIELDS ()",
	    "HEADER.FIELDS (A", "HEADER.FIELDS (A) x", "TEXT.1", "1..2", "BODY", "1.MIME.TEXT",
	    "HEADER.FIELDS  (A)", "1 ", "HEADER.FIELDS.NOT(A)", "99999999999" };
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!imap_mime_section_valid(good[i]))
			fail_msg("valid section refused: %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (imap_mime_section_valid(bad[i]))
			fail_msg("invalid section accepted: %s", bad[i]);
		assert_int_equal(imap_mime_section(SIMPLE, strlen(SIMPLE), bad[i], &b), -1);
	}
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

/* Partial fetches are cut by the server from these bytes: offsets must be stable. */
static void
test_partial_bytes(void **state)
{
	(void)state;
	char *whole = sect(NESTED, "");
	char *inner = sect(NESTED, "2");
	char *p = strstr(whole, inner);
	assert_non_null(p);
	char *one = sect(NESTED, "2.1");
	assert_non_null(strstr(p, one));
	free(one);
	free(inner);
	free(whole);
}

static void
test_groups(void **state)
{
	(void)state;
	const char *m =
	    "From: a@example.com\r\n"
	    "Sender: \r\n"
	    "To: undisclosed-recipients:;\r\n"
	    "Cc: Team: x@example.com, \"Y, Z\" <y@example.com>;, w@example.com\r\n"
	    "Bcc: nodomain\r\n"
	    "In-Reply-To: <p@example.com>\r\n"
	    "\r\n";
	assert_str_free(env(m),
	    "(NIL NIL ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\"))"
	    " ((NIL NIL \"a\" \"example.com\"))"
	    " ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))"
	    " ((NIL NIL \"Team\" NIL)(NIL NIL \"x\" \"example.com\")(\"Y, Z\" NIL \"y\" \"example.com\")"
	    "(NIL NIL NIL NIL)(NIL NIL \"w\" \"example.com\"))"
	    " ((NIL NIL \"nodomain\" \"\")) \"<p@example.com>\" NIL)");
}

static void
test_limits(void **state)
{
	(void)state;
	struct buf m = BUF_INIT, out = BUF_INIT;

	/* nesting far deeper than IMAP_MIME_MAX_DEPTH */
	for (int i = 0; i < 200; i++)
		buf_append_str(&m, "Content-Type: message/rfc822\r\n\r\n");
	buf_append_str(&m, "Subject: bottom\r\n\r\nx\r\n");
	imap_mime_bodystructure(m.data, m.len, 1, &out);
	assert_true(out.len > 0);
	buf_reset(&out);
	assert_int_equal(imap_mime_section(m.data, m.len, "1.1.1.1.1.1.1.1.1.1.1.1.1.1.1", &out), 0);
	buf_free(&out);
	buf_free(&m);
	/* many parts */
	buf_append_str(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (int i = 0; i < IMAP_MIME_MAX_PARTS + 50; i++)
		buf_append_str(&m, "--b\r\n\r\nx\r\n");
	imap_mime_bodystructure(m.data, m.len, 0, &out);
	assert_true(out.len > 0);
	buf_free(&out);
	buf_free(&m);
}

/* ------------------------------------------------------------ corpus */

/* A parsed BODYSTRUCTURE: NIL, number, string or list. */
struct node {
	enum { N_NIL, N_NUM, N_STR, N_LIST } kind;
	unsigned long num;
	char *str;
	struct node **kids;
	size_t n;
};

static void
node_free(struct node *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n);
}

static struct node *
node_parse(const char **sp, const char *end)
{
	const char *s = *sp;
	struct node *n = calloc(1, sizeof(*n));

	assert_non_null(n);
	while (s < end && *s == ' ')
		s++;
	assert_true(s < end);
	if (*s == '(') {
		n->kind = N_LIST;
		s++;
		while (s < end && *s != ')') {
			n->kids = realloc(n->kids, (n->n + 1) * sizeof(*n->kids));
			assert_non_null(n->kids);
			n->kids[n->n++] = node_parse(&s, end);
			while (s < end && *s == ' ')
				s++;
		}
		assert_true(s < end);
		s++;
	} else if (*s == '"') {
		struct buf b = BUF_INIT;
		for (s++; s < end && *s != '"'; s++) {
			if (*s == '\\')
				s++;
			buf_append_char(&b, *s);
		}
		assert_true(s < end);
		s++;
		(void)buf_cstr(&b);
		n->kind = N_STR;
		n->str = buf_steal(&b);
	} else if (*s == '{') {
		char *e;
		unsigned long len = strtoul(s + 1, &e, 10);
		assert_true(e[0] == '}' && e[1] == '\r' && e[2] == '\n');
		s = e + 3;
		assert_true((size_t)(end - s) >= len);
		n->kind = N_STR;
		n->str = strndup(s, len);
		s += len;
	} else if (end - s >= 3 && strncmp(s, "NIL", 3) == 0) {
		n->kind = N_NIL;
		s += 3;
	} else {
		char *e;
		assert_true(*s >= '0' && *s <= '9');
		n->kind = N_NUM;
		n->num = strtoul(s, &e, 10);
		s = e;
	}
	*sp = s;
	return n;
}

struct sweep {
	const char *raw;
	size_t len;
	const char *file;
	size_t checked;
};

static size_t
lf_count(const struct buf *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->len; i++)
		n += b->data[i] == '\n';
	return n;
}

static void check_entity(struct sweep *w, const struct node *n, const char *prefix);

/* n is the body of the part numbered num. */
static void
check_body(struct sweep *w, const struct node *n, const char *num)
{
	char sub[4096];
	struct buf b = BUF_INIT;

	assert_int_equal(n->kind, N_LIST);
	assert_true(n->n >= 2);
	if (strlen(num) > 3000)
		return;
	if (n->kids[0]->kind == N_LIST) {
		size_t i;
		for (i = 0; i < n->n && n->kids[i]->kind == N_LIST; i++) {
			snprintf(sub, sizeof(sub), "%s.%zu", num, i + 1);
			check_body(w, n->kids[i], sub);
		}
		return;
	}
	assert_true(n->n >= 7);
	assert_int_equal(n->kids[0]->kind, N_STR);
	assert_int_equal(n->kids[6]->kind, N_NUM);
	assert_int_equal(imap_mime_section(w->raw, w->len, num, &b), 0);
	if (b.len != n->kids[6]->num)
		fail_msg("%s: part %s: BODYSTRUCTURE size %lu, section %zu bytes", w->file, num,
		    n->kids[6]->num, b.len);
	w->checked++;
	if (strcmp(n->kids[0]->str, "TEXT") == 0) {
		assert_true(n->n >= 8 && n->kids[7]->kind == N_NUM);
		if (lf_count(&b) != n->kids[7]->num)
			fail_msg("%s: part %s: lines %lu vs %zu", w->file, num, n->kids[7]->num, lf_count(&b));
	}
	if (strcmp(n->kids[0]->str, "MESSAGE") == 0 && strcmp(n->kids[1]->str, "RFC822") == 0) {
		struct buf h = BUF_INIT, t = BUF_INIT;
		assert_true(n->n >= 10);
		assert_int_equal(n->kids[7]->kind, N_LIST);
		assert_int_equal(n->kids[7]->n, 10);
		snprintf(sub, sizeof(sub), "%s.HEADER", num);
		assert_int_equal(imap_mime_section(w->raw, w->len, sub, &h), 0);
		snprintf(sub, sizeof(sub), "%s.TEXT", num);
		assert_int_equal(imap_mime_section(w->raw, w->len, sub, &t), 0);
		assert_int_equal(h.len + t.len, b.len);
		assert_int_equal(n->kids[9]->num, lf_count(&b));
		buf_free(&h);
		buf_free(&t);
		check_entity(w, n->kids[8], num);
	}
	buf_free(&b);
}

/* n is the body of an entity (the message, or one a message/rfc822 encloses). */
static void
check_entity(struct sweep *w, const struct node *n, const char *prefix)
{
	char sub[4096];

	if (strlen(prefix) > 3000)
		return;
	if (n->kids[0]->kind == N_LIST) {
		for (size_t i = 0; i < n->n && n->kids[i]->kind == N_LIST; i++) {
			snprintf(sub, sizeof(sub), "%s%s%zu", prefix, *prefix ? "." : "", i + 1);
			check_body(w, n->kids[i], sub);
		}
	} else {
		snprintf(sub, sizeof(sub), "%s%s1", prefix, *prefix ? "." : "");
		check_body(w, n, sub);
	}
}

static int
read_file(const char *path, char **data_r, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t n;

	if (f == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	*len_r = b.len;
	buf_append(&b, "", 0);
	(void)buf_cstr(&b);
	*data_r = buf_steal(&b);
	return 0;
}

static void
sweep_file(const char *path, size_t *files, size_t *parts)
{
	struct sweep w = { NULL, 0, path, 0 };
	char *raw;
	size_t len;
	struct buf b = BUF_INIT;
	const char *p;
	struct node *root;
	static const char *const secs[] = { "", "HEADER", "TEXT", "1", "1.MIME", "2.1.HEADER",
	    "HEADER.FIELDS (FROM SUBJECT)", "HEADER.FIELDS.NOT (RECEIVED)" };

	if (read_file(path, &raw, &len) < 0)
		fail_msg("cannot read %s", path);
	w.raw = raw;
	w.len = len;
	imap_mime_envelope(raw, len, &b);
	p = b.data;
	node_free(node_parse(&p, b.data + b.len));
	assert_true(p == b.data + b.len);
	buf_reset(&b);
	imap_mime_bodystructure(raw, len, 0, &b);
	buf_reset(&b);
	imap_mime_bodystructure(raw, len, 1, &b);
	p = b.data;
	root = node_parse(&p, b.data + b.len);
	if (p != b.data + b.len)
		fail_msg("%s: trailing bytes after BODYSTRUCTURE", path);
	check_entity(&w, root, "");
	node_free(root);
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		buf_reset(&b);
		assert_int_equal(imap_mime_section(raw, len, secs[i], &b), 0);
	}
	buf_reset(&b);
	assert_int_equal(imap_mime_section(raw, len, "", &b), 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data != NULL ? b.data : "", raw, len);
	/* SEARCH helpers on every real message: no crash, no false match. */
	(void)imap_mime_header_contains(raw, len, "subject", "the");
	assert_false(imap_mime_text_contains(raw, len, "mailark-needle-7f3c9a1e-in-no-message"));
	assert_false(imap_mime_body_contains(raw, len, "mailark-needle-7f3c9a1e-in-no-message"));
	(void)imap_mime_date(raw, len);   /* any value: some corpus dates are before 1970 */
	buf_free(&b);
	free(raw);
	(*files)++;
	*parts += w.checked;
}

static void
sweep_dir(const char *dir, size_t *files, size_t *parts)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			sweep_dir(path, files, parts);
		else if (strlen(e->d_name) > 4 && strcmp(e->d_name + strlen(e->d_name) - 4, ".eml") == 0)
			sweep_file(path, files, parts);
	}
	closedir(d);
}

static void
test_corpus(void **state)
{
	const char *c = getenv("MAILARK_CORPUS");
	char dir[4096];
	struct stat st;
	size_t files = 0, parts = 0;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/mime", c != NULL && *c != '\0' ? c : "../shared/corpus");
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		skip();
	sweep_dir(dir, &files, &parts);
	print_message("corpus: %zu messages, %zu parts checked\n", files, parts);
	assert_true(files > 500);
	assert_true(parts > files);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_alternative),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_missing_headers),
		cmocka_unit_test(test_broken_boundaries),
		cmocka_unit_test(test_lf_only),
		cmocka_unit_test(test_8bit_headers),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_header_fields),
		cmocka_unit_test(test_sections_valid),
		cmocka_unit_test(test_partial_bytes),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_corpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
