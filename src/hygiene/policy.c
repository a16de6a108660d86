/*
 * NAME
 *	policy — each tenant's hygiene policy (see policy.h)
 * DESCRIPTION
 *	One table, policy_keys[], lists every key: its name, type (bool,
 *	number with range, enum, list, text), default, one line of help and
 *	the offset of its field in struct hygiene_policy.  Every value — the
 *	defaults included — goes through the same parser (key_apply), and is
 *	printed back by the same formatter (key_format), so what is stored,
 *	shown and used always agree.
 *
 *	Snapshots are immutable once built and reference-counted with
 *	atomics: the loop thread hands them to workers, the last release
 *	(any thread) frees.  The cache (h->policies, loop thread) keeps one
 *	snapshot per tenant, built from the store on first use and rebuilt
 *	by policy_set().  The install defaults are one process-wide snapshot
 *	that is never freed.  The settings are read and written through
 *	h->policy_ops (mailark.db, see hygiene_internal.h).
 *
 *	Lists are comma-separated; "\," is a comma inside an item (regexes).
 *	Setting a key (except a text) to "default" removes the tenant's value.
 */
#include "hygiene/policy.h"

#include <ctype.h>
#include <pthread.h>
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hygiene/hygiene_internal.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "server.h"

#define LIST_MAX_ITEMS 1000
#define LIST_ITEM_MAX 254
#define TEXT_MAX 4096
#define CACHE_MAX 4096

_Static_assert(sizeof(enum policy_act) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum policy_fail) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum dlp_act) == sizeof(int), "enum fields are stored as int");

enum key_type { KT_BOOL, KT_NUM, KT_DAYS, KT_ENUM, KT_LIST, KT_TEXT };

/* What a list item or text must look like. */
enum key_check {
	KC_NONE,
	KC_ADDR_PATTERN,   /* user@dom, @dom, *.dom, dom */
	KC_DOMAIN,         /* a DNS name */
	KC_DOMAIN_WILD,    /* a DNS name, optionally "*." first */
	KC_REGEX,          /* POSIX extended */
	KC_TYPE,           /* extension or MIME type: lower-cased, leading dot dropped */
	KC_PHRASE,         /* printable text */
	KC_ADDRESS,        /* empty or local@domain */
};

struct policy_key {
	const char *name;
	enum key_type type;
	size_t off;
	const char *def;
	const char *help;
	double min, max;                    /* KT_NUM, KT_DAYS */
	const char *const *names;           /* KT_ENUM: name of each value, NULL = not allowed */
	size_t nnames;
	enum key_check check;               /* KT_LIST items, KT_TEXT */
	size_t maxlen;                      /* KT_TEXT */
};

static const char *const fail_names[] = {
	[POLICY_FAIL_CLOSED] = "closed", [POLICY_FAIL_OPEN] = "open",
};
static const char *const act_names[] = {
	[POLICY_ACT_NONE] = "none", [POLICY_ACT_TAG] = "tag",
	[POLICY_ACT_QUARANTINE] = "quarantine", [POLICY_ACT_REJECT] = "reject",
};
static const char *const av_act_names[] = {
	[POLICY_ACT_QUARANTINE] = "quarantine", [POLICY_ACT_REJECT] = "reject",
};
static const char *const dlp_names[] = {
	[DLP_ACT_NONE] = "none", [DLP_ACT_BLOCK] = "block", [DLP_ACT_HOLD] = "hold",
	[DLP_ACT_REQUIRE_TLS] = "require_tls", [DLP_ACT_NOTIFY] = "notify",
};

#define OFF(f) offsetof(struct hygiene_policy, f)
#define NAMES(a) (a), sizeof(a) / sizeof((a)[0])
#define BOOL(k, f, d, h) { k, KT_BOOL, OFF(f), d, h, 0, 0, NULL, 0, KC_NONE, 0 }
#define NUM(k, f, d, lo, hi, h) { k, KT_NUM, OFF(f), d, h, lo, hi, NULL, 0, KC_NONE, 0 }
#define ENUM(k, f, d, n, h) { k, KT_ENUM, OFF(f), d, h, 0, 0, NAMES(n), KC_NONE, 0 }
#define LIST(k, f, d, c, h) { k, KT_LIST, OFF(f), d, h, 0, 0, NULL, 0, c, 0 }
#define TEXT(k, f, d, c, max, h) { k, KT_TEXT, OFF(f), d, h, 0, 0, NULL, 0, c, max }

