/*
 * Unit tests for the tenant hygiene policy (src/hygiene/policy.c and
 * src/store/store_hygiene.c): the defaults the header documents, address
 * list matching, validation errors that name the key, setting and reading
 * back (snapshots handed out stay as they were), lists with escaped commas,
 * "default" resetting a key, policy_describe, persistence across a reopen,
 * and a removed tenant's settings going with it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "server.h"
#include "store/store.h"
#include "unit_tmp.h"

struct fixture {
	char dir[256];
	char *db;
	struct server srv;
	struct hygiene h;
};

static void
fx_open(struct fixture *f)
{
	char *err = NULL;
	memset(&f->srv, 0, sizeof(f->srv));
	memset(&f->h, 0, sizeof(f->h));
	assert_int_equal(store_open(f->db, &f->srv.store, &err), 0);
	f->h.srv = &f->srv;
	f->h.policy_ops = &hygiene_policy_store_ops;
	assert_int_equal(policy_cache_new(&f->h, &err), 0);
}

static void
fx_close(struct fixture *f)
{
	policy_cache_free(&f->h);
	store_close(&f->srv.store);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *err = NULL;
	if (f == NULL || unit_tmpdir(f->dir, sizeof(f->dir), "policy") < 0)
		return -1;
	f->db = buf_printf("%s/mailark.db", f->dir);
	fx_open(f);
	if (store_tenant_add(f->srv.store, "acme", "default", &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	fx_close(f);
	char *cmd = buf_printf("rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(cmd);
	free(f->db);
	free(f);
	return rc == 0 ? 0 : -1;
}

/* Sets a key; returns the error (caller frees) or NULL. */
static char *
set(struct fixture *f, const char *key, const char *value)
{
	char *err = NULL;
	if (policy_set(&f->h, "acme", key, value, &err) == 0) {
		assert_null(err);
		return NULL;
	}
	assert_non_null(err);
	return err;
}

static void
assert_set_fails(struct fixture *f, const char *key, const char *value, const char *want)
{
	char *err = set(f, key, value);
	assert_non_null(err);
	if (strstr(err, want) == NULL)
		fail_msg("error for %s=%s: \"%s\" does not mention \"%s\"", key, value, err, want);
	free(err);
}

/* ------------------------------------------------------------- defaults */

static void
test_defaults(void **state)
{
	(void)state;
	const struct hygiene_policy *p = policy_defaults();
	assert_true(p->enabled);
	assert_true(p->av_enabled);
	assert_int_equal(p->av_on_failure, POLICY_FAIL_CLOSED);
	assert_int_equal(p->av_action, POLICY_ACT_REJECT);
	assert_int_equal(p->spf_fail_action, POLICY_ACT_TAG);
	assert_int_equal(p->auth_on_failure, POLICY_FAIL_OPEN);
	assert_true(p->spam_tag_score == 5.0);
	assert_true(p->spam_quarantine_score == 8.0);
	assert_true(p->spam_reject_score == 15.0);
	assert_true(p->spam_dnsbl_score == 3.0);
	assert_true(p->spam_bayes);
	assert_false(p->spam_rspamd);
	assert_string_equal(p->spam_subject_tag, "");
	assert_int_equal(p->impersonation_action, POLICY_ACT_QUARANTINE);
	assert_true(policy_list_has(&p->attach_block_ext, "exe"));
	assert_true(policy_list_has(&p->attach_block_ext, "VBS"));
	assert_false(policy_list_has(&p->attach_block_ext, "pdf"));
	assert_int_equal(p->attach_encrypted, POLICY_ACT_QUARANTINE);
	assert_false(p->quarantine_user_release);
	assert_int_equal(p->quarantine_days, 30);
	assert_string_equal(p->disclaimer_text, "");
	assert_int_equal(p->dlp_action, DLP_ACT_HOLD);
	assert_false(p->dlp_cards);
	assert_int_equal(p->block_senders.n, 0);
	assert_true(p->mta_sts);
	assert_null(p->tenant);
	policy_release(&p);
	assert_null(p);
}

