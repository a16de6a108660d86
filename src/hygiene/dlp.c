/*
 * dlp.c — data loss prevention for outbound mail (see dlp.h).
 *
 * The text examined is what the archive index sees of the message
 * (archive_parse: Subject, decoded text/plain, HTML reduced to text, text
 * attachments; capped at ARCHIVE_BODY_MAX) plus the attachment names.  The
 * rules are tried in order keywords, patterns, cards, attachment types; every
 * rule that matches is named (never the matched text), and the tenant's one
 * dlp.action applies to the first.
 *
 * Regular expressions are compiled once per thread and pattern list: a small
 * thread-local cache keeps the compiled list with a copy of its sources, so a
 * new policy snapshot with other patterns recompiles (and an invalid pattern
 * is logged once per thread and change, then ignored).
 */
#include "hygiene/dlp.h"

#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>
#include <magic.h>

#include "archive/archive_parse.h"
#include "hygiene/hygiene.h"
#include "hygiene/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define DLP_MAX_PATTERNS   64
#define DLP_MAGIC_BYTES    (64 * 1024)
#define DLP_MAX_RULES      8           /* rule names kept for the reason */
#define DLP_MAX_PARTS      256

/* ---- Luhn ---- */

int
dlp_luhn_valid(const char *digits)
{
	int d[32];
	size_t n = 0;
	for (const char *p = digits; *p != '\0'; p++) {
		if (*p >= '0' && *p <= '9') {
			if (n == sizeof(d) / sizeof(d[0]))
				return 0;
			d[n++] = *p - '0';
		} else if (*p != ' ' && *p != '-') {
			return 0;
		}
	}
	if (n < 13 || n > 19)
		return 0;
	int sum = 0;
	for (size_t i = 0; i < n; i++) {
		int v = d[n - 1 - i];
		if (i % 2 == 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * A run of digits with single spaces or dashes between them, starting at
 * s[i] (a digit not preceded by a digit or a digit+separator); returns its
 * end and counts its digits.
 */
static size_t
digit_run(const char *s, size_t len, size_t i, size_t *ndigits_r)
{
	size_t n = 0;
	while (i < len) {
		if (is_digit(s[i])) {
			n++;
			i++;
		} else if ((s[i] == ' ' || s[i] == '-') && i + 1 < len && is_digit(s[i + 1]) && n > 0) {
			i++;
		} else {
			break;
		}
	}
	*ndigits_r = n;
	return i;
}

/* Is there a Luhn-valid 13–19 digit card number, not part of a longer run? */
static int
text_has_card(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (!is_digit(s[i])) {
			i++;
			continue;
		}
		size_t nd;
		size_t end = digit_run(s, len, i, &nd);
		if (nd >= 13 && nd <= 19) {
			char tmp[64];
			size_t tl = end - i < sizeof(tmp) - 1 ? end - i : sizeof(tmp) - 1;
			memcpy(tmp, s + i, tl);
			tmp[tl] = '\0';
			int ok = dlp_luhn_valid(tmp);
			explicit_bzero(tmp, sizeof(tmp));
			if (ok)
				return 1;
		}
		i = end;
	}
	return 0;
}

/* ---- keywords ---- */

static int
is_word_char_at(const char *s, const char *end)
{
	/* the character that ends at `end` (looking back) or starts at it */
	gunichar c = g_utf8_get_char_validated(s, end - s);
	if (c == (gunichar)-1 || c == (gunichar)-2)
		return 0;
	return g_unichar_isalnum(c) || c == '_';
}

/* Whole-word, case-insensitive (Unicode case folding) search. */
static int
text_has_keyword(const char *folded, size_t flen, const char *kw)
{
	char *fk = g_utf8_casefold(kw, -1);
	size_t kl = strlen(fk);
	int found = 0;
	if (kl == 0) {
		g_free(fk);
		return 0;
	}
	const char *p = folded, *end = folded + flen;
	while (!found && (p = memmem(p, (size_t)(end - p), fk, kl)) != NULL) {
		int before = 0, after = 0;
		if (p > folded) {
			const char *prev = g_utf8_find_prev_char(folded, p);
			before = prev != NULL && is_word_char_at(prev, p);
		}
		if (p + kl < end)
			after = is_word_char_at(p + kl, end);
		/* a keyword that itself starts or ends mid-word needs no boundary there */
		if (!is_word_char_at(fk, fk + kl))
			before = 0;
		const char *last = g_utf8_find_prev_char(fk, fk + kl);
		if (last != NULL && !is_word_char_at(last, fk + kl))
			after = 0;
		if (!before && !after)
			found = 1;
		p += 1;
	}
	g_free(fk);
	return found;
}

/* ---- patterns (thread-local compiled cache) ---- */

struct pattern_cache {
	char **src;
	regex_t *re;
	int *ok;
	size_t n;
};

static __thread struct pattern_cache pcache;
static __thread magic_t dlp_magic;

/*
 * The per-thread state (compiled patterns, libmagic handle) is freed when
 * its thread ends: a key with a destructor, set once the thread has state.
 */
static pthread_key_t dlp_tls_key;
static pthread_once_t dlp_tls_once = PTHREAD_ONCE_INIT;
static int dlp_tls_ok;

static void pattern_cache_clear(struct pattern_cache *c);

static void
dlp_tls_free(void *arg)
{
	(void)arg;
	pattern_cache_clear(&pcache);
	if (dlp_magic != NULL) {
		magic_close(dlp_magic);
		dlp_magic = NULL;
	}
}

static void
dlp_tls_init(void)
{
	dlp_tls_ok = pthread_key_create(&dlp_tls_key, dlp_tls_free) == 0;
}

static void
dlp_tls_register(void)
{
	if (pthread_once(&dlp_tls_once, dlp_tls_init) == 0 && dlp_tls_ok &&
	    pthread_getspecific(dlp_tls_key) == NULL)
		(void)pthread_setspecific(dlp_tls_key, &dlp_tls_ok);
}

static void
pattern_cache_clear(struct pattern_cache *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->ok[i])
			regfree(&c->re[i]);
		free(c->src[i]);
	}
	free(c->src);
	free(c->re);
	free(c->ok);
	memset(c, 0, sizeof(*c));
}

