/*
 * spam.c — the antispam content stage (spam.h): GTUBE, rules, DNS
 * blocklists, the classifier and rspamd add up to a score that the tenant's
 * thresholds turn into an action and X-Spam-* headers.
 *
 * The classifier's probability p becomes a score through named bands, as
 * SpamAssassin's BAYES_* rules do, so the tests= list says which applied
 * (the table is spam_bayes_defaults.bands, spam_bayes.c):
 *   BAYES_00  p < 0.01   -1.5     BAYES_60  0.60..0.80  +4.2
 *   BAYES_05  < 0.05     -0.5     BAYES_80  0.80..0.95  +5.0
 *   BAYES_20  < 0.20      0.0     BAYES_95  0.95..0.99  +5.5
 *   BAYES_40  < 0.40     +0.5     BAYES_99  0.99..0.999 +6.0
 *   BAYES_50  < 0.60     +2.5     BAYES_999 >= 0.999    +7.0
 * p >= 0.8 tags alone (5.0 by default); 0.6..0.8 is "leaning spam" and
 * tags with any rule of 0.8 or more on top; 0.4..0.6 needs 2.5 of rules;
 * quarantine (8.0) needs rules or a blocklist hit; never reject alone.
 * Chosen with the classifier's knobs by cross-validation on the training
 * part of bench/spam (bench/spam/tune.sh).
 */
#include "hygiene/spam.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config/config.h"
#include "dns/dns_sync.h"
#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "hygiene/spam_bayes.h"
#include "hygiene/spam_rules.h"
#include "hygiene/spam_tokens.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define SPAM_GTUBE "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
#define SPAM_GTUBE_SCORE 1000.0
#define SPAM_REJECT_REPLY "550 5.7.1 Message rejected as spam"
#define SPAM_DNSBL_MAX 16
#define SPAM_RSPAMD_TIMEOUT 15L
#define SPAM_RSPAMD_REPLY_MAX (256 * 1024)
#define SPAM_SUBJECT_TAG_MAX 64

/* ---- the score and its tests ------------------------------------------- */

struct spam_tally {
	double score;
	struct buf tests;      /* "GTUBE,BAYES_99" */
};

static void
tally_add(void *arg, const char *name, double score)
{
	struct spam_tally *t = arg;
	t->score += score;
	if (t->tests.len > 0)
		buf_append_char(&t->tests, ',');
	buf_append_str(&t->tests, name);
}

static void
bayes_band_add(struct spam_tally *t, double p)
{
	const struct spam_bayes_band *b = spam_bayes_band(&spam_bayes_defaults, p);
	tally_add(t, b->name, b->score);
}

int
spam_evaluate(struct spam_db *db, const char *tenant, const struct hygiene_policy *pol,
    GMimeMessage *mime, const unsigned char *data, size_t len, struct spam_report *rep,
    char **err_r)
{
	memset(rep, 0, sizeof(*rep));
	rep->prob = 0.5;
	struct spam_tally t = { 0, BUF_INIT };
	if (memmem(data, len, SPAM_GTUBE, sizeof(SPAM_GTUBE) - 1) != NULL)
		tally_add(&t, "GTUBE", SPAM_GTUBE_SCORE);
	struct spam_tokens tok;
	spam_tokenize(mime, data, len, &tok);
	spam_rules_run(&tok.feat, tally_add, &t);
	int rc = 0;
	if (pol->spam_bayes && db != NULL) {
		struct spam_bayes_class c;
		rc = spam_bayes_classify(db, tenant, &tok, &c, err_r);
		if (rc == 0 && c.trained) {
			rep->prob = c.prob;
			rep->bayes_trained = 1;
			bayes_band_add(&t, c.prob);
		}
	}
	spam_tokens_free(&tok);
	rep->score = t.score;
	buf_append(&t.tests, "", 0);
	rep->tests = t.tests.data != NULL ? buf_steal(&t.tests) : xstrdup("");
	return rc;
}

void
spam_report_free(struct spam_report *rep)
{
	free(rep->tests);
	rep->tests = NULL;
}

const char *
spam_verdict_name(const struct hygiene_policy *pol, double score)
{
	if (score >= pol->spam_reject_score)
		return "reject";
	if (score >= pol->spam_quarantine_score)
		return "quarantine";
	if (score >= pol->spam_tag_score)
		return "spam";
	return "ham";
}

/* ---- DNS blocklists ----------------------------------------------------- */

