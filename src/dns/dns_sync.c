/*
 * dns_sync.c — blocking lookups for worker threads over one libunbound
 * context (see dns_sync.h).  libunbound serialises access to a context's
 * cache itself, so ub_resolve() may run on several threads at once.
 */
#include "dns/dns_sync.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <unbound.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/mem.h"

struct dns_sync {
	struct ub_ctx *ctx;
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
	if (dns_ctx_configure(d->ctx, cfg, err_r) < 0) {
		ub_ctx_delete(d->ctx);
		free(d);
		return NULL;
	}
	return d;
}

void
dns_sync_free(struct dns_sync **dp)
{
	struct dns_sync *d = *dp;
	if (d == NULL)
		return;
	ub_ctx_delete(d->ctx);
	free(d);
	*dp = NULL;
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

static enum dns_status
resolve(struct dns_sync *d, const char *name, int type, struct ub_result **res_r)
{
	*res_r = NULL;
	if (name == NULL || name[0] == '\0' || strlen(name) > 253)
		return DNS_NXDOMAIN;
	int err = ub_resolve(d->ctx, name, type, 1 /* IN */, res_r);
	if (err != 0 || *res_r == NULL)
		return DNS_TEMPFAIL;
	struct ub_result *res = *res_r;
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
