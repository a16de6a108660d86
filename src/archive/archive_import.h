/*
 * archive_import — read mail from mbox files, Maildir trees, loose .eml
 * files and (archive_pst.h) Outlook .pst stores, one message at a time.
 *
 *   static int
 *   on_msg(void *arg, const struct archive_import_item *it)
 *   {
 *           ingest(it->raw, it->len, it->folder);   // copy if kept
 *           return 0;                               // nonzero stops
 *   }
 *   rc = archive_import_mbox("2002-01.mbox", on_msg, on_fail, arg, &err);
 *
 * The importers only read their source; they never write.  Every message is
 * handed to the callback with pointers that are valid during the call only
 * (an mbox message may point straight into a read-only mapping of the file).
 * A message that cannot be read is reported through the fail callback (may
 * be NULL) with where it came from and why, and skipped.
 *
 * Each function returns 0 when the whole source was read, 1 when the
 * callback asked to stop, and -1 with *err_r (malloc'd, caller frees) when
 * the source itself is unusable: missing, unreadable, not of the claimed
 * format.  No global state: functions may run on several threads at once
 * (the PST importer reads the store in a child process, see archive_pst.h).
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_IMPORT_H
#define MAILARK_ARCHIVE_ARCHIVE_IMPORT_H

#include <stddef.h>
#include <stdint.h>

struct archive_import_item {
	const unsigned char *raw;	/* the message; valid during the callback */
	size_t len;
	const char *folder;	/* "Inbox", "Inbox/Projects"; "" for none */
	const char *origin;	/* for error reports: "x.mbox:#17 (offset 1234)" */
	uint64_t done_bytes;	/* progress through the whole source */
	uint64_t total_bytes;
};

/* Nonzero stops the import (the importer then returns 1). */
typedef int archive_import_cb(void *arg, const struct archive_import_item *it);
/* One message skipped: origin as above, reason a short text. */
typedef void archive_import_fail_cb(void *arg, const char *origin,
    const char *reason);

/*
 * An mbox file (mboxrd, mboxo, mboxcl: From_ lines separate messages;
 * ">From " lines lose one '>').  Folder: the file's base name without a
 * trailing ".mbox".
 */
int archive_import_mbox(const char *path, archive_import_cb *cb,
    archive_import_fail_cb *fail, void *arg, char **err_r);

/*
 * A Maildir tree: every regular file under cur/ and new/ of the root and of
 * every folder below it (nested directories and Maildir++ ".A.B" folders),
 * plus loose files that look like mail directly in a folder directory; tmp/
 * and dot files are skipped.  Folder: the path relative to the root ("" for
 * the root, ".Sent.2019" -> "Sent/2019").  Sorted, deterministic order.
 */
int archive_import_maildir(const char *dir, archive_import_cb *cb,
    archive_import_fail_cb *fail, void *arg, char **err_r);

/*
 * Loose messages: each path a file holding one message, or a directory
 * whose regular files (recursively, sorted, dot files skipped) each hold one.
 * Folder "".  A path that does not exist makes the whole call fail (-1)
 * before anything is imported.
 */
int archive_import_eml(const char *const *paths, size_t n,
    archive_import_cb *cb, archive_import_fail_cb *fail, void *arg,
    char **err_r);

#endif
