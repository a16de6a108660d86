/*
 * control.c — the control socket: a Unix stream socket in the data
 * directory (mode 0600: only the daemon's user may administer it).
 *
 * Daemon side, on the loop thread: each connection sends one request line
 * (at most CONTROL_MAX_REQUEST bytes), gets one answer line and is closed.
 * A connection moves through three states:
 *
 *   READING ──line──▶ ANSWERING ──flushed──▶ CLOSED
 *      └──too long / EOF / timeout / error──────▶ CLOSED
 *
 * The handlers (control_handlers.c) run synchronously: the store and queue
 * calls they make are quick, and running them on the loop thread serialises
 * them with everything else that touches the same state.
 */
#include "control/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "control/control_handlers.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "server.h"
#include "auth/principal.h"

/*
 * Whoever can open control.sock (mode 0600, in a 0700 directory) is the
 * daemon's own user: the local operator.
 */
static const struct principal control_local_operator = {
	.role = ROLE_OPERATOR,
	.actor = (char *)"cli@local",
	.tenant = NULL,
	.user_id = 0,
	.source = (char *)"local",
};

/* Requests carry whole messages (spam training, classification), base64. */
#define CONTROL_MAX_REQUEST (96 * 1024 * 1024)
#define CONTROL_TIMEOUT_SEC 30
#define CONTROL_CLIENT_TIMEOUT_MS (120 * 1000)
#define CONTROL_MAX_RESPONSE (64 * 1024 * 1024)

enum control_conn_state { CC_READING, CC_ANSWERING, CC_CLOSED };

struct control_conn {
	struct control *ctl;
	struct bufferevent *bev;
	enum control_conn_state state;
	unsigned long long id;
	size_t scanned;            /* input bytes already searched for the LF */
	struct control_conn *next, *prev;
};

struct control {
	struct server *srv;
	struct evconnlistener *listener;
	char *path;
	struct control_conn *conns;
	unsigned long long next_id;
};

static const char *const control_state_names[] = { "reading", "answering", "closed" };

static void control_conn_free(struct control_conn *cc);

static void
control_conn_set_state(struct control_conn *cc, enum control_conn_state st)
{
	log_debug("control_state", "conn=%llu from=%s to=%s", cc->id,
	    control_state_names[cc->state], control_state_names[st]);
	cc->state = st;
	if (st == CC_CLOSED)
		control_conn_free(cc);
}

/* Builds the socket path; -1 when it does not fit in sun_path. */
static int
control_socket_addr(const char *data_dir, struct sockaddr_un *sun, char **path_r)
{
	struct buf p = BUF_INIT;
	buf_appendf(&p, "%s/control.sock", data_dir);
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (p.len >= sizeof(sun->sun_path)) {
		*path_r = buf_steal(&p);
		return -1;
	}
	memcpy(sun->sun_path, p.data, p.len + 1);
	*path_r = buf_steal(&p);
	return 0;
}

/* ---- daemon side ------------------------------------------------------- */

static void
control_conn_free(struct control_conn *cc)
{
	struct control *ctl = cc->ctl;
	if (cc->prev != NULL)
		cc->prev->next = cc->next;
	else
		ctl->conns = cc->next;
	if (cc->next != NULL)
		cc->next->prev = cc->prev;
	bufferevent_free(cc->bev);
	free(cc);
}

static char *
control_error_json(const char *reason)
{
	json_t *o = json_pack("{s:b, s:s}", "ok", 0, "error", reason);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* Runs one request line; returns the answer (json_dumps string, free()). */
static char *
control_answer(struct control *ctl, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(line, len, 0, &jerr);
	const char *cmd = NULL;
	json_t *args = NULL;
	if (req == NULL || !json_is_object(req) ||
	    json_unpack(req, "{s:s, s?o}", "cmd", &cmd, "args", &args) < 0 ||
	    (args != NULL && !json_is_object(args))) {
		log_warn("control_bad_request", "error=%s",
		    log_str(req == NULL ? jerr.text : "expected {\"cmd\":..., \"args\":{...}}"));
		json_decref(req);
		return control_error_json("malformed request (expected one JSON object "
		    "{\"cmd\":\"...\",\"args\":{...}})");
	}
	json_t *empty = NULL;
	if (args == NULL)
		args = empty = json_object();
	json_t *result = NULL;
	char *err = NULL;
	json_t *resp;
	if (control_dispatch(ctl->srv, &control_local_operator, cmd, args, &result, &err) == 0) {
		resp = json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_null());
	} else {
		resp = json_pack("{s:b, s:s}", "ok", 0, "error", err ? err : "failed");
	}
	free(err);
	json_decref(empty);
	json_decref(req);
	char *s = json_dumps(resp, JSON_COMPACT);
	json_decref(resp);
	return s;
}

