/*
 * cli.c — command table, help texts and the administrative commands.
 *
 * Each administrative subcommand is one row of cli_subs[]: its words, the
 * control command it becomes, and the names of its positional arguments
 * (which become the request's "args" object).  Options: --json everywhere,
 * --region R for "tenant add".  Usage errors exit 2, failures exit 1.
 */
#include "cli/cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "cli/cli_format.h"
#include "cli/cli_identity.h"
#include "config/config.h"
#include "directory/directory_cli.h"
#include "cli/cli_archive.h"
#include "cli/cli_continuity.h"
#include "cli/cli_spam.h"
#include "control/control.h"
#include "lib/mem.h"

#define CLI_MAX_ARGS 3

struct cli_sub {
	const char *group;
	const char *name;
	const char *ctl;                      /* control command */
	const char *args[CLI_MAX_ARGS];       /* positional argument names */
	int nrequired;                        /* the first n are required */
	const char *synopsis;
	const char *help;
};

/* The "--name VALUE" options of subcommands handled by the generic parser. */
static const struct {
	const char *ctl;
	const char *names;                    /* comma list */
} cli_options[] = {
	{ "tenant.add", "region" },
	{ "dkim.keygen", "selector,bits" },
};

static const struct cli_sub cli_subs[] = {
	{ "tenant", "add", "tenant.add", { "name" }, 1, "NAME [--region R]",
	  "Adds a tenant (lower-case letters, digits and '-', at most 63).  --region\n"
	  "names one of the regions of [server] regions (default \"default\")." },
	{ "tenant", "list", "tenant.list", { NULL }, 0, "", "Lists the tenants." },
	{ "tenant", "show", "tenant.show", { "name" }, 1, "NAME",
	  "Shows a tenant with its domains, routes and relay networks." },
	{ "tenant", "set", "tenant.set", { "name", "key", "value" }, 3, "NAME KEY VALUE",
	  "Changes a tenant setting.  unknown-recipients accept|reject: mail to an\n"
	  "address of the tenant's domains that is no user or alias is accepted\n"
	  "(default) or refused with 550 5.1.1." },
	{ "tenant", "remove", "tenant.remove", { "name" }, 1, "NAME",
	  "Removes a tenant and its relay networks.  A tenant that still has\n"
	  "domains is refused: remove its domains first (no cascade)." },
	{ "domain", "add", "domain.add", { "tenant", "domain" }, 2, "TENANT DOMAIN",
	  "Adds a domain to a tenant; mail to it is accepted from then on." },
	{ "domain", "list", "domain.list", { "tenant" }, 0, "[TENANT]",
	  "Lists the domains (of one tenant, or all) with their routes." },
	{ "domain", "remove", "domain.remove", { "tenant", "domain" }, 2, "TENANT DOMAIN",
	  "Removes a domain from its tenant, and its route with it." },
	{ "route", "set", "route.set", { "domain", "url" }, 2,
	  "DOMAIN smtp://HOST:PORT[?tls=required]",
	  "Sets where mail for a tenant's domain is delivered (its primary server).\n"
	  "?tls=required defers delivery when the server offers no STARTTLS." },
	{ "route", "list", "route.list", { NULL }, 0, "", "Lists the domains that have a route." },
	{ "relay", "add", "relay.add", { "tenant", "cidr" }, 2, "TENANT CIDR",
	  "Allows a network of the tenant's own servers (e.g. 192.0.2.0/24,\n"
	  "2001:db8::/32) to send outbound mail through mailark." },
	{ "relay", "list", "relay.list", { "tenant" }, 0, "[TENANT]",
	  "Lists relay networks (of one tenant, or all)." },
	{ "relay", "remove", "relay.remove", { "tenant", "cidr" }, 2, "TENANT CIDR",
	  "Removes a relay network." },
	{ "queue", "list", "queue.list", { NULL }, 0, "",
	  "Lists the queued messages with each recipient's state." },
	{ "queue", "show", "queue.show", { "id" }, 1, "ID", "Shows one queued message." },
	{ "queue", "flush", "queue.flush", { NULL }, 0, "",
	  "Makes every deferred message due for delivery now." },
	{ "queue", "hold", "queue.hold", { "id" }, 1, "ID",
	  "Holds a message: it is not delivered until released." },
	{ "queue", "release", "queue.release", { "id" }, 1, "ID",
	  "Releases a held message." },
	{ "queue", "delete", "queue.delete", { "id" }, 1, "ID",
	  "Deletes a message from the queue without a bounce." },
	/* user, group, token: handled by cli_identity_run (options, stdin passwords) */
	{ "user", "add", "user.add", { "tenant", "address" }, 2,
	  "TENANT ADDRESS [--role R] [--name \"Display\"] [--password-stdin]",
	  "Adds a user to a tenant.  ADDRESS must be in one of the tenant's domains and\n"
	  "unique across the install (aliases included).  --role: admin, auditor or user\n"
	  "(default); operators (the whole install) take TENANT \"-\" and --role operator.\n"
	  "--password-stdin reads the password (10+ characters) from standard input." },
	{ "user", "list", "user.list", { "tenant" }, 1, "TENANT",
	  "Lists a tenant's users (TENANT \"-\": the operators)." },
	{ "user", "show", "user.show", { "tenant", "address" }, 2, "TENANT ADDRESS",
	  "Shows a user with aliases, groups, role and status." },
	{ "user", "disable", "user.disable", { "tenant", "address" }, 2, "TENANT ADDRESS",
	  "Disables a user: no sign-in, tokens stop working.  Nothing is deleted." },
	{ "user", "enable", "user.enable", { "tenant", "address" }, 2, "TENANT ADDRESS",
	  "Enables a disabled user again." },
	{ "user", "passwd", "user.passwd", { "tenant", "address" }, 2, "TENANT ADDRESS",
	  "Sets a user's password, read from standard input (never from the command line)." },
	{ "user", "alias", "user.alias.add", { "tenant", "address" }, 2,
	  "add|remove TENANT ADDRESS ALIAS",
	  "Adds or removes an alias address (in one of the tenant's domains)." },
	{ "user", "totp", "user.totp.enable", { "tenant", "address" }, 2,
	  "enable TENANT ADDRESS",
	  "Gives the user a TOTP second factor and prints its otpauth:// URI and secret\n"
	  "once; from then on password sign-in also needs a current code." },
	{ "group", "add", "group.add", { "tenant", "name" }, 2, "TENANT NAME", "Adds a group." },
	{ "group", "list", "group.list", { "tenant" }, 1, "TENANT",
	  "Lists a tenant's groups and their members." },
	{ "group", "remove", "group.remove", { "tenant", "name" }, 2, "TENANT NAME",
	  "Removes a group (its users stay)." },
	{ "group", "member", "group.member.add", { "tenant", "name" }, 2,
	  "add|remove TENANT GROUP ADDRESS", "Adds a user to a group or removes one from it." },
	{ "token", "create", "token.create", { NULL }, 0,
	  "[--user ADDRESS] [--name N] [--expires 30d]",
	  "Creates an API token (for --user, by default operator@local) and prints it\n"
	  "once: only its hash is kept.  --expires takes a duration (default: never)." },
	{ "token", "list", "token.list", { NULL }, 0, "[--user ADDRESS]",
	  "Lists API tokens (never their secrets)." },
	{ "token", "revoke", "token.revoke", { "id" }, 1, "ID",
	  "Revokes a token: it stops working at once." },
	/* audit: handled by audit_cli_run (options of their own; verify works offline) */
	{ "audit", "verify", "audit.verify", { NULL }, 0, "[--pubkey FILE]",
	  "Checks the audit trail: the hash chain, every signed checkpoint, and that\n"
	  "no entry up to the last checkpoint is missing.  Names the first bad entry\n"
	  "and exits 1.  Reads mailark.db directly, with or without the daemon.\n"
	  "--pubkey checks the signatures against a copy of keys/audit.pub kept elsewhere." },
	{ "audit", "list", "audit.list", { NULL }, 0,
	  "[--tenant T] [--since TIME] [--actor A] [--limit N]",
	  "Lists audit entries, newest first (100 unless --limit).  TIME is an ISO 8601\n"
	  "date or date/time (2024-05-01, 2024-05-01T12:00:00Z) or a duration ago (2h)." },
	/* archive: handled by cli_archive_run (options, waits for jobs with progress) */
	{ "archive", "import", "archive.import", { "tenant" }, 1,
	  "TENANT (--pst FILE | --mbox FILE | --maildir DIR | --eml PATH...)\n"
	  "           [--mailbox ADDRESS] [--folder F]",
	  "Imports old mail into the tenant's archive (PST folders are kept).  Content\n"
	  "already archived for the mailbox is skipped, so re-running adds nothing.\n"
	  "Prints imported, duplicates and failures with reasons." },
	{ "archive", "search", "archive.search", { "tenant", "query" }, 2,
	  "TENANT 'QUERY' [--limit N] [--offset N]",
	  "Searches the archive, newest first.  QUERY: words, \"phrases\", from: to: cc:\n"
	  "subject: folder: filename: mailbox: has:attachment before:/after:YYYY-MM-DD,\n"
	  "AND, OR, NOT (or -word), parentheses.  Audited." },
	{ "archive", "show", "archive.show", { "tenant", "id" }, 2, "TENANT ID [--raw]",
	  "Shows an archive entry; --raw writes the exact archived bytes.  Audited." },
	{ "archive", "export", "archive.export", { "tenant", "query" }, 2,
	  "TENANT 'QUERY' [--format mbox|eml] --out FILE.zip",
	  "E-discovery export: the matching messages and a manifest (JSON and CSV) with\n"
	  "each message's SHA-256, archive ID, mailbox, folder, date, from, subject." },
	{ "archive", "verify", "archive.verify", { "tenant" }, 1, "TENANT",
	  "Re-reads every blob, checks its hash, and that store and index agree; exits 1\n"
	  "and lists every discrepancy when there is one." },
	{ "archive", "reindex", "archive.reindex", { "tenant" }, 1, "TENANT",
	  "Rebuilds the search index from the stored messages alone." },
	{ "archive", "purge", "archive.purge", { "tenant" }, 1, "TENANT [--dry-run]",
	  "Deletes expired messages that no legal hold covers (audited)." },
	{ "archive", "stats", "archive.stats", { "tenant" }, 1, "TENANT",
	  "Messages, blobs, sizes on disk and the index lag." },
	{ "archive", "jobs", "archive.jobs", { "tenant" }, 1, "TENANT",
	  "Lists the archive's recent background jobs." },
	{ "archive", "shred", "archive.shred", { "tenant" }, 1, "TENANT --yes",
	  "Crypto-shredding: deletes the tenant's data key and archive for ever.\n"
	  "Refused under a retention lock or a legal hold." },
	{ "archive", "retention", "archive.retention.show", { "tenant" }, 1,
	  "show|set|add|remove|lock TENANT ...",
	  "Retention policy: a default period and rules by folder, address, domain or\n"
	  "keyword (the longest matching period wins; periods like 90d, 7y, forever):\n"
	  "  retention show TENANT\n"
	  "  retention set TENANT --default 10y\n"
	  "  retention add TENANT (--folder F | --address A | --domain D | --keyword K) --keep 7y\n"
	  "  retention remove TENANT RULE_ID\n"
	  "  retention lock TENANT --yes          (for ever: nothing can shorten it again)" },
	{ "archive", "settings", "archive.settings.set", { "tenant", "key", "value" }, 3,
	  "TENANT four_eyes|four_eyes_export on|off",
	  "Four eyes: shortening retention, releasing holds, deleting cases (and, with\n"
	  "four_eyes_export, exports) need a second admin's approval." },
	{ "archive", "case", "archive.case.add", { "tenant" }, 1,
	  "add|list|close|delete TENANT [NAME]", "E-discovery cases that group legal holds." },
	{ "archive", "hold", "archive.hold.add", { "tenant" }, 1,
	  "add|list|release TENANT [NAME] ...",
	  "Legal holds by mailbox, query and date range: held mail is never purged.\n"
	  "  hold add TENANT NAME [--case C] [--mailbox A] [--query Q] [--from YYYY-MM-DD]\n"
	  "           [--to YYYY-MM-DD]      (from inclusive, to exclusive)\n"
	  "  hold list TENANT\n"
	  "  hold release TENANT NAME        (four eyes: a second admin approves)" },
	{ "archive", "approval", "archive.approval.list", { "tenant" }, 1,
	  "list|approve|reject TENANT [ID]", "Changes waiting for a second admin." },
	/* policy, quarantine, dkim: generic; spam: handled by cli_spam_run */
	{ "policy", "show", "policy.show", { "tenant" }, 1, "TENANT",
	  "Shows the tenant's hygiene policy: every key with its value, its default and\n"
	  "what it does." },
	{ "policy", "set", "policy.set", { "tenant", "key", "value" }, 3, "TENANT KEY VALUE",
	  "Changes one policy setting (see `policy show`); lists are comma-separated." },
	{ "quarantine", "list", "quarantine.list", { "tenant", "rcpt" }, 1, "TENANT [RCPT]",
	  "Lists the tenant's quarantined messages, newest first (of one recipient)." },
	{ "quarantine", "show", "quarantine.show", { "tenant", "id" }, 2, "TENANT ID",
	  "Shows a quarantined message: envelope, verdict and reasons, headers." },
	{ "quarantine", "release", "quarantine.release", { "tenant", "id" }, 2, "TENANT ID",
	  "Delivers the original message to its recipients and removes it." },
	{ "quarantine", "delete", "quarantine.delete", { "tenant", "id" }, 2, "TENANT ID",
	  "Deletes a quarantined message." },
	{ "quarantine", "digest", "quarantine.digest", { "tenant" }, 1, "TENANT",
	  "Sends the quarantine digest to the tenant's recipients now." },
	{ "spam", "train", "spam.train", { "tenant" }, 1, "TENANT --spam DIR --ham DIR",
	  "Trains the tenant's classifier (and the global one) on the messages in the\n"
	  "directories (one message per file, or Maildir cur/new)." },
	{ "spam", "classify", "spam.classify", { "tenant" }, 1, "TENANT FILE...",
	  "Prints the spam score and verdict of each message file." },
	{ "spam", "stats", "spam.stats", { "tenant" }, 1, "TENANT",
	  "Shows how many messages the tenant's and the global classifier learned." },
	{ "dkim", "keygen", "dkim.keygen", { "domain" }, 1, "DOMAIN [--selector S] [--bits N]",
	  "Generates a DKIM signing key for the domain and prints the DNS TXT record\n"
	  "to publish (selector default \"mailark\", 2048 bits)." },
	{ "dkim", "show", "dkim.show", { "domain" }, 1, "DOMAIN",
	  "Shows the domain's active DKIM selector and its DNS TXT record." },
	/* continuity: handled by cli_continuity_run (options, report and status layout) */
	{ "continuity", "status", "continuity.status", { "tenant" }, 1, "TENANT",
	  "Shows the tenant's continuity state (normal, active, failing_back) and since\n"
	  "when, the running drill, and each primary route: up or down, failures, last error." },
	{ "continuity", "start", "continuity.start", { "tenant" }, 1, "TENANT [--reason TEXT]",
	  "Starts continuity now: mail for the primary is held, users read it over IMAP\n"
	  "and send through submission.  Audited; the alert addresses are told." },
	{ "continuity", "stop", "continuity.stop", { "tenant" }, 1, "TENANT",
	  "Begins failback: held mail is delivered to the primary in arrival order,\n"
	  "what it already has is skipped, copies of sent mail follow (sent_copy)." },
	{ "continuity", "report", "continuity.report", { "tenant" }, 1, "TENANT [--id N]",
	  "The failback report of the newest outage (or outage N): accepted, delivered\n"
	  "(skipped: already at the primary), pending, failed with reasons, and whether\n"
	  "it reconciles (accepted = delivered + pending + failed; exits 1 when not)." },
	{ "continuity", "settings", "continuity.settings", { "tenant" }, 1, "TENANT",
	  "Shows the tenant's continuity settings (imap_password is never shown)." },
	{ "continuity", "set", "continuity.set", { "tenant", "key", "value" }, 3,
	  "TENANT KEY VALUE",
	  "Changes a setting: mode auto|manual, failback auto|manual, failback_after SECS,\n"
	  "window_days N, alert_addresses a@x,b@y, webhook URL, sent_copy header|imap|none,\n"
	  "imap_url imaps://HOST[:PORT]/FOLDER, imap_user LOGIN (%u: the user),\n"
	  "imap_password SECRET.  An empty VALUE (\"\") clears a text setting." },
	{ "continuity", "drill", "continuity.drill.start", { "tenant" }, 1,
	  "start|stop|report TENANT [--users a@x,b@x] [--id N]",
	  "Drills exercise continuity without stopping delivery to the primary:\n"
	  "  drill start TENANT [--users a@x,b@x]   (default: every user)\n"
	  "  drill stop TENANT\n"
	  "  drill report TENANT [--id N]          time to fail over, who signed in, what\n"
	  "                                        they saw and sent, a clean failback" },
	{ "continuity", "probe", "continuity.probe", { NULL }, 0, "",
	  "Probes every tenant's primary routes now (connect, banner, EHLO)." },
	/* directory: handled by directory_cli_run (options, stdin password, waits for jobs) */
	{ "directory", "set", "directory.set", { "tenant" }, 1,
	  "TENANT --url ldap://HOST:PORT --base-dn DN --bind-dn DN [--bind-password-stdin]\n"
	  "           [--user-filter F] [--group-filter F] [--interval 15m] [--starttls yes|no]",
	  "Configures the tenant's LDAP / Active Directory: where to read users and groups\n"
	  "and the service account to bind as (its password read from standard input;\n"
	  "required the first time).  --interval: periodic sync (0: on demand only)." },
	{ "directory", "show", "directory.show", { "tenant" }, 1, "TENANT",
	  "Shows the tenant's directory settings (password masked) and the last sync." },
	{ "directory", "sync", "directory.sync", { "tenant" }, 1, "TENANT",
	  "Syncs users, addresses, groups and disabled state now and prints a summary.\n"
	  "Users gone from the directory are disabled, never deleted; local users are\n"
	  "never touched." },
	{ "directory", "login", "directory.login", { "tenant", "address" }, 2, "TENANT ADDRESS",
	  "Checks a directory user's password (read from standard input) by an LDAP bind." },
};

