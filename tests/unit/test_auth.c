/*
 * Unit tests for src/auth and the identity part of src/store: Argon2id
 * hashing, TOTP against the RFC 6238 vectors, API tokens (format, hash,
 * expiry, revocation, disabled users), lockout counters, and the user,
 * alias and group rules of store_users.c — on a fresh mailark.db per test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "lib/log.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct store *st;
	long long ann, bob;         /* users of tenant acme */
};

static void
ok(int rc, char **err)
{
	if (rc != 0)
		fail_msg("unexpected failure: %s", *err ? *err : "?");
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *err = NULL;
	snprintf(f->dir, sizeof(f->dir), "/tmp/mailark-test-auth-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/mailark.db", f->dir);
	if (store_open(f->path, &f->st, &err) < 0 ||
	    store_tenant_add(f->st, "acme", "default", &err) < 0 ||
	    store_tenant_add(f->st, "beta", "default", &err) < 0 ||
	    store_domain_add(f->st, "acme", "acme.example", &err) < 0 ||
	    store_domain_add(f->st, "beta", "beta.example", &err) < 0 ||
	    store_user_add(f->st, "acme", "ann@acme.example", "Ann", "admin", NULL, &f->ann,
	    &err) < 0 ||
	    store_user_add(f->st, "acme", "bob@acme.example", NULL, "user", NULL, &f->bob,
	    &err) < 0) {
		fprintf(stderr, "setup: %s\n", err ? err : "?");
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];
	store_close(&f->st);
	const char *suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- passwords ------------------------------------------------------------ */

static void
test_password_round_trip(void **state)
{
	char *hash = NULL, *err = NULL;
	assert_int_equal(auth_password_hash("correct horse battery", &hash), 0);
	assert_non_null(strstr(hash, "$argon2id$"));
	assert_true(auth_password_matches(hash, "correct horse battery"));
	assert_false(auth_password_matches(hash, "correct horse batterY"));
	assert_false(auth_password_matches(hash, ""));
	char *hash2 = NULL;
	assert_int_equal(auth_password_hash("correct horse battery", &hash2), 0);
	assert_string_not_equal(hash, hash2);       /* salted */
	free(hash);
	free(hash2);
	assert_int_equal(auth_password_check("short", &err), -1);
	assert_non_null(strstr(err, "10"));
	free(err);
	assert_int_equal(auth_password_check("0123456789", &err), 0);
}

/* ---- TOTP ----------------------------------------------------------------- */

static void
test_totp_rfc6238(void **state)
{
	static const struct {
		long long t;
		const char *code;       /* last 6 digits of the RFC's 8-digit SHA-1 codes */
	} v[] = {
		{ 59, "287082" }, { 1111111109, "081804" }, { 1111111111, "050471" },
		{ 1234567890, "005924" }, { 2000000000, "279037" }, { 20000000000LL, "353130" },
	};
	const unsigned char *seed = (const unsigned char *)"12345678901234567890";
	char out[7];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(auth_totp_code(seed, 20, (time_t)v[i].t, out), 0);
		assert_string_equal(out, v[i].code);
	}
	/* one step either side is accepted, two are not */
	assert_int_equal(auth_totp_code(seed, 20, 1111111109, out), 0);
	assert_true(auth_totp_check(seed, 20, out, 1111111109 + 30));
	assert_true(auth_totp_check(seed, 20, out, 1111111109 - 30));
	assert_false(auth_totp_check(seed, 20, out, 1111111109 + 90));
	assert_false(auth_totp_check(seed, 20, "00000", 1111111109));
	assert_false(auth_totp_check(seed, 20, NULL, 1111111109));
}

static void
test_totp_uri(void **state)
{
	unsigned char secret[AUTH_TOTP_SECRET_LEN];
	char *b32 = NULL;
	auth_totp_new(secret, &b32);
	assert_int_equal(strlen(b32), 32);                 /* 20 bytes → 32 base32 chars */
	assert_int_equal(strspn(b32, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), 32);
	char *uri = auth_totp_uri("ann+x@acme.example", b32);
	assert_true(strncmp(uri, "otpauth://totp/mailark:ann%2Bx@acme.example?secret=", 51) == 0);
	assert_non_null(strstr(uri, b32));
	free(uri);
	free(b32);
}

