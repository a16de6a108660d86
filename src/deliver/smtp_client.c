/*
 * NAME
 *	smtp_client - one outbound SMTP transaction (RFC 5321 client)
 * SYNOPSIS
 *	smtp_client_deliver(srv, &req, on_done, job);
 * DESCRIPTION
 *	A session walks these states; client_state() is the one place that
 *	changes state, and it logs every transition at debug level.
 *
 *	RESOLVE ─▶ CONNECT ─▶ BANNER ─▶ EHLO ─┬─▶ STARTTLS ─▶ TLS_HANDSHAKE ─▶ EHLO_TLS ─┐
 *	                ▲                     ├─▶ HELO (EHLO 5xx) ─────────────────────────┤
 *	                │                     └────────────────────────────────────────────┤
 *	                └── next address on connect failure, timeout,                      ▼
 *	                    4xx/5xx greeting or EHLO, TLS required but absent      MAIL ─▶ RCPT
 *	                                                                                   │
 *	         ┌─────────────────────────── CHUNKING ──▶ BDAT (chunk, 250, chunk…) ◀─────┤
 *	         ▼                                                                         ▼
 *	       QUIT ◀── DOT ◀── BODY ◀── DATA (354) ◀──────────────────────────────── no CHUNKING
 *	         ▼
 *	       DONE (freed)
 *
 *	Until MAIL is sent a failure moves on to the next address of the
 *	next hop; when none is left every recipient gets a 4xx with the last
 *	reason.  Once MAIL is sent, a failure ends the session: recipients
 *	without a final reply get a 4xx.  The callback runs exactly once, from
 *	client_finish(), before QUIT is sent; the session then waits briefly for
 *	the QUIT reply and frees itself -- or, after a complete transaction
 *	(final reply 2xx/5xx to the message), waits in IDLE as a cached
 *	connection for CLIENT_IDLE_SECS: the next request with the same key
 *	(next hop and TLS policy) takes it and starts at MAIL, with no
 *	connect, banner or EHLO.  If a cached connection turns out closed
 *	before the reply to MAIL, the request goes on once on a new
 *	connection to the same address.  Whatever the server sends to an idle
 *	connection, or its EOF, drops it.
 *
 *	The body is streamed from req->body_fd with pread in 64 KiB pieces; the
 *	output buffer is refilled from the write callback, so memory use does
 *	not depend on the message size.
 * DIAGNOSTICS
 *	Remote replies are made printable and capped before they are logged
 *	or returned ("host[ip]:port said: 550 5.1.1 ...").
 */
#include "deliver/smtp_client.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "deliver/smtp_client_proto.h"
#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "queue/queue.h"
#include "server.h"
#include "deliver/tls_policy.h"
#include "tls/tls.h"

#define CLIENT_MAX_TARGETS   10
#define CLIENT_PUMP_PIECE    (64 * 1024)
#define CLIENT_PUMP_HIGH     (256 * 1024)
#define CLIENT_BDAT_CHUNK    (1024 * 1024)
#define CLIENT_QUIT_TIMEOUT  2
#define CLIENT_REPLY_CAP     400
#define CLIENT_IDLE_SECS     2        /* a cached connection waits this long for reuse */
#define CLIENT_IDLE_MAX      100      /* cached connections at most, all destinations */
#define CLIENT_KEY_MAX       300

enum client_state {
	CS_RESOLVE,
	CS_CONNECT,
	CS_BANNER,
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_TLS_HANDSHAKE,
	CS_EHLO_TLS,
	CS_MAIL,
	CS_RCPT,
	CS_DATA,
	CS_BDAT,
	CS_BODY,
	CS_DOT,
	CS_QUIT,
	CS_IDLE,
	CS_DONE,
};

static const char *const client_state_names[] = {
	"RESOLVE", "CONNECT", "BANNER", "EHLO", "HELO", "STARTTLS", "TLS_HANDSHAKE",
	"EHLO_TLS", "MAIL", "RCPT", "DATA", "BDAT", "BODY", "DOT", "QUIT", "IDLE", "DONE",
};

struct client_target {
	char host[256];               /* name for SNI and logs ("" → the address) */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct client {
	struct client *prev, *next;   /* client_list */
	int reported;                 /* the callback has run */
	char key[CLIENT_KEY_MAX];     /* the connection cache's: next hop + TLS policy */
	int reusable;                 /* the last transaction ended cleanly */
	int reused;                   /* this transaction runs on a cached connection */
	int awaiting_dns;             /* a dns_resolve_*() callback is due */
	struct server *srv;
	struct delivery_request req;  /* strings are the caller's: not after the callback */
	char qid[64];                 /* queue id for logs, ours */
	smtp_client_done_cb *cb;
	void *cb_arg;
	enum client_state state;
	enum route_tls tls_policy;
	int port;

	struct client_target *targets;
	size_t ntargets;
	size_t ti;                    /* current target */
	char relay[400];              /* "host[ip]:port" of the current target */
	char *last_error;             /* why the last target failed */
	int no_tls;                   /* reconnected after a failed opportunistic handshake */

	struct bufferevent *bev;
	struct event *timer;          /* connect timeout, then QUIT grace */
	int counted;                  /* in delivery_connections_active */
	int tls;                      /* session is encrypted */
	unsigned ext;                 /* SMTP_EXT_* of the last EHLO */
	uint64_t size_limit;

	struct smtp_reply reply;
	int reply_done;               /* reply holds a complete, handled reply */
	int busy;                     /* callbacks of ours on the stack */
	int dead;                     /* freed once busy drops to 0 */
	size_t *sent;                 /* recipient index of each RCPT written */
	size_t rcpt_sent;             /* RCPT commands written */
	size_t rcpt_replies;          /* RCPT replies read */
	int mail_failed;
	struct delivery_rcpt_result *results;
	int *accepted;                /* per rcpt: 250 to RCPT */
	size_t naccepted;
	int *final;                   /* per rcpt: result is final */

	uint64_t pump_pos, pump_end;  /* body bytes [pos, end) still to write */
	int pumping;
	int pump_dotstuff;
	int at_bol;
	char last_byte;
};

/*
 * Sessions in flight, so that smtp_client_cancel_all() can cut them at
 * shutdown.  Touched on the loop thread only; the one piece of module state,
 * as a session is owned by nobody but the event loop between callbacks.
 */
static struct client *client_list;
static unsigned client_idle_count;   /* sessions in CS_IDLE */

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_next_target(struct client *c, char *why);
static void client_connect(struct client *c);
static void client_protocol_error(struct client *c, const char *why);
static void client_read_input(struct client *c, struct bufferevent *bev);

/* ---------------------------------------------------------------- state */

static void
client_state(struct client *c, enum client_state st)
{
	log_debug("smtp_client_state", "id=%s relay=%s from=%s to=%s", c->qid,
	    log_str(c->relay), client_state_names[c->state], client_state_names[st]);
	if (c->state == CS_IDLE)
		client_idle_count--;
	if (st == CS_IDLE)
		client_idle_count++;
	c->state = st;
}

static void
client_timeouts(struct client *c, int read_too)
{
	struct timeval tv = { (time_t)c->srv->cfg->smtp_client_timeout, 0 };
	bufferevent_set_timeouts(c->bev, read_too ? &tv : NULL, &tv);
}

static void
client_close(struct client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->counted) {
		atomic_fetch_sub_explicit(&c->srv->metrics.delivery_connections_active, 1,
		    memory_order_relaxed);
		c->counted = 0;
	}
	evtimer_del(c->timer);
	c->tls = 0;
	c->pumping = 0;
}

