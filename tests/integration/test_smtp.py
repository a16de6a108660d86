"""The inbound SMTP server, against the real daemon, with real clients.

smtplib and swaks for ordinary sessions; a raw socket where the exact bytes
matter (pipelining, BDAT, bare LF/CR, STARTTLS injection, long lines).
"""

import re
import smtplib
import socket
import ssl
import struct
import threading
import time

import pytest

from conftest import swaks

QID = re.compile(r"queued as ([0-9A-Z]{16})")
ANY_QID = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{16}\b")
BODY = b"From: <a@example.org>\r\nTo: <bob@acme.test>\r\nSubject: hi\r\n\r\nhello\r\n"


def configure(daemon, primary=None, relay=None):
    daemon.cli("tenant", "add", "acme")
    daemon.cli("domain", "add", "acme", "acme.test")
    if primary is not None:
        daemon.cli("route", "set", "acme.test", "smtp://127.0.0.1:%d" % primary.port)
    if relay is not None:
        daemon.cli("relay", "add", "acme", relay)


def queued_ids(daemon):
    return ANY_QID.findall(daemon.cli("queue", "list").stdout)


class Raw:
    """A byte-exact SMTP client: send() writes, reply() reads one (multi-line) reply."""

    def __init__(self, port, source=None, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        lines = [self._line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self._line())
        return lines

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.sock.close()


def code(reply_lines):
    return int(reply_lines[-1][:3])


@pytest.fixture
def gw(mailark_daemon, primary):
    p = primary()
    d = mailark_daemon()
    configure(d, p)
    return d, p


def test_greeting_and_ehlo_keywords(gw):
    d, _ = gw
    c = Raw(d.smtp_port)
    assert c.greeting[0].startswith("220 ")
    lines = c.cmd("EHLO client.test")
    assert lines[0].startswith("250-")
    kws = {l[4:].split(" ")[0] for l in lines[1:]}
    for kw in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
               "CHUNKING", "DSN", "STARTTLS"):
        assert kw in kws, lines
    size = [l for l in lines if l[4:].startswith("SIZE ")][0]
    assert int(size.split()[-1]) > 0
    assert c.cmd("NOOP")[0].startswith("250 2.0.0")
    assert c.cmd("VRFY bob")[0].startswith("252 2.5.0")
    assert c.cmd("HELP")[0].startswith("214 ")
    assert c.cmd("FOO")[0].startswith("500 5.5.1")
    assert c.cmd("QUIT")[0].startswith("221 2.0.0")
    c.close()


def test_multi_recipient_smtplib_and_received_header(gw):
    d, p = gw
    rcpts = ["bob@acme.test", "carol@acme.test", "Dave@ACME.test"]
    msg = (b"From: <alice@example.org>\r\nTo: bob@acme.test\r\nSubject: multi\r\n\r\n"
           b"line one\r\n.dot line\r\nend\r\n")
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=20) as s:
        s.ehlo("client.test")
        s.mail("alice@example.org")
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        rc, text = s.data(msg)
        assert rc == 250, text
        assert text.startswith(b"2.0.0 Ok: queued as ")
    got = p.wait_for(1)[0]
    assert sorted(got.rcpt_tos) == sorted(rcpts)
    assert got.mail_from == "alice@example.org"
    head = got.data.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"Received: from client.test ([127.0.0.1])"), head
    assert b"with ESMTP id " in head
    assert b"\r\n.dot line\r\n" in got.data          # un-dot-stuffed
    assert got.data.endswith(b"end\r\n")


