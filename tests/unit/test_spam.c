/*
 * Unit tests for the antispam stage (src/hygiene/spam*.c): the tokenizer's
 * determinism, GTUBE, each built-in rule on a crafted message (and none on
 * a clean one), thresholds to actions and X-Spam-* headers, the subject
 * tag, allow-listed senders, training and classifying a few dozen messages
 * of the SpamAssassin corpus (../shared/corpus/spamassassin, or
 * $MAILARK_CORPUS/spamassassin), and retraining a message the other way.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "hygiene/spam.h"
#include "hygiene/spam_bayes.h"
#include "hygiene/spam_rules.h"
#include "hygiene/spam_tokens.h"
#include "lib/buf.h"
#include "unit_tmp.h"

#define GTUBE "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

#define CLEAN \
	"From: Alice Example <alice@example.org>\r\n" \
	"To: bob@example.net\r\n" \
	"Subject: Minutes of Tuesday's meeting\r\n" \
	"Date: Tue, 3 Sep 2002 10:00:00 +0100\r\n" \
	"Message-ID: <minutes.1@example.org>\r\n" \
	"Content-Type: text/plain; charset=us-ascii\r\n" \
	"\r\n" \
	"Hi Bob, here are the notes from the meeting; see you on Friday.\r\n"

/* ------------------------------------------------------------ helpers */

static const unsigned char *
u(const char *s)
{
	return (const unsigned char *)s;
}

static void
rm_rf(const char *dir)
{
	char *cmd = buf_printf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* The policy defaults, as a struct the test may change. */
static struct hygiene_policy
policy(void)
{
	const struct hygiene_policy *d = policy_defaults();
	struct hygiene_policy p = *d;
	policy_release(&d);
	return p;
}

/* Runs spam_stage over data as inbound mail from alice@example.org. */
static void
run_stage(struct hygiene *h, const struct hygiene_policy *pol, const char *data,
    struct hygiene_result *r)
{
	struct hygiene_msg m;
	memset(&m, 0, sizeof(m));
	m.h = h;
	m.pol = pol;
	m.qid = "TESTQID";
	m.tenant = NULL;
	m.dir = QUEUE_INBOUND;
	m.sender = "alice@example.org";
	m.client_ip = "192.0.2.1";
	m.data = u(data);
	m.len = strlen(data);
	memset(r, 0, sizeof(*r));
	char *err = NULL;
	assert_int_equal(spam_stage(&m, r, &err), 0);
	assert_null(err);
}

static const char *
headers(struct hygiene_result *r)
{
	return r->headers.len > 0 ? buf_cstr(&r->headers) : "";
}

struct hits {
	char names[1024];
};

static void
hit(void *arg, const char *name, double score)
{
	struct hits *h = arg;
	(void)score;
	size_t n = strlen(h->names);
	snprintf(h->names + n, sizeof(h->names) - n, "%s,", name);
}

static void
rules_on(const char *msg, struct hits *h)
{
	struct spam_tokens t;
	memset(h, 0, sizeof(*h));
	spam_tokenize(NULL, u(msg), strlen(msg), &t);
	spam_rules_run(&t.feat, hit, h);
	spam_tokens_free(&t);
}

static const char *
corpus_dir(void)
{
	const char *c = getenv("MAILARK_CORPUS");
	return c != NULL && *c != '\0' ? c : "../shared/corpus";
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first n file paths of corpus/spamassassin/<kind>, sorted. */
static char **
corpus_files(const char *kind, size_t *n_r)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/spamassassin/%s", corpus_dir(), kind);
	DIR *d = opendir(dir);
	if (d == NULL)
		return NULL;
	char **v = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		v = realloc(v, (n + 1) * sizeof(char *));
		v[n++] = buf_printf("%s/%s", dir, e->d_name);
	}
	closedir(d);
	qsort(v, n, sizeof(char *), name_cmp);
	*n_r = n;
	return v;
}

