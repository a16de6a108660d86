/*
 * archive_bench — drives the archive core (libmailark.a) directly for the
 * archive benchmark (bench/archive/run.sh; not run by CI).
 *
 *   archive_bench ingest DATA_DIR TENANT MAILDIR [THREADS]
 *       every file under MAILDIR/<folder>/{new,cur} (folder = that directory's
 *       name; MAILDIR/{new,cur} itself: no folder), in batches of 200 through
 *       archive_ingest_batch from THREADS threads (default: online CPUs),
 *       then archive_catch_up; prints msgs/s and MB/s.
 *   archive_bench search DATA_DIR TENANT QUERYFILE [RUNS]
 *       QUERYFILE: "name<TAB>query[<TAB>anything]" per line, '#' comments.
 *       Runs each query RUNS times (default 20; first page of 50, with
 *       snippets, as the UI asks), prints p50/p95 per query and overall.
 *   archive_bench size DATA_DIR TENANT
 *       store.db, index.db (with their WAL files) and the raw bytes stored.
 *   archive_bench export DATA_DIR TENANT QUERY OUT.zip [eml|mbox]
 *
 * DATA_DIR gets keys/master.key (32 random bytes) when it has none.
 * Output lines are "key value ..." for run.sh to pick up.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/archive_export.h"
#include "archive/archive_index.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/sys.h"

#define BENCH_BATCH 200
#define BENCH_MAX_MSG (64u << 20)
#define BENCH_MAX_QUERIES 64

static double
bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
bench_master_key(const char *data_dir)
{
	struct buf p = BUF_INIT;
	buf_appendf(&p, "%s/keys", data_dir);
	if (sys_mkdir_p(p.data, 0700) < 0) {
		fprintf(stderr, "mkdir %s: %s\n", p.data, strerror(errno));
		buf_free(&p);
		return -1;
	}
	buf_append_str(&p, "/master.key");
	struct stat st;
	int rc = 0;
	if (stat(p.data, &st) < 0) {
		unsigned char key[32];
		randombytes_buf(key, sizeof(key));
		rc = sys_write_file_atomic(p.data, key, sizeof(key), 0600);
		if (rc < 0)
			fprintf(stderr, "write %s: %s\n", p.data, strerror(errno));
	}
	buf_free(&p);
	return rc;
}

static int
bench_open(const char *data_dir, struct archive **a_r)
{
	char *err = NULL;
	if (sodium_init() < 0 || bench_master_key(data_dir) < 0)
		return -1;
	if (archive_open(data_dir, a_r, &err) < 0) {
		fprintf(stderr, "archive_open: %s\n", err);
		free(err);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ ingest */

struct bench_file {
	char *path;
	char *folder;                 /* shared with other files of the folder */
};

struct bench_files {
	struct bench_file *v;
	size_t n, cap;
};

static void
bench_list_dir(struct bench_files *fs, const char *dir, char *folder)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fs->n == fs->cap) {
			fs->cap = fs->cap ? fs->cap * 2 : 1024;
			fs->v = xrealloc(fs->v, fs->cap * sizeof(*fs->v));
		}
		struct buf p = BUF_INIT;
		buf_appendf(&p, "%s/%s", dir, de->d_name);
		fs->v[fs->n].path = buf_steal(&p);
		fs->v[fs->n++].folder = folder;
	}
	closedir(d);
}

/* MAILDIR/{new,cur} (no folder) and MAILDIR/<folder>/{new,cur}. */
static void
bench_list(struct bench_files *fs, const char *maildir)
{
	static const char *const subs[] = { "new", "cur" };
	static char nofolder[] = "";
	struct buf p = BUF_INIT;
	for (size_t i = 0; i < 2; i++) {
		buf_reset(&p);
		buf_appendf(&p, "%s/%s", maildir, subs[i]);
		bench_list_dir(fs, p.data, nofolder);
	}
	DIR *d = opendir(maildir);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, "new") == 0 ||
		    strcmp(de->d_name, "cur") == 0 || strcmp(de->d_name, "tmp") == 0)
			continue;
		char *folder = xstrdup(de->d_name);   /* lives until exit */
		for (size_t i = 0; i < 2; i++) {
			buf_reset(&p);
			buf_appendf(&p, "%s/%s/%s", maildir, de->d_name, subs[i]);
			bench_list_dir(fs, p.data, folder);
		}
	}
	if (d != NULL)
		closedir(d);
	buf_free(&p);
}

struct bench_ingest {
	struct archive *a;
	const char *tenant;
	struct bench_files *fs;
	atomic_size_t next;           /* next batch start */
	atomic_ullong bytes, ok, failed, dups;
	atomic_int fatal;
};

