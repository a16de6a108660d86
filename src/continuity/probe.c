/*
 * NAME
 *	probe - active health checks of the tenants' primary routes
 * SYNOPSIS
 *	probe_start(srv, &srv->probe, &err);
 *	probe_now(srv->probe);
 *	probe_stop(&srv->probe);
 * DESCRIPTION
 *	A timer fires every [continuity] probe_interval (the first
 *	round about one second after start).  A round reads every served
 *	tenant's domains from the store, keeps the SMTP routes (not
 *	"archive:"), removes duplicate (tenant, HOST:PORT) pairs and starts one
 *	check per pair.  A tick that finds the previous round still running
 *	does nothing.
 *
 *	One check walks these states; probe_state() is the one place that
 *	changes state and logs the transition at debug level:
 *
 *	RESOLVE ─▶ CONNECT ─▶ BANNER ─▶ EHLO ─▶ QUIT ─▶ DONE (freed)
 *	   │          │          │        │
 *	   └──────────┴──────────┴────────┴──▶ failure: result reported, DONE
 *
 *	A numeric host is used as is; a name is resolved with getaddrinfo()
 *	on the worker pool (the first address is tried).  The whole check,
 *	from connect to the 250 reply to EHLO, has [continuity] probe_timeout
 *	seconds.  The result goes to continuity_probe_result() once, as soon
 *	as it is known (after the 250 to EHLO for a healthy route); QUIT then
 *	gets PROBE_QUIT_SECS for its reply before the connection is closed.
 *
 *	probe_stop() frees every check at once.  A check whose name lookup is
 *	still on the worker pool is only detached (its probe pointer cleared)
 *	and frees itself when the lookup comes back, which worker_pool_free()
 *	guarantees.
 * DIAGNOSTICS
 *	"probe_failed tenant=.. route=.. why=.." at info level for every
 *	failed check; remote replies are made printable and capped.
 */
#include "continuity/probe.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config.h"
#include "continuity/continuity.h"
#include "deliver/route.h"
#include "deliver/smtp_client_proto.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/worker.h"
#include "server.h"
#include "store/store.h"

#define PROBE_FIRST_DELAY  1      /* seconds from start to the first round */
#define PROBE_QUIT_SECS    2      /* grace for the reply to QUIT */
#define PROBE_REPLY_CAP    200    /* bytes of a remote reply kept in "why" */
#define PROBE_ROUTE_MAX    300    /* "HOST:PORT" */
#define PROBE_MAX_TARGETS  10000  /* checks per round at most */

enum probe_state {
	PS_RESOLVE,
	PS_CONNECT,
	PS_BANNER,
	PS_EHLO,
	PS_QUIT,
	PS_DONE,
};

static const char *const probe_state_names[] = {
	"RESOLVE", "CONNECT", "BANNER", "EHLO", "QUIT", "DONE",
};

struct probe_check {
	struct probe_check *prev, *next;  /* probe->checks */
	struct probe *p;                  /* NULL once detached by probe_stop() */
	char *tenant;
	char route[PROBE_ROUTE_MAX];      /* "HOST:PORT", "[v6]:PORT" */
	char host[256];
	int port;
	enum probe_state state;
	int reported;                     /* continuity_probe_result() has run */
	int on_worker;                    /* a name lookup is on the worker pool */

	/* RESOLVE on a worker thread: */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char *resolve_error;              /* getaddrinfo failure text */

	struct bufferevent *bev;
	struct event *timer;              /* the check's deadline, then QUIT grace */
	struct smtp_reply reply;
};

struct probe {
	struct server *srv;
	struct event *tick;               /* re-armed: every probe_interval */
	struct probe_check *checks;       /* running checks of this round */
	size_t nchecks;
	int round_running;
};

static void probe_check_run(struct probe_check *c);

/* ---------------------------------------------------------------- state */

static void
probe_state(struct probe_check *c, enum probe_state st)
{
	log_debug("probe_state", "tenant=%s route=%s from=%s to=%s", log_str(c->tenant),
	    log_str(c->route), probe_state_names[c->state], probe_state_names[st]);
	c->state = st;
}

static void
probe_check_close(struct probe_check *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->timer != NULL)
		evtimer_del(c->timer);
}

