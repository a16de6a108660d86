"""Delivery through the queue and the scheduler, against the real daemon.

primary down -> deferred -> delivered when it returns; 5xx at RCPT -> RFC 3464
DSN to the sender's (tenant) domain; max_lifetime expiry -> expired + DSN;
hold / release / delete / flush from the CLI; restart (clean and kill -9)
with messages queued -> each delivered exactly once.
"""

import email
import email.policy
import re
import smtplib
import time

import pytest

FAST = {"queue.retry_min": "1s", "queue.retry_max": "2s"}
QID = re.compile(r"queued as ([0-9A-Z]{16})")


def setup_tenants(daemon, acme_port, beta_port=None):
    """acme.test -> acme_port; beta.test (the senders' domain) -> beta_port."""
    daemon.cli("tenant", "add", "acme")
    daemon.cli("domain", "add", "acme", "acme.test")
    daemon.cli("route", "set", "acme.test", "smtp://127.0.0.1:%d" % acme_port)
    if beta_port is not None:
        daemon.cli("tenant", "add", "beta")
        daemon.cli("domain", "add", "beta", "beta.test")
        daemon.cli("route", "set", "beta.test", "smtp://127.0.0.1:%d" % beta_port)


def send(daemon, subject, rcpts=("bob@acme.test",), sender="alice@beta.test"):
    """Sends one message; returns its queue id from the 250 reply."""
    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@beta.test>\r\n\r\n"
            "hello %s\r\n" % (sender, rcpts[0], subject, subject, subject))
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=20) as s:
        s.ehlo("client.test")
        code, _ = s.mail(sender)
        assert code == 250
        for r in rcpts:
            code, _ = s.rcpt(r)
            assert code == 250
        code, reply = s.data(body.encode())
        assert code == 250, reply
    m = QID.search(reply.decode())
    assert m, reply
    return m.group(1)


def subjects(primary):
    out = []
    for m in primary.messages:
        msg = email.message_from_bytes(m.data, policy=email.policy.default)
        out.append(str(msg["Subject"]))
    return out


def queue_list(daemon):
    return daemon.cli("queue", "list").stdout


def wait_not_in_queue(daemon, qid, timeout=10):
    deadline = time.monotonic() + timeout
    while qid in queue_list(daemon):
        assert time.monotonic() < deadline, "%s still in the queue" % qid
        time.sleep(0.2)


def wait_dsn(primary, n=1, timeout=20):
    msgs = primary.wait_for(n, timeout=timeout)
    m = msgs[n - 1]
    assert m.mail_from in ("", "<>")
    return m, email.message_from_bytes(m.data, policy=email.policy.compat32)


def delivery_status(dsn):
    """(per-message fields, [per-recipient fields]) of a multipart/report."""
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = dsn.get_payload()
    assert len(parts) == 3
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    assert parts[2].get_content_type() in ("message/rfc822", "text/rfc822-headers")
    groups = parts[1].get_payload()
    assert len(groups) >= 2
    return groups[0], groups[1:]


def test_primary_down_deferred_then_delivered(mailark_daemon, smtp_primary):
    p = smtp_primary()
    p.stop()
    d = mailark_daemon(FAST)
    setup_tenants(d, p.port)
    qid = send(d, "deferred-then-delivered")
    d.wait_log(r"\bdeferred\b.*id=%s.*to=bob@acme\.test" % qid, timeout=15)
    assert qid in queue_list(d)
    p.start()
    p.wait_for(1, timeout=20)
    d.wait_log(r"\bdelivered\b.*id=%s.*tenant=acme.*to=bob@acme\.test.*relay=" % qid,
               timeout=10)
    wait_not_in_queue(d, qid)
    assert subjects(p) == ["deferred-then-delivered"]
    assert p.messages[0].rcpt_tos == ["bob@acme.test"]
    assert p.messages[0].mail_from == "alice@beta.test"


def test_5xx_bounces_with_dsn(mailark_daemon, smtp_primary):
    acme = smtp_primary()
    beta = smtp_primary()
    acme.fail_rcpt = (550, "5.1.1 no such user here")
    d = mailark_daemon(FAST)
    setup_tenants(d, acme.port, beta.port)
    qid = send(d, "will-bounce")
    d.wait_log(r"\bbounced\b.*id=%s.*to=bob@acme\.test.*dsn=5\.1\.1" % qid, timeout=15)
    m, dsn = wait_dsn(beta)
    assert m.rcpt_tos == ["alice@beta.test"]
    assert "MAILER-DAEMON@" in dsn["From"]
    assert dsn["To"] == "<alice@beta.test>"
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert dsn["Auto-Submitted"] == "auto-replied"
    per_msg, per_rcpt = delivery_status(dsn)
    assert per_msg["Reporting-MTA"].startswith("dns;")
    assert per_msg["Arrival-Date"]
    assert len(per_rcpt) == 1
    r = per_rcpt[0]
    assert r["Final-Recipient"].replace(" ", "") == "rfc822;bob@acme.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert "550" in r["Diagnostic-Code"] and "no such user" in r["Diagnostic-Code"]
    assert r["Remote-MTA"]
    orig = dsn.get_payload()[2]
    assert b"Subject: will-bounce" in orig.as_bytes()
    wait_not_in_queue(d, qid)
    assert acme.messages == []
    # The DSN itself came from <> and never produces another DSN.
    time.sleep(1)
    assert len(beta.messages) == 1


