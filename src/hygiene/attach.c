/*
 * attach.c — the attachment policy stage (see attach.h).
 *
 * Every leaf of m->mime (message/rfc822 parts included) is decoded and
 * inspected as a "blob": its name's extension, its true type (libmagic), OLE
 * macro storages, and — for archives — every entry, recursively up to
 * ATTACH_MAX_DEPTH archive levels.  The work is bounded per message by a
 * budget (entries, uncompressed bytes); going past it is a finding of its own
 * ("archive too large to inspect"), handled like an encrypted archive.
 * Each kind of finding is raised once per attachment (the first path found).
 * The lists come from the tenant's policy only (policy.c holds the defaults);
 * listing one name of a Windows executable type blocks its other libmagic
 * names too (x-dosexec, x-msdownload, vnd.microsoft.portable-executable).
 *
 * libmagic handles are per thread (a pthread key whose destructor closes
 * them), since stages run on the hygiene worker threads.
 */
#include "hygiene/attach.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <archive.h>
#include <archive_entry.h>
#include <gmime/gmime.h>
#include <magic.h>

#include "hygiene/hygiene.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define ATTACH_MAX_DEPTH      3                      /* archive levels opened */
#define ATTACH_MIME_DEPTH     32                     /* multipart / rfc822 nesting */
#define ATTACH_MAX_ENTRIES    10000                  /* archive entries per message */
#define ATTACH_MAX_BYTES      (100u * 1024 * 1024)   /* uncompressed bytes per message */
#define ATTACH_BOMB_FLOOR     (8u * 1024 * 1024)     /* ratio checked above this size */
#define ATTACH_BOMB_RATIO     100                    /* uncompressed / compressed */
#define ATTACH_PART_MAX       (64u * 1024 * 1024)    /* decoded MIME part kept */
#define ATTACH_HEAD           (256u * 1024)          /* bytes of an entry given to libmagic */
#define ATTACH_PATH_MAX       200                    /* path shown in reasons */

/* What a blob was found to be or hold; each raised once per attachment. */
enum finding {
	FIND_BLOCKED = 1 << 0,     /* attach.action */
	FIND_ENCRYPTED = 1 << 1,   /* attach.encrypted (also: cannot inspect) */
	FIND_MACROS = 1 << 2,      /* attach.macros */
};

struct attach_scan {
	const struct hygiene_msg *m;
	struct hygiene_result *r;
	const struct policy_list *block_ext;
	const struct policy_list *block_types;
	size_t entries;            /* budget used, whole message */
	uint64_t bytes;
	unsigned found;            /* enum finding bits, this attachment */
	int stop;                  /* a reject was raised: nothing more to learn */
};

/* Windows executables under their several libmagic names: listing one blocks all. */
static const char *const exe_types[] = {
	"application/x-dosexec", "application/x-msdownload",
	"application/vnd.microsoft.portable-executable", "application/x-ms-dos-executable",
};
static const char *const macro_ext[] = {
	"docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppsm", "ppam", "sldm",
};
/* Types libarchive is asked to open; the compressors also in "raw" format. */
static const char *const archive_types[] = {
	"application/zip", "application/x-zip-compressed", "application/java-archive",
	"application/x-7z-compressed", "application/x-rar", "application/vnd.rar",
	"application/x-rar-compressed", "application/x-tar", "application/x-gtar",
	"application/vnd.ms-cab-compressed", "application/x-iso9660-image", "application/x-cpio",
	"application/x-lzh-compressed", "application/x-archive", "application/x-xar",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation",
	"application/vnd.ms-word.document.macroenabled.12",
	"application/vnd.ms-excel.sheet.macroenabled.12",
	"application/vnd.ms-powerpoint.presentation.macroenabled.12",
};
static const char *const compressed_types[] = {
	"application/gzip", "application/x-gzip", "application/x-bzip2", "application/x-xz",
	"application/x-lzma", "application/zstd", "application/x-compress", "application/x-lzip",
	"application/x-lz4",
};
static const unsigned char ole_magic[8] = { 0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1 };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int
in_table(const char *const *t, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(t[i], s) == 0)
			return 1;
	return 0;
}