static void
control_send(struct control_conn *cc, char *answer)
{
	struct evbuffer *out = bufferevent_get_output(cc->bev);
	if (answer == NULL) {
		control_conn_set_state(cc, CC_CLOSED);
		return;
	}
	evbuffer_add(out, answer, strlen(answer));
	evbuffer_add(out, "\n", 1);
	free(answer);
	bufferevent_disable(cc->bev, EV_READ);
	control_conn_set_state(cc, CC_ANSWERING);
}

static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn *cc = arg;
	if (cc->state != CC_READING)
		return;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line = NULL;
	/* Requests can be large (whole messages): look for the LF only in what
	 * arrived since the last look, never rescanning from the start. */
	struct evbuffer_ptr from;
	if (evbuffer_ptr_set(in, &from, cc->scanned, EVBUFFER_PTR_SET) == 0) {
		struct evbuffer_ptr eol = evbuffer_search_eol(in, &from, NULL, EVBUFFER_EOL_LF);
		if (eol.pos >= 0)
			line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		else
			cc->scanned = evbuffer_get_length(in);
	}
	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_MAX_REQUEST) {
			log_warn("control_bad_request", "conn=%llu error=too_long", cc->id);
			evbuffer_drain(in, evbuffer_get_length(in));
			control_send(cc, control_error_json("request too long (limit 96 MiB)"));
		}
		return;
	}
	char *answer = len > CONTROL_MAX_REQUEST ?
	    control_error_json("request too long (limit 96 MiB)") :
	    control_answer(cc->ctl, line, len);
	free(line);
	control_send(cc, answer);
}

static void
control_write_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn *cc = arg;
	if (cc->state == CC_ANSWERING)
		control_conn_set_state(cc, CC_CLOSED);
}

static void
control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct control_conn *cc = arg;
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT))
		control_conn_set_state(cc, CC_CLOSED);
}

static void
control_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct control *ctl = arg;
	struct control_conn *cc = xcalloc(1, sizeof(*cc));
	cc->ctl = ctl;
	cc->id = ++ctl->next_id;
	cc->state = CC_READING;
	cc->bev = bufferevent_socket_new(ctl->srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (cc->bev == NULL) {
		log_warn("control_accept", "error=%s", log_str("cannot create bufferevent"));
		close(fd);
		free(cc);
		return;
	}
	cc->next = ctl->conns;
	if (ctl->conns != NULL)
		ctl->conns->prev = cc;
	ctl->conns = cc;
	struct timeval tv = { CONTROL_TIMEOUT_SEC, 0 };
	bufferevent_set_timeouts(cc->bev, &tv, &tv);
	bufferevent_setwatermark(cc->bev, EV_READ, 0, CONTROL_MAX_REQUEST + 2);
	bufferevent_setcb(cc->bev, control_read_cb, control_write_cb, control_event_cb, cc);
	bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
	log_debug("control_connect", "conn=%llu", cc->id);
}

static void
control_listener_error_cb(struct evconnlistener *l, void *arg)
{
	log_warn("control_accept", "error=%s", log_str(strerror(errno)));
}

/* Binds the socket with a restrictive umask so it is never reachable by others. */
static int
control_bind(struct control *ctl, const struct sockaddr_un *sun, char **err_r)
{
	if (unlink(ctl->path) < 0 && errno != ENOENT) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "%s: cannot remove stale socket: %s", ctl->path, strerror(errno));
		*err_r = buf_steal(&e);
		return -1;
	}
	mode_t old = umask(0077);
	ctl->listener = evconnlistener_new_bind(ctl->srv->base, control_accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	    (const struct sockaddr *)sun, (int)sizeof(*sun));
	int saved = errno;
	umask(old);
	if (ctl->listener == NULL || chmod(ctl->path, 0600) < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "%s: cannot listen: %s", ctl->path,
		    strerror(ctl->listener == NULL ? saved : errno));
		*err_r = buf_steal(&e);
		return -1;
	}
	evconnlistener_set_error_cb(ctl->listener, control_listener_error_cb);
	return 0;
}

