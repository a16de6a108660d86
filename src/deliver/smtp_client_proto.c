/*
 * NAME
 *	smtp_client_proto - reply parser, EHLO keywords, dot-stuffing
 * DESCRIPTION
 *	Pure helpers of the outbound SMTP client; see smtp_client_proto.h.
 *	Every limit is checked before data is kept.
 */
#include "deliver/smtp_client_proto.h"

#include <string.h>
#include <strings.h>

#include "lib/strutil.h"

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

void
smtp_reply_reset(struct smtp_reply *r)
{
	r->code = 0;
	r->nlines = 0;
	r->size = 0;
	r->error = NULL;
	buf_reset(&r->text);
}

void
smtp_reply_free(struct smtp_reply *r)
{
	buf_free(&r->text);
	smtp_reply_init(r);
}

static int
reply_fail(struct smtp_reply *r, const char *why)
{
	r->error = why;
	return -1;
}

static int
reply_code(const char *line, size_t len)
{
	if (len < 3)
		return -1;
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9')
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

int
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	if (len > SMTP_REPLY_MAX_LINE)
		return reply_fail(r, "reply line too long");
	if (r->nlines >= SMTP_REPLY_MAX_LINES)
		return reply_fail(r, "too many reply lines");
	if (r->size + len + 1 > SMTP_REPLY_MAX_SIZE)
		return reply_fail(r, "reply too large");
	int code = reply_code(line, len);
	if (code < 0)
		return reply_fail(r, "malformed reply code");
	if (r->nlines > 0 && code != r->code)
		return reply_fail(r, "reply code changed between lines");
	int last;
	if (len == 3 || line[3] == ' ')
		last = 1;
	else if (line[3] == '-')
		last = 0;
	else
		return reply_fail(r, "malformed reply separator");
	r->code = code;
	if (r->nlines > 0)
		buf_append_char(&r->text, '\n');
	if (len > 4)
		buf_append(&r->text, line + 4, len - 4);
	else
		buf_reserve(&r->text, 1);
	r->nlines++;
	r->size += len + 1;
	return last;
}

static unsigned
ehlo_keyword(const char *kw, size_t kwlen, const char *arg, size_t arglen, uint64_t *size_r)
{
	static const struct {
		const char *name;
		unsigned bit;
	} table[] = {
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "SIZE", SMTP_EXT_SIZE },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "CHUNKING", SMTP_EXT_CHUNKING },
		{ "DSN", SMTP_EXT_DSN },
		{ "STARTTLS", SMTP_EXT_STARTTLS },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (strlen(table[i].name) != kwlen || strncasecmp(table[i].name, kw, kwlen) != 0)
			continue;
		if (table[i].bit == SMTP_EXT_SIZE) {
			char num[24];
			uint64_t v = 0;
			if (arglen > 0 && arglen < sizeof(num)) {
				memcpy(num, arg, arglen);
				num[arglen] = '\0';
				if (str_parse_u64(num, &v) < 0)
					v = 0;
			}
			*size_r = v;
		}
		return table[i].bit;
	}
	return 0;
}

unsigned
smtp_ehlo_parse(const struct smtp_reply *r, uint64_t *size_r)
{
	unsigned ext = 0;
	*size_r = 0;
	if (r->text.len == 0)
		return 0;
	const char *p = r->text.data;
	const char *end = p + r->text.len;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL)
		return 0;   /* greeting line only */
	p = nl + 1;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end;
		const char *sp = memchr(p, ' ', (size_t)(eol - p));
		const char *kwend = sp != NULL ? sp : eol;
		const char *arg = sp != NULL ? sp + 1 : eol;
		ext |= ehlo_keyword(p, (size_t)(kwend - p), arg, (size_t)(eol - arg), size_r);
		p = eol + 1;
	}
	return ext;
}

void
smtp_dotstuff(const char *in, size_t len, int *at_bol, struct buf *out)
{
	size_t start = 0;
	buf_reserve(out, len + 16);
	for (size_t i = 0; i < len; i++) {
		if (*at_bol && in[i] == '.') {
			buf_append(out, in + start, i - start);
			buf_append_char(out, '.');
			start = i;   /* the original '.' is copied with the next run */
		}
		*at_bol = in[i] == '\n';
	}
	buf_append(out, in + start, len - start);
}

void
smtp_printable(const char *s, size_t len, size_t cap, struct buf *out)
{
	size_t n = len > cap ? cap : len;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n' || c == '\t')
			buf_append_char(out, ' ');
		else if (c < 0x20 || c >= 0x7f)
			buf_append_char(out, '?');
		else
			buf_append_char(out, (char)c);
	}
	if (n < len)
		buf_append_str(out, "...");
}
