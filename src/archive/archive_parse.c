/*
 * archive_parse — message → struct archive_doc with GMime, and journal
 * report unwrapping (see archive_parse.h).
 *
 * Parsing: GMime builds the MIME tree from a copy of the bytes with every
 * compliance mode set to "loose"; we read the headers GMime decoded and walk
 * the tree ourselves (depth-capped) collecting body text and attachment names.
 * Text is converted to UTF-8 with iconv (unknown charsets and undeclared 8-bit
 * text fall back to Latin-1) and then cleaned: invalid sequences become
 * U+FFFD, NUL and control characters go, so every string is valid UTF-8.
 *
 * Journal reports: the bytes of the attached original must come out exactly
 * as they went in, so the report's top-level multipart is split by hand on
 * its boundary lines (RFC 2046: the line break before a delimiter belongs to
 * the delimiter); GMime only decodes the envelope part and parses the
 * Content-Type parameters.
 */
#include "archive/archive_parse.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "archive/archive_html.h"
#include "lib/buf.h"
#include "lib/mem.h"

/* Attachment names kept per message (bytes). */
#define PARSE_NAMES_MAX (64 * 1024)
/* Header fields kept (bytes): a 200 KB To: line is an attack, not a recipient list. */
#define PARSE_FIELD_MAX (64 * 1024)
/* HTML bytes reduced per part (the text is much shorter). */
#define PARSE_HTML_MAX (8 * ARCHIVE_BODY_MAX)
/* Parts and recipients a journal report may have. */
#define JR_PARTS_MAX 1000
#define JR_RCPTS_MAX 10000

static pthread_once_t parse_once = PTHREAD_ONCE_INIT;

static void
parse_do_init(void)
{
	g_mime_init();
}

int
archive_parse_init(void)
{
	return pthread_once(&parse_once, parse_do_init) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ UTF-8 text */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t
parse_utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/*
 * Appends s as valid UTF-8: invalid bytes become U+FFFD, NUL and control
 * characters a blank (oneline) or, in body text, CR is dropped and only
 * line feed and tab survive.
 */
static void
parse_clean_append(struct buf *out, const char *s, size_t len, int oneline)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t run = 0, i = 0;

	buf_reserve(out, len);
	while (i < len) {
		unsigned char c = u[i];
		size_t n = c >= 0x20 && c < 0x7f ? 1 : parse_utf8_seq(u + i, len - i);
		if (n > 0 && (c >= 0x20 && c != 0x7f)) {
			i += n;
			continue;
		}
		buf_append(out, s + run, i - run);
		if (n == 0)
			buf_append(out, "\xef\xbf\xbd", 3);
		else if (!oneline && (c == '\n' || c == '\t'))
			buf_append_char(out, (char)c);
		else if (oneline || c != '\r')
			buf_append_char(out, ' ');
		i++;
		run = i;
	}
	buf_append(out, s + run, len - run);
}

static void parse_cut_utf8(struct buf *b, size_t max);

/* A clean one-line copy of a header value (capped), or NULL when empty. */
static char *
parse_clean_dup(const char *s, int oneline)
{
	struct buf b = BUF_INIT;
	if (s == NULL)
		return NULL;
	size_t n = strlen(s);
	parse_clean_append(&b, s, n < PARSE_FIELD_MAX ? n : PARSE_FIELD_MAX, oneline);
	parse_cut_utf8(&b, PARSE_FIELD_MAX);
	if (b.len == 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static void
parse_latin1_append(struct buf *out, const char *s, size_t len, int oneline)
{
	struct buf tmp = BUF_INIT;
	buf_reserve(&tmp, len * 2);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			buf_append_char(&tmp, (char)c);
		} else {
			buf_append_char(&tmp, (char)(0xc0 | (c >> 6)));
			buf_append_char(&tmp, (char)(0x80 | (c & 0x3f)));
		}
	}
	parse_clean_append(out, tmp.data, tmp.len, oneline);
	buf_free(&tmp);
}

/* iconv into tmp; invalid input becomes U+FFFD.  -1 when the charset is unknown. */
static int
parse_iconv(struct buf *tmp, const char *charset, const char *s, size_t len)
{
	const char *name = g_mime_charset_iconv_name(charset);
	iconv_t cd = iconv_open("UTF-8", name != NULL ? name : charset);
	char obuf[4096];
	char *in = (char *)s;
	size_t inleft = len;

	if (cd == (iconv_t)-1)
		return -1;
	while (inleft > 0) {
		char *op = obuf;
		size_t oleft = sizeof(obuf);
		size_t r = iconv(cd, &in, &inleft, &op, &oleft);
		int e = errno;
		buf_append(tmp, obuf, (size_t)(op - obuf));
		if (r != (size_t)-1 || e == E2BIG)
			continue;
		buf_append(tmp, "\xef\xbf\xbd", 3);
		if (e != EILSEQ)
			break;   /* EINVAL: truncated sequence at the end */
		in++;
		inleft--;
	}
	char *op = obuf;
	size_t oleft = sizeof(obuf);
	if (iconv(cd, NULL, NULL, &op, &oleft) != (size_t)-1)
		buf_append(tmp, obuf, (size_t)(op - obuf));
	iconv_close(cd);
	return 0;
}

