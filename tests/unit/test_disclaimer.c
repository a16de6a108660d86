/*
 * Unit tests for src/hygiene/disclaimer.c: insertion into crafted messages
 * of each shape (plain 7bit, QP latin-1, base64 UTF-8, alternative, mixed
 * with an attachment, related HTML), charset and transfer-encoding changes,
 * template variables and HTML escaping, and the cases that must stay
 * untouched (signed, S/MIME, PGP inline, already disclaimed, lone PDF,
 * inbound, empty templates).  Results are re-parsed with GMime.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "archive/archive_parse.h"
#include "hygiene/disclaimer.h"
#include "hygiene/hygiene.h"
#include "hygiene/policy.h"
#include "unit_hygiene.h"

static struct hygiene_policy pol;
static char *rcpts[] = { (char *)"bob@example.net", NULL };

#define TEXT_T "--\\nSent by {sender_name} <{sender}> of {sender_domain} ({tenant}).\\nConfidential."
#define HTML_T "<p>Sent by {sender_name} at {tenant} {unknown}</p>"

static void
policy_reset(const char *text, const char *html)
{
	pol = *policy_defaults();
	pol.disclaimer_text = (char *)text;
	pol.disclaimer_html = (char *)html;
}

/* Runs the stage; returns the rewritten message (caller frees) or NULL. */
static char *
run_dir(const char *msg, struct hygiene_result *r, enum queue_direction dir, const char *name)
{
	struct hygiene_msg m;
	unit_hygiene_msg(&m, &pol, dir, "alice@acme.test", rcpts, msg, strlen(msg));
	m.header_from = "alice@acme.test";
	m.header_from_name = name;
	unit_hygiene_run(disclaimer_stage, &m, r);
	if (r->rewritten == NULL)
		return NULL;
	char *out = malloc(r->rewritten_len + 1);
	assert_non_null(out);
	memcpy(out, r->rewritten, r->rewritten_len);
	out[r->rewritten_len] = '\0';
	return out;
}

static char *
run(const char *msg, struct hygiene_result *r)
{
	return run_dir(msg, r, QUEUE_OUTBOUND, "Alice Smith");
}

/* The decoded UTF-8 text of the first text/<subtype> part (g_free). */
static char *
part_text(const char *msg, const char *subtype, char **charset_r, char **cte_r)
{
	GMimeMessage *mm = archive_parse_message(msg, strlen(msg));
	assert_non_null(mm);
	GMimeObject *top = g_mime_message_get_mime_part(mm);
	GMimePartIter *it = g_mime_part_iter_new(top);
	GMimeObject *found = NULL;
	if (GMIME_IS_TEXT_PART(top) &&
	    g_mime_content_type_is_type(g_mime_object_get_content_type(top), "text", subtype))
		found = top;
	while (found == NULL && g_mime_part_iter_is_valid(it)) {
		GMimeObject *o = g_mime_part_iter_get_current(it);
		if (GMIME_IS_TEXT_PART(o) &&
		    g_mime_content_type_is_type(g_mime_object_get_content_type(o), "text", subtype))
			found = o;
		if (!g_mime_part_iter_next(it))
			break;
	}
	g_mime_part_iter_free(it);
	char *text = NULL;
	if (found != NULL) {
		text = g_mime_text_part_get_text(GMIME_TEXT_PART(found));
		if (charset_r != NULL) {
			const char *cs = g_mime_object_get_content_type_parameter(found, "charset");
			*charset_r = cs != NULL ? g_strdup(cs) : NULL;
		}
		if (cte_r != NULL) {
			const char *c = g_mime_object_get_header(found, "Content-Transfer-Encoding");
			*cte_r = c != NULL ? g_strdup(c) : NULL;
		}
	}
	g_object_unref(mm);
	return text;
}

