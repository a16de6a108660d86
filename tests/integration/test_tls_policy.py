"""Outbound TLS policy against the real daemon: MTA-STS (RFC 8461) enforce and
testing modes, the tenant's tls.require_domains, and the DLP require-TLS flag.

A test CA issues one server certificate for every host name used here
(mail.sts.test, mta-sts.sts.test, ...).  An HTTPS server on a free port serves
each domain's policy at /.well-known/mta-sts.txt (chosen by the Host header);
a real unbound serves the MX, A and _mta-sts TXT records; aiosmtpd primaries
listen on delivery.mx_port with (or without) STARTTLS using that certificate.
The daemon trusts only the test CA (delivery.tls_ca_file).
"""

import http.server
import json
import shutil
import smtplib
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Primary, free_port
from unbound_helper import Unbound

TENANT = "acme"
SENDER = "alice@acme.test"
HOSTS = ["mail.sts.test", "mta-sts.sts.test", "mail.badmx.test", "mta-sts.badmx.test",
         "mail.rotate.test", "mta-sts.rotate.test",
         "mail.notls.test", "mta-sts.notls.test", "mail.testing.test",
         "mta-sts.testing.test", "mail.plain.test"]

POLICIES = {
    "mta-sts.sts.test": "version: STSv1\r\nmode: enforce\r\nmx: mail.sts.test\r\n"
                        "max_age: 86400\r\n",
    # the MX host (mail.badmx.test) is not in the policy
    "mta-sts.badmx.test": "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\n"
                          "max_age: 86400\n",
    "mta-sts.notls.test": "version: STSv1\nmode: enforce\nmx: mail.notls.test\n"
                          "max_age: 86400\n",
    "mta-sts.testing.test": "version: STSv1\nmode: testing\nmx: *.testing.test\n"
                            "max_age: 86400\n",
}

ZONE = [
    "sts.test. IN MX 10 mail.sts.test.",
    "mail.sts.test. IN A 127.0.0.1",
    "mta-sts.sts.test. IN A 127.0.0.1",
    '_mta-sts.sts.test. IN TXT "v=STSv1; id=20260101;"',
    "badmx.test. IN MX 10 mail.badmx.test.",
    "mail.badmx.test. IN A 127.0.0.1",
    "mta-sts.badmx.test. IN A 127.0.0.1",
    '_mta-sts.badmx.test. IN TXT "v=STSv1; id=1;"',
    "notls.test. IN MX 10 mail.notls.test.",
    "mail.notls.test. IN A 127.0.0.1",
    "mta-sts.notls.test. IN A 127.0.0.1",
    '_mta-sts.notls.test. IN TXT "v=STSv1; id=1;"',
    "testing.test. IN MX 10 mail.testing.test.",
    "mail.testing.test. IN A 127.0.0.1",
    "mta-sts.testing.test. IN A 127.0.0.1",
    '_mta-sts.testing.test. IN TXT "v=STSv1; id=7;"',
    "plain.test. IN MX 10 mail.plain.test.",
    "mail.plain.test. IN A 127.0.0.1",
]


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and one server certificate for every host name of HOSTS."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
        "ca.pem", "-days", "2", "-subj", "/CN=mailark test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
        "server.csr", "-subj", "/CN=mail.sts.test")
    (d / "ext.cnf").write_text("subjectAltName=" + ",".join("DNS:" + h for h in HOSTS)
                               + "\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return {"ca": str(d / "ca.pem"), "cert": str(d / "server.pem"),
            "key": str(d / "server.key")}


class _PolicyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        body = POLICIES.get(host)
        if self.path != "/.well-known/mta-sts.txt" or body is None:
            self.send_response(404)
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.server.fetches.append(host)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def policy_server(pki):
    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), _PolicyHandler)
    srv.fetches = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def unbound(tmp_path_factory):
    if shutil.which("unbound") is None and not Path("/usr/sbin/unbound").exists():
        pytest.skip("unbound not installed")
    u = Unbound(tmp_path_factory.mktemp("unbound"), ZONE)
    yield u
    u.stop()


class CertPrimary(Primary):
    """The conftest primary, with STARTTLS on the test CA's certificate."""

    def __init__(self, workdir, pki, tls):
        self.pki = pki
        super().__init__(workdir, tls=tls)

    def _make_tls(self):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.pki["cert"], self.pki["key"])
        return ctx


@pytest.fixture
def sink(tmp_path_factory, pki):
    made = []

    def factory(tls):
        p = CertPrimary(tmp_path_factory.mktemp("sink"), pki, tls).start()
        made.append(p)
        return p

    yield factory
    for p in made:
        p.stop()


def daemon_for(mailark_daemon, unbound, policy_server, pki, primary, **extra):
    conf = {"delivery.dns_resolver": unbound.address,
            "delivery.mx_port": primary.port,
            "delivery.mta_sts_port": policy_server.server_address[1],
            "delivery.tls_ca_file": pki["ca"],
            "delivery.connect_timeout": "3s",
            "queue.retry_min": "30s", "queue.retry_max": "60s"}
    conf.update(extra)
    d = mailark_daemon(conf)
    d.cli("tenant", "add", TENANT)
    d.cli("domain", "add", TENANT, "acme.test")
    d.cli("relay", "add", TENANT, "127.0.0.0/8")
    return d


