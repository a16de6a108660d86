"""The continuity IMAP server (issue 5) with real clients.

One daemon for the module: tenant acme (in continuity, users ann and bob,
mail routed to an aiosmtpd primary and archived) and tenant beta (not in
continuity, user cid).  Clients: Python imaplib over implicit TLS and over
STARTTLS, curl's IMAP, mutt in batch mode, mbsync (isync) into a Maildir,
and raw sockets for the protocol edge cases (malformed commands, huge
literals, overlong lines, clients that vanish mid-command).
"""

import imaplib
import os
import re
import socket
import ssl
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import Daemon, Primary
from test_archive_common import make_msg, send, tenant, wait_total

PASSWORD = {"ann@acme.example": "ann-password-1", "bob@acme.example": "bob-password-1",
            "cid@beta.example": "cid-password-1"}


def crlf_msg(subject, **kw):
    return make_msg(subject, **kw).replace(b"\n", b"\r\n")


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    p = Primary(tmp_path_factory.mktemp("primary"))
    p.start()
    d = Daemon(tmp_path_factory.mktemp("imapd"), {"imap.max_literal": "1M"})
    d.init()
    d.start()
    try:
        tenant(d, "acme")
        tenant(d, "beta")
        for addr, pw in PASSWORD.items():
            t = addr.split("@")[1].split(".")[0]
            d.cli("user", "add", t, addr, "--password-stdin", input=pw + "\n")
        d.cli("route", "set", "acme.example", "smtp://127.0.0.1:%d" % p.port)
        d.cli("route", "set", "beta.example", "smtp://127.0.0.1:%d" % p.port)
        for i in range(3):
            send(d, "alice@elsewhere.example", ["ann@acme.example"],
                 crlf_msg("ann message %d" % i, body="body of message %d\n" % i,
                          to="ann@acme.example"))
        send(d, "alice@elsewhere.example", ["bob@acme.example"],
             crlf_msg("secret for bob", body="only bob may read this\n", to="bob@acme.example"))
        send(d, "alice@elsewhere.example", ["cid@beta.example"],
             crlf_msg("beta mail", to="cid@beta.example"))
        wait_total(d, "acme", "from:alice@elsewhere.example", 4)
        d.cli("continuity", "start", "acme")
        yield d
    finally:
        problems = d.finish()
        p.stop()
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


def imaps(d, user="ann@acme.example"):
    m = imaplib.IMAP4_SSL("127.0.0.1", d.imaps_port, ssl_context=ctx(), timeout=30)
    m.login(user, PASSWORD[user])
    return m


class Raw:
    """A line-level IMAP client over a socket (optionally TLS)."""

    def __init__(self, port, tls=False, timeout=10):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx().wrap_socket(s) if tls else s
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def until_tagged(self, tag):
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if ln.startswith(tag + " "):
                return lines

    def cmd(self, tag, text):
        self.send("%s %s\r\n" % (tag, text))
        return self.until_tagged(tag)

    def closed(self):
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def signed_in_raw(d, user="ann@acme.example"):
    r = Raw(d.imaps_port, tls=True)
    out = r.cmd("l", 'LOGIN "%s" "%s"' % (user, PASSWORD[user]))
    assert out[-1].startswith("l OK"), out
    return r


# ---- greeting, capabilities, TLS --------------------------------------------


def test_plain_port_requires_starttls(env):
    r = Raw(env.imap_port)
    assert r.greeting.startswith("* OK [CAPABILITY IMAP4rev1 ")
    assert "mailark IMAP ready" in r.greeting
    caps = r.cmd("c", "CAPABILITY")[0]
    for c in ("IMAP4rev1", "LITERAL+", "IDLE", "UIDPLUS", "NAMESPACE", "ID", "MOVE",
              "STARTTLS", "LOGINDISABLED"):
        assert " " + c in caps, caps
    assert "AUTH=" not in caps
    out = r.cmd("l", "LOGIN ann@acme.example ann-password-1")
    assert out[-1].startswith("l NO [PRIVACYREQUIRED]"), out
    out = r.cmd("a", "AUTHENTICATE PLAIN AGFubkBhY21lLmV4YW1wbGUAYW5uLXBhc3N3b3JkLTE=")
    assert out[-1].startswith("a NO [PRIVACYREQUIRED]"), out
    # not signed in: mailbox commands are refused
    assert r.cmd("s", "SELECT INBOX")[-1].startswith("s BAD")
    r.close()


