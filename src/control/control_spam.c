/*
 * control_spam.c — `spam.*`: train, classify, report (users' spam / not spam), stats.
 * (Being built.)
 */
#include "control/control_handlers.h"

#include <stddef.h>

const struct control_command control_spam_commands[] = {
	{ NULL, 0, NULL },
};
