/*
 * netaddr — listen addresses ("127.0.0.1:2525", "[::1]:2525") and CIDR
 * networks ("192.0.2.0/24", "2001:db8::/32") with matching of a peer's
 * sockaddr, IPv4-mapped IPv6 included.  No allocation.
 */
#ifndef MAILARK_LIB_NETADDR_H
#define MAILARK_LIB_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

struct cidr {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char addr[16];   /* network bytes, masked */
	int prefix;
};

/* "host:port" or "[v6]:port" → host (without brackets) and port. */
int netaddr_parse_hostport(const char *s, char *host, size_t hostsize, int *port_r);
/* Fills a sockaddr for a numeric host and port; -1 if host is not numeric. */
int netaddr_to_sockaddr(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len_r);
/* Numeric address text of a sockaddr (no port); IPv4-mapped shown as IPv4. */
void netaddr_format(const struct sockaddr *sa, char *out, size_t size);
int cidr_parse(const char *s, struct cidr *c);
int cidr_match(const struct cidr *c, const struct sockaddr *sa);
/* Canonical text ("192.0.2.0/24"). */
void cidr_format(const struct cidr *c, char *out, size_t size);

#endif
