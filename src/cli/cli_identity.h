/*
 * cli_identity — the user, group and token commands of the CLI
 * ("mailark user add acme ann@acme.example --role admin", "mailark token
 * create", ...): their options, reading passwords from standard input, and
 * how their answers are printed.  cli.c lists them for help and hands the
 * whole argv (from the group word on) to cli_identity_run().
 */
#ifndef MAILARK_CLI_CLI_IDENTITY_H
#define MAILARK_CLI_CLI_IDENTITY_H

struct config;

/* 1 for "user", "group" and "token". */
int cli_identity_handles(const char *group);
/* Runs the command; returns the exit status (0, 1, or 2 for usage errors). */
int cli_identity_run(const struct config *cfg, int argc, char **argv);

#endif
