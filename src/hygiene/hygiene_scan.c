/*
 * NAME
 *	hygiene_scan — start/stop and the session-facing entry points of the
 *	pipeline: connection (DNSBL reject zones), envelope (sender block
 *	list) and content (the stage table on the hygiene worker pool).
 * SYNOPSIS
 *	See hygiene.h.
 * DESCRIPTION
 *	Content scan of one message, a struct scan_job:
 *	  loop thread    hygiene_scan(): snapshot of the tenant policy and
 *	                 domains, copy of the envelope, worker_submit
 *	  hygiene pool   scan_work(): read the spooled message back, run the
 *	                 stages, then by action: write the final message
 *	                 (our Received:, the added fields, the verdict header,
 *	                 the rest of the content) into the writer, or store the
 *	                 original in the quarantine
 *	  loop thread    scan_done(): log line, DLP notification, the
 *	                 session's callback with the verdict, free the job
 *	The writer is the session's throughout; the session touches it only
 *	after its callback ran.  Nothing is acknowledged before the session's
 *	commit, so a crash at any step loses nothing the client was told of.
 */
#include "hygiene/hygiene.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>

#include "config/config.h"
#include "dns/dns_sync.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "hygiene/quarantine.h"
#include "hygiene/sender_auth.h"
#include "hygiene/spam.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/worker.h"
#include "server.h"
#include "store/store.h"

#define SCAN_HEADER_MAX 998          /* longest header value kept for the quarantine */
#define DNSBL_ZONES_MAX 16

/* ---- the policy store ------------------------------------------------ */

static int
policy_tenant_exists(struct store *st, const char *tenant)
{
	struct store_tenant t;
	int found = store_tenant_get(st, tenant, &t);
	if (found == 1) {
		free(t.name);
		free(t.region);
		free(t.unknown_recipients);
	}
	return found;
}

const struct policy_store_ops hygiene_policy_store_ops = {
	store_hygiene_policy_list, store_hygiene_policy_set, store_hygiene_policy_unset,
	policy_tenant_exists,
};

/* ---- start / stop ---------------------------------------------------- */

int
hygiene_start(struct server *srv, char **err_r)
{
	struct hygiene *h = xcalloc(1, sizeof(*h));
	h->srv = srv;
	h->cfg = srv->cfg;
	h->dns = dns_sync_new(srv->cfg, err_r);
	if (h->dns == NULL) {
		free(h);
		return -1;
	}
	h->policy_ops = &hygiene_policy_store_ops;
	if (policy_cache_new(h, err_r) < 0)
		goto fail;
	if (spam_db_open(srv->cfg->data_dir, &h->spam, err_r) < 0)
		goto fail;
	if (sender_auth_init(h, err_r) < 0)
		goto fail;
	uint64_t n = srv->cfg->hygiene_threads;
	h->pool = worker_pool_new(srv->base, n == 0 ? 1 : n > 256 ? 256 : (int)n);
	srv->hygiene = h;
	log_info("hygiene_start", "enabled=%s threads=%d", srv->cfg->hygiene_enabled ? "yes" : "no",
	    n == 0 ? 1 : n > 256 ? 256 : (int)n);
	return 0;
fail:
	sender_auth_free(h);
	spam_db_close(&h->spam);
	policy_cache_free(h);
	dns_sync_free(&h->dns);
	free(h);
	return -1;
}

void
hygiene_stop(struct server *srv)
{
	struct hygiene *h = srv->hygiene;
	if (h == NULL)
		return;
	/* Finishes running scans: their done callbacks reach live sessions. */
	worker_pool_free(&h->pool);
	sender_auth_free(h);
	spam_db_close(&h->spam);
	policy_cache_free(h);
	dns_sync_free(&h->dns);
	free(h);
	srv->hygiene = NULL;
}

/* ---- connection stage: DNSBL reject zones ---------------------------- */

struct connect_job {
	struct hygiene *h;
	char ip[64];
	char *zones;                      /* copy of [hygiene] dnsbl_reject */
	char *reply;                      /* the 554, or NULL */
	hygiene_check_cb *cb;
	void *arg;
};

