/*
 * spam_tokens.c — the classifier's tokenizer (spam_tokens.h).
 *
 * One pass over the message: the raw header block (each field's name as a
 * token, its value's words prefixed by the name; Received and Message-ID
 * reduced to the hosts they name), then GMime's MIME tree (decoded subject,
 * text of text/plain parts, HTML parts reduced to text with tag names and
 * link hosts as extra tokens, part types and attachment extensions).
 * Header fields that earlier filters added (X-Spam-*, X-Mailark-*) are
 * skipped: they would teach the classifier someone else's verdict.
 */
#include "hygiene/spam_tokens.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "archive/archive_parse.h"
#include "lib/buf.h"
#include "lib/mem.h"

#define RAW_TOKENS_MAX 60000         /* features collected before sorting */
#define WORD_MIN 3
#define WORD_MAX 24
#define HDR_WORD_MAX 40
#define HDR_NAME_MAX 40
#define HDR_VALUE_MAX 4096
#define HDR_FIELDS_MAX 200
#define HDR_WORDS_MAX 40
#define PREFIX_MAX 48

struct tk {
	const struct spam_tokens_opts *o;
	struct spam_tokens *t;
	size_t text_used;            /* bytes of text tokenized so far (SPAM_TEXT_MAX) */
	unsigned received;           /* Received fields seen */
	int subject_done;
	int in_headers;              /* features now come from the header block */
};

uint64_t
spam_token_hash(const char *prefix, const char *text, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)prefix; *p != '\0'; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	h ^= 0xff;
	h *= 0x100000001b3ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)tolower((unsigned char)text[i]);
		h *= 0x100000001b3ULL;
	}
	/* splitmix64's finaliser spreads FNV's weak low bits */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static void
tk_add(struct tk *k, const char *prefix, const char *text, size_t len)
{
	struct spam_tokens *t = k->t;
	if (t->n >= RAW_TOKENS_MAX)
		return;
	if (t->n == t->cap) {
		t->cap = t->cap == 0 ? 512 : t->cap * 2;
		t->h = xrealloc(t->h, t->cap * sizeof(t->h[0]));
	}
	uint64_t h = spam_token_hash(prefix, text, len) & ~SPAM_TOKEN_HEADER;
	t->h[t->n++] = k->in_headers ? h | SPAM_TOKEN_HEADER : h;
}

static void
tk_add_str(struct tk *k, const char *prefix, const char *text)
{
	tk_add(k, prefix, text, strlen(text));
}

/* A length bucket for words too long to count as themselves. */
static void
tk_add_skip(struct tk *k, const char *prefix, const char *w, size_t len)
{
	char s[32];
	int n = snprintf(s, sizeof(s), "%c:%zu", tolower((unsigned char)w[0]), len / 10 * 10);
	if (n > 0 && (size_t)n < sizeof(s))
		tk_add(k, prefix, s, (size_t)n);
}

static int
is_ipv4_literal(const char *h, size_t len)
{
	if (len == 0)
		return 0;
	size_t dots = 0;
	for (size_t i = 0; i < len; i++) {
		if (h[i] == '.')
			dots++;
		else if (!isdigit((unsigned char)h[i]))
			return 0;
	}
	return dots == 3;
}

