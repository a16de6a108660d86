/*
 * directory_secret.c — sealing the LDAP bind password (see the header).
 *
 * Layout of a sealed value, all after the "v1:" prefix in standard base64:
 *
 *   nonce (24 bytes, random) || XChaCha20-Poly1305 ciphertext || tag (16 bytes)
 *
 * The associated data is the tenant's name.  The master key is read into a
 * stack buffer of our own (not through sys_read_file, whose buffers are not
 * wiped) and wiped as soon as the sub-key is derived.
 */
#include "directory/directory_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/mem.h"

#define DSEC_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define DSEC_TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define DSEC_PREFIX_LEN (sizeof(DIRECTORY_SECRET_PREFIX) - 1)
#define DSEC_KDF_CONTEXT "dirpass"
#define DSEC_KDF_ID 1

_Static_assert(DIRECTORY_SECRET_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
    "directory key length");
_Static_assert(DIRECTORY_SECRET_KEY_LEN == crypto_kdf_KEYBYTES, "master key length");
_Static_assert(sizeof(DSEC_KDF_CONTEXT) == crypto_kdf_CONTEXTBYTES, "kdf context length");

static void
dsec_err(char **err_r, const char *what, const char *detail)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
	*err_r = buf_steal(&e);
}

static int
dsec_init(char **err_r)
{
	if (sodium_init() < 0) {
		dsec_err(err_r, "cannot initialise libsodium", NULL);
		return -1;
	}
	return 0;
}

void
directory_secret_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		sodium_memzero(p, n);
}

void
directory_secret_free(char *plain)
{
	if (plain != NULL) {
		sodium_memzero(plain, strlen(plain));
		free(plain);
	}
}

int
directory_secret_is_sealed(const char *stored)
{
	return stored != NULL && strncmp(stored, DIRECTORY_SECRET_PREFIX, DSEC_PREFIX_LEN) == 0;
}

int
directory_secret_key_derive(const unsigned char master[DIRECTORY_SECRET_KEY_LEN],
    unsigned char key_r[DIRECTORY_SECRET_KEY_LEN])
{
	if (sodium_init() < 0)
		return -1;
	return crypto_kdf_derive_from_key(key_r, DIRECTORY_SECRET_KEY_LEN, DSEC_KDF_ID,
	    DSEC_KDF_CONTEXT, master) == 0 ? 0 : -1;
}

/* Reads exactly DIRECTORY_SECRET_KEY_LEN bytes: 0, -1 with *why_r (static text). */
static int
dsec_read_master(const char *path, unsigned char master[DIRECTORY_SECRET_KEY_LEN],
    const char **why_r)
{
	unsigned char buf[DIRECTORY_SECRET_KEY_LEN + 1];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*why_r = errno == ENOENT ? "missing (run mailark init)" : strerror(errno);
		return -1;
	}
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why_r = strerror(errno);
			close(fd);
			sodium_memzero(buf, sizeof(buf));
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	int rc = 0;
	if (len != DIRECTORY_SECRET_KEY_LEN) {
		*why_r = "not a master key (must be exactly 32 bytes)";
		rc = -1;
	} else {
		memcpy(master, buf, DIRECTORY_SECRET_KEY_LEN);
	}
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

int
directory_secret_key_load(const char *data_dir, unsigned char key_r[DIRECTORY_SECRET_KEY_LEN],
    char **err_r)
{
	unsigned char master[DIRECTORY_SECRET_KEY_LEN];
	const char *why = NULL;
	struct buf path = BUF_INIT;
	int rc = -1;
	if (dsec_init(err_r) < 0)
		return -1;
	buf_appendf(&path, "%s/keys/master.key", data_dir);
	if (dsec_read_master(buf_cstr(&path), master, &why) < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "cannot use the master key %s: %s", buf_cstr(&path), why);
		*err_r = buf_steal(&e);
	} else if (directory_secret_key_derive(master, key_r) < 0) {
		dsec_err(err_r, "cannot derive the directory key from", buf_cstr(&path));
	} else {
		rc = 0;
	}
	sodium_memzero(master, sizeof(master));
	buf_free(&path);
	return rc;
}