def send(d, rcpt, subject):
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@acme.test>\r\n\r\n"
           "body\r\n" % (SENDER, rcpt, subject, subject.replace(" ", "-"))).encode()
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=30) as s:
        s.ehlo("client.acme.test")
        assert s.sendmail(SENDER, [rcpt], msg) == {}


def queued_reply(d, rcpt):
    """The last reply recorded for rcpt in `queue show` (the entry stays queued)."""
    entries = json.loads(d.cli("queue", "list", "--json").stdout)
    for e in entries:
        shown = d.cli("queue", "show", e["id"], "--json").stdout
        if rcpt in shown:
            return shown
    raise AssertionError("no queue entry for %s: %r" % (rcpt, entries))


# --------------------------------------------------------------------------
# tests


def test_enforce_valid_tls_delivers_over_tls(mailark_daemon, unbound, policy_server, pki,
                                             sink):
    p = sink(tls=True)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    send(d, "bob@sts.test", "sts ok")
    got = p.wait_for(1)
    assert got[0].tls, "delivered without TLS under an enforced MTA-STS policy"
    assert got[0].rcpt_tos == ["bob@sts.test"]
    d.wait_log(r"mta_sts_policy.*sts\.test.*enforce", timeout=5)
    assert "mta-sts.sts.test" in policy_server.fetches
    db = Path(d.data_dir) / "mta-sts.db"
    assert db.exists()


def test_enforce_mx_not_matching_defers(mailark_daemon, unbound, policy_server, pki, sink):
    p = sink(tls=True)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    send(d, "bob@badmx.test", "sts badmx")
    d.wait_log(r"deferred.*bob@badmx\.test.*4\.7\.5", timeout=15)
    time.sleep(0.5)
    assert p.messages == []
    shown = queued_reply(d, "bob@badmx.test")
    assert "no MX host" in shown and "MTA-STS" in shown


def test_enforce_without_starttls_defers(mailark_daemon, unbound, policy_server, pki, sink):
    p = sink(tls=False)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    send(d, "bob@notls.test", "sts notls")
    d.wait_log(r"deferred.*bob@notls\.test", timeout=15)
    time.sleep(0.5)
    assert p.messages == []
    shown = queued_reply(d, "bob@notls.test")
    assert "4.7.5 TLS required by policy (mta-sts enforce)" in shown
    assert "not offered" in shown


def test_enforce_untrusted_certificate_defers(mailark_daemon, unbound, policy_server, pki,
                                              sink, tmp_path):
    """The primary's certificate is valid, but the daemon trusts another CA."""
    p = sink(tls=True)
    other = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(tmp_path / "o.key"), "-out", str(other), "-days", "2",
                    "-subj", "/CN=other CA"], check=True, capture_output=True)
    # the policy fetch must still verify: a bundle with both would defeat the test,
    # so the policy is fetched and cached first, then the daemon restarts with
    # the other CA (a cached, unexpired policy is used when the fetch fails).
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    send(d, "bob@sts.test", "first")
    p.wait_for(1)
    d.stop()
    conf = Path(d.conf_path)
    conf.write_text(conf.read_text().replace(pki["ca"], str(other)))
    d.start()
    send(d, "carol@sts.test", "second")
    d.wait_log(r"deferred.*carol@sts\.test.*4\.7\.5", timeout=15)
    assert len(p.messages) == 1
    shown = queued_reply(d, "carol@sts.test")
    assert "certificate" in shown


def test_testing_mode_delivers_and_logs(mailark_daemon, unbound, policy_server, pki, sink):
    p = sink(tls=False)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    send(d, "bob@testing.test", "sts testing")
    got = p.wait_for(1)
    assert not got[0].tls
    d.wait_log(r"mta_sts_testing_failure.*testing\.test.*STARTTLS not offered", timeout=5)


def test_no_policy_delivers_in_the_clear(mailark_daemon, unbound, policy_server, pki, sink):
    p = sink(tls=False)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    send(d, "bob@plain.test", "plain")
    got = p.wait_for(1)
    assert not got[0].tls
    assert "mta_sts_testing_failure" not in d.log()


def _set_policy(d, key, value):
    r = d.cli("policy", "set", TENANT, key, value, check=False)
    if r.returncode != 0:
        pytest.skip("tenant policies cannot be set yet: %s" % r.stderr.strip())


def test_tenant_require_domains_defers_without_tls(mailark_daemon, unbound, policy_server,
                                                   pki, sink):
    p = sink(tls=False)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    _set_policy(d, "tls.require_domains", "plain.test")
    send(d, "bob@plain.test", "tenant requires")
    d.wait_log(r"deferred.*bob@plain\.test", timeout=15)
    time.sleep(0.5)
    assert p.messages == []
    shown = queued_reply(d, "bob@plain.test")
    assert "4.7.5 TLS required by policy (tenant policy)" in shown


