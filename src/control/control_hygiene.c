/*
 * control_hygiene.c — `policy.*` (each tenant's hygiene policy) and `quarantine.*`
 * (list, show, release, delete, digest).
 * (Being built.)
 */
#include "control/control_handlers.h"

#include <stddef.h>

const struct control_command control_hygiene_commands[] = {
	{ NULL, 0, NULL },
};