def test_starttls_discards_injected_commands(env):
    r = Raw(env.imap_port)
    # a command pipelined behind STARTTLS must not run after the handshake
    r.send("t STARTTLS\r\nx CAPABILITY\r\n")
    assert r.line().startswith("t OK")
    r.sock = ctx().wrap_socket(r.sock)
    r.buf = b""
    caps = r.cmd("c", "CAPABILITY")
    assert not any(ln.startswith("x ") for ln in caps), caps
    assert "AUTH=PLAIN" in caps[0] and "STARTTLS" not in caps[0]
    r.close()


def test_imaplib_starttls_login(env):
    m = imaplib.IMAP4("127.0.0.1", env.imap_port, timeout=30)
    m.starttls(ssl_context=ctx())
    typ, _ = m.login("ann@acme.example", PASSWORD["ann@acme.example"])
    assert typ == "OK"
    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK" and int(data[0]) == 3
    m.logout()


def test_wrong_password_is_slow_and_generic(env):
    r = Raw(env.imaps_port, tls=True)
    t0 = time.monotonic()
    out = r.cmd("l", "LOGIN ann@acme.example wrong-password")
    assert out[-1] == "l NO [AUTHENTICATIONFAILED] Invalid credentials"
    assert time.monotonic() - t0 >= 0.8
    out = r.cmd("u", "LOGIN nobody@acme.example wrong-password")
    assert out[-1] == "u NO [AUTHENTICATIONFAILED] Invalid credentials"
    # the third failure on the connection ends it
    r.send("v LOGIN nobody@acme.example wrong-password\r\n")
    assert r.line().startswith("* BYE")
    assert r.closed()


def test_tenant_not_in_continuity_refused(env):
    r = Raw(env.imaps_port, tls=True)
    out = r.cmd("l", 'LOGIN "cid@beta.example" "%s"' % PASSWORD["cid@beta.example"])
    assert out[-1].startswith("l NO [UNAVAILABLE] continuity is not active"), out
    r.close()
    audit = env.cli("audit", "list", "--json", check=False).stdout
    assert "imap.login" in audit and "refused" in audit


def test_authenticate_plain_sasl_ir_and_continuation(env):
    import base64
    tok = base64.b64encode(b"\0ann@acme.example\0ann-password-1").decode()
    r = Raw(env.imaps_port, tls=True)
    assert r.cmd("a", "AUTHENTICATE PLAIN " + tok)[-1].startswith("a OK")
    r.close()
    r = Raw(env.imaps_port, tls=True)
    r.send("b AUTHENTICATE PLAIN\r\n")
    assert r.line().startswith("+")
    r.send(tok + "\r\n")
    assert r.until_tagged("b")[-1].startswith("b OK")
    r.close()


# ---- mailbox access with imaplib ----------------------------------------------


def test_imaplib_list_select_fetch_search(env):
    m = imaps(env)
    typ, boxes = m.list()
    text = b"\n".join(boxes).decode()
    assert '(\\HasNoChildren) "/" "INBOX"' in text
    assert '(\\HasNoChildren \\Sent) "/" "Sent"' in text
    typ, data = m.select("INBOX")
    assert typ == "OK" and int(data[0]) == 3
    typ, data = m.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    assert len(uids) == 3
    typ, data = m.search(None, "SUBJECT", '"ann message 1"')
    (seq,) = data[0].split()           # archive order need not be sending order
    typ, data = m.fetch(seq.decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1].strip() == b"Subject: ann message 1"
    typ, data = m.search(None, "UNSEEN")
    assert data[0].split() == [b"1", b"2", b"3"]
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] FLAGS RFC822.SIZE)")
    assert b"Subject: ann message" in data[0][1]
    assert b"\\Seen" not in data[0][0]
    typ, data = m.uid("FETCH", uids[1].decode(), "(BODY[])")
    assert re.search(rb"body of message \d", data[0][1])
    assert b"\\Seen" in data[0][0]         # FLAGS come before the literal
    typ, data = m.search(None, "SEEN")
    assert data[0] == b"2"
    typ, data = m.store("3", "+FLAGS", "(\\Flagged)")
    assert b"\\Flagged" in data[0]
    typ, data = m.search(None, "OR", "FLAGGED", "SEEN")
    assert data[0].split() == [b"2", b"3"]
    typ, data = m.search(None, "NOT", "SEEN", "LARGER", "10")
    assert data[0].split() == [b"1", b"3"]
    typ, _ = m.search("ISO-8859-1", "ALL")
    assert typ == "NO"
    m.logout()


