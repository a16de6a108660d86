/*
 * continuity_ledger.c — what an outage (or drill) owes the primary, and
 * how failback pays it.
 *
 * The scheduler tells us of every queue entry (continuity_note_queued) and
 * of every recipient's final outcome (continuity_note_outcome).  During an
 * outage each pending recipient owed to the primary gets an 'inbound'
 * ledger row: the route-bound recipients of an inbound entry, and those of
 * the tenant's own domains in mail sent through submission (one outbound
 * entry for colleagues and outsiders alike; the scheduler holds the
 * colleagues' copies for the tenant route).  Mail a user sent through
 * submission during an outage or a drill that includes the user also gets
 * a 'sent' row, and its bytes are kept in
 * <data_dir>/continuity/<tenant>/sent/<queue ID>.eml
 * (the original may leave the queue long before failback).  At failback
 * cont_sent_copies() turns each 'sent' row into a copy for the user's
 * primary mailbox (tenant setting sent_copy) and the file is removed.
 *
 * Rows are INSERT OR IGNORE, so a restart re-announcing every entry adds
 * nothing.  Successful deliveries through a tenant route are remembered
 * (tenant, Message-ID, recipient) so failback can skip what the primary
 * already has.
 */
#include "continuity/continuity.h"
#include "continuity/continuity_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/config.h"
#include "continuity/alert.h"
#include "deliver/route.h"
#include "lib/buf.h"
#include "lib/id.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "lib/sys.h"
#include "server.h"
#include "store/store.h"

/* Headers longer than this are not searched for a Message-ID. */
#define CONT_HEADER_MAX (64 * 1024)
/* A sent message larger than this is not kept for its failback copy. */
#define CONT_SENT_MAX ((size_t)256 * 1024 * 1024)

/* ---- reading the spool -------------------------------------------------- */

static int
header_complete(const struct buf *b)
{
	return b->len > 0 && (memmem(b->data, b->len, "\n\r\n", 3) != NULL ||
	    memmem(b->data, b->len, "\n\n", 2) != NULL);
}

/* Reads up to max bytes of a spooled message (headers_only: stops after the
 * header) into out: 0 / -1. */
static int
spool_read(struct continuity *c, const char *queue_id, size_t max, int headers_only,
    struct buf *out)
{
	int fd = queue_open_body(c->srv->queue, queue_id);
	if (fd < 0)
		return -1;
	char chunk[8192];
	while (out->len < max) {
		size_t want = max - out->len < sizeof(chunk) ? max - out->len : sizeof(chunk);
		ssize_t n = read(fd, chunk, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		buf_append(out, chunk, (size_t)n);
		if (headers_only && header_complete(out))
			break;
	}
	close(fd);
	return 0;
}

/* The unfolded value of the first Message-ID header in a header block. */
static char *
header_message_id(const char *h, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && h[eol] != '\n')
			eol++;
		size_t linelen = eol - i;
		if (linelen == 0 || (linelen == 1 && h[i] == '\r'))
			break;                       /* end of the header */
		if (linelen > 11 && strncasecmp(h + i, "message-id:", 11) == 0) {
			struct buf v = BUF_INIT;
			size_t p = i + 11;
			for (;;) {
				for (; p < eol; p++)
					if (h[p] != ' ' && h[p] != '\t' && h[p] != '\r')
						buf_append_char(&v, h[p]);
				if (eol + 1 < len && (h[eol + 1] == ' ' || h[eol + 1] == '\t')) {
					p = eol + 1;
					eol = p;
					while (eol < len && h[eol] != '\n')
						eol++;
					continue;
				}
				break;
			}
			if (v.len == 0) {
				buf_free(&v);
				return NULL;
			}
			return buf_steal(&v);
		}
		i = eol + 1;
	}
	return NULL;
}

