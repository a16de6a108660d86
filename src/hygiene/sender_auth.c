/*
 * sender_auth.c — SPF (libspf2), DKIM verification (libopendkim) and DMARC
 * (libopendmarc) for inbound mail; see sender_auth.h.
 *
 * Every DNS question of the three libraries goes through dns_sync on
 * hygiene_dns(m->h): libspf2 through a DNS layer of our own (spf_dns_*),
 * libopendkim through its key-lookup callback, and libopendmarc is handed
 * the _dmarc record we fetched.  One SPF server per check (cheap, and no
 * state shared between threads); one DKIM library handle per daemon
 * (thread-safe for separate DKIM handles).
 */
#include "hygiene/sender_auth.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <opendkim/dkim.h>
#include <opendmarc/dmarc.h>
#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "config/config.h"
#include "dns/dns_sync.h"
#include "hygiene/auth_results.h"
#include "hygiene/hygiene.h"
#include "hygiene/hygiene_internal.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define SPF_MAX_RR 64          /* answers handed to libspf2 per question */
#define DMARC_MAX_RECORD 2048

struct sender_auth {
	DKIM_LIB *dkim;
};

/* ---- SPF: a libspf2 DNS layer over dns_sync ---- */

static enum dns_sync_type
spf_qtype(ns_type t, int *ok_r)
{
	*ok_r = 1;
	switch (t) {
	case ns_t_a: return DNS_SYNC_A;
	case ns_t_aaaa: return DNS_SYNC_AAAA;
	case ns_t_txt: return DNS_SYNC_TXT;
	case ns_t_mx: return DNS_SYNC_MX;
	case ns_t_ptr: return DNS_SYNC_PTR;
	default:
		*ok_r = 0;
		return DNS_SYNC_TXT;
	}
}

/* Adds one answer in libspf2's representation; 0, or -1 when unusable. */
static int
spf_rr_add(SPF_dns_rr_t *out, int idx, ns_type t, const char *item)
{
	size_t need = t == ns_t_a ? sizeof(struct in_addr)
	    : t == ns_t_aaaa ? sizeof(struct in6_addr) : strlen(item) + 1;
	if (SPF_dns_rr_buf_realloc(out, idx, need) != SPF_E_SUCCESS)
		return -1;
	if (t == ns_t_a)
		return inet_pton(AF_INET, item, &out->rr[idx]->a) == 1 ? 0 : -1;
	if (t == ns_t_aaaa)
		return inet_pton(AF_INET6, item, &out->rr[idx]->aaaa) == 1 ? 0 : -1;
	memcpy(out->rr[idx]->txt, item, need);
	return 0;
}

static SPF_dns_rr_t *
spf_dns_lookup(SPF_dns_server_t *s, const char *domain, ns_type t, int should_cache)
{
	(void)should_cache;
	int ok;
	enum dns_sync_type qt = spf_qtype(t, &ok);
	if (!ok)
		return SPF_dns_rr_new_init(s, domain, t, 0, NO_DATA);
	struct dns_records rr;
	enum dns_status st = dns_sync_query(s->hook, domain, qt, &rr);
	SPF_dns_rr_t *out;
	if (st == DNS_NXDOMAIN) {
		out = SPF_dns_rr_new_nxdomain(s, domain);
	} else if (st != DNS_OK) {
		out = SPF_dns_rr_new_init(s, domain, t, 0, TRY_AGAIN);
	} else if (rr.n == 0) {
		out = SPF_dns_rr_new_init(s, domain, t, 0, NO_DATA);
	} else {
		out = SPF_dns_rr_new_init(s, domain, t, 0, NETDB_SUCCESS);
		int n = 0;
		for (size_t i = 0; i < rr.n && n < SPF_MAX_RR; i++)
			if (spf_rr_add(out, n, t, rr.items[i]) == 0)
				n++;
		out->num_rr = n;
		if (n == 0)
			out->herrno = NO_DATA;
	}
	dns_records_free(&rr);
	return out;
}

static void
spf_dns_destroy(SPF_dns_server_t *s)
{
	free(s);
}

