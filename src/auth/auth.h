/*
 * auth — sign-in: local passwords (Argon2id via libsodium), API tokens
 * (random, shown once, stored as a SHA-256 hash, revocable, with expiry),
 * TOTP second factor (RFC 6238), lockout and rate limits per account and
 * per source address.  Every sign-in, good or bad, is recorded through
 * audit_record().  Loop-thread API; Argon2id verification is slow (~50 ms)
 * and runs on the worker pool in the _async variants.
 *
 * On success the functions fill *p_r (principal_clear() frees it).
 * Failures return -1 with a reason fit for the log; callers show the
 * client only a generic "invalid credentials" (no user enumeration).
 * A locked account or source fails exactly like bad credentials; only the
 * log and the audit trail say "locked".
 *
 * The auth_*_st functions work on a bare store (no daemon, no audit, no
 * rate limits): `mailark init` and the unit tests use them.
 */
#ifndef MAILARK_AUTH_AUTH_H
#define MAILARK_AUTH_AUTH_H

#include <stddef.h>
#include <time.h>

#include "auth/principal.h"

struct server;
struct store;

#define AUTH_PASSWORD_MIN 10
#define AUTH_PASSWORD_MAX 1024
#define AUTH_TOKEN_ID_LEN 12
#define AUTH_LOCK_WINDOW (15 * 60)      /* failures counted within, and lock length */
#define AUTH_ACCOUNT_MAX_FAILURES 5
#define AUTH_SOURCE_MAX_FAILURES 20
#define AUTH_TOTP_SECRET_LEN 20

/* Initialises libsodium once (thread-safe); the functions below call it. */
int auth_init(void);

/* "mk_<id>_<secret>": returns the whole token text once (caller frees). */
int auth_token_create(struct server *srv, long long user_id, const char *name,
    time_t expires, char **token_r, char **err_r);
/* Bearer token → principal.  source: client address for rate limits/audit. */
int auth_token_verify(struct server *srv, const char *token, const char *source,
    struct principal *p_r, char **err_r);

/*
 * ok: 1 signed in, 0 refused.  p (ok only) is valid during the call; to
 * keep it, move it out (*mine = *p; memset(p, 0, sizeof(*p))).  reason is
 * for the log ("bad password", "account locked"), never for the client.
 */
typedef void auth_done_cb(void *arg, int ok, struct principal *p, const char *reason);
/* Password (and TOTP code when the user has a second factor; may be NULL). */
void auth_password_verify_async(struct server *srv, const char *address, const char *password,
    const char *totp_code, const char *source, auth_done_cb *cb, void *arg);

/* Argon2id hash in libsodium's string format (caller frees). */
int auth_password_hash(const char *password, char **hash_r);
/* 1 when password matches hash (slow: Argon2id), else 0. */
int auth_password_matches(const char *hash, const char *password);
/* 0 when the password is acceptable (length 10..1024), else -1 with *err_r. */
int auth_password_check(const char *password, char **err_r);

/* RFC 6238 TOTP (SHA-1, 30 s, 6 digits) over a raw secret; exposed for tests. */
int auth_totp_code(const unsigned char *secret, size_t len, time_t t, char out[7]);
/* 1 when code matches at now or one step either side, else 0. */
int auth_totp_check(const unsigned char *secret, size_t len, const char *code, time_t now);
/* A new random secret (AUTH_TOTP_SECRET_LEN bytes) and its base32 text (caller frees). */
void auth_totp_new(unsigned char secret[AUTH_TOTP_SECRET_LEN], char **base32_r);
/* otpauth://totp/mailark:ADDRESS?secret=...&issuer=mailark (caller frees). */
char *auth_totp_uri(const char *address, const char *base32);

/* Store-level token functions (see above).  *id_r: the public id (caller frees). */
int auth_token_issue_st(struct store *st, long long user_id, const char *name, time_t expires,
    char **token_r, char **id_r, char **err_r);
/*
 * Checks a token at time now: 0 with *p_r, or -1 with *reason_r (static
 * text).  *id_r / *address_r (caller frees, may be NULL) name what was
 * attempted, for the audit trail.  Updates last_used on success.
 */
int auth_token_check_st(struct store *st, const char *token, time_t now, struct principal *p_r,
    const char **reason_r, char **id_r, char **address_r);

/* Lockout counters (key "acct:<address>" / "ip:<address>"). */
int auth_limit_locked(struct store *st, const char *key, time_t now);
/* Counts a failure; returns 1 when the key is now locked, 0 if not, -1 on error. */
int auth_limit_fail(struct store *st, const char *key, long long max, time_t now);
void auth_limit_clear(struct store *st, const char *key);

#endif
