/*
 * cli_archive — `mailark archive …`: parses the subcommands and their
 * options into control requests (one table), turns paths absolute (the
 * daemon reads them), waits for background jobs with a progress bar on a
 * terminal, and prints results (or JSON with --json).
 */
#include "cli/cli_archive.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "config/config.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"

/* How long the CLI waits for a job (imports of big PSTs take a while). */
#define ACLI_WAIT_SECS (24 * 3600)

/* An option: its flag, the argument key it sets, and how. */
enum acli_opt_kind { AO_STRING, AO_PATH, AO_FLAG, AO_DAYS };

struct acli_opt {
	const char *flag;
	const char *key;
	enum acli_opt_kind kind;
};

/* One subcommand: words, control command, positional argument keys, options. */
struct acli_sub {
	const char *words;          /* "search", "retention set", ... */
	const char *cmd;
	const char *pos[3];         /* keys of the positional arguments, in order */
	int npos_min;
	int job;                    /* returns {job}: wait and print its result */
	struct acli_opt opts[8];
};

static const struct acli_sub acli_subs[] = {
	{ "import", "archive.import", { "tenant" }, 1, 1, {
		{ "--mbox", "mbox", AO_PATH }, { "--maildir", "maildir", AO_PATH },
		{ "--pst", "pst", AO_PATH }, { "--eml", "eml", AO_PATH },
		{ "--mailbox", "mailbox", AO_STRING }, { "--folder", "folder", AO_STRING } } },
	{ "search", "archive.search", { "tenant", "query" }, 2, 0, {
		{ "--limit", "limit", AO_STRING }, { "--offset", "offset", AO_STRING } } },
	{ "show", "archive.show", { "tenant", "id" }, 2, 0, { { "--raw", "raw", AO_FLAG } } },
	{ "export", "archive.export", { "tenant", "query" }, 2, 1, {
		{ "--format", "format", AO_STRING }, { "--out", "out", AO_PATH },
		{ "--approval", "approval", AO_STRING } } },
	{ "verify", "archive.verify", { "tenant" }, 1, 1, { { 0 } } },
	{ "reindex", "archive.reindex", { "tenant" }, 1, 1, { { 0 } } },
	{ "purge", "archive.purge", { "tenant" }, 1, 1, { { "--dry-run", "dry_run", AO_FLAG } } },
	{ "stats", "archive.stats", { "tenant" }, 1, 0, { { 0 } } },
	{ "jobs", "archive.jobs", { "tenant" }, 1, 0, { { 0 } } },
	{ "shred", "archive.shred", { "tenant" }, 1, 0, { { "--yes", "yes", AO_FLAG } } },
	{ "retention show", "archive.retention.show", { "tenant" }, 1, 0, { { 0 } } },
	{ "retention set", "archive.retention.set", { "tenant" }, 1, 0, {
		{ "--default", "default_days", AO_DAYS } } },
	{ "retention add", "archive.retention.rule.add", { "tenant" }, 1, 0, {
		{ "--folder", "folder", AO_STRING }, { "--address", "address", AO_STRING },
		{ "--domain", "domain", AO_STRING }, { "--keyword", "keyword", AO_STRING },
		{ "--keep", "days", AO_DAYS } } },
	{ "retention remove", "archive.retention.rule.remove", { "tenant", "id" }, 2, 0,
		{ { 0 } } },
	{ "retention lock", "archive.retention.lock", { "tenant" }, 1, 0, {
		{ "--yes", "yes", AO_FLAG } } },
	{ "settings", "archive.settings.set", { "tenant", "key", "value" }, 3, 0, { { 0 } } },
	{ "case add", "archive.case.add", { "tenant", "name" }, 2, 0, {
		{ "--description", "description", AO_STRING } } },
	{ "case list", "archive.case.list", { "tenant" }, 1, 0, { { 0 } } },
	{ "case close", "archive.case.close", { "tenant", "name" }, 2, 0, { { 0 } } },
	{ "case delete", "archive.case.delete", { "tenant", "name" }, 2, 0, { { 0 } } },
	{ "hold add", "archive.hold.add", { "tenant", "name" }, 2, 0, {
		{ "--case", "case", AO_STRING }, { "--mailbox", "mailbox", AO_STRING },
		{ "--query", "query", AO_STRING }, { "--from", "from", AO_STRING },
		{ "--to", "to", AO_STRING } } },
	{ "hold list", "archive.hold.list", { "tenant" }, 1, 0, { { 0 } } },
	{ "hold release", "archive.hold.release", { "tenant", "name" }, 2, 0, { { 0 } } },
	{ "approval list", "archive.approval.list", { "tenant" }, 1, 0, { { 0 } } },
	{ "approval approve", "archive.approval.approve", { "tenant", "id" }, 2, 0, { { 0 } } },
	{ "approval reject", "archive.approval.reject", { "tenant", "id" }, 2, 0, { { 0 } } },
};

