/*
 * NAME
 *	queue_file - encode and decode queue files and state logs
 * DESCRIPTION
 *	See queue_file.h for the layout.  Every length read from disk is
 *	checked against the file size before anything is allocated.
 */
#include "queue/queue_file.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/strutil.h"
#include "queue/queue.h"

#define QFILE_MAX_ENV (64u * 1024 * 1024)
#define QFILE_MAX_RCPTS 1000000

enum qrec_type {
	QREC_VERSION = 'V',
	QREC_ID = 'I',
	QREC_DIRECTION = 'D',
	QREC_TENANT = 'T',
	QREC_SENDER = 'S',
	QREC_ENVID = 'E',
	QREC_FLAGS = 'F',
	QREC_CLIENT = 'C',
	QREC_HELO = 'H',
	QREC_ARRIVAL = 'A',
	QREC_RCPT = 'R',
	QREC_ORCPT = 'O',
	QREC_NOTIFY = 'N',
	QREC_AUTH_USER = 'U',
	QREC_EFLAGS = 'G',
};

static const char qfile_magic[5] = { 'M', 'Q', 'E', 'N', 'D' };

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t
qfile_crc32(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void
put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void
rec_put(struct buf *out, int type, const char *data, size_t len)
{
	unsigned char hdr[5];
	hdr[0] = (unsigned char)type;
	put_le(hdr + 1, len, 4);
	buf_append(out, hdr, sizeof(hdr));
	buf_append(out, data, len);
}

static void
rec_put_str(struct buf *out, int type, const char *s)
{
	if (s != NULL)
		rec_put(out, type, s, strlen(s));
}

static void
rec_put_num(struct buf *out, int type, long long v)
{
	char num[32];
	int n = snprintf(num, sizeof(num), "%lld", v);
	rec_put(out, type, num, (size_t)n);
}

void
qfile_encode_envelope(const struct queue_envelope *env, struct buf *out)
{
	char flags[4] = { env->ret_hdrs ? 'r' : '-', env->smtputf8 ? 'u' : '-',
		env->body_8bit ? '8' : '-', '\0' };
	rec_put_num(out, QREC_VERSION, QFILE_VERSION);
	rec_put_str(out, QREC_ID, env->id);
	rec_put_num(out, QREC_DIRECTION, env->direction);
	rec_put_str(out, QREC_TENANT, env->tenant);
	rec_put_str(out, QREC_SENDER, env->sender != NULL ? env->sender : "");
	rec_put_str(out, QREC_ENVID, env->envid);
	rec_put_str(out, QREC_FLAGS, flags);
	rec_put_str(out, QREC_CLIENT, env->client_addr);
	rec_put_str(out, QREC_HELO, env->client_helo);
	rec_put_str(out, QREC_AUTH_USER, env->auth_user);
	if (env->flags != 0)
		rec_put_num(out, QREC_EFLAGS, env->flags);
	rec_put_num(out, QREC_ARRIVAL, (long long)env->arrival);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		rec_put_str(out, QREC_RCPT, r->addr);
		rec_put_str(out, QREC_ORCPT, r->orcpt);
		rec_put_num(out, QREC_NOTIFY, r->notify);
	}
}

void
qfile_encode_end(uint64_t body_size, uint32_t env_len, uint32_t crc, struct buf *out)
{
	unsigned char end[QFILE_END_SIZE];
	memset(end, 0, sizeof(end));
	memcpy(end, qfile_magic, sizeof(qfile_magic));
	end[5] = QFILE_VERSION;
	put_le(end + 8, env_len, 4);
	put_le(end + 12, body_size, 8);
	put_le(end + 20, crc, 4);
	put_le(end + 24, qfile_crc32(0, end, 24), 4);
	buf_append(out, end, sizeof(end));
}

