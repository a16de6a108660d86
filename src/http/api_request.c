/*
 * api_request.c — one API request on its connection thread: find the
 * route, authenticate (bearer token or session cookie + CSRF), check the
 * body and the query strictly (malformed JSON, unknown fields, wrong types
 * → 400 before anything runs), hand the command to the loop, and turn the
 * outcome into JSON: a result, a page of a list, or an error
 * {"error":{"code":"not_found","message":"..."}}.
 */
#include "http/api_internal.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define API_PREFIX "/api/v1/"
#define API_MAX_SEGMENTS 12
#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX 1000
#define API_BEARER_MAX 512
#define API_COOKIE "mailark_session"

/* ---- replies -------------------------------------------------------------------- */

enum MHD_Result
api_reply_json(struct api_request *rq, unsigned status, json_t *body, const char *cookie)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL)
		return MHD_NO;
	size_t len = strlen(text);
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, text,
	    MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (cookie != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	log_info("http_api", "method=%s route=%s status=%u source=%s", log_str(rq->method),
	    log_str(rq->route != NULL ? rq->route->path : "-"), status, rq->source);
	enum MHD_Result r = MHD_queue_response(rq->conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

enum MHD_Result
api_reply_error(struct api_request *rq, unsigned status, const char *code, const char *message)
{
	return api_reply_json(rq, status, json_pack("{s:{s:s, s:s}}", "error", "code", code,
	    "message", message), NULL);
}

/* An early error, replied by the caller: keeps status, code, message. */
static int
api_fail(struct api_request *rq, unsigned status, const char *code, const char *fmt,
    const char *arg)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, fmt, arg);
	free(rq->message_owned);
	rq->message_owned = buf_steal(&b);
	rq->status = status;
	rq->code = code;
	rq->message = rq->message_owned;
	return -1;
}

static int
api_has(const char *s, const char *needle)
{
	return strstr(s, needle) != NULL;
}

unsigned
api_error_status(const char *err, const char **code_r)
{
	const char *e = err != NULL ? err : "";
	unsigned st = MHD_HTTP_BAD_REQUEST;
	*code_r = "bad_request";
	if (strncmp(e, "not permitted", 13) == 0) {
		st = MHD_HTTP_FORBIDDEN;
		*code_r = "forbidden";
	} else if (strncmp(e, "not found", 9) == 0 || strncmp(e, "no ", 3) == 0 ||
	    strncmp(e, "unknown command", 15) == 0 || api_has(e, " has no ") ||
	    api_has(e, "belongs to no tenant") || api_has(e, "not found") ||
	    api_has(e, "no such") || api_has(e, "unknown user")) {
		st = MHD_HTTP_NOT_FOUND;
		*code_r = "not_found";
	} else if (api_has(e, "already") || api_has(e, "has domains")) {
		st = MHD_HTTP_CONFLICT;
		*code_r = "conflict";
	} else if (strncmp(e, "database error", 14) == 0) {
		st = MHD_HTTP_INTERNAL_SERVER_ERROR;
		*code_r = "internal";
	}
	return st;
}

/* ---- routing --------------------------------------------------------------------- */

/* %XX decoding (and '+' → ' ' in queries); -1 on a bad escape or a NUL. */
static int
api_pct_decode(const char *s, size_t n, int plus, char **out_r)
{
	char *o = xmalloc(n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2])) {
				free(o);
				return -1;
			}
			char hex[3] = { s[i + 1], s[i + 2], '\0' };
			c = (char)strtol(hex, NULL, 16);
			if (c == '\0') {
				free(o);
				return -1;
			}
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		o[j++] = c;
	}
	o[j] = '\0';
	*out_r = o;
	return 0;
}

/* Splits "/a/b/c" (after the prefix) into segments; -1 if too many or empty. */
static int
api_split(const char *path, const char *seg[], size_t len[], size_t *n_r)
{
	size_t n = 0;
	const char *p = path;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
		if (l == 0 || n == API_MAX_SEGMENTS)
			return -1;
		seg[n] = p;
		len[n++] = l;
		if (e == NULL)
			break;
		p = e + 1;
	}
	*n_r = n;
	return 0;
}

