/*
 * archive_retention — a tenant's retention policy, legal holds grouped in
 * e-discovery cases, the retention lock, four-eyes approvals and the purge
 * of expired, unheld messages.  Its tables live in the tenant's store.db
 * (created by archive_retention_schema(), which the core calls on open):
 *
 *   settings(key, value)        default_days (3650), locked (0/1), locked_at,
 *                               locked_by, four_eyes (1), four_eyes_export (0),
 *                               retention_applied_upto, recompute_next
 *   retention_rules(id, kind folder|address|domain|keyword, match, days, ...)
 *   cases(id, name, description, created_at, created_by, closed_at)
 *   holds(id, name, case_id, mailbox, query, date_from, date_to, created_*, released_*)
 *   approvals(id, action, args JSON, requested_by, requested_at,
 *             state pending|approved|rejected|executed, decided_by, decided_at)
 *   purges(id, started_at, finished_at, messages, blobs, by, dry_run)
 *
 * Semantics:
 * - Expiry of an entry = base + days * 86400, base = msg_date (archived_at
 *   when msg_date is later than archived_at), days = the LONGEST of the
 *   default and of every matching rule; -1 (forever) wins: expires_at NULL.
 *   Rules match case-insensitively: folder — the entry's folder equals the
 *   rule's or is a subfolder of it ("Legal" matches "Legal/2019"); address —
 *   the mailbox, the envelope sender, an envelope recipient or the From
 *   address (from the index); domain — the domain of one of those addresses
 *   (exactly: no subdomains); keyword — a phrase in the subject or body
 *   (full-text index).  Expiry is computed when an entry is indexed
 *   (archive_retention_apply, called by the core) and recomputed for every
 *   entry after each policy change, in batches between which ingest and
 *   search go on; a recompute interrupted by a crash resumes at the next
 *   change or purge (settings.recompute_next).
 * - Legal holds: active while not released.  An entry is held when an
 *   active hold matches it: mailbox equal (none: any), msg_date in
 *   [from, to) (open ends allowed), and the hold's query (none: any) finds
 *   it.  A held entry is never purged, whatever its expiry.
 * - Purge deletes entries with expires_at <= now that are indexed and not
 *   held, 500 per turn of the tenant lock: index entry first, then the store
 *   row; a blob goes with its last entry.  Every run is recorded in purges.
 * - Lock (archive_retention_lock): for ever, for everyone.  Afterwards
 *   lowering the default, removing a rule, turning four-eyes off and
 *   shredding are refused, and a recompute never lowers an expiry.
 * - Four eyes (settings.four_eyes, default on): lowering the default,
 *   removing a rule, releasing a hold, deleting a case, turning four_eyes or
 *   four_eyes_export off — and exports when four_eyes_export is on — are
 *   recorded as pending approvals; a different actor approves (the change
 *   is then carried out) or rejects them.  Lengthening retention, adding
 *   rules, holds and cases, closing a case and locking need no approval.
 *   Roles are checked by the control layer; this module checks only that
 *   approver and requester differ.
 *
 * Mutating functions return 0 (done), 1 (recorded as pending approval, its
 * id in *approval_r) or -1 with *err_r.  Every function takes the tenant
 * lock itself (create: the tenant's archive is created when it has none),
 * except archive_retention_apply, which runs with the tenant acquired.
 * Thread-safe.  Returned JSON values are new references; *err_r is
 * malloc'd; the caller frees both.
 */
#ifndef MAILARK_ARCHIVE_ARCHIVE_RETENTION_H
#define MAILARK_ARCHIVE_ARCHIVE_RETENTION_H

#include <time.h>

#include <jansson.h>

#include "archive/archive.h"

struct sqlite3;

#define ARCHIVE_RETENTION_DEFAULT_DAYS 3650
#define ARCHIVE_RETENTION_MAX_DAYS 365000

/* CREATE TABLE IF NOT EXISTS of every table above, default settings.  0 / -1. */
int archive_retention_schema(struct sqlite3 *db, char **err_r);

/* (Re)computes expires_at of the indexed entries with ids in [from_id, to_id].
 * The tenant must be acquired.  0 / -1. */
int archive_retention_apply(struct archive_tenant *t, long long from_id, long long to_id,
    char **err_r);
/* Recomputes every indexed entry (or finishes a pending recompute), in
 * batches of 10 000 ids, releasing the tenant between batches.  0 / -1. */
int archive_retention_recompute(struct archive *a, const char *tenant, char **err_r);

/* The whole policy as a JSON object: default_days, locked, locked_at,
 * locked_by, four_eyes, four_eyes_export, rules[], active_holds,
 * pending_approvals, recompute_pending, last_purge.  NULL + *err_r. */
json_t *archive_retention_policy_json(struct archive *a, const char *tenant, char **err_r);

/* days: -1 (forever) or 0..ARCHIVE_RETENTION_MAX_DAYS. */
int archive_retention_set_default(struct archive *a, const char *tenant, long long days,
    const char *actor, long long *approval_r, char **err_r);
