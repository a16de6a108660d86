"""The HTTP API (/api/v1): CRUD through the same handlers as the CLI, JSON
errors, strict bodies, pagination, session cookie + CSRF, and an OpenAPI
document that names every route the server answers."""

import http.client
import json

import pytest

from conftest import control_request

# Every route the brief asks for: (method, path with sample values).  The
# completeness test probes each one and fails if the server answers a
# route that the OpenAPI document does not describe.
CANDIDATE_ROUTES = [
    ("GET", "/api/v1/tenants"), ("POST", "/api/v1/tenants"),
    ("GET", "/api/v1/tenants/x"), ("DELETE", "/api/v1/tenants/x"),
    ("GET", "/api/v1/tenants/x/domains"), ("POST", "/api/v1/tenants/x/domains"),
    ("DELETE", "/api/v1/tenants/x/domains/d.example"),
    ("GET", "/api/v1/routes"), ("PUT", "/api/v1/routes/d.example"),
    ("GET", "/api/v1/tenants/x/relays"), ("POST", "/api/v1/tenants/x/relays"),
    ("DELETE", "/api/v1/tenants/x/relays/10.0.0.0%2F8"),
    ("GET", "/api/v1/queue"), ("GET", "/api/v1/queue/abc"), ("DELETE", "/api/v1/queue/abc"),
    ("POST", "/api/v1/queue/abc/hold"), ("POST", "/api/v1/queue/abc/release"),
    ("POST", "/api/v1/queue/flush"),
    ("GET", "/api/v1/tenants/x/users"), ("POST", "/api/v1/tenants/x/users"),
    ("GET", "/api/v1/tenants/x/users/a@x.example"),
    ("POST", "/api/v1/tenants/x/users/a@x.example/disable"),
    ("POST", "/api/v1/tenants/x/users/a@x.example/enable"),
    ("GET", "/api/v1/tokens"), ("POST", "/api/v1/tokens"), ("DELETE", "/api/v1/tokens/abc"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/tenants/x/groups"), ("POST", "/api/v1/tenants/x/groups"),
    ("DELETE", "/api/v1/tenants/x/groups/g"),
    ("POST", "/api/v1/tenants/x/groups/g/members"),
    ("DELETE", "/api/v1/tenants/x/groups/g/members/a@x.example"),
    ("PUT", "/api/v1/tenants/x/users/a@x.example/password"),
    ("GET", "/api/v1/tenants/x/directory"), ("PUT", "/api/v1/tenants/x/directory"),
    ("POST", "/api/v1/tenants/x/directory/sync"),
    ("POST", "/api/v1/session"), ("GET", "/api/v1/session"), ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/openapi.json"),
    # not routes: must stay "no such API route"
    ("GET", "/api/v1/nothing"), ("GET", "/api/v2/tenants"), ("PATCH", "/api/v1/tenants/x"),
]


def control(d, cmd, **args):
    """One request on the control socket, as the local operator; its result."""
    reply = control_request(d, cmd, **args)
    assert reply["ok"], reply
    return reply["result"]


def operator_token(d):
    return control(d, "token.create", name="tests")["token"]


class Api:
    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, raw=None, headers=None, auth=True):
        h = {}
        if auth and self.token:
            h["Authorization"] = "Bearer " + self.token
        if auth and self.cookie:
            h["Cookie"] = self.cookie
        if auth and self.csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read()
            js = json.loads(text) if text else None
            return r.status, js, r
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)


@pytest.fixture
def api(mailark_daemon):
    d = mailark_daemon()
    return d, Api(d.http_port, operator_token(d))


def err_code(js):
    return js["error"]["code"]


