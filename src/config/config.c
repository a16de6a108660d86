#include "config/config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"

enum config_kind { CK_STRING, CK_SIZE, CK_DURATION, CK_COUNT, CK_BOOL, CK_LISTEN, CK_HOSTPORT,
	CK_LOGLEVEL, CK_LOGFORMAT, CK_INT };

struct config_key {
	const char *section;
	const char *name;
	enum config_kind kind;
	size_t offset;
};

#define K(sec, name, kind, field) { sec, name, kind, offsetof(struct config, field) }

static const struct config_key config_keys[] = {
	K("server", "data_dir", CK_STRING, data_dir),
	K("server", "hostname", CK_STRING, hostname),
	K("server", "worker_threads", CK_INT, worker_threads),
	K("server", "regions", CK_STRING, regions),
	K("smtp", "listen", CK_LISTEN, smtp_listen),
	K("smtp", "max_message_size", CK_SIZE, max_message_size),
	K("smtp", "max_recipients", CK_COUNT, max_recipients),
	K("smtp", "max_connections", CK_COUNT, max_connections),
	K("smtp", "max_connections_per_ip", CK_COUNT, max_connections_per_ip),
	K("smtp", "max_line_length", CK_SIZE, max_line_length),
	K("smtp", "max_data_line_length", CK_SIZE, max_data_line_length),
	K("smtp", "max_errors", CK_COUNT, max_errors),
	K("smtp", "command_timeout", CK_DURATION, command_timeout),
	K("smtp", "data_timeout", CK_DURATION, data_timeout),
	K("smtp", "starttls", CK_BOOL, smtp_starttls),
	K("smtp", "banner", CK_STRING, banner),
	K("http", "listen", CK_HOSTPORT, http_listen),
	K("tls", "cert", CK_STRING, tls_cert),
	K("tls", "key", CK_STRING, tls_key),
	K("queue", "max_lifetime", CK_DURATION, max_lifetime),
	K("queue", "retry_min", CK_DURATION, retry_min),
	K("queue", "retry_max", CK_DURATION, retry_max),
	K("queue", "retry_factor", CK_COUNT, retry_factor),
	K("queue", "destination_concurrency", CK_COUNT, destination_concurrency),
	K("queue", "max_concurrency", CK_COUNT, max_concurrency),
	K("queue", "max_rcpts_per_transaction", CK_COUNT, max_rcpts_per_transaction),
	K("delivery", "smarthost", CK_HOSTPORT, smarthost),
	K("delivery", "mx_port", CK_COUNT, mx_port),
	K("delivery", "dns_resolver", CK_STRING, dns_resolver),
	K("delivery", "connect_timeout", CK_DURATION, connect_timeout),
	K("delivery", "timeout", CK_DURATION, smtp_client_timeout),
	K("delivery", "helo_name", CK_STRING, helo_name),
	K("archive", "enabled", CK_BOOL, archive_enabled),
	K("archive", "purge_interval", CK_DURATION, archive_purge_interval),
	K("imap", "listen", CK_STRING, imap_listen),
	K("imap", "tls_listen", CK_STRING, imap_tls_listen),
	K("imap", "max_connections", CK_COUNT, imap_max_connections),
	K("imap", "max_connections_per_ip", CK_COUNT, imap_max_connections_per_ip),
	K("imap", "max_literal", CK_SIZE, imap_max_literal),
	K("imap", "max_line_length", CK_SIZE, imap_max_line_length),
	K("imap", "login_timeout", CK_DURATION, imap_login_timeout),
	K("imap", "idle_timeout", CK_DURATION, imap_idle_timeout),
	K("submission", "listen", CK_STRING, submission_listen),
	K("continuity", "probe_interval", CK_DURATION, probe_interval),
	K("continuity", "probe_timeout", CK_DURATION, probe_timeout),
	K("continuity", "probe_failures", CK_COUNT, probe_failures),
	K("hygiene", "enabled", CK_BOOL, hygiene_enabled),
	K("hygiene", "threads", CK_COUNT, hygiene_threads),
	K("hygiene", "clamd_socket", CK_STRING, clamd_socket),
	K("hygiene", "clamd_timeout", CK_DURATION, clamd_timeout),
	K("hygiene", "milters", CK_STRING, milters),
	K("hygiene", "milter_timeout", CK_DURATION, milter_timeout),
	K("hygiene", "rspamd_url", CK_STRING, rspamd_url),
	K("hygiene", "dnsbl_reject", CK_STRING, dnsbl_reject),
	K("hygiene", "digest_hour", CK_COUNT, digest_hour),
	K("delivery", "tls_ca_file", CK_STRING, tls_ca_file),
	K("delivery", "mta_sts_port", CK_COUNT, mta_sts_port),
	K("log", "level", CK_LOGLEVEL, log_level),
	K("log", "format", CK_LOGFORMAT, log_format),
};

