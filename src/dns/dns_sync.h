/*
 * dns_sync — blocking DNS lookups for worker threads (SPF, DKIM keys,
 * DMARC records, DNS blocklists, MTA-STS), through one libunbound context
 * set up as dns.c sets up its own: the [delivery] dns_resolver forwarder
 * when configured, else /etc/resolv.conf.  Thread-safe.  A lookup gives up
 * after 10 s (DNS_TEMPFAIL), however the resolver behaves.
 *
 *   struct dns_sync *d = dns_sync_new(cfg, &err);
 *   struct dns_records rr;
 *   if (dns_sync_query(d, "_dmarc.example.com", DNS_SYNC_TXT, &rr) == DNS_OK) ...
 *   dns_records_free(&rr);
 *
 * TXT answers are the character-strings of each record joined (RFC 7208
 * 3.3); A/AAAA answers are printable addresses; PTR/MX/CNAME names are
 * printable without the trailing dot.
 */
#ifndef MAILARK_DNS_DNS_SYNC_H
#define MAILARK_DNS_DNS_SYNC_H

#include <stddef.h>

#include "dns/dns.h"

struct config;
struct dns_sync;

enum dns_sync_type {
	DNS_SYNC_A = 1, DNS_SYNC_NS = 2, DNS_SYNC_CNAME = 5, DNS_SYNC_PTR = 12,
	DNS_SYNC_MX = 15, DNS_SYNC_TXT = 16, DNS_SYNC_AAAA = 28,
};

struct dns_records {
	char **items;        /* malloc'd strings */
	size_t n;
	int secure;          /* DNSSEC-validated (never, without a trust anchor) */
};

struct dns_sync *dns_sync_new(const struct config *cfg, char **err_r);
void dns_sync_free(struct dns_sync **d);
/* From now on every lookup (and those waiting) answers DNS_TEMPFAIL at once:
 * for shutdown, so no worker waits on DNS.  Any thread. */
void dns_sync_abort(struct dns_sync *d);
/* DNS_OK (n may be 0: no data), DNS_NXDOMAIN, DNS_TEMPFAIL.  rr always initialised. */
enum dns_status dns_sync_query(struct dns_sync *d, const char *name, enum dns_sync_type type,
    struct dns_records *rr);
/* Raw RDATA records (for libraries that parse their own): *rdata_r[i], lens[i]. */
enum dns_status dns_sync_query_raw(struct dns_sync *d, const char *name, int type,
    unsigned char ***rdata_r, size_t **lens_r, size_t *n_r);
void dns_records_free(struct dns_records *rr);

#endif
