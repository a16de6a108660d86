/*
 * Unit tests for src/archive/archive_export: a few messages are ingested in
 * a fresh archive, exported as eml and as mbox, and the ZIP is read back
 * with libarchive: every file is there, bytes are identical, manifest.json
 * parses with the right hashes, manifest.csv has count + 1 lines, the
 * mboxrd file un-escapes to the same bytes; a query and a mailbox list
 * restrict the export; an existing output file is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/archive_crypto.h"
#include "archive/archive_export.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/sys.h"
#include "unit_tmp.h"

#define NMSG 3

/* 0: mboxrd escaping needed; 1: no final newline; 2: CRLF, CSV quoting. */
static const char *const msgs[NMSG] = {
	"From: Jane Doe <jane@example.com>\nTo: bob@example.com\nSubject: Budget report\n"
	"Date: Tue, 05 Mar 2019 10:00:00 +0000\nMessage-ID: <m1@example.com>\n\n"
	"Hello, the budget is attached.\nFrom the desk of Jane\n>From an old quote\n"
	">>From deeper\n",
	"From: Carl <carl@example.org>\nTo: alice@example.com\nSubject: pizza tonight\n"
	"Date: Wed, 06 Mar 2019 18:30:00 +0000\nMessage-ID: <m2@example.org>\n\n"
	"Pizza at eight? no newline at the end",
	"From: Dora <dora@example.net>\r\nTo: alice@example.com\r\n"
	"Subject: \"Quoted\", with comma\r\nDate: Thu, 07 Mar 2019 09:15:00 +0000\r\n"
	"Message-ID: <m3@example.net>\r\n\r\nCRLF body line\r\nFrom here on\r\n",
};
static const char *const owners[NMSG] = { "bob@example.com", "alice@example.com",
	"alice@example.com" };

struct fixture {
	char dir[64];
	struct archive *a;
};

struct entry {
	char *name;
	struct buf data;
};

