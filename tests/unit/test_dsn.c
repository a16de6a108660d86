/*
 * test_dsn — dsn_compose() output parsed structurally: headers, the three
 * MIME parts and their boundaries, the delivery-status fields per
 * recipient, CRLF-only lines, RET=HDRS / size cap; dsn_wanted() never
 * targets the null sender; dsn_status_from_reply().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/dsn.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "queue/queue.h"

static const char original[] =
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.com\r\n"
    "Subject: report\r\n"
    "\r\n"
    "Body line one\r\n"
    "--not-a-boundary\r\n";

struct dsn_case {
	struct queue_envelope env;
	struct queue_rcpt rcpts[3];
	size_t idx[2];
	const char *diag[2];
	const char *mtas[2];
	struct dsn_params p;
	struct buf out;
};

static void
dsn_case_init(struct dsn_case *c, const char *orig, size_t orig_len)
{
	memset(c, 0, sizeof(*c));
	c->rcpts[0].addr = "bob@example.com";
	c->rcpts[0].orcpt = "rfc822;Bob@Example.com";
	c->rcpts[1].addr = "carol@example.com";
	c->rcpts[2].addr = "dave@example.com";
	snprintf(c->env.id, sizeof(c->env.id), "%s", "01TESTTESTTEST01");
	c->env.sender = "alice@example.org";
	c->env.envid = "ENV42";
	c->env.arrival = 1700000000;
	c->env.rcpts = c->rcpts;
	c->env.nrcpts = 3;
	c->idx[0] = 0;
	c->idx[1] = 2;
	c->diag[0] = "mx.example.com[192.0.2.1] said: 550 5.1.1 <bob@example.com>: no such user\r\n(more)";
	c->diag[1] = "no route for domain example.com";
	c->mtas[0] = "mx.example.com";
	c->mtas[1] = NULL;
	c->p.hostname = "gw.example.net";
	c->p.boundary_seed = "01SEEDSEEDSEED01";
	c->p.now = 1700000500;
	c->p.kind = DSN_FAILED;
	c->p.env = &c->env;
	c->p.rcpt_idx = c->idx;
	c->p.diagnostics = c->diag;
	c->p.remote_mtas = c->mtas;
	c->p.n = 2;
	c->p.original = orig;
	c->p.original_len = orig_len;
}

/* Returns the header section's value of name (first match), or NULL. */
static char *
header_value(const char *msg, const char *name)
{
	size_t nl = strlen(name);
	const char *end = strstr(msg, "\r\n\r\n");
	for (const char *p = msg; p != NULL && p < end; ) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			return xstrndup(v, strcspn(v, "\r"));
		}
		p = strstr(p, "\r\n");
		if (p != NULL)
			p += 2;
	}
	return NULL;
}

static void
assert_crlf_only(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\n')
			assert_true(i > 0 && b->data[i - 1] == '\r');
		if (b->data[i] == '\r')
			assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
	}
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* Splits at the boundary: parts[i] are the texts between delimiters. */
static size_t
split_parts(const char *msg, const char *boundary, char **parts, size_t max)
{
	char delim[256];
	snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	size_t n = 0;
	const char *p = strstr(msg, delim);
	while (p != NULL && n < max) {
		p += strlen(delim);
		if (strncmp(p, "--", 2) == 0)
			break;
		assert_memory_equal(p, "\r\n", 2);
		p += 2;
		const char *next = strstr(p, delim);
		assert_non_null(next);
		parts[n++] = xstrndup(p, (size_t)(next - p));
		p = next;
	}
	return n;
}

