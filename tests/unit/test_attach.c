/*
 * test_attach — the attachment policy stage on messages built here: blocked
 * extensions and types (also inside archives, nested), encrypted archives,
 * macro-enabled Office files (OOXML and OLE2), clean files, and hostile
 * archives (truncated, bombs, too many entries) that must not crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <glib.h>
#include <gmime/gmime.h>

#include "archive/archive_parse.h"
#include "hygiene/attach.h"
#include "hygiene/hygiene.h"
#include "hygiene/policy.h"
#include "unit_hygiene.h"
#include "lib/buf.h"
#include "lib/mem.h"

/* A Windows PE executable as far as libmagic can tell. */
static size_t
make_exe(unsigned char *out, size_t size)
{
	memset(out, 0, size);
	out[0] = 'M';
	out[1] = 'Z';
	out[0x3c] = 0x80;
	memcpy(out + 0x80, "PE\0\0\x4c\x01", 6);
	return size;
}

struct file {
	const char *name;
	const void *data;
	size_t len;
	const char *passphrase;   /* encrypt (zip traditional encryption) */
};

/* A zip of the files, malloc'd; *len_r its size. */
static unsigned char *
make_zip(const struct file *files, size_t n, size_t *len_r)
{
	size_t cap = 64 * 1024 * 1024;
	unsigned char *out = xmalloc(cap);
	struct archive *a = archive_write_new();
	assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
	int enc = 0;
	for (size_t i = 0; i < n; i++)
		if (files[i].passphrase != NULL && !enc) {
			assert_int_equal(archive_write_set_options(a, "zip:encryption=zipcrypt"),
			    ARCHIVE_OK);
			assert_int_equal(archive_write_set_passphrase(a, files[i].passphrase),
			    ARCHIVE_OK);
			enc = 1;
		}
	size_t used = 0;
	assert_int_equal(archive_write_open_memory(a, out, cap, &used), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, files[i].name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)files[i].len);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (files[i].len > 0)
			assert_int_equal(archive_write_data(a, files[i].data, files[i].len),
			    (la_ssize_t)files[i].len);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*len_r = used;
	return out;
}

/* A message with a text body and one base64 attachment. */
static char *
make_msg(const char *fname, const char *ctype, const void *data, size_t len)
{
	gchar *b64 = g_base64_encode(data, len);
	struct buf b = BUF_INIT;
	buf_appendf(&b, "From: a@example.org\r\nTo: b@example.net\r\nSubject: test\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BND\"\r\n\r\n"
	    "--BND\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
	    "--BND\r\nContent-Type: %s; name=\"%s\"\r\n"
	    "Content-Disposition: attachment; filename=\"%s\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n", ctype, fname, fname);
	size_t bl = strlen(b64);
	for (size_t i = 0; i < bl; i += 76) {
		buf_append(&b, b64 + i, bl - i > 76 ? 76 : bl - i);
		buf_append(&b, "\r\n", 2);
	}
	buf_append_str(&b, "--BND--\r\n");
	g_free(b64);
	return buf_steal(&b);
}

struct run {
	struct hygiene_result r;
	struct hygiene_policy pol;
};

/* Runs the stage over raw with the default policy (optionally adjusted). */
static void
run_stage(struct run *out, const char *raw, void (*adjust)(struct hygiene_policy *))
{
	memset(out, 0, sizeof(*out));
	out->pol = *policy_defaults();
	if (adjust != NULL)
		adjust(&out->pol);
	struct hygiene_msg m;
	unit_hygiene_msg(&m, &out->pol, QUEUE_INBOUND, "a@example.org", NULL, raw, strlen(raw));
	m.mime = archive_parse_message(raw, strlen(raw));
	assert_non_null(m.mime);
	unit_hygiene_run(attach_stage, &m, &out->r);
	g_object_unref(m.mime);
}

