/*
 * auth.c — passwords (Argon2id, libsodium's crypto_pwhash_str with the
 * interactive limits), the lockout counters and password sign-in.
 *
 * Password sign-in (auth_password_verify_async):
 *
 *   loop thread:  look up the user (primary address or alias), its hash and
 *                 TOTP secret; note whether the account or source is locked
 *   worker:       crypto_pwhash_str_verify — against a dummy hash when the
 *                 user is unknown or has no password, so that every answer
 *                 takes about as long
 *   loop thread:  decide (locked / unknown / disabled / bad password / bad
 *                 TOTP / ok), count the failure or clear the account's
 *                 counter, log, audit, call back
 *
 * Lockout: 5 failures per account or 20 per source address within 15
 * minutes lock that account or source for 15 minutes.  A locked attempt is
 * refused like a bad password (the password is not even considered) and is
 * not counted again, so a lock does not extend itself.
 */
#include "auth/auth.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "directory/directory.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "lib/worker.h"
#include "server.h"
#include "store/store.h"

static pthread_once_t auth_once = PTHREAD_ONCE_INIT;
static int auth_sodium_rc;

static void
auth_init_once(void)
{
	auth_sodium_rc = sodium_init() < 0 ? -1 : 0;
}

int
auth_init(void)
{
	if (pthread_once(&auth_once, auth_init_once) != 0)
		return -1;
	return auth_sodium_rc;
}

/* ---- passwords ----------------------------------------------------------- */

int
auth_password_check(const char *password, char **err_r)
{
	size_t n = password != NULL ? strlen(password) : 0;
	if (n >= AUTH_PASSWORD_MIN && n <= AUTH_PASSWORD_MAX)
		return 0;
	struct buf e = BUF_INIT;
	buf_appendf(&e, "the password must have %d to %d characters", AUTH_PASSWORD_MIN,
	    AUTH_PASSWORD_MAX);
	*err_r = buf_steal(&e);
	return -1;
}

