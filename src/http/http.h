/*
 * http — the HTTP listener (libmicrohttpd, one thread per connection):
 * GET /metrics (Prometheus text), GET /healthz, and the JSON API under
 * /api/v1 (api.h).  Only this module includes microhttpd.h.
 *
 *   http_start(srv, &srv->http, &err);   // loop thread, after the store
 *   http_stop(&srv->http);               // after the loop has stopped
 */
#ifndef MAILARK_HTTP_HTTP_H
#define MAILARK_HTTP_HTTP_H

struct server;
struct http_server;

int http_start(struct server *srv, struct http_server **h_r, char **err_r);
void http_stop(struct http_server **h);

#endif