/* 1 when route r's path matches the url segments; fills args with parameters. */
static int
api_path_match(const struct api_route *r, const char *seg[], const size_t len[], size_t n,
    json_t *args, int *bad_r)
{
	const char *rseg[API_MAX_SEGMENTS];
	size_t rlen[API_MAX_SEGMENTS], rn;
	if (api_split(r->path + strlen(API_PREFIX), rseg, rlen, &rn) < 0 || rn != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (rseg[i][0] != '{') {
			if (rlen[i] != len[i] || memcmp(rseg[i], seg[i], len[i]) != 0)
				return 0;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (rseg[i][0] != '{')
			continue;
		char *name = xstrndup(rseg[i] + 1, rlen[i] - 2), *value = NULL;
		if (api_pct_decode(seg[i], len[i], 0, &value) < 0 || value[0] == '\0') {
			free(value);
			*bad_r = 1;
			free(name);
			return 1;
		}
		json_object_set_new(args, name, json_string(value));
		free(name);
		free(value);
	}
	return 1;
}

int
api_route_match(struct api_request *rq, const char *url)
{
	const char *seg[API_MAX_SEGMENTS];
	size_t len[API_MAX_SEGMENTS], n;
	if (strncmp(url, API_PREFIX, strlen(API_PREFIX)) != 0 ||
	    api_split(url + strlen(API_PREFIX), seg, len, &n) < 0)
		return api_fail(rq, MHD_HTTP_NOT_FOUND, "not_found", "no such API route%s", "");
	int path_seen = 0;
	for (const struct api_route *r = api_routes; r->method != NULL; r++) {
		json_t *args = json_object();
		int bad = 0;
		if (!api_path_match(r, seg, len, n, args, &bad)) {
			json_decref(args);
			continue;
		}
		path_seen = 1;
		if (strcmp(r->method, rq->method) != 0 &&
		    !(strcmp(r->method, "GET") == 0 && strcmp(rq->method, "HEAD") == 0)) {
			json_decref(args);
			continue;
		}
		rq->route = r;
		rq->args = args;
		if (bad)
			return api_fail(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
			    "malformed %%-escape in the path%s", "");
		return 0;
	}
	if (path_seen)
		return api_fail(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_request",
		    "method %s not allowed here", rq->method);
	return api_fail(rq, MHD_HTTP_NOT_FOUND, "not_found", "no such API route%s", "");
}

size_t
api_body_limit(const char *method, const char *url)
{
	struct api_request rq;
	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	size_t limit = API_BODY_MAX;
	if (api_route_match(&rq, url) == 0 && (rq.route->flags & API_MESSAGE) != 0)
		limit = API_MESSAGE_BODY_MAX;
	json_decref(rq.args);
	free(rq.message_owned);
	return limit;
}

/* ---- body and query ---------------------------------------------------------------- */

static int
api_field_find(const char *spec, const char *key, struct api_field *f)
{
	while (api_field_next(&spec, f))
		if (strcmp(f->name, key) == 0)
			return 1;
	return 0;
}

static int
api_type_ok(json_t *v, char type)
{
	if (type == 'i')
		return json_is_integer(v);
	if (type == 'b')
		return json_is_boolean(v);
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static int
api_parse_body(struct api_request *rq)
{
	const struct api_route *r = rq->route;
	if (rq->len == 0) {
		if (r->body == NULL)
			return 0;
	}
	json_error_t jerr;
	json_t *obj = rq->len == 0 ? json_object() :
	    json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &jerr);
	if (obj == NULL)
		return api_fail(rq, MHD_HTTP_BAD_REQUEST, "bad_request", "malformed JSON: %s",
		    jerr.text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return api_fail(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "the body must be a JSON object%s", "");
	}
	const char *key;
	json_t *v;
	struct api_field f;
	json_object_foreach(obj, key, v) {
		if (r->body == NULL || !api_field_find(r->body, key, &f)) {
			api_fail(rq, MHD_HTTP_BAD_REQUEST, "bad_request", "unknown field '%s'", key);
			json_decref(obj);
			return -1;
		}
		if (!api_type_ok(v, f.type)) {
			api_fail(rq, MHD_HTTP_BAD_REQUEST, "bad_request", "field '%s' has the wrong type",
			    key);
			json_decref(obj);
			return -1;
		}
		json_object_set(rq->args, key, v);
	}
	json_decref(obj);
	const char *spec = r->body;
	while (spec != NULL && api_field_next(&spec, &f))
		if (f.required && json_object_get(rq->args, f.name) == NULL)
			return api_fail(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
			    "missing field '%s'", f.name);
	return 0;
}

/* A decimal in [lo, hi], or -1. */
static long
api_parse_long(const char *s, long lo, long hi)
{
	char *end;
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	long v = strtol(s, &end, 10);
	return *end == '\0' && v >= lo && v <= hi ? v : -1;
}

static int
api_query_one(struct api_request *rq, const char *key, const char *value)
{
	const struct api_route *r = rq->route;
	struct api_field f;
	int list = (r->flags & API_LIST) != 0;
	if (list && strcmp(key, "limit") == 0) {
		rq->limit = api_parse_long(value, 1, API_LIMIT_MAX);
		return rq->limit < 0 ? api_fail(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "limit must be 1..1000%s", "") : 0;
	}
	if (list && strcmp(key, "cursor") == 0) {
		rq->offset = api_parse_long(value, 0, 1L << 40);
		return rq->offset < 0 ? api_fail(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "invalid cursor%s", "") : 0;
	}
	if (r->query == NULL || !api_field_find(r->query, key, &f))
		return api_fail(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "unknown query parameter '%s'", key);
	if (value != NULL && value[0] != '\0')
		json_object_set_new(rq->args, key, json_string(value));
	return 0;
}

struct api_query_ctx {
	struct api_request *rq;
	int failed;
};

static enum MHD_Result
api_query_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct api_query_ctx *q = cls;
	char *k = NULL, *v = NULL;
	if (api_pct_decode(key, strlen(key), 1, &k) < 0 ||
	    (value != NULL && api_pct_decode(value, strlen(value), 1, &v) < 0)) {
		free(k);
		q->failed = 1;
		api_fail(q->rq, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "malformed %%-escape in the query%s", "");
		return MHD_NO;
	}
	if (api_query_one(q->rq, k, v) < 0)
		q->failed = 1;
	free(k);
	free(v);
	return q->failed ? MHD_NO : MHD_YES;
}

