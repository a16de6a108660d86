/*
 * archive_crypto.c — data keys and sealed blobs (see the header).
 *
 * Data key file, after the "v1:" prefix in standard base64:
 *
 *   nonce (24, random) || XChaCha20-Poly1305(data key (32)) || tag (16)
 *
 * under the wrapping key crypto_kdf_derive_from_key(master, "archkey", 1),
 * associated data = the tenant's name.  A new key file is written to a
 * unique temporary name, fsynced, then link()ed into place (so two
 * creators racing never replace each other's key: the loser reads the
 * winner's), and the directory is fsynced.
 *
 * Sealed blob:  'A' '1' || nonce (24) || XChaCha20-Poly1305(zstd frame) || tag
 * with associated data = the 64-char hex hash.  The zstd frame records its
 * content size (single-shot compression), which open() checks against
 * ARCHIVE_RAW_MAX before allocating.
 */
#include "archive/archive_crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/sys.h"

#define ACR_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define ACR_TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define ACR_KDF_CONTEXT "archkey"
#define ACR_KDF_ID 1
#define ACR_KEY_PREFIX "v1:"
#define ACR_KEY_PREFIX_LEN (sizeof(ACR_KEY_PREFIX) - 1)
#define ACR_KEYFILE_MAX 1024
#define ACR_MAGIC0 'A'
#define ACR_MAGIC1 '1'
#define ACR_HEADER_LEN (2 + ACR_NONCE_LEN)
#define ACR_ZSTD_LEVEL 3

_Static_assert(ARCHIVE_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "data key length");
_Static_assert(ARCHIVE_KEY_LEN == crypto_kdf_KEYBYTES, "master key length");
_Static_assert(sizeof(ACR_KDF_CONTEXT) == crypto_kdf_CONTEXTBYTES, "kdf context length");
_Static_assert(crypto_hash_sha256_BYTES * 2 == ARCHIVE_HASH_HEX_LEN, "hash length");

static void acr_err(char **err_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
acr_err(char **err_r, const char *fmt, ...)
{
	if (err_r == NULL)
		return;
	struct buf e = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&e, fmt, ap);
	va_end(ap);
	*err_r = buf_steal(&e);
}

static int
acr_init(char **err_r)
{
	if (sodium_init() < 0) {
		acr_err(err_r, "cannot initialise libsodium");
		return -1;
	}
	return 0;
}

void
archive_crypto_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		sodium_memzero(p, n);
}

void
archive_crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	int init = sodium_init();    /* SHA-256 works even if it failed */
	(void)init;
	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(out, 65, h, sizeof(h));
}

int
archive_crypto_hash_ok(const char *s)
{
	if (s == NULL)
		return 0;
	for (size_t i = 0; i < ARCHIVE_HASH_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[ARCHIVE_HASH_HEX_LEN] == '\0';
}

int
archive_crypto_tenant_ok(const char *t)
{
	size_t n = t != NULL ? strlen(t) : 0;
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '-'))
			return 0;
	return 1;
}

/* "<data_dir>/archive/<tenant>[/<file>]"; caller frees. */
static char *
acr_path(const char *data_dir, const char *tenant, const char *file)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s/archive/%s%s%s", data_dir, tenant, file ? "/" : "", file ? file : "");
	return buf_steal(&b);
}

/* ------------------------------------------------------------- master key */

/* Reads exactly ARCHIVE_KEY_LEN bytes into master: 0, -1 with *why_r (static text). */
static int
acr_read_master(const char *path, unsigned char master[ARCHIVE_KEY_LEN], const char **why_r)
{
	unsigned char b[ARCHIVE_KEY_LEN + 1];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*why_r = errno == ENOENT ? "missing (run mailark init)" : strerror(errno);
		return -1;
	}
	int rc = 0;
	while (len < sizeof(b)) {
		ssize_t n = read(fd, b + len, sizeof(b) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why_r = strerror(errno);
			rc = -1;
		}
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (rc == 0 && len != ARCHIVE_KEY_LEN) {
		*why_r = "not a master key (must be exactly 32 bytes)";
		rc = -1;
	}
	if (rc == 0)
		memcpy(master, b, ARCHIVE_KEY_LEN);
	sodium_memzero(b, sizeof(b));
	return rc;
}