static const struct policy_key policy_keys[] = {
	BOOL("hygiene.enabled", enabled, "yes",
	    "scan this tenant's mail at all (no: accepted unscanned)"),
	LIST("envelope.block_senders", block_senders, "", KC_ADDR_PATTERN,
	    "senders refused at RCPT: user@dom, @dom (exact), dom or *.dom (with subdomains)"),
	LIST("envelope.allow_senders", allow_senders, "", KC_ADDR_PATTERN,
	    "senders never scored as spam or impersonation (same syntax as block_senders)"),
	BOOL("av.enabled", av_enabled, "yes", "scan with clamd (when [hygiene] clamd_socket is set)"),
	ENUM("av.on_failure", av_on_failure, "closed", fail_names,
	    "clamd unreachable: closed (451, retry later) or open (accept unscanned)"),
	ENUM("av.action", av_action, "reject", av_act_names,
	    "a virus found: reject (550) or quarantine"),
	BOOL("spf.enabled", spf_enabled, "yes", "check SPF of inbound mail"),
	ENUM("spf.fail_action", spf_fail_action, "tag", act_names,
	    "SPF fail alone: none, tag, quarantine or reject"),
	BOOL("dkim.verify", dkim_verify, "yes", "verify DKIM signatures of inbound mail"),
	BOOL("dmarc.enabled", dmarc_enabled, "yes",
	    "honour the sender domain's DMARC p=reject / p=quarantine"),
	ENUM("auth.on_failure", auth_on_failure, "open", fail_names,
	    "DNS trouble during SPF/DKIM/DMARC: open (accept) or closed (451)"),
	BOOL("spam.enabled", spam_enabled, "yes", "score inbound mail for spam"),
	NUM("spam.tag_score", spam_tag_score, "5", 0, 100000,
	    "score from which mail is tagged (X-Spam-Flag, subject tag)"),
	NUM("spam.quarantine_score", spam_quarantine_score, "8", 0, 100000,
	    "score from which mail is quarantined"),
	NUM("spam.reject_score", spam_reject_score, "15", 0, 100000,
	    "score from which mail is rejected (550)"),
	LIST("spam.dnsbl", spam_dnsbl, "", KC_DOMAIN,
	    "DNS blocklist zones whose listing adds spam.dnsbl_score"),
	NUM("spam.dnsbl_score", spam_dnsbl_score, "3", 0, 100,
	    "score added for each spam.dnsbl zone listing the client"),
	BOOL("spam.bayes", spam_bayes, "yes", "use the built-in statistical classifier"),
	BOOL("spam.rspamd", spam_rspamd, "no", "ask rspamd too (needs [hygiene] rspamd_url)"),
	ENUM("spam.on_failure", spam_on_failure, "open", fail_names,
	    "classifier or rspamd failing: open (accept unscored) or closed (451)"),
	TEXT("spam.subject_tag", spam_subject_tag, "", KC_PHRASE, 64,
	    "text put before the subject of tagged mail, e.g. [SPAM] (empty: none)"),
	LIST("impersonation.executives", executives, "", KC_PHRASE,
	    "display names outsiders must not use, e.g. Jane Doe, John Smith"),
	BOOL("impersonation.lookalike", lookalike, "yes",
	    "flag sender domains that look like the tenant's own"),
	ENUM("impersonation.action", impersonation_action, "quarantine", act_names,
	    "impersonation found: none, tag, quarantine or reject"),
	BOOL("attach.enabled", attach_enabled, "yes", "apply the attachment policy"),
	LIST("attach.block_ext", attach_block_ext,
	    "exe, scr, com, pif, bat, cmd, cpl, js, jse, vbs, vbe, wsf, wsh, hta, msi, lnk, reg, "
	    "ps1, jar", KC_TYPE, "file name extensions refused"),
	LIST("attach.block_types", attach_block_types,
	    "application/x-dosexec, application/x-msdownload, "
	    "application/vnd.microsoft.portable-executable", KC_TYPE,
	    "content types refused, as libmagic detects them"),
	ENUM("attach.action", attach_action, "reject", act_names,
	    "a blocked attachment: none, tag, quarantine or reject"),
	BOOL("attach.archives", attach_archives, "yes", "look inside zip, 7z, rar and tar archives"),
	ENUM("attach.encrypted", attach_encrypted, "quarantine", act_names,
	    "encrypted archives or documents: none, tag, quarantine or reject"),
	ENUM("attach.macros", attach_macros, "quarantine", act_names,
	    "office documents with macros: none, tag, quarantine or reject"),
	BOOL("milter.enabled", milter_enabled, "yes", "use the [hygiene] milters"),
	ENUM("milter.on_failure", milter_on_failure, "open", fail_names,
	    "a milter failing: open (skip it) or closed (451)"),
	BOOL("quarantine.user_release", quarantine_user_release, "no",
	    "recipients may release their own quarantined mail"),
	BOOL("quarantine.digest", quarantine_digest, "yes",
	    "send recipients a daily digest of their quarantined mail"),
	{ "quarantine.retention_days", KT_DAYS, OFF(quarantine_days), "30",
	    "days quarantined mail is kept", 1, 3650, NULL, 0, KC_NONE, 0 },
	TEXT("disclaimer.text", disclaimer_text, "", KC_NONE, TEXT_MAX,
	    "plain-text disclaimer appended to outbound mail (\\n: new line; empty: none)"),
	TEXT("disclaimer.html", disclaimer_html, "", KC_NONE, TEXT_MAX,
	    "HTML disclaimer appended to outbound HTML parts (empty: none)"),
	BOOL("dkim.sign", dkim_sign, "yes", "DKIM-sign outbound mail of domains with a key"),
	LIST("dlp.keywords", dlp_keywords, "", KC_PHRASE,
	    "words or phrases outbound mail must not carry"),
	LIST("dlp.patterns", dlp_patterns, "", KC_REGEX,
	    "POSIX extended regexes outbound mail must not match (\\, for a comma)"),
	BOOL("dlp.cards", dlp_cards, "no", "look for payment card numbers (Luhn-valid)"),
	LIST("dlp.attach_types", dlp_attach_types, "", KC_TYPE,
	    "attachment extensions or content types that may not leave"),
	ENUM("dlp.action", dlp_action, "hold", dlp_names,
	    "a DLP match: none, block (550), hold (quarantine), require_tls or notify"),
	TEXT("dlp.notify", dlp_notify, "", KC_ADDRESS, LIST_ITEM_MAX,
	    "address told of each DLP match (empty: nobody)"),
	LIST("tls.require_domains", tls_require, "", KC_DOMAIN_WILD,
	    "destination domains outbound mail reaches only over verified TLS"),
	BOOL("tls.mta_sts", mta_sts, "yes", "honour the destinations' MTA-STS policies (RFC 8461)"),
};

