/*
 * disclaimer — outbound disclaimers and branding: the tenant's
 * disclaimer.text / disclaimer.html templates, with variables {sender},
 * {sender_name}, {sender_domain}, {tenant}, {date}, inserted MIME-correctly
 * at the end of the first text/plain and text/html body parts (charset and
 * transfer encoding respected; a lone text/plain gains only text; HTML
 * before </body>), once per thread: not again when the message (a reply)
 * already carries it.  Signed (multipart/signed, S/MIME, PGP) and encrypted
 * messages are never changed.
 *
 *   rc = disclaimer_stage(m, r, &err);   // hygiene.c stage table (outbound)
 */
#ifndef MAILARK_HYGIENE_DISCLAIMER_H
#define MAILARK_HYGIENE_DISCLAIMER_H

struct hygiene_msg;
struct hygiene_result;

int disclaimer_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);

#endif
