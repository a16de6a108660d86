/*
 * main.c — mailark's entry point: global options, configuration, and the
 * life of the daemon (`mailark serve`).
 *
 * serve builds a struct server in this order and tears it down in reverse:
 *   lock file → event base → worker pool → TLS → store → queue → DNS →
 *   scheduler → SMTP → control socket → HTTP
 * SIGTERM/SIGINT: stop accepting (SMTP answers 421), let commits in flight
 * finish (at most MAIN_DRAIN_SECS), stop the scheduler, free, exit 0.
 * Start-up failures are logged and exit 1; a bad configuration exits 2.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "config/config.h"
#include "control/control.h"
#include "deliver/scheduler.h"
#include "directory/directory.h"
#include "dns/dns.h"
#include "http/http.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/sys.h"
#include "lib/worker.h"
#include "queue/queue.h"
#include "archive/archive.h"
#include "archive/archive_job.h"
#include "continuity/alert.h"
#include "continuity/cmbox.h"
#include "continuity/continuity.h"
#include "continuity/probe.h"
#include "imap/imap_server.h"
#include "control/control_handlers.h"
#include "deliver/tls_policy.h"
#include "hygiene/hygiene.h"
#include "hygiene/quarantine.h"
#include "server.h"
#include "smtp/smtp_server.h"
#include "store/store.h"
#include "tls/tls.h"

#define MAIN_DRAIN_SECS 10
#define MAIN_DEFAULT_CONFIG "./mailark.conf"

struct main_daemon {
	struct server srv;
	int lock_fd;
	struct event *sigterm, *sigint, *drain;
	struct timespec drain_start;
};

/* ---- shutdown ------------------------------------------------------------ */

static double
main_elapsed(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (now.tv_nsec - since->tv_nsec) / 1e9;
}

/* Every 50 ms while draining: done when no commit or session is left. */
static void
main_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct main_daemon *d = arg;
	struct server *srv = &d->srv;
	unsigned jobs = worker_pending(srv->workers);
	unsigned sessions = srv->smtp ? smtp_server_sessions(srv->smtp) : 0;
	if (srv->submission != NULL)
		sessions += smtp_server_sessions(srv->submission);
	if (srv->imap != NULL)
		sessions += imap_server_sessions(srv->imap);
	if ((jobs == 0 && sessions == 0) || main_elapsed(&d->drain_start) > MAIN_DRAIN_SECS) {
		log_info("shutdown_drained", "pending_jobs=%u sessions=%u", jobs, sessions);
		event_base_loopbreak(srv->base);
	}
}

static void
main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct main_daemon *d = arg;
	struct server *srv = &d->srv;
	if (srv->shutting_down) {
		log_info("shutdown", "signal=%d state=already_stopping", (int)sig);
		return;
	}
	srv->shutting_down = 1;
	log_info("shutdown", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
	tls_policy_shutdown(srv);
	smtp_server_shutdown(srv->smtp);
	if (srv->submission != NULL)
		smtp_server_shutdown(srv->submission);
	if (srv->imap != NULL)
		imap_server_shutdown(srv->imap);
	clock_gettime(CLOCK_MONOTONIC, &d->drain_start);
	struct timeval tv = { 0, 50 * 1000 };
	d->drain = event_new(srv->base, -1, EV_PERSIST, main_drain_cb, d);
	if (d->drain == NULL || event_add(d->drain, &tv) < 0)
		event_base_loopbreak(srv->base);
}

static void
main_teardown(struct main_daemon *d)
{
	struct server *srv = &d->srv;
	probe_stop(&srv->probe);
	imap_server_free(&srv->imap);
	scheduler_stop(&srv->sched);
	tls_policy_stop(srv);
	alert_cancel_all(srv);   /* no alert callback may run once continuity is gone */
	continuity_stop(&srv->continuity);
	http_stop(&srv->http);
	control_free(&srv->control);
	control_archive_timer_stop(srv);
	archive_jobs_free(&srv->archive_jobs);   /* waits for running jobs (they audit) */
	audit_stop(srv);         /* signs a last checkpoint */
	hygiene_stop(srv);       /* finishes running scans: their sessions still exist */
	smtp_server_free(&srv->smtp);
	smtp_server_free(&srv->submission);
	quarantine_close(srv);
	dns_resolver_free(&srv->dns);
	worker_pool_free(&srv->workers);
	directory_stop(srv);     /* after the pool: no sync is still running */
	cmbox_close(&srv->cmbox);
	archive_close(&srv->archive);     /* after the pool: no ingest is still running */
	queue_close(&srv->queue);
	store_close(&srv->store);
	tls_contexts_free(&srv->tls);
	if (d->drain != NULL)
		event_free(d->drain);
	if (d->sigterm != NULL)
		event_free(d->sigterm);
	if (d->sigint != NULL)
		event_free(d->sigint);
	if (srv->base != NULL)
		event_base_free(srv->base);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
}

