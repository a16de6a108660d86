/*
 * smtp_server — the inbound ESMTP listener(s) and sessions (RFC 5321).
 *
 * smtp_server_start() binds every [smtp] listen address and accepts on the
 * event loop; each connection is a struct smtp_session, an explicit state
 * machine (see smtp_session.c).  Messages are streamed into the queue and
 * acknowledged only after queue_writer_commit() reports them durable.
 * smtp_server_shutdown() stops accepting and answers 421 to every session
 * at its next command; smtp_server_free() closes what is left.
 */
#ifndef MAILARK_SMTP_SMTP_SERVER_H
#define MAILARK_SMTP_SMTP_SERVER_H

struct server;
struct smtp_server;

int smtp_server_start(struct server *srv, struct smtp_server **s_r, char **err_r);
void smtp_server_shutdown(struct smtp_server *s);
void smtp_server_free(struct smtp_server **s);
/* Open sessions now. */
unsigned smtp_server_sessions(const struct smtp_server *s);

#endif