/* ---- tokens --------------------------------------------------------------- */

static void
test_token_format_and_verify(void **state)
{
	struct fixture *f = *state;
	char *token = NULL, *id = NULL, *err = NULL, *tid = NULL, *addr = NULL;
	const char *reason = NULL;
	struct principal p = { 0 };
	ok(auth_token_issue_st(f->st, f->ann, "ci", 0, &token, &id, &err), &err);
	assert_int_equal(strlen(token), 3 + 12 + 1 + 43);
	assert_true(strncmp(token, "mk_", 3) == 0 && token[15] == '_');
	assert_memory_equal(token + 3, id, 12);
	assert_int_equal(strspn(id, "abcdefghijklmnopqrstuvwxyz234567"), 12);

	/* only the hash is stored */
	struct store_token t;
	assert_int_equal(store_token_get(f->st, id, &t), 1);
	assert_null(memmem(t.hash, 32, token + 16, 32));
	assert_int_equal(t.last_used, 0);
	store_token_clear(&t);

	assert_int_equal(auth_token_check_st(f->st, token, time(NULL), &p, &reason, &tid, &addr), 0);
	assert_int_equal(p.role, ROLE_ADMIN);
	assert_string_equal(p.actor, "ann@acme.example");
	assert_string_equal(p.tenant, "acme");
	assert_int_equal(p.user_id, f->ann);
	principal_clear(&p);
	free(tid);
	free(addr);
	assert_int_equal(store_token_get(f->st, id, &t), 1);
	assert_true(t.last_used != 0);
	store_token_clear(&t);

	/* one changed character of the secret, a truncated token, garbage */
	char *bad = strdup(token);
	bad[20] = bad[20] == 'A' ? 'B' : 'A';
	assert_int_equal(auth_token_check_st(f->st, bad, time(NULL), &p, &reason, NULL, NULL), -1);
	assert_string_equal(reason, "bad token secret");
	bad[strlen(bad) - 1] = '\0';
	assert_int_equal(auth_token_check_st(f->st, bad, time(NULL), &p, &reason, NULL, NULL), -1);
	assert_string_equal(reason, "malformed token");
	assert_int_equal(auth_token_check_st(f->st, "mk_", time(NULL), &p, &reason, NULL, NULL), -1);
	free(bad);
	free(token);
	free(id);
}

static void
test_token_expiry_revocation_disabled(void **state)
{
	struct fixture *f = *state;
	char *t1 = NULL, *t2 = NULL, *id1 = NULL, *id2 = NULL, *err = NULL;
	const char *reason;
	struct principal p = { 0 };
	time_t now = time(NULL);
	ok(auth_token_issue_st(f->st, f->bob, "short", now + 60, &t1, &id1, &err), &err);
	ok(auth_token_issue_st(f->st, f->bob, "long", 0, &t2, &id2, &err), &err);
	assert_int_equal(auth_token_check_st(f->st, t1, now, &p, &reason, NULL, NULL), 0);
	principal_clear(&p);
	assert_int_equal(auth_token_check_st(f->st, t1, now + 61, &p, &reason, NULL, NULL), -1);
	assert_string_equal(reason, "token expired");

	ok(store_token_revoke(f->st, id2, now, &err), &err);
	assert_int_equal(auth_token_check_st(f->st, t2, now, &p, &reason, NULL, NULL), -1);
	assert_string_equal(reason, "token revoked");
	assert_int_equal(store_token_revoke(f->st, id2, now, &err), -1);   /* twice */
	free(err);
	err = NULL;

	/* a disabled user's tokens stop working, and work again when enabled */
	char *t3 = NULL;
	ok(auth_token_issue_st(f->st, f->bob, "third", 0, &t3, NULL, &err), &err);
	ok(store_user_set_status(f->st, f->bob, "disabled", &err), &err);
	assert_int_equal(auth_token_check_st(f->st, t3, now, &p, &reason, NULL, NULL), -1);
	assert_string_equal(reason, "account disabled");
	ok(store_user_set_status(f->st, f->bob, "active", &err), &err);
	assert_int_equal(auth_token_check_st(f->st, t3, now, &p, &reason, NULL, NULL), 0);
	principal_clear(&p);

	struct store_token *list;
	size_t n;
	assert_int_equal(store_token_list(f->st, f->bob, &list, &n), 0);
	assert_int_equal(n, 3);
	store_tokens_free(list, n);
	assert_int_equal(store_token_list(f->st, f->ann, &list, &n), 0);
	assert_int_equal(n, 0);
	store_tokens_free(list, n);
	free(t1);
	free(t2);
	free(t3);
	free(id1);
	free(id2);
}

