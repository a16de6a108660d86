/*
 * Unit tests for src/archive/archive_job: jobs run on their own threads,
 * report progress and a result or an error, the number running at once is
 * capped, a job's arg is freed exactly once (also when the start fails),
 * and archive_jobs_free() waits for running jobs and tells them to stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive_job.h"
#include "lib/mem.h"

static atomic_int freed;

struct tjob {
	int fail;
	int wait_for_stop;       /* spin until archive_job_stopping() */
	atomic_int *release;     /* spin until *release != 0 (NULL: no wait) */
};

static void
tjob_free(void *arg)
{
	atomic_fetch_add(&freed, 1);
	free(arg);
}

static int
tjob_run(struct archive_job *j, void *arg, json_t **result_r, char **err_r)
{
	struct tjob *t = arg;
	struct timespec ms = { 0, 1000 * 1000 };
	archive_job_progress(j, 5, 10);
	while (t->release != NULL && atomic_load(t->release) == 0)
		nanosleep(&ms, NULL);
	while (t->wait_for_stop && !archive_job_stopping(j))
		nanosleep(&ms, NULL);
	if (t->fail) {
		*err_r = xstrdup("it went wrong");
		return -1;
	}
	*result_r = json_pack("{s:i}", "answer", 42);
	return 0;
}

static struct tjob *
tjob_new(int fail, atomic_int *release)
{
	struct tjob *t = xcalloc(1, sizeof(*t));
	t->fail = fail;
	t->release = release;
	return t;
}

/* Polls until the job leaves "running"; returns its final status (new reference). */
static json_t *
wait_job(struct archive_jobs *js, const char *tenant, long long id)
{
	struct timespec ms = { 0, 2 * 1000 * 1000 };
	for (int i = 0; i < 5000; i++) {
		json_t *st = archive_job_status(js, tenant, id);
		assert_non_null(st);
		if (strcmp(json_string_value(json_object_get(st, "state")), "running") != 0)
			return st;
		json_decref(st);
		nanosleep(&ms, NULL);
	}
	fail_msg("job %lld did not finish", id);
	return NULL;
}

static void
test_job_result_and_error(void **state)
{
	struct archive_jobs *js = archive_jobs_new();
	long long ok_id, bad_id;
	char *err = NULL;
	atomic_store(&freed, 0);
	assert_int_equal(archive_job_start(js, "acme", "verify", "cli@local", tjob_run, tjob_free,
	    tjob_new(0, NULL), &ok_id, &err), 0);
	assert_int_equal(archive_job_start(js, "acme", "import", "cli@local", tjob_run, tjob_free,
	    tjob_new(1, NULL), &bad_id, &err), 0);
	assert_true(bad_id > ok_id);
	json_t *st = wait_job(js, "acme", ok_id);
	assert_string_equal(json_string_value(json_object_get(st, "state")), "done");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "result"),
	    "answer")), 42);
	assert_int_equal(json_integer_value(json_object_get(st, "done")), 5);
	assert_int_equal(json_integer_value(json_object_get(st, "total")), 10);
	json_decref(st);
	st = wait_job(js, "acme", bad_id);
	assert_string_equal(json_string_value(json_object_get(st, "state")), "failed");
	assert_string_equal(json_string_value(json_object_get(st, "error")), "it went wrong");
	json_decref(st);
	/* another tenant cannot see them */
	assert_null(archive_job_status(js, "other", ok_id));
	json_t *list = archive_job_list(js, "acme");
	assert_int_equal(json_array_size(list), 2);
	json_decref(list);
	list = archive_job_list(js, "other");
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	archive_jobs_free(&js);
	assert_null(js);
	assert_int_equal(atomic_load(&freed), 2);
}

static void
test_job_cap_frees_arg(void **state)
{
	struct archive_jobs *js = archive_jobs_new();
	atomic_int release = 0;
	long long id;
	char *err = NULL;
	atomic_store(&freed, 0);
	for (int i = 0; i < ARCHIVE_JOBS_MAX; i++)
		assert_int_equal(archive_job_start(js, "acme", "export", "a", tjob_run, tjob_free,
		    tjob_new(0, &release), &id, &err), 0);
	assert_int_equal(archive_job_start(js, "acme", "export", "a", tjob_run, tjob_free,
	    tjob_new(0, &release), &id, &err), -1);
	assert_non_null(strstr(err, "running already"));
	free(err);
	assert_int_equal(atomic_load(&freed), 1);    /* the refused job's arg */
	atomic_store(&release, 1);
	archive_jobs_free(&js);
	assert_int_equal(atomic_load(&freed), ARCHIVE_JOBS_MAX + 1);
}

static void
test_job_stopping_on_free(void **state)
{
	struct archive_jobs *js = archive_jobs_new();
	long long id;
	char *err = NULL;
	atomic_store(&freed, 0);
	struct tjob *t = tjob_new(0, NULL);
	t->wait_for_stop = 1;
	assert_int_equal(archive_job_start(js, "acme", "purge", "a", tjob_run, tjob_free, t, &id,
	    &err), 0);
	archive_jobs_free(&js);      /* would hang if the job never saw "stopping" */
	assert_int_equal(atomic_load(&freed), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_job_result_and_error),
		cmocka_unit_test(test_job_cap_frees_arg),
		cmocka_unit_test(test_job_stopping_on_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
