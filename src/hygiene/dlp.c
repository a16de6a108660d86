/*
 * dlp.c — see dlp.h (being built).
 */
#include "hygiene/dlp.h"

#include "hygiene/hygiene.h"

int
dlp_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)m;
	(void)r;
	(void)err_r;
	return 0;
}
