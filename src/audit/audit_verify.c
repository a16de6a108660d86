/*
 * audit_verify.c — re-walks the audit trail and names the first bad entry.
 *
 * In one read snapshot, entries in seq order: seq must be 1, 2, 3, ... (a
 * gap is a deleted entry); each prev_hash must be the previous entry's
 * hash (else reordered, inserted or deleted); each hash must be the
 * recomputed canonical hash (else edited).  Every checkpoint must match
 * the entry at its seq and carry a valid Ed25519 signature by the audit
 * key; every AUDIT_CHECKPOINT_EVERY-th entry must have one.  A checkpoint
 * beyond the newest entry means the tail was cut off.  Entries after the
 * last checkpoint can be removed from the tail without a trace: only the
 * next checkpoint (or the shutdown checkpoint) seals them.
 */
#include "audit/audit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit_internal.h"
#include "lib/buf.h"
#include "lib/mem.h"

struct audit_walk {
	const unsigned char *pk;
	char key_id[AUDIT_KEY_ID_SIZE];
	struct store_audit_checkpoint *cps;
	size_t ncps, cpi;
	long long expect;              /* seq the next entry must have */
	unsigned char prev[STORE_AUDIT_HASH_LEN];
	struct buf bad;                /* the first problem, empty while all is well */
};

static int
audit_walk_fail(struct audit_walk *w, long long seq, const char *what)
{
	buf_appendf(&w->bad, "audit: entry %lld: %s", seq, what);
	return 1;
}

static int
audit_walk_checkpoint(struct audit_walk *w, const struct store_audit_checkpoint *c,
    const struct store_audit_entry *e)
{
	if (c->malformed)
		return audit_walk_fail(w, e->seq, "malformed checkpoint (edited?)");
	if (memcmp(c->hash, e->hash, STORE_AUDIT_HASH_LEN) != 0)
		return audit_walk_fail(w, e->seq, "checkpoint hash does not match the entry "
		    "(edited?)");
	if (strcmp(c->key_id, w->key_id) != 0) {
		buf_appendf(&w->bad, "audit: entry %lld: checkpoint signed by unknown key %s "
		    "(expected %s)", e->seq, c->key_id, w->key_id);
		return 1;
	}
	struct buf msg = BUF_INIT;
	audit_checkpoint_message(c, &msg);
	int rc = crypto_sign_verify_detached(c->signature, (const unsigned char *)msg.data,
	    msg.len, w->pk);
	buf_free(&msg);
	if (rc != 0)
		return audit_walk_fail(w, e->seq, "checkpoint signature invalid (forged?)");
	return 0;
}

static int
audit_walk_cb(void *arg, const struct store_audit_entry *e)
{
	struct audit_walk *w = arg;
	unsigned char h[STORE_AUDIT_HASH_LEN];
	if (e->seq > w->expect)
		return audit_walk_fail(w, w->expect, "missing (deleted?)");
	if (e->seq < w->expect)
		return audit_walk_fail(w, e->seq, "out of sequence (inserted?)");
	if (e->malformed)
		return audit_walk_fail(w, e->seq, "malformed row (edited?)");
	if (memcmp(e->prev_hash, w->prev, STORE_AUDIT_HASH_LEN) != 0)
		return audit_walk_fail(w, e->seq, "does not follow the previous entry "
		    "(reordered, inserted or deleted?)");
	audit_hash(e, h);
	if (memcmp(h, e->hash, STORE_AUDIT_HASH_LEN) != 0)
		return audit_walk_fail(w, e->seq, "hash mismatch (edited?)");
	if (w->cpi < w->ncps && w->cps[w->cpi].seq < e->seq)
		return audit_walk_fail(w, w->cps[w->cpi].seq, "checkpoint for an entry that "
		    "does not exist (inserted?)");
	if (w->cpi < w->ncps && w->cps[w->cpi].seq == e->seq) {
		if (audit_walk_checkpoint(w, &w->cps[w->cpi], e))
			return 1;
		w->cpi++;
	} else if (e->seq % AUDIT_CHECKPOINT_EVERY == 0) {
		return audit_walk_fail(w, e->seq, "checkpoint missing (deleted?)");
	}
	memcpy(w->prev, e->hash, STORE_AUDIT_HASH_LEN);
	w->expect++;
	return 0;
}

