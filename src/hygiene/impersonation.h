/*
 * impersonation — flags mail from outside addresses whose From display name
 * is one of the tenant's executives (impersonation.executives, compared
 * case- and accent-insensitively, also "Last, First"), and mail whose From
 * domain looks like one of the tenant's own domains without being it
 * (edit distance 1–2, homoglyphs such as rn→m, 0→o, 1→l, punycode
 * confusables, added hyphens/TLD swaps).  Raises impersonation.action.
 *
 *   rc = impersonation_stage(m, r, &err);   // hygiene.c stage table
 *
 * The tenant's domains are m->tenant_domains (read by the core from the store).
 */
#ifndef MAILARK_HYGIENE_IMPERSONATION_H
#define MAILARK_HYGIENE_IMPERSONATION_H

#include <stddef.h>

struct hygiene_msg;
struct hygiene_result;

int impersonation_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);
/* 1 when `domain` looks like `own` without being it (exposed for unit tests). */
int impersonation_lookalike(const char *domain, const char *own);

#endif
