/*
 * NAME
 *	smtp_parse — SMTP command, path and ESMTP parameter parsing
 *
 * DESCRIPTION
 *	Pure functions over one command line (CRLF already removed).  Every
 *	limit is checked while scanning, before anything is copied, and every
 *	output buffer is sized by the RFC limit it holds, so malformed or
 *	hostile input only ever yields an error code.
 *
 *	Paths (RFC 5321 4.1.2):
 *	    Path      = "<" [ A-d-l ":" ] Mailbox ">"     (source route dropped)
 *	    Mailbox   = Local-part "@" ( Domain / address-literal )
 *	    Local-part= Dot-string / Quoted-string
 *	with UTF-8 (RFC 6531) in local parts and domain labels only when the
 *	transaction declared SMTPUTF8.  Limits: local part 64, domain 255,
 *	whole path (with the angle brackets) 256 octets.
 *
 * DIAGNOSTICS
 *	enum smtp_perr; smtp_perr_reply() maps it to a reply with an enhanced
 *	status code.
 */
#include "smtp/smtp_parse.h"

#include <arpa/inet.h>
#include <string.h>

#include "lib/strutil.h"
#include "queue/queue.h"

static const char *const cmd_names[SMTP_CMD_COUNT] = {
	[SMTP_CMD_UNKNOWN] = "UNKNOWN",
	[SMTP_CMD_HELO] = "HELO",
	[SMTP_CMD_EHLO] = "EHLO",
	[SMTP_CMD_MAIL] = "MAIL",
	[SMTP_CMD_RCPT] = "RCPT",
	[SMTP_CMD_DATA] = "DATA",
	[SMTP_CMD_BDAT] = "BDAT",
	[SMTP_CMD_RSET] = "RSET",
	[SMTP_CMD_NOOP] = "NOOP",
	[SMTP_CMD_QUIT] = "QUIT",
	[SMTP_CMD_VRFY] = "VRFY",
	[SMTP_CMD_HELP] = "HELP",
	[SMTP_CMD_STARTTLS] = "STARTTLS",
	[SMTP_CMD_AUTH] = "AUTH",
};

const char *
smtp_cmd_name(enum smtp_cmd cmd)
{
	if ((unsigned)cmd >= SMTP_CMD_COUNT)
		return "UNKNOWN";
	return cmd_names[cmd];
}

static int
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static int
is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static unsigned char
to_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/*
 * Length of the valid UTF-8 sequence at s (at most len bytes), or 0 when it
 * is malformed: overlong forms, surrogates and code points past U+10FFFF are
 * refused.
 */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	unsigned c = s[0];
	size_t n;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static int
utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

static int
has_8bit(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

enum smtp_perr
smtp_parse_command(const char *line, size_t len, struct smtp_cmdline *cl)
{
	size_t vlen = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == '\0' || (c < ' ' && c != '\t') || c == 0x7f)
			return SMTP_PERR_LINE;
	}
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	cl->cmd = SMTP_CMD_UNKNOWN;
	for (int c = SMTP_CMD_HELO; c < SMTP_CMD_COUNT; c++) {
		const char *name = cmd_names[c];
		if (strlen(name) == vlen && strncasecmp(name, line, vlen) == 0) {
			cl->cmd = (enum smtp_cmd)c;
			break;
		}
	}
	const char *a = line + vlen;
	while (*a == ' ')
		a++;
	cl->args = a;
	return SMTP_PERR_OK;
}

enum smtp_perr
smtp_parse_helo(const char *args, char out[SMTP_HELO_MAX + 1])
{
	size_t n = 0;
	while (args[n] != '\0' && args[n] != ' ')
		n++;
	if (n == 0)
		return SMTP_PERR_SYNTAX;
	for (size_t i = n; args[i] != '\0'; i++)
		if (args[i] != ' ')
			return SMTP_PERR_SYNTAX;
	if (n > SMTP_HELO_MAX)
		return SMTP_PERR_SYNTAX;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)args[i];
		if (c < 0x21 || c > 0x7e)
			return SMTP_PERR_SYNTAX;
	}
	memcpy(out, args, n);
	out[n] = '\0';
	return SMTP_PERR_OK;
}

/* Dot-string: Atom *("." Atom); returns bytes consumed or 0. */
static size_t
scan_dot_string(const char *s, size_t len, int utf8_ok)
{
	size_t i = 0, atom = 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (atom == 0)
				return 0;
			atom = 0;
			i++;
			continue;
		}
		if (c >= 0x80 && utf8_ok) {
			size_t n = utf8_seq((const unsigned char *)s + i, len - i);
			if (n == 0)
				return 0;
			i += n;
			atom++;
			continue;
		}
		if (!is_atext(c))
			break;
		i++;
		atom++;
	}
	return atom == 0 ? 0 : i;
}

