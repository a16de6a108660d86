/*
 * disclaimer.c — outbound disclaimers (see disclaimer.h).
 *
 * The message is changed by splicing: a small walker of our own finds the
 * MIME structure in the raw bytes (headers, boundaries), picks the target
 * parts, and only those parts are decoded, extended and re-encoded; every
 * other byte (other headers, attachments, preamble, boundaries) is copied
 * as it was.  GMime parses the Content-Type / Content-Disposition values.
 *
 * Targets: a lone text/plain or text/html body; in multipart/alternative
 * the first text/plain and the first text/html; in any other multipart
 * (mixed, related …) the first part, looked into the same way; nothing in a
 * multipart/report (bounces, read receipts).  Parts with
 * Content-Disposition: attachment, forwarded messages and a lone non-text
 * body (a PDF alone) are left alone: such a message gets no disclaimer
 * ("disclaimer:skipped no text part").
 *
 * A target keeps its charset when the disclaimer can be written in it, else
 * it is converted to UTF-8; it keeps its transfer encoding (QP and base64
 * are re-encoded), except that 7bit text which gains non-ASCII characters
 * becomes quoted-printable.  Signed or encrypted structures and PGP inline
 * text are never touched ("disclaimer:skipped signed"); a message whose text
 * already carries the disclaimer's first line, or whose HTML carries our
 * <div class="mailark-disclaimer">, is left alone too ("disclaimer:skipped
 * present").
 */
#include "hygiene/disclaimer.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gmime/gmime.h>

#include "archive/archive_parse.h"
#include "hygiene/hygiene.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define DISC_MAX_DEPTH   16
#define DISC_MAX_PARTS   512
#define DISC_MAX_BOUNDARY 200
#define DISC_HTML_MARKER "<div class=\"mailark-disclaimer\">"
#define DISC_HTML_MARKER_ATTR "class=\"mailark-disclaimer\""

/* ---- the raw MIME walk ---- */

struct disc_ent {
	size_t hstart, hend;        /* header fields [hstart, hend), hend = start of the blank line */
	size_t bstart, bend;        /* body [bstart, bend) */
	char *ctype;                /* Content-Type value (unfolded), or NULL */
	char *cte;                  /* Content-Transfer-Encoding value, or NULL */
	char *cdisp;                /* Content-Disposition value, or NULL */
	int has_mime_version;
	int has_body;               /* a blank line ends the header fields */
	int top;                    /* the message itself */
	const char *deftype;        /* without Content-Type: text/plain (message/rfc822 in a digest) */
};

enum disc_role { ROLE_NONE, ROLE_BODY };

struct disc_walk {
	const char *d;
	size_t len;
	size_t nparts;
	int is_signed;
	struct disc_ent plain, html;
	int has_plain, has_html;
};

static void
ent_clear(struct disc_ent *e)
{
	free(e->ctype);
	free(e->cte);
	free(e->cdisp);
	memset(e, 0, sizeof(*e));
}

/* End of the line starting at pos (the index after its '\n', or end). */
static size_t
line_next(const char *d, size_t pos, size_t end)
{
	const char *nl = memchr(d + pos, '\n', end - pos);
	return nl != NULL ? (size_t)(nl - d) + 1 : end;
}

/* Length of the line's content without its CR LF. */
static size_t
line_content_len(const char *d, size_t pos, size_t next)
{
	size_t l = next - pos;
	if (l > 0 && d[pos + l - 1] == '\n')
		l--;
	if (l > 0 && d[pos + l - 1] == '\r')
		l--;
	return l;
}

/* The first of repeated fields counts (as GMime and Python's email read them). */
static int
field_keep(char **slot, const char *d, size_t pos, size_t len, size_t namelen)
{
	struct buf b = BUF_INIT;
	if (*slot != NULL)
		return 0;
	buf_append(&b, d + pos + namelen + 1, len - namelen - 1);
	*slot = buf_steal(&b);
	return 1;
}

/* A header field name: printable ASCII without blanks, then ':'. */
static size_t
field_name_len(const char *d, size_t pos, size_t l)
{
	size_t i = 0;
	while (i < l && d[pos + i] > 32 && d[pos + i] < 127 && d[pos + i] != ':')
		i++;
	return i > 0 && i < l && d[pos + i] == ':' ? i : 0;
}

static void
field_continue(char **slot, const char *d, size_t pos, size_t len)
{
	if (*slot == NULL)
		return;
	struct buf b = BUF_INIT;
	buf_append_str(&b, *slot);
	buf_append_char(&b, ' ');
	buf_append(&b, d + pos, len);
	free(*slot);
	*slot = buf_steal(&b);
}

