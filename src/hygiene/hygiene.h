/*
 * hygiene — the filtering pipeline every message goes through while its
 * sender is still connected: inbound (antivirus, sender authentication,
 * attachment policy, impersonation, milters, antispam) and outbound (the same
 * scanners, then DLP, disclaimers and DKIM signing).
 *
 * Three stages, each able to accept, tag, quarantine, defer or reject:
 *   connection  hygiene_connect_check(): [hygiene] dnsbl_reject zones, before 220
 *   envelope    hygiene_envelope_check(): the tenant's sender block/allow lists, at RCPT
 *   content     hygiene_scan(): everything else, at the end of DATA/BDAT, on the
 *               hygiene worker pool; the message is read once, parsed once with
 *               GMime (struct hygiene_msg) and handed to every content stage.
 *
 * Use (smtp session, loop thread):
 *   struct hygiene_job *j = hygiene_scan(srv->hygiene, &env, writer, on_verdict, sess);
 *   → on_verdict(sess, &verdict) on the loop thread, exactly once.  When the
 *     verdict is ACCEPT or TAG the writer already holds the final message
 *     (headers added, content rewritten) and the session commits it; for
 *     QUARANTINE the message is already stored in the quarantine and the
 *     session aborts the writer and answers 250; DEFER/REJECT answer
 *     verdict.reply and abort.
 *
 * A content stage is a function of the stage table in hygiene.c:
 *   int stage_run(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);
 * It reads m (never changes it), records what it found in r through the
 * hygiene_result_* helpers, and returns 0; or -1 with *err_r (malloc'd) when
 * it could not do its job (scanner down, timeout), in which case the tenant's
 * on_failure setting for that stage decides: fail closed (451 4.7.1) or fail
 * open (accept, with "stage:failed" in the reasons and the verdict header).
 * Stages run in table order and stop at the first DEFER or REJECT.  They run
 * on worker threads: they may block (sockets, DNS through dns_sync) but use no
 * loop-thread state (no srv->store, no events).
 *
 * The verdict (action, score, reasons) is logged ("hygiene" line) and, for
 * accepted mail, recorded with the message in an X-Mailark-Hygiene header;
 * quarantined mail keeps it in the quarantine.
 */
#ifndef MAILARK_HYGIENE_HYGIENE_H
#define MAILARK_HYGIENE_HYGIENE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "queue/queue.h"

/* The verdict recorded with accepted mail; one arriving from outside is renamed. */
#define HYGIENE_VERDICT_HEADER  "X-Mailark-Hygiene"
#define HYGIENE_VERDICT_RENAMED "X-Mailark-Removed-Hygiene"

struct server;
struct hygiene;
struct hygiene_policy;
struct queue_writer;
struct dns_sync;
typedef struct _GMimeMessage GMimeMessage;

/* Ordered by strength: the verdict is the strongest action any stage raised. */
enum hygiene_action {
	HYGIENE_ACCEPT,
	HYGIENE_TAG,          /* delivered with headers saying what was found */
	HYGIENE_QUARANTINE,   /* kept in the quarantine, 250 to the client */
	HYGIENE_DEFER,        /* 4xx now */
	HYGIENE_REJECT,       /* 5xx now */
};

/* Sender authentication outcomes (RFC 8601 result keywords). */
enum hygiene_auth {
	HAUTH_NONE, HAUTH_PASS, HAUTH_FAIL, HAUTH_SOFTFAIL, HAUTH_NEUTRAL,
	HAUTH_TEMPERROR, HAUTH_PERMERROR, HAUTH_POLICY,
};

/* The message as every content stage sees it (read-only to stages). */
struct hygiene_msg {
	struct hygiene *h;                /* server-wide: config, dns, spam db, keys */
	const struct hygiene_policy *pol; /* the tenant's policy (defaults when no tenant) */
	const char *qid;
	const char *tenant;               /* NULL: none */
	enum queue_direction dir;         /* QUEUE_INBOUND or QUEUE_OUTBOUND */
	const char *sender;               /* "" for <> */
	char **rcpts;
	size_t nrcpts;
	const char *client_ip;            /* "192.0.2.1", "2001:db8::1" */
	const char *client_helo;          /* may be NULL */
	int tls;                          /* the client used TLS */
	const char *auth_user;            /* submission: signed-in user, else NULL */
	const unsigned char *data;        /* the whole message as spooled (our Received: first) */
	size_t len;
	GMimeMessage *mime;               /* parsed once; NULL when GMime could not parse it */
	const char *header_from;          /* RFC 5322 From address (addr-spec), or NULL */
	const char *header_from_name;     /* its display name, or NULL */
	char **tenant_domains;            /* the tenant's own domains (impersonation, DLP) */
	size_t n_tenant_domains;
};

