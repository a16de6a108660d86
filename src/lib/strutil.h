/*
 * strutil — small string helpers shared by parsers: sizes, durations,
 * case-insensitive prefixes, trimming.  Parsers return 0 on success and -1
 * on malformed input; they never allocate unless stated.
 */
#ifndef MAILARK_LIB_STRUTIL_H
#define MAILARK_LIB_STRUTIL_H

#include <stddef.h>
#include <stdint.h>

/* "10240", "10k", "25M", "1G" (binary multiples) → bytes. */
int str_parse_size(const char *s, uint64_t *bytes_r);
/* "90", "90s", "5m", "2h", "5d", "1w" → seconds. */
int str_parse_duration(const char *s, uint64_t *seconds_r);
/* Decimal unsigned integer with no sign, spaces or trailing text. */
int str_parse_u64(const char *s, uint64_t *value_r);
/* "yes/no/true/false/on/off/1/0" */
int str_parse_bool(const char *s, int *value_r);
/* Case-insensitive: does s start with prefix? Returns length matched or 0. */
size_t str_prefix_ci(const char *s, const char *prefix);
/* Trims ASCII white space at both ends in place; returns s. */
char *str_trim(char *s);
/* Lower-cases ASCII letters in place; returns s. */
char *str_lower(char *s);
/* A tenant name: 1..63 of [a-z0-9-], not starting with '-' (NULL: no).  It
 * names directories (archive/<tenant>/), so this one rule is used everywhere. */
int str_tenant_name_valid(const char *name);
/* Constant-time-agnostic equality helpers. */
int str_eq_ci(const char *a, const char *b);

#endif