static void
probe_check_free(struct probe_check *c)
{
	probe_check_close(c);
	if (c->timer != NULL)
		event_free(c->timer);
	smtp_reply_free(&c->reply);
	free(c->resolve_error);
	free(c->tenant);
	free(c);
}

/* Unlinks a finished check; ends the round when it was the last one. */
static void
probe_check_done(struct probe_check *c)
{
	struct probe *p = c->p;
	if (c->state != PS_DONE)
		probe_state(c, PS_DONE);
	if (p != NULL) {
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			p->checks = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		if (--p->nchecks == 0)
			p->round_running = 0;
	}
	probe_check_free(c);
}

/* Hands the outcome to continuity, once per check. */
static void
probe_report(struct probe_check *c, int ok, const char *why)
{
	if (c->reported || c->p == NULL)
		return;
	c->reported = 1;
	if (ok)
		log_debug("probe_ok", "tenant=%s route=%s", log_str(c->tenant), log_str(c->route));
	else
		log_info("probe_failed", "tenant=%s route=%s why=%s", log_str(c->tenant),
		    log_str(c->route), log_str(why));
	continuity_probe_result(c->p->srv->continuity, c->tenant, c->route, ok, why);
}

static void
probe_fail(struct probe_check *c, const char *why)
{
	probe_report(c, 0, why);
	probe_check_done(c);
}

/* "what: 421 text" from the reply just read. */
static void
probe_fail_reply(struct probe_check *c, const char *what)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s: %d ", what, c->reply.code);
	smtp_printable(c->reply.text.data != NULL ? c->reply.text.data : "", c->reply.text.len,
	    PROBE_REPLY_CAP, &b);
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		buf_truncate(&b, b.len - 1);
	probe_fail(c, buf_cstr(&b));
	buf_free(&b);
}

static const char *
probe_helo_name(const struct config *cfg)
{
	if (cfg->helo_name != NULL && cfg->helo_name[0] != '\0')
		return cfg->helo_name;
	if (cfg->hostname != NULL && cfg->hostname[0] != '\0')
		return cfg->hostname;
	return "localhost";
}

/* ------------------------------------------------------------ protocol */

/* A complete reply: 0 when the check goes on, -1 when it was finished (freed). */
static int
probe_on_reply(struct probe_check *c)
{
	struct timeval tv = { PROBE_QUIT_SECS, 0 };
	switch (c->state) {
	case PS_BANNER:
		if (c->reply.code != 220) {
			probe_fail_reply(c, "banner");
			return -1;
		}
		probe_state(c, PS_EHLO);
		evbuffer_add_printf(bufferevent_get_output(c->bev), "EHLO %s\r\n",
		    probe_helo_name(c->p->srv->cfg));
		return 0;
	case PS_EHLO:
		if (c->reply.code != 250) {
			probe_fail_reply(c, "ehlo");
			return -1;
		}
		probe_report(c, 1, NULL);
		probe_state(c, PS_QUIT);
		evbuffer_add_printf(bufferevent_get_output(c->bev), "QUIT\r\n");
		evtimer_del(c->timer);
		evtimer_add(c->timer, &tv);
		return 0;
	default:
		probe_check_done(c);  /* the reply to QUIT */
		return -1;
	}
}

/*
 * Reads one reply line: 0 to read on, 1 when more input is needed, -1 when
 * c was finished (and freed).
 */
static int
probe_read_line(struct probe_check *c, struct evbuffer *in)
{
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > SMTP_REPLY_MAX_LINE) {
			probe_fail(c, c->state == PS_BANNER ? "banner: line too long" :
			    "ehlo: line too long");
			return -1;
		}
		return 1;
	}
	int rc = smtp_reply_feed(&c->reply, line, len);
	free(line);
	if (rc < 0) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "%s: %s", c->state == PS_BANNER ? "banner" : "ehlo",
		    c->reply.error != NULL ? c->reply.error : "malformed reply");
		probe_fail(c, buf_cstr(&b));
		buf_free(&b);
		return -1;
	}
	if (rc == 0)
		return 0;
	if (probe_on_reply(c) < 0)
		return -1;
	smtp_reply_reset(&c->reply);
	return 0;
}

static void
probe_read_cb(struct bufferevent *bev, void *arg)
{
	struct probe_check *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (probe_read_line(c, in) == 0)
		;
}

