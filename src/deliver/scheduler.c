/*
 * NAME
 *	scheduler - when and where each queued recipient is delivered
 * DESCRIPTION
 *	Each queue entry gets a struct sentry (e->sched_data) with a timer.
 *	When the timer fires the entry starts a round: its pending recipients
 *	are grouped by destination into jobs of at most
 *	max_rcpts_per_transaction, and the jobs wait in their destination's
 *	FIFO.  The pump starts waiting jobs round robin over destinations,
 *	within destination_concurrency and max_concurrency.
 *
 *	A job's life:
 *	  WAITING --pump--> RUNNING --smtp_client done--> [DSN inject] -->
 *	  RECORDING (queue_entry_settle: fsynced, or nothing written when the
 *	  outcomes finish the entry, which is then removed at once) --> finished
 *	When the last job of a round finishes, the entry is removed if no
 *	recipient is pending, else it gets its next retry timer
 *	(retry_min * retry_factor^(attempts-1), capped at retry_max, ±10%).
 *	A 4xx after max_lifetime expires the recipient instead.  Bounced and
 *	expired recipients get their DSN queued (durably) before their
 *	outcome is recorded, so a crash may repeat a DSN but never lose one.
 *	NOTIFY=SUCCESS "delivered" DSNs are not generated.
 *
 *	Destinations (dest_for): inbound recipients go through their domain's
 *	tenant route, outbound ones by MX or the smarthost.  Mail sent through
 *	submission is one outbound entry with env.auth_user: its recipients of
 *	the tenant's own domains go through the tenant route like inbound
 *	mail (held while the tenant is in continuity, replayed in order at
 *	failback), the others by MX / smarthost at once.
 *
 *	TLS policy: a job for an MX destination asks tls_policy_lookup()
 *	(tenant tls.require_domains, the DLP flag, MTA-STS; an MTA-STS fetch
 *	runs on a worker) before smtp_client starts; the decision is copied
 *	into the job, which the request points at.  A job whose scheduler
 *	stopped meanwhile is only freed.  Smarthost jobs need verified TLS when
 *	the entry carries QUEUE_F_REQUIRE_TLS; tenant routes keep their own
 *	?tls= option.
 */
#include "deliver/scheduler.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "deliver/dsn.h"
#include "deliver/route.h"
#include "deliver/smtp_client.h"
#include "deliver/tls_policy.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "queue/queue.h"
#include "lib/worker.h"
#include "server.h"
#include "store/store.h"
#include "archive/archive.h"
#include "continuity/continuity.h"
#include "imap/imap_server.h"

#define SCHED_STOP_WAIT_SECS 5
/* Seconds between checks of an entry held for a tenant in continuity. */
#define SCHED_HOLD_RECHECK 30

struct job;

struct dest {
	char *key;
	enum delivery_next_hop hop;
	struct route route;
	char *domain;                 /* NEXT_HOP_MX */
	unsigned active;
	int replay;                   /* continuity failback: one connection, arrival order */
	struct job *wait_head, *wait_tail;
	struct dest *next;
};

struct sentry {
	struct scheduler *s;
	struct queue_entry *e;
	struct event *timer;
	unsigned jobs;                /* jobs of the current round not finished */
	int deleting;
	/* bounced/expired this round, reported in one DSN when the round ends */
	size_t nfail;
	size_t *fail_idx;
	enum queue_rcpt_state *fail_states;
	char **fail_replies;
	char **fail_mtas;
	/* the archive copy: the entry is not removed before it is committed */
	int archived;
	int arch_running;
	int remove_when_archived;
	struct event *arch_timer;     /* retry after an archive failure */
	/* continuity: every pending recipient waits for the tenant's failback */
	int cont_held;
	time_t held_since;            /* 0: not held now */
	time_t held_total;            /* seconds held before: max_lifetime does not run */
	int release_due;              /* failback came while a job ran: dispatch at round end */
};

/* WAITING (in a destination FIFO) -> RUNNING (smtp_client) -> FINISHING (DSN, record) */
enum job_state { JOB_WAITING, JOB_RUNNING, JOB_FINISHING };

static const char *const job_state_names[] = { "WAITING", "RUNNING", "FINISHING" };

struct job {
	struct scheduler *s;          /* NULL once orphaned by scheduler_stop */
	struct sentry *se;
	struct dest *d;               /* NULL: a local deferral, never connects */
	enum job_state state;
	size_t n;
	size_t *idx;
	const char **rcpts;
	const char **orcpts;
	unsigned *notify;
	int *codes;
	char **replies;
	char *relay;
	char **mtas;                  /* flush job: per recipient remote MTA */
	int flush;                    /* reports a round's failures (DSN, record) */
	int body_fd;
	struct delivery_request req;
	/* the TLS policy decision the request points into (tls_policy_lookup) */
	char tls_why[32];
	char **mx;
	size_t n_mx;
	/* outcomes being recorded */
	size_t nfinal;
	size_t *final_idx;
	enum queue_rcpt_state *final_states;
	const char **final_replies;
	struct job *wait_next;        /* destination FIFO */
	struct job *prev, *next;      /* every live job */
};

/* Outlives the scheduler while archive jobs run: s is NULL once it stopped. */
struct arch_feed {
	unsigned refs;
	struct scheduler *s;
};

struct scheduler {
	struct server *srv;
	struct arch_feed *feed;
	struct dest *dests;
	struct dest *rr;              /* round robin: the next destination to serve */
	unsigned active;
	struct event *pump_ev;
	struct job *jobs;
	int stopping;
	int replaying;                /* inside scheduler_release_tenant */
};

/* -------------------------------------------------------------- helpers */

static time_t
sched_now(void)
{
	return time(NULL);
}

static const char *
rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at != NULL ? at + 1 : "";
}

static const char *
or_dash(const char *s)
{
	return s != NULL && *s != '\0' ? s : "-";
}

static void
sched_pump_soon(struct scheduler *s)
{
	if (s != NULL && !s->stopping)
		event_active(s->pump_ev, 0, 0);
}

static void
sentry_arm(struct sentry *se, time_t delay)
{
	struct timeval tv = { delay > 0 ? delay : 0, 0 };
	evtimer_add(se->timer, &tv);
}

/* -------------------------------------------------------- destinations */

