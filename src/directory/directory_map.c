/*
 * directory_map.c — filters, proxyAddresses and attribute mapping for
 * directory sync.  Pure functions: see directory_map.h.
 */
#include "directory/directory_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"
#include "lib/strutil.h"

#define DIRECTORY_UAC_DISABLED 0x2

void
directory_filter_escape(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '*' || c == '(' || c == ')' || c == '\\')
			buf_appendf(out, "\\%02x", c);
		else
			buf_append_char(out, (char)c);
	}
}

int
directory_filter_valid(const char *f)
{
	size_t n = strlen(f);
	int depth = 0;
	if (n < 2 || n > DIRECTORY_FILTER_MAX || f[0] != '(' || f[n - 1] != ')')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)f[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c == '\\') {
			i++;            /* an escape: the next two are hex digits */
			if (i >= n)
				return 0;
			continue;
		}
		if (c == '(')
			depth++;
		else if (c == ')' && --depth < 0)
			return 0;
		if (depth == 0 && i + 1 < n)
			return 0;       /* "(a)(b)": two filters, not one */
	}
	return depth == 0;
}

void
directory_login_filter(struct buf *out, const char *user_filter, const char *address)
{
	buf_append_str(out, "(&");
	buf_append_str(out, user_filter);
	buf_append_str(out, "(|(mail=");
	directory_filter_escape(out, address);
	buf_append_str(out, ")(proxyAddresses=smtp:");
	directory_filter_escape(out, address);
	buf_append_str(out, ")))");
}

int
directory_address_valid(const char *a)
{
	size_t n = strlen(a);
	const char *at = strchr(a, '@');
	if (n == 0 || n > DIRECTORY_ADDRESS_MAX || at == NULL || at == a || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL || at[1] == '.' || a[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == ',' || c == ';' ||
		    c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

int
directory_proxy_parse(const char *value, char **address_r, int *primary_r)
{
	if (strncmp(value, "SMTP:", 5) == 0)
		*primary_r = 1;
	else if (str_prefix_ci(value, "smtp:") == 5)
		*primary_r = 0;
	else
		return 0;
	if (!directory_address_valid(value + 5))
		return -1;
	*address_r = str_lower(xstrdup(value + 5));
	return 1;
}

int
directory_uac_disabled(const char *uac)
{
	char *end;
	if (uac == NULL || *uac == '\0')
		return -1;
	errno = 0;
	long long v = strtoll(uac, &end, 10);
	if (errno != 0 || *end != '\0' || v < -2147483648LL || v > 4294967295LL)
		return -1;
	return ((unsigned long long)v & DIRECTORY_UAC_DISABLED) != 0;
}

static int
directory_has(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

static void
directory_add_alias(struct directory_user *u, char *a)
{
	if (strcmp(a, u->address) == 0 || directory_has(u->aliases, u->naliases, a)) {
		free(a);
		return;
	}
	u->aliases = xrealloc(u->aliases, (u->naliases + 1) * sizeof(*u->aliases));
	u->aliases[u->naliases++] = a;
}

/* The "SMTP:" address of the entry, when it has one (caller frees). */
static char *
directory_proxy_primary(const struct directory_attrs *a)
{
	for (size_t i = 0; i < a->nproxy; i++) {
		char *addr;
		int primary;
		if (directory_proxy_parse(a->proxy[i], &addr, &primary) == 1) {
			if (primary)
				return addr;
			free(addr);
		}
	}
	return NULL;
}

static void
directory_map_err(char **err_r, const char *dn, const char *why)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, "%s: %s", dn ? dn : "(no dn)", why);
	*err_r = buf_steal(&e);
}

int
directory_map_user(const struct directory_attrs *a, struct directory_user *u_r,
    char **err_r)
{
	memset(u_r, 0, sizeof(*u_r));
	int disabled = a->uac != NULL ? directory_uac_disabled(a->uac) : 0;
	if (disabled < 0) {
		directory_map_err(err_r, a->dn, "malformed userAccountControl");
		return -1;
	}
	if (a->mail != NULL && directory_address_valid(a->mail))
		u_r->address = str_lower(xstrdup(a->mail));
	else
		u_r->address = directory_proxy_primary(a);
	if (u_r->address == NULL && a->mail == NULL)
		return 1;
	if (u_r->address == NULL) {
		directory_map_err(err_r, a->dn, "malformed mail address");
		return -1;
	}
	u_r->dn = xstrdup(a->dn ? a->dn : "");
	u_r->disabled = disabled;
	if (a->display_name != NULL && a->display_name[0] != '\0')
		u_r->display_name = xstrdup(a->display_name);
	for (size_t i = 0; i < a->nproxy; i++) {
		char *addr;
		int primary;
		if (directory_proxy_parse(a->proxy[i], &addr, &primary) == 1)
			directory_add_alias(u_r, addr);
	}
	u_r->member_of = xcalloc(a->nmember_of ? a->nmember_of : 1, sizeof(char *));
	for (size_t i = 0; i < a->nmember_of; i++)
		u_r->member_of[u_r->nmember_of++] = xstrdup(a->member_of[i]);
	return 0;
}

void
directory_user_clear(struct directory_user *u)
{
	for (size_t i = 0; i < u->naliases; i++)
		free(u->aliases[i]);
	for (size_t i = 0; i < u->nmember_of; i++)
		free(u->member_of[i]);
	for (size_t i = 0; i < u->ngroups; i++)
		free(u->groups[i]);
	free(u->groups);
	free(u->aliases);
	free(u->member_of);
	free(u->dn);
	free(u->address);
	free(u->display_name);
	memset(u, 0, sizeof(*u));
}
