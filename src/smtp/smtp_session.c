/*
 * NAME
 *	smtp_session — the inbound ESMTP protocol state machine
 *
 * DESCRIPTION
 *	One struct smtp_session per connection, driven by bufferevent
 *	callbacks on the loop thread.  Commands are read in order from the
 *	input buffer (PIPELINING) and answered in order; each verb has a
 *	check function (is it legal now?) and a proceed function in
 *	cmd_table[], in the OpenSMTPD way.  Message content is streamed into
 *	a queue writer as it arrives, never held whole in memory.
 *
 *	A session of the submission listener (RFC 6409, smtp_server.c) runs
 *	the same machine with `submission` set: EHLO offers AUTH PLAIN LOGIN
 *	once TLS is up, MAIL needs a signed-in continuity user (see the AUTH
 *	section below) whose address or alias is the sender, and the whole
 *	transaction is ONE outbound entry of the user's tenant carrying
 *	env.auth_user, whatever its recipients: colleagues and the outside
 *	world together, as mail clients send them (the scheduler routes the
 *	tenant's own domains through the tenant route).  Port 25 offers no AUTH.
 *
 * STATES
 *
 *	   accept ──220──▶ GREETING ◀───────── STARTTLS_HANDSHAKE
 *	                      │ HELO/EHLO             ▲  handshake done
 *	                      ▼                       │  (state reset)
 *	      ┌──────────▶  READY ─────STARTTLS───────┘
 *	      │ RSET/EHLO     │ MAIL
 *	      │               ▼
 *	      ├───────────── MAIL ──RCPT──▶ RCPT ──DATA (354)──▶ DATA
 *	      │                              │                     │ CRLF.CRLF
 *	      │                        BDAT n│                     │
 *	      │                              ▼                     ▼
 *	      │  BDAT ◀──chunk read── BDAT_CHUNK ──LAST read──▶ COMMITTING
 *	      │   └──BDAT n──────────────▶ ▲                       │ commit cb:
 *	      └────────────────────────────────────────────────────┘ 250 / 451
 *
 *	From every state: QUIT, 421 (timeout, errors, shutdown) → QUIT, which
 *	closes once the reply is flushed; EOF or a socket error → CLOSED.
 *
 * TRANSITIONS (all through session_enter())
 *	GREETING/READY/MAIL/RCPT → READY        proceed_helo, proceed_rset
 *	READY → MAIL                            proceed_mail
 *	MAIL/RCPT → RCPT                        proceed_rcpt
 *	RCPT → DATA                             proceed_data
 *	any command state → BDAT_CHUNK          proceed_bdat (the chunk is
 *	                                        always read, even to refuse it)
 *	BDAT_CHUNK → BDAT / previous state      bdat_chunk_done
 *	DATA, BDAT_CHUNK → COMMITTING / READY   end_of_data
 *	COMMITTING → READY                      commit_done
 *	GREETING/READY → STARTTLS_HANDSHAKE     proceed_starttls
 *	STARTTLS_HANDSHAKE → GREETING           on_event (BEV_EVENT_CONNECTED)
 *	READY → AUTH → AUTH_CHECK → READY       proceed_auth, auth_response,
 *	                                        auth_verified / auth_delay_done
 *	                                        (submission only)
 *
 * INVARIANTS
 *	txn.w != NULL only in DATA, BDAT_CHUNK, BDAT and COMMITTING (until
 *	queue_writer_commit takes it) and only while txn.error_reply == NULL.
 *	commit_pending ⇔ a queue commit callback is outstanding, auth_pending ⇔
 *	a sign-in callback is; the struct is freed only when the connection is
 *	closed and neither is (session_busy).
 *	Only event callbacks (read, write, event, commit) free a session, never
 *	code running inside process_input(), so a session pointer held during
 *	a callback stays valid until it returns.
 */
#include "smtp/smtp_session.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "config/config.h"
#include "continuity/continuity.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "queue/queue.h"
#include "server.h"
#include "smtp/smtp_parse.h"
#include "store/store.h"
#include "tls/tls.h"

#define SESSION_READ_HIGH  (256 * 1024)
#define SESSION_OUT_PAUSE  (256 * 1024)

enum smtp_state {
	S_GREETING,
	S_READY,
	S_MAIL,
	S_RCPT,
	S_DATA,
	S_BDAT,
	S_BDAT_CHUNK,
	S_COMMITTING,
	S_STARTTLS_HANDSHAKE,
	S_AUTH,                              /* submission: reading a SASL response line */
	S_AUTH_CHECK,                        /* submission: verifying, or the failure delay */
	S_QUIT,
	S_CLOSED,
};

static const char *const state_names[] = {
	"GREETING", "READY", "MAIL", "RCPT", "DATA", "BDAT", "BDAT_CHUNK", "COMMITTING",
	"STARTTLS_HANDSHAKE", "AUTH", "AUTH_CHECK", "QUIT", "CLOSED",
};

/* Where the byte scanner of DATA/BDAT content is within a line. */
enum data_state { D_BOL, D_BOL_DOT, D_BOL_DOT_CR, D_MID, D_CR };

struct smtp_txn {
	char *sender;
	struct smtp_mail mail;               /* MAIL parameters */
	char *tenant;
	enum queue_direction dir;
	int have_dir;
	struct queue_rcpt *rcpts;
	size_t nrcpts, cap;
	struct queue_writer *w;
	char qid[ID_LEN + 1];
	uint64_t size;                       /* bytes written, Received: included */
	const char *error_reply;             /* set: the message is refused at its end */
	const char *error_reason;
	enum data_state dstate;
	uint64_t line_len;
	/* BDAT */
	uint64_t chunk_left;
	uint64_t chunk_size;
	int chunk_last;
	const char *chunk_error;             /* refuse this chunk without a transaction */
	enum smtp_state chunk_return;
	struct timespec t_end;               /* end of data, for commit latency */
};

struct smtp_session {
	struct smtp_server *srv;             /* NULL once detached */
	struct server *main;
	const struct config *cfg;
	struct smtp_session *next, *prev;
	int linked;
	struct bufferevent *bev;             /* NULL once the connection is closed */
	enum smtp_state state;
	char id[ID_LEN + 1];
	struct sockaddr_storage ss;
	char ip[64];
	char *helo;
	int esmtp;
	int tls;
	int skip_line;                       /* discarding the rest of an overlong line */
	int peer_eof;
	int commit_pending;
	int out_paused;
	char *line;                          /* max_line_length + 3 */
	unsigned nerrors, ncmds, nmsgs, nrcpts;
	struct smtp_txn txn;
	/* submission mode (RFC 6409, RFC 4954) */
	int submission;
	int auth_pending;                    /* an auth_password_verify_async callback is outstanding */
	int auth_in_call;                    /* inside auth_password_verify_async (sync callback) */
	int auth_mech;                       /* AUTH_MECH_*, while S_AUTH */
	char *auth_try;                      /* the user name being tried (LOGIN: read first) */
	unsigned auth_failures;
	struct event *auth_delay;            /* failure delay timer (owned) */
	const char *auth_delay_reply;        /* static text sent when the delay ends */
	struct event *quit_ev;               /* TLS: closes once the last reply is sent (owned) */
	struct evbuffer_cb_entry *quit_cb;   /* on the socket bufferevent's output, or NULL */
	char *auth_addr;                     /* signed-in user's primary address, or NULL */
	char *auth_tenant;
	long long auth_uid;
};

typedef int cmd_check_fn(struct smtp_session *, const char *args);
typedef void cmd_proceed_fn(struct smtp_session *, const char *args);

struct smtp_cmd_def {
	enum smtp_cmd cmd;
	const char *name;
	cmd_check_fn *check;
	cmd_proceed_fn *proceed;
};

static void process_input(struct smtp_session *sess);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* ---- helpers ---------------------------------------------------------- */

static void
session_enter(struct smtp_session *sess, enum smtp_state st)
{
	if (sess->state == st)
		return;
	log_debug("smtp_state", "session=%s from=%s to=%s", sess->id,
	    state_names[sess->state], state_names[st]);
	sess->state = st;
	if (sess->bev == NULL)
		return;
	uint64_t secs = (st == S_DATA || st == S_BDAT_CHUNK) ? sess->cfg->data_timeout
	    : sess->cfg->command_timeout;
	struct timeval tv = { (time_t)secs, 0 };
	bufferevent_set_timeouts(sess->bev, &tv, &tv);
}

