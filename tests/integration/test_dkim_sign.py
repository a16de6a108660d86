"""DKIM signing of outbound mail against the real daemon.

`mailark dkim keygen|show` print the zone-file line to publish; the test
publishes it in a loopback unbound (zone "test.").  Mail relayed from
127.0.0.1 for tenant acme goes through the hygiene pipeline to a smarthost
(an aiosmtpd primary); what arrives must carry a DKIM-Signature that two
independent verifiers accept: Python's `dkim` (python3-dkim), with the key
fetched from the unbound or handed over as the record text, and OpenDKIM's
`opendkim-testmsg`.  opendkim-testmsg has no resolver option (libopendkim
reads /etc/resolv.conf, port 53), so it runs in a private network and mount
namespace (`unshare -mn`) where a second unbound serving the same zone
listens on 127.0.0.1:53 and a resolv.conf naming it is bind-mounted over
/etc/resolv.conf; where namespaces are not available that check is skipped.

Also: the message is otherwise byte-identical; no key or `dkim.sign no` →
no signature; a disclaimer is added before signing; keygen is refused to
other tenants and to non-admins with the API's usual 404 / 403.
"""

import base64
import email
import email.policy
import re
import shutil
import stat
import subprocess
from pathlib import Path

import dkim
import dns.resolver
import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key

import hygiene_helper
from hygiene_helper import FAST_RETRY, strip_trace
from test_api import Api, control
from unbound_helper import Unbound

SENDER = "alice@acme.test"
RCPT = "bob@example.net"
RECORD_RE = re.compile(r'^([a-z0-9-]+)\._domainkey\.([a-z0-9.-]+)\. IN TXT((?: "[^"]*")+)$')


# --------------------------------------------------------------------------
# helpers


def start(mailark_daemon, smtp_primary, resolver=None):
    conf = dict(FAST_RETRY)
    if resolver is not None:
        conf["delivery.dns_resolver"] = resolver
    return hygiene_helper.start(mailark_daemon, smtp_primary,
                                [(key, "no") for key in ("av.enabled", "attach.enabled",
                                                         "milter.enabled")],
                                conf, route=False, smarthost=True, relay=True,
                                domains=("acme.test", "beta.test"))


def parse_record(line):
    """(selector, domain, TXT value) of a printed zone-file line."""
    m = RECORD_RE.match(line.strip())
    assert m, line
    strings = re.findall(r'"([^"]*)"', m.group(3))
    assert all(len(s) <= 255 for s in strings)
    return m.group(1), m.group(2), "".join(strings)


def key_bits(txt):
    tags = dict(t.strip().split("=", 1) for t in txt.split(";") if t.strip())
    assert tags["v"] == "DKIM1" and tags["k"] == "rsa"
    return load_der_public_key(base64.b64decode(tags["p"])).key_size


def keygen(d, *args):
    out = d.cli("dkim", "keygen", "acme.test", *args).stdout.strip()
    assert len(out.splitlines()) == 1, out
    return out


def message(subject, sender=SENDER, body="Hello Bob,\r\n\r\nthe report is attached.\r\n"):
    return ("From: Alice <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@acme.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s"
            % (sender, RCPT, subject, subject.replace(" ", "-"), body)).encode()


def send(d, data, sender=SENDER):
    hygiene_helper.send_queued(d, data, sender=sender, rcpts=RCPT)


def arrived(p, n):
    return p.wait_for(n, timeout=30)[n - 1].data


def signatures(data):
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    out = []
    for v in msg.get_all("DKIM-Signature", []):
        tags = {}
        for t in "".join(v.split()).split(";"):
            if "=" in t:
                k, val = t.split("=", 1)
                tags[k] = val
        out.append(tags)
    return out


def record_dnsfunc(name_txt):
    """A dkim dnsfunc answering from {dns name: TXT value}."""
    def lookup(name, timeout=5):
        key = name.decode() if isinstance(name, bytes) else name
        return name_txt.get(key.rstrip("."), "").encode()
    return lookup


def unbound_dnsfunc(u):
    """A dkim dnsfunc asking the loopback unbound."""
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = u.port

    def lookup(name, timeout=5):
        key = name.decode() if isinstance(name, bytes) else name
        try:
            ans = r.resolve(key, "TXT", lifetime=timeout)
        except dns.exception.DNSException:
            return b""
        return b"".join(b"".join(rr.strings) for rr in ans)
    return lookup