static int
has(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

#define HDRS "Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n" \
	"From: Alice Smith <alice@acme.test>\r\nTo: bob@example.net\r\nSubject: hi\r\n" \
	"MIME-Version: 1.0\r\n"

static void
test_plain_7bit(void **state)
{
	(void)state;
	policy_reset(TEXT_T, HTML_T);
	const char *msg = HDRS "Content-Type: text/plain; charset=us-ascii\r\n\r\nHello Bob.\r\n";
	struct hygiene_result r;
	char *out = run(msg, &r);
	assert_non_null(out);
	/* headers unchanged and first */
	assert_memory_equal(out, msg, strlen(msg) - strlen("Hello Bob.\r\n"));
	char *cs = NULL, *cte = NULL;
	char *t = part_text(out, "plain", &cs, &cte);
	assert_true(has(t, "Hello Bob.\r\n\r\n--\r\nSent by Alice Smith <alice@acme.test> of "
	    "acme.test (acme).\r\nConfidential.\r\n"));
	assert_null(cte);
	assert_string_equal(cs, "us-ascii");
	assert_true(has(r.reasons.data, "disclaimer:added"));
	g_free(t);
	g_free(cs);
	hygiene_result_free(&r);
	free(out);
}

static void
test_plain_7bit_non_ascii_becomes_qp(void **state)
{
	(void)state;
	policy_reset("Gesendet von {sender_name}", "");
	const char *msg = HDRS "Content-Type: text/plain\r\n\r\nHallo.\r\n";
	struct hygiene_result r;
	memset(&r, 0, sizeof(r));
	struct hygiene_msg m;
	(void)m;
	char *out = run_dir(msg, &r, QUEUE_OUTBOUND, "Jürgen Weiß");
	assert_non_null(out);
	char *cs = NULL, *cte = NULL;
	char *t = part_text(out, "plain", &cs, &cte);
	assert_true(has(t, "Hallo.\r\n\r\nGesendet von Jürgen Weiß"));
	assert_string_equal(cs, "utf-8");
	assert_non_null(cte);
	assert_true(has(cte, "quoted-printable"));
	/* the raw message is 7bit clean */
	for (const char *p = out; *p != '\0'; p++)
		assert_true((unsigned char)*p < 0x80);
	g_free(t);
	g_free(cs);
	g_free(cte);
	hygiene_result_free(&r);
	free(out);
}

static void
test_qp_latin1(void **state)
{
	(void)state;
	policy_reset("Gr\xc3\xbc\xc3\x9f" "e von {sender_name}", "");
	const char *msg = HDRS
	    "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "Sch=F6ne Gr=FC=DFe und ein langer Satz, der weich umbrochen wird, damit wir =\r\n"
	    "das auch testen.\r\n";
	struct hygiene_result r;
	char *out = run(msg, &r);
	assert_non_null(out);
	char *cs = NULL, *cte = NULL;
	char *t = part_text(out, "plain", &cs, &cte);
	assert_true(has(t, "Schöne Grüße und ein langer Satz, der weich umbrochen wird, damit wir "
	    "das auch testen.\r\n\r\nGrüße von Alice Smith"));
	assert_string_equal(cs, "iso-8859-1");          /* kept: the text fits latin-1 */
	assert_true(has(cte, "quoted-printable"));
	assert_true(has(out, "Gr=FC=DFe von Alice Smith"));
	g_free(t);
	g_free(cs);
	g_free(cte);
	hygiene_result_free(&r);
	free(out);
}

static void
test_latin1_switches_to_utf8(void **state)
{
	(void)state;
	policy_reset("\xe2\x82\xac von {sender_name} \xe4\xb8\xad", "");   /* € … 中: not latin-1 */
	const char *msg = HDRS
	    "Content-Type: text/plain; charset=iso-8859-1; format=flowed\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\nSch\xf6n.\r\n";
	struct hygiene_result r;
	char *out = run(msg, &r);
	assert_non_null(out);
	char *cs = NULL;
	char *t = part_text(out, "plain", &cs, NULL);
	assert_true(has(t, "Schön.\r\n\r\n€ von Alice Smith 中"));
	assert_string_equal(cs, "utf-8");
	assert_true(has(out, "format=\"flowed\""));
	g_free(t);
	g_free(cs);
	hygiene_result_free(&r);
	free(out);
}

static void
test_base64_utf8(void **state)
{
	(void)state;
	policy_reset(TEXT_T, "");
	/* "Grüße aus Köln\r\n" */
	const char *msg = HDRS
	    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	    "R3LDvMOfZSBhdXMgS8O2bG4NCg==\r\n";
	struct hygiene_result r;
	char *out = run(msg, &r);
	assert_non_null(out);
	char *cte = NULL;
	char *t = part_text(out, "plain", NULL, &cte);
	assert_true(has(t, "Grüße aus Köln\r\n\r\n--\r\nSent by Alice Smith"));
	assert_true(has(cte, "base64"));
	g_free(t);
	g_free(cte);
	hygiene_result_free(&r);
	free(out);
}

static const char *alt_msg = HDRS
    "Content-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n"
    "preamble\r\n"
    "--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello plain\r\n"
    "--ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    "<html><body><p>Hello html</p></BODY></html>\r\n"
    "--ALT--\r\nepilogue\r\n";

static void
test_alternative(void **state)
{
	(void)state;
	policy_reset(TEXT_T, HTML_T);
	struct hygiene_result r;
	char *out = run_dir(alt_msg, &r, QUEUE_OUTBOUND, "Al <b>&");
	assert_non_null(out);
	char *t = part_text(out, "plain", NULL, NULL);
	char *h = part_text(out, "html", NULL, NULL);
	assert_true(has(t, "Hello plain\r\n\r\n--\r\nSent by Al <b>& <alice@acme.test>"));
	assert_true(has(h, "<p>Hello html</p><div class=\"mailark-disclaimer\"><p>Sent by "
	    "Al &lt;b&gt;&amp; at acme {unknown}</p></div>\r\n</BODY></html>"));
	/* structure kept: preamble, epilogue, boundaries */
	assert_true(has(out, "\r\n\r\npreamble\r\n--ALT\r\n"));
	assert_true(has(out, "--ALT--\r\nepilogue\r\n"));
	assert_int_equal(count(out, "--ALT"), 3);
	g_free(t);
	g_free(h);
	hygiene_result_free(&r);
	free(out);
}

static void
test_already_disclaimed(void **state)
{
	(void)state;
	policy_reset(TEXT_T, HTML_T);
	struct hygiene_result r;
	char *once = run(alt_msg, &r);
	assert_non_null(once);
	hygiene_result_free(&r);
	/* a reply quoting it, or the same message again: untouched */
	char *twice = run(once, &r);
	assert_null(twice);
	assert_true(has(r.reasons.data, "disclaimer:skipped present"));
	hygiene_result_free(&r);
	const char *reply = HDRS "Content-Type: text/plain\r\n\r\nThanks!\r\n\r\n"
	    "> Hello\r\n> --\r\n> Sent by Alice Smith <alice@acme.test> of acme.test (acme).\r\n";
	assert_null(run(reply, &r));
	hygiene_result_free(&r);
	/* another sender of the tenant replying: the company text is there */
	const char *other = HDRS "Content-Type: text/plain\r\n\r\nOK\r\n\r\n"
	    "> Sent by Carol <carol@acme.test> of acme.test (acme).\r\n> Confidential.\r\n";
	policy_reset("Sent by {sender_name}\\nAcme Corp. confidential notice", "");
	char *o1 = run(other, &r);
	assert_non_null(o1);                 /* this template's text is not there */
	hygiene_result_free(&r);
	/* now it is: Dave replying gets no second one although his name differs */
	assert_null(run_dir(o1, &r, QUEUE_OUTBOUND, "Dave Jones"));
	hygiene_result_free(&r);
	free(o1);
	free(once);
}

static void
test_mixed_with_attachment(void **state)
{
	(void)state;
	policy_reset(TEXT_T, HTML_T);
	const char *att =
	    "--MIX\r\nContent-Type: text/plain; name=\"notes.txt\"\r\n"
	    "Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\nattached text\r\n"
	    "--MIX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\nJVBERi0xLjQK\r\n"
	    "--MIX--\r\n";
	char msg[4096];
	snprintf(msg, sizeof(msg), "%s%s%s%s", HDRS,
	    "Content-Type: multipart/mixed; boundary=\"MIX\"\r\n\r\n"
	    "--MIX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody text",
	    "\r\n", att);
	struct hygiene_result r;
	char *out = run(msg, &r);
	assert_non_null(out);
	/* the attachments are byte-identical: everything after the body part is */
	size_t al = strlen(att);
	assert_true(strlen(out) > al);
	assert_memory_equal(out + strlen(out) - al, att, al);
	char *t = part_text(out, "plain", NULL, NULL);
	assert_true(has(t, "Body text\r\n\r\n--\r\nSent by Alice Smith"));
	g_free(t);
	assert_int_equal(count(out, "Sent by"), 1);
	hygiene_result_free(&r);
	free(out);
}

static void
test_related_html(void **state)
{
	(void)state;
	policy_reset("", HTML_T);
	const char *msg = HDRS
	    "Content-Type: multipart/alternative; boundary=\"A\"\r\n\r\n"
	    "--A\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
	    "--A\r\nContent-Type: multipart/related; boundary=\"R\"\r\n\r\n"
	    "--R\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "<html><body>hi <img src=3D\"cid:x\"></body></html>\r\n"
	    "--R\r\nContent-Type: image/png\r\nContent-ID: <x>\r\n\r\nPNGDATA\r\n--R--\r\n"
	    "--A--\r\n";
	struct hygiene_result r;
	char *out = run(msg, &r);
	assert_non_null(out);
	char *h = part_text(out, "html", NULL, NULL);
	assert_true(has(h, "hi <img src=\"cid:x\"><div class=\"mailark-disclaimer\"><p>Sent by Alice"));
	char *t = part_text(out, "plain", NULL, NULL);
	assert_string_equal(t, "plain");              /* no text template: plain untouched */
	assert_true(has(out, "--R\r\nContent-Type: image/png\r\nContent-ID: <x>\r\n\r\nPNGDATA\r\n--R--"));
	g_free(h);
	g_free(t);
	hygiene_result_free(&r);
	free(out);
}

static void
test_signed_untouched(void **state)
{
	(void)state;
	policy_reset(TEXT_T, HTML_T);
	const char *smime = HDRS
	    "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
	    "micalg=sha-256; boundary=\"S\"\r\n\r\n"
	    "--S\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n"
	    "--S\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--S--\r\n";
	struct hygiene_result r;
	assert_null(run(smime, &r));
	assert_true(has(r.reasons.data, "disclaimer:skipped signed"));
	hygiene_result_free(&r);
	const char *p7 = HDRS "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n";
	assert_null(run(p7, &r));
	assert_true(has(r.reasons.data, "disclaimer:skipped signed"));
	hygiene_result_free(&r);
	const char *pgp = HDRS "Content-Type: text/plain\r\n\r\n"
	    "-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nhello\r\n"
	    "-----BEGIN PGP SIGNATURE-----\r\nxx\r\n-----END PGP SIGNATURE-----\r\n";
	assert_null(run(pgp, &r));
	assert_true(has(r.reasons.data, "disclaimer:skipped signed"));
	hygiene_result_free(&r);
	/* a signed part inside mixed */
	const char *nested = HDRS "Content-Type: multipart/mixed; boundary=\"M\"\r\n\r\n"
	    "--M\r\nContent-Type: multipart/signed; boundary=\"S\"\r\n\r\n"
	    "--S\r\nContent-Type: text/plain\r\n\r\nx\r\n--S\r\n"
	    "Content-Type: application/pgp-signature\r\n\r\nsig\r\n--S--\r\n--M--\r\n";
	assert_null(run(nested, &r));
	hygiene_result_free(&r);
}

static void
test_untouched_cases(void **state)
{
	(void)state;
	struct hygiene_result r;
	const char *plain = HDRS "Content-Type: text/plain\r\n\r\nHello\r\n";
	/* empty templates */
	policy_reset("", "");
	assert_null(run(plain, &r));
	assert_int_equal(r.reasons.len, 0);
	hygiene_result_free(&r);
	/* inbound */
	policy_reset(TEXT_T, HTML_T);
	assert_null(run_dir(plain, &r, QUEUE_INBOUND, "Alice"));
	hygiene_result_free(&r);
	/* a lone PDF: skipped */
	const char *pdf = HDRS "Content-Type: application/pdf\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n";
	assert_null(run(pdf, &r));
	assert_true(has(r.reasons.data, "disclaimer:skipped no text part"));
	hygiene_result_free(&r);
	/* garbage does not crash */
	const char *junk = "no headers at all";
	assert_null(run(junk, &r));
	hygiene_result_free(&r);
	const char *broken = HDRS "Content-Type: multipart/mixed; boundary=\"Z\"\r\n\r\n--Z\r\n";
	char *o = run(broken, &r);
	free(o);
	hygiene_result_free(&r);
}

/* Odd structures are read as Python's email and GMime read them. */
static void
test_parser_agreement(void **state)
{
	(void)state;
	policy_reset(TEXT_T, "");
	struct hygiene_result r;
	/* the first Content-Type counts: a multipart without a text part */
	const char *dup = HDRS "Content-Type: multipart/mixed; boundary=\"B\"\r\n"
	    "Content-Type: text/plain\r\n\r\n--B\r\nContent-Type: image/png\r\n\r\nPNG\r\n--B--\r\n";
	assert_null(run(dup, &r));
	hygiene_result_free(&r);
	/* a digest's parts are messages by default: not text */
	const char *digest = HDRS "Content-Type: multipart/digest; boundary=\"D\"\r\n\r\n"
	    "--D\r\n\r\nFrom: x@y.test\r\nSubject: inner\r\n\r\ninner body\r\n--D--\r\n";
	assert_null(run(digest, &r));
	hygiene_result_free(&r);
	/* a delivery report is not branded */
	const char *dsn = HDRS "Content-Type: multipart/report; report-type=delivery-status; "
	    "boundary=\"R\"\r\n\r\n--R\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
	    "--R\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--R--\r\n";
	assert_null(run(dsn, &r));
	hygiene_result_free(&r);
	/* an mbox "From " line: no header block, no body to change */
	const char *mbox = "From alice@acme.test Mon Jan  1 00:00:00 2024\r\n"
	    "From: alice@acme.test\r\nSubject: x\r\n\r\nbody\r\n";
	assert_null(run(mbox, &r));
	hygiene_result_free(&r);
	/* a folded Content-Type is read whole */
	const char *folded = HDRS "Content-Type: multipart/alternative;\r\n"
	    "\tboundary=\"F\"\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\nplain\r\n--F--\r\n";
	char *out = run(folded, &r);
	assert_non_null(out);
	assert_true(has(out, "plain\r\n\r\n--\r\nSent by Alice Smith"));
	assert_true(has(out, "\r\n--F--\r\n"));
	free(out);
	hygiene_result_free(&r);
}

static void
test_lf_only_and_no_content_type(void **state)
{
	(void)state;
	policy_reset("Sent by {sender}", "");
	const char *msg = "From: alice@acme.test\nSubject: x\n\nline\n";
	struct hygiene_result r;
	char *out = run(msg, &r);
	assert_non_null(out);
	assert_string_equal(out, "From: alice@acme.test\nSubject: x\n\nline\n\nSent by alice@acme.test\n");
	hygiene_result_free(&r);
	free(out);
}

int
main(void)
{
	assert_int_equal(archive_parse_init(), 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_7bit),
		cmocka_unit_test(test_plain_7bit_non_ascii_becomes_qp),
		cmocka_unit_test(test_qp_latin1),
		cmocka_unit_test(test_latin1_switches_to_utf8),
		cmocka_unit_test(test_base64_utf8),
		cmocka_unit_test(test_alternative),
		cmocka_unit_test(test_already_disclaimed),
		cmocka_unit_test(test_mixed_with_attachment),
		cmocka_unit_test(test_related_html),
		cmocka_unit_test(test_signed_untouched),
		cmocka_unit_test(test_untouched_cases),
		cmocka_unit_test(test_parser_agreement),
		cmocka_unit_test(test_lf_only_and_no_content_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
