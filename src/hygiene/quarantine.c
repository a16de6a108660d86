/*
 * quarantine.c — see quarantine.h (being built).
 */
#include "hygiene/quarantine.h"

#include "lib/mem.h"
#include "server.h"

int
quarantine_open(struct server *srv, char **err_r)
{
	(void)err_r;
	srv->quarantine = NULL;
	return 0;
}

void
quarantine_close(struct server *srv)
{
	srv->quarantine = NULL;
}

int
quarantine_put(struct quarantine *q, const struct quarantine_item *item,
    const unsigned char *data, size_t len, char *id_out, char **err_r)
{
	(void)q;
	(void)item;
	(void)data;
	(void)len;
	id_out[0] = '\0';
	*err_r = xstrdup("the quarantine is not available");
	return -1;
}
