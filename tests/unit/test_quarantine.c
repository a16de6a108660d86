/*
 * test_quarantine — the quarantine's bookkeeping: put, list (per tenant and
 * recipient), show, delete, release (re-queued with the original envelope
 * and bytes, then gone), the digest (one per recipient, once), orphan files
 * removed at open, and a put that crashes between its file and its row.
 * Each test gets a fresh data directory, event base, worker pool and queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config/config.h"
#include "hygiene/quarantine.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/mem.h"
#include "lib/sys.h"
#include "lib/worker.h"
#include "queue/queue.h"
#include "server.h"
#include "unit_tmp.h"

struct fixture {
	struct server srv;
	char dir[256];
};

static const char msg1[] = "Received: from x\r\nFrom: Eve <eve@spam.example>\r\n"
    "To: b@acme.example\r\nSubject: cheap pills\r\n\r\nbuy now\r\n";
static const char msg2[] = "From: mallory@spam.example\r\nTo: c@acme.example\r\n"
    "Subject: second\r\n\r\nhello\r\n";

static int
setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	char *err = NULL;
	assert_int_equal(unit_tmpdir(fx->dir, sizeof(fx->dir), "quarantine"), 0);
	assert_int_equal(config_load(NULL, &fx->srv.cfg, &err), 0);
	free(fx->srv.cfg->data_dir);
	fx->srv.cfg->data_dir = xstrdup(fx->dir);
	fx->srv.base = event_base_new();
	fx->srv.workers = worker_pool_new(fx->srv.base, 2);
	assert_int_equal(queue_open(&fx->srv, &fx->srv.queue, &err), 0);
	assert_int_equal(quarantine_open(&fx->srv, &err), 0);
	assert_non_null(fx->srv.quarantine);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char *err = NULL;
	sys_fault_configure(NULL, &err);
	quarantine_close(&fx->srv);
	queue_close(&fx->srv.queue);
	worker_pool_free(&fx->srv.workers);
	event_base_free(fx->srv.base);
	config_free(&fx->srv.cfg);
	struct buf cmd = BUF_INIT;
	buf_appendf(&cmd, "rm -rf '%s'", fx->dir);
	assert_int_equal(system(buf_cstr(&cmd)), 0);
	buf_free(&cmd);
	free(fx);
	return 0;
}

/* Stores msg for rcpt (of tenant) and returns its id in id. */
static void
put_one(struct fixture *fx, const char *tenant, const char *rcpt, const char *msg,
    const char *subject, char id[ID_LEN + 1])
{
	struct queue_rcpt r = { .addr = (char *)rcpt, .orcpt = (char *)"rfc822;x@y",
		.notify = QUEUE_NOTIFY_FAILURE };
	struct queue_envelope env = {
		.direction = QUEUE_INBOUND, .tenant = (char *)tenant,
		.sender = (char *)"eve@spam.example", .envid = (char *)"ENV-9", .body_8bit = 1,
		.client_addr = (char *)"192.0.2.9", .client_helo = (char *)"spam.example",
		.arrival = 1700000000, .rcpts = &r, .nrcpts = 1,
	};
	id_generate(env.id);
	struct quarantine_item item = {
		.env = &env, .action_reason = "spam:1000.0 gtube", .score = 1000.0,
		.subject = subject, .from = "eve@spam.example",
	};
	char *err = NULL;
	assert_int_equal(quarantine_put(fx->srv.quarantine, &item, (const unsigned char *)msg,
	    strlen(msg), id, &err), 0);
	assert_null(err);
	assert_true(id_valid(id));
}

static char *
item_path(struct fixture *fx, const char *tenant, const char *name)
{
	return buf_printf("%s/quarantine/%s/%s", fx->dir, tenant, name);
}

static int
exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static size_t
count_files(struct fixture *fx, const char *tenant)
{
	char *cmd = buf_printf("ls -A '%s/quarantine/%s' | wc -l", fx->dir, tenant);
	FILE *p = popen(cmd, "r");
	size_t n = 999;
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%zu", &n), 1);
	pclose(p);
	free(cmd);
	return n;
}

