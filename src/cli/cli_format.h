/*
 * cli_format — how the CLI prints the daemon's JSON answers for people:
 * aligned tables and "key: value" blocks.  cli_format_print() picks the
 * layout by command name ("tenant.list" ...).  Only the cli/ files use it.
 */
#ifndef MAILARK_CLI_CLI_FORMAT_H
#define MAILARK_CLI_CLI_FORMAT_H

#include <jansson.h>
#include <stdio.h>

/* Prints result (the "result" member of the answer) for the command. */
void cli_format_print(FILE *out, const char *cmd, json_t *args, json_t *result);

#endif
