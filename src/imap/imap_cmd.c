/*
 * imap_cmd — the IMAP commands: dispatch by name and state, sign-in and
 * the mailbox commands.  FETCH, STORE, SEARCH, COPY and MOVE are in
 * imap_fetch.c.
 *
 * A command either answers on the loop thread (CAPABILITY, NOOP without a
 * mailbox, LOGIN's checks, ...) and calls imap_session_command_done(), or
 * starts a job (imap_cmd_job_start): its work function runs on the worker pool
 * with the parsed command in sess->job, writes untagged and tagged
 * responses to `out`, and the session sends them when the job is done.
 *
 * Mailbox updates (EXISTS / EXPUNGE / FETCH FLAGS) are found by
 * imap_refresh() comparing a new cmbox snapshot with the one the session
 * holds; it runs after every command that allows them, never during
 * FETCH, STORE or SEARCH (RFC 3501 7.4.1).
 */
#include "imap/imap_cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "config/config.h"
#include "continuity/continuity.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "server.h"
#include "store/store.h"
#include "tls/tls.h"

#define MAX_BAD_IN_ROW 20
#define MAX_AUTH_FAILURES 3

/* ---- helpers shared with imap_fetch.c --------------------------------- */

void
imap_flags_render(struct buf *out, unsigned flags)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ CMBOX_F_SEEN, "\\Seen" }, { CMBOX_F_ANSWERED, "\\Answered" },
		{ CMBOX_F_FLAGGED, "\\Flagged" }, { CMBOX_F_DELETED, "\\Deleted" },
		{ CMBOX_F_DRAFT, "\\Draft" }, { CMBOX_F_RECENT, "\\Recent" },
	};
	int first = 1;
	buf_append_char(out, '(');
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(flags & names[i].bit))
			continue;
		if (!first)
			buf_append_char(out, ' ');
		buf_append_str(out, names[i].name);
		first = 0;
	}
	buf_append_char(out, ')');
}

/* One flag name -> bit; 0 for keywords and unknown flags (ignored). */
static unsigned
flag_bit(const char *s)
{
	if (strcasecmp(s, "\\Seen") == 0)
		return CMBOX_F_SEEN;
	if (strcasecmp(s, "\\Answered") == 0)
		return CMBOX_F_ANSWERED;
	if (strcasecmp(s, "\\Flagged") == 0)
		return CMBOX_F_FLAGGED;
	if (strcasecmp(s, "\\Deleted") == 0)
		return CMBOX_F_DELETED;
	if (strcasecmp(s, "\\Draft") == 0)
		return CMBOX_F_DRAFT;
	return 0;
}

int
imap_flags_parse(const struct imap_arg *a, unsigned *flags_r)
{
	*flags_r = 0;
	if (a->type == IMAP_ARG_ATOM) {
		*flags_r = flag_bit(a->str);
		return 0;
	}
	if (a->type != IMAP_ARG_LIST)
		return -1;
	for (size_t i = 0; i < a->len; i++) {
		if (a->list[i].type != IMAP_ARG_ATOM)
			return -1;
		*flags_r |= flag_bit(a->list[i].str);
	}
	return 0;
}

unsigned
imap_msg_flags(const struct imap_session *sess, const struct cmbox_msg *m)
{
	unsigned f = m->flags & CMBOX_F_ALL;
	if (m->uid >= sess->recent_from && sess->recent_from != 0)
		f |= CMBOX_F_RECENT;
	return f;
}

/* A mailbox name argument: INBOX in any case becomes "INBOX". */
static const char *
mailbox_name(const struct imap_arg *a)
{
	if (!imap_arg_is_string(a))
		return NULL;
	if (strcasecmp(a->str, "INBOX") == 0)
		return "INBOX";
	if (a->len == 0 || a->len > CMBOX_NAME_MAX || strlen(a->str) != a->len)
		return NULL;
	return a->str;
}

/* ---- refresh: untagged updates ---------------------------------------- */

void
imap_refresh(struct imap_session *sess, struct buf *out)
{
	if (sess->selected == NULL)
		return;
	struct cmbox_snapshot ns;
	char *err = NULL;
	int rc = cmbox_snapshot(sess->srv->cmbox, &sess->user, sess->selected, &ns, &err);
	if (rc != 1) {
		if (rc < 0)
			log_warn("imap_snapshot", "session=%s error=%s", sess->id, log_str(err));
		free(err);
		return;
	}
	struct cmbox_snapshot *os = &sess->snap;
	/* Expunges, highest sequence number first so lower ones stay valid. */
	size_t j = ns.n;
	for (size_t i = os->n; i > 0; i--) {
		uint32_t uid = os->msgs[i - 1].uid;
		while (j > 0 && ns.msgs[j - 1].uid > uid)
			j--;
		if (j > 0 && ns.msgs[j - 1].uid == uid)
			continue;
		buf_appendf(out, "* %zu EXPUNGE\r\n", i);
		memmove(&os->msgs[i - 1], &os->msgs[i], (os->n - i) * sizeof(os->msgs[0]));
		os->n--;
	}
	/* Flag changes of the messages both have. */
	j = 0;
	for (size_t i = 0; i < os->n; i++) {
		while (j < ns.n && ns.msgs[j].uid < os->msgs[i].uid)
			j++;
		if (j < ns.n && ns.msgs[j].uid == os->msgs[i].uid &&
		    (ns.msgs[j].flags & CMBOX_F_ALL) != (os->msgs[i].flags & CMBOX_F_ALL)) {
			buf_appendf(out, "* %zu FETCH (FLAGS ", i + 1);
			imap_flags_render(out, imap_msg_flags(sess, &ns.msgs[j]));
			buf_append_str(out, ")\r\n");
		}
	}
	size_t old_n = os->n;
	uint32_t old_max = old_n > 0 ? os->msgs[old_n - 1].uid : 0;
	cmbox_snapshot_free(os);
	*os = ns;
	if (os->n != old_n) {
		size_t recent = 0;
		for (size_t i = 0; i < os->n; i++)
			recent += os->msgs[i].uid > old_max && os->msgs[i].uid >= sess->recent_from;
		buf_appendf(out, "* %zu EXISTS\r\n", os->n);
		if (recent > 0)
			buf_appendf(out, "* %zu RECENT\r\n", recent);
	}
}