static int
parse_charset_is(const char *cs, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(cs, names[i]) == 0)
			return 1;
	return 0;
}

/* Appends text in the given charset (NULL = undeclared) as clean UTF-8. */
static void
parse_text_append(struct buf *out, const char *charset, const char *s, size_t len, int oneline)
{
	static const char *const utf8[] = { "utf-8", "utf8" };
	static const char *const ascii[] = { "us-ascii", "ascii", "ansi_x3.4-1968", "" };
	const char *cs = charset != NULL ? charset : "";

	if (parse_charset_is(cs, utf8, 2) ||
	    (parse_charset_is(cs, ascii, 4) && g_utf8_validate(s, (gssize)len, NULL))) {
		parse_clean_append(out, s, len, oneline);
		return;
	}
	if (parse_charset_is(cs, ascii, 4)) {
		parse_latin1_append(out, s, len, oneline);
		return;
	}
	struct buf tmp = BUF_INIT;
	/* GMime copies the name onto the stack (alloca): no real charset is long */
	if (strlen(cs) <= 64 && parse_iconv(&tmp, cs, s, len) == 0)
		parse_clean_append(out, tmp.data != NULL ? tmp.data : "", tmp.len, oneline);
	else if (g_utf8_validate(s, (gssize)len, NULL))
		parse_clean_append(out, s, len, oneline);
	else
		parse_latin1_append(out, s, len, oneline);
	buf_free(&tmp);
}

/* Cuts b to at most max bytes without splitting a character. */
static void
parse_cut_utf8(struct buf *b, size_t max)
{
	if (b->len <= max)
		return;
	size_t n = max;
	while (n > 0 && ((unsigned char)b->data[n] & 0xc0) == 0x80)
		n--;
	buf_truncate(b, n);
}

/* ------------------------------------------------------------ MIME walk */

struct parse_ctx {
	struct buf body;
	struct buf names;
	int has_attachment;
	GMimeParserOptions *opts;
};

static char *parse_text_header(GMimeObject *obj, const char *name, GMimeParserOptions *opts);

static const char *
parse_filename(GMimeObject *obj)
{
	const char *fn;
	if (GMIME_IS_PART(obj))
		return g_mime_part_get_filename(GMIME_PART(obj));
	fn = g_mime_object_get_content_disposition_parameter(obj, "filename");
	return fn != NULL ? fn : g_mime_object_get_content_type_parameter(obj, "name");
}

static int
parse_is_attachment(GMimeObject *obj)
{
	const char *fn = parse_filename(obj);
	const char *disp = g_mime_object_get_disposition(obj);
	return (fn != NULL && *fn != '\0') || (disp != NULL && strcasecmp(disp, "attachment") == 0);
}

/* Text attachments sent as application/octet-stream & co. */
static int
parse_text_extension(const char *fn)
{
	static const char *const ext[] = { ".txt", ".csv", ".log", ".md" };
	size_t n = fn != NULL ? strlen(fn) : 0;
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t e = strlen(ext[i]);
		if (n > e && strcasecmp(fn + n - e, ext[i]) == 0)
			return 1;
	}
	return 0;
}

static void
parse_note_attachment(struct parse_ctx *c, GMimeObject *obj)
{
	const char *fn = parse_filename(obj);
	if (!parse_is_attachment(obj))
		return;
	c->has_attachment = 1;
	if (fn == NULL || *fn == '\0' || c->names.len >= PARSE_NAMES_MAX)
		return;
	/* oneline cleaning turns any '\n' in the name into a blank */
	parse_clean_append(&c->names, fn, strlen(fn), 1);
	buf_append_char(&c->names, '\n');
}

/* The decoded (transfer encoding undone) content of a leaf part. */
static GByteArray *
parse_part_bytes(GMimePart *part, GMimeStream **stream_r)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	*stream_r = NULL;
	if (w == NULL)
		return NULL;
	GMimeStream *ms = g_mime_stream_mem_new();
	(void)g_mime_data_wrapper_write_to_stream(w, ms);   /* partial output is still text */
	*stream_r = ms;
	return g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(ms));
}