static struct dest *
dest_get(struct scheduler *s, const char *key)
{
	for (struct dest *d = s->dests; d != NULL; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	struct dest *d = xcalloc(1, sizeof(*d));
	d->key = xstrdup(key);
	d->next = s->dests;
	s->dests = d;
	return d;
}

static struct dest *
dest_route(struct scheduler *s, const struct route *r, const char *prefix)
{
	char url[512];
	struct buf key = BUF_INIT;
	route_format(r, url, sizeof(url));
	buf_appendf(&key, "%s:%s", prefix, url);
	struct dest *d = dest_get(s, buf_cstr(&key));
	buf_free(&key);
	d->hop = NEXT_HOP_ROUTE;
	d->route = *r;
	return d;
}

static struct dest *
dest_tenant_route(struct scheduler *s, const char *domain, const char **why_r)
{
	char *url = NULL;
	struct route r;
	int found = s->srv->store != NULL ? store_route_get(s->srv->store, domain, &url) : 0;
	if (found < 0) {
		*why_r = "route lookup failed";
		return NULL;
	}
	if (found == 0) {
		*why_r = "no route for domain";
		return NULL;
	}
	if (route_parse(url, &r, why_r) < 0) {
		free(url);
		return NULL;
	}
	free(url);
	return dest_route(s, &r, "route");
}

static struct dest *
dest_outbound(struct scheduler *s, const char *domain, const char **why_r)
{
	const char *smarthost = s->srv->cfg->smarthost;
	if (smarthost != NULL && *smarthost != '\0') {
		struct route r;
		memset(&r, 0, sizeof(r));
		if (netaddr_parse_hostport(smarthost, r.host, sizeof(r.host), &r.port) < 0) {
			*why_r = "bad smarthost setting";
			return NULL;
		}
		r.tls = ROUTE_TLS_OPPORTUNISTIC;
		return dest_route(s, &r, "smarthost");
	}
	if (*domain == '\0') {
		*why_r = "recipient has no domain";
		return NULL;
	}
	struct buf key = BUF_INIT;
	buf_appendf(&key, "mx:%s", domain);
	struct dest *d = dest_get(s, buf_cstr(&key));
	buf_free(&key);
	if (d->domain == NULL)
		d->domain = xstrdup(domain);
	d->hop = NEXT_HOP_MX;
	return d;
}

/*
 * Is a recipient of this entry bound for its own tenant's route?  Only
 * mail sent through submission (an outbound entry with auth_user) has such
 * recipients: those of the tenant's own domains, delivered (and held by
 * continuity) exactly like inbound mail.  A domain of another tenant hosted
 * here is not: that mail leaves the tenant and goes by MX / smarthost like
 * any outbound mail, never straight into the other tenant's route.
 * domain: lower case.  1 yes, 0 no, -1 lookup failure.
 */
static int
rcpt_own_route(struct scheduler *s, const struct queue_entry *e, const char *domain)
{
	char *owner = NULL;
	if (e->env.direction != QUEUE_OUTBOUND || e->env.auth_user == NULL ||
	    *e->env.auth_user == '\0' || e->env.tenant == NULL || s->srv->store == NULL)
		return 0;
	int found = store_domain_tenant(s->srv->store, domain, &owner);
	int own = found == 1 && owner != NULL && strcmp(owner, e->env.tenant) == 0;
	free(owner);
	return found < 0 ? -1 : own;
}

/* Where a recipient goes; NULL with *why_r when it cannot go anywhere now. */
static struct dest *
dest_for(struct scheduler *s, const struct queue_entry *e, const char *addr, const char **why_r)
{
	char *domain = str_lower(xstrdup(rcpt_domain(addr)));
	struct dest *d = NULL;
	char *tenant = NULL;
	int own;
	if (e->env.flags & QUEUE_F_DIRECT_MX) {      /* alerts: never a tenant route */
		d = dest_outbound(s, domain, why_r);
		free(domain);
		return d;
	}
	switch (e->env.direction) {
	case QUEUE_INBOUND:
		d = dest_tenant_route(s, domain, why_r);
		break;
	case QUEUE_OUTBOUND:
		own = rcpt_own_route(s, e, domain);
		if (own < 0)
			*why_r = "tenant lookup failed";
		else if (own)
			d = dest_tenant_route(s, domain, why_r);
		else
			d = dest_outbound(s, domain, why_r);
		break;
	case QUEUE_BOUNCE:
		if (s->srv->store != NULL && store_domain_tenant(s->srv->store, domain, &tenant) == 1)
			d = dest_tenant_route(s, domain, why_r);
		else
			d = dest_outbound(s, domain, why_r);
		free(tenant);
		break;
	}
	free(domain);
	return d;
}

/* ----------------------------------------------------------------- jobs */

static struct job *
job_new(struct scheduler *s, struct sentry *se, struct dest *d, size_t cap)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->se = se;
	j->d = d;
	j->body_fd = -1;
	j->idx = xcalloc(cap, sizeof(*j->idx));
	j->rcpts = xcalloc(cap, sizeof(*j->rcpts));
	j->orcpts = xcalloc(cap, sizeof(*j->orcpts));
	j->notify = xcalloc(cap, sizeof(*j->notify));
	j->codes = xcalloc(cap, sizeof(*j->codes));
	j->replies = xcalloc(cap, sizeof(*j->replies));
	j->mtas = xcalloc(cap, sizeof(*j->mtas));
	j->final_idx = xcalloc(cap, sizeof(*j->final_idx));
	j->final_states = xcalloc(cap, sizeof(*j->final_states));
	j->final_replies = xcalloc(cap, sizeof(*j->final_replies));
	j->next = s->jobs;
	if (s->jobs != NULL)
		s->jobs->prev = j;
	s->jobs = j;
	se->jobs++;
	return j;
}

static void
job_add_rcpt(struct job *j, size_t i)
{
	const struct queue_rcpt *r = &j->se->e->env.rcpts[i];
	j->idx[j->n] = i;
	j->rcpts[j->n] = r->addr;
	j->orcpts[j->n] = r->orcpt;
	j->notify[j->n] = r->notify;
	j->n++;
}

/* The one place a job changes state. */
static void
job_set_state(struct job *j, enum job_state st)
{
	log_debug("sched_job_state", "id=%s dest=%s rcpts=%zu from=%s to=%s",
	    j->se != NULL ? j->se->e->env.id : "-", j->d != NULL ? j->d->key : "local", j->n,
	    job_state_names[j->state], job_state_names[st]);
	j->state = st;
}

static void
job_free(struct job *j)
{
	if (j->s != NULL) {
		if (j->prev != NULL)
			j->prev->next = j->next;
		else
			j->s->jobs = j->next;
		if (j->next != NULL)
			j->next->prev = j->prev;
	}
	if (j->body_fd >= 0)
		close(j->body_fd);
	for (size_t i = 0; i < j->n; i++) {
		free(j->replies[i]);
		free(j->mtas[i]);
	}
	free(j->mtas);
	free(j->idx);
	free(j->rcpts);
	free(j->orcpts);
	free(j->notify);
	free(j->codes);
	free(j->replies);
	free(j->relay);
	free(j->final_idx);
	free(j->final_states);
	free(j->final_replies);
	for (size_t i = 0; i < j->n_mx; i++)
		free(j->mx[i]);
	free(j->mx);
	free(j);
}

static void
dest_enqueue(struct dest *d, struct job *j)
{
	j->wait_next = NULL;
	if (d->wait_tail != NULL)
		d->wait_tail->wait_next = j;
	else
		d->wait_head = j;
	d->wait_tail = j;
}

static struct job *
dest_dequeue(struct dest *d)
{
	struct job *j = d->wait_head;
	if (j != NULL) {
		d->wait_head = j->wait_next;
		if (d->wait_head == NULL)
			d->wait_tail = NULL;
	}
	return j;
}

static void sentry_round_end(struct sentry *se);
static void job_results(struct job *j);

static void
job_finish(struct job *j)
{
	struct sentry *se = j->se;
	int orphan = j->s == NULL;
	job_free(j);
	if (orphan)
		return;
	se->jobs--;
	if (se->jobs == 0)
		sentry_round_end(se);
}

