/*
 * test_av_clamd — the clamd INSTREAM client against a fake clamd in a thread
 * (unix socket and TCP): the framing of the stream, OK / FOUND / ERROR
 * replies, an early "size limit exceeded" answer, a silent server (timeout),
 * no server; and the stage's verdicts per policy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/config.h"
#include "hygiene/av_clamd.h"
#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "unit_tmp.h"

enum fake_mode {
	FAKE_REPLY,   /* read the whole stream, then reply */
	FAKE_EARLY,   /* reply right after the command and close */
	FAKE_SILENT,  /* read the stream, never reply */
};

struct fake {
	int lfd;
	enum fake_mode mode;
	const char *reply;       /* sent with its NUL */
	struct buf got;          /* the stream, reassembled */
	size_t chunks, max_chunk;
	int command_ok, end_seen;
	pthread_t th;
	char dir[256];
	char spec[300];          /* what the client is given */
};

static int
read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void
fake_stream(struct fake *f, int fd)
{
	for (;;) {
		unsigned char h[4];
		if (read_full(fd, h, 4) < 0)
			return;
		size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
		if (n == 0) {
			f->end_seen = 1;
			return;
		}
		f->chunks++;
		if (n > f->max_chunk)
			f->max_chunk = n;
		char *tmp = xmalloc(n);
		int rc = read_full(fd, tmp, n);
		if (rc == 0)
			buf_append(&f->got, tmp, n);
		free(tmp);
		if (rc < 0)
			return;
	}
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char cmd[10];
	f->command_ok = read_full(fd, cmd, sizeof(cmd)) == 0
	    && memcmp(cmd, "zINSTREAM\0", sizeof(cmd)) == 0;
	if (f->mode != FAKE_EARLY)
		fake_stream(f, fd);
	if (f->mode == FAKE_SILENT) {
		char c;
		while (read(fd, &c, 1) > 0)
			;
	} else {
		ssize_t w = write(fd, f->reply, strlen(f->reply) + 1);
		(void)w;
	}
	close(fd);
	return NULL;
}

static void
fake_start(struct fake *f, enum fake_mode mode, const char *reply, int tcp)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->reply = reply;
	if (tcp) {
		f->lfd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sin = { .sin_family = AF_INET };
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		socklen_t sl = sizeof(sin);
		assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &sl), 0);
		snprintf(f->spec, sizeof(f->spec), "127.0.0.1:%d", ntohs(sin.sin_port));
	} else {
		assert_int_equal(unit_tmpdir(f->dir, sizeof(f->dir), "clamd"), 0);
		snprintf(f->spec, sizeof(f->spec), "%s/clamd.sock", f->dir);
		f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		assert_true(strlen(f->spec) < sizeof(sun.sun_path));
		memcpy(sun.sun_path, f->spec, strlen(f->spec) + 1);
		assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	}
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void
fake_stop(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
	if (f->dir[0] != '\0') {
		unlink(f->spec);
		rmdir(f->dir);
	}
}

/* fake_stop() and forget what was received. */
static void
fake_done(struct fake *f)
{
	fake_stop(f);
	buf_free(&f->got);
}

static unsigned char *
pattern(size_t n)
{
	unsigned char *p = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + i / 251);
	return p;
}

static void
test_ok_and_framing(void **state)
{
	(void)state;
	size_t n = 200000;   /* several chunks */
	unsigned char *data = pattern(n);
	struct fake f;
	fake_start(&f, FAKE_REPLY, "stream: OK", 0);
	char *virus = NULL, *err = NULL;
	assert_int_equal(av_clamd_scan(f.spec, 10, data, n, &virus, &err), 0);
	assert_null(virus);
	assert_null(err);
	fake_stop(&f);
	assert_true(f.command_ok);
	assert_true(f.end_seen);
	assert_true(f.chunks >= 2);
	assert_true(f.max_chunk <= 65536);
	assert_int_equal(f.got.len, n);
	assert_memory_equal(f.got.data, data, n);
	buf_free(&f.got);
	free(data);
}

static void
test_found(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, FAKE_REPLY, "stream: Win.Test.EICAR_HDB-1 FOUND", 0);
	char *virus = NULL, *err = NULL;
	assert_int_equal(av_clamd_scan(f.spec, 10, (const unsigned char *)"x", 1, &virus, &err), 1);
	assert_string_equal(virus, "Win.Test.EICAR_HDB-1");
	assert_null(err);
	free(virus);
	fake_stop(&f);
	assert_int_equal(f.got.len, 1);
	buf_free(&f.got);
}

static void
test_found_tcp_and_hostile_name(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, FAKE_REPLY, "stream: Bad\r\nName\x01 FOUND\n", 1);
	char *virus = NULL, *err = NULL;
	assert_int_equal(av_clamd_scan(f.spec, 10, (const unsigned char *)"abc", 3, &virus, &err),
	    1);
	assert_string_equal(virus, "Bad__Name_");
	free(virus);
	fake_done(&f);
}

static void
test_error_replies(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, FAKE_REPLY, "stream: Can't allocate memory ERROR", 0);
	char *virus = NULL, *err = NULL;
	assert_int_equal(av_clamd_scan(f.spec, 10, (const unsigned char *)"x", 1, &virus, &err), -1);
	assert_null(virus);
	assert_non_null(strstr(err, "ERROR"));
	free(err);
	fake_done(&f);
	/* a reply that is neither OK, FOUND nor ERROR */
	fake_start(&f, FAKE_REPLY, "UNKNOWN COMMAND", 0);
	err = NULL;
	assert_int_equal(av_clamd_scan(f.spec, 10, (const unsigned char *)"x", 1, &virus, &err), -1);
	assert_non_null(err);
	free(err);
	fake_done(&f);
}