#define ACLI_NSUBS (sizeof(acli_subs) / sizeof(acli_subs[0]))

static const char acli_usage_text[] =
    "usage: mailark archive import TENANT (--pst FILE | --mbox FILE | --maildir DIR |\n"
    "                                     --eml PATH...) [--mailbox ADDRESS] [--folder F]\n"
    "       mailark archive search TENANT 'QUERY' [--limit N] [--offset N]\n"
    "       mailark archive show TENANT ID [--raw]\n"
    "       mailark archive export TENANT 'QUERY' [--format mbox|eml] --out FILE.zip\n"
    "                              [--approval ID]   (with four_eyes_export on)\n"
    "       mailark archive verify|reindex|stats|jobs TENANT\n"
    "       mailark archive purge TENANT [--dry-run]\n"
    "       mailark archive shred TENANT --yes\n"
    "       mailark archive retention show TENANT\n"
    "       mailark archive retention set TENANT --default 10y\n"
    "       mailark archive retention add TENANT (--folder F | --address A | --domain D |\n"
    "                                             --keyword K) --keep 7y|90d|forever\n"
    "       mailark archive retention remove TENANT RULE_ID\n"
    "       mailark archive retention lock TENANT --yes\n"
    "       mailark archive settings TENANT four_eyes|four_eyes_export on|off\n"
    "       mailark archive case add|list|close|delete TENANT [NAME] [--description D]\n"
    "       mailark archive hold add TENANT NAME [--case C] [--mailbox A] [--query Q]\n"
    "                                          [--from YYYY-MM-DD] [--to YYYY-MM-DD]\n"
    "       mailark archive hold list TENANT | hold release TENANT NAME\n"
    "       mailark archive approval list TENANT | approval approve|reject TENANT ID\n"
    "every command takes --json.\n";

const char *
cli_archive_usage(void)
{
	return acli_usage_text;
}

static int
acli_usage(const char *why, const char *what)
{
	fprintf(stderr, "mailark: %s%s%s\n%s", why, what ? ": " : "", what ? what : "",
	    acli_usage_text);
	return 2;
}

/* The subcommand named by argv[1] (and argv[2]); *nwords_r words used. */
static const struct acli_sub *
acli_find(int argc, char **argv, int *nwords_r)
{
	for (size_t i = 0; i < ACLI_NSUBS; i++) {
		const char *w = acli_subs[i].words, *sp = strchr(w, ' ');
		if (sp == NULL && argc > 1 && strcmp(argv[1], w) == 0) {
			*nwords_r = 1;
			return &acli_subs[i];
		}
		if (sp != NULL && argc > 2 && strncmp(argv[1], w, (size_t)(sp - w)) == 0 &&
		    argv[1][sp - w] == '\0' && strcmp(argv[2], sp + 1) == 0) {
			*nwords_r = 2;
			return &acli_subs[i];
		}
	}
	return NULL;
}

/* "10y", "90d", "2555" (days), "forever" → days (-1 forever). */
static int
acli_days(const char *s, long long *days_r)
{
	if (strcmp(s, "forever") == 0) {
		*days_r = -1;
		return 0;
	}
	char *end = NULL;
	long long n = strtoll(s, &end, 10);
	if (end == s || n < 0 || n > 100000)
		return -1;
	if (*end == 'y' && end[1] == '\0')
		n *= 365;
	else if (*end == 'm' && end[1] == '\0')
		n *= 30;
	else if (*end == 'w' && end[1] == '\0')
		n *= 7;
	else if (!(*end == '\0' || (*end == 'd' && end[1] == '\0')))
		return -1;
	*days_r = n;
	return 0;
}

