/*
 * imap_fetch — the message commands of the SELECTED state: FETCH (in
 * slices), STORE, SEARCH, COPY and MOVE, plus their UID variants.
 *
 * FETCH: the item list is checked on the loop thread (syntax errors are
 * BAD before any work), then a worker job renders up to FETCH_SLICE_MSGS
 * messages or FETCH_SLICE_BYTES of output; the next slice is scheduled
 * only once the client has read the output below the session's watermark
 * (imap_session_when_drained).  Message bytes come from cmbox_read, the
 * MIME views from imap_mime.  A body fetch without .PEEK sets \Seen (one
 * cmbox_set_flags per slice, and before each command's tagged OK) and
 * reports FLAGS.  A FETCH walks only the ranges of its set (resolved once
 * against the snapshot, binary search on the UIDs), never the whole
 * mailbox.
 *
 * PIPELINING: clients such as mbsync send one "UID FETCH <uid>" per
 * message without waiting.  The FETCH / UID FETCH lines already read
 * behind a FETCH (up to FETCH_BATCH_MAX, stopping at the first other
 * command, literal or invalid one) join its job as a chain of fetch_state:
 * the slices run through them in order, each ending with its own tagged
 * OK, so a slice is one worker round trip however many commands it holds.
 *
 * A message sequence number of 0 or beyond the mailbox (any, when it is
 * empty) is BAD "Invalid messageset" for FETCH, STORE, COPY and MOVE, like
 * Dovecot; UID sets may name UIDs that do not exist, but UID 0 is BAD
 * "Invalid uidset" (Dovecot's wording).
 *
 * SEARCH keys are compiled into a tree (struct skey) and evaluated per
 * message; the message is read only when a key needs its bytes.
 */
#include "imap/imap_cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap/imap_mime.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "server.h"

#define FETCH_SLICE_MSGS  100
#define FETCH_SLICE_BYTES (4u * 1024 * 1024)
#define FETCH_BATCH_MAX   256     /* pipelined FETCH commands taken into one job */

enum fitem_kind {
	FI_FLAGS, FI_UID, FI_INTERNALDATE, FI_SIZE, FI_ENVELOPE, FI_BODY, FI_BODYSTRUCTURE,
	FI_SECTION,
};

struct fitem {
	enum fitem_kind kind;
	char *section;             /* FI_SECTION: the section-spec */
	char *label;               /* response name: "BODY[HEADER]<0>", "RFC822" */
	int peek;
	int partial;
	uint64_t off, cnt;
};

struct fetch_state {
	struct fitem *items;
	size_t n;
	struct imap_seqset set;
	struct imap_seqset rs;     /* set resolved against the snapshot (worker) */
	int resolved;
	size_t ri;                 /* FETCH: the range of rs being walked */
	int in_range;              /* pos was positioned in range ri */
	size_t pos;                /* next message index */
	int need_raw;
	char *tag;                 /* FETCH: the command's tag and UID variant */
	int uid;
	struct fetch_state *next;  /* FETCH: pipelined FETCH commands after this one */
};

static void
fetch_state_free_one(struct fetch_state *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->items[i].section);
		free(f->items[i].label);
	}
	free(f->items);
	imap_seqset_free(&f->set);
	imap_seqset_free(&f->rs);
	free(f->tag);
	free(f);
}

void
imap_fetch_state_free(struct cmd_job *j)
{
	while (j->fetch != NULL) {
		struct fetch_state *f = j->fetch;
		j->fetch = f->next;
		fetch_state_free_one(f);
	}
}

static void
fitem_add(struct fetch_state *f, enum fitem_kind k)
{
	f->items = xrealloc(f->items, (f->n + 1) * sizeof(*f->items));
	memset(&f->items[f->n], 0, sizeof(f->items[0]));
	f->items[f->n++].kind = k;
	if (k == FI_ENVELOPE || k == FI_BODY || k == FI_BODYSTRUCTURE || k == FI_SECTION)
		f->need_raw = 1;
}

static void
fitem_section(struct fetch_state *f, const char *section, const char *label, int peek)
{
	fitem_add(f, FI_SECTION);
	f->items[f->n - 1].section = xstrdup(section);
	f->items[f->n - 1].label = xstrdup(label);
	f->items[f->n - 1].peek = peek;
}

/* "BODY[...]<o.n>" or "BODY.PEEK[...]<o.n>". */
static int
fetch_parse_body(struct fetch_state *f, const char *s)
{
	int peek = strncasecmp(s, "BODY.PEEK[", 10) == 0;
	if (!peek && strncasecmp(s, "BODY[", 5) != 0)
		return -1;
	const char *open = strchr(s, '[');
	const char *close = strrchr(s, ']');
	if (close == NULL || close < open)
		return -1;
	char *section = xstrndup(open + 1, (size_t)(close - open - 1));
	if (!imap_mime_section_valid(section)) {
		free(section);
		return -1;
	}
	struct buf label = BUF_INIT;
	buf_appendf(&label, "BODY[%s]", section);
	fitem_section(f, section, buf_cstr(&label), peek);
	free(section);
	buf_free(&label);
	struct fitem *it = &f->items[f->n - 1];
	const char *rest = close + 1;
	if (*rest == '\0')
		return 0;
	unsigned long long off, cnt;
	int used = 0;
	if (sscanf(rest, "<%llu.%llu>%n", &off, &cnt, &used) == 2 && rest[used] == '\0' && cnt > 0) {
		it->partial = 1;
		it->off = off;
		it->cnt = cnt;
		free(it->label);
		struct buf b = BUF_INIT;
		buf_appendf(&b, "BODY[%s]<%llu>", it->section, off);
		it->label = buf_steal(&b);
		return 0;
	}
	return -1;
}

