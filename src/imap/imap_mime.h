/*
 * imap_mime — the parts of IMAP that look inside a message: FETCH
 * ENVELOPE, BODY / BODYSTRUCTURE and BODY[section] (RFC 3501 6.4.5, 7.4.2)
 * and the header / text tests of SEARCH (6.4.4).  Pure functions over the
 * raw bytes of one message (CRLF or LF line ends, as stored); nothing is
 * kept between calls.  Output is appended to *out in IMAP syntax (quoted
 * strings, literals "{n}\r\n..." when a value cannot be quoted, NIL).
 *
 *   struct buf b = BUF_INIT;
 *   imap_mime_bodystructure(raw, len, 1, &b);   // "(\"TEXT\" \"PLAIN\" ...)"
 *
 * Malformed MIME never fails: a part that cannot be parsed is described as
 * text/plain of its bytes, the way Dovecot does.  Nesting is limited
 * (IMAP_MIME_MAX_DEPTH) and deeper parts are treated as opaque.
 */
#ifndef MAILARK_IMAP_IMAP_MIME_H
#define MAILARK_IMAP_IMAP_MIME_H

#include <stddef.h>
#include <time.h>

struct buf;

#define IMAP_MIME_MAX_DEPTH 32
#define IMAP_MIME_MAX_PARTS 10000

/* ENVELOPE's parenthesised list (without the "ENVELOPE " prefix). */
void imap_mime_envelope(const char *raw, size_t len, struct buf *out);
/* BODYSTRUCTURE when extended, else BODY (without the item name). */
void imap_mime_bodystructure(const char *raw, size_t len, int extended, struct buf *out);

/*
 * 1 when section is a valid section-spec of RFC 3501 (the text between
 * BODY[ and ], upper or lower case): "", HEADER, TEXT, MIME (only after a
 * part number), HEADER.FIELDS (F ...), HEADER.FIELDS.NOT (F ...), part
 * numbers "1", "1.2" optionally followed by .HEADER, .TEXT, .MIME,
 * .HEADER.FIELDS (...).  Else 0.
 */
int imap_mime_section_valid(const char *section);
/* Appends the raw bytes of the section (RFC 3501 rules: a part that does
 * not exist gives an empty string).  0, or -1 for an invalid section. */
int imap_mime_section(const char *raw, size_t len, const char *section, struct buf *out);

/* SEARCH: case-insensitive substring tests (RFC 2047 words decoded, folded
 * headers unfolded, bodies decoded from base64 / quoted-printable). */
int imap_mime_header_contains(const char *raw, size_t len, const char *field,
    const char *needle);                  /* needle "" : the field exists */
int imap_mime_body_contains(const char *raw, size_t len, const char *needle);
int imap_mime_text_contains(const char *raw, size_t len, const char *needle); /* headers or body */
/* The Date: header as UTC seconds; -1 when missing or unparsable. */
time_t imap_mime_date(const char *raw, size_t len);

#endif