/* An absolute form of p (the daemon resolves nothing): realpath, or cwd + p
 * for an output file that does not exist yet. */
static int
acli_path(const char *p, json_t **v_r)
{
	char *abs = realpath(p, NULL);
	char cwd[PATH_MAX];
	if (abs != NULL) {
		*v_r = json_string(abs);
		free(abs);
		return 0;
	}
	if (p[0] == '/') {
		*v_r = json_string(p);
		return 0;
	}
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s/%s", cwd, p);
	*v_r = json_string(buf_cstr(&b));
	buf_free(&b);
	return 0;
}

static const struct acli_opt *
acli_opt_find(const struct acli_sub *s, const char *flag)
{
	for (size_t i = 0; i < 8 && s->opts[i].flag != NULL; i++)
		if (strcmp(s->opts[i].flag, flag) == 0)
			return &s->opts[i];
	return NULL;
}

static int
acli_set_opt(const struct acli_opt *o, const char *val, json_t *args)
{
	json_t *v = NULL;
	long long days;
	if (o->kind == AO_PATH && acli_path(val, &v) < 0)
		return acli_usage("no such file or directory", val);
	if (o->kind == AO_DAYS) {
		if (acli_days(val, &days) < 0)
			return acli_usage("bad retention period (e.g. 10y, 90d, forever)", val);
		v = json_integer(days);
	}
	if (o->kind == AO_STRING)
		v = json_string(val);
	json_t *cur = json_object_get(args, o->key);
	if (o->kind == AO_PATH && json_is_array(cur)) {
		json_array_append_new(cur, v);
		return 0;
	}
	json_object_set_new(args, o->key, o->kind == AO_PATH ? json_pack("[o]", v) : v);
	return 0;
}

/* Options and positionals into args; *json_r for --json.  0 or exit status 2. */
static int
acli_parse(const struct acli_sub *s, int argc, char **argv, json_t *args, int *json_r)
{
	int npos = 0;
	const struct acli_opt *last_path = NULL;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const struct acli_opt *o;
		if (strcmp(a, "--json") == 0) {
			*json_r = 1;
		} else if ((o = acli_opt_find(s, a)) != NULL && o->kind == AO_FLAG) {
			json_object_set_new(args, o->key, json_true());
		} else if (o != NULL) {
			if (i + 1 >= argc)
				return acli_usage("option needs a value", a);
			if (acli_set_opt(o, argv[++i], args) != 0)
				return 2;
			last_path = o->kind == AO_PATH ? o : NULL;
		} else if (a[0] == '-' && a[1] != '\0') {
			return acli_usage("unknown option", a);
		} else if (npos < 3 && s->pos[npos] != NULL) {
			json_object_set_new(args, s->pos[npos++], json_string(a));
		} else if (last_path != NULL && strcmp(last_path->key, "eml") == 0) {
			if (acli_set_opt(last_path, a, args) != 0)   /* --eml a.eml b.eml … */
				return 2;
		} else {
			return acli_usage("too many arguments", a);
		}
	}
	if (npos < s->npos_min)
		return acli_usage("missing arguments", s->words);
	return 0;
}

/* import: exactly one source option → {kind, paths}. */
static int
acli_import_args(json_t *args)
{
	static const char *const kinds[] = { "mbox", "maildir", "pst", "eml" };
	const char *kind = NULL;
	for (size_t i = 0; i < 4; i++) {
		json_t *p = json_object_get(args, kinds[i]);
		if (p == NULL)
			continue;
		if (kind != NULL)
			return acli_usage("give one source", "--pst, --mbox, --maildir or --eml");
		kind = kinds[i];
		json_object_set(args, "paths", p);
	}
	if (kind == NULL)
		return acli_usage("missing source", "--pst, --mbox, --maildir or --eml");
	for (size_t i = 0; i < 4; i++)
		json_object_del(args, kinds[i]);
	json_object_set_new(args, "kind", json_string(kind));
	return 0;
}

