/*
 * control_archive — control commands of the archive, dispatched by
 * control_handlers.c (retention, holds and cases are in
 * control_archive_retention.c):
 *
 *   archive.search  {tenant, query, limit?, offset?}   → {total, hits[]}     (audited)
 *   archive.show    {tenant, id}                        → entry + raw (base64) (audited)
 *   archive.stats   {tenant}
 *   archive.import  {tenant, kind: mbox|maildir|eml|pst, paths[], mailbox?, folder?} → {job}
 *   archive.export  {tenant, query, format: mbox|eml, out}                   → {job}
 *   archive.verify  {tenant} → {job}     archive.reindex {tenant} → {job}
 *   archive.purge   {tenant, dry_run?} → {job}
 *   archive.job     {tenant, id}   archive.jobs {tenant}
 *   archive.shred   {tenant}       (operator; refused under a retention lock or a hold)
 *
 * A principal with role user searches and reads only the mailboxes of
 * their own address and aliases; other entries are "not found".  Every
 * search, view and export is recorded in the audit trail (by the handler:
 * these are not "mutating" but are accesses to mail), and every job's end.
 */
#include "control/control_handlers.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>
#include <sodium.h>

#include "archive/archive.h"
#include "archive/archive_export.h"
#include "archive/archive_import.h"
#include "archive/archive_index.h"
#include "archive/archive_job.h"
#include "archive/archive_pst.h"
#include "archive/archive_retention.h"
#include "archive/archive_store.h"
#include "audit/audit.h"
#include "auth/principal.h"
#include "control/control_args.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "server.h"
#include "config/config.h"
#include "store/store.h"

/* Entries handed to archive_ingest_batch at once during an import. */
#define CARCH_IMPORT_BATCH 200
/* Failures listed in an import's result (all are counted). */
#define CARCH_FAILURES_LISTED 100
/* Paths one import may name. */
#define CARCH_MAX_PATHS 1000

/* ------------------------------------------------------------- helpers */

static void
carch_err(char **err_r, const char *fmt, const char *a)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a);
	*err_r = buf_steal(&e);
}

/* A role-user principal's own mailboxes (address + aliases); NULL for others. */
static char **
carch_user_mailboxes(struct server *srv, const struct principal *who, size_t *n_r)
{
	*n_r = 0;
	if (who->role != ROLE_USER || who->user_id <= 0)
		return NULL;
	struct store_user u;
	char **aliases = NULL;
	size_t na = 0;
	if (store_user_get_id(srv->store, who->user_id, &u) <= 0)
		return xcalloc(1, sizeof(char *));    /* no user: sees nothing */
	if (store_user_aliases(srv->store, who->user_id, &aliases, &na) < 0)
		na = 0;
	char **list = xcalloc(na + 2, sizeof(*list));
	list[(*n_r)++] = str_lower(xstrdup(u.address));
	for (size_t i = 0; i < na; i++)
		list[(*n_r)++] = str_lower(xstrdup(aliases[i]));
	store_strings_free(aliases, na);
	store_user_clear(&u);
	return list;
}

static void
carch_strings_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static int
carch_mailbox_allowed(char **list, size_t n, const char *mailbox)
{
	if (list == NULL)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], mailbox) == 0)
			return 1;
	return 0;
}

static void
carch_audit(struct server *srv, const struct principal *who, const char *tenant,
    const char *action, const char *outcome, const char *detail)
{
	struct buf obj = BUF_INIT;
	buf_appendf(&obj, "tenant:%s", tenant);
	audit_record_tenant(srv, who, tenant, action, buf_cstr(&obj), outcome, detail);
	buf_free(&obj);
}

static json_t *
carch_hit_json(const struct archive_hit *h)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:b}",
	    "id", (json_int_t)h->id, "sha256", h->hash, "mailbox", h->mailbox ? h->mailbox : "",
	    "folder", h->folder ? h->folder : "", "date", (json_int_t)h->date,
	    "from", h->from ? h->from : "", "subject", h->subject ? h->subject : "",
	    "snippet", h->snippet ? h->snippet : "", "size", (json_int_t)h->size,
	    "has_attachment", h->has_attachment != 0);
}

/* ---------------------------------------------------------- search, show */

