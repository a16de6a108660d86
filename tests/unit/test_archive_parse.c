/*
 * Unit tests for src/archive/archive_parse.c and archive_html.c: headers,
 * RFC 2047/2231 decoding, body selection (plain vs HTML), attachments,
 * nested messages, hostile input, journal report unwrapping, and a sweep
 * over the MIME corpus (../shared/corpus/mime, or $MAILARK_CORPUS/mime).
 * MAILARK_MEASURE=1 also times parsing the linux-mips Maildir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <glib.h>

#include "archive/archive_html.h"
#include "archive/archive_parse.h"
#include "lib/buf.h"

/* ------------------------------------------------------------ helpers */

/* Independent UTF-8 check: well-formed, no overlongs/surrogates, no NUL. */
static int
valid_utf8(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	while (*u != 0) {
		unsigned c = *u;
		int n;
		unsigned cp;
		if (c < 0x80) {
			u++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		for (int i = 1; i <= n; i++) {
			if ((u[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (u[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		u += n + 1;
	}
	return 1;
}

static void
assert_doc_clean(const struct archive_doc *d)
{
	const char *f[] = { d->message_id, d->from, d->from_addr, d->to, d->cc, d->bcc,
	    d->subject, d->body, d->filenames };
	assert_non_null(d->body);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (f[i] != NULL && !valid_utf8(f[i]))
			fail_msg("field %zu is not valid UTF-8", i);
	assert_true(strlen(d->body) <= ARCHIVE_BODY_MAX);
}

static void
parse_ok(const char *msg, struct archive_doc *d)
{
	char *err = NULL;
	int rc = archive_parse(msg, strlen(msg), d, &err);
	if (rc != 0)
		fail_msg("archive_parse: %s", err ? err : "?");
	assert_null(err);
	assert_doc_clean(d);
}

static size_t
count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* LF text → CRLF text (caller frees). */
static char *
to_crlf(const char *s)
{
	struct buf b = BUF_INIT;
	for (; *s != '\0'; s++) {
		if (*s == '\n')
			buf_append_char(&b, '\r');
		buf_append_char(&b, *s);
	}
	return buf_steal(&b);
}

static const char *
corpus_dir(void)
{
	const char *c = getenv("MAILARK_CORPUS");
	return c != NULL && *c != '\0' ? c : "../shared/corpus";
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
	*data_r = buf_steal(&b);
	return 0;
}

/* ------------------------------------------------------------ headers */

static void
test_headers(void **state)
{
	struct archive_doc d;
	parse_ok("Message-ID: <abc.123@example.com>\n"
	    "Date: Tue, 01 Oct 2019 12:34:56 +0200\n"
	    "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <Juergen.Mueller@Example.COM>\n"
	    "To: Alice <alice@example.org>, bob@example.org\n"
	    "Cc: \"Doe, Jane\" <jane@example.net>\n"
	    "Bcc: secret@example.net\n"
	    "Subject: Quarterly numbers\n"
	    "\n"
	    "Hello world.\n", &d);
	assert_string_equal(d.message_id, "abc.123@example.com");
	assert_int_equal(d.date, 1569926096);
	assert_non_null(strstr(d.from, "Jürgen Müller"));
	assert_non_null(strstr(d.from, "Juergen.Mueller@Example.COM"));
	assert_string_equal(d.from_addr, "juergen.mueller@example.com");
	assert_non_null(strstr(d.to, "Alice <alice@example.org>"));
	assert_non_null(strstr(d.to, "bob@example.org"));
	assert_non_null(strstr(d.cc, "Doe, Jane"));
	assert_non_null(strstr(d.cc, "jane@example.net"));
	assert_string_equal(d.bcc, "secret@example.net");
	assert_string_equal(d.subject, "Quarterly numbers");
	assert_non_null(strstr(d.body, "Hello world."));
	assert_null(d.filenames);
	assert_int_equal(d.has_attachment, 0);
	archive_doc_free(&d);
	assert_null(d.body);
	assert_null(d.subject);
}

static void
test_missing_headers(void **state)
{
	struct archive_doc d;
	parse_ok("X-Nothing: here\n\njust a body\n", &d);
	assert_null(d.message_id);
	assert_null(d.from);
	assert_null(d.from_addr);
	assert_null(d.to);
	assert_null(d.subject);
	assert_int_equal(d.date, 0);
	assert_non_null(strstr(d.body, "just a body"));
	archive_doc_free(&d);

	/* repeated address headers are merged; blank lines before the headers skipped */
	parse_ok("   \nCc: a@example.com\nSubject: s\nCc: b@example.com\n\nbody\n", &d);
	assert_string_equal(d.cc, "a@example.com, b@example.com");
	assert_string_equal(d.subject, "s");
	archive_doc_free(&d);

	parse_ok("Date: not a date at all\nSubject: x\n\nb\n", &d);
	assert_int_equal(d.date, 0);
	archive_doc_free(&d);
}

static void
test_rfc2047_subjects(void **state)
{
	struct archive_doc d;
	parse_ok("Subject: =?UTF-8?B?w4lsw6h2ZSDimIM=?=\n\nx\n", &d);
	assert_string_equal(d.subject, "Élève ☃");
	archive_doc_free(&d);

	parse_ok("Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\n\nx\n", &d);
	assert_string_equal(d.subject, "Grüße aus Köln");
	archive_doc_free(&d);

	/* an unknown charset: still some valid UTF-8 text, never a crash */
	parse_ok("Subject: =?x-no-such-charset?Q?caf=E9?= ok\n\nx\n", &d);
	assert_non_null(d.subject);
	assert_non_null(strstr(d.subject, "ok"));
	archive_doc_free(&d);

	/* adjacent base64 words: padding in the first must not cut the rest
	 * (GMime 3.2.13 alone gives "Hello"), and a character split between
	 * two words is put back together */
	parse_ok("Subject: =?UTF-8?B?SGVsbG8=?= =?UTF-8?B?IHdvcmxk?=\n"
	    "From: =?utf-8?B?SsO8cmc=?=\n =?utf-8?B?ZW4=?= <j@example.com>\n"
	    "\nx\n", &d);
	assert_string_equal(d.subject, "Hello world");
	assert_non_null(strstr(d.from, "Jürgen"));
	archive_doc_free(&d);
	parse_ok("Subject: =?UTF-8?B?w6k=?= and =?UTF-8?B?4pi=?= =?UTF-8?B?gw==?= x\n\nx\n", &d);
	assert_string_equal(d.subject, "é and ☃ x");
	archive_doc_free(&d);

	/* raw 8-bit Latin-1 in a header */
	parse_ok("Subject: caf\xe9 cr\xe8me\n\nx\n", &d);
	assert_non_null(d.subject);
	assert_non_null(strstr(d.subject, "caf"));
	archive_doc_free(&d);
}

/* ------------------------------------------------------------ bodies */

static const char alt_msg[] =
    "From: a@example.com\n"
    "Subject: alt\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/alternative; boundary=\"XX\"\n"
    "\n"
    "--XX\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "The plain rhinoceros text.\n"
    "--XX\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<html><body><p>The <b>html</b> rhinoceros text.</p></body></html>\n"
    "--XX--\n";

static void
test_alternative_prefers_plain(void **state)
{
	struct archive_doc d;
	parse_ok(alt_msg, &d);
	assert_int_equal(count_of(d.body, "rhinoceros"), 1);
	assert_non_null(strstr(d.body, "The plain rhinoceros text."));
	assert_null(strchr(d.body, '<'));
	assert_null(strstr(d.body, "html"));
	assert_int_equal(d.has_attachment, 0);
	archive_doc_free(&d);
}

static void
test_html_only(void **state)
{
	struct archive_doc d;
	parse_ok("Subject: h\n"
	    "Content-Type: text/html; charset=iso-8859-1\n"
	    "Content-Transfer-Encoding: quoted-printable\n"
	    "\n"
	    "<html><head><title>TitleWord</title><style>p{color:red}</style></head>\n"
	    "<body><script>var secret=1;</script><!-- hidden comment -->\n"
	    "<p>Fish &amp; Chips &lt;3 &quot;caf=E9&quot; &#8364;5 &#x263A; a&nbsp;b</p>\n"
	    "<div>second<br>line</div></body></html>\n", &d);
	/* the only '<' left is the decoded &lt; */
	assert_int_equal(count_of(d.body, "<"), 1);
	assert_null(strchr(d.body, '>'));
	assert_null(strstr(d.body, "secret"));
	assert_null(strstr(d.body, "color"));
	assert_null(strstr(d.body, "hidden"));
	assert_null(strstr(d.body, "TitleWord"));
	assert_non_null(strstr(d.body, "Fish & Chips <3 \"café\" €5 ☺ a b"));
	assert_non_null(strstr(d.body, "second\nline"));
	archive_doc_free(&d);
}

static void
test_html_reducer(void **state)
{
	struct {
		const char *in, *out;
	} cases[] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "  a  \n\n b ", "a b" },
		{ "<p>one</p><p>two</p>", "one\ntwo" },
		{ "a<br/>b<br>c", "a\nb\nc" },
		{ "x<span>y</span>z", "x y z" },
		{ "<SCRIPT type=x>alert('<p>')</SCRIPT>after", "after" },
		{ "<style>unterminated", "" },
		{ "before<!-- c --> after<!-- never closed", "before after" },
		{ "&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#0;&#xD800;&#99999999;", "<>&\"'AB\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "&unknown; &amp &copy &copy;", "&unknown; & &copy ©" },
		{ "a < b > c", "a < b > c" },
		{ "<a href=\"x>y\">link</a>", "link" },
		{ "<img alt='unterminated>text", "text" },
		{ "<head>no end of head", "no end of head" },
		{ "<!DOCTYPE html><?xml x?>z", "z" },
		{ "soft&shy;hyphen", "softhyphen" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = archive_html_to_text(cases[i].in, strlen(cases[i].in));
		if (strcmp(t, cases[i].out) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, t, cases[i].out);
		free(t);
	}
	/* length is honoured: no read past it */
	char *t = archive_html_to_text("abc<p>def", 3);
	assert_string_equal(t, "abc");
	free(t);
}

static void
test_charsets(void **state)
{
	struct archive_doc d;
	parse_ok("Content-Type: text/plain; charset=iso-8859-1\n\nK\xf6ln \xe9t\xe9\n", &d);
	assert_non_null(strstr(d.body, "Köln été"));
	archive_doc_free(&d);

	parse_ok("Content-Type: text/plain; charset=windows-1251\n\n\xcf\xf0\xe8\xe2\xe5\xf2\n", &d);
	assert_non_null(strstr(d.body, "Привет"));
	archive_doc_free(&d);

	parse_ok("Content-Type: text/plain; charset=bogus-charset-42\n\nna\xefve\n", &d);
	assert_non_null(strstr(d.body, "naïve"));   /* Latin-1 fallback */
	archive_doc_free(&d);

	parse_ok("Content-Type: text/plain; charset=utf-8\n\nbad \xff\xfe seq \xc3\n", &d);
	assert_non_null(strstr(d.body, "bad \xef\xbf\xbd\xef\xbf\xbd seq"));
	archive_doc_free(&d);

	parse_ok("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
	    "SGVsbG8gYmFzZTY0!!!###garbage===\n", &d);
	assert_non_null(strstr(d.body, "Hello base64"));
	archive_doc_free(&d);

	/* CRLF becomes LF, NUL and controls never reach the text */
	char m[] = "Subject: a\r\n\r\nline1\r\nx\0y\x01z\r\n";
	char *err = NULL;
	assert_int_equal(archive_parse(m, sizeof(m) - 1, &d, &err), 0);
	assert_doc_clean(&d);
	assert_null(strchr(d.body, '\r'));
	assert_non_null(strstr(d.body, "line1\nx y z"));
	archive_doc_free(&d);
}

static void
test_body_cap(void **state)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "Subject: big\nContent-Type: text/plain; charset=utf-8\n\n");
	while (b.len < 3 * ARCHIVE_BODY_MAX)
		buf_append_str(&b, "é€ab\n");
	struct archive_doc d;
	char *err = NULL;
	assert_int_equal(archive_parse(b.data, b.len, &d, &err), 0);
	assert_doc_clean(&d);
	size_t n = strlen(d.body);
	assert_true(n <= ARCHIVE_BODY_MAX);
	assert_true(n > ARCHIVE_BODY_MAX - 8);
	archive_doc_free(&d);
	buf_free(&b);
}

/* ------------------------------------------------------------ attachments */

static void
test_attachments(void **state)
{
	struct archive_doc d;
	parse_ok("Subject: files\n"
	    "Content-Type: multipart/mixed; boundary=b1\n"
	    "\n"
	    "--b1\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "See attached.\n"
	    "--b1\n"
	    "Content-Type: application/pdf; name=\"report.pdf\"\n"
	    "Content-Disposition: attachment\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "JVBERi0xLjQK\n"
	    "--b1\n"
	    "Content-Type: application/octet-stream\n"
	    "Content-Disposition: attachment; filename*=UTF-8''%C3%BCbersicht%20Q3.xlsx\n"
	    "\n"
	    "xx\n"
	    "--b1\n"
	    "Content-Type: text/csv\n"
	    "Content-Disposition: attachment; filename=\"data.csv\"\n"
	    "\n"
	    "zebra,giraffe\n"
	    "--b1\n"
	    "Content-Type: application/octet-stream\n"
	    "Content-Disposition: attachment; filename=notes.txt\n"
	    "\n"
	    "walrus notes\n"
	    "--b1\n"
	    "Content-Type: text/html\n"
	    "Content-Disposition: attachment; filename=page.html\n"
	    "\n"
	    "<p>flamingo</p>\n"
	    "--b1\n"
	    "Content-Type: image/png\n"
	    "Content-Disposition: attachment; filename=\"=?UTF-8?Q?K=C3=A4se.png?=\"\n"
	    "\n"
	    "PNG\n"
	    "--b1--\n", &d);
	assert_int_equal(d.has_attachment, 1);
	assert_string_equal(d.filenames,
	    "report.pdf\nübersicht Q3.xlsx\ndata.csv\nnotes.txt\npage.html\nKäse.png");
	assert_non_null(strstr(d.body, "See attached."));
	assert_non_null(strstr(d.body, "zebra,giraffe"));   /* text attachment */
	assert_non_null(strstr(d.body, "walrus notes"));    /* .txt sent as octet-stream */
	assert_null(strstr(d.body, "flamingo"));            /* HTML attachment: not body */
	assert_null(strstr(d.body, "JVBER"));
	archive_doc_free(&d);

	/* disposition attachment without a name still counts */
	parse_ok("Content-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n\nhi\n"
	    "--q\nContent-Type: application/octet-stream\nContent-Disposition: attachment\n\nzz\n--q--\n", &d);
	assert_int_equal(d.has_attachment, 1);
	assert_null(d.filenames);
	archive_doc_free(&d);
}

static void
test_nested_rfc822(void **state)
{
	struct archive_doc d;
	parse_ok("Subject: Fwd: inner\n"
	    "Content-Type: multipart/mixed; boundary=outer\n"
	    "\n"
	    "--outer\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "Forwarding this.\n"
	    "--outer\n"
	    "Content-Type: message/rfc822\n"
	    "\n"
	    "From: inner@example.com\n"
	    "Subject: The inner platypus\n"
	    "Content-Type: multipart/mixed; boundary=inner\n"
	    "\n"
	    "--inner\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "Inner body okapi.\n"
	    "--inner\n"
	    "Content-Type: application/zip; name=deep.zip\n"
	    "\n"
	    "PK\n"
	    "--inner--\n"
	    "--outer--\n", &d);
	assert_string_equal(d.subject, "Fwd: inner");
	assert_non_null(strstr(d.body, "Forwarding this."));
	assert_non_null(strstr(d.body, "The inner platypus"));
	assert_non_null(strstr(d.body, "Inner body okapi."));
	assert_string_equal(d.filenames, "deep.zip");
	assert_int_equal(d.has_attachment, 1);
	archive_doc_free(&d);
}

/* ------------------------------------------------------------ hostile input */

static void
test_refuses_empty(void **state)
{
	struct archive_doc d;
	char *err = NULL;
	assert_int_equal(archive_parse("", 0, &d, &err), -1);
	assert_non_null(err);
	free(err);
}

static void
nested(struct buf *b, int depth, int rfc822)
{
	for (int i = 0; i < depth; i++) {
		if (rfc822)
			buf_appendf(b, "Subject: level %d\nContent-Type: message/rfc822\n\n", i);
		else
			buf_appendf(b, "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n", i, i);
	}
	buf_append_str(b, "Content-Type: text/plain\n\ndeepest text\n");
	if (!rfc822)
		for (int i = depth - 1; i >= 0; i--)
			buf_appendf(b, "--b%d--\n", i);
}

static void
test_garbage(void **state)
{
	struct archive_doc d;
	char *err = NULL;
	unsigned seed = 12345;
	char raw[4096];

	for (int round = 0; round < 200; round++) {
		size_t n = 1 + (size_t)(rand_r(&seed) % sizeof(raw));
		for (size_t i = 0; i < n; i++)
			raw[i] = (char)(rand_r(&seed) & 0xff);
		if (round % 3 == 0) {
			static const char head[] = "Content-Type: multipart/mixed; boundary=x\n\n--x\n";
			memcpy(raw, head, n < sizeof(head) - 1 ? n : sizeof(head) - 1);
		}
		assert_int_equal(archive_parse(raw, n, &d, &err), 0);
		assert_doc_clean(&d);
		archive_doc_free(&d);
	}

	/* truncated multipart: boundary never closed, part headers cut */
	parse_ok("Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/plain\n\n"
	    "truncated text\n--zz\nContent-Type: text/pl", &d);
	assert_non_null(strstr(d.body, "truncated text"));
	archive_doc_free(&d);

	/* a boundary parameter that is missing altogether */
	parse_ok("Content-Type: multipart/mixed\n\n--zz\nContent-Type: text/plain\n\nhello\n", &d);
	archive_doc_free(&d);

	for (int rfc822 = 0; rfc822 <= 1; rfc822++) {
		struct buf b = BUF_INIT;
		nested(&b, 200, rfc822);
		assert_int_equal(archive_parse(b.data, b.len, &d, &err), 0);
		assert_doc_clean(&d);
		/* the walk stops at depth 32: the text 200 levels down is not reached */
		assert_null(strstr(d.body, "deepest text"));
		archive_doc_free(&d);
		buf_free(&b);
	}
	/* shallow nesting is walked completely */
	struct buf b = BUF_INIT;
	nested(&b, 10, 1);
	assert_int_equal(archive_parse(b.data, b.len, &d, &err), 0);
	assert_non_null(strstr(d.body, "deepest text"));
	assert_non_null(strstr(d.body, "level 9"));
	archive_doc_free(&d);
	buf_free(&b);

	/* mbox "From " line in front */
	parse_ok("From someone@example.com Mon Jan  1 00:00:00 2001\nSubject: mboxed\n\nb\n", &d);
	assert_string_equal(d.subject, "mboxed");
	archive_doc_free(&d);
}

/* GMime puts charset names on the stack: huge ones must never reach it. */
static void *
huge_charset_body(void *arg)
{
	const size_t n = 4 * 1024 * 1024;
	static const char *const forms[] = {
		"Subject: =?%s?Q?abc?=\n\nbody\n",
		"To: =?%s?B?YWJj?= <a@example.com>\n\nbody\n",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n"
		    "Content-Disposition: attachment; filename*=%s''abc\n\nbody\n--b--\n",
		"Content-Type: text/plain; charset=%s\n\nbody\n",
		"X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary*=%s''b\n\nx\n",
	};
	char *cs = malloc(n + 1);
	memset(cs, 'x', n);
	cs[n] = '\0';
	long bad = 0;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct buf b = BUF_INIT;
		struct archive_doc d;
		struct archive_journal j;
		char *err = NULL;
		buf_appendf(&b, forms[i], cs);
		if (archive_parse(b.data, b.len, &d, &err) != 0 ||
		    (i < 4 && strstr(d.body, "body") == NULL))
			bad++;
		archive_doc_free(&d);
		if (archive_journal_unwrap(b.data, b.len, &j, &err) == 1)
			archive_journal_free(&j);
		free(err);
		buf_free(&b);
	}
	free(cs);
	return (void *)bad;
}

static void
test_huge_charset_names(void **state)
{
	pthread_attr_t attr;
	pthread_t t;
	void *bad;
	/* a 2 MiB stack: a 4 MiB alloca would overflow it */
	assert_int_equal(pthread_attr_init(&attr), 0);
	assert_int_equal(pthread_attr_setstacksize(&attr, 2 * 1024 * 1024), 0);
	assert_int_equal(pthread_create(&t, &attr, huge_charset_body, NULL), 0);
	assert_int_equal(pthread_join(t, &bad), 0);
	assert_null(bad);
	pthread_attr_destroy(&attr);
}

/* ------------------------------------------------------------ journal */

static const char orig_msg[] =
    "From: Alice <alice@contoso.com>\n"
    "To: bob@contoso.com\n"
    "Subject: Original\n"
    "Message-ID: <orig-1@contoso.com>\n"
    "\n"
    "The original body.\n"
    "--not-a-boundary-line\n"
    "Trailing line without newline";

static char *
journal_report(const char *orig, const char *cte, const char *nl)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "From: journal@contoso.com%s", nl);
	buf_appendf(&b, "To: archive@example.net%s", nl);
	buf_appendf(&b, "Subject: Original%s", nl);
	buf_appendf(&b, "X-MS-Journal-Report: %s", nl);
	buf_appendf(&b, "Content-Type: multipart/mixed;%s\tboundary=\"_JR_b0und_\"%s%s", nl, nl, nl);
	buf_appendf(&b, "preamble%s--_JR_b0und_%s", nl, nl);
	buf_appendf(&b, "Content-Type: text/plain; charset=\"us-ascii\"%s%s", nl, nl);
	buf_appendf(&b, "Sender: Alice@Contoso.com%s", nl);
	buf_appendf(&b, "Subject: Original: with@sign.com in it%s", nl);
	buf_appendf(&b, "Message-Id: <orig-1@contoso.com>%s", nl);
	buf_appendf(&b, "To: bob@contoso.com%s", nl);
	buf_appendf(&b, "To: carol@contoso.com, Forwarded: dave@fabrikam.com%s", nl);
	buf_appendf(&b, "To: team@contoso.com, Expanded: list@contoso.com%s", nl);
	buf_appendf(&b, "Cc: eve@contoso.com, frank@contoso.com%s", nl);
	buf_appendf(&b, "Bcc: hidden@contoso.com%s", nl);
	buf_appendf(&b, "Recipient: BOB@contoso.com%s", nl);
	buf_appendf(&b, "%s--_JR_b0und_%s", nl, nl);
	buf_appendf(&b, "Content-Type: message/rfc822%s", nl);
	if (cte != NULL)
		buf_appendf(&b, "Content-Transfer-Encoding: %s%s", cte, nl);
	buf_appendf(&b, "%s%s%s--_JR_b0und_--%s", nl, orig, nl, nl);
	return buf_steal(&b);
}

static void
check_journal(const char *report, const char *want, size_t want_len)
{
	static const char *const rcpts[] = {
		"bob@contoso.com", "carol@contoso.com", "dave@fabrikam.com", "team@contoso.com",
		"list@contoso.com", "eve@contoso.com", "frank@contoso.com", "hidden@contoso.com",
	};
	struct archive_journal j;
	char *err = NULL;
	int rc = archive_journal_unwrap(report, strlen(report), &j, &err);
	if (rc != 1)
		fail_msg("unwrap: %d %s", rc, err ? err : "");
	assert_int_equal(j.orig_len, want_len);
	assert_memory_equal(j.orig, want, want_len);
	assert_string_equal(j.sender, "alice@contoso.com");
	assert_int_equal(j.nrcpts, sizeof(rcpts) / sizeof(rcpts[0]));
	for (size_t i = 0; i < j.nrcpts; i++)
		assert_string_equal(j.rcpts[i], rcpts[i]);
	archive_journal_free(&j);
	assert_null(j.orig);
	assert_null(j.rcpts);
}

static void
test_journal_unwrap(void **state)
{
	/* LF report around an LF original */
	char *r = journal_report(orig_msg, NULL, "\n");
	check_journal(r, orig_msg, strlen(orig_msg));
	free(r);

	/* CRLF report around a CRLF original, and one with mixed line ends inside */
	char *crlf = to_crlf(orig_msg);
	r = journal_report(crlf, NULL, "\r\n");
	check_journal(r, crlf, strlen(crlf));
	free(r);
	r = journal_report(orig_msg, "7bit", "\r\n");
	check_journal(r, orig_msg, strlen(orig_msg));
	free(r);

	/* an original that ends in its own line break keeps it */
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s\r\n", crlf);
	r = journal_report(b.data, NULL, "\r\n");
	check_journal(r, b.data, b.len);
	free(r);
	buf_free(&b);
	free(crlf);

	/* a base64-encoded original is decoded */
	gchar *b64 = g_base64_encode((const guchar *)orig_msg, strlen(orig_msg));
	r = journal_report(b64, "base64", "\n");
	check_journal(r, orig_msg, strlen(orig_msg));
	free(r);
	g_free(b64);
}

static void
test_journal_not_and_malformed(void **state)
{
	struct archive_journal j;
	char *err = NULL;

	assert_int_equal(archive_journal_unwrap(alt_msg, strlen(alt_msg), &j, &err), 0);
	assert_null(err);
	assert_null(j.orig);
	/* the header only counts in the top-level header block */
	const char *body_only = "Subject: x\n\nX-MS-Journal-Report: \n";
	assert_int_equal(archive_journal_unwrap(body_only, strlen(body_only), &j, &err), 0);

	const char *single = "X-MS-Journal-Report:\nContent-Type: text/plain\n\nSender: a@b.c\n";
	assert_int_equal(archive_journal_unwrap(single, strlen(single), &j, &err), -1);
	assert_non_null(strstr(err, "multipart"));
	free(err);
	err = NULL;

	const char *no_orig = "X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=b\n\n"
	    "--b\nContent-Type: text/plain\n\nSender: a@b.c\nTo: d@e.f\n--b--\n";
	assert_int_equal(archive_journal_unwrap(no_orig, strlen(no_orig), &j, &err), -1);
	assert_non_null(strstr(err, "message/rfc822"));
	assert_null(j.rcpts);
	free(err);
	err = NULL;

	const char *no_env = "X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=b\n\n"
	    "--b\nContent-Type: message/rfc822\n\nSubject: o\n\nbody\n--b--\n";
	assert_int_equal(archive_journal_unwrap(no_env, strlen(no_env), &j, &err), -1);
	assert_non_null(strstr(err, "envelope"));
	free(err);
	err = NULL;

	/* unterminated report: the original runs to the end */
	const char *cut = "X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=b\n\n"
	    "--b\n\nSender: a@b.c\nBcc: x@y.z\n--b\nContent-Type: message/rfc822\n\nSubject: o\n\nbo";
	assert_int_equal(archive_journal_unwrap(cut, strlen(cut), &j, &err), 1);
	assert_int_equal(j.orig_len, strlen("Subject: o\n\nbo"));
	assert_int_equal(j.nrcpts, 1);
	assert_string_equal(j.rcpts[0], "x@y.z");
	archive_journal_free(&j);
}

/* ------------------------------------------------------------ threads */

static void *
thread_body(void *arg)
{
	char *report = arg;
	long bad = 0;
	for (int i = 0; i < 100; i++) {
		struct archive_doc d;
		struct archive_journal j;
		char *err = NULL;
		if (archive_parse(alt_msg, strlen(alt_msg), &d, &err) != 0 ||
		    count_of(d.body, "rhinoceros") != 1)
			bad++;
		archive_doc_free(&d);
		if (archive_journal_unwrap(report, strlen(report), &j, &err) != 1 ||
		    j.orig_len != strlen(orig_msg))
			bad++;
		archive_journal_free(&j);
		free(err);
	}
	return (void *)bad;
}

/* Worker threads parse at the same time (GMime is thread-safe after init). */
static void
test_threads(void **state)
{
	pthread_t t[4];
	char *report = journal_report(orig_msg, NULL, "\r\n");
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, thread_body, report), 0);
	for (int i = 0; i < 4; i++) {
		void *bad;
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_null(bad);
	}
	free(report);
}

