"""The quarantine against the real daemon.

A GTUBE message (spam.quarantine_score 5, spam.reject_score 10000) is held:
250 to the client, listed, shown; released, it reaches the primary
byte-identical to what was quarantined (apart from our trace headers);
deleted, it is gone.  A user sees only items addressed to them and may
release only when quarantine.user_release is yes; another tenant's admin
gets 404.  The digest lists a recipient's items.  Items survive kill -9;
items older than quarantine.retention_days are purged.
"""

import json
import os
import sqlite3
import time

import hygiene_helper
from hygiene_helper import quarantined, send_queued
from test_api import Api, control, operator_token

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
TRACE = (b"received:", b"return-path:", b"x-mailark", b"authentication-results:",
         b"delivered-to:")


def start(mailark_daemon, smtp_primary):
    return hygiene_helper.start(mailark_daemon, smtp_primary, (
        ("spam.quarantine_score", "5"), ("spam.reject_score", "10000"), ("spf.enabled", "no"),
        ("dkim.verify", "no"), ("dmarc.enabled", "no"), ("av.enabled", "no")))


def send(d, subject, rcpt="bob@acme.test", spam=True):
    body = ("From: Spammer <spammer@elsewhere.test>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@elsewhere.test>\r\n\r\nHello.\r\n%s\r\n"
            % (rcpt, subject, subject.replace(" ", "."), GTUBE if spam else "nothing"))
    return send_queued(d, body.encode(), sender="spammer@elsewhere.test", rcpts=rcpt)


def eml(d, qid):
    return os.path.join(d.data_dir, "quarantine", "acme", qid + ".eml")


