/*
 * test_alert — continuity alerts against real peers: the alert email as
 * queued (envelope, headers, body, address filtering, header injection),
 * and webhooks POSTed to a small HTTP server on a thread of this test (JSON
 * body, headers, retries after 5xx, cancellation while waiting to retry).
 * Each test gets a fresh data directory, event base, worker pool and queue.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "config/config.h"
#include "continuity/alert.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/worker.h"
#include "queue/queue.h"
#include "server.h"
#include "unit_tmp.h"

/* ------------------------------------------------------------ fixture */

struct fixture {
	struct server srv;
	char dir[256];
};

static int
setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	char *err = NULL;
	assert_int_equal(unit_tmpdir(fx->dir, sizeof(fx->dir), "alert"), 0);
	assert_int_equal(config_load(NULL, &fx->srv.cfg, &err), 0);
	free(fx->srv.cfg->data_dir);
	fx->srv.cfg->data_dir = xstrdup(fx->dir);
	free(fx->srv.cfg->hostname);
	fx->srv.cfg->hostname = xstrdup("gw.example.net");
	fx->srv.base = event_base_new();
	fx->srv.workers = worker_pool_new(fx->srv.base, 2);
	assert_int_equal(queue_open(&fx->srv, &fx->srv.queue, &err), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	struct buf cmd = BUF_INIT;
	alert_cancel_all(&fx->srv);
	worker_pool_free(&fx->srv.workers);
	queue_close(&fx->srv.queue);
	event_base_free(fx->srv.base);
	config_free(&fx->srv.cfg);
	buf_appendf(&cmd, "rm -rf '%s'", fx->dir);
	assert_int_equal(system(buf_cstr(&cmd)), 0);
	buf_free(&cmd);
	free(fx);
	return 0;
}

static double
now_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the loop until done(arg) or the timeout; returns done(arg). */
static int
run_until(struct fixture *fx, int (*done)(void *), void *arg, double timeout)
{
	double end = now_secs() + timeout;
	while (!done(arg) && now_secs() < end) {
		struct timeval tv = { 0, 50 * 1000 };
		event_base_loopexit(fx->srv.base, &tv);
		event_base_dispatch(fx->srv.base);
	}
	return done(arg);
}

/* ------------------------------------------------------------- email */

static int
queue_nonempty(void *arg)
{
	struct fixture *fx = arg;
	return queue_count(fx->srv.queue) > 0;
}

static void
first_entry(void *arg, struct queue_entry *e)
{
	struct queue_entry **out = arg;
	if (*out == NULL)
		*out = e;
}

