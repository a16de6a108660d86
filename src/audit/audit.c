/*
 * audit.c — appending to the audit trail and signing its checkpoints.
 *
 * Each entry's hash is SHA-256 over a canonical encoding (audit_hash):
 *   "mailark-audit-v1\0" | seq (8 bytes, big-endian) | time_us (8) |
 *   for actor, role, tenant, action, object, source, outcome, detail:
 *       0x00 (NULL) or 0x01 | length (8) | bytes
 *   | prev_hash (32)
 * Every variable field is length-prefixed, so no field can bleed into its
 * neighbour, and seq is inside the hash, so moving a row's contents to
 * another seq breaks it.  A checkpoint signs (Ed25519) the message
 *   "mailark-audit-checkpoint-v1\0" | seq | hash | time_us | key_id
 * at every AUDIT_CHECKPOINT_EVERY-th entry (in the entry's transaction)
 * and at clean shutdown.  key_id is the hex of the first 8 bytes of
 * SHA-256(public key).  Verification is in audit_verify.c.
 */
#include "audit/audit.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_internal.h"
#include "auth/principal.h"
#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/sys.h"
#include "server.h"
#include "store/store.h"

static const char audit_entry_tag[] = "mailark-audit-v1";
static const char audit_cp_tag[] = "mailark-audit-checkpoint-v1";

static void
audit_set_err(char **err_r, const char *fmt, const char *a, const char *b)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a, b);
	if (err_r != NULL)
		*err_r = buf_steal(&e);
	else
		buf_free(&e);
}

/* ---- canonical encoding -------------------------------------------------- */

static void
audit_put_u64(struct buf *b, long long v)
{
	unsigned long long u = (unsigned long long)v;
	unsigned char out[8];
	for (int i = 7; i >= 0; i--) {
		out[i] = (unsigned char)(u & 0xff);
		u >>= 8;
	}
	buf_append(b, out, sizeof(out));
}

static void
audit_put_str(struct buf *b, const char *s)
{
	if (s == NULL) {
		buf_append_char(b, 0);
		return;
	}
	size_t n = strlen(s);
	buf_append_char(b, 1);
	audit_put_u64(b, (long long)n);
	buf_append(b, s, n);
}

void
audit_hash(const struct store_audit_entry *e, unsigned char out[STORE_AUDIT_HASH_LEN])
{
	struct buf b = BUF_INIT;
	buf_append(&b, audit_entry_tag, sizeof(audit_entry_tag));
	audit_put_u64(&b, e->seq);
	audit_put_u64(&b, e->time_us);
	const char *fields[] = { e->actor, e->role, e->tenant, e->action, e->object, e->source,
	    e->outcome, e->detail };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		audit_put_str(&b, fields[i]);
	buf_append(&b, e->prev_hash, STORE_AUDIT_HASH_LEN);
	crypto_hash_sha256(out, (const unsigned char *)b.data, b.len);
	buf_free(&b);
}

void
audit_checkpoint_message(const struct store_audit_checkpoint *c, struct buf *out)
{
	buf_append(out, audit_cp_tag, sizeof(audit_cp_tag));
	audit_put_u64(out, c->seq);
	buf_append(out, c->hash, STORE_AUDIT_HASH_LEN);
	audit_put_u64(out, c->time_us);
	audit_put_str(out, c->key_id);
}

void
audit_key_id(const unsigned char pk[AUDIT_PUBKEY_LEN], char out[AUDIT_KEY_ID_SIZE])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, pk, AUDIT_PUBKEY_LEN);
	sodium_bin2hex(out, AUDIT_KEY_ID_SIZE, h, 8);
}

static long long
audit_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- keys ---------------------------------------------------------------- */

char *
audit_path(const char *data_dir, const char *name)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s/%s", data_dir, name);
	return buf_steal(&b);
}

static int
audit_sodium(char **err_r)
{
	if (sodium_init() < 0) {
		audit_set_err(err_r, "%s%s", "cannot initialise libsodium", "");
		return -1;
	}
	return 0;
}

