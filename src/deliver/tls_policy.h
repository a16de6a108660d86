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
void tls_policy_stop(struct server *srv);
void tls_policy_lookup(struct tls_policy *tp, const char *tenant, const char *domain,
    unsigned env_flags, tls_policy_cb *cb, void *arg);
/* 1 when host matches one of the decision's mx patterns (or there are none). */
int tls_policy_mx_allowed(const struct tls_decision *d, const char *host);

#endif
