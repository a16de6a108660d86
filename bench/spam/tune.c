/*
 * bench/spam/tune.c — k-fold cross-validation of the classifier's knobs on
 * a training set only (bench/spam/tune.sh builds and runs it on the files
 * run.sh trains on; the test split is never read).
 *
 *   tune TRAIN_DIR [K]      TRAIN_DIR holds spam/ and ham/ (one message a file)
 *
 * Every message is tokenized once with the daemon's tokenizer and rule
 * table; message i of its class (files sorted by name) is in fold i % K.
 * For each fold the counts of the other folds are summed in memory (what
 * `spam train` would store) and each held-out message is judged with
 * spam_bayes_combine() under every knob set of the grid below, then scored
 * rules + band (spam_bayes_band) under every band table ("shipped": the
 * daemon's).  Prints, per knob set and band table, spam caught and ham
 * wrongly caught at score >= 5.0 summed over the folds, the daemon's knobs
 * first ("dflt"), then per band table the knob sets that keep ham wrongly
 * caught at or under 0.1% with the most spam caught ("BEST").
 * Environment: TUNE_TOKENS="bigrams=0,html_tags=0,url_paths=0,list_values=1"
 * (tokenizer options), TUNE_DUMP=FILE (one line per knob set and message:
 * knob index, is_spam, rule score, p, file name), TUNE_SHOW=1 (the daemon
 * knobs' misses on stderr).
 *
 * TUNE_LR=1 instead cross-validates an online logistic regression over the
 * same features (an experiment, not in the daemon; see lr_cv()):
 * for each fold it is trained online over the other folds' messages
 * (learning rate, margin, with or without bias, and five training orders:
 * shuffled, all spam then all ham, sorted by name in blocks of 20 or 100
 * spam with the same share of ham, and shuffled in chunks of 20 with each
 * chunk's spam first, as run.sh trains), and prints, per knob set, spam
 * caught at 0, 1, 2, 3, 4, 6, 10, 14, 19 ham wrongly caught (a threshold
 * swept over the value; t2 = the threshold for 2) for the regression alone,
 * combined with the counts (a*z + logit(p), a = 0.5, 1, 2; with and without
 * 0.3 * the rules' score), and for the daemon's knobs ("DAEMON") rules +
 * band >= 5.0 under several band tables (0: the daemon's).  The chi-square
 * classifier's own curve ("bayes dflt p") comes first.  TUNE_LR_ORDER=N:
 * one training order only.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gmime/gmime.h>

#include "hygiene/spam_bayes.h"
#include "hygiene/spam_rules.h"
#include "hygiene/spam_tokens.h"
#include "lib/mem.h"

#define TAG_SCORE 5.0
#define MSG_MAX (16 * 1024 * 1024)

struct msg {
	uint64_t *h;
	size_t n;
	double rules;
	int spam, fold;
	char name[80];
};

struct count {
	uint64_t h;
	long long s, hm;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void
rule_hit(void *arg, const char *name, double score)
{
	(void)name;
	*(double *)arg += score;
}

static struct spam_tokens_opts topts;

/* TUNE_TOKENS="bigrams=0,list_values=1": tokenizer options off the defaults */
static void
parse_topts(const char *spec)
{
	topts = spam_tokens_defaults;
	static const struct {
		const char *name;
		int *v;
	} o[] = {
		{ "bigrams", &topts.bigrams }, { "html_tags", &topts.html_tags },
		{ "url_paths", &topts.url_paths }, { "list_values", &topts.list_values },
	};
	while (spec != NULL && *spec != '\0') {
		size_t i;
		for (i = 0; i < sizeof(o) / sizeof(o[0]); i++) {
			size_t l = strlen(o[i].name);
			if (strncmp(spec, o[i].name, l) == 0 && spec[l] == '=') {
				*o[i].v = atoi(spec + l + 1);
				break;
			}
		}
		if (i == sizeof(o) / sizeof(o[0])) {
			fprintf(stderr, "bad TUNE_TOKENS at %s\n", spec);
			exit(2);
		}
		spec = strchr(spec, ',');
		spec = spec != NULL ? spec + 1 : NULL;
	}
}

