/*
 * NAME
 *	alert - continuity alerts (email, webhook) and IMAP APPEND to the primary
 * SYNOPSIS
 *	alert_send(srv, "ops@example.net", "https://hooks.example.net/x", &ev);
 *	alert_imap_append(srv, url, user, password, raw, len, on_appended, job);
 *	alert_cancel_all(srv);
 * DESCRIPTION
 *	Email: alert_compose() builds a short RFC 5322 text/plain message and
 *	alert_send() queues it once for every valid address (at most
 *	ALERT_MAX_RCPTS) with the null sender, so that an alert that cannot be
 *	delivered bounces nowhere, and QUEUE_F_DIRECT_MX, so that the
 *	scheduler sends it by MX or smarthost and never through the tenant's
 *	route, which is likely the server that is down.
 *
 *	Webhook: the event as a JSON object, POSTed by libcurl on the worker
 *	pool.  A try that gets no 2xx is retried from the loop thread by a
 *	timer ALERT_HOOK_RETRY_SECS later, ALERT_HOOK_TRIES tries in all;
 *	no worker thread ever sleeps.
 *
 *	  QUEUED ─worker─▶ POSTED ─2xx─▶ done ("alert_webhook ok")
 *	                     │
 *	                     └─else─▶ WAITING (timer) ─▶ QUEUED ... at most 3 tries
 *	                                                  then "alert_webhook failed"
 *
 *	IMAP APPEND: one libcurl upload on the worker pool; the callback runs
 *	on the loop thread.
 *
 *	Webhooks and appends in flight are on one list per process (loop
 *	thread only), so that alert_cancel_all() can drop them at shutdown:
 *	a webhook waiting for its retry timer is freed at once, a job on the
 *	worker pool is marked cancelled (no retry, no callback) and freed by
 *	its done function, which worker_pool_free() runs.  Like smtp_client's
 *	session list it is the only module state, as nothing else owns a
 *	fire-and-forget job between callbacks.
 * DIAGNOSTICS
 *	alert_email, alert_webhook, alert_imap_append log lines; URLs are logged
 *	without their path and query (they often carry a secret).
 */
#include "continuity/alert.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "lib/worker.h"
#include "queue/queue.h"
#include "server.h"
#include "store/store.h"

#define ALERT_MAX_RCPTS         20
#define ALERT_ADDR_MAX          320
#define ALERT_VALUE_CAP         900       /* bytes of one field in the email */
#define ALERT_HOOK_TIMEOUT      10        /* seconds per webhook try */
#define ALERT_HOOK_TRIES        3
#define ALERT_HOOK_RETRY_SECS   5
#define ALERT_APPEND_TIMEOUT    120       /* seconds for one IMAP APPEND */
#define ALERT_ORIGIN_MAX        300

enum alert_job_kind { AJ_HOOK, AJ_APPEND };

struct alert_job {
	struct alert_job *prev, *next;   /* alert_jobs */
	enum alert_job_kind kind;
	struct server *srv;
	int cancelled;                   /* alert_cancel_all(): no retry, no callback */
	char *url;                       /* without "?insecure=1" */
	char origin[ALERT_ORIGIN_MAX];   /* scheme://host[:port] for logs */

	/* AJ_HOOK */
	char *json;
	char *tenant, *event;
	int tries;
	struct event *timer;

	/* AJ_APPEND */
	char *user, *password;
	char *data;
	size_t len, pos;
	int insecure;
	alert_append_cb *cb;
	void *cb_arg;

	/* outcome of the last try, written on the worker */
	int ok;
	long code;
	char why[CURL_ERROR_SIZE + 64];
};

static struct alert_job *alert_jobs;
static pthread_once_t alert_curl_once = PTHREAD_ONCE_INIT;
static int alert_curl_ready;

