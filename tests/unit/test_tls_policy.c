/*
 * Unit tests for the pure parts of the outbound TLS policy: the MTA-STS
 * policy body parser, the _mta-sts TXT record parser, mx pattern matching
 * and tls_policy_mx_allowed().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/tls_policy.h"
#include "lib/buf.h"
#include "queue/queue.h"

static int
parse(const char *text, struct tls_sts_policy *p, const char **why)
{
	*why = NULL;
	return tls_sts_parse_policy(text, strlen(text), p, why);
}

static void
test_policy_valid_crlf(void **state)
{
	struct tls_sts_policy p;
	const char *why;
	assert_int_equal(parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	    "mx: *.example.net\r\nmax_age: 86400\r\n", &p, &why), 0);
	assert_int_equal(p.mode, TLS_STS_ENFORCE);
	assert_int_equal(p.max_age, 86400);
	assert_int_equal(p.n_mx, 2);
	assert_string_equal(p.mx[0], "mail.example.com");
	assert_string_equal(p.mx[1], "*.example.net");
	tls_sts_policy_free(&p);
	assert_null(p.mx);
}

static void
test_policy_valid_lf_no_final_newline(void **state)
{
	struct tls_sts_policy p;
	const char *why;
	assert_int_equal(parse("version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age:604800",
	    &p, &why), 0);
	assert_int_equal(p.mode, TLS_STS_TESTING);
	assert_int_equal(p.max_age, 604800);
	assert_int_equal(p.n_mx, 1);
	tls_sts_policy_free(&p);
}

static void
test_policy_unknown_keys_ignored(void **state)
{
	struct tls_sts_policy p;
	const char *why;
	assert_int_equal(parse("version: STSv1\nmode: enforce\nfoo_bar: anything at all\n"
	    "mx: mx.example.org\nmax_age: 10\nx-extension: 1\n", &p, &why), 0);
	assert_int_equal(p.n_mx, 1);
	assert_int_equal(p.max_age, 10);
	tls_sts_policy_free(&p);
}

static void
test_policy_mode_none_needs_no_mx(void **state)
{
	struct tls_sts_policy p;
	const char *why;
	assert_int_equal(parse("version: STSv1\nmode: none\nmax_age: 100\n", &p, &why), 0);
	assert_int_equal(p.mode, TLS_STS_NONE);
	assert_int_equal(p.n_mx, 0);
	tls_sts_policy_free(&p);
}

static void
test_policy_invalid(void **state)
{
	static const char *const bad[] = {
		"",                                                           /* nothing */
		"mode: enforce\nmx: a.example\nmax_age: 1\n",                 /* no version */
		"version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", /* wrong version */
		"version: STSv1\nmx: a.example\nmax_age: 1\n",                /* no mode */
		"version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",  /* bad mode */
		"version: STSv1\nmode: enforce\nmax_age: 1\n",                /* enforce, no mx */
		"version: STSv1\nmode: enforce\nmx: a.example\n",             /* no max_age */
		"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
		"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n", /* 11 digits */
		"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n",
		"version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: *example.com\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nno colon here\n",
		"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nbad key!: x\n",
		"<html><body>Not found</body></html>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tls_sts_policy p;
		const char *why;
		assert_int_equal(parse(bad[i], &p, &why), -1);
		assert_non_null(why);
		assert_null(p.mx);
	}
}

static void
test_policy_max_age_bounds(void **state)
{
	struct tls_sts_policy p;
	const char *why;
	/* 10 digits, above a year: capped */
	assert_int_equal(parse("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 9999999999\n",
	    &p, &why), 0);
	assert_int_equal(p.max_age, TLS_STS_MAX_AGE);
	tls_sts_policy_free(&p);
	assert_int_equal(parse("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 31557600\n",
	    &p, &why), 0);
	assert_int_equal(p.max_age, 31557600);
	tls_sts_policy_free(&p);
	assert_int_equal(parse("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 0\n",
	    &p, &why), 0);
	assert_int_equal(p.max_age, 0);
	tls_sts_policy_free(&p);
}

static void
test_policy_limits(void **state)
{
	struct tls_sts_policy p;
	const char *why;
	struct buf b = BUF_INIT;
	buf_appendf(&b, "version: STSv1\nmode: enforce\nmax_age: 5\n");
	for (int i = 0; i <= TLS_STS_MAX_MX; i++)
		buf_appendf(&b, "mx: mx%d.example.com\n", i);
	assert_int_equal(tls_sts_parse_policy(b.data, b.len, &p, &why), -1);
	assert_string_equal(why, "too many mx patterns");
	buf_free(&b);
	/* a NUL byte inside the body */
	static const char nul[] = "version: STSv1\nmode: enforce\0\nmx: a.example\nmax_age: 5\n";
	assert_int_equal(tls_sts_parse_policy(nul, sizeof(nul) - 1, &p, &why), -1);
	/* over 64 kB */
	char *big = malloc(TLS_STS_MAX_BODY + 2);
	memset(big, 'a', TLS_STS_MAX_BODY + 1);
	big[TLS_STS_MAX_BODY + 1] = '\0';
	assert_int_equal(tls_sts_parse_policy(big, TLS_STS_MAX_BODY + 1, &p, &why), -1);
	free(big);
}

