/*
 * imap_cmd — internal interface between the command files of src/imap/
 * (imap_cmd.c: dispatch, sign-in, mailboxes; imap_fetch.c: FETCH, STORE,
 * SEARCH, COPY, MOVE).  A running command's state is a struct cmd_job in
 * sess->job, owned by the session until the command ends.
 */
#ifndef MAILARK_IMAP_IMAP_CMD_H
#define MAILARK_IMAP_IMAP_CMD_H

#include <time.h>

#include "imap/imap_session.h"

struct fetch_state;

struct cmd_job {
	struct imap_cmd cmd;          /* the parsed command (owned) */
	int uid;                      /* UID variant */
	int result;                   /* command-specific outcome */
	void *data;                   /* data_free(data) then free(data) with the job */
	void (*data_free)(void *);
	struct fetch_state *fetch;    /* FETCH: items and position */
};

/* 0 answered, 1 a job runs, -1 BAD "Invalid arguments", -2 BAD "Invalid messageset"
 * (a message sequence number of 0 or beyond the mailbox; "Invalid uidset": UID 0). */
typedef int imap_cmd_fn(struct imap_session *, struct imap_cmd *, int uid);
imap_cmd_fn imap_cmd_fetch, imap_cmd_store, imap_cmd_search, imap_cmd_copy;

void imap_fetch_state_free(struct cmd_job *j);
/*
 * Runs work on the worker pool with the parsed command moved into a new
 * sess->job (cmd is left empty); done (NULL: imap_cmd_job_finish) runs
 * on the loop thread afterwards.
 */
void imap_cmd_job_start(struct imap_session *sess, struct imap_cmd *cmd, int uid,
    struct fetch_state *f, void *data, void (*data_free)(void *), imap_work_fn *work,
    imap_done_fn *done);
/* Frees the job and reads the next command. */
void imap_cmd_job_finish(struct imap_session *sess);

void imap_flags_render(struct buf *out, unsigned flags);
int imap_flags_parse(const struct imap_arg *a, unsigned *flags_r);
unsigned imap_msg_flags(const struct imap_session *sess, const struct cmbox_msg *m);
/* Untagged EXPUNGE / EXISTS / FETCH FLAGS since the session's snapshot (worker). */
void imap_refresh(struct imap_session *sess, struct buf *out);
/* APPEND date-time; -1 when malformed. */
time_t imap_parse_datetime(const char *s);

#endif
