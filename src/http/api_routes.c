/*
 * api_routes.c — the one table of HTTP API routes, and the OpenAPI 3.0
 * document generated from it (so a route cannot be missing from the
 * document).  Adding a route is one line: method, path, control command,
 * flags, body fields, query filters, summary.
 */
#include "http/api.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/mem.h"

#define T "/api/v1/tenants/{tenant}"

const struct api_route api_routes[] = {
	/* sign-in and the document itself */
	{ "POST", "/api/v1/session", NULL, API_SESSION_NEW, API_PUBLIC | API_CREATED,
	    "address!,password!,totp", NULL, "Signs in; sets the session cookie, returns the CSRF token" },
	{ "GET", "/api/v1/session", NULL, API_SESSION_GET, 0, NULL, NULL, "Who am I" },
	{ "DELETE", "/api/v1/session", NULL, API_SESSION_END, 0, NULL, NULL, "Signs out" },
	{ "GET", "/api/v1/openapi.json", NULL, API_OPENAPI, API_PUBLIC, NULL, NULL,
	    "This document" },
	/* tenants, domains, routes, relay networks */
	{ "GET", "/api/v1/tenants", "tenant.list", 0, API_LIST, NULL, NULL, "Lists tenants" },
	{ "POST", "/api/v1/tenants", "tenant.add", 0, API_CREATED, "name!,region", NULL,
	    "Creates a tenant" },
	{ "GET", "/api/v1/tenants/{name}", "tenant.show", 0, 0, NULL, NULL, "Shows a tenant" },
	{ "PUT", "/api/v1/tenants/{name}/settings/{key}", "tenant.set", 0, 0, "value!", NULL,
	    "Changes a tenant setting (unknown-recipients: accept or reject)" },
	{ "DELETE", "/api/v1/tenants/{name}", "tenant.remove", 0, 0, NULL, NULL,
	    "Removes a tenant (it must have no domains)" },
	{ "GET", T "/domains", "domain.list", 0, API_LIST, NULL, NULL, "Lists a tenant's domains" },
	{ "POST", T "/domains", "domain.add", 0, API_CREATED, "domain!", NULL, "Adds a domain" },
	{ "DELETE", T "/domains/{domain}", "domain.remove", 0, 0, NULL, NULL, "Removes a domain" },
	{ "GET", "/api/v1/routes", "route.list", 0, API_LIST, NULL, NULL,
	    "Lists the domains that have a route" },
	{ "PUT", "/api/v1/routes/{domain}", "route.set", 0, 0, "url!", NULL,
	    "Sets the route of a domain (smtp://host:port)" },
	{ "GET", T "/relays", "relay.list", 0, API_LIST, NULL, NULL, "Lists relay networks" },
	{ "POST", T "/relays", "relay.add", 0, API_CREATED, "cidr!", NULL, "Adds a relay network" },
	{ "DELETE", T "/relays/{cidr}", "relay.remove", 0, 0, NULL, NULL,
	    "Removes a relay network (CIDR URL-encoded)" },
	/* the queue */
	{ "GET", "/api/v1/queue", "queue.list", 0, API_LIST, NULL, NULL, "Lists queued messages" },
	{ "POST", "/api/v1/queue/flush", "queue.flush", 0, 0, NULL, NULL,
	    "Retries every deferred message now" },
	{ "GET", "/api/v1/queue/{id}", "queue.show", 0, 0, NULL, NULL, "Shows a queued message" },
	{ "DELETE", "/api/v1/queue/{id}", "queue.delete", 0, 0, NULL, NULL,
	    "Deletes a queued message" },
	{ "POST", "/api/v1/queue/{id}/hold", "queue.hold", 0, 0, NULL, NULL, "Holds a message" },
	{ "POST", "/api/v1/queue/{id}/release", "queue.release", 0, 0, NULL, NULL,
	    "Releases a held message" },
	/* users and tokens (control_identity.c) */
	{ "GET", T "/users", "user.list", 0, API_LIST, NULL, NULL, "Lists a tenant's users" },
	{ "POST", T "/users", "user.add", 0, API_CREATED,
	    "address!,role,name,password", NULL, "Adds a user" },
	{ "GET", T "/users/{address}", "user.show", 0, 0, NULL, NULL, "Shows a user" },
	{ "POST", T "/users/{address}/disable", "user.disable", 0, 0, NULL, NULL,
	    "Disables a user (never deletes)" },
	{ "POST", T "/users/{address}/enable", "user.enable", 0, 0, NULL, NULL,
	    "Enables a user" },
	{ "PUT", T "/users/{address}/password", "user.passwd", 0, 0, "password!", NULL,
	    "Sets a user's password" },
	{ "POST", T "/users/{address}/aliases", "user.alias.add", 0, API_CREATED, "alias!", NULL,
	    "Adds an alias address" },
	{ "DELETE", T "/users/{address}/aliases/{alias}", "user.alias.remove", 0, 0, NULL, NULL,
	    "Removes an alias address" },
	{ "GET", T "/groups", "group.list", 0, API_LIST, NULL, NULL, "Lists a tenant's groups" },
	{ "POST", T "/groups", "group.add", 0, API_CREATED, "name!", NULL, "Adds a group" },
	{ "DELETE", T "/groups/{name}", "group.remove", 0, 0, NULL, NULL, "Removes a group" },
	{ "POST", T "/groups/{group}/members", "group.member.add", 0, API_CREATED, "address!", NULL,
	    "Adds a member" },
	{ "DELETE", T "/groups/{group}/members/{address}", "group.member.remove", 0, 0, NULL, NULL,
	    "Removes a member" },
	/* directory sync (control_directory.c) */
	{ "GET", T "/directory", "directory.show", 0, 0, NULL, NULL,
	    "Shows the tenant's LDAP settings and last sync" },
	{ "PUT", T "/directory", "directory.set", 0, 0,
	    "url!,base_dn!,bind_dn!,bind_password,user_filter,group_filter,interval,starttls", NULL,
	    "Sets the tenant's LDAP / Active Directory settings" },
	{ "POST", T "/directory/sync", "directory.sync", 0, 0, NULL, NULL, "Starts a sync" },
	{ "GET", T "/directory/jobs/{id}", "directory.job", 0, 0, NULL, NULL,
	    "The state of a sync job" },
	{ "GET", "/api/v1/tokens", "token.list", 0, API_LIST, NULL, "user", "Lists API tokens" },
	{ "POST", "/api/v1/tokens", "token.create", 0, API_CREATED, "name,user,expires", NULL,
	    "Creates an API token (shown once)" },
	{ "DELETE", "/api/v1/tokens/{id}", "token.revoke", 0, 0, NULL, NULL, "Revokes a token" },
	/* the archive (control_archive.c, control_archive_retention.c) */
	{ "GET", T "/archive/search", "archive.search", 0, 0, NULL, "query!,limit:i,offset:i",
	    "Searches the archive (newest first; total, snippets, paging); audited" },
	{ "GET", T "/archive/messages/{id}", "archive.show", 0, 0, NULL, NULL,
	    "One archived message with its exact bytes (base64); audited" },
	{ "GET", T "/archive/stats", "archive.stats", 0, 0, NULL, NULL,
	    "Messages, blobs, sizes, index lag" },
	{ "POST", T "/archive/exports", "archive.export", 0, API_CREATED, "query!,format,out,approval:i", NULL,
	    "Starts an e-discovery export job (zip with manifest); audited" },
	{ "GET", T "/archive/exports/{id}", "archive.export.file", 0, API_FILE, NULL, NULL,
	    "Downloads a finished export job's zip; audited" },
	{ "POST", T "/archive/verify", "archive.verify", 0, API_CREATED, NULL, NULL,
	    "Starts a verify job" },
	{ "POST", T "/archive/reindex", "archive.reindex", 0, API_CREATED, NULL, NULL,
	    "Starts rebuilding the search index" },
	{ "POST", T "/archive/purge", "archive.purge", 0, API_CREATED, "dry_run:b", NULL,
	    "Starts a purge of expired, unheld messages" },
	{ "GET", T "/archive/jobs", "archive.jobs", 0, API_LIST, NULL, NULL, "Lists archive jobs" },
	{ "GET", T "/archive/jobs/{id}", "archive.job", 0, 0, NULL, NULL,
	    "A job's state, progress and result" },
	{ "GET", T "/archive/retention", "archive.retention.show", 0, 0, NULL, NULL,
	    "Retention policy, lock, four-eyes settings" },
	{ "PUT", T "/archive/retention", "archive.retention.set", 0, 0, "default_days:i!", NULL,
	    "Sets the default retention in days (-1: forever)" },
	{ "POST", T "/archive/retention/rules", "archive.retention.rule.add", 0, API_CREATED,
	    "kind!,match!,days:i!", NULL, "Adds a retention rule (folder, address, domain, keyword)" },
	{ "DELETE", T "/archive/retention/rules/{id}", "archive.retention.rule.remove", 0, 0, NULL,
	    NULL, "Removes a retention rule" },
	{ "POST", T "/archive/retention/lock", "archive.retention.lock", 0, 0, NULL, NULL,
	    "Locks the retention policy for ever" },
	{ "PUT", T "/archive/settings/{key}", "archive.settings.set", 0, 0, "value!", NULL,
	    "Sets four_eyes or four_eyes_export (on/off)" },
	{ "GET", T "/archive/cases", "archive.case.list", 0, API_LIST, NULL, NULL, "Lists cases" },
	{ "POST", T "/archive/cases", "archive.case.add", 0, API_CREATED, "name!,description", NULL,
	    "Opens an e-discovery case" },
	{ "POST", T "/archive/cases/{name}/close", "archive.case.close", 0, 0, NULL, NULL,
	    "Closes a case" },
	{ "DELETE", T "/archive/cases/{name}", "archive.case.delete", 0, 0, NULL, NULL,
	    "Deletes a case (four eyes)" },
	{ "GET", T "/archive/holds", "archive.hold.list", 0, API_LIST, NULL, NULL,
	    "Lists legal holds" },
	{ "POST", T "/archive/holds", "archive.hold.add", 0, API_CREATED,
	    "name!,case,mailbox,query,from,to", NULL, "Places a legal hold" },
	{ "POST", T "/archive/holds/{name}/release", "archive.hold.release", 0, 0, NULL, NULL,
	    "Releases a hold (four eyes)" },
	{ "GET", T "/archive/approvals", "archive.approval.list", 0, API_LIST, NULL, NULL,
	    "Changes waiting for a second admin" },
	{ "POST", T "/archive/approvals/{id}/approve", "archive.approval.approve", 0, 0, NULL, NULL,
	    "Approves (and carries out) a pending change" },
	{ "POST", T "/archive/approvals/{id}/reject", "archive.approval.reject", 0, 0, NULL, NULL,
	    "Rejects a pending change" },
	/* hygiene policy and quarantine (control_hygiene.c) */
	{ "GET", T "/policy", "policy.show", 0, 0, NULL, NULL,
	    "Shows the tenant's hygiene policy: every key, its value and default" },
	{ "PUT", T "/policy/{key}", "policy.set", 0, 0, "value!", NULL,
	    "Changes a hygiene policy setting (spam.tag_score, av.action, ...)" },
	{ "GET", T "/quarantine", "quarantine.list", 0, API_LIST, NULL, "rcpt,limit:i",
	    "Lists quarantined messages (users: their own)" },
	{ "GET", T "/quarantine/{id}", "quarantine.show", 0, 0, NULL, NULL,
	    "Shows a quarantined message: envelope, verdict, headers" },
	{ "POST", T "/quarantine/{id}/release", "quarantine.release", 0, 0, NULL, NULL,
	    "Delivers the original message to its recipients" },
	{ "DELETE", T "/quarantine/{id}", "quarantine.delete", 0, 0, NULL, NULL,
	    "Deletes a quarantined message" },
	{ "POST", T "/quarantine/digest", "quarantine.digest", 0, 0, NULL, NULL,
	    "Sends the quarantine digest to the tenant's users now" },
	/* antispam (control_spam.c) */
	{ "POST", T "/spam/train", "spam.train", 0, API_MESSAGE, "spam,ham,encoding", NULL,
	    "Trains the tenant's classifier (raw messages)" },
	{ "POST", T "/spam/classify", "spam.classify", 0, API_MESSAGE, "message!,encoding", NULL,
	    "Scores a raw message: score, verdict, reasons" },
	{ "POST", T "/spam/report", "spam.report", 0, API_MESSAGE, "message,id,verdict!,encoding",
	    NULL,
	    "A user's spam / not spam report: retrains the classifier" },
	{ "GET", T "/spam/stats", "spam.stats", 0, 0, NULL, NULL,
	    "How much the tenant's and the global classifier learned" },
	/* DKIM keys (control_dkim.c) */
	{ "POST", "/api/v1/dkim/{domain}/keygen", "dkim.keygen", 0, API_CREATED, "selector,bits:i",
	    NULL, "Generates the domain's DKIM key; returns the DNS TXT record" },
	{ "GET", "/api/v1/dkim/{domain}", "dkim.show", 0, 0, NULL, NULL,
	    "Shows the domain's DKIM selector and DNS TXT record" },
	/* continuity (control_continuity.c) */
	{ "GET", T "/continuity", "continuity.status", 0, 0, NULL, NULL,
	    "Continuity state, running drill, and the health of each primary route" },
	{ "POST", T "/continuity/start", "continuity.start", 0, 0, "reason", NULL,
	    "Starts continuity (holds mail for the primary); audited, alerts sent" },
	{ "POST", T "/continuity/stop", "continuity.stop", 0, 0, NULL, NULL,
	    "Begins failback to the primary; audited, alerts sent" },
	{ "GET", T "/continuity/report", "continuity.report", 0, 0, NULL, "id:i",
	    "Failback report of the newest outage (or ?id=): reconciles accepted and outcomes" },
	{ "GET", T "/continuity/settings", "continuity.settings", 0, 0, NULL, NULL,
	    "Continuity settings (imap_password shown as \"set\")" },
	{ "PUT", T "/continuity/settings/{key}", "continuity.set", 0, 0, "value!", NULL,
	    "Changes a continuity setting (mode, failback, window_days, sent_copy, ...)" },
	{ "POST", T "/continuity/drill/start", "continuity.drill.start", 0, 0, "users", NULL,
	    "Starts a drill for some users (\"a@x,b@x\") or all, without holding mail" },
	{ "POST", T "/continuity/drill/stop", "continuity.drill.stop", 0, 0, NULL, NULL,
	    "Stops the running drill" },
	{ "GET", T "/continuity/drill/report", "continuity.drill.report", 0, 0, NULL, "id:i",
	    "Report of the newest drill (or ?id=)" },
	/* the audit trail (control_audit.c) */
	{ "GET", "/api/v1/audit", "audit.list", 0, API_LIST | API_PASS_LIMIT, NULL, "tenant,since,actor",
	    "Lists audit entries" },
	{ NULL, NULL, NULL, 0, 0, NULL, NULL, NULL },
};

