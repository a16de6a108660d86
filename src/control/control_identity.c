/*
 * control_identity — control commands for users, groups and API tokens
 * ("user.add", "token.create", ...), dispatched by control_handlers.c.
 */
#include "control/control_handlers.h"

const struct control_command control_identity_commands[] = {
	{ NULL, 0, NULL },
};