int
audit_pubkey_load(const char *path, unsigned char pk[AUDIT_PUBKEY_LEN], char **err_r)
{
	char *text = NULL;
	size_t len, bin_len = 0;
	if (sys_read_file(path, 4096, &text, &len) < 0) {
		audit_set_err(err_r, "%s: %s", path, strerror(errno));
		return -1;
	}
	int rc = sodium_hex2bin(pk, AUDIT_PUBKEY_LEN, text, len, " \r\n", &bin_len, NULL);
	free(text);
	if (rc != 0 || bin_len != AUDIT_PUBKEY_LEN) {
		audit_set_err(err_r, "%s: %s", path, "not an Ed25519 public key (64 hex digits)");
		return -1;
	}
	return 0;
}

/* Reads the 32-byte seed of keys/audit.key into a key pair.  1 / 0 (no file) / -1. */
static int
audit_seckey_load(const char *path, unsigned char pk[AUDIT_PUBKEY_LEN],
    unsigned char sk[crypto_sign_SECRETKEYBYTES], char **err_r)
{
	char *seed = NULL;
	size_t len;
	if (sys_read_file(path, 4096, &seed, &len) < 0) {
		if (errno == ENOENT)
			return 0;
		audit_set_err(err_r, "%s: %s", path, strerror(errno));
		return -1;
	}
	int rc = 1;
	if (len != crypto_sign_SEEDBYTES) {
		audit_set_err(err_r, "%s: %s", path, "not an audit signing key (32 bytes)");
		rc = -1;
	} else if (crypto_sign_seed_keypair(pk, sk, (unsigned char *)seed) != 0) {
		audit_set_err(err_r, "%s: %s", path, "cannot derive the key pair");
		rc = -1;
	}
	sodium_memzero(seed, len);
	free(seed);
	return rc;
}

static int
audit_pubkey_write(const char *data_dir, const unsigned char pk[AUDIT_PUBKEY_LEN],
    char **err_r)
{
	char hex[AUDIT_PUBKEY_LEN * 2 + 2];
	sodium_bin2hex(hex, sizeof(hex) - 1, pk, AUDIT_PUBKEY_LEN);
	size_t n = strlen(hex);
	hex[n] = '\n';
	char *path = audit_path(data_dir, "keys/audit.pub");
	int rc = sys_write_file_atomic(path, hex, n + 1, 0644);
	if (rc < 0)
		audit_set_err(err_r, "cannot write %s: %s", path, strerror(errno));
	free(path);
	return rc;
}

static int
audit_seckey_create(const char *data_dir, const char *path, char **err_r)
{
	unsigned char seed[crypto_sign_SEEDBYTES];
	char *dir = audit_path(data_dir, "keys");
	int rc = sys_mkdir_p(dir, 0700);
	free(dir);
	randombytes_buf(seed, sizeof(seed));
	if (rc == 0)
		rc = sys_write_file_atomic(path, seed, sizeof(seed), 0600);
	sodium_memzero(seed, sizeof(seed));
	if (rc < 0)
		audit_set_err(err_r, "cannot write %s: %s", path, strerror(errno));
	else
		log_info("audit_key_created", "path=%s", log_str(path));
	return rc;
}

/* Loads keys/audit.key, creating it (and audit.pub) when missing. */
static int
audit_keys_ensure(const char *data_dir, unsigned char pk[AUDIT_PUBKEY_LEN],
    unsigned char sk[crypto_sign_SECRETKEYBYTES], int *created_r, char **err_r)
{
	char *path = audit_path(data_dir, "keys/audit.key"), *pub = NULL;
	int rc = audit_seckey_load(path, pk, sk, err_r);
	*created_r = 0;
	if (rc == 0) {
		if (audit_seckey_create(data_dir, path, err_r) == 0)
			rc = audit_seckey_load(path, pk, sk, err_r);
		*created_r = rc == 1;
	}
	if (rc == 1) {
		pub = audit_path(data_dir, "keys/audit.pub");
		if ((*created_r || access(pub, F_OK) != 0) && audit_pubkey_write(data_dir, pk, err_r) < 0)
			rc = -1;
	}
	free(path);
	free(pub);
	return rc == 1 ? 0 : -1;
}

