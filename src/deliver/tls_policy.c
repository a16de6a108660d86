/*
 * NAME
 *	tls_policy - what TLS an outbound delivery must have (tenant policy,
 *	DLP flag, MTA-STS)
 * DESCRIPTION
 *	tls_policy_lookup() first settles what needs no network: the DLP flag
 *	and the tenant's tls.require_domains.  When the tenant honours MTA-STS
 *	it then needs the domain's policy:
 *
 *	  cached and checked less than STS_RECHECK_SECS ago ─▶ answer now
 *	  a fetch for the domain already runs ─▶ wait for it (one fetch each)
 *	  else a worker job: TXT _mta-sts.D ─┬─ none ──────────▶ cache, if unexpired
 *	                                      ├─ id == cached id ▶ cache
 *	                                      └─ new id / no cache ▶ HTTPS fetch
 *	                                            ├─ ok ─▶ new policy (memory + mta-sts.db)
 *	                                            └─ failed ─▶ cache, if unexpired
 *	and every waiter gets its decision on the loop thread.
 *
 *	Everything in struct tls_policy but dns and db is loop-thread only;
 *	worker jobs see only their struct sts_fetch, the thread-safe dns_sync
 *	and the SQLite handle (opened in serialized mode).  tls_policy_stop()
 *	frees the module once no fetch is running (worker_pool_free runs the
 *	last ones' completions).
 */
#include "deliver/tls_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "config/config.h"
#include "dns/dns_sync.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/worker.h"
#include "queue/queue.h"
#include "server.h"
#include "tls/tls.h"

#define STS_RECHECK_SECS   60        /* TXT re-checked at most this often per domain */
#define STS_CACHE_MAX      10000     /* domains kept in memory */
#define STS_FETCH_TIMEOUT  10
#define STS_DOMAIN_MAX     253

struct sts_cached {
	char *domain;
	char id[33];
	struct tls_sts_policy pol;
	time_t expires;
	time_t checked;
	struct sts_cached *next;
};

struct sts_waiter {
	tls_policy_cb *cb;
	void *arg;
	enum tls_requirement req;     /* from the tenant policy / DLP flag */
	const char *why;
	struct sts_waiter *next;
};

enum sts_outcome { STS_OUT_NO_TXT, STS_OUT_SAME, STS_OUT_NEW, STS_OUT_FAILED };

struct sts_fetch {
	struct tls_policy *tp;
	char *domain;
	/* in: what the cache held */
	int have_cache;
	char cached_id[33];
	time_t cached_expires;
	/* out */
	enum sts_outcome outcome;
	char id[33];
	struct tls_sts_policy pol;
	char why[256];
	struct sts_waiter *waiters;
	struct sts_fetch *next;
};

struct tls_policy {
	struct server *srv;
	struct dns_sync *dns;
	sqlite3 *db;
	struct sts_cached *cache;
	size_t ncache;
	struct sts_fetch *fetches;
	unsigned running;
	int stopped;
	int shutting_down;            /* tls_policy_shutdown(): atomic, read by fetches */
};

/* ------------------------------------------------------------ parsers */

static int
sts_is_keychar(int c)
{
	return isalnum(c) || c == '_' || c == '-' || c == '.';
}

static int
sts_parse_max_age(const char *v, long *out)
{
	size_t n = strlen(v);
	if (n == 0 || n > 10)
		return -1;
	long long x = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)v[i]))
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	*out = x > TLS_STS_MAX_AGE ? TLS_STS_MAX_AGE : (long)x;
	return 0;
}

