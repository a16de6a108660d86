/*
 * cli_init.c — `mailark init`: creates what a data directory needs and
 * leaves alone whatever already exists, so running it twice is harmless.
 *
 *   data_dir/            0700
 *     queue/             0700
 *     keys/master.key    0600, 32 random bytes (getrandom)
 *     keys/audit.key, audit.pub   the audit trail's Ed25519 signing key
 *     tls/cert.pem, key.pem   self-signed, when the configured ones are missing
 *     mailark.db         schema created by store_open()
 */
#include "cli/cli.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "config/config.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/sys.h"
#include "store/store.h"
#include "tls/tls.h"

#define CLI_MASTER_KEY_LEN 32

struct cli_init {
	const struct config *cfg;
	int created;            /* pieces made by this run */
};

static char *
cli_path(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s/%s", dir, name);
	return buf_steal(&b);
}

static int
cli_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int
cli_fail(const char *what, const char *path, const char *why)
{
	fprintf(stderr, "mailark: %s %s: %s\n", what, path, why);
	return -1;
}

static int
cli_init_dir(struct cli_init *in, const char *path)
{
	if (cli_exists(path))
		return 0;
	if (sys_mkdir_p(path, 0700) < 0)
		return cli_fail("cannot create", path, strerror(errno));
	printf("created %s/\n", path);
	in->created++;
	return 0;
}

static int
cli_init_master_key(struct cli_init *in, const char *keys_dir)
{
	char *path = cli_path(keys_dir, "master.key");
	unsigned char key[CLI_MASTER_KEY_LEN];
	int rc = 0;
	if (cli_exists(path))
		goto out;
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		rc = cli_fail("cannot make", path, strerror(errno));
		goto out;
	}
	if (sys_write_file_atomic(path, key, sizeof(key), 0600) < 0) {
		rc = cli_fail("cannot write", path, strerror(errno));
		goto out;
	}
	printf("created %s\n", path);
	in->created++;
out:
	explicit_bzero(key, sizeof(key));
	free(path);
	return rc;
}

/* keys/audit.key (0600) and keys/audit.pub: the audit trail's signing key. */
static int
cli_init_audit_key(struct cli_init *in)
{
	int created = 0;
	char *err = NULL;
	if (audit_key_init(in->cfg->data_dir, &created, &err) < 0) {
		fprintf(stderr, "mailark: %s\n", err ? err : "cannot create the audit key");
		free(err);
		return -1;
	}
	if (created) {
		printf("created %s/keys/audit.key\n", in->cfg->data_dir);
		in->created++;
	}
	return 0;
}

static int
cli_init_tls(struct cli_init *in)
{
	const struct config *cfg = in->cfg;
	if (cli_exists(cfg->tls_cert) && cli_exists(cfg->tls_key))
		return 0;
	char *dcert = xstrdup(cfg->tls_cert), *dkey = xstrdup(cfg->tls_key);
	int rc = 0;
	if (cli_init_dir(in, dirname(dcert)) < 0 || cli_init_dir(in, dirname(dkey)) < 0) {
		rc = -1;
	} else {
		char *err = NULL;
		if (tls_self_signed(cfg->hostname, cfg->tls_cert, cfg->tls_key, &err) < 0) {
			rc = cli_fail("cannot make a certificate", cfg->tls_cert, err);
			free(err);
		} else {
			printf("created self-signed certificate %s for %s\n", cfg->tls_cert,
			    cfg->hostname);
			in->created++;
		}
	}
	free(dcert);
	free(dkey);
	return rc;
}

/*
 * The install's first operator, operator@local (no password), and one API
 * token for it, printed once: the way in for the HTTP API.  Nothing happens
 * when the operator exists already.
 */
static int
cli_init_operator(struct cli_init *in, struct store *st)
{
	struct store_user u;
	long long id = 0;
	char *token = NULL, *err = NULL;
	int found = store_user_get(st, "operator@local", &u);
	if (found != 0) {
		if (found == 1)
			store_user_clear(&u);
		return found < 0 ? cli_fail("cannot read", "operator@local", "database error") : 0;
	}
	if (store_user_add(st, NULL, "operator@local", "Local operator", "operator", NULL, &id,
	    &err) < 0 || auth_token_issue_st(st, id, "init", 0, &token, NULL, &err) < 0) {
		cli_fail("cannot create", "operator@local", err ? err : "?");
		free(err);
		return -1;
	}
	printf("created operator operator@local\noperator token: %s\n"
	    "(the token is shown only once: store it now; more with 'mailark token create')\n",
	    token);
	explicit_bzero(token, strlen(token));
	free(token);
	in->created++;
	return 0;
}

static int
cli_init_db(struct cli_init *in)
{
	char *path = cli_path(in->cfg->data_dir, "mailark.db");
	int existed = cli_exists(path), rc = 0;
	struct store *st;
	char *err = NULL;
	if (store_open(path, &st, &err) < 0) {
		fprintf(stderr, "mailark: %s\n", err);
		free(err);
		rc = -1;
	} else {
		rc = cli_init_operator(in, st);
		store_close(&st);
		if (!existed) {
			printf("created %s\n", path);
			in->created++;
		}
	}
	free(path);
	return rc;
}

int
cli_init_run(const struct config *cfg)
{
	struct cli_init in = { cfg, 0 };
	const char *dd = cfg->data_dir;
	int existed = cli_exists(dd);
	char *queue = cli_path(dd, "queue"), *keys = cli_path(dd, "keys");
	int rc = -1;
	if (cli_init_dir(&in, dd) == 0 && cli_init_dir(&in, queue) == 0 &&
	    cli_init_dir(&in, keys) == 0 && cli_init_master_key(&in, keys) == 0 &&
	    cli_init_audit_key(&in) == 0 &&
	    cli_init_tls(&in) == 0 && cli_init_db(&in) == 0)
		rc = 0;
	free(queue);
	free(keys);
	if (rc < 0)
		return 1;
	if (existed && in.created == 0)
		printf("data directory %s is already initialised; nothing changed\n", dd);
	else if (existed)
		printf("data directory %s existed; created what was missing\n", dd);
	else
		printf("initialised data directory %s\n", dd);
	return 0;
}

int
cli_initialised(const struct config *cfg, char **missing_r)
{
	static const char *const needed[] = { "mailark.db", "keys/master.key", "queue" };
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		char *p = cli_path(cfg->data_dir, needed[i]);
		if (!cli_exists(p)) {
			*missing_r = p;
			return 0;
		}
		free(p);
	}
	return 1;
}
