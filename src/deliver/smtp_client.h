/*
 * smtp_client — one outbound SMTP transaction for one message and a set of
 * its recipients, driven by the event loop (libevent bufferevents).
 *
 *   smtp_client_deliver(srv, &req, on_done, job);
 *   → on_done(job, &result) on the loop thread, exactly once.
 *
 * It finds the next hop (a fixed route, a smarthost, or the recipient
 * domain's MX hosts with the RFC 5321 A/AAAA fallback via dns/), connects,
 * reads the banner, EHLO (HELO fallback), STARTTLS (opportunistic, or
 * required: then no TLS means 4xx for all), MAIL/RCPT pipelined when offered,
 * then BDAT (when CHUNKING is offered) or DATA with dot-stuffing, then QUIT.
 * Tries the next MX host on connection failure or 4xx at greeting.
 * A request with tls_verify (deliver/tls_policy.h) needs STARTTLS and a
 * certificate that verifies for the MX host name: otherwise the host is
 * skipped and, when none is left, every recipient gets 451 4.7.5; MTA-STS
 * mx patterns leave out the MX hosts they do not match (testing: logged).
 * Connections are reused: after a complete transaction the connection is
 * kept (CLIENT_IDLE_SECS) for the next request to the same next hop, which
 * then starts at MAIL; smtp_client_cancel_all() closes the cached ones.
 * The request's strings and fd are the caller's and must stay valid until
 * on_done; the result is valid only during the callback.
 */
#ifndef MAILARK_DELIVER_SMTP_CLIENT_H
#define MAILARK_DELIVER_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "deliver/route.h"

struct server;

enum delivery_next_hop {
	NEXT_HOP_ROUTE,      /* req.route: a tenant's primary server */
	NEXT_HOP_MX,         /* MX lookup of req.domain (smarthost when configured) */
};

struct delivery_request {
	const char *queue_id;        /* for logs */
	const char *tenant;          /* for logs, may be NULL */
	enum delivery_next_hop hop;
	struct route route;          /* NEXT_HOP_ROUTE */
	const char *domain;          /* NEXT_HOP_MX: the recipients' domain */
	const char *sender;          /* "" for <> */
	const char *const *rcpts;    /* all in one domain / one route */
	const char *const *orcpts;   /* per rcpt, may be NULL entries (DSN passthrough) */
	const unsigned *notify;      /* per rcpt QUEUE_NOTIFY_* bits or NULL */
	size_t nrcpts;
	const char *envid;           /* may be NULL */
	int ret_hdrs;
	int smtputf8;
	int body_8bit;
	int body_fd;                 /* message bytes, read with pread from offset 0 */
	uint64_t body_size;
	/* outbound TLS policy (deliver/tls_policy.h): MX hops and the smarthost */
	int tls_verify;              /* STARTTLS + verified certificate, else 4.7.5 */
	const char *tls_why;         /* "mta-sts enforce", "tenant policy", "dlp" */
	int sts_testing;             /* MTA-STS testing: log failures, deliver anyway */
	const char *const *mx_patterns;  /* MTA-STS mx patterns, NULL: any MX host */
	size_t n_mx;
};

struct delivery_rcpt_result {
	int code;                    /* 250, 4xx, 5xx: the reply for this recipient */
	char *reply;                 /* "host[ip] said: 550 5.1.1 ..." or local reason */
};

struct delivery_result {
	struct delivery_rcpt_result *rcpts;   /* nrcpts entries */
	size_t nrcpts;
	char *relay;                 /* "mx.example.com[192.0.2.1]:25" or NULL */
	int tls;                     /* 1 when the session used TLS */
};

typedef void smtp_client_done_cb(void *arg, const struct delivery_result *res);

void smtp_client_deliver(struct server *srv, const struct delivery_request *req,
    smtp_client_done_cb *cb, void *arg);
/*
 * Shutdown: every delivery still running gets its callback now (421 4.3.2
 * for the recipients without a final reply) and its connection is closed.
 * Cached idle connections are closed.  Call it before the queue and the
 * event base go away.
 */
void smtp_client_cancel_all(struct server *srv);

#endif