static void
test_unknown_tenant_gets_defaults(void **state)
{
	struct fixture *f = *state;
	const struct hygiene_policy *p = policy_get(&f->h, "nobody");
	assert_true(p->enabled);
	assert_true(p->spam_tag_score == 5.0);
	policy_release(&p);
	p = policy_get(&f->h, NULL);
	assert_int_equal(p->dlp_action, DLP_ACT_HOLD);
	policy_release(&p);
}

/* ------------------------------------------------------------- matching */

static void
test_list_match_address(void **state)
{
	(void)state;
	char *items[] = { "jane@Example.com", "@exact.org", "wide.net", "*.star.io" };
	struct policy_list l = { items, 4 };
	assert_true(policy_list_match_address(&l, "JANE@example.COM"));
	assert_false(policy_list_match_address(&l, "john@example.com"));
	assert_true(policy_list_match_address(&l, "a@exact.org"));
	assert_false(policy_list_match_address(&l, "a@sub.exact.org"));
	assert_true(policy_list_match_address(&l, "a@wide.net"));
	assert_true(policy_list_match_address(&l, "a@deep.sub.WIDE.net"));
	assert_false(policy_list_match_address(&l, "a@notwide.net"));
	assert_true(policy_list_match_address(&l, "a@star.io"));
	assert_true(policy_list_match_address(&l, "a@x.star.io"));
	assert_false(policy_list_match_address(&l, "a@xstar.io"));
	assert_false(policy_list_match_address(&l, ""));
	assert_false(policy_list_match_address(&l, NULL));
	struct policy_list empty = { NULL, 0 };
	assert_false(policy_list_match_address(&empty, "a@wide.net"));
	assert_true(policy_list_has(&l, "WIDE.NET"));
	assert_false(policy_list_has(&l, "wide"));
}

/* ------------------------------------------------------------- validation */

static void
test_validation_errors_name_the_key(void **state)
{
	struct fixture *f = *state;
	assert_set_fails(f, "no.such", "1", "unknown key 'no.such'");
	assert_set_fails(f, "spam.tag_score", "lots", "spam.tag_score: not a number");
	assert_set_fails(f, "spam.tag_score", "5x", "spam.tag_score: not a number");
	assert_set_fails(f, "spam.tag_score", "-1", "spam.tag_score: must be between");
	assert_set_fails(f, "quarantine.retention_days", "0", "quarantine.retention_days");
	assert_set_fails(f, "quarantine.retention_days", "2.5", "whole number");
	assert_set_fails(f, "hygiene.enabled", "maybe", "hygiene.enabled: must be yes or no");
	assert_set_fails(f, "av.action", "tag", "av.action: must be one of quarantine, reject");
	assert_set_fails(f, "av.on_failure", "sometimes", "av.on_failure: must be one of");
	assert_set_fails(f, "dlp.action", "shred", "require_tls");
	assert_set_fails(f, "envelope.block_senders", "ok.test, bad address", "'bad address'");
	assert_set_fails(f, "spam.dnsbl", "zen.test, *.x.test", "spam.dnsbl");
	assert_set_fails(f, "dlp.patterns", "abc, (unclosed", "dlp.patterns: '(unclosed'");
	assert_set_fails(f, "dlp.notify", "not-an-address", "dlp.notify");
	assert_set_fails(f, "spam.subject_tag", "a\tb", "control characters");
	char *err = NULL;
	assert_int_equal(policy_set(&f->h, "ghost", "spam.tag_score", "4", &err), -1);
	assert_non_null(strstr(err, "no tenant 'ghost'"));
	free(err);
	/* nothing of that was stored */
	const struct hygiene_policy *p = policy_get(&f->h, "acme");
	assert_true(p->spam_tag_score == 5.0);
	assert_int_equal(p->block_senders.n, 0);
	policy_release(&p);
}

/* ------------------------------------------------------------- set / get */

