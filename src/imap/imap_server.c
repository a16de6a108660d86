/* Skeleton: replaced by the IMAP server implementation. */
#include "imap/imap_server.h"

#include <stddef.h>

int imap_server_start(struct server *srv, struct imap_server **s_r, char **err_r)
{ *s_r = NULL; return 0; }
void imap_server_shutdown(struct imap_server *s) { }
void imap_server_free(struct imap_server **s) { *s = NULL; }
void imap_server_kick_tenant(struct imap_server *s, const char *tenant) { }
void imap_server_notify(struct imap_server *s, const char *tenant) { }
unsigned imap_server_sessions(const struct imap_server *s) { return 0; }