#define NKEYS (sizeof(policy_keys) / sizeof(policy_keys[0]))

/* ---- values ------------------------------------------------------------ */

static void *
field(struct hygiene_policy *p, const struct policy_key *k)
{
	return (char *)p + k->off;
}

static const void *
cfield(const struct hygiene_policy *p, const struct policy_key *k)
{
	return (const char *)p + k->off;
}

static void
list_free(struct policy_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static const struct policy_key *
key_find(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcasecmp(policy_keys[i].name, name) == 0)
			return &policy_keys[i];
	return NULL;
}

static int
domain_valid(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-' || strstr(d, "..") != NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)d; *p != '\0'; p++)
		if (!(isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p >= 0x80))
			return 0;
	return 1;
}

static int
addr_pattern_valid(const char *s)
{
	const char *at = strrchr(s, '@');
	if (at == NULL)
		return domain_valid(strncmp(s, "*.", 2) == 0 ? s + 2 : s);
	if (!domain_valid(at + 1))
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; p < (const unsigned char *)at; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == ',')
			return 0;
	return 1;
}

/* local@domain: a plain local part, a valid domain. */
static int
address_valid(const char *s)
{
	const char *at = strrchr(s, '@');
	if (at == NULL || at == s || (size_t)(at - s) > 64 || !domain_valid(at + 1) ||
	    strchr(at + 1, '.') == NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; p < (const unsigned char *)at; p++)
		if (*p <= ' ' || *p == 0x7f || strchr("<>(),;:\\\"[]", *p) != NULL)
			return 0;
	return 1;
}