static int
read_at(int fd, void *p, size_t len, off_t off)
{
	char *c = p;
	while (len > 0) {
		ssize_t n = pread(fd, c, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Checks the END record and the checksum; fills the envelope bytes. */
static int
qfile_check(int fd, uint64_t *body_size_r, struct buf *env, const char **why_r)
{
	struct stat st;
	unsigned char end[QFILE_END_SIZE];
	if (fstat(fd, &st) < 0 || st.st_size < QFILE_END_SIZE) {
		*why_r = "too short for an END record";
		return -1;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (read_at(fd, end, sizeof(end), (off_t)(size - QFILE_END_SIZE)) < 0 ||
	    memcmp(end, qfile_magic, sizeof(qfile_magic)) != 0) {
		*why_r = "no END record";
		return -1;
	}
	if (get_le(end + 24, 4) != qfile_crc32(0, end, 24) || end[5] != QFILE_VERSION) {
		*why_r = "bad END record";
		return -1;
	}
	uint64_t env_len = get_le(end + 8, 4), body = get_le(end + 12, 8);
	if (env_len > QFILE_MAX_ENV || body > size || body + env_len + QFILE_END_SIZE != size) {
		*why_r = "lengths disagree with the file size";
		return -1;
	}
	uint32_t crc = 0;
	char chunk[65536];
	for (uint64_t off = 0; off < body; ) {
		size_t n = body - off < sizeof(chunk) ? (size_t)(body - off) : sizeof(chunk);
		if (read_at(fd, chunk, n, (off_t)off) < 0) {
			*why_r = "read error";
			return -1;
		}
		crc = qfile_crc32(crc, chunk, n);
		off += n;
	}
	buf_reserve(env, env_len + 1);
	if (read_at(fd, env->data, env_len, (off_t)body) < 0) {
		*why_r = "read error";
		return -1;
	}
	env->len = env_len;
	crc = qfile_crc32(crc, env->data, env_len);
	if (crc != get_le(end + 20, 4)) {
		*why_r = "checksum mismatch";
		return -1;
	}
	*body_size_r = body;
	return 0;
}

static int
parse_num(const char *s, size_t len, long long *v_r)
{
	char tmp[32];
	uint64_t v;
	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (tmp[0] == '-') {
		if (str_parse_u64(tmp + 1, &v) < 0)
			return -1;
		*v_r = -(long long)v;
		return 0;
	}
	if (str_parse_u64(tmp, &v) < 0)
		return -1;
	*v_r = (long long)v;
	return 0;
}

static void
set_str(char **dst, const char *s, size_t len)
{
	free(*dst);
	*dst = xstrndup(s, len);
}

/* Applies one envelope record; -1 when it makes no sense. */
static int
qfile_apply_rec(struct queue_envelope *env, int type, const char *d, size_t len)
{
	long long v;
	struct queue_rcpt *last = env->nrcpts > 0 ? &env->rcpts[env->nrcpts - 1] : NULL;
	switch (type) {
	case QREC_VERSION:
		return parse_num(d, len, &v) == 0 && v == QFILE_VERSION ? 0 : -1;
	case QREC_ID:
		if (len != ID_LEN)
			return -1;
		memcpy(env->id, d, ID_LEN);
		env->id[ID_LEN] = '\0';
		return 0;
	case QREC_DIRECTION:
		if (parse_num(d, len, &v) < 0 || v < QUEUE_INBOUND || v > QUEUE_BOUNCE)
			return -1;
		env->direction = (enum queue_direction)v;
		return 0;
	case QREC_TENANT: set_str(&env->tenant, d, len); return 0;
	case QREC_SENDER: set_str(&env->sender, d, len); return 0;
	case QREC_ENVID: set_str(&env->envid, d, len); return 0;
	case QREC_CLIENT: set_str(&env->client_addr, d, len); return 0;
	case QREC_HELO: set_str(&env->client_helo, d, len); return 0;
	case QREC_AUTH_USER: set_str(&env->auth_user, d, len); return 0;
	case QREC_EFLAGS:
		if (parse_num(d, len, &v) < 0 || v < 0 || v > 0xffff)
			return -1;
		env->flags = (unsigned)v;
		return 0;
	case QREC_FLAGS:
		if (len != 3)
			return -1;
		env->ret_hdrs = d[0] == 'r';
		env->smtputf8 = d[1] == 'u';
		env->body_8bit = d[2] == '8';
		return 0;
	case QREC_ARRIVAL:
		if (parse_num(d, len, &v) < 0)
			return -1;
		env->arrival = (time_t)v;
		return 0;
	case QREC_RCPT:
		if (env->nrcpts >= QFILE_MAX_RCPTS)
			return -1;
		env->rcpts = xrealloc(env->rcpts, (env->nrcpts + 1) * sizeof(*env->rcpts));
		memset(&env->rcpts[env->nrcpts], 0, sizeof(*env->rcpts));
		env->rcpts[env->nrcpts++].addr = xstrndup(d, len);
		return 0;
	case QREC_ORCPT:
		if (last == NULL)
			return -1;
		set_str(&last->orcpt, d, len);
		return 0;
	case QREC_NOTIFY:
		if (last == NULL || parse_num(d, len, &v) < 0 || v < 0 || v > 0xf)
			return -1;
		last->notify = (unsigned)v;
		return 0;
	default:
		return -1;
	}
}

static int
qfile_decode_envelope(const struct buf *b, struct queue_envelope *env, const char **why_r)
{
	size_t off = 0;
	int saw_version = 0;
	while (off < b->len) {
		if (b->len - off < 5) {
			*why_r = "truncated envelope record";
			return -1;
		}
		const unsigned char *p = (const unsigned char *)b->data + off;
		size_t len = (size_t)get_le(p + 1, 4);
		if (len > b->len - off - 5) {
			*why_r = "envelope record overruns";
			return -1;
		}
		if (!saw_version && p[0] != QREC_VERSION) {
			*why_r = "envelope does not start with a version record";
			return -1;
		}
		saw_version = 1;
		if (qfile_apply_rec(env, p[0], (const char *)p + 5, len) < 0) {
			*why_r = "bad envelope record";
			return -1;
		}
		off += 5 + len;
	}
	if (!saw_version || env->id[0] == '\0' || env->sender == NULL || env->nrcpts == 0) {
		*why_r = "incomplete envelope";
		return -1;
	}
	return 0;
}

int
qfile_load(int fd, struct queue_entry *e, const char **why_r)
{
	struct buf env = BUF_INIT;
	int rc = qfile_check(fd, &e->body_size, &env, why_r);
	if (rc == 0)
		rc = qfile_decode_envelope(&env, &e->env, why_r);
	buf_free(&env);
	return rc;
}

void
qstate_encode(enum qstate_type type, const char *payload, struct buf *out)
{
	size_t start = out->len;
	unsigned char crc[4];
	rec_put(out, type, payload, strlen(payload));
	put_le(crc, qfile_crc32(0, out->data + start, out->len - start), 4);
	buf_append(out, crc, sizeof(crc));
}

static void
qstate_apply_rcpt(struct queue_entry *e, const char *d, size_t len)
{
	char *s = xstrndup(d, len), *save = NULL;
	char *idx = strtok_r(s, "\t", &save), *state = strtok_r(NULL, "\t", &save);
	char *reply = save != NULL && *save != '\0' ? save : NULL;
	uint64_t i, st;
	if (idx != NULL && state != NULL && str_parse_u64(idx, &i) == 0 &&
	    str_parse_u64(state, &st) == 0 && i < e->env.nrcpts && st <= RCPT_DELETED) {
		struct queue_rcpt *r = &e->env.rcpts[i];
		r->state = (enum queue_rcpt_state)st;
		if (reply != NULL) {
			free(r->last_reply);
			r->last_reply = xstrdup(reply);
		}
	}
	free(s);
}

static void
qstate_apply_attempt(struct queue_entry *e, const char *d, size_t len)
{
	char *s = xstrndup(d, len), *save = NULL;
	char *a = strtok_r(s, "\t", &save), *n = strtok_r(NULL, "\t", &save);
	char *l = strtok_r(NULL, "\t", &save);
	uint64_t va, vn, vl;
	if (a != NULL && n != NULL && l != NULL && str_parse_u64(a, &va) == 0 &&
	    str_parse_u64(n, &vn) == 0 && str_parse_u64(l, &vl) == 0) {
		e->attempts = (unsigned)va;
		e->next_attempt = (time_t)vn;
		e->last_attempt = (time_t)vl;
	}
	free(s);
}

size_t
qstate_apply(struct queue_entry *e, const char *data, size_t len)
{
	size_t off = 0;
	while (len - off >= 9) {
		const unsigned char *p = (const unsigned char *)data + off;
		size_t rlen = (size_t)get_le(p + 1, 4);
		if (rlen > len - off - 9)
			break;
		if (get_le(p + 5 + rlen, 4) != qfile_crc32(0, p, 5 + rlen))
			break;
		const char *d = (const char *)p + 5;
		switch (p[0]) {
		case QSTATE_RCPT:
			qstate_apply_rcpt(e, d, rlen);
			break;
		case QSTATE_HOLD:
			e->held = rlen == 1 && d[0] == '1';
			break;
		case QSTATE_ATTEMPT:
			qstate_apply_attempt(e, d, rlen);
			break;
		default:
			break;
		}
		off += 9 + rlen;
	}
	return off;
}