def test_pipelining_raw_socket(gw):
    d, p = gw
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob@acme.test>\r\n"
           b"RCPT TO:<nobody@elsewhere.example>\r\nRCPT TO:<carol@acme.test>\r\nDATA\r\n")
    replies = [c.reply() for _ in range(5)]
    assert [code(r) for r in replies] == [250, 250, 550, 250, 354], replies
    # message, the next transaction and QUIT all in one write
    c.send(BODY + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    r = c.reply()
    assert code(r) == 250 and QID.search(r[0]), r
    assert [code(c.reply()) for _ in range(3)] == [250, 250, 221]
    assert c.closed()
    got = p.wait_for(1)[0]
    assert sorted(got.rcpt_tos) == ["bob@acme.test", "carol@acme.test"]


def test_pipelining_swaks(gw):
    d, p = gw
    r = swaks("--server", "127.0.0.1:%d" % d.smtp_port, "--pipeline", "--to",
              "bob@acme.test", "--from", "a@example.org", "--helo", "client.test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "queued as" in r.stdout
    p.wait_for(1)


def test_starttls_smtplib(gw):
    d, p = gw
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=20) as s:
        s.ehlo("client.test")
        assert s.has_extn("starttls")
        rc, _ = s.starttls(context=ctx)
        assert rc == 220
        s.ehlo("client.test")
        assert not s.has_extn("starttls")
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        s.sendmail("a@example.org", ["bob@acme.test"], BODY)
    got = p.wait_for(1)[0]
    assert b"with ESMTPS id " in got.data.split(b"\r\n\r\n", 1)[0]


def test_starttls_discards_pipelined_plaintext(gw):
    d, _ = gw
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.send(b"STARTTLS\r\nNOOP\r\n")          # the NOOP is the injected command
    assert c.reply()[0].startswith("220 ")
    assert c.buf == b""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = ctx.wrap_socket(c.sock, server_hostname="mx")
    tls.sendall(b"EHLO client.test\r\n")
    data = b""
    while not data.endswith(b"\r\n") or b"250 " not in data:
        chunk = tls.recv(4096)
        assert chunk
        data += chunk
    # the first reply after the handshake is the EHLO's, not the NOOP's
    assert data.startswith(b"250-"), data
    tls.close()


def test_bdat_chunks(gw):
    d, p = gw
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    assert code(c.cmd("MAIL FROM:<a@example.org> BODY=BINARYMIME")) == 250
    assert code(c.cmd("RCPT TO:<bob@acme.test>")) == 250
    part1 = b"Subject: chunks\r\n\r\nfirst part\r\n.starts with dot\r\n"
    part2 = b"second part\r\n"
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    r = c.reply()
    assert r[0].startswith("250 2.0.0 %d octets" % len(part1)), r
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    r = c.reply()
    assert code(r) == 250 and QID.search(r[0]), r
    # pipelined: a whole transaction in one write, BDAT 0 LAST
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<carol@acme.test>\r\nBDAT 5\r\nabc\r\n"
           b"BDAT 0 LAST\r\n")
    assert [code(c.reply()) for _ in range(4)] == [250, 250, 250, 250]
    c.cmd("QUIT")
    msgs = p.wait_for(2)
    bodies = sorted(m.data for m in msgs)
    assert any(b.endswith(part1 + part2) for b in bodies), bodies
    assert any(b.endswith(b"\r\nabc\r\n") for b in bodies), bodies


def test_bdat_without_transaction_still_reads_chunk(gw):
    d, _ = gw
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.send(b"BDAT 5\r\nNOOP\r")             # the chunk's bytes look like a command
    assert c.reply()[0].startswith("503 5.5.1")
    assert c.cmd("NOOP")[0].startswith("250 ")
    c.close()


def test_size_declared_too_big(mailark_daemon, primary):
    d = mailark_daemon({"smtp.max_message_size": "10k"})
    configure(d, primary())
    c = Raw(d.smtp_port)
    lines = c.cmd("EHLO client.test")
    assert any(l[4:] == "SIZE 10240" for l in lines), lines
    assert c.cmd("MAIL FROM:<a@example.org> SIZE=20000")[0].startswith("552 5.3.4")
    assert c.cmd("MAIL FROM:<a@example.org> SIZE=2000")[0].startswith("250 ")
    c.close()


def test_size_streamed_too_big(mailark_daemon, primary):
    d = mailark_daemon({"smtp.max_message_size": "10k"})
    configure(d, primary())
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<bob@acme.test>")
    assert code(c.cmd("DATA")) == 354
    c.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 300 + b".\r\n")
    assert c.reply()[0].startswith("552 5.3.4")
    assert c.cmd("NOOP")[0].startswith("250 ")     # the session goes on
    # BDAT too
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<bob@acme.test>")
    big = (b"y" * 70 + b"\r\n") * 300
    c.send(b"BDAT %d LAST\r\n" % len(big) + big)
    assert c.reply()[0].startswith("552 5.3.4")
    c.close()
    assert queued_ids(d) == []


@pytest.mark.parametrize("bad", [b"bare\nLF\r\n", b"bare\rCR\r\n", b"\n.\r\n", b"end\r\r\n"])
def test_bare_lf_cr_rejected_in_data(gw, bad):
    d, p = gw
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<bob@acme.test>")
    assert code(c.cmd("DATA")) == 354
    c.send(b"Subject: smuggle\r\n\r\nfirst\r\n" + bad + b"last\r\n.\r\n")
    r = c.reply()
    assert r[0].startswith("550 5.6.11"), r
    assert c.cmd("NOOP")[0].startswith("250 ")
    c.close()
    assert queued_ids(d) == []
    time.sleep(0.5)
    assert p.messages == []


