/*
 * archive_import — mbox, Maildir and loose-file importers.
 *
 * mbox: the file is mapped read-only and cut at From_ lines.  A line that
 * starts with "From " separates messages when it is the first line of the
 * file (after an optional UTF-8 BOM and blank lines), when the rest of it
 * ends in an asctime date ("From addr Wed Dec  1 08:26:40 2010"), or when
 * it is a bare "From <token>" (Netscape's "From - ", Gmail's
 * "From 1844…@example") directly followed by a header line.  Body lines of
 * mboxo files such as "From Russia with love" therefore stay in their
 * message.  The blank line mbox puts after each message is dropped, and a
 * line ">From " (any number of '>') loses one '>' (mboxrd); a message
 * without such lines is passed straight from the mapping, without a copy.
 *
 * Maildir and eml: the tree is listed first (sorted, so the order and the
 * progress figures are deterministic), then every file is read whole and
 * handed over.
 */
#include "archive/archive_import.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive_crypto.h"
#include "lib/buf.h"
#include "lib/mem.h"

/* Deepest directory nesting the tree walkers follow. */
#define IMPORT_MAX_DEPTH 32

static void
import_fail(archive_import_fail_cb *fail, void *arg, const char *origin,
    const char *reason)
{
	if (fail != NULL)
		fail(arg, origin, reason);
}

static const char *
import_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

/* ------------------------------------------------------------------ */
/* mbox: recognising From_ lines                                      */

/* Length of the line starting at p (without its '\n'). */
static size_t
mbox_line_len(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
}

static int
mbox_is_name(const char *tok, size_t n, const char *const *names, size_t count)
{
	if (n != 3)
		return 0;
	for (size_t i = 0; i < count; i++)
		if (strncasecmp(tok, names[i], 3) == 0)
			return 1;
	return 0;
}