char *
cont_message_id(struct continuity *c, const char *queue_id)
{
	if (strcmp(c->msgid_qid, queue_id) != 0) {
		struct buf h = BUF_INIT;
		free(c->msgid);
		c->msgid = NULL;
		if (spool_read(c, queue_id, CONT_HEADER_MAX, 1, &h) == 0)
			c->msgid = header_message_id(h.data != NULL ? (const char *)h.data : "",
			    h.len);
		buf_free(&h);
		snprintf(c->msgid_qid, sizeof(c->msgid_qid), "%s", queue_id);
	}
	return c->msgid != NULL ? xstrdup(c->msgid) : NULL;
}

int
cont_rcpt_route_bound(struct continuity *c, const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *url = NULL;
	struct route r;
	const char *why;
	if (at == NULL || c->srv->store == NULL)
		return 0;
	char *domain = str_lower(xstrdup(at + 1));
	int found = store_route_get(c->srv->store, domain, &url) == 1;
	int bound = found && route_parse(url, &r, &why) == 0 && !r.archive_only;
	free(url);
	free(domain);
	return bound;
}

/*
 * Does this recipient's copy go to the entry's tenant's primary?  Inbound:
 * every route-bound recipient.  Submission (outbound with auth_user): the
 * route-bound recipients of the tenant's own domains, as the scheduler
 * routes them (another tenant's domain leaves by MX / smarthost).
 */
static int
rcpt_owed(struct continuity *c, const struct queue_entry *e, const char *addr)
{
	if (e->env.direction == QUEUE_INBOUND)
		return cont_rcpt_route_bound(c, addr);
	if (e->env.direction != QUEUE_OUTBOUND || e->env.auth_user == NULL ||
	    *e->env.auth_user == '\0' || e->env.tenant == NULL)
		return 0;
	const char *at = strrchr(addr, '@');
	char *owner = NULL;
	if (at == NULL || c->srv->store == NULL)
		return 0;
	char *domain = str_lower(xstrdup(at + 1));
	int own = store_domain_tenant(c->srv->store, domain, &owner) == 1 && owner != NULL &&
	    strcmp(owner, e->env.tenant) == 0;
	free(owner);
	free(domain);
	return own && cont_rcpt_route_bound(c, addr);
}

/* ---- the sent message files --------------------------------------------- */

static char *
sent_path(struct continuity *c, const char *tenant, const char *queue_id)
{
	struct buf p = BUF_INIT;
	buf_appendf(&p, "%s/continuity/%s/sent/%s.eml", c->srv->cfg->data_dir, tenant, queue_id);
	return buf_steal(&p);
}

/* Keeps the bytes of a sent message until its failback copy is made. */
static void
sent_keep(struct continuity *c, const struct queue_entry *e)
{
	char *path = sent_path(c, e->env.tenant, e->env.id);
	if (access(path, F_OK) == 0) {
		free(path);
		return;
	}
	struct buf dir = BUF_INIT, raw = BUF_INIT;
	buf_appendf(&dir, "%s/continuity/%s/sent", c->srv->cfg->data_dir, e->env.tenant);
	size_t size = e->body_size < CONT_SENT_MAX ? (size_t)e->body_size : CONT_SENT_MAX;
	if (sys_mkdir_p(buf_cstr(&dir), 0700) < 0 ||
	    spool_read(c, e->env.id, size, 0, &raw) < 0 ||
	    sys_write_file_atomic(path, raw.data != NULL ? raw.data : (void *)"", raw.len, 0600) < 0)
		log_error("continuity_sent_keep_failed", "id=%s tenant=%s errno=%d", e->env.id,
		    log_str(e->env.tenant), errno);
	buf_free(&dir);
	buf_free(&raw);
	free(path);
}

/* ---- hooks from the scheduler ------------------------------------------- */

static void
note_inbound(struct continuity *c, const struct ctenant *t, const struct queue_entry *e,
    char **msgid)
{
	for (size_t i = 0; i < e->env.nrcpts; i++) {
		const struct queue_rcpt *r = &e->env.rcpts[i];
		if (r->state != RCPT_PENDING || !rcpt_owed(c, e, r->addr))
			continue;
		if (*msgid == NULL)
			*msgid = cont_message_id(c, e->env.id);
		if (store_cont_ledger_add(c->srv->store, t->outage.id, e->env.id, r->addr, "inbound",
		    e->env.arrival, *msgid) == 1)
			log_info("continuity_ledger", "outage=%lld id=%s to=%s kind=inbound",
			    t->outage.id, e->env.id, log_str(r->addr));
	}
}