struct config_parse {
	struct config *cfg;
	char *error;            /* reason of the first error, without position */
	int listen_seen;        /* first [smtp] listen replaces the default */
};

static void
config_defaults(struct config *cfg)
{
	char host[256];
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->data_dir = xstrdup("./var");
	cfg->hostname = xstrdup(host);
	cfg->worker_threads = 2;
	cfg->regions = xstrdup("default");
	cfg->smtp_listen[0] = xstrdup("127.0.0.1:2525");
	cfg->smtp_listen_count = 1;
	cfg->max_message_size = 50ULL * 1024 * 1024;
	cfg->max_recipients = 1000;
	cfg->max_connections = 1000;
	cfg->max_connections_per_ip = 50;
	cfg->max_line_length = 2048;
	cfg->max_data_line_length = 1024 * 1024;
	cfg->max_errors = 10;
	cfg->command_timeout = 300;
	cfg->data_timeout = 600;
	cfg->smtp_starttls = 1;
	cfg->banner = xstrdup("mailark ESMTP");
	cfg->http_listen = xstrdup("127.0.0.1:8025");
	cfg->max_lifetime = 5 * 86400;
	cfg->retry_min = 60;
	cfg->retry_max = 4 * 3600;
	cfg->retry_factor = 2;
	cfg->destination_concurrency = 20;
	cfg->max_concurrency = 200;
	cfg->max_rcpts_per_transaction = 100;
	cfg->mx_port = 25;
	cfg->connect_timeout = 30;
	cfg->smtp_client_timeout = 300;
	cfg->archive_enabled = 1;
	cfg->archive_purge_interval = 86400;
	cfg->imap_listen = xstrdup("127.0.0.1:1143");
	cfg->imap_tls_listen = xstrdup("127.0.0.1:1993");
	cfg->imap_max_connections = 500;
	cfg->imap_max_connections_per_ip = 50;
	cfg->imap_max_literal = 50ULL * 1024 * 1024;
	cfg->imap_max_line_length = 65536;
	cfg->imap_login_timeout = 60;
	cfg->imap_idle_timeout = 1800;
	cfg->submission_listen = xstrdup("127.0.0.1:5587");
	cfg->probe_interval = 30;
	cfg->probe_timeout = 10;
	cfg->probe_failures = 3;
	cfg->hygiene_enabled = 1;
	cfg->hygiene_threads = 4;
	cfg->clamd_socket = xstrdup("");
	cfg->clamd_timeout = 60;
	cfg->milters = xstrdup("");
	cfg->milter_timeout = 30;
	cfg->rspamd_url = xstrdup("");
	cfg->dnsbl_reject = xstrdup("");
	cfg->digest_hour = 7;
	cfg->mta_sts_port = 443;
	cfg->log_level = LOGL_INFO;
	cfg->log_format = LOGF_TEXT;
}

