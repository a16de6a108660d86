/*
 * control_spam.c — `spam.*`: train, classify, report (users' spam / not
 * spam), stats.
 *
 * Training writes SQLite and tokenizes whole messages, so spam.train and
 * spam.report hand the messages to the hygiene worker pool and answer at
 * once with what was queued; spam.stats shows `pending` until the workers
 * are done (the CLI waits for it).  A request is at most 96 MiB (control.c);
 * the CLI sends large trainings as batches of a few MiB.  spam.classify is one
 * message and quick: it runs here, on the loop thread.
 */
#include "control/control_handlers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/principal.h"
#include "config/config.h"
#include "control/control_args.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "hygiene/spam.h"
#include "hygiene/spam_bayes.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/worker.h"
#include "hygiene/quarantine.h"
#include "server.h"

#define SPAM_BATCH_MAX 1000          /* messages in one spam.train request */

struct train_item {
	unsigned char *data;
	size_t len;
	int is_spam;
};

struct train_job {
	struct spam_db *db;
	char *tenant;
	struct train_item *items;
	size_t n;
	size_t learnt, failed;       /* filled by the worker */
	char *err;                   /* the first failure */
};

static void
train_work(void *arg)
{
	struct train_job *j = arg;
	for (size_t i = 0; i < j->n; i++) {
		char *err = NULL;
		if (spam_train(j->db, j->tenant, j->items[i].is_spam, j->items[i].data,
		    j->items[i].len, &err) < 0) {
			j->failed++;
			if (j->err == NULL)
				j->err = err;
			else
				free(err);
		} else {
			j->learnt++;
		}
	}
}

static void
train_done(void *arg)
{
	struct train_job *j = arg;
	spam_bayes_pending_add(j->db, -(int)j->n);
	if (j->failed > 0)
		log_warn("spam_train_failed", "tenant=%s failed=%zu error=%s", j->tenant, j->failed,
		    log_str(j->err));
	log_info("spam_trained", "tenant=%s messages=%zu", j->tenant, j->learnt);
	for (size_t i = 0; i < j->n; i++)
		free(j->items[i].data);
	free(j->items);
	free(j->tenant);
	free(j->err);
	free(j);
}

static struct spam_db *
spam_db_of(struct server *srv, char **err_r)
{
	if (srv->hygiene == NULL || srv->hygiene->spam == NULL) {
		err_setf(err_r, "the hygiene pipeline is not running");
		return NULL;
	}
	return srv->hygiene->spam;
}

/* The spam database and the request's tenant (*tenant_r, caller frees),
 * or NULL + *err_r. */
static struct spam_db *
spam_db_tenant(struct server *srv, json_t *args, char **tenant_r, char **err_r)
{
	*tenant_r = NULL;
	struct spam_db *db = spam_db_of(srv, err_r);
	if (db == NULL)
		return NULL;
	*tenant_r = control_arg_tenant(srv, args, err_r);
	return *tenant_r != NULL ? db : NULL;
}

static void
train_submit(struct server *srv, struct train_job *j)
{
	spam_bayes_pending_add(j->db, (int)j->n);
	worker_submit(srv->hygiene->pool, train_work, train_done, j);
}

/* A message argument: the raw text, or its base64 when args.encoding is
 * "base64" (the CLI sends files byte-exact that way).  Caller frees. */
static unsigned char *
message_arg(json_t *args, json_t *v, size_t *len_r)
{
	const char *s = json_string_value(v);
	size_t slen = json_string_length(v);
	const char *enc = json_string_value(json_object_get(args, "encoding"));
	if (s == NULL || slen == 0)
		return NULL;
	if (enc == NULL || strcmp(enc, "base64") != 0) {
		*len_r = slen;
		return xmemdup(s, slen);
	}
	unsigned char *raw = xmalloc(slen / 4 * 3 + 3);
	if (sodium_base642bin(raw, slen / 4 * 3 + 3, s, slen, "\r\n", len_r, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || *len_r == 0) {
		free(raw);
		return NULL;
	}
	return raw;
}

/* Appends the strings of args[key] to the job; -1 when it is not a list of strings. */
static int
train_collect(struct train_job *j, json_t *args, const char *key, int is_spam, size_t *n_r,
    char **err_r)
{
	json_t *list = json_object_get(args, key);
	*n_r = 0;
	if (list == NULL)
		return 0;
	if (!json_is_array(list)) {
		err_setf(err_r, "'%s' must be a list of messages", key);
		return -1;
	}
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v) {
		if (j->n >= SPAM_BATCH_MAX) {
			err_setf(err_r, "at most %d messages per request", SPAM_BATCH_MAX);
			return -1;
		}
		size_t len;
		unsigned char *data = message_arg(args, v, &len);
		if (data == NULL) {
			err_setf(err_r, "'%s' must be a list of messages", key);
			return -1;
		}
		j->items = xrealloc(j->items, (j->n + 1) * sizeof(j->items[0]));
		j->items[j->n].len = len;
		j->items[j->n].data = data;
		j->items[j->n].is_spam = is_spam;
		j->n++;
		(*n_r)++;
	}
	return 0;
}

static void
train_job_free(struct train_job *j)
{
	for (size_t i = 0; i < j->n; i++)
		free(j->items[i].data);
	free(j->items);
	free(j->tenant);
	free(j);
}

