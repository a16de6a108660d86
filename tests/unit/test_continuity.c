/*
 * Unit tests for the continuity tables of mailark.db (store_continuity.c):
 * settings, outages and drills, the failback ledger and how it reconciles,
 * the dedupe memory and sign-ins, in a fresh database per test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "unit_tmp.h"

struct fixture {
	char dir[256];
	char path[320];
	struct store *st;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *err = NULL;
	if (f == NULL || unit_tmpdir(f->dir, sizeof(f->dir), "continuity") < 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/mailark.db", f->dir);
	if (store_open(f->path, &f->st, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err);
		return -1;
	}
	if (store_tenant_add(f->st, "acme", "eu", &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[340];
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

static long long
new_outage(struct store *st, const char *kind, const char *users)
{
	struct store_cont_outage o = {
		.tenant = "acme", .kind = (char *)kind, .users = (char *)users,
		.started_at = time(NULL), .started_by = "cli@local", .reason = "test",
		.failover_ms = -1, .state = "active",
	};
	long long id = 0;
	char *err = NULL;
	assert_int_equal(store_cont_outage_add(st, &o, &id, &err), 0);
	assert_true(id > 0);
	return id;
}

static void
test_settings(void **state)
{
	struct fixture *f = *state;
	char *v = NULL, *err = NULL;
	assert_int_equal(store_cont_setting_get(f->st, "acme", "mode", &v), 0);
	assert_int_equal(store_cont_setting_set(f->st, "acme", "mode", "auto", &err), 0);
	assert_int_equal(store_cont_setting_set(f->st, "acme", "mode", "manual", &err), 0);
	assert_int_equal(store_cont_setting_get(f->st, "acme", "mode", &v), 1);
	assert_string_equal(v, "manual");
	free(v);
	/* Settings belong to an existing tenant. */
	assert_int_equal(store_cont_setting_set(f->st, "nope", "mode", "auto", &err), -1);
	free(err);
}

