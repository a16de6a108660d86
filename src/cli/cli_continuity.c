/*
 * cli_continuity — `mailark continuity …`: one table maps the subcommand
 * words, positionals and options to a control command (control_continuity.c);
 * the answer is printed for people (status lines, report block, settings
 * table) or as JSON with --json.
 */
#include "cli/cli_continuity.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "config/config.h"

/* Options each subcommand may take (besides --json). */
#define CCLI_MAX_OPTS 2

struct ccli_opt {
	const char *flag;
	const char *key;
};

/* How an answer is printed. */
enum ccli_print { CP_STATUS, CP_REPORT, CP_SETTINGS, CP_SET, CP_PROBE };

struct ccli_sub {
	const char *words;          /* "status", "drill start", ... */
	const char *cmd;
	const char *pos[3];         /* keys of the positional arguments, in order */
	int npos;                   /* all required */
	enum ccli_print print;
	const char *done;           /* printed before the status of a change */
	struct ccli_opt opts[CCLI_MAX_OPTS];
};

static const struct ccli_sub ccli_subs[] = {
	{ "status", "continuity.status", { "tenant" }, 1, CP_STATUS, NULL, { { 0 } } },
	{ "start", "continuity.start", { "tenant" }, 1, CP_STATUS, "continuity started",
		{ { "--reason", "reason" } } },
	{ "stop", "continuity.stop", { "tenant" }, 1, CP_STATUS, "failback started", { { 0 } } },
	{ "report", "continuity.report", { "tenant" }, 1, CP_REPORT, NULL,
		{ { "--id", "id" } } },
	{ "settings", "continuity.settings", { "tenant" }, 1, CP_SETTINGS, NULL, { { 0 } } },
	{ "set", "continuity.set", { "tenant", "key", "value" }, 3, CP_SET, NULL, { { 0 } } },
	{ "drill start", "continuity.drill.start", { "tenant" }, 1, CP_STATUS, "drill started",
		{ { "--users", "users" } } },
	{ "drill stop", "continuity.drill.stop", { "tenant" }, 1, CP_STATUS, "drill stopped",
		{ { 0 } } },
	{ "drill report", "continuity.drill.report", { "tenant" }, 1, CP_REPORT, NULL,
		{ { "--id", "id" } } },
	{ "probe", "continuity.probe", { NULL }, 0, CP_PROBE, NULL, { { 0 } } },
};

#define CCLI_NSUBS (sizeof(ccli_subs) / sizeof(ccli_subs[0]))

static const char ccli_usage_text[] =
    "usage: mailark continuity status TENANT\n"
    "       mailark continuity start TENANT [--reason TEXT]\n"
    "       mailark continuity stop TENANT              (begins failback)\n"
    "       mailark continuity report TENANT [--id N]\n"
    "       mailark continuity settings TENANT\n"
    "       mailark continuity set TENANT KEY VALUE\n"
    "       mailark continuity drill start TENANT [--users a@x,b@x]\n"
    "       mailark continuity drill stop TENANT\n"
    "       mailark continuity drill report TENANT [--id N]\n"
    "       mailark continuity probe\n"
    "every command takes --json.\n";

/* The settings in the order the documentation gives them. */
static const char *const ccli_setting_keys[] = {
	"mode", "failback", "failback_after", "window_days", "alert_addresses", "webhook",
	"sent_copy", "imap_url", "imap_user", "imap_password",
};

#define CCLI_NKEYS (sizeof(ccli_setting_keys) / sizeof(ccli_setting_keys[0]))

const char *
cli_continuity_usage(void)
{
	return ccli_usage_text;
}

static int
ccli_usage(const char *why, const char *what)
{
	fprintf(stderr, "mailark: %s%s%s\n%s", why, what ? ": " : "", what ? what : "",
	    ccli_usage_text);
	return 2;
}

