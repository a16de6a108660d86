"""SMTP submission for continuity users (RFC 6409, AUTH RFC 4954), against the
real daemon with swaks, smtplib and a raw socket.

Tenant "acme" (acme.example, routed to an aiosmtpd primary) with users ann
(plus an alias) and bob; tenant "globex" (carol) is never in continuity.
[delivery] smarthost is a second aiosmtpd that captures mail leaving for
the world.  Continuity is started with `mailark continuity start TENANT`
(the control command "continuity.start"); the tests that need it skip when
that command is not available.

Checked: STARTTLS offered and AUTH not before TLS, AUTH PLAIN LOGIN after;
AUTH before TLS 530; MAIL before AUTH 530; PLAIN (with and without initial
response) and LOGIN; "*" cancels, bad base64 and unknown mechanisms; wrong
password 535 after a delay, three failures close the connection; a tenant
not in continuity 454 (and audited); the sender must be the user's address
or alias (553 otherwise, the null sender too); a second AUTH 503; mail
reaches the smarthost with a Received "with ESMTPSA" line and the log names
the signed-in user; the port-25 EHLO and AUTH stay as they were.

Mixed transactions (mail clients send colleagues and outsiders together and
never retry a 452 recipient): during an outage one transaction to Bob and
to the world is accepted whole as ONE outbound queue entry; the outside copy
leaves through the smarthost at once, Bob's is held, shows in his
continuity INBOX over IMAP (imaplib, implicit TLS) and reaches the primary
exactly once at failback, in arrival order with inbound mail held beside
it; the report reconciles.  A domain of another tenant hosted here is
plain outbound (smarthost), never that tenant's route.  Port 25 keeps its
452 for a relay client mixing tenants or directions.
"""

import base64
import imaplib
import json
import re
import smtplib
import socket
import ssl
import time

import pytest

from conftest import control_request, swaks

