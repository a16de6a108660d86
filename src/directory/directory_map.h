/*
 * directory_map — the pure parts of directory sync: LDAP filter building
 * (RFC 4515 escaping), proxyAddresses parsing ("SMTP:" primary, "smtp:"
 * alias, other types ignored), userAccountControl and the mapping of one
 * directory entry's attributes to a struct directory_user.  No I/O, no
 * libldap: directory_ldap.c feeds it values and unit tests call it directly.
 *
 *   struct directory_user u;
 *   if (directory_map_user(&attrs, &u, &err) == 0) { ...; directory_user_clear(&u); }
 *
 * Addresses come out lower-cased.  Everything returned is allocated; the
 * caller frees it (directory_user_clear(), free()).
 */
#ifndef MAILARK_DIRECTORY_DIRECTORY_MAP_H
#define MAILARK_DIRECTORY_DIRECTORY_MAP_H

#include <stddef.h>

#include "lib/buf.h"

#define DIRECTORY_FILTER_MAX 1024
#define DIRECTORY_ADDRESS_MAX 254

/* The attributes of one directory user entry, as read (any may be NULL). */
struct directory_attrs {
	const char *dn;
	const char *mail;
	const char *const *proxy;    /* proxyAddresses values */
	size_t nproxy;
	const char *display_name;
	const char *uac;             /* userAccountControl, decimal */
	const char *const *member_of;
	size_t nmember_of;
};

struct directory_user {
	char *dn;
	char *address;               /* primary address */
	char *display_name;          /* or NULL */
	int disabled;
	char **aliases;              /* never the primary, no duplicates */
	size_t naliases;
	char **member_of;            /* group DNs as read */
	size_t nmember_of;
	char **groups;               /* names of its groups, filled by the reader */
	size_t ngroups;
};

/* Appends s with the RFC 4515 special characters escaped as \XX. */
void directory_filter_escape(struct buf *out, const char *s);
/* A filter an administrator gave: parenthesised, balanced, printable. 1 ok / 0 not. */
int directory_filter_valid(const char *f);
/* (&USER_FILTER(|(mail=A)(proxyAddresses=smtp:A))): finds a user by any address. */
void directory_login_filter(struct buf *out, const char *user_filter, const char *address);

/* A plausible mail address (local@domain, printable, no spaces): 1 / 0. */
int directory_address_valid(const char *a);
/*
 * One proxyAddresses value: 1 with *address_r (lower-cased, caller frees) and
 * *primary_r for SMTP addresses; 0 for other types (X500:, SIP:, ...); -1
 * for an SMTP entry whose address is malformed.
 */
int directory_proxy_parse(const char *value, char **address_r, int *primary_r);
/* userAccountControl: 1 when bit 2 (ACCOUNTDISABLE) is set, 0 if not, -1 malformed. */
int directory_uac_disabled(const char *uac);
/*
 * 0 with *u_r; 1 when the entry has no address at all (a service or
 * computer account: skipped, *u_r empty); -1 with *err_r (caller frees)
 * when an address or userAccountControl is malformed.
 */
int directory_map_user(const struct directory_attrs *a, struct directory_user *u_r,
    char **err_r);
void directory_user_clear(struct directory_user *u);

#endif
