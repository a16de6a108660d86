/*
 * control_dkim.c — `dkim.keygen {domain, selector?, bits?}` and
 * `dkim.show {domain}`: per-domain DKIM signing keys (hygiene/dkim_sign.h).
 * Both answer {domain, selector, bits, dns_name, dns_txt, record}: the DNS
 * TXT record to publish.  Authorisation by domain is in control_authz.c.
 */
#include "control/control_handlers.h"

#include <stddef.h>
#include <stdlib.h>

#include "config/config.h"
#include "control/control_args.h"
#include "hygiene/dkim_sign.h"
#include "server.h"

static int
cmd_dkim_keygen(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	const char *domain = control_arg(args, "domain", err_r);
	if (domain == NULL)
		return -1;
	long long bits = 0;
	if (control_arg_int(args, "bits", 2048, 1024, 4096, &bits, err_r) < 0)
		return -1;
	const char *selector = control_arg_opt(args, "selector");
	return dkim_keygen(srv->cfg->data_dir, domain, selector, (int)bits, result_r, err_r);
}

static int
cmd_dkim_show(struct server *srv, const struct principal *who, json_t *args,
    json_t **result_r, char **err_r)
{
	(void)who;
	const char *domain = control_arg(args, "domain", err_r);
	if (domain == NULL)
		return -1;
	return dkim_show(srv->cfg->data_dir, domain, result_r, err_r);
}

const struct control_command control_dkim_commands[] = {
	{ "dkim.keygen", 1, cmd_dkim_keygen },
	{ "dkim.show", 0, cmd_dkim_show },
	{ NULL, 0, NULL },
};