static size_t
list_count(struct fixture *fx, const char *tenant, const char *rcpt)
{
	char *err = NULL;
	json_t *l = quarantine_list(fx->srv.quarantine, tenant, rcpt, 100, &err);
	assert_non_null(l);
	size_t n = json_array_size(l);
	json_decref(l);
	return n;
}

static void
test_put_list_show(void **state)
{
	struct fixture *fx = *state;
	char id1[ID_LEN + 1], id2[ID_LEN + 1];
	char *err = NULL;
	put_one(fx, "acme", "b@acme.example", msg1, "cheap pills", id1);
	put_one(fx, "acme", "c@acme.example", msg2, "second", id2);

	json_t *l = quarantine_list(fx->srv.quarantine, "acme", NULL, 100, &err);
	assert_int_equal(json_array_size(l), 2);
	/* newest first */
	assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "id")), id2);
	json_t *first = json_array_get(l, 1);
	assert_string_equal(json_string_value(json_object_get(first, "subject")), "cheap pills");
	assert_string_equal(json_string_value(json_object_get(first, "sender")),
	    "eve@spam.example");
	assert_string_equal(json_string_value(json_array_get(json_object_get(first, "rcpts"), 0)),
	    "b@acme.example");
	assert_int_equal(json_integer_value(json_object_get(first, "size")), strlen(msg1));
	json_decref(l);

	/* per recipient, case-insensitive; limit */
	assert_int_equal(list_count(fx, "acme", "B@Acme.Example"), 1);
	assert_int_equal(list_count(fx, "acme", "nobody@acme.example"), 0);
	l = quarantine_list(fx->srv.quarantine, "acme", NULL, 1, &err);
	assert_int_equal(json_array_size(l), 1);
	json_decref(l);
	/* another tenant sees nothing */
	assert_int_equal(list_count(fx, "other", NULL), 0);

	json_t *s = quarantine_show(fx->srv.quarantine, "acme", id1, &err);
	assert_non_null(s);
	assert_string_equal(json_string_value(json_object_get(s, "client")), "192.0.2.9");
	assert_string_equal(json_string_value(json_object_get(s, "helo")), "spam.example");
	assert_string_equal(json_string_value(json_object_get(s, "reasons")), "spam:1000.0 gtube");
	const char *h = json_string_value(json_object_get(s, "headers"));
	assert_non_null(strstr(h, "Subject: cheap pills\r\n"));
	assert_null(strstr(h, "buy now"));            /* headers only */
	json_decref(s);

	assert_null(quarantine_show(fx->srv.quarantine, "other", id1, &err));
	assert_non_null(strstr(err, "not found"));
	free(err);
	err = NULL;
	assert_null(quarantine_show(fx->srv.quarantine, "acme", "../../etc/passwd", &err));
	free(err);
}

static void
test_delete(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1];
	char *err = NULL;
	put_one(fx, "acme", "b@acme.example", msg1, "cheap pills", id);
	char *name = buf_printf("%s.eml", id);
	char *path = item_path(fx, "acme", name);
	assert_true(exists(path));
	/* another tenant cannot delete it */
	assert_int_equal(quarantine_delete(fx->srv.quarantine, "other", id, &err), -1);
	free(err);
	err = NULL;
	assert_true(exists(path));
	assert_int_equal(quarantine_delete(fx->srv.quarantine, "acme", id, &err), 0);
	assert_false(exists(path));
	assert_int_equal(list_count(fx, "acme", NULL), 0);
	assert_int_equal(list_count(fx, "acme", "b@acme.example"), 0);
	assert_int_equal(quarantine_delete(fx->srv.quarantine, "acme", id, &err), -1);
	assert_non_null(strstr(err, "not found"));
	free(err);
	free(name);
	free(path);
}

struct found {
	struct queue_entry *e;
	size_t n;
};

static void
find_cb(void *arg, struct queue_entry *e)
{
	struct found *f = arg;
	f->e = e;
	f->n++;
}

static void
run_until_empty(struct fixture *fx, const char *tenant)
{
	for (int i = 0; i < 1000 && list_count(fx, tenant, NULL) > 0; i++)
		event_base_loop(fx->srv.base, EVLOOP_ONCE);
}

