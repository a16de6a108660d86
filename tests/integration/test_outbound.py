"""Outbound delivery: MX lookups through a real unbound, STARTTLS, PIPELINING,
BDAT/CHUNKING, large and dot-heavy messages, all against the real daemon.

An `unbound` server runs per test on 127.0.0.1:<free port> serving the zone
"test." from local-data; the daemon forwards to it (delivery.dns_resolver)
and delivers MX mail to delivery.mx_port, where an aiosmtpd primary (or a
raw CHUNKING server written here) listens on 127.0.0.1.
"""

import shutil
import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port
from unbound_helper import Unbound

TENANT = "acme"
TENANT_DOMAIN = "acme.test"
SENDER = "alice@acme.test"

# Names served by the test resolver.  127.0.0.2 has nothing listening.
ZONE = [
    "mx.test. IN MX 10 mail.mx.test.",
    "mail.mx.test. IN A 127.0.0.1",
    "twomx.test. IN MX 10 down.twomx.test.",
    "twomx.test. IN MX 20 up.twomx.test.",
    "down.twomx.test. IN A 127.0.0.2",
    "up.twomx.test. IN A 127.0.0.1",
    "nomx.test. IN A 127.0.0.1",
    "nullmx.test. IN MX 0 .",
]


# --------------------------------------------------------------------------
# helpers


