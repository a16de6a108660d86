"""Outbound disclaimers against the real daemon.

Mail relayed from 127.0.0.1 for tenant acme goes through the hygiene
pipeline to a smarthost (an aiosmtpd primary).  What the primary receives is
re-parsed with Python's email package (policy.default): the text and HTML
parts carry the disclaimer with the sender's name, attachments are
byte-identical, the structure is kept; a reply that already carries the
disclaimer gets no second one; a multipart/signed message arrives
byte-identical; and with no disclaimer configured every message of
../shared/corpus/mime arrives byte-identical after the trace fields mailark
puts on top.
"""

import email
import os
import email.policy
import re
import smtplib
from pathlib import Path

import pytest

import hygiene_helper
from hygiene_helper import FAST_RETRY, strip_trace

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "mime"
SENDER = "alice@acme.test"
RCPT = "bob@example.net"
DUMP = Path(os.environ["DISCLAIMER_DUMP"]) if os.environ.get("DISCLAIMER_DUMP") else None
TEXT = r"Sent by {sender_name} <{sender}>\nAcme Corp. - confidential"
HTML = '<p style="color:gray">Sent by {sender_name} &middot; Acme Corp.</p>'


def start(mailark_daemon, smtp_primary, text=TEXT, html=HTML):
    settings = [("av.enabled", "no"), ("attach.enabled", "no"), ("milter.enabled", "no")]
    if text is not None:
        settings.append(("disclaimer.text", text))
    if html is not None:
        settings.append(("disclaimer.html", html))
    return hygiene_helper.start(mailark_daemon, smtp_primary, settings, FAST_RETRY, route=False,
                                smarthost=True, relay=True)


def send(d, data):
    return hygiene_helper.send(d, data, SENDER, RCPT)


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


ATTACHMENT = bytes(range(256)) * 40
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def build_message(subject="Quarterly numbers"):
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Alice Smith <%s>" % SENDER
    msg["To"] = RCPT
    msg["Subject"] = subject
    msg["Message-ID"] = "<%s@acme.test>" % subject.replace(" ", ".")
    msg.set_content("Hello Bob,\n\nthe numbers are attached.\n\nAlice\n")
    msg.add_alternative("<html><body><p>Hello Bob,</p><p>the numbers are attached.</p>"
                        "</body></html>\n", subtype="html")
    msg.add_attachment(ATTACHMENT, maintype="application", subtype="octet-stream",
                       filename="numbers.bin")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="report.pdf")
    return msg.as_bytes()


def part_text(part):
    """The decoded text of a text part ("" for others or undecodable ones)."""
    if part.get_content_maintype() != "text":
        return ""
    try:
        return part.get_content()
    except (LookupError, ValueError):
        return ""


def structure(m):
    return [(p.get_content_type(), p.get_filename()) for p in m.walk()]