/* "1.2.0.192.zone" / nibbles for IPv6; 0, or -1 when ip is no address. */
static int
dnsbl_name(const char *ip, const char *zone, char *out, size_t size)
{
	unsigned char a[16];
	struct buf b = BUF_INIT;
	if (strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip, '.') != NULL)
		ip += 7;                                   /* IPv4-mapped: the IPv4 lists */
	if (inet_pton(AF_INET, ip, a) == 1) {
		buf_appendf(&b, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0], zone);
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		for (int i = 15; i >= 0; i--)
			buf_appendf(&b, "%x.%x.", a[i] & 0xf, a[i] >> 4);
		buf_append_str(&b, zone);
	} else {
		return -1;
	}
	int ok = b.len < size;
	if (ok)
		memcpy(out, b.data, b.len + 1);
	buf_free(&b);
	return ok ? 0 : -1;
}

static void
dnsbl_check(const struct hygiene_msg *m, struct spam_tally *t)
{
	const struct policy_list *zones = &m->pol->spam_dnsbl;
	for (size_t i = 0; i < zones->n && i < SPAM_DNSBL_MAX; i++) {
		char name[512];
		if (dnsbl_name(m->client_ip, zones->items[i], name, sizeof(name)) < 0)
			return;
		struct dns_records rr;
		enum dns_status st = dns_sync_query(hygiene_dns(m->h), name, DNS_SYNC_A, &rr);
		int listed = st == DNS_OK && rr.n > 0 && strncmp(rr.items[0], "127.", 4) == 0;
		dns_records_free(&rr);
		if (!listed)
			continue;
		char test[300];
		snprintf(test, sizeof(test), "DNSBL_%s", zones->items[i]);
		for (char *c = test; *c != '\0'; c++)
			if (*c == '.' || *c == '-')
				*c = '_';
		tally_add(t, test, m->pol->spam_dnsbl_score);
	}
}

/* ---- rspamd ------------------------------------------------------------- */

static size_t
rspamd_write(char *ptr, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	if (b->len + size * n > SPAM_RSPAMD_REPLY_MAX)
		return 0;
	buf_append(b, ptr, size * n);
	return size * n;
}

static struct curl_slist *
rspamd_headers(const struct hygiene_msg *m)
{
	/* rspamd never answers "100 Continue": without this, libcurl waits
	 * a second before sending every large message. */
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	char line[1100];
	snprintf(line, sizeof(line), "IP: %s", m->client_ip);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "From: %s", m->sender);
	h = curl_slist_append(h, line);
	for (size_t i = 0; i < m->nrcpts && i < 100; i++) {
		snprintf(line, sizeof(line), "Rcpt: %s", m->rcpts[i]);
		h = curl_slist_append(h, line);
	}
	if (m->client_helo != NULL) {
		snprintf(line, sizeof(line), "Helo: %s", m->client_helo);
		h = curl_slist_append(h, line);
	}
	if (m->qid != NULL) {
		snprintf(line, sizeof(line), "Queue-Id: %s", m->qid);
		h = curl_slist_append(h, line);
	}
	return h;
}

/* POSTs the message to <rspamd_url>/checkv2; its "score" into *score_r. */
static int
rspamd_check(const struct hygiene_msg *m, const unsigned char *data, size_t len,
    double *score_r, char **err_r)
{
	const struct config *cfg = hygiene_config(m->h);
	if (cfg->rspamd_url == NULL || cfg->rspamd_url[0] == '\0') {
		err_setf(err_r, "spam.rspamd is on but [hygiene] rspamd_url is not set");
		return -1;
	}
	CURL *c = curl_easy_init();
	if (c == NULL) {
		err_setf(err_r, "rspamd: cannot start libcurl");
		return -1;
	}
	char *url = buf_printf("%s/checkv2", cfg->rspamd_url);
	struct buf reply = BUF_INIT;
	struct curl_slist *hdrs = rspamd_headers(m);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, SPAM_RSPAMD_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rspamd_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
	CURLcode cc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	int rc = -1;
	if (cc != CURLE_OK) {
		err_setf(err_r, "rspamd: %s", curl_easy_strerror(cc));
	} else if (status != 200) {
		err_setf(err_r, "rspamd: HTTP status %ld", status);
	} else {
		json_t *j = json_loadb(reply.data != NULL ? reply.data : "", reply.len, 0, NULL);
		json_t *s = json_object_get(j, "score");
		if (json_is_number(s)) {
			*score_r = json_number_value(s);
			rc = 0;
		} else {
			err_setf(err_r, "rspamd: no score in the reply");
		}
		json_decref(j);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	buf_free(&reply);
	free(url);
	return rc;
}

/* ---- verdict ------------------------------------------------------------ */

/* The message with the subject tag put in front of its Subject (or a new
 * Subject field when it has none); NULL when already tagged. */
static unsigned char *
subject_tagged(const unsigned char *data, size_t len, const char *tag, size_t *len_r)
{
	const char *p = (const char *)data, *end = p + len;
	struct buf out = BUF_INIT;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl + 1 : end;
		if (*p == '\n' || (*p == '\r' && le - p <= 2))
			break;
		if ((size_t)(end - p) > 8 && strncasecmp(p, "subject:", 8) == 0) {
			const char *v = p + 8;
			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			if ((size_t)(le - v) >= strlen(tag) && strncmp(v, tag, strlen(tag)) == 0) {
				buf_free(&out);
				return NULL;
			}
			buf_append(&out, data, (size_t)(p - (const char *)data));
			buf_appendf(&out, "Subject: %s ", tag);
			buf_append(&out, v, (size_t)(end - v));
			*len_r = out.len;
			return (unsigned char *)buf_steal(&out);
		}
		p = le;
	}
	buf_appendf(&out, "Subject: %s\r\n", tag);
	buf_append(&out, data, len);
	*len_r = out.len;
	return (unsigned char *)buf_steal(&out);
}

