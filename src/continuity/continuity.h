/*
 * continuity — when a tenant's primary mail server is down, its users keep
 * reading (IMAP, imap/) and sending (submission, smtp/) through mailark, and
 * failback replays everything into the primary when it returns.
 *
 * One struct continuity per daemon (srv->continuity), loop thread only
 * unless a function says otherwise.  It owns:
 *   - per-tenant settings (continuity_setting_*; stored in mailark.db),
 *   - the route health it learns from probe.c (active probes) and from the
 *     scheduler (passive: continuity_note_route_result),
 *   - outages and drills (one row each in mailark.db) and, per outage, a
 *     ledger of every message it owes the primary, which the failback
 *     report reconciles: accepted = delivered + pending + failed,
 *   - alerts on every transition (alert.c: email by direct MX + webhook).
 *
 * Per-tenant state machine (real outages):
 *
 *   NORMAL --route down (mode auto) / admin start--> ACTIVE
 *   ACTIVE --route up for failback_after (failback auto) / admin stop--> FAILING_BACK
 *            (automatically only after a route was seen down, or when the
 *            outage started by itself: not after an admin's start while
 *            every route was up)
 *   FAILING_BACK --no ledger row pending--> NORMAL   (the outage is "ended")
 *   FAILING_BACK --admin start--> ACTIVE              (the same outage goes on)
 *
 * In ACTIVE the scheduler holds every recipient routed to the tenant's
 * primary (continuity_route_held): no attempts, no expiry.  Entering
 * FAILING_BACK calls scheduler_release_tenant(), which dispatches the held
 * recipients in arrival order, one connection per route; a recipient the
 * primary already has (continuity_already_delivered) is recorded as
 * delivered without sending ("skipped" in the report).  Messages users sent
 * through submission during the outage get a copy in their primary mailbox
 * at failback (tenant setting sent_copy: "header" = a copy addressed to the
 * sender with an X-Mailark-Continuity header, delivered through the route;
 * "imap" = IMAP APPEND to the primary's Sent folder, alert.c).
 *
 * Drills run beside normal delivery: nothing is held; the chosen users (or
 * all) may sign in to IMAP and submission while the drill runs.
 *
 * Strings returned through *_r are the caller's to free.
 */
#ifndef MAILARK_CONTINUITY_CONTINUITY_H
#define MAILARK_CONTINUITY_CONTINUITY_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "queue/queue.h"

struct server;
struct principal;
struct continuity;

enum continuity_state {
	CONTINUITY_NORMAL,
	CONTINUITY_ACTIVE,
	CONTINUITY_FAILING_BACK,
};

/*
 * Tenant settings (key, default, meaning); values are text, validated by
 * continuity_setting_set:
 *   mode            manual   auto | manual: start by itself when a route is down
 *   failback        auto     auto | manual: fail back by itself after failback_after
 *   failback_after  300      seconds the primary must be up before automatic failback
 *   window_days     30       INBOX shows the user's mail of the last N days (1..3650)
 *   alert_addresses ""       comma-separated addresses alerted by email
 *   webhook         ""       http(s) URL: every transition is POSTed as JSON
 *   sent_copy       header   header | imap | none: copies of mail sent during an outage
 *   imap_url        ""       imap[s]://HOST[:PORT]/FOLDER for sent_copy imap
 *   imap_user       ""       login for APPEND, "%u" = the user's address (e.g. "%u*master")
 *   imap_password   ""       (never shown: continuity_settings_json prints "set")
 */
int continuity_setting_set(struct continuity *c, const char *tenant, const char *key,
    const char *value, char **err_r);
/* The value (caller frees) or the default; -1 for an unknown key. */
int continuity_setting_get(struct continuity *c, const char *tenant, const char *key,
    char **value_r);
/* Every setting of the tenant as a JSON object (new reference). */
json_t *continuity_settings_json(struct continuity *c, const char *tenant);

/* Daemon start-up: loads state, resumes outages, starts the probes.  0 / -1. */
int continuity_start(struct server *srv, struct continuity **c_r, char **err_r);
void continuity_stop(struct continuity **c);

enum continuity_state continuity_tenant_state(struct continuity *c, const char *tenant);

