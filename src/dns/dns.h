/*
 * dns — asynchronous MX and address lookups through libunbound, integrated
 * with the event loop (ub_fd watched by libevent).
 *
 *   dns_resolve_mx(srv->dns, "example.com", on_hosts, job);
 *   → on_hosts(job, &answer) on the loop thread, exactly once.
 *
 * The answer lists the hosts to try, in order: MX targets by preference
 * (equal preferences shuffled), each with its addresses; or, when the domain
 * has no MX, the domain itself (RFC 5321 section 5.1 fallback).  A null MX
 * (RFC 7505, "MX 0 .") yields DNS_NULL_MX.  The answer is valid only during
 * the callback.  The resolver uses /etc/resolv.conf unless [delivery]
 * dns_resolver names a forwarder ("127.0.0.1@5353"), which then answers
 * for every name, the special-use "test." included.  A lookup gives up
 * after 30 s (DNS_TEMPFAIL).
 */
#ifndef MAILARK_DNS_DNS_H
#define MAILARK_DNS_DNS_H

#include <stddef.h>
#include <sys/socket.h>

struct server;
struct config;
struct dns_resolver;

enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN,       /* permanent: the domain does not exist */
	DNS_NULL_MX,        /* permanent: the domain accepts no mail */
	DNS_NO_ADDRESS,     /* permanent: MX/host has no A/AAAA */
	DNS_TEMPFAIL,       /* SERVFAIL, timeout: try again later */
};

struct dns_host {
	char name[256];
	int preference;
	struct sockaddr_storage *addrs;   /* port left 0 */
	size_t naddrs;
};

struct dns_answer {
	enum dns_status status;
	const char *error;                /* human reason when not DNS_OK */
	struct dns_host *hosts;
	size_t nhosts;
};

typedef void dns_mx_cb(void *arg, const struct dns_answer *ans);

int dns_resolver_new(struct server *srv, struct dns_resolver **r_r, char **err_r);
/* Cancels what is in flight: those callbacks are never called. */
void dns_resolver_free(struct dns_resolver **r);
struct ub_ctx;
/* Points a libunbound context at [delivery] dns_resolver or resolv.conf (dns_sync.c too). */
int dns_ctx_configure(struct ub_ctx *ctx, const struct config *cfg, char **err_r);
/* MX lookup with fallback, resolving every host's A and AAAA records. */
void dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_mx_cb *cb, void *arg);
/* A/AAAA of one host name (or a literal address), as one host in the answer. */
void dns_resolve_host(struct dns_resolver *r, const char *name, dns_mx_cb *cb, void *arg);
/*
 * Parses MX rdata (preference, then an uncompressed wire-format name) into
 * *pref_r and dotted text in name ("" for the root, i.e. a null MX).
 * Returns 0, or -1 when the rdata is malformed or the name does not fit.
 */
int dns_mx_rdata_parse(const unsigned char *rdata, size_t len, int *pref_r, char *name,
    size_t namesize);

#endif