/* Quoted-string starting at s[0] == '"'; returns bytes consumed or 0. */
static size_t
scan_quoted_string(const char *s, size_t len, int utf8_ok)
{
	size_t i = 1;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (i + 1 >= len || (unsigned char)s[i + 1] < 32 ||
			    (unsigned char)s[i + 1] > 126)
				return 0;
			i += 2;
		} else if (c >= 0x80 && utf8_ok) {
			size_t n = utf8_seq((const unsigned char *)s + i, len - i);
			if (n == 0)
				return 0;
			i += n;
		} else if (c >= 32 && c <= 126) {
			i++;
		} else {
			return 0;
		}
	}
	return 0;
}

/* One sub-domain label; returns bytes consumed or 0. */
static size_t
scan_label(const char *s, size_t len, int utf8_ok)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80 && utf8_ok) {
			size_t n = utf8_seq((const unsigned char *)s + i, len - i);
			if (n == 0)
				return 0;
			i += n;
		} else if (is_alnum(c) || (c == '-' && i > 0)) {
			i++;
		} else {
			break;
		}
	}
	if (i == 0 || s[i - 1] == '-' || i > 63)
		return 0;
	return i;
}

/* Domain / address-literal occupying exactly s[0..len). */
static int
domain_valid(const char *s, size_t len, int utf8_ok)
{
	if (len == 0)
		return 0;
	if (s[0] == '[') {
		char lit[64];
		if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof(lit))
			return 0;
		memcpy(lit, s + 1, len - 2);
		lit[len - 2] = '\0';
		unsigned char bin[16];
		if (strncasecmp(lit, "IPv6:", 5) == 0)
			return inet_pton(AF_INET6, lit + 5, bin) == 1;
		return inet_pton(AF_INET, lit, bin) == 1;
	}
	size_t i = 0;
	for (;;) {
		size_t n = scan_label(s + i, len - i, utf8_ok);
		if (n == 0)
			return 0;
		i += n;
		if (i == len)
			return 1;
		if (s[i] != '.')
			return 0;
		i++;
	}
}

/* A-d-l ":" — "@dom,@dom:"; returns bytes consumed (0 when none, -1 bad). */
static long
scan_source_route(const char *s, size_t len)
{
	if (len == 0 || s[0] != '@')
		return 0;
	const char *colon = memchr(s, ':', len);
	if (colon == NULL)
		return -1;
	size_t end = (size_t)(colon - s), i = 0;
	while (i < end) {
		if (s[i] != '@')
			return -1;
		size_t j = i + 1;
		while (j < end && s[j] != ',')
			j++;
		if (!domain_valid(s + i + 1, j - i - 1, 0))
			return -1;
		i = j < end ? j + 1 : j;
	}
	return (long)end + 1;
}

static enum smtp_perr
parse_mailbox(const char *c, size_t clen, int is_mail, int utf8_ok, struct smtp_path *p)
{
	size_t llen = c[0] == '"' ? scan_quoted_string(c, clen, utf8_ok)
	    : scan_dot_string(c, clen, utf8_ok);
	if (llen == 0)
		return SMTP_PERR_ADDR_SYNTAX;
	if (llen == clen && !is_mail && strncasecmp(c, "postmaster", clen) == 0 && clen == 10) {
		memcpy(p->addr, c, clen);
		p->addr[clen] = '\0';
		p->postmaster = 1;
		return SMTP_PERR_OK;
	}
	if (llen >= clen || c[llen] != '@')
		return SMTP_PERR_ADDR_SYNTAX;
	if (llen > SMTP_LOCAL_MAX)
		return SMTP_PERR_ADDR_LONG;
	const char *d = c + llen + 1;
	size_t dlen = clen - llen - 1;
	if (dlen > SMTP_DOMAIN_MAX)
		return SMTP_PERR_ADDR_LONG;
	if (!domain_valid(d, dlen, utf8_ok))
		return SMTP_PERR_ADDR_SYNTAX;
	memcpy(p->addr, c, clen);
	p->addr[clen] = '\0';
	for (size_t i = 0; i < dlen; i++)
		p->domain[i] = (char)to_lower((unsigned char)d[i]);
	p->domain[dlen] = '\0';
	return SMTP_PERR_OK;
}

