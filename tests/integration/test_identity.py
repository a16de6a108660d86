"""Users, aliases, groups, API tokens and sign-in, driven through the CLI
(and, for sign-in, the HTTP API): round trips, a disabled user, duplicate
addresses, passwords on standard input only, the operator token that
`mailark init` prints once, lockout after repeated failures."""

import json
import re
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import mailark_bin

TOKEN_RE = re.compile(r"mk_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")


def jcli(d, *args, input=None):
    return json.loads(d.cli(*args, "--json", input=input).stdout)


def refused(d, *args, input=None):
    p = d.cli(*args, check=False, input=input)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith("mailark: "), p.stderr
    return p.stderr


def tenant(d, name="acme", domain="acme.example"):
    d.cli("tenant", "add", name)
    d.cli("domain", "add", name, domain)


def api(d, method, path, token=None, body=None):
    """(status, parsed JSON or None) of one HTTP API request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (d.http_port, path), data=data,
                                 method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, None


def need_api(d):
    status, _ = api(d, "GET", "/api/v1/session")
    if status == 404:
        pytest.skip("the HTTP API is not there yet")


# ---- init --------------------------------------------------------------------


def test_init_prints_operator_token_once(tmp_path):
    conf = tmp_path / "mailark.conf"
    conf.write_text("[server]\ndata_dir = %s\n" % (tmp_path / "var"))
    first = subprocess.run([mailark_bin(), "-c", str(conf), "init"], capture_output=True,
                           text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    m = re.search(r"^operator token: (\S+)$", first.stdout, re.M)
    assert m and TOKEN_RE.fullmatch(m.group(1)), first.stdout
    assert "shown only once" in first.stdout
    again = subprocess.run([mailark_bin(), "-c", str(conf), "init"], capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "mk_" not in again.stdout and "operator token" not in again.stdout
    # only the hash of the secret is stored
    db = sqlite3.connect(str(tmp_path / "var" / "mailark.db"))
    rows = db.execute("SELECT t.id, t.hash, u.address, u.role, u.tenant FROM tokens t "
                      "JOIN users u ON u.id = t.user_id").fetchall()
    db.close()
    assert len(rows) == 1
    tid, digest, address, role, tenant_ = rows[0]
    secret = m.group(1)[16:]
    assert tid == m.group(1)[3:15]
    assert (address, role, tenant_) == ("operator@local", "operator", None)
    assert len(digest) == 32 and secret.encode() not in digest
    import hashlib
    assert digest == hashlib.sha256(secret.encode()).digest()


# ---- users -------------------------------------------------------------------


def test_user_round_trip(mailark_daemon):
    d = mailark_daemon()
    tenant(d)
    u = jcli(d, "user", "add", "acme", "Ann@Acme.Example", "--role", "admin", "--name",
             "Ann Example")
    assert (u["address"], u["tenant"], u["role"], u["status"]) == \
        ("ann@acme.example", "acme", "admin", "active")
    assert u["name"] == "Ann Example" and u["password"] is False
    d.cli("user", "add", "acme", "bob@acme.example")
    listed = jcli(d, "user", "list", "acme")
    assert [x["address"] for x in listed] == ["ann@acme.example", "bob@acme.example"]
    assert listed[1]["role"] == "user"
    table = d.cli("user", "list", "acme").stdout.splitlines()
    assert table[0].split() == ["ADDRESS", "ROLE", "STATUS", "NAME"]
    shown = d.cli("user", "show", "acme", "ann@acme.example").stdout
    assert "role:     admin" in shown and "Ann Example" in shown
    assert "no user 'carl@acme.example'" in refused(d, "user", "show", "acme",
                                                    "carl@acme.example")


def test_user_refusals(mailark_daemon):
    d = mailark_daemon()
    tenant(d)
    tenant(d, "beta", "beta.example")
    d.cli("user", "add", "acme", "ann@acme.example")
    assert "already in use" in refused(d, "user", "add", "acme", "ANN@acme.example")
    assert "not a domain of tenant 'acme'" in refused(d, "user", "add", "acme",
                                                      "x@beta.example")
    assert "no tenant 'ghost'" in refused(d, "user", "add", "ghost", "x@acme.example")
    assert "unknown role" in refused(d, "user", "add", "acme", "y@acme.example",
                                     "--role", "root")
    assert "invalid address" in refused(d, "user", "add", "acme", "no-at-sign")
    # another tenant's user is not reachable by naming one's own tenant
    d.cli("user", "add", "beta", "eve@beta.example")
    assert "no user" in refused(d, "user", "show", "acme", "eve@beta.example")
    assert "no user" in refused(d, "user", "disable", "acme", "eve@beta.example")
    # operators: no tenant ("-"), any domain
    op = jcli(d, "user", "add", "-", "ops@provider.example", "--role", "operator")
    assert op["tenant"] is None and op["role"] == "operator"
    assert [u["address"] for u in jcli(d, "user", "list", "-")] == \
        ["operator@local", "ops@provider.example"]
    assert "operators belong to no tenant" in refused(d, "user", "add", "acme",
                                                       "z@acme.example", "--role", "operator")
    p = d.cli("user", "add", "acme", check=False)
    assert p.returncode == 2 and "missing argument" in p.stderr


def test_disable_enable_keeps_user(mailark_daemon):
    d = mailark_daemon()
    tenant(d)
    d.cli("user", "add", "acme", "ann@acme.example")
    d.cli("user", "alias", "add", "acme", "ann@acme.example", "a@acme.example")
    assert jcli(d, "user", "disable", "acme", "ann@acme.example")["status"] == "disabled"
    shown = jcli(d, "user", "show", "acme", "ann@acme.example")
    assert shown["status"] == "disabled" and shown["aliases"] == ["a@acme.example"]
    assert [u["address"] for u in jcli(d, "user", "list", "acme")] == ["ann@acme.example"]
    # the address stays taken while disabled
    assert "already in use" in refused(d, "user", "add", "acme", "ann@acme.example")
    assert jcli(d, "user", "enable", "acme", "ann@acme.example")["status"] == "active"
    d.wait_log(r"info admin cmd=user\.disable tenant=acme address=ann@acme\.example")


def test_aliases(mailark_daemon):
    d = mailark_daemon()
    tenant(d)
    tenant(d, "beta", "beta.example")
    d.cli("user", "add", "acme", "ann@acme.example")
    d.cli("user", "add", "acme", "bob@acme.example")
    u = jcli(d, "user", "alias", "add", "acme", "ann@acme.example", "Sales@acme.example")
    assert u["aliases"] == ["sales@acme.example"]
    # unique across the install: against primaries and other aliases
    assert "already in use" in refused(d, "user", "alias", "add", "acme", "bob@acme.example",
                                       "sales@acme.example")
    assert "already in use" in refused(d, "user", "alias", "add", "acme", "bob@acme.example",
                                       "ann@acme.example")
    assert "already in use" in refused(d, "user", "add", "acme", "sales@acme.example")
    assert "not a domain" in refused(d, "user", "alias", "add", "acme", "bob@acme.example",
                                     "bob@beta.example")
    # found by alias too
    assert jcli(d, "user", "show", "acme", "sales@acme.example")["address"] == "ann@acme.example"
    u = jcli(d, "user", "alias", "remove", "acme", "ann@acme.example", "sales@acme.example")
    assert u["aliases"] == []
    assert "no alias" in refused(d, "user", "alias", "remove", "acme", "ann@acme.example",
                                 "sales@acme.example")
    d.cli("user", "add", "acme", "sales@acme.example")      # free again


def test_groups(mailark_daemon):
    d = mailark_daemon()
    tenant(d)
    tenant(d, "beta", "beta.example")
    d.cli("user", "add", "acme", "ann@acme.example")
    d.cli("user", "add", "beta", "eve@beta.example")
    d.cli("group", "add", "acme", "Sales")
    assert "already has a group" in refused(d, "group", "add", "acme", "Sales")
    d.cli("group", "add", "beta", "Sales")                   # names are per tenant
    d.cli("group", "member", "add", "acme", "Sales", "ann@acme.example")
    assert "already a member" in refused(d, "group", "member", "add", "acme", "Sales",
                                         "ann@acme.example")
    assert "no user" in refused(d, "group", "member", "add", "acme", "Sales",
                                "eve@beta.example")
    groups = jcli(d, "group", "list", "acme")
    assert groups == [{"tenant": "acme", "name": "Sales", "members": ["ann@acme.example"]}]
    assert jcli(d, "user", "show", "acme", "ann@acme.example")["groups"] == ["Sales"]
    d.cli("group", "member", "remove", "acme", "Sales", "ann@acme.example")
    assert jcli(d, "group", "list", "acme")[0]["members"] == []
    d.cli("group", "remove", "acme", "Sales")
    assert jcli(d, "group", "list", "acme") == []
    assert jcli(d, "group", "list", "beta")[0]["name"] == "Sales"
    assert "no group" in refused(d, "group", "remove", "acme", "Sales")


# ---- passwords ------------------------------------------------------------------


def test_password_from_stdin_only(mailark_daemon):
    d = mailark_daemon()
    tenant(d)
    u = jcli(d, "user", "add", "acme", "ann@acme.example", "--password-stdin",
             input="first-password-1\n")
    assert u["password"] is True
    assert "10 to 1024" in refused(d, "user", "passwd", "acme", "ann@acme.example",
                                   input="short\n")
    assert "no password" in refused(d, "user", "passwd", "acme", "ann@acme.example", input="")
    d.cli("user", "passwd", "acme", "ann@acme.example", input="second-password-2\n")
    # there is no option that takes a password on the command line
    p = d.cli("user", "passwd", "acme", "ann@acme.example", "--password", "x" * 12,
              check=False)
    assert p.returncode == 2
    # never logged, never in the audit trail, stored as Argon2id
    log = d.log()
    assert "first-password-1" not in log and "second-password-2" not in log
    d.wait_log(r"info admin cmd=user\.passwd tenant=acme address=ann@acme\.example")
    db = sqlite3.connect(str(Path(d.data_dir) / "mailark.db"))
    (h,) = db.execute("SELECT password_hash FROM users WHERE address = 'ann@acme.example'"
                      ).fetchone()
    audit = " ".join(str(r) for r in db.execute("SELECT * FROM audit").fetchall())
    db.close()
    assert h.startswith("$argon2id$")
    assert "password-1" not in audit and "password-2" not in audit


# ---- tokens --------------------------------------------------------------------


def test_token_round_trip(mailark_daemon):
    d = mailark_daemon()
    tenant(d)
    d.cli("user", "add", "acme", "ann@acme.example")
    out = d.cli("token", "create", "--user", "ann@acme.example", "--name", "ci",
                "--expires", "30d").stdout
    m = TOKEN_RE.search(out)
    assert m and "shown only once" in out
    tid = m.group(0)[3:15]
    listed = jcli(d, "token", "list", "--user", "ann@acme.example")
    assert [(t["id"], t["name"], t["revoked"]) for t in listed] == [(tid, "ci", None)]
    assert 29 * 86400 < listed[0]["expires"] - listed[0]["created"] <= 30 * 86400
    assert m.group(0) not in d.cli("token", "list").stdout     # never shown again
    assert m.group(0) not in d.log()
    all_ids = [t["id"] for t in jcli(d, "token", "list")]
    assert tid in all_ids and len(all_ids) == 2                # + the init token
    d.cli("token", "revoke", tid)
    assert jcli(d, "token", "list", "--user", "ann@acme.example")[0]["revoked"] is not None
    assert "no active token" in refused(d, "token", "revoke", tid)
    assert "invalid expiry" in refused(d, "token", "create", "--user", "ann@acme.example",
                                       "--expires", "soon")
    assert "no user" in refused(d, "token", "create", "--user", "nobody@acme.example")
    # without --user: the local operator's token
    t = jcli(d, "token", "create")
    assert t["user"] == "operator@local" and TOKEN_RE.fullmatch(t["token"])


def test_totp_enable(mailark_daemon):
    d = mailark_daemon()
    tenant(d)
    d.cli("user", "add", "acme", "ann@acme.example")
    out = d.cli("user", "totp", "enable", "acme", "ann@acme.example").stdout
    m = re.search(r"otpauth://totp/mailark:ann@acme\.example\?secret=([A-Z2-7]{32})&", out)
    assert m, out
    assert "shown only once" in out
    assert jcli(d, "user", "show", "acme", "ann@acme.example")["totp"] is True
    assert m.group(1) not in d.log()


# ---- sign-in through the HTTP API ------------------------------------------------


def init_token(d):
    """A fresh operator token (the one init printed went to the harness)."""
    return jcli(d, "token", "create", "--name", "test")["token"]


def test_token_sign_in(mailark_daemon):
    d = mailark_daemon()
    need_api(d)
    tenant(d)
    d.cli("user", "add", "acme", "ann@acme.example", "--role", "admin")
    tok = jcli(d, "token", "create", "--user", "ann@acme.example")
    status, body = api(d, "GET", "/api/v1/session", token=tok["token"])
    assert status == 200, body
    listed = jcli(d, "token", "list", "--user", "ann@acme.example")
    assert listed[0]["last_used"] is not None
    # wrong secret, revoked, disabled user: all 401
    bad = tok["token"][:-1] + ("A" if tok["token"][-1] != "A" else "B")
    assert api(d, "GET", "/api/v1/session", token=bad)[0] == 401
    d.cli("user", "disable", "acme", "ann@acme.example")
    assert api(d, "GET", "/api/v1/session", token=tok["token"])[0] == 401
    d.cli("user", "enable", "acme", "ann@acme.example")
    assert api(d, "GET", "/api/v1/session", token=tok["token"])[0] == 200
    d.cli("token", "revoke", tok["id"])
    assert api(d, "GET", "/api/v1/session", token=tok["token"])[0] == 401
    d.wait_log(r"auth_token token=%s .*outcome=failed reason=\"?token revoked" % tok["id"])


def test_password_sign_in_and_lockout(mailark_daemon):
    d = mailark_daemon()
    need_api(d)
    tenant(d)
    d.cli("user", "add", "acme", "ann@acme.example", "--password-stdin",
          input="right-password-1\n")
    good = {"address": "ann@acme.example", "password": "right-password-1"}
    bad = {"address": "ann@acme.example", "password": "wrong-password-1"}
    status, _ = api(d, "POST", "/api/v1/session", body=good)
    assert status in (200, 201)
    for _ in range(5):
        assert api(d, "POST", "/api/v1/session", body=bad)[0] == 401
    # locked: the right password is refused exactly like a wrong one
    status, body = api(d, "POST", "/api/v1/session", body=good)
    wrong_status, wrong_body = api(d, "POST", "/api/v1/session", body=bad)
    assert status == 401 and (status, body) == (wrong_status, wrong_body)
    d.wait_log(r"auth_password user=ann@acme\.example .*outcome=locked")
    assert "right-password-1" not in d.log()