int
auth_password_hash(const char *password, char **hash_r)
{
	char out[crypto_pwhash_STRBYTES];
	if (auth_init() < 0 || crypto_pwhash_str(out, password, strlen(password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return -1;
	*hash_r = xstrdup(out);
	return 0;
}

int
auth_password_matches(const char *hash, const char *password)
{
	if (hash == NULL || password == NULL || auth_init() < 0)
		return 0;
	return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

/* A hash of nothing anyone knows, to spend the same time on unknown users. */
static pthread_once_t auth_dummy_once = PTHREAD_ONCE_INIT;
static char auth_dummy_hash[crypto_pwhash_STRBYTES];

static void
auth_dummy_init(void)
{
	unsigned char r[32];
	randombytes_buf(r, sizeof(r));
	if (crypto_pwhash_str(auth_dummy_hash, (const char *)r, sizeof(r),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		auth_dummy_hash[0] = '\0';
}

/* ---- lockout counters ---------------------------------------------------- */

int
auth_limit_locked(struct store *st, const char *key, time_t now)
{
	struct store_auth_failure f;
	int found = store_auth_failure_get(st, key, &f);
	if (found < 0)
		return -1;
	return found == 1 && f.locked_until > now;
}

int
auth_limit_fail(struct store *st, const char *key, long long max, time_t now)
{
	struct store_auth_failure f;
	int found = store_auth_failure_get(st, key, &f);
	if (found < 0)
		return -1;
	if (found == 0 || f.window_start + AUTH_LOCK_WINDOW <= now ||
	    (f.locked_until != 0 && f.locked_until <= now)) {
		f.count = 0;
		f.window_start = now;
		f.locked_until = 0;
	}
	f.count++;
	if (f.count >= max && f.locked_until == 0)
		f.locked_until = now + AUTH_LOCK_WINDOW;
	if (store_auth_failure_put(st, key, &f) < 0)
		return -1;
	return f.locked_until > now;
}

void
auth_limit_clear(struct store *st, const char *key)
{
	if (store_auth_failure_clear(st, key) < 0)
		log_warn("auth_limit_clear", "key=%s error=database", log_str(key));
}

/* ---- password sign-in ---------------------------------------------------- */

struct auth_pw_job {
	struct server *srv;
	char *address;              /* as typed, lower-cased */
	char *password;
	char *totp;
	char *source;
	auth_done_cb *cb;
	void *arg;
	int found;                  /* the user exists */
	struct store_user user;
	struct store_user_secrets sec;
	const char *locked;         /* reason when the account or source is locked */
	int matched;                /* set by the worker (or the directory bind) */
	int directory;              /* a directory user: checked by LDAP bind */
	const char *dir_reason;     /* why the bind failed, when it did */
};

static char *
auth_key(const char *kind, const char *v)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s:%s", kind, v);
	return buf_steal(&b);
}

static void
auth_pw_work(void *arg)
{
	struct auth_pw_job *j = arg;
	const char *hash = j->sec.password_hash;
	if (hash == NULL || j->locked != NULL) {
		(void)pthread_once(&auth_dummy_once, auth_dummy_init);
		hash = auth_dummy_hash;
	}
	int m = hash[0] != '\0' && auth_password_matches(hash, j->password);
	j->matched = m && j->sec.password_hash != NULL && j->locked == NULL;
}

/* Why the attempt fails, or NULL when it succeeds. */
static const char *
auth_pw_reason(struct auth_pw_job *j, time_t now)
{
	if (j->locked != NULL)
		return j->locked;
	if (!j->found)
		return "unknown user";
	if (strcmp(j->user.status, "active") != 0)
		return "account disabled";
	if (j->directory && !j->matched)
		return j->dir_reason != NULL ? j->dir_reason : "directory bind refused";
	if (!j->directory && j->sec.password_hash == NULL)
		return "no local password";
	if (!j->matched)
		return "bad password";
	if (j->sec.totp_secret != NULL &&
	    !auth_totp_check(j->sec.totp_secret, j->sec.totp_len, j->totp, now))
		return j->totp == NULL ? "TOTP code missing" : "bad TOTP code";
	return NULL;
}

/* Counts the failure; returns the reason, amended when it causes a lock. */
static const char *
auth_pw_count(struct auth_pw_job *j, const char *reason, time_t now)
{
	char *acct = auth_key("acct", j->address), *ip = auth_key("ip", j->source);
	int a = auth_limit_fail(j->srv->store, acct, AUTH_ACCOUNT_MAX_FAILURES, now);
	int i = auth_limit_fail(j->srv->store, ip, AUTH_SOURCE_MAX_FAILURES, now);
	free(acct);
	free(ip);
	if (a == 1)
		return i == 1 ? "failed; account and source now locked" : "failed; account now locked";
	return i == 1 ? "failed; source now locked" : reason;
}

static int
auth_pw_principal(struct auth_pw_job *j, struct principal *p)
{
	enum role role;
	if (role_parse(j->user.role, &role) < 0)
		return -1;
	p->role = role;
	p->actor = xstrdup(j->user.address);
	p->tenant = j->user.tenant ? xstrdup(j->user.tenant) : NULL;
	p->user_id = j->user.id;
	p->source = xstrdup(j->source);
	return 0;
}

static void
auth_pw_finish(struct auth_pw_job *j, const char *reason, const char *outcome)
{
	struct principal who = { ROLE_NONE, j->address, j->found ? j->user.tenant : NULL,
	    j->found ? j->user.id : 0, j->source };
	struct principal p = { 0 };
	int ok = reason == NULL && auth_pw_principal(j, &p) == 0;
	log_info("auth_password", "user=%s source=%s outcome=%s reason=%s", log_str(j->address),
	    log_str(j->source), outcome, log_str(reason ? reason : "-"));
	(void)audit_record(j->srv, ok ? &p : &who, "auth.password", j->address, outcome, reason);
	j->cb(j->arg, ok, ok ? &p : NULL, reason ? reason : "ok");
	principal_clear(&p);
}

static void
auth_pw_job_free(struct auth_pw_job *j)
{
	sodium_memzero(j->password, strlen(j->password));
	free(j->password);
	free(j->totp);
	free(j->address);
	free(j->source);
	if (j->found)
		store_user_clear(&j->user);
	store_user_secrets_clear(&j->sec);
	free(j);
}

static void
auth_pw_done(void *arg)
{
	struct auth_pw_job *j = arg;
	time_t now = time(NULL);
	const char *reason = auth_pw_reason(j, now), *outcome = "ok";
	if (j->locked != NULL) {
		outcome = "locked";
	} else if (reason != NULL) {
		outcome = "failed";
		reason = auth_pw_count(j, reason, now);
	} else {
		char *acct = auth_key("acct", j->address);
		auth_limit_clear(j->srv->store, acct);
		free(acct);
	}
	auth_pw_finish(j, reason, outcome);
	auth_pw_job_free(j);
}

/* Loop thread: everything the worker and the decision need from the store. */
static void
auth_pw_prepare(struct auth_pw_job *j, time_t now)
{
	struct store *st = j->srv->store;
	char *acct = auth_key("acct", j->address), *ip = auth_key("ip", j->source);
	if (auth_limit_locked(st, ip, now) != 0)
		j->locked = "source locked";
	else if (auth_limit_locked(st, acct, now) != 0)
		j->locked = "account locked";
	free(acct);
	free(ip);
	j->found = store_user_get(st, j->address, &j->user) == 1;
	if (j->found && store_user_secrets(st, j->user.id, &j->sec) != 1)
		memset(&j->sec, 0, sizeof(j->sec));
	if (j->found && strcmp(j->user.address, j->address) != 0) {
		/* signed in with an alias: the account is the primary address */
		free(j->address);
		j->address = xstrdup(j->user.address);
	}
}

static void
auth_pw_directory_done(void *arg, enum directory_auth_result r, const char *reason)
{
	struct auth_pw_job *j = arg;
	j->matched = r == DIRECTORY_AUTH_OK;
	j->dir_reason = r == DIRECTORY_AUTH_ERROR ? "directory unavailable" :
	    "bad password (directory)";
	(void)reason;
	auth_pw_done(j);
}

/*
 * Directory users (source 'directory') sign in by LDAP bind, through the
 * directory module, unless the attempt is already refused for a lock or a
 * disabled account.
 */
static int
auth_pw_use_directory(struct auth_pw_job *j)
{
	return j->found && j->locked == NULL && j->user.tenant != NULL &&
	    strcmp(j->user.source, "directory") == 0 && strcmp(j->user.status, "active") == 0;
}

void
auth_password_verify_async(struct server *srv, const char *address, const char *password,
    const char *totp_code, const char *source, auth_done_cb *cb, void *arg)
{
	struct auth_pw_job *j = xcalloc(1, sizeof(*j));
	j->srv = srv;
	j->address = str_lower(xstrdup(address ? address : ""));
	j->password = xstrdup(password ? password : "");
	j->totp = totp_code ? xstrdup(totp_code) : NULL;
	j->source = xstrdup(source ? source : "-");
	j->cb = cb;
	j->arg = arg;
	auth_pw_prepare(j, time(NULL));
	if (auth_pw_use_directory(j)) {
		j->directory = 1;
		directory_authenticate_async(srv, j->user.tenant, j->address, j->password,
		    auth_pw_directory_done, j);
	} else if (srv->workers != NULL) {
		worker_submit(srv->workers, auth_pw_work, auth_pw_done, j);
	} else {
		auth_pw_work(j);
		auth_pw_done(j);
	}
}