/* The public key to check signatures with: 0, or -1 with *err_r. */
static int
audit_verify_key(struct audit *a, unsigned char pk[AUDIT_PUBKEY_LEN], char **err_r)
{
	char *pub = audit_path(a->data_dir, "keys/audit.pub");
	int rc = 0;
	if (audit_pubkey_load(pub, pk, err_r) < 0) {
		rc = -1;
	} else if (a->have_sk && memcmp(pk, a->pk, AUDIT_PUBKEY_LEN) != 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "%s does not match keys/audit.key", pub);
		free(*err_r);
		*err_r = buf_steal(&e);
		rc = -1;
	}
	free(pub);
	return rc;
}

static void
audit_verify_summary(struct audit_walk *w, struct buf *out)
{
	long long n = w->expect - 1;
	long long last_cp = w->ncps > 0 ? w->cps[w->ncps - 1].seq : 0;
	buf_appendf(out, "audit: ok: %lld entries, %zu signed checkpoints", n, w->ncps);
	if (w->ncps > 0)
		buf_appendf(out, " (the last at entry %lld, key %s)", last_cp, w->key_id);
	if (n > last_cp)
		buf_appendf(out, "; entries %lld-%lld are chained but not yet under a signed "
		    "checkpoint", last_cp + 1, n);
}

static int
audit_verify_walk(struct audit *a, struct audit_walk *w, char **report_r)
{
	char *err = NULL;
	if (store_audit_begin(a->sa, 0, &err) < 0 ||
	    store_audit_checkpoints(a->sa, &w->cps, &w->ncps) < 0 ||
	    store_audit_foreach(a->sa, audit_walk_cb, w) < 0) {
		store_audit_rollback(a->sa);
		struct buf e = BUF_INIT;
		buf_appendf(&e, "audit: cannot read the audit trail%s%s", err ? ": " : "",
		    err ? err : "");
		free(err);
		*report_r = buf_steal(&e);
		return -1;
	}
	store_audit_rollback(a->sa);
	if (w->bad.len == 0 && w->cpi < w->ncps)
		buf_appendf(&w->bad, "audit: entry %lld: missing (the tail was cut off: a "
		    "checkpoint covers entry %lld)", w->expect, w->cps[w->ncps - 1].seq);
	if (w->bad.len > 0) {
		*report_r = buf_steal(&w->bad);
		return 1;
	}
	struct buf out = BUF_INIT;
	audit_verify_summary(w, &out);
	*report_r = buf_steal(&out);
	return 0;
}

int
audit_verify(struct audit *a, const unsigned char *pubkey, char **report_r)
{
	unsigned char pk[AUDIT_PUBKEY_LEN];
	char *err = NULL;
	if (pubkey != NULL) {
		memcpy(pk, pubkey, AUDIT_PUBKEY_LEN);
	} else if (audit_verify_key(a, pk, &err) < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "audit: cannot check signatures: %s", err ? err : "no key");
		free(err);
		*report_r = buf_steal(&e);
		return -1;
	}
	struct audit_walk w;
	memset(&w, 0, sizeof(w));
	w.pk = pk;
	w.expect = 1;
	audit_key_id(pk, w.key_id);
	pthread_mutex_lock(&a->lock);
	int rc = audit_verify_walk(a, &w, report_r);
	pthread_mutex_unlock(&a->lock);
	store_audit_checkpoints_free(w.cps, w.ncps);
	buf_free(&w.bad);
	return rc;
}
