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
 * Dictionary blobs (format 2): a tenant may have zstd dictionaries trained
 * on its own mail (archive_crypto_dict_train); a dictionary is plaintext
 * mail fragments, so it is stored sealed too (archive_crypto_dict_seal:
 * 'D' '1' || nonce || AEAD(dict), AD = "mailark-dict" || id (4 bytes BE)).
 * A blob compressed with dictionary `id` is
 *   'A' '2' || id (4 bytes BE) || nonce(24) || AEAD(zstd(raw, dict))
 * with AD = hash_hex || id, so changing the id in the header breaks the
 * tag.  archive_crypto_blob_dict() tells which dictionary a blob needs;
 * archive_crypto_open_zdict() opens both formats, archive_crypto_open()
 * format 1 only.
 *
 *   struct archive_zdict *zd = archive_crypto_zdict_new(id, dict, dlen, &err);
 *   archive_crypto_seal_zdict(key, hash, zd, raw, len, &sealed, &slen, &err);
 *   archive_crypto_open_zdict(key, hash, zd, sealed, slen, &raw, &len, &err);
 *   archive_crypto_zdict_free(&zd);
 *
 * Functions are thread-safe (no state of their own), except that a struct
 * archive_zdict (which caches zstd contexts) is used by one thread at a
 * time.  The caller owns key buffers and wipes them; outputs are malloc'd
 * (caller frees); error texts (*err_r, caller frees) never hold key
 * material.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_CRYPTO_H
#define MAILARK_ARCHIVE_ARCHIVE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

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

/* Seals raw (zstd level 3, then AEAD with AD = hash_hex; format 1): 0, -1 with *err_r. */
int archive_crypto_seal(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const void *raw, size_t len, unsigned char **sealed_r, size_t *sealed_len_r, char **err_r);
/*
 * Opens a sealed blob: 0 with *raw_r (NUL-terminated for convenience, not
 * counted in *raw_len_r), -1 with *err_r when it is malformed, tampered
 * with, sealed with another key or for another hash, too large, or its
 * content's SHA-256 differs from hash_hex; also for a format-2 blob, which
 * needs its dictionary (archive_crypto_open_zdict, archive_store_open_blob).
 */
int archive_crypto_open(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const void *sealed, size_t len, unsigned char **raw_r, size_t *raw_len_r, char **err_r);

/* Largest dictionary archive_crypto_dict_train() makes and dict_open() accepts. */
#define ARCHIVE_DICT_MAX ((size_t)1024 * 1024)

/*
 * Trains a zstd dictionary of at most `capacity` bytes (<= ARCHIVE_DICT_MAX)
 * from n samples stored back to back in `samples` (sizes in lens): 0 with
 * *dict_r (caller wipes and frees), -1 with *err_r (too few or too small
 * samples: then use no dictionary).
 */
int archive_crypto_dict_train(const void *samples, const size_t *lens, size_t n,
    size_t capacity, unsigned char **dict_r, size_t *dict_len_r, char **err_r);
/* Seals dictionary `id` (> 0) for storage: 0 with *sealed_r (caller frees), -1. */
int archive_crypto_dict_seal(const unsigned char key[ARCHIVE_KEY_LEN], uint32_t id,
    const void *dict, size_t len, unsigned char **sealed_r, size_t *sealed_len_r,
    char **err_r);
/* Opens a sealed dictionary `id`: 0 with *dict_r (caller wipes and frees), -1 with *err_r. */
int archive_crypto_dict_open(const unsigned char key[ARCHIVE_KEY_LEN], uint32_t id,
    const void *sealed, size_t len, unsigned char **dict_r, size_t *dict_len_r,
    char **err_r);

/* A loaded dictionary: its id, zstd dictionaries and contexts.  One thread at a time. */
struct archive_zdict;
/* Loads dictionary bytes (copied) as dictionary `id` (> 0): NULL with *err_r. */
struct archive_zdict *archive_crypto_zdict_new(uint32_t id, const void *dict, size_t len,
    char **err_r);
/* Frees (wiping what it can) and sets *zd to NULL; NULL is fine. */
void archive_crypto_zdict_free(struct archive_zdict **zd);
uint32_t archive_crypto_zdict_id(const struct archive_zdict *zd);
/* As archive_crypto_seal, with dictionary zd (format 2); zd NULL = format 1. */
int archive_crypto_seal_zdict(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    struct archive_zdict *zd, const void *raw, size_t len, unsigned char **sealed_r,
    size_t *sealed_len_r, char **err_r);
/*
 * Which dictionary a sealed blob needs: 0 none (format 1), 1 with *id_r
 * (format 2), -1 not a sealed blob (bad header or too short).
 */
int archive_crypto_blob_dict(const void *sealed, size_t len, uint32_t *id_r);
/*
 * As archive_crypto_open, for both formats: a format-2 blob needs zd with
 * the id it names (else -1 with *err_r); zd is ignored for format 1.
 */
int archive_crypto_open_zdict(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    struct archive_zdict *zd, const void *sealed, size_t len, unsigned char **raw_r,
    size_t *raw_len_r, char **err_r);

/* Lower-case hex SHA-256 of data into out (64 chars + NUL). */
void archive_crypto_sha256_hex(const void *data, size_t len, char out[65]);
/* Is s exactly 64 lower-case hex digits? 1 / 0. */
int archive_crypto_hash_ok(const char *s);
/* Is t a valid tenant name for archive paths, [a-z0-9-]{1,63}? 1 / 0. */
int archive_crypto_tenant_ok(const char *t);
/* Wipes n bytes in a way the compiler keeps; NULL is fine. */
void archive_crypto_wipe(void *p, size_t n);

#endif