/* Appends a leaf part's text (plain, other text types, reduced HTML, .txt attachments). */
static void
parse_part_text(struct parse_ctx *c, GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	int named = parse_is_attachment(obj);
	int html = ct != NULL && g_mime_content_type_is_type(ct, "text", "html");
	int text = ct == NULL || g_mime_content_type_is_type(ct, "text", "*");

	if ((html && named) || c->body.len >= ARCHIVE_BODY_MAX)
		return;
	if (!text && !(named && parse_text_extension(parse_filename(obj))))
		return;
	GMimeStream *ms;
	GByteArray *ba = parse_part_bytes(GMIME_PART(obj), &ms);
	if (ba == NULL || ba->len == 0) {
		if (ms != NULL)
			g_object_unref(ms);
		return;
	}
	const char *charset = g_mime_object_get_content_type_parameter(obj, "charset");
	size_t cap = html ? PARSE_HTML_MAX : ARCHIVE_BODY_MAX - c->body.len + 8;
	size_t n = ba->len < cap ? ba->len : cap;
	if (c->body.len > 0 && c->body.data[c->body.len - 1] != '\n')
		buf_append_char(&c->body, '\n');
	if (html) {
		struct buf tmp = BUF_INIT;
		parse_text_append(&tmp, charset, (const char *)ba->data, n, 0);
		char *t = archive_html_to_text(tmp.data != NULL ? tmp.data : "", tmp.len);
		parse_clean_append(&c->body, t, strlen(t), 0);
		free(t);
		buf_free(&tmp);
	} else {
		parse_text_append(&c->body, charset, (const char *)ba->data, n, 0);
	}
	g_object_unref(ms);
}

static void parse_walk(struct parse_ctx *c, GMimeObject *obj, int depth, int want_body);

static void
parse_walk_multipart(struct parse_ctx *c, GMimeMultipart *mp, int depth, int want_body)
{
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(mp));
	int n = g_mime_multipart_get_count(mp);
	int pick = -1;

	/* alternative: the plain part when there is one, else everything (HTML reduced) */
	if (want_body && ct != NULL && g_mime_content_type_is_type(ct, "multipart", "alternative")) {
		for (int i = 0; i < n && pick < 0; i++) {
			GMimeObject *ch = g_mime_multipart_get_part(mp, i);
			GMimeContentType *cct = ch != NULL ? g_mime_object_get_content_type(ch) : NULL;
			if (GMIME_IS_PART(ch) && cct != NULL &&
			    g_mime_content_type_is_type(cct, "text", "plain") && !parse_is_attachment(ch))
				pick = i;
		}
	}
	for (int i = 0; i < n; i++)
		parse_walk(c, g_mime_multipart_get_part(mp, i), depth + 1,
		    want_body && (pick < 0 || i == pick));
}

static void
parse_walk_message(struct parse_ctx *c, GMimeMessagePart *mp, int depth, int want_body)
{
	GMimeMessage *msg = g_mime_message_part_get_message(mp);
	if (msg == NULL)
		return;
	char *subject = want_body ? parse_text_header(GMIME_OBJECT(msg), "Subject", c->opts) : NULL;
	if (subject != NULL && c->body.len < ARCHIVE_BODY_MAX) {
		if (c->body.len > 0 && c->body.data[c->body.len - 1] != '\n')
			buf_append_char(&c->body, '\n');
		buf_append_str(&c->body, subject);
		buf_append_char(&c->body, '\n');
	}
	free(subject);
	parse_walk(c, g_mime_message_get_mime_part(msg), depth + 1, want_body);
}

static void
parse_walk(struct parse_ctx *c, GMimeObject *obj, int depth, int want_body)
{
	if (obj == NULL || depth > ARCHIVE_PARSE_MAX_DEPTH)
		return;
	parse_note_attachment(c, obj);
	if (GMIME_IS_MESSAGE_PART(obj))
		parse_walk_message(c, GMIME_MESSAGE_PART(obj), depth, want_body);
	else if (GMIME_IS_MULTIPART(obj))
		parse_walk_multipart(c, GMIME_MULTIPART(obj), depth, want_body);
	else if (GMIME_IS_PART(obj) && want_body)
		parse_part_text(c, obj);
}

/* ------------------------------------------------------------ headers */

/*
 * GMime 3.2.13 decodes adjacent base64 encoded-words of one charset by
 * running its base64 decoder over their concatenated text, which stops at
 * the first word's '=' padding ("=?UTF-8?B?SGVsbG8=?= =?UTF-8?B?IHdvcmxk?="
 * comes out as "Hello"; GMime issue #133).  Such runs are common in long
 * non-ASCII subjects and names, so before GMime decodes a header we merge
 * every run into one word whose bytes are the words' decoded bytes.
 */
struct parse_word {
	size_t cs, cs_len;      /* charset */
	char enc;               /* 'B' or 'Q' */
	size_t text, text_len;  /* encoded text */
	size_t end;             /* just past "?=" */
};

/* An encoded word at s[i] ("=?cs?e?text?="); 1 found, 0 not. */
static int
parse_word_at(const char *s, size_t n, size_t i, struct parse_word *w)
{
	size_t p = i + 2;
	if (i + 2 > n || s[i] != '=' || s[i + 1] != '?')
		return 0;
	w->cs = p;
	while (p < n && s[p] != '?' && s[p] != ' ' && s[p] != '\t' && p - w->cs < 64)
		p++;
	if (p + 3 > n || s[p] != '?' || p == w->cs || s[p + 2] != '?')
		return 0;
	w->cs_len = p - w->cs;
	w->enc = (char)(s[p + 1] & ~0x20);
	if (w->enc != 'B' && w->enc != 'Q')
		return 0;
	w->text = p + 3;
	const char *q = memmem(s + w->text, n - w->text, "?=", 2);
	if (q == NULL)
		return 0;
	w->text_len = (size_t)(q - s) - w->text;
	w->end = (size_t)(q - s) + 2;
	return memchr(s + w->text, ' ', w->text_len) == NULL;
}

