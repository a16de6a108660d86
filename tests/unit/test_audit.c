/*
 * Unit tests for src/audit: a chain of entries verifies; editing any field
 * of one row, deleting a row, swapping two rows' contents, touching a
 * checkpoint or cutting the tail makes audit_verify() fail naming the
 * right entry.  The rows are tampered with through SQLite directly, as an
 * attacker with the database file would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/audit_internal.h"
#include <jansson.h>

#include "lib/log.h"
#include "store/store.h"

#define N_ENTRIES 150

struct fixture {
	char dir[64];
	char db[128];
	struct audit *a;
};

static void
append_one(struct audit *a, int i)
{
	char obj[64], actor[64];
	snprintf(obj, sizeof(obj), "tenant:t%d domain:d%d.example", i % 3, i);
	snprintf(actor, sizeof(actor), "user%d@t%d.example", i % 5, i % 3);
	char tenant[16];
	snprintf(tenant, sizeof(tenant), "t%d", i % 3);
	struct audit_fields f = {
		.actor = actor, .role = i % 2 ? "admin" : "operator",
		.tenant = i % 7 == 0 ? NULL : tenant, .action = "domain.add", .object = obj,
		.source = "192.0.2.7", .outcome = i % 4 == 0 ? "failed" : "ok",
		.detail = i % 4 == 0 ? "no such tenant" : NULL,
	};
	char *err = NULL;
	assert_int_equal(audit_append(a, &f, &err), 0);
	assert_null(err);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mailark-test-audit-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/mailark.db", f->dir);
	struct store *st;
	char *err = NULL;
	if (store_open(f->db, &st, &err) < 0)
		return -1;
	store_close(&st);
	if (audit_open(f->dir, 0, &f->a, &err) < 0) {
		fprintf(stderr, "audit_open: %s\n", err);
		return -1;
	}
	for (int i = 1; i <= N_ENTRIES; i++)
		append_one(f->a, i);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[192];
	audit_close(&f->a);
	const char *files[] = { "mailark.db", "mailark.db-wal", "mailark.db-shm",
	    "keys/audit.key", "keys/audit.pub" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/keys", f->dir);
	rmdir(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
exec_sql(struct fixture *f, const char *sql, int must_change)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fprintf(stderr, "tamper: %s: %s\n", sql, msg);
	assert_int_equal(rc, SQLITE_OK);
	if (must_change)
		assert_true(sqlite3_total_changes(db) > 0);
	sqlite3_close(db);
}

static void
tamper(struct fixture *f, const char *sql)
{
	exec_sql(f, sql, 1);
}

struct rows {
	struct store_audit_entry e[N_ENTRIES + 1];
	size_t n;
};

static int
collect_cb(void *arg, const struct store_audit_entry *e)
{
	struct rows *r = arg;
	struct store_audit_entry *c = &r->e[r->n++];
	*c = *e;
	char **fields[] = { &c->actor, &c->role, &c->tenant, &c->action, &c->object,
	    &c->source, &c->outcome, &c->detail };
	for (size_t i = 0; i < 8; i++)
		*fields[i] = *fields[i] ? strdup(*fields[i]) : NULL;
	return 0;
}

/*
 * What an attacker who knows the hash function does: change entry `seq`'s
 * object and recompute its hash, and with `chain` also every later
 * entry's prev_hash and hash.  Only a signed checkpoint can tell.
 */