/* retention add: the one of --folder/--address/--domain/--keyword → {kind, match}. */
static int
acli_rule_args(json_t *args)
{
	static const char *const kinds[] = { "folder", "address", "domain", "keyword" };
	int found = 0;
	for (size_t i = 0; i < 4; i++) {
		json_t *v = json_object_get(args, kinds[i]);
		if (v == NULL)
			continue;
		json_object_set_new(args, "kind", json_string(kinds[i]));
		json_object_set(args, "match", v);
		json_object_del(args, kinds[i]);
		found++;
	}
	if (found != 1)
		return acli_usage("give one of", "--folder, --address, --domain or --keyword");
	if (json_object_get(args, "days") == NULL)
		return acli_usage("missing option", "--keep");
	return 0;
}

static int
acli_confirm(const struct acli_sub *s, json_t *args)
{
	int needs = strcmp(s->cmd, "archive.shred") == 0 ||
	    strcmp(s->cmd, "archive.retention.lock") == 0;
	if (needs && !json_is_true(json_object_get(args, "yes")))
		return acli_usage(strcmp(s->cmd, "archive.shred") == 0 ?
		    "shredding destroys the tenant's archive for ever; add --yes" :
		    "a retention lock can never be undone; add --yes", NULL);
	json_object_del(args, "yes");
	return 0;
}

/* ------------------------------------------------------------ printing */

