/*
 * directory_ldap.c — libldap: connect (optionally STARTTLS), simple bind,
 * paged subtree searches for users and groups, membership resolution, and
 * the two binds of a sign-in.  Runs on worker threads only.
 */
#include "directory/directory_ldap.h"

#include <ldap.h>
#include <stdlib.h>
#include <string.h>

#include "directory/directory.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "store/store.h"

#define DL_PAGE_SIZE 500
#define DL_TIMEOUT_SECS 15
#define DL_MAX_ENTRIES 200000

/* A group as read: its normalised DN, its name and its members' normalised DNs. */
struct dl_group {
	char *dn;
	char *name;
	char **members;
	size_t nmembers;
};

struct dl_ctx {
	struct directory_read *r;
	struct dl_group *groups;
	size_t ngroups;
	size_t seen;
};

typedef void dl_entry_fn(LDAP *ld, LDAPMessage *e, struct dl_ctx *ctx);

static void
dl_err(char **err_r, const char *what, const char *detail, int rc)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, "%s%s%s: %s", what, detail ? " " : "", detail ? detail : "",
	    ldap_err2string(rc));
	*err_r = buf_steal(&e);
}

int
directory_ldap_url_valid(const char *url)
{
	LDAPURLDesc *desc = NULL;
	if (str_prefix_ci(url, "ldap://") == 0 && str_prefix_ci(url, "ldaps://") == 0)
		return 0;
	if (ldap_url_parse(url, &desc) != LDAP_URL_SUCCESS)
		return 0;
	int ok = desc->lud_host != NULL && desc->lud_host[0] != '\0';
	ldap_free_urldesc(desc);
	return ok;
}

static int
dl_bind(LDAP *ld, const char *dn, const char *password)
{
	struct berval cred;
	cred.bv_val = (char *)password;
	cred.bv_len = strlen(password);
	return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

/* Opens a connection to the tenant's directory, STARTTLS if asked. */
static int
dl_open(const struct store_directory *d, LDAP **ld_r, char **err_r)
{
	LDAP *ld = NULL;
	int rc = ldap_initialize(&ld, d->url);
	if (rc != LDAP_SUCCESS) {
		dl_err(err_r, "invalid directory URL", d->url, rc);
		return -1;
	}
	int v3 = LDAP_VERSION3;
	struct timeval tv = { DL_TIMEOUT_SECS, 0 };
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS) {
		dl_err(err_r, "cannot set LDAP options for", d->url, LDAP_OTHER);
		ldap_unbind_ext_s(ld, NULL, NULL);
		return -1;
	}
	if (d->starttls && (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
		dl_err(err_r, "STARTTLS failed with", d->url, rc);
		ldap_unbind_ext_s(ld, NULL, NULL);
		return -1;
	}
	*ld_r = ld;
	return 0;
}

/* Connects and binds as the tenant's service account. */
static int
dl_connect(const struct store_directory *d, LDAP **ld_r, char **err_r)
{
	LDAP *ld;
	if (dl_open(d, &ld, err_r) < 0)
		return -1;
	int rc = dl_bind(ld, d->bind_dn, d->bind_password);
	if (rc != LDAP_SUCCESS) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "bind as %s to %s failed: %s", d->bind_dn, d->url,
		    ldap_err2string(rc));
		*err_r = buf_steal(&e);
		ldap_unbind_ext_s(ld, NULL, NULL);
		return -1;
	}
	*ld_r = ld;
	return 0;
}

/* The values of attr as NUL-terminated strings (values holding a NUL are skipped). */
static char **
dl_values(LDAP *ld, LDAPMessage *e, const char *attr, size_t *n_r)
{
	struct berval **v = ldap_get_values_len(ld, e, attr);
	size_t n = v != NULL ? (size_t)ldap_count_values_len(v) : 0, k = 0;
	char **out = xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		if (memchr(v[i]->bv_val, '\0', v[i]->bv_len) == NULL)
			out[k++] = xstrndup(v[i]->bv_val, v[i]->bv_len);
	if (v != NULL)
		ldap_value_free_len(v);
	*n_r = k;
	return out;
}

