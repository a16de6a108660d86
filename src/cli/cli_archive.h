/*
 * cli_archive — `mailark archive import|search|show|export|verify|reindex|
 * purge|stats|jobs|shred|retention|settings|case|hold|approval`.  cli.c
 * lists the subcommands for help and hands the whole argv (from "archive"
 * on) to cli_archive_run(), which waits for background jobs (progress bar
 * on a terminal) and prints their results.
 */
#ifndef MAILARK_CLI_CLI_ARCHIVE_H
#define MAILARK_CLI_CLI_ARCHIVE_H

struct config;

/* Returns the exit status: 0, 1 (refused, failed, or verify found discrepancies), 2 (usage). */
int cli_archive_run(const struct config *cfg, int argc, char **argv);
/* The usage text (for help). */
const char *cli_archive_usage(void);

#endif