def test_tenant_domain_relay_route_crud(api):
    d, a = api
    st, js, _ = a.post("/api/v1/tenants", {"name": "acme"})
    assert st == 201 and js["name"] == "acme" and js["region"] == "default"
    st, js, _ = a.post("/api/v1/tenants", {"name": "acme"})
    assert st == 409 and err_code(js) == "conflict"
    st, js, _ = a.post("/api/v1/tenants/acme/domains", {"domain": "acme.example"})
    assert st == 201 and js == {"tenant": "acme", "domain": "acme.example"}
    st, js, _ = a.request("PUT", "/api/v1/routes/acme.example",
                          {"url": "smtp://127.0.0.1:2525"})
    assert st == 200 and js["route"].startswith("smtp://127.0.0.1:2525")
    st, js, _ = a.get("/api/v1/routes")
    assert st == 200 and [x["domain"] for x in js["items"]] == ["acme.example"]
    st, js, _ = a.post("/api/v1/tenants/acme/relays", {"cidr": "192.0.2.0/24"})
    assert st == 201 and js["cidr"] == "192.0.2.0/24"
    # the same handlers as the CLI: the CLI sees what the API made
    out = d.cli("tenant", "show", "acme").stdout
    assert "acme.example" in out and "192.0.2.0/24" in out
    st, js, _ = a.get("/api/v1/tenants/acme")
    assert st == 200 and js["domains"][0]["domain"] == "acme.example"
    st, js, _ = a.request("DELETE", "/api/v1/tenants/acme/relays/192.0.2.0%2F24")
    assert st == 200, js
    st, js, _ = a.get("/api/v1/tenants/acme/relays")
    assert st == 200 and js["items"] == []
    st, js, _ = a.request("DELETE", "/api/v1/tenants/acme")
    assert st == 409 and err_code(js) == "conflict"       # it still has a domain
    st, js, _ = a.request("DELETE", "/api/v1/tenants/acme/domains/acme.example")
    assert st == 200
    st, js, _ = a.request("DELETE", "/api/v1/tenants/acme")
    assert st == 200
    st, js, _ = a.get("/api/v1/tenants/acme")
    assert st == 404 and err_code(js) == "not_found"


def test_users_tokens_and_audit(api):
    d, a = api
    assert a.post("/api/v1/tenants", {"name": "acme"})[0] == 201
    assert a.post("/api/v1/tenants/acme/domains", {"domain": "acme.example"})[0] == 201
    st, js, _ = a.post("/api/v1/tenants/acme/users",
                       {"address": "ann@acme.example", "role": "admin", "password": "pw-123456789"})
    assert st == 201, js
    st, js, _ = a.get("/api/v1/tenants/acme/users/ann@acme.example")
    assert st == 200 and js["address"] == "ann@acme.example"
    st, js, _ = a.post("/api/v1/tenants/acme/users/ann@acme.example/disable")
    assert st == 200
    st, js, _ = a.get("/api/v1/tenants/acme/users")
    assert st == 200 and js["items"][0]["status"] == "disabled"
    assert a.post("/api/v1/tenants/acme/users/ann@acme.example/enable")[0] == 200
    st, js, _ = a.post("/api/v1/tokens", {"name": "ci", "user": "ann@acme.example"})
    assert st == 201 and js["token"].startswith("mk_")
    ann = Api(a.port, js["token"])
    st, js2, _ = ann.get("/api/v1/tenants/acme/domains")
    assert st == 200 and js2["items"][0]["domain"] == "acme.example"
    st, _, _ = a.request("DELETE", "/api/v1/tokens/" + js["id"])
    assert st == 200
    st, js2, r = ann.get("/api/v1/tenants/acme/domains")
    assert st == 401 and err_code(js2) == "unauthorized"
    st, js, _ = a.get("/api/v1/audit?tenant=acme")
    assert st == 200
    actions = [e["action"] for e in js["items"]]
    assert "domain.add" in actions and "user.add" in actions


def test_no_credentials_is_401_with_bearer_challenge(api):
    d, a = api
    for method, path in [("GET", "/api/v1/tenants"), ("POST", "/api/v1/tenants"),
                         ("GET", "/api/v1/queue")]:
        st, js, r = a.request(method, path, body={"name": "x"} if method == "POST" else None,
                              auth=False)
        assert st == 401 and err_code(js) == "unauthorized"
        assert r.getheader("WWW-Authenticate") == "Bearer"
    st, js, _ = a.get("/api/v1/tenants", auth=False, headers={"Authorization": "Bearer mk_nope"})
    assert st == 401
    st, js, _ = a.get("/api/v1/tenants", auth=False, headers={"Authorization": "Basic eDp5"})
    assert st == 401


