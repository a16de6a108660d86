/*
 * NAME
 *	dsn - RFC 3464 delivery status notifications
 * DESCRIPTION
 *	dsn_compose() writes a complete multipart/report message:
 *	  1. text/plain: what happened, for a human
 *	  2. message/delivery-status: Reporting-MTA, Arrival-Date, then per
 *	     recipient Final-Recipient, Original-Recipient, Action, Status,
 *	     Remote-MTA, Diagnostic-Code
 *	  3. the original: message/rfc822 (RET=FULL, when it fits under
 *	     DSN_MAX_RETURN) or text/rfc822-headers (RET=HDRS or too big)
 *	Every line ends in CRLF: text from outside (replies, addresses) is made
 *	one printable line, and the original's line ends are normalised.
 */
#include "deliver/dsn.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "queue/queue.h"

#define DSN_MAX_FIELD 900

/* Appends s as one printable ASCII line fragment (no CR/LF), capped. */
static void
append_oneline(struct buf *out, const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && n < DSN_MAX_FIELD; p++, n++)
		buf_append_char(out, (*p >= 0x20 && *p < 0x7f) ? (char)*p : ' ');
}

static void
append_date(struct buf *out, time_t t)
{
	struct tm tm;
	char date[64];
	gmtime_r(&t, &tm);
	if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		date[0] = '\0';
	buf_append_str(out, date);
}

/* The text after "... said: ", or the whole reply. */
static const char *
reply_text(const char *reply)
{
	const char *said = strstr(reply, " said: ");
	return said != NULL ? said + 7 : reply;
}

static int
three_digit_code(const char *s)
{
	return (s[0] == '2' || s[0] == '4' || s[0] == '5') && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) && (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
}

int
dsn_wanted(const struct queue_envelope *env, const struct queue_rcpt *r)
{
	if (env->sender == NULL || env->sender[0] == '\0')
		return 0;
	if (r->notify & QUEUE_NOTIFY_NEVER)
		return 0;
	return r->notify == 0 || (r->notify & QUEUE_NOTIFY_FAILURE) != 0;
}

void
dsn_status_from_reply(const char *reply, char fallback_class, char out[16])
{
	const char *t = reply != NULL ? reply_text(reply) : "";
	const char *p = t;
	snprintf(out, 16, "%c.0.0", fallback_class);
	if (three_digit_code(t)) {
		snprintf(out, 16, "%c.0.0", t[0]);
		p = t + 4;
		if (t[3] == '\0' || p[0] != t[0])
			return;
	} else if (*p != '2' && *p != '4' && *p != '5') {
		return;
	}
	if (p[1] != '.')
		return;
	size_t i = 2, d1 = 0, d2 = 0;
	while (isdigit((unsigned char)p[i]) && d1 < 3) {
		i++;
		d1++;
	}
	if (d1 == 0 || p[i] != '.')
		return;
	i++;
	while (isdigit((unsigned char)p[i]) && d2 < 3) {
		i++;
		d2++;
	}
	if (d2 == 0 || (p[i] != ' ' && p[i] != '\0'))
		return;
	snprintf(out, 16, "%.*s", (int)i, p);
}