/* An mx value: a host name, optionally "*." in front; letters, digits, '-', '.'. */
static int
sts_mx_valid(const char *v)
{
	const char *p = strncmp(v, "*.", 2) == 0 ? v + 2 : v;
	size_t n = strlen(p);
	if (n == 0 || n > STS_DOMAIN_MAX || p[0] == '.' || p[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '.')
			return 0;
	return strstr(p, "..") == NULL;
}

/* One "key: value" line (no line end). 0, or -1 with *why_r. */
static int
sts_parse_line(char *line, struct tls_sts_policy *p, int *have_version, int *have_mode,
    int *have_age, const char **why_r)
{
	char *colon = strchr(line, ':');
	if (colon == NULL || colon == line) {
		*why_r = "a line is not \"key: value\"";
		return -1;
	}
	*colon = '\0';
	for (char *k = line; *k != '\0'; k++)
		if (!sts_is_keychar((unsigned char)*k)) {
			*why_r = "bad key";
			return -1;
		}
	char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	size_t vl = strlen(v);
	while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		v[--vl] = '\0';
	if (strcmp(line, "version") == 0) {
		if (strcmp(v, "STSv1") != 0) {
			*why_r = "version is not STSv1";
			return -1;
		}
		*have_version = 1;
	} else if (strcmp(line, "mode") == 0) {
		if (strcmp(v, "enforce") == 0)
			p->mode = TLS_STS_ENFORCE;
		else if (strcmp(v, "testing") == 0)
			p->mode = TLS_STS_TESTING;
		else if (strcmp(v, "none") == 0)
			p->mode = TLS_STS_NONE;
		else {
			*why_r = "unknown mode";
			return -1;
		}
		*have_mode = 1;
	} else if (strcmp(line, "max_age") == 0) {
		if (sts_parse_max_age(v, &p->max_age) < 0) {
			*why_r = "bad max_age";
			return -1;
		}
		*have_age = 1;
	} else if (strcmp(line, "mx") == 0) {
		if (!sts_mx_valid(v)) {
			*why_r = "bad mx pattern";
			return -1;
		}
		if (p->n_mx >= TLS_STS_MAX_MX) {
			*why_r = "too many mx patterns";
			return -1;
		}
		p->mx = xrealloc(p->mx, (p->n_mx + 1) * sizeof(*p->mx));
		p->mx[p->n_mx++] = xstrdup(v);
	}
	return 0;
}

int
tls_sts_parse_policy(const char *text, size_t len, struct tls_sts_policy *p,
    const char **why_r)
{
	memset(p, 0, sizeof(*p));
	if (len > TLS_STS_MAX_BODY || memchr(text, '\0', len) != NULL) {
		*why_r = len > TLS_STS_MAX_BODY ? "policy too large" : "NUL in policy";
		return -1;
	}
	char *copy = xstrndup(text, len);
	int have_version = 0, have_mode = 0, have_age = 0, rc = 0;
	char *line = copy;
	while (rc == 0 && *line != '\0') {
		char *nl = strchr(line, '\n');
		char *next = nl != NULL ? nl + 1 : line + strlen(line);
		if (nl != NULL)
			*nl = '\0';
		size_t ll = strlen(line);
		if (ll > 0 && line[ll - 1] == '\r')
			line[--ll] = '\0';
		if (ll > 0)
			rc = sts_parse_line(line, p, &have_version, &have_mode, &have_age, why_r);
		line = next;
	}
	free(copy);
	if (rc == 0 && (!have_version || !have_mode || !have_age)) {
		*why_r = !have_version ? "no version" : !have_mode ? "no mode" : "no max_age";
		rc = -1;
	}
	if (rc == 0 && p->mode != TLS_STS_NONE && p->n_mx == 0) {
		*why_r = "no mx";
		rc = -1;
	}
	if (rc < 0)
		tls_sts_policy_free(p);
	return rc;
}

void
tls_sts_policy_free(struct tls_sts_policy *p)
{
	for (size_t i = 0; i < p->n_mx; i++)
		free(p->mx[i]);
	free(p->mx);
	p->mx = NULL;
	p->n_mx = 0;
}

int
tls_sts_parse_txt(const char *txt, char id[33])
{
	const char *p = txt;
	int first = 1, have_id = 0;
	id[0] = '\0';
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *end = strchr(p, ';');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (first) {
			if (n != 7 || strncmp(p, "v=STSv1", 7) != 0)
				return -1;
			first = 0;
		} else if (n >= 3 && strncmp(p, "id=", 3) == 0) {
			size_t il = n - 3;
			if (il == 0 || il > 32 || have_id)
				return -1;
			for (size_t i = 0; i < il; i++)
				if (!isalnum((unsigned char)p[3 + i]))
					return -1;
			memcpy(id, p + 3, il);
			id[il] = '\0';
			have_id = 1;
		} else if (n > 0 && memchr(p, '=', n) == NULL) {
			return -1;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return !first && have_id ? 0 : -1;
}

int
tls_sts_mx_match(const char *pattern, const char *host)
{
	size_t hl = strlen(host);
	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (strncmp(pattern, "*.", 2) == 0) {
		const char *dot = memchr(host, '.', hl);
		if (dot == NULL || dot == host)
			return 0;
		size_t rest = hl - (size_t)(dot + 1 - host);
		return strlen(pattern + 2) == rest && strncasecmp(pattern + 2, dot + 1, rest) == 0;
	}
	return strlen(pattern) == hl && strncasecmp(pattern, host, hl) == 0;
}

int
tls_policy_mx_allowed(const struct tls_decision *d, const char *host)
{
	if (d->mx_patterns == NULL || d->n_mx == 0)
		return 1;
	for (size_t i = 0; i < d->n_mx; i++)
		if (tls_sts_mx_match(d->mx_patterns[i], host))
			return 1;
	return 0;
}

/* -------------------------------------------------------------- cache */

static struct sts_cached *
sts_cache_find(struct tls_policy *tp, const char *domain)
{
	for (struct sts_cached *c = tp->cache; c != NULL; c = c->next)
		if (strcmp(c->domain, domain) == 0)
			return c;
	return NULL;
}

static void
sts_cached_free(struct sts_cached *c)
{
	free(c->domain);
	tls_sts_policy_free(&c->pol);
	free(c);
}

static void
sts_cache_remove(struct tls_policy *tp, struct sts_cached *gone)
{
	for (struct sts_cached **pp = &tp->cache; *pp != NULL; pp = &(*pp)->next)
		if (*pp == gone) {
			*pp = gone->next;
			sts_cached_free(gone);
			tp->ncache--;
			return;
		}
}

/* Takes pol.  Replaces the domain's entry (the oldest goes when full). */
static struct sts_cached *
sts_cache_put(struct tls_policy *tp, const char *domain, const char *id,
    struct tls_sts_policy *pol, time_t expires)
{
	struct sts_cached *c = sts_cache_find(tp, domain);
	if (c != NULL)
		sts_cache_remove(tp, c);
	while (tp->ncache >= STS_CACHE_MAX) {
		struct sts_cached *last = tp->cache;
		while (last->next != NULL)
			last = last->next;
		sts_cache_remove(tp, last);
	}
	c = xcalloc(1, sizeof(*c));
	c->domain = xstrdup(domain);
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->pol = *pol;
	memset(pol, 0, sizeof(*pol));
	c->expires = expires;
	c->next = tp->cache;
	tp->cache = c;
	tp->ncache++;
	return c;
}

/* ------------------------------------------------------------- SQLite */

static int
sts_db_open(struct tls_policy *tp, const char *data_dir, char **err_r)
{
	struct buf path = BUF_INIT;
	buf_appendf(&path, "%s/mta-sts.db", data_dir);
	int rc = sqlite3_open_v2(buf_cstr(&path), &tp->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(tp->db, 5000);
		rc = sqlite3_exec(tp->db, "CREATE TABLE IF NOT EXISTS sts ("
		    "domain TEXT PRIMARY KEY, id TEXT NOT NULL, mode INTEGER NOT NULL, "
		    "mx TEXT NOT NULL, max_age INTEGER NOT NULL, expires INTEGER NOT NULL)",
		    NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		err_setf(err_r, "%s: %s", buf_cstr(&path),
		    tp->db != NULL ? sqlite3_errmsg(tp->db) : "cannot open");
		buf_free(&path);
		sqlite3_close(tp->db);
		tp->db = NULL;
		return -1;
	}
	buf_free(&path);
	return 0;
}

static void
sts_db_load(struct tls_policy *tp)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(tp->db, "SELECT domain, id, mode, mx, max_age, expires FROM sts "
	    "WHERE expires > ?1", -1, &st, NULL) != SQLITE_OK) {
		log_warn("mta_sts_db_failed", "error=%s", log_str(sqlite3_errmsg(tp->db)));
		return;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
	while (sqlite3_step(st) == SQLITE_ROW && tp->ncache < STS_CACHE_MAX) {
		const char *domain = (const char *)sqlite3_column_text(st, 0);
		const char *id = (const char *)sqlite3_column_text(st, 1);
		const char *mx = (const char *)sqlite3_column_text(st, 3);
		if (domain == NULL || id == NULL || mx == NULL)
			continue;
		struct tls_sts_policy pol = { (enum tls_sts_mode)sqlite3_column_int(st, 2),
			(long)sqlite3_column_int64(st, 4), NULL, 0 };
		char *copy = xstrdup(mx), *save = NULL;
		for (char *t = strtok_r(copy, "\n", &save); t != NULL && pol.n_mx < TLS_STS_MAX_MX;
		    t = strtok_r(NULL, "\n", &save)) {
			pol.mx = xrealloc(pol.mx, (pol.n_mx + 1) * sizeof(*pol.mx));
			pol.mx[pol.n_mx++] = xstrdup(t);
		}
		free(copy);
		sts_cache_put(tp, domain, id, &pol, (time_t)sqlite3_column_int64(st, 5));
	}
	sqlite3_finalize(st);
}

/* Worker thread. */
static void
sts_db_save(sqlite3 *db, const char *domain, const char *id, const struct tls_sts_policy *p,
    time_t expires)
{
	struct buf mx = BUF_INIT;
	sqlite3_stmt *st = NULL;
	for (size_t i = 0; i < p->n_mx; i++)
		buf_appendf(&mx, "%s%s", i > 0 ? "\n" : "", p->mx[i]);
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO sts (domain, id, mode, mx, max_age, "
	    "expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, (int)p->mode);
		sqlite3_bind_text(st, 4, buf_cstr(&mx), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, p->max_age);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)expires);
		if (sqlite3_step(st) != SQLITE_DONE)
			log_warn("mta_sts_db_failed", "domain=%s error=%s", log_str(domain),
			    log_str(sqlite3_errmsg(db)));
	} else {
		log_warn("mta_sts_db_failed", "domain=%s error=%s", log_str(domain),
		    log_str(sqlite3_errmsg(db)));
	}
	sqlite3_finalize(st);
	buf_free(&mx);
}