static unsigned char *
slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	struct buf b = BUF_INIT;
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	*len_r = b.len;
	return (unsigned char *)buf_steal(&b);
}

/* ------------------------------------------------------------ tokenizer */

static void
test_tokens_deterministic(void **state)
{
	(void)state;
	struct spam_tokens a, b, c;
	spam_tokenize(NULL, u(CLEAN), strlen(CLEAN), &a);
	spam_tokenize(NULL, u(CLEAN), strlen(CLEAN), &b);
	assert_true(a.n > 20);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.h, b.h, a.n * sizeof(a.h[0]));
	for (size_t i = 1; i < a.n; i++)
		assert_true(a.h[i - 1] < a.h[i]);          /* sorted, unique */
	/* the subject word is a feature; the body's words too */
	uint64_t subj = spam_token_hash("subject:", "minutes", 7) & ~SPAM_TOKEN_HEADER;
	uint64_t body = spam_token_hash("", "meeting", 7) & ~SPAM_TOKEN_HEADER;
	int found_subj = 0, found_body = 0;
	for (size_t i = 0; i < a.n; i++) {
		found_subj |= a.h[i] == subj;
		found_body |= a.h[i] == body;
	}
	assert_true(found_subj && found_body);
	const char *other = "Subject: buy cheap pills now\r\n\r\nclick here\r\n";
	spam_tokenize(NULL, u(other), strlen(other), &c);
	assert_false(c.n == a.n && memcmp(c.h, a.h, a.n * sizeof(a.h[0])) == 0);
	spam_tokens_free(&a);
	spam_tokens_free(&b);
	spam_tokens_free(&c);
}

static void
test_tokens_html_and_urls(void **state)
{
	(void)state;
	const char *msg = "From: x@example.com\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n"
	    "<html><body><style>p{color:red}</style><p>Visit "
	    "<a href=\"http://shop.example.biz/buy?now\">our store</a> today</p></body></html>\r\n";
	struct spam_tokens t;
	spam_tokenize(NULL, u(msg), strlen(msg), &t);
	uint64_t want[] = { spam_token_hash("tag:", "a", 1),
		spam_token_hash("url:", "shop.example.biz", 16), spam_token_hash("url:", "biz", 3),
		spam_token_hash("", "store", 5), spam_token_hash("bi:", "our store", 9) };
	uint64_t unwanted = spam_token_hash("", "p{color:red}", 12) & ~SPAM_TOKEN_HEADER;
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++)
		want[w] &= ~SPAM_TOKEN_HEADER;
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		int found = 0;
		for (size_t i = 0; i < t.n; i++)
			found |= t.h[i] == want[w];
		assert_true(found);
	}
	for (size_t i = 0; i < t.n; i++)
		assert_false(t.h[i] == unwanted);
	assert_int_equal(t.feat.html_parts, 1);
	assert_int_equal(t.feat.text_parts, 0);
	spam_tokens_free(&t);
}

/* ------------------------------------------------------------ rules */

