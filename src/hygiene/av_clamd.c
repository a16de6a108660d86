/*
 * av_clamd.c — the clamd INSTREAM client and the antivirus stage (see
 * av_clamd.h).  One connection per scan: connect, "zINSTREAM\0", chunks of
 * <4-byte big-endian length><data>, a zero-length chunk, then one
 * NUL-terminated reply.  Every step waits with poll() against one deadline.
 * clamd may answer (and close) before the whole stream is sent when the
 * stream passes its StreamMaxLength: the client then reads that reply.
 */
#include "hygiene/av_clamd.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"

#define CLAMD_CHUNK     65536
#define CLAMD_REPLY_MAX 1024
#define VIRUS_NAME_MAX  200

/* The client's states, in order. */
enum clamd_state {
	CLAMD_COMMAND,    /* sending "zINSTREAM\0" */
	CLAMD_CHUNK_HEAD, /* sending a chunk's length */
	CLAMD_CHUNK_DATA, /* sending its bytes */
	CLAMD_END,        /* sending the zero-length chunk */
	CLAMD_REPLY,      /* reading up to the NUL */
	CLAMD_DONE,
};

struct clamd_conn {
	int fd;
	enum clamd_state state;
	int64_t deadline_ms;
	const unsigned char *data;
	size_t len, sent;          /* message bytes sent so far */
	unsigned char head[4];     /* the current chunk's length, big-endian */
	size_t chunk_len;
	const unsigned char *out;  /* what the current state still has to send */
	size_t out_len;
	struct buf reply;
};

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: revents, 0 on timeout, -1 error. */
static int
wait_fd(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		int64_t left = deadline_ms - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n > 0)
			return p.revents;
	}
}

static int
connect_wait(int fd, const struct sockaddr *sa, socklen_t salen, int64_t deadline_ms,
    char **err_r)
{
	if (connect(fd, sa, salen) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN) {
		err_setf(err_r, "clamd: connect: %s", strerror(errno));
		return -1;
	}
	int ev = wait_fd(fd, POLLOUT, deadline_ms);
	if (ev == 0) {
		err_setf(err_r, "clamd: connect: timed out");
		return -1;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (ev < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr != 0) {
		err_setf(err_r, "clamd: connect: %s", strerror(soerr));
		return -1;
	}
	return 0;
}

static int
connect_unix(const char *path, int64_t deadline_ms, char **err_r)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		err_setf(err_r, "clamd: socket path too long");
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err_setf(err_r, "clamd: socket: %s", strerror(errno));
		return -1;
	}
	if (connect_wait(fd, (struct sockaddr *)&sun, sizeof(sun), deadline_ms, err_r) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
connect_tcp(const char *spec, int64_t deadline_ms, char **err_r)
{
	char host[256];
	int port;
	if (netaddr_parse_hostport(spec, host, sizeof(host), &port) < 0) {
		err_setf(err_r, "clamd: bad socket %s (a path or host:port)", spec);
		return -1;
	}
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int gai = getaddrinfo(host, portstr, &hints, &res);
	if (gai != 0) {
		err_setf(err_r, "clamd: %s: %s", host, gai_strerror(gai));
		return -1;
	}
	int fd = -1;
	char *last = NULL;
	for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		free(last);
		last = NULL;
		if (connect_wait(fd, ai->ai_addr, ai->ai_addrlen, deadline_ms, &last) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		err_setf(err_r, "%s", last != NULL ? last : "clamd: no address");
	free(last);
	return fd;
}

static int
clamd_connect(const char *spec, int64_t deadline_ms, char **err_r)
{
	if (spec[0] == '/' || strchr(spec, '/') != NULL)
		return connect_unix(spec, deadline_ms, err_r);
	return connect_tcp(spec, deadline_ms, err_r);
}

/* Sets up the next chunk's length (CLAMD_CHUNK_HEAD) or the end marker. */
static void
next_chunk(struct clamd_conn *c)
{
	static const unsigned char zero[4] = { 0, 0, 0, 0 };
	if (c->sent >= c->len) {
		c->state = CLAMD_END;
		c->out = zero;
		c->out_len = sizeof(zero);
		return;
	}
	size_t n = c->len - c->sent;
	if (n > CLAMD_CHUNK)
		n = CLAMD_CHUNK;
	c->chunk_len = n;
	c->head[0] = (unsigned char)(n >> 24);
	c->head[1] = (unsigned char)(n >> 16);
	c->head[2] = (unsigned char)(n >> 8);
	c->head[3] = (unsigned char)n;
	c->state = CLAMD_CHUNK_HEAD;
	c->out = c->head;
	c->out_len = sizeof(c->head);
}

/* The current state's bytes are all sent: moves on. */
static void
sent_all(struct clamd_conn *c)
{
	switch (c->state) {
	case CLAMD_COMMAND:
		next_chunk(c);
		break;
	case CLAMD_CHUNK_HEAD:
		c->state = CLAMD_CHUNK_DATA;
		c->out = c->data + c->sent;
		c->out_len = c->chunk_len;
		break;
	case CLAMD_CHUNK_DATA:
		c->sent += c->chunk_len;
		next_chunk(c);
		break;
	case CLAMD_END:
		c->state = CLAMD_REPLY;
		break;
	case CLAMD_REPLY:
	case CLAMD_DONE:
		break;
	}
}

/* One step of sending: 0 on progress, -1 + *err_r. */
static int
send_step(struct clamd_conn *c, char **err_r)
{
	int ev = wait_fd(c->fd, POLLOUT | POLLIN, c->deadline_ms);
	if (ev == 0) {
		err_setf(err_r, "clamd: timed out sending");
		return -1;
	}
	if (ev < 0) {
		err_setf(err_r, "clamd: poll: %s", strerror(errno));
		return -1;
	}
	if (ev & (POLLIN | POLLHUP | POLLERR)) {
		/* clamd answered early (size limit) or went away: read its word. */
		c->state = CLAMD_REPLY;
		return 0;
	}
	ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == EPIPE || errno == ECONNRESET) {
			c->state = CLAMD_REPLY;
			return 0;
		}
		err_setf(err_r, "clamd: send: %s", strerror(errno));
		return -1;
	}
	c->out += n;
	c->out_len -= (size_t)n;
	if (c->out_len == 0)
		sent_all(c);
	return 0;
}

