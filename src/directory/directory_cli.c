/*
 * directory_cli.c — the directory commands of the CLI.  Each becomes one
 * control request; sync and login then poll "directory.job" every 100 ms
 * until the daemon's worker has finished (at most DCLI_WAIT_SECS).
 */
#include "directory/directory_cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "config/config.h"
#include "control/control.h"
#include "lib/buf.h"
#include "lib/mem.h"

#define DCLI_WAIT_SECS 300
#define DCLI_PASSWORD_MAX 1024

struct dcli_opts {
	int json, password_stdin;
	const char *pos[2];
	int npos;
	json_t *args;
};

static const char dcli_usage_text[] =
    "usage: mailark directory set TENANT --url ldap://HOST:PORT --base-dn DN --bind-dn DN\n"
    "           [--bind-password-stdin] [--user-filter F] [--group-filter F]\n"
    "           [--interval 15m] [--starttls yes|no] [--json]\n"
    "       mailark directory show TENANT [--json]\n"
    "       mailark directory sync TENANT [--json]\n"
    "       mailark directory login TENANT ADDRESS [--json]   (password on standard input)\n";

static int
dcli_usage(const char *why, const char *what)
{
	fprintf(stderr, "mailark: %s%s%s\n%s", why, what ? ": " : "", what ? what : "",
	    dcli_usage_text);
	return 2;
}