#define CLI_NSUBS (sizeof(cli_subs) / sizeof(cli_subs[0]))

static const char *const cli_groups[][2] = {
	{ "tenant", "Manage tenants (customer organisations)." },
	{ "domain", "Manage the mail domains of tenants." },
	{ "route", "Manage where each domain's mail is delivered." },
	{ "relay", "Manage the networks allowed to send outbound mail." },
	{ "queue", "Inspect and manage the mail queue." },
	{ "directory", "Sync users and groups from LDAP / Active Directory." },
	{ "archive", "Import, search, export, retain and verify archived mail." },
	{ "continuity", "Keep mail flowing when a tenant's primary server is down." },
	{ "audit", "Verify and read the tamper-evident audit trail." },
	{ "policy", "Show and change each tenant's hygiene policy." },
	{ "quarantine", "List, release and delete quarantined messages." },
	{ "spam", "Train and test the spam classifier." },
	{ "dkim", "Generate and show DKIM signing keys." },
	{ "user", "Manage users: addresses, aliases, roles, passwords, TOTP." },
	{ "group", "Manage the groups of a tenant." },
	{ "token", "Manage API tokens." },
};

#define CLI_NGROUPS (sizeof(cli_groups) / sizeof(cli_groups[0]))

void
cli_usage(FILE *out)
{
	fputs("usage: mailark [-c FILE] COMMAND [ARGS...] [--json]\n"
	    "\n"
	    "  -c FILE       configuration file (default ./mailark.conf when present,\n"
	    "                otherwise the built-in defaults)\n"
	    "  --version     print the version\n"
	    "  -h, --help    this help; COMMAND --help for the help of a command\n"
	    "\n"
	    "commands:\n"
	    "  init          create the data directory (keys, TLS certificate, database)\n"
	    "  serve         run the daemon in the foreground\n", out);
	for (size_t g = 0; g < CLI_NGROUPS; g++) {
		fprintf(out, "  %-13s ", cli_groups[g][0]);
		const char *sep = "";
		for (size_t i = 0; i < CLI_NSUBS; i++) {
			if (strcmp(cli_subs[i].group, cli_groups[g][0]) == 0) {
				fprintf(out, "%s%s", sep, cli_subs[i].name);
				sep = "|";
			}
		}
		fputc('\n', out);
	}
	fputs("\nAdministrative commands talk to the running daemon through the control\n"
	    "socket in the data directory; --json prints the raw JSON result.\n", out);
}

