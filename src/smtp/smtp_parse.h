/*
 * smtp_parse — pure parsers for SMTP command lines (RFC 5321, 1869, 3030,
 * 3461, 6152, 6531): the verb, HELO/EHLO names, MAIL FROM / RCPT TO paths
 * with their ESMTP parameters, and BDAT arguments.
 *
 *   struct smtp_cmdline cl;
 *   smtp_parse_command(line, len, &cl);         // line without CRLF
 *   struct smtp_mail m;
 *   enum smtp_perr e = smtp_parse_mail(cl.args, &m);
 *   if (e != SMTP_PERR_OK) reply(smtp_perr_reply(e, 1));
 *
 * No allocation: results live in the caller's structs (fixed-size buffers
 * sized by the RFC limits) or point into the caller's line.  The address is
 * kept as given (source route dropped); `domain` is its lower-cased domain.
 */
#ifndef MAILARK_SMTP_SMTP_PARSE_H
#define MAILARK_SMTP_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_LOCAL_MAX   64
#define SMTP_DOMAIN_MAX  255
#define SMTP_PATH_MAX    256
#define SMTP_HELO_MAX    255
#define SMTP_ENVID_MAX   100
#define SMTP_ORCPT_MAX   500

enum smtp_cmd {
	SMTP_CMD_UNKNOWN,
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,           /* RFC 4954; submission only */
	SMTP_CMD_COUNT,
};

/* Parse outcomes; smtp_perr_reply() gives the matching reply line. */
enum smtp_perr {
	SMTP_PERR_OK,
	SMTP_PERR_SYNTAX,        /* 501 5.5.4 command syntax */
	SMTP_PERR_ADDR_SYNTAX,   /* 501 5.1.7 / 5.1.3 bad address */
	SMTP_PERR_ADDR_LONG,     /* 553 5.1.x too long (local 64, domain 255, path 256) */
	SMTP_PERR_ADDR_UTF8,     /* 553 5.6.7 non-ASCII without SMTPUTF8 */
	SMTP_PERR_NULL_RCPT,     /* 501 5.1.3 <> as recipient */
	SMTP_PERR_PARAM_UNKNOWN, /* 555 5.5.4 unknown ESMTP parameter */
	SMTP_PERR_PARAM_VALUE,   /* 501 5.5.4 bad parameter value or duplicate */
	SMTP_PERR_LINE,          /* 500 5.5.2 NUL or control bytes in the line */
};

struct smtp_cmdline {
	enum smtp_cmd cmd;
	const char *args;        /* into the line, leading spaces skipped; "" if none */
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

struct smtp_path {
	char addr[SMTP_PATH_MAX + 1];      /* local@domain as given, "" for <> */
	char domain[SMTP_DOMAIN_MAX + 1];  /* lower-cased (ASCII), "" for <> / <postmaster> */
	int null_path;                     /* <> */
	int postmaster;                    /* RCPT TO:<postmaster> without domain */
	int utf8;                          /* has non-ASCII bytes */
};

struct smtp_mail {
	struct smtp_path path;
	int has_size;
	uint64_t size;                     /* UINT64_MAX when the number overflowed */
	enum smtp_body body;
	int smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1];    /* xtext as given, "" if none */
};

struct smtp_rcpt {
	struct smtp_path path;
	unsigned notify;                   /* QUEUE_NOTIFY_* bits, 0 = not given */
	char orcpt[SMTP_ORCPT_MAX + 1];    /* "rfc822;xtext" as given, "" if none */
};

/* Splits the verb (case-insensitive) from its arguments.  Unknown verbs → SMTP_CMD_UNKNOWN. */
enum smtp_perr smtp_parse_command(const char *line, size_t len, struct smtp_cmdline *cl);
const char *smtp_cmd_name(enum smtp_cmd cmd);
/* HELO/EHLO argument: one printable ASCII token (domain or address literal). */
enum smtp_perr smtp_parse_helo(const char *args, char out[SMTP_HELO_MAX + 1]);
/* args of MAIL: "FROM:<path> [params]". */
enum smtp_perr smtp_parse_mail(const char *args, struct smtp_mail *m);
/* args of RCPT: "TO:<path> [params]"; utf8_ok when the transaction has SMTPUTF8. */
enum smtp_perr smtp_parse_rcpt(const char *args, int utf8_ok, struct smtp_rcpt *r);
/* Parses "<path>" alone (exposed for tests); is_mail allows <>. */
enum smtp_perr smtp_parse_path(const char *s, size_t len, int is_mail, int utf8_ok,
    struct smtp_path *p);
/* args of BDAT: "n [LAST]". */
enum smtp_perr smtp_parse_bdat(const char *args, uint64_t *size_r, int *last_r);
/* The reply line (without CRLF) for a parse error; is_mail picks 5.1.7 or 5.1.3. */
const char *smtp_perr_reply(enum smtp_perr e, int is_mail);

#endif
