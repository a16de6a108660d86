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
 *
 * Format 2:  'A' '2' || dict id (4, BE) || nonce (24) || AEAD(zstd frame)
 * with AD = hash (64) || dict id (4, BE); the frame is compressed with the
 * dictionary and omits zstd's own dictionary id (ours is in the header).
 * Sealed dictionary:  'D' '1' || nonce (24) || AEAD(dictionary) with
 * AD = "mailark-dict" || id (4, BE).
 */
#include "archive/archive_crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zdict.h>
#include <zstd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
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
#define ACR_MAGIC1_V2 '2'
#define ACR_DICT_MAGIC0 'D'
#define ACR_HEADER_LEN (2 + ACR_NONCE_LEN)
#define ACR_V2_PREFIX_LEN (2 + 4)
#define ACR_ZSTD_LEVEL 3
#define ACR_ZSTD_DICT_LEVEL 3     /* 5: -1 point of raw, 1.4x the CPU; 7: -2, 3x */
#define ACR_DICT_AD "mailark-dict"
#define ACR_DICT_AD_LEN (sizeof(ACR_DICT_AD) - 1)
#define ACR_DICT_MIN 256

struct archive_zdict {
	uint32_t id;
	unsigned char *dict;
	size_t len;
	ZSTD_CDict *cdict;            /* created on first seal */
	ZSTD_CCtx *cctx;
	ZSTD_DDict *ddict;            /* created on first open */
	ZSTD_DCtx *dctx;
};

_Static_assert(ARCHIVE_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "data key length");
_Static_assert(ARCHIVE_KEY_LEN == crypto_kdf_KEYBYTES, "master key length");
_Static_assert(sizeof(ACR_KDF_CONTEXT) == crypto_kdf_CONTEXTBYTES, "kdf context length");
_Static_assert(crypto_hash_sha256_BYTES * 2 == ARCHIVE_HASH_HEX_LEN, "hash length");