/* ------------------------------------------------------- worker: fetch */

struct sts_body {
	struct buf data;
	int too_big;
};

/* Aborts a policy fetch once the daemon is shutting down. */
static int
sts_curl_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct tls_policy *tp = arg;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return __atomic_load_n(&tp->shutting_down, __ATOMIC_RELAXED) ? 1 : 0;
}

static size_t
sts_curl_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct sts_body *b = arg;
	size_t n = size * nmemb;
	if (b->data.len + n > TLS_STS_MAX_BODY) {
		b->too_big = 1;
		return 0;
	}
	buf_append(&b->data, ptr, n);
	return n;
}

/* The address of mta-sts.D through dns_sync (so the configured resolver decides). */
static int
sts_resolve(struct dns_sync *dns, const char *host, char *addr, size_t size)
{
	static const enum dns_sync_type types[] = { DNS_SYNC_A, DNS_SYNC_AAAA };
	for (size_t t = 0; t < 2; t++) {
		struct dns_records rr;
		enum dns_status st = dns_sync_query(dns, host, types[t], &rr);
		int ok = st == DNS_OK && rr.n > 0;
		if (ok)
			snprintf(addr, size, types[t] == DNS_SYNC_AAAA ? "[%s]" : "%s", rr.items[0]);
		dns_records_free(&rr);
		if (ok)
			return 0;
	}
	return -1;
}

