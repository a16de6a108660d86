/*
 * test_queue — the durable spool: commit and recover, torn files, tmp/
 * purge, fsync faults, recorded outcomes and hold surviving a reopen,
 * group commit.  Each test gets a fresh data directory, event base and
 * worker pool (struct fixture).
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
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config/config.h"
#include "continuity/continuity.h"
#include "imap/imap_server.h"
#include "deliver/scheduler.h"
#include "deliver/smtp_client.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/mem.h"
#include "lib/sys.h"
#include "lib/worker.h"
#include "queue/queue.h"
#include "server.h"
#include "store/store.h"

struct fixture {
	struct server srv;
	char dir[64];
	struct queue *q;
};

static const char body[] = "From: a@example.org\r\nTo: b@example.com\r\nSubject: t\r\n\r\nhello\r\n";

static void
fx_open_queue(struct fixture *fx)
{
	char *err = NULL;
	assert_int_equal(queue_open(&fx->srv, &fx->q, &err), 0);
}

static int
setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	char *err = NULL;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/mailark-test-queue-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(config_load(NULL, &fx->srv.cfg, &err), 0);
	free(fx->srv.cfg->data_dir);
	fx->srv.cfg->data_dir = xstrdup(fx->dir);
	fx->srv.base = event_base_new();
	fx->srv.workers = worker_pool_new(fx->srv.base, 2);
	fx_open_queue(fx);
	*state = fx;
	return 0;
}

static void
rm_rf(const char *dir)
{
	struct buf cmd = BUF_INIT;
	buf_appendf(&cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(buf_cstr(&cmd)), 0);
	buf_free(&cmd);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char *err = NULL;
	sys_fault_configure(NULL, &err);
	queue_close(&fx->q);
	worker_pool_free(&fx->srv.workers);
	event_base_free(fx->srv.base);
	config_free(&fx->srv.cfg);
	rm_rf(fx->dir);
	free(fx);
	return 0;
}

static void
fx_reopen(struct fixture *fx)
{
	queue_close(&fx->q);
	fx_open_queue(fx);
}

static void
make_env(struct queue_envelope *env, struct queue_rcpt *rcpts)
{
	memset(env, 0, sizeof(*env));
	memset(rcpts, 0, 2 * sizeof(*rcpts));
	rcpts[0].addr = "b@example.com";
	rcpts[0].orcpt = "rfc822;b@example.com";
	rcpts[0].notify = QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY;
	rcpts[1].addr = "c@example.com";
	env->direction = QUEUE_INBOUND;
	env->tenant = "acme";
	env->sender = "a@example.org";
	env->envid = "ENV-1";
	env->ret_hdrs = 1;
	env->body_8bit = 1;
	env->client_addr = "192.0.2.7";
	env->client_helo = "client.example.org";
	env->arrival = 1700000000;
	env->rcpts = rcpts;
	env->nrcpts = 2;
}

struct wait {
	int done;
	int error;
};

static void
on_done(void *arg, int error)
{
	struct wait *w = arg;
	w->done = 1;
	w->error = error;
}

static void
run_until(struct fixture *fx, const int *flag)
{
	for (int i = 0; i < 1000 && !*flag; i++)
		event_base_loop(fx->srv.base, EVLOOP_ONCE);
	assert_true(*flag);
}

/* Commits body with make_env's envelope; returns the callback's error. */
static int
commit_one(struct fixture *fx, char id[ID_LEN + 1])
{
	struct queue_envelope env;
	struct queue_rcpt rcpts[2];
	struct wait w = { 0, -1 };
	char *err = NULL;
	id_generate(id);
	make_env(&env, rcpts);
	struct queue_writer *wr = queue_writer_new(fx->q, id, &err);
	assert_non_null(wr);
	assert_int_equal(queue_writer_append(wr, body, 20), 0);
	assert_int_equal(queue_writer_append(wr, body + 20, sizeof(body) - 1 - 20), 0);
	assert_int_equal(queue_writer_size(wr), sizeof(body) - 1);
	queue_writer_commit(wr, &env, on_done, &w);
	run_until(fx, &w.done);
	return w.error;
}

static size_t
count_files(struct fixture *fx, const char *sub)
{
	struct buf cmd = BUF_INIT;
	buf_appendf(&cmd, "ls -A '%s/queue/%s' | wc -l", fx->dir, sub);
	FILE *p = popen(buf_cstr(&cmd), "r");
	size_t n = 999;
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%zu", &n), 1);
	pclose(p);
	buf_free(&cmd);
	return n;
}

