#include "lib/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/mem.h"

struct worker_job {
	worker_fn *work;
	worker_fn *done;
	void *arg;
	struct worker_job *next;
};

struct job_list {
	struct worker_job *head, *tail;
};

struct worker_pool {
	struct event_base *base;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job_list todo;      /* under lock */
	struct job_list finished;  /* under lock */
	int stopping;              /* under lock */
	int nthreads;
	pthread_t *threads;
	int wake_fd;
	struct event *wake_ev;
	unsigned pending;          /* loop thread only */
};

static void
job_list_push(struct job_list *l, struct worker_job *j)
{
	j->next = NULL;
	if (l->tail != NULL)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct worker_job *
job_list_take_all(struct job_list *l)
{
	struct worker_job *j = l->head;
	l->head = l->tail = NULL;
	return j;
}

static void *
worker_thread_main(void *arg)
{
	struct worker_pool *pool = arg;
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->todo.head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cond, &pool->lock);
		struct worker_job *j = pool->todo.head;
		if (j == NULL)
			break;
		pool->todo.head = j->next;
		if (pool->todo.head == NULL)
			pool->todo.tail = NULL;
		pthread_mutex_unlock(&pool->lock);

		j->work(j->arg);

		pthread_mutex_lock(&pool->lock);
		job_list_push(&pool->finished, j);
		uint64_t one = 1;
		ssize_t ignored = write(pool->wake_fd, &one, sizeof(one));
		(void)ignored;
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

static void
worker_run_finished(struct worker_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	struct worker_job *j = job_list_take_all(&pool->finished);
	pthread_mutex_unlock(&pool->lock);
	while (j != NULL) {
		struct worker_job *next = j->next;
		pool->pending--;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
		j = next;
	}
}

static void
worker_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t count;
	ssize_t ignored = read(fd, &count, sizeof(count));
	(void)ignored;
	worker_run_finished(arg);
}

struct worker_pool *
worker_pool_new(struct event_base *base, int nthreads)
{
	struct worker_pool *pool = xcalloc(1, sizeof(*pool));
	pool->base = base;
	pool->nthreads = nthreads > 0 ? nthreads : 1;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->wake_fd < 0) {
		log_error("worker_init_failed", "errno=%d", errno);
		abort();
	}
	pool->wake_ev = event_new(base, pool->wake_fd, EV_READ | EV_PERSIST, worker_wake_cb, pool);
	event_add(pool->wake_ev, NULL);
	pool->threads = xcalloc((size_t)pool->nthreads, sizeof(pthread_t));
	for (int i = 0; i < pool->nthreads; i++) {
		if (pthread_create(&pool->threads[i], NULL, worker_thread_main, pool) != 0) {
			log_error("worker_init_failed", "reason=pthread_create");
			abort();
		}
	}
	return pool;
}

void
worker_submit(struct worker_pool *pool, worker_fn *work, worker_fn *done, void *arg)
{
	struct worker_job *j = xcalloc(1, sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	pool->pending++;
	pthread_mutex_lock(&pool->lock);
	job_list_push(&pool->todo, j);
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
}

unsigned
worker_pending(const struct worker_pool *pool)
{
	return pool->pending;
}

void
worker_pool_free(struct worker_pool **poolp)
{
	struct worker_pool *pool = *poolp;
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = 1;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	worker_run_finished(pool);
	event_free(pool->wake_ev);
	close(pool->wake_fd);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool->threads);
	free(pool);
	*poolp = NULL;
}