/* The subcommand named by argv[1] (and argv[2]); *nwords_r words used. */
static const struct ccli_sub *
ccli_find(int argc, char **argv, int *nwords_r)
{
	for (size_t i = 0; i < CCLI_NSUBS; i++) {
		const char *w = ccli_subs[i].words, *sp = strchr(w, ' ');
		if (sp == NULL && argc > 1 && strcmp(argv[1], w) == 0) {
			*nwords_r = 1;
			return &ccli_subs[i];
		}
		if (sp != NULL && argc > 2 && strncmp(argv[1], w, (size_t)(sp - w)) == 0 &&
		    argv[1][sp - w] == '\0' && strcmp(argv[2], sp + 1) == 0) {
			*nwords_r = 2;
			return &ccli_subs[i];
		}
	}
	return NULL;
}

static const struct ccli_opt *
ccli_opt_find(const struct ccli_sub *s, const char *flag)
{
	for (size_t i = 0; i < CCLI_MAX_OPTS && s->opts[i].flag != NULL; i++)
		if (strcmp(s->opts[i].flag, flag) == 0)
			return &s->opts[i];
	return NULL;
}

/* args.key = val; 0, or exit status 2 when val is not UTF-8 (JSON cannot carry it). */
static int
ccli_set(json_t *args, const char *key, const char *val)
{
	json_t *v = json_string(val);
	if (v == NULL)
		return ccli_usage("not valid UTF-8", key);
	json_object_set_new(args, key, v);
	return 0;
}

/* Options and positionals into args; *json_r for --json.  0 or exit status 2. */
static int
ccli_parse(const struct ccli_sub *s, int argc, char **argv, json_t *args, int *json_r)
{
	int npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *eq = NULL;
		const struct ccli_opt *o = ccli_opt_find(s, a);
		if (o == NULL && strncmp(a, "--", 2) == 0 && (eq = strchr(a, '=')) != NULL) {
			char flag[32];
			if ((size_t)(eq - a) < sizeof(flag)) {
				memcpy(flag, a, (size_t)(eq - a));
				flag[eq - a] = '\0';
				o = ccli_opt_find(s, flag);
			}
		}
		if (strcmp(a, "--json") == 0) {
			*json_r = 1;
		} else if (o != NULL && eq != NULL) {
			if (ccli_set(args, o->key, eq + 1) != 0)
				return 2;
		} else if (o != NULL) {
			if (i + 1 >= argc)
				return ccli_usage("option needs a value", a);
			if (ccli_set(args, o->key, argv[++i]) != 0)
				return 2;
		} else if (a[0] == '-' && a[1] != '\0') {
			return ccli_usage("unknown option", a);
		} else if (npos < 3 && s->pos[npos] != NULL) {
			if (ccli_set(args, s->pos[npos++], a) != 0)
				return 2;
		} else {
			return ccli_usage("too many arguments", a);
		}
	}
	if (npos < s->npos)
		return ccli_usage("missing arguments", s->words);
	return 0;
}

/* ------------------------------------------------------------ printing */

