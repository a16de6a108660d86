/*
 * Unit tests for the milter client (src/hygiene/milter.c, milter_doc.c)
 * against a small fake milter running in a thread on a unix socket: the
 * conversation it sees (commands, macros, headers with our Received first,
 * body in chunks), every final reply (accept, reject, reply codes valid and
 * not, tempfail, discard, quarantine), header and body modifications (also
 * seen by a second milter), negotiated skips (SMFIP_NOHDRS, SMFIP_SKIP,
 * no-reply steps), and failures: refused connection, garbage, oversized
 * packets, a milter that never answers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "config/config.h"
#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/milter.h"
#include "hygiene/milter_doc.h"
#include "hygiene/policy.h"
#include "unit_hygiene.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "unit_tmp.h"

#define NR_HDR   0x000080u
#define NOHDRS   0x000020u
#define SKIP     0x000400u
#define NR_BODY  0x080000u
#define LEADSPC  0x100000u

struct fake {
	char path[300];
	int lfd;
	pthread_t th;
	uint32_t pflags;
	uint32_t actions;
	char answer_at;        /* command answered with `answer` instead of continue */
	struct buf answer;     /* framed packets */
	struct buf eob;        /* framed packets sent after SMFIC_BODYEOB */
	int garbage;           /* answer OPTNEG with nonsense */
	int huge;              /* answer OPTNEG with an absurd length */
	int silent_eob;        /* never answer SMFIC_BODYEOB */
	int skip_body;         /* answer the first body chunk with SMFIR_SKIP */
	/* what it saw */
	struct buf cmds;
	struct buf headers;    /* "name:value\n" */
	struct buf body;
	struct buf macros;     /* "name=value\n" */
	size_t body_chunks;
};

static char tmpdir[256];
static struct config *cfg;
static struct hygiene hyg;
static struct hygiene_policy pol;

static void
frame(struct buf *b, char cmd, const void *data, size_t len)
{
	uint32_t n = htonl((uint32_t)len + 1);
	buf_append(b, &n, 4);
	buf_append_char(b, cmd);
	buf_append(b, data, len);
}

static void
frame_strs(struct buf *b, char cmd, const char *s1, const char *s2)
{
	struct buf d = BUF_INIT;
	buf_append(&d, s1, strlen(s1) + 1);
	if (s2 != NULL)
		buf_append(&d, s2, strlen(s2) + 1);
	frame(b, cmd, d.data, d.len);
	buf_free(&d);
}

static void
frame_idx(struct buf *b, char cmd, uint32_t idx, const char *name, const char *value)
{
	struct buf d = BUF_INIT;
	uint32_t n = htonl(idx);
	buf_append(&d, &n, 4);
	buf_append(&d, name, strlen(name) + 1);
	buf_append(&d, value, strlen(value) + 1);
	frame(b, cmd, d.data, d.len);
	buf_free(&d);
}

