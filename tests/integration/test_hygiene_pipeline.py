"""The hygiene pipeline wired into the SMTP session, against the real daemon.

Clean mail arrives without a verdict header; every corpus MIME message comes
out with its bytes intact after the header fields mailark adds; a blocked
sender gets 550 at RCPT; a DNSBL reject zone gives 554 instead of the
greeting; [hygiene] enabled = no and the tenant's hygiene.enabled = no
bypass the pipeline; pipelined commands after DATA are answered in order;
kill -9 while messages are being scanned loses nothing acknowledged.
"""

import csv
import json
import re
import smtplib
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from hygiene_helper import add_tenant, dns_and_daemon_fixtures, header_block, send_queued

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "mime"
QID = re.compile(rb"queued as ([0-9A-Z]{16})")
RECEIVED_ID = re.compile(rb"\bid ([0-9A-Z]{16})\b")
DNSBL_RECORDS = ["1.0.0.127.dnsbl.test. IN A 127.0.0.2"]


dns, daemon = dns_and_daemon_fixtures(DNSBL_RECORDS)


def simple(subject, sender="alice@beta.test", rcpt="bob@acme.test"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@beta.test>\r\n\r\n"
            "hello %s\r\n" % (sender, rcpt, subject, subject, subject)).encode()


# ------------------------------------------------------------ basic path


def test_clean_message_has_no_verdict_header(daemon, smtp_primary):
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    body = simple("clean one")
    send_queued(d, body)
    got = primary.wait_for(1)[0].data
    head, _ = header_block(got)
    assert b"X-Mailark-Hygiene" not in head
    assert got.endswith(body)
    assert got.startswith(b"Received: from client.test")   # trace field stays on top
    d.wait_log(r" hygiene id=\S+ tenant=acme direction=inbound action=accept", timeout=5)



def test_tagged_message_gets_verdict_after_our_received(daemon, smtp_primary):
    """spam.tag_score 0 tags everything: the verdict header and the stage's
    fields go right after our Received:, the original bytes follow intact."""
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    d.cli("policy", "set", "acme", "spam.tag_score", "0")
    body = simple("tag me")
    send_queued(d, body)
    got = primary.wait_for(1)[0].data
    assert got.startswith(b"Received: from client.test")
    assert got.endswith(body)
    head = got[:len(got) - len(body)]
    fields = re.split(rb"\r\n(?![ \t])", head.rstrip(b"\r\n"))
    assert fields[0].startswith(b"Received: from client.test")
    verdict = [f for f in fields if f.startswith(b"X-Mailark-Hygiene:")]
    assert len(verdict) == 1, fields
    assert re.match(rb"X-Mailark-Hygiene: action=tag; score=[0-9.]+; reasons=\S",
                    verdict[0]), verdict
    assert all(len(line) <= 78 for line in verdict[0].split(b"\r\n"))
    d.wait_log(r" hygiene id=\S+ tenant=acme direction=inbound action=tag ")


def test_forged_verdict_header_renamed(daemon, smtp_primary):
    """A sender cannot pass its own verdict off as ours: an incoming
    X-Mailark-Hygiene field is renamed, ours is the only one left."""
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    d.cli("policy", "set", "acme", "spam.tag_score", "0")
    forged = b"X-Mailark-Hygiene: action=accept; score=0.0; reasons=none\r\n"
    send_queued(d, forged + simple("forged verdict"))
    got = primary.wait_for(1)[0].data
    head, _ = header_block(got)
    assert b"X-Mailark-Removed-Hygiene: action=accept; score=0.0; reasons=none" in head
    verdicts = re.findall(rb"^X-Mailark-Hygiene: ([^\r]*)", head, re.M)
    assert len(verdicts) == 1 and verdicts[0].startswith(b"action=tag"), verdicts


