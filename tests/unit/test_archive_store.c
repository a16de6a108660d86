/*
 * Unit tests for src/archive/archive_crypto and archive_store: sealing,
 * data keys (wrap, wrong master key, shredding) and the per-tenant
 * store.db (idempotent ingest, dedup, reads, deletes, statistics, zstd
 * dictionaries: trained at the threshold, sealed, format 2), each in
 * a fresh temporary data directory with a master key of its own.
 *
 * MAILARK_MEASURE=1 also prints seal+put throughput over the corpus
 * Maildir (corpus: $MAILARK_CORPUS, else ../shared/corpus).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_crypto.h"
#include "archive/archive_store.h"
#include "lib/log.h"
#include "lib/sys.h"
#include "unit_tmp.h"

struct fixture {
	char dir[64];
	unsigned char key[ARCHIVE_KEY_LEN];
};

static void
write_master(const char *dir, const void *data, size_t len)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/keys", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/keys/master.key", dir);
	assert_int_equal(sys_write_file_atomic(p, data, len, 0600), 0);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	unsigned char master[32];
	if (f == NULL || unit_tmpdir(f->dir, sizeof(f->dir), "test-archive") < 0 ||
	    sodium_init() < 0)
		return -1;
	randombytes_buf(master, sizeof(master));
	write_master(f->dir, master, sizeof(master));
	randombytes_buf(f->key, sizeof(f->key));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
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

/* ------------------------------------------------------------- sealing */

static void
roundtrip(const unsigned char *key, const void *raw, size_t len)
{
	char hash[65], *err = NULL;
	unsigned char *sealed = NULL, *back = NULL;
	size_t slen = 0, blen = 0;
	archive_crypto_sha256_hex(raw, len, hash);
	ok(archive_crypto_seal(key, hash, raw, len, &sealed, &slen, &err), &err);
	assert_true(slen >= 2 + 24 + 16);
	assert_int_equal(sealed[0], 'A');
	assert_int_equal(sealed[1], '1');
	ok(archive_crypto_open(key, hash, sealed, slen, &back, &blen, &err), &err);
	assert_int_equal(blen, len);
	if (len > 0)
		assert_memory_equal(back, raw, len);
	free(sealed);
	free(back);
}

static void
test_seal_roundtrip(void **state)
{
	struct fixture *f = *state;
	static const char text[] = "From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n";
	unsigned char bin[256], *rnd = malloc(65536);
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)i;
	randombytes_buf(rnd, 65536);
	roundtrip(f->key, text, sizeof(text) - 1);
	roundtrip(f->key, bin, sizeof(bin));
	roundtrip(f->key, rnd, 65536);      /* incompressible */
	roundtrip(f->key, "x", 1);
	roundtrip(f->key, "", 0);
	free(rnd);
}