static struct queue_entry *
the_entry(struct fixture *fx, struct buf *body)
{
	struct queue_entry *e = NULL;
	assert_true(run_until(fx, queue_nonempty, fx, 10));
	assert_int_equal(queue_count(fx->srv.queue), 1);
	queue_foreach(fx->srv.queue, first_entry, &e);
	assert_non_null(e);
	int fd = queue_entry_open_body(fx->srv.queue, e);
	assert_true(fd >= 0);
	char chunk[4096];
	ssize_t n;
	/* The file goes on with the envelope: the message is body_size bytes. */
	while (body->len < e->body_size && (n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(body, chunk, (size_t)n);
	buf_truncate(body, (size_t)e->body_size);
	close(fd);
	return e;
}

static void
test_email_envelope_and_message(void **state)
{
	struct fixture *fx = *state;
	struct alert_event ev = {
		.tenant = "acme", .event = "continuity.started", .route = "127.0.0.1:2525",
		.actor = "auto", .detail = "route down\r\nBcc: victim@example.org", .outage_id = 7,
	};
	alert_send(&fx->srv, " ops@example.net,not an address,,pager@example.org ", NULL, &ev);
	struct buf body = BUF_INIT;
	struct queue_entry *e = the_entry(fx, &body);
	const char *m = buf_cstr(&body);

	assert_int_equal(e->env.direction, QUEUE_OUTBOUND);
	assert_string_equal(e->env.tenant, "acme");
	assert_string_equal(e->env.sender, "");
	assert_true(e->env.flags & QUEUE_F_DIRECT_MX);
	assert_string_equal(e->env.client_addr, "local");
	assert_int_equal(e->env.nrcpts, 2);
	assert_string_equal(e->env.rcpts[0].addr, "ops@example.net");
	assert_string_equal(e->env.rcpts[1].addr, "pager@example.org");

	assert_non_null(strstr(m, "From: \"mailark\" <postmaster@gw.example.net>\r\n"));
	assert_non_null(strstr(m, "To: ops@example.net, pager@example.org\r\n"));
	assert_non_null(strstr(m, "Subject: [mailark] acme: continuity started\r\n"));
	assert_non_null(strstr(m, "Auto-Submitted: auto-generated\r\n"));
	assert_non_null(strstr(m, "Content-Type: text/plain; charset=utf-8\r\n"));
	assert_non_null(strstr(m, "\r\nDate: "));
	char mid[64];
	snprintf(mid, sizeof(mid), "Message-ID: <%s.alert@gw.example.net>\r\n", e->env.id);
	assert_non_null(strstr(m, mid));
	assert_non_null(strstr(m, "Route:   127.0.0.1:2525\r\n"));
	assert_non_null(strstr(m, "Outage:  7\r\n"));
	assert_non_null(strstr(m, "sign in to IMAP at 127.0.0.1:1143"));
	/* The detail's CRLF cannot start a header (or any line) of its own. */
	assert_null(strstr(m, "\nBcc:"));
	assert_non_null(strstr(m, "Detail:  route down  Bcc: victim@example.org\r\n"));
	/* CRLF line ends only. */
	for (size_t i = 0; i < body.len; i++) {
		if (m[i] == '\n')
			assert_true(i > 0 && m[i - 1] == '\r');
		if (m[i] == '\r')
			assert_true(i + 1 < body.len && m[i + 1] == '\n');
	}
	buf_free(&body);
}

static void
test_email_at_most_20_recipients(void **state)
{
	struct fixture *fx = *state;
	struct buf list = BUF_INIT;
	for (int i = 0; i < 25; i++)
		buf_appendf(&list, "%su%d@example.net", i > 0 ? "," : "", i);
	struct alert_event ev = { .tenant = "acme", .event = "route.down", .actor = "auto" };
	alert_send(&fx->srv, buf_cstr(&list), NULL, &ev);
	struct buf body = BUF_INIT;
	struct queue_entry *e = the_entry(fx, &body);
	assert_int_equal(e->env.nrcpts, 20);
	assert_string_equal(e->env.rcpts[19].addr, "u19@example.net");
	assert_non_null(strstr(buf_cstr(&body), "Subject: [mailark] acme: primary server down\r\n"));
	buf_free(&body);
	buf_free(&list);
}

static void
test_email_no_valid_address_queues_nothing(void **state)
{
	struct fixture *fx = *state;
	struct alert_event ev = { .tenant = "acme", .event = "route.up", .actor = "auto" };
	alert_send(&fx->srv, "nobody, @example.net", NULL, &ev);
	assert_false(run_until(fx, queue_nonempty, fx, 0.5));
}

/* ------------------------------------------------------ HTTP server */

#define HOOK_MAX 8

struct hook_server {
	int fd, port;
	int statuses[HOOK_MAX];       /* answer i-th request with statuses[i] */
	int nstatuses;
	pthread_t thread;
	pthread_mutex_t lock;
	char *requests[HOOK_MAX];     /* head + body of each request */
	double at[HOOK_MAX];          /* when it arrived */
	int nrequests;
	int stop;
};

/* Reads one request: headers, then Content-Length bytes. */
static char *
hook_read_request(int c)
{
	struct buf b = BUF_INIT;
	char chunk[2048];
	for (;;) {
		const char *end = b.len > 0 ? strstr(buf_cstr(&b), "\r\n\r\n") : NULL;
		if (end != NULL) {
			const char *cl = strcasestr(buf_cstr(&b), "Content-Length:");
			size_t want = (size_t)(end + 4 - b.data) + (cl != NULL ? strtoul(cl + 15,
			    NULL, 10) : 0);
			if (b.len >= want)
				break;
		}
		ssize_t n = read(c, chunk, sizeof(chunk));
		if (n <= 0)
			break;
		buf_append(&b, chunk, (size_t)n);
	}
	return buf_steal(&b);
}

static void *
hook_main(void *arg)
{
	struct hook_server *h = arg;
	for (;;) {
		int c = accept(h->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		pthread_mutex_lock(&h->lock);
		int stop = h->stop;
		pthread_mutex_unlock(&h->lock);
		if (stop) {
			close(c);
			return NULL;
		}
		char *req = hook_read_request(c);
		pthread_mutex_lock(&h->lock);
		int i = h->nrequests;
		int status = i < h->nstatuses ? h->statuses[i] : 200;
		if (i < HOOK_MAX) {
			h->requests[i] = req;
			h->at[i] = now_secs();
			h->nrequests++;
		} else {
			free(req);
		}
		pthread_mutex_unlock(&h->lock);
		char reply[128];
		int n = snprintf(reply, sizeof(reply), "HTTP/1.1 %d X\r\nContent-Length: 2\r\n"
		    "Connection: close\r\n\r\nok", status);
		ssize_t w = write(c, reply, (size_t)n);
		(void)w;
		close(c);
	}
}

static void
hook_start(struct hook_server *h, const int *statuses, int n)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->statuses, statuses, sizeof(int) * (size_t)n);
	h->nstatuses = n;
	pthread_mutex_init(&h->lock, NULL);
	h->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(h->fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(h->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(h->fd, 8), 0);
	socklen_t len = sizeof(sa);
	assert_int_equal(getsockname(h->fd, (struct sockaddr *)&sa, &len), 0);
	h->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&h->thread, NULL, hook_main, h), 0);
}