/* "url:" tokens for a link: the host, its parent domains, a few path words. */
static void
tk_url(struct tk *k, const char *s, size_t len)
{
	size_t i = 0;
	const char *sep = memmem(s, len, "://", 3);
	if (sep != NULL) {
		tk_add(k, "proto:", s, (size_t)(sep - s) < 10 ? (size_t)(sep - s) : 10);
		i = (size_t)(sep - s) + 3;
	}
	size_t host = i;
	while (i < len && strchr("/?#:\"'<> \t\r\n\\", s[i]) == NULL)
		i++;
	const char *h = s + host;
	size_t hlen = i - host;
	const char *at = memchr(h, '@', hlen);
	if (at != NULL) {
		tk_add_str(k, "url:", "userinfo");
		hlen -= (size_t)(at + 1 - h);
		h = at + 1;
	}
	if (hlen == 0 || hlen > 253) {
		tk_add_str(k, "url:", "badhost");
		return;
	}
	if (is_ipv4_literal(h, hlen) || h[0] == '[') {
		k->t->feat.ip_urls++;
		tk_add_str(k, "url:", "ip-literal");
		return;
	}
	if (i < len && s[i] == ':')
		tk_add_str(k, "url:", "port");
	tk_add(k, "url:", h, hlen);
	unsigned parts = 0;
	for (size_t j = 0; j < hlen && parts < 4; j++)
		if (h[j] == '.') {
			tk_add(k, "url:", h + j + 1, hlen - j - 1);
			parts++;
		}
	/* path words */
	unsigned words = 0;
	while (i < len && words < 6) {
		while (i < len && strchr("/?#=&.-_%", s[i]) != NULL)
			i++;
		size_t w = i;
		while (i < len && strchr("/?#=&.-_% \t\r\n\"'<>", s[i]) == NULL)
			i++;
		if (i - w >= WORD_MIN && i - w <= WORD_MAX) {
			if (k->o->url_paths)
				tk_add(k, "urlpath:", s + w, i - w);
			words++;
		}
		if (i < len && strchr(" \t\r\n\"'<>", s[i]) != NULL)
			break;
	}
}

static int
is_trim_char(unsigned char c)
{
	return c < 0x80 && strchr(".,;:!?\"'()[]<>{}*-_=|/\\`~#+^", c) != NULL && c != '\0';
}

/* One whitespace-separated word of subject or body text.  Returns 1 when
 * it was counted as a plain word (*word_r, *wlen_r: the word as counted). */
static int
tk_word(struct tk *k, const char *prefix, const char *w, size_t len, const char **word_r,
    size_t *wlen_r)
{
	for (size_t i = 0; i < len; i++)
		if (w[i] == '!')
			k->t->feat.exclaims++;
	while (len > 0 && is_trim_char((unsigned char)w[0])) {
		w++;
		len--;
	}
	while (len > 0 && is_trim_char((unsigned char)w[len - 1]))
		len--;
	if (len < WORD_MIN)
		return 0;
	if (memmem(w, len, "://", 3) != NULL || (len > 4 && strncasecmp(w, "www.", 4) == 0)) {
		tk_url(k, w, len);
		return 0;
	}
	const char *at = memchr(w, '@', len);
	if (at != NULL && memchr(at, '.', len - (size_t)(at - w)) != NULL) {
		tk_add(k, "email:", at + 1, len - (size_t)(at + 1 - w));
		return 0;
	}
	if (len > WORD_MAX) {
		tk_add_skip(k, "skip:", w, len);
		return 0;
	}
	tk_add(k, prefix, w, len);
	*word_r = w;
	*wlen_r = len;
	return 1;
}

/* "bi:" features: two plain words in a row of the body text. */
static void
tk_bigram(struct tk *k, const char *a, size_t alen, const char *b, size_t blen)
{
	char pair[2 * WORD_MAX + 2];
	memcpy(pair, a, alen);
	pair[alen] = ' ';
	memcpy(pair + alen + 1, b, blen);
	tk_add(k, "bi:", pair, alen + 1 + blen);
}

static void
tk_words(struct tk *k, const char *prefix, const char *s, size_t len)
{
	size_t i = 0;
	const char *prev = NULL;
	size_t prev_len = 0;
	int bigrams = k->o->bigrams && prefix[0] == '\0';
	while (i < len) {
		while (i < len && isspace((unsigned char)s[i]))
			i++;
		size_t w = i;
		while (i < len && !isspace((unsigned char)s[i]))
			i++;
		if (i == w)
			continue;
		const char *word;
		size_t wlen;
		if (tk_word(k, prefix, s + w, i - w, &word, &wlen)) {
			if (bigrams && prev != NULL)
				tk_bigram(k, prev, prev_len, word, wlen);
			prev = word;
			prev_len = wlen;
		} else {
			prev = NULL;
		}
	}
}

/* Text of a part, within the per-message budget. */
static void
tk_text(struct tk *k, const char *s, size_t len)
{
	if (k->text_used >= SPAM_TEXT_MAX)
		return;
	if (len > SPAM_TEXT_MAX - k->text_used)
		len = SPAM_TEXT_MAX - k->text_used;
	k->text_used += len;
	tk_words(k, "", s, len);
}