/* Removes the entry's jobs that have not started; returns how many. */
static unsigned
sentry_cancel_waiting(struct sentry *se)
{
	unsigned n = 0;
	for (struct dest *d = se->s->dests; d != NULL; d = d->next) {
		struct job *keep_head = NULL, *keep_tail = NULL, *j = d->wait_head;
		while (j != NULL) {
			struct job *next = j->wait_next;
			if (j->se == se) {
				job_free(j);
				n++;
			} else {
				j->wait_next = NULL;
				if (keep_tail != NULL)
					keep_tail->wait_next = j;
				else
					keep_head = j;
				keep_tail = j;
			}
			j = next;
		}
		d->wait_head = keep_head;
		d->wait_tail = keep_tail;
	}
	se->jobs -= n;
	return n;
}

/* --------------------------------------------------------- delivering */

/* Passive health for continuity: did a delivery to a tenant route connect? */
static void
sched_note_route(struct scheduler *s, const struct job *j)
{
	const struct queue_envelope *env = &j->se->e->env;
	char route[300];
	if (s->srv->continuity == NULL || env->tenant == NULL || j->n == 0 ||
	    strncmp(j->d->key, "route:", 6) != 0)
		return;
	snprintf(route, sizeof(route), strchr(j->d->route.host, ':') != NULL ? "[%s]:%d" : "%s:%d",
	    j->d->route.host, j->d->route.port);
	int ok = j->relay != NULL;
	continuity_note_route_result(s->srv->continuity, env->tenant, route, ok,
	    ok ? NULL : j->replies[0]);
}

static void
delivery_done(void *arg, const struct delivery_result *res)
{
	struct job *j = arg;
	struct scheduler *s = j->s;
	if (s != NULL) {
		s->active--;
		j->d->active--;
	}
	for (size_t i = 0; i < j->n; i++) {
		const struct delivery_rcpt_result *r = res != NULL && i < res->nrcpts ? &res->rcpts[i] : NULL;
		j->codes[i] = r != NULL ? r->code : 451;
		j->replies[i] = xstrdup(r != NULL && r->reply != NULL ? r->reply :
		    "451 4.3.0 no result from the delivery agent");
	}
	if (res != NULL && res->relay != NULL)
		j->relay = xstrdup(res->relay);
	if (j->body_fd >= 0) {
		close(j->body_fd);
		j->body_fd = -1;
	}
	if (s == NULL) {
		job_free(j);
		return;
	}
	sched_note_route(s, j);
	job_set_state(j, JOB_FINISHING);
	job_results(j);
	sched_pump_soon(s);
}

/*
 * The decision for an MX hop: copied into the job (the request points at
 * the copy until delivery_done), then the delivery starts.  An orphaned job
 * (scheduler stopped during an MTA-STS fetch) is only freed.
 */
static void
job_tls_decided(void *arg, const struct tls_decision *dec)
{
	struct job *j = arg;
	if (j->s == NULL) {
		job_free(j);
		return;
	}
	struct delivery_request *req = &j->req;
	snprintf(j->tls_why, sizeof(j->tls_why), "%s", dec->why != NULL ? dec->why : "policy");
	if (dec->n_mx > 0 && dec->mx_patterns != NULL) {
		j->mx = xcalloc(dec->n_mx, sizeof(*j->mx));
		for (size_t i = 0; i < dec->n_mx; i++)
			j->mx[i] = xstrdup(dec->mx_patterns[i]);
		j->n_mx = dec->n_mx;
	}
	req->tls_verify = dec->req == TLSREQ_VERIFIED;
	req->tls_why = j->tls_why;
	req->sts_testing = dec->sts_testing;
	req->mx_patterns = (const char *const *)j->mx;
	req->n_mx = j->n_mx;
	if (req->tls_verify || req->sts_testing)
		log_debug("tls_policy_decision", "id=%s domain=%s verify=%d why=%s testing=%d mx=%zu",
		    j->se->e->env.id, log_str(j->d->domain), req->tls_verify, j->tls_why,
		    req->sts_testing, j->n_mx);
	smtp_client_deliver(j->s->srv, req, delivery_done, j);
}

static void
job_start(struct scheduler *s, struct job *j)
{
	const struct queue_envelope *env = &j->se->e->env;
	struct delivery_request *req = &j->req;
	j->body_fd = queue_entry_open_body(s->srv->queue, j->se->e);
	if (j->body_fd < 0) {
		log_error("queue_open_body_failed", "id=%s errno=%d", env->id, errno);
		job_set_state(j, JOB_FINISHING);
		for (size_t i = 0; i < j->n; i++) {
			j->codes[i] = 451;
			j->replies[i] = xstrdup("451 4.3.0 cannot open the queue file");
		}
		job_results(j);
		return;
	}
	memset(req, 0, sizeof(*req));
	req->queue_id = env->id;
	req->tenant = env->tenant;
	req->hop = j->d->hop;
	req->route = j->d->route;
	req->domain = j->d->domain;
	req->sender = env->sender;
	req->rcpts = j->rcpts;
	req->orcpts = j->orcpts;
	req->notify = j->notify;
	req->nrcpts = j->n;
	req->envid = env->envid;
	req->ret_hdrs = env->ret_hdrs;
	req->smtputf8 = env->smtputf8;
	req->body_8bit = env->body_8bit;
	req->body_fd = j->body_fd;
	req->body_size = j->se->e->body_size;
	job_set_state(j, JOB_RUNNING);
	s->active++;
	j->d->active++;
	if (j->d->hop == NEXT_HOP_MX) {
		/* by MX: the destination domain's TLS policy first (may answer at once) */
		tls_policy_lookup(s->srv->tls_policy, env->tenant, j->d->domain, env->flags,
		    job_tls_decided, j);
		return;
	}
	if ((env->flags & QUEUE_F_REQUIRE_TLS) && strncmp(j->d->key, "smarthost:", 10) == 0) {
		snprintf(j->tls_why, sizeof(j->tls_why), "dlp");
		req->tls_verify = 1;
		req->tls_why = j->tls_why;
	}
	smtp_client_deliver(s->srv, req, delivery_done, j);
}

/* Starts waiting jobs, one per destination per pass, round robin. */
static void
sched_pump(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	const struct config *cfg = s->srv->cfg;
	int progress = 1;
	while (progress && !s->stopping && s->active < cfg->max_concurrency) {
		progress = 0;
		struct dest *start = s->rr != NULL ? s->rr : s->dests, *d = start;
		if (d == NULL)
			return;
		do {
			struct dest *next = d->next != NULL ? d->next : s->dests;
			unsigned limit = d->replay ? 1 : (unsigned)cfg->destination_concurrency;
			if (d->replay && d->wait_head == NULL && d->active == 0)
				d->replay = 0;      /* the failback replay is over */
			if (d->wait_head != NULL && d->active < limit &&
			    s->active < cfg->max_concurrency) {
				s->rr = next;
				job_start(s, dest_dequeue(d));
				progress = 1;
			}
			d = next;
		} while (d != start && !s->stopping);
	}
}

/* ------------------------------------------------------------ outcomes */

static const char *
event_name(enum queue_rcpt_state st)
{
	switch (st) {
	case RCPT_DELIVERED: return "delivered";
	case RCPT_BOUNCED: return "bounced";
	case RCPT_EXPIRED: return "expired";
	default: return "deferred";
	}
}