/* 0 with f->pol, or -1 with f->why. */
static int
sts_fetch_policy(struct sts_fetch *f)
{
	const struct config *cfg = f->tp->srv->cfg;
	char host[STS_DOMAIN_MAX + 16], addr[80], errbuf[CURL_ERROR_SIZE] = "";
	unsigned port = cfg->mta_sts_port > 0 && cfg->mta_sts_port < 65536 ?
	    (unsigned)cfg->mta_sts_port : 443;
	snprintf(host, sizeof(host), "mta-sts.%s", f->domain);
	if (sts_resolve(f->tp->dns, host, addr, sizeof(addr)) < 0) {
		snprintf(f->why, sizeof(f->why), "cannot resolve %.200s", host);
		return -1;
	}
	struct buf url = BUF_INIT, res = BUF_INIT;
	buf_appendf(&url, "https://%s:%u/.well-known/mta-sts.txt", host, port);
	buf_appendf(&res, "%s:%u:%s", host, port, addr);
	struct curl_slist *resolve = curl_slist_append(NULL, buf_cstr(&res));
	struct sts_body body = { BUF_INIT, 0 };
	CURL *h = curl_easy_init();
	int rc = -1;
	if (h == NULL || resolve == NULL) {
		snprintf(f->why, sizeof(f->why), "curl setup failed");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, buf_cstr(&url));
	curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)STS_FETCH_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)TLS_STS_MAX_BODY);
	if (cfg->tls_ca_file != NULL && cfg->tls_ca_file[0] != '\0')
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->tls_ca_file);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, sts_curl_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, f->tp);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sts_curl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	CURLcode cc = curl_easy_perform(h);
	long status = 0;
	char *ctype = NULL;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
	const char *why = NULL;
	if (cc != CURLE_OK)
		snprintf(f->why, sizeof(f->why), "%.200s", body.too_big ? "policy larger than 64 kB" :
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
	else if (status != 200)
		snprintf(f->why, sizeof(f->why), "HTTP status %ld", status);
	else if (ctype == NULL || strncasecmp(ctype, "text/plain", 10) != 0 ||
	    (ctype[10] != '\0' && ctype[10] != ';' && ctype[10] != ' '))
		snprintf(f->why, sizeof(f->why), "Content-Type is not text/plain");
	else if (tls_sts_parse_policy(body.data.data != NULL ? body.data.data : "",
	    body.data.len, &f->pol, &why) < 0)
		snprintf(f->why, sizeof(f->why), "bad policy: %.200s", why);
	else
		rc = 0;
out:
	if (h != NULL)
		curl_easy_cleanup(h);
	curl_slist_free_all(resolve);
	buf_free(&body.data);
	buf_free(&url);
	buf_free(&res);
	return rc;
}