static const char *
cli_group_help(const char *group)
{
	for (size_t g = 0; g < CLI_NGROUPS; g++)
		if (strcmp(cli_groups[g][0], group) == 0)
			return cli_groups[g][1];
	return NULL;
}

int
cli_is_command(const char *name)
{
	return strcmp(name, "init") == 0 || strcmp(name, "serve") == 0 ||
	    cli_group_help(name) != NULL;
}

int
cli_wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	return 0;
}

static const struct cli_sub *
cli_find_sub(const char *group, const char *name)
{
	for (size_t i = 0; i < CLI_NSUBS; i++)
		if (strcmp(cli_subs[i].group, group) == 0 && strcmp(cli_subs[i].name, name) == 0)
			return &cli_subs[i];
	return NULL;
}

static void
cli_print_sub(FILE *out, const struct cli_sub *s, int long_form)
{
	fprintf(out, "usage: mailark %s %s%s%s [--json]\n", s->group, s->name,
	    s->synopsis[0] ? " " : "", s->synopsis);
	if (long_form)
		fprintf(out, "\n%s\n", s->help);
}

static void
cli_group_usage(FILE *out, const char *group)
{
	fprintf(out, "%s\n\n", cli_group_help(group));
	for (size_t i = 0; i < CLI_NSUBS; i++)
		if (strcmp(cli_subs[i].group, group) == 0)
			cli_print_sub(out, &cli_subs[i], 0);
	fprintf(out, "\nmailark %s SUBCOMMAND --help describes one subcommand.\n", group);
}

