/*
 * milter.c — the Sendmail milter protocol, version 6, client side (see
 * milter.h).
 *
 * One conversation per milter and message, replayed at the end of data:
 *
 *   OPTNEG → CONNECT → HELO → MAIL → RCPT… → DATA → HEADER… → EOH → BODY… → EOB → QUIT
 *
 * Each step is sent unless the milter asked to skip it (SMFIP_NO*), and its
 * reply awaited unless the milter said it sends none (SMFIP_NR_*).  Every
 * packet is a 4-byte big-endian length (command byte included), the command
 * byte and its data.  Macros (SMFIC_MACRO) go before the command they belong
 * to.  A reply other than continue ends the conversation early: accept
 * (nothing more to do), reject, tempfail, discard or a reply code.  At EOB
 * the milter may first send modifications (add/insert/change header,
 * replace body, quarantine, recipient and sender changes), then its final
 * word.  Header and body changes are applied to one milter_doc shared by
 * all the milters, so milter 2 sees what milter 1 did; recipient changes and
 * CHGFROM are logged and ignored (the envelope is fixed once the client has
 * sent it).
 *
 * Every read waits at most [hygiene] milter_timeout (SMFIR_PROGRESS restarts
 * the clock); a packet longer than MILTER_PACKET_MAX, an unknown reply, a
 * reply not legal in the current state, a closed connection or a timeout is
 * a failure of that milter (stage returns -1, milter.on_failure decides).
 */
#include "hygiene/milter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "hygiene/hygiene.h"
#include "hygiene/milter_doc.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/netaddr.h"
#include "lib/netio.h"
#include "lib/strutil.h"

#define MILTER_VERSION      6
#define MILTER_CHUNK        65535          /* SMFIC_BODY data per packet */
#define MILTER_PACKET_MAX   (1024 * 1024)  /* anything a milter sends us */
#define MILTER_MODS_MAX     1000           /* modifications per message */
#define MILTER_LIST_MAX     16             /* milters in [hygiene] milters */
#define MILTER_REPLY_MAX    512            /* SMFIR_REPLYCODE text */

/* Commands (MTA → milter). */
enum {
	SMFIC_ABORT = 'A', SMFIC_BODY = 'B', SMFIC_CONNECT = 'C', SMFIC_MACRO = 'D',
	SMFIC_BODYEOB = 'E', SMFIC_HELO = 'H', SMFIC_HEADER = 'L', SMFIC_MAIL = 'M',
	SMFIC_EOH = 'N', SMFIC_OPTNEG = 'O', SMFIC_QUIT = 'Q', SMFIC_RCPT = 'R',
	SMFIC_DATA = 'T',
};

/* Replies (milter → MTA). */
enum {
	SMFIR_ADDRCPT = '+', SMFIR_DELRCPT = '-', SMFIR_ADDRCPT_PAR = '2', SMFIR_SHUTDOWN = '4',
	SMFIR_ACCEPT = 'a', SMFIR_REPLBODY = 'b', SMFIR_CONTINUE = 'c', SMFIR_DISCARD = 'd',
	SMFIR_CHGFROM = 'e', SMFIR_CONN_FAIL = 'f', SMFIR_ADDHEADER = 'h', SMFIR_INSHEADER = 'i',
	SMFIR_CHGHEADER = 'm', SMFIR_PROGRESS = 'p', SMFIR_QUARANTINE = 'q', SMFIR_REJECT = 'r',
	SMFIR_SKIP = 's', SMFIR_TEMPFAIL = 't', SMFIR_REPLYCODE = 'y',
};

/* Actions the milter may take (SMFIF_*). */
#define SMFIF_ADDHDRS     0x001u
#define SMFIF_CHGBODY     0x002u
#define SMFIF_ADDRCPT     0x004u
#define SMFIF_DELRCPT     0x008u
#define SMFIF_CHGHDRS     0x010u
#define SMFIF_QUARANTINE  0x020u
#define SMFIF_CHGFROM     0x040u
#define SMFIF_ADDRCPT_PAR 0x080u
#define SMFIF_SETSYMLIST  0x100u
#define MILTER_ACTIONS    0x1ffu

