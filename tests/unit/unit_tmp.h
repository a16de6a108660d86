/*
 * unit_tmp — a private temporary directory for a unit test:
 * $TMPDIR (else /tmp) + "/mailark-<name>-" + a unique suffix made by mkdtemp.
 *
 *   char dir[256];
 *   if (unit_tmpdir(dir, sizeof(dir), "index") < 0) ...
 *
 * The caller removes the directory.  Returns 0, or -1 (too long, mkdtemp failed).
 */
#ifndef MAILARK_TESTS_UNIT_TMP_H
#define MAILARK_TESTS_UNIT_TMP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int
unit_tmpdir(char *out, size_t size, const char *name)
{
	const char *base = getenv("TMPDIR");
	int n = snprintf(out, size, "%s/mailark-%s-", base && *base ? base : "/tmp", name);
	if (n < 0 || (size_t)n + 7 > size)
		return -1;
	memset(out + n, 'X', 6);     /* mkdtemp's template suffix */
	out[n + 6] = '\0';
	return mkdtemp(out) != NULL ? 0 : -1;
}

#endif
