/*
 * archive_export — e-discovery export: the messages a query finds, byte
 * for byte, in one ZIP file with a manifest.
 *
 *   struct archive_export_result r;
 *   archive_export(a, "acme", "from:jane after:2019-01-01", NULL, 0,
 *       ARCHIVE_EXPORT_EML, "/srv/case-12.zip", &r, progress, parg, &err);
 *
 * Messages come oldest first (by Date:, then archive ID).  The ZIP (deflate) holds:
 *   messages/<archive id>.eml   the exact archived bytes (format eml), or
 *   messages.mbox               every message in mboxrd form (format mbox):
 *                               "From <envelope sender or MAILER-DAEMON> <asctime
 *                               of archived_at, UTC>", lines matching ^>*From get
 *                               one more '>', a blank line after each message (a
 *                               message not ending in a newline gets one first:
 *                               its manifest note says so);
 *   manifest.json               {"tenant","query","exported_at","format","count",
 *                               "messages":[{"archive_id","sha256","mailbox",
 *                               "folder","date","from","subject","size","file",
 *                               "note"}]}
 *   manifest.csv                the same columns, RFC 4180, with a header row.
 * sha256 and size are always those of the exact archived bytes, so
 * re-importing an export yields the same hashes.
 *
 * The file is written as out_path + ".tmp", fsynced and renamed: a failed
 * or interrupted export never leaves a file under out_path.  An out_path
 * that exists is refused.  Messages are read and written one at a time
 * (the manifest is spooled to temporary files), so memory does not grow
 * with the size of the export.  Thread-safe as archive_search/archive_get.
 * *err_r (malloc'd, caller frees) explains a failure.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_EXPORT_H
#define MAILARK_ARCHIVE_ARCHIVE_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "archive/archive.h"

enum archive_export_format { ARCHIVE_EXPORT_EML, ARCHIVE_EXPORT_MBOX };

struct archive_export_result {
	size_t messages;              /* messages exported */
	uint64_t bytes;               /* size of the ZIP file */
	char sha256_zip[65];          /* lower-case hex SHA-256 of the ZIP file */
};

/* "eml" / "mbox" → format: 0, or -1 for anything else. */
int archive_export_format_parse(const char *name, enum archive_export_format *fmt_r);
const char *archive_export_format_name(enum archive_export_format fmt);

/*
 * Exports every message the query finds ("*": everything) in the tenant's
 * archive; nmailboxes > 0 restricts to those mailboxes (role user).
 * progress (may be NULL) is called with messages done of the total.
 * 0 with *r filled, -1 with *err_r (nothing left under out_path).
 */
int archive_export(struct archive *a, const char *tenant, const char *query,
    const char *const *mailboxes, size_t nmailboxes, enum archive_export_format fmt,
    const char *out_path, struct archive_export_result *r, archive_progress_cb *progress,
    void *parg, char **err_r);

#endif
