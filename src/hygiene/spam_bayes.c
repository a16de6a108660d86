/*
 * spam_bayes.c — token counts in SQLite and the chi-square classifier
 * (spam_bayes.h), and the spam.h entry points spam_db_open/close,
 * spam_train and spam_classify.
 *
 * Connections: struct spam_db keeps a pool of idle connections, each bound
 * to one database file (a tenant's or the global one) with its prepared
 * statements.  A call takes one out of the pool (or opens one), uses it
 * alone, and puts it back; at most SPAM_POOL_MAX idle ones are kept.
 *
 * The classifier (Robinson, "A statistical approach to the spam problem",
 * 2003): for a feature seen in s of S spam and h of H ham messages,
 *   p = (s/S) / (s/S + w*h/H),   f = (a*x + n*p) / (a + n),  n = s + h,
 * with the prior x = 0.5, strength a = 0.45 and ham weight w = 1 (every
 * feature seen at least min_count = 1 time takes part: a higher threshold
 * gained nothing and hurt a freshly trained database).  The clues_max = 15
 * whose f is furthest from 0.5, at least min_dist = 0.4 away (f < 0.1 or
 * f > 0.9), and at most header_clues_max = 20 of them from the raw header
 * block, are combined with Fisher's method:
 *   S' = 1 - C(-2 sum ln(1-f), 2k),  H' = 1 - C(-2 sum ln f, 2k),
 *   prob = (1 + S' - H') / 2,
 * C being the chi-square survival function.  prob near 1: spam; near 0:
 * ham; near 0.5: the message looks like both or like neither.
 *
 * Why few, strong clues: the features of one message are far from
 * independent (a newsletter's HTML repeats the same signals hundreds of
 * times), and Fisher's method over hundreds of them drives solicited bulk
 * mail to p = 0.99999; fifteen clues keep p honest.  These values were
 * chosen by 5-fold cross-validation on the training part of bench/spam
 * (bench/spam/tune.sh), never on its test part; spam_bayes_defaults holds
 * them.
 */
#include "hygiene/spam_bayes.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "hygiene/spam.h"
#include "hygiene/spam_tokens.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"

#define SPAM_POOL_MAX 64
#define SPAM_GLOBAL "global"

/* Probability bands → score, named like SpamAssassin's BAYES_* rules. */
static const struct spam_bayes_band default_bands[] = {
	{ 0.01, "BAYES_00", -1.5 }, { 0.05, "BAYES_05", -0.5 }, { 0.20, "BAYES_20", 0.0 },
	{ 0.40, "BAYES_40", 0.5 }, { 0.60, "BAYES_50", 2.5 }, { 0.80, "BAYES_60", 4.2 },
	{ 0.95, "BAYES_80", 5.0 }, { 0.99, "BAYES_95", 5.5 }, { 0.999, "BAYES_99", 6.0 },
	{ 2.0, "BAYES_999", 7.0 },
};

const struct spam_bayes_knobs spam_bayes_defaults = {
	.prior_x = 0.5,
	.prior_a = 0.45,
	.ham_weight = 1.0,
	.min_count = 1,
	.clues_max = 15,
	.header_clues_max = 20,
	.min_dist = 0.4,
	.bands = default_bands,
};

enum conn_stmt {
	ST_GET, ST_ADD, ST_SUB, ST_TOTALS, ST_SET_TOTALS, ST_DIGEST_GET, ST_DIGEST_PUT,
	ST_COUNT, ST_BEGIN, ST_BEGIN_W, ST_COMMIT, ST_ROLLBACK, ST_N
};

static const char *const stmt_sql[ST_N] = {
	[ST_GET] = "SELECT spam, ham FROM tokens WHERE hash = ?1",
	[ST_ADD] = "INSERT INTO tokens(hash, spam, ham) VALUES(?1, ?2, ?3) "
	    "ON CONFLICT(hash) DO UPDATE SET spam = spam + ?2, ham = ham + ?3",
	[ST_SUB] = "UPDATE tokens SET spam = max(spam - ?2, 0), ham = max(ham - ?3, 0) WHERE hash = ?1",
	[ST_TOTALS] = "SELECT nspam, nham FROM totals WHERE id = 1",
	[ST_SET_TOTALS] = "UPDATE totals SET nspam = max(nspam + ?1, 0), nham = max(nham + ?2, 0) "
	    "WHERE id = 1",
	[ST_DIGEST_GET] = "SELECT is_spam FROM trained WHERE digest = ?1",
	[ST_DIGEST_PUT] = "INSERT OR REPLACE INTO trained(digest, is_spam, at) VALUES(?1, ?2, ?3)",
	[ST_COUNT] = "SELECT count(*) FROM tokens",
	[ST_BEGIN] = "BEGIN",
	[ST_BEGIN_W] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
};

