"""Continuity commands: who may run them (the control authorisation through
the HTTP API), the CLI's output and errors (`mailark continuity ...`), the
API routes and their OpenAPI description, and that secrets set through
them never come back nor reach the log."""

import itertools
import json
import time

import pytest

from test_api import Api, control
from test_probe import wait_metric

_counter = itertools.count(1)
NOT_FOUND = {"error": {"code": "not_found", "message": "not found"}}
T = "/api/v1/tenants/{t}/continuity"

# route -> (method, path, body, {role: (status on own tenant, on the other)}).
# Reads are the auditor's; changes the admin's; another tenant is 404.
READ = {"operator": (200, 200), "admin": (200, 404), "auditor": (200, 404),
        "user": (403, 404), "none": (401, 401)}
WRITE_REFUSED = {"auditor": (403, 404), "user": (403, 404), "none": (401, 401),
                 "admin": (None, 404)}
ROUTES = {
    "continuity.status": ("GET", T, None, READ),
    "continuity.settings": ("GET", T + "/settings", None, READ),
    "continuity.start": ("POST", T + "/start", {"reason": "matrix"}, WRITE_REFUSED),
    "continuity.stop": ("POST", T + "/stop", None, WRITE_REFUSED),
    "continuity.set": ("PUT", T + "/settings/window_days", {"value": "30"}, WRITE_REFUSED),
    "continuity.drill.start": ("POST", T + "/drill/start", {"users": "user@{t}.example"},
                               WRITE_REFUSED),
    "continuity.drill.stop": ("POST", T + "/drill/stop", None, WRITE_REFUSED),
    "continuity.report": ("GET", T + "/report", None,
                          {"user": (403, 404), "none": (401, 401), "admin": (None, 404),
                           "auditor": (None, 404)}),
    "continuity.drill.report": ("GET", T + "/drill/report", None,
                                {"user": (403, 404), "none": (401, 401),
                                 "admin": (None, 404), "auditor": (None, 404)}),
}


class World:
    """Tenants 'own' and 'other' (dead routes); admin, auditor, user of 'own'."""

    def __init__(self, d):
        self.d = d
        for t in ("own", "other"):
            control(d, "tenant.add", name=t)
            control(d, "domain.add", tenant=t, domain=t + ".example")
            control(d, "route.set", domain=t + ".example", url="smtp://127.0.0.1:1")
        self.tokens = {"operator": control(d, "token.create", name="op")["token"], "none": None}
        for role in ("admin", "auditor", "user"):
            addr = "%s@own.example" % role
            control(d, "user.add", tenant="own", address=addr, role=role)
            self.tokens[role] = control(d, "token.create", name=role, user=addr)["token"]
        control(d, "user.add", tenant="other", address="user@other.example", role="user")

    def api(self, role):
        return Api(self.d.http_port, self.tokens[role])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from conftest import Daemon
    d = Daemon(tmp_path_factory.mktemp("continuity-cli"),
               {"queue.retry_min": "1h", "continuity.probe_interval": "1h"})
    d.init()
    d.start()
    try:
        yield World(d)
    finally:
        problems = d.finish()
        assert not problems, "\n\n".join(problems)


def _fill(v, t):
    if isinstance(v, dict):
        return {k: _fill(x, t) for k, x in v.items()}
    return v.format(t=t) if isinstance(v, str) else v


def test_authorisation_matrix(world):
    failures = []
    for name, (method, path, body, table) in ROUTES.items():
        for role, wants in table.items():
            for which, tenant in enumerate(("own", "other")):
                want = wants[which]
                if want is None:
                    continue          # allowed: the outcome is the command's
                st, js, _ = world.api(role).request(method, _fill(path, tenant),
                                                    body=_fill(body, tenant))
                if st != want:
                    failures.append("%s as %s on %s: %d, expected %d (%s)"
                                    % (name, role, tenant, st, want, js))
                elif st == 404 and js != NOT_FOUND:
                    failures.append("%s as %s on %s: 404 tells more than 'not found': %s"
                                    % (name, role, tenant, js))
    assert not failures, "\n".join(failures)
    # nothing changed through the refused calls
    assert control(world.d, "continuity.status", tenant="own")["state"] == "normal"
    assert control(world.d, "continuity.status", tenant="other")["state"] == "normal"


def test_refused_changes_are_audited_as_denied(world):
    st, _, _ = world.api("auditor").request("POST", "/api/v1/tenants/own/continuity/start",
                                             body={"reason": "denied-check"})
    assert st == 403
    entries = control(world.d, "audit.list", tenant="own", limit=200)
    items = entries["items"] if isinstance(entries, dict) else entries
    denied = [e for e in items if e.get("action") == "continuity.start"
              and e.get("outcome") == "denied" and e.get("actor") == "auditor@own.example"]
    assert denied, items[:5]