def strip_trace(data):
    """The message without the trace fields at its top."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    i = 0
    while i < len(lines) and lines[i].lower().startswith(TRACE):
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return b"\n".join(lines[i:])


def test_quarantine_release_delete_and_restart(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    qid = send(d, "first spam")
    items = quarantined(d)
    assert [i["id"] for i in items] == [qid]
    assert items[0]["rcpts"] == ["bob@acme.test"] and items[0]["subject"] == "first spam"
    assert "spam" in items[0]["reasons"]
    assert not p.messages
    shown = json.loads(d.cli("quarantine", "show", "acme", qid, "--json").stdout)
    assert "Subject: first spam" in shown["headers"] and shown["sender"] == "spammer@elsewhere.test"
    with open(eml(d, qid), "rb") as f:
        held = f.read()
    assert GTUBE.encode() in held

    # kill -9: the item is still there, and still releasable
    d.kill9()
    d.start()
    assert [i["id"] for i in quarantined(d)] == [qid]

    d.cli("quarantine", "release", "acme", qid)
    got = p.wait_for(1)[0]
    assert got.rcpt_tos == ["bob@acme.test"] and got.mail_from == "spammer@elsewhere.test"
    assert strip_trace(got.data) == strip_trace(held)
    assert quarantined(d) == []
    assert not os.path.exists(eml(d, qid))

    qid2 = send(d, "second spam")
    d.cli("quarantine", "delete", "acme", qid2)
    assert quarantined(d) == []
    assert not os.path.exists(eml(d, qid2))
    r = d.cli("quarantine", "release", "acme", qid2, check=False)
    assert r.returncode == 1 and "not found" in r.stderr
    # mail without GTUBE goes straight through
    send(d, "clean", spam=False)
    assert len(p.wait_for(2)) == 2 and quarantined(d) == []


def test_users_see_their_own_items(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    d.cli("tenant", "add", "beta")
    d.cli("domain", "add", "beta", "beta.test")
    for addr, role, tenant in (("bob@acme.test", "user", "acme"),
                               ("carol@acme.test", "user", "acme"),
                               ("adm@beta.test", "admin", "beta")):
        control(d, "user.add", tenant=tenant, address=addr, role=role, password="pw-123456789")
    bob_id = send(d, "for bob", rcpt="bob@acme.test")
    carol_id = send(d, "for carol", rcpt="carol@acme.test")
    assert len(quarantined(d)) == 2
    assert [i["id"] for i in quarantined(d, "carol@acme.test")] == [carol_id]

    def token(user):
        return control(d, "token.create", name="t", user=user)["token"]

    bob = Api(d.http_port, token("bob@acme.test"))
    st, js, _ = bob.get("/api/v1/tenants/acme/quarantine")
    assert st == 200, js
    assert [i["id"] for i in js["items"]] == [bob_id]
    st, js, _ = bob.get("/api/v1/tenants/acme/quarantine?rcpt=carol@acme.test")
    assert st == 200 and js["items"] == []
    assert bob.get("/api/v1/tenants/acme/quarantine/" + bob_id)[0] == 200
    assert bob.get("/api/v1/tenants/acme/quarantine/" + carol_id)[0] == 404
    assert bob.post("/api/v1/tenants/acme/quarantine/%s/release" % carol_id)[0] == 404
    # release refused while quarantine.user_release is no
    st, js, _ = bob.post("/api/v1/tenants/acme/quarantine/%s/release" % bob_id)
    assert st == 403, js
    assert bob.request("DELETE", "/api/v1/tenants/acme/quarantine/" + bob_id)[0] == 403
    assert len(quarantined(d)) == 2
    # "not spam" reports: of one's own quarantined mail only
    st, js, _ = bob.post("/api/v1/tenants/acme/spam/report", {"id": carol_id, "verdict": "ham"})
    assert st == 404, js
    st, js, _ = bob.post("/api/v1/tenants/acme/spam/report", {"id": bob_id, "verdict": "ham"})
    assert st == 200 and js["queued"], js
    for _ in range(100):
        s = control(d, "spam.stats", tenant="acme")
        if s["pending"] == 0:
            break
        time.sleep(0.1)
    assert s["own"]["ham"] == 1 and s["own"]["spam"] == 0, s

    other = Api(d.http_port, token("adm@beta.test"))
    assert other.get("/api/v1/tenants/acme/quarantine")[0] == 404
    assert other.get("/api/v1/tenants/acme/quarantine/" + bob_id)[0] == 404
    assert other.post("/api/v1/tenants/acme/quarantine/%s/release" % bob_id)[0] == 404

    d.cli("policy", "set", "acme", "quarantine.user_release", "yes")
    st, js, _ = bob.post("/api/v1/tenants/acme/quarantine/%s/release" % bob_id)
    assert st == 200, js
    got = p.wait_for(1)[0]
    assert got.rcpt_tos == ["bob@acme.test"]
    assert [i["id"] for i in quarantined(d)] == [carol_id]

    # the operator's API sees everything
    op = Api(d.http_port, operator_token(d))
    st, js, _ = op.get("/api/v1/tenants/acme/quarantine")
    assert st == 200 and [i["id"] for i in js["items"]] == [carol_id]


def test_digest_lists_the_recipients_items(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    qid = send(d, "digest me", rcpt="bob@acme.test")
    out = json.loads(d.cli("quarantine", "digest", "acme", "--json").stdout)
    assert out["digests"] == 1
    got = p.wait_for(1)[0]
    assert got.rcpt_tos == ["bob@acme.test"] and got.mail_from in ("", "<>")
    text = got.data.decode()
    assert qid in text and "digest me" in text and "Auto-Submitted: auto-generated" in text
    assert "quarantine release acme" in text
    # listed once
    assert json.loads(d.cli("quarantine", "digest", "acme", "--json").stdout)["digests"] == 0
    # and not for a tenant that turned it off
    d.cli("policy", "set", "acme", "quarantine.digest", "no")
    send(d, "no digest", rcpt="bob@acme.test")
    assert json.loads(d.cli("quarantine", "digest", "acme", "--json").stdout)["digests"] == 0


def test_retention_purges_old_items(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    old = send(d, "old spam")
    recent = send(d, "recent spam")
    d.stop()
    day = 86400
    db = sqlite3.connect(os.path.join(d.data_dir, "quarantine", "quarantine.db"))
    with db:
        db.execute("UPDATE items SET time = time - ? WHERE id = ?", (31 * day, old))
        db.execute("UPDATE items SET time = time - ? WHERE id = ?", (10 * day, recent))
    db.close()
    since = len(d.log())
    d.start()
    d.wait_log(r"quarantine_purged tenant=acme items=1", timeout=20, since=since)
    assert [i["id"] for i in quarantined(d)] == [recent]
    assert not os.path.exists(eml(d, old)) and os.path.exists(eml(d, recent))
