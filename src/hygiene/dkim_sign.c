/*
 * dkim_sign.c — per-domain DKIM keys (generation with OpenSSL EVP, files
 * under <data_dir>/dkim/<domain>/) and the outbound signing stage
 * (libopendkim); see dkim_sign.h.
 *
 * Key generation writes, in this order, each durably: <selector>.key (PEM,
 * 0600, O_EXCL so an existing selector is never overwritten), <selector>.txt
 * (the zone-file line) and `current` (the selector's name).  A crash leaves
 * at worst a key that is not current yet.
 */
#include "hygiene/dkim_sign.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <opendkim/dkim.h>

#include "config/config.h"
#include "hygiene/hygiene.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/sys.h"

#define DKIM_KEY_MAX (64 * 1024)

/* ---- names ---- */

static int
selector_valid(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* A host name of at least two labels of [a-z0-9-] (lower case), ≤ 253. */
static int
domain_valid(const char *d)
{
	size_t n = d != NULL ? strlen(d) : 0;
	if (n == 0 || n > 253 || strchr(d, '.') == NULL)
		return 0;
	size_t label = 0;
	for (size_t i = 0; i <= n; i++) {
		char c = d[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
		if (label == 0 && c == '-')
			return 0;
		label++;
	}
	return 1;
}

static char *
lower_dup(const char *s)
{
	char *d = xstrdup(s);
	for (char *p = d; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/* ---- keys ---- */

/* "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" (malloc'd), or NULL. */
static char *
dkim_txt_of(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	int dlen = i2d_PUBKEY(key, &der);
	if (dlen <= 0)
		return NULL;
	char *b64 = xmalloc(((size_t)dlen + 2) / 3 * 4 + 1);
	EVP_EncodeBlock((unsigned char *)b64, der, dlen);
	OPENSSL_free(der);
	char *txt = buf_printf("v=DKIM1; k=rsa; p=%s", b64);
	free(b64);
	return txt;
}

/* The zone-file line, the TXT split in strings of at most 255 bytes. */
static char *
dkim_zone_line(const char *selector, const char *domain, const char *txt)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s._domainkey.%s. IN TXT", selector, domain);
	size_t n = strlen(txt);
	for (size_t off = 0; off < n; off += 255)
		buf_appendf(&b, " \"%.*s\"", (int)(n - off > 255 ? 255 : n - off), txt + off);
	buf_append_str(&b, "\n");
	return buf_steal(&b);
}

static json_t *
key_json(const char *domain, const char *selector, int bits, const char *txt)
{
	char *name = buf_printf("%s._domainkey.%s", selector, domain);
	char *line = dkim_zone_line(selector, domain, txt);
	line[strlen(line) - 1] = '\0';
	json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "domain", domain, "selector",
	    selector, "bits", bits, "dns_name", name, "dns_txt", txt, "record", line);
	free(name);
	free(line);
	return o;
}

static char *
pem_of(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *out = NULL;
	if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
		char *p = NULL;
		long n = BIO_get_mem_data(bio, &p);
		if (n > 0)
			out = xstrndup(p, (size_t)n);
	}
	BIO_free(bio);
	return out;
}

static int
write_key_file(const char *path, const char *pem, char **err_r)
{
	int fd = sys_open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err_setf(err_r, errno == EEXIST ? "selector already exists"
		    : "cannot create the key file: %s", strerror(errno));
		return -1;
	}
	if (sys_write_all(fd, pem, strlen(pem)) < 0 || sys_fsync(fd) < 0) {
		err_setf(err_r, "cannot write the key file: %s", strerror(errno));
		sys_close(fd);
		sys_unlink(path);
		return -1;
	}
	if (sys_close(fd) < 0) {
		err_setf(err_r, "cannot write the key file: %s", strerror(errno));
		sys_unlink(path);
		return -1;
	}
	return 0;
}