/* ---- start-up -------------------------------------------------------------- */

/* One daemon per data directory: an exclusive flock held for our lifetime. */
static int
main_lock(struct main_daemon *d)
{
	struct buf p = BUF_INIT;
	buf_appendf(&p, "%s/mailark.lock", d->srv.cfg->data_dir);
	d->lock_fd = open(buf_cstr(&p), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	int rc = -1;
	if (d->lock_fd < 0)
		log_error("start_failed", "what=lock path=%s error=%s", log_str(buf_cstr(&p)),
		    log_str(strerror(errno)));
	else if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0)
		log_error("start_failed", "what=lock path=%s error=%s", log_str(buf_cstr(&p)),
		    log_str(errno == EWOULDBLOCK ?
		    "another mailark is already running on this data directory" : strerror(errno)));
	else
		rc = 0;
	buf_free(&p);
	return rc;
}

static int
main_fail(const char *what, char *err)
{
	log_error("start_failed", "what=%s error=%s", what, log_str(err ? err : "unknown"));
	free(err);
	return -1;
}

static int
main_open_store(struct server *srv)
{
	struct buf p = BUF_INIT;
	char *err = NULL;
	buf_appendf(&p, "%s/mailark.db", srv->cfg->data_dir);
	int rc = store_open(buf_cstr(&p), &srv->store, &err);
	buf_free(&p);
	return rc < 0 ? main_fail("store", err) : 0;
}

/* Everything that listens or works, in dependency order. */
static int
main_start_modules(struct server *srv)
{
	char *err = NULL;
	if (tls_contexts_new(srv->cfg->tls_cert, srv->cfg->tls_key, &srv->tls, &err) < 0)
		return main_fail("tls", err);
	if (main_open_store(srv) < 0)
		return -1;
	if (audit_start(srv, &err) < 0)
		return main_fail("audit", err);
	if (directory_start(srv) < 0)
		return main_fail("directory", xstrdup("cannot load directory settings"));
	if (archive_open(srv->cfg->data_dir, &srv->archive, &err) < 0)
		return main_fail("archive", err);
	srv->archive_jobs = archive_jobs_new();
	if (queue_open(srv, &srv->queue, &err) < 0)
		return main_fail("queue", err);
	if (dns_resolver_new(srv, &srv->dns, &err) < 0)
		return main_fail("dns", err);
	if (tls_policy_start(srv, &err) < 0)
		return main_fail("tls policy", err);
	if (quarantine_open(srv, &err) < 0)
		return main_fail("quarantine", err);
	if (hygiene_start(srv, &err) < 0)
		return main_fail("hygiene", err);
	if (scheduler_start(srv, &srv->sched, &err) < 0)
		return main_fail("scheduler", err);
	if (continuity_start(srv, &srv->continuity, &err) < 0)
		return main_fail("continuity", err);
	if (cmbox_open(srv->archive, srv->cfg->data_dir, &srv->cmbox, &err) < 0)
		return main_fail("continuity mailboxes", err);
	if (smtp_server_start(srv, &srv->smtp, &err) < 0)
		return main_fail("smtp", err);
	if (submission_server_start(srv, &srv->submission, &err) < 0)
		return main_fail("submission", err);
	if (imap_server_start(srv, &srv->imap, &err) < 0)
		return main_fail("imap", err);
	if (probe_start(srv, &srv->probe, &err) < 0)
		return main_fail("probe", err);
	if (control_start(srv, &srv->control, &err) < 0)
		return main_fail("control", err);
	if (control_archive_timer_start(srv) < 0)
		return main_fail("archive", xstrdup("cannot create the purge timer"));
	if (http_start(srv, &srv->http, &err) < 0)
		return main_fail("http", err);
	return 0;
}

static int
main_signals(struct main_daemon *d)
{
	d->sigterm = evsignal_new(d->srv.base, SIGTERM, main_signal_cb, d);
	d->sigint = evsignal_new(d->srv.base, SIGINT, main_signal_cb, d);
	if (d->sigterm == NULL || d->sigint == NULL || evsignal_add(d->sigterm, NULL) < 0 ||
	    evsignal_add(d->sigint, NULL) < 0)
		return main_fail("signals", xstrdup("cannot install signal handlers"));
	return 0;
}

static void
main_log_listening(const struct config *cfg)
{
	for (int i = 0; i < cfg->smtp_listen_count; i++)
		log_info("listening", "smtp=%s", log_str(cfg->smtp_listen[i]));
	if (cfg->submission_listen[0] != '\0')
		log_info("listening", "submission=%s", log_str(cfg->submission_listen));
	if (cfg->imap_listen[0] != '\0')
		log_info("listening", "imap=%s", log_str(cfg->imap_listen));
	if (cfg->imap_tls_listen[0] != '\0')
		log_info("listening", "imaps=%s", log_str(cfg->imap_tls_listen));
	log_info("listening", "http=%s", log_str(cfg->http_listen));
	log_info("listening", "control=%s/control.sock", log_str(cfg->data_dir));
}