static int
fetch_parse_item(struct fetch_state *f, const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_ATOM)
		return -1;
	const char *s = a->str;
	if (strcasecmp(s, "FLAGS") == 0)
		fitem_add(f, FI_FLAGS);
	else if (strcasecmp(s, "UID") == 0)
		fitem_add(f, FI_UID);
	else if (strcasecmp(s, "INTERNALDATE") == 0)
		fitem_add(f, FI_INTERNALDATE);
	else if (strcasecmp(s, "RFC822.SIZE") == 0)
		fitem_add(f, FI_SIZE);
	else if (strcasecmp(s, "ENVELOPE") == 0)
		fitem_add(f, FI_ENVELOPE);
	else if (strcasecmp(s, "BODY") == 0)
		fitem_add(f, FI_BODY);
	else if (strcasecmp(s, "BODYSTRUCTURE") == 0)
		fitem_add(f, FI_BODYSTRUCTURE);
	else if (strcasecmp(s, "RFC822") == 0)
		fitem_section(f, "", "RFC822", 0);
	else if (strcasecmp(s, "RFC822.HEADER") == 0)
		fitem_section(f, "HEADER", "RFC822.HEADER", 1);
	else if (strcasecmp(s, "RFC822.TEXT") == 0)
		fitem_section(f, "TEXT", "RFC822.TEXT", 0);
	else
		return fetch_parse_body(f, s);
	return 0;
}

/* The FETCH arguments, or NULL with *rc_r -1 (invalid) or -2 (a set naming 0). */
static struct fetch_state *
fetch_parse(const struct imap_arg *args, size_t nargs, int *rc_r)
{
	*rc_r = -1;
	if (nargs != 2 || args[0].type != IMAP_ARG_ATOM)
		return NULL;
	struct fetch_state *f = xcalloc(1, sizeof(*f));
	if (imap_seqset_parse(args[0].str, &f->set) < 0) {
		free(f);
		*rc_r = imap_seqset_names_zero(args[0].str) ? -2 : -1;
		return NULL;
	}
	const struct imap_arg *a = &args[1];
	int rc = 0;
	if (a->type == IMAP_ARG_ATOM && strcasecmp(a->str, "ALL") == 0) {
		fitem_add(f, FI_FLAGS);
		fitem_add(f, FI_INTERNALDATE);
		fitem_add(f, FI_SIZE);
		fitem_add(f, FI_ENVELOPE);
	} else if (a->type == IMAP_ARG_ATOM && strcasecmp(a->str, "FAST") == 0) {
		fitem_add(f, FI_FLAGS);
		fitem_add(f, FI_INTERNALDATE);
		fitem_add(f, FI_SIZE);
	} else if (a->type == IMAP_ARG_ATOM && strcasecmp(a->str, "FULL") == 0) {
		fitem_add(f, FI_FLAGS);
		fitem_add(f, FI_INTERNALDATE);
		fitem_add(f, FI_SIZE);
		fitem_add(f, FI_ENVELOPE);
		fitem_add(f, FI_BODY);
	} else if (a->type == IMAP_ARG_LIST) {
		for (size_t i = 0; i < a->len && rc == 0; i++)
			rc = fetch_parse_item(f, &a->list[i]);
		if (a->len == 0)
			rc = -1;
	} else {
		rc = fetch_parse_item(f, a);
	}
	if (rc < 0) {
		fetch_state_free_one(f);
		return NULL;
	}
	return f;
}

/* What '*' stands for: the highest UID, or the number of messages. */
static uint32_t
set_star(const struct cmbox_snapshot *s, int uid)
{
	if (uid)
		return s->n > 0 ? s->msgs[s->n - 1].uid : 0;
	return (uint32_t)s->n;
}

/*
 * A sequence set naming a message number beyond the mailbox (or any number
 * of an empty one) is invalid (RFC 3501 9, seq-number): BAD, like Dovecot.
 * UID sets may name UIDs that do not exist.  (A set naming 0 does not
 * parse: imap_seqset_names_zero() tells it from a syntax error.)
 */
static int
seqset_valid(const struct imap_session *sess, const struct imap_seqset *set, int uid)
{
	if (uid)
		return 1;
	uint32_t n = (uint32_t)sess->snap.n;
	return n > 0 && imap_seqset_max(set, n) <= n;
}

/*
 * A new fetch_state for STORE / COPY / MOVE over the set text: NULL with
 * *rc_r -1 (syntax: BAD) or -2 (invalid message set: BAD "Invalid
 * messageset"), as the command functions return them.
 */
