/*
 * Unit tests for directory sync: the pure parts (RFC 4515 filter escaping
 * and checking, the sign-in filter, proxyAddresses, userAccountControl,
 * mapping an entry's attributes to a user) and store_directory_apply() on a
 * scratch database (conflicts, vanished users, idempotence, local users);
 * sealing the bind password (directory_secret: round trip, tampering, wrong
 * key or tenant, legacy plain text, loading keys/master.key).
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

#include "directory/directory_map.h"
#include "directory/directory_secret.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "store/store.h"

/* ---- filters ------------------------------------------------------------- */

static void
test_filter_escape(void **state)
{
	struct buf b = BUF_INIT;
	directory_filter_escape(&b, "a*(b)\\c");
	assert_string_equal(buf_cstr(&b), "a\\2a\\28b\\29\\5cc");
	buf_reset(&b);
	directory_filter_escape(&b, "ann@acme.example");
	assert_string_equal(buf_cstr(&b), "ann@acme.example");
	buf_free(&b);
}

static void
test_login_filter(void **state)
{
	struct buf b = BUF_INIT;
	directory_login_filter(&b, "(objectClass=user)", "*)(uid=*");
	assert_string_equal(buf_cstr(&b), "(&(objectClass=user)(|(mail=\\2a\\29\\28uid=\\2a)"
	    "(proxyAddresses=smtp:\\2a\\29\\28uid=\\2a)))");
	buf_reset(&b);
	directory_login_filter(&b, "(objectClass=user)", "ann@acme.example");
	assert_string_equal(buf_cstr(&b), "(&(objectClass=user)(|(mail=ann@acme.example)"
	    "(proxyAddresses=smtp:ann@acme.example)))");
	buf_free(&b);
}

static void
test_filter_valid(void **state)
{
	assert_true(directory_filter_valid("(objectClass=user)"));
	assert_true(directory_filter_valid("(&(objectClass=user)(!(mail=x\\29y)))"));
	assert_false(directory_filter_valid("objectClass=user"));
	assert_false(directory_filter_valid("(a=b)(c=d)"));
	assert_false(directory_filter_valid("((a=b)"));
	assert_false(directory_filter_valid("(a=b))"));
	assert_false(directory_filter_valid("(a=b\n)"));
	assert_false(directory_filter_valid("("));
	assert_false(directory_filter_valid(""));
}

/* ---- proxyAddresses, userAccountControl ---------------------------------- */

static void
test_proxy_parse(void **state)
{
	char *a = NULL;
	int primary = -1;
	assert_int_equal(directory_proxy_parse("SMTP:Ann@Acme.Example", &a, &primary), 1);
	assert_string_equal(a, "ann@acme.example");
	assert_int_equal(primary, 1);
	free(a);
	assert_int_equal(directory_proxy_parse("smtp:sales@acme.example", &a, &primary), 1);
	assert_string_equal(a, "sales@acme.example");
	assert_int_equal(primary, 0);
	free(a);
	assert_int_equal(directory_proxy_parse("Smtp:x@acme.example", &a, &primary), 1);
	assert_int_equal(primary, 0);
	free(a);
	assert_int_equal(directory_proxy_parse("X500:/o=Acme/cn=ann", &a, &primary), 0);
	assert_int_equal(directory_proxy_parse("sip:ann@acme.example", &a, &primary), 0);
	assert_int_equal(directory_proxy_parse("SMTP:", &a, &primary), -1);
	assert_int_equal(directory_proxy_parse("smtp:no-at-sign", &a, &primary), -1);
	assert_int_equal(directory_proxy_parse("smtp:a b@acme.example", &a, &primary), -1);
	assert_int_equal(directory_proxy_parse("smtp:a@b@c", &a, &primary), -1);
}

static void
test_uac(void **state)
{
	assert_int_equal(directory_uac_disabled("512"), 0);
	assert_int_equal(directory_uac_disabled("514"), 1);
	assert_int_equal(directory_uac_disabled("2"), 1);
	assert_int_equal(directory_uac_disabled("66048"), 0);
	assert_int_equal(directory_uac_disabled("66050"), 1);
	assert_int_equal(directory_uac_disabled("-2147483646"), 1);
	assert_int_equal(directory_uac_disabled(""), -1);
	assert_int_equal(directory_uac_disabled("51x"), -1);
	assert_int_equal(directory_uac_disabled("99999999999"), -1);
}

/* ---- attribute mapping ----------------------------------------------------- */