static void
alert_curl_init(void)
{
	alert_curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static int
alert_curl(void)
{
	pthread_once(&alert_curl_once, alert_curl_init);
	return alert_curl_ready;
}

/* ------------------------------------------------------------ helpers */

static const char *
alert_or(const char *s, const char *dflt)
{
	return s != NULL && s[0] != '\0' ? s : dflt;
}

static const char *
alert_hostname(const struct server *srv)
{
	return alert_or(srv->cfg->hostname, "localhost");
}

/* "https://hooks.example.net" of a URL: what logs may show. */
static void
alert_origin(const char *url, char *out, size_t size)
{
	const char *p = strstr(url, "://");
	size_t n = p != NULL ? (size_t)(p + 3 - url) + strcspn(p + 3, "/?#") : strcspn(url, "/?#");
	/* No user info in logs either. */
	const char *at = memchr(url, '@', n);
	if (p != NULL && at != NULL) {
		snprintf(out, size, "%.*s%.*s", (int)(p + 3 - url), url, (int)(n - (size_t)(at + 1 - url)),
		    at + 1);
		return;
	}
	snprintf(out, size, "%.*s", (int)n, url);
}

/* Appends s as one line's worth of text: no CR/LF/controls, capped. */
static void
alert_append_text(struct buf *b, const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (n++ >= ALERT_VALUE_CAP) {
			buf_append_str(b, "...");
			return;
		}
		buf_append_char(b, *p < 0x20 || *p == 0x7f ? ' ' : (char)*p);
	}
}

/* The same for a header: printable ASCII only. */
static void
alert_append_ascii(struct buf *b, const char *s, size_t cap)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && n < cap; p++, n++)
		buf_append_char(b, *p < 0x20 || *p >= 0x7f ? '?' : (char)*p);
}

static const char *
alert_event_title(const char *event)
{
	static const struct { const char *event, *title; } titles[] = {
		{ "continuity.started", "continuity started" },
		{ "continuity.failback", "failback started" },
		{ "continuity.ended", "continuity ended" },
		{ "route.down", "primary server down" },
		{ "route.up", "primary server up" },
		{ "drill.started", "continuity drill started" },
		{ "drill.ended", "continuity drill ended" },
	};
	for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++) {
		if (strcmp(titles[i].event, event) == 0)
			return titles[i].title;
	}
	return event;
}

/* What the people who get the alert should do now. */
static void
alert_next_steps(const struct server *srv, const struct alert_event *ev, struct buf *b)
{
	const struct config *cfg = srv->cfg;
	const char *imap = alert_or(cfg->imap_listen, alert_or(cfg->imap_tls_listen, "(none)"));
	const char *sub = alert_or(cfg->submission_listen, "(none)");
	const char *e = ev->event;
	if (strcmp(e, "continuity.started") == 0) {
		buf_appendf(b, "Users can now sign in to IMAP at %s and send through SMTP\r\n"
		    "submission at %s with their usual address and password.  Mail\r\n"
		    "keeps arriving and is held for the primary server.\r\n", imap, sub);
	} else if (strcmp(e, "continuity.failback") == 0) {
		buf_append_str(b, "The primary server is back: the mail held during the outage is\r\n"
		    "being delivered to it.  Follow it with: mailark continuity report ");
		alert_append_ascii(b, ev->tenant, 200);
		buf_append_str(b, "\r\n");
	} else if (strcmp(e, "continuity.ended") == 0) {
		buf_append_str(b, "Failback is complete: users should go back to their usual\r\n"
		    "server.  The outage report: mailark continuity report ");
		alert_append_ascii(b, ev->tenant, 200);
		buf_append_str(b, "\r\n");
	} else if (strcmp(e, "route.down") == 0) {
		buf_append_str(b, "mailark cannot reach the primary server; mail for it is queued.\r\n"
		    "If continuity does not start by itself (mode manual), start it\r\n"
		    "with: mailark continuity start ");
		alert_append_ascii(b, ev->tenant, 200);
		buf_append_str(b, "\r\n");
	} else if (strcmp(e, "route.up") == 0) {
		buf_append_str(b, "The primary server answers again.\r\n");
	} else if (strcmp(e, "drill.started") == 0) {
		buf_appendf(b, "The drill's users can sign in to IMAP at %s and send through\r\n"
		    "submission at %s; delivery to the primary server goes on as usual.\r\n",
		    imap, sub);
	} else if (strcmp(e, "drill.ended") == 0) {
		buf_append_str(b, "The drill report: mailark continuity drill report ");
		alert_append_ascii(b, ev->tenant, 200);
		buf_append_str(b, "\r\n");
	}
}

/*
 * The alert email (CRLF line ends).  id makes the Message-ID; now is the
 * event's time.  Returns 1 when the body has 8-bit text (UTF-8), else 0.
 */
