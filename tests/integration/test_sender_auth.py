"""Inbound sender authentication against the real daemon: SPF, DKIM and DMARC
records served by a loopback unbound (zone "test."), the verdicts recorded in
the Authentication-Results header of the delivered message, DMARC p=reject
answered 550 5.7.1 at the end of DATA, p=quarantine quarantined, and a forged
Authentication-Results claiming our authserv-id renamed.
"""

import base64
import email
import email.policy
import subprocess

import dkim
import pytest

import hygiene_helper
from hygiene_helper import add_tenant
from unbound_helper import Unbound

HOST = "mx.mailark.test"


def txt(name, value):
    parts = " ".join('"%s"' % value[i:i + 255] for i in range(0, len(value), 255))
    return "%s IN TXT %s" % (name, parts)


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("key")
    key = d / "k.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return key.read_bytes(), "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


@pytest.fixture
def env(tmp_path, mailark_daemon, smtp_primary, dkim_key):
    records = [
        txt("pass.test.", "v=spf1 ip4:127.0.0.1 -all"),
        txt("fail.test.", "v=spf1 ip4:192.0.2.1 -all"),
        txt("sel._domainkey.signed.test.", dkim_key[1]),
        txt("signed.test.", "v=spf1 ?all"),
        txt("strict.test.", "v=spf1 -all"),
        txt("_dmarc.strict.test.", "v=DMARC1; p=reject"),
        txt("quar.test.", "v=spf1 -all"),
        txt("_dmarc.quar.test.", "v=DMARC1; p=quarantine"),
    ]
    u = Unbound(tmp_path, records)
    p = smtp_primary()
    d = mailark_daemon(**{"hygiene.enabled": "yes", "delivery.dns_resolver": u.address,
                          "server.hostname": HOST})
    add_tenant(d, p.port)
    yield d, p
    u.stop()


def message(sender, subject, extra="", body="hello\r\n"):
    return ("%sFrom: <%s>\r\nTo: <bob@acme.test>\r\nSubject: %s\r\n"
            "Message-ID: <%s@x.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n%s"
            % (extra, sender, subject, subject.replace(" ", "-"), body)).encode()


def send(d, sender, data):
    return hygiene_helper.send(d, data, sender=sender)


def delivered(p, n):
    m = p.wait_for(n, timeout=20)[n - 1]
    return email.message_from_bytes(m.data, policy=email.policy.compat32)


def auth_results(msg):
    return [" ".join(v.split()) for v in msg.get_all("Authentication-Results", [])]


def test_spf_pass_and_fail(env):
    d, p = env
    assert send(d, "alice@pass.test", message("alice@pass.test", "spf pass"))[0] == 250
    ar = auth_results(delivered(p, 1))
    assert len(ar) == 1
    assert ar[0].startswith(HOST + "; spf=pass smtp.mailfrom=alice@pass.test")
    assert "dkim=none" in ar[0]
    assert send(d, "eve@fail.test", message("eve@fail.test", "spf fail"))[0] == 250
    ar = auth_results(delivered(p, 2))
    assert "spf=fail smtp.mailfrom=eve@fail.test" in ar[0]


def test_dkim_pass_and_tampered(env, dkim_key):
    d, p = env
    data = message("alice@signed.test", "dkim signed", body="signed body\r\n")
    sig = dkim.sign(data, b"sel", b"signed.test", dkim_key[0],
                    include_headers=[b"From", b"To", b"Subject"])
    assert send(d, "alice@signed.test", sig + data)[0] == 250
    ar = auth_results(delivered(p, 1))
    assert "dkim=pass header.d=signed.test header.s=sel" in ar[0]
    tampered = sig + data.replace(b"signed body", b"changed body")
    assert send(d, "alice@signed.test", tampered)[0] == 250
    ar = auth_results(delivered(p, 2))
    assert "dkim=fail header.d=signed.test" in ar[0]


def test_dmarc_reject(env):
    d, p = env
    code, reply = send(d, "ceo@strict.test", message("ceo@strict.test", "wire money"))
    assert code == 550
    assert "5.7.1 Message rejected: DMARC policy of strict.test" in reply
    assert p.messages == []


def test_dmarc_quarantine(env):
    d, p = env
    code, _ = send(d, "ceo@quar.test", message("ceo@quar.test", "invoice"))
    assert code == 250
    d.wait_log(r"dmarc:quarantine", timeout=10)
    # the next (clean) message arrives, the quarantined one never does
    assert send(d, "alice@pass.test", message("alice@pass.test", "after"))[0] == 250
    msg = delivered(p, 1)
    assert msg["Subject"] == "after"
    assert len(p.messages) == 1


def test_forged_results_renamed(env):
    d, p = env
    forged = ("Authentication-Results: %s; spf=pass smtp.mailfrom=ceo@bank.test; "
              "dkim=pass header.d=bank.test\r\n"
              "Authentication-Results: other.example; spf=pass\r\n" % HOST)
    data = message("alice@pass.test", "forged", extra=forged)
    assert send(d, "alice@pass.test", data)[0] == 250
    msg = delivered(p, 1)
    ar = auth_results(msg)
    assert len(ar) == 2
    assert any(a.startswith(HOST + "; spf=pass smtp.mailfrom=alice@pass.test") for a in ar)
    assert any(a.startswith("other.example;") for a in ar)
    removed = msg.get_all("X-Mailark-Removed-Authentication-Results")
    assert removed and "ceo@bank.test" in removed[0]
