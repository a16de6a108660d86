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
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/netio.h"

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

/* A connected socket to clamd ("/path" or "host:port"), or -1 + *err_r. */
static int
clamd_connect(const char *spec, int64_t deadline_ms, char **err_r)
{
	int fd;
	if (spec[0] == '/' || strchr(spec, '/') != NULL) {
		fd = netio_connect_unix(spec, deadline_ms);
		if (fd < 0 && errno == ENAMETOOLONG) {
			err_setf(err_r, "clamd: socket path too long");
			return -1;
		}
	} else {
		char host[256], port[16];
		int portnum, gai;
		if (netaddr_parse_hostport(spec, host, sizeof(host), &portnum) < 0) {
			err_setf(err_r, "clamd: bad socket %s (a path or host:port)", spec);
			return -1;
		}
		snprintf(port, sizeof(port), "%d", portnum);
		fd = netio_connect_tcp(host, port, deadline_ms, &gai);
		if (fd < 0 && gai != 0) {
			err_setf(err_r, "clamd: %s: %s", host, gai_strerror(gai));
			return -1;
		}
	}
	if (fd < 0)
		err_setf(err_r, "clamd: connect: %s",
		    errno == ETIMEDOUT ? "timed out" : strerror(errno));
	return fd;
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
	int ev = netio_wait(c->fd, POLLOUT | POLLIN, c->deadline_ms);
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
	int ev = netio_wait(c->fd, POLLIN, c->deadline_ms);
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
	c.deadline_ms = netio_now_ms() + (int64_t)(timeout_s > 0 ? timeout_s : 60) * 1000;
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
	enum hygiene_action a = policy_act_action(m->pol->av_action);
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