static int
cmd_spam_train(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant;
	struct spam_db *db = spam_db_tenant(srv, args, &tenant, err_r);
	if (db == NULL)
		return -1;
	struct train_job *j = xcalloc(1, sizeof(*j));
	j->db = db;
	j->tenant = tenant;
	size_t nspam, nham;
	if (train_collect(j, args, "spam", 1, &nspam, err_r) < 0 ||
	    train_collect(j, args, "ham", 0, &nham, err_r) < 0) {
		train_job_free(j);
		return -1;
	}
	if (j->n == 0) {
		train_job_free(j);
		err_setf(err_r, "nothing to learn: give 'spam' and/or 'ham' messages");
		return -1;
	}
	*result_r = json_pack("{s:s, s:I, s:I}", "tenant", tenant, "spam", (json_int_t)nspam,
	    "ham", (json_int_t)nham);
	train_submit(srv, j);
	return 0;
}

static json_t *
tests_array(const char *tests)
{
	json_t *a = json_array();
	const char *p = tests;
	while (p != NULL && *p != '\0') {
		const char *c = strchr(p, ',');
		size_t n = c != NULL ? (size_t)(c - p) : strlen(p);
		json_array_append_new(a, json_stringn(p, n));
		p = c != NULL ? c + 1 : NULL;
	}
	return a;
}

static int
cmd_spam_classify(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	struct spam_db *db = spam_db_of(srv, err_r);
	if (db == NULL)
		return -1;
	size_t len;
	unsigned char *msg = message_arg(args, json_object_get(args, "message"), &len);
	if (msg == NULL) {
		err_setf(err_r, "missing argument 'message'");
		return -1;
	}
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL) {
		free(msg);
		return -1;
	}
	const struct hygiene_policy *pol = policy_get(srv->hygiene, tenant);
	struct spam_report rep;
	int rc = spam_evaluate(db, tenant, pol, NULL, msg, len, &rep, err_r);
	free(msg);
	if (rc == 0)
		*result_r = json_pack("{s:s, s:f, s:s, s:f, s:b, s:o}", "tenant", tenant,
		    "score", rep.score, "verdict", spam_verdict_name(pol, rep.score),
		    "probability", rep.prob, "trained", rep.bayes_trained,
		    "tests", tests_array(rep.tests));
	spam_report_free(&rep);
	policy_release(&pol);
	free(tenant);
	return rc;
}


static int
cmd_spam_report(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	struct spam_db *db = spam_db_of(srv, err_r);
	if (db == NULL)
		return -1;
	const char *verdict = control_arg(args, "verdict", err_r);
	if (verdict == NULL)
		return -1;
	if (strcmp(verdict, "spam") != 0 && strcmp(verdict, "ham") != 0) {
		err_setf(err_r, "verdict must be spam or ham");
		return -1;
	}
	json_t *msg = json_object_get(args, "message");
	const char *id = control_arg_opt(args, "id");
	if ((msg == NULL) == (id == NULL)) {
		err_setf(err_r, "give either 'message' or 'id'");
		return -1;
	}
	char *tenant = NULL;
	unsigned char *data;
	size_t len;
	if (msg != NULL) {
		tenant = control_arg_tenant(srv, args, err_r);
		if (tenant == NULL)
			return -1;
		data = message_arg(args, msg, &len);
		if (data == NULL) {
			err_setf(err_r, "'message' must be a raw message");
			free(tenant);
			return -1;
		}
	} else {
		/* A quarantined message: a user reports only their own. */
		json_t *item = control_quarantine_item(srv, who, args, &tenant, &id, err_r);
		if (item == NULL || quarantine_read(srv->quarantine, tenant, id, &data, &len,
		    err_r) < 0) {
			json_decref(item);
			free(tenant);
			return -1;
		}
		json_decref(item);
	}
	struct train_job *j = xcalloc(1, sizeof(*j));
	j->db = db;
	j->tenant = tenant;
	j->items = xcalloc(1, sizeof(j->items[0]));
	j->items[0].data = data;
	j->items[0].len = len;
	j->items[0].is_spam = strcmp(verdict, "spam") == 0;
	j->n = 1;
	log_info("spam_report", "tenant=%s actor=%s verdict=%s id=%s", tenant,
	    log_str(who != NULL ? who->actor : NULL), verdict, log_str(id));
	*result_r = json_pack("{s:s, s:s, s:b}", "tenant", tenant, "verdict", verdict, "queued", 1);
	train_submit(srv, j);
	return 0;
}

static json_t *
stats_json(const struct spam_bayes_stats *s)
{
	return json_pack("{s:I, s:I, s:I}", "spam", (json_int_t)s->nspam, "ham",
	    (json_int_t)s->nham, "tokens", (json_int_t)s->ntokens);
}

static int
cmd_spam_stats(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant;
	struct spam_db *db = spam_db_tenant(srv, args, &tenant, err_r);
	if (db == NULL)
		return -1;
	struct spam_bayes_stats own, global;
	if (spam_bayes_stats(db, tenant, &own, err_r) < 0 ||
	    spam_bayes_stats(db, NULL, &global, err_r) < 0) {
		free(tenant);
		return -1;
	}
	int uses_own = own.nspam >= SPAM_BAYES_MIN_OWN && own.nham >= SPAM_BAYES_MIN_OWN;
	*result_r = json_pack("{s:s, s:o, s:o, s:s, s:I}", "tenant", tenant, "own",
	    stats_json(&own), "global", stats_json(&global), "classifier",
	    uses_own ? "own" : "global", "pending", (json_int_t)spam_bayes_pending(db));
	free(tenant);
	return 0;
}

const struct control_command control_spam_commands[] = {
	{ "spam.train", 1, cmd_spam_train },
	{ "spam.classify", 0, cmd_spam_classify },
	{ "spam.report", 1, cmd_spam_report },
	{ "spam.stats", 0, cmd_spam_stats },
	{ NULL, 0, NULL },
};
