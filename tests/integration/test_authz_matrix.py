"""Authorisation matrix: every API route x every role (operator, admin,
auditor, user, none) x the caller's own tenant / another tenant -> the
expected HTTP status, from the table below.  Objects of another tenant
must answer 404 (never 403); install-wide routes answer 403 to everyone
but operators; no credentials answer 401."""

import itertools
import re
import smtplib
import time

import pytest

from test_api import Api, control

ROLES = ["operator", "admin", "auditor", "user", "none"]

# route name -> (method, path template, body template,
#                {role: (status for own tenant, status for the other tenant)})
# Templates use {t} (the target tenant), {dom} (its domain), {u} (a unique
# suffix) and {obj} (an object made for the case by the matching prepare_*).
OWN_RW = {"operator": (200, 200), "admin": (200, 404), "auditor": (403, 404),
          "user": (403, 404), "none": (401, 401)}
OWN_RO = {"operator": (200, 200), "admin": (200, 404), "auditor": (200, 404),
          "user": (403, 404), "none": (401, 401)}
INSTALL = {"operator": (200, 200), "admin": (403, 403), "auditor": (403, 403),
           "user": (403, 403), "none": (401, 401)}
SELF = {"operator": (200, 200), "admin": (200, 200), "auditor": (200, 200),
        "user": (200, 200), "none": (401, 401)}
OWNER = {"operator": (200, 200), "admin": (200, 404), "auditor": (404, 404),
         "user": (404, 404), "none": (401, 401)}


def created(table):
    return {r: tuple(201 if s == 200 else s for s in v) for r, v in table.items()}


MATRIX = {
    "tenant.list": ("GET", "/api/v1/tenants", None, INSTALL),
    "tenant.add": ("POST", "/api/v1/tenants", {"name": "n{u}"}, created(INSTALL)),
    "tenant.show": ("GET", "/api/v1/tenants/{t}", None, OWN_RO),
    "tenant.remove": ("DELETE", "/api/v1/tenants/{t}", None,
                      dict(INSTALL, operator=(409, 409))),       # they still have domains
    "domain.list": ("GET", "/api/v1/tenants/{t}/domains", None, OWN_RO),
    "domain.add": ("POST", "/api/v1/tenants/{t}/domains", {"domain": "n{u}.{t}.example"},
                   created(OWN_RW)),
    "domain.remove": ("DELETE", "/api/v1/tenants/{t}/domains/{obj}", None, OWN_RW),
    "route.list": ("GET", "/api/v1/routes", None, INSTALL),
    "route.set": ("PUT", "/api/v1/routes/{dom}", {"url": "smtp://127.0.0.1:1"}, OWN_RW),
    "relay.list": ("GET", "/api/v1/tenants/{t}/relays", None, OWN_RO),
    "relay.add": ("POST", "/api/v1/tenants/{t}/relays", {"cidr": "{obj}"}, created(OWN_RW)),
    "relay.remove": ("DELETE", "/api/v1/tenants/{t}/relays/{obj}", None, OWN_RW),
    "queue.list": ("GET", "/api/v1/queue", None, INSTALL),
    "queue.flush": ("POST", "/api/v1/queue/flush", None, INSTALL),
    "queue.show": ("GET", "/api/v1/queue/{obj}", None, OWN_RW),
    "queue.hold": ("POST", "/api/v1/queue/{obj}/hold", None, OWN_RW),
    "queue.release": ("POST", "/api/v1/queue/{obj}/release", None, OWN_RW),
    "queue.delete": ("DELETE", "/api/v1/queue/{obj}", None, OWN_RW),
    "user.list": ("GET", "/api/v1/tenants/{t}/users", None, OWN_RO),
    "user.add": ("POST", "/api/v1/tenants/{t}/users", {"address": "n{u}@{dom}"},
                 created(OWN_RW)),
    "user.show": ("GET", "/api/v1/tenants/{t}/users/{obj}", None, OWN_RO),
    "user.disable": ("POST", "/api/v1/tenants/{t}/users/{obj}/disable", None, OWN_RW),
    "user.enable": ("POST", "/api/v1/tenants/{t}/users/{obj}/enable", None, OWN_RW),
    "group.list": ("GET", "/api/v1/tenants/{t}/groups", None, OWN_RO),
    "group.add": ("POST", "/api/v1/tenants/{t}/groups", {"name": "g{u}"}, created(OWN_RW)),
    "group.remove": ("DELETE", "/api/v1/tenants/{t}/groups/{obj}", None, OWN_RW),
    "token.list": ("GET", "/api/v1/tokens", None, SELF),
    "token.create": ("POST", "/api/v1/tokens", {"name": "mine"}, created(SELF)),
    "token.create.for": ("POST", "/api/v1/tokens", {"name": "theirs", "user": "{obj}"},
                         created(OWNER)),
    "token.revoke": ("DELETE", "/api/v1/tokens/{obj}", None, OWNER),
    "audit.list": ("GET", "/api/v1/audit?tenant={t}", None, OWN_RO),
    "session.get": ("GET", "/api/v1/session", None, SELF),
}

