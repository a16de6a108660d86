/*
 * hygiene.c — the pipeline: start/stop, the three stages' entry points and
 * the content-stage table (see hygiene.h).
 */
#include "hygiene/hygiene.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "archive/archive_parse.h"
#include "config/config.h"
#include "dns/dns_sync.h"
#include "hygiene/attach.h"
#include "hygiene/av_clamd.h"
#include "hygiene/disclaimer.h"
#include "hygiene/dkim_sign.h"
#include "hygiene/dlp.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/impersonation.h"
#include "hygiene/milter.h"
#include "hygiene/policy.h"
#include "hygiene/sender_auth.h"
#include "hygiene/spam.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/worker.h"
#include "server.h"

#define DIR_IN  0x1
#define DIR_OUT 0x2

struct hygiene_stage {
	const char *name;
	unsigned dirs;                                   /* DIR_IN | DIR_OUT */
	hygiene_stage_fn *run;
	enum policy_fail (*on_failure)(const struct hygiene_policy *p);
};

static enum policy_fail fail_open(const struct hygiene_policy *p) { (void)p; return POLICY_FAIL_OPEN; }
static enum policy_fail fail_closed(const struct hygiene_policy *p) { (void)p; return POLICY_FAIL_CLOSED; }
static enum policy_fail fail_av(const struct hygiene_policy *p) { return p->av_on_failure; }
static enum policy_fail fail_auth(const struct hygiene_policy *p) { return p->auth_on_failure; }
static enum policy_fail fail_spam(const struct hygiene_policy *p) { return p->spam_on_failure; }
static enum policy_fail fail_milter(const struct hygiene_policy *p) { return p->milter_on_failure; }

/*
 * In order.  Sender authentication first (later stages use its results),
 * scanners next, the spam score last inbound; outbound, the message is
 * checked (DLP) before it is changed (disclaimer) and signed last.
 */
static const struct hygiene_stage stages[] = {
	{ "auth", DIR_IN, sender_auth_stage, fail_auth },
	{ "av", DIR_IN | DIR_OUT, av_clamd_stage, fail_av },
	{ "attach", DIR_IN | DIR_OUT, attach_stage, fail_closed },
	{ "impersonation", DIR_IN, impersonation_stage, fail_open },
	{ "milter", DIR_IN | DIR_OUT, milter_stage, fail_milter },
	{ "spam", DIR_IN, spam_stage, fail_spam },
	{ "dlp", DIR_OUT, dlp_stage, fail_closed },
	{ "disclaimer", DIR_OUT, disclaimer_stage, fail_open },
	{ "dkim_sign", DIR_OUT, dkim_sign_stage, fail_open },
};

struct dns_sync *
hygiene_dns(struct hygiene *h)
{
	return h->dns;
}

const struct config *
hygiene_config(struct hygiene *h)
{
	return h->cfg;
}

/* The From header's address and display name, as the stages want them. */
static void
msg_header_from(GMimeMessage *mime, char **addr_r, char **name_r)
{
	*addr_r = NULL;
	*name_r = NULL;
	if (mime == NULL)
		return;
	InternetAddressList *l = g_mime_message_get_from(mime);
	if (l == NULL || internet_address_list_length(l) < 1)
		return;
	InternetAddress *a = internet_address_list_get_address(l, 0);
	if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
		const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
		if (addr != NULL && addr[0] != '\0')
			*addr_r = xstrdup(addr);
	}
	const char *name = internet_address_get_name(a);
	if (name != NULL && name[0] != '\0')
		*name_r = xstrdup(name);
}

static void
stage_failed(const struct hygiene_stage *st, const struct hygiene_msg *m,
    struct hygiene_result *r, const char *err)
{
	log_warn("hygiene_stage_failed", "id=%s tenant=%s stage=%s error=%s", log_str(m->qid),
	    log_str(m->tenant), st->name, log_str(err));
	if (st->on_failure(m->pol) == POLICY_FAIL_CLOSED)
		hygiene_result_raise(r, HYGIENE_DEFER,
		    "451 4.7.1 Message could not be scanned, try again later", "%s:failed", st->name);
	else
		hygiene_result_reason(r, "%s:failed", st->name);
}

/* Runs the table for m->dir; stops at the first DEFER or REJECT. */
static void
run_table(const struct hygiene_msg *m, struct hygiene_result *r)
{
	unsigned dir = m->dir == QUEUE_OUTBOUND ? DIR_OUT : DIR_IN;
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
		const struct hygiene_stage *st = &stages[i];
		if ((st->dirs & dir) == 0)
			continue;
		char *err = NULL;
		if (st->run(m, r, &err) < 0)
			stage_failed(st, m, r, err);
		free(err);
		if (r->action >= HYGIENE_DEFER)
			break;
	}
}

int
hygiene_run_stages(struct hygiene *h, const struct hygiene_policy *pol,
    const struct queue_envelope *env, int tls, char **tenant_domains, size_t n_tenant_domains,
    const unsigned char *data, size_t len, struct hygiene_result *r, char **err_r)
{
	memset(r, 0, sizeof(*r));
	if (data == NULL || len == 0) {
		*err_r = xstrdup("empty message");
		return -1;
	}
	struct hygiene_msg m;
	memset(&m, 0, sizeof(m));
	m.h = h;
	m.pol = pol;
	m.qid = env->id;
	m.tenant = env->tenant;
	m.dir = env->direction;
	m.sender = env->sender != NULL ? env->sender : "";
	char **rcpts = xcalloc(env->nrcpts + 1, sizeof(char *));
	for (size_t i = 0; i < env->nrcpts; i++)
		rcpts[i] = env->rcpts[i].addr;
	m.rcpts = rcpts;
	m.nrcpts = env->nrcpts;
	m.client_ip = env->client_addr != NULL ? env->client_addr : "local";
	m.client_helo = env->client_helo;
	m.tls = tls;
	m.auth_user = env->auth_user;
	m.tenant_domains = tenant_domains;
	m.n_tenant_domains = n_tenant_domains;
	m.data = data;
	m.len = len;
	m.mime = archive_parse_message(data, len);
	char *from = NULL, *from_name = NULL;
	msg_header_from(m.mime, &from, &from_name);
	m.header_from = from;
	m.header_from_name = from_name;
	run_table(&m, r);
	if (m.mime != NULL)
		g_object_unref(m.mime);
	free(from);
	free(from_name);
	free(rcpts);
	return 0;
}
