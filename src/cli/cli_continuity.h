/*
 * cli_continuity — `mailark continuity status|start|stop|report|settings|
 * set|drill|probe`: parses the subcommands and their options into control
 * requests (one table) and prints the answers for people: status as aligned
 * lines, reports as a block that shows whether they reconcile, or the JSON
 * with --json.  cli.c lists the subcommands for help and hands the whole
 * argv (from "continuity" on) to cli_continuity_run().
 */
#ifndef MAILARK_CLI_CLI_CONTINUITY_H
#define MAILARK_CLI_CLI_CONTINUITY_H

struct config;

/* Returns the exit status: 0, 1 (refused, failed, or a report that does not
 * reconcile), 2 (usage). */
int cli_continuity_run(const struct config *cfg, int argc, char **argv);
/* The usage text (for help and usage errors). */
const char *cli_continuity_usage(void);

#endif
