/* Skeleton: replaced by the alert implementation. */
#include "continuity/alert.h"

void alert_send(struct server *srv, const char *addresses, const char *webhook,
    const struct alert_event *ev) { }
void alert_imap_append(struct server *srv, const char *url, const char *user,
    const char *password, const void *raw, size_t len, alert_append_cb *cb, void *arg)
{ cb(arg, 0, "not yet"); }