static const char *
ccli_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static long long
ccli_int(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* A time member: seconds since the epoch (or already text); "-" when unset. */
static const char *
ccli_time(json_t *o, const char *key, char *out, size_t len)
{
	json_t *v = json_object_get(o, key);
	struct tm tm;
	if (json_is_string(v) && json_string_length(v) > 0)
		return json_string_value(v);
	time_t t = json_is_integer(v) ? (time_t)json_integer_value(v) : 0;
	if (t <= 0 || gmtime_r(&t, &tm) == NULL)
		return "-";
	strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return out;
}

/* A scalar member as text (strings as they are, numbers, true/false). */
static void
ccli_value(FILE *out, json_t *v)
{
	if (json_is_string(v))
		fputs(json_string_value(v), out);
	else if (json_is_integer(v))
		fprintf(out, "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		fputs(json_is_true(v) ? "yes" : "no", out);
	else if (v == NULL || json_is_null(v))
		fputs("-", out);
	else {
		char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		fputs(text ? text : "?", out);
		free(text);
	}
}

static void
ccli_print_drill(json_t *d)
{
	char when[40];
	if (!json_is_object(d)) {
		printf("drill:    none\n");
		return;
	}
	printf("drill:    running");
	if (json_object_get(d, "id") != NULL)
		printf(" (drill %lld)", ccli_int(d, "id"));
	if (json_object_get(d, "started_at") != NULL)
		printf(", since %s", ccli_time(d, "started_at", when, sizeof(when)));
	/* users: "a@x,b@x" or a list; null or empty: every user */
	json_t *users = json_object_get(d, "users"), *u;
	size_t i;
	printf(", users: ");
	if (json_is_array(users) && json_array_size(users) > 0) {
		json_array_foreach(users, i, u) {
			printf("%s", i ? ", " : "");
			ccli_value(stdout, json_is_object(u) ? json_object_get(u, "address") : u);
		}
	} else if (json_is_string(users) && json_string_length(users) > 0) {
		printf("%s", json_string_value(users));
	} else {
		printf("all");
	}
	printf("\n");
}

static void
ccli_print_status(json_t *r)
{
	char when[40];
	json_t *routes = json_object_get(r, "routes"), *rt;
	size_t i;
	printf("tenant:   %s\n", ccli_str(r, "tenant"));
	printf("state:    %s\n", ccli_str(r, "state"));
	printf("since:    %s\n", ccli_time(r, "since", when, sizeof(when)));
	if (ccli_int(r, "outage_id") > 0)
		printf("outage:   %lld\n", ccli_int(r, "outage_id"));
	ccli_print_drill(json_object_get(r, "drill"));
	if (json_array_size(routes) == 0) {
		printf("routes:   none\n");
		return;
	}
	printf("routes:\n");
	json_array_foreach(routes, i, rt) {
		const char *st = ccli_str(rt, "state");
		printf("  %-32s %-7s", ccli_str(rt, "route"),
		    strcmp(st, "down") == 0 ? "DOWN" : st);
		if (ccli_int(rt, "failures") > 0)
			printf(" failures %lld", ccli_int(rt, "failures"));
		if (json_object_get(rt, "since") != NULL)
			printf(" since %s", ccli_time(rt, "since", when, sizeof(when)));
		if (ccli_str(rt, "last_error")[0] != '\0')
			printf(" (%s)", ccli_str(rt, "last_error"));
		printf("\n");
	}
}

static void
ccli_print_lists(json_t *r)
{
	json_t *list = json_object_get(r, "failures"), *f;
	size_t i;
	if (json_array_size(list) > 0) {
		printf("failures:\n");
		json_array_foreach(list, i, f)
			printf("  %-20s %-32s %s\n", ccli_str(f, "queue_id"), ccli_str(f, "rcpt"),
			    ccli_str(f, "reason"));
	}
	list = json_object_get(r, "pending_list");
	if (json_array_size(list) > 0) {
		printf("pending:\n");
		json_array_foreach(list, i, f)
			printf("  %-20s %-32s %s\n", ccli_str(f, "queue_id"), ccli_str(f, "rcpt"),
			    ccli_str(f, "kind"));
		if (ccli_int(r, "pending") > (long long)json_array_size(list))
			printf("  ... and %lld more\n",
			    ccli_int(r, "pending") - (long long)json_array_size(list));
	}
	list = json_object_get(r, "users");
	if (json_array_size(list) > 0) {
		printf("users:\n");
		json_array_foreach(list, i, f) {
			printf("  %-32s signed in: %s", ccli_str(f, "address"),
			    json_is_true(json_object_get(f, "signed_in")) ? "yes" : "no ");
			if (json_object_get(f, "inbox") != NULL)
				printf("  inbox %lld", ccli_int(f, "inbox"));
			if (json_object_get(f, "sent") != NULL)
				printf("  sent %lld", ccli_int(f, "sent"));
			printf("\n");
		}
	}
}

/* Returns 1 when the report does not reconcile, else 0. */
static int
ccli_print_report(json_t *r)
{
	char when[40];
	int ok = json_is_true(json_object_get(r, "reconciles"));
	printf("%s %lld of %s: %s\n", ccli_str(r, "kind")[0] ? ccli_str(r, "kind") : "outage",
	    ccli_int(r, "id"), ccli_str(r, "tenant"), ccli_str(r, "state"));
	printf("started:    %s", ccli_time(r, "started_at", when, sizeof(when)));
	if (ccli_str(r, "started_by")[0] != '\0')
		printf(" by %s", ccli_str(r, "started_by"));
	if (ccli_str(r, "reason")[0] != '\0')
		printf(" (%s)", ccli_str(r, "reason"));
	printf("\n");
	if (json_is_integer(json_object_get(r, "time_to_failover_ms")))
		printf("failover:   %lld ms\n", ccli_int(r, "time_to_failover_ms"));
	printf("failback:   %s\n", ccli_time(r, "failback_at", when, sizeof(when)));
	printf("ended:      %s\n", ccli_time(r, "ended_at", when, sizeof(when)));
	printf("accepted:   %lld\n", ccli_int(r, "accepted"));
	printf("delivered:  %lld (of which skipped, already at the primary: %lld)\n",
	    ccli_int(r, "delivered"), ccli_int(r, "skipped"));
	printf("pending:    %lld\n", ccli_int(r, "pending"));
	printf("failed:     %lld\n", ccli_int(r, "failed"));
	printf("reconciles: %s\n", ok ? "yes" : "NO");
	ccli_print_lists(r);
	return ok ? 0 : 1;
}

static void
ccli_print_settings(json_t *r)
{
	const char *key;
	json_t *v;
	for (size_t i = 0; i < CCLI_NKEYS; i++) {
		printf("%-16s ", ccli_setting_keys[i]);
		ccli_value(stdout, json_object_get(r, ccli_setting_keys[i]));
		printf("\n");
	}
	json_object_foreach(r, key, v) {
		size_t i;
		for (i = 0; i < CCLI_NKEYS; i++)
			if (strcmp(ccli_setting_keys[i], key) == 0)
				break;
		if (i < CCLI_NKEYS)
			continue;
		printf("%-16s ", key);
		ccli_value(stdout, v);
		printf("\n");
	}
}

static int
ccli_print(const struct ccli_sub *s, json_t *args, json_t *r, int json)
{
	int rc = 0;
	if (json) {
		char *text = json_dumps(r ? r : json_null(), JSON_INDENT(2) | JSON_ENCODE_ANY);
		printf("%s\n", text ? text : "null");
		free(text);
		if (s->print == CP_REPORT && !json_is_true(json_object_get(r, "reconciles")))
			rc = 1;
		return fflush(stdout) == 0 ? rc : 1;
	}
	switch (s->print) {
	case CP_STATUS:
		if (s->done != NULL)
			printf("%s: %s\n", ccli_str(args, "tenant"), s->done);
		ccli_print_status(r);
		break;
	case CP_REPORT:
		rc = ccli_print_report(r);
		break;
	case CP_SETTINGS:
		ccli_print_settings(r);
		break;
	case CP_SET:
		printf("%s: %s = ", ccli_str(args, "tenant"), ccli_str(args, "key"));
		ccli_value(stdout, json_object_get(r, ccli_str(args, "key")));
		printf("\n");
		break;
	case CP_PROBE:
		printf("a probe round has started; see mailark continuity status TENANT\n");
		break;
	}
	return fflush(stdout) == 0 ? rc : 1;
}

int
cli_continuity_run(const struct config *cfg, int argc, char **argv)
{
	int nwords = 0, json = 0;
	const struct ccli_sub *s = ccli_find(argc, argv, &nwords);
	if (s == NULL && argc == 2 && strcmp(argv[1], "drill") == 0)
		return ccli_usage("missing drill subcommand", "start, stop or report");
	if (s == NULL)
		return ccli_usage("unknown subcommand", argc > 1 ? argv[1] : NULL);
	json_t *args = json_object(), *r = NULL;
	int rc = ccli_parse(s, argc - 1 - nwords, argv + 1 + nwords, args, &json);
	if (rc == 0)
		rc = cli_call(cfg, s->cmd, args, &r) < 0 ? 1 : 0;
	if (rc == 0)
		rc = ccli_print(s, args, r, json);
	json_decref(r);
	json_decref(args);
	return rc;
}
