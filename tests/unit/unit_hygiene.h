/*
 * unit_hygiene — a hand-built message for the unit tests of hygiene stages,
 * with the fields every such test sets the same way, and a runner that
 * asserts the stage ran without an error.
 *
 *   struct hygiene_msg m;
 *   unit_hygiene_msg(&m, &pol, QUEUE_OUTBOUND, "alice@acme.test", rcpts, text, strlen(text));
 *   m.mime = archive_parse_message(m.data, m.len);   // when the stage wants it
 *   unit_hygiene_run(dlp_stage, &m, &r);
 *   ... assertions on r; hygiene_result_free(&r) ...
 *
 * The message has qid "TESTQID" and tenant "acme"; rcpts is a NULL-terminated
 * array or NULL.  Nothing is allocated: pol, rcpts and data must outlive m.
 * Include after <cmocka.h>.
 */
#ifndef MAILARK_TESTS_UNIT_HYGIENE_H
#define MAILARK_TESTS_UNIT_HYGIENE_H

#include <string.h>

#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"

static inline void
unit_hygiene_msg(struct hygiene_msg *m, const struct hygiene_policy *pol,
    enum queue_direction dir, const char *sender, char **rcpts, const char *data, size_t len)
{
	memset(m, 0, sizeof(*m));
	m->pol = pol;
	m->qid = "TESTQID";
	m->tenant = "acme";
	m->dir = dir;
	m->sender = sender;
	m->rcpts = rcpts;
	for (m->nrcpts = 0; rcpts != NULL && rcpts[m->nrcpts] != NULL; m->nrcpts++)
		;
	m->data = (const unsigned char *)data;
	m->len = len;
}

/* Runs the stage on m into a cleared r and asserts it returned 0 with no error. */
static inline void
unit_hygiene_run(hygiene_stage_fn *stage, const struct hygiene_msg *m, struct hygiene_result *r)
{
	memset(r, 0, sizeof(*r));
	char *err = NULL;
	assert_int_equal(stage(m, r, &err), 0);
	assert_null(err);
}

#endif