int
cli_help(int argc, char **argv)
{
	if (argc == 0 || argv[0][0] == '-') {
		cli_usage(stdout);
		return 0;
	}
	const char *cmd = argv[0];
	if (strcmp(cmd, "init") == 0) {
		puts("usage: mailark [-c FILE] init\n\n"
		    "Creates the data directory ([server] data_dir, mode 0700) with queue/,\n"
		    "keys/master.key, a self-signed TLS certificate when none is configured,\n"
		    "and mailark.db.  On an existing data directory it changes nothing.");
		return 0;
	}
	if (strcmp(cmd, "serve") == 0) {
		puts("usage: mailark [-c FILE] serve\n\n"
		    "Runs the daemon in the foreground: SMTP listeners, delivery, the control\n"
		    "socket and the HTTP listener (/metrics, /healthz).  SIGTERM or SIGINT\n"
		    "stops it gracefully.  The data directory must exist (mailark init).");
		return 0;
	}
	if (cli_group_help(cmd) == NULL) {
		fprintf(stderr, "mailark: unknown command '%s'\n\n", cmd);
		cli_usage(stderr);
		return 2;
	}
	const struct cli_sub *s = argc > 1 ? cli_find_sub(cmd, argv[1]) : NULL;
	if (s != NULL)
		cli_print_sub(stdout, s, 1);
	else
		cli_group_usage(stdout, cmd);
	return 0;
}

