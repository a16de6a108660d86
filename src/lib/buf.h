/*
 * buf — one growable, binary-safe byte buffer used everywhere.
 *
 *   struct buf b = BUF_INIT;
 *   buf_appendf(&b, "%s=%d", key, value);
 *   use(buf_cstr(&b), b.len);
 *   buf_free(&b);
 *
 * The buffer owns its storage; buf_free() releases it.  buf_cstr() keeps a
 * NUL after the last byte so the data can be used as a C string when it has
 * no embedded NULs.  buf_steal() hands the storage to the caller (free()).
 */
#ifndef MAILARK_LIB_BUF_H
#define MAILARK_LIB_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_appendf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vappendf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_truncate(struct buf *b, size_t len);
void buf_reset(struct buf *b);
const char *buf_cstr(struct buf *b);
/* Returns the NUL-terminated storage (caller frees) and empties b. */
char *buf_steal(struct buf *b);
/* A new formatted string (caller frees). */
char *buf_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The usual "reason" out-parameter: when err_r is not NULL, *err_r becomes
 * a new formatted string (the caller frees it; an earlier value is not
 * freed, so initialise it to NULL and set it once).
 */
void err_setf(char **err_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);

#endif