static void
parse_b64_append(struct buf *b, const char *s, size_t n)
{
	gint state = 0;
	guint save = 0;
	buf_reserve(b, n);
	b->len += g_base64_decode_step(s, n, (guchar *)b->data + b->len, &state, &save);
}

/* Merges each run of adjacent same-charset base64 words of s into one word. */
static char *
parse_fix_2047(const char *s)
{
	size_t n = strlen(s), i = 0;
	struct buf out = BUF_INIT;
	struct parse_word w, w2;

	while (i < n) {
		if (!parse_word_at(s, n, i, &w) || w.enc != 'B') {
			buf_append_char(&out, s[i++]);
			continue;
		}
		struct buf bytes = BUF_INIT;
		size_t j = w.end, words = 1;
		parse_b64_append(&bytes, s + w.text, w.text_len);
		for (;;) {
			size_t k = j;
			while (k < n && (s[k] == ' ' || s[k] == '\t'))
				k++;
			if (!parse_word_at(s, n, k, &w2) || w2.enc != 'B' || w2.cs_len != w.cs_len ||
			    strncasecmp(s + w.cs, s + w2.cs, w.cs_len) != 0)
				break;
			parse_b64_append(&bytes, s + w2.text, w2.text_len);
			j = w2.end;
			words++;
		}
		if (words == 1) {
			buf_append(&out, s + i, w.end - i);
		} else {
			gchar *b64 = g_base64_encode((const guchar *)(bytes.data != NULL ? bytes.data : ""),
			    bytes.len);
			buf_append(&out, "=?", 2);
			buf_append(&out, s + w.cs, w.cs_len);
			buf_appendf(&out, "?B?%s?=", b64);
			g_free(b64);
		}
		buf_free(&bytes);
		i = j;
	}
	return buf_steal(&out);
}

/*
 * The raw value of header `name` of obj (all occurrences joined with ", "
 * when `all`, else the first), unfolded and with base64 runs merged; NULL
 * when absent.  Caller frees.
 */
static char *
parse_raw_header(GMimeObject *obj, const char *name, int all)
{
	GMimeHeaderList *list = g_mime_object_get_header_list(obj);
	int n = list != NULL ? g_mime_header_list_get_count(list) : 0;
	struct buf b = BUF_INIT;
	int found = 0;

	for (int i = 0; i < n && (all || !found); i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
		const char *hn = h != NULL ? g_mime_header_get_name(h) : NULL;
		const char *raw = h != NULL ? g_mime_header_get_raw_value(h) : NULL;
		if (hn == NULL || raw == NULL || strcasecmp(hn, name) != 0)
			continue;
		if (found++)
			buf_append(&b, ", ", 2);
		for (const char *p = raw; *p != '\0' && b.len < PARSE_FIELD_MAX; p++)
			if (*p != '\r' && *p != '\n')
				buf_append_char(&b, *p);
	}
	if (!found)
		return NULL;
	char *fixed = parse_fix_2047(buf_cstr(&b));
	buf_free(&b);
	return fixed;
}

/* A decoded unstructured header (Subject), clean UTF-8, or NULL. */
static char *
parse_text_header(GMimeObject *obj, const char *name, GMimeParserOptions *opts)
{
	char *raw = parse_raw_header(obj, name, 0);
	if (raw == NULL)
		return NULL;
	char *dec = g_mime_utils_header_decode_text(opts, g_strstrip(raw));
	char *r = parse_clean_dup(dec, 1);
	g_free(dec);
	free(raw);
	return r;
}

/* An address header re-parsed from its fixed raw value, or GMime's own list. */
static InternetAddressList *
parse_addr_header(GMimeMessage *msg, const char *name, GMimeAddressType type,
    GMimeParserOptions *opts)
{
	char *raw = parse_raw_header(GMIME_OBJECT(msg), name, 1);
	InternetAddressList *l = raw != NULL ? internet_address_list_parse(opts, raw) : NULL;
	free(raw);
	if (l == NULL) {
		l = g_mime_message_get_addresses(msg, type);
		if (l != NULL)
			g_object_ref(l);
	}
	return l;
}

static char *
parse_addr_text(InternetAddressList *l)
{
	if (l == NULL || internet_address_list_length(l) == 0)
		return NULL;
	char *s = internet_address_list_to_string(l, NULL, FALSE);
	char *r = parse_clean_dup(s, 1);
	g_free(s);
	return r;
}

static const char *
parse_first_addr(InternetAddressList *l, int depth)
{
	int n = l != NULL && depth < 4 ? internet_address_list_length(l) : 0;
	for (int i = 0; i < n; i++) {
		InternetAddress *a = internet_address_list_get_address(l, i);
		const char *s = NULL;
		if (INTERNET_ADDRESS_IS_MAILBOX(a))
			s = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
		else if (INTERNET_ADDRESS_IS_GROUP(a))
			s = parse_first_addr(internet_address_group_get_members(
			    INTERNET_ADDRESS_GROUP(a)), depth + 1);
		if (s != NULL && *s != '\0')
			return s;
	}
	return NULL;
}

