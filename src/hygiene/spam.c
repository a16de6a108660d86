/*
 * spam.c — see spam.h (being built).
 */
#include "hygiene/spam.h"

#include "hygiene/hygiene.h"

int
spam_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)m;
	(void)r;
	(void)err_r;
	return 0;
}
