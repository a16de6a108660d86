/* Skeleton: replaced by the continuity core implementation. */
#include "continuity/continuity.h"

#include <stdlib.h>

#include "lib/mem.h"

struct continuity {
	struct server *srv;
};

int continuity_setting_set(struct continuity *c, const char *tenant, const char *key,
    const char *value, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int continuity_setting_get(struct continuity *c, const char *tenant, const char *key,
    char **value_r) { return -1; }
json_t *continuity_settings_json(struct continuity *c, const char *tenant) { return json_object(); }
int continuity_start(struct server *srv, struct continuity **c_r, char **err_r)
{
	struct continuity *c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	*c_r = c;
	return 0;
}
void continuity_stop(struct continuity **c) { free(*c); *c = NULL; }
enum continuity_state continuity_tenant_state(struct continuity *c, const char *tenant)
{ return CONTINUITY_NORMAL; }
int continuity_admin_start(struct continuity *c, const char *tenant, const struct principal *who,
    const char *reason, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int continuity_admin_stop(struct continuity *c, const char *tenant, const struct principal *who,
    char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int continuity_drill_start(struct continuity *c, const char *tenant, const char *const *users,
    size_t nusers, const struct principal *who, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int continuity_drill_stop(struct continuity *c, const char *tenant, const struct principal *who,
    char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int continuity_report(struct continuity *c, const char *tenant, long long outage_id,
    json_t **report_r, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
int continuity_drill_report(struct continuity *c, const char *tenant, long long drill_id,
    json_t **report_r, char **err_r) { *err_r = xstrdup("not yet"); return -1; }
json_t *continuity_status_json(struct continuity *c, const char *tenant) { return json_object(); }
int continuity_user_active(struct continuity *c, const char *tenant, const char *address) { return 0; }
void continuity_note_signin(struct continuity *c, const char *tenant, const char *address,
    const char *service) { }
int continuity_window_days(struct continuity *c, const char *tenant) { return 30; }
int continuity_route_held(struct continuity *c, const char *tenant) { return 0; }
void continuity_note_queued(struct continuity *c, const struct queue_entry *e) { }
void continuity_note_outcome(struct continuity *c, const struct queue_entry *e, size_t idx,
    enum queue_rcpt_state st, const char *reply) { }
void continuity_note_route_result(struct continuity *c, const char *tenant, const char *route,
    int ok, const char *why) { }
int continuity_already_delivered(struct continuity *c, const struct queue_entry *e, size_t idx,
    const char **why_r) { return 0; }
void continuity_probe_result(struct continuity *c, const char *tenant, const char *route, int ok,
    const char *why) { }
