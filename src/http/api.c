/*
 * api.c — /api/v1: routing, authentication, argument checking, the hand-off
 * to the event loop, pagination and JSON errors.
 *
 * Threading: MHD runs one thread per connection.  A request is checked
 * completely on that thread (route, credentials' shape, body, query), then
 * becomes a struct api_job queued on struct api and announced to the loop
 * with event_active() (libevent's locking is on: evthread_use_pthreads()
 * in main).  The loop runs the job (token check, control_dispatch) and
 * marks it done under the job's own mutex; the connection thread waits on
 * the job's condition variable, in short slices so that api_stop() is
 * noticed.  A job is reference-counted (connection thread + loop side), so
 * whichever side finishes last frees it, even when the daemon stops while
 * a password check is still running on the worker pool.
 *
 * Sessions live in memory (struct api_session, under api->mu): a random
 * 32-byte id in the cookie, a random 32-byte CSRF token, 12 h idle expiry.
 */
#include "http/api.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/principal.h"
#include "control/control_handlers.h"
#include "http/api_internal.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "server.h"

#define API_WAIT_SLICE_MS 200

struct api {
	struct server *srv;
	struct event *ev;               /* "jobs are waiting", activated from MHD threads */
	pthread_mutex_t mu;             /* jobs, sessions */
	struct api_job *jobs, **jobs_tail;
	struct api_sessions sessions;
	atomic_int stopping;
};

/* ---- jobs ------------------------------------------------------------------ */

struct api_job *
api_job_new(enum api_job_kind kind, const char *source)
{
	struct api_job *j = xcalloc(1, sizeof(*j));
	atomic_init(&j->refs, 2);
	j->kind = kind;
	j->source = xstrdup(source);
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cond, NULL);
	return j;
}

void
api_job_unref(struct api_job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	free(j->bearer);
	principal_clear(&j->who);
	principal_clear(&j->signed_in);
	free(j->source);
	free(j->cmd);
	json_decref(j->args);
	json_decref(j->result);
	free(j->err);
	free(j->address);
	if (j->password != NULL)
		sodium_memzero(j->password, strlen(j->password));
	free(j->password);
	free(j->totp);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cond);
	free(j);
}

/* Loop side: publish the outcome, wake the connection thread, drop our ref. */
static void
api_job_finish(struct api_job *j, int rc, json_t *result, char *err)
{
	pthread_mutex_lock(&j->mu);
	j->rc = rc;
	j->result = result;
	j->err = err;
	j->done = 1;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->mu);
	api_job_unref(j);
}

static void
api_signin_done(void *arg, int ok, struct principal *p, const char *reason)
{
	struct api_job *j = arg;
	if (ok && p != NULL)
		api_principal_copy(&j->signed_in, p);
	else
		log_info("api_signin_failed", "address=%s source=%s reason=%s",
		    log_str(j->address), log_str(j->source), log_str(reason ? reason : "?"));
	api_job_finish(j, ok ? 0 : API_RC_UNAUTHORIZED, NULL, NULL);
}

/* Runs on the loop thread. */
static void
api_job_run(struct server *srv, struct api_job *j)
{
	if (j->kind == API_JOB_SIGNIN) {
		auth_password_verify_async(srv, j->address, j->password, j->totp, j->source,
		    api_signin_done, j);
		return;
	}
	struct principal tok;
	memset(&tok, 0, sizeof(tok));
	const struct principal *who = &j->who;
	if (j->bearer != NULL) {
		char *err = NULL;
		if (auth_token_verify(srv, j->bearer, j->source, &tok, &err) < 0) {
			log_info("api_token_refused", "source=%s reason=%s", log_str(j->source),
			    log_str(err ? err : "?"));
			free(err);
			api_job_finish(j, API_RC_UNAUTHORIZED, NULL, NULL);
			return;
		}
		who = &tok;
	}
	j->role = who->role;
	if (j->kind == API_JOB_WHOAMI) {
		json_t *me = api_principal_json(who);
		principal_clear(&tok);
		api_job_finish(j, 0, me, NULL);
		return;
	}
	json_t *result = NULL;
	char *err = NULL;
	int rc = control_dispatch(srv, who, j->cmd, j->args, &result, &err);
	principal_clear(&tok);
	api_job_finish(j, rc < 0 ? API_RC_FAILED : 0, result, rc < 0 ? err : NULL);
	if (rc == 0)
		free(err);
}