static size_t
load_dir(const char *dir, int spam, int k, struct msg **msgs, size_t n)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		perror(dir);
		exit(1);
	}
	char **names = NULL;
	size_t nn = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		names = xrealloc(names, (nn + 1) * sizeof(*names));
		names[nn++] = xstrdup(e->d_name);
	}
	closedir(d);
	qsort(names, nn, sizeof(*names), cmp_str);
	*msgs = xrealloc(*msgs, (n + nn) * sizeof(**msgs));
	for (size_t i = 0; i < nn; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "rb");
		if (f == NULL) {
			perror(path);
			exit(1);
		}
		unsigned char *data = xmalloc(MSG_MAX);
		size_t len = fread(data, 1, MSG_MAX, f);
		fclose(f);
		struct spam_tokens t;
		spam_tokenize_opts(NULL, data, len, &topts, &t);
		struct msg *m = &(*msgs)[n + i];
		m->h = xmalloc((t.n ? t.n : 1) * sizeof(uint64_t));
		memcpy(m->h, t.h, t.n * sizeof(uint64_t));
		m->n = t.n;
		m->rules = 0;
		spam_rules_run(&t.feat, rule_hit, &m->rules);
		m->spam = spam;
		snprintf(m->name, sizeof(m->name), "%s", names[i]);
		m->fold = (int)(i % (size_t)k);
		spam_tokens_free(&t);
		free(data);
		free(names[i]);
	}
	free(names);
	return n + nn;
}

/* ---- the grid ------------------------------------------------------------ */

static const struct spam_bayes_band bands_current[] = {
	{ 0.01, "00", -1.5 }, { 0.05, "05", -0.5 }, { 0.20, "20", 0.0 }, { 0.40, "40", 0.5 },
	{ 0.60, "50", 2.5 }, { 0.80, "60", 5.0 }, { 0.95, "80", 5.0 }, { 0.99, "95", 5.5 },
	{ 0.999, "99", 6.0 }, { 2.0, "999", 7.0 },
};
/* "unsure" up to 0.9: needs a rule (or a DNSBL hit) on top to tag */
static const struct spam_bayes_band bands_unsure90[] = {
	{ 0.01, "00", -1.5 }, { 0.05, "05", -0.5 }, { 0.20, "20", 0.0 }, { 0.40, "40", 0.5 },
	{ 0.60, "50", 1.5 }, { 0.90, "60", 3.5 }, { 0.99, "90", 5.0 }, { 0.999, "99", 6.0 },
	{ 2.0, "999", 7.0 },
};
/* "unsure" up to 0.99 */
static const struct spam_bayes_band bands_unsure99[] = {
	{ 0.01, "00", -1.5 }, { 0.05, "05", -0.5 }, { 0.20, "20", 0.0 }, { 0.40, "40", 0.5 },
	{ 0.60, "50", 1.5 }, { 0.99, "60", 3.5 }, { 0.999, "99", 5.5 }, { 2.0, "999", 7.0 },
};
/* p alone tags only from 0.999 */
static const struct spam_bayes_band bands_unsure999[] = {
	{ 0.01, "00", -1.5 }, { 0.05, "05", -0.5 }, { 0.20, "20", 0.0 }, { 0.40, "40", 0.5 },
	{ 0.60, "50", 1.5 }, { 0.999, "60", 3.5 }, { 2.0, "999", 6.0 },
};
static const struct {
	const char *name;
	const struct spam_bayes_band *b;
} band_sets[] = {
	{ "shipped", NULL }, { "previous", bands_current }, { "unsure90", bands_unsure90 },
	{ "unsure99", bands_unsure99 }, { "unsure999", bands_unsure999 },
};
#define NBANDS (sizeof(band_sets) / sizeof(band_sets[0]))

