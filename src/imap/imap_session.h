/*
 * imap_session — one IMAP connection (internal to src/imap/).
 *
 * imap_session.c owns the connection: TLS, input framing (lines and
 * literals, limits), the session state machine, timeouts, the worker jobs
 * and the output.  imap_cmd.c implements the commands against the struct
 * below.  Everything runs on the loop thread except the work function of
 * a job (imap_session_run), which runs on the server's worker pool and
 * may use the session's mailbox fields (user, selected, snap) because the
 * loop thread leaves them alone while sess->job_running is set.
 *
 * Ownership: a session is freed by imap_session_close() on the loop
 * thread, or, when a job or a sign-in is outstanding, by that job's done
 * callback once it finds the session gone (sess->closed).
 */
#ifndef MAILARK_IMAP_IMAP_SESSION_H
#define MAILARK_IMAP_IMAP_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/principal.h"
#include "continuity/cmbox.h"
#include "imap/imap_parse.h"
#include "lib/buf.h"
#include "lib/id.h"

struct server;
struct imap_server;
struct bufferevent;
struct event;
struct worker_pool;
struct evconnlistener;

enum imap_state {
	IMAP_S_NOT_AUTHENTICATED,
	IMAP_S_AUTHENTICATED,
	IMAP_S_SELECTED,
	IMAP_S_LOGOUT,
};

/* What the session waits for besides the next command. */
enum imap_wait {
	IMAP_W_COMMAND,
	IMAP_W_TLS_HANDSHAKE,
	IMAP_W_SASL,          /* AUTHENTICATE PLAIN: the continuation line */
	IMAP_W_IDLE,          /* IDLE: "DONE" */
};

/* Input framing. */
enum imap_in {
	IMAP_IN_LINE,
	IMAP_IN_LITERAL,
	IMAP_IN_DISCARD,      /* an oversized LITERAL+ literal being thrown away */
};

struct imap_server {
	struct server *srv;
	struct worker_pool *pool;
	struct evconnlistener *listeners[16];
	int listener_tls[16];
	int nlisteners;
	struct imap_session *sessions;
	unsigned nsessions;
	int shutting_down;
};

struct imap_session;
typedef void imap_work_fn(struct imap_session *sess, struct buf *out);
typedef void imap_done_fn(struct imap_session *sess);

struct imap_session {
	struct imap_server *server;          /* NULL once detached */
	struct server *srv;
	struct imap_session *next, *prev;
	struct bufferevent *bev;             /* NULL once closed */
	char id[ID_LEN + 1];
	struct sockaddr_storage ss;
	char ip[64];
	int tls;
	int closed;                          /* connection gone; free when nothing is outstanding */
	int closing;                         /* BYE sent: close once it is flushed */
	int job_running;                     /* a worker job is outstanding */
	int auth_pending;                    /* a sign-in callback is outstanding */
	int in_command;                      /* a command is running: read no input */
	enum imap_state state;
	enum imap_wait wait;
	/* input framing */
	enum imap_in in;
	struct buf cmdbuf;                   /* the command being framed */
	uint64_t lit_left;
	int cmd_toobig;                      /* a LITERAL+ literal was too big: answer NO */
	unsigned bad_in_row;
	unsigned auth_failures;
	char *pending_tag;                   /* AUTHENTICATE / IDLE / delayed reply */
	/* the signed-in user */
	struct principal who;                /* moved out of the auth callback */
	char *tenant;
	char *address;
	char **addrs;
	size_t naddrs;
	struct cmbox_user user;
	unsigned long fetched;               /* messages fetched, for the audit detail */
	/* the selected mailbox */
	char *selected;
	int readonly;
	struct cmbox_snapshot snap;          /* seq n = snap.msgs[n - 1] */
	uint32_t recent_from;                /* UIDs >= this are \Recent for this session */
	/* the current worker job */
	imap_work_fn *work;
	imap_done_fn *done;
	struct buf out;                      /* what the job says */
	void *job;                           /* command-specific state (imap_cmd.c) */
	void (*job_free)(void *);
	imap_done_fn *resume;                /* run when the output has drained (FETCH slices) */
	struct event *timer;                 /* IDLE poll, sign-in failure delay */
	struct buf delayed;                  /* reply written when the timer fires */
	int poll_wanted;                     /* IDLE: notified while a poll ran */
};

/* ---- imap_session.c --------------------------------------------------- */

void imap_session_new(struct imap_server *s, int fd, const struct sockaddr *sa, socklen_t salen,
    int implicit_tls);
/* Server stop / kick: "* BYE why" and close. */
void imap_session_bye(struct imap_session *sess, const char *why);
/* Closes the connection; frees unless busy. */
void imap_session_close(struct imap_session *sess, const char *why);
void imap_session_detach(struct imap_session *sess);
void imap_session_notify(struct imap_session *sess);

/* Writes text to the client (no-op once closed). */
void imap_session_write(struct imap_session *sess, const char *data, size_t len);
void imap_session_printf(struct imap_session *sess, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void imap_session_enter(struct imap_session *sess, enum imap_state st);
const char *imap_state_name(enum imap_state st);
/*
 * Runs work(sess, &sess->out) on a worker, then done(sess) on the loop
 * thread after sess->out was sent; input is held meanwhile.  done may
 * start another job (FETCH slices); when it does not, the session reads
 * the next command.
 */
void imap_session_run(struct imap_session *sess, imap_work_fn *work, imap_done_fn *done);
/* Called by a command that finished on the loop thread without a job. */
void imap_session_command_done(struct imap_session *sess);
/* 1 when the client has read most of what we sent (FETCH slicing). */
int imap_session_output_low(struct imap_session *sess);
/* Runs resume(sess) once the output has drained below the watermark. */
void imap_session_when_drained(struct imap_session *sess, imap_done_fn *resume);
/*
 * Pipelining: a copy of the next complete command line the client already
 * sent (without CRLF; *used_r bytes with it) when the framing is between
 * commands and the line announces no literal.  1 with *line_r (the
 * caller's), 0 none.  imap_session_consume(used) then takes it.
 */
int imap_session_peek_line(struct imap_session *sess, char **line_r, size_t *len_r,
    size_t *used_r);
void imap_session_consume(struct imap_session *sess, size_t used);
/* Writes the reply after ~1 s (failed sign-in), then ends the command. */
void imap_session_delay_reply(struct imap_session *sess, const char *reply);
/* Starts / ends IDLE (the poll timer). */
void imap_session_idle_start(struct imap_session *sess);
void imap_session_idle_stop(struct imap_session *sess);
/* STARTTLS after the OK was written. */
int imap_session_starttls(struct imap_session *sess);
/* CAPABILITY list for the session now. */
void imap_session_capability(struct imap_session *sess, struct buf *out);

/* ---- imap_cmd.c ------------------------------------------------------- */

/* One complete framed command. */
void imap_cmd_dispatch(struct imap_session *sess, const char *data, size_t len);
/* A line while waiting for an AUTHENTICATE response or IDLE's DONE. */
void imap_cmd_continuation(struct imap_session *sess, const char *line, size_t len);
/* IDLE poll: compares the snapshot and writes updates. */
void imap_cmd_idle_poll(struct imap_session *sess);
/* LOGOUT / close: the audit record of a signed-in session. */
void imap_cmd_session_end(struct imap_session *sess);
void imap_cmd_free_user(struct imap_session *sess);

#endif