/* Protocol steps the milter may skip or not answer (SMFIP_*). */
#define SMFIP_NOCONNECT   0x000001u
#define SMFIP_NOHELO      0x000002u
#define SMFIP_NOMAIL      0x000004u
#define SMFIP_NORCPT      0x000008u
#define SMFIP_NOBODY      0x000010u
#define SMFIP_NOHDRS      0x000020u
#define SMFIP_NOEOH       0x000040u
#define SMFIP_NR_HDR      0x000080u
#define SMFIP_NOUNKNOWN   0x000100u
#define SMFIP_NODATA      0x000200u
#define SMFIP_SKIP        0x000400u
#define SMFIP_RCPT_REJ    0x000800u
#define SMFIP_NR_CONN     0x001000u
#define SMFIP_NR_HELO     0x002000u
#define SMFIP_NR_MAIL     0x004000u
#define SMFIP_NR_RCPT     0x008000u
#define SMFIP_NR_DATA     0x010000u
#define SMFIP_NR_UNKN     0x020000u
#define SMFIP_NR_EOH      0x040000u
#define SMFIP_NR_BODY     0x080000u
#define SMFIP_HDR_LEADSPC 0x100000u
#define MILTER_PROTOCOL   0x1fffffu   /* everything above: we support it all */

enum milter_state {
	MST_OPTNEG, MST_CONNECT, MST_HELO, MST_MAIL, MST_RCPT, MST_DATA, MST_HEADER, MST_EOH,
	MST_BODY, MST_EOB, MST_DONE,
};

static const char *const state_names[] = {
	"optneg", "connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eob", "done",
};

/* How the conversation ended. */
enum milter_outcome {
	MO_CONTINUE,   /* every step passed */
	MO_ACCEPT,
	MO_REJECT,
	MO_TEMPFAIL,
	MO_DISCARD,
	MO_REPLYCODE,  /* reply holds the milter's text */
};

static const char *const outcome_names[] = {
	"continue", "accept", "reject", "tempfail", "discard", "replycode",
};

struct milter_conn {
	const char *name;                 /* the spec, for logs and reasons */
	const struct hygiene_msg *m;
	struct milter_doc *doc;
	int fd;
	int timeout_ms;
	uint32_t actions;                 /* negotiated SMFIF_* */
	uint32_t pflags;                  /* negotiated SMFIP_* */
	enum milter_state state;
	size_t rcpt_i, hdr_i, body_off;
	size_t rcpts_rejected;
	enum milter_outcome outcome;
	char *reply;                      /* SMFIR_REPLYCODE text (malloc'd) */
	char *quarantine;                 /* SMFIR_QUARANTINE reason (malloc'd) */
	size_t mods;
	struct buf newbody;               /* SMFIR_REPLBODY chunks */
	int replbody;
	struct buf pkt;                   /* the last packet read (data only) */
	char cmd;                         /* its command byte */
	char *err;
};

/* ------------------------------------------------------------------ I/O */

static int
io_write(struct milter_conn *c, const void *data, size_t len)
{
	return netio_write_all(c->fd, data, len, netio_now_ms() + c->timeout_ms);
}

static int
conn_fail(struct milter_conn *c, const char *what)
{
	if (c->err == NULL)
		c->err = buf_printf("%s in state %s: %s", what, state_names[c->state],
		    errno != 0 ? strerror(errno) : "protocol error");
	return -1;
}

static int
proto_fail(struct milter_conn *c, const char *what)
{
	errno = 0;
	return conn_fail(c, what);
}

static int
send_packet(struct milter_conn *c, char cmd, const void *data, size_t len)
{
	unsigned char hdr[5];
	uint32_t n = htonl((uint32_t)len + 1);
	memcpy(hdr, &n, 4);
	hdr[4] = (unsigned char)cmd;
	if (io_write(c, hdr, 5) < 0 || (len > 0 && io_write(c, data, len) < 0))
		return conn_fail(c, "write");
	return 0;
}

