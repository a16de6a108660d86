/*
 * archive_query.c — tokenizer, recursive-descent parser and SQL/FTS5
 * translation of the archive search language (grammar in archive_query.h).
 *
 * The lexer yields one token at a time (keyword, parenthesis or term with
 * its field); the parser builds an n-ary AST; dropped terms (no letters or
 * digits) come back as NULL subtrees and vanish from their parent.  The
 * translator then merges every maximal all-FTS subtree into one FTS5 MATCH
 * string and turns the other terms into predicates on docs.
 */
#include "archive/archive_query.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/mem.h"

enum tok_kind { T_END, T_LP, T_RP, T_AND, T_OR, T_NOT, T_TERM };

struct token {
	enum tok_kind kind;
	size_t pos;                     /* 1-based offset in the query */
	enum archive_qfield field;
	char *text;                     /* T_TERM: raw value (malloc'd) */
	int quoted, prefix;
	const char *fname;              /* the field name as written, for errors */
	size_t fnamelen;
};

struct parser {
	const char *q;
	size_t i;
	struct token tok;
	int depth, nterms;
	char *err;
};

static const struct {
	const char *name;
	enum archive_qfield field;
} query_fields[] = {
	{ "from", ARCHIVE_QF_FROM }, { "to", ARCHIVE_QF_TO }, { "cc", ARCHIVE_QF_CC },
	{ "subject", ARCHIVE_QF_SUBJECT }, { "folder", ARCHIVE_QF_FOLDER },
	{ "filename", ARCHIVE_QF_FILENAME }, { "mailbox", ARCHIVE_QF_MAILBOX },
	{ "has", ARCHIVE_QF_HAS }, { "before", ARCHIVE_QF_BEFORE }, { "after", ARCHIVE_QF_AFTER },
};

static void
query_err(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
query_err(struct parser *p, const char *fmt, ...)
{
	if (p->err != NULL)
		return;
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vappendf(&b, fmt, ap);
	va_end(ap);
	p->err = buf_steal(&b);
}

static int
query_is_fts_field(enum archive_qfield f)
{
	return f == ARCHIVE_QF_TEXT || f == ARCHIVE_QF_FROM || f == ARCHIVE_QF_TO ||
	    f == ARCHIVE_QF_CC || f == ARCHIVE_QF_SUBJECT || f == ARCHIVE_QF_FILENAME;
}

static int
query_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int
query_ends_word(char c)
{
	return c == '\0' || query_is_space(c) || c == '(' || c == ')' || c == '"';
}

/* ------------------------------------------------------------------ lexer */

/* Reads a quoted string starting at p->q[p->i] == '"'; an unterminated one
 * runs to the end.  A '*' right after the closing quote marks a prefix. */
static char *
query_lex_quoted(struct parser *p, int *prefix_r)
{
	size_t start = ++p->i;
	while (p->q[p->i] != '\0' && p->q[p->i] != '"')
		p->i++;
	char *s = xstrndup(p->q + start, p->i - start);
	if (p->q[p->i] == '"')
		p->i++;
	if (p->q[p->i] == '*') {
		*prefix_r = 1;
		while (p->q[p->i] == '*')
			p->i++;
	}
	return s;
}

/* Looks a field name up; -1 when unknown. */
static int
query_field_lookup(const char *name, size_t len, enum archive_qfield *f_r)
{
	for (size_t i = 0; i < sizeof(query_fields) / sizeof(query_fields[0]); i++)
		if (strlen(query_fields[i].name) == len &&
		    strncasecmp(query_fields[i].name, name, len) == 0) {
			*f_r = query_fields[i].field;
			return 0;
		}
	return -1;
}

/* A word: keyword, field:value or plain word.  0 / -1. */
static int
query_lex_word(struct parser *p, struct token *t)
{
	size_t start = p->i;
	while (!query_ends_word(p->q[p->i]))
		p->i++;
	const char *w = p->q + start;
	size_t len = p->i - start;
	static const struct { const char *kw; enum tok_kind kind; } kws[] = {
		{ "AND", T_AND }, { "OR", T_OR }, { "NOT", T_NOT },
	};
	for (size_t i = 0; i < 3; i++)
		if (len == strlen(kws[i].kw) && strncmp(w, kws[i].kw, len) == 0) {
			t->kind = kws[i].kind;
			return 0;
		}
	t->kind = T_TERM;
	const char *colon = memchr(w, ':', len);
	size_t nlen = colon != NULL ? (size_t)(colon - w) : 0;
	int letters = nlen > 0;
	for (size_t i = 0; i < nlen; i++)
		if (!((w[i] >= 'a' && w[i] <= 'z') || (w[i] >= 'A' && w[i] <= 'Z')))
			letters = 0;
	if (letters) {
		if (query_field_lookup(w, nlen, &t->field) < 0) {
			query_err(p, "unknown field '%.*s' (at %zu)", (int)nlen, w, t->pos);
			return -1;
		}
		t->fname = w;
		t->fnamelen = nlen;
		w += nlen + 1;
		len -= nlen + 1;
		if (len == 0 && p->q[p->i] == '"') {
			t->quoted = 1;
			t->text = query_lex_quoted(p, &t->prefix);
			return 0;
		}
		if (len == 0) {
			query_err(p, "missing value for %.*s: (at %zu)", (int)nlen, t->fname, t->pos);
			return -1;
		}
	}
	t->text = xstrndup(w, len);
	return 0;
}

/* Advances to the next token.  0 / -1 (p->err set). */
static int
query_next(struct parser *p)
{
	struct token *t = &p->tok;
	free(t->text);
	memset(t, 0, sizeof(*t));
	while (query_is_space(p->q[p->i]))
		p->i++;
	t->pos = p->i + 1;
	char c = p->q[p->i];
	if (c == '\0') {
		t->kind = T_END;
	} else if (c == '(' || c == ')') {
		t->kind = c == '(' ? T_LP : T_RP;
		p->i++;
	} else if (c == '-' && !query_is_space(p->q[p->i + 1]) && p->q[p->i + 1] != '\0' &&
	    p->q[p->i + 1] != ')') {
		t->kind = T_NOT;
		p->i++;
	} else if (c == '"') {
		t->kind = T_TERM;
		t->quoted = 1;
		t->text = query_lex_quoted(p, &t->prefix);
	} else {
		return query_lex_word(p, t);
	}
	return 0;
}

/* ------------------------------------------------------------------ terms */

/* Splits text the way unicode61 does (ASCII letters/digits and any non-ASCII
 * byte are token characters) and joins the lower-cased tokens with ' '. */
static char *
query_tokens(const char *s)
{
	struct buf b = BUF_INIT;
	int in = 0;
	for (const unsigned char *u = (const unsigned char *)s; *u != '\0'; u++) {
		int tc = (*u >= '0' && *u <= '9') || (*u >= 'a' && *u <= 'z') ||
		    (*u >= 'A' && *u <= 'Z') || *u >= 0x80;
		if (!tc) {
			in = 0;
			continue;
		}
		if (!in && b.len > 0)
			buf_append_char(&b, ' ');
		in = 1;
		buf_append_char(&b, (char)(*u >= 'A' && *u <= 'Z' ? *u + 32 : *u));
	}
	return b.len > 0 ? buf_steal(&b) : NULL;
}

static long long
query_days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

/* Reads exactly n digits. */
static int
query_digits(const char *s, size_t n, unsigned *v_r)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*v_r = v;
	return 0;
}

