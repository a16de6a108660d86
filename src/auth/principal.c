#include "auth/principal.h"

#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = { "none", "user", "auditor", "admin", "operator" };

const char *
role_name(enum role r)
{
	return (unsigned)r < sizeof(role_names) / sizeof(role_names[0]) ? role_names[r] : "none";
}

int
role_parse(const char *name, enum role *r_r)
{
	for (unsigned i = ROLE_USER; i < sizeof(role_names) / sizeof(role_names[0]); i++) {
		if (strcmp(name, role_names[i]) == 0) {
			*r_r = (enum role)i;
			return 0;
		}
	}
	return -1;
}

void
principal_clear(struct principal *p)
{
	free(p->actor);
	free(p->tenant);
	free(p->source);
	memset(p, 0, sizeof(*p));
}
