/*
 * Unit tests for src/hygiene/impersonation.c: look-alike domains (edit
 * distance, homoglyphs, punycode confusables, added words and hyphens, TLD
 * swaps; the tenant's own domain and subdomains and unrelated domains not
 * flagged) and the stage (executive display names from outside addresses in
 * their different spellings, the configured action, Reply-To, allow-listed
 * senders, outbound mail untouched).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "archive/archive_parse.h"
#include "hygiene/hygiene.h"
#include "hygiene/impersonation.h"
#include "hygiene/policy.h"
#include "unit_hygiene.h"

static void
test_lookalike_positive(void **state)
{
	(void)state;
	static const char *const yes[] = {
		"acrne.test",          /* rn → m */
		"acme.tset",           /* a TLD that is not ours: label equal */
		"acme.co",             /* TLD swap */
		"acne.test",           /* one substitution */
		"acmee.test",          /* one insertion */
		"amce.test",           /* transposition */
		"acm.test",            /* deletion */
		"acme-payments.test",  /* added word */
		"secure-acme.test",    /* word in front */
		"acmepay.test",        /* glued word */
		"ac-me.test",          /* inserted hyphen */
		"xn--acm-tdd.test",    /* "acmе" with a Cyrillic е */
		"mail.acrne.test",     /* a subdomain of a look-alike */
		"ACRNE.TEST",          /* case */
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!impersonation_lookalike(yes[i], "acme.test"))
			fail_msg("%s should look like acme.test", yes[i]);
	assert_true(impersonation_lookalike("paypa1.test", "paypal.test"));
	assert_true(impersonation_lookalike("rnicrosoft.test", "microsoft.test"));
	assert_true(impersonation_lookalike("micrsooft.test", "microsoft.test"));
	assert_true(impersonation_lookalike("mikrosofft.test", "microsoft.test")); /* 2, long label */
	assert_true(impersonation_lookalike("vvidget.test", "widget.test"));
	assert_true(impersonation_lookalike("g00gle.test", "google.test"));
	assert_true(impersonation_lookalike("acme.co.uk", "acme.com"));
	assert_true(impersonation_lookalike("xn--pypal-4ve.test", "paypal.test")); /* Cyrillic а */
}

static void
test_lookalike_negative(void **state)
{
	(void)state;
	static const char *const no[] = {
		"acme.test",           /* itself */
		"mail.acme.test",      /* its subdomain */
		"ACME.test.",          /* itself, case and final dot */
		"example.test",
		"zebra.test",
		"acmecorporation-unrelated-stuff-long.test.evil", /* registrable label is "test" */
		"",
		"xn--zz-.test",         /* broken punycode */
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (impersonation_lookalike(no[i], "acme.test"))
			fail_msg("%s should not look like acme.test", no[i]);
	/* short labels are compared by skeleton only */
	assert_false(impersonation_lookalike("ab.test", "ac.test"));
	assert_true(impersonation_lookalike("a0.test", "ao.test"));
	/* distance 2 is too much for a short label */
	assert_false(impersonation_lookalike("axmx.test", "acme.test"));
	assert_false(impersonation_lookalike(NULL, "acme.test"));
}

/* ---- the stage ---- */

static struct hygiene_policy pol;
static char *exec_items[4];
static char *domains[] = { (char *)"acme.test", (char *)"acme-corp.test" };
static char *rcpts[] = { (char *)"bob@acme.test", NULL };

static void
policy_reset(void)
{
	pol = *policy_defaults();
	exec_items[0] = (char *)"Jane Doe";
	exec_items[1] = (char *)"José Álvarez";
	pol.executives.items = exec_items;
	pol.executives.n = 2;
	pol.lookalike = 1;
	pol.impersonation_action = POLICY_ACT_QUARANTINE;
	pol.allow_senders.items = NULL;
	pol.allow_senders.n = 0;
}

static char *
from_name(GMimeMessage *mime, char **addr_r)
{
	*addr_r = NULL;
	InternetAddressList *l = mime != NULL ? g_mime_message_get_from(mime) : NULL;
	if (l == NULL || internet_address_list_length(l) < 1)
		return NULL;
	InternetAddress *a = internet_address_list_get_address(l, 0);
	if (INTERNET_ADDRESS_IS_MAILBOX(a))
		*addr_r = strdup(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)));
	const char *n = internet_address_get_name(a);
	return n != NULL && n[0] != '\0' ? strdup(n) : NULL;
}

static void
run_dir(const char *from_hdr, const char *extra, enum queue_direction dir,
    struct hygiene_result *r)
{
	char msg[2048];
	snprintf(msg, sizeof(msg), "From: %s\r\n%sTo: bob@acme.test\r\nSubject: hi\r\n\r\nbody\r\n",
	    from_hdr, extra);
	struct hygiene_msg m;
	unit_hygiene_msg(&m, &pol, dir, "someone@outside.test", rcpts, msg, strlen(msg));
	m.client_ip = "192.0.2.1";
	m.mime = archive_parse_message(m.data, m.len);
	char *addr = NULL;
	char *name = from_name(m.mime, &addr);
	m.header_from = addr;
	m.header_from_name = name;
	m.tenant_domains = domains;
	m.n_tenant_domains = 2;
	unit_hygiene_run(impersonation_stage, &m, r);
	if (m.mime != NULL)
		g_object_unref(m.mime);
	free(addr);
	free(name);
}

