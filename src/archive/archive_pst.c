/*
 * archive_pst — Outlook .pst import through libpst (see archive_pst.h).
 *
 * The walk: pst_open, pst_load_index, pst_load_extended_attributes, the
 * root item, pst_getTopOfFolders, then depth first over the descriptor
 * tree; a folder item with children is entered, a mail item is rebuilt as
 * MIME (pst_build_message) and handed to the callback, anything else is
 * counted as skipped.  Every item is freed with pst_freeItem.  All of
 * this runs in a child process (see "The reader process" below); the
 * caller's process never calls libpst.
 *
 * A built part is a struct mpart: its own header lines (Content-Type and
 * friends, CRLF-terminated) and its body.  Multiparts take their boundary
 * from a SHA-256 of the parts they enclose, so the bytes are deterministic
 * and the boundary cannot occur inside them.
 */
#include "archive/archive_pst.h"

#include <libpst/libpst.h>
#include <libpst/lzfu.h>
#include <libpst/timeconv.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_crypto.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

/* Deepest folder nesting and embedded-message nesting followed. */
#define PST_MAX_DEPTH 64
#define PST_MAX_EMBED 8

/* Longest silence from the reader process before it is killed (s). */
#define PST_IDLE_TIMEOUT 600
/* Longest folder or origin text accepted from the reader process. */
#define PST_TEXT_MAX 65536

struct mpart {
	struct buf head;	/* header lines, each ending CRLF */
	struct buf body;
};

struct pst_run {
	pst_file pf;
	archive_import_cb *cb;
	archive_import_fail_cb *fail;
	void *arg;
	uint64_t done, total;
	size_t mails, skipped, failed;
	int stopped;
};

static void
mpart_free(struct mpart *p)
{
	buf_free(&p->head);
	buf_free(&p->body);
}

static void
mpart_serialize(struct mpart *p, struct buf *out)
{
	buf_append(out, p->head.data, p->head.len);
	buf_append(out, "\r\n", 2);
	buf_append(out, p->body.data, p->body.len);
}

/* ------------------------------------------------------------------ */
/* Encodings                                                          */

static void
b64_lines(struct buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	char line[80];

	for (size_t off = 0; off < len; off += 57) {
		size_t n = len - off < 57 ? len - off : 57;

		sodium_bin2base64(line, sizeof(line), p + off, n,
		    sodium_base64_VARIANT_ORIGINAL);
		buf_append_str(out, line);
		buf_append(out, "\r\n", 2);
	}
}

static int
is_ascii_text(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 127 || (c < 32 && c != '\t'))
			return 0;
	}
	return 1;
}

/* Safe as 7bit with CRLF lines: ASCII, no NUL, lines under 998 bytes. */
static int
is_7bit_body(const char *s, size_t len)
{
	size_t line = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n') {
			line = 0;
			continue;
		}
		if (c >= 127 || c == 0 || ++line > 900)
			return 0;
		if (c == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
			return 0;
	}
	return 1;
}

/* Appends text with every line ending made CRLF. */
static void
append_crlf(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
			continue;
		if (s[i] == '\n' || s[i] == '\r')
			buf_append(out, "\r\n", 2);
		else
			buf_append_char(out, s[i]);
	}
	if (len > 0 && s[len - 1] != '\n' && s[len - 1] != '\r')
		buf_append(out, "\r\n", 2);
}