static int
api_parse_query(struct api_request *rq)
{
	struct api_query_ctx q = { rq, 0 };
	rq->limit = API_LIMIT_DEFAULT;
	rq->offset = 0;
	MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, api_query_cb, &q);
	return q.failed ? -1 : 0;
}

/* ---- credentials ----------------------------------------------------------------- */

static int
api_is_read(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/*
 * Bearer token → j->bearer (checked later on the loop); session cookie →
 * a copy of its principal in j->who, after the CSRF check for writes.
 * *sid_r: the session id when the cookie was used.
 */
static int
api_authenticate(struct api_request *rq, struct api_job *j, char sid_r[65])
{
	struct MHD_Connection *c = rq->conn;
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, API_COOKIE);
	sid_r[0] = '\0';
	if (auth != NULL) {
		if (strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0' ||
		    strlen(auth + 7) > API_BEARER_MAX)
			return api_fail(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
			    "expected 'Authorization: Bearer <token>'%s", "");
		j->bearer = xstrdup(auth + 7);
		return 0;
	}
	if (cookie == NULL || strlen(cookie) != 64)
		return api_fail(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		    "credentials required (bearer token or session)%s", "");
	const char *csrf = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token");
	int ok = 0, csrf_ok = 0;
	api_lock(rq->api);
	struct api_session *s = api_session_find(api_sessions(rq->api), cookie);
	if (s != NULL) {
		ok = 1;
		csrf_ok = api_is_read(rq->method) || (csrf != NULL && api_token_equal(s->csrf, csrf));
		api_principal_copy(&j->who, &s->who);
		memcpy(sid_r, s->id, 65);
	}
	api_unlock(rq->api);
	if (!ok)
		return api_fail(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		    "session expired or unknown%s", "");
	if (!csrf_ok)
		return api_fail(rq, MHD_HTTP_FORBIDDEN, "forbidden",
		    "missing or wrong X-CSRF-Token%s", "");
	free(j->who.source);
	j->who.source = xstrdup(rq->source);
	return 0;
}

