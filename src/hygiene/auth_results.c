/*
 * auth_results.c — organisational domains, the Authentication-Results value
 * and forged-header renaming (see auth_results.h).
 */
#include "hygiene/auth_results.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/mem.h"

/*
 * Second-level public suffixes common enough to matter.  Not the Public
 * Suffix List: a short table (see the README), good for the usual ccTLD
 * structures; anything else counts as "last two labels".
 */
static const char *const second_level[] = {
	"co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk",
	"com.au", "net.au", "org.au", "edu.au", "gov.au",
	"co.nz", "org.nz", "net.nz", "co.za", "org.za", "co.jp", "ne.jp", "or.jp", "ac.jp",
	"com.br", "net.br", "org.br", "com.cn", "net.cn", "org.cn", "com.mx", "com.ar",
	"co.in", "net.in", "org.in", "co.kr", "or.kr", "com.tr", "com.tw", "com.hk",
	"com.sg", "co.il", "com.my", "co.id", "com.pl", "co.at", "or.at",
};

static int
is_second_level(const char *suffix)
{
	for (size_t i = 0; i < sizeof(second_level) / sizeof(second_level[0]); i++)
		if (strcmp(suffix, second_level[i]) == 0)
			return 1;
	return 0;
}

int
auth_org_domain(const char *domain, char *out, size_t outlen)
{
	size_t n = domain != NULL ? strlen(domain) : 0;
	while (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0 || n >= outlen)
		return -1;
	char low[256];
	if (n >= sizeof(low))
		return -1;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)domain[i]);
	low[n] = '\0';
	/* dots[0] = the last dot, dots[1] the one before, dots[2] before that */
	const char *dots[3] = { NULL, NULL, NULL };
	int found = 0;
	for (const char *p = low + n; p > low && found < 3; p--)
		if (p[-1] == '.')
			dots[found++] = p - 1;
	const char *start = low;
	if (found >= 2) {
		start = dots[1] + 1;
		if (is_second_level(start))
			start = found >= 3 ? dots[2] + 1 : low;
	}
	size_t len = strlen(start);
	memcpy(out, start, len + 1);
	return 0;
}

/* Copies a property value keeping only characters that cannot end it,
 * comment it or break the header. */
static void
append_value(struct buf *b, const char *v)
{
	size_t kept = 0;
	for (const char *p = v; *p != '\0' && kept < 254; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= ' ' || c >= 0x7f || c == ';' || c == '(' || c == ')' || c == '"'
		    || c == '\\')
			continue;
		buf_append_char(b, (char)c);
		kept++;
	}
	if (kept == 0)
		buf_append_str(b, "unknown");
}

static void
append_spf(struct buf *b, const struct auth_results *ar)
{
	buf_appendf(b, "; spf=%s", hygiene_auth_name(ar->spf));
	if (ar->spf_mailfrom != NULL && ar->spf_mailfrom[0] != '\0') {
		buf_append_str(b, " smtp.mailfrom=");
		append_value(b, ar->spf_mailfrom);
	} else if (ar->spf_helo != NULL && ar->spf_helo[0] != '\0') {
		buf_append_str(b, " smtp.helo=");
		append_value(b, ar->spf_helo);
	}
}

static void
append_dkim(struct buf *b, const struct auth_results *ar)
{
	buf_appendf(b, "; dkim=%s", hygiene_auth_name(ar->dkim));
	if (ar->dkim_domain != NULL && ar->dkim_domain[0] != '\0') {
		buf_append_str(b, " header.d=");
		append_value(b, ar->dkim_domain);
		if (ar->dkim_selector != NULL && ar->dkim_selector[0] != '\0') {
			buf_append_str(b, " header.s=");
			append_value(b, ar->dkim_selector);
		}
	}
}

static void
append_dmarc(struct buf *b, const struct auth_results *ar)
{
	buf_appendf(b, "; dmarc=%s", hygiene_auth_name(ar->dmarc));
	if (ar->dmarc_policy != NULL && ar->dmarc_policy[0] != '\0')
		buf_appendf(b, " policy.dmarc=%s", ar->dmarc_policy);
	if (ar->dmarc_from != NULL && ar->dmarc_from[0] != '\0') {
		buf_append_str(b, " header.from=");
		append_value(b, ar->dmarc_from);
	}
}

char *
auth_results_value(const struct auth_results *ar)
{
	struct buf b = BUF_INIT;
	append_value(&b, ar->authserv_id != NULL ? ar->authserv_id : "");
	if (!ar->checked_spf && !ar->checked_dkim && !ar->checked_dmarc) {
		buf_append_str(&b, "; none");
		return buf_steal(&b);
	}
	if (ar->checked_spf)
		append_spf(&b, ar);
	if (ar->checked_dkim)
		append_dkim(&b, ar);
	if (ar->checked_dmarc)
		append_dmarc(&b, ar);
	return buf_steal(&b);
}

/* Skips blanks, folds and (nested) comments in a header value. */
static const unsigned char *
skip_cfws(const unsigned char *p, const unsigned char *end)
{
	int depth = 0;
	while (p < end) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (depth == 0 && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			break;
		else if (depth > 0 && *p == '\\' && p + 1 < end)
			p++;
		p++;
	}
	return p;
}

/* Does the Authentication-Results value [v, v+vlen) name authserv-id arg? */
static int
value_names_us(const unsigned char *v, size_t vlen, void *arg)
{
	const char *authserv_id = arg;
	const unsigned char *end = v + vlen;
	const unsigned char *q = skip_cfws(v, end);
	const unsigned char *id = q;
	while (q < end && *q != ';' && *q != ' ' && *q != '\t' && *q != '\r' && *q != '\n'
	    && *q != '(')
		q++;
	size_t idlen = (size_t)(q - id);
	return idlen > 0 && idlen == strlen(authserv_id)
	    && strncasecmp((const char *)id, authserv_id, idlen) == 0;
}

int
auth_results_rename_forged(const unsigned char *data, size_t len, const char *authserv_id,
    unsigned char **out_r, size_t *outlen_r)
{
	*out_r = NULL;
	*outlen_r = 0;
	if (authserv_id == NULL || authserv_id[0] == '\0')
		return 0;
	return hygiene_header_rename(data, len, "Authentication-Results", AUTH_RESULTS_RENAMED,
	    value_names_us, (void *)authserv_id, out_r, outlen_r);
}
