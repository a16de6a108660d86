/*
 * cli_format.c — tables for people.  A struct cli_table collects cells
 * (copied), then prints them with every column as wide as its widest cell
 * and two spaces between columns.
 */
#include "cli/cli_format.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/mem.h"

#define CLI_MAX_COLS 10

static void cli_print_json_plain(FILE *out, json_t *result);

struct cli_table {
	size_t ncols;
	const char *headers[CLI_MAX_COLS];
	char **cells;               /* nrows * ncols */
	size_t nrows, cap;
};

static void
cli_table_row(struct cli_table *t, const char *const *cols)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof(char *));
	}
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = xstrdup(cols[c] ? cols[c] : "-");
	t->nrows++;
}

static void
cli_table_print(FILE *out, struct cli_table *t, const char *empty)
{
	size_t width[CLI_MAX_COLS];
	if (t->nrows == 0) {
		fprintf(out, "%s\n", empty);
		return;
	}
	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = strlen(t->headers[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t w = strlen(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = r == 0 ? t->headers[c] : t->cells[(r - 1) * t->ncols + c];
			if (c + 1 == t->ncols)
				fprintf(out, "%s\n", cell);
			else
				fprintf(out, "%-*s  ", (int)width[c], cell);
		}
	}
}

static void
cli_table_free(struct cli_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

static const char *
cli_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : "-";
}

/* Local time "2026-01-02 15:04:05", or "-" for 0/absent. */
static void
cli_time(json_t *o, const char *key, char *out, size_t size)
{
	json_int_t v = json_integer_value(json_object_get(o, key));
	time_t t = (time_t)v;
	struct tm tm;
	if (v <= 0 || localtime_r(&t, &tm) == NULL ||
	    strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, size, "-");
}

static void
cli_print_tenants(FILE *out, json_t *result)
{
	struct cli_table t = { 4, { "NAME", "REGION", "UNKNOWN-RECIPIENTS", "CREATED" }, NULL, 0, 0 };
	size_t i;
	json_t *v;
	json_array_foreach(result, i, v) {
		char created[32];
		cli_time(v, "created", created, sizeof(created));
		const char *row[] = { cli_str(v, "name"), cli_str(v, "region"),
			cli_str(v, "unknown_recipients"), created };
		cli_table_row(&t, row);
	}
	cli_table_print(out, &t, "no tenants");
	cli_table_free(&t);
}

static void
cli_print_domains(FILE *out, json_t *result, int routes_only)
{
	struct cli_table t = { 3, { "DOMAIN", "TENANT", "ROUTE" }, NULL, 0, 0 };
	size_t i;
	json_t *v;
	json_array_foreach(result, i, v) {
		const char *row[] = { cli_str(v, "domain"), cli_str(v, "tenant"),
			cli_str(v, "route") };
		cli_table_row(&t, row);
	}
	cli_table_print(out, &t, routes_only ? "no routes" : "no domains");
	cli_table_free(&t);
}

static void
cli_print_relays(FILE *out, json_t *result)
{
	struct cli_table t = { 2, { "TENANT", "NETWORK" }, NULL, 0, 0 };
	size_t i;
	json_t *v;
	json_array_foreach(result, i, v) {
		const char *row[] = { cli_str(v, "tenant"), cli_str(v, "cidr") };
		cli_table_row(&t, row);
	}
	cli_table_print(out, &t, "no relay networks");
	cli_table_free(&t);
}

static void
cli_print_tenant(FILE *out, json_t *v)
{
	char created[32];
	cli_time(v, "created", created, sizeof(created));
	fprintf(out, "name:               %s\nregion:             %s\n"
	    "unknown recipients: %s\ncreated:            %s\n\n", cli_str(v, "name"),
	    cli_str(v, "region"), cli_str(v, "unknown_recipients"), created);
	cli_print_domains(out, json_object_get(v, "domains"), 0);
	fputc('\n', out);
	cli_print_relays(out, json_object_get(v, "relays"));
}

/* "a@example.com (pending), b@example.org (delivered)" and the last reply seen. */
static void
cli_rcpts(json_t *rcpts, struct buf *b, const char **last_reply_r)
{
	size_t i;
	json_t *r;
	*last_reply_r = "-";
	json_array_foreach(rcpts, i, r) {
		buf_appendf(b, "%s%s (%s)", i ? ", " : "", cli_str(r, "addr"), cli_str(r, "state"));
		const char *reply = json_string_value(json_object_get(r, "last_reply"));
		if (reply != NULL)
			*last_reply_r = reply;
	}
}

static void
cli_print_queue(FILE *out, json_t *result)
{
	struct cli_table t = { 9, { "ID", "ARRIVAL", "SIZE", "SENDER", "RECIPIENTS", "HELD",
		"ATTEMPTS", "NEXT-ATTEMPT", "LAST-REPLY" }, NULL, 0, 0 };
	size_t i;
	json_t *v;
	json_array_foreach(result, i, v) {
		char arrival[32], next[32], size[32], attempts[32];
		struct buf rc = BUF_INIT;
		const char *last;
		cli_time(v, "arrival", arrival, sizeof(arrival));
		cli_time(v, "next_attempt", next, sizeof(next));
		snprintf(size, sizeof(size), "%lld",
		    (long long)json_integer_value(json_object_get(v, "size")));
		snprintf(attempts, sizeof(attempts), "%lld",
		    (long long)json_integer_value(json_object_get(v, "attempts")));
		cli_rcpts(json_object_get(v, "recipients"), &rc, &last);
		const char *sender = cli_str(v, "sender");
		const char *row[] = { cli_str(v, "id"), arrival, size, sender[0] ? sender : "<>",
			buf_cstr(&rc), json_is_true(json_object_get(v, "held")) ? "yes" : "no",
			attempts, next, last };
		cli_table_row(&t, row);
		buf_free(&rc);
	}
	cli_table_print(out, &t, "queue is empty");
	cli_table_free(&t);
}

static void
cli_print_entry(FILE *out, json_t *v)
{
	char arrival[32], next[32], lastat[32];
	cli_time(v, "arrival", arrival, sizeof(arrival));
	cli_time(v, "next_attempt", next, sizeof(next));
	cli_time(v, "last_attempt", lastat, sizeof(lastat));
	const char *sender = cli_str(v, "sender");
	fprintf(out, "id:           %s\ndirection:    %s\ntenant:       %s\n"
	    "sender:       %s\nclient:       %s\narrival:      %s\nsize:         %lld\n"
	    "held:         %s\nattempts:     %lld\nlast attempt: %s\nnext attempt: %s\n\n",
	    cli_str(v, "id"), cli_str(v, "direction"), cli_str(v, "tenant"),
	    sender[0] ? sender : "<>", cli_str(v, "client"), arrival,
	    (long long)json_integer_value(json_object_get(v, "size")),
	    json_is_true(json_object_get(v, "held")) ? "yes" : "no",
	    (long long)json_integer_value(json_object_get(v, "attempts")), lastat, next);
	struct cli_table t = { 3, { "RECIPIENT", "STATE", "LAST-REPLY" }, NULL, 0, 0 };
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(v, "recipients"), i, r) {
		const char *row[] = { cli_str(r, "addr"), cli_str(r, "state"),
			cli_str(r, "last_reply") };
		cli_table_row(&t, row);
	}
	cli_table_print(out, &t, "no recipients");
	cli_table_free(&t);
}

