/*
 * imap_parse — the IMAP command tokenizer and sequence sets.  See
 * imap_parse.h for the framing contract with the session.
 *
 * The tokenizer is a recursive-descent reader over one framed command:
 *   command = tag SP name *(SP arg)
 *   arg     = atom / quoted / literal / "(" [arg *(SP arg)] ")"
 * Leniency: several spaces between arguments are accepted, a trailing
 * space is not an error.  Control characters outside literals are.
 */
#include "imap/imap_parse.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/mem.h"

struct reader {
	const char *p, *end;
	const char *err;
};

static int
is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	return strchr("()\"{]", c) == NULL;
}

static int
is_tag_char(unsigned char c)
{
	return is_atom_char(c) && c != '+' && c != '*' && c != '%' && c != '\\';
}

int
imap_literal_announced(const char *line, size_t len, uint64_t *n_r, int *plus_r)
{
	if (len < 3 || line[len - 1] != '}')
		return 0;
	size_t i = len - 1;
	int plus = 0;
	if (line[i - 1] == '+') {
		plus = 1;
		i--;
	}
	size_t end = i;
	while (i > 0 && isdigit((unsigned char)line[i - 1]))
		i--;
	if (i == 0 || line[i - 1] != '{')
		return 0;
	if (i == end || end - i > 19)
		return -1;
	uint64_t n = 0;
	for (size_t k = i; k < end; k++)
		n = n * 10 + (uint64_t)(line[k] - '0');
	*n_r = n;
	*plus_r = plus;
	return 1;
}

static void
arg_free(struct imap_arg *a)
{
	if (a->type == IMAP_ARG_LIST) {
		for (size_t i = 0; i < a->len; i++)
			arg_free(&a->list[i]);
		free(a->list);
	} else {
		free(a->str);
	}
}

static void
skip_spaces(struct reader *r)
{
	while (r->p < r->end && *r->p == ' ')
		r->p++;
}

static int
read_atom(struct reader *r, struct imap_arg *a)
{
	const char *s = r->p;
	int bracket = 0;
	while (r->p < r->end) {
		unsigned char c = (unsigned char)*r->p;
		if (bracket) {
			if (c == '\r' || c == '\n' || c == '\0')
				break;
			if (c == ']')
				bracket = 0;
		} else if (c == '[') {
			bracket = 1;
		} else if (!is_atom_char(c)) {
			break;
		}
		r->p++;
	}
	if (bracket) {
		r->err = "unterminated [";
		return -1;
	}
	if (r->p == s) {
		r->err = "invalid character";
		return -1;
	}
	a->type = IMAP_ARG_ATOM;
	a->str = xstrndup(s, (size_t)(r->p - s));
	a->len = (size_t)(r->p - s);
	return 0;
}

static int
read_quoted(struct reader *r, struct imap_arg *a)
{
	struct buf b = BUF_INIT;
	r->p++;
	while (r->p < r->end && *r->p != '"') {
		char c = *r->p++;
		if (c == '\\') {
			if (r->p == r->end || (*r->p != '\\' && *r->p != '"'))
				break;
			c = *r->p++;
		} else if (c == '\r' || c == '\n' || c == '\0') {
			break;
		}
		buf_append_char(&b, c);
	}
	if (r->p >= r->end || *r->p != '"') {
		buf_free(&b);
		r->err = "invalid quoted string";
		return -1;
	}
	r->p++;
	a->type = IMAP_ARG_QUOTED;
	a->len = b.len;
	buf_cstr(&b);
	a->str = buf_steal(&b);
	return 0;
}

static int
read_literal(struct reader *r, struct imap_arg *a)
{
	const char *close = memchr(r->p, '}', (size_t)(r->end - r->p));
	uint64_t n;
	int plus;
	if (close == NULL || imap_literal_announced(r->p, (size_t)(close - r->p + 1), &n,
	    &plus) != 1 || close + 3 > r->end || close[1] != '\r' || close[2] != '\n') {
		r->err = "invalid literal";
		return -1;
	}
	const char *data = close + 3;
	if (n > (uint64_t)(r->end - data)) {
		r->err = "literal is short";
		return -1;
	}
	a->type = IMAP_ARG_LITERAL;
	a->str = xmalloc((size_t)n + 1);
	memcpy(a->str, data, (size_t)n);
	a->str[n] = '\0';
	a->len = (size_t)n;
	r->p = data + n;
	return 0;
}

