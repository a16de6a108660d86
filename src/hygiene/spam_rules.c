/*
 * spam_rules.c — the rule table (spam_rules.h).  Scores are small on
 * purpose: no single rule, nor the usual pairs of them, reaches the default
 * tag score (5.0) on its own; they tip messages the classifier is unsure of.
 */
#include "hygiene/spam_rules.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "hygiene/spam_tokens.h"

static int
missing_date(const struct spam_features *f)
{
	return !f->has_date;
}

static int
missing_message_id(const struct spam_features *f)
{
	return !f->has_message_id;
}

static int
missing_from(const struct spam_features *f)
{
	return !f->has_from;
}

/* "PayPal <service@paypal.com>" <x@evil.example>: a display name that
 * carries an address other than the real one. */
static int
from_name_has_address(const struct spam_features *f)
{
	const char *at = strchr(f->from_name, '@');
	if (at == NULL || at == f->from_name || strchr(at, '.') == NULL)
		return 0;
	return f->from_addr[0] == '\0' || strcasestr(f->from_name, f->from_addr) == NULL;
}

static int
subject_all_caps(const struct spam_features *f)
{
	unsigned upper = 0, lower = 0;
	for (const char *p = f->subject; *p != '\0'; p++) {
		if (isupper((unsigned char)*p))
			upper++;
		else if (islower((unsigned char)*p))
			lower++;
	}
	return upper >= 10 && lower == 0;
}

static int
subject_exclaims(const struct spam_features *f)
{
	unsigned n = 0;
	for (const char *p = f->subject; *p != '\0'; p++)
		n += *p == '!';
	return n >= 3;
}

static int
many_exclaims(const struct spam_features *f)
{
	return f->exclaims >= 15;
}

static int
html_only_tiny_text(const struct spam_features *f)
{
	return f->html_parts > 0 && f->text_parts == 0 && f->html_text_len < 200;
}

static int
html_only(const struct spam_features *f)
{
	return f->html_parts > 0 && f->text_parts == 0;
}

static int
url_ip_literal(const struct spam_features *f)
{
	return f->ip_urls > 0;
}

static int
reply_without_reference(const struct spam_features *f)
{
	return strncasecmp(f->subject, "re:", 3) == 0 && !f->has_in_reply_to &&
	    !f->has_references;
}

const struct spam_rule spam_rules[] = {
	{ "MISSING_DATE", 1.0, missing_date, "no Date header field" },
	{ "MISSING_MID", 0.5, missing_message_id, "no Message-ID header field" },
	{ "MISSING_FROM", 1.0, missing_from, "no From header field" },
	{ "FROM_NAME_ADDR", 1.5, from_name_has_address,
	  "the From display name holds an address other than the sender's" },
	{ "SUBJ_ALL_CAPS", 1.0, subject_all_caps, "subject in capitals only" },
	{ "SUBJ_EXCLAIM", 1.0, subject_exclaims, "three or more '!' in the subject" },
	{ "MANY_EXCLAIM", 0.5, many_exclaims, "fifteen or more '!' in subject and text" },
	{ "HTML_ONLY", 0.3, html_only, "HTML without a plain-text alternative" },
	{ "HTML_TINY_TEXT", 1.0, html_only_tiny_text, "HTML-only with under 200 characters of text" },
	{ "URL_IP_HOST", 1.5, url_ip_literal, "a link to a numeric IP address" },
	{ "RE_NO_REFERENCE", 1.0, reply_without_reference,
	  "subject starts with Re: but nothing says what it replies to" },
	{ NULL, 0, NULL, NULL },
};

int
spam_rules_run(const struct spam_features *f, spam_rule_hit_fn *hit, void *arg)
{
	int n = 0;
	for (const struct spam_rule *r = spam_rules; r->name != NULL; r++)
		if (r->test(f)) {
			hit(arg, r->name, r->score);
			n++;
		}
	return n;
}