static char *
parse_lower_dup(const char *s)
{
	char *clean = parse_clean_dup(s, 1);
	if (clean == NULL)
		return NULL;
	gchar *low = g_utf8_strdown(clean, -1);
	free(clean);
	char *r = parse_clean_dup(low, 1);
	g_free(low);
	return r;
}

static char *
parse_addr_field(GMimeMessage *msg, const char *name, GMimeAddressType type,
    GMimeParserOptions *opts, char **first_r)
{
	InternetAddressList *l = parse_addr_header(msg, name, type, opts);
	char *r = parse_addr_text(l);
	if (first_r != NULL)
		*first_r = parse_lower_dup(parse_first_addr(l, 0));
	if (l != NULL)
		g_object_unref(l);
	return r;
}

static void
parse_headers(struct archive_doc *doc, GMimeMessage *msg, GMimeParserOptions *opts)
{
	GDateTime *date = g_mime_message_get_date(msg);

	doc->message_id = parse_clean_dup(g_mime_message_get_message_id(msg), 1);
	doc->subject = parse_text_header(GMIME_OBJECT(msg), "Subject", opts);
	doc->from = parse_addr_field(msg, "From", GMIME_ADDRESS_TYPE_FROM, opts, &doc->from_addr);
	doc->to = parse_addr_field(msg, "To", GMIME_ADDRESS_TYPE_TO, opts, NULL);
	doc->cc = parse_addr_field(msg, "Cc", GMIME_ADDRESS_TYPE_CC, opts, NULL);
	doc->bcc = parse_addr_field(msg, "Bcc", GMIME_ADDRESS_TYPE_BCC, opts, NULL);
	doc->date = date != NULL ? (time_t)g_date_time_to_unix(date) : 0;
}

static GMimeParserOptions *
parse_options(void)
{
	static const char *fallback[] = { "UTF-8", "ISO-8859-1", NULL };
	GMimeParserOptions *o = g_mime_parser_options_new();
	g_mime_parser_options_set_address_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_rfc2047_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_allow_addresses_without_domain(o, TRUE);
	g_mime_parser_options_set_fallback_charsets(o, fallback);
	return o;
}

/*
 * What comes before the first header: an mbox "From " separator line, and
 * lines of blanks only (Python's parser reads those as a continuation of
 * nothing; GMime would take the whole message for a body).
 */
static void
parse_skip_mbox_line(const char **s, size_t *len)
{
	if (*len > 5 && memcmp(*s, "From ", 5) == 0) {
		const char *nl = memchr(*s, '\n', *len);
		size_t skip = nl != NULL ? (size_t)(nl - *s) + 1 : *len;
		*s += skip;
		*len -= skip;
	}
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		size_t i = 0;
		while (i < *len && ((*s)[i] == ' ' || (*s)[i] == '\t' || (*s)[i] == '\r'))
			i++;
		if (i >= *len || (*s)[i] != '\n')
			break;
		*s += i + 1;
		*len -= i + 1;
	}
}

/* True when none of the n bytes at s (or fewer, at the end) is in `stop`. */
static int
parse_none_of(const char *s, size_t n, const char *stop)
{
	for (size_t i = 0; i < n; i++)
		if (strchr(stop, s[i]) != NULL)
			return 0;
	return 1;
}

/*
 * GMime 3.2 copies charset names onto the stack (g_alloca) without a
 * limit: an encoded word "=?<20 MB>?Q?x?=" or an RFC 2231 value
 * "name*=<20 MB>''x" overflows the stack and takes the process down.  In
 * our private copy, such an "=?" becomes "=_" and such a "*=" becomes "_="
 * (no real charset is longer than 64 bytes), so GMime reads them as text.
 */
static void
parse_defuse(char *s, size_t len)
{
	const size_t lim = 64;
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i + 1] != '=' && !(s[i] == '=' && s[i + 1] == '?'))
			continue;
		size_t rest = len - i - 2, n = rest < lim ? rest : lim;
		if (s[i] == '=' && s[i + 1] == '?' && rest >= lim && parse_none_of(s + i + 2, n, "?"))
			s[i + 1] = '_';
		else if (s[i] == '*' && s[i + 1] == '=' && rest >= lim &&
		    parse_none_of(s + i + 2, n, "';"))
			s[i] = '_';
	}
}

static GMimeObject *
parse_construct(const char *s, size_t len, GMimeParserOptions *opts, int message)
{
	if (len > G_MAXUINT)
		len = G_MAXUINT;    /* a GByteArray holds 4 GiB; no mail gets here */
	GByteArray *copy = g_byte_array_sized_new((guint)len);
	g_byte_array_append(copy, (const guint8 *)s, (guint)len);
	parse_defuse((char *)copy->data, copy->len);
	GMimeStream *st = g_mime_stream_mem_new_with_byte_array(copy);   /* owns copy */
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeObject *obj;
	g_mime_parser_set_format(p, GMIME_FORMAT_MESSAGE);
	g_mime_parser_set_respect_content_length(p, FALSE);
	if (message)
		obj = (GMimeObject *)g_mime_parser_construct_message(p, opts);
	else
		obj = g_mime_parser_construct_part(p, opts);
	g_object_unref(p);
	g_object_unref(st);
	return obj;
}