def test_null_sender_never_gets_a_dsn(mailark_daemon, smtp_primary):
    acme = smtp_primary()
    acme.fail_rcpt = (550, "5.1.1 no such user")
    d = mailark_daemon(FAST)
    setup_tenants(d, acme.port)
    qid = send(d, "bounce-of-bounce", sender="")
    d.wait_log(r"\bbounced\b.*id=%s" % qid, timeout=15)
    wait_not_in_queue(d, qid)
    assert not re.search(r"\bdsn\b.*id=%s" % qid, d.log())


def test_expiry_sends_dsn(mailark_daemon, smtp_primary):
    acme = smtp_primary()
    acme.stop()
    beta = smtp_primary()
    d = mailark_daemon(FAST, **{"queue.max_lifetime": "3s"})
    setup_tenants(d, acme.port, beta.port)
    qid = send(d, "will-expire")
    d.wait_log(r"\bdeferred\b.*id=%s" % qid, timeout=10)
    d.wait_log(r"\bexpired\b.*id=%s.*to=bob@acme\.test" % qid, timeout=20)
    m, dsn = wait_dsn(beta)
    assert m.rcpt_tos == ["alice@beta.test"]
    _, per_rcpt = delivery_status(dsn)
    assert per_rcpt[0]["Action"] == "failed"
    assert per_rcpt[0]["Status"].startswith("4.")
    wait_not_in_queue(d, qid)


def test_hold_release_delete_flush(mailark_daemon, smtp_primary):
    p = smtp_primary()
    p.stop()
    # Long retries: only flush and release make anything happen.
    d = mailark_daemon({"queue.retry_min": "1h", "queue.retry_max": "2h"})
    setup_tenants(d, p.port)
    held = send(d, "held")
    flushed = send(d, "flushed")
    deleted = send(d, "deleted")
    for qid in (held, flushed, deleted):
        d.wait_log(r"\bdeferred\b.*id=%s" % qid, timeout=15)
    d.cli("queue", "hold", held)
    d.cli("queue", "delete", deleted)
    d.wait_log(r"\bdeleted\b.*id=%s" % deleted, timeout=5)
    listing = queue_list(d)
    assert held in listing and flushed in listing and deleted not in listing
    assert held in d.cli("queue", "show", held).stdout

    p.start()
    d.cli("queue", "flush")
    p.wait_for(1, timeout=15)
    d.wait_log(r"\bdelivered\b.*id=%s" % flushed, timeout=10)
    time.sleep(1.5)
    assert subjects(p) == ["flushed"]          # held stays, deleted is gone
    assert held in queue_list(d)

    d.cli("queue", "release", held)
    p.wait_for(2, timeout=15)
    d.wait_log(r"\bdelivered\b.*id=%s" % held, timeout=10)
    wait_not_in_queue(d, held)
    time.sleep(1)
    assert sorted(subjects(p)) == ["flushed", "held"]


def test_hold_persists_across_restart(mailark_daemon, smtp_primary):
    p = smtp_primary()
    p.stop()
    d = mailark_daemon(FAST)
    setup_tenants(d, p.port)
    qid = send(d, "held-over-restart")
    d.wait_log(r"\bdeferred\b.*id=%s" % qid, timeout=15)
    d.cli("queue", "hold", qid)
    d.stop()
    p.start()
    d.start()
    time.sleep(3)
    assert p.messages == []
    assert qid in queue_list(d)
    d.cli("queue", "release", qid)
    p.wait_for(1, timeout=15)


@pytest.mark.parametrize("how", ["stop", "kill9"])
def test_restart_delivers_queued_once(mailark_daemon, smtp_primary, how):
    p = smtp_primary()
    p.stop()
    d = mailark_daemon(FAST)
    setup_tenants(d, p.port)
    ids = [send(d, "restart-%d" % i, rcpts=("bob@acme.test", "carol@acme.test"))
           for i in range(3)]
    for qid in ids:
        d.wait_log(r"\bdeferred\b.*id=%s" % qid, timeout=15)
    if how == "stop":
        d.stop()
    else:
        d.kill9()
    p.start()
    d.start()
    p.wait_for(3, timeout=20)
    for qid in ids:
        wait_not_in_queue(d, qid)
    time.sleep(3)
    assert sorted(subjects(p)) == ["restart-0", "restart-1", "restart-2"]
    for m in p.messages:
        assert sorted(m.rcpt_tos) == ["bob@acme.test", "carol@acme.test"]