# Runs inside `unshare -mn`: loopback up, unbound on 127.0.0.1:53, our
# resolv.conf over /etc/resolv.conf, then opendkim-testmsg on the message.
NETNS_SCRIPT = r"""
import socket, subprocess, sys
conf, resolv, msg = sys.argv[1:4]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
ub = subprocess.Popen(["unbound", "-d", "-c", conf], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
try:
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02mx\x04test\x00\x00\x0f\x00\x01"
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.1)
            try:
                s.sendto(q, ("127.0.0.1", 53))
                if s.recv(512)[:2] == b"\x12\x34":
                    break
            except OSError:
                pass
    else:
        sys.exit("unbound did not start")
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    with open(msg, "rb") as f:
        p = subprocess.run(["opendkim-testmsg"], stdin=f, capture_output=True)
    sys.stdout.write("rc=%d\n" % p.returncode)
    sys.stdout.write(p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace"))
finally:
    ub.terminate()
    ub.wait()
"""


@pytest.fixture(scope="session")
def netns_ok():
    if shutil.which("opendkim-testmsg") is None or shutil.which("unshare") is None:
        return False
    p = subprocess.run(["unshare", "-mn", "true"], capture_output=True)
    if p.returncode != 0:
        p = subprocess.run(["unshare", "-rmn", "true"], capture_output=True)
        return "-rmn" if p.returncode == 0 else False
    return "-mn"