def test_bad_bodies_change_nothing(api):
    d, a = api
    cases = [
        (b'{"name": "acme"', 400),                    # malformed
        (b'["acme"]', 400),                            # not an object
        (b'{"name": "acme", "colour": "red"}', 400),   # unknown field
        (b'{"name": 42}', 400),                        # wrong type
        (b'{"region": "default"}', 400),               # missing required field
        (b'{"name": "acme", "name": "acme2"}', 400),   # duplicate key
        (b'{"name": "a\\u0000b"}', 400),               # embedded NUL
        (b'{"name": "acme", "pad": "' + b"x" * 70000 + b'"}', 413),
    ]
    for raw, want in cases:
        st, js, r = a.request("POST", "/api/v1/tenants", raw=raw)
        assert st == want, (raw[:40], st, js)
        assert r.getheader("Content-Type") == "application/json"
        assert err_code(js) == ("payload_too_large" if want == 413 else "bad_request")
        assert js["error"]["message"]
    st, js, _ = a.get("/api/v1/tenants")
    assert js["items"] == []
    # a route without a body refuses one; unknown query parameters too
    st, js, _ = a.post("/api/v1/queue/flush", {"all": True})
    assert st == 400
    st, js, _ = a.get("/api/v1/tenants?colour=red")
    assert st == 400
    st, js, _ = a.get("/api/v1/tenants?limit=0")
    assert st == 400
    st, js, _ = a.get("/api/v1/tenants?limit=1001")
    assert st == 400
    st, js, _ = a.get("/api/v1/tenants?cursor=-1")
    assert st == 400
    st, js, _ = a.get("/api/v1/tenants/a%zz")
    assert st == 400


