/* Skeleton: replaced by the probe implementation. */
#include "continuity/probe.h"

#include <stddef.h>

int probe_start(struct server *srv, struct probe **p_r, char **err_r) { *p_r = NULL; return 0; }
void probe_stop(struct probe **p) { *p = NULL; }
void probe_now(struct probe *p) { }