static struct fetch_state *
fetch_state_for_set(const struct imap_session *sess, const char *set, int uid, int *rc_r)
{
	struct fetch_state *f = xcalloc(1, sizeof(*f));
	if (imap_seqset_parse(set, &f->set) < 0) {
		free(f);
		*rc_r = imap_seqset_names_zero(set) ? -2 : -1;
		return NULL;
	}
	if (!seqset_valid(sess, &f->set, uid)) {
		fetch_state_free_one(f);
		*rc_r = -2;
		return NULL;
	}
	return f;
}

/* Resolves f->set against the session's snapshot (once per command). */
static void
fetch_resolve(const struct imap_session *sess, struct fetch_state *f, int uid)
{
	if (f->resolved)
		return;
	imap_seqset_resolve(&f->set, set_star(&sess->snap, uid), &f->rs);
	f->resolved = 1;
}

/* The number of message i (UID or sequence number). */
static uint32_t
msg_key(const struct cmbox_snapshot *s, size_t i, int uid)
{
	return uid ? s->msgs[i].uid : (uint32_t)(i + 1);
}

/* Index of the first message whose number is >= v (s->n when none). */
static size_t
msg_lower_bound(const struct cmbox_snapshot *s, uint32_t v, int uid)
{
	if (!uid)
		return v > 0 ? (size_t)v - 1 : 0;
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->msgs[mid].uid < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
msg_in_set(const struct imap_session *sess, struct fetch_state *f, size_t i, int uid)
{
	fetch_resolve(sess, f, uid);
	uint32_t v = msg_key(&sess->snap, i, uid);
	size_t lo = 0, hi = f->rs.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->rs.r[mid].hi < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < f->rs.n && f->rs.r[lo].lo <= v;
}

/* The next message of the set in ascending order: 1 with *i_r, 0 at the end. */
static int
fetch_next_index(const struct imap_session *sess, struct fetch_state *f, size_t *i_r)
{
	const struct cmbox_snapshot *s = &sess->snap;
	fetch_resolve(sess, f, f->uid);
	while (f->ri < f->rs.n) {
		const struct imap_seq_range *r = &f->rs.r[f->ri];
		if (!f->in_range) {
			f->pos = msg_lower_bound(s, r->lo, f->uid);
			f->in_range = 1;
		}
		if (f->pos < s->n && msg_key(s, f->pos, f->uid) <= r->hi) {
			*i_r = f->pos++;
			return 1;
		}
		f->ri++;
		f->in_range = 0;
	}
	return 0;
}

static void
render_date(struct buf *out, time_t t)
{
	struct tm tm;
	char d[64];
	gmtime_r(&t, &tm);
	strftime(d, sizeof(d), "%d-%b-%Y %H:%M:%S +0000", &tm);
	buf_appendf(out, "\"%s\"", d);
}

static void
render_section(struct buf *out, const struct fitem *it, const char *raw, size_t len)
{
	struct buf sec = BUF_INIT;
	(void)imap_mime_section(raw, len, it->section, &sec);
	const char *p = sec.data != NULL ? sec.data : "";
	size_t n = sec.len;
	if (it->partial) {
		size_t off = it->off < n ? (size_t)it->off : n;
		p += off;
		n -= off;
		if (it->cnt < n)
			n = (size_t)it->cnt;
	}
	buf_appendf(out, "%s {%zu}\r\n", it->label, n);
	buf_append(out, p, n);
	buf_free(&sec);
}

/* One message's FETCH response. */
static void
fetch_one(struct imap_session *sess, struct fetch_state *f, size_t i, int uid,
    uint32_t *seen, size_t *nseen, struct buf *out)
{
	struct cmbox_msg *m = &sess->snap.msgs[i];
	unsigned char *raw = NULL;
	size_t len = 0;
	if (f->need_raw) {
		char *err = NULL;
		int rc = cmbox_read(sess->srv->cmbox, &sess->user, sess->selected, m->uid, &raw, &len,
		    &err);
		if (rc != 1) {
			if (rc < 0)
				log_warn("imap_fetch", "session=%s uid=%u error=%s", sess->id, m->uid,
				    log_str(err));
			free(err);
			return;
		}
	}
	int set_seen = 0;
	for (size_t k = 0; k < f->n; k++)
		if (f->items[k].kind == FI_SECTION && !f->items[k].peek)
			set_seen = 1;
	int report_flags = 0;
	if (set_seen && !sess->readonly && !(m->flags & CMBOX_F_SEEN)) {
		m->flags |= CMBOX_F_SEEN;
		seen[(*nseen)++] = m->uid;
		report_flags = 1;
	}
	buf_appendf(out, "* %zu FETCH (", i + 1);
	size_t start = out->len;
	int has_uid = 0, has_flags = 0;
	for (size_t k = 0; k < f->n; k++) {
		has_uid |= f->items[k].kind == FI_UID;
		has_flags |= f->items[k].kind == FI_FLAGS;
	}
	/* Implied items first, so clients see them before any literal. */
	if (uid && !has_uid)
		buf_appendf(out, "UID %u", m->uid);
	if (report_flags && !has_flags) {
		buf_appendf(out, "%sFLAGS ", out->len > start ? " " : "");
		imap_flags_render(out, imap_msg_flags(sess, m));
	}
	for (size_t k = 0; k < f->n; k++) {
		const struct fitem *it = &f->items[k];
		if (out->len > start)
			buf_append_char(out, ' ');
		switch (it->kind) {
		case FI_FLAGS:
			buf_append_str(out, "FLAGS ");
			imap_flags_render(out, imap_msg_flags(sess, m));
			break;
		case FI_UID:
			buf_appendf(out, "UID %u", m->uid);
			break;
		case FI_INTERNALDATE:
			buf_append_str(out, "INTERNALDATE ");
			render_date(out, m->internaldate);
			break;
		case FI_SIZE:
			buf_appendf(out, "RFC822.SIZE %llu", (unsigned long long)m->size);
			break;
		case FI_ENVELOPE:
			buf_append_str(out, "ENVELOPE ");
			imap_mime_envelope((const char *)raw, len, out);
			break;
		case FI_BODY:
		case FI_BODYSTRUCTURE:
			buf_append_str(out, it->kind == FI_BODY ? "BODY " : "BODYSTRUCTURE ");
			imap_mime_bodystructure((const char *)raw, len, it->kind == FI_BODYSTRUCTURE, out);
			break;
		case FI_SECTION:
			render_section(out, it, (const char *)raw, len);
			break;
		}
	}
	buf_append_str(out, ")\r\n");
	sess->fetched++;
	free(raw);
}

/* Stores the \Seen flags a slice set (before the tagged OK of their command). */
static void
fetch_store_seen(struct imap_session *sess, uint32_t *seen, size_t *nseen)
{
	if (*nseen == 0)
		return;
	char *err = NULL;
	if (cmbox_set_flags(sess->srv->cmbox, &sess->user, sess->selected, seen, *nseen,
	    CMBOX_FLAGS_ADD, CMBOX_F_SEEN, &err) < 0)
		log_warn("imap_fetch", "session=%s error=%s", sess->id, log_str(err));
	free(err);
	*nseen = 0;
}

/*
 * One slice: messages of the job's FETCH commands in order (the first
 * command, then pipelined ones taken with it), each command ending with
 * its tagged OK, until the slice is full.  Finished commands leave j->fetch.
 */
static void
work_fetch_slice(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	uint32_t seen[FETCH_SLICE_MSGS];
	size_t nseen = 0, done = 0;
	while (j->fetch != NULL && done < FETCH_SLICE_MSGS && out->len < FETCH_SLICE_BYTES) {
		struct fetch_state *f = j->fetch;
		size_t i;
		if (fetch_next_index(sess, f, &i)) {
			fetch_one(sess, f, i, f->uid, seen, &nseen, out);
			done++;
			continue;
		}
		fetch_store_seen(sess, seen, &nseen);
		buf_appendf(out, "%s OK %sFETCH completed\r\n", f->tag, f->uid ? "UID " : "");
		j->fetch = f->next;
		fetch_state_free_one(f);
	}
	fetch_store_seen(sess, seen, &nseen);
}

static void fetch_slice_done(struct imap_session *sess);

static void
fetch_next(struct imap_session *sess)
{
	imap_session_run(sess, work_fetch_slice, fetch_slice_done);
}

static void
fetch_slice_done(struct imap_session *sess)
{
	struct cmd_job *j = sess->job;
	if (j->fetch == NULL) {
		imap_cmd_job_finish(sess);
		return;
	}
	imap_session_when_drained(sess, fetch_next);
}

/*
 * A pipelined command that may join the running FETCH job: a complete
 * FETCH / UID FETCH line, valid in this state.  NULL otherwise (it is then
 * read and answered the ordinary way, after the job).
 */
static struct fetch_state *
fetch_batch_parse(struct imap_session *sess, const char *line, size_t len)
{
	struct imap_cmd c;
	const char *err = NULL;
	struct fetch_state *f = NULL;
	if (imap_parse_command(line, len, &c, &err) < 0) {
		imap_cmd_clear(&c);
		return NULL;
	}
	const struct imap_arg *args = c.args;
	size_t nargs = c.nargs;
	int uid = 0;
	if (strcmp(c.name, "UID") == 0 && nargs > 0 && args[0].type == IMAP_ARG_ATOM &&
	    strcasecmp(args[0].str, "FETCH") == 0) {
		uid = 1;
		args++;
		nargs--;
	} else if (strcmp(c.name, "FETCH") != 0) {
		imap_cmd_clear(&c);
		return NULL;
	}
	int prc;
	f = fetch_parse(args, nargs, &prc);
	if (f != NULL && !seqset_valid(sess, &f->set, uid)) {
		fetch_state_free_one(f);
		f = NULL;
	}
	if (f != NULL) {
		f->tag = xstrdup(c.tag);
		f->uid = uid;
		log_debug("imap_cmd", "session=%s cmd=%sFETCH state=%s batched=1", sess->id,
		    uid ? "UID " : "", imap_state_name(sess->state));
	}
	imap_cmd_clear(&c);
	return f;
}

/* Takes the FETCH commands the client pipelined behind f into the same job. */
static void
fetch_batch(struct imap_session *sess, struct fetch_state *f)
{
	for (int k = 0; k < FETCH_BATCH_MAX; k++) {
		char *line;
		size_t len, used;
		if (imap_session_peek_line(sess, &line, &len, &used) != 1)
			return;
		struct fetch_state *nf = fetch_batch_parse(sess, line, len);
		free(line);
		if (nf == NULL)
			return;
		imap_session_consume(sess, used);
		f->next = nf;
		f = nf;
	}
}

int
imap_cmd_fetch(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	int prc;
	struct fetch_state *f = fetch_parse(cmd->args, cmd->nargs, &prc);
	if (f == NULL)
		return prc;
	if (!seqset_valid(sess, &f->set, uid)) {
		fetch_state_free_one(f);
		return -2;
	}
	f->tag = xstrdup(cmd->tag);
	f->uid = uid;
	fetch_batch(sess, f);
	imap_cmd_job_start(sess, cmd, uid, f, NULL, NULL, work_fetch_slice, fetch_slice_done);
	return 1;
}

/* ---- STORE ------------------------------------------------------------ */

static void
work_store(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	struct fetch_state *f = j->fetch;
	const char *item = j->cmd.args[1].str;
	enum cmbox_flag_op op = item[0] == '+' ? CMBOX_FLAGS_ADD
	    : item[0] == '-' ? CMBOX_FLAGS_REMOVE : CMBOX_FLAGS_SET;
	int silent = strcasestr(item, ".SILENT") != NULL;
	unsigned flags = 0;
	(void)imap_flags_parse(&j->cmd.args[2], &flags);
	uint32_t *uids = xcalloc(sess->snap.n + 1, sizeof(uint32_t));
	size_t n = 0;
	for (size_t i = 0; i < sess->snap.n; i++)
		if (msg_in_set(sess, f, i, j->uid))
			uids[n++] = sess->snap.msgs[i].uid;
	char *err = NULL;
	if (n > 0 && cmbox_set_flags(sess->srv->cmbox, &sess->user, sess->selected, uids, n, op,
	    flags, &err) < 0) {
		log_warn("imap_store", "session=%s error=%s", sess->id, log_str(err));
		buf_appendf(out, "%s NO [SERVERBUG] STORE failed\r\n", j->cmd.tag);
		free(err);
		free(uids);
		return;
	}
	free(uids);
	for (size_t i = 0; i < sess->snap.n; i++) {
		struct cmbox_msg *m = &sess->snap.msgs[i];
		if (!msg_in_set(sess, f, i, j->uid))
			continue;
		if (op == CMBOX_FLAGS_ADD)
			m->flags |= flags;
		else if (op == CMBOX_FLAGS_REMOVE)
			m->flags &= ~flags;
		else
			m->flags = flags;
		if (silent)
			continue;
		buf_appendf(out, "* %zu FETCH (FLAGS ", i + 1);
		imap_flags_render(out, imap_msg_flags(sess, m));
		if (j->uid)
			buf_appendf(out, " UID %u", m->uid);
		buf_append_str(out, ")\r\n");
	}
	buf_appendf(out, "%s OK %sSTORE completed\r\n", j->cmd.tag, j->uid ? "UID " : "");
}

int
imap_cmd_store(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 3 || cmd->args[0].type != IMAP_ARG_ATOM ||
	    cmd->args[1].type != IMAP_ARG_ATOM)
		return -1;
	const char *item = cmd->args[1].str;
	const char *base = (item[0] == '+' || item[0] == '-') ? item + 1 : item;
	if (strcasecmp(base, "FLAGS") != 0 && strcasecmp(base, "FLAGS.SILENT") != 0)
		return -1;
	unsigned flags;
	if (imap_flags_parse(&cmd->args[2], &flags) < 0)
		return -1;
	int rc;
	struct fetch_state *f = fetch_state_for_set(sess, cmd->args[0].str, uid, &rc);
	if (f == NULL)
		return rc;
	if (sess->readonly) {
		imap_seqset_free(&f->set);
		free(f);
		imap_session_printf(sess, "%s NO [READ-ONLY] Mailbox is read-only\r\n", cmd->tag);
		return 0;
	}
	imap_cmd_job_start(sess, cmd, uid, f, NULL, NULL, work_store, NULL);
	return 1;
}