static int
control_archive_search(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	const char *query = tenant ? control_arg(args, "query", err_r) : NULL;
	long long limit, offset;
	if (query == NULL ||
	    control_arg_int(args, "limit", 50, 1, 1000, &limit, err_r) < 0 ||
	    control_arg_int(args, "offset", 0, 0, 1000000000, &offset, err_r) < 0) {
		free(tenant);
		return -1;
	}
	size_t nmb = 0;
	char **mb = carch_user_mailboxes(srv, who, &nmb);
	struct archive_search_opts o = {
		.query = query, .mailboxes = (const char *const *)mb, .nmailboxes = nmb,
		.limit = (size_t)limit, .offset = (size_t)offset,
	};
	struct archive_results res = { 0 };
	int rc = archive_search(srv->archive, tenant, &o, &res, err_r);
	/* A user with no mailbox at all must see nothing, not everything. */
	if (rc == 0 && mb != NULL && nmb == 0)
		archive_results_free(&res), memset(&res, 0, sizeof(res));
	struct buf d = BUF_INIT;
	buf_appendf(&d, "query=%s total=%zu", query, rc == 0 ? res.total : 0);
	carch_audit(srv, who, tenant, "archive.search", rc == 0 ? "ok" : "failed", buf_cstr(&d));
	buf_free(&d);
	if (rc == 0) {
		json_t *hits = json_array();
		for (size_t i = 0; i < res.nhits; i++)
			json_array_append_new(hits, carch_hit_json(&res.hits[i]));
		*result_r = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)res.total,
		    "offset", (json_int_t)offset, "limit", (json_int_t)limit, "hits", hits);
		archive_results_free(&res);
	}
	carch_strings_free(mb, nmb);
	free(tenant);
	return rc;
}

static json_t *
carch_row_json(const struct archive_row *r)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:I, s:I, s:o}",
	    "id", (json_int_t)r->id, "sha256", r->hash, "mailbox", r->mailbox ? r->mailbox : "",
	    "folder", r->folder ? r->folder : "", "source", r->source ? r->source : "",
	    "env_from", r->env_from, "env_rcpts", r->env_rcpts, "queue_id", r->queue_id,
	    "archived_at", (json_int_t)r->archived_at, "date", (json_int_t)r->msg_date,
	    "expires_at", r->expires_at >= 0 ? json_integer((json_int_t)r->expires_at) :
	    json_null());
}

static json_t *
carch_base64(const unsigned char *raw, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = xmalloc(cap);
	sodium_bin2base64(b64, cap, raw, len, sodium_base64_VARIANT_ORIGINAL);
	json_t *s = json_string(b64);
	free(b64);
	return s;
}

static int
control_archive_show(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	long long id;
	if (tenant == NULL || control_arg_int(args, "id", 0, 1, LLONG_MAX, &id, err_r) < 0) {
		free(tenant);
		return -1;
	}
	struct archive_row row;
	unsigned char *raw = NULL;
	size_t len = 0, nmb = 0;
	char **mb = carch_user_mailboxes(srv, who, &nmb);
	int rc = archive_get(srv->archive, tenant, id, &row, &raw, &len, err_r);
	if (rc == 1 && !carch_mailbox_allowed(mb, nmb, row.mailbox)) {
		archive_row_free(&row);
		free(raw);
		rc = 0;
	}
	struct buf d = BUF_INIT;
	buf_appendf(&d, "id=%lld", id);
	carch_audit(srv, who, tenant, "archive.show", rc == 1 ? "ok" : "failed", buf_cstr(&d));
	buf_free(&d);
	if (rc == 0) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "no archive entry %lld", id);
		*err_r = buf_steal(&e);
		rc = -1;
	} else if (rc == 1) {
		json_t *o = carch_row_json(&row);
		json_object_set_new(o, "size", json_integer((json_int_t)len));
		json_object_set_new(o, "raw_base64", carch_base64(raw, len));
		*result_r = o;
		archive_row_free(&row);
		free(raw);
		rc = 0;
	}
	carch_strings_free(mb, nmb);
	free(tenant);
	return rc;
}

static int
control_archive_stats(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	struct archive_stats st;
	if (tenant == NULL)
		return -1;
	int rc = archive_stats(srv->archive, tenant, &st, err_r);
	if (rc == 0)
		*result_r = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		    "tenant", tenant, "messages", (json_int_t)st.messages,
		    "blobs", (json_int_t)st.blobs, "raw_bytes", (json_int_t)st.raw_bytes,
		    "sealed_bytes", (json_int_t)st.sealed_bytes,
		    "store_bytes", (json_int_t)st.store_bytes,
		    "index_bytes", (json_int_t)st.index_bytes, "max_id", (json_int_t)st.max_id,
		    "indexed_upto", (json_int_t)st.indexed_upto,
		    "index_lag", (json_int_t)(st.max_id > st.indexed_upto ?
		    st.max_id - st.indexed_upto : 0));
	free(tenant);
	return rc;
}

