/*
 * hygiene_internal — struct hygiene, shared by the pipeline's modules
 * (hygiene.c, policy.c, the stages).  Stages read only the fields marked
 * "any thread".
 */
#ifndef MAILARK_HYGIENE_HYGIENE_INTERNAL_H
#define MAILARK_HYGIENE_HYGIENE_INTERNAL_H

#include <pthread.h>

#include "hygiene/hygiene.h"

struct server;
struct worker_pool;
struct spam_db;

struct hygiene {
	struct server *srv;            /* loop thread only */
	const struct config *cfg;      /* any thread (read-only) */
	struct worker_pool *pool;      /* the scanning threads ([hygiene] threads) */
	struct dns_sync *dns;          /* any thread */
	struct spam_db *spam;          /* any thread (spam.c locks what it must) */
	void *sender_auth;             /* sender_auth.c's library handles, any thread */
	void *policies;                /* policy.c's snapshot cache, loop thread */
	unsigned scans_running;        /* loop thread */
};

/* One content stage of the table in hygiene.c. */
typedef int hygiene_stage_fn(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);

#endif
