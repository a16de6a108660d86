"""Outbound data loss prevention against the real daemon.

Mail relayed from 127.0.0.1 for tenant acme goes to a smarthost (an aiosmtpd
primary without STARTTLS).  A Luhn-valid card number is held in the
quarantine; 16 digits failing Luhn are delivered; a keyword with action
block is refused 550 during DATA; notify delivers the message and sends a
notification to dlp.notify; require_tls keeps the message queued because
the primary offers no TLS.
"""

import json
import re
import time

import hygiene_helper
from hygiene_helper import FAST_RETRY, quarantined

SENDER = "alice@acme.test"
RCPT = "bob@example.net"


def start(mailark_daemon, smtp_primary, **policy):
    settings = {"av.enabled": "no", "attach.enabled": "no", "milter.enabled": "no"}
    settings.update(policy)
    return hygiene_helper.start(mailark_daemon, smtp_primary, settings, FAST_RETRY, route=False,
                                smarthost=True, relay=True)


def message(subject, body):
    return ("From: Alice <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@acme.test>\r\n"
            "\r\n%s\r\n" % (SENDER, RCPT, subject, re.sub(r"\W", ".", subject), body)).encode()


def send(d, data):
    return hygiene_helper.send(d, data, SENDER, RCPT)


def test_card_held_invalid_card_delivered(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary, **{"dlp.cards": "yes", "dlp.action": "hold"})
    code, reply = send(d, message("card", "Please charge 4111 1111 1111 1111, thanks."))
    assert code == 250, reply
    code, reply = send(d, message("not a card", "Order 4111 1111 1111 1112 shipped."))
    assert code == 250, reply
    got = p.wait_for(1)
    time.sleep(1)
    assert [m for m in p.messages if b"Subject: card\r\n" in m.data] == []
    assert any(b"Subject: not a card" in m.data for m in got)
    items = quarantined(d)
    text = json.dumps(items)
    assert "dlp:hold card" in text
    assert "4111" not in text
    assert len(items if isinstance(items, list) else items.get("items", [])) == 1


def test_keyword_block_550(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary,
                 **{"dlp.keywords": "Project Falcon, confidential", "dlp.action": "block"})
    code, reply = send(d, message("plans", "The project FALCON launch is next week."))
    assert code == 550, reply
    assert "5.7.1" in reply and "data loss prevention" in reply
    assert "keyword Project Falcon" in reply
    # not a whole word: delivered
    code, reply = send(d, message("plans", "Our confidentiality notice is attached."))
    assert code == 250, reply
    p.wait_for(1)


def test_notify_delivers_and_notifies(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary,
                 **{"dlp.patterns": r"ACME-[0-9]{6}", "dlp.action": "notify",
                    "dlp.notify": "compliance@acme.test"})
    code, reply = send(d, message("contract", "Contract ACME-123456 signed."))
    assert code == 250, reply
    got = p.wait_for(2)
    orig = [m for m in got if RCPT in m.rcpt_tos]
    note = [m for m in got if "compliance@acme.test" in m.rcpt_tos]
    assert len(orig) == 1 and len(note) == 1
    assert b"Contract ACME-123456 signed." in orig[0].data
    assert b"pattern 1" in note[0].data
    assert b"alice@acme.test" in note[0].data
    assert b"ACME-123456" not in note[0].data


def test_require_tls_stays_queued(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary,
                 **{"dlp.keywords": "salary", "dlp.action": "require_tls"})
    code, reply = send(d, message("pay", "The salary table is below."))
    assert code == 250, reply
    d.wait_log(r"deferred.*TLS", timeout=20)
    time.sleep(1)
    assert p.messages == []
    assert RCPT in d.cli("queue", "list").stdout
