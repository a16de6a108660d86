/*
 * dns_sync.c — blocking lookups for worker threads over one libunbound
 * context (see dns_sync.h), each with a deadline.  The context resolves in
 * its own thread (ub_ctx_async); a caller starts its query with
 * ub_resolve_async() and waits on ub_fd(), and whichever waiting thread
 * runs ub_process() (one at a time, under `lock`) delivers the answers of
 * all of them.  A query not answered by the deadline is cancelled and
 * reported as DNS_TEMPFAIL, so no worker (and no shutdown waiting for
 * one) hangs on an unreachable resolver.
 */
#include "dns/dns_sync.h"

#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unbound.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/mem.h"

#define DNS_SYNC_TIMEOUT_MS 10000
#define DNS_SYNC_SLICE_MS 50

struct dns_sync {
	struct ub_ctx *ctx;
	pthread_mutex_t lock;        /* one thread at a time in ub_process() */
	int aborted;                 /* dns_sync_abort(): atomic */
};

/* One query being waited for; filled by query_done() under d->lock. */
struct sync_query {
	int done;
	int err;
	struct ub_result *res;
};

struct dns_sync *
dns_sync_new(const struct config *cfg, char **err_r)
{
	struct dns_sync *d = xcalloc(1, sizeof(*d));
	d->ctx = ub_ctx_create();
	if (d->ctx == NULL) {
		*err_r = xstrdup("dns_sync: cannot create a libunbound context");
		free(d);
		return NULL;
	}
	int err = 0;
	if (dns_ctx_configure(d->ctx, cfg, err_r) < 0 || (err = ub_ctx_async(d->ctx, 1)) != 0) {
		if (err != 0)
			*err_r = buf_printf("dns_sync: async mode: %s", ub_strerror(err));
		ub_ctx_delete(d->ctx);
		free(d);
		return NULL;
	}
	pthread_mutex_init(&d->lock, NULL);
	return d;
}

void
dns_sync_free(struct dns_sync **dp)
{
	struct dns_sync *d = *dp;
	if (d == NULL)
		return;
	ub_ctx_delete(d->ctx);
	pthread_mutex_destroy(&d->lock);
	free(d);
	*dp = NULL;
}

void
dns_sync_abort(struct dns_sync *d)
{
	if (d != NULL)
		__atomic_store_n(&d->aborted, 1, __ATOMIC_RELAXED);
}

void
dns_records_free(struct dns_records *rr)
{
	for (size_t i = 0; i < rr->n; i++)
		free(rr->items[i]);
	free(rr->items);
	memset(rr, 0, sizeof(*rr));
}

/* Decodes a domain name in uncompressed wire format (libunbound expands them). */
static char *
wire_name(const unsigned char *p, size_t len)
{
	struct buf b = BUF_INIT;
	size_t i = 0;
	while (i < len && p[i] != 0) {
		size_t l = p[i++];
		if (l > 63 || i + l > len)
			break;
		if (b.len > 0)
			buf_append(&b, ".", 1);
		buf_append(&b, (const char *)p + i, l);
		i += l;
	}
	return buf_steal(&b);
}

static char *
txt_joined(const unsigned char *p, size_t len)
{
	struct buf b = BUF_INIT;
	size_t i = 0;
	while (i < len) {
		size_t l = p[i++];
		if (i + l > len)
			l = len - i;
		buf_append(&b, (const char *)p + i, l);
		i += l;
	}
	return buf_steal(&b);
}

static char *
rdata_text(int type, const unsigned char *p, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	switch (type) {
	case DNS_SYNC_A:
		if (len != 4 || inet_ntop(AF_INET, p, addr, sizeof(addr)) == NULL)
			return NULL;
		return xstrdup(addr);
	case DNS_SYNC_AAAA:
		if (len != 16 || inet_ntop(AF_INET6, p, addr, sizeof(addr)) == NULL)
			return NULL;
		return xstrdup(addr);
	case DNS_SYNC_TXT:
		return txt_joined(p, len);
	case DNS_SYNC_MX:
		return len > 2 ? wire_name(p + 2, len - 2) : NULL;
	default:
		return wire_name(p, len);
	}
}

static int64_t
clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
query_done(void *arg, int err, struct ub_result *res)
{
	struct sync_query *q = arg;
	q->err = err;
	q->res = res;
	q->done = 1;
}