/* The domain's one valid STSv1 TXT id: 1, 0 none, -1 DNS failure. */
static int
sts_txt_id(struct sts_fetch *f, char id[33])
{
	struct buf name = BUF_INIT;
	struct dns_records rr;
	buf_appendf(&name, "_mta-sts.%s", f->domain);
	enum dns_status st = dns_sync_query(f->tp->dns, buf_cstr(&name), DNS_SYNC_TXT, &rr);
	buf_free(&name);
	int found = 0;
	for (size_t i = 0; st == DNS_OK && i < rr.n; i++) {
		char one[33];
		if (strncmp(rr.items[i], "v=STSv1", 7) != 0)
			continue;
		if (tls_sts_parse_txt(rr.items[i], one) < 0 || found++ > 0) {
			found = 2;          /* invalid or more than one: none (RFC 8461 3.1) */
			break;
		}
		memcpy(id, one, sizeof(one));
	}
	dns_records_free(&rr);
	if (st == DNS_TEMPFAIL) {
		snprintf(f->why, sizeof(f->why), "TXT lookup failed");
		return -1;
	}
	return found == 1 ? 1 : 0;
}

static void
sts_work(void *arg)
{
	struct sts_fetch *f = arg;
	time_t now = time(NULL);
	int txt = sts_txt_id(f, f->id);
	if (txt < 0) {
		f->outcome = STS_OUT_FAILED;
		return;
	}
	if (txt == 0) {
		f->outcome = STS_OUT_NO_TXT;
		return;
	}
	if (f->have_cache && strcmp(f->id, f->cached_id) == 0 && f->cached_expires > now) {
		f->outcome = STS_OUT_SAME;
		return;
	}
	if (sts_fetch_policy(f) < 0) {
		f->outcome = STS_OUT_FAILED;
		return;
	}
	f->outcome = STS_OUT_NEW;
	if (f->tp->db != NULL)
		sts_db_save(f->tp->db, f->domain, f->id, &f->pol, now + f->pol.max_age);
}

