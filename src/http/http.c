/*
 * http.c — libmicrohttpd on its own internal thread.  The handler only
 * reads atomics (struct metrics), so it needs no lock with the loop thread.
 * Requests with a body or any method but GET/HEAD are refused.
 */
#include "http/http.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "metrics/metrics.h"
#include "server.h"

#define HTTP_CONNECTION_LIMIT 64
#define HTTP_PER_IP_LIMIT 16
#define HTTP_TIMEOUT_SEC 15

struct http_server {
	struct server *srv;
	struct MHD_Daemon *mhd;
};

static enum MHD_Result
http_reply(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
    size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body,
	    MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result
http_reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return http_reply(conn, status, "text/plain; charset=utf-8", xstrdup(text), strlen(text));
}

static enum MHD_Result
http_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *h = cls;
	if (*con_cls == NULL) {       /* first call: headers only */
		*con_cls = h;
		return MHD_YES;
	}
	if (*upload_data_size != 0)
		return MHD_NO;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return http_reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, "/metrics") == 0) {
		struct buf b = BUF_INIT;
		metrics_render(&h->srv->metrics, &b);
		size_t len = b.len;
		return http_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
		    buf_steal(&b), len);
	}
	if (strcmp(url, "/healthz") == 0)
		return http_reply_text(conn, MHD_HTTP_OK, "ok\n");
	return http_reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

static void
http_set_err(char **err_r, const char *what, const char *listen)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, "http listen %s: %s", listen, what);
	*err_r = buf_steal(&e);
}

int
http_start(struct server *srv, struct http_server **h_r, char **err_r)
{
	const char *listen = srv->cfg->http_listen;
	char host[256];
	int port;
	struct sockaddr_storage ss;
	socklen_t sslen;
	if (netaddr_parse_hostport(listen, host, sizeof(host), &port) < 0 ||
	    netaddr_to_sockaddr(host, port, &ss, &sslen) < 0) {
		http_set_err(err_r, "needs a numeric address and a port", listen);
		return -1;
	}
	struct http_server *h = xcalloc(1, sizeof(*h));
	h->srv = srv;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, http_handler, h,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_PER_IP_LIMIT,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_SEC,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
	    MHD_OPTION_END);
	if (h->mhd == NULL) {
		http_set_err(err_r, "cannot listen (address in use?)", listen);
		free(h);
		return -1;
	}
	*h_r = h;
	return 0;
}

void
http_stop(struct http_server **hp)
{
	struct http_server *h = *hp;
	if (h == NULL)
		return;
	MHD_stop_daemon(h->mhd);
	free(h);
	*hp = NULL;
}
