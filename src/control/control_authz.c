/*
 * control_authz — who may run which control command: the one place
 * authorisation is decided, for the CLI and the HTTP API alike.
 */
#include "control/control_handlers.h"

#include <stdlib.h>

#include "auth/principal.h"
#include "lib/buf.h"

int
control_authorize(struct server *srv, const struct principal *who,
    const struct control_command *c, json_t *args, char **err_r)
{
	if (who != NULL && who->role == ROLE_OPERATOR)
		return 0;
	struct buf e = BUF_INIT;
	buf_appendf(&e, "not permitted: %s", c->name);
	*err_r = buf_steal(&e);
	return -1;
}