/* ---------------------------------------------------------- decisions */

static void
sts_answer(const struct sts_waiter *w, const struct sts_cached *c)
{
	struct tls_decision d = { w->req, w->why, 0, NULL, 0 };
	if (c != NULL && c->pol.mode == TLS_STS_ENFORCE) {
		if (d.req != TLSREQ_VERIFIED)
			d.why = "mta-sts enforce";
		d.req = TLSREQ_VERIFIED;
		d.mx_patterns = (const char *const *)c->pol.mx;
		d.n_mx = c->pol.n_mx;
	} else if (c != NULL && c->pol.mode == TLS_STS_TESTING) {
		d.sts_testing = 1;
		d.mx_patterns = (const char *const *)c->pol.mx;
		d.n_mx = c->pol.n_mx;
	}
	w->cb(w->arg, &d);
}

static void tls_policy_free(struct tls_policy *tp);

/* Loop thread: the fetch's outcome goes into the cache, then to every waiter. */
static void
sts_done(void *arg)
{
	struct sts_fetch *f = arg;
	struct tls_policy *tp = f->tp;
	time_t now = time(NULL);
	struct sts_cached *c = sts_cache_find(tp, f->domain);
	switch (f->outcome) {
	case STS_OUT_NEW:
		log_info("mta_sts_policy", "domain=%s id=%s mode=%s mx=%zu max_age=%ld",
		    log_str(f->domain), log_str(f->id), f->pol.mode == TLS_STS_ENFORCE ? "enforce" :
		    f->pol.mode == TLS_STS_TESTING ? "testing" : "none", f->pol.n_mx, f->pol.max_age);
		c = sts_cache_put(tp, f->domain, f->id, &f->pol, now + f->pol.max_age);
		c->checked = now;
		break;
	case STS_OUT_SAME:
		if (c != NULL)
			c->checked = now;
		break;
	case STS_OUT_FAILED:
		log_warn("mta_sts_fetch_failed", "domain=%s cached=%s reason=%s",
		    log_str(f->domain), c != NULL && c->expires > now ? "yes" : "no",
		    log_str(f->why));
		/* FALLTHROUGH */
	case STS_OUT_NO_TXT:
		if (c != NULL && c->expires <= now) {
			sts_cache_remove(tp, c);
			c = NULL;
		}
		break;
	}
	for (struct sts_fetch **pp = &tp->fetches; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	while (f->waiters != NULL) {
		struct sts_waiter *w = f->waiters;
		f->waiters = w->next;
		sts_answer(w, c);
		free(w);
	}
	tls_sts_policy_free(&f->pol);
	free(f->domain);
	free(f);
	tp->running--;
	if (tp->stopped && tp->running == 0)
		tls_policy_free(tp);
}

/* Does the tenant's tls.require_domains name this domain? */
static int
tenant_requires(struct tls_policy *tp, const char *tenant, const char *domain, int *mta_sts_r)
{
	*mta_sts_r = 1;
	if (tp == NULL || tp->srv->hygiene == NULL)
		return 0;
	const struct hygiene_policy *pol = policy_get(tp->srv->hygiene, tenant);
	struct buf addr = BUF_INIT;
	buf_appendf(&addr, "postmaster@%s", domain);
	int req = pol->tls_require.n > 0 && policy_list_match_address(&pol->tls_require,
	    buf_cstr(&addr));
	*mta_sts_r = pol->mta_sts;
	buf_free(&addr);
	policy_release(&pol);
	return req;
}

void
tls_policy_lookup(struct tls_policy *tp, const char *tenant, const char *domain,
    unsigned env_flags, tls_policy_cb *cb, void *arg)
{
	struct sts_waiter w = { cb, arg, TLSREQ_NONE, NULL, NULL };
	int mta_sts = 1;
	if (env_flags & QUEUE_F_REQUIRE_TLS) {
		w.req = TLSREQ_VERIFIED;
		w.why = "dlp";
	}
	if (tenant_requires(tp, tenant, domain, &mta_sts) && w.req != TLSREQ_VERIFIED) {
		w.req = TLSREQ_VERIFIED;
		w.why = "tenant policy";
	}
	/* a domain that cannot be a host name (an address literal, odd bytes) has no policy */
	if (tp == NULL || tp->stopped || !mta_sts || domain == NULL || domain[0] == '*' ||
	    !sts_mx_valid(domain)) {
		sts_answer(&w, NULL);
		return;
	}
	time_t now = time(NULL);
	struct sts_cached *c = sts_cache_find(tp, domain);
	if (c != NULL && c->expires > now && now - c->checked < STS_RECHECK_SECS) {
		sts_answer(&w, c);
		return;
	}
	struct sts_fetch *f = tp->fetches;
	while (f != NULL && strcmp(f->domain, domain) != 0)
		f = f->next;
	struct sts_waiter *wp = xmalloc(sizeof(*wp));
	*wp = w;
	if (f != NULL) {
		wp->next = f->waiters;
		f->waiters = wp;
		return;
	}
	f = xcalloc(1, sizeof(*f));
	f->tp = tp;
	f->domain = xstrdup(domain);
	if (c != NULL) {
		f->have_cache = 1;
		memcpy(f->cached_id, c->id, sizeof(f->cached_id));
		f->cached_expires = c->expires;
	}
	f->waiters = wp;
	f->next = tp->fetches;
	tp->fetches = f;
	tp->running++;
	worker_submit(tp->srv->workers, sts_work, sts_done, f);
}

/* -------------------------------------------------------------- setup */

static void
tls_policy_free(struct tls_policy *tp)
{
	while (tp->cache != NULL)
		sts_cache_remove(tp, tp->cache);
	dns_sync_free(&tp->dns);
	sqlite3_close(tp->db);
	free(tp);
}

int
tls_policy_start(struct server *srv, char **err_r)
{
	srv->tls_policy = NULL;
	if (srv->tls != NULL && tls_client_verify_load(srv->tls, srv->cfg->tls_ca_file, err_r) < 0)
		return -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		err_setf(err_r, "curl_global_init failed");
		return -1;
	}
	struct tls_policy *tp = xcalloc(1, sizeof(*tp));
	tp->srv = srv;
	tp->dns = dns_sync_new(srv->cfg, err_r);
	if (tp->dns == NULL || sts_db_open(tp, srv->cfg->data_dir, err_r) < 0) {
		tls_policy_free(tp);
		return -1;
	}
	sts_db_load(tp);
	srv->tls_policy = tp;
	log_info("tls_policy_started", "cached_policies=%zu", tp->ncache);
	return 0;
}

void
tls_policy_shutdown(struct server *srv)
{
	struct tls_policy *tp = srv->tls_policy;
	if (tp == NULL)
		return;
	__atomic_store_n(&tp->shutting_down, 1, __ATOMIC_RELAXED);
	dns_sync_abort(tp->dns);
}

void
tls_policy_stop(struct server *srv)
{
	struct tls_policy *tp = srv->tls_policy;
	srv->tls_policy = NULL;
	if (tp == NULL)
		return;
	tp->stopped = 1;
	if (tp->running == 0)
		tls_policy_free(tp);
}
