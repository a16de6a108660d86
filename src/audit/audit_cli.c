/*
 * audit_cli.c — `mailark audit verify` and `mailark audit list`.
 *
 * verify always opens mailark.db read-only itself, so it works whether the
 * daemon runs or not (WAL lets a reader in beside the writer) and does not
 * depend on the daemon it may be checking up on.  list asks the running
 * daemon (the audit.list control command, authorised like every command)
 * and, when no daemon answers, reads the database read-only itself.
 * Exit status: 0 good, 1 bad or failed, 2 usage.
 */
#include "audit/audit.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit_internal.h"
#include "config/config.h"
#include "control/control.h"
#include "lib/buf.h"
#include "lib/strutil.h"

struct audit_cli_opts {
	int json;
	const char *pubkey, *tenant, *since, *actor, *limit;
};

static int
audit_cli_usage(const char *why, const char *what)
{
	fprintf(stderr, "mailark: %s%s%s\n"
	    "usage: mailark audit verify [--pubkey FILE] [--json]\n"
	    "       mailark audit list [--tenant T] [--since TIME] [--actor A] [--limit N] "
	    "[--json]\n", why, what ? ": " : "", what ? what : "");
	return 2;
}

/* Which option slot does name fill for this subcommand?  NULL: none. */
static const char **
audit_cli_slot(struct audit_cli_opts *o, int verify, const char *name, size_t len)
{
	static const char *const vnames[] = { "pubkey" };
	static const char *const lnames[] = { "tenant", "since", "actor", "limit" };
	const char **vslots[] = { &o->pubkey };
	const char **lslots[] = { &o->tenant, &o->since, &o->actor, &o->limit };
	const char *const *names = verify ? vnames : lnames;
	const char ***slots = verify ? vslots : lslots;
	size_t n = verify ? 1 : 4;
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == len && strncmp(names[i], name, len) == 0)
			return slots[i];
	return NULL;
}

static int
audit_cli_parse(int verify, int argc, char **argv, struct audit_cli_opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			o->json = 1;
			continue;
		}
		if (strncmp(a, "--", 2) != 0)
			return audit_cli_usage("unexpected argument", a);
		const char *eq = strchr(a + 2, '=');
		size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		const char **slot = audit_cli_slot(o, verify, a + 2, len);
		if (slot == NULL)
			return audit_cli_usage("unknown option", a);
		if (eq == NULL && i + 1 >= argc)
			return audit_cli_usage("option needs a value", a);
		*slot = eq ? eq + 1 : argv[++i];
	}
	return 0;
}

/* ---- verify -------------------------------------------------------------- */

static int
audit_cli_verify(const struct config *cfg, const struct audit_cli_opts *o)
{
	unsigned char pk[AUDIT_PUBKEY_LEN];
	struct audit *a = NULL;
	char *err = NULL, *report = NULL;
	if ((o->pubkey != NULL && audit_pubkey_load(o->pubkey, pk, &err) < 0) ||
	    audit_open(cfg->data_dir, 1, &a, &err) < 0) {
		fprintf(stderr, "mailark: audit: %s\n", err ? err : "cannot open");
		free(err);
		return 1;
	}
	int rc = audit_verify(a, o->pubkey ? pk : NULL, &report);
	audit_close(&a);
	if (o->json) {
		json_t *j = json_pack("{s:b, s:s}", "ok", rc == 0, "report", report);
		char *text = json_dumps(j, JSON_INDENT(2));
		printf("%s\n", text ? text : "null");
		free(text);
		json_decref(j);
	} else {
		printf("%s\n", report);
	}
	free(report);
	return rc == 0 && fflush(stdout) == 0 ? 0 : 1;
}

/* ---- list ---------------------------------------------------------------- */