/* What one transaction (one request) needs; the connection outlives it when cached. */
static void
client_txn_init(struct client *c, const struct delivery_request *req, smtp_client_done_cb *cb,
    void *arg)
{
	size_t n = req->nrcpts > 0 ? req->nrcpts : 1;
	c->req = *req;
	snprintf(c->qid, sizeof(c->qid), "%s", req->queue_id != NULL ? req->queue_id : "-");
	c->cb = cb;
	c->cb_arg = arg;
	c->results = xcalloc(n, sizeof(*c->results));
	c->accepted = xcalloc(n, sizeof(*c->accepted));
	c->final = xcalloc(n, sizeof(*c->final));
	c->sent = xcalloc(n, sizeof(*c->sent));
	c->reported = c->reusable = 0;
	c->rcpt_sent = c->rcpt_replies = c->naccepted = 0;
	c->mail_failed = 0;
	c->pump_pos = c->pump_end = 0;
	c->pumping = 0;
}

static void
client_txn_free(struct client *c)
{
	if (c->results != NULL) {
		for (size_t i = 0; i < c->req.nrcpts; i++)
			free(c->results[i].reply);
	}
	free(c->results);
	free(c->accepted);
	free(c->final);
	free(c->sent);
	c->results = NULL;
	c->accepted = c->final = NULL;
	c->sent = NULL;
	/* The request's strings were the caller's, valid only until the callback. */
	memset(&c->req, 0, sizeof(c->req));
	c->req.body_fd = -1;
	snprintf(c->qid, sizeof(c->qid), "-");
}

static void
client_free(struct client *c)
{
	client_close(c);
	if (c->state != CS_DONE)
		client_state(c, CS_DONE);
	if (c->busy > 0 || c->awaiting_dns) {
		c->dead = 1;
		return;
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		client_list = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	event_free(c->timer);
	smtp_reply_free(&c->reply);
	client_txn_free(c);
	free(c->targets);
	free(c->last_error);
	free(c);
}

/*
 * Every entry point from the event loop brackets its work with hold/release,
 * so that a session finished deep inside a handler is freed only when the
 * outermost callback returns.
 */
static void
client_hold(struct client *c)
{
	c->busy++;
}

static void
client_release(struct client *c)
{
	if (--c->busy == 0 && c->dead)
		client_free(c);
}

/* ---------------------------------------------------------- results */

static void
client_set_result(struct client *c, size_t i, int code, const char *text)
{
	if (c->final[i])
		return;
	free(c->results[i].reply);
	c->results[i].code = code;
	c->results[i].reply = xstrdup(text);
	c->final[i] = 1;
}

/* "host[ip]:port said: 550 5.1.1 text" from the reply just read. */
static char *
client_said(struct client *c)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s said: %d ", c->relay, c->reply.code);
	smtp_printable(c->reply.text.data != NULL ? c->reply.text.data : "", c->reply.text.len,
	    CLIENT_REPLY_CAP, &b);
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		buf_truncate(&b, b.len - 1);
	return buf_steal(&b);
}

/* Every recipient still without a final result gets code/text. */
static void
client_set_all(struct client *c, int code, const char *text)
{
	for (size_t i = 0; i < c->req.nrcpts; i++)
		client_set_result(c, i, code, text);
}

static void
client_set_accepted(struct client *c, int code, const char *text)
{
	for (size_t i = 0; i < c->req.nrcpts; i++) {
		if (c->accepted[i])
			client_set_result(c, i, code, text);
	}
}

static void client_park(struct client *c);
static void client_quit(struct client *c);

static void
client_quit_timer(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	client_hold(c);
	client_free(c);
	client_release(c);
}

/*
 * Hands the results to the caller (exactly once), then says QUIT when the
 * connection is in a state to take it, and frees the session.
 */
static void
client_finish(struct client *c, int send_quit)
{
	client_set_all(c, 451, "4.3.0 delivery ended without a reply");
	struct delivery_result res = {
		.rcpts = c->results,
		.nrcpts = c->req.nrcpts,
		.relay = c->relay[0] != '\0' ? c->relay : NULL,
		.tls = c->tls,
	};
	for (size_t i = 0; i < c->req.nrcpts; i++) {
		log_debug("smtp_client_result", "id=%s rcpt=%s code=%d reply=%s", c->qid,
		    log_str(c->req.rcpts[i]), c->results[i].code, log_str(c->results[i].reply));
	}
	c->reported = 1;
	c->cb(c->cb_arg, &res);
	if (!send_quit || c->bev == NULL) {
		client_free(c);
		return;
	}
	if (c->reusable && client_idle_count < CLIENT_IDLE_MAX) {
		client_park(c);
		return;
	}
	client_quit(c);
}

/* Says QUIT and waits briefly for its reply before freeing the session. */
static void
client_quit(struct client *c)
{
	client_state(c, CS_QUIT);
	c->pumping = 0;
	struct timeval tv = { CLIENT_QUIT_TIMEOUT, 0 };
	evtimer_del(c->timer);
	evtimer_assign(c->timer, c->srv->base, client_quit_timer, c);
	evtimer_add(c->timer, &tv);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	evbuffer_add_printf(bufferevent_get_output(c->bev), "QUIT\r\n");
}