static int
read_all(int fd, void *p, size_t n)
{
	unsigned char *c = p;
	while (n > 0) {
		ssize_t k = read(fd, c, n);
		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

static void
write_all(int fd, const void *p, size_t n)
{
	if (n > 0 && write(fd, p, n) != (ssize_t)n)
		fprintf(stderr, "fake milter: short write\n");
}

static uint32_t
nr_bit(char cmd)
{
	switch (cmd) {
	case 'C': return 0x1000;
	case 'H': return 0x2000;
	case 'M': return 0x4000;
	case 'R': return 0x8000;
	case 'T': return 0x10000;
	case 'L': return NR_HDR;
	case 'N': return 0x40000;
	case 'B': return NR_BODY;
	default: return 0;
	}
}

static void
note_macros(struct fake *f, const char *d, size_t len)
{
	size_t off = 1;
	while (off < len) {
		const char *name = d + off;
		off += strlen(name) + 1;
		if (off >= len)
			break;
		const char *value = d + off;
		off += strlen(value) + 1;
		buf_appendf(&f->macros, "%s=%s\n", name, value);
	}
}

static void
answer_optneg(struct fake *f, int fd)
{
	if (f->garbage) {
		write_all(fd, "\0\0\0\x05Zjunk", 9);
		return;
	}
	if (f->huge) {
		write_all(fd, "\x7f\0\0\0O", 5);
		return;
	}
	struct buf b = BUF_INIT, d = BUF_INIT;
	uint32_t v[3] = { htonl(6), htonl(f->actions), htonl(f->pflags) };
	buf_append(&d, v, sizeof(v));
	frame(&b, 'O', d.data, d.len);
	write_all(fd, b.data, b.len);
	buf_free(&b);
	buf_free(&d);
}

/* Serves one connection; returns when the client quits or goes away. */
static void
serve(struct fake *f, int fd)
{
	for (;;) {
		uint32_t n;
		char cmd;
		if (read_all(fd, &n, 4) < 0)
			return;
		n = ntohl(n);
		if (n == 0 || n > 8 * 1024 * 1024 || read_all(fd, &cmd, 1) < 0)
			return;
		char *d = xmalloc(n);
		if (n > 1 && read_all(fd, d, n - 1) < 0) {
			free(d);
			return;
		}
		size_t len = n - 1;
		d[len] = '\0';
		buf_append_char(&f->cmds, cmd);
		int quit = 0;
		if (cmd == 'D') {
			note_macros(f, d, len);
		} else if (cmd == 'O') {
			answer_optneg(f, fd);
		} else if (cmd == 'Q') {
			quit = 1;
		} else if (cmd == 'E') {
			if (!f->silent_eob)
				write_all(fd, f->eob.data, f->eob.len);
		} else {
			if (cmd == 'L')
				buf_appendf(&f->headers, "%s:%s\n", d, d + strlen(d) + 1);
			if (cmd == 'B') {
				buf_append(&f->body, d, len);
				f->body_chunks++;
			}
			if (cmd == f->answer_at)
				write_all(fd, f->answer.data, f->answer.len);
			else if (cmd == 'B' && f->skip_body)
				write_all(fd, "\0\0\0\1s", 5);
			else if ((f->pflags & nr_bit(cmd)) == 0)
				write_all(fd, "\0\0\0\1c", 5);
		}
		free(d);
		if (quit)
			return;
	}
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd >= 0) {
		serve(f, fd);
		close(fd);
	}
	return NULL;
}

static void
fake_init(struct fake *f, const char *name)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s/%s.sock", tmpdir, name);
	f->actions = 0x1ff;
	f->lfd = -1;
}

