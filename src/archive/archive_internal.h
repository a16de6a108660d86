/*
 * archive_internal — shared by the .c files of src/archive only: the per-tenant slot
 * behind struct archive_tenant and a few helpers of archive.c.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_INTERNAL_H
#define MAILARK_ARCHIVE_ARCHIVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "archive/archive.h"

struct archive_tenant {
	struct archive *a;
	char *name;
	pthread_mutex_t mu;           /* held between acquire and release */
	struct archive_store *store;  /* writer connections, opened on first use */
	struct archive_index *ix;
	atomic_llong max_id;          /* newest committed entry (for the lag metric) */
	atomic_llong indexed_upto;    /* newest entry searchable */
	struct archive_tenant *next;
};

/* "<data_dir>/archive/<tenant>/<file>" (file NULL: the directory); caller frees. */
char *archive_tenant_path(const struct archive *a, const char *tenant, const char *file);
struct archive *archive_tenant_archive(const struct archive_tenant *t);
/* archive_catch_up() reporting progress (entries indexed of the newest id). */
long long archive_catch_up_progress(struct archive *a, const char *tenant,
    archive_progress_cb *progress, void *parg, char **err_r);

#endif