static int
keygen_files(const char *dir, const char *domain, const char *selector, EVP_PKEY *key,
    const char *txt, char **err_r)
{
	char *pem = pem_of(key);
	if (pem == NULL) {
		err_setf(err_r, "cannot encode the key");
		return -1;
	}
	char *kpath = buf_printf("%s/%s.key", dir, selector);
	char *tpath = buf_printf("%s/%s.txt", dir, selector);
	char *cpath = buf_printf("%s/current", dir);
	char *line = dkim_zone_line(selector, domain, txt);
	char *cur = buf_printf("%s\n", selector);
	int rc = write_key_file(kpath, pem, err_r);
	if (rc == 0 && (sys_write_file_atomic(tpath, line, strlen(line), 0644) < 0
	    || sys_write_file_atomic(cpath, cur, strlen(cur), 0600) < 0
	    || sys_fsync_dir(dir) < 0)) {
		err_setf(err_r, "cannot write the key's files: %s", strerror(errno));
		rc = -1;
	}
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	free(kpath);
	free(tpath);
	free(cpath);
	free(line);
	free(cur);
	return rc;
}

int
dkim_keygen(const char *data_dir, const char *domain_in, const char *selector, int bits,
    json_t **out_r, char **err_r)
{
	*out_r = NULL;
	if (selector == NULL || selector[0] == '\0')
		selector = "mailark";
	if (!selector_valid(selector)) {
		err_setf(err_r, "invalid selector (1-63 of a-z, 0-9, -)");
		return -1;
	}
	if (bits == 0)
		bits = 2048;
	if (bits < 1024 || bits > 4096) {
		err_setf(err_r, "bits must be between 1024 and 4096");
		return -1;
	}
	char *domain = lower_dup(domain_in != NULL ? domain_in : "");
	if (!domain_valid(domain)) {
		err_setf(err_r, "invalid domain");
		free(domain);
		return -1;
	}
	char *dir = buf_printf("%s/dkim/%s", data_dir, domain);
	char *kpath = buf_printf("%s/%s.key", dir, selector);
	EVP_PKEY *key = NULL;
	char *txt = NULL;
	int rc = -1;
	if (access(kpath, F_OK) == 0) {
		err_setf(err_r, "selector already exists");
		goto done;
	}
	if (sys_mkdir_p(dir, 0700) < 0) {
		err_setf(err_r, "cannot create %s: %s", dir, strerror(errno));
		goto done;
	}
	key = EVP_RSA_gen((unsigned)bits);
	txt = key != NULL ? dkim_txt_of(key) : NULL;
	if (txt == NULL) {
		err_setf(err_r, "RSA key generation failed");
		goto done;
	}
	if (keygen_files(dir, domain, selector, key, txt, err_r) < 0)
		goto done;
	*out_r = key_json(domain, selector, bits, txt);
	log_info("dkim_keygen", "domain=%s selector=%s bits=%d", domain, selector, bits);
	rc = 0;
done:
	EVP_PKEY_free(key);
	free(txt);
	free(kpath);
	free(dir);
	free(domain);
	return rc;
}

/* The domain's current selector and its PEM key (both malloc'd). 0 / -1. */
static int
key_load(const char *data_dir, const char *domain, char **selector_r, char **pem_r,
    time_t *mtime_r)
{
	*selector_r = NULL;
	*pem_r = NULL;
	char *cpath = buf_printf("%s/dkim/%s/current", data_dir, domain);
	char *cur = NULL;
	size_t clen = 0;
	int rc = sys_read_file(cpath, 256, &cur, &clen);
	free(cpath);
	if (rc < 0)
		return -1;
	while (clen > 0 && (cur[clen - 1] == '\n' || cur[clen - 1] == '\r' || cur[clen - 1] == ' '))
		cur[--clen] = '\0';
	if (!selector_valid(cur)) {
		free(cur);
		return -1;
	}
	char *kpath = buf_printf("%s/dkim/%s/%s.key", data_dir, domain, cur);
	char *pem = NULL;
	size_t plen = 0;
	struct stat st;
	rc = sys_read_file(kpath, DKIM_KEY_MAX, &pem, &plen);
	if (rc == 0 && mtime_r != NULL)
		*mtime_r = stat(kpath, &st) == 0 ? st.st_mtime : 0;
	free(kpath);
	if (rc < 0) {
		free(cur);
		return -1;
	}
	*selector_r = cur;
	*pem_r = pem;
	return 0;
}

static EVP_PKEY *
pkey_of(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return k;
}

