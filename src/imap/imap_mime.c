/*
 * imap_mime — ENVELOPE, BODYSTRUCTURE, BODY[section] and the SEARCH text
 * tests over the raw bytes of one message (see imap_mime.h).
 *
 * Structure: every call builds a small tree of byte ranges (struct mtree)
 * with our own walker, never GMime, because BODY[1.2] must return exactly
 * the stored bytes and BODYSTRUCTURE's sizes must equal those lengths.
 * An entity is a header (up to and including the blank line that ends it,
 * capped at MIME_HDR_MAX, beyond which the rest is body) and a body.  A
 * multipart's body is split on its boundary (RFC 2046: the line break before
 * a delimiter belongs to the delimiter; a missing close delimiter ends the
 * last part at the end of the body); a message/rfc822 body is parsed again
 * as one entity.  Entities deeper than IMAP_MIME_MAX_DEPTH, beyond
 * IMAP_MIME_MAX_PARTS, and multiparts without a boundary parameter are
 * opaque: described as TEXT/PLAIN of their body bytes.  A multipart whose
 * body has no delimiter gets one empty TEXT/PLAIN part (like Dovecot).
 *
 * Part numbers (RFC 3501 6.4.5): within a multipart, n is its n-th child;
 * within anything else only 1 exists and is the entity itself; a
 * message/rfc822 part's numbers continue in the message it encloses.
 *
 * GMime is used only to parse address lists (ENVELOPE), decode RFC 2047
 * words and dates, and decode base64 / quoted-printable bodies for SEARCH.
 * Every function is thread-safe and keeps nothing between calls.
 */
#include "imap/imap_mime.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "archive/archive_parse.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"

/* A header block longer than this ends there; the rest is body. */
#define MIME_HDR_MAX (1024 * 1024)
/* Part numbers in one section-spec. */
#define MIME_SECTION_NUMS 64
/* Field names in one HEADER.FIELDS list. */
#define MIME_SECTION_FIELDS 256

enum mpart_kind { MP_LEAF, MP_MULTI, MP_MESSAGE };

struct mpart {
	size_t hdr, hdr_len;            /* header bytes incl. the blank line */
	size_t body, body_len;
	enum mpart_kind kind;
	int opaque;                     /* describe as TEXT/PLAIN whatever it says */
	int digest;                     /* default type message/rfc822 (child of digest) */
	int child;                      /* first child / enclosed message, or -1 */
	int next;                       /* next sibling, or -1 */
};

struct mtree {
	const char *raw;
	size_t len;
	struct mpart *p;                /* p[0] is the message itself */
	int n, cap;
};

struct mparam {
	char *name, *value;
};

/* "value; a=b; c="d"" as in Content-Type and Content-Disposition. */
struct mfield {
	char *value;                    /* before the first ';', trimmed; NULL if empty */
	struct mparam *params;
	size_t nparams;
};

/* ------------------------------------------------------------ init */

static int
mime_init(void)
{
	return archive_parse_init();
}

/* ------------------------------------------------------------ header lines */

struct hline {
	size_t off, len;                /* the whole field incl. continuation lines and EOL */
	size_t name_len;                /* 0 when the line has no field name */
	size_t val_off, val_len;        /* after ':' up to the final EOL */
};

/* End of the line starting at pos within [0, end): index after its LF (or end). */
static size_t
line_end(const char *s, size_t pos, size_t end)
{
	const char *lf = memchr(s + pos, '\n', end - pos);

	return lf != NULL ? (size_t)(lf - s) + 1 : end;
}

static int
line_is_blank(const char *s, size_t pos, size_t end)
{
	return pos < end && (s[pos] == '\n' || (s[pos] == '\r' && pos + 1 < end && s[pos + 1] == '\n'));
}

/*
 * Next header field in [*pos, end) (a header block); 1 with *h, or 0 at the
 * blank line or the end.
 */
static int
hline_next(const char *s, size_t *pos, size_t end, struct hline *h)
{
	size_t p = *pos, e, n;

	if (p >= end || line_is_blank(s, p, end))
		return 0;
	h->off = p;
	e = line_end(s, p, end);
	while (e < end && (s[e] == ' ' || s[e] == '\t'))
		e = line_end(s, e, end);
	h->len = e - p;
	h->name_len = 0;
	for (n = p; n < e && s[n] != ':' && s[n] != '\n' && s[n] != '\r'; n++)
		;
	if (n < e && s[n] == ':') {
		size_t nl = n - p;
		while (nl > 0 && (s[p + nl - 1] == ' ' || s[p + nl - 1] == '\t'))
			nl--;
		if (memchr(s + p, ' ', nl) == NULL && memchr(s + p, '\t', nl) == NULL)
			h->name_len = nl;
		h->val_off = n + 1;
		h->val_len = e - (n + 1);
		while (h->val_len > 0 && (s[h->val_off + h->val_len - 1] == '\n' ||
		    s[h->val_off + h->val_len - 1] == '\r'))
			h->val_len--;
	}
	*pos = e;
	return 1;
}

