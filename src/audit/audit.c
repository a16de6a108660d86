#include "audit/audit.h"

#include "auth/principal.h"
#include "lib/log.h"

int
audit_record(struct server *srv, const struct principal *who, const char *action,
    const char *object, const char *outcome, const char *detail)
{
	log_info("audit", "actor=%s action=%s object=%s outcome=%s", log_str(who->actor),
	    log_str(action), log_str(object), log_str(outcome));
	return 0;
}
