#include "lib/strutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int
str_parse_u64(const char *s, uint64_t *value_r)
{
	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*value_r = v;
	return 0;
}

static int
str_parse_scaled(const char *s, const char *units, const uint64_t *mult, uint64_t *out)
{
	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	uint64_t m = 1;
	if (*end != '\0') {
		const char *u = strchr(units, tolower((unsigned char)*end));
		if (u == NULL)
			return -1;
		m = mult[u - units];
		end++;
		/* Accept "MB"/"KB" style suffixes for sizes. */
		if ((*end == 'b' || *end == 'B') && m >= 1024)
			end++;
		if (*end != '\0')
			return -1;
	}
	if (m != 0 && v > UINT64_MAX / m)
		return -1;
	*out = v * m;
	return 0;
}

int
str_parse_size(const char *s, uint64_t *bytes_r)
{
	static const uint64_t mult[] = { 1, 1024, 1024 * 1024, 1024ULL * 1024 * 1024 };
	return str_parse_scaled(s, "bkmg", mult, bytes_r);
}

int
str_parse_duration(const char *s, uint64_t *seconds_r)
{
	static const uint64_t mult[] = { 1, 60, 3600, 86400, 604800 };
	return str_parse_scaled(s, "smhdw", mult, seconds_r);
}

int
str_parse_bool(const char *s, int *value_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*value_r = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*value_r = 0;
			return 0;
		}
	}
	return -1;
}

size_t
str_prefix_ci(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncasecmp(s, prefix, n) == 0 ? n : 0;
}

char *
str_trim(char *s)
{
	char *start = s;
	while (isspace((unsigned char)*start))
		start++;
	size_t len = strlen(start);
	while (len > 0 && isspace((unsigned char)start[len - 1]))
		len--;
	memmove(s, start, len);
	s[len] = '\0';
	return s;
}

char *
str_lower(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

int
str_eq_ci(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

int
str_tenant_name_valid(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;
	if (n == 0 || n > 63 || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}
