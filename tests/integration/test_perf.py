"""The fast paths of delivery: cached connections are reused for the next
message to the same route, and a cached connection that the server closed
costs no deferral."""

import re
import smtplib
import time

BODY = ("From: <alice@beta.test>\r\nTo: <bob@acme.test>\r\nSubject: %s\r\n"
        "Message-ID: <%s@beta.test>\r\n\r\nhello\r\n")


def setup_route(daemon, port):
    daemon.cli("tenant", "add", "acme")
    daemon.cli("domain", "add", "acme", "acme.test")
    daemon.cli("route", "set", "acme.test", "smtp://127.0.0.1:%d" % port)


def send(daemon, subject):
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=20) as s:
        s.sendmail("alice@beta.test", ["bob@acme.test"], BODY % (subject, subject))


def test_connection_reused_for_the_next_message(mailark_daemon, smtp_primary):
    p = smtp_primary()
    d = mailark_daemon()
    setup_route(d, p.port)
    for i in range(5):
        send(d, "reuse-%d" % i)
        p.wait_for(i + 1, timeout=20)
    assert [m.data.count(b"Subject: reuse-%d" % i) for i, m in enumerate(p.messages)] == [1] * 5
    peers = {m.peer for m in p.messages}
    assert len(peers) == 1, "each message had a connection of its own: %r" % peers


def test_closed_cached_connection_is_not_a_deferral(mailark_daemon, smtp_primary):
    p = smtp_primary()
    # A deferral would wait retry_min (10 minutes) before the next try.
    d = mailark_daemon({"queue.retry_min": "10m", "queue.retry_max": "10m"})
    setup_route(d, p.port)
    send(d, "before")
    p.wait_for(1, timeout=20)
    first_peer = p.messages[0].peer
    # The server goes away and comes back on the same port: the cached
    # connection is dead.
    p.stop()
    time.sleep(0.3)
    p.start()
    send(d, "after")
    p.wait_for(2, timeout=20)
    assert p.messages[1].peer != first_peer
    assert not re.search(r" deferred id=", d.log())
    d.stop()
    log = d.log()
    assert "smtp_client_cancel" not in log