static void
run_file(struct run *out, const char *fname, const char *ctype, const void *data, size_t len)
{
	char *raw = make_msg(fname, ctype, data, len);
	run_stage(out, raw, NULL);
	free(raw);
}

static const char *
reasons(struct run *run)
{
	return buf_cstr(&run->r.reasons);
}

static void
assert_clean(struct run *run)
{
	assert_int_equal(run->r.action, HYGIENE_ACCEPT);
	assert_int_equal(run->r.reasons.len, 0);
	hygiene_result_free(&run->r);
}

/* Policy adjustments for run_stage(). */
static void
archives_off(struct hygiene_policy *p)
{
	p->attach_archives = 0;
}

static void
macros_reject(struct hygiene_policy *p)
{
	p->attach_macros = POLICY_ACT_REJECT;
}

static void
only_txt(struct hygiene_policy *p)
{
	static char *items[] = { (char *)"TXT" };
	p->attach_block_ext.items = items;
	p->attach_block_ext.n = 1;
	p->attach_action = POLICY_ACT_TAG;
}

static void
attach_off(struct hygiene_policy *p)
{
	p->attach_enabled = 0;
}

static int
setup(void **state)
{
	(void)state;
	return archive_parse_init();
}

static void
test_exe_by_extension(void **state)
{
	(void)state;
	struct run run;
	run_file(&run, "notes.exe", "application/octet-stream", "just text, really", 17);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	assert_string_equal(reasons(&run), "attach:blocked extension .exe: notes.exe");
	assert_string_equal(run.r.reply,
	    "550 5.7.1 Message rejected: attachment policy (blocked extension .exe: notes.exe)");
	hygiene_result_free(&run.r);
}

static void
test_double_extension(void **state)
{
	(void)state;
	struct run run;
	run_file(&run, "invoice.pdf.exe", "application/pdf", "%PDF-1.4\n", 9);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	assert_non_null(strstr(reasons(&run), "blocked extension .exe (double extension): "
	    "invoice.pdf.exe"));
	hygiene_result_free(&run.r);
	/* Trailing dots and blanks do not hide the extension. */
	run_file(&run, "setup.exe. ", "application/octet-stream", "x", 1);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	hygiene_result_free(&run.r);
}

static void
test_renamed_exe_by_magic(void **state)
{
	(void)state;
	unsigned char exe[1024];
	size_t len = make_exe(exe, sizeof(exe));
	struct run run;
	run_file(&run, "report.pdf", "application/pdf", exe, len);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	assert_non_null(strstr(reasons(&run), "attach:blocked type application/"));
	assert_non_null(strstr(reasons(&run), ": report.pdf"));
	hygiene_result_free(&run.r);
}

static void
test_rfc2231_name(void **state)
{
	(void)state;
	const char *raw = "From: a@example.org\r\nTo: b@example.net\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n"
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.e%78e\r\n\r\n"
	    "hello\r\n--B--\r\n";
	struct run run;
	run_stage(&run, raw, NULL);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	assert_non_null(strstr(reasons(&run), "blocked extension .exe: r?sum?.exe"));
	hygiene_result_free(&run.r);
}

static void
test_zip_containing_exe(void **state)
{
	(void)state;
	unsigned char exe[1024];
	make_exe(exe, sizeof(exe));
	struct file files[] = {
		{ "readme.txt", "hello", 5, NULL },
		{ "setup.exe", exe, sizeof(exe), NULL },
	};
	size_t zl;
	unsigned char *zip = make_zip(files, 2, &zl);
	struct run run;
	run_file(&run, "invoice.zip", "application/zip", zip, zl);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	assert_string_equal(reasons(&run), "attach:blocked extension .exe: invoice.zip/setup.exe");
	hygiene_result_free(&run.r);
	free(zip);
}

