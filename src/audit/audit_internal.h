/*
 * audit_internal — what audit.c, audit_verify.c and audit_cli.c share and
 * nobody else needs: struct audit, the canonical hash and the checkpoint
 * message.  Not for use outside src/audit and its unit test.
 */
#ifndef MAILARK_AUDIT_AUDIT_INTERNAL_H
#define MAILARK_AUDIT_AUDIT_INTERNAL_H

#include <pthread.h>
#include <sodium.h>

#include "audit/audit.h"
#include "store/store.h"

#define AUDIT_KEY_ID_SIZE 17    /* 16 hex digits and a NUL */

struct buf;

struct audit {
	pthread_mutex_t lock;       /* one user of sa at a time, whatever the thread */
	struct store_audit *sa;
	char *data_dir;
	int readonly;
	int have_sk;
	unsigned char pk[AUDIT_PUBKEY_LEN];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	char key_id[AUDIT_KEY_ID_SIZE];    /* of pk; meaningful when have_sk */
};

/* SHA-256 of the canonical encoding of e (e->hash is not part of it). */
void audit_hash(const struct store_audit_entry *e, unsigned char out[STORE_AUDIT_HASH_LEN]);
/* Appends the bytes a checkpoint's signature covers to out. */
void audit_checkpoint_message(const struct store_audit_checkpoint *c, struct buf *out);
void audit_key_id(const unsigned char pk[AUDIT_PUBKEY_LEN], char out[AUDIT_KEY_ID_SIZE]);
/* "<data_dir>/<name>" (caller frees). */
char *audit_path(const char *data_dir, const char *name);

#endif