/* ---- libmagic, one handle per thread ---- */

static pthread_key_t magic_key;
static pthread_once_t magic_once = PTHREAD_ONCE_INIT;
static int magic_key_ok;

static void
magic_free(void *p)
{
	magic_close((magic_t)p);
}

static void
magic_key_init(void)
{
	magic_key_ok = pthread_key_create(&magic_key, magic_free) == 0;
}

static magic_t
thread_magic(void)
{
	pthread_once(&magic_once, magic_key_init);
	if (!magic_key_ok)
		return NULL;
	magic_t mg = pthread_getspecific(magic_key);
	if (mg != NULL)
		return mg;
	mg = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
	if (mg == NULL)
		return NULL;
	if (magic_load(mg, NULL) != 0 || pthread_setspecific(magic_key, mg) != 0) {
		log_warn("attach_magic_failed", "error=%s", log_str(magic_error(mg)));
		magic_close(mg);
		return NULL;
	}
	return mg;
}

/* The libmagic MIME type of data (lower-case, into out); "" when unknown. */
static void
true_type(const unsigned char *data, size_t len, char *out, size_t size)
{
	out[0] = '\0';
	magic_t mg = thread_magic();
	if (mg == NULL || len == 0)
		return;
	const char *t = magic_buffer(mg, data, len > ATTACH_HEAD ? ATTACH_HEAD : len);
	if (t == NULL)
		return;
	size_t n = strlen(t);
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)t[i]);
	out[n] = '\0';
}

/* ---- findings ---- */

/* A path for replies, logs and headers: printable ASCII (one '?' per
 * non-ASCII character), capped. */
static char *
path_clean(const char *path)
{
	struct buf b = BUF_INIT;
	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
		if (b.len >= ATTACH_PATH_MAX)
			break;
		if (*p >= 0x80 && (*p & 0xc0) == 0x80)
			continue;   /* a UTF-8 continuation byte */
		if (*p >= 0x80)
			buf_append_char(&b, '?');
		else if (*p < 0x20 || *p == 0x7f)
			buf_append_char(&b, '_');
		else if (*p == ';')
			buf_append_char(&b, ',');   /* reasons are separated by "; " */
		else
			buf_append_char(&b, (char)*p);
	}
	return buf_steal(&b);
}

static void
finding(struct attach_scan *s, enum finding kind, const char *what, const char *path)
{
	if (s->found & kind)
		return;
	s->found |= kind;
	enum policy_act act = kind == FIND_BLOCKED ? s->m->pol->attach_action
	    : kind == FIND_MACROS ? s->m->pol->attach_macros : s->m->pol->attach_encrypted;
	enum hygiene_action a = policy_act_action(act);
	char *p = path_clean(path);
	char *reason = buf_printf("%s: %s", what, p);
	char *reply = buf_printf("550 5.7.1 Message rejected: attachment policy (%s)", reason);
	log_info("hygiene_attachment", "id=%s tenant=%s finding=%s action=%s", log_str(s->m->qid),
	    log_str(s->m->tenant), log_str(reason), hygiene_action_name(a));
	if (a == HYGIENE_ACCEPT)
		hygiene_result_reason(s->r, "attach:%s", reason);
	else
		hygiene_result_raise(s->r, a, reply, "attach:%s", reason);
	if (a == HYGIENE_REJECT)
		s->stop = 1;
	free(reply);
	free(reason);
	free(p);
}

/* ---- checks on one blob ---- */

/* The extension of a file name (lower-case, without the dot) into out; ""
 * when none.  Trailing dots and blanks are ignored, as Windows does. */