static void
log_outcome(struct job *j, size_t i, enum queue_rcpt_state st, const char *reply,
    const char *relay)
{
	const struct queue_entry *e = j->se->e;
	char status[16];
	dsn_status_from_reply(reply, st == RCPT_DELIVERED ? '2' :
	    st == RCPT_BOUNCED ? '5' : '4', status);
	log_info(event_name(st), "id=%s tenant=%s to=%s relay=%s delay=%lld attempts=%u dsn=%s reply=%s",
	    e->env.id, log_str(or_dash(e->env.tenant)), log_str(e->env.rcpts[i].addr),
	    log_str(or_dash(relay)), (long long)(sched_now() - e->env.arrival), e->attempts,
	    status, log_str(or_dash(reply)));
}

static void
count_outcome(struct scheduler *s, enum queue_rcpt_state st)
{
	struct metrics *m = &s->srv->metrics;
	switch (st) {
	case RCPT_DELIVERED: metrics_inc(&m->recipients_delivered); break;
	case RCPT_BOUNCED: metrics_inc(&m->recipients_bounced); break;
	case RCPT_EXPIRED: metrics_inc(&m->recipients_expired); break;
	default: metrics_inc(&m->recipients_deferred); break;
	}
}

static void
job_recorded(void *arg, int error)
{
	struct job *j = arg;
	if (j->s == NULL) {
		job_free(j);
		return;
	}
	for (size_t k = 0; k < j->nfinal && error == 0; k++) {
		log_outcome(j, j->final_idx[k], j->final_states[k], j->final_replies[k],
		    j->flush ? j->mtas[k] : j->relay);
		count_outcome(j->s, j->final_states[k]);
		continuity_note_outcome(j->s->srv->continuity, j->se->e, j->final_idx[k],
		    j->final_states[k], j->final_replies[k]);
	}
	job_finish(j);
}

static void
job_record(struct job *j)
{
	if (j->nfinal == 0) {
		job_finish(j);
		return;
	}
	/*
	 * Outcomes that finish the entry need no fsync when it is removed right
	 * after; while its archive copy is still pending it stays, so they are
	 * recorded durably (else a crash would deliver it again).
	 */
	if (!j->se->archived)
		queue_entry_record(j->s->srv->queue, j->se->e, j->final_idx, j->final_states,
		    j->final_replies, j->nfinal, job_recorded, j);
	else
		queue_entry_settle(j->s->srv->queue, j->se->e, j->final_idx, j->final_states,
		    j->final_replies, j->nfinal, job_recorded, j);
}

