/*
 * cli_identity.c — users, groups and tokens on the command line.
 *
 * Each command is one row of cli_id_cmds[]: its words, its control
 * command, positional argument names and the options it takes.  A TENANT
 * of "-" means "no tenant" (operators).  Passwords are read from standard
 * input only (one line; never from argv, where `ps` would show them).
 * Secrets the daemon returns once (tokens, TOTP secrets) are printed once
 * with a line saying so.
 */
#include "cli/cli_identity.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "control/control.h"
#include "lib/buf.h"
#include "lib/mem.h"

#define CLI_ID_MAX_ARGS 3
#define CLI_ID_PW_MAX 4096

enum {
	OPT_ROLE = 1 << 0,
	OPT_NAME = 1 << 1,
	OPT_PWSTDIN = 1 << 2,
	OPT_USER = 1 << 3,
	OPT_EXPIRES = 1 << 4,
	PW_ALWAYS = 1 << 5,        /* reads the password from stdin without an option */
};

struct cli_id_cmd {
	const char *words[3];      /* group, subcommand, [action] */
	const char *ctl;
	const char *args[CLI_ID_MAX_ARGS];
	int nrequired;
	unsigned opts;
	const char *usage;
};

static const struct cli_id_cmd cli_id_cmds[] = {
	{ { "user", "add" }, "user.add", { "tenant", "address" }, 2,
	  OPT_ROLE | OPT_NAME | OPT_PWSTDIN,
	  "user add TENANT ADDRESS [--role R] [--name \"Display\"] [--password-stdin]" },
	{ { "user", "list" }, "user.list", { "tenant" }, 1, 0, "user list TENANT" },
	{ { "user", "show" }, "user.show", { "tenant", "address" }, 2, 0,
	  "user show TENANT ADDRESS" },
	{ { "user", "disable" }, "user.disable", { "tenant", "address" }, 2, 0,
	  "user disable TENANT ADDRESS" },
	{ { "user", "enable" }, "user.enable", { "tenant", "address" }, 2, 0,
	  "user enable TENANT ADDRESS" },
	{ { "user", "passwd" }, "user.passwd", { "tenant", "address" }, 2, PW_ALWAYS,
	  "user passwd TENANT ADDRESS  (new password on standard input)" },
	{ { "user", "alias", "add" }, "user.alias.add", { "tenant", "address", "alias" }, 3, 0,
	  "user alias add TENANT ADDRESS ALIAS" },
	{ { "user", "alias", "remove" }, "user.alias.remove", { "tenant", "address", "alias" }, 3,
	  0, "user alias remove TENANT ADDRESS ALIAS" },
	{ { "user", "totp", "enable" }, "user.totp.enable", { "tenant", "address" }, 2, 0,
	  "user totp enable TENANT ADDRESS" },
	{ { "group", "add" }, "group.add", { "tenant", "name" }, 2, 0, "group add TENANT NAME" },
	{ { "group", "list" }, "group.list", { "tenant" }, 1, 0, "group list TENANT" },
	{ { "group", "remove" }, "group.remove", { "tenant", "name" }, 2, 0,
	  "group remove TENANT NAME" },
	{ { "group", "member", "add" }, "group.member.add", { "tenant", "group", "address" }, 3,
	  0, "group member add TENANT GROUP ADDRESS" },
	{ { "group", "member", "remove" }, "group.member.remove",
	  { "tenant", "group", "address" }, 3, 0, "group member remove TENANT GROUP ADDRESS" },
	{ { "token", "create" }, "token.create", { NULL }, 0, OPT_USER | OPT_NAME | OPT_EXPIRES,
	  "token create [--user ADDRESS] [--name N] [--expires 30d]" },
	{ { "token", "list" }, "token.list", { NULL }, 0, OPT_USER, "token list [--user ADDRESS]" },
	{ { "token", "revoke" }, "token.revoke", { "id" }, 1, 0, "token revoke ID" },
};

#define CLI_ID_NCMDS (sizeof(cli_id_cmds) / sizeof(cli_id_cmds[0]))