static const double g_hw[] = { 1.0, 2.0 };
static const unsigned g_mc[] = { 1, 2, 3 };
static const double g_a[] = { 0.45, 1.0 };
static const unsigned g_clues[] = { 15, 50, 150, 300 };
static const unsigned g_hdr[] = { 5, 20, 300 };
static const double g_md[] = { 0.1, 0.4 };
#define N(a) (sizeof(a) / sizeof((a)[0]))

static size_t
grid(struct spam_bayes_knobs *out)
{
	size_t n = 0;
	out[n++] = spam_bayes_defaults;
	for (size_t a = 0; a < N(g_hw); a++)
		for (size_t b = 0; b < N(g_mc); b++)
			for (size_t c = 0; c < N(g_a); c++)
				for (size_t d = 0; d < N(g_clues); d++)
					for (size_t e = 0; e < N(g_hdr) * N(g_md); e++) {
						struct spam_bayes_knobs k = spam_bayes_defaults;
						k.min_dist = g_md[e / N(g_hdr)];
						k.ham_weight = g_hw[a];
						k.min_count = g_mc[b];
						k.prior_a = g_a[c];
						k.clues_max = g_clues[d];
						k.header_clues_max = g_hdr[e % N(g_hdr)];
						out[n++] = k;
					}
	return n;
}

/* ---- folds --------------------------------------------------------------- */

static struct count *
fold_counts(const struct msg *m, size_t n, int fold, size_t *nc_r, long long *ns,
    long long *nh)
{
	size_t total = 0;
	*ns = *nh = 0;
	for (size_t i = 0; i < n; i++)
		if (m[i].fold != fold)
			total += m[i].n;
	for (size_t i = 0; i < n; i++)
		if (m[i].fold != fold)
			*(m[i].spam ? ns : nh) += 1;
	struct count *c = xmalloc((total ? total : 1) * sizeof(*c));
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (m[i].fold == fold)
			continue;
		for (size_t t = 0; t < m[i].n; t++) {
			c[j].h = m[i].h[t];
			c[j].s = m[i].spam;
			c[j].hm = !m[i].spam;
			j++;
		}
	}
	qsort(c, j, sizeof(*c), cmp_u64);
	size_t w = 0;
	for (size_t i = 0; i < j; i++) {
		if (w > 0 && c[w - 1].h == c[i].h) {
			c[w - 1].s += c[i].s;
			c[w - 1].hm += c[i].hm;
		} else {
			c[w++] = c[i];
		}
	}
	*nc_r = w;
	return c;
}

static const struct count *
lookup(const struct count *c, size_t n, uint64_t h)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c[mid].h < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && c[lo].h == h ? &c[lo] : NULL;
}

/* The fold's counts of message m's features, as spam_bayes_combine() takes
 * them (features the fold never saw are left out); how many. */
static size_t
held_out_counts(const struct count *c, size_t nc, const struct msg *m,
    struct spam_bayes_count *cnt)
{
	size_t q = 0;
	for (size_t t = 0; t < m->n && q < SPAM_TOKENS_MAX; t++) {
		const struct count *e = lookup(c, nc, m->h[t]);
		if (e == NULL)
			continue;
		cnt[q].s = e->s;
		cnt[q].h = e->hm;
		cnt[q].header = (m->h[t] & SPAM_TOKEN_HEADER) != 0;
		q++;
	}
	return q;
}

/* ---- logistic regression (TUNE_LR=1) ------------------------------------ */

/* Online logistic regression over the same binary features, trained by
 * stochastic gradient steps on the training folds and judged on the held-out
 * one; weights indexed by the feature hash's low LR_BITS bits.  (Not in the
 * daemon: on the benchmark's test split it caught no more spam than the
 * counts alone, and trained all spam first, then all ham -- what
 * `spam train --spam DIR --ham DIR` does -- it caught much less.)
 * LR_RATE / LR_MARGIN: the knob set whose band tables are printed. */
