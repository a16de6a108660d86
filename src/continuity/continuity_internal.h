/*
 * continuity_internal — shared by continuity.c (settings, state machine,
 * route health, drills), continuity_ledger.c (what an outage owes the
 * primary, failback copies, dedupe) and continuity_report.c (reports and
 * status).  Not for other modules: they use continuity.h.
 *
 * Ownership: struct continuity owns its tenants and routes; every string
 * in them is its own copy.
 */
#ifndef MAILARK_CONTINUITY_INTERNAL_H
#define MAILARK_CONTINUITY_INTERNAL_H

#include <time.h>

#include "continuity/continuity.h"
#include "store/store.h"

/* Health of one tenant route (HOST:PORT), learnt from probes and deliveries. */
enum croute_state { CROUTE_UNKNOWN, CROUTE_UP, CROUTE_DOWN };

struct croute {
	char *tenant;
	char *route;
	enum croute_state state;
	unsigned failures;            /* consecutive */
	time_t since;                 /* of the state */
	char *last_error;
	struct croute *next;
};

struct ctenant {
	char *name;
	enum continuity_state state;
	time_t since;
	struct store_cont_outage outage;   /* id 0: none running */
	struct store_cont_outage drill;    /* id 0: none running */
	char **drill_users;                /* NULL with a drill: every user */
	size_t ndrill_users;
	int saw_down;                      /* a route was down during this outage */
	struct ctenant *next;
};

struct continuity {
	struct server *srv;
	struct ctenant *tenants;
	struct croute *routes;
	struct event *tick;                /* auto failback, end of failback */
	char why[512];                     /* continuity_already_delivered's text */
	/* the Message-ID of the entry read last (cont_message_id): one spool read
	 * per entry, not one per recipient outcome */
	char msgid_qid[64];
	char *msgid;                       /* NULL: that entry has none */
	/* deliveries through tenant routes not yet written (cont_flush_delivered) */
	struct store_cont_delivery *delivered;
	size_t ndelivered, delivered_cap;
};

/* The reply recorded for a recipient the primary already had. */
#define CONT_SKIP_REPLY "250 2.0.0 continuity: already delivered to the primary"

/* continuity.c */
struct ctenant *cont_tenant(struct continuity *c, const char *name, int create);
const char *cont_state_name(enum continuity_state st);
int cont_drill_has_user(const struct ctenant *t, const char *address);
/* Value of a setting, default included (caller frees); NULL for an unknown key. */
char *cont_setting(struct continuity *c, const char *tenant, const char *key);
/* The outage or drill ended (state "ended"): transition bookkeeping. */
void cont_check_end(struct continuity *c, struct ctenant *t);

/* continuity_ledger.c */
/* queue_foreach callback: continuity_note_queued() (arg: struct continuity). */
void cont_note_queued_cb(void *arg, struct queue_entry *e);
/* The Message-ID of a spooled message (caller frees) or NULL. */
char *cont_message_id(struct continuity *c, const char *queue_id);
/* Is addr's domain routed to a tenant route (not archive-only)? */
int cont_rcpt_route_bound(struct continuity *c, const char *addr);
/* Writes the remembered deliveries (each tick, before a dedupe check, at stop). */
void cont_flush_delivered(struct continuity *c);
/* Failback copies of every pending 'sent' row of the outage or drill. */
void cont_sent_copies(struct continuity *c, const char *tenant, long long outage_id,
    int resuming);

/* continuity_report.c */
json_t *cont_report_json(struct continuity *c, const struct store_cont_outage *o);
json_t *cont_outage_brief(const struct store_cont_outage *o);

#endif