static int
hline_is(const char *s, const struct hline *h, const char *name, size_t name_len)
{
	return h->name_len != 0 && h->name_len == name_len &&
	    strncasecmp(s + h->off, name, name_len) == 0;
}

/* Unfolded value: line breaks removed, NUL made a space, trimmed.  Caller frees. */
static char *
unfold(const char *s, size_t len)
{
	char *o = xmalloc(len + 1);
	size_t n = 0, i, b = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '\r' || s[i] == '\n')
			continue;
		o[n++] = s[i] == '\0' ? ' ' : s[i];
	}
	while (n > 0 && (o[n - 1] == ' ' || o[n - 1] == '\t'))
		n--;
	while (b < n && (o[b] == ' ' || o[b] == '\t'))
		b++;
	memmove(o, o + b, n - b);
	o[n - b] = '\0';
	return o;
}

/* First field called name in the header of part, unfolded; NULL if absent. */
static char *
hdr_get(const struct mtree *t, const struct mpart *pt, const char *name)
{
	size_t pos = pt->hdr, end = pt->hdr + pt->hdr_len, nl = strlen(name);
	struct hline h;

	while (hline_next(t->raw, &pos, end, &h))
		if (hline_is(t->raw, &h, name, nl))
			return unfold(t->raw + h.val_off, h.val_len);
	return NULL;
}

/* ------------------------------------------------------------ parameters */

static const char *
skip_cfws(const char *s)
{
	int depth = 0;

	for (;; s++) {
		if (*s == '(')
			depth++;
		else if (*s == ')' && depth > 0)
			depth--;
		else if (*s == '\\' && depth > 0 && s[1] != '\0')
			s++;
		else if (depth == 0 && *s != ' ' && *s != '\t')
			return s;
		else if (*s == '\0')
			return s;
	}
}

/* A token (stops at specials) or a quoted string (unescaped); NULL if none. */
static char *
param_word(const char **sp, const char *stops)
{
	const char *s = skip_cfws(*sp);
	struct buf b = BUF_INIT;

	if (*s == '"') {
		for (s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			buf_append_char(&b, *s);
		}
		if (*s == '"')
			s++;
		buf_append(&b, "", 0);
	} else {
		const char *st = s;
		while (*s != '\0' && strchr(stops, *s) == NULL && *s != ' ' && *s != '\t')
			s++;
		if (s == st) {
			*sp = s;
			return NULL;
		}
		buf_append(&b, st, (size_t)(s - st));
	}
	*sp = s;
	(void)buf_cstr(&b);
	return buf_steal(&b);
}

static void
mfield_free(struct mfield *f)
{
	for (size_t i = 0; i < f->nparams; i++) {
		free(f->params[i].name);
		free(f->params[i].value);
	}
	free(f->params);
	free(f->value);
	memset(f, 0, sizeof(*f));
}

/* Parses "value *(; name=value)" leniently; value may be NULL. */
static void
mfield_parse(const char *v, struct mfield *f)
{
	const char *s = v, *semi;

	memset(f, 0, sizeof(*f));
	if (v == NULL)
		return;
	semi = strchr(s, ';');
	f->value = unfold(s, semi != NULL ? (size_t)(semi - s) : strlen(s));
	if (f->value[0] == '\0')
		xfree(&f->value);
	s = semi;
	while (s != NULL && *s == ';') {
		char *name, *value;
		s++;
		name = param_word(&s, ";=()<>@,:\\\"/[]?");
		s = skip_cfws(s);
		if (name == NULL || *s != '=') {
			free(name);
			s = strchr(s, ';');
			continue;
		}
		s++;
		value = param_word(&s, ";()<>@,:\\\"[]?=");
		if (value == NULL)
			value = xstrdup("");
		f->params = xrealloc(f->params, (f->nparams + 1) * sizeof(*f->params));
		f->params[f->nparams].name = name;
		f->params[f->nparams++].value = value;
		s = strchr(s, ';');
	}
}

static const char *
mfield_param(const struct mfield *f, const char *name)
{
	for (size_t i = 0; i < f->nparams; i++)
		if (strcasecmp(f->params[i].name, name) == 0)
			return f->params[i].value;
	return NULL;
}

/* Content-Type of a part as type and subtype (lower case, caller frees both). */
struct mtype {
	char *type, *sub;
	struct mfield f;
};

static void
mtype_free(struct mtype *ty)
{
	free(ty->type);
	free(ty->sub);
	mfield_free(&ty->f);
}

static int
type_token_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strchr("()<>@,;:\\\"/[]?=", *s))
			return 0;
	return 1;
}

