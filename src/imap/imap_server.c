/*
 * imap_server — the continuity IMAP listeners and connection limits.
 *
 * One evconnlistener per [imap] listen address (plain, STARTTLS) and per
 * [imap] tls_listen address (implicit TLS), all on the loop thread.  Each
 * accepted connection becomes a struct imap_session (imap_session.c)
 * unless imap_max_connections or imap_max_connections_per_ip is reached:
 * then "* BYE Too many connections" is written straight to the socket.
 * Storage work of every session runs on the server's own worker pool
 * (2 threads), so the archive and SQLite never block the loop.
 */
#include "imap/imap_server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config/config.h"
#include "imap/imap_session.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/worker.h"
#include "server.h"
#include "tls/tls.h"

static int
same_ip(const struct sockaddr_storage *a, const struct sockaddr *b)
{
	char x[64], y[64];
	netaddr_format((const struct sockaddr *)a, x, sizeof(x));
	netaddr_format(b, y, sizeof(y));
	return strcmp(x, y) == 0;
}

static unsigned
imap_server_count_ip(const struct imap_server *s, const struct sockaddr *sa)
{
	unsigned n = 0;
	for (const struct imap_session *x = s->sessions; x != NULL; x = x->next)
		n += (unsigned)same_ip(&x->ss, sa);
	return n;
}

static void
imap_server_refuse(evutil_socket_t fd, const char *ip, const char *why)
{
	static const char msg[] = "* BYE Too many connections, try again later\r\n";
	ssize_t n = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	evutil_closesocket(fd);
	log_warn("imap_reject", "client=%s reason=%s", ip, why);
}

static void
imap_server_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct imap_server *s = arg;
	const struct config *cfg = s->srv->cfg;
	char ip[64];
	int tls = 0;
	for (int i = 0; i < s->nlisteners; i++)
		if (s->listeners[i] == l)
			tls = s->listener_tls[i];
	netaddr_format(sa, ip, sizeof(ip));
	if (s->shutting_down) {
		evutil_closesocket(fd);
		return;
	}
	if (s->nsessions >= cfg->imap_max_connections) {
		imap_server_refuse(fd, ip, "imap_max_connections");
		return;
	}
	if (imap_server_count_ip(s, sa) >= cfg->imap_max_connections_per_ip) {
		imap_server_refuse(fd, ip, "imap_max_connections_per_ip");
		return;
	}
	imap_session_new(s, fd, sa, (socklen_t)salen, tls);
}

static void
imap_server_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	log_error("imap_accept", "error=%s", evutil_socket_error_to_string(err));
}

static int
imap_server_listen(struct imap_server *s, const char *addr, int tls, char **err_r)
{
	char host[256];
	int port;
	struct sockaddr_storage ss;
	socklen_t sslen;
	size_t n = strlen(addr) + 128;
	if (s->nlisteners == (int)(sizeof(s->listeners) / sizeof(s->listeners[0]))) {
		*err_r = xmalloc(n);
		snprintf(*err_r, n, "imap listen %s: too many listen addresses", addr);
		return -1;
	}
	if (netaddr_parse_hostport(addr, host, sizeof(host), &port) < 0 ||
	    netaddr_to_sockaddr(host, port, &ss, &sslen) < 0) {
		*err_r = xmalloc(n);
		snprintf(*err_r, n, "imap listen %s: not a numeric host:port", addr);
		return -1;
	}
	struct evconnlistener *l = evconnlistener_new_bind(s->srv->base, imap_server_accept, s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 128,
	    (struct sockaddr *)&ss, (int)sslen);
	if (l == NULL) {
		*err_r = xmalloc(n);
		snprintf(*err_r, n, "imap listen %s: %s", addr, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(l, imap_server_accept_error);
	s->listener_tls[s->nlisteners] = tls;
	s->listeners[s->nlisteners++] = l;
	log_info("imap_listen", "addr=%s tls=%s", addr, tls ? "implicit" : "starttls");
	return 0;
}

/* Binds every address of a comma list. */
static int
imap_server_listen_list(struct imap_server *s, const char *list, int tls, char **err_r)
{
	char *copy = xstrdup(list), *save = NULL;
	int rc = 0;
	for (char *a = strtok_r(copy, ",", &save); a != NULL && rc == 0;
	    a = strtok_r(NULL, ",", &save)) {
		while (*a == ' ')
			a++;
		if (*a != '\0')
			rc = imap_server_listen(s, a, tls, err_r);
	}
	free(copy);
	return rc;
}

int
imap_server_start(struct server *srv, struct imap_server **s_r, char **err_r)
{
	const struct config *cfg = srv->cfg;
	*s_r = NULL;
	if (cfg->imap_listen[0] == '\0' && cfg->imap_tls_listen[0] == '\0')
		return 0;
	int have_tls = srv->tls != NULL && srv->tls->server != NULL;
	if (cfg->imap_tls_listen[0] != '\0' && !have_tls)
		log_warn("imap_listen", "tls_listen=%s skipped=no_certificate", cfg->imap_tls_listen);
	struct imap_server *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->pool = worker_pool_new(srv->base, 2);
	if (imap_server_listen_list(s, cfg->imap_listen, 0, err_r) < 0 ||
	    (have_tls && imap_server_listen_list(s, cfg->imap_tls_listen, 1, err_r) < 0)) {
		imap_server_free(&s);
		return -1;
	}
	*s_r = s;
	return 0;
}

static void
imap_server_close_listeners(struct imap_server *s)
{
	for (int i = 0; i < s->nlisteners; i++)
		evconnlistener_free(s->listeners[i]);
	s->nlisteners = 0;
}

void
imap_server_shutdown(struct imap_server *s)
{
	if (s == NULL || s->shutting_down)
		return;
	s->shutting_down = 1;
	imap_server_close_listeners(s);
	struct imap_session *x = s->sessions;
	while (x != NULL) {
		struct imap_session *next = x->next;
		imap_session_bye(x, "Server shutting down");
		x = next;
	}
	log_info("imap_shutdown", "sessions=%u", s->nsessions);
}

void
imap_server_free(struct imap_server **sp)
{
	struct imap_server *s = *sp;
	if (s == NULL)
		return;
	imap_server_close_listeners(s);
	while (s->sessions != NULL)
		imap_session_detach(s->sessions);
	/* Finishes outstanding jobs; their done callbacks free detached sessions. */
	worker_pool_free(&s->pool);
	xfree(sp);
}

void
imap_server_kick_tenant(struct imap_server *s, const char *tenant)
{
	if (s == NULL || tenant == NULL)
		return;
	struct imap_session *x = s->sessions;
	while (x != NULL) {
		struct imap_session *next = x->next;
		if (x->tenant != NULL && strcmp(x->tenant, tenant) == 0)
			imap_session_bye(x, "continuity ended");
		x = next;
	}
}

void
imap_server_notify(struct imap_server *s, const char *tenant)
{
	if (s == NULL || tenant == NULL)
		return;
	for (struct imap_session *x = s->sessions; x != NULL; x = x->next)
		if (x->tenant != NULL && strcmp(x->tenant, tenant) == 0)
			imap_session_notify(x);
}

unsigned
imap_server_sessions(const struct imap_server *s)
{
	return s != NULL ? s->nsessions : 0;
}
