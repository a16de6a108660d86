/*
 * imap_session — one IMAP connection: TLS, framing, state, jobs, output.
 *
 * STATES (enum imap_state, imap_session_enter logs every change)
 *
 *   accept --greeting--> NOT_AUTHENTICATED --LOGIN/AUTHENTICATE--> AUTHENTICATED
 *   AUTHENTICATED --SELECT/EXAMINE--> SELECTED --CLOSE/UNSELECT--> AUTHENTICATED
 *   any --LOGOUT / BYE (timeout, kick, shutdown, errors)--> LOGOUT --flushed--> closed
 *
 * Beside the state the session waits for one of (enum imap_wait): the
 * next command, the TLS handshake (STARTTLS), the AUTHENTICATE
 * continuation line, or IDLE's DONE.
 *
 * INPUT FRAMING (enum imap_in)
 *   LINE     read up to CRLF (longer than imap_max_line_length: "* BAD
 *            line too long", close); a line announcing "{n}" / "{n+}" goes
 *            to LITERAL after "+ Ready" (synchronising only), else the
 *            command is complete and dispatched.
 *   LITERAL  n bytes into the command buffer, then LINE again.
 *   DISCARD  an oversized LITERAL+ literal is read and dropped; the
 *            command is then answered "NO [TOOBIG]".  An oversized
 *            synchronising literal is refused before the "+".
 * Literals before sign-in are limited to 64 KB; after it to
 * imap_max_literal.
 *
 * COMMANDS IN FLIGHT
 *   in_command  the command has not finished: no further input is read.
 *   job_running a worker job is outstanding: the session is not freed
 *               until its done callback ran (it frees a closed session).
 *   auth_pending likewise for auth_password_verify_async.
 */
#include "imap/imap_session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/worker.h"
#include "server.h"
#include "tls/tls.h"

#define SESSION_OUT_LOW   (256 * 1024)
#define PREAUTH_LITERAL   (64 * 1024)
#define IDLE_POLL_SECONDS 2

static const char *const state_names[] = {
	"NOT_AUTHENTICATED", "AUTHENTICATED", "SELECTED", "LOGOUT",
};

static void process_input(struct imap_session *sess);
static void session_flush_close(struct imap_session *sess);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

const char *
imap_state_name(enum imap_state st)
{
	return state_names[st];
}

/* ---- life cycle ------------------------------------------------------- */

static void
session_set_timeouts(struct imap_session *sess)
{
	if (sess->bev == NULL)
		return;
	const struct config *cfg = sess->srv->cfg;
	uint64_t secs = sess->state == IMAP_S_NOT_AUTHENTICATED ? cfg->imap_login_timeout
	    : cfg->imap_idle_timeout;
	struct timeval rd = { (time_t)secs, 0 };
	struct timeval wr = { (time_t)(cfg->imap_idle_timeout > 0 ? cfg->imap_idle_timeout : 1800), 0 };
	bufferevent_set_timeouts(sess->bev, &rd, &wr);
}

void
imap_session_enter(struct imap_session *sess, enum imap_state st)
{
	if (sess->state == st)
		return;
	log_debug("imap_state", "session=%s from=%s to=%s", sess->id, state_names[sess->state],
	    state_names[st]);
	sess->state = st;
	session_set_timeouts(sess);
}

static void
session_unlink(struct imap_session *sess)
{
	struct imap_server *s = sess->server;
	if (s == NULL)
		return;
	if (sess->prev != NULL)
		sess->prev->next = sess->next;
	else
		s->sessions = sess->next;
	if (sess->next != NULL)
		sess->next->prev = sess->prev;
	sess->next = sess->prev = NULL;
	s->nsessions--;
	sess->server = NULL;
}

static void
session_free(struct imap_session *sess)
{
	if (sess->timer != NULL)
		event_free(sess->timer);
	buf_free(&sess->cmdbuf);
	buf_free(&sess->out);
	buf_free(&sess->delayed);
	free(sess->pending_tag);
	if (sess->job_free != NULL && sess->job != NULL)
		sess->job_free(sess->job);
	cmbox_snapshot_free(&sess->snap);
	free(sess->selected);
	imap_cmd_free_user(sess);
	free(sess);
}

static int
session_can_free(const struct imap_session *sess)
{
	return sess->closed && !sess->job_running && !sess->auth_pending;
}