#define LR_BITS 24
#define LR_RATE 0.02
#define LR_MARGIN 3.0

static double
lr_sigmoid(double z)
{
	return 1.0 / (1.0 + exp(-z));
}

/* The step for every weight of a message learnt as is_spam, log-odds z. */
static double
lr_step(double rate, double z, int is_spam)
{
	return rate * ((is_spam ? 1.0 : 0.0) - lr_sigmoid(z));
}

/* The regression's log-odds added to the counts' */
static double
lr_combine(double p_bayes, double z)
{
	double p = p_bayes < 1e-6 ? 1e-6 : p_bayes > 1 - 1e-6 ? 1 - 1e-6 : p_bayes;
	return lr_sigmoid(z + log(p / (1.0 - p)));
}
struct lr_knobs {
	double eta;                  /* learning rate */
	int passes;                  /* passes over the training folds */
	int norm;                    /* features weigh 1/sqrt(n) instead of 1 */
	double margin;               /* update only when y*z < margin (0: always) */
	int nobias;                  /* the bias stays 0 */
	int order;                   /* 0: interleaved (shuffled), 1: all spam then all ham,
	                              * 2, 3: sorted by name, blocks of 20 / 100 spam then
	                              * the same share of ham; 4: shuffled, then in
	                              * chunks of 20 the spam first (run.sh's training order) */
};

static double
lr_z(const float *w, double bias, const struct msg *mm, int norm)
{
	double s = 0;
	for (size_t t = 0; t < mm->n; t++)
		s += w[mm->h[t] & ((1u << LR_BITS) - 1)];
	if (norm && mm->n > 0)
		s /= sqrt((double)mm->n);
	return bias + s;
}

static void
lr_train(float *w, double *bias, const struct msg *mm, const struct lr_knobs *lk)
{
	double z = lr_z(w, *bias, mm, lk->norm);
	double y = mm->spam ? 1.0 : -1.0;
	if (lk->margin > 0 && y * z >= lk->margin)
		return;
	double g = lr_step(lk->eta, z, mm->spam);
	double x = lk->norm && mm->n > 0 ? 1.0 / sqrt((double)mm->n) : 1.0;
	for (size_t t = 0; t < mm->n; t++)
		w[mm->h[t] & ((1u << LR_BITS) - 1)] += (float)(g * x);
	if (!lk->nobias)
		*bias += g;
}

static double
logit(double p)
{
	p = p < 1e-6 ? 1e-6 : p > 1 - 1e-6 ? 1 - 1e-6 : p;
	return log(p / (1 - p));
}

struct judged {
	double z;
	int spam;
};

static int
cmp_judged(const void *a, const void *b)
{
	double x = ((const struct judged *)a)->z, y = ((const struct judged *)b)->z;
	return x > y ? -1 : x < y;
}

/* Spam caught at each budget of ham wrongly caught (threshold above the
 * budget+1-th highest ham). */
static void
curve(const char *label, const struct judged *jin, size_t n, size_t nspam, size_t nham)
{
	static const unsigned budgets[] = { 0, 1, 2, 3, 4, 6, 10, 14, 19 };
	struct judged *j = xmalloc(n * sizeof(*j));
	memcpy(j, jin, n * sizeof(*j));
	qsort(j, n, sizeof(*j), cmp_judged);
	printf("%-44s", label);
	for (size_t b = 0; b < N(budgets); b++) {
		unsigned fp = 0, tp = 0, best = 0;
		for (size_t i = 0; i < n; i++) {
			if (!j[i].spam && ++fp > budgets[b])
				break;
			if (j[i].spam)
				tp++;
			/* a threshold can only sit between different values */
			if (i + 1 == n || j[i + 1].z != j[i].z)
				best = tp;
		}
		printf(" %5.1f", 100.0 * best / (double)nspam);
	}
	/* the lowest value still caught within 2 ham wrongly caught */
	unsigned fp2 = 0;
	double t2 = 0;
	for (size_t i = 0; i < n; i++) {
		if (!j[i].spam && ++fp2 > 2)
			break;
		t2 = j[i].z;
	}
	printf("  t2=%.4g\n", t2);
	free(j);
	(void)nham;
}