/* "192.0.2.1" → "1.2.0.192", "2001:db8::1" → nibbles; -1 when not an address. */
static int
reverse_ip(const char *ip, struct buf *out)
{
	unsigned char a[16];
	if (inet_pton(AF_INET, ip, a) == 1) {
		buf_appendf(out, "%u.%u.%u.%u", a[3], a[2], a[1], a[0]);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, a) == 1) {
		static const char hex[] = "0123456789abcdef";
		for (int i = 15; i >= 0; i--) {
			buf_append_char(out, hex[a[i] & 0xf]);
			buf_append_char(out, '.');
			buf_append_char(out, hex[a[i] >> 4]);
			if (i > 0)
				buf_append_char(out, '.');
		}
		return 0;
	}
	return -1;
}

/* 1 when the zone lists ip (an answer in 127.0.0.0/8), else 0. */
static int
dnsbl_listed(struct dns_sync *d, const char *rev, const char *zone)
{
	char *name = buf_printf("%s.%s", rev, zone);
	struct dns_records rr;
	int listed = 0;
	if (dns_sync_query(d, name, DNS_SYNC_A, &rr) == DNS_OK)
		for (size_t i = 0; i < rr.n && !listed; i++)
			listed = strncmp(rr.items[i], "127.", 4) == 0;
	dns_records_free(&rr);
	free(name);
	return listed;
}

static void
connect_work(void *arg)
{
	struct connect_job *j = arg;
	struct buf rev = BUF_INIT;
	if (reverse_ip(j->ip, &rev) < 0) {
		buf_free(&rev);
		return;
	}
	char *save = NULL;
	int nzones = 0;
	for (char *z = strtok_r(j->zones, ", \t", &save); z != NULL && nzones < DNSBL_ZONES_MAX;
	    z = strtok_r(NULL, ", \t", &save), nzones++) {
		if (dnsbl_listed(j->h->dns, buf_cstr(&rev), z)) {
			j->reply = buf_printf("554 5.7.1 Service unavailable; client [%s] listed by %s",
			    j->ip, z);
			log_info("hygiene_dnsbl_reject", "client=%s zone=%s", j->ip, log_str(z));
			break;
		}
	}
	buf_free(&rev);
}

static void
connect_done(void *arg)
{
	struct connect_job *j = arg;
	j->cb(j->arg, j->reply);
	free(j->reply);
	free(j->zones);
	free(j);
}

void
hygiene_connect_check(struct hygiene *h, const char *ip, hygiene_check_cb *cb, void *arg)
{
	const char *zones = h != NULL ? h->cfg->dnsbl_reject : NULL;
	if (h == NULL || !h->cfg->hygiene_enabled || zones == NULL ||
	    strspn(zones, ", \t") == strlen(zones)) {
		cb(arg, NULL);
		return;
	}
	struct connect_job *j = xcalloc(1, sizeof(*j));
	j->h = h;
	snprintf(j->ip, sizeof(j->ip), "%s", ip);
	j->zones = xstrdup(zones);
	j->cb = cb;
	j->arg = arg;
	worker_submit(h->pool, connect_work, connect_done, j);
}

/* ---- envelope stage -------------------------------------------------- */

const char *
hygiene_envelope_check(struct hygiene *h, const char *tenant, const char *sender,
    const char *rcpt)
{
	if (h == NULL || !h->cfg->hygiene_enabled || sender == NULL || sender[0] == '\0')
		return NULL;
	const struct hygiene_policy *p = policy_get(h, tenant);
	const char *r = NULL;
	if (p->enabled && policy_list_match_address(&p->block_senders, sender)) {
		r = "550 5.7.1 Sender address rejected: blocked by policy";
		log_info("hygiene", "stage=envelope tenant=%s action=reject reasons=%s from=%s rcpt=%s",
		    log_str(tenant), "envelope:blocked_sender", log_str(sender), log_str(rcpt));
	}
	policy_release(&p);
	return r;
}

/* ---- content stage --------------------------------------------------- */

struct scan_job {
	struct hygiene *h;
	struct quarantine *quarantine;
	const struct hygiene_policy *pol;
	struct queue_envelope env;
	int tls;
	struct queue_writer *w;
	char **domains;
	size_t ndomains;
	hygiene_verdict_cb *cb;
	void *arg;
	struct timespec t0;
	/* results (worker) */
	struct hygiene_result r;
	int error;                        /* errno of a failed rewrite */
	char *reply;                      /* the verdict's reply (owned) */
	char *subject, *from;             /* for the quarantine and notification */
};

