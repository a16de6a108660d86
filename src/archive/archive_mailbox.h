/*
 * archive_mailbox — fast read access to the archive entries of given
 * mailboxes (addresses), for the continuity mailbox (continuity/cmbox.h).
 *
 * Reads go through a small pool of connections per tenant to store.db,
 * separate from the tenant's writer (archive_tenant_acquire is never
 * taken): store.db is in WAL mode, so readers and the writer do not block
 * each other.  A connection is taken from the pool for one call and given
 * back; the pool keeps up to AMB_IDLE_MAX idle ones per tenant.  When the
 * tenant's store.db is replaced (shredded and recreated) the pool notices
 * (another inode) and drops its connections.
 *
 *   struct archive_mailbox *mb;
 *   archive_mailbox_open(a, &mb);
 *   archive_mailbox_rows(mb, "acme", &q, row_cb, arg, &seq, &err);
 *   archive_mailbox_read(mb, "acme", id, check_cb, arg, &raw, &len, &err);
 *   archive_mailbox_close(&mb);
 *
 * UIDVALIDITY of an archive: a number stored in store.db's meta table
 * ('continuity_uidvalidity', the time of first use or a given floor) the
 * first time it is asked for, so a recreated archive gets a new one.
 *
 * Thread-safety: every function may be called from any thread.
 * Returned bytes are the caller's (free); *err_r likewise.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_MAILBOX_H
#define MAILARK_ARCHIVE_ARCHIVE_MAILBOX_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct archive;
struct archive_mailbox;

/* One archive entry as the mailbox layer sees it; valid during a callback. */
struct archive_mailbox_row {
	long long id;
	const char *hash;
	uint64_t size;                  /* exact bytes of the message */
	time_t archived_at;
	const char *mailbox, *folder, *source;
	const char *env_from, *env_rcpts;       /* NULL when unknown */
};

/* Which entries: mailbox in mailboxes, archived_at >= since, id > after_id. */
struct archive_mailbox_query {
	const char *const *mailboxes;
	size_t nmailboxes;
	time_t since;
	long long after_id;
	const char *folder;             /* NULL: any folder */
	int folder_not;                 /* 1: folder differs from `folder` */
};

/* Per row, ascending id; nonzero stops the walk. */
typedef int archive_mailbox_cb(void *arg, const struct archive_mailbox_row *r);
/* May the caller have this row?  1 yes, 0 no. */
typedef int archive_mailbox_check(void *arg, const struct archive_mailbox_row *r);

int archive_mailbox_open(struct archive *a, struct archive_mailbox **mb_r);
/* Closes every pooled connection; NULL is fine. */
void archive_mailbox_close(struct archive_mailbox **mb);

/*
 * The entries matching q, in one read transaction; *seq_r (may be NULL)
 * the highest id ever given in the archive (AUTOINCREMENT sequence) as of
 * that transaction.  1 ran, 0 the tenant has no archive, -1 with *err_r.
 */
int archive_mailbox_rows(struct archive_mailbox *mb, const char *tenant,
    const struct archive_mailbox_query *q, archive_mailbox_cb *cb, void *arg,
    long long *seq_r, char **err_r);

/*
 * Entry `id`: calls check (NULL: allowed) with its row, then, when allowed
 * and raw_r is not NULL, returns its exact bytes.  1 allowed (and read),
 * 0 no such entry, not allowed or no archive, -1 with *err_r.
 */
int archive_mailbox_read(struct archive_mailbox *mb, const char *tenant, long long id,
    archive_mailbox_check *check, void *arg, unsigned char **raw_r, size_t *len_r,
    char **err_r);

/* The id of the entry (hash, mailbox): 1 with *id_r, 0 none, -1 with *err_r. */
int archive_mailbox_find(struct archive_mailbox *mb, const char *tenant, const char *hash,
    const char *mailbox, long long *id_r, char **err_r);

/*
 * The archive's UIDVALIDITY: 1 with *uv_r, 0 no archive, -1.  Made on
 * first use: the time, or floor when that is greater (a caller that saw an
 * earlier archive of the tenant passes its UIDVALIDITY + 1, so a new
 * archive's is greater even within the same second).
 */
int archive_mailbox_uidvalidity(struct archive_mailbox *mb, const char *tenant, uint32_t floor,
    uint32_t *uv_r, char **err_r);

#endif
