/*
 * Unit tests for the authorisation policy (control_authz.c): the decision
 * table, that every control command has a rule, and control_authorize()
 * resolving objects (domains, tokens, user addresses, queue ids) to their
 * tenant in a real mailark.db.
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

#include "auth/principal.h"
#include "control/control_authz.h"
#include "control/control_handlers.h"
#include "server.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct server srv;
	long long admin_a, user_a, user_a2, admin_b;
};

static char *
must_ok(int rc, char *err)
{
	if (rc < 0)
		fail_msg("setup: %s", err ? err : "?");
	return err;
}

static long long
add_user(struct fixture *f, const char *tenant, const char *address, const char *role)
{
	long long id = 0;
	char *err = NULL;
	must_ok(store_user_add(f->srv.store, tenant, address, NULL, role, NULL, &id, &err), err);
	return id;
}

static void
add_token(struct fixture *f, const char *id, long long user_id)
{
	unsigned char hash[32] = { 1 };
	char *err = NULL;
	must_ok(store_token_add(f->srv.store, id, user_id, "t", hash, 0, &err), err);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *err = NULL;
	snprintf(f->dir, sizeof(f->dir), "/tmp/mailark-test-authz-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/mailark.db", f->dir);
	if (store_open(f->path, &f->srv.store, &err) < 0)
		return -1;
	must_ok(store_tenant_add(f->srv.store, "a", "default", &err), err);
	must_ok(store_tenant_add(f->srv.store, "b", "default", &err), err);
	must_ok(store_domain_add(f->srv.store, "a", "a.example", &err), err);
	must_ok(store_domain_add(f->srv.store, "b", "b.example", &err), err);
	f->admin_a = add_user(f, "a", "admin@a.example", "admin");
	f->user_a = add_user(f, "a", "user@a.example", "user");
	f->user_a2 = add_user(f, "a", "user2@a.example", "user");
	f->admin_b = add_user(f, "b", "admin@b.example", "admin");
	add_token(f, "tokusera", f->user_a);
	add_token(f, "tokadminb", f->admin_b);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];
	store_close(&f->srv.store);
	const char *suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct principal
who(enum role r, const char *tenant, long long user_id, const char *actor)
{
	struct principal p = { r, (char *)actor, (char *)tenant, user_id, (char *)"test" };
	return p;
}

/* 0 allowed, 404 not found, 403 forbidden: as the API maps them. */
static int
ask(struct fixture *f, const struct principal *p, const char *cmd, const char *k1,
    const char *v1, const char *k2, const char *v2)
{
	struct control_command c = { cmd, 1, NULL };
	json_t *args = json_object();
	if (k1 != NULL)
		json_object_set_new(args, k1, json_string(v1));
	if (k2 != NULL)
		json_object_set_new(args, k2, json_string(v2));
	char *err = NULL;
	int rc = control_authorize(&f->srv, p, &c, args, &err);
	json_decref(args);
	int out = 0;
	if (rc < 0) {
		assert_non_null(err);
		out = strncmp(err, "not found", 9) == 0 ? 404 :
		    strncmp(err, "not permitted", 13) == 0 ? 403 : -1;
	} else {
		assert_null(err);
	}
	free(err);
	return out;
}

static void
test_every_command_has_a_rule(void **state)
{
	const struct control_command *const tables[] = { control_core_commands,
		control_identity_commands, control_audit_commands, control_directory_commands };
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (const struct control_command *c = tables[t]; c->name != NULL; c++) {
			enum role r;
			enum authz_scope s;
			if (control_authz_rule(c->name, &r, &s) != 1)
				fail_msg("no authorisation rule for %s", c->name);
		}
	}
	enum role r;
	enum authz_scope s;
	assert_int_equal(control_authz_rule("no.such", &r, &s), 0);
	assert_int_equal(r, ROLE_OPERATOR);
	assert_int_equal(s, AUTHZ_INSTALL);
}