class ChunkingServer:
    """A minimal SMTP server that offers CHUNKING and refuses DATA, so the
    client must use BDAT.  Records (mail_from, rcpts, data, bdat_commands)."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.messages = []
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(8)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        f = conn.makefile("rwb")
        try:
            self._converse(f)
        except (OSError, ValueError):
            pass
        finally:
            try:
                f.close()
                conn.close()
            except OSError:
                pass

    def _converse(self, f):
        def say(text):
            f.write(text.encode() + b"\r\n")
            f.flush()

        say("220 chunk.test ESMTP")
        mail_from, rcpts, data, cmds = None, [], b"", []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.rstrip(b"\r\n").decode("latin-1")
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                say("250-chunk.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING")
            elif verb == "MAIL":
                mail_from, rcpts, data, cmds = cmd[10:].split(">")[0].lstrip("<"), [], b"", []
                say("250 2.1.0 Ok")
            elif verb == "RCPT":
                rcpts.append(cmd[8:].split(">")[0].lstrip("<"))
                say("250 2.1.5 Ok")
            elif verb == "BDAT":
                parts = cmd.split()
                n = int(parts[1])
                cmds.append(cmd)
                chunk = f.read(n)
                if len(chunk) != n:
                    return
                data += chunk
                if len(parts) > 2 and parts[2].upper() == "LAST":
                    with self.cond:
                        self.messages.append((mail_from, rcpts, data, cmds))
                        self.cond.notify_all()
                    say("250 2.0.0 Ok: %d bytes" % len(data))
                else:
                    say("250 2.0.0 Ok: chunk")
            elif verb == "DATA":
                say("502 5.5.1 use BDAT")
            elif verb == "RSET":
                say("250 2.0.0 Ok")
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("502 5.5.2 unknown command")

    def wait_for(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("chunking server got %d message(s), expected %d"
                                         % (len(self.messages), n))
                self.cond.wait(left)
            return list(self.messages)

    def stop(self):
        self.running = False
        self.sock.close()


@pytest.fixture
def unbound(tmp_path_factory):
    if shutil.which("unbound") is None and not Path("/usr/sbin/unbound").exists():
        pytest.skip("unbound not installed")
    u = Unbound(tmp_path_factory.mktemp("unbound"), ZONE)
    yield u
    u.stop()


@pytest.fixture
def chunking_server():
    servers = []

    def factory(port=None):
        s = ChunkingServer(port)
        servers.append(s)
        return s

    yield factory
    for s in servers:
        s.stop()


def outbound_daemon(mailark_daemon, unbound, mx_port, **extra):
    conf = {"delivery.dns_resolver": unbound.address, "delivery.mx_port": mx_port,
            "delivery.connect_timeout": "3s", "queue.retry_min": "1s",
            "queue.retry_max": "2s"}
    conf.update(extra)
    d = mailark_daemon(conf)
    d.cli("tenant", "add", TENANT)
    d.cli("domain", "add", TENANT, TENANT_DOMAIN)
    d.cli("relay", "add", TENANT, "127.0.0.0/8")
    return d


def send(daemon, rcpts, body, sender=SENDER):
    """Sends one message through the daemon with smtplib; returns the 250 text."""
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=60) as s:
        s.ehlo("client.acme.test")
        refused = s.sendmail(sender, rcpts, body)
        assert refused == {}
    return True


def message(subject, body_lines, rcpt="bob@mx.test"):
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@acme.test>\r\n\r\n"
            % (SENDER, rcpt, subject, subject.replace(" ", "-")))
    return (head + "".join(l + "\r\n" for l in body_lines)).encode()


def body_of(data):
    """The message as it arrived, without the Received: headers added on the way."""
    lines = data.split(b"\r\n")
    out, skipping = [], False
    for line in lines:
        if line.startswith(b"Received:"):
            skipping = True
            continue
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = False
        out.append(line)
    return b"\r\n".join(out)


# --------------------------------------------------------------------------
# tests


def test_mx_delivery(mailark_daemon, unbound, primary):
    sink = primary()
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    msg = message("mx delivery", ["hello world"])
    send(d, ["bob@mx.test"], msg)
    got = sink.wait_for(1)
    assert got[0].rcpt_tos == ["bob@mx.test"]
    assert got[0].mail_from == SENDER
    assert body_of(got[0].data).endswith(b"hello world\r\n")
    d.wait_log(r"delivered.*mail\.mx\.test\[127\.0\.0\.1\]", timeout=10)


def test_second_mx_when_first_down(mailark_daemon, unbound, primary):
    sink = primary()
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    send(d, ["carol@twomx.test"], message("two mx", ["via backup"], "carol@twomx.test"))
    got = sink.wait_for(1)
    assert got[0].rcpt_tos == ["carol@twomx.test"]
    log = d.log()
    assert "127.0.0.2" in log   # the first MX was tried
    d.wait_log(r"delivered.*up\.twomx\.test", timeout=10)


def test_a_record_fallback(mailark_daemon, unbound, primary):
    sink = primary()
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    send(d, ["dave@nomx.test"], message("a fallback", ["no mx here"], "dave@nomx.test"))
    got = sink.wait_for(1)
    assert got[0].rcpt_tos == ["dave@nomx.test"]
    d.wait_log(r"delivered.*nomx\.test\[127\.0\.0\.1\]", timeout=10)


def test_null_mx_bounces(mailark_daemon, unbound, primary):
    sink = primary()
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    d.cli("route", "set", TENANT_DOMAIN, "smtp://127.0.0.1:%d" % sink.port)
    send(d, ["erin@nullmx.test"], message("null mx", ["nobody home"], "erin@nullmx.test"))
    d.wait_log(r"bounced.*erin@nullmx\.test|erin@nullmx\.test.*bounced", timeout=15)
    assert "5.1.10" in d.log()
    # The DSN goes back to the sender's (tenant) domain, i.e. to the primary.
    got = sink.wait_for(1, timeout=20)
    assert got[0].mail_from in ("", "<>")
    assert got[0].rcpt_tos == [SENDER]


def test_nxdomain_bounces(mailark_daemon, unbound, primary):
    sink = primary()
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    send(d, ["frank@nosuchdomain.test"], message("nx", ["x"], "frank@nosuchdomain.test"))
    d.wait_log(r"bounced.*frank@nosuchdomain\.test|frank@nosuchdomain\.test.*bounced",
               timeout=15)
    assert "5.1.2" in d.log()


def test_route_tls_required_with_starttls(mailark_daemon, unbound, primary):
    sink = primary(tls=True)
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    d.cli("route", "set", TENANT_DOMAIN, "smtp://127.0.0.1:%d?tls=required" % sink.port)
    send(d, ["bob@acme.test"], message("tls required", ["secret"], "bob@acme.test"),
         sender="someone@example.org")
    got = sink.wait_for(1)
    assert got[0].tls, "message arrived without TLS"
    assert got[0].rcpt_tos == ["bob@acme.test"]


def test_route_tls_required_without_starttls_defers(mailark_daemon, unbound, primary):
    sink = primary(tls=False)
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    d.cli("route", "set", TENANT_DOMAIN, "smtp://127.0.0.1:%d?tls=required" % sink.port)
    send(d, ["bob@acme.test"], message("tls missing", ["secret"], "bob@acme.test"),
         sender="someone@example.org")
    d.wait_log(r"deferred.*TLS required", timeout=15)
    time.sleep(1)
    assert sink.messages == []
    q = d.cli("queue", "list")
    assert "bob@acme.test" in q.stdout


def test_opportunistic_tls_used_when_offered(mailark_daemon, unbound, primary):
    sink = primary(tls=True)
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    send(d, ["bob@mx.test"], message("opportunistic", ["hi"]))
    got = sink.wait_for(1)
    assert got[0].tls


def test_pipelining_many_recipients_one_transaction(mailark_daemon, unbound, primary):
    sink = primary()
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    rcpts = ["user%02d@mx.test" % i for i in range(30)]
    send(d, rcpts, message("many", ["to thirty"]))
    got = sink.wait_for(1)
    time.sleep(0.5)
    assert len(sink.messages) == 1
    assert sorted(got[0].rcpt_tos) == sorted(rcpts)


def test_chunking_bdat_byte_exact(mailark_daemon, unbound, chunking_server):
    srv = chunking_server()
    d = outbound_daemon(mailark_daemon, unbound, srv.port)
    lines = [".leading dot", "..two dots", "plain", "."] + ["x" * 998] * 3000
    msg = message("bdat", lines)
    assert len(msg) > 1024 * 1024    # more than one chunk
    send(d, ["bob@mx.test"], msg)
    mail_from, rcpts, data, cmds = srv.wait_for(1)[0]
    assert rcpts == ["bob@mx.test"]
    assert body_of(data) == msg
    assert len(cmds) >= 2 and cmds[-1].upper().endswith(" LAST")


def test_large_message_byte_exact(mailark_daemon, unbound, primary):
    sink = primary()
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    lines = ["line %07d %s" % (i, "abcdefghij" * 9) for i in range(100000)]
    msg = message("ten megabytes", lines)
    assert len(msg) > 10 * 1000 * 1000
    send(d, ["bob@mx.test"], msg)
    got = sink.wait_for(1, timeout=60)
    assert body_of(got[0].data) == msg


def test_dot_stuffing_arrives_intact(mailark_daemon, unbound, primary):
    sink = primary()
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    lines = [".", "..", ".hidden", "...three", "end."]
    msg = message("dots", lines)
    send(d, ["bob@mx.test"], msg)
    got = sink.wait_for(1)
    assert body_of(got[0].data) == msg


def test_rcpt_refused_by_remote_bounces(mailark_daemon, unbound, primary):
    sink = primary()
    sink.fail_rcpt = (550, "5.1.1 no such user here")
    d = outbound_daemon(mailark_daemon, unbound, sink.port)
    send(d, ["ghost@mx.test"], message("refused", ["x"], "ghost@mx.test"))
    m = d.wait_log(r"bounced.*ghost@mx\.test.*|.*ghost@mx\.test.*bounced.*", timeout=15)
    assert "mail.mx.test[127.0.0.1]" in m.group(0) or "said: 550 5.1.1" in d.log()
