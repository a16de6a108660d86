/*
 * archive_export — e-discovery export to a ZIP file (see archive_export.h).
 *
 * libarchive's struct is also called "struct archive": in this file a
 * libarchive writer is always named zw, our archive always a, and every
 * static function is prefixed export_ so nothing looks like libarchive's.
 *
 * Order of work: search (ids only; sorted oldest first), open out_path.tmp (O_EXCL), then per
 * hit archive_get → ZIP entry (eml) or a piece of messages.mbox, plus one
 * line in each spooled manifest file; then manifest.json and manifest.csv;
 * close, fsync, hash, rename without replacing, fsync the directory.
 */
#include "archive/archive_export.h"

#include <archive.h>
#include <archive_entry.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_index.h"
#include "archive/archive_store.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/sys.h"

#define EXPORT_COPY_CHUNK 65536

struct export_ctx {
	struct archive *a;            /* ours */
	const char *tenant;
	enum archive_export_format fmt;
	struct archive *zw;           /* libarchive ZIP writer */
	FILE *mjson, *mcsv;           /* manifest bodies, spooled */
	size_t count;
	time_t now;
	char **err_r;
};

static void
export_err(char **err_r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
export_err(char **err_r, const char *fmt, ...)
{
	if (err_r == NULL)
		return;
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&b, fmt, ap);
	va_end(ap);
	free(*err_r);
	*err_r = buf_steal(&b);
}

int
archive_export_format_parse(const char *name, enum archive_export_format *fmt_r)
{
	if (name != NULL && strcmp(name, "eml") == 0)
		*fmt_r = ARCHIVE_EXPORT_EML;
	else if (name != NULL && strcmp(name, "mbox") == 0)
		*fmt_r = ARCHIVE_EXPORT_MBOX;
	else
		return -1;
	return 0;
}

const char *
archive_export_format_name(enum archive_export_format fmt)
{
	return fmt == ARCHIVE_EXPORT_MBOX ? "mbox" : "eml";
}

/* ------------------------------------------------------------ text helpers */

static void
export_iso8601(time_t t, char out[32])
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t
export_utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned int cp;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A JSON string literal; invalid UTF-8 becomes U+FFFD. */
static void
export_json_str(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p);
	buf_append_char(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			buf_append_char(b, '\\');
			buf_append_char(b, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			buf_appendf(b, "\\u%04x", c);
		} else {
			size_t len = export_utf8_len(p + i, n - i);
			if (len == 0) {
				buf_append_str(b, "\\ufffd");
				i++;
				continue;
			}
			buf_append(b, p + i, len);
			i += len;
			continue;
		}
		i++;
	}
	buf_append_char(b, '"');
}

/* An RFC 4180 field: quoted when it holds a comma, quote, CR or LF. */
static void
export_csv_field(struct buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	if (strpbrk(s, ",\"\r\n") == NULL) {
		buf_append_str(b, s);
		return;
	}
	buf_append_char(b, '"');
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '"')
			buf_append_char(b, '"');
		buf_append_char(b, *p);
	}
	buf_append_char(b, '"');
}

/* ------------------------------------------------------------- ZIP writing */

static int
export_zip_fail(struct export_ctx *c, const char *what)
{
	const char *why = archive_error_string(c->zw);
	export_err(c->err_r, "export: %s: %s", what, why != NULL ? why : "write failed");
	return -1;
}

static int
export_zip_open(struct export_ctx *c, int fd)
{
	c->zw = archive_write_new();
	if (c->zw == NULL) {
		export_err(c->err_r, "export: cannot create the ZIP writer");
		return -1;
	}
	if (archive_write_set_format_zip(c->zw) != ARCHIVE_OK ||
	    archive_write_zip_set_compression_deflate(c->zw) != ARCHIVE_OK ||
	    archive_write_open_fd(c->zw, fd) != ARCHIVE_OK)
		return export_zip_fail(c, "ZIP setup");
	return 0;
}