static int
alert_compose(const struct server *srv, const struct alert_event *ev, const char *id,
    time_t now, const char *to, struct buf *m)
{
	const char *host = alert_hostname(srv);
	struct tm tm;
	char date[64], stamp[64];
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S UTC", &tm);
	buf_appendf(m, "From: \"mailark\" <postmaster@%s>\r\n", host);
	buf_append_str(m, "To: ");
	alert_append_ascii(m, to, 8000);
	buf_append_str(m, "\r\nSubject: [mailark] ");
	alert_append_ascii(m, alert_or(ev->tenant, "-"), 200);
	buf_appendf(m, ": %s\r\n", alert_event_title(alert_or(ev->event, "event")));
	buf_appendf(m, "Date: %s\r\n", date);
	buf_appendf(m, "Message-ID: <%s.alert@%s>\r\n", id, host);
	buf_append_str(m, "Auto-Submitted: auto-generated\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "X-Mailark-Event: ");
	alert_append_ascii(m, alert_or(ev->event, "-"), 100);
	buf_append_str(m, "\r\n\r\n");
	size_t body = m->len;
	buf_append_str(m, "Event:   ");
	alert_append_text(m, alert_or(ev->event, "-"));
	buf_append_str(m, "\r\nTenant:  ");
	alert_append_text(m, alert_or(ev->tenant, "-"));
	buf_append_str(m, "\r\nRoute:   ");
	alert_append_text(m, alert_or(ev->route, "-"));
	buf_append_str(m, "\r\nBy:      ");
	alert_append_text(m, alert_or(ev->actor, "-"));
	buf_appendf(m, "\r\nTime:    %s\r\n", stamp);
	if (ev->outage_id > 0)
		buf_appendf(m, "Outage:  %lld\r\n", ev->outage_id);
	if (ev->detail != NULL && ev->detail[0] != '\0') {
		buf_append_str(m, "Detail:  ");
		alert_append_text(m, ev->detail);
		buf_append_str(m, "\r\n");
	}
	buf_append_str(m, "\r\n");
	alert_next_steps(srv, ev, m);
	buf_append_str(m, "\r\n-- \r\nmailark on ");
	alert_append_ascii(m, host, 200);
	buf_append_str(m, "\r\n");
	for (size_t i = body; i < m->len; i++) {
		if ((unsigned char)m->data[i] >= 0x80)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------- email */

struct alert_mail {
	char id[ID_LEN + 1];
	char *tenant;
	char *event;
};

static void
alert_mail_queued(void *arg, int error)
{
	struct alert_mail *am = arg;
	if (error != 0)
		log_warn("alert_failed", "kind=email id=%s tenant=%s event=%s error=%s", am->id,
		    log_str(am->tenant), log_str(am->event), log_str(strerror(error)));
	else
		log_info("alert_email", "id=%s tenant=%s event=%s", am->id, log_str(am->tenant),
		    log_str(am->event));
	free(am->tenant);
	free(am->event);
	free(am);
}

/* Splits the comma list into up to ALERT_MAX_RCPTS valid addresses. */
static size_t
alert_parse_addresses(const struct alert_event *ev, const char *list,
    char addrs[][ALERT_ADDR_MAX], struct buf *to)
{
	size_t n = 0;
	const char *p = list;
	while (*p != '\0') {
		size_t len = strcspn(p, ",;");
		char a[ALERT_ADDR_MAX];
		if (len < sizeof(a)) {
			memcpy(a, p, len);
			a[len] = '\0';
			str_trim(a);
		} else {
			snprintf(a, sizeof(a), "(too long)");
		}
		p += len;
		if (*p != '\0')
			p++;
		if (a[0] == '\0')
			continue;
		if (!store_address_valid(a) || len >= ALERT_ADDR_MAX) {
			log_warn("alert_bad_address", "tenant=%s address=%s", log_str(ev->tenant),
			    log_str(a));
			continue;
		}
		if (n == ALERT_MAX_RCPTS) {
			log_warn("alert_too_many_addresses", "tenant=%s max=%d skipped=%s",
			    log_str(ev->tenant), ALERT_MAX_RCPTS, log_str(a));
			continue;
		}
		snprintf(addrs[n], ALERT_ADDR_MAX, "%s", a);
		buf_appendf(to, "%s%s", n > 0 ? ", " : "", a);
		n++;
	}
	return n;
}

static void
alert_send_email(struct server *srv, const char *list, const struct alert_event *ev)
{
	char addrs[ALERT_MAX_RCPTS][ALERT_ADDR_MAX];
	struct queue_rcpt rcpts[ALERT_MAX_RCPTS];
	struct buf to = BUF_INIT, msg = BUF_INIT;
	size_t n = alert_parse_addresses(ev, list, addrs, &to);
	if (n == 0 || srv->queue == NULL) {
		buf_free(&to);
		return;
	}
	memset(rcpts, 0, sizeof(rcpts));
	for (size_t i = 0; i < n; i++) {
		rcpts[i].addr = addrs[i];
		rcpts[i].notify = QUEUE_NOTIFY_NEVER;
	}
	struct alert_mail *am = xcalloc(1, sizeof(*am));
	id_generate(am->id);
	am->tenant = xstrdup(alert_or(ev->tenant, "-"));
	am->event = xstrdup(alert_or(ev->event, "-"));
	time_t now = time(NULL);
	int eightbit = alert_compose(srv, ev, am->id, now, buf_cstr(&to), &msg);
	struct queue_envelope env = {
		.direction = QUEUE_OUTBOUND, .tenant = (char *)ev->tenant, .sender = "",
		.body_8bit = eightbit, .client_addr = "local",
		.client_helo = (char *)alert_hostname(srv), .flags = QUEUE_F_DIRECT_MX,
		.arrival = now, .rcpts = rcpts, .nrcpts = n,
	};
	memcpy(env.id, am->id, sizeof(env.id));
	log_debug("alert_email_queue", "id=%s tenant=%s event=%s rcpts=%zu", am->id,
	    log_str(am->tenant), log_str(am->event), n);
	queue_inject(srv->queue, &env, msg.data, msg.len, alert_mail_queued, am);
	buf_free(&to);
	buf_free(&msg);
}

/* ------------------------------------------------------------ jobs */

static void
alert_job_link(struct alert_job *j)
{
	j->prev = NULL;
	j->next = alert_jobs;
	if (alert_jobs != NULL)
		alert_jobs->prev = j;
	alert_jobs = j;
}

static void
alert_job_unlink(struct alert_job *j)
{
	if (j->prev != NULL)
		j->prev->next = j->next;
	else if (alert_jobs == j)
		alert_jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	j->prev = j->next = NULL;
}

static void
alert_job_free(struct alert_job *j)
{
	alert_job_unlink(j);
	if (j->timer != NULL)
		event_free(j->timer);
	free(j->url);
	free(j->json);
	free(j->tenant);
	free(j->event);
	free(j->user);
	if (j->password != NULL) {
		explicit_bzero(j->password, strlen(j->password));
		free(j->password);
	}
	free(j->data);
	free(j);
}

static size_t
alert_discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;
}

/* Worker thread: the outcome of a finished transfer into j->ok / j->why. */
static void
alert_curl_outcome(struct alert_job *j, CURL *h, CURLcode rc, const char *errbuf)
{
	if (rc != CURLE_OK) {
		snprintf(j->why, sizeof(j->why), "%s", errbuf[0] != '\0' ? errbuf :
		    curl_easy_strerror(rc));
		j->ok = 0;
		return;
	}
	j->code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &j->code);
	if (j->kind == AJ_HOOK && (j->code < 200 || j->code > 299)) {
		snprintf(j->why, sizeof(j->why), "HTTP status %ld", j->code);
		j->ok = 0;
		return;
	}
	j->ok = 1;
	j->why[0] = '\0';
}

/* ----------------------------------------------------------- webhook */

static void alert_hook_done(void *arg);

/* Worker thread: one POST. */
static void
alert_hook_work(void *arg)
{
	struct alert_job *j = arg;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = alert_curl() ? curl_easy_init() : NULL;
	if (h == NULL) {
		snprintf(j->why, sizeof(j->why), "libcurl is not available");
		j->ok = 0;
		return;
	}
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	struct curl_slist *more = hdrs != NULL ? curl_slist_append(hdrs, "Expect:") : NULL;
	if (more != NULL)
		hdrs = more;
	curl_easy_setopt(h, CURLOPT_URL, j->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)ALERT_HOOK_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mailark");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->json);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(j->json));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, alert_discard);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode rc = hdrs != NULL ? curl_easy_perform(h) : CURLE_OUT_OF_MEMORY;
	alert_curl_outcome(j, h, rc, errbuf);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
}

static void
alert_hook_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct alert_job *j = arg;
	(void)fd;
	(void)what;
	worker_submit(j->srv->workers, alert_hook_work, alert_hook_done, j);
}