/* YYYY, YYYY-MM or YYYY-MM-DD → unix seconds of its first instant (UTC). */
static int
query_parse_date(const char *s, long long *t_r)
{
	static const unsigned mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	size_t len = strlen(s);
	unsigned y, m = 1, d = 1;
	if ((len != 4 && len != 7 && len != 10) || query_digits(s, 4, &y) < 0 || y < 1900)
		return -1;
	if (len >= 7 && (s[4] != '-' || query_digits(s + 5, 2, &m) < 0 || m < 1 || m > 12))
		return -1;
	if (len == 10 && (s[7] != '-' || query_digits(s + 8, 2, &d) < 0 || d < 1 ||
	    d > mdays[m - 1]))
		return -1;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (m == 2 && d == 29 && !leap)
		return -1;
	*t_r = query_days_from_civil(y, m, d) * 86400;
	return 0;
}

static struct archive_qnode *
query_node(enum archive_qkind kind)
{
	struct archive_qnode *n = xcalloc(1, sizeof(*n));
	n->kind = kind;
	return n;
}

/* Fills a term node's value for a non-FTS field.  0 / -1. */
static int
query_term_sql(struct parser *p, struct archive_qnode *n, struct token *t)
{
	char *v = t->text;
	size_t len = strlen(v);
	switch (n->field) {
	case ARCHIVE_QF_FOLDER:
		n->prefix = t->prefix;
		for (; len > 0 && v[len - 1] == '*'; len--)
			n->prefix = 1;
		while (len > 0 && v[len - 1] == '/')
			len--;
		break;
	case ARCHIVE_QF_MAILBOX:
		for (size_t i = 0; i < len; i++)
			if (v[i] >= 'A' && v[i] <= 'Z')
				v[i] = (char)(v[i] + 32);
		break;
	case ARCHIVE_QF_HAS:
		if (strcasecmp(v, "attachment") != 0) {
			query_err(p, "unknown value '%s' for has: (expected attachment) (at %zu)", v,
			    t->pos);
			return -1;
		}
		break;
	default:   /* before/after */
		if (query_parse_date(v, &n->date) < 0) {
			query_err(p, "bad date '%s' for %.*s: (expected YYYY-MM-DD, at %zu)", v,
			    (int)t->fnamelen, t->fname, t->pos);
			return -1;
		}
		break;
	}
	if (len == 0) {
		query_err(p, "missing value for %.*s: (at %zu)", (int)t->fnamelen, t->fname, t->pos);
		return -1;
	}
	n->value = xstrndup(v, len);
	return 0;
}

/* Builds the node of the current term token: 0 with *n_r (NULL when the term
 * has nothing searchable), -1 on error. */
