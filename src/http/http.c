/*
 * http.c — libmicrohttpd, one thread per connection (at most
 * HTTP_CONNECTION_LIMIT).  /metrics and /healthz only read atomics
 * (struct metrics), so they need no lock with the loop thread; they refuse
 * bodies and any method but GET/HEAD.  /api/ requests collect their body
 * (at most API_BODY_MAX; more is read and dropped, then answered 413) and
 * go to api.c, which blocks this connection's thread until the event loop
 * has run the command.
 */
#include "http/http.h"
#include "http/api.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "metrics/metrics.h"
#include "archive/archive.h"
#include "server.h"

#define HTTP_CONNECTION_LIMIT 64
#define HTTP_PER_IP_LIMIT 16
#define HTTP_TIMEOUT_SEC 15

struct http_server {
	struct server *srv;
	struct MHD_Daemon *mhd;
	struct api *api;
};

/* Per API request: the body as it arrives. */
struct http_request {
	struct buf body;
	size_t limit;                /* api_body_limit() of the route */
	int too_big;
};

static int
http_is_api(const char *url)
{
	return strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0;
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_server *h = cls;
	struct http_request *rq = *con_cls;
	if (rq != NULL && (void *)rq != (void *)h) {
		buf_free(&rq->body);
		free(rq);
	}
	*con_cls = NULL;
}

static enum MHD_Result
http_api(struct http_server *h, struct MHD_Connection *conn, const char *url,
    const char *method, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_request *rq = *con_cls;
	if (*upload_data_size != 0) {
		if (rq->body.len + *upload_data_size > rq->limit)
			rq->too_big = 1;
		else
			buf_append(&rq->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return api_handle(h->api, conn, url, method, rq->body.data ? rq->body.data : "",
	    rq->body.len, rq->too_big);
}

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
		if (http_is_api(url) && h->api != NULL) {
			struct http_request *rq = xcalloc(1, sizeof(*rq));
			rq->limit = api_body_limit(method, url);
			*con_cls = rq;
		} else
			*con_cls = h;
		return MHD_YES;
	}
	if (*con_cls != h)
		return http_api(h, conn, url, method, upload_data, upload_data_size, con_cls);
	if (*upload_data_size != 0)
		return MHD_NO;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return http_reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, "/metrics") == 0) {
		struct buf b = BUF_INIT;
		if (h->srv->archive != NULL)
			atomic_store(&h->srv->metrics.archive_index_lag,
			    archive_index_lag(h->srv->archive));
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
	h->api = api_new(srv);
	if (h->api == NULL) {
		http_set_err(err_r, "cannot set up the API", listen);
		free(h);
		return -1;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	    MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, http_handler, h,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_PER_IP_LIMIT,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_SEC,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed, h,
	    MHD_OPTION_UNESCAPE_CALLBACK, api_unescape_none, NULL,
	    MHD_OPTION_END);
	if (h->mhd == NULL) {
		http_set_err(err_r, "cannot listen (address in use?)", listen);
		api_free(&h->api);
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
	api_stop(h->api);           /* waiting connection threads give up ... */
	MHD_stop_daemon(h->mhd);    /* ... so that this can join them */
	api_free(&h->api);
	free(h);
	*hp = NULL;
}
