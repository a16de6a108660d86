/*
 * cli_spam.c — `mailark spam train|classify|stats` (cli_spam.h).
 *
 * Message files travel base64-encoded (byte-exact, whatever their charset)
 * in batches of about SPAM_REQ_MAX bytes and at most SPAM_REQ_FILES files
 * (a larger file goes alone), under
 * the control socket's 96 MiB request limit; a file larger than
 * SPAM_FILE_MAX is skipped with a message, never sent cut.  `spam train`
 * sends its batches, then waits until the daemon's workers have learnt
 * them all (spam.stats "pending") before it prints the counts.
 */
#include "cli/cli_spam.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "cli/cli.h"
#include "lib/buf.h"
#include "lib/mem.h"

#define SPAM_REQ_MAX (4 * 1024 * 1024)
#define SPAM_REQ_FILES 500        /* the daemon takes at most 1000 messages a request */
#define SPAM_FILE_MAX (64 * 1024 * 1024)   /* base64: 86 MiB, under the socket's 96 MiB */
#define SPAM_WAIT_SEC 1800
#define SPAM_FILES_MAX 1000000

static const char spam_usage[] =
    "usage: mailark spam train TENANT [--spam DIR] [--ham DIR] [--json]\n"
    "       mailark spam classify TENANT FILE... [--json]\n"
    "       mailark spam stats TENANT [--json]\n";

static int
usage(void)
{
	fputs(spam_usage, stderr);
	return 2;
}

struct file_list {
	char **paths;
	size_t n;
};

static int
path_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir (not recursive). */
static int
list_dir(const char *dir, struct file_list *l)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && l->n < SPAM_FILES_MAX) {
		if (e->d_name[0] == '.')
			continue;
		char *p = buf_printf("%s/%s", dir, e->d_name);
		struct stat st;
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			l->paths = xrealloc(l->paths, (l->n + 1) * sizeof(char *));
			l->paths[l->n++] = p;
		} else {
			free(p);
		}
	}
	closedir(d);
	return 0;
}

/* A directory of message files, or a Maildir (its cur/ and new/). */
static int
collect(const char *dir, struct file_list *l)
{
	char *cur = buf_printf("%s/cur", dir), *new = buf_printf("%s/new", dir);
	struct stat st;
	int rc;
	if (stat(cur, &st) == 0 && S_ISDIR(st.st_mode))
		rc = list_dir(cur, l) < 0 || list_dir(new, l) < 0 ? -1 : 0;
	else
		rc = list_dir(dir, l);
	free(cur);
	free(new);
	if (rc < 0) {
		fprintf(stderr, "mailark: cannot read directory %s\n", dir);
		return -1;
	}
	qsort(l->paths, l->n, sizeof(char *), path_cmp);
	return 0;
}

static void
file_list_free(struct file_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	l->paths = NULL;
	l->n = 0;
}

/* The whole file, base64-encoded (caller frees); NULL when it cannot be sent. */
static char *
read_b64(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "mailark: cannot open %s\n", path);
		return NULL;
	}
	struct stat st;
	if (fstat(fileno(f), &st) < 0 || st.st_size <= 0 || st.st_size > SPAM_FILE_MAX) {
		fprintf(stderr, "mailark: %s: %s, skipped\n", path,
		    st.st_size > SPAM_FILE_MAX ? "larger than 64 MiB" : "empty or unreadable");
		fclose(f);
		return NULL;
	}
	unsigned char *raw = xmalloc((size_t)st.st_size);
	size_t n = fread(raw, 1, (size_t)st.st_size, f);
	int bad = ferror(f);
	fclose(f);
	if (bad || n == 0) {
		fprintf(stderr, "mailark: cannot read %s (or it is empty)\n", path);
		free(raw);
		return NULL;
	}
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = xmalloc(cap);
	sodium_bin2base64(b64, cap, raw, n, sodium_base64_VARIANT_ORIGINAL);
	free(raw);
	return b64;
}

/* ---- train ------------------------------------------------------------ */

static int
send_batch(const struct config *cfg, const char *tenant, json_t *spam, json_t *ham)
{
	json_t *args = json_pack("{s:s, s:s, s:O, s:O}", "tenant", tenant, "encoding", "base64",
	    "spam", spam, "ham", ham);
	json_t *r = NULL;
	int rc = cli_call(cfg, "spam.train", args, &r);
	json_decref(args);
	json_decref(r);
	json_array_clear(spam);
	json_array_clear(ham);
	return rc;
}

/* Sends the files in batches that fit a request; counts what was sent. */
static int
train_files(const struct config *cfg, const char *tenant, const struct file_list *l, int is_spam,
    size_t *sent_r)
{
	json_t *spam = json_array(), *ham = json_array();
	size_t batch = 0;
	int rc = 0;
	for (size_t i = 0; i < l->n && rc == 0; i++) {
		char *b64 = read_b64(l->paths[i]);
		if (b64 == NULL)
			continue;
		size_t len = strlen(b64);
		size_t nbatch = json_array_size(spam) + json_array_size(ham);
		if (batch > 0 && (batch + len + 16 > SPAM_REQ_MAX || nbatch >= SPAM_REQ_FILES)) {
			rc = send_batch(cfg, tenant, spam, ham);
			batch = 0;
		}
		json_array_append_new(is_spam ? spam : ham, json_string(b64));
		batch += len + 4;
		(*sent_r)++;
		free(b64);
	}
	if (rc == 0 && batch > 0)
		rc = send_batch(cfg, tenant, spam, ham);
	json_decref(spam);
	json_decref(ham);
	return rc;
}

