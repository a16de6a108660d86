/*
 * queue_file — the on-disk format of a committed queue file and of its
 * per-entry state log.  Private to src/queue/.
 *
 * Queue file msg/<ID>:
 *   [body: body_size bytes, exactly as received]
 *   [envelope: typed records, each  type(1) len(4 LE) data(len)]
 *   [END record: QFILE_END_SIZE bytes: magic "MQEND" version(1) pad(2)
 *    env_len(4 LE) body_size(8 LE) crc32(body+envelope)(4 LE) crc32(END)(4 LE)
 *    pad to 32]
 * The body comes first so a message streams to disk in one pass and the
 * SMTP client can pread it from offset 0.  A file whose END record is
 * missing, whose lengths disagree with the file size or whose checksum
 * fails is incomplete and never loaded.
 *
 * State log state/<ID>: appended records  type(1) len(4 LE) data crc32(4 LE);
 * a torn last record is ignored.  Types: QSTATE_RCPT "idx\tstate\treply",
 * QSTATE_HOLD "0|1", QSTATE_ATTEMPT "attempts\tnext\tlast".
 *
 * Encoders append to a struct buf; decoders return 0 or -1 with a static
 * reason in *why_r.  Decoded strings belong to the envelope
 * (queue_envelope_free()).
 */
#ifndef MAILARK_QUEUE_QUEUE_FILE_H
#define MAILARK_QUEUE_QUEUE_FILE_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct queue_entry;
struct queue_envelope;

#define QFILE_VERSION 1
#define QFILE_END_SIZE 32

enum qstate_type { QSTATE_RCPT = 'R', QSTATE_HOLD = 'H', QSTATE_ATTEMPT = 'A' };

uint32_t qfile_crc32(uint32_t crc, const void *data, size_t len);

/* Envelope records (no END). */
void qfile_encode_envelope(const struct queue_envelope *env, struct buf *out);
/* The END record for a body and an envelope of the given lengths and crc. */
void qfile_encode_end(uint64_t body_size, uint32_t env_len, uint32_t crc, struct buf *out);

/*
 * Checks and decodes a whole queue file open on fd: fills e->env and
 * e->body_size.  -1 with *why_r when torn, truncated or corrupt.
 */
int qfile_load(int fd, struct queue_entry *e, const char **why_r);

void qstate_encode(enum qstate_type type, const char *payload, struct buf *out);
/*
 * Applies every intact record of a state log to e; stops at a torn one.
 * Returns the length of the intact prefix (the caller truncates the rest).
 */
size_t qstate_apply(struct queue_entry *e, const char *data, size_t len);

#endif