/* ---- jobs ------------------------------------------------------------- */

static void
cmd_job_free(void *p)
{
	struct cmd_job *j = p;
	imap_cmd_clear(&j->cmd);
	imap_fetch_state_free(j);
	if (j->data_free != NULL && j->data != NULL)
		j->data_free(j->data);
	free(j->data);
	free(j);
}

void
imap_cmd_job_finish(struct imap_session *sess)
{
	if (sess->job != NULL)
		cmd_job_free(sess->job);
	sess->job = NULL;
	sess->job_free = NULL;
	imap_session_command_done(sess);
}

void
imap_cmd_job_start(struct imap_session *sess, struct imap_cmd *cmd, int uid,
    struct fetch_state *f, void *data, void (*data_free)(void *), imap_work_fn *work,
    imap_done_fn *done)
{
	struct cmd_job *j = xcalloc(1, sizeof(*j));
	j->cmd = *cmd;
	memset(cmd, 0, sizeof(*cmd));
	j->uid = uid;
	j->fetch = f;
	j->data = data;
	j->data_free = data_free;
	sess->job = j;
	sess->job_free = cmd_job_free;
	sess->in_command = 1;
	imap_session_run(sess, work, done != NULL ? done : imap_cmd_job_finish);
}

/* The common case: a job that answers and ends the command. */
static void
cmd_job_start(struct imap_session *sess, struct imap_cmd *cmd, int uid, imap_work_fn *work)
{
	imap_cmd_job_start(sess, cmd, uid, NULL, NULL, NULL, work, NULL);
}

/* ---- not authenticated ------------------------------------------------ */

static void
reply_capability(struct imap_session *sess, const char *tag)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "* CAPABILITY ");
	imap_session_capability(sess, &b);
	buf_appendf(&b, "\r\n%s OK CAPABILITY completed\r\n", tag);
	imap_session_write(sess, b.data, b.len);
	buf_free(&b);
}

static int
cmd_capability(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 0)
		return -1;
	reply_capability(sess, cmd->tag);
	return 0;
}

static void
work_noop(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	imap_refresh(sess, out);
	buf_appendf(out, "%s OK %s completed\r\n", j->cmd.tag, j->cmd.name);
}

static int
cmd_noop(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 0)
		return -1;
	if (sess->selected == NULL) {
		imap_session_printf(sess, "%s OK %s completed\r\n", cmd->tag, cmd->name);
		return 0;
	}
	cmd_job_start(sess, cmd, 0, work_noop);
	return 0;
}

static int
cmd_logout(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 0)
		return -1;
	imap_session_printf(sess, "* BYE Logging out\r\n%s OK LOGOUT completed\r\n", cmd->tag);
	imap_session_bye(sess, "");
	return 0;
}

static int
cmd_starttls(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 0)
		return -1;
	if (sess->tls || sess->srv->tls == NULL || sess->srv->tls->server == NULL) {
		imap_session_printf(sess, "%s BAD STARTTLS not available\r\n", cmd->tag);
		return 0;
	}
	imap_session_printf(sess, "%s OK Begin TLS negotiation now\r\n", cmd->tag);
	if (imap_session_starttls(sess) < 0) {
		log_warn("imap_tls_failed", "session=%s error=starttls", sess->id);
		imap_session_close(sess, "tls_failed");
	}
	return 0;
}

static int
cmd_id(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 1 || (cmd->args[0].type != IMAP_ARG_LIST && !imap_arg_is_nil(&cmd->args[0])))
		return -1;
	imap_session_printf(sess, "* ID (\"name\" \"mailark\")\r\n%s OK ID completed\r\n", cmd->tag);
	return 0;
}

static int
cmd_namespace(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 0)
		return -1;
	imap_session_printf(sess, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n%s OK NAMESPACE completed\r\n",
	    cmd->tag);
	return 0;
}

