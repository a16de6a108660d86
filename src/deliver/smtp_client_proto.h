/*
 * smtp_client_proto — the pure pieces of the outbound SMTP client: the
 * reply parser, EHLO keyword parsing, dot-stuffing and printable reply text.
 * No I/O, no allocation beyond the struct buf's the caller passes in, so
 * they are unit-tested directly (tests/unit/test_smtp_client.c).
 *
 *   struct smtp_reply r;
 *   smtp_reply_init(&r);
 *   while ((rc = smtp_reply_feed(&r, line, len)) == 0) ...next line...
 *   rc == 1: r.code and r.text (lines joined by '\n') are complete;
 *   rc == -1: malformed reply (r.error says why).
 *   smtp_reply_reset(&r) before the next reply; smtp_reply_free(&r) at the end.
 */
#ifndef MAILARK_DELIVER_SMTP_CLIENT_PROTO_H
#define MAILARK_DELIVER_SMTP_CLIENT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define SMTP_REPLY_MAX_LINES 512
#define SMTP_REPLY_MAX_SIZE  (64 * 1024)
#define SMTP_REPLY_MAX_LINE  4096

struct smtp_reply {
	int code;            /* 0 until the first line is parsed */
	int nlines;
	struct buf text;     /* each line's text after "NNN-"/"NNN ", '\n' between */
	size_t size;         /* bytes of reply seen so far */
	const char *error;   /* static reason after -1 */
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_reset(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);
/*
 * Feeds one reply line without its line ending.  Returns 1 when it was the
 * last line of the reply, 0 when more lines follow, -1 on a malformed line
 * (bad code, code changing between lines, bad separator, over a limit).
 */
int smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len);

/* EHLO keywords we use. */
#define SMTP_EXT_PIPELINING 0x01
#define SMTP_EXT_SIZE       0x02
#define SMTP_EXT_8BITMIME   0x04
#define SMTP_EXT_SMTPUTF8   0x08
#define SMTP_EXT_CHUNKING   0x10
#define SMTP_EXT_DSN        0x20
#define SMTP_EXT_STARTTLS   0x40

/*
 * Keywords of a complete 250 EHLO reply (the first line, the server's
 * greeting, is skipped).  *size_r gets the SIZE limit, 0 for none.
 */
unsigned smtp_ehlo_parse(const struct smtp_reply *r, uint64_t *size_r);

/*
 * Appends `in` to `out` with RFC 5321 dot-stuffing: a '.' at the start of
 * a line is doubled.  *at_bol carries "at the beginning of a line" across
 * calls (start with 1), so a message can be stuffed in pieces.
 */
void smtp_dotstuff(const char *in, size_t len, int *at_bol, struct buf *out);

/*
 * Appends a printable copy of remote text: CR/LF/TAB become spaces, other
 * control and non-ASCII bytes '?', and at most `cap` bytes are appended
 * ("..." marks a cut).
 */
void smtp_printable(const char *s, size_t len, size_t cap, struct buf *out);

#endif