/* Terminal-safe: control characters from outside become '?'. */
static void
audit_cli_put(const char *s, int width)
{
	struct buf b = BUF_INIT;
	for (const char *p = s ? s : "-"; *p != '\0'; p++)
		buf_append_char(&b, (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
	printf("%-*s", width, buf_cstr(&b));
	buf_free(&b);
}

static void
audit_cli_print_entry(json_t *e)
{
	const char *cols[] = { "time", "actor", "role", "tenant", "action", "outcome" };
	const int widths[] = { 28, 24, 9, 14, 18, 8 };
	printf("%-7lld ", (long long)json_integer_value(json_object_get(e, "seq")));
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		audit_cli_put(json_string_value(json_object_get(e, cols[i])), widths[i]);
		putchar(' ');
	}
	audit_cli_put(json_string_value(json_object_get(e, "object")), 0);
	const char *detail = json_string_value(json_object_get(e, "detail"));
	if (detail != NULL) {
		fputs(" (", stdout);
		audit_cli_put(detail, 0);
		putchar(')');
	}
	putchar('\n');
}

static int
audit_cli_print_list(json_t *result, int json)
{
	if (json) {
		char *text = json_dumps(result, JSON_INDENT(2));
		printf("%s\n", text ? text : "[]");
		free(text);
	} else {
		printf("%-7s %-28s %-24s %-9s %-14s %-18s %-8s %s\n", "SEQ", "TIME", "ACTOR", "ROLE",
		    "TENANT", "ACTION", "OUTCOME", "OBJECT");
		size_t i;
		json_t *e;
		json_array_foreach(result, i, e)
			audit_cli_print_entry(e);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The daemon is not running: read mailark.db read-only. */
static int
audit_cli_list_direct(const struct config *cfg, const struct audit_cli_opts *o,
    json_t **result_r, char **err_r)
{
	struct store_audit_filter f = { o->tenant, o->actor, 0, 100 };
	uint64_t limit;
	if (o->since != NULL && audit_parse_time(o->since, time(NULL), &f.since_us) < 0) {
		fprintf(stderr, "mailark: invalid time '%s' (expected e.g. 2h, 3d, 2024-05-01 or "
		    "2024-05-01T12:00:00Z)\n", o->since);
		return 2;
	}
	if (o->limit != NULL && (str_parse_u64(o->limit, &limit) < 0 || limit == 0))
		return audit_cli_usage("invalid limit", o->limit);
	if (o->limit != NULL)
		f.limit = limit > 10000 ? 10000 : (long long)limit;
	struct audit *a;
	if (audit_open(cfg->data_dir, 1, &a, err_r) < 0)
		return 1;
	int rc = audit_list_json(a, &f, result_r, err_r) < 0 ? 1 : 0;
	audit_close(&a);
	return rc;
}

/* 0 with *result_r; 1 refused (printed); -1 no daemon. */
static int
audit_cli_list_daemon(const struct config *cfg, const struct audit_cli_opts *o,
    json_t **result_r)
{
	json_t *args = json_object();
	const char *keys[] = { "tenant", "since", "actor", "limit" };
	const char *vals[] = { o->tenant, o->since, o->actor, o->limit };
	for (size_t i = 0; i < 4; i++)
		if (vals[i] != NULL)
			json_object_set_new(args, keys[i], json_string(vals[i]));
	json_t *req = json_pack("{s:s, s:o}", "cmd", "audit.list", "args", args);
	char *text = json_dumps(req, JSON_COMPACT), *resp = NULL, *err = NULL;
	json_decref(req);
	int rc = control_request(cfg->data_dir, text, &resp, &err);
	free(text);
	free(err);
	if (rc < 0)
		return -1;
	json_t *answer = json_loads(resp, 0, NULL);
	free(resp);
	if (!json_is_true(json_object_get(answer, "ok"))) {
		const char *e = json_string_value(json_object_get(answer, "error"));
		fprintf(stderr, "mailark: %s\n", e ? e : "malformed answer from the daemon");
		json_decref(answer);
		return 1;
	}
	*result_r = json_incref(json_object_get(answer, "result"));
	json_decref(answer);
	return 0;
}

static int
audit_cli_list(const struct config *cfg, const struct audit_cli_opts *o)
{
	json_t *result = NULL;
	char *err = NULL;
	int rc = audit_cli_list_daemon(cfg, o, &result);
	if (rc < 0)
		rc = audit_cli_list_direct(cfg, o, &result, &err);
	if (rc != 0) {
		if (err != NULL)
			fprintf(stderr, "mailark: audit: %s\n", err);
		free(err);
		return rc;
	}
	rc = audit_cli_print_list(result, o->json);
	json_decref(result);
	return rc;
}

int
audit_cli_run(const struct config *cfg, int argc, char **argv)
{
	struct audit_cli_opts o;
	if (argc < 2)
		return audit_cli_usage("missing subcommand", NULL);
	int verify = strcmp(argv[1], "verify") == 0;
	if (!verify && strcmp(argv[1], "list") != 0)
		return audit_cli_usage("unknown subcommand", argv[1]);
	int rc = audit_cli_parse(verify, argc - 2, argv + 2, &o);
	if (rc != 0)
		return rc;
	return verify ? audit_cli_verify(cfg, &o) : audit_cli_list(cfg, &o);
}
