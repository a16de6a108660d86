/*
 * archive.c — the tenants' archives as one object: opening tenants on
 * demand, ingest (parse outside the lock, store commit, index, retention),
 * catch-up of the index lag, search, read, stats, shredding.  Verify and
 * reindex are in archive_verify.c.
 */
#include "archive/archive.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "archive/archive_crypto.h"
#include "archive/archive_index.h"
#include "archive/archive_internal.h"
#include "archive/archive_parse.h"
#include "archive/archive_retention.h"
#include "archive/archive_store.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"

/* Rows indexed per index transaction while catching up. */
#define ARCHIVE_CATCH_UP_BATCH 500

struct archive {
	char *data_dir;
	pthread_mutex_t mu;           /* guards the tenant list */
	struct archive_tenant *tenants;
};

static void
archive_err(char **err_r, const char *fmt, const char *a)
{
	if (err_r == NULL)
		return;
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a);
	*err_r = buf_steal(&e);
}

char *
archive_tenant_path(const struct archive *a, const char *tenant, const char *file)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s/archive/%s%s%s", a->data_dir, tenant, file ? "/" : "", file ? file : "");
	return buf_steal(&b);
}

int
archive_open(const char *data_dir, struct archive **a_r, char **err_r)
{
	if (archive_parse_init() < 0) {
		*err_r = xstrdup("archive: cannot initialise the MIME parser");
		return -1;
	}
	struct archive *a = xcalloc(1, sizeof(*a));
	a->data_dir = xstrdup(data_dir);
	pthread_mutex_init(&a->mu, NULL);
	*a_r = a;
	return 0;
}

static void
archive_tenant_close_dbs(struct archive_tenant *t)
{
	if (t->ix != NULL)
		archive_index_close(&t->ix);
	if (t->store != NULL)
		archive_store_close(&t->store);
}

void
archive_close(struct archive **ap)
{
	struct archive *a = *ap;
	if (a == NULL)
		return;
	*ap = NULL;
	while (a->tenants != NULL) {
		struct archive_tenant *t = a->tenants;
		a->tenants = t->next;
		archive_tenant_close_dbs(t);
		pthread_mutex_destroy(&t->mu);
		free(t->name);
		free(t);
	}
	pthread_mutex_destroy(&a->mu);
	free(a->data_dir);
	free(a);
}

const char *
archive_data_dir(const struct archive *a)
{
	return a->data_dir;
}

/* The tenant's slot (created, not opened), under a->mu. */
static struct archive_tenant *
archive_tenant_slot(struct archive *a, const char *tenant)
{
	pthread_mutex_lock(&a->mu);
	struct archive_tenant *t = a->tenants;
	while (t != NULL && strcmp(t->name, tenant) != 0)
		t = t->next;
	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		t->a = a;
		t->name = xstrdup(tenant);
		pthread_mutex_init(&t->mu, NULL);
		t->next = a->tenants;
		a->tenants = t;
	}
	pthread_mutex_unlock(&a->mu);
	return t;
}

/* Renames index.db (and its WAL) to *.corrupt-<time>, keeping it for inspection. */
static void
archive_index_set_aside(const char *path)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	long long now = (long long)time(NULL);
	for (size_t i = 0; i < 3; i++) {
		struct buf from = BUF_INIT, to = BUF_INIT;
		buf_appendf(&from, "%s%s", path, suffixes[i]);
		buf_appendf(&to, "%s.corrupt-%lld%s", path, now, suffixes[i]);
		if (rename(from.data, to.data) < 0 && errno != ENOENT)
			log_warn("archive_rename_failed", "file=%s errno=%d", log_str(from.data), errno);
		buf_free(&from);
		buf_free(&to);
	}
}

/* Opens store, retention tables and index of a locked slot. */
static int
archive_tenant_open_dbs(struct archive_tenant *t, int create, char **err_r)
{
	if (archive_store_open(t->a->data_dir, t->name, create, &t->store, err_r) < 0)
		return -1;
	if (archive_retention_schema(archive_store_db(t->store), err_r) < 0) {
		archive_store_close(&t->store);
		return -1;
	}
	char *path = archive_tenant_path(t->a, t->name, "index.db");
	int rc = archive_index_open(path, &t->ix, err_r);
	if (rc < 0) {
		/* The index is derived: set a broken one aside and rebuild from the store. */
		log_error("archive_index_unusable", "tenant=%s error=%s action=rebuild", t->name,
		    log_str(*err_r));
		free(*err_r);
		*err_r = NULL;
		archive_index_set_aside(path);
		rc = archive_index_open(path, &t->ix, err_r);
	}
	free(path);
	if (rc < 0) {
		archive_store_close(&t->store);
		return -1;
	}
	atomic_store(&t->max_id, archive_store_max_id(t->store));
	atomic_store(&t->indexed_upto, archive_index_indexed_upto(t->ix));
	return 0;
}

