/*
 * auth_results — the text side of sender authentication: the organisational
 * domain used for DMARC, the Authentication-Results header value (RFC 8601)
 * and the renaming of forged Authentication-Results headers that claim our
 * own authserv-id.  Pure functions over strings; any thread.
 *
 *   char org[256];
 *   auth_org_domain("mail.example.co.uk", org, sizeof(org));   // "example.co.uk"
 *   char *v = auth_results_value(&ar);                        // caller frees
 *   unsigned char *out; size_t outlen;
 *   if (auth_results_rename_forged(data, len, "mx.example", &out, &outlen) > 0) ...
 */
#ifndef MAILARK_HYGIENE_AUTH_RESULTS_H
#define MAILARK_HYGIENE_AUTH_RESULTS_H

#include <stddef.h>

#include "hygiene/hygiene.h"

/* Header name given to forged Authentication-Results fields. */
#define AUTH_RESULTS_RENAMED "X-Mailark-Removed-Authentication-Results"

/*
 * The registrable ("organisational") domain: the last two labels, or three
 * when the last two are a common second-level public suffix (co.uk, com.au,
 * ...).  Lower-cased, without a trailing dot.  0, or -1 when domain is empty
 * or does not fit.
 */
int auth_org_domain(const char *domain, char *out, size_t outlen);

/* What one message's checks found, for the header. */
struct auth_results {
	const char *authserv_id;      /* [server] hostname */
	enum hygiene_auth spf;        /* HAUTH_NONE also when not checked */
	const char *spf_mailfrom;     /* envelope sender, or NULL/"" for <> */
	const char *spf_helo;         /* HELO name (used when mailfrom is <>) */
	enum hygiene_auth dkim;
	const char *dkim_domain;      /* d= of the reported signature, or NULL */
	const char *dkim_selector;    /* s= */
	enum hygiene_auth dmarc;
	const char *dmarc_from;       /* From header domain, or NULL */
	const char *dmarc_policy;     /* "reject", "quarantine", "none" or NULL */
	int checked_spf, checked_dkim, checked_dmarc;  /* which methods ran */
};

/* "host; spf=pass smtp.mailfrom=a@b; dkim=pass header.d=b header.s=s; dmarc=pass
 * header.from=b" (malloc'd).  Outside values are reduced to characters that
 * cannot end or comment a property; a method that did not run is left out
 * ("host; none" when none ran). */
char *auth_results_value(const struct auth_results *ar);

/*
 * Copies the message with every Authentication-Results header field whose
 * authserv-id is `authserv_id` (case-insensitive) renamed to
 * AUTH_RESULTS_RENAMED.  Returns the number renamed; when > 0, *out_r is the
 * new message (malloc'd, the caller owns it); when 0, *out_r is NULL.
 */
int auth_results_rename_forged(const unsigned char *data, size_t len, const char *authserv_id,
    unsigned char **out_r, size_t *outlen_r);

#endif