/* ---------------------------------------------------------------- jobs */

/* What every job carries: the server, the tenant, who asked. */
struct carch_job {
	struct server *srv;
	char *tenant;
	struct principal who;
	/* import */
	char *kind, *mailbox, *folder;
	char **paths;
	size_t npaths;
	/* export */
	char *query, *out;
	enum archive_export_format format;
	char **mailboxes;
	size_t nmailboxes;
	/* purge */
	int dry_run;
};

static struct carch_job *
carch_job_new(struct server *srv, const struct principal *who, char *tenant)
{
	struct carch_job *j = xcalloc(1, sizeof(*j));
	j->srv = srv;
	j->tenant = tenant;
	j->who.role = who->role;
	j->who.actor = xstrdup(who->actor ? who->actor : "unknown");
	j->who.tenant = who->tenant ? xstrdup(who->tenant) : NULL;
	j->who.user_id = who->user_id;
	j->who.source = who->source ? xstrdup(who->source) : NULL;
	return j;
}

static void
carch_job_free(void *arg)
{
	struct carch_job *j = arg;
	free(j->tenant);
	free(j->who.actor);
	free(j->who.tenant);
	free(j->who.source);
	free(j->kind);
	free(j->mailbox);
	free(j->folder);
	carch_strings_free(j->paths, j->npaths);
	free(j->query);
	free(j->out);
	carch_strings_free(j->mailboxes, j->nmailboxes);
	free(j);
}

static int
carch_job_reply(struct server *srv, const struct principal *who, struct carch_job *j,
    const char *kind, archive_job_fn *fn, json_t **result_r, char **err_r)
{
	long long id;
	const char *tenant = j->tenant;
	char *t = xstrdup(tenant);
	int rc = archive_job_start(srv->archive_jobs, t, kind, who->actor, fn, carch_job_free, j,
	    &id, err_r);
	if (rc == 0)
		*result_r = json_pack("{s:I, s:s, s:s}", "job", (json_int_t)id, "tenant", t,
		    "kind", kind);
	free(t);
	return rc;
}

/* Records a job's end in the audit trail (from the job's thread). */
static void
carch_job_audit(struct carch_job *j, const char *action, int rc, json_t *result,
    const char *err)
{
	char *detail = result ? json_dumps(result, JSON_COMPACT) : NULL;
	carch_audit(j->srv, &j->who, j->tenant, action, rc == 0 ? "ok" : "failed",
	    rc == 0 ? detail : err);
	free(detail);
}

/* ------------------------------------------------------------- import */

struct carch_import {
	struct carch_job *cj;
	struct archive_job *job;
	struct archive_item items[CARCH_IMPORT_BATCH];
	unsigned char *raws[CARCH_IMPORT_BATCH];
	char *folders[CARCH_IMPORT_BATCH];
	char *origins[CARCH_IMPORT_BATCH];
	size_t n;
	const char *mailboxes[1];
	long long imported, duplicates, failed;
	json_t *failures;
	char *fatal;
};

static void
carch_import_failure(struct carch_import *im, const char *origin, const char *reason)
{
	im->failed++;
	if (json_array_size(im->failures) < CARCH_FAILURES_LISTED)
		json_array_append_new(im->failures, json_pack("{s:s, s:s}", "item",
		    origin ? origin : "?", "reason", reason ? reason : "failed"));
}

static void
carch_import_fail_cb(void *arg, const char *origin, const char *reason)
{
	carch_import_failure(arg, origin, reason);
}

static int
carch_import_flush(struct carch_import *im)
{
	struct archive_ingest_result res[CARCH_IMPORT_BATCH];
	char *errs[CARCH_IMPORT_BATCH] = { 0 };
	char *err = NULL;
	int rc = 0;
	if (im->n > 0 && archive_ingest_batch(im->cj->srv->archive, im->cj->tenant, im->items,
	    im->n, res, errs, &err) < 0) {
		im->fatal = err;
		rc = -1;
	}
	for (size_t i = 0; i < im->n; i++) {
		if (rc == 0 && errs[i] != NULL)
			carch_import_failure(im, im->origins[i], errs[i]);
		else if (rc == 0 && res[i].rows_new > 0)
			im->imported++;
		else if (rc == 0)
			im->duplicates++;
		free(errs[i]);
		free(im->raws[i]);
		free(im->folders[i]);
		free(im->origins[i]);
	}
	im->n = 0;
	return rc;
}