static void
path_of(struct fixture *fx, const char *sub, const char *id, char *out, size_t size)
{
	snprintf(out, size, "%s/queue/%s/%s", fx->dir, sub, id);
}

static void
assert_body(struct fixture *fx, struct queue_entry *e)
{
	char got[256];
	assert_int_equal(e->body_size, sizeof(body) - 1);
	int fd = queue_entry_open_body(fx->q, e);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, sizeof(body) - 1, 0), (ssize_t)(sizeof(body) - 1));
	assert_memory_equal(got, body, sizeof(body) - 1);
	close(fd);
}

static void
test_commit_and_reopen(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1];
	assert_int_equal(commit_one(fx, id), 0);
	assert_int_equal(queue_count(fx->q), 1);
	assert_int_equal(fx->srv.metrics.queue_messages, 1);
	assert_body(fx, queue_entry_find(fx->q, id));

	fx_reopen(fx);
	struct queue_entry *e = queue_entry_find(fx->q, id);
	assert_non_null(e);
	assert_int_equal(queue_count(fx->q), 1);
	assert_body(fx, e);
	assert_string_equal(e->env.id, id);
	assert_int_equal(e->env.direction, QUEUE_INBOUND);
	assert_string_equal(e->env.tenant, "acme");
	assert_string_equal(e->env.sender, "a@example.org");
	assert_string_equal(e->env.envid, "ENV-1");
	assert_int_equal(e->env.ret_hdrs, 1);
	assert_int_equal(e->env.smtputf8, 0);
	assert_int_equal(e->env.body_8bit, 1);
	assert_string_equal(e->env.client_addr, "192.0.2.7");
	assert_string_equal(e->env.client_helo, "client.example.org");
	assert_int_equal(e->env.arrival, 1700000000);
	assert_int_equal(e->env.nrcpts, 2);
	assert_string_equal(e->env.rcpts[0].addr, "b@example.com");
	assert_string_equal(e->env.rcpts[0].orcpt, "rfc822;b@example.com");
	assert_int_equal(e->env.rcpts[0].notify, QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY);
	assert_int_equal(e->env.rcpts[0].state, RCPT_PENDING);
	assert_string_equal(e->env.rcpts[1].addr, "c@example.com");
	assert_null(e->env.rcpts[1].orcpt);
	assert_int_equal(e->held, 0);
}

static void
test_torn_file_not_loaded(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1], id2[ID_LEN + 1], path[512];
	struct stat st;
	assert_int_equal(commit_one(fx, id), 0);
	assert_int_equal(commit_one(fx, id2), 0);
	queue_close(&fx->q);
	path_of(fx, "msg", id, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 1), 0);
	/* A flipped body byte breaks the checksum of the second. */
	path_of(fx, "msg", id2, path, sizeof(path));
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 3), 1);
	close(fd);
	/* Garbage with a valid-looking name. */
	char garbage[ID_LEN + 1];
	id_generate(garbage);
	path_of(fx, "msg", garbage, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "garbage, not a queue file, at all, no END record", 48), 48);
	close(fd);
	fx_open_queue(fx);
	assert_int_equal(queue_count(fx->q), 0);
	assert_null(queue_entry_find(fx->q, id));
	assert_int_equal(count_files(fx, "msg"), 0);
	assert_int_equal(count_files(fx, "corrupt"), 3);
}

static void
test_tmp_purged(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1], *err = NULL;
	id_generate(id);
	struct queue_writer *w = queue_writer_new(fx->q, id, &err);
	assert_non_null(w);
	assert_int_equal(queue_writer_append(w, body, sizeof(body) - 1), 0);
	assert_int_equal(count_files(fx, "tmp"), 1);
	/* A crash now: the writer is never committed.  Reopen on the same dir. */
	struct queue *q2 = NULL;
	assert_int_equal(queue_open(&fx->srv, &q2, &err), 0);
	assert_int_equal(count_files(fx, "tmp"), 0);
	assert_int_equal(queue_count(q2), 0);
	queue_close(&q2);
	queue_writer_abort(&w);
	assert_null(w);
}

