/*
 * smtp_session — one inbound SMTP connection (internal to smtp/).
 *
 * smtp_server.c accepts a connection and calls smtp_session_new(); from then
 * on the session owns the socket and frees itself when the connection ends
 * (unlinking itself from the server's list).  A session waiting for a queue
 * commit outlives its connection until the commit callback has run.
 * struct smtp_server is defined here because both files use its fields.
 * A server with `submission` set runs its sessions in submission mode
 * (RFC 6409: AUTH after STARTTLS, sender owned by the signed-in user).
 */
#ifndef MAILARK_SMTP_SMTP_SESSION_H
#define MAILARK_SMTP_SMTP_SESSION_H

#include <event2/util.h>
#include <sys/socket.h>

#include "config/config.h"

struct server;
struct evconnlistener;
struct smtp_session;

struct smtp_server {
	struct server *srv;
	struct evconnlistener *listeners[CONFIG_MAX_LISTEN];
	int nlisteners;
	struct smtp_session *sessions;   /* doubly linked list of live connections */
	unsigned nsessions;
	int shutting_down;
	int submission;                  /* RFC 6409 listener: sessions need AUTH */
};

/* Takes ownership of fd. */
void smtp_session_new(struct smtp_server *s, evutil_socket_t fd, const struct sockaddr *sa,
    socklen_t salen);
/* 421 now when idle; otherwise at the next command (after a commit finishes). */
void smtp_session_shutdown(struct smtp_session *sess);
/* Closes the connection; a committing session lingers, detached, until its callback. */
void smtp_session_close_detach(struct smtp_session *sess);
/* 1 when the session's client has the same IP address as sa. */
int smtp_session_same_ip(const struct smtp_session *sess, const struct sockaddr *sa);
struct smtp_session *smtp_session_next(const struct smtp_session *sess);

#endif