int
directory_secret_seal(const unsigned char key[DIRECTORY_SECRET_KEY_LEN], const char *tenant,
    const char *plain, char **sealed_r, char **err_r)
{
	size_t plen = strlen(plain);
	if (dsec_init(err_r) < 0)
		return -1;
	if (plen > DIRECTORY_SECRET_MAX) {
		dsec_err(err_r, "the bind password is too long", NULL);
		return -1;
	}
	size_t rawlen = DSEC_NONCE_LEN + plen + DSEC_TAG_LEN;
	unsigned char *raw = xmalloc(rawlen);
	unsigned long long clen;
	randombytes_buf(raw, DSEC_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(raw + DSEC_NONCE_LEN, &clen,
	    (const unsigned char *)plain, plen, (const unsigned char *)tenant, strlen(tenant),
	    NULL, raw, key);
	size_t b64len = sodium_base64_ENCODED_LEN(rawlen, sodium_base64_VARIANT_ORIGINAL);
	char *out = xmalloc(DSEC_PREFIX_LEN + b64len);
	memcpy(out, DIRECTORY_SECRET_PREFIX, DSEC_PREFIX_LEN);
	sodium_bin2base64(out + DSEC_PREFIX_LEN, b64len, raw, DSEC_NONCE_LEN + (size_t)clen,
	    sodium_base64_VARIANT_ORIGINAL);
	free(raw);
	*sealed_r = out;
	return 0;
}

int
directory_secret_open(const unsigned char key[DIRECTORY_SECRET_KEY_LEN], const char *tenant,
    const char *stored, char **plain_r, char **err_r)
{
	static const char *const bad = "the stored bind password cannot be opened";
	if (!directory_secret_is_sealed(stored)) {
		*plain_r = xstrdup(stored);
		return 1;
	}
	if (dsec_init(err_r) < 0)
		return -1;
	const char *b64 = stored + DSEC_PREFIX_LEN;
	size_t b64len = strlen(b64);
	size_t maxraw = DSEC_NONCE_LEN + DIRECTORY_SECRET_MAX + DSEC_TAG_LEN;
	if (b64len > sodium_base64_ENCODED_LEN(maxraw, sodium_base64_VARIANT_ORIGINAL)) {
		dsec_err(err_r, bad, "the sealed value is too long");
		return -1;
	}
	unsigned char *raw = xmalloc(b64len + 1);
	size_t rawlen = 0;
	if (sodium_base642bin(raw, b64len + 1, b64, b64len, NULL, &rawlen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || rawlen < DSEC_NONCE_LEN + DSEC_TAG_LEN) {
		free(raw);
		dsec_err(err_r, bad, "the sealed value is malformed");
		return -1;
	}
	size_t clen = rawlen - DSEC_NONCE_LEN;
	char *plain = xmalloc(clen - DSEC_TAG_LEN + 1);
	unsigned long long plen;
	int rc = crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)plain, &plen, NULL,
	    raw + DSEC_NONCE_LEN, clen, (const unsigned char *)tenant, strlen(tenant), raw, key);
	free(raw);
	if (rc != 0) {
		sodium_memzero(plain, clen - DSEC_TAG_LEN + 1);
		free(plain);
		dsec_err(err_r, bad, "it was altered, or sealed with another master key or for "
		    "another tenant (set it again with --bind-password-stdin)");
		return -1;
	}
	plain[plen] = '\0';
	if (memchr(plain, '\0', (size_t)plen) != NULL) {
		directory_secret_wipe(plain, (size_t)plen);
		free(plain);
		dsec_err(err_r, bad, "it holds a NUL byte");
		return -1;
	}
	*plain_r = plain;
	return 0;
}
