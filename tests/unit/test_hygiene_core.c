/*
 * Unit tests for the pipeline core (src/hygiene/hygiene_result.c,
 * hygiene.c): header folding at 78 columns, the verdict only ever rising
 * and keeping the first reply, reasons joined in order, rewrites replacing
 * the content, action and auth names, and hygiene_run_stages() over every
 * message of the MIME corpus (../shared/corpus/mime, or $MAILARK_CORPUS/mime)
 * with every stage switched off by policy: each parses and is accepted;
 * the queue writer read back and rewritten before its commit (the committed
 * file has the new bytes and a CRC its recovery accepts).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "dns/dns_sync.h"
#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/mem.h"
#include "lib/sys.h"
#include "lib/worker.h"
#include "queue/queue.h"
#include "server.h"
#include "unit_tmp.h"

/* ------------------------------------------------------------ helpers */

static const char *
corpus_dir(void)
{
	const char *c = getenv("MAILARK_CORPUS");
	return c != NULL && *c != '\0' ? c : "../shared/corpus";
}

/* Every line of s (CRLF-separated) is at most max columns. */
static void
assert_lines_within(const char *s, size_t max)
{
	const char *p = s;
	while (*p != '\0') {
		const char *eol = strstr(p, "\r\n");
		assert_non_null(eol);
		if ((size_t)(eol - p) > max)
			fail_msg("line of %zu columns: %.*s", (size_t)(eol - p), (int)(eol - p), p);
		p = eol + 2;
	}
}

/* The header value unfolded: line breaks and their blanks become one space. */
static char *
unfold(const char *field)
{
	struct buf b = BUF_INIT;
	const char *p = strchr(field, ':') + 1;
	while (*p != '\0') {
		if (p[0] == '\r' && p[1] == '\n') {
			p += 2;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p != '\0')
				buf_append_char(&b, ' ');
			continue;
		}
		buf_append_char(&b, *p++);
	}
	char *s = buf_steal(&b);
	if (s[0] == ' ')
		memmove(s, s + 1, strlen(s));
	return s;
}

/* ------------------------------------------------------------ result helpers */

static void
test_header_folding(void **state)
{
	(void)state;
	struct hygiene_result r;
	memset(&r, 0, sizeof(r));
	struct buf v = BUF_INIT;
	for (int i = 0; i < 40; i++)
		buf_appendf(&v, "word%d ", i);
	hygiene_result_add_header(&r, "X-Long-Field", "%s", buf_cstr(&v));
	const char *h = buf_cstr(&r.headers);
	assert_true(strncmp(h, "X-Long-Field: word0 ", 20) == 0);
	assert_lines_within(h, 78);
	assert_non_null(strstr(h, "\r\n\t"));             /* it was folded */
	char *u = unfold(h);
	buf_truncate(&v, v.len - 1);                      /* the trailing blank */
	assert_string_equal(u, buf_cstr(&v));
	free(u);
	/* a short value stays on one line; line breaks in values become blanks */
	hygiene_result_free(&r);
	hygiene_result_add_header(&r, "X-Short", "a\r\nInjected: yes");
	assert_string_equal(buf_cstr(&r.headers), "X-Short: a Injected: yes\r\n");
	/* an unbreakable word longer than the line is kept whole */
	hygiene_result_free(&r);
	char word[120];
	memset(word, 'x', sizeof(word) - 1);
	word[sizeof(word) - 1] = '\0';
	hygiene_result_add_header(&r, "X-Word", "a %s b", word);
	assert_non_null(strstr(buf_cstr(&r.headers), word));
	buf_free(&v);
	hygiene_result_free(&r);
}