static void
note_sent(struct continuity *c, const struct ctenant *t, const struct queue_entry *e,
    char **msgid)
{
	const char *user = e->env.auth_user;
	long long id = 0;
	if (t->state != CONTINUITY_NORMAL)
		id = t->outage.id;
	else if (cont_drill_has_user(t, user))
		id = t->drill.id;
	if (id == 0)
		return;
	if (*msgid == NULL)
		*msgid = cont_message_id(c, e->env.id);
	int added = store_cont_ledger_add(c->srv->store, id, e->env.id, user, "sent",
	    e->env.arrival, *msgid);
	if (added == 1) {
		log_info("continuity_ledger", "outage=%lld id=%s to=%s kind=sent", id, e->env.id,
		    log_str(user));
		sent_keep(c, e);
	}
}

void
continuity_note_queued(struct continuity *c, const struct queue_entry *e)
{
	if (c == NULL || e->env.tenant == NULL ||
	    (e->env.flags & (QUEUE_F_CONTINUITY_COPY | QUEUE_F_DIRECT_MX)) != 0)
		return;
	struct ctenant *t = cont_tenant(c, e->env.tenant, 0);
	if (t == NULL)
		return;
	char *msgid = NULL;
	int submitted = e->env.auth_user != NULL && *e->env.auth_user != '\0';
	/* Owed to the primary: inbound mail, and submission mail to colleagues. */
	if (t->state != CONTINUITY_NORMAL &&
	    (e->env.direction == QUEUE_INBOUND || (submitted && e->env.direction == QUEUE_OUTBOUND)))
		note_inbound(c, t, e, &msgid);
	if (submitted)
		note_sent(c, t, e, &msgid);
	free(msgid);
}

void
cont_note_queued_cb(void *arg, struct queue_entry *e)
{
	continuity_note_queued(arg, e);
}

/* Batched: one transaction per tick instead of one fsync per delivery. */
static void
cont_remember_delivery(struct continuity *c, const char *tenant, const char *msgid,
    const char *rcpt, long long at)
{
	if (c->ndelivered == c->delivered_cap) {
		c->delivered_cap = c->delivered_cap ? c->delivered_cap * 2 : 64;
		c->delivered = xrealloc(c->delivered, c->delivered_cap * sizeof(*c->delivered));
	}
	struct store_cont_delivery *d = &c->delivered[c->ndelivered++];
	d->tenant = xstrdup(tenant);
	d->message_id = xstrdup(msgid);
	d->rcpt = xstrdup(rcpt);
	d->at = at;
}

void
continuity_note_outcome(struct continuity *c, const struct queue_entry *e, size_t idx,
    enum queue_rcpt_state st, const char *reply)
{
	if (c == NULL || e->env.tenant == NULL || idx >= e->env.nrcpts || st == RCPT_PENDING ||
	    (e->env.flags & QUEUE_F_DIRECT_MX) != 0)
		return;
	const char *addr = e->env.rcpts[idx].addr;
	int copy = (e->env.flags & QUEUE_F_CONTINUITY_COPY) != 0;
	int skipped = st == RCPT_DELIVERED && reply != NULL &&
	    strncmp(reply, CONT_SKIP_REPLY, strlen(CONT_SKIP_REPLY)) == 0;
	const char *state = skipped ? "skipped" : st == RCPT_DELIVERED ? "delivered" : "failed";
	time_t now = time(NULL);
	struct ctenant *t = cont_tenant(c, e->env.tenant, 0);
	/* Only tenants that had an outage or drill here (or copies) can have rows. */
	int n = t != NULL || copy ? store_cont_ledger_settle(c->srv->store, 0, e->env.id, addr,
	    copy ? "sent" : "inbound", state, reply, now) : 0;
	if (st == RCPT_DELIVERED && !skipped && !copy && rcpt_owed(c, e, addr)) {
		char *msgid = cont_message_id(c, e->env.id);
		if (msgid != NULL)
			cont_remember_delivery(c, e->env.tenant, msgid, addr, now);
		free(msgid);
	}
	if (n > 0 && t != NULL)
		cont_check_end(c, t);
}