/*
 * Reads the header block of the entity at [start, end).  A line that is no
 * header field ends the block without a body (has_body 0: never a target),
 * as it does for the parsers that read the message after us.
 */
static void
ent_parse(const char *d, size_t start, size_t end, struct disc_ent *e)
{
	memset(e, 0, sizeof(*e));
	e->hstart = start;
	char **last = NULL;
	size_t pos = start;
	while (pos < end) {
		size_t next = line_next(d, pos, end);
		size_t l = line_content_len(d, pos, next);
		if (l == 0) {
			e->hend = pos;
			e->bstart = next;
			e->has_body = 1;
			e->bend = end;
			return;
		}
		if (d[pos] == ' ' || d[pos] == '\t') {
			if (last != NULL)
				field_continue(last, d, pos, l);
		} else {
			last = NULL;
			size_t nl = field_name_len(d, pos, l);
			if (nl == 0)
				break;
			if (nl == 12 && strncasecmp(d + pos, "Content-Type", 12) == 0)
				last = &e->ctype;
			else if (nl == 25 && strncasecmp(d + pos, "Content-Transfer-Encoding", 25) == 0)
				last = &e->cte;
			else if (nl == 19 && strncasecmp(d + pos, "Content-Disposition", 19) == 0)
				last = &e->cdisp;
			else if (nl == 12 && strncasecmp(d + pos, "MIME-Version", 12) == 0)
				e->has_mime_version = 1;
			if (last != NULL && !field_keep(last, d, pos, l, nl))
				last = NULL;
		}
		pos = next;
	}
	e->hend = pos;
	e->bstart = pos;
	e->bend = end;
}

static GMimeContentType *
ent_content_type(const struct disc_ent *e)
{
	return g_mime_content_type_parse(NULL, e->ctype != NULL ? e->ctype : e->deftype);
}

static int
ent_is_attachment(const struct disc_ent *e)
{
	if (e->cdisp == NULL)
		return 0;
	GMimeContentDisposition *cd = g_mime_content_disposition_parse(NULL, e->cdisp);
	if (cd == NULL)
		return 0;
	int att = g_mime_content_disposition_is_attachment(cd);
	g_object_unref(cd);
	return att;
}

static int
type_is_signed(GMimeContentType *ct)
{
	const char *t = g_mime_content_type_get_media_type(ct);
	const char *s = g_mime_content_type_get_media_subtype(ct);
	if (t == NULL || s == NULL)
		return 0;
	if (strcasecmp(t, "multipart") == 0)
		return strcasecmp(s, "signed") == 0 || strcasecmp(s, "encrypted") == 0;
	if (strcasecmp(t, "application") == 0)
		return strncasecmp(s, "pkcs7-", 6) == 0 || strncasecmp(s, "x-pkcs7-", 8) == 0 ||
		    strncasecmp(s, "pgp-", 4) == 0;
	return 0;
}

/*
 * The next line at or after pos that is "--boundary" (then optional "--",
 * then only blanks).  Returns 1 with its start and the index after it, 0 when
 * there is none.
 */
static int
delim_find(const char *d, size_t pos, size_t end, const char *bnd, size_t blen,
    size_t *lstart_r, size_t *lnext_r, int *close_r)
{
	while (pos < end) {
		size_t next = line_next(d, pos, end);
		size_t l = line_content_len(d, pos, next);
		if (l >= blen + 2 && d[pos] == '-' && d[pos + 1] == '-' &&
		    memcmp(d + pos + 2, bnd, blen) == 0) {
			size_t k = pos + 2 + blen;
			int close = 0;
			if (k + 2 <= pos + l && d[k] == '-' && d[k + 1] == '-') {
				close = 1;
				k += 2;
			}
			while (k < pos + l && (d[k] == ' ' || d[k] == '\t'))
				k++;
			if (k == pos + l) {
				*lstart_r = pos;
				*lnext_r = next;
				*close_r = close;
				return 1;
			}
		}
		pos = next;
	}
	return 0;
}

/* The end of a part's body: the line break before its closing delimiter belongs to the delimiter. */
static size_t
part_end_before(const char *d, size_t start, size_t delim)
{
	size_t e = delim;
	if (e > start && d[e - 1] == '\n')
		e--;
	if (e > start && d[e - 1] == '\r')
		e--;
	return e;
}

