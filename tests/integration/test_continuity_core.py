"""Continuity core (issue 5): the state machine, the ledger, the failback
replay and the sent copies, checked through the control socket against the
real daemon, an aiosmtpd primary that the tests stop and start, and Python's
smtplib for submission (STARTTLS + AUTH PLAIN).

  - auto outage -> automatic failback: the held mail reaches the primary once,
    in arrival order; the mail Ann sent during the outage comes back to her
    as a marked copy; the report reconciles; every transition is audited.
  - a held entry does not expire while held (max_lifetime does not run).
  - a drill: delivery is never delayed; what the drill user sends is copied
    to the primary at drill stop; the drill report counts it.
  - settings are validated, the password is never shown.
"""

import json
import smtplib
import ssl
import time

import pytest

from test_continuity import (ANN, BOB, DOMAIN, OUTSIDE, PW_ANN, T, assert_reconciles,
                             ctl, control_raw, cset, make_cert, make_msg, report, send,
                             status, state_of, subject_of, subjects_at, wait_report,
                             wait_state, wait_subject)


def submit(d, user, password, to, subject):
    """Submission with smtplib: STARTTLS, AUTH PLAIN, one message."""
    msg = make_msg(subject, to=to, sender=user)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", d.submission_port, timeout=30) as s:
        s.ehlo("client.test")
        s.starttls(context=ctx)
        s.ehlo("client.test")
        s.login(user, password)
        refused = s.sendmail(user, [to], msg)
        assert refused == {}, refused


@pytest.fixture
def core(mailark_daemon, smtp_primary, tmp_path):
    def make(**extra):
        cert, key = make_cert(tmp_path)
        primary = smtp_primary()
        smarthost = smtp_primary()
        conf = {"continuity.probe_interval": "1s", "continuity.probe_failures": "2",
                "continuity.probe_timeout": "2s", "queue.retry_min": "1s",
                "queue.retry_max": "2s",
                "delivery.smarthost": "127.0.0.1:%d" % smarthost.port,
                "tls.cert": cert, "tls.key": key}
        conf.update(extra)
        d = mailark_daemon(**conf)
        d.cli("tenant", "add", T)
        d.cli("domain", "add", T, DOMAIN)
        d.cli("route", "set", DOMAIN, "smtp://127.0.0.1:%d" % primary.port)
        d.cli("user", "add", T, ANN, "--password-stdin", input=PW_ANN + "\n")
        d.cli("user", "add", T, BOB, "--password-stdin", input="bob-password-2\n")
        return d, primary, smarthost
    return make


def audit_actions(d):
    out = d.cli("audit", "list", "--json").stdout
    rows = json.loads(out)
    if isinstance(rows, dict):
        rows = rows.get("entries", [])
    return [(r.get("action"), r.get("actor")) for r in rows]


def test_auto_outage_replays_in_order_with_sent_copy(core):
    d, primary, smarthost = core()
    cset(d, "mode", "auto")
    cset(d, "failback_after", 1)
    send(d, [ANN], make_msg("pre"))
    wait_subject(primary, "pre")
    n0 = len(primary.messages)

    primary.stop()
    st = wait_state(d, "active", timeout=15)
    assert any(r["state"] == "down" for r in st["routes"]), st
    r = report(d)
    assert r["started_by"] == "auto" and "down" in (r["reason"] or ""), r

    held = ["held-%d" % i for i in range(5)]
    for s in held:
        send(d, [ANN, BOB], make_msg(s))
    submit(d, ANN, PW_ANN, OUTSIDE, "ann-outside")
    # outbound mail is never held
    wait_subject(smarthost, "ann-outside")
    wait_report(d, lambda x: x["accepted"] == 2 * len(held) + 1, "held + sent rows")
    r = report(d)
    assert r["pending"] == r["accepted"] and r["reconciles"] is True, r
    kinds = sorted({p["kind"] for p in r["pending_list"]})
    assert kinds == ["inbound", "sent"], r["pending_list"]

    primary.start()
    wait_state(d, "normal", timeout=30)
    msgs = primary.wait_for(n0 + len(held) + 1, timeout=20)
    got = [subject_of(m.data) for m in msgs[n0:]]
    assert [s for s in got if s in held] == held, got
    copies = [m for m in msgs[n0:] if m.data.startswith(b"X-Mailark-Continuity: sent-copy")]
    assert len(copies) == 1 and copies[0].rcpt_tos == [ANN], got
    assert subject_of(copies[0].data) == "ann-outside"
    time.sleep(2)
    assert len(primary.messages) == len(msgs), subjects_at(primary)[len(msgs):]

    r = report(d)
    assert_reconciles(r)
    assert (r["accepted"], r["delivered"], r["pending"], r["failed"]) == \
        (2 * len(held) + 1, 2 * len(held) + 1, 0, 0), r
    assert r["state"] == "ended" and r["failback_at"] and r["ended_at"], r
    acts = [a for a, _ in audit_actions(d)]
    for a in ("continuity.start", "continuity.failback", "continuity.end"):
        assert a in acts, acts
    assert ("continuity.start", "auto") in audit_actions(d)