static int read_list(struct reader *r, struct imap_arg *a, int depth);

static int
read_arg(struct reader *r, struct imap_arg *a, int depth)
{
	memset(a, 0, sizeof(*a));
	switch (*r->p) {
	case '"':
		return read_quoted(r, a);
	case '{':
		return read_literal(r, a);
	case '(':
		return read_list(r, a, depth + 1);
	default:
		return read_atom(r, a);
	}
}

/* Reads arguments until end (or ')' when in a list) into *v / *n. */
static int
read_args(struct reader *r, struct imap_arg **v, size_t *n, int in_list, int depth)
{
	size_t cap = 0;
	*v = NULL;
	*n = 0;
	for (;;) {
		skip_spaces(r);
		if (r->p == r->end) {
			if (in_list) {
				r->err = "missing )";
				return -1;
			}
			return 0;
		}
		if (*r->p == ')') {
			if (!in_list) {
				r->err = "unexpected )";
				return -1;
			}
			r->p++;
			return 0;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 4;
			*v = xrealloc(*v, cap * sizeof(**v));
		}
		if (read_arg(r, &(*v)[*n], depth) < 0) {
			arg_free(&(*v)[*n]);     /* a partial list keeps what it read */
			return -1;
		}
		(*n)++;
		if (r->p < r->end && *r->p != ' ' && *r->p != ')') {
			r->err = "missing space";
			return -1;
		}
	}
}

static int
read_list(struct reader *r, struct imap_arg *a, int depth)
{
	if (depth > IMAP_LIST_DEPTH_MAX) {
		r->err = "lists nested too deep";
		return -1;
	}
	r->p++;
	a->type = IMAP_ARG_LIST;
	int rc = read_args(r, &a->list, &a->len, 1, depth);
	return rc;
}

static void
args_free(struct imap_arg *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		arg_free(&v[i]);
	free(v);
}

