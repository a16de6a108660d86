/*
 * NAME
 *	smtp_server — inbound SMTP listeners and connection limits
 *
 * DESCRIPTION
 *	One evconnlistener per [smtp] listen address, all on the event-loop
 *	thread.  Each accepted connection becomes a struct smtp_session
 *	(smtp_session.c) unless a limit is reached: max_connections in all,
 *	max_connections_per_ip per client address.  Over a limit the client
 *	gets "421 4.7.0" written straight to the socket and is closed.
 *	The per-IP count walks the session list: O(sessions) per accept, cheap
 *	at the configured limits (1000 by default).
 *
 *	smtp_server_shutdown() closes the listeners and tells every session;
 *	smtp_server_free() closes whatever is still open.
 *
 *	submission_server_start() builds a second struct smtp_server for the
 *	[submission] listen addresses (RFC 6409) with `submission` set: the
 *	same sessions and limits, in submission mode (AUTH after STARTTLS, a
 *	signed-in continuity user as the sender; see smtp_session.c).
 */
#include "smtp/smtp_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "server.h"
#include "smtp/smtp_session.h"

static unsigned
smtp_server_count_ip(const struct smtp_server *s, const struct sockaddr *sa)
{
	unsigned n = 0;
	for (const struct smtp_session *x = s->sessions; x != NULL; x = smtp_session_next(x))
		n += (unsigned)smtp_session_same_ip(x, sa);
	return n;
}

static void
smtp_server_refuse(struct smtp_server *s, evutil_socket_t fd, const char *ip, const char *why)
{
	static const char msg[] = "421 4.7.0 Too many connections, try again later\r\n";
	/* Best effort: a fresh socket's send buffer takes one short line. */
	ssize_t n = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	evutil_closesocket(fd);
	metrics_inc(&s->srv->metrics.smtp_rejected_connections);
	log_warn("reject", "client=%s reason=%s", ip, why);
}

static void
smtp_server_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct smtp_server *s = arg;
	const struct config *cfg = s->srv->cfg;
	char ip[64];
	netaddr_format(sa, ip, sizeof(ip));
	if (s->shutting_down) {
		evutil_closesocket(fd);
		return;
	}
	if (s->nsessions >= cfg->max_connections) {
		smtp_server_refuse(s, fd, ip, "max_connections");
		return;
	}
	if (smtp_server_count_ip(s, sa) >= cfg->max_connections_per_ip) {
		smtp_server_refuse(s, fd, ip, "max_connections_per_ip");
		return;
	}
	smtp_session_new(s, fd, sa, (socklen_t)salen);
}

static void
smtp_server_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	/* EMFILE and friends: log and keep listening; libevent retries. */
	log_error("smtp_accept", "error=%s", evutil_socket_error_to_string(err));
}

/* what: "smtp" or "submission", for messages. */
static int
smtp_server_listen(struct smtp_server *s, const char *what, const char *addr, char **err_r)
{
	char host[256];
	int port;
	struct sockaddr_storage ss;
	socklen_t sslen;
	if (netaddr_parse_hostport(addr, host, sizeof(host), &port) < 0 ||
	    netaddr_to_sockaddr(host, port, &ss, &sslen) < 0) {
		size_t n = strlen(addr) + 64;
		*err_r = xmalloc(n);
		snprintf(*err_r, n, "%s listen %s: not a numeric host:port", what, addr);
		return -1;
	}
	struct evconnlistener *l = evconnlistener_new_bind(s->srv->base, smtp_server_accept, s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 512,
	    (struct sockaddr *)&ss, (int)sslen);
	if (l == NULL) {
		size_t n = strlen(addr) + 128;
		*err_r = xmalloc(n);
		snprintf(*err_r, n, "%s listen %s: %s", what, addr, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(l, smtp_server_accept_error);
	s->listeners[s->nlisteners++] = l;
	log_info(s->submission ? "submission_listen" : "smtp_listen", "addr=%s", addr);
	return 0;
}

int
smtp_server_start(struct server *srv, struct smtp_server **s_r, char **err_r)
{
	struct smtp_server *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	for (int i = 0; i < srv->cfg->smtp_listen_count; i++) {
		if (smtp_server_listen(s, "smtp", srv->cfg->smtp_listen[i], err_r) < 0) {
			smtp_server_free(&s);
			return -1;
		}
	}
	*s_r = s;
	return 0;
}

static void
smtp_server_close_listeners(struct smtp_server *s)
{
	for (int i = 0; i < s->nlisteners; i++)
		evconnlistener_free(s->listeners[i]);
	s->nlisteners = 0;
}

void
smtp_server_shutdown(struct smtp_server *s)
{
	if (s == NULL || s->shutting_down)
		return;
	s->shutting_down = 1;
	smtp_server_close_listeners(s);
	struct smtp_session *x = s->sessions;
	while (x != NULL) {
		/* The session may free itself: step first. */
		struct smtp_session *next = smtp_session_next(x);
		smtp_session_shutdown(x);
		x = next;
	}
	log_info("smtp_shutdown", "sessions=%u", s->nsessions);
}

void
smtp_server_free(struct smtp_server **sp)
{
	struct smtp_server *s = *sp;
	if (s == NULL)
		return;
	smtp_server_close_listeners(s);
	while (s->sessions != NULL)
		smtp_session_close_detach(s->sessions);
	xfree(sp);
}

unsigned
smtp_server_sessions(const struct smtp_server *s)
{
	return s != NULL ? s->nsessions : 0;
}

/* Binds every address of the comma-separated [submission] listen. */
static int
submission_listen_all(struct smtp_server *s, const char *list, char **err_r)
{
	char *copy = xstrdup(list), *save = NULL;
	int rc = 0;
	for (char *a = strtok_r(copy, ",", &save); a != NULL && rc == 0;
	    a = strtok_r(NULL, ",", &save)) {
		char *addr = str_trim(a);
		if (*addr == '\0')
			continue;
		if (s->nlisteners == CONFIG_MAX_LISTEN) {
			*err_r = xstrdup("submission listen: too many addresses");
			rc = -1;
		} else {
			rc = smtp_server_listen(s, "submission", addr, err_r);
		}
	}
	free(copy);
	return rc;
}

int
submission_server_start(struct server *srv, struct smtp_server **s_r, char **err_r)
{
	*s_r = NULL;
	const char *list = srv->cfg->submission_listen;
	if (list == NULL || list[strspn(list, " ,\t")] == '\0')
		return 0;
	struct smtp_server *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->submission = 1;
	if (submission_listen_all(s, list, err_r) < 0) {
		smtp_server_free(&s);
		return -1;
	}
	*s_r = s;
	return 0;
}