static void
reply(struct smtp_session *sess, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
reply(struct smtp_session *sess, const char *fmt, ...)
{
	if (sess->bev == NULL)
		return;
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&b, fmt, ap);
	va_end(ap);
	if (b.len > 0 && b.data[0] == '5')
		sess->nerrors++;
	buf_append(&b, "\r\n", 2);
	evbuffer_add(bufferevent_get_output(sess->bev), b.data, b.len);
	buf_free(&b);
}

static struct metrics *
session_metrics(struct smtp_session *sess)
{
	return sess->srv != NULL ? &sess->main->metrics : NULL;
}

static void
count(struct smtp_session *sess, size_t field_offset, uint64_t n)
{
	struct metrics *m = session_metrics(sess);
	if (m == NULL)
		return;
	atomic_ullong *c = (atomic_ullong *)((char *)m + field_offset);
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#define COUNT(sess, field, n) count((sess), offsetof(struct metrics, field), (n))

static void
log_reject(struct smtp_session *sess, const char *reason, const char *detail)
{
	log_warn("reject", "session=%s client=%s helo=%s reason=%s detail=%s", sess->id,
	    sess->ip, log_str(sess->helo), reason, log_str(detail));
}

static void
txn_reset(struct smtp_session *sess)
{
	struct smtp_txn *t = &sess->txn;
	if (t->w != NULL)
		queue_writer_abort(&t->w);
	for (size_t i = 0; i < t->nrcpts; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].orcpt);
	}
	free(t->rcpts);
	free(t->sender);
	free(t->tenant);
	memset(t, 0, sizeof(*t));
}

/* The state to return to when a transaction ends. */
static enum smtp_state
idle_state(const struct smtp_session *sess)
{
	return sess->helo != NULL ? S_READY : S_GREETING;
}

static int
waiting_for_command(const struct smtp_session *sess)
{
	switch (sess->state) {
	case S_GREETING:
	case S_READY:
	case S_MAIL:
	case S_RCPT:
	case S_BDAT:
	case S_AUTH:
		return 1;
	default:
		return 0;
	}
}

/* Final reply, then close once it is flushed. */
static void
session_quit(struct smtp_session *sess, const char *fmt_reply)
{
	reply(sess, "%s", fmt_reply);
	session_enter(sess, S_QUIT);
	if (sess->bev != NULL)
		bufferevent_disable(sess->bev, EV_READ);
}

/* ---- lifetime --------------------------------------------------------- */

/* A callback that will use the session is outstanding (queue commit, sign-in). */
static int
session_busy(const struct smtp_session *sess)
{
	return sess->commit_pending || sess->auth_pending;
}

static void
session_unlink(struct smtp_session *sess)
{
	struct smtp_server *s = sess->srv;
	if (s == NULL || !sess->linked)
		return;
	if (sess->prev != NULL)
		sess->prev->next = sess->next;
	else
		s->sessions = sess->next;
	if (sess->next != NULL)
		sess->next->prev = sess->prev;
	sess->next = sess->prev = NULL;
	sess->linked = 0;
}

static void
session_free(struct smtp_session *sess)
{
	session_unlink(sess);
	txn_reset(sess);
	if (sess->auth_delay != NULL)
		event_free(sess->auth_delay);
	if (sess->quit_ev != NULL)
		event_free(sess->quit_ev);
	free(sess->auth_try);
	free(sess->auth_addr);
	free(sess->auth_tenant);
	free(sess->helo);
	free(sess->line);
	free(sess);
}

/* Closes the connection; frees the session unless a commit is outstanding. */
static void
session_close(struct smtp_session *sess, const char *why)
{
	if (sess->bev != NULL) {
		if (sess->quit_cb != NULL)
			evbuffer_remove_cb_entry(bufferevent_get_output(
			    bufferevent_get_underlying(sess->bev)), sess->quit_cb);
		sess->quit_cb = NULL;
		bufferevent_free(sess->bev);
		sess->bev = NULL;
		log_info("disconnect", "session=%s client=%s helo=%s reason=%s tls=%s commands=%u "
		    "errors=%u messages=%u rcpts=%u", sess->id, sess->ip, log_str(sess->helo), why,
		    sess->tls ? "yes" : "no", sess->ncmds, sess->nerrors, sess->nmsgs, sess->nrcpts);
		if (sess->srv != NULL) {
			sess->srv->nsessions--;
			atomic_fetch_sub(&sess->main->metrics.smtp_connections_active, 1);
		}
	}
	sess->state = S_CLOSED;
	if (!session_busy(sess))
		session_free(sess);
}

/* Closes now if nothing is left to send, else after the flush. */
static void
session_finish(struct smtp_session *sess, const char *why)
{
	if (sess->bev == NULL || evbuffer_get_length(bufferevent_get_output(sess->bev)) == 0) {
		session_close(sess, why);
		return;
	}
	session_enter(sess, S_QUIT);
	bufferevent_disable(sess->bev, EV_READ);
}

/* ---- message content -------------------------------------------------- */

static void
txn_fail(struct smtp_session *sess, const char *reply_text, const char *reason)
{
	struct smtp_txn *t = &sess->txn;
	if (t->error_reply != NULL)
		return;
	t->error_reply = reply_text;
	t->error_reason = reason;
	if (t->w != NULL)
		queue_writer_abort(&t->w);
}

static void
txn_write(struct smtp_session *sess, const char *data, size_t len)
{
	struct smtp_txn *t = &sess->txn;
	if (t->error_reply != NULL || len == 0)
		return;
	if (t->size + len > sess->cfg->max_message_size) {
		txn_fail(sess, "552 5.3.4 Message size exceeds fixed maximum message size",
		    "message_too_big");
		return;
	}
	if (queue_writer_append(t->w, data, len) < 0) {
		int err = errno;
		log_error("queue_write", "session=%s id=%s error=%s", sess->id, t->qid,
		    strerror(err));
		txn_fail(sess, err == ENOSPC ? "452 4.3.1 Insufficient system storage"
		    : "451 4.3.0 Error: queue file write error", "queue_write_error");
		return;
	}
	t->size += len;
}

struct emitter {
	char out[16384];
	size_t n;
};

static void
emit(struct smtp_session *sess, struct emitter *e, char c)
{
	if (sess->txn.error_reply != NULL)
		return;
	e->out[e->n++] = c;
	if (e->n == sizeof(e->out)) {
		txn_write(sess, e->out, e->n);
		e->n = 0;
	}
}

static void
line_byte(struct smtp_session *sess, struct emitter *e, unsigned char c)
{
	struct smtp_txn *t = &sess->txn;
	if (c == '\r') {
		emit(sess, e, (char)c);
		t->dstate = D_CR;
		return;
	}
	if (c == '\n') {
		txn_fail(sess, "550 5.6.11 Bare LF/CR not allowed", "bare_lf");
		t->dstate = D_MID;   /* not a line start: no terminator may follow */
		t->line_len = 0;
		return;
	}
	emit(sess, e, (char)c);
	t->dstate = D_MID;
	if (++t->line_len > sess->cfg->max_data_line_length)
		txn_fail(sess, "500 5.5.2 Line too long", "data_line_too_long");
}

/*
 * Feeds message bytes through the CRLF-strict line scanner.  With `dotted`
 * (DATA) it removes dot-stuffing and stops after CRLF "." CRLF, setting
 * *end.  Returns the bytes consumed.  A bare CR or LF anywhere fails the
 * transaction (the SMTP smuggling family), and a terminator counts only
 * after a proper CRLF.
 */
