/*
 * impersonation.c — executive display names from outside addresses and
 * look-alike domains of the tenant's own (see impersonation.h).
 *
 * Names are compared as sorted word lists after normalisation: Unicode
 * compatibility decomposition with the combining marks dropped ("José" →
 * "jose"), case folded, punctuation turned into blanks, single-letter words
 * (middle initials) dropped.  Sorting the words makes "Doe, Jane", "Jane Doe"
 * and "DOE Jane" the same name.
 *
 * Domains are compared on their registrable label (the label left of the
 * public suffix, approximated by the last label or a short list of
 * two-label suffixes such as co.uk), after folding to a "skeleton": xn--
 * labels decoded (RFC 3492), confusable Cyrillic/Greek letters and accented
 * Latin letters mapped to ASCII, then rn→m, vv→w, 0→o and 1/l/|→i.  A domain
 * looks like the tenant's when it is not the tenant's (nor a subdomain) and
 * its label's skeleton equals the tenant label's (homoglyphs, TLD swap), or
 * is within Damerau-Levenshtein distance 1 (2 for labels of 8 or more), or
 * is the tenant label with words or hyphens added ("acme-payments",
 * "secureacme", "ac-me").  Labels shorter than 4 characters are only
 * compared by skeleton: "ab.test" is not a look-alike of "ac.test".
 */
#include "hygiene/impersonation.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <glib.h>
#include <gmime/gmime.h>

#include "hygiene/hygiene.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define LABEL_MAX    63     /* DNS label */
#define DOMAIN_MAX   253
#define NAME_MAX_LEN 256    /* display names longer than this are not compared */
#define MIN_FUZZY    4      /* shortest tenant label compared by edit distance */

/* ------------------------------------------------------------ names */

static int
word_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lower-case words of a display name, marks and punctuation gone,
 * initials dropped, sorted and joined by one blank (caller frees). */
static char *
name_key(const char *name)
{
	if (strlen(name) > NAME_MAX_LEN || !g_utf8_validate(name, -1, NULL))
		return NULL;
	char *norm = g_utf8_normalize(name, -1, G_NORMALIZE_ALL);
	if (norm == NULL)
		return NULL;
	char *fold = g_utf8_casefold(norm, -1);
	g_free(norm);
	struct buf clean = BUF_INIT;
	for (const char *p = fold; *p != '\0'; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (g_unichar_ismark(c))
			continue;
		if (g_unichar_isalnum(c)) {
			char u[8];
			int n = g_unichar_to_utf8(c, u);
			buf_append(&clean, u, (size_t)n);
		} else {
			buf_append_char(&clean, ' ');
		}
	}
	g_free(fold);
	/* words, initials dropped, sorted */
	char **words = g_strsplit(buf_cstr(&clean), " ", -1);
	buf_free(&clean);
	size_t n = 0;
	for (size_t i = 0; words[i] != NULL; i++)
		if (g_utf8_strlen(words[i], -1) > 1)
			words[n++] = words[i];
		else
			g_free(words[i]);
	words[n] = NULL;
	qsort(words, n, sizeof(char *), word_cmp);
	struct buf key = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_append_char(&key, ' ');
		buf_append_str(&key, words[i]);
	}
	g_strfreev(words);
	if (key.len == 0) {
		buf_free(&key);
		return NULL;
	}
	return buf_steal(&key);
}

/* ---------------------------------------------------------- punycode */

/* RFC 3492 decoding of what follows "xn--" into code points; -1 when bad. */
static int
punycode_decode(const char *in, uint32_t *out, size_t *n_r, size_t max)
{
	enum { BASE = 36, TMIN = 1, TMAX = 26, SKEW = 38, DAMP = 700, IBIAS = 72, INITN = 128 };
	size_t len = strlen(in), b = 0, n = 0;
	for (size_t j = 0; j < len; j++)
		if (in[j] == '-')
			b = j;
	for (size_t j = 0; j < b; j++) {
		if ((unsigned char)in[j] >= 0x80 || n >= max)
			return -1;
		out[n++] = (unsigned char)in[j];
	}
	uint32_t cp = INITN, bias = IBIAS, i = 0;
	for (size_t pos = b > 0 ? b + 1 : 0; pos < len;) {
		uint32_t oldi = i, w = 1;
		for (uint32_t k = BASE;; k += BASE) {
			if (pos >= len)
				return -1;
			char c = in[pos++];
			uint32_t digit;
			if (c >= 'a' && c <= 'z')
				digit = (uint32_t)(c - 'a');
			else if (c >= 'A' && c <= 'Z')
				digit = (uint32_t)(c - 'A');
			else if (c >= '0' && c <= '9')
				digit = (uint32_t)(c - '0') + 26;
			else
				return -1;
			if (digit > (UINT32_MAX - i) / w)
				return -1;
			i += digit * w;
			uint32_t t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
			if (digit < t)
				break;
			if (w > UINT32_MAX / (BASE - t))
				return -1;
			w *= BASE - t;
		}
		/* adapt the bias */
		uint32_t delta = oldi == 0 ? (i - oldi) / DAMP : (i - oldi) / 2;
		delta += delta / (uint32_t)(n + 1);
		uint32_t k = 0;
		while (delta > ((BASE - TMIN) * TMAX) / 2) {
			delta /= BASE - TMIN;
			k += BASE;
		}
		bias = k + (BASE - TMIN + 1) * delta / (delta + SKEW);
		if (i / (uint32_t)(n + 1) > UINT32_MAX - cp || n >= max)
			return -1;
		cp += i / (uint32_t)(n + 1);
		i %= (uint32_t)(n + 1);
		memmove(&out[i + 1], &out[i], (n - i) * sizeof(*out));
		out[i++] = cp;
		n++;
	}
	*n_r = n;
	return 0;
}