/* ---- lockout -------------------------------------------------------------- */

static void
test_lockout_counters(void **state)
{
	struct fixture *f = *state;
	const char *key = "acct:bob@acme.example";
	time_t now = 1700000000;
	for (int i = 1; i < AUTH_ACCOUNT_MAX_FAILURES; i++) {
		assert_int_equal(auth_limit_fail(f->st, key, AUTH_ACCOUNT_MAX_FAILURES, now + i), 0);
		assert_int_equal(auth_limit_locked(f->st, key, now + i), 0);
	}
	assert_int_equal(auth_limit_fail(f->st, key, AUTH_ACCOUNT_MAX_FAILURES, now + 10), 1);
	assert_int_equal(auth_limit_locked(f->st, key, now + 11), 1);
	assert_int_equal(auth_limit_locked(f->st, key, now + 10 + AUTH_LOCK_WINDOW - 1), 1);
	assert_int_equal(auth_limit_locked(f->st, key, now + 10 + AUTH_LOCK_WINDOW), 0);
	/* after the lock, counting starts again */
	assert_int_equal(auth_limit_fail(f->st, key, AUTH_ACCOUNT_MAX_FAILURES,
	    now + 20 + AUTH_LOCK_WINDOW), 0);

	/* failures spread over more than the window never lock */
	const char *k2 = "acct:ann@acme.example";
	for (int i = 0; i < 10; i++)
		assert_int_equal(auth_limit_fail(f->st, k2, AUTH_ACCOUNT_MAX_FAILURES,
		    now + i * (AUTH_LOCK_WINDOW / 3)), 0);
	/* a good sign-in clears the counter */
	for (int i = 0; i < AUTH_ACCOUNT_MAX_FAILURES - 1; i++)
		(void)auth_limit_fail(f->st, k2, AUTH_ACCOUNT_MAX_FAILURES, now + 5000);
	auth_limit_clear(f->st, k2);
	assert_int_equal(auth_limit_fail(f->st, k2, AUTH_ACCOUNT_MAX_FAILURES, now + 5001), 0);

	/* per source: 20 */
	const char *ip = "ip:192.0.2.1";
	for (int i = 1; i < AUTH_SOURCE_MAX_FAILURES; i++)
		assert_int_equal(auth_limit_fail(f->st, ip, AUTH_SOURCE_MAX_FAILURES, now), 0);
	assert_int_equal(auth_limit_fail(f->st, ip, AUTH_SOURCE_MAX_FAILURES, now), 1);
	assert_int_equal(auth_limit_locked(f->st, ip, now + 1), 1);
}

/* ---- users, aliases, groups ----------------------------------------------- */