int
api_field_next(const char **spec, struct api_field *f)
{
	const char *p = *spec;
	if (p == NULL || *p == '\0')
		return 0;
	const char *end = strchr(p, ',');
	size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
	*spec = end != NULL ? end + 1 : p + n;
	f->required = n > 0 && p[n - 1] == '!';
	if (f->required)
		n--;
	f->type = 's';
	if (n >= 2 && p[n - 2] == ':') {
		f->type = p[n - 1];
		n -= 2;
	}
	if (n >= sizeof(f->name))
		n = sizeof(f->name) - 1;
	memcpy(f->name, p, n);
	f->name[n] = '\0';
	return 1;
}

static const char *
api_oa_type(char t)
{
	return t == 'i' ? "integer" : t == 'b' ? "boolean" : "string";
}

static json_t *
api_oa_param(const char *name, const char *in, int required, const char *type)
{
	return json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", name, "in", in, "required", required,
	    "schema", "type", type);
}

static json_t *
api_oa_params(const struct api_route *r)
{
	json_t *ps = json_array();
	for (const char *p = strchr(r->path, '{'); p != NULL; p = strchr(p + 1, '{')) {
		const char *e = strchr(p, '}');
		char *name = xstrndup(p + 1, (size_t)(e - p - 1));
		json_array_append_new(ps, api_oa_param(name, "path", 1, "string"));
		free(name);
	}
	struct api_field f;
	const char *q = r->query;
	while (api_field_next(&q, &f))
		json_array_append_new(ps, api_oa_param(f.name, "query", f.required,
		    api_oa_type(f.type)));
	if (r->flags & API_LIST) {
		json_array_append_new(ps, api_oa_param("limit", "query", 0, "integer"));
		json_array_append_new(ps, api_oa_param("cursor", "query", 0, "string"));
	}
	return ps;
}

