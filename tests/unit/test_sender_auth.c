/*
 * Unit tests for sender authentication and DKIM keys: the organisational
 * domain helper, the Authentication-Results value, renaming forged
 * Authentication-Results headers (directly and through the stage), DKIM key
 * generation (files, modes, refusals) and `show`, and signing a message with
 * dkim_sign_stage() then verifying it in-process with libopendkim against
 * the generated key (tampered body → bad signature).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <opendkim/dkim.h>

#include "config/config.h"
#include "hygiene/auth_results.h"
#include "hygiene/dkim_sign.h"
#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "hygiene/sender_auth.h"
#include "lib/buf.h"
#include "lib/sys.h"
#include "unit_tmp.h"

static void
test_org_domain(void **state)
{
	(void)state;
	char out[256];
	assert_int_equal(auth_org_domain("mail.example.com", out, sizeof(out)), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(auth_org_domain("a.b.Example.CO.UK.", out, sizeof(out)), 0);
	assert_string_equal(out, "example.co.uk");
	assert_int_equal(auth_org_domain("example.com", out, sizeof(out)), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(auth_org_domain("co.uk", out, sizeof(out)), 0);
	assert_string_equal(out, "co.uk");
	assert_int_equal(auth_org_domain("localhost", out, sizeof(out)), 0);
	assert_string_equal(out, "localhost");
	assert_int_equal(auth_org_domain("", out, sizeof(out)), -1);
	assert_int_equal(auth_org_domain("example.com", out, 5), -1);
}

static void
test_results_value(void **state)
{
	(void)state;
	struct auth_results ar;
	memset(&ar, 0, sizeof(ar));
	ar.authserv_id = "mx.example";
	char *v = auth_results_value(&ar);
	assert_string_equal(v, "mx.example; none");
	free(v);
	ar.checked_spf = ar.checked_dkim = ar.checked_dmarc = 1;
	ar.spf = HAUTH_PASS;
	ar.spf_mailfrom = "alice@sender.test";
	ar.dkim = HAUTH_PASS;
	ar.dkim_domain = "sender.test";
	ar.dkim_selector = "s1";
	ar.dmarc = HAUTH_FAIL;
	ar.dmarc_from = "sender.test";
	ar.dmarc_policy = "reject";
	v = auth_results_value(&ar);
	assert_string_equal(v, "mx.example; spf=pass smtp.mailfrom=alice@sender.test; dkim=pass "
	    "header.d=sender.test header.s=s1; dmarc=fail policy.dmarc=reject "
	    "header.from=sender.test");
	free(v);
	/* null sender: the HELO; hostile values cannot add properties */
	ar.spf_mailfrom = "";
	ar.spf_helo = "evil; dkim=pass (x)";
	ar.checked_dkim = ar.checked_dmarc = 0;
	ar.spf = HAUTH_SOFTFAIL;
	v = auth_results_value(&ar);
	assert_string_equal(v, "mx.example; spf=softfail smtp.helo=evildkim=passx");
	free(v);
}

static const char forged_msg[] =
	"Received: from x ([192.0.2.1])\r\n"
	"Authentication-Results: MX.example; spf=pass\r\n"
	"Authentication-Results: other.example; dkim=pass\r\n"
	"authentication-results:  (comment) mx.example;\r\n"
	"\tdkim=pass header.d=bank.test\r\n"
	"Subject: hi\r\n"
	"\r\n"
	"Authentication-Results: mx.example; in the body\r\n";

static void
test_rename_forged(void **state)
{
	(void)state;
	unsigned char *out = NULL;
	size_t outlen = 0;
	int n = auth_results_rename_forged((const unsigned char *)forged_msg,
	    sizeof(forged_msg) - 1, "mx.example", &out, &outlen);
	assert_int_equal(n, 2);
	assert_non_null(out);
	char *s = strndup((const char *)out, outlen);
	assert_non_null(strstr(s, "X-Mailark-Removed-Authentication-Results: MX.example; spf=pass\r\n"));
	assert_non_null(strstr(s, "\r\nAuthentication-Results: other.example; dkim=pass\r\n"));
	assert_non_null(strstr(s, "X-Mailark-Removed-Authentication-Results:  (comment) mx.example;"
	    "\r\n\tdkim=pass"));
	assert_non_null(strstr(s, "\r\n\r\nAuthentication-Results: mx.example; in the body\r\n"));
	assert_int_equal(outlen, sizeof(forged_msg) - 1 + 2 * strlen("X-Mailark-Removed-"));
	free(s);
	free(out);
	/* nothing to rename */
	n = auth_results_rename_forged((const unsigned char *)forged_msg, sizeof(forged_msg) - 1,
	    "nobody.example", &out, &outlen);
	assert_int_equal(n, 0);
	assert_null(out);
}