void
cont_flush_delivered(struct continuity *c)
{
	if (c->ndelivered == 0)
		return;
	store_cont_delivered_add_many(c->srv->store, c->delivered, c->ndelivered);
	for (size_t i = 0; i < c->ndelivered; i++) {
		free(c->delivered[i].tenant);
		free(c->delivered[i].message_id);
		free(c->delivered[i].rcpt);
	}
	c->ndelivered = 0;
}

int
continuity_already_delivered(struct continuity *c, const struct queue_entry *e, size_t idx,
    const char **why_r)
{
	if (c == NULL || e->env.tenant == NULL || idx >= e->env.nrcpts ||
	    (e->env.flags & QUEUE_F_CONTINUITY_COPY) != 0 ||
	    continuity_tenant_state(c, e->env.tenant) != CONTINUITY_FAILING_BACK)
		return 0;
	char *msgid = cont_message_id(c, e->env.id);
	if (msgid == NULL)
		return 0;
	cont_flush_delivered(c);
	int has = store_cont_delivered_has(c->srv->store, e->env.tenant, msgid,
	    e->env.rcpts[idx].addr) == 1;
	if (has) {
		snprintf(c->why, sizeof(c->why), "%s (Message-ID %.400s)", CONT_SKIP_REPLY, msgid);
		*why_r = c->why;
		log_info("continuity_skip", "id=%s to=%s message_id=%s", e->env.id,
		    log_str(e->env.rcpts[idx].addr), log_str(msgid));
	}
	free(msgid);
	return has;
}

/* ---- failback copies of sent mail --------------------------------------- */

/* One copy in flight (queue_inject or IMAP APPEND); holds no pointer to c. */
struct sent_copy {
	struct server *srv;
	long long outage_id;
	char *tenant;
	char *queue_id;               /* the ledger row's (the original's) */
	char *copy_id;                /* header copies: the copy's queue ID */
	char *rcpt;
	char *path;
};

static void
sent_copy_free(struct sent_copy *sc)
{
	free(sc->tenant);
	free(sc->queue_id);
	free(sc->copy_id);
	free(sc->rcpt);
	free(sc->path);
	free(sc);
}

static void
sent_copy_settle(struct sent_copy *sc, const char *queue_id, const char *state,
    const char *reason)
{
	store_cont_ledger_settle(sc->srv->store, sc->outage_id, queue_id, sc->rcpt, "sent", state,
	    reason, time(NULL));
	log_info("continuity_sent_copy", "outage=%lld id=%s to=%s state=%s reason=%s",
	    sc->outage_id, queue_id, log_str(sc->rcpt), state, log_str(reason));
	struct ctenant *t = cont_tenant(sc->srv->continuity, sc->tenant, 0);
	if (t != NULL)
		cont_check_end(sc->srv->continuity, t);
}

static void
sent_copy_injected(void *arg, int error)
{
	struct sent_copy *sc = arg;
	if (error == 0) {
		sys_unlink(sc->path);
		log_info("continuity_sent_copy", "outage=%lld id=%s copy=%s to=%s state=queued",
		    sc->outage_id, sc->queue_id, sc->copy_id, log_str(sc->rcpt));
	} else {
		store_cont_ledger_retarget(sc->srv->store, sc->outage_id, sc->copy_id, sc->rcpt,
		    sc->queue_id);
		sent_copy_settle(sc, sc->queue_id, "failed", strerror(error));
	}
	sent_copy_free(sc);
}

static void
sent_copy_appended(void *arg, int ok, const char *why)
{
	struct sent_copy *sc = arg;
	if (ok)
		sys_unlink(sc->path);
	sent_copy_settle(sc, sc->queue_id, ok ? "delivered" : "failed",
	    ok ? "appended to the primary by IMAP" : why);
	sent_copy_free(sc);
}

