/*
 * archive_job.c — see archive_job.h.  A list of jobs under one mutex; each
 * running job has a joinable thread; finished jobs beyond the kept number
 * are dropped oldest first.
 */
#include "archive/archive_job.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

enum job_state { JOB_RUNNING, JOB_DONE, JOB_FAILED };
static const char *const job_state_names[] = { "running", "done", "failed" };

struct archive_job {
	struct archive_jobs *js;
	long long id;
	char *tenant, *kind, *actor;
	enum job_state state;
	atomic_ullong done, total;
	json_t *result;
	char *error;
	time_t started, finished;
	archive_job_fn *fn;
	archive_job_free_fn *free_fn;
	void *arg;
	pthread_t thread;
	int joined;
	struct archive_job *next;     /* newest first */
};

struct archive_jobs {
	pthread_mutex_t mu;
	struct archive_job *head;
	long long next_id;
	unsigned running;
	atomic_int stopping;
};

struct archive_jobs *
archive_jobs_new(void)
{
	struct archive_jobs *js = xcalloc(1, sizeof(*js));
	pthread_mutex_init(&js->mu, NULL);
	js->next_id = 1;
	return js;
}

static void
job_free(struct archive_job *j)
{
	if (!j->joined)
		pthread_join(j->thread, NULL);
	json_decref(j->result);
	free(j->error);
	free(j->tenant);
	free(j->kind);
	free(j->actor);
	free(j);
}

void
archive_jobs_free(struct archive_jobs **jsp)
{
	struct archive_jobs *js = *jsp;
	if (js == NULL)
		return;
	*jsp = NULL;
	atomic_store(&js->stopping, 1);
	while (js->head != NULL) {
		struct archive_job *j = js->head;
		js->head = j->next;
		job_free(j);
	}
	pthread_mutex_destroy(&js->mu);
	free(js);
}

/* Drops finished jobs beyond the kept number (under mu); returns them to join. */
static struct archive_job *
jobs_trim(struct archive_jobs *js)
{
	struct archive_job **pp = &js->head, *drop = NULL;
	unsigned kept = 0;
	while (*pp != NULL) {
		struct archive_job *j = *pp;
		if (j->state != JOB_RUNNING && ++kept > ARCHIVE_JOBS_KEPT) {
			*pp = j->next;
			j->next = drop;
			drop = j;
			continue;
		}
		pp = &j->next;
	}
	return drop;
}

static void *
job_thread(void *arg)
{
	struct archive_job *j = arg;
	json_t *result = NULL;
	char *err = NULL;
	int rc = j->fn(j, j->arg, &result, &err);
	if (j->free_fn != NULL)
		j->free_fn(j->arg);
	j->arg = NULL;
	struct archive_jobs *js = j->js;
	pthread_mutex_lock(&js->mu);
	j->finished = time(NULL);
	if (rc == 0) {
		j->state = JOB_DONE;
		j->result = result ? result : json_object();
	} else {
		j->state = JOB_FAILED;
		j->error = err ? err : xstrdup("failed");
		err = NULL;
		json_decref(result);
	}
	js->running--;
	pthread_mutex_unlock(&js->mu);
	free(err);
	log_info("archive_job_finished", "id=%lld kind=%s tenant=%s state=%s", j->id, j->kind,
	    j->tenant, job_state_names[j->state]);
	return NULL;
}

int
archive_job_start(struct archive_jobs *js, const char *tenant, const char *kind,
    const char *actor, archive_job_fn *fn, archive_job_free_fn *free_fn, void *arg,
    long long *id_r, char **err_r)
{
	pthread_mutex_lock(&js->mu);
	if (js->running >= ARCHIVE_JOBS_MAX || atomic_load(&js->stopping)) {
		pthread_mutex_unlock(&js->mu);
		if (free_fn != NULL)
			free_fn(arg);
		struct buf e = BUF_INIT;
		buf_appendf(&e, "%u archive jobs are running already; try again when one is done",
		    (unsigned)ARCHIVE_JOBS_MAX);
		*err_r = buf_steal(&e);
		return -1;
	}
	struct archive_job *j = xcalloc(1, sizeof(*j));
	j->js = js;
	j->id = js->next_id++;
	j->tenant = xstrdup(tenant);
	j->kind = xstrdup(kind);
	j->actor = xstrdup(actor ? actor : "unknown");
	j->state = JOB_RUNNING;
	j->started = time(NULL);
	j->fn = fn;
	j->free_fn = free_fn;
	j->arg = arg;
	if (pthread_create(&j->thread, NULL, job_thread, j) != 0) {
		pthread_mutex_unlock(&js->mu);
		if (free_fn != NULL)
			free_fn(arg);
		j->joined = 1;
		job_free(j);
		*err_r = xstrdup("cannot start a thread for the job");
		return -1;
	}
	js->running++;
	j->next = js->head;
	js->head = j;
	struct archive_job *drop = jobs_trim(js);
	pthread_mutex_unlock(&js->mu);
	while (drop != NULL) {
		struct archive_job *n = drop->next;
		job_free(drop);
		drop = n;
	}
	*id_r = j->id;
	log_info("archive_job_started", "id=%lld kind=%s tenant=%s actor=%s", *id_r, kind, tenant,
	    log_str(actor));
	return 0;
}

void
archive_job_progress(void *job, uint64_t done, uint64_t total)
{
	struct archive_job *j = job;
	atomic_store(&j->done, done);
	atomic_store(&j->total, total);
}

int
archive_job_stopping(const struct archive_job *j)
{
	return atomic_load(&j->js->stopping);
}

static json_t *
job_json(struct archive_job *j)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "id", (json_int_t)j->id,
	    "tenant", j->tenant, "kind", j->kind, "actor", j->actor, "state",
	    job_state_names[j->state], "done", (json_int_t)atomic_load(&j->done), "total",
	    (json_int_t)atomic_load(&j->total), "started", (json_int_t)j->started);
	if (o == NULL)
		return NULL;
	if (j->state != JOB_RUNNING)
		json_object_set_new(o, "finished", json_integer((json_int_t)j->finished));
	if (j->state == JOB_DONE && j->result != NULL)
		json_object_set(o, "result", j->result);
	if (j->state == JOB_FAILED)
		json_object_set_new(o, "error", json_string(j->error));
	return o;
}

json_t *
archive_job_status(struct archive_jobs *js, const char *tenant, long long id)
{
	json_t *o = NULL;
	pthread_mutex_lock(&js->mu);
	for (struct archive_job *j = js->head; j != NULL; j = j->next)
		if (j->id == id && (tenant == NULL || strcmp(j->tenant, tenant) == 0)) {
			o = job_json(j);
			break;
		}
	pthread_mutex_unlock(&js->mu);
	return o;
}

json_t *
archive_job_list(struct archive_jobs *js, const char *tenant)
{
	json_t *a = json_array();
	pthread_mutex_lock(&js->mu);
	for (struct archive_job *j = js->head; j != NULL; j = j->next)
		if (tenant == NULL || strcmp(j->tenant, tenant) == 0)
			json_array_append_new(a, job_json(j));
	pthread_mutex_unlock(&js->mu);
	return a;
}
