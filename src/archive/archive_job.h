/*
 * archive_job — background jobs of the archive (import, export, purge,
 * verify, reindex) with progress, polled by the control command
 * "archive.job".  One thread per job, at most ARCHIVE_JOBS_MAX at once.
 *
 *   archive_job_start(jobs, "acme", "import", "cli@local", run_import, free_import, arg,
 *       &id, &err);
 *   ... run_import(job, arg, &result, &err) runs on the job's thread, calling
 *       archive_job_progress(job, done, total) now and then; it returns 0 with a
 *       result (jansson object, the job takes it) or -1 with an error text.
 *   archive_job_status(jobs, "acme", id) → {"id","kind","state":"running|done|failed",
 *       "done","total","result"|"error", "started", "finished"}  (new reference, NULL: none)
 *
 * The job owns arg from start (free_fn(arg) after the run, also when the
 * start fails).  Finished jobs are kept (the newest ARCHIVE_JOBS_KEPT) so a
 * client can read their result.  archive_jobs_free() waits for running
 * jobs; archive_job_stopping() tells a job to give up early (shutdown).
 * Thread-safe.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_JOB_H
#define MAILARK_ARCHIVE_ARCHIVE_JOB_H

#include <stdint.h>

#include <jansson.h>

#define ARCHIVE_JOBS_MAX 4
#define ARCHIVE_JOBS_KEPT 64

struct archive_jobs;
struct archive_job;

typedef int archive_job_fn(struct archive_job *j, void *arg, json_t **result_r, char **err_r);
typedef void archive_job_free_fn(void *arg);

struct archive_jobs *archive_jobs_new(void);
void archive_jobs_free(struct archive_jobs **js);

/* 0 with *id_r; -1 with *err_r (too many running). */
int archive_job_start(struct archive_jobs *js, const char *tenant, const char *kind,
    const char *actor, archive_job_fn *fn, archive_job_free_fn *free_fn, void *arg,
    long long *id_r, char **err_r);
/* An archive_progress_cb: job is the struct archive_job *. */
void archive_job_progress(void *job, uint64_t done, uint64_t total);
/* 1 once shutdown began: stop at the next convenient point. */
int archive_job_stopping(const struct archive_job *j);
json_t *archive_job_status(struct archive_jobs *js, const char *tenant, long long id);
/* Jobs of a tenant (NULL: all), newest first, as a JSON array (new reference). */
json_t *archive_job_list(struct archive_jobs *js, const char *tenant);

#endif