/* ---- HTML ------------------------------------------------------------ */

/* The value of attribute `name` inside one tag's text, or NULL. */
static const char *
html_attr(const char *tag, size_t len, const char *name, size_t *vlen_r)
{
	size_t nlen = strlen(name);
	for (size_t i = 0; i + nlen < len; i++) {
		if (strncasecmp(tag + i, name, nlen) != 0 || (i > 0 && !isspace((unsigned char)tag[i - 1])))
			continue;
		size_t j = i + nlen;
		while (j < len && isspace((unsigned char)tag[j]))
			j++;
		if (j >= len || tag[j] != '=')
			continue;
		j++;
		while (j < len && isspace((unsigned char)tag[j]))
			j++;
		char q = j < len && (tag[j] == '"' || tag[j] == '\'') ? tag[j++] : 0;
		size_t v = j;
		while (j < len && (q ? tag[j] != q : !isspace((unsigned char)tag[j]) && tag[j] != '>'))
			j++;
		*vlen_r = j - v;
		return tag + v;
	}
	return NULL;
}

/* One tag (text between < and >): its name as a token, its links as URLs.
 * Returns 1 for <style> and <script>, whose content is not text. */
static int
html_tag(struct tk *k, const char *tag, size_t len)
{
	size_t i = 0;
	if (i < len && tag[i] == '/')
		i++;
	size_t n = i;
	while (i < len && isalnum((unsigned char)tag[i]) && i - n < 12)
		i++;
	if (i == n)
		return 0;
	int closing = n > 0;
	if (k->o->html_tags)
		tk_add(k, closing ? "tag:/" : "tag:", tag + n, i - n);
	if (closing)
		return 0;
	static const char *const attrs[] = { "href", "src", "action", "background" };
	for (size_t a = 0; a < sizeof(attrs) / sizeof(attrs[0]); a++) {
		size_t vlen;
		const char *v = html_attr(tag + i, len - i, attrs[a], &vlen);
		if (v != NULL && vlen > 0) {
			if (vlen > 7 && strncasecmp(v, "mailto:", 7) == 0)
				tk_add_str(k, "url:", "mailto");
			else if (memmem(v, vlen, "://", 3) != NULL)
				tk_url(k, v, vlen);
			else
				tk_add_str(k, "url:", "relative");
		}
	}
	return (i - n == 5 && strncasecmp(tag + n, "style", 5) == 0) ||
	    (i - n == 6 && strncasecmp(tag + n, "script", 6) == 0);
}

/* Reduces HTML to its visible text (into out), tokenizing tags on the way. */
static void
html_reduce(struct tk *k, const char *s, size_t len, struct buf *out)
{
	size_t i = 0;
	int skip_content = 0;
	while (i < len) {
		if (s[i] == '<') {
			if (len - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
				const char *end = memmem(s + i + 4, len - i - 4, "-->", 3);
				tk_add_str(k, "html:", "comment");
				i = end != NULL ? (size_t)(end - s) + 3 : len;
				continue;
			}
			const char *end = memchr(s + i, '>', len - i);
			size_t tlen = end != NULL ? (size_t)(end - s) - i - 1 : len - i - 1;
			int sc = html_tag(k, s + i + 1, tlen);
			if (skip_content && tlen > 0 && s[i + 1] == '/')
				skip_content = 0;
			else if (sc)
				skip_content = 1;
			i = end != NULL ? (size_t)(end - s) + 1 : len;
			buf_append_char(out, ' ');
			continue;
		}
		if (s[i] == '&') {
			size_t j = i + 1;
			while (j < len && j - i < 10 && (isalnum((unsigned char)s[j]) || s[j] == '#'))
				j++;
			if (j < len && s[j] == ';') {
				if (s[i + 1] == '#')
					tk_add_str(k, "html:", "numeric-entity");
				buf_append_char(out, ' ');
				i = j + 1;
				continue;
			}
		}
		if (!skip_content)
			buf_append_char(out, s[i]);
		i++;
	}
}

/* ---- header block ---------------------------------------------------- */

