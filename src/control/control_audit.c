/*
 * control_audit — control commands that read and verify the audit trail
 * ("audit.list", "audit.verify"), dispatched by control_handlers.c.
 */
#include "control/control_handlers.h"

const struct control_command control_audit_commands[] = {
	{ NULL, 0, NULL },
};
