/*
 * log — one key=value line per event, as text or JSON, on standard error.
 *
 *   log_info("received", "id=%s tenant=%s from=%s size=%zu",
 *            id, tenant, log_str(untrusted_sender), size);
 *
 * The first argument names the event; the format produces space-separated
 * key=value pairs.  Any value that came from outside (addresses, replies,
 * HELO names) must go through log_str(), which makes it printable, quotes it
 * when needed and caps its length, so that a peer can neither forge log
 * lines nor break the JSON output.  log_str() returns a pointer into a small
 * per-thread ring of buffers: valid until eight more log_str() calls.
 *
 * Levels mean: debug (tracing), info (events), warn (bad input or soft
 * trouble), error (our environment failed: disk, config).  Library code never
 * exits; only main decides what is fatal.
 */
#ifndef MAILARK_LIB_LOG_H
#define MAILARK_LIB_LOG_H

#include <stddef.h>

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };
enum log_format { LOGF_TEXT, LOGF_JSON };

/* Returns 0, or -1 when the name is unknown. */
int log_level_parse(const char *name, enum log_level *level_r);
int log_format_parse(const char *name, enum log_format *format_r);
void log_configure(enum log_level level, enum log_format format);
int log_enabled(enum log_level level);

void log_event(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define log_debug(ev, ...) log_event(LOGL_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...)  log_event(LOGL_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...)  log_event(LOGL_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_event(LOGL_ERROR, ev, __VA_ARGS__)

/* Printable, quoted-if-needed, length-capped copy of untrusted text. */
const char *log_str(const char *s);
/* The same for binary-safe input of a given length. */
const char *log_strn(const char *s, size_t len);

#endif
