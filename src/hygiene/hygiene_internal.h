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
struct store;
struct worker_pool;
struct spam_db;

/*
 * Where policy.c keeps the tenants' settings (mailark.db through
 * store_hygiene.c; hygiene_policy_store_ops in hygiene_scan.c).  Behind
 * pointers so that code needing only snapshots (policy_get) does not drag
 * the store into every program that links it.  Loop thread.
 */
struct policy_store_ops {
	/* 0, or -1; keys and values malloc'd, freed by the caller */
	int (*list)(struct store *st, const char *tenant, char ***keys_r, char ***values_r,
	    size_t *n_r);
	int (*set)(struct store *st, const char *tenant, const char *key, const char *value,
	    char **err_r);
	int (*unset)(struct store *st, const char *tenant, const char *key, char **err_r);
	/* 1 the tenant exists, 0 not, -1 error */
	int (*tenant_exists)(struct store *st, const char *tenant);
};

extern const struct policy_store_ops hygiene_policy_store_ops;

struct hygiene {
	struct server *srv;            /* loop thread only */
	const struct config *cfg;      /* any thread (read-only) */
	struct worker_pool *pool;      /* the scanning threads ([hygiene] threads) */
	struct dns_sync *dns;          /* any thread */
	struct spam_db *spam;          /* any thread (spam.c locks what it must) */
	void *sender_auth;             /* sender_auth.c's library handles, any thread */
	void *policies;                /* policy.c's snapshot cache, loop thread */
	const struct policy_store_ops *policy_ops;   /* NULL: defaults only */
	unsigned scans_running;        /* loop thread */
};

/* One content stage of the table in hygiene.c. */
typedef int hygiene_stage_fn(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);

#endif