static const char schema_sql[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
    "CREATE TABLE IF NOT EXISTS tokens(hash INTEGER PRIMARY KEY, spam INTEGER NOT NULL,"
    " ham INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS totals(id INTEGER PRIMARY KEY CHECK (id = 1),"
    " nspam INTEGER NOT NULL, nham INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO totals VALUES(1, 0, 0);"
    "CREATE TABLE IF NOT EXISTS trained(digest BLOB PRIMARY KEY, is_spam INTEGER NOT NULL,"
    " at INTEGER NOT NULL);";

struct spam_conn {
	char name[72];                 /* file name without ".db" */
	sqlite3 *db;
	sqlite3_stmt *st[ST_N];
	struct spam_conn *next;
};

struct spam_db {
	char *dir;                     /* <data_dir>/spam */
	pthread_mutex_t mu;
	struct spam_conn *idle;        /* most recently used first */
	unsigned nidle;
	long pending;                  /* training jobs not finished */
};

/* ---- connections ------------------------------------------------------ */

static void
conn_close(struct spam_conn *c)
{
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c);
}

/* The file name of a tenant's database; "global" is the shared one, so a
 * tenant of that name gets "global_" ('_' is not valid in tenant names). */
static int
db_name(const char *tenant, char *out, size_t size, char **err_r)
{
	if (tenant == NULL) {
		snprintf(out, size, "%s", SPAM_GLOBAL);
		return 0;
	}
	if (!str_tenant_name_valid(tenant)) {
		err_setf(err_r, "invalid tenant name");
		return -1;
	}
	snprintf(out, size, "%s%s", tenant, strcmp(tenant, SPAM_GLOBAL) == 0 ? "_" : "");
	return 0;
}

static struct spam_conn *
conn_open(struct spam_db *db, const char *name, char **err_r)
{
	char *path = buf_printf("%s/%s.db", db->dir, name);
	struct spam_conn *c = xcalloc(1, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, NULL);
	free(path);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(c->db, 10000);
	if (sqlite3_exec(c->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (int i = 0; i < ST_N; i++)
		if (sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i],
		    NULL) != SQLITE_OK)
			goto fail;
	return c;
fail:
	err_setf(err_r, "spam database %s: %s", name, c->db != NULL ? sqlite3_errmsg(c->db) :
	    "cannot open");
	conn_close(c);
	return NULL;
}