static int
query_term(struct parser *p, struct archive_qnode **n_r)
{
	struct token *t = &p->tok;
	*n_r = NULL;
	if (++p->nterms > ARCHIVE_QUERY_MAX_TERMS) {
		query_err(p, "too many terms (max %d)", ARCHIVE_QUERY_MAX_TERMS);
		return -1;
	}
	struct archive_qnode *n = query_node(ARCHIVE_Q_TERM);
	n->field = t->field;
	if (!query_is_fts_field(t->field)) {
		if (query_term_sql(p, n, t) < 0) {
			archive_query_free(&n);
			return -1;
		}
	} else {
		size_t len = strlen(t->text);
		n->prefix = t->prefix;
		if (!t->quoted && len > 0 && t->text[len - 1] == '*')
			n->prefix = 1;
		n->value = query_tokens(t->text);
		if (n->value == NULL)
			archive_query_free(&n);
	}
	*n_r = n;
	return query_next(p);
}

/* ----------------------------------------------------------------- parser */

static int query_or(struct parser *p, struct archive_qnode **n_r);

/* Appends kid (if not NULL) to an n-ary list. */
static void
query_push(struct archive_qnode ***kids, size_t *n, struct archive_qnode *kid)
{
	if (kid == NULL)
		return;
	*kids = xrealloc(*kids, (*n + 1) * sizeof(**kids));
	(*kids)[(*n)++] = kid;
}

/* Collapses a list: none → NULL, one → itself, more → a kind node. */
static struct archive_qnode *
query_collapse(enum archive_qkind kind, struct archive_qnode **kids, size_t n)
{
	if (n <= 1) {
		struct archive_qnode *only = n == 1 ? kids[0] : NULL;
		free(kids);
		return only;
	}
	struct archive_qnode *node = query_node(kind);
	node->kids = kids;
	node->nkids = n;
	return node;
}

static void
query_free_list(struct archive_qnode **kids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		archive_query_free(&kids[i]);
	free(kids);
}

static int
query_ends_operand(enum tok_kind k)
{
	return k == T_END || k == T_RP || k == T_OR || k == T_AND;
}

static int
query_unary(struct parser *p, struct archive_qnode **n_r)
{
	*n_r = NULL;
	if (++p->depth > ARCHIVE_QUERY_MAX_DEPTH) {
		query_err(p, "query nested too deeply (max %d)", ARCHIVE_QUERY_MAX_DEPTH);
		return -1;
	}
	int rc;
	size_t pos = p->tok.pos;
	if (p->tok.kind == T_NOT) {
		struct archive_qnode *kid = NULL;
		if (query_next(p) < 0)
			return -1;
		if (query_ends_operand(p->tok.kind)) {
			query_err(p, "missing term after NOT (at %zu)", pos);
			return -1;
		}
		rc = query_unary(p, &kid);
		if (kid != NULL) {
			*n_r = query_node(ARCHIVE_Q_NOT);
			(*n_r)->kids = xmalloc(sizeof(kid));
			(*n_r)->kids[0] = kid;
			(*n_r)->nkids = 1;
		}
	} else if (p->tok.kind == T_LP) {
		if (query_next(p) < 0)
			return -1;
		if (p->tok.kind == T_RP) {
			query_err(p, "empty parentheses (at %zu)", pos);
			return -1;
		}
		rc = query_or(p, n_r);
		if (rc == 0 && p->tok.kind != T_RP) {
			query_err(p, "unbalanced parenthesis: '(' at %zu is not closed", pos);
			rc = -1;
		}
		if (rc == 0)
			rc = query_next(p);
	} else {
		rc = query_term(p, n_r);
	}
	p->depth--;
	if (rc < 0)
		archive_query_free(n_r);
	return rc;
}

static int
query_and(struct parser *p, struct archive_qnode **n_r)
{
	struct archive_qnode **kids = NULL, *kid;
	size_t n = 0;
	*n_r = NULL;
	if (p->tok.kind == T_OR || p->tok.kind == T_AND) {
		query_err(p, "missing term before %s (at %zu)", p->tok.kind == T_OR ? "OR" : "AND",
		    p->tok.pos);
		return -1;
	}
	while (p->tok.kind != T_END && p->tok.kind != T_RP && p->tok.kind != T_OR) {
		if (p->tok.kind == T_AND) {
			size_t pos = p->tok.pos;
			if (query_next(p) < 0)
				goto fail;
			if (query_ends_operand(p->tok.kind)) {
				query_err(p, "missing term after AND (at %zu)", pos);
				goto fail;
			}
		}
		if (query_unary(p, &kid) < 0)
			goto fail;
		query_push(&kids, &n, kid);
	}
	*n_r = query_collapse(ARCHIVE_Q_AND, kids, n);
	return 0;
fail:
	query_free_list(kids, n);
	return -1;
}