static int
pattern_cache_matches(const struct pattern_cache *c, const struct policy_list *l, size_t n)
{
	if (c->src == NULL || c->n != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(c->src[i], l->items[i]) != 0)
			return 0;
	return 1;
}

static const struct pattern_cache *
patterns_compiled(const struct policy_list *l)
{
	size_t n = l->n < DLP_MAX_PATTERNS ? l->n : DLP_MAX_PATTERNS;
	if (pattern_cache_matches(&pcache, l, n))
		return &pcache;
	pattern_cache_clear(&pcache);
	dlp_tls_register();
	pcache.src = xcalloc(n + 1, sizeof(char *));
	pcache.re = xcalloc(n + 1, sizeof(regex_t));
	pcache.ok = xcalloc(n + 1, sizeof(int));
	pcache.n = n;
	for (size_t i = 0; i < n; i++) {
		pcache.src[i] = xstrdup(l->items[i]);
		int rc = regcomp(&pcache.re[i], l->items[i], REG_EXTENDED | REG_NOSUB);
		if (rc == 0) {
			pcache.ok[i] = 1;
		} else {
			char msg[128];
			regerror(rc, &pcache.re[i], msg, sizeof(msg));
			log_warn("dlp_pattern_invalid", "index=%zu pattern=%s error=%s", i + 1,
			    log_str(l->items[i]), log_str(msg));
		}
	}
	return &pcache;
}

/* ---- attachment types ---- */

static const char *
magic_type(const unsigned char *data, size_t len)
{
	if (dlp_magic == NULL) {
		dlp_tls_register();
		dlp_magic = magic_open(MAGIC_MIME_TYPE);
		if (dlp_magic == NULL)
			return NULL;
		if (magic_load(dlp_magic, NULL) != 0) {
			magic_close(dlp_magic);
			dlp_magic = NULL;
			return NULL;
		}
	}
	return magic_buffer(dlp_magic, data, len < DLP_MAGIC_BYTES ? len : DLP_MAGIC_BYTES);
}

/* The rule item that names this extension or type, or NULL. */
static const char *
attach_rule_match(const struct policy_list *l, const char *filename, const char *declared,
    const char *detected)
{
	const char *ext = filename != NULL ? strrchr(filename, '.') : NULL;
	for (size_t i = 0; i < l->n; i++) {
		const char *it = l->items[i];
		if (strchr(it, '/') != NULL) {
			if ((declared != NULL && strcasecmp(it, declared) == 0) ||
			    (detected != NULL && strcasecmp(it, detected) == 0))
				return it;
			continue;
		}
		const char *want = it;
		if (want[0] == '*')
			want++;
		if (want[0] == '.')
			want++;
		if (ext != NULL && want[0] != '\0' && strcasecmp(ext + 1, want) == 0)
			return it;
	}
	return NULL;
}