static int
header_skipped(const char *name)
{
	static const char *const skip[] = { "status", "x-status", "x-keywords", "x-uid",
		"content-length", "lines", "x-uidl", "x-ham-report" };
	if (strncmp(name, "x-spam", 6) == 0 || strncmp(name, "x-mailark", 9) == 0)
		return 1;
	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (strcmp(name, skip[i]) == 0)
			return 1;
	return 0;
}

/* Fields whose value words are features (the others count by name only:
 * mailing-list fields would otherwise outvote the text). */
static int
header_valued(const char *name)
{
	static const char *const valued[] = { "from", "reply-to", "to", "cc", "content-type",
		"content-transfer-encoding", "x-mailer", "user-agent", "organization", "x-priority",
		"x-msmail-priority", "mime-version", "importance", "sender" };
	for (size_t i = 0; i < sizeof(valued) / sizeof(valued[0]); i++)
		if (strcmp(name, valued[i]) == 0)
			return 1;
	return 0;
}

/* Mailing-list fields (RFC 2369, 2919) and Precedence. */
static int
header_list(const char *name)
{
	return strcmp(name, "list-id") == 0 || strcmp(name, "precedence") == 0 ||
	    strcmp(name, "list-unsubscribe") == 0;
}

static int
all_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isdigit((unsigned char)s[i]) && s[i] != '.' && s[i] != ':' && s[i] != '-')
			return 0;
	return 1;
}

/* Received: the host names (last two labels) and IPv4 /16s it names. */
static void
hdr_received(struct tk *k, const char *v, size_t len)
{
	k->received++;
	size_t i = 0;
	unsigned words = 0;
	while (i < len && words < HDR_WORDS_MAX) {
		while (i < len && strchr(" \t\r\n()[];<>=", v[i]) != NULL)
			i++;
		size_t w = i;
		while (i < len && strchr(" \t\r\n()[];<>=", v[i]) == NULL)
			i++;
		size_t wl = i - w;
		if (wl == 0 || wl > 80)
			continue;
		words++;
		const char *word = v + w;
		if (is_ipv4_literal(word, wl)) {
			const char *d = memchr(word, '.', wl);
			d = memchr(d + 1, '.', wl - (size_t)(d + 1 - word));
			tk_add(k, "rcv:ip:", word, (size_t)(d - word));
		} else if (memchr(word, '.', wl) != NULL && !all_digits(word, wl)) {
			size_t dots = 0, j = wl;
			while (j > 0 && dots < 2)
				if (word[--j] == '.')
					dots++;
			size_t start = dots == 2 ? j + 1 : 0;
			tk_add(k, "rcv:", word + start, wl - start);
		} else if (wl <= 12 && !all_digits(word, wl) && words < 12) {
			tk_add(k, "rcv:w:", word, wl);
		}
	}
}

static void
hdr_generic(struct tk *k, const char *prefix, const char *v, size_t len)
{
	size_t i = 0;
	unsigned words = 0;
	while (i < len && words < HDR_WORDS_MAX) {
		while (i < len && strchr(" \t\r\n<>,;\"()[]", v[i]) != NULL)
			i++;
		size_t w = i;
		while (i < len && strchr(" \t\r\n<>,;\"()[]", v[i]) == NULL)
			i++;
		size_t wl = i - w;
		if (wl == 0)
			continue;
		words++;
		if (all_digits(v + w, wl))
			continue;
		if (wl > HDR_WORD_MAX) {
			tk_add_skip(k, prefix, v + w, wl);
			continue;
		}
		tk_add(k, prefix, v + w, wl);
		const char *at = memchr(v + w, '@', wl);
		if (at != NULL && at + 1 < v + w + wl)
			tk_add(k, "addr-domain:", at + 1, (size_t)(v + w + wl - at - 1));
	}
}