/* A hand-built pipeline: config (hostname, data_dir), policy, message. */
struct fixture {
	char dir[256];
	struct config cfg;
	struct hygiene h;
	struct hygiene_policy pol;
	struct hygiene_msg m;
};

static void
fixture_init(struct fixture *f, const char *data, const char *from)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(unit_tmpdir(f->dir, sizeof(f->dir), "dkim"), 0);
	f->cfg.hostname = (char *)"mx.example";
	f->cfg.data_dir = f->dir;
	f->h.cfg = &f->cfg;
	f->pol = *policy_defaults();
	f->m.h = &f->h;
	f->m.pol = &f->pol;
	f->m.qid = "TESTQID";
	f->m.sender = "alice@acme.test";
	f->m.client_ip = "192.0.2.1";
	f->m.data = (const unsigned char *)data;
	f->m.len = strlen(data);
	f->m.header_from = from;
}

static void
fixture_free(struct fixture *f)
{
	char *cmd = buf_printf("rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void
test_stage_renames_forged(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, forged_msg, NULL);
	f.pol.spf_enabled = f.pol.dkim_verify = f.pol.dmarc_enabled = 0;
	struct hygiene_result r;
	memset(&r, 0, sizeof(r));
	char *err = NULL;
	assert_int_equal(sender_auth_stage(&f.m, &r, &err), 0);
	assert_null(err);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	assert_string_equal(buf_cstr(&r.headers), "Authentication-Results: mx.example; none\r\n");
	assert_non_null(r.rewritten);
	assert_int_equal(r.rewritten_len, sizeof(forged_msg) - 1 + 2 * strlen("X-Mailark-Removed-"));
	hygiene_result_free(&r);
	fixture_free(&f);
}

static void
test_keygen_show(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, "x", NULL);
	json_t *out = NULL;
	char *err = NULL;
	assert_int_equal(dkim_keygen(f.dir, "Acme.TEST", "s1", 1024, &out, &err), 0);
	assert_string_equal(json_string_value(json_object_get(out, "domain")), "acme.test");
	assert_string_equal(json_string_value(json_object_get(out, "dns_name")),
	    "s1._domainkey.acme.test");
	const char *txt = json_string_value(json_object_get(out, "dns_txt"));
	assert_non_null(txt);
	assert_int_equal(strncmp(txt, "v=DKIM1; k=rsa; p=MI", 20), 0);
	char *kpath = buf_printf("%s/dkim/acme.test/s1.key", f.dir);
	char *tpath = buf_printf("%s/dkim/acme.test/s1.txt", f.dir);
	struct stat st;
	assert_int_equal(stat(kpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(tpath, &st), 0);
	char *line = NULL;
	size_t llen = 0;
	assert_int_equal(sys_read_file(tpath, 4096, &line, &llen), 0);
	assert_int_equal(strncmp(line, "s1._domainkey.acme.test. IN TXT \"v=DKIM1; k=rsa; p=", 51), 0);
	free(line);
	/* the same selector again is refused; bad names and sizes too */
	json_t *out2 = NULL;
	assert_int_equal(dkim_keygen(f.dir, "acme.test", "s1", 1024, &out2, &err), -1);
	assert_non_null(strstr(err, "exists"));
	free(err);
	err = NULL;
	assert_int_equal(dkim_keygen(f.dir, "acme.test", "Bad_Sel", 1024, &out2, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(dkim_keygen(f.dir, "../etc", "s2", 1024, &out2, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(dkim_keygen(f.dir, "acme.test", "s2", 512, &out2, &err), -1);
	free(err);
	err = NULL;
	assert_null(out2);
	/* show: the current selector, the same record */
	assert_int_equal(dkim_show(f.dir, "acme.test", &out2, &err), 0);
	assert_string_equal(json_string_value(json_object_get(out2, "selector")), "s1");
	assert_int_equal(json_integer_value(json_object_get(out2, "bits")), 1024);
	assert_string_equal(json_string_value(json_object_get(out2, "dns_txt")), txt);
	assert_non_null(json_object_get(out2, "created"));
	json_decref(out2);
	assert_int_equal(dkim_show(f.dir, "none.test", &out2, &err), -1);
	free(err);
	json_decref(out);
	free(kpath);
	free(tpath);
	fixture_free(&f);
}

/* Key lookup for the in-process verifier: the TXT of the test's key. */
static char verify_txt[2048];

static DKIM_CBSTAT
test_key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	(void)dkim;
	if (strcmp((const char *)dkim_sig_getdomain(sig), "acme.test") != 0
	    || strcmp((const char *)dkim_sig_getselector(sig), "mailark") != 0)
		return DKIM_CBSTAT_NOTFOUND;
	snprintf((char *)buf, buflen, "%s", verify_txt);
	return DKIM_CBSTAT_CONTINUE;
}

static DKIM_STAT
verify_message(const char *msg)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	assert_non_null(lib);
	dkim_set_key_lookup(lib, test_key_lookup);
	DKIM_STAT st;
	DKIM *d = dkim_verify(lib, (const u_char *)"t", NULL, &st);
	assert_non_null(d);
	st = dkim_chunk(d, (u_char *)msg, strlen(msg));
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(d, NULL, 0);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(d, NULL);
	dkim_free(d);
	dkim_close(lib);
	return st;
}

static const char plain_msg[] =
	"Received: from relay ([192.0.2.1])\r\n"
	"From: Alice <alice@acme.test>\r\n"
	"To: bob@example.test\r\n"
	"Subject: quarterly numbers\r\n"
	"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
	"Message-ID: <1@acme.test>\r\n"
	"\r\n"
	"Hello Bob,\r\n\r\nthe numbers are attached.\r\n";

static void
test_sign_and_verify(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, plain_msg, "alice@acme.test");
	f.m.dir = QUEUE_OUTBOUND;
	json_t *out = NULL;
	char *err = NULL;
	assert_int_equal(dkim_keygen(f.dir, "acme.test", NULL, 0, &out, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "bits")), 2048);
	snprintf(verify_txt, sizeof(verify_txt), "%s",
	    json_string_value(json_object_get(out, "dns_txt")));
	json_decref(out);

	struct hygiene_result r;
	memset(&r, 0, sizeof(r));
	assert_int_equal(dkim_sign_stage(&f.m, &r, &err), 0);
	assert_null(err);
	const char *hdrs = buf_cstr(&r.headers);
	assert_int_equal(strncmp(hdrs, "DKIM-Signature: ", 16), 0);
	assert_non_null(strstr(hdrs, "d=acme.test"));
	assert_non_null(strstr(hdrs, "s=mailark"));
	assert_non_null(strstr(hdrs, "h=From:To:Subject:Date:Message-ID"));
	assert_null(strstr(hdrs, "Received"));
	assert_null(r.rewritten);

	char *signed_msg = buf_printf("%s%s", hdrs, plain_msg);
	assert_int_equal(verify_message(signed_msg), DKIM_STAT_OK);
	/* a changed body no longer verifies */
	char *p = strstr(signed_msg, "numbers are");
	p[0] = 'N';
	assert_int_equal(verify_message(signed_msg), DKIM_STAT_BADSIG);
	free(signed_msg);
	hygiene_result_free(&r);

	/* dkim.sign off, or a domain without a key: no signature */
	f.pol.dkim_sign = 0;
	assert_int_equal(dkim_sign_stage(&f.m, &r, &err), 0);
	assert_int_equal(r.headers.len, 0);
	hygiene_result_free(&r);
	f.pol.dkim_sign = 1;
	f.m.header_from = "carol@other.test";
	assert_int_equal(dkim_sign_stage(&f.m, &r, &err), 0);
	assert_int_equal(r.headers.len, 0);
	hygiene_result_free(&r);
	fixture_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_org_domain),
		cmocka_unit_test(test_results_value),
		cmocka_unit_test(test_rename_forged),
		cmocka_unit_test(test_stage_renames_forged),
		cmocka_unit_test(test_keygen_show),
		cmocka_unit_test(test_sign_and_verify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