static void
bench_batch(struct bench_ingest *bi, size_t from, size_t n)
{
	struct archive_item items[BENCH_BATCH];
	struct archive_ingest_result res[BENCH_BATCH];
	char *errs[BENCH_BATCH] = { 0 };
	char *data[BENCH_BATCH] = { 0 };
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const struct bench_file *f = &bi->fs->v[from + i];
		if (sys_read_file(f->path, BENCH_MAX_MSG, &data[m], &len) < 0) {
			atomic_fetch_add(&bi->failed, 1);
			continue;
		}
		memset(&items[m], 0, sizeof(items[m]));
		items[m].raw = data[m];
		items[m].len = len;
		items[m].folder = f->folder;
		items[m].source = "import";
		atomic_fetch_add(&bi->bytes, len);
		m++;
	}
	char *err = NULL;
	if (archive_ingest_batch(bi->a, bi->tenant, items, m, res, errs, &err) < 0) {
		fprintf(stderr, "ingest: %s\n", err);
		free(err);
		atomic_store(&bi->fatal, 1);
	}
	for (size_t i = 0; i < m; i++) {
		if (errs[i] != NULL) {
			atomic_fetch_add(&bi->failed, 1);
			free(errs[i]);
		} else {
			atomic_fetch_add(&bi->ok, 1);
			atomic_fetch_add(&bi->dups, res[i].rows_new == 0);
		}
		free(data[i]);
	}
}

static void *
bench_ingest_thread(void *arg)
{
	struct bench_ingest *bi = arg;
	while (!atomic_load(&bi->fatal)) {
		size_t from = atomic_fetch_add(&bi->next, BENCH_BATCH);
		if (from >= bi->fs->n)
			break;
		size_t n = bi->fs->n - from < BENCH_BATCH ? bi->fs->n - from : BENCH_BATCH;
		bench_batch(bi, from, n);
	}
	return NULL;
}

static int
bench_cmd_ingest(struct archive *a, const char *tenant, const char *maildir, int threads)
{
	struct bench_files fs = { 0 };
	bench_list(&fs, maildir);
	struct bench_ingest bi = { .a = a, .tenant = tenant, .fs = &fs };
	pthread_t th[64];
	double t0 = bench_now();
	for (int i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, bench_ingest_thread, &bi) != 0)
			return -1;
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	char *err = NULL;
	long long caught = archive_catch_up(a, tenant, &err);
	double dt = bench_now() - t0;
	if (caught < 0) {
		fprintf(stderr, "catch_up: %s\n", err);
		free(err);
	}
	unsigned long long ok = atomic_load(&bi.ok), bytes = atomic_load(&bi.bytes);
	printf("ingest_files %zu\ningest_ok %llu\ningest_failed %llu\ningest_dups %llu\n"
	    "ingest_bytes %llu\ningest_threads %d\ningest_seconds %.3f\ningest_msgs_per_s %.1f\n"
	    "ingest_mb_per_s %.2f\n", fs.n, ok, (unsigned long long)atomic_load(&bi.failed),
	    (unsigned long long)atomic_load(&bi.dups), bytes, threads, dt, (double)ok / dt,
	    (double)bytes / dt / 1e6);
	for (size_t i = 0; i < fs.n; i++)
		free(fs.v[i].path);
	free(fs.v);
	return atomic_load(&bi.fatal) || caught < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ search */

struct bench_query {
	char *name, *query;
	double *ms;
	size_t total;
};

static int
bench_dbl_cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

/* Nearest-rank percentile of sorted v[n]. */
static double
bench_pct(const double *v, size_t n, double p)
{
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
	return n == 0 ? 0 : v[k == 0 ? 0 : (k > n ? n - 1 : k - 1)];
}

static size_t
bench_read_queries(const char *path, struct bench_query *q)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 0;
	}
	char line[2048];
	size_t n = 0;
	while (n < BENCH_MAX_QUERIES && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		char *tab = strchr(line, '\t');
		if (line[0] == '#' || tab == NULL)
			continue;
		*tab = '\0';
		char *end = strchr(tab + 1, '\t');
		if (end != NULL)
			*end = '\0';
		q[n].name = xstrdup(line);
		q[n++].query = xstrdup(tab + 1);
	}
	fclose(f);
	return n;
}

static int
bench_run_query(struct archive *a, const char *tenant, struct bench_query *q, size_t runs)
{
	q->ms = xcalloc(runs, sizeof(double));
	for (size_t r = 0; r < runs; r++) {
		struct archive_search_opts o = { .query = q->query };
		struct archive_results res;
		char *err = NULL;
		double t0 = bench_now();
		if (archive_search(a, tenant, &o, &res, &err) < 0) {
			fprintf(stderr, "search %s: %s\n", q->name, err);
			free(err);
			return -1;
		}
		q->ms[r] = (bench_now() - t0) * 1000.0;
		q->total = res.total;
		archive_results_free(&res);
	}
	return 0;
}