int
archive_tenant_acquire(struct archive *a, const char *tenant, int create,
    struct archive_tenant **t_r, char **err_r)
{
	if (!str_tenant_name_valid(tenant)) {
		archive_err(err_r, "bad tenant name '%s'", tenant ? tenant : "");
		return -1;
	}
	struct archive_tenant *t = archive_tenant_slot(a, tenant);
	pthread_mutex_lock(&t->mu);
	if (t->store == NULL && archive_tenant_open_dbs(t, create, err_r) < 0) {
		pthread_mutex_unlock(&t->mu);
		return -1;
	}
	*t_r = t;
	return 0;
}

void
archive_tenant_release(struct archive_tenant **tp)
{
	struct archive_tenant *t = *tp;
	if (t == NULL)
		return;
	*tp = NULL;
	pthread_mutex_unlock(&t->mu);
}

struct archive_store *
archive_tenant_store(struct archive_tenant *t)
{
	return t->store;
}

struct archive_index *
archive_tenant_index(struct archive_tenant *t)
{
	return t->ix;
}

const char *
archive_tenant_name(const struct archive_tenant *t)
{
	return t->name;
}

struct archive *
archive_tenant_archive(const struct archive_tenant *t)
{
	return t->a;
}

int
archive_tenant_has(const struct archive *a, const char *tenant)
{
	if (!str_tenant_name_valid(tenant))
		return 0;
	char *path = archive_tenant_path(a, tenant, "store.db");
	struct stat st;
	int rc = stat(path, &st) == 0;
	free(path);
	return rc;
}

int
archive_tenant_reader(struct archive *a, const char *tenant, struct archive_index **ix_r,
    char **err_r)
{
	if (!archive_tenant_has(a, tenant)) {
		archive_err(err_r, "tenant '%s' has no archive", tenant ? tenant : "");
		return -1;
	}
	char *path = archive_tenant_path(a, tenant, "index.db");
	int rc = archive_index_open(path, ix_r, err_r);
	free(path);
	return rc;
}

/* ---------------------------------------------------------------- ingest */

/* One item made ready outside the lock: the bytes to keep and their document. */
struct archive_prep {
	const unsigned char *raw;     /* it->raw, or the journal's original */
	size_t len;
	char hash[65];
	struct archive_doc doc;
	int parsed;
	struct archive_journal journal;
	int journal_ok;
	char **mailboxes;             /* journal: the tenant's recipients */
	size_t nmailboxes;
	char *env_rcpts;              /* journal: every recipient */
};

static int
archive_addr_in_domains(const char *addr, const char *const *domains, size_t n)
{
	const char *at = strrchr(addr, '@');
	if (at == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(at + 1, domains[i]) == 0)
			return 1;
	return 0;
}

/* A journal report: archive the original for the tenant's recipients (and sender). */
static void
archive_prep_journal(struct archive_prep *p, const struct archive_item *it)
{
	struct archive_journal *j = &p->journal;
	struct buf rc = BUF_INIT;
	p->mailboxes = xcalloc(j->nrcpts + 1, sizeof(*p->mailboxes));
	for (size_t i = 0; i < j->nrcpts; i++) {
		buf_appendf(&rc, "%s%s", i ? "," : "", j->rcpts[i]);
		if (it->ndomains == 0 || archive_addr_in_domains(j->rcpts[i], it->domains, it->ndomains))
			p->mailboxes[p->nmailboxes++] = xstrdup(j->rcpts[i]);
	}
	if (j->sender != NULL && it->ndomains > 0 &&
	    archive_addr_in_domains(j->sender, it->domains, it->ndomains))
		p->mailboxes[p->nmailboxes++] = xstrdup(j->sender);
	p->env_rcpts = buf_steal(&rc);
	p->raw = j->orig;
	p->len = j->orig_len;
}