static void
rewrite(struct fixture *f, long long seq, int chain)
{
	struct rows *r = calloc(1, sizeof(*r));
	assert_int_equal(store_audit_foreach(f->a->sa, collect_cb, r), 0);
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE audit SET object = ?1, prev_hash = ?2, "
	    "hash = ?3 WHERE seq = ?4", -1, &st, NULL), SQLITE_OK);
	for (size_t i = (size_t)seq - 1; i < r->n && (chain || i == (size_t)seq - 1); i++) {
		struct store_audit_entry *e = &r->e[i];
		if (e->seq == seq) {
			free(e->object);
			e->object = strdup("tenant:nothing-happened");
		} else {
			memcpy(e->prev_hash, r->e[i - 1].hash, 32);
		}
		audit_hash(e, e->hash);
		sqlite3_bind_text(st, 1, e->object, -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(st, 2, e->prev_hash, 32, SQLITE_TRANSIENT);
		sqlite3_bind_blob(st, 3, e->hash, 32, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, e->seq);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	for (size_t i = 0; i < r->n; i++)
		store_audit_entry_clear(&r->e[i]);
	free(r);
}

/* Verifies through a fresh read-only handle, as `mailark audit verify` does. */
static int
verify(struct fixture *f, char **report_r)
{
	struct audit *ro;
	char *err = NULL;
	assert_int_equal(audit_open(f->dir, 1, &ro, &err), 0);
	int rc = audit_verify(ro, NULL, report_r);
	audit_close(&ro);
	return rc;
}

static void
expect_bad(struct fixture *f, const char *prefix, const char *words)
{
	char *report = NULL;
	int rc = verify(f, &report);
	if (rc != 1 || strncmp(report, prefix, strlen(prefix)) != 0 ||
	    (words != NULL && strstr(report, words) == NULL))
		fprintf(stderr, "expected \"%s...%s\", got %d \"%s\"\n", prefix,
		    words ? words : "", rc, report);
	assert_int_equal(rc, 1);
	assert_memory_equal(report, prefix, strlen(prefix));
	if (words != NULL)
		assert_non_null(strstr(report, words));
	free(report);
}

/* ---- the good case --------------------------------------------------------- */

static void
test_chain_verifies(void **state)
{
	struct fixture *f = *state;
	char *report = NULL;
	assert_int_equal(verify(f, &report), 0);
	assert_non_null(strstr(report, "150 entries, 1 signed checkpoints"));
	assert_non_null(strstr(report, "entries 101-150 are chained but not yet"));
	free(report);
	/* The shutdown checkpoint seals the tail; a second one is not added. */
	char *err = NULL;
	assert_int_equal(audit_checkpoint(f->a, &err), 0);
	assert_int_equal(audit_checkpoint(f->a, &err), 0);
	assert_int_equal(verify(f, &report), 0);
	assert_non_null(strstr(report, "150 entries, 2 signed checkpoints (the last at entry 150"));
	free(report);
}

static void
test_key_files(void **state)
{
	struct fixture *f = *state;
	char p[192];
	struct stat st;
	snprintf(p, sizeof(p), "%s/keys/audit.key", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);
	unsigned char pk[AUDIT_PUBKEY_LEN];
	char *err = NULL;
	snprintf(p, sizeof(p), "%s/keys/audit.pub", f->dir);
	assert_int_equal(audit_pubkey_load(p, pk, &err), 0);
	assert_memory_equal(pk, f->a->pk, AUDIT_PUBKEY_LEN);
	/* key_id: first 8 bytes of SHA-256(pk), in hex. */
	unsigned char h[32];
	char hex[17];
	crypto_hash_sha256(h, pk, sizeof(pk));
	sodium_bin2hex(hex, sizeof(hex), h, 8);
	assert_string_equal(hex, f->a->key_id);
}

static void
test_empty_trail_verifies(void **state)
{
	struct fixture *f = *state;
	tamper(f, "DELETE FROM audit_checkpoints; DELETE FROM audit;");
	char *report = NULL;
	assert_int_equal(verify(f, &report), 0);
	assert_non_null(strstr(report, "0 entries"));
	free(report);
}

/* ---- edits ------------------------------------------------------------------- */

static void
test_edit_each_field(void **state)
{
	struct fixture *f = *state;
	static const char *const edits[] = {
		"UPDATE audit SET actor = 'someone@else' WHERE seq = 42",
		"UPDATE audit SET role = 'auditor' WHERE seq = 42",
		"UPDATE audit SET tenant = 't9' WHERE seq = 42",
		"UPDATE audit SET action = 'domain.remove' WHERE seq = 42",
		"UPDATE audit SET object = 'tenant:t0' WHERE seq = 42",
		"UPDATE audit SET source = '198.51.100.1' WHERE seq = 42",
		"UPDATE audit SET outcome = 'denied' WHERE seq = 42",
		"UPDATE audit SET detail = 'nothing to see' WHERE seq = 42",
		"UPDATE audit SET time_us = time_us + 1 WHERE seq = 42",
		"UPDATE audit SET hash = zeroblob(32) WHERE seq = 42",
		/* NULL and empty must not hash alike. */
		"UPDATE audit SET tenant = '' WHERE seq = 42",
		/* A NUL inside a value must not hide what follows it. */
		"UPDATE audit SET object = object || char(0) || 'x' WHERE seq = 42",
	};
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		exec_sql(f, "CREATE TABLE keep AS SELECT * FROM audit WHERE seq = 42", 0);
		tamper(f, edits[i]);
		expect_bad(f, "audit: entry 42: ", NULL);
		exec_sql(f, "DELETE FROM audit WHERE seq = 42; INSERT INTO audit SELECT * FROM keep;"
		    " DROP TABLE keep", 1);
		char *report = NULL;
		assert_int_equal(verify(f, &report), 0);
		free(report);
	}
}