static void
test_abort_removes_tmp(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1], *err = NULL;
	id_generate(id);
	struct queue_writer *w = queue_writer_new(fx->q, id, &err);
	assert_int_equal(queue_writer_append(w, body, 5), 0);
	queue_writer_abort(&w);
	assert_int_equal(count_files(fx, "tmp"), 0);
	assert_int_equal(queue_count(fx->q), 0);
}

static void
test_fsync_fault(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1], *err = NULL;
	assert_int_equal(sys_fault_configure("fsync=eio@1", &err), 0);
	assert_int_equal(commit_one(fx, id), EIO);
	assert_int_equal(queue_count(fx->q), 0);
	assert_int_equal(count_files(fx, "msg"), 0);
	assert_int_equal(count_files(fx, "tmp"), 0);
	/* The directory fsync (the second fsync) failing also loses nothing silently. */
	assert_int_equal(sys_fault_configure("fsync=eio@2", &err), 0);
	assert_int_equal(commit_one(fx, id), EIO);
	assert_int_equal(count_files(fx, "msg"), 0);
	assert_int_equal(sys_fault_configure(NULL, &err), 0);
	assert_int_equal(commit_one(fx, id), 0);
	fx_reopen(fx);
	assert_int_equal(queue_count(fx->q), 1);
}

static void
test_write_fault(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1], *err = NULL;
	/* Body appends succeed (writes 1-2), the envelope write (3rd) fails. */
	assert_int_equal(sys_fault_configure("write=enospc@3", &err), 0);
	assert_int_equal(commit_one(fx, id), ENOSPC);
	assert_int_equal(count_files(fx, "msg"), 0);
	assert_int_equal(count_files(fx, "tmp"), 0);
}

static void
record_one(struct fixture *fx, struct queue_entry *e, size_t idx, enum queue_rcpt_state st,
    const char *reply)
{
	struct wait w = { 0, -1 };
	queue_entry_record(fx->q, e, &idx, &st, &reply, 1, on_done, &w);
	run_until(fx, &w.done);
	assert_int_equal(w.error, 0);
}

static void
test_record_and_reopen(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1];
	assert_int_equal(commit_one(fx, id), 0);
	struct queue_entry *e = queue_entry_find(fx->q, id);
	record_one(fx, e, 1, RCPT_DELIVERED, "mx[192.0.2.1] said: 250 2.0.0 ok");
	assert_int_equal(e->env.rcpts[1].state, RCPT_DELIVERED);
	assert_false(queue_entry_finished(e));
	e->attempts = 3;
	e->next_attempt = 1800000000;
	e->last_attempt = 1700000100;
	queue_entry_note_attempt(fx->q, e);

	fx_reopen(fx);
	e = queue_entry_find(fx->q, id);
	assert_non_null(e);
	assert_int_equal(e->env.rcpts[0].state, RCPT_PENDING);
	assert_int_equal(e->env.rcpts[1].state, RCPT_DELIVERED);
	assert_string_equal(e->env.rcpts[1].last_reply, "mx[192.0.2.1] said: 250 2.0.0 ok");
	assert_int_equal(e->attempts, 3);
	assert_int_equal(e->next_attempt, 1800000000);

	record_one(fx, e, 0, RCPT_BOUNCED, "550 5.1.1 no such user");
	assert_true(queue_entry_finished(e));
	queue_entry_remove(fx->q, e);
	assert_int_equal(queue_count(fx->q), 0);
	assert_int_equal(count_files(fx, "msg"), 0);
	assert_int_equal(count_files(fx, "state"), 0);
	fx_reopen(fx);
	assert_int_equal(queue_count(fx->q), 0);
}

static void
test_torn_state_log(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1], path[512];
	assert_int_equal(commit_one(fx, id), 0);
	record_one(fx, queue_entry_find(fx->q, id), 0, RCPT_DELIVERED, "250 ok");
	queue_close(&fx->q);
	/* A crash in the middle of the next append leaves half a record. */
	path_of(fx, "state", id, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "R\x20\0\0\0" "1\t1", 8), 8);
	close(fd);
	fx_open_queue(fx);
	struct queue_entry *e = queue_entry_find(fx->q, id);
	assert_non_null(e);
	assert_int_equal(e->env.rcpts[0].state, RCPT_DELIVERED);
	assert_int_equal(e->env.rcpts[1].state, RCPT_PENDING);
	/* The torn tail was cut: a record appended now survives the next start. */
	record_one(fx, e, 1, RCPT_BOUNCED, "550 no");
	assert_int_equal(queue_entry_set_hold(fx->q, e, 1), 0);
	queue_close(&fx->q);
	fx_open_queue(fx);
	assert_int_equal(queue_count(fx->q), 0);   /* finished: removed at start */
}