static void
strings_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static int
printable(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < ' ' || *p == 0x7f)
			return 0;
	return 1;
}

/* Checks (and normalises, in place) one list item or text; reason in *why. */
static int
check_value(enum key_check c, char *v, const char **why)
{
	regex_t re;
	switch (c) {
	case KC_NONE:
	case KC_PHRASE:
		*why = "control characters are not allowed";
		return printable(v) ? 0 : -1;
	case KC_ADDR_PATTERN:
		str_lower(v);
		*why = "not an address, @domain, domain or *.domain";
		return addr_pattern_valid(v) ? 0 : -1;
	case KC_DOMAIN:
		str_lower(v);
		*why = "not a domain name";
		return domain_valid(v) ? 0 : -1;
	case KC_DOMAIN_WILD:
		str_lower(v);
		*why = "not a domain name or *.domain";
		return domain_valid(strncmp(v, "*.", 2) == 0 ? v + 2 : v) ? 0 : -1;
	case KC_TYPE:
		str_lower(v);
		if (v[0] == '.')
			memmove(v, v + 1, strlen(v));
		*why = "not a file extension or content type";
		for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
			if (!(isalnum(*p) || strchr(".+-_/", *p) != NULL))
				return -1;
		return v[0] != '\0' ? 0 : -1;
	case KC_REGEX:
		*why = "not a valid POSIX extended regular expression";
		if (!printable(v) || regcomp(&re, v, REG_EXTENDED | REG_NOSUB) != 0)
			return -1;
		regfree(&re);
		return 0;
	case KC_ADDRESS:
		*why = "not an address (local@domain)";
		return v[0] == '\0' || address_valid(v) ? 0 : -1;
	}
	return -1;
}

/* Splits at unescaped commas ("\," is a comma), trims, drops empty items. */
static int
list_parse(const struct policy_key *k, const char *value, struct policy_list *out,
    char **err_r)
{
	struct policy_list l = { NULL, 0 };
	struct buf item = BUF_INIT;
	const char *p = value;
	for (;;) {
		if (*p == '\\' && p[1] == ',') {
			buf_append_char(&item, ',');
			p += 2;
			continue;
		}
		if (*p != ',' && *p != '\0') {
			buf_append_char(&item, *p++);
			continue;
		}
		char *s = str_trim(xstrdup(buf_cstr(&item)));
		buf_reset(&item);
		const char *why = NULL;
		if (s[0] == '\0') {
			free(s);
		} else if (strlen(s) > LIST_ITEM_MAX || l.n >= LIST_MAX_ITEMS) {
			err_setf(err_r, "%s: %s", k->name, l.n >= LIST_MAX_ITEMS ?
			    "too many items (at most 1000)" : "item too long (at most 254 bytes)");
			free(s);
			goto fail;
		} else if (check_value(k->check, s, &why) < 0) {
			err_setf(err_r, "%s: '%s': %s", k->name, s, why);
			free(s);
			goto fail;
		} else {
			l.items = xrealloc(l.items, (l.n + 1) * sizeof(char *));
			l.items[l.n++] = s;
		}
		if (*p == '\0')
			break;
		p++;
	}
	buf_free(&item);
	*out = l;
	return 0;
fail:
	buf_free(&item);
	list_free(&l);
	return -1;
}