static int
carch_import_item(void *arg, const struct archive_import_item *it)
{
	struct carch_import *im = arg;
	struct carch_job *cj = im->cj;
	size_t i = im->n++;
	im->raws[i] = xmalloc(it->len ? it->len : 1);
	memcpy(im->raws[i], it->raw, it->len);
	im->folders[i] = xstrdup(cj->folder ? cj->folder : it->folder ? it->folder : "");
	im->origins[i] = xstrdup(it->origin ? it->origin : "?");
	im->items[i] = (struct archive_item){
		.raw = im->raws[i], .len = it->len, .folder = im->folders[i], .source = "import",
		.mailboxes = cj->mailbox ? im->mailboxes : NULL, .nmailboxes = cj->mailbox ? 1 : 0,
	};
	archive_job_progress(im->job, it->done_bytes, it->total_bytes);
	if (im->n == CARCH_IMPORT_BATCH && carch_import_flush(im) < 0)
		return 1;
	return archive_job_stopping(im->job);
}

static int
carch_import_source(struct carch_import *im, const char *path, char **err_r)
{
	const char *kind = im->cj->kind;
	if (strcmp(kind, "mbox") == 0)
		return archive_import_mbox(path, carch_import_item, carch_import_fail_cb, im, err_r);
	if (strcmp(kind, "maildir") == 0)
		return archive_import_maildir(path, carch_import_item, carch_import_fail_cb, im,
		    err_r);
	if (strcmp(kind, "pst") == 0)
		return archive_import_pst(path, carch_import_item, carch_import_fail_cb, im, err_r);
	const char *one[1] = { path };
	return archive_import_eml(one, 1, carch_import_item, carch_import_fail_cb, im, err_r);
}

static int
carch_import_run(struct archive_job *job, void *arg, json_t **result_r, char **err_r)
{
	struct carch_job *cj = arg;
	struct carch_import *im = xcalloc(1, sizeof(*im));
	im->cj = cj;
	im->job = job;
	im->mailboxes[0] = cj->mailbox;
	im->failures = json_array();
	int rc = 0;
	for (size_t p = 0; p < cj->npaths && rc == 0 && im->fatal == NULL; p++) {
		char *err = NULL;
		int r = carch_import_source(im, cj->paths[p], &err);
		if (r < 0)
			carch_import_failure(im, cj->paths[p], err);
		free(err);
		if (r == 1 && archive_job_stopping(job))
			rc = -1;
	}
	if (im->fatal == NULL)
		carch_import_flush(im);
	else
		carch_import_flush(im), rc = -1;
	if (im->fatal != NULL) {
		*err_r = im->fatal;
		im->fatal = NULL;
		rc = -1;
	} else if (rc < 0) {
		*err_r = xstrdup("stopped: the daemon is shutting down");
	}
	json_t *result = json_pack("{s:I, s:I, s:I, s:o}", "imported", (json_int_t)im->imported,
	    "duplicates", (json_int_t)im->duplicates, "failed", (json_int_t)im->failed,
	    "failures", im->failures);
	carch_job_audit(cj, "archive.import.done", rc, result, rc < 0 ? *err_r : NULL);
	if (rc == 0)
		*result_r = result;
	else
		json_decref(result);
	free(im);
	return rc;
}

static int
carch_import_paths(struct carch_job *j, json_t *args, char **err_r)
{
	json_t *paths = json_object_get(args, "paths");
	size_t n = json_array_size(paths);
	if (!json_is_array(paths) || n == 0 || n > CARCH_MAX_PATHS) {
		*err_r = xstrdup("argument 'paths' must list 1 to 1000 files or directories");
		return -1;
	}
	j->paths = xcalloc(n, sizeof(*j->paths));
	for (size_t i = 0; i < n; i++) {
		json_t *p = json_array_get(paths, i);
		if (!json_is_string(p) || json_string_value(p)[0] != '/') {
			*err_r = xstrdup("every path must be absolute");
			return -1;
		}
		j->paths[j->npaths++] = xstrdup(json_string_value(p));
	}
	return 0;
}

