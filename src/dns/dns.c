/*
 * NAME
 *	dns - asynchronous MX and A/AAAA lookups through libunbound
 * DESCRIPTION
 *	One ub_ctx in threaded async mode; its ub_fd() is watched by a
 *	persistent libevent read event that calls ub_process(), so every
 *	libunbound callback runs on the loop thread.
 *
 *	A lookup (struct dns_lookup) has up to two phases:
 *	  MX      one MX query for the domain (dns_resolve_mx only);
 *	  ADDR    an A and an AAAA query for every host to try.
 *	When the last query of the ADDR phase answers (or the lookup's timer
 *	fires) the answer is assembled and handed to the caller from a
 *	zero-delay timer, never from inside ub_process() and never from
 *	inside dns_resolve_*() itself.
 *
 *	MX rdata is parsed here: a 16-bit preference and an uncompressed
 *	wire-format name (libunbound decompresses), with bounds checks on
 *	every label.
 * DIAGNOSTICS
 *	Lookups failing for good give DNS_NXDOMAIN, DNS_NULL_MX or
 *	DNS_NO_ADDRESS; SERVFAIL, resolver errors and timeouts DNS_TEMPFAIL.
 */
#include "dns/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "server.h"

#define DNS_TIMEOUT_SECONDS 30
#define DNS_MAX_HOSTS       16
#define DNS_MAX_ADDRS       8      /* per host and family */
#define RR_A                1
#define RR_MX               15
#define RR_AAAA             28
#define RCODE_SERVFAIL      2

struct dns_lookup;

struct dns_query {
	struct dns_lookup *lk;
	int async_id;
	int active;
	size_t host;            /* index into lk->hosts (ADDR phase) */
	int rrtype;
};

struct dns_lookup {
	struct dns_resolver *r;
	struct dns_lookup *prev, *next;
	dns_mx_cb *cb;
	void *arg;
	char name[256];
	int want_mx;             /* dns_resolve_mx (else dns_resolve_host) */
	int mx_fallback;         /* no MX: the domain itself is the host */
	struct dns_host *hosts;
	size_t nhosts;
	struct dns_query **queries;
	size_t nqueries;
	unsigned pending;
	int tempfail;            /* some query failed temporarily */
	int nxdomain;            /* some ADDR query said NXDOMAIN */
	int finished;
	enum dns_status status;
	char error[320];
	struct event *timer;
};

struct dns_resolver {
	struct server *srv;
	struct ub_ctx *ctx;
	struct event *ev;
	struct dns_lookup *lookups;
};

static void
resolver_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;
	int err = ub_process(r->ctx);
	if (err != 0)
		log_warn("dns_process", "error=%s", log_str(ub_strerror(err)));
}

int
dns_ctx_configure(struct ub_ctx *ctx, const struct config *cfg, char **err_r)
{
	/* Local forwarders (127.0.0.53, 127.0.0.11, a test's unbound) are normal. */
	int err = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no");
	if (err != 0)
		log_warn("dns_option", "error=%s", log_str(ub_strerror(err)));
	if (cfg->dns_resolver != NULL && cfg->dns_resolver[0] != '\0') {
		/*
		 * A forwarder we are told to use decides about every name, the
		 * special-use "test." (RFC 6761) included, which libunbound
		 * would otherwise answer NXDOMAIN itself.
		 */
		err = ub_ctx_set_option(ctx, "local-zone:", "test. transparent");
		if (err == 0)
			err = ub_ctx_set_fwd(ctx, cfg->dns_resolver);
		if (err != 0) {
			struct buf b = BUF_INIT;
			buf_appendf(&b, "dns_resolver %s: %s", cfg->dns_resolver, ub_strerror(err));
			*err_r = buf_steal(&b);
			return -1;
		}
	} else {
		err = ub_ctx_resolvconf(ctx, NULL);
		if (err != 0)
			log_warn("dns_resolvconf", "error=%s", log_str(ub_strerror(err)));
		err = ub_ctx_hosts(ctx, NULL);
		if (err != 0)
			log_warn("dns_hosts", "error=%s", log_str(ub_strerror(err)));
	}
	return 0;
}