void
imap_session_close(struct imap_session *sess, const char *why)
{
	if (!sess->closed) {
		sess->closed = 1;
		if (sess->timer != NULL)
			event_del(sess->timer);
		if (sess->bev != NULL) {
			bufferevent_free(sess->bev);
			sess->bev = NULL;
		}
		log_info("imap_disconnect", "session=%s client=%s user=%s state=%s reason=%s tls=%s",
		    sess->id, sess->ip, log_str(sess->address), state_names[sess->state], why,
		    sess->tls ? "yes" : "no");
		imap_cmd_session_end(sess);
		session_unlink(sess);
	}
	if (session_can_free(sess))
		session_free(sess);
}

void
imap_session_detach(struct imap_session *sess)
{
	imap_session_close(sess, "server_stop");
}

void
imap_session_bye(struct imap_session *sess, const char *why)
{
	if (sess->closed || sess->closing)
		return;
	if (why != NULL)
		imap_session_printf(sess, "* BYE %s\r\n", why);
	sess->closing = 1;
	imap_session_enter(sess, IMAP_S_LOGOUT);
	if (sess->bev != NULL)
		bufferevent_setwatermark(sess->bev, EV_WRITE, 0, 0);
	if (sess->timer != NULL)
		event_del(sess->timer);
	if (!sess->job_running && !sess->auth_pending)
		session_flush_close(sess);
}

/* ---- output ----------------------------------------------------------- */

void
imap_session_write(struct imap_session *sess, const char *data, size_t len)
{
	if (sess->bev == NULL || sess->closed || len == 0)
		return;
	if (bufferevent_write(sess->bev, data, len) < 0)
		log_warn("imap_write", "session=%s error=bufferevent_write", sess->id);
}

void
imap_session_printf(struct imap_session *sess, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&b, fmt, ap);
	va_end(ap);
	imap_session_write(sess, b.data, b.len);
	buf_free(&b);
}

int
imap_session_output_low(struct imap_session *sess)
{
	if (sess->bev == NULL)
		return 1;
	return evbuffer_get_length(bufferevent_get_output(sess->bev)) < SESSION_OUT_LOW;
}

void
imap_session_when_drained(struct imap_session *sess, imap_done_fn *resume)
{
	if (imap_session_output_low(sess)) {
		resume(sess);
		return;
	}
	sess->resume = resume;
}

void
imap_session_capability(struct imap_session *sess, struct buf *out)
{
	buf_append_str(out, "IMAP4rev1 LITERAL+ IDLE UIDPLUS NAMESPACE ID MOVE SPECIAL-USE");
	if (sess->state != IMAP_S_NOT_AUTHENTICATED)
		return;
	if (sess->tls)
		buf_append_str(out, " AUTH=PLAIN SASL-IR");
	else
		buf_append_str(out, " STARTTLS LOGINDISABLED");
}

/* ---- jobs ------------------------------------------------------------- */

static void
job_work(void *arg)
{
	struct imap_session *sess = arg;
	sess->work(sess, &sess->out);
}

static void
job_done(void *arg)
{
	struct imap_session *sess = arg;
	sess->job_running = 0;
	if (sess->closed) {
		if (session_can_free(sess))
			session_free(sess);
		return;
	}
	if (!sess->closing)
		imap_session_write(sess, sess->out.data, sess->out.len);
	buf_reset(&sess->out);
	imap_done_fn *done = sess->done;
	sess->done = NULL;
	if (sess->closing) {
		sess->in_command = 0;
		return;
	}
	if (done != NULL)
		done(sess);
	if (!sess->job_running && sess->resume == NULL && !sess->in_command)
		process_input(sess);
}

void
imap_session_run(struct imap_session *sess, imap_work_fn *work, imap_done_fn *done)
{
	sess->work = work;
	sess->done = done;
	sess->job_running = 1;
	buf_reset(&sess->out);
	worker_submit(sess->server->pool, job_work, job_done, sess);
}

void
imap_session_command_done(struct imap_session *sess)
{
	sess->in_command = 0;
	if (sess->job_running || sess->closed)
		return;
	process_input(sess);
}

/* ---- timer: IDLE polls and delayed replies ---------------------------- */

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *sess = arg;
	if (sess->closed)
		return;
	if (sess->closing) {
		session_flush_close(sess);
		return;
	}
	if (sess->delayed.len > 0) {
		imap_session_write(sess, sess->delayed.data, sess->delayed.len);
		buf_reset(&sess->delayed);
		imap_session_command_done(sess);
		return;
	}
	if (sess->wait == IMAP_W_IDLE) {
		if (sess->job_running) {
			sess->poll_wanted = 1;
			return;
		}
		imap_cmd_idle_poll(sess);
	}
}

