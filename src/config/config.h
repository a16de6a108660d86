/*
 * config — mailark.conf, an INI file, parsed into one struct config.
 *
 *   struct config *cfg;
 *   char *err;
 *   if (config_load(path, &cfg, &err) < 0) { fputs(err, stderr); exit(2); }
 *   ...
 *   config_free(&cfg);
 *
 * config_load(NULL, …) gives the embedded defaults.  Errors read
 * "file:line: reason".  Every key and its default is documented in the
 * README's configuration reference; config_defaults() is the one place the
 * defaults live.  The struct is read-only after loading.
 */
#ifndef MAILARK_CONFIG_CONFIG_H
#define MAILARK_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "lib/log.h"

#define CONFIG_MAX_LISTEN 8

struct config {
	char *path;                      /* file it came from, or NULL */

	/* [server] */
	char *data_dir;                  /* "./var" */
	char *hostname;                  /* gethostname() */
	int worker_threads;              /* 2 */
	char *regions;                   /* "default": comma list this node serves */

	/* [smtp] */
	char *smtp_listen[CONFIG_MAX_LISTEN];
	int smtp_listen_count;           /* default one: 127.0.0.1:2525 */
	uint64_t max_message_size;       /* 50M */
	uint64_t max_recipients;         /* 1000 */
	uint64_t max_connections;        /* 1000 */
	uint64_t max_connections_per_ip; /* 50 */
	uint64_t max_line_length;        /* 2048: command lines */
	uint64_t max_data_line_length;   /* 1M: lines inside DATA/BDAT */
	uint64_t max_errors;             /* 10: protocol errors before 421 */
	uint64_t command_timeout;        /* 300 s */
	uint64_t data_timeout;           /* 600 s */
	int smtp_starttls;               /* yes */
	char *banner;                    /* "mailark ESMTP" */

	/* [http] */
	char *http_listen;               /* "127.0.0.1:8025" */

	/* [tls] */
	char *tls_cert;                  /* data_dir/tls/cert.pem */
	char *tls_key;                   /* data_dir/tls/key.pem */

	/* [queue] */
	uint64_t max_lifetime;           /* 5d */
	uint64_t retry_min;              /* 60 s: first retry delay */
	uint64_t retry_max;              /* 4h: backoff ceiling */
	uint64_t retry_factor;           /* 2: multiplier per attempt */
	uint64_t destination_concurrency;/* 20 connections per destination */
	uint64_t max_concurrency;        /* 200 delivery connections in all */
	uint64_t max_rcpts_per_transaction; /* 100 */

	/* [delivery] */
	char *smarthost;                 /* NULL: MX delivery; "host:port" */
	uint64_t mx_port;                /* 25 */
	char *dns_resolver;              /* NULL: /etc/resolv.conf; "127.0.0.1@5353" */
	uint64_t connect_timeout;        /* 30 s */
	uint64_t smtp_client_timeout;    /* 300 s per reply */
	char *helo_name;                 /* = hostname */

	/* [archive] */
	int archive_enabled;             /* yes: every message is archived before it leaves the queue */
	uint64_t archive_purge_interval; /* 1d: expired, unheld messages purged; 0 = only on command */

	/* [imap] continuity IMAP server (imap/) */
	char *imap_listen;               /* "127.0.0.1:1143": comma list, STARTTLS; "" = none */
	char *imap_tls_listen;           /* "127.0.0.1:1993": comma list, implicit TLS; "" = none */
	uint64_t imap_max_connections;   /* 500 */
	uint64_t imap_max_connections_per_ip; /* 50 */
	uint64_t imap_max_literal;       /* = 50M: APPEND size and any literal */
	uint64_t imap_max_line_length;   /* 65536: a command line outside literals */
	uint64_t imap_login_timeout;     /* 60 s to sign in */
	uint64_t imap_idle_timeout;      /* 1800 s without a command (RFC 3501: at least 30 min) */
	/* [submission] RFC 6409 for continuity users (smtp/) */
	char *submission_listen;         /* "127.0.0.1:5587": comma list; "" = none */
	/* [continuity] */
	uint64_t probe_interval;         /* 30 s between probes of each tenant route */
	uint64_t probe_timeout;          /* 10 s for connect + banner + EHLO */
	uint64_t probe_failures;         /* 3 consecutive failures: the route is down */
	/* [hygiene] the filtering pipeline (hygiene/) */
	int hygiene_enabled;             /* yes: scan every message (each tenant's policy decides what) */
	uint64_t hygiene_threads;        /* 4 scanning threads */
	char *clamd_socket;              /* "": no antivirus; a unix socket path (Debian: /run/clamav/clamd.ctl) or host:port */
	uint64_t clamd_timeout;          /* 60 s for one scan */
	char *milters;                   /* "": comma list of inet:HOST:PORT / unix:PATH */
	uint64_t milter_timeout;         /* 30 s per milter reply */
	char *rspamd_url;                /* "": e.g. http://127.0.0.1:11333 (spam.rspamd) */
	char *dnsbl_reject;              /* "": comma list of zones whose listed clients get 554 */
	uint64_t digest_hour;            /* 7: hour (UTC) of the daily quarantine digest */
	/* [delivery] TLS policy (deliver/tls_policy.c) */
	char *tls_ca_file;               /* NULL: the system's CAs, for verified TLS */
	uint64_t mta_sts_port;           /* 443: HTTPS port of mta-sts.DOMAIN policy fetches */
	/* [log] */
	enum log_level log_level;        /* info */
	enum log_format log_format;      /* text */
};

/* Returns 0, or -1 with *err_r ("file:line: reason", caller frees). */
int config_load(const char *path, struct config **cfg_r, char **err_r);
void config_free(struct config **cfg);
/* Is region one of the comma-separated [server] regions this node serves? */
int config_region_served(const struct config *cfg, const char *region);

#endif