/* Fills ty; absent or invalid Content-Type gives the default (no params). */
static void
mtype_get(const struct mtree *t, const struct mpart *pt, struct mtype *ty)
{
	char *v = pt->opaque ? NULL : hdr_get(t, pt, "Content-Type");
	char *slash;

	memset(ty, 0, sizeof(*ty));
	mfield_parse(v, &ty->f);
	free(v);
	if (ty->f.value != NULL && (slash = strchr(ty->f.value, '/')) != NULL) {
		ty->type = unfold(ty->f.value, (size_t)(slash - ty->f.value));
		ty->sub = unfold(slash + 1, strlen(slash + 1));
		if (type_token_ok(ty->type) && type_token_ok(ty->sub)) {
			for (char *c = ty->type; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			for (char *c = ty->sub; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			return;
		}
		xfree(&ty->type);
		xfree(&ty->sub);
	}
	mfield_free(&ty->f);
	if (pt->digest && !pt->opaque) {
		ty->type = xstrdup("message");
		ty->sub = xstrdup("rfc822");
	} else {
		ty->type = xstrdup("text");
		ty->sub = xstrdup("plain");
	}
}

/* ------------------------------------------------------------ the tree */

/* Index after the header of the entity starting at off (within end). */
static size_t
header_end(const char *s, size_t off, size_t end)
{
	size_t p = off;

	while (p < end) {
		if (line_is_blank(s, p, end))
			return line_end(s, p, end);
		if (p - off >= MIME_HDR_MAX)
			return p;
		p = line_end(s, p, end);
	}
	return end;
}

/* 1 when the line at p is "--boundary" (open, *close = 0) or "--boundary--". */
static int
is_delim(const char *s, size_t p, size_t end, const char *bd, size_t bl, int *close)
{
	size_t q;

	if (end - p < bl + 2 || s[p] != '-' || s[p + 1] != '-' || memcmp(s + p + 2, bd, bl) != 0)
		return 0;
	q = p + 2 + bl;
	if (end - q >= 2 && s[q] == '-' && s[q + 1] == '-') {
		*close = 1;
		return 1;
	}
	while (q < end && (s[q] == ' ' || s[q] == '\t'))
		q++;
	if (q == end || s[q] == '\n' || (s[q] == '\r' && q + 1 < end && s[q + 1] == '\n')) {
		*close = 0;
		return 1;
	}
	return 0;
}

static int tree_build(struct mtree *t, size_t off, size_t end, int depth, int digest);

/* Builds the children of multipart idx; 0 when none was found. */
static int
tree_split(struct mtree *t, int idx, const char *bd, int depth, int digest)
{
	const char *s = t->raw;
	size_t bl = strlen(bd), p, end, start = 0;
	int have = 0, last = -1, close = 0, count = 0;

	p = t->p[idx].body;
	end = t->p[idx].body + t->p[idx].body_len;
	if (bl == 0 || bl > 200)
		return 0;
	while (p < end) {
		size_t le = line_end(s, p, end);
		if (is_delim(s, p, end, bd, bl, &close)) {
			if (have) {
				size_t pe = p;
				if (pe >= start + 2 && s[pe - 2] == '\r' && s[pe - 1] == '\n')
					pe -= 2;
				else if (pe >= start + 1 && s[pe - 1] == '\n')
					pe -= 1;
				if (t->n >= IMAP_MIME_MAX_PARTS)
					break;
				int c = tree_build(t, start, pe, depth + 1, digest);
				if (last < 0)
					t->p[idx].child = c;
				else
					t->p[last].next = c;
				last = c;
				count++;
			}
			if (close) {
				have = 0;
				break;
			}
			have = 1;
			start = le;
		}
		p = le;
	}
	if (have && t->n < IMAP_MIME_MAX_PARTS) {
		int c = tree_build(t, start, end, depth + 1, digest);
		if (last < 0)
			t->p[idx].child = c;
		else
			t->p[last].next = c;
		count++;
	}
	return count;
}

/* Parses the entity [off, end) into a new part; returns its index. */
static int
tree_build(struct mtree *t, size_t off, size_t end, int depth, int digest)
{
	size_t he = header_end(t->raw, off, end);
	struct mtype ty;
	int idx;

	if (t->n == t->cap) {
		t->cap = t->cap != 0 ? t->cap * 2 : 8;
		t->p = xrealloc(t->p, (size_t)t->cap * sizeof(*t->p));
	}
	idx = t->n++;
	t->p[idx] = (struct mpart){ off, he - off, he, end - he, MP_LEAF, 0, digest, -1, -1 };
	mtype_get(t, &t->p[idx], &ty);
	if (depth >= IMAP_MIME_MAX_DEPTH) {
		if (strcmp(ty.type, "multipart") == 0 ||
		    (strcmp(ty.type, "message") == 0 && strcmp(ty.sub, "rfc822") == 0))
			t->p[idx].opaque = 1;
	} else if (strcmp(ty.type, "multipart") == 0) {
		const char *bd = mfield_param(&ty.f, "boundary");
		t->p[idx].kind = MP_MULTI;
		if (bd != NULL && tree_split(t, idx, bd, depth, strcmp(ty.sub, "digest") == 0) == 0 &&
		    t->n < IMAP_MIME_MAX_PARTS) {
			/* no delimiter at all: one empty part at the end, as Dovecot does */
			size_t e = t->p[idx].body + t->p[idx].body_len;
			int c = tree_build(t, e, e, depth + 1, 0);
			t->p[idx].child = c;
		}
		if (t->p[idx].child < 0) {
			t->p[idx].kind = MP_LEAF;
			t->p[idx].child = -1;
			t->p[idx].opaque = 1;
		}
	} else if (strcmp(ty.type, "message") == 0 && strcmp(ty.sub, "rfc822") == 0) {
		if (t->n < IMAP_MIME_MAX_PARTS) {
			size_t b = t->p[idx].body, bl = t->p[idx].body_len;
			int c = tree_build(t, b, b + bl, depth + 1, 0);
			t->p[idx].kind = MP_MESSAGE;
			t->p[idx].child = c;
		} else {
			t->p[idx].opaque = 1;
		}
	}
	mtype_free(&ty);
	return idx;
}

static void
tree_init(struct mtree *t, const char *raw, size_t len)
{
	memset(t, 0, sizeof(*t));
	t->raw = raw != NULL ? raw : "";
	t->len = raw != NULL ? len : 0;
	(void)tree_build(t, 0, t->len, 0, 0);
}

static void
tree_free(struct mtree *t)
{
	free(t->p);
	t->p = NULL;
}

/* ------------------------------------------------------------ IMAP strings */

/* Appends s as a quoted string, or a literal when it cannot be quoted. */
static void
imap_str(struct buf *out, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
			break;
	}
	if (i < len) {
		buf_appendf(out, "{%zu}\r\n", len);
		buf_append(out, s, len);
		return;
	}
	buf_append_char(out, '"');
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_append_char(out, '\\');
		buf_append_char(out, s[i]);
	}
	buf_append_char(out, '"');
}