/* A policy value as text (strings as they are, numbers and booleans as JSON); caller frees. */
static char *
cli_policy_value(json_t *v)
{
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	char *s = json_dumps(v, JSON_ENCODE_ANY);
	return s != NULL ? s : xstrdup("-");
}

/* policy.show: "key = value", "(default ...)" when set, then the help indented. */
static void
cli_print_policy(FILE *out, json_t *result)
{
	size_t i;
	json_t *v;
	json_array_foreach(result, i, v) {
		char *val = cli_policy_value(json_object_get(v, "value"));
		fprintf(out, "%s = %s", cli_str(v, "key"), val);
		if (json_is_true(json_object_get(v, "set"))) {
			char *def = cli_policy_value(json_object_get(v, "default"));
			fprintf(out, "   (set; default %s)", *def != '\0' ? def : "empty");
			free(def);
		}
		fprintf(out, "\n    %s\n", cli_str(v, "help"));
		free(val);
	}
	if (json_array_size(result) == 0)
		fprintf(out, "no policy keys\n");
}

/* quarantine.list: one line per held message. */
static void
cli_print_quarantine(FILE *out, json_t *result)
{
	struct cli_table t = { 6, { "ID", "TIME", "TO", "FROM", "SUBJECT", "REASONS" },
		NULL, 0, 0 };
	size_t i;
	json_t *v;
	json_array_foreach(result, i, v) {
		char when[32];
		cli_time(v, "time", when, sizeof(when));
		json_t *rc = json_object_get(v, "rcpts");
		char *to = buf_printf("%s%s", json_string_value(json_array_get(rc, 0)) ?
		    json_string_value(json_array_get(rc, 0)) : "-",
		    json_array_size(rc) > 1 ? " +" : "");
		const char *from = cli_str(v, "from");
		const char *row[] = { cli_str(v, "id"), when, to,
			strcmp(from, "") != 0 && strcmp(from, "-") != 0 ? from : cli_str(v, "sender"),
			cli_str(v, "subject"), cli_str(v, "reasons") };
		cli_table_row(&t, row);
		free(to);
	}
	cli_table_print(out, &t, "the quarantine is empty");
	cli_table_free(&t);
}

