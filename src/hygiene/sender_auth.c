/*
 * sender_auth.c — see sender_auth.h (being built).
 */
#include "hygiene/sender_auth.h"

#include "hygiene/hygiene.h"

int
sender_auth_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)m;
	(void)r;
	(void)err_r;
	return 0;
}

int
sender_auth_init(struct hygiene *h, char **err_r)
{
	(void)h;
	(void)err_r;
	return 0;
}

void
sender_auth_free(struct hygiene *h)
{
	(void)h;
}