static void
name_ext(const char *name, size_t skip, char *out, size_t size)
{
	out[0] = '\0';
	size_t end = strlen(name);
	while (end > 0 && (name[end - 1] == '.' || name[end - 1] == ' '))
		end--;
	for (size_t k = 0; k <= skip; k++) {
		size_t dot = end;
		while (dot > 0 && name[dot - 1] != '.' && name[dot - 1] != '/' && name[dot - 1] != '\\')
			dot--;
		if (dot == 0 || name[dot - 1] != '.')
			return;
		if (k == skip) {
			size_t n = end - dot;
			if (n == 0 || n >= size)
				return;
			for (size_t i = 0; i < n; i++)
				out[i] = (char)tolower((unsigned char)name[dot + i]);
			out[n] = '\0';
			return;
		}
		end = dot - 1;
	}
}

static int
ext_blocked(const struct attach_scan *s, const char *ext)
{
	return ext[0] != '\0' && policy_list_has(s->block_ext, ext);
}

static int
type_listed(const struct attach_scan *s, const char *type)
{
	return policy_list_has(s->block_types, type);
}

static int
type_blocked(const struct attach_scan *s, const char *type)
{
	if (type[0] == '\0')
		return 0;
	if (type_listed(s, type))
		return 1;
	if (!in_table(exe_types, NELEM(exe_types), type))
		return 0;
	for (size_t i = 0; i < NELEM(exe_types); i++)
		if (type_listed(s, exe_types[i]))
			return 1;
	return 0;
}

static void
check_name(struct attach_scan *s, const char *name, const char *path)
{
	char ext[32], inner[32];
	name_ext(name, 0, ext, sizeof(ext));
	if (ext_blocked(s, ext)) {
		name_ext(name, 1, inner, sizeof(inner));
		char *what = buf_printf("blocked extension .%s%s", ext,
		    inner[0] != '\0' ? " (double extension)" : "");
		finding(s, FIND_BLOCKED, what, path);
		free(what);
	}
	if (in_table(macro_ext, NELEM(macro_ext), ext))
		finding(s, FIND_MACROS, "macros", path);
}

/* A directory entry of an OLE2 compound file named `want` (UTF-16LE, case
 * ignored): entries are 128 bytes, name first, its byte length (with the NUL)
 * at 64, type (1 storage, 2 stream) at 66; directory sectors are 512-byte
 * aligned after the header, so entries sit at multiples of 128. */
static int
ole_has_entry(const unsigned char *d, size_t len, const char *want)
{
	size_t wl = strlen(want);
	for (size_t off = 512; off + 128 <= len; off += 128) {
		const unsigned char *e = d + off;
		size_t nl = (size_t)e[64] | (size_t)e[65] << 8;
		if (nl != (wl + 1) * 2 || (e[66] != 1 && e[66] != 2))
			continue;
		size_t i;
		for (i = 0; i < wl; i++)
			if (e[2 * i + 1] != 0 || toupper(e[2 * i]) != toupper((unsigned char)want[i]))
				break;
		if (i == wl && e[2 * wl] == 0 && e[2 * wl + 1] == 0)
			return 1;
	}
	return 0;
}

static int
ole_has_macros(const unsigned char *d, size_t len)
{
	if (len < 512 || memcmp(d, ole_magic, sizeof(ole_magic)) != 0)
		return 0;
	return ole_has_entry(d, len, "VBA") || ole_has_entry(d, len, "_VBA_PROJECT")
	    || ole_has_entry(d, len, "_VBA_PROJECT_CUR");
}

static int
is_archive(const char *type, const unsigned char *d, size_t len)
{
	if (in_table(archive_types, NELEM(archive_types), type)
	    || in_table(compressed_types, NELEM(compressed_types), type))
		return 1;
	return len >= 4 && memcmp(d, "PK\x03\x04", 4) == 0;
}

static void inspect_blob(struct attach_scan *s, const char *name, const char *path,
    const unsigned char *d, size_t len, int depth);

/* ---- archives ---- */

static int
budget_add(struct attach_scan *s, uint64_t bytes)
{
	s->bytes += bytes;
	return s->bytes <= ATTACH_MAX_BYTES;
}