static int
bench_cmd_search(struct archive *a, const char *tenant, const char *file, size_t runs)
{
	struct bench_query q[BENCH_MAX_QUERIES];
	size_t n = bench_read_queries(file, q);
	if (n == 0)
		return -1;
	double *all = xcalloc(n * runs, sizeof(double));
	int rc = 0;
	printf("# name\ttotal\tp50_ms\tp95_ms\n");
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = bench_run_query(a, tenant, &q[i], runs);
		if (rc < 0)
			break;
		memcpy(all + i * runs, q[i].ms, runs * sizeof(double));
		qsort(q[i].ms, runs, sizeof(double), bench_dbl_cmp);
		printf("query\t%s\t%zu\t%.2f\t%.2f\n", q[i].name, q[i].total,
		    bench_pct(q[i].ms, runs, 50), bench_pct(q[i].ms, runs, 95));
	}
	if (rc == 0) {
		qsort(all, n * runs, sizeof(double), bench_dbl_cmp);
		printf("overall\t%.2f\t%.2f\n", bench_pct(all, n * runs, 50),
		    bench_pct(all, n * runs, 95));
	}
	for (size_t i = 0; i < n; i++) {
		free(q[i].name);
		free(q[i].query);
		free(q[i].ms);
	}
	free(all);
	return rc;
}

/* -------------------------------------------------------------- size, export */

static int
bench_cmd_size(struct archive *a, const char *tenant)
{
	struct archive_stats st;
	char *err = NULL;
	if (archive_stats(a, tenant, &st, &err) < 0) {
		fprintf(stderr, "stats: %s\n", err);
		free(err);
		return -1;
	}
	printf("size_messages %lld\nsize_blobs %lld\nsize_raw_bytes %lld\nsize_sealed_bytes %lld\n"
	    "size_store_bytes %lld\nsize_index_bytes %lld\n", st.messages, st.blobs, st.raw_bytes,
	    st.sealed_bytes, st.store_bytes, st.index_bytes);
	return 0;
}

static int
bench_cmd_export(struct archive *a, const char *tenant, const char *query, const char *out,
    const char *fmtname)
{
	enum archive_export_format fmt;
	if (archive_export_format_parse(fmtname, &fmt) < 0) {
		fprintf(stderr, "format: eml or mbox\n");
		return -1;
	}
	struct archive_export_result r;
	char *err = NULL;
	double t0 = bench_now();
	if (archive_export(a, tenant, query, NULL, 0, fmt, out, &r, NULL, NULL, &err) < 0) {
		fprintf(stderr, "export: %s\n", err);
		free(err);
		return -1;
	}
	double dt = bench_now() - t0;
	printf("export_messages %zu\nexport_bytes %llu\nexport_seconds %.3f\n"
	    "export_msgs_per_s %.1f\nexport_sha256 %s\n", r.messages, (unsigned long long)r.bytes,
	    dt, (double)r.messages / dt, r.sha256_zip);
	return 0;
}

static int
bench_usage(void)
{
	fprintf(stderr, "usage: archive_bench ingest DATA_DIR TENANT MAILDIR [THREADS]\n"
	    "       archive_bench search DATA_DIR TENANT QUERYFILE [RUNS]\n"
	    "       archive_bench size DATA_DIR TENANT\n"
	    "       archive_bench export DATA_DIR TENANT QUERY OUT.zip [eml|mbox]\n");
	return 2;
}

int
main(int argc, char **argv)
{
	if (argc < 4)
		return bench_usage();
	const char *cmd = argv[1], *tenant = argv[3];
	struct archive *a;
	if (bench_open(argv[2], &a) < 0)
		return 1;
	int rc;
	if (strcmp(cmd, "ingest") == 0 && argc >= 5) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		int threads = argc >= 6 ? atoi(argv[5]) : (int)(cpus > 0 ? cpus : 1);
		rc = bench_cmd_ingest(a, tenant, argv[4], threads < 1 ? 1 : threads > 64 ? 64 :
		    threads);
	} else if (strcmp(cmd, "search") == 0 && argc >= 5) {
		int runs = argc >= 6 ? atoi(argv[5]) : 20;
		rc = bench_cmd_search(a, tenant, argv[4], (size_t)(runs < 1 ? 1 : runs));
	} else if (strcmp(cmd, "size") == 0) {
		rc = bench_cmd_size(a, tenant);
	} else if (strcmp(cmd, "export") == 0 && argc >= 6) {
		rc = bench_cmd_export(a, tenant, argv[4], argv[5], argc >= 7 ? argv[6] : "eml");
	} else {
		archive_close(&a);
		return bench_usage();
	}
	archive_close(&a);
	return rc < 0 ? 1 : 0;
}
