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
 */
#ifndef MAILARK_AUTH_AUTH_H
#define MAILARK_AUTH_AUTH_H

#include <stddef.h>
#include <time.h>

#include "auth/principal.h"

struct server;

/* "mk_<id>_<secret>": returns the whole token text once (caller frees). */
int auth_token_create(struct server *srv, long long user_id, const char *name,
    time_t expires, char **token_r, char **err_r);
/* Bearer token → principal.  source: client address for rate limits/audit. */
int auth_token_verify(struct server *srv, const char *token, const char *source,
    struct principal *p_r, char **err_r);

typedef void auth_done_cb(void *arg, int ok, struct principal *p, const char *reason);
/* Password (and TOTP code when the user has a second factor; may be NULL). */
void auth_password_verify_async(struct server *srv, const char *address, const char *password,
    const char *totp_code, const char *source, auth_done_cb *cb, void *arg);

/* Argon2id hash in libsodium's string format (caller frees). */
int auth_password_hash(const char *password, char **hash_r);
/* RFC 6238 TOTP (SHA-1, 30 s, 6 digits) over a raw secret; exposed for tests. */
int auth_totp_code(const unsigned char *secret, size_t len, time_t t, char out[7]);

#endif
