"""Impersonation against the real daemon.

With `policy set acme impersonation.executives "Jane Doe, John Smith"`, mail
from an outside address whose From display name is an executive ("Doe,
Jane" too) is quarantined (the default impersonation.action); mail from a
look-alike of the tenant's domain (acrne.test for acme.test) is delivered
tagged when the action is "tag"; the tenant's own mail and unrelated mail
go through untouched.
"""

import re

import hygiene_helper
from hygiene_helper import quarantined, send_queued


def start(mailark_daemon, smtp_primary):
    return hygiene_helper.start(mailark_daemon, smtp_primary, (
        ("spf.enabled", "no"), ("dkim.verify", "no"), ("dmarc.enabled", "no"),
        ("av.enabled", "no"), ("spam.enabled", "no"),
        ("impersonation.executives", "Jane Doe, John Smith")))


def send(d, from_hdr, subject, sender="someone@elsewhere.test"):
    body = ("From: %s\r\nTo: <bob@acme.test>\r\nSubject: %s\r\n"
            "Message-ID: <%s@elsewhere.test>\r\n\r\nPlease pay the invoice.\r\n"
            % (from_hdr, subject, subject.replace(" ", ".")))
    return send_queued(d, body.encode(), sender=sender)


def qids(d):
    return [i["id"] for i in quarantined(d)]


def test_executive_name_quarantined(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    q1 = send(d, '"Jane Doe" <ceo.jane@freemail.test>', "urgent one")
    q2 = send(d, '"Doe, Jane" <jd@freemail.test>', "urgent two")
    # the 250 reply names the quarantine item
    d.wait_log(r'quarantined id=%s .*reasons="impersonation:display name \\"Jane Doe\\" '
               r'from outside address"' % q1, timeout=10)
    assert sorted(qids(d)) == sorted([q1, q2])
    # the real Jane Doe, and someone else, are delivered
    send(d, '"Jane Doe" <jane@acme.test>', "real jane", sender="jane@acme.test")
    send(d, '"Jim Beam" <jim@freemail.test>', "other")
    msgs = p.wait_for(2, timeout=20)
    subjects = sorted(m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in msgs)
    assert subjects == [b"other", b"real jane"]
    assert all(b"impersonation" not in m.data for m in msgs)
    assert len(qids(d)) == 2


def test_lookalike_domain_tagged(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    d.cli("policy", "set", "acme", "impersonation.action", "tag")
    send(d, "Billing <billing@acrne.test>", "invoice", sender="billing@acrne.test")
    msg = p.wait_for(1, timeout=20)[0].data
    assert b"X-Mailark-Hygiene:" in msg
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", msg)
    assert b"impersonation:look-alike domain acrne.test of acme.test" in unfolded
    assert qids(d) == []
    # lookalike off: the same mail goes through without the finding
    d.cli("policy", "set", "acme", "impersonation.lookalike", "no")
    send(d, "Billing <billing@acrne.test>", "invoice two", sender="billing@acrne.test")
    msg = p.wait_for(2, timeout=20)[1].data
    assert b"look-alike" not in re.sub(rb"\r\n[ \t]+", b" ", msg)
