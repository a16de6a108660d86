/*
 * control_args — reading a control command's JSON arguments, shared by the
 * command modules: required and optional strings, integers, and the tenant
 * argument checked against the store.  Error texts are malloc'd (caller frees).
 */
#ifndef MAILARK_CONTROL_CONTROL_ARGS_H
#define MAILARK_CONTROL_CONTROL_ARGS_H

#include <jansson.h>

struct server;

/* The non-empty string args.key, or NULL with *err_r "missing argument 'key'". */
const char *control_arg(json_t *args, const char *key, char **err_r);
/* The non-empty string args.key, or NULL (no error). */
const char *control_arg_opt(json_t *args, const char *key);
/* args.key as an integer (number or decimal string) in [min, max]; def when absent. */
int control_arg_int(json_t *args, const char *key, long long def, long long min, long long max,
    long long *v_r, char **err_r);
/* args.key as a boolean (true/false, "yes"/"no"); def when absent. */
int control_arg_bool(json_t *args, const char *key, int def, int *v_r, char **err_r);
/* The existing tenant named by args.tenant, lower-cased (caller frees), or NULL + *err_r. */
char *control_arg_tenant(struct server *srv, json_t *args, char **err_r);

#endif