static void
test_map_user(void **state)
{
	const char *proxy[] = { "SMTP:ann@acme.example", "smtp:Ann.A@acme.example",
		"X500:/o=x", "smtp:ann.a@acme.example", "smtp:sales@acme.example" };
	const char *mo[] = { "CN=Sales,OU=Groups,DC=acme" };
	struct directory_attrs a = { "cn=ann,dc=acme", "Ann@Acme.example", proxy, 5,
		"Ann Archer", "512", mo, 1 };
	struct directory_user u;
	char *err = NULL;
	assert_int_equal(directory_map_user(&a, &u, &err), 0);
	assert_string_equal(u.address, "ann@acme.example");
	assert_string_equal(u.display_name, "Ann Archer");
	assert_int_equal(u.disabled, 0);
	assert_int_equal(u.naliases, 2);        /* primary and the duplicate dropped */
	assert_string_equal(u.aliases[0], "ann.a@acme.example");
	assert_string_equal(u.aliases[1], "sales@acme.example");
	assert_int_equal(u.nmember_of, 1);
	assert_string_equal(u.member_of[0], "CN=Sales,OU=Groups,DC=acme");
	directory_user_clear(&u);
}

static void
test_map_user_primary_from_proxy(void **state)
{
	const char *proxy[] = { "smtp:b2@acme.example", "SMTP:Bob@acme.example" };
	struct directory_attrs a = { "cn=bob", NULL, proxy, 2, "", "514", NULL, 0 };
	struct directory_user u;
	char *err = NULL;
	assert_int_equal(directory_map_user(&a, &u, &err), 0);
	assert_string_equal(u.address, "bob@acme.example");
	assert_null(u.display_name);           /* empty displayName: none */
	assert_int_equal(u.disabled, 1);
	assert_int_equal(u.naliases, 1);
	assert_string_equal(u.aliases[0], "b2@acme.example");
	directory_user_clear(&u);
}

static void
test_map_user_refusals(void **state)
{
	struct directory_user u;
	char *err = NULL;
	struct directory_attrs none = { "cn=svc", NULL, NULL, 0, "Service", NULL, NULL, 0 };
	assert_int_equal(directory_map_user(&none, &u, &err), 1);   /* skipped quietly */
	assert_null(err);
	struct directory_attrs bad = { "cn=x", "not an address", NULL, 0, NULL, NULL, NULL, 0 };
	assert_int_equal(directory_map_user(&bad, &u, &err), -1);
	assert_non_null(strstr(err, "cn=x"));
	free(err);
	err = NULL;
	struct directory_attrs uac = { "cn=y", "y@acme.example", NULL, 0, NULL, "lots", NULL, 0 };
	assert_int_equal(directory_map_user(&uac, &u, &err), -1);
	assert_non_null(strstr(err, "userAccountControl"));
	free(err);
}

/* ---- store_directory_apply ------------------------------------------------- */

struct sfix {
	char dir[64];
	char path[128];
	struct store *st;
};