def test_flags_persist_and_other_user_isolated(env):
    m = imaps(env)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Answered)")
    m.logout()
    m = imaps(env)
    m.select("INBOX")
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Answered" in data[0]
    m.store("1", "-FLAGS", "(\\Answered)")
    m.logout()
    b = imaps(env, "bob@acme.example")
    typ, data = b.select("INBOX")
    assert int(data[0]) == 1
    typ, data = b.uid("SEARCH", None, "ALL")
    bob_uid = data[0].split()[0].decode()
    b.logout()
    # ann asks for bob's UID: nothing comes back
    m = imaps(env)
    m.select("INBOX")
    typ, data = m.uid("FETCH", bob_uid, "(BODY[])")
    assert typ == "OK"
    assert not any(isinstance(x, tuple) for x in data), data
    typ, data = m.uid("SEARCH", None, "UID", bob_uid)
    assert data[0] == b""
    m.logout()


def test_append_copy_move_expunge(env):
    m = imaps(env)
    assert m.create("Work")[0] == "OK"
    msg = crlf_msg("appended", to="ann@acme.example")
    typ, data = m.append("Work", "(\\Seen)", None, msg)
    assert typ == "OK" and b"APPENDUID" in data[0]
    m.select("INBOX")
    typ, data = m.copy("1", "Work")
    assert typ == "OK" and b"COPYUID" in data[0]
    typ, data = m._simple_command("MOVE", "3", "Work")
    assert typ == "OK"
    typ, data = m.select("INBOX")
    assert int(data[0]) == 2
    typ, data = m.select("Work")
    assert int(data[0]) == 3
    m.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = m.expunge()
    assert data[0] == b"1"
    typ, data = m.select("Work")
    assert int(data[0]) == 2
    assert m.rename("Work", "Archive")[0] == "OK"
    assert m.delete("Archive")[0] == "OK"
    m.logout()


def test_idle_reports_new_mail(env):
    r = signed_in_raw(env)
    r.cmd("s", "SELECT INBOX")
    r.send("i IDLE\r\n")
    assert r.line().startswith("+ ")
    send(env, "alice@elsewhere.example", ["ann@acme.example"],
         crlf_msg("idle news", to="ann@acme.example"))
    deadline = time.monotonic() + 30
    got = None
    r.sock.settimeout(30)
    while time.monotonic() < deadline:
        ln = r.line()
        if ln.endswith("EXISTS"):
            got = ln
            break
    assert got is not None
    r.send("DONE\r\n")
    assert r.until_tagged("i")[-1].startswith("i OK")
    r.close()


# ---- other clients ---------------------------------------------------------------


def test_curl_fetches_by_uid(env):
    m = imaps(env)
    m.select("INBOX", readonly=True)
    uid = m.uid("SEARCH", None, "ALL")[1][0].split()[0].decode()
    m.logout()
    p = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd",
                        "imap://127.0.0.1:%d/INBOX;UID=%s" % (env.imap_port, uid),
                        "-u", "ann@acme.example:" + PASSWORD["ann@acme.example"]],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert re.search(rb"Subject: ann message \d", p.stdout), p.stdout[:500]