/* Length of the UTF-8 sequence starting with byte c (1 for junk). */
static size_t
utf8_seq_len(unsigned char c)
{
	return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

/* RFC 2047 B encoded-words of at most ~45 source bytes, folded. */
static void
append_encoded_words(struct buf *out, const char *s, size_t len)
{
	char word[128];
	size_t off = 0;

	while (off < len) {
		size_t n = 0;

		while (off + n < len) {
			size_t k = utf8_seq_len((unsigned char)s[off + n]);

			if (n + k > 45 || off + n + k > len)
				break;
			n += k;
		}
		if (n == 0)
			n = 1;
		sodium_bin2base64(word, sizeof(word),
		    (const unsigned char *)s + off, n,
		    sodium_base64_VARIANT_ORIGINAL);
		buf_appendf(out, "%s=?UTF-8?B?%s?=", off > 0 ? "\r\n " : "",
		    word);
		off += n;
	}
}

/* Copy of s with CR, LF and other controls turned into spaces, trimmed. */
static char *
clean_value(const char *s)
{
	struct buf b = BUF_INIT;

	while (*s == ' ' || (*s > 0 && *s < 32))
		s++;
	for (; *s != '\0'; s++)
		buf_append_char(&b, (*s > 0 && *s < 32) || *s == 127 ? ' ' : *s);
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		b.len--;
	buf_append_char(&b, '\0');
	return buf_steal(&b);
}

/* Unstructured header ("Subject: ..."), folded when long. */
static void
hdr_text(struct buf *out, const char *name, const char *value)
{
	char *v = clean_value(value);
	size_t len = strlen(v), col;

	buf_appendf(out, "%s: ", name);
	if (!is_ascii_text(v, len)) {
		append_encoded_words(out, v, len);
	} else {
		col = strlen(name) + 2;
		for (const char *w = v; *w != '\0';) {
			size_t wl = strcspn(w + 1, " ") + 1;

			if (col + wl > 78 && w != v && *w == ' ') {
				buf_append(out, "\r\n", 2);
				col = 0;
			}
			buf_append(out, w, wl);
			col += wl;
			w += wl;
		}
	}
	buf_append(out, "\r\n", 2);
	free(v);
}

/* A display name as a phrase: atom, quoted string or encoded words. */
static void
append_phrase(struct buf *out, const char *name)
{
	size_t len = strlen(name);

	if (!is_ascii_text(name, len)) {
		append_encoded_words(out, name, len);
		return;
	}
	buf_append_char(out, '"');
	for (const char *c = name; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			buf_append_char(out, '\\');
		buf_append_char(out, *c);
	}
	buf_append_char(out, '"');
}

static int
looks_like_addr(const char *s)
{
	const char *at = strchr(s, '@');

	return at != NULL && at != s && at[1] != '\0' &&
	    strcspn(s, " \t\"<>(),;:\\[]") == strlen(s) && is_ascii_text(s, strlen(s));
}

/* ------------------------------------------------------------------ */
/* Headers built from the item's properties                           */

static const char *
pst_str(pst_item *item, pst_string *s)
{
	if (s->str == NULL)
		return NULL;
	pst_convert_utf8(item, s);
	return s->str[0] != '\0' ? s->str : NULL;
}

/* One entry of a display list: an address as is, else a phrase. */
static void
list_entry(struct buf *t, const char *v)
{
	if (looks_like_addr(v))
		buf_append_str(t, v);
	else
		append_phrase(t, v);
}

/* "To: a, b" from Outlook's ';'-separated display list, folded. */
static void
hdr_list(struct buf *out, const char *name, const char *list)
{
	char *copy = xstrdup(list), *save = NULL, *tok;
	size_t col = strlen(name) + 2, n = 0;
	struct buf t = BUF_INIT;

	buf_appendf(out, "%s: ", name);
	for (tok = strtok_r(copy, ";", &save); tok != NULL;
	    tok = strtok_r(NULL, ";", &save)) {
		char *v = clean_value(tok);
		const char *nl;

		buf_reset(&t);
		if (v[0] != '\0')
			list_entry(&t, v);
		free(v);
		if (t.len == 0)
			continue;
		if (n++ > 0) {
			int fold = col + 2 + t.len > 76;

			buf_append_str(out, fold ? ",\r\n " : ", ");
			col = fold ? 1 : col + 2;
		}
		buf_append(out, t.data, t.len);
		nl = memrchr(t.data, '\n', t.len);
		col = nl != NULL ? (size_t)(t.data + t.len - nl) : col + t.len;
	}
	buf_append(out, "\r\n", 2);
	buf_free(&t);
	free(copy);
}

static void
hdr_from(struct buf *out, pst_item *item)
{
	pst_item_email *e = item->email;
	const char *name = pst_str(item, &e->outlook_sender_name);
	const char *addr = pst_str(item, &e->sender_address);
	char *n;

	if (name == NULL)
		name = pst_str(item, &e->outlook_sender_name2);
	if (addr == NULL || !looks_like_addr(addr))
		addr = pst_str(item, &e->sender2_address);
	if (addr != NULL && !looks_like_addr(addr))
		addr = NULL;
	if (name == NULL && addr == NULL)
		return;
	buf_append_str(out, "From: ");
	if (name != NULL && (addr == NULL || strcmp(name, addr) != 0)) {
		n = clean_value(name);
		append_phrase(out, n);
		free(n);
		if (addr != NULL)
			buf_append_char(out, ' ');
	}
	if (addr != NULL)
		buf_appendf(out, "<%s>", addr);
	buf_append(out, "\r\n", 2);
}

static void
hdr_date(struct buf *out, pst_item *item)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
		"Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
		"May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	FILETIME *ft = item->email->sent_date;
	struct tm tm;
	time_t t;

	if (ft == NULL)
		ft = item->email->arrival_date;
	if (ft == NULL)
		ft = item->create_date;
	if (ft == NULL)
		return;
	t = pst_fileTimeToUnixTime(ft);
	if (gmtime_r(&t, &tm) == NULL)
		return;
	buf_appendf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
hdr_msgid(struct buf *out, const char *name, const char *id)
{
	char *v = clean_value(id);

	if (v[0] != '\0' && is_ascii_text(v, strlen(v)) && strlen(v) < 900)
		buf_appendf(out, "%s: %s%s%s\r\n", name, v[0] == '<' ? "" : "<",
		    v, v[0] == '<' ? "" : ">");
	free(v);
}

static void
pst_synth_headers(struct buf *out, pst_item *item)
{
	pst_item_email *e = item->email;
	const char *v;

	hdr_from(out, item);
	if ((v = pst_str(item, &e->sentto_address)) != NULL)
		hdr_list(out, "To", v);
	if ((v = pst_str(item, &e->cc_address)) != NULL)
		hdr_list(out, "Cc", v);
	if ((v = pst_str(item, &e->bcc_address)) != NULL)
		hdr_list(out, "Bcc", v);
	if ((v = pst_str(item, &item->subject)) != NULL)
		hdr_text(out, "Subject", v);
	hdr_date(out, item);
	if ((v = pst_str(item, &e->messageid)) != NULL)
		hdr_msgid(out, "Message-ID", v);
	if ((v = pst_str(item, &e->in_reply_to)) != NULL)
		hdr_msgid(out, "In-Reply-To", v);
}

/* ------------------------------------------------------------------ */
/* Transport headers kept by the store                                */

static int
is_mime_structure_field(const char *line, size_t len)
{
	static const char *const drop[] = { "content-type:",
		"content-transfer-encoding:", "mime-version:", "content-length:" };

	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
		size_t n = strlen(drop[i]);

		if (len >= n && strncasecmp(line, drop[i], n) == 0)
			return 1;
	}
	return 0;
}