static json_t *
stats_call(const struct config *cfg, const char *tenant)
{
	json_t *args = json_pack("{s:s}", "tenant", tenant), *r = NULL;
	int rc = cli_call(cfg, "spam.stats", args, &r);
	json_decref(args);
	return rc == 0 ? r : NULL;
}

/* Waits until the daemon has learnt everything it was sent. */
static json_t *
wait_learnt(const struct config *cfg, const char *tenant)
{
	time_t until = time(NULL) + SPAM_WAIT_SEC;
	for (;;) {
		json_t *r = stats_call(cfg, tenant);
		if (r == NULL)
			return NULL;
		if (json_integer_value(json_object_get(r, "pending")) == 0 || time(NULL) > until)
			return r;
		json_decref(r);
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void
print_stats(json_t *r, int json)
{
	if (json) {
		char *s = json_dumps(r, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (s != NULL)
			puts(s);
		free(s);
		return;
	}
	json_t *own = json_object_get(r, "own"), *global = json_object_get(r, "global");
	printf("tenant %s: %lld spam, %lld ham, %lld tokens\n",
	    json_string_value(json_object_get(r, "tenant")),
	    (long long)json_integer_value(json_object_get(own, "spam")),
	    (long long)json_integer_value(json_object_get(own, "ham")),
	    (long long)json_integer_value(json_object_get(own, "tokens")));
	printf("global: %lld spam, %lld ham, %lld tokens\n",
	    (long long)json_integer_value(json_object_get(global, "spam")),
	    (long long)json_integer_value(json_object_get(global, "ham")),
	    (long long)json_integer_value(json_object_get(global, "tokens")));
	printf("classifier: %s counts\n", json_string_value(json_object_get(r, "classifier")));
}

static int
cmd_train(const struct config *cfg, int argc, char **argv)
{
	const char *spam_dir = NULL, *ham_dir = NULL;
	int json = 0;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--spam") == 0 && i + 1 < argc)
			spam_dir = argv[++i];
		else if (strcmp(argv[i], "--ham") == 0 && i + 1 < argc)
			ham_dir = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			return usage();
	}
	if (spam_dir == NULL && ham_dir == NULL)
		return usage();
	const char *tenant = argv[2];
	struct file_list spam = { NULL, 0 }, ham = { NULL, 0 };
	size_t nspam = 0, nham = 0;
	int rc = 0;
	if ((spam_dir != NULL && collect(spam_dir, &spam) < 0) ||
	    (ham_dir != NULL && collect(ham_dir, &ham) < 0))
		rc = -1;
	if (rc == 0)
		rc = train_files(cfg, tenant, &spam, 1, &nspam);
	if (rc == 0)
		rc = train_files(cfg, tenant, &ham, 0, &nham);
	file_list_free(&spam);
	file_list_free(&ham);
	if (rc < 0)
		return 1;
	json_t *r = wait_learnt(cfg, tenant);
	if (r == NULL)
		return 1;
	if (!json)
		printf("sent %zu spam and %zu ham messages\n", nspam, nham);
	print_stats(r, json);
	json_decref(r);
	return 0;
}

/* ---- classify / stats --------------------------------------------------- */

static int
cmd_classify(const struct config *cfg, int argc, char **argv)
{
	int json = 0, failed = 0;
	json_t *all = json_array();
	for (int i = 3; i < argc; i++)
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			continue;
		char *b64 = read_b64(argv[i]);
		if (b64 == NULL) {
			failed = 1;
			continue;
		}
		json_t *args = json_pack("{s:s, s:s, s:s}", "tenant", argv[2], "encoding", "base64",
		    "message", b64), *r = NULL;
		free(b64);
		int rc = cli_call(cfg, "spam.classify", args, &r);
		json_decref(args);
		if (rc < 0) {
			failed = 1;
			continue;
		}
		if (json) {
			json_object_set_new(r, "file", json_string(argv[i]));
			json_array_append(all, r);
		} else {
			printf("%s %.1f %s\n", argv[i], json_real_value(json_object_get(r, "score")),
			    json_string_value(json_object_get(r, "verdict")));
		}
		json_decref(r);
	}
	if (json) {
		char *s = json_dumps(all, JSON_INDENT(2));
		if (s != NULL)
			puts(s);
		free(s);
	}
	json_decref(all);
	return failed ? 1 : 0;
}

static int
cmd_stats(const struct config *cfg, int argc, char **argv)
{
	int json = argc > 3 && strcmp(argv[3], "--json") == 0;
	json_t *r = stats_call(cfg, argv[2]);
	if (r == NULL)
		return 1;
	print_stats(r, json);
	json_decref(r);
	return 0;
}

int
cli_spam_run(const struct config *cfg, int argc, char **argv)
{
	if (argc < 3 || sodium_init() < 0)
		return usage();
	if (strcmp(argv[1], "train") == 0)
		return cmd_train(cfg, argc, argv);
	if (strcmp(argv[1], "classify") == 0)
		return argc < 4 ? usage() : cmd_classify(cfg, argc, argv);
	if (strcmp(argv[1], "stats") == 0)
		return cmd_stats(cfg, argc, argv);
	return usage();
}
