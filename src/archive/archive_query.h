/*
 * archive_query — the archive's search language: parser and SQL translation.
 *
 *   struct archive_qsql q;
 *   if (archive_query_compile("from:jane invoice -draft", &q, &err) < 0)
 *           show(err);                        (err: malloc'd, caller frees)
 *   ... "SELECT ... FROM docs WHERE " q.where, binding q.params in order ...
 *   archive_qsql_free(&q);
 *
 * Grammar (tokens are separated by white space; '(' ')' '"' also end a word):
 *
 *   query    := '*' | or_expr                   '*' alone = every message
 *   or_expr  := and_expr ('OR' and_expr)*
 *   and_expr := unary (['AND'] unary)*         juxtaposition means AND
 *   unary    := ('NOT' | '-') unary | '(' or_expr ')' | term
 *   term     := [field ':'] (word | '"' phrase '"')
 *   field    := from | to | cc | subject | folder | filename | mailbox | has
 *             | before | after                 (case-insensitive)
 *
 * AND, OR and NOT are keywords only in upper case and unquoted; '-' is NOT
 * only at the start of a word ("e-mail" is a word).  A word ending in '*'
 * is a prefix search.  Words are split the way the index's unicode61
 * tokenizer splits text (letters and digits; everything else separates), so
 * "foo.bar" and "jane@example.com" become the phrases "foo bar" and
 * "jane example com"; a term with no letters or digits ('^', '"', '-') is
 * ignored.  User text is never FTS5 syntax: every token goes into an FTS5
 * string "..." with '"' doubled.
 *
 * Fields: free text searches subject, body and attachment names/text;
 * from: the From header and envelope sender; to: To, Cc, Bcc and envelope
 * recipients; cc: Cc; subject:; filename: attachment names (all FTS);
 * folder:X equals X case-insensitively or is below it ("Inbox" matches
 * "Inbox/Sub"), folder:X* is a prefix; mailbox: equality (case-insensitive);
 * has:attachment; before:D (exclusive) and after:D (inclusive) with D =
 * YYYY-MM-DD, YYYY-MM or YYYY (UTC).
 * Limits: 1000 bytes, 64 terms, nesting depth 16.
 *
 * Translation: the index has two FTS5 tables, fts (subject, body,
 * filenames: free text, subject:, filename:) and fta (sender, recipients,
 * cc: from:, to:, cc:), so that free text needs no column filter (filters
 * make FTS5 decode every position list: 3-4 times slower on common words).
 * A subtree made only of terms of one table (where every NOT is the right
 * operand of an AND) becomes ONE FTS5 MATCH string bound as a parameter:
 * "docs.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)"; within an AND or
 * OR the terms of each table are merged the same way; other terms become
 * predicates on the docs table; AND/OR/NOT combine them.  All values are
 * bound parameters, never pasted into the SQL.
 *
 * Filter tokens (archive_query_compile_opts with meta = 1, what the index
 * uses): fts has a fourth column, meta, holding per document the tokens
 * made by archive_query_meta_text(): zqa (has an attachment), zqb<mailbox>,
 * zqf<folder> for the folder and each of its '/'-prefixes (lower-case),
 * zqy<YYYY>, zqm<YYYYMM>, zqd<YYYYMMDD> (UTC), values encoded so that
 * unicode61 keeps them as one token and distinct values give distinct
 * tokens (a-y, 0-9 as they are, any other byte z + two hex digits).  The
 * filters then become `{meta} : (...)` terms of the MATCH: folder:X the
 * token of X; mailbox: (and the caller's mailbox restriction, AND-ed to the
 * query) the mailbox token; has:attachment zqa; before:/after: an OR of the
 * year, month and day tokens exactly covering the range clipped to the
 * dates present in the index.  So folder/mailbox/date/has combined with
 * words is one FTS5 MATCH, and results stay exact.  Filters that cannot be
 * tokens stay docs predicates: folder:X* (any prefix), values longer than
 * ARCHIVE_QUERY_META_MAX encoded bytes, date ranges needing more than
 * ARCHIVE_QUERY_DATE_TERMS tokens or reaching outside years 1-9999.
 * Free-text words that could be meta tokens (starting "zq", or a prefix
 * search of "z"/"zq") are limited to {subject body filenames}.
 */