enum smtp_perr
smtp_parse_path(const char *s, size_t len, int is_mail, int utf8_ok, struct smtp_path *p)
{
	memset(p, 0, sizeof(*p));
	if (len < 2 || s[0] != '<' || s[len - 1] != '>')
		return SMTP_PERR_ADDR_SYNTAX;
	const char *c = s + 1;
	size_t clen = len - 2;
	if (clen == 0) {
		if (!is_mail)
			return SMTP_PERR_NULL_RCPT;
		p->null_path = 1;
		return SMTP_PERR_OK;
	}
	if (len > SMTP_PATH_MAX)
		return SMTP_PERR_ADDR_LONG;
	if (has_8bit(c, clen)) {
		if (!utf8_ok)
			return SMTP_PERR_ADDR_UTF8;
		if (!utf8_valid(c, clen))
			return SMTP_PERR_ADDR_SYNTAX;
		p->utf8 = 1;
	}
	long route = scan_source_route(c, clen);
	if (route < 0)
		return SMTP_PERR_ADDR_SYNTAX;
	c += route;
	clen -= (size_t)route;
	if (clen == 0)
		return SMTP_PERR_ADDR_SYNTAX;
	return parse_mailbox(c, clen, is_mail, utf8_ok, p);
}

/*
 * Finds the end of "<...>" at s, honouring quoted local parts that may
 * contain '>'.  Returns the length including both brackets, or 0.
 */
static size_t
path_extent(const char *s)
{
	if (s[0] != '<')
		return 0;
	int quoted = 0;
	for (size_t i = 1; s[i] != '\0'; i++) {
		if (quoted && s[i] == '\\' && s[i + 1] != '\0')
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
		else if (s[i] == '>' && !quoted)
			return i + 1;
	}
	return 0;
}

/* xtext (RFC 3461 4): printable ASCII except '+' and '=', "+HH" escapes. */
static int
xtext_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (i + 2 >= len)
				return 0;
			for (int k = 1; k <= 2; k++) {
				unsigned char h = (unsigned char)s[i + (size_t)k];
				if (!is_digit(h) && !(h >= 'A' && h <= 'F'))
					return 0;
			}
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return 0;
		}
	}
	return 1;
}

/* One "KEY[=VALUE]" token from the parameter list. */
struct param {
	const char *key;
	size_t klen;
	const char *val;    /* NULL when no '=' */
	size_t vlen;
};

/* Next parameter from *sp; 1 found, 0 end, -1 malformed. */
static int
next_param(const char **sp, struct param *pm)
{
	const char *s = *sp;
	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	const char *tok = s;
	while (*s != '\0' && *s != ' ')
		s++;
	*sp = s;
	const char *eq = memchr(tok, '=', (size_t)(s - tok));
	pm->key = tok;
	pm->klen = eq != NULL ? (size_t)(eq - tok) : (size_t)(s - tok);
	pm->val = eq != NULL ? eq + 1 : NULL;
	pm->vlen = eq != NULL ? (size_t)(s - eq - 1) : 0;
	if (pm->klen == 0 || !is_alnum((unsigned char)pm->key[0]))
		return -1;
	for (size_t i = 1; i < pm->klen; i++)
		if (!is_alnum((unsigned char)pm->key[i]) && pm->key[i] != '-')
			return -1;
	if (pm->val != NULL) {
		if (pm->vlen == 0)
			return -1;
		for (size_t i = 0; i < pm->vlen; i++) {
			unsigned char c = (unsigned char)pm->val[i];
			if (c == '=' || c < 33 || c == 127)
				return -1;
		}
	}
	return 1;
}

static int
key_is(const struct param *pm, const char *name)
{
	return strlen(name) == pm->klen && strncasecmp(pm->key, name, pm->klen) == 0;
}

static int
val_is(const struct param *pm, const char *name)
{
	return pm->val != NULL && strlen(name) == pm->vlen &&
	    strncasecmp(pm->val, name, pm->vlen) == 0;
}

