/*
 * milter.c — see milter.h (being built).
 */
#include "hygiene/milter.h"

#include "hygiene/hygiene.h"

int
milter_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)m;
	(void)r;
	(void)err_r;
	return 0;
}