static void
client_idle_timer(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	client_hold(c);
	client_quit(c);
	client_release(c);
}

/*
 * Connection cache: after a complete transaction the session waits in
 * CS_IDLE (read enabled: anything the server says, or EOF, drops it) for
 * the next request to the same key, for CLIENT_IDLE_SECS at most.
 */
static void
client_park(struct client *c)
{
	client_txn_free(c);
	client_state(c, CS_IDLE);
	c->reused = 0;
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	struct timeval tv = { CLIENT_IDLE_SECS, 0 };
	evtimer_del(c->timer);
	evtimer_assign(c->timer, c->srv->base, client_idle_timer, c);
	evtimer_add(c->timer, &tv);
}

/* A cached connection for key, taken out of the cache; NULL when none. */
static struct client *
client_take_idle(struct server *srv, const char *key)
{
	for (struct client *c = client_list; c != NULL; c = c->next) {
		if (c->state == CS_IDLE && !c->dead && c->srv == srv && c->bev != NULL &&
		    strcmp(c->key, key) == 0) {
			evtimer_del(c->timer);
			return c;
		}
	}
	return NULL;
}

/*
 * The server closed a cached connection just as it was reused (no reply
 * to MAIL yet): the same address again on a new connection, once.
 */
static int
client_stale(struct client *c)
{
	if (!c->reused || c->state != CS_MAIL || c->reply_done)
		return 0;
	log_debug("smtp_client_stale", "id=%s relay=%s", c->qid, log_str(c->relay));
	c->reused = 0;
	client_close(c);
	c->rcpt_sent = c->rcpt_replies = 0;
	c->no_tls = 0;
	client_connect(c);
	return 1;
}

/* The session broke after MAIL: everything still open gets a 4xx. */
static void
client_broken(struct client *c, const char *why)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "4.4.2 %s with %s while in %s", why, c->relay,
	    client_state_names[c->state]);
	log_info("smtp_client_lost", "id=%s relay=%s reason=%s", c->qid,
	    log_str(c->relay), log_str(buf_cstr(&b)));
	client_set_all(c, 421, buf_cstr(&b));
	buf_free(&b);
	client_close(c);
	client_finish(c, 0);
}

/* ---------------------------------------------------------- writing */

static int
client_addr_ok(const char *a)
{
	for (const unsigned char *p = (const unsigned char *)a; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			return 0;
	}
	return 1;
}

static void
client_send(struct client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
client_send(struct client *c, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&b, fmt, ap);
	va_end(ap);
	log_debug("smtp_client_send", "id=%s relay=%s line=%s", c->qid,
	    log_str(c->relay), log_strn(b.data, b.len > 2 ? b.len - 2 : b.len));
	if (bufferevent_write(c->bev, b.data, b.len) < 0)
		log_warn("smtp_client_write", "id=%s relay=%s", c->qid, log_str(c->relay));
	buf_free(&b);
}

static void
client_mail_params(struct client *c, struct buf *b)
{
	const struct delivery_request *r = &c->req;
	if (c->ext & SMTP_EXT_SIZE)
		buf_appendf(b, " SIZE=%llu", (unsigned long long)r->body_size);
	if (r->body_8bit && (c->ext & SMTP_EXT_8BITMIME))
		buf_append_str(b, " BODY=8BITMIME");
	if (r->smtputf8 && (c->ext & SMTP_EXT_SMTPUTF8))
		buf_append_str(b, " SMTPUTF8");
	if (c->ext & SMTP_EXT_DSN) {
		if (r->ret_hdrs)
			buf_append_str(b, " RET=HDRS");
		if (r->envid != NULL && r->envid[0] != '\0' && client_addr_ok(r->envid) &&
		    strchr(r->envid, ' ') == NULL)
			buf_appendf(b, " ENVID=%s", r->envid);
	}
}

static void
client_rcpt_params(struct client *c, size_t i, struct buf *b)
{
	if (!(c->ext & SMTP_EXT_DSN))
		return;
	unsigned n = c->req.notify != NULL ? c->req.notify[i] : 0;
	if (n & QUEUE_NOTIFY_NEVER) {
		buf_append_str(b, " NOTIFY=NEVER");
	} else if (n != 0) {
		const char *sep = " NOTIFY=";
		if (n & QUEUE_NOTIFY_SUCCESS) {
			buf_appendf(b, "%sSUCCESS", sep);
			sep = ",";
		}
		if (n & QUEUE_NOTIFY_FAILURE) {
			buf_appendf(b, "%sFAILURE", sep);
			sep = ",";
		}
		if (n & QUEUE_NOTIFY_DELAY)
			buf_appendf(b, "%sDELAY", sep);
	}
	const char *o = c->req.orcpts != NULL ? c->req.orcpts[i] : NULL;
	if (o != NULL && o[0] != '\0' && client_addr_ok(o) && strchr(o, ' ') == NULL)
		buf_appendf(b, " ORCPT=%s", o);
}

static void
client_send_rcpt(struct client *c, size_t i)
{
	struct buf p = BUF_INIT;
	client_rcpt_params(c, i, &p);
	client_send(c, "RCPT TO:<%s>%s\r\n", c->req.rcpts[i], buf_cstr(&p));
	buf_free(&p);
	c->sent[c->rcpt_sent++] = i;
}

/* Checks what the server offers against the message, then MAIL (+RCPTs). */
static void
client_start_mail(struct client *c)
{
	const struct delivery_request *r = &c->req;
	if ((c->ext & SMTP_EXT_SIZE) && c->size_limit > 0 && r->body_size > c->size_limit) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "5.3.4 message size %llu exceeds the limit %llu of %s",
		    (unsigned long long)r->body_size, (unsigned long long)c->size_limit, c->relay);
		client_set_all(c, 552, buf_cstr(&b));
		buf_free(&b);
		client_finish(c, 1);
		return;
	}
	if (r->smtputf8 && !(c->ext & SMTP_EXT_SMTPUTF8)) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "5.6.7 SMTPUTF8 is required but not supported by %s", c->relay);
		client_set_all(c, 550, buf_cstr(&b));
		buf_free(&b);
		client_finish(c, 1);
		return;
	}
	if (!client_addr_ok(r->sender)) {
		client_set_all(c, 550, "5.1.7 bad sender address syntax");
		client_finish(c, 1);
		return;
	}
	for (size_t i = 0; i < r->nrcpts; i++) {
		if (!client_addr_ok(r->rcpts[i]))
			client_set_result(c, i, 550, "5.1.3 bad recipient address syntax");
	}
	struct buf p = BUF_INIT;
	client_mail_params(c, &p);
	client_state(c, CS_MAIL);
	client_send(c, "MAIL FROM:<%s>%s\r\n", r->sender, buf_cstr(&p));
	buf_free(&p);
	if (c->ext & SMTP_EXT_PIPELINING) {
		for (size_t i = 0; i < r->nrcpts; i++) {
			if (!c->final[i])
				client_send_rcpt(c, i);
		}
	}
}