static void
test_decide_table(void **state)
{
	struct principal op = who(ROLE_OPERATOR, NULL, 1, "op");
	struct principal adm = who(ROLE_ADMIN, "a", 2, "adm");
	struct principal aud = who(ROLE_AUDITOR, "a", 3, "aud");
	struct principal usr = who(ROLE_USER, "a", 4, "usr");
	struct principal none = who(ROLE_NONE, NULL, 0, "none");
	/* operators: everything, even objects of no tenant */
	assert_int_equal(control_authz_decide(&op, ROLE_OPERATOR, AUTHZ_INSTALL, NULL), AUTHZ_OK);
	assert_int_equal(control_authz_decide(&op, ROLE_ADMIN, AUTHZ_TENANT, "b"), AUTHZ_OK);
	/* install-wide: operators only */
	assert_int_equal(control_authz_decide(&adm, ROLE_OPERATOR, AUTHZ_INSTALL, NULL),
	    AUTHZ_FORBIDDEN);
	/* own tenant: by role */
	assert_int_equal(control_authz_decide(&adm, ROLE_ADMIN, AUTHZ_TENANT, "a"), AUTHZ_OK);
	assert_int_equal(control_authz_decide(&adm, ROLE_ADMIN, AUTHZ_TENANT, "A"), AUTHZ_OK);
	assert_int_equal(control_authz_decide(&aud, ROLE_AUDITOR, AUTHZ_TENANT, "a"), AUTHZ_OK);
	assert_int_equal(control_authz_decide(&aud, ROLE_ADMIN, AUTHZ_TENANT, "a"),
	    AUTHZ_FORBIDDEN);
	assert_int_equal(control_authz_decide(&usr, ROLE_AUDITOR, AUTHZ_TENANT, "a"),
	    AUTHZ_FORBIDDEN);
	/* another tenant, or none: not found, whatever the role */
	assert_int_equal(control_authz_decide(&adm, ROLE_ADMIN, AUTHZ_TENANT, "b"),
	    AUTHZ_NOT_FOUND);
	assert_int_equal(control_authz_decide(&usr, ROLE_ADMIN, AUTHZ_TENANT, "b"),
	    AUTHZ_NOT_FOUND);
	assert_int_equal(control_authz_decide(&adm, ROLE_ADMIN, AUTHZ_QUEUE, NULL),
	    AUTHZ_NOT_FOUND);
	/* self: any signed-in principal */
	assert_int_equal(control_authz_decide(&usr, ROLE_USER, AUTHZ_SELF, NULL), AUTHZ_OK);
	assert_int_equal(control_authz_decide(&none, ROLE_USER, AUTHZ_SELF, NULL),
	    AUTHZ_FORBIDDEN);
	assert_int_equal(control_authz_decide(NULL, ROLE_USER, AUTHZ_SELF, NULL), AUTHZ_FORBIDDEN);
}

static void
test_tenant_scoped_commands(void **state)
{
	struct fixture *f = *state;
	struct principal op = who(ROLE_OPERATOR, NULL, 0, "cli@local");
	struct principal adm = who(ROLE_ADMIN, "a", f->admin_a, "admin@a.example");
	struct principal aud = who(ROLE_AUDITOR, "a", 99, "aud@a.example");
	struct principal usr = who(ROLE_USER, "a", f->user_a, "user@a.example");
	struct principal none = who(ROLE_NONE, NULL, 0, "anonymous");
	assert_int_equal(ask(f, &op, "tenant.add", "name", "c", NULL, NULL), 0);
	assert_int_equal(ask(f, &adm, "tenant.add", "name", "c", NULL, NULL), 403);
	assert_int_equal(ask(f, &adm, "tenant.list", NULL, NULL, NULL, NULL), 403);
	assert_int_equal(ask(f, &none, "tenant.show", "name", "a", NULL, NULL), 403);
	assert_int_equal(ask(f, NULL, "tenant.show", "name", "a", NULL, NULL), 403);
	assert_int_equal(ask(f, &adm, "tenant.show", "name", "a", NULL, NULL), 0);
	assert_int_equal(ask(f, &aud, "tenant.show", "name", "a", NULL, NULL), 0);
	assert_int_equal(ask(f, &adm, "tenant.show", "name", "b", NULL, NULL), 404);
	assert_int_equal(ask(f, &adm, "tenant.show", "name", "nosuch", NULL, NULL), 404);
	assert_int_equal(ask(f, &adm, "tenant.remove", "name", "a", NULL, NULL), 403);
	assert_int_equal(ask(f, &adm, "domain.add", "tenant", "a", "domain", "x.example"), 0);
	assert_int_equal(ask(f, &adm, "domain.add", "tenant", "b", "domain", "x.example"), 404);
	assert_int_equal(ask(f, &aud, "domain.add", "tenant", "a", "domain", "x.example"), 403);
	assert_int_equal(ask(f, &aud, "domain.list", "tenant", "a", NULL, NULL), 0);
	assert_int_equal(ask(f, &usr, "domain.list", "tenant", "a", NULL, NULL), 403);
	assert_int_equal(ask(f, &usr, "domain.list", "tenant", "b", NULL, NULL), 404);
	/* listing every tenant's domains is for operators */
	assert_int_equal(ask(f, &adm, "domain.list", NULL, NULL, NULL, NULL), 403);
	assert_int_equal(ask(f, &op, "domain.list", NULL, NULL, NULL, NULL), 0);
	/* a user address of another tenant, named under one's own tenant */
	assert_int_equal(ask(f, &adm, "user.show", "tenant", "a", "address", "admin@b.example"),
	    404);
	assert_int_equal(ask(f, &adm, "user.show", "tenant", "a", "address", "user@a.example"), 0);
	assert_int_equal(ask(f, &aud, "user.list", "tenant", "a", NULL, NULL), 0);
	assert_int_equal(ask(f, &aud, "user.disable", "tenant", "a", "address", "user@a.example"),
	    403);
	/* audit.list: the tenant may be left out (the handler limits it) */
	assert_int_equal(ask(f, &aud, "audit.list", NULL, NULL, NULL, NULL), 0);
	assert_int_equal(ask(f, &aud, "audit.list", "tenant", "b", NULL, NULL), 404);
	assert_int_equal(ask(f, &usr, "audit.list", NULL, NULL, NULL, NULL), 403);
	assert_int_equal(ask(f, &adm, "audit.verify", NULL, NULL, NULL, NULL), 403);
	assert_int_equal(ask(f, &adm, "directory.login", "tenant", "a", NULL, NULL), 403);
}