def test_tenant_require_domains_other_domain_in_clear(mailark_daemon, unbound, policy_server,
                                                      pki, sink):
    p = sink(tls=False)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    _set_policy(d, "tls.require_domains", "sts.test")
    _set_policy(d, "tls.mta_sts", "no")
    send(d, "bob@plain.test", "tenant other")
    got = p.wait_for(1)
    assert not got[0].tls


def test_tenant_require_domains_verified_tls_delivers(mailark_daemon, unbound, policy_server,
                                                      pki, sink):
    p = sink(tls=True)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    _set_policy(d, "tls.require_domains", "*.plain.test, plain.test")
    send(d, "bob@plain.test", "tenant verified")
    got = p.wait_for(1)
    assert got[0].tls


def test_dlp_require_tls_defers_without_tls(mailark_daemon, unbound, policy_server, pki,
                                            sink):
    p = sink(tls=False)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p,
                   **{"hygiene.enabled": "yes"})
    for key in ("spf.enabled", "dkim.verify", "dmarc.enabled", "spam.enabled", "av.enabled"):
        _set_policy(d, key, "no")
    _set_policy(d, "dlp.keywords", "TOPSECRET")
    _set_policy(d, "dlp.action", "require_tls")
    r = d.cli("policy", "show", TENANT, check=False)
    if "require_tls" not in r.stdout:
        pytest.skip("DLP require_tls not available")
    body = "TOPSECRET numbers"
    msg = ("From: <%s>\r\nTo: <bob@plain.test>\r\nSubject: dlp\r\n\r\n%s\r\n"
           % (SENDER, body)).encode()
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=30) as s:
        s.ehlo("client.acme.test")
        s.sendmail(SENDER, ["bob@plain.test"], msg)
    try:
        d.wait_log(r"deferred.*bob@plain\.test", timeout=10)
    except AssertionError:
        if p.messages:
            pytest.skip("the hygiene pipeline did not flag the message (DLP not wired yet)")
        raise
    assert p.messages == []
    assert "4.7.5 TLS required by policy (dlp)" in queued_reply(d, "bob@plain.test")


def test_one_fetch_per_domain_for_many_messages(mailark_daemon, unbound, policy_server, pki,
                                                sink):
    p = sink(tls=True)
    d = daemon_for(mailark_daemon, unbound, policy_server, pki, p)
    before = policy_server.fetches.count("mta-sts.sts.test")
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=30) as s:
        s.ehlo("client.acme.test")
        for i in range(4):
            msg = ("From: <%s>\r\nTo: <u%d@sts.test>\r\nSubject: many %d\r\n\r\nx\r\n"
                   % (SENDER, i, i)).encode()
            assert s.sendmail(SENDER, ["u%d@sts.test" % i], msg) == {}
    got = p.wait_for(4)
    assert all(m.tls for m in got)
    assert policy_server.fetches.count("mta-sts.sts.test") - before == 1


def test_policy_cached_across_restart_and_refetched_on_new_id(
        mailark_daemon, policy_server, pki, sink, tmp_path_factory):
    """mta-sts.db keeps the policy over a restart (same TXT id: no fetch);
    a new TXT id fetches the policy again, here now in enforce mode."""
    host = "mta-sts.rotate.test"
    base = ["rotate.test. IN MX 10 mail.rotate.test.", "mail.rotate.test. IN A 127.0.0.1",
            "mta-sts.rotate.test. IN A 127.0.0.1"]
    POLICIES[host] = "version: STSv1\nmode: testing\nmx: mail.rotate.test\nmax_age: 3600\n"
    u1 = Unbound(tmp_path_factory.mktemp("ub1"), base + [
        '_mta-sts.rotate.test. IN TXT "v=STSv1; id=one;"'])
    u2 = None
    try:
        p = sink(tls=False)
        d = daemon_for(mailark_daemon, u1, policy_server, pki, p)
        send(d, "a@rotate.test", "rotate one")
        p.wait_for(1)
        assert policy_server.fetches.count(host) == 1
        d.stop()
        d.start()
        send(d, "b@rotate.test", "rotate two")
        p.wait_for(2)
        assert policy_server.fetches.count(host) == 1, "same id: the cached policy is used"
        POLICIES[host] = POLICIES[host].replace("testing", "enforce")
        u2 = Unbound(tmp_path_factory.mktemp("ub2"), base + [
            '_mta-sts.rotate.test. IN TXT "v=STSv1; id=two;"'])
        d.stop()
        conf = Path(d.conf_path)
        conf.write_text(conf.read_text().replace(u1.address, u2.address))
        d.start()
        send(d, "c@rotate.test", "rotate three")
        d.wait_log(r"deferred.*c@rotate\.test.*4\.7\.5", timeout=15)
        assert policy_server.fetches.count(host) == 2
        assert len(p.messages) == 2
    finally:
        POLICIES.pop(host, None)
        u1.stop()
        if u2 is not None:
            u2.stop()