/* ---------------------------------------------------------- skeletons */

/* Cyrillic and Greek letters that look like Latin ones. */
static const struct { uint32_t cp; char ascii; } confusables[] = {
	{ 0x0430, 'a' }, { 0x0435, 'e' }, { 0x043e, 'o' }, { 0x0440, 'p' }, { 0x0441, 'c' },
	{ 0x0443, 'y' }, { 0x0445, 'x' }, { 0x0456, 'i' }, { 0x0458, 'j' }, { 0x0455, 's' },
	{ 0x0501, 'd' }, { 0x04bb, 'h' }, { 0x04cf, 'l' }, { 0x043a, 'k' }, { 0x043c, 'm' },
	{ 0x0442, 't' }, { 0x0432, 'b' }, { 0x043d, 'h' }, { 0x0261, 'g' }, { 0x0131, 'i' },
	{ 0x03bf, 'o' }, { 0x03b1, 'a' }, { 0x03b9, 'i' }, { 0x03ba, 'k' }, { 0x03bd, 'v' },
	{ 0x03c4, 't' }, { 0x03c1, 'p' }, { 0x03c7, 'x' }, { 0x03c5, 'u' }, { 0x03b5, 'e' },
	{ 0x0391, 'a' }, { 0x0392, 'b' }, { 0x0395, 'e' }, { 0x0397, 'h' }, { 0x0399, 'i' },
	{ 0x039a, 'k' }, { 0x039c, 'm' }, { 0x039d, 'n' }, { 0x039f, 'o' }, { 0x03a1, 'p' },
	{ 0x03a4, 't' }, { 0x03a7, 'x' }, { 0x03a5, 'y' }, { 0x0410, 'a' }, { 0x0415, 'e' },
	{ 0x041e, 'o' }, { 0x0420, 'p' }, { 0x0421, 'c' }, { 0x0425, 'x' },
};

/* One code point as the ASCII letter it looks like, or 0. */
static char
fold_char(uint32_t cp)
{
	if (cp < 0x80)
		return (char)g_ascii_tolower((gchar)cp);
	for (size_t i = 0; i < sizeof(confusables) / sizeof(confusables[0]); i++)
		if (confusables[i].cp == cp)
			return confusables[i].ascii;
	gunichar d[8];
	gsize n = g_unichar_fully_decompose((gunichar)cp, TRUE, d, 8);
	if (n > 0 && d[0] < 0x80)
		return (char)g_ascii_tolower((gchar)d[0]);
	return 0;
}

/* The label's code points: xn-- decoded, UTF-8 read, else bytes. */
static int
label_codepoints(const char *label, uint32_t *cps, size_t *n_r)
{
	if (strncasecmp(label, "xn--", 4) == 0)
		return punycode_decode(label + 4, cps, n_r, LABEL_MAX);
	size_t n = 0;
	if (!g_utf8_validate(label, -1, NULL))
		return -1;
	for (const char *p = label; *p != '\0'; p = g_utf8_next_char(p)) {
		if (n >= LABEL_MAX)
			return -1;
		cps[n++] = g_utf8_get_char(p);
	}
	*n_r = n;
	return 0;
}