/* The unfolded value of the first `name:` field of the header block, or NULL. */
static char *
raw_header(const unsigned char *data, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	size_t i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && data[eol] != '\n')
			eol++;
		size_t ll = eol - i;
		if (ll == 0 || (ll == 1 && data[i] == '\r'))
			return NULL;                  /* end of the header block */
		if (ll > nlen && data[i + nlen] == ':' &&
		    strncasecmp((const char *)data + i, name, nlen) == 0) {
			struct buf v = BUF_INIT;
			size_t p = i + nlen + 1;
			for (;;) {
				for (; p < eol && v.len < SCAN_HEADER_MAX; p++)
					if (data[p] != '\r')
						buf_append_char(&v, data[p] == '\t' ? ' ' : (char)data[p]);
				if (eol + 1 >= len || (data[eol + 1] != ' ' && data[eol + 1] != '\t'))
					break;
				p = eol + 1;
				for (eol = p; eol < len && data[eol] != '\n'; eol++)
					;
			}
			char *s = buf_steal(&v);
			size_t a = strspn(s, " ");
			memmove(s, s + a, strlen(s + a) + 1);
			return s;
		}
		i = eol + 1;
	}
	return NULL;
}

/* Builds the verdict header (only when there is something to say). */
static void
verdict_header(const struct hygiene_result *r, struct buf *out)
{
	if (r->action == HYGIENE_ACCEPT && r->reasons.len == 0)
		return;
	struct hygiene_result tmp;
	memset(&tmp, 0, sizeof(tmp));
	hygiene_result_add_header(&tmp, HYGIENE_VERDICT_HEADER, "action=%s; score=%.1f; reasons=%.*s",
	    hygiene_action_name(r->action), r->score, (int)r->reasons.len,
	    r->reasons.len > 0 ? r->reasons.data : "");
	buf_append(out, tmp.headers.data, tmp.headers.len);
	hygiene_result_free(&tmp);
}

/*
 * Length of the Received: field the session wrote at the start of data, or
 * 0.  Its last line always ends with the date's "+0000" (smtp_session.c
 * write_received) and comes after "id QID"; searching for that, instead of
 * for the end of the folded field, is immune to a message whose own first
 * line starts with blanks.
 */
static size_t
own_received_len(const unsigned char *data, size_t len, const char *qid)
{
	static const char name[] = "Received:", end[] = "+0000\r\n";
	size_t lim = len < 4096 ? len : 4096;
	if (lim < sizeof(name) - 1 || memcmp(data, name, sizeof(name) - 1) != 0)
		return 0;
	char idtok[ID_LEN + 8];
	snprintf(idtok, sizeof(idtok), " id %s", qid);
	const unsigned char *id = memmem(data, lim, idtok, strlen(idtok));
	if (id == NULL)
		return 0;
	const unsigned char *e = memmem(id, lim - (size_t)(id - data), end, sizeof(end) - 1);
	return e != NULL ? (size_t)(e - data) + sizeof(end) - 1 : 0;
}

/*
 * ACCEPT/TAG: the writer gets the content with the added fields and the
 * verdict header, when anything changed.  They go right after the Received:
 * field mailark wrote for this hop, so trace fields stay on top.
 */
static void
scan_finish_accept(struct scan_job *j, const unsigned char *data, size_t len)
{
	struct buf added = BUF_INIT;
	buf_append(&added, j->r.headers.data, j->r.headers.len);
	verdict_header(&j->r, &added);
	/* A verdict header that came with the message is not ours: renamed. */
	unsigned char *unforged = NULL;
	size_t ulen = 0;
	const unsigned char *cur = j->r.rewritten != NULL ? j->r.rewritten : data;
	size_t clen = j->r.rewritten != NULL ? j->r.rewritten_len : len;
	if (hygiene_header_rename(cur, clen, HYGIENE_VERDICT_HEADER, HYGIENE_VERDICT_RENAMED, NULL,
	    NULL, &unforged, &ulen) > 0)
		hygiene_result_rewrite(&j->r, unforged, ulen);
	if (added.len == 0 && j->r.rewritten == NULL) {
		buf_free(&added);
		return;
	}
	const unsigned char *body = j->r.rewritten != NULL ? j->r.rewritten : data;
	size_t blen = j->r.rewritten != NULL ? j->r.rewritten_len : len;
	size_t own = own_received_len(body, blen, j->env.id);
	struct buf prefix = BUF_INIT;
	buf_append(&prefix, body, own);
	buf_append(&prefix, added.data, added.len);
	buf_free(&added);
	if (queue_writer_replace(j->w, prefix.data, prefix.len, body + own, blen - own) < 0) {
		j->error = errno != 0 ? errno : EIO;
		log_error("hygiene_rewrite_failed", "id=%s error=%s", j->env.id, strerror(j->error));
	}
	buf_free(&prefix);
}