static void
test_zip_renamed_exe_and_archives_off(void **state)
{
	(void)state;
	unsigned char exe[1024];
	make_exe(exe, sizeof(exe));
	struct file files[] = { { "photo.jpg", exe, sizeof(exe), NULL } };
	size_t zl;
	unsigned char *zip = make_zip(files, 1, &zl);
	char *raw = make_msg("pics.zip", "application/zip", zip, zl);
	struct run run;
	run_stage(&run, raw, NULL);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	assert_non_null(strstr(reasons(&run), "pics.zip/photo.jpg"));
	hygiene_result_free(&run.r);
	run_stage(&run, raw, archives_off);
	assert_clean(&run);
	free(raw);
	free(zip);
}

static void
test_nested_zip(void **state)
{
	(void)state;
	struct file inner[] = { { "tools/run.scr", "MZ", 2, NULL } };
	size_t il;
	unsigned char *izip = make_zip(inner, 1, &il);
	struct file outer[] = { { "docs/inner.zip", izip, il, NULL } };
	size_t ol;
	unsigned char *ozip = make_zip(outer, 1, &ol);
	struct run run;
	run_file(&run, "outer.zip", "application/zip", ozip, ol);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	assert_string_equal(reasons(&run),
	    "attach:blocked extension .scr: outer.zip/docs/inner.zip/tools/run.scr");
	hygiene_result_free(&run.r);
	free(izip);
	free(ozip);
}

static void
test_nesting_too_deep(void **state)
{
	(void)state;
	struct file f = { "a.txt", "hello", 5, NULL };
	size_t len;
	unsigned char *z = make_zip(&f, 1, &len);
	for (int i = 0; i < 4; i++) {
		struct file w = { "level.zip", z, len, NULL };
		size_t nl;
		unsigned char *nz = make_zip(&w, 1, &nl);
		free(z);
		z = nz;
		len = nl;
	}
	struct run run;
	run_file(&run, "deep.zip", "application/zip", z, len);
	assert_int_equal(run.r.action, HYGIENE_QUARANTINE);
	assert_non_null(strstr(reasons(&run), "attach:archive too large to inspect: deep.zip/"));
	hygiene_result_free(&run.r);
	free(z);
}

static void
test_encrypted_zip(void **state)
{
	(void)state;
	struct file files[] = { { "secret.pdf", "%PDF-1.4\nhello\n", 15, "s3cret" } };
	size_t zl;
	unsigned char *zip = make_zip(files, 1, &zl);
	/* the general-purpose flag's bit 0 says "encrypted" */
	assert_true(zip[6] & 1);
	struct run run;
	run_file(&run, "statement.zip", "application/zip", zip, zl);
	assert_int_equal(run.r.action, HYGIENE_QUARANTINE);
	assert_string_equal(reasons(&run), "attach:encrypted archive: statement.zip/secret.pdf");
	hygiene_result_free(&run.r);
	free(zip);
}

