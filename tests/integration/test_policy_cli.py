"""Each tenant's hygiene policy through the CLI and the API.

`policy show` lists every key with its default; `policy set` validates (an
unknown key, a bad number or a bad enum value exits 1 with a clear message
and changes nothing); a setting survives a restart; GET/PUT
/api/v1/tenants/{t}/policy; an auditor may show but not set; another
tenant's admin gets 404.
"""

import json

from test_api import Api, control, operator_token

# Keys every policy has, with their documented defaults (policy.h).
DEFAULTS = {
    "spam.tag_score": 5.0,
    "spam.quarantine_score": 8.0,
    "spam.reject_score": 15.0,
    "av.action": "reject",
    "quarantine.user_release": "no",
    "quarantine.retention_days": 30,
}


def policy(d, tenant="acme"):
    out = d.cli("policy", "show", tenant, "--json").stdout
    return {e["key"]: e for e in json.loads(out)}


def same(value, expected):
    if isinstance(expected, (int, float)):
        return float(value) == float(expected)
    if expected in ("yes", "no"):
        return str(value).lower() in ((expected, "true", "1", "on") if expected == "yes"
                                      else (expected, "false", "0", "off"))
    return str(value) == expected


def setup_acme(d):
    d.cli("tenant", "add", "acme")
    d.cli("domain", "add", "acme", "acme.example")


def test_show_lists_every_key_with_defaults(mailark_daemon):
    d = mailark_daemon()
    setup_acme(d)
    p = policy(d)
    assert len(p) >= 30
    for key, dflt in DEFAULTS.items():
        assert key in p, key
        assert same(p[key]["value"], dflt), (key, p[key])
        assert same(p[key]["default"], dflt), (key, p[key])
        assert not p[key]["set"]
        assert p[key]["help"]
    # the human form names the keys too
    text = d.cli("policy", "show", "acme").stdout
    assert "spam.tag_score" in text


def test_set_validates_and_persists(mailark_daemon):
    d = mailark_daemon()
    setup_acme(d)
    r = d.cli("policy", "set", "acme", "spam.tag_score", "4")
    assert r.returncode == 0
    for key, value, needle in (("spam.nonsense", "1", "spam.nonsense"),
                               ("spam.tag_score", "lots", "spam.tag_score"),
                               ("av.action", "explode", "av.action"),
                               ("quarantine.user_release", "maybe", "quarantine.user_release")):
        r = d.cli("policy", "set", "acme", key, value, check=False)
        assert r.returncode == 1, (key, value, r.stdout)
        assert needle in r.stderr and r.stderr.startswith("mailark: "), r.stderr
    p = policy(d)
    assert same(p["spam.tag_score"]["value"], 4) and p["spam.tag_score"]["set"]
    assert same(p["av.action"]["value"], "reject") and not p["av.action"]["set"]
    assert same(p["quarantine.user_release"]["value"], "no")
    # unknown tenant
    r = d.cli("policy", "show", "nosuch", check=False)
    assert r.returncode == 1
    d.cli("policy", "set", "acme", "quarantine.user_release", "yes")
    d.stop()
    d.start()
    p = policy(d)
    assert same(p["spam.tag_score"]["value"], 4)
    assert same(p["quarantine.user_release"]["value"], "yes")


def test_removed_tenant_leaves_no_policy_behind(mailark_daemon):
    """A tenant removed and added again under its name starts from the
    defaults: neither the stored rows nor the cached snapshot survive."""
    d = mailark_daemon()
    d.cli("tenant", "add", "acme")
    d.cli("policy", "set", "acme", "spam.tag_score", "2")
    d.cli("policy", "set", "acme", "disclaimer.text", "--", "-- \\nAcme")
    p = policy(d)
    assert same(p["spam.tag_score"]["value"], 2)
    assert p["disclaimer.text"]["value"].startswith("-- ")   # "--" ends the options
    d.cli("tenant", "remove", "acme")
    d.cli("tenant", "add", "acme")
    p = policy(d)
    assert same(p["spam.tag_score"]["value"], 5) and not p["spam.tag_score"]["set"]
    assert p["disclaimer.text"]["value"] == "" and not p["disclaimer.text"]["set"]


def test_api_get_put_and_roles(mailark_daemon):
    d = mailark_daemon()
    setup_acme(d)
    d.cli("tenant", "add", "beta")
    a = Api(d.http_port, operator_token(d))
    st, js, _ = a.get("/api/v1/tenants/acme/policy")
    assert st == 200, js
    keys = {e["key"]: e for e in (js["items"] if isinstance(js, dict) and "items" in js else js)}
    assert "spam.reject_score" in keys
    st, js, _ = a.request("PUT", "/api/v1/tenants/acme/policy/spam.reject_score",
                          {"value": "20"})
    assert st == 200, js
    st, js, _ = a.request("PUT", "/api/v1/tenants/acme/policy/spam.reject_score",
                          {"value": "twenty"})
    assert st == 400, js
    assert same(policy(d)["spam.reject_score"]["value"], 20)

    for addr, role, tenant in (("aud@acme.example", "auditor", "acme"),
                               ("adm@beta.example", "admin", "beta")):
        if tenant == "beta":
            d.cli("domain", "add", "beta", "beta.example")
        control(d, "user.add", tenant=tenant, address=addr, role=role,
                password="pw-123456789")
    aud = Api(d.http_port, control(d, "token.create", name="t", user="aud@acme.example")["token"])
    st, js, _ = aud.get("/api/v1/tenants/acme/policy")
    assert st == 200
    st, js, _ = aud.request("PUT", "/api/v1/tenants/acme/policy/spam.tag_score", {"value": "1"})
    assert st == 403, js
    other = Api(d.http_port,
                control(d, "token.create", name="t", user="adm@beta.example")["token"])
    assert other.get("/api/v1/tenants/acme/policy")[0] == 404
    st, js, _ = other.request("PUT", "/api/v1/tenants/acme/policy/spam.tag_score",
                              {"value": "1"})
    assert st == 404
    p = policy(d)
    assert same(p["spam.tag_score"]["value"], 5) and not p["spam.tag_score"]["set"]
