/*
 * directory_ldap — the blocking LDAP side of directory sync and sign-in
 * (only src/directory/ includes ldap.h).  Worker-pool threads only: each
 * call opens its own connection, binds, works and unbinds.
 *
 *   struct directory_read r;
 *   if (directory_ldap_read(&settings, &r, &err) == 0) { ...; directory_read_clear(&r); }
 *
 * Everything returned is allocated and owned by the caller.
 */
#ifndef MAILARK_DIRECTORY_DIRECTORY_LDAP_H
#define MAILARK_DIRECTORY_DIRECTORY_LDAP_H

#include <stddef.h>

#include "directory/directory_map.h"

struct store_directory;

/* One full read: users with their group names resolved, and every group name. */
struct directory_read {
	struct directory_user *users;
	size_t nusers;
	char **groups;
	size_t ngroups;
	char **errors;              /* entries that could not be used */
	size_t nerrors;
	size_t nskipped;            /* entries without any mail address */
};

int directory_ldap_read(const struct store_directory *d, struct directory_read *r_r,
    char **err_r);
void directory_read_clear(struct directory_read *r);
/* 1 the password is right, 0 wrong / unknown / disabled (*err_r says which), -1 error. */
int directory_ldap_auth(const struct store_directory *d, const char *address,
    const char *password, char **err_r);
/* ldap:// or ldaps:// with a host: 1 / 0. */
int directory_ldap_url_valid(const char *url);

#endif
