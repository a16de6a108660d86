/*
 * directory — per-tenant directory sync from LDAP / Active Directory, and
 * sign-in by LDAP bind for users whose source is 'directory'.
 *
 * Settings live in the store (store_directory_*), the bind password sealed
 * with a key derived from keys/master.key (directory_secret.h).  A sync reads the whole
 * directory (libldap, simple bind, paged searches) on the worker pool, then
 * applies it on the loop thread in one store transaction; one sync per
 * tenant runs at a time.  Each tenant with an interval gets a libevent timer.
 *
 *   directory_start(srv);                       // loop thread, after the store
 *   directory_sync_start(srv, "acme", &job, &err);
 *   directory_job_result(srv, "acme", job, &result);   // 1 when finished
 *   directory_authenticate_async(srv, "acme", addr, password, cb, arg);
 *
 * Every function runs on the loop thread.  Results handed out are new
 * references / allocations the caller owns; passwords are copied, used for
 * one bind and wiped, and never logged.
 */
#ifndef MAILARK_DIRECTORY_DIRECTORY_H
#define MAILARK_DIRECTORY_DIRECTORY_H

#include <jansson.h>
#include <stdint.h>

struct server;
struct store_directory;

#define DIRECTORY_DEFAULT_USER_FILTER "(objectClass=user)"
#define DIRECTORY_DEFAULT_GROUP_FILTER "(objectClass=group)"

/* Loads every tenant's settings and arms the periodic timers; idempotent. */
int directory_start(struct server *srv);
/* Disarms the timers and forgets finished jobs (running ones finish first). */
void directory_stop(struct server *srv);

/* Is the URL an ldap:// or ldaps:// URL, are the filters well formed?  0 / -1 + *err_r. */
int directory_settings_check(const struct store_directory *d, char **err_r);
/*
 * Stores the tenant's settings with the bind password sealed under the
 * node's master key (d->bind_password is plain text, or NULL to keep the
 * stored one; a legacy plain-text one is sealed now).  0, or -1 with *err_r
 * (keys/master.key missing or not 32 bytes, no password yet, database).
 */
int directory_settings_save(struct server *srv, const struct store_directory *d, char **err_r);
/* The tenant's settings changed: re-arm (or disarm) its timer. */
void directory_settings_changed(struct server *srv, const char *tenant);

/*
 * Starts a sync of the tenant, or joins the one running: 0 with *job_r, or
 * -1 with *err_r (no directory configured, database error).
 */
int directory_sync_start(struct server *srv, const char *tenant, uint64_t *job_r,
    char **err_r);
/* A job of the tenant: 1 finished (*result_r, a new reference), 0 running, -1 unknown. */
int directory_job_result(struct server *srv, const char *tenant, uint64_t job,
    json_t **result_r);
/* {"running": job id or null, "last_sync": t, "last_result": {...}} of a tenant. */
json_t *directory_status(struct server *srv, const char *tenant);

enum directory_auth_result {
	DIRECTORY_AUTH_OK,
	DIRECTORY_AUTH_DENIED,    /* unknown address, wrong password, disabled account */
	DIRECTORY_AUTH_ERROR,     /* no directory, unreachable, service bind refused */
};

typedef void directory_auth_cb(void *arg, enum directory_auth_result r, const char *reason);
/*
 * Signs in by binding as the user's DN, found by mail or proxyAddresses with
 * the tenant's service account.  cb runs later on the loop thread (never
 * from within this call); reason is for the log, never shown to the client.
 */
void directory_authenticate_async(struct server *srv, const char *tenant, const char *address,
    const char *password, directory_auth_cb *cb, void *arg);
/* The same, as a job whose result directory_job_result() returns (for the CLI). */
int directory_login_start(struct server *srv, const char *tenant, const char *address,
    const char *password, uint64_t *job_r, char **err_r);

#endif
