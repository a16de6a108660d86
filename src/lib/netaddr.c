#include "lib/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strutil.h"

int
netaddr_parse_hostport(const char *s, char *host, size_t hostsize, int *port_r)
{
	const char *colon;
	size_t hlen;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		hlen = (size_t)(close - s - 1);
		s++;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (hlen >= hostsize)
		return -1;
	uint64_t port;
	if (str_parse_u64(colon + 1, &port) < 0 || port == 0 || port > 65535)
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	*port_r = (int)port;
	return 0;
}

int
netaddr_to_sockaddr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len_r)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (*host == '\0' || strcmp(host, "*") == 0)
		host = "0.0.0.0";
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len_r = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*sin6);
		return 0;
	}
	return -1;
}

void
netaddr_format(const struct sockaddr *sa, char *out, size_t size)
{
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)size);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)size);
		else
			inet_ntop(AF_INET6, a, out, (socklen_t)size);
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(out, size, "local");
	} else {
		snprintf(out, size, "unknown");
	}
}

static void
cidr_mask(unsigned char *addr, int bytes, int prefix)
{
	for (int i = 0; i < bytes; i++) {
		int bits = prefix - i * 8;
		if (bits >= 8)
			continue;
		addr[i] &= bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
	}
}

int
cidr_parse(const char *s, struct cidr *c)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(c, 0, sizeof(*c));
	int maxbits;
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		maxbits = 128;
	} else {
		return -1;
	}
	uint64_t prefix = (uint64_t)maxbits;
	if (slash != NULL && (str_parse_u64(slash + 1, &prefix) < 0 || prefix > (uint64_t)maxbits))
		return -1;
	c->prefix = (int)prefix;
	cidr_mask(c->addr, maxbits / 8, c->prefix);
	return 0;
}

int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	unsigned char addr[16];
	int family, bytes;
	if (sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(addr, &a6->s6_addr[12], 4);
			family = AF_INET;
		} else {
			memcpy(addr, a6, 16);
			family = AF_INET6;
		}
	} else {
		return 0;
	}
	if (family != c->family)
		return 0;
	bytes = family == AF_INET ? 4 : 16;
	cidr_mask(addr, bytes, c->prefix);
	return memcmp(addr, c->addr, (size_t)bytes) == 0;
}

void
cidr_format(const struct cidr *c, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	inet_ntop(c->family, c->addr, host, sizeof(host));
	snprintf(out, size, "%s/%d", host, c->prefix);
}