static void
fake_start(struct fake *f)
{
	unlink(f->path);
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_true(strlen(f->path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void
fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->th, NULL);
	close(f->lfd);
	unlink(f->path);
}

static void
fake_done(struct fake *f)
{
	fake_stop(f);
	buf_free(&f->answer);
	buf_free(&f->eob);
	buf_free(&f->cmds);
	buf_free(&f->headers);
	buf_free(&f->body);
	buf_free(&f->macros);
}

static void
set_milters(const char *list)
{
	free(cfg->milters);
	cfg->milters = xstrdup(list);
}

/* Starts the fake and makes it the only milter. */
static void
fake_serve(struct fake *f)
{
	fake_start(f);
	char *spec = buf_printf("unix:%s", f->path);
	set_milters(spec);
	free(spec);
}

static char *rcpts[] = { (char *)"bob@acme.test", (char *)"carol@acme.test", NULL };

static const char message[] =
    "Received: from client.test ([192.0.2.1])\r\n\tby mx.test with ESMTP id TESTQID\r\n"
    "From: Alice <alice@example.test>\r\n"
    "To: bob@acme.test\r\n"
    "Subject:  two spaces\r\n"
    "X-Dup: first\r\n"
    "X-Dup: second\r\n"
    "\r\n"
    "Hello\r\nworld\r\n";

static int
run_msg(const char *msg, size_t len, struct hygiene_result *r, char **err_r)
{
	memset(r, 0, sizeof(*r));
	struct hygiene_msg m;
	unit_hygiene_msg(&m, &pol, QUEUE_INBOUND, "alice@example.test", rcpts, msg, len);
	m.h = &hyg;
	m.client_ip = "192.0.2.1";
	m.client_helo = "client.test";
	*err_r = NULL;
	return milter_stage(&m, r, err_r);
}

static int
run(struct hygiene_result *r, char **err_r)
{
	return run_msg(message, strlen(message), r, err_r);
}

static char *
result_text(struct hygiene_result *r)
{
	assert_non_null(r->rewritten);
	return xstrndup((const char *)r->rewritten, r->rewritten_len);
}

static int
setup(void **state)
{
	(void)state;
	if (unit_tmpdir(tmpdir, sizeof(tmpdir), "milter") < 0)
		return -1;
	char *err = NULL;
	if (config_load(NULL, &cfg, &err) < 0)
		return -1;
	cfg->milter_timeout = 1;
	hyg.cfg = cfg;
	pol = *policy_defaults();
	pol.milter_enabled = 1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	rmdir(tmpdir);
	return 0;
}

static void
test_conversation_and_accept(void **state)
{
	(void)state;
	struct fake f;
	fake_init(&f, "a");
	frame(&f.eob, 'c', NULL, 0);
	fake_serve(&f);
	struct hygiene_result r;
	char *err;
	assert_int_equal(run(&r, &err), 0);
	fake_stop(&f);
	assert_null(err);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	assert_null(r.rewritten);               /* nothing changed: nothing rewritten */
	/* the whole conversation, in order: macros before their commands */
	assert_string_equal(buf_cstr(&f.cmds), "ODCHDMDRDRDTLLLLLLDNBDEQ");
	/* our Received first, values without the leading blank, folding kept */
	assert_string_equal(buf_cstr(&f.headers),
	    "Received:from client.test ([192.0.2.1])\r\n\tby mx.test with ESMTP id TESTQID\n"
	    "From:Alice <alice@example.test>\n"
	    "To:bob@acme.test\n"
	    "Subject:two spaces\n"
	    "X-Dup:first\n"
	    "X-Dup:second\n");
	assert_string_equal(buf_cstr(&f.body), "Hello\r\nworld\r\n");
	const char *mac = buf_cstr(&f.macros);
	assert_non_null(strstr(mac, "i=TESTQID\n"));
	assert_non_null(strstr(mac, "{client_addr}=192.0.2.1\n"));
	assert_non_null(strstr(mac, "{mail_addr}=alice@example.test\n"));
	assert_non_null(strstr(mac, "{rcpt_addr}=carol@acme.test\n"));
	assert_non_null(strstr(mac, "j="));
	assert_null(strstr(mac, "{auth_authen}"));   /* not signed in: not sent */
	fake_done(&f);
	hygiene_result_free(&r);
}

static void
test_modifications(void **state)
{
	(void)state;
	struct fake f;
	fake_init(&f, "mods");
	f.pflags = LEADSPC;
	frame_strs(&f.eob, 'h', "X-Added", " yes\n\tfolded");
	frame_idx(&f.eob, 'i', 1, "X-Inserted", " after received");
	frame_idx(&f.eob, 'm', 2, "X-Dup", " changed");
	frame_idx(&f.eob, 'm', 1, "Subject", "");
	frame_idx(&f.eob, 'm', 1, "Bad Name", " ignored");
	frame_strs(&f.eob, 'h', "X-Evil", " a\nInjected: yes");
	frame_strs(&f.eob, 'h', "X-Evil", " a\rInjected: yes");
	frame_strs(&f.eob, 'h', "X-Evil", " ends the header\r\n");
	frame(&f.eob, 'b', "New body\nline 2\n", 16);
	frame_strs(&f.eob, '+', "<extra@acme.test>", NULL);
	frame_strs(&f.eob, 'e', "<other@example.test>", NULL);
	frame(&f.eob, 'p', NULL, 0);
	frame(&f.eob, 'a', NULL, 0);
	fake_serve(&f);
	struct hygiene_result r;
	char *err;
	assert_int_equal(run(&r, &err), 0);
	fake_done(&f);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	char *out = result_text(&r);
	assert_string_equal(out,
	    "Received: from client.test ([192.0.2.1])\r\n\tby mx.test with ESMTP id TESTQID\r\n"
	    "X-Inserted: after received\r\n"
	    "From: Alice <alice@example.test>\r\n"
	    "To: bob@acme.test\r\n"
	    "X-Dup: first\r\n"
	    "X-Dup: changed\r\n"
	    "X-Added: yes\r\n\tfolded\r\n"
	    "\r\n"
	    "New body\r\nline 2\r\n");
	free(out);
	hygiene_result_free(&r);
}

static void
test_two_milters_chain(void **state)
{
	(void)state;
	struct fake f1, f2;
	fake_init(&f1, "one");
	fake_init(&f2, "two");
	frame_strs(&f1.eob, 'h', "X-First", "1");
	frame(&f1.eob, 'c', NULL, 0);
	frame_strs(&f2.eob, 'h', "X-Second", "2");
	frame(&f2.eob, 'c', NULL, 0);
	fake_start(&f1);
	fake_start(&f2);
	char spec[800];
	snprintf(spec, sizeof(spec), " unix:%s , %s ", f1.path, f2.path);
	set_milters(spec);
	struct hygiene_result r;
	char *err;
	assert_int_equal(run(&r, &err), 0);
	fake_done(&f1);
	/* the second milter saw the first one's header */
	assert_non_null(strstr(buf_cstr(&f2.headers), "X-First:1\n"));
	fake_done(&f2);
	char *out = result_text(&r);
	assert_non_null(strstr(out, "X-Dup: second\r\nX-First: 1\r\nX-Second: 2\r\n\r\nHello"));
	free(out);
	hygiene_result_free(&r);
}

/* One milter answering `answer` at command `at`; the result in r. */
static int
run_answer(char at, const struct buf *answer, struct hygiene_result *r, char **err_r,
    struct buf *cmds_r)
{
	struct fake f;
	fake_init(&f, "ans");
	f.answer_at = at;
	buf_append(&f.answer, answer->data, answer->len);
	if (at == 'E')
		buf_append(&f.eob, answer->data, answer->len);
	fake_serve(&f);
	int rc = run(r, err_r);
	fake_stop(&f);
	if (cmds_r != NULL)
		buf_append(cmds_r, f.cmds.data, f.cmds.len);
	fake_done(&f);
	return rc;
}

static void
test_final_replies(void **state)
{
	(void)state;
	struct hygiene_result r;
	char *err;
	struct buf a = BUF_INIT;

	frame(&a, 'r', NULL, 0);
	assert_int_equal(run_answer('E', &a, &r, &err, NULL), 0);
	assert_int_equal(r.action, HYGIENE_REJECT);
	assert_string_equal(r.reply, "550 5.7.1 Message rejected by filter");
	assert_non_null(strstr(buf_cstr(&r.reasons), ":reject"));
	hygiene_result_free(&r);

	/* a reject at MAIL ends the conversation there */
	struct buf cmds = BUF_INIT;
	assert_int_equal(run_answer('M', &a, &r, &err, &cmds), 0);
	assert_int_equal(r.action, HYGIENE_REJECT);
	assert_string_equal(buf_cstr(&cmds), "ODCHDMQ");
	buf_free(&cmds);
	hygiene_result_free(&r);

	buf_reset(&a);
	frame(&a, 't', NULL, 0);
	assert_int_equal(run_answer('E', &a, &r, &err, NULL), 0);
	assert_int_equal(r.action, HYGIENE_DEFER);
	assert_string_equal(r.reply, "451 4.7.1 Message temporarily rejected by filter");
	hygiene_result_free(&r);

	buf_reset(&a);
	frame(&a, 'd', NULL, 0);
	assert_int_equal(run_answer('E', &a, &r, &err, NULL), 0);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	assert_non_null(strstr(buf_cstr(&r.reasons), "milter:unix:"));
	assert_non_null(strstr(buf_cstr(&r.reasons), ":quarantine"));
	hygiene_result_free(&r);

	buf_reset(&a);
	frame_strs(&a, 'q', "suspicious", NULL);
	frame(&a, 'a', NULL, 0);
	assert_int_equal(run_answer('E', &a, &r, &err, NULL), 0);
	assert_int_equal(r.action, HYGIENE_QUARANTINE);
	hygiene_result_free(&r);

	buf_reset(&a);
	frame_strs(&a, 'y', "554 5.7.0 Go away", NULL);
	assert_int_equal(run_answer('E', &a, &r, &err, NULL), 0);
	assert_int_equal(r.action, HYGIENE_REJECT);
	assert_string_equal(r.reply, "554 5.7.0 Go away");
	hygiene_result_free(&r);

	buf_reset(&a);
	frame_strs(&a, 'y', "452 4.3.1 Later", NULL);
	assert_int_equal(run_answer('H', &a, &r, &err, NULL), 0);
	assert_int_equal(r.action, HYGIENE_DEFER);
	assert_string_equal(r.reply, "452 4.3.1 Later");
	hygiene_result_free(&r);

	/* multi-line, CR LF inside, or not a 4xx/5xx: our own text */
	static const char *const bad[] = { "550-5.7.1 a\r\n550 5.7.1 b", "250 ok", "5x0 no",
		"550 bad\001char" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&a);
		frame_strs(&a, 'y', bad[i], NULL);
		assert_int_equal(run_answer('E', &a, &r, &err, NULL), 0);
		assert_int_equal(r.action, HYGIENE_REJECT);
		assert_string_equal(r.reply, "550 5.7.1 Message rejected by filter");
		hygiene_result_free(&r);
	}

	/* one recipient refused: the message goes on */
	buf_reset(&a);
	frame(&a, 'r', NULL, 0);
	cmds = (struct buf)BUF_INIT;
	struct fake f;
	fake_init(&f, "rcpt");
	f.answer_at = 'R';
	buf_append(&f.answer, a.data, a.len);
	frame(&f.eob, 'c', NULL, 0);
	fake_serve(&f);
	assert_int_equal(run(&r, &err), 0);
	fake_done(&f);
	/* both recipients refused → the message is refused */
	assert_int_equal(r.action, HYGIENE_REJECT);
	hygiene_result_free(&r);
	buf_free(&a);
}