GMimeMessage *
archive_parse_message(const void *raw, size_t len)
{
	if (raw == NULL || len == 0 || archive_parse_init() < 0)
		return NULL;
	GMimeParserOptions *opts = parse_options();
	GMimeObject *obj = parse_construct(raw, len, opts, 1);
	g_mime_parser_options_free(opts);
	if (obj != NULL && !GMIME_IS_MESSAGE(obj)) {
		g_object_unref(obj);
		obj = NULL;
	}
	return obj != NULL ? GMIME_MESSAGE(obj) : NULL;
}

int
archive_parse(const void *raw, size_t len, struct archive_doc *doc, char **err_r)
{
	const char *s = raw;
	struct parse_ctx c = { BUF_INIT, BUF_INIT, 0, NULL };

	memset(doc, 0, sizeof(*doc));
	if (raw == NULL || len == 0) {
		*err_r = xstrdup("empty message");
		return -1;
	}
	if (archive_parse_init() < 0) {
		*err_r = xstrdup("cannot initialise GMime");
		return -1;
	}
	parse_skip_mbox_line(&s, &len);
	GMimeParserOptions *opts = parse_options();
	GMimeObject *obj = len > 0 ? parse_construct(s, len, opts, 1) : NULL;
	c.opts = opts;
	if (obj != NULL && GMIME_IS_MESSAGE(obj)) {
		GMimeMessage *msg = GMIME_MESSAGE(obj);
		parse_headers(doc, msg, opts);
		parse_walk(&c, g_mime_message_get_mime_part(msg), 0, 1);
	} else {
		/* no structure at all: index what is there as text */
		parse_text_append(&c.body, NULL, s, len < ARCHIVE_BODY_MAX ? len : ARCHIVE_BODY_MAX, 0);
	}
	if (obj != NULL)
		g_object_unref(obj);
	g_mime_parser_options_free(opts);
	parse_cut_utf8(&c.body, ARCHIVE_BODY_MAX);
	doc->body = buf_steal(&c.body);
	if (c.names.len > 0) {
		buf_truncate(&c.names, c.names.len - 1);   /* the last '\n' */
		doc->filenames = buf_steal(&c.names);
	}
	buf_free(&c.names);
	doc->has_attachment = c.has_attachment;
	return 0;
}

void
archive_doc_free(struct archive_doc *doc)
{
	if (doc == NULL)
		return;
	xfree(&doc->message_id);
	xfree(&doc->from);
	xfree(&doc->from_addr);
	xfree(&doc->to);
	xfree(&doc->cc);
	xfree(&doc->bcc);
	xfree(&doc->subject);
	xfree(&doc->body);
	xfree(&doc->filenames);
	doc->date = 0;
	doc->has_attachment = 0;
}

/* ------------------------------------------------------------ journal reports */

struct jr_part {
	size_t start, end;    /* the part: its headers and body */
};

/* Offset of the body of the entity s[0..len) (after the blank line; len if none). */
static size_t
jr_body_start(const char *s, size_t len)
{
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(s + pos, '\n', len - pos);
		size_t eol = nl != NULL ? (size_t)(nl - s) : len;
		size_t n = eol - pos;
		if (n == 0 || (n == 1 && s[pos] == '\r'))
			return nl != NULL ? eol + 1 : len;
		pos = nl != NULL ? eol + 1 : len;
	}
	return len;
}

/* The unfolded value of header `name` in the header block s[0..hlen); 1 found, 0 not. */
static int
jr_header(const char *s, size_t hlen, const char *name, struct buf *v)
{
	size_t nlen = strlen(name), pos = 0;
	int in = 0;

	buf_reset(v);
	while (pos < hlen) {
		const char *nl = memchr(s + pos, '\n', hlen - pos);
		size_t eol = nl != NULL ? (size_t)(nl - s) : hlen;
		size_t end = eol > pos && s[eol - 1] == '\r' ? eol - 1 : eol;
		if (in && end > pos && (s[pos] == ' ' || s[pos] == '\t')) {
			buf_append(v, s + pos, end - pos);
		} else if (in) {
			break;
		} else if (end - pos > nlen && strncasecmp(s + pos, name, nlen) == 0 &&
		    s[pos + nlen] == ':') {
			in = 1;
			buf_append(v, s + pos + nlen + 1, end - pos - nlen - 1);
		}
		pos = eol + 1;
	}
	buf_cstr(v);
	return in;
}