static void walk_entity(struct disc_walk *w, size_t start, size_t end, int depth,
    enum disc_role role, const char *deftype);

static void
walk_multipart(struct disc_walk *w, const struct disc_ent *e, GMimeContentType *ct, int depth,
    enum disc_role role)
{
	const char *bnd = g_mime_content_type_get_parameter(ct, "boundary");
	if (bnd == NULL || bnd[0] == '\0' || strlen(bnd) > DISC_MAX_BOUNDARY)
		return;
	size_t blen = strlen(bnd);
	const char *sub = g_mime_content_type_get_media_subtype(ct);
	int alternative = sub != NULL && strcasecmp(sub, "alternative") == 0;
	const char *deftype = sub != NULL && strcasecmp(sub, "digest") == 0 ?
	    "message/rfc822" : "text/plain";
	/* delivery and read reports are machine text: left alone */
	if (sub != NULL && strcasecmp(sub, "report") == 0)
		role = ROLE_NONE;
	size_t ls, ln;
	int close;
	if (!delim_find(w->d, e->bstart, e->bend, bnd, blen, &ls, &ln, &close) || close)
		return;
	for (size_t i = 0; !w->is_signed; i++) {
		size_t pstart = ln;
		size_t ls2, ln2;
		int close2;
		int found = delim_find(w->d, pstart, e->bend, bnd, blen, &ls2, &ln2, &close2);
		size_t pend = found ? part_end_before(w->d, pstart, ls2) : e->bend;
		enum disc_role cr = role == ROLE_BODY && (alternative || i == 0) ? ROLE_BODY : ROLE_NONE;
		walk_entity(w, pstart, pend, depth + 1, cr, deftype);
		if (!found || close2)
			break;
		ln = ln2;
	}
}

static void
walk_leaf(struct disc_walk *w, struct disc_ent *e, GMimeContentType *ct, enum disc_role role)
{
	if (role != ROLE_BODY || !e->has_body || ent_is_attachment(e))
		return;
	const char *t = g_mime_content_type_get_media_type(ct);
	const char *s = g_mime_content_type_get_media_subtype(ct);
	if (t == NULL || s == NULL || strcasecmp(t, "text") != 0)
		return;
	if (strcasecmp(s, "plain") == 0 && !w->has_plain) {
		w->plain = *e;
		memset(e, 0, sizeof(*e));
		w->has_plain = 1;
	} else if (strcasecmp(s, "html") == 0 && !w->has_html) {
		w->html = *e;
		memset(e, 0, sizeof(*e));
		w->has_html = 1;
	}
}

/* deftype NULL: the message itself. */
static void
walk_entity(struct disc_walk *w, size_t start, size_t end, int depth, enum disc_role role,
    const char *deftype)
{
	if (depth > DISC_MAX_DEPTH || ++w->nparts > DISC_MAX_PARTS)
		return;
	struct disc_ent e;
	ent_parse(w->d, start, end, &e);
	e.top = deftype == NULL;
	e.deftype = deftype != NULL ? deftype : "text/plain";
	GMimeContentType *ct = ent_content_type(&e);
	if (ct == NULL) {
		ent_clear(&e);
		return;
	}
	const char *t = g_mime_content_type_get_media_type(ct);
	if (type_is_signed(ct))
		w->is_signed = 1;
	else if (t != NULL && strcasecmp(t, "multipart") == 0)
		walk_multipart(w, &e, ct, depth, role);
	else
		walk_leaf(w, &e, ct, role);
	g_object_unref(ct);
	ent_clear(&e);
}

/* ---- transfer encodings ---- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
qp_decode(const char *s, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '=') {
			buf_append_char(out, s[i]);
			continue;
		}
		/* soft line break: '=' then blanks then the line end */
		size_t k = i + 1;
		while (k < len && (s[k] == ' ' || s[k] == '\t'))
			k++;
		if (k < len && s[k] == '\r' && k + 1 < len && s[k + 1] == '\n') {
			i = k + 1;
			continue;
		}
		if (k < len && s[k] == '\n') {
			i = k;
			continue;
		}
		if (k == len) {
			i = k;
			continue;
		}
		int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
		int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
		if (hi >= 0 && lo >= 0) {
			buf_append_char(out, (char)(hi * 16 + lo));
			i += 2;
		} else {
			buf_append_char(out, '=');
		}
	}
}

