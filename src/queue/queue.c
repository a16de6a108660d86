/*
 * NAME
 *	queue - the durable spool (filesystem backend)
 * SYNOPSIS
 *	See queue.h.
 * DESCRIPTION
 *	Layout under <data_dir>/queue/:
 *	  tmp/<ID>     being received; purged at start-up
 *	  spare/sN     empty files made ahead by the worker pool, taken by
 *	               writers instead of tmp/<ID>; purged at start-up
 *	  msg/<ID>     committed: body, envelope records, END (queue_file.h)
 *	  state/<ID>   append-only log of recipient outcomes, hold, attempts
 *	  corrupt/<ID> files that failed their checks at start-up
 *
 *	Commit: the session appends the body to tmp/<ID> as DATA arrives (on
 *	the loop thread, page cache only).  queue_writer_commit() puts the
 *	file on the list for the next batch of the queue's own commit thread
 *	(group commit).  A batch takes every commit (and every recipient
 *	record) waiting when it starts, so its size follows the load and
 *	nothing waits for a batch to fill; the next batch starts when this
 *	one is answered.  For its commits the thread appends envelope + END
 *	to each file, starts their writeback together (sync_file_range, a
 *	hint: one journal commit then covers most of the batch), fsyncs and
 *	checks close() of each file, renames each tmp→msg, then fsyncs msg/
 *	once for all.  Only then do the commit callbacks see 0; a failed
 *	file fails its own commit (unlinked), a failed msg/ fsync fails the
 *	whole batch (renamed files unlinked).  The commit thread is not the
 *	shared worker pool, so an Argon2id hash or an SQLite write never
 *	delays a 250.
 *
 *	Entry life cycle:
 *	  (tmp) --commit--> COMMITTED --ready--> scheduler ...
 *	        --record(all done)--> queue_entry_remove: unlink msg, then state
 *	Removing msg/ first means a crash between the two leaves an orphan
 *	state log (deleted at start-up), never a message without its
 *	recorded outcomes (which would deliver twice).  Recipient outcomes
 *	are appended to state/<ID> and fsynced in the commit thread's batch
 *	before the callback; the first durable record also fsyncs state/ (once
 *	per batch) so the log's name survives.  queue_entry_settle() skips
 *	the state log when the outcomes finish the entry: its caller removes
 *	the files at once, and a crash before that unlink is durable only
 *	delivers the message again (at-least-once); an acknowledged message
 *	is never lost.  queue_close() removes entries finished that way that
 *	were not removed yet (a scheduler cut at shutdown).
 */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/sys.h"
#include "lib/worker.h"
#include "queue/queue_file.h"
#include "server.h"

struct qent {
	struct queue_entry e;         /* first: a queue_entry * is a qent * */
	struct qent *prev, *next;
	int state_durable;            /* state/<ID> exists and state/ was fsynced */
	int state_file;               /* state/<ID> may exist */
	int settled;                  /* finished by queue_entry_settle: not on disk */
};

struct commit_job;
struct record_job;

#define QUEUE_SPARES 64           /* empty files kept ready for new messages */
#define QUEUE_SPARE_NAME 16

struct spare {
	int fd;
	char name[QUEUE_SPARE_NAME];
};

struct queue {
	struct server *srv;
	char *dir;
	int tmp_fd, msg_fd, state_fd, corrupt_fd, spare_fd;
	struct spare spares[QUEUE_SPARES];
	size_t nspares;
	int spare_refilling;          /* a refill job is on the worker pool */
	unsigned spare_seq;
	struct qent *head, *tail;
	size_t count;
	queue_ready_cb *ready_cb;
	void *ready_arg;
	struct worker_pool *syncer;        /* the commit thread, the queue's own */
	struct commit_job *commit_wait, **commit_tail;   /* for the next batch */
	struct record_job *record_wait, **record_tail;   /* for the next batch */
	int batch_running;                 /* a batch is on the commit thread */
	struct record_job *settled, **settled_tail;     /* answered without disk */
	struct event *settled_ev;
	unsigned inflight;                 /* jobs not yet done */
};

struct queue_writer {
	struct queue *q;
	int fd;
	char id[ID_LEN + 1];
	int src_dir;                  /* tmp/ (name = id) or spare/ */
	char src[QUEUE_SPARE_NAME > ID_LEN + 1 ? QUEUE_SPARE_NAME : ID_LEN + 1];
	uint64_t size;
	uint32_t crc;
};

struct commit_job {
	struct queue *q;
	int fd;
	char id[ID_LEN + 1];
	int src_dir;                  /* where the file is until its rename */
	char src[QUEUE_SPARE_NAME > ID_LEN + 1 ? QUEUE_SPARE_NAME : ID_LEN + 1];
	uint64_t body_size;
	uint32_t crc;
	struct queue_envelope env;
	struct buf trailer;
	int error;
	struct timespec started;
	queue_commit_cb *cb;
	void *arg;
	struct commit_job *next;
};

