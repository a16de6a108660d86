/*
 * spam_rules — the built-in header and body rules of the antispam stage:
 * a fixed table of well-known spam signs (missing Date or Message-ID, an
 * address in the From display name, an all-capitals subject, HTML-only
 * mail with almost no text, many exclamation marks, links to IP literals,
 * "Re:" without a message it replies to), each with a name and a score.
 *
 *   spam_rules_run(&tokens.feat, add, arg);   // add(arg, "MISSING_DATE", 1.0) per hit
 *
 * Pure functions of the features spam_tokenize() collected; any thread.
 */
#ifndef MAILARK_HYGIENE_SPAM_RULES_H
#define MAILARK_HYGIENE_SPAM_RULES_H

struct spam_features;

typedef void spam_rule_hit_fn(void *arg, const char *name, double score);

struct spam_rule {
	const char *name;
	double score;
	int (*test)(const struct spam_features *f);
	const char *help;
};

/* The table, ended by an entry whose name is NULL. */
extern const struct spam_rule spam_rules[];

/* Calls hit() for every rule that matches; returns the number of hits. */
int spam_rules_run(const struct spam_features *f, spam_rule_hit_fn *hit, void *arg);

#endif
