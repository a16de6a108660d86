/*
 * hygiene_result.c — the helpers stages use to record what they found
 * (hygiene.h): raise the verdict, add reasons and headers, rewrite content.
 */
#include "hygiene/hygiene.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/mem.h"

const char *
hygiene_action_name(enum hygiene_action a)
{
	static const char *const names[] = { "accept", "tag", "quarantine", "defer", "reject" };
	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

const char *
hygiene_auth_name(enum hygiene_auth a)
{
	static const char *const names[] = { "none", "pass", "fail", "softfail", "neutral",
		"temperror", "permerror", "policy" };
	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

static void
reason_vappend(struct hygiene_result *r, const char *fmt, va_list ap)
{
	if (r->reasons.len > 0)
		buf_append(&r->reasons, "; ", 2);
	char tmp[1024];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	if (n < 0)
		return;
	buf_append(&r->reasons, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void
hygiene_result_raise(struct hygiene_result *r, enum hygiene_action a, const char *reply,
    const char *reason_fmt, ...)
{
	if (reason_fmt != NULL) {
		va_list ap;
		va_start(ap, reason_fmt);
		reason_vappend(r, reason_fmt, ap);
		va_end(ap);
	}
	if (a > r->action)
		r->action = a;
	if (a >= HYGIENE_DEFER && reply != NULL && r->reply == NULL)
		r->reply = xstrdup(reply);
}

void
hygiene_result_reason(struct hygiene_result *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reason_vappend(r, fmt, ap);
	va_end(ap);
}

/* Folds at whitespace so no line passes 78 columns where that is possible
 * (runs of blanks become one). */
static void
header_fold(struct buf *out, const char *name, const char *value)
{
	size_t col = strlen(name) + 1;
	buf_appendf(out, "%s:", name);
	const char *p = value;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		const char *end = p;
		while (*end != '\0' && *end != ' ' && *end != '\t')
			end++;
		size_t wlen = (size_t)(end - p);
		if (col > strlen(name) + 1 && col + 1 + wlen > 78) {
			buf_append(out, "\r\n\t", 3);
			col = 8;
		} else {
			buf_append(out, " ", 1);
			col++;
		}
		buf_append(out, p, wlen);
		col += wlen;
		p = end;
	}
	buf_append(out, "\r\n", 2);
}

void
hygiene_result_add_header(struct hygiene_result *r, const char *name, const char *fmt, ...)
{
	char *value = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&value, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* A header value never carries a line break it was not given by us. */
	for (char *c = value; *c != '\0'; c++)
		if (*c == '\r' || *c == '\n')
			*c = ' ';
	header_fold(&r->headers, name, value);
	free(value);
}

void
hygiene_result_rewrite(struct hygiene_result *r, unsigned char *data, size_t len)
{
	free(r->rewritten);
	r->rewritten = data;
	r->rewritten_len = len;
}

void
hygiene_result_content(const struct hygiene_msg *m, const struct hygiene_result *r,
    const unsigned char **data_r, size_t *len_r)
{
	if (r->rewritten != NULL) {
		*data_r = r->rewritten;
		*len_r = r->rewritten_len;
	} else {
		*data_r = m->data;
		*len_r = m->len;
	}
}

void
hygiene_result_free(struct hygiene_result *r)
{
	free(r->reply);
	buf_free(&r->reasons);
	buf_free(&r->headers);
	free(r->rewritten);
	free(r->notify_to);
	free(r->notify_text);
	memset(r, 0, sizeof(*r));
}

/* The end of the header field starting at p (just past its last line end). */
static const unsigned char *
field_end(const unsigned char *p, const unsigned char *end)
{
	while (p < end) {
		const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return end;
		p = nl + 1;
		if (p >= end || (*p != ' ' && *p != '\t'))
			return p;
	}
	return end;
}

/* The value of field [p, fend) when it is called `name`, else NULL. */
static const unsigned char *
field_value(const unsigned char *p, const unsigned char *fend, const char *name)
{
	size_t nlen = strlen(name);
	if ((size_t)(fend - p) <= nlen || strncasecmp((const char *)p, name, nlen) != 0)
		return NULL;
	const unsigned char *q = p + nlen;
	while (q < fend && (*q == ' ' || *q == '\t'))
		q++;
	return q < fend && *q == ':' ? q + 1 : NULL;
}

int
hygiene_header_rename(const unsigned char *data, size_t len, const char *name,
    const char *newname, hygiene_header_match_fn *match, void *arg, unsigned char **out_r,
    size_t *outlen_r)
{
	*out_r = NULL;
	*outlen_r = 0;
	const unsigned char *end = data + len, *p = data;
	size_t nlen = strlen(name);
	struct buf out = BUF_INIT;
	int renamed = 0;
	while (p < end && *p != '\r' && *p != '\n') {
		const unsigned char *fend = field_end(p, end);
		const unsigned char *v = field_value(p, fend, name);
		if (v != NULL && (match == NULL || match(v, (size_t)(fend - v), arg))) {
			buf_append_str(&out, newname);
			buf_append(&out, p + nlen, (size_t)(fend - p) - nlen);
			renamed++;
		} else {
			buf_append(&out, p, (size_t)(fend - p));
		}
		p = fend;
	}
	if (renamed == 0) {
		buf_free(&out);
		return 0;
	}
	buf_append(&out, p, (size_t)(end - p));
	*outlen_r = out.len;
	*out_r = (unsigned char *)buf_steal(&out);
	return renamed;
}