static int
archive_prepare(struct archive_prep *p, const struct archive_item *it, char **err_r)
{
	memset(p, 0, sizeof(*p));
	if (it->raw == NULL || it->len == 0) {
		*err_r = xstrdup("empty message");
		return -1;
	}
	p->raw = it->raw;
	p->len = it->len;
	if (it->unwrap_journal) {
		int jr = archive_journal_unwrap(it->raw, it->len, &p->journal, err_r);
		if (jr < 0)
			return -1;
		if (jr == 1) {
			p->journal_ok = 1;
			archive_prep_journal(p, it);
		}
	}
	archive_crypto_sha256_hex(p->raw, p->len, p->hash);
	if (archive_parse(p->raw, p->len, &p->doc, err_r) < 0)
		return -1;
	p->parsed = 1;
	return 0;
}

static void
archive_prep_free(struct archive_prep *p)
{
	if (p->parsed)
		archive_doc_free(&p->doc);
	if (p->journal_ok)
		archive_journal_free(&p->journal);
	for (size_t i = 0; i < p->nmailboxes; i++)
		free(p->mailboxes[i]);
	free(p->mailboxes);
	free(p->env_rcpts);
}

static void
archive_put_fill(struct archive_put *put, const struct archive_prep *p,
    const struct archive_item *it, time_t now)
{
	memset(put, 0, sizeof(*put));
	put->raw = p->raw;
	put->len = p->len;
	put->hash = p->hash;
	if (p->journal_ok) {
		put->mailboxes = (const char *const *)p->mailboxes;
		put->nmailboxes = p->nmailboxes;
		put->env_rcpts = p->env_rcpts;
		put->env_from = p->journal.sender;
		put->source = "journal";
	} else {
		put->mailboxes = it->mailboxes;
		put->nmailboxes = it->nmailboxes;
		put->env_rcpts = it->env_rcpts;
		put->env_from = it->env_from;
		put->source = it->source ? it->source : "import";
	}
	put->folder = it->folder ? it->folder : "";
	put->queue_id = it->queue_id;
	put->archived_at = now;
	put->msg_date = p->doc.date > 0 && p->doc.date <= now + 86400 ? p->doc.date : now;
	put->expires_at = -1;   /* set by retention once indexed */
}

/* Indexes rows (after_id, upto] from the store, parsing each blob. Locked. */
static long long
archive_index_range(struct archive_tenant *t, long long after_id, char **err_r);

/* Indexes one freshly committed row with the document we already have. */
static int
archive_index_row(struct archive_tenant *t, long long id, size_t size,
    const struct archive_doc *doc, char **err_r)
{
	struct archive_row row;
	int rc = archive_store_row(t->store, id, &row, err_r);
	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	rc = archive_index_add(t->ix, &row, size, doc, err_r);
	archive_row_free(&row);
	return rc;
}

/*
 * After a commit: index the new rows (catching up first if the index lags),
 * then compute their expiry.  A failure here loses nothing (the store has
 * the message); it leaves an index lag that archive_catch_up() closes.
 */