static void
test_raise_ordering(void **state)
{
	(void)state;
	struct hygiene_result r;
	memset(&r, 0, sizeof(r));
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	hygiene_result_raise(&r, HYGIENE_TAG, NULL, "spam:%.1f", 5.5);
	assert_int_equal(r.action, HYGIENE_TAG);
	hygiene_result_raise(&r, HYGIENE_QUARANTINE, NULL, "attach:encrypted");
	hygiene_result_raise(&r, HYGIENE_TAG, NULL, "auth:spf_fail");
	assert_int_equal(r.action, HYGIENE_QUARANTINE);       /* never lowered */
	assert_null(r.reply);
	hygiene_result_raise(&r, HYGIENE_DEFER, "451 4.7.1 first", "av:failed");
	hygiene_result_raise(&r, HYGIENE_REJECT, "550 5.7.1 second", "dmarc:reject");
	assert_int_equal(r.action, HYGIENE_REJECT);
	assert_string_equal(r.reply, "451 4.7.1 first");      /* the first reply stays */
	hygiene_result_reason(&r, "note");
	assert_string_equal(buf_cstr(&r.reasons),
	    "spam:5.5; attach:encrypted; auth:spf_fail; av:failed; dmarc:reject; note");
	hygiene_result_free(&r);
	assert_null(r.reply);
	assert_int_equal(r.reasons.len, 0);
	/* a REJECT without reply, then one with: that one is kept */
	hygiene_result_raise(&r, HYGIENE_REJECT, NULL, NULL);
	hygiene_result_raise(&r, HYGIENE_REJECT, "550 5.7.1 x", NULL);
	assert_string_equal(r.reply, "550 5.7.1 x");
	assert_int_equal(r.reasons.len, 0);
	hygiene_result_free(&r);
}

static void
test_rewrite_and_content(void **state)
{
	(void)state;
	struct hygiene_result r;
	struct hygiene_msg m;
	memset(&r, 0, sizeof(r));
	memset(&m, 0, sizeof(m));
	m.data = (const unsigned char *)"original";
	m.len = 8;
	const unsigned char *d;
	size_t n;
	hygiene_result_content(&m, &r, &d, &n);
	assert_ptr_equal(d, m.data);
	assert_int_equal(n, 8);
	hygiene_result_rewrite(&r, (unsigned char *)xstrdup("first"), 5);
	hygiene_result_rewrite(&r, (unsigned char *)xstrdup("second!"), 7);
	hygiene_result_content(&m, &r, &d, &n);
	assert_int_equal(n, 7);
	assert_memory_equal(d, "second!", 7);
	hygiene_result_free(&r);
	assert_null(r.rewritten);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(hygiene_action_name(HYGIENE_ACCEPT), "accept");
	assert_string_equal(hygiene_action_name(HYGIENE_QUARANTINE), "quarantine");
	assert_string_equal(hygiene_action_name(HYGIENE_REJECT), "reject");
	assert_string_equal(hygiene_action_name((enum hygiene_action)42), "?");
	assert_string_equal(hygiene_auth_name(HAUTH_SOFTFAIL), "softfail");
	assert_string_equal(hygiene_auth_name(HAUTH_POLICY), "policy");
}

/* ------------------------------------------------------------ the stage table */

struct core_fixture {
	char dir[256];
	struct config *cfg;
	struct hygiene h;
	struct hygiene_policy pol;        /* defaults, every stage off */
	const struct hygiene_policy *defaults;
};

static int
core_setup(void **state)
{
	struct core_fixture *f = xcalloc(1, sizeof(*f));
	char *err = NULL;
	if (unit_tmpdir(f->dir, sizeof(f->dir), "hygcore") < 0)
		return -1;
	char *conf = buf_printf("%s/mailark.conf", f->dir);
	char *text = buf_printf("[server]\ndata_dir = %s/data\n[hygiene]\nenabled = yes\n", f->dir);
	int rc = sys_write_file_atomic(conf, text, strlen(text), 0600);
	free(text);
	if (rc < 0 || config_load(conf, &f->cfg, &err) < 0) {
		fprintf(stderr, "config: %s\n", err != NULL ? err : "write failed");
		free(conf);
		return -1;
	}
	free(conf);
	f->h.cfg = f->cfg;
	f->h.dns = dns_sync_new(f->cfg, &err);
	if (f->h.dns == NULL)
		return -1;
	f->defaults = policy_defaults();
	f->pol = *f->defaults;            /* lists shared with the defaults: never freed here */
	f->pol.av_enabled = f->pol.spf_enabled = f->pol.dkim_verify = f->pol.dmarc_enabled = 0;
	f->pol.spam_enabled = f->pol.lookalike = f->pol.attach_enabled = 0;
	f->pol.milter_enabled = f->pol.dkim_sign = 0;
	*state = f;
	return 0;
}