static void
test_txt(void **state)
{
	char id[33];
	assert_int_equal(tls_sts_parse_txt("v=STSv1; id=20240101T000000;", id), 0);
	assert_string_equal(id, "20240101T000000");
	assert_int_equal(tls_sts_parse_txt("v=STSv1;id=abc", id), 0);
	assert_string_equal(id, "abc");
	assert_int_equal(tls_sts_parse_txt("v=STSv1; id=abc; ext=1", id), 0);
	assert_string_equal(id, "abc");
	assert_int_equal(tls_sts_parse_txt("v=STSv1; ", id), -1);            /* no id */
	assert_int_equal(tls_sts_parse_txt("id=abc; v=STSv1", id), -1);      /* v not first */
	assert_int_equal(tls_sts_parse_txt("v=STSv2; id=abc", id), -1);
	assert_int_equal(tls_sts_parse_txt("v=STSv1; id=a-b", id), -1);      /* not alnum */
	assert_int_equal(tls_sts_parse_txt("v=STSv1; id=", id), -1);
	assert_int_equal(tls_sts_parse_txt("v=STSv1; id=a; id=b", id), -1);
	assert_int_equal(tls_sts_parse_txt(
	    "v=STSv1; id=123456789012345678901234567890123", id), -1);       /* 33 chars */
	assert_int_equal(tls_sts_parse_txt("v=STSv1; garbage", id), -1);
}

static void
test_mx_match(void **state)
{
	assert_true(tls_sts_mx_match("mail.example.com", "mail.example.com"));
	assert_true(tls_sts_mx_match("mail.example.com", "MAIL.Example.COM."));
	assert_false(tls_sts_mx_match("mail.example.com", "mail2.example.com"));
	assert_true(tls_sts_mx_match("*.example.com", "mx1.example.com"));
	assert_false(tls_sts_mx_match("*.example.com", "a.b.example.com"));   /* one label only */
	assert_false(tls_sts_mx_match("*.example.com", "example.com"));
	assert_false(tls_sts_mx_match("*.example.com", ".example.com"));
	assert_false(tls_sts_mx_match("*.example.com", "mx1.example.com.evil"));
	assert_false(tls_sts_mx_match("*.example.com", "mx1example.com"));
}

static void
test_mx_allowed(void **state)
{
	const char *const pats[] = { "mail.sts.test", "*.backup.test" };
	struct tls_decision d = { TLSREQ_VERIFIED, "mta-sts enforce", 0, pats, 2 };
	assert_true(tls_policy_mx_allowed(&d, "mail.sts.test"));
	assert_true(tls_policy_mx_allowed(&d, "mx9.backup.test"));
	assert_false(tls_policy_mx_allowed(&d, "evil.sts.test"));
	struct tls_decision none = { TLSREQ_NONE, NULL, 0, NULL, 0 };
	assert_true(tls_policy_mx_allowed(&none, "anything.example"));
}

/* Without a running module, the DLP flag alone decides (synchronously). */
static int decided;
static struct tls_decision last;

static void
on_decision(void *arg, const struct tls_decision *d)
{
	decided++;
	last = *d;
	assert_ptr_equal(arg, &decided);
}

static void
test_lookup_without_module(void **state)
{
	decided = 0;
	tls_policy_lookup(NULL, "acme", "example.com", 0, on_decision, &decided);
	assert_int_equal(decided, 1);
	assert_int_equal(last.req, TLSREQ_NONE);
	tls_policy_lookup(NULL, "acme", "example.com", QUEUE_F_REQUIRE_TLS, on_decision, &decided);
	assert_int_equal(decided, 2);
	assert_int_equal(last.req, TLSREQ_VERIFIED);
	assert_string_equal(last.why, "dlp");
	assert_int_equal(last.n_mx, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_valid_crlf),
		cmocka_unit_test(test_policy_valid_lf_no_final_newline),
		cmocka_unit_test(test_policy_unknown_keys_ignored),
		cmocka_unit_test(test_policy_mode_none_needs_no_mx),
		cmocka_unit_test(test_policy_invalid),
		cmocka_unit_test(test_policy_max_age_bounds),
		cmocka_unit_test(test_policy_limits),
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_mx_match),
		cmocka_unit_test(test_mx_allowed),
		cmocka_unit_test(test_lookup_without_module),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