int
cli_identity_handles(const char *group)
{
	return strcmp(group, "user") == 0 || strcmp(group, "group") == 0 ||
	    strcmp(group, "token") == 0;
}

static int
cli_id_usage(const char *group, const char *why, const char *what)
{
	fprintf(stderr, "mailark: %s%s%s\n", why, what ? ": " : "", what ? what : "");
	for (size_t i = 0; i < CLI_ID_NCMDS; i++)
		if (strcmp(cli_id_cmds[i].words[0], group) == 0)
			fprintf(stderr, "usage: mailark %s [--json]\n", cli_id_cmds[i].usage);
	return 2;
}

/* The command named by argv's words; *nwords_r: how many words it took. */
static const struct cli_id_cmd *
cli_id_find(int argc, char **argv, int *nwords_r)
{
	for (size_t i = 0; i < CLI_ID_NCMDS; i++) {
		const struct cli_id_cmd *c = &cli_id_cmds[i];
		int n = c->words[2] != NULL ? 3 : 2, ok = argc >= n;
		for (int w = 0; ok && w < n; w++)
			ok = strcmp(argv[w], c->words[w]) == 0;
		if (ok) {
			*nwords_r = n;
			return c;
		}
	}
	return NULL;
}

/* One line of standard input, without its line ending (caller wipes and frees). */
static char *
cli_id_read_password(void)
{
	char line[CLI_ID_PW_MAX];
	if (isatty(STDIN_FILENO))
		fputs("new password: ", stderr);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return NULL;
	size_t n = strcspn(line, "\r\n");
	line[n] = '\0';
	char *pw = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return pw;
}

static const struct {
	unsigned flag;
	const char *opt;
	const char *key;
} cli_id_opts[] = {
	{ OPT_ROLE, "--role", "role" },
	{ OPT_NAME, "--name", "name" },
	{ OPT_USER, "--user", "user" },
	{ OPT_EXPIRES, "--expires", "expires" },
};

/* 1 when argv[*i] was a value option of c (consumed), 0 not, -1 missing value. */
static int
cli_id_value_opt(const struct cli_id_cmd *c, int argc, char **argv, int *i, json_t *args)
{
	for (size_t o = 0; o < sizeof(cli_id_opts) / sizeof(cli_id_opts[0]); o++) {
		size_t len = strlen(cli_id_opts[o].opt);
		const char *a = argv[*i];
		if (!(c->opts & cli_id_opts[o].flag) || strncmp(a, cli_id_opts[o].opt, len) != 0)
			continue;
		if (a[len] == '=') {
			json_object_set_new(args, cli_id_opts[o].key, json_string(a + len + 1));
			return 1;
		}
		if (a[len] != '\0')
			continue;
		if (*i + 1 >= argc)
			return -1;
		json_object_set_new(args, cli_id_opts[o].key, json_string(argv[++*i]));
		return 1;
	}
	return 0;
}

static int
cli_id_parse(const struct cli_id_cmd *c, int argc, char **argv, json_t *args, int *json_r,
    int *pw_r)
{
	int npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int v = cli_id_value_opt(c, argc, argv, &i, args);
		if (v < 0)
			return cli_id_usage(c->words[0], "option needs a value", a);
		if (v > 0)
			continue;
		if (strcmp(a, "--json") == 0)
			*json_r = 1;
		else if ((c->opts & OPT_PWSTDIN) && strcmp(a, "--password-stdin") == 0)
			*pw_r = 1;
		else if (a[0] == '-' && a[1] != '\0')
			return cli_id_usage(c->words[0], "unknown option", a);
		else if (npos >= CLI_ID_MAX_ARGS || c->args[npos] == NULL)
			return cli_id_usage(c->words[0], "too many arguments", a);
		else if (strcmp(c->args[npos++], "tenant") != 0 || strcmp(a, "-") != 0)
			json_object_set_new(args, c->args[npos - 1], json_string(a));
	}
	if (npos < c->nrequired)
		return cli_id_usage(c->words[0], "missing argument", c->args[npos]);
	if (c->opts & PW_ALWAYS)
		*pw_r = 1;
	return 0;
}

