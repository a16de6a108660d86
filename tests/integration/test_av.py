"""Antivirus (clamd) against the real daemon and a real clamd.

clamd runs from clamd_helper with a one-signature database (EICAR).  Inbound
mail for tenant acme goes to an aiosmtpd primary.  EICAR is refused at the
end of DATA with 550 5.7.1 naming the virus; clean mail is delivered; with
clamd stopped the message is deferred (451, av.on_failure closed) or, with
av.on_failure open, delivered with "av:failed" in X-Mailark-Hygiene;
av.action quarantine keeps it in the quarantine; outbound mail is scanned too.
"""

import base64
import json
import time

import pytest

import hygiene_helper
from clamd_helper import EICAR, VIRUS_NAME, Clamd
from hygiene_helper import FAST_RETRY, quarantined, send

# Stages other than the antivirus are off: these tests look at one thing.
QUIET = {"spf.enabled": "no", "dkim.verify": "no", "dmarc.enabled": "no",
         "spam.enabled": "no", "attach.enabled": "no", "milter.enabled": "no",
         "impersonation.lookalike": "no"}


@pytest.fixture
def clamd(tmp_path):
    c = Clamd(tmp_path / "clamd")
    yield c
    c.stop()


def start(mailark_daemon, smtp_primary, clamd, **policy):
    settings = dict(QUIET)
    settings.update(policy)
    conf = {"hygiene.clamd_socket": clamd.socket, "hygiene.clamd_timeout": "20s"}
    conf.update(FAST_RETRY)
    return hygiene_helper.start(mailark_daemon, smtp_primary, settings, conf, smarthost=True)


def message(subject, attachment=None, sender="alice@beta.test", rcpt="bob@acme.test"):
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@beta.test>\r\n"
            "MIME-Version: 1.0\r\n" % (sender, rcpt, subject, subject.replace(" ", ".")))
    if attachment is None:
        return (head + "\r\nJust text.\r\n").encode()
    b64 = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
    return (head + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            '--b1\r\nContent-Type: application/octet-stream; name="file.com"\r\n'
            'Content-Disposition: attachment; filename="test.txt"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + b64 + "--b1--\r\n").encode()


def test_eicar_rejected_clean_delivered(mailark_daemon, smtp_primary, clamd):
    d, p = start(mailark_daemon, smtp_primary, clamd)
    code, reply = send(d, message("virus", EICAR))
    assert code == 550, reply
    assert reply.startswith("5.7.1") or "5.7.1" in reply
    assert reply.endswith("virus found: " + VIRUS_NAME), reply
    code, reply = send(d, message("clean", b"%PDF-1.4\nnothing to see\n"))
    assert code == 250, reply
    got = p.wait_for(1)
    time.sleep(0.5)
    assert len(p.messages) == 1
    assert b"Subject: clean" in got[0].data
    d.wait_log(r"hygiene_virus .*virus=" + VIRUS_NAME.replace(".", r"\."), 5)


def test_clamd_down_fail_closed_then_open(mailark_daemon, smtp_primary, clamd):
    d, p = start(mailark_daemon, smtp_primary, clamd)
    clamd.stop()
    code, reply = send(d, message("while down"))
    assert code == 451, reply
    assert "4.7.1" in reply
    d.cli("policy", "set", "acme", "av.on_failure", "open")
    code, reply = send(d, message("fail open"))
    assert code == 250, reply
    got = p.wait_for(1)
    assert b"Subject: fail open" in got[0].data
    head = got[0].data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
    lines = [l for l in head.split(b"\r\n") if l.lower().startswith(b"x-mailark-hygiene:")]
    assert lines and b"av:failed" in lines[0], head
    assert len(p.messages) == 1


def test_action_quarantine(mailark_daemon, smtp_primary, clamd):
    d, p = start(mailark_daemon, smtp_primary, clamd, **{"av.action": "quarantine"})
    code, reply = send(d, message("held virus", EICAR))
    assert code == 250, reply
    deadline = time.monotonic() + 10
    while not quarantined(d):
        assert time.monotonic() < deadline, "nothing quarantined"
        time.sleep(0.2)
    text = json.dumps(quarantined(d))
    assert "av:" + VIRUS_NAME in text
    time.sleep(0.5)
    assert p.messages == []


def test_outbound_scanned(mailark_daemon, smtp_primary, clamd):
    d, p = start(mailark_daemon, smtp_primary, clamd)
    d.cli("relay", "add", "acme", "127.0.0.1/32")
    code, reply = send(d, message("outbound virus", EICAR, sender="alice@acme.test",
                                  rcpt="carol@example.net"),
                       sender="alice@acme.test", rcpts="carol@example.net")
    assert code == 550, reply
    assert reply.endswith("virus found: " + VIRUS_NAME), reply
    code, reply = send(d, message("outbound clean", sender="alice@acme.test",
                                  rcpt="carol@example.net"),
                       sender="alice@acme.test", rcpts="carol@example.net")
    assert code == 250, reply
    got = p.wait_for(1)
    assert b"Subject: outbound clean" in got[0].data


def test_stream_limit_is_a_failure(mailark_daemon, smtp_primary, tmp_path):
    small = Clamd(tmp_path / "small", stream_max="64K")
    try:
        d, p = start(mailark_daemon, smtp_primary, small)
        big = message("big", bytes(range(256)) * 1024)   # 256 kB attachment
        code, reply = send(d, big)
        assert code == 451, reply
        d.wait_log(r"hygiene_stage_failed .*stage=av .*StreamMaxLength", 5)
        code, reply = send(d, message("small"))
        assert code == 250, reply
        assert b"Subject: small" in p.wait_for(1)[0].data
    finally:
        small.stop()