/* QUARANTINE: the original, as spooled; failure defers (nothing is lost). */
static void
scan_finish_quarantine(struct scan_job *j, const unsigned char *data, size_t len)
{
	char id[ID_LEN + 1] = "";
	char *err = NULL;
	struct quarantine_item item = {
		.env = &j->env, .action_reason = buf_cstr(&j->r.reasons), .score = j->r.score,
		.subject = j->subject, .from = j->from,
	};
	if (j->quarantine == NULL) {
		err = xstrdup("quarantine not open");
	} else if (quarantine_put(j->quarantine, &item, data, len, id, &err) == 0) {
		j->reply = buf_printf("250 2.0.0 Ok: queued as %s", id[0] != '\0' ? id : j->env.id);
		free(err);
		return;
	}
	log_error("hygiene_quarantine_failed", "id=%s tenant=%s error=%s", j->env.id,
	    log_str(j->env.tenant), log_str(err));
	free(err);
	j->r.action = HYGIENE_DEFER;
	hygiene_result_reason(&j->r, "quarantine:failed");
	j->reply = xstrdup("451 4.3.0 Message could not be stored, try again later");
}

static void
scan_work(void *arg)
{
	struct scan_job *j = arg;
	unsigned char *data = NULL;
	size_t len = 0;
	char *err = NULL;
	if (queue_writer_read_all(j->w, &data, &len) < 0) {
		j->error = errno != 0 ? errno : EIO;
		log_error("hygiene_read_failed", "id=%s error=%s", j->env.id, strerror(j->error));
		return;
	}
	if (hygiene_run_stages(j->h, j->pol, &j->env, j->tls, j->domains, j->ndomains, data, len,
	    &j->r, &err) < 0) {
		hygiene_result_raise(&j->r, HYGIENE_DEFER,
		    "451 4.7.1 Message could not be scanned, try again later", "pipeline:%s",
		    err != NULL ? err : "failed");
		free(err);
	}
	switch (j->r.action) {
	case HYGIENE_ACCEPT:
	case HYGIENE_TAG:
		scan_finish_accept(j, data, len);
		break;
	case HYGIENE_QUARANTINE:
		j->subject = raw_header(data, len, "Subject");
		j->from = raw_header(data, len, "From");
		scan_finish_quarantine(j, data, len);
		break;
	case HYGIENE_DEFER:
	case HYGIENE_REJECT:
		j->reply = xstrdup(j->r.reply != NULL ? j->r.reply : j->r.action == HYGIENE_DEFER
		    ? "451 4.7.1 Message deferred by policy" : "550 5.7.1 Message rejected by policy");
		break;
	}
	free(data);
}

static void
notify_queued(void *arg, int error)
{
	char *id = arg;
	if (error != 0)
		log_error("hygiene_notify_failed", "id=%s error=%s", id, strerror(error));
	free(id);
}

