/*
 * Unit tests for src/store: tenants, domains, routes and relay networks in
 * a fresh mailark.db per test (a temporary directory).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct store *st;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mailark-test-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/mailark.db", f->dir);
	char *err = NULL;
	if (store_open(f->path, &f->st, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err);
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
	assert_null(f->st);
	const char *suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* errp, not *errp: the argument is read after the call under test ran. */
static void
ok(int rc, char **errp)
{
	if (rc != 0)
		fprintf(stderr, "unexpected error: %s\n", *errp ? *errp : "(none)");
	assert_int_equal(rc, 0);
	assert_null(*errp);
}

/* Expects failure with a reason containing `needle`. */
static void
refused(int rc, char **errp, const char *needle)
{
	assert_int_equal(rc, -1);
	assert_non_null(*errp);
	if (strstr(*errp, needle) == NULL)
		fail_msg("error '%s' does not mention '%s'", *errp, needle);
	free(*errp);
	*errp = NULL;
}

static void
test_tenant_crud(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	ok(store_tenant_add(f->st, "acme", "default", &err), &err);
	ok(store_tenant_add(f->st, "beta-2", "eu", &err), &err);
	struct store_tenant t;
	assert_int_equal(store_tenant_get(f->st, "acme", &t), 1);
	assert_string_equal(t.name, "acme");
	assert_string_equal(t.region, "default");
	assert_string_equal(t.unknown_recipients, "accept");
	assert_true(t.created > 0);
	free(t.name);
	free(t.region);
	free(t.unknown_recipients);
	assert_int_equal(store_tenant_get(f->st, "nobody", &t), 0);

	struct store_tenant *list;
	size_t n;
	assert_int_equal(store_tenant_list(f->st, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "acme");
	assert_string_equal(list[1].name, "beta-2");
	assert_string_equal(list[1].region, "eu");
	store_tenants_free(list, n);

	ok(store_tenant_remove(f->st, "acme", &err), &err);
	assert_int_equal(store_tenant_get(f->st, "acme", &t), 0);
	refused(store_tenant_remove(f->st, "acme", &err), &err, "no tenant");
}

static void
test_tenant_duplicate_and_names(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	ok(store_tenant_add(f->st, "acme", "default", &err), &err);
	refused(store_tenant_add(f->st, "acme", "default", &err), &err, "already exists");
	refused(store_tenant_add(f->st, "ACME", "default", &err), &err, "already exists");
	refused(store_tenant_add(f->st, "bad_name", "default", &err), &err, "invalid tenant");
	refused(store_tenant_add(f->st, "-lead", "default", &err), &err, "invalid tenant");
	refused(store_tenant_add(f->st, "", "default", &err), &err, "invalid tenant");
	char longname[70];
	memset(longname, 'a', 64);
	longname[64] = '\0';
	refused(store_tenant_add(f->st, longname, "default", &err), &err, "invalid tenant");
	longname[63] = '\0';
	ok(store_tenant_add(f->st, longname, "default", &err), &err);
}

static void
test_lower_casing(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, *tenant = NULL;
	ok(store_tenant_add(f->st, "MixedCase", "Default", &err), &err);
	ok(store_domain_add(f->st, "MIXEDCASE", "Example.COM", &err), &err);
	assert_int_equal(store_domain_tenant(f->st, "EXAMPLE.com", &tenant), 1);
	assert_string_equal(tenant, "mixedcase");
	free(tenant);
	struct store_domain *d;
	size_t n;
	assert_int_equal(store_domain_list(f->st, "mixedcase", &d, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].domain, "example.com");
	assert_string_equal(d[0].tenant, "mixedcase");
	assert_null(d[0].route);
	store_domains_free(d, n);
	struct store_tenant t;
	assert_int_equal(store_tenant_get(f->st, "MIXEDCASE", &t), 1);
	assert_string_equal(t.region, "default");
	free(t.name);
	free(t.region);
	free(t.unknown_recipients);
}

static void
test_domains(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, *tenant = NULL;
	ok(store_tenant_add(f->st, "acme", "default", &err), &err);
	ok(store_tenant_add(f->st, "beta", "default", &err), &err);
	ok(store_domain_add(f->st, "acme", "acme.example", &err), &err);
	ok(store_domain_add(f->st, "acme", "mail.acme.example", &err), &err);
	ok(store_domain_add(f->st, "beta", "beta.example", &err), &err);
	refused(store_domain_add(f->st, "beta", "acme.example", &err), &err, "already belongs");
	refused(store_domain_add(f->st, "nobody", "x.example", &err), &err, "no tenant");
	refused(store_domain_add(f->st, "acme", "bad..example", &err), &err, "invalid domain");
	refused(store_domain_add(f->st, "acme", "-bad.example", &err), &err, "invalid domain");
	refused(store_domain_add(f->st, "acme", "bad_.example", &err), &err, "invalid domain");

	struct store_domain *d;
	size_t n;
	assert_int_equal(store_domain_list(f->st, NULL, &d, &n), 0);
	assert_int_equal(n, 3);
	store_domains_free(d, n);
	assert_int_equal(store_domain_list(f->st, "acme", &d, &n), 0);
	assert_int_equal(n, 2);
	store_domains_free(d, n);

	assert_int_equal(store_domain_tenant(f->st, "beta.example", &tenant), 1);
	assert_string_equal(tenant, "beta");
	free(tenant);
	assert_int_equal(store_domain_tenant(f->st, "unknown.example", &tenant), 0);

	refused(store_tenant_remove(f->st, "beta", &err), &err, "remove its domains first");
	refused(store_domain_remove(f->st, "acme", "beta.example", &err), &err, "no domain");
	ok(store_domain_remove(f->st, "beta", "beta.example", &err), &err);
	ok(store_tenant_remove(f->st, "beta", &err), &err);
}

static void
test_routes(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, *url = NULL;
	ok(store_tenant_add(f->st, "acme", "default", &err), &err);
	refused(store_route_set(f->st, "acme.example", "smtp://192.0.2.1:25", &err), &err,
	    "belongs to no tenant");
	ok(store_domain_add(f->st, "acme", "acme.example", &err), &err);
	ok(store_route_set(f->st, "ACME.example", "smtp://192.0.2.1:25", &err), &err);
	assert_int_equal(store_route_get(f->st, "acme.example", &url), 1);
	assert_string_equal(url, "smtp://192.0.2.1:25");
	free(url);
	ok(store_route_set(f->st, "acme.example", "smtp://192.0.2.2:2525?tls=required", &err), &err);
	assert_int_equal(store_route_get(f->st, "acme.example", &url), 1);
	assert_string_equal(url, "smtp://192.0.2.2:2525?tls=required");
	free(url);
	struct store_domain *d;
	size_t n;
	assert_int_equal(store_domain_list(f->st, NULL, &d, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].route, "smtp://192.0.2.2:2525?tls=required");
	store_domains_free(d, n);
	/* The route goes with its domain. */
	ok(store_domain_remove(f->st, "acme", "acme.example", &err), &err);
	assert_int_equal(store_route_get(f->st, "acme.example", &url), 0);
}

static void
sa4(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static void
sa6(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
}

static int
relay_of(struct store *st, struct sockaddr_storage *ss, const char *expect)
{
	char *tenant = NULL;
	int found = store_relay_tenant(st, (struct sockaddr *)ss, &tenant);
	if (expect == NULL) {
		assert_int_equal(found, 0);
		return 0;
	}
	assert_int_equal(found, 1);
	assert_string_equal(tenant, expect);
	free(tenant);
	return 1;
}

static void
test_relays(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct sockaddr_storage ss;
	ok(store_tenant_add(f->st, "acme", "default", &err), &err);
	ok(store_tenant_add(f->st, "beta", "default", &err), &err);
	ok(store_relay_add(f->st, "acme", "192.0.2.77/24", &err), &err);
	ok(store_relay_add(f->st, "beta", "192.0.2.128/25", &err), &err);
	ok(store_relay_add(f->st, "acme", "2001:DB8::1/32", &err), &err);
	refused(store_relay_add(f->st, "acme", "192.0.2.0/24", &err), &err, "already has");
	refused(store_relay_add(f->st, "acme", "not-a-net", &err), &err, "invalid network");
	refused(store_relay_add(f->st, "nobody", "198.51.100.0/24", &err), &err, "no tenant");

	struct store_relay *r;
	size_t n;
	assert_int_equal(store_relay_list(f->st, "acme", &r, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(r[0].cidr, "192.0.2.0/24");       /* canonical */
	assert_string_equal(r[1].cidr, "2001:db8::/32");
	store_relays_free(r, n);

	sa4(&ss, "192.0.2.5");
	relay_of(f->st, &ss, "acme");
	sa4(&ss, "192.0.2.200");            /* the longer prefix wins */
	relay_of(f->st, &ss, "beta");
	sa4(&ss, "198.51.100.1");
	relay_of(f->st, &ss, NULL);
	sa6(&ss, "2001:db8:ffff::9");
	relay_of(f->st, &ss, "acme");
	sa6(&ss, "2001:db9::1");
	relay_of(f->st, &ss, NULL);
	sa6(&ss, "::ffff:192.0.2.9");       /* IPv4-mapped */
	relay_of(f->st, &ss, "acme");

	/* Changes reach the cache at once. */
	ok(store_relay_remove(f->st, "beta", "192.0.2.128/25", &err), &err);
	sa4(&ss, "192.0.2.200");
	relay_of(f->st, &ss, "acme");
	refused(store_relay_remove(f->st, "beta", "192.0.2.128/25", &err), &err, "no relay");
	ok(store_tenant_remove(f->st, "acme", &err), &err);   /* relays go with it */
	relay_of(f->st, &ss, NULL);
	assert_int_equal(store_relay_list(f->st, NULL, &r, &n), 0);
	assert_int_equal(n, 0);
	store_relays_free(r, n);
}

static void
test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, *tenant = NULL;
	struct sockaddr_storage ss;
	ok(store_tenant_add(f->st, "acme", "default", &err), &err);
	ok(store_relay_add(f->st, "acme", "10.0.0.0/8", &err), &err);
	store_close(&f->st);
	assert_int_equal(store_open(f->path, &f->st, &err), 0);
	sa4(&ss, "10.1.2.3");
	assert_int_equal(store_relay_tenant(f->st, (struct sockaddr *)&ss, &tenant), 1);
	assert_string_equal(tenant, "acme");
	free(tenant);
}

static void
test_open_bad_path(void **state)
{
	struct store *st = NULL;
	char *err = NULL;
	assert_int_equal(store_open("/nonexistent-dir/x/mailark.db", &st, &err), -1);
	assert_null(st);
	assert_non_null(err);
	assert_non_null(strstr(err, "/nonexistent-dir/x/mailark.db"));
	free(err);
}

int
main(void)
{
	log_configure(LOGL_ERROR, LOGF_TEXT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tenant_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_duplicate_and_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lower_casing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_domains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test(test_open_bad_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