static int
config_fail(struct config_parse *p, const char *fmt, const char *a, const char *b)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a, b);
	free(p->error);
	p->error = buf_steal(&e);
	return 0;
}

static int
config_set_listen(struct config_parse *p, const char *value)
{
	struct config *cfg = p->cfg;
	if (!p->listen_seen) {
		for (int i = 0; i < cfg->smtp_listen_count; i++)
			xfree(&cfg->smtp_listen[i]);
		cfg->smtp_listen_count = 0;
		p->listen_seen = 1;
	}
	if (cfg->smtp_listen_count >= CONFIG_MAX_LISTEN)
		return config_fail(p, "too many listen addresses (at most %s)%s", "8", "");
	cfg->smtp_listen[cfg->smtp_listen_count++] = xstrdup(value);
	return 1;
}

static int
config_set(struct config_parse *p, const struct config_key *k, const char *value)
{
	void *field = (char *)p->cfg + k->offset;
	char host[256];
	int port, b;
	switch (k->kind) {
	case CK_STRING:
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 1;
	case CK_HOSTPORT:
		if (netaddr_parse_hostport(value, host, sizeof(host), &port) < 0)
			return config_fail(p, "%s: '%s' is not host:port", k->name, value);
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 1;
	case CK_LISTEN:
		if (netaddr_parse_hostport(value, host, sizeof(host), &port) < 0)
			return config_fail(p, "%s: '%s' is not host:port", k->name, value);
		return config_set_listen(p, value);
	case CK_SIZE:
		if (str_parse_size(value, field) < 0)
			return config_fail(p, "%s: '%s' is not a size (e.g. 10M)", k->name, value);
		return 1;
	case CK_DURATION:
		if (str_parse_duration(value, field) < 0)
			return config_fail(p, "%s: '%s' is not a duration (e.g. 30s, 5m, 4h, 5d)",
			    k->name, value);
		return 1;
	case CK_COUNT:
		if (str_parse_u64(value, field) < 0)
			return config_fail(p, "%s: '%s' is not a whole number", k->name, value);
		return 1;
	case CK_INT: {
		uint64_t v;
		if (str_parse_u64(value, &v) < 0 || v < 1 || v > 64)
			return config_fail(p, "%s: '%s' must be a number from 1 to 64", k->name, value);
		*(int *)field = (int)v;
		return 1;
	}
	case CK_BOOL:
		if (str_parse_bool(value, &b) < 0)
			return config_fail(p, "%s: '%s' is not yes or no", k->name, value);
		*(int *)field = b;
		return 1;
	case CK_LOGLEVEL:
		if (log_level_parse(value, field) < 0)
			return config_fail(p, "%s: '%s' is not debug, info, warn or error", k->name, value);
		return 1;
	case CK_LOGFORMAT:
		if (log_format_parse(value, field) < 0)
			return config_fail(p, "%s: '%s' is not text or json", k->name, value);
		return 1;
	}
	return 0;
}

static int
config_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct config_parse *p = user;
	if (p->error != NULL)
		return 0;
	if (name == NULL)   /* a bare section header: checked when keys arrive */
		return 1;
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
		const struct config_key *k = &config_keys[i];
		if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0)
			return config_set(p, k, value);
	}
	if (section[0] == '\0')
		return config_fail(p, "key '%s' outside of any [section]%s", name, "");
	return config_fail(p, "unknown key '%s' in [%s]", name, section);
}

static void
config_derive(struct config *cfg)
{
	struct buf b = BUF_INIT;
	if (cfg->tls_cert == NULL) {
		buf_appendf(&b, "%s/tls/cert.pem", cfg->data_dir);
		cfg->tls_cert = buf_steal(&b);
	}
	if (cfg->tls_key == NULL) {
		buf_appendf(&b, "%s/tls/key.pem", cfg->data_dir);
		cfg->tls_key = buf_steal(&b);
	}
	if (cfg->helo_name == NULL)
		cfg->helo_name = xstrdup(cfg->hostname);
}

