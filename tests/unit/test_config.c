/*
 * Unit tests for src/config: embedded defaults, every kind of bad value
 * reported as "file:line: reason", unknown keys and sections, several
 * [smtp] listen lines.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char conf_path[64];

/* Writes text to a fresh temporary file named in conf_path. */
static const char *
write_conf(const char *text)
{
	snprintf(conf_path, sizeof(conf_path), "/tmp/mailark-test-config-XXXXXX");
	int fd = mkstemp(conf_path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return conf_path;
}

/* Loads text; expects failure with exactly "<path>:<line>: <reason...>". */
static void
expect_error(const char *text, int line, const char *reason_part)
{
	struct config *cfg = NULL;
	char *err = NULL;
	const char *path = write_conf(text);
	int rc = config_load(path, &cfg, &err);
	unlink(path);
	assert_int_equal(rc, -1);
	assert_null(cfg);
	assert_non_null(err);
	char prefix[96];
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, reason_part) == NULL)
		fail_msg("error '%s' is not '%s...%s...'", err, prefix, reason_part);
	free(err);
}

static struct config *
load_ok(const char *text)
{
	struct config *cfg = NULL;
	char *err = NULL;
	const char *path = write_conf(text);
	int rc = config_load(path, &cfg, &err);
	unlink(path);
	if (rc != 0)
		fail_msg("config_load failed: %s", err);
	assert_non_null(cfg);
	return cfg;
}

static void
test_defaults(void **state)
{
	struct config *cfg = NULL;
	char *err = NULL;
	assert_int_equal(config_load(NULL, &cfg, &err), 0);
	assert_null(cfg->path);
	assert_string_equal(cfg->data_dir, "./var");
	assert_int_equal(cfg->smtp_listen_count, 1);
	assert_string_equal(cfg->smtp_listen[0], "127.0.0.1:2525");
	assert_string_equal(cfg->http_listen, "127.0.0.1:8025");
	assert_int_equal(cfg->max_message_size, 50ULL * 1024 * 1024);
	assert_int_equal(cfg->max_recipients, 1000);
	assert_int_equal(cfg->max_connections_per_ip, 50);
	assert_int_equal(cfg->command_timeout, 300);
	assert_int_equal(cfg->max_lifetime, 5 * 86400);
	assert_int_equal(cfg->retry_min, 60);
	assert_int_equal(cfg->retry_max, 4 * 3600);
	assert_int_equal(cfg->worker_threads, 2);
	assert_string_equal(cfg->regions, "default");
	assert_string_equal(cfg->tls_cert, "./var/tls/cert.pem");
	assert_string_equal(cfg->tls_key, "./var/tls/key.pem");
	assert_string_equal(cfg->helo_name, cfg->hostname);
	assert_null(cfg->smarthost);
	assert_int_equal(cfg->log_level, LOGL_INFO);
	assert_int_equal(cfg->log_format, LOGF_TEXT);
	config_free(&cfg);
	assert_null(cfg);
}

static void
test_values_parsed(void **state)
{
	struct config *cfg = load_ok(
	    "[server]\ndata_dir = /srv/mailark\n"
	    "[smtp]\nmax_message_size = 10M\ncommand_timeout = 2m\nstarttls = no\n"
	    "[queue]\nmax_lifetime = 1d\nretry_min = 1s\n"
	    "[delivery]\nsmarthost = 192.0.2.1:587\n"
	    "[log]\nlevel = debug\nformat = json\n");
	assert_string_equal(cfg->data_dir, "/srv/mailark");
	assert_string_equal(cfg->tls_cert, "/srv/mailark/tls/cert.pem");
	assert_int_equal(cfg->max_message_size, 10ULL * 1024 * 1024);
	assert_int_equal(cfg->command_timeout, 120);
	assert_int_equal(cfg->smtp_starttls, 0);
	assert_int_equal(cfg->max_lifetime, 86400);
	assert_int_equal(cfg->retry_min, 1);
	assert_string_equal(cfg->smarthost, "192.0.2.1:587");
	assert_int_equal(cfg->log_level, LOGL_DEBUG);
	assert_int_equal(cfg->log_format, LOGF_JSON);
	assert_non_null(cfg->path);
	config_free(&cfg);
}

static void
test_several_listen_lines(void **state)
{
	struct config *cfg = load_ok(
	    "[smtp]\nlisten = 127.0.0.1:2525\nlisten = [::1]:2525\nlisten = 0.0.0.0:25\n");
	assert_int_equal(cfg->smtp_listen_count, 3);   /* the default is replaced */
	assert_string_equal(cfg->smtp_listen[0], "127.0.0.1:2525");
	assert_string_equal(cfg->smtp_listen[1], "[::1]:2525");
	assert_string_equal(cfg->smtp_listen[2], "0.0.0.0:25");
	config_free(&cfg);
}

static void
test_bad_values(void **state)
{
	expect_error("[smtp]\nmax_message_size = lots\n", 2, "max_message_size");
	expect_error("[smtp]\n\nmax_recipients = -3\n", 3, "not a whole number");
	expect_error("[smtp]\ncommand_timeout = soon\n", 2, "not a duration");
	expect_error("[smtp]\nstarttls = maybe\n", 2, "not yes or no");
	expect_error("[smtp]\nlisten = nowhere\n", 2, "not host:port");
	expect_error("[http]\nlisten = 8025\n", 2, "not host:port");
	expect_error("[server]\nworker_threads = 0\n", 2, "from 1 to 64");
	expect_error("[queue]\nretry_factor = x\n", 2, "retry_factor");
	expect_error("[log]\nlevel = loud\n", 2, "not debug, info, warn or error");
	expect_error("[log]\nformat = xml\n", 2, "not text or json");
	expect_error("[server]\nthis line has no equals sign\n", 2, "");
}

static void
test_unknown_key_and_section(void **state)
{
	expect_error("[smtp]\nlisten = 127.0.0.1:2525\nfrobnicate = 1\n", 3,
	    "unknown key 'frobnicate' in [smtp]");
	expect_error("[server]\ndata_dir = x\n[nosuchsection]\nkey = 1\n", 4, "[nosuchsection]");
	expect_error("stray = 1\n", 1, "outside of any [section]");
}

static void
test_too_many_listen(void **state)
{
	expect_error("[smtp]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\nlisten = 127.0.0.1:3\n"
	    "listen = 127.0.0.1:4\nlisten = 127.0.0.1:5\nlisten = 127.0.0.1:6\n"
	    "listen = 127.0.0.1:7\nlisten = 127.0.0.1:8\nlisten = 127.0.0.1:9\n", 10,
	    "too many listen");
}

static void
test_cross_checks(void **state)
{
	struct config *cfg = NULL;
	char *err = NULL;
	const char *path = write_conf("[queue]\nretry_min = 1h\nretry_max = 1m\n");
	assert_int_equal(config_load(path, &cfg, &err), -1);
	unlink(path);
	assert_null(cfg);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "retry_min"));
	free(err);
}

static void
test_missing_file(void **state)
{
	struct config *cfg = NULL;
	char *err = NULL;
	assert_int_equal(config_load("/nonexistent/mailark.conf", &cfg, &err), -1);
	assert_null(cfg);
	assert_non_null(strstr(err, "/nonexistent/mailark.conf"));
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values_parsed),
		cmocka_unit_test(test_several_listen_lines),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_unknown_key_and_section),
		cmocka_unit_test(test_too_many_listen),
		cmocka_unit_test(test_cross_checks),
		cmocka_unit_test(test_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