def test_quarantined_message_250_and_not_delivered(daemon, smtp_primary):
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    d.cli("policy", "set", "acme", "spam.quarantine_score", "0")
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("alice@beta.test")
        s.rcpt("bob@acme.test")
        code, reply = s.data(simple("hold me"))
        assert code == 250 and b"queued as" in reply, reply
        # the session goes on normally afterwards
        assert s.noop()[0] == 250
    d.wait_log(r" hygiene id=\S+ tenant=acme direction=inbound action=quarantine ")
    listed = d.cli("quarantine", "list", "acme", "--json").stdout
    assert "hold me" in listed
    time.sleep(1.5)
    assert primary.messages == []


def test_blocked_sender_550_at_rcpt(daemon, smtp_primary):
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    d.cli("policy", "set", "acme", "envelope.block_senders", "@evil.test, bad.test, x@ok.test")
    cases = [("a@evil.test", 550), ("a@sub.evil.test", 250), ("a@bad.test", 550),
             ("a@deep.sub.bad.test", 550), ("X@OK.test", 550), ("y@ok.test", 250),
             ("alice@beta.test", 250)]
    for sender, want in cases:
        with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail(sender)
            code, msg = s.rcpt("bob@acme.test")
            assert code == want, (sender, code, msg)
            if want == 550:
                assert b"5.7.1 Sender address rejected: blocked by policy" in msg
    shown = {k["key"]: k for k in json.loads(d.cli("policy", "show", "acme", "--json").stdout)}
    assert shown["envelope.block_senders"]["value"] == "@evil.test, bad.test, x@ok.test"
    assert shown["envelope.block_senders"]["set"] is True
    assert shown["spam.tag_score"]["set"] is False


def test_policy_set_validates(mailark_daemon):
    d = mailark_daemon()
    d.cli("tenant", "add", "acme")
    r = d.cli("policy", "set", "acme", "spam.tag_score", "lots", check=False)
    assert r.returncode != 0 and "spam.tag_score" in r.stdout + r.stderr
    r = d.cli("policy", "set", "acme", "no.such.key", "1", check=False)
    assert r.returncode != 0 and "unknown key" in r.stdout + r.stderr
    r = d.cli("policy", "set", "acme", "av.action", "tag", check=False)
    assert r.returncode != 0 and "quarantine" in r.stdout + r.stderr
    d.cli("policy", "set", "acme", "spam.tag_score", "6.5")
    d.stop()
    d.start()
    shown = {k["key"]: k for k in json.loads(d.cli("policy", "show", "acme", "--json").stdout)}
    assert shown["spam.tag_score"]["value"] == "6.5"
    assert shown["spam.tag_score"]["default"] == "5"


def test_config_disabled_bypasses(daemon, smtp_primary):
    primary = smtp_primary()
    d = daemon(**{"hygiene.enabled": "no"})
    add_tenant(d, primary.port)
    d.cli("policy", "set", "acme", "envelope.block_senders", "evil.test")
    send_queued(d, simple("bypass"), sender="a@evil.test")
    got = primary.wait_for(1)[0].data
    assert b"X-Mailark-Hygiene" not in got
    assert not re.search(r" hygiene id=", d.log())


def test_tenant_disabled_bypasses(daemon, smtp_primary):
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    d.cli("policy", "set", "acme", "envelope.block_senders", "evil.test")
    d.cli("policy", "set", "acme", "hygiene.enabled", "no")
    send_queued(d, simple("tenant off"), sender="a@evil.test")
    primary.wait_for(1)
    assert not re.search(r" hygiene id=", d.log())


# ------------------------------------------------------------ DNSBL


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines)


@pytest.mark.parametrize("listed", [True, False])
def test_dnsbl_reject_at_connect(daemon, listed):
    zone = "dnsbl.test" if listed else "clean.test"
    d = daemon(**{"hygiene.dnsbl_reject": "other.test, " + zone})
    with socket.create_connection(("127.0.0.1", d.smtp_port), timeout=20) as s:
        f = s.makefile("rb")
        banner = read_reply(f)
        if listed:
            assert banner.startswith(b"554 5.7.1 Service unavailable; client [127.0.0.1] "
                                     b"listed by dnsbl.test")
            assert f.read() == b""          # closed
        else:
            assert banner.startswith(b"220 ")
            s.sendall(b"QUIT\r\n")
            assert read_reply(f).startswith(b"221")