static void
test_edit_names_hash_mismatch(void **state)
{
	struct fixture *f = *state;
	tamper(f, "UPDATE audit SET object = 'tenant:evil' WHERE seq = 42");
	char *report = NULL;
	assert_int_equal(verify(f, &report), 1);
	assert_string_equal(report, "audit: entry 42: hash mismatch (edited?)");
	free(report);
}

static void
test_edit_prev_hash(void **state)
{
	struct fixture *f = *state;
	tamper(f, "UPDATE audit SET prev_hash = zeroblob(32) WHERE seq = 42");
	expect_bad(f, "audit: entry 42: ", "does not follow");
}

/* Rewriting one entry and its hash breaks the link from the next entry. */
static void
test_edit_with_recomputed_hash(void **state)
{
	struct fixture *f = *state;
	rewrite(f, 42, 0);
	expect_bad(f, "audit: entry 43: ", "does not follow");
}

/* Rewriting the whole chain from there on: the signed checkpoint catches it. */
static void
test_rewritten_chain_caught_by_checkpoint(void **state)
{
	struct fixture *f = *state;
	rewrite(f, 42, 1);
	expect_bad(f, "audit: entry 100: checkpoint hash does not match", NULL);
}

/* ---- deletion, reordering, truncation ------------------------------------------ */

static void
test_delete_row(void **state)
{
	struct fixture *f = *state;
	tamper(f, "DELETE FROM audit WHERE seq = 42");
	char *report = NULL;
	assert_int_equal(verify(f, &report), 1);
	assert_string_equal(report, "audit: entry 42: missing (deleted?)");
	free(report);
}

static void
test_delete_first_row(void **state)
{
	struct fixture *f = *state;
	tamper(f, "DELETE FROM audit WHERE seq = 1");
	expect_bad(f, "audit: entry 1: missing", NULL);
}

static void
test_delete_and_renumber(void **state)
{
	struct fixture *f = *state;
	/* Close the gap by moving every later row down one: the chain breaks at 42. */
	tamper(f, "DELETE FROM audit WHERE seq = 42; UPDATE audit SET seq = -seq WHERE seq > 42;"
	    " UPDATE audit SET seq = -seq - 1 WHERE seq < 0");
	expect_bad(f, "audit: entry 42: ", "does not follow");
}

