"""Checks the test harness itself: the aiosmtpd primary fixture and helpers."""

import smtplib
import ssl

import pytest

from conftest import free_port, swaks


def _send(port, rcpts, body, starttls=False):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("harness.test")
        if starttls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s.starttls(context=ctx)
            s.ehlo("harness.test")
        return s.sendmail("sender@example.org", rcpts, body)


def test_free_port_distinct():
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20


def test_primary_records_message(smtp_primary):
    p = smtp_primary()
    body = b"Subject: t\r\n\r\n.leading dot\r\nline two\r\n"
    _send(p.port, ["a@example.com", "b@example.com"], body)
    msgs = p.wait_for(1, timeout=5)
    assert msgs[0].mail_from == "sender@example.org"
    assert msgs[0].rcpt_tos == ["a@example.com", "b@example.com"]
    assert msgs[0].data == body
    assert not msgs[0].tls


def test_primary_fail_rcpt_and_data(smtp_primary):
    p = smtp_primary()
    p.fail_rcpt = (550, "5.1.1 no such user")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as ei:
        _send(p.port, ["a@example.com"], b"Subject: x\r\n\r\nx\r\n")
    assert ei.value.recipients["a@example.com"][0] == 550
    p.fail_rcpt = None
    p.fail_data = (451, "4.3.0 try later")
    with pytest.raises(smtplib.SMTPDataError) as ei:
        _send(p.port, ["a@example.com"], b"Subject: x\r\n\r\nx\r\n")
    assert ei.value.smtp_code == 451
    assert p.messages == []
    p.fail_data = None
    _send(p.port, ["a@example.com"], b"Subject: x\r\n\r\nx\r\n")
    assert len(p.wait_for(1, timeout=5)) == 1


def test_primary_stop_start_same_port(smtp_primary):
    p = smtp_primary()
    port = p.port
    p.stop()
    with pytest.raises(OSError):
        _send(port, ["a@example.com"], b"Subject: x\r\n\r\nx\r\n")
    p.start()
    assert p.port == port
    _send(port, ["a@example.com"], b"Subject: x\r\n\r\nx\r\n")
    assert len(p.wait_for(1, timeout=5)) == 1


def test_primary_starttls(smtp_primary):
    p = smtp_primary(tls=True)
    _send(p.port, ["a@example.com"], b"Subject: tls\r\n\r\nx\r\n", starttls=True)
    msgs = p.wait_for(1, timeout=5)
    assert msgs[0].tls


def test_swaks_helper(smtp_primary):
    p = smtp_primary()
    r = swaks("--server", "127.0.0.1:%d" % p.port, "--to", "a@example.com",
              "--from", "s@example.org", "--body", "hello")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250" in r.stdout
    assert b"hello" in p.wait_for(1, timeout=5)[0].data