static void
archive_after_commit(struct archive_tenant *t, long long first_new, const long long *ids,
    const size_t *sizes, const struct archive_doc *const *docs, size_t n)
{
	char *err = NULL;
	long long upto = archive_index_indexed_upto(t->ix);
	long long max_id = archive_store_max_id(t->store);
	long long apply_from = first_new;
	atomic_store(&t->max_id, max_id);
	/* Entries committed before (a crash, a failed index write) come first —
	 * also when this ingest added nothing (a replayed duplicate). */
	if (upto < (first_new > 0 ? first_new - 1 : max_id)) {
		if (archive_index_range(t, upto, &err) < 0)
			goto fail;
		apply_from = upto + 1;
	}
	if (first_new == 0 && apply_from == 0) {
		free(err);
		return;
	}
	if (archive_index_begin(t->ix, &err) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (ids[i] > 0 && archive_index_row(t, ids[i], sizes[i], docs[i], &err) < 0)
			goto fail_txn;
	if (archive_index_commit(t->ix, max_id, &err) < 0)
		goto fail;
	atomic_store(&t->indexed_upto, max_id);
	if (apply_from > 0 && archive_retention_apply(t, apply_from, max_id, &err) < 0)
		log_error("archive_retention_failed", "tenant=%s error=%s", t->name, log_str(err));
	free(err);
	return;
fail_txn:
	archive_index_rollback(t->ix);
fail:
	log_error("archive_index_failed", "tenant=%s error=%s", t->name, log_str(err));
	free(err);
}

/* Stores the prepared items in one transaction.  Locked.  0 / -1. */
static int
archive_commit_preps(struct archive_tenant *t, struct archive_prep *preps,
    const struct archive_item *items, size_t n, struct archive_ingest_result *res,
    char **errs, char **err_r)
{
	time_t now = time(NULL);
	size_t cap = 0;
	for (size_t i = 0; i < n; i++)
		cap += (preps[i].journal_ok ? preps[i].nmailboxes : items[i].nmailboxes) + 1;
	long long *ids = xcalloc(cap, sizeof(*ids));
	size_t *sizes = xcalloc(cap, sizeof(*sizes));
	const struct archive_doc **docs = xcalloc(cap, sizeof(*docs));
	size_t nids = 0;
	long long first_new = 0;
	if (archive_store_begin(t->store, err_r) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (errs != NULL && errs[i] != NULL)
			continue;
		struct archive_put put;
		struct archive_put_result pr;
		archive_put_fill(&put, &preps[i], &items[i], now);
		memset(&pr, 0, sizeof(pr));
		if (archive_store_put(t->store, &put, &pr, ids + nids, err_r) < 0) {
			archive_store_rollback(t->store);
			goto fail;
		}
		size_t rows = put.nmailboxes > 0 ? put.nmailboxes : 1;
		for (size_t k = 0; k < rows; k++) {
			sizes[nids + k] = preps[i].len;
			docs[nids + k] = &preps[i].doc;
			if (ids[nids + k] > 0 && (first_new == 0 || ids[nids + k] < first_new))
				first_new = ids[nids + k];
		}
		nids += rows;
		memcpy(res[i].hash, preps[i].hash, sizeof(res[i].hash));
		res[i].blob_new = pr.blob_new;
		res[i].rows_new = pr.rows_new;
		res[i].rows_dup = pr.rows_dup;
		res[i].journal = preps[i].journal_ok;
	}
	if (archive_store_commit(t->store, err_r) < 0)
		goto fail;
	archive_after_commit(t, first_new, ids, sizes, docs, nids);
	free(ids);
	free(sizes);
	free(docs);
	return 0;
fail:
	free(ids);
	free(sizes);
	free(docs);
	return -1;
}

int
archive_ingest_batch(struct archive *a, const char *tenant, const struct archive_item *items,
    size_t n, struct archive_ingest_result *results, char **errs_r, char **err_r)
{
	struct archive_prep *preps = xcalloc(n ? n : 1, sizeof(*preps));
	size_t good = 0;
	for (size_t i = 0; i < n; i++) {
		char *e = NULL;
		memset(&results[i], 0, sizeof(results[i]));
		if (archive_prepare(&preps[i], &items[i], &e) < 0) {
			if (errs_r != NULL)
				errs_r[i] = e;
			else
				free(e);
			archive_prep_free(&preps[i]);
			memset(&preps[i], 0, sizeof(preps[i]));
			continue;
		}
		good++;
	}
	int rc = 0;
	if (good > 0) {
		struct archive_tenant *t;
		rc = archive_tenant_acquire(a, tenant, 1, &t, err_r);
		if (rc == 0) {
			rc = archive_commit_preps(t, preps, items, n, results, errs_r, err_r);
			archive_tenant_release(&t);
		}
	}
	for (size_t i = 0; i < n; i++)
		archive_prep_free(&preps[i]);
	free(preps);
	return rc;
}

int
archive_ingest(struct archive *a, const char *tenant, const struct archive_item *it,
    struct archive_ingest_result *res, char **err_r)
{
	char *e = NULL;
	int rc = archive_ingest_batch(a, tenant, it, 1, res, &e, err_r);
	if (rc == 0 && e != NULL) {
		*err_r = e;
		return -1;
	}
	free(e);
	return rc;
}

/* ------------------------------------------------------------- catch-up */

struct archive_range_ctx {
	struct archive_tenant *t;
	long long last;
	size_t n;
	int failed;
	char **err_r;
};

static int
archive_range_row(void *arg, const struct archive_row *row)
{
	struct archive_range_ctx *c = arg;
	unsigned char *raw = NULL;
	size_t len = 0;
	struct archive_doc doc;
	char *err = NULL;
	c->last = row->id;
	c->n++;
	/* An unreadable blob is verify's business: skip it, never block the index. */
	if (archive_store_get(c->t->store, row->hash, &raw, &len, &err) < 0 ||
	    archive_parse(raw, len, &doc, &err) < 0) {
		log_error("archive_index_skipped", "tenant=%s id=%lld error=%s", c->t->name,
		    row->id, log_str(err));
		free(err);
		free(raw);
		return c->n >= ARCHIVE_CATCH_UP_BATCH;
	}
	int rc = archive_index_add(c->t->ix, row, len, &doc, c->err_r);
	archive_doc_free(&doc);
	free(raw);
	if (rc < 0) {
		c->failed = 1;
		return -1;
	}
	return c->n >= ARCHIVE_CATCH_UP_BATCH;
}

/* Indexes one batch of rows after after_id; returns how many (0: none left), -1. */
static long long
archive_index_batch(struct archive_tenant *t, long long after_id, long long *last_r,
    char **err_r)
{
	struct archive_range_ctx c = { .t = t, .last = after_id, .err_r = err_r };
	if (archive_index_begin(t->ix, err_r) < 0)
		return -1;
	int rc = archive_store_foreach_row(t->store, after_id, archive_range_row, &c, err_r);
	if (c.failed || (rc < 0 && c.n < ARCHIVE_CATCH_UP_BATCH)) {
		archive_index_rollback(t->ix);
		return -1;
	}
	long long upto = c.n > 0 ? c.last : after_id;
	if (c.n < ARCHIVE_CATCH_UP_BATCH)
		upto = archive_store_max_id(t->store) > upto ? archive_store_max_id(t->store) : upto;
	if (archive_index_commit(t->ix, upto, err_r) < 0)
		return -1;
	atomic_store(&t->indexed_upto, upto);
	*last_r = upto;
	return (long long)c.n;
}

static long long
archive_index_range(struct archive_tenant *t, long long after_id, char **err_r)
{
	long long total = 0, last = after_id;
	for (;;) {
		long long n = archive_index_batch(t, last, &last, err_r);
		if (n < 0)
			return -1;
		total += n;
		if (n < ARCHIVE_CATCH_UP_BATCH)
			return total;
	}
}

long long
archive_catch_up_progress(struct archive *a, const char *tenant, archive_progress_cb *progress,
    void *parg, char **err_r)
{
	long long total = 0;
	for (;;) {
		struct archive_tenant *t;
		if (archive_tenant_acquire(a, tenant, 0, &t, err_r) < 0)
			return -1;
		long long upto = archive_index_indexed_upto(t->ix), last = upto;
		long long max_id = archive_store_max_id(t->store);
		long long n = max_id > upto ? archive_index_batch(t, upto, &last, err_r) : 0;
		if (n > 0 && archive_retention_apply(t, upto + 1, last, err_r) < 0) {
			log_error("archive_retention_failed", "tenant=%s error=%s", tenant,
			    log_str(*err_r));
			free(*err_r);
			*err_r = NULL;
		}
		archive_tenant_release(&t);
		if (n < 0)
			return -1;
		total += n;
		if (progress != NULL)
			progress(parg, (uint64_t)last, (uint64_t)max_id);
		if (n < ARCHIVE_CATCH_UP_BATCH)
			return total;
	}
}

long long
archive_catch_up(struct archive *a, const char *tenant, char **err_r)
{
	return archive_catch_up_progress(a, tenant, NULL, NULL, err_r);
}

long long
archive_index_lag(struct archive *a)
{
	long long lag = 0;
	pthread_mutex_lock(&a->mu);
	for (struct archive_tenant *t = a->tenants; t != NULL; t = t->next) {
		long long d = atomic_load(&t->max_id) - atomic_load(&t->indexed_upto);
		if (d > 0)
			lag += d;
	}
	pthread_mutex_unlock(&a->mu);
	return lag;
}

/* ------------------------------------------------------- search and read */

int
archive_search(struct archive *a, const char *tenant, const struct archive_search_opts *o,
    struct archive_results *res, char **err_r)
{
	struct archive_index *ix;
	if (archive_tenant_reader(a, tenant, &ix, err_r) < 0)
		return -1;
	int rc = archive_index_search(ix, o, res, err_r);
	archive_index_close(&ix);
	return rc;
}

int
archive_get(struct archive *a, const char *tenant, long long id, struct archive_row *row_r,
    unsigned char **raw_r, size_t *len_r, char **err_r)
{
	struct archive_tenant *t;
	if (!archive_tenant_has(a, tenant)) {
		archive_err(err_r, "tenant '%s' has no archive", tenant ? tenant : "");
		return -1;
	}
	if (archive_tenant_acquire(a, tenant, 0, &t, err_r) < 0)
		return -1;
	int rc = archive_store_row(t->store, id, row_r, err_r);
	if (rc == 1 && archive_store_get(t->store, row_r->hash, raw_r, len_r, err_r) < 0) {
		archive_row_free(row_r);
		rc = -1;
	}
	archive_tenant_release(&t);
	return rc;
}

static long long
archive_file_size(const struct archive *a, const char *tenant, const char *file)
{
	long long total = 0;
	static const char *const suffixes[] = { "", "-wal" };
	for (size_t i = 0; i < 2; i++) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "%s%s", file, suffixes[i]);
		char *path = archive_tenant_path(a, tenant, b.data);
		struct stat st;
		if (stat(path, &st) == 0)
			total += (long long)st.st_size;
		free(path);
		buf_free(&b);
	}
	return total;
}