def test_disclaimer_in_text_and_html(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    original = build_message()
    code, reply = send(d, original)
    assert code == 250, reply
    got = p.wait_for(1)[0]
    trace, body = strip_trace(got.data)
    m = parse(body)
    orig = parse(original)
    assert structure(m) == structure(orig)
    plain = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    assert "the numbers are attached." in plain
    assert "\n\nSent by Alice Smith <alice@acme.test>\nAcme Corp. - confidential" in \
        plain.replace("\r\n", "\n")
    assert plain.count("Sent by Alice Smith") == 1
    assert '<div class="mailark-disclaimer"><p style="color:gray">Sent by Alice Smith ' \
        '&middot; Acme Corp.</p></div>' in html
    assert html.index("mailark-disclaimer") < html.lower().index("</body>")
    # attachments byte-identical, decoded and raw
    atts = {a.get_filename(): a for a in m.iter_attachments()}
    assert atts["numbers.bin"].get_content() == ATTACHMENT
    assert atts["report.pdf"].get_content() == PDF
    for part in orig.iter_attachments():
        assert part.as_bytes() in body or bytes(part).replace(b"\n", b"\r\n") in body
    # the headers of the message itself are untouched and in order
    head = original.split(b"\r\n\r\n", 1)[0]
    assert body.startswith(head + b"\r\n")


def test_reply_gets_no_second_disclaimer(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    code, _ = send(d, build_message("first"))
    assert code == 250
    first = strip_trace(p.wait_for(1)[0].data)[1]
    # the same message sent again (a reply quoting all of it) is left as is
    code, _ = send(d, first)
    assert code == 250
    second = strip_trace(p.wait_for(2)[1].data)[1]
    assert second == first
    quoted = parse(first).get_body(("plain",)).get_content()
    reply = ("From: Alice Smith <%s>\r\nTo: %s\r\nSubject: Re: first\r\n"
             "Message-ID: <re.first@acme.test>\r\n\r\nThanks!\r\n\r\n%s" % (
                 SENDER, RCPT, "".join("> " + l + "\r\n" for l in quoted.splitlines())))
    code, _ = send(d, reply.encode())
    assert code == 250
    third = strip_trace(p.wait_for(3)[2].data)[1]
    assert third.count(b"Sent by Alice Smith") == 1


def test_signed_message_byte_identical(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    signed = (b"From: Alice Smith <alice@acme.test>\r\nTo: bob@example.net\r\n"
              b"Subject: signed\r\nMessage-ID: <signed@acme.test>\r\nMIME-Version: 1.0\r\n"
              b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\";\r\n"
              b" micalg=pgp-sha256; boundary=\"sig\"\r\n\r\n"
              b"--sig\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsigned words\r\n"
              b"--sig\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\n\r\n"
              b"-----BEGIN PGP SIGNATURE-----\r\n\r\niQEzBAEBCAAdFiEE\r\n"
              b"-----END PGP SIGNATURE-----\r\n--sig--\r\n")
    code, _ = send(d, signed)
    assert code == 250
    body = strip_trace(p.wait_for(1)[0].data)[1]
    assert body == signed


def test_plain_only_latin1(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary, text="Gr\u00fc\u00dfe, {sender_name}", html="")
    msg = (b"From: =?utf-8?q?J=C3=BCrgen?= <alice@acme.test>\r\nTo: bob@example.net\r\n"
           b"Subject: latin\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\nSch=F6n.\r\n")
    code, _ = send(d, msg)
    assert code == 250
    m = parse(strip_trace(p.wait_for(1)[0].data)[1])
    assert m.get_content_charset() == "iso-8859-1"
    text = m.get_content().replace("\r\n", "\n")
    assert text.startswith("Sch\u00f6n.\n\nGr\u00fc\u00dfe, J\u00fcrgen")


def corpus_files():
    if not CORPUS.is_dir():
        return []
    return sorted(CORPUS.rglob("*.eml"))


def crlf(data):
    data = re.sub(rb"\r?\n", b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def send_corpus(d, files, max_size=None):
    """Sends every corpus message SMTP can carry (CRLF, no NUL, lines of at
    most 998; at most max_size bytes); returns {rcpt: (file, bytes sent)} for
    those accepted."""
    sent = {}
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=60) as s:
        s.ehlo("client.acme.test")
        for i, f in enumerate(files):
            if max_size is not None and f.stat().st_size > max_size:
                continue
            data = crlf(f.read_bytes())
            if b"\0" in data or b"\r" in data.replace(b"\r\n", b""):
                continue
            if any(len(l) > 998 for l in data.split(b"\r\n")):
                continue
            rcpt = "c%d@example.net" % i
            s.rset()
            if s.mail(SENDER)[0] != 250 or s.rcpt(rcpt)[0] != 250:
                continue
            try:
                code, _ = s.data(data)
            except smtplib.SMTPDataError:
                continue
            if code == 250:
                sent[rcpt] = (f, data)
    return sent


def test_corpus_unchanged_without_disclaimer(mailark_daemon, smtp_primary):
    files = corpus_files()
    if not files:
        pytest.skip("corpus not found")
    d, p = start(mailark_daemon, smtp_primary, text=None, html=None)
    sent = send_corpus(d, files)
    if DUMP:
        DUMP.mkdir(parents=True, exist_ok=True)
    assert len(sent) > len(files) * 0.8, "only %d of %d accepted" % (len(sent), len(files))
    got = p.wait_for(len(sent), timeout=60)
    by_rcpt = {m.rcpt_tos[0]: m for m in got}
    changed = []
    for rcpt, (f, data) in sent.items():
        got_data = by_rcpt[rcpt].data
        prefix = got_data[:len(got_data) - len(data)]
        if not got_data.endswith(data) or strip_trace(prefix)[1] != b"":
            changed.append(str(f.relative_to(CORPUS)))
            if DUMP:
                (DUMP / (rcpt + ".got")).write_bytes(by_rcpt[rcpt].data)
                (DUMP / (rcpt + ".sent")).write_bytes(data)
    assert changed == []


def test_corpus_with_disclaimer_keeps_structure(mailark_daemon, smtp_primary):
    """Every corpus message (up to 128 KiB) still arrives with a disclaimer
    configured; where one was added, Python sees the same parts (types,
    names) and the disclaimer in a text part."""
    files = corpus_files()
    if not files:
        pytest.skip("corpus not found")
    d, p = start(mailark_daemon, smtp_primary)
    sent = send_corpus(d, files, max_size=128 * 1024)     # the big ones add time, not shapes
    assert len(sent) > len(files) * 0.7
    got = p.wait_for(len(sent), timeout=60)
    by_rcpt = {m.rcpt_tos[0]: m for m in got}
    added = 0
    broken = []
    for rcpt, (f, data) in sent.items():
        body = by_rcpt[rcpt].data
        if body.endswith(data):
            continue
        added += 1
        m = parse(body)
        orig = parse(data)
        try:
            same = structure(m) == structure(orig)
            # (where Python's parser finds no text part, e.g. a boundary it
            # cannot read, it cannot see the disclaimer either)
            text = any("Sent by " in part_text(part) for part in m.walk()) or \
                not any(part.get_content_maintype() == "text" for part in orig.walk())
        except Exception as e:          # a part Python cannot decode
            same, text = False, repr(e)
        if not same or not text:
            broken.append(str(f.relative_to(CORPUS)))
            if DUMP:
                DUMP.mkdir(parents=True, exist_ok=True)
                (DUMP / (rcpt + ".got")).write_bytes(body)
                (DUMP / (rcpt + ".sent")).write_bytes(data)
    assert added > len(sent) // 2
    assert broken == []