static void
dl_values_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* A DN in one spelling, so that memberOf and member values compare equal. */
static char *
dl_dn_norm(const char *dn)
{
	char *out = NULL;
	if (ldap_dn_normalize(dn, LDAP_DN_FORMAT_LDAP, &out, LDAP_DN_FORMAT_LDAPV3) ==
	    LDAP_SUCCESS && out != NULL) {
		char *copy = str_lower(xstrdup(out));
		ldap_memfree(out);
		return copy;
	}
	return str_lower(xstrdup(dn));
}

static char *
dl_first(char **v, size_t n)
{
	return n > 0 ? v[0] : NULL;
}

static void
dl_add_error(struct directory_read *r, char *msg)
{
	r->errors = xrealloc(r->errors, (r->nerrors + 1) * sizeof(*r->errors));
	r->errors[r->nerrors++] = msg;
}

static void
dl_user_entry(LDAP *ld, LDAPMessage *e, struct dl_ctx *ctx)
{
	size_t nmail, nproxy, ndisp, nuac, nmo;
	char *dn = ldap_get_dn(ld, e);
	char **mail = dl_values(ld, e, "mail", &nmail);
	char **proxy = dl_values(ld, e, "proxyAddresses", &nproxy);
	char **disp = dl_values(ld, e, "displayName", &ndisp);
	char **uac = dl_values(ld, e, "userAccountControl", &nuac);
	char **mo = dl_values(ld, e, "memberOf", &nmo);
	struct directory_attrs a = { dn, dl_first(mail, nmail), (const char *const *)proxy,
		nproxy, dl_first(disp, ndisp), dl_first(uac, nuac), (const char *const *)mo, nmo };
	struct directory_user u;
	char *err = NULL;
	int rc = directory_map_user(&a, &u, &err);
	if (rc == 1) {
		ctx->r->nskipped++;
	} else if (rc == 0) {
		for (size_t i = 0; i < u.nmember_of; i++) {
			char *norm = dl_dn_norm(u.member_of[i]);
			free(u.member_of[i]);
			u.member_of[i] = norm;
		}
		free(u.dn);
		u.dn = dl_dn_norm(dn ? dn : "");
		struct directory_read *r = ctx->r;
		r->users = xrealloc(r->users, (r->nusers + 1) * sizeof(*r->users));
		r->users[r->nusers++] = u;
	} else {
		dl_add_error(ctx->r, err);
	}
	dl_values_free(mail, nmail);
	dl_values_free(proxy, nproxy);
	dl_values_free(disp, ndisp);
	dl_values_free(uac, nuac);
	dl_values_free(mo, nmo);
	ldap_memfree(dn);
}

static void
dl_group_entry(LDAP *ld, LDAPMessage *e, struct dl_ctx *ctx)
{
	size_t ncn, nmem;
	char *dn = ldap_get_dn(ld, e);
	char **cn = dl_values(ld, e, "cn", &ncn);
	char **mem = dl_values(ld, e, "member", &nmem);
	if (dn != NULL && ncn > 0) {
		struct dl_group g = { dl_dn_norm(dn), xstrdup(cn[0]), mem, nmem };
		for (size_t i = 0; i < nmem; i++) {
			char *norm = dl_dn_norm(mem[i]);
			free(mem[i]);
			mem[i] = norm;
		}
		ctx->groups = xrealloc(ctx->groups, (ctx->ngroups + 1) * sizeof(*ctx->groups));
		ctx->groups[ctx->ngroups++] = g;
		mem = NULL;
	}
	if (mem != NULL)
		dl_values_free(mem, nmem);
	dl_values_free(cn, ncn);
	ldap_memfree(dn);
}

