/*
 * probe — active health checks of every tenant's primary route(s): connect,
 * 220 banner, EHLO answered 250, QUIT, all within [continuity]
 * probe_timeout; one round every [continuity] probe_interval.  Each result
 * goes to continuity_probe_result(), which counts consecutive failures
 * ([continuity] probe_failures make a route down).  Routes are read from
 * the store at every round (tenant domains with a route; "archive:" routes
 * are not probed); one probe per distinct (tenant, HOST:PORT) route.
 * Loop thread only; libevent bufferevents, no blocking.
 */
#ifndef MAILARK_CONTINUITY_PROBE_H
#define MAILARK_CONTINUITY_PROBE_H

struct server;
struct probe;

int probe_start(struct server *srv, struct probe **p_r, char **err_r);
void probe_stop(struct probe **p);
/* Starts a round now (not when one is running). */
void probe_now(struct probe *p);

#endif