static int
is_field_line(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && line[i] > ' ' && line[i] < 127 && line[i] != ':')
		i++;
	return i > 0 && i < len && line[i] == ':';
}

/*
 * Copies the header fields of the transport headers into out, without the
 * MIME structure fields; 0 when they hold no usable field at all.
 */
static int
pst_copy_transport(struct buf *out, const char *h)
{
	const char *p = h, *end = h + strlen(h);
	int keep = 0, seen = 0, started = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0 && started)
			break;
		if (is_field_line(p, len)) {
			started = 1;
			keep = !is_mime_structure_field(p, len);
			seen += keep;
		} else if (!(started && (p[0] == ' ' || p[0] == '\t'))) {
			keep = 0;	/* junk before or between fields */
		}
		if (keep && len > 0) {
			buf_append(out, p, len);
			buf_append(out, "\r\n", 2);
		}
		p += (nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p));
	}
	return seen > 0;
}

static int
pst_has_field(const char *h, const char *field)
{
	size_t n = strlen(field);

	for (const char *p = h; p != NULL && *p != '\0';) {
		if (strncasecmp(p, field, n) == 0)
			return 1;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return 0;
}

static void
pst_headers(struct buf *out, pst_item *item)
{
	const char *h = pst_str(item, &item->email->header);
	struct buf t = BUF_INIT;

	if (h != NULL && (pst_has_field(h, "From:") || pst_has_field(h, "Date:") ||
	    pst_has_field(h, "Received:")) && pst_copy_transport(&t, h)) {
		buf_append(out, t.data, t.len);
		buf_free(&t);
		return;
	}
	buf_free(&t);
	pst_synth_headers(out, item);
}

/* ------------------------------------------------------------------ */
/* MIME parts                                                         */

static void
part_text(struct mpart *p, const char *subtype, const char *text,
    const char *charset)
{
	size_t len = strlen(text);

	buf_appendf(&p->head, "Content-Type: text/%s; charset=\"%s\"\r\n",
	    subtype, charset);
	if (is_7bit_body(text, len)) {
		buf_append_str(&p->head, "Content-Transfer-Encoding: 7bit\r\n");
		append_crlf(&p->body, text, len);
	} else {
		buf_append_str(&p->head, "Content-Transfer-Encoding: base64\r\n");
		b64_lines(&p->body, text, len);
	}
}

/* Encloses parts[0..n) (consumed) in a multipart/<subtype>. */
static void
part_multipart(struct mpart *out, const char *subtype, struct mpart *parts,
    size_t n)
{
	struct buf all = BUF_INIT;
	char hash[65];

	for (size_t i = 0; i < n; i++)
		mpart_serialize(&parts[i], &all);
	buf_append_str(&all, subtype);
	archive_crypto_sha256_hex(all.data, all.len, hash);
	hash[32] = '\0';
	buf_appendf(&out->head, "Content-Type: multipart/%s;\r\n"
	    " boundary=\"=_mailark_%s\"\r\n", subtype, hash);
	for (size_t i = 0; i < n; i++) {
		buf_appendf(&out->body, "--=_mailark_%s\r\n", hash);
		mpart_serialize(&parts[i], &out->body);
		buf_append(&out->body, "\r\n", 2);
		mpart_free(&parts[i]);
	}
	buf_appendf(&out->body, "--=_mailark_%s--\r\n", hash);
	buf_free(&all);
}

/* A file name parameter: quoted when plain ASCII, else RFC 2231. */
static void
append_param(struct buf *out, const char *param, const char *value)
{
	size_t len = strlen(value);

	if (is_ascii_text(value, len) && strpbrk(value, "\"\\") == NULL) {
		buf_appendf(out, ";\r\n %s=\"%s\"", param, value);
		return;
	}
	buf_appendf(out, ";\r\n %s*=UTF-8''", param);
	for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr("-._~", *c) != NULL)
			buf_append_char(out, (char)*c);
		else
			buf_appendf(out, "%%%02X", *c);
	}
}

