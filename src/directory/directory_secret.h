/*
 * directory_secret — the tenant's LDAP bind password sealed at rest.
 *
 * The key is a sub-key of the node's keys/master.key (exactly 32 bytes),
 * derived with crypto_kdf_derive_from_key(context "dirpass", id 1): the
 * master key itself never encrypts anything.  A sealed password is text,
 * "v1:" + base64(nonce || ciphertext) of XChaCha20-Poly1305 (random 24-byte
 * nonce) with the tenant's name as associated data, so a value copied to
 * another tenant's row does not open.  A stored value without the "v1:"
 * prefix is a legacy plain-text password: it opens as itself (1) and is
 * re-sealed by the next `mailark directory set`.
 *
 *   unsigned char key[DIRECTORY_SECRET_KEY_LEN];
 *   if (directory_secret_key_load(data_dir, key, &err) == 0) {
 *           char *sealed, *plain;
 *           directory_secret_seal(key, "acme", "pw", &sealed, &err);    // free()
 *           directory_secret_open(key, "acme", sealed, &plain, &err);  // directory_secret_free()
 *           directory_secret_wipe(key, sizeof(key));
 *   }
 *
 * Every function is thread-safe (no state).  The caller owns the key
 * buffer and wipes it; a sealed string is not secret (plain free()); an
 * opened password is freed with directory_secret_free(), which wipes it.
 * Error texts (*err_r, caller frees) never hold the password.
 */
#ifndef MAILARK_DIRECTORY_DIRECTORY_SECRET_H
#define MAILARK_DIRECTORY_DIRECTORY_SECRET_H

#include <stddef.h>

#define DIRECTORY_SECRET_KEY_LEN 32
#define DIRECTORY_SECRET_PREFIX "v1:"
/* Longest password sealed or opened (bytes). */
#define DIRECTORY_SECRET_MAX 4096

/*
 * Reads <data_dir>/keys/master.key and derives the directory key into
 * key_r: 0, or -1 with *err_r naming the file (missing, unreadable, not
 * exactly 32 bytes).
 */
int directory_secret_key_load(const char *data_dir, unsigned char key_r[DIRECTORY_SECRET_KEY_LEN],
    char **err_r);
/* The directory key of a 32-byte master key (for tests and key_load). 0 / -1. */
int directory_secret_key_derive(const unsigned char master[DIRECTORY_SECRET_KEY_LEN],
    unsigned char key_r[DIRECTORY_SECRET_KEY_LEN]);

/* Seals plain for the tenant: 0 with *sealed_r ("v1:..."), -1 with *err_r. */
int directory_secret_seal(const unsigned char key[DIRECTORY_SECRET_KEY_LEN], const char *tenant,
    const char *plain, char **sealed_r, char **err_r);
/*
 * Opens a stored value: 0 sealed and authentic, 1 legacy plain text (a
 * copy), both with *plain_r; -1 with *err_r when it is malformed, tampered
 * with, or sealed with another key or for another tenant.
 */
int directory_secret_open(const unsigned char key[DIRECTORY_SECRET_KEY_LEN], const char *tenant,
    const char *stored, char **plain_r, char **err_r);
/* Does the stored value carry the "v1:" prefix? 1 / 0. */
int directory_secret_is_sealed(const char *stored);

/* Wipes and frees an opened password; NULL is fine. */
void directory_secret_free(char *plain);
/* Wipes n bytes (keys, buffers) in a way the compiler keeps. */
void directory_secret_wipe(void *p, size_t n);

#endif