static void
run(const char *from_hdr, struct hygiene_result *r)
{
	run_dir(from_hdr, "", QUEUE_INBOUND, r);
}

static const char *
reasons(struct hygiene_result *r)
{
	return r->reasons.len > 0 ? buf_cstr(&r->reasons) : "";
}

static void
test_display_names(void **state)
{
	(void)state;
	policy_reset();
	static const char *const hits[] = {
		"Jane Doe <ceo@freemail.test>",
		"\"Doe, Jane\" <x@freemail.test>",
		"\"JANE DOE\" <x@freemail.test>",
		"\"Jane Q. Doe\" <x@freemail.test>",
		"\"jane  doe.\" <x@freemail.test>",
		"=?utf-8?q?Jos=C3=A9_=C3=81lvarez?= <x@freemail.test>",
		"\"Jose Alvarez\" <x@freemail.test>",
		"\"Alvarez, Jose\" <x@freemail.test>",
	};
	for (size_t i = 0; i < sizeof(hits) / sizeof(hits[0]); i++) {
		struct hygiene_result r;
		run(hits[i], &r);
		if (r.action != HYGIENE_QUARANTINE || strstr(reasons(&r), "display name") == NULL)
			fail_msg("%s: action %d reasons %s", hits[i], r.action, reasons(&r));
		hygiene_result_free(&r);
	}
	struct hygiene_result r;
	run("Jane Doe <x@freemail.test>", &r);
	assert_string_equal(reasons(&r),
	    "impersonation:display name \"Jane Doe\" from outside address");
	hygiene_result_free(&r);

	static const char *const misses[] = {
		"Jane Doe <jane@acme.test>",           /* the real one */
		"Jane Doe <jane@eu.acme.test>",        /* a subdomain of ours */
		"Jane Doe <jane@acme-corp.test>",      /* our other domain */
		"John Doe <x@freemail.test>",
		"Jane <x@freemail.test>",
		"x@freemail.test",
	};
	for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
		run(misses[i], &r);
		if (r.action != HYGIENE_ACCEPT || r.reasons.len != 0)
			fail_msg("%s: action %d reasons %s", misses[i], r.action, reasons(&r));
		hygiene_result_free(&r);
	}
}

static void
test_domains_and_actions(void **state)
{
	(void)state;
	policy_reset();
	struct hygiene_result r;
	run("Billing <billing@acrne.test>", &r);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	assert_string_equal(reasons(&r), "impersonation:look-alike domain acrne.test of acme.test");
	hygiene_result_free(&r);

	/* Reply-To only */
	run_dir("Billing <billing@partner.test>", "Reply-To: <pay@acme-corp.tset>\r\n",
	    QUEUE_INBOUND, &r);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	assert_non_null(strstr(reasons(&r), "look-alike domain acme-corp.tset of acme-corp.test"));
	hygiene_result_free(&r);

	/* the action is the tenant's */
	pol.impersonation_action = POLICY_ACT_TAG;
	run("Billing <billing@acrne.test>", &r);
	assert_int_equal(r.action, HYGIENE_TAG);
	hygiene_result_free(&r);
	pol.impersonation_action = POLICY_ACT_REJECT;
	run("Jane Doe <x@freemail.test>", &r);
	assert_int_equal(r.action, HYGIENE_REJECT);
	assert_non_null(r.reply);
	assert_int_equal(strncmp(r.reply, "550 5.7.1", 9), 0);
	hygiene_result_free(&r);

	/* lookalike off: names still checked, domains not */
	pol.impersonation_action = POLICY_ACT_QUARANTINE;
	pol.lookalike = 0;
	run("Billing <billing@acrne.test>", &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	hygiene_result_free(&r);
	pol.lookalike = 1;

	/* outbound mail is not looked at */
	run_dir("Billing <billing@acrne.test>", "", QUEUE_OUTBOUND, &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	hygiene_result_free(&r);

	/* a legitimate domain of ours and an unrelated one */
	run("Ops <ops@acme.test>", &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	hygiene_result_free(&r);
	run("News <news@example.test>", &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	assert_int_equal(r.reasons.len, 0);
	hygiene_result_free(&r);
}

static void
test_allow_listed_sender(void **state)
{
	(void)state;
	policy_reset();
	static char *allow[] = { (char *)"outside.test" };
	pol.allow_senders.items = allow;
	pol.allow_senders.n = 1;
	struct hygiene_result r;
	run("Jane Doe <x@acrne.test>", &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	hygiene_result_free(&r);
	pol.allow_senders.n = 0;
	run("Jane Doe <x@acrne.test>", &r);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	/* both findings recorded */
	assert_non_null(strstr(reasons(&r), "display name"));
	assert_non_null(strstr(reasons(&r), "look-alike domain acrne.test"));
	hygiene_result_free(&r);
}

int
main(void)
{
	g_mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookalike_positive),
		cmocka_unit_test(test_lookalike_negative),
		cmocka_unit_test(test_display_names),
		cmocka_unit_test(test_domains_and_actions),
		cmocka_unit_test(test_allow_listed_sender),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	g_mime_shutdown();
	return rc;
}