static int
main_serve_prepare(struct main_daemon *d)
{
	struct server *srv = &d->srv;
	char *err = NULL, *missing = NULL;
	if (sys_fault_configure(getenv("MAILARK_FAULTS"), &err) < 0)
		return main_fail("MAILARK_FAULTS", err);
	if (!cli_initialised(srv->cfg, &missing)) {
		log_error("start_failed", "what=data_dir missing=%s error=%s", log_str(missing),
		    log_str("data directory not initialised: run mailark init"));
		free(missing);
		return -1;
	}
	if (main_lock(d) < 0)
		return -1;
	if (evthread_use_pthreads() < 0)
		return main_fail("libevent", xstrdup("evthread_use_pthreads failed"));
	srv->base = event_base_new();
	if (srv->base == NULL)
		return main_fail("libevent", xstrdup("event_base_new failed"));
	srv->workers = worker_pool_new(srv->base, srv->cfg->worker_threads);
	if (main_signals(d) < 0 || main_start_modules(srv) < 0)
		return -1;
	return 0;
}

static int
main_serve(struct config *cfg)
{
	struct main_daemon d;
	memset(&d, 0, sizeof(d));
	d.lock_fd = -1;
	d.srv.cfg = cfg;
	signal(SIGPIPE, SIG_IGN);
	log_info("starting", "version=%s data_dir=%s pid=%ld", MAILARK_VERSION,
	    log_str(cfg->data_dir), (long)getpid());
	if (main_serve_prepare(&d) < 0) {
		main_teardown(&d);
		return 1;
	}
	main_log_listening(cfg);
	int rc = event_base_dispatch(d.srv.base);
	if (rc < 0)
		log_error("loop_failed", "error=%s", log_str("event_base_dispatch failed"));
	log_info("stopping", "pid=%ld", (long)getpid());
	main_teardown(&d);
	log_info("stopped", "pid=%ld", (long)getpid());
	return rc < 0 ? 1 : 0;
}

/* ---- command line ---------------------------------------------------------- */

static int
main_load_config(const char *path, struct config **cfg_r)
{
	char *err = NULL;
	if (path == NULL && access(MAIN_DEFAULT_CONFIG, F_OK) == 0)
		path = MAIN_DEFAULT_CONFIG;
	if (config_load(path, cfg_r, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return -1;
	}
	log_configure((*cfg_r)->log_level, (*cfg_r)->log_format);
	return 0;
}

/* Global options before the command; returns the command's index or -1 (exit with *rc_r). */
static int
main_global_options(int argc, char **argv, const char **config_r, int *rc_r)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("mailark %s\n", MAILARK_VERSION);
			*rc_r = 0;
			return -1;
		}
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			cli_usage(stdout);
			*rc_r = 0;
			return -1;
		}
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			*config_r = argv[++i];
			continue;
		}
		fprintf(stderr, "mailark: %s '%s'\n\n", strcmp(argv[i], "-c") == 0 ?
		    "missing file after" : "unknown option", argv[i]);
		cli_usage(stderr);
		*rc_r = 2;
		return -1;
	}
	if (i >= argc) {
		fprintf(stderr, "mailark: missing command\n\n");
		cli_usage(stderr);
		*rc_r = 2;
		return -1;
	}
	return i;
}

int
main(int argc, char **argv)
{
	const char *config_path = NULL;
	int rc = 0;
	/* Mail, keys and databases are nobody else's business: files we create are 0600. */
	umask(0077);
	int cmd = main_global_options(argc, argv, &config_path, &rc);
	if (cmd < 0)
		return rc;
	if (!cli_is_command(argv[cmd])) {
		fprintf(stderr, "mailark: unknown command '%s'\n\n", argv[cmd]);
		cli_usage(stderr);
		return 2;
	}
	if (cli_wants_help(argc - cmd, argv + cmd))
		return cli_help(argc - cmd, argv + cmd);
	struct config *cfg;
	if (main_load_config(config_path, &cfg) < 0)
		return 2;
	if (strcmp(argv[cmd], "init") == 0)
		rc = argc - cmd > 1 ? (cli_help(1, argv + cmd), 2) : cli_init_run(cfg);
	else if (strcmp(argv[cmd], "serve") == 0)
		rc = argc - cmd > 1 ? (cli_help(1, argv + cmd), 2) : main_serve(cfg);
	else
		rc = cli_admin_run(cfg, argc - cmd, argv + cmd);
	config_free(&cfg);
	return rc;
}