static int
resolver_configure(struct dns_resolver *r, const struct config *cfg, char **err_r)
{
	if (dns_ctx_configure(r->ctx, cfg, err_r) < 0)
		return -1;
	int err = ub_ctx_async(r->ctx, 1);
	if (err != 0) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "dns: async mode: %s", ub_strerror(err));
		*err_r = buf_steal(&b);
		return -1;
	}
	return 0;
}

int
dns_resolver_new(struct server *srv, struct dns_resolver **r_r, char **err_r)
{
	struct dns_resolver *r = xcalloc(1, sizeof(*r));
	r->srv = srv;
	r->ctx = ub_ctx_create();
	if (r->ctx == NULL) {
		*err_r = xstrdup("dns: cannot create a libunbound context");
		free(r);
		return -1;
	}
	if (resolver_configure(r, srv->cfg, err_r) < 0) {
		ub_ctx_delete(r->ctx);
		free(r);
		return -1;
	}
	int fd = ub_fd(r->ctx);
	r->ev = fd >= 0 ? event_new(srv->base, fd, EV_READ | EV_PERSIST, resolver_readable, r) : NULL;
	if (r->ev == NULL || event_add(r->ev, NULL) < 0) {
		*err_r = xstrdup("dns: cannot watch the libunbound descriptor");
		if (r->ev != NULL)
			event_free(r->ev);
		ub_ctx_delete(r->ctx);
		free(r);
		return -1;
	}
	*r_r = r;
	return 0;
}

static void
lookup_free(struct dns_lookup *lk)
{
	struct dns_resolver *r = lk->r;
	for (size_t i = 0; i < lk->nqueries; i++) {
		if (lk->queries[i]->active)
			(void)ub_cancel(r->ctx, lk->queries[i]->async_id);
		free(lk->queries[i]);
	}
	free(lk->queries);
	for (size_t i = 0; i < lk->nhosts; i++)
		free(lk->hosts[i].addrs);
	free(lk->hosts);
	if (lk->prev != NULL)
		lk->prev->next = lk->next;
	else
		r->lookups = lk->next;
	if (lk->next != NULL)
		lk->next->prev = lk->prev;
	event_free(lk->timer);
	free(lk);
}

/* Pending callbacks are not called once the resolver is freed. */
void
dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r = *rp;
	if (r == NULL)
		return;
	while (r->lookups != NULL)
		lookup_free(r->lookups);
	event_free(r->ev);
	ub_ctx_delete(r->ctx);
	free(r);
	*rp = NULL;
}

static void
lookup_fail(struct dns_lookup *lk, enum dns_status st, const char *fmt, const char *what)
{
	lk->status = st;
	snprintf(lk->error, sizeof(lk->error), fmt, what);
}

/* Removes hosts without addresses; decides the status when none is left. */
static void
lookup_assemble(struct dns_lookup *lk)
{
	size_t n = 0;
	for (size_t i = 0; i < lk->nhosts; i++) {
		if (lk->hosts[i].naddrs == 0) {
			free(lk->hosts[i].addrs);
			continue;
		}
		lk->hosts[n++] = lk->hosts[i];
	}
	lk->nhosts = n;
	if (n > 0) {
		lk->status = DNS_OK;
		return;
	}
	if (lk->tempfail)
		lookup_fail(lk, DNS_TEMPFAIL, "temporary failure looking up addresses for %s", lk->name);
	else if (!lk->want_mx && lk->nxdomain)
		lookup_fail(lk, DNS_NXDOMAIN, "Host not found: %s", lk->name);
	else if (lk->mx_fallback)
		lookup_fail(lk, DNS_NO_ADDRESS, "no MX and no A/AAAA records for %s", lk->name);
	else
		lookup_fail(lk, DNS_NO_ADDRESS, "no A/AAAA records for the host(s) of %s", lk->name);
}