static int
query_or(struct parser *p, struct archive_qnode **n_r)
{
	struct archive_qnode **kids = NULL, *kid;
	size_t n = 0;
	*n_r = NULL;
	for (;;) {
		if (query_and(p, &kid) < 0)
			goto fail;
		query_push(&kids, &n, kid);
		if (p->tok.kind != T_OR)
			break;
		size_t pos = p->tok.pos;
		if (query_next(p) < 0)
			goto fail;
		if (query_ends_operand(p->tok.kind)) {
			query_err(p, "missing term after OR (at %zu)", pos);
			goto fail;
		}
	}
	*n_r = query_collapse(ARCHIVE_Q_OR, kids, n);
	return 0;
fail:
	query_free_list(kids, n);
	return -1;
}

static int
query_only_star(const char *q)
{
	while (query_is_space(*q))
		q++;
	if (*q++ != '*')
		return 0;
	while (query_is_space(*q))
		q++;
	return *q == '\0';
}

int
archive_query_parse(const char *q, struct archive_qnode **root_r, char **err_r)
{
	struct parser p = { .q = q != NULL ? q : "" };
	*root_r = NULL;
	if (strlen(p.q) > ARCHIVE_QUERY_MAX_LEN) {
		*err_r = xstrdup("query too long (max 1000 bytes)");
		return -1;
	}
	if (query_only_star(p.q)) {
		*root_r = query_node(ARCHIVE_Q_ALL);
		return 0;
	}
	int empty = 1;
	for (const char *s = p.q; *s != '\0'; s++)
		if (!query_is_space(*s))
			empty = 0;
	if (!empty && query_next(&p) == 0 && query_or(&p, root_r) == 0 && p.tok.kind == T_RP)
		query_err(&p, "unbalanced parenthesis: ')' at %zu has no '('", p.tok.pos);
	free(p.tok.text);
	if (p.err == NULL && *root_r == NULL)
		p.err = xstrdup(empty ? "empty query" : "nothing to search for in the query "
		    "(no letters or digits)");
	if (p.err != NULL) {
		archive_query_free(root_r);
		*err_r = p.err;
		return -1;
	}
	return 0;
}

void
archive_query_free(struct archive_qnode **root)
{
	struct archive_qnode *n = *root;
	if (n == NULL)
		return;
	*root = NULL;
	query_free_list(n->kids, n->nkids);
	free(n->value);
	free(n->meta);
	free(n);
}

/* ------------------------------------------------------------ translation */

struct qctx {
	struct buf sql;
	struct archive_qparam *params;
	size_t nparams;
};

static void
query_param_str(struct qctx *c, char *s)
{
	c->params = xrealloc(c->params, (c->nparams + 1) * sizeof(*c->params));
	c->params[c->nparams++] = (struct archive_qparam){ .s = s };
}

static void
query_param_int(struct qctx *c, long long v)
{
	c->params = xrealloc(c->params, (c->nparams + 1) * sizeof(*c->params));
	c->params[c->nparams++] = (struct archive_qparam){ .is_int = 1, .i = v };
}

/* Which FTS table a term lives in: 1 = fts (text, meta tokens), 2 = fta
 * (addresses), 0 = none (a docs predicate). */
static int
query_field_table(const struct archive_qnode *n)
{
	enum archive_qfield f = n->field;
	if (n->meta != NULL)
		return 1;
	if (f == ARCHIVE_QF_FROM || f == ARCHIVE_QF_TO || f == ARCHIVE_QF_CC)
		return 2;
	return query_is_fts_field(f) ? 1 : 0;
}

static int query_fts_ok(const struct archive_qnode *n);

/* A NOT whose operand is all in one FTS table: usable as the right side of
 * an FTS5 NOT.  Returns the table or 0. */
static int
query_fts_neg(const struct archive_qnode *n)
{
	return n->kind == ARCHIVE_Q_NOT ? query_fts_ok(n->kids[0]) : 0;
}

/* Can this subtree be one FTS5 MATCH expression on one table?  Returns the
 * table (1 fts, 2 fta) or 0. */
static int
query_fts_ok(const struct archive_qnode *n)
{
	int table = 0, pos = 0;
	switch (n->kind) {
	case ARCHIVE_Q_TERM:
		return query_field_table(n);
	case ARCHIVE_Q_OR:
	case ARCHIVE_Q_AND:
		for (size_t i = 0; i < n->nkids; i++) {
			int t = query_fts_ok(n->kids[i]);
			if (t != 0)
				pos = 1;
			else if (n->kind == ARCHIVE_Q_AND)
				t = query_fts_neg(n->kids[i]);
			if (t == 0 || (table != 0 && t != table))
				return 0;
			table = t;
		}
		return pos ? table : 0;
	default:
		return 0;
	}
}

static const char *
query_fts_cols(enum archive_qfield f)
{
	switch (f) {
	case ARCHIVE_QF_FROM: return "{sender} : ";
	case ARCHIVE_QF_TO: return "{recipients cc} : ";
	case ARCHIVE_QF_CC: return "{cc} : ";
	case ARCHIVE_QF_SUBJECT: return "{subject} : ";
	case ARCHIVE_QF_FILENAME: return "{filenames} : ";
	default: return "";     /* free text: every column of fts */
	}
}

static void query_fts_expr(const struct archive_qnode *n, struct buf *b);