/* Reads one packet into c->cmd / c->pkt. */
static int
read_packet(struct milter_conn *c)
{
	int64_t deadline = netio_now_ms() + c->timeout_ms;
	uint32_t n;
	if (netio_read_full(c->fd, &n, 4, deadline) < 0)
		return conn_fail(c, "read");
	n = ntohl(n);
	if (n < 1 || n > MILTER_PACKET_MAX)
		return proto_fail(c, "bad packet length");
	if (netio_read_full(c->fd, &c->cmd, 1, deadline) < 0)
		return conn_fail(c, "read");
	buf_reset(&c->pkt);
	buf_reserve(&c->pkt, n);
	if (n > 1 && netio_read_full(c->fd, c->pkt.data, n - 1, deadline) < 0)
		return conn_fail(c, "read");
	c->pkt.len = n - 1;
	buf_cstr(&c->pkt);
	return 0;
}

/* ------------------------------------------------------------ connecting */

/* "HOST:PORT", "[V6]:PORT" or, as opendkim writes it, "PORT@HOST". */
static int
connect_inet(const char *spec, int64_t deadline_ms)
{
	char host[256], port[16];
	int portnum;
	const char *at = strchr(spec, '@');
	if (at != NULL) {
		if ((size_t)(at - spec) >= sizeof(port) || strlen(at + 1) >= sizeof(host))
			goto bad;
		memcpy(port, spec, (size_t)(at - spec));
		port[at - spec] = '\0';
		memcpy(host, at + 1, strlen(at + 1) + 1);
	} else {
		if (netaddr_parse_hostport(spec, host, sizeof(host), &portnum) < 0)
			goto bad;
		snprintf(port, sizeof(port), "%d", portnum);
	}
	return netio_connect_tcp(host, port, deadline_ms, NULL);
bad:
	errno = EINVAL;
	return -1;
}

static int
milter_connect(const char *spec, int timeout_ms)
{
	int64_t deadline_ms = netio_now_ms() + timeout_ms;
	size_t n;
	if ((n = str_prefix_ci(spec, "unix:")) > 0 || (n = str_prefix_ci(spec, "local:")) > 0)
		return netio_connect_unix(spec + n, deadline_ms);
	if ((n = str_prefix_ci(spec, "inet:")) > 0 || (n = str_prefix_ci(spec, "inet6:")) > 0)
		return connect_inet(spec + n, deadline_ms);
	if (spec[0] == '/')
		return netio_connect_unix(spec, deadline_ms);
	errno = EINVAL;
	return -1;
}

/* ------------------------------------------------------------ sending */

static void
put_u32(struct buf *b, uint32_t v)
{
	uint32_t n = htonl(v);
	buf_append(b, &n, 4);
}

static void
put_str(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s) + 1);
}

/* SMFIC_MACRO for the command `cmd`: NULL-terminated name/value pairs
 * (pairs whose value is NULL are left out). */