/* Index of the next recipient from `from` on still without a result. */
static size_t
client_next_rcpt(struct client *c, size_t from)
{
	while (from < c->req.nrcpts && c->final[from])
		from++;
	return from;
}

/* ------------------------------------------------------------- body */

static int
client_pump(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char *piece = xmalloc(CLIENT_PUMP_PIECE);
	struct buf stuffed = BUF_INIT;
	int rc = 0;
	while (c->pump_pos < c->pump_end && evbuffer_get_length(out) < CLIENT_PUMP_HIGH) {
		uint64_t want = c->pump_end - c->pump_pos;
		size_t n = want > CLIENT_PUMP_PIECE ? CLIENT_PUMP_PIECE : (size_t)want;
		ssize_t got = pread(c->req.body_fd, piece, n, (off_t)c->pump_pos);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			log_error("smtp_client_read_body", "id=%s error=%s", c->qid,
			    log_str(got < 0 ? strerror(errno) : "unexpected end of file"));
			rc = -1;
			break;
		}
		c->last_byte = piece[got - 1];
		if (c->pump_dotstuff) {
			buf_reset(&stuffed);
			smtp_dotstuff(piece, (size_t)got, &c->at_bol, &stuffed);
			evbuffer_add(out, stuffed.data, stuffed.len);
		} else {
			evbuffer_add(out, piece, (size_t)got);
		}
		c->pump_pos += (uint64_t)got;
	}
	free(piece);
	buf_free(&stuffed);
	return rc;
}

static void
client_start_bdat_chunk(struct client *c)
{
	uint64_t left = c->req.body_size - c->pump_pos;
	uint64_t n = left > CLIENT_BDAT_CHUNK ? CLIENT_BDAT_CHUNK : left;
	int last = n == left;
	client_send(c, "BDAT %llu%s\r\n", (unsigned long long)n, last ? " LAST" : "");
	c->pump_end = c->pump_pos + n;
	c->pump_dotstuff = 0;
	c->pumping = 1;
	client_timeouts(c, 0);
}

/* Refills the output; at the end of the body goes on to wait for the reply. */
static void
client_pump_step(struct client *c)
{
	if (client_pump(c) < 0) {
		client_set_all(c, 451, "4.3.0 local error reading the queued message");
		client_close(c);   /* no final dot: the server drops the transaction */
		client_finish(c, 0);
		return;
	}
	if (c->pump_pos < c->pump_end)
		return;
	c->pumping = 0;
	client_timeouts(c, 1);
	if (c->state == CS_BODY) {
		struct evbuffer *out = bufferevent_get_output(c->bev);
		if (c->req.body_size > 0 && c->last_byte != '\n')
			evbuffer_add(out, "\r\n", 2);
		evbuffer_add(out, ".\r\n", 3);
		client_state(c, CS_DOT);
	}
	/* BDAT: the state stays, the chunk's reply is awaited. */
}

static void
client_start_body(struct client *c)
{
	c->pump_pos = 0;
	c->at_bol = 1;
	c->last_byte = '\n';
	if (c->ext & SMTP_EXT_CHUNKING) {
		client_state(c, CS_BDAT);
		client_start_bdat_chunk(c);
		client_pump_step(c);
	} else {
		client_state(c, CS_DATA);
		client_send(c, "DATA\r\n");
	}
}

/* -------------------------------------------------- reply handlers */

static const char *
client_helo_name(const struct client *c)
{
	const struct config *cfg = c->srv->cfg;
	if (cfg->helo_name != NULL && cfg->helo_name[0] != '\0')
		return cfg->helo_name;
	if (cfg->hostname != NULL && cfg->hostname[0] != '\0')
		return cfg->hostname;
	return "localhost";
}

static void
client_target_failed(struct client *c, const char *prefix)
{
	struct buf b = BUF_INIT;
	char *said = client_said(c);
	buf_appendf(&b, "%s%s", prefix, said);
	free(said);
	client_next_target(c, buf_steal(&b));
}

static void
client_on_banner(struct client *c)
{
	if (c->reply.code / 100 != 2) {
		client_target_failed(c, "4.4.2 greeting refused: ");
		return;
	}
	client_state(c, CS_EHLO);
	client_send(c, "EHLO %s\r\n", client_helo_name(c));
}

static int
client_want_tls(const struct client *c)
{
	return c->tls_policy != ROUTE_TLS_NONE && !c->no_tls && c->srv->tls != NULL &&
	    c->srv->tls->client != NULL;
}

/* MTA-STS testing mode: what would have failed, logged; the delivery goes on. */
static void
client_sts_testing_failure(const struct client *c, const char *why)
{
	log_warn("mta_sts_testing_failure", "id=%s domain=%s relay=%s reason=%s", c->qid,
	    log_str(c->req.domain != NULL ? c->req.domain : "-"), log_str(c->relay),
	    log_str(why));
}

static void
client_tls_missing(struct client *c, const char *what)
{
	struct buf b = BUF_INIT;
	const char *prep = strncmp(what, "not offered", 11) == 0 ? "by" : "with";
	if (c->req.tls_verify)
		buf_appendf(&b, "4.7.5 TLS required by policy (%s): %s %s %s",
		    c->req.tls_why != NULL ? c->req.tls_why : "policy", what, prep, c->relay);
	else
		buf_appendf(&b, "4.7.4 TLS required but %s %s %s", what, prep, c->relay);
	client_next_target(c, buf_steal(&b));
}

