/*
 * policy — each tenant's hygiene policy: one set of KEY = VALUE settings
 * (`mailark policy show|set TENANT KEY VALUE`), stored in mailark.db
 * (table hygiene_policy) and served to the pipeline as immutable snapshots.
 *
 *   const struct hygiene_policy *p = policy_get(srv->hygiene, "acme");  // loop thread
 *   ... hand p to a worker; every field is read-only ...
 *   policy_release(&p);                                                // any thread
 *
 * policy_set() validates the value (type, range, list syntax), stores it and
 * replaces the tenant's snapshot; snapshots already handed out stay valid
 * until released.  A key never set has its default (the table in policy.c
 * lists every key with its type, default and one line of help;
 * policy_describe() returns it for `policy show`).  Lists are comma-separated;
 * their items are trimmed and kept in the order given.
 */
#ifndef MAILARK_HYGIENE_POLICY_H
#define MAILARK_HYGIENE_POLICY_H

#include <stddef.h>

#include <jansson.h>

#include "hygiene/hygiene.h"

struct hygiene;

enum policy_fail { POLICY_FAIL_CLOSED, POLICY_FAIL_OPEN };
/* What to do with a finding: the action names of hygiene_action, as set. */
enum policy_act { POLICY_ACT_NONE, POLICY_ACT_TAG, POLICY_ACT_QUARANTINE, POLICY_ACT_REJECT };
enum dlp_act { DLP_ACT_NONE, DLP_ACT_BLOCK, DLP_ACT_HOLD, DLP_ACT_REQUIRE_TLS, DLP_ACT_NOTIFY };

struct policy_list {
	char **items;
	size_t n;
};

struct hygiene_policy {
	int refs;                            /* policy.c's, atomically */
	char *tenant;                        /* NULL: the install defaults */
	/* the whole pipeline */
	int enabled;                         /* hygiene.enabled: yes */
	/* envelope stage */
	struct policy_list block_senders;    /* envelope.block_senders: addresses, @domain, *.domain */
	struct policy_list allow_senders;    /* envelope.allow_senders: skip spam/impersonation */
	/* antivirus (clamd) */
	int av_enabled;                      /* av.enabled: yes */
	enum policy_fail av_on_failure;      /* av.on_failure: closed */
	enum policy_act av_action;           /* av.action: reject (or quarantine) */
	/* sender authentication */
	int spf_enabled;                     /* spf.enabled: yes */
	enum policy_act spf_fail_action;     /* spf.fail_action: tag (SPF "fail" alone) */
	int dkim_verify;                     /* dkim.verify: yes */
	int dmarc_enabled;                   /* dmarc.enabled: yes — honour p=reject/quarantine */
	enum policy_fail auth_on_failure;    /* auth.on_failure: open (DNS down) */
	/* antispam */
	int spam_enabled;                    /* spam.enabled: yes */
	double spam_tag_score;               /* spam.tag_score: 5.0 */
	double spam_quarantine_score;        /* spam.quarantine_score: 8.0 */
	double spam_reject_score;            /* spam.reject_score: 15.0 */
	struct policy_list spam_dnsbl;       /* spam.dnsbl: zones that add spam.dnsbl_score */
	double spam_dnsbl_score;             /* spam.dnsbl_score: 3.0 */
	int spam_bayes;                      /* spam.bayes: yes (built-in classifier) */
	int spam_rspamd;                     /* spam.rspamd: no (needs [hygiene] rspamd_url) */
	enum policy_fail spam_on_failure;    /* spam.on_failure: open */
	char *spam_subject_tag;              /* spam.subject_tag: "" (e.g. "[SPAM]") */
	/* impersonation */
	struct policy_list executives;       /* impersonation.executives: "Jane Doe, John Smith" */
	int lookalike;                       /* impersonation.lookalike: yes */
	enum policy_act impersonation_action;/* impersonation.action: quarantine */
	/* attachments */
	int attach_enabled;                  /* attach.enabled: yes */
	struct policy_list attach_block_ext; /* attach.block_ext: exe,scr,com,pif,bat,cmd,js,vbs,... */
	struct policy_list attach_block_types;/* attach.block_types: libmagic MIME types */
	enum policy_act attach_action;       /* attach.action: reject */
	int attach_archives;                 /* attach.archives: yes — look inside zip/7z/rar/tar */
	enum policy_act attach_encrypted;    /* attach.encrypted: quarantine */
	enum policy_act attach_macros;       /* attach.macros: quarantine */
	/* milters */
	int milter_enabled;                  /* milter.enabled: yes (when [hygiene] milters set) */
	enum policy_fail milter_on_failure;  /* milter.on_failure: open */
	/* quarantine */
	int quarantine_user_release;         /* quarantine.user_release: no */
	int quarantine_digest;               /* quarantine.digest: yes */
	long quarantine_days;                /* quarantine.retention_days: 30 */
	/* outbound */
	char *disclaimer_text;               /* disclaimer.text: "" — template, \n for newlines */
	char *disclaimer_html;               /* disclaimer.html: "" — template (HTML fragment) */
	int dkim_sign;                       /* dkim.sign: yes (when the domain has a key) */
	struct policy_list dlp_keywords;     /* dlp.keywords */
	struct policy_list dlp_patterns;     /* dlp.patterns: POSIX extended regexes */
	int dlp_cards;                       /* dlp.cards: no — card numbers (Luhn) */
	struct policy_list dlp_attach_types; /* dlp.attach_types: extensions or MIME types */
	enum dlp_act dlp_action;             /* dlp.action: hold (block, hold, require_tls, notify) */
	char *dlp_notify;                    /* dlp.notify: "" — address told on a match */
	struct policy_list tls_require;      /* tls.require_domains: destinations needing TLS */
	int mta_sts;                         /* tls.mta_sts: yes — honour RFC 8461 policies */
};

/* Opens the policy cache (hygiene_start). */
int policy_cache_new(struct hygiene *h, char **err_r);
void policy_cache_free(struct hygiene *h);

/* A snapshot of the tenant's policy (tenant NULL or unknown: defaults).
 * Loop thread; never NULL.  The caller releases it. */
const struct hygiene_policy *policy_get(struct hygiene *h, const char *tenant);
/* Drops the tenant's cached snapshot (the tenant was removed: its rows went
 * with it, and a tenant added again under the name starts from defaults). */
void policy_forget(struct hygiene *h, const char *tenant);
/* Any thread.  Sets *p to NULL. */
void policy_release(const struct hygiene_policy **p);
/* The defaults, for tools without a daemon (spam classify offline). Caller releases. */
const struct hygiene_policy *policy_defaults(void);

/* Loop thread.  0, or -1 + *err_r ("unknown key", "spam.tag_score: not a number"). */
int policy_set(struct hygiene *h, const char *tenant, const char *key, const char *value,
    char **err_r);
/* Every key with its value, default, whether set, and help: [{key,value,default,set,help}]. */
json_t *policy_describe(struct hygiene *h, const char *tenant);

/* The pipeline action a policy action setting asks for (none: HYGIENE_ACCEPT). */
enum hygiene_action policy_act_action(enum policy_act a);

/* List helpers for stages. */
int policy_list_has(const struct policy_list *l, const char *item);       /* case-insensitive */
/* address matches an entry: "user@dom", "@dom" (exact domain), "*.dom" / "dom" (domain or subdomain) */
int policy_list_match_address(const struct policy_list *l, const char *address);

#endif