static void
session_timer_arm(struct imap_session *sess, int persist, int secs, int msecs)
{
	if (sess->timer != NULL)
		event_free(sess->timer);
	sess->timer = event_new(bufferevent_get_base(sess->bev), -1, persist ? EV_PERSIST : 0,
	    on_timer, sess);
	struct timeval tv = { secs, msecs * 1000 };
	if (sess->timer == NULL || event_add(sess->timer, &tv) < 0)
		log_error("imap_timer", "session=%s error=event_add", sess->id);
}

void
imap_session_delay_reply(struct imap_session *sess, const char *reply)
{
	buf_reset(&sess->delayed);
	buf_append_str(&sess->delayed, reply);
	session_timer_arm(sess, 0, 1, 0);
}

void
imap_session_idle_start(struct imap_session *sess)
{
	sess->wait = IMAP_W_IDLE;
	session_timer_arm(sess, 1, IDLE_POLL_SECONDS, 0);
}

void
imap_session_idle_stop(struct imap_session *sess)
{
	sess->wait = IMAP_W_COMMAND;
	if (sess->timer != NULL)
		event_del(sess->timer);
}

void
imap_session_notify(struct imap_session *sess)
{
	if (sess->closed || sess->closing || sess->wait != IMAP_W_IDLE)
		return;
	if (sess->job_running) {
		sess->poll_wanted = 1;
		return;
	}
	imap_cmd_idle_poll(sess);
}

/* ---- input ------------------------------------------------------------ */

static void
reply_untagged_bad_close(struct imap_session *sess, const char *text)
{
	log_warn("imap_reject", "session=%s client=%s state=%s reason=%s", sess->id, sess->ip,
	    state_names[sess->state], text);
	imap_session_bye(sess, text);
}

/* The tag at the start of the command buffer, for "NO [TOOBIG]". */
static void
reply_toobig(struct imap_session *sess)
{
	const char *d = buf_cstr(&sess->cmdbuf);
	size_t n = strcspn(d, " \r\n");
	if (n == 0 || n > IMAP_TAG_MAX)
		imap_session_printf(sess, "* NO [TOOBIG] Literal too big\r\n");
	else
		imap_session_printf(sess, "%.*s NO [TOOBIG] Literal too big\r\n", (int)n, d);
	log_warn("imap_reject", "session=%s client=%s state=%s reason=literal_too_big", sess->id,
	    sess->ip, state_names[sess->state]);
	buf_reset(&sess->cmdbuf);
	sess->cmd_toobig = 0;
}

static uint64_t
literal_limit(const struct imap_session *sess)
{
	uint64_t max = sess->srv->cfg->imap_max_literal;
	if (sess->state == IMAP_S_NOT_AUTHENTICATED && max > PREAUTH_LITERAL)
		max = PREAUTH_LITERAL;
	return max;
}

static void
handle_command_line(struct imap_session *sess, const char *line, size_t len)
{
	uint64_t n;
	int plus;
	buf_append(&sess->cmdbuf, line, len);
	int rc = imap_literal_announced(line, len, &n, &plus);
	if (rc < 0) {
		/* The parser reports it. */
		rc = 0;
	}
	if (rc == 0) {
		if (sess->cmd_toobig) {
			reply_toobig(sess);
			return;
		}
		struct buf cmd = sess->cmdbuf;
		memset(&sess->cmdbuf, 0, sizeof(sess->cmdbuf));
		imap_cmd_dispatch(sess, cmd.data != NULL ? cmd.data : "", cmd.len);
		buf_free(&cmd);
		return;
	}
	buf_append(&sess->cmdbuf, "\r\n", 2);
	int toobig = n > literal_limit(sess) ||
	    sess->cmdbuf.len + n > literal_limit(sess) + sess->srv->cfg->imap_max_line_length;
	if (toobig || sess->cmd_toobig) {
		if (!plus) {
			reply_toobig(sess);
			return;
		}
		sess->cmd_toobig = 1;
		sess->in = IMAP_IN_DISCARD;
		sess->lit_left = n;
		return;
	}
	if (!plus)
		imap_session_printf(sess, "+ Ready for literal data\r\n");
	sess->in = IMAP_IN_LITERAL;
	sess->lit_left = n;
}

static void
handle_line(struct imap_session *sess, const char *line, size_t len)
{
	if (sess->wait == IMAP_W_SASL || sess->wait == IMAP_W_IDLE) {
		imap_cmd_continuation(sess, line, len);
		return;
	}
	handle_command_line(sess, line, len);
}

