/*
 * directory_cli — `mailark directory set|show|sync|login`: their options,
 * the bind password read from standard input, and waiting for the
 * asynchronous sync / sign-in jobs of the daemon ("directory.job") so the
 * command prints a summary.  cli.c lists the subcommands for help and hands
 * the whole argv (from "directory" on) to directory_cli_run().
 */
#ifndef MAILARK_DIRECTORY_DIRECTORY_CLI_H
#define MAILARK_DIRECTORY_DIRECTORY_CLI_H

struct config;

/* Returns the exit status: 0, 1 (refused or failed), 2 (usage). */
int directory_cli_run(const struct config *cfg, int argc, char **argv);

#endif