static SPF_dns_server_t *
spf_dns_new(struct dns_sync *dns)
{
	SPF_dns_server_t *s = xcalloc(1, sizeof(*s));
	s->destroy = spf_dns_destroy;
	s->lookup = spf_dns_lookup;
	s->name = "mailark";
	s->hook = dns;
	return s;
}

static enum hygiene_auth
spf_map(SPF_result_t res)
{
	switch (res) {
	case SPF_RESULT_PASS: return HAUTH_PASS;
	case SPF_RESULT_FAIL: return HAUTH_FAIL;
	case SPF_RESULT_SOFTFAIL: return HAUTH_SOFTFAIL;
	case SPF_RESULT_NEUTRAL: return HAUTH_NEUTRAL;
	case SPF_RESULT_TEMPERROR: return HAUTH_TEMPERROR;
	case SPF_RESULT_PERMERROR: return HAUTH_PERMERROR;
	default: return HAUTH_NONE;
	}
}

static int
spf_set_ip(SPF_request_t *req, const char *ip)
{
	if (ip == NULL)
		return -1;
	if (strchr(ip, ':') != NULL)
		return SPF_request_set_ipv6_str(req, ip) == SPF_E_SUCCESS ? 0 : -1;
	return SPF_request_set_ipv4_str(req, ip) == SPF_E_SUCCESS ? 0 : -1;
}

/*
 * libspf2's query answers "pass" for any loopback client without looking at
 * the record.  A gateway has no reason to trust 127/8 more than anyone else
 * (and the tests connect from there), so for those the record is fetched
 * and interpreted directly, which is the same evaluation minus that shortcut.
 */
static int
spf_is_loopback(const char *ip)
{
	return ip != NULL && (strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0);
}

static SPF_response_t *
spf_query(SPF_server_t *sp, SPF_request_t *req, const char *ip)
{
	SPF_response_t *resp = NULL;
	if (!spf_is_loopback(ip)) {
		SPF_request_query_mailfrom(req, &resp);
		return resp;
	}
	if (req->env_from_dp == NULL)
		return NULL;
	req->cur_dom = req->env_from_dp;   /* what the query would set */
	resp = SPF_response_new(req);
	SPF_record_t *rec = NULL;
	if (SPF_server_get_record(sp, req, resp, &rec) == SPF_E_SUCCESS && rec != NULL) {
		/* As libspf2's own query: the record serves the explanation
		 * while it is interpreted, then the caller frees it. */
		resp->spf_record_exp = rec;
		SPF_record_interpret(rec, req, resp, 0);
		resp->spf_record_exp = NULL;
	}
	if (rec != NULL)
		SPF_record_free(rec);
	return resp;
}

/* The SPF result for the client IP and MAIL FROM (postmaster@HELO for <>). */
static enum hygiene_auth
spf_check(const struct hygiene_msg *m, const char *rec_dom)
{
	const char *helo = m->client_helo != NULL ? m->client_helo : "";
	if (m->sender[0] == '\0' && helo[0] == '\0')
		return HAUTH_NONE;
	/* A server made with SPF_server_new_dns() does not own its DNS layer. */
	SPF_dns_server_t *layer = spf_dns_new(hygiene_dns(m->h));
	SPF_server_t *sp = SPF_server_new_dns(layer, 0);
	if (sp == NULL) {
		spf_dns_destroy(layer);
		return HAUTH_TEMPERROR;
	}
	if (rec_dom != NULL)
		SPF_server_set_rec_dom(sp, rec_dom);
	enum hygiene_auth out = HAUTH_NONE;
	SPF_request_t *req = SPF_request_new(sp);
	SPF_response_t *resp = NULL;
	char *from = m->sender[0] != '\0' ? xstrdup(m->sender) : buf_printf("postmaster@%s", helo);
	if (spf_set_ip(req, m->client_ip) < 0)
		goto done;
	if (helo[0] != '\0')
		SPF_request_set_helo_dom(req, helo);
	if (SPF_request_set_env_from(req, from) != 0)
		goto done;
	resp = spf_query(sp, req, m->client_ip);
	if (resp != NULL)
		out = spf_map(SPF_response_result(resp));
done:
	if (resp != NULL)
		SPF_response_free(resp);
	SPF_request_free(req);
	SPF_server_free(sp);
	spf_dns_destroy(layer);
	free(from);
	return out;
}