/* One step of reading the reply: 0 on progress, -1 + *err_r. */
static int
reply_step(struct clamd_conn *c, char **err_r)
{
	int ev = wait_fd(c->fd, POLLIN, c->deadline_ms);
	if (ev == 0) {
		err_setf(err_r, "clamd: timed out waiting for the reply");
		return -1;
	}
	if (ev < 0) {
		err_setf(err_r, "clamd: poll: %s", strerror(errno));
		return -1;
	}
	char tmp[256];
	ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0 && errno != ECONNRESET) {
		err_setf(err_r, "clamd: recv: %s", strerror(errno));
		return -1;
	}
	if (n <= 0) {
		if (c->reply.len == 0) {
			err_setf(err_r, "clamd: connection closed without a reply");
			return -1;
		}
		c->state = CLAMD_DONE;
		return 0;
	}
	void *nul = memchr(tmp, '\0', (size_t)n);
	size_t take = nul != NULL ? (size_t)((char *)nul - tmp) : (size_t)n;
	if (c->reply.len + take > CLAMD_REPLY_MAX) {
		err_setf(err_r, "clamd: reply too long");
		return -1;
	}
	buf_append(&c->reply, tmp, take);
	if (nul != NULL)
		c->state = CLAMD_DONE;
	return 0;
}