static int
jr_is_delimiter(const char *line, size_t n, const char *bnd, size_t blen, int *closing_r)
{
	if (n < 2 + blen || line[0] != '-' || line[1] != '-' || memcmp(line + 2, bnd, blen) != 0)
		return 0;
	size_t i = 2 + blen;
	*closing_r = n - i >= 2 && line[i] == '-' && line[i + 1] == '-';
	if (*closing_r)
		i += 2;
	for (; i < n; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return 0;
	return 1;
}

/* Splits the multipart body starting at `pos` into parts; returns how many. */
static size_t
jr_split(const char *s, size_t len, size_t pos, const char *bnd, struct jr_part *parts)
{
	size_t blen = strlen(bnd), n = 0, start = 0;
	int in = 0, closing = 0;

	while (pos < len && n < JR_PARTS_MAX) {
		const char *nl = memchr(s + pos, '\n', len - pos);
		size_t eol = nl != NULL ? (size_t)(nl - s) : len;
		size_t next = nl != NULL ? eol + 1 : len;
		if (jr_is_delimiter(s + pos, eol - pos, bnd, blen, &closing)) {
			if (in) {
				size_t end = pos;
				if (end > start && s[end - 1] == '\n')
					end--;
				if (end > start && s[end - 1] == '\r')
					end--;
				parts[n].start = start;
				parts[n++].end = end;
			}
			in = !closing;
			start = next;
			if (closing)
				return n;
		}
		pos = next;
	}
	if (in && n < JR_PARTS_MAX) {      /* no closing delimiter: the part runs to the end */
		parts[n].start = start;
		parts[n++].end = len;
	}
	return n;
}

/* The lower-cased media type of a part ("text/plain" when absent). */
static void
jr_part_type(const char *s, const struct jr_part *p, struct buf *type)
{
	size_t hlen = jr_body_start(s + p->start, p->end - p->start);
	struct buf v = BUF_INIT;
	buf_reset(type);
	if (!jr_header(s + p->start, hlen, "Content-Type", &v)) {
		buf_append_str(type, "text/plain");
	} else {
		for (size_t i = 0; i < v.len && v.data[i] != ';'; i++) {
			char ch = v.data[i];
			if (ch != ' ' && ch != '\t')
				buf_append_char(type, (char)(ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch));
		}
	}
	buf_cstr(type);
	buf_free(&v);
}

struct jr_addrs {
	char **v;
	size_t n;
};

static int
jr_local_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c >= 0x80 || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

static int
jr_domain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c >= 0x80 || c == '-' || c == '.';
}

static void
jr_add(struct jr_addrs *a, const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	parse_clean_append(&b, s, n, 1);
	char *addr = buf_steal(&b);
	for (char *p = addr; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p | 0x20);
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->v[i], addr) == 0) {
			free(addr);
			return;
		}
	}
	if (a->n >= JR_RCPTS_MAX) {
		free(addr);
		return;
	}
	a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
	a->v[a->n++] = addr;
}

/* Adds every address-looking token (local@domain) of s[0..n). */
static void
jr_scan_addrs(struct jr_addrs *a, const char *s, size_t n, int first_only)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '@')
			continue;
		size_t l = i, r = i + 1;
		while (l > 0 && jr_local_char((unsigned char)s[l - 1]))
			l--;
		while (l < i && s[l] == '.')
			l++;
		while (r < n && jr_domain_char((unsigned char)s[r]))
			r++;
		while (r > i + 1 && s[r - 1] == '.')
			r--;
		if (l < i && r > i + 1 && s[i + 1] != '.') {
			jr_add(a, s + l, r - l);
			if (first_only)
				return;
		}
		i = r > i ? r - 1 : i;
	}
}

/* Reads "Sender:", "To:", "Cc:", "Bcc:", "Recipient:" lines of the envelope text. */
static void
jr_envelope(const char *text, char **sender_r, struct jr_addrs *rcpts)
{
	static const char *const keys[] = { "to", "cc", "bcc", "recipient" };
	const char *p = text;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		const char *colon = memchr(p, ':', n);
		if (colon != NULL) {
			size_t klen = (size_t)(colon - p);
			while (klen > 0 && (p[klen - 1] == ' ' || p[klen - 1] == '\t'))
				klen--;
			const char *rest = colon + 1;
			size_t rlen = n - (size_t)(rest - p);
			if (klen == 6 && strncasecmp(p, "sender", 6) == 0 && *sender_r == NULL) {
				struct jr_addrs one = { NULL, 0 };
				jr_scan_addrs(&one, rest, rlen, 1);
				if (one.n > 0)
					*sender_r = one.v[0];
				free(one.v);
			}
			for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
				if (klen == strlen(keys[k]) && strncasecmp(p, keys[k], klen) == 0)
					jr_scan_addrs(rcpts, rest, rlen, 0);
		}
		p += n;
		if (*p == '\n')
			p++;
	}
}

/* The envelope part's text, transfer encoding and charset undone. */
static char *
jr_envelope_text(const char *s, size_t len)
{
	GMimeParserOptions *opts = parse_options();
	GMimeObject *obj = parse_construct(s, len, opts, 0);
	struct buf out = BUF_INIT;

	if (obj != NULL && GMIME_IS_PART(obj)) {
		GMimeStream *ms;
		GByteArray *ba = parse_part_bytes(GMIME_PART(obj), &ms);
		if (ba != NULL)
			parse_text_append(&out, g_mime_object_get_content_type_parameter(obj, "charset"),
			    (const char *)ba->data, ba->len, 0);
		if (ms != NULL)
			g_object_unref(ms);
	}
	if (obj != NULL)
		g_object_unref(obj);
	g_mime_parser_options_free(opts);
	return buf_steal(&out);
}

