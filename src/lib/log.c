#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"

#define LOG_STR_SLOTS 8
#define LOG_STR_MAX 512

static enum log_level log_min_level = LOGL_INFO;
static enum log_format log_out_format = LOGF_TEXT;

static const char *const log_level_names[] = { "debug", "info", "warn", "error" };

int
log_level_parse(const char *name, enum log_level *level_r)
{
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(name, log_level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*level_r = LOGL_WARN;
		return 0;
	}
	return -1;
}

int
log_format_parse(const char *name, enum log_format *format_r)
{
	if (strcasecmp(name, "text") == 0)
		*format_r = LOGF_TEXT;
	else if (strcasecmp(name, "json") == 0)
		*format_r = LOGF_JSON;
	else
		return -1;
	return 0;
}

void
log_configure(enum log_level level, enum log_format format)
{
	log_min_level = level;
	log_out_format = format;
}

int
log_enabled(enum log_level level)
{
	return level >= log_min_level;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not valid. */
static size_t
log_utf8_len(const char *s, size_t avail)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n;
	unsigned cp;
	if (u[0] >= 0xc2 && u[0] <= 0xdf) {
		n = 2;
		cp = u[0] & 0x1f;
	} else if (u[0] >= 0xe0 && u[0] <= 0xef) {
		n = 3;
		cp = u[0] & 0x0f;
	} else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
		n = 4;
		cp = u[0] & 0x07;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (u[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

const char *
log_strn(const char *s, size_t len)
{
	static __thread char ring[LOG_STR_SLOTS][LOG_STR_MAX + 8];
	static __thread unsigned slot;
	char *out = ring[slot++ % LOG_STR_SLOTS];
	size_t o = 0;
	int quote = len == 0;

	if (s == NULL) {
		strcpy(out, "-");
		return out;
	}
	for (size_t i = 0; i < len && !quote; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == '"' || c == '=' || c >= 0x7f || c == '\\')
			quote = 1;
	}
	if (quote)
		out[o++] = '"';
	/*
	 * Each input byte becomes at most 4 output bytes; stop while a whole
	 * piece still fits, so no escape or UTF-8 sequence is ever cut.
	 */
	size_t i;
	for (i = 0; i < len && o + 4 <= LOG_STR_MAX - 3; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t n;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < ' ' || c == 0x7f) {
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
		} else if (c < 0x80) {
			out[o++] = (char)c;
		} else if ((n = log_utf8_len(s + i, len - i)) > 0) {
			/* Valid UTF-8 stays readable. */
			memcpy(out + o, s + i, n);
			o += n;
			i += n - 1;
		} else {
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
		}
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	if (quote)
		out[o++] = '"';
	out[o] = '\0';
	return out;
}

const char *
log_str(const char *s)
{
	return log_strn(s, s != NULL ? strlen(s) : 0);
}

static void
log_timestamp(char *out, size_t size)
{
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, size - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

static void
json_append_string(struct buf *out, const char *s, size_t len)
{
	buf_append_char(out, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			buf_appendf(out, "\\%c", c);
		else if (c < 0x20)
			buf_appendf(out, "\\u%04x", c);
		else
			buf_append_char(out, (char)c);
	}
	buf_append_char(out, '"');
}

/*
 * Turns "k=v k2=\"quoted \\\" v\"" into JSON members.  Values were produced
 * by log_str() or by our own format strings, so quoting is well formed; a
 * stray token without '=' is kept under the key "msg".
 */
static void
log_kv_to_json(struct buf *out, const char *kv)
{
	const char *p = kv;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		const char *key = p;
		while (*p != '\0' && *p != '=' && *p != ' ')
			p++;
		size_t keylen = (size_t)(p - key);
		struct buf val = BUF_INIT;
		if (*p != '=') {
			buf_append(&val, key, keylen);
			key = "msg";
			keylen = 3;
		} else if (*++p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				buf_append_char(&val, *p);
			}
			if (*p == '"')
				p++;
		} else {
			const char *v = p;
			while (*p != '\0' && *p != ' ')
				p++;
			buf_append(&val, v, (size_t)(p - v));
		}
		buf_append_char(out, ',');
		json_append_string(out, key, keylen);
		buf_append_char(out, ':');
		json_append_string(out, val.data ? val.data : "", val.len);
		buf_free(&val);
	}
}

void
log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	if (level < log_min_level)
		return;
	char ts[40];
	log_timestamp(ts, sizeof(ts));

	struct buf kv = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&kv, fmt, ap);
	va_end(ap);

	struct buf line = BUF_INIT;
	if (log_out_format == LOGF_JSON) {
		buf_appendf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":", ts,
		    log_level_names[level]);
		json_append_string(&line, event, strlen(event));
		log_kv_to_json(&line, buf_cstr(&kv));
		buf_append_str(&line, "}\n");
	} else {
		buf_appendf(&line, "%s %s %s %s\n", ts, log_level_names[level], event,
		    buf_cstr(&kv));
	}
	ssize_t ignored = write(STDERR_FILENO, line.data, line.len);
	(void)ignored;
	buf_free(&kv);
	buf_free(&line);
}
