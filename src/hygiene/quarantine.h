/*
 * quarantine — per-tenant storage of messages the pipeline held back
 * (spam, viruses when av.action = quarantine, attachment policy, DMARC
 * quarantine, impersonation, DLP hold), with their envelope and verdict,
 * until an admin (or the recipient, when quarantine.user_release is on)
 * releases or deletes them, or quarantine.retention_days pass.
 *
 * Storage: <data_dir>/quarantine/<tenant>/<id>.eml (the original message,
 * fsynced) and one row per message in <data_dir>/quarantine/quarantine.db
 * (its own SQLite database, so worker threads can write it; a mutex guards
 * the one connection).  quarantine_put() writes file then row: a crash
 * between leaves a file the next open removes.
 *
 *   quarantine_put(q, &item, data, len, id_out, &err);  // any thread
 *   quarantine_list / _get / _delete                    // any thread
 *   quarantine_release(srv, tenant, id, &err)           // loop thread: queue_inject
 *                                                       // the original, then delete
 * A daily digest ([hygiene] digest_hour, UTC) emails each recipient with
 * new items a list of them (queue_inject, inbound to the user).
 */
#ifndef MAILARK_HYGIENE_QUARANTINE_H
#define MAILARK_HYGIENE_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "queue/queue.h"

struct server;
struct quarantine;

struct quarantine_item {
	const struct queue_envelope *env;   /* tenant, direction, sender, rcpts, client */
	const char *action_reason;          /* the verdict's reasons */
	double score;
	const char *subject;                /* may be NULL */
	const char *from;                   /* header From, may be NULL */
};

int quarantine_open(struct server *srv, char **err_r);    /* sets srv->quarantine */
void quarantine_close(struct server *srv);
/* Stores a message; id_out gets its id (ID_LEN + 1).  0 / -1 + *err_r. */
int quarantine_put(struct quarantine *q, const struct quarantine_item *item,
    const unsigned char *data, size_t len, char *id_out, char **err_r);
/* Items of a tenant, newest first; only those addressed to `rcpt` when not NULL. */
json_t *quarantine_list(struct quarantine *q, const char *tenant, const char *rcpt,
    size_t limit, char **err_r);
json_t *quarantine_show(struct quarantine *q, const char *tenant, const char *id, char **err_r);
int quarantine_delete(struct quarantine *q, const char *tenant, const char *id, char **err_r);
/* The original message (malloc'd, the caller frees).  0 / -1 + *err_r ("not found"). */
int quarantine_read(struct quarantine *q, const char *tenant, const char *id, unsigned char **data_r,
    size_t *len_r, char **err_r);
/* Re-queues the original to its recipients (no scanning), then deletes it. */
int quarantine_release(struct server *srv, const char *tenant, const char *id, char **err_r);
/* Sends the digests now (also run daily).  Returns how many were queued. */
int quarantine_digest_run(struct server *srv, const char *tenant, char **err_r);

#endif