static void
test_release(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1];
	char *err = NULL;
	put_one(fx, "acme", "b@acme.example", msg1, "cheap pills", id);
	assert_int_equal(quarantine_release(&fx->srv, "other", id, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(quarantine_release(&fx->srv, "acme", id, &err), 0);
	/* a second release while the first is being committed is refused */
	int again = quarantine_release(&fx->srv, "acme", id, &err);
	if (again < 0) {
		free(err);
		err = NULL;
	}
	run_until_empty(fx, "acme");
	assert_int_equal(again, -1);
	assert_int_equal(list_count(fx, "acme", NULL), 0);

	struct found f = { 0 };
	queue_foreach(fx->srv.queue, find_cb, &f);
	assert_int_equal(f.n, 1);
	const struct queue_envelope *env = &f.e->env;
	assert_true(env->flags & QUEUE_F_RELEASED);
	assert_int_equal(env->direction, QUEUE_INBOUND);
	assert_string_equal(env->tenant, "acme");
	assert_string_equal(env->sender, "eve@spam.example");
	assert_string_equal(env->envid, "ENV-9");
	assert_string_equal(env->client_addr, "192.0.2.9");
	assert_string_equal(env->client_helo, "spam.example");
	assert_int_equal(env->nrcpts, 1);
	assert_string_equal(env->rcpts[0].addr, "b@acme.example");
	assert_string_equal(env->rcpts[0].orcpt, "rfc822;x@y");
	assert_int_equal(env->rcpts[0].notify, QUEUE_NOTIFY_FAILURE);
	/* the bytes are the original's */
	char got[sizeof(msg1)];
	assert_int_equal(f.e->body_size, strlen(msg1));
	int fd = queue_entry_open_body(fx->srv.queue, f.e);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, strlen(msg1), 0), (ssize_t)strlen(msg1));
	assert_memory_equal(got, msg1, strlen(msg1));
	close(fd);
	/* and the quarantine copy is gone */
	char *name = buf_printf("%s.eml", id);
	char *path = item_path(fx, "acme", name);
	assert_false(exists(path));
	free(name);
	free(path);
}

static void
reopen(struct fixture *fx)
{
	char *err = NULL;
	quarantine_close(&fx->srv);
	assert_null(fx->srv.quarantine);
	assert_int_equal(quarantine_open(&fx->srv, &err), 0);
}

static void
test_orphans_removed_at_open(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1], orphan[ID_LEN + 1];
	put_one(fx, "acme", "b@acme.example", msg1, "cheap pills", id);
	id_generate(orphan);
	char *oname = buf_printf("%s.eml", orphan), *tname = buf_printf("%s.tmp", orphan);
	char *opath = item_path(fx, "acme", oname), *tpath = item_path(fx, "acme", tname);
	assert_int_equal(sys_write_file_atomic(opath, "x", 1, 0600), 0);
	assert_int_equal(sys_write_file_atomic(tpath, "y", 1, 0600), 0);
	assert_int_equal(count_files(fx, "acme"), 3);
	reopen(fx);
	assert_false(exists(opath));
	assert_false(exists(tpath));
	assert_int_equal(count_files(fx, "acme"), 1);
	/* the real item survived, and still shows */
	char *err = NULL;
	json_t *s = quarantine_show(fx->srv.quarantine, "acme", id, &err);
	assert_non_null(s);
	json_decref(s);
	free(oname);
	free(tname);
	free(opath);
	free(tpath);
}

static void
test_put_crash_before_row(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1];
	put_one(fx, "acme", "b@acme.example", msg1, "cheap pills", id);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The file's fsync passes, the directory's fsync (after the rename,
		 * before the row) kills the process. */
		char *err = NULL;
		char cid[ID_LEN + 1];
		if (sys_fault_configure("fsync=crash@2", &err) < 0)
			_exit(3);
		put_one(fx, "acme", "c@acme.example", msg2, "second", cid);
		_exit(0);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 137);
	/* the message file exists without its row ... */
	assert_int_equal(count_files(fx, "acme"), 2);
	assert_int_equal(list_count(fx, "acme", NULL), 1);
	/* ... until the next open removes it */
	reopen(fx);
	assert_int_equal(count_files(fx, "acme"), 1);
	assert_int_equal(list_count(fx, "acme", NULL), 1);
	assert_int_equal(list_count(fx, "acme", "c@acme.example"), 0);
}