int
dkim_show(const char *data_dir, const char *domain_in, json_t **out_r, char **err_r)
{
	*out_r = NULL;
	char *domain = lower_dup(domain_in != NULL ? domain_in : "");
	char *selector = NULL, *pem = NULL, *txt = NULL;
	EVP_PKEY *key = NULL;
	time_t mtime = 0;
	int rc = -1;
	if (!domain_valid(domain)) {
		err_setf(err_r, "invalid domain");
		goto done;
	}
	if (key_load(data_dir, domain, &selector, &pem, &mtime) < 0) {
		err_setf(err_r, "no DKIM key for %s", domain);
		goto done;
	}
	key = pkey_of(pem);
	txt = key != NULL ? dkim_txt_of(key) : NULL;
	if (txt == NULL) {
		err_setf(err_r, "the key of %s cannot be read", domain);
		goto done;
	}
	*out_r = key_json(domain, selector, EVP_PKEY_get_bits(key), txt);
	char created[32];
	struct tm tm;
	if (gmtime_r(&mtime, &tm) != NULL
	    && strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		json_object_set_new(*out_r, "created", json_string(created));
	rc = 0;
done:
	EVP_PKEY_free(key);
	if (pem != NULL)
		OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	free(txt);
	free(selector);
	free(domain);
	return rc;
}

/* ---- signing ---- */

static const char *const sign_headers[] = {
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References", NULL,
};

static pthread_once_t sign_once = PTHREAD_ONCE_INIT;
static DKIM_LIB *sign_lib;

static void
sign_lib_init(void)
{
	sign_lib = dkim_init(NULL, NULL);
	if (sign_lib == NULL) {
		log_error("dkim_init_failed", "library=opendkim");
		return;
	}
	if (dkim_options(sign_lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, (void *)sign_headers,
	    sizeof(char **)) != DKIM_STAT_OK)
		log_error("dkim_init_failed", "option=signhdrs");
}

static char *
signing_domain(const struct hygiene_msg *m)
{
	const char *addr = m->header_from != NULL ? m->header_from : m->sender;
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	if (at == NULL || at[1] == '\0')
		return NULL;
	char *d = lower_dup(at + 1);
	if (!domain_valid(d)) {
		free(d);
		return NULL;
	}
	return d;
}

/* Signs data; the DKIM-Signature value (malloc'd) or NULL + *err_r. */
static char *
sign_data(const char *qid, const char *pem, const char *selector, const char *domain,
    const unsigned char *data, size_t len, char **err_r)
{
	pthread_once(&sign_once, sign_lib_init);
	if (sign_lib == NULL) {
		err_setf(err_r, "libopendkim unavailable");
		return NULL;
	}
	DKIM_STAT st = DKIM_STAT_OK;
	DKIM *d = dkim_sign(sign_lib, (const unsigned char *)(qid != NULL ? qid : "-"), NULL,
	    (dkim_sigkey_t)pem, (const unsigned char *)selector, (const unsigned char *)domain,
	    DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
	if (d == NULL) {
		err_setf(err_r, "dkim_sign failed (%d)", st);
		return NULL;
	}
	dkim_set_margin(d, 0);
	char *out = NULL;
	st = dkim_chunk(d, (u_char *)data, len);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(d, NULL, 0);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(d, NULL);
	u_char *hdr = NULL;
	size_t hlen = 0;
	if (st == DKIM_STAT_OK)
		st = dkim_getsighdr_d(d, strlen("DKIM-Signature: "), &hdr, &hlen);
	if (st == DKIM_STAT_OK && hdr != NULL)
		out = xstrndup((const char *)hdr, hlen);
	else
		err_setf(err_r, "signing failed: %s", dkim_geterror(d) != NULL ? dkim_geterror(d)
		    : "unknown error");
	dkim_free(d);
	return out;
}

int
dkim_sign_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	if (!m->pol->dkim_sign)
		return 0;
	const struct config *cfg = hygiene_config(m->h);
	char *domain = signing_domain(m);
	if (domain == NULL || cfg == NULL || cfg->data_dir == NULL) {
		free(domain);
		return 0;
	}
	char *selector = NULL, *pem = NULL;
	if (key_load(cfg->data_dir, domain, &selector, &pem, NULL) < 0) {
		free(domain);
		return 0;
	}
	const unsigned char *data;
	size_t len;
	hygiene_result_content(m, r, &data, &len);
	char *sig = sign_data(m->qid, pem, selector, domain, data, len, err_r);
	int rc = -1;
	if (sig != NULL) {
		hygiene_result_add_header(r, "DKIM-Signature", "%s", sig);
		hygiene_result_reason(r, "dkim:signed:%s", domain);
		rc = 0;
	}
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	free(sig);
	free(selector);
	free(domain);
	return rc;
}