static void
apply_subject_tag(const struct hygiene_msg *m, struct hygiene_result *r)
{
	const char *tag = m->pol->spam_subject_tag;
	if (tag == NULL || tag[0] == '\0' || strlen(tag) > SPAM_SUBJECT_TAG_MAX ||
	    strpbrk(tag, "\r\n") != NULL)
		return;
	const unsigned char *data;
	size_t len, nlen;
	hygiene_result_content(m, r, &data, &len);
	unsigned char *n = subject_tagged(data, len, tag, &nlen);
	if (n != NULL)
		hygiene_result_rewrite(r, n, nlen);
}

static void
apply_thresholds(const struct hygiene_msg *m, struct hygiene_result *r,
    const struct spam_tally *t)
{
	const struct hygiene_policy *p = m->pol;
	int is_spam = t->score >= p->spam_tag_score;
	r->score += t->score;
	r->spam_scored = 1;
	if (is_spam)
		hygiene_result_add_header(r, "X-Spam-Flag", "YES");
	hygiene_result_add_header(r, "X-Spam-Score", "%.1f", t->score);
	hygiene_result_add_header(r, "X-Spam-Status", "%s, score=%.1f required=%.1f tests=%s",
	    is_spam ? "Yes" : "No", t->score, p->spam_tag_score,
	    t->tests.len > 0 ? t->tests.data : "none");
	if (t->score >= p->spam_reject_score) {
		hygiene_result_raise(r, HYGIENE_REJECT, SPAM_REJECT_REPLY, "spam:%.1f", t->score);
	} else if (t->score >= p->spam_quarantine_score) {
		hygiene_result_raise(r, HYGIENE_QUARANTINE, NULL, "spam:%.1f", t->score);
	} else if (is_spam) {
		hygiene_result_raise(r, HYGIENE_TAG, NULL, "spam:%.1f", t->score);
		apply_subject_tag(m, r);
	}
}

int
spam_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	if (!m->pol->spam_enabled)
		return 0;
	if (m->sender[0] != '\0' && policy_list_match_address(&m->pol->allow_senders, m->sender)) {
		r->train_skip = 1;
		return 0;
	}
	const unsigned char *data;
	size_t len;
	hygiene_result_content(m, r, &data, &len);
	struct spam_report rep;
	GMimeMessage *mime = r->rewritten != NULL ? NULL : m->mime;
	if (spam_evaluate(m->h->spam, m->tenant, m->pol, mime, data, len, &rep, err_r) < 0) {
		spam_report_free(&rep);
		return -1;
	}
	struct spam_tally t = { rep.score, BUF_INIT };
	buf_append_str(&t.tests, rep.tests);
	spam_report_free(&rep);
	if (strstr(t.tests.data != NULL ? t.tests.data : "", "GTUBE") != NULL)
		hygiene_result_reason(r, "spam:GTUBE");
	if (m->pol->spam_dnsbl.n > 0)
		dnsbl_check(m, &t);
	if (m->pol->spam_rspamd) {
		double s;
		if (rspamd_check(m, data, len, &s, err_r) < 0) {
			buf_free(&t.tests);
			return -1;
		}
		tally_add(&t, "RSPAMD", s);
	}
	apply_thresholds(m, r, &t);
	buf_free(&t.tests);
	return 0;
}