static int
enum_parse(const struct policy_key *k, const char *value, int *out, char **err_r)
{
	for (size_t i = 0; i < k->nnames; i++) {
		if (k->names[i] != NULL && strcasecmp(k->names[i], value) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	struct buf e = BUF_INIT;
	buf_appendf(&e, "%s: must be one of", k->name);
	const char *sep = " ";
	for (size_t i = 0; i < k->nnames; i++) {
		if (k->names[i] == NULL)
			continue;
		buf_appendf(&e, "%s%s", sep, k->names[i]);
		sep = ", ";
	}
	*err_r = buf_steal(&e);
	return -1;
}

static int
num_parse(const struct policy_key *k, const char *value, double *out, char **err_r)
{
	char *end = NULL;
	double d = strtod(value, &end);
	if (value[0] == '\0' || end == value || *str_trim(end) != '\0' || d != d) {
		err_setf(err_r, "%s: not a number", k->name);
		return -1;
	}
	if (d < k->min || d > k->max) {
		err_setf(err_r, "%s: must be between %g and %g", k->name, k->min, k->max);
		return -1;
	}
	if (k->type == KT_DAYS && d != (double)(long)d) {
		err_setf(err_r, "%s: must be a whole number", k->name);
		return -1;
	}
	*out = d;
	return 0;
}

/* Parses value into k's field of p (replacing what was there).  0 / -1 + *err_r. */
static int
key_apply(const struct policy_key *k, const char *raw, struct hygiene_policy *p, char **err_r)
{
	char *value = str_trim(xstrdup(raw));
	int rc = -1, b, e;
	double d;
	struct policy_list l;
	const char *why = NULL;
	switch (k->type) {
	case KT_BOOL:
		if (str_parse_bool(value, &b) < 0) {
			err_setf(err_r, "%s: must be yes or no", k->name);
			break;
		}
		*(int *)field(p, k) = b;
		rc = 0;
		break;
	case KT_NUM:
	case KT_DAYS:
		if (num_parse(k, value, &d, err_r) < 0)
			break;
		if (k->type == KT_NUM)
			*(double *)field(p, k) = d;
		else
			*(long *)field(p, k) = (long)d;
		rc = 0;
		break;
	case KT_ENUM:
		if (enum_parse(k, value, &e, err_r) < 0)
			break;
		*(int *)field(p, k) = e;
		rc = 0;
		break;
	case KT_LIST:
		if (list_parse(k, value, &l, err_r) < 0)
			break;
		list_free(field(p, k));
		*(struct policy_list *)field(p, k) = l;
		rc = 0;
		break;
	case KT_TEXT:
		if (strlen(value) > k->maxlen) {
			err_setf(err_r, "%s: too long (at most %zu bytes)", k->name, k->maxlen);
			break;
		}
		if (check_value(k->check, value, &why) < 0) {
			err_setf(err_r, "%s: %s", k->name, why);
			break;
		}
		free(*(char **)field(p, k));
		*(char **)field(p, k) = value;
		return 0;
	}
	free(value);
	return rc;
}

/* The field's value as text (what is stored and shown). */
static void
key_format(const struct policy_key *k, const struct hygiene_policy *p, struct buf *out)
{
	const struct policy_list *l;
	int e;
	switch (k->type) {
	case KT_BOOL:
		buf_append_str(out, *(const int *)cfield(p, k) ? "yes" : "no");
		break;
	case KT_NUM:
		buf_appendf(out, "%g", *(const double *)cfield(p, k));
		break;
	case KT_DAYS:
		buf_appendf(out, "%ld", *(const long *)cfield(p, k));
		break;
	case KT_ENUM:
		e = *(const int *)cfield(p, k);
		buf_append_str(out, e >= 0 && (size_t)e < k->nnames && k->names[e] != NULL
		    ? k->names[e] : "?");
		break;
	case KT_LIST:
		l = cfield(p, k);
		for (size_t i = 0; i < l->n; i++) {
			if (i > 0)
				buf_append(out, ", ", 2);
			for (const char *c = l->items[i]; *c != '\0'; c++) {
				if (*c == ',')
					buf_append_char(out, '\\');
				buf_append_char(out, *c);
			}
		}
		break;
	case KT_TEXT:
		buf_append_str(out, *(char *const *)cfield(p, k));
		break;
	}
}

/* ---- snapshots --------------------------------------------------------- */

static void
snapshot_free(struct hygiene_policy *p)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct policy_key *k = &policy_keys[i];
		if (k->type == KT_LIST)
			list_free(field(p, k));
		else if (k->type == KT_TEXT)
			free(*(char **)field(p, k));
	}
	free(p->tenant);
	free(p);
}