/* One page: runs fn for each entry; 0 with *cookie updated, -1 with *err_r. */
static int
dl_search_page(LDAP *ld, const char *base, const char *filter, char **attrs,
    struct berval *cookie, dl_entry_fn *fn, struct dl_ctx *ctx, char **err_r)
{
	LDAPControl *page = NULL, *ctrls[2] = { NULL, NULL };
	LDAPMessage *res = NULL;
	struct timeval tv = { DL_TIMEOUT_SECS, 0 };
	int rc = ldap_create_page_control(ld, DL_PAGE_SIZE, cookie->bv_len ? cookie : NULL, 0,
	    &page);
	if (rc != LDAP_SUCCESS) {
		dl_err(err_r, "cannot page the search", NULL, rc);
		return -1;
	}
	ctrls[0] = page;
	rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, ctrls, NULL, &tv,
	    LDAP_NO_LIMIT, &res);
	ldap_control_free(page);
	if (rc != LDAP_SUCCESS) {
		dl_err(err_r, "search failed: base", base, rc);
		ldap_msgfree(res);
		return -1;
	}
	for (LDAPMessage *e = ldap_first_entry(ld, res); e != NULL; e = ldap_next_entry(ld, e)) {
		if (++ctx->seen > DL_MAX_ENTRIES)
			break;
		fn(ld, e, ctx);
	}
	LDAPControl **rctrls = NULL;
	int result = LDAP_SUCCESS;
	rc = ldap_parse_result(ld, res, &result, NULL, NULL, NULL, &rctrls, 1);
	ber_memfree(cookie->bv_val);
	cookie->bv_val = NULL;
	cookie->bv_len = 0;
	LDAPControl *pc = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL);
	ber_int_t count = 0;
	if (rc == LDAP_SUCCESS && pc != NULL)
		rc = ldap_parse_pageresponse_control(ld, pc, &count, cookie);
	ldap_controls_free(rctrls);
	if (rc != LDAP_SUCCESS || result != LDAP_SUCCESS) {
		dl_err(err_r, "search failed: base", base, rc != LDAP_SUCCESS ? rc : result);
		return -1;
	}
	if (ctx->seen > DL_MAX_ENTRIES) {
		dl_err(err_r, "too many entries under", base, LDAP_SIZELIMIT_EXCEEDED);
		return -1;
	}
	return 0;
}

static int
dl_search(LDAP *ld, const char *base, const char *filter, char **attrs, dl_entry_fn *fn,
    struct dl_ctx *ctx, char **err_r)
{
	struct berval cookie = { 0, NULL };
	int rc;
	do {
		rc = dl_search_page(ld, base, filter, attrs, &cookie, fn, ctx, err_r);
	} while (rc == 0 && cookie.bv_len > 0);
	ber_memfree(cookie.bv_val);
	return rc;
}