static void
qp_encode_line(const unsigned char *s, size_t len, const char *eol, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		int last = i + 1 == len;
		char enc[4];
		size_t n;
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last)) {
			enc[0] = (char)c;
			n = 1;
		} else {
			enc[0] = '=';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			n = 3;
		}
		if (col + n > 75) {
			buf_append_char(out, '=');
			buf_append_str(out, eol);
			col = 0;
		}
		buf_append(out, enc, n);
		col += n;
	}
}

/* Each line break of the text becomes eol. */
static void
qp_encode(const char *s, size_t len, const char *eol, struct buf *out)
{
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(s + pos, '\n', len - pos);
		size_t lend = nl != NULL ? (size_t)(nl - s) : len;
		size_t cl = lend - pos;
		if (nl != NULL && cl > 0 && s[lend - 1] == '\r')
			cl--;
		qp_encode_line((const unsigned char *)s + pos, cl, eol, out);
		if (nl == NULL)
			break;
		buf_append_str(out, eol);
		pos = lend + 1;
	}
}

static void
b64_decode(const char *s, size_t len, struct buf *out)
{
	gint state = 0;
	guint save = 0;
	buf_reserve(out, len / 4 * 3 + 4);
	gsize n = g_base64_decode_step(s, len, (guchar *)out->data + out->len, &state, &save);
	out->len += n;
}

static void
b64_encode(const char *s, size_t len, const char *eol, struct buf *out)
{
	gchar *enc = g_base64_encode((const guchar *)s, len);
	size_t el = strlen(enc);
	for (size_t i = 0; i < el; i += 76) {
		buf_append(out, enc + i, el - i < 76 ? el - i : 76);
		buf_append_str(out, eol);
	}
	g_free(enc);
}

enum disc_cte { CTE_7BIT, CTE_8BIT, CTE_QP, CTE_B64, CTE_OTHER };

static enum disc_cte
cte_parse(const char *v)
{
	if (v == NULL)
		return CTE_7BIT;
	char *c = xstrdup(v);
	g_strstrip(c);
	enum disc_cte r = CTE_OTHER;
	if (c[0] == '\0' || strcasecmp(c, "7bit") == 0)
		r = CTE_7BIT;
	else if (strcasecmp(c, "8bit") == 0 || strcasecmp(c, "binary") == 0)
		r = CTE_8BIT;
	else if (strcasecmp(c, "quoted-printable") == 0)
		r = CTE_QP;
	else if (strcasecmp(c, "base64") == 0)
		r = CTE_B64;
	free(c);
	return r;
}

static int
is_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80 || s[i] == '\0')
			return 0;
	return 1;
}

static int
longest_line(const char *s, size_t len)
{
	size_t col = 0, max = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n')
			col = 0;
		else if (++col > max)
			max = col;
	}
	return max > 998;
}

/* ---- templates ---- */

struct disc_vars {
	const char *sender, *sender_name, *sender_domain, *tenant;
	char date[32];
};

static void
append_escaped(struct buf *b, const char *v, int html)
{
	if (!html) {
		buf_append_str(b, v);
		return;
	}
	for (const char *p = v; *p != '\0'; p++) {
		switch (*p) {
		case '<': buf_append_str(b, "&lt;"); break;
		case '>': buf_append_str(b, "&gt;"); break;
		case '&': buf_append_str(b, "&amp;"); break;
		case '"': buf_append_str(b, "&quot;"); break;
		case '\'': buf_append_str(b, "&#39;"); break;
		default: buf_append_char(b, *p); break;
		}
	}
}

static const char *
var_value(const struct disc_vars *v, const char *name, size_t nl)
{
	static const char *const names[] = { "sender", "sender_name", "sender_domain", "tenant",
		"date" };
	const char *vals[] = { v->sender, v->sender_name, v->sender_domain, v->tenant, v->date };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == nl && memcmp(names[i], name, nl) == 0)
			return vals[i] != NULL ? vals[i] : "";
	return NULL;
}

/* The template with variables filled in; "\n" (two characters) and real
 * line breaks become eol.  Unknown {x} stay as they are. */
static char *
template_render(const char *tmpl, const struct disc_vars *v, int html, const char *eol)
{
	struct buf b = BUF_INIT;
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (p[0] == '\\' && p[1] == 'n') {
			buf_append_str(&b, eol);
			p++;
		} else if (p[0] == '\r' && p[1] == '\n') {
			buf_append_str(&b, eol);
			p++;
		} else if (p[0] == '\n') {
			buf_append_str(&b, eol);
		} else if (p[0] == '{') {
			const char *close = strchr(p, '}');
			const char *val = close != NULL ? var_value(v, p + 1, (size_t)(close - p - 1)) : NULL;
			if (val != NULL) {
				append_escaped(&b, val, html);
				p = close;
			} else {
				buf_append_char(&b, '{');
			}
		} else {
			buf_append_char(&b, *p);
		}
	}
	return buf_steal(&b);
}

