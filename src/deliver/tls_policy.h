/*
 * tls_policy — what TLS an outbound delivery must have, per destination
 * domain: nothing (opportunistic STARTTLS, as before), or verified TLS
 * (STARTTLS required, certificate chain valid against [delivery] tls_ca_file
 * or the system CAs, name matching the MX host) because
 *   - the sending tenant's tls.require_domains lists the domain,
 *   - the message carries QUEUE_F_REQUIRE_TLS (a DLP rule), or
 *   - the domain publishes an MTA-STS policy (RFC 8461) in mode "enforce"
 *     (the tenant's tls.mta_sts on): then also only MX hosts matching the
 *     policy's mx patterns are tried.  Mode "testing" only logs failures.
 * A delivery that cannot meet its policy is deferred (4.7.5 / 4.7.4), never
 * sent in the clear.
 *
 * MTA-STS: "_mta-sts.DOMAIN" TXT (v=STSv1; id=...) through dns_sync, then
 * https://mta-sts.DOMAIN[:mta_sts_port]/.well-known/mta-sts.txt with libcurl
 * (verified TLS, no redirects, 64 kB cap, 10 s), on a worker thread; policies
 * cached in memory and in <data_dir>/mta-sts.db until max_age, refreshed
 * when the TXT id changes.
 *
 *   tls_policy_lookup(srv->tls_policy, tenant, domain, env_flags, cb, arg);  // loop thread
 *   → cb(arg, &decision) on the loop thread; decision valid during cb.
 *   tls_policy_mx_allowed(&decision, "mx1.example.com")
 */
#ifndef MAILARK_DELIVER_TLS_POLICY_H
#define MAILARK_DELIVER_TLS_POLICY_H

#include <stddef.h>

struct server;
struct tls_policy;

enum tls_requirement { TLSREQ_NONE, TLSREQ_VERIFIED };

struct tls_decision {
	enum tls_requirement req;
	const char *why;               /* "tenant policy", "dlp", "mta-sts enforce" */
	int sts_testing;               /* an MTA-STS policy in testing mode applies */
	const char *const *mx_patterns; /* MTA-STS mx: patterns, NULL when none */
	size_t n_mx;
};

typedef void tls_policy_cb(void *arg, const struct tls_decision *d);

int tls_policy_start(struct server *srv, char **err_r);   /* sets srv->tls_policy */
/* SIGTERM: running MTA-STS lookups and fetches give up at once (the
 * deliveries waiting for them are deferred), so shutdown never waits on them. */
void tls_policy_shutdown(struct server *srv);
void tls_policy_stop(struct server *srv);
void tls_policy_lookup(struct tls_policy *tp, const char *tenant, const char *domain,
    unsigned env_flags, tls_policy_cb *cb, void *arg);
/* 1 when host matches one of the decision's mx patterns (or there are none). */
int tls_policy_mx_allowed(const struct tls_decision *d, const char *host);

/*
 * The pure pieces, for the unit tests.  An MTA-STS policy body (RFC 8461
 * 3.2): "key: value" lines ending in LF or CRLF; version STSv1, mode
 * enforce|testing|none, max_age 1-10 digits (capped at one year), one mx
 * line per pattern (at least one unless mode none, at most TLS_STS_MAX_MX),
 * unknown keys ignored.  0, or -1 with *why_r (static text); p is freed by
 * tls_sts_policy_free() after 0.
 */
#define TLS_STS_MAX_MX      32
#define TLS_STS_MAX_AGE     31557600L
#define TLS_STS_MAX_BODY    (64 * 1024)

enum tls_sts_mode { TLS_STS_NONE, TLS_STS_TESTING, TLS_STS_ENFORCE };

struct tls_sts_policy {
	enum tls_sts_mode mode;
	long max_age;
	char **mx;
	size_t n_mx;
};

int tls_sts_parse_policy(const char *text, size_t len, struct tls_sts_policy *p,
    const char **why_r);
void tls_sts_policy_free(struct tls_sts_policy *p);
/* "v=STSv1; id=20240101;" → 0 and the id (1-32 letters/digits) in id[33]; else -1. */
int tls_sts_parse_txt(const char *txt, char id[33]);
/* "mail.example.com" or "*.example.com" (one label); case-insensitive. */
int tls_sts_mx_match(const char *pattern, const char *host);

#endif