/* Loop thread: after a try. */
static void
alert_hook_done(void *arg)
{
	struct alert_job *j = arg;
	j->tries++;
	if (j->ok) {
		log_info("alert_webhook", "result=ok tenant=%s event=%s url=%s status=%ld tries=%d",
		    log_str(j->tenant), log_str(j->event), log_str(j->origin), j->code, j->tries);
		alert_job_free(j);
		return;
	}
	if (j->tries >= ALERT_HOOK_TRIES || j->srv->shutting_down || j->cancelled) {
		log_warn("alert_webhook", "result=failed tenant=%s event=%s url=%s tries=%d why=%s",
		    log_str(j->tenant), log_str(j->event), log_str(j->origin), j->tries,
		    log_str(j->why));
		alert_job_free(j);
		return;
	}
	log_info("alert_webhook", "result=retry tenant=%s event=%s url=%s tries=%d why=%s",
	    log_str(j->tenant), log_str(j->event), log_str(j->origin), j->tries, log_str(j->why));
	struct timeval tv = { ALERT_HOOK_RETRY_SECS, 0 };
	if (j->timer == NULL)
		j->timer = evtimer_new(j->srv->base, alert_hook_retry_cb, j);
	if (j->timer == NULL || evtimer_add(j->timer, &tv) < 0) {
		log_warn("alert_webhook", "result=failed tenant=%s event=%s url=%s why=%s",
		    log_str(j->tenant), log_str(j->event), log_str(j->origin),
		    log_str("cannot arm the retry timer"));
		alert_job_free(j);
		return;
	}
}