/* ------------------------------------------------------------ corpus */

struct sweep {
	size_t files, bytes, failures;
	double seconds;
};

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sweep_file(struct sweep *sw, const char *path)
{
	char *data = NULL;
	size_t len = 0;
	struct archive_doc d;
	struct archive_journal j;
	char *err = NULL;

	if (read_file(path, &data, &len) < 0 || len == 0) {
		free(data);
		return;
	}
	double t0 = now_s();
	int rc = archive_parse(data, len, &d, &err);
	sw->seconds += now_s() - t0;
	sw->files++;
	sw->bytes += len;
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		free(err);
		sw->failures++;
	} else {
		assert_doc_clean(&d);
		archive_doc_free(&d);
	}
	if (archive_journal_unwrap(data, len, &j, &err) == 1)
		archive_journal_free(&j);
	free(err);
	free(data);
}

static void
sweep_dir(struct sweep *sw, const char *dir, int depth)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	if (dp == NULL || depth > 8) {
		if (dp != NULL)
			closedir(dp);
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		char path[4096];
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path) ||
		    stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			sweep_dir(sw, path, depth + 1);
		else if (S_ISREG(st.st_mode) && strstr(de->d_name, ".tsv") == NULL &&
		    strstr(de->d_name, ".md") == NULL)
			sweep_file(sw, path);
	}
	closedir(dp);
}

