/*
 * archive_parse — what the archive index needs from one message, and the
 * unwrapping of Exchange / Office 365 journal reports.  The only archive
 * module that uses GMime.
 *
 *   archive_parse_init();                        once, any thread (idempotent)
 *   struct archive_doc doc;
 *   if (archive_parse(raw, len, &doc, &err) == 0) { index(&doc); archive_doc_free(&doc); }
 *
 *   struct archive_journal j;
 *   switch (archive_journal_unwrap(raw, len, &j, &err)) {
 *   case 1: archive(j.orig, j.orig_len, j.rcpts, j.nrcpts); archive_journal_free(&j); break;
 *   case 0: not a journal report (j is zeroed, nothing to free)
 *   case -1: claims to be one but is malformed: *err (caller frees)
 *   }
 *
 * Input is untrusted: nesting is capped (32 levels), bodies at 1 MiB, and
 * every string produced is valid UTF-8 without NUL.  Both functions are
 * thread-safe once archive_parse_init() returned 0.  The struct's strings are
 * malloc'd and owned by the struct: archive_doc_free() / archive_journal_free()
 * free the fields (not the struct) and leave them NULL.
 */
#ifndef MAILARK_ARCHIVE_PARSE_H
#define MAILARK_ARCHIVE_PARSE_H

#include <stddef.h>
#include <time.h>

/* Largest body text kept per message (bytes, cut at a character boundary). */
#define ARCHIVE_BODY_MAX (1024 * 1024)
/* Deepest MIME nesting walked (multiparts and message/rfc822 together). */
#define ARCHIVE_PARSE_MAX_DEPTH 32

struct archive_doc {            /* what search needs from one message; all strings malloc'd, UTF-8 */
	char *message_id;       /* without <>, or NULL */
	time_t date;            /* Date: header, 0 if missing/unparsable */
	char *from;             /* "Name <addr>, ..." as display text (decoded RFC 2047) */
	char *from_addr;        /* first From address, lower-case, or NULL */
	char *to, *cc, *bcc;    /* decoded display text of each header ("Name <a>, Name2 <b>") or NULL */
	char *subject;          /* decoded, or NULL */
	char *body;             /* text of text/plain parts, HTML parts reduced to text, text attachments
	                           (any text type, not HTML duplicates of a plain part); capped at 1 MiB */
	char *filenames;        /* attachment file names separated by '\n', or NULL */
	int has_attachment;     /* any part with a filename or Content-Disposition: attachment */
};

/* g_mime_init() once (thread-safe, idempotent); 0, or -1 if it cannot. */
int archive_parse_init(void);

/* 0 with *doc filled (even for badly malformed mail: best effort, never
 * fails on content); -1 only for len == 0 (*err_r).  doc->body is never NULL
 * after success (maybe ""). */
int archive_parse(const void *raw, size_t len, struct archive_doc *doc, char **err_r);

/* The message parsed by GMime with the same defences as archive_parse()
 * (hostile charset names defused, in a private copy); NULL when it is not a
 * message.  The caller g_object_unref()s it.  Any thread. */
typedef struct _GMimeMessage GMimeMessage;
GMimeMessage *archive_parse_message(const void *raw, size_t len);

/* Frees the fields, not doc itself. */
void archive_doc_free(struct archive_doc *doc);

/* Exchange / Office 365 journal report → the original message and its envelope. */
struct archive_journal {
	unsigned char *orig; size_t orig_len;   /* the attached original, byte-exact as attached */
	char *sender;                           /* "Sender:" of the report, lower-case address, or NULL */
	char **rcpts; size_t nrcpts;            /* every To/Cc/Bcc/Recipient address, lower-case, unique */
};

/* 1 = it is a journal report (j filled), 0 = it is not (no X-MS-Journal-Report
 * header; j zeroed), -1 = it claims to be one but is malformed (*err_r; j zeroed). */
int archive_journal_unwrap(const void *raw, size_t len, struct archive_journal *j, char **err_r);

void archive_journal_free(struct archive_journal *j);

#endif