def opendkim_verify(netns_ok, u, data, tmp_path):
    """(exit status, output) of opendkim-testmsg verifying data against u's zone."""
    if not netns_ok:
        pytest.skip("no network/mount namespaces for opendkim-testmsg")
    conf = tmp_path / "unbound53.conf"
    text = (u.workdir / "unbound.conf").read_text()
    conf.write_text(re.sub(r"(?m)^  port: \d+$", "  port: 53", text))
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    msg = tmp_path / "msg.eml"
    msg.write_bytes(data)
    p = subprocess.run(["unshare", netns_ok, "/usr/bin/python3", "-c", NETNS_SCRIPT, str(conf),
                        str(resolv), str(msg)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    first, _, rest = p.stdout.partition("\n")
    return int(first[3:]), rest


def verify_all(data, record, u, netns_ok, tmp_path):
    selector, domain, txt = parse_record(record)
    name = "%s._domainkey.%s" % (selector, domain)
    assert dkim.verify(data, dnsfunc=record_dnsfunc({name: txt}))
    assert dkim.verify(data, dnsfunc=unbound_dnsfunc(u))
    rc, out = opendkim_verify(netns_ok, u, data, tmp_path)
    assert rc == 0 and out.strip() == "", out


# --------------------------------------------------------------------------
# key management


def test_keygen_and_show_print_the_record(mailark_daemon):
    d = mailark_daemon()
    d.cli("tenant", "add", "acme")
    d.cli("domain", "add", "acme", "acme.test")
    assert d.cli("dkim", "show", "acme.test", check=False).returncode != 0

    first = keygen(d)
    selector, domain, txt = parse_record(first)
    assert (selector, domain) == ("mailark", "acme.test")
    assert key_bits(txt) == 2048
    assert d.cli("dkim", "show", "acme.test").stdout.strip() == first

    second = keygen(d, "--selector", "s2", "--bits", "1024")
    selector, domain, txt2 = parse_record(second)
    assert (selector, domain) == ("s2", "acme.test")
    assert key_bits(txt2) == 1024 and txt2 != txt
    assert d.cli("dkim", "show", "acme.test").stdout.strip() == second

    keys = Path(d.data_dir) / "dkim" / "acme.test"
    for sel in ("mailark", "s2"):
        assert stat.S_IMODE((keys / (sel + ".key")).stat().st_mode) == 0o600
    # an existing selector is never overwritten; out-of-range sizes and bad
    # selectors are refused, and none of it changes the current key
    before = (keys / "s2.key").read_bytes()
    for args in (["--selector", "s2"], ["--selector", "s3", "--bits", "512"],
                 ["--selector", "s4", "--bits", "8192"], ["--selector", "Bad_Sel"]):
        p = d.cli("dkim", "keygen", "acme.test", *args, check=False)
        assert p.returncode != 0, args
    assert (keys / "s2.key").read_bytes() == before
    assert sorted(f.name for f in keys.glob("*.key")) == ["mailark.key", "s2.key"]
    assert d.cli("dkim", "show", "acme.test").stdout.strip() == second


def test_keygen_refused_to_other_tenants_and_non_admins(mailark_daemon):
    d = mailark_daemon()
    for t in ("acme", "other"):
        control(d, "tenant.add", name=t)
        control(d, "domain.add", tenant=t, domain=t + ".test")
    tokens = {}
    for addr, tenant, role in (("admin@acme.test", "acme", "admin"),
                               ("auditor@acme.test", "acme", "auditor"),
                               ("user@acme.test", "acme", "user"),
                               ("admin@other.test", "other", "admin")):
        control(d, "user.add", tenant=tenant, address=addr, role=role)
        tokens[addr] = Api(d.http_port, control(d, "token.create", name=addr, user=addr)["token"])

    path = "/api/v1/dkim/acme.test/keygen"
    body = {"selector": "api"}
    assert tokens["admin@other.test"].post(path, body)[0] == 404
    assert tokens["auditor@acme.test"].post(path, body)[0] == 403
    assert tokens["user@acme.test"].post(path, body)[0] == 403
    assert Api(d.http_port).post(path, body)[0] == 401
    assert not (Path(d.data_dir) / "dkim" / "acme.test").exists()

    st, js, _ = tokens["admin@acme.test"].post(path, body)
    assert st == 201, js
    assert js["dns_name"] == "api._domainkey.acme.test" and key_bits(js["dns_txt"]) == 2048
    st, js2, _ = tokens["auditor@acme.test"].get("/api/v1/dkim/acme.test")
    assert st == 200 and js2["record"] == js["record"]
    assert tokens["admin@other.test"].get("/api/v1/dkim/acme.test")[0] == 404
    # the other tenant's admin manages its own domain
    assert tokens["admin@other.test"].post("/api/v1/dkim/other.test/keygen", {})[0] == 201
    assert sorted(p.name for p in (Path(d.data_dir) / "dkim").iterdir()) == ["acme.test",
                                                                             "other.test"]


# --------------------------------------------------------------------------
# signing


@pytest.fixture
def signed_env(tmp_path, mailark_daemon, smtp_primary):
    """A daemon whose acme.test has a key published in a loopback unbound."""
    d, p = start(mailark_daemon, smtp_primary)
    record = keygen(d, "--selector", "sel1")
    (tmp_path / "dns").mkdir()
    u = Unbound(tmp_path / "dns", [record])
    yield d, p, u, record
    u.stop()


def test_outbound_mail_is_signed_and_verifies(signed_env, netns_ok, tmp_path):
    d, p, u, record = signed_env
    sent = message("quarterly report")
    send(d, sent)
    got = arrived(p, 1)
    sigs = signatures(got)
    assert len(sigs) == 1
    s = sigs[0]
    assert (s["d"], s["s"], s["a"], s["c"]) == ("acme.test", "sel1", "rsa-sha256",
                                                "relaxed/relaxed")
    signed = [h.strip().lower() for h in s["h"].split(":")]
    for h in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert h in signed
    verify_all(got, record, u, netns_ok, tmp_path)

    # the message is otherwise byte-identical
    trace, rest = strip_trace(got)
    assert rest == sent
    assert trace.lower().count(b"dkim-signature:") == 1

    # the verifiers really check: a changed body or header fails both
    for before, after in ((b"the report is attached", b"the report is attacked"),
                          (b"Subject: quarterly report", b"Subject: quarterly rep0rt")):
        bad = got.replace(before, after)
        assert bad != got
        assert not dkim.verify(bad, dnsfunc=unbound_dnsfunc(u))
        rc, _ = opendkim_verify(netns_ok, u, bad, tmp_path)
        assert rc != 0


def test_no_key_or_signing_off_means_no_signature(signed_env):
    d, p, u, record = signed_env
    # beta.test belongs to the tenant but has no key
    send(d, message("from beta", sender="carol@beta.test"), sender="carol@beta.test")
    got = arrived(p, 1)
    assert signatures(got) == []
    assert b"\r\nFrom: Alice <carol@beta.test>\r\n" in got
    # acme.test has a key, but the tenant turned signing off
    d.cli("policy", "set", "acme", "dkim.sign", "no")
    sent = message("signing off")
    send(d, sent)
    got = arrived(p, 2)
    assert signatures(got) == []
    assert strip_trace(got)[1] == sent
    # and on again
    d.cli("policy", "set", "acme", "dkim.sign", "yes")
    send(d, message("signing on"))
    got = arrived(p, 3)
    assert [s["d"] for s in signatures(got)] == ["acme.test"]
    assert dkim.verify(got, dnsfunc=unbound_dnsfunc(u))


def test_disclaimer_is_signed(signed_env, netns_ok, tmp_path):
    d, p, u, record = signed_env
    d.cli("policy", "set", "acme", "disclaimer.text", r"Acme Corp. - confidential\nSent by {sender}")
    sent = message("with disclaimer")
    send(d, sent)
    got = arrived(p, 1)
    body = strip_trace(got)[1]
    assert body != sent
    assert b"Acme Corp. - confidential" in body and b"Sent by alice@acme.test" in body
    assert b"the report is attached." in body
    assert [s["d"] for s in signatures(got)] == ["acme.test"]
    verify_all(got, record, u, netns_ok, tmp_path)