static void
client_on_ehlo(struct client *c)
{
	int code = c->reply.code;
	if (code / 100 == 5 && c->state == CS_EHLO) {
		client_state(c, CS_HELO);
		client_send(c, "HELO %s\r\n", client_helo_name(c));
		return;
	}
	if (code / 100 != 2) {
		client_target_failed(c, "4.4.2 EHLO failed: ");
		return;
	}
	c->ext = smtp_ehlo_parse(&c->reply, &c->size_limit);
	if (c->state == CS_EHLO && client_want_tls(c) && (c->ext & SMTP_EXT_STARTTLS)) {
		client_state(c, CS_STARTTLS);
		client_send(c, "STARTTLS\r\n");
		return;
	}
	if (!c->tls && c->tls_policy == ROUTE_TLS_REQUIRED) {
		client_tls_missing(c, (c->ext & SMTP_EXT_STARTTLS) ? "TLS failed earlier" :
		    "not offered");
		return;
	}
	if (!c->tls && c->req.sts_testing && !c->no_tls)   /* a failed handshake was logged */
		client_sts_testing_failure(c, "STARTTLS not offered");
	client_start_mail(c);
}

static void
client_on_helo(struct client *c)
{
	if (c->reply.code / 100 != 2) {
		client_target_failed(c, "4.4.2 HELO failed: ");
		return;
	}
	c->ext = 0;
	c->size_limit = 0;
	if (c->tls_policy == ROUTE_TLS_REQUIRED) {
		client_tls_missing(c, "not offered (no EHLO)");
		return;
	}
	if (c->req.sts_testing)
		client_sts_testing_failure(c, "STARTTLS not offered (no EHLO)");
	client_start_mail(c);
}

static int
client_is_ip(const char *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	return netaddr_to_sockaddr(s, 1, &ss, &len) == 0;
}

/*
 * Verified TLS: the certificate must name the MX host (RFC 8461 4.1: the
 * MX host name, not the recipient domain).  Enforcing sessions fail the
 * handshake on a bad chain or name; testing ones look at the result later.
 */
static int
client_tls_expect_host(struct client *c, SSL *ssl, const char *name)
{
	if (name[0] == '\0' || client_is_ip(name) || SSL_set1_host(ssl, name) != 1)
		return -1;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	SSL_set_verify(ssl, c->req.tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return 0;
}

static void
client_start_tls(struct client *c)
{
	/* Bytes after the 220 came before TLS: never trust them (STARTTLS injection). */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	int check = c->req.tls_verify || c->req.sts_testing;
	if (check && c->srv->tls->client_verify == NULL) {
		client_tls_missing(c, "no CA certificates loaded");
		return;
	}
	SSL *ssl = SSL_new(check ? c->srv->tls->client_verify : c->srv->tls->client);
	if (ssl == NULL) {
		client_tls_missing(c, "SSL_new failed");
		return;
	}
	const char *name = c->targets[c->ti].host;
	if (name[0] != '\0' && !client_is_ip(name))
		SSL_set_tlsext_host_name(ssl, name);
	if (check && client_tls_expect_host(c, ssl, name) < 0) {
		SSL_free(ssl);
		client_tls_missing(c, "no host name to verify");
		return;
	}
	struct bufferevent *tb = bufferevent_openssl_filter_new(c->srv->base, c->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		client_tls_missing(c, "the TLS filter failed");
		return;
	}
	c->bev = tb;
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bufferevent_setcb(tb, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_setwatermark(tb, EV_WRITE, CLIENT_PUMP_HIGH / 4, 0);
	client_timeouts(c, 1);
	client_state(c, CS_TLS_HANDSHAKE);
	if (bufferevent_enable(tb, EV_READ | EV_WRITE) < 0)
		client_tls_missing(c, "the TLS filter failed");
}

static void
client_on_starttls(struct client *c)
{
	if (c->reply.code == 220) {
		client_start_tls(c);
		return;
	}
	if (c->tls_policy == ROUTE_TLS_REQUIRED) {
		client_target_failed(c, "4.7.4 TLS required but STARTTLS failed: ");
		return;
	}
	log_info("smtp_client_starttls_refused", "id=%s relay=%s code=%d", c->qid,
	    log_str(c->relay), c->reply.code);
	client_start_mail(c);
}

static void
client_after_rcpts(struct client *c)
{
	if (c->mail_failed || c->naccepted == 0) {
		client_finish(c, 1);
		return;
	}
	client_start_body(c);
}

static void
client_on_mail(struct client *c)
{
	if (c->reply.code / 100 != 2) {
		char *said = client_said(c);
		client_set_all(c, c->reply.code, said);
		free(said);
		c->mail_failed = 1;
		if (c->rcpt_sent == 0) {
			client_finish(c, 1);
			return;
		}
	}
	client_state(c, CS_RCPT);
	if (!(c->ext & SMTP_EXT_PIPELINING)) {
		size_t i = client_next_rcpt(c, 0);
		if (i < c->req.nrcpts)
			client_send_rcpt(c, i);
		else
			client_after_rcpts(c);
	}
}

static void
client_on_rcpt(struct client *c)
{
	if (c->rcpt_replies >= c->rcpt_sent) {
		client_protocol_error(c, "unexpected reply");
		return;
	}
	/* Replies come in the order the RCPT commands were written. */
	size_t i = c->sent[c->rcpt_replies++];
	if (!c->mail_failed) {
		if (c->reply.code / 100 == 2) {
			c->accepted[i] = 1;
			c->naccepted++;
		} else {
			char *said = client_said(c);
			client_set_result(c, i, c->reply.code, said);
			free(said);
		}
	}
	if (c->rcpt_replies < c->rcpt_sent)
		return;
	size_t next = client_next_rcpt(c, i + 1);
	if (!(c->ext & SMTP_EXT_PIPELINING) && next < c->req.nrcpts && !c->mail_failed) {
		client_send_rcpt(c, next);
		return;
	}
	client_after_rcpts(c);
}

static void
client_on_data(struct client *c)
{
	if (c->reply.code != 354) {
		char *said = client_said(c);
		client_set_accepted(c, c->reply.code, said);
		free(said);
		client_finish(c, 1);
		return;
	}
	client_state(c, CS_BODY);
	c->pump_end = c->req.body_size;
	c->pump_dotstuff = 1;
	c->pumping = 1;
	client_timeouts(c, 0);
	client_pump_step(c);
}

static void
client_on_final(struct client *c)
{
	char *said = client_said(c);
	log_debug("smtp_client_final", "id=%s reply=%s", c->qid, log_str(said));
	client_set_accepted(c, c->reply.code, said);
	free(said);
	/* The transaction is over and the server is ready for the next MAIL. */
	c->reusable = (c->reply.code / 100 == 2 || c->reply.code / 100 == 5) &&
	    (c->state == CS_DOT || c->pump_pos >= c->req.body_size);
	client_finish(c, 1);
}

static void
client_on_bdat(struct client *c)
{
	if (c->reply.code / 100 != 2 || c->pump_pos >= c->req.body_size) {
		client_on_final(c);
		return;
	}
	client_start_bdat_chunk(c);
	client_pump_step(c);
}

/* One complete reply: what it means depends on the state. */
static void
client_dispatch(struct client *c)
{
	log_debug("smtp_client_reply", "id=%s relay=%s state=%s code=%d text=%s",
	    c->qid, log_str(c->relay), client_state_names[c->state], c->reply.code,
	    log_strn(c->reply.text.data, c->reply.text.len));
	switch (c->state) {
	case CS_BANNER: client_on_banner(c); break;
	case CS_EHLO: case CS_EHLO_TLS: client_on_ehlo(c); break;
	case CS_HELO: client_on_helo(c); break;
	case CS_STARTTLS: client_on_starttls(c); break;
	case CS_MAIL: client_on_mail(c); break;
	case CS_RCPT: client_on_rcpt(c); break;
	case CS_DATA: client_on_data(c); break;
	case CS_DOT: client_on_final(c); break;
	case CS_BDAT: client_on_bdat(c); break;
	case CS_QUIT: client_free(c); break;
	case CS_IDLE: client_free(c); break;
	default:
		break;
	}
}

static int
client_awaits_reply(const struct client *c)
{
	switch (c->state) {
	case CS_BANNER: case CS_EHLO: case CS_EHLO_TLS: case CS_HELO: case CS_STARTTLS:
	case CS_MAIL: case CS_RCPT: case CS_DATA: case CS_DOT: case CS_QUIT:
		return 1;
	case CS_BDAT:
		return !c->pumping;
	default:
		return 0;
	}
}

/* A bad reply: before MAIL the next target, after it the end. */
static void
client_protocol_error(struct client *c, const char *why)
{
	log_warn("smtp_client_bad_reply", "id=%s relay=%s reason=%s", c->qid,
	    log_str(c->relay), log_str(why));
	if (c->state == CS_QUIT || c->state == CS_IDLE) {
		client_free(c);
	} else if (c->state < CS_MAIL) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "4.5.0 %s from %s", why, c->relay);
		client_next_target(c, buf_steal(&b));
	} else {
		client_broken(c, why);
	}
}

