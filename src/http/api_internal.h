/*
 * api_internal — shared by src/http/api*.c only: the request being
 * served on a connection thread, the job handed to the loop, sessions.
 */
#ifndef MAILARK_HTTP_API_INTERNAL_H
#define MAILARK_HTTP_API_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <jansson.h>

#include "auth/principal.h"
#include "http/api.h"

#define API_RC_FAILED        (-1)   /* control_dispatch refused: err says why */
#define API_RC_UNAUTHORIZED  (-2)   /* bad token or bad password */

enum api_job_kind {
	API_JOB_DISPATCH,
	API_JOB_WHOAMI,
	API_JOB_SIGNIN,
};

struct api_job {
	atomic_int refs;            /* connection thread + loop side */
	enum api_job_kind kind;
	char *bearer;               /* token text, or NULL: `who` is the caller */
	struct principal who;
	char *source;
	char *cmd;
	json_t *args;
	char *address, *password, *totp;     /* sign-in */
	/* written by the loop, read after `done` (under mu) */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int done;
	int rc;
	enum role role;             /* the caller's role once known */
	json_t *result;
	char *err;
	struct principal signed_in;
	struct api_job *next;
};

struct api_session {
	char id[65];                /* hex of 32 random bytes: the cookie */
	char csrf[65];
	struct principal who;
	time_t last_used;
	struct api_session *next;
};

struct api_sessions {
	struct api_session *head;
	size_t count;
};

struct api_request {
	struct api *api;
	struct MHD_Connection *conn;
	const char *method;
	const char *body;
	size_t len;
	char source[64];
	const struct api_route *route;
	json_t *args;               /* path parameters, then body fields and filters */
	unsigned status;            /* an early error: status, code, message */
	const char *code;
	const char *message;
	char *message_owned;
	long limit, offset;         /* pagination */
};

/* api.c */
/* A job with two references (connection thread, loop side). */
struct api_job *api_job_new(enum api_job_kind kind, const char *source);
void api_job_unref(struct api_job *j);
int api_job_submit(struct api *a, struct api_job *j);
struct server *api_server(struct api *a);
void api_lock(struct api *a);
void api_unlock(struct api *a);
struct api_sessions *api_sessions(struct api *a);
void api_principal_copy(struct principal *dst, const struct principal *src);
json_t *api_principal_json(const struct principal *p);

/* api_request.c */
int api_route_match(struct api_request *rq, const char *url);
enum MHD_Result api_serve(struct api_request *rq);
enum MHD_Result api_reply_error(struct api_request *rq, unsigned status, const char *code,
    const char *message);
enum MHD_Result api_reply_json(struct api_request *rq, unsigned status, json_t *body,
    const char *cookie);
/* Is the error text of a refused command a "not found" / "conflict" / ...? */
unsigned api_error_status(const char *err, const char **code_r);

/* api_session.c: callers hold api_lock(). */
#define API_SESSION_IDLE_SECS (12 * 3600)
#define API_SESSIONS_MAX 10000
/* A new session for who (copied); returns it (owned by the table). */
struct api_session *api_session_create(struct api_sessions *s, const struct principal *who);
/* The live session with this id (idle time refreshed), or NULL. */
struct api_session *api_session_find(struct api_sessions *s, const char *id);
void api_session_remove(struct api_sessions *s, const char *id);
void api_sessions_clear(struct api_sessions *s);
int api_token_equal(const char *a, const char *b);

#endif