/* Starts a regular-file entry; size < 0: unknown (streamed). */
static int
export_entry_begin(struct export_ctx *c, const char *name, long long size, time_t mtime)
{
	struct archive_entry *e = archive_entry_new();
	if (e == NULL) {
		export_err(c->err_r, "export: out of memory");
		return -1;
	}
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, mtime, 0);
	if (size >= 0)
		archive_entry_set_size(e, (la_int64_t)size);
	int rc = archive_write_header(c->zw, e);
	archive_entry_free(e);
	if (rc != ARCHIVE_OK)
		return export_zip_fail(c, name);
	return 0;
}

static int
export_write(struct export_ctx *c, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		la_ssize_t n = archive_write_data(c->zw, p, len);
		if (n <= 0)
			return export_zip_fail(c, "write");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
export_entry_end(struct export_ctx *c)
{
	if (archive_write_finish_entry(c->zw) != ARCHIVE_OK)
		return export_zip_fail(c, "finish entry");
	return 0;
}

/* Copies a spooled file (from its start) into the current entry. */
static int
export_copy_file(struct export_ctx *c, FILE *f)
{
	char *chunk = xmalloc(EXPORT_COPY_CHUNK);
	int rc = 0;
	rewind(f);
	for (;;) {
		size_t n = fread(chunk, 1, EXPORT_COPY_CHUNK, f);
		if (n > 0 && export_write(c, chunk, n) < 0) {
			rc = -1;
			break;
		}
		if (n < EXPORT_COPY_CHUNK) {
			if (ferror(f)) {
				export_err(c->err_r, "export: reading the manifest spool: %s",
				    strerror(errno));
				rc = -1;
			}
			break;
		}
	}
	free(chunk);
	return rc;
}

/* --------------------------------------------------------------- messages */

/* "From <sender> <asctime UTC>\n" of an mboxrd file. */
static void
export_mbox_from_line(struct buf *b, const struct archive_row *row)
{
	const char *sender = row->env_from != NULL && row->env_from[0] != '\0' ?
	    row->env_from : "MAILER-DAEMON";
	char when[64];
	struct tm tm;
	time_t t = row->archived_at;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		snprintf(when, sizeof(when), "Thu Jan  1 00:00:00 1970");
	buf_append_str(b, "From ");
	for (const char *p = sender; *p != '\0'; p++)
		buf_append_char(b, (unsigned char)*p <= ' ' || *p == 0x7f ? '_' : *p);
	buf_appendf(b, " %s\n", when);
}

/* Does the line at p (n bytes to the end) match ^>*From ? */
static int
export_is_from_line(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] == '>')
		i++;
	return n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/* One message in mboxrd form; *newline_added_r when it did not end in '\n'. */
static void
export_mbox_message(struct buf *b, const struct archive_row *row, const unsigned char *raw,
    size_t len, int *newline_added_r)
{
	export_mbox_from_line(b, row);
	size_t i = 0;
	while (i < len) {
		const unsigned char *nl = memchr(raw + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - raw) + 1 : len;
		if (export_is_from_line(raw + i, end - i))
			buf_append_char(b, '>');
		buf_append(b, raw + i, end - i);
		i = end;
	}
	*newline_added_r = len == 0 || raw[len - 1] != '\n';
	if (*newline_added_r)
		buf_append_char(b, '\n');
	buf_append_char(b, '\n');
}