static int
control_archive_import(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	const char *kind = tenant ? control_arg(args, "kind", err_r) : NULL;
	if (kind == NULL) {
		free(tenant);
		return -1;
	}
	if (strcmp(kind, "mbox") != 0 && strcmp(kind, "maildir") != 0 &&
	    strcmp(kind, "eml") != 0 && strcmp(kind, "pst") != 0) {
		carch_err(err_r, "unknown import kind '%s' (mbox, maildir, eml or pst)", kind);
		free(tenant);
		return -1;
	}
	struct carch_job *j = carch_job_new(srv, who, tenant);
	j->kind = xstrdup(kind);
	const char *mailbox = control_arg_opt(args, "mailbox");
	const char *folder = control_arg_opt(args, "folder");
	if (mailbox != NULL && !store_address_valid(mailbox)) {
		carch_err(err_r, "invalid mailbox address '%s'", mailbox);
		carch_job_free(j);
		return -1;
	}
	j->mailbox = mailbox ? str_lower(xstrdup(mailbox)) : NULL;
	j->folder = folder ? xstrdup(folder) : NULL;
	if (carch_import_paths(j, args, err_r) < 0) {
		carch_job_free(j);
		return -1;
	}
	return carch_job_reply(srv, who, j, "import", carch_import_run, result_r, err_r);
}

/* ------------------------------------------------------------- export */

static int
carch_export_run(struct archive_job *job, void *arg, json_t **result_r, char **err_r)
{
	struct carch_job *cj = arg;
	struct archive_export_result r;
	memset(&r, 0, sizeof(r));
	int rc = archive_export(cj->srv->archive, cj->tenant, cj->query,
	    (const char *const *)cj->mailboxes, cj->nmailboxes, cj->format, cj->out, &r,
	    archive_job_progress, job, err_r);
	json_t *result = json_pack("{s:s, s:s, s:I, s:I, s:s}", "query", cj->query, "out", cj->out,
	    "messages", (json_int_t)r.messages, "bytes", (json_int_t)r.bytes, "sha256",
	    rc == 0 ? r.sha256_zip : "");
	carch_job_audit(cj, "archive.export.done", rc, result, rc < 0 ? *err_r : NULL);
	if (rc == 0)
		*result_r = result;
	else
		json_decref(result);
	return rc;
}

/*
 * Where an export goes: an operator (the node's own administrator) names
 * any absolute path; everyone else gets <data_dir>/exports/<tenant>/NAME,
 * NAME being the base name they gave (letters, digits, ".-_", ending in
 * .zip) or export-<time>.zip.  Caller frees.
 */
static char *
carch_export_path(struct server *srv, const struct principal *who, const char *tenant,
    const char *out, char **err_r)
{
	if (who->role == ROLE_OPERATOR && out != NULL) {
		if (out[0] != '/') {
			*err_r = xstrdup("the output path must be absolute");
			return NULL;
		}
		return xstrdup(out);
	}
	const char *base = out ? strrchr(out, '/') : NULL;
	base = base ? base + 1 : out;
	size_t n = base ? strlen(base) : 0;
	int ok = n > 4 && n < 128 && strcmp(base + n - 4, ".zip") == 0 && base[0] != '.';
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)base[i]) || strchr("._-", base[i]) != NULL;
	if (out != NULL && !ok) {
		carch_err(err_r, "bad export name '%s' (letters, digits, '.', '-', '_'; ending in .zip)",
		    out);
		return NULL;
	}
	struct buf p = BUF_INIT;
	buf_appendf(&p, "%s/exports", srv->cfg->data_dir);
	mkdir(buf_cstr(&p), 0700);
	buf_appendf(&p, "/%s", tenant);
	mkdir(buf_cstr(&p), 0700);
	if (out != NULL)
		buf_appendf(&p, "/%s", base);
	else
		buf_appendf(&p, "/export-%lld.zip", (long long)time(NULL));
	return buf_steal(&p);
}

static int carch_export_start(struct server *srv, const struct principal *who, char *tenant,
    json_t *args, json_t **result_r, char **err_r);

/*
 * Four eyes for exports (setting four_eyes_export): the first request is
 * recorded for approval and answered {"pending_approval": ID}; once a
 * second admin approved it, the same request with approval=ID runs the
 * export with the approved arguments.  0: go on with *args_r (new ref);
 * 1: answered (pending); -1: refused.
 */