/* Writes an AND whose kids are FTS positives and FTS negations:
 * ((p1 AND p2) NOT n1) NOT n2, fully parenthesised. */
static void
query_fts_and(const struct archive_qnode *n, struct buf *b)
{
	size_t nneg = 0, npos = 0;
	for (size_t i = 0; i < n->nkids; i++)
		nneg += !query_fts_ok(n->kids[i]);
	for (size_t i = 0; i < nneg; i++)
		buf_append_char(b, '(');
	buf_append_char(b, '(');
	for (size_t i = 0; i < n->nkids; i++)
		if (query_fts_ok(n->kids[i])) {
			if (npos++ > 0)
				buf_append_str(b, " AND ");
			query_fts_expr(n->kids[i], b);
		}
	buf_append_char(b, ')');
	for (size_t i = 0; i < n->nkids; i++)
		if (!query_fts_ok(n->kids[i])) {
			buf_append_str(b, " NOT ");
			query_fts_expr(n->kids[i]->kids[0], b);
			buf_append_char(b, ')');
		}
}

static void
query_fts_expr(const struct archive_qnode *n, struct buf *b)
{
	if (n->kind == ARCHIVE_Q_TERM && n->meta != NULL) {
		buf_append_str(b, n->meta);
	} else if (n->kind == ARCHIVE_Q_TERM) {
		buf_appendf(b, "%s\"", query_fts_cols(n->field));
		for (const char *s = n->value; *s != '\0'; s++) {
			if (*s == '"')
				buf_append_char(b, '"');
			buf_append_char(b, *s);
		}
		buf_append_str(b, n->prefix ? "\" *" : "\"");
	} else if (n->kind == ARCHIVE_Q_OR) {
		buf_append_char(b, '(');
		for (size_t i = 0; i < n->nkids; i++) {
			if (i > 0)
				buf_append_str(b, " OR ");
			query_fts_expr(n->kids[i], b);
		}
		buf_append_char(b, ')');
	} else {
		query_fts_and(n, b);
	}
}

static const char *const query_tables[3] = { "", "fts", "fta" };

static void
query_emit_match(struct qctx *c, const struct archive_qnode *n, int table, int negate)
{
	struct buf m = BUF_INIT;
	query_fts_expr(n, &m);
	query_param_str(c, buf_steal(&m));
	buf_appendf(&c->sql, "docs.id %sIN (SELECT rowid FROM %s WHERE %s MATCH ?)",
	    negate ? "NOT " : "", query_tables[table], query_tables[table]);
}

/* '%', '_' and '\' escaped for LIKE ... ESCAPE '\'. */
static char *
query_like_prefix(const char *v, const char *suffix)
{
	struct buf b = BUF_INIT;
	for (; *v != '\0'; v++) {
		if (*v == '%' || *v == '_' || *v == '\\')
			buf_append_char(&b, '\\');
		buf_append_char(&b, *v);
	}
	buf_append_str(&b, suffix);
	return buf_steal(&b);
}

static void
query_emit_term(struct qctx *c, const struct archive_qnode *n)
{
	switch (n->field) {
	case ARCHIVE_QF_FOLDER:
		if (n->prefix) {
			buf_append_str(&c->sql, "docs.folder LIKE ? ESCAPE '\\'");
			query_param_str(c, query_like_prefix(n->value, "%"));
		} else {
			buf_append_str(&c->sql, "(docs.folder = ? OR docs.folder LIKE ? ESCAPE '\\')");
			query_param_str(c, xstrdup(n->value));
			query_param_str(c, query_like_prefix(n->value, "/%"));
		}
		break;
	case ARCHIVE_QF_MAILBOX:
		buf_append_str(&c->sql, "docs.mailbox = ?");
		query_param_str(c, xstrdup(n->value));
		break;
	case ARCHIVE_QF_HAS:
		buf_append_str(&c->sql, "docs.has_attachment <> 0");
		break;
	case ARCHIVE_QF_BEFORE:
	case ARCHIVE_QF_AFTER:
		buf_appendf(&c->sql, "docs.msg_date %s ?", n->field == ARCHIVE_QF_BEFORE ? "<" : ">=");
		query_param_int(c, n->date);
		break;
	default:
		query_emit_match(c, n, query_field_table(n), 0);
		break;
	}
}

static void query_emit(struct qctx *c, const struct archive_qnode *n);

/* Emits the kids of an AND or OR that belong to FTS table t as one MATCH
 * (for AND: positives plus the negations of the same table, if any
 * positive); marks them used.  Returns whether anything was emitted. */
