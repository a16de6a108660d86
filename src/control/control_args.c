/*
 * control_args.c — see control_args.h.
 */
#include "control/control_args.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "server.h"
#include "store/store.h"

static void
control_args_err(char **err_r, const char *fmt, const char *a)
{
	struct buf e = BUF_INIT;
	buf_appendf(&e, fmt, a);
	*err_r = buf_steal(&e);
}

const char *
control_arg(json_t *args, const char *key, char **err_r)
{
	const char *v = control_arg_opt(args, key);
	if (v == NULL)
		control_args_err(err_r, "missing argument '%s'", key);
	return v;
}

const char *
control_arg_opt(json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

int
control_arg_int(json_t *args, const char *key, long long def, long long min, long long max,
    long long *v_r, char **err_r)
{
	json_t *v = json_object_get(args, key);
	long long n = def;
	if (json_is_integer(v)) {
		n = (long long)json_integer_value(v);
	} else if (json_is_string(v) && json_string_length(v) > 0) {
		char *end = NULL;
		n = strtoll(json_string_value(v), &end, 10);
		if (end == NULL || *end != '\0') {
			control_args_err(err_r, "argument '%s' must be a number", key);
			return -1;
		}
	} else if (v != NULL && !json_is_null(v)) {
		control_args_err(err_r, "argument '%s' must be a number", key);
		return -1;
	}
	if (n < min || n > max) {
		struct buf e = BUF_INIT;
		buf_appendf(&e, "argument '%s' must be between %lld and %lld", key, min, max);
		*err_r = buf_steal(&e);
		return -1;
	}
	*v_r = n;
	return 0;
}

int
control_arg_bool(json_t *args, const char *key, int def, int *v_r, char **err_r)
{
	json_t *v = json_object_get(args, key);
	*v_r = def;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_boolean(v)) {
		*v_r = json_is_true(v);
		return 0;
	}
	if (json_is_string(v) && str_parse_bool(json_string_value(v), v_r) == 0)
		return 0;
	control_args_err(err_r, "argument '%s' must be yes or no", key);
	return -1;
}

char *
control_arg_tenant(struct server *srv, json_t *args, char **err_r)
{
	const char *name = control_arg(args, "tenant", err_r);
	struct store_tenant t;
	if (name == NULL)
		return NULL;
	int found = store_tenant_get(srv->store, name, &t);
	if (found <= 0) {
		control_args_err(err_r, found == 0 ? "no tenant '%s'" : "database error (%s)", name);
		return NULL;
	}
	free(t.region);
	free(t.unknown_recipients);
	return t.name;
}
