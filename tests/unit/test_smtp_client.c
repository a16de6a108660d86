/*
 * Unit tests for the pure parts of the outbound SMTP client:
 * reply parsing, EHLO keywords, dot-stuffing, printable remote text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/smtp_client_proto.h"
#include "dns/dns.h"

static int
feed(struct smtp_reply *r, const char *line)
{
	return smtp_reply_feed(r, line, strlen(line));
}

static void
test_reply_single_line(void **state)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "250 2.0.0 Ok: queued"), 1);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 1);
	assert_string_equal(buf_cstr(&r.text), "2.0.0 Ok: queued");
	smtp_reply_free(&r);
}

static void
test_reply_multi_line(void **state)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "250-mx.example.com"), 0);
	assert_int_equal(feed(&r, "250-PIPELINING"), 0);
	assert_int_equal(feed(&r, "250 SIZE 1000"), 1);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 3);
	assert_string_equal(buf_cstr(&r.text), "mx.example.com\nPIPELINING\nSIZE 1000");
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "354"), 1);   /* bare code is a last line */
	assert_int_equal(r.code, 354);
	assert_int_equal(r.text.len, 0);
	smtp_reply_free(&r);
}

static void
test_reply_malformed(void **state)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "25"), -1);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "abc hello"), -1);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "650 no such class"), -1);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "250_x"), -1);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "250-first"), 0);
	assert_int_equal(feed(&r, "251 second"), -1);   /* code changed */
	assert_non_null(r.error);
	smtp_reply_free(&r);
}

static void
test_reply_limits(void **state)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	int rc = 0, i;
	for (i = 0; i < SMTP_REPLY_MAX_LINES + 5; i++) {
		rc = feed(&r, "250-x");
		if (rc != 0)
			break;
	}
	assert_int_equal(rc, -1);
	assert_int_equal(i, SMTP_REPLY_MAX_LINES);
	smtp_reply_reset(&r);
	char big[SMTP_REPLY_MAX_LINE + 10];
	memset(big, 'a', sizeof(big));
	memcpy(big, "250 ", 4);
	assert_int_equal(smtp_reply_feed(&r, big, sizeof(big)), -1);
	/* many long lines hit the 64 KiB total before the line count */
	smtp_reply_reset(&r);
	memcpy(big, "250-", 4);
	rc = 0;
	for (i = 0; i < 100 && rc == 0; i++)
		rc = smtp_reply_feed(&r, big, 4000);
	assert_int_equal(rc, -1);
	assert_true(i < 20);
	smtp_reply_free(&r);
}

static void
test_ehlo_keywords(void **state)
{
	struct smtp_reply r;
	uint64_t size = 99;
	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "250-mx.example.com Hello PIPELINING"), 0);
	assert_int_equal(feed(&r, "250-pipelining"), 0);
	assert_int_equal(feed(&r, "250-SIZE 52428800"), 0);
	assert_int_equal(feed(&r, "250-8BITMIME"), 0);
	assert_int_equal(feed(&r, "250-STARTTLS"), 0);
	assert_int_equal(feed(&r, "250-ENHANCEDSTATUSCODES"), 0);
	assert_int_equal(feed(&r, "250-CHUNKINGX"), 0);
	assert_int_equal(feed(&r, "250 DSN"), 1);
	unsigned ext = smtp_ehlo_parse(&r, &size);
	assert_int_equal(ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME |
	    SMTP_EXT_STARTTLS | SMTP_EXT_DSN);
	assert_int_equal(size, 52428800);
	smtp_reply_reset(&r);
	/* keywords on the greeting line do not count */
	assert_int_equal(feed(&r, "250 mx CHUNKING SMTPUTF8"), 1);
	assert_int_equal(smtp_ehlo_parse(&r, &size), 0);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "250-mx"), 0);
	assert_int_equal(feed(&r, "250-SIZE"), 0);
	assert_int_equal(feed(&r, "250-CHUNKING"), 0);
	assert_int_equal(feed(&r, "250 SMTPUTF8"), 1);
	ext = smtp_ehlo_parse(&r, &size);
	assert_int_equal(ext, SMTP_EXT_SIZE | SMTP_EXT_CHUNKING | SMTP_EXT_SMTPUTF8);
	assert_int_equal(size, 0);
	smtp_reply_free(&r);
}

