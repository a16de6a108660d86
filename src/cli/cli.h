/*
 * cli — the command line of mailark: usage and help texts, and the
 * administrative commands that talk to the daemon over the control socket.
 *
 *   if (cli_wants_help(argc, argv)) return cli_help(argc, argv);
 *   ...
 *   return cli_admin_run(cfg, argc, argv);     // exit status: 0, 1 or 2
 *
 * argv starts at the command name ("tenant", "add", "acme", ...).  main.c
 * handles the global options and the commands that do not need the daemon
 * (init, serve).  Nothing here keeps state; nothing is returned to free.
 */
#ifndef MAILARK_CLI_CLI_H
#define MAILARK_CLI_CLI_H

#include <stdio.h>

#define MAILARK_VERSION "0.1.0"

struct config;

void cli_usage(FILE *out);
/* 1 if name is a command mailark knows (init and serve included). */
int cli_is_command(const char *name);
/* 1 if -h or --help appears among the arguments. */
int cli_wants_help(int argc, char **argv);
/* Prints the help of the command (and subcommand) on stdout; returns the exit status. */
int cli_help(int argc, char **argv);
/* mailark init; returns the exit status. */
int cli_init_run(const struct config *cfg);
/* 1 if the data directory was initialised, else 0 with *missing_r (a path, caller frees). */
int cli_initialised(const struct config *cfg, char **missing_r);
/* Sends {cmd, args} to the daemon: 0 with *result_r (new reference), or -1
 * after printing why on stderr.  args stays the caller's. */
struct json_t;
int cli_call(const struct config *cfg, const char *cmd, struct json_t *args,
    struct json_t **result_r);
/* Runs an administrative command against the daemon; returns the exit status. */
int cli_admin_run(const struct config *cfg, int argc, char **argv);

#endif