def test_bare_lf_rejected_in_bdat(gw):
    d, _ = gw
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<bob@acme.test>")
    chunk = b"Subject: x\r\n\r\nbare\nLF\r\n"
    c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    assert c.reply()[0].startswith("550 5.6.11")
    c.send(b"BDAT 4 LAST\r\nok\r\n")
    assert c.reply()[0].startswith("550 5.6.11")
    # a bare CR split across the end of the message
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<bob@acme.test>")
    c.send(b"BDAT 4 LAST\r\nab\r\r")
    assert c.reply()[0].startswith("550 5.6.11")
    c.close()
    assert queued_ids(d) == []


def test_relay_denied_from_non_relay_client(gw):
    d, _ = gw
    d.cli("relay", "add", "acme", "127.0.0.1/32")
    c = Raw(d.smtp_port, source="127.0.0.2")
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@acme.test>")
    r = c.cmd("RCPT TO:<someone@foreign.example>")
    assert r[0].startswith("550 5.7.1"), r
    assert "Relay access denied" in r[0]
    # the tenant's own domain is still accepted from anywhere
    assert code(c.cmd("RCPT TO:<bob@acme.test>")) == 250
    c.close()
    # from inside the relay network: accepted (outbound)
    c = Raw(d.smtp_port, source="127.0.0.1")
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@acme.test>")
    assert code(c.cmd("RCPT TO:<someone@foreign.example>")) == 250
    # an inbound recipient cannot join an outbound transaction
    assert c.cmd("RCPT TO:<bob@acme.test>")[0].startswith("452 4.5.3")
    c.close()


def test_unknown_domain_rejected(gw):
    d, _ = gw
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@example.org>")
    assert c.cmd("RCPT TO:<x@unknown.test>")[0].startswith("550 5.7.1")
    assert c.cmd("DATA")[0].startswith("554 5.5.1")
    c.close()


def test_recipients_of_two_tenants_split(gw):
    d, _ = gw
    d.cli("tenant", "add", "beta")
    d.cli("domain", "add", "beta", "beta.test")
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@example.org>")
    assert code(c.cmd("RCPT TO:<bob@acme.test>")) == 250
    assert c.cmd("RCPT TO:<eve@beta.test>")[0].startswith("452 4.5.3")
    c.close()


def test_max_recipients(mailark_daemon, primary):
    d = mailark_daemon({"smtp.max_recipients": "3"})
    configure(d, primary())
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@example.org>")
    for i in range(3):
        assert code(c.cmd("RCPT TO:<u%d@acme.test>" % i)) == 250
    assert c.cmd("RCPT TO:<u9@acme.test>")[0].startswith("452 4.5.3")
    c.close()


def test_command_syntax_and_sequence(gw):
    d, _ = gw
    c = Raw(d.smtp_port)
    assert c.cmd("MAIL FROM:<a@example.org>")[0].startswith("503 5.5.1")
    assert c.cmd("EHLO")[0].startswith("501 5.5.4")
    c.cmd("EHLO client.test")
    assert c.cmd("RCPT TO:<bob@acme.test>")[0].startswith("503 5.5.1")
    assert c.cmd("MAIL FROM:<bad address>")[0].startswith("501 5.1.7")
    assert c.cmd("MAIL FROM:<a@example.org> FOO=BAR")[0].startswith("555 5.5.4")
    assert c.cmd("MAIL FROM:<\xe9@example.org>")[0].startswith("553 5.6.7")
    assert code(c.cmd("MAIL FROM:<\xe9@example.org> SMTPUTF8")) == 250
    assert c.cmd("MAIL FROM:<a@example.org>")[0].startswith("503 5.5.1")
    assert c.cmd("RCPT TO:<>")[0].startswith("501 5.1.3")
    assert c.cmd("RCPT TO:<%s@acme.test>" % ("l" * 65))[0].startswith("553 5.1.3")
    assert code(c.cmd("RCPT TO:<bob@acme.test> NOTIFY=SUCCESS,FAILURE "
                      "ORCPT=rfc822;bob@acme.test")) == 250
    assert code(c.cmd("RSET")) == 250
    c.close()


def test_line_too_long(gw):
    d, _ = gw
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    assert c.cmd("NOOP " + "x" * 5000)[0].startswith("500 5.5.2")
    assert c.cmd("NOOP")[0].startswith("250 ")
    c.close()


def test_too_many_errors(mailark_daemon, primary):
    d = mailark_daemon({"smtp.max_errors": "3"})
    configure(d, primary())
    c = Raw(d.smtp_port)
    for _ in range(3):
        assert c.cmd("BOGUS")[0].startswith("500 ")
    assert c.cmd("NOOP")[0].startswith("421 4.7.0")
    assert c.closed()