static json_t *
alert_json_str(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static char *
alert_event_json(const struct alert_event *ev, time_t now)
{
	struct tm tm;
	char at[32];
	gmtime_r(&now, &tm);
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *o = json_object();
	json_object_set_new(o, "event", alert_json_str(ev->event));
	json_object_set_new(o, "tenant", alert_json_str(ev->tenant));
	json_object_set_new(o, "route", alert_json_str(ev->route));
	json_object_set_new(o, "actor", alert_json_str(ev->actor));
	json_object_set_new(o, "detail", alert_json_str(ev->detail));
	json_object_set_new(o, "outage_id", ev->outage_id > 0 ? json_integer(ev->outage_id) :
	    json_null());
	json_object_set_new(o, "at", json_string(at));
	/* json_string() refuses invalid UTF-8: such a field is null, never a bad body. */
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static void
alert_send_webhook(struct server *srv, const char *url, const struct alert_event *ev)
{
	char origin[ALERT_ORIGIN_MAX];
	alert_origin(url, origin, sizeof(origin));
	if (str_prefix_ci(url, "http://") == 0 && str_prefix_ci(url, "https://") == 0) {
		log_warn("alert_webhook", "result=failed tenant=%s url=%s why=%s",
		    log_str(ev->tenant), log_str(origin), log_str("only http and https URLs"));
		return;
	}
	char *json = alert_event_json(ev, time(NULL));
	if (json == NULL) {
		log_warn("alert_webhook", "result=failed tenant=%s url=%s why=%s",
		    log_str(ev->tenant), log_str(origin), log_str("cannot encode the event"));
		return;
	}
	struct alert_job *j = xcalloc(1, sizeof(*j));
	j->kind = AJ_HOOK;
	j->srv = srv;
	j->url = xstrdup(url);
	snprintf(j->origin, sizeof(j->origin), "%s", origin);
	j->json = json;
	j->tenant = xstrdup(alert_or(ev->tenant, "-"));
	j->event = xstrdup(alert_or(ev->event, "-"));
	alert_job_link(j);
	worker_submit(srv->workers, alert_hook_work, alert_hook_done, j);
}

void
alert_send(struct server *srv, const char *addresses, const char *webhook,
    const struct alert_event *ev)
{
	if (srv == NULL || ev == NULL)
		return;
	log_debug("alert_send", "tenant=%s event=%s", log_str(ev->tenant), log_str(ev->event));
	if (addresses != NULL && addresses[0] != '\0')
		alert_send_email(srv, addresses, ev);
	if (webhook != NULL && webhook[0] != '\0' && srv->workers != NULL)
		alert_send_webhook(srv, webhook, ev);
}

/* -------------------------------------------------------- IMAP APPEND */

static size_t
alert_append_read(char *out, size_t size, size_t nmemb, void *arg)
{
	struct alert_job *j = arg;
	size_t want = size * nmemb, left = j->len - j->pos;
	size_t n = want < left ? want : left;
	memcpy(out, j->data + j->pos, n);
	j->pos += n;
	return n;
}

/* Worker thread: one APPEND. */
static void
alert_append_work(void *arg)
{
	struct alert_job *j = arg;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = alert_curl() ? curl_easy_init() : NULL;
	if (h == NULL) {
		snprintf(j->why, sizeof(j->why), "libcurl is not available");
		j->ok = 0;
		return;
	}
	curl_easy_setopt(h, CURLOPT_URL, j->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "imap,imaps");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)ALERT_APPEND_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_USERNAME, j->user);
	curl_easy_setopt(h, CURLOPT_PASSWORD, j->password);
	curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	if (j->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, alert_append_read);
	curl_easy_setopt(h, CURLOPT_READDATA, j);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)j->len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, alert_discard);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode rc = curl_easy_perform(h);
	alert_curl_outcome(j, h, rc, errbuf);
	curl_easy_cleanup(h);
}