static int
mbox_all_digits(const char *s, size_t n, size_t min, size_t max)
{
	if (n < min || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* "hh:mm" or "hh:mm:ss". */
static int
mbox_is_time(const char *s, size_t n)
{
	if (n != 5 && n != 8)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int colon = (i == 2 || i == 5);

		if (colon ? s[i] != ':' : (s[i] < '0' || s[i] > '9'))
			return 0;
	}
	return (s[0] - '0') * 10 + (s[1] - '0') < 24 &&
	    (s[3] - '0') * 10 + (s[4] - '0') < 60;
}

struct mbox_tok { const char *s; size_t n; };

static size_t
mbox_tokenize(const char *p, size_t len, struct mbox_tok *t, size_t max)
{
	size_t n = 0, i = 0;

	while (i < len && n < max) {
		while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
			i++;
		if (i >= len)
			break;
		t[n].s = p + i;
		while (i < len && p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			i++;
		t[n].n = (size_t)(p + i - t[n].s);
		n++;
	}
	return n;
}

/* Tokens i.. spell "Www Mmm dd hh:mm[:ss] [zone] yyyy". */
static int
mbox_date_at(const struct mbox_tok *t, size_t n, size_t i)
{
	static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri",
		"Sat", "Sun" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
		"May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	size_t y;

	if (i + 5 > n || !mbox_is_name(t[i].s, t[i].n, days, 7) ||
	    !mbox_is_name(t[i + 1].s, t[i + 1].n, months, 12) ||
	    !mbox_all_digits(t[i + 2].s, t[i + 2].n, 1, 2) ||
	    !mbox_is_time(t[i + 3].s, t[i + 3].n))
		return 0;
	y = i + 4;
	if (!mbox_all_digits(t[y].s, t[y].n, 4, 4) && y + 1 < n)
		y++;	/* a zone between time and year */
	return mbox_all_digits(t[y].s, t[y].n, 4, 4);
}

/* The rest of a From_ line (after "From ") ends in an asctime date. */
static int
mbox_has_date(const char *rest, size_t len)
{
	struct mbox_tok t[24];
	size_t n = mbox_tokenize(rest, len, t, 24);

	for (size_t i = 1; i < n; i++)
		if (mbox_date_at(t, n, i))
			return 1;
	return 0;
}

/* The line at p looks like "Field-Name: ...". */
static int
mbox_is_header_line(const char *p, const char *end)
{
	size_t i = 0;

	while (p + i < end && i < 77) {
		unsigned char c = (unsigned char)p[i];

		if (c == ':')
			return i > 0;
		if (c <= ' ' || c >= 127)
			return 0;
		i++;
	}
	return 0;
}

/* Is the line starting at p (which begins "From ") a message separator? */
static int
mbox_is_separator(const char *p, const char *end)
{
	size_t len = mbox_line_len(p, end);
	struct mbox_tok t[2];
	const char *next;

	if (mbox_has_date(p + 5, len - 5))
		return 1;
	if (mbox_tokenize(p + 5, len - 5, t, 2) > 1)
		return 0;
	next = p + len + 1;
	return next < end && mbox_is_header_line(next, end);
}

/* Next separator at or after the line start `from`, or end. */
static const char *
mbox_next_separator(const char *from, const char *end)
{
	const char *p = from;

	while (p < end) {
		const char *hit = memmem(p - 1, (size_t)(end - p + 1),
		    "\nFrom ", 6);

		if (hit == NULL)
			return end;
		if (mbox_is_separator(hit + 1, end))
			return hit + 1;
		p = hit + 2;
	}
	return end;
}

/* ------------------------------------------------------------------ */
/* mbox: cutting and unescaping messages                              */

static int
mbox_is_escaped_from(const char *p, const char *end)
{
	while (p < end && *p == '>')
		p++;
	return end - p >= 5 && memcmp(p, "From ", 5) == 0;
}

static int
mbox_needs_unescape(const char *m, size_t len)
{
	const char *end = m + len, *p = m;

	if (len > 0 && m[0] == '>' && mbox_is_escaped_from(m, end))
		return 1;
	while ((p = memmem(p, (size_t)(end - p), "\n>", 2)) != NULL) {
		if (mbox_is_escaped_from(p + 1, end))
			return 1;
		p += 2;
	}
	return 0;
}

/* Copies m into out, dropping one '>' from each ">From " line. */
static void
mbox_unescape(const char *m, size_t len, struct buf *out)
{
	const char *end = m + len, *p = m;

	buf_reset(out);
	while (p < end) {
		size_t n = mbox_line_len(p, end);

		if (p < end && *p == '>' && mbox_is_escaped_from(p, p + n))
			buf_append(out, p + 1, n - 1);
		else
			buf_append(out, p, n);
		if (p + n < end)
			buf_append_char(out, '\n');
		p += n + 1;
	}
}

/* The message between a From_ line's end and the next separator. */
static size_t
mbox_trim(const char *m, size_t len)
{
	if (len >= 4 && memcmp(m + len - 4, "\r\n\r\n", 4) == 0)
		return len - 2;
	if (len >= 2 && m[len - 1] == '\n' && m[len - 2] == '\n')
		return len - 1;
	return len;
}

struct mbox_run {
	const char *base, *end;
	char *folder;
	const char *name;
	archive_import_cb *cb;
	archive_import_fail_cb *fail;
	void *arg;
	struct buf unesc;
	size_t count;
};

/* Hands one message over; returns the callback's verdict. */
static int
mbox_deliver(struct mbox_run *r, const char *sep, const char *body,
    const char *next)
{
	struct archive_import_item it;
	char origin[512];
	size_t len = mbox_trim(body, (size_t)(next - body));

	r->count++;
	snprintf(origin, sizeof(origin), "%s:#%zu (offset %zu)", r->name,
	    r->count, (size_t)(sep - r->base));
	if (len == 0) {
		import_fail(r->fail, r->arg, origin, "empty message");
		return 0;
	}
	if (len > ARCHIVE_RAW_MAX) {
		import_fail(r->fail, r->arg, origin, "message larger than 256 MiB");
		return 0;
	}
	it.raw = (const unsigned char *)body;
	it.len = len;
	if (mbox_needs_unescape(body, len)) {
		mbox_unescape(body, len, &r->unesc);
		it.raw = (const unsigned char *)r->unesc.data;
		it.len = r->unesc.len;
	}
	it.folder = r->folder;
	it.origin = origin;
	it.done_bytes = (uint64_t)(next - r->base);
	it.total_bytes = (uint64_t)(r->end - r->base);
	return r->cb(r->arg, &it) != 0;
}

/* Start of the first From_ line, or NULL when the data is not an mbox. */
static const char *
mbox_first(const char *p, const char *end)
{
	if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (p < end && (*p == '\n' || *p == '\r'))
		p++;
	if (end - p >= 5 && memcmp(p, "From ", 5) == 0)
		return p;
	return NULL;
}

static int
mbox_walk(struct mbox_run *r, char **err_r)
{
	const char *sep = mbox_first(r->base, r->end);

	if (sep == NULL) {
		for (const char *p = r->base; p < r->end; p++) {
			if (*p != '\n' && *p != '\r') {
				*err_r = buf_printf("%s: not an mbox file (no "
				    "\"From \" line at the start)", r->name);
				return -1;
			}
		}
		return 0;	/* empty */
	}
	while (sep < r->end) {
		const char *body = sep + mbox_line_len(sep, r->end) + 1;
		const char *next;

		if (body > r->end)
			body = r->end;
		next = mbox_next_separator(body, r->end);
		if (mbox_deliver(r, sep, body, next))
			return 1;
		sep = next;
	}
	return 0;
}

static char *
mbox_folder(const char *path)
{
	const char *base = import_basename(path);
	size_t n = strlen(base);

	if (n > 5 && strcasecmp(base + n - 5, ".mbox") == 0)
		n -= 5;
	return xstrndup(base, n);
}

int
archive_import_mbox(const char *path, archive_import_cb *cb,
    archive_import_fail_cb *fail, void *arg, char **err_r)
{
	struct mbox_run r = { 0 };
	struct stat st;
	void *map = NULL;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err_r = buf_printf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err_r = buf_printf("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			*err_r = buf_printf("%s: mmap: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		(void)madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
	}
	close(fd);
	r.base = map != NULL ? map : "";
	r.end = r.base + st.st_size;
	r.folder = mbox_folder(path);
	r.name = import_basename(path);
	r.cb = cb;
	r.fail = fail;
	r.arg = arg;
	rc = mbox_walk(&r, err_r);
	if (map != NULL)
		munmap(map, (size_t)st.st_size);
	buf_free(&r.unesc);
	free(r.folder);
	return rc;
}

/* ------------------------------------------------------------------ */
/* File lists (Maildir, eml)                                          */

struct import_file {
	char *path;	/* to open */
	char *origin;	/* relative, for reports */
	char *folder;
	uint64_t size;
};

struct import_list {
	struct import_file *v;
	size_t n, cap;
	uint64_t total;
};

static void
list_add(struct import_list *l, const char *path, const char *origin,
    const char *folder, uint64_t size)
{
	if (l->n == l->cap) {
		l->cap = l->cap != 0 ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n].path = xstrdup(path);
	l->v[l->n].origin = xstrdup(origin);
	l->v[l->n].folder = xstrdup(folder);
	l->v[l->n].size = size;
	l->n++;
	l->total += size;
}

static void
list_free(struct import_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].origin);
		free(l->v[i].folder);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of a directory (without "." and ".."); NULL on error. */
static char **
dir_names(const char *dir, size_t *n_r)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t n = 0, cap = 0;

	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap != 0 ? cap * 2 : 32;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), names_cmp);
	*n_r = n;
	return v != NULL ? v : xcalloc(1, sizeof(*v));
}