/* kind: folder | address | domain | keyword.  0 with *id_r. */
int archive_retention_rule_add(struct archive *a, const char *tenant, const char *kind,
    const char *match, long long days, const char *actor, long long *id_r, char **err_r);
int archive_retention_rule_remove(struct archive *a, const char *tenant, long long id,
    const char *actor, long long *approval_r, char **err_r);
/* key: four_eyes | four_eyes_export; value 0/1. */
int archive_retention_setting_set(struct archive *a, const char *tenant, const char *key,
    int value, const char *actor, long long *approval_r, char **err_r);
/* Any settings key as an integer (absent: 0).  0 / -1. */
int archive_retention_setting_get(struct archive *a, const char *tenant, const char *key,
    long long *value_r, char **err_r);
/* Locks the policy for ever (again: 0, nothing changes). */
int archive_retention_lock(struct archive *a, const char *tenant, const char *actor,
    char **err_r);

/* Cases: names are 1..128 printable characters. */
int archive_retention_case_add(struct archive *a, const char *tenant, const char *name,
    const char *description, const char *actor, long long *id_r, char **err_r);
int archive_retention_case_close(struct archive *a, const char *tenant, const char *name,
    const char *actor, char **err_r);
/* Refused while the case has active holds; otherwise four eyes. */
int archive_retention_case_delete(struct archive *a, const char *tenant, const char *name,
    const char *actor, long long *approval_r, char **err_r);
/* JSON array of {id, name, description, created_at, created_by, closed_at, active_holds}. */
json_t *archive_retention_case_list(struct archive *a, const char *tenant, char **err_r);

struct archive_hold_spec {
	const char *name;            /* required, unique in the tenant (released ones too) */
	const char *case_name;       /* NULL, or an open case */
	const char *mailbox;         /* NULL: every mailbox */
	const char *query;           /* NULL: every message (checked: a bad query is refused) */
	long long date_from, date_to;   /* unix seconds of msg_date, [from, to); -1: open */
};
int archive_retention_hold_add(struct archive *a, const char *tenant,
    const struct archive_hold_spec *h, const char *actor, long long *id_r, char **err_r);
int archive_retention_hold_release(struct archive *a, const char *tenant, const char *name,
    const char *actor, long long *approval_r, char **err_r);
/* JSON array of holds {id, name, case, mailbox, query, from, to, created_*, released_*, active}. */
json_t *archive_retention_hold_list(struct archive *a, const char *tenant, char **err_r);

/* JSON array of approvals {id, action, args, requested_by, requested_at, state, decided_*};
 * pending_only: only those waiting. */
json_t *archive_retention_approval_list(struct archive *a, const char *tenant, int pending_only,
    char **err_r);
/* Records a pending approval for an action carried out elsewhere (e.g.
 * "export"; args: a JSON object, not stolen).  0 with *approval_r. */
int archive_retention_request(struct archive *a, const char *tenant, const char *action,
    json_t *args, const char *actor, long long *approval_r, char **err_r);
/*
 * A different actor approves a pending change: it is carried out now
 * (state "executed").  Actions carried out elsewhere ("export") become
 * "approved" instead and are claimed once with archive_retention_approval_take.
 * *approval_r (may be NULL) receives the approval as JSON.  0 / -1 (refused:
 * same actor, not pending, the change is no longer allowed — it stays pending).
 */
int archive_retention_approve(struct archive *a, const char *tenant, long long id,
    const char *approver, json_t **approval_r, char **err_r);
int archive_retention_reject(struct archive *a, const char *tenant, long long id,
    const char *actor, char **err_r);
/* Claims an approved approval of `action` once: 0 with *args_r (new ref), state "executed". */
int archive_retention_approval_take(struct archive *a, const char *tenant, long long id,
    const char *action, json_t **args_r, char **err_r);

struct archive_purge_result {
	long long purge_id;          /* purges.id of this run */
	long long messages;          /* entries deleted (dry run: that would be) */
	long long blobs, bytes;      /* blobs deleted and their raw size */
	long long held_skipped;      /* expired entries kept by a legal hold */
	long long failed;            /* expired entries whose blob could not be read (kept) */
};
/*
 * Deletes every indexed entry with expires_at <= now that no active hold
 * keeps, in short turns of the tenant lock (ingest and search go on).
 * dry_run: counts only.  progress (may be NULL) gets (last id, watermark).
 * 0 with *r, -1 with *err_r (what was purged before the error stays purged).
 */
int archive_retention_purge(struct archive *a, const char *tenant, time_t now, int dry_run,
    const char *actor, struct archive_purge_result *r, archive_progress_cb *progress,
    void *parg, char **err_r);
/* {"dry_run","messages","blobs","bytes","held_skipped","failed","purge_id"} (new reference). */
json_t *archive_purge_result_json(const struct archive_purge_result *r, int dry_run);

#endif
