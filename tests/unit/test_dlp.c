/*
 * Unit tests for src/hygiene/dlp.c: the Luhn check, card numbers in text
 * (separators, longer digit runs), keywords as whole words (case folding,
 * UTF-8), regex patterns (invalid ones ignored), attachment types, and the
 * four actions.  Each test runs dlp_stage() on a hand-built outbound message
 * with a hand-built policy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib-object.h>

#include "archive/archive_parse.h"
#include "hygiene/dlp.h"
#include "hygiene/hygiene.h"
#include "hygiene/policy.h"
#include "unit_hygiene.h"

static struct hygiene_policy pol;
static char *kw_items[4];
static char *pat_items[4];
static char *att_items[4];

static void
policy_reset(void)
{
	pol = *policy_defaults();
	pol.dlp_action = DLP_ACT_HOLD;
	pol.dlp_notify = (char *)"";
}

static void
set_list(struct policy_list *l, char **store, const char *a, const char *b)
{
	size_t n = 0;
	if (a != NULL)
		store[n++] = (char *)a;
	if (b != NULL)
		store[n++] = (char *)b;
	l->items = store;
	l->n = n;
}

static char *rcpts[] = { (char *)"bob@example.net", NULL };

/* Runs the stage over a message; r must be freed by the caller. */
static void
run(const char *msg, struct hygiene_result *r)
{
	struct hygiene_msg m;
	unit_hygiene_msg(&m, &pol, QUEUE_OUTBOUND, "alice@acme.test", rcpts, msg, strlen(msg));
	m.mime = archive_parse_message(msg, m.len);
	unit_hygiene_run(dlp_stage, &m, r);
	if (m.mime != NULL)
		g_object_unref(m.mime);
}

static char *
plain_msg(const char *subject, const char *body)
{
	size_t n = strlen(subject) + strlen(body) + 256;
	char *s = malloc(n);
	assert_non_null(s);
	int w = snprintf(s, n,
	    "From: Alice <alice@acme.test>\r\nTo: bob@example.net\r\nSubject: %s\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", subject, body);
	assert_true(w > 0 && (size_t)w < n);
	return s;
}

/* Runs a plain message and says whether DLP matched (hold → quarantine). */
static int
matches(const char *subject, const char *body)
{
	char *msg = plain_msg(subject, body);
	struct hygiene_result r;
	run(msg, &r);
	int hit = r.action == HYGIENE_QUARANTINE;
	hygiene_result_free(&r);
	free(msg);
	return hit;
}

static void
test_luhn(void **state)
{
	(void)state;
	assert_true(dlp_luhn_valid("4111111111111111"));
	assert_true(dlp_luhn_valid("4111 1111 1111 1111"));
	assert_true(dlp_luhn_valid("4111-1111-1111-1111"));
	assert_true(dlp_luhn_valid("378282246310005"));      /* 15 digits */
	assert_true(dlp_luhn_valid("6011111111111117"));
	assert_false(dlp_luhn_valid("4111111111111112"));
	assert_false(dlp_luhn_valid("1234567812345678"));
	assert_false(dlp_luhn_valid("0000000000"));          /* too short */
	assert_false(dlp_luhn_valid("41111111111111111111111"));   /* too long */
	assert_false(dlp_luhn_valid("4111x1111111111111"));
	assert_false(dlp_luhn_valid(""));
}

static void
test_cards_in_text(void **state)
{
	(void)state;
	policy_reset();
	pol.dlp_cards = 1;
	assert_true(matches("order", "my card is 4111 1111 1111 1111 thanks"));
	assert_true(matches("order", "card:4111-1111-1111-1111."));
	assert_true(matches("4111111111111111", "in the subject"));
	assert_false(matches("order", "not luhn 4111 1111 1111 1112"));
	assert_false(matches("order", "embedded 94111111111111111 in a longer run"));
	assert_false(matches("order", "id 41111111111111110000000000"));
	assert_false(matches("order", "double  spaces 4111  1111  1111  1111"));
	pol.dlp_cards = 0;
	assert_false(matches("order", "my card is 4111 1111 1111 1111"));
}

static void
test_keywords(void **state)
{
	(void)state;
	policy_reset();
	set_list(&pol.dlp_keywords, kw_items, "secret", "Projekt Übermensch");
	assert_true(matches("hi", "this is SECRET stuff"));
	assert_true(matches("Secret plans", "body"));
	assert_true(matches("hi", "(secret)"));
	assert_false(matches("hi", "secretary and topsecret"));
	assert_true(matches("hi", "about projekt übermensch."));
	assert_true(matches("hi", "about PROJEKT ÜBERMENSCH"));
	assert_false(matches("hi", "about projekt übermenschen"));
	assert_false(matches("hi", "nothing here"));
}

static void
test_patterns(void **state)
{
	(void)state;
	policy_reset();
	set_list(&pol.dlp_patterns, pat_items, "([", "ACME-[0-9]{4}-[A-Z]{2}");
	assert_true(matches("hi", "ref ACME-1234-XY ok"));
	assert_false(matches("hi", "ref ACME-12-XY ok"));
	/* the invalid one is ignored, the valid one still works after a change */
	set_list(&pol.dlp_patterns, pat_items, "^Subject line", "zz+top");
	assert_true(matches("hi", "a zzztop b"));
	assert_false(matches("hi", "a ztop b"));
}