/* A virus name fit for an SMTP reply and a log line: printable ASCII, capped. */
static char *
virus_name_clean(const char *s, size_t len)
{
	if (len > VIRUS_NAME_MAX)
		len = VIRUS_NAME_MAX;
	char *out = xstrndup(s, len);
	for (char *p = out; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			*p = '_';
	return out;
}

/* "stream: OK", "stream: NAME FOUND", "... ERROR". */
static int
reply_parse(char *reply, char **virus_r, char **err_r)
{
	size_t len = strlen(reply);
	while (len > 0 && (reply[len - 1] == '\n' || reply[len - 1] == '\r' || reply[len - 1] == ' '))
		reply[--len] = '\0';
	const char *body = reply;
	const char *colon = strstr(reply, ": ");
	if (colon != NULL)
		body = colon + 2;
	size_t blen = strlen(body);
	if (strcmp(body, "OK") == 0)
		return 0;
	if (blen > 6 && strcmp(body + blen - 6, " FOUND") == 0) {
		*virus_r = virus_name_clean(body, blen - 6);
		return 1;
	}
	if (strstr(reply, "size limit exceeded") != NULL)
		err_setf(err_r, "clamd: message larger than clamd's StreamMaxLength");
	else
		err_setf(err_r, "clamd: %s", log_str(reply));
	return -1;
}

int
av_clamd_scan(const char *socket_spec, unsigned timeout_s, const unsigned char *data,
    size_t len, char **virus_r, char **err_r)
{
	*virus_r = NULL;
	if (socket_spec == NULL || socket_spec[0] == '\0') {
		err_setf(err_r, "clamd: no socket configured");
		return -1;
	}
	struct clamd_conn c;
	memset(&c, 0, sizeof(c));
	c.deadline_ms = now_ms() + (int64_t)(timeout_s > 0 ? timeout_s : 60) * 1000;
	c.fd = clamd_connect(socket_spec, c.deadline_ms, err_r);
	if (c.fd < 0)
		return -1;
	c.data = data;
	c.len = len;
	c.state = CLAMD_COMMAND;
	c.out = (const unsigned char *)"zINSTREAM";
	c.out_len = sizeof("zINSTREAM");  /* with its NUL */
	int rc = 0;
	while (rc == 0 && c.state != CLAMD_DONE) {
		if (c.state == CLAMD_REPLY)
			rc = reply_step(&c, err_r);
		else
			rc = send_step(&c, err_r);
	}
	close(c.fd);
	if (rc == 0) {
		char *reply = buf_steal(&c.reply);
		rc = reply_parse(reply, virus_r, err_r);
		free(reply);
	}
	buf_free(&c.reply);
	return rc;
}

static enum hygiene_action
act_to_action(enum policy_act a)
{
	switch (a) {
	case POLICY_ACT_REJECT:
		return HYGIENE_REJECT;
	case POLICY_ACT_QUARANTINE:
		return HYGIENE_QUARANTINE;
	case POLICY_ACT_TAG:
		return HYGIENE_TAG;
	case POLICY_ACT_NONE:
		break;
	}
	return HYGIENE_ACCEPT;
}

int
av_clamd_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	if (m->pol == NULL || !m->pol->av_enabled || m->h == NULL || m->h->cfg == NULL)
		return 0;
	const struct config *cfg = m->h->cfg;
	if (cfg->clamd_socket == NULL || cfg->clamd_socket[0] == '\0')
		return 0;
	const unsigned char *data;
	size_t len;
	hygiene_result_content(m, r, &data, &len);
	char *virus = NULL;
	unsigned timeout = cfg->clamd_timeout > 0 && cfg->clamd_timeout < 86400
	    ? (unsigned)cfg->clamd_timeout : 60;
	int rc = av_clamd_scan(cfg->clamd_socket, timeout, data, len, &virus, err_r);
	if (rc <= 0)
		return rc;
	enum hygiene_action a = act_to_action(m->pol->av_action);
	char *reply = buf_printf("550 5.7.1 Message rejected: virus found: %s", virus);
	log_info("hygiene_virus", "id=%s tenant=%s virus=%s action=%s", log_str(m->qid),
	    log_str(m->tenant), log_str(virus), hygiene_action_name(a));
	if (a == HYGIENE_ACCEPT)
		hygiene_result_reason(r, "av:%s", virus);
	else
		hygiene_result_raise(r, a, reply, "av:%s", virus);
	if (a == HYGIENE_TAG)
		hygiene_result_add_header(r, "X-Mailark-Virus", "%s", virus);
	free(reply);
	free(virus);
	return 0;
}