/* band tables for the combined probability (NULL: the daemon's, made for the
 * counts alone) */
#define LRB(t80, s80, t99) { 0.01, "00", -1.5 }, { 0.05, "05", -0.5 }, { 0.20, "20", 0.0 }, \
	{ 0.40, "40", 0.5 }, { 0.60, "50", 1.5 }, { t80, "60", 2.5 }, { t99, "80", s80 }, \
	{ 0.999, "99", 5.0 }, { 2.0, "999", 6.0 }
static const struct spam_bayes_band lrb_a[] = { LRB(0.9, 3.5, 0.99) };
static const struct spam_bayes_band lrb_b[] = { LRB(0.9, 4.2, 0.99) };
static const struct spam_bayes_band lrb_c[] = { LRB(0.9, 3.5, 0.98) };
static const struct spam_bayes_band lrb_d[] = { LRB(0.95, 3.5, 0.995) };
static const struct spam_bayes_band lrb_e[] = { LRB(0.9, 4.2, 0.98) };
static const struct spam_bayes_band lrb_f[] = { LRB(0.9, 3.5, 0.985) };
static const struct spam_bayes_band *const lr_bands[] = { NULL, lrb_a, lrb_b, lrb_c, lrb_d,
	lrb_e, lrb_f };

static void
lr_cv(struct msg *m, size_t n, int k, size_t nspam_all, size_t nham_all)
{
	static const double etas[] = { 0.02, 0.05 };
	static const int passes[] = { 1 };
	static const double margins[] = { 0, 1, 3 };
	static const int norms[] = { 0, 1 };   /* here: 1 = no bias */
	static const int orders[] = { 0, 1, 2, 3, 4 };
	size_t nlk = N(etas) * N(passes) * N(margins) * N(norms) * N(orders);
	const char *only = getenv("TUNE_LR_ORDER");
	const char *show = getenv("TUNE_SHOW");
	float *w = xmalloc(((size_t)1 << LR_BITS) * sizeof(float));
	struct judged *j = xmalloc(n * sizeof(*j));
	struct judged *jc = xmalloc(n * sizeof(*jc));
	double *pb = xmalloc(n * sizeof(double));
	double *pb300 = xmalloc(n * sizeof(double));
	size_t *idx = xmalloc(n * sizeof(size_t));
	struct spam_bayes_count *cnt = xmalloc(SPAM_TOKENS_MAX * sizeof(*cnt));
	/* the Bayes probabilities of the held-out messages (default knobs; 300 clues) */
	struct spam_bayes_knobs k300 = spam_bayes_defaults;
	k300.clues_max = 300;
	k300.header_clues_max = 5;
	k300.min_dist = 0.1;
	for (int f = 0; f < k; f++) {
		size_t nc;
		long long ns, nh;
		struct count *c = fold_counts(m, n, f, &nc, &ns, &nh);
		for (size_t i = 0; i < n; i++) {
			if (m[i].fold != f)
				continue;
			size_t q = held_out_counts(c, nc, &m[i], cnt);
			unsigned used;
			pb[i] = spam_bayes_combine(&spam_bayes_defaults, cnt, q, ns, nh, &used);
			pb300[i] = spam_bayes_combine(&k300, cnt, q, ns, nh, &used);
		}
		free(c);
	}
	printf("spam caught %% at ham wrongly caught (of %zu):   0     1     2     3     4     6    10    14    19\n",
	    nham_all);
	for (size_t i = 0; i < n; i++) {
		j[i].z = pb[i];
		j[i].spam = m[i].spam;
	}
	curve("bayes dflt p", j, n, nspam_all, nham_all);
	for (size_t i = 0; i < n; i++)
		j[i].z = pb[i] + 0.2 * m[i].rules;
	curve("bayes dflt p + 0.2*rules", j, n, nspam_all, nham_all);
	for (size_t i = 0; i < n; i++)
		j[i].z = pb300[i];
	curve("bayes 300 clues p", j, n, nspam_all, nham_all);
	for (size_t c = 0; c < nlk; c++) {
		struct lr_knobs lk;
		size_t r = c;
		lk.eta = etas[r % N(etas)];
		r /= N(etas);
		lk.passes = passes[r % N(passes)];
		r /= N(passes);
		lk.margin = margins[r % N(margins)];
		r /= N(margins);
		lk.norm = 0;
		lk.nobias = norms[r % N(norms)];
		r /= N(norms);
		lk.order = orders[r % N(orders)];
		if (only != NULL && atoi(only) != lk.order)
			continue;
		for (int f = 0; f < k; f++) {
			memset(w, 0, ((size_t)1 << LR_BITS) * sizeof(float));
			double bias = 0;
			size_t nt = 0;
			for (size_t i = 0; i < n; i++)
				if (m[i].fold != f)
					idx[nt++] = i;
			if (lk.order >= 2) {
				/* idx holds the spam (sorted) then the ham (sorted) */
				size_t ns = 0;
				while (ns < nt && m[idx[ns]].spam)
					ns++;
				size_t bs = lk.order == 2 ? 20 : 100, o = 0;
				size_t *tmp = xmalloc(nt * sizeof(size_t));
				for (size_t b = 0; o < nt; b++) {
					size_t s0 = b * bs, s1 = s0 + bs;
					size_t h0 = (size_t)((double)s0 * (nt - ns) / ns);
					size_t h1 = (size_t)((double)s1 * (nt - ns) / ns);
					for (size_t i = s0; i < s1 && i < ns; i++)
						tmp[o++] = idx[i];
					for (size_t i = h0; i < h1 && ns + i < nt; i++)
						tmp[o++] = idx[ns + i];
				}
				memcpy(idx, tmp, nt * sizeof(size_t));
				free(tmp);
			}
			if (lk.order == 0 || lk.order == 4) {
				uint64_t s = 0x9e3779b97f4a7c15ULL;
				for (size_t i = nt; i > 1; i--) {
					s = s * 6364136223846793005ULL + 1442695040888963407ULL;
					size_t x = (size_t)((s >> 33) % i), tmp = idx[i - 1];
					idx[i - 1] = idx[x];
					idx[x] = tmp;
				}
			}
			if (lk.order == 4)
				for (size_t c0 = 0; c0 < nt; c0 += 20) {
					size_t tmp[20], o = 0, e = c0 + 20 < nt ? c0 + 20 : nt;
					for (int want = 1; want >= 0; want--)
						for (size_t i = c0; i < e; i++)
							if (m[idx[i]].spam == want)
								tmp[o++] = idx[i];
					memcpy(idx + c0, tmp, o * sizeof(size_t));
				}
			for (int p = 0; p < lk.passes; p++)
				for (size_t i = 0; i < nt; i++)
					lr_train(w, &bias, &m[idx[i]], &lk);
			for (size_t i = 0; i < n; i++)
				if (m[i].fold == f)
					j[i].z = lr_z(w, bias, &m[i], lk.norm);
		}
		char label[128];
		for (size_t i = 0; i < n; i++) {
			j[i].spam = m[i].spam;
			jc[i] = j[i];
		}
		snprintf(label, sizeof(label), "lr eta=%.3f pass=%d m=%.0f nobias=%d ord=%d", lk.eta,
		    lk.passes, lk.margin, lk.nobias, lk.order);
		curve(label, j, n, nspam_all, nham_all);
		for (size_t bt = 0; lk.eta == LR_RATE && lk.margin == LR_MARGIN && !lk.nobias && bt < N(lr_bands); bt++) {
			/* the daemon's way: combined p, rules + band >= 5.0 */
			unsigned tp = 0, fpn = 0;
			struct spam_bayes_knobs kb = spam_bayes_defaults;
			if (lr_bands[bt] != NULL)
				kb.bands = lr_bands[bt];
			for (size_t i = 0; i < n; i++) {
				double p = lr_combine(pb[i], jc[i].z);
				double score = m[i].rules + spam_bayes_band(&kb, p)->score;
				if (score >= TAG_SCORE)
					*(m[i].spam ? &tp : &fpn) += 1;
				if (show != NULL && (m[i].spam ? score < TAG_SCORE : score >= TAG_SCORE))
					fprintf(stderr, "ord=%d miss %s p=%.6f rules=%.1f\n", lk.order,
					    m[i].name, p, m[i].rules);
			}
			printf("  DAEMON bands %zu: spam %.2f%% (%u) ham %.3f%% (%u)\n", bt,
			    100.0 * tp / (double)nspam_all, tp, 100.0 * fpn / (double)nham_all, fpn);
		}
		static const double alphas[] = { 0.5, 1, 2 };
		for (size_t a = 0; a < N(alphas); a++) {
			for (size_t i = 0; i < n; i++)
				j[i].z = alphas[a] * jc[i].z + logit(pb[i]);
			snprintf(label, sizeof(label), "  %.1f*lr + logit(bayes)", alphas[a]);
			curve(label, j, n, nspam_all, nham_all);
			for (size_t i = 0; i < n; i++)
				j[i].z = alphas[a] * jc[i].z + logit(pb[i]) + 0.3 * m[i].rules;
			snprintf(label, sizeof(label), "  %.1f*lr + logit(bayes) + 0.3*rules", alphas[a]);
			curve(label, j, n, nspam_all, nham_all);
		}
		for (size_t i = 0; i < n; i++)
			j[i].z = jc[i].z + 0.3 * m[i].rules;
		snprintf(label, sizeof(label), "  + 0.3*rules");
		curve(label, j, n, nspam_all, nham_all);
		fflush(stdout);
	}
	free(w);
	free(j);
	free(jc);
	free(pb);
	free(pb300);
	free(idx);
	free(cnt);
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s TRAIN_DIR [K]\n", argv[0]);
		return 2;
	}
	int k = argc > 2 ? atoi(argv[2]) : 5;
	if (k < 2)
		k = 2;
	const char *show = getenv("TUNE_SHOW");   /* list the default knobs' misses */
	parse_topts(getenv("TUNE_TOKENS"));
	FILE *dump = getenv("TUNE_DUMP") != NULL ? fopen(getenv("TUNE_DUMP"), "w") : NULL;
	g_mime_init();
	struct msg *m = NULL;
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/spam", argv[1]);
	size_t n = load_dir(dir, 1, k, &m, 0);
	size_t nspam_all = n;
	snprintf(dir, sizeof(dir), "%s/ham", argv[1]);
	n = load_dir(dir, 0, k, &m, n);
	size_t nham_all = n - nspam_all;
	fprintf(stderr, "tokenized %zu spam + %zu ham, %d folds\n", nspam_all, nham_all, k);
	if (getenv("TUNE_LR") != NULL) {
		lr_cv(m, n, k, nspam_all, nham_all);
		return 0;
	}

	static struct spam_bayes_knobs knobs[1 + N(g_hw) * N(g_mc) * N(g_a) * N(g_clues) * N(g_hdr) * N(g_md)];
	size_t nk = grid(knobs);
	/* caught[k][band], fp[k][band] */
	unsigned (*caught)[NBANDS] = xcalloc(nk, sizeof(*caught));
	unsigned (*fp)[NBANDS] = xcalloc(nk, sizeof(*fp));
	struct spam_bayes_count *cnt = xmalloc(SPAM_TOKENS_MAX * sizeof(*cnt));
	for (int f = 0; f < k; f++) {
		size_t nc;
		long long ns, nh;
		struct count *c = fold_counts(m, n, f, &nc, &ns, &nh);
		for (size_t i = 0; i < n; i++) {
			if (m[i].fold != f)
				continue;
			size_t q = held_out_counts(c, nc, &m[i], cnt);
			for (size_t j = 0; j < nk; j++) {
				unsigned used;
				double p = spam_bayes_combine(&knobs[j], cnt, q, ns, nh, &used);
				if (dump != NULL)
					fprintf(dump, "%zu %d %.2f %.17g %s\n", j, m[i].spam, m[i].rules, p,
					    m[i].name);
				if (j == 0 && show != NULL && (m[i].spam ? p < 0.5 : p > 0.5))
					fprintf(stderr, "miss %s p=%.6f rules=%.1f clues=%u\n", m[i].name, p,
					    m[i].rules, used);
				for (size_t b = 0; b < NBANDS; b++) {
					struct spam_bayes_knobs kb = knobs[j];
					if (band_sets[b].b != NULL)
						kb.bands = band_sets[b].b;
					double score = m[i].rules + spam_bayes_band(&kb, p)->score;
					if (score >= TAG_SCORE) {
						if (m[i].spam)
							caught[j][b]++;
						else
							fp[j][b]++;
					}
				}
			}
		}
		free(c);
	}
	printf("%-5s %-4s %-3s %-5s %-5s %-4s %-10s %8s %8s\n", "hw", "minc", "a", "clues", "hdr",
	    "", "bands", "spam%", "ham%");
	for (size_t j = 0; j < nk; j++)
		for (size_t b = 0; b < NBANDS; b++)
			printf("%-5.1f %-4u %-4.2f %-5u %-5u %-4s %-10s %8.2f %8.3f  (%u/%zu, %u/%zu)\n",
			    knobs[j].ham_weight, knobs[j].min_count, knobs[j].prior_a, knobs[j].clues_max,
			    knobs[j].header_clues_max, j == 0 ? "dflt" : "", band_sets[b].name,
			    100.0 * caught[j][b] / (double)nspam_all, 100.0 * fp[j][b] / (double)nham_all,
			    caught[j][b], nspam_all, fp[j][b], nham_all);
	/* per band table: the knob sets meeting ham <= 0.1%, most spam caught first */
	unsigned fp_max = (unsigned)(nham_all / 1000);
	for (size_t b = 0; b < NBANDS; b++) {
		size_t best[3] = { nk, nk, nk };
		for (size_t j = 0; j < nk; j++) {
			if (fp[j][b] > fp_max)
				continue;
			for (size_t r = 0; r < 3; r++)
				if (best[r] == nk || caught[j][b] > caught[best[r]][b]) {
					memmove(best + r + 1, best + r, (2 - r) * sizeof(best[0]));
					best[r] = j;
					break;
				}
		}
		for (size_t r = 0; r < 3 && best[r] < nk; r++) {
			size_t j = best[r];
			printf("BEST %-10s hw=%.1f minc=%u a=%.2f clues=%u hdr=%u md=%.1f  spam %.2f%% ham %.3f%%\n",
			    band_sets[b].name, knobs[j].ham_weight, knobs[j].min_count, knobs[j].prior_a,
			    knobs[j].clues_max, knobs[j].header_clues_max, knobs[j].min_dist,
			    100.0 * caught[j][b] / (double)nspam_all, 100.0 * fp[j][b] / (double)nham_all);
		}
	}
	return 0;
}
