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

#include <stddef.h>
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
/*
 * The classifier's knobs (see spam_bayes.c for what each does).  The daemon
 * always uses spam_bayes_defaults; bench/spam/tune.c passes others to
 * spam_bayes_combine() to cross-validate them on a training set.
 */
struct spam_bayes_band {
	double below;                /* p < below */
	const char *name;            /* "BAYES_99" */
	double score;
};
struct spam_bayes_knobs {
	double prior_x, prior_a;     /* Robinson's x and s */
	double ham_weight;           /* ham counts multiplied by this (Graham's bias) */
	unsigned min_count;          /* features seen fewer times (spam+ham) are not clues */
	unsigned clues_max;          /* clues combined, furthest from 0.5 first */
	unsigned header_clues_max;   /* of which from the raw header block */
	double min_dist;             /* |f - 0.5| needed to be a clue */
	const struct spam_bayes_band *bands;   /* ends with below > 1 */
};
extern const struct spam_bayes_knobs spam_bayes_defaults;

/* One feature's counts as looked up for a message. */
struct spam_bayes_count {
	long long s, h;
	int header;                  /* from the raw header block */
};
/* The probability (0..1) for a message whose known features are c[0..n-1];
 * *used_r: clues combined.  Pure: no database, any thread. */
double spam_bayes_combine(const struct spam_bayes_knobs *k, const struct spam_bayes_count *c,
    size_t n, long long nspam, long long nham, unsigned *used_r);
/* The band p falls in (never NULL for 0 <= p <= 1). */
const struct spam_bayes_band *spam_bayes_band(const struct spam_bayes_knobs *k, double p);

/* Training requests handed to worker threads and not finished (control_spam.c). */
void spam_bayes_pending_add(struct spam_db *db, int delta);
long spam_bayes_pending(struct spam_db *db);

#endif