/* ---- printing ------------------------------------------------------------ */

static const char *
cli_id_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : "-";
}

static void
cli_id_time(json_t *o, const char *key, char *out, size_t size)
{
	json_t *v = json_object_get(o, key);
	time_t t = json_is_integer(v) ? (time_t)json_integer_value(v) : 0;
	struct tm tm;
	if (t == 0 || localtime_r(&t, &tm) == NULL || strftime(out, size, "%Y-%m-%d %H:%M", &tm) == 0)
		snprintf(out, size, "-");
}

static void
cli_id_join(json_t *arr, struct buf *b)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
		buf_appendf(b, "%s%s", i ? ", " : "", json_string_value(v));
	if (b->len == 0)
		buf_append_char(b, '-');
}

static void
cli_id_print_user(json_t *u)
{
	struct buf al = BUF_INIT, gr = BUF_INIT;
	char created[32];
	cli_id_join(json_object_get(u, "aliases"), &al);
	cli_id_join(json_object_get(u, "groups"), &gr);
	cli_id_time(u, "created", created, sizeof(created));
	printf("address:  %s\ntenant:   %s\nname:     %s\nrole:     %s\nstatus:   %s\n"
	    "source:   %s\npassword: %s\ntotp:     %s\naliases:  %s\ngroups:   %s\n"
	    "created:  %s\n", cli_id_str(u, "address"), cli_id_str(u, "tenant"),
	    cli_id_str(u, "name"), cli_id_str(u, "role"), cli_id_str(u, "status"),
	    cli_id_str(u, "source"), json_is_true(json_object_get(u, "password")) ? "set" : "none",
	    json_is_true(json_object_get(u, "totp")) ? "enabled" : "off", buf_cstr(&al),
	    buf_cstr(&gr), created);
	buf_free(&al);
	buf_free(&gr);
}

static void
cli_id_print_users(json_t *arr)
{
	size_t i;
	json_t *u;
	if (json_array_size(arr) == 0) {
		puts("no users");
		return;
	}
	printf("%-32s  %-8s  %-8s  %s\n", "ADDRESS", "ROLE", "STATUS", "NAME");
	json_array_foreach(arr, i, u)
		printf("%-32s  %-8s  %-8s  %s\n", cli_id_str(u, "address"), cli_id_str(u, "role"),
		    cli_id_str(u, "status"), cli_id_str(u, "name"));
}

static void
cli_id_print_groups(json_t *arr)
{
	size_t i;
	json_t *g;
	if (json_array_size(arr) == 0) {
		puts("no groups");
		return;
	}
	printf("%-24s  %s\n", "NAME", "MEMBERS");
	json_array_foreach(arr, i, g) {
		struct buf m = BUF_INIT;
		cli_id_join(json_object_get(g, "members"), &m);
		printf("%-24s  %s\n", cli_id_str(g, "name"), buf_cstr(&m));
		buf_free(&m);
	}
}

static void
cli_id_print_tokens(json_t *arr)
{
	size_t i;
	json_t *t;
	if (json_array_size(arr) == 0) {
		puts("no tokens");
		return;
	}
	printf("%-12s  %-28s  %-16s  %-16s  %-16s  %-16s  %s\n", "ID", "USER", "NAME", "CREATED",
	    "EXPIRES", "LAST-USED", "STATUS");
	json_array_foreach(arr, i, t) {
		char c[32], e[32], l[32];
		cli_id_time(t, "created", c, sizeof(c));
		cli_id_time(t, "expires", e, sizeof(e));
		cli_id_time(t, "last_used", l, sizeof(l));
		json_t *exp = json_object_get(t, "expires");
		const char *status = !json_is_null(json_object_get(t, "revoked")) ? "revoked" :
		    json_is_integer(exp) && json_integer_value(exp) <= (json_int_t)time(NULL) ?
		    "expired" : "active";
		printf("%-12s  %-28s  %-16s  %-16s  %-16s  %-16s  %s\n", cli_id_str(t, "id"),
		    cli_id_str(t, "user"), cli_id_str(t, "name"), c, e, l, status);
	}
}