/*
 * Admin commands.  who: for the audit trail (the caller audits the command
 * itself; these record the transition and send the alerts).  reason: free
 * text or NULL.  0 / -1 with *err_r ("tenant 'x' is not in continuity").
 * start while ACTIVE is an error; start while FAILING_BACK re-enters ACTIVE.
 */
int continuity_admin_start(struct continuity *c, const char *tenant, const struct principal *who,
    const char *reason, char **err_r);
/* Begins failback (ACTIVE -> FAILING_BACK). */
int continuity_admin_stop(struct continuity *c, const char *tenant, const struct principal *who,
    char **err_r);

/* Drills.  users NULL/empty: every user of the tenant. */
int continuity_drill_start(struct continuity *c, const char *tenant, const char *const *users,
    size_t nusers, const struct principal *who, char **err_r);
int continuity_drill_stop(struct continuity *c, const char *tenant, const struct principal *who,
    char **err_r);

/*
 * Reports as JSON (new reference).  outage_id 0: the newest outage (or
 * drill, for continuity_drill_report).  Shape:
 *   { "id", "tenant", "kind": "outage"|"drill", "state", "started_at",
 *     "started_by", "reason", "ended_at", "failback_at", "time_to_failover_ms",
 *     "accepted", "delivered", "skipped", "pending", "failed", "reconciles": true,
 *     "failures": [ {"queue_id","rcpt","reason"} ],
 *     "pending_list": [ {"queue_id","rcpt","kind"} ],      (first 100)
 *     "users": [ {"address","signed_in","inbox","sent"} ]  (drills; outages: who signed in) }
 * "delivered" includes "skipped" (already at the primary); reconciles is
 * accepted == delivered + pending + failed.
 */
int continuity_report(struct continuity *c, const char *tenant, long long outage_id,
    json_t **report_r, char **err_r);
int continuity_drill_report(struct continuity *c, const char *tenant, long long drill_id,
    json_t **report_r, char **err_r);
/* { "tenant", "state", "since", "outage_id", "drill": {...}|null, "routes":
 *   [ {"route","state":"up"|"down"|"unknown","failures","since","last_error"} ],
 *   "settings": {...} } */
json_t *continuity_status_json(struct continuity *c, const char *tenant);

/* ---- who may use continuity (IMAP / submission sign-in gate) ---------- */

/*
 * 1 when the user (any of its addresses; canonical lower-case address of a
 * stored user) may use continuity now: the tenant is ACTIVE or FAILING_BACK,
 * or a drill of the tenant includes the user.  0 otherwise.
 */
int continuity_user_active(struct continuity *c, const char *tenant, const char *address);
/* Records a continuity sign-in (IMAP or submission) for the report. */
void continuity_note_signin(struct continuity *c, const char *tenant, const char *address,
    const char *service);
/* The INBOX window in days for the tenant's users (window_days). */
int continuity_window_days(struct continuity *c, const char *tenant);

/* ---- hooks from the scheduler (deliver/scheduler.c) ------------------- */

/* 1: do not deliver this tenant's route-bound recipients now (ACTIVE). */
int continuity_route_held(struct continuity *c, const char *tenant);
/* A new or recovered queue entry: ledger rows when the tenant is in an
 * outage or drill (inbound to the route; mail sent through submission). */
void continuity_note_queued(struct continuity *c, const struct queue_entry *e);
/* A recipient's final outcome (delivered, bounced, expired, deleted). */
void continuity_note_outcome(struct continuity *c, const struct queue_entry *e, size_t idx,
    enum queue_rcpt_state st, const char *reply);
/* Passive health: a delivery to route "HOST:PORT" connected (ok 1) or not. */
void continuity_note_route_result(struct continuity *c, const char *tenant, const char *route,
    int ok, const char *why);
/*
 * During failback: 1 when the primary already has this recipient's copy of
 * e (same Message-ID delivered to the same recipient through the route
 * before), with *why_r (static-lifetime-until-next-call text); else 0.
 */
int continuity_already_delivered(struct continuity *c, const struct queue_entry *e, size_t idx,
    const char **why_r);

/* ---- from probe.c ------------------------------------------------------ */

/* A probe of a tenant route finished: ok, or why it failed. */
void continuity_probe_result(struct continuity *c, const char *tenant, const char *route, int ok,
    const char *why);

#endif