def probed_status(world, tenant="own", role="auditor"):
    """Status once a probe round has seen the tenant's (dead) route."""
    control(world.d, "continuity.probe")
    deadline = time.time() + 15
    while True:
        st, js, r = world.api(role).get("/api/v1/tenants/%s/continuity" % tenant)
        assert st == 200, js
        if any(rt["route"] == "127.0.0.1:1" for rt in js["routes"]) or time.time() > deadline:
            return js, r
        time.sleep(0.2)


def test_status_and_settings_over_the_api(world):
    js, r = probed_status(world)
    assert r.getheader("Content-Type").startswith("application/json")
    assert js["tenant"] == "own" and js["state"] == "normal"
    routes = [rt for rt in js["routes"] if rt["route"] == "127.0.0.1:1"]
    assert routes and routes[0]["failures"] >= 1 and routes[0]["last_error"], js
    st, js, _ = world.api("auditor").get("/api/v1/tenants/own/continuity/settings")
    assert st == 200
    assert js["mode"] == "manual" and js["failback"] == "auto" and js["sent_copy"] == "header"
    assert str(js["window_days"]) == "30" and str(js["failback_after"]) == "300"
    # an unknown tenant is not found for the operator too
    st, js, _ = world.api("operator").get("/api/v1/tenants/nosuch/continuity")
    assert st == 404


def test_openapi_lists_the_continuity_routes(world):
    st, doc, _ = Api(world.d.http_port).request("GET", "/api/v1/openapi.json", auth=False)
    assert st == 200
    paths = doc["paths"]
    t = "/api/v1/tenants/{tenant}/continuity"
    assert paths[t]["get"]["operationId"] == "continuity.status"
    assert paths[t + "/start"]["post"]["operationId"] == "continuity.start"
    assert paths[t + "/settings/{key}"]["put"]["requestBody"]["content"][
        "application/json"]["schema"]["required"] == ["value"]
    params = {p["name"]: p for p in paths[t + "/report"]["get"]["parameters"]}
    assert params["id"]["in"] == "query" and params["id"]["schema"]["type"] == "integer"
    assert paths[t + "/drill/start"]["post"]["operationId"] == "continuity.drill.start"


# ---------------------------------------------------------------- the CLI

def test_cli_status_lines(world):
    probed_status(world)
    p = world.d.cli("continuity", "status", "own")
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["tenant:", "own"]
    assert lines[1].split() == ["state:", "normal"]
    route = [ln for ln in lines if "127.0.0.1:1" in ln]
    assert route and route[0].startswith("  "), p.stdout
    js = json.loads(world.d.cli("continuity", "status", "own", "--json").stdout)
    assert js["state"] == "normal" and js["tenant"] == "own"


def test_cli_settings_and_set(world):
    d = world.d
    out = d.cli("continuity", "settings", "own").stdout
    rows = dict(ln.split(None, 1) if len(ln.split(None, 1)) == 2 else (ln.strip(), "")
                for ln in out.splitlines())
    assert rows["mode"] == "manual" and rows["sent_copy"] == "header"
    assert rows["window_days"] == "30"
    p = d.cli("continuity", "set", "own", "window_days", "7")
    assert p.stdout.strip() == "own: window_days = 7"
    assert str(control(d, "continuity.settings", tenant="own")["window_days"]) == "7"
    p = d.cli("continuity", "set", "own", "mode", "auto")
    assert "mode = auto" in p.stdout
    d.cli("continuity", "set", "own", "mode", "manual")
    d.cli("continuity", "set", "own", "window_days", "30")