/* Sign-in result on the loop thread. */
static void
login_done(void *arg, int ok, struct principal *p, const char *reason)
{
	struct imap_session *sess = arg;
	sess->auth_pending = 0;
	if (sess->closed) {
		imap_session_close(sess, "gone");
		return;
	}
	char *tag = sess->pending_tag;
	sess->pending_tag = NULL;
	if (sess->closing) {
		/* Kicked or shut down while the password was checked. */
		free(tag);
		sess->in_command = 0;
		return;
	}
	if (!ok) {
		log_info("imap_auth_failed", "session=%s client=%s reason=%s", sess->id, sess->ip,
		    log_str(reason));
		if (++sess->auth_failures >= MAX_AUTH_FAILURES) {
			imap_session_bye(sess, "Too many authentication failures");
		} else {
			struct buf b = BUF_INIT;
			buf_appendf(&b, "%s NO [AUTHENTICATIONFAILED] Invalid credentials\r\n", tag);
			imap_session_delay_reply(sess, buf_cstr(&b));
			buf_free(&b);
		}
		free(tag);
		return;
	}
	struct server *srv = sess->srv;
	if (p->user_id <= 0 || p->tenant == NULL || p->actor == NULL) {
		imap_session_printf(sess, "%s NO [UNAVAILABLE] continuity is not available for this "
		    "account\r\n", tag);
		free(tag);
		imap_session_command_done(sess);
		return;
	}
	char *address = str_lower(xstrdup(p->actor));
	if (continuity_user_active(srv->continuity, p->tenant, address) != 1) {
		(void)audit_record_tenant(srv, p, p->tenant, "imap.login", address, "refused",
		    "continuity not active");
		log_info("imap_auth_refused", "session=%s client=%s user=%s reason=continuity_inactive",
		    sess->id, sess->ip, address);
		imap_session_printf(sess, "%s NO [UNAVAILABLE] continuity is not active for your "
		    "organisation\r\n", tag);
		free(address);
		free(tag);
		imap_session_command_done(sess);
		return;
	}
	sess->who = *p;
	memset(p, 0, sizeof(*p));
	sess->tenant = xstrdup(sess->who.tenant);
	sess->address = address;
	char **aliases = NULL;
	size_t naliases = 0;
	if (store_user_aliases(srv->store, sess->who.user_id, &aliases, &naliases) < 0)
		naliases = 0;
	sess->addrs = xcalloc(naliases + 1, sizeof(char *));
	sess->addrs[sess->naddrs++] = xstrdup(address);
	for (size_t i = 0; i < naliases; i++)
		sess->addrs[sess->naddrs++] = str_lower(xstrdup(aliases[i]));
	if (aliases != NULL)
		store_strings_free(aliases, naliases);
	sess->user.tenant = sess->tenant;
	sess->user.address = sess->address;
	sess->user.addresses = (const char *const *)sess->addrs;
	sess->user.naddresses = sess->naddrs;
	sess->user.window_days = continuity_window_days(srv->continuity, sess->tenant);
	(void)audit_record_tenant(srv, &sess->who, sess->tenant, "imap.login", address, "ok", NULL);
	continuity_note_signin(srv->continuity, sess->tenant, address, "imap");
	log_info("imap_login", "session=%s client=%s user=%s tenant=%s", sess->id, sess->ip,
	    address, sess->tenant);
	imap_session_enter(sess, IMAP_S_AUTHENTICATED);
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%s OK [CAPABILITY ", tag);
	imap_session_capability(sess, &b);
	buf_append_str(&b, "] Logged in\r\n");
	imap_session_write(sess, b.data, b.len);
	buf_free(&b);
	free(tag);
	imap_session_command_done(sess);
}

static void
login_start(struct imap_session *sess, const char *tag, const char *user, const char *pass)
{
	free(sess->pending_tag);
	sess->pending_tag = xstrdup(tag);
	sess->in_command = 1;
	sess->auth_pending = 1;
	auth_password_verify_async(sess->srv, user, pass, NULL, sess->ip, login_done, sess);
}

static int
cmd_login(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 2 || !imap_arg_is_string(&cmd->args[0]) ||
	    !imap_arg_is_string(&cmd->args[1]))
		return -1;
	if (!sess->tls) {
		imap_session_printf(sess, "%s NO [PRIVACYREQUIRED] Use STARTTLS first\r\n", cmd->tag);
		return 0;
	}
	login_start(sess, cmd->tag, cmd->args[0].str, cmd->args[1].str);
	return 1;
}

