/*
 * spam_tokens — turns one message into the set of features the spam
 * classifier counts: words of the decoded subject and text parts (HTML
 * reduced to text, its tag names and link hosts kept as hints), header
 * fields (name and value words, prefixed by the field name), URL hosts,
 * MIME part types and attachment extensions.  Each feature is lower-cased,
 * length-limited and hashed to 64 bits; the set comes back sorted and
 * without duplicates, so the same message always gives the same set.
 *
 *   struct spam_tokens t;
 *   spam_tokenize(mime_or_NULL, data, len, &t);   // any thread
 *   ... t.h[0..t.n-1], t.feat ...
 *   spam_tokens_free(&t);                         // frees t.h
 *
 * Input is untrusted: at most SPAM_TEXT_MAX bytes of text, SPAM_TOKENS_MAX
 * features and SPAM_PART_DEPTH levels of MIME nesting are looked at.
 */
#ifndef MAILARK_HYGIENE_SPAM_TOKENS_H
#define MAILARK_HYGIENE_SPAM_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#define SPAM_TEXT_MAX (512 * 1024)
#define SPAM_TOKENS_MAX 6000
#define SPAM_PART_DEPTH 16
/* The top bit of a feature's hash marks those of the raw header block
 * (the classifier lets only a few of them speak). */
#define SPAM_TOKEN_HEADER (1ULL << 63)

typedef struct _GMimeMessage GMimeMessage;

/* What the header/body rules (spam_rules.c) want from the same pass. */
struct spam_features {
	int has_date, has_message_id, has_from, has_in_reply_to, has_references;
	int text_parts;              /* text/plain parts */
	int html_parts;              /* text/html parts */
	size_t html_text_len;        /* visible text of the HTML parts (bytes) */
	size_t text_len;             /* text of the plain parts (bytes) */
	unsigned exclaims;           /* '!' in subject and text */
	unsigned ip_urls;            /* links whose host is an IP literal */
	char subject[256];           /* decoded subject, cut at 255 bytes */
	char from_name[256];         /* From display name (decoded), cut */
	char from_addr[256];         /* From address, cut */
};

struct spam_tokens {
	uint64_t *h;                 /* sorted, unique */
	size_t n, cap;
	struct spam_features feat;
};

/* Never fails (a message GMime cannot parse still has header tokens).
 * mime NULL: parsed here from data. */
void spam_tokenize(GMimeMessage *mime, const unsigned char *data, size_t len,
    struct spam_tokens *t);
/* Which kinds of features to make; spam_tokenize() uses the defaults
 * (bench/spam/tune.c cross-validates others). */
struct spam_tokens_opts {
	int bigrams;                 /* "bi:" pairs of body words */
	int html_tags;               /* "tag:" names of HTML tags */
	int url_paths;               /* "urlpath:" words of link paths */
	int list_values;             /* value words of List-Id, List-Unsubscribe, Precedence */
};
extern const struct spam_tokens_opts spam_tokens_defaults;
void spam_tokenize_opts(GMimeMessage *mime, const unsigned char *data, size_t len,
    const struct spam_tokens_opts *o, struct spam_tokens *t);
void spam_tokens_free(struct spam_tokens *t);
/* The hash of one feature: prefix (e.g. "subject:") and text, as stored
 * for the text (a header block's feature has SPAM_TOKEN_HEADER set too). */
uint64_t spam_token_hash(const char *prefix, const char *text, size_t len);

#endif