/* The wrapping key of the node: 0, -1 with *err_r. */
static int
acr_wrap_key(const char *data_dir, unsigned char wk_r[ARCHIVE_KEY_LEN], char **err_r)
{
	unsigned char master[ARCHIVE_KEY_LEN];
	const char *why = NULL;
	struct buf path = BUF_INIT;
	int rc = -1;
	buf_appendf(&path, "%s/keys/master.key", data_dir);
	if (acr_read_master(buf_cstr(&path), master, &why) < 0)
		acr_err(err_r, "cannot use the master key %s: %s", buf_cstr(&path), why);
	else if (crypto_kdf_derive_from_key(wk_r, ARCHIVE_KEY_LEN, ACR_KDF_ID, ACR_KDF_CONTEXT,
	    master) != 0)
		acr_err(err_r, "cannot derive the archive key from %s", buf_cstr(&path));
	else
		rc = 0;
	sodium_memzero(master, sizeof(master));
	buf_free(&path);
	return rc;
}

/* -------------------------------------------------------- wrapping a key */

/* "v1:" + base64(nonce || sealed key); caller frees. */
static char *
acr_wrap(const unsigned char wk[ARCHIVE_KEY_LEN], const char *tenant,
    const unsigned char key[ARCHIVE_KEY_LEN])
{
	unsigned char raw[ACR_NONCE_LEN + ARCHIVE_KEY_LEN + ACR_TAG_LEN];
	unsigned long long clen = 0;
	randombytes_buf(raw, ACR_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(raw + ACR_NONCE_LEN, &clen, key, ARCHIVE_KEY_LEN,
	    (const unsigned char *)tenant, strlen(tenant), NULL, raw, wk);
	size_t b64len = sodium_base64_ENCODED_LEN(sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	char *out = xmalloc(ACR_KEY_PREFIX_LEN + b64len);
	memcpy(out, ACR_KEY_PREFIX, ACR_KEY_PREFIX_LEN);
	sodium_bin2base64(out + ACR_KEY_PREFIX_LEN, b64len, raw, ACR_NONCE_LEN + (size_t)clen,
	    sodium_base64_VARIANT_ORIGINAL);
	return out;
}

static int
acr_unwrap(const unsigned char wk[ARCHIVE_KEY_LEN], const char *tenant, const char *path,
    const char *text, size_t len, unsigned char key_r[ARCHIVE_KEY_LEN], char **err_r)
{
	unsigned char raw[ACR_NONCE_LEN + ARCHIVE_KEY_LEN + ACR_TAG_LEN + 1];
	size_t rawlen = 0;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len < ACR_KEY_PREFIX_LEN || memcmp(text, ACR_KEY_PREFIX, ACR_KEY_PREFIX_LEN) != 0 ||
	    sodium_base642bin(raw, sizeof(raw), text + ACR_KEY_PREFIX_LEN,
	    len - ACR_KEY_PREFIX_LEN, NULL, &rawlen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    rawlen != sizeof(raw) - 1) {
		acr_err(err_r, "the archive data key %s is malformed", path);
		return -1;
	}
	unsigned long long klen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(key_r, &klen, NULL, raw + ACR_NONCE_LEN,
	    rawlen - ACR_NONCE_LEN, (const unsigned char *)tenant, strlen(tenant), raw, wk) != 0 ||
	    klen != ARCHIVE_KEY_LEN) {
		sodium_memzero(key_r, ARCHIVE_KEY_LEN);
		acr_err(err_r, "the archive data key %s does not open: it was altered, or wrapped "
		    "with another master key or for another tenant", path);
		return -1;
	}
	return 0;
}

/* --------------------------------------------------------- key files */

/* Creates <data_dir>/archive and <data_dir>/archive/<tenant> (0700). */
static int
acr_mkdirs(const char *data_dir, const char *tenant, char **err_r)
{
	struct buf top = BUF_INIT;
	buf_appendf(&top, "%s/archive", data_dir);
	char *dir = acr_path(data_dir, tenant, NULL);
	int rc = -1;
	if (sys_mkdir_p(buf_cstr(&top), 0700) < 0)
		acr_err(err_r, "cannot create %s: %s", buf_cstr(&top), strerror(errno));
	else if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		acr_err(err_r, "cannot create %s: %s", dir, strerror(errno));
	else if (sys_fsync_dir(buf_cstr(&top)) < 0)
		acr_err(err_r, "cannot fsync %s: %s", buf_cstr(&top), strerror(errno));
	else
		rc = 0;
	buf_free(&top);
	free(dir);
	return rc;
}

/* Writes tmp fully and durably: 0, -1 with errno. */
static int
acr_write_tmp(const char *tmp, const char *text)
{
	int fd = sys_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (sys_write_all(fd, text, strlen(text)) < 0 || sys_fsync(fd) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return sys_close(fd);
}

/*
 * Installs text as path without replacing an existing file: 0 installed,
 * 1 somebody else's file is already there, -1 with *err_r.
 */
static int
acr_install(const char *dir, const char *path, const char *text, char **err_r)
{
	struct buf tmp = BUF_INIT;
	unsigned char r[8];
	char hex[sizeof(r) * 2 + 1];
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
	buf_appendf(&tmp, "%s/.datakey.tmp.%s", dir, hex);
	int rc = -1;
	if (acr_write_tmp(buf_cstr(&tmp), text) < 0) {
		acr_err(err_r, "cannot write %s: %s", buf_cstr(&tmp), strerror(errno));
	} else if (link(buf_cstr(&tmp), path) == 0) {
		rc = 0;
	} else if (errno == EEXIST) {
		rc = 1;
	} else {
		acr_err(err_r, "cannot install %s: %s", path, strerror(errno));
	}
	(void)unlink(buf_cstr(&tmp));
	if (rc == 0 && sys_fsync_dir(dir) < 0) {
		acr_err(err_r, "cannot fsync %s: %s", dir, strerror(errno));
		rc = -1;
	}
	buf_free(&tmp);
	return rc;
}

/* Makes a new data key and installs it: 0 (key_r is ours), 1 (lost a race), -1. */
static int
acr_create(const char *data_dir, const char *tenant, const unsigned char wk[ARCHIVE_KEY_LEN],
    unsigned char key_r[ARCHIVE_KEY_LEN], char **err_r)
{
	if (acr_mkdirs(data_dir, tenant, err_r) < 0)
		return -1;
	char *dir = acr_path(data_dir, tenant, NULL);
	char *path = acr_path(data_dir, tenant, "datakey");
	randombytes_buf(key_r, ARCHIVE_KEY_LEN);
	char *text = acr_wrap(wk, tenant, key_r);
	int rc = acr_install(dir, path, text, err_r);
	if (rc != 0)
		sodium_memzero(key_r, ARCHIVE_KEY_LEN);
	else
		log_info("archive_datakey_created", "tenant=%s", tenant);
	free(text);
	free(dir);
	free(path);
	return rc;
}

/* Reads and unwraps an existing key file: 0, 1 missing, -1 with *err_r. */
static int
acr_load_file(const char *data_dir, const char *tenant, const unsigned char wk[ARCHIVE_KEY_LEN],
    unsigned char key_r[ARCHIVE_KEY_LEN], char **err_r)
{
	char *path = acr_path(data_dir, tenant, "datakey");
	char *text = NULL;
	size_t len = 0;
	int rc;
	if (sys_read_file(path, ACR_KEYFILE_MAX, &text, &len) < 0) {
		rc = errno == ENOENT ? 1 : -1;
		if (rc < 0)
			acr_err(err_r, "cannot read the archive data key %s: %s", path,
			    errno == EFBIG ? "too large" : strerror(errno));
	} else {
		rc = acr_unwrap(wk, tenant, path, text, len, key_r, err_r);
	}
	free(text);
	free(path);
	return rc;
}

int
archive_crypto_datakey_load(const char *data_dir, const char *tenant, int create,
    unsigned char key_r[ARCHIVE_KEY_LEN], char **err_r)
{
	unsigned char wk[ARCHIVE_KEY_LEN];
	if (!archive_crypto_tenant_ok(tenant)) {
		acr_err(err_r, "'%s' is not a valid tenant name for the archive",
		    tenant ? log_str(tenant) : "");
		return -1;
	}
	if (acr_init(err_r) < 0 || acr_wrap_key(data_dir, wk, err_r) < 0)
		return -1;
	int rc = acr_load_file(data_dir, tenant, wk, key_r, err_r);
	if (rc == 1 && create) {
		rc = acr_create(data_dir, tenant, wk, key_r, err_r);
		if (rc == 1)    /* another creator won: use its key */
			rc = acr_load_file(data_dir, tenant, wk, key_r, err_r);
	}
	if (rc == 1)
		acr_err(err_r, "tenant '%s' has no archive data key (never created, or shredded)",
		    tenant);
	sodium_memzero(wk, sizeof(wk));
	return rc == 0 ? 0 : -1;
}

/* Overwrites the open file's bytes with random data and fsyncs: 0, -1 with errno. */
static int
acr_overwrite(int fd)
{
	struct stat st;
	unsigned char junk[ACR_KEYFILE_MAX];
	if (fstat(fd, &st) < 0)
		return -1;
	size_t n = st.st_size > 0 ? (size_t)st.st_size : 0;
	if (n > sizeof(junk))
		n = sizeof(junk);
	randombytes_buf(junk, n);
	if (sys_pwrite_all(fd, junk, n, 0) < 0)
		return -1;
	return sys_fsync(fd);
}

int
archive_crypto_datakey_shred(const char *data_dir, const char *tenant, char **err_r)
{
	if (!archive_crypto_tenant_ok(tenant)) {
		acr_err(err_r, "'%s' is not a valid tenant name for the archive",
		    tenant ? log_str(tenant) : "");
		return -1;
	}
	if (acr_init(err_r) < 0)
		return -1;
	char *dir = acr_path(data_dir, tenant, NULL);
	char *path = acr_path(data_dir, tenant, "datakey");
	int rc = -1;
	int fd = sys_open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd < 0 && errno == ENOENT) {
		rc = 0;
	} else if (fd < 0 || acr_overwrite(fd) < 0) {
		acr_err(err_r, "cannot overwrite %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
	} else if (sys_close(fd) < 0 || sys_unlink(path) < 0) {
		acr_err(err_r, "cannot remove %s: %s", path, strerror(errno));
	} else if (sys_fsync_dir(dir) < 0) {
		acr_err(err_r, "cannot fsync %s: %s", dir, strerror(errno));
	} else {
		rc = 0;
		log_info("archive_datakey_shredded", "tenant=%s", tenant);
	}
	free(dir);
	free(path);
	return rc;
}

/* ------------------------------------------------------------- blobs */

int
archive_crypto_seal(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const void *raw, size_t len, unsigned char **sealed_r, size_t *sealed_len_r, char **err_r)
{
	if (acr_init(err_r) < 0)
		return -1;
	if (!archive_crypto_hash_ok(hash_hex)) {
		acr_err(err_r, "cannot seal: the hash is not 64 lower-case hex digits");
		return -1;
	}
	if (len > ARCHIVE_RAW_MAX || (raw == NULL && len > 0)) {
		acr_err(err_r, "cannot seal a message of %zu bytes (limit %zu)", len,
		    ARCHIVE_RAW_MAX);
		return -1;
	}
	size_t bound = ZSTD_compressBound(len);
	unsigned char *z = xmalloc(bound);
	size_t zlen = ZSTD_compress(z, bound, raw != NULL ? raw : "", len, ACR_ZSTD_LEVEL);
	if (ZSTD_isError(zlen)) {
		acr_err(err_r, "cannot compress the message: %s", ZSTD_getErrorName(zlen));
		free(z);
		return -1;
	}
	unsigned char *out = xmalloc(ACR_HEADER_LEN + zlen + ACR_TAG_LEN);
	unsigned long long clen = 0;
	out[0] = ACR_MAGIC0;
	out[1] = ACR_MAGIC1;
	randombytes_buf(out + 2, ACR_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + ACR_HEADER_LEN, &clen, z, zlen,
	    (const unsigned char *)hash_hex, ARCHIVE_HASH_HEX_LEN, NULL, out + 2, key);
	archive_crypto_wipe(z, zlen);
	free(z);
	*sealed_r = out;
	*sealed_len_r = ACR_HEADER_LEN + (size_t)clen;
	return 0;
}

/* Decrypts a sealed blob into the zstd frame: 0 with *z_r, -1 with *err_r. */
static int
acr_decrypt(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const unsigned char *s, size_t len, unsigned char **z_r, size_t *zlen_r, char **err_r)
{
	if (len < ACR_HEADER_LEN + ACR_TAG_LEN || s[0] != ACR_MAGIC0 || s[1] != ACR_MAGIC1) {
		acr_err(err_r, "blob %s is not a sealed archive blob (bad header or too short)",
		    hash_hex);
		return -1;
	}
	size_t clen = len - ACR_HEADER_LEN;
	unsigned char *z = xmalloc(clen - ACR_TAG_LEN + 1);
	unsigned long long zlen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(z, &zlen, NULL, s + ACR_HEADER_LEN, clen,
	    (const unsigned char *)hash_hex, ARCHIVE_HASH_HEX_LEN, s + 2, key) != 0) {
		free(z);
		acr_err(err_r, "blob %s does not open: it was altered, belongs to another "
		    "message, or was sealed with another data key", hash_hex);
		return -1;
	}
	*z_r = z;
	*zlen_r = (size_t)zlen;
	return 0;
}

/* Decompresses a zstd frame of bounded size: 0 with *raw_r, -1 with *err_r. */
static int
acr_decompress(const char *hash_hex, const unsigned char *z, size_t zlen,
    unsigned char **raw_r, size_t *raw_len_r, char **err_r)
{
	unsigned long long want = ZSTD_getFrameContentSize(z, zlen);
	if (want == ZSTD_CONTENTSIZE_UNKNOWN || want == ZSTD_CONTENTSIZE_ERROR) {
		acr_err(err_r, "blob %s holds no valid compressed frame", hash_hex);
		return -1;
	}
	if (want > ARCHIVE_RAW_MAX) {
		acr_err(err_r, "blob %s claims %llu bytes (limit %zu)", hash_hex, want,
		    ARCHIVE_RAW_MAX);
		return -1;
	}
	unsigned char *raw = xmalloc((size_t)want + 1);
	size_t got = ZSTD_decompress(raw, (size_t)want, z, zlen);
	if (ZSTD_isError(got) || got != (size_t)want) {
		acr_err(err_r, "blob %s does not decompress: %s", hash_hex,
		    ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
		free(raw);
		return -1;
	}
	raw[got] = '\0';
	*raw_r = raw;
	*raw_len_r = got;
	return 0;
}

int
archive_crypto_open(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const void *sealed, size_t len, unsigned char **raw_r, size_t *raw_len_r, char **err_r)
{
	unsigned char *z = NULL, *raw = NULL;
	size_t zlen = 0, rlen = 0;
	char got[65];
	if (acr_init(err_r) < 0)
		return -1;
	if (!archive_crypto_hash_ok(hash_hex)) {
		acr_err(err_r, "cannot open a blob: the hash is not 64 lower-case hex digits");
		return -1;
	}
	if (sealed == NULL) {
		acr_err(err_r, "blob %s is empty", hash_hex);
		return -1;
	}
	if (acr_decrypt(key, hash_hex, sealed, len, &z, &zlen, err_r) < 0)
		return -1;
	int rc = acr_decompress(hash_hex, z, zlen, &raw, &rlen, err_r);
	free(z);
	if (rc < 0)
		return -1;
	archive_crypto_sha256_hex(raw, rlen, got);
	if (strcmp(got, hash_hex) != 0) {
		acr_err(err_r, "blob %s is corrupt: its content hashes to %s", hash_hex, got);
		free(raw);
		return -1;
	}
	*raw_r = raw;
	*raw_len_r = rlen;
	return 0;
}
