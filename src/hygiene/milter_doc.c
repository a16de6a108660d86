/*
 * milter_doc.c — header list and body of a message for milter edits (see
 * milter_doc.h).
 */
#include "hygiene/milter_doc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/mem.h"

#define FIELD_NAME_MAX 200

/* Appends s to out with every bare LF (and bare CR) turned into CRLF. */
static void
append_crlf(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
			buf_append(out, "\r\n", 2);
			i++;
		} else if (s[i] == '\r' || s[i] == '\n') {
			buf_append(out, "\r\n", 2);
		} else {
			buf_append_char(out, s[i]);
		}
	}
}

static void
doc_grow(struct milter_doc *d)
{
	if (d->n < d->cap)
		return;
	d->cap = d->cap ? d->cap * 2 : 32;
	d->f = xrealloc(d->f, d->cap * sizeof(*d->f));
}

/* A field from its raw text; the name is what precedes a colon on the first line. */
static struct milter_field
field_make(char *raw)
{
	struct milter_field f = { NULL, raw, 0 };
	size_t i = 0;
	while (raw[i] != '\0' && raw[i] != ':' && raw[i] != '\r' && raw[i] != '\n')
		i++;
	if (raw[i] == ':' && i > 0) {
		f.name = xstrndup(raw, i);
		f.name_len = i;
		if (!milter_doc_name_ok(f.name)) {
			free(f.name);
			f.name = NULL;
		}
	}
	return f;
}

/* Length of the line at p (up to and including its LF), or of the rest. */
static size_t
line_len(const unsigned char *p, size_t avail)
{
	const unsigned char *nl = memchr(p, '\n', avail);
	return nl != NULL ? (size_t)(nl - p) + 1 : avail;
}

static int
line_is_empty(const unsigned char *p, size_t n)
{
	return (n == 1 && p[0] == '\n') || (n == 2 && p[0] == '\r' && p[1] == '\n');
}

void
milter_doc_parse(struct milter_doc *d, const unsigned char *data, size_t len)
{
	memset(d, 0, sizeof(*d));
	size_t off = 0;
	while (off < len) {
		size_t n = line_len(data + off, len - off);
		if (line_is_empty(data + off, n)) {
			d->has_separator = 1;
			off += n;
			break;
		}
		/* the field runs on over continuation lines (starting with a blank) */
		size_t end = off + n;
		while (end < len && (data[end] == ' ' || data[end] == '\t'))
			end += line_len(data + end, len - end);
		doc_grow(d);
		d->f[d->n++] = field_make(xstrndup((const char *)data + off, end - off));
		off = end;
	}
	if (off < len)
		buf_append(&d->body, data + off, len - off);
}

void
milter_doc_free(struct milter_doc *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->f[i].name);
		free(d->f[i].raw);
	}
	free(d->f);
	buf_free(&d->body);
	memset(d, 0, sizeof(*d));
}

char *
milter_doc_value(const struct milter_doc *d, size_t i, int leadspc)
{
	const char *v = d->f[i].raw + d->f[i].name_len + 1;
	size_t len = strlen(v);
	while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == '\r'))
		len--;
	if (!leadspc)
		while (len > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			len--;
		}
	return xstrndup(v, len);
}

static char *
field_render(const char *name, const char *value)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s:", name);
	append_crlf(&b, value, strlen(value));
	buf_append(&b, "\r\n", 2);
	return buf_steal(&b);
}

static void
field_put(struct milter_doc *d, size_t at, const char *name, const char *value)
{
	doc_grow(d);
	memmove(&d->f[at + 1], &d->f[at], (d->n - at) * sizeof(*d->f));
	d->f[at] = field_make(field_render(name, value));
	d->n++;
	d->changed = 1;
}

void
milter_doc_add(struct milter_doc *d, const char *name, const char *value)
{
	field_put(d, d->n, name, value);
}

void
milter_doc_insert(struct milter_doc *d, size_t idx, const char *name, const char *value)
{
	/* idx counts header fields as the milter saw them (named ones). */
	size_t at = 0, seen = 0;
	while (at < d->n && seen < idx) {
		if (d->f[at].name != NULL)
			seen++;
		at++;
	}
	field_put(d, at, name, value);
}

void
milter_doc_change(struct milter_doc *d, size_t idx, const char *name, const char *value)
{
	size_t seen = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (d->f[i].name == NULL || strcasecmp(d->f[i].name, name) != 0)
			continue;
		if (++seen != idx)
			continue;
		free(d->f[i].name);
		free(d->f[i].raw);
		if (value[0] == '\0') {
			memmove(&d->f[i], &d->f[i + 1], (d->n - i - 1) * sizeof(*d->f));
			d->n--;
		} else {
			d->f[i] = field_make(field_render(name, value));
		}
		d->changed = 1;
		return;
	}
	if (value[0] != '\0')
		milter_doc_add(d, name, value);
}

void
milter_doc_set_body(struct milter_doc *d, const void *data, size_t len)
{
	buf_reset(&d->body);
	append_crlf(&d->body, data, len);
	d->changed = 1;
}

int
milter_doc_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > FIELD_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (name[i] <= ' ' || name[i] >= 127 || name[i] == ':')
			return 0;
	return 1;
}

unsigned char *
milter_doc_render(const struct milter_doc *d, size_t *len_r)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < d->n; i++)
		buf_append_str(&b, d->f[i].raw);
	if (d->has_separator || d->body.len > 0)
		buf_append(&b, "\r\n", 2);
	buf_append(&b, d->body.data, d->body.len);
	*len_r = b.len;
	if (b.data == NULL)
		buf_reserve(&b, 1);
	return (unsigned char *)buf_steal(&b);
}