/* SASL PLAIN: authzid NUL authcid NUL password, base64. */
static int
sasl_plain(struct imap_session *sess, const char *tag, const char *b64, size_t len)
{
	if (len == 1 && b64[0] == '*') {
		imap_session_printf(sess, "%s BAD AUTHENTICATE cancelled\r\n", tag);
		return 0;
	}
	const char *end = NULL;
	size_t n = 0;
	unsigned char *raw = xmalloc(len + 1);
	if (len == 0 || len > 4096 || sodium_base642bin(raw, len, b64, len, NULL, &n, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || end != b64 + len) {
		free(raw);
		imap_session_printf(sess, "%s BAD Invalid base64\r\n", tag);
		return 0;
	}
	unsigned char *z1 = memchr(raw, 0, n);
	unsigned char *z2 = z1 != NULL ? memchr(z1 + 1, 0, (size_t)(raw + n - z1 - 1)) : NULL;
	if (z2 == NULL) {
		free(raw);
		imap_session_printf(sess, "%s BAD Invalid PLAIN response\r\n", tag);
		return 0;
	}
	char *user = xstrndup((char *)z1 + 1, (size_t)(z2 - z1 - 1));
	char *pass = xstrndup((char *)z2 + 1, (size_t)(raw + n - z2 - 1));
	sodium_memzero(raw, n);
	free(raw);
	login_start(sess, tag, user, pass);
	free(user);
	sodium_memzero(pass, strlen(pass));
	free(pass);
	return 1;
}

static int
cmd_authenticate(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs < 1 || cmd->nargs > 2 || cmd->args[0].type != IMAP_ARG_ATOM)
		return -1;
	if (!sess->tls) {
		imap_session_printf(sess, "%s NO [PRIVACYREQUIRED] Use STARTTLS first\r\n", cmd->tag);
		return 0;
	}
	if (strcasecmp(cmd->args[0].str, "PLAIN") != 0) {
		imap_session_printf(sess, "%s NO Unsupported authentication mechanism\r\n", cmd->tag);
		return 0;
	}
	if (cmd->nargs == 2) {
		const struct imap_arg *ir = &cmd->args[1];
		if (ir->type != IMAP_ARG_ATOM)
			return -1;
		if (strcmp(ir->str, "=") == 0)
			return sasl_plain(sess, cmd->tag, "", 0);
		return sasl_plain(sess, cmd->tag, ir->str, ir->len);
	}
	free(sess->pending_tag);
	sess->pending_tag = xstrdup(cmd->tag);
	sess->wait = IMAP_W_SASL;
	imap_session_printf(sess, "+ \r\n");
	return 0;
}

/* ---- authenticated: mailboxes ----------------------------------------- */

/* LIST pattern match: '*' anything, '%' anything but the delimiter. */
static int
list_match(const char *pat, const char *name)
{
	if (*pat == '\0')
		return *name == '\0';
	if (*pat == '*' || *pat == '%') {
		for (const char *n = name;; n++) {
			if (list_match(pat + 1, n))
				return 1;
			if (*n == '\0' || (*pat == '%' && *n == '/'))
				return 0;
		}
	}
	if (*name == '\0')
		return 0;
	if (tolower((unsigned char)*pat) != tolower((unsigned char)*name))
		return 0;
	return list_match(pat + 1, name + 1);
}

static int
folder_has_children(const struct cmbox_folder *list, size_t n, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (strncmp(list[i].name, name, len) == 0 && list[i].name[len] == '/')
			return 1;
	return 0;
}

static void
work_list(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	const char *ref = j->cmd.args[0].str, *pat = j->cmd.args[1].str;
	if (pat[0] == '\0') {
		buf_appendf(out, "* %s (\\Noselect) \"/\" \"\"\r\n", j->cmd.name);
		buf_appendf(out, "%s OK %s completed\r\n", j->cmd.tag, j->cmd.name);
		return;
	}
	struct buf full = BUF_INIT;
	buf_appendf(&full, "%s%s", ref, pat);
	struct cmbox_folder *list = NULL;
	size_t n = 0;
	char *err = NULL;
	if (cmbox_list(sess->srv->cmbox, &sess->user, &list, &n, &err) < 0) {
		buf_appendf(out, "%s NO [SERVERBUG] %s failed\r\n", j->cmd.tag, j->cmd.name);
		log_warn("imap_list", "session=%s error=%s", sess->id, log_str(err));
		free(err);
		buf_free(&full);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!list_match(buf_cstr(&full), list[i].name))
			continue;
		int children = folder_has_children(list, n, list[i].name);
		buf_appendf(out, "* %s (%s%s) \"/\" ", j->cmd.name,
		    children ? "\\HasChildren" : "\\HasNoChildren",
		    list[i].special == CMBOX_SENT ? " \\Sent" : "");
		imap_quote(out, list[i].name, strlen(list[i].name));
		buf_append_str(out, "\r\n");
	}
	cmbox_folders_free(list, n);
	buf_free(&full);
	buf_appendf(out, "%s OK %s completed\r\n", j->cmd.tag, j->cmd.name);
}

static int
cmd_list(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 2 || !imap_arg_is_string(&cmd->args[0]) ||
	    !imap_arg_is_string(&cmd->args[1]))
		return -1;
	cmd_job_start(sess, cmd, 0, work_list);
	return 1;
}

static int
cmd_subscribe(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 1 || mailbox_name(&cmd->args[0]) == NULL)
		return -1;
	imap_session_printf(sess, "%s OK %s completed\r\n", cmd->tag, cmd->name);
	return 0;
}

