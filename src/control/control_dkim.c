/*
 * control_dkim.c — `dkim.keygen` and `dkim.show`: per-domain DKIM signing keys.
 * (Being built.)
 */
#include "control/control_handlers.h"

#include <stddef.h>

const struct control_command control_dkim_commands[] = {
	{ NULL, 0, NULL },
};