def test_mutt_saves_messages(env, tmp_path):
    out = tmp_path / "saved.mbox"
    rc = tmp_path / "muttrc"
    (tmp_path / "Mail").mkdir()                # else mutt asks whether to create it
    cert = Path(env.data_dir) / "tls" / "cert.pem"
    rc.write_text("\n".join([
        "set ssl_verify_host=no", "set certificate_file=%s" % cert,
        "set imap_user=ann@acme.example",
        "set imap_pass=%s" % PASSWORD["ann@acme.example"], "set confirmappend=no",
        "set confirmcreate=no", "set mbox_type=mbox", "set move=no", "set quit=yes",
        "set imap_passive=no", "set sort=date", ""]))
    # drive mutt on a pseudo-terminal: wait for the index, 'C' (copy-message), quit
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(TERM="xterm", HOME=str(tmp_path))
        os.execvp("mutt", ["mutt", "-n", "-F", str(rc), "-f",
                           "imaps://127.0.0.1:%d/INBOX" % env.imaps_port])
    screen = b""

    def wait_for(pred, timeout=20):
        nonlocal screen
        deadline = time.monotonic() + timeout
        while not pred() and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    screen += os.read(fd, 65536)
                except OSError:
                    break
        return pred()

    try:
        assert wait_for(lambda: b"ann message" in screen or b"idle news" in screen), screen[-1500:]
        os.write(fd, b"C" + str(out).encode() + b"\r")
        assert wait_for(lambda: out.exists() and b"\nSubject: " in out.read_bytes()), \
            screen[-1500:]
        os.write(fd, b"q")
        wait_for(lambda: False, timeout=2)
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
    assert out.exists()
    data = out.read_bytes()
    assert data.count(b"\nSubject: ") == 1, data[:2000]
    assert re.search(rb"\nSubject: (ann message \d|idle news)\n", data), data[:2000]
    assert b"secret for bob" not in data


def test_mbsync_to_maildir(env, tmp_path):
    maildir = tmp_path / "mail"
    maildir.mkdir()
    cfg = tmp_path / "mbsyncrc"
    cfg.write_text("""IMAPAccount cont
Host 127.0.0.1
Port %d
User ann@acme.example
Pass %s
SSLType IMAPS
CertificateFile %s
SystemCertificates no

IMAPStore remote
Account cont

MaildirStore local
Path %s/
Inbox %s/INBOX

Channel inbox
Far :remote:INBOX
Near :local:INBOX
Create Near
Sync Pull
SyncState *
""" % (env.imaps_port, PASSWORD["ann@acme.example"], Path(env.data_dir) / "tls" / "cert.pem",
       maildir, maildir))
    p = subprocess.run(["mbsync", "-c", str(cfg), "inbox"], capture_output=True, timeout=120)
    files = list((maildir / "INBOX").glob("*/*"))
    assert p.returncode == 0, p.stderr
    assert len(files) >= 2
    assert any(b"ann message" in f.read_bytes() for f in files)


# ---- hostile and broken clients --------------------------------------------------


def test_malformed_commands_are_bad(env):
    r = Raw(env.imap_port)
    for text in ("a (NOOP", 'b LOGIN "unterminated', "c FETCH 1 (FLAGS", "d BOGUS",
                 "e UID NOOP", "f SELECT"):
        out = r.cmd(text.split()[0], text.split(" ", 1)[1])
        assert out[-1].split()[1] == "BAD", (text, out)
    r.send("\x01\x02 garbage\r\n")
    assert " BAD " in r.line()
    assert r.cmd("n", "NOOP")[-1].startswith("n OK")
    # too many in a row: BYE
    try:
        for i in range(25):
            r.send("z%d FOO\r\n" % i)
    except (BrokenPipeError, ConnectionResetError):
        pass
    lines = []
    try:
        while True:
            lines.append(r.line())
    except (EOFError, ConnectionResetError):
        pass
    assert any(ln.startswith("* BYE") for ln in lines)


def test_huge_literals_refused(env):
    r = Raw(env.imap_port)
    # before sign-in a synchronising literal over the limit gets NO, never "+"
    r.send("a LOGIN {100000}\r\n")
    assert r.line().startswith("a NO [TOOBIG]")
    assert r.cmd("b", "NOOP")[-1].startswith("b OK")
    r.close()
    r = signed_in_raw(env)
    r.send("c APPEND INBOX {2000000}\r\n")
    assert r.line().startswith("c NO [TOOBIG]")
    # LITERAL+: read and thrown away, then NO; the connection goes on
    r.send(b"d APPEND INBOX {1500000+}\r\n" + b"x" * 1500000 + b"\r\n")
    assert r.until_tagged("d")[-1].startswith("d NO [TOOBIG]")
    assert r.cmd("e", "NOOP")[-1].startswith("e OK")
    r.close()