/* "--base-dn" → "base_dn" for the set options; NULL when not one. */
static const char *
dcli_set_key(const char *opt)
{
	static const char *const map[][2] = {
		{ "--url", "url" }, { "--base-dn", "base_dn" }, { "--bind-dn", "bind_dn" },
		{ "--user-filter", "user_filter" }, { "--group-filter", "group_filter" },
		{ "--interval", "interval" }, { "--starttls", "starttls" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(opt, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

static int
dcli_parse(const char *sub, int argc, char **argv, struct dcli_opts *o)
{
	int is_set = strcmp(sub, "set") == 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *key;
		if (strcmp(a, "--json") == 0) {
			o->json = 1;
		} else if (is_set && strcmp(a, "--bind-password-stdin") == 0) {
			o->password_stdin = 1;
		} else if (is_set && (key = dcli_set_key(a)) != NULL) {
			if (i + 1 >= argc)
				return dcli_usage("option needs a value", a);
			json_object_set_new(o->args, key, json_string(argv[++i]));
		} else if (a[0] == '-' && a[1] != '\0') {
			return dcli_usage("unknown option", a);
		} else if (o->npos >= 2) {
			return dcli_usage("too many arguments", a);
		} else {
			o->pos[o->npos++] = a;
		}
	}
	return 0;
}

/* Reads a secret from standard input (one line; the newline is dropped). */
static char *
dcli_read_secret(void)
{
	char buf[DCLI_PASSWORD_MAX + 2];
	size_t n = fread(buf, 1, sizeof(buf) - 1, stdin);
	buf[n] = '\0';
	char *nl = strpbrk(buf, "\r\n");
	if (nl != NULL)
		*nl = '\0';
	if (buf[0] == '\0' || strlen(buf) > DCLI_PASSWORD_MAX)
		return NULL;
	char *s = xstrdup(buf);
	memset(buf, 0, sizeof(buf));
	return s;
}

/* Polls the job until it is done: 0 with *result_r (the job's result), -1. */
static int
dcli_wait(const struct config *cfg, const char *tenant, json_t *started, json_t **result_r)
{
	char id[32];
	snprintf(id, sizeof(id), "%lld",
	    (long long)json_integer_value(json_object_get(started, "job")));
	json_t *args = json_pack("{s:s, s:s}", "tenant", tenant, "id", id);
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	for (int i = 0; i < DCLI_WAIT_SECS * 10; i++) {
		json_t *r = NULL;
		if (cli_call(cfg, "directory.job", args, &r) < 0)
			break;
		const char *state = json_string_value(json_object_get(r, "state"));
		if (state != NULL && strcmp(state, "done") == 0) {
			*result_r = json_incref(json_object_get(r, "result"));
			json_decref(r);
			json_decref(args);
			return 0;
		}
		json_decref(r);
		nanosleep(&pause, NULL);
	}
	json_decref(args);
	fprintf(stderr, "mailark: no answer from job %s in %d s\n", id, DCLI_WAIT_SECS);
	return -1;
}

static long long
dcli_int(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void
dcli_print_summary(FILE *out, json_t *r)
{
	fprintf(out, "users: %lld added, %lld updated, %lld disabled, %lld unchanged; "
	    "groups: %lld added, %lld updated; errors: %lld\n", dcli_int(r, "users_added"),
	    dcli_int(r, "users_updated"), dcli_int(r, "users_disabled"),
	    dcli_int(r, "users_unchanged"), dcli_int(r, "groups_added"),
	    dcli_int(r, "groups_updated"), dcli_int(r, "errors"));
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(r, "error_list"), i, e)
		fprintf(out, "  error: %s\n", json_string_value(e));
}

static const char *
dcli_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static void
dcli_print_show(json_t *r)
{
	char when[32] = "never";
	json_t *last = json_object_get(r, "last_sync");
	if (json_is_integer(last)) {
		time_t t = (time_t)json_integer_value(last);
		struct tm tm;
		if (gmtime_r(&t, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	printf("tenant:        %s\nurl:           %s\nbase dn:       %s\nbind dn:       %s\n"
	    "bind password: %s\nuser filter:   %s\ngroup filter:  %s\ninterval:      %llds\n"
	    "starttls:      %s\nlast sync:     %s\n", dcli_str(r, "tenant"), dcli_str(r, "url"),
	    dcli_str(r, "base_dn"), dcli_str(r, "bind_dn"), dcli_str(r, "bind_password"),
	    dcli_str(r, "user_filter"), dcli_str(r, "group_filter"), dcli_int(r, "interval"),
	    json_is_true(json_object_get(r, "starttls")) ? "yes" : "no", when);
	json_t *res = json_object_get(r, "last_result");
	if (json_is_true(json_object_get(res, "ok"))) {
		printf("last result:   ");
		dcli_print_summary(stdout, res);
	} else if (json_is_object(res)) {
		printf("last result:   failed: %s\n", dcli_str(res, "error"));
	}
}

static void
dcli_print_json(json_t *r)
{
	char *text = json_dumps(r, JSON_INDENT(2) | JSON_ENCODE_ANY);
	printf("%s\n", text ? text : "null");
	free(text);
}

/* sync and login: start, wait, print; exit 1 when the job failed. */
static int
dcli_job(const struct config *cfg, const char *cmd, struct dcli_opts *o)
{
	json_t *started = NULL, *res = NULL;
	const char *tenant = o->pos[0];
	if (cli_call(cfg, cmd, o->args, &started) < 0)
		return 1;
	int rc = dcli_wait(cfg, tenant, started, &res);
	json_decref(started);
	if (rc < 0)
		return 1;
	int ok = json_is_true(json_object_get(res, "ok"));
	if (o->json)
		dcli_print_json(res);
	else if (ok && strcmp(cmd, "directory.sync") == 0)
		dcli_print_summary(stdout, res);
	else if (ok)
		printf("sign-in of %s accepted by the directory\n", o->pos[1]);
	if (!ok && strcmp(cmd, "directory.sync") == 0)
		fprintf(stderr, "mailark: directory sync of %s failed: %s\n", tenant,
		    dcli_str(res, "error"));
	else if (!ok)
		fprintf(stderr, "mailark: sign-in of %s refused (%s)%s%s\n", o->pos[1],
		    dcli_str(res, "result"), json_object_get(res, "error") ? ": " : "",
		    json_object_get(res, "error") ? dcli_str(res, "error") : "");
	json_decref(res);
	return ok ? 0 : 1;
}

static int
dcli_simple(const struct config *cfg, const char *cmd, struct dcli_opts *o)
{
	json_t *r = NULL;
	if (cli_call(cfg, cmd, o->args, &r) < 0)
		return 1;
	if (o->json)
		dcli_print_json(r);
	else
		dcli_print_show(r);
	json_decref(r);
	return 0;
}

static int
dcli_run(const struct config *cfg, const char *sub, struct dcli_opts *o)
{
	int nwant = strcmp(sub, "login") == 0 ? 2 : 1;
	if (o->npos != nwant)
		return dcli_usage(o->npos < nwant ? "missing argument" : "too many arguments",
		    o->npos < nwant ? (o->npos == 0 ? "TENANT" : "ADDRESS") : o->pos[1]);
	json_object_set_new(o->args, "tenant", json_string(o->pos[0]));
	if (strcmp(sub, "login") == 0)
		json_object_set_new(o->args, "address", json_string(o->pos[1]));
	if (o->password_stdin || strcmp(sub, "login") == 0) {
		char *pw = dcli_read_secret();
		if (pw == NULL)
			return dcli_usage("no password on standard input", NULL);
		json_object_set_new(o->args, strcmp(sub, "login") == 0 ? "password" :
		    "bind_password", json_string(pw));
		memset(pw, 0, strlen(pw));
		free(pw);
	}
	if (strcmp(sub, "set") == 0)
		return dcli_simple(cfg, "directory.set", o);
	if (strcmp(sub, "show") == 0)
		return dcli_simple(cfg, "directory.show", o);
	return dcli_job(cfg, strcmp(sub, "sync") == 0 ? "directory.sync" : "directory.login", o);
}

int
directory_cli_run(const struct config *cfg, int argc, char **argv)
{
	static const char *const subs[] = { "set", "show", "sync", "login" };
	if (argc < 2)
		return dcli_usage("missing subcommand", NULL);
	const char *sub = argv[1];
	int known = 0;
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		known |= strcmp(sub, subs[i]) == 0;
	if (!known)
		return dcli_usage("unknown subcommand", sub);
	struct dcli_opts o = { .args = json_object() };
	int rc = dcli_parse(sub, argc - 2, argv + 2, &o);
	if (rc == 0)
		rc = dcli_run(cfg, sub, &o);
	json_decref(o.args);
	return rc;
}