int
archive_stats(struct archive *a, const char *tenant, struct archive_stats *st, char **err_r)
{
	struct archive_tenant *t;
	struct archive_store_stats ss;
	memset(st, 0, sizeof(*st));
	if (!archive_tenant_has(a, tenant)) {
		archive_err(err_r, "tenant '%s' has no archive", tenant ? tenant : "");
		return -1;
	}
	if (archive_tenant_acquire(a, tenant, 0, &t, err_r) < 0)
		return -1;
	int rc = archive_store_stats(t->store, &ss, err_r);
	st->indexed_upto = archive_index_indexed_upto(t->ix);
	archive_tenant_release(&t);
	if (rc < 0)
		return -1;
	st->messages = ss.messages;
	st->blobs = ss.blobs;
	st->raw_bytes = ss.raw_bytes;
	st->sealed_bytes = ss.sealed_bytes;
	st->max_id = ss.max_id;
	st->store_bytes = archive_file_size(a, tenant, "store.db");
	st->index_bytes = archive_file_size(a, tenant, "index.db");
	return 0;
}

/* ------------------------------------------------------------- shredding */

static void
archive_unlink_quiet(const struct archive *a, const char *tenant, const char *file)
{
	char *path = archive_tenant_path(a, tenant, file);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("archive_unlink_failed", "file=%s errno=%d", log_str(path), errno);
	free(path);
}