static void
test_size_limit_early_reply(void **state)
{
	(void)state;
	size_t n = 8 * 1024 * 1024;
	unsigned char *data = pattern(n);
	struct fake f;
	fake_start(&f, FAKE_EARLY, "INSTREAM size limit exceeded. ERROR", 0);
	char *virus = NULL, *err = NULL;
	assert_int_equal(av_clamd_scan(f.spec, 10, data, n, &virus, &err), -1);
	assert_non_null(strstr(err, "StreamMaxLength"));
	free(err);
	fake_done(&f);
	free(data);
}

static void
test_timeout(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, FAKE_SILENT, NULL, 0);
	char *virus = NULL, *err = NULL;
	assert_int_equal(av_clamd_scan(f.spec, 1, (const unsigned char *)"x", 1, &virus, &err), -1);
	assert_non_null(strstr(err, "timed out"));
	free(err);
	fake_done(&f);
}

static void
test_no_server(void **state)
{
	(void)state;
	char dir[256];
	assert_int_equal(unit_tmpdir(dir, sizeof(dir), "clamd"), 0);
	char *spec = buf_printf("%s/none.sock", dir);
	char *virus = NULL, *err = NULL;
	assert_int_equal(av_clamd_scan(spec, 2, (const unsigned char *)"x", 1, &virus, &err), -1);
	assert_non_null(strstr(err, "connect"));
	free(err);
	err = NULL;
	assert_int_equal(av_clamd_scan("not a socket", 2, (const unsigned char *)"x", 1, &virus,
	    &err), -1);
	assert_non_null(err);
	free(err);
	free(spec);
	rmdir(dir);
}

/* ---- the stage ---- */

struct stage_env {
	struct config cfg;
	struct hygiene h;
	struct hygiene_policy pol;
	struct hygiene_msg m;
	struct hygiene_result r;
};

static void
stage_env(struct stage_env *e, const char *socket_spec)
{
	memset(e, 0, sizeof(*e));
	e->cfg.clamd_socket = (char *)socket_spec;
	e->cfg.clamd_timeout = 5;
	e->h.cfg = &e->cfg;
	e->pol = *policy_defaults();
	e->m.h = &e->h;
	e->m.pol = &e->pol;
	e->m.qid = "TESTQID";
	e->m.dir = QUEUE_INBOUND;
	e->m.data = (const unsigned char *)"Subject: x\r\n\r\nbody\r\n";
	e->m.len = strlen((const char *)e->m.data);
}

static void
test_stage_reject(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, FAKE_REPLY, "stream: Eicar-Signature FOUND", 0);
	struct stage_env e;
	stage_env(&e, f.spec);
	char *err = NULL;
	assert_int_equal(av_clamd_stage(&e.m, &e.r, &err), 0);
	fake_stop(&f);
	assert_int_equal(f.got.len, e.m.len);   /* the stream was the message */
	assert_memory_equal(f.got.data, e.m.data, e.m.len);
	buf_free(&f.got);
	assert_int_equal(e.r.action, HYGIENE_REJECT);
	assert_string_equal(e.r.reply, "550 5.7.1 Message rejected: virus found: Eicar-Signature");
	assert_string_equal(buf_cstr(&e.r.reasons), "av:Eicar-Signature");
	hygiene_result_free(&e.r);
}

static void
test_stage_quarantine_and_outbound(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, FAKE_REPLY, "stream: Eicar-Signature FOUND", 0);
	struct stage_env e;
	stage_env(&e, f.spec);
	e.pol.av_action = POLICY_ACT_QUARANTINE;
	e.m.dir = QUEUE_OUTBOUND;
	char *err = NULL;
	assert_int_equal(av_clamd_stage(&e.m, &e.r, &err), 0);
	fake_done(&f);
	assert_int_equal(e.r.action, HYGIENE_QUARANTINE);
	assert_null(e.r.reply);
	assert_string_equal(buf_cstr(&e.r.reasons), "av:Eicar-Signature");
	hygiene_result_free(&e.r);
}

static void
test_stage_clean_disabled_failed(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, FAKE_REPLY, "stream: OK", 0);
	struct stage_env e;
	stage_env(&e, f.spec);
	char *err = NULL;
	assert_int_equal(av_clamd_stage(&e.m, &e.r, &err), 0);
	fake_done(&f);
	assert_int_equal(e.r.action, HYGIENE_ACCEPT);
	assert_int_equal(e.r.reasons.len, 0);
	/* no socket configured, or av.enabled no: nothing is asked */
	stage_env(&e, "");
	assert_int_equal(av_clamd_stage(&e.m, &e.r, &err), 0);
	stage_env(&e, "/nonexistent/clamd.sock");
	e.pol.av_enabled = 0;
	assert_int_equal(av_clamd_stage(&e.m, &e.r, &err), 0);
	assert_null(err);
	/* scanner down: -1 with a reason, the core applies av.on_failure */
	stage_env(&e, "/nonexistent/clamd.sock");
	assert_int_equal(av_clamd_stage(&e.m, &e.r, &err), -1);
	assert_non_null(err);
	assert_int_equal(e.r.action, HYGIENE_ACCEPT);
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok_and_framing),
		cmocka_unit_test(test_found),
		cmocka_unit_test(test_found_tcp_and_hostile_name),
		cmocka_unit_test(test_error_replies),
		cmocka_unit_test(test_size_limit_early_reply),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_no_server),
		cmocka_unit_test(test_stage_reject),
		cmocka_unit_test(test_stage_quarantine_and_outbound),
		cmocka_unit_test(test_stage_clean_disabled_failed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