static struct qent *
qent_of(struct queue_entry *e)
{
	return (struct qent *)e;
}

static void
queue_update_metric(struct queue *q)
{
	atomic_store(&q->srv->metrics.queue_messages, (long long)q->count);
}

static void
queue_link(struct queue *q, struct qent *qe)
{
	qe->prev = q->tail;
	qe->next = NULL;
	if (q->tail != NULL)
		q->tail->next = qe;
	else
		q->head = qe;
	q->tail = qe;
	q->count++;
	queue_update_metric(q);
}

static void
queue_unlink(struct queue *q, struct qent *qe)
{
	if (qe->prev != NULL)
		qe->prev->next = qe->next;
	else
		q->head = qe->next;
	if (qe->next != NULL)
		qe->next->prev = qe->prev;
	else
		q->tail = qe->prev;
	q->count--;
	queue_update_metric(q);
}

static void
qent_free(struct qent *qe)
{
	queue_envelope_free(&qe->e.env);
	free(qe);
}

/* ---------------------------------------------------------------- names */

const char *
queue_direction_name(enum queue_direction d)
{
	switch (d) {
	case QUEUE_INBOUND: return "inbound";
	case QUEUE_OUTBOUND: return "outbound";
	case QUEUE_BOUNCE: return "bounce";
	}
	return "unknown";
}

const char *
queue_rcpt_state_name(enum queue_rcpt_state s)
{
	switch (s) {
	case RCPT_PENDING: return "pending";
	case RCPT_DELIVERED: return "delivered";
	case RCPT_BOUNCED: return "bounced";
	case RCPT_EXPIRED: return "expired";
	case RCPT_DELETED: return "deleted";
	}
	return "unknown";
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void
queue_envelope_free(struct queue_envelope *env)
{
	free(env->tenant);
	free(env->sender);
	free(env->envid);
	free(env->client_addr);
	free(env->client_helo);
	free(env->auth_user);
	for (size_t i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i].addr);
		free(env->rcpts[i].orcpt);
		free(env->rcpts[i].last_reply);
	}
	free(env->rcpts);
	memset(env, 0, sizeof(*env));
}

void
queue_envelope_copy(struct queue_envelope *dst, const struct queue_envelope *src)
{
	*dst = *src;
	dst->tenant = dup_or_null(src->tenant);
	dst->sender = xstrdup(src->sender != NULL ? src->sender : "");
	dst->envid = dup_or_null(src->envid);
	dst->client_addr = dup_or_null(src->client_addr);
	dst->client_helo = dup_or_null(src->client_helo);
	dst->auth_user = dup_or_null(src->auth_user);
	dst->rcpts = xcalloc(src->nrcpts > 0 ? src->nrcpts : 1, sizeof(*dst->rcpts));
	for (size_t i = 0; i < src->nrcpts; i++) {
		dst->rcpts[i] = src->rcpts[i];
		dst->rcpts[i].addr = xstrdup(src->rcpts[i].addr);
		dst->rcpts[i].orcpt = dup_or_null(src->rcpts[i].orcpt);
		dst->rcpts[i].last_reply = dup_or_null(src->rcpts[i].last_reply);
	}
}

/* ------------------------------------------------------------ recovery */

static void settled_cb(evutil_socket_t fd, short what, void *arg);
static void spare_drop_all(struct queue *q);

