/*
 * id — unique, time-ordered identifiers for queue entries and sessions.
 *
 * An id is ID_LEN characters of Crockford base32: 48 bits of milliseconds
 * since the epoch, then 32 random bits, so ids sort by creation time and
 * are safe as file names.  id_generate() is thread-safe.
 */
#ifndef MAILARK_LIB_ID_H
#define MAILARK_LIB_ID_H

#define ID_LEN 16

void id_generate(char out[ID_LEN + 1]);
/* 1 if s is exactly ID_LEN characters of the id alphabet. */
int id_valid(const char *s);

#endif
