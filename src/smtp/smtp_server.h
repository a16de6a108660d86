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
/*
 * The submission listener(s) ([submission] listen, RFC 6409): the same
 * sessions in submission mode: AUTH PLAIN/LOGIN offered only after
 * STARTTLS, every MAIL needs a signed-in continuity user whose address (or
 * alias) is the envelope sender, relaying to any recipient through the
 * outbound path; the queue entry carries env.auth_user.  No listener when
 * the setting is empty (then *s_r is NULL).
 */
int submission_server_start(struct server *srv, struct smtp_server **s_r, char **err_r);
void smtp_server_shutdown(struct smtp_server *s);
void smtp_server_free(struct smtp_server **s);
/* Open sessions now. */
unsigned smtp_server_sessions(const struct smtp_server *s);

#endif
