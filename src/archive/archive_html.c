/*
 * archive_html — HTML to plain text for the archive index (see archive_html.h).
 *
 * One pass over the bytes with a tiny amount of state: the output buffer and
 * the white space owed before the next visible character (none, a blank, or
 * a line break).  Nothing in the input can make it loop, recurse or read
 * outside the given length.
 */
#include "archive/archive_html.h"

#include <string.h>
#include <strings.h>

#include "lib/buf.h"

enum html_gap { GAP_NONE, GAP_SPACE, GAP_LINE };

struct html_out {
	struct buf b;
	enum html_gap gap;
};

struct html_entity {
	const char *name;
	unsigned cp;
};

/* The named references mail actually uses; anything else is kept as written. */
static const struct html_entity html_entities[] = {
	{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' },
	{ "apos", '\'' }, { "nbsp", ' ' }, { "copy", 0xa9 }, { "reg", 0xae },
	{ "trade", 0x2122 }, { "hellip", 0x2026 }, { "mdash", 0x2014 },
	{ "ndash", 0x2013 }, { "lsquo", 0x2018 }, { "rsquo", 0x2019 },
	{ "ldquo", 0x201c }, { "rdquo", 0x201d }, { "bull", 0x2022 },
	{ "middot", 0xb7 }, { "laquo", 0xab }, { "raquo", 0xbb },
	{ "euro", 0x20ac }, { "pound", 0xa3 }, { "yen", 0xa5 }, { "cent", 0xa2 },
	{ "sect", 0xa7 }, { "deg", 0xb0 }, { "plusmn", 0xb1 }, { "times", 0xd7 },
	{ "divide", 0xf7 }, { "para", 0xb6 }, { "iexcl", 0xa1 }, { "iquest", 0xbf },
	{ "auml", 0xe4 }, { "ouml", 0xf6 }, { "uuml", 0xfc }, { "Auml", 0xc4 },
	{ "Ouml", 0xd6 }, { "Uuml", 0xdc }, { "szlig", 0xdf }, { "eacute", 0xe9 },
	{ "Eacute", 0xc9 }, { "egrave", 0xe8 }, { "agrave", 0xe0 },
	{ "aacute", 0xe1 }, { "iacute", 0xed }, { "oacute", 0xf3 },
	{ "uacute", 0xfa }, { "ccedil", 0xe7 }, { "ecirc", 0xea },
	{ "ntilde", 0xf1 }, { "aring", 0xe5 }, { "oslash", 0xf8 },
	{ "aelig", 0xe6 }, { "zwnj", 0x200c }, { "zwj", 0x200d }, { "shy", 0xad },
};

/* Tags whose whole content is dropped. */
static const char *const html_skip_tags[] = { "script", "style", "head", "title" };

/* Tags that end a line. */
static const char *const html_block_tags[] = {
	"address", "article", "aside", "blockquote", "body", "br", "dd", "div",
	"dl", "dt", "fieldset", "figure", "footer", "form", "h1", "h2", "h3", "h4",
	"h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre",
	"section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
};

static int
html_in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return 1;
	return 0;
}

static int
html_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int
html_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
html_is_alnum(unsigned char c)
{
	return html_is_alpha(c) || (c >= '0' && c <= '9');
}

static void
html_gap(struct html_out *o, enum html_gap g)
{
	if (g > o->gap)
		o->gap = g;
}

/* Writes the owed white space (never at the start), then the bytes. */
static void
html_emit(struct html_out *o, const char *s, size_t n)
{
	if (o->gap != GAP_NONE && o->b.len > 0)
		buf_append_char(&o->b, o->gap == GAP_LINE ? '\n' : ' ');
	o->gap = GAP_NONE;
	buf_append(&o->b, s, n);
}

static void
html_emit_cp(struct html_out *o, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = 0xfffd;
	if (cp < 0x20 || cp == 0x7f || cp == 0xa0) {
		html_gap(o, GAP_SPACE);
		return;
	}
	if (cp == 0xad || cp == 0x200c || cp == 0x200d)
		return;    /* invisible: must not split a word */
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (cp == ' ')
		html_gap(o, GAP_SPACE);
	else
		html_emit(o, u, n);
}

/* "&#NN;" / "&#xHH;" at s[0] == '&', s[1] == '#'; returns bytes used or 0. */
static size_t
html_numeric_ref(const char *s, size_t len, unsigned *cp_r)
{
	size_t i = 2;
	int hex = 0;
	unsigned long v = 0;
	size_t digits = 0;

	if (i < len && (s[i] == 'x' || s[i] == 'X')) {
		hex = 1;
		i++;
	}
	for (; i < len && digits < 8; i++, digits++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= '0' && c <= '9')
			v = v * (hex ? 16 : 10) + (c - '0');
		else if (hex && c >= 'a' && c <= 'f')
			v = v * 16 + (c - 'a' + 10);
		else if (hex && c >= 'A' && c <= 'F')
			v = v * 16 + (c - 'A' + 10);
		else
			break;
	}
	if (digits == 0)
		return 0;
	if (i < len && s[i] == ';')
		i++;
	*cp_r = v > 0x10ffff ? 0xfffd : (unsigned)v;
	return i;
}