/* A snapshot with every default, plus the given settings (bad ones skipped, logged). */
static struct hygiene_policy *
snapshot_build(const char *tenant, char **keys, char **values, size_t n)
{
	struct hygiene_policy *p = xcalloc(1, sizeof(*p));
	p->refs = 1;
	p->tenant = tenant != NULL ? xstrdup(tenant) : NULL;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct policy_key *k = &policy_keys[i];
		if (k->type == KT_TEXT)
			*(char **)field(p, k) = xstrdup("");
		char *err = NULL;
		if (key_apply(k, k->def, p, &err) < 0) {
			log_error("policy_default_invalid", "key=%s error=%s", k->name, log_str(err));
			free(err);
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct policy_key *k = key_find(keys[i]);
		char *err = NULL;
		if (k == NULL || key_apply(k, values[i], p, &err) < 0) {
			log_warn("policy_value_ignored", "tenant=%s key=%s error=%s", log_str(tenant),
			    log_str(keys[i]), log_str(err != NULL ? err : "unknown key"));
			free(err);
		}
	}
	return p;
}

static struct hygiene_policy *policy_default_snapshot;
static pthread_once_t policy_default_once = PTHREAD_ONCE_INIT;

static void
policy_default_init(void)
{
	policy_default_snapshot = snapshot_build(NULL, NULL, NULL, 0);
}

const struct hygiene_policy *
policy_defaults(void)
{
	pthread_once(&policy_default_once, policy_default_init);
	__atomic_fetch_add(&policy_default_snapshot->refs, 1, __ATOMIC_RELAXED);
	return policy_default_snapshot;
}

void
policy_release(const struct hygiene_policy **pp)
{
	struct hygiene_policy *p = (struct hygiene_policy *)*pp;
	*pp = NULL;
	if (p == NULL)
		return;
	if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
		snapshot_free(p);
}

static const struct hygiene_policy *
snapshot_ref(struct hygiene_policy *p)
{
	__atomic_fetch_add(&p->refs, 1, __ATOMIC_RELAXED);
	return p;
}

/* ---- the cache (loop thread) -------------------------------------------- */

struct cache_entry {
	char *tenant;
	const struct hygiene_policy *p;     /* the cache's reference */
	struct cache_entry *next;
};

struct policy_cache {
	struct cache_entry *head;
	size_t n;
};

int
policy_cache_new(struct hygiene *h, char **err_r)
{
	(void)err_r;
	h->policies = xcalloc(1, sizeof(struct policy_cache));
	return 0;
}

static void
cache_clear(struct policy_cache *c)
{
	while (c->head != NULL) {
		struct cache_entry *e = c->head;
		c->head = e->next;
		policy_release(&e->p);
		free(e->tenant);
		free(e);
	}
	c->n = 0;
}

void
policy_cache_free(struct hygiene *h)
{
	struct policy_cache *c = h->policies;
	if (c == NULL)
		return;
	cache_clear(c);
	free(c);
	h->policies = NULL;
}

/* The store, when there is one to keep settings in (ops set by hygiene_start). */
static struct store *
policy_store(struct hygiene *h)
{
	return h != NULL && h->srv != NULL && h->policy_ops != NULL ? h->srv->store : NULL;
}

