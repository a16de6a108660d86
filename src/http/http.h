/*
 * http — the HTTP listener (libmicrohttpd, its own thread): GET /metrics
 * (Prometheus text) and GET /healthz now; the API later.  Only this module
 * includes microhttpd.h.
 */
#ifndef MAILARK_HTTP_HTTP_H
#define MAILARK_HTTP_HTTP_H

struct server;
struct http_server;

int http_start(struct server *srv, struct http_server **h_r, char **err_r);
void http_stop(struct http_server **h);

#endif
