/*
 * audit_query.c — reading the audit trail: entries as JSON for
 * `mailark audit list` and the audit.list control command, and the
 * --since TIME parser ("2h" ago, or an ISO 8601 date/time).
 */
#include "audit/audit.h"

#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit_internal.h"
#include "lib/buf.h"
#include "lib/strutil.h"

static json_t *
audit_json_str(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* "2024-05-01T12:00:00.123456Z" */
static void
audit_format_time(long long us, char *out, size_t size)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	char base[32];
	if (gmtime_r(&t, &tm) == NULL || strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S",
	    &tm) == 0) {
		snprintf(out, size, "%lld", us);
		return;
	}
	snprintf(out, size, "%s.%06lldZ", base, us % 1000000);
}

static json_t *
audit_entry_json(const struct store_audit_entry *e)
{
	char when[64];
	audit_format_time(e->time_us, when, sizeof(when));
	json_t *o = json_pack("{s:I, s:s, s:I}", "seq", (json_int_t)e->seq, "time", when,
	    "time_us", (json_int_t)e->time_us);
	json_object_set_new(o, "actor", audit_json_str(e->actor));
	json_object_set_new(o, "role", audit_json_str(e->role));
	json_object_set_new(o, "tenant", audit_json_str(e->tenant));
	json_object_set_new(o, "action", audit_json_str(e->action));
	json_object_set_new(o, "object", audit_json_str(e->object));
	json_object_set_new(o, "source", audit_json_str(e->source));
	json_object_set_new(o, "outcome", audit_json_str(e->outcome));
	json_object_set_new(o, "detail", audit_json_str(e->detail));
	return o;
}

int
audit_list_json(struct audit *a, const struct store_audit_filter *f, json_t **result_r,
    char **err_r)
{
	struct store_audit_entry *list;
	size_t n;
	pthread_mutex_lock(&a->lock);
	int rc = store_audit_list(a->sa, f, &list, &n);
	pthread_mutex_unlock(&a->lock);
	if (rc < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "cannot read the audit trail");
		*err_r = buf_steal(&e);
		return -1;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, audit_entry_json(&list[i]));
	store_audit_entries_free(list, n);
	*result_r = arr;
	return 0;
}

/* "+02:00", "-0530", "Z" or nothing → seconds east of UTC; -1 if malformed. */
static int
audit_parse_zone(const char *p, long *off_r)
{
	*off_r = 0;
	if (*p == '\0')
		return 0;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return 0;
	if (*p != '+' && *p != '-')
		return -1;
	int sign = *p++ == '-' ? -1 : 1;
	int d[4], nd = 0;
	for (; *p != '\0' && nd < 4; p++) {
		if (*p == ':' && nd == 2)
			continue;
		if (!isdigit((unsigned char)*p))
			return -1;
		d[nd++] = *p - '0';
	}
	if (*p != '\0' || nd != 4)
		return -1;
	*off_r = sign * ((d[0] * 10 + d[1]) * 3600L + (d[2] * 10 + d[3]) * 60L);
	return 0;
}

static int
audit_parse_iso(const char *s, long long *us_r)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!isdigit((unsigned char)s[0]))
		return -1;
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (p == NULL)
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p = strptime(p + 1, "%H:%M", &tm);
		if (p != NULL && *p == ':')
			p = strptime(p + 1, "%S", &tm);
		if (p == NULL)
			return -1;
	}
	long off;
	if (audit_parse_zone(p, &off) < 0)
		return -1;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*us_r = ((long long)t - off) * 1000000;
	return 0;
}

int
audit_parse_time(const char *s, time_t now, long long *us_r)
{
	uint64_t secs;
	size_t n = s != NULL ? strlen(s) : 0;
	if (n == 0)
		return -1;
	if (audit_parse_iso(s, us_r) == 0)
		return 0;
	/* A duration ago needs its unit: a bare number is ambiguous. */
	if (!isalpha((unsigned char)s[n - 1]) || str_parse_duration(s, &secs) < 0 ||
	    secs > (uint64_t)now)
		return -1;
	*us_r = ((long long)now - (long long)secs) * 1000000;
	return 0;
}