static void
imap_nstr(struct buf *out, const char *s)
{
	if (s == NULL)
		buf_append_str(out, "NIL");
	else
		imap_str(out, s, strlen(s));
}

/* Upper-cased quoted string (type names, encodings, parameter names). */
static void
imap_upper(struct buf *out, const char *s)
{
	char *u = xstrdup(s);

	for (char *c = u; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	imap_str(out, u, strlen(u));
	free(u);
}

/* ------------------------------------------------------------ ENVELOPE */

static void
env_address(struct buf *out, InternetAddress *a, int had_words)
{
	const char *name = internet_address_get_name(a);
	const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	char *enc = NULL;

	buf_append_char(out, '(');
	if (name != NULL && *name != '\0') {
		/* GMime decoded RFC 2047 words: encode again so the value stays ASCII;
		 * raw 8-bit names are sent as they came (a literal) */
		for (const char *c = name; had_words && *c; c++)
			if ((unsigned char)*c >= 0x80) {
				enc = g_mime_utils_header_encode_phrase(NULL, name, "utf-8");
				break;
			}
		imap_nstr(out, enc != NULL ? enc : name);
		g_free(enc);
	} else {
		buf_append_str(out, "NIL");
	}
	buf_append_str(out, " NIL ");
	if (addr == NULL)
		addr = "";
	if (at != NULL) {
		imap_str(out, addr, (size_t)(at - addr));
		buf_append_char(out, ' ');
		imap_nstr(out, at + 1);
	} else {
		imap_nstr(out, addr);
		buf_append_str(out, " \"\"");
	}
	buf_append_char(out, ')');
}

/* An address list per RFC 3501 (groups as start / members / end), or NIL. */
static void
env_addresses(struct buf *out, const char *value)
{
	InternetAddressList *l = NULL;
	int n = 0, i, j, had_words = value != NULL && strstr(value, "=?") != NULL;

	if (value != NULL && *value != '\0' && mime_init() == 0) {
		GMimeParserOptions *o = g_mime_parser_options_new();
		g_mime_parser_options_set_address_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
		g_mime_parser_options_set_rfc2047_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
		l = internet_address_list_parse(o, value);
		g_mime_parser_options_free(o);
	}
	if (l != NULL)
		n = internet_address_list_length(l);
	if (n == 0 && value != NULL && strchr(value, '@') != NULL && strpbrk(value, ",<>:;\"( \t") == NULL) {
		/* one bare address GMime refuses (f..x@example.com): split it ourselves */
		const char *at = strrchr(value, '@');
		buf_append_str(out, "((NIL NIL ");
		imap_str(out, value, (size_t)(at - value));
		buf_append_char(out, ' ');
		imap_nstr(out, at + 1);
		buf_append_str(out, "))");
		if (l != NULL)
			g_object_unref(l);
		return;
	}
	if (n == 0) {
		buf_append_str(out, "NIL");
		if (l != NULL)
			g_object_unref(l);
		return;
	}
	buf_append_char(out, '(');
	for (i = 0; i < n; i++) {
		InternetAddress *a = internet_address_list_get_address(l, i);
		if (INTERNET_ADDRESS_IS_GROUP(a)) {
			InternetAddressList *m = internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a));
			int mn = m != NULL ? internet_address_list_length(m) : 0;
			buf_append_str(out, "(NIL NIL ");
			imap_nstr(out, internet_address_get_name(a) != NULL ? internet_address_get_name(a) : "");
			buf_append_str(out, " NIL)");
			for (j = 0; j < mn; j++) {
				InternetAddress *ma = internet_address_list_get_address(m, j);
				if (INTERNET_ADDRESS_IS_MAILBOX(ma))
					env_address(out, ma, had_words);
			}
			buf_append_str(out, "(NIL NIL NIL NIL)");
		} else if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
			env_address(out, a, had_words);
		}
	}
	buf_append_char(out, ')');
	g_object_unref(l);
}

