/*
 * control_audit — control commands that read and verify the audit trail
 * ("audit.list", "audit.verify"), dispatched by control_handlers.c.
 *
 * Both are reads (not mutating, so not themselves audited).  audit.list
 * takes optional args tenant, actor, since ("2h" or ISO 8601) and limit;
 * a principal bound to a tenant (admin, auditor) only ever sees that
 * tenant's entries, whatever it asks for (control_authorize decides
 * whether it may ask at all).  audit.verify answers {"ok": bool,
 * "report": "..."}.
 */
#include "control/control_handlers.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "audit/audit.h"
#include "auth/principal.h"
#include "lib/buf.h"
#include "lib/strutil.h"
#include "server.h"
#include "store/store.h"

#define CONTROL_AUDIT_LIMIT_DEFAULT 100
#define CONTROL_AUDIT_LIMIT_MAX 10000

static int
control_audit_err(char **err_r, const char *fmt, const char *a)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a);
	*err_r = buf_steal(&e);
	return -1;
}

static const char *
control_audit_opt(json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

/* limit: a JSON integer or a decimal string, 1..CONTROL_AUDIT_LIMIT_MAX. */
static int
control_audit_limit(json_t *args, long long *limit_r, char **err_r)
{
	json_t *v = json_object_get(args, "limit");
	uint64_t n = CONTROL_AUDIT_LIMIT_DEFAULT;
	int ok = v == NULL || json_is_null(v);
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		n = (uint64_t)json_integer_value(v);
		ok = 1;
	} else if (json_is_string(v)) {
		ok = str_parse_u64(json_string_value(v), &n) == 0 && n > 0;
	}
	if (!ok)
		return control_audit_err(err_r, "invalid limit (%s): expected a positive number",
		    json_is_string(v) ? json_string_value(v) : "not a number");
	*limit_r = n > CONTROL_AUDIT_LIMIT_MAX ? CONTROL_AUDIT_LIMIT_MAX : (long long)n;
	return 0;
}

static int
control_audit_filter(const struct principal *who, json_t *args, struct store_audit_filter *f,
    char **err_r)
{
	f->tenant = control_audit_opt(args, "tenant");
	f->actor = control_audit_opt(args, "actor");
	f->since_us = 0;
	const char *since = control_audit_opt(args, "since");
	if (since != NULL && audit_parse_time(since, time(NULL), &f->since_us) < 0)
		return control_audit_err(err_r, "invalid time '%s' (expected e.g. 2h, 3d, "
		    "2024-05-01 or 2024-05-01T12:00:00Z)", since);
	if (who == NULL || (who->role != ROLE_OPERATOR && who->tenant == NULL))
		return control_audit_err(err_r, "%s", "not permitted: audit.list");
	if (who->role != ROLE_OPERATOR)
		f->tenant = who->tenant;
	return control_audit_limit(args, &f->limit, err_r);
}

static int
control_audit_list(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	struct store_audit_filter f;
	if (control_audit_filter(who, args, &f, err_r) < 0 || audit_start(srv, err_r) < 0)
		return -1;
	return audit_list_json(srv->audit, &f, result_r, err_r);
}

static int
control_audit_verify(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	char *report = NULL;
	if (audit_start(srv, err_r) < 0)
		return -1;
	int rc = audit_verify(srv->audit, NULL, &report);
	*result_r = json_pack("{s:b, s:s}", "ok", rc == 0, "report", report ? report : "");
	free(report);
	return 0;
}

const struct control_command control_audit_commands[] = {
	{ "audit.list", 0, control_audit_list },
	{ "audit.verify", 0, control_audit_verify },
	{ NULL, 0, NULL },
};
