/*
 * queue — the durable spool: a message acknowledged with 250 is in here,
 * on stable storage, until every recipient is delivered, bounced or expired.
 *
 * Receiving (smtp session, loop thread):
 *   struct queue_writer *w = queue_writer_new(q, id, &err);   // id from id_generate()
 *   queue_writer_append(w, bytes, len) ...                     // message as received
 *   queue_writer_commit(w, &env, on_committed, session);       // async: group commit
 *   → on_committed(session, 0) on the loop thread: now, and only now, send 250.
 *   → on_committed(session, errno) : the message is gone; answer 451 (452 for ENOSPC).
 *   queue_writer_abort(&w) throws away a message that will not be committed.
 *
 * Delivering (scheduler): queue_entry_* functions below.  Every state change
 * of a recipient is recorded durably before the entry is forgotten.
 *
 * Start-up: queue_open() recovers every complete entry and removes
 * half-written ones.  The queue tells its listener (the scheduler) of every
 * entry that becomes ready: after a commit and after recovery.
 *
 * Ownership: the queue owns every struct queue_entry; pointers stay valid
 * until queue_entry_remove() or queue_close().  Envelopes passed in are
 * copied.
 */
#ifndef MAILARK_QUEUE_QUEUE_H
#define MAILARK_QUEUE_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lib/id.h"

struct server;
struct queue;
struct queue_writer;

enum queue_direction {
	QUEUE_INBOUND,    /* to a tenant's domain: delivered to its route */
	QUEUE_OUTBOUND,   /* from a tenant's relay network to the world */
	QUEUE_BOUNCE,     /* a DSN we generated */
};

/* RFC 3461 NOTIFY bits; 0 means "not given" (= FAILURE for us). */
#define QUEUE_NOTIFY_NEVER   0x1
#define QUEUE_NOTIFY_SUCCESS 0x2
#define QUEUE_NOTIFY_FAILURE 0x4
#define QUEUE_NOTIFY_DELAY   0x8

/* Envelope flags. */
#define QUEUE_F_DIRECT_MX        0x1   /* by MX (or smarthost) only, never a tenant route: alerts */
#define QUEUE_F_CONTINUITY_COPY  0x2   /* failback copy of mail a user sent during an outage */
#define QUEUE_F_REQUIRE_TLS      0x4   /* DLP: deliver only over verified TLS */
#define QUEUE_F_RELEASED         0x8   /* released from the quarantine (already scanned) */

enum queue_rcpt_state {
	RCPT_PENDING,
	RCPT_DELIVERED,
	RCPT_BOUNCED,     /* permanent failure; DSN (if any) already queued */
	RCPT_EXPIRED,     /* max_lifetime passed; DSN (if any) already queued */
	RCPT_DELETED,     /* removed by an administrator */
};

struct queue_rcpt {
	char *addr;                 /* envelope address without <>, as received */
	char *orcpt;                /* RFC 3461 ORCPT value or NULL */
	unsigned notify;            /* QUEUE_NOTIFY_* bits */
	enum queue_rcpt_state state;
	char *last_reply;           /* last remote reply or local reason, NULL if none */
};

struct queue_envelope {
	char id[ID_LEN + 1];
	enum queue_direction direction;
	char *tenant;               /* tenant name; NULL for bounces of unknown tenant */
	char *sender;               /* "" for the null sender <> */
	char *envid;                /* RFC 3461 ENVID or NULL */
	int ret_hdrs;               /* RET=HDRS given */
	int smtputf8;               /* SMTPUTF8 given */
	int body_8bit;              /* BODY=8BITMIME or BINARYMIME */
	char *client_addr;          /* IP of the sending client, "local" for ours */
	char *client_helo;
	char *auth_user;            /* submission: the signed-in user's address, else NULL */
	unsigned flags;             /* QUEUE_F_* */
	time_t arrival;
	struct queue_rcpt *rcpts;
	size_t nrcpts;
};

struct queue_entry {
	struct queue_envelope env;
	uint64_t body_size;         /* message bytes */
	int held;                   /* on hold by an administrator */
	unsigned attempts;          /* delivery attempts so far */
	time_t next_attempt;        /* 0 = as soon as possible */
	time_t last_attempt;
	void *sched_data;           /* the scheduler's, opaque to the queue */
};

typedef void queue_commit_cb(void *arg, int error);
typedef void queue_ready_cb(void *arg, struct queue_entry *e);
typedef void queue_done_cb(void *arg, int error);