static void
api_jobs_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	pthread_mutex_lock(&a->mu);
	struct api_job *list = a->jobs;
	a->jobs = NULL;
	a->jobs_tail = &a->jobs;
	pthread_mutex_unlock(&a->mu);
	while (list != NULL) {
		struct api_job *next = list->next;
		list->next = NULL;
		api_job_run(a->srv, list);
		list = next;
	}
}

/*
 * Connection thread: queue j for the loop and wait for its answer.
 * Returns 0 when done (the caller reads j's results), -1 when the daemon
 * is stopping.  Either way the caller still holds its reference.
 */
int
api_job_submit(struct api *a, struct api_job *j)
{
	pthread_mutex_lock(&a->mu);
	if (atomic_load(&a->stopping)) {
		pthread_mutex_unlock(&a->mu);
		api_job_unref(j);           /* the loop side's reference */
		return -1;
	}
	*a->jobs_tail = j;
	a->jobs_tail = &j->next;
	pthread_mutex_unlock(&a->mu);
	event_active(a->ev, EV_READ, 0);
	pthread_mutex_lock(&j->mu);
	while (!j->done && !atomic_load(&a->stopping)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += API_WAIT_SLICE_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		int rc = pthread_cond_timedwait(&j->cond, &j->mu, &ts);
		if (rc != 0 && rc != ETIMEDOUT)
			break;
	}
	int done = j->done;
	pthread_mutex_unlock(&j->mu);
	return done ? 0 : -1;
}

/* ---- life cycle -------------------------------------------------------------- */

struct api *
api_new(struct server *srv)
{
	if (sodium_init() < 0)
		return NULL;
	struct api *a = xcalloc(1, sizeof(*a));
	a->srv = srv;
	pthread_mutex_init(&a->mu, NULL);
	a->jobs_tail = &a->jobs;
	atomic_init(&a->stopping, 0);
	a->ev = event_new(srv->base, -1, 0, api_jobs_cb, a);
	if (a->ev == NULL) {
		pthread_mutex_destroy(&a->mu);
		free(a);
		return NULL;
	}
	return a;
}

void
api_stop(struct api *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	atomic_store(&a->stopping, 1);
	pthread_mutex_unlock(&a->mu);
}

void
api_free(struct api **ap)
{
	struct api *a = *ap;
	if (a == NULL)
		return;
	event_free(a->ev);
	while (a->jobs != NULL) {              /* queued, never run: the loop's refs */
		struct api_job *next = a->jobs->next;
		api_job_unref(a->jobs);
		a->jobs = next;
	}
	api_sessions_clear(&a->sessions);
	pthread_mutex_destroy(&a->mu);
	free(a);
	*ap = NULL;
}

struct server *
api_server(struct api *a)
{
	return a->srv;
}

void
api_lock(struct api *a)
{
	pthread_mutex_lock(&a->mu);
}

void
api_unlock(struct api *a)
{
	pthread_mutex_unlock(&a->mu);
}

struct api_sessions *
api_sessions(struct api *a)
{
	return &a->sessions;
}

size_t
api_unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

/* ---- principals ---------------------------------------------------------------- */

static char *
api_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void
api_principal_copy(struct principal *dst, const struct principal *src)
{
	dst->role = src->role;
	dst->actor = api_dup(src->actor);
	dst->tenant = api_dup(src->tenant);
	dst->user_id = src->user_id;
	dst->source = api_dup(src->source);
}

json_t *
api_principal_json(const struct principal *p)
{
	return json_pack("{s:s?, s:s, s:s?}", "actor", p->actor, "role", role_name(p->role),
	    "tenant", p->tenant);
}

/* ---- requests ------------------------------------------------------------------ */

enum MHD_Result
api_handle(struct api *a, struct MHD_Connection *conn, const char *url, const char *method,
    const char *body, size_t len, int too_big)
{
	struct api_request rq;
	memset(&rq, 0, sizeof(rq));
	rq.api = a;
	rq.conn = conn;
	rq.method = method;
	rq.body = body;
	rq.len = len;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL)
		netaddr_format(ci->client_addr, rq.source, sizeof(rq.source));
	else
		memcpy(rq.source, "unknown", sizeof("unknown"));
	enum MHD_Result r;
	if (api_route_match(&rq, url) < 0)
		r = api_reply_error(&rq, rq.status, rq.code, rq.message);
	else if (too_big)
		r = api_reply_error(&rq, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
		    "request body larger than the route allows (64 KiB; 96 MiB for messages)");
	else
		r = api_serve(&rq);
	json_decref(rq.args);
	free(rq.message_owned);
	return r;
}
