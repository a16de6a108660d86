/*
 * dlp — data loss prevention for outbound mail: the tenant's dlp.keywords
 * (whole words, case-insensitive), dlp.patterns (POSIX extended regexes),
 * dlp.cards (13–19 digit card numbers passing the Luhn check, with spaces or
 * dashes) and dlp.attach_types (extensions or libmagic types), searched in
 * the subject and every text part (decoded) and attachment names.  A match
 * applies dlp.action: block (550 5.7.1), hold (quarantine for review),
 * require_tls (r->require_tls), notify (r->notify_to = dlp.notify, the
 * message still goes).  Reasons name the rule, never the matched text.
 *
 *   rc = dlp_stage(m, r, &err);   // hygiene.c stage table (outbound)
 *   dlp_luhn_valid("4111 1111 1111 1111");   // exposed for unit tests
 */
#ifndef MAILARK_HYGIENE_DLP_H
#define MAILARK_HYGIENE_DLP_H

struct hygiene_msg;
struct hygiene_result;

int dlp_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);
int dlp_luhn_valid(const char *digits);

#endif