static void
vars_fill(const struct hygiene_msg *m, struct disc_vars *v)
{
	memset(v, 0, sizeof(*v));
	v->sender = m->header_from != NULL ? m->header_from : m->sender;
	v->sender_name = m->header_from_name != NULL ? m->header_from_name : v->sender;
	const char *at = strrchr(v->sender, '@');
	v->sender_domain = at != NULL ? at + 1 : "";
	v->tenant = m->tenant != NULL ? m->tenant : "";
	time_t now = time(NULL);
	struct tm tm;
	if (gmtime_r(&now, &tm) == NULL || strftime(v->date, sizeof(v->date), "%Y-%m-%d", &tm) == 0)
		v->date[0] = '\0';
}

/* The first non-blank line of a rendered text, trimmed (caller frees), or NULL. */
static char *
first_line(const char *s)
{
	while (*s != '\0') {
		size_t l = strcspn(s, "\r\n");
		char *line = xstrndup(s, l);
		g_strstrip(line);
		if (line[0] != '\0')
			return line;
		free(line);
		s += l;
		while (*s == '\r' || *s == '\n')
			s++;
	}
	return NULL;
}

#define DISC_LITERAL_MIN 16

/*
 * The longest piece of the text template without variables or line breaks
 * (trimmed), when it is long enough to be distinctive: a reply from another
 * sender quotes the same company text with another name in it, so this
 * finds an earlier disclaimer of the thread where the first line does not.
 * Caller frees; NULL when there is none.
 */
static char *
template_literal(const char *t)
{
	const char *best = NULL;
	size_t best_len = 0;
	const char *p = t;
	while (*p != '\0') {
		size_t n = 0;
		while (p[n] != '\0' && p[n] != '{' && p[n] != '\n' && p[n] != '\r' &&
		    !(p[n] == '\\' && p[n + 1] == 'n'))
			n++;
		const char *a = p, *b = p + n;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if ((size_t)(b - a) > best_len) {
			best = a;
			best_len = (size_t)(b - a);
		}
		p += n;
		if (*p == '{') {
			const char *close = strchr(p, '}');
			p = close != NULL ? close + 1 : p + 1;
		} else if (*p == '\\') {
			p += 2;
		} else if (*p != '\0') {
			p++;
		}
	}
	return best_len >= DISC_LITERAL_MIN ? xstrndup(best, best_len) : NULL;
}

/* ---- editing one part ---- */

enum disc_edit_rc { EDIT_DONE, EDIT_PRESENT, EDIT_SIGNED, EDIT_SKIP };

struct disc_edit {
	size_t start, end;           /* replaced range: [hstart, bend) */
	struct buf out;              /* new header block + blank line + body */
};

static int
charset_is_ascii(const char *cs)
{
	return cs == NULL || strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0 ||
	    strcasecmp(cs, "ansi_x3.4-1968") == 0;
}

static int
charset_is_utf8(const char *cs)
{
	return cs != NULL && (strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0);
}

static char *
convert(const char *s, size_t len, const char *to, const char *from, size_t *outlen_r)
{
	GError *gerr = NULL;
	gsize outlen = 0;
	gchar *o = g_convert(s, (gssize)len, to, from, NULL, &outlen, &gerr);
	if (o == NULL) {
		g_clear_error(&gerr);
		return NULL;
	}
	char *r = xmemdup(o, outlen + 1);
	r[outlen] = '\0';
	g_free(o);
	*outlen_r = outlen;
	return r;
}

/* Content-Type with charset replaced (header field line, eol-terminated). */
static void
content_type_field(GMimeContentType *ct, const char *charset, const char *eol, struct buf *out)
{
	buf_appendf(out, "Content-Type: %s/%s", g_mime_content_type_get_media_type(ct),
	    g_mime_content_type_get_media_subtype(ct));
	GMimeParamList *pl = g_mime_content_type_get_parameters(ct);
	int n = pl != NULL ? g_mime_param_list_length(pl) : 0;
	for (int i = 0; i < n; i++) {
		GMimeParam *p = g_mime_param_list_get_parameter_at(pl, i);
		const char *name = g_mime_param_get_name(p);
		const char *val = g_mime_param_get_value(p);
		if (name == NULL || val == NULL || strcasecmp(name, "charset") == 0)
			continue;
		if (strpbrk(val, "\"\\\r\n") != NULL)
			continue;
		buf_appendf(out, ";%s\t%s=\"%s\"", eol, name, val);
	}
	buf_appendf(out, "; charset=\"%s\"%s", charset, eol);
}