/*
 * Reads complete lines while a reply is awaited.  Returns 1 when a reply
 * was dispatched (the session may be gone), 0 when more input is needed.
 */
static int
client_read_reply(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	for (;;) {
		size_t eol_len = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (p.pos < 0) {
			if (evbuffer_get_length(in) > SMTP_REPLY_MAX_LINE) {
				client_protocol_error(c, "reply line too long");
				return 1;
			}
			return 0;
		}
		size_t len = (size_t)p.pos;
		if (len > SMTP_REPLY_MAX_LINE) {
			client_protocol_error(c, "reply line too long");
			return 1;
		}
		char line[SMTP_REPLY_MAX_LINE + 1];
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		line[len] = '\0';
		if (c->reply_done) {
			smtp_reply_reset(&c->reply);
			c->reply_done = 0;
		}
		int rc = smtp_reply_feed(&c->reply, line, len);
		if (rc < 0) {
			client_protocol_error(c, c->reply.error);
			return 1;
		}
		if (rc == 1) {
			c->reply_done = 1;
			client_dispatch(c);
			return 1;
		}
	}
}

static void
client_read_input(struct client *c, struct bufferevent *bev)
{
	if (c->state == CS_IDLE) {
		/* A cached connection has nothing to say (421 on timeout): drop it. */
		client_free(c);
		return;
	}
	while (!c->dead && c->bev == bev && client_awaits_reply(c)) {
		if (client_read_reply(c) == 0)
			break;
	}
	if (!c->dead && c->bev == bev && !client_awaits_reply(c) &&
	    evbuffer_get_length(bufferevent_get_input(bev)) > SMTP_REPLY_MAX_SIZE)
		client_protocol_error(c, "unexpected data from the server");
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	client_hold(c);
	client_read_input(c, bev);
	client_release(c);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	client_hold(c);
	if (c->pumping && c->bev == bev) {
		client_pump_step(c);
		/* A reply that arrived while the body was being written. */
		if (!c->dead && c->bev == bev && !c->pumping)
			client_read_input(c, bev);
	}
	client_release(c);
}

/* ----------------------------------------------------- connections */

static void
client_tls_handshake_failed(struct client *c)
{
	unsigned long e = bufferevent_get_openssl_error(c->bev);
	char ebuf[256] = "handshake failed";
	if (e != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	if ((c->req.tls_verify || c->req.sts_testing) && vr != X509_V_OK)
		snprintf(ebuf, sizeof(ebuf), "certificate: %s", X509_verify_cert_error_string(vr));
	log_info("smtp_client_tls_failed", "id=%s relay=%s error=%s", c->qid,
	    log_str(c->relay), log_str(ebuf));
	if (c->tls_policy == ROUTE_TLS_REQUIRED) {
		struct buf what = BUF_INIT;
		buf_appendf(&what, "the TLS handshake failed (%s)", ebuf);
		client_tls_missing(c, buf_cstr(&what));
		buf_free(&what);
		return;
	}
	if (c->req.sts_testing)
		client_sts_testing_failure(c, ebuf);
	/* Opportunistic: the same address again, in plain text. */
	client_close(c);
	c->no_tls = 1;
	client_connect(c);
}

static void client_event(struct client *c, short what, int err);

/* MTA-STS testing: a session that would have failed verification is logged. */
static void
client_tls_check_testing(struct client *c)
{
	if (!c->req.sts_testing || c->req.tls_verify)
		return;
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (vr != X509_V_OK) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "certificate: %s", X509_verify_cert_error_string(vr));
		client_sts_testing_failure(c, buf_cstr(&b));
		buf_free(&b);
	}
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct client *c = arg;
	client_hold(c);
	if (c->bev == bev)
		client_event(c, what, err);
	client_release(c);
}