static struct spam_conn *
conn_get(struct spam_db *db, const char *name, char **err_r)
{
	pthread_mutex_lock(&db->mu);
	struct spam_conn **pp = &db->idle;
	while (*pp != NULL && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->next;
	struct spam_conn *c = *pp;
	if (c != NULL) {
		*pp = c->next;
		c->next = NULL;
		db->nidle--;
	}
	pthread_mutex_unlock(&db->mu);
	return c != NULL ? c : conn_open(db, name, err_r);
}

static void
conn_put(struct spam_db *db, struct spam_conn *c)
{
	struct spam_conn *drop = NULL;
	pthread_mutex_lock(&db->mu);
	c->next = db->idle;
	db->idle = c;
	if (++db->nidle > SPAM_POOL_MAX) {
		struct spam_conn **pp = &db->idle;
		while ((*pp)->next != NULL)
			pp = &(*pp)->next;
		drop = *pp;
		*pp = NULL;
		db->nidle--;
	}
	pthread_mutex_unlock(&db->mu);
	if (drop != NULL)
		conn_close(drop);
}

static int
step_done(struct spam_conn *c, enum conn_stmt s)
{
	int rc = sqlite3_step(c->st[s]);
	sqlite3_reset(c->st[s]);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static int
conn_totals(struct spam_conn *c, long long *nspam, long long *nham)
{
	sqlite3_stmt *st = c->st[ST_TOTALS];
	int rc = sqlite3_step(st);
	*nspam = *nham = 0;
	if (rc == SQLITE_ROW) {
		*nspam = sqlite3_column_int64(st, 0);
		*nham = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* ---- open / close ------------------------------------------------------ */

int
spam_db_open(const char *data_dir, struct spam_db **db_r, char **err_r)
{
	*db_r = NULL;
	char *dir = buf_printf("%s/spam", data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		err_setf(err_r, "%s: %s", dir, strerror(errno));
		free(dir);
		return -1;
	}
	struct spam_db *db = xcalloc(1, sizeof(*db));
	db->dir = dir;
	pthread_mutex_init(&db->mu, NULL);
	struct spam_conn *c = conn_open(db, SPAM_GLOBAL, err_r);
	if (c == NULL) {
		spam_db_close(&db);
		return -1;
	}
	conn_put(db, c);
	*db_r = db;
	return 0;
}

void
spam_db_close(struct spam_db **dbp)
{
	struct spam_db *db = *dbp;
	if (db == NULL)
		return;
	while (db->idle != NULL) {
		struct spam_conn *c = db->idle;
		db->idle = c->next;
		conn_close(c);
	}
	pthread_mutex_destroy(&db->mu);
	free(db->dir);
	free(db);
	*dbp = NULL;
}

void
spam_bayes_pending_add(struct spam_db *db, int delta)
{
	pthread_mutex_lock(&db->mu);
	db->pending += delta;
	pthread_mutex_unlock(&db->mu);
}

long
spam_bayes_pending(struct spam_db *db)
{
	pthread_mutex_lock(&db->mu);
	long n = db->pending;
	pthread_mutex_unlock(&db->mu);
	return n;
}

/* ---- training ---------------------------------------------------------- */

/* 128 bits naming a feature set (two differently seeded FNV-1a runs). */
static void
tokens_digest(const struct spam_tokens *t, unsigned char out[16])
{
	uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
	for (size_t i = 0; i < t->n; i++)
		for (int j = 0; j < 8; j++) {
			unsigned char byte = (unsigned char)(t->h[i] >> (8 * j));
			a = (a ^ byte) * 0x100000001b3ULL;
			b = (b ^ byte) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
		}
	memcpy(out, &a, 8);
	memcpy(out + 8, &b, 8);
}

static int
counts_apply(struct spam_conn *c, enum conn_stmt s, const struct spam_tokens *t, int spam,
    int ham)
{
	sqlite3_stmt *st = c->st[s];
	for (size_t i = 0; i < t->n; i++) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)t->h[i]);
		sqlite3_bind_int(st, 2, spam);
		sqlite3_bind_int(st, 3, ham);
		if (step_done(c, s) < 0)
			return -1;
	}
	sqlite3_stmt *tot = c->st[ST_SET_TOTALS];
	int sign = s == ST_ADD ? 1 : -1;
	sqlite3_bind_int(tot, 1, sign * spam);
	sqlite3_bind_int(tot, 2, sign * ham);
	return step_done(c, ST_SET_TOTALS);
}

/* One database, in one write transaction. */
static int
train_one(struct spam_conn *c, int is_spam, const struct spam_tokens *t,
    enum spam_train_outcome *outcome_r)
{
	unsigned char digest[16];
	tokens_digest(t, digest);
	if (step_done(c, ST_BEGIN_W) < 0)
		return -1;
	sqlite3_stmt *g = c->st[ST_DIGEST_GET];
	sqlite3_bind_blob(g, 1, digest, sizeof(digest), SQLITE_STATIC);
	int rc = sqlite3_step(g);
	int before = rc == SQLITE_ROW ? sqlite3_column_int(g, 0) : -1;
	sqlite3_reset(g);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	if (before == is_spam) {
		*outcome_r = SPAM_TRAIN_SAME;
		return step_done(c, ST_COMMIT);
	}
	if (before >= 0 && counts_apply(c, ST_SUB, t, before, !before) < 0)
		goto fail;
	if (counts_apply(c, ST_ADD, t, is_spam, !is_spam) < 0)
		goto fail;
	sqlite3_stmt *p = c->st[ST_DIGEST_PUT];
	sqlite3_bind_blob(p, 1, digest, sizeof(digest), SQLITE_STATIC);
	sqlite3_bind_int(p, 2, is_spam);
	sqlite3_bind_int64(p, 3, (sqlite3_int64)time(NULL));
	if (step_done(c, ST_DIGEST_PUT) < 0 || step_done(c, ST_COMMIT) < 0)
		goto fail;
	*outcome_r = before >= 0 ? SPAM_TRAIN_MOVED : SPAM_TRAIN_NEW;
	return 0;
fail:
	step_done(c, ST_ROLLBACK);
	return -1;
}

static int
train_named(struct spam_db *db, const char *name, int is_spam, const struct spam_tokens *t,
    enum spam_train_outcome *outcome_r, char **err_r)
{
	struct spam_conn *c = conn_get(db, name, err_r);
	if (c == NULL)
		return -1;
	int rc = train_one(c, is_spam, t, outcome_r);
	if (rc < 0)
		err_setf(err_r, "spam database %s: %s", name, sqlite3_errmsg(c->db));
	conn_put(db, c);
	return rc;
}

int
spam_bayes_train(struct spam_db *db, const char *tenant, int is_spam,
    const struct spam_tokens *t, enum spam_train_outcome *outcome_r, char **err_r)
{
	char name[72];
	enum spam_train_outcome g;
	if (db_name(tenant, name, sizeof(name), err_r) < 0)
		return -1;
	is_spam = is_spam ? 1 : 0;
	if (tenant != NULL && train_named(db, name, is_spam, t, outcome_r, err_r) < 0)
		return -1;
	if (train_named(db, SPAM_GLOBAL, is_spam, t, tenant != NULL ? &g : outcome_r, err_r) < 0)
		return -1;
	return 0;
}

int
spam_train(struct spam_db *db, const char *tenant, int is_spam, const unsigned char *data,
    size_t len, char **err_r)
{
	struct spam_tokens t;
	spam_tokenize(NULL, data, len, &t);
	enum spam_train_outcome o;
	int rc = spam_bayes_train(db, tenant, is_spam, &t, &o, err_r);
	spam_tokens_free(&t);
	return rc;
}

/* ---- classification --------------------------------------------------- */

/* P(chi-square with 2*k degrees of freedom > x2): the series for even
 * degrees of freedom, summed in the log domain's safe range. */
static double
chi2_survival(double x2, unsigned k)
{
	double m = x2 / 2.0;
	double term = exp(-m), sum = term;
	for (unsigned i = 1; i < k; i++) {
		term *= m / i;
		sum += term;
	}
	return sum < 1.0 ? sum : 1.0;
}

struct clue {
	double f;
	double dist;
	int header;
};

static int
clue_cmp(const void *a, const void *b)
{
	const struct clue *x = a, *y = b;
	if (x->dist != y->dist)
		return x->dist > y->dist ? -1 : 1;
	return x->f < y->f ? -1 : x->f > y->f;     /* ties: a fixed order */
}

static double
feature_prob(const struct spam_bayes_knobs *k, long long s, long long h, long long nspam,
    long long nham)
{
	double sr = (double)s / (double)nspam, hr = k->ham_weight * (double)h / (double)nham;
	if (sr > 1.0)
		sr = 1.0;
	if (hr > 1.0)
		hr = 1.0;
	double p = sr + hr > 0 ? sr / (sr + hr) : k->prior_x;
	double n = (double)(s + h);
	return (k->prior_a * k->prior_x + n * p) / (k->prior_a + n);
}

double
spam_bayes_combine(const struct spam_bayes_knobs *k, const struct spam_bayes_count *c,
    size_t n, long long nspam, long long nham, unsigned *used_r)
{
	*used_r = 0;
	if (n == 0 || nspam <= 0 || nham <= 0)
		return 0.5;
	struct clue *clues = xmalloc(n * sizeof(*clues));
	size_t nc = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].s + c[i].h < (long long)k->min_count)
			continue;
		double f = feature_prob(k, c[i].s, c[i].h, nspam, nham);
		double dist = fabs(f - k->prior_x);
		if (dist < k->min_dist)
			continue;
		clues[nc].f = f;
		clues[nc].dist = dist;
		clues[nc].header = c[i].header;
		nc++;
	}
	qsort(clues, nc, sizeof(clues[0]), clue_cmp);
	double ln_f = 0, ln_1f = 0;
	unsigned used = 0, headers = 0;
	for (size_t i = 0; i < nc && used < k->clues_max; i++) {
		if (clues[i].header && headers++ >= k->header_clues_max)
			continue;
		used++;
		double f = clues[i].f < 1e-6 ? 1e-6 : clues[i].f > 1 - 1e-6 ? 1 - 1e-6 : clues[i].f;
		ln_f += log(f);
		ln_1f += log(1.0 - f);
	}
	free(clues);
	*used_r = used;
	if (used == 0)
		return 0.5;
	double sp = 1.0 - chi2_survival(-2.0 * ln_1f, used);
	double hp = 1.0 - chi2_survival(-2.0 * ln_f, used);
	return (1.0 + sp - hp) / 2.0;
}