static void
cli_id_print(const struct cli_id_cmd *c, json_t *r)
{
	const char *ctl = c->ctl;
	if (strcmp(ctl, "user.list") == 0)
		cli_id_print_users(r);
	else if (strcmp(ctl, "user.totp.enable") == 0)
		printf("secret: %s\nuri:    %s\nThe secret is shown only once: add it to an "
		    "authenticator app now.\n", cli_id_str(r, "secret"), cli_id_str(r, "uri"));
	else if (strncmp(ctl, "user.", 5) == 0)
		cli_id_print_user(r);
	else if (strcmp(ctl, "group.list") == 0)
		cli_id_print_groups(r);
	else if (strcmp(ctl, "token.create") == 0)
		printf("token: %s\nid:    %s\nuser:  %s\nThe token is shown only once: store it "
		    "now.\n", cli_id_str(r, "token"), cli_id_str(r, "id"), cli_id_str(r, "user"));
	else if (strcmp(ctl, "token.list") == 0)
		cli_id_print_tokens(r);
	else if (strcmp(ctl, "token.revoke") == 0)
		printf("revoked token %s of %s\n", cli_id_str(r, "id"), cli_id_str(r, "user"));
	else
		puts("ok");
}

static int
cli_id_answer(const struct cli_id_cmd *c, const char *line, int json)
{
	json_error_t jerr;
	json_t *resp = json_loads(line, 0, &jerr);
	json_t *ok = json_object_get(resp, "ok");
	int rc = 0;
	if (!json_is_boolean(ok)) {
		fprintf(stderr, "mailark: malformed answer from the daemon\n");
		rc = 1;
	} else if (!json_is_true(ok)) {
		const char *e = json_string_value(json_object_get(resp, "error"));
		fprintf(stderr, "mailark: %s\n", e ? e : "the daemon refused the command");
		rc = 1;
	} else if (json) {
		char *text = json_dumps(json_object_get(resp, "result"),
		    JSON_INDENT(2) | JSON_ENCODE_ANY);
		printf("%s\n", text ? text : "null");
		free(text);
	} else {
		cli_id_print(c, json_object_get(resp, "result"));
	}
	json_decref(resp);
	if (rc == 0 && fflush(stdout) != 0)
		rc = 1;
	return rc;
}

static int
cli_id_send(const struct config *cfg, const struct cli_id_cmd *c, json_t *args, int json)
{
	json_t *req = json_pack("{s:s, s:O}", "cmd", c->ctl, "args", args);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	char *resp = NULL, *err = NULL;
	int rc = text != NULL ? control_request(cfg->data_dir, text, &resp, &err) : -1;
	if (text != NULL) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	if (rc < 0) {
		fprintf(stderr, "mailark: %s\n", err ? err : "cannot encode the request");
		free(err);
		return 1;
	}
	rc = cli_id_answer(c, resp, json);
	explicit_bzero(resp, strlen(resp));
	free(resp);
	return rc;
}

int
cli_identity_run(const struct config *cfg, int argc, char **argv)
{
	int nwords = 0, json = 0, want_pw = 0;
	const struct cli_id_cmd *c = cli_id_find(argc, argv, &nwords);
	if (c == NULL)
		return cli_id_usage(argv[0], "unknown subcommand", argc > 1 ? argv[1] : NULL);
	json_t *args = json_object();
	int rc = cli_id_parse(c, argc - nwords, argv + nwords, args, &json, &want_pw);
	if (rc == 0 && want_pw) {
		char *pw = cli_id_read_password();
		if (pw == NULL) {
			fprintf(stderr, "mailark: no password on standard input\n");
			rc = 1;
		} else {
			json_object_set_new(args, "password", json_string(pw));
			explicit_bzero(pw, strlen(pw));
			free(pw);
		}
	}
	if (rc == 0)
		rc = cli_id_send(cfg, c, args, json);
	json_decref(args);
	return rc;
}