static void
work_status(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	const char *name = mailbox_name(&j->cmd.args[0]);
	struct cmbox_snapshot s;
	char *err = NULL;
	int rc = cmbox_snapshot(sess->srv->cmbox, &sess->user, name, &s, &err);
	if (rc != 1) {
		buf_appendf(out, "%s NO %s\r\n", j->cmd.tag,
		    rc == 0 ? "[NONEXISTENT] No such mailbox" : "[SERVERBUG] STATUS failed");
		free(err);
		return;
	}
	size_t unseen = 0;
	for (size_t i = 0; i < s.n; i++)
		unseen += !(s.msgs[i].flags & CMBOX_F_SEEN);
	const struct imap_arg *items = &j->cmd.args[1];
	buf_append_str(out, "* STATUS ");
	imap_quote(out, name, strlen(name));
	buf_append_str(out, " (");
	for (size_t i = 0; i < items->len; i++) {
		const char *it = items->list[i].str;
		if (i > 0)
			buf_append_char(out, ' ');
		if (strcasecmp(it, "MESSAGES") == 0)
			buf_appendf(out, "MESSAGES %zu", s.n);
		else if (strcasecmp(it, "RECENT") == 0)
			buf_append_str(out, "RECENT 0");
		else if (strcasecmp(it, "UIDNEXT") == 0)
			buf_appendf(out, "UIDNEXT %u", s.uidnext);
		else if (strcasecmp(it, "UIDVALIDITY") == 0)
			buf_appendf(out, "UIDVALIDITY %u", s.uidvalidity);
		else if (strcasecmp(it, "UNSEEN") == 0)
			buf_appendf(out, "UNSEEN %zu", unseen);
	}
	buf_append_str(out, ")\r\n");
	cmbox_snapshot_free(&s);
	imap_refresh(sess, out);
	buf_appendf(out, "%s OK STATUS completed\r\n", j->cmd.tag);
}

static int
cmd_status(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	static const char *const known[] = { "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY",
		"UNSEEN" };
	if (cmd->nargs != 2 || mailbox_name(&cmd->args[0]) == NULL ||
	    cmd->args[1].type != IMAP_ARG_LIST || cmd->args[1].len == 0)
		return -1;
	for (size_t i = 0; i < cmd->args[1].len; i++) {
		const struct imap_arg *a = &cmd->args[1].list[i];
		int ok = 0;
		for (size_t k = 0; a->type == IMAP_ARG_ATOM && k < 5; k++)
			ok |= strcasecmp(a->str, known[k]) == 0;
		if (!ok)
			return -1;
	}
	cmd_job_start(sess, cmd, 0, work_status);
	return 1;
}

static void
unselect(struct imap_session *sess)
{
	free(sess->selected);
	sess->selected = NULL;
	cmbox_snapshot_free(&sess->snap);
	memset(&sess->snap, 0, sizeof(sess->snap));
	sess->recent_from = 0;
}

static void
work_select(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	const char *name = mailbox_name(&j->cmd.args[0]);
	int examine = strcmp(j->cmd.name, "EXAMINE") == 0;
	int was_selected = sess->selected != NULL;
	unselect(sess);
	if (was_selected)
		buf_append_str(out, "* OK [CLOSED] Previous mailbox closed\r\n");
	struct cmbox_snapshot s;
	char *err = NULL;
	int rc = cmbox_snapshot(sess->srv->cmbox, &sess->user, name, &s, &err);
	if (rc != 1) {
		buf_appendf(out, "%s NO %s\r\n", j->cmd.tag,
		    rc == 0 ? "[NONEXISTENT] No such mailbox" : "[SERVERBUG] SELECT failed");
		if (rc < 0)
			log_warn("imap_select", "session=%s error=%s", sess->id, log_str(err));
		free(err);
		j->result = 0;
		return;
	}
	sess->snap = s;
	sess->selected = xstrdup(name);
	sess->readonly = examine;
	sess->recent_from = s.uidnext;
	size_t first_unseen = 0;
	for (size_t i = 0; i < s.n && first_unseen == 0; i++)
		if (!(s.msgs[i].flags & CMBOX_F_SEEN))
			first_unseen = i + 1;
	buf_append_str(out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n");
	buf_appendf(out, "* %zu EXISTS\r\n* 0 RECENT\r\n", s.n);
	if (first_unseen > 0)
		buf_appendf(out, "* OK [UNSEEN %zu] First unseen\r\n", first_unseen);
	buf_appendf(out, "* OK [UIDVALIDITY %u] UIDs valid\r\n", s.uidvalidity);
	buf_appendf(out, "* OK [UIDNEXT %u] Predicted next UID\r\n", s.uidnext);
	buf_appendf(out, "* OK [PERMANENTFLAGS (%s)] Flags permitted\r\n",
	    examine ? "" : "\\Seen \\Answered \\Flagged \\Deleted \\Draft");
	buf_appendf(out, "%s OK [%s] %s completed\r\n", j->cmd.tag,
	    examine ? "READ-ONLY" : "READ-WRITE", j->cmd.name);
	j->result = 1;
}

static void
select_done(struct imap_session *sess)
{
	struct cmd_job *j = sess->job;
	imap_session_enter(sess, j->result ? IMAP_S_SELECTED : IMAP_S_AUTHENTICATED);
	imap_cmd_job_finish(sess);
}

static int
cmd_select(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 1 || mailbox_name(&cmd->args[0]) == NULL)
		return -1;
	imap_cmd_job_start(sess, cmd, 0, NULL, NULL, NULL, work_select, select_done);
	return 1;
}