def test_overlong_line_closes(env):
    r = Raw(env.imap_port)
    r.send("a NOOP " + "x" * 70000 + "\r\n")
    assert r.line().startswith("* BAD")
    assert r.closed()


def test_disconnect_mid_literal_and_mid_fetch(env):
    r = signed_in_raw(env)
    r.send(b"a APPEND INBOX {500000}\r\n")
    assert r.line().startswith("+")
    r.send(b"y" * 1000)
    r.close()
    # a big FETCH that the client does not read
    r = signed_in_raw(env)
    r.cmd("s", "SELECT INBOX")
    r.send(("f FETCH 1:* (BODY.PEEK[] ENVELOPE BODYSTRUCTURE)\r\n" * 50).encode())
    time.sleep(0.2)
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    r.close()
    # the daemon still serves others
    m = imaps(env)
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    assert "sanitizer" not in env.log().lower()


def test_expunge_seen_by_other_session(env):
    a = imaps(env)
    b = signed_in_raw(env)
    a.create("Shared")
    for i in range(3):
        a.append("Shared", None, None, crlf_msg("shared %d" % i, to="ann@acme.example"))
    out = b.cmd("s", "SELECT Shared")
    assert "* 3 EXISTS" in out
    a.select("Shared")
    a.store("2", "+FLAGS", "(\\Deleted)")
    a.expunge()
    a.append("Shared", None, None, crlf_msg("shared new", to="ann@acme.example"))
    out = b.cmd("n", "NOOP")
    assert "* 2 EXPUNGE" in out, out
    assert "* 3 EXISTS" in out, out
    # the session's numbering follows: message 3 is the new one
    out = b.cmd("f", "FETCH 3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert any("shared new" in ln for ln in out), out
    a.logout()
    b.close()


def test_big_fetch_in_slices_and_client_gone(env):
    m = imaps(env)
    m.create("Big")
    for i in range(230):
        m.append("Big", None, None, crlf_msg("big %03d" % i, to="ann@acme.example",
                                             body=("line %d\n" % i) * 200))
    m.select("Big", readonly=True)
    typ, data = m.fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[])")
    bodies = [x for x in data if isinstance(x, tuple)]
    assert len(bodies) == 230
    subjects = sorted(re.search(rb"Subject: (big \d+)", b[1]).group(1) for b in bodies)
    assert subjects == sorted(b"big %03d" % i for i in range(230))
    m.logout()
    # the same over STARTTLS (the TLS filter's backpressure path)
    m = imaplib.IMAP4("127.0.0.1", env.imap_port, timeout=30)
    m.starttls(ssl_context=ctx())
    m.login("ann@acme.example", PASSWORD["ann@acme.example"])
    m.select("Big", readonly=True)
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[TEXT])")
    assert len([x for x in data if isinstance(x, tuple)]) == 230
    m.logout()
    # a client that asks for everything many times and never reads
    r = signed_in_raw(env)
    r.cmd("s", "EXAMINE Big")
    r.send("f FETCH 1:* (BODY.PEEK[] BODYSTRUCTURE)\r\n" * 20)
    time.sleep(0.5)
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    r.close()
    m = imaps(env)
    typ, data = m.select("Big")
    assert int(data[0]) == 230
    m.delete("Big")
    m.logout()


def test_limits_and_timeouts(mailark_daemon):
    d = mailark_daemon(**{"imap.login_timeout": "2", "imap.max_connections_per_ip": "2"})
    a = Raw(d.imap_port)
    b = Raw(d.imaps_port, tls=True)
    c = socket.create_connection(("127.0.0.1", d.imap_port), timeout=10)
    assert c.recv(1000).startswith(b"* BYE Too many connections")
    c.close()
    # not signed in within login_timeout: autologout
    a.sock.settimeout(10)
    assert a.line().startswith("* BYE Autologout")
    assert a.closed()
    b.close()