static int
send_macros(struct milter_conn *c, char cmd, const char *const *kv)
{
	struct buf b = BUF_INIT;
	buf_append_char(&b, cmd);
	for (size_t i = 0; kv[i] != NULL; i += 2)
		if (kv[i + 1] != NULL) {
			put_str(&b, kv[i]);
			put_str(&b, kv[i + 1]);
		}
	int rc = send_packet(c, SMFIC_MACRO, b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
send_optneg(struct milter_conn *c)
{
	struct buf b = BUF_INIT;
	put_u32(&b, MILTER_VERSION);
	put_u32(&b, MILTER_ACTIONS);
	put_u32(&b, MILTER_PROTOCOL);
	int rc = send_packet(c, SMFIC_OPTNEG, b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
send_connect(struct milter_conn *c)
{
	const struct hygiene_msg *m = c->m;
	const struct config *cfg = hygiene_config(m->h);
	char host[128];
	snprintf(host, sizeof(host), "[%s]", m->client_ip);
	const char *kv[] = { "j", cfg->hostname, "{daemon_name}", "mailark",
		"{client_addr}", m->client_ip, "_", host, NULL };
	if (send_macros(c, SMFIC_CONNECT, kv) < 0)
		return -1;
	struct buf b = BUF_INIT;
	unsigned char a6[16];
	struct in_addr a4;
	char family = 'U';                          /* SMFIA_UNKNOWN: "local" */
	if (inet_pton(AF_INET, m->client_ip, &a4) == 1)
		family = '4';
	else if (inet_pton(AF_INET6, m->client_ip, a6) == 1)
		family = '6';
	put_str(&b, host);
	buf_append_char(&b, family);
	if (family != 'U') {
		buf_append(&b, "\0\0", 2);          /* the client's port: not kept */
		put_str(&b, m->client_ip);
	}
	int rc = send_packet(c, SMFIC_CONNECT, b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
send_string_cmd(struct milter_conn *c, char cmd, const char *s)
{
	return send_packet(c, cmd, s, strlen(s) + 1);
}

static int
send_mail(struct milter_conn *c)
{
	const struct hygiene_msg *m = c->m;
	const char *kv[] = { "i", m->qid, "{auth_authen}", m->auth_user,
		"{mail_addr}", m->sender, NULL };
	if (send_macros(c, SMFIC_MAIL, kv) < 0)
		return -1;
	char *arg = buf_printf("<%s>", m->sender);
	int rc = send_string_cmd(c, SMFIC_MAIL, arg);
	free(arg);
	return rc;
}

static int
send_rcpt(struct milter_conn *c)
{
	const char *rcpt = c->m->rcpts[c->rcpt_i];
	const char *kv[] = { "{rcpt_addr}", rcpt, NULL };
	if (send_macros(c, SMFIC_RCPT, kv) < 0)
		return -1;
	char *arg = buf_printf("<%s>", rcpt);
	int rc = send_string_cmd(c, SMFIC_RCPT, arg);
	free(arg);
	return rc;
}

/* The next header field with a name, from c->hdr_i on; d->n when none. */
static size_t
next_named(const struct milter_conn *c, size_t i)
{
	while (i < c->doc->n && c->doc->f[i].name == NULL)
		i++;
	return i;
}

static int
send_header(struct milter_conn *c)
{
	struct buf b = BUF_INIT;
	char *v = milter_doc_value(c->doc, c->hdr_i, (c->pflags & SMFIP_HDR_LEADSPC) != 0);
	put_str(&b, c->doc->f[c->hdr_i].name);
	put_str(&b, v);
	free(v);
	int rc = send_packet(c, SMFIC_HEADER, b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
send_qid_cmd(struct milter_conn *c, char cmd)
{
	const char *kv[] = { "i", c->m->qid, NULL };
	if (send_macros(c, cmd, kv) < 0)
		return -1;
	return send_packet(c, cmd, NULL, 0);
}

static int
send_body_chunk(struct milter_conn *c)
{
	size_t n = c->doc->body.len - c->body_off;
	if (n > MILTER_CHUNK)
		n = MILTER_CHUNK;
	int rc = send_packet(c, SMFIC_BODY, c->doc->body.data + c->body_off, n);
	c->body_off += n;
	return rc;
}

/* ------------------------------------------------------------ replies */

/* The NUL-terminated string at *off in the packet; NULL when there is none. */
static const char *
pkt_str(struct milter_conn *c, size_t *off)
{
	if (*off >= c->pkt.len)
		return NULL;
	const char *s = c->pkt.data + *off;
	const char *nul = memchr(s, '\0', c->pkt.len - *off);
	if (nul == NULL)
		return NULL;
	*off += (size_t)(nul - s) + 1;
	return s;
}

static int
pkt_u32(struct milter_conn *c, size_t *off, uint32_t *v_r)
{
	if (c->pkt.len - *off < 4 || *off > c->pkt.len)
		return -1;
	uint32_t n;
	memcpy(&n, c->pkt.data + *off, 4);
	*v_r = ntohl(n);
	*off += 4;
	return 0;
}

/* Takes the milter's final word (reject, tempfail, discard, reply code). */
static void
set_outcome(struct milter_conn *c, enum milter_outcome o)
{
	c->outcome = o;
	if (o == MO_REPLYCODE) {
		free(c->reply);
		c->reply = xstrndup(c->pkt.data, c->pkt.len);
	}
}

/* A terminal reply legal at any step: 1 taken, 0 not one of those. */
static int
take_terminal(struct milter_conn *c)
{
	switch (c->cmd) {
	case SMFIR_ACCEPT:
		set_outcome(c, MO_ACCEPT);
		return 1;
	case SMFIR_REJECT:
		set_outcome(c, MO_REJECT);
		return 1;
	case SMFIR_TEMPFAIL:
	case SMFIR_CONN_FAIL:
	case SMFIR_SHUTDOWN:
		set_outcome(c, MO_TEMPFAIL);
		return 1;
	case SMFIR_DISCARD:
		set_outcome(c, MO_DISCARD);
		return 1;
	case SMFIR_REPLYCODE:
		set_outcome(c, MO_REPLYCODE);
		return 1;
	default:
		return 0;
	}
}

/* Reads replies until one that is not "progress". */
static int
read_reply(struct milter_conn *c)
{
	do {
		if (read_packet(c) < 0)
			return -1;
	} while (c->cmd == SMFIR_PROGRESS);
	return 0;
}

/* Waits for the answer to a step; continue moves to `next`. */
static int
await(struct milter_conn *c, enum milter_state next)
{
	if (read_reply(c) < 0)
		return -1;
	if (c->cmd == SMFIR_CONTINUE) {
		c->state = next;
		return 0;
	}
	if (c->cmd == SMFIR_SKIP && c->state == MST_BODY && (c->pflags & SMFIP_SKIP) != 0) {
		c->state = MST_EOB;
		return 0;
	}
	if (take_terminal(c)) {
		c->state = MST_DONE;
		return 0;
	}
	return proto_fail(c, "unexpected reply");
}

typedef int step_send_fn(struct milter_conn *c);

/* Sends one step unless skipped, and waits for its reply unless told not to. */
static int
simple_step(struct milter_conn *c, uint32_t skip, uint32_t noreply, step_send_fn *send,
    enum milter_state next)
{
	if ((c->pflags & skip) != 0) {
		c->state = next;
		return 0;
	}
	if (send(c) < 0)
		return -1;
	if ((c->pflags & noreply) != 0) {
		c->state = next;
		return 0;
	}
	return await(c, next);
}

static int
step_optneg(struct milter_conn *c)
{
	if (send_optneg(c) < 0 || read_reply(c) < 0)
		return -1;
	size_t off = 0;
	uint32_t version, actions, pflags;
	if (c->cmd != SMFIC_OPTNEG || pkt_u32(c, &off, &version) < 0 ||
	    pkt_u32(c, &off, &actions) < 0 || pkt_u32(c, &off, &pflags) < 0)
		return proto_fail(c, "bad option negotiation");
	if (version < 2 || version > MILTER_VERSION)
		return proto_fail(c, "unsupported milter version");
	if ((pflags & ~MILTER_PROTOCOL) != 0)
		return proto_fail(c, "milter wants protocol steps we do not offer");
	/* Any macro lists after the three words (SMFIF_SETSYMLIST) are ignored:
	 * we send the macros opendkim and clamav-milter look at, always. */
	c->actions = actions & MILTER_ACTIONS;
	c->pflags = pflags;
	c->state = MST_CONNECT;
	return 0;
}

static int
send_helo(struct milter_conn *c)
{
	const char *helo = c->m->client_helo != NULL ? c->m->client_helo : c->m->client_ip;
	return send_string_cmd(c, SMFIC_HELO, helo);
}

static int
send_data(struct milter_conn *c)
{
	return send_qid_cmd(c, SMFIC_DATA);
}

static int
send_eoh(struct milter_conn *c)
{
	return send_qid_cmd(c, SMFIC_EOH);
}

/* Recipients one by one; a rejected one is counted, all rejected ends it. */
static int
step_rcpt(struct milter_conn *c)
{
	if (c->rcpt_i >= c->m->nrcpts || (c->pflags & SMFIP_NORCPT) != 0) {
		c->state = MST_DATA;
		if (c->m->nrcpts > 0 && c->rcpts_rejected == c->m->nrcpts)
			c->state = MST_DONE;
		return 0;
	}
	if (send_rcpt(c) < 0)
		return -1;
	c->rcpt_i++;
	if ((c->pflags & SMFIP_NR_RCPT) != 0)
		return 0;
	if (read_reply(c) < 0)
		return -1;
	if (c->cmd == SMFIR_CONTINUE)
		return 0;
	if (c->cmd == SMFIR_ACCEPT) {
		set_outcome(c, MO_ACCEPT);
		c->state = MST_DONE;
		return 0;
	}
	if (take_terminal(c)) {
		/* this recipient refused; the message goes on for the others */
		c->rcpts_rejected++;
		if (c->outcome == MO_DISCARD) {
			c->state = MST_DONE;
			return 0;
		}
		if (c->rcpts_rejected < c->m->nrcpts)
			c->outcome = MO_CONTINUE;
		return 0;
	}
	return proto_fail(c, "unexpected reply");
}

static int
step_header(struct milter_conn *c)
{
	c->hdr_i = next_named(c, c->hdr_i);
	if ((c->pflags & SMFIP_NOHDRS) != 0 || c->hdr_i >= c->doc->n) {
		c->state = MST_EOH;
		return 0;
	}
	if (send_header(c) < 0)
		return -1;
	c->hdr_i++;
	if ((c->pflags & SMFIP_NR_HDR) != 0)
		return 0;
	return await(c, MST_HEADER);
}

static int
step_body(struct milter_conn *c)
{
	if ((c->pflags & SMFIP_NOBODY) != 0 || c->body_off >= c->doc->body.len) {
		c->state = MST_EOB;
		return 0;
	}
	if (send_body_chunk(c) < 0)
		return -1;
	if ((c->pflags & SMFIP_NR_BODY) != 0)
		return 0;
	return await(c, MST_BODY);
}

/* ------------------------------------------------------- end of message */

/* A header value from a milter may fold lines, never start a new field or
 * end the header: every line break (CRLF, LF or CR) is followed by a blank. */
static int
value_ok(const char *v)
{
	for (const char *p = v; *p != '\0'; p++) {
		if (*p != '\r' && *p != '\n')
			continue;
		if (p[0] == '\r' && p[1] == '\n')
			p++;
		if (p[1] != ' ' && p[1] != '\t')
			return 0;
	}
	return 1;
}

/* Header edits: SMFIR_ADDHEADER (no index), INSHEADER and CHGHEADER (index first). */
static int
take_header_mod(struct milter_conn *c)
{
	size_t off = 0;
	uint32_t idx = 0;
	if (c->cmd != SMFIR_ADDHEADER && pkt_u32(c, &off, &idx) < 0)
		return proto_fail(c, "short header modification");
	const char *name = pkt_str(c, &off);
	const char *value = pkt_str(c, &off);
	if (name == NULL || value == NULL)
		return proto_fail(c, "malformed header modification");
	uint32_t need = c->cmd == SMFIR_CHGHEADER ? SMFIF_CHGHDRS : SMFIF_ADDHDRS;
	if ((c->actions & need) == 0 || !milter_doc_name_ok(name) || !value_ok(value)) {
		log_warn("milter_mod_ignored", "id=%s milter=%s cmd=%c name=%s", c->m->qid,
		    log_str(c->name), c->cmd, log_str(name));
		return 0;
	}
	char *v = (c->pflags & SMFIP_HDR_LEADSPC) != 0 ? xstrdup(value) : buf_printf(" %s", value);
	if (c->cmd == SMFIR_ADDHEADER)
		milter_doc_add(c->doc, name, v);
	else if (c->cmd == SMFIR_INSHEADER)
		milter_doc_insert(c->doc, idx, name, v);
	else
		milter_doc_change(c->doc, idx, name, value[0] == '\0' ? "" : v);
	free(v);
	return 0;
}

static int
take_body_chunk(struct milter_conn *c)
{
	if ((c->actions & SMFIF_CHGBODY) == 0)
		return proto_fail(c, "body replaced without the action negotiated");
	const struct config *cfg = hygiene_config(c->m->h);
	uint64_t max = cfg->max_message_size + MILTER_PACKET_MAX;
	if (c->newbody.len + c->pkt.len > max)
		return proto_fail(c, "replacement body too large");
	buf_append(&c->newbody, c->pkt.data, c->pkt.len);
	c->replbody = 1;
	return 0;
}

/* One reply after SMFIC_BODYEOB: a modification (0, go on reading), the
 * final word (1) or trouble (-1). */
static int
take_eob_reply(struct milter_conn *c)
{
	if (c->cmd == SMFIR_CONTINUE) {
		set_outcome(c, MO_CONTINUE);
		return 1;
	}
	if (take_terminal(c))
		return 1;
	if (++c->mods > MILTER_MODS_MAX)
		return proto_fail(c, "too many modifications");
	switch (c->cmd) {
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		return take_header_mod(c);
	case SMFIR_REPLBODY:
		return take_body_chunk(c);
	case SMFIR_QUARANTINE:
		free(c->quarantine);
		c->quarantine = xstrndup(c->pkt.data, c->pkt.len);
		return 0;
	case SMFIR_ADDRCPT:
	case SMFIR_DELRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_CHGFROM:
		/* The envelope was fixed when the client sent it; say what we skip. */
		log_info("milter_envelope_change_ignored", "id=%s milter=%s cmd=%c arg=%s",
		    c->m->qid, log_str(c->name), c->cmd, log_strn(c->pkt.data, c->pkt.len));
		return 0;
	default:
		return proto_fail(c, "unexpected reply at end of message");
	}
}

static int
step_eob(struct milter_conn *c)
{
	if (send_qid_cmd(c, SMFIC_BODYEOB) < 0)
		return -1;
	for (;;) {
		if (read_reply(c) < 0)
			return -1;
		int rc = take_eob_reply(c);
		if (rc < 0)
			return -1;
		if (rc > 0)
			break;
	}
	if (c->replbody && (c->outcome == MO_CONTINUE || c->outcome == MO_ACCEPT))
		milter_doc_set_body(c->doc, c->newbody.data, c->newbody.len);
	c->state = MST_DONE;
	return 0;
}

static int
run_step(struct milter_conn *c)
{
	switch (c->state) {
	case MST_OPTNEG:
		return step_optneg(c);
	case MST_CONNECT:
		return simple_step(c, SMFIP_NOCONNECT, SMFIP_NR_CONN, send_connect, MST_HELO);
	case MST_HELO:
		return simple_step(c, SMFIP_NOHELO, SMFIP_NR_HELO, send_helo, MST_MAIL);
	case MST_MAIL:
		return simple_step(c, SMFIP_NOMAIL, SMFIP_NR_MAIL, send_mail, MST_RCPT);
	case MST_RCPT:
		return step_rcpt(c);
	case MST_DATA:
		return simple_step(c, SMFIP_NODATA, SMFIP_NR_DATA, send_data, MST_HEADER);
	case MST_HEADER:
		return step_header(c);
	case MST_EOH:
		return simple_step(c, SMFIP_NOEOH, SMFIP_NR_EOH, send_eoh, MST_BODY);
	case MST_BODY:
		return step_body(c);
	case MST_EOB:
		return step_eob(c);
	case MST_DONE:
		break;
	}
	return 0;
}

/* ------------------------------------------------------------ verdicts */

/* "550 5.7.1 text": a 4xx/5xx code, one printable line. */
static int
replycode_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 3 || n > MILTER_REPLY_MAX || (s[0] != '4' && s[0] != '5'))
		return 0;
	if (s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' || (s[3] != '\0' && s[3] != ' '))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < ' ' || s[i] == 127)
			return 0;
	return 1;
}

static void
outcome_to_result(struct milter_conn *c, struct hygiene_result *r)
{
	switch (c->outcome) {
	case MO_CONTINUE:
	case MO_ACCEPT:
		if (c->quarantine != NULL)
			hygiene_result_raise(r, HYGIENE_QUARANTINE, NULL, "milter:%s:quarantine",
			    c->name);
		break;
	case MO_REJECT:
		hygiene_result_raise(r, HYGIENE_REJECT, "550 5.7.1 Message rejected by filter",
		    "milter:%s:reject", c->name);
		break;
	case MO_TEMPFAIL:
		hygiene_result_raise(r, HYGIENE_DEFER,
		    "451 4.7.1 Message temporarily rejected by filter", "milter:%s:tempfail", c->name);
		break;
	case MO_DISCARD:
		hygiene_result_raise(r, HYGIENE_QUARANTINE, NULL, "milter:%s:quarantine", c->name);
		break;
	case MO_REPLYCODE: {
		size_t n = strlen(c->reply);
		while (n > 0 && (c->reply[n - 1] == '\r' || c->reply[n - 1] == '\n'))
			c->reply[--n] = '\0';
		const char *text = c->reply;
		int temp = text[0] == '4';
		if (!replycode_ok(text))
			text = temp ? "451 4.7.1 Message temporarily rejected by filter"
			    : "550 5.7.1 Message rejected by filter";
		hygiene_result_raise(r, temp ? HYGIENE_DEFER : HYGIENE_REJECT, text,
		    "milter:%s:%s", c->name, temp ? "tempfail" : "reject");
		break;
	}
	}
}

/* One milter, the whole conversation.  0, or -1 + *err_r when it failed. */
static int
milter_run(const char *spec, const struct hygiene_msg *m, struct milter_doc *doc,
    struct hygiene_result *r, char **err_r)
{
	const struct config *cfg = hygiene_config(m->h);
	uint64_t t = cfg->milter_timeout > 0 ? cfg->milter_timeout : 30;
	struct milter_conn c;
	memset(&c, 0, sizeof(c));
	c.name = spec;
	c.m = m;
	c.doc = doc;
	c.timeout_ms = (int)(t > 3600 ? 3600000 : t * 1000);
	c.fd = milter_connect(spec, c.timeout_ms);
	int rc = 0;
	if (c.fd < 0) {
		err_setf(err_r, "milter %s: connect: %s", spec, strerror(errno));
		return -1;
	}
	while (c.state != MST_DONE) {
		enum milter_state was = c.state;
		if (run_step(&c) < 0) {
			err_setf(err_r, "milter %s: %s", spec, c.err);
			rc = -1;
			break;
		}
		if (c.state != was)
			log_debug("milter_state", "id=%s milter=%s from=%s to=%s", m->qid,
			    log_str(spec), state_names[was], state_names[c.state]);
	}
	if (rc == 0) {
		(void)send_packet(&c, SMFIC_QUIT, NULL, 0);
		outcome_to_result(&c, r);
		log_info("milter", "id=%s milter=%s result=%s mods=%zu%s", m->qid, log_str(spec),
		    outcome_names[c.outcome], c.mods, c.quarantine != NULL ? " quarantine=yes" : "");
	}
	close(c.fd);
	free(c.reply);
	free(c.quarantine);
	free(c.err);
	buf_free(&c.newbody);
	buf_free(&c.pkt);
	return rc;
}

int
milter_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	const struct config *cfg = hygiene_config(m->h);
	if (!m->pol->milter_enabled || cfg->milters == NULL || cfg->milters[0] == '\0')
		return 0;
	const unsigned char *data;
	size_t len;
	hygiene_result_content(m, r, &data, &len);
	struct milter_doc doc;
	milter_doc_parse(&doc, data, len);
	char *list = xstrdup(cfg->milters), *save = NULL;
	int failed = 0, count = 0;
	for (char *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *spec = str_trim(tok);
		if (spec[0] == '\0')
			continue;
		if (++count > MILTER_LIST_MAX)
			break;
		char *err = NULL;
		if (milter_run(spec, m, &doc, r, &err) < 0) {
			log_warn("milter_failed", "id=%s milter=%s error=%s", m->qid, log_str(spec),
			    log_str(err));
			if (!failed)
				*err_r = err;
			else
				free(err);
			failed = 1;
			if (m->pol->milter_on_failure == POLICY_FAIL_CLOSED)
				break;
			continue;
		}
		if (r->action >= HYGIENE_DEFER)
			break;
	}
	if (doc.changed && r->action < HYGIENE_DEFER) {
		size_t n;
		unsigned char *out = milter_doc_render(&doc, &n);
		hygiene_result_rewrite(r, out, n);
	}
	milter_doc_free(&doc);
	free(list);
	return failed ? -1 : 0;
}