static void
test_objects_resolved_to_their_tenant(void **state)
{
	struct fixture *f = *state;
	struct principal op = who(ROLE_OPERATOR, NULL, 0, "cli@local");
	struct principal adm = who(ROLE_ADMIN, "a", f->admin_a, "admin@a.example");
	struct principal admb = who(ROLE_ADMIN, "b", f->admin_b, "admin@b.example");
	struct principal usr = who(ROLE_USER, "a", f->user_a, "user@a.example");
	struct principal usr2 = who(ROLE_USER, "a", f->user_a2, "user2@a.example");
	/* routes: by the domain's tenant */
	assert_int_equal(ask(f, &adm, "route.set", "domain", "a.example", "url", "smtp://h"), 0);
	assert_int_equal(ask(f, &adm, "route.set", "domain", "b.example", "url", "smtp://h"), 404);
	assert_int_equal(ask(f, &adm, "route.set", "domain", "none.example", "url", "smtp://h"),
	    404);
	assert_int_equal(ask(f, &usr, "route.set", "domain", "a.example", "url", "smtp://h"), 403);
	assert_int_equal(ask(f, &adm, "route.list", NULL, NULL, NULL, NULL), 403);
	/* queue entries: no queue here, so no entry resolves */
	assert_int_equal(ask(f, &adm, "queue.hold", "id", "0000000000000000", NULL, NULL), 404);
	assert_int_equal(ask(f, &op, "queue.hold", "id", "0000000000000000", NULL, NULL), 0);
	assert_int_equal(ask(f, &adm, "queue.list", NULL, NULL, NULL, NULL), 403);
	/* tokens: own, an admin of the owner's tenant, or an operator */
	assert_int_equal(ask(f, &usr, "token.revoke", "id", "tokusera", NULL, NULL), 0);
	assert_int_equal(ask(f, &usr2, "token.revoke", "id", "tokusera", NULL, NULL), 404);
	assert_int_equal(ask(f, &adm, "token.revoke", "id", "tokusera", NULL, NULL), 0);
	assert_int_equal(ask(f, &admb, "token.revoke", "id", "tokusera", NULL, NULL), 404);
	assert_int_equal(ask(f, &usr, "token.revoke", "id", "tokadminb", NULL, NULL), 404);
	assert_int_equal(ask(f, &usr, "token.revoke", "id", "nosuch", NULL, NULL), 404);
	assert_int_equal(ask(f, &op, "token.revoke", "id", "tokadminb", NULL, NULL), 0);
	/* token.create / token.list: for oneself; an admin for users of its tenant */
	assert_int_equal(ask(f, &usr, "token.create", NULL, NULL, NULL, NULL), 0);
	assert_int_equal(ask(f, &usr, "token.create", "user", "user@a.example", NULL, NULL), 0);
	assert_int_equal(ask(f, &usr, "token.create", "user", "user2@a.example", NULL, NULL), 404);
	assert_int_equal(ask(f, &adm, "token.create", "user", "user2@a.example", NULL, NULL), 0);
	assert_int_equal(ask(f, &adm, "token.list", "user", "admin@b.example", NULL, NULL), 404);
	assert_int_equal(ask(f, &usr, "token.list", NULL, NULL, NULL, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_command_has_a_rule),
		cmocka_unit_test(test_decide_table),
		cmocka_unit_test_setup_teardown(test_tenant_scoped_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_objects_resolved_to_their_tenant, setup,
		    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