static void
names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char *
path_join(const char *a, const char *b)
{
	struct buf p = BUF_INIT;

	if (a[0] != '\0') {
		buf_append_str(&p, a);
		buf_append_char(&p, '/');
	}
	buf_append_str(&p, b);
	return buf_steal(&p);
}

/* lstat() kind: 'f' regular file, 'd' directory, 0 anything else. */
static int
path_kind(const char *path, uint64_t *size_r)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return 0;
	if (size_r != NULL)
		*size_r = (uint64_t)st.st_size;
	return S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : 0;
}

/* ------------------------------------------------------------------ */
/* Reading listed files                                               */

static int
file_read(const char *path, uint64_t size_hint, struct buf *out, const char **why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char chunk[65536];
	ssize_t got;

	*why = NULL;
	buf_reset(out);
	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	if (size_hint > 0 && size_hint <= ARCHIVE_RAW_MAX)
		buf_reserve(out, (size_t)size_hint);
	while ((got = read(fd, chunk, sizeof(chunk))) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			*why = strerror(errno);
			break;
		}
		buf_append(out, chunk, (size_t)got);
		if (out->len > ARCHIVE_RAW_MAX) {
			*why = "message larger than 256 MiB";
			break;
		}
	}
	close(fd);
	return *why != NULL ? -1 : 0;
}

