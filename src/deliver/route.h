/*
 * route — where mail for a domain goes: "smtp://HOST:PORT[?tls=required]", or
 * "archive:" — nowhere but the archive (a journaling domain: Exchange / Office
 * 365 journal reports addressed there are archived, unwrapped, and not
 * delivered anywhere).
 *
 *   struct route r;
 *   if (route_parse(url, &r, &why) < 0) ...   // why: static string
 *
 * No allocation; HOST is a name or address ([v6] in brackets in the URL).
 */
#ifndef MAILARK_DELIVER_ROUTE_H
#define MAILARK_DELIVER_ROUTE_H

enum route_tls { ROUTE_TLS_OPPORTUNISTIC, ROUTE_TLS_REQUIRED, ROUTE_TLS_NONE };

struct route {
	char host[256];
	int port;
	enum route_tls tls;
	int archive_only;           /* "archive:" */
};

int route_parse(const char *url, struct route *r, const char **why_r);
/* Canonical URL text. */
void route_format(const struct route *r, char *out, unsigned long size);

#endif
