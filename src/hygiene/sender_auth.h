/*
 * sender_auth — SPF (libspf2), DKIM verification (libopendkim) and DMARC
 * (libopendmarc) for inbound mail, and the Authentication-Results header
 * (RFC 8601) that records them, authserv-id = [server] hostname.
 *
 *   rc = sender_auth_stage(m, r, &err);   // hygiene.c stage table
 *
 * DNS goes through hygiene_dns() (dns_sync: the [delivery] dns_resolver
 * forwarder when set), so tests serve the records from a local unbound.
 * Sets r->spf / r->dkim / r->dmarc for later stages.  A DMARC "fail" with
 * p=reject rejects ("550 5.7.1 Message rejected: DMARC policy of DOMAIN"),
 * p=quarantine quarantines, when the tenant's dmarc.enabled is on; an SPF
 * "fail" alone raises spf.fail_action.  DNS trouble gives temperror results
 * (and -1 only when nothing could be evaluated: auth.on_failure decides).
 */
#ifndef MAILARK_HYGIENE_SENDER_AUTH_H
#define MAILARK_HYGIENE_SENDER_AUTH_H

struct hygiene;
struct hygiene_msg;
struct hygiene_result;

int sender_auth_init(struct hygiene *h, char **err_r);   /* libopendkim/libspf2 handles */
void sender_auth_free(struct hygiene *h);
int sender_auth_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);

#endif