static int
store_setup(void **state)
{
	struct sfix *f = calloc(1, sizeof(*f));
	char *err = NULL;
	snprintf(f->dir, sizeof(f->dir), "/tmp/mailark-dirtest-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/mailark.db", f->dir);
	if (store_open(f->path, &f->st, &err) < 0 ||
	    store_tenant_add(f->st, "acme", "default", &err) < 0 ||
	    store_tenant_add(f->st, "other", "default", &err) < 0 ||
	    store_domain_add(f->st, "acme", "acme.example", &err) < 0 ||
	    store_domain_add(f->st, "other", "other.example", &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
store_teardown(void **state)
{
	struct sfix *f = *state;
	char p[160];
	store_close(&f->st);
	const char *const files[] = { "mailark.db", "mailark.db-wal", "mailark.db-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
apply_ok(struct store *st, const struct store_dir_user *u, size_t n, const char *const *g,
    size_t ng, struct store_dir_stats *s)
{
	char *err = NULL;
	assert_int_equal(store_directory_apply(st, "acme", u, n, g, ng, s, &err), 0);
	assert_null(err);
}

static void
test_apply(void **state)
{
	struct sfix *f = *state;
	const char *ann_alias[] = { "ann.a@acme.example", "ann@other.example" };
	const char *sales[] = { "Sales" };
	const char *groups[] = { "Sales", "Ops" };
	struct store_dir_user u[] = {
		{ "ann@acme.example", "Ann", 0, ann_alias, 2, sales, 1 },
		{ "bob@acme.example", NULL, 1, NULL, 0, NULL, 0 },
		{ "eve@other.example", NULL, 0, NULL, 0, NULL, 0 },
	};
	struct store_dir_stats s;
	apply_ok(f->st, u, 3, groups, 2, &s);
	assert_int_equal(s.users_added, 2);
	assert_int_equal(s.groups_added, 2);
	assert_int_equal(s.errors, 2);          /* eve's domain, ann's foreign alias */
	store_dir_stats_clear(&s);
	assert_int_equal(store_directory_user_active(f->st, "acme", "ANN.A@acme.example"), 1);
	assert_int_equal(store_directory_user_active(f->st, "acme", "bob@acme.example"), 0);
	assert_int_equal(store_directory_user_active(f->st, "other", "ann@acme.example"), 0);

	/* the same read again: nothing changes */
	apply_ok(f->st, u, 3, groups, 2, &s);
	assert_int_equal(s.users_added + s.users_updated + s.users_disabled, 0);
	assert_int_equal(s.users_unchanged, 2);
	assert_int_equal(s.groups_added + s.groups_updated, 0);
	store_dir_stats_clear(&s);

	/* ann gone: disabled, not deleted; bob enabled; Sales loses ann */
	u[1].disabled = 0;
	apply_ok(f->st, &u[1], 1, groups, 2, &s);
	assert_int_equal(s.users_disabled, 1);
	assert_int_equal(s.users_updated, 1);
	assert_int_equal(s.groups_updated, 1);
	store_dir_stats_clear(&s);
	assert_int_equal(store_directory_user_active(f->st, "acme", "ann@acme.example"), 0);
	assert_int_equal(store_directory_user_active(f->st, "acme", "bob@acme.example"), 1);
}

static void
test_apply_duplicates(void **state)
{
	struct sfix *f = *state;
	const char *alias_of_bob[] = { "bob@acme.example" };
	struct store_dir_user u[] = {
		{ "bob@acme.example", NULL, 0, NULL, 0, NULL, 0 },
		{ "bob@acme.example", "again", 0, NULL, 0, NULL, 0 },
		{ "carl@acme.example", NULL, 0, alias_of_bob, 1, NULL, 0 },
	};
	struct store_dir_stats s;
	apply_ok(f->st, u, 3, NULL, 0, &s);
	assert_int_equal(s.users_added, 2);
	assert_int_equal(s.errors, 2);          /* a second bob; bob as carl's alias */
	store_dir_stats_clear(&s);
}

static void
test_settings(void **state)
{
	struct sfix *f = *state;
	struct store_directory d = { "acme", "ldap://127.0.0.1:1", "dc=x", "cn=svc", NULL,
		NULL, NULL, 900, 0, 0, NULL };
	struct store_directory got;
	char *err = NULL;
	/* the first set needs a password */
	assert_int_equal(store_directory_set(f->st, &d, &err), -1);
	assert_non_null(strstr(err, "bind password"));
	free(err);
	err = NULL;
	d.bind_password = "s3cret";
	assert_int_equal(store_directory_set(f->st, &d, &err), 0);
	d.bind_password = NULL;             /* kept when not given */
	d.interval = 60;
	assert_int_equal(store_directory_set(f->st, &d, &err), 0);
	assert_int_equal(store_directory_get(f->st, "acme", &got), 1);
	assert_string_equal(got.bind_password, "s3cret");
	assert_int_equal(got.interval, 60);
	assert_null(got.user_filter);
	store_directory_clear(&got);
	assert_int_equal(store_directory_get(f->st, "other", &got), 0);
	assert_int_equal(store_directory_set_result(f->st, "acme", 42, "{\"ok\":true}"), 0);
	struct store_directory *list;
	size_t n;
	assert_int_equal(store_directory_list(f->st, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].last_sync, 42);
	assert_string_equal(list[0].last_result, "{\"ok\":true}");
	store_directories_free(list, n);
}

/* ---- sealed bind password ------------------------------------------------ */

static void
secret_key(unsigned char key[DIRECTORY_SECRET_KEY_LEN], unsigned char fill)
{
	unsigned char master[DIRECTORY_SECRET_KEY_LEN];
	memset(master, fill, sizeof(master));
	assert_int_equal(directory_secret_key_derive(master, key), 0);
}

static void
test_secret_round_trip(void **state)
{
	unsigned char key[DIRECTORY_SECRET_KEY_LEN], master[DIRECTORY_SECRET_KEY_LEN];
	char *a = NULL, *b = NULL, *plain = NULL, *err = NULL;
	secret_key(key, 7);
	memset(master, 7, sizeof(master));
	assert_memory_not_equal(key, master, sizeof(key));    /* a sub-key, not the master */
	assert_int_equal(directory_secret_seal(key, "acme", "svc-Secret-1", &a, &err), 0);
	assert_int_equal(directory_secret_seal(key, "acme", "svc-Secret-1", &b, &err), 0);
	assert_true(directory_secret_is_sealed(a));
	assert_null(strstr(a, "svc-Secret-1"));
	assert_string_not_equal(a, b);                          /* a fresh nonce each time */
	assert_int_equal(directory_secret_open(key, "acme", a, &plain, &err), 0);
	assert_string_equal(plain, "svc-Secret-1");
	directory_secret_free(plain);
	assert_int_equal(directory_secret_open(key, "acme", b, &plain, &err), 0);
	assert_string_equal(plain, "svc-Secret-1");
	directory_secret_free(plain);
	/* a legacy plain-text value opens as itself */
	assert_int_equal(directory_secret_open(key, "acme", "old-plain", &plain, &err), 1);
	assert_string_equal(plain, "old-plain");
	directory_secret_free(plain);
	free(a);
	free(b);
}

static void
test_secret_tampered(void **state)
{
	unsigned char key[DIRECTORY_SECRET_KEY_LEN];
	char *sealed = NULL, *plain = NULL, *err = NULL;
	secret_key(key, 1);
	assert_int_equal(directory_secret_seal(key, "acme", "pw", &sealed, &err), 0);
	size_t n = strlen(sealed);
	/* flip one bit in every base64 character after the prefix, one at a time */
	for (size_t i = strlen(DIRECTORY_SECRET_PREFIX); i < n; i++) {
		if (sealed[i] == '=')
			continue;
		char *t = strdup(sealed);
		t[i] = t[i] == 'A' ? 'B' : 'A';
		plain = NULL;
		int rc = directory_secret_open(key, "acme", t, &plain, &err);
		assert_int_equal(rc, -1);
		assert_null(plain);
		assert_non_null(strstr(err, "cannot be opened"));
		free(err);
		err = NULL;
		free(t);
	}
	const char *bad[] = { "v1:", "v1:!!!!", "v1:AAAA", "v1:QUJD\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(directory_secret_open(key, "acme", bad[i], &plain, &err), -1);
		free(err);
		err = NULL;
	}
	free(sealed);
}

static void
test_secret_wrong_key(void **state)
{
	unsigned char key[DIRECTORY_SECRET_KEY_LEN], other[DIRECTORY_SECRET_KEY_LEN];
	char *sealed = NULL, *plain = NULL, *err = NULL;
	secret_key(key, 1);
	secret_key(other, 2);
	assert_int_equal(directory_secret_seal(key, "acme", "pw", &sealed, &err), 0);
	assert_int_equal(directory_secret_open(other, "acme", sealed, &plain, &err), -1);
	assert_non_null(strstr(err, "another master key"));
	free(err);
	err = NULL;
	/* the tenant is associated data: another tenant's row does not open */
	assert_int_equal(directory_secret_open(key, "other", sealed, &plain, &err), -1);
	free(err);
	assert_null(plain);
	free(sealed);
}

static void
secret_write(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static void
test_secret_key_load(void **state)
{
	char dir[] = "/tmp/mailark-dirkey-XXXXXX", keys[64], path[96];
	unsigned char master[DIRECTORY_SECRET_KEY_LEN + 1], key[DIRECTORY_SECRET_KEY_LEN];
	unsigned char want[DIRECTORY_SECRET_KEY_LEN];
	char *err = NULL;
	assert_non_null(mkdtemp(dir));
	snprintf(keys, sizeof(keys), "%s/keys", dir);
	snprintf(path, sizeof(path), "%s/master.key", keys);
	assert_int_equal(mkdir(keys, 0700), 0);
	/* missing: the error names the file */
	assert_int_equal(directory_secret_key_load(dir, key, &err), -1);
	assert_non_null(strstr(err, path));
	free(err);
	err = NULL;
	/* short and long keys are refused */
	memset(master, 9, sizeof(master));
	secret_write(path, master, DIRECTORY_SECRET_KEY_LEN - 1);
	assert_int_equal(directory_secret_key_load(dir, key, &err), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "32 bytes"));
	free(err);
	err = NULL;
	secret_write(path, master, DIRECTORY_SECRET_KEY_LEN + 1);
	assert_int_equal(directory_secret_key_load(dir, key, &err), -1);
	free(err);
	/* exactly 32 bytes: the derived key */
	secret_write(path, master, DIRECTORY_SECRET_KEY_LEN);
	assert_int_equal(directory_secret_key_load(dir, key, &err), 0);
	secret_key(want, 9);
	assert_memory_equal(key, want, sizeof(key));
	unlink(path);
	rmdir(keys);
	rmdir(dir);
}

int
main(void)
{
	log_configure(LOGL_ERROR, LOGF_TEXT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_escape),
		cmocka_unit_test(test_login_filter),
		cmocka_unit_test(test_filter_valid),
		cmocka_unit_test(test_proxy_parse),
		cmocka_unit_test(test_uac),
		cmocka_unit_test(test_map_user),
		cmocka_unit_test(test_map_user_primary_from_proxy),
		cmocka_unit_test(test_map_user_refusals),
		cmocka_unit_test_setup_teardown(test_apply, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_apply_duplicates, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_settings, store_setup, store_teardown),
		cmocka_unit_test(test_secret_round_trip),
		cmocka_unit_test(test_secret_tampered),
		cmocka_unit_test(test_secret_wrong_key),
		cmocka_unit_test(test_secret_key_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
