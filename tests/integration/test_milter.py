"""Milters from Debian called by the daemon's hygiene pipeline.

opendkim in sign mode adds a DKIM-Signature that Python's dkim module
verifies at the primary (the header went in byte-correctly, the body and
signed headers went out as opendkim saw them); clamav-milter with a real
clamd rejects EICAR with 550; a milter that is down lets mail through
marked "milter:failed" (milter.on_failure open, the default) or gets 451
when the tenant's policy says closed.
"""

import os
import socket
import subprocess
import time

import pytest

import hygiene_helper
from conftest import free_port
from hygiene_helper import add_tenant, set_policy
from unbound_helper import Unbound

OPENDKIM = "/usr/sbin/opendkim"
CLAMAV_MILTER = "/usr/sbin/clamav-milter"


def wait_port(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("milter exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("milter did not listen on %d" % port)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def dns(tmp_path):
    (tmp_path / "dns").mkdir()
    u = Unbound(tmp_path / "dns", [])
    yield u
    u.stop()


@pytest.fixture
def opendkim(tmp_path):
    """opendkim -f signing for sign.test with selector "sel"; yields (port, pubkey)."""
    work = tmp_path / "opendkim"
    work.mkdir()
    subprocess.run(["opendkim-genkey", "-b", "1024", "-d", "sign.test", "-s", "sel",
                    "-D", str(work)], check=True, capture_output=True)
    port = free_port()
    conf = work / "opendkim.conf"
    conf.write_text(
        "Syslog no\n"
        "Mode s\n"
        "Domain sign.test\n"
        "Selector sel\n"
        "KeyFile %s\n"
        "Canonicalization simple/simple\n"
        "Socket inet:%d@127.0.0.1\n"
        "InternalHosts 127.0.0.1\n"
        "PidFile %s\n"
        "RequireSafeKeys no\n"
        "UMask 007\n" % (work / "sel.private", port, work / "opendkim.pid"))
    os.chmod(work / "sel.private", 0o600)
    proc = subprocess.Popen([OPENDKIM, "-f", "-x", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        txt = (work / "sel.txt").read_text()
        parts = "".join(p.split('"')[1] for p in txt.split("\n") if '"' in p)
        yield port, parts.encode()
    finally:
        stop(proc)


def setup_tenant(d, port):
    """Tenant acme with only the milters on (the other stages have tests of their own)."""
    add_tenant(d, port)
    set_policy(d, [(key, "no") for key in ("spf.enabled", "dkim.verify", "dmarc.enabled",
                                            "av.enabled", "spam.enabled")])


def message(subject, body="hello there\r\n", sender="alice@sign.test"):
    return ("From: Alice <%s>\r\nTo: <bob@acme.test>\r\nSubject: %s\r\n"
            "Message-ID: <%s@sign.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            "\r\n%s" % (sender, subject, subject.replace(" ", "."), body)).encode()


def send(d, data, sender="alice@sign.test"):
    return hygiene_helper.send(d, data, sender=sender)


def test_opendkim_signature_verifies(mailark_daemon, primary, opendkim, dns):
    import dkim
    port, pubkey = opendkim
    d = mailark_daemon(**{"hygiene.enabled": "yes",
                          "hygiene.milters": "inet:127.0.0.1:%d" % port,
                          "delivery.dns_resolver": dns.address})
    p = primary()
    setup_tenant(d, p.port)
    body = "line one\r\n\r\nline three with  two spaces\r\n" + ("x" * 70 + "\r\n") * 1000
    code, reply = send(d, message("dkim test", body))
    assert code == 250, reply
    msg = p.wait_for(1, timeout=30)[0].data
    assert b"DKIM-Signature:" in msg

    def dnsfunc(name, timeout=5):
        assert name == b"sel._domainkey.sign.test."
        return pubkey
    assert dkim.verify(msg, dnsfunc=dnsfunc), msg[:2000]
    # the body went through unchanged
    assert (("x" * 70 + "\r\n") * 1000).encode() in msg
    # a changed body no longer verifies (the check is not vacuous)
    assert not dkim.verify(msg.replace(b"line one", b"line 0ne"), dnsfunc=dnsfunc)


def test_clamav_milter_rejects_eicar(mailark_daemon, primary, tmp_path, dns):
    from clamd_helper import Clamd, EICAR
    clamd = Clamd(tmp_path / "clamd")
    port = free_port()
    conf = tmp_path / "clamav-milter.conf"
    conf.write_text(
        "MilterSocket inet:%d@127.0.0.1\n"
        "ClamdSocket unix:%s\n"
        "Foreground yes\n"
        "OnInfected Reject\n"
        "OnFail Defer\n"
        "AddHeader Replace\n"
        "LogFile %s\n"
        "PidFile %s\n"
        "User %s\n" % (port, clamd.socket, tmp_path / "milter.log", tmp_path / "milter.pid",
                       os.environ.get("USER") or "root"))
    proc = subprocess.Popen([CLAMAV_MILTER, "-c", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        d = mailark_daemon(**{"hygiene.enabled": "yes",
                              "hygiene.milters": "inet:127.0.0.1:%d" % port,
                              "delivery.dns_resolver": dns.address})
        p = primary()
        setup_tenant(d, p.port)
        virus = message("virus", "see this\r\n" + EICAR.decode() + "\r\n")
        code, reply = send(d, virus)
        assert code == 550, reply
        assert d.wait_log(r"reason=hygiene_reject detail=milter:inet:127.0.0.1:%d:reject" % port, 5)
        code, reply = send(d, message("clean"))
        assert code == 250, reply
        msg = p.wait_for(1, timeout=30)[0].data
        assert b"X-Virus-Scanned:" in msg
        assert b"Subject: clean" in msg
    finally:
        stop(proc)
        clamd.stop()


def test_milter_down_open_and_closed(mailark_daemon, primary, dns):
    dead = free_port()
    d = mailark_daemon(**{"hygiene.enabled": "yes",
                          "hygiene.milters": "inet:127.0.0.1:%d" % dead,
                          "delivery.dns_resolver": dns.address})
    p = primary()
    setup_tenant(d, p.port)
    code, reply = send(d, message("open"))
    assert code == 250, reply
    msg = p.wait_for(1, timeout=30)[0].data
    assert b"milter:failed" in msg
    d.cli("policy", "set", "acme", "milter.on_failure", "closed")
    code, reply = send(d, message("closed"))
    assert code == 451, reply
    assert len(p.messages) == 1
