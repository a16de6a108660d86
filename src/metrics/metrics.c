#include "metrics/metrics.h"

#include "lib/buf.h"

/* Upper bounds in microseconds of the commit latency buckets. */
static const uint64_t metrics_bucket_us[METRICS_LATENCY_BUCKETS] = {
	250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

void
metrics_observe_commit(struct metrics *m, uint64_t us)
{
	for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++)
		if (us <= metrics_bucket_us[i])
			atomic_fetch_add_explicit(&m->commit_latency_bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->commit_latency_count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->commit_latency_sum_us, us, memory_order_relaxed);
}

static void
metrics_counter(struct buf *out, const char *name, const char *help, const char *type,
    unsigned long long value)
{
	buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, value);
}

static void
metrics_gauge(struct buf *out, const char *name, const char *help, long long value)
{
	buf_appendf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, value);
}

void
metrics_render(struct metrics *m, struct buf *out)
{
	metrics_counter(out, "mailark_smtp_connections_total", "SMTP connections accepted.",
	    "counter", atomic_load(&m->smtp_connections_total));
	metrics_gauge(out, "mailark_smtp_connections_active", "SMTP connections open now.",
	    atomic_load(&m->smtp_connections_active));
	metrics_counter(out, "mailark_smtp_connections_refused_total",
	    "SMTP connections refused by a connection limit.", "counter",
	    atomic_load(&m->smtp_rejected_connections));
	metrics_counter(out, "mailark_messages_accepted_total",
	    "Messages acknowledged with 250 after being committed.", "counter",
	    atomic_load(&m->messages_accepted));
	metrics_counter(out, "mailark_messages_rejected_total",
	    "Messages refused during the SMTP session.", "counter",
	    atomic_load(&m->messages_rejected));
	metrics_counter(out, "mailark_bytes_accepted_total", "Message bytes accepted.", "counter",
	    atomic_load(&m->bytes_accepted));
	metrics_counter(out, "mailark_recipients_delivered_total",
	    "Recipients delivered to the next hop.", "counter", atomic_load(&m->recipients_delivered));
	metrics_counter(out, "mailark_recipients_deferred_total",
	    "Delivery attempts deferred (temporary failure).", "counter",
	    atomic_load(&m->recipients_deferred));
	metrics_counter(out, "mailark_recipients_bounced_total",
	    "Recipients failed permanently.", "counter", atomic_load(&m->recipients_bounced));
	metrics_counter(out, "mailark_recipients_expired_total",
	    "Recipients given up after the queue lifetime.", "counter",
	    atomic_load(&m->recipients_expired));
	metrics_counter(out, "mailark_dsn_generated_total", "Delivery status notifications sent.",
	    "counter", atomic_load(&m->dsn_generated));
	metrics_gauge(out, "mailark_queue_messages", "Messages in the queue now.",
	    atomic_load(&m->queue_messages));
	metrics_counter(out, "mailark_archive_messages_total",
	    "Queued messages archived (duplicates included).", "counter",
	    atomic_load(&m->archive_messages));
	metrics_counter(out, "mailark_archive_failures_total",
	    "Archive copies that failed and were retried.", "counter",
	    atomic_load(&m->archive_failures));
	metrics_gauge(out, "mailark_archive_index_lag",
	    "Archived messages committed but not yet searchable.",
	    atomic_load(&m->archive_index_lag));
	metrics_gauge(out, "mailark_continuity_tenants",
	    "Tenants in continuity now (active or failing back).",
	    atomic_load(&m->continuity_tenants));
	metrics_gauge(out, "mailark_continuity_routes_down",
	    "Tenant primary routes that are down now.", atomic_load(&m->continuity_routes_down));
	metrics_gauge(out, "mailark_delivery_connections_active",
	    "Outbound SMTP connections open now.", atomic_load(&m->delivery_connections_active));

	buf_append_str(out, "# HELP mailark_commit_latency_seconds Time from end of message data "
	    "to the message being on stable storage.\n# TYPE mailark_commit_latency_seconds histogram\n");
	for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++)
		buf_appendf(out, "mailark_commit_latency_seconds_bucket{le=\"%g\"} %llu\n",
		    (double)metrics_bucket_us[i] / 1e6, atomic_load(&m->commit_latency_bucket[i]));
	unsigned long long count = atomic_load(&m->commit_latency_count);
	buf_appendf(out, "mailark_commit_latency_seconds_bucket{le=\"+Inf\"} %llu\n", count);
	buf_appendf(out, "mailark_commit_latency_seconds_sum %g\n",
	    (double)atomic_load(&m->commit_latency_sum_us) / 1e6);
	buf_appendf(out, "mailark_commit_latency_seconds_count %llu\n", count);
}