/* The first bytes of the original for the DSN (enough to tell when it is too big). */
static void
read_original(struct scheduler *s, const struct queue_entry *e, struct buf *out)
{
	uint64_t want = e->body_size < DSN_MAX_RETURN + 1 ? e->body_size : DSN_MAX_RETURN + 1;
	int fd = queue_entry_open_body(s->srv->queue, e);
	if (fd < 0)
		return;
	buf_reserve(out, (size_t)want + 1);
	while (out->len < want) {
		ssize_t n = pread(fd, out->data + out->len, (size_t)want - out->len, (off_t)out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		out->len += (size_t)n;
	}
	close(fd);
}

static void
job_dsn_queued(void *arg, int error)
{
	struct job *j = arg;
	if (j->s == NULL) {
		job_free(j);
		return;
	}
	if (error != 0) {
		/* Without its DSN a failure is not final: keep those recipients pending. */
		size_t keep = 0;
		for (size_t k = 0; k < j->nfinal; k++) {
			if (j->final_states[k] != RCPT_DELIVERED) {
				log_warn("dsn_failed", "id=%s to=%s errno=%d", j->se->e->env.id,
				    log_str(j->se->e->env.rcpts[j->final_idx[k]].addr), error);
				continue;
			}
			j->final_idx[keep] = j->final_idx[k];
			j->final_states[keep] = j->final_states[k];
			j->final_replies[keep] = j->final_replies[k];
			keep++;
		}
		j->nfinal = keep;
	} else {
		metrics_inc(&j->s->srv->metrics.dsn_generated);
	}
	job_record(j);
}

/* Queues one DSN for the job's failed recipients that asked for one. */
static int
job_send_dsn(struct job *j)
{
	struct scheduler *s = j->s;
	const struct queue_entry *e = j->se->e;
	size_t n = 0, *idx = xcalloc(j->nfinal + 1, sizeof(*idx));
	const char **diag = xcalloc(j->nfinal + 1, sizeof(*diag));
	const char **mtas = xcalloc(j->nfinal + 1, sizeof(*mtas));
	for (size_t k = 0; k < j->nfinal; k++) {
		const struct queue_rcpt *r = &e->env.rcpts[j->final_idx[k]];
		if (j->final_states[k] == RCPT_DELIVERED || !dsn_wanted(&e->env, r))
			continue;
		idx[n] = j->final_idx[k];
		diag[n] = j->final_replies[k];
		/* Remote-MTA is the host name of "host[ip]:port". */
		mtas[n] = j->mtas[k] != NULL ? xstrndup(j->mtas[k], strcspn(j->mtas[k], "[:")) : NULL;
		n++;
	}
	if (n > 0) {
		char dsn_id[ID_LEN + 1];
		struct buf orig = BUF_INIT, msg = BUF_INIT;
		id_generate(dsn_id);
		read_original(s, e, &orig);
		struct dsn_params p = {
			.hostname = s->srv->cfg->hostname, .boundary_seed = dsn_id,
			.now = sched_now(), .kind = DSN_FAILED, .env = &e->env, .rcpt_idx = idx,
			.diagnostics = diag, .remote_mtas = mtas, .n = n,
			.original = orig.data, .original_len = orig.len,
		};
		dsn_compose(&p, &msg);
		struct queue_rcpt to = { .addr = e->env.sender, .notify = QUEUE_NOTIFY_NEVER };
		struct queue_envelope env = {
			.direction = QUEUE_BOUNCE, .tenant = e->env.tenant, .sender = "",
			.client_addr = "local", .client_helo = s->srv->cfg->hostname,
			.arrival = sched_now(), .rcpts = &to, .nrcpts = 1,
		};
		memcpy(env.id, dsn_id, sizeof(env.id));
		log_info("dsn", "id=%s dsn_id=%s tenant=%s to=%s recipients=%zu", e->env.id, dsn_id,
		    log_str(or_dash(e->env.tenant)), log_str(e->env.sender), n);
		queue_inject(s->srv->queue, &env, msg.data, msg.len, job_dsn_queued, j);
		buf_free(&orig);
		buf_free(&msg);
	}
	for (size_t k = 0; k < n; k++)
		free((char *)mtas[k]);
	free(idx);
	free(diag);
	free(mtas);
	return n > 0;
}

static void
sentry_add_fail(struct sentry *se, size_t idx, enum queue_rcpt_state st, const char *reply,
    const char *relay)
{
	size_t cap = se->e->env.nrcpts;
	if (se->fail_idx == NULL) {
		se->fail_idx = xcalloc(cap, sizeof(*se->fail_idx));
		se->fail_states = xcalloc(cap, sizeof(*se->fail_states));
		se->fail_replies = xcalloc(cap, sizeof(*se->fail_replies));
		se->fail_mtas = xcalloc(cap, sizeof(*se->fail_mtas));
	}
	if (se->nfail >= cap)
		return;
	se->fail_idx[se->nfail] = idx;
	se->fail_states[se->nfail] = st;
	se->fail_replies[se->nfail] = xstrdup(reply != NULL ? reply : "");
	se->fail_mtas[se->nfail] = relay != NULL ? xstrdup(relay) : NULL;
	se->nfail++;
}

/*
 * Sorts each recipient's result: delivered ones are recorded now; bounced
 * and expired ones wait for the end of the round (one DSN per round);
 * deferred ones stay pending.
 */
static void
job_results(struct job *j)
{
	struct queue_entry *e = j->se->e;
	const struct config *cfg = j->s->srv->cfg;
	time_t now = sched_now();
	/* Time held by continuity does not count; nor does failing back (held time
	 * before a restart is not remembered): the failback replay runs to its end. */
	time_t age = now - e->env.arrival - j->se->held_total;
	int expired = age > 0 && (uint64_t)age >= cfg->max_lifetime &&
	    !(j->d != NULL && strncmp(j->d->key, "route:", 6) == 0 && e->env.tenant != NULL &&
	    continuity_tenant_state(j->s->srv->continuity, e->env.tenant) != CONTINUITY_NORMAL);
	j->nfinal = 0;
	for (size_t i = 0; i < j->n; i++) {
		enum queue_rcpt_state st = RCPT_PENDING;
		int code = j->codes[i];
		if (code >= 200 && code < 300)
			st = RCPT_DELIVERED;
		else if (code >= 500 && code < 600)
			st = RCPT_BOUNCED;
		else if (expired)
			st = RCPT_EXPIRED;
		if (st == RCPT_PENDING) {
			struct queue_rcpt *r = &e->env.rcpts[j->idx[i]];
			free(r->last_reply);
			r->last_reply = xstrdup(j->replies[i]);
			log_outcome(j, j->idx[i], RCPT_PENDING, j->replies[i], j->relay);
			count_outcome(j->s, RCPT_PENDING);
		} else if (st != RCPT_DELIVERED) {
			sentry_add_fail(j->se, j->idx[i], st, j->replies[i], j->relay);
		} else {
			j->final_idx[j->nfinal] = j->idx[i];
			j->final_states[j->nfinal] = st;
			j->final_replies[j->nfinal] = j->replies[i];
			j->nfinal++;
		}
	}
	job_record(j);
}

/* The round's failures: one DSN (when wanted), then their outcomes recorded. */
static void
sentry_report_failures(struct sentry *se)
{
	struct job *j = job_new(se->s, se, NULL, se->nfail);
	j->flush = 1;
	job_set_state(j, JOB_FINISHING);
	for (size_t k = 0; k < se->nfail; k++) {
		j->idx[k] = se->fail_idx[k];
		j->replies[k] = se->fail_replies[k];
		j->mtas[k] = se->fail_mtas[k];
		j->final_idx[k] = se->fail_idx[k];
		j->final_states[k] = se->fail_states[k];
		j->final_replies[k] = j->replies[k];
	}
	j->n = j->nfinal = se->nfail;
	se->nfail = 0;
	if (!job_send_dsn(j))
		job_record(j);
}

static void
sentry_drop_failures(struct sentry *se)
{
	for (size_t k = 0; k < se->nfail; k++) {
		free(se->fail_replies[k]);
		free(se->fail_mtas[k]);
	}
	se->nfail = 0;
}

/* --------------------------------------------------------------- rounds */

static time_t
retry_delay(const struct config *cfg, unsigned attempts)
{
	double d = (double)cfg->retry_min;
	for (unsigned i = 1; i < attempts && d < (double)cfg->retry_max; i++)
		d *= (double)(cfg->retry_factor > 0 ? cfg->retry_factor : 1);
	if (d > (double)cfg->retry_max)
		d = (double)cfg->retry_max;
	d *= 0.9 + 0.2 * ((double)arc4random_uniform(1001) / 1000.0);
	return d < 1.0 ? 1 : (time_t)(d + 0.5);
}

static void
sentry_free(struct sentry *se)
{
	sentry_drop_failures(se);
	free(se->fail_idx);
	free(se->fail_states);
	free(se->fail_replies);
	free(se->fail_mtas);
	if (se->timer != NULL)
		event_free(se->timer);
	if (se->arch_timer != NULL)
		event_free(se->arch_timer);
	if (se->e != NULL)
		se->e->sched_data = NULL;
	free(se);
}

static void
sentry_remove_entry(struct sentry *se)
{
	struct scheduler *s = se->s;
	struct queue_entry *e = se->e;
	if (!se->archived) {
		se->remove_when_archived = 1;   /* sched_archive_done removes it */
		return;
	}
	sentry_free(se);
	queue_entry_remove(s->srv->queue, e);
}

/* The recipients still pending when an administrator deletes the entry. */
static void
sched_note_deleted(struct scheduler *s, const struct queue_entry *e)
{
	for (size_t i = 0; i < e->env.nrcpts; i++)
		if (e->env.rcpts[i].state == RCPT_PENDING)
			continuity_note_outcome(s->srv->continuity, e, i, RCPT_DELETED,
			    "deleted by an administrator");
}

static void
sentry_round_end(struct sentry *se)
{
	struct scheduler *s = se->s;
	struct queue_entry *e = se->e;
	if (se->deleting) {
		log_info("deleted", "id=%s tenant=%s", e->env.id, log_str(or_dash(e->env.tenant)));
		sched_note_deleted(s, e);
		sentry_remove_entry(se);
		return;
	}
	if (se->nfail > 0 && !s->stopping) {
		sentry_report_failures(se);
		return;
	}
	if (queue_entry_finished(e)) {
		sentry_remove_entry(se);
		return;
	}
	if (s->stopping || e->held)
		return;
	if (se->release_due) {
		/* Its held recipients join the failback now, not after a retry delay. */
		se->release_due = 0;
		e->next_attempt = 0;
		sentry_arm(se, 0);
		return;
	}
	time_t delay = retry_delay(s->srv->cfg, e->attempts);
	e->next_attempt = sched_now() + delay;
	queue_entry_note_attempt(s->srv->queue, e);
	sentry_arm(se, delay);
}

/* A recipient that cannot be routed now joins the round's local deferral job. */
static struct job *
local_defer(struct sentry *se, struct job *local, size_t i, const char *why)
{
	struct buf r = BUF_INIT;
	if (local == NULL) {
		local = job_new(se->s, se, NULL, se->e->env.nrcpts);
		job_set_state(local, JOB_FINISHING);
	}
	buf_appendf(&r, "%s %s", why, rcpt_domain(se->e->env.rcpts[i].addr));
	local->codes[local->n] = 451;
	local->replies[local->n] = buf_steal(&r);
	job_add_rcpt(local, i);
	return local;
}

/*
 * Is addr's domain routed to the archive only ("archive:", a journaling
 * domain)?  Inbound recipients, and submission recipients of the tenant's
 * own domains (rcpt_own_route); other outbound recipients never are.
 */
static int
rcpt_archive_only(struct scheduler *s, const struct queue_entry *e, const char *addr)
{
	char *url = NULL;
	struct route r;
	const char *why;
	if (s->srv->store == NULL)
		return 0;
	char *domain = str_lower(xstrdup(rcpt_domain(addr)));
	if (e->env.direction == QUEUE_OUTBOUND && rcpt_own_route(s, e, domain) != 1) {
		free(domain);
		return 0;
	}
	int found = store_route_get(s->srv->store, domain, &url) == 1;
	int only = found && route_parse(url, &r, &why) == 0 && r.archive_only;
	free(url);
	free(domain);
	return only;
}

/* A recipient of a journaling domain is done: the entry's archive copy is its delivery. */
static struct job *
local_archive(struct sentry *se, struct job *local, size_t i)
{
	if (local == NULL) {
		local = job_new(se->s, se, NULL, se->e->env.nrcpts);
		job_set_state(local, JOB_FINISHING);
	}
	local->codes[local->n] = 250;
	local->replies[local->n] = xstrdup("250 2.0.0 kept in the archive (journaling domain)");
	job_add_rcpt(local, i);
	return local;
}

/* The round's job for destination d with room for one more recipient. */
static struct job *
round_job(struct sentry *se, struct job **round, size_t *nround, struct dest *d, size_t max)
{
	for (size_t k = 0; k < *nround; k++)
		if (round[k]->d == d && round[k]->n < max)
			return round[k];
	struct job *j = job_new(se->s, se, d, max);
	round[(*nround)++] = j;
	return j;
}

/* A recipient the primary already has (continuity failback): delivered, not sent. */
static struct job *
local_skip(struct sentry *se, struct job *local, size_t i, const char *why)
{
	if (local == NULL) {
		local = job_new(se->s, se, NULL, se->e->env.nrcpts);
		job_set_state(local, JOB_FINISHING);
	}
	local->codes[local->n] = 250;
	local->replies[local->n] = xstrdup(why);
	job_add_rcpt(local, i);
	return local;
}

/* Is d the tenant route of an entry whose tenant is in continuity (held)? */
static int
dest_held(struct scheduler *s, const struct queue_entry *e, const struct dest *d)
{
	return d->hop == NEXT_HOP_ROUTE && strncmp(d->key, "route:", 6) == 0 &&
	    e->env.tenant != NULL && s->srv->continuity != NULL &&
	    continuity_route_held(s->srv->continuity, e->env.tenant);
}

/* Every pending recipient is held: wait for failback without counting an attempt. */
static void
sentry_hold(struct sentry *se, unsigned attempts, time_t last_attempt)
{
	struct queue_entry *e = se->e;
	e->attempts = attempts;
	e->last_attempt = last_attempt;
	if (!se->cont_held)
		log_info("continuity_held", "id=%s tenant=%s", e->env.id,
		    log_str(or_dash(e->env.tenant)));
	se->cont_held = 1;
	if (se->held_since == 0)
		se->held_since = sched_now();
	sentry_arm(se, SCHED_HOLD_RECHECK);
}

static void
sentry_unhold(struct sentry *se)
{
	if (se->held_since != 0)
		se->held_total += sched_now() - se->held_since;
	se->held_since = 0;
	se->cont_held = 0;
}

/*
 * Starts a delivery round: every pending recipient goes into a job of its
 * destination (at most max_rcpts_per_transaction each), jobs wait in their
 * destination's FIFO for the pump; unroutable recipients are deferred now.
 * Recipients for a tenant route held by continuity get no job; when every
 * pending recipient is held the round does not count as an attempt.
 */
static void
sentry_dispatch(struct sentry *se)
{
	struct scheduler *s = se->s;
	struct queue_entry *e = se->e;
	size_t max = s->srv->cfg->max_rcpts_per_transaction > 0 ?
	    (size_t)s->srv->cfg->max_rcpts_per_transaction : 1;
	if (s->stopping || e->held || se->jobs > 0 || se->deleting)
		return;
	unsigned attempts = e->attempts;
	time_t last_attempt = e->last_attempt;
	e->attempts++;
	e->last_attempt = sched_now();
	e->next_attempt = 0;
	struct job **round = xcalloc(e->env.nrcpts + 1, sizeof(*round));
	struct job *local = NULL;
	size_t nround = 0, nheld = 0;
	for (size_t i = 0; i < e->env.nrcpts; i++) {
		const char *why = NULL;
		if (e->env.rcpts[i].state != RCPT_PENDING)
			continue;
		if (rcpt_archive_only(s, e, e->env.rcpts[i].addr)) {
			local = local_archive(se, local, i);
			continue;
		}
		struct dest *d = dest_for(s, e, e->env.rcpts[i].addr, &why);
		if (d != NULL && dest_held(s, e, d)) {
			nheld++;
			continue;
		}
		if (d != NULL && strncmp(d->key, "route:", 6) == 0 &&
		    continuity_already_delivered(s->srv->continuity, e, i, &why))
			local = local_skip(se, local, i, why);
		else if (d == NULL)
			local = local_defer(se, local, i, why);
		else
			job_add_rcpt(round_job(se, round, &nround, d, max), i);
	}
	if (nheld > 0 && nround == 0 && local == NULL) {
		free(round);
		sentry_hold(se, attempts, last_attempt);
		return;
	}
	if (nheld == 0)
		sentry_unhold(se);
	else if (se->held_since == 0)
		se->held_since = sched_now();   /* some held (submission to colleagues) */
	for (size_t k = 0; k < nround; k++) {
		if (s->replaying && strncmp(round[k]->d->key, "route:", 6) == 0)
			round[k]->d->replay = 1;
		dest_enqueue(round[k]->d, round[k]);
	}
	free(round);
	if (local != NULL)
		job_results(local);
	sched_pump_soon(s);
}

static void
sentry_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	sentry_dispatch(arg);
}