# ------------------------------------------------------------ pipelining


def test_pipelined_commands_answered_in_order(daemon, smtp_primary):
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    with socket.create_connection(("127.0.0.1", d.smtp_port), timeout=30) as s:
        f = s.makefile("rb")
        assert read_reply(f).startswith(b"220")
        s.sendall(b"EHLO client.test\r\n")
        assert b"PIPELINING" in read_reply(f)
        s.sendall(b"MAIL FROM:<a@beta.test>\r\nRCPT TO:<bob@acme.test>\r\nDATA\r\n")
        assert read_reply(f).startswith(b"250")
        assert read_reply(f).startswith(b"250")
        assert read_reply(f).startswith(b"354")
        # end of the first message, then the whole second transaction and QUIT at once
        s.sendall(simple("pipe 1") + b".\r\nMAIL FROM:<b@beta.test>\r\nRCPT TO:<bob@acme.test>\r\n"
                  b"NOOP\r\nDATA\r\n")
        r1 = read_reply(f)
        assert r1.startswith(b"250 2.0.0 Ok: queued as"), r1
        assert read_reply(f).startswith(b"250 2.1.0")
        assert read_reply(f).startswith(b"250 2.1.5")
        assert read_reply(f).startswith(b"250 2.0.0 Ok")
        assert read_reply(f).startswith(b"354")
        s.sendall(simple("pipe 2") + b".\r\nRSET\r\nQUIT\r\n")
        r2 = read_reply(f)
        assert r2.startswith(b"250 2.0.0 Ok: queued as"), r2
        assert read_reply(f).startswith(b"250")
        assert read_reply(f).startswith(b"221")
    msgs = primary.wait_for(2)
    subjects = sorted(re.search(rb"Subject: (pipe \d)", m.data).group(1) for m in msgs)
    assert subjects == [b"pipe 1", b"pipe 2"]