/* Builds the tenant's snapshot from the store; NULL on a store error. */
static struct hygiene_policy *
snapshot_load(struct hygiene *h, const char *tenant)
{
	char **keys = NULL, **values = NULL;
	size_t n = 0;
	if (h->policy_ops->list(policy_store(h), tenant, &keys, &values, &n) < 0)
		return NULL;
	struct hygiene_policy *p = snapshot_build(tenant, keys, values, n);
	strings_free(keys, n);
	strings_free(values, n);
	return p;
}

static struct cache_entry *
cache_find(struct policy_cache *c, const char *tenant)
{
	for (struct cache_entry *e = c->head; e != NULL; e = e->next)
		if (strcmp(e->tenant, tenant) == 0)
			return e;
	return NULL;
}

/* Puts p (the cache takes its reference) in place of the tenant's entry. */
static void
cache_put(struct policy_cache *c, const char *tenant, struct hygiene_policy *p)
{
	struct cache_entry *e = cache_find(c, tenant);
	if (e != NULL) {
		policy_release(&e->p);
		e->p = p;
		return;
	}
	if (c->n >= CACHE_MAX)
		cache_clear(c);
	e = xcalloc(1, sizeof(*e));
	e->tenant = xstrdup(tenant);
	e->p = p;
	e->next = c->head;
	c->head = e;
	c->n++;
}

void
policy_forget(struct hygiene *h, const char *tenant)
{
	struct policy_cache *c = h != NULL ? h->policies : NULL;
	if (c == NULL || tenant == NULL)
		return;
	char *t = str_lower(xstrdup(tenant));
	for (struct cache_entry **pp = &c->head; *pp != NULL; pp = &(*pp)->next) {
		struct cache_entry *e = *pp;
		if (strcmp(e->tenant, t) != 0)
			continue;
		*pp = e->next;
		policy_release(&e->p);
		free(e->tenant);
		free(e);
		c->n--;
		break;
	}
	free(t);
}

const struct hygiene_policy *
policy_get(struct hygiene *h, const char *tenant)
{
	struct store *st = policy_store(h);
	if (tenant == NULL || st == NULL || h->policies == NULL)
		return policy_defaults();
	char *t = str_lower(xstrdup(tenant));
	struct policy_cache *c = h->policies;
	struct cache_entry *e = cache_find(c, t);
	const struct hygiene_policy *ret;
	if (e != NULL) {
		ret = snapshot_ref((struct hygiene_policy *)e->p);
	} else {
		struct hygiene_policy *p = snapshot_load(h, t);
		if (p == NULL) {
			ret = policy_defaults();
		} else {
			cache_put(c, t, p);
			ret = snapshot_ref(p);
		}
	}
	free(t);
	return ret;
}

/* ---- set / describe ------------------------------------------------------ */

static int
tenant_check(struct hygiene *h, const char *tenant, char **err_r)
{
	int found = h->policy_ops->tenant_exists(policy_store(h), tenant);
	if (found == 1)
		return 0;
	if (found == 0)
		err_setf(err_r, "no tenant '%s'", tenant);
	else
		err_setf(err_r, "database error (tenant lookup)");
	return -1;
}

/* Validates and normalises value for k: *norm_r is the text to store. */
static int
value_normalise(const struct policy_key *k, const char *value, char **norm_r, char **err_r)
{
	struct hygiene_policy *scratch = snapshot_build(NULL, NULL, NULL, 0);
	int rc = key_apply(k, value, scratch, err_r);
	if (rc == 0) {
		struct buf b = BUF_INIT;
		key_format(k, scratch, &b);
		buf_cstr(&b);
		*norm_r = buf_steal(&b);
	}
	snapshot_free(scratch);
	return rc;
}