static void
test_rules_each_fire(void **state)
{
	(void)state;
	static const struct {
		const char *rule;
		const char *msg;
	} cases[] = {
		{ "MISSING_DATE", "From: a@example.org\r\nMessage-ID: <1@x>\r\nSubject: hi\r\n\r\nhello\r\n" },
		{ "MISSING_MID", "From: a@example.org\r\nDate: Tue, 3 Sep 2002 10:00:00 +0100\r\n"
		  "Subject: hi\r\n\r\nhello\r\n" },
		{ "MISSING_FROM", "Subject: hi\r\n\r\nhello\r\n" },
		{ "FROM_NAME_ADDR", "From: \"service@paypal.com\" <x@evil.example>\r\n\r\nhello\r\n" },
		{ "SUBJ_ALL_CAPS", "From: a@example.org\r\nSubject: MAKE MONEY FAST TODAY\r\n\r\nhi\r\n" },
		{ "SUBJ_EXCLAIM", "From: a@example.org\r\nSubject: act now!!!\r\n\r\nhi\r\n" },
		{ "MANY_EXCLAIM", "From: a@example.org\r\n\r\nwow! wow! wow! wow! wow! wow! wow! wow! "
		  "wow! wow! wow! wow! wow! wow! wow! wow!\r\n" },
		{ "HTML_ONLY", "From: a@example.org\r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n" },
		{ "HTML_TINY_TEXT", "From: a@example.org\r\nContent-Type: text/html\r\n\r\n"
		  "<img src=\"http://img.example/a.gif\">\r\n" },
		{ "URL_IP_HOST", "From: a@example.org\r\n\r\nlogin at http://192.0.2.7/bank now\r\n" },
		{ "RE_NO_REFERENCE", "From: a@example.org\r\nSubject: Re: your order\r\n\r\nhi\r\n" },
	};
	size_t nrules = 0;
	for (const struct spam_rule *r = spam_rules; r->name != NULL; r++)
		nrules++;
	assert_int_equal(nrules, sizeof(cases) / sizeof(cases[0]));  /* every rule is tested */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hits h;
		rules_on(cases[i].msg, &h);
		char want[64];
		snprintf(want, sizeof(want), "%s,", cases[i].rule);
		if (strstr(h.names, want) == NULL)
			fail_msg("rule %s did not fire (hits: %s)", cases[i].rule, h.names);
	}
	struct hits h;
	rules_on(CLEAN, &h);
	assert_string_equal(h.names, "");
}

/* ------------------------------------------------------------ stage */