/* ---- running a command ---------------------------------------------------- */

static int
cli_usage_error(const struct cli_sub *s, const char *group, const char *why, const char *what)
{
	fprintf(stderr, "mailark: %s%s%s\n", why, what ? ": " : "", what ? what : "");
	if (s != NULL)
		cli_print_sub(stderr, s, 0);
	else
		cli_group_usage(stderr, group);
	return 2;
}

/* Is a ("--name" or "--name=value") one of the subcommand's options? */
static int
cli_option_known(const struct cli_sub *s, const char *a)
{
	if (strncmp(a, "--", 2) != 0)
		return 0;
	const char *name = a + 2;
	size_t len = strcspn(name, "=");
	for (size_t i = 0; i < sizeof(cli_options) / sizeof(cli_options[0]); i++) {
		if (strcmp(cli_options[i].ctl, s->ctl) != 0)
			continue;
		for (const char *p = cli_options[i].names; *p != '\0';) {
			size_t n = strcspn(p, ",");
			if (n == len && n > 0 && strncmp(p, name, n) == 0)
				return 1;
			p += n + (p[n] == ',');
		}
	}
	return 0;
}

/* The argument name of an option (static storage; the names are short). */
static const char *
cli_option_name(const char *name, const char *end)
{
	static char out[64];
	size_t n = end != NULL ? (size_t)(end - name) : strlen(name);
	if (n >= sizeof(out))
		n = sizeof(out) - 1;
	memcpy(out, name, n);
	out[n] = '\0';
	return out;
}