/* Opens (creating if needed) <data_dir>/queue and recovers it.  -1 + *err_r. */
int queue_open(struct server *srv, struct queue **q_r, char **err_r);
void queue_close(struct queue **q);
/* The scheduler registers here; called for recovered entries too. */
void queue_set_ready_listener(struct queue *q, queue_ready_cb *cb, void *arg);
/* Tells the listener of every entry now in the queue (after registration). */
void queue_announce_all(struct queue *q);

struct queue_writer *queue_writer_new(struct queue *q, const char *id, char **err_r);
/* Returns 0, or -1 with errno (ENOSPC, EIO …); the writer must then be aborted. */
int queue_writer_append(struct queue_writer *w, const void *data, size_t len);
uint64_t queue_writer_size(const struct queue_writer *w);
/* Takes ownership of w.  cb runs later on the loop thread, exactly once. */
void queue_writer_commit(struct queue_writer *w, const struct queue_envelope *env,
    queue_commit_cb *cb, void *arg);
void queue_writer_abort(struct queue_writer **w);
/*
 * The message bytes written so far (malloc'd into *data_r, *len_r), read back
 * from the spool file.  Safe on a worker thread while nobody else touches w
 * (the hygiene pipeline scans a message between end of data and commit).
 * 0, or -1 + errno.
 */
int queue_writer_read_all(struct queue_writer *w, unsigned char **data_r, size_t *len_r);
/*
 * Makes the message prefix + data (the pipeline's added header fields and
 * rewritten content): the file is truncated and rewritten, size and CRC
 * recomputed.  Same thread rules as read_all.  Nothing is acknowledged
 * before commit, so a crash here loses nothing.  0, or -1 + errno (the
 * writer must then be aborted).
 */
int queue_writer_replace(struct queue_writer *w, const void *prefix, size_t plen,
    const void *data, size_t len);

/* Enqueues a message we built ourselves (a DSN) durably; cb like commit. */
void queue_inject(struct queue *q, const struct queue_envelope *env, const void *data,
    size_t len, queue_commit_cb *cb, void *arg);

struct queue_entry *queue_entry_find(struct queue *q, const char *id);
/* Opens the message bytes read-only: fd positioned at 0, length = body_size. */
int queue_entry_open_body(struct queue *q, const struct queue_entry *e);
/* The same by queue ID; safe on any thread while the queue is open (-1 + errno). */
int queue_open_body(struct queue *q, const char *id);
/*
 * Records recipient outcomes durably (fsynced by the commit thread, in a
 * batch with the other commits and records waiting), then calls cb.
 * states[i] / replies[i] apply to rcpt index idx[i].
 */
void queue_entry_record(struct queue *q, struct queue_entry *e, const size_t *idx,
    const enum queue_rcpt_state *states, const char *const *replies, size_t n,
    queue_done_cb *cb, void *arg);
/*
 * Like queue_entry_record(), for a caller that removes the entry as soon as
 * it is finished: when these outcomes leave no recipient pending, nothing
 * is written (returns 1; cb still runs later, with 0) and the caller must
 * queue_entry_remove() the entry from cb.  A crash before that unlink is on
 * disk delivers the message again (at-least-once), it never loses one.
 * Otherwise (returns 0) it is queue_entry_record().
 */
int queue_entry_settle(struct queue *q, struct queue_entry *e, const size_t *idx,
    const enum queue_rcpt_state *states, const char *const *replies, size_t n,
    queue_done_cb *cb, void *arg);
/* Records attempts/next_attempt (best effort, not fsynced: losing it only retries early). */
void queue_entry_note_attempt(struct queue *q, struct queue_entry *e);
/* 1 when no recipient is pending. */
int queue_entry_finished(const struct queue_entry *e);
/* Removes the files and frees e. */
void queue_entry_remove(struct queue *q, struct queue_entry *e);
int queue_entry_set_hold(struct queue *q, struct queue_entry *e, int held);

typedef void queue_foreach_cb(void *arg, struct queue_entry *e);
void queue_foreach(struct queue *q, queue_foreach_cb *cb, void *arg);
size_t queue_count(const struct queue *q);

void queue_envelope_free(struct queue_envelope *env);
void queue_envelope_copy(struct queue_envelope *dst, const struct queue_envelope *src);
const char *queue_direction_name(enum queue_direction d);
const char *queue_rcpt_state_name(enum queue_rcpt_state s);

#endif
