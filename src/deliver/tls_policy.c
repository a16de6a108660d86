/*
 * tls_policy.c — see tls_policy.h (being built).
 */
#include "deliver/tls_policy.h"

#include "queue/queue.h"
#include "server.h"

int
tls_policy_start(struct server *srv, char **err_r)
{
	(void)err_r;
	srv->tls_policy = NULL;
	return 0;
}

void
tls_policy_stop(struct server *srv)
{
	srv->tls_policy = NULL;
}

void
tls_policy_lookup(struct tls_policy *tp, const char *tenant, const char *domain,
    unsigned env_flags, tls_policy_cb *cb, void *arg)
{
	(void)tp;
	(void)tenant;
	(void)domain;
	struct tls_decision d = { (env_flags & QUEUE_F_REQUIRE_TLS) ? TLSREQ_VERIFIED : TLSREQ_NONE,
		"dlp", 0, NULL, 0 };
	cb(arg, &d);
}

int
tls_policy_mx_allowed(const struct tls_decision *d, const char *host)
{
	(void)d;
	(void)host;
	return 1;
}