static int
export_spool(struct export_ctx *c, FILE *f, struct buf *b)
{
	if (fwrite(b->data, 1, b->len, f) != b->len) {
		export_err(c->err_r, "export: writing the manifest spool: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Appends the message's line to both manifest spools. */
static int
export_manifest_add(struct export_ctx *c, const struct archive_row *row,
    const struct archive_hit *hit, const char *sha256, size_t size, const char *file,
    const char *note)
{
	char id[32], date[32], sz[32];
	snprintf(id, sizeof(id), "%lld", row->id);
	snprintf(sz, sizeof(sz), "%zu", size);
	export_iso8601(row->msg_date, date);
	const char *vals[] = { id, sha256, row->mailbox, row->folder, date, hit->from,
		hit->subject, sz, file, note };
	static const char *const keys[] = { "archive_id", "sha256", "mailbox", "folder", "date",
		"from", "subject", "size", "file", "note" };
	struct buf j = BUF_INIT, v = BUF_INIT;
	buf_append_str(&j, c->count == 0 ? "\n    {" : ",\n    {");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		buf_appendf(&j, "%s\"%s\": ", i == 0 ? "" : ", ", keys[i]);
		if (i == 0 || i == 7)
			buf_append_str(&j, vals[i]);
		else
			export_json_str(&j, vals[i]);
		if (i > 0)
			buf_append_char(&v, ',');
		export_csv_field(&v, vals[i]);
	}
	buf_append_char(&j, '}');
	buf_append_str(&v, "\r\n");
	int rc = export_spool(c, c->mjson, &j) < 0 || export_spool(c, c->mcsv, &v) < 0 ? -1 : 0;
	buf_free(&j);
	buf_free(&v);
	return rc;
}

static int
export_write_eml(struct export_ctx *c, const struct archive_row *row, const unsigned char *raw,
    size_t len, char file[64])
{
	snprintf(file, 64, "messages/%lld.eml", row->id);
	if (export_entry_begin(c, file, (long long)len, row->archived_at) < 0 ||
	    export_write(c, raw, len) < 0 || export_entry_end(c) < 0)
		return -1;
	return 0;
}

/* Reads one hit and writes it out. 1 written, 0 gone meanwhile, -1 error. */
static int
export_one(struct export_ctx *c, const struct archive_hit *hit)
{
	struct archive_row row;
	unsigned char *raw = NULL;
	size_t len = 0;
	int found = archive_get(c->a, c->tenant, hit->id, &row, &raw, &len, c->err_r);
	if (found <= 0) {
		if (found == 0)
			log_warn("archive_export_gone", "tenant=%s id=%lld", c->tenant, hit->id);
		return found;
	}
	char sha[65], file[64];
	const char *note = "";
	int rc = 0;
	archive_crypto_sha256_hex(raw, len, sha);
	if (c->fmt == ARCHIVE_EXPORT_EML) {
		rc = export_write_eml(c, &row, raw, len, file);
	} else {
		struct buf b = BUF_INIT;
		int added;
		export_mbox_message(&b, &row, raw, len, &added);
		rc = export_write(c, b.data, b.len);
		buf_free(&b);
		snprintf(file, sizeof(file), "messages.mbox");
		if (added)
			note = "no final newline: one was added in the mbox";
	}
	if (rc == 0)
		rc = export_manifest_add(c, &row, hit, sha, len, file, note);
	if (rc == 0)
		c->count++;
	archive_row_free(&row);
	archive_crypto_wipe(raw, len);
	free(raw);
	return rc < 0 ? -1 : 1;
}

/* ---------------------------------------------------------------- manifest */

static long
export_spool_size(struct export_ctx *c, FILE *f)
{
	if (fflush(f) != 0 || fseek(f, 0, SEEK_END) != 0) {
		export_err(c->err_r, "export: manifest spool: %s", strerror(errno));
		return -1;
	}
	long n = ftell(f);
	if (n < 0)
		export_err(c->err_r, "export: manifest spool: %s", strerror(errno));
	return n;
}

static int
export_manifest_json(struct export_ctx *c, const char *query)
{
	long body = export_spool_size(c, c->mjson);
	if (body < 0)
		return -1;
	char when[32];
	export_iso8601(c->now, when);
	struct buf head = BUF_INIT;
	buf_append_str(&head, "{\n  \"tenant\": ");
	export_json_str(&head, c->tenant);
	buf_append_str(&head, ",\n  \"query\": ");
	export_json_str(&head, query);
	buf_appendf(&head, ",\n  \"exported_at\": \"%s\",\n  \"format\": \"%s\",\n"
	    "  \"hashes\": \"sha256 and size of the exact archived bytes\",\n"
	    "  \"count\": %zu,\n  \"messages\": [", when, archive_export_format_name(c->fmt),
	    c->count);
	static const char tail[] = "\n  ]\n}\n";
	int rc = -1;
	if (export_entry_begin(c, "manifest.json", (long long)head.len + body +
	    (long long)strlen(tail), c->now) == 0 && export_write(c, head.data, head.len) == 0 &&
	    export_copy_file(c, c->mjson) == 0 && export_write(c, tail, strlen(tail)) == 0 &&
	    export_entry_end(c) == 0)
		rc = 0;
	buf_free(&head);
	return rc;
}

static int
export_manifest_csv(struct export_ctx *c)
{
	static const char head[] =
	    "archive_id,sha256,mailbox,folder,date,from,subject,size,file,note\r\n";
	long body = export_spool_size(c, c->mcsv);
	if (body < 0)
		return -1;
	if (export_entry_begin(c, "manifest.csv", (long long)strlen(head) + body, c->now) < 0 ||
	    export_write(c, head, strlen(head)) < 0 || export_copy_file(c, c->mcsv) < 0 ||
	    export_entry_end(c) < 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ the file */

static int
export_sha256_fd(int fd, char out[65], uint64_t *size_r, char **err_r)
{
	crypto_hash_sha256_state st;
	unsigned char *chunk = xmalloc(EXPORT_COPY_CHUNK);
	unsigned char md[crypto_hash_sha256_BYTES];
	off_t off = 0;
	crypto_hash_sha256_init(&st);
	for (;;) {
		ssize_t n = pread(fd, chunk, EXPORT_COPY_CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			export_err(err_r, "export: reading back the ZIP: %s", strerror(errno));
			free(chunk);
			return -1;
		}
		if (n == 0)
			break;
		crypto_hash_sha256_update(&st, chunk, (unsigned long long)n);
		off += n;
	}
	free(chunk);
	crypto_hash_sha256_final(&st, md);
	sodium_bin2hex(out, 65, md, sizeof(md));
	*size_r = (uint64_t)off;
	return 0;
}

/* Renames tmp to out unless out exists meanwhile; fsyncs the directory. */
static int
export_publish(const char *tmp, const char *out, char **err_r)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS) {
			export_err(err_r, "export: rename to %s: %s", out, strerror(errno));
			return -1;
		}
		struct stat sb;
		if (lstat(out, &sb) == 0) {
			export_err(err_r, "export: %s exists", out);
			return -1;
		}
		if (sys_rename(tmp, out) < 0) {
			export_err(err_r, "export: rename to %s: %s", out, strerror(errno));
			return -1;
		}
	}
	char *copy = xstrdup(out);
	int rc = sys_fsync_dir(dirname(copy));
	free(copy);
	if (rc < 0) {
		export_err(err_r, "export: fsync of the directory of %s: %s", out,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
export_messages(struct export_ctx *c, const struct archive_results *res,
    archive_progress_cb *progress, void *parg)
{
	if (c->fmt == ARCHIVE_EXPORT_MBOX && export_entry_begin(c, "messages.mbox", -1, c->now) < 0)
		return -1;
	for (size_t i = 0; i < res->nhits; i++) {
		if (export_one(c, &res->hits[i]) < 0)
			return -1;
		if (progress != NULL)
			progress(parg, (uint64_t)i + 1, (uint64_t)res->nhits);
	}
	if (c->fmt == ARCHIVE_EXPORT_MBOX && export_entry_end(c) < 0)
		return -1;
	return 0;
}

/* Writes the whole ZIP to fd; closes the writer (not fd). */
static int
export_zip(struct export_ctx *c, int fd, const char *query, const struct archive_results *res,
    archive_progress_cb *progress, void *parg)
{
	int rc = -1;
	c->mjson = tmpfile();
	c->mcsv = tmpfile();
	if (c->mjson == NULL || c->mcsv == NULL)
		export_err(c->err_r, "export: temporary file: %s", strerror(errno));
	else if (export_zip_open(c, fd) == 0 && export_messages(c, res, progress, parg) == 0 &&
	    export_manifest_json(c, query) == 0 && export_manifest_csv(c) == 0)
		rc = 0;
	if (c->zw != NULL) {
		if (rc == 0 && archive_write_close(c->zw) != ARCHIVE_OK)
			rc = export_zip_fail(c, "close");
		archive_write_free(c->zw);
		c->zw = NULL;
	}
	if (c->mjson != NULL)
		fclose(c->mjson);
	if (c->mcsv != NULL)
		fclose(c->mcsv);
	return rc;
}

/* Oldest first (date, then archive id): the order of a mailbox. */
static int
export_hit_cmp(const void *x, const void *y)
{
	const struct archive_hit *a = x, *b = y;
	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static int
export_search(struct archive *a, const char *tenant, const char *query,
    const char *const *mailboxes, size_t nmailboxes, struct archive_results *res, char **err_r)
{
	struct archive_search_opts o;
	memset(&o, 0, sizeof(o));
	o.query = query;
	o.mailboxes = mailboxes;
	o.nmailboxes = nmailboxes;
	o.ids_only = 1;
	memset(res, 0, sizeof(*res));
	if (archive_search(a, tenant, &o, res, err_r) < 0)
		return -1;
	if (res->nhits > 1)
		qsort(res->hits, res->nhits, sizeof(res->hits[0]), export_hit_cmp);
	return 0;
}

/* Writes, fsyncs and hashes tmp; 0 or -1 (the caller unlinks tmp). */
static int
export_to_tmp(struct export_ctx *c, const char *tmp, const char *query,
    const struct archive_results *res, struct archive_export_result *r,
    archive_progress_cb *progress, void *parg)
{
	int fd = sys_open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		export_err(c->err_r, "export: cannot create %s: %s", tmp, strerror(errno));
		return -2;
	}
	int rc = export_zip(c, fd, query, res, progress, parg);
	if (rc == 0 && sys_fsync(fd) < 0) {
		export_err(c->err_r, "export: fsync %s: %s", tmp, strerror(errno));
		rc = -1;
	}
	if (rc == 0)
		rc = export_sha256_fd(fd, r->sha256_zip, &r->bytes, c->err_r);
	if (sys_close(fd) < 0 && rc == 0) {
		export_err(c->err_r, "export: close %s: %s", tmp, strerror(errno));
		rc = -1;
	}
	return rc;
}

int
archive_export(struct archive *a, const char *tenant, const char *query,
    const char *const *mailboxes, size_t nmailboxes, enum archive_export_format fmt,
    const char *out_path, struct archive_export_result *r, archive_progress_cb *progress,
    void *parg, char **err_r)
{
	struct stat sb;
	memset(r, 0, sizeof(*r));
	if (out_path == NULL || out_path[0] == '\0' || query == NULL || query[0] == '\0') {
		export_err(err_r, "export: a query and an output file are required");
		return -1;
	}
	if (lstat(out_path, &sb) == 0) {
		export_err(err_r, "export: %s exists; choose a new file name", out_path);
		return -1;
	}
	struct archive_results res;
	if (export_search(a, tenant, query, mailboxes, nmailboxes, &res, err_r) < 0)
		return -1;
	struct export_ctx c = { .a = a, .tenant = tenant, .fmt = fmt, .now = time(NULL),
		.err_r = err_r };
	struct buf tmp = BUF_INIT;
	buf_appendf(&tmp, "%s.tmp", out_path);
	int rc = export_to_tmp(&c, tmp.data, query, &res, r, progress, parg);
	if (rc == 0)
		rc = export_publish(tmp.data, out_path, err_r);
	if (rc == -1)
		sys_unlink(tmp.data);
	if (rc == 0) {
		r->messages = c.count;
		log_info("archive_export", "tenant=%s format=%s messages=%zu bytes=%" PRIu64
		    " sha256=%s", tenant, archive_export_format_name(fmt), r->messages, r->bytes,
		    r->sha256_zip);
	}
	buf_free(&tmp);
	archive_results_free(&res);
	return rc == 0 ? 0 : -1;
}