/* A type/subtype token pair, or NULL. */
static const char *
clean_mime_type(const char *t)
{
	const char *slash;

	if (t == NULL || (slash = strchr(t, '/')) == NULL || slash == t ||
	    slash[1] == '\0' || strcspn(t, " \t\r\n;\"()<>@,:\\[]?=") != strlen(t))
		return NULL;
	return t;
}

static void
part_attachment(struct mpart *p, const char *type, const char *filename,
    const char *cid, const void *data, size_t len)
{
	buf_appendf(&p->head, "Content-Type: %s", type);
	if (filename != NULL)
		append_param(&p->head, "name", filename);
	buf_append_str(&p->head, "\r\nContent-Disposition: attachment");
	if (filename != NULL)
		append_param(&p->head, "filename", filename);
	buf_append(&p->head, "\r\n", 2);
	if (cid != NULL)
		hdr_msgid(&p->head, "Content-ID", cid);
	/* message/ types may not be base64 (RFC 2046 5.2): keep them 7bit */
	if (strncasecmp(type, "message/", 8) == 0 && is_7bit_body(data, len)) {
		buf_append_str(&p->head, "Content-Transfer-Encoding: 7bit\r\n");
		append_crlf(&p->body, data, len);
		return;
	}
	buf_append_str(&p->head, "Content-Transfer-Encoding: base64\r\n");
	b64_lines(&p->body, data, len);
}

static int pst_build_message(pst_file *pf, pst_item *item, int depth,
    struct buf *out);

/* An attachment that is a message of its own: message/rfc822. */
static int
part_embedded(struct mpart *p, pst_file *pf, pst_item_attach *a, int depth)
{
	pst_desc_tree d;
	pst_item *sub;
	int ok = 0;

	if (depth >= PST_MAX_EMBED)
		return 0;
	memset(&d, 0, sizeof(d));
	d.desc = pst_getID(pf, a->i_id);
	if (d.desc == NULL)
		return 0;
	sub = pst_parse_item(pf, &d, a->id2_head);
	if (sub != NULL && sub->email != NULL) {
		buf_append_str(&p->head, "Content-Type: message/rfc822\r\n"
		    "Content-Disposition: attachment\r\n");
		ok = pst_build_message(pf, sub, depth + 1, &p->body) == 0;
	}
	if (sub != NULL)
		pst_freeItem(sub);
	return ok;
}