static void
test_structure(void **state)
{
	struct dsn_case c;
	dsn_case_init(&c, original, sizeof(original) - 1);
	dsn_compose(&c.p, &c.out);
	const char *m = buf_cstr(&c.out);
	assert_crlf_only(&c.out);

	char *v = header_value(m, "From");
	assert_non_null(strstr(v, "MAILER-DAEMON@gw.example.net"));
	free(v);
	v = header_value(m, "To");
	assert_string_equal(v, "<alice@example.org>");
	free(v);
	v = header_value(m, "Subject");
	assert_string_equal(v, "Undelivered Mail Returned to Sender");
	free(v);
	v = header_value(m, "Auto-Submitted");
	assert_string_equal(v, "auto-replied");
	free(v);
	v = header_value(m, "Content-Type");
	assert_non_null(strstr(v, "multipart/report; report-type=delivery-status;"));
	free(v);
	assert_non_null(strstr(m, "\tboundary=\"01SEEDSEEDSEED01/gw.example.net\"\r\n"));
	v = header_value(m, "Date");
	assert_non_null(v);
	assert_non_null(strstr(v, "+0000"));
	free(v);

	const char *boundary = "01SEEDSEEDSEED01/gw.example.net";
	char *parts[4] = { 0 };
	assert_int_equal(split_parts(m, boundary, parts, 4), 3);
	assert_int_equal(count(m, "--01SEEDSEEDSEED01/gw.example.net--\r\n"), 1);
	assert_true(c.out.len > 2 && strcmp(m + c.out.len - 2, "\r\n") == 0);

	/* 1: human readable, one line per reported recipient, CR/LF from replies flattened */
	assert_non_null(strstr(parts[0], "Content-Type: text/plain"));
	assert_non_null(strstr(parts[0], "<bob@example.com>: mx.example.com[192.0.2.1] said: 550 5.1.1"));
	assert_non_null(strstr(parts[0], "<dave@example.com>: no route for domain"));
	assert_null(strstr(parts[0], "carol"));

	/* 2: delivery-status */
	const char *ds = parts[1];
	assert_non_null(strstr(ds, "Content-Type: message/delivery-status\r\n\r\n"));
	assert_non_null(strstr(ds, "\r\nReporting-MTA: dns; gw.example.net\r\n"));
	assert_non_null(strstr(ds, "\r\nOriginal-Envelope-Id: ENV42\r\n"));
	assert_non_null(strstr(ds, "\r\nArrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
	assert_int_equal(count(ds, "Final-Recipient: rfc822; "), 2);
	assert_non_null(strstr(ds, "\r\n\r\nFinal-Recipient: rfc822; bob@example.com\r\n"
	    "Original-Recipient: rfc822;Bob@Example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
	    "Remote-MTA: dns; mx.example.com\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: no such user  (more)\r\n"));
	assert_non_null(strstr(ds, "\r\n\r\nFinal-Recipient: rfc822; dave@example.com\r\n"
	    "Action: failed\r\nStatus: 5.0.0\r\n"
	    "Diagnostic-Code: X-mailark; no route for domain example.com\r\n"));
	assert_null(strstr(ds, "carol"));

	/* 3: the whole original (RET not HDRS, small) */
	assert_non_null(strstr(parts[2], "Content-Type: message/rfc822\r\n\r\n"));
	assert_non_null(strstr(parts[2], "Subject: report\r\n\r\nBody line one\r\n"));
	for (int i = 0; i < 3; i++)
		free(parts[i]);
	buf_free(&c.out);
}

static void
test_ret_hdrs_and_cap(void **state)
{
	struct dsn_case c;
	dsn_case_init(&c, original, sizeof(original) - 1);
	c.env.ret_hdrs = 1;
	dsn_compose(&c.p, &c.out);
	const char *m = buf_cstr(&c.out);
	assert_non_null(strstr(m, "Content-Type: text/rfc822-headers\r\n\r\n"));
	assert_non_null(strstr(m, "Subject: report\r\n"));
	assert_null(strstr(m, "Body line one"));
	assert_crlf_only(&c.out);
	buf_free(&c.out);

	/* Too big for the cap: headers only, even with RET=FULL. */
	size_t big = DSN_MAX_RETURN + 100;
	char *orig = xmalloc(big);
	memset(orig, 'x', big);
	memcpy(orig, "Subject: big\n\n", 14);   /* bare LFs get normalised */
	dsn_case_init(&c, orig, big);
	dsn_compose(&c.p, &c.out);
	m = buf_cstr(&c.out);
	assert_non_null(strstr(m, "Content-Type: text/rfc822-headers\r\n\r\nSubject: big\r\n"));
	assert_true(c.out.len < 16384);
	assert_crlf_only(&c.out);
	buf_free(&c.out);
	free(orig);
}

static void
test_hostile_text_stays_one_line(void **state)
{
	struct dsn_case c;
	dsn_case_init(&c, original, sizeof(original) - 1);
	c.rcpts[0].addr = "evil@example.com\r\nBcc: victim@example.net";
	c.env.sender = "alice@example.org>\r\nX-Injected: 1";
	dsn_compose(&c.p, &c.out);
	assert_crlf_only(&c.out);
	assert_null(strstr(buf_cstr(&c.out), "\r\nBcc:"));
	assert_null(strstr(buf_cstr(&c.out), "\r\nX-Injected:"));
	buf_free(&c.out);
}

static void
test_delayed(void **state)
{
	struct dsn_case c;
	dsn_case_init(&c, original, sizeof(original) - 1);
	c.p.kind = DSN_DELAYED;
	c.diag[0] = "mx[192.0.2.1] said: 451 4.7.1 try later";
	dsn_compose(&c.p, &c.out);
	assert_non_null(strstr(buf_cstr(&c.out), "Action: delayed\r\nStatus: 4.7.1\r\n"));
	assert_non_null(strstr(buf_cstr(&c.out), "Action: delayed\r\nStatus: 4.0.0\r\n"));
	buf_free(&c.out);
}

static void
test_wanted(void **state)
{
	struct queue_rcpt r = { .addr = "x@example.com" };
	struct queue_envelope env = { .sender = "", .rcpts = &r, .nrcpts = 1 };
	assert_false(dsn_wanted(&env, &r));           /* null sender: never */
	r.notify = QUEUE_NOTIFY_FAILURE;
	assert_false(dsn_wanted(&env, &r));
	env.sender = "a@example.org";
	assert_true(dsn_wanted(&env, &r));
	r.notify = 0;
	assert_true(dsn_wanted(&env, &r));            /* not given = FAILURE */
	r.notify = QUEUE_NOTIFY_NEVER;
	assert_false(dsn_wanted(&env, &r));
	r.notify = QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_DELAY;
	assert_false(dsn_wanted(&env, &r));
}

static void
test_status_from_reply(void **state)
{
	char s[16];
	dsn_status_from_reply("h[1.2.3.4] said: 550 5.7.1 denied", '5', s);
	assert_string_equal(s, "5.7.1");
	dsn_status_from_reply("452 4.2.2 mailbox full", '5', s);
	assert_string_equal(s, "4.2.2");
	dsn_status_from_reply("554 no enhanced code", '4', s);
	assert_string_equal(s, "5.0.0");
	dsn_status_from_reply("550 4.1.1 class mismatch", '4', s);
	assert_string_equal(s, "5.0.0");
	dsn_status_from_reply("4.4.1 connect to mx[192.0.2.1]:25: Connection refused", '5', s);
	assert_string_equal(s, "4.4.1");
	dsn_status_from_reply("connection refused", '4', s);
	assert_string_equal(s, "4.0.0");
	dsn_status_from_reply(NULL, '2', s);
	assert_string_equal(s, "2.0.0");
	dsn_status_from_reply("250 2.0.0 Ok: queued", '2', s);
	assert_string_equal(s, "2.0.0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_ret_hdrs_and_cap),
		cmocka_unit_test(test_hostile_text_stays_one_line),
		cmocka_unit_test(test_delayed),
		cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_status_from_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
