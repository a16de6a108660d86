/*
 * cli_spam — `mailark spam train TENANT --spam DIR --ham DIR`,
 * `spam classify TENANT FILE...` and `spam stats TENANT`: reads the message
 * files, sends them to the daemon (spam.train / spam.classify) in batches
 * and prints one line per file (score and verdict) or the JSON with --json.
 * cli.c lists the subcommands for help and hands the whole argv (from
 * "spam" on) to cli_spam_run().
 */
#ifndef MAILARK_CLI_CLI_SPAM_H
#define MAILARK_CLI_CLI_SPAM_H

struct config;

/* Returns the exit status: 0, 1 (refused or failed), 2 (usage). */
int cli_spam_run(const struct config *cfg, int argc, char **argv);

#endif