static const char *
part_attach_rule(GMimePart *part, const struct policy_list *l)
{
	const char *filename = g_mime_part_get_filename(part);
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
	char declared[256] = "";
	if (ct != NULL) {
		const char *t = g_mime_content_type_get_media_type(ct);
		const char *s = g_mime_content_type_get_media_subtype(ct);
		int n = snprintf(declared, sizeof(declared), "%s/%s", t != NULL ? t : "",
		    s != NULL ? s : "");
		if (n < 0 || (size_t)n >= sizeof(declared))
			declared[0] = '\0';
	}
	const char *hit = attach_rule_match(l, filename, declared, NULL);
	if (hit != NULL)
		return hit;
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	if (w == NULL)
		return NULL;
	GMimeStream *ms = g_mime_stream_mem_new();
	const char *ret = NULL;
	if (g_mime_data_wrapper_write_to_stream(w, ms) >= 0) {
		GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(ms));
		const char *detected = magic_type(ba->data, ba->len);
		ret = attach_rule_match(l, filename, declared, detected);
	}
	g_object_unref(ms);
	return ret;
}

static const char *
message_attach_rule(GMimeMessage *msg, const struct policy_list *l)
{
	GMimeObject *top = g_mime_message_get_mime_part(msg);
	if (top == NULL)
		return NULL;
	GMimePartIter *it = g_mime_part_iter_new(top);
	const char *hit = NULL;
	size_t seen = 0;
	/* a lone top-level part is not iterated: look at it first */
	if (GMIME_IS_PART(top))
		hit = part_attach_rule(GMIME_PART(top), l);
	while (hit == NULL && seen++ < DLP_MAX_PARTS && g_mime_part_iter_is_valid(it)) {
		GMimeObject *o = g_mime_part_iter_get_current(it);
		if (o != NULL && GMIME_IS_PART(o))
			hit = part_attach_rule(GMIME_PART(o), l);
		if (!g_mime_part_iter_next(it))
			break;
	}
	g_mime_part_iter_free(it);
	return hit;
}

/* ---- the stage ---- */

struct dlp_hits {
	char *names[DLP_MAX_RULES];
	size_t n;
};

static void
hit_add(struct dlp_hits *h, char *name)
{
	if (h->n < DLP_MAX_RULES)
		h->names[h->n++] = name;
	else
		free(name);
}

static void
hits_free(struct dlp_hits *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->names[i]);
}

/* Subject and body text as one UTF-8 string (owned by b). */
static void
collect_text(const struct archive_doc *doc, struct buf *b)
{
	if (doc->subject != NULL) {
		buf_append_str(b, doc->subject);
		buf_append_char(b, '\n');
	}
	if (doc->body != NULL)
		buf_append_str(b, doc->body);
	if (doc->filenames != NULL) {
		buf_append_char(b, '\n');
		buf_append_str(b, doc->filenames);
	}
}

static void
check_text_rules(const struct hygiene_policy *p, const char *text, size_t len,
    struct dlp_hits *hits)
{
	if (p->dlp_keywords.n > 0) {
		char *folded = g_utf8_casefold(text, (gssize)len);
		size_t flen = strlen(folded);
		for (size_t i = 0; i < p->dlp_keywords.n; i++)
			if (text_has_keyword(folded, flen, p->dlp_keywords.items[i]))
				hit_add(hits, buf_printf("keyword %s", p->dlp_keywords.items[i]));
		g_free(folded);
	}
	if (p->dlp_patterns.n > 0) {
		const struct pattern_cache *c = patterns_compiled(&p->dlp_patterns);
		for (size_t i = 0; i < c->n; i++)
			if (c->ok[i] && regexec(&c->re[i], text, 0, NULL, 0) == 0)
				hit_add(hits, buf_printf("pattern %zu", i + 1));
	}
	if (p->dlp_cards && text_has_card(text, len))
		hit_add(hits, xstrdup("card"));
}