/* Copies the header block, leaving out Content-Type / -Transfer-Encoding when asked. */
static void
headers_copy(const char *d, const struct disc_ent *e, int drop_ct, int drop_cte, struct buf *out)
{
	size_t pos = e->hstart;
	int dropping = 0;
	while (pos < e->hend) {
		size_t next = line_next(d, pos, e->hend);
		if (d[pos] != ' ' && d[pos] != '\t') {
			size_t l = next - pos;
			dropping = (drop_ct && l > 13 && strncasecmp(d + pos, "Content-Type:", 13) == 0) ||
			    (drop_cte && l > 26 &&
				strncasecmp(d + pos, "Content-Transfer-Encoding:", 26) == 0);
		}
		if (!dropping)
			buf_append(out, d + pos, next - pos);
		pos = next;
	}
}

struct disc_part {
	struct buf body;             /* decoded, in `charset` */
	char *charset;               /* NULL: us-ascii */
	enum disc_cte cte;
	GMimeContentType *ct;
};

static int
part_decode(const char *d, const struct disc_ent *e, struct disc_part *p)
{
	memset(p, 0, sizeof(*p));
	p->ct = ent_content_type(e);
	if (p->ct == NULL)
		return -1;
	const char *cs = g_mime_content_type_get_parameter(p->ct, "charset");
	p->charset = cs != NULL ? xstrdup(cs) : NULL;
	p->cte = cte_parse(e->cte);
	const char *b = d + e->bstart;
	size_t bl = e->bend - e->bstart;
	switch (p->cte) {
	case CTE_7BIT:
	case CTE_8BIT:
		buf_append(&p->body, b, bl);
		break;
	case CTE_QP:
		qp_decode(b, bl, &p->body);
		break;
	case CTE_B64:
		b64_decode(b, bl, &p->body);
		break;
	case CTE_OTHER:
		return -1;
	}
	return 0;
}

static void
part_free(struct disc_part *p)
{
	buf_free(&p->body);
	free(p->charset);
	if (p->ct != NULL)
		g_object_unref(p->ct);
}

/* The part's text in UTF-8 for the checks (caller frees). */
static char *
part_utf8(const struct disc_part *p, size_t *len_r)
{
	const char *s = p->body.data != NULL ? p->body.data : "";
	if (charset_is_ascii(p->charset) || charset_is_utf8(p->charset)) {
		*len_r = p->body.len;
		return xmemdup(s, p->body.len + 1);
	}
	char *u = convert(s, p->body.len, "UTF-8", p->charset, len_r);
	if (u == NULL) {
		*len_r = p->body.len;
		return xmemdup(s, p->body.len + 1);
	}
	return u;
}

/*
 * Converts ins (UTF-8) into the part's charset; when it cannot be written
 * there, the part's body moves to UTF-8.  Returns the text to insert in the
 * part's (possibly new) charset (caller frees), or NULL.
 */
static char *
insert_in_charset(struct disc_part *p, const char *ins, const char *body_utf8, size_t ulen,
    int *changed_r, size_t *len_r)
{
	*changed_r = 0;
	size_t il = strlen(ins);
	if (charset_is_utf8(p->charset) || (charset_is_ascii(p->charset) && is_ascii(ins, il))) {
		*len_r = il;
		return xstrdup(ins);
	}
	if (!charset_is_ascii(p->charset)) {
		char *c = convert(ins, il, p->charset, "UTF-8", len_r);
		if (c != NULL)
			return c;
	}
	/* to UTF-8: the body too */
	buf_reset(&p->body);
	buf_append(&p->body, body_utf8, ulen);
	free(p->charset);
	p->charset = xstrdup("utf-8");
	*changed_r = 1;
	*len_r = il;
	return xstrdup(ins);
}

static const char *
find_last_ci(const char *s, size_t len, const char *needle)
{
	size_t nl = strlen(needle);
	if (len < nl)
		return NULL;
	for (size_t i = len - nl + 1; i-- > 0;)
		if (strncasecmp(s + i, needle, nl) == 0)
			return s + i;
	return NULL;
}