static int
carch_export_approval(struct server *srv, const struct principal *who, const char *tenant,
    json_t *args, json_t **args_r, json_t **result_r, char **err_r)
{
	long long need = 0, approval = 0, id;
	if (archive_tenant_has(srv->archive, tenant) &&
	    archive_retention_setting_get(srv->archive, tenant, "four_eyes_export", &need,
	    err_r) < 0)
		return -1;
	if (control_arg_int(args, "approval", 0, 0, LLONG_MAX, &approval, err_r) < 0)
		return -1;
	if (approval > 0)
		return archive_retention_approval_take(srv->archive, tenant, approval, "export",
		    args_r, err_r) < 0 ? -1 : 0;
	if (!need) {
		*args_r = json_incref(args);
		return 0;
	}
	json_t *req = json_deep_copy(args);
	json_object_del(req, "approval");
	int rc = archive_retention_request(srv->archive, tenant, "export", req, who->actor, &id,
	    err_r);
	json_decref(req);
	if (rc < 0)
		return -1;
	*result_r = json_pack("{s:I, s:s}", "pending_approval", (json_int_t)id, "action",
	    "export");
	return 1;
}

static int
control_archive_export(struct server *srv, const struct principal *who, json_t *args_in,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args_in, err_r);
	json_t *args = NULL;
	int ar = tenant ? carch_export_approval(srv, who, tenant, args_in, &args, result_r,
	    err_r) : -1;
	if (ar != 0) {
		free(tenant);
		return ar < 0 ? -1 : 0;
	}
	int rc = carch_export_start(srv, who, tenant, args, result_r, err_r);
	json_decref(args);
	return rc;
}

/* Starts the export job (tenant: ours to free). */
static int
carch_export_start(struct server *srv, const struct principal *who, char *tenant, json_t *args,
    json_t **result_r, char **err_r)
{
	const char *query = control_arg(args, "query", err_r);
	const char *format = control_arg_opt(args, "format");
	char *out = query ? carch_export_path(srv, who, tenant, control_arg_opt(args, "out"),
	    err_r) : NULL;
	if (out == NULL) {
		free(tenant);
		return -1;
	}
	if (format != NULL && strcmp(format, "mbox") != 0 && strcmp(format, "eml") != 0) {
		carch_err(err_r, "unknown export format '%s' (mbox or eml)", format);
		free(out);
		free(tenant);
		return -1;
	}
	struct carch_job *j = carch_job_new(srv, who, tenant);
	j->query = xstrdup(query);
	j->out = out;
	j->format = format != NULL && strcmp(format, "mbox") == 0 ? ARCHIVE_EXPORT_MBOX :
	    ARCHIVE_EXPORT_EML;
	j->mailboxes = carch_user_mailboxes(srv, who, &j->nmailboxes);
	struct buf d = BUF_INIT;
	buf_appendf(&d, "query=%s format=%s out=%s", query, format ? format : "eml", out);
	carch_audit(srv, who, tenant, "archive.export", "started", buf_cstr(&d));
	buf_free(&d);
	return carch_job_reply(srv, who, j, "export", carch_export_run, result_r, err_r);
}

/* ------------------------------------------------ verify, reindex, purge */

static int
carch_verify_run(struct archive_job *job, void *arg, json_t **result_r, char **err_r)
{
	struct carch_job *cj = arg;
	struct archive_verify_result r;
	int rc = archive_verify(cj->srv->archive, cj->tenant, &r, archive_job_progress, job, err_r);
	if (rc < 0) {
		carch_job_audit(cj, "archive.verify.done", rc, NULL, *err_r);
		return -1;
	}
	int ok = r.blobs_bad == 0 && r.rows_missing_blob == 0 && r.blobs_unreferenced == 0 &&
	    r.index_missing == 0 && r.index_extra == 0;
	json_t *result = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "intact", ok,
	    "blobs", (json_int_t)r.blobs, "blobs_bad", (json_int_t)r.blobs_bad,
	    "entries", (json_int_t)r.rows, "entries_missing_blob", (json_int_t)r.rows_missing_blob,
	    "blobs_unreferenced", (json_int_t)r.blobs_unreferenced,
	    "index_missing", (json_int_t)r.index_missing, "index_extra", (json_int_t)r.index_extra);
	carch_job_audit(cj, "archive.verify.done", 0, result, NULL);
	json_object_set_new(result, "report", json_string(r.report ? r.report : ""));
	free(r.report);
	*result_r = result;
	return 0;
}