static int
core_teardown(void **state)
{
	struct core_fixture *f = *state;
	policy_release(&f->defaults);
	dns_sync_free(&f->h.dns);
	config_free(&f->cfg);
	char *cmd = buf_printf("rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

static void
fill_env(struct queue_envelope *env, struct queue_rcpt *rcpt)
{
	memset(env, 0, sizeof(*env));
	memset(rcpt, 0, sizeof(*rcpt));
	snprintf(env->id, sizeof(env->id), "0123456789ABCDEF");
	rcpt->addr = "bob@acme.test";
	env->direction = QUEUE_INBOUND;
	env->tenant = "acme";
	env->sender = "alice@beta.test";
	env->client_addr = "192.0.2.7";
	env->client_helo = "client.test";
	env->rcpts = rcpt;
	env->nrcpts = 1;
}

static void
test_run_stages_empty_message(void **state)
{
	struct core_fixture *f = *state;
	struct queue_envelope env;
	struct queue_rcpt rcpt;
	struct hygiene_result r;
	char *err = NULL;
	fill_env(&env, &rcpt);
	assert_int_equal(hygiene_run_stages(&f->h, &f->pol, &env, 0, NULL, 0,
	    (const unsigned char *)"", 0, &r, &err), -1);
	assert_non_null(err);
	free(err);
	hygiene_result_free(&r);
}

/* Every corpus file: parsed once, all stages off → accepted, nothing added. */
static void
test_run_stages_corpus(void **state)
{
	struct core_fixture *f = *state;
	char *path = buf_printf("%s/mime/MANIFEST.tsv", corpus_dir());
	FILE *fp = fopen(path, "r");
	free(path);
	if (fp == NULL)
		skip();
	char line[4096];
	size_t n = 0;
	char *domains[] = { "acme.test" };
	struct queue_envelope env;
	struct queue_rcpt rcpt;
	fill_env(&env, &rcpt);
	assert_non_null(fgets(line, sizeof(line), fp));  /* the column names */
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *tab = strchr(line, '\t');
		if (tab == NULL)
			continue;
		*tab = '\0';
		char *file = buf_printf("%s/mime/%s", corpus_dir(), line);
		char *data = NULL;
		size_t len = 0;
		assert_int_equal(sys_read_file(file, 64 * 1024 * 1024, &data, &len), 0);
		struct hygiene_result r;
		char *err = NULL;
		int rc = hygiene_run_stages(&f->h, &f->pol, &env, 1, domains, 1,
		    (const unsigned char *)data, len, &r, &err);
		if (len == 0) {
			assert_int_equal(rc, -1);
			free(err);
		} else {
			if (rc != 0 || r.action != HYGIENE_ACCEPT)
				fail_msg("%s: rc=%d action=%s err=%s", file, rc,
				    hygiene_action_name(r.action), err != NULL ? err : "");
			assert_null(r.reply);
			assert_null(r.rewritten);
			n++;
		}
		hygiene_result_free(&r);
		free(data);
		free(file);
	}
	fclose(fp);
	assert_true(n > 500);
}

/* ------------------------------------------------------------ queue writer */

static void
committed_cb(void *arg, int error)
{
	int *done = arg;
	*done = error == 0 ? 1 : -1;
}

/* The first `size` bytes of the committed file (the body; records follow). */
static void
read_body(struct queue *q, const char *id, size_t size, struct buf *out)
{
	int fd = queue_open_body(q, id);
	assert_true(fd >= 0);
	char tmp[4096];
	ssize_t n;
	while (out->len < size && (n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_append(out, tmp, (size_t)n);
	close(fd);
	assert_true(out->len >= size);
	buf_truncate(out, size);
}

static void
test_queue_writer_read_all_replace(void **state)
{
	(void)state;
	char dir[256];
	char *err = NULL;
	struct server srv;
	memset(&srv, 0, sizeof(srv));
	assert_int_equal(unit_tmpdir(dir, sizeof(dir), "hygq"), 0);
	assert_int_equal(config_load(NULL, &srv.cfg, &err), 0);
	free(srv.cfg->data_dir);
	srv.cfg->data_dir = xstrdup(dir);
	srv.base = event_base_new();
	srv.workers = worker_pool_new(srv.base, 1);
	struct queue *q = NULL;
	assert_int_equal(queue_open(&srv, &q, &err), 0);
	char id[ID_LEN + 1];
	id_generate(id);
	struct queue_writer *w = queue_writer_new(q, id, &err);
	assert_non_null(w);
	static const char recv[] = "Received: from x by y id Q; date\r\n";
	static const char msg[] = "Subject: hi\r\n\r\nbody\r\n";
	assert_int_equal(queue_writer_append(w, recv, strlen(recv)), 0);
	assert_int_equal(queue_writer_append(w, msg, strlen(msg)), 0);
	unsigned char *data = NULL;
	size_t len = 0;
	assert_int_equal(queue_writer_read_all(w, &data, &len), 0);
	assert_int_equal(len, strlen(recv) + strlen(msg));
	assert_memory_equal(data, recv, strlen(recv));
	assert_memory_equal(data + strlen(recv), msg, strlen(msg));
	/* replaced by something shorter: nothing of the old tail may remain */
	static const char prefix[] = "X-Added: 1\r\n";
	assert_int_equal(queue_writer_replace(w, prefix, strlen(prefix), msg, strlen(msg)), 0);
	assert_int_equal(queue_writer_size(w), strlen(prefix) + strlen(msg));
	free(data);
	assert_int_equal(queue_writer_read_all(w, &data, &len), 0);
	assert_int_equal(len, strlen(prefix) + strlen(msg));
	assert_memory_equal(data, prefix, strlen(prefix));
	free(data);
	struct queue_rcpt rcpt = { .addr = "bob@acme.test" };
	struct queue_envelope env = { .direction = QUEUE_INBOUND, .tenant = "acme",
		.sender = "a@beta.test", .client_addr = "192.0.2.1", .rcpts = &rcpt, .nrcpts = 1 };
	memcpy(env.id, id, sizeof(env.id));
	int done = 0;
	queue_writer_commit(w, &env, committed_cb, &done);
	while (done == 0)
		event_base_loop(srv.base, EVLOOP_ONCE);
	assert_int_equal(done, 1);
	/* recovery checks size and CRC: the entry must come back whole */
	queue_close(&q);
	assert_int_equal(queue_open(&srv, &q, &err), 0);
	struct queue_entry *e = queue_entry_find(q, id);
	assert_non_null(e);
	assert_int_equal(e->body_size, strlen(prefix) + strlen(msg));
	struct buf b = BUF_INIT;
	read_body(q, id, (size_t)e->body_size, &b);
	assert_memory_equal(b.data, prefix, strlen(prefix));
	assert_memory_equal(b.data + strlen(prefix), msg, strlen(msg));
	buf_free(&b);
	queue_close(&q);
	worker_pool_free(&srv.workers);
	event_base_free(srv.base);
	config_free(&srv.cfg);
	char *cmd = buf_printf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_folding),
		cmocka_unit_test(test_raise_ordering),
		cmocka_unit_test(test_rewrite_and_content),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_queue_writer_read_all_replace),
		cmocka_unit_test_setup_teardown(test_run_stages_empty_message, core_setup,
		    core_teardown),
		cmocka_unit_test_setup_teardown(test_run_stages_corpus, core_setup, core_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