int
imap_parse_command(const char *data, size_t len, struct imap_cmd *cmd, const char **err_r)
{
	struct reader r = { data, data + len, NULL };
	memset(cmd, 0, sizeof(*cmd));
	const char *s = r.p;
	while (r.p < r.end && is_tag_char((unsigned char)*r.p))
		r.p++;
	if (r.p == s || r.p - s > IMAP_TAG_MAX || r.p == r.end || *r.p != ' ') {
		*err_r = "invalid tag";
		return -1;
	}
	cmd->tag = xstrndup(s, (size_t)(r.p - s));
	r.p++;
	s = r.p;
	while (r.p < r.end && isalnum((unsigned char)*r.p))
		r.p++;
	if (r.p == s || (r.p < r.end && *r.p != ' ')) {
		*err_r = "invalid command name";
		return -1;
	}
	cmd->name = xstrndup(s, (size_t)(r.p - s));
	for (char *c = cmd->name; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	size_t n = 0;
	struct imap_arg *v = NULL;
	if (read_args(&r, &v, &n, 0, 0) < 0) {
		args_free(v, n);
		*err_r = r.err;
		return -1;
	}
	cmd->args = v;
	cmd->nargs = n;
	return 0;
}

void
imap_cmd_clear(struct imap_cmd *cmd)
{
	free(cmd->tag);
	free(cmd->name);
	args_free(cmd->args, cmd->nargs);
	memset(cmd, 0, sizeof(*cmd));
}

int
imap_arg_is_string(const struct imap_arg *a)
{
	return a->type != IMAP_ARG_LIST;
}

int
imap_arg_is_nil(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && strcasecmp(a->str, "NIL") == 0;
}

/* ---- sequence sets ---------------------------------------------------- */

static int
seq_number(const char **p, uint32_t *v)
{
	if (**p == '*') {
		(*p)++;
		*v = IMAP_SEQ_STAR;
		return 0;
	}
	if (!isdigit((unsigned char)**p) || **p == '0')
		return -1;
	uint64_t n = 0;
	while (isdigit((unsigned char)**p)) {
		n = n * 10 + (uint64_t)(**p - '0');
		if (n >= IMAP_SEQ_STAR)
			return -1;
		(*p)++;
	}
	*v = (uint32_t)n;
	return 0;
}

int
imap_seqset_parse(const char *s, struct imap_seqset *set)
{
	size_t cap = 0;
	set->r = NULL;
	set->n = 0;
	const char *p = s;
	for (;;) {
		struct imap_seq_range rg;
		if (seq_number(&p, &rg.lo) < 0)
			goto bad;
		rg.hi = rg.lo;
		if (*p == ':') {
			p++;
			if (seq_number(&p, &rg.hi) < 0)
				goto bad;
		}
		if (set->n == cap) {
			cap = cap ? cap * 2 : 4;
			set->r = xrealloc(set->r, cap * sizeof(*set->r));
		}
		set->r[set->n++] = rg;
		if (*p == '\0')
			return 0;
		if (*p != ',')
			goto bad;
		p++;
	}
bad:
	imap_seqset_free(set);
	return -1;
}

int
imap_seqset_names_zero(const char *s)
{
	for (const char *p = s; *p != '\0'; p++) {
		int start = p == s || p[-1] == ',' || p[-1] == ':';
		int end = p[1] == '\0' || p[1] == ',' || p[1] == ':';
		if (*p == '0' && start && end)
			return 1;
	}
	return 0;
}

int
imap_seqset_contains(const struct imap_seqset *set, uint32_t v, uint32_t star)
{
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == IMAP_SEQ_STAR ? star : set->r[i].lo;
		uint32_t hi = set->r[i].hi == IMAP_SEQ_STAR ? star : set->r[i].hi;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (v >= lo && v <= hi)
			return 1;
	}
	return 0;
}

static int
seq_range_cmp(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void
imap_seqset_resolve(const struct imap_seqset *set, uint32_t star, struct imap_seqset *out)
{
	out->r = xcalloc(set->n ? set->n : 1, sizeof(*out->r));
	out->n = 0;
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == IMAP_SEQ_STAR ? star : set->r[i].lo;
		uint32_t hi = set->r[i].hi == IMAP_SEQ_STAR ? star : set->r[i].hi;
		out->r[i].lo = lo < hi ? lo : hi;
		out->r[i].hi = lo < hi ? hi : lo;
	}
	if (set->n > 1)
		qsort(out->r, set->n, sizeof(*out->r), seq_range_cmp);
	for (size_t i = 0; i < set->n; i++) {
		struct imap_seq_range *last = out->n > 0 ? &out->r[out->n - 1] : NULL;
		if (last != NULL && (uint64_t)out->r[i].lo <= (uint64_t)last->hi + 1) {
			if (out->r[i].hi > last->hi)
				last->hi = out->r[i].hi;
			continue;
		}
		out->r[out->n++] = out->r[i];
	}
}

uint32_t
imap_seqset_max(const struct imap_seqset *set, uint32_t star)
{
	uint32_t max = 0;
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == IMAP_SEQ_STAR ? star : set->r[i].lo;
		uint32_t hi = set->r[i].hi == IMAP_SEQ_STAR ? star : set->r[i].hi;
		if (lo > max)
			max = lo;
		if (hi > max)
			max = hi;
	}
	return max;
}

void
imap_seqset_free(struct imap_seqset *set)
{
	free(set->r);
	set->r = NULL;
	set->n = 0;
}

void
imap_quote(struct buf *out, const char *s, size_t len)
{
	int quotable = len < 1024;
	for (size_t i = 0; quotable && i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
			quotable = 0;
	}
	if (!quotable) {
		buf_appendf(out, "{%zu}\r\n", len);
		buf_append(out, s, len);
		return;
	}
	buf_append_char(out, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_append_char(out, '\\');
		buf_append_char(out, s[i]);
	}
	buf_append_char(out, '"');
}
