/*
 * alert — tells a tenant's people about continuity transitions, and talks
 * to the primary's IMAP for failback copies.
 *
 *   alert_send(srv, "ops@example.net,+pager@example.org", "https://hooks/x", &ev);
 *
 * Email: a short text/plain message from postmaster@[server] hostname to
 * the addresses, queued with QUEUE_F_DIRECT_MX so it leaves by MX (or the
 * smarthost), never through the tenant's route that is down.  Webhook: the
 * event as a JSON object POSTed with libcurl on a worker thread (10 s
 * timeout, 3 tries 5 s apart), the outcome logged.  Fire and forget: the
 * caller is never blocked and failures are logged ("alert_failed").
 *
 * alert_imap_append() stores a message in a folder of the primary server
 * by IMAP APPEND (libcurl, worker thread), for failback copies of mail
 * users sent during an outage (tenant setting sent_copy = imap).
 */
#ifndef MAILARK_CONTINUITY_ALERT_H
#define MAILARK_CONTINUITY_ALERT_H

#include <stddef.h>

struct server;

struct alert_event {
	const char *tenant;
	const char *event;          /* "continuity.started", "continuity.failback",
	                               "continuity.ended", "route.down", "route.up",
	                               "drill.started", "drill.ended" */
	const char *route;          /* HOST:PORT or NULL */
	const char *actor;          /* "auto" or who ran the command */
	const char *detail;         /* free text (reason, report summary) or NULL */
	long long outage_id;        /* 0 when none */
};

/* addresses: comma list (may be NULL/""), webhook: URL (may be NULL/""). */
void alert_send(struct server *srv, const char *addresses, const char *webhook,
    const struct alert_event *ev);

/* ok 1 / 0 with why (valid during the call); runs on the loop thread. */
typedef void alert_append_cb(void *arg, int ok, const char *why);
/*
 * url: imap[s]://HOST[:PORT]/FOLDER (folder URL-encoded).  imap:// uses
 * STARTTLS when the server offers it.  The one query option, "?insecure=1",
 * accepts any server certificate (test peers with a self-signed one); it is
 * taken off the URL.  Strings and raw are copied.  cb runs exactly once,
 * later (or at once for a malformed URL), unless alert_cancel_all() ran.
 */
void alert_imap_append(struct server *srv, const char *url, const char *user,
    const char *password, const void *raw, size_t len, alert_append_cb *cb, void *arg);

/*
 * Shutdown, before the owners of append callbacks go away and before
 * worker_pool_free(): webhooks waiting to retry are dropped, tries on the
 * worker pool are not retried, and append callbacks are no longer called.
 */
void alert_cancel_all(struct server *srv);

#endif
