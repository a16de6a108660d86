/*
 * NAME
 *	tls — shared OpenSSL contexts and the self-signed certificate of init
 *
 * DESCRIPTION
 *	tls_contexts_new() always makes a client context (TLS 1.2+, no peer
 *	verification: opportunistic STARTTLS, RFC 7435) and a server context
 *	only when the certificate and key load and match; a missing
 *	certificate is not an error, the server then offers no STARTTLS.
 *	tls_client_verify_load() adds the verifying client context
 *	(tls_policy_start calls it with [delivery] tls_ca_file).
 *
 *	tls_self_signed() makes an EC P-256 key (file mode 0600) and an X.509
 *	v3 certificate for the hostname (CN and subjectAltName), valid ten
 *	years, both written atomically through sys_write_file_atomic().
 *
 * DIAGNOSTICS
 *	-1 with a reason in *err_r (caller frees), including OpenSSL's error.
 */
#include "tls/tls.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/sys.h"

static char *
tls_error(const char *what)
{
	struct buf b = BUF_INIT;
	unsigned long e = ERR_get_error();
	char msg[256];
	if (e != 0) {
		ERR_error_string_n(e, msg, sizeof(msg));
		buf_appendf(&b, "%s: %s", what, msg);
	} else {
		buf_append_str(&b, what);
	}
	ERR_clear_error();
	return buf_steal(&b);
}

static SSL_CTX *
tls_ctx_new(const SSL_METHOD *method, char **err_r)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (ctx == NULL) {
		*err_r = tls_error("SSL_CTX_new");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		*err_r = tls_error("SSL_CTX_set_min_proto_version");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

/* Returns the server context, or NULL (with *err_r set only on a real error). */
static SSL_CTX *
tls_server_ctx(const char *cert, const char *key, char **err_r)
{
	*err_r = NULL;
	if (cert == NULL || key == NULL || access(cert, R_OK) != 0 || access(key, R_OK) != 0)
		return NULL;
	SSL_CTX *ctx = tls_ctx_new(TLS_server_method(), err_r);
	if (ctx == NULL)
		return NULL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		*err_r = tls_error("loading the TLS certificate");
	} else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		*err_r = tls_error("loading the TLS key");
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		*err_r = tls_error("the TLS key does not match the certificate");
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"mailark", 7);
		return ctx;
	}
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_contexts_new(const char *cert, const char *key, struct tls_contexts **t_r, char **err_r)
{
	struct tls_contexts *t = xcalloc(1, sizeof(*t));
	char *err = NULL;
	t->server = tls_server_ctx(cert, key, &err);
	if (err != NULL) {
		*err_r = err;
		xfree(&t);
		return -1;
	}
	t->client = tls_ctx_new(TLS_client_method(), err_r);
	if (t->client == NULL) {
		tls_contexts_free(&t);
		return -1;
	}
	SSL_CTX_set_verify(t->client, SSL_VERIFY_NONE, NULL);
	*t_r = t;
	return 0;
}

int
tls_client_verify_load(struct tls_contexts *t, const char *ca_file, char **err_r)
{
	SSL_CTX *ctx = tls_ctx_new(TLS_client_method(), err_r);
	if (ctx == NULL)
		return -1;
	int ok = ca_file != NULL && ca_file[0] != '\0' ?
	    SSL_CTX_load_verify_locations(ctx, ca_file, NULL) :
	    SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "cannot load CA certificates from %s",
		    ca_file != NULL && ca_file[0] != '\0' ? ca_file : "the system store");
		*err_r = buf_steal(&b);
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_free(t->client_verify);
	t->client_verify = ctx;
	return 0;
}

void
tls_contexts_free(struct tls_contexts **t)
{
	if (*t == NULL)
		return;
	SSL_CTX_free((*t)->server);
	SSL_CTX_free((*t)->client);
	SSL_CTX_free((*t)->client_verify);
	xfree(t);
}

static EVP_PKEY *
tls_make_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static int
tls_add_ext(X509 *crt, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, crt, crt, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	int ok = X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static X509 *
tls_make_cert(EVP_PKEY *pkey, const char *hostname)
{
	X509 *crt = X509_new();
	if (crt == NULL)
		return NULL;
	unsigned char serial[16];
	ASN1_INTEGER *sn = NULL;
	BIGNUM *bn = NULL;
	struct buf san = BUF_INIT;
	int ok = 0;

	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	sn = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	if (sn == NULL || X509_set_version(crt, 2) != 1 || X509_set_serialNumber(crt, sn) != 1)
		goto out;
	if (X509_gmtime_adj(X509_getm_notBefore(crt), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(crt), 10L * 366 * 24 * 3600) == NULL)
		goto out;
	X509_NAME *name = X509_get_subject_name(crt);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)hostname, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(crt, name) != 1 || X509_set_pubkey(crt, pkey) != 1)
		goto out;
	buf_appendf(&san, "DNS:%s", hostname);
	if (tls_add_ext(crt, NID_subject_alt_name, buf_cstr(&san)) < 0 ||
	    tls_add_ext(crt, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    tls_add_ext(crt, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
	    tls_add_ext(crt, NID_subject_key_identifier, "hash") < 0)
		goto out;
	if (X509_sign(crt, pkey, EVP_sha256()) == 0)
		goto out;
	ok = 1;
out:
	buf_free(&san);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	if (!ok) {
		X509_free(crt);
		return NULL;
	}
	return crt;
}

/* PEM text of a key (private) or certificate, into *b. */
static int
tls_pem(EVP_PKEY *pkey, X509 *crt, struct buf *b)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		return -1;
	int ok = pkey != NULL ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
	    : PEM_write_bio_X509(bio, crt);
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	if (ok == 1 && len > 0)
		buf_append(b, data, (size_t)len);
	BIO_free(bio);
	return ok == 1 && len > 0 ? 0 : -1;
}

static int
tls_write_pem(EVP_PKEY *pkey, X509 *crt, const char *path, mode_t mode, char **err_r)
{
	struct buf b = BUF_INIT;
	if (tls_pem(pkey, crt, &b) < 0) {
		*err_r = tls_error("PEM encoding");
		buf_free(&b);
		return -1;
	}
	int rc = sys_write_file_atomic(path, b.data, b.len, mode);
	if (rc < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "%s: %s", path, strerror(errno));
		*err_r = buf_steal(&e);
	}
	if (b.data != NULL)
		OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	return rc;
}

int
tls_self_signed(const char *hostname, const char *cert_path, const char *key_path,
    char **err_r)
{
	EVP_PKEY *pkey = tls_make_key();
	if (pkey == NULL) {
		*err_r = tls_error("generating the EC key");
		return -1;
	}
	X509 *crt = tls_make_cert(pkey, hostname);
	int rc = -1;
	if (crt == NULL)
		*err_r = tls_error("making the self-signed certificate");
	else if (tls_write_pem(pkey, NULL, key_path, 0600, err_r) == 0 &&
	    tls_write_pem(NULL, crt, cert_path, 0644, err_r) == 0)
		rc = 0;
	X509_free(crt);
	EVP_PKEY_free(pkey);
	return rc;
}