static int
carch_reindex_run(struct archive_job *job, void *arg, json_t **result_r, char **err_r)
{
	struct carch_job *cj = arg;
	long long n = archive_reindex(cj->srv->archive, cj->tenant, archive_job_progress, job,
	    err_r);
	json_t *result = n >= 0 ? json_pack("{s:I}", "indexed", (json_int_t)n) : NULL;
	carch_job_audit(cj, "archive.reindex.done", n < 0 ? -1 : 0, result, n < 0 ? *err_r : NULL);
	*result_r = result;
	return n < 0 ? -1 : 0;
}

static int
carch_purge_run(struct archive_job *job, void *arg, json_t **result_r, char **err_r)
{
	struct carch_job *cj = arg;
	struct archive_purge_result r;
	char *lag_err = NULL;
	memset(&r, 0, sizeof(r));
	/* only indexed entries are candidates: close any index lag first */
	if (archive_catch_up(cj->srv->archive, cj->tenant, &lag_err) < 0) {
		log_warn("archive_catch_up_failed", "tenant=%s error=%s", cj->tenant,
		    log_str(lag_err));
		free(lag_err);
	}
	int rc = archive_retention_purge(cj->srv->archive, cj->tenant, time(NULL), cj->dry_run,
	    cj->who.actor, &r, archive_job_progress, job, err_r);
	json_t *result = rc == 0 ? archive_purge_result_json(&r, cj->dry_run) : NULL;
	carch_job_audit(cj, cj->dry_run ? "archive.purge.dry_run" : "archive.purge.done", rc,
	    result, rc < 0 ? *err_r : NULL);
	*result_r = result;
	return rc;
}

static int
carch_simple_job(struct server *srv, const struct principal *who, json_t *args,
    const char *kind, archive_job_fn *fn, json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	if (!archive_tenant_has(srv->archive, tenant)) {
		carch_err(err_r, "tenant '%s' has no archive", tenant);
		free(tenant);
		return -1;
	}
	struct carch_job *j = carch_job_new(srv, who, tenant);
	if (control_arg_bool(args, "dry_run", 0, &j->dry_run, err_r) < 0) {
		carch_job_free(j);
		return -1;
	}
	return carch_job_reply(srv, who, j, kind, fn, result_r, err_r);
}

static int
control_archive_verify(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	return carch_simple_job(srv, who, args, "verify", carch_verify_run, result_r, err_r);
}

static int
control_archive_reindex(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	return carch_simple_job(srv, who, args, "reindex", carch_reindex_run, result_r, err_r);
}

static int
control_archive_purge(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	return carch_simple_job(srv, who, args, "purge", carch_purge_run, result_r, err_r);
}

static int
control_archive_job(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	long long id;
	if (tenant == NULL || control_arg_int(args, "id", 0, 1, LLONG_MAX, &id, err_r) < 0) {
		free(tenant);
		return -1;
	}
	*result_r = archive_job_status(srv->archive_jobs, tenant, id);
	free(tenant);
	if (*result_r == NULL) {
		*err_r = xstrdup("no such job");
		return -1;
	}
	return 0;
}

static int
control_archive_jobs(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	*result_r = archive_job_list(srv->archive_jobs, tenant);
	free(tenant);
	return 0;
}

/* The zip of a finished export job of this tenant: {path, content_type}; audited. */
static int
control_archive_export_file(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	long long id;
	if (tenant == NULL || control_arg_int(args, "id", 0, 1, LLONG_MAX, &id, err_r) < 0) {
		free(tenant);
		return -1;
	}
	json_t *st = archive_job_status(srv->archive_jobs, tenant, id);
	const char *kind = json_string_value(json_object_get(st, "kind"));
	const char *state = json_string_value(json_object_get(st, "state"));
	const char *out = json_string_value(json_object_get(json_object_get(st, "result"), "out"));
	int rc = -1;
	if (st == NULL || kind == NULL || strcmp(kind, "export") != 0 || out == NULL) {
		*err_r = xstrdup("no such export");
	} else if (strcmp(state, "done") != 0) {
		*err_r = xstrdup("the export is not finished");
	} else {
		*result_r = json_pack("{s:s, s:s}", "path", out, "content_type", "application/zip");
		struct buf d = BUF_INIT;
		buf_appendf(&d, "job=%lld file=%s", id, out);
		carch_audit(srv, who, tenant, "archive.export.download", "ok", buf_cstr(&d));
		buf_free(&d);
		rc = 0;
	}
	json_decref(st);
	free(tenant);
	return rc;
}

