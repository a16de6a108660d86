/*
 * worker — a small thread pool for blocking work (fsync, SQLite writes,
 * parsing) whose results come back on the event-loop thread.
 *
 *   worker_submit(pool, do_fsync, fsync_done, job);
 *
 * work(arg) runs on a pool thread; done(arg) then runs on the loop thread
 * that owns `base`.  The pool never frees arg: the submitter owns it and
 * usually frees it in done().  worker_pool_free() finishes every job that
 * was submitted (work and done) before it returns.
 */
#ifndef MAILARK_LIB_WORKER_H
#define MAILARK_LIB_WORKER_H

struct event_base;
struct worker_pool;

typedef void worker_fn(void *arg);

struct worker_pool *worker_pool_new(struct event_base *base, int nthreads);
void worker_submit(struct worker_pool *pool, worker_fn *work, worker_fn *done, void *arg);
/* Jobs submitted and not yet done (loop thread only). */
unsigned worker_pending(const struct worker_pool *pool);
void worker_pool_free(struct worker_pool **pool);

#endif
