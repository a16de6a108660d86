/*
 * store — mailark.db (SQLite, WAL): tenants, domains, routes and relay
 * networks.  Only this module includes sqlite3.h.
 *
 *   struct store *st;
 *   if (store_open(path, &st, &err) < 0) ...
 *   int found = store_domain_tenant(st, "example.com", &tenant);  // 1/0/-1
 *   free(tenant);
 *   store_close(&st);
 *
 * Lookups return 1 (found, *_r allocated: caller frees), 0 (not found) or
 * -1 (database error, logged).  Mutations return 0, or -1 with a human
 * reason in *err_r (caller frees): "tenant 'x' already exists".  Names and
 * domains are stored lower-case.  Used on the event-loop thread; each
 * mutation is one transaction.
 */
#ifndef MAILARK_STORE_STORE_H
#define MAILARK_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct store;

struct store_tenant {
	char *name;
	char *region;
	char *unknown_recipients;   /* "accept" (default) or "reject" */
	time_t created;
};

struct store_domain {
	char *domain;
	char *tenant;
	char *route;                /* route URL or NULL */
};

struct store_relay {
	char *tenant;
	char *cidr;                 /* canonical text */
};

int store_open(const char *path, struct store **st_r, char **err_r);
void store_close(struct store **st);

int store_tenant_add(struct store *st, const char *name, const char *region, char **err_r);
int store_tenant_remove(struct store *st, const char *name, char **err_r);
int store_tenant_get(struct store *st, const char *name, struct store_tenant *t_r);
/* *list_r: array of *n_r tenants, free with store_tenants_free(). */
int store_tenant_list(struct store *st, struct store_tenant **list_r, size_t *n_r);
void store_tenants_free(struct store_tenant *list, size_t n);

int store_domain_add(struct store *st, const char *tenant, const char *domain, char **err_r);
int store_domain_remove(struct store *st, const char *tenant, const char *domain, char **err_r);
/* tenant NULL: every domain. */
int store_domain_list(struct store *st, const char *tenant, struct store_domain **list_r,
    size_t *n_r);
void store_domains_free(struct store_domain *list, size_t n);
int store_domain_tenant(struct store *st, const char *domain, char **tenant_r);

/* The domain must belong to a tenant.  url already validated by route_parse. */
int store_route_set(struct store *st, const char *domain, const char *url, char **err_r);
int store_route_get(struct store *st, const char *domain, char **url_r);

int store_relay_add(struct store *st, const char *tenant, const char *cidr, char **err_r);
int store_relay_remove(struct store *st, const char *tenant, const char *cidr, char **err_r);
int store_relay_list(struct store *st, const char *tenant, struct store_relay **list_r,
    size_t *n_r);
void store_relays_free(struct store_relay *list, size_t n);
/* The tenant whose relay network contains the address, if any. */
int store_relay_tenant(struct store *st, const struct sockaddr *sa, char **tenant_r);

#endif