static int
dl_has(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

/* A user is in a group when its memberOf names the group or the group's member names it. */
static void
dl_resolve_groups(struct dl_ctx *ctx)
{
	struct directory_read *r = ctx->r;
	r->groups = xcalloc(ctx->ngroups + 1, sizeof(*r->groups));
	for (size_t g = 0; g < ctx->ngroups; g++) {
		struct dl_group *grp = &ctx->groups[g];
		if (!dl_has(r->groups, r->ngroups, grp->name))
			r->groups[r->ngroups++] = xstrdup(grp->name);
		for (size_t i = 0; i < r->nusers; i++) {
			struct directory_user *u = &r->users[i];
			if (dl_has(u->groups, u->ngroups, grp->name))
				continue;
			if (!dl_has(u->member_of, u->nmember_of, grp->dn) &&
			    !dl_has(grp->members, grp->nmembers, u->dn))
				continue;
			u->groups = xrealloc(u->groups, (u->ngroups + 1) * sizeof(*u->groups));
			u->groups[u->ngroups++] = xstrdup(grp->name);
		}
	}
}

static void
dl_groups_free(struct dl_ctx *ctx)
{
	for (size_t g = 0; g < ctx->ngroups; g++) {
		free(ctx->groups[g].dn);
		free(ctx->groups[g].name);
		dl_values_free(ctx->groups[g].members, ctx->groups[g].nmembers);
	}
	free(ctx->groups);
}

int
directory_ldap_read(const struct store_directory *d, struct directory_read *r_r, char **err_r)
{
	static char *user_attrs[] = { "mail", "proxyAddresses", "displayName",
		"userAccountControl", "memberOf", NULL };
	static char *group_attrs[] = { "cn", "member", NULL };
	LDAP *ld;
	memset(r_r, 0, sizeof(*r_r));
	if (dl_connect(d, &ld, err_r) < 0)
		return -1;
	struct dl_ctx ctx = { r_r, NULL, 0, 0 };
	const char *uf = d->user_filter ? d->user_filter : DIRECTORY_DEFAULT_USER_FILTER;
	const char *gf = d->group_filter ? d->group_filter : DIRECTORY_DEFAULT_GROUP_FILTER;
	int rc = dl_search(ld, d->base_dn, uf, user_attrs, dl_user_entry, &ctx, err_r);
	if (rc == 0) {
		ctx.seen = 0;
		rc = dl_search(ld, d->base_dn, gf, group_attrs, dl_group_entry, &ctx, err_r);
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
	if (rc == 0)
		dl_resolve_groups(&ctx);
	dl_groups_free(&ctx);
	if (rc < 0)
		directory_read_clear(r_r);
	return rc;
}

void
directory_read_clear(struct directory_read *r)
{
	for (size_t i = 0; i < r->nusers; i++)
		directory_user_clear(&r->users[i]);
	free(r->users);
	dl_values_free(r->groups, r->ngroups);
	dl_values_free(r->errors, r->nerrors);
	memset(r, 0, sizeof(*r));
}

/* The DN of the one user with this address: 1 (*dn_r), 0 none / several / disabled, -1. */
static int
dl_find_user(LDAP *ld, const struct store_directory *d, const char *address, char **dn_r,
    char **err_r)
{
	static char *attrs[] = { "userAccountControl", NULL };
	struct buf f = BUF_INIT;
	LDAPMessage *res = NULL;
	struct timeval tv = { DL_TIMEOUT_SECS, 0 };
	directory_login_filter(&f, d->user_filter ? d->user_filter : DIRECTORY_DEFAULT_USER_FILTER,
	    address);
	int rc = ldap_search_ext_s(ld, d->base_dn, LDAP_SCOPE_SUBTREE, buf_cstr(&f), attrs, 0,
	    NULL, NULL, &tv, 2, &res);
	buf_free(&f);
	int n = rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED ? ldap_count_entries(ld, res) : -1;
	int ret = -1;
	if (n < 0) {
		dl_err(err_r, "user lookup failed: base", d->base_dn, rc);
	} else if (n != 1) {
		*err_r = xstrdup(n == 0 ? "no directory user with this address" :
		    "several directory users have this address");
		ret = 0;
	} else {
		LDAPMessage *e = ldap_first_entry(ld, res);
		size_t nuac;
		char **uac = dl_values(ld, e, "userAccountControl", &nuac);
		char *dn = ldap_get_dn(ld, e);
		if (nuac > 0 && directory_uac_disabled(uac[0]) != 0) {
			*err_r = xstrdup("the directory account is disabled");
			ret = 0;
		} else if (dn != NULL) {
			*dn_r = xstrdup(dn);
			ret = 1;
		} else {
			*err_r = xstrdup("the directory entry has no DN");
		}
		ldap_memfree(dn);
		dl_values_free(uac, nuac);
	}
	ldap_msgfree(res);
	return ret;
}

int
directory_ldap_auth(const struct store_directory *d, const char *address, const char *password,
    char **err_r)
{
	LDAP *ld;
	char *dn = NULL;
	if (password[0] == '\0') {      /* an empty password would be an anonymous bind */
		*err_r = xstrdup("empty password");
		return 0;
	}
	if (dl_connect(d, &ld, err_r) < 0)
		return -1;
	int ret = dl_find_user(ld, d, address, &dn, err_r);
	if (ret == 1) {
		int rc = dl_bind(ld, dn, password);
		if (rc == LDAP_INVALID_CREDENTIALS) {
			*err_r = xstrdup("wrong password");
			ret = 0;
		} else if (rc != LDAP_SUCCESS) {
			dl_err(err_r, "bind failed for", dn, rc);
			ret = -1;
		}
	}
	free(dn);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return ret;
}