/* One "-..." argument at argv[*i] (may consume the next one).  0 or a usage exit. */
static int
cli_parse_option(const struct cli_sub *s, int argc, char **argv, int *i, json_t *args,
    int *json_r)
{
	const char *a = argv[*i];
	if (strcmp(a, "--json") == 0) {
		*json_r = 1;
		return 0;
	}
	if (!cli_option_known(s, a))
		return cli_usage_error(s, NULL, "unknown option", a);
	const char *eq = strchr(a, '=');
	if (eq != NULL) {
		json_object_set_new(args, cli_option_name(a + 2, eq), json_string(eq + 1));
		return 0;
	}
	if (*i + 1 >= argc)
		return cli_usage_error(s, NULL, "option needs a value", a);
	json_object_set_new(args, cli_option_name(a + 2, NULL), json_string(argv[++*i]));
	return 0;
}

/* Splits options from positional arguments into args (a JSON object); after
 * "--" everything is positional (a value may then start with "-"). */
static int
cli_parse_args(const struct cli_sub *s, int argc, char **argv, json_t *args, int *json_r)
{
	int npos = 0, options_end = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!options_end && strcmp(a, "--") == 0) {
			options_end = 1;
			continue;
		}
		if (!options_end && a[0] == '-' && a[1] != '\0') {
			int rc = cli_parse_option(s, argc, argv, &i, args, json_r);
			if (rc != 0)
				return rc;
			continue;
		}
		if (npos >= CLI_MAX_ARGS || s->args[npos] == NULL)
			return cli_usage_error(s, NULL, "too many arguments", a);
		json_object_set_new(args, s->args[npos++], json_string(a));
	}
	if (npos < s->nrequired)
		return cli_usage_error(s, NULL, "missing argument", s->args[npos]);
	return 0;
}

