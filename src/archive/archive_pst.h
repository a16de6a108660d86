/*
 * archive_pst — import the mail of an Outlook .pst store (ANSI or Unicode)
 * through libpst.
 *
 *   rc = archive_import_pst("mailbox.pst", on_msg, on_fail, arg, &err);
 *
 * Every mail item (notes, meeting requests, delivery reports) becomes an
 * RFC 5322 message: the item's transport headers when the store kept them
 * (minus their MIME structure fields), else From/To/Cc/Bcc/Subject/Date/
 * Message-ID built from its properties (RFC 2047 for non-ASCII); then a
 * MIME body of our own: text/plain and/or text/html in UTF-8
 * (multipart/alternative when both), the RTF body as an attachment when
 * there is no other, attachments in base64 with their names and types, and
 * embedded messages as message/rfc822 built the same way.  The output is a
 * pure function of the item: boundaries come from a hash of the content,
 * nothing depends on the clock or on chance, so importing the same store
 * twice yields the same bytes (and the archive's dedup adds nothing).
 *
 * Folder of each message: its folder path below the store's top
 * ("Inbox", "Inbox/Projects"); '/' inside a folder name becomes '_'.
 * Contacts, appointments, tasks, journal entries and sticky notes are
 * skipped (counted in the log line "archive_import_pst", not reported as
 * failures).  Progress counts items, not bytes.  Callback pointers are valid
 * during the call only.  Returns as archive_import.h describes: 0, 1 when
 * the callback stopped it, -1 with *err_r (caller frees) when the file is
 * missing or not a PST, or when the reader died on a damaged store (the
 * messages delivered before that stay delivered).
 *
 * libpst is neither thread-safe (global iconv state) nor safe with damaged
 * files (it reads out of bounds and crashes on corrupted index data), so the
 * store is read in a forked child process that streams the built messages
 * back over a pipe; the callbacks run in the calling thread.  A child that
 * crashes, or stays silent for 10 minutes, is killed and reported.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_PST_H
#define MAILARK_ARCHIVE_ARCHIVE_PST_H

#include "archive/archive_import.h"

int archive_import_pst(const char *path, archive_import_cb *cb,
    archive_import_fail_cb *fail, void *arg, char **err_r);

#endif