/* ---- COPY / MOVE ------------------------------------------------------ */

static void
append_uid_list(struct buf *out, const uint32_t *v, const uint32_t *keep, size_t n)
{
	int first = 1;
	for (size_t i = 0; i < n; i++) {
		if (keep[i] == 0)
			continue;
		buf_appendf(out, "%s%u", first ? "" : ",", v[i]);
		first = 0;
	}
}

static void
work_copy(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	struct fetch_state *f = j->fetch;
	int move = strcmp(j->cmd.name, "MOVE") == 0;
	const char *to = j->cmd.args[1].str;
	if (strcasecmp(to, "INBOX") == 0)
		to = "INBOX";
	uint32_t *uids = xcalloc(sess->snap.n + 1, sizeof(uint32_t));
	uint32_t *nu = xcalloc(sess->snap.n + 1, sizeof(uint32_t));
	size_t n = 0;
	for (size_t i = 0; i < sess->snap.n; i++)
		if (msg_in_set(sess, f, i, j->uid))
			uids[n++] = sess->snap.msgs[i].uid;
	uint32_t uidv = 0;
	char *err = NULL;
	int rc = n > 0 ? cmbox_copy(sess->srv->cmbox, &sess->user, sess->selected, uids, n, to,
	    &uidv, nu, &err) : 1;
	if (rc == 0) {
		buf_appendf(out, "%s NO [TRYCREATE] No such mailbox\r\n", j->cmd.tag);
	} else if (rc < 0) {
		buf_appendf(out, "%s NO %s\r\n", j->cmd.tag, err != NULL && err[0] == '[' ? err
		    : "[SERVERBUG] COPY failed");
	} else {
		struct buf code = BUF_INIT;
		if (n > 0) {
			buf_appendf(&code, "[COPYUID %u ", uidv);
			append_uid_list(&code, uids, nu, n);
			buf_append_char(&code, ' ');
			append_uid_list(&code, nu, nu, n);
			buf_append_str(&code, "] ");
		}
		if (move) {
			if (n > 0)
				buf_appendf(out, "* OK %s Moved\r\n", buf_cstr(&code));
			char *e2 = NULL;
			if (n > 0 && cmbox_expunge(sess->srv->cmbox, &sess->user, sess->selected, uids, n,
			    &e2) < 0)
				log_warn("imap_move", "session=%s error=%s", sess->id, log_str(e2));
			free(e2);
			imap_refresh(sess, out);
			buf_appendf(out, "%s OK %sMOVE completed\r\n", j->cmd.tag, j->uid ? "UID " : "");
		} else {
			imap_refresh(sess, out);
			buf_appendf(out, "%s OK %s%sCOPY completed\r\n", j->cmd.tag, buf_cstr(&code),
			    j->uid ? "UID " : "");
		}
		buf_free(&code);
	}
	free(err);
	free(uids);
	free(nu);
}