/* One attachment as a part; 0 when there is nothing to attach. */
static int
part_from_attach(struct mpart *p, pst_file *pf, pst_item *item,
    pst_item_attach *a, int depth)
{
	const char *fn, *type, *cid;
	pst_binary data = a->data;
	int ok;

	if (a->method == PST_ATTACH_EMBEDDED)
		return part_embedded(p, pf, a, depth);
	fn = pst_str(item, &a->filename2);
	if (fn == NULL)
		fn = pst_str(item, &a->filename1);
	type = clean_mime_type(pst_str(item, &a->mimetype));
	cid = pst_str(item, &a->content_id);
	if (data.data == NULL)
		data = pst_attach_to_mem(pf, a);
	ok = data.data != NULL;
	if (ok) {
		char *name = fn != NULL ? clean_value(fn) : NULL;

		part_attachment(p, type != NULL ? type : "application/octet-stream",
		    name != NULL && name[0] != '\0' ? name : NULL, cid, data.data,
		    data.size);
		free(name);
	}
	if (data.data != NULL && data.data != a->data.data)
		free(data.data);
	return ok;
}

/* The text/plain and/or text/html of the item, or the RTF; 0 if none. */
static int
part_body(struct mpart *p, pst_item *item)
{
	char cs[64];
	const char *text = pst_str(item, &item->body);
	const char *html = pst_str(item, &item->email->htmlbody);
	struct mpart alt[2] = { { BUF_INIT, BUF_INIT }, { BUF_INIT, BUF_INIT } };

	if (text != NULL)
		part_text(text != NULL && html != NULL ? &alt[0] : p, "plain", text,
		    item->body.is_utf8 ? "utf-8" : pst_default_charset(item,
		    sizeof(cs), cs));
	if (html != NULL)
		part_text(text != NULL ? &alt[1] : p, "html", html,
		    item->email->htmlbody.is_utf8 ? "utf-8" :
		    pst_default_charset(item, sizeof(cs), cs));
	if (text != NULL && html != NULL)
		part_multipart(p, "alternative", alt, 2);
	return text != NULL || html != NULL;
}

static int
part_rtf(struct mpart *p, pst_item *item)
{
	pst_binary *rtf = &item->email->rtf_compressed;
	size_t len = 0;
	char *raw;

	if (rtf->data == NULL || rtf->size == 0 || rtf->size > UINT32_MAX)
		return 0;
	raw = pst_lzfu_decompress(rtf->data, (uint32_t)rtf->size, &len);
	if (raw == NULL)
		return 0;
	part_attachment(p, "application/rtf", "rtf-body.rtf", NULL, raw, len);
	free(raw);
	return 1;
}

static void
parts_grow(struct mpart **parts, size_t n, size_t *cap)
{
	if (n == *cap) {
		*cap = *cap != 0 ? *cap * 2 : 4;
		*parts = xrealloc(*parts, *cap * sizeof(**parts));
	}
	memset(&(*parts)[n], 0, sizeof((*parts)[n]));
}

/* The body and the attachments of the item as one part. */
static void
pst_build_body(struct mpart *top, pst_file *pf, pst_item *item, int depth)
{
	struct mpart *parts = NULL;
	size_t n = 0, cap = 0;

	parts_grow(&parts, n, &cap);
	if (part_body(&parts[0], item) || part_rtf(&parts[0], item))
		n++;
	else
		mpart_free(&parts[0]);
	for (pst_item_attach *a = item->attach; a != NULL; a = a->next) {
		parts_grow(&parts, n, &cap);
		if (part_from_attach(&parts[n], pf, item, a, depth))
			n++;
		else
			mpart_free(&parts[n]);
	}
	if (n == 0)
		part_text(top, "plain", "", "utf-8");
	else if (n == 1)
		*top = parts[0];
	else
		part_multipart(top, "mixed", parts, n);
	free(parts);
}