static void
test_users_rules(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long id;
	/* duplicate address, also against aliases, any case */
	assert_int_equal(store_user_add(f->st, "acme", "ANN@acme.example", NULL, "user", NULL,
	    &id, &err), -1);
	assert_non_null(strstr(err, "already in use"));
	free(err);
	ok(store_alias_add(f->st, f->ann, "a.nn@acme.example", &err), &err);
	assert_int_equal(store_user_add(f->st, "acme", "a.nn@acme.example", NULL, "user", NULL,
	    &id, &err), -1);
	free(err);
	assert_int_equal(store_alias_add(f->st, f->bob, "ann@acme.example", &err), -1);
	free(err);
	/* the domain must be the tenant's; the tenant must exist */
	assert_int_equal(store_user_add(f->st, "acme", "x@beta.example", NULL, "user", NULL, &id,
	    &err), -1);
	assert_non_null(strstr(err, "not a domain of tenant"));
	free(err);
	assert_int_equal(store_alias_add(f->st, f->ann, "ann@beta.example", &err), -1);
	free(err);
	assert_int_equal(store_user_add(f->st, "ghost", "x@acme.example", NULL, "user", NULL, &id,
	    &err), -1);
	assert_non_null(strstr(err, "no tenant"));
	free(err);
	/* roles */
	assert_int_equal(store_user_add(f->st, "acme", "c@acme.example", NULL, "root", NULL, &id,
	    &err), -1);
	free(err);
	assert_int_equal(store_user_add(f->st, "acme", "c@acme.example", NULL, "operator", NULL,
	    &id, &err), -1);
	free(err);
	ok(store_user_add(f->st, NULL, "ops@anywhere.example", NULL, "operator", NULL, &id, &err),
	    &err);
	assert_int_equal(store_user_add(f->st, "acme", "not an address", NULL, "user", NULL, &id,
	    &err), -1);
	free(err);

	/* found by alias; disabling keeps the row */
	struct store_user u;
	assert_int_equal(store_user_get(f->st, "A.NN@acme.example", &u), 1);
	assert_int_equal(u.id, f->ann);
	store_user_clear(&u);
	ok(store_user_set_status(f->st, f->ann, "disabled", &err), &err);
	assert_int_equal(store_user_get_id(f->st, f->ann, &u), 1);
	assert_string_equal(u.status, "disabled");
	store_user_clear(&u);
	struct store_user *list;
	size_t n;
	assert_int_equal(store_user_list(f->st, "acme", &list, &n), 0);
	assert_int_equal(n, 2);
	store_users_free(list, n);
	assert_int_equal(store_user_list(f->st, NULL, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].role, "operator");
	store_users_free(list, n);
}

static void
test_groups(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	long long other;
	ok(store_user_add(f->st, "beta", "eve@beta.example", NULL, "user", NULL, &other, &err),
	    &err);
	ok(store_group_add(f->st, "acme", "Sales", &err), &err);
	assert_int_equal(store_group_add(f->st, "acme", "Sales", &err), -1);
	free(err);
	ok(store_group_add(f->st, "beta", "Sales", &err), &err);      /* per tenant */
	ok(store_group_member_add(f->st, "acme", "Sales", f->ann, &err), &err);
	ok(store_group_member_add(f->st, "acme", "Sales", f->bob, &err), &err);
	assert_int_equal(store_group_member_add(f->st, "acme", "Sales", f->bob, &err), -1);
	free(err);
	/* a user of another tenant cannot join */
	assert_int_equal(store_group_member_add(f->st, "acme", "Sales", other, &err), -1);
	free(err);
	struct store_group *g;
	size_t n;
	assert_int_equal(store_group_list(f->st, "acme", &g, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(g[0].nmembers, 2);
	assert_string_equal(g[0].members[0], "ann@acme.example");
	store_groups_free(g, n);
	ok(store_group_member_remove(f->st, "acme", "Sales", f->ann, &err), &err);
	char **names;
	assert_int_equal(store_user_groups(f->st, f->bob, &names, &n), 0);
	assert_int_equal(n, 1);
	store_strings_free(names, n);
	ok(store_group_remove(f->st, "acme", "Sales", &err), &err);
	assert_int_equal(store_user_groups(f->st, f->bob, &names, &n), 0);
	assert_int_equal(n, 0);
	store_strings_free(names, n);
	assert_int_equal(store_group_remove(f->st, "acme", "Sales", &err), -1);
	free(err);
}

int
main(void)
{
	log_configure(LOGL_ERROR, LOGF_TEXT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password_round_trip),
		cmocka_unit_test(test_totp_rfc6238),
		cmocka_unit_test(test_totp_uri),
		cmocka_unit_test_setup_teardown(test_token_format_and_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_expiry_revocation_disabled, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lockout_counters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