static int
query_emit_group(struct qctx *c, const struct archive_qnode *n, int t, int *used, int sep)
{
	struct archive_qnode grp = { .kind = n->kind };
	size_t npos = 0;
	grp.kids = xcalloc(n->nkids, sizeof(*grp.kids));
	for (size_t i = 0; i < n->nkids; i++)
		if (query_fts_ok(n->kids[i]) == t)
			npos++;
	for (size_t i = 0; i < n->nkids && npos > 0; i++) {
		struct archive_qnode *k = n->kids[i];
		if (query_fts_ok(k) == t ||
		    (n->kind == ARCHIVE_Q_AND && query_fts_ok(k) == 0 && query_fts_neg(k) == t)) {
			grp.kids[grp.nkids++] = k;
			used[i] = 1;
		}
	}
	if (grp.nkids > 0) {
		if (sep)
			buf_append_str(&c->sql, n->kind == ARCHIVE_Q_AND ? " AND " : " OR ");
		query_emit_match(c, grp.nkids == 1 ? grp.kids[0] : &grp, t, 0);
	}
	free(grp.kids);
	return grp.nkids > 0;
}

/* AND / OR: per FTS table one MATCH, the rest as SQL. */
static void
query_emit_list(struct qctx *c, const struct archive_qnode *n)
{
	int *used = xcalloc(n->nkids, sizeof(*used));
	int out = 0;
	buf_append_char(&c->sql, '(');
	for (int t = 1; t <= 2; t++)
		out |= query_emit_group(c, n, t, used, out);
	for (size_t i = 0; i < n->nkids; i++) {
		if (used[i])
			continue;
		if (out++)
			buf_append_str(&c->sql, n->kind == ARCHIVE_Q_AND ? " AND " : " OR ");
		query_emit(c, n->kids[i]);
	}
	buf_append_char(&c->sql, ')');
	free(used);
}

static void
query_emit(struct qctx *c, const struct archive_qnode *n)
{
	int t;
	if (n->kind == ARCHIVE_Q_ALL) {
		buf_append_str(&c->sql, "1");
	} else if ((t = query_fts_ok(n)) != 0) {
		query_emit_match(c, n, t, 0);
	} else if (n->kind == ARCHIVE_Q_TERM) {
		query_emit_term(c, n);
	} else if (n->kind == ARCHIVE_Q_NOT) {
		if ((t = query_fts_ok(n->kids[0])) != 0) {
			query_emit_match(c, n->kids[0], t, 1);
		} else {
			buf_append_str(&c->sql, "NOT ");
			query_emit(c, n->kids[0]);
		}
	} else {
		query_emit_list(c, n);
	}
}

/* Positive free-text tokens, in query order. */
static void
query_words(const struct archive_qnode *n, struct archive_qsql *out)
{
	if (n->kind == ARCHIVE_Q_NOT)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		query_words(n->kids[i], out);
	if (n->kind != ARCHIVE_Q_TERM || n->field != ARCHIVE_QF_TEXT)
		return;
	const char *s = n->value;
	while (*s != '\0') {
		const char *e = strchr(s, ' ');
		size_t len = e != NULL ? (size_t)(e - s) : strlen(s);
		out->words = xrealloc(out->words, (out->nwords + 1) * sizeof(*out->words));
		out->words[out->nwords++] = xstrndup(s, len);
		s += len;
		while (*s == ' ')
			s++;
	}
}

/* Narrows [*lo, *hi) by a before:/after: term. */
static void
query_bound(const struct archive_qnode *n, long long *lo, long long *hi)
{
	if (n->kind != ARCHIVE_Q_TERM)
		return;
	if (n->field == ARCHIVE_QF_AFTER && n->date > *lo)
		*lo = n->date;
	if (n->field == ARCHIVE_QF_BEFORE && n->date < *hi)
		*hi = n->date;
}

void
archive_query_sql(const struct archive_qnode *root, struct archive_qsql *out)
{
	struct qctx c = { BUF_INIT, NULL, 0 };
	memset(out, 0, sizeof(*out));
	out->all = root->kind == ARCHIVE_Q_ALL;
	out->date_lo = LLONG_MIN;
	out->date_hi = LLONG_MAX;
	query_bound(root, &out->date_lo, &out->date_hi);
	for (size_t i = 0; root->kind == ARCHIVE_Q_AND && i < root->nkids; i++)
		query_bound(root->kids[i], &out->date_lo, &out->date_hi);
	out->match_table = query_tables[query_fts_ok(root)];
	if (query_fts_ok(root)) {
		struct buf m = BUF_INIT;
		query_fts_expr(root, &m);
		out->match = buf_steal(&m);
	}
	query_emit(&c, root);
	out->where = buf_steal(&c.sql);
	out->params = c.params;
	out->nparams = c.nparams;
	query_words(root, out);
}

int
archive_query_compile(const char *q, struct archive_qsql *out, char **err_r)
{
	struct archive_qnode *root;
	memset(out, 0, sizeof(*out));
	if (archive_query_parse(q, &root, err_r) < 0)
		return -1;
	archive_query_sql(root, out);
	archive_query_free(&root);
	return 0;
}

