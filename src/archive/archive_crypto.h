/*
 * archive_crypto — the archive's keys and sealed blobs.
 *
 * Each tenant has a random 32-byte data key kept in
 * <data_dir>/archive/<tenant>/datakey, wrapped by a sub-key of the node's
 * keys/master.key (crypto_kdf context "archkey", id 1) with
 * XChaCha20-Poly1305 and the tenant's name as associated data; the file is
 * text: "v1:" + base64(nonce(24) || ciphertext).  Deleting that file
 * (archive_crypto_datakey_shred) makes every blob of the tenant unreadable.
 *
 * A sealed blob is 'A' '1' || nonce(24) || XChaCha20-Poly1305(zstd(raw))
 * with the message's hex SHA-256 as associated data, so a blob moved to
 * another row does not open; archive_crypto_open() also checks the SHA-256
 * of what it decompressed.
 *
 *   unsigned char key[ARCHIVE_KEY_LEN];
 *   archive_crypto_datakey_load(data_dir, "acme", 1, key, &err);
 *   archive_crypto_seal(key, hash, raw, len, &sealed, &slen, &err);   // free(sealed)
 *   archive_crypto_open(key, hash, sealed, slen, &raw, &len, &err);   // free(raw)
 *   archive_crypto_wipe(key, sizeof(key));
 *
 * Functions are thread-safe (no state of their own).  The caller owns key
 * buffers and wipes them; outputs are malloc'd (caller frees); error texts
 * (*err_r, caller frees) never hold key material.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_CRYPTO_H
#define MAILARK_ARCHIVE_ARCHIVE_CRYPTO_H

#include <stddef.h>

#define ARCHIVE_KEY_LEN 32
/* Length of a hex SHA-256 (without the NUL). */
#define ARCHIVE_HASH_HEX_LEN 64
/* Largest message archive_crypto_open() decompresses. */
#define ARCHIVE_RAW_MAX ((size_t)256 * 1024 * 1024)

/*
 * Loads (create: or creates) the tenant's data key into key_r: 0, or -1
 * with *err_r when the master key is missing or not exactly 32 bytes, the
 * datakey file is missing (and !create), malformed or does not open (other
 * master key, tampered with, copied from another tenant).  Creating writes
 * the file durably (mode 0600) and never replaces an existing one.
 * Creates <data_dir>/archive/<tenant>/ (0700) when create is set.
 */
int archive_crypto_datakey_load(const char *data_dir, const char *tenant, int create,
    unsigned char key_r[ARCHIVE_KEY_LEN], char **err_r);
/*
 * Crypto-shredding: overwrites the datakey file, unlinks it and fsyncs the
 * directory.  0 (also when there was no file), -1 with *err_r.
 */
int archive_crypto_datakey_shred(const char *data_dir, const char *tenant, char **err_r);

/* Seals raw (zstd level 3, then AEAD with AD = hash_hex): 0, -1 with *err_r. */
int archive_crypto_seal(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const void *raw, size_t len, unsigned char **sealed_r, size_t *sealed_len_r, char **err_r);
/*
 * Opens a sealed blob: 0 with *raw_r (NUL-terminated for convenience, not
 * counted in *raw_len_r), -1 with *err_r when it is malformed, tampered
 * with, sealed with another key or for another hash, too large, or its
 * content's SHA-256 differs from hash_hex.
 */
int archive_crypto_open(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const void *sealed, size_t len, unsigned char **raw_r, size_t *raw_len_r, char **err_r);

/* Lower-case hex SHA-256 of data into out (64 chars + NUL). */
void archive_crypto_sha256_hex(const void *data, size_t len, char out[65]);
/* Is s exactly 64 lower-case hex digits? 1 / 0. */
int archive_crypto_hash_ok(const char *s);
/* Is t a valid tenant name for archive paths, [a-z0-9-]{1,63}? 1 / 0. */
int archive_crypto_tenant_ok(const char *t);
/* Wipes n bytes in a way the compiler keeps; NULL is fine. */
void archive_crypto_wipe(void *p, size_t n);

#endif