def test_connections_per_ip(mailark_daemon, primary):
    d = mailark_daemon({"smtp.max_connections_per_ip": "2"})
    configure(d, primary())
    a, b = Raw(d.smtp_port), Raw(d.smtp_port)
    third = Raw(d.smtp_port)
    assert third.greeting[0].startswith("421 4.7.0")
    assert third.closed()
    a.close()
    time.sleep(0.3)
    fourth = Raw(d.smtp_port)
    assert fourth.greeting[0].startswith("220 ")
    b.close()
    fourth.close()


def test_command_timeout(mailark_daemon, primary):
    d = mailark_daemon({"smtp.command_timeout": "1s"})
    configure(d, primary())
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    time.sleep(2)
    assert c.reply()[0].startswith("421 4.4.2")
    assert c.closed()


def test_421_on_shutdown(gw):
    d, _ = gw
    c = Raw(d.smtp_port, timeout=20)
    c.cmd("EHLO client.test")
    stopper = threading.Thread(target=d.stop)
    stopper.start()
    r = c.reply()
    assert r[0].startswith("421 4.3.2"), r
    assert c.closed()
    stopper.join()


def test_client_gone_while_committing(gw):
    """The session outlives its connection until the commit callback runs."""
    d, p = gw
    n = 20
    for i in range(n):
        c = Raw(d.smtp_port)
        c.send(b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@acme.test>\r\n"
               b"DATA\r\n")
        for _ in range(4):
            c.reply()
        c.send(b"Subject: gone %d\r\n\r\nbye\r\n.\r\nQUIT\r\n" % i)
        # reset the connection at once, before the 250 can arrive
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    # every message that reached the end of data was committed and is delivered
    d.wait_log(r"received id=.*", timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(p.messages) < d.log().count(" received id="):
        time.sleep(0.2)
    assert len(p.messages) == d.log().count(" received id=")
    # the daemon is still healthy
    c = Raw(d.smtp_port)
    assert code(c.cmd("EHLO client.test")) == 250
    c.close()


def test_received_and_disconnect_log_lines(gw):
    d, p = gw
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=20) as s:
        s.sendmail("a@example.org", ["bob@acme.test"], BODY)
    line = d.wait_log(r"received id=\S+ tenant=acme direction=inbound from=a@example.org "
                      r"nrcpt=1 size=\d+ client=127.0.0.1 .*tls=no commit_ms=")
    assert line
    d.wait_log(r"disconnect .*messages=1")


def test_metrics_count_sessions_and_messages(gw):
    import urllib.request
    d, _ = gw
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=20) as s:
        s.sendmail("a@example.org", ["bob@acme.test"], BODY)
        s.mail("a@example.org")
        assert s.rcpt("x@unknown.test")[0] == 550
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % d.http_port,
                                  timeout=10).read().decode()

    def value(name):
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        assert m, (name, text)
        return float(m.group(1))

    assert value("mailark_smtp_connections_total") >= 1
    assert value("mailark_messages_accepted_total") == 1
    assert value("mailark_messages_rejected_total") >= 1
    assert value("mailark_bytes_accepted_total") > len(BODY)
    assert value("mailark_commit_latency_seconds_count") == 1


def test_shutdown_lets_a_message_in_progress_finish(gw):
    d, _ = gw
    c = Raw(d.smtp_port, timeout=20)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<bob@acme.test>")
    assert code(c.cmd("DATA")) == 354
    c.send(b"Subject: late\r\n\r\npart one\r\n")
    stopper = threading.Thread(target=d.stop)
    stopper.start()
    d.wait_log(r"shutdown", timeout=10)
    c.send(b"part two\r\n.\r\nNOOP\r\n")
    r = c.reply()
    assert code(r) == 250 and QID.search(r[0]), r      # acknowledged: it is durable
    assert c.reply()[0].startswith("421 4.3.2")
    assert c.closed()
    stopper.join()


def test_data_line_too_long(mailark_daemon, primary):
    d = mailark_daemon({"smtp.max_data_line_length": "1000"})
    configure(d, primary())
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<bob@acme.test>")
    assert code(c.cmd("DATA")) == 354
    c.send(b"Subject: long\r\n\r\n" + b"z" * 1500 + b"\r\nshort\r\n.\r\n")
    assert c.reply()[0].startswith("500 5.5.2")
    c.close()
    assert queued_ids(d) == []


def test_data_timeout(mailark_daemon, primary):
    d = mailark_daemon({"smtp.data_timeout": "1s"})
    configure(d, primary())
    c = Raw(d.smtp_port)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<bob@acme.test>")
    assert code(c.cmd("DATA")) == 354
    c.send(b"Subject: stalled\r\n")
    assert c.reply()[0].startswith("421 4.4.2")
    assert c.closed()
    assert queued_ids(d) == []
