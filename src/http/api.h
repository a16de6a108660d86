/*
 * api — the JSON API under /api/v1 (for src/http only).
 *
 *   struct api *a = api_new(srv);             // loop thread, at start-up
 *   api_handle(a, conn, url, method, body, len, too_big);   // MHD thread
 *   api_stop(a);  MHD_stop_daemon(...);  api_free(&a);      // loop thread
 *
 * Every route maps to one control command run by control_dispatch() on
 * the event-loop thread: the MHD connection thread (one per connection)
 * queues the request for the loop and blocks on a condition variable
 * until the loop has answered.  api_stop() wakes every waiting thread
 * (they answer 503) so that MHD_stop_daemon() can join them after the
 * loop has stopped.  Routes, their arguments and the OpenAPI document all
 * come from one table in api_routes.c.
 */
#ifndef MAILARK_HTTP_API_H
#define MAILARK_HTTP_API_H

#include <microhttpd.h>
#include <stddef.h>

#include <jansson.h>

struct server;
struct api;

#define API_BODY_MAX (64 * 1024)
/* Routes that carry whole messages (API_MESSAGE) take bodies up to this. */
#define API_MESSAGE_BODY_MAX (96 * 1024 * 1024)

struct api *api_new(struct server *srv);
/* The largest body the route of (method, url) takes: API_BODY_MAX, or
 * API_MESSAGE_BODY_MAX for API_MESSAGE routes.  Any thread. */
size_t api_body_limit(const char *method, const char *url);
enum MHD_Result api_handle(struct api *a, struct MHD_Connection *conn, const char *url,
    const char *method, const char *body, size_t len, int too_big);
void api_stop(struct api *a);
void api_free(struct api **a);
/* MHD_OPTION_UNESCAPE_CALLBACK: keeps URLs raw; the API decodes each path segment. */
size_t api_unescape_none(void *cls, struct MHD_Connection *c, char *s);

/* ---- the route table (api_routes.c) ---------------------------------------- */

enum api_special {
	API_DISPATCH = 0,       /* a control command */
	API_SESSION_NEW,
	API_SESSION_GET,
	API_SESSION_END,
	API_OPENAPI,
};

#define API_LIST     0x1    /* the result is an array: paginated */
#define API_CREATED  0x2    /* answers 201 */
#define API_PUBLIC   0x4    /* no credentials needed */
#define API_PASS_LIMIT 0x8  /* the command takes args.limit: ask for what the page needs */
#define API_FILE     0x10   /* the result names a file {path, content_type}: sent as the body */
#define API_MESSAGE  0x20   /* the body carries whole messages: up to API_MESSAGE_BODY_MAX */

struct api_route {
	const char *method;
	const char *path;       /* "/api/v1/tenants/{tenant}/domains/{domain}" */
	const char *cmd;        /* control command, for API_DISPATCH */
	enum api_special special;
	unsigned flags;
	/* Body fields / query filters: "name!,region,expires:i" ('!' required;
	 * ':s' string (default), ':i' integer, ':b' boolean).  Path
	 * parameters become string arguments of the same name. */
	const char *body;
	const char *query;
	const char *summary;
};

extern const struct api_route api_routes[];   /* ended by method NULL */

/* The OpenAPI 3.0 document describing api_routes[] (new reference). */
json_t *api_openapi(void);

/* Walks a field spec: 1 with the next field, 0 at the end. */
struct api_field {
	char name[48];
	char type;              /* 's', 'i' or 'b' */
	int required;
};
int api_field_next(const char **spec, struct api_field *f);

#endif