static size_t
data_scan(struct smtp_session *sess, const unsigned char *p, size_t n, int dotted, int *end)
{
	struct smtp_txn *t = &sess->txn;
	struct emitter e;
	size_t i;
	e.n = 0;
	for (i = 0; i < n && !*end; i++) {
		unsigned char c = p[i];
		switch (t->dstate) {
		case D_BOL:
			if (dotted && c == '.') {
				t->dstate = D_BOL_DOT;
				continue;
			}
			break;
		case D_BOL_DOT:
			if (c == '\r') {
				t->dstate = D_BOL_DOT_CR;
				continue;
			}
			break;                     /* the stuffed dot is dropped */
		case D_BOL_DOT_CR:
			if (c == '\n') {
				*end = 1;
				continue;
			}
			txn_fail(sess, "550 5.6.11 Bare LF/CR not allowed", "bare_cr");
			emit(sess, &e, '\r');
			break;
		case D_CR:
			if (c == '\n') {
				emit(sess, &e, '\n');
				t->dstate = D_BOL;
				t->line_len = 0;
				continue;
			}
			txn_fail(sess, "550 5.6.11 Bare LF/CR not allowed", "bare_cr");
			break;
		case D_MID:
			break;
		}
		line_byte(sess, &e, c);
	}
	txn_write(sess, e.out, e.n);
	return i;
}

