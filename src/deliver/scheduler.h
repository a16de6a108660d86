/*
 * scheduler — decides when and where each queued recipient is delivered.
 *
 * It listens to the queue for ready entries, groups pending recipients by
 * destination (a tenant route "route:HOST:PORT", the smarthost, or
 * "mx:DOMAIN"), keeps a per-destination queue with a concurrency limit
 * ([queue] destination_concurrency, and max_concurrency overall), runs
 * smtp_client transactions of up to max_rcpts_per_transaction recipients,
 * records each outcome in the queue, retries 4xx with exponential backoff
 * (retry_min × retry_factor^n, capped at retry_max), and on 5xx or after
 * max_lifetime sends an RFC 3464 DSN to the envelope sender (never to <>).
 * Every outcome is logged (delivered / deferred / bounced / expired).
 */
#ifndef MAILARK_DELIVER_SCHEDULER_H
#define MAILARK_DELIVER_SCHEDULER_H

struct server;
struct scheduler;
struct queue_entry;

int scheduler_start(struct server *srv, struct scheduler **s_r, char **err_r);
/* Stops starting new deliveries; running ones finish or are cut at close. */
void scheduler_stop(struct scheduler **s);
/* Makes every deferred entry due now (mailark queue flush). */
void scheduler_flush(struct scheduler *s);
/* Called after an administrator held, released or deleted an entry. */
void scheduler_entry_changed(struct scheduler *s, struct queue_entry *e);
/* Removes an entry as soon as no delivery is running for it; 0 ok, -1 unknown. */
int scheduler_delete(struct scheduler *s, const char *id);
/*
 * Continuity failback: dispatches every recipient held for the tenant's
 * routes (continuity_route_held) in arrival order (oldest entry first), one
 * connection per route while the replay runs, so the primary receives them
 * in the order mailark accepted them.
 */
void scheduler_release_tenant(struct scheduler *s, const char *tenant);
/* Active deliveries now (for shutdown and tests). */
unsigned scheduler_active(const struct scheduler *s);

#endif