static void
test_docm_macros(void **state)
{
	(void)state;
	unsigned char vba[1024];
	memset(vba, 0, sizeof(vba));
	memcpy(vba, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8);
	struct file files[] = {
		{ "[Content_Types].xml", "<Types/>", 8, NULL },
		{ "word/document.xml", "<w:document/>", 13, NULL },
		{ "word/vbaProject.bin", vba, sizeof(vba), NULL },
	};
	size_t zl;
	unsigned char *zip = make_zip(files, 3, &zl);
	struct run run;
	/* named .docx: found by the vbaProject.bin inside */
	run_file(&run, "report.docx",
	    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", zip, zl);
	assert_int_equal(run.r.action, HYGIENE_QUARANTINE);
	assert_string_equal(reasons(&run), "attach:macros: report.docx");
	hygiene_result_free(&run.r);
	/* named .docm: by the name too, still one finding */
	run_file(&run, "report.docm", "application/octet-stream", zip, zl);
	assert_int_equal(run.r.action, HYGIENE_QUARANTINE);
	assert_string_equal(reasons(&run), "attach:macros: report.docm");
	hygiene_result_free(&run.r);
	free(zip);
}

/* An OLE2 compound file whose directory holds Root Entry, and (with_vba) a
 * "Macros" storage with a "VBA" storage inside. */
static size_t
make_ole(unsigned char *out, size_t size, int with_vba)
{
	memset(out, 0, size);
	memcpy(out, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8);
	out[0x1a] = 0x3e; out[0x1c] = 0xfe; out[0x1d] = 0xff; out[0x1e] = 0x09;
	const char *names[] = { "Root Entry", "WordDocument", with_vba ? "Macros" : "Data",
		with_vba ? "VBA" : "Table" };
	const unsigned char types[] = { 5, 2, 1, 1 };
	for (size_t i = 0; i < 4; i++) {
		unsigned char *e = out + 512 + 128 * i;
		size_t nl = strlen(names[i]);
		for (size_t k = 0; k < nl; k++)
			e[2 * k] = (unsigned char)names[i][k];
		e[64] = (unsigned char)((nl + 1) * 2);
		e[66] = types[i];
	}
	return size;
}

static void
test_ole_macros(void **state)
{
	(void)state;
	unsigned char ole[2048];
	size_t len = make_ole(ole, sizeof(ole), 1);
	struct run run;
	run_file(&run, "budget.xls", "application/vnd.ms-excel", ole, len);
	assert_int_equal(run.r.action, HYGIENE_QUARANTINE);
	assert_string_equal(reasons(&run), "attach:macros: budget.xls");
	hygiene_result_free(&run.r);
	len = make_ole(ole, sizeof(ole), 0);
	run_file(&run, "budget.doc", "application/msword", ole, len);
	assert_clean(&run);
}

static void
test_policy_actions_and_lists(void **state)
{
	(void)state;
	unsigned char ole[2048];
	size_t len = make_ole(ole, sizeof(ole), 1);
	char *raw = make_msg("m.doc", "application/msword", ole, len);
	struct run run;
	run_stage(&run, raw, macros_reject);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	assert_string_equal(run.r.reply,
	    "550 5.7.1 Message rejected: attachment policy (macros: m.doc)");
	hygiene_result_free(&run.r);
	free(raw);
	/* A tenant list replaces the defaults. */
	raw = make_msg("notes.exe", "application/octet-stream", "x", 1);
	run_stage(&run, raw, only_txt);
	assert_clean(&run);
	free(raw);
	raw = make_msg("notes.txt", "application/octet-stream", "x", 1);
	run_stage(&run, raw, only_txt);
	assert_int_equal(run.r.action, HYGIENE_TAG);
	assert_string_equal(reasons(&run), "attach:blocked extension .txt: notes.txt");
	hygiene_result_free(&run.r);
	free(raw);
}

static void
test_clean_files(void **state)
{
	(void)state;
	struct run run;
	static const char pdf[] = "%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF\n";
	run_file(&run, "report.pdf", "application/pdf", pdf, sizeof(pdf) - 1);
	assert_clean(&run);
	static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0,
		13, 'I', 'H', 'D', 'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xde };
	run_file(&run, "pixel.png", "image/png", png, sizeof(png));
	assert_clean(&run);
	struct file files[] = { { "a/readme.txt", "hello", 5, NULL }, { "b.pdf", pdf, 20, NULL } };
	size_t zl;
	unsigned char *zip = make_zip(files, 2, &zl);
	run_file(&run, "docs.zip", "application/zip", zip, zl);
	assert_clean(&run);
	free(zip);
	run_stage(&run, "From: a@example.org\r\nSubject: plain\r\n\r\nHello.\r\n", NULL);
	assert_clean(&run);
}

static void
test_gzip_raw(void **state)
{
	(void)state;
	unsigned char exe[1024];
	make_exe(exe, sizeof(exe));
	struct archive *a = archive_write_new();
	archive_write_add_filter_gzip(a);
	archive_write_set_format_raw(a);
	unsigned char out[4096];
	size_t used = 0;
	assert_int_equal(archive_write_open_memory(a, out, sizeof(out), &used), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "data");
	archive_entry_set_filetype(e, AE_IFREG);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, exe, sizeof(exe)), (la_ssize_t)sizeof(exe));
	archive_entry_free(e);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	struct run run;
	run_file(&run, "tool.bin.gz", "application/gzip", out, used);
	assert_int_equal(run.r.action, HYGIENE_REJECT);
	assert_non_null(strstr(reasons(&run), "attach:blocked type "));
	assert_non_null(strstr(reasons(&run), ": tool.bin.gz/tool.bin"));
	hygiene_result_free(&run.r);
}