static int
acr_init(char **err_r)
{
	if (sodium_init() < 0) {
		err_setf(err_r, "cannot initialise libsodium");
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
	/* OpenSSL's SHA-256 uses the CPU's SHA extensions: ~5x libsodium's
	 * portable code, and every blob read re-checks its hash. */
	unsigned char h[SHA256_DIGEST_LENGTH];
	SHA256(data, len, h);
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
	return str_tenant_name_valid(t);
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
		err_setf(err_r, "cannot use the master key %s: %s", buf_cstr(&path), why);
	else if (crypto_kdf_derive_from_key(wk_r, ARCHIVE_KEY_LEN, ACR_KDF_ID, ACR_KDF_CONTEXT,
	    master) != 0)
		err_setf(err_r, "cannot derive the archive key from %s", buf_cstr(&path));
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
		err_setf(err_r, "the archive data key %s is malformed", path);
		return -1;
	}
	unsigned long long klen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(key_r, &klen, NULL, raw + ACR_NONCE_LEN,
	    rawlen - ACR_NONCE_LEN, (const unsigned char *)tenant, strlen(tenant), raw, wk) != 0 ||
	    klen != ARCHIVE_KEY_LEN) {
		sodium_memzero(key_r, ARCHIVE_KEY_LEN);
		err_setf(err_r, "the archive data key %s does not open: it was altered, or wrapped "
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
		err_setf(err_r, "cannot create %s: %s", buf_cstr(&top), strerror(errno));
	else if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		err_setf(err_r, "cannot create %s: %s", dir, strerror(errno));
	else if (sys_fsync_dir(buf_cstr(&top)) < 0)
		err_setf(err_r, "cannot fsync %s: %s", buf_cstr(&top), strerror(errno));
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
		err_setf(err_r, "cannot write %s: %s", buf_cstr(&tmp), strerror(errno));
	} else if (link(buf_cstr(&tmp), path) == 0) {
		rc = 0;
	} else if (errno == EEXIST) {
		rc = 1;
	} else {
		err_setf(err_r, "cannot install %s: %s", path, strerror(errno));
	}
	(void)unlink(buf_cstr(&tmp));
	if (rc == 0 && sys_fsync_dir(dir) < 0) {
		err_setf(err_r, "cannot fsync %s: %s", dir, strerror(errno));
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
			err_setf(err_r, "cannot read the archive data key %s: %s", path,
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
		err_setf(err_r, "'%s' is not a valid tenant name for the archive",
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
		err_setf(err_r, "tenant '%s' has no archive data key (never created, or shredded)",
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
		err_setf(err_r, "'%s' is not a valid tenant name for the archive",
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
		err_setf(err_r, "cannot overwrite %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
	} else if (sys_close(fd) < 0 || sys_unlink(path) < 0) {
		err_setf(err_r, "cannot remove %s: %s", path, strerror(errno));
	} else if (sys_fsync_dir(dir) < 0) {
		err_setf(err_r, "cannot fsync %s: %s", dir, strerror(errno));
	} else {
		rc = 0;
		log_info("archive_datakey_shredded", "tenant=%s", tenant);
	}
	free(dir);
	free(path);
	return rc;
}

/* ------------------------------------------------------------- framing */

static void
acr_put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
acr_get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* prefix || nonce (random) || AEAD(msg, ad): the sealed bytes; caller frees. */
static unsigned char *
acr_seal_frame(const unsigned char key[ARCHIVE_KEY_LEN], const unsigned char *prefix,
    size_t plen, const unsigned char *ad, size_t adlen, const unsigned char *msg, size_t mlen,
    size_t *out_len_r)
{
	unsigned char *out = xmalloc(plen + ACR_NONCE_LEN + mlen + ACR_TAG_LEN);
	unsigned long long clen = 0;
	memcpy(out, prefix, plen);
	randombytes_buf(out + plen, ACR_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + plen + ACR_NONCE_LEN, &clen, msg, mlen,
	    ad, adlen, NULL, out + plen, key);
	*out_len_r = plen + ACR_NONCE_LEN + (size_t)clen;
	return out;
}

/* Opens prefix || nonce || AEAD (len checked by the caller): the message, NULL if forged. */
static unsigned char *
acr_open_frame(const unsigned char key[ARCHIVE_KEY_LEN], const unsigned char *s, size_t len,
    size_t plen, const unsigned char *ad, size_t adlen, size_t *mlen_r)
{
	size_t clen = len - plen - ACR_NONCE_LEN;
	unsigned char *m = xmalloc(clen - ACR_TAG_LEN + 1);
	unsigned long long mlen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(m, &mlen, NULL, s + plen + ACR_NONCE_LEN,
	    clen, ad, adlen, s + plen, key) != 0) {
		free(m);
		return NULL;
	}
	*mlen_r = (size_t)mlen;
	return m;
}

/* ------------------------------------------------------------- dictionaries */

int
archive_crypto_dict_train(const void *samples, const size_t *lens, size_t n, size_t capacity,
    unsigned char **dict_r, size_t *dict_len_r, char **err_r)
{
	if (capacity > ARCHIVE_DICT_MAX)
		capacity = ARCHIVE_DICT_MAX;
	if (capacity < ACR_DICT_MIN || n == 0 || n > 1000000) {
		err_setf(err_r, "cannot train a dictionary: %zu samples, capacity %zu", n, capacity);
		return -1;
	}
	unsigned char *d = xmalloc(capacity);
	size_t got = ZDICT_trainFromBuffer(d, capacity, samples, lens, (unsigned)n);
	if (ZDICT_isError(got) || got < ACR_DICT_MIN) {
		err_setf(err_r, "cannot train a dictionary from %zu samples: %s", n,
		    ZDICT_isError(got) ? ZDICT_getErrorName(got) : "too small");
		archive_crypto_wipe(d, capacity);
		free(d);
		return -1;
	}
	*dict_r = d;
	*dict_len_r = got;
	return 0;
}

/* "mailark-dict" || id: the associated data of a sealed dictionary. */
static void
acr_dict_ad(uint32_t id, unsigned char ad[ACR_DICT_AD_LEN + 4])
{
	memcpy(ad, ACR_DICT_AD, ACR_DICT_AD_LEN);
	acr_put_be32(ad + ACR_DICT_AD_LEN, id);
}

int
archive_crypto_dict_seal(const unsigned char key[ARCHIVE_KEY_LEN], uint32_t id,
    const void *dict, size_t len, unsigned char **sealed_r, size_t *sealed_len_r, char **err_r)
{
	static const unsigned char prefix[2] = { ACR_DICT_MAGIC0, ACR_MAGIC1 };
	unsigned char ad[ACR_DICT_AD_LEN + 4];
	if (acr_init(err_r) < 0)
		return -1;
	if (id == 0 || dict == NULL || len == 0 || len > ARCHIVE_DICT_MAX) {
		err_setf(err_r, "cannot seal dictionary %u of %zu bytes", id, len);
		return -1;
	}
	acr_dict_ad(id, ad);
	*sealed_r = acr_seal_frame(key, prefix, sizeof(prefix), ad, sizeof(ad), dict, len,
	    sealed_len_r);
	return 0;
}

int
archive_crypto_dict_open(const unsigned char key[ARCHIVE_KEY_LEN], uint32_t id,
    const void *sealed, size_t len, unsigned char **dict_r, size_t *dict_len_r, char **err_r)
{
	const unsigned char *s = sealed;
	unsigned char ad[ACR_DICT_AD_LEN + 4];
	if (acr_init(err_r) < 0)
		return -1;
	if (s == NULL || len < ACR_HEADER_LEN + ACR_TAG_LEN + 1 ||
	    len > ACR_HEADER_LEN + ACR_TAG_LEN + ARCHIVE_DICT_MAX ||
	    s[0] != ACR_DICT_MAGIC0 || s[1] != ACR_MAGIC1) {
		err_setf(err_r, "dictionary %u is not a sealed dictionary (bad header or size)", id);
		return -1;
	}
	acr_dict_ad(id, ad);
	unsigned char *d = acr_open_frame(key, s, len, 2, ad, sizeof(ad), dict_len_r);
	if (d == NULL) {
		err_setf(err_r, "dictionary %u does not open: it was altered, moved to another id, "
		    "or sealed with another data key", id);
		return -1;
	}
	*dict_r = d;
	return 0;
}

struct archive_zdict *
archive_crypto_zdict_new(uint32_t id, const void *dict, size_t len, char **err_r)
{
	if (id == 0 || dict == NULL || len < ACR_DICT_MIN || len > ARCHIVE_DICT_MAX) {
		err_setf(err_r, "dictionary %u of %zu bytes is not usable", id, len);
		return NULL;
	}
	struct archive_zdict *zd = xcalloc(1, sizeof(*zd));
	zd->id = id;
	zd->dict = xmalloc(len);
	memcpy(zd->dict, dict, len);
	zd->len = len;
	return zd;
}

void
archive_crypto_zdict_free(struct archive_zdict **zdp)
{
	struct archive_zdict *zd = *zdp;
	if (zd == NULL)
		return;
	ZSTD_freeCDict(zd->cdict);
	ZSTD_freeCCtx(zd->cctx);
	ZSTD_freeDDict(zd->ddict);
	ZSTD_freeDCtx(zd->dctx);
	archive_crypto_wipe(zd->dict, zd->len);
	free(zd->dict);
	free(zd);
	*zdp = NULL;
}

uint32_t
archive_crypto_zdict_id(const struct archive_zdict *zd)
{
	return zd->id;
}

/* ------------------------------------------------------------- blobs */

/* Compresses with zd's dictionary: the zstd frame length, or a zstd error code. */
static size_t
acr_compress_zdict(struct archive_zdict *zd, void *z, size_t bound, const void *raw,
    size_t len)
{
	if (zd->cdict == NULL)
		zd->cdict = ZSTD_createCDict(zd->dict, zd->len, ACR_ZSTD_DICT_LEVEL);
	if (zd->cctx == NULL)
		zd->cctx = ZSTD_createCCtx();
	if (zd->cdict == NULL || zd->cctx == NULL)
		return ZSTD_compress(z, 0, raw, len, ACR_ZSTD_LEVEL);    /* an error code */
	size_t rc = ZSTD_CCtx_reset(zd->cctx, ZSTD_reset_session_and_parameters);
	if (!ZSTD_isError(rc))
		rc = ZSTD_CCtx_refCDict(zd->cctx, zd->cdict);
	if (!ZSTD_isError(rc))
		rc = ZSTD_CCtx_setParameter(zd->cctx, ZSTD_c_dictIDFlag, 0);
	if (!ZSTD_isError(rc))
		rc = ZSTD_CCtx_setParameter(zd->cctx, ZSTD_c_contentSizeFlag, 1);
	if (ZSTD_isError(rc))
		return rc;
	return ZSTD_compress2(zd->cctx, z, bound, raw, len);
}

int
archive_crypto_seal_zdict(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    struct archive_zdict *zd, const void *raw, size_t len, unsigned char **sealed_r,
    size_t *sealed_len_r, char **err_r)
{
	if (acr_init(err_r) < 0)
		return -1;
	if (!archive_crypto_hash_ok(hash_hex)) {
		err_setf(err_r, "cannot seal: the hash is not 64 lower-case hex digits");
		return -1;
	}
	if (len > ARCHIVE_RAW_MAX || (raw == NULL && len > 0)) {
		err_setf(err_r, "cannot seal a message of %zu bytes (limit %zu)", len,
		    ARCHIVE_RAW_MAX);
		return -1;
	}
	size_t bound = ZSTD_compressBound(len);
	unsigned char *z = xmalloc(bound);
	const void *src = raw != NULL ? raw : "";
	size_t zlen = zd != NULL ? acr_compress_zdict(zd, z, bound, src, len) :
	    ZSTD_compress(z, bound, src, len, ACR_ZSTD_LEVEL);
	if (ZSTD_isError(zlen)) {
		err_setf(err_r, "cannot compress the message: %s", ZSTD_getErrorName(zlen));
		free(z);
		return -1;
	}
	unsigned char prefix[ACR_V2_PREFIX_LEN] = { ACR_MAGIC0, ACR_MAGIC1 };
	unsigned char ad[ARCHIVE_HASH_HEX_LEN + 4];
	memcpy(ad, hash_hex, ARCHIVE_HASH_HEX_LEN);
	size_t plen = 2, adlen = ARCHIVE_HASH_HEX_LEN;
	if (zd != NULL) {
		prefix[1] = ACR_MAGIC1_V2;
		acr_put_be32(prefix + 2, zd->id);
		memcpy(ad + ARCHIVE_HASH_HEX_LEN, prefix + 2, 4);
		plen = ACR_V2_PREFIX_LEN;
		adlen += 4;
	}
	*sealed_r = acr_seal_frame(key, prefix, plen, ad, adlen, z, zlen, sealed_len_r);
	archive_crypto_wipe(z, zlen);
	free(z);
	return 0;
}

int
archive_crypto_seal(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const void *raw, size_t len, unsigned char **sealed_r, size_t *sealed_len_r, char **err_r)
{
	return archive_crypto_seal_zdict(key, hash_hex, NULL, raw, len, sealed_r, sealed_len_r,
	    err_r);
}

int
archive_crypto_blob_dict(const void *sealed, size_t len, uint32_t *id_r)
{
	const unsigned char *s = sealed;
	*id_r = 0;
	if (s == NULL || len < ACR_HEADER_LEN + ACR_TAG_LEN || s[0] != ACR_MAGIC0)
		return -1;
	if (s[1] == ACR_MAGIC1)
		return 0;
	if (s[1] != ACR_MAGIC1_V2 || len < ACR_V2_PREFIX_LEN + ACR_NONCE_LEN + ACR_TAG_LEN)
		return -1;
	*id_r = acr_get_be32(s + 2);
	return 1;
}

/* Decrypts a sealed blob of either format into the zstd frame: 0 with *z_r, -1 with *err_r. */
static int
acr_decrypt(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const unsigned char *s, size_t len, unsigned char **z_r, size_t *zlen_r, char **err_r)
{
	uint32_t id = 0;
	int v = archive_crypto_blob_dict(s, len, &id);
	if (v < 0) {
		err_setf(err_r, "blob %s is not a sealed archive blob (bad header or too short)",
		    hash_hex);
		return -1;
	}
	unsigned char ad[ARCHIVE_HASH_HEX_LEN + 4];
	memcpy(ad, hash_hex, ARCHIVE_HASH_HEX_LEN);
	if (v == 1)
		memcpy(ad + ARCHIVE_HASH_HEX_LEN, s + 2, 4);
	size_t plen = v == 1 ? ACR_V2_PREFIX_LEN : 2;
	unsigned char *z = acr_open_frame(key, s, len, plen, ad,
	    ARCHIVE_HASH_HEX_LEN + (v == 1 ? 4 : 0), zlen_r);
	if (z == NULL) {
		err_setf(err_r, "blob %s does not open: it was altered, belongs to another "
		    "message, or was sealed with another data key", hash_hex);
		return -1;
	}
	*z_r = z;
	return 0;
}

/* Decompresses a zstd frame of bounded size (zd: with its dictionary): 0 with *raw_r, -1. */
static int
acr_decompress(const char *hash_hex, struct archive_zdict *zd, const unsigned char *z,
    size_t zlen, unsigned char **raw_r, size_t *raw_len_r, char **err_r)
{
	unsigned long long want = ZSTD_getFrameContentSize(z, zlen);
	if (want == ZSTD_CONTENTSIZE_UNKNOWN || want == ZSTD_CONTENTSIZE_ERROR) {
		err_setf(err_r, "blob %s holds no valid compressed frame", hash_hex);
		return -1;
	}
	if (want > ARCHIVE_RAW_MAX) {
		err_setf(err_r, "blob %s claims %llu bytes (limit %zu)", hash_hex, want,
		    ARCHIVE_RAW_MAX);
		return -1;
	}
	if (zd != NULL && zd->ddict == NULL)
		zd->ddict = ZSTD_createDDict(zd->dict, zd->len);
	if (zd != NULL && zd->dctx == NULL)
		zd->dctx = ZSTD_createDCtx();
	if (zd != NULL && (zd->ddict == NULL || zd->dctx == NULL)) {
		err_setf(err_r, "blob %s: cannot load dictionary %u", hash_hex, zd->id);
		return -1;
	}
	unsigned char *raw = xmalloc((size_t)want + 1);
	size_t got = zd != NULL ?
	    ZSTD_decompress_usingDDict(zd->dctx, raw, (size_t)want, z, zlen, zd->ddict) :
	    ZSTD_decompress(raw, (size_t)want, z, zlen);
	if (ZSTD_isError(got) || got != (size_t)want) {
		err_setf(err_r, "blob %s does not decompress: %s", hash_hex,
		    ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
		free(raw);
		return -1;
	}
	raw[got] = '\0';
	*raw_r = raw;
	*raw_len_r = got;
	return 0;
}

/* Checks the arguments and the dictionary a blob needs: 0, -1 with *err_r. */
static int
acr_open_check(const char *hash_hex, struct archive_zdict *zd, const void *sealed, size_t len,
    struct archive_zdict **use_r, char **err_r)
{
	uint32_t id = 0;
	*use_r = NULL;
	if (acr_init(err_r) < 0)
		return -1;
	if (!archive_crypto_hash_ok(hash_hex)) {
		err_setf(err_r, "cannot open a blob: the hash is not 64 lower-case hex digits");
		return -1;
	}
	if (sealed == NULL) {
		err_setf(err_r, "blob %s is empty", hash_hex);
		return -1;
	}
	if (archive_crypto_blob_dict(sealed, len, &id) == 1) {
		if (zd == NULL || zd->id != id) {
			err_setf(err_r, "blob %s needs compression dictionary %u, which is not "
			    "loaded", hash_hex, id);
			return -1;
		}
		*use_r = zd;
	}
	return 0;
}

int
archive_crypto_open_zdict(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    struct archive_zdict *zd, const void *sealed, size_t len, unsigned char **raw_r,
    size_t *raw_len_r, char **err_r)
{
	unsigned char *z = NULL, *raw = NULL;
	size_t zlen = 0, rlen = 0;
	struct archive_zdict *use = NULL;
	char got[65];
	if (acr_open_check(hash_hex, zd, sealed, len, &use, err_r) < 0 ||
	    acr_decrypt(key, hash_hex, sealed, len, &z, &zlen, err_r) < 0)
		return -1;
	int rc = acr_decompress(hash_hex, use, z, zlen, &raw, &rlen, err_r);
	archive_crypto_wipe(z, zlen);
	free(z);
	if (rc < 0)
		return -1;
	archive_crypto_sha256_hex(raw, rlen, got);
	if (strcmp(got, hash_hex) != 0) {
		err_setf(err_r, "blob %s is corrupt: its content hashes to %s", hash_hex, got);
		free(raw);
		return -1;
	}
	*raw_r = raw;
	*raw_len_r = rlen;
	return 0;
}

int
archive_crypto_open(const unsigned char key[ARCHIVE_KEY_LEN], const char *hash_hex,
    const void *sealed, size_t len, unsigned char **raw_r, size_t *raw_len_r, char **err_r)
{
	return archive_crypto_open_zdict(key, hash_hex, NULL, sealed, len, raw_r, raw_len_r,
	    err_r);
}