@pytest.mark.parametrize("key,value,mentions", [
    ("colour", "blue", "colour"),
    ("mode", "sometimes", "mode"),
    ("window_days", "0", "window_days"),
    ("window_days", "many", "window_days"),
    ("sent_copy", "fax", "sent_copy"),
])
def test_cli_set_refuses_bad_keys_and_values(world, key, value, mentions):
    before = control(world.d, "continuity.settings", tenant="own")
    p = world.d.cli("continuity", "set", "own", key, value, check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stderr.startswith("mailark: ") and mentions in p.stderr, p.stderr
    assert p.stdout == ""
    assert control(world.d, "continuity.settings", tenant="own") == before


def test_cli_usage_errors(world):
    d = world.d
    for args in (("continuity", "set", "own", "mode"), ("continuity", "drill"),
                 ("continuity", "status"), ("continuity", "status", "own", "--bogus"),
                 ("continuity", "report", "own", "--id")):
        p = d.cli(*args, check=False)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "usage: mailark continuity" in p.stderr
    p = d.cli("continuity", "drill", check=False)
    assert "start, stop or report" in p.stderr
    p = d.cli("continuity", "report", "own", "--id", "x", check=False)
    assert p.returncode == 1 and "id" in p.stderr
    p = d.cli("continuity", "status", "nosuch", check=False)
    assert p.returncode == 1 and "nosuch" in p.stderr
    help_text = d.cli("continuity", "--help").stdout
    assert "mailark continuity drill start|stop|report TENANT" in help_text
    assert "continuity" in d.cli("--help").stdout


def test_secret_setting_is_never_shown_nor_logged(world):
    d = world.d
    secret = "s3cret-%d-Pw" % next(_counter)
    d.cli("continuity", "set", "own", "imap_password", secret)
    shown = d.cli("continuity", "settings", "own").stdout
    assert secret not in shown and "imap_password" in shown
    js = json.loads(d.cli("continuity", "settings", "own", "--json").stdout)
    assert js["imap_password"] == "set"
    st, js, _ = world.api("auditor").get("/api/v1/tenants/own/continuity/settings")
    assert st == 200 and secret not in json.dumps(js)
    st, js, _ = world.api("auditor").get("/api/v1/tenants/own/continuity")
    assert st == 200 and secret not in json.dumps(js)
    assert secret not in d.log()
    d.cli("continuity", "set", "own", "imap_password", "")
    assert control(d, "continuity.settings", tenant="own")["imap_password"] == ""
    # A webhook URL often carries a token: the admin log line masks it too.
    hook = "https://hooks.example/%s-tok" % secret
    d.cli("continuity", "set", "own", "webhook", hook)
    assert hook not in d.log()
    d.cli("continuity", "set", "own", "webhook", "")


def test_api_sets_and_clears_a_text_setting(world):
    admin = world.api("admin")
    path = "/api/v1/tenants/own/continuity/settings/alert_addresses"
    st, js, _ = admin.request("PUT", path, {"value": "ops@own.example,pager@own.example"})
    assert st == 200 and js["alert_addresses"] == "ops@own.example,pager@own.example", js
    st, js, _ = admin.request("PUT", path, {"value": ""})
    assert st == 200 and js["alert_addresses"] == "", js
    st, js, _ = admin.request("PUT", path, {})
    assert st == 400, js
    st, js, _ = admin.request("PUT", "/api/v1/tenants/own/continuity/settings/nokey",
                              {"value": "x"})
    assert st == 400 and "nokey" in js["error"]["message"], js


def test_cli_probe_is_for_operators(world):
    p = world.d.cli("continuity", "probe")
    assert "probe round" in p.stdout


# ------------------------------------------------ transitions (core needed)

def test_admin_starts_and_stops_over_the_api(world):
    d, admin = world.d, world.api("admin")
    st, js, _ = admin.post("/api/v1/tenants/own/continuity/start", {"reason": "api test"})
    assert st == 200, js
    assert js["state"] == "active" and js["tenant"] == "own"
    st, js, _ = admin.post("/api/v1/tenants/own/continuity/start", {"reason": "twice"})
    assert st in (400, 409), js           # already active
    p = d.cli("continuity", "status", "own")
    assert p.stdout.splitlines()[1].split() == ["state:", "active"]
    wait_metric(d, "mailark_continuity_tenants", 1)
    st, js, _ = admin.post("/api/v1/tenants/own/continuity/stop")
    assert st == 200 and js["state"] in ("failing_back", "normal"), js
    st, rep, _ = world.api("auditor").get("/api/v1/tenants/own/continuity/report")
    assert st == 200 and rep["kind"] == "outage" and rep["reason"] == "api test"
    assert rep["reconciles"] is True
    assert rep["accepted"] == rep["delivered"] + rep["pending"] + rep["failed"]
    st, again, _ = world.api("auditor").get("/api/v1/tenants/own/continuity/report?id=%d"
                                             % rep["id"])
    assert st == 200 and again["id"] == rep["id"]
    st, js, _ = world.api("auditor").get("/api/v1/tenants/own/continuity/report?id=999999")
    assert st == 404, js
    st, js, _ = world.api("auditor").get("/api/v1/tenants/own/continuity/report?id=abc")
    assert st == 400, js
    out = d.cli("continuity", "report", "own").stdout
    assert "reconciles: yes" in out and "accepted:" in out
    assert "outage %d of own" % rep["id"] in out and "(api test)" in out
    items = control(d, "audit.list", tenant="own", limit=200)
    items = items["items"] if isinstance(items, dict) else items
    ok = {(e.get("action"), e.get("outcome")) for e in items
          if e.get("actor") == "admin@own.example"}
    assert ("continuity.start", "ok") in ok and ("continuity.stop", "ok") in ok, items[:6]
    wait_metric(d, "mailark_continuity_tenants", 0)


def test_drill_through_the_cli(world):
    d, op = world.d, world.api("operator")
    p = d.cli("continuity", "drill", "start", "other", "--users", "user@other.example")
    assert "drill started" in p.stdout and "user@other.example" in p.stdout
    st, js, _ = op.get("/api/v1/tenants/other/continuity")
    assert st == 200 and js["drill"] is not None and js["state"] == "normal"
    d.cli("continuity", "drill", "stop", "other")
    rep = json.loads(d.cli("continuity", "drill", "report", "other", "--json").stdout)
    assert rep["kind"] == "drill" and rep["reconciles"] is True
    assert [u["address"] for u in rep["users"]] == ["user@other.example"]
    p = d.cli("continuity", "drill", "start", "other", "--users", "not-an-address",
              check=False)
    assert p.returncode == 1 and "not-an-address" in p.stderr
