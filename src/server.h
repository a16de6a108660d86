/*
 * server — the one struct that holds a running daemon's state.
 *
 * `mailark serve` builds a struct server in main.c, hands a pointer to each
 * module's *_start() function and runs the event loop.  Modules keep no
 * global mutable state: what they share lives here.  Everything in it is
 * owned by main.c and torn down in reverse order of creation.
 * All fields are used on the event-loop thread only, except `metrics`
 * (atomic counters, read by the HTTP thread).
 */
#ifndef MAILARK_SERVER_H
#define MAILARK_SERVER_H

#include "metrics/metrics.h"

struct config;
struct event_base;
struct event;
struct worker_pool;
struct store;
struct queue;
struct scheduler;
struct smtp_server;
struct control;
struct http_server;
struct dns_resolver;
struct tls_contexts;
struct audit;
struct archive;
struct archive_jobs;
struct continuity;
struct probe;
struct cmbox;
struct imap_server;
struct hygiene;
struct quarantine;
struct tls_policy;

struct server {
	struct config *cfg;
	struct event_base *base;
	struct worker_pool *workers;
	struct tls_contexts *tls;
	struct store *store;
	struct queue *queue;
	struct dns_resolver *dns;
	struct scheduler *sched;
	struct smtp_server *smtp;
	struct control *control;
	struct http_server *http;
	struct audit *audit;        /* the audit trail (audit_start), NULL until opened */
	struct archive *archive;    /* every tenant's archive (archive_open) */
	struct archive_jobs *archive_jobs;  /* import/export/purge/verify/reindex jobs */
	struct event *archive_purge_ev;     /* the scheduled purge (control_archive.c) */
	struct smtp_server *submission;     /* [submission] listen, NULL when none */
	struct continuity *continuity;      /* outages, drills, failback (continuity/) */
	struct probe *probe;                /* route health probes */
	struct cmbox *cmbox;                /* continuity mailboxes (views over the archive) */
	struct imap_server *imap;           /* continuity IMAP server */
	struct hygiene *hygiene;            /* the filtering pipeline (hygiene/) */
	struct quarantine *quarantine;      /* held messages (hygiene/quarantine.c) */
	struct tls_policy *tls_policy;      /* outbound TLS requirements, MTA-STS */
	struct metrics metrics;
	int shutting_down;        /* set once SIGTERM/SIGINT arrives */
};

#endif