static void
lookup_deliver(struct dns_lookup *lk)
{
	struct dns_answer ans = {
		.status = lk->status,
		.error = lk->status == DNS_OK ? NULL : lk->error,
		.hosts = lk->status == DNS_OK ? lk->hosts : NULL,
		.nhosts = lk->status == DNS_OK ? lk->nhosts : 0,
	};
	log_debug("dns_answer", "name=%s status=%d hosts=%zu", log_str(lk->name),
	    (int)lk->status, ans.nhosts);
	lk->cb(lk->arg, &ans);
	lookup_free(lk);
}

static void
lookup_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_lookup *lk = arg;
	if (!lk->finished) {
		/* Timed out: cancel what is outstanding, answer with what we have. */
		for (size_t i = 0; i < lk->nqueries; i++) {
			if (lk->queries[i]->active) {
				(void)ub_cancel(lk->r->ctx, lk->queries[i]->async_id);
				lk->queries[i]->active = 0;
			}
		}
		lk->tempfail = 1;
		if (lk->nhosts > 0)
			lookup_assemble(lk);
		else
			lookup_fail(lk, DNS_TEMPFAIL, "DNS lookup of %s timed out", lk->name);
	}
	lookup_deliver(lk);
}

/* Answers from the loop, not from the current call stack. */
static void
lookup_finish(struct dns_lookup *lk)
{
	static const struct timeval zero = { 0, 0 };
	lk->finished = 1;
	evtimer_del(lk->timer);
	evtimer_add(lk->timer, &zero);
}

static void query_done(void *mydata, int err, struct ub_result *res);

static int
lookup_query(struct dns_lookup *lk, const char *name, int rrtype, size_t host)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	q->lk = lk;
	q->rrtype = rrtype;
	q->host = host;
	q->active = 1;
	lk->queries = xrealloc(lk->queries, (lk->nqueries + 1) * sizeof(*lk->queries));
	lk->queries[lk->nqueries++] = q;
	lk->pending++;
	int err = ub_resolve_async(lk->r->ctx, name, rrtype, 1, q, query_done, &q->async_id);
	if (err != 0) {
		log_warn("dns_query", "name=%s error=%s", log_str(name), log_str(ub_strerror(err)));
		q->active = 0;
		lk->pending--;
		lk->tempfail = 1;
		return -1;
	}
	return 0;
}

static void
lookup_start_addrs(struct dns_lookup *lk)
{
	lk->pending++;   /* guard: no completion while queries are being sent */
	for (size_t i = 0; i < lk->nhosts; i++) {
		(void)lookup_query(lk, lk->hosts[i].name, RR_A, i);
		(void)lookup_query(lk, lk->hosts[i].name, RR_AAAA, i);
	}
	if (--lk->pending == 0) {
		lookup_assemble(lk);
		lookup_finish(lk);
	}
}

static void
host_add_addr(struct dns_host *h, int family, const void *addr)
{
	h->addrs = xrealloc(h->addrs, (h->naddrs + 1) * sizeof(*h->addrs));
	struct sockaddr_storage *ss = &h->addrs[h->naddrs++];
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, addr, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, addr, 16);
	}
}

/* IPv4 addresses are tried before IPv6 ones, whatever order they arrive in. */
static void
host_add_result(struct dns_host *h, int rrtype, const struct ub_result *res)
{
	size_t want = rrtype == RR_A ? 4 : 16;
	size_t added = 0;
	for (int i = 0; res->data[i] != NULL && added < DNS_MAX_ADDRS; i++) {
		if (res->len[i] < 0 || (size_t)res->len[i] != want)
			continue;
		host_add_addr(h, rrtype == RR_A ? AF_INET : AF_INET6, res->data[i]);
		added++;
	}
	if (rrtype == RR_A && added > 0 && added < h->naddrs) {
		/* Move the new IPv4 ones in front of IPv6 ones already there. */
		struct sockaddr_storage *tmp = xmalloc(h->naddrs * sizeof(*tmp));
		size_t old = h->naddrs - added;
		memcpy(tmp, h->addrs + old, added * sizeof(*tmp));
		memcpy(tmp + added, h->addrs, old * sizeof(*tmp));
		free(h->addrs);
		h->addrs = tmp;
	}
}