def test_pagination(api):
    d, a = api
    names = ["t%02d" % i for i in range(25)]
    for n in names:
        assert a.post("/api/v1/tenants", {"name": n})[0] == 201
    st, js, _ = a.get("/api/v1/tenants")
    assert st == 200 and len(js["items"]) == 25 and js["next_cursor"] is None
    seen, cursor, pages = [], None, 0
    while True:
        q = "/api/v1/tenants?limit=10" + ("&cursor=" + cursor if cursor else "")
        st, js, _ = a.get(q)
        assert st == 200
        seen += [t["name"] for t in js["items"]]
        pages += 1
        cursor = js["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == names
    st, js, _ = a.get("/api/v1/tenants?limit=10&cursor=1000")
    assert st == 200 and js["items"] == [] and js["next_cursor"] is None


def test_session_cookie_and_csrf(api):
    d, a = api
    assert a.post("/api/v1/tenants", {"name": "acme"})[0] == 201
    assert a.post("/api/v1/tenants/acme/domains", {"domain": "acme.example"})[0] == 201
    assert a.post("/api/v1/tenants/acme/users", {"address": "bob@acme.example", "role": "admin",
                                                  "password": "correct horse 1"})[0] == 201
    b = Api(a.port)
    st, js, _ = b.post("/api/v1/session", {"address": "bob@acme.example", "password": "wrong"})
    assert st == 401 and err_code(js) == "unauthorized"
    st, js, _ = b.post("/api/v1/session", {"address": "bob@acme.example"})
    assert st == 400
    st, js, r = b.post("/api/v1/session",
                       {"address": "bob@acme.example", "password": "correct horse 1"})
    assert st == 201, js
    cookie = r.getheader("Set-Cookie")
    for attr in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attr in cookie
    assert js["role"] == "admin" and js["tenant"] == "acme" and len(js["csrf_token"]) == 64
    b.cookie = cookie.split(";")[0]
    csrf = js["csrf_token"]
    st, js, _ = b.get("/api/v1/session")
    assert st == 200 and js["actor"] == "bob@acme.example"
    st, js, _ = b.get("/api/v1/tenants/acme/domains")
    assert st == 200 and js["items"][0]["domain"] == "acme.example"
    # a write with the cookie but without the CSRF token is refused and changes nothing
    st, js, _ = b.post("/api/v1/tenants/acme/domains", {"domain": "two.example"})
    assert st == 403 and err_code(js) == "forbidden"
    st, js, _ = b.post("/api/v1/tenants/acme/domains", {"domain": "two.example"},
                       headers={"X-CSRF-Token": "0" * 64})
    assert st == 403
    assert len(b.get("/api/v1/tenants/acme/domains")[1]["items"]) == 1
    b.csrf = csrf
    st, js, _ = b.post("/api/v1/tenants/acme/domains", {"domain": "two.example"})
    assert st == 201
    # the session is its tenant's admin, not an operator
    assert b.get("/api/v1/tenants")[0] == 403
    assert b.get("/api/v1/tenants/other")[0] == 404
    st, js, r = b.request("DELETE", "/api/v1/session")
    assert st == 200 and "Max-Age=0" in r.getheader("Set-Cookie")
    st, js, _ = b.get("/api/v1/tenants/acme/domains")
    assert st == 401


def _openapi_ops(a):
    st, js, _ = a.get("/api/v1/openapi.json", auth=False)
    assert st == 200 and js["openapi"].startswith("3.0")
    ops = set()
    for path, item in js["paths"].items():
        for method, op in item.items():
            assert "responses" in op and op["summary"]
            ops.add((method.upper(), path))
    return js, ops


def _template_match(path, template):
    p, t = path.split("?")[0].split("/"), template.split("/")
    return len(p) == len(t) and all(x == y or y.startswith("{") for x, y in zip(p, t))


def _no_such_route(st, js):
    return st in (404, 405) and js["error"]["message"].startswith(("no such API route", "method"))


def test_openapi_describes_every_route(api):
    d, a = api
    doc, ops = _openapi_ops(a)
    assert ("GET", "/api/v1/tenants/{tenant}/domains") in ops
    assert doc["paths"]["/api/v1/tenants"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["additionalProperties"] is False
    # every documented route is answered (not "no such route")
    for method, template in ops:
        path = template.replace("{", "").replace("}", "")
        st, js, _ = a.request(method, path)
        assert not _no_such_route(st, js), (method, template, st, js)
    # every route the server answers is documented
    answered = 0
    for method, path in CANDIDATE_ROUTES:
        st, js, _ = a.request(method, path)
        if _no_such_route(st, js):
            continue
        answered += 1
        assert any(m == method and _template_match(path, t) for m, t in ops), (method, path)
    assert answered == len(CANDIDATE_ROUTES) - 3


def test_concurrent_requests_all_reach_the_loop(api):
    """Many connection threads hand requests to the one event loop at once."""
    import threading
    d, a = api
    errors = []

    def worker(k):
        for i in range(12):
            st, js, _ = a.post("/api/v1/tenants", {"name": "c%d-%d" % (k, i)})
            if st != 201:
                errors.append((st, js))
            st, js, _ = a.get("/api/v1/tenants/c%d-%d" % (k, i))
            if st != 200:
                errors.append((st, js))

    # 8 threads: well under the per-address connection limit (16) even when
    # closed connections are not reaped yet on a loaded machine.
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    st, js, _ = a.get("/api/v1/tenants?limit=1000")
    assert len(js["items"]) == 96


def test_stops_cleanly_with_an_open_api_connection(api):
    d, a = api
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=20)
    c.request("GET", "/api/v1/tenants", headers={"Authorization": "Bearer " + a.token})
    r = c.getresponse()
    assert r.status == 200
    r.read()                    # keep-alive: the connection (and its thread) stays
    d.stop()                    # asserts exit status 0 within 15 s
    c.close()


def test_groups_aliases_and_password(api):
    d, a = api
    assert a.post("/api/v1/tenants", {"name": "acme"})[0] == 201
    assert a.post("/api/v1/tenants/acme/domains", {"domain": "acme.example"})[0] == 201
    assert a.post("/api/v1/tenants/acme/users", {"address": "cy@acme.example"})[0] == 201
    assert a.post("/api/v1/tenants/acme/groups", {"name": "sales"})[0] == 201
    st, js, _ = a.post("/api/v1/tenants/acme/groups/sales/members",
                       {"address": "cy@acme.example"})
    assert st == 201, js
    st, js, _ = a.get("/api/v1/tenants/acme/groups")
    assert js["items"][0]["name"] == "sales" and "cy@acme.example" in json.dumps(js)
    st, js, _ = a.post("/api/v1/tenants/acme/users/cy@acme.example/aliases",
                       {"alias": "c@acme.example"})
    assert st == 201, js
    st, js, _ = a.get("/api/v1/tenants/acme/users/c@acme.example")
    assert st == 200 and js["address"] == "cy@acme.example"
    st, js, _ = a.request("PUT", "/api/v1/tenants/acme/users/cy@acme.example/password",
                          {"password": "new secret 42"})
    assert st == 200, js
    st, js, _ = Api(a.port).post("/api/v1/session",
                                 {"address": "cy@acme.example", "password": "new secret 42"})
    assert st == 201 and js["role"] == "user"
    st, js, _ = a.request("DELETE", "/api/v1/tenants/acme/groups/sales/members/cy@acme.example")
    assert st == 200, js
    assert a.request("DELETE", "/api/v1/tenants/acme/groups/sales")[0] == 200
    assert a.get("/api/v1/tenants/acme/groups")[1]["items"] == []