int
imap_cmd_copy(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	if (cmd->nargs != 2 || cmd->args[0].type != IMAP_ARG_ATOM ||
	    !imap_arg_is_string(&cmd->args[1]) || cmd->args[1].len == 0)
		return -1;
	int rc;
	struct fetch_state *f = fetch_state_for_set(sess, cmd->args[0].str, uid, &rc);
	if (f == NULL)
		return rc;
	if (sess->readonly && strcmp(cmd->name, "MOVE") == 0) {
		imap_seqset_free(&f->set);
		free(f);
		imap_session_printf(sess, "%s NO [READ-ONLY] Mailbox is read-only\r\n", cmd->tag);
		return 0;
	}
	imap_cmd_job_start(sess, cmd, uid, f, NULL, NULL, work_copy, NULL);
	return 1;
}

/* ---- SEARCH ----------------------------------------------------------- */

enum skey_op {
	SK_ALL, SK_SEQ, SK_UID, SK_FLAG_ON, SK_FLAG_OFF, SK_NEW, SK_OLD, SK_RECENT,
	SK_HEADER, SK_BODY, SK_TEXT, SK_BEFORE, SK_ON, SK_SINCE, SK_SENTBEFORE, SK_SENTON,
	SK_SENTSINCE, SK_LARGER, SK_SMALLER, SK_NOT, SK_OR, SK_AND,
};