static json_t *
api_oa_body(const char *spec)
{
	json_t *props = json_object(), *req = json_array();
	struct api_field f;
	while (api_field_next(&spec, &f)) {
		json_object_set_new(props, f.name, json_pack("{s:s}", "type", api_oa_type(f.type)));
		if (f.required)
			json_array_append_new(req, json_string(f.name));
	}
	json_t *schema = json_pack("{s:s, s:o, s:b}", "type", "object", "properties", props,
	    "additionalProperties", 0);
	if (json_array_size(req) > 0)
		json_object_set(schema, "required", req);
	json_decref(req);
	return json_pack("{s:b, s:{s:{s:o}}}", "required", 1, "content", "application/json",
	    "schema", schema);
}

static json_t *
api_oa_operation(const struct api_route *r)
{
	const char *ok = (r->flags & API_CREATED) ? "201" : "200";
	json_t *okschema = (r->flags & API_LIST) ?
	    json_pack("{s:s}", "$ref", "#/components/schemas/List") :
	    json_pack("{s:s}", "type", "object");
	json_t *op = json_pack("{s:s, s:o, s:{s:{s:s, s:{s:{s:o}}}, s:{s:s}}}",
	    "summary", r->summary, "parameters", api_oa_params(r),
	    "responses", ok, "description", "success", "content", "application/json",
	    "schema", okschema, "default", "$ref", "#/components/responses/Error");
	if (r->cmd != NULL)
		json_object_set_new(op, "operationId", json_string(r->cmd));
	if (r->body != NULL)
		json_object_set_new(op, "requestBody", api_oa_body(r->body));
	if (r->flags & API_PUBLIC)
		json_object_set_new(op, "security", json_array());
	return op;
}