static void
test_finished_entry_removed_at_start(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1];
	assert_int_equal(commit_one(fx, id), 0);
	struct queue_entry *e = queue_entry_find(fx->q, id);
	record_one(fx, e, 0, RCPT_DELIVERED, NULL);
	record_one(fx, e, 1, RCPT_EXPIRED, "timeout");
	/* Crash before queue_entry_remove: the next start removes it, delivers nothing. */
	fx_reopen(fx);
	assert_int_equal(queue_count(fx->q), 0);
	assert_int_equal(count_files(fx, "msg"), 0);
}

/* Returns what queue_entry_settle() returned; the callback has run with 0. */
static int
settle_one(struct fixture *fx, struct queue_entry *e, size_t idx, enum queue_rcpt_state st,
    const char *reply)
{
	struct wait w = { 0, -1 };
	int rc = queue_entry_settle(fx->q, e, &idx, &st, &reply, 1, on_done, &w);
	assert_int_equal(w.done, 0);   /* never called back from inside */
	run_until(fx, &w.done);
	assert_int_equal(w.error, 0);
	return rc;
}

static void
test_settle_writes_only_what_leaves_work(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1], path[512];
	struct stat st;
	assert_int_equal(commit_one(fx, id), 0);
	struct queue_entry *e = queue_entry_find(fx->q, id);
	/* One recipient still pending: the outcome is recorded durably. */
	assert_int_equal(settle_one(fx, e, 0, RCPT_DELIVERED, "250 ok"), 0);
	path_of(fx, "state", id, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	off_t logged = st.st_size;
	assert_true(logged > 0);
	/* The last one finishes the entry: nothing is written, the caller removes it. */
	assert_int_equal(settle_one(fx, e, 1, RCPT_BOUNCED, "550 no"), 1);
	assert_true(queue_entry_finished(e));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, logged);
	queue_entry_remove(fx->q, e);
	assert_int_equal(count_files(fx, "msg"), 0);
	assert_int_equal(count_files(fx, "state"), 0);
}

static void
test_settled_entry_removed_at_close(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1], other[ID_LEN + 1];
	assert_int_equal(commit_one(fx, id), 0);
	assert_int_equal(commit_one(fx, other), 0);
	struct queue_entry *e = queue_entry_find(fx->q, id);
	size_t idx[2] = { 0, 1 };
	enum queue_rcpt_state sts[2] = { RCPT_DELIVERED, RCPT_DELIVERED };
	struct wait w = { 0, -1 };
	assert_int_equal(queue_entry_settle(fx->q, e, idx, sts, NULL, 2, on_done, &w), 1);
	run_until(fx, &w.done);
	/* Not removed by its owner (a scheduler cut at shutdown): close removes it. */
	fx_reopen(fx);
	assert_null(queue_entry_find(fx->q, id));
	assert_non_null(queue_entry_find(fx->q, other));
	assert_int_equal(count_files(fx, "msg"), 1);
}

static void
test_hold_persists(void **state)
{
	struct fixture *fx = *state;
	char id[ID_LEN + 1];
	assert_int_equal(commit_one(fx, id), 0);
	struct queue_entry *e = queue_entry_find(fx->q, id);
	assert_int_equal(queue_entry_set_hold(fx->q, e, 1), 0);
	assert_int_equal(e->held, 1);
	fx_reopen(fx);
	e = queue_entry_find(fx->q, id);
	assert_int_equal(e->held, 1);
	assert_int_equal(queue_entry_set_hold(fx->q, e, 0), 0);
	fx_reopen(fx);
	e = queue_entry_find(fx->q, id);
	assert_int_equal(e->held, 0);
}

static void
count_ready(void *arg, struct queue_entry *e)
{
	(*(int *)arg)++;
}