/* Loop thread: the APPEND is over. */
static void
alert_append_done(void *arg)
{
	struct alert_job *j = arg;
	if (j->ok)
		log_info("alert_imap_append", "result=ok url=%s size=%zu", log_str(j->origin), j->len);
	else
		log_warn("alert_imap_append", "result=failed url=%s why=%s", log_str(j->origin),
		    log_str(j->why));
	if (!j->cancelled)
		j->cb(j->cb_arg, j->ok, j->ok ? NULL : j->why);
	alert_job_free(j);
}

/*
 * Checks an imap[s]:// URL and takes its one supported option off: 0 with
 * *insecure_r, or -1 with a static reason.  url is changed in place.
 */
static int
alert_imap_url(char *url, int *insecure_r, const char **why_r)
{
	*insecure_r = 0;
	if (str_prefix_ci(url, "imap://") == 0 && str_prefix_ci(url, "imaps://") == 0) {
		*why_r = "only imap:// and imaps:// URLs";
		return -1;
	}
	char *q = strchr(url, '?');
	if (q == NULL)
		return 0;
	if (strcmp(q + 1, "insecure=1") != 0) {
		*why_r = "unsupported URL option (only ?insecure=1)";
		return -1;
	}
	*q = '\0';
	*insecure_r = 1;
	return 0;
}

void
alert_imap_append(struct server *srv, const char *url, const char *user,
    const char *password, const void *raw, size_t len, alert_append_cb *cb, void *arg)
{
	struct alert_job *j = xcalloc(1, sizeof(*j));
	const char *why = NULL;
	j->kind = AJ_APPEND;
	j->srv = srv;
	j->url = xstrdup(url != NULL ? url : "");
	alert_origin(j->url, j->origin, sizeof(j->origin));
	j->user = xstrdup(user != NULL ? user : "");
	j->password = xstrdup(password != NULL ? password : "");
	j->data = len > 0 ? xmemdup(raw, len) : xcalloc(1, 1);
	j->len = len;
	j->cb = cb;
	j->cb_arg = arg;
	if (alert_imap_url(j->url, &j->insecure, &why) < 0) {
		log_warn("alert_imap_append", "result=failed url=%s why=%s", log_str(j->origin),
		    log_str(why));
		cb(arg, 0, why);
		alert_job_free(j);
		return;
	}
	alert_job_link(j);
	worker_submit(srv->workers, alert_append_work, alert_append_done, j);
}

void
alert_cancel_all(struct server *srv)
{
	struct alert_job *j = alert_jobs, *next;
	for (; j != NULL; j = next) {
		next = j->next;
		if (j->srv != srv)
			continue;
		if (j->kind == AJ_HOOK && j->timer != NULL &&
		    evtimer_pending(j->timer, NULL)) {
			/* Waiting for its retry timer: no try is running. */
			log_info("alert_webhook", "result=cancelled tenant=%s event=%s url=%s tries=%d",
			    log_str(j->tenant), log_str(j->event), log_str(j->origin), j->tries);
			alert_job_free(j);
		} else {
			j->cancelled = 1;   /* on the worker: its done callback frees it */
		}
	}
}