static int
config_check(const struct config *cfg, const char *path, char **err_r)
{
	const char *why = NULL;
	if (cfg->retry_min == 0 || cfg->retry_max < cfg->retry_min)
		why = "[queue] retry_min must be positive and at most retry_max";
	else if (cfg->retry_factor < 1)
		why = "[queue] retry_factor must be at least 1";
	else if (cfg->max_message_size < 1024)
		why = "[smtp] max_message_size must be at least 1k";
	else if (cfg->max_line_length < 512)
		why = "[smtp] max_line_length must be at least 512 (RFC 5321)";
	else if (cfg->max_data_line_length < 1000)
		why = "[smtp] max_data_line_length must be at least 1000 (RFC 5321)";
	else if (cfg->max_recipients < 1 || cfg->max_connections < 1 ||
	    cfg->max_connections_per_ip < 1 || cfg->destination_concurrency < 1 ||
	    cfg->max_concurrency < 1 || cfg->max_rcpts_per_transaction < 1)
		why = "limits must be at least 1";
	else if (cfg->mx_port < 1 || cfg->mx_port > 65535)
		why = "[delivery] mx_port must be a port number";
	else if (cfg->data_dir[0] == '\0')
		why = "[server] data_dir must not be empty";
	if (why == NULL)
		return 0;
	struct buf e = BUF_INIT;
	buf_appendf(&e, "%s: %s", path ? path : "defaults", why);
	*err_r = buf_steal(&e);
	return -1;
}

int
config_load(const char *path, struct config **cfg_r, char **err_r)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	config_defaults(cfg);
	if (path != NULL) {
		cfg->path = xstrdup(path);
		struct config_parse p = { cfg, NULL, 0 };
		FILE *f = fopen(path, "r");
		if (f == NULL) {
			struct buf e = BUF_INIT;
			buf_appendf(&e, "%s: cannot open: %s", path, strerror(errno));
			*err_r = buf_steal(&e);
			config_free(&cfg);
			return -1;
		}
		int line = ini_parse_file(f, config_ini_handler, &p);
		fclose(f);
		if (line != 0) {
			struct buf e = BUF_INIT;
			buf_appendf(&e, "%s:%d: %s", path, line,
			    p.error ? p.error : "syntax error (expected [section] or key = value)");
			free(p.error);
			*err_r = buf_steal(&e);
			config_free(&cfg);
			return -1;
		}
	}
	config_derive(cfg);
	if (config_check(cfg, path, err_r) < 0) {
		config_free(&cfg);
		return -1;
	}
	*cfg_r = cfg;
	return 0;
}

void
config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;
	if (cfg == NULL)
		return;
	for (int i = 0; i < cfg->smtp_listen_count; i++)
		free(cfg->smtp_listen[i]);
	char **strings[] = { &cfg->path, &cfg->data_dir, &cfg->hostname, &cfg->regions,
		&cfg->banner, &cfg->http_listen, &cfg->tls_cert, &cfg->tls_key, &cfg->smarthost,
		&cfg->dns_resolver, &cfg->helo_name, &cfg->imap_listen, &cfg->imap_tls_listen,
		&cfg->submission_listen, &cfg->clamd_socket, &cfg->milters, &cfg->rspamd_url,
		&cfg->dnsbl_reject, &cfg->tls_ca_file };
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		free(*strings[i]);
	free(cfg);
	*cfgp = NULL;
}

int
config_region_served(const struct config *cfg, const char *region)
{
	size_t n = strlen(region);
	const char *p = cfg->regions;
	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		const char *end = p;
		while (*end != '\0' && *end != ',')
			end++;
		const char *last = end;
		while (last > p && last[-1] == ' ')
			last--;
		if ((size_t)(last - p) == n && strncasecmp(p, region, n) == 0)
			return 1;
		p = end;
	}
	return 0;
}