/* ------------------------------------------------------- archive copy */

/* Seconds before an archive copy that failed (disk full …) is tried again. */
#define SCHED_ARCHIVE_RETRY 30

static void
arch_feed_unref(struct arch_feed *f)
{
	if (--f->refs == 0)
		free(f);
}

/* One entry being archived on a worker thread; everything it needs is copied. */
struct arch_job {
	struct arch_feed *feed;
	struct queue *queue;          /* both outlive the worker pool */
	struct archive *archive;
	char id[ID_LEN + 1];
	char *tenant;
	int fd;
	uint64_t size;
	char **mailboxes, **domains;
	size_t nmailboxes, ndomains;
	char *env_rcpts, *env_from;
	char *sent_user;              /* submission: the sender's row goes to folder "Sent" */
	const char *source;
	int rc;
	char *err;
	struct archive_ingest_result res;
};

static void
arch_job_free(struct arch_job *j)
{
	for (size_t i = 0; i < j->nmailboxes; i++)
		free(j->mailboxes[i]);
	for (size_t i = 0; i < j->ndomains; i++)
		free(j->domains[i]);
	free(j->mailboxes);
	free(j->domains);
	free(j->env_rcpts);
	free(j->env_from);
	free(j->sent_user);
	free(j->tenant);
	free(j->err);
	if (j->fd >= 0)
		close(j->fd);
	free(j);
}

static int
arch_in_domains(const char *addr, char *const *domains, size_t n)
{
	const char *at = strrchr(addr, '@');
	for (size_t i = 0; at != NULL && i < n; i++)
		if (strcasecmp(at + 1, domains[i]) == 0)
			return 1;
	return 0;
}