def test_protocol_details(env):
    r = signed_in_raw(env)
    out = r.cmd("n", "NAMESPACE")
    assert out[0] == '* NAMESPACE (("" "/")) NIL NIL'
    out = r.cmd("i", 'ID ("name" "pytest")')
    assert out[0].startswith("* ID (") and out[-1].startswith("i OK")
    out = r.cmd("l", 'LIST "" ""')
    assert out[0] == '* LIST (\\Noselect) "/" ""'
    out = r.cmd("s", "LSUB \"\" *")
    assert '* LSUB (\\HasNoChildren) "/" "INBOX"' in out
    assert r.cmd("sub", "SUBSCRIBE INBOX")[-1].startswith("sub OK")
    out = r.cmd("st", "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)")
    m = re.match(r"\* STATUS \"INBOX\" \(MESSAGES (\d+) UIDNEXT (\d+) UIDVALIDITY (\d+) "
                 r"UNSEEN (\d+) RECENT 0\)", out[0])
    assert m, out
    assert r.cmd("st2", "STATUS Nowhere (MESSAGES)")[-1].startswith("st2 NO")
    assert r.cmd("bad", "STATUS INBOX (BOGUS)")[-1].startswith("bad BAD")
    # LITERAL+ APPEND into a folder, then EXAMINE it read-only
    assert r.cmd("c", "CREATE Proto")[-1].startswith("c OK")
    msg = crlf_msg("proto", to="ann@acme.example")
    r.send(b"a APPEND Proto (\\Flagged) \"01-Jan-2026 10:00:00 +0100\" {%d+}\r\n" % len(msg)
           + msg + b"\r\n")
    out = r.until_tagged("a")
    am = re.match(r"a OK \[APPENDUID (\d+) (\d+)\]", out[-1])
    assert am, out
    out = r.cmd("e", "EXAMINE Proto")
    assert "* 1 EXISTS" in out and out[-1].startswith("e OK [READ-ONLY]")
    out = r.cmd("f", "UID FETCH %s (FLAGS INTERNALDATE ENVELOPE BODYSTRUCTURE)" % am.group(2))
    assert "\\Flagged" in out[0] and '"01-Jan-2026 09:00:00 +0000"' in out[0], out
    assert '"proto"' in out[0] and re.search(r'BODYSTRUCTURE \("text" "plain"', out[0], re.I)
    assert r.cmd("x", "STORE 1 +FLAGS (\\Deleted)")[-1].startswith("x NO [READ-ONLY]")
    assert r.cmd("lo", "LOGIN a b")[-1].startswith("lo BAD")      # wrong state
    # read-write: UID EXPUNGE removes only the given UIDs
    r.cmd("s2", "SELECT Proto")
    r.cmd("st", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    out = r.cmd("ue", "UID EXPUNGE %s" % am.group(2))
    assert "* 1 EXPUNGE" in out and out[-1].startswith("ue OK")
    assert r.cmd("ck", "CHECK")[-1].startswith("ck OK")
    assert r.cmd("un", "UNSELECT")[-1].startswith("un OK")
    assert r.cmd("fe", "FETCH 1 FLAGS")[-1].startswith("fe BAD")   # nothing selected
    assert r.cmd("d", "DELETE Proto")[-1].startswith("d OK")
    assert r.cmd("d2", "DELETE INBOX")[-1].startswith("d2 NO")
    out = r.cmd("lo", "LOGOUT")
    assert out[0].startswith("* BYE") and out[-1].startswith("lo OK")
    assert r.closed()


def test_pipelined_fetches_and_invalid_messageset(env):
    r = signed_in_raw(env)
    out = r.cmd("s", "SELECT INBOX")
    n = int(next(ln.split()[1] for ln in out if ln.endswith(" EXISTS")))
    uids = r.cmd("u", "UID SEARCH ALL")[0].split()[2:]
    assert n >= 2 and len(uids) == n
    # One write: the FETCH commands after the first join its job; the other
    # commands between them must still be answered in order, each with its
    # own responses before its tagged reply.
    cmds = [("p1", "FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"),
            ("p2", "UID FETCH %s (FLAGS)" % uids[-1]),
            ("p3", "FETCH %d (UID)" % (n + 1)),
            ("p4", "NOOP"),
            ("p5", "FETCH 1:* (UID)"),
            ("p6", "UID FETCH %s,%s:* (UID)" % (uids[-1], uids[0])),
            ("p7", "STORE %d +FLAGS (\\Flagged)" % (n + 1)),
            ("p8", "FETCH 2,1 (UID)")]
    r.send("".join("%s %s\r\n" % c for c in cmds))
    got = {}
    for tag, _ in cmds:
        got[tag] = r.until_tagged(tag)      # fails with a timeout if out of order
    assert got["p1"][-1].startswith("p1 OK")
    assert got["p1"][0].startswith("* 1 FETCH (UID %s BODY[HEADER.FIELDS (SUBJECT)] {" % uids[0])
    assert any(ln.startswith("Subject: ") for ln in got["p1"])
    assert got["p2"][0].startswith("* %d FETCH (UID %s FLAGS (" % (n, uids[-1]))
    assert got["p3"] == ["p3 BAD Invalid messageset"]
    assert got["p4"][-1].startswith("p4 OK")
    want = ["* %d FETCH (UID %s)" % (i + 1, u) for i, u in enumerate(uids)]
    assert got["p5"][:-1] == want and got["p5"][-1].startswith("p5 OK")
    assert got["p6"][:-1] == want and got["p6"][-1].startswith("p6 OK UID FETCH")
    assert got["p7"] == ["p7 BAD Invalid messageset"]
    assert got["p8"][:-1] == want[:2]     # ascending, each once
    # RFC 3501 9: a message number beyond EXISTS is invalid (Dovecot: BAD
    # "Invalid messageset"); a UID that does not exist is not.
    for text in ("FETCH %d FLAGS" % (n + 1), "FETCH 1:%d FLAGS" % (n + 1),
                 "FETCH %d:* FLAGS" % (n + 1), "STORE %d +FLAGS (\\Seen)" % (n + 1),
                 "COPY %d Trash" % (n + 1), "MOVE %d Trash" % (n + 1)):
        assert r.cmd("b", text)[-1] == "b BAD Invalid messageset", text
    out = r.cmd("ok", "UID FETCH %d FLAGS" % (int(uids[-1]) + 1000))
    assert out == ["ok OK UID FETCH completed"]
    # an empty mailbox has no valid message numbers at all
    assert r.cmd("c", "CREATE Empty")[-1].startswith("c OK")
    assert r.cmd("e", "SELECT Empty")[-1].startswith("e OK")
    assert r.cmd("f1", "FETCH 1:* FLAGS") == ["f1 BAD Invalid messageset"]
    assert r.cmd("f2", "UID FETCH 1:* FLAGS") == ["f2 OK UID FETCH completed"]
    assert r.cmd("un", "UNSELECT")[-1].startswith("un OK")
    assert r.cmd("d", "DELETE Empty")[-1].startswith("d OK")
    r.cmd("lo", "LOGOUT")
    r.close()


def test_sequence_and_uid_zero_are_bad(env):
    # RFC 3501 9: seq-number and uniqueid are nz-number.  Dovecot 2.3 answers
    # BAD "Invalid messageset" for a 0 in a message set (also 0:* and 1,0) and
    # BAD "Invalid uidset" for a 0 in a UID set (also UID FETCH 0:*).
    r = signed_in_raw(env)
    r.cmd("s", "SELECT INBOX")
    before = r.cmd("f0", "FETCH 1:* (FLAGS)")
    for text in ("FETCH 0 FLAGS", "FETCH 0:* FLAGS", "FETCH 1,0 (UID)",
                 "STORE 0 +FLAGS (\\Seen)", "COPY 0 Trash", "MOVE 0:1 Trash"):
        assert r.cmd("b", text) == ["b BAD Invalid messageset"], text
    for text in ("UID FETCH 0 FLAGS", "UID FETCH 0:* FLAGS", "UID STORE 0 +FLAGS (\\Seen)",
                 "UID COPY 0 Trash"):
        assert r.cmd("b", text) == ["b BAD Invalid uidset"], text
    # batched behind a valid FETCH, the invalid one is still answered BAD, in order
    r.send("p1 FETCH 1 (UID)\r\np2 FETCH 0 (UID)\r\np3 UID FETCH 0 (UID)\r\n")
    assert r.until_tagged("p1")[-1].startswith("p1 OK")
    assert r.until_tagged("p2") == ["p2 BAD Invalid messageset"]
    assert r.until_tagged("p3") == ["p3 BAD Invalid uidset"]
    # the refused STORE and MOVE changed nothing
    assert r.cmd("f0", "FETCH 1:* (FLAGS)") == before
    r.cmd("lo", "LOGOUT")
    r.close()


def _internaldate(m, uid):
    typ, data = m.uid("FETCH", uid, "(INTERNALDATE)")
    assert typ == "OK", data
    got = re.search(rb'INTERNALDATE "([^"]+)"', data[0])
    assert got, data
    return datetime.strptime(got.group(1).decode(), "%d-%b-%Y %H:%M:%S %z").timestamp()


def test_append_date_kept_in_inbox_and_sent(env):
    # The date-time of an APPEND is the INTERNALDATE, in INBOX and Sent as in
    # user folders (RFC 3501 6.3.11); without one it is the archive time.
    when = {"INBOX": 1500000000, "Sent": 1600000000}
    uids = {}
    m = imaps(env)
    for box, ts in when.items():
        msg = crlf_msg("dated append to %s" % box, to="ann@acme.example")
        # given in +0200: the instant counts, not the zone
        date = '"%s"' % time.strftime("%d-%b-%Y %H:%M:%S +0200", time.gmtime(ts + 7200))
        typ, data = m.append(box, None, date, msg)
        am = re.search(rb"APPENDUID \d+ (\d+)", data[0])
        assert typ == "OK" and am, data
        uids[box] = am.group(1).decode()
    typ, data = m.append("Sent", None, None, crlf_msg("undated", to="ann@acme.example"))
    undated = re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1).decode()
    for box, ts in when.items():
        m.select(box)
        assert _internaldate(m, uids[box]) == ts, box
    m.select("Sent")
    assert abs(_internaldate(m, undated) - time.time()) < 600
    typ, data = m.uid("SEARCH", "BEFORE", "01-Jan-2021")   # SEARCH uses the same date
    assert data[0].split() == [uids["Sent"].encode()], data
    m.logout()
    # a new session (state from mailbox.db) sees the same; INBOX mail is left as it was
    m = imaps(env)
    m.select("INBOX")
    assert _internaldate(m, uids["INBOX"]) == when["INBOX"]
    m.uid("STORE", uids["INBOX"], "+FLAGS", "(\\Deleted)")
    assert m.expunge()[0] == "OK"
    m.logout()