static void
test_accept_early_and_skips(void **state)
{
	(void)state;
	struct hygiene_result r;
	char *err;
	struct buf a = BUF_INIT, cmds = BUF_INIT;
	frame(&a, 'a', NULL, 0);
	assert_int_equal(run_answer('C', &a, &r, &err, &cmds), 0);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	assert_string_equal(buf_cstr(&cmds), "ODCQ");
	hygiene_result_free(&r);
	buf_free(&cmds);
	buf_free(&a);

	/* no headers wanted, headers not answered; body skipped after one chunk */
	struct fake f;
	fake_init(&f, "skip");
	f.pflags = NOHDRS | SKIP;
	f.skip_body = 1;
	frame(&f.eob, 'c', NULL, 0);
	fake_serve(&f);
	size_t big = 200000;
	char *msg = xmalloc(big + 64);
	int n = snprintf(msg, 64, "Subject: big\r\n\r\n");
	memset(msg + n, 'x', big);
	assert_int_equal(run_msg(msg, (size_t)n + big, &r, &err), 0);
	fake_stop(&f);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	assert_null(strchr(buf_cstr(&f.cmds), 'L'));
	assert_int_equal(f.body_chunks, 1);
	assert_int_equal(f.body.len, 65535);
	fake_done(&f);
	hygiene_result_free(&r);

	/* the body in 65535-byte chunks, none answered */
	fake_init(&f, "nr");
	f.pflags = NR_BODY | NR_HDR;
	frame(&f.eob, 'c', NULL, 0);
	fake_serve(&f);
	assert_int_equal(run_msg(msg, (size_t)n + big, &r, &err), 0);
	fake_stop(&f);
	assert_int_equal(f.body_chunks, 4);
	assert_int_equal(f.body.len, big);
	fake_done(&f);
	hygiene_result_free(&r);
	free(msg);
}