static void
test_hostile_archives(void **state)
{
	(void)state;
	unsigned char exe[1024];
	make_exe(exe, sizeof(exe));
	struct file files[] = {
		{ "a.txt", "hello hello hello", 17, NULL },
		{ "b.txt", exe, sizeof(exe), NULL },
		{ "c.txt", "world", 5, NULL },
	};
	size_t zl;
	unsigned char *zip = make_zip(files, 3, &zl);
	struct run run;
	/* Every truncation: never a crash, never "clean" once the exe is cut. */
	for (size_t cut = 4; cut < zl; cut += 7) {
		run_file(&run, "cut.zip", "application/zip", zip, cut);
		assert_true(run.r.action == HYGIENE_ACCEPT || run.r.action == HYGIENE_QUARANTINE
		    || run.r.action == HYGIENE_REJECT);
		hygiene_result_free(&run.r);
	}
	run_file(&run, "cut.zip", "application/zip", zip, zl / 2);
	assert_int_not_equal(run.r.action, HYGIENE_ACCEPT);
	hygiene_result_free(&run.r);
	/* Random bytes after a zip signature. */
	unsigned char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 2654435761u >> 13);
	memcpy(junk, "PK\x03\x04", 4);
	run_file(&run, "junk.zip", "application/zip", junk, sizeof(junk));
	hygiene_result_free(&run.r);
	free(zip);
}

/* An archive of the files in a libarchive format (with an optional filter). */
static unsigned char *
make_archive(int (*set_format)(struct archive *), int (*add_filter)(struct archive *),
    const struct file *files, size_t n, size_t *len_r)
{
	size_t cap = 1024 * 1024;
	unsigned char *out = xmalloc(cap);
	struct archive *a = archive_write_new();
	assert_int_equal(set_format(a), ARCHIVE_OK);
	if (add_filter != NULL)
		assert_int_equal(add_filter(a), ARCHIVE_OK);
	size_t used = 0;
	assert_int_equal(archive_write_open_memory(a, out, cap, &used), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, files[i].name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)files[i].len);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		assert_int_equal(archive_write_data(a, files[i].data, files[i].len),
		    (la_ssize_t)files[i].len);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*len_r = used;
	return out;
}