/* Mailboxes: inbound → every recipient; outbound → the tenant's sender and recipients. */
static void
arch_job_mailboxes(struct arch_job *j, const struct queue_envelope *env)
{
	struct buf rc = BUF_INIT;
	j->mailboxes = xcalloc(env->nrcpts + 1, sizeof(*j->mailboxes));
	int outbound = env->direction == QUEUE_OUTBOUND;
	size_t internal = 0;
	if (outbound && env->sender[0] != '\0' && j->sent_user == NULL &&
	    arch_in_domains(env->sender, j->domains, j->ndomains))
		j->mailboxes[j->nmailboxes++] = str_lower(xstrdup(env->sender));
	for (size_t i = 0; i < env->nrcpts; i++) {
		const char *a = env->rcpts[i].addr;
		buf_appendf(&rc, "%s%s", i ? "," : "", a);
		int ours = arch_in_domains(a, j->domains, j->ndomains);
		internal += ours;
		if (j->sent_user != NULL && strcasecmp(a, j->sent_user) == 0)
			continue;       /* archived once more, as the sender's Sent copy */
		if (!outbound || ours)
			j->mailboxes[j->nmailboxes++] = str_lower(xstrdup(a));
	}
	j->env_rcpts = buf_steal(&rc);
	j->source = !outbound ? "inbound" : internal == env->nrcpts ? "internal" : "outbound";
}

static struct arch_job *
arch_job_new(struct scheduler *s, struct queue_entry *e)
{
	struct arch_job *j = xcalloc(1, sizeof(*j));
	struct store_domain *doms = NULL;
	size_t nd = 0;
	j->fd = -1;
	j->queue = s->srv->queue;
	j->archive = s->srv->archive;
	j->feed = s->feed;
	s->feed->refs++;
	memcpy(j->id, e->env.id, sizeof(j->id));
	j->tenant = xstrdup(e->env.tenant);
	j->size = e->body_size;
	j->env_from = xstrdup(e->env.sender);
	if (e->env.auth_user != NULL && *e->env.auth_user != '\0')
		j->sent_user = str_lower(xstrdup(e->env.auth_user));
	if (store_domain_list(s->srv->store, e->env.tenant, &doms, &nd) == 0) {
		j->domains = xcalloc(nd + 1, sizeof(*j->domains));
		for (size_t i = 0; i < nd; i++)
			j->domains[j->ndomains++] = xstrdup(doms[i].domain);
		store_domains_free(doms, nd);
	}
	arch_job_mailboxes(j, &e->env);
	return j;
}

/* Worker thread: read the spooled bytes, archive them (durable when it returns). */
static void
arch_job_work(void *arg)
{
	struct arch_job *j = arg;
	unsigned char *raw = j->size > 0 ? malloc(j->size) : NULL;
	j->rc = -1;
	/* Opened here, not at submit: a restart may queue thousands of these. */
	j->fd = queue_open_body(j->queue, j->id);
	if (raw == NULL || j->fd < 0) {
		j->err = xstrdup(raw == NULL ? "out of memory" : strerror(errno));
		free(raw);
		return;
	}
	size_t got = 0;
	while (got < j->size) {
		ssize_t n = pread(j->fd, raw + got, j->size - got, (off_t)got);
		if (n <= 0) {
			j->err = xstrdup(n == 0 ? "spool file shorter than recorded" : strerror(errno));
			free(raw);
			return;
		}
		got += (size_t)n;
	}
	struct archive_item it = {
		.raw = raw, .len = j->size, .mailboxes = (const char *const *)j->mailboxes,
		.nmailboxes = j->nmailboxes, .source = j->source, .env_from = j->env_from,
		.env_rcpts = j->env_rcpts, .queue_id = j->id, .unwrap_journal = 1,
		.domains = (const char *const *)j->domains, .ndomains = j->ndomains,
	};
	if (j->sent_user != NULL) {
		/* Sent through submission: the sender's copy in its "Sent" folder. */
		const char *const sender[1] = { j->sent_user };
		struct archive_item sent = it;
		sent.mailboxes = sender;
		sent.nmailboxes = 1;
		sent.folder = "Sent";
		sent.unwrap_journal = 0;
		j->rc = archive_ingest(j->archive, j->tenant, &sent, &j->res, &j->err);
		if (j->rc == 0 && j->nmailboxes > 0)
			j->rc = archive_ingest(j->archive, j->tenant, &it, &j->res, &j->err);
	} else {
		j->rc = archive_ingest(j->archive, j->tenant, &it, &j->res, &j->err);
	}
	free(raw);
}

static void sched_archive_retry(evutil_socket_t fd, short what, void *arg);
static void sentry_remove_entry(struct sentry *se);

/* Loop thread: the entry may be removed now (if delivery is done too). */
static void
arch_job_done(void *arg)
{
	struct arch_job *j = arg;
	struct scheduler *s = j->feed->s;
	struct queue_entry *e = s != NULL ? queue_entry_find(s->srv->queue, j->id) : NULL;
	struct sentry *se = e != NULL ? e->sched_data : NULL;
	if (s != NULL)
		metrics_inc(j->rc == 0 ? &s->srv->metrics.archive_messages :
		    &s->srv->metrics.archive_failures);
	if (s != NULL && j->rc == 0 && s->srv->imap != NULL)
		imap_server_notify(s->srv->imap, j->tenant);
	if (s != NULL && j->rc == 0)
		log_info("archived", "id=%s tenant=%s sha256=%s new=%d entries=%zu duplicates=%zu "
		    "journal=%d", j->id, j->tenant, j->res.hash, j->res.blob_new, j->res.rows_new,
		    j->res.rows_dup, j->res.journal);
	else if (s != NULL)
		log_error("archive_failed", "id=%s tenant=%s error=%s retry=%d", j->id, j->tenant,
		    log_str(j->err), SCHED_ARCHIVE_RETRY);
	if (se != NULL) {
		se->arch_running = 0;
		if (j->rc == 0) {
			se->archived = 1;
			if (se->remove_when_archived)
				sentry_remove_entry(se);
		} else {
			struct timeval tv = { SCHED_ARCHIVE_RETRY, 0 };
			if (se->arch_timer == NULL)
				se->arch_timer = evtimer_new(s->srv->base, sched_archive_retry, se);
			if (se->arch_timer != NULL)
				evtimer_add(se->arch_timer, &tv);
		}
	}
	arch_feed_unref(j->feed);
	arch_job_free(j);
}

/* Starts the archive copy of an entry (once; idempotent if repeated after a crash). */
static void
sched_archive_entry(struct sentry *se)
{
	struct scheduler *s = se->s;
	struct queue_entry *e = se->e;
	if (se->archived || se->arch_running)
		return;
	if (!s->srv->cfg->archive_enabled || s->srv->archive == NULL || e->env.tenant == NULL) {
		se->archived = 1;
		return;
	}
	struct arch_job *j = arch_job_new(s, e);
	se->arch_running = 1;
	worker_submit(s->srv->workers, arch_job_work, arch_job_done, j);
}

static void
sched_archive_retry(evutil_socket_t fd, short what, void *arg)
{
	struct sentry *se = arg;
	if (!se->s->stopping)
		sched_archive_entry(se);
}

static void
sched_on_ready(void *arg, struct queue_entry *e)
{
	struct scheduler *s = arg;
	if (e->sched_data != NULL || s->stopping)
		return;
	struct sentry *se = xcalloc(1, sizeof(*se));
	se->s = s;
	se->e = e;
	se->timer = evtimer_new(s->srv->base, sentry_timer_cb, se);
	e->sched_data = se;
	continuity_note_queued(s->srv->continuity, e);
	sched_archive_entry(se);
	if (queue_entry_finished(e)) {         /* delivered before a restart: archive, remove */
		sentry_remove_entry(se);
		return;
	}
	if (e->held)
		return;
	time_t now = sched_now();
	sentry_arm(se, e->next_attempt > now ? e->next_attempt - now : 0);
}