struct zip {
	struct entry e[16];
	size_t n;
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	assert_int_equal(unit_tmpdir(f->dir, sizeof(f->dir), "export"), 0);
	char path[128];
	snprintf(path, sizeof(path), "%s/keys", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/keys/master.key", f->dir);
	unsigned char key[32];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 7 + 3);
	assert_int_equal(sys_write_file_atomic(path, key, sizeof(key), 0600), 0);
	char *err = NULL;
	assert_int_equal(archive_open(f->dir, &f->a, &err), 0);
	for (size_t i = 0; i < NMSG; i++) {
		struct archive_item it = { .raw = msgs[i], .len = strlen(msgs[i]),
			.mailboxes = &owners[i], .nmailboxes = 1, .folder = "Inbox",
			.source = "inbound", .env_from = i == 0 ? "jane@example.com" : NULL };
		struct archive_ingest_result res;
		if (archive_ingest(f->a, "acme", &it, &res, &err) < 0)
			fail_msg("ingest: %s", err);
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	archive_close(&f->a);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
zip_read(const char *path, struct zip *z)
{
	memset(z, 0, sizeof(*z));
	struct archive *rd = archive_read_new();
	assert_non_null(rd);
	assert_int_equal(archive_read_support_format_zip(rd), ARCHIVE_OK);
	assert_int_equal(archive_read_open_filename(rd, path, 16384), ARCHIVE_OK);
	struct archive_entry *ae;
	while (archive_read_next_header(rd, &ae) == ARCHIVE_OK) {
		assert_true(z->n < 16);
		struct entry *e = &z->e[z->n++];
		e->name = xstrdup(archive_entry_pathname(ae));
		char chunk[4096];
		la_ssize_t got;
		while ((got = archive_read_data(rd, chunk, sizeof(chunk))) > 0)
			buf_append(&e->data, chunk, (size_t)got);
		assert_int_equal(got, 0);
	}
	archive_read_free(rd);
}

static void
zip_free(struct zip *z)
{
	for (size_t i = 0; i < z->n; i++) {
		free(z->e[i].name);
		buf_free(&z->e[i].data);
	}
}

static struct buf *
zip_get(struct zip *z, const char *name)
{
	for (size_t i = 0; i < z->n; i++)
		if (strcmp(z->e[i].name, name) == 0)
			return &z->e[i].data;
	return NULL;
}

/* Index in msgs[] of the message with this SHA-256, -1 if none. */
static int
msg_by_hash(const char *sha)
{
	for (int i = 0; i < NMSG; i++) {
		char h[65];
		archive_crypto_sha256_hex(msgs[i], strlen(msgs[i]), h);
		if (strcmp(h, sha) == 0)
			return i;
	}
	return -1;
}

static json_t *
manifest(struct zip *z)
{
	struct buf *b = zip_get(z, "manifest.json");
	assert_non_null(b);
	json_error_t jerr;
	json_t *m = json_loadb(b->data, b->len, 0, &jerr);
	if (m == NULL)
		fail_msg("manifest.json: %s", jerr.text);
	return m;
}

static size_t
count_lines(const struct buf *b)
{
	size_t n = 0;
	for (size_t i = 0; i + 1 < b->len; i++)
		if (b->data[i] == '\r' && b->data[i + 1] == '\n')
			n++;
	return n;
}

static int
export_to(struct fixture *f, const char *query, const char *const *mb, size_t nmb,
    enum archive_export_format fmt, const char *name, char out[128],
    struct archive_export_result *r)
{
	char *err = NULL;
	snprintf(out, 128, "%s/%s", f->dir, name);
	int rc = archive_export(f->a, "acme", query, mb, nmb, fmt, out, r, NULL, NULL, &err);
	free(err);
	return rc;
}

static void
check_zip_hash(const char *path, const struct archive_export_result *r)
{
	char *data;
	size_t len;
	assert_int_equal(sys_read_file(path, 1 << 24, &data, &len), 0);
	char h[65];
	archive_crypto_sha256_hex(data, len, h);
	assert_string_equal(h, r->sha256_zip);
	assert_int_equal(len, r->bytes);
	free(data);
}

static void
test_export_eml(void **state)
{
	struct fixture *f = *state;
	char out[128];
	struct archive_export_result r;
	assert_int_equal(export_to(f, "*", NULL, 0, ARCHIVE_EXPORT_EML, "all.zip", out, &r), 0);
	assert_int_equal(r.messages, NMSG);
	check_zip_hash(out, &r);
	struct zip z;
	zip_read(out, &z);
	assert_int_equal(z.n, NMSG + 2);
	json_t *m = manifest(&z);
	assert_string_equal(json_string_value(json_object_get(m, "tenant")), "acme");
	assert_string_equal(json_string_value(json_object_get(m, "format")), "eml");
	assert_int_equal(json_integer_value(json_object_get(m, "count")), NMSG);
	json_t *arr = json_object_get(m, "messages");
	assert_int_equal(json_array_size(arr), NMSG);
	int seen[NMSG] = { 0 };
	for (size_t i = 0; i < NMSG; i++) {
		json_t *e = json_array_get(arr, i);
		int k = msg_by_hash(json_string_value(json_object_get(e, "sha256")));
		assert_true(k >= 0);
		assert_int_equal(k, (int)i);   /* oldest first: the fixtures are in date order */
		seen[k]++;
		char want[64];
		snprintf(want, sizeof(want), "messages/%lld.eml",
		    (long long)json_integer_value(json_object_get(e, "archive_id")));
		assert_string_equal(json_string_value(json_object_get(e, "file")), want);
		struct buf *b = zip_get(&z, want);
		assert_non_null(b);
		assert_int_equal(b->len, strlen(msgs[k]));
		assert_memory_equal(b->data, msgs[k], b->len);
		assert_int_equal(json_integer_value(json_object_get(e, "size")), strlen(msgs[k]));
		assert_string_equal(json_string_value(json_object_get(e, "mailbox")), owners[k]);
		assert_string_equal(json_string_value(json_object_get(e, "folder")), "Inbox");
	}
	for (size_t i = 0; i < NMSG; i++)
		assert_int_equal(seen[i], 1);
	struct buf *csv = zip_get(&z, "manifest.csv");
	assert_non_null(csv);
	assert_int_equal(count_lines(csv), NMSG + 1);
	/* RFC 4180: the subject with a comma and quotes is quoted, quotes doubled. */
	static const char quoted[] = "\"\"\"Quoted\"\", with comma\"";
	assert_non_null(memmem(csv->data, csv->len, quoted, strlen(quoted)));
	json_decref(m);
	zip_free(&z);
}

/* Splits an mboxrd file into messages, un-escaping ^>+From lines. */
static size_t
mbox_split(const struct buf *mb, struct buf out[NMSG])
{
	size_t n = 0, i = 0;
	while (i < mb->len) {
		const char *p = mb->data + i;
		const char *nl = memchr(p, '\n', mb->len - i);
		size_t llen = nl != NULL ? (size_t)(nl - p) + 1 : mb->len - i;
		if (llen >= 5 && memcmp(p, "From ", 5) == 0) {
			assert_true(n < NMSG);
			n++;
		} else {
			assert_true(n > 0);
			size_t gt = 0;
			while (gt < llen && p[gt] == '>')
				gt++;
			int esc = gt > 0 && llen - gt >= 5 && memcmp(p + gt, "From ", 5) == 0;
			buf_append(&out[n - 1], p + esc, llen - (size_t)esc);
		}
		i += llen;
	}
	return n;
}

static void
test_export_mbox(void **state)
{
	struct fixture *f = *state;
	char out[128];
	struct archive_export_result r;
	assert_int_equal(export_to(f, "*", NULL, 0, ARCHIVE_EXPORT_MBOX, "all.mbox.zip", out, &r),
	    0);
	assert_int_equal(r.messages, NMSG);
	check_zip_hash(out, &r);
	struct zip z;
	zip_read(out, &z);
	assert_int_equal(z.n, 3);
	struct buf *mb = zip_get(&z, "messages.mbox");
	assert_non_null(mb);
	/* The escaped lines are there as mboxrd writes them. */
	assert_non_null(memmem(mb->data, mb->len, "\n>From the desk", 15));
	assert_non_null(memmem(mb->data, mb->len, "\n>>From an old", 14));
	assert_non_null(memmem(mb->data, mb->len, "\n>>>From deeper", 15));
	assert_non_null(memmem(mb->data, mb->len, "From jane@example.com ", 22));
	assert_non_null(memmem(mb->data, mb->len, "From MAILER-DAEMON ", 19));
	json_t *m = manifest(&z);
	json_t *arr = json_object_get(m, "messages");
	assert_int_equal(json_array_size(arr), NMSG);
	struct buf parts[NMSG] = { BUF_INIT, BUF_INIT, BUF_INIT };
	assert_int_equal(mbox_split(mb, parts), NMSG);
	for (size_t i = 0; i < NMSG; i++) {
		json_t *e = json_array_get(arr, i);
		int k = msg_by_hash(json_string_value(json_object_get(e, "sha256")));
		assert_true(k >= 0);
		assert_string_equal(json_string_value(json_object_get(e, "file")), "messages.mbox");
		const char *note = json_string_value(json_object_get(e, "note"));
		size_t strip = 1 + (note != NULL && note[0] != '\0');
		assert_int_equal(strip == 2, k == 1);   /* only message 1 lacks a final newline */
		assert_true(parts[i].len >= strip);
		assert_int_equal(parts[i].len - strip, strlen(msgs[k]));
		assert_memory_equal(parts[i].data, msgs[k], strlen(msgs[k]));
		buf_free(&parts[i]);
	}
	assert_int_equal(count_lines(zip_get(&z, "manifest.csv")), NMSG + 1);
	json_decref(m);
	zip_free(&z);
}

static void
test_export_restricts(void **state)
{
	struct fixture *f = *state;
	char out[128];
	struct archive_export_result r;
	assert_int_equal(export_to(f, "pizza", NULL, 0, ARCHIVE_EXPORT_EML, "q.zip", out, &r), 0);
	assert_int_equal(r.messages, 1);
	struct zip z;
	zip_read(out, &z);
	assert_int_equal(z.n, 3);
	json_t *m = manifest(&z);
	json_t *e = json_array_get(json_object_get(m, "messages"), 0);
	assert_int_equal(msg_by_hash(json_string_value(json_object_get(e, "sha256"))), 1);
	assert_string_equal(json_string_value(json_object_get(m, "query")), "pizza");
	json_decref(m);
	zip_free(&z);

	const char *const mine[] = { "bob@example.com" };
	assert_int_equal(export_to(f, "*", mine, 1, ARCHIVE_EXPORT_EML, "bob.zip", out, &r), 0);
	assert_int_equal(r.messages, 1);
	zip_read(out, &z);
	m = manifest(&z);
	e = json_array_get(json_object_get(m, "messages"), 0);
	assert_int_equal(msg_by_hash(json_string_value(json_object_get(e, "sha256"))), 0);
	json_decref(m);
	zip_free(&z);

	/* Nothing found: a valid ZIP with an empty manifest. */
	assert_int_equal(export_to(f, "nosuchwordanywhere", NULL, 0, ARCHIVE_EXPORT_MBOX,
	    "none.zip", out, &r), 0);
	assert_int_equal(r.messages, 0);
	zip_read(out, &z);
	m = manifest(&z);
	assert_int_equal(json_integer_value(json_object_get(m, "count")), 0);
	assert_int_equal(count_lines(zip_get(&z, "manifest.csv")), 1);
	json_decref(m);
	zip_free(&z);
}

static void
test_export_refuses(void **state)
{
	struct fixture *f = *state;
	char out[128], tmp[160];
	struct archive_export_result r, r2;
	assert_int_equal(export_to(f, "*", NULL, 0, ARCHIVE_EXPORT_EML, "once.zip", out, &r), 0);
	/* The same name again: refused, the first file untouched, no temp file left. */
	assert_int_equal(export_to(f, "*", NULL, 0, ARCHIVE_EXPORT_MBOX, "once.zip", out, &r2),
	    -1);
	check_zip_hash(out, &r);
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	assert_int_equal(access(tmp, F_OK), -1);
	/* A bad query fails before anything is written. */
	assert_int_equal(export_to(f, "(unbalanced", NULL, 0, ARCHIVE_EXPORT_EML, "bad.zip", out,
	    &r2), -1);
	assert_int_equal(access(out, F_OK), -1);
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	assert_int_equal(access(tmp, F_OK), -1);
	/* An unknown tenant is an error, not an empty export. */
	char *err = NULL;
	snprintf(out, 128, "%s/other.zip", f->dir);
	assert_int_equal(archive_export(f->a, "nosuch", "*", NULL, 0, ARCHIVE_EXPORT_EML, out, &r2,
	    NULL, NULL, &err), -1);
	assert_non_null(err);
	free(err);
	assert_int_equal(access(out, F_OK), -1);
}

static void
test_export_format_parse(void **state)
{
	enum archive_export_format fmt;
	assert_int_equal(archive_export_format_parse("mbox", &fmt), 0);
	assert_int_equal(fmt, ARCHIVE_EXPORT_MBOX);
	assert_int_equal(archive_export_format_parse("eml", &fmt), 0);
	assert_int_equal(fmt, ARCHIVE_EXPORT_EML);
	assert_int_equal(archive_export_format_parse("pst", &fmt), -1);
	assert_int_equal(archive_export_format_parse(NULL, &fmt), -1);
	assert_string_equal(archive_export_format_name(ARCHIVE_EXPORT_MBOX), "mbox");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_export_eml, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_mbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_restricts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_refuses, setup, teardown),
		cmocka_unit_test(test_export_format_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
