/*
 * control_handlers — the commands of the control socket ("tenant.add",
 * "queue.list", ...).  control.c parses a request and calls
 * control_dispatch() on the loop thread; it returns 0 with *result_r (a new
 * jansson reference, or NULL for "no result") or -1 with *err_r (a human
 * reason, caller frees).  Every mutating command logs an "admin" line.
 */
#ifndef MAILARK_CONTROL_CONTROL_HANDLERS_H
#define MAILARK_CONTROL_CONTROL_HANDLERS_H

#include <jansson.h>

struct server;

int control_dispatch(struct server *srv, const char *cmd, json_t *args, json_t **result_r,
    char **err_r);

#endif
