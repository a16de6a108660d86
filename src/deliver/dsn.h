/*
 * dsn — builds RFC 3464 delivery status notifications (multipart/report)
 * for failed, expired or (when asked) delayed recipients of a queue entry.
 *
 *   struct buf msg = BUF_INIT;
 *   dsn_compose(&params, &msg);  // complete RFC 5322 message, CRLF lines
 *
 * The DSN is sent from <> to the original envelope sender and includes the
 * original message's headers (RET=HDRS) or the whole message (RET=FULL,
 * capped at DSN_MAX_RETURN bytes).  Pure function: no I/O.
 */
#ifndef MAILARK_DELIVER_DSN_H
#define MAILARK_DELIVER_DSN_H

#include <stddef.h>
#include <time.h>

struct buf;
struct queue_envelope;
struct queue_rcpt;

#define DSN_MAX_RETURN (256 * 1024)

enum dsn_kind { DSN_FAILED, DSN_DELAYED };

struct dsn_params {
	const char *hostname;             /* our reporting MTA name */
	const char *boundary_seed;        /* unique text for the MIME boundary */
	time_t now;
	enum dsn_kind kind;
	const struct queue_envelope *env; /* the original */
	const size_t *rcpt_idx;           /* which recipients this DSN reports */
	const char *const *diagnostics;   /* per reported recipient: remote reply/reason */
	const char *const *remote_mtas;   /* per reported recipient, may be NULL entries */
	size_t n;
	const char *original;             /* original message bytes */
	size_t original_len;
};

void dsn_compose(const struct dsn_params *p, struct buf *out);

/*
 * 1 when a failure of recipient r must be reported to env's sender: never
 * for the null sender <>, never for NOTIFY=NEVER, else when NOTIFY is not
 * given or includes FAILURE.
 */
int dsn_wanted(const struct queue_envelope *env, const struct queue_rcpt *r);

/*
 * The RFC 3463 status of a reply ("host[ip] said: 550 5.1.1 ...", "4.4.1
 * connect to ..." or a local reason) into out ("5.1.1"): its enhanced code
 * when present, else the class of its 3-digit code, else fallback_class
 * ('2', '4' or '5') ".0.0".
 */
void dsn_status_from_reply(const char *reply, char fallback_class, char out[16]);

#endif