/* A named reference at s[0] == '&'; returns bytes used or 0 (unknown). */
static size_t
html_named_ref(const char *s, size_t len, unsigned *cp_r)
{
	char name[12];
	size_t n = 0;

	while (1 + n < len && n < sizeof(name) - 1 && html_is_alnum((unsigned char)s[1 + n])) {
		name[n] = s[1 + n];
		n++;
	}
	if (n == 0)
		return 0;
	name[n] = '\0';
	int semi = 1 + n < len && s[1 + n] == ';';
	for (size_t i = 0; i < sizeof(html_entities) / sizeof(html_entities[0]); i++) {
		if (strcmp(name, html_entities[i].name) != 0)
			continue;
		/* Without ';' only the classic five are recognised, as browsers do. */
		if (!semi && html_entities[i].cp > 0x7f && strcmp(name, "nbsp") != 0)
			return 0;
		*cp_r = html_entities[i].cp;
		return 1 + n + (size_t)semi;
	}
	return 0;
}

static size_t
html_entity(struct html_out *o, const char *s, size_t len)
{
	unsigned cp = 0;
	size_t used = len > 1 && s[1] == '#' ? html_numeric_ref(s, len, &cp)
	    : html_named_ref(s, len, &cp);
	if (used == 0) {
		html_emit(o, "&", 1);
		return 1;
	}
	html_emit_cp(o, cp);
	return used;
}

/* Case-insensitive search for needle (ASCII) in s[0..len); returns its offset or len. */
static size_t
html_find_ci(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp(s + i, needle, n) == 0)
			return i;
	return len;
}

/* Offset just past the '>' ending the tag that starts at s[0] == '<'. */
static size_t
html_tag_end(const char *s, size_t len)
{
	char quote = 0;
	for (size_t i = 1; i < len; i++) {
		if (quote != 0) {
			if (s[i] == quote)
				quote = 0;
		} else if (s[i] == '"' || s[i] == '\'') {
			if (i > 0 && s[i - 1] == '=')
				quote = s[i];
		} else if (s[i] == '>') {
			return i + 1;
		}
	}
	/* Unbalanced quote: fall back to the first '>'. */
	const char *gt = memchr(s, '>', len);
	return gt != NULL ? (size_t)(gt - s) + 1 : len;
}

/* Skips an element's content up to and including its closing tag. */
static size_t
html_skip_element(const char *s, size_t len, const char *name)
{
	char close[16];
	size_t n = strlen(name);
	close[0] = '<';
	close[1] = '/';
	memcpy(close + 2, name, n + 1);
	size_t at = html_find_ci(s, len, close);
	if (at == len)
		return len;
	return at + html_tag_end(s + at, len - at);
}

/* A tag at s[0] == '<' followed by a letter or '/'; returns bytes consumed. */
static size_t
html_tag(struct html_out *o, const char *s, size_t len)
{
	size_t i = 1;
	int closing = 0;
	char name[16];
	size_t n = 0;

	if (s[i] == '/') {
		closing = 1;
		i++;
	}
	while (i < len && html_is_alnum((unsigned char)s[i])) {
		if (n < sizeof(name) - 1)
			name[n++] = (char)(s[i] | 0x20);
		i++;
	}
	name[n] = '\0';
	size_t end = html_tag_end(s, len);
	int self_closing = end >= 2 && s[end - 2] == '/';
	if (!closing && !self_closing &&
	    html_in_list(name, html_skip_tags, sizeof(html_skip_tags) / sizeof(html_skip_tags[0]))) {
		size_t rest = html_skip_element(s + end, len - end, name);
		/* An unclosed <head>/<title> would swallow the whole text: keep it. */
		if (end + rest < len || strcmp(name, "script") == 0 || strcmp(name, "style") == 0)
			end += rest;
	}
	html_gap(o, html_in_list(name, html_block_tags,
	    sizeof(html_block_tags) / sizeof(html_block_tags[0])) ? GAP_LINE : GAP_SPACE);
	return end;
}

/* "<!-- ... -->", "<!DOCTYPE ...>", "<?xml ...?>": returns bytes consumed. */
static size_t
html_markup_decl(const char *s, size_t len)
{
	if (len >= 4 && memcmp(s, "<!--", 4) == 0) {
		size_t at = html_find_ci(s + 4, len - 4, "-->");
		return at == len - 4 ? len : 4 + at + 3;
	}
	const char *gt = memchr(s, '>', len);
	return gt != NULL ? (size_t)(gt - s) + 1 : len;
}

static size_t
html_step(struct html_out *o, const char *s, size_t len)
{
	unsigned char c = (unsigned char)s[0];

	if (c == '<' && len > 1) {
		unsigned char d = (unsigned char)s[1];
		if (d == '!' || d == '?')
			return html_markup_decl(s, len);
		if (html_is_alpha(d) || d == '/')
			return html_tag(o, s, len);
	}
	if (c == '&')
		return html_entity(o, s, len);
	if (html_is_space(c) || c == '\0') {
		html_gap(o, GAP_SPACE);
		return 1;
	}
	size_t n = 1;
	while (n < len && !html_is_space((unsigned char)s[n]) && s[n] != '<' &&
	    s[n] != '&' && s[n] != '\0')
		n++;
	html_emit(o, s, n);
	return n;
}

char *
archive_html_to_text(const char *html, size_t len)
{
	struct html_out o = { BUF_INIT, GAP_NONE };
	size_t i = 0;

	while (i < len)
		i += html_step(&o, html + i, len - i);
	return buf_steal(&o.b);
}