static void
test_set_and_snapshots(void **state)
{
	struct fixture *f = *state;
	const struct hygiene_policy *before = policy_get(&f->h, "acme");
	assert_null(set(f, "spam.tag_score", " 6.5 "));
	assert_null(set(f, "av.action", "Quarantine"));
	assert_null(set(f, "hygiene.enabled", "off"));
	assert_null(set(f, "envelope.block_senders", " @Evil.test ,, bad.test,x@OK.test "));
	assert_null(set(f, "dlp.patterns", "[0-9]{3\\,4}, secret"));
	assert_null(set(f, "attach.block_ext", ".EXE, js"));
	assert_null(set(f, "disclaimer.text", "Sent by ACME\\nConfidential"));
	const struct hygiene_policy *p = policy_get(&f->h, "ACME");
	assert_string_equal(p->tenant, "acme");
	assert_true(p->spam_tag_score == 6.5);
	assert_int_equal(p->av_action, POLICY_ACT_QUARANTINE);
	assert_false(p->enabled);
	assert_int_equal(p->block_senders.n, 3);
	assert_string_equal(p->block_senders.items[0], "@evil.test");
	assert_string_equal(p->block_senders.items[1], "bad.test");
	assert_string_equal(p->block_senders.items[2], "x@ok.test");
	assert_int_equal(p->dlp_patterns.n, 2);
	assert_string_equal(p->dlp_patterns.items[0], "[0-9]{3,4}");
	assert_string_equal(p->attach_block_ext.items[0], "exe");
	assert_string_equal(p->disclaimer_text, "Sent by ACME\\nConfidential");
	/* the snapshot handed out before is unchanged and still valid */
	assert_true(before->spam_tag_score == 5.0);
	assert_true(before->enabled);
	assert_int_equal(before->block_senders.n, 0);
	policy_release(&before);
	/* "default" removes the setting */
	assert_null(set(f, "spam.tag_score", "default"));
	const struct hygiene_policy *q = policy_get(&f->h, "acme");
	assert_true(q->spam_tag_score == 5.0);
	assert_int_equal(q->av_action, POLICY_ACT_QUARANTINE);
	assert_true(p->spam_tag_score == 6.5);
	policy_release(&q);
	policy_release(&p);
}

static json_t *
describe_key(json_t *arr, const char *key)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		if (strcmp(json_string_value(json_object_get(v, "key")), key) == 0)
			return v;
	}
	fail_msg("no key %s in policy_describe", key);
	return NULL;
}

static void
test_describe(void **state)
{
	struct fixture *f = *state;
	assert_null(set(f, "dlp.patterns", "a\\,b, c"));
	assert_null(set(f, "spam.reject_score", "20"));
	json_t *arr = policy_describe(&f->h, "acme");
	assert_true(json_is_array(arr));
	assert_true(json_array_size(arr) >= 45);
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		assert_non_null(json_string_value(json_object_get(v, "value")));
		assert_non_null(json_string_value(json_object_get(v, "default")));
		assert_true(strlen(json_string_value(json_object_get(v, "help"))) > 10);
		assert_true(json_is_boolean(json_object_get(v, "set")));
	}
	json_t *r = describe_key(arr, "spam.reject_score");
	assert_string_equal(json_string_value(json_object_get(r, "value")), "20");
	assert_string_equal(json_string_value(json_object_get(r, "default")), "15");
	assert_true(json_is_true(json_object_get(r, "set")));
	json_t *d = describe_key(arr, "dlp.patterns");
	assert_string_equal(json_string_value(json_object_get(d, "value")), "a\\,b, c");
	json_t *a = describe_key(arr, "av.on_failure");
	assert_string_equal(json_string_value(json_object_get(a, "value")), "closed");
	assert_true(json_is_false(json_object_get(a, "set")));
	json_decref(arr);
}

static void
test_persists_and_goes_with_tenant(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	assert_null(set(f, "spam.quarantine_score", "9"));
	fx_close(f);
	fx_open(f);
	const struct hygiene_policy *p = policy_get(&f->h, "acme");
	assert_true(p->spam_quarantine_score == 9.0);
	policy_release(&p);
	assert_int_equal(store_tenant_remove(f->srv.store, "acme", &err), 0);
	assert_int_equal(store_tenant_add(f->srv.store, "acme", "default", &err), 0);
	fx_close(f);
	fx_open(f);
	p = policy_get(&f->h, "acme");
	assert_true(p->spam_quarantine_score == 8.0);
	policy_release(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_list_match_address),
		cmocka_unit_test_setup_teardown(test_unknown_tenant_gets_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation_errors_name_the_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_and_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persists_and_goes_with_tenant, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
