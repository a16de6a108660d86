/* Skeleton: replaced by the IMAP MIME implementation. */
#include "imap/imap_mime.h"

#include "lib/buf.h"

void imap_mime_envelope(const char *raw, size_t len, struct buf *out) { buf_append_str(out, "NIL"); }
void imap_mime_bodystructure(const char *raw, size_t len, int extended, struct buf *out)
{ buf_append_str(out, "NIL"); }
int imap_mime_section_valid(const char *section) { return 0; }
int imap_mime_section(const char *raw, size_t len, const char *section, struct buf *out) { return -1; }
int imap_mime_header_contains(const char *raw, size_t len, const char *field,
    const char *needle) { return 0; }
int imap_mime_body_contains(const char *raw, size_t len, const char *needle) { return 0; }
int imap_mime_text_contains(const char *raw, size_t len, const char *needle) { return 0; }
time_t imap_mime_date(const char *raw, size_t len) { return -1; }
