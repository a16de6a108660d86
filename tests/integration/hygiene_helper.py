"""Helpers shared by the hygiene integration tests.

start(mailark_daemon, smtp_primary, ...) -> (daemon, primary)
    A daemon with the hygiene pipeline on and tenant acme (domain
    acme.test) whose inbound mail is routed to an aiosmtpd primary and/or
    whose outbound mail is relayed from 127.0.0.1 through the primary as
    smarthost; the given policy keys set for acme, in order.
add_tenant(d, port=None, ...), set_policy(d, settings, tenant="acme")
    The same steps for a daemon the test started itself.
send(d, data, ...) -> (code, reply text)
    One message over SMTP; MAIL and RCPT must be accepted, the DATA reply is
    returned whatever it is.
send_queued(d, data, ...) -> queue id
    The same for a message that must be accepted.
quarantined(d, *args) -> the items of `quarantine list acme ARGS`.
header_block(data) -> (header block with its last CRLF, body)
strip_trace(data, names=TRACE) -> (the trace fields on top, the rest)
hygiene_header(data) -> the unfolded X-Mailark-Hygiene line ("" if none).
dns_and_daemon_fixtures(records) -> (dns, daemon)
    pytest fixtures for a test module: one unbound serving `records` for the
    module, and a mailark_daemon factory with the pipeline on, that DNS and
    fast retries (a module binds them: `dns, daemon = dns_and_daemon_fixtures(...)`).
"""

import json
import re
import smtplib

import pytest

from unbound_helper import Unbound

QID = re.compile(r"queued as ([0-9A-Z]{16})")
FAST_RETRY = {"queue.retry_min": "1s", "queue.retry_max": "2s"}
TRACE = (b"received", b"return-path", b"x-mailark-hygiene", b"authentication-results",
         b"dkim-signature", b"delivered-to")


def add_tenant(d, port=None, relay=False, domains=("acme.test",), tenant="acme"):
    """Adds the tenant and its domains; port: route them to 127.0.0.1:port;
    relay: the tenant may relay from 127.0.0.1."""
    d.cli("tenant", "add", tenant)
    for domain in domains:
        d.cli("domain", "add", tenant, domain)
    if port is not None:
        for domain in domains:
            d.cli("route", "set", domain, "smtp://127.0.0.1:%d" % port)
    if relay:
        d.cli("relay", "add", tenant, "127.0.0.1/32")


def set_policy(d, settings, tenant="acme"):
    """settings: a dict or (key, value) pairs, set in order."""
    items = settings.items() if isinstance(settings, dict) else settings
    for key, value in items:
        d.cli("policy", "set", tenant, key, value)


def start(mailark_daemon, smtp_primary, policy=(), conf=None, route=True, smarthost=False,
          relay=False, domains=("acme.test",)):
    """route: acme's domains routed to the primary; smarthost: the primary is
    also the smarthost; relay: acme may relay from 127.0.0.1.  conf: more
    daemon keys."""
    p = smtp_primary()
    merged = {"hygiene.enabled": "yes"}
    if smarthost:
        merged["delivery.smarthost"] = "127.0.0.1:%d" % p.port
    merged.update(conf or {})
    d = mailark_daemon(merged)
    add_tenant(d, p.port if route else None, relay=relay, domains=domains)
    set_policy(d, policy)
    return d, p


def send(d, data, sender="alice@beta.test", rcpts=("bob@acme.test",), helo="client.test",
         timeout=60):
    """rcpts: one address or several."""
    if isinstance(rcpts, str):
        rcpts = (rcpts,)
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=timeout) as s:
        s.ehlo(helo)
        code, reply = s.mail(sender)
        assert code == 250, reply
        for rcpt in rcpts:
            code, reply = s.rcpt(rcpt)
            assert code == 250, reply
        try:
            code, reply = s.data(data)
        except smtplib.SMTPDataError as e:
            code, reply = e.smtp_code, e.smtp_error
    return code, reply.decode() if isinstance(reply, bytes) else reply


def send_queued(d, data, **kw):
    code, reply = send(d, data, **kw)
    assert code == 250, reply
    return QID.search(reply).group(1)


def quarantined(d, *args):
    """args: more `quarantine list acme` arguments (a recipient)."""
    items = json.loads(d.cli("quarantine", "list", "acme", *args, "--json").stdout)
    return items if isinstance(items, list) else items.get("items", [])


def header_block(data):
    i = data.find(b"\r\n\r\n")
    return data[:i + 2], data[i + 4:]


def strip_trace(data, names=TRACE):
    """names: lower-case field names of the trace fields mailark puts on top."""
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return data[:pos], data[pos:]
        line = data[pos:end]
        if pos > 0 and line[:1] in (b" ", b"\t"):
            pos = end + 2
            continue
        name = line.split(b":", 1)[0].strip().lower()
        if b":" not in line or name not in names:
            return data[:pos], data[pos:]
        pos = end + 2


def hygiene_header(data):
    head = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"x-mailark-hygiene:"):
            return line.decode()
    return ""


def dns_and_daemon_fixtures(records):
    @pytest.fixture(scope="module")
    def dns(tmp_path_factory):
        """One unbound for the module: the stages' lookups (SPF, DNSBL) of
        *.test names are answered at once instead of by the system resolver."""
        u = Unbound(tmp_path_factory.mktemp("dns"), records)
        yield u
        u.stop()

    @pytest.fixture
    def daemon(mailark_daemon, dns):
        """mailark_daemon with the pipeline on and the module's DNS."""
        def factory(**conf):
            merged = dict(FAST_RETRY)
            merged.update({"hygiene.enabled": "yes", "delivery.dns_resolver": dns.address})
            merged.update(conf)
            return mailark_daemon(merged)
        return factory

    return dns, daemon