static void
test_put_fsync_error(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1];
	char *err = NULL;
	put_one(fx, "acme", "b@acme.example", msg1, "cheap pills", id);
	assert_int_equal(sys_fault_configure("fsync=eio@1", &err), 0);
	struct queue_rcpt r = { .addr = (char *)"c@acme.example" };
	struct queue_envelope env = { .tenant = (char *)"acme", .sender = (char *)"",
		.rcpts = &r, .nrcpts = 1 };
	id_generate(env.id);
	struct quarantine_item item = { .env = &env, .action_reason = "x" };
	char out[ID_LEN + 1];
	assert_int_equal(quarantine_put(fx->srv.quarantine, &item, (const unsigned char *)msg2,
	    strlen(msg2), out, &err), -1);
	assert_non_null(err);
	free(err);
	err = NULL;
	assert_string_equal(out, "");
	assert_int_equal(sys_fault_configure(NULL, &err), 0);
	assert_int_equal(count_files(fx, "acme"), 1);     /* no temp file left */
	assert_int_equal(list_count(fx, "acme", NULL), 1);
	/* no tenant, or no recipient: refused */
	env.tenant = NULL;
	assert_int_equal(quarantine_put(fx->srv.quarantine, &item, (const unsigned char *)msg2,
	    strlen(msg2), out, &err), -1);
	free(err);
}

struct body_check {
	size_t n;
	int b_has_both, c_has_one;
	char id1[ID_LEN + 1], id2[ID_LEN + 1], id3[ID_LEN + 1];
	struct fixture *fx;
};

static void
digest_cb(void *arg, struct queue_entry *e)
{
	struct body_check *c = arg;
	c->n++;
	assert_string_equal(e->env.sender, "");
	assert_int_equal(e->env.nrcpts, 1);
	char *body = xcalloc(1, e->body_size + 1);
	int fd = queue_entry_open_body(c->fx->srv.queue, e);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, body, e->body_size, 0), (ssize_t)e->body_size);
	close(fd);
	assert_non_null(strstr(body, "Auto-Submitted: auto-generated\r\n"));
	assert_non_null(strstr(body, "quarantine release acme"));
	if (strcmp(e->env.rcpts[0].addr, "b@acme.example") == 0)
		c->b_has_both = strstr(body, c->id1) && strstr(body, c->id2) &&
		    strstr(body, "cheap pills") && !strstr(body, c->id3);
	else if (strcmp(e->env.rcpts[0].addr, "c@acme.example") == 0)
		c->c_has_one = strstr(body, c->id3) && !strstr(body, c->id1);
	free(body);
}

static void
test_digest(void **state)
{
	struct fixture *fx = *state;
	struct body_check c = { .fx = fx };
	char *err = NULL;
	put_one(fx, "acme", "b@acme.example", msg1, "cheap pills", c.id1);
	put_one(fx, "acme", "B@acme.example", msg1, "more pills", c.id2);
	put_one(fx, "acme", "c@acme.example", msg2, "second", c.id3);
	assert_int_equal(quarantine_digest_run(&fx->srv, "acme", &err), 2);
	for (int i = 0; i < 1000 && queue_count(fx->srv.queue) < 2; i++)
		event_base_loop(fx->srv.base, EVLOOP_ONCE);
	queue_foreach(fx->srv.queue, digest_cb, &c);
	assert_int_equal(c.n, 2);
	assert_true(c.b_has_both);
	assert_true(c.c_has_one);
	/* items are listed once: a second run sends nothing */
	assert_int_equal(quarantine_digest_run(&fx->srv, "acme", &err), 0);
	assert_int_equal(quarantine_digest_run(&fx->srv, NULL, &err), 0);
	json_t *l = quarantine_list(fx->srv.quarantine, "acme", NULL, 10, &err);
	assert_true(json_is_true(json_object_get(json_array_get(l, 0), "digest_sent")));
	json_decref(l);
	/* a new item gets its own digest */
	char id4[ID_LEN + 1];
	put_one(fx, "acme", "c@acme.example", msg2, "third", id4);
	assert_int_equal(quarantine_digest_run(&fx->srv, NULL, &err), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_list_show, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphans_removed_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_crash_before_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_fsync_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_digest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