/* ---- outcomes ---------------------------------------------------------------------- */

static json_t *
api_page(struct api_request *rq, json_t *list)
{
	size_t total = json_array_size(list);
	size_t start = (size_t)rq->offset < total ? (size_t)rq->offset : total;
	size_t end = start + (size_t)rq->limit < total ? start + (size_t)rq->limit : total;
	json_t *items = json_array();
	for (size_t i = start; i < end; i++)
		json_array_append(items, json_array_get(list, i));
	json_t *next = json_null();
	if (end < total) {
		char b[32];
		snprintf(b, sizeof(b), "%zu", end);
		json_decref(next);
		next = json_string(b);
	}
	return json_pack("{s:o, s:o}", "items", items, "next_cursor", next);
}

static enum MHD_Result
api_reply_failure(struct api_request *rq, struct api_job *j)
{
	if (j->rc == API_RC_UNAUTHORIZED)
		return api_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		    "invalid credentials");
	const char *code;
	unsigned st = api_error_status(j->err, &code);
	const char *msg = j->err != NULL ? j->err : "refused";
	int op = j->role == ROLE_OPERATOR;
	if (st == MHD_HTTP_NOT_FOUND && !op)
		msg = "not found";
	else if (st == MHD_HTTP_CONFLICT && !op)
		msg = "already exists";
	else if (st == MHD_HTTP_FORBIDDEN)
		msg = "not permitted";
	else if (st == MHD_HTTP_INTERNAL_SERVER_ERROR)
		msg = "internal error";
	return api_reply_error(rq, st, code, msg);
}

/* A file the command named (an export's zip), streamed from its descriptor. */
static enum MHD_Result
api_reply_file(struct api_request *rq, json_t *res)
{
	const char *path = json_string_value(json_object_get(res, "path"));
	const char *type = json_string_value(json_object_get(res, "content_type"));
	int fd = path != NULL ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return api_reply_error(rq, MHD_HTTP_NOT_FOUND, "not_found", "not found");
	}
	struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (resp == NULL) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    type ? type : "application/octet-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, "attachment");
	log_info("http_api", "method=%s route=%s status=200 source=%s bytes=%lld",
	    log_str(rq->method), log_str(rq->route->path), rq->source, (long long)st.st_size);
	enum MHD_Result r = MHD_queue_response(rq->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result
api_reply_result(struct api_request *rq, struct api_job *j)
{
	if (j->rc != 0)
		return api_reply_failure(rq, j);
	if (rq->route->flags & API_FILE)
		return api_reply_file(rq, j->result);
	json_t *res = j->result != NULL ? json_incref(j->result) : json_object();
	if ((rq->route->flags & API_LIST) && json_is_array(res)) {
		json_t *page = api_page(rq, res);
		json_decref(res);
		res = page;
	}
	unsigned st = (rq->route->flags & API_CREATED) ? MHD_HTTP_CREATED : MHD_HTTP_OK;
	return api_reply_json(rq, st, res, NULL);
}

static enum MHD_Result
api_run(struct api_request *rq, struct api_job *j)
{
	if (api_job_submit(rq->api, j) < 0) {
		api_job_unref(j);
		return api_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "internal",
		    "shutting down");
	}
	enum MHD_Result r = api_reply_result(rq, j);
	api_job_unref(j);
	return r;
}

