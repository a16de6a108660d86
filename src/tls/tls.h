/*
 * tls — the OpenSSL contexts every TLS user shares: the server context
 * (certificate and key from [tls], TLS 1.2 or later) and the client context
 * (TLS 1.2+, no certificate verification for opportunistic STARTTLS, as
 * RFC 7435 allows), plus the verifying client context that outbound TLS
 * policy (deliver/tls_policy.h: tenant, DLP, MTA-STS) uses.
 *
 * tls_self_signed() makes a key and certificate for `mailark init`.
 * Only this module and the bufferevent glue in smtp/ and deliver/ see SSL.
 */
#ifndef MAILARK_TLS_TLS_H
#define MAILARK_TLS_TLS_H

#include <openssl/ssl.h>

struct tls_contexts {
	SSL_CTX *server;   /* NULL when no certificate is available */
	SSL_CTX *client;
	SSL_CTX *client_verify;   /* verified TLS (tls_client_verify_load), or NULL */
};

int tls_contexts_new(const char *cert, const char *key, struct tls_contexts **t_r,
    char **err_r);
void tls_contexts_free(struct tls_contexts **t);
/*
 * Makes t->client_verify: TLS 1.2+, the peer's chain checked against ca_file
 * (NULL or "": the system CAs).  Sessions set the expected host name with
 * SSL_set1_host() and choose SSL_VERIFY_PEER (fail the handshake) or
 * SSL_VERIFY_NONE (check SSL_get_verify_result() afterwards).
 */
int tls_client_verify_load(struct tls_contexts *t, const char *ca_file, char **err_r);
/* Writes a new EC key (0600) and a self-signed certificate for hostname. */
int tls_self_signed(const char *hostname, const char *cert_path, const char *key_path,
    char **err_r);

#endif