static void
test_corpus_mime(void **state)
{
	char dir[1024];
	struct stat st;
	struct sweep sw = { 0, 0, 0, 0 };
	snprintf(dir, sizeof(dir), "%s/mime", corpus_dir());
	if (stat(dir, &st) < 0)
		skip();
	sweep_dir(&sw, dir, 0);
	assert_true(sw.files > 500);
	assert_int_equal(sw.failures, 0);
}

static void
test_measure_maildir(void **state)
{
	char dir[1024];
	struct stat st;
	struct sweep sw = { 0, 0, 0, 0 };
	const char *m = getenv("MAILARK_MEASURE");
	snprintf(dir, sizeof(dir), "%s/mbox/linux-mips-2019-09to11-maildir/new", corpus_dir());
	if (m == NULL || strcmp(m, "1") != 0 || stat(dir, &st) < 0)
		skip();
	sweep_dir(&sw, dir, 0);
	assert_int_equal(sw.failures, 0);
	printf("measure archive_parse: %zu messages, %.1f MB in %.3f s: %.0f msg/s, %.1f MB/s\n",
	    sw.files, (double)sw.bytes / 1e6, sw.seconds, (double)sw.files / sw.seconds,
	    (double)sw.bytes / 1e6 / sw.seconds);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_missing_headers),
		cmocka_unit_test(test_rfc2047_subjects),
		cmocka_unit_test(test_alternative_prefers_plain),
		cmocka_unit_test(test_html_only),
		cmocka_unit_test(test_html_reducer),
		cmocka_unit_test(test_charsets),
		cmocka_unit_test(test_body_cap),
		cmocka_unit_test(test_attachments),
		cmocka_unit_test(test_nested_rfc822),
		cmocka_unit_test(test_refuses_empty),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_huge_charset_names),
		cmocka_unit_test(test_journal_unwrap),
		cmocka_unit_test(test_journal_not_and_malformed),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_corpus_mime),
		cmocka_unit_test(test_measure_maildir),
	};
	if (archive_parse_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