static json_t *
api_oa_components(void)
{
	return json_pack("{s:{s:{s:s, s:s}, s:{s:s, s:s, s:s}}, "
	    "s:{s:{s:s, s:[s], s:{s:{s:s, s:[s,s], s:{s:{s:s, s:[s,s,s,s,s,s,s]}, "
	    "s:{s:s}}}}}, s:{s:s, s:{s:{s:s, s:{}}, s:{s:s, s:b}}}}, "
	    "s:{s:{s:s, s:{s:{s:{s:s}}}}}}",
	    "securitySchemes",
	    "bearer", "type", "http", "scheme", "bearer",
	    "session", "type", "apiKey", "in", "cookie", "name", "mailark_session",
	    "schemas",
	    "Error", "type", "object", "required", "error", "properties",
	    "error", "type", "object", "required", "code", "message", "properties",
	    "code", "type", "string", "enum", "bad_request", "unauthorized", "forbidden",
	    "not_found", "conflict", "payload_too_large", "internal",
	    "message", "type", "string",
	    "List", "type", "object", "properties", "items", "type", "array", "items",
	    "next_cursor", "type", "string", "nullable", 1,
	    "responses", "Error", "description", "an error", "content", "application/json",
	    "schema", "$ref", "#/components/schemas/Error");
}

json_t *
api_openapi(void)
{
	json_t *paths = json_object();
	for (const struct api_route *r = api_routes; r->method != NULL; r++) {
		json_t *item = json_object_get(paths, r->path);
		if (item == NULL) {
			item = json_object();
			json_object_set_new(paths, r->path, item);
		}
		char m[8];
		size_t i;
		for (i = 0; r->method[i] != '\0' && i < sizeof(m) - 1; i++)
			m[i] = (char)(r->method[i] | 0x20);
		m[i] = '\0';
		json_object_set_new(item, m, api_oa_operation(r));
	}
	return json_pack("{s:s, s:{s:s, s:s}, s:o, s:o, s:[{s:[]}, {s:[]}]}",
	    "openapi", "3.0.3", "info", "title", "mailark API", "version", "1",
	    "paths", paths, "components", api_oa_components(),
	    "security", "bearer", "session");
}