static void
hook_stop(struct hook_server *h)
{
	pthread_mutex_lock(&h->lock);
	h->stop = 1;
	pthread_mutex_unlock(&h->lock);
	/* Wake accept() with one last connection. */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)h->port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		shutdown(h->fd, SHUT_RDWR);
	close(c);
	pthread_join(h->thread, NULL);
	close(h->fd);
	for (int i = 0; i < h->nrequests; i++)
		free(h->requests[i]);
	pthread_mutex_destroy(&h->lock);
}

static int
hook_count(struct hook_server *h)
{
	pthread_mutex_lock(&h->lock);
	int n = h->nrequests;
	pthread_mutex_unlock(&h->lock);
	return n;
}

struct hook_wait {
	struct hook_server *h;
	int n;
};

static int
hook_has(void *arg)
{
	struct hook_wait *w = arg;
	return hook_count(w->h) >= w->n;
}

static void
test_webhook_posts_json(void **state)
{
	struct fixture *fx = *state;
	struct hook_server h;
	int ok[] = { 200 };
	hook_start(&h, ok, 1);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks/secret-token", h.port);
	struct alert_event ev = {
		.tenant = "acme", .event = "continuity.failback", .route = "10.0.0.5:25",
		.actor = "admin@acme.test", .detail = "primary back", .outage_id = 3,
	};
	alert_send(&fx->srv, NULL, url, &ev);
	struct hook_wait w = { &h, 1 };
	assert_true(run_until(fx, hook_has, &w, 15));
	const char *req = h.requests[0];
	assert_non_null(strstr(req, "POST /hooks/secret-token HTTP/1.1\r\n"));
	assert_non_null(strcasestr(req, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strcasestr(req, "\r\nUser-Agent: mailark\r\n"));
	json_error_t jerr;
	json_t *o = json_loads(strstr(req, "\r\n\r\n") + 4, 0, &jerr);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "event")), "continuity.failback");
	assert_string_equal(json_string_value(json_object_get(o, "tenant")), "acme");
	assert_string_equal(json_string_value(json_object_get(o, "route")), "10.0.0.5:25");
	assert_string_equal(json_string_value(json_object_get(o, "actor")), "admin@acme.test");
	assert_string_equal(json_string_value(json_object_get(o, "detail")), "primary back");
	assert_int_equal(json_integer_value(json_object_get(o, "outage_id")), 3);
	const char *at = json_string_value(json_object_get(o, "at"));
	assert_non_null(at);
	assert_int_equal(strlen(at), 20);
	assert_int_equal(at[10], 'T');
	assert_int_equal(at[19], 'Z');
	json_decref(o);
	/* The worker's done callback runs: nothing left pending. */
	worker_pool_free(&fx->srv.workers);
	fx->srv.workers = worker_pool_new(fx->srv.base, 2);
	assert_int_equal(hook_count(&h), 1);
	hook_stop(&h);
}

