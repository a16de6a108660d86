/*
 * cmbox — the continuity mailbox: what the IMAP server shows one user
 * during an outage or a drill.  A view over the tenant's archive, not a
 * copy: message bytes are read from the archive (archive/), only the
 * user's own state is kept here.
 *
 * Mailboxes of a user (addresses = the user's address and aliases):
 *   INBOX  archive entries of the user's addresses archived in the last
 *          window_days days that the user received: source is not
 *          "import", folder is not "Sent", and the user is not the envelope
 *          sender unless also a recipient.  UID = the archive entry id.
 *   Sent   archive entries of the user's addresses in folder "Sent" (mail
 *          sent through continuity submission, or APPENDed to Sent) archived
 *          in the window.  UID = the archive entry id.  \Sent special use.
 *   other  folders the user CREATEs: references to archive entries with
 *          their own UIDs (COPY / MOVE targets, APPEND targets).
 * Archive entry ids only grow (AUTOINCREMENT), so INBOX and Sent UIDs are
 * strictly ascending and never reused; UIDVALIDITY is fixed per tenant
 * archive (a new archive, e.g. after crypto-shredding, gets a new one, and
 * the user state kept for the old one is dropped).  INBOX / Sent
 * INTERNALDATE is the archive time, or the date-time an APPEND gave for
 * the entry it archived there (kept per user and mailbox).  An APPEND of bytes the user's address
 * already has in the archive gets that entry's id as UID (the archive keeps
 * content once per mailbox); when that entry would not show in the target
 * (another folder, an import, out of the window) it is shown there anyway.
 *
 * Per-user state, in <data_dir>/continuity/<tenant>/mailbox.db (SQLite,
 * WAL, 0600): flags per (user, mailbox, uid), entries the user expunged
 * (hidden from that user's view only: the archive is immutable), user
 * folders and their messages.  One user never sees another's state or
 * messages: every function takes the user and checks that a UID belongs to
 * that user's view before reading it.
 *
 * Thread-safety: every function may be called from any thread (the IMAP
 * server runs commands on its own worker threads).  Strings and arrays
 * returned through *_r are the caller's (free with the matching *_free).
 */
#ifndef MAILARK_CONTINUITY_CMBOX_H
#define MAILARK_CONTINUITY_CMBOX_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct archive;
struct cmbox;

/* System flags (bit mask); CMBOX_F_RECENT is never stored. */
#define CMBOX_F_SEEN     0x01
#define CMBOX_F_ANSWERED 0x02
#define CMBOX_F_FLAGGED  0x04
#define CMBOX_F_DELETED  0x08
#define CMBOX_F_DRAFT    0x10
#define CMBOX_F_RECENT   0x20
#define CMBOX_F_ALL      0x1f

#define CMBOX_NAME_MAX 200        /* bytes of a mailbox name (UTF-8 / modified UTF-7 as given) */
#define CMBOX_MAX_FOLDERS 200     /* user folders per user */

/* Who is looking.  All strings lower-case; valid during each call. */
struct cmbox_user {
	const char *tenant;
	const char *address;              /* the user's canonical address */
	const char *const *addresses;     /* address and aliases (address included) */
	size_t naddresses;
	int window_days;                  /* INBOX / Sent window */
};

struct cmbox_msg {
	uint32_t uid;
	long long archive_id;
	uint64_t size;                    /* RFC822.SIZE: exact bytes */
	time_t internaldate;              /* when it was archived (APPEND: the date given) */
	unsigned flags;                   /* CMBOX_F_* */
};

struct cmbox_snapshot {
	uint32_t uidvalidity;
	uint32_t uidnext;                 /* > every UID in the mailbox, now and before */
	struct cmbox_msg *msgs;           /* ascending UID */
	size_t n;
};

enum cmbox_special { CMBOX_PLAIN, CMBOX_INBOX, CMBOX_SENT };

struct cmbox_folder {
	char *name;
	enum cmbox_special special;
};

enum cmbox_flag_op { CMBOX_FLAGS_SET, CMBOX_FLAGS_ADD, CMBOX_FLAGS_REMOVE };

/* Opens the mailbox layer over an open archive; data_dir for mailbox.db files. */
int cmbox_open(struct archive *a, const char *data_dir, struct cmbox **m_r, char **err_r);
void cmbox_close(struct cmbox **m);

/* INBOX, Sent, then the user's folders sorted by name.  0 / -1. */
int cmbox_list(struct cmbox *m, const struct cmbox_user *u, struct cmbox_folder **list_r,
    size_t *n_r, char **err_r);
void cmbox_folders_free(struct cmbox_folder *list, size_t n);

/*
 * The mailbox now.  name is case-insensitive for "INBOX" only.  1 with
 * *s_r, 0 no such mailbox, -1 error.  Cheap enough to call on every NOOP /
 * IDLE poll (one indexed query per call).
 */
int cmbox_snapshot(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    struct cmbox_snapshot *s_r, char **err_r);
void cmbox_snapshot_free(struct cmbox_snapshot *s);

/* The exact bytes of one message of the user's mailbox.  1 ok, 0 not in
 * the user's view (expunged, out of window, someone else's), -1 error. */
int cmbox_read(struct cmbox *m, const struct cmbox_user *u, const char *mailbox, uint32_t uid,
    unsigned char **raw_r, size_t *len_r, char **err_r);

/* Changes flags of the UIDs (those not in the view are skipped).  0 / -1. */
int cmbox_set_flags(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    const uint32_t *uids, size_t n, enum cmbox_flag_op op, unsigned flags, char **err_r);

/* Removes the UIDs from the user's view of the mailbox for good.  0 / -1. */
int cmbox_expunge(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    const uint32_t *uids, size_t n, char **err_r);

/*
 * Stores a message in a mailbox: archived (durably, source "imap", mailbox
 * = the user's address, folder = the mailbox name; INBOX means folder "")
 * and, for a user folder, referenced there.  internaldate 0: now.
 * 1 with the new UID (and the mailbox's UIDVALIDITY), 0 no such mailbox,
 * -1 error (malformed message, archive failure).
 */
int cmbox_append(struct cmbox *m, const struct cmbox_user *u, const char *mailbox,
    const void *raw, size_t len, unsigned flags, time_t internaldate,
    uint32_t *uidvalidity_r, uint32_t *uid_r, char **err_r);

/*
 * Copies UIDs of `from` into user folder `to` (INBOX and Sent cannot be
 * targets: -1 "[CANNOT] ...").  new_uids_r[i] is the UID in `to` of
 * uids[i] (0 when uids[i] was not in the view).  1 ok, 0 no such target,
 * -1 error.  MOVE = copy, then expunge in `from`.
 */
int cmbox_copy(struct cmbox *m, const struct cmbox_user *u, const char *from,
    const uint32_t *uids, size_t n, const char *to, uint32_t *uidvalidity_r,
    uint32_t *new_uids_r, char **err_r);

/* User folders: 0 / -1 ("mailbox exists", "[CANNOT] INBOX cannot be ...").
 * DELETE of INBOX or Sent is refused; RENAME keeps the messages. */
int cmbox_create(struct cmbox *m, const struct cmbox_user *u, const char *name, char **err_r);
int cmbox_delete(struct cmbox *m, const struct cmbox_user *u, const char *name, char **err_r);
int cmbox_rename(struct cmbox *m, const struct cmbox_user *u, const char *from, const char *to,
    char **err_r);

#endif