# ---- these two run last: they end continuity and stop the daemon ---------------


def test_continuity_stop_kicks_sessions(env):
    r = signed_in_raw(env)
    r.cmd("s", "SELECT INBOX")
    r.send("i IDLE\r\n")
    assert r.line().startswith("+ ")
    env.cli("continuity", "stop", "acme")
    r.sock.settimeout(60)
    lines = []
    try:
        while not any(ln.startswith("* BYE") for ln in lines):
            lines.append(r.line())
    except EOFError:
        pass
    assert "* BYE continuity ended" in lines, lines
    assert r.closed()
    # and nobody of acme signs in any more
    r = Raw(env.imaps_port, tls=True)
    out = r.cmd("l", 'LOGIN "ann@acme.example" "%s"' % PASSWORD["ann@acme.example"])
    assert out[-1].startswith("l NO [UNAVAILABLE]"), out
    r.close()


def test_shutdown_with_sessions_open(env):
    env.cli("continuity", "start", "acme")
    idle = signed_in_raw(env)
    idle.cmd("s", "SELECT INBOX")
    idle.send("i IDLE\r\n")
    assert idle.line().startswith("+ ")
    busy = signed_in_raw(env, "bob@acme.example")
    busy.cmd("s", "SELECT INBOX")
    busy.send("f FETCH 1:* (BODY.PEEK[])\r\n" * 200)
    lit = signed_in_raw(env)
    lit.send("a APPEND INBOX {100000}\r\n")
    assert lit.line().startswith("+")
    lit.send(b"z" * 5000)
    env.stop()
    idle.sock.settimeout(10)
    lines = []
    try:
        while True:
            lines.append(idle.line())
    except (EOFError, ConnectionResetError, ssl.SSLError):
        pass
    assert any(ln.startswith("* BYE") for ln in lines), lines
    for r in (idle, busy, lit):
        r.close()