static void
hdr_field(struct tk *k, const char *name, const char *v, size_t len)
{
	struct spam_features *f = &k->t->feat;
	if (strcmp(name, "date") == 0)
		f->has_date = 1;
	else if (strcmp(name, "message-id") == 0)
		f->has_message_id = 1;
	else if (strcmp(name, "from") == 0)
		f->has_from = 1;
	else if (strcmp(name, "in-reply-to") == 0)
		f->has_in_reply_to = 1;
	else if (strcmp(name, "references") == 0)
		f->has_references = 1;
	if (header_skipped(name))
		return;
	tk_add_str(k, "h:", name);
	char prefix[PREFIX_MAX];
	snprintf(prefix, sizeof(prefix), "%s:", name);
	if (strcmp(name, "received") == 0) {
		hdr_received(k, v, len);
	} else if (strcmp(name, "date") == 0) {
		size_t e = len;
		while (e > 0 && isspace((unsigned char)v[e - 1]))
			e--;
		size_t s = e;
		while (s > 0 && !isspace((unsigned char)v[s - 1]))
			s--;
		if (e > s && e - s < 12)
			tk_add(k, "date:tz:", v + s, e - s);
	} else if (strcmp(name, "message-id") == 0) {
		const char *at = memchr(v, '@', len);
		if (at == NULL) {
			tk_add_str(k, "mid:", "no-at");
		} else {
			size_t e = (size_t)(at + 1 - v);
			while (e < len && v[e] != '>' && !isspace((unsigned char)v[e]))
				e++;
			tk_add(k, "mid:", at + 1, e - (size_t)(at + 1 - v));
		}
	} else if (strcmp(name, "subject") == 0) {
		if (memmem(v, len, "=?", 2) != NULL)
			tk_add_str(k, "subject:", "encoded-word");
		if (k->subject_done == 0)
			tk_words(k, "subject:", v, len);
	} else if (header_valued(name) || (k->o->list_values && header_list(name))) {
		hdr_generic(k, prefix, v, len);
	}
}

/* Walks the raw header block; unfolds continuation lines. */
static void
tk_headers(struct tk *k, const unsigned char *data, size_t len)
{
	const char *p = (const char *)data, *end = p + len;
	struct buf value = BUF_INIT;
	char name[HDR_NAME_MAX + 1];
	unsigned fields = 0;
	while (p < end && fields < HDR_FIELDS_MAX) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		if (le == p || (le - p == 1 && p[0] == '\r'))
			break;                                  /* the blank line */
		const char *colon = memchr(p, ':', (size_t)(le - p));
		size_t nlen = colon != NULL ? (size_t)(colon - p) : 0;
		int ok = colon != NULL && nlen > 0 && nlen <= HDR_NAME_MAX && !isspace((unsigned char)p[0]);
		for (size_t i = 0; ok && i < nlen; i++)
			if (p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
				ok = 0;
		buf_reset(&value);
		if (ok) {
			for (size_t i = 0; i < nlen; i++)
				name[i] = (char)tolower((unsigned char)p[i]);
			name[nlen] = '\0';
			buf_append(&value, colon + 1, (size_t)(le - colon - 1));
		}
		p = nl != NULL ? nl + 1 : end;
		while (p < end && (*p == ' ' || *p == '\t')) {       /* continuation */
			nl = memchr(p, '\n', (size_t)(end - p));
			le = nl != NULL ? nl : end;
			if (ok && value.len < HDR_VALUE_MAX)
				buf_append(&value, p, (size_t)(le - p));
			p = nl != NULL ? nl + 1 : end;
		}
		if (!ok)
			continue;
		fields++;
		hdr_field(k, name, value.data != NULL ? value.data : "",
		    value.len < HDR_VALUE_MAX ? value.len : HDR_VALUE_MAX);
	}
	buf_free(&value);
	char hops[16];
	int n = snprintf(hops, sizeof(hops), "%u", k->received < 12 ? k->received : 12);
	tk_add(k, "rcv:hops:", hops, (size_t)n);
}

/* ---- MIME tree ------------------------------------------------------- */

static void tk_object(struct tk *k, GMimeObject *o, int depth);