/* libspf2 reports through global handlers: into our log, never to stderr. */
static void
spf_log_warn(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	log_debug("spf_warning", "msg=%s", log_str(msg));
}

/* ---- DKIM verification ---- */

static DKIM_CBSTAT
dkim_key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct dns_sync *dns = dkim_get_user_context(dkim);
	const char *sel = (const char *)dkim_sig_getselector(sig);
	const char *dom = (const char *)dkim_sig_getdomain(sig);
	if (dns == NULL || sel == NULL || dom == NULL || buflen == 0)
		return DKIM_CBSTAT_ERROR;
	char *name = buf_printf("%s._domainkey.%s", sel, dom);
	struct dns_records rr;
	enum dns_status st = strlen(name) > 253 ? DNS_NXDOMAIN
	    : dns_sync_query(dns, name, DNS_SYNC_TXT, &rr);
	free(name);
	if (st == DNS_NXDOMAIN)
		return DKIM_CBSTAT_NOTFOUND;
	if (st != DNS_OK) {
		dns_records_free(&rr);
		return DKIM_CBSTAT_TRYAGAIN;
	}
	DKIM_CBSTAT out = DKIM_CBSTAT_NOTFOUND;
	if (rr.n > 0 && strlen(rr.items[0]) < buflen) {
		memcpy(buf, rr.items[0], strlen(rr.items[0]) + 1);
		out = DKIM_CBSTAT_CONTINUE;
	}
	dns_records_free(&rr);
	return out;
}

static enum hygiene_auth
dkim_map(DKIM_STAT st)
{
	switch (st) {
	case DKIM_STAT_OK: return HAUTH_PASS;
	case DKIM_STAT_NOSIG: return HAUTH_NONE;
	case DKIM_STAT_BADSIG: return HAUTH_FAIL;
	case DKIM_STAT_KEYFAIL: case DKIM_STAT_CBTRYAGAIN: case DKIM_STAT_NORESOURCE:
		return HAUTH_TEMPERROR;
	default: return HAUTH_PERMERROR;
	}
}

struct dkim_outcome {
	enum hygiene_auth result;
	char domain[256];
	char selector[64];
};

static void
dkim_copy_sig(struct dkim_outcome *o, DKIM_SIGINFO *sig)
{
	const char *d = (const char *)dkim_sig_getdomain(sig);
	const char *s = (const char *)dkim_sig_getselector(sig);
	snprintf(o->domain, sizeof(o->domain), "%s", d != NULL ? d : "");
	snprintf(o->selector, sizeof(o->selector), "%s", s != NULL ? s : "");
}

/* Picks the passing signature if any, else the first, for the report. */
static void
dkim_pick(DKIM *d, DKIM_STAT st, struct dkim_outcome *o)
{
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;
	o->result = dkim_map(st);
	if (dkim_getsiglist(d, &sigs, &nsigs) != DKIM_STAT_OK || nsigs <= 0)
		return;
	for (int i = 0; i < nsigs; i++) {
		if (DKIM_SIG_CHECK(sigs[i])) {
			o->result = HAUTH_PASS;
			dkim_copy_sig(o, sigs[i]);
			return;
		}
	}
	if (o->result == HAUTH_PASS || o->result == HAUTH_NONE)
		o->result = HAUTH_FAIL;
	dkim_copy_sig(o, sigs[0]);
}

static void
dkim_check(const struct hygiene_msg *m, DKIM_LIB *lib, struct dkim_outcome *o)
{
	memset(o, 0, sizeof(*o));
	DKIM_STAT st = DKIM_STAT_OK;
	DKIM *d = dkim_verify(lib, (const unsigned char *)(m->qid != NULL ? m->qid : "-"), NULL,
	    &st);
	if (d == NULL) {
		o->result = HAUTH_TEMPERROR;
		return;
	}
	dkim_set_user_context(d, hygiene_dns(m->h));
	st = dkim_chunk(d, (u_char *)m->data, m->len);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(d, NULL, 0);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(d, NULL);
	dkim_pick(d, st, o);
	dkim_free(d);
}