static int
open_subdir(struct queue *q, const char *name, int *fd_r, char **err_r)
{
	struct buf path = BUF_INIT;
	buf_appendf(&path, "%s/%s", q->dir, name);
	if (sys_mkdir_p(buf_cstr(&path), 0700) < 0 ||
	    (*fd_r = open(buf_cstr(&path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "%s: %s", buf_cstr(&path), strerror(errno));
		*err_r = buf_steal(&e);
		buf_free(&path);
		return -1;
	}
	buf_free(&path);
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the regular entries of a directory (caller frees). */
static char **
list_dir(int dirfd, size_t *n_r)
{
	size_t n = 0, cap = 16;
	char **names = xcalloc(cap, sizeof(*names));
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		*n_r = 0;
		return names;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap *= 2;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	*n_r = n;
	return names;
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void
queue_purge_dir(int dirfd, const char *dir, int quiet)
{
	size_t n;
	char **names = list_dir(dirfd, &n);
	for (size_t i = 0; i < n; i++) {
		if (sys_unlinkat(dirfd, names[i]) < 0)
			log_warn("queue_purge_failed", "file=%s/%s errno=%d", dir, log_str(names[i]),
			    errno);
		else if (!quiet)
			log_info("queue_purged", "file=%s/%s reason=incomplete", dir,
			    log_str(names[i]));
	}
	free_names(names, n);
}

static void
queue_purge_tmp(struct queue *q)
{
	queue_purge_dir(q->tmp_fd, "tmp", 0);
	queue_purge_dir(q->spare_fd, "spare", 1);
}

static void
queue_move_corrupt(struct queue *q, const char *name, const char *why)
{
	log_warn("queue_corrupt", "file=msg/%s reason=%s", log_str(name), log_str(why));
	if (sys_renameat(q->msg_fd, name, q->corrupt_fd, name) < 0)
		log_error("queue_corrupt_move_failed", "file=msg/%s errno=%d", log_str(name), errno);
}

/* Loads state/<ID>; a torn last record (crash mid-append) is cut off so later appends count. */
static void
queue_load_state(struct queue *q, struct qent *qe)
{
	int fd = openat(q->state_fd, qe->e.env.id, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	struct buf b = BUF_INIT;
	char chunk[8192];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	size_t good = qstate_apply(&qe->e, b.data != NULL ? b.data : "", b.len);
	if (good < b.len) {
		log_warn("queue_state_torn", "id=%s kept=%zu dropped=%zu", qe->e.env.id, good,
		    b.len - good);
		if (ftruncate(fd, (off_t)good) < 0 || sys_fsync(fd) < 0)
			log_error("queue_state_truncate_failed", "id=%s errno=%d", qe->e.env.id, errno);
	}
	close(fd);
	qe->state_durable = qe->state_file = 1;
	buf_free(&b);
}

static void
queue_load_one(struct queue *q, const char *name)
{
	const char *why = "bad name";
	struct qent *qe = xcalloc(1, sizeof(*qe));
	int fd = -1;
	if (id_valid(name)) {
		fd = openat(q->msg_fd, name, O_RDONLY | O_CLOEXEC);
		why = fd < 0 ? "cannot open" : NULL;
	}
	if (why == NULL && qfile_load(fd, &qe->e, &why) == 0 && strcmp(qe->e.env.id, name) != 0)
		why = "id does not match the file name";
	if (fd >= 0)
		close(fd);
	if (why != NULL) {
		queue_move_corrupt(q, name, why);
		qent_free(qe);
		return;
	}
	queue_load_state(q, qe);
	queue_link(q, qe);
	/*
	 * Finished before the crash: removed now — unless the archive may not
	 * have its copy yet; then the scheduler archives it (idempotent) and
	 * removes it.
	 */
	if (queue_entry_finished(&qe->e)) {
		int archive = q->srv->archive != NULL && q->srv->cfg->archive_enabled;
		log_info("queue_finished_at_start", "id=%s action=%s", qe->e.env.id,
		    archive ? "archive" : "remove");
		if (!archive)
			queue_entry_remove(q, &qe->e);
	}
}

static void
queue_purge_orphan_states(struct queue *q)
{
	size_t n;
	char **names = list_dir(q->state_fd, &n);
	for (size_t i = 0; i < n; i++) {
		if (queue_entry_find(q, names[i]) != NULL)
			continue;
		if (sys_unlinkat(q->state_fd, names[i]) < 0)
			log_warn("queue_purge_failed", "file=state/%s errno=%d", log_str(names[i]), errno);
	}
	free_names(names, n);
}

static void
queue_recover(struct queue *q)
{
	size_t n;
	queue_purge_tmp(q);
	char **names = list_dir(q->msg_fd, &n);
	for (size_t i = 0; i < n; i++)
		queue_load_one(q, names[i]);
	free_names(names, n);
	queue_purge_orphan_states(q);
	log_info("queue_recovered", "messages=%zu", q->count);
}

int
queue_open(struct server *srv, struct queue **q_r, char **err_r)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	struct buf dir = BUF_INIT;
	q->srv = srv;
	q->tmp_fd = q->msg_fd = q->state_fd = q->corrupt_fd = q->spare_fd = -1;
	q->commit_tail = &q->commit_wait;
	q->record_tail = &q->record_wait;
	q->settled_tail = &q->settled;
	if (srv->base != NULL)
		q->settled_ev = event_new(srv->base, -1, 0, settled_cb, q);
	buf_appendf(&dir, "%s/queue", srv->cfg->data_dir);
	q->dir = buf_steal(&dir);
	if (open_subdir(q, "tmp", &q->tmp_fd, err_r) < 0 ||
	    open_subdir(q, "msg", &q->msg_fd, err_r) < 0 ||
	    open_subdir(q, "state", &q->state_fd, err_r) < 0 ||
	    open_subdir(q, "corrupt", &q->corrupt_fd, err_r) < 0 ||
	    open_subdir(q, "spare", &q->spare_fd, err_r) < 0) {
		queue_close(&q);
		return -1;
	}
	queue_recover(q);
	*q_r = q;
	return 0;
}

void
queue_close(struct queue **qp)
{
	struct queue *q = *qp;
	if (q == NULL)
		return;
	/* Worker jobs hold pointers into q: let them finish first. */
	/* Stops when re-entered (-1) or when nothing could still come (1). */
	while (q->inflight > 0 && q->srv->base != NULL)
		if (event_base_loop(q->srv->base, EVLOOP_ONCE) != 0)
			break;
	if (q->inflight > 0) {
		/* Called from inside the loop: leave q to the jobs rather than free it. */
		log_error("queue_close_busy", "jobs=%u", q->inflight);
		*qp = NULL;
		return;
	}
	while (q->head != NULL) {
		struct qent *qe = q->head;
		if (qe->settled && queue_entry_finished(&qe->e)) {
			queue_entry_remove(q, &qe->e);
			continue;
		}
		queue_unlink(q, qe);
		qent_free(qe);
	}
	if (q->syncer != NULL)
		worker_pool_free(&q->syncer);
	if (q->settled_ev != NULL)
		event_free(q->settled_ev);
	spare_drop_all(q);
	int *fds[] = { &q->tmp_fd, &q->msg_fd, &q->state_fd, &q->corrupt_fd, &q->spare_fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(q->dir);
	free(q);
	*qp = NULL;
}

void
queue_set_ready_listener(struct queue *q, queue_ready_cb *cb, void *arg)
{
	q->ready_cb = cb;
	q->ready_arg = arg;
}

void
queue_announce_all(struct queue *q)
{
	struct qent *qe = q->head;
	while (qe != NULL) {
		struct qent *next = qe->next;
		if (q->ready_cb != NULL)
			q->ready_cb(q->ready_arg, &qe->e);
		qe = next;
	}
}

/* -------------------------------------------------------------- writer */

/* ------------------------------------------------------ spare files */

/*
 * Creating a file is the dearest step of receiving a message (the
 * filesystem searches for a free inode), so empty files are created ahead
 * in spare/ by the worker pool, off the loop thread.  A writer takes one
 * when there is one and creates tmp/<ID> itself otherwise; either way the
 * commit renames it to msg/<ID>.  spare/ is emptied at start-up and close.
 */
struct spare_job {
	struct queue *q;
	size_t n, want;
	unsigned seq;
	struct spare made[QUEUE_SPARES];
};

static void
spare_work(void *arg)
{
	struct spare_job *j = arg;
	for (j->n = 0; j->n < j->want; j->n++) {
		struct spare *sp = &j->made[j->n];
		snprintf(sp->name, sizeof(sp->name), "s%u", j->seq + (unsigned)j->n);
		sp->fd = sys_openat(j->q->spare_fd, sp->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		if (sp->fd < 0)
			break;
	}
}

static void
spare_done(void *arg)
{
	struct spare_job *j = arg;
	struct queue *q = j->q;
	q->inflight--;
	q->spare_refilling = 0;
	for (size_t i = 0; i < j->n; i++) {
		if (q->nspares < QUEUE_SPARES) {
			q->spares[q->nspares++] = j->made[i];
		} else {
			close(j->made[i].fd);
			unlinkat(q->spare_fd, j->made[i].name, 0);
		}
	}
	free(j);
}

static void
spare_refill(struct queue *q)
{
	if (q->spare_refilling || q->nspares >= QUEUE_SPARES / 2 || q->srv->workers == NULL)
		return;
	struct spare_job *j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->want = QUEUE_SPARES - q->nspares;
	j->seq = q->spare_seq;
	q->spare_seq += (unsigned)j->want;
	q->spare_refilling = 1;
	q->inflight++;
	worker_submit(q->srv->workers, spare_work, spare_done, j);
}

static void
spare_drop_all(struct queue *q)
{
	while (q->nspares > 0) {
		struct spare *sp = &q->spares[--q->nspares];
		close(sp->fd);
		unlinkat(q->spare_fd, sp->name, 0);
	}
}

/* -------------------------------------------------------------- writer */

struct queue_writer *
queue_writer_new(struct queue *q, const char *id, char **err_r)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	w->q = q;
	snprintf(w->id, sizeof(w->id), "%s", id);
	if (q->nspares > 0) {
		struct spare *sp = &q->spares[--q->nspares];
		w->fd = sp->fd;
		w->src_dir = q->spare_fd;
		snprintf(w->src, sizeof(w->src), "%s", sp->name);
	} else {
		w->fd = sys_openat(q->tmp_fd, id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		w->src_dir = q->tmp_fd;
		snprintf(w->src, sizeof(w->src), "%s", id);
	}
	if (w->fd < 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "queue: cannot create tmp/%s: %s", id, strerror(errno));
		*err_r = buf_steal(&e);
		free(w);
		return NULL;
	}
	spare_refill(q);
	return w;
}

int
queue_writer_append(struct queue_writer *w, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (sys_write_all(w->fd, data, len) < 0)
		return -1;
	w->crc = qfile_crc32(w->crc, data, len);
	w->size += len;
	return 0;
}

uint64_t
queue_writer_size(const struct queue_writer *w)
{
	return w->size;
}

/* The writer's fd is write-only: the bytes are read back through its name. */
int
queue_writer_read_all(struct queue_writer *w, unsigned char **data_r, size_t *len_r)
{
	*data_r = NULL;
	*len_r = 0;
	if (w->size > SIZE_MAX - 1) {
		errno = EFBIG;
		return -1;
	}
	int fd = openat(w->src_dir, w->src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = (size_t)w->size;
	unsigned char *data = xmalloc(len + 1);
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, data + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			free(data);
			errno = e;
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
}

int
queue_writer_replace(struct queue_writer *w, const void *prefix, size_t plen,
    const void *data, size_t len)
{
	if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
		return -1;
	w->size = 0;
	w->crc = 0;
	if (queue_writer_append(w, prefix, plen) < 0)
		return -1;
	return queue_writer_append(w, data, len);
}

void
queue_writer_abort(struct queue_writer **wp)
{
	struct queue_writer *w = *wp;
	if (w == NULL)
		return;
	close(w->fd);
	if (sys_unlinkat(w->src_dir, w->src) < 0 && errno != ENOENT)
		log_warn("queue_unlink_failed", "file=%s/%s errno=%d",
		    w->src_dir == w->q->tmp_fd ? "tmp" : "spare", w->src, errno);
	free(w);
	*wp = NULL;
}

static void
commit_job_free(struct commit_job *j)
{
	queue_envelope_free(&j->env);
	buf_free(&j->trailer);
	free(j);
}

static uint64_t
elapsed_us(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t us = (int64_t)(now.tv_sec - start->tv_sec) * 1000000 +
	    (now.tv_nsec - start->tv_nsec) / 1000;
	return us > 0 ? (uint64_t)us : 0;
}

/* Loop thread: a commit is durable (or failed); make it an entry. */
static void
commit_finish(struct commit_job *j)
{
	struct queue *q = j->q;
	struct qent *qe = NULL;
	if (j->error == 0) {
		qe = xcalloc(1, sizeof(*qe));
		qe->e.env = j->env;
		memset(&j->env, 0, sizeof(j->env));
		qe->e.body_size = j->body_size;
		queue_link(q, qe);
		log_debug("queue_committed", "id=%s size=%" PRIu64 " us=%" PRIu64, j->id,
		    j->body_size, elapsed_us(&j->started));
	} else {
		log_error("queue_commit_failed", "id=%s errno=%d error=%s", j->id, j->error,
		    strerror(j->error));
	}
	j->cb(j->arg, j->error);
	if (qe != NULL && q->ready_cb != NULL)
		q->ready_cb(q->ready_arg, &qe->e);
	commit_job_free(j);
}

/* ------------------------------------------------------- group commit */

/*
 * Commit thread: starts writeback of every file of the batch so that the
 * disk sees them together; fsync() (below) stays what makes them durable.
 * A failure here is only a lost hint: fsync reports the real error.
 */
static void
batch_start_writeback(int fd, int wait)
{
	unsigned flags = SYNC_FILE_RANGE_WRITE;
	if (wait)
		flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER;
	if (fd >= 0 && sync_file_range(fd, 0, 0, flags) < 0)
		log_debug("queue_writeback_hint_failed", "errno=%d", errno);
}

/* Commit thread: envelope + END appended to every file of the batch. */
static void
batch_write_trailers(struct commit_job *list)
{
	for (struct commit_job *j = list; j != NULL; j = j->next) {
		if (sys_write_all(j->fd, j->trailer.data, j->trailer.len) < 0) {
			j->error = errno;
			close(j->fd);
			j->fd = -1;
		}
	}
	for (int wait = 0; wait <= 1; wait++)
		for (struct commit_job *j = list; j != NULL; j = j->next)
			batch_start_writeback(j->fd, wait);
}

/* Commit thread: fsync, checked close, rename tmp→msg; 1 when renamed. */
static int
batch_commit_file(struct queue *q, struct commit_job *j)
{
	if (j->fd >= 0) {
		if (sys_fsync(j->fd) < 0) {
			j->error = errno;
			close(j->fd);
		} else if (sys_close(j->fd) < 0) {
			j->error = errno;
		} else if (sys_renameat(j->src_dir, j->src, q->msg_fd, j->id) < 0) {
			j->error = errno;
		}
		j->fd = -1;
	}
	if (j->error != 0) {
		unlinkat(j->src_dir, j->src, 0);
		return 0;
	}
	return 1;
}

/*
 * Commit thread: every waiting commit of the batch made durable with one
 * fsync of msg/ for all of their renames.  A failed directory fsync fails
 * every commit of the batch (their msg/ files are removed again).
 */
static void
batch_commits(struct queue *q, struct commit_job *list)
{
	int renamed = 0;
	batch_write_trailers(list);
	for (struct commit_job *j = list; j != NULL; j = j->next)
		renamed += batch_commit_file(q, j);
	if (renamed == 0 || sys_fsync(q->msg_fd) == 0)
		return;
	int error = errno;
	for (struct commit_job *j = list; j != NULL; j = j->next) {
		if (j->error != 0)
			continue;
		j->error = error;
		unlinkat(q->msg_fd, j->id, 0);
	}
}

struct record_job {
	struct queue *q;
	struct qent *qe;
	char id[ID_LEN + 1];
	struct buf data;
	int fd;
	int fsync_dir;                /* first durable record: state/ needs an fsync */
	int error;
	size_t n;
	size_t *idx;
	enum queue_rcpt_state *states;
	char **replies;
	queue_done_cb *cb;
	void *arg;
	struct record_job *next;
};

/* Commit thread: appends each record to its state log, fsyncs them, then state/ once. */
static void
batch_records(struct queue *q, struct record_job *list)
{
	int dir_needed = 0;
	for (struct record_job *j = list; j != NULL; j = j->next) {
		j->fd = sys_openat(q->state_fd, j->id, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0600);
		if (j->fd >= 0 && sys_write_all(j->fd, j->data.data, j->data.len) < 0) {
			close(j->fd);
			j->fd = -1;
		}
		if (j->fd < 0)
			j->error = errno;
		batch_start_writeback(j->fd, 0);
	}
	for (struct record_job *j = list; j != NULL; j = j->next) {
		if (j->fd < 0)
			continue;
		if (sys_fsync(j->fd) < 0) {
			j->error = errno;
			close(j->fd);
		} else if (sys_close(j->fd) < 0) {
			j->error = errno;
		}
		j->fd = -1;
		dir_needed |= j->error == 0 && j->fsync_dir;
	}
	if (!dir_needed || sys_fsync(q->state_fd) == 0)
		return;
	int error = errno;
	for (struct record_job *j = list; j != NULL; j = j->next)
		if (j->error == 0 && j->fsync_dir)
			j->error = error;
}

struct sync_batch {
	struct queue *q;
	struct commit_job *commits;
	struct record_job *records;
};

static void
batch_work(void *arg)
{
	struct sync_batch *b = arg;
	if (b->commits != NULL)
		batch_commits(b->q, b->commits);
	if (b->records != NULL)
		batch_records(b->q, b->records);
}

static void record_done(struct record_job *j);
static void batch_maybe_start(struct queue *q);

/* Loop thread: the batch is durable (or failed): answer every member. */
static void
batch_done(void *arg)
{
	struct sync_batch *b = arg;
	struct queue *q = b->q;
	size_t n = 0;
	q->inflight--;
	q->batch_running = 0;
	for (struct commit_job *j = b->commits, *next; j != NULL; j = next, n++) {
		next = j->next;
		commit_finish(j);
	}
	for (struct record_job *j = b->records, *next; j != NULL; j = next) {
		next = j->next;
		record_done(j);
	}
	log_debug("queue_group_commit", "messages=%zu", n);
	free(b);
	batch_maybe_start(q);
}

/*
 * Loop thread: hands every waiting commit and record to the commit thread
 * as one batch, unless a batch is running: the next one then takes all
 * that arrived meanwhile, so the batch size follows the load and no
 * commit ever waits for a batch to fill.
 */
static void
batch_maybe_start(struct queue *q)
{
	if (q->batch_running || (q->commit_wait == NULL && q->record_wait == NULL))
		return;
	struct sync_batch *b = xcalloc(1, sizeof(*b));
	b->q = q;
	b->commits = q->commit_wait;
	b->records = q->record_wait;
	q->commit_wait = NULL;
	q->commit_tail = &q->commit_wait;
	q->record_wait = NULL;
	q->record_tail = &q->record_wait;
	if (q->syncer == NULL)
		q->syncer = worker_pool_new(q->srv->base, 1);
	q->batch_running = 1;
	q->inflight++;
	worker_submit(q->syncer, batch_work, batch_done, b);
}

void
queue_writer_commit(struct queue_writer *w, const struct queue_envelope *env,
    queue_commit_cb *cb, void *arg)
{
	struct commit_job *j = xcalloc(1, sizeof(*j));
	struct queue *q = w->q;
	clock_gettime(CLOCK_MONOTONIC, &j->started);
	j->q = q;
	j->fd = w->fd;
	memcpy(j->id, w->id, sizeof(j->id));
	j->src_dir = w->src_dir;
	memcpy(j->src, w->src, sizeof(j->src));
	j->body_size = w->size;
	j->cb = cb;
	j->arg = arg;
	queue_envelope_copy(&j->env, env);
	memcpy(j->env.id, w->id, sizeof(j->env.id));
	for (size_t i = 0; i < j->env.nrcpts; i++)
		j->env.rcpts[i].state = RCPT_PENDING;
	qfile_encode_envelope(&j->env, &j->trailer);
	uint32_t crc = qfile_crc32(w->crc, j->trailer.data, j->trailer.len);
	qfile_encode_end(w->size, (uint32_t)j->trailer.len, crc, &j->trailer);
	free(w);
	*q->commit_tail = j;
	q->commit_tail = &j->next;
	batch_maybe_start(q);
}

void
queue_inject(struct queue *q, const struct queue_envelope *env, const void *data,
    size_t len, queue_commit_cb *cb, void *arg)
{
	char *err = NULL;
	struct queue_writer *w = queue_writer_new(q, env->id, &err);
	if (w == NULL) {
		int e = errno != 0 ? errno : EIO;
		log_error("queue_inject_failed", "id=%s error=%s", env->id, log_str(err));
		free(err);
		cb(arg, e);
		return;
	}
	if (queue_writer_append(w, data, len) < 0) {
		int e = errno;
		queue_writer_abort(&w);
		cb(arg, e);
		return;
	}
	queue_writer_commit(w, env, cb, arg);
}

/* ------------------------------------------------------------- entries */

struct queue_entry *
queue_entry_find(struct queue *q, const char *id)
{
	for (struct qent *qe = q->head; qe != NULL; qe = qe->next)
		if (strcmp(qe->e.env.id, id) == 0)
			return &qe->e;
	return NULL;
}

int
queue_entry_open_body(struct queue *q, const struct queue_entry *e)
{
	return queue_open_body(q, e->env.id);
}

int
queue_open_body(struct queue *q, const char *id)
{
	return openat(q->msg_fd, id, O_RDONLY | O_CLOEXEC);
}

int
queue_entry_finished(const struct queue_entry *e)
{
	for (size_t i = 0; i < e->env.nrcpts; i++)
		if (e->env.rcpts[i].state == RCPT_PENDING)
			return 0;
	return 1;
}

/* Appends data to state/<ID> without fsync (hints that may be lost). */
static int
state_append(struct queue *q, struct qent *qe, const struct buf *data)
{
	int fd = sys_openat(q->state_fd, qe->e.env.id, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600);
	if (fd < 0)
		return -1;
	qe->state_file = 1;
	if (sys_write_all(fd, data->data, data->len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return sys_close(fd);
}

/* Appends data to state/<ID> and fsyncs it (and state/ the first time). */
static int
state_append_durable(struct queue *q, struct qent *qe, const struct buf *data)
{
	int fd = sys_openat(q->state_fd, qe->e.env.id, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600);
	if (fd < 0)
		return -1;
	qe->state_file = 1;
	if (sys_write_all(fd, data->data, data->len) < 0 || sys_fsync(fd) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (sys_close(fd) < 0)
		return -1;
	if (!qe->state_durable && sys_fsync(q->state_fd) < 0)
		return -1;
	return 0;
}

/* Loop thread: the outcomes are recorded (or failed); apply them and tell the caller. */
static void
record_done(struct record_job *j)
{
	j->q->inflight--;
	if (j->error == 0) {
		if (j->data.len > 0)
			j->qe->state_durable = j->qe->state_file = 1;
		for (size_t i = 0; i < j->n; i++) {
			struct queue_rcpt *r = &j->qe->e.env.rcpts[j->idx[i]];
			r->state = j->states[i];
			if (j->replies[i] != NULL) {
				free(r->last_reply);
				r->last_reply = j->replies[i];
				j->replies[i] = NULL;
			}
		}
	} else {
		log_error("queue_record_failed", "id=%s errno=%d error=%s", j->qe->e.env.id,
		    j->error, strerror(j->error));
	}
	if (j->cb != NULL)
		j->cb(j->arg, j->error);
	for (size_t i = 0; i < j->n; i++)
		free(j->replies[i]);
	free(j->replies);
	free(j->idx);
	free(j->states);
	buf_free(&j->data);
	free(j);
}

static void
settled_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct record_job *j = q->settled;
	q->settled = NULL;
	q->settled_tail = &q->settled;
	while (j != NULL) {
		struct record_job *next = j->next;
		record_done(j);
		j = next;
	}
}

/*
 * 1 when these outcomes leave no recipient pending.  Outcomes still being
 * recorded by another job count as pending, so this never says 1 early.
 */
static int
record_finishes(const struct queue_entry *e, const struct record_job *j)
{
	for (size_t i = 0; i < e->env.nrcpts; i++) {
		if (e->env.rcpts[i].state != RCPT_PENDING)
			continue;
		size_t k = 0;
		while (k < j->n && (j->idx[k] != i || j->states[k] == RCPT_PENDING))
			k++;
		if (k == j->n)
			return 0;
	}
	return 1;
}

/*
 * The entry is finished by these outcomes: nothing is written, the
 * scheduler removes the files next (msg/ first).  A crash before the
 * unlink reaches the disk delivers the message again (at-least-once);
 * nothing acknowledged can be lost, so the fsync is not needed.
 */
static void
record_settle(struct queue *q, struct record_job *j)
{
	buf_free(&j->data);
	j->qe->settled = 1;
	*q->settled_tail = j;
	q->settled_tail = &j->next;
	event_active(q->settled_ev, 0, 0);
}

static struct record_job *
record_job_new(struct queue *q, struct queue_entry *e, const size_t *idx,
    const enum queue_rcpt_state *states, const char *const *replies, size_t n,
    queue_done_cb *cb, void *arg)
{
	struct record_job *j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->qe = qent_of(e);
	memcpy(j->id, e->env.id, sizeof(j->id));
	j->fd = -1;
	j->fsync_dir = !j->qe->state_durable;
	j->n = 0;
	j->idx = xcalloc(n + 1, sizeof(*j->idx));
	j->states = xcalloc(n + 1, sizeof(*j->states));
	j->replies = xcalloc(n + 1, sizeof(*j->replies));
	j->cb = cb;
	j->arg = arg;
	for (size_t i = 0; i < n; i++) {
		if (idx[i] >= e->env.nrcpts)
			continue;
		struct buf p = BUF_INIT;
		const char *reply = replies != NULL ? replies[i] : NULL;
		buf_appendf(&p, "%zu\t%d\t%s", idx[i], (int)states[i], reply != NULL ? reply : "");
		qstate_encode(QSTATE_RCPT, buf_cstr(&p), &j->data);
		buf_free(&p);
		j->idx[j->n] = idx[i];
		j->states[j->n] = states[i];
		j->replies[j->n] = dup_or_null(reply);
		j->n++;
	}
	q->inflight++;
	return j;
}

static void
record_submit(struct queue *q, struct record_job *j)
{
	*q->record_tail = j;
	q->record_tail = &j->next;
	batch_maybe_start(q);
}

void
queue_entry_record(struct queue *q, struct queue_entry *e, const size_t *idx,
    const enum queue_rcpt_state *states, const char *const *replies, size_t n,
    queue_done_cb *cb, void *arg)
{
	record_submit(q, record_job_new(q, e, idx, states, replies, n, cb, arg));
}

int
queue_entry_settle(struct queue *q, struct queue_entry *e, const size_t *idx,
    const enum queue_rcpt_state *states, const char *const *replies, size_t n,
    queue_done_cb *cb, void *arg)
{
	struct record_job *j = record_job_new(q, e, idx, states, replies, n, cb, arg);
	if (q->settled_ev == NULL || !record_finishes(e, j)) {
		record_submit(q, j);
		return 0;
	}
	record_settle(q, j);
	return 1;
}

void
queue_entry_note_attempt(struct queue *q, struct queue_entry *e)
{
	struct buf p = BUF_INIT, rec = BUF_INIT;
	buf_appendf(&p, "%u\t%lld\t%lld", e->attempts, (long long)e->next_attempt,
	    (long long)e->last_attempt);
	qstate_encode(QSTATE_ATTEMPT, buf_cstr(&p), &rec);
	if (state_append(q, qent_of(e), &rec) < 0)
		log_warn("queue_note_failed", "id=%s errno=%d", e->env.id, errno);
	buf_free(&p);
	buf_free(&rec);
}

int
queue_entry_set_hold(struct queue *q, struct queue_entry *e, int held)
{
	struct buf rec = BUF_INIT;
	struct qent *qe = qent_of(e);
	/* An administrator's command: a small synchronous fsync is acceptable here. */
	qstate_encode(QSTATE_HOLD, held ? "1" : "0", &rec);
	int rc = state_append_durable(q, qe, &rec);
	buf_free(&rec);
	if (rc < 0) {
		log_error("queue_hold_failed", "id=%s errno=%d", e->env.id, errno);
		return -1;
	}
	qe->state_durable = 1;
	e->held = held ? 1 : 0;
	log_info(held ? "held" : "released", "id=%s tenant=%s", e->env.id,
	    log_str(e->env.tenant != NULL ? e->env.tenant : "-"));
	return 0;
}

void
queue_entry_remove(struct queue *q, struct queue_entry *e)
{
	struct qent *qe = qent_of(e);
	if (sys_unlinkat(q->msg_fd, e->env.id) < 0 && errno != ENOENT)
		log_error("queue_unlink_failed", "file=msg/%s errno=%d", e->env.id, errno);
	else if (qe->state_file && sys_unlinkat(q->state_fd, e->env.id) < 0 && errno != ENOENT)
		log_warn("queue_unlink_failed", "file=state/%s errno=%d", e->env.id, errno);
	log_info("removed", "id=%s", e->env.id);
	queue_unlink(q, qe);
	qent_free(qe);
}

void
queue_foreach(struct queue *q, queue_foreach_cb *cb, void *arg)
{
	struct qent *qe = q->head;
	while (qe != NULL) {
		struct qent *next = qe->next;
		cb(arg, &qe->e);
		qe = next;
	}
}

size_t
queue_count(const struct queue *q)
{
	return q->count;
}
