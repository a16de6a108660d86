/*
 * cli_spam.c — see cli_spam.h (being built).
 */
#include "cli/cli_spam.h"

#include <stdio.h>

int
cli_spam_run(const struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	(void)argc;
	(void)argv;
	fputs("mailark spam: not available yet\n", stderr);
	return 1;
}