static void
rfc5322_date(time_t now, char *out, size_t size)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
		"Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	gmtime_r(&now, &tm);
	snprintf(out, size, "%s, %d %s %d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
	    months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* RFC 3848 "with" keyword: an authenticated client adds "A". */
static const char *
protocol_name(const struct smtp_session *sess)
{
	int a = sess->auth_addr != NULL;
	if (sess->txn.mail.smtputf8)
		return sess->tls ? (a ? "UTF8SMTPSA" : "UTF8SMTPS") : (a ? "UTF8SMTPA" : "UTF8SMTP");
	if (!sess->esmtp)
		return sess->tls ? "SMTPS" : "SMTP";
	return sess->tls ? (a ? "ESMTPSA" : "ESMTPS") : (a ? "ESMTPA" : "ESMTP");
}

/* RFC 5321 4.4 trace header, written before the client's bytes. */
static void
write_received(struct smtp_session *sess)
{
	struct smtp_txn *t = &sess->txn;
	struct buf b = BUF_INIT;
	char date[64];
	rfc5322_date(time(NULL), date, sizeof(date));
	buf_appendf(&b, "Received: from %s ([%s])\r\n", sess->helo != NULL ? sess->helo
	    : "unknown", sess->ip);
	if (sess->tls && sess->bev != NULL) {
		SSL *ssl = bufferevent_openssl_get_ssl(sess->bev);
		if (ssl != NULL)
			buf_appendf(&b, "\t(using %s with cipher %s)\r\n", SSL_get_version(ssl),
			    SSL_get_cipher_name(ssl));
	}
	buf_appendf(&b, "\tby %s (mailark) with %s id %s", sess->cfg->hostname,
	    protocol_name(sess), t->qid);
	if (t->nrcpts == 1)
		buf_appendf(&b, "\r\n\tfor <%s>", t->rcpts[0].addr);
	buf_appendf(&b, "; %s\r\n", date);
	txn_write(sess, b.data, b.len);
	buf_free(&b);
}

/* Opens the queue writer at the start of DATA or the first BDAT chunk. */
static int
txn_open_writer(struct smtp_session *sess)
{
	struct smtp_txn *t = &sess->txn;
	char *err = NULL;
	id_generate(t->qid);
	t->w = queue_writer_new(sess->main->queue, t->qid, &err);
	if (t->w == NULL) {
		log_error("queue_write", "session=%s id=%s error=%s", sess->id, t->qid,
		    log_str(err));
		free(err);
		return -1;
	}
	t->dstate = D_BOL;
	t->line_len = 0;
	t->size = 0;
	write_received(sess);
	return 0;
}

static double
ms_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
log_received(struct smtp_session *sess, double commit_ms)
{
	struct smtp_txn *t = &sess->txn;
	/* Submission adds the signed-in user; port 25 lines stay as they were. */
	char auth[SMTP_PATH_MAX + 16] = "";
	if (sess->auth_addr != NULL)
		snprintf(auth, sizeof(auth), " auth_user=%s", log_str(sess->auth_addr));
	log_info("received", "id=%s tenant=%s direction=%s from=%s nrcpt=%zu size=%" PRIu64
	    " client=%s helo=%s tls=%s commit_ms=%.1f session=%s replied=%s%s", t->qid,
	    log_str(t->tenant), queue_direction_name(t->dir), log_str(t->sender), t->nrcpts,
	    t->size, sess->ip, log_str(sess->helo), sess->tls ? "yes" : "no", commit_ms, sess->id,
	    sess->bev != NULL ? "yes" : "no", auth);
}

static void
commit_done(void *arg, int error)
{
	struct smtp_session *sess = arg;
	struct smtp_txn *t = &sess->txn;
	double ms = ms_since(&t->t_end);
	sess->commit_pending = 0;
	if (session_metrics(sess) != NULL)
		metrics_observe_commit(session_metrics(sess), (uint64_t)(ms * 1000.0));
	if (error == 0) {
		log_received(sess, ms);
		COUNT(sess, messages_accepted, 1);
		COUNT(sess, bytes_accepted, t->size);
		sess->nmsgs++;
		reply(sess, "250 2.0.0 Ok: queued as %s", t->qid);
	} else {
		log_error("commit_failed", "id=%s session=%s error=%s", t->qid, sess->id,
		    strerror(error));
		if (error == ENOSPC)
			reply(sess, "452 4.3.1 Insufficient system storage");
		else
			reply(sess, "451 4.3.0 Error: queue file write error");
	}
	txn_reset(sess);
	if (sess->state == S_CLOSED) {
		if (!session_busy(sess))
			session_free(sess);
		return;
	}
	session_enter(sess, idle_state(sess));
	process_input(sess);
	if (sess->peer_eof && sess->state != S_COMMITTING)
		session_finish(sess, "eof");
}

static void
fill_envelope(struct smtp_session *sess, struct queue_envelope *env)
{
	struct smtp_txn *t = &sess->txn;
	memset(env, 0, sizeof(*env));
	memcpy(env->id, t->qid, sizeof(env->id));
	env->direction = t->dir;
	env->tenant = t->tenant;
	env->sender = t->sender;
	env->envid = t->mail.envid[0] != '\0' ? t->mail.envid : NULL;
	env->ret_hdrs = t->mail.ret == SMTP_RET_HDRS;
	env->smtputf8 = t->mail.smtputf8;
	env->body_8bit = t->mail.body == SMTP_BODY_8BITMIME || t->mail.body == SMTP_BODY_BINARYMIME;
	env->client_addr = sess->ip;
	env->client_helo = sess->helo;
	env->auth_user = sess->auth_addr;
	env->arrival = time(NULL);
	env->rcpts = t->rcpts;
	env->nrcpts = t->nrcpts;
}

static void
end_of_data(struct smtp_session *sess)
{
	struct smtp_txn *t = &sess->txn;
	if (t->error_reply != NULL) {
		reply(sess, "%s", t->error_reply);
		log_reject(sess, t->error_reason, t->sender);
		if (t->error_reply[0] == '5')
			COUNT(sess, messages_rejected, 1);
		txn_reset(sess);
		session_enter(sess, idle_state(sess));
		return;
	}
	struct queue_envelope env;
	fill_envelope(sess, &env);
	clock_gettime(CLOCK_MONOTONIC, &t->t_end);
	t->size = queue_writer_size(t->w);
	struct queue_writer *w = t->w;
	t->w = NULL;
	sess->commit_pending = 1;
	session_enter(sess, S_COMMITTING);
	queue_writer_commit(w, &env, commit_done, sess);
}

/* ---- commands --------------------------------------------------------- */

static int
no_args(struct smtp_session *sess, const char *args)
{
	if (*args == '\0')
		return 0;
	reply(sess, "501 5.5.4 Syntax error: no arguments allowed");
	return -1;
}

static int
check_any(struct smtp_session *sess, const char *args)
{
	return 0;
}

static int
check_noargs(struct smtp_session *sess, const char *args)
{
	return no_args(sess, args);
}

static int
check_not_bdat(struct smtp_session *sess, const char *args)
{
	if (sess->state != S_BDAT)
		return 0;
	reply(sess, "503 5.5.1 Error: only BDAT, RSET, NOOP and QUIT during BDAT");
	return -1;
}

static int
check_mail(struct smtp_session *sess, const char *args)
{
	switch (sess->state) {
	case S_READY:
		if (!sess->submission || sess->auth_addr != NULL)
			return 0;
		reply(sess, "530 5.7.0 Authentication required");
		return -1;
	case S_GREETING:
		reply(sess, "503 5.5.1 Error: send HELO/EHLO first");
		return -1;
	case S_MAIL:
	case S_RCPT:
		reply(sess, "503 5.5.1 Error: nested MAIL command");
		return -1;
	default:
		return check_not_bdat(sess, args);
	}
}

static int
check_rcpt(struct smtp_session *sess, const char *args)
{
	if (sess->state == S_MAIL || sess->state == S_RCPT)
		return 0;
	if (check_not_bdat(sess, args) < 0)
		return -1;
	reply(sess, "503 5.5.1 Error: need MAIL command");
	return -1;
}

static int
check_data(struct smtp_session *sess, const char *args)
{
	if (no_args(sess, args) < 0)
		return -1;
	switch (sess->state) {
	case S_RCPT:
		if (sess->txn.mail.body != SMTP_BODY_BINARYMIME)
			return 0;
		reply(sess, "503 5.5.1 Error: BODY=BINARYMIME requires BDAT");
		return -1;
	case S_MAIL:
		reply(sess, "554 5.5.1 Error: no valid recipients");
		return -1;
	case S_BDAT:
		reply(sess, "503 5.5.1 Error: DATA not allowed after BDAT");
		return -1;
	default:
		reply(sess, "503 5.5.1 Error: need RCPT command");
		return -1;
	}
}

/* Submission always offers STARTTLS (AUTH needs it); port 25 per [smtp] starttls. */
static int
starttls_offered(const struct smtp_session *sess)
{
	return sess->main->tls != NULL && sess->main->tls->server != NULL &&
	    (sess->submission || sess->cfg->smtp_starttls);
}

static int
check_starttls(struct smtp_session *sess, const char *args)
{
	if (no_args(sess, args) < 0)
		return -1;
	if (sess->tls) {
		reply(sess, "503 5.5.1 Error: TLS already active");
		return -1;
	}
	if (!starttls_offered(sess)) {
		reply(sess, "454 4.7.0 TLS not available");
		return -1;
	}
	if (sess->state != S_GREETING && sess->state != S_READY) {
		reply(sess, "503 5.5.1 Error: STARTTLS not allowed in a transaction");
		return -1;
	}
	return 0;
}

static void
proceed_helo_common(struct smtp_session *sess, const char *args, int esmtp)
{
	char name[SMTP_HELO_MAX + 1];
	if (smtp_parse_helo(args, name) != SMTP_PERR_OK) {
		reply(sess, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	free(sess->helo);
	sess->helo = xstrdup(name);
	sess->esmtp = esmtp;
	txn_reset(sess);
	session_enter(sess, S_READY);
}

static void
proceed_helo(struct smtp_session *sess, const char *args)
{
	proceed_helo_common(sess, args, 0);
	if (sess->state == S_READY)
		reply(sess, "250 %s", sess->cfg->hostname);
}

static void
proceed_ehlo(struct smtp_session *sess, const char *args)
{
	proceed_helo_common(sess, args, 1);
	if (sess->state != S_READY)
		return;
	const char *kw[12];
	int n = 0;
	char size[40];
	snprintf(size, sizeof(size), "SIZE %" PRIu64, sess->cfg->max_message_size);
	kw[n++] = "PIPELINING";
	kw[n++] = size;
	kw[n++] = "8BITMIME";
	kw[n++] = "SMTPUTF8";
	kw[n++] = "ENHANCEDSTATUSCODES";
	kw[n++] = "CHUNKING";
	kw[n++] = "DSN";
	if (!sess->tls && starttls_offered(sess))
		kw[n++] = "STARTTLS";
	if (sess->submission && sess->tls)
		kw[n++] = "AUTH PLAIN LOGIN";
	reply(sess, "250-%s Hello %s [%s]", sess->cfg->hostname, sess->helo, sess->ip);
	for (int i = 0; i < n; i++)
		reply(sess, "250%c%s", i == n - 1 ? ' ' : '-', kw[i]);
}

/* 1 when addr is the signed-in user's address or one of its aliases, 0 not, -1 error. */
static int
submission_owns(struct smtp_session *sess, const char *addr)
{
	if (strcasecmp(addr, sess->auth_addr) == 0)
		return 1;
	char **aliases = NULL;
	size_t n = 0;
	if (store_user_aliases(sess->main->store, sess->auth_uid, &aliases, &n) < 0)
		return -1;
	int owned = 0;
	for (size_t i = 0; i < n && !owned; i++)
		owned = strcasecmp(addr, aliases[i]) == 0;
	store_strings_free(aliases, n);
	return owned;
}

/* Submission: the envelope sender must belong to the signed-in user.  1 ok, else replied. */
static int
submission_sender_check(struct smtp_session *sess, const struct smtp_path *path)
{
	int owned = path->null_path ? 0 : submission_owns(sess, path->addr);
	if (owned == 1)
		return 1;
	if (owned < 0) {
		reply(sess, "451 4.3.0 Temporary lookup failure");
		return -1;
	}
	reply(sess, "553 5.7.1 Sender address not owned by user");
	log_reject(sess, "sender_not_owned", path->addr);
	COUNT(sess, messages_rejected, 1);
	return 0;
}

static void
proceed_mail(struct smtp_session *sess, const char *args)
{
	struct smtp_mail m;
	enum smtp_perr e = smtp_parse_mail(args, &m);
	if (e != SMTP_PERR_OK) {
		reply(sess, "%s", smtp_perr_reply(e, 1));
		return;
	}
	if (m.has_size && m.size > sess->cfg->max_message_size) {
		reply(sess, "552 5.3.4 Message size exceeds fixed maximum message size");
		log_reject(sess, "declared_size_too_big", m.path.addr);
		COUNT(sess, messages_rejected, 1);
		return;
	}
	if (sess->submission && submission_sender_check(sess, &m.path) != 1)
		return;
	txn_reset(sess);
	sess->txn.mail = m;
	sess->txn.sender = xstrdup(m.path.addr);
	reply(sess, "250 2.1.0 Ok");
	session_enter(sess, S_MAIL);
}

/*
 * With the tenant setting unknown_recipients=reject, only addresses of the
 * tenant's users and aliases are accepted.  1 known, 2 unknown, -1 error.
 */
static int
rcpt_known_user(struct smtp_session *sess, const char *tenant, const char *addr)
{
	char *owner = NULL;
	int found = store_user_tenant(sess->main->store, addr, &owner);
	int known = found == 1 && owner != NULL && strcmp(owner, tenant) == 0;
	free(owner);
	return found < 0 ? -1 : known ? 1 : 2;
}

/*
 * May this tenant receive mail here?  Data residency first: a node stores
 * mail only for tenants of the regions it serves ([server] regions).  Then,
 * for inbound mail (addr != NULL), the tenant's unknown_recipients setting.
 * 1 accepted, 0 region not served, 2 unknown user, -1 lookup failure.
 */
static int
rcpt_tenant_accepts(struct smtp_session *sess, const char *tenant, const char *addr)
{
	struct store_tenant t;
	int found = store_tenant_get(sess->main->store, tenant, &t);
	if (found != 1)
		return -1;
	int served = config_region_served(sess->cfg, t.region);
	if (served == 1 && addr != NULL && strcmp(t.unknown_recipients, "reject") == 0)
		served = rcpt_known_user(sess, tenant, addr);
	free(t.name);
	free(t.region);
	free(t.unknown_recipients);
	return served;
}

static int
rcpt_check_tenant(struct smtp_session *sess, const struct smtp_rcpt *r, char **tenant_r,
    int inbound)
{
	int served = rcpt_tenant_accepts(sess, *tenant_r, inbound ? r->path.addr : NULL);
	if (served == 1)
		return 1;
	if (served < 0)
		reply(sess, "451 4.3.0 Temporary lookup failure");
	else if (served == 2) {
		reply(sess, "550 5.1.1 <%s>: Recipient address rejected: User unknown",
		    r->path.addr);
		log_reject(sess, "unknown_user", r->path.addr);
		COUNT(sess, messages_rejected, 1);
	} else {
		reply(sess, "451 4.7.1 <%s>: organisation not served in this region", r->path.addr);
		log_reject(sess, "region_not_served", r->path.addr);
	}
	xfree(tenant_r);
	return served < 0 ? -1 : 0;
}

/*
 * Submission: every recipient is outbound for the signed-in user's tenant,
 * so a client's one transaction to colleagues and outsiders is one queue
 * entry (clients do not retry a 452 recipient).  A recipient of one of the
 * tenant's own domains is still checked like inbound mail (the tenant's
 * unknown_recipients setting); the scheduler delivers it through the
 * tenant route (deliver/scheduler.c dest_for).  Another tenant's domain is
 * plain outbound: the mail leaves this tenant.
 */
static int
rcpt_policy_submission(struct smtp_session *sess, const struct smtp_rcpt *r, char **tenant_r,
    enum queue_direction *dir_r)
{
	char *owner = NULL;
	if (r->path.postmaster) {
		reply(sess, "550 5.1.3 <%s>: Recipient address rejected: domain required",
		    r->path.addr);
		return 0;
	}
	int found = store_domain_tenant(sess->main->store, r->path.domain, &owner);
	if (found < 0) {
		reply(sess, "451 4.3.0 Temporary lookup failure");
		return -1;
	}
	int own = found == 1 && owner != NULL && strcmp(owner, sess->auth_tenant) == 0;
	free(owner);
	*tenant_r = xstrdup(sess->auth_tenant);
	*dir_r = QUEUE_OUTBOUND;
	return rcpt_check_tenant(sess, r, tenant_r, own);
}

/*
 * Recipient policy: a tenant's domain → inbound for that tenant; else a
 * client inside a tenant's relay network → outbound for it; else refused.
 * A tenant of a region this node does not serve gets 451, so the sender's
 * MTA tries an MX of the right region and nothing is stored here.
 * Returns 1 accepted, 0 refused (reply sent), -1 lookup failure (reply sent).
 */
static int
rcpt_policy(struct smtp_session *sess, const struct smtp_rcpt *r, char **tenant_r,
    enum queue_direction *dir_r)
{
	struct store *st = sess->main->store;
	if (sess->submission)
		return rcpt_policy_submission(sess, r, tenant_r, dir_r);
	int found = r->path.postmaster ? 0 : store_domain_tenant(st, r->path.domain, tenant_r);
	if (found == 1) {
		*dir_r = QUEUE_INBOUND;
		return rcpt_check_tenant(sess, r, tenant_r, 1);
	}
	if (found == 0 && !r->path.postmaster)
		found = store_relay_tenant(st, (const struct sockaddr *)&sess->ss, tenant_r);
	if (found == 1) {
		*dir_r = QUEUE_OUTBOUND;
		return rcpt_check_tenant(sess, r, tenant_r, 0);
	}
	if (found < 0) {
		reply(sess, "451 4.3.0 Temporary lookup failure");
		return -1;
	}
	reply(sess, "550 5.7.1 <%s>: Relay access denied", r->path.addr);
	log_reject(sess, "relay_denied", r->path.addr);
	COUNT(sess, messages_rejected, 1);
	return 0;
}

static int
rcpt_is_duplicate(const struct smtp_txn *t, const char *addr)
{
	for (size_t i = 0; i < t->nrcpts; i++)
		if (strcmp(t->rcpts[i].addr, addr) == 0)
			return 1;
	return 0;
}

static void
rcpt_add(struct smtp_session *sess, const struct smtp_rcpt *r)
{
	struct smtp_txn *t = &sess->txn;
	if (rcpt_is_duplicate(t, r->path.addr))
		return;
	if (t->nrcpts == t->cap) {
		t->cap = t->cap != 0 ? t->cap * 2 : 8;
		t->rcpts = xrealloc(t->rcpts, t->cap * sizeof(*t->rcpts));
	}
	struct queue_rcpt *q = &t->rcpts[t->nrcpts++];
	memset(q, 0, sizeof(*q));
	q->addr = xstrdup(r->path.addr);
	q->orcpt = r->orcpt[0] != '\0' ? xstrdup(r->orcpt) : NULL;
	q->notify = r->notify;
	q->state = RCPT_PENDING;
	sess->nrcpts++;
}

static void
proceed_rcpt(struct smtp_session *sess, const char *args)
{
	struct smtp_txn *t = &sess->txn;
	struct smtp_rcpt r;
	enum smtp_perr e = smtp_parse_rcpt(args, t->mail.smtputf8, &r);
	if (e != SMTP_PERR_OK) {
		reply(sess, "%s", smtp_perr_reply(e, 0));
		return;
	}
	if (t->nrcpts >= sess->cfg->max_recipients) {
		reply(sess, "452 4.5.3 Error: too many recipients");
		return;
	}
	char *tenant = NULL;
	enum queue_direction dir;
	if (rcpt_policy(sess, &r, &tenant, &dir) != 1)
		return;
	if (t->have_dir && (dir != t->dir || strcmp(tenant, t->tenant) != 0)) {
		reply(sess, "452 4.5.3 Error: recipient of another tenant or direction, "
		    "try again in a new transaction");
		free(tenant);
		return;
	}
	if (!t->have_dir) {
		t->tenant = tenant;
		t->dir = dir;
		t->have_dir = 1;
	} else {
		free(tenant);
	}
	rcpt_add(sess, &r);
	reply(sess, "250 2.1.5 Ok");
	session_enter(sess, S_RCPT);
}

static void
proceed_data(struct smtp_session *sess, const char *args)
{
	if (txn_open_writer(sess) < 0) {
		reply(sess, "451 4.3.0 Error: queue file write error");
		return;
	}
	reply(sess, "354 End data with <CR><LF>.<CR><LF>");
	session_enter(sess, S_DATA);
}

static void
proceed_bdat(struct smtp_session *sess, const char *args)
{
	struct smtp_txn *t = &sess->txn;
	uint64_t n;
	int last;
	if (smtp_parse_bdat(args, &n, &last) != SMTP_PERR_OK) {
		/* The chunk size is unknown, so its bytes cannot be skipped. */
		reply(sess, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	t->chunk_error = NULL;
	t->chunk_return = sess->state;
	if (sess->state == S_RCPT) {
		if (txn_open_writer(sess) < 0)
			txn_fail(sess, "451 4.3.0 Error: queue file write error",
			    "queue_write_error");
	} else if (sess->state == S_MAIL) {
		t->chunk_error = "554 5.5.1 Error: no valid recipients";
	} else if (sess->state != S_BDAT) {
		t->chunk_error = "503 5.5.1 Error: need MAIL and RCPT commands";
	}
	t->chunk_left = n;
	t->chunk_size = n;
	t->chunk_last = last;
	session_enter(sess, S_BDAT_CHUNK);
}

static void
bdat_chunk_done(struct smtp_session *sess)
{
	struct smtp_txn *t = &sess->txn;
	if (t->chunk_error != NULL) {
		reply(sess, "%s", t->chunk_error);
		t->chunk_error = NULL;
		session_enter(sess, t->chunk_return);
		return;
	}
	if (t->chunk_last) {
		if (t->dstate == D_CR)
			txn_fail(sess, "550 5.6.11 Bare LF/CR not allowed", "bare_cr");
		end_of_data(sess);
		return;
	}
	if (t->error_reply != NULL)
		reply(sess, "%s", t->error_reply);
	else
		reply(sess, "250 2.0.0 %" PRIu64 " octets received", t->chunk_size);
	session_enter(sess, S_BDAT);
}

static void
proceed_rset(struct smtp_session *sess, const char *args)
{
	txn_reset(sess);
	reply(sess, "250 2.0.0 Ok");
	session_enter(sess, idle_state(sess));
}

static void
proceed_noop(struct smtp_session *sess, const char *args)
{
	reply(sess, "250 2.0.0 Ok");
}

static void
proceed_quit(struct smtp_session *sess, const char *args)
{
	session_quit(sess, "221 2.0.0 Bye");
}

static void
proceed_vrfy(struct smtp_session *sess, const char *args)
{
	if (*args == '\0')
		reply(sess, "501 5.5.4 Syntax: VRFY address");
	else
		reply(sess, "252 2.5.0 Cannot VRFY user, but will accept message and attempt "
		    "delivery");
}

static void
proceed_help(struct smtp_session *sess, const char *args)
{
	reply(sess, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
	    "HELP STARTTLS%s", sess->submission ? " AUTH" : "");
}

static void
starttls_fail(struct smtp_session *sess, const char *what)
{
	log_warn("tls_failed", "session=%s client=%s error=%s", sess->id, sess->ip, what);
}

static void
proceed_starttls(struct smtp_session *sess, const char *args)
{
	struct bufferevent *plain = sess->bev;
	reply(sess, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 5: plaintext pipelined after STARTTLS must be discarded. */
	struct evbuffer *in = bufferevent_get_input(plain);
	evbuffer_drain(in, evbuffer_get_length(in));
	SSL *ssl = SSL_new(sess->main->tls->server);
	if (ssl == NULL) {
		starttls_fail(sess, "SSL_new");
		session_quit(sess, "421 4.7.0 TLS not available");
		return;
	}
	bufferevent_set_timeouts(plain, NULL, NULL);
	struct bufferevent *tb = bufferevent_openssl_filter_new(bufferevent_get_base(plain),
	    plain, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		starttls_fail(sess, "bufferevent_openssl_filter_new");
		session_quit(sess, "421 4.7.0 TLS not available");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	sess->bev = tb;
	bufferevent_setcb(tb, on_read, on_write, on_event, sess);
	bufferevent_setwatermark(tb, EV_READ, 0, SESSION_READ_HIGH);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	txn_reset(sess);
	session_enter(sess, S_STARTTLS_HANDSHAKE);
	struct timeval tv = { (time_t)sess->cfg->command_timeout, 0 };
	bufferevent_set_timeouts(tb, &tv, &tv);
}

/* ---- AUTH (submission only; RFC 4954, PLAIN RFC 4616, LOGIN) ---------
 *
 *	READY ──AUTH mech──▶ AUTH ──response line(s)──▶ AUTH_CHECK
 *	  ▲  (334 challenge)   │ "*" / bad base64: 501        │ auth_verified:
 *	  │                    ▼                              │  ok: 235
 *	  └──────────────── READY ◀───────────────────────────┤
 *	                                                      │  refused: timer
 *	  READY ◀── 535 / 454 after AUTH_FAILURE_DELAY ───────┘  (3rd: 421, QUIT)
 *
 * Credentials go to auth_password_verify_async() (lockout, the
 * "auth.password" audit entry); a good password still needs a stored tenant
 * user whose organisation is in continuity (continuity_user_active).
 */

enum { AUTH_MECH_PLAIN = 1, AUTH_MECH_LOGIN };

#define AUTH_MAX_FAILURES 3
#define AUTH_FAILURE_DELAY_MS 1000

static const char auth_reply_invalid[] = "535 5.7.8 Authentication credentials invalid";
static const char auth_reply_inactive[] =
    "454 4.7.0 Continuity is not active for your organisation";

static int
check_auth(struct smtp_session *sess, const char *args)
{
	if (check_not_bdat(sess, args) < 0)
		return -1;
	if (!sess->tls) {
		reply(sess, "530 5.7.0 Must issue a STARTTLS command first");
		return -1;
	}
	if (sess->auth_addr != NULL) {
		reply(sess, "503 5.5.1 Error: already authenticated");
		return -1;
	}
	if (sess->state == S_GREETING) {
		reply(sess, "503 5.5.1 Error: send EHLO first");
		return -1;
	}
	if (sess->state != S_READY) {
		reply(sess, "503 5.5.1 Error: MAIL transaction in progress");
		return -1;
	}
	return 0;
}

static void
auth_forget_try(struct smtp_session *sess)
{
	free(sess->auth_try);
	sess->auth_try = NULL;
}

/* Ends the exchange without a verdict (not counted as a failure). */
static void
auth_abort(struct smtp_session *sess, const char *reply_text)
{
	auth_forget_try(sess);
	reply(sess, "%s", reply_text);
	session_enter(sess, idle_state(sess));
}

/* The delayed answer to a refused sign-in. */
static void
auth_delay_finish(struct smtp_session *sess)
{
	reply(sess, "%s", sess->auth_delay_reply);
	if (sess->auth_failures >= AUTH_MAX_FAILURES) {
		log_reject(sess, "auth_failures", NULL);
		session_quit(sess, "421 4.7.0 Error: too many authentication failures");
		return;
	}
	session_enter(sess, idle_state(sess));
}

static void
auth_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *sess = arg;
	if (sess->bev == NULL || sess->state != S_AUTH_CHECK)
		return;
	auth_delay_finish(sess);
	process_input(sess);
}

/* A refused sign-in: logged, counted, answered after AUTH_FAILURE_DELAY_MS. */
static void
auth_fail(struct smtp_session *sess, const char *reply_text, const char *reason)
{
	sess->auth_failures++;
	log_info("submission_auth", "outcome=failed user=%s client=%s reason=%s failures=%u "
	    "session=%s", log_str(sess->auth_try), sess->ip, log_str(reason), sess->auth_failures,
	    sess->id);
	auth_forget_try(sess);
	sess->auth_delay_reply = reply_text;
	session_enter(sess, S_AUTH_CHECK);
	if (sess->auth_delay == NULL)
		sess->auth_delay = evtimer_new(sess->main->base, auth_delay_done, sess);
	struct timeval tv = { AUTH_FAILURE_DELAY_MS / 1000, (AUTH_FAILURE_DELAY_MS % 1000) * 1000 };
	if (sess->auth_delay == NULL || evtimer_add(sess->auth_delay, &tv) < 0)
		auth_delay_finish(sess);       /* no timer: answer now */
}

static void
auth_success(struct smtp_session *sess, const struct principal *p)
{
	sess->auth_addr = xstrdup(p->actor);
	sess->auth_tenant = xstrdup(p->tenant);
	sess->auth_uid = p->user_id;
	auth_forget_try(sess);
	(void)audit_record_tenant(sess->main, p, p->tenant, "submission.auth", p->actor, "ok",
	    NULL);
	continuity_note_signin(sess->main->continuity, p->tenant, p->actor, "submission");
	log_info("submission_auth", "outcome=ok user=%s tenant=%s client=%s session=%s",
	    log_str(p->actor), log_str(p->tenant), sess->ip, sess->id);
	reply(sess, "235 2.7.0 Authentication successful");
	session_enter(sess, idle_state(sess));
}

/* 1 when the signed-in principal may use submission now. */
static int
auth_continuity_active(struct smtp_session *sess, const struct principal *p)
{
	return sess->main->continuity != NULL &&
	    continuity_user_active(sess->main->continuity, p->tenant, p->actor) == 1;
}

/* auth_password_verify_async() callback; may run inside the call itself. */
static void
auth_verified(void *arg, int ok, struct principal *p, const char *reason)
{
	struct smtp_session *sess = arg;
	sess->auth_pending = 0;
	if (sess->state == S_CLOSED) {
		if (!session_busy(sess))
			session_free(sess);
		return;
	}
	if (!ok) {
		auth_fail(sess, auth_reply_invalid, reason);
	} else if (p->user_id <= 0 || p->tenant == NULL) {
		auth_fail(sess, auth_reply_invalid, "not a tenant user");
	} else if (!auth_continuity_active(sess, p)) {
		(void)audit_record_tenant(sess->main, p, p->tenant, "submission.auth", p->actor,
		    "refused", "continuity not active");
		auth_fail(sess, auth_reply_inactive, "continuity not active");
	} else {
		auth_success(sess, p);
	}
	if (!sess->auth_in_call && sess->state != S_AUTH_CHECK)
		process_input(sess);
}

/* Starts the verification of user (sess->auth_try) and password. */
static void
auth_check(struct smtp_session *sess, const char *password)
{
	if (sess->auth_try == NULL || sess->auth_try[0] == '\0' || password[0] == '\0') {
		auth_fail(sess, auth_reply_invalid, "empty user or password");
		return;
	}
	session_enter(sess, S_AUTH_CHECK);
	sess->auth_pending = 1;
	sess->auth_in_call = 1;
	auth_password_verify_async(sess->main, sess->auth_try, password, NULL, sess->ip,
	    auth_verified, sess);
	sess->auth_in_call = 0;
}

/* RFC 4616: [authzid] NUL authcid NUL passwd; the authzid may only name the authcid. */
static void
auth_plain(struct smtp_session *sess, const char *msg, size_t n)
{
	size_t zl = strnlen(msg, n);
	size_t cl = zl < n ? strnlen(msg + zl + 1, n - zl - 1) : 0;
	if (zl >= n || zl + 1 + cl >= n || strlen(msg + zl + 1 + cl + 1) != n - zl - cl - 2) {
		auth_abort(sess, "501 5.5.2 Invalid PLAIN response");
		return;
	}
	const char *authz = msg, *authc = msg + zl + 1, *pass = authc + cl + 1;
	sess->auth_try = xstrdup(authc);
	if (authz[0] != '\0' && strcasecmp(authz, authc) != 0) {
		auth_fail(sess, auth_reply_invalid, "authorization identity differs");
		return;
	}
	auth_check(sess, pass);
}

/* Decodes base64 into out (NUL-terminated, size >= len + 1).  0, or -1 when malformed. */
static int
auth_base64(const char *in, size_t len, char *out, size_t size, size_t *n_r)
{
	const char *end = NULL;
	*n_r = 0;
	if (len == 1 && in[0] == '=') {             /* RFC 4954 4: an empty response */
		out[0] = '\0';
		return 0;
	}
	if (sodium_base642bin((unsigned char *)out, size - 1, in, len, NULL, n_r, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || end != in + len)
		return -1;
	out[*n_r] = '\0';
	return 0;
}

/* One SASL response (an initial response or a line read in S_AUTH). */
static void
auth_response(struct smtp_session *sess, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		auth_abort(sess, "501 5.7.0 Authentication aborted");
		return;
	}
	size_t size = len + 1, n;
	char *msg = xmalloc(size);
	if (auth_base64(line, len, msg, size, &n) < 0) {
		auth_abort(sess, "501 5.5.2 Cannot decode response");
	} else if (sess->auth_mech == AUTH_MECH_PLAIN) {
		auth_plain(sess, msg, n);
	} else if (sess->auth_try == NULL) {
		sess->auth_try = xstrdup(msg);           /* LOGIN: the user name */
		reply(sess, "334 UGFzc3dvcmQ6");
		session_enter(sess, S_AUTH);
	} else {
		auth_check(sess, msg);                   /* LOGIN: the password */
	}
	sodium_memzero(msg, size);
	free(msg);
}

static void
proceed_auth(struct smtp_session *sess, const char *args)
{
	size_t ml = strcspn(args, " ");
	const char *ir = args + ml;
	while (*ir == ' ')
		ir++;
	if (ml == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
		sess->auth_mech = AUTH_MECH_PLAIN;
	} else if (ml == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
		sess->auth_mech = AUTH_MECH_LOGIN;
	} else if (ml == 0) {
		reply(sess, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	} else {
		reply(sess, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	auth_forget_try(sess);
	session_enter(sess, S_AUTH);
	if (*ir != '\0')
		auth_response(sess, ir, strlen(ir));
	else
		reply(sess, "%s", sess->auth_mech == AUTH_MECH_PLAIN ? "334 " : "334 VXNlcm5hbWU6");
}

static const struct smtp_cmd_def cmd_table[SMTP_CMD_COUNT] = {
	[SMTP_CMD_HELO] = { SMTP_CMD_HELO, "HELO", check_not_bdat, proceed_helo },
	[SMTP_CMD_EHLO] = { SMTP_CMD_EHLO, "EHLO", check_not_bdat, proceed_ehlo },
	[SMTP_CMD_MAIL] = { SMTP_CMD_MAIL, "MAIL", check_mail, proceed_mail },
	[SMTP_CMD_RCPT] = { SMTP_CMD_RCPT, "RCPT", check_rcpt, proceed_rcpt },
	[SMTP_CMD_DATA] = { SMTP_CMD_DATA, "DATA", check_data, proceed_data },
	[SMTP_CMD_BDAT] = { SMTP_CMD_BDAT, "BDAT", check_any, proceed_bdat },
	[SMTP_CMD_RSET] = { SMTP_CMD_RSET, "RSET", check_noargs, proceed_rset },
	[SMTP_CMD_NOOP] = { SMTP_CMD_NOOP, "NOOP", check_any, proceed_noop },
	[SMTP_CMD_QUIT] = { SMTP_CMD_QUIT, "QUIT", check_any, proceed_quit },
	[SMTP_CMD_VRFY] = { SMTP_CMD_VRFY, "VRFY", check_not_bdat, proceed_vrfy },
	[SMTP_CMD_HELP] = { SMTP_CMD_HELP, "HELP", check_any, proceed_help },
	[SMTP_CMD_STARTTLS] = { SMTP_CMD_STARTTLS, "STARTTLS", check_starttls, proceed_starttls },
	[SMTP_CMD_AUTH] = { SMTP_CMD_AUTH, "AUTH", check_auth, proceed_auth },
};

static void
dispatch(struct smtp_session *sess, const char *line, size_t len)
{
	struct smtp_cmdline cl;
	sess->ncmds++;
	if (smtp_parse_command(line, len, &cl) != SMTP_PERR_OK) {
		reply(sess, "%s", smtp_perr_reply(SMTP_PERR_LINE, 0));
		return;
	}
	if (cl.cmd == SMTP_CMD_AUTH && !sess->submission) {
		/* Port 25 offers no AUTH; never log the line (it may hold credentials). */
		reply(sess, "500 5.5.1 Error: command not recognized");
		log_debug("smtp_unknown", "session=%s line=AUTH", sess->id);
		return;
	}
	if (cl.cmd == SMTP_CMD_UNKNOWN || cmd_table[cl.cmd].proceed == NULL) {
		reply(sess, "500 5.5.1 Error: command not recognized");
		log_debug("smtp_unknown", "session=%s line=%s", sess->id, log_strn(line, len));
		return;
	}
	const struct smtp_cmd_def *def = &cmd_table[cl.cmd];
	log_debug("smtp_command", "session=%s cmd=%s", sess->id, def->name);
	if (def->check(sess, cl.args) < 0)
		return;
	def->proceed(sess, cl.args);
}

/* ---- input ------------------------------------------------------------ */

/* DATA or BDAT content available in the input; returns 0 when more is needed. */
static int
feed_content(struct smtp_session *sess, struct evbuffer *in)
{
	struct smtp_txn *t = &sess->txn;
	int dotted = sess->state == S_DATA, end = 0;
	while (evbuffer_get_length(in) > 0 && !end) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t n = v.iov_len, used;
		if (!dotted && n > t->chunk_left)
			n = (size_t)t->chunk_left;
		if (!dotted && t->chunk_error != NULL)
			used = n;                 /* refused chunk: skip its bytes */
		else
			used = data_scan(sess, v.iov_base, n, dotted, &end);
		evbuffer_drain(in, used);
		if (!dotted) {
			t->chunk_left -= used;
			end = t->chunk_left == 0;
		}
	}
	if (!dotted && t->chunk_left == 0)
		end = 1;
	if (!end)
		return 0;
	if (dotted)
		end_of_data(sess);
	else
		bdat_chunk_done(sess);
	return 1;
}

/* One command line; returns 0 when more input is needed. */
static int
feed_command(struct smtp_session *sess, struct evbuffer *in)
{
	size_t max = sess->cfg->max_line_length;
	size_t eol_len;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (p.pos < 0) {
		size_t have = evbuffer_get_length(in);
		if (sess->skip_line) {
			evbuffer_drain(in, have);
		} else if (have > max + 2) {
			evbuffer_drain(in, have);
			sess->skip_line = 1;
			reply(sess, "500 5.5.2 Error: line too long");
			log_reject(sess, "line_too_long", NULL);
		}
		return 0;
	}
	size_t total = (size_t)p.pos + eol_len;
	if (sess->skip_line || (size_t)p.pos > max + 1) {
		evbuffer_drain(in, total);
		if (!sess->skip_line) {
			reply(sess, "500 5.5.2 Error: line too long");
			log_reject(sess, "line_too_long", NULL);
		}
		sess->skip_line = 0;
		return 1;
	}
	size_t len = (size_t)p.pos;
	evbuffer_remove(in, sess->line, total);
	if (len > 0 && sess->line[len - 1] == '\r')
		len--;
	sess->line[len] = '\0';
	if (sess->nerrors >= sess->cfg->max_errors) {
		log_reject(sess, "too_many_errors", NULL);
		session_quit(sess, "421 4.7.0 Error: too many errors");
		return 0;
	}
	if (sess->srv != NULL && sess->srv->shutting_down) {
		session_quit(sess, "421 4.3.2 Service shutting down");
		return 0;
	}
	/* SASL responses and AUTH initial responses carry credentials. */
	int secret = sess->state == S_AUTH || (len >= 4 && strncasecmp(sess->line, "AUTH", 4) == 0);
	if (sess->state == S_AUTH)
		auth_response(sess, sess->line, len);
	else
		dispatch(sess, sess->line, len);
	if (secret)
		sodium_memzero(sess->line, len);
	return 1;
}

/*
 * Processes everything buffered, in order, until input runs out or the
 * session must wait (commit, TLS handshake, a full output buffer).
 */
static void
process_input(struct smtp_session *sess)
{
	while (sess->bev != NULL) {
		struct evbuffer *in = bufferevent_get_input(sess->bev);
		int more;
		if (sess->state == S_DATA || sess->state == S_BDAT_CHUNK) {
			more = feed_content(sess, in);
		} else if (waiting_for_command(sess)) {
			if (evbuffer_get_length(bufferevent_get_output(sess->bev)) >
			    SESSION_OUT_PAUSE) {
				sess->out_paused = 1;
				return;
			}
			more = feed_command(sess, in);
		} else {
			return;
		}
		if (!more)
			return;
	}
}

/* ---- events ----------------------------------------------------------- */

static void
on_read(struct bufferevent *bev, void *arg)
{
	process_input(arg);
}

static void
quit_flushed(evutil_socket_t fd, short what, void *arg)
{
	session_close(arg, "quit");
}

static void
quit_drain_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct smtp_session *sess = arg;
	/* Not from inside the buffer's own drain: close from the loop. */
	if (evbuffer_get_length(b) == 0)
		event_active(sess->quit_ev, EV_TIMEOUT, 0);
}

/*
 * Under TLS the filter's write callback fires once the last reply is
 * encrypted into the socket bufferevent below it, not once it is sent:
 * 1 while that one still holds bytes (the close then waits for them).
 */
static int
quit_wait_flush(struct smtp_session *sess)
{
	struct bufferevent *under = bufferevent_get_underlying(sess->bev);
	if (under == NULL || evbuffer_get_length(bufferevent_get_output(under)) == 0)
		return 0;
	if (sess->quit_ev != NULL)
		return 1;
	sess->quit_ev = event_new(sess->main->base, -1, 0, quit_flushed, sess);
	if (sess->quit_ev == NULL)
		return 0;
	sess->quit_cb = evbuffer_add_cb(bufferevent_get_output(under), quit_drain_cb, sess);
	return sess->quit_cb != NULL;
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct smtp_session *sess = arg;
	if (sess->state == S_QUIT) {
		if (!quit_wait_flush(sess))
			session_close(sess, "quit");
		return;
	}
	if (sess->out_paused) {
		sess->out_paused = 0;
		process_input(sess);
	}
}

static void
on_tls_ready(struct smtp_session *sess)
{
	SSL *ssl = bufferevent_openssl_get_ssl(sess->bev);
	sess->tls = 1;
	free(sess->helo);
	sess->helo = NULL;
	sess->esmtp = 0;
	txn_reset(sess);
	log_info("tls", "session=%s client=%s version=%s cipher=%s", sess->id, sess->ip,
	    ssl != NULL ? SSL_get_version(ssl) : "-", ssl != NULL ? SSL_get_cipher_name(ssl) : "-");
	session_enter(sess, S_GREETING);
	process_input(sess);
}

static void
on_timeout(struct smtp_session *sess)
{
	if (sess->state == S_COMMITTING || sess->state == S_AUTH_CHECK) {
		/* The wait is ours, not the client's. */
		bufferevent_enable(sess->bev, EV_READ);
		return;
	}
	if (sess->state == S_QUIT) {
		session_close(sess, "write_timeout");
		return;
	}
	log_reject(sess, "timeout", state_names[sess->state]);
	session_quit(sess, "421 4.4.2 Error: timeout exceeded");
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *sess = arg;
	if (what & BEV_EVENT_CONNECTED) {
		on_tls_ready(sess);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		on_timeout(sess);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e != 0) {
			char buf[256];
			ERR_error_string_n(e, buf, sizeof(buf));
			starttls_fail(sess, buf);
		}
	}
	if ((what & BEV_EVENT_EOF) && sess->commit_pending) {
		/* Answer the message (and any pipelined QUIT) when the commit is done. */
		sess->peer_eof = 1;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	session_close(sess, (what & BEV_EVENT_EOF) ? "eof" : "error");
}

/* ---- interface to smtp_server.c --------------------------------------- */

void
smtp_session_new(struct smtp_server *s, evutil_socket_t fd, const struct sockaddr *sa,
    socklen_t salen)
{
	struct server *srv = s->srv;
	struct bufferevent *bev = bufferevent_socket_new(srv->base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		evutil_closesocket(fd);
		log_error("smtp_accept", "error=bufferevent_socket_new");
		return;
	}
	struct smtp_session *sess = xcalloc(1, sizeof(*sess));
	sess->srv = s;
	sess->main = srv;
	sess->cfg = srv->cfg;
	sess->bev = bev;
	sess->state = S_GREETING;
	id_generate(sess->id);
	memcpy(&sess->ss, sa, salen < (socklen_t)sizeof(sess->ss) ? salen : sizeof(sess->ss));
	netaddr_format(sa, sess->ip, sizeof(sess->ip));
	sess->line = xmalloc(sess->cfg->max_line_length + 3);
	sess->submission = s->submission;
	sess->next = s->sessions;
	if (s->sessions != NULL)
		s->sessions->prev = sess;
	s->sessions = sess;
	sess->linked = 1;
	s->nsessions++;
	metrics_inc(&srv->metrics.smtp_connections_total);
	atomic_fetch_add(&srv->metrics.smtp_connections_active, 1);
	log_debug("connect", "session=%s client=%s", sess->id, sess->ip);

	bufferevent_setcb(bev, on_read, on_write, on_event, sess);
	bufferevent_setwatermark(bev, EV_READ, 0, SESSION_READ_HIGH);
	struct timeval tv = { (time_t)sess->cfg->command_timeout, 0 };
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	reply(sess, "220 %s %s", sess->cfg->hostname, sess->cfg->banner);
}

void
smtp_session_shutdown(struct smtp_session *sess)
{
	if (sess->bev == NULL || !waiting_for_command(sess))
		return;
	session_quit(sess, "421 4.3.2 Service shutting down");
}

void
smtp_session_close_detach(struct smtp_session *sess)
{
	session_unlink(sess);
	if (!session_busy(sess)) {
		if (sess->bev != NULL)
			session_close(sess, "server_stop");   /* frees it */
		else
			session_free(sess);
		return;
	}
	/* A committing (or signing-in) session lingers detached: its callback frees it. */
	if (sess->bev != NULL)
		session_close(sess, "server_stop");
	sess->srv = NULL;
}

int
smtp_session_same_ip(const struct smtp_session *sess, const struct sockaddr *sa)
{
	char ip[64];
	if (sess->bev == NULL)
		return 0;
	netaddr_format(sa, ip, sizeof(ip));
	return strcmp(ip, sess->ip) == 0;
}

struct smtp_session *
smtp_session_next(const struct smtp_session *sess)
{
	return sess->next;
}