/* ---- sessions ---------------------------------------------------------------------- */

static enum MHD_Result
api_signin(struct api_request *rq)
{
	if (api_parse_body(rq) < 0)
		return api_reply_error(rq, rq->status, rq->code, rq->message);
	struct api_job *j = api_job_new(API_JOB_SIGNIN, rq->source);
	j->address = xstrdup(json_string_value(json_object_get(rq->args, "address")));
	j->password = xstrdup(json_string_value(json_object_get(rq->args, "password")));
	const char *totp = json_string_value(json_object_get(rq->args, "totp"));
	j->totp = totp != NULL ? xstrdup(totp) : NULL;
	if (api_job_submit(rq->api, j) < 0) {
		api_job_unref(j);
		return api_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "internal",
		    "shutting down");
	}
	if (j->rc != 0 || j->signed_in.role == ROLE_NONE) {
		api_job_unref(j);
		return api_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		    "invalid credentials");
	}
	char cookie[160], csrf[65];
	api_lock(rq->api);
	struct api_session *s = api_session_create(api_sessions(rq->api), &j->signed_in);
	snprintf(cookie, sizeof(cookie), API_COOKIE "=%s; HttpOnly; Secure; SameSite=Strict; Path=/",
	    s->id);
	memcpy(csrf, s->csrf, sizeof(csrf));
	api_unlock(rq->api);
	json_t *body = api_principal_json(&j->signed_in);
	json_object_set_new(body, "csrf_token", json_string(csrf));
	json_object_set_new(body, "idle_timeout", json_integer(API_SESSION_IDLE_SECS));
	api_job_unref(j);
	return api_reply_json(rq, MHD_HTTP_CREATED, body, cookie);
}

static enum MHD_Result
api_session_route(struct api_request *rq, struct api_job *j, const char *sid)
{
	if (rq->route->special == API_SESSION_GET && j->bearer != NULL) {
		j->kind = API_JOB_WHOAMI;
		return api_run(rq, j);
	}
	enum MHD_Result r;
	if (sid[0] == '\0') {
		r = api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "no session: sign-out applies to cookie sessions");
	} else if (rq->route->special == API_SESSION_GET) {
		r = api_reply_json(rq, MHD_HTTP_OK, api_principal_json(&j->who), NULL);
	} else {
		api_lock(rq->api);
		api_session_remove(api_sessions(rq->api), sid);
		api_unlock(rq->api);
		r = api_reply_json(rq, MHD_HTTP_OK, json_object(),
		    API_COOKIE "=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0");
	}
	api_job_unref(j);      /* never queued: both references are ours */
	api_job_unref(j);
	return r;
}

enum MHD_Result
api_serve(struct api_request *rq)
{
	const struct api_route *r = rq->route;
	if (r->special == API_OPENAPI)
		return api_reply_json(rq, MHD_HTTP_OK, api_openapi(), NULL);
	if (r->special == API_SESSION_NEW)
		return api_signin(rq);
	struct api_job *j = api_job_new(API_JOB_DISPATCH, rq->source);
	char sid[65];
	if (api_authenticate(rq, j, sid) < 0 || api_parse_body(rq) < 0 ||
	    api_parse_query(rq) < 0) {
		api_job_unref(j);
		api_job_unref(j);
		return api_reply_error(rq, rq->status, rq->code, rq->message);
	}
	if (r->special == API_SESSION_GET || r->special == API_SESSION_END)
		return api_session_route(rq, j, sid);
	if (r->flags & API_PASS_LIMIT)
		json_object_set_new(rq->args, "limit", json_integer(rq->offset + rq->limit + 1));
	j->cmd = xstrdup(r->cmd);
	j->args = json_incref(rq->args);
	return api_run(rq, j);
}