static int
error_says_encrypted(struct archive *a)
{
	const char *e = archive_error_string(a);
	return e != NULL && (strcasestr(e, "encrypt") != NULL || strcasestr(e, "passphrase") != NULL
	    || strcasestr(e, "password") != NULL);
}

/* Reads the current entry: all of it when it must be looked into (archive,
 * OLE), else its head.  0, -1 unreadable, -2 over the budget. */
static int
read_entry(struct attach_scan *s, struct archive *a, struct buf *out)
{
	char block[65536];
	size_t keep = ATTACH_HEAD;
	for (;;) {
		la_ssize_t n = archive_read_data(a, block, sizeof(block));
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (!budget_add(s, (uint64_t)n))
			return -2;
		buf_append(out, block, (size_t)n);
		if (out->len >= keep && keep == ATTACH_HEAD) {
			char type[128];
			true_type((const unsigned char *)out->data, out->len, type, sizeof(type));
			if (!is_archive(type, (const unsigned char *)out->data, out->len)
			    && memcmp(out->data, ole_magic, sizeof(ole_magic)) != 0)
				return 0;   /* the head is all libmagic needs */
			keep = ATTACH_MAX_BYTES;
		}
	}
}

static struct archive *
archive_open(const char *type, const unsigned char *d, size_t len)
{
	struct archive *a = archive_read_new();
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	if (in_table(compressed_types, NELEM(compressed_types), type))
		archive_read_support_format_raw(a);
	if (archive_read_open_memory(a, d, len) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* An entry's display name ("data" of a raw stream: the blob's name less
 * its compression suffix). */
static char *
entry_name(struct archive_entry *e, const char *blob_name, int raw)
{
	const char *n = archive_entry_pathname_utf8(e);
	if (n == NULL)
		n = archive_entry_pathname(e);
	if (raw || n == NULL || n[0] == '\0') {
		const char *dot = strrchr(blob_name, '.');
		size_t bl = dot != NULL && dot != blob_name ? (size_t)(dot - blob_name) : strlen(blob_name);
		return xstrndup(blob_name, bl);
	}
	return xstrdup(n);
}

/* The limits on one more entry: 0 within, -1 past them (a finding). */
static int
entry_limits(struct attach_scan *s, struct archive_entry *e, uint64_t *declared,
    size_t archive_len, const char *path)
{
	if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0)
		*declared += (uint64_t)archive_entry_size(e);
	if (++s->entries > ATTACH_MAX_ENTRIES || *declared > ATTACH_MAX_BYTES
	    || (*declared > ATTACH_BOMB_FLOOR && *declared / ATTACH_BOMB_RATIO > archive_len)) {
		finding(s, FIND_ENCRYPTED, "archive too large to inspect", path);
		return -1;
	}
	return 0;
}

/* One regular, unencrypted entry: its content.  0 go on, -1 stop reading. */
static int
inspect_entry_data(struct attach_scan *s, struct archive *a, const char *ename,
    const char *epath, const char *path, int depth)
{
	const char *base = strrchr(ename, '/');
	base = base != NULL ? base + 1 : ename;
	if (strcasecmp(base, "vbaProject.bin") == 0)
		finding(s, FIND_MACROS, "macros", path);
	struct buf data = BUF_INIT;
	int r = read_entry(s, a, &data);
	if (r == -2)
		finding(s, FIND_ENCRYPTED, "archive too large to inspect", path);
	else if (r == -1)
		finding(s, FIND_ENCRYPTED, error_says_encrypted(a)
		    ? "encrypted archive" : "archive could not be read", epath);
	else
		inspect_blob(s, ename, epath, (const unsigned char *)data.data, data.len, depth + 1);
	buf_free(&data);
	return r < 0 ? -1 : 0;
}

