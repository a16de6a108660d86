/*
 * imap_parse — the IMAP command syntax (RFC 3501 9, RFC 7888 LITERAL+):
 * tags, atoms, quoted strings, literals, parenthesised lists and sequence
 * sets.  Pure functions; no I/O.
 *
 * The session (imap_session.c) frames a command: it reads a line, and when
 * the line ends in a literal announcement "{n}" or "{n+}"
 * (imap_literal_announced) it reads n more bytes and then the next line,
 * appending everything to one buffer exactly as received but without the
 * final CRLF.  imap_parse_command() then turns that buffer into a tree:
 *
 *   struct imap_cmd cmd;
 *   if (imap_parse_command(data, len, &cmd, &err) < 0) ... "BAD"
 *   use(cmd.tag, cmd.name, cmd.args, cmd.nargs);
 *   imap_cmd_clear(&cmd);
 *
 * Atoms are read leniently the way servers do: '*' and '%' (LIST patterns,
 * sequence sets) and '\' (flags) are atom characters, and "[...]" inside
 * an atom is taken whole so "BODY.PEEK[HEADER.FIELDS (A B)]<0.100>" is one
 * atom.  The tree owns its strings (NUL-terminated; literals may contain
 * NULs, see len).
 */
#ifndef MAILARK_IMAP_IMAP_PARSE_H
#define MAILARK_IMAP_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define IMAP_TAG_MAX 64
#define IMAP_LIST_DEPTH_MAX 32

enum imap_arg_type {
	IMAP_ARG_ATOM,        /* includes NIL, numbers, flags, seq sets */
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	char *str;                 /* ATOM / QUOTED / LITERAL: value, NUL-terminated */
	size_t len;                /* bytes of str, or elements of list */
	struct imap_arg *list;     /* LIST */
};

struct imap_cmd {
	char *tag;
	char *name;                /* upper-cased */
	struct imap_arg *args;
	size_t nargs;
};

/*
 * 1 when the line (without CRLF) ends in "{n}" or "{n+}": *n_r, *plus_r.
 * 0 when not; -1 when it ends in a malformed or oversized announcement
 * ("{abc}", more than 20 digits).
 */
int imap_literal_announced(const char *line, size_t len, uint64_t *n_r, int *plus_r);

/*
 * Parses one framed command.  0 with *cmd filled; -1 with *err_r (static
 * text for a BAD reply).  On failure cmd->tag is still set when a tag
 * could be read (so the BAD can be tagged) and must be cleared.
 */
int imap_parse_command(const char *data, size_t len, struct imap_cmd *cmd, const char **err_r);
void imap_cmd_clear(struct imap_cmd *cmd);

/* Argument helpers: 1 when arg is a string type (atom, quoted, literal). */
int imap_arg_is_string(const struct imap_arg *a);
/* astring: atom, quoted or literal; NIL is an atom here. */
int imap_arg_is_nil(const struct imap_arg *a);

/* ---- sequence sets (RFC 3501 9: sequence-set) ------------------------- */

#define IMAP_SEQ_STAR UINT32_MAX

struct imap_seq_range {
	uint32_t lo, hi;           /* as written, '*' = IMAP_SEQ_STAR; lo <= hi after fixing */
};

struct imap_seqset {
	struct imap_seq_range *r;
	size_t n;
};

/* "1,3:5,7:*" -> ranges.  0 / -1 (syntax, zero). */
int imap_seqset_parse(const char *s, struct imap_seqset *set);
/* Does the text name the number 0 (neither a seq-number nor a UID, RFC 3501 9:
 * BAD "Invalid messageset" / "Invalid uidset" rather than a syntax error)? */
int imap_seqset_names_zero(const char *s);
/* Does the set contain v when '*' stands for star (the largest number in use)? */
int imap_seqset_contains(const struct imap_seqset *set, uint32_t v, uint32_t star);
void imap_seqset_free(struct imap_seqset *set);
/*
 * The set with '*' replaced by star, every range lo <= hi, sorted by lo and
 * merged (overlapping or adjacent ranges become one): contains the same
 * numbers as set.  out is the caller's (imap_seqset_free).
 */
void imap_seqset_resolve(const struct imap_seqset *set, uint32_t star, struct imap_seqset *out);
/* The largest number the set names when '*' stands for star. */
uint32_t imap_seqset_max(const struct imap_seqset *set, uint32_t star);

/* Quotes s for a response: a quoted string when possible, else a literal. */
struct buf;
void imap_quote(struct buf *out, const char *s, size_t len);

#endif
