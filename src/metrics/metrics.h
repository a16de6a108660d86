/*
 * metrics — process-wide counters, exported as Prometheus text on
 * GET /metrics.  Counters are atomics so the HTTP thread may read them while
 * the loop thread updates them: metrics_inc(&srv->metrics.smtp_accepted).
 * metrics_render() appends the exposition text to a buffer.
 */
#ifndef MAILARK_METRICS_METRICS_H
#define MAILARK_METRICS_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

struct buf;

#define METRICS_LATENCY_BUCKETS 12

struct metrics {
	atomic_ullong smtp_connections_total;
	atomic_llong smtp_connections_active;
	atomic_ullong smtp_rejected_connections;   /* over a connection limit */
	atomic_ullong messages_accepted;           /* 250 after DATA/BDAT */
	atomic_ullong messages_rejected;           /* 5xx during the session */
	atomic_ullong bytes_accepted;
	atomic_ullong recipients_delivered;
	atomic_ullong recipients_deferred;
	atomic_ullong recipients_bounced;
	atomic_ullong recipients_expired;
	atomic_ullong dsn_generated;
	atomic_llong queue_messages;               /* entries in the queue now */
	atomic_llong delivery_connections_active;
	atomic_ullong archive_messages;            /* queue entries archived */
	atomic_ullong archive_failures;            /* archive copies that failed (retried) */
	atomic_llong archive_index_lag;            /* committed, not yet searchable (set on render) */
	atomic_llong continuity_tenants;           /* tenants ACTIVE or FAILING_BACK (continuity tick) */
	atomic_llong continuity_routes_down;       /* tenant routes seen down (continuity tick) */
	/* Commit latency (end of DATA → durable), histogram in seconds. */
	atomic_ullong commit_latency_bucket[METRICS_LATENCY_BUCKETS];
	atomic_ullong commit_latency_count;
	atomic_ullong commit_latency_sum_us;
};

static inline void
metrics_inc(atomic_ullong *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void metrics_observe_commit(struct metrics *m, uint64_t microseconds);
void metrics_render(struct metrics *m, struct buf *out);

#endif