static void
test_dotstuff_whole(void **state)
{
	const char *in = ".start\r\nmid.dle\r\n..two\r\n.\r\nend";
	struct buf out = BUF_INIT;
	int bol = 1;
	smtp_dotstuff(in, strlen(in), &bol, &out);
	assert_string_equal(buf_cstr(&out), "..start\r\nmid.dle\r\n...two\r\n..\r\nend");
	assert_int_equal(bol, 0);
	buf_free(&out);
}

static void
test_dotstuff_pieces(void **state)
{
	/* Split at every possible point: the result must not change. */
	const char *in = "a\r\n.b\r\n.\r\n..\r\nc.\r\n.";
	const char *want = "a\r\n..b\r\n..\r\n...\r\nc.\r\n..";
	size_t len = strlen(in);
	for (size_t cut = 0; cut <= len; cut++) {
		struct buf out = BUF_INIT;
		int bol = 1;
		smtp_dotstuff(in, cut, &bol, &out);
		smtp_dotstuff(in + cut, len - cut, &bol, &out);
		assert_string_equal(buf_cstr(&out), want);
		buf_free(&out);
	}
	/* one byte at a time */
	struct buf out = BUF_INIT;
	int bol = 1;
	for (size_t i = 0; i < len; i++)
		smtp_dotstuff(in + i, 1, &bol, &out);
	assert_string_equal(buf_cstr(&out), want);
	buf_free(&out);
}

static void
test_printable(void **state)
{
	struct buf out = BUF_INIT;
	smtp_printable("5.1.1 bad\r\nuser\x01\xff", 17, 100, &out);
	assert_string_equal(buf_cstr(&out), "5.1.1 bad  user??");
	buf_reset(&out);
	smtp_printable("abcdefgh", 8, 3, &out);
	assert_string_equal(buf_cstr(&out), "abc...");
	buf_free(&out);
}

static void
test_mx_rdata(void **state)
{
	char name[256];
	int pref = -1;
	static const unsigned char mx[] = { 0, 10, 4, 'm', 'a', 'i', 'l', 7, 'e', 'x', 'a', 'm',
	    'p', 'l', 'e', 3, 'c', 'o', 'm', 0 };
	assert_int_equal(dns_mx_rdata_parse(mx, sizeof(mx), &pref, name, sizeof(name)), 0);
	assert_int_equal(pref, 10);
	assert_string_equal(name, "mail.example.com");
	static const unsigned char null_mx[] = { 0, 0, 0 };
	assert_int_equal(dns_mx_rdata_parse(null_mx, sizeof(null_mx), &pref, name, sizeof(name)), 0);
	assert_int_equal(pref, 0);
	assert_string_equal(name, "");
	static const unsigned char big_pref[] = { 0xff, 0xfe, 1, 'a', 0 };
	assert_int_equal(dns_mx_rdata_parse(big_pref, sizeof(big_pref), &pref, name, sizeof(name)), 0);
	assert_int_equal(pref, 65534);
	/* label running past the end, compression pointer, trailing bytes, short */
	static const unsigned char overrun[] = { 0, 1, 9, 'a', 'b', 0 };
	static const unsigned char pointer[] = { 0, 1, 0xc0, 0x0c };
	static const unsigned char trailing[] = { 0, 1, 1, 'a', 0, 'x' };
	static const unsigned char dot_in_label[] = { 0, 1, 3, 'a', '.', 'b', 0 };
	assert_int_equal(dns_mx_rdata_parse(overrun, sizeof(overrun), &pref, name, sizeof(name)), -1);
	assert_int_equal(dns_mx_rdata_parse(pointer, sizeof(pointer), &pref, name, sizeof(name)), -1);
	assert_int_equal(dns_mx_rdata_parse(trailing, sizeof(trailing), &pref, name, sizeof(name)), -1);
	assert_int_equal(dns_mx_rdata_parse(dot_in_label, sizeof(dot_in_label), &pref, name,
	    sizeof(name)), -1);
	assert_int_equal(dns_mx_rdata_parse(mx, 2, &pref, name, sizeof(name)), -1);
	/* the name must fit the caller's buffer */
	assert_int_equal(dns_mx_rdata_parse(mx, sizeof(mx), &pref, name, 8), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_single_line),
		cmocka_unit_test(test_reply_multi_line),
		cmocka_unit_test(test_reply_malformed),
		cmocka_unit_test(test_reply_limits),
		cmocka_unit_test(test_ehlo_keywords),
		cmocka_unit_test(test_dotstuff_whole),
		cmocka_unit_test(test_dotstuff_pieces),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_mx_rdata),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