/* What the stages found, accumulated in table order. */
struct hygiene_result {
	enum hygiene_action action;
	char *reply;                      /* SMTP reply for DEFER/REJECT (malloc'd) */
	double score;                     /* spam score (sum of rule and classifier scores) */
	int spam_scored;                  /* the spam stage ran */
	struct buf reasons;               /* "av:Eicar-Signature; spam:8.2" */
	struct buf headers;               /* fields to prepend, each "Name: value\r\n" */
	unsigned char *rewritten;         /* replacement message (malloc'd), or NULL */
	size_t rewritten_len;
	/* sender authentication, for later stages (spam scoring, impersonation) */
	enum hygiene_auth spf, dkim, dmarc;
	char dkim_domain[256];            /* d= of a passing signature */
	/* outbound consequences */
	int require_tls;                  /* DLP: deliver only over TLS (QUEUE_F_REQUIRE_TLS) */
	char *notify_to;                  /* DLP notify: address to tell (malloc'd), or NULL */
	char *notify_text;                /* what to tell (malloc'd) */
	int train_skip;                   /* allow-listed sender: not used to train */
};

/* The verdict handed back to the session. */
struct hygiene_verdict {
	enum hygiene_action action;
	const char *reply;                /* DEFER/REJECT: the SMTP reply */
	const char *reasons;              /* for the log */
	double score;
	unsigned flags;                   /* QUEUE_F_* to add to the envelope (REQUIRE_TLS) */
	int error;                        /* errno when the final message could not be written */
};

typedef void hygiene_verdict_cb(void *arg, const struct hygiene_verdict *v);
typedef void hygiene_check_cb(void *arg, const char *reply);  /* NULL reply = go on */

const char *hygiene_action_name(enum hygiene_action a);
const char *hygiene_auth_name(enum hygiene_auth a);

/* ---- result helpers (stages, worker threads) ---- */
/* Raises the verdict to at least `a`; reply (copied) is kept for DEFER/REJECT
 * when no earlier stage set one.  The reason is appended to r->reasons. */
void hygiene_result_raise(struct hygiene_result *r, enum hygiene_action a, const char *reply,
    const char *reason_fmt, ...) __attribute__((format(printf, 4, 5)));
void hygiene_result_reason(struct hygiene_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends "Name: value\r\n", folding value at 78 columns. */
void hygiene_result_add_header(struct hygiene_result *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replaces the message content (takes ownership of data, malloc'd). */
void hygiene_result_rewrite(struct hygiene_result *r, unsigned char *data, size_t len);
/* The content as it stands after earlier rewrites (m->data when none). */
void hygiene_result_content(const struct hygiene_msg *m, const struct hygiene_result *r,
    const unsigned char **data_r, size_t *len_r);
void hygiene_result_free(struct hygiene_result *r);

/*
 * Copies a message with every field of its header block called `name`
 * (case-insensitive) renamed to `newname`, when match(value, vlen, arg)
 * says so (match NULL: every such field); value is what follows the colon,
 * folds included.  Returns how many were renamed; when > 0, *out_r is the
 * new message (malloc'd, the caller owns it), else NULL.  Any thread.
 */
typedef int hygiene_header_match_fn(const unsigned char *value, size_t vlen, void *arg);
int hygiene_header_rename(const unsigned char *data, size_t len, const char *name,
    const char *newname, hygiene_header_match_fn *match, void *arg, unsigned char **out_r,
    size_t *outlen_r);

/* ---- the daemon ---- */
int hygiene_start(struct server *srv, char **err_r);
void hygiene_stop(struct server *srv);
/* The synchronous DNS used by stages (never NULL once started). */
struct dns_sync *hygiene_dns(struct hygiene *h);
const struct config *hygiene_config(struct hygiene *h);

/* Connection stage (loop thread): cb(arg, NULL) or cb(arg, "554 5.7.1 ..."). */
void hygiene_connect_check(struct hygiene *h, const char *ip, hygiene_check_cb *cb, void *arg);
/* Envelope stage (loop thread, synchronous): NULL, or a static/owned-by-h reply. */
const char *hygiene_envelope_check(struct hygiene *h, const char *tenant, const char *sender,
    const char *rcpt);
/* Content stage.  env is copied; the writer stays the caller's, but must not
 * be touched until cb runs. */
void hygiene_scan(struct hygiene *h, const struct queue_envelope *env, int tls,
    struct queue_writer *w, hygiene_verdict_cb *cb, void *arg);

/*
 * Runs the content stages over a message outside any session (the
 * `spam classify` command, benchmarks, tests): builds the hygiene_msg, runs
 * the table for env->direction, fills *r.  Any thread.  0, or -1 + *err_r.
 */
int hygiene_run_stages(struct hygiene *h, const struct hygiene_policy *pol,
    const struct queue_envelope *env, int tls, char **tenant_domains, size_t n_tenant_domains,
    const unsigned char *data, size_t len, struct hygiene_result *r, char **err_r);

#endif