static void
env_field(struct buf *out, const struct mtree *t, const struct mpart *pt, const char *name)
{
	char *v = hdr_get(t, pt, name);

	imap_nstr(out, v);
	free(v);
}

/* ENVELOPE of the entity pt. */
static void
envelope(struct buf *out, const struct mtree *t, const struct mpart *pt)
{
	static const char *const addr_fields[] = { "From", "Sender", "Reply-To", "To", "Cc", "Bcc" };
	char *from = hdr_get(t, pt, "From");

	buf_append_char(out, '(');
	env_field(out, t, pt, "Date");
	buf_append_char(out, ' ');
	env_field(out, t, pt, "Subject");
	for (size_t i = 0; i < sizeof(addr_fields) / sizeof(addr_fields[0]); i++) {
		char *v = i == 0 ? NULL : hdr_get(t, pt, addr_fields[i]);
		buf_append_char(out, ' ');
		if ((i == 1 || i == 2) && (v == NULL || *v == '\0'))
			env_addresses(out, from);
		else
			env_addresses(out, i == 0 ? from : v);
		free(v);
	}
	buf_append_char(out, ' ');
	env_field(out, t, pt, "In-Reply-To");
	buf_append_char(out, ' ');
	env_field(out, t, pt, "Message-ID");
	buf_append_char(out, ')');
	free(from);
}

void
imap_mime_envelope(const char *raw, size_t len, struct buf *out)
{
	struct mtree t;

	tree_init(&t, raw, len);
	envelope(out, &t, &t.p[0]);
	tree_free(&t);
}

/* ------------------------------------------------------------ BODYSTRUCTURE */

static void
bs_params(struct buf *out, const struct mfield *f)
{
	if (f->nparams == 0) {
		buf_append_str(out, "NIL");
		return;
	}
	buf_append_char(out, '(');
	for (size_t i = 0; i < f->nparams; i++) {
		if (i > 0)
			buf_append_char(out, ' ');
		imap_upper(out, f->params[i].name);
		buf_append_char(out, ' ');
		imap_nstr(out, f->params[i].value);
	}
	buf_append_char(out, ')');
}

/* Lines of a body: its LF count. */
static size_t
count_lines(const char *s, size_t len)
{
	size_t n = 0;
	const char *p = s, *e = s + len;

	while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		n++;
		p++;
	}
	return n;
}

/* body-ext-1part / body-ext-mpart after md5 or params: dsp, lang, loc. */
static void
bs_ext_tail(struct buf *out, const struct mtree *t, const struct mpart *pt)
{
	char *v = pt->opaque ? NULL : hdr_get(t, pt, "Content-Disposition");
	struct mfield f;

	mfield_parse(v, &f);
	free(v);
	buf_append_char(out, ' ');
	if (f.value != NULL) {
		buf_append_char(out, '(');
		imap_upper(out, f.value);
		buf_append_char(out, ' ');
		bs_params(out, &f);
		buf_append_char(out, ')');
	} else {
		buf_append_str(out, "NIL");
	}
	mfield_free(&f);

	v = pt->opaque ? NULL : hdr_get(t, pt, "Content-Language");
	buf_append_char(out, ' ');
	if (v == NULL) {
		buf_append_str(out, "NIL");
	} else {
		struct buf l = BUF_INIT;
		size_t n = 0;
		char *save = NULL;
		for (char *tok = strtok_r(v, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save)) {
			if (n++ > 0)
				buf_append_char(&l, ' ');
			imap_nstr(&l, tok);
		}
		if (n == 0)
			buf_append_str(out, "NIL");
		else if (n == 1)
			buf_append(out, l.data, l.len);
		else {
			buf_append_char(out, '(');
			buf_append(out, l.data, l.len);
			buf_append_char(out, ')');
		}
		buf_free(&l);
		free(v);
	}
	buf_append_char(out, ' ');
	if (pt->opaque)
		buf_append_str(out, "NIL");
	else
		env_field(out, t, pt, "Content-Location");
}

static void bs_part(struct buf *out, const struct mtree *t, int idx, int ext);

static void
bs_multi(struct buf *out, const struct mtree *t, int idx, int ext, const struct mtype *ty)
{
	const struct mpart *pt = &t->p[idx];

	buf_append_char(out, '(');
	for (int c = pt->child; c >= 0; c = t->p[c].next)
		bs_part(out, t, c, ext);
	buf_append_char(out, ' ');
	imap_upper(out, ty->sub);
	if (ext) {
		buf_append_char(out, ' ');
		bs_params(out, &ty->f);
		bs_ext_tail(out, t, pt);
	}
	buf_append_char(out, ')');
}