struct skey {
	enum skey_op op;
	const char *a, *b;         /* borrowed from the command */
	unsigned flag;
	time_t t;
	uint64_t n;
	struct imap_seqset set;
	struct skey *kids;
	size_t nkids;
};

static void
skey_free(struct skey *k)
{
	for (size_t i = 0; i < k->nkids; i++)
		skey_free(&k->kids[i]);
	free(k->kids);
	imap_seqset_free(&k->set);
}

/* "1-Feb-1994" -> UTC midnight; -1 when malformed. */
static time_t
search_date(const char *s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int d, y;
	char mon[4];
	int used = 0;
	if (sscanf(s, "%2d-%3[A-Za-z]-%4d%n", &d, mon, &y, &used) != 3 || s[used] != '\0')
		return -1;
	const char *m = strcasestr(months, mon);
	if (m == NULL || (m - months) % 3 != 0 || d < 1 || d > 31)
		return -1;
	struct tm tm = { 0 };
	tm.tm_mday = d;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_year = y - 1900;
	return timegm(&tm);
}

static int skey_parse(const struct imap_arg *v, size_t n, size_t *i, struct skey *k, int depth);

static void
skey_kid(struct skey *k)
{
	k->kids = xrealloc(k->kids, (k->nkids + 1) * sizeof(*k->kids));
	memset(&k->kids[k->nkids++], 0, sizeof(*k->kids));
}

static const char *
skey_string(const struct imap_arg *v, size_t n, size_t *i)
{
	if (*i >= n || !imap_arg_is_string(&v[*i]))
		return NULL;
	return v[(*i)++].str;
}