def test_client_gone_or_half_closed_while_scanning(daemon, smtp_primary):
    """A reset during the scan: the session outlives its connection (what
    reached the end of data is queued, as with a commit under way); a
    half-close after QUIT: every reply still comes, in order."""
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    head = b"EHLO client.test\r\nMAIL FROM:<a@beta.test>\r\nRCPT TO:<bob@acme.test>\r\nDATA\r\n"
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", d.smtp_port), timeout=20)
        f = s.makefile("rb")
        read_reply(f)
        s.sendall(head)
        for _ in range(4):
            read_reply(f)
        s.sendall(simple("gone %d" % i) + b".\r\nQUIT\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    with socket.create_connection(("127.0.0.1", d.smtp_port), timeout=20) as s:
        f = s.makefile("rb")
        read_reply(f)
        s.sendall(head)
        for _ in range(4):
            read_reply(f)
        s.sendall(simple("half closed") + b".\r\nQUIT\r\n")
        s.shutdown(socket.SHUT_WR)
        assert read_reply(f).startswith(b"250 2.0.0 Ok: queued as")
        assert read_reply(f).startswith(b"221")
    d.wait_log(r" received id=\S+ .*session=", timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(primary.messages) < d.log().count(" received id="):
        time.sleep(0.2)
    assert len(primary.messages) == d.log().count(" received id=")
    assert any(b"Subject: half closed" in m.data for m in primary.messages)
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=20) as s:
        assert s.ehlo("client.test")[0] == 250


def test_bdat_through_pipeline(daemon, smtp_primary):
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    body = simple("chunked")
    with socket.create_connection(("127.0.0.1", d.smtp_port), timeout=30) as s:
        f = s.makefile("rb")
        read_reply(f)
        s.sendall(b"EHLO client.test\r\nMAIL FROM:<a@beta.test>\r\nRCPT TO:<bob@acme.test>\r\n")
        for _ in range(3):
            read_reply(f)
        s.sendall(b"BDAT 10\r\n" + body[:10] + b"BDAT %d LAST\r\n" % (len(body) - 10)
                  + body[10:] + b"QUIT\r\n")
        assert read_reply(f).startswith(b"250 2.0.0 10 octets")
        assert read_reply(f).startswith(b"250 2.0.0 Ok: queued as")
        assert read_reply(f).startswith(b"221")
    assert primary.wait_for(1)[0].data.endswith(body)


# ------------------------------------------------------------ corpus


def corpus_messages():
    """(name, bytes) of the corpus files SMTP can carry unchanged: no NUL,
    lines short enough; line ends made CRLF, ending in CRLF."""
    rows = list(csv.DictReader(open(CORPUS / "MANIFEST.tsv"), delimiter="\t"))
    out = []
    for row in rows:
        if row["nul"] != "0" or int(row["maxline"] or 0) > 990:
            continue
        data = (CORPUS / row["file"]).read_bytes()
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        if len(data) > 4 * 1024 * 1024:
            continue
        out.append((row["file"], data))
    return out


@pytest.mark.skipif(not (CORPUS / "MANIFEST.tsv").exists(), reason="no shared corpus")
def test_corpus_bytes_intact(daemon, smtp_primary):
    msgs = corpus_messages()
    assert len(msgs) > 400
    primary = smtp_primary()
    d = daemon()
    add_tenant(d, primary.port)
    sent = {}
    refused = []
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=60) as s:
        s.ehlo("client.test")
        for name, data in msgs:
            s.mail("alice@beta.test")
            s.rcpt("bob@acme.test")
            try:
                code, reply = s.data(data)
            except smtplib.SMTPDataError as e:
                refused.append((name, e.smtp_code))
                s.rset()
                continue
            m = QID.search(reply)
            if m is None:      # quarantined by a stage: 250 with another id
                refused.append((name, code))
                continue
            sent[m.group(1)] = (name, data)
    # the stages may hold back a few hostile samples; the rest must pass
    assert len(sent) >= len(msgs) * 0.9, refused
    got = primary.wait_for(len(sent), timeout=60)
    checked = 0
    for m in got:
        qid = RECEIVED_ID.search(m.data).group(1)
        if qid not in sent:
            continue
        name, data = sent[qid]
        assert m.data.endswith(data), name
        prefix = m.data[:len(m.data) - len(data)]
        assert prefix.startswith(b"Received: from client.test"), name
        # what mailark added is header fields only: "Name: ..." or folded lines
        for line in prefix.split(b"\r\n")[:-1]:
            assert re.match(rb"[!-9;-~]+:|[ \t]", line), (name, line)
        checked += 1
    assert checked == len(sent)


# ------------------------------------------------------------ crash


def test_kill9_while_scanning_loses_nothing_acknowledged(daemon, smtp_primary):
    primary = smtp_primary()
    primary.stop()                    # keep everything in the queue until the restart
    d = daemon()
    add_tenant(d, primary.port)
    acked = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(n):
        i = 0
        while not stop.is_set():
            subject = "k%d-%d" % (n, i)
            i += 1
            try:
                with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as s:
                    s.ehlo("client.test")
                    s.mail("alice@beta.test")
                    s.rcpt("bob@acme.test")
                    code, _ = s.data(simple(subject))
                    if code == 250:
                        with lock:
                            acked.add(subject)
            except (OSError, smtplib.SMTPException):
                return

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert re.search(r" hygiene id=", d.log())
    d.kill9()
    stop.set()
    for t in threads:
        t.join(15)
    assert len(acked) >= 30
    primary.start()
    d.start()
    deadline = time.monotonic() + 40
    delivered = set()
    while time.monotonic() < deadline and not acked <= delivered:
        delivered = {re.search(rb"Subject: (k\d+-\d+)", m.data).group(1).decode()
                     for m in primary.messages}
        time.sleep(0.3)
    assert acked <= delivered, sorted(acked - delivered)