/* Delivers whatever answers are ready; 1 when q's has come. */
static int
sync_process(struct dns_sync *d, struct sync_query *q)
{
	pthread_mutex_lock(&d->lock);
	if (!q->done)
		(void)ub_process(d->ctx);
	int done = q->done;
	pthread_mutex_unlock(&d->lock);
	return done;
}

/* Waits for q until the deadline; on timeout cancels it.  1 answered, 0 not. */
static int
sync_wait(struct dns_sync *d, struct sync_query *q, int id, int64_t deadline)
{
	while (!sync_process(d, q)) {
		int64_t left = deadline - clock_ms();
		if (__atomic_load_n(&d->aborted, __ATOMIC_RELAXED))
			left = 0;
		if (left <= 0) {
			pthread_mutex_lock(&d->lock);
			int cancelled = q->done ? 0 : ub_cancel(d->ctx, id) == 0;
			pthread_mutex_unlock(&d->lock);
			if (cancelled)
				return 0;
			/* the answer is on its way to a ub_process(): take it */
			deadline = clock_ms() + DNS_SYNC_SLICE_MS;
		}
		struct pollfd pfd = { ub_fd(d->ctx), POLLIN, 0 };
		(void)poll(&pfd, 1, left < DNS_SYNC_SLICE_MS ? (int)(left > 0 ? left : 1)
		    : DNS_SYNC_SLICE_MS);
	}
	return 1;
}

static enum dns_status
resolve(struct dns_sync *d, const char *name, int type, struct ub_result **res_r)
{
	*res_r = NULL;
	if (name == NULL || name[0] == '\0' || strlen(name) > 253)
		return DNS_NXDOMAIN;
	if (__atomic_load_n(&d->aborted, __ATOMIC_RELAXED))
		return DNS_TEMPFAIL;
	struct sync_query q = { 0, 0, NULL };
	int id = 0;
	int err = ub_resolve_async(d->ctx, name, type, 1 /* IN */, &q, query_done, &id);
	if (err != 0 || !sync_wait(d, &q, id, clock_ms() + DNS_SYNC_TIMEOUT_MS) || q.err != 0 ||
	    q.res == NULL) {
		if (q.res != NULL)
			ub_resolve_free(q.res);
		return DNS_TEMPFAIL;
	}
	*res_r = q.res;
	struct ub_result *res = q.res;
	if (res->rcode == 3)
		return DNS_NXDOMAIN;
	if (res->rcode != 0 || res->bogus)
		return DNS_TEMPFAIL;
	return DNS_OK;
}

enum dns_status
dns_sync_query(struct dns_sync *d, const char *name, enum dns_sync_type type,
    struct dns_records *rr)
{
	memset(rr, 0, sizeof(*rr));
	struct ub_result *res;
	enum dns_status st = resolve(d, name, (int)type, &res);
	if (st == DNS_OK && res->havedata) {
		size_t n = 0;
		while (res->data[n] != NULL)
			n++;
		rr->items = xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++) {
			char *t = rdata_text((int)type, (const unsigned char *)res->data[i],
			    (size_t)res->len[i]);
			if (t != NULL)
				rr->items[rr->n++] = t;
		}
		rr->secure = res->secure;
	}
	if (res != NULL)
		ub_resolve_free(res);
	return st;
}

enum dns_status
dns_sync_query_raw(struct dns_sync *d, const char *name, int type, unsigned char ***rdata_r,
    size_t **lens_r, size_t *n_r)
{
	*rdata_r = NULL;
	*lens_r = NULL;
	*n_r = 0;
	struct ub_result *res;
	enum dns_status st = resolve(d, name, type, &res);
	if (st == DNS_OK && res->havedata) {
		size_t n = 0;
		while (res->data[n] != NULL)
			n++;
		*rdata_r = xcalloc(n + 1, sizeof(unsigned char *));
		*lens_r = xcalloc(n + 1, sizeof(size_t));
		for (size_t i = 0; i < n; i++) {
			(*lens_r)[i] = (size_t)res->len[i];
			(*rdata_r)[i] = xmalloc((size_t)res->len[i] + 1);
			memcpy((*rdata_r)[i], res->data[i], (size_t)res->len[i]);
		}
		*n_r = n;
	}
	if (res != NULL)
		ub_resolve_free(res);
	return st;
}