static int
skey_parse_atom(const struct imap_arg *v, size_t n, size_t *i, struct skey *k, int depth)
{
	static const struct { const char *name; enum skey_op op; unsigned flag; } simple[] = {
		{ "ALL", SK_ALL, 0 }, { "NEW", SK_NEW, 0 }, { "OLD", SK_OLD, 0 },
		{ "RECENT", SK_RECENT, 0 },
		{ "ANSWERED", SK_FLAG_ON, CMBOX_F_ANSWERED }, { "DELETED", SK_FLAG_ON, CMBOX_F_DELETED },
		{ "FLAGGED", SK_FLAG_ON, CMBOX_F_FLAGGED }, { "SEEN", SK_FLAG_ON, CMBOX_F_SEEN },
		{ "DRAFT", SK_FLAG_ON, CMBOX_F_DRAFT },
		{ "UNANSWERED", SK_FLAG_OFF, CMBOX_F_ANSWERED },
		{ "UNDELETED", SK_FLAG_OFF, CMBOX_F_DELETED },
		{ "UNFLAGGED", SK_FLAG_OFF, CMBOX_F_FLAGGED }, { "UNSEEN", SK_FLAG_OFF, CMBOX_F_SEEN },
		{ "UNDRAFT", SK_FLAG_OFF, CMBOX_F_DRAFT },
	};
	static const struct { const char *name; enum skey_op op; const char *field; } strs[] = {
		{ "FROM", SK_HEADER, "From" }, { "TO", SK_HEADER, "To" }, { "CC", SK_HEADER, "Cc" },
		{ "BCC", SK_HEADER, "Bcc" }, { "SUBJECT", SK_HEADER, "Subject" },
		{ "BODY", SK_BODY, NULL }, { "TEXT", SK_TEXT, NULL },
	};
	static const struct { const char *name; enum skey_op op; } dates[] = {
		{ "BEFORE", SK_BEFORE }, { "ON", SK_ON }, { "SINCE", SK_SINCE },
		{ "SENTBEFORE", SK_SENTBEFORE }, { "SENTON", SK_SENTON }, { "SENTSINCE", SK_SENTSINCE },
	};
	const char *s = v[(*i)++].str;
	for (size_t x = 0; x < sizeof(simple) / sizeof(simple[0]); x++)
		if (strcasecmp(s, simple[x].name) == 0) {
			k->op = simple[x].op;
			k->flag = simple[x].flag;
			return 0;
		}
	for (size_t x = 0; x < sizeof(strs) / sizeof(strs[0]); x++)
		if (strcasecmp(s, strs[x].name) == 0) {
			k->op = strs[x].op;
			k->a = strs[x].field;
			k->b = skey_string(v, n, i);
			return k->b != NULL ? 0 : -1;
		}
	for (size_t x = 0; x < sizeof(dates) / sizeof(dates[0]); x++)
		if (strcasecmp(s, dates[x].name) == 0) {
			const char *d = skey_string(v, n, i);
			k->op = dates[x].op;
			k->t = d != NULL ? search_date(d) : -1;
			return k->t < 0 ? -1 : 0;
		}
	if (strcasecmp(s, "HEADER") == 0) {
		k->op = SK_HEADER;
		k->a = skey_string(v, n, i);
		k->b = skey_string(v, n, i);
		return k->a != NULL && k->b != NULL ? 0 : -1;
	}
	if (strcasecmp(s, "LARGER") == 0 || strcasecmp(s, "SMALLER") == 0) {
		k->op = toupper((unsigned char)s[0]) == 'L' ? SK_LARGER : SK_SMALLER;
		const char *num = skey_string(v, n, i);
		char *end;
		if (num == NULL || !isdigit((unsigned char)num[0]))
			return -1;
		k->n = strtoull(num, &end, 10);
		return *end == '\0' ? 0 : -1;
	}
	if (strcasecmp(s, "UID") == 0) {
		const char *set = skey_string(v, n, i);
		k->op = SK_UID;
		return set != NULL ? imap_seqset_parse(set, &k->set) : -1;
	}
	if (strcasecmp(s, "NOT") == 0 || strcasecmp(s, "OR") == 0) {
		int or = toupper((unsigned char)s[0]) == 'O';
		k->op = or ? SK_OR : SK_NOT;
		for (int x = 0; x < (or ? 2 : 1); x++) {
			skey_kid(k);
			if (skey_parse(v, n, i, &k->kids[k->nkids - 1], depth + 1) < 0)
				return -1;
		}
		return 0;
	}
	k->op = SK_SEQ;
	return imap_seqset_parse(s, &k->set);
}

static int
skey_parse_list(const struct imap_arg *v, size_t n, struct skey *k, int depth)
{
	size_t i = 0;
	k->op = SK_AND;
	if (n == 0)
		return -1;
	while (i < n) {
		skey_kid(k);
		if (skey_parse(v, n, &i, &k->kids[k->nkids - 1], depth + 1) < 0)
			return -1;
	}
	return 0;
}

