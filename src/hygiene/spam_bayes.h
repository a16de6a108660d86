/*
 * spam_bayes — the statistical classifier behind spam_train() and
 * spam_classify() (spam.h): per-feature counts of spam and ham messages in
 * SQLite, one database per tenant (<data_dir>/spam/<tenant>.db) and one
 * global (<data_dir>/spam/global.db), combined with Robinson's per-feature
 * probability and Fisher's chi-square method.
 *
 *   struct spam_tokens t; spam_tokenize(mime, data, len, &t);
 *   spam_bayes_train(db, "acme", 1, &t, &outcome, &err);    // tenant + global
 *   spam_bayes_classify(db, "acme", &t, &c, &err);          // c.prob 0..1
 *
 * Every trained message is remembered by a digest of its feature set:
 * learning it again as the same class changes nothing, learning it as the
 * other class moves its counts over.  A tenant with fewer than
 * SPAM_BAYES_MIN_OWN messages of either class is classified with the global
 * counts (which include its own training).  Any thread: each call takes a
 * connection of its own from the pool in struct spam_db.
 */
#ifndef MAILARK_HYGIENE_SPAM_BAYES_H
#define MAILARK_HYGIENE_SPAM_BAYES_H

#include <stdint.h>

struct spam_db;
struct spam_tokens;

#define SPAM_BAYES_MIN_OWN 200

enum spam_train_outcome {
	SPAM_TRAIN_NEW,              /* counted for the first time */
	SPAM_TRAIN_SAME,             /* already learnt as this class: nothing changed */
	SPAM_TRAIN_MOVED,            /* learnt before as the other class: moved over */
};

struct spam_bayes_stats {
	long long nspam, nham;       /* messages learnt */
	long long ntokens;           /* distinct features */
};

struct spam_bayes_class {
	double prob;                 /* 0..1; 0.5 when nothing is known */
	int trained;                 /* 0: no counts to judge with (prob is 0.5) */
	int global;                  /* the global counts were used */
	unsigned clues;              /* features that took part */
};

/* tenant NULL: only the global set.  0 / -1 + *err_r. */
int spam_bayes_train(struct spam_db *db, const char *tenant, int is_spam,
    const struct spam_tokens *t, enum spam_train_outcome *outcome_r, char **err_r);
int spam_bayes_classify(struct spam_db *db, const char *tenant, const struct spam_tokens *t,
    struct spam_bayes_class *c_r, char **err_r);
/* tenant NULL: the global set. */
int spam_bayes_stats(struct spam_db *db, const char *tenant, struct spam_bayes_stats *s_r,
    char **err_r);
/* Training requests handed to worker threads and not finished (control_spam.c). */
void spam_bayes_pending_add(struct spam_db *db, int delta);
long spam_bayes_pending(struct spam_db *db);

#endif