static void
test_swap_rows(void **state)
{
	struct fixture *f = *state;
	/* Swap every column but seq between entries 42 and 57. */
	tamper(f, "CREATE TABLE t AS SELECT * FROM audit WHERE seq IN (42, 57);"
	    "UPDATE audit SET (time_us, actor, role, tenant, action, object, source, outcome,"
	    " detail, prev_hash, hash) = (SELECT time_us, actor, role, tenant, action, object,"
	    " source, outcome, detail, prev_hash, hash FROM t WHERE t.seq = 99 - audit.seq)"
	    " WHERE seq IN (42, 57); DROP TABLE t");
	expect_bad(f, "audit: entry 42: ", NULL);
}

static void
test_swap_adjacent_contents(void **state)
{
	struct fixture *f = *state;
	/* Swap only what the entries say, leaving the hash columns in place. */
	tamper(f, "CREATE TABLE t AS SELECT * FROM audit WHERE seq IN (60, 61);"
	    "UPDATE audit SET (actor, role, tenant, object, outcome, detail) ="
	    " (SELECT actor, role, tenant, object, outcome, detail FROM t"
	    " WHERE t.seq = 121 - audit.seq) WHERE seq IN (60, 61); DROP TABLE t");
	expect_bad(f, "audit: entry 60: ", "hash mismatch");
}

static void
test_truncate_tail_under_checkpoint(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	assert_int_equal(audit_checkpoint(f->a, &err), 0);
	tamper(f, "DELETE FROM audit WHERE seq >= 149");
	expect_bad(f, "audit: entry 149: missing", "cut off");
}

/* Documented limit: after the last checkpoint, the tail can go unnoticed. */
static void
test_truncate_tail_after_checkpoint_undetected(void **state)
{
	struct fixture *f = *state;
	tamper(f, "DELETE FROM audit WHERE seq >= 149");
	char *report = NULL;
	assert_int_equal(verify(f, &report), 0);
	assert_non_null(strstr(report, "148 entries"));
	free(report);
}

/* ---- checkpoints --------------------------------------------------------------- */

static void
test_checkpoint_signature_altered(void **state)
{
	struct fixture *f = *state;
	tamper(f, "UPDATE audit_checkpoints SET signature = CASE WHEN substr(signature, 20, 1) ="
	    " X'01' THEN substr(signature, 1, 19) || X'02' || substr(signature, 21) ELSE"
	    " substr(signature, 1, 19) || X'01' || substr(signature, 21) END WHERE seq = 100");
	expect_bad(f, "audit: entry 100: checkpoint signature invalid", NULL);
}

static void
test_checkpoint_time_altered(void **state)
{
	struct fixture *f = *state;
	tamper(f, "UPDATE audit_checkpoints SET time_us = time_us + 1 WHERE seq = 100");
	expect_bad(f, "audit: entry 100: checkpoint signature invalid", NULL);
}

static void
test_checkpoint_deleted(void **state)
{
	struct fixture *f = *state;
	tamper(f, "DELETE FROM audit_checkpoints WHERE seq = 100");
	expect_bad(f, "audit: entry 100: checkpoint missing", NULL);
}

static void
test_checkpoint_hash_altered(void **state)
{
	struct fixture *f = *state;
	tamper(f, "UPDATE audit_checkpoints SET hash = zeroblob(32) WHERE seq = 100");
	expect_bad(f, "audit: entry 100: checkpoint hash does not match", NULL);
}

static void
test_other_key_refused(void **state)
{
	struct fixture *f = *state;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	crypto_sign_keypair(pk, sk);
	struct audit *ro;
	char *err = NULL, *report = NULL;
	assert_int_equal(audit_open(f->dir, 1, &ro, &err), 0);
	assert_int_equal(audit_verify(ro, pk, &report), 1);
	assert_non_null(strstr(report, "audit: entry 100: checkpoint signed by unknown key"));
	free(report);
	audit_close(&ro);
}

/* ---- encoding, listing, times ------------------------------------------------------ */