_counter = itertools.count(1)


class World:
    """Two tenants, three principals of tenant 'own', an operator."""

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

    def queued(self, tenant):
        """A message for the tenant, kept in the queue (its route is dead)."""
        with smtplib.SMTP("127.0.0.1", self.d.smtp_port, timeout=20) as s:
            s.ehlo("tests.example")
            s.mail("sender@outside.example")
            code, _ = s.rcpt("rcpt@%s.example" % tenant)
            assert code == 250
            code, msg = s.data(b"Subject: matrix\r\n\r\nbody\r\n")
            assert code == 250
        return re.search(r"queued as (\S+)", msg.decode()).group(1)

    def prepare(self, name, tenant):
        n = next(_counter)
        dom = tenant + ".example"
        if name == "domain.remove":
            control(self.d, "domain.add", tenant=tenant, domain="x%d.%s" % (n, dom))
            return "x%d.%s" % (n, dom)
        if name == "relay.add":
            return "10.%d.%d.0/24" % (n // 250, n % 250)
        if name == "relay.remove":
            cidr = "10.200.%d.0/24" % (n % 250)
            control(self.d, "relay.add", tenant=tenant, cidr=cidr)
            return cidr.replace("/", "%2F")
        if name.startswith("queue."):
            qid = self.queued(tenant)
            if name == "queue.release":
                control(self.d, "queue.hold", id=qid)
            return qid
        if name == "group.remove":
            control(self.d, "group.add", tenant=tenant, name="g%d" % n)
            return "g%d" % n
        if name in ("user.show", "user.disable", "user.enable", "token.create.for",
                    "token.revoke"):
            addr = "v%d@%s" % (n, dom)
            control(self.d, "user.add", tenant=tenant, address=addr, role="user")
            if name == "user.enable":
                control(self.d, "user.disable", tenant=tenant, address=addr)
            if name == "token.revoke":
                return control(self.d, "token.create", name="victim", user=addr)["id"]
            return addr
        return None


def fill(template, tenant, obj, u):
    if template is None:
        return None
    if isinstance(template, dict):
        return {k: fill(v, tenant, obj, u) for k, v in template.items()}
    return template.format(t=tenant, dom=tenant + ".example", obj=obj, u=u)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # one daemon for the whole matrix (module scope): built by hand, as the
    # conftest fixture is function-scoped
    from conftest import Daemon
    d = Daemon(tmp_path_factory.mktemp("matrix"), {"queue.retry_min": "1h"})
    d.init()
    d.start()
    try:
        yield World(d)
    finally:
        problems = d.finish()
        assert not problems, "\n\n".join(problems)


def test_matrix(world):
    failures = []
    cases = 0
    for name, (method, path, body, table) in MATRIX.items():
        for role in ROLES:
            for which, tenant in ((0, "own"), (1, "other")):
                obj = world.prepare(name, tenant)
                u = next(_counter)
                api = Api(world.d.http_port, world.tokens[role])
                st, js, _ = api.request(method, fill(path, tenant, obj, u),
                                        body=fill(body, tenant, obj, u))
                cases += 1
                want = table[role][which]
                if st != want:
                    failures.append("%s %s as %s on %s tenant: %d, expected %d (%s)"
                                    % (method, name, role, ("own", "other")[which], st, want, js))
                elif st == 404 and role != "operator":
                    # another tenant's object answers exactly like a missing one
                    assert js == {"error": {"code": "not_found", "message": "not found"}}, js
    assert not failures, "\n".join(failures)
    assert cases == len(MATRIX) * len(ROLES) * 2


def test_other_tenant_is_indistinguishable_from_missing(world):
    api = Api(world.d.http_port, world.tokens["admin"])
    for path in ("/api/v1/tenants/other", "/api/v1/tenants/nosuch",
                 "/api/v1/tenants/other/domains", "/api/v1/tenants/nosuch/domains",
                 "/api/v1/queue/0000000000000000"):
        st, js, _ = api.get(path)
        assert (st, js) == (404, {"error": {"code": "not_found", "message": "not found"}}), path
    for domain in ("other.example", "nosuch.example"):
        st, js, _ = api.request("PUT", "/api/v1/routes/" + domain, {"url": "smtp://127.0.0.1:1"})
        assert (st, js["error"]["message"]) == (404, "not found")