/* Shredding destroys everything: never under a retention lock or a hold. */
static int
archive_shred_allowed(struct archive_tenant *t, char **err_r)
{
	sqlite3 *db = archive_store_db(t->store);
	sqlite3_stmt *st = NULL;
	const char *sql = "SELECT (SELECT value FROM settings WHERE key = 'locked'), "
	    "(SELECT count(*) FROM holds WHERE released_at IS NULL)";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		archive_err(err_r, "cannot read the retention settings: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	const unsigned char *locked = sqlite3_column_text(st, 0);
	long long holds = sqlite3_column_int64(st, 1);
	int is_locked = locked != NULL && strcmp((const char *)locked, "1") == 0;
	sqlite3_finalize(st);
	if (is_locked) {
		archive_err(err_r, "tenant '%s': retention is locked; the archive cannot be shredded",
		    t->name);
		return -1;
	}
	if (holds > 0) {
		archive_err(err_r, "tenant '%s' has active legal holds; release them first", t->name);
		return -1;
	}
	return 0;
}

int
archive_shred(struct archive *a, const char *tenant, char **err_r)
{
	struct archive_tenant *t;
	if (!archive_tenant_has(a, tenant)) {
		archive_err(err_r, "tenant '%s' has no archive", tenant ? tenant : "");
		return -1;
	}
	if (archive_tenant_acquire(a, tenant, 0, &t, err_r) < 0)
		return -1;
	if (archive_shred_allowed(t, err_r) < 0) {
		archive_tenant_release(&t);
		return -1;
	}
	archive_tenant_close_dbs(t);
	int rc = archive_crypto_datakey_shred(a->data_dir, tenant, err_r);
	if (rc == 0) {
		static const char *const files[] = { "index.db", "index.db-wal", "index.db-shm",
			"store.db", "store.db-wal", "store.db-shm" };
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
			archive_unlink_quiet(a, tenant, files[i]);
		char *dir = archive_tenant_path(a, tenant, NULL);
		if (rmdir(dir) < 0)
			log_warn("archive_rmdir_failed", "dir=%s errno=%d", log_str(dir), errno);
		free(dir);
		atomic_store(&t->max_id, 0);
		atomic_store(&t->indexed_upto, 0);
		log_info("archive_shredded", "tenant=%s", tenant);
	}
	archive_tenant_release(&t);
	return rc;
}