void
archive_qsql_free(struct archive_qsql *s)
{
	free(s->where);
	free(s->match);
	for (size_t i = 0; i < s->nparams; i++)
		free(s->params[i].s);
	free(s->params);
	for (size_t i = 0; i < s->nwords; i++)
		free(s->words[i]);
	free(s->words);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------ meta tokens */

/* Appends " zq<kind><value encoded>" unless the encoding is too long: a-y
 * and 0-9 stay, every other byte becomes z + two hex digits (injective, and
 * unicode61 keeps the result as one token).  lower: ASCII-lower-case first. */
static void
query_meta_token(struct buf *b, char kind, const char *s, size_t len, int lower)
{
	static const char hex[] = "0123456789abcdef";
	struct buf e = BUF_INIT;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (lower && c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		if ((c >= 'a' && c <= 'y') || (c >= '0' && c <= '9')) {
			buf_append_char(&e, (char)c);
		} else {
			buf_append_char(&e, 'z');
			buf_append_char(&e, hex[c >> 4]);
			buf_append_char(&e, hex[c & 15]);
		}
	}
	if (e.len <= ARCHIVE_QUERY_META_MAX)
		buf_appendf(b, "%szq%c%.*s", b->len > 0 ? " " : "", kind, (int)e.len,
		    e.data != NULL ? e.data : "");
	buf_free(&e);
}

/* Day number (days since 1970-01-01) → civil date. */
static void
query_civil(long long z, long long *y, unsigned *m, unsigned *d)
{
	z += 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (long long)yoe + era * 400 + (*m <= 2);
}

static long long
query_day(long long t)
{
	return t / 86400 - (t % 86400 < 0);
}

char *
archive_query_meta_text(const char *mailbox, const char *folder, long long msg_date,
    int has_attachment)
{
	struct buf b = BUF_INIT;
	if (has_attachment)
		buf_append_str(&b, "zqa");
	mailbox = mailbox != NULL ? mailbox : "";
	query_meta_token(&b, 'b', mailbox, strlen(mailbox), 0);
	folder = folder != NULL ? folder : "";
	size_t flen = strlen(folder);
	for (size_t i = 1; i <= flen; i++)
		if (i == flen || folder[i] == '/')
			query_meta_token(&b, 'f', folder, i, 1);
	long long y;
	unsigned m, d;
	query_civil(query_day(msg_date), &y, &m, &d);
	if (y >= 1 && y <= 9999)
		buf_appendf(&b, " zqy%04lld zqm%04lld%02u zqd%04lld%02u%02u", y, y, m, y, m, d);
	buf_append_str(&b, "");
	return buf_steal(&b);
}

/* The MATCH expression of the days [lo, hi) as few year, month and day
 * tokens as cover it exactly; NULL when that needs too many tokens or
 * leaves years 1-9999. */
static char *
query_date_expr(long long lo, long long hi)
{
	struct buf b = BUF_INIT;
	long long y, y2;
	unsigned m, d, m2, d2;
	if (lo >= hi)
		return xstrdup("{meta} : \"zqnone\"");
	query_civil(lo, &y, &m, &d);
	query_civil(hi - 1, &y2, &m2, &d2);
	if (y < 1 || y2 > 9999)
		return NULL;
	buf_append_str(&b, "{meta} : (");
	for (long long day = lo, n = 0; day < hi; n++) {
		if (n == ARCHIVE_QUERY_DATE_TERMS) {
			buf_free(&b);
			return NULL;
		}
		query_civil(day, &y, &m, &d);
		long long ny = query_days_from_civil(y + 1, 1, 1);
		long long nm = m == 12 ? ny : query_days_from_civil(y, m + 1, 1);
		buf_append_str(&b, n > 0 ? " OR " : "");
		if (m == 1 && d == 1 && ny <= hi) {
			buf_appendf(&b, "\"zqy%04lld\"", y);
			day = ny;
		} else if (d == 1 && nm <= hi) {
			buf_appendf(&b, "\"zqm%04lld%02u\"", y, m);
			day = nm;
		} else {
			buf_appendf(&b, "\"zqd%04lld%02u%02u\"", y, m, d);
			day++;
		}
	}
	buf_append_char(&b, ')');
	return buf_steal(&b);
}

/* "{meta} : \"zq<kind><value>\"", or NULL when the value is too long. */
static char *
query_meta_expr(char kind, const char *v, int lower)
{
	struct buf t = BUF_INIT;
	query_meta_token(&t, kind, v, strlen(v), lower);
	char *r = NULL;
	if (t.len > 0) {
		struct buf b = BUF_INIT;
		buf_appendf(&b, "{meta} : \"%.*s\"", (int)t.len, t.data);
		r = buf_steal(&b);
	}
	buf_free(&t);
	return r;
}

/* Could a free-text term match a meta token (so it needs a column filter)? */
static int
query_text_guard(const struct archive_qnode *n)
{
	const char *s = n->value, *last = s;
	for (const char *w = s; w != NULL && *w != '\0'; ) {
		last = w;
		if (strncmp(w, "zq", 2) == 0)
			return 1;
		w = strchr(w, ' ');
		if (w != NULL)
			w++;
	}
	return n->prefix && strcmp(last, "z") == 0;
}

static void
query_meta_term(struct archive_qnode *n, const struct archive_qopts *o)
{
	long long lo = query_day(o->date_min), hi = query_day(o->date_max) + 1;
	switch (n->field) {
	case ARCHIVE_QF_FOLDER:
		if (!n->prefix)
			n->meta = query_meta_expr('f', n->value, 1);
		break;
	case ARCHIVE_QF_MAILBOX:
		n->meta = query_meta_expr('b', n->value, 0);
		break;
	case ARCHIVE_QF_HAS:
		n->meta = xstrdup("{meta} : \"zqa\"");
		break;
	case ARCHIVE_QF_BEFORE:
		n->meta = query_date_expr(lo, n->date / 86400 < hi ? n->date / 86400 : hi);
		break;
	case ARCHIVE_QF_AFTER:
		n->meta = query_date_expr(n->date / 86400 > lo ? n->date / 86400 : lo, hi);
		break;
	case ARCHIVE_QF_TEXT:
		if (query_text_guard(n)) {
			struct buf b = BUF_INIT;
			buf_append_str(&b, "{subject body filenames} : ");
			query_fts_expr(n, &b);       /* n->meta is NULL: the plain form */
			n->meta = buf_steal(&b);
		}
		break;
	default:
		break;
	}
}

static int
query_is_date(const struct archive_qnode *n)
{
	return n->kind == ARCHIVE_Q_TERM &&
	    (n->field == ARCHIVE_QF_BEFORE || n->field == ARCHIVE_QF_AFTER);
}

/* An AND with several before:/after: kids: one token expression for their
 * intersection on the first, the others dropped (a lone kid replaces the AND). */
static void
query_meta_dates(struct archive_qnode *n, const struct archive_qopts *o)
{
	long long lo = query_day(o->date_min), hi = query_day(o->date_max) + 1;
	size_t ndates = 0, first = 0, k = 0;
	for (size_t i = 0; i < n->nkids; i++)
		if (query_is_date(n->kids[i]) && ndates++ == 0)
			first = i;
	if (ndates < 2)
		return;
	for (size_t i = 0; i < n->nkids; i++) {
		long long l = LLONG_MIN, h = LLONG_MAX;
		query_bound(n->kids[i], &l, &h);
		if (l != LLONG_MIN && l / 86400 > lo)
			lo = l / 86400;
		if (h != LLONG_MAX && h / 86400 < hi)
			hi = h / 86400;
	}
	char *expr = query_date_expr(lo, hi);
	if (expr == NULL)
		return;
	free(n->kids[first]->meta);
	n->kids[first]->meta = expr;
	for (size_t i = 0; i < n->nkids; i++)
		if (i != first && query_is_date(n->kids[i]))
			archive_query_free(&n->kids[i]);
		else
			n->kids[k++] = n->kids[i];
	n->nkids = k;
	if (k == 1) {
		struct archive_qnode *only = n->kids[0];
		free(n->kids);
		*n = *only;
		free(only);
	}
}

static void
query_meta_prepare(struct archive_qnode *n, const struct archive_qopts *o)
{
	for (size_t i = 0; i < n->nkids; i++)
		query_meta_prepare(n->kids[i], o);
	if (n->kind == ARCHIVE_Q_TERM)
		query_meta_term(n, o);
	else if (n->kind == ARCHIVE_Q_AND)
		query_meta_dates(n, o);
}

/* root AND (mailbox:m1 OR mailbox:m2 ...); '*' becomes the OR alone. */
static struct archive_qnode *
query_restrict(struct archive_qnode *root, const struct archive_qopts *o)
{
	struct archive_qnode **kids = NULL;
	size_t n = 0;
	for (size_t i = 0; i < o->nmailboxes; i++) {
		struct archive_qnode *t = query_node(ARCHIVE_Q_TERM);
		t->field = ARCHIVE_QF_MAILBOX;
		t->value = xstrdup(o->mailboxes[i] != NULL ? o->mailboxes[i] : "");
		for (char *c = t->value; *c != '\0'; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		query_push(&kids, &n, t);
	}
	struct archive_qnode *r = query_collapse(ARCHIVE_Q_OR, kids, n);
	if (root->kind == ARCHIVE_Q_ALL) {
		archive_query_free(&root);
		return r;
	}
	struct archive_qnode *both = query_node(ARCHIVE_Q_AND);
	both->kids = xmalloc(2 * sizeof(*both->kids));
	both->kids[0] = root;
	both->kids[1] = r;
	both->nkids = 2;
	return both;
}

int
archive_query_compile_opts(const char *q, const struct archive_qopts *o,
    struct archive_qsql *out, char **err_r)
{
	struct archive_qnode *root;
	memset(out, 0, sizeof(*out));
	if (archive_query_parse(q, &root, err_r) < 0)
		return -1;
	long long lo = LLONG_MIN, hi = LLONG_MAX;
	query_bound(root, &lo, &hi);
	for (size_t i = 0; root->kind == ARCHIVE_Q_AND && i < root->nkids; i++)
		query_bound(root->kids[i], &lo, &hi);
	if (o != NULL && o->nmailboxes > 0)
		root = query_restrict(root, o);
	if (o != NULL && o->meta)
		query_meta_prepare(root, o);
	archive_query_sql(root, out);
	out->date_lo = lo;              /* from before the date terms merged */
	out->date_hi = hi;
	archive_query_free(&root);
	return 0;
}
