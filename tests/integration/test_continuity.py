"""Continuity end to end (issue 5), against the real daemon with real clients.

A tenant "acme" whose domain is routed to an aiosmtpd primary that the tests
stop and start; [delivery] smarthost is a second aiosmtpd that captures mail
leaving for the world (submission mail to outside addresses, alert emails).
Probes run every second and two failures make a route down.

  - auto: the primary stops -> ACTIVE by itself; inbound mail is accepted and
    held; users read it over IMAP (imaplib over TLS) and send through
    submission (swaks); the primary returns -> automatic failback: every
    held message reaches the primary once, in arrival order, the sent copy
    too; the report reconciles; IMAP sign-in is refused afterwards.
  - manual: the route goes down, the state stays NORMAL and an alert email
    leaves through the smarthost; `mailark continuity start/stop`.
  - dedupe: a message the primary already has is skipped at failback.
  - crash: kill -9 during an outage; the outage survives, failback delivers
    everything once.
  - drill: mail is still delivered at once and also visible over IMAP for
    the drill's users only; the drill report.
  - other clients: mbsync, mutt (batch, under script(1) for a terminal) and
    curl's IMAP against the continuity mailbox.

The control socket is used for status and reports (the JSON of
continuity.h); the CLI for the admin commands an operator would type.
"""

import email
import imaplib
import json
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import control_request as control_raw, swaks

T = "acme"
DOMAIN = "acme.example"
ANN = "ann@acme.example"
BOB = "bob@acme.example"
PW_ANN = "ann-password-1"
PW_BOB = "bob-password-2"
OTHER_T = "globex"
CAROL = "carol@globex.example"
PW_CAROL = "carol-password-3"
OPS = "ops@watch.example"
OUTSIDE = "partner@world.example"


# --------------------------------------------------------------------------
# control socket and CLI


def ctl(d, cmd, **args):
    reply = control_raw(d, cmd, **args)
    assert reply.get("ok"), "control %s %r failed: %r" % (cmd, args, reply)
    return reply["result"]


def status(d, tenant=T):
    return ctl(d, "continuity.status", tenant=tenant)


def state_of(st):
    return str(st.get("state", "")).lower().replace("-", "_")