/* The ASCII skeleton of one label into out (LABEL_MAX + 1); -1 if unusable. */
static int
label_skeleton(const char *label, char *out)
{
	uint32_t cps[LABEL_MAX];
	size_t n;
	if (label_codepoints(label, cps, &n) < 0)
		return -1;
	char ascii[LABEL_MAX + 1];
	size_t a = 0;
	for (size_t i = 0; i < n; i++) {
		char c = fold_char(cps[i]);
		ascii[a++] = c != 0 ? c : '?';
	}
	ascii[a] = '\0';
	size_t o = 0;
	for (size_t i = 0; i < a; i++) {
		char c = ascii[i];
		if (c == 'r' && ascii[i + 1] == 'n') {
			c = 'm';
			i++;
		} else if (c == 'v' && ascii[i + 1] == 'v') {
			c = 'w';
			i++;
		} else if (c == '0') {
			c = 'o';
		} else if (c == '1' || c == 'l' || c == '|') {
			c = 'i';
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* ---------------------------------------------------------- domains */

/* Two-label public suffixes common enough to matter. */
static const char *const suffixes2[] = {
	"co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "com.au", "net.au", "org.au", "co.nz",
	"co.jp", "ne.jp", "co.za", "com.br", "com.cn", "com.mx", "co.in", "com.tr", "co.il",
	"com.sg", "com.hk", "co.kr", "com.ar",
};

struct dname {
	char lower[DOMAIN_MAX + 1];   /* the whole domain, lower case, no final dot */
	char label[LABEL_MAX + 1];    /* the registrable label */
	const char *suffix;           /* into lower: what follows the label ("" for none) */
};

static int
dname_split(const char *domain, struct dname *d)
{
	size_t len = strlen(domain);
	while (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > DOMAIN_MAX)
		return -1;
	memcpy(d->lower, domain, len);
	d->lower[len] = '\0';
	for (size_t i = 0; i < len; i++)
		d->lower[i] = (char)g_ascii_tolower(d->lower[i]);
	/* the suffix: the last label, or the last two when they are listed */
	const char *last = strrchr(d->lower, '.');
	const char *suffix = last != NULL ? last + 1 : d->lower + len;
	for (size_t i = 0; last != NULL && i < sizeof(suffixes2) / sizeof(suffixes2[0]); i++) {
		size_t sl = strlen(suffixes2[i]);
		if (len > sl + 1 && strcmp(d->lower + len - sl, suffixes2[i]) == 0 &&
		    d->lower[len - sl - 1] == '.') {
			suffix = d->lower + len - sl;
			break;
		}
	}
	/* the label: what precedes the suffix, back to the previous dot */
	const char *end = suffix > d->lower ? suffix - 1 : d->lower + len;
	if (suffix == d->lower + len)
		end = d->lower + len;
	const char *start = end;
	while (start > d->lower && start[-1] != '.')
		start--;
	if (end == start || (size_t)(end - start) > LABEL_MAX)
		return -1;
	memcpy(d->label, start, (size_t)(end - start));
	d->label[end - start] = '\0';
	d->suffix = suffix;
	return 0;
}

/* domain is own or one of its subdomains */
static int
domain_within(const char *domain, const char *own)
{
	size_t dl = strlen(domain), ol = strlen(own);
	while (dl > 0 && domain[dl - 1] == '.')
		dl--;
	while (ol > 0 && own[ol - 1] == '.')
		ol--;
	if (ol == 0 || dl < ol || strncasecmp(domain + dl - ol, own, ol) != 0)
		return 0;
	return dl == ol || domain[dl - ol - 1] == '.';
}

/* Optimal string alignment distance (Damerau-Levenshtein with adjacent
 * transpositions), both strings at most LABEL_MAX long. */
static size_t
dl_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	size_t d[LABEL_MAX + 1][LABEL_MAX + 1];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= n; i++)
		for (size_t j = 1; j <= m; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[n][m];
}

/* The tenant label with words or hyphens around or inside it. */
static int
label_extends(const char *label, const char *own)
{
	char bare[LABEL_MAX + 1];
	size_t n = 0;
	for (const char *p = label; *p != '\0'; p++)
		if (*p != '-')
			bare[n++] = *p;
	bare[n] = '\0';
	size_t ol = strlen(own);
	if (ol < MIN_FUZZY || strcmp(label, own) == 0)
		return 0;
	if (strcmp(bare, own) == 0)
		return 1;                              /* ac-me */
	return n > ol && (strncmp(bare, own, ol) == 0 || strcmp(bare + n - ol, own) == 0);
}

/* 0: not alike; 1: within edit distance or extended; 2: the same skeleton. */
static int
lookalike_kind(const char *domain, const char *own)
{
	struct dname d, o;
	if (domain == NULL || own == NULL || dname_split(domain, &d) < 0 ||
	    dname_split(own, &o) < 0)
		return 0;
	if (domain_within(d.lower, o.lower))
		return 0;
	char ds[LABEL_MAX + 1], os[LABEL_MAX + 1];
	if (label_skeleton(d.label, ds) < 0 || label_skeleton(o.label, os) < 0)
		return 0;
	if (strcmp(ds, os) == 0)
		return 2;                              /* homoglyphs, TLD swap */
	if (strlen(o.label) < MIN_FUZZY)
		return 0;
	size_t limit = strlen(o.label) >= 8 ? 2 : 1;
	if (dl_distance(d.label, o.label) <= limit || dl_distance(ds, os) <= limit)
		return 1;
	return label_extends(d.label, o.label) || label_extends(ds, os);
}

int
impersonation_lookalike(const char *domain, const char *own)
{
	return lookalike_kind(domain, own) > 0;
}

/* ---------------------------------------------------------- the stage */

static int
is_own_domain(const struct hygiene_msg *m, const char *domain)
{
	for (size_t i = 0; i < m->n_tenant_domains; i++)
		if (domain_within(domain, m->tenant_domains[i]))
			return 1;
	return 0;
}

static const char *
addr_domain(const char *addr)
{
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

static void
raise_finding(const struct hygiene_msg *m, struct hygiene_result *r, const char *what)
{
	enum hygiene_action a = policy_act_action(m->pol->impersonation_action);
	if (a == HYGIENE_ACCEPT)
		hygiene_result_reason(r, "impersonation:%s", what);
	else
		hygiene_result_raise(r, a, a == HYGIENE_REJECT ?
		    "550 5.7.1 Message rejected: it impersonates this organisation" : NULL,
		    "impersonation:%s", what);
	log_info("impersonation", "id=%s tenant=%s finding=%s", m->qid, log_str(m->tenant),
	    log_str(what));
}

/* An executive's name on mail from outside: 1 when found. */
static int
check_display_name(const struct hygiene_msg *m, struct hygiene_result *r)
{
	const struct policy_list *ex = &m->pol->executives;
	if (ex->n == 0 || m->header_from_name == NULL)
		return 0;
	const char *dom = addr_domain(m->header_from);
	if (dom != NULL && is_own_domain(m, dom))
		return 0;
	char *key = name_key(m->header_from_name);
	if (key == NULL)
		return 0;
	int found = 0;
	for (size_t i = 0; i < ex->n && !found; i++) {
		char *ek = name_key(ex->items[i]);
		if (ek != NULL && strcmp(ek, key) == 0) {
			char *what = buf_printf("display name \"%s\" from outside address", ex->items[i]);
			raise_finding(m, r, what);
			free(what);
			found = 1;
		}
		free(ek);
	}
	free(key);
	return found;
}

/* The first Reply-To address's domain (caller frees), or NULL. */
static char *
reply_to_domain(const struct hygiene_msg *m)
{
	if (m->mime == NULL)
		return NULL;
	InternetAddressList *l = g_mime_message_get_reply_to(m->mime);
	if (l == NULL || internet_address_list_length(l) < 1)
		return NULL;
	InternetAddress *a = internet_address_list_get_address(l, 0);
	if (!INTERNET_ADDRESS_IS_MAILBOX(a))
		return NULL;
	const char *dom = addr_domain(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)));
	return dom != NULL ? xstrdup(dom) : NULL;
}

/* domain looks like one of the tenant's: 1 when flagged. */
static int
check_domain(const struct hygiene_msg *m, struct hygiene_result *r, const char *domain)
{
	if (domain == NULL || is_own_domain(m, domain))
		return 0;
	/* the closest of the tenant's domains names the finding */
	int best = 0;
	const char *like = NULL;
	for (size_t i = 0; i < m->n_tenant_domains && best < 2; i++) {
		int k = lookalike_kind(domain, m->tenant_domains[i]);
		if (k > best) {
			best = k;
			like = m->tenant_domains[i];
		}
	}
	if (like == NULL)
		return 0;
	char *what = buf_printf("look-alike domain %s of %s", domain, like);
	raise_finding(m, r, what);
	free(what);
	return 1;
}

int
impersonation_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)err_r;
	if (m->dir != QUEUE_INBOUND)
		return 0;
	if (m->sender[0] != '\0' && policy_list_match_address(&m->pol->allow_senders, m->sender))
		return 0;
	check_display_name(m, r);
	if (!m->pol->lookalike || m->n_tenant_domains == 0)
		return 0;
	if (check_domain(m, r, addr_domain(m->header_from)))
		return 0;
	char *rt = reply_to_domain(m);
	check_domain(m, r, rt);
	free(rt);
	return 0;
}