static enum smtp_perr
mail_size(const struct param *pm, struct smtp_mail *m)
{
	if (m->has_size || pm->val == NULL || pm->vlen > 20)
		return SMTP_PERR_PARAM_VALUE;
	uint64_t v = 0;
	for (size_t i = 0; i < pm->vlen; i++) {
		unsigned char c = (unsigned char)pm->val[i];
		if (!is_digit(c))
			return SMTP_PERR_PARAM_VALUE;
		unsigned d = (unsigned)(c - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	m->has_size = 1;
	m->size = v;
	return SMTP_PERR_OK;
}

static enum smtp_perr
mail_param(const struct param *pm, struct smtp_mail *m, unsigned *seen)
{
	if (key_is(pm, "SIZE"))
		return mail_size(pm, m);
	if (key_is(pm, "BODY")) {
		if (m->body != SMTP_BODY_NONE)
			return SMTP_PERR_PARAM_VALUE;
		if (val_is(pm, "7BIT"))
			m->body = SMTP_BODY_7BIT;
		else if (val_is(pm, "8BITMIME"))
			m->body = SMTP_BODY_8BITMIME;
		else if (val_is(pm, "BINARYMIME"))
			m->body = SMTP_BODY_BINARYMIME;
		else
			return SMTP_PERR_PARAM_VALUE;
		return SMTP_PERR_OK;
	}
	if (key_is(pm, "SMTPUTF8")) {
		if (m->smtputf8 || pm->val != NULL)
			return SMTP_PERR_PARAM_VALUE;
		m->smtputf8 = 1;
		return SMTP_PERR_OK;
	}
	if (key_is(pm, "RET")) {
		if (m->ret != SMTP_RET_NONE)
			return SMTP_PERR_PARAM_VALUE;
		if (val_is(pm, "FULL"))
			m->ret = SMTP_RET_FULL;
		else if (val_is(pm, "HDRS"))
			m->ret = SMTP_RET_HDRS;
		else
			return SMTP_PERR_PARAM_VALUE;
		return SMTP_PERR_OK;
	}
	if (key_is(pm, "ENVID")) {
		if (m->envid[0] != '\0' || pm->val == NULL || pm->vlen > SMTP_ENVID_MAX ||
		    !xtext_valid(pm->val, pm->vlen))
			return SMTP_PERR_PARAM_VALUE;
		memcpy(m->envid, pm->val, pm->vlen);
		m->envid[pm->vlen] = '\0';
		return SMTP_PERR_OK;
	}
	if (key_is(pm, "AUTH")) {
		/* RFC 4954 5: accepted and ignored (we offer no AUTH here). */
		if ((*seen & 1) || pm->val == NULL)
			return SMTP_PERR_PARAM_VALUE;
		*seen |= 1;
		return SMTP_PERR_OK;
	}
	return SMTP_PERR_PARAM_UNKNOWN;
}

/*
 * Splits "<path> params" at args: *path_r / *plen_r and the parameter text.
 * Tolerates spaces after the colon, as most servers do.
 */
static enum smtp_perr
split_path(const char *args, const char *prefix, const char **path_r, size_t *plen_r,
    const char **params_r)
{
	size_t n = str_prefix_ci(args, prefix);
	if (n == 0)
		return SMTP_PERR_SYNTAX;
	const char *p = args + n;
	while (*p == ' ')
		p++;
	size_t plen = path_extent(p);
	if (plen == 0)
		return SMTP_PERR_ADDR_SYNTAX;
	if (p[plen] != '\0' && p[plen] != ' ')
		return SMTP_PERR_ADDR_SYNTAX;
	*path_r = p;
	*plen_r = plen;
	*params_r = p + plen;
	return SMTP_PERR_OK;
}

enum smtp_perr
smtp_parse_mail(const char *args, struct smtp_mail *m)
{
	const char *path, *params;
	size_t plen;
	memset(m, 0, sizeof(*m));
	enum smtp_perr e = split_path(args, "FROM:", &path, &plen, &params);
	if (e != SMTP_PERR_OK)
		return e;
	struct param pm;
	unsigned seen = 0;
	int r;
	while ((r = next_param(&params, &pm)) > 0) {
		e = mail_param(&pm, m, &seen);
		if (e != SMTP_PERR_OK)
			return e;
	}
	if (r < 0)
		return SMTP_PERR_SYNTAX;
	return smtp_parse_path(path, plen, 1, m->smtputf8, &m->path);
}

static enum smtp_perr
rcpt_notify(const struct param *pm, struct smtp_rcpt *r)
{
	if (r->notify != 0 || pm->val == NULL)
		return SMTP_PERR_PARAM_VALUE;
	size_t i = 0;
	while (i < pm->vlen) {
		size_t j = i;
		while (j < pm->vlen && pm->val[j] != ',')
			j++;
		struct param item = { pm->val + i, j - i, pm->val + i, j - i };
		unsigned bit;
		if (val_is(&item, "NEVER"))
			bit = QUEUE_NOTIFY_NEVER;
		else if (val_is(&item, "SUCCESS"))
			bit = QUEUE_NOTIFY_SUCCESS;
		else if (val_is(&item, "FAILURE"))
			bit = QUEUE_NOTIFY_FAILURE;
		else if (val_is(&item, "DELAY"))
			bit = QUEUE_NOTIFY_DELAY;
		else
			return SMTP_PERR_PARAM_VALUE;
		if (r->notify & bit)
			return SMTP_PERR_PARAM_VALUE;
		r->notify |= bit;
		i = j + 1;
		if (j + 1 == pm->vlen)
			return SMTP_PERR_PARAM_VALUE;   /* trailing comma */
	}
	if ((r->notify & QUEUE_NOTIFY_NEVER) && r->notify != QUEUE_NOTIFY_NEVER)
		return SMTP_PERR_PARAM_VALUE;
	return SMTP_PERR_OK;
}

static enum smtp_perr
rcpt_orcpt(const struct param *pm, struct smtp_rcpt *r)
{
	if (r->orcpt[0] != '\0' || pm->val == NULL || pm->vlen > SMTP_ORCPT_MAX)
		return SMTP_PERR_PARAM_VALUE;
	const char *semi = memchr(pm->val, ';', pm->vlen);
	if (semi == NULL || semi == pm->val)
		return SMTP_PERR_PARAM_VALUE;
	for (const char *t = pm->val; t < semi; t++)
		if (!is_alnum((unsigned char)*t) && *t != '-')
			return SMTP_PERR_PARAM_VALUE;
	size_t xlen = pm->vlen - (size_t)(semi + 1 - pm->val);
	if (xlen == 0 || !xtext_valid(semi + 1, xlen))
		return SMTP_PERR_PARAM_VALUE;
	memcpy(r->orcpt, pm->val, pm->vlen);
	r->orcpt[pm->vlen] = '\0';
	return SMTP_PERR_OK;
}

enum smtp_perr
smtp_parse_rcpt(const char *args, int utf8_ok, struct smtp_rcpt *r)
{
	const char *path, *params;
	size_t plen;
	memset(r, 0, sizeof(*r));
	enum smtp_perr e = split_path(args, "TO:", &path, &plen, &params);
	if (e != SMTP_PERR_OK)
		return e;
	struct param pm;
	int rc;
	while ((rc = next_param(&params, &pm)) > 0) {
		if (key_is(&pm, "NOTIFY"))
			e = rcpt_notify(&pm, r);
		else if (key_is(&pm, "ORCPT"))
			e = rcpt_orcpt(&pm, r);
		else
			e = SMTP_PERR_PARAM_UNKNOWN;
		if (e != SMTP_PERR_OK)
			return e;
	}
	if (rc < 0)
		return SMTP_PERR_SYNTAX;
	return smtp_parse_path(path, plen, 0, utf8_ok, &r->path);
}

enum smtp_perr
smtp_parse_bdat(const char *args, uint64_t *size_r, int *last_r)
{
	size_t n = 0;
	uint64_t v = 0;
	while (is_digit((unsigned char)args[n])) {
		unsigned d = (unsigned)(args[n] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return SMTP_PERR_SYNTAX;
		v = v * 10 + d;
		n++;
	}
	if (n == 0 || (args[n] != '\0' && args[n] != ' '))
		return SMTP_PERR_SYNTAX;
	const char *rest = args + n;
	while (*rest == ' ')
		rest++;
	*last_r = 0;
	if (*rest != '\0') {
		size_t k = str_prefix_ci(rest, "LAST");
		if (k == 0)
			return SMTP_PERR_SYNTAX;
		rest += k;
		while (*rest == ' ')
			rest++;
		if (*rest != '\0')
			return SMTP_PERR_SYNTAX;
		*last_r = 1;
	}
	*size_r = v;
	return SMTP_PERR_OK;
}

const char *
smtp_perr_reply(enum smtp_perr e, int is_mail)
{
	switch (e) {
	case SMTP_PERR_OK:
		return "250 2.0.0 Ok";
	case SMTP_PERR_SYNTAX:
		return "501 5.5.4 Syntax error in parameters or arguments";
	case SMTP_PERR_ADDR_SYNTAX:
		return is_mail ? "501 5.1.7 Bad sender address syntax"
		    : "501 5.1.3 Bad recipient address syntax";
	case SMTP_PERR_ADDR_LONG:
		return is_mail ? "553 5.1.7 Sender address too long"
		    : "553 5.1.3 Recipient address too long";
	case SMTP_PERR_ADDR_UTF8:
		return "553 5.6.7 Non-ASCII address requires SMTPUTF8";
	case SMTP_PERR_NULL_RCPT:
		return "501 5.1.3 Null recipient not allowed";
	case SMTP_PERR_PARAM_UNKNOWN:
		return "555 5.5.4 Unsupported parameter";
	case SMTP_PERR_PARAM_VALUE:
		return "501 5.5.4 Invalid parameter value";
	case SMTP_PERR_LINE:
		return "500 5.5.2 Invalid characters in command";
	}
	return "501 5.5.4 Syntax error";
}