static void
bs_single(struct buf *out, const struct mtree *t, int idx, int ext, struct mtype *ty)
{
	const struct mpart *pt = &t->p[idx];
	char *enc;

	if (strcmp(ty->type, "text") == 0 && mfield_param(&ty->f, "charset") == NULL) {
		/* RFC 2045 5.2: text without a charset is us-ascii (Dovecot says so too) */
		ty->f.params = xrealloc(ty->f.params, (ty->f.nparams + 1) * sizeof(*ty->f.params));
		ty->f.params[ty->f.nparams].name = xstrdup("charset");
		ty->f.params[ty->f.nparams++].value = xstrdup("us-ascii");
	}
	buf_append_char(out, '(');
	imap_upper(out, ty->type);
	buf_append_char(out, ' ');
	imap_upper(out, ty->sub);
	buf_append_char(out, ' ');
	bs_params(out, &ty->f);
	buf_append_char(out, ' ');
	env_field(out, t, pt, "Content-ID");
	buf_append_char(out, ' ');
	env_field(out, t, pt, "Content-Description");
	buf_append_char(out, ' ');
	enc = pt->opaque ? NULL : hdr_get(t, pt, "Content-Transfer-Encoding");
	imap_upper(out, enc != NULL && *enc != '\0' ? enc : "7bit");
	free(enc);
	buf_appendf(out, " %zu", pt->body_len);
	if (pt->kind == MP_MESSAGE) {
		buf_append_char(out, ' ');
		envelope(out, t, &t->p[pt->child]);
		buf_append_char(out, ' ');
		bs_part(out, t, pt->child, ext);
		buf_appendf(out, " %zu", count_lines(t->raw + pt->body, pt->body_len));
	} else if (strcmp(ty->type, "text") == 0) {
		buf_appendf(out, " %zu", count_lines(t->raw + pt->body, pt->body_len));
	}
	if (ext) {
		buf_append_char(out, ' ');
		env_field(out, t, pt, "Content-MD5");
		bs_ext_tail(out, t, pt);
	}
	buf_append_char(out, ')');
}

static void
bs_part(struct buf *out, const struct mtree *t, int idx, int ext)
{
	struct mtype ty;

	mtype_get(t, &t->p[idx], &ty);
	if (t->p[idx].kind == MP_MULTI)
		bs_multi(out, t, idx, ext, &ty);
	else
		bs_single(out, t, idx, ext, &ty);
	mtype_free(&ty);
}

void
imap_mime_bodystructure(const char *raw, size_t len, int extended, struct buf *out)
{
	struct mtree t;

	tree_init(&t, raw, len);
	bs_part(out, &t, 0, extended);
	tree_free(&t);
}

/* ------------------------------------------------------------ sections */

enum sec_kind { SEC_ALL, SEC_BODY, SEC_HEADER, SEC_FIELDS, SEC_FIELDS_NOT, SEC_TEXT, SEC_MIME };

struct section {
	unsigned nums[MIME_SECTION_NUMS];
	int nn;
	enum sec_kind kind;
	char **fields;
	size_t nfields;
};

static void
section_free(struct section *sec)
{
	for (size_t i = 0; i < sec->nfields; i++)
		free(sec->fields[i]);
	free(sec->fields);
	sec->fields = NULL;
	sec->nfields = 0;
}

static int
astring_char(char c)
{
	unsigned char u = (unsigned char)c;

	return u > ' ' && u < 0x7f && strchr("(){%*\"\\", c) == NULL;
}

/* "(" astring *(SP astring) ")" at s, to the end of the string. */
static int
section_fields(const char *s, struct section *sec)
{
	if (*s++ != '(')
		return -1;
	for (;;) {
		struct buf b = BUF_INIT;
		if (*s == '"') {
			for (s++; *s != '"'; s++) {
				if (*s == '\0' || *s == '\r' || *s == '\n') {
					buf_free(&b);
					return -1;
				}
				if (*s == '\\' && (s[1] == '\\' || s[1] == '"'))
					s++;
				buf_append_char(&b, *s);
			}
			s++;
		} else {
			while (astring_char(*s))
				buf_append_char(&b, *s++);
			if (b.len == 0)
				return -1;
		}
		if (sec->nfields >= MIME_SECTION_FIELDS) {
			buf_free(&b);
			return -1;
		}
		(void)buf_cstr(&b);
		sec->fields = xrealloc(sec->fields, (sec->nfields + 1) * sizeof(*sec->fields));
		sec->fields[sec->nfields++] = buf_steal(&b);
		if (*s == ')')
			return s[1] == '\0' ? 0 : -1;
		if (*s++ != ' ')
			return -1;
	}
}