/* quarantine.show: key: value lines, then the headers. */
static void
cli_print_quarantine_item(FILE *out, json_t *v)
{
	char when[32];
	cli_time(v, "time", when, sizeof(when));
	fprintf(out, "id:         %s\ntenant:     %s\nheld since: %s\ndirection:  %s\n"
	    "sender:     <%s>\n", cli_str(v, "id"), cli_str(v, "tenant"), when,
	    cli_str(v, "direction"), cli_str(v, "sender"));
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(v, "rcpts"), i, r)
		fprintf(out, "recipient:  <%s>\n", json_string_value(r) ? json_string_value(r) : "");
	fprintf(out, "client:     %s (%s)\nsize:       %lld\nscore:      %.1f\nreasons:    %s\n\n",
	    cli_str(v, "client"), cli_str(v, "helo"),
	    (long long)json_integer_value(json_object_get(v, "size")),
	    json_number_value(json_object_get(v, "score")), cli_str(v, "reasons"));
	fprintf(out, "%s", cli_str(v, "headers"));
}

/* One line for commands that change something. */
static void
cli_print_done(FILE *out, const char *cmd, json_t *args, json_t *result)
{
	const char *a = cli_str(args, "name");
	const char *t = cli_str(json_is_object(result) ? result : args, "tenant");
	const char *d = cli_str(json_is_object(result) ? result : args, "domain");
	const char *c = cli_str(json_is_object(result) ? result : args, "cidr");
	const char *id = cli_str(args, "id");
	if (strcmp(cmd, "tenant.add") == 0)
		fprintf(out, "tenant %s added (region %s)\n", cli_str(result, "name"),
		    cli_str(result, "region"));
	else if (strcmp(cmd, "tenant.remove") == 0)
		fprintf(out, "tenant %s removed\n", a);
	else if (strcmp(cmd, "domain.add") == 0)
		fprintf(out, "domain %s added to tenant %s\n", d, t);
	else if (strcmp(cmd, "domain.remove") == 0)
		fprintf(out, "domain %s removed from tenant %s\n", d, t);
	else if (strcmp(cmd, "route.set") == 0)
		fprintf(out, "route of %s set to %s\n", d, cli_str(result, "route"));
	else if (strcmp(cmd, "relay.add") == 0)
		fprintf(out, "relay network %s added to tenant %s\n", c, t);
	else if (strcmp(cmd, "relay.remove") == 0)
		fprintf(out, "relay network %s removed from tenant %s\n", c, t);
	else if (strcmp(cmd, "queue.flush") == 0)
		fprintf(out, "queue flushed (%lld messages)\n",
		    (long long)json_integer_value(json_object_get(result, "entries")));
	else if (strcmp(cmd, "queue.hold") == 0)
		fprintf(out, "message %s held\n", id);
	else if (strcmp(cmd, "queue.release") == 0)
		fprintf(out, "message %s released\n", id);
	else if (strcmp(cmd, "queue.delete") == 0)
		fprintf(out, "message %s deleted\n", id);
	else if (strcmp(cmd, "policy.set") == 0)
		fprintf(out, "%s set to %s for tenant %s\n", cli_str(result, "key"),
		    cli_str(result, "value"), t);
	else if (strcmp(cmd, "quarantine.release") == 0)
		fprintf(out, "quarantined message %s released\n", id);
	else if (strcmp(cmd, "quarantine.delete") == 0)
		fprintf(out, "quarantined message %s deleted\n", id);
	else if (strcmp(cmd, "quarantine.digest") == 0)
		fprintf(out, "%lld digest(s) sent\n",
		    (long long)json_integer_value(json_object_get(result, "digests")));
	else if (strncmp(cmd, "dkim.", 5) == 0 && json_is_string(json_object_get(result, "record")))
		fprintf(out, "%s\n", cli_str(result, "record"));
	else if (json_is_object(result) || json_is_array(result))
		cli_print_json_plain(out, result);
	else
		fprintf(out, "ok\n");
}

/* A result no table knows: its JSON, indented (stable key order). */
static void
cli_print_json_plain(FILE *out, json_t *result)
{
	if (json_dumpf(result, out, JSON_INDENT(2) | JSON_SORT_KEYS) == 0)
		fputc('\n', out);
}

void
cli_format_print(FILE *out, const char *cmd, json_t *args, json_t *result)
{
	if (strcmp(cmd, "tenant.list") == 0)
		cli_print_tenants(out, result);
	else if (strcmp(cmd, "tenant.show") == 0)
		cli_print_tenant(out, result);
	else if (strcmp(cmd, "domain.list") == 0)
		cli_print_domains(out, result, 0);
	else if (strcmp(cmd, "route.list") == 0)
		cli_print_domains(out, result, 1);
	else if (strcmp(cmd, "relay.list") == 0)
		cli_print_relays(out, result);
	else if (strcmp(cmd, "queue.list") == 0)
		cli_print_queue(out, result);
	else if (strcmp(cmd, "queue.show") == 0)
		cli_print_entry(out, result);
	else if (strcmp(cmd, "policy.show") == 0)
		cli_print_policy(out, result);
	else if (strcmp(cmd, "quarantine.list") == 0)
		cli_print_quarantine(out, result);
	else if (strcmp(cmd, "quarantine.show") == 0)
		cli_print_quarantine_item(out, result);
	else
		cli_print_done(out, cmd, args, result);
}
