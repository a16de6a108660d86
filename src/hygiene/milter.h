/*
 * milter — a client of the Sendmail milter protocol (version 6), so that
 * existing filters (clamav-milter, opendkim, spamass-milter, rspamd's proxy
 * …) plug in as they do with Postfix.  [hygiene] milters lists them:
 * "inet:127.0.0.1:8891, unix:/run/x.sock"; each is called in order for
 * every message, with the whole conversation replayed at the end of data
 * (connect, helo, mail, rcpt…, headers, body, end of message) within
 * [hygiene] milter_timeout per reply.
 *
 *   rc = milter_stage(m, r, &err);   // hygiene.c stage table
 *
 * Replies: accept/continue go on; reject → 550 5.7.1 (or the milter's own
 * SMFIR_REPLYCODE text); tempfail → 451 4.7.1; discard and quarantine →
 * quarantine; add/insert/change header and replace body are applied to the
 * message (hygiene_result_rewrite) for the next milter and delivery.
 * A milter that cannot be reached returns -1 (milter.on_failure decides).
 */
#ifndef MAILARK_HYGIENE_MILTER_H
#define MAILARK_HYGIENE_MILTER_H

struct hygiene_msg;
struct hygiene_result;

int milter_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);

#endif
