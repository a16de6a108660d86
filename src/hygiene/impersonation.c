/*
 * impersonation.c — see impersonation.h (being built).
 */
#include "hygiene/impersonation.h"

#include "hygiene/hygiene.h"

int
impersonation_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)m;
	(void)r;
	(void)err_r;
	return 0;
}