static void
test_group_commit_and_listener(void **state)
{
	struct fixture *fx = *state;
	enum { N = 40 };
	struct wait w[N];
	struct queue_envelope env;
	struct queue_rcpt rcpts[2];
	char *err = NULL;
	int ready = 0, done = 0;
	queue_set_ready_listener(fx->q, count_ready, &ready);
	make_env(&env, rcpts);
	for (int i = 0; i < N; i++) {
		char id[ID_LEN + 1];
		id_generate(id);
		w[i].done = 0;
		w[i].error = -1;
		struct queue_writer *wr = queue_writer_new(fx->q, id, &err);
		assert_non_null(wr);
		assert_int_equal(queue_writer_append(wr, body, sizeof(body) - 1), 0);
		queue_writer_commit(wr, &env, on_done, &w[i]);
	}
	for (int k = 0; k < 5000 && done < N; k++) {
		event_base_loop(fx->srv.base, EVLOOP_ONCE);
		done = 0;
		for (int i = 0; i < N; i++)
			done += w[i].done;
	}
	assert_int_equal(done, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(w[i].error, 0);
	assert_int_equal(ready, N);
	assert_int_equal(queue_count(fx->q), N);
	fx_reopen(fx);
	assert_int_equal(queue_count(fx->q), N);
	ready = 0;
	queue_set_ready_listener(fx->q, count_ready, &ready);
	queue_announce_all(fx->q);
	assert_int_equal(ready, N);
}

static void
test_inject(void **state)
{
	struct fixture *fx = *state;
	struct queue_envelope env;
	struct queue_rcpt rcpts[2];
	struct wait w = { 0, -1 };
	make_env(&env, rcpts);
	env.sender = "";
	env.direction = QUEUE_BOUNCE;
	id_generate(env.id);
	queue_inject(fx->q, &env, body, sizeof(body) - 1, on_done, &w);
	run_until(fx, &w.done);
	assert_int_equal(w.error, 0);
	fx_reopen(fx);
	struct queue_entry *e = queue_entry_find(fx->q, env.id);
	assert_non_null(e);
	assert_string_equal(e->env.sender, "");
	assert_int_equal(e->env.direction, QUEUE_BOUNCE);
	assert_body(fx, e);
}

/* ------------------------------------------------------------------
 * The scheduler, with a fake smtp_client and a fake store: acme.test and
 * beta.test are tenant domains routed to 127.0.0.1:2526; others are not.
 */

struct fake_call {
	enum delivery_next_hop hop;
	int port;
	char domain[64];
	char sender[64];
	char id[ID_LEN + 1];
	size_t nrcpts;
	char rcpts[8][64];
	smtp_client_done_cb *cb;
	void *arg;
	int done;
};

static struct fake_call calls[32];
static size_t ncalls;

void
smtp_client_deliver(struct server *srv, const struct delivery_request *req,
    smtp_client_done_cb *cb, void *arg)
{
	struct fake_call *c = &calls[ncalls++];
	assert_true(ncalls < 32);
	memset(c, 0, sizeof(*c));
	c->hop = req->hop;
	c->port = req->route.port;
	snprintf(c->domain, sizeof(c->domain), "%s", req->domain != NULL ? req->domain : "");
	snprintf(c->sender, sizeof(c->sender), "%s", req->sender);
	snprintf(c->id, sizeof(c->id), "%s", req->queue_id);
	c->nrcpts = req->nrcpts;
	for (size_t i = 0; i < req->nrcpts && i < 8; i++)
		snprintf(c->rcpts[i], sizeof(c->rcpts[i]), "%s", req->rcpts[i]);
	/* The body fd is readable from offset 0 for body_size bytes. */
	char first[5] = { 0 };
	assert_int_equal(pread(req->body_fd, first, 4, 0), 4);
	assert_true(req->body_size > 4);
	c->cb = cb;
	c->arg = arg;
}

/* Every stop calls it (to close cached connections): cutting a delivery is the failure. */
void
smtp_client_cancel_all(struct server *srv)
{
	for (size_t k = 0; k < ncalls; k++) {
		if (!calls[k].done)
			fail_msg("%s", "the scheduler cut deliveries that the test would have finished");
	}
}

static int
fake_domain_routed(const char *domain)
{
	return strcmp(domain, "acme.test") == 0 || strcmp(domain, "beta.test") == 0;
}

int
store_route_get(struct store *st, const char *domain, char **url_r)
{
	if (!fake_domain_routed(domain))
		return 0;
	*url_r = xstrdup("smtp://127.0.0.1:2526");
	return 1;
}

int
store_domain_tenant(struct store *st, const char *domain, char **tenant_r)
{
	if (!fake_domain_routed(domain))
		return 0;
	*tenant_r = xstrdup(domain);
	return 1;
}

/* The scheduler asks for a tenant's domains when it archives (srv->archive is NULL here). */
int
store_domain_list(struct store *st, const char *tenant, struct store_domain **list_r, size_t *n_r)
{
	*list_r = NULL;
	*n_r = 0;
	return 0;
}

void
store_domains_free(struct store_domain *list, size_t n)
{
	free(list);
}

/* The scheduler's continuity and IMAP hooks: no tenant is ever in continuity here. */
void
continuity_note_queued(struct continuity *c, const struct queue_entry *e)
{
}

void
continuity_note_outcome(struct continuity *c, const struct queue_entry *e, size_t idx,
    enum queue_rcpt_state st, const char *reply)
{
}

int
continuity_route_held(struct continuity *c, const char *tenant)
{
	return 0;
}

enum continuity_state
continuity_tenant_state(struct continuity *c, const char *tenant)
{
	return CONTINUITY_NORMAL;
}

int
continuity_already_delivered(struct continuity *c, const struct queue_entry *e, size_t idx,
    const char **why_r)
{
	return 0;
}

void
continuity_note_route_result(struct continuity *c, const char *tenant, const char *route,
    int ok, const char *why)
{
}

void
imap_server_notify(struct imap_server *s, const char *tenant)
{
}

static void
fake_complete(size_t k, int code, const char *text)
{
	struct fake_call *c = &calls[k];
	struct delivery_rcpt_result r[8];
	char reply[128];
	snprintf(reply, sizeof(reply), "primary[127.0.0.1] said: %d %s", code, text);
	for (size_t i = 0; i < c->nrcpts; i++) {
		r[i].code = code;
		r[i].reply = reply;
	}
	struct delivery_result res = { r, c->nrcpts, (char *)"primary[127.0.0.1]:2526", 0 };
	assert_false(c->done);
	c->done = 1;
	c->cb(c->arg, &res);
}

static void
loop_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Runs the loop until *count reaches want or ms pass; returns *count. */
static size_t
run_until_count(struct fixture *fx, const size_t *count, size_t want, int ms)
{
	int expired = 0;
	struct event *t = evtimer_new(fx->srv.base, loop_exit_cb, &expired);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(t, &tv);
	while (*count < want && !expired)
		event_base_loop(fx->srv.base, EVLOOP_ONCE);
	event_free(t);
	return *count;
}

static size_t queue_n;

static void
update_queue_n(struct fixture *fx)
{
	queue_n = queue_count(fx->q);
}

static void
run_until_queue_count(struct fixture *fx, size_t want)
{
	for (int i = 0; i < 200; i++) {
		update_queue_n(fx);
		if (queue_n == want)
			return;
		size_t never = 0;
		run_until_count(fx, &never, 1, 10);
	}
	assert_int_equal(queue_count(fx->q), want);
}

static int
sched_setup(void **state)
{
	setup(state);
	struct fixture *fx = *state;
	static int fake_store;
	fx->srv.store = (struct store *)&fake_store;
	fx->srv.queue = fx->q;
	fx->srv.cfg->max_rcpts_per_transaction = 2;
	ncalls = 0;
	return 0;
}

static int
sched_teardown(void **state)
{
	struct fixture *fx = *state;
	for (size_t k = 0; k < ncalls; k++)
		assert_true(calls[k].done);
	scheduler_stop(&fx->srv.sched);
	assert_null(fx->srv.sched);
	return teardown(state);
}

static void
commit_env(struct fixture *fx, struct queue_envelope *env)
{
	struct wait w = { 0, -1 };
	char *err = NULL;
	id_generate(env->id);
	struct queue_writer *wr = queue_writer_new(fx->q, env->id, &err);
	assert_non_null(wr);
	assert_int_equal(queue_writer_append(wr, body, sizeof(body) - 1), 0);
	queue_writer_commit(wr, env, on_done, &w);
	run_until(fx, &w.done);
	assert_int_equal(w.error, 0);
}

static void
start_scheduler(struct fixture *fx)
{
	char *err = NULL;
	assert_int_equal(scheduler_start(&fx->srv, &fx->srv.sched, &err), 0);
}

static void
test_sched_deliver_bounce_dsn(void **state)
{
	struct fixture *fx = *state;
	struct queue_rcpt r[4];
	struct queue_envelope env;
	memset(r, 0, sizeof(r));
	make_env(&env, r);
	r[0] = (struct queue_rcpt){ .addr = "u0@acme.test" };
	r[1] = (struct queue_rcpt){ .addr = "u1@acme.test" };
	r[2].addr = "u2@acme.test";
	r[3].addr = "u3@nowhere.test";
	env.sender = "alice@example.org";
	env.nrcpts = 4;
	env.arrival = time(NULL);
	start_scheduler(fx);
	commit_env(fx, &env);
	struct queue_entry *e = queue_entry_find(fx->q, env.id);
	assert_non_null(e);

	/* Three routed recipients: two transactions (max 2 per transaction). */
	assert_int_equal(run_until_count(fx, &ncalls, 2, 2000), 2);
	assert_int_equal(calls[0].hop, NEXT_HOP_ROUTE);
	assert_int_equal(calls[0].port, 2526);
	assert_int_equal(calls[0].nrcpts + calls[1].nrcpts, 3);
	assert_int_equal(calls[0].nrcpts, 2);
	assert_string_equal(calls[0].sender, "alice@example.org");
	/* The unroutable recipient was deferred with a reason, not attempted. */
	assert_int_equal(e->env.rcpts[3].state, RCPT_PENDING);
	assert_non_null(strstr(e->env.rcpts[3].last_reply, "no route for domain"));

	fake_complete(0, 250, "2.0.0 ok");
	fake_complete(1, 550, "5.1.1 no such user");
	/* A DSN entry appears (from <>, to the sender's domain by MX) ... */
	assert_int_equal(run_until_count(fx, &ncalls, 3, 3000), 3);
	assert_int_equal(calls[2].hop, NEXT_HOP_MX);
	assert_string_equal(calls[2].domain, "example.org");
	assert_string_equal(calls[2].sender, "");
	assert_string_equal(calls[2].rcpts[0], "alice@example.org");
	struct queue_entry *dsn = queue_entry_find(fx->q, calls[2].id);
	assert_non_null(dsn);
	assert_int_equal(dsn->env.direction, QUEUE_BOUNCE);
	assert_string_equal(dsn->env.tenant, "acme");
	char text[4096] = { 0 };
	int fd = queue_entry_open_body(fx->q, dsn);
	assert_true(pread(fd, text, sizeof(text) - 1, 0) > 0);
	close(fd);
	assert_non_null(strstr(text, "multipart/report"));
	assert_non_null(strstr(text, "Final-Recipient: rfc822; u2@acme.test\r\nAction: failed\r\nStatus: 5.1.1"));
	/* ... and the outcomes are recorded (after the DSN is safely queued). */
	for (int i = 0; i < 200 && e->env.rcpts[2].state != RCPT_BOUNCED; i++) {
		size_t never = 0;
		run_until_count(fx, &never, 1, 10);
	}
	assert_int_equal(e->env.rcpts[0].state, RCPT_DELIVERED);
	assert_int_equal(e->env.rcpts[1].state, RCPT_DELIVERED);
	assert_int_equal(e->env.rcpts[2].state, RCPT_BOUNCED);
	assert_int_equal(e->env.rcpts[3].state, RCPT_PENDING);
	assert_true(e->next_attempt > 0);
	assert_int_equal(fx->srv.metrics.recipients_delivered, 2);
	assert_int_equal(fx->srv.metrics.recipients_bounced, 1);
	assert_int_equal(fx->srv.metrics.dsn_generated, 1);
	fake_complete(2, 250, "2.0.0 ok");
	run_until_queue_count(fx, 1);
	assert_non_null(queue_entry_find(fx->q, env.id));
}

static void
test_sched_expiry_null_sender(void **state)
{
	struct fixture *fx = *state;
	struct queue_rcpt r[2];
	struct queue_envelope env;
	make_env(&env, r);
	r[0].addr = "u0@acme.test";
	env.nrcpts = 1;
	env.sender = "";                       /* a bounce: never a DSN back */
	env.arrival = time(NULL) - 3600;
	fx->srv.cfg->max_lifetime = 60;
	start_scheduler(fx);
	commit_env(fx, &env);
	assert_int_equal(run_until_count(fx, &ncalls, 1, 2000), 1);
	fake_complete(0, 451, "4.3.0 try later");
	run_until_queue_count(fx, 0);
	assert_int_equal(fx->srv.metrics.recipients_expired, 1);
	assert_int_equal(fx->srv.metrics.dsn_generated, 0);
	assert_int_equal(ncalls, 1);
}

static void
test_sched_backoff_hold_flush_delete(void **state)
{
	struct fixture *fx = *state;
	struct queue_rcpt r[2];
	struct queue_envelope env;
	make_env(&env, r);
	r[0].addr = "u0@acme.test";
	env.nrcpts = 1;
	env.arrival = time(NULL);
	fx->srv.cfg->retry_min = 3600;
	fx->srv.cfg->retry_max = 4 * 3600;
	start_scheduler(fx);
	commit_env(fx, &env);
	struct queue_entry *e = queue_entry_find(fx->q, env.id);
	assert_int_equal(run_until_count(fx, &ncalls, 1, 2000), 1);
	time_t before = time(NULL);
	fake_complete(0, 451, "4.3.0 try later");
	assert_int_equal(e->attempts, 1);
	assert_true(e->next_attempt >= before + 3240 && e->next_attempt <= before + 3961);
	assert_int_equal(fx->srv.metrics.recipients_deferred, 1);
	/* Not due for an hour: nothing happens ... */
	assert_int_equal(run_until_count(fx, &ncalls, 2, 300), 1);
	/* ... until flush. */
	scheduler_flush(fx->srv.sched);
	assert_int_equal(run_until_count(fx, &ncalls, 2, 2000), 2);
	before = time(NULL);
	fake_complete(1, 421, "4.4.2 bye");
	assert_int_equal(e->attempts, 2);
	assert_true(e->next_attempt >= before + 6480 && e->next_attempt <= before + 7921);

	/* Held: flush does not start it. */
	assert_int_equal(queue_entry_set_hold(fx->q, e, 1), 0);
	scheduler_entry_changed(fx->srv.sched, e);
	scheduler_flush(fx->srv.sched);
	assert_int_equal(run_until_count(fx, &ncalls, 3, 300), 2);
	/* Released: due now. */
	assert_int_equal(queue_entry_set_hold(fx->q, e, 0), 0);
	scheduler_entry_changed(fx->srv.sched, e);
	assert_int_equal(run_until_count(fx, &ncalls, 3, 2000), 3);
	assert_int_equal(scheduler_active(fx->srv.sched), 1);
	/* Delete while running: removed when the delivery ends. */
	assert_int_equal(scheduler_delete(fx->srv.sched, env.id), 0);
	assert_int_equal(scheduler_delete(fx->srv.sched, "0000000000000000"), -1);
	assert_non_null(queue_entry_find(fx->q, env.id));
	fake_complete(2, 451, "4.3.0 later");
	assert_int_equal(scheduler_active(fx->srv.sched), 0);
	run_until_queue_count(fx, 0);
	assert_int_equal(count_files(fx, "msg"), 0);
}

static void
test_sched_recovered_entries(void **state)
{
	struct fixture *fx = *state;
	struct queue_rcpt r[2];
	struct queue_envelope env;
	make_env(&env, r);
	r[0].addr = "u0@acme.test";
	r[1].addr = "u1@beta.test";
	env.arrival = time(NULL);
	commit_env(fx, &env);
	fx_reopen(fx);
	fx->srv.queue = fx->q;
	start_scheduler(fx);
	/* Two tenant routes with the same URL are one destination: one transaction. */
	assert_int_equal(run_until_count(fx, &ncalls, 1, 2000), 1);
	assert_int_equal(calls[0].nrcpts, 2);
	fake_complete(0, 250, "2.0.0 ok");
	run_until_queue_count(fx, 0);
	assert_int_equal(ncalls, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_file_not_loaded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmp_purged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_removes_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_fault, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_fault, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_state_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finished_entry_removed_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_writes_only_what_leaves_work, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_settled_entry_removed_at_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_persists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_and_listener, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sched_deliver_bounce_dsn, sched_setup, sched_teardown),
		cmocka_unit_test_setup_teardown(test_sched_expiry_null_sender, sched_setup, sched_teardown),
		cmocka_unit_test_setup_teardown(test_sched_backoff_hold_flush_delete, sched_setup,
		    sched_teardown),
		cmocka_unit_test_setup_teardown(test_sched_recovered_entries, sched_setup, sched_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