static void
acli_progress(const char *kind, long long done, long long total, int final)
{
	if (!isatty(STDERR_FILENO))
		return;
	if (total > 0) {
		int width = 40, fill = (int)(done * width / (total > 0 ? total : 1));
		if (fill > width)
			fill = width;
		fprintf(stderr, "\r%-8s [%.*s%*s] %3lld%%", kind, fill,
		    "########################################", width - fill, "",
		    done * 100 / total);
	} else {
		fprintf(stderr, "\r%-8s %lld", kind, done);
	}
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

static long long
acli_int(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static const char *
acli_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static void
acli_date(time_t t, char *out, size_t len)
{
	struct tm tm;
	if (t <= 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(out, len, "-");
	else
		strftime(out, len, "%Y-%m-%d %H:%M", &tm);
}

static void
acli_print_search(json_t *r)
{
	size_t i;
	json_t *h;
	printf("%lld messages", acli_int(r, "total"));
	if (acli_int(r, "total") > (long long)json_array_size(json_object_get(r, "hits")))
		printf(" (showing %lld from %lld)", (long long)json_array_size(json_object_get(r,
		    "hits")), acli_int(r, "offset") + 1);
	printf("\n");
	json_array_foreach(json_object_get(r, "hits"), i, h) {
		char when[32];
		acli_date((time_t)acli_int(h, "date"), when, sizeof(when));
		printf("%-8lld %s  %-28.28s  %s%s\n         %s\n", acli_int(h, "id"), when,
		    acli_str(h, "from"), acli_str(h, "subject"),
		    json_is_true(json_object_get(h, "has_attachment")) ? "  [attachment]" : "",
		    acli_str(h, "snippet"));
	}
}

static int
acli_print_raw(json_t *r)
{
	const char *b64 = acli_str(r, "raw_base64");
	size_t cap = strlen(b64) / 4 * 3 + 3, len = 0;
	unsigned char *raw = xmalloc(cap);
	if (sodium_base642bin(raw, cap, b64, strlen(b64), NULL, &len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(raw);
		fprintf(stderr, "mailark: malformed answer from the daemon\n");
		return 1;
	}
	int rc = fwrite(raw, 1, len, stdout) == len ? 0 : 1;
	free(raw);
	return rc;
}

static void
acli_print_import(json_t *r)
{
	size_t i;
	json_t *f;
	printf("imported %lld, duplicates %lld, failed %lld\n", acli_int(r, "imported"),
	    acli_int(r, "duplicates"), acli_int(r, "failed"));
	json_array_foreach(json_object_get(r, "failures"), i, f)
		printf("  failed: %s: %s\n", acli_str(f, "item"), acli_str(f, "reason"));
}

static int
acli_print_result(const struct acli_sub *s, json_t *args, json_t *r, int json)
{
	if (json_is_true(json_object_get(args, "raw")))
		return acli_print_raw(r);
	if (json) {
		char *text = json_dumps(r ? r : json_null(), JSON_INDENT(2) | JSON_ENCODE_ANY);
		printf("%s\n", text ? text : "null");
		free(text);
	} else if (strcmp(s->cmd, "archive.search") == 0) {
		acli_print_search(r);
	} else if (strcmp(s->cmd, "archive.import") == 0) {
		acli_print_import(r);
	} else if (strcmp(s->cmd, "archive.verify") == 0) {
		printf("%s: %lld blobs (%lld bad), %lld entries (%lld without blob), %lld "
		    "unreferenced blobs, index: %lld missing, %lld extra\n%s",
		    json_is_true(json_object_get(r, "intact")) ? "intact" : "DISCREPANCIES",
		    acli_int(r, "blobs"), acli_int(r, "blobs_bad"), acli_int(r, "entries"),
		    acli_int(r, "entries_missing_blob"), acli_int(r, "blobs_unreferenced"),
		    acli_int(r, "index_missing"), acli_int(r, "index_extra"), acli_str(r, "report"));
	} else {
		char *text = json_dumps(r ? r : json_null(), JSON_INDENT(2) | JSON_ENCODE_ANY);
		printf("%s\n", text ? text : "null");
		free(text);
	}
	if (strcmp(s->cmd, "archive.verify") == 0 && !json_is_true(json_object_get(r, "intact")))
		return 1;
	return 0;
}

/* Polls the job until it ends: 0 with *result_r, -1 (failed: printed). */
static int
acli_wait(const struct config *cfg, const char *tenant, const char *kind, json_t *started,
    json_t **result_r)
{
	json_t *args = json_pack("{s:s, s:I}", "tenant", tenant, "id",
	    json_integer_value(json_object_get(started, "job")));
	struct timespec pause = { 0, 200 * 1000 * 1000 };
	int rc = -1;
	for (long i = 0; i < ACLI_WAIT_SECS * 5L; i++) {
		json_t *r = NULL;
		if (cli_call(cfg, "archive.job", args, &r) < 0)
			break;
		const char *state = acli_str(r, "state");
		acli_progress(kind, acli_int(r, "done"), acli_int(r, "total"),
		    strcmp(state, "running") != 0);
		if (strcmp(state, "done") == 0) {
			*result_r = json_incref(json_object_get(r, "result"));
			rc = 0;
		} else if (strcmp(state, "failed") == 0) {
			fprintf(stderr, "mailark: %s failed: %s\n", kind, acli_str(r, "error"));
		}
		int running = strcmp(state, "running") == 0;
		json_decref(r);          /* state points into r */
		if (!running)
			break;
		nanosleep(&pause, NULL);
	}
	json_decref(args);
	return rc;
}

static int
acli_prepare(const struct acli_sub *s, json_t *args)
{
	if (strcmp(s->cmd, "archive.import") == 0)
		return acli_import_args(args);
	if (strcmp(s->cmd, "archive.retention.rule.add") == 0)
		return acli_rule_args(args);
	if (strcmp(s->cmd, "archive.export") == 0 && json_object_get(args, "out") == NULL)
		return acli_usage("missing option", "--out");
	if (strcmp(s->cmd, "archive.export") == 0)   /* --out is one path, not a list */
		json_object_set(args, "out", json_array_get(json_object_get(args, "out"), 0));
	return acli_confirm(s, args);
}

int
cli_archive_run(const struct config *cfg, int argc, char **argv)
{
	int nwords = 0, json = 0;
	const struct acli_sub *s = acli_find(argc, argv, &nwords);
	if (s == NULL)
		return acli_usage("unknown subcommand", argc > 1 ? argv[1] : NULL);
	json_t *args = json_object(), *r = NULL;
	int rc = acli_parse(s, argc - 1 - nwords, argv + 1 + nwords, args, &json);
	if (rc == 0)
		rc = acli_prepare(s, args);
	if (rc == 0)
		rc = cli_call(cfg, s->cmd, args, &r) < 0 ? 1 : 0;
	if (rc == 0 && s->job && json_object_get(r, "pending_approval") == NULL) {
		json_t *started = r;
		r = NULL;
		rc = acli_wait(cfg, acli_str(args, "tenant"), s->words, started, &r) < 0 ? 1 : 0;
		json_decref(started);
	}
	if (rc == 0)
		rc = acli_print_result(s, args, r, json);
	json_decref(r);
	json_decref(args);
	return rc;
}