static void
probe_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct probe_check *c = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct buf b = BUF_INIT;
	if (what & BEV_EVENT_CONNECTED) {
		probe_state(c, PS_BANNER);
		buf_free(&b);
		return;
	}
	if (c->state == PS_QUIT) {
		probe_check_done(c);
		return;
	}
	if (c->state == PS_CONNECT)
		buf_appendf(&b, "connect: %s", strerror(err != 0 ? err : ECONNREFUSED));
	else if (what & BEV_EVENT_EOF)
		buf_appendf(&b, "%s: connection closed",
		    c->state == PS_BANNER ? "banner" : "ehlo");
	else
		buf_appendf(&b, "%s: %s", c->state == PS_BANNER ? "banner" : "ehlo",
		    strerror(err != 0 ? err : EIO));
	probe_fail(c, buf_cstr(&b));
	buf_free(&b);
	(void)bev;
}

static void
probe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe_check *c = arg;
	if (c->state == PS_QUIT) {
		probe_check_done(c);
		return;
	}
	struct buf b = BUF_INIT;
	buf_appendf(&b, "timeout after %llu s in %s",
	    (unsigned long long)c->p->srv->cfg->probe_timeout, c->state == PS_CONNECT ?
	    "connect" : c->state == PS_BANNER ? "banner" : "ehlo");
	probe_fail(c, buf_cstr(&b));
	buf_free(&b);
	(void)fd;
	(void)what;
}

/* Connects to c->addr; the deadline covers connect, banner and EHLO. */
static void
probe_connect(struct probe_check *c)
{
	struct server *srv = c->p->srv;
	probe_state(c, PS_CONNECT);
	if (c->addr.ss_family == AF_INET)
		((struct sockaddr_in *)&c->addr)->sin_port = htons((uint16_t)c->port);
	else
		((struct sockaddr_in6 *)&c->addr)->sin6_port = htons((uint16_t)c->port);
	c->timer = evtimer_new(srv->base, probe_timer_cb, c);
	c->bev = bufferevent_socket_new(srv->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->timer == NULL || c->bev == NULL) {
		probe_fail(c, "connect: cannot create a socket");
		return;
	}
	bufferevent_setcb(c->bev, probe_read_cb, NULL, probe_event_cb, c);
	struct timeval tv = { (time_t)srv->cfg->probe_timeout, 0 };
	evtimer_add(c->timer, &tv);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->addr, (int)c->addrlen) < 0) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "connect: %s", strerror(errno != 0 ? errno : ECONNREFUSED));
		probe_fail(c, buf_cstr(&b));
		buf_free(&b);
		return;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ------------------------------------------------------------- resolve */

/* Worker thread: getaddrinfo() of c->host; touches only c's own fields. */
static void
probe_resolve_work(void *arg)
{
	struct probe_check *c = arg;
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(c->host, NULL, &hints, &res);
	if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(c->addr)) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "resolve: %s", rc != 0 ? gai_strerror(rc) : "no address");
		c->resolve_error = buf_steal(&b);
	} else {
		memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
		c->addrlen = res->ai_addrlen;
	}
	if (res != NULL)
		freeaddrinfo(res);
}

/* Loop thread: the lookup is back. */
static void
probe_resolve_done(void *arg)
{
	struct probe_check *c = arg;
	c->on_worker = 0;
	if (c->p == NULL) {           /* probe_stop() detached it */
		probe_check_free(c);
		return;
	}
	if (c->resolve_error != NULL) {
		probe_fail(c, c->resolve_error);
		return;
	}
	probe_connect(c);
}

static void
probe_check_run(struct probe_check *c)
{
	if (netaddr_to_sockaddr(c->host, c->port, &c->addr, &c->addrlen) == 0) {
		probe_connect(c);
		return;
	}
	c->on_worker = 1;
	worker_submit(c->p->srv->workers, probe_resolve_work, probe_resolve_done, c);
}

/* --------------------------------------------------------------- round */

static int
probe_known(const struct probe *p, const char *tenant, const char *route)
{
	for (const struct probe_check *c = p->checks; c != NULL; c = c->next) {
		if (strcmp(c->tenant, tenant) == 0 && strcmp(c->route, route) == 0)
			return 1;
	}
	return 0;
}