/* The whole RFC 5322 message of a mail item into out; 0 or -1. */
static int
pst_build_message(pst_file *pf, pst_item *item, int depth, struct buf *out)
{
	struct mpart top = { BUF_INIT, BUF_INIT };

	if (item->email == NULL)
		return -1;
	pst_headers(out, item);
	buf_append_str(out, "MIME-Version: 1.0\r\n");
	pst_build_body(&top, pf, item, depth);
	mpart_serialize(&top, out);
	mpart_free(&top);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Walking the store                                                  */

static uint64_t
pst_count(pst_desc_tree *d, int depth)
{
	uint64_t n = 0;

	for (; d != NULL && depth < PST_MAX_DEPTH; d = d->next)
		n += 1 + pst_count(d->child, depth + 1);
	return n;
}

static int
pst_is_mail(const pst_item *item)
{
	return item->email != NULL && (item->type == PST_TYPE_NOTE ||
	    item->type == PST_TYPE_SCHEDULE || item->type == PST_TYPE_REPORT);
}

static char *
pst_subfolder(pst_item *item, const char *folder)
{
	const char *name = pst_str(item, &item->file_as);
	char *clean = clean_value(name != NULL ? name : "(unnamed)");
	struct buf b = BUF_INIT;

	for (char *c = clean; *c != '\0'; c++)
		if (*c == '/')
			*c = '_';
	if (folder[0] != '\0') {
		buf_append_str(&b, folder);
		buf_append_char(&b, '/');
	}
	buf_append_str(&b, clean);
	free(clean);
	return buf_steal(&b);
}

/* Builds and delivers one mail item. */
static void
pst_deliver(struct pst_run *r, pst_item *item, const char *folder, size_t nr)
{
	struct archive_import_item it;
	struct buf msg = BUF_INIT, origin = BUF_INIT;
	const char *subj = pst_str(item, &item->subject);

	buf_appendf(&origin, "PST %s #%zu (subject %.80s)",
	    folder[0] != '\0' ? folder : "/", nr, subj != NULL ? subj : "");
	if (pst_build_message(&r->pf, item, 0, &msg) < 0 || msg.len == 0) {
		r->failed++;
		if (r->fail != NULL)
			r->fail(r->arg, buf_cstr(&origin), "cannot rebuild the message");
	} else {
		r->mails++;
		it.raw = (const unsigned char *)msg.data;
		it.len = msg.len;
		it.folder = folder;
		it.origin = buf_cstr(&origin);
		it.done_bytes = r->done;
		it.total_bytes = r->total;
		r->stopped = r->cb(r->arg, &it) != 0;
	}
	buf_free(&msg);
	buf_free(&origin);
}

static void
pst_walk(struct pst_run *r, pst_desc_tree *d, const char *folder, int depth)
{
	size_t nr = 0;

	for (; d != NULL && !r->stopped && depth < PST_MAX_DEPTH; d = d->next) {
		pst_item *item = pst_parse_item(&r->pf, d, NULL);

		r->done++;
		nr++;
		if (item == NULL) {
			struct buf o = BUF_INIT;

			r->failed++;
			buf_appendf(&o, "PST %s #%zu", folder[0] ? folder : "/", nr);
			if (r->fail != NULL)
				r->fail(r->arg, buf_cstr(&o), "cannot read the item");
			buf_free(&o);
			continue;
		}
		if (item->folder != NULL) {
			char *sub = pst_subfolder(item, folder);

			pst_walk(r, d->child, sub, depth + 1);
			free(sub);
		} else if (pst_is_mail(item)) {
			pst_deliver(r, item, folder, nr);
		} else {
			r->skipped++;
		}
		pst_freeItem(item);
	}
}

/* Opens the store and finds the top of its folders; NULL with *err_r. */
static pst_desc_tree *
pst_start(struct pst_run *r, const char *path, char **err_r)
{
	pst_item *root;
	pst_desc_tree *top;

	if (pst_open(&r->pf, path, NULL) != 0) {
		*err_r = buf_printf("%s: not an Outlook PST file (or unreadable)", path);
		return NULL;
	}
	if (pst_load_index(&r->pf) != 0) {
		pst_close(&r->pf);
		*err_r = buf_printf("%s: the PST index cannot be read (damaged or "
		    "truncated file)", path);
		return NULL;
	}
	pst_load_extended_attributes(&r->pf);
	root = r->pf.d_head != NULL ? pst_parse_item(&r->pf, r->pf.d_head, NULL) : NULL;
	top = root != NULL && root->message_store != NULL ?
	    pst_getTopOfFolders(&r->pf, root) : NULL;
	if (root != NULL)
		pst_freeItem(root);
	if (top == NULL) {
		pst_close(&r->pf);
		*err_r = buf_printf("%s: the PST has no readable folder tree", path);
	}
	return top;
}

/* Reads the whole store in this process (the reader child). */
static int
pst_import_here(const char *path, struct pst_run *r, char **err_r)
{
	pst_desc_tree *top = pst_start(r, path, err_r);

	if (top == NULL)
		return -1;
	r->total = pst_count(top->child, 0);
	pst_walk(r, top->child, "", 0);
	pst_close(&r->pf);
	return r->stopped ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* The reader process                                                 */
/*
 * libpst is not safe with damaged stores (it reads out of bounds and
 * dereferences NULL on corrupted index data) and keeps global iconv state,
 * so the store is read in a child process that streams what it built to
 * us over a pipe.  Frames: 'M' u64 done, u64 total, u32 folder_len,
 * u32 origin_len, u64 raw_len, then the three texts; 'F' u32 origin_len,
 * u32 reason_len, texts; 'E' u64 mails, skipped, failed (the end);
 * 'X' u32 len, error text (the store cannot be read).  A child that dies
 * without 'E' or 'X' crashed on the file.
 */

static int
write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
frame_u32(struct buf *f, uint32_t v)
{
	buf_append(f, &v, sizeof(v));
}

static void
frame_u64(struct buf *f, uint64_t v)
{
	buf_append(f, &v, sizeof(v));
}

static void
child_send(int fd, struct buf *f)
{
	if (write_all(fd, f->data, f->len) < 0)
		_exit(3);	/* the parent went away or stopped us */
	buf_free(f);
}

static int
child_cb(void *arg, const struct archive_import_item *it)
{
	struct buf f = BUF_INIT;
	size_t fl = strlen(it->folder), ol = strlen(it->origin);

	buf_append_char(&f, 'M');
	frame_u64(&f, it->done_bytes);
	frame_u64(&f, it->total_bytes);
	frame_u32(&f, (uint32_t)fl);
	frame_u32(&f, (uint32_t)ol);
	frame_u64(&f, it->len);
	buf_append(&f, it->folder, fl);
	buf_append(&f, it->origin, ol);
	buf_append(&f, it->raw, it->len);
	child_send(*(int *)arg, &f);
	return 0;
}

static void
child_fail(void *arg, const char *origin, const char *reason)
{
	struct buf f = BUF_INIT;

	buf_append_char(&f, 'F');
	frame_u32(&f, (uint32_t)strlen(origin));
	frame_u32(&f, (uint32_t)strlen(reason));
	buf_append_str(&f, origin);
	buf_append_str(&f, reason);
	child_send(*(int *)arg, &f);
}

static void __attribute__((noreturn))
pst_child(int fd, const char *path)
{
	struct pst_run r;
	struct buf f = BUF_INIT;
	char *err = NULL;

	signal(SIGPIPE, SIG_IGN);
	memset(&r, 0, sizeof(r));
	r.cb = child_cb;
	r.fail = child_fail;
	r.arg = &fd;
	if (pst_import_here(path, &r, &err) < 0) {
		buf_append_char(&f, 'X');
		frame_u32(&f, (uint32_t)strlen(err));
		buf_append_str(&f, err);
		free(err);
	} else {
		buf_append_char(&f, 'E');
		frame_u64(&f, r.mails);
		frame_u64(&f, r.skipped);
		frame_u64(&f, r.failed);
	}
	child_send(fd, &f);
	_exit(0);
}

/* Reads exactly len bytes: 0, or -1 on EOF, error or a silent child. */
static int
read_full(int fd, void *data, size_t len)
{
	char *p = data;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int rc = poll(&pfd, 1, PST_IDLE_TIMEOUT * 1000);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return -1;
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct pst_parent {
	int fd;
	archive_import_cb *cb;
	archive_import_fail_cb *fail;
	void *arg;
	uint64_t counts[3];	/* mails, skipped, failed (from 'E') */
	size_t delivered;
	char *child_err;	/* from 'X' */
};

/* Reads a text of len bytes (bounded) into a malloc'd string. */
static char *
read_text(int fd, uint32_t len)
{
	char *s;

	if (len > PST_TEXT_MAX)
		return NULL;
	s = xmalloc((size_t)len + 1);
	if (read_full(fd, s, len) < 0) {
		free(s);
		return NULL;
	}
	s[len] = '\0';
	return s;
}

/* One 'M' frame: 1 delivered, 2 the callback stopped, -1 bad frame. */
static int
parent_message(struct pst_parent *pp)
{
	struct { uint64_t done, total; uint32_t fl, ol; uint64_t rl; }
	    __attribute__((packed)) h;
	struct archive_import_item it;
	char *folder = NULL, *origin = NULL;
	unsigned char *raw = NULL;
	int rc = -1;

	if (read_full(pp->fd, &h, sizeof(h)) < 0 || h.rl > ARCHIVE_RAW_MAX ||
	    (folder = read_text(pp->fd, h.fl)) == NULL ||
	    (origin = read_text(pp->fd, h.ol)) == NULL)
		goto out;
	raw = xmalloc(h.rl + 1);
	if (read_full(pp->fd, raw, h.rl) < 0)
		goto out;
	it.raw = raw;
	it.len = h.rl;
	it.folder = folder;
	it.origin = origin;
	it.done_bytes = h.done;
	it.total_bytes = h.total;
	pp->delivered++;
	rc = pp->cb(pp->arg, &it) != 0 ? 2 : 1;
out:
	free(folder);
	free(origin);
	free(raw);
	return rc;
}

static int
parent_fail(struct pst_parent *pp)
{
	uint32_t len[2];
	char *origin = NULL, *reason = NULL;
	int rc = -1;

	if (read_full(pp->fd, len, sizeof(len)) == 0 &&
	    (origin = read_text(pp->fd, len[0])) != NULL &&
	    (reason = read_text(pp->fd, len[1])) != NULL) {
		if (pp->fail != NULL)
			pp->fail(pp->arg, origin, reason);
		rc = 1;
	}
	free(origin);
	free(reason);
	return rc;
}

/* Reads frames until the end: 0 ('E'), 1 stopped, -1 'X' or broken. */
static int
parent_loop(struct pst_parent *pp)
{
	for (;;) {
		char type;
		uint32_t len;
		int rc;

		if (read_full(pp->fd, &type, 1) < 0)
			return -1;
		if (type == 'M')
			rc = parent_message(pp);
		else if (type == 'F')
			rc = parent_fail(pp);
		else if (type == 'E')
			return read_full(pp->fd, pp->counts, sizeof(pp->counts)) < 0 ?
			    -1 : 0;
		else if (type == 'X' && read_full(pp->fd, &len, sizeof(len)) == 0)
			return (pp->child_err = read_text(pp->fd, len)), -1;
		else
			return -1;
		if (rc != 1)
			return rc == 2 ? 1 : -1;
	}
}

/* Waits for the child (killed first unless it ended cleanly). */
static int
reap(pid_t pid, int kill_it)
{
	int status = 0;

	if (kill_it)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static int
pst_parent_finish(struct pst_parent *pp, pid_t pid, int rc, const char *path,
    char **err_r)
{
	int status = reap(pid, rc != 0 || pp->child_err != NULL);

	if (rc == -1 && pp->child_err != NULL) {
		*err_r = pp->child_err;
		return -1;
	}
	if (rc == -1) {
		*err_r = buf_printf("%s: the PST reader failed (%s %d) after %zu "
		    "messages: damaged or truncated file", path,
		    WIFSIGNALED(status) ? "signal" : "exit status",
		    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		    pp->delivered);
		return -1;
	}
	if (rc == 0)
		log_info("archive_import_pst", "file=%s mails=%llu skipped=%llu "
		    "failed=%llu", log_str(path), (unsigned long long)pp->counts[0],
		    (unsigned long long)pp->counts[1],
		    (unsigned long long)pp->counts[2]);
	return rc;
}

int
archive_import_pst(const char *path, archive_import_cb *cb,
    archive_import_fail_cb *fail, void *arg, char **err_r)
{
	struct pst_parent pp = { .cb = cb, .fail = fail, .arg = arg };
	struct stat st;
	int fds[2], rc;
	pid_t pid;

	if (stat(path, &st) < 0) {
		*err_r = buf_printf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*err_r = buf_printf("%s: not a regular file", path);
		return -1;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		*err_r = buf_printf("%s: pipe: %s", path, strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		*err_r = buf_printf("%s: cannot start the PST reader: %s", path,
		    strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		pst_child(fds[1], path);
	}
	close(fds[1]);
	pp.fd = fds[0];
	rc = parent_loop(&pp);
	close(fds[0]);
	return pst_parent_finish(&pp, pid, rc, path, err_r);
}