static void
test_outage_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct store_cont_outage o, *open = NULL;
	size_t n = 0;
	char *err = NULL;
	long long id = new_outage(f->st, "outage", NULL);
	long long drill = new_outage(f->st, "drill", "a@acme.test,b@acme.test");
	assert_int_equal(store_cont_outages_open(f->st, &open, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(open[0].id, id);
	assert_string_equal(open[1].users, "a@acme.test,b@acme.test");
	store_cont_outages_free(open, n);

	assert_int_equal(store_cont_outage_get(f->st, "acme", "outage", 0, &o), 1);
	assert_int_equal(o.id, id);
	assert_int_equal(o.failover_ms, -1);
	assert_int_equal(o.ended_at, 0);
	o.failover_ms = 12;
	o.failback_at = 100;
	o.ended_at = 200;
	free(o.state);
	o.state = strdup("ended");
	o.ended_by = strdup("auto");
	assert_int_equal(store_cont_outage_update(f->st, &o, &err), 0);
	store_cont_outage_clear(&o);

	assert_int_equal(store_cont_outage_get(f->st, "acme", "outage", id, &o), 1);
	assert_int_equal(o.failover_ms, 12);
	assert_int_equal(o.ended_at, 200);
	assert_string_equal(o.state, "ended");
	assert_string_equal(o.ended_by, "auto");
	store_cont_outage_clear(&o);
	/* Only the drill is still open; the outage is no drill. */
	assert_int_equal(store_cont_outages_open(f->st, &open, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(open[0].id, drill);
	store_cont_outages_free(open, n);
	assert_int_equal(store_cont_outage_get(f->st, "acme", "drill", id, &o), 0);
	assert_int_equal(store_cont_outage_get(f->st, "other", "outage", 0, &o), 0);
}

static void
assert_counts(struct store *st, long long id, long long acc, long long del, long long skip,
    long long pend, long long fail)
{
	struct store_cont_counts c;
	assert_int_equal(store_cont_ledger_counts(st, id, &c), 0);
	assert_int_equal(c.accepted, acc);
	assert_int_equal(c.delivered, del);
	assert_int_equal(c.skipped, skip);
	assert_int_equal(c.pending, pend);
	assert_int_equal(c.failed, fail);
	/* The report's rule: accepted = delivered (skipped included) + pending + failed. */
	assert_int_equal(c.accepted, c.delivered + c.skipped + c.pending + c.failed);
}

static void
test_ledger_reconciles(void **state)
{
	struct fixture *f = *state;
	long long id = new_outage(f->st, "outage", NULL);
	assert_int_equal(store_cont_ledger_add(f->st, id, "Q1", "a@acme.test", "inbound", 10,
	    "<m1@x>"), 1);
	assert_int_equal(store_cont_ledger_add(f->st, id, "Q1", "b@acme.test", "inbound", 10,
	    "<m1@x>"), 1);
	assert_int_equal(store_cont_ledger_add(f->st, id, "Q2", "a@acme.test", "inbound", 11,
	    NULL), 1);
	assert_int_equal(store_cont_ledger_add(f->st, id, "Q3", "a@acme.test", "sent", 12,
	    "<s@x>"), 1);
	/* A restart announces the same entries again: nothing is added. */
	assert_int_equal(store_cont_ledger_add(f->st, id, "Q1", "a@acme.test", "inbound", 10,
	    "<m1@x>"), 0);
	assert_counts(f->st, id, 4, 0, 0, 4, 0);

	/* Outcomes: matched by queue ID, recipient (any case) and kind. */
	assert_int_equal(store_cont_ledger_settle(f->st, 0, "Q1", "A@ACME.test", "inbound",
	    "delivered", "250 ok", 20), 1);
	assert_int_equal(store_cont_ledger_settle(f->st, 0, "Q1", "b@acme.test", "inbound",
	    "skipped", "250 already", 20), 1);
	assert_int_equal(store_cont_ledger_settle(f->st, 0, "Q2", "a@acme.test", "inbound",
	    "failed", "550 no such user", 21), 1);
	/* The 'sent' row is not settled by an inbound outcome, nor twice. */
	assert_int_equal(store_cont_ledger_settle(f->st, 0, "Q3", "a@acme.test", "inbound",
	    "delivered", "250", 21), 0);
	assert_int_equal(store_cont_ledger_settle(f->st, 0, "Q1", "a@acme.test", "inbound",
	    "failed", "late", 22), 0);
	assert_counts(f->st, id, 4, 1, 1, 1, 1);

	struct store_cont_ledger *rows = NULL;
	size_t n = 0;
	assert_int_equal(store_cont_ledger_list(f->st, id, "failed", NULL, 0, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].queue_id, "Q2");
	assert_string_equal(rows[0].reason, "550 no such user");
	store_cont_ledger_free(rows, n);

	/* The sent row follows its failback copy and is settled by the copy's outcome. */
	assert_int_equal(store_cont_ledger_retarget(f->st, id, "Q3", "a@acme.test", "C1"), 0);
	assert_int_equal(store_cont_ledger_settle(f->st, 0, "Q3", "a@acme.test", "sent",
	    "delivered", "250", 23), 0);
	assert_int_equal(store_cont_ledger_settle(f->st, id, "C1", "a@acme.test", "sent",
	    "delivered", "250", 23), 1);
	assert_counts(f->st, id, 4, 2, 1, 0, 1);
	assert_int_equal(store_cont_ledger_list(f->st, id, "pending", NULL, 0, &rows, &n), 0);
	assert_int_equal(n, 0);
	store_cont_ledger_free(rows, n);
}

static void
test_ledger_per_outage(void **state)
{
	struct fixture *f = *state;
	long long a = new_outage(f->st, "outage", NULL);
	long long b = new_outage(f->st, "outage", NULL);
	assert_int_equal(store_cont_ledger_add(f->st, a, "Q1", "x@acme.test", "inbound", 1,
	    NULL), 1);
	assert_int_equal(store_cont_ledger_add(f->st, b, "Q1", "x@acme.test", "inbound", 1,
	    NULL), 1);
	/* Scoped to one outage. */
	assert_int_equal(store_cont_ledger_settle(f->st, b, "Q1", "x@acme.test", "inbound",
	    "delivered", "250", 2), 1);
	assert_counts(f->st, a, 1, 0, 0, 1, 0);
	assert_counts(f->st, b, 1, 1, 0, 0, 0);
}

static void
test_delivered_memory(void **state)
{
	struct fixture *f = *state;
	long long now = time(NULL);
	assert_int_equal(store_cont_delivered_has(f->st, "acme", "<m@x>", "a@acme.test"), 0);
	assert_int_equal(store_cont_delivered_add(f->st, "acme", "<m@x>", "A@acme.test", now), 0);
	assert_int_equal(store_cont_delivered_has(f->st, "acme", "<m@x>", "a@ACME.test"), 1);
	assert_int_equal(store_cont_delivered_has(f->st, "acme", "<m@x>", "b@acme.test"), 0);
	assert_int_equal(store_cont_delivered_has(f->st, "other", "<m@x>", "a@acme.test"), 0);
	/* Older than 30 days: pruned by the next add. */
	assert_int_equal(store_cont_delivered_add(f->st, "acme", "<old@x>", "a@acme.test",
	    now - 31 * 86400), 0);
	assert_int_equal(store_cont_delivered_add(f->st, "acme", "<n@x>", "a@acme.test", now), 0);
	assert_int_equal(store_cont_delivered_has(f->st, "acme", "<old@x>", "a@acme.test"), 0);
	assert_int_equal(store_cont_delivered_has(f->st, "acme", "<m@x>", "a@acme.test"), 1);
}

static void
test_signins(void **state)
{
	struct fixture *f = *state;
	long long id = new_outage(f->st, "drill", NULL);
	struct store_cont_signin *list = NULL;
	size_t n = 0;
	assert_int_equal(store_cont_signin_add(f->st, id, "B@acme.test", "imap", 5), 0);
	assert_int_equal(store_cont_signin_add(f->st, id, "b@acme.test", "imap", 6), 0);
	assert_int_equal(store_cont_signin_add(f->st, id, "b@acme.test", "submission", 7), 0);
	assert_int_equal(store_cont_signins(f->st, id, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].address, "b@acme.test");
	assert_string_equal(list[0].service, "imap");
	assert_int_equal(list[0].count, 2);
	assert_int_equal(list[0].first_at, 5);
	assert_string_equal(list[1].service, "submission");
	store_cont_signins_free(list, n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outage_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_reconciles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_per_outage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivered_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signins, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