def test_held_entries_do_not_expire(core):
    d, primary, _ = core(**{"queue.max_lifetime": "3s"})
    d.cli("continuity", "start", T)
    wait_state(d, "active", timeout=5)
    send(d, [ANN], make_msg("long-held"))
    time.sleep(6)
    assert "long-held" not in subjects_at(primary)
    d.cli("continuity", "stop", T)
    wait_subject(primary, "long-held", timeout=20)
    wait_state(d, "normal", timeout=20)
    r = report(d)
    assert (r["accepted"], r["delivered"], r["failed"]) == (1, 1, 0), r
    assert "expired" not in d.log()


def test_drill_sent_copy_and_report(core):
    d, primary, smarthost = core()
    d.cli("continuity", "drill", "start", T, "--users", ANN)
    st = status(d)
    assert state_of(st) == "normal" and st["drill"]["users"] == ANN, st
    send(d, [ANN], make_msg("drill-in"))
    wait_subject(primary, "drill-in", timeout=10)   # never delayed
    submit(d, ANN, PW_ANN, OUTSIDE, "drill-out")
    wait_subject(smarthost, "drill-out")
    r = wait_report(d, lambda x: x["accepted"] == 1, "one sent row", drill=True)
    users = {u["address"]: u for u in r["users"]}
    assert users[ANN]["sent"] == 1, r
    assert r["pending"] == 1 and r["reconciles"] is True, r
    d.cli("continuity", "drill", "stop", T)
    m = wait_subject(primary, "drill-out", timeout=20)
    assert m.data.startswith(b"X-Mailark-Continuity: sent-copy"), m.data[:100]
    assert m.rcpt_tos == [ANN]
    r = wait_report(d, lambda x: x["pending"] == 0, "the copy delivered", drill=True)
    assert_reconciles(r)
    assert (r["accepted"], r["delivered"], r["failed"]) == (1, 1, 0), r
    assert status(d)["drill"] is None
    # a second stop is an error, a report of a tenant without outages too
    assert not control_raw(d, "continuity.drill.stop", tenant=T).get("ok")
    assert not control_raw(d, "continuity.report", tenant=T).get("ok")


def test_settings_validated_and_password_hidden(core):
    d, _, _ = core()
    for key, value in (("mode", "sometimes"), ("failback_after", "-1"),
                       ("window_days", "0"), ("sent_copy", "fax"), ("bogus", "1"),
                       ("webhook", "ftp://x")):
        reply = control_raw(d, "continuity.set", tenant=T, key=key, value=value)
        assert not reply.get("ok"), (key, value, reply)
    ctl(d, "continuity.set", tenant=T, key="imap_password", value="s3cret-pw")
    ctl(d, "continuity.set", tenant=T, key="window_days", value="7")
    s = ctl(d, "continuity.settings", tenant=T)
    s = s.get("settings", s)
    assert s["imap_password"] == "set" and s["window_days"] == 7, s
    assert "s3cret-pw" not in json.dumps(status(d))
    assert "s3cret-pw" not in d.log()


def test_sent_copy_survives_a_restart(core):
    d, primary, smarthost = core()
    d.cli("continuity", "start", T)
    wait_state(d, "active", timeout=5)
    submit(d, ANN, PW_ANN, OUTSIDE, "before-restart")
    # the original leaves for the world: only the kept copy is left for failback
    wait_subject(smarthost, "before-restart")
    wait_report(d, lambda x: x["accepted"] == 1, "the sent row")
    d.kill9()
    d.start()
    wait_state(d, "active", timeout=10)
    r = report(d)
    assert (r["accepted"], r["pending"]) == (1, 1), r
    d.cli("continuity", "stop", T)
    m = wait_subject(primary, "before-restart", timeout=20)
    assert m.data.startswith(b"X-Mailark-Continuity: sent-copy outage=%d" % r["id"])
    wait_state(d, "normal", timeout=20)
    r = report(d)
    assert_reconciles(r)
    assert (r["accepted"], r["delivered"], r["pending"]) == (1, 1, 0), r
    assert subjects_at(smarthost).count("before-restart") == 1
