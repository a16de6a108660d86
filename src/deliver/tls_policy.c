/*
 * tls_policy.c — see tls_policy.h (being built).
 */
#include "deliver/tls_policy.h"

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