/* One step of the framing; 0 when more input is needed or we must stop. */
static int
input_step(struct imap_session *sess, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);
	uint64_t max_line = sess->srv->cfg->imap_max_line_length;
	if (sess->in == IMAP_IN_LITERAL || sess->in == IMAP_IN_DISCARD) {
		if (avail == 0 && sess->lit_left > 0)
			return 0;
		size_t take = avail < sess->lit_left ? avail : (size_t)sess->lit_left;
		if (sess->in == IMAP_IN_LITERAL) {
			buf_reserve(&sess->cmdbuf, take);
			int got = evbuffer_remove(in, sess->cmdbuf.data + sess->cmdbuf.len, take);
			if (got < 0)
				return 0;
			sess->cmdbuf.len += (size_t)got;
			take = (size_t)got;
		} else {
			evbuffer_drain(in, take);
		}
		sess->lit_left -= take;
		if (sess->lit_left == 0)
			sess->in = IMAP_IN_LINE;
		return 1;
	}
	size_t eol_len = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (p.pos < 0) {
		if (avail > max_line) {
			imap_session_printf(sess, "* BAD line too long\r\n");
			reply_untagged_bad_close(sess, "line too long");
			return 0;
		}
		return 0;
	}
	if ((uint64_t)p.pos > max_line) {
		imap_session_printf(sess, "* BAD line too long\r\n");
		reply_untagged_bad_close(sess, "line too long");
		return 0;
	}
	char *line = xmalloc((size_t)p.pos + 1);
	if (evbuffer_remove(in, line, (size_t)p.pos) != (int)p.pos) {
		free(line);
		return 0;
	}
	line[p.pos] = '\0';
	evbuffer_drain(in, eol_len);
	handle_line(sess, line, (size_t)p.pos);
	free(line);
	return 1;
}

int
imap_session_peek_line(struct imap_session *sess, char **line_r, size_t *len_r, size_t *used_r)
{
	if (sess->bev == NULL || sess->closed || sess->closing || sess->in != IMAP_IN_LINE ||
	    sess->cmdbuf.len > 0 || sess->cmd_toobig || sess->wait != IMAP_W_COMMAND)
		return 0;
	struct evbuffer *in = bufferevent_get_input(sess->bev);
	size_t eol_len = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (p.pos < 0 || (uint64_t)p.pos > sess->srv->cfg->imap_max_line_length)
		return 0;
	char *line = xmalloc((size_t)p.pos + 1);
	if (evbuffer_copyout(in, line, (size_t)p.pos) != (ev_ssize_t)p.pos) {
		free(line);
		return 0;
	}
	line[p.pos] = '\0';
	uint64_t n;
	int plus;
	if (imap_literal_announced(line, (size_t)p.pos, &n, &plus) != 0) {
		free(line);
		return 0;
	}
	*line_r = line;
	*len_r = (size_t)p.pos;
	*used_r = (size_t)p.pos + eol_len;
	return 1;
}

void
imap_session_consume(struct imap_session *sess, size_t used)
{
	if (sess->bev != NULL)
		evbuffer_drain(bufferevent_get_input(sess->bev), used);
}

static void
process_input(struct imap_session *sess)
{
	while (sess->bev != NULL && !sess->closed && !sess->closing && !sess->in_command &&
	    !sess->job_running && !sess->auth_pending && sess->resume == NULL &&
	    sess->wait != IMAP_W_TLS_HANDSHAKE) {
		struct evbuffer *in = bufferevent_get_input(sess->bev);
		if (input_step(sess, in) == 0)
			break;
	}
}

/* ---- bufferevent callbacks -------------------------------------------- */

static void
on_read(struct bufferevent *bev, void *arg)
{
	process_input(arg);
}

/* Bytes not yet handed to the kernel, TLS layer included. */
static size_t
session_unsent(struct imap_session *sess)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(sess->bev));
	struct bufferevent *under = bufferevent_get_underlying(sess->bev);
	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