static void
work_folder(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	const char *name = mailbox_name(&j->cmd.args[0]);
	char *err = NULL;
	int rc;
	if (strcmp(j->cmd.name, "CREATE") == 0)
		rc = cmbox_create(sess->srv->cmbox, &sess->user, name, &err);
	else if (strcmp(j->cmd.name, "DELETE") == 0)
		rc = cmbox_delete(sess->srv->cmbox, &sess->user, name, &err);
	else
		rc = cmbox_rename(sess->srv->cmbox, &sess->user, name,
		    mailbox_name(&j->cmd.args[1]), &err);
	imap_refresh(sess, out);
	if (rc < 0) {
		if (err != NULL && err[0] == '[')
			buf_appendf(out, "%s NO %s\r\n", j->cmd.tag, err);
		else
			buf_appendf(out, "%s NO %s failed: %s\r\n", j->cmd.tag, j->cmd.name,
			    err != NULL ? err : "error");
	} else {
		buf_appendf(out, "%s OK %s completed\r\n", j->cmd.tag, j->cmd.name);
	}
	free(err);
}

static int
cmd_folder(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	size_t want = strcmp(cmd->name, "RENAME") == 0 ? 2 : 1;
	if (cmd->nargs != want)
		return -1;
	for (size_t i = 0; i < want; i++)
		if (mailbox_name(&cmd->args[i]) == NULL)
			return -1;
	cmd_job_start(sess, cmd, 0, work_folder);
	return 1;
}

/* "dd-Mon-yyyy hh:mm:ss +zzzz" (day may have a leading space). */
time_t
imap_parse_datetime(const char *s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int d, y, hh, mm, ss, zone;
	char mon[4];
	char sign;
	while (*s == ' ')
		s++;
	if (sscanf(s, "%d-%3s-%d %d:%d:%d %c%4d", &d, mon, &y, &hh, &mm, &ss, &sign, &zone) != 8)
		return -1;
	const char *m = strcasestr(months, mon);
	if (m == NULL || strlen(mon) != 3 || (m - months) % 3 != 0 || (sign != '+' && sign != '-'))
		return -1;
	struct tm tm = { 0 };
	tm.tm_mday = d;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_year = y - 1900;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	time_t t = timegm(&tm);
	int off = (zone / 100) * 3600 + (zone % 100) * 60;
	return sign == '+' ? t - off : t + off;
}

static void
work_append(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	const struct imap_cmd *c = &j->cmd;
	const char *name = mailbox_name(&c->args[0]);
	unsigned flags = 0;
	time_t date = 0;
	size_t i = 1;
	if (c->args[i].type == IMAP_ARG_LIST)
		(void)imap_flags_parse(&c->args[i++], &flags);
	if (i + 1 < c->nargs && c->args[i].type == IMAP_ARG_QUOTED)
		date = imap_parse_datetime(c->args[i++].str);
	const struct imap_arg *msg = &c->args[i];
	uint32_t uidv = 0, uid = 0;
	char *err = NULL;
	int rc = cmbox_append(sess->srv->cmbox, &sess->user, name, msg->str, msg->len, flags,
	    date > 0 ? date : 0, &uidv, &uid, &err);
	imap_refresh(sess, out);
	if (rc == 1)
		buf_appendf(out, "%s OK [APPENDUID %u %u] APPEND completed\r\n", c->tag, uidv, uid);
	else if (rc == 0)
		buf_appendf(out, "%s NO [TRYCREATE] No such mailbox\r\n", c->tag);
	else
		buf_appendf(out, "%s NO %s\r\n", c->tag, err != NULL && err[0] == '[' ? err
		    : "APPEND failed");
	if (rc < 0)
		log_warn("imap_append", "session=%s error=%s", sess->id, log_str(err));
	free(err);
}

static int
cmd_append(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs < 2 || cmd->nargs > 4 || mailbox_name(&cmd->args[0]) == NULL)
		return -1;
	const struct imap_arg *last = &cmd->args[cmd->nargs - 1];
	if (last->type != IMAP_ARG_LITERAL)
		return -1;
	size_t i = 1;
	unsigned f;
	if (cmd->args[i].type == IMAP_ARG_LIST && imap_flags_parse(&cmd->args[i++], &f) < 0)
		return -1;
	if (i + 1 < cmd->nargs && (cmd->args[i].type != IMAP_ARG_QUOTED ||
	    imap_parse_datetime(cmd->args[i].str) < 0))
		return -1;
	if (i + 1 < cmd->nargs)
		i++;
	if (i != cmd->nargs - 1)
		return -1;
	cmd_job_start(sess, cmd, 0, work_append);
	return 1;
}

static void
work_close(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	int expunge = strcmp(j->cmd.name, "CLOSE") == 0 && !sess->readonly;
	if (expunge) {
		size_t n = 0;
		uint32_t *uids = xcalloc(sess->snap.n + 1, sizeof(uint32_t));
		for (size_t i = 0; i < sess->snap.n; i++)
			if (sess->snap.msgs[i].flags & CMBOX_F_DELETED)
				uids[n++] = sess->snap.msgs[i].uid;
		char *err = NULL;
		if (n > 0 && cmbox_expunge(sess->srv->cmbox, &sess->user, sess->selected, uids, n,
		    &err) < 0)
			log_warn("imap_close", "session=%s error=%s", sess->id, log_str(err));
		free(err);
		free(uids);
	}
	unselect(sess);
	buf_appendf(out, "%s OK %s completed\r\n", j->cmd.tag, j->cmd.name);
}