const struct spam_bayes_band *
spam_bayes_band(const struct spam_bayes_knobs *k, double p)
{
	const struct spam_bayes_band *b = k->bands;
	while (p >= b->below && b->below <= 1.0)
		b++;
	return b;
}

/* Looks every feature up in one read transaction; fills c, *n_r. */
static int
collect_counts(struct spam_conn *c, const struct spam_tokens *t, struct spam_bayes_count *out,
    size_t *n_r)
{
	size_t n = 0;
	if (step_done(c, ST_BEGIN) < 0)
		return -1;
	sqlite3_stmt *st = c->st[ST_GET];
	int rc = SQLITE_DONE;
	for (size_t i = 0; i < t->n; i++) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)t->h[i]);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			out[n].s = sqlite3_column_int64(st, 0);
			out[n].h = sqlite3_column_int64(st, 1);
			out[n].header = (t->h[i] & SPAM_TOKEN_HEADER) != 0;
			n++;
			rc = SQLITE_DONE;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			break;
	}
	step_done(c, ST_COMMIT);
	*n_r = n;
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The connection to judge with: the tenant's own when it has learnt enough. */
static struct spam_conn *
classify_conn(struct spam_db *db, const char *tenant, long long *nspam, long long *nham,
    int *global_r, char **err_r)
{
	char name[72];
	if (db_name(tenant, name, sizeof(name), err_r) < 0)
		return NULL;
	*global_r = tenant == NULL;
	struct spam_conn *c = conn_get(db, name, err_r);
	if (c == NULL)
		return NULL;
	if (conn_totals(c, nspam, nham) < 0) {
		err_setf(err_r, "spam database %s: %s", name, sqlite3_errmsg(c->db));
		conn_put(db, c);
		return NULL;
	}
	if (tenant == NULL || (*nspam >= SPAM_BAYES_MIN_OWN && *nham >= SPAM_BAYES_MIN_OWN))
		return c;
	conn_put(db, c);
	*global_r = 1;
	c = conn_get(db, SPAM_GLOBAL, err_r);
	if (c != NULL && conn_totals(c, nspam, nham) < 0) {
		err_setf(err_r, "spam database: %s", sqlite3_errmsg(c->db));
		conn_put(db, c);
		return NULL;
	}
	return c;
}