static int
list_deliver(const struct import_list *l, archive_import_cb *cb,
    archive_import_fail_cb *fail, void *arg)
{
	struct buf data = BUF_INIT;
	uint64_t done = 0;
	int rc = 0;

	for (size_t i = 0; i < l->n && rc == 0; i++) {
		const struct import_file *f = &l->v[i];
		struct archive_import_item it;
		const char *why;

		done += f->size;
		if (file_read(f->path, f->size, &data, &why) < 0) {
			import_fail(fail, arg, f->origin, why);
			continue;
		}
		if (data.len == 0) {
			import_fail(fail, arg, f->origin, "empty file");
			continue;
		}
		it.raw = (const unsigned char *)data.data;
		it.len = data.len;
		it.folder = f->folder;
		it.origin = f->origin;
		it.done_bytes = done;
		it.total_bytes = l->total;
		if (cb(arg, &it) != 0)
			rc = 1;
	}
	buf_free(&data);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Maildir                                                            */

struct md_walk {
	const char *root;
	struct import_list list;
};

/* A loose file in a folder directory: does it start like a message? */
static int
md_looks_like_mail(const char *path)
{
	char head[256];
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return 1;	/* let the reader report the error */
	got = read(fd, head, sizeof(head));
	close(fd);
	if (got <= 0)
		return 0;	/* e.g. Maildir++'s empty "maildirfolder" */
	if (got >= 5 && memcmp(head, "From ", 5) == 0)
		return 1;
	return mbox_is_header_line(head, head + got);
}

/* Adds the regular, non-dot files of rel (a cur/ or new/ directory). */
static void
md_add_files(struct md_walk *w, const char *rel, const char *folder,
    int check_mail)
{
	char *abs = path_join(w->root, rel);
	size_t n = 0;
	char **names = dir_names(abs, &n);

	for (size_t i = 0; names != NULL && i < n; i++) {
		char *p, *o;
		uint64_t size = 0;

		if (names[i][0] == '.')
			continue;
		p = path_join(abs, names[i]);
		o = path_join(rel, names[i]);
		if (path_kind(p, &size) == 'f' &&
		    (!check_mail || md_looks_like_mail(p)))
			list_add(&w->list, p, o, folder, size);
		free(p);
		free(o);
	}
	if (names != NULL)
		names_free(names, n);
	free(abs);
}

/* ".Sent.2019" under folder "a" -> "a/Sent/2019". */
static char *
md_plusplus_folder(const char *folder, const char *name)
{
	char *sub = xstrdup(name + 1), *res;

	for (char *c = sub; *c != '\0'; c++)
		if (*c == '.')
			*c = '/';
	res = path_join(folder, sub);
	free(sub);
	return res;
}

static int
md_is_maildir(const char *abs)
{
	char *cur = path_join(abs, "cur"), *newd = path_join(abs, "new");
	int yes = path_kind(cur, NULL) == 'd' || path_kind(newd, NULL) == 'd';

	free(cur);
	free(newd);
	return yes;
}

static void md_walk_dir(struct md_walk *w, const char *rel, const char *folder,
    int depth);

static void
md_entry(struct md_walk *w, const char *rel, const char *folder,
    const char *name, int depth)
{
	char *srel = path_join(rel, name), *abs = path_join(w->root, srel);
	int kind = path_kind(abs, NULL);

	if (kind == 'd' && (strcmp(name, "cur") == 0 || strcmp(name, "new") == 0)) {
		md_add_files(w, srel, folder, 0);
	} else if (kind == 'd' && name[0] == '.') {
		if (name[1] != '\0' && name[1] != '.' && md_is_maildir(abs)) {
			char *sub = md_plusplus_folder(folder, name);

			md_walk_dir(w, srel, sub, depth + 1);
			free(sub);
		}
	} else if (kind == 'd' && strcmp(name, "tmp") != 0) {
		char *sub = path_join(folder, name);

		md_walk_dir(w, srel, sub, depth + 1);
		free(sub);
	}
	free(srel);
	free(abs);
}

static void
md_walk_dir(struct md_walk *w, const char *rel, const char *folder, int depth)
{
	char *abs = rel[0] != '\0' ? path_join(w->root, rel) : xstrdup(w->root);
	size_t n = 0;
	char **names;

	if (depth > IMPORT_MAX_DEPTH) {
		free(abs);
		return;
	}
	names = dir_names(abs, &n);
	free(abs);
	if (names == NULL)
		return;
	md_add_files(w, rel, folder, 1);	/* loose files of the folder */
	for (size_t i = 0; i < n; i++)
		md_entry(w, rel, folder, names[i], depth);
	names_free(names, n);
}

int
archive_import_maildir(const char *dir, archive_import_cb *cb,
    archive_import_fail_cb *fail, void *arg, char **err_r)
{
	struct md_walk w = { 0 };
	struct stat st;
	DIR *probe;
	int rc;

	if (stat(dir, &st) < 0) {
		*err_r = buf_printf("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*err_r = buf_printf("%s: not a directory", dir);
		return -1;
	}
	probe = opendir(dir);
	if (probe == NULL) {
		*err_r = buf_printf("%s: %s", dir, strerror(errno));
		return -1;
	}
	closedir(probe);
	w.root = dir;
	md_walk_dir(&w, "", "", 0);
	rc = list_deliver(&w.list, cb, fail, arg);
	list_free(&w.list);
	return rc;
}

/* ------------------------------------------------------------------ */
/* eml                                                                */

static void
eml_walk(struct import_list *l, const char *abs, const char *rel, int depth)
{
	size_t n = 0;
	char **names;

	if (depth > IMPORT_MAX_DEPTH || (names = dir_names(abs, &n)) == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		char *p, *o;
		uint64_t size = 0;
		int kind;

		if (names[i][0] == '.')
			continue;
		p = path_join(abs, names[i]);
		o = path_join(rel, names[i]);
		kind = path_kind(p, &size);
		if (kind == 'f')
			list_add(l, p, o, "", size);
		else if (kind == 'd')
			eml_walk(l, p, o, depth + 1);
		free(p);
		free(o);
	}
	names_free(names, n);
}

int
archive_import_eml(const char *const *paths, size_t n, archive_import_cb *cb,
    archive_import_fail_cb *fail, void *arg, char **err_r)
{
	struct import_list l = { 0 };
	struct stat st;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (stat(paths[i], &st) < 0) {
			*err_r = buf_printf("%s: %s", paths[i], strerror(errno));
			return -1;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			*err_r = buf_printf("%s: not a file or directory", paths[i]);
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
			eml_walk(&l, paths[i], import_basename(paths[i]), 0);
		else if (stat(paths[i], &st) == 0)
			list_add(&l, paths[i], paths[i], "", (uint64_t)st.st_size);
	}
	rc = list_deliver(&l, cb, fail, arg);
	list_free(&l);
	return rc;
}
