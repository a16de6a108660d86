/*
 * milter_doc — the message as the milter client sees and edits it: a list
 * of header fields and a body, so that a milter's header and body changes
 * (SMFIR_ADDHEADER, INSHEADER, CHGHEADER, REPLBODY) can be applied in place
 * and the next milter sees them.  Pure code, no I/O.
 *
 *   struct milter_doc d;
 *   milter_doc_parse(&d, data, len);
 *   milter_doc_value(&d, i, leadspc)            // what SMFIC_HEADER sends
 *   milter_doc_insert(&d, 0, "X-A", " b");      // value: what follows the colon
 *   unsigned char *out = milter_doc_render(&d, &n);   // caller frees
 *   milter_doc_free(&d);
 *
 * Fields the milter never touched are rendered byte for byte as they came;
 * new or changed ones as "Name:" + value + CRLF, the value verbatim (the
 * caller adds the space after the colon) with bare LF turned into CRLF.  The
 * doc owns all its strings.
 */
#ifndef MAILARK_HYGIENE_MILTER_DOC_H
#define MAILARK_HYGIENE_MILTER_DOC_H

#include <stddef.h>

#include "lib/buf.h"

struct milter_field {
	char *name;        /* NULL: a line without a colon (kept, never sent) */
	char *raw;         /* the whole field with its CRLFs, as received or rendered */
	size_t name_len;   /* raw[0..name_len) is the name, raw[name_len] the colon */
};

struct milter_doc {
	struct milter_field *f;
	size_t n, cap;
	int has_separator;  /* the empty line between header and body was there */
	struct buf body;
	int changed;        /* anything edited since parse */
};

/* Never fails: a message without an empty line is all header. */
void milter_doc_parse(struct milter_doc *d, const unsigned char *data, size_t len);
void milter_doc_free(struct milter_doc *d);

/*
 * The value of field i as SMFIC_HEADER carries it: everything after the
 * colon without the final CRLF (folding CRLFs kept); without leadspc the
 * leading blanks are dropped.  Caller frees.
 */
char *milter_doc_value(const struct milter_doc *d, size_t i, int leadspc);

/* Header edits.  Names are checked by the caller (milter_doc_name_ok). */
void milter_doc_add(struct milter_doc *d, const char *name, const char *value);
/* Inserts before the idx-th named field (0: at the top; past the end: at the end). */
void milter_doc_insert(struct milter_doc *d, size_t idx, const char *name, const char *value);
/* The idx-th (1-based) field called name: replaced, or removed when value is
 * empty; added at the end when there is no such field and value is not empty. */
void milter_doc_change(struct milter_doc *d, size_t idx, const char *name, const char *value);
/* Replaces the body (bare LF turned into CRLF). */
void milter_doc_set_body(struct milter_doc *d, const void *data, size_t len);

/* 1 when name is a usable field name (1..200 printable ASCII, no colon or blank). */
int milter_doc_name_ok(const char *name);

/* The message as it stands now (malloc'd, *len_r bytes). */
unsigned char *milter_doc_render(const struct milter_doc *d, size_t *len_r);

#endif