/* The original: the body of the message/rfc822 part, decoded if it was encoded. */
static void
jr_original(struct archive_journal *j, const char *s, const struct jr_part *p)
{
	const char *ps = s + p->start;
	size_t plen = p->end - p->start;
	size_t body = jr_body_start(ps, plen);
	struct buf cte = BUF_INIT;
	GMimeContentEncoding enc = GMIME_CONTENT_ENCODING_DEFAULT;

	if (jr_header(ps, body, "Content-Transfer-Encoding", &cte))
		enc = g_mime_content_encoding_from_string(g_strstrip(cte.data));
	buf_free(&cte);
	if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		GMimeEncoding st;
		g_mime_encoding_init_decode(&st, enc);
		j->orig = xmalloc(g_mime_encoding_outlen(&st, plen - body) + 1);
		j->orig_len = g_mime_encoding_flush(&st, ps + body, plen - body, (char *)j->orig);
	} else {
		j->orig_len = plen - body;
		j->orig = xmalloc(j->orig_len + 1);
		memcpy(j->orig, ps + body, j->orig_len);
		j->orig[j->orig_len] = '\0';
	}
}

/* The boundary of a multipart/... Content-Type value, malloc'd, or NULL. */
static char *
jr_boundary(char *ctype)
{
	parse_defuse(ctype, strlen(ctype));
	GMimeContentType *ct = g_mime_content_type_parse(NULL, ctype);
	char *r = NULL;
	if (ct == NULL)
		return NULL;
	const char *b = g_mime_content_type_get_parameter(ct, "boundary");
	if (g_mime_content_type_is_type(ct, "multipart", "*") && b != NULL && *b != '\0' &&
	    strlen(b) < 1000)
		r = xstrdup(b);
	g_object_unref(ct);
	return r;
}

/* Finds the envelope and the original among the parts; 0 or -1 (*err_r). */
static int
jr_unwrap_parts(struct archive_journal *j, const char *s, const struct jr_part *parts,
    size_t n, char **err_r)
{
	struct buf type = BUF_INIT;
	const struct jr_part *env = NULL, *orig = NULL;

	for (size_t i = 0; i < n; i++) {
		jr_part_type(s, &parts[i], &type);
		if (env == NULL && orig == NULL && strcmp(type.data, "text/plain") == 0)
			env = &parts[i];
		else if (orig == NULL && strcmp(type.data, "message/rfc822") == 0)
			orig = &parts[i];
	}
	buf_free(&type);
	if (env == NULL || orig == NULL) {
		*err_r = xstrdup(env == NULL ? "journal report has no envelope part"
		    : "journal report has no message/rfc822 part");
		return -1;
	}
	jr_original(j, s, orig);
	if (j->orig_len == 0) {
		*err_r = xstrdup("journal report's original message is empty");
		return -1;
	}
	char *text = jr_envelope_text(s + env->start, env->end - env->start);
	struct jr_addrs rcpts = { NULL, 0 };
	jr_envelope(text, &j->sender, &rcpts);
	free(text);
	j->rcpts = rcpts.v;
	j->nrcpts = rcpts.n;
	return 0;
}

int
archive_journal_unwrap(const void *raw, size_t len, struct archive_journal *j, char **err_r)
{
	const char *s = raw;
	struct buf v = BUF_INIT;

	memset(j, 0, sizeof(*j));
	if (raw == NULL || len == 0)
		return 0;
	parse_skip_mbox_line(&s, &len);
	size_t body = jr_body_start(s, len);
	if (!jr_header(s, body, "X-MS-Journal-Report", &v)) {
		buf_free(&v);
		return 0;
	}
	if (archive_parse_init() < 0) {
		buf_free(&v);
		*err_r = xstrdup("cannot initialise GMime");
		return -1;
	}
	char *bnd = jr_header(s, body, "Content-Type", &v) ? jr_boundary(v.data) : NULL;
	buf_free(&v);
	if (bnd == NULL) {
		*err_r = xstrdup("journal report is not multipart (no boundary)");
		return -1;
	}
	struct jr_part *parts = xcalloc(JR_PARTS_MAX, sizeof(*parts));
	size_t n = jr_split(s, len, body, bnd, parts);
	int rc = jr_unwrap_parts(j, s, parts, n, err_r);
	free(parts);
	free(bnd);
	if (rc < 0) {
		archive_journal_free(j);
		return -1;
	}
	return 1;
}

void
archive_journal_free(struct archive_journal *j)
{
	if (j == NULL)
		return;
	free(j->orig);
	free(j->sender);
	for (size_t i = 0; i < j->nrcpts; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	memset(j, 0, sizeof(*j));
}