static void
close_done(struct imap_session *sess)
{
	imap_session_enter(sess, IMAP_S_AUTHENTICATED);
	imap_cmd_job_finish(sess);
}

static int
cmd_close(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 0)
		return -1;
	imap_cmd_job_start(sess, cmd, 0, NULL, NULL, NULL, work_close, close_done);
	return 1;
}

static void
work_expunge(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	struct imap_seqset set = { NULL, 0 };
	if (j->uid)
		(void)imap_seqset_parse(j->cmd.args[0].str, &set);
	uint32_t max = sess->snap.n > 0 ? sess->snap.msgs[sess->snap.n - 1].uid : 0;
	size_t n = 0;
	uint32_t *uids = xcalloc(sess->snap.n + 1, sizeof(uint32_t));
	for (size_t i = 0; i < sess->snap.n; i++) {
		const struct cmbox_msg *m = &sess->snap.msgs[i];
		if ((m->flags & CMBOX_F_DELETED) && (!j->uid || imap_seqset_contains(&set, m->uid, max)))
			uids[n++] = m->uid;
	}
	imap_seqset_free(&set);
	char *err = NULL;
	int rc = n > 0 ? cmbox_expunge(sess->srv->cmbox, &sess->user, sess->selected, uids, n, &err)
	    : 0;
	free(uids);
	imap_refresh(sess, out);
	if (rc < 0) {
		log_warn("imap_expunge", "session=%s error=%s", sess->id, log_str(err));
		buf_appendf(out, "%s NO [SERVERBUG] EXPUNGE failed\r\n", j->cmd.tag);
	} else {
		buf_appendf(out, "%s OK %sEXPUNGE completed\r\n", j->cmd.tag, j->uid ? "UID " : "");
	}
	free(err);
}

static int
cmd_expunge(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != (uid ? 1u : 0u))
		return -1;
	if (uid) {
		struct imap_seqset set;
		if (cmd->args[0].type != IMAP_ARG_ATOM || imap_seqset_parse(cmd->args[0].str, &set) < 0)
			return -1;
		imap_seqset_free(&set);
	}
	if (sess->readonly) {
		imap_session_printf(sess, "%s NO [READ-ONLY] Mailbox is read-only\r\n", cmd->tag);
		return 0;
	}
	cmd_job_start(sess, cmd, uid, work_expunge);
	return 1;
}

static int
cmd_idle(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 0)
		return -1;
	free(sess->pending_tag);
	sess->pending_tag = xstrdup(cmd->tag);
	imap_session_printf(sess, "+ idling\r\n");
	imap_session_idle_start(sess);
	return 0;
}

static void
work_idle_poll(struct imap_session *sess, struct buf *out)
{
	imap_refresh(sess, out);
}

static void
idle_poll_done(struct imap_session *sess)
{
	if (sess->poll_wanted && sess->wait == IMAP_W_IDLE) {
		sess->poll_wanted = 0;
		imap_session_run(sess, work_idle_poll, idle_poll_done);
	}
}

void
imap_cmd_idle_poll(struct imap_session *sess)
{
	if (sess->selected == NULL)
		return;
	sess->poll_wanted = 0;
	imap_session_run(sess, work_idle_poll, idle_poll_done);
}

/* ---- dispatch --------------------------------------------------------- */

#define ST_N  (1u << IMAP_S_NOT_AUTHENTICATED)
#define ST_A  (1u << IMAP_S_AUTHENTICATED)
#define ST_S  (1u << IMAP_S_SELECTED)
#define ST_ANY (ST_N | ST_A | ST_S)

/* 0 answered (command over), 1 running (command ends later), -1 syntax error. */
typedef int cmd_fn(struct imap_session *, struct imap_cmd *, int uid);

struct cmd_def {
	const char *name;
	unsigned states;
	int uid_ok;
	cmd_fn *fn;
};

static const struct cmd_def cmd_table[] = {
	{ "CAPABILITY", ST_ANY, 0, cmd_capability },
	{ "NOOP", ST_ANY, 0, cmd_noop },
	{ "LOGOUT", ST_ANY, 0, cmd_logout },
	{ "ID", ST_ANY, 0, cmd_id },
	{ "STARTTLS", ST_N, 0, cmd_starttls },
	{ "LOGIN", ST_N, 0, cmd_login },
	{ "AUTHENTICATE", ST_N, 0, cmd_authenticate },
	{ "NAMESPACE", ST_A | ST_S, 0, cmd_namespace },
	{ "LIST", ST_A | ST_S, 0, cmd_list },
	{ "LSUB", ST_A | ST_S, 0, cmd_list },
	{ "SUBSCRIBE", ST_A | ST_S, 0, cmd_subscribe },
	{ "UNSUBSCRIBE", ST_A | ST_S, 0, cmd_subscribe },
	{ "STATUS", ST_A | ST_S, 0, cmd_status },
	{ "SELECT", ST_A | ST_S, 0, cmd_select },
	{ "EXAMINE", ST_A | ST_S, 0, cmd_select },
	{ "CREATE", ST_A | ST_S, 0, cmd_folder },
	{ "DELETE", ST_A | ST_S, 0, cmd_folder },
	{ "RENAME", ST_A | ST_S, 0, cmd_folder },
	{ "APPEND", ST_A | ST_S, 0, cmd_append },
	{ "IDLE", ST_A | ST_S, 0, cmd_idle },
	{ "CHECK", ST_S, 0, cmd_noop },
	{ "CLOSE", ST_S, 0, cmd_close },
	{ "UNSELECT", ST_S, 0, cmd_close },
	{ "EXPUNGE", ST_S, 1, cmd_expunge },
	{ "SEARCH", ST_S, 1, imap_cmd_search },
	{ "FETCH", ST_S, 1, imap_cmd_fetch },
	{ "STORE", ST_S, 1, imap_cmd_store },
	{ "COPY", ST_S, 1, imap_cmd_copy },
	{ "MOVE", ST_S, 1, imap_cmd_copy },
};