static void
test_failures(void **state)
{
	(void)state;
	struct hygiene_result r;
	char *err;

	/* nobody listening */
	char spec[400];
	snprintf(spec, sizeof(spec), "unix:%s/none.sock", tmpdir);
	set_milters(spec);
	assert_int_equal(run(&r, &err), -1);
	assert_non_null(err);
	assert_int_equal(r.action, HYGIENE_ACCEPT);
	free(err);
	hygiene_result_free(&r);
	set_milters("inet:127.0.0.1:1");
	assert_int_equal(run(&r, &err), -1);
	free(err);
	hygiene_result_free(&r);
	set_milters("bogus:thing");
	assert_int_equal(run(&r, &err), -1);
	free(err);
	hygiene_result_free(&r);

	struct fake f;
	int *flags[] = { &f.garbage, &f.huge, &f.silent_eob };
	for (size_t i = 0; i < 3; i++) {
		fake_init(&f, "bad");
		*flags[i] = 1;
		fake_serve(&f);
		assert_int_equal(run(&r, &err), -1);
		assert_non_null(err);
		free(err);
		assert_int_equal(r.action, HYGIENE_ACCEPT);
		hygiene_result_free(&r);
		fake_done(&f);
	}

	/* an unexpected reply in the middle */
	struct buf a = BUF_INIT;
	frame(&a, 'Z', "x", 1);
	assert_int_equal(run_answer('H', &a, &r, &err, NULL), -1);
	free(err);
	hygiene_result_free(&r);
	/* a header modification without its strings */
	buf_reset(&a);
	frame(&a, 'm', "\0\0", 2);
	assert_int_equal(run_answer('E', &a, &r, &err, NULL), -1);
	free(err);
	hygiene_result_free(&r);
	buf_free(&a);

	/* disabled by policy: nothing is called */
	pol.milter_enabled = 0;
	set_milters("unix:/nonexistent/x.sock");
	assert_int_equal(run(&r, &err), 0);
	hygiene_result_free(&r);
	pol.milter_enabled = 1;
}

