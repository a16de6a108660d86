/*
 * disclaimer.c — see disclaimer.h (being built).
 */
#include "hygiene/disclaimer.h"

#include "hygiene/hygiene.h"

int
disclaimer_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)m;
	(void)r;
	(void)err_r;
	return 0;
}