static void
client_event(struct client *c, short what, int err)
{
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CS_TLS_HANDSHAKE) {
			c->tls = 1;
			client_tls_check_testing(c);
			log_debug("smtp_client_tls", "id=%s relay=%s", c->qid,
			    log_str(c->relay));
			smtp_reply_reset(&c->reply);
			c->reply_done = 0;
			client_state(c, CS_EHLO_TLS);
			client_send(c, "EHLO %s\r\n", client_helo_name(c));
			return;
		}
		evtimer_del(c->timer);
		client_timeouts(c, 1);
		client_state(c, CS_BANNER);
		/* The banner may have been read before the connect event came. */
		client_read_input(c, c->bev);
		return;
	}
	if (c->state == CS_QUIT || c->state == CS_IDLE) {
		client_free(c);
		return;
	}
	if (client_stale(c))
		return;
	if (c->state == CS_TLS_HANDSHAKE) {
		client_tls_handshake_failed(c);
		return;
	}
	const char *why = (what & BEV_EVENT_TIMEOUT) ? "conversation timed out" :
	    (what & BEV_EVENT_EOF) ? "lost connection" : "connection error";
	if (c->state == CS_CONNECT) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "4.4.1 connect to %s: %s", c->relay,
		    err != 0 ? evutil_socket_error_to_string(err) : "Connection failed");
		client_next_target(c, buf_steal(&b));
	} else if (c->state < CS_MAIL) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "4.4.2 %s with %s while in %s", why, c->relay,
		    client_state_names[c->state]);
		client_next_target(c, buf_steal(&b));
	} else {
		client_broken(c, why);
	}
}

static void
client_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	struct buf b = BUF_INIT;
	buf_appendf(&b, "4.4.1 connect to %s: Connection timed out", c->relay);
	client_hold(c);
	client_next_target(c, buf_steal(&b));
	client_release(c);
}

static void
client_format_relay(struct client *c)
{
	const struct client_target *t = &c->targets[c->ti];
	char ip[64];
	netaddr_format((const struct sockaddr *)&t->addr, ip, sizeof(ip));
	snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d", t->host[0] != '\0' ? t->host : ip,
	    ip, c->port);
}

static void
client_connect(struct client *c)
{
	struct client_target *t = &c->targets[c->ti];
	client_format_relay(c);
	smtp_reply_reset(&c->reply);
	c->reply_done = 0;
	c->ext = 0;
	c->size_limit = 0;
	client_state(c, CS_CONNECT);
	if (t->addr.ss_family == AF_INET)
		((struct sockaddr_in *)&t->addr)->sin_port = htons((uint16_t)c->port);
	else
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons((uint16_t)c->port);
	c->bev = bufferevent_socket_new(c->srv->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		client_next_target(c, xstrdup("4.3.0 cannot create a socket"));
		return;
	}
	atomic_fetch_add_explicit(&c->srv->metrics.delivery_connections_active, 1,
	    memory_order_relaxed);
	c->counted = 1;
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_PUMP_HIGH / 4, 0);
	struct timeval tv = { (time_t)c->srv->cfg->connect_timeout, 0 };
	evtimer_assign(c->timer, c->srv->base, client_connect_timeout, c);
	evtimer_add(c->timer, &tv);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&t->addr, (int)t->addrlen) < 0) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "4.4.1 connect to %s: %s", c->relay, strerror(errno));
		client_next_target(c, buf_steal(&b));
		return;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Takes `why` (allocated).  Next address, or 4xx for all when none is left. */
static void
client_next_target(struct client *c, char *why)
{
	log_info("smtp_client_attempt_failed", "id=%s relay=%s reason=%s", c->qid,
	    log_str(c->relay), log_str(why));
	free(c->last_error);
	c->last_error = why;
	client_close(c);
	c->no_tls = 0;
	if (++c->ti < c->ntargets) {
		client_connect(c);
		return;
	}
	const char *text = c->last_error;
	client_set_all(c, 451, text);
	client_finish(c, 0);
}

/* ------------------------------------------------------------- DNS */

static void
client_add_target(struct client *c, const char *host, const struct sockaddr_storage *ss)
{
	if (c->ntargets >= CLIENT_MAX_TARGETS)
		return;
	struct client_target *t = &c->targets[c->ntargets++];
	memset(t, 0, sizeof(*t));
	snprintf(t->host, sizeof(t->host), "%s", host);
	t->addr = *ss;
	t->addrlen = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
}

static void
client_dns_failed(struct client *c, const struct dns_answer *ans)
{
	struct buf b = BUF_INIT;
	int code;
	switch (ans->status) {
	case DNS_NULL_MX:
		code = 556;
		buf_appendf(&b, "5.1.10 %s", ans->error);
		break;
	case DNS_NXDOMAIN:
	case DNS_NO_ADDRESS:
		code = 550;
		buf_appendf(&b, "5.1.2 %s", ans->error);
		break;
	default:
		code = 451;
		buf_appendf(&b, "4.4.3 %s", ans->error != NULL ? ans->error : "DNS failure");
		break;
	}
	log_info("smtp_client_dns", "id=%s status=%d reason=%s", c->qid,
	    (int)ans->status, log_str(buf_cstr(&b)));
	client_set_all(c, code, buf_cstr(&b));
	buf_free(&b);
	client_finish(c, 0);
}

static void client_dns_answer(struct client *c, const struct dns_answer *ans);

/*
 * MTA-STS mx patterns (MX hops only): a host not matching is skipped when
 * the policy is enforced, logged when it is in testing mode.
 */
static int
client_mx_allowed(struct client *c, const char *host)
{
	if (c->req.hop != NEXT_HOP_MX || c->req.n_mx == 0)
		return 1;
	struct tls_decision d = { TLSREQ_NONE, NULL, 0, c->req.mx_patterns, c->req.n_mx };
	if (tls_policy_mx_allowed(&d, host))
		return 1;
	if (c->req.sts_testing && !c->req.tls_verify) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "MX host %s does not match the policy", host);
		client_sts_testing_failure(c, buf_cstr(&b));
		buf_free(&b);
		return 1;
	}
	log_info("mta_sts_mx_skipped", "id=%s domain=%s mx=%s", c->qid,
	    log_str(c->req.domain != NULL ? c->req.domain : "-"), log_str(host));
	return 0;
}

static void
client_dns_done(void *arg, const struct dns_answer *ans)
{
	struct client *c = arg;
	c->awaiting_dns = 0;
	client_hold(c);
	if (!c->dead)
		client_dns_answer(c, ans);
	client_release(c);
}