static void
compose_headers(const struct dsn_params *p, struct buf *out, const char *boundary)
{
	buf_appendf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", p->hostname);
	buf_append_str(out, "To: <");
	append_oneline(out, p->env->sender);
	buf_append_str(out, ">\r\n");
	buf_append_str(out, p->kind == DSN_FAILED ?
	    "Subject: Undelivered Mail Returned to Sender\r\n" :
	    "Subject: Delayed Mail (still being retried)\r\n");
	buf_append_str(out, "Date: ");
	append_date(out, p->now);
	buf_appendf(out, "\r\nMessage-ID: <%s@%s>\r\n", p->boundary_seed, p->hostname);
	buf_append_str(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	buf_appendf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n\r\n", boundary);
	buf_append_str(out, "This is a MIME-encapsulated message.\r\n\r\n");
}

static void
compose_human(const struct dsn_params *p, struct buf *out, const char *boundary)
{
	buf_appendf(out, "--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	buf_appendf(out, "This is the mail system at host %s.\r\n\r\n", p->hostname);
	if (p->kind == DSN_FAILED)
		buf_append_str(out, "I'm sorry to have to inform you that your message could not\r\n"
		    "be delivered to one or more recipients. It's attached below.\r\n\r\n");
	else
		buf_append_str(out, "Your message could not yet be delivered to one or more\r\n"
		    "recipients. Delivery will be retried; no action is required.\r\n\r\n");
	for (size_t i = 0; i < p->n; i++) {
		const struct queue_rcpt *r = &p->env->rcpts[p->rcpt_idx[i]];
		buf_append_str(out, "<");
		append_oneline(out, r->addr);
		buf_append_str(out, ">: ");
		append_oneline(out, p->diagnostics[i] != NULL ? p->diagnostics[i] : "unknown error");
		buf_append_str(out, "\r\n");
	}
	buf_append_str(out, "\r\n");
}

static void
compose_rcpt_status(const struct dsn_params *p, size_t i, struct buf *out)
{
	const struct queue_rcpt *r = &p->env->rcpts[p->rcpt_idx[i]];
	const char *diag = p->diagnostics[i];
	char status[16];
	dsn_status_from_reply(diag, p->kind == DSN_FAILED ? '5' : '4', status);
	buf_append_str(out, "\r\nFinal-Recipient: rfc822; ");
	append_oneline(out, r->addr);
	if (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL) {
		buf_append_str(out, "\r\nOriginal-Recipient: ");
		append_oneline(out, r->orcpt);
	}
	buf_appendf(out, "\r\nAction: %s\r\nStatus: %s",
	    p->kind == DSN_FAILED ? "failed" : "delayed", status);
	if (p->remote_mtas != NULL && p->remote_mtas[i] != NULL) {
		buf_append_str(out, "\r\nRemote-MTA: dns; ");
		append_oneline(out, p->remote_mtas[i]);
	}
	if (diag != NULL) {
		const char *t = reply_text(diag);
		buf_append_str(out, three_digit_code(t) ? "\r\nDiagnostic-Code: smtp; " :
		    "\r\nDiagnostic-Code: X-mailark; ");
		append_oneline(out, three_digit_code(t) ? t : diag);
	}
	buf_append_str(out, "\r\n");
}

static void
compose_status(const struct dsn_params *p, struct buf *out, const char *boundary)
{
	buf_appendf(out, "--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", boundary);
	buf_appendf(out, "Reporting-MTA: dns; %s\r\nX-Mailark-Queue-ID: %s\r\n",
	    p->hostname, p->env->id);
	if (p->env->envid != NULL) {
		buf_append_str(out, "Original-Envelope-Id: ");
		append_oneline(out, p->env->envid);
		buf_append_str(out, "\r\n");
	}
	buf_append_str(out, "Arrival-Date: ");
	append_date(out, p->env->arrival);
	buf_append_str(out, "\r\n");
	for (size_t i = 0; i < p->n; i++)
		compose_rcpt_status(p, i, out);
	buf_append_str(out, "\r\n");
}

/* Appends data with every line end made CRLF. */
static void
append_crlf(struct buf *out, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\r') {
			buf_append_str(out, "\r\n");
			if (i + 1 < len && data[i + 1] == '\n')
				i++;
		} else if (data[i] == '\n') {
			buf_append_str(out, "\r\n");
		} else {
			buf_append_char(out, data[i]);
		}
	}
	if (out->len < 2 || out->data[out->len - 1] != '\n')
		buf_append_str(out, "\r\n");
}

/* Length of the header section, its final line end included. */
static size_t
header_length(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		if (i + 1 < len && data[i + 1] == '\n')
			return i + 1;
		if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n')
			return i + 1;
	}
	return len;
}

static void
compose_original(const struct dsn_params *p, struct buf *out, const char *boundary)
{
	const char *orig = p->original != NULL ? p->original : "";
	size_t len = p->original_len;
	int full = !p->env->ret_hdrs && len <= DSN_MAX_RETURN;
	if (!full)
		len = header_length(orig, len < DSN_MAX_RETURN ? len : DSN_MAX_RETURN);
	buf_appendf(out, "--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n", boundary,
	    full ? "Undelivered Message" : "Undelivered Message Headers",
	    full ? "message/rfc822" : "text/rfc822-headers");
	if (full && p->env->body_8bit)
		buf_append_str(out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_append_str(out, "\r\n");
	if (len > 0)
		append_crlf(out, orig, len);
	buf_appendf(out, "\r\n--%s--\r\n", boundary);
}

void
dsn_compose(const struct dsn_params *p, struct buf *out)
{
	struct buf boundary = BUF_INIT;
	buf_appendf(&boundary, "%s/%s", p->boundary_seed, p->hostname);
	compose_headers(p, out, buf_cstr(&boundary));
	compose_human(p, out, buf_cstr(&boundary));
	compose_status(p, out, buf_cstr(&boundary));
	compose_original(p, out, buf_cstr(&boundary));
	buf_free(&boundary);
}
