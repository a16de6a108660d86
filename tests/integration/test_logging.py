"""The mail log: one line per event with the queue ID, as text or JSON.

A message's life (received, delivered) is reconstructed from the log alone,
and text a peer controls (HELO, addresses) can neither break a JSON line nor
forge a text line.
"""

import json
import smtplib
import socket

QID_LEN = 16


def setup_acme(daemon, primary_port):
    daemon.cli("tenant", "add", "acme")
    daemon.cli("domain", "add", "acme", "acme.test")
    daemon.cli("route", "set", "acme.test", "smtp://127.0.0.1:%d" % primary_port)


def send_raw(port, helo, sender, rcpt):
    """Speaks SMTP by hand so the HELO may carry quotes and backslashes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(("EHLO %s\r\n" % helo).encode())
        while True:
            line = f.readline()
            if line[3:4] == b" ":
                break
        s.sendall(("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (sender, rcpt)).encode())
        replies = [f.readline() for _ in range(3)]
        assert replies[2].startswith(b"354"), replies
        assert replies[0].startswith(b"250") and replies[1].startswith(b"250"), replies
        s.sendall(b"Subject: log\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        done = f.readline().decode()
        assert done.startswith("250"), done
        return done.split()[-1].strip()


def json_events(log_text):
    events = []
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        events.append(json.loads(line))   # every line must be valid JSON
    return events


def test_json_log_lines_parse_and_trace_a_message(mailark_daemon, smtp_primary):
    primary = smtp_primary()
    daemon = mailark_daemon(**{"log.format": "json", "log.level": "info"})
    setup_acme(daemon, primary.port)
    sender = '"al\\"ice q"@example.org'    # a quoted local part with a quote inside
    qid = send_raw(daemon.smtp_port, "client.test", sender, "bob@acme.test")
    assert len(qid) == QID_LEN
    primary.wait_for(1)
    daemon.wait_log(r'"event":"delivered"')

    events = json_events(daemon.log())
    assert events, daemon.log()
    for e in events:
        assert {"ts", "level", "event"} <= set(e), e
    received = [e for e in events if e["event"] == "received"]
    delivered = [e for e in events if e["event"] == "delivered"]
    assert [e["id"] for e in received] == [qid]
    assert [e["id"] for e in delivered] == [qid]
    assert received[0]["tenant"] == "acme"
    assert received[0]["from"] == sender        # survives quoting intact
    assert received[0]["helo"] == "client.test"
    assert delivered[0]["to"] == "bob@acme.test"


def test_text_log_quotes_untrusted_values(mailark_daemon, smtp_primary):
    primary = smtp_primary()
    daemon = mailark_daemon()
    setup_acme(daemon, primary.port)
    # A sender that tries to look like a second key=value pair.
    qid = send_raw(daemon.smtp_port, "client.test", '"x tenant=forged"@example.org',
                   "bob@acme.test")
    primary.wait_for(1)
    daemon.wait_log(r"delivered id=%s" % qid)
    lines = [l for l in daemon.log().splitlines() if " received id=%s " % qid in l]
    assert len(lines) == 1, daemon.log()
    assert 'from="\\"x tenant=forged\\"@example.org"' in lines[0], lines[0]
    assert " tenant=acme " in lines[0]
