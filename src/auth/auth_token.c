/*
 * auth_token.c — API tokens "mk_<id>_<secret>".
 *
 * id: 12 random base32 characters (a-z, 2-7), the public key of the row;
 * secret: 32 random bytes in unpadded base64url (43 characters).  Only the
 * SHA-256 of the secret text is stored, compared with sodium_memcmp().  A
 * token stops working when it is revoked, when it expires, or when its
 * user is disabled.  Failed attempts count against the source address
 * (not the account: token ids are not secret, so counting them per
 * account would let anyone lock a user out).
 */
#include "auth/auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "server.h"
#include "store/store.h"

#define TOKEN_PREFIX "mk_"
#define TOKEN_PREFIX_LEN 3
#define TOKEN_SECRET_BYTES 32
#define TOKEN_SECRET_LEN 43      /* unpadded base64url of 32 bytes */
#define TOKEN_LEN (TOKEN_PREFIX_LEN + AUTH_TOKEN_ID_LEN + 1 + TOKEN_SECRET_LEN)

static const char token_id_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static void
auth_token_hash(const char *secret, unsigned char out[32])
{
	crypto_hash_sha256(out, (const unsigned char *)secret, strlen(secret));
}

int
auth_token_issue_st(struct store *st, long long user_id, const char *name, time_t expires,
    char **token_r, char **id_r, char **err_r)
{
	char id[AUTH_TOKEN_ID_LEN + 1];
	unsigned char raw[TOKEN_SECRET_BYTES], hash[32];
	char secret[sodium_base64_ENCODED_LEN(TOKEN_SECRET_BYTES,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	if (auth_init() < 0) {
		*err_r = xstrdup("cannot initialise libsodium");
		return -1;
	}
	for (int i = 0; i < AUTH_TOKEN_ID_LEN; i++)
		id[i] = token_id_alphabet[randombytes_uniform(32)];
	id[AUTH_TOKEN_ID_LEN] = '\0';
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(secret, sizeof(secret), raw, sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	auth_token_hash(secret, hash);
	int rc = store_token_add(st, id, user_id, name, hash, expires, err_r);
	if (rc == 0) {
		struct buf t = BUF_INIT;
		buf_appendf(&t, TOKEN_PREFIX "%s_%s", id, secret);
		*token_r = buf_steal(&t);
		if (id_r != NULL)
			*id_r = xstrdup(id);
	}
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(secret, sizeof(secret));
	return rc;
}

/* Splits the token; 0 with id (NUL-terminated copy) and *secret_r, or -1. */
static int
auth_token_parse(const char *token, char id[AUTH_TOKEN_ID_LEN + 1], const char **secret_r)
{
	if (token == NULL || strlen(token) != TOKEN_LEN ||
	    strncmp(token, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0 ||
	    token[TOKEN_PREFIX_LEN + AUTH_TOKEN_ID_LEN] != '_')
		return -1;
	for (int i = 0; i < AUTH_TOKEN_ID_LEN; i++) {
		char c = token[TOKEN_PREFIX_LEN + i];
		if (c == '\0' || strchr(token_id_alphabet, c) == NULL)
			return -1;
		id[i] = c;
	}
	id[AUTH_TOKEN_ID_LEN] = '\0';
	*secret_r = token + TOKEN_PREFIX_LEN + AUTH_TOKEN_ID_LEN + 1;
	return 0;
}

static int
auth_principal_fill(struct store *st, long long user_id, struct principal *p_r,
    const char **reason_r)
{
	struct store_user u;
	enum role role = ROLE_NONE;
	int found = store_user_get_id(st, user_id, &u);
	if (found <= 0) {
		*reason_r = found == 0 ? "token of a removed user" : "database error";
		return -1;
	}
	if (strcmp(u.status, "active") != 0 || role_parse(u.role, &role) < 0) {
		*reason_r = "account disabled";
		store_user_clear(&u);
		return -1;
	}
	memset(p_r, 0, sizeof(*p_r));
	p_r->role = role;
	p_r->actor = u.address;
	p_r->tenant = u.tenant;
	p_r->user_id = u.id;
	u.address = u.tenant = NULL;
	store_user_clear(&u);
	return 0;
}

static int
auth_token_valid(const struct store_token *t, const char *secret, time_t now,
    const char **reason_r)
{
	unsigned char hash[32];
	auth_token_hash(secret, hash);
	int same = sodium_memcmp(hash, t->hash, sizeof(hash)) == 0;
	sodium_memzero(hash, sizeof(hash));
	if (!same)
		*reason_r = "bad token secret";
	else if (t->revoked != 0)
		*reason_r = "token revoked";
	else if (t->expires != 0 && t->expires <= now)
		*reason_r = "token expired";
	else
		return 1;
	return 0;
}

int
auth_token_check_st(struct store *st, const char *token, time_t now, struct principal *p_r,
    const char **reason_r, char **id_r, char **address_r)
{
	char id[AUTH_TOKEN_ID_LEN + 1];
	const char *secret;
	struct store_token t;
	if (auth_init() < 0 || auth_token_parse(token, id, &secret) < 0) {
		*reason_r = "malformed token";
		return -1;
	}
	if (id_r != NULL)
		*id_r = xstrdup(id);
	int found = store_token_get(st, id, &t);
	if (found <= 0) {
		*reason_r = found == 0 ? "unknown token" : "database error";
		return -1;
	}
	if (address_r != NULL)
		*address_r = xstrdup(t.user_address);
	int rc = -1;
	if (auth_token_valid(&t, secret, now, reason_r) &&
	    auth_principal_fill(st, t.user_id, p_r, reason_r) == 0) {
		(void)store_token_touch(st, id, now);
		rc = 0;
	}
	store_token_clear(&t);
	return rc;
}

int
auth_token_create(struct server *srv, long long user_id, const char *name, time_t expires,
    char **token_r, char **err_r)
{
	char *id = NULL;
	int rc = auth_token_issue_st(srv->store, user_id, name, expires, token_r, &id, err_r);
	if (rc == 0)
		log_info("token_created", "id=%s user_id=%lld", id, user_id);
	free(id);
	return rc;
}

static void
auth_token_audit(struct server *srv, const char *id, const char *address, const char *source,
    const char *outcome, const char *reason)
{
	struct buf actor = BUF_INIT;
	buf_appendf(&actor, "token:%s", id ? id : "?");
	struct principal who = { ROLE_NONE, address ? (char *)address : actor.data, NULL, 0,
	    (char *)source };
	log_info("auth_token", "token=%s user=%s source=%s outcome=%s reason=%s",
	    log_str(id ? id : "?"), log_str(address ? address : "-"), log_str(source), outcome,
	    log_str(reason ? reason : "-"));
	(void)audit_record(srv, &who, "auth.token", address ? address : actor.data, outcome,
	    reason);
	buf_free(&actor);
}

int
auth_token_verify(struct server *srv, const char *token, const char *source,
    struct principal *p_r, char **err_r)
{
	struct buf ipkey = BUF_INIT;
	char *id = NULL, *address = NULL;
	const char *reason = NULL, *outcome = "failed";
	time_t now = time(NULL);
	int rc = -1;
	if (source == NULL)
		source = "-";
	buf_appendf(&ipkey, "ip:%s", source);
	if (auth_limit_locked(srv->store, buf_cstr(&ipkey), now) != 0) {
		reason = "source locked";
		outcome = "locked";
	} else if (auth_token_check_st(srv->store, token, now, p_r, &reason, &id, &address) == 0) {
		p_r->source = xstrdup(source);
		outcome = "ok";
		rc = 0;
	} else if (auth_limit_fail(srv->store, buf_cstr(&ipkey), AUTH_SOURCE_MAX_FAILURES,
	    now) == 1) {
		reason = "bad token; source now locked";
	}
	auth_token_audit(srv, id, address, source, outcome, reason);
	if (rc < 0 && err_r != NULL)
		*err_r = xstrdup(reason ? reason : "invalid token");
	free(id);
	free(address);
	buf_free(&ipkey);
	return rc;
}