static void
test_webhook_retries_after_5xx(void **state)
{
	struct fixture *fx = *state;
	struct hook_server h;
	int statuses[] = { 500, 503, 200, 200 };
	hook_start(&h, statuses, 4);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", h.port);
	struct alert_event ev = { .tenant = "acme", .event = "route.down", .actor = "auto" };
	alert_send(&fx->srv, "", url, &ev);
	struct hook_wait w = { &h, 3 };
	assert_true(run_until(fx, hook_has, &w, 25));
	/* Tries 5 s apart, from a timer on the loop. */
	assert_true(h.at[1] - h.at[0] > 4.5);
	assert_true(h.at[2] - h.at[1] > 4.5);
	/* A 2xx ends it: no fourth POST. */
	w.n = 4;
	assert_false(run_until(fx, hook_has, &w, 6));
	hook_stop(&h);
}

static void
test_webhook_cancelled_while_waiting(void **state)
{
	struct fixture *fx = *state;
	struct hook_server h;
	int statuses[] = { 500, 500, 500 };
	hook_start(&h, statuses, 3);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", h.port);
	struct alert_event ev = { .tenant = "acme", .event = "route.down", .actor = "auto" };
	alert_send(&fx->srv, NULL, url, &ev);
	struct hook_wait w = { &h, 1 };
	assert_true(run_until(fx, hook_has, &w, 15));
	/* Let the done callback arm the retry timer, then cancel. */
	struct hook_wait never = { &h, 99 };
	run_until(fx, hook_has, &never, 0.5);
	alert_cancel_all(&fx->srv);
	w.n = 2;
	assert_false(run_until(fx, hook_has, &w, 6));
	hook_stop(&h);
}

static void
test_webhook_rejects_other_schemes(void **state)
{
	struct fixture *fx = *state;
	struct alert_event ev = { .tenant = "acme", .event = "route.down", .actor = "auto" };
	alert_send(&fx->srv, NULL, "file:///etc/passwd", &ev);
	alert_send(&fx->srv, NULL, "gopher://127.0.0.1:1/", &ev);
	assert_int_equal(worker_pending(fx->srv.workers), 0);
}

/* ------------------------------------------------------- IMAP APPEND */

struct append_result {
	int called, ok;
	char why[256];
};

static void
append_done(void *arg, int ok, const char *why)
{
	struct append_result *r = arg;
	r->called++;
	r->ok = ok;
	snprintf(r->why, sizeof(r->why), "%s", why != NULL ? why : "");
}

static int
append_called(void *arg)
{
	return ((struct append_result *)arg)->called > 0;
}

static void
test_imap_append_bad_urls(void **state)
{
	struct fixture *fx = *state;
	struct append_result r = { 0 };
	alert_imap_append(&fx->srv, "http://127.0.0.1/Sent", "u", "p", "x", 1, append_done, &r);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.ok, 0);
	memset(&r, 0, sizeof(r));
	alert_imap_append(&fx->srv, "imap://127.0.0.1/Sent?foo=1", "u", "p", "x", 1, append_done,
	    &r);
	assert_int_equal(r.called, 1);
	assert_non_null(strstr(r.why, "insecure=1"));
}

static void
test_imap_append_refused(void **state)
{
	struct fixture *fx = *state;
	struct append_result r = { 0 };
	/* A port nobody listens on (bound, never listening). */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t len = sizeof(sa);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	char url[128];
	snprintf(url, sizeof(url), "imap://127.0.0.1:%d/Sent?insecure=1", ntohs(sa.sin_port));
	const char msg[] = "Subject: x\r\n\r\nbody\r\n";
	alert_imap_append(&fx->srv, url, "u", "p", msg, sizeof(msg) - 1, append_done, &r);
	assert_int_equal(r.called, 0);
	assert_true(run_until(fx, append_called, &r, 15));
	assert_int_equal(r.ok, 0);
	assert_true(r.why[0] != '\0');
	close(fd);
}

/*
 * A real Dovecot (when installed and we may start it): APPEND over imaps
 * with a self-signed certificate (?insecure=1), the message lands in the
 * user's Maildir; a wrong password fails with a reason.
 */
static int
sh(const char *fmt, ...)
{
	struct buf cmd = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&cmd, fmt, ap);
	va_end(ap);
	int rc = system(buf_cstr(&cmd));
	buf_free(&cmd);
	return rc;
}