static int
cli_print_answer(const struct cli_sub *s, json_t *args, const char *line, int json)
{
	json_error_t jerr;
	json_t *resp = json_loads(line, 0, &jerr);
	json_t *ok = json_object_get(resp, "ok");
	if (!json_is_boolean(ok)) {
		fprintf(stderr, "mailark: malformed answer from the daemon\n");
		json_decref(resp);
		return 1;
	}
	if (!json_is_true(ok)) {
		const char *e = json_string_value(json_object_get(resp, "error"));
		fprintf(stderr, "mailark: %s\n", e ? e : "the daemon refused the command");
		json_decref(resp);
		return 1;
	}
	json_t *result = json_object_get(resp, "result");
	if (json) {
		char *text = json_dumps(result, JSON_INDENT(2) | JSON_ENCODE_ANY);
		printf("%s\n", text ? text : "null");
		free(text);
	} else {
		cli_format_print(stdout, s->ctl, args, result);
	}
	json_decref(resp);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int
cli_send(const struct config *cfg, const struct cli_sub *s, json_t *args, int json)
{
	json_t *req = json_pack("{s:s, s:O}", "cmd", s->ctl, "args", args);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	char *resp = NULL, *err = NULL;
	int rc = control_request(cfg->data_dir, text, &resp, &err);
	free(text);
	if (rc < 0) {
		fprintf(stderr, "mailark: %s\n", err);
		free(err);
		return 1;
	}
	rc = cli_print_answer(s, args, resp, json);
	free(resp);
	return rc;
}

/* Sends {cmd, args}; 0 with *result_r (new reference), or -1 after printing why. */
int
cli_call(const struct config *cfg, const char *cmd, json_t *args, json_t **result_r)
{
	json_t *req = json_pack("{s:s, s:O}", "cmd", cmd, "args", args);
	char *text = json_dumps(req, JSON_COMPACT), *resp = NULL, *err = NULL;
	json_decref(req);
	int rc = text != NULL ? control_request(cfg->data_dir, text, &resp, &err) : -1;
	free(text);
	if (rc < 0) {
		fprintf(stderr, "mailark: %s\n", err ? err : "cannot encode the request");
		free(err);
		return -1;
	}
	json_t *answer = json_loads(resp, 0, NULL);
	free(resp);
	json_t *ok = json_object_get(answer, "ok");
	if (!json_is_true(ok)) {
		const char *e = json_string_value(json_object_get(answer, "error"));
		fprintf(stderr, "mailark: %s\n", json_is_false(ok) && e ? e :
		    "malformed answer from the daemon");
		json_decref(answer);
		return -1;
	}
	*result_r = json_incref(json_object_get(answer, "result"));
	json_decref(answer);
	return 0;
}

int
cli_admin_run(const struct config *cfg, int argc, char **argv)
{
	const char *group = argv[0];
	if (argc < 2 || argv[1][0] == '-')
		return cli_usage_error(NULL, group, "missing subcommand", NULL);
	const struct cli_sub *s = cli_find_sub(group, argv[1]);
	if (s == NULL)
		return cli_usage_error(NULL, group, "unknown subcommand", argv[1]);
	if (strcmp(group, "directory") == 0)
		return directory_cli_run(cfg, argc, argv);
	if (strcmp(group, "archive") == 0)
		return cli_archive_run(cfg, argc, argv);
	if (strcmp(group, "continuity") == 0)
		return cli_continuity_run(cfg, argc, argv);
	if (strcmp(group, "spam") == 0)
		return cli_spam_run(cfg, argc, argv);
	if (strcmp(group, "audit") == 0)
		return audit_cli_run(cfg, argc, argv);
	if (cli_identity_handles(group))
		return cli_identity_run(cfg, argc, argv);
	json_t *args = json_object();
	int json = 0;
	int rc = cli_parse_args(s, argc - 2, argv + 2, args, &json);
	if (rc == 0)
		rc = cli_send(cfg, s, args, json);
	json_decref(args);
	return rc;
}