/* section-msgtext (or MIME when allowed) at s; 0 or -1. */
static int
section_text(const char *s, int part, struct section *sec)
{
	size_t n;

	if ((n = str_prefix_ci(s, "HEADER.FIELDS.NOT ")) != 0) {
		sec->kind = SEC_FIELDS_NOT;
		return section_fields(s + n, sec);
	}
	if ((n = str_prefix_ci(s, "HEADER.FIELDS ")) != 0) {
		sec->kind = SEC_FIELDS;
		return section_fields(s + n, sec);
	}
	if (strcasecmp(s, "HEADER") == 0)
		sec->kind = SEC_HEADER;
	else if (strcasecmp(s, "TEXT") == 0)
		sec->kind = SEC_TEXT;
	else if (part && strcasecmp(s, "MIME") == 0)
		sec->kind = SEC_MIME;
	else
		return -1;
	return 0;
}

static int
section_parse(const char *s, struct section *sec)
{
	memset(sec, 0, sizeof(*sec));
	if (s == NULL)
		return -1;
	if (*s == '\0') {
		sec->kind = SEC_ALL;
		return 0;
	}
	if (!(*s >= '1' && *s <= '9'))
		return section_text(s, 0, sec);
	for (;;) {
		unsigned long v = 0;
		if (!(*s >= '1' && *s <= '9') || sec->nn >= MIME_SECTION_NUMS)
			return -1;
		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (unsigned long)(*s++ - '0');
			if (v > 0xffffffffUL)
				return -1;
		}
		sec->nums[sec->nn++] = (unsigned)v;
		if (*s == '\0') {
			sec->kind = SEC_BODY;
			return 0;
		}
		if (*s++ != '.')
			return -1;
		if (!(*s >= '0' && *s <= '9'))
			return section_text(s, 1, sec);
	}
}

int
imap_mime_section_valid(const char *section)
{
	struct section sec;
	int r = section_parse(section, &sec);

	section_free(&sec);
	return r == 0;
}

/* The part a list of part numbers names, or -1 when it does not exist. */
static int
section_resolve(const struct mtree *t, const struct section *sec)
{
	int e = 0, cur = -1;

	for (int i = 0; i < sec->nn; i++) {
		unsigned n = sec->nums[i];
		if (t->p[e].kind == MP_MULTI) {
			cur = t->p[e].child;
			while (cur >= 0 && --n > 0)
				cur = t->p[cur].next;
			if (cur < 0)
				return -1;
		} else if (n == 1) {
			cur = e;
		} else {
			return -1;
		}
		if (i + 1 < sec->nn) {
			if (t->p[cur].kind == MP_MESSAGE)
				e = t->p[cur].child;
			else if (t->p[cur].kind == MP_MULTI)
				e = cur;
			else
				return -1;
		}
	}
	return cur;
}

static int
field_listed(const struct mtree *t, const struct hline *h, const struct section *sec)
{
	for (size_t i = 0; i < sec->nfields; i++)
		if (hline_is(t->raw, h, sec->fields[i], strlen(sec->fields[i])))
			return 1;
	return 0;
}

static void
section_fields_out(const struct mtree *t, const struct mpart *pt, const struct section *sec,
    struct buf *out)
{
	size_t pos = pt->hdr, end = pt->hdr + pt->hdr_len;
	struct hline h;

	while (hline_next(t->raw, &pos, end, &h)) {
		if (h.name_len == 0)
			continue;
		if (field_listed(t, &h, sec) == (sec->kind == SEC_FIELDS))
			buf_append(out, t->raw + h.off, h.len);
	}
	buf_append_str(out, "\r\n");
}

int
imap_mime_section(const char *raw, size_t len, const char *section, struct buf *out)
{
	struct section sec;
	struct mtree t;
	const struct mpart *pt;
	int idx = 0;

	if (section_parse(section, &sec) < 0) {
		section_free(&sec);
		return -1;
	}
	tree_init(&t, raw, len);
	if (sec.nn > 0) {
		idx = section_resolve(&t, &sec);
		if (idx >= 0 && sec.kind != SEC_BODY && sec.kind != SEC_MIME)
			idx = t.p[idx].kind == MP_MESSAGE ? t.p[idx].child : -1;
	}
	pt = idx >= 0 ? &t.p[idx] : NULL;
	if (pt != NULL) {
		switch (sec.kind) {
		case SEC_ALL:
			buf_append(out, t.raw, t.len);
			break;
		case SEC_BODY:
		case SEC_TEXT:
			buf_append(out, t.raw + pt->body, pt->body_len);
			break;
		case SEC_HEADER:
		case SEC_MIME:
			buf_append(out, t.raw + pt->hdr, pt->hdr_len);
			break;
		case SEC_FIELDS:
		case SEC_FIELDS_NOT:
			section_fields_out(&t, pt, &sec, out);
			break;
		}
	}
	buf_reserve(out, 1);
	tree_free(&t);
	section_free(&sec);
	return 0;
}

/* ------------------------------------------------------------ SEARCH */