/* DLP notify: a short plain-text message to r.notify_to (never scanned). */
static void
scan_notify(struct scan_job *j)
{
	struct server *srv = j->h->srv;
	if (j->r.notify_to == NULL || srv->queue == NULL || strchr(j->r.notify_to, '@') == NULL ||
	    strpbrk(j->r.notify_to, "\r\n<>") != NULL)
		return;
	char *id = xmalloc(ID_LEN + 1);
	id_generate(id);
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	struct buf msg = BUF_INIT;
	buf_appendf(&msg, "From: postmaster@%s\r\nTo: <%s>\r\nDate: %s\r\n"
	    "Subject: Message %s held by data loss prevention\r\nMessage-ID: <%s@%s>\r\n"
	    "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n", j->h->cfg->hostname,
	    j->r.notify_to, date, j->env.id, id, j->h->cfg->hostname);
	buf_appendf(&msg, "Message %s from <%s> (tenant %s) matched the data loss prevention "
	    "policy.\r\n\r\n", j->env.id, j->env.sender != NULL ? j->env.sender : "",
	    j->env.tenant != NULL ? j->env.tenant : "-");
	if (j->r.notify_text != NULL) {
		for (const char *p = j->r.notify_text; *p != '\0'; p++) {
			if (*p == '\n')
				buf_append(&msg, "\r\n", 2);
			else if (*p != '\r')
				buf_append_char(&msg, *p);
		}
		buf_append(&msg, "\r\n", 2);
	}
	buf_appendf(&msg, "Action: %s\r\nReasons: %s\r\n", hygiene_action_name(j->r.action),
	    buf_cstr(&j->r.reasons));
	struct queue_rcpt rcpt = { .addr = j->r.notify_to, .notify = QUEUE_NOTIFY_NEVER };
	struct queue_envelope env = {
		.direction = QUEUE_OUTBOUND, .tenant = j->env.tenant, .sender = "",
		.client_addr = "local", .client_helo = j->h->cfg->hostname, .arrival = now,
		.rcpts = &rcpt, .nrcpts = 1,
	};
	memcpy(env.id, id, sizeof(env.id));
	queue_inject(srv->queue, &env, msg.data, msg.len, notify_queued, id);
	buf_free(&msg);
}

static double
scan_ms(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
scan_job_free(struct scan_job *j)
{
	policy_release(&j->pol);
	queue_envelope_free(&j->env);
	for (size_t i = 0; i < j->ndomains; i++)
		free(j->domains[i]);
	free(j->domains);
	hygiene_result_free(&j->r);
	free(j->reply);
	free(j->subject);
	free(j->from);
	free(j);
}

static void
scan_done(void *arg)
{
	struct scan_job *j = arg;
	j->h->scans_running--;
	struct hygiene_verdict v;
	memset(&v, 0, sizeof(v));
	v.action = j->r.action;
	v.reply = j->reply;
	v.reasons = buf_cstr(&j->r.reasons);
	v.score = j->r.score;
	v.flags = j->r.require_tls ? QUEUE_F_REQUIRE_TLS : 0;
	v.error = j->error;
	log_info("hygiene", "id=%s tenant=%s direction=%s action=%s score=%.1f reasons=%s ms=%.1f",
	    j->env.id, log_str(j->env.tenant), queue_direction_name(j->env.direction),
	    hygiene_action_name(v.action), v.score, log_str(v.reasons), scan_ms(&j->t0));
	if (j->error == 0)
		scan_notify(j);
	j->cb(j->arg, &v);
	scan_job_free(j);
}

/* The tenant's domains, for impersonation and DLP (loop thread: the store). */
static void
scan_snapshot_domains(struct scan_job *j)
{
	struct server *srv = j->h->srv;
	struct store_domain *list = NULL;
	size_t n = 0;
	if (j->env.tenant == NULL || srv->store == NULL ||
	    store_domain_list(srv->store, j->env.tenant, &list, &n) < 0)
		return;
	j->domains = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		j->domains[i] = xstrdup(list[i].domain);
	j->ndomains = n;
	store_domains_free(list, n);
}

void
hygiene_scan(struct hygiene *h, const struct queue_envelope *env, int tls,
    struct queue_writer *w, hygiene_verdict_cb *cb, void *arg)
{
	struct scan_job *j = xcalloc(1, sizeof(*j));
	clock_gettime(CLOCK_MONOTONIC, &j->t0);
	j->h = h;
	j->quarantine = h->srv->quarantine;
	j->pol = policy_get(h, env->tenant);
	queue_envelope_copy(&j->env, env);
	j->tls = tls;
	j->w = w;
	j->cb = cb;
	j->arg = arg;
	scan_snapshot_domains(j);
	h->scans_running++;
	worker_submit(h->pool, scan_work, scan_done, j);
}
