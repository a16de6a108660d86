/* Unit tests for smtp/smtp_parse: verbs, paths, ESMTP parameters, BDAT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "queue/queue.h"
#include "smtp/smtp_parse.h"

static enum smtp_cmd
verb(const char *line, const char **args)
{
	struct smtp_cmdline cl;
	assert_int_equal(smtp_parse_command(line, strlen(line), &cl), SMTP_PERR_OK);
	if (args != NULL)
		*args = cl.args;
	return cl.cmd;
}

static void
test_command_verbs(void **state)
{
	const char *args;
	assert_int_equal(verb("EHLO client.example", &args), SMTP_CMD_EHLO);
	assert_string_equal(args, "client.example");
	assert_int_equal(verb("ehlo   x", &args), SMTP_CMD_EHLO);
	assert_string_equal(args, "x");
	assert_int_equal(verb("mail FROM:<a@b.c>", &args), SMTP_CMD_MAIL);
	assert_string_equal(args, "FROM:<a@b.c>");
	assert_int_equal(verb("DATA", &args), SMTP_CMD_DATA);
	assert_string_equal(args, "");
	assert_int_equal(verb("StartTLS", NULL), SMTP_CMD_STARTTLS);
	assert_int_equal(verb("BDAT 10 LAST", NULL), SMTP_CMD_BDAT);
	assert_int_equal(verb("QUITX", NULL), SMTP_CMD_UNKNOWN);
	assert_int_equal(verb("DAT", NULL), SMTP_CMD_UNKNOWN);
	assert_int_equal(verb("", NULL), SMTP_CMD_UNKNOWN);
	assert_int_equal(verb("GET / HTTP/1.0", NULL), SMTP_CMD_UNKNOWN);
	assert_string_equal(smtp_cmd_name(SMTP_CMD_RCPT), "RCPT");
}

static void
test_command_bad_bytes(void **state)
{
	struct smtp_cmdline cl;
	const char nul[] = "NOOP\0x";
	assert_int_equal(smtp_parse_command(nul, sizeof(nul) - 1, &cl), SMTP_PERR_LINE);
	assert_int_equal(smtp_parse_command("NOOP\rX", 6, &cl), SMTP_PERR_LINE);
	assert_int_equal(smtp_parse_command("NOOP\x1b", 5, &cl), SMTP_PERR_LINE);
	assert_string_equal(smtp_perr_reply(SMTP_PERR_LINE, 0),
	    "500 5.5.2 Invalid characters in command");
}

static void
test_helo(void **state)
{
	char name[SMTP_HELO_MAX + 1];
	assert_int_equal(smtp_parse_helo("mx.example.org", name), SMTP_PERR_OK);
	assert_string_equal(name, "mx.example.org");
	assert_int_equal(smtp_parse_helo("[192.0.2.1]  ", name), SMTP_PERR_OK);
	assert_string_equal(name, "[192.0.2.1]");
	assert_int_equal(smtp_parse_helo("", name), SMTP_PERR_SYNTAX);
	assert_int_equal(smtp_parse_helo("two words", name), SMTP_PERR_SYNTAX);
	assert_int_equal(smtp_parse_helo("caf\xc3\xa9", name), SMTP_PERR_SYNTAX);
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(smtp_parse_helo(longname, name), SMTP_PERR_SYNTAX);
}

static enum smtp_perr
path(const char *s, int is_mail, int utf8, struct smtp_path *p)
{
	return smtp_parse_path(s, strlen(s), is_mail, utf8, p);
}

static void
test_path_good(void **state)
{
	struct smtp_path p;
	assert_int_equal(path("<Alice@Example.COM>", 0, 0, &p), SMTP_PERR_OK);
	assert_string_equal(p.addr, "Alice@Example.COM");   /* kept as given */
	assert_string_equal(p.domain, "example.com");        /* lower-cased */
	assert_false(p.null_path);

	assert_int_equal(path("<a.b+tag@sub.example.org>", 0, 0, &p), SMTP_PERR_OK);
	assert_string_equal(p.domain, "sub.example.org");

	assert_int_equal(path("<\"john doe\"@example.org>", 0, 0, &p), SMTP_PERR_OK);
	assert_string_equal(p.addr, "\"john doe\"@example.org");

	assert_int_equal(path("<\"a>b\\\"c\"@example.org>", 0, 0, &p), SMTP_PERR_OK);

	assert_int_equal(path("<@relay1.example,@relay2.example:user@example.org>", 0, 0, &p),
	    SMTP_PERR_OK);
	assert_string_equal(p.addr, "user@example.org");      /* source route dropped */

	assert_int_equal(path("<user@[192.0.2.1]>", 0, 0, &p), SMTP_PERR_OK);
	assert_string_equal(p.domain, "[192.0.2.1]");
	assert_int_equal(path("<user@[IPv6:2001:db8::1]>", 0, 0, &p), SMTP_PERR_OK);

	assert_int_equal(path("<>", 1, 0, &p), SMTP_PERR_OK);
	assert_true(p.null_path);
	assert_string_equal(p.addr, "");

	assert_int_equal(path("<Postmaster>", 0, 0, &p), SMTP_PERR_OK);
	assert_true(p.postmaster);
	assert_string_equal(p.domain, "");
}

