/*
 * spam — the antispam content stage: GTUBE, header and body rules, DNS
 * blocklists (the tenant's spam.dnsbl zones, looked up for the client IP),
 * the built-in statistical classifier and, optionally, rspamd; their sum is
 * the spam score, compared with the tenant's thresholds (tag, quarantine,
 * reject).  Tagged mail gets X-Spam-Flag / X-Spam-Score / X-Spam-Status
 * headers (and the subject tag, when set).
 *
 * The classifier: token counts per tenant and one global set, in SQLite
 * databases under <data_dir>/spam/ (global.db, <tenant>.db), written by
 * training and read by classification on any thread (WAL; each thread its
 * own connection).  A tenant with too little training of its own borrows
 * the global counts.
 *
 *   struct spam_db *db; spam_db_open(data_dir, &db, &err);      // once
 *   spam_train(db, tenant_or_NULL, is_spam, data, len, &err);   // one message
 *   spam_classify(db, tenant, data, len, &prob, &err);         // 0..1 probability
 *   rc = spam_stage(m, r, &err);                                // hygiene.c stage table
 */
#ifndef MAILARK_HYGIENE_SPAM_H
#define MAILARK_HYGIENE_SPAM_H

#include <stddef.h>

struct hygiene_msg;
struct hygiene_result;
struct spam_db;

int spam_db_open(const char *data_dir, struct spam_db **db_r, char **err_r);
void spam_db_close(struct spam_db **db);
/* Learns one message (tenant NULL: the global set only; else both).  0 / -1. */
int spam_train(struct spam_db *db, const char *tenant, int is_spam, const unsigned char *data,
    size_t len, char **err_r);
/* The classifier's probability that the message is spam (0..1) for the
 * tenant (NULL: global).  0 / -1 + *err_r. */
int spam_classify(struct spam_db *db, const char *tenant, const unsigned char *data, size_t len,
    double *prob_r, char **err_r);
int spam_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);

/*
 * The part of the score that needs only the message (GTUBE, rules, the
 * classifier) — what spam_stage() adds DNSBL and rspamd to, and what the
 * `spam classify` command shows.  mime may be NULL (parsed here).  The
 * caller frees rep with spam_report_free().  0 / -1 + *err_r.
 */
struct hygiene_policy;
typedef struct _GMimeMessage GMimeMessage;
struct spam_report {
	double score;
	double prob;                 /* the classifier's, 0.5 when untrained or off */
	int bayes_trained;           /* the classifier had counts to judge with */
	char *tests;                 /* "GTUBE,BAYES_99,MISSING_DATE" (malloc'd, maybe "") */
};
int spam_evaluate(struct spam_db *db, const char *tenant, const struct hygiene_policy *pol,
    GMimeMessage *mime, const unsigned char *data, size_t len, struct spam_report *rep,
    char **err_r);
void spam_report_free(struct spam_report *rep);
/* "reject", "quarantine", "spam" (tag) or "ham" for a score under pol's thresholds. */
const char *spam_verdict_name(const struct hygiene_policy *pol, double score);

#endif