static void
client_dns_answer(struct client *c, const struct dns_answer *ans)
{
	if (ans->status != DNS_OK) {
		client_dns_failed(c, ans);
		return;
	}
	c->targets = xcalloc(CLIENT_MAX_TARGETS, sizeof(*c->targets));
	size_t skipped = 0;
	for (size_t h = 0; h < ans->nhosts; h++) {
		if (!client_mx_allowed(c, ans->hosts[h].name)) {
			skipped++;
			continue;
		}
		for (size_t a = 0; a < ans->hosts[h].naddrs; a++)
			client_add_target(c, ans->hosts[h].name, &ans->hosts[h].addrs[a]);
	}
	if (c->ntargets == 0 && skipped > 0) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "4.7.5 TLS required by policy (%s): no MX host of %s matches "
		    "the MTA-STS policy", c->req.tls_why != NULL ? c->req.tls_why : "mta-sts enforce",
		    c->req.domain != NULL ? c->req.domain : "-");
		client_set_all(c, 451, buf_cstr(&b));
		buf_free(&b);
		client_finish(c, 0);
		return;
	}
	if (c->ntargets == 0) {
		client_set_all(c, 451, "4.4.3 no address to deliver to");
		client_finish(c, 0);
		return;
	}
	c->ti = 0;
	client_connect(c);
}

static void
client_fail_soon_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	client_hold(c);
	client_finish(c, 0);
	client_release(c);
}

/* ------------------------------------------------------------ entry */

static struct client *
client_new(struct server *srv, const struct delivery_request *req, smtp_client_done_cb *cb,
    void *arg)
{
	struct client *c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	client_txn_init(c, req, cb, arg);
	c->state = CS_RESOLVE;
	c->timer = evtimer_new(srv->base, client_connect_timeout, c);
	if (c->timer == NULL) {
		log_error("smtp_client_timer", "error=%s", "evtimer_new");
		abort();
	}
	smtp_reply_init(&c->reply);
	c->next = client_list;
	if (client_list != NULL)
		client_list->prev = c;
	client_list = c;
	return c;
}

/* The connection cache's key: where the request goes and under which TLS policy. */
static void
client_key(struct server *srv, const struct delivery_request *req, char *key, size_t size)
{
	/* a verified or MTA-STS session never serves an unverified one, nor back */
	const char *pol = req->tls_verify ? (req->n_mx > 0 ? ":sts" : ":v") :
	    req->sts_testing ? ":t" : "";
	if (req->hop == NEXT_HOP_ROUTE)
		snprintf(key, size, "route:%s:%d:%d%s", req->route.host, req->route.port,
		    (int)req->route.tls, pol);
	else if (srv->cfg->smarthost != NULL && srv->cfg->smarthost[0] != '\0')
		snprintf(key, size, "smarthost:%s%s", srv->cfg->smarthost, pol);
	else
		snprintf(key, size, "mx:%s%s", req->domain != NULL ? req->domain : "", pol);
}

static void
client_reuse_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	client_hold(c);
	client_timeouts(c, 1);
	client_start_mail(c);
	client_release(c);
}

/*
 * A new transaction on a cached connection: straight to MAIL, from the
 * loop (so that the callback never runs inside smtp_client_deliver()).
 */
static void
client_reuse(struct client *c, const struct delivery_request *req, smtp_client_done_cb *cb,
    void *arg)
{
	struct timeval zero = { 0, 0 };
	client_txn_init(c, req, cb, arg);
	c->reused = 1;
	smtp_reply_reset(&c->reply);
	c->reply_done = 0;
	client_state(c, CS_MAIL);
	log_debug("smtp_client_reuse", "id=%s relay=%s", c->qid, log_str(c->relay));
	evtimer_assign(c->timer, c->srv->base, client_reuse_cb, c);
	evtimer_add(c->timer, &zero);
}

void
smtp_client_deliver(struct server *srv, const struct delivery_request *req,
    smtp_client_done_cb *cb, void *arg)
{
	char key[CLIENT_KEY_MAX];
	client_key(srv, req, key, sizeof(key));
	struct client *idle = client_take_idle(srv, key);
	if (idle != NULL) {
		client_reuse(idle, req, cb, arg);
		return;
	}
	struct client *c = client_new(srv, req, cb, arg);
	snprintf(c->key, sizeof(c->key), "%s", key);
	char smarthost[256];
	const char *host;
	if (req->hop == NEXT_HOP_ROUTE) {
		host = req->route.host;
		c->port = req->route.port;
		c->tls_policy = req->tls_verify ? ROUTE_TLS_REQUIRED : req->route.tls;
	} else if (srv->cfg->smarthost != NULL && srv->cfg->smarthost[0] != '\0') {
		host = smarthost;
		c->tls_policy = req->tls_verify ? ROUTE_TLS_REQUIRED : ROUTE_TLS_OPPORTUNISTIC;
		if (netaddr_parse_hostport(srv->cfg->smarthost, smarthost, sizeof(smarthost),
		    &c->port) < 0) {
			client_set_all(c, 451, "4.3.5 bad smarthost setting (host:port)");
			struct timeval zero = { 0, 0 };
			evtimer_assign(c->timer, srv->base, client_fail_soon_cb, c);
			evtimer_add(c->timer, &zero);
			return;
		}
	} else {
		c->port = (int)srv->cfg->mx_port;
		c->tls_policy = req->tls_verify ? ROUTE_TLS_REQUIRED : ROUTE_TLS_OPPORTUNISTIC;
		log_debug("smtp_client_start", "id=%s domain=%s rcpts=%zu", req->queue_id,
		    log_str(req->domain), req->nrcpts);
		c->awaiting_dns = 1;
		dns_resolve_mx(srv->dns, req->domain, client_dns_done, c);
		return;
	}
	log_debug("smtp_client_start", "id=%s host=%s port=%d rcpts=%zu", req->queue_id,
	    log_str(host), c->port, req->nrcpts);
	c->awaiting_dns = 1;
	dns_resolve_host(srv->dns, host, client_dns_done, c);
}

void
smtp_client_cancel_all(struct server *srv)
{
	struct client *c = client_list, *next;
	for (; c != NULL; c = next) {
		next = c->next;
		if (c->srv != srv || c->dead)
			continue;
		if (c->reported) {
			client_free(c);   /* waiting for the QUIT reply */
			continue;
		}
		log_info("smtp_client_cancel", "id=%s relay=%s state=%s", c->qid,
		    log_str(c->relay), client_state_names[c->state]);
		client_set_all(c, 421, "4.3.2 delivery cut short: mailark is shutting down");
		client_close(c);
		client_finish(c, 0);
	}
}