static int
skey_parse(const struct imap_arg *v, size_t n, size_t *i, struct skey *k, int depth)
{
	if (*i >= n || depth > IMAP_LIST_DEPTH_MAX)
		return -1;
	if (v[*i].type == IMAP_ARG_LIST) {
		const struct imap_arg *l = &v[(*i)++];
		return skey_parse_list(l->list, l->len, k, depth);
	}
	if (v[*i].type != IMAP_ARG_ATOM)
		return -1;
	return skey_parse_atom(v, n, i, k, depth);
}

struct seval {
	struct imap_session *sess;
	size_t idx;
	unsigned char *raw;
	size_t len;
	int tried;
};

static int
seval_raw(struct seval *e)
{
	if (!e->tried) {
		e->tried = 1;
		char *err = NULL;
		if (cmbox_read(e->sess->srv->cmbox, &e->sess->user, e->sess->selected,
		    e->sess->snap.msgs[e->idx].uid, &e->raw, &e->len, &err) != 1)
			e->raw = NULL;
		free(err);
	}
	return e->raw != NULL;
}

static time_t
day_of(time_t t)
{
	return t - (t % 86400);
}

static int
skey_eval(const struct skey *k, struct seval *e)
{
	const struct cmbox_snapshot *s = &e->sess->snap;
	const struct cmbox_msg *m = &s->msgs[e->idx];
	unsigned f = imap_msg_flags(e->sess, m);
	time_t sent;
	switch (k->op) {
	case SK_ALL:
		return 1;
	case SK_SEQ:
		return imap_seqset_contains(&k->set, (uint32_t)(e->idx + 1), (uint32_t)s->n);
	case SK_UID:
		return imap_seqset_contains(&k->set, m->uid, s->msgs[s->n - 1].uid);
	case SK_FLAG_ON:
		return (f & k->flag) != 0;
	case SK_FLAG_OFF:
		return (f & k->flag) == 0;
	case SK_NEW:
		return (f & CMBOX_F_RECENT) && !(f & CMBOX_F_SEEN);
	case SK_OLD:
		return !(f & CMBOX_F_RECENT);
	case SK_RECENT:
		return (f & CMBOX_F_RECENT) != 0;
	case SK_HEADER:
		return seval_raw(e) && imap_mime_header_contains((const char *)e->raw, e->len, k->a,
		    k->b);
	case SK_BODY:
		return seval_raw(e) && imap_mime_body_contains((const char *)e->raw, e->len, k->b);
	case SK_TEXT:
		return seval_raw(e) && imap_mime_text_contains((const char *)e->raw, e->len, k->b);
	case SK_BEFORE:
		return day_of(m->internaldate) < k->t;
	case SK_ON:
		return day_of(m->internaldate) == k->t;
	case SK_SINCE:
		return day_of(m->internaldate) >= k->t;
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE:
		if (!seval_raw(e) || (sent = imap_mime_date((const char *)e->raw, e->len)) < 0)
			return 0;
		sent = day_of(sent);
		return k->op == SK_SENTBEFORE ? sent < k->t : k->op == SK_SENTON ? sent == k->t
		    : sent >= k->t;
	case SK_LARGER:
		return m->size > k->n;
	case SK_SMALLER:
		return m->size < k->n;
	case SK_NOT:
		return !skey_eval(&k->kids[0], e);
	case SK_OR:
		return skey_eval(&k->kids[0], e) || skey_eval(&k->kids[1], e);
	case SK_AND:
		for (size_t i = 0; i < k->nkids; i++)
			if (!skey_eval(&k->kids[i], e))
				return 0;
		return 1;
	}
	return 0;
}

static void
work_search(struct imap_session *sess, struct buf *out)
{
	struct cmd_job *j = sess->job;
	struct skey *k = j->data;
	buf_append_str(out, "* SEARCH");
	for (size_t i = 0; i < sess->snap.n; i++) {
		struct seval e = { sess, i, NULL, 0, 0 };
		if (skey_eval(k, &e)) {
			if (j->uid)
				buf_appendf(out, " %u", sess->snap.msgs[i].uid);
			else
				buf_appendf(out, " %zu", i + 1);
		}
		free(e.raw);
	}
	buf_appendf(out, "\r\n%s OK %sSEARCH completed\r\n", j->cmd.tag, j->uid ? "UID " : "");
}

static void
skey_free_void(void *k)
{
	skey_free(k);
}

int
imap_cmd_search(struct imap_session *sess, struct imap_cmd *cmd, int uid)
{
	size_t first = 0;
	if (cmd->nargs >= 2 && cmd->args[0].type == IMAP_ARG_ATOM &&
	    strcasecmp(cmd->args[0].str, "CHARSET") == 0) {
		const char *cs = cmd->args[1].str;
		if (!imap_arg_is_string(&cmd->args[1]))
			return -1;
		if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
			imap_session_printf(sess, "%s NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported "
			    "charset\r\n", cmd->tag);
			return 0;
		}
		first = 2;
	}
	struct skey *k = xcalloc(1, sizeof(*k));
	if (skey_parse_list(cmd->args + first, cmd->nargs - first, k, 0) < 0) {
		skey_free(k);
		free(k);
		return -1;
	}
	imap_cmd_job_start(sess, cmd, uid, NULL, k, skey_free_void, work_search, NULL);
	return 1;
}