static void
test_actions(void **state)
{
	(void)state;
	policy_reset();
	set_list(&pol.dlp_keywords, kw_items, "confidential", NULL);
	char *msg = plain_msg("Q3 numbers", "This is confidential.");
	struct hygiene_result r;

	pol.dlp_action = DLP_ACT_BLOCK;
	run(msg, &r);
	assert_int_equal(r.action, HYGIENE_REJECT);
	assert_string_equal(r.reply,
	    "550 5.7.1 Message blocked by data loss prevention policy (keyword confidential)");
	hygiene_result_free(&r);

	pol.dlp_action = DLP_ACT_HOLD;
	run(msg, &r);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	assert_non_null(strstr(r.reasons.data, "dlp:hold keyword confidential"));
	hygiene_result_free(&r);

	pol.dlp_action = DLP_ACT_REQUIRE_TLS;
	run(msg, &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	assert_int_equal(r.require_tls, 1);
	hygiene_result_free(&r);

	pol.dlp_action = DLP_ACT_NOTIFY;
	pol.dlp_notify = (char *)"compliance@acme.test";
	run(msg, &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	assert_string_equal(r.notify_to, "compliance@acme.test");
	assert_non_null(strstr(r.notify_text, "keyword confidential"));
	assert_non_null(strstr(r.notify_text, "alice@acme.test"));
	assert_non_null(strstr(r.notify_text, "bob@example.net"));
	assert_non_null(strstr(r.notify_text, "Q3 numbers"));
	hygiene_result_free(&r);
	free(msg);
}

static void
test_reason_hides_card(void **state)
{
	(void)state;
	policy_reset();
	pol.dlp_cards = 1;
	pol.dlp_action = DLP_ACT_NOTIFY;
	pol.dlp_notify = (char *)"compliance@acme.test";
	char *msg = plain_msg("pay", "4111 1111 1111 1111");
	struct hygiene_result r;
	run(msg, &r);
	assert_non_null(strstr(r.reasons.data, "dlp:notify card"));
	assert_null(strstr(r.reasons.data, "4111"));
	assert_null(strstr(r.notify_text, "4111"));
	hygiene_result_free(&r);
	free(msg);
}

static void
test_attach_types(void **state)
{
	(void)state;
	policy_reset();
	set_list(&pol.dlp_attach_types, att_items, "xlsx", "application/pdf");
	const char *tmpl =
	    "From: alice@acme.test\r\nTo: bob@example.net\r\nSubject: files\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
	    "--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
	    "--b1\r\nContent-Type: application/octet-stream\r\n"
	    "Content-Disposition: attachment; filename=\"%s\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b1--\r\n";
	char msg[2048];
	struct hygiene_result r;
	/* by extension */
	snprintf(msg, sizeof(msg), tmpl, "Salaries.XLSX", "aGVsbG8=");
	run(msg, &r);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	assert_non_null(strstr(r.reasons.data, "attachment xlsx"));
	hygiene_result_free(&r);
	/* by true type: a PDF named .bin ("%PDF-1.4\n%...") */
	snprintf(msg, sizeof(msg), tmpl, "data.bin",
	    "JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCnRyYWlsZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9GCg==");
	run(msg, &r);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	assert_non_null(strstr(r.reasons.data, "application/pdf"));
	hygiene_result_free(&r);
	/* neither */
	snprintf(msg, sizeof(msg), tmpl, "notes.txt", "aGVsbG8=");
	run(msg, &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	hygiene_result_free(&r);
}

static void
test_html_and_qp_text(void **state)
{
	(void)state;
	policy_reset();
	set_list(&pol.dlp_keywords, kw_items, "password", NULL);
	const char *html =
	    "From: alice@acme.test\r\nTo: bob@example.net\r\nSubject: x\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
	    "<html><body><p>the <b>password</b>&nbsp;is</p></body></html>\r\n";
	struct hygiene_result r;
	run(html, &r);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	hygiene_result_free(&r);
	const char *qp =
	    "From: alice@acme.test\r\nTo: bob@example.net\r\nSubject: x\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "Gr=FC=DFe, the pass=\r\nword is here\r\n";
	run(qp, &r);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	hygiene_result_free(&r);
}

static void *
thread_match(void *arg)
{
	(void)arg;
	static int hit;
	hit = matches("hi", "ref ACME-1234-XY ok");
	return &hit;
}

/* The per-thread regex cache and libmagic handle are freed at thread exit
 * (the ASan build reports a leak otherwise). */
static void
test_thread_state(void **state)
{
	(void)state;
	policy_reset();
	set_list(&pol.dlp_patterns, pat_items, "ACME-[0-9]{4}-[A-Z]{2}", NULL);
	set_list(&pol.dlp_attach_types, att_items, "application/pdf", NULL);
	pthread_t t;
	void *ret = NULL;
	assert_int_equal(pthread_create(&t, NULL, thread_match, NULL), 0);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_int_equal(*(int *)ret, 1);
}

static void
test_no_rules_inbound(void **state)
{
	(void)state;
	policy_reset();
	assert_false(matches("secret", "4111 1111 1111 1111"));
}

int
main(void)
{
	assert_int_equal(archive_parse_init(), 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_luhn),
		cmocka_unit_test(test_cards_in_text),
		cmocka_unit_test(test_keywords),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_actions),
		cmocka_unit_test(test_reason_hides_card),
		cmocka_unit_test(test_attach_types),
		cmocka_unit_test(test_html_and_qp_text),
		cmocka_unit_test(test_thread_state),
		cmocka_unit_test(test_no_rules_inbound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