static void
test_gtube_rejects(void **state)
{
	(void)state;
	struct hygiene h = { 0 };
	struct hygiene_policy p = policy();
	struct hygiene_result r;
	run_stage(&h, &p, CLEAN "\r\n" GTUBE "\r\n", &r);
	assert_int_equal(r.action, HYGIENE_REJECT);
	assert_string_equal(r.reply, "550 5.7.1 Message rejected as spam");
	assert_true(r.spam_scored);
	assert_true(r.score >= 1000);
	assert_non_null(strstr(buf_cstr(&r.reasons), "spam:GTUBE"));
	assert_non_null(strstr(headers(&r), "X-Spam-Flag: YES"));
	assert_non_null(strstr(headers(&r), "tests=GTUBE"));
	hygiene_result_free(&r);

	run_stage(&h, &p, CLEAN, &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	assert_null(strstr(headers(&r), "X-Spam-Flag"));
	assert_non_null(strstr(headers(&r), "X-Spam-Status: No, score=0.0 required=5.0 tests=none"));
	assert_non_null(strstr(headers(&r), "X-Spam-Score: 0.0"));
	hygiene_result_free(&r);
}

/* MISSING_DATE (1.0) + MISSING_MID (0.5) = 1.5 against moved thresholds. */
static void
test_thresholds(void **state)
{
	(void)state;
	const char *msg = "From: a@example.org\r\nSubject: hello there\r\n\r\nhello\r\n";
	struct hygiene h = { 0 };
	struct hygiene_policy p = policy();
	struct hygiene_result r;
	p.spam_tag_score = 1.0;
	p.spam_subject_tag = (char *)"[SPAM]";
	run_stage(&h, &p, msg, &r);
	assert_int_equal(r.action, HYGIENE_TAG);
	assert_true(r.score > 1.49 && r.score < 1.51);
	assert_non_null(strstr(headers(&r), "X-Spam-Flag: YES"));
	assert_non_null(strstr(headers(&r), "X-Spam-Status: Yes, score=1.5 required=1.0 "
	    "tests=MISSING_DATE,MISSING_MID"));
	assert_non_null(r.rewritten);
	assert_non_null(memmem(r.rewritten, r.rewritten_len, "Subject: [SPAM] hello there\r\n", 29));
	hygiene_result_free(&r);

	p.spam_quarantine_score = 1.2;
	run_stage(&h, &p, msg, &r);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	assert_null(r.rewritten);
	hygiene_result_free(&r);

	p.spam_reject_score = 1.4;
	run_stage(&h, &p, msg, &r);
	assert_int_equal(r.action, HYGIENE_REJECT);
	hygiene_result_free(&r);

	/* an allow-listed sender is not scored */
	char *allow[] = { (char *)"@example.org" };
	p.allow_senders.items = allow;
	p.allow_senders.n = 1;
	run_stage(&h, &p, msg, &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	assert_false(r.spam_scored);
	assert_int_equal(r.headers.len, 0);
	hygiene_result_free(&r);

	/* spam.enabled = no */
	p.allow_senders.n = 0;
	p.spam_enabled = 0;
	run_stage(&h, &p, CLEAN GTUBE, &r);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	hygiene_result_free(&r);
}

/* ------------------------------------------------------------ classifier */

static void
test_train_and_classify_corpus(void **state)
{
	(void)state;
	size_t nspam, nham;
	char **spam = corpus_files("spam", &nspam), **ham = corpus_files("ham", &nham);
	if (spam == NULL || ham == NULL)
		skip();
	char dir[256];
	assert_int_equal(unit_tmpdir(dir, sizeof(dir), "spam"), 0);
	struct spam_db *db = NULL;
	char *err = NULL;
	assert_int_equal(spam_db_open(dir, &db, &err), 0);
	/* 40 of each to learn (every other file of the first 80), 20 to judge */
	for (size_t i = 0; i < 80; i += 2) {
		size_t len;
		unsigned char *d = slurp(spam[i * 7], &len);
		assert_int_equal(spam_train(db, "acme", 1, d, len, &err), 0);
		free(d);
		d = slurp(ham[i * 13], &len);
		assert_int_equal(spam_train(db, "acme", 0, d, len, &err), 0);
		free(d);
	}
	struct spam_bayes_stats st;
	assert_int_equal(spam_bayes_stats(db, "acme", &st, &err), 0);
	assert_int_equal(st.nspam, 40);
	assert_int_equal(st.nham, 40);
	assert_int_equal(spam_bayes_stats(db, NULL, &st, &err), 0);
	assert_int_equal(st.nspam, 40);
	double sum_spam = 0, sum_ham = 0;
	for (size_t i = 1; i < 40; i += 2) {
		size_t len;
		double p;
		unsigned char *d = slurp(spam[i * 7], &len);
		assert_int_equal(spam_classify(db, "acme", d, len, &p, &err), 0);
		sum_spam += p;
		free(d);
		d = slurp(ham[i * 13], &len);
		assert_int_equal(spam_classify(db, "acme", d, len, &p, &err), 0);
		sum_ham += p;
		free(d);
	}
	assert_true(sum_spam / 20 > 0.7);
	assert_true(sum_ham / 20 < 0.3);
	assert_true(sum_spam > sum_ham);
	spam_db_close(&db);
	assert_null(db);
	rm_rf(dir);
	for (size_t i = 0; i < nspam; i++)
		free(spam[i]);
	for (size_t i = 0; i < nham; i++)
		free(ham[i]);
	free(spam);
	free(ham);
}

static void
test_retrain_other_way(void **state)
{
	(void)state;
	char dir[256];
	assert_int_equal(unit_tmpdir(dir, sizeof(dir), "spam"), 0);
	struct spam_db *db = NULL;
	char *err = NULL;
	assert_int_equal(spam_db_open(dir, &db, &err), 0);
	struct spam_tokens t;
	spam_tokenize(NULL, u(CLEAN), strlen(CLEAN), &t);
	enum spam_train_outcome o;
	assert_int_equal(spam_bayes_train(db, "acme", 1, &t, &o, &err), 0);
	assert_int_equal(o, SPAM_TRAIN_NEW);
	assert_int_equal(spam_bayes_train(db, "acme", 1, &t, &o, &err), 0);
	assert_int_equal(o, SPAM_TRAIN_SAME);
	struct spam_bayes_stats st;
	assert_int_equal(spam_bayes_stats(db, "acme", &st, &err), 0);
	assert_int_equal(st.nspam, 1);
	assert_int_equal(st.nham, 0);
	assert_int_equal(spam_bayes_train(db, "acme", 0, &t, &o, &err), 0);
	assert_int_equal(o, SPAM_TRAIN_MOVED);
	assert_int_equal(spam_bayes_stats(db, "acme", &st, &err), 0);
	assert_int_equal(st.nspam, 0);
	assert_int_equal(st.nham, 1);
	assert_int_equal(spam_bayes_stats(db, NULL, &st, &err), 0);
	assert_int_equal(st.nspam, 0);
	assert_int_equal(st.nham, 1);
	/* another tenant's own counts did not move */
	assert_int_equal(spam_bayes_stats(db, "beta", &st, &err), 0);
	assert_int_equal(st.nham, 0);
	/* bad tenant names never become file names */
	assert_int_equal(spam_bayes_train(db, "../x", 1, &t, &o, &err), -1);
	assert_non_null(err);
	free(err);
	spam_tokens_free(&t);
	spam_db_close(&db);
	rm_rf(dir);
}

/* The pure combining step: rare features can be left out (min_count), the clue
 * count is capped, and the bands map p as documented. */
static void
test_combine_and_bands(void **state)
{
	(void)state;
	const struct spam_bayes_knobs *k = &spam_bayes_defaults;
	struct spam_bayes_count c[40];
	unsigned used;
	/* seen in 2 spam only: a clue, unless min_count asks for 3 sightings */
	c[0] = (struct spam_bayes_count){ 2, 0, 0 };
	assert_true(spam_bayes_combine(k, c, 1, 100, 100, &used) > 0.5);
	assert_int_equal(used, 1);
	struct spam_bayes_knobs k3 = *k;
	k3.min_count = 3;
	assert_true(spam_bayes_combine(&k3, c, 1, 100, 100, &used) == 0.5);
	assert_int_equal(used, 0);
	/* 40 strong spam features: at most clues_max of them combined */
	for (int i = 0; i < 40; i++)
		c[i] = (struct spam_bayes_count){ 50, 1, 0 };
	double p = spam_bayes_combine(k, c, 40, 100, 100, &used);
	assert_true(p > 0.99);
	assert_int_equal(used, k->clues_max);
	/* the same features seen in ham: near 0 */
	for (int i = 0; i < 40; i++)
		c[i] = (struct spam_bayes_count){ 1, 50, 0 };
	assert_true(spam_bayes_combine(k, c, 40, 100, 100, &used) < 0.01);
	/* header features: at most header_clues_max of them */
	for (int i = 0; i < 40; i++)
		c[i] = (struct spam_bayes_count){ 50, 1, 1 };
	spam_bayes_combine(k, c, 40, 100, 100, &used);
	assert_true(used <= k->header_clues_max);
	/* bands */
	assert_string_equal(spam_bayes_band(k, 0.0)->name, "BAYES_00");
	assert_string_equal(spam_bayes_band(k, 0.5)->name, "BAYES_50");
	assert_string_equal(spam_bayes_band(k, 0.7)->name, "BAYES_60");
	assert_true(spam_bayes_band(k, 0.7)->score < 5.0);        /* leaning: needs a rule */
	assert_true(spam_bayes_band(k, 0.85)->score >= 5.0);      /* tags alone */
	assert_string_equal(spam_bayes_band(k, 1.0)->name, "BAYES_999");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokens_deterministic),
		cmocka_unit_test(test_tokens_html_and_urls),
		cmocka_unit_test(test_rules_each_fire),
		cmocka_unit_test(test_gtube_rejects),
		cmocka_unit_test(test_thresholds),
		cmocka_unit_test(test_train_and_classify_corpus),
		cmocka_unit_test(test_retrain_other_way),
		cmocka_unit_test(test_combine_and_bands),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