static void
test_sha256_known(void **state)
{
	char h[65];
	archive_crypto_sha256_hex("abc", 3, h);
	assert_string_equal(h,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_true(archive_crypto_hash_ok(h));
	assert_false(archive_crypto_hash_ok("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
	assert_false(archive_crypto_hash_ok("abc"));
	assert_false(archive_crypto_hash_ok(NULL));
}

static void
test_seal_nonce_random(void **state)
{
	struct fixture *f = *state;
	char hash[65], *err = NULL;
	unsigned char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	archive_crypto_sha256_hex("same", 4, hash);
	ok(archive_crypto_seal(f->key, hash, "same", 4, &a, &alen, &err), &err);
	ok(archive_crypto_seal(f->key, hash, "same", 4, &b, &blen, &err), &err);
	assert_int_equal(alen, blen);
	assert_memory_not_equal(a, b, alen);
	free(a);
	free(b);
}

static void
test_open_refuses(void **state)
{
	struct fixture *f = *state;
	static const char msg[] = "Subject: secret\r\n\r\nthe body of a message\r\n";
	char hash[65], other[65], *err = NULL;
	unsigned char *sealed = NULL, *out = NULL, wrong[ARCHIVE_KEY_LEN];
	size_t slen = 0, olen = 0;
	archive_crypto_sha256_hex(msg, sizeof(msg) - 1, hash);
	archive_crypto_sha256_hex("other", 5, other);
	ok(archive_crypto_seal(f->key, hash, msg, sizeof(msg) - 1, &sealed, &slen, &err), &err);
	/* wrong key */
	memcpy(wrong, f->key, sizeof(wrong));
	wrong[0] ^= 1;
	refused(archive_crypto_open(wrong, hash, sealed, slen, &out, &olen, &err), &err,
	    "does not open");
	/* wrong hash (associated data) */
	refused(archive_crypto_open(f->key, other, sealed, slen, &out, &olen, &err), &err,
	    "does not open");
	/* tampered ciphertext, nonce, tag */
	size_t where[] = { slen / 2, 5, slen - 1 };
	for (size_t i = 0; i < 3; i++) {
		sealed[where[i]] ^= 0x40;
		refused(archive_crypto_open(f->key, hash, sealed, slen, &out, &olen, &err), &err,
		    "does not open");
		sealed[where[i]] ^= 0x40;
	}
	/* bad header, truncated, empty */
	sealed[0] = 'B';
	refused(archive_crypto_open(f->key, hash, sealed, slen, &out, &olen, &err), &err,
	    "not a sealed archive blob");
	sealed[0] = 'A';
	refused(archive_crypto_open(f->key, hash, sealed, 20, &out, &olen, &err), &err,
	    "not a sealed archive blob");
	refused(archive_crypto_open(f->key, hash, sealed, 0, &out, &olen, &err), &err,
	    "not a sealed archive blob");
	refused(archive_crypto_open(f->key, "nothex", sealed, slen, &out, &olen, &err), &err,
	    "64 lower-case hex");
	assert_null(out);
	/* still fine untouched */
	ok(archive_crypto_open(f->key, hash, sealed, slen, &out, &olen, &err), &err);
	free(out);
	free(sealed);
}

/* Sealed under the right AD but with content that hashes differently. */
static void
test_open_checks_content_hash(void **state)
{
	struct fixture *f = *state;
	char claimed[65], *err = NULL;
	unsigned char *sealed = NULL, *out = NULL;
	size_t slen = 0, olen = 0;
	archive_crypto_sha256_hex("the real content", 16, claimed);
	ok(archive_crypto_seal(f->key, claimed, "forged content", 14, &sealed, &slen, &err), &err);
	refused(archive_crypto_open(f->key, claimed, sealed, slen, &out, &olen, &err), &err,
	    "corrupt");
	assert_null(out);
	free(sealed);
}

/* ------------------------------------------------------------- data keys */

static void
test_datakey_create_load(void **state)
{
	struct fixture *f = *state;
	unsigned char k1[ARCHIVE_KEY_LEN], k2[ARCHIVE_KEY_LEN], zero[ARCHIVE_KEY_LEN] = { 0 };
	char *err = NULL, p[160];
	struct stat st;
	refused(archive_crypto_datakey_load(f->dir, "acme", 0, k1, &err), &err,
	    "no archive data key");
	ok(archive_crypto_datakey_load(f->dir, "acme", 1, k1, &err), &err);
	assert_memory_not_equal(k1, zero, sizeof(zero));
	ok(archive_crypto_datakey_load(f->dir, "acme", 0, k2, &err), &err);
	assert_memory_equal(k1, k2, sizeof(k1));
	ok(archive_crypto_datakey_load(f->dir, "acme", 1, k2, &err), &err);   /* not replaced */
	assert_memory_equal(k1, k2, sizeof(k1));
	ok(archive_crypto_datakey_load(f->dir, "other", 1, k2, &err), &err);
	assert_memory_not_equal(k1, k2, sizeof(k1));

	snprintf(p, sizeof(p), "%s/archive/acme/datakey", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(sys_read_file(p, 4096, &text, &len), 0);
	assert_int_equal(strncmp(text, "v1:", 3), 0);
	assert_null(memchr(text, '\0', len));
	free(text);
	snprintf(p, sizeof(p), "%s/archive/acme", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(p, sizeof(p), "%s/archive", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

static void
test_datakey_wrong_master(void **state)
{
	struct fixture *f = *state;
	unsigned char k[ARCHIVE_KEY_LEN], other[32];
	char *err = NULL;
	ok(archive_crypto_datakey_load(f->dir, "acme", 1, k, &err), &err);
	randombytes_buf(other, sizeof(other));
	write_master(f->dir, other, sizeof(other));
	refused(archive_crypto_datakey_load(f->dir, "acme", 0, k, &err), &err, "does not open");
	/* create=1 must not replace a key it cannot open */
	refused(archive_crypto_datakey_load(f->dir, "acme", 1, k, &err), &err, "does not open");
	write_master(f->dir, other, 31);
	refused(archive_crypto_datakey_load(f->dir, "acme", 0, k, &err), &err, "exactly 32 bytes");
	write_master(f->dir, "0123456789abcdef0123456789abcdef!", 33);
	refused(archive_crypto_datakey_load(f->dir, "acme", 0, k, &err), &err, "exactly 32 bytes");
	char p[128];
	snprintf(p, sizeof(p), "%s/keys/master.key", f->dir);
	unlink(p);
	refused(archive_crypto_datakey_load(f->dir, "acme", 0, k, &err), &err, "missing");
}

/* A datakey file copied to another tenant does not open (AD = tenant). */
static void
test_datakey_other_tenant(void **state)
{
	struct fixture *f = *state;
	unsigned char k[ARCHIVE_KEY_LEN];
	char *err = NULL, a[160], b[160];
	ok(archive_crypto_datakey_load(f->dir, "acme", 1, k, &err), &err);
	ok(archive_crypto_datakey_load(f->dir, "beta", 1, k, &err), &err);
	snprintf(a, sizeof(a), "%s/archive/acme/datakey", f->dir);
	snprintf(b, sizeof(b), "%s/archive/beta/datakey", f->dir);
	assert_int_equal(rename(a, b), 0);
	refused(archive_crypto_datakey_load(f->dir, "beta", 0, k, &err), &err, "does not open");
	assert_int_equal(sys_write_file_atomic(b, "v1:garbage", 10, 0600), 0);
	refused(archive_crypto_datakey_load(f->dir, "beta", 0, k, &err), &err, "malformed");
}

static void
test_datakey_shred(void **state)
{
	struct fixture *f = *state;
	unsigned char k[ARCHIVE_KEY_LEN];
	char *err = NULL, p[160];
	ok(archive_crypto_datakey_load(f->dir, "acme", 1, k, &err), &err);
	ok(archive_crypto_datakey_shred(f->dir, "acme", &err), &err);
	snprintf(p, sizeof(p), "%s/archive/acme/datakey", f->dir);
	assert_int_equal(access(p, F_OK), -1);
	refused(archive_crypto_datakey_load(f->dir, "acme", 0, k, &err), &err,
	    "no archive data key");
	ok(archive_crypto_datakey_shred(f->dir, "acme", &err), &err);   /* idempotent */
}

static void
test_tenant_names(void **state)
{
	struct fixture *f = *state;
	unsigned char k[ARCHIVE_KEY_LEN];
	char *err = NULL, long_name[80];
	struct archive_store *s = NULL;
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	const char *bad[] = { "", "../etc", "Acme", "a/b", "a.b", long_name, "a b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		refused(archive_crypto_datakey_load(f->dir, bad[i], 1, k, &err), &err,
		    "not a valid tenant");
		refused(archive_store_open(f->dir, bad[i], 1, &s, &err), &err, "not a valid tenant");
		refused(archive_crypto_datakey_shred(f->dir, bad[i], &err), &err,
		    "not a valid tenant");
		assert_null(s);
	}
	long_name[63] = '\0';
	assert_true(archive_crypto_tenant_ok(long_name));
	assert_true(archive_crypto_tenant_ok("acme-2"));
}

/* ------------------------------------------------------------- the store */

static struct archive_store *
open_store(struct fixture *f, const char *tenant)
{
	struct archive_store *s = NULL;
	char *err = NULL;
	ok(archive_store_open(f->dir, tenant, 1, &s, &err), &err);
	assert_non_null(s);
	return s;
}

/* Puts msg for the mailboxes in one transaction; returns the result. */
static struct archive_put_result
put(struct archive_store *s, const char *msg, const char *const *mb, size_t nmb,
    long long *ids)
{
	char hash[65], *err = NULL;
	struct archive_put_result r;
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	struct archive_put p = {
		.raw = msg, .len = strlen(msg), .hash = hash, .mailboxes = mb, .nmailboxes = nmb,
		.folder = "Inbox", .source = "inbound", .env_from = "a@example.org",
		.env_rcpts = "b@example.org", .queue_id = "Q1", .archived_at = 1700000000,
		.msg_date = 1690000000, .expires_at = -1,
	};
	ok(archive_store_begin(s, &err), &err);
	ok(archive_store_put(s, &p, &r, ids, &err), &err);
	ok(archive_store_commit(s, &err), &err);
	return r;
}

static long long
count(struct archive_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(archive_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void
test_store_open_missing(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = NULL;
	char *err = NULL, p[160];
	refused(archive_store_open(f->dir, "acme", 0, &s, &err), &err, "has no archive");
	assert_null(s);
	s = open_store(f, "acme");
	archive_store_close(&s);
	assert_null(s);
	ok(archive_store_open(f->dir, "acme", 0, &s, &err), &err);
	archive_store_close(&s);
	/* a store.db whose key was shredded is never given a new key */
	ok(archive_crypto_datakey_shred(f->dir, "acme", &err), &err);
	refused(archive_store_open(f->dir, "acme", 1, &s, &err), &err, "no archive data key");
	snprintf(p, sizeof(p), "%s/archive/acme/datakey", f->dir);
	assert_int_equal(access(p, F_OK), -1);
	/* a store.db moved under another tenant's name is refused */
	char a[160], b[160];
	s = open_store(f, "beta");
	archive_store_close(&s);
	snprintf(a, sizeof(a), "%s/archive/acme/store.db", f->dir);
	snprintf(b, sizeof(b), "%s/archive/beta/store.db", f->dir);
	assert_int_equal(rename(a, b), 0);
	refused(archive_store_open(f->dir, "beta", 0, &s, &err), &err, "another tenant");
}

static void
test_store_put_idempotent(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	const char *mb[] = { "Bob@Example.ORG" };
	long long ids[1];
	struct archive_put_result r = put(s, "Subject: one\r\n\r\nbody\r\n", mb, 1, ids);
	assert_int_equal(r.blob_new, 1);
	assert_int_equal(r.rows_new, 1);
	assert_int_equal(r.rows_dup, 0);
	assert_true(ids[0] > 0);
	assert_int_equal(r.first_id, ids[0]);
	long long first = ids[0];
	r = put(s, "Subject: one\r\n\r\nbody\r\n", mb, 1, ids);
	assert_int_equal(r.blob_new, 0);
	assert_int_equal(r.rows_new, 0);
	assert_int_equal(r.rows_dup, 1);
	assert_int_equal(r.first_id, 0);
	assert_int_equal(ids[0], 0);
	assert_int_equal(count(s, "SELECT count(*) FROM messages"), 1);
	assert_int_equal(count(s, "SELECT count(*) FROM blobs"), 1);
	assert_int_equal(count(s, "SELECT count(*) FROM messages WHERE mailbox = "
	    "'bob@example.org'"), 1);
	assert_int_equal(archive_store_max_id(s), first);
	archive_store_close(&s);
}

static void
test_store_dedup_mailboxes(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	const char *m1[] = { "a@example.org" };
	const char *m2[] = { "c@example.org", "A@example.org", "d@example.org" };
	long long ids[3];
	put(s, "Subject: shared\r\n\r\nx\r\n", m1, 1, ids);
	struct archive_put_result r = put(s, "Subject: shared\r\n\r\nx\r\n", m2, 3, ids);
	assert_int_equal(r.blob_new, 0);
	assert_int_equal(r.rows_new, 2);
	assert_int_equal(r.rows_dup, 1);
	assert_true(ids[0] > 0);
	assert_int_equal(ids[1], 0);                 /* a@ again, case-insensitively */
	assert_true(ids[2] > ids[0]);
	assert_int_equal(r.first_id, ids[0]);
	assert_int_equal(count(s, "SELECT count(*) FROM messages"), 3);
	assert_int_equal(count(s, "SELECT count(*) FROM blobs"), 1);
	/* no mailbox: one tenant-wide row */
	r = put(s, "Subject: nobody\r\n\r\n", NULL, 0, ids);
	assert_int_equal(r.rows_new, 1);
	struct archive_row row;
	char *err = NULL;
	assert_int_equal(archive_store_row(s, ids[0], &row, &err), 1);
	assert_string_equal(row.mailbox, "");
	archive_row_free(&row);
	archive_store_close(&s);
}

static void
test_store_get_row(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	char msg[2048], hash[65], *err = NULL;
	for (size_t i = 0; i < sizeof(msg) - 1; i++)
		msg[i] = (char)(1 + i % 250);        /* binary-ish, no NUL */
	msg[sizeof(msg) - 1] = '\0';
	const char *mb[] = { "u@example.org" };
	long long ids[1];
	put(s, msg, mb, 1, ids);
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	unsigned char *raw = NULL;
	size_t len = 0;
	ok(archive_store_get(s, hash, &raw, &len, &err), &err);
	assert_int_equal(len, strlen(msg));
	assert_memory_equal(raw, msg, len);
	free(raw);
	struct archive_row row;
	assert_int_equal(archive_store_row(s, ids[0], &row, &err), 1);
	assert_int_equal(row.id, ids[0]);
	assert_string_equal(row.hash, hash);
	assert_string_equal(row.mailbox, "u@example.org");
	assert_string_equal(row.folder, "Inbox");
	assert_string_equal(row.source, "inbound");
	assert_string_equal(row.env_from, "a@example.org");
	assert_string_equal(row.env_rcpts, "b@example.org");
	assert_string_equal(row.queue_id, "Q1");
	assert_int_equal(row.archived_at, 1700000000);
	assert_int_equal(row.msg_date, 1690000000);
	assert_int_equal(row.expires_at, -1);
	archive_row_free(&row);
	assert_int_equal(archive_store_row(s, ids[0] + 100, &row, &err), 0);
	/* unknown hash, bad hash */
	archive_crypto_sha256_hex("absent", 6, hash);
	assert_int_equal(archive_store_has_blob(s, hash), 0);
	refused(archive_store_get(s, hash, &raw, &len, &err), &err, "no stored message");
	refused(archive_store_get(s, "zz", &raw, &len, &err), &err, "not a message hash");
	archive_store_close(&s);
}

/* Flips one bit of a stored sealed blob, as a disk or an attacker might. */
static void
flip_blob_byte(struct archive_store *s, const char *hash, size_t at)
{
	sqlite3 *db = archive_store_db(s);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT sealed FROM blobs WHERE hash = ?1", -1,
	    &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	size_t n = (size_t)sqlite3_column_bytes(st, 0);
	assert_true(at < n);
	unsigned char *b = malloc(n);
	memcpy(b, sqlite3_column_blob(st, 0), n);
	sqlite3_finalize(st);
	b[at] ^= 0x01;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE blobs SET sealed = ?2 WHERE hash = ?1", -1,
	    &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, b, (int)n, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	free(b);
}

static void
test_store_tampered_blob(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	const char *msg = "Subject: tamper\r\n\r\nplease do not\r\n";
	char hash[65], *err = NULL;
	put(s, msg, NULL, 0, NULL);
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	flip_blob_byte(s, hash, 40);
	unsigned char *raw = NULL;
	size_t len = 0;
	refused(archive_store_get(s, hash, &raw, &len, &err), &err, "does not open");
	assert_null(raw);
	archive_store_close(&s);
}

static void
test_store_put_refuses(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	char hash[65], *err = NULL;
	archive_crypto_sha256_hex("m", 1, hash);
	struct archive_put p = { .raw = "m", .len = 1, .hash = hash, .source = "carrier-pigeon",
		.archived_at = 1, .msg_date = 1, .expires_at = -1 };
	refused(archive_store_put(s, &p, NULL, NULL, &err), &err, "unknown source");
	p.source = "import";
	p.hash = "ABC";
	refused(archive_store_put(s, &p, NULL, NULL, &err), &err, "64 lower-case hex");
	p.hash = hash;
	/* outside begin/commit it commits on its own */
	ok(archive_store_put(s, &p, NULL, NULL, &err), &err);
	assert_int_equal(count(s, "SELECT count(*) FROM messages"), 1);
	/* a rolled-back put leaves nothing */
	const char *mb[] = { "x@example.org" };
	p.mailboxes = mb;
	p.nmailboxes = 1;
	p.raw = "n";
	archive_crypto_sha256_hex("n", 1, hash);
	ok(archive_store_begin(s, &err), &err);
	refused(archive_store_begin(s, &err), &err, "already open");
	ok(archive_store_put(s, &p, NULL, NULL, &err), &err);
	archive_store_rollback(s);
	assert_int_equal(count(s, "SELECT count(*) FROM messages"), 1);
	assert_int_equal(count(s, "SELECT count(*) FROM blobs"), 1);
	archive_store_close(&s);
}

static int
collect_row(void *arg, const struct archive_row *r)
{
	long long *ids = arg;
	ids[++ids[0]] = r->id;
	return ids[0] >= 3;   /* stop after three */
}

static int
count_blob(void *arg, const char *hash, size_t size, const void *sealed, size_t sealed_len)
{
	size_t *n = arg;
	assert_true(archive_crypto_hash_ok(hash));
	assert_true(sealed_len > 0);
	assert_non_null(sealed);
	(*n)++;
	return 0;
}

static void
test_store_foreach(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	const char *mb[] = { "a@x.org", "b@x.org" };
	char *err = NULL, msg[64];
	long long ids[2], seen[8] = { 0 };
	for (int i = 0; i < 3; i++) {
		snprintf(msg, sizeof(msg), "Subject: %d\r\n\r\n", i);
		put(s, msg, mb, 2, ids);                 /* ids 1..6 */
	}
	ok(archive_store_foreach_row(s, 2, collect_row, seen, &err), &err);
	assert_int_equal(seen[0], 3);
	assert_int_equal(seen[1], 3);
	assert_int_equal(seen[2], 4);
	assert_int_equal(seen[3], 5);
	size_t nblobs = 0;
	ok(archive_store_foreach_blob(s, count_blob, &nblobs, &err), &err);
	assert_int_equal(nblobs, 3);
	archive_store_close(&s);
}

static void
test_store_delete_rows(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	const char *mb[] = { "a@x.org", "b@x.org" };
	const char *msg = "Subject: twice\r\n\r\n";
	char hash[65], *err = NULL;
	long long ids[2], other[1];
	size_t nb = 99;
	put(s, msg, mb, 2, ids);
	put(s, "Subject: other\r\n\r\n", NULL, 0, other);
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	ok(archive_store_delete_rows(s, &ids[0], 1, &nb, &err), &err);
	assert_int_equal(nb, 0);                     /* b@ still names it */
	assert_int_equal(archive_store_has_blob(s, hash), 1);
	/* inside a caller's transaction that rolls back: nothing happens */
	ok(archive_store_begin(s, &err), &err);
	ok(archive_store_delete_rows(s, &ids[1], 1, &nb, &err), &err);
	assert_int_equal(nb, 1);
	archive_store_rollback(s);
	assert_int_equal(archive_store_has_blob(s, hash), 1);
	/* the last reference goes: so does the blob; unknown ids are skipped */
	long long del[] = { ids[1], 424242, ids[0] };
	ok(archive_store_delete_rows(s, del, 3, &nb, &err), &err);
	assert_int_equal(nb, 1);
	assert_int_equal(archive_store_has_blob(s, hash), 0);
	assert_int_equal(count(s, "SELECT count(*) FROM messages"), 1);
	assert_int_equal(count(s, "SELECT count(*) FROM blobs"), 1);
	/* ids are never reused */
	long long again[2];
	put(s, msg, mb, 2, again);
	assert_true(again[0] > other[0]);
	archive_store_close(&s);
}

static void
test_store_stats(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	struct archive_store_stats st;
	char *err = NULL;
	ok(archive_store_stats(s, &st, &err), &err);
	assert_int_equal(st.messages, 0);
	assert_int_equal(st.blobs, 0);
	assert_int_equal(st.max_id, 0);
	const char *mb[] = { "a@x.org", "b@x.org" };
	const char *m1 = "Subject: 1\r\n\r\nfirst\r\n", *m2 = "Subject: 2\r\n\r\nsecond!\r\n";
	long long ids[2];
	put(s, m1, mb, 2, ids);
	put(s, m2, mb, 1, ids);
	ok(archive_store_stats(s, &st, &err), &err);
	assert_int_equal(st.messages, 3);
	assert_int_equal(st.blobs, 2);
	assert_int_equal(st.raw_bytes, (long long)(strlen(m1) + strlen(m2)));
	assert_int_equal(st.max_id, 3);
	assert_int_equal(st.sealed_bytes, count(s, "SELECT sum(length(sealed)) FROM blobs"));
	assert_true(st.sealed_bytes > 2 * (2 + 24 + 16));
	assert_int_equal(count(s, "PRAGMA page_size"), 16384);    /* new store.dbs */
	archive_store_close(&s);
}

/* ------------------------------------------------------------- dictionaries */

#define MARKER "X-Marker: zebra-quokka-7731"

/* A varied synthetic message number i (deterministic), into out (NUL-terminated). */
static void
gen_msg(unsigned i, char *out, size_t cap)
{
	static const char *const words[] = { "kernel", "patch", "driver", "memory", "review",
		"board", "clock", "register", "interrupt", "cache", "merge", "tree", "build",
		"warning", "fix", "revert", "device", "network", "timer", "config", "module",
		"support", "please", "thanks", "applied", "queue", "branch", "release" };
	unsigned x = i * 2654435761u + 12345u;
	int n = snprintf(out, cap, "From: user%u@example.org\r\nTo: list@example.org\r\n"
	    "Subject: report %u\r\n" MARKER "\r\nMessage-ID: <%u.%u@example.org>\r\n\r\n", i % 37,
	    i, i, x);
	for (int w = 0; w < 80 && n > 0 && (size_t)n + 16 < cap; w++) {
		x = x * 1103515245u + 12345u;
		n += snprintf(out + n, cap - (size_t)n, "%s%s", words[(x >> 16) % 28],
		    w % 12 == 11 ? ".\r\n" : " ");
	}
}

/* Puts synthetic messages from..to-1 for mailbox '' in one transaction. */
static void
put_range(struct archive_store *s, unsigned from, unsigned to)
{
	char msg[2048], hash[65], *err = NULL;
	ok(archive_store_begin(s, &err), &err);
	for (unsigned i = from; i < to; i++) {
		gen_msg(i, msg, sizeof(msg));
		archive_crypto_sha256_hex(msg, strlen(msg), hash);
		struct archive_put p = { .raw = msg, .len = strlen(msg), .hash = hash,
			.source = "import", .archived_at = 1, .msg_date = 1, .expires_at = -1 };
		ok(archive_store_put(s, &p, NULL, NULL, &err), &err);
	}
	ok(archive_store_commit(s, &err), &err);
}

/* The format byte and dictionary id of the stored blob of synthetic message i. */
static char
blob_format(struct archive_store *s, unsigned i, uint32_t *id_r)
{
	char msg[2048], hash[65];
	gen_msg(i, msg, sizeof(msg));
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(archive_store_db(s),
	    "SELECT sealed FROM blobs WHERE hash = ?1", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const unsigned char *b = sqlite3_column_blob(st, 0);
	int n = sqlite3_column_bytes(st, 0);
	assert_true(n > 6);
	char fmt = (char)b[1];
	*id_r = (uint32_t)b[2] << 24 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 8 | b[5];
	assert_int_equal(archive_crypto_blob_dict(b, (size_t)n, id_r), fmt == '2' ? 1 : 0);
	sqlite3_finalize(st);
	return fmt;
}

/* Gets synthetic message i back and compares it. */
static void
get_same(struct archive_store *s, unsigned i)
{
	char msg[2048], hash[65], *err = NULL;
	unsigned char *raw = NULL;
	size_t len = 0;
	gen_msg(i, msg, sizeof(msg));
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	ok(archive_store_get(s, hash, &raw, &len, &err), &err);
	assert_int_equal(len, strlen(msg));
	assert_memory_equal(raw, msg, len);
	free(raw);
}

/* Trains a dictionary from synthetic messages (caller frees). */
static unsigned char *
train_synthetic(size_t *dlen)
{
	char *all = malloc(600 * 2048), *err = NULL;
	size_t lens[600], used = 0;
	unsigned char *dict = NULL;
	for (unsigned i = 0; i < 600; i++) {
		gen_msg(i, all + used, 2048);
		lens[i] = strlen(all + used);
		used += lens[i];
	}
	ok(archive_crypto_dict_train(all, lens, 600, 16384, &dict, dlen, &err), &err);
	assert_true(*dlen > 256 && *dlen <= 16384);
	free(all);
	return dict;
}

static void
test_seal_v2_roundtrip(void **state)
{
	struct fixture *f = *state;
	char msg[2048], hash[65], *err = NULL;
	size_t dlen = 0, s1 = 0, s2 = 0, blen = 0;
	unsigned char *dict = train_synthetic(&dlen), *v1 = NULL, *v2 = NULL, *back = NULL;
	struct archive_zdict *zd = archive_crypto_zdict_new(7, dict, dlen, &err);
	struct archive_zdict *other = archive_crypto_zdict_new(8, dict, dlen, &err);
	assert_non_null(zd);
	assert_non_null(other);
	gen_msg(9999, msg, sizeof(msg));
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	ok(archive_crypto_seal_zdict(f->key, hash, zd, msg, strlen(msg), &v2, &s2, &err), &err);
	ok(archive_crypto_seal(f->key, hash, msg, strlen(msg), &v1, &s1, &err), &err);
	assert_memory_equal(v2, "A2\0\0\0\7", 6);
	assert_true(s2 < s1);    /* the dictionary helps */
	uint32_t id = 0;
	assert_int_equal(archive_crypto_blob_dict(v2, s2, &id), 1);
	assert_int_equal(id, 7);
	assert_int_equal(archive_crypto_blob_dict(v1, s1, &id), 0);
	assert_int_equal(archive_crypto_blob_dict("X2", 2, &id), -1);
	ok(archive_crypto_open_zdict(f->key, hash, zd, v2, s2, &back, &blen, &err), &err);
	assert_int_equal(blen, strlen(msg));
	assert_memory_equal(back, msg, blen);
	free(back);
	/* without its dictionary, or with another one, it does not open */
	refused(archive_crypto_open(f->key, hash, v2, s2, &back, &blen, &err), &err,
	    "needs compression dictionary 7");
	refused(archive_crypto_open_zdict(f->key, hash, other, v2, s2, &back, &blen, &err), &err,
	    "dictionary 7");
	/* the id is authenticated: relabelled for dictionary 8, the tag fails */
	v2[5] = 8;
	refused(archive_crypto_open_zdict(f->key, hash, other, v2, s2, &back, &blen, &err), &err,
	    "does not open");
	/* format 1 still opens, with or without a dictionary at hand */
	ok(archive_crypto_open_zdict(f->key, hash, zd, v1, s1, &back, &blen, &err), &err);
	assert_memory_equal(back, msg, blen);
	free(back);
	roundtrip(f->key, msg, strlen(msg));
	archive_crypto_zdict_free(&zd);
	archive_crypto_zdict_free(&other);
	assert_null(zd);
	free(v1);
	free(v2);
	archive_crypto_wipe(dict, dlen);
	free(dict);
}

static void
test_dict_seal_open(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	size_t dlen = 0, slen = 0, blen = 0;
	unsigned char *dict = train_synthetic(&dlen), *sealed = NULL, *back = NULL;
	ok(archive_crypto_dict_seal(f->key, 3, dict, dlen, &sealed, &slen, &err), &err);
	assert_memory_equal(sealed, "D1", 2);
	assert_null(memmem(sealed, slen, "zebra-quokka", 12));
	ok(archive_crypto_dict_open(f->key, 3, sealed, slen, &back, &blen, &err), &err);
	assert_int_equal(blen, dlen);
	assert_memory_equal(back, dict, dlen);
	free(back);
	refused(archive_crypto_dict_open(f->key, 4, sealed, slen, &back, &blen, &err), &err,
	    "does not open");
	sealed[slen - 1] ^= 1;
	refused(archive_crypto_dict_open(f->key, 3, sealed, slen, &back, &blen, &err), &err,
	    "does not open");
	refused(archive_crypto_dict_open(f->key, 3, "A1", 2, &back, &blen, &err), &err,
	    "not a sealed dictionary");
	refused(archive_crypto_dict_train("abc", (size_t[]){ 3 }, 1, 16384, &back, &blen, &err),
	    &err, "cannot train");
	free(sealed);
	free(dict);
}

static void
test_store_dict_threshold(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	uint32_t id = 0;
	char *err = NULL;
	put_range(s, 0, 500);
	assert_int_equal(count(s, "SELECT count(*) FROM dicts"), 0);
	assert_int_equal(blob_format(s, 499, &id), '1');
	put_range(s, 500, 510);    /* the 501st blob trains the dictionary first */
	assert_int_equal(count(s, "SELECT count(*) FROM dicts"), 1);
	assert_int_equal(blob_format(s, 500, &id), '2');
	assert_int_equal(id, 1);
	assert_int_equal(blob_format(s, 509, &id), '2');
	assert_int_equal(count(s, "SELECT count(*) FROM blobs WHERE substr(sealed, 1, 2) = "
	    "CAST('A2' AS BLOB)"), 10);
	get_same(s, 0);
	get_same(s, 505);
	/* stats: blobs only, the dictionary is not counted */
	struct archive_store_stats st;
	ok(archive_store_stats(s, &st, &err), &err);
	assert_int_equal(st.messages, 510);
	assert_int_equal(st.blobs, 510);
	assert_int_equal(st.max_id, 510);
	assert_int_equal(st.raw_bytes, count(s, "SELECT sum(size) FROM blobs"));
	assert_int_equal(st.sealed_bytes, count(s, "SELECT sum(length(sealed)) FROM blobs"));
	archive_store_close(&s);
	/* a new handle loads the dictionary when it needs it */
	ok(archive_store_open(f->dir, "acme", 0, &s, &err), &err);
	get_same(s, 507);
	put_range(s, 510, 511);
	assert_int_equal(blob_format(s, 510, &id), '2');
	assert_int_equal(count(s, "SELECT count(*) FROM dicts"), 1);
	archive_store_close(&s);
}

/* Counts blobs that archive_store_open_blob opens (as verify does). */
static int
open_blob_cb(void *arg, const char *hash, size_t size, const void *sealed, size_t len)
{
	struct archive_store *s = ((void **)arg)[0];
	size_t *n = ((void **)arg)[1];
	unsigned char *raw = NULL;
	size_t rlen = 0;
	char *err = NULL;
	if (archive_store_open_blob(s, hash, sealed, len, &raw, &rlen, &err) == 0 && rlen == size)
		(*n)++;
	free(raw);
	free(err);
	return 0;
}

static void
test_store_open_blob_verify(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	char *err = NULL;
	put_range(s, 0, 520);
	archive_store_close(&s);
	ok(archive_store_open(f->dir, "acme", 0, &s, &err), &err);    /* as verify does */
	size_t n = 0;
	void *arg[2] = { s, &n };
	ok(archive_store_foreach_blob(s, open_blob_cb, arg, &err), &err);
	assert_int_equal(n, 520);
	archive_store_close(&s);
}

/* Does the file hold these bytes? */
static int
file_has(const char *path, const void *needle, size_t len)
{
	char *data = NULL;
	size_t n = 0;
	if (sys_read_file(path, 256u << 20, &data, &n) < 0)
		return 0;
	int found = memmem(data, n, needle, len) != NULL;
	free(data);
	return found;
}

static void
test_store_dict_sealed(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	char *err = NULL, path[160];
	unsigned char *dict = NULL;
	size_t dlen = 0;
	put_range(s, 0, 600);
	assert_int_equal(count(s, "SELECT count(*) FROM dicts"), 1);
	/* the dictionary holds plaintext mail... */
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(archive_store_db(s),
	    "SELECT id, sealed FROM dicts", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	ok(archive_crypto_dict_open(archive_store_key(s), (uint32_t)sqlite3_column_int64(st, 0),
	    sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), &dict, &dlen, &err),
	    &err);
	sqlite3_finalize(st);
	assert_non_null(memmem(dict, dlen, "zebra-quokka", 12));
	/* ...which the file does not */
	assert_int_equal(sqlite3_exec(archive_store_db(s), "PRAGMA wal_checkpoint(TRUNCATE)",
	    NULL, NULL, NULL), SQLITE_OK);
	snprintf(path, sizeof(path), "%s/archive/acme/store.db", f->dir);
	assert_false(file_has(path, "zebra-quokka", 12));
	assert_false(file_has(path, dict + dlen / 2, 32));
	assert_true(file_has(path, "CREATE TABLE dicts", 18));    /* the search works */
	free(dict);
	archive_store_close(&s);
}

/* Overwrites n bytes at `at` of the sealed value the first `select` row names. */
static void
patch_sealed(sqlite3 *db, const char *select, const char *update, const char *key,
    size_t at, const void *bytes, size_t n)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, select, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	size_t len = (size_t)sqlite3_column_bytes(st, 0);
	assert_true(at + n <= len);
	unsigned char *b = malloc(len);
	memcpy(b, sqlite3_column_blob(st, 0), len);
	sqlite3_finalize(st);
	memcpy(b + at, bytes, n);
	assert_int_equal(sqlite3_prepare_v2(db, update, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, b, (int)len, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
	free(b);
}

/* Rewrites the dictionary id in the header of synthetic message i's blob. */
static void
relabel_blob(struct archive_store *s, unsigned i, uint32_t id)
{
	char msg[2048], hash[65];
	gen_msg(i, msg, sizeof(msg));
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	unsigned char be[4] = { (unsigned char)(id >> 24), (unsigned char)(id >> 16),
		(unsigned char)(id >> 8), (unsigned char)id };
	patch_sealed(archive_store_db(s), "SELECT sealed FROM blobs WHERE hash = ?1",
	    "UPDATE blobs SET sealed = ?2 WHERE hash = ?1", hash, 2, be, 4);
}

static void
test_store_dict_tampered(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	char msg[2048], hash[65], *err = NULL;
	unsigned char *raw = NULL;
	size_t len = 0;
	uint32_t id = 0;
	put_range(s, 0, 501);
	ok(archive_store_train(s, &err), &err);    /* a second dictionary, now the newest */
	assert_int_equal(count(s, "SELECT max(id) FROM dicts"), 2);
	put_range(s, 501, 503);
	assert_int_equal(blob_format(s, 500, &id), '2');
	assert_int_equal(id, 1);
	assert_int_equal(blob_format(s, 501, &id), '2');
	assert_int_equal(id, 2);
	get_same(s, 500);
	get_same(s, 501);
	gen_msg(501, msg, sizeof(msg));
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	relabel_blob(s, 501, 1);    /* an existing dictionary: the tag fails */
	refused(archive_store_get(s, hash, &raw, &len, &err), &err, "does not open");
	relabel_blob(s, 501, 99);   /* no such dictionary */
	refused(archive_store_get(s, hash, &raw, &len, &err), &err, "no compression dictionary 99");
	relabel_blob(s, 501, 0);
	refused(archive_store_get(s, hash, &raw, &len, &err), &err, "dictionary 0");
	relabel_blob(s, 501, 2);
	get_same(s, 501);
	/* a tampered dictionary does not load in a fresh handle */
	patch_sealed(archive_store_db(s), "SELECT sealed FROM dicts WHERE id = CAST(?1 AS INTEGER)",
	    "UPDATE dicts SET sealed = ?2 WHERE id = CAST(?1 AS INTEGER)", "2", 40, "\x5a", 1);
	archive_store_close(&s);
	ok(archive_store_open(f->dir, "acme", 0, &s, &err), &err);
	refused(archive_store_get(s, hash, &raw, &len, &err), &err, "dictionary 2 does not open");
	get_same(s, 500);
	archive_store_close(&s);
}

static void
test_store_dict_rollback(void **state)
{
	struct fixture *f = *state;
	struct archive_store *s = open_store(f, "acme");
	char msg[2048], hash[65], *err = NULL;
	uint32_t id = 0;
	put_range(s, 0, 500);
	/* the put that trains is rolled back: the dictionary must not be used later */
	gen_msg(500, msg, sizeof(msg));
	archive_crypto_sha256_hex(msg, strlen(msg), hash);
	struct archive_put p = { .raw = msg, .len = strlen(msg), .hash = hash, .source = "import",
		.archived_at = 1, .msg_date = 1, .expires_at = -1 };
	ok(archive_store_begin(s, &err), &err);
	ok(archive_store_put(s, &p, NULL, NULL, &err), &err);
	assert_int_equal(count(s, "SELECT count(*) FROM dicts"), 1);
	archive_store_rollback(s);
	assert_int_equal(count(s, "SELECT count(*) FROM dicts"), 0);
	put_range(s, 501, 502);    /* trains again */
	assert_int_equal(count(s, "SELECT count(*) FROM dicts"), 1);
	assert_int_equal(blob_format(s, 501, &id), '2');
	assert_int_equal(id, 1);
	archive_store_close(&s);
	ok(archive_store_open(f->dir, "acme", 0, &s, &err), &err);
	get_same(s, 501);
	archive_store_close(&s);
}

/* ------------------------------------------------------------- corpus */

static const char *
corpus_dir(void)
{
	const char *c = getenv("MAILARK_CORPUS");
	return c != NULL && *c != '\0' ? c : "../shared/corpus";
}

static void
test_store_corpus_compresses(void **state)
{
	struct fixture *f = *state;
	char path[512], hash[65], *data = NULL, *err = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/mime/nodemailer-mailparser/large_text.eml", corpus_dir());
	if (sys_read_file(path, 64u << 20, &data, &len) < 0)
		skip();
	assert_true(len > 1000000);
	struct archive_store *s = open_store(f, "acme");
	archive_crypto_sha256_hex(data, len, hash);
	struct archive_put p = { .raw = data, .len = len, .hash = hash, .source = "import",
		.archived_at = 1, .msg_date = 1, .expires_at = -1 };
	struct archive_put_result r;
	ok(archive_store_put(s, &p, &r, NULL, &err), &err);
	assert_int_equal(r.blob_new, 1);
	struct archive_store_stats st;
	ok(archive_store_stats(s, &st, &err), &err);
	assert_int_equal(st.raw_bytes, (long long)len);
	assert_true(st.sealed_bytes < st.raw_bytes);
	unsigned char *back = NULL;
	size_t blen = 0;
	ok(archive_store_get(s, hash, &back, &blen, &err), &err);
	assert_int_equal(blen, len);
	assert_memory_equal(back, data, len);
	printf("corpus 1 MB message: raw %lld sealed %lld (%.1f%%)\n", st.raw_bytes,
	    st.sealed_bytes, 100.0 * (double)st.sealed_bytes / (double)st.raw_bytes);
	free(back);
	free(data);
	archive_store_close(&s);
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct corpus {
	char **data;
	size_t *len;
	size_t n, bytes;
};

static void
corpus_load(struct corpus *c, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	memset(c, 0, sizeof(*c));
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char p[1024];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		c->data = realloc(c->data, (c->n + 1) * sizeof(*c->data));
		c->len = realloc(c->len, (c->n + 1) * sizeof(*c->len));
		assert_int_equal(sys_read_file(p, 64u << 20, &c->data[c->n], &c->len[c->n]), 0);
		c->bytes += c->len[c->n++];
	}
	closedir(d);
}

/* Puts the whole corpus, committing every `batch` messages; prints the rate. */
static void
measure_put(struct fixture *f, const struct corpus *c, const char *tenant, size_t batch)
{
	struct archive_store *s = open_store(f, tenant);
	const char *mb[] = { "linux-mips@vger.kernel.org" };
	char *err = NULL, hash[65];
	double t0 = now_s();
	for (size_t i = 0; i < c->n; i++) {
		archive_crypto_sha256_hex(c->data[i], c->len[i], hash);
		struct archive_put p = { .raw = c->data[i], .len = c->len[i], .hash = hash,
			.mailboxes = mb, .nmailboxes = 1, .source = "import",
			.archived_at = 1, .msg_date = 1, .expires_at = -1 };
		if (i % batch == 0)
			ok(archive_store_begin(s, &err), &err);
		ok(archive_store_put(s, &p, NULL, NULL, &err), &err);
		if (i % batch == batch - 1 || i == c->n - 1)
			ok(archive_store_commit(s, &err), &err);
	}
	double dt = now_s() - t0;
	struct archive_store_stats st;
	ok(archive_store_stats(s, &st, &err), &err);
	assert_int_equal(sqlite3_exec(archive_store_db(s), "PRAGMA wal_checkpoint(TRUNCATE)", NULL,
	    NULL, NULL), SQLITE_OK);
	char path[256];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/archive/%s/store.db", f->dir, tenant);
	assert_int_equal(stat(path, &sb), 0);
	printf("MEASURE sha256+seal+put, commit every %zu: %zu msgs %.1f MB in %.2f s = "
	    "%.1f MB/s, %.0f msgs/s; sealed/raw = %.1f%%, store.db/raw = %.1f%%\n", batch, c->n,
	    c->bytes / 1e6, dt, c->bytes / 1e6 / dt, c->n / dt,
	    100.0 * (double)st.sealed_bytes / (double)st.raw_bytes,
	    100.0 * (double)sb.st_size / (double)c->bytes);
	archive_store_close(&s);
}

/* Times training a dictionary from the newest (up to 2000) messages of a store. */
static void
measure_train(struct fixture *f, const char *tenant)
{
	struct archive_store *s = open_store(f, tenant);
	char *err = NULL;
	double t0 = now_s();
	ok(archive_store_train(s, &err), &err);
	printf("MEASURE archive_store_train: %.2f s\n", now_s() - t0);
	archive_store_close(&s);
}

/* Seal throughput and ratio with a dictionary trained on the first 500 messages. */
static void
measure_seal_dict(struct fixture *f, const struct corpus *c)
{
	char *err = NULL, hash[65], *all = malloc(c->bytes);
	size_t *lens = calloc(c->n, sizeof(*lens)), n = 0, used = 0, dlen = 0, total = 0;
	unsigned char *dict = NULL;
	for (; n < c->n && n < 500; n++) {
		lens[n] = c->len[n] < 8192 ? c->len[n] : 8192;
		memcpy(all + used, c->data[n], lens[n]);
		used += lens[n];
	}
	ok(archive_crypto_dict_train(all, lens, n, 110 * 1024, &dict, &dlen, &err), &err);
	struct archive_zdict *zd = archive_crypto_zdict_new(1, dict, dlen, &err);
	double t0 = now_s();
	for (size_t i = 0; i < c->n; i++) {
		unsigned char *sealed = NULL;
		size_t slen = 0;
		archive_crypto_sha256_hex(c->data[i], c->len[i], hash);
		ok(archive_crypto_seal_zdict(f->key, hash, zd, c->data[i], c->len[i], &sealed,
		    &slen, &err), &err);
		total += slen;
		free(sealed);
	}
	double dt = now_s() - t0;
	printf("MEASURE sha256+seal with dictionary: %.1f MB/s, %.0f msgs/s, sealed/raw = "
	    "%.1f%%\n", c->bytes / 1e6 / dt, c->n / dt, 100.0 * (double)total / (double)c->bytes);
	archive_crypto_zdict_free(&zd);
	free(dict);
	free(lens);
	free(all);
}

static void
measure_seal(struct fixture *f, const struct corpus *c)
{
	char *err = NULL, hash[65];
	double t0 = now_s();
	for (size_t i = 0; i < c->n; i++) {
		unsigned char *sealed = NULL;
		size_t slen = 0;
		archive_crypto_sha256_hex(c->data[i], c->len[i], hash);
		ok(archive_crypto_seal(f->key, hash, c->data[i], c->len[i], &sealed, &slen, &err),
		    &err);
		free(sealed);
	}
	double dt = now_s() - t0;
	printf("MEASURE sha256+seal only: %.1f MB/s, %.0f msgs/s\n", c->bytes / 1e6 / dt,
	    c->n / dt);
	measure_seal_dict(f, c);
}

static void
test_measure_corpus(void **state)
{
	struct fixture *f = *state;
	const char *m = getenv("MAILARK_MEASURE");
	char dir[512];
	struct corpus c;
	if (m == NULL || strcmp(m, "1") != 0)
		skip();
	log_configure(LOGL_INFO, LOGF_TEXT);    /* shows archive_dict_trained with its time */
	snprintf(dir, sizeof(dir), "%s/mbox/linux-mips-2019-09to11-maildir/new", corpus_dir());
	corpus_load(&c, dir);
	if (c.n == 0)
		skip();
	measure_seal(f, &c);
	measure_put(f, &c, "one", 1);
	measure_put(f, &c, "batch", 100);
	measure_train(f, "batch");
	for (size_t i = 0; i < c.n; i++)
		free(c.data[i]);
	free(c.data);
	free(c.len);
}

int
main(void)
{
	log_configure(LOGL_WARN, LOGF_TEXT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_seal_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sha256_known, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_nonce_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_checks_content_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_datakey_create_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_datakey_wrong_master, setup, teardown),
		cmocka_unit_test_setup_teardown(test_datakey_other_tenant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_datakey_shred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_open_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_put_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_dedup_mailboxes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_get_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_tampered_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_put_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_foreach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_delete_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_v2_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dict_seal_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_dict_threshold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_open_blob_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_dict_sealed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_dict_tampered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_dict_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_corpus_compresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_measure_corpus, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