static void
test_doc(void **state)
{
	(void)state;
	static const char msg[] = "A: 1\nB:2\r\n cont\r\nnot a header\r\n\r\nbody";
	struct milter_doc d;
	milter_doc_parse(&d, (const unsigned char *)msg, strlen(msg));
	assert_int_equal(d.n, 3);
	assert_null(d.f[2].name);
	char *v = milter_doc_value(&d, 1, 0);
	assert_string_equal(v, "2\r\n cont");
	free(v);
	size_t n;
	unsigned char *out = milter_doc_render(&d, &n);
	assert_int_equal(n, strlen(msg));                      /* unchanged, byte for byte */
	assert_memory_equal(out, "A: 1\nB:2\r\n cont\r\nnot a header\r\n\r\nbody", n);
	free(out);
	milter_doc_insert(&d, 5, "Z", " end");
	milter_doc_change(&d, 3, "A", " none");             /* no third A: added */
	out = milter_doc_render(&d, &n);
	assert_memory_equal(out, "A: 1\nB:2\r\n cont\r\nnot a header\r\nZ: end\r\nA: none\r\n\r\nbody",
	    n);
	free(out);
	milter_doc_free(&d);
	/* no header/body separator at all */
	milter_doc_parse(&d, (const unsigned char *)"X: y", 4);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.body.len, 0);
	milter_doc_free(&d);
	assert_true(milter_doc_name_ok("X-Ok"));
	assert_false(milter_doc_name_ok("Bad Name"));
	assert_false(milter_doc_name_ok("Bad:Name"));
	assert_false(milter_doc_name_ok(""));
}

int
main(void)
{
	g_mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conversation_and_accept),
		cmocka_unit_test(test_modifications),
		cmocka_unit_test(test_two_milters_chain),
		cmocka_unit_test(test_final_replies),
		cmocka_unit_test(test_accept_early_and_skips),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_doc),
	};
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	g_mime_shutdown();
	return rc;
}