/* ------------------------------------------------------------------ API */

int
scheduler_start(struct server *srv, struct scheduler **s_r, char **err_r)
{
	struct scheduler *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->feed = xcalloc(1, sizeof(*s->feed));
	s->feed->refs = 1;
	s->feed->s = s;
	s->pump_ev = event_new(srv->base, -1, 0, sched_pump, s);
	if (s->pump_ev == NULL) {
		free(s);
		*err_r = xstrdup("scheduler: cannot create an event");
		return -1;
	}
	*s_r = s;
	queue_set_ready_listener(srv->queue, sched_on_ready, s);
	queue_announce_all(srv->queue);
	log_info("scheduler_started", "entries=%zu", queue_count(srv->queue));
	return 0;
}

static void
stop_entry(void *arg, struct queue_entry *e)
{
	struct sentry *se = e->sched_data;
	if (se == NULL)
		return;
	sentry_cancel_waiting(se);
	evtimer_del(se->timer);
}

static void
stop_free_entry(void *arg, struct queue_entry *e)
{
	struct sentry *se = e->sched_data;
	if (se != NULL)
		sentry_free(se);
}

static void
stop_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Runs the loop until every job is done or secs pass; 0 when all are done. */
static int
stop_wait_jobs(struct scheduler *s, int secs)
{
	int deadline = 0;
	struct event *t = evtimer_new(s->srv->base, stop_deadline_cb, &deadline);
	struct timeval tv = { secs, 0 };
	evtimer_add(t, &tv);
	/* -1: called from inside the loop (re-entry is refused): do not wait. */
	while (s->jobs != NULL && !deadline)
		if (event_base_loop(s->srv->base, EVLOOP_ONCE) != 0)
			break;
	event_free(t);
	return s->jobs != NULL ? -1 : 0;
}

void
scheduler_stop(struct scheduler **sp)
{
	struct scheduler *s = *sp;
	if (s == NULL)
		return;
	s->stopping = 1;
	queue_set_ready_listener(s->srv->queue, NULL, NULL);
	queue_foreach(s->srv->queue, stop_entry, s);
	/*
	 * Let running deliveries finish and record their outcomes for a while,
	 * then cut them (their recipients stay pending: retried at next start).
	 */
	if (stop_wait_jobs(s, SCHED_STOP_WAIT_SECS) < 0 && s->active > 0) {
		smtp_client_cancel_all(s->srv);
		stop_wait_jobs(s, 2);
	}
	/* Closes the connections kept for reuse (and anything still running). */
	smtp_client_cancel_all(s->srv);
	for (struct job *j = s->jobs, *next; j != NULL; j = next) {
		next = j->next;
		j->s = NULL;    /* orphaned: its callbacks only free it */
		j->se = NULL;
	}
	queue_foreach(s->srv->queue, stop_free_entry, s);
	while (s->dests != NULL) {
		struct dest *d = s->dests;
		s->dests = d->next;
		free(d->key);
		free(d->domain);
		free(d);
	}
	event_free(s->pump_ev);
	s->feed->s = NULL;
	arch_feed_unref(s->feed);
	log_info("scheduler_stopped", "orphaned_jobs=%d", s->jobs != NULL);
	free(s);
	*sp = NULL;
}

static void
flush_entry(void *arg, struct queue_entry *e)
{
	struct scheduler *s = arg;
	struct sentry *se = e->sched_data;
	if (se == NULL) {
		sched_on_ready(s, e);
		return;
	}
	if (e->held || se->jobs > 0 || se->deleting)
		return;
	e->next_attempt = 0;
	sentry_arm(se, 0);
}

void
scheduler_flush(struct scheduler *s)
{
	log_info("queue_flush", "entries=%zu", queue_count(s->srv->queue));
	queue_foreach(s->srv->queue, flush_entry, s);
}

void
scheduler_entry_changed(struct scheduler *s, struct queue_entry *e)
{
	struct sentry *se = e->sched_data;
	if (se == NULL) {
		sched_on_ready(s, e);
		return;
	}
	if (e->held) {
		evtimer_del(se->timer);
		if (sentry_cancel_waiting(se) > 0 && se->jobs == 0)
			sentry_round_end(se);
		return;
	}
	if (se->jobs == 0 && !se->deleting) {
		e->next_attempt = 0;
		sentry_arm(se, 0);
	}
}

int
scheduler_delete(struct scheduler *s, const char *id)
{
	struct queue_entry *e = queue_entry_find(s->srv->queue, id);
	if (e == NULL)
		return -1;
	struct sentry *se = e->sched_data;
	if (se == NULL) {
		log_info("deleted", "id=%s tenant=%s", e->env.id, log_str(or_dash(e->env.tenant)));
		sched_note_deleted(s, e);
		queue_entry_remove(s->srv->queue, e);
		return 0;
	}
	if (se->deleting)
		return 0;
	se->deleting = 1;
	evtimer_del(se->timer);
	sentry_cancel_waiting(se);
	if (se->jobs == 0)
		sentry_round_end(se);
	return 0;
}

unsigned
scheduler_active(const struct scheduler *s)
{
	return s->active;
}

struct release {
	const char *tenant;
	struct sentry **list;
	size_t n, cap;
};

static void
release_collect(void *arg, struct queue_entry *e)
{
	struct release *r = arg;
	struct sentry *se = e->sched_data;
	if (se == NULL || e->held || se->deleting || e->env.tenant == NULL ||
	    strcmp(e->env.tenant, r->tenant) != 0 || queue_entry_finished(e))
		return;
	if (se->jobs > 0) {
		/* e.g. a submission entry whose outside recipients are being sent */
		se->release_due = se->held_since != 0;
		return;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->list = xrealloc(r->list, r->cap * sizeof(*r->list));
	}
	r->list[r->n++] = se;
}

static int
release_cmp(const void *a, const void *b)
{
	const struct queue_entry *x = (*(struct sentry *const *)a)->e;
	const struct queue_entry *y = (*(struct sentry *const *)b)->e;
	if (x->env.arrival != y->env.arrival)
		return x->env.arrival < y->env.arrival ? -1 : 1;
	return strcmp(x->env.id, y->env.id);
}

/*
 * Failback: the tenant's waiting entries are dispatched now, oldest first,
 * and the route destinations they fill serve one job at a time until their
 * FIFO is empty, so the primary receives the mail in arrival order.
 */
void
scheduler_release_tenant(struct scheduler *s, const char *tenant)
{
	struct release r = { .tenant = tenant };
	if (s == NULL || s->stopping || tenant == NULL)
		return;
	queue_foreach(s->srv->queue, release_collect, &r);
	if (r.n > 1)
		qsort(r.list, r.n, sizeof(*r.list), release_cmp);
	log_info("continuity_release", "tenant=%s entries=%zu", log_str(tenant), r.n);
	s->replaying = 1;
	for (size_t i = 0; i < r.n; i++) {
		struct sentry *se = r.list[i];
		evtimer_del(se->timer);
		se->e->next_attempt = 0;
		sentry_dispatch(se);
	}
	s->replaying = 0;
	free(r.list);
}
