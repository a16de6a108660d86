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

int
spam_db_open(const char *data_dir, struct spam_db **db_r, char **err_r)
{
	(void)data_dir;
	(void)err_r;
	*db_r = NULL;
	return 0;
}

void
spam_db_close(struct spam_db **db)
{
	*db = NULL;
}