#ifndef MAILARK_ARCHIVE_QUERY_H
#define MAILARK_ARCHIVE_QUERY_H

#include <stddef.h>

#define ARCHIVE_QUERY_MAX_LEN 1000
#define ARCHIVE_QUERY_MAX_TERMS 64
#define ARCHIVE_QUERY_MAX_DEPTH 16
#define ARCHIVE_QUERY_META_MAX 200      /* longest encoded folder/mailbox token value */
#define ARCHIVE_QUERY_DATE_TERMS 160    /* most tokens one date range may become */

enum archive_qkind { ARCHIVE_Q_TERM, ARCHIVE_Q_AND, ARCHIVE_Q_OR, ARCHIVE_Q_NOT, ARCHIVE_Q_ALL };

enum archive_qfield {
	ARCHIVE_QF_TEXT, ARCHIVE_QF_FROM, ARCHIVE_QF_TO, ARCHIVE_QF_CC, ARCHIVE_QF_SUBJECT,
	ARCHIVE_QF_FILENAME, ARCHIVE_QF_FOLDER, ARCHIVE_QF_MAILBOX, ARCHIVE_QF_HAS,
	ARCHIVE_QF_BEFORE, ARCHIVE_QF_AFTER
};

/* The AST.  A node owns its value and children. */
struct archive_qnode {
	enum archive_qkind kind;
	enum archive_qfield field;      /* TERM */
	char *value;                    /* TERM: FTS fields: tokens joined by ' ' (lower-case
	                                   ASCII); folder/mailbox: the text as written */
	int prefix;                     /* TERM: trailing '*' */
	long long date;                 /* TERM before/after: the bound, unix seconds UTC */
	char *meta;                     /* TERM: its FTS5 expression when it is a meta-token
	                                   filter or a guarded word (compile_opts), else NULL */
	struct archive_qnode **kids;    /* AND/OR: >= 2 children; NOT: 1 */
	size_t nkids;
};

/* Parses q.  0 with *root_r (free with archive_query_free), or -1 and
 * *err_r ("unknown field 'form' (at 1)", "unbalanced parenthesis", "empty
 * query", ...). */
int archive_query_parse(const char *q, struct archive_qnode **root_r, char **err_r);
void archive_query_free(struct archive_qnode **root);

struct archive_qparam {
	int is_int;
	long long i;
	char *s;
};

struct archive_qsql {
	char *where;                    /* boolean SQL over table docs */
	char *match;                    /* the whole query is this one MATCH string, else NULL */
	const char *match_table;        /* ... on this FTS table ("fts" or "fta"; static) */
	int all;                        /* the query is '*' (where = "1") */
	struct archive_qparam *params;  /* for where's '?', in order */
	size_t nparams;
	char **words;                   /* positive free-text tokens, for snippets */
	size_t nwords;
	long long date_lo, date_hi;     /* every match has date_lo <= msg_date < date_hi
	                                   (from top-level before:/after:; else LLONG_MIN/MAX) */
};

struct archive_qopts {
	int meta;                       /* the index has meta tokens: fold filters into MATCH */
	long long date_min, date_max;   /* the msg_date range present in the index (meta) */
	const char *const *mailboxes;   /* nmailboxes > 0: AND-ed restriction (lower-case) */
	size_t nmailboxes;
};

/* Translates a parsed query.  Cannot fail on a tree from archive_query_parse. */
void archive_query_sql(const struct archive_qnode *root, struct archive_qsql *out);
/* Parse + translate. 0 / -1 with *err_r. */
int archive_query_compile(const char *q, struct archive_qsql *out, char **err_r);
void archive_qsql_free(struct archive_qsql *s);
/* Parse + translate with options (o may be NULL: as archive_query_compile). */
int archive_query_compile_opts(const char *q, const struct archive_qopts *o,
    struct archive_qsql *out, char **err_r);

/* The meta column text of one document (malloc'd, caller frees). */
char *archive_query_meta_text(const char *mailbox, const char *folder, long long msg_date,
    int has_attachment);

#endif