static void
sent_copy_header(struct continuity *c, struct sent_copy *sc, const char *raw, size_t len)
{
	char id[ID_LEN + 1];
	struct buf msg = BUF_INIT;
	id_generate(id);
	sc->copy_id = xstrdup(id);
	buf_appendf(&msg, "X-Mailark-Continuity: sent-copy outage=%lld\r\n", sc->outage_id);
	buf_append(&msg, raw, len);
	struct queue_rcpt to = { .addr = sc->rcpt, .notify = QUEUE_NOTIFY_NEVER };
	struct queue_envelope env = {
		.direction = QUEUE_INBOUND, .tenant = sc->tenant, .sender = "",
		.client_addr = "local", .client_helo = c->srv->cfg->hostname,
		.flags = QUEUE_F_CONTINUITY_COPY, .arrival = time(NULL), .rcpts = &to, .nrcpts = 1,
	};
	memcpy(env.id, id, sizeof(env.id));
	/* The row follows the copy before it exists: its outcome settles the row. */
	store_cont_ledger_retarget(c->srv->store, sc->outage_id, sc->queue_id, sc->rcpt, id);
	queue_inject(c->srv->queue, &env, msg.data, msg.len, sent_copy_injected, sc);
	buf_free(&msg);
}

static void
sent_copy_one(struct continuity *c, const char *tenant, const struct store_cont_ledger *row,
    const char *mode, int resuming)
{
	struct queue_entry *qe = queue_entry_find(c->srv->queue, row->queue_id);
	if (resuming && qe != NULL && (qe->env.flags & QUEUE_F_CONTINUITY_COPY) != 0)
		return;                          /* the copy is queued already */
	struct sent_copy *sc = xcalloc(1, sizeof(*sc));
	sc->srv = c->srv;
	sc->outage_id = row->outage_id;
	sc->tenant = xstrdup(tenant);
	sc->queue_id = xstrdup(row->queue_id);
	sc->rcpt = xstrdup(row->rcpt);
	sc->path = sent_path(c, tenant, row->queue_id);
	if (strcmp(mode, "none") == 0) {
		sys_unlink(sc->path);
		sent_copy_settle(sc, sc->queue_id, "delivered", "sent_copy none");
		sent_copy_free(sc);
		return;
	}
	char *raw = NULL;
	size_t len = 0;
	if (sys_read_file(sc->path, CONT_SENT_MAX, &raw, &len) < 0) {
		sent_copy_settle(sc, sc->queue_id, "failed", "the copy of the sent message is missing");
		sent_copy_free(sc);
		return;
	}
	if (strcmp(mode, "imap") == 0) {
		char *url = cont_setting(c, tenant, "imap_url");
		char *user = cont_setting(c, tenant, "imap_user");
		char *pass = cont_setting(c, tenant, "imap_password");
		struct buf login = BUF_INIT;
		for (const char *p = user; *p; p++) {
			if (p[0] == '%' && p[1] == 'u') {
				buf_append_str(&login, sc->rcpt);
				p++;
			} else {
				buf_append_char(&login, *p);
			}
		}
		alert_imap_append(c->srv, url, buf_cstr(&login), pass, raw, len, sent_copy_appended,
		    sc);
		buf_free(&login);
		free(url);
		free(user);
		free(pass);
	} else {
		sent_copy_header(c, sc, raw, len);
	}
	free(raw);
}

void
cont_sent_copies(struct continuity *c, const char *tenant, long long outage_id, int resuming)
{
	struct store_cont_ledger *rows = NULL;
	size_t n = 0;
	if (store_cont_ledger_list(c->srv->store, outage_id, "pending", "sent", 0, &rows, &n) < 0)
		return;
	char *mode = cont_setting(c, tenant, "sent_copy");
	for (size_t i = 0; i < n; i++)
		sent_copy_one(c, tenant, &rows[i], mode, resuming);
	free(mode);
	store_cont_ledger_free(rows, n);
}
