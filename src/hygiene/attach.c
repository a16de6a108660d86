/*
 * attach.c — see attach.h (being built).
 */
#include "hygiene/attach.h"

#include "hygiene/hygiene.h"

int
attach_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)m;
	(void)r;
	(void)err_r;
	return 0;
}
