#include "deliver/route.h"

#include <stdio.h>
#include <string.h>

#include "lib/netaddr.h"

int
route_parse(const char *url, struct route *r, const char **why_r)
{
	static const char scheme[] = "smtp://";
	char hostport[300];
	memset(r, 0, sizeof(*r));
	r->tls = ROUTE_TLS_OPPORTUNISTIC;
	if (strcmp(url, "archive:") == 0) {
		r->archive_only = 1;
		return 0;
	}
	if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
		*why_r = "route must be smtp://HOST:PORT or archive:";
		return -1;
	}
	url += sizeof(scheme) - 1;
	const char *q = strchr(url, '?');
	size_t len = q ? (size_t)(q - url) : strlen(url);
	if (len > 0 && url[len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(hostport)) {
		*why_r = "route needs HOST:PORT";
		return -1;
	}
	memcpy(hostport, url, len);
	hostport[len] = '\0';
	if (strchr(hostport, ':') == NULL || (hostport[0] != '[' && strchr(hostport, ':') != strrchr(hostport, ':'))) {
		*why_r = "route needs HOST:PORT (IPv6 in brackets)";
		return -1;
	}
	if (netaddr_parse_hostport(hostport, r->host, sizeof(r->host), &r->port) < 0 ||
	    r->host[0] == '\0') {
		*why_r = "route needs a valid HOST:PORT";
		return -1;
	}
	if (q != NULL) {
		if (strcmp(q, "?tls=required") == 0)
			r->tls = ROUTE_TLS_REQUIRED;
		else if (strcmp(q, "?tls=opportunistic") == 0)
			r->tls = ROUTE_TLS_OPPORTUNISTIC;
		else if (strcmp(q, "?tls=none") == 0)
			r->tls = ROUTE_TLS_NONE;
		else {
			*why_r = "unknown route option (tls=required|opportunistic|none)";
			return -1;
		}
	}
	return 0;
}

void
route_format(const struct route *r, char *out, unsigned long size)
{
	if (r->archive_only) {
		snprintf(out, size, "archive:");
		return;
	}
	const char *opt = r->tls == ROUTE_TLS_REQUIRED ? "?tls=required" :
	    r->tls == ROUTE_TLS_NONE ? "?tls=none" : "";
	if (strchr(r->host, ':') != NULL)
		snprintf(out, size, "smtp://[%s]:%d%s", r->host, r->port, opt);
	else
		snprintf(out, size, "smtp://%s:%d%s", r->host, r->port, opt);
}