T = "acme"
DOMAIN = "acme.example"
ANN = "ann@acme.example"
ANN_ALIAS = "annie@acme.example"
BOB = "bob@acme.example"
PW_ANN = "ann-password-1"
PW_BOB = "bob-password-2"
OTHER_T = "globex"
CAROL = "carol@globex.example"
PW_CAROL = "carol-password-3"
OUTSIDE = "partner@world.example"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def plain(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client:
    """A line-level SMTP client on a raw socket, with STARTTLS."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.rfile = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self):
        lines = []
        while True:
            line = self.rfile.readline()
            if not line:
                raise EOFError("connection closed; got %r" % lines)
            lines.append(line.decode().rstrip("\r\n"))
            if len(lines[-1]) < 4 or lines[-1][3] != "-":
                return lines

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self):
        assert self.cmd("STARTTLS")[-1].startswith("220 ")
        self.sock = tls_context().wrap_socket(self.sock, server_hostname="localhost")
        self.rfile = self.sock.makefile("rb")

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout, ssl.SSLError):
            return False

    def close(self):
        self.sock.close()


def ready(d, tls=True, ehlo="client.test"):
    c = Client(d.submission_port)
    assert c.greeting[0].startswith("220 ")
    if tls:
        assert c.cmd("EHLO " + ehlo)[-1].startswith("250 ")
        c.starttls()
    assert c.cmd("EHLO " + ehlo)[-1].startswith("250 ")
    return c


def signed_in(d, user=ANN, password=PW_ANN):
    c = ready(d)
    r = c.cmd("AUTH PLAIN " + plain(user, password))
    assert r == ["235 2.7.0 Authentication successful"], r
    return c


@pytest.fixture
def env(mailark_daemon, smtp_primary):
    primary, smarthost, other = smtp_primary(), smtp_primary(), smtp_primary()
    d = mailark_daemon(**{"delivery.smarthost": "127.0.0.1:%d" % smarthost.port,
                          "queue.retry_min": "1s", "queue.retry_max": "2s"})
    d.cli("tenant", "add", T)
    d.cli("domain", "add", T, DOMAIN)
    d.cli("route", "set", DOMAIN, "smtp://127.0.0.1:%d" % primary.port)
    d.cli("user", "add", T, ANN, "--password-stdin", input=PW_ANN + "\n")
    d.cli("user", "alias", "add", T, ANN, ANN_ALIAS)
    d.cli("user", "add", T, BOB, "--password-stdin", input=PW_BOB + "\n")
    d.cli("tenant", "add", OTHER_T)
    d.cli("domain", "add", OTHER_T, "globex.example")
    d.cli("route", "set", "globex.example", "smtp://127.0.0.1:%d" % other.port)
    d.cli("user", "add", OTHER_T, CAROL, "--password-stdin", input=PW_CAROL + "\n")
    d.primary, d.smarthost = primary, smarthost
    return d


def start_continuity(d, tenant=T):
    p = d.cli("continuity", "start", tenant, check=False)
    if p.returncode != 0:
        pytest.skip("continuity start not available yet: %s" % p.stderr.strip())


def ehlo_keywords(lines):
    return [l[4:].upper() for l in lines[1:]]


def audit_entries(d, action):
    rows = json.loads(d.cli("audit", "list", "--json").stdout)
    return [r for r in rows if r["action"] == action]


# --------------------------------------------------------------------------
# protocol, before any sign-in


def test_ehlo_offers_auth_only_after_starttls(env):
    c = Client(env.submission_port)
    before = ehlo_keywords(c.cmd("EHLO client.test"))
    assert "STARTTLS" in before
    assert not any(k.startswith("AUTH") for k in before), before
    for k in ("PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"):
        assert k in before, (k, before)
    assert any(k.startswith("SIZE ") for k in before)
    c.starttls()
    after = ehlo_keywords(c.cmd("EHLO client.test"))
    assert "AUTH PLAIN LOGIN" in after, after
    assert "STARTTLS" not in after
    c.close()


def test_auth_and_mail_before_tls_refused(env):
    c = ready(env, tls=False)
    assert c.cmd("AUTH PLAIN " + plain(ANN, PW_ANN)) == [
        "530 5.7.0 Must issue a STARTTLS command first"]
    assert c.cmd("AUTH LOGIN") == ["530 5.7.0 Must issue a STARTTLS command first"]
    assert c.cmd("MAIL FROM:<%s>" % ANN) == ["530 5.7.0 Authentication required"]
    c.close()
    # the password never reached the log, nor did a sign-in attempt
    assert PW_ANN not in env.log()
    assert "submission_auth" not in env.log()


def test_mail_after_tls_before_auth_refused(env):
    c = ready(env)
    assert c.cmd("MAIL FROM:<%s>" % ANN) == ["530 5.7.0 Authentication required"]
    assert c.cmd("RCPT TO:<%s>" % OUTSIDE)[0].startswith("503 ")
    c.close()


def test_smtplib_login_needs_starttls(env):
    with smtplib.SMTP("127.0.0.1", env.submission_port, timeout=15) as s:
        s.ehlo("client.test")
        assert not s.has_extn("auth")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            s.login(ANN, PW_ANN)
        s.starttls(context=tls_context())
        s.ehlo("client.test")
        assert s.has_extn("auth")
        assert set(s.esmtp_features["auth"].upper().split()) == {"PLAIN", "LOGIN"}


def test_wrong_password_is_535_after_a_delay(env):
    c = ready(env)
    t0 = time.monotonic()
    assert c.cmd("AUTH PLAIN " + plain(ANN, "wrong-password-9")) == [
        "535 5.7.8 Authentication credentials invalid"]
    assert time.monotonic() - t0 >= 0.9
    # still usable after one failure
    assert c.cmd("NOOP")[0].startswith("250 ")
    c.close()
    env.wait_log(r"submission_auth outcome=failed user=ann@acme\.example client=127\.0\.0\.1")
    assert "wrong-password-9" not in env.log()


def test_unknown_user_is_535_like_a_wrong_password(env):
    c = ready(env)
    assert c.cmd("AUTH PLAIN " + plain("nobody@acme.example", "whatever-123")) == [
        "535 5.7.8 Authentication credentials invalid"]
    c.close()


def test_three_failures_close_the_connection(env):
    c = ready(env)
    for _ in range(2):
        assert c.cmd("AUTH PLAIN " + plain(ANN, "bad-password-1"))[0].startswith("535 ")
    assert c.cmd("AUTH LOGIN") == ["334 VXNlcm5hbWU6"]
    assert c.cmd(b64(ANN)) == ["334 UGFzc3dvcmQ6"]
    assert c.cmd(b64("bad-password-3")) == ["535 5.7.8 Authentication credentials invalid"]
    assert c.reply()[0].startswith("421 4.7.0")
    assert c.closed()


def test_sasl_exchange_errors(env):
    c = ready(env)
    # PLAIN without initial response: an empty challenge, "*" cancels
    assert c.cmd("AUTH PLAIN") == ["334 "]
    assert c.cmd("*")[0].startswith("501 ")
    # LOGIN cancelled at the password
    assert c.cmd("AUTH LOGIN") == ["334 VXNlcm5hbWU6"]
    assert c.cmd(b64(ANN)) == ["334 UGFzc3dvcmQ6"]
    assert c.cmd("*")[0].startswith("501 ")
    # not base64
    assert c.cmd("AUTH PLAIN !!!not-base64!!!")[0].startswith("501 5.5.2")
    assert c.cmd("AUTH PLAIN") == ["334 "]
    assert c.cmd("@@@@")[0].startswith("501 5.5.2")
    # a PLAIN message without its NULs
    assert c.cmd("AUTH PLAIN " + b64("just-text"))[0].startswith("501 ")
    assert c.cmd("AUTH CRAM-MD5")[0].startswith("504 ")
    assert c.cmd("AUTH")[0].startswith("501 ")
    # none of these counted as a failed sign-in: the session still works
    assert c.cmd("NOOP")[0].startswith("250 ")
    c.close()


def test_disconnect_during_sign_in(env):
    """The client leaves while its password is checked and during the failure
    delay; the daemon goes on serving (the sanitizer build checks the frees)."""
    for password in (PW_ANN, "wrong-password-7"):
        c = ready(env)
        c.sock.sendall(("AUTH PLAIN %s\r\n" % plain(ANN, password)).encode())
        c.close()
    time.sleep(1.5)
    env.wait_log(r"submission_auth outcome=failed user=ann@acme\.example .*bad password")
    c = ready(env)
    assert c.cmd("NOOP")[0].startswith("250 ")
    assert c.cmd("QUIT") == ["221 2.0.0 Bye"]
    assert c.closed()


def test_authzid_must_match_authcid(env):
    c = ready(env)
    assert c.cmd("AUTH PLAIN " + plain(ANN, PW_ANN, authzid=BOB)) == [
        "535 5.7.8 Authentication credentials invalid"]
    c.close()


def test_tenant_not_in_continuity_gets_454_and_audit(env):
    c = ready(env)
    assert c.cmd("AUTH PLAIN " + plain(CAROL, PW_CAROL)) == [
        "454 4.7.0 Continuity is not active for your organisation"]
    assert c.cmd("MAIL FROM:<%s>" % CAROL) == ["530 5.7.0 Authentication required"]
    c.close()
    refused = [e for e in audit_entries(env, "submission.auth") if e["outcome"] == "refused"]
    assert refused and refused[0]["actor"] == CAROL and refused[0]["tenant"] == OTHER_T
    env.wait_log(r"submission_auth outcome=failed user=carol@globex\.example .*"
                 r"reason=\"?continuity not active")


def test_port25_unchanged(env):
    with smtplib.SMTP("127.0.0.1", env.smtp_port, timeout=15) as s:
        s.ehlo("client.test")
        assert not s.has_extn("auth")
        assert s.docmd("AUTH", "PLAIN " + plain(ANN, PW_ANN)) == (
            500, b"5.5.1 Error: command not recognized")
        s.starttls(context=tls_context())
        s.ehlo("client.test")
        assert not s.has_extn("auth")
        assert s.docmd("AUTH", "LOGIN")[0] == 500
    assert PW_ANN not in env.log()


# --------------------------------------------------------------------------
# signed in (the tenant in continuity)


def received_lines(raw):
    return re.findall(rb"^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*", raw, re.M)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_sends_through_the_smarthost(env, mech):
    start_continuity(env)
    subject = "submitted with %s" % mech
    p = swaks("--server", "127.0.0.1:%d" % env.submission_port, "--tls",
              "--auth", mech, "--auth-user", ANN, "--auth-password", PW_ANN,
              "--from", ANN, "--to", OUTSIDE, "--header", "Subject: " + subject)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "235 2.7.0 Authentication successful" in p.stdout
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = [m for m in env.smarthost.messages if subject.encode() in m.data]
        if got:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("not at the smarthost: %r" % env.smarthost.messages)
    m = got[0]
    assert m.mail_from == ANN and m.rcpt_tos == [OUTSIDE]
    top = received_lines(m.data)[0]
    assert b"with ESMTPSA" in top, top
    env.wait_log(r"received id=\w+ tenant=acme direction=outbound from=ann@acme\.example .*"
                 r"auth_user=ann@acme\.example")
    env.wait_log(r"submission_auth outcome=ok user=ann@acme\.example tenant=acme "
                 r"client=127\.0\.0\.1")
    ok = [e for e in audit_entries(env, "submission.auth") if e["outcome"] == "ok"]
    assert ok and ok[0]["actor"] == ANN and ok[0]["tenant"] == T
    assert PW_ANN not in env.log()


def test_wrong_password_with_continuity_active_is_535(env):
    start_continuity(env)
    p = swaks("--server", "127.0.0.1:%d" % env.submission_port, "--tls",
              "--auth", "PLAIN", "--auth-user", ANN, "--auth-password", "not-the-password",
              "--from", ANN, "--to", OUTSIDE)
    assert p.returncode != 0
    assert "535 5.7.8 Authentication credentials invalid" in p.stdout
    assert env.smarthost.messages == []


def test_sender_must_be_owned(env):
    start_continuity(env)
    c = signed_in(env)
    assert c.cmd("MAIL FROM:<%s>" % BOB) == ["553 5.7.1 Sender address not owned by user"]
    assert c.cmd("MAIL FROM:<>") == ["553 5.7.1 Sender address not owned by user"]
    assert c.cmd("MAIL FROM:<%s>" % CAROL) == ["553 5.7.1 Sender address not owned by user"]
    # own address in another case, and the alias
    assert c.cmd("MAIL FROM:<Ann@ACME.example>")[0].startswith("250 ")
    assert c.cmd("RSET")[0].startswith("250 ")
    assert c.cmd("MAIL FROM:<%s>" % ANN_ALIAS)[0].startswith("250 ")
    assert c.cmd("RSET")[0].startswith("250 ")
    # a second AUTH is refused, the sign-in stays
    assert c.cmd("AUTH PLAIN " + plain(ANN, PW_ANN))[0].startswith("503 ")
    assert c.cmd("MAIL FROM:<%s>" % ANN)[0].startswith("250 ")
    c.close()


def test_plain_without_initial_response_and_bdat(env):
    start_continuity(env)
    c = ready(env)
    assert c.cmd("AUTH PLAIN") == ["334 "]
    assert c.cmd(plain(ANN, PW_ANN)) == ["235 2.7.0 Authentication successful"]
    assert c.cmd("MAIL FROM:<%s>" % ANN)[0].startswith("250 ")
    assert c.cmd("RCPT TO:<%s>" % OUTSIDE)[0].startswith("250 ")
    body = b"Subject: chunked submission\r\n\r\nHello.\r\n"
    c.sock.sendall(b"BDAT %d LAST\r\n" % len(body) + body)
    r = c.reply()
    assert r[0].startswith("250 2.0.0 Ok: queued as "), r
    c.cmd("QUIT")
    c.close()
    deadline = time.monotonic() + 20
    while not any(b"chunked submission" in m.data for m in env.smarthost.messages):
        assert time.monotonic() < deadline, env.smarthost.messages
        time.sleep(0.1)


def ctl(d, cmd, **args):
    reply = control_request(d, cmd, **args)
    assert reply.get("ok"), "control %s %r failed: %r" % (cmd, args, reply)
    return reply["result"]


def subject_of(raw):
    m = re.search(rb"^Subject: (.*?)\r?$", raw, re.M)
    return m.group(1).decode() if m else None


def wait_at(server, subject, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [m for m in list(server.messages) if subject_of(m.data) == subject]
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("%r never arrived: %r"
                         % (subject, [subject_of(m.data) for m in server.messages]))


def imap_inbox_subjects(d, user, password, mailbox="INBOX"):
    c = imaplib.IMAP4_SSL("127.0.0.1", d.imaps_port, ssl_context=tls_context(), timeout=30)
    try:
        c.login(user, password)
        typ, data = c.select(mailbox, readonly=True)
        assert typ == "OK", data
        typ, data = c.uid("SEARCH", None, "ALL")
        assert typ == "OK", data
        uids = data[0].split()
        if not uids:
            return []
        typ, data = c.uid("FETCH", b",".join(uids).decode(),
                          "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        return [subject_of(part[1]) for part in data if isinstance(part, tuple)]
    finally:
        c.logout()


def wait_imap(d, user, password, subject, mailbox="INBOX", timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        got = imap_inbox_subjects(d, user, password, mailbox)
        if subject in got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("%s %s lacks %r: %r" % (user, mailbox, subject, got))
        time.sleep(0.3)


def message(subject, to):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@acme.example>\r\n\r\n"
            "Body of %s.\r\n" % (ANN, ", ".join(to), subject, re.sub(r"\W", "", subject),
                                 subject)).encode()


def send25(d, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        assert s.mail("sam@sender.example")[0] == 250
        assert s.rcpt(rcpt)[0] == 250
        data = ("From: sam@sender.example\r\nTo: %s\r\nSubject: %s\r\n\r\nHello.\r\n"
                % (rcpt, subject))
        assert s.data(data.encode())[0] == 250


def test_colleague_and_outside_in_one_transaction_during_an_outage(env):
    d = env
    ctl(d, "continuity.start", tenant=T, reason="mixed submission test")
    # held inbound mail before and after, to check the failback order
    send25(d, BOB, "inbound-before")
    time.sleep(1.1)
    with smtplib.SMTP("127.0.0.1", d.submission_port, timeout=30) as s:
        s.ehlo("client.test")
        s.starttls(context=tls_context())
        s.ehlo("client.test")
        s.login(ANN, PW_ANN)
        assert s.mail(ANN)[0] == 250
        assert s.rcpt(BOB) == (250, b"2.1.5 Ok")
        assert s.rcpt(OUTSIDE) == (250, b"2.1.5 Ok")
        code, msg = s.data(message("mixed-1", [BOB, OUTSIDE]))
        assert code == 250, msg
    qid = re.search(r"queued as (\w+)", msg.decode()).group(1)
    time.sleep(1.1)
    send25(d, BOB, "inbound-after")

    # one queue entry, outbound for the tenant, both recipients
    d.wait_log(r"received id=%s tenant=acme direction=outbound from=ann@acme\.example "
               r"nrcpt=2 .*auth_user=ann@acme\.example" % qid)
    # the outside copy leaves now, alone
    out = wait_at(d.smarthost, "mixed-1")
    assert len(out) == 1 and out[0].rcpt_tos == [OUTSIDE], [m.rcpt_tos for m in out]
    # Bob's copy is held (the primary is up, but the tenant is in continuity) ...
    d.wait_log(r"continuity_ledger outage=\d+ id=%s to=bob@acme\.example kind=inbound" % qid)
    d.wait_log(r"continuity_ledger outage=\d+ id=%s to=ann@acme\.example kind=sent" % qid)
    # ... and Bob reads it in his continuity INBOX; Ann has it in Sent, not INBOX
    wait_imap(d, BOB, PW_BOB, "mixed-1")
    wait_imap(d, ANN, PW_ANN, "mixed-1", mailbox="Sent")
    assert "mixed-1" not in imap_inbox_subjects(d, ANN, PW_ANN)
    time.sleep(1.5)
    assert d.primary.messages == [], [m.rcpt_tos for m in d.primary.messages]
    r = ctl(d, "continuity.report", tenant=T)
    # inbound-before, inbound-after, Bob's copy, Ann's sent copy
    assert r["accepted"] == 4 and r["pending"] == 4, r

    # failback: everything owed reaches the primary once, in arrival order
    ctl(d, "continuity.stop", tenant=T)
    deadline = time.monotonic() + 30
    while True:
        r = ctl(d, "continuity.report", tenant=T)
        if r["pending"] == 0:
            break
        assert time.monotonic() < deadline, r
        time.sleep(0.2)
    assert r["accepted"] == r["delivered"] + r["pending"] + r["failed"], r
    assert r["reconciles"] is True and r["failed"] == 0 and r["delivered"] == 4, r
    msgs = d.primary.wait_for(4, timeout=20)
    time.sleep(2)
    msgs = list(d.primary.messages)
    plain = [m for m in msgs if b"X-Mailark-Continuity:" not in m.data]
    assert [subject_of(m.data) for m in plain] == ["inbound-before", "mixed-1",
                                                   "inbound-after"], plain
    assert all(m.rcpt_tos == [BOB] for m in plain), [m.rcpt_tos for m in plain]
    copies = [m for m in msgs if b"X-Mailark-Continuity:" in m.data]
    assert len(copies) == 1 and copies[0].rcpt_tos == [ANN], copies
    assert subject_of(copies[0].data.split(b"\r\n", 1)[1]) == "mixed-1"
    # the outside recipient was sent once, never again at failback
    assert [subject_of(m.data) for m in d.smarthost.messages].count("mixed-1") == 1


def test_swaks_mixed_recipients_other_tenant_goes_outbound(env):
    """swaks: a colleague, another tenant's user and the world in one
    transaction; only the colleague waits for the tenant's primary."""
    d = env
    ctl(d, "continuity.start", tenant=T)
    p = swaks("--server", "127.0.0.1:%d" % d.submission_port, "--tls",
              "--auth", "LOGIN", "--auth-user", ANN, "--auth-password", PW_ANN,
              "--from", ANN, "--to", "%s,%s,%s" % (BOB, CAROL, OUTSIDE),
              "--header", "Subject: mixed-swaks")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("250 2.1.5 Ok") == 3, p.stdout
    assert "452" not in p.stdout
    out = wait_at(d.smarthost, "mixed-swaks")
    assert sorted(r for m in out for r in m.rcpt_tos) == sorted([CAROL, OUTSIDE])
    wait_imap(d, BOB, PW_BOB, "mixed-swaks")
    time.sleep(1)
    assert d.primary.messages == []
    ctl(d, "continuity.stop", tenant=T)
    got = wait_at(d.primary, "mixed-swaks")
    assert [m.rcpt_tos for m in got if b"X-Mailark-Continuity:" not in m.data] == [[BOB]]


def test_drill_mixed_transaction_is_not_held(env):
    """In a drill nothing is held: Bob's copy of Ann's mixed transaction goes
    straight to the primary through the tenant route, the outside copy to
    the smarthost, each once."""
    d = env
    d.cli("continuity", "drill", "start", T, "--users", ANN)
    c = signed_in(d)
    assert c.cmd("MAIL FROM:<%s>" % ANN)[0].startswith("250 ")
    assert c.cmd("RCPT TO:<%s>" % BOB)[0].startswith("250 ")
    assert c.cmd("RCPT TO:<%s>" % OUTSIDE)[0].startswith("250 ")
    assert c.cmd("DATA")[0].startswith("354 ")
    r = c.cmd("Subject: during a drill\r\n\r\nHi Bob.\r\n.")
    assert r[0].startswith("250 "), r
    c.close()
    assert [m.rcpt_tos for m in wait_at(d.primary, "during a drill", timeout=10)] == [[BOB]]
    assert [m.rcpt_tos for m in wait_at(d.smarthost, "during a drill")] == [[OUTSIDE]]
    time.sleep(1)
    assert len([m for m in d.primary.messages if subject_of(m.data) == "during a drill"]) == 1


def test_port25_relay_client_still_splits_directions(env):
    """Port 25 is unchanged: a relay client mixing a tenant's inbound
    domain with the world gets 452 for the second kind."""
    d = env
    d.cli("relay", "add", T, "127.0.0.0/8")
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=15) as s:
        s.ehlo("client.test")
        assert s.mail("sam@sender.example")[0] == 250
        assert s.rcpt(BOB)[0] == 250
        assert s.rcpt(OUTSIDE) == (452, b"4.5.3 Error: recipient of another tenant or "
                                        b"direction, try again in a new transaction")