/*
 * Decodes an uncompressed wire-format name at data[off..len) into dotted
 * text ("" for the root).  Returns 0, or -1 for anything malformed.
 */
static int
wire_name(const unsigned char *data, size_t len, size_t off, char *out, size_t outsize)
{
	size_t o = 0;
	for (;;) {
		if (off >= len)
			return -1;
		size_t l = data[off++];
		if (l == 0)
			break;
		if (l > 63 || off + l > len)
			return -1;
		if (o + l + 2 > outsize || o + l + 1 > 254)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			unsigned char c = data[off + i];
			if (c <= 0x20 || c >= 0x7f || c == '.')
				return -1;
			out[o++] = (char)c;
		}
		off += l;
	}
	out[o] = '\0';
	return off == len ? 0 : -1;
}

int
dns_mx_rdata_parse(const unsigned char *rdata, size_t len, int *pref_r, char *name,
    size_t namesize)
{
	if (len < 3 || namesize == 0 || wire_name(rdata, len, 2, name, namesize) < 0)
		return -1;
	*pref_r = (rdata[0] << 8) | rdata[1];
	return 0;
}

struct mx_rec {
	int pref;
	uint32_t shuffle;
	char name[256];
};

static int
mx_cmp(const void *a, const void *b)
{
	const struct mx_rec *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->shuffle < y->shuffle ? -1 : x->shuffle > y->shuffle;
}

static void
lookup_add_host(struct dns_lookup *lk, const char *name, int pref)
{
	lk->hosts = xrealloc(lk->hosts, (lk->nhosts + 1) * sizeof(*lk->hosts));
	struct dns_host *h = &lk->hosts[lk->nhosts++];
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->preference = pref;
}

/* MX answer → hosts sorted by preference (equal ones shuffled). */
static void
mx_answer(struct dns_lookup *lk, const struct ub_result *res)
{
	size_t n = 0, nroot = 0, nbad = 0;
	while (res->data[n] != NULL)
		n++;
	struct mx_rec *recs = xcalloc(n > 0 ? n : 1, sizeof(*recs));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *d = (const unsigned char *)res->data[i];
		size_t len = res->len[i] < 0 ? 0 : (size_t)res->len[i];
		if (dns_mx_rdata_parse(d, len, &recs[k].pref, recs[k].name, sizeof(recs[k].name)) < 0) {
			nbad++;
			continue;
		}
		if (recs[k].name[0] == '\0') {
			nroot++;
			continue;
		}
		recs[k].shuffle = arc4random();
		k++;
	}
	if (k == 0 && nroot > 0)
		lookup_fail(lk, DNS_NULL_MX, "%s does not accept mail (null MX)", lk->name);
	else if (k == 0)
		lookup_fail(lk, DNS_TEMPFAIL, "malformed MX records for %s", lk->name);
	else {
		qsort(recs, k, sizeof(*recs), mx_cmp);
		for (size_t i = 0; i < k && i < DNS_MAX_HOSTS; i++)
			lookup_add_host(lk, recs[i].name, recs[i].pref);
	}
	if (nbad > 0)
		log_warn("dns_bad_mx", "domain=%s bad=%zu", log_str(lk->name), nbad);
	free(recs);
}

static void
query_mx_done(struct dns_lookup *lk, int err, const struct ub_result *res)
{
	if (err != 0 || res == NULL || (res->rcode != 0 && !res->nxdomain)) {
		lookup_fail(lk, DNS_TEMPFAIL, "temporary failure in MX lookup for %s", lk->name);
	} else if (res->nxdomain) {
		lookup_fail(lk, DNS_NXDOMAIN, "Host or domain name not found: %s", lk->name);
	} else if (!res->havedata) {
		lk->mx_fallback = 1;
		lookup_add_host(lk, lk->name, 0);
	} else {
		mx_answer(lk, res);
	}
	if (lk->nhosts > 0)
		lookup_start_addrs(lk);
	else
		lookup_finish(lk);
}

