/*
 * auth_totp.c — RFC 6238 time-based one-time passwords: HMAC-SHA-1 (OpenSSL)
 * over the 30-second step counter, dynamic truncation (RFC 4226 §5.3),
 * six digits.  A code is accepted at the current step or one step either
 * side, compared in constant time.
 */
#include "auth/auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/mem.h"

#define TOTP_STEP 30
#define TOTP_MOD 1000000u

int
auth_totp_code(const unsigned char *secret, size_t len, time_t t, char out[7])
{
	unsigned char msg[8], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	uint64_t counter = t < 0 ? 0 : (uint64_t)t / TOTP_STEP;
	for (int i = 7; i >= 0; i--) {
		msg[i] = (unsigned char)(counter & 0xff);
		counter >>= 8;
	}
	if (HMAC(EVP_sha1(), secret, (int)len, msg, sizeof(msg), mac, &maclen) == NULL ||
	    maclen < 20)
		return -1;
	unsigned off = mac[maclen - 1] & 0x0f;
	uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
	    ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
	int n = snprintf(out, 7, "%06u", (unsigned)(bin % TOTP_MOD));
	return n == 6 ? 0 : -1;
}

int
auth_totp_check(const unsigned char *secret, size_t len, const char *code, time_t now)
{
	char want[7];
	int ok = 0;
	if (code == NULL || strlen(code) != 6)
		return 0;
	for (int step = -1; step <= 1; step++) {
		if (auth_totp_code(secret, len, now + step * TOTP_STEP, want) < 0)
			return 0;
		ok |= sodium_memcmp(want, code, 6) == 0;
	}
	sodium_memzero(want, sizeof(want));
	return ok;
}

static void
auth_base32(const unsigned char *in, size_t len, struct buf *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			buf_append_char(out, alphabet[(acc >> (bits - 5)) & 31]);
			bits -= 5;
		}
	}
	if (bits > 0)
		buf_append_char(out, alphabet[(acc << (5 - bits)) & 31]);
}

void
auth_totp_new(unsigned char secret[AUTH_TOTP_SECRET_LEN], char **base32_r)
{
	struct buf b = BUF_INIT;
	(void)auth_init();
	randombytes_buf(secret, AUTH_TOTP_SECRET_LEN);
	auth_base32(secret, AUTH_TOTP_SECRET_LEN, &b);
	*base32_r = buf_steal(&b);
}

/* Percent-encodes everything but RFC 3986 unreserved characters and '@'. */
static void
auth_uri_escape(struct buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~@", *p) != NULL)
			buf_append_char(b, (char)*p);
		else
			buf_appendf(b, "%%%02X", *p);
	}
}

char *
auth_totp_uri(const char *address, const char *base32)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "otpauth://totp/mailark:");
	auth_uri_escape(&b, address);
	buf_appendf(&b, "?secret=%s&issuer=mailark&algorithm=SHA1&digits=6&period=%d", base32,
	    TOTP_STEP);
	return buf_steal(&b);
}