static void
notify_prepare(const struct hygiene_msg *m, struct hygiene_result *r, const char *rules,
    const char *subject)
{
	struct buf t = BUF_INIT;
	buf_appendf(&t, "A message matched the data loss prevention rules (%s).\n", rules);
	buf_appendf(&t, "Sender: %s\n", m->sender[0] != '\0' ? m->sender : "<>");
	buf_append_str(&t, "Recipients:");
	for (size_t i = 0; i < m->nrcpts; i++)
		buf_appendf(&t, " %s", m->rcpts[i]);
	buf_appendf(&t, "\nSubject: %s\n", subject != NULL ? subject : "");
	if (m->qid != NULL)
		buf_appendf(&t, "Queue id: %s\n", m->qid);
	buf_append_str(&t, "The message was delivered.\n");
	free(r->notify_to);
	free(r->notify_text);
	r->notify_to = xstrdup(m->pol->dlp_notify);
	r->notify_text = buf_steal(&t);
}

static void
apply_action(const struct hygiene_msg *m, struct hygiene_result *r, const struct dlp_hits *h,
    const char *subject)
{
	struct buf rules = BUF_INIT;
	for (size_t i = 0; i < h->n; i++)
		buf_appendf(&rules, "%s%s", i > 0 ? ", " : "", h->names[i]);
	const char *rl = buf_cstr(&rules);
	switch (m->pol->dlp_action) {
	case DLP_ACT_BLOCK: {
		char *reply = buf_printf(
		    "550 5.7.1 Message blocked by data loss prevention policy (%s)", h->names[0]);
		hygiene_result_raise(r, HYGIENE_REJECT, reply, "dlp:block %s", rl);
		free(reply);
		break;
	}
	case DLP_ACT_HOLD:
		hygiene_result_raise(r, HYGIENE_QUARANTINE, NULL, "dlp:hold %s", rl);
		break;
	case DLP_ACT_REQUIRE_TLS:
		r->require_tls = 1;
		hygiene_result_reason(r, "dlp:require_tls %s", rl);
		break;
	case DLP_ACT_NOTIFY:
		if (m->pol->dlp_notify != NULL && m->pol->dlp_notify[0] != '\0')
			notify_prepare(m, r, rl, subject);
		hygiene_result_reason(r, "dlp:notify %s", rl);
		break;
	case DLP_ACT_NONE:
		hygiene_result_reason(r, "dlp:match %s", rl);
		break;
	}
	static const char *const acts[] = { "none", "block", "hold", "require_tls", "notify" };
	unsigned a = (unsigned)m->pol->dlp_action;
	log_info("dlp_match", "id=%s tenant=%s action=%s rules=%s", log_str(m->qid),
	    log_str(m->tenant), a < 5 ? acts[a] : "?", log_str(rl));
	buf_free(&rules);
}

static int
policy_has_rules(const struct hygiene_policy *p)
{
	return p->dlp_keywords.n > 0 || p->dlp_patterns.n > 0 || p->dlp_cards ||
	    p->dlp_attach_types.n > 0;
}

int
dlp_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r)
{
	(void)err_r;
	const struct hygiene_policy *p = m->pol;
	if (p == NULL || !policy_has_rules(p) || m->dir != QUEUE_OUTBOUND)
		return 0;
	const unsigned char *data;
	size_t len;
	hygiene_result_content(m, r, &data, &len);
	struct archive_doc doc;
	char *perr = NULL;
	if (archive_parse(data, len, &doc, &perr) < 0) {
		free(perr);
		return 0;
	}
	struct dlp_hits hits = { { NULL }, 0 };
	struct buf text = BUF_INIT;
	collect_text(&doc, &text);
	check_text_rules(p, buf_cstr(&text), text.len, &hits);
	if (text.data != NULL)
		explicit_bzero(text.data, text.len);
	buf_free(&text);
	if (p->dlp_attach_types.n > 0) {
		GMimeMessage *msg = data == m->data ? m->mime : archive_parse_message(data, len);
		if (msg != NULL) {
			const char *hit = message_attach_rule(msg, &p->dlp_attach_types);
			if (hit != NULL)
				hit_add(&hits, buf_printf("attachment %s", hit));
			if (msg != m->mime)
				g_object_unref(msg);
		}
	}
	if (hits.n > 0)
		apply_action(m, r, &hits, doc.subject);
	hits_free(&hits);
	archive_doc_free(&doc);
	return 0;
}
