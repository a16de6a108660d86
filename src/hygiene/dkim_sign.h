/*
 * dkim_sign — DKIM signing of outbound mail (RFC 6376, libopendkim) with
 * per-domain keys kept under <data_dir>/dkim/, and their management
 * (`mailark dkim keygen|show DOMAIN`).
 *
 *   rc = dkim_sign_stage(m, r, &err);   // last outbound stage: signs the
 *                                       // content as rewritten, adds DKIM-Signature
 *   dkim_keygen(data_dir, "acme.example", "mailark", 2048, &out, &err);
 *   dkim_show(data_dir, "acme.example", &out, &err);
 *
 * Keys: <data_dir>/dkim/<domain>/<selector>.key (PEM, mode 0600) and
 * <selector>.txt (the DNS TXT record text:
 * "<selector>._domainkey.<domain>. IN TXT \"v=DKIM1; k=rsa; p=...\"");
 * <domain>/current names the active selector.  The signing domain is the
 * From header's domain (falling back to the envelope sender's) when it has
 * a key and the tenant's dkim.sign is on.  rsa-sha256, relaxed/relaxed,
 * headers From To Cc Subject Date Message-ID Reply-To MIME-Version
 * Content-Type Content-Transfer-Encoding In-Reply-To References.
 */
#ifndef MAILARK_HYGIENE_DKIM_SIGN_H
#define MAILARK_HYGIENE_DKIM_SIGN_H

#include <jansson.h>

struct hygiene_msg;
struct hygiene_result;

int dkim_sign_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);
/* Creates a key pair; *out_r = {domain, selector, bits, dns_name, dns_txt}.  0 / -1 + *err_r. */
int dkim_keygen(const char *data_dir, const char *domain, const char *selector, int bits,
    json_t **out_r, char **err_r);
/* The domain's active key: {domain, selector, bits, dns_name, dns_txt, created}.  -1 when none. */
int dkim_show(const char *data_dir, const char *domain, json_t **out_r, char **err_r);

#endif