int
policy_set(struct hygiene *h, const char *tenant, const char *key, const char *value,
    char **err_r)
{
	struct store *st = policy_store(h);
	const struct policy_key *k = key != NULL ? key_find(key) : NULL;
	if (k == NULL) {
		err_setf(err_r, "unknown key '%s'", key != NULL ? key : "");
		return -1;
	}
	if (st == NULL || tenant == NULL) {
		err_setf(err_r, "%s: no store to keep the setting in", k->name);
		return -1;
	}
	char *t = str_lower(xstrdup(tenant));
	char *norm = NULL;
	int rc = -1;
	int reset = k->type != KT_TEXT && strcasecmp(value, "default") == 0;
	if (tenant_check(h, t, err_r) < 0)
		goto out;
	if (reset)
		rc = h->policy_ops->unset(st, t, k->name, err_r);
	else if (value_normalise(k, value, &norm, err_r) == 0)
		rc = h->policy_ops->set(st, t, k->name, norm, err_r);
	if (rc < 0)
		goto out;
	struct hygiene_policy *p = snapshot_load(h, t);
	if (p != NULL && h->policies != NULL)
		cache_put(h->policies, t, p);
	else if (p != NULL)
		snapshot_free(p);
	log_info("policy_set", "tenant=%s key=%s value=%s", log_str(t), k->name,
	    log_str(reset ? "default" : norm));
out:
	free(norm);
	free(t);
	return rc;
}

json_t *
policy_describe(struct hygiene *h, const char *tenant)
{
	const struct hygiene_policy *p = policy_get(h, tenant);
	const struct hygiene_policy *d = policy_defaults();
	char **keys = NULL, **values = NULL;
	size_t n = 0;
	struct store *st = policy_store(h);
	char *t = tenant != NULL ? str_lower(xstrdup(tenant)) : NULL;
	if (st != NULL && t != NULL && h->policy_ops->list(st, t, &keys, &values, &n) < 0)
		n = 0;
	json_t *arr = json_array();
	for (size_t i = 0; i < NKEYS; i++) {
		const struct policy_key *k = &policy_keys[i];
		int set = 0;
		for (size_t j = 0; j < n && !set; j++)
			set = strcmp(keys[j], k->name) == 0;
		struct buf v = BUF_INIT, dv = BUF_INIT;
		key_format(k, p, &v);
		key_format(k, d, &dv);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b, s:s}", "key", k->name,
		    "value", buf_cstr(&v), "default", buf_cstr(&dv), "set", set, "help", k->help));
		buf_free(&v);
		buf_free(&dv);
	}
	strings_free(keys, n);
	strings_free(values, n);
	free(t);
	policy_release(&d);
	policy_release(&p);
	return arr;
}

/* ---- list helpers ------------------------------------------------------- */

enum hygiene_action
policy_act_action(enum policy_act a)
{
	switch (a) {
	case POLICY_ACT_REJECT:
		return HYGIENE_REJECT;
	case POLICY_ACT_QUARANTINE:
		return HYGIENE_QUARANTINE;
	case POLICY_ACT_TAG:
		return HYGIENE_TAG;
	case POLICY_ACT_NONE:
		break;
	}
	return HYGIENE_ACCEPT;
}

int
policy_list_has(const struct policy_list *l, const char *item)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->items[i], item) == 0)
			return 1;
	return 0;
}

/* domain is dom or one of its subdomains (case-insensitive). */
static int
domain_within(const char *domain, const char *dom)
{
	size_t a = strlen(domain), b = strlen(dom);
	if (a == b)
		return strcasecmp(domain, dom) == 0;
	return a > b && domain[a - b - 1] == '.' && strcasecmp(domain + a - b, dom) == 0;
}

int
policy_list_match_address(const struct policy_list *l, const char *address)
{
	if (address == NULL || address[0] == '\0')
		return 0;
	const char *at = strrchr(address, '@');
	const char *domain = at != NULL ? at + 1 : address;
	for (size_t i = 0; i < l->n; i++) {
		const char *it = l->items[i];
		const char *iat = strrchr(it, '@');
		if (iat == it) {
			if (strcasecmp(it + 1, domain) == 0)
				return 1;
		} else if (iat != NULL) {
			if (strcasecmp(it, address) == 0)
				return 1;
		} else if (domain_within(domain, strncmp(it, "*.", 2) == 0 ? it + 2 : it)) {
			return 1;
		}
	}
	return 0;
}