static void
inspect_archive(struct attach_scan *s, const char *type, const char *name, const char *path,
    const unsigned char *d, size_t len, int depth)
{
	struct archive *a = archive_open(type, d, len);
	if (a == NULL)
		return;   /* not an archive libarchive knows: the blob checks stand */
	uint64_t declared = 0;
	struct archive_entry *e;
	int rc = ARCHIVE_EOF, stop = 0;
	while (!s->stop && !stop && ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK
	    || rc == ARCHIVE_WARN)) {
		if (entry_limits(s, e, &declared, len, path) < 0)
			break;
		char *ename = entry_name(e, name, archive_format(a) == ARCHIVE_FORMAT_RAW);
		char *epath = buf_printf("%s/%s", path, ename);
		check_name(s, ename, epath);
		if (archive_entry_is_encrypted(e))
			finding(s, FIND_ENCRYPTED, "encrypted archive", epath);
		else if (archive_entry_filetype(e) == AE_IFREG)
			stop = inspect_entry_data(s, a, ename, epath, path, depth) < 0;
		free(ename);
		free(epath);
	}
	if (!s->stop && !stop && rc < ARCHIVE_WARN)
		finding(s, FIND_ENCRYPTED, error_says_encrypted(a)
		    ? "encrypted archive" : "archive could not be read", path);
	archive_read_free(a);
}

/* Name, type, macros, then (archives) what is inside. */
static void
inspect_blob(struct attach_scan *s, const char *name, const char *path,
    const unsigned char *d, size_t len, int depth)
{
	if (s->stop)
		return;
	check_name(s, name, path);
	char type[128];
	true_type(d, len, type, sizeof(type));
	if (type_blocked(s, type)) {
		char *what = buf_printf("blocked type %s", type);
		finding(s, FIND_BLOCKED, what, path);
		free(what);
	}
	if (ole_has_macros(d, len))
		finding(s, FIND_MACROS, "macros", path);
	if (s->stop || !s->m->pol->attach_archives || !is_archive(type, d, len))
		return;
	if (depth >= ATTACH_MAX_DEPTH) {
		finding(s, FIND_ENCRYPTED, "archive too large to inspect", path);
		return;
	}
	inspect_archive(s, type, name, path, d, len, depth);
}

/* ---- the MIME walk ---- */

static void
inspect_part(struct attach_scan *s, GMimePart *part, size_t index)
{
	const char *fname = g_mime_part_get_filename(part);
	char *name;
	if (fname != NULL && fname[0] != '\0') {
		name = xstrdup(fname);
	} else {
		GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
		/* An unnamed text body is the message itself, not an attachment. */
		if (ct != NULL && g_mime_content_type_is_type(ct, "text", "*"))
			return;
		name = buf_printf("part%zu", index);
	}
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem = g_mime_stream_mem_new();
	if (w != NULL)
		g_mime_data_wrapper_write_to_stream(w, mem);
	GByteArray *arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	s->found = 0;
	if (arr->len > ATTACH_PART_MAX) {
		check_name(s, name, name);
		finding(s, FIND_ENCRYPTED, "attachment too large to inspect", name);
	} else {
		inspect_blob(s, name, name, arr->data, arr->len, 0);
	}
	g_object_unref(mem);
	free(name);
}

static void
walk(struct attach_scan *s, GMimeObject *obj, int depth, size_t *index)
{
	if (obj == NULL || s->stop || depth > ATTACH_MIME_DEPTH)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n && !s->stop; i++)
			walk(s, g_mime_multipart_get_part(mp, i), depth + 1, index);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (inner != NULL)
			walk(s, g_mime_message_get_mime_part(inner), depth + 1, index);
	} else if (GMIME_IS_PART(obj)) {
		inspect_part(s, GMIME_PART(obj), ++*index);
	}
}

int
attach_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)err_r;
	if (m->pol == NULL || !m->pol->attach_enabled || m->mime == NULL)
		return 0;
	struct attach_scan s;
	memset(&s, 0, sizeof(s));
	s.m = m;
	s.r = r;
	s.block_ext = &m->pol->attach_block_ext;
	s.block_types = &m->pol->attach_block_types;
	size_t index = 0;
	walk(&s, g_mime_message_get_mime_part(m->mime), 0, &index);
	return 0;
}