/* Adds a check for the domain's route unless it has none or is known. */
static void
probe_add_domain(struct probe *p, const struct store_domain *d)
{
	struct route r;
	const char *why = NULL;
	if (d->route == NULL || d->route[0] == '\0' || p->nchecks >= PROBE_MAX_TARGETS)
		return;
	if (route_parse(d->route, &r, &why) < 0) {
		log_warn("probe_bad_route", "tenant=%s domain=%s route=%s why=%s",
		    log_str(d->tenant), log_str(d->domain), log_str(d->route), log_str(why));
		return;
	}
	if (r.archive_only)
		return;
	char route[PROBE_ROUTE_MAX];
	snprintf(route, sizeof(route), strchr(r.host, ':') != NULL ? "[%s]:%d" : "%s:%d",
	    r.host, r.port);
	if (probe_known(p, d->tenant, route))
		return;
	struct probe_check *c = xcalloc(1, sizeof(*c));
	c->p = p;
	c->tenant = xstrdup(d->tenant);
	snprintf(c->route, sizeof(c->route), "%s", route);
	snprintf(c->host, sizeof(c->host), "%s", r.host);
	c->port = r.port;
	c->state = PS_RESOLVE;
	smtp_reply_init(&c->reply);
	c->next = p->checks;
	if (p->checks != NULL)
		p->checks->prev = c;
	p->checks = c;
	p->nchecks++;
}

/* Collects this round's checks from the store, then starts them. */
static void
probe_round(struct probe *p)
{
	struct server *srv = p->srv;
	struct store_tenant *tenants = NULL;
	size_t ntenants = 0;
	if (p->round_running || srv->shutting_down || srv->store == NULL)
		return;
	if (store_tenant_list(srv->store, &tenants, &ntenants) < 0)
		return;
	for (size_t i = 0; i < ntenants; i++) {
		struct store_domain *domains = NULL;
		size_t ndomains = 0;
		if (!config_region_served(srv->cfg, tenants[i].region))
			continue;
		if (store_domain_list(srv->store, tenants[i].name, &domains, &ndomains) < 0)
			continue;
		for (size_t k = 0; k < ndomains; k++)
			probe_add_domain(p, &domains[k]);
		store_domains_free(domains, ndomains);
	}
	store_tenants_free(tenants, ntenants);
	if (p->nchecks == 0)
		return;
	log_debug("probe_round", "routes=%zu", p->nchecks);
	p->round_running = 1;
	/* Start from a snapshot: a check may finish (and unlink) at once. */
	size_t n = p->nchecks, i = 0;
	struct probe_check **all = xcalloc(n, sizeof(*all));
	for (struct probe_check *c = p->checks; c != NULL; c = c->next)
		all[i++] = c;
	for (i = 0; i < n; i++)
		probe_check_run(all[i]);
	free(all);
}

static void
probe_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;
	uint64_t secs = p->srv->cfg->probe_interval > 0 ? p->srv->cfg->probe_interval : 30;
	struct timeval tv = { (time_t)secs, 0 };
	evtimer_add(p->tick, &tv);
	probe_round(p);
	(void)fd;
	(void)what;
}

/* ---------------------------------------------------------------- API */

int
probe_start(struct server *srv, struct probe **p_r, char **err_r)
{
	struct probe *p = xcalloc(1, sizeof(*p));
	p->srv = srv;
	p->tick = evtimer_new(srv->base, probe_tick_cb, p);
	if (p->tick == NULL) {
		free(p);
		*err_r = xstrdup("cannot create the probe timer");
		return -1;
	}
	/* The first round about a second after start; the tick re-arms itself. */
	struct timeval first = { PROBE_FIRST_DELAY, 0 };
	if (event_add(p->tick, &first) < 0) {
		event_free(p->tick);
		free(p);
		*err_r = xstrdup("cannot arm the probe timer");
		return -1;
	}
	*p_r = p;
	return 0;
}

void
probe_now(struct probe *p)
{
	if (p != NULL)
		probe_round(p);
}

void
probe_stop(struct probe **pp)
{
	struct probe *p = *pp;
	if (p == NULL)
		return;
	struct probe_check *c = p->checks, *next;
	for (; c != NULL; c = next) {
		next = c->next;
		c->p = NULL;
		c->prev = c->next = NULL;
		if (c->on_worker)
			continue;         /* on the worker pool: freed by probe_resolve_done() */
		probe_check_free(c);
	}
	event_free(p->tick);
	free(p);
	*pp = NULL;
}
