/*
 * imap_server — the continuity IMAP server (RFC 3501 IMAP4rev1 with IDLE
 * RFC 2177, UIDPLUS RFC 4315, LITERAL+ RFC 7888, NAMESPACE RFC 2342, ID
 * RFC 2971, MOVE RFC 6851, SPECIAL-USE RFC 6154 on LIST).
 *
 * imap_server_start() listens on [imap] listen (STARTTLS; LOGIN and
 * AUTHENTICATE PLAIN only after it, LOGINDISABLED before) and [imap]
 * tls_listen (implicit TLS).  Every connection is a struct imap_session
 * (imap_session.c), an explicit state machine:
 *   NOT_AUTHENTICATED -> AUTHENTICATED -> SELECTED -> LOGOUT
 * Sign-in uses the platform's identities (auth_password_verify_async:
 * local passwords or the directory) and is allowed only while
 * continuity_user_active() says the user's tenant is in continuity (or a
 * drill includes the user); every session is audited (sign-in, refusals,
 * logout).  Mailboxes come from cmbox.  Commands that touch storage run on
 * the server's own worker threads; a FETCH is produced in slices so the
 * loop and the client's socket buffer bound memory.
 */
#ifndef MAILARK_IMAP_IMAP_SERVER_H
#define MAILARK_IMAP_IMAP_SERVER_H

struct server;
struct imap_server;

int imap_server_start(struct server *srv, struct imap_server **s_r, char **err_r);
/* Stops accepting; every session gets "* BYE" and is closed. */
void imap_server_shutdown(struct imap_server *s);
void imap_server_free(struct imap_server **s);
/* Continuity ended for the tenant: its sessions get "* BYE" and are closed. */
void imap_server_kick_tenant(struct imap_server *s, const char *tenant);
/* New mail was archived for the tenant: IDLE sessions of it look now. */
void imap_server_notify(struct imap_server *s, const char *tenant);
/* Open sessions now. */
unsigned imap_server_sessions(const struct imap_server *s);

#endif