/* Closing: close once everything (the BYE) was sent, else look again soon. */
static void
session_flush_close(struct imap_session *sess)
{
	if (sess->closed || sess->bev == NULL)
		return;
	if (session_unsent(sess) == 0) {
		imap_session_close(sess, sess->state == IMAP_S_LOGOUT ? "logout" : "bye");
		return;
	}
	session_timer_arm(sess, 0, 0, 50);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct imap_session *sess = arg;
	if (sess->closing) {
		session_flush_close(sess);
		return;
	}
	if (sess->resume != NULL && imap_session_output_low(sess)) {
		imap_done_fn *resume = sess->resume;
		sess->resume = NULL;
		resume(sess);
		if (!sess->job_running && sess->resume == NULL && !sess->in_command)
			process_input(sess);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct imap_session *sess = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (sess->wait == IMAP_W_TLS_HANDSHAKE) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			sess->tls = 1;
			sess->wait = IMAP_W_COMMAND;
			log_info("imap_tls", "session=%s client=%s version=%s", sess->id, sess->ip,
			    ssl != NULL ? SSL_get_version(ssl) : "-");
			process_input(sess);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (sess->in_command || sess->job_running || sess->auth_pending) {
			bufferevent_enable(bev, EV_READ | EV_WRITE);
			return;
		}
		if (sess->closing) {
			imap_session_close(sess, "write_timeout");
			return;
		}
		log_info("imap_timeout", "session=%s client=%s state=%s", sess->id, sess->ip,
		    state_names[sess->state]);
		imap_session_bye(sess, "Autologout; idle for too long");
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e != 0) {
			char buf[256];
			ERR_error_string_n(e, buf, sizeof(buf));
			log_warn("imap_tls_failed", "session=%s client=%s error=%s", sess->id, sess->ip,
			    buf);
		}
	}
	imap_session_close(sess, (what & BEV_EVENT_EOF) ? "eof" : "error");
}

/* ---- TLS -------------------------------------------------------------- */

/* Input is not read beyond this while a command runs (backpressure); it
 * holds one whole command line. */
static size_t
session_read_high(const struct imap_session *sess)
{
	uint64_t high = sess->srv->cfg->imap_max_line_length + 4096;
	return high < SESSION_OUT_LOW ? SESSION_OUT_LOW : (size_t)high;
}

int
imap_session_starttls(struct imap_session *sess)
{
	struct bufferevent *plain = sess->bev;
	/* Command injection defence: nothing sent before the handshake counts. */
	struct evbuffer *in = bufferevent_get_input(plain);
	evbuffer_drain(in, evbuffer_get_length(in));
	SSL *ssl = SSL_new(sess->srv->tls->server);
	if (ssl == NULL)
		return -1;
	struct bufferevent *tb = bufferevent_openssl_filter_new(bufferevent_get_base(plain),
	    plain, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	/* The TLS layer stops encrypting into the socket's buffer above this,
	 * so FETCH slices wait for the client here too. */
	bufferevent_setwatermark(plain, EV_WRITE, 0, SESSION_OUT_LOW);
	sess->bev = tb;
	sess->wait = IMAP_W_TLS_HANDSHAKE;
	bufferevent_setcb(tb, on_read, on_write, on_event, sess);
	bufferevent_setwatermark(tb, EV_READ, 0, session_read_high(sess));
	bufferevent_setwatermark(tb, EV_WRITE, SESSION_OUT_LOW / 2, 0);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	session_set_timeouts(sess);
	return 0;
}

void
imap_session_new(struct imap_server *s, int fd, const struct sockaddr *sa, socklen_t salen,
    int implicit_tls)
{
	struct server *srv = s->srv;
	struct bufferevent *bev;
	if (implicit_tls) {
		SSL *ssl = SSL_new(srv->tls->server);
		bev = ssl == NULL ? NULL : bufferevent_openssl_socket_new(srv->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL && ssl != NULL)
			SSL_free(ssl);
		if (bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else {
		bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (bev == NULL) {
		evutil_closesocket(fd);
		log_error("imap_accept", "error=bufferevent_new");
		return;
	}
	struct imap_session *sess = xcalloc(1, sizeof(*sess));
	sess->server = s;
	sess->srv = srv;
	sess->bev = bev;
	sess->tls = implicit_tls;
	sess->state = IMAP_S_NOT_AUTHENTICATED;
	id_generate(sess->id);
	memcpy(&sess->ss, sa, salen < (socklen_t)sizeof(sess->ss) ? salen : sizeof(sess->ss));
	netaddr_format(sa, sess->ip, sizeof(sess->ip));
	sess->next = s->sessions;
	if (s->sessions != NULL)
		s->sessions->prev = sess;
	s->sessions = sess;
	s->nsessions++;
	log_info("imap_connect", "session=%s client=%s tls=%s", sess->id, sess->ip,
	    implicit_tls ? "implicit" : "no");
	bufferevent_setcb(bev, on_read, on_write, on_event, sess);
	bufferevent_setwatermark(bev, EV_READ, 0, session_read_high(sess));
	bufferevent_setwatermark(bev, EV_WRITE, SESSION_OUT_LOW / 2, 0);
	session_set_timeouts(sess);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	struct buf b = BUF_INIT;
	buf_append_str(&b, "* OK [CAPABILITY ");
	imap_session_capability(sess, &b);
	buf_append_str(&b, "] mailark IMAP ready\r\n");
	imap_session_write(sess, b.data, b.len);
	buf_free(&b);
}