/* ---- DMARC ---- */

static pthread_once_t dmarc_once = PTHREAD_ONCE_INIT;

static void
dmarc_lib_init(void)
{
	OPENDMARC_LIB_T opts;
	memset(&opts, 0, sizeof(opts));
	opts.tld_type = OPENDMARC_TLD_TYPE_NONE;
	if (opendmarc_policy_library_init(&opts) != DMARC_PARSE_OKAY)
		log_warn("dmarc_init_failed", "library=opendmarc");
}

static const char *
addr_domain(const char *addr)
{
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

/* The first "v=DMARC1" TXT at _dmarc.<domain>: DNS_OK with *rec_r, DNS_OK with
 * NULL (none), or DNS_TEMPFAIL. */
static enum dns_status
dmarc_fetch(struct dns_sync *dns, const char *domain, char **rec_r)
{
	*rec_r = NULL;
	char *name = buf_printf("_dmarc.%s", domain);
	struct dns_records rr;
	enum dns_status st = strlen(name) > 253 ? DNS_NXDOMAIN
	    : dns_sync_query(dns, name, DNS_SYNC_TXT, &rr);
	free(name);
	if (st == DNS_NXDOMAIN)
		return DNS_OK;
	if (st != DNS_OK) {
		dns_records_free(&rr);
		return DNS_TEMPFAIL;
	}
	for (size_t i = 0; i < rr.n; i++) {
		if (strncasecmp(rr.items[i], "v=DMARC1", 8) == 0
		    && strlen(rr.items[i]) < DMARC_MAX_RECORD) {
			*rec_r = xstrdup(rr.items[i]);
			break;
		}
	}
	dns_records_free(&rr);
	return DNS_OK;
}

struct dmarc_outcome {
	enum hygiene_auth result;
	const char *policy;           /* "reject", "quarantine", "none" or NULL */
	int enforce;                  /* DMARC_POLICY_REJECT / _QUARANTINE / 0 */
};

static int
spf_outcome(enum hygiene_auth a)
{
	return a == HAUTH_PASS ? DMARC_POLICY_SPF_OUTCOME_PASS
	    : a == HAUTH_FAIL || a == HAUTH_SOFTFAIL ? DMARC_POLICY_SPF_OUTCOME_FAIL
	    : a == HAUTH_TEMPERROR ? DMARC_POLICY_SPF_OUTCOME_TMPFAIL : DMARC_POLICY_SPF_OUTCOME_NONE;
}

static int
dkim_outcome(enum hygiene_auth a)
{
	return a == HAUTH_PASS ? DMARC_POLICY_DKIM_OUTCOME_PASS
	    : a == HAUTH_FAIL ? DMARC_POLICY_DKIM_OUTCOME_FAIL
	    : a == HAUTH_TEMPERROR ? DMARC_POLICY_DKIM_OUTCOME_TMPFAIL
	    : DMARC_POLICY_DKIM_OUTCOME_NONE;
}

/* Hands the record and both results to libopendmarc and reads its verdict. */
static void
dmarc_evaluate(const struct hygiene_msg *m, const char *from_dom, const char *rec,
    const char *rec_dom, const char *org, enum hygiene_auth spf, const struct dkim_outcome *dk,
    struct dmarc_outcome *o)
{
	int v6 = m->client_ip != NULL && strchr(m->client_ip, ':') != NULL;
	DMARC_POLICY_T *p = opendmarc_policy_connect_init((u_char *)m->client_ip,
	    v6 ? DMARC_POLICY_IP_TYPE_IPV6 : DMARC_POLICY_IP_TYPE_IPV4);
	if (p == NULL) {
		o->result = HAUTH_TEMPERROR;
		return;
	}
	const char *spf_dom = addr_domain(m->sender);
	int origin = DMARC_POLICY_SPF_ORIGIN_MAILFROM;
	if (spf_dom == NULL) {
		spf_dom = m->client_helo != NULL ? m->client_helo : "";
		origin = DMARC_POLICY_SPF_ORIGIN_HELO;
	}
	if (opendmarc_policy_store_from_domain(p, (u_char *)from_dom) != DMARC_PARSE_OKAY
	    || opendmarc_policy_store_dmarc(p, (u_char *)rec, (u_char *)rec_dom, (u_char *)org)
	    != DMARC_PARSE_OKAY) {
		o->result = HAUTH_PERMERROR;
		opendmarc_policy_connect_shutdown(p);
		return;
	}
	if (spf_dom[0] != '\0')
		opendmarc_policy_store_spf(p, (u_char *)spf_dom, spf_outcome(spf), origin, NULL);
	if (dk->domain[0] != '\0')
		opendmarc_policy_store_dkim(p, (u_char *)dk->domain, (u_char *)dk->selector,
		    dkim_outcome(dk->result), NULL);
	int pol = opendmarc_get_policy_to_enforce(p);
	int dp = 0;
	if (opendmarc_policy_fetch_p(p, &dp) == DMARC_PARSE_OKAY)
		o->policy = dp == DMARC_RECORD_P_REJECT ? "reject"
		    : dp == DMARC_RECORD_P_QUARANTINE ? "quarantine" : "none";
	switch (pol) {
	case DMARC_POLICY_PASS: o->result = HAUTH_PASS; break;
	case DMARC_POLICY_REJECT: o->result = HAUTH_FAIL; o->enforce = pol; break;
	case DMARC_POLICY_QUARANTINE: o->result = HAUTH_FAIL; o->enforce = pol; break;
	case DMARC_POLICY_NONE: o->result = HAUTH_FAIL; break;
	case DMARC_POLICY_ABSENT: o->result = HAUTH_NONE; break;
	default: o->result = HAUTH_PERMERROR; break;
	}
	opendmarc_policy_connect_shutdown(p);
}

static void
dmarc_check(const struct hygiene_msg *m, enum hygiene_auth spf, const struct dkim_outcome *dk,
    struct dmarc_outcome *o)
{
	memset(o, 0, sizeof(*o));
	const char *from_dom = addr_domain(m->header_from);
	char org[256];
	if (from_dom == NULL || auth_org_domain(from_dom, org, sizeof(org)) < 0)
		return;
	pthread_once(&dmarc_once, dmarc_lib_init);
	char *rec = NULL;
	const char *rec_dom = from_dom;
	enum dns_status st = dmarc_fetch(hygiene_dns(m->h), from_dom, &rec);
	if (st == DNS_OK && rec == NULL && strcasecmp(org, from_dom) != 0) {
		rec_dom = org;
		st = dmarc_fetch(hygiene_dns(m->h), org, &rec);
	}
	if (st != DNS_OK)
		o->result = HAUTH_TEMPERROR;
	else if (rec != NULL)
		dmarc_evaluate(m, from_dom, rec, rec_dom, org, spf, dk, o);
	free(rec);
}

/* ---- the stage ---- */

static void
apply_verdicts(const struct hygiene_msg *m, struct hygiene_result *r,
    const struct dmarc_outcome *dm)
{
	const struct hygiene_policy *pol = m->pol;
	if (r->spf == HAUTH_FAIL && policy_act_action(pol->spf_fail_action) != HYGIENE_ACCEPT)
		hygiene_result_raise(r, policy_act_action(pol->spf_fail_action),
		    "550 5.7.23 SPF validation failed", "spf:fail");
	if (!pol->dmarc_enabled || r->dmarc != HAUTH_FAIL)
		return;
	const char *dom = addr_domain(m->header_from);
	if (dm->enforce == DMARC_POLICY_REJECT) {
		char *reply = buf_printf("550 5.7.1 Message rejected: DMARC policy of %s", dom);
		hygiene_result_raise(r, HYGIENE_REJECT, reply, "dmarc:reject");
		free(reply);
	} else if (dm->enforce == DMARC_POLICY_QUARANTINE) {
		hygiene_result_raise(r, HYGIENE_QUARANTINE, NULL, "dmarc:quarantine");
	} else {
		hygiene_result_reason(r, "dmarc:fail");
	}
}

static void
rename_forged(const struct hygiene_msg *m, struct hygiene_result *r, const char *host)
{
	const unsigned char *data;
	size_t len;
	hygiene_result_content(m, r, &data, &len);
	unsigned char *out = NULL;
	size_t outlen = 0;
	int n = auth_results_rename_forged(data, len, host, &out, &outlen);
	if (n > 0) {
		hygiene_result_rewrite(r, out, outlen);
		hygiene_result_reason(r, "auth:forged_results");
		log_info("auth_results_forged", "id=%s renamed=%d", log_str(m->qid), n);
	}
}

static int
all_temperror(const struct auth_results *ar)
{
	int checked = ar->checked_spf + ar->checked_dkim + ar->checked_dmarc;
	int temp = (ar->checked_spf && ar->spf == HAUTH_TEMPERROR)
	    + (ar->checked_dkim && ar->dkim == HAUTH_TEMPERROR)
	    + (ar->checked_dmarc && ar->dmarc == HAUTH_TEMPERROR);
	return checked > 0 && temp == checked;
}

int
sender_auth_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	const struct hygiene_policy *pol = m->pol;
	const struct config *cfg = hygiene_config(m->h);
	const char *host = cfg != NULL && cfg->hostname != NULL ? cfg->hostname : "localhost";
	struct sender_auth *sa = m->h->sender_auth;
	struct auth_results ar;
	memset(&ar, 0, sizeof(ar));
	ar.authserv_id = host;
	ar.spf_mailfrom = m->sender;
	ar.spf_helo = m->client_helo;
	if (pol->spf_enabled) {
		ar.checked_spf = 1;
		ar.spf = spf_check(m, host);
	}
	struct dkim_outcome dk;
	memset(&dk, 0, sizeof(dk));
	if ((pol->dkim_verify || pol->dmarc_enabled) && sa != NULL && sa->dkim != NULL)
		dkim_check(m, sa->dkim, &dk);
	if (pol->dkim_verify) {
		ar.checked_dkim = 1;
		ar.dkim = dk.result;
		ar.dkim_domain = dk.domain;
		ar.dkim_selector = dk.selector;
	}
	struct dmarc_outcome dm;
	memset(&dm, 0, sizeof(dm));
	if (pol->dmarc_enabled && m->header_from != NULL) {
		dmarc_check(m, ar.spf, &dk, &dm);
		ar.checked_dmarc = 1;
		ar.dmarc = dm.result;
		ar.dmarc_from = addr_domain(m->header_from);
		ar.dmarc_policy = dm.policy;
	}
	r->spf = ar.spf;
	r->dkim = dk.result;
	r->dmarc = dm.result;
	if (dk.result == HAUTH_PASS)
		snprintf(r->dkim_domain, sizeof(r->dkim_domain), "%s", dk.domain);
	char *value = auth_results_value(&ar);
	hygiene_result_add_header(r, "Authentication-Results", "%s", value);
	free(value);
	rename_forged(m, r, host);
	log_info("sender_auth", "id=%s spf=%s dkim=%s dkim_d=%s dmarc=%s", log_str(m->qid),
	    hygiene_auth_name(r->spf), hygiene_auth_name(r->dkim), log_str(dk.domain),
	    hygiene_auth_name(r->dmarc));
	if (all_temperror(&ar)) {
		err_setf(err_r, "DNS unavailable: no sender authentication check could be evaluated");
		return -1;
	}
	apply_verdicts(m, r, &dm);
	return 0;
}

int
sender_auth_init(struct hygiene *h, char **err_r)
{
	struct sender_auth *sa = xcalloc(1, sizeof(*sa));
	sa->dkim = dkim_init(NULL, NULL);
	if (sa->dkim == NULL) {
		free(sa);
		err_setf(err_r, "libopendkim: dkim_init failed");
		return -1;
	}
	dkim_set_key_lookup(sa->dkim, dkim_key_lookup);
	SPF_warning_handler = spf_log_warn;
	SPF_info_handler = spf_log_warn;
	SPF_debug_handler = spf_log_warn;
	pthread_once(&dmarc_once, dmarc_lib_init);
	h->sender_auth = sa;
	return 0;
}

void
sender_auth_free(struct hygiene *h)
{
	struct sender_auth *sa = h->sender_auth;
	if (sa == NULL)
		return;
	dkim_close(sa->dkim);
	free(sa);
	h->sender_auth = NULL;
}