static int
control_archive_shred(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *tenant = control_arg_tenant(srv, args, err_r);
	if (tenant == NULL)
		return -1;
	int rc = archive_shred(srv->archive, tenant, err_r);
	if (rc == 0)
		*result_r = json_pack("{s:s, s:b}", "tenant", tenant, "shredded", 1);
	free(tenant);
	return rc;
}

/* ------------------------------------------------------ scheduled purge */

/* Seconds after start-up before the first scheduled purge. */
#define CARCH_FIRST_PURGE 60

static void carch_purge_timer_cb(evutil_socket_t fd, short what, void *arg);

static void
carch_purge_timer_arm(struct server *srv, uint64_t secs)
{
	struct timeval tv = { (time_t)secs, 0 };
	if (srv->archive_purge_ev != NULL)
		evtimer_add(srv->archive_purge_ev, &tv);
}

/* Start-up: index whatever was committed but not indexed before a crash. */
static int
carch_catch_up_run(struct archive_job *job, void *arg, json_t **result_r, char **err_r)
{
	struct carch_job *cj = arg;
	long long n = archive_catch_up(cj->srv->archive, cj->tenant, err_r);
	if (n < 0)
		return -1;
	if (n > 0)
		log_info("archive_caught_up", "tenant=%s entries=%lld", cj->tenant, n);
	*result_r = json_pack("{s:I}", "indexed", (json_int_t)n);
	return 0;
}

/* A job of `kind` for every tenant with an archive. */
static void
carch_jobs_for_all(struct server *srv, const char *kind, archive_job_fn *fn)
{
	struct store_tenant *list = NULL;
	size_t n = 0;
	struct principal sys = { .role = ROLE_OPERATOR, .actor = "mailark (scheduled)",
		.source = "local" };
	if (store_tenant_list(srv->store, &list, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!archive_tenant_has(srv->archive, list[i].name))
			continue;
		struct carch_job *j = carch_job_new(srv, &sys, xstrdup(list[i].name));
		json_t *res = NULL;
		char *err = NULL;
		if (carch_job_reply(srv, &sys, j, kind, fn, &res, &err) < 0) {
			log_warn("archive_job_not_started", "kind=%s tenant=%s error=%s", kind,
			    list[i].name, log_str(err));
			free(err);
		}
		json_decref(res);
	}
	store_tenants_free(list, n);
}

static void
carch_catch_up_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	carch_jobs_for_all(arg, "catch-up", carch_catch_up_run);
}

/* Every [archive] purge_interval: a purge job for each tenant with an archive. */
static void
carch_purge_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	carch_jobs_for_all(srv, "purge", carch_purge_run);
	carch_purge_timer_arm(srv, srv->cfg->archive_purge_interval);
}

int
control_archive_timer_start(struct server *srv)
{
	struct timeval soon = { 1, 0 };
	if (event_base_once(srv->base, -1, EV_TIMEOUT, carch_catch_up_timer_cb, srv, &soon) < 0)
		return -1;
	if (srv->cfg->archive_purge_interval == 0 || !srv->cfg->archive_enabled)
		return 0;
	srv->archive_purge_ev = evtimer_new(srv->base, carch_purge_timer_cb, srv);
	if (srv->archive_purge_ev == NULL)
		return -1;
	carch_purge_timer_arm(srv, srv->cfg->archive_purge_interval < CARCH_FIRST_PURGE ?
	    srv->cfg->archive_purge_interval : CARCH_FIRST_PURGE);
	return 0;
}

void
control_archive_timer_stop(struct server *srv)
{
	if (srv->archive_purge_ev != NULL)
		event_free(srv->archive_purge_ev);
	srv->archive_purge_ev = NULL;
}

const struct control_command control_archive_commands[] = {
	{ "archive.search", 0, control_archive_search },
	{ "archive.show", 0, control_archive_show },
	{ "archive.stats", 0, control_archive_stats },
	{ "archive.import", 1, control_archive_import },
	{ "archive.export", 0, control_archive_export },
	{ "archive.export.file", 0, control_archive_export_file },
	{ "archive.verify", 1, control_archive_verify },
	{ "archive.reindex", 1, control_archive_reindex },
	{ "archive.purge", 1, control_archive_purge },
	{ "archive.job", 0, control_archive_job },
	{ "archive.jobs", 0, control_archive_jobs },
	{ "archive.shred", 1, control_archive_shred },
	{ NULL, 0, NULL },
};