static void
test_other_formats_and_mutations(void **state)
{
	(void)state;
	unsigned char exe[1024];
	make_exe(exe, sizeof(exe));
	struct file files[] = { { "docs/a.txt", "hello hello", 11, NULL },
		{ "bin/tool.exe", exe, sizeof(exe), NULL } };
	struct {
		const char *name;
		int (*format)(struct archive *);
		int (*filter)(struct archive *);
	} kinds[] = {
		{ "pack.7z", archive_write_set_format_7zip, NULL },
		{ "pack.tar.gz", archive_write_set_format_pax_restricted, archive_write_add_filter_gzip },
		{ "pack.tar.xz", archive_write_set_format_ustar, archive_write_add_filter_xz },
		{ "pack.zip", archive_write_set_format_zip, NULL },
	};
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		size_t len;
		unsigned char *arc = make_archive(kinds[k].format, kinds[k].filter, files, 2, &len);
		struct run run;
		run_file(&run, kinds[k].name, "application/octet-stream", arc, len);
		assert_int_equal(run.r.action, HYGIENE_REJECT);
		char *want = buf_printf("blocked extension .exe: %s/bin/tool.exe", kinds[k].name);
		assert_string_equal(reasons(&run) + strlen("attach:"), want);
		free(want);
		hygiene_result_free(&run.r);
		/* Damaged copies: never a crash, and the verdict is one of ours. */
		unsigned char *copy = xmalloc(len);
		uint32_t seed = 12345;
		for (int i = 0; i < 60; i++) {
			memcpy(copy, arc, len);
			for (int f = 0; f < 3; f++) {
				seed = seed * 1103515245u + 12345u;
				copy[(seed >> 8) % len] ^= (unsigned char)(1u << (seed % 8));
			}
			run_file(&run, kinds[k].name, "application/octet-stream", copy, len);
			assert_true(run.r.action <= HYGIENE_REJECT);
			hygiene_result_free(&run.r);
		}
		free(copy);
		free(arc);
	}
}

static void
test_zip_bomb(void **state)
{
	(void)state;
	size_t big = 20 * 1024 * 1024;
	unsigned char *zeros = xcalloc(1, big);
	struct file files[] = { { "zeros.bin", zeros, big, NULL } };
	size_t zl;
	unsigned char *zip = make_zip(files, 1, &zl);
	free(zeros);
	assert_true(zl < big / 100);
	struct run run;
	run_file(&run, "bomb.zip", "application/zip", zip, zl);
	assert_int_equal(run.r.action, HYGIENE_QUARANTINE);
	assert_string_equal(reasons(&run), "attach:archive too large to inspect: bomb.zip");
	hygiene_result_free(&run.r);
	free(zip);
}

static void
test_too_many_entries(void **state)
{
	(void)state;
	size_t n = 10001;
	struct file *files = xcalloc(n, sizeof(*files));
	char (*names)[16] = xcalloc(n, sizeof(*names));
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "f%zu.txt", i);
		files[i].name = names[i];
		files[i].data = "x";
		files[i].len = 1;
	}
	size_t zl;
	unsigned char *zip = make_zip(files, n, &zl);
	struct run run;
	run_file(&run, "many.zip", "application/zip", zip, zl);
	assert_int_equal(run.r.action, HYGIENE_QUARANTINE);
	assert_string_equal(reasons(&run), "attach:archive too large to inspect: many.zip");
	hygiene_result_free(&run.r);
	free(zip);
	free(files);
	free(names);
}

static void
test_disabled(void **state)
{
	(void)state;
	char *raw = make_msg("notes.exe", "application/octet-stream", "x", 1);
	struct run run;
	run_stage(&run, raw, attach_off);
	assert_clean(&run);
	free(raw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exe_by_extension),
		cmocka_unit_test(test_double_extension),
		cmocka_unit_test(test_renamed_exe_by_magic),
		cmocka_unit_test(test_rfc2231_name),
		cmocka_unit_test(test_zip_containing_exe),
		cmocka_unit_test(test_zip_renamed_exe_and_archives_off),
		cmocka_unit_test(test_nested_zip),
		cmocka_unit_test(test_nesting_too_deep),
		cmocka_unit_test(test_encrypted_zip),
		cmocka_unit_test(test_docm_macros),
		cmocka_unit_test(test_ole_macros),
		cmocka_unit_test(test_policy_actions_and_lists),
		cmocka_unit_test(test_clean_files),
		cmocka_unit_test(test_gzip_raw),
		cmocka_unit_test(test_hostile_archives),
		cmocka_unit_test(test_other_formats_and_mutations),
		cmocka_unit_test(test_zip_bomb),
		cmocka_unit_test(test_too_many_entries),
		cmocka_unit_test(test_disabled),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
