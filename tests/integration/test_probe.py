"""Route health probes and continuity alerts, against the real daemon.

Probes: a tenant route to an aiosmtpd primary is probed every second; the
primary stops -> "probe_failed ... connect: Connection refused" and the
route is down (continuity.status) within ~2 intervals; it starts again ->
the route is up.  Misbehaving servers (421 banner, 5xx to EHLO, silence)
give the right reason.  Alerts: a route going down sends the tenant's
alert email through the smarthost (never the tenant's primary) and POSTs
the event to a webhook, which is retried after 5xx (500, 500, 200 -> three
POSTs).
"""

import email
import email.policy
import json
import re
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port
from test_api import control

FAST_PROBE = {"continuity.probe_interval": "1s", "continuity.probe_failures": "2",
              "continuity.probe_timeout": "2s"}


def add_tenant(d, port, tenant="acme", domain="acme.test"):
    d.cli("tenant", "add", tenant)
    d.cli("domain", "add", tenant, domain)
    d.cli("route", "set", domain, "smtp://127.0.0.1:%d" % port)


def route_state(d, tenant, route):
    st = control(d, "continuity.status", tenant=tenant)
    for r in st.get("routes", []):
        if r["route"] == route:
            return r
    return None


def wait_route_state(d, tenant, route, want, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = route_state(d, tenant, route)
        if last is not None and last["state"] == want:
            return last
        time.sleep(0.1)
    raise AssertionError("route %s of %s not %s after %ss: %r" % (route, tenant, want, timeout,
                                                                 last))


def wait_metric(d, name, want, timeout=10):
    """Waits until the gauge `name` on /metrics reads `want` (set each second)."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        url = "http://127.0.0.1:%d/metrics" % d.http_port
        with urllib.request.urlopen(url, timeout=10) as r:
            m = re.search(r"^%s (\d+)$" % name, r.read().decode(), re.M)
        value = int(m.group(1)) if m else None
        if value == want:
            return
        time.sleep(0.2)
    raise AssertionError("%s is %r, not %r" % (name, value, want))


# --------------------------------------------------------------------------
# a scripted SMTP server for the failure reasons


class ScriptedSmtp:
    """Accepts connections and answers per mode: 'banner421', 'ehlo550', 'silent'."""

    def __init__(self, mode):
        self.mode = mode
        self.port = free_port()
        self.lines = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.stopped = False
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.mode == "silent":
                time.sleep(30)
                return
            if self.mode == "banner421":
                c.sendall(b"421-too busy\r\n421 come back later\r\n")
                return
            c.sendall(b"220 scripted ESMTP\r\n")
            f = c.makefile("rb")
            line = f.readline()
            self.lines.append(line)
            c.sendall(b"550 5.7.1 no EHLO for you\r\n")
            line = f.readline()
            self.lines.append(line)
            if line.upper().startswith(b"QUIT"):
                c.sendall(b"221 bye\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# a webhook receiver


class Hooks:
    """http.server on 127.0.0.1 answering POSTs with scripted statuses."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests = []
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.cond:
                    i = len(outer.requests)
                    outer.requests.append((time.monotonic(), self.path, dict(self.headers),
                                           body))
                    outer.cond.notify_all()
                status = outer.statuses[i] if i < len(outer.statuses) else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("webhook got %d request(s), expected %d"
                                         % (len(self.requests), n))
                self.cond.wait(left)
            return list(self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------
# probes


def test_route_down_then_up(mailark_daemon, smtp_primary):
    p = smtp_primary()
    d = mailark_daemon(FAST_PROBE)
    add_tenant(d, p.port)
    route = "127.0.0.1:%d" % p.port
    d.wait_log(r"probe_ok tenant=acme route=%s" % re.escape(route), timeout=5)
    assert wait_route_state(d, "acme", route, "up", 5)["failures"] == 0
    # The probe spoke EHLO and QUIT, sent no mail.
    assert p.messages == []

    since = len(d.log())
    p.stop()
    d.wait_log(r"probe_failed tenant=acme route=%s why=\"?connect: Connection refused"
               % re.escape(route), timeout=15, since=since)
    # probe_failures 2 at 1 s: down after about two intervals (the time is
    # measured by bench/continuity, not asserted here).
    r = wait_route_state(d, "acme", route, "down", 15)
    assert "connect" in (r.get("last_error") or "")
    wait_metric(d, "mailark_continuity_routes_down", 1)

    p.start()
    wait_route_state(d, "acme", route, "up", 15)
    wait_metric(d, "mailark_continuity_routes_down", 0)


def test_one_probe_per_tenant_route(mailark_daemon, smtp_primary):
    p = smtp_primary()
    d = mailark_daemon(FAST_PROBE)
    add_tenant(d, p.port)
    d.cli("domain", "add", "acme", "acme2.test")
    d.cli("route", "set", "acme2.test", "smtp://127.0.0.1:%d" % p.port)
    d.cli("domain", "add", "acme", "journal.test")
    d.cli("route", "set", "journal.test", "archive:")
    # The round after the one that may have started before the last change.
    first = d.wait_log(r"probe_round routes=", timeout=5, since=len(d.log()))
    m = d.wait_log(r"probe_round routes=(\d+)", timeout=5, since=first.end())
    # Two domains share one route; the archive route is not probed.
    assert m.group(1) == "1"


@pytest.mark.parametrize("mode,why", [
    ("banner421", r"banner: 421 too busy come back later"),
    ("ehlo550", r"ehlo: 550 5\.7\.1 no EHLO for you"),
    ("silent", r"timeout after 2 s in banner"),
])
def test_failure_reasons(mailark_daemon, mode, why):
    srv = ScriptedSmtp(mode)
    try:
        d = mailark_daemon(FAST_PROBE)
        add_tenant(d, srv.port)
        route = "127.0.0.1:%d" % srv.port
        d.wait_log(r'probe_failed tenant=acme route=%s why="%s"' % (re.escape(route), why),
                   timeout=20)
        wait_route_state(d, "acme", route, "down", 20)
        if mode == "ehlo550":
            # probes may overlap (a slow one still open when the next starts),
            # so the lines of several connections interleave: every probe
            # that spoke sent EHLO first
            assert any(line.startswith(b"EHLO ") for line in srv.lines), srv.lines
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# alerts


def test_alert_email_by_smarthost_and_webhook_retried(mailark_daemon, smtp_primary):
    tenant_primary = smtp_primary()
    smarthost = smtp_primary()
    hooks = Hooks(statuses=[500, 500, 200])
    try:
        d = mailark_daemon(FAST_PROBE, **{"delivery.smarthost": "127.0.0.1:%d" % smarthost.port,
                                          "queue.retry_min": "1s"})
        add_tenant(d, tenant_primary.port)
        control(d, "continuity.set", tenant="acme", key="alert_addresses",
                value="ops@example.net,pager@example.org")
        control(d, "continuity.set", tenant="acme", key="webhook",
                value="http://127.0.0.1:%d/hook/abc" % hooks.port)
        route = "127.0.0.1:%d" % tenant_primary.port
        wait_route_state(d, "acme", route, "up", 5)

        tenant_primary.stop()
        wait_route_state(d, "acme", route, "down", 5)

        # The email leaves through the smarthost, never the tenant's route.
        msgs = smarthost.wait_for(1, timeout=20)
        got = msgs[0]
        assert got.mail_from in ("", "<>")   # the null sender
        assert sorted(got.rcpt_tos) == ["ops@example.net", "pager@example.org"]
        m = email.message_from_bytes(got.data, policy=email.policy.default)
        assert m["Subject"] == "[mailark] acme: primary server down"
        assert m["Auto-Submitted"] == "auto-generated"
        assert m["From"].addresses[0].addr_spec.startswith("postmaster@")
        assert m["Message-ID"] and m["Date"]
        text = m.get_content()
        assert "Tenant:  acme" in text and ("Route:   %s" % route) in text
        assert "mailark continuity start acme" in text
        assert tenant_primary.messages == []

        # The webhook: 500, 500, then 200 -> three POSTs 5 s apart, one event.
        reqs = hooks.wait(3, timeout=25)
        bodies = [json.loads(r[3]) for r in reqs]
        downs = [b for b in bodies if b["event"] == "route.down"]
        assert len(downs) == 3, bodies
        b = downs[0]
        assert b["tenant"] == "acme" and b["route"] == route and b["actor"] == "auto"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b["at"])
        assert "outage_id" in b and "detail" in b
        for _, path, headers, _ in reqs[:3]:
            assert path == "/hook/abc"
            assert headers.get("Content-Type") == "application/json"
            assert headers.get("User-Agent") == "mailark"
        assert reqs[1][0] - reqs[0][0] > 4.5 and reqs[2][0] - reqs[1][0] > 4.5
        d.wait_log(r"alert_webhook result=ok tenant=acme event=route.down .*tries=3")
        # Our lines never show the URL's path (it often holds a secret).
        ours = [l for l in d.log().splitlines() if "alert_webhook" in l]
        assert ours and not any("/hook/abc" in l for l in ours)
    finally:
        hooks.stop()