int
spam_bayes_classify(struct spam_db *db, const char *tenant, const struct spam_tokens *t,
    struct spam_bayes_class *c_r, char **err_r)
{
	memset(c_r, 0, sizeof(*c_r));
	c_r->prob = 0.5;
	long long nspam, nham;
	struct spam_conn *c = classify_conn(db, tenant, &nspam, &nham, &c_r->global, err_r);
	if (c == NULL)
		return -1;
	if (nspam == 0 || nham == 0 || t->n == 0) {
		conn_put(db, c);
		return 0;
	}
	struct spam_bayes_count *counts = xmalloc(t->n * sizeof(*counts));
	size_t n;
	int rc = collect_counts(c, t, counts, &n);
	if (rc < 0) {
		err_setf(err_r, "spam database: %s", sqlite3_errmsg(c->db));
	} else {
		c_r->trained = 1;
		c_r->prob = spam_bayes_combine(&spam_bayes_defaults, counts, n, nspam, nham,
		    &c_r->clues);
	}
	free(counts);
	conn_put(db, c);
	return rc;
}

int
spam_classify(struct spam_db *db, const char *tenant, const unsigned char *data, size_t len,
    double *prob_r, char **err_r)
{
	struct spam_tokens t;
	spam_tokenize(NULL, data, len, &t);
	struct spam_bayes_class c;
	int rc = spam_bayes_classify(db, tenant, &t, &c, err_r);
	spam_tokens_free(&t);
	*prob_r = c.prob;
	return rc;
}

int
spam_bayes_stats(struct spam_db *db, const char *tenant, struct spam_bayes_stats *s_r,
    char **err_r)
{
	char name[72];
	memset(s_r, 0, sizeof(*s_r));
	if (db_name(tenant, name, sizeof(name), err_r) < 0)
		return -1;
	struct spam_conn *c = conn_get(db, name, err_r);
	if (c == NULL)
		return -1;
	int rc = conn_totals(c, &s_r->nspam, &s_r->nham);
	sqlite3_stmt *st = c->st[ST_COUNT];
	if (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
		s_r->ntokens = sqlite3_column_int64(st, 0);
	else
		rc = -1;
	sqlite3_reset(st);
	if (rc < 0)
		err_setf(err_r, "spam database %s: %s", name, sqlite3_errmsg(c->db));
	conn_put(db, c);
	return rc;
}