static void
tk_part(struct tk *k, GMimePart *part)
{
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
	const char *type = ct != NULL ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *sub = ct != NULL ? g_mime_content_type_get_media_subtype(ct) : NULL;
	char ctype[80];
	snprintf(ctype, sizeof(ctype), "%s/%s", type != NULL ? type : "?", sub != NULL ? sub : "?");
	tk_add_str(k, "part:", ctype);
	const char *fname = g_mime_part_get_filename(part);
	if (fname != NULL) {
		const char *dot = strrchr(fname, '.');
		tk_add_str(k, "ext:", dot != NULL && strlen(dot) < 12 ? dot + 1 : "none");
	}
	if (!GMIME_IS_TEXT_PART(part) || type == NULL || g_ascii_strcasecmp(type, "text") != 0)
		return;
	const char *cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
	if (cs != NULL && strlen(cs) < 32)
		tk_add_str(k, "charset:", cs);
	char *text = g_mime_text_part_get_text(GMIME_TEXT_PART(part));
	if (text == NULL)
		return;
	size_t len = strlen(text);
	if (sub != NULL && g_ascii_strcasecmp(sub, "html") == 0) {
		k->t->feat.html_parts++;
		struct buf out = BUF_INIT;
		html_reduce(k, text, len < SPAM_TEXT_MAX ? len : SPAM_TEXT_MAX, &out);
		size_t visible = 0;
		for (size_t i = 0; i < out.len; i++)
			if (!isspace((unsigned char)out.data[i]))
				visible++;
		k->t->feat.html_text_len += visible;
		tk_text(k, out.data != NULL ? out.data : "", out.len);
		buf_free(&out);
	} else {
		k->t->feat.text_parts++;
		k->t->feat.text_len += len;
		tk_text(k, text, len);
	}
	g_free(text);
}

static void
tk_object(struct tk *k, GMimeObject *o, int depth)
{
	if (o == NULL || depth > SPAM_PART_DEPTH)
		return;
	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n && i < 64; i++)
			tk_object(k, g_mime_multipart_get_part(mp, i), depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		if (inner != NULL)
			tk_object(k, g_mime_message_get_mime_part(inner), depth + 1);
	} else if (GMIME_IS_PART(o)) {
		tk_part(k, GMIME_PART(o));
	}
}

static void
copy_cut(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void
tk_message(struct tk *k, GMimeMessage *mime)
{
	struct spam_features *f = &k->t->feat;
	const char *subject = g_mime_message_get_subject(mime);
	if (subject != NULL) {
		copy_cut(f->subject, sizeof(f->subject), subject);
		tk_words(k, "subject:", subject, strlen(subject));
		k->subject_done = 1;
	}
	InternetAddressList *l = g_mime_message_get_from(mime);
	if (l != NULL && internet_address_list_length(l) > 0) {
		InternetAddress *a = internet_address_list_get_address(l, 0);
		const char *name = internet_address_get_name(a);
		if (name != NULL) {
			copy_cut(f->from_name, sizeof(f->from_name), name);
			tk_words(k, "fromname:", name, strlen(name));
		}
		if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
			const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
			if (addr != NULL)
				copy_cut(f->from_addr, sizeof(f->from_addr), addr);
		}
	}
	tk_object(k, g_mime_message_get_mime_part(mime), 0);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

const struct spam_tokens_opts spam_tokens_defaults = {
	.bigrams = 1,
	.html_tags = 1,
	.url_paths = 1,
	.list_values = 0,
};

void
spam_tokenize(GMimeMessage *mime, const unsigned char *data, size_t len, struct spam_tokens *t)
{
	spam_tokenize_opts(mime, data, len, &spam_tokens_defaults, t);
}

void
spam_tokenize_opts(GMimeMessage *mime, const unsigned char *data, size_t len,
    const struct spam_tokens_opts *o, struct spam_tokens *t)
{
	memset(t, 0, sizeof(*t));
	struct tk k = { .o = o, .t = t };
	GMimeMessage *own = NULL;
	if (mime == NULL && len > 0 && archive_parse_init() == 0)
		mime = own = archive_parse_message(data, len);
	if (mime != NULL)
		tk_message(&k, mime);
	k.in_headers = 1;
	tk_headers(&k, data, len);
	if (own != NULL)
		g_object_unref(own);
	if (t->n > 1)
		qsort(t->h, t->n, sizeof(t->h[0]), cmp_u64);
	size_t u = 0;
	for (size_t i = 0; i < t->n; i++)
		if (u == 0 || t->h[u - 1] != t->h[i])
			t->h[u++] = t->h[i];
	t->n = u < SPAM_TOKENS_MAX ? u : SPAM_TOKENS_MAX;
}

void
spam_tokens_free(struct spam_tokens *t)
{
	free(t->h);
	memset(t, 0, sizeof(*t));
}