int
audit_key_init(const char *data_dir, int *created_r, char **err_r)
{
	unsigned char pk[AUDIT_PUBKEY_LEN], sk[crypto_sign_SECRETKEYBYTES];
	if (audit_sodium(err_r) < 0)
		return -1;
	int rc = audit_keys_ensure(data_dir, pk, sk, created_r, err_r);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

/* ---- open and close ------------------------------------------------------ */

int
audit_open(const char *data_dir, int readonly, struct audit **a_r, char **err_r)
{
	if (audit_sodium(err_r) < 0)
		return -1;
	struct audit *a = xcalloc(1, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	a->data_dir = xstrdup(data_dir);
	a->readonly = readonly;
	int created;
	if (!readonly && audit_keys_ensure(data_dir, a->pk, a->sk, &created, err_r) < 0) {
		audit_close(&a);
		return -1;
	}
	a->have_sk = !readonly;
	audit_key_id(a->pk, a->key_id);
	char *db = audit_path(data_dir, "mailark.db");
	int rc = store_audit_open(db, readonly, &a->sa, err_r);
	free(db);
	if (rc < 0) {
		audit_close(&a);
		return -1;
	}
	*a_r = a;
	return 0;
}

void
audit_close(struct audit **ap)
{
	struct audit *a = *ap;
	if (a == NULL)
		return;
	store_audit_close(&a->sa);
	pthread_mutex_destroy(&a->lock);
	sodium_memzero(a->sk, sizeof(a->sk));
	free(a->data_dir);
	free(a);
	*ap = NULL;
}

/* ---- appending ----------------------------------------------------------- */

/* Signs and stores a checkpoint at (seq, hash); inside the caller's transaction. */
static int
audit_checkpoint_write(struct audit *a, long long seq,
    const unsigned char hash[STORE_AUDIT_HASH_LEN], char **err_r)
{
	if (!a->have_sk) {
		audit_set_err(err_r, "%s%s", "audit trail opened read-only: cannot sign", "");
		return -1;
	}
	struct store_audit_checkpoint c;
	memset(&c, 0, sizeof(c));
	c.seq = seq;
	memcpy(c.hash, hash, STORE_AUDIT_HASH_LEN);
	c.time_us = audit_now_us();
	c.key_id = a->key_id;
	struct buf msg = BUF_INIT;
	audit_checkpoint_message(&c, &msg);
	int rc = crypto_sign_detached(c.signature, NULL, (const unsigned char *)msg.data, msg.len,
	    a->sk);
	buf_free(&msg);
	if (rc != 0) {
		audit_set_err(err_r, "%s%s", "cannot sign the audit checkpoint", "");
		return -1;
	}
	return store_audit_checkpoint_insert(a->sa, &c, err_r);
}

static int
audit_append_tx(struct audit *a, const struct audit_fields *f, long long *seq_r, char **err_r)
{
	struct store_audit_entry e;
	memset(&e, 0, sizeof(e));
	int last = store_audit_last(a->sa, &e.seq, e.prev_hash);
	if (last < 0) {
		audit_set_err(err_r, "%s%s", "cannot read the newest audit entry", "");
		return -1;
	}
	if (last == 0) {
		e.seq = 0;
		memset(e.prev_hash, 0, sizeof(e.prev_hash));
	}
	e.seq++;
	e.time_us = audit_now_us();
	e.actor = (char *)f->actor;
	e.role = (char *)f->role;
	e.tenant = (char *)f->tenant;
	e.action = (char *)f->action;
	e.object = (char *)f->object;
	e.source = (char *)f->source;
	e.outcome = (char *)f->outcome;
	e.detail = (char *)f->detail;
	audit_hash(&e, e.hash);
	if (store_audit_insert(a->sa, &e, err_r) < 0)
		return -1;
	*seq_r = e.seq;
	if (e.seq % AUDIT_CHECKPOINT_EVERY == 0)
		return audit_checkpoint_write(a, e.seq, e.hash, err_r);
	return 0;
}

static int
audit_append_locked(struct audit *a, const struct audit_fields *f, char **err_r)
{
	if (f->actor == NULL || f->role == NULL || f->action == NULL || f->outcome == NULL) {
		audit_set_err(err_r, "%s%s", "audit entry without actor, role, action or outcome",
		    "");
		return -1;
	}
	long long seq = 0;
	if (store_audit_begin(a->sa, 1, err_r) < 0)
		return -1;
	if (audit_append_tx(a, f, &seq, err_r) < 0) {
		store_audit_rollback(a->sa);
		return -1;
	}
	if (store_audit_commit(a->sa, err_r) < 0)
		return -1;
	log_info("audit", "seq=%lld actor=%s tenant=%s action=%s object=%s outcome=%s", seq,
	    log_str(f->actor), log_str(f->tenant ? f->tenant : "-"), log_str(f->action),
	    log_str(f->object ? f->object : "-"), log_str(f->outcome));
	return 0;
}

static int
audit_checkpoint_locked(struct audit *a, char **err_r)
{
	long long seq, cp_seq = 0;
	unsigned char hash[STORE_AUDIT_HASH_LEN];
	if (store_audit_begin(a->sa, 1, err_r) < 0)
		return -1;
	int last = store_audit_last(a->sa, &seq, hash);
	int cp = last > 0 ? store_audit_checkpoint_last(a->sa, &cp_seq) : 0;
	int rc = last < 0 || cp < 0 ? -1 : 0;
	if (rc < 0)
		audit_set_err(err_r, "%s%s", "cannot read the audit trail", "");
	else if (last > 0 && (cp == 0 || cp_seq < seq))
		rc = audit_checkpoint_write(a, seq, hash, err_r);
	if (rc < 0) {
		store_audit_rollback(a->sa);
		return -1;
	}
	if (store_audit_commit(a->sa, err_r) < 0)
		return -1;
	if (last > 0 && (cp == 0 || cp_seq < seq))
		log_info("audit_checkpoint", "seq=%lld key_id=%s", seq, a->key_id);
	return 0;
}

int
audit_append(struct audit *a, const struct audit_fields *f, char **err_r)
{
	pthread_mutex_lock(&a->lock);
	int rc = audit_append_locked(a, f, err_r);
	pthread_mutex_unlock(&a->lock);
	return rc;
}

int
audit_checkpoint(struct audit *a, char **err_r)
{
	pthread_mutex_lock(&a->lock);
	int rc = audit_checkpoint_locked(a, err_r);
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* ---- the daemon's trail ---------------------------------------------------- */

int
audit_start(struct server *srv, char **err_r)
{
	if (srv->audit != NULL)
		return 0;
	if (srv->cfg == NULL) {
		audit_set_err(err_r, "%s%s", "no configuration: cannot find the audit trail", "");
		return -1;
	}
	return audit_open(srv->cfg->data_dir, 0, &srv->audit, err_r);
}

void
audit_stop(struct server *srv)
{
	char *err = NULL;
	if (srv->audit == NULL)
		return;
	if (audit_checkpoint(srv->audit, &err) < 0) {
		log_error("audit_checkpoint_failed", "error=%s", log_str(err));
		free(err);
	}
	audit_close(&srv->audit);
}

/*
 * For an operator (no tenant of their own) the tenant an entry concerns
 * is the one its object names: "tenant:acme ..." from control_audit_object,
 * or "name:acme" for the tenant.* commands.
 */
static char *
audit_object_tenant(const char *action, const char *object)
{
	if (object == NULL)
		return NULL;
	const char *key = strncmp(action, "tenant.", 7) == 0 ? "name:" : "tenant:";
	size_t klen = strlen(key);
	for (const char *p = object; p != NULL && *p != '\0'; p = strchr(p, ' ')) {
		while (*p == ' ')
			p++;
		if (strncmp(p, key, klen) == 0) {
			const char *v = p + klen;
			return xstrndup(v, strcspn(v, " "));
		}
	}
	return NULL;
}

int
audit_record_tenant(struct server *srv, const struct principal *who, const char *tenant,
    const char *action, const char *object, const char *outcome, const char *detail)
{
	char *err = NULL, *derived = NULL;
	if (srv == NULL || audit_start(srv, &err) < 0) {
		log_error("audit_failed", "action=%s error=%s", log_str(action),
		    log_str(err ? err : "no server"));
		free(err);
		return -1;
	}
	if (tenant == NULL && who != NULL)
		tenant = who->tenant;
	if (tenant == NULL && action != NULL)
		tenant = derived = audit_object_tenant(action, object);
	struct audit_fields f = {
		.actor = who && who->actor ? who->actor : "unknown",
		.role = role_name(who ? who->role : ROLE_NONE),
		.tenant = tenant, .action = action, .object = object && *object ? object : NULL,
		.source = who ? who->source : NULL, .outcome = outcome, .detail = detail,
	};
	int rc = audit_append(srv->audit, &f, &err);
	if (rc < 0) {
		log_error("audit_failed", "action=%s error=%s", log_str(action), log_str(err));
		free(err);
	}
	free(derived);
	return rc;
}

int
audit_record(struct server *srv, const struct principal *who, const char *action,
    const char *object, const char *outcome, const char *detail)
{
	return audit_record_tenant(srv, who, NULL, action, object, outcome, detail);
}
