/*
 * policy.c — see policy.h.  (Being built: for now every tenant has the
 * defaults and nothing can be set.)
 */
#include "hygiene/policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/mem.h"

static struct hygiene_policy policy_default_values = {
	.refs = 1,
	.enabled = 1,
	.av_enabled = 1, .av_on_failure = POLICY_FAIL_CLOSED, .av_action = POLICY_ACT_REJECT,
	.spf_enabled = 1, .spf_fail_action = POLICY_ACT_TAG, .dkim_verify = 1, .dmarc_enabled = 1,
	.auth_on_failure = POLICY_FAIL_OPEN,
	.spam_enabled = 1, .spam_tag_score = 5.0, .spam_quarantine_score = 8.0,
	.spam_reject_score = 15.0, .spam_dnsbl_score = 3.0, .spam_bayes = 1,
	.spam_on_failure = POLICY_FAIL_OPEN, .spam_subject_tag = (char *)"",
	.lookalike = 1, .impersonation_action = POLICY_ACT_QUARANTINE,
	.attach_enabled = 1, .attach_action = POLICY_ACT_REJECT, .attach_archives = 1,
	.attach_encrypted = POLICY_ACT_QUARANTINE, .attach_macros = POLICY_ACT_QUARANTINE,
	.milter_enabled = 1, .milter_on_failure = POLICY_FAIL_OPEN,
	.quarantine_digest = 1, .quarantine_days = 30,
	.disclaimer_text = (char *)"", .disclaimer_html = (char *)"", .dkim_sign = 1,
	.dlp_action = DLP_ACT_HOLD, .dlp_notify = (char *)"", .mta_sts = 1,
};

int
policy_cache_new(struct hygiene *h, char **err_r)
{
	(void)h;
	(void)err_r;
	return 0;
}

void
policy_cache_free(struct hygiene *h)
{
	(void)h;
}

const struct hygiene_policy *
policy_defaults(void)
{
	return &policy_default_values;
}

const struct hygiene_policy *
policy_get(struct hygiene *h, const char *tenant)
{
	(void)h;
	(void)tenant;
	return &policy_default_values;
}

void
policy_release(const struct hygiene_policy **p)
{
	*p = NULL;
}

int
policy_set(struct hygiene *h, const char *tenant, const char *key, const char *value,
    char **err_r)
{
	(void)h;
	(void)tenant;
	(void)key;
	(void)value;
	*err_r = xstrdup("policies cannot be changed yet");
	return -1;
}

json_t *
policy_describe(struct hygiene *h, const char *tenant)
{
	(void)h;
	(void)tenant;
	return json_array();
}

int
policy_list_has(const struct policy_list *l, const char *item)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->items[i], item) == 0)
			return 1;
	return 0;
}

int
policy_list_match_address(const struct policy_list *l, const char *address)
{
	return policy_list_has(l, address);
}