int
control_start(struct server *srv, struct control **c_r, char **err_r)
{
	struct control *ctl = xcalloc(1, sizeof(*ctl));
	struct sockaddr_un sun;
	ctl->srv = srv;
	if (control_socket_addr(srv->cfg->data_dir, &sun, &ctl->path) < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "%s: socket path too long", ctl->path);
		*err_r = buf_steal(&e);
		free(ctl->path);
		free(ctl);
		return -1;
	}
	if (control_bind(ctl, &sun, err_r) < 0) {
		free(ctl->path);
		free(ctl);
		return -1;
	}
	*c_r = ctl;
	return 0;
}

void
control_free(struct control **cp)
{
	struct control *ctl = *cp;
	if (ctl == NULL)
		return;
	while (ctl->conns != NULL)
		control_conn_free(ctl->conns);
	if (ctl->listener != NULL) {
		evconnlistener_free(ctl->listener);
		if (unlink(ctl->path) < 0 && errno != ENOENT)
			log_warn("control_unlink", "path=%s error=%s", log_str(ctl->path),
			    log_str(strerror(errno)));
	}
	free(ctl->path);
	free(ctl);
	*cp = NULL;
}

/* ---- client side --------------------------------------------------------- */

static void
control_client_err(char **err_r, const char *fmt, const char *a, const char *b)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a, b);
	*err_r = buf_steal(&e);
}

static int
control_client_connect(const char *data_dir, char **err_r)
{
	struct sockaddr_un sun;
	char *path;
	if (control_socket_addr(data_dir, &sun, &path) < 0) {
		control_client_err(err_r, "%s: socket path too long%s", path, "");
		free(path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		control_client_err(err_r, "socket: %s%s", strerror(errno), "");
		free(path);
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			control_client_err(err_r, "the daemon is not running (no control socket at "
			    "%s); start it with 'mailark serve'%s", path, "");
		else
			control_client_err(err_r, "cannot connect to %s: %s", path, strerror(errno));
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

/* Reads until a newline (or EOF); the answer without it into *response_r. */
static int
control_client_read(int fd, char **response_r, char **err_r)
{
	struct buf b = BUF_INIT;
	char chunk[8192];
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int pr = poll(&pfd, 1, CONTROL_CLIENT_TIMEOUT_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			control_client_err(err_r, "no answer from the daemon (%s)%s",
			    pr == 0 ? "timeout" : strerror(errno), "");
			buf_free(&b);
			return -1;
		}
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			control_client_err(err_r, "reading the answer: %s%s", strerror(errno), "");
			buf_free(&b);
			return -1;
		}
		buf_append(&b, chunk, (size_t)n);
		char *nl = b.len ? memchr(b.data, '\n', b.len) : NULL;
		if (nl != NULL || n == 0 || b.len > CONTROL_MAX_RESPONSE) {
			if (nl != NULL)
				buf_truncate(&b, (size_t)(nl - b.data));
			else if (b.len == 0 || b.len > CONTROL_MAX_RESPONSE) {
				control_client_err(err_r, "the daemon closed the connection "
				    "without an answer%s%s", "", "");
				buf_free(&b);
				return -1;
			}
			*response_r = buf_steal(&b);
			return 0;
		}
	}
}

static int
control_client_send(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int
control_request(const char *data_dir, const char *request_json, char **response_r,
    char **err_r)
{
	int fd = control_client_connect(data_dir, err_r);
	if (fd < 0)
		return -1;
	struct buf req = BUF_INIT;
	buf_append_str(&req, request_json);
	buf_append_char(&req, '\n');
	int ret = -1;
	if (control_client_send(fd, req.data, req.len) < 0)
		control_client_err(err_r, "sending the request: %s%s", strerror(errno), "");
	else
		ret = control_client_read(fd, response_r, err_r);
	buf_free(&req);
	close(fd);
	return ret;
}