static void
test_path_bad(void **state)
{
	struct smtp_path p;
	assert_int_equal(path("<>", 0, 0, &p), SMTP_PERR_NULL_RCPT);
	assert_int_equal(path("user@example.org", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user@example.org", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<postmaster>", 1, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<@example.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user@>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<.user@example.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<us..er@example.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user.@example.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<us er@example.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user@exa mple.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user@-example.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user@example-.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user@example..org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user@example.org.>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<user@[999.1.1.1]>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<\"unterminated@example.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<a@b@example.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<@relay:>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<@bad_relay!:u@example.org>", 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
}

static void
test_path_limits(void **state)
{
	struct smtp_path p;
	char s[600];
	/* local part: 64 ok, 65 too long */
	memset(s, 0, sizeof(s));
	s[0] = '<';
	memset(s + 1, 'l', 64);
	strcat(s, "@example.org>");
	assert_int_equal(path(s, 0, 0, &p), SMTP_PERR_OK);
	memset(s, 0, sizeof(s));
	s[0] = '<';
	memset(s + 1, 'l', 65);
	strcat(s, "@example.org>");
	assert_int_equal(path(s, 0, 0, &p), SMTP_PERR_ADDR_LONG);
	/* whole path over 256 */
	memset(s, 0, sizeof(s));
	strcpy(s, "<u@");
	for (int i = 0; i < 5; i++)
		strcat(s, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.");
	strcat(s, "org>");
	assert_true(strlen(s) > 256);
	assert_int_equal(path(s, 0, 0, &p), SMTP_PERR_ADDR_LONG);
	/* label over 63 */
	memset(s, 0, sizeof(s));
	strcpy(s, "<u@");
	memset(s + 3, 'a', 64);
	strcat(s, ".org>");
	assert_int_equal(path(s, 0, 0, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_string_equal(smtp_perr_reply(SMTP_PERR_ADDR_LONG, 0),
	    "553 5.1.3 Recipient address too long");
}

static void
test_path_utf8(void **state)
{
	struct smtp_path p;
	const char *u = "<j\xc3\xb6rg@b\xc3\xbc" "cher.example>";
	assert_int_equal(path(u, 0, 0, &p), SMTP_PERR_ADDR_UTF8);
	assert_int_equal(path(u, 0, 1, &p), SMTP_PERR_OK);
	assert_true(p.utf8);
	assert_string_equal(p.addr, "j\xc3\xb6rg@b\xc3\xbc" "cher.example");
	/* malformed UTF-8: overlong '/' and a lone continuation byte */
	assert_int_equal(path("<a\xc0\xaf@example.org>", 0, 1, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<a\x80@example.org>", 0, 1, &p), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(path("<a\xed\xa0\x80@example.org>", 0, 1, &p), SMTP_PERR_ADDR_SYNTAX);
}

static void
test_mail_params(void **state)
{
	struct smtp_mail m;
	assert_int_equal(smtp_parse_mail("FROM:<bob@example.org>", &m), SMTP_PERR_OK);
	assert_string_equal(m.path.addr, "bob@example.org");
	assert_false(m.has_size);
	assert_int_equal(m.body, SMTP_BODY_NONE);

	assert_int_equal(smtp_parse_mail("from: <bob@example.org> SIZE=12345 BODY=8BITMIME "
	    "RET=HDRS ENVID=abc+2Bdef AUTH=<>", &m), SMTP_PERR_OK);
	assert_true(m.has_size);
	assert_int_equal(m.size, 12345);
	assert_int_equal(m.body, SMTP_BODY_8BITMIME);
	assert_int_equal(m.ret, SMTP_RET_HDRS);
	assert_string_equal(m.envid, "abc+2Bdef");

	assert_int_equal(smtp_parse_mail("FROM:<> body=binarymime ret=full", &m), SMTP_PERR_OK);
	assert_true(m.path.null_path);
	assert_int_equal(m.body, SMTP_BODY_BINARYMIME);
	assert_int_equal(m.ret, SMTP_RET_FULL);

	/* SMTPUTF8 enables UTF-8 in the same command's path */
	assert_int_equal(smtp_parse_mail("FROM:<\xc3\xa9@example.org>", &m), SMTP_PERR_ADDR_UTF8);
	assert_int_equal(smtp_parse_mail("FROM:<\xc3\xa9@example.org> SMTPUTF8", &m), SMTP_PERR_OK);
	assert_true(m.smtputf8);

	/* huge SIZE saturates rather than wrapping */
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> SIZE=99999999999999999999999", &m),
	    SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> SIZE=18446744073709551616", &m),
	    SMTP_PERR_OK);
	assert_int_equal(m.size, UINT64_MAX);
}

static void
test_mail_bad(void **state)
{
	struct smtp_mail m;
	assert_int_equal(smtp_parse_mail("TO:<a@b.c>", &m), SMTP_PERR_SYNTAX);
	assert_int_equal(smtp_parse_mail("FROM:a@b.c", &m), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c>junk", &m), SMTP_PERR_ADDR_SYNTAX);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> SIZE=12x", &m), SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> SIZE=", &m), SMTP_PERR_SYNTAX);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> SIZE=1 SIZE=2", &m), SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> BODY=9BIT", &m), SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> RET=ALL", &m), SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> SMTPUTF8=yes", &m), SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> ENVID=a+zz", &m), SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> ENVID=a+2", &m), SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> XFOO=1", &m), SMTP_PERR_PARAM_UNKNOWN);
	assert_int_equal(smtp_parse_mail("FROM:<a@b.c> -bad", &m), SMTP_PERR_SYNTAX);
	char envid[200] = "FROM:<a@b.c> ENVID=";
	memset(envid + strlen(envid), 'x', 101);
	assert_int_equal(smtp_parse_mail(envid, &m), SMTP_PERR_PARAM_VALUE);
	assert_string_equal(smtp_perr_reply(SMTP_PERR_PARAM_UNKNOWN, 1),
	    "555 5.5.4 Unsupported parameter");
	assert_string_equal(smtp_perr_reply(SMTP_PERR_ADDR_SYNTAX, 1),
	    "501 5.1.7 Bad sender address syntax");
}

static void
test_rcpt_params(void **state)
{
	struct smtp_rcpt r;
	assert_int_equal(smtp_parse_rcpt("TO:<alice@acme.test>", 0, &r), SMTP_PERR_OK);
	assert_string_equal(r.path.addr, "alice@acme.test");
	assert_int_equal(r.notify, 0);
	assert_string_equal(r.orcpt, "");

	assert_int_equal(smtp_parse_rcpt("to:<alice@acme.test> NOTIFY=SUCCESS,delay "
	    "ORCPT=rfc822;alice+40acme.test", 0, &r), SMTP_PERR_OK);
	assert_int_equal(r.notify, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_DELAY);
	assert_string_equal(r.orcpt, "rfc822;alice+40acme.test");

	assert_int_equal(smtp_parse_rcpt("TO:<a@b.c> NOTIFY=NEVER", 0, &r), SMTP_PERR_OK);
	assert_int_equal(r.notify, QUEUE_NOTIFY_NEVER);

	assert_int_equal(smtp_parse_rcpt("TO:<a@b.c> NOTIFY=NEVER,SUCCESS", 0, &r),
	    SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_rcpt("TO:<a@b.c> NOTIFY=FAILURE,", 0, &r),
	    SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_rcpt("TO:<a@b.c> NOTIFY=SOMETIMES", 0, &r),
	    SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_rcpt("TO:<a@b.c> NOTIFY=DELAY,DELAY", 0, &r),
	    SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_rcpt("TO:<a@b.c> ORCPT=noseparator", 0, &r),
	    SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_rcpt("TO:<a@b.c> ORCPT=rfc822;", 0, &r),
	    SMTP_PERR_PARAM_VALUE);
	assert_int_equal(smtp_parse_rcpt("TO:<a@b.c> SIZE=10", 0, &r), SMTP_PERR_PARAM_UNKNOWN);
	assert_int_equal(smtp_parse_rcpt("TO:<>", 0, &r), SMTP_PERR_NULL_RCPT);
	assert_int_equal(smtp_parse_rcpt("FROM:<a@b.c>", 0, &r), SMTP_PERR_SYNTAX);
	/* UTF-8 recipient only inside an SMTPUTF8 transaction */
	assert_int_equal(smtp_parse_rcpt("TO:<\xc3\xa9@acme.test>", 0, &r), SMTP_PERR_ADDR_UTF8);
	assert_int_equal(smtp_parse_rcpt("TO:<\xc3\xa9@acme.test>", 1, &r), SMTP_PERR_OK);
}

static void
test_bdat(void **state)
{
	uint64_t n;
	int last;
	assert_int_equal(smtp_parse_bdat("1000", &n, &last), SMTP_PERR_OK);
	assert_int_equal(n, 1000);
	assert_false(last);
	assert_int_equal(smtp_parse_bdat("0 LAST", &n, &last), SMTP_PERR_OK);
	assert_int_equal(n, 0);
	assert_true(last);
	assert_int_equal(smtp_parse_bdat("42 last ", &n, &last), SMTP_PERR_OK);
	assert_true(last);
	assert_int_equal(smtp_parse_bdat("", &n, &last), SMTP_PERR_SYNTAX);
	assert_int_equal(smtp_parse_bdat("-1", &n, &last), SMTP_PERR_SYNTAX);
	assert_int_equal(smtp_parse_bdat("10 FIRST", &n, &last), SMTP_PERR_SYNTAX);
	assert_int_equal(smtp_parse_bdat("10 LAST x", &n, &last), SMTP_PERR_SYNTAX);
	assert_int_equal(smtp_parse_bdat("10LAST", &n, &last), SMTP_PERR_SYNTAX);
	assert_int_equal(smtp_parse_bdat("99999999999999999999999", &n, &last), SMTP_PERR_SYNTAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_verbs),
		cmocka_unit_test(test_command_bad_bytes),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_path_good),
		cmocka_unit_test(test_path_bad),
		cmocka_unit_test(test_path_limits),
		cmocka_unit_test(test_path_utf8),
		cmocka_unit_test(test_mail_params),
		cmocka_unit_test(test_mail_bad),
		cmocka_unit_test(test_rcpt_params),
		cmocka_unit_test(test_bdat),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