static void
query_done(void *mydata, int err, struct ub_result *res)
{
	struct dns_query *q = mydata;
	struct dns_lookup *lk = q->lk;
	q->active = 0;
	lk->pending--;
	if (q->rrtype == RR_MX) {
		query_mx_done(lk, err, res);
	} else if (err != 0 || res == NULL) {
		lk->tempfail = 1;
	} else if (res->nxdomain) {
		lk->nxdomain = 1;
	} else if (res->rcode == RCODE_SERVFAIL || res->rcode != 0) {
		lk->tempfail = 1;
	} else if (res->havedata) {
		host_add_result(&lk->hosts[q->host], q->rrtype, res);
	}
	if (res != NULL)
		ub_resolve_free(res);
	if (q->rrtype != RR_MX && lk->pending == 0 && !lk->finished) {
		lookup_assemble(lk);
		lookup_finish(lk);
	}
}

static struct dns_lookup *
lookup_new(struct dns_resolver *r, const char *name, dns_mx_cb *cb, void *arg)
{
	static const struct timeval tmo = { DNS_TIMEOUT_SECONDS, 0 };
	struct dns_lookup *lk = xcalloc(1, sizeof(*lk));
	lk->r = r;
	lk->cb = cb;
	lk->arg = arg;
	snprintf(lk->name, sizeof(lk->name), "%s", name);
	size_t len = strlen(lk->name);
	if (len > 1 && lk->name[len - 1] == '.')
		lk->name[len - 1] = '\0';
	lk->status = DNS_TEMPFAIL;
	lk->timer = evtimer_new(r->srv->base, lookup_timer, lk);
	if (lk->timer == NULL) {
		log_error("dns_timer", "error=%s", "evtimer_new");
		abort();
	}
	evtimer_add(lk->timer, &tmo);
	lk->next = r->lookups;
	if (r->lookups != NULL)
		r->lookups->prev = lk;
	r->lookups = lk;
	return lk;
}

/* "127.0.0.1", "::1" or "[::1]": one host, no DNS.  Returns 1 if literal. */
static int
lookup_literal(struct dns_lookup *lk, const char *name)
{
	char tmp[256];
	size_t len = strlen(name);
	if (len >= 2 && name[0] == '[' && name[len - 1] == ']' && len - 2 < sizeof(tmp)) {
		memcpy(tmp, name + 1, len - 2);
		tmp[len - 2] = '\0';
	} else {
		snprintf(tmp, sizeof(tmp), "%s", name);
	}
	unsigned char a[16];
	int family;
	if (inet_pton(AF_INET, tmp, a) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, tmp, a) == 1)
		family = AF_INET6;
	else
		return 0;
	lookup_add_host(lk, tmp, 0);
	host_add_addr(&lk->hosts[0], family, a);
	lk->status = DNS_OK;
	lookup_finish(lk);
	return 1;
}

static int
name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 0x20 || c >= 0x7f)
			return 0;
	}
	return 1;
}

void
dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_lookup *lk = lookup_new(r, domain, cb, arg);
	lk->want_mx = 1;
	if (lookup_literal(lk, domain))
		return;
	if (!name_valid(lk->name)) {
		lookup_fail(lk, DNS_NXDOMAIN, "invalid domain name %s", "");
		lookup_finish(lk);
		return;
	}
	if (lookup_query(lk, lk->name, RR_MX, 0) < 0) {
		lookup_fail(lk, DNS_TEMPFAIL, "cannot send the MX query for %s", lk->name);
		lookup_finish(lk);
	}
}

void
dns_resolve_host(struct dns_resolver *r, const char *name, dns_mx_cb *cb, void *arg)
{
	struct dns_lookup *lk = lookup_new(r, name, cb, arg);
	if (lookup_literal(lk, name))
		return;
	if (!name_valid(lk->name)) {
		lookup_fail(lk, DNS_NXDOMAIN, "invalid host name %s", "");
		lookup_finish(lk);
		return;
	}
	lookup_add_host(lk, lk->name, 0);
	lookup_start_addrs(lk);
}