static void
test_fields_do_not_bleed(void **state)
{
	struct store_audit_entry a, b;
	unsigned char ha[32], hb[32];
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.seq = b.seq = 7;
	a.actor = "ab";
	a.role = "c";
	b.actor = "a";
	b.role = "bc";
	audit_hash(&a, ha);
	audit_hash(&b, hb);
	assert_memory_not_equal(ha, hb, 32);
	b.actor = "ab";
	b.role = "c";
	audit_hash(&b, hb);
	assert_memory_equal(ha, hb, 32);
	b.seq = 8;
	audit_hash(&b, hb);
	assert_memory_not_equal(ha, hb, 32);
}

static void
test_list_filters(void **state)
{
	struct fixture *f = *state;
	struct store_audit_filter flt = { "t1", NULL, 0, 5 };
	json_t *res;
	char *err = NULL;
	assert_int_equal(audit_list_json(f->a, &flt, &res, &err), 0);
	assert_int_equal(json_array_size(res), 5);
	long long prev = 1LL << 62;
	size_t i;
	json_t *e;
	json_array_foreach(res, i, e) {
		long long seq = json_integer_value(json_object_get(e, "seq"));
		assert_true(seq < prev);   /* newest first */
		prev = seq;
		assert_string_equal(json_string_value(json_object_get(e, "tenant")), "t1");
	}
	assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 0), "seq")), 148);
	json_decref(res);
	flt = (struct store_audit_filter){ NULL, "user3@t0.example", 0, 0 };
	assert_int_equal(audit_list_json(f->a, &flt, &res, &err), 0);
	assert_int_equal(json_array_size(res), 10);    /* i = 3 mod 15 */
	json_decref(res);
	flt = (struct store_audit_filter){ NULL, NULL, 1LL << 60, 0 };
	assert_int_equal(audit_list_json(f->a, &flt, &res, &err), 0);
	assert_int_equal(json_array_size(res), 0);
	json_decref(res);
}

static void
test_parse_time(void **state)
{
	long long us;
	time_t now = 1714564800;    /* 2024-05-01T12:00:00Z */
	assert_int_equal(audit_parse_time("2h", now, &us), 0);
	assert_int_equal(us, (now - 7200) * 1000000LL);
	assert_int_equal(audit_parse_time("3d", now, &us), 0);
	assert_int_equal(us, (now - 3 * 86400) * 1000000LL);
	assert_int_equal(audit_parse_time("2024-05-01", now, &us), 0);
	assert_int_equal(us, 1714521600LL * 1000000);
	assert_int_equal(audit_parse_time("2024-05-01T12:00:00Z", now, &us), 0);
	assert_int_equal(us, now * 1000000LL);
	assert_int_equal(audit_parse_time("2024-05-01T14:00+02:00", now, &us), 0);
	assert_int_equal(us, now * 1000000LL);
	assert_int_equal(audit_parse_time("2024-05-01 12:30:15", now, &us), 0);
	assert_int_equal(us, (now + 1815) * 1000000LL);
	const char *bad[] = { "", "yesterday", "2024", "2024-05-01T", "2024-05-01Tnoon",
	    "2024-05-01T12:00+2", "2024-05-01X", "-2h", "2h junk", "99999999w" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (audit_parse_time(bad[i], now, &us) == 0)
			fprintf(stderr, "accepted '%s'\n", bad[i]);
		assert_int_equal(audit_parse_time(bad[i], now, &us), -1);
	}
}

int
main(void)
{
	log_configure(LOGL_WARN, LOGF_TEXT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_trail_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_each_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_names_hash_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_prev_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_with_recomputed_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_first_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_and_renumber, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_adjacent_contents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate_tail_under_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate_tail_after_checkpoint_undetected,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_signature_altered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_time_altered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewritten_chain_caught_by_checkpoint, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_hash_altered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_key_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
		cmocka_unit_test(test_fields_do_not_bleed),
		cmocka_unit_test(test_parse_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