static void
body_insert(struct disc_part *p, const char *ins, size_t il, int html, const char *eol)
{
	struct buf nb = BUF_INIT;
	const char *b = p->body.data != NULL ? p->body.data : "";
	size_t bl = p->body.len;
	if (html) {
		const char *at = find_last_ci(b, bl, "</body");
		size_t cut = at != NULL ? (size_t)(at - b) : bl;
		buf_append(&nb, b, cut);
		buf_append(&nb, ins, il);
		buf_append(&nb, b + cut, bl - cut);
	} else {
		int ended = bl > 0 && b[bl - 1] == '\n';
		buf_append(&nb, b, bl);
		if (bl > 0 && !ended)
			buf_append_str(&nb, eol);
		buf_append_str(&nb, eol);
		buf_append(&nb, ins, il);
		if (ended)
			buf_append_str(&nb, eol);
	}
	buf_free(&p->body);
	p->body = nb;
}

/* Writes the new part (headers, blank line, encoded body) into out. */
static void
part_encode(const char *d, const struct disc_ent *e, struct disc_part *p, int charset_changed,
    const char *eol, struct buf *out)
{
	const char *b = p->body.data != NULL ? p->body.data : "";
	enum disc_cte cte = p->cte;
	int cte_changed = 0;
	if (cte == CTE_7BIT && (!is_ascii(b, p->body.len) || longest_line(b, p->body.len))) {
		cte = CTE_QP;
		cte_changed = 1;
	}
	headers_copy(d, e, charset_changed, cte_changed, out);
	if (charset_changed)
		content_type_field(p->ct, p->charset, eol, out);
	if (cte_changed)
		buf_appendf(out, "Content-Transfer-Encoding: quoted-printable%s", eol);
	if (charset_changed && e->top && !e->has_mime_version)
		buf_appendf(out, "MIME-Version: 1.0%s", eol);
	buf_append(out, d + e->hend, e->bstart - e->hend);   /* the blank line as it was */
	switch (cte) {
	case CTE_QP:
		qp_encode(b, p->body.len, eol, out);
		break;
	case CTE_B64:
		b64_encode(b, p->body.len, eol, out);
		break;
	default:
		buf_append(out, b, p->body.len);
		break;
	}
}

static int
has_pgp_inline(const char *s, size_t len)
{
	return memmem(s, len, "-----BEGIN PGP SIGNED MESSAGE-----", 34) != NULL ||
	    memmem(s, len, "-----BEGIN PGP MESSAGE-----", 27) != NULL;
}

/* Inserts ins_utf8 into the part e; the edit is left in ed. */
static enum disc_edit_rc
part_edit(const char *d, const struct disc_ent *e, const char *ins_utf8,
    const char *const markers[2], int html, const char *eol, struct disc_edit *ed)
{
	struct disc_part p;
	if (part_decode(d, e, &p) < 0) {
		part_free(&p);
		return EDIT_SKIP;
	}
	size_t ulen;
	char *u = part_utf8(&p, &ulen);
	enum disc_edit_rc rc = EDIT_DONE;
	if (has_pgp_inline(u, ulen))
		rc = EDIT_SIGNED;
	for (int i = 0; i < 2 && rc == EDIT_DONE; i++)
		if (markers[i] != NULL && memmem(u, ulen, markers[i], strlen(markers[i])) != NULL)
			rc = EDIT_PRESENT;
	if (rc == EDIT_DONE) {
		int changed;
		size_t il;
		char *ins = insert_in_charset(&p, ins_utf8, u, ulen, &changed, &il);
		body_insert(&p, ins, il, html, eol);
		free(ins);
		ed->start = e->hstart;
		ed->end = e->bend;
		part_encode(d, e, &p, changed, eol, &ed->out);
	}
	free(u);
	part_free(&p);
	return rc;
}

/* ---- the stage ---- */

struct disc_job {
	const char *d;
	size_t len;
	const char *eol;
	char *text;                  /* rendered text disclaimer, or NULL */
	char *text_marker;           /* its first line */
	char *text_literal;          /* the template's longest literal line piece, or NULL */
	char *html;                  /* rendered HTML block, or NULL */
	struct disc_edit edits[2];
	size_t nedits;
};