static int
dovecot_start(const char *dir, int *port_r)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	close(fd);
	*port_r = ntohs(sa.sin_port);
	if (sh("mkdir -p %s/dv/run %s/dv/state %s/dv/home %s/dv/Maildir && "
	    "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/dv/key.pem -out %s/dv/cert.pem "
	    "-days 2 -subj /CN=localhost >/dev/null 2>&1", dir, dir, dir, dir, dir, dir) != 0)
		return -1;
	struct buf conf = BUF_INIT;
	buf_appendf(&conf, "base_dir = %s/dv/run\nstate_dir = %s/dv/state\n"
	    "log_path = %s/dv/dovecot.log\nprotocols = imap\nlisten = 127.0.0.1\n"
	    "ssl = required\nssl_cert = <%s/dv/cert.pem\nssl_key = <%s/dv/key.pem\n"
	    "mail_location = maildir:%s/dv/Maildir\nfirst_valid_uid = 1\n"
	    "auth_mechanisms = plain login\n"
	    "passdb {\n  driver = static\n  args = password=s3cret\n}\n"
	    "userdb {\n  driver = static\n  args = uid=65534 gid=65534 home=%s/dv/home\n}\n"
	    "service imap-login {\n  chroot =\n  inet_listener imap {\n    port = 0\n  }\n"
	    "  inet_listener imaps {\n    port = %d\n  }\n}\nservice anvil {\n  chroot =\n}\n",
	    dir, dir, dir, dir, dir, dir, dir, *port_r);
	char path[512];
	snprintf(path, sizeof(path), "%s/dv/dovecot.conf", dir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fwrite(conf.data, 1, conf.len, f);
	fclose(f);
	buf_free(&conf);
	if (sh("chown -R 65534:65534 %s/dv/Maildir %s/dv/home && chmod 755 %s %s/dv && "
	    "dovecot -c %s", dir, dir, dir, dir, path) != 0)
		return -1;
	for (int i = 0; i < 100; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		int ok = connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(c);
		if (ok)
			return 0;
		usleep(50 * 1000);
	}
	return -1;
}

static void
test_imap_append_dovecot(void **state)
{
	struct fixture *fx = *state;
	if (access("/usr/sbin/dovecot", X_OK) != 0 || geteuid() != 0)
		skip();
	int port = 0;
	assert_int_equal(dovecot_start(fx->dir, &port), 0);
	char url[128];
	snprintf(url, sizeof(url), "imaps://127.0.0.1:%d/INBOX?insecure=1", port);
	const char msg[] = "From: a@acme.test\r\nTo: a@acme.test\r\n"
	    "Subject: sent-during-outage-4711\r\n\r\nhello\r\n";
	struct append_result r = { 0 };
	alert_imap_append(&fx->srv, url, "a@acme.test", "s3cret", msg, sizeof(msg) - 1,
	    append_done, &r);
	assert_true(run_until(fx, append_called, &r, 30));
	int found = sh("grep -rqs sent-during-outage-4711 %s/dv/Maildir", fx->dir) == 0;
	struct append_result bad = { 0 };
	alert_imap_append(&fx->srv, url, "a@acme.test", "wrong", msg, sizeof(msg) - 1,
	    append_done, &bad);
	assert_true(run_until(fx, append_called, &bad, 30));
	/* Without ?insecure=1 the self-signed certificate is refused. */
	struct append_result strict = { 0 };
	snprintf(url, sizeof(url), "imaps://127.0.0.1:%d/INBOX", port);
	alert_imap_append(&fx->srv, url, "a@acme.test", "s3cret", msg, sizeof(msg) - 1,
	    append_done, &strict);
	assert_true(run_until(fx, append_called, &strict, 30));
	sh("dovecot -c %s/dv/dovecot.conf stop >/dev/null 2>&1", fx->dir);
	assert_int_equal(r.ok, 1);
	assert_true(found);
	assert_int_equal(bad.ok, 0);
	assert_true(bad.why[0] != '\0');
	assert_int_equal(strict.ok, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_email_envelope_and_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_email_at_most_20_recipients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_email_no_valid_address_queues_nothing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_webhook_posts_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_webhook_retries_after_5xx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_webhook_cancelled_while_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_webhook_rejects_other_schemes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_imap_append_bad_urls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_imap_append_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_imap_append_dovecot, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