static const struct cmd_def *
cmd_find(const char *name)
{
	for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
		if (strcmp(cmd_table[i].name, name) == 0)
			return &cmd_table[i];
	return NULL;
}

static void
reply_bad(struct imap_session *sess, const char *tag, const char *text)
{
	imap_session_printf(sess, "%s BAD %s\r\n", tag != NULL ? tag : "*", text);
	log_info("imap_bad", "session=%s client=%s state=%s reason=%s", sess->id, sess->ip,
	    imap_state_name(sess->state), text);
	if (++sess->bad_in_row >= MAX_BAD_IN_ROW)
		imap_session_bye(sess, "Too many invalid commands");
}

void
imap_cmd_dispatch(struct imap_session *sess, const char *data, size_t len)
{
	struct imap_cmd cmd;
	const char *err = NULL;
	if (imap_parse_command(data, len, &cmd, &err) < 0) {
		reply_bad(sess, cmd.tag, err);
		imap_cmd_clear(&cmd);
		return;
	}
	int uid = 0;
	if (strcmp(cmd.name, "UID") == 0) {
		if (cmd.nargs == 0 || cmd.args[0].type != IMAP_ARG_ATOM) {
			reply_bad(sess, cmd.tag, "UID needs a command");
			imap_cmd_clear(&cmd);
			return;
		}
		/* Shift: the first argument is the command. */
		free(cmd.name);
		cmd.name = cmd.args[0].str;
		for (char *c = cmd.name; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		memmove(&cmd.args[0], &cmd.args[1], (cmd.nargs - 1) * sizeof(cmd.args[0]));
		cmd.nargs--;
		uid = 1;
	}
	const struct cmd_def *d = cmd_find(cmd.name);
	log_debug("imap_cmd", "session=%s cmd=%s%s state=%s", sess->id, uid ? "UID " : "",
	    log_str(cmd.name), imap_state_name(sess->state));
	if (d == NULL || (uid && !d->uid_ok) ||
	    (uid && strcmp(cmd.name, "EXPUNGE") != 0 && cmd.nargs == 0)) {
		reply_bad(sess, cmd.tag, "Unknown command");
	} else if (!(d->states & (1u << sess->state))) {
		reply_bad(sess, cmd.tag, sess->state == IMAP_S_NOT_AUTHENTICATED
		    ? "Not signed in" : "Command not valid in this state");
	} else {
		char tag[IMAP_TAG_MAX + 1];
		snprintf(tag, sizeof(tag), "%s", cmd.tag);
		int rc = d->fn(sess, &cmd, uid);
		if (rc == -2)
			reply_bad(sess, tag, uid ? "Invalid uidset" : "Invalid messageset");
		else if (rc < 0)
			reply_bad(sess, tag, "Invalid arguments");
		else
			sess->bad_in_row = 0;
	}
	imap_cmd_clear(&cmd);
}

void
imap_cmd_continuation(struct imap_session *sess, const char *line, size_t len)
{
	char *tag = sess->pending_tag;
	sess->pending_tag = NULL;
	if (sess->wait == IMAP_W_SASL) {
		sess->wait = IMAP_W_COMMAND;
		(void)sasl_plain(sess, tag != NULL ? tag : "*", line, len);
		free(tag);
		return;
	}
	/* IDLE */
	imap_session_idle_stop(sess);
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
		imap_session_printf(sess, "%s OK IDLE terminated\r\n", tag != NULL ? tag : "*");
	else
		imap_session_printf(sess, "%s BAD Expected DONE\r\n", tag != NULL ? tag : "*");
	free(tag);
}

void
imap_cmd_session_end(struct imap_session *sess)
{
	if (sess->tenant == NULL || sess->who.actor == NULL)
		return;
	char detail[64];
	snprintf(detail, sizeof(detail), "fetched=%lu", sess->fetched);
	(void)audit_record_tenant(sess->srv, &sess->who, sess->tenant, "imap.logout", sess->address,
	    "ok", detail);
}

void
imap_cmd_free_user(struct imap_session *sess)
{
	principal_clear(&sess->who);
	free(sess->tenant);
	free(sess->address);
	for (size_t i = 0; i < sess->naddrs; i++)
		free(sess->addrs[i]);
	free(sess->addrs);
	sess->tenant = sess->address = NULL;
	sess->addrs = NULL;
	sess->naddrs = 0;
}