static enum disc_edit_rc
job_edits(struct disc_job *j, struct disc_walk *w)
{
	enum disc_edit_rc rc = EDIT_SKIP;
	if (w->has_plain && j->text != NULL) {
		const char *const markers[2] = { j->text_marker, j->text_literal };
		rc = part_edit(j->d, &w->plain, j->text, markers, 0, j->eol,
		    &j->edits[j->nedits]);
		if (rc != EDIT_DONE)
			return rc;
		j->nedits++;
	}
	if (w->has_html && j->html != NULL) {
		const char *const markers[2] = { DISC_HTML_MARKER_ATTR, NULL };
		enum disc_edit_rc hr = part_edit(j->d, &w->html, j->html, markers, 1, j->eol,
		    &j->edits[j->nedits]);
		if (hr != EDIT_DONE)
			return hr;
		j->nedits++;
		rc = EDIT_DONE;
	}
	return rc;
}

/* The message with the edits spliced in (caller frees). */
static unsigned char *
job_splice(struct disc_job *j, size_t *len_r)
{
	if (j->nedits == 2 && j->edits[1].start < j->edits[0].start) {
		struct disc_edit t = j->edits[0];
		j->edits[0] = j->edits[1];
		j->edits[1] = t;
	}
	struct buf out = BUF_INIT;
	size_t pos = 0;
	for (size_t i = 0; i < j->nedits; i++) {
		buf_append(&out, j->d + pos, j->edits[i].start - pos);
		buf_append(&out, j->edits[i].out.data, j->edits[i].out.len);
		pos = j->edits[i].end;
	}
	buf_append(&out, j->d + pos, j->len - pos);
	*len_r = out.len;
	return (unsigned char *)buf_steal(&out);
}

static void
job_free(struct disc_job *j)
{
	free(j->text);
	free(j->text_marker);
	free(j->text_literal);
	free(j->html);
	for (size_t i = 0; i < 2; i++)
		buf_free(&j->edits[i].out);
}

static void
job_render(struct disc_job *j, const struct hygiene_msg *m)
{
	const struct hygiene_policy *p = m->pol;
	struct disc_vars v;
	vars_fill(m, &v);
	if (p->disclaimer_text != NULL && p->disclaimer_text[0] != '\0') {
		j->text = template_render(p->disclaimer_text, &v, 0, j->eol);
		j->text_marker = first_line(j->text);
		j->text_literal = template_literal(p->disclaimer_text);
		if (j->text_marker == NULL)
			xfree(&j->text);
	}
	if (p->disclaimer_html != NULL && p->disclaimer_html[0] != '\0') {
		char *h = template_render(p->disclaimer_html, &v, 1, j->eol);
		j->html = buf_printf("%s%s</div>%s", DISC_HTML_MARKER, h, j->eol);
		free(h);
	}
}

static void
walk_free(struct disc_walk *w)
{
	ent_clear(&w->plain);
	ent_clear(&w->html);
}

int
disclaimer_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)err_r;
	const struct hygiene_policy *p = m->pol;
	if (p == NULL || m->dir != QUEUE_OUTBOUND)
		return 0;
	if ((p->disclaimer_text == NULL || p->disclaimer_text[0] == '\0') &&
	    (p->disclaimer_html == NULL || p->disclaimer_html[0] == '\0'))
		return 0;
	if (archive_parse_init() < 0)
		return 0;
	struct disc_job j;
	memset(&j, 0, sizeof(j));
	const unsigned char *data;
	hygiene_result_content(m, r, &data, &j.len);
	j.d = (const char *)data;
	const char *nl = memchr(j.d, '\n', j.len);
	j.eol = nl != NULL && nl > j.d && nl[-1] == '\r' ? "\r\n" : "\n";
	struct disc_walk w;
	memset(&w, 0, sizeof(w));
	w.d = j.d;
	w.len = j.len;
	walk_entity(&w, 0, j.len, 0, ROLE_BODY, NULL);
	if (w.is_signed) {
		hygiene_result_reason(r, "disclaimer:skipped signed");
		walk_free(&w);
		return 0;
	}
	job_render(&j, m);
	enum disc_edit_rc rc = job_edits(&j, &w);
	switch (rc) {
	case EDIT_DONE: {
		size_t nlen;
		unsigned char *nd = job_splice(&j, &nlen);
		hygiene_result_rewrite(r, nd, nlen);
		hygiene_result_reason(r, "disclaimer:added");
		break;
	}
	case EDIT_SIGNED:
		hygiene_result_reason(r, "disclaimer:skipped signed");
		break;
	case EDIT_PRESENT:
		hygiene_result_reason(r, "disclaimer:skipped present");
		break;
	case EDIT_SKIP:
		hygiene_result_reason(r, "disclaimer:skipped no text part");
		break;
	}
	job_free(&j);
	walk_free(&w);
	return 0;
}