/* Case-folded UTF-8 copy of len bytes (invalid sequences replaced). g_free. */
static char *
fold(const char *s, size_t len)
{
	char *clean = xmemdup(s, len + 1), *valid, *f;

	clean[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (clean[i] == '\0')
			clean[i] = ' ';
	valid = g_utf8_make_valid(clean, (gssize)len);
	f = g_utf8_casefold(valid, -1);
	g_free(valid);
	free(clean);
	return f;
}

static int
contains(const char *hay, size_t len, const char *needle)
{
	char *h, *n;
	int r;

	if (*needle == '\0')
		return 1;
	h = fold(hay, len);
	n = fold(needle, strlen(needle));
	r = strstr(h, n) != NULL;
	g_free(h);
	g_free(n);
	return r;
}

/* A header value with RFC 2047 words decoded (UTF-8, caller g_free()s). */
static char *
decode_words(const char *v)
{
	if (mime_init() < 0)
		return g_strdup(v);
	return g_mime_utils_header_decode_text(NULL, v);
}

int
imap_mime_header_contains(const char *raw, size_t len, const char *field, const char *needle)
{
	struct mtree t;
	size_t pos, end, nl = strlen(field);
	struct hline h;
	int found = 0;

	tree_init(&t, raw, len);
	pos = t.p[0].hdr;
	end = pos + t.p[0].hdr_len;
	while (!found && hline_next(t.raw, &pos, end, &h)) {
		if (!hline_is(t.raw, &h, field, nl))
			continue;
		char *v = unfold(t.raw + h.val_off, h.val_len);
		char *d = decode_words(v);
		found = contains(d, strlen(d), needle);
		g_free(d);
		free(v);
	}
	tree_free(&t);
	return found;
}

/* The decoded text of a leaf part in *out (UTF-8 when the charset converts). */
static void
part_text(const struct mtree *t, const struct mpart *pt, const struct mtype *ty, struct buf *out)
{
	char *enc = hdr_get(t, pt, "Content-Transfer-Encoding");
	const unsigned char *in = (const unsigned char *)t->raw + pt->body;
	size_t n = pt->body_len, dn;
	unsigned char *dec = xmalloc(n + 4);
	int state = 0;
	guint32 save = 0;
	const char *cs = mfield_param(&ty->f, "charset");

	if (enc != NULL && strcasecmp(enc, "base64") == 0)
		dn = g_mime_encoding_base64_decode_step(in, n, dec, &state, &save);
	else if (enc != NULL && strcasecmp(enc, "quoted-printable") == 0)
		dn = g_mime_encoding_quoted_decode_step(in, n, dec, &state, &save);
	else {
		memcpy(dec, in, n);
		dn = n;
	}
	free(enc);
	if (cs != NULL && strcasecmp(cs, "utf-8") != 0 && strcasecmp(cs, "us-ascii") != 0) {
		gsize written = 0;
		char *u = g_convert((const char *)dec, (gssize)dn, "UTF-8",
		    g_mime_charset_iconv_name(cs), NULL, &written, NULL);
		if (u != NULL) {
			buf_append(out, u, written);
			g_free(u);
			free(dec);
			return;
		}
	}
	buf_append(out, dec, dn);
	free(dec);
}

int
imap_mime_body_contains(const char *raw, size_t len, const char *needle)
{
	struct mtree t;
	int found = 0;

	if (mime_init() < 0)
		return 0;
	tree_init(&t, raw, len);
	for (int i = 0; i < t.n && !found; i++) {
		struct mtype ty;
		if (t.p[i].kind != MP_LEAF)
			continue;
		mtype_get(&t, &t.p[i], &ty);
		if (strcmp(ty.type, "text") == 0 || t.p[i].opaque) {
			struct buf b = BUF_INIT;
			part_text(&t, &t.p[i], &ty, &b);
			found = contains(b.data != NULL ? b.data : "", b.len, needle);
			buf_free(&b);
		}
		mtype_free(&ty);
	}
	tree_free(&t);
	return found;
}

int
imap_mime_text_contains(const char *raw, size_t len, const char *needle)
{
	struct mtree t;
	size_t pos, end;
	struct hline h;
	struct buf b = BUF_INIT;
	int found;

	tree_init(&t, raw, len);
	pos = t.p[0].hdr;
	end = pos + t.p[0].hdr_len;
	while (hline_next(t.raw, &pos, end, &h)) {
		char *v = unfold(t.raw + h.off, h.len);
		char *d = decode_words(v);
		buf_append_str(&b, d);
		buf_append_char(&b, '\n');
		g_free(d);
		free(v);
	}
	tree_free(&t);
	found = contains(b.data != NULL ? b.data : "", b.len, needle);
	buf_free(&b);
	return found || imap_mime_body_contains(raw, len, needle);
}

time_t
imap_mime_date(const char *raw, size_t len)
{
	struct mtree t;
	char *v;
	time_t r = -1;

	tree_init(&t, raw, len);
	v = hdr_get(&t, &t.p[0], "Date");
	tree_free(&t);
	if (v != NULL && mime_init() == 0) {
		GDateTime *dt = g_mime_utils_header_decode_date(v);
		if (dt != NULL) {
			r = (time_t)g_date_time_to_unix(dt);
			g_date_time_unref(dt);
		}
	}
	free(v);
	return r;
}