def wait_state(d, want, tenant=T, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        st = status(d, tenant)
        if state_of(st) == want:
            return st
        if time.monotonic() > deadline:
            raise AssertionError("tenant %s: state %r, expected %r after %ss\n%s"
                                 % (tenant, st.get("state"), want, timeout,
                                    json.dumps(st, indent=1)))
        time.sleep(0.1)


def route_states(st):
    return [str(r.get("state")) for r in st.get("routes", [])]


def wait_route(d, want, tenant=T, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        st = status(d, tenant)
        states = route_states(st)
        if states and all(s == want for s in states):
            return st
        if time.monotonic() > deadline:
            raise AssertionError("routes of %s: %r, expected all %r after %ss"
                                 % (tenant, states, want, timeout))
        time.sleep(0.1)


def report(d, tenant=T):
    return ctl(d, "continuity.report", tenant=tenant)


def wait_report(d, pred, what, tenant=T, timeout=20, drill=False):
    cmd = "continuity.drill.report" if drill else "continuity.report"
    deadline = time.monotonic() + timeout
    while True:
        r = ctl(d, cmd, tenant=tenant)
        if pred(r):
            return r
        if time.monotonic() > deadline:
            raise AssertionError("report never showed %s after %ss:\n%s"
                                 % (what, timeout, json.dumps(r, indent=1)))
        time.sleep(0.2)


def assert_reconciles(r):
    acc, dlv, pend, fail = r["accepted"], r["delivered"], r["pending"], r["failed"]
    assert acc == dlv + pend + fail, r
    assert r["reconciles"] is True, r


def cset(d, key, value, tenant=T):
    d.cli("continuity", "set", tenant, key, str(value))


# --------------------------------------------------------------------------
# set-up


def make_cert(dirpath):
    """A self-signed certificate for "localhost" (mbsync checks the name)."""
    cert, key = Path(dirpath) / "cert.pem", Path(dirpath) / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


class Env:
    """The daemon, the tenant's primary, the smarthost and the users."""

    def __init__(self, d, primary, smarthost, cert):
        self.d, self.primary, self.smarthost, self.cert = d, primary, smarthost, cert


@pytest.fixture
def cenv(mailark_daemon, smtp_primary, tmp_path):
    cert, key = make_cert(tmp_path)
    primary = smtp_primary()
    smarthost = smtp_primary()
    d = mailark_daemon(**{"continuity.probe_interval": "1s",
                          "continuity.probe_failures": "2",
                          "continuity.probe_timeout": "2s",
                          "queue.retry_min": "1s", "queue.retry_max": "2s",
                          "delivery.smarthost": "127.0.0.1:%d" % smarthost.port,
                          "tls.cert": cert, "tls.key": key})
    d.cli("tenant", "add", T)
    d.cli("domain", "add", T, DOMAIN)
    d.cli("route", "set", DOMAIN, "smtp://127.0.0.1:%d" % primary.port)
    d.cli("user", "add", T, ANN, "--password-stdin", input=PW_ANN + "\n")
    d.cli("user", "add", T, BOB, "--password-stdin", input=PW_BOB + "\n")
    # a second tenant that is never in continuity
    other = smtp_primary()
    d.cli("tenant", "add", OTHER_T)
    d.cli("domain", "add", OTHER_T, "globex.example")
    d.cli("route", "set", "globex.example", "smtp://127.0.0.1:%d" % other.port)
    d.cli("user", "add", OTHER_T, CAROL, "--password-stdin", input=PW_CAROL + "\n")
    e = Env(d, primary, smarthost, cert)
    e.other = other
    return e


# --------------------------------------------------------------------------
# mail


def make_msg(subject, to=ANN, sender="Sam Sender <sam@sender.example>", msgid=None,
             body=None):
    msgid = msgid or "<%s.%d@sender.example>" % (re.sub(r"\W", "", subject), time.time_ns())
    body = body or "Body of %s.\r\nSecond line.\r\n" % subject
    head = ["From: %s" % sender, "To: %s" % to, "Subject: %s" % subject,
            "Date: %s" % email.utils.formatdate(usegmt=True), "Message-ID: %s" % msgid,
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def send(d, rcpts, data, sender="sam@sender.example"):
    """Sends over port 25; every reply must be 250 (accepted during outages too)."""
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        code, msg = s.mail(sender)
        assert code == 250, (code, msg)
        for r in rcpts:
            code, msg = s.rcpt(r)
            assert code == 250, (r, code, msg)
        code, msg = s.data(data)
        assert code == 250, (code, msg)
    return msg.decode()


def subject_of(raw):
    m = re.search(rb"^Subject: (.*?)\r?$", raw, re.M)
    return m.group(1).decode() if m else None


def subjects_at(primary, rcpt=None):
    return [subject_of(m.data) for m in primary.messages
            if rcpt is None or rcpt in m.rcpt_tos]


def wait_subject(server, subject, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in list(server.messages):
            if subject_of(m.data) == subject:
                return m
        time.sleep(0.1)
    raise AssertionError("%r never arrived (got %r)" % (subject, subjects_at(server)))


# --------------------------------------------------------------------------
# IMAP


def imap_login(d, user, password):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = imaplib.IMAP4_SSL("127.0.0.1", d.imaps_port, ssl_context=ctx, timeout=30)
    c.login(user, password)
    return c


def imap_refused(d, user, password):
    """Sign-in must fail with NO (not crash, not BAD); returns the server text."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = imaplib.IMAP4_SSL("127.0.0.1", d.imaps_port, ssl_context=ctx, timeout=30)
    try:
        with pytest.raises(imaplib.IMAP4.error) as ei:
            c.login(user, password)
        return str(ei.value)
    finally:
        try:
            c.logout()
        except Exception:
            pass


def inbox(c, mailbox="INBOX"):
    """{uid: (subject, flags)} of a mailbox (PEEK: reading does not set \\Seen)."""
    typ, data = c.select(mailbox)
    assert typ == "OK", data
    typ, data = c.uid("SEARCH", None, "ALL")
    assert typ == "OK", data
    uids = data[0].split()
    out = {}
    if not uids:
        return out
    typ, data = c.uid("FETCH", b",".join(uids).decode(),
                      "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    for part in data:
        if not isinstance(part, tuple):
            continue
        meta = part[0].decode()
        uid = int(re.search(r"UID (\d+)", meta).group(1))
        flags = re.search(r"FLAGS \(([^)]*)\)", meta)
        subj = re.search(rb"Subject: (.*?)\r\n", part[1])
        out[uid] = (subj.group(1).decode() if subj else None,
                    set(flags.group(1).split()) if flags else set())
    return out


def wait_inbox(d, user, password, subjects, mailbox="INBOX", timeout=20):
    """Signs in until every subject is in the mailbox (archiving is async)."""
    deadline = time.monotonic() + timeout
    while True:
        c = imap_login(d, user, password)
        try:
            box = inbox(c, mailbox)
        finally:
            c.logout()
        have = {s for s, _ in box.values()}
        if set(subjects) <= have:
            return box
        if time.monotonic() > deadline:
            raise AssertionError("%s %s: missing %r; has %r"
                                 % (user, mailbox, sorted(set(subjects) - have), sorted(have)))
        time.sleep(0.3)


def submit(d, sender, password, to, subject, auth="PLAIN"):
    p = swaks("--server", "127.0.0.1:%d" % d.submission_port, "--tls", "--auth", auth,
              "--auth-user", sender, "--auth-password", password, "--from", sender,
              "--to", to, "--header", "Subject: %s" % subject,
              "--header", "Message-ID: <%s@acme.example>" % re.sub(r"\W", "", subject),
              "--body", "sent during the outage: %s" % subject)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "250 " in p.stdout, p.stdout
    return p


# --------------------------------------------------------------------------
# auto mode: the whole outage


def test_auto_outage_read_send_failback(cenv):
    d, primary, smarthost = cenv.d, cenv.primary, cenv.smarthost
    cset(d, "mode", "auto")
    cset(d, "failback_after", 2)
    assert state_of(status(d)) == "normal"

    # before the outage: delivered at once, archived (the INBOX window shows it)
    send(d, [ANN], make_msg("before-1"))
    send(d, [BOB], make_msg("before-bob"))
    wait_subject(primary, "before-1")
    wait_subject(primary, "before-bob")
    n_before = len(primary.messages)

    # the primary fails: two failed probes make the route down, then ACTIVE
    primary.stop()
    st = wait_state(d, "active", timeout=30)   # the time is bench/continuity's to measure
    assert "down" in route_states(st), st
    assert st.get("outage_id"), st

    # mail keeps arriving: 250, archived, not delivered
    outage_subjects = ["outage-%02d" % i for i in range(6)]
    for s in outage_subjects:
        send(d, [ANN], make_msg(s))
    send(d, [BOB], make_msg("outage-bob"))

    # Ann reads it over IMAP: the pre-outage mail of the window and the outage mail
    box = wait_inbox(d, ANN, PW_ANN, ["before-1"] + outage_subjects)
    subjects = [s for s, _ in box.values()]
    assert "before-bob" not in subjects and "outage-bob" not in subjects, subjects
    uid_outage0 = next(u for u, (s, _) in box.items() if s == "outage-00")
    c = imap_login(d, ANN, PW_ANN)
    c.select("INBOX")
    typ, data = c.uid("STORE", str(uid_outage0), "+FLAGS", r"(\Flagged \Seen)")
    assert typ == "OK", data
    c.logout()
    # flags persist for Ann, and Bob sees only his own mail (not Ann's flags either)
    again = inbox_once(d, ANN, PW_ANN)
    assert {r"\Flagged", r"\Seen"} <= again[uid_outage0][1], again[uid_outage0]
    bob = wait_inbox(d, BOB, PW_BOB, ["before-bob", "outage-bob"])
    assert {s for s, _ in bob.values()} == {"before-bob", "outage-bob"}, bob
    assert uid_outage0 not in bob
    c = imap_login(d, BOB, PW_BOB)
    c.select("INBOX")
    typ, data = c.uid("FETCH", str(uid_outage0), "(BODY.PEEK[])")
    assert typ == "OK" and data in ([None], [b""], []), \
        "Bob fetched Ann's message %d: %r" % (uid_outage0, data)
    c.logout()

    # another tenant is not in continuity: its user cannot sign in; wrong password neither
    imap_refused(d, CAROL, PW_CAROL)
    imap_refused(d, ANN, "wrong-password")

    # Ann sends through submission: to the world (smarthost) and to Bob (held)
    submit(d, ANN, PW_ANN, OUTSIDE, "sent-outside")
    submit(d, ANN, PW_ANN, BOB, "sent-to-bob", auth="LOGIN")
    m = wait_subject(smarthost, "sent-outside")
    assert m.rcpt_tos == [OUTSIDE], m.rcpt_tos
    assert "sent-to-bob" not in subjects_at(primary)
    wait_inbox(d, ANN, PW_ANN, ["sent-outside", "sent-to-bob"], mailbox="Sent")
    wait_inbox(d, BOB, PW_BOB, ["sent-to-bob"])
    assert len(primary.messages) == n_before, "held mail reached the stopped primary?"

    # every outage message is on the ledger before failback
    wait_report(d, lambda r: r["accepted"] >= len(outage_subjects) + 4,
                "the outage's messages accepted")

    # the primary returns: failback after 2 s of health, then the outage ends
    primary.start()
    st = wait_state(d, "normal", timeout=30)
    r = report(d)
    assert r["kind"] == "outage" and r.get("ended_at"), r
    assert_reconciles(r)
    assert r["pending"] == 0 and r["failed"] == 0, r
    # 6 + 1 inbound to the route, Ann's message to Bob (inbound), 2 sent copies
    assert r["accepted"] == len(outage_subjects) + 1 + 1 + 2, r
    assert r["skipped"] == 0, r

    msgs = primary.wait_for(n_before + len(outage_subjects) + 1 + 1 + 2, timeout=20)
    got = [subject_of(x.data) for x in msgs[n_before:]]
    ann_outage = [s for s in got if s in outage_subjects]
    assert ann_outage == outage_subjects, "arrival order / duplicates: %r" % got
    plain = [subject_of(x.data) for x in msgs[n_before:]
             if b"X-Mailark-Continuity:" not in x.data]
    for s in outage_subjects + ["outage-bob", "sent-to-bob"]:
        assert plain.count(s) == 1, "%s delivered %d times: %r" % (s, plain.count(s), got)
    assert next(x for x in msgs[n_before:] if subject_of(x.data) == "sent-to-bob"
                and b"X-Mailark-Continuity:" not in x.data).rcpt_tos == [BOB]
    # the sent copies reached Ann's own mailbox, marked
    copies = [x for x in msgs[n_before:] if b"X-Mailark-Continuity:" in x.data]
    assert sorted(subject_of(x.data) for x in copies) == ["sent-outside", "sent-to-bob"], got
    for x in copies:
        assert x.rcpt_tos == [ANN], x.rcpt_tos
        assert x.data.startswith(b"X-Mailark-Continuity: sent-copy"), x.data[:200]
    # nothing else arrives later (no duplicates from a second replay)
    time.sleep(3)
    assert len(primary.messages) == len(msgs), subjects_at(primary)[len(msgs):]
    assert subjects_at(smarthost).count("sent-outside") == 1

    # continuity has ended: IMAP sign-in refused again
    imap_refused(d, ANN, PW_ANN)
    assert state_of(status(d)) == "normal"


def inbox_once(d, user, password, mailbox="INBOX"):
    c = imap_login(d, user, password)
    try:
        return inbox(c, mailbox)
    finally:
        c.logout()


# --------------------------------------------------------------------------
# manual mode


def test_manual_mode_route_down_alert_then_admin_start_stop(cenv):
    d, primary, smarthost = cenv.d, cenv.primary, cenv.smarthost
    cset(d, "alert_addresses", OPS)
    settings = ctl(d, "continuity.settings", tenant=T)
    assert settings.get("mode") == "manual", settings
    primary.stop()
    wait_route(d, "down")
    time.sleep(2)  # several more probe rounds: manual mode never starts by itself
    assert state_of(status(d)) == "normal"
    # the alert leaves by the smarthost (direct MX), not through the dead route
    deadline = time.monotonic() + 20
    while not any(OPS in m.rcpt_tos for m in smarthost.messages):
        assert time.monotonic() < deadline, "no alert email at the smarthost: %r" % \
            [(m.rcpt_tos, subject_of(m.data)) for m in smarthost.messages]
        time.sleep(0.1)
    alert = next(m for m in smarthost.messages if OPS in m.rcpt_tos)
    assert T in (subject_of(alert.data) or ""), subject_of(alert.data)
    assert b"Auto-Submitted: auto-generated" in alert.data

    p = d.cli("continuity", "start", T, "--reason", "exchange crashed")
    assert p.returncode == 0
    wait_state(d, "active", timeout=5)
    r = report(d)
    assert r["reason"] == "exchange crashed", r
    send(d, [ANN], make_msg("manual-held"))
    wait_inbox(d, ANN, PW_ANN, ["manual-held"])
    # the alert for the start too
    deadline = time.monotonic() + 20
    while sum(OPS in m.rcpt_tos for m in smarthost.messages) < 2:
        assert time.monotonic() < deadline, "no alert email for the start"
        time.sleep(0.1)

    primary.start()
    d.cli("continuity", "stop", T)
    wait_state(d, "normal", timeout=30)
    assert subjects_at(primary).count("manual-held") == 1
    r = report(d)
    assert_reconciles(r)
    assert (r["accepted"], r["delivered"], r["pending"]) == (1, 1, 0), r
    text = d.cli("continuity", "report", T).stdout
    assert re.search(r"reconciles:\s*yes", text), text
    imap_refused(d, ANN, PW_ANN)


# --------------------------------------------------------------------------
# dedupe


def test_failback_skips_what_the_primary_already_has(cenv):
    d, primary = cenv.d, cenv.primary
    msgid = "<dedupe-1@sender.example>"
    data = make_msg("dedupe", msgid=msgid)
    send(d, [ANN], data)
    wait_subject(primary, "dedupe")
    # the outage begins; the sender's retry brings the same message again
    d.cli("continuity", "start", T)
    wait_state(d, "active", timeout=5)
    send(d, [ANN], data)
    send(d, [ANN], make_msg("dedupe-new"))
    wait_report(d, lambda r: r["accepted"] == 2, "2 accepted")
    d.cli("continuity", "stop", T)
    wait_state(d, "normal", timeout=30)
    wait_subject(primary, "dedupe-new")
    time.sleep(1)
    same = [m for m in primary.messages if msgid.encode() in m.data and ANN in m.rcpt_tos]
    assert len(same) == 1, "the primary has %d copies of %s" % (len(same), msgid)
    r = report(d)
    assert_reconciles(r)
    assert (r["accepted"], r["delivered"], r["skipped"], r["pending"], r["failed"]) == \
        (2, 2, 1, 0, 0), r


# --------------------------------------------------------------------------
# crash during an outage


def test_kill9_during_outage_keeps_it(cenv):
    d, primary = cenv.d, cenv.primary
    d.cli("continuity", "start", T)
    wait_state(d, "active", timeout=5)
    held = ["crash-%d" % i for i in range(3)]
    for s in held:
        send(d, [ANN], make_msg(s))
    wait_report(d, lambda r: r["accepted"] == 3, "3 accepted")
    outage = status(d).get("outage_id")
    d.kill9()
    d.start()
    st = wait_state(d, "active", timeout=10)
    assert st.get("outage_id") == outage, st
    time.sleep(2)
    assert not any(s in subjects_at(primary) for s in held), "held mail left after restart"
    wait_inbox(d, ANN, PW_ANN, held)
    d.cli("continuity", "stop", T)
    wait_state(d, "normal", timeout=30)
    time.sleep(1)
    got = subjects_at(primary)
    assert [s for s in got if s in held] == held, got
    r = report(d)
    assert_reconciles(r)
    assert (r["accepted"], r["delivered"], r["pending"]) == (3, 3, 0), r


# --------------------------------------------------------------------------
# drills


def test_drill_for_one_user(cenv):
    d, primary = cenv.d, cenv.primary
    imap_refused(d, ANN, PW_ANN)  # nothing running: no sign-in
    d.cli("continuity", "drill", "start", T, "--users", ANN)
    assert state_of(status(d)) == "normal"
    send(d, [ANN], make_msg("drill-1"))
    # delivered at once: a drill never delays real mail
    wait_subject(primary, "drill-1", timeout=10)
    box = wait_inbox(d, ANN, PW_ANN, ["drill-1"])
    imap_refused(d, BOB, PW_BOB)
    r = ctl(d, "continuity.drill.report", tenant=T)
    assert r["kind"] == "drill", r
    assert isinstance(r["time_to_failover_ms"], (int, float)) and \
        0 <= r["time_to_failover_ms"] < 60000, r
    users = {u["address"]: u for u in r["users"]}
    assert set(users) == {ANN}, r["users"]
    assert users[ANN]["signed_in"], users[ANN]
    assert users[ANN]["inbox"] == len(box), (users[ANN], box)
    d.cli("continuity", "drill", "stop", T)
    imap_refused(d, ANN, PW_ANN)
    r = ctl(d, "continuity.drill.report", tenant=T)
    assert r.get("ended_at"), r
    assert_reconciles(r)
    assert r["pending"] == 0 and r["failed"] == 0, r
    assert subjects_at(primary).count("drill-1") == 1


# --------------------------------------------------------------------------
# other clients: mbsync, mutt, curl


def need(*progs):
    for p in progs:
        if shutil.which(p) is None:
            pytest.skip("%s is not installed" % p)


def test_mbsync_mutt_curl_read_the_continuity_inbox(cenv, tmp_path):
    need("mbsync", "mutt", "curl", "script")
    d, primary = cenv.d, cenv.primary
    sent = {}
    for i in range(5):
        s = "client-%d" % i
        sent[s] = make_msg(s, body="line one of %d\r\n.dot line\r\nlast\r\n" % i)
        send(d, [ANN], sent[s])
    primary.wait_for(5)
    d.cli("continuity", "start", T)
    wait_state(d, "active", timeout=5)
    send(d, [ANN], make_msg("client-outage"))
    box = wait_inbox(d, ANN, PW_ANN, list(sent) + ["client-outage"])

    # mbsync: the INBOX into an empty Maildir
    mdir = tmp_path / "sync"
    mdir.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text("IMAPAccount a\nHost localhost\nPort %d\nUser %s\nPass %s\nSSLType IMAPS\n"
                  "CertificateFile %s\n\nIMAPStore remote\nAccount a\n\n"
                  "MaildirStore local\nPath %s/\nInbox %s/INBOX\n\n"
                  "Channel c\nFar :remote:INBOX\nNear :local:\nSync Pull\nCreate Near\n"
                  "SyncState *\n" % (d.imaps_port, ANN, PW_ANN, cenv.cert, mdir, mdir))
    p = subprocess.run(["mbsync", "-c", str(rc), "c"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    files = [f for sub in ("cur", "new") for f in (mdir / "INBOX" / sub).iterdir()]
    assert len(files) == len(box), (len(files), len(box))
    synced = {subject_of(f.read_bytes()) for f in files}
    assert synced == {s for s, _ in box.values()}, synced

    # mutt in batch mode: copy every message of the INBOX to an mbox file
    out = tmp_path / "mutt.mbox"
    muttrc = tmp_path / "muttrc"
    muttrc.write_text('set imap_user = "%s"\nset imap_pass = "%s"\nset ssl_verify_host = no\n'
                      'set certificate_file = "%s"\nset confirmappend = no\n'
                      'set confirmcreate = no\nset mbox_type = mbox\nset wait_key = no\n'
                      'set header_cache = ""\nset message_cachedir = ""\nset timeout = 5\n'
                      % (ANN, PW_ANN, tmp_path / "mutt-certs"))
    shutil.copy(cenv.cert, tmp_path / "mutt-certs")
    cmd = ("mutt -n -F %s -f imaps://localhost:%d/INBOX -e 'set auto_tag=yes' "
           "-e 'push \"<tag-pattern>~A<enter><copy-message>%s<enter><quit>\"'"
           % (muttrc, d.imaps_port, out))
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                       timeout=60, env=dict(os.environ, TERM="vt100"))
    assert out.exists(), p.stdout[-2000:]
    mbox = out.read_bytes()
    assert len(re.findall(rb"^Message-ID: ", mbox, re.M | re.I)) == len(box), mbox[:500]
    for s in sent:
        assert ("Subject: %s" % s).encode() in mbox

    # curl: one message by UID, byte-exact with what the primary got
    uid = next(u for u, (s, _) in box.items() if s == "client-3")
    p = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd",
                        "imaps://127.0.0.1:%d/INBOX;UID=%d" % (d.imaps_port, uid),
                        "-u", "%s:%s" % (ANN, PW_ANN)], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    at_primary = next(m.data for m in primary.messages if subject_of(m.data) == "client-3")
    assert p.stdout.endswith(sent["client-3"]), p.stdout[-300:]
    assert p.stdout == at_primary, (p.stdout[:400], at_primary[:400])
    # another user's UID through curl: nothing
    p = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd",
                        "imaps://127.0.0.1:%d/INBOX;UID=%d" % (d.imaps_port, uid),
                        "-u", "%s:%s" % (BOB, PW_BOB)], capture_output=True, timeout=60)
    assert b"client-3" not in p.stdout
    d.cli("continuity", "stop", T)
    wait_state(d, "normal", timeout=30)
