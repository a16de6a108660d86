"""Directory sync and LDAP sign-in against a real slapd with an AD-like schema
(slapd_helper.py): `mailark directory set|show|sync|login`.

The tests read the daemon's mailark.db (read-only) to see exactly which
users, aliases, groups and memberships a sync wrote."""

import json
import sqlite3
import time
from pathlib import Path

import pytest

from slapd_helper import (SVC_DN, SVC_PW, SUFFIX, Slapd, group_dn, group_ldif, person_dn,
                          user_ldif)

ANN_PW = "ann-Passw0rd"
BOB_PW = "bob-Passw0rd"


@pytest.fixture
def slapd(tmp_path):
    s = Slapd(tmp_path).start()
    yield s
    s.stop()


def directory_entries():
    return (
        group_ldif("Sales", [person_dn("ann")])
        + group_ldif("Ops")
        + user_ldif("ann", mail="Ann@Acme.example", display="Ann Archer", password=ANN_PW,
                    proxies=["SMTP:ann@acme.example", "smtp:ann.a@acme.example",
                             "smtp:sales@acme.example", "X500:/o=Acme/cn=ann"])
        # no mail attribute: the SMTP: proxy address is the primary one; disabled
        + user_ldif("bob", proxies=["SMTP:bob@acme.example"], display="Bob Baker",
                    uac=514, password=BOB_PW)
        + user_ldif("carol", mail="carol@acme.example", member_of=[group_dn("Sales")])
        # an address in someone else's domain: refused
        + user_ldif("eve", mail="eve@other.example")
        # the address of a local user: refused, the local user untouched
        + user_ldif("dave", mail="dave@acme.example", display="Dave from LDAP")
    )


def db(d):
    con = sqlite3.connect("file:%s?mode=ro" % (Path(d.data_dir) / "mailark.db"), uri=True)
    con.execute("PRAGMA busy_timeout=5000")
    return con


def users(d, tenant="acme"):
    with db(d) as con:
        rows = con.execute("SELECT address, display_name, role, status, source FROM users "
                           "WHERE tenant = ? ORDER BY address", (tenant,)).fetchall()
    return {r[0]: {"name": r[1], "role": r[2], "status": r[3], "source": r[4]} for r in rows}


def aliases(d, address):
    with db(d) as con:
        return sorted(r[0] for r in con.execute(
            "SELECT a.address FROM aliases a JOIN users u ON u.id = a.user_id "
            "WHERE u.address = ?", (address,)))


def groups(d, tenant="acme"):
    with db(d) as con:
        out = {r[0]: [] for r in con.execute("SELECT name FROM groups WHERE tenant = ?",
                                             (tenant,))}
        for g, u in con.execute("SELECT g.name, u.address FROM group_members m "
                                "JOIN groups g ON g.id = m.group_id "
                                "JOIN users u ON u.id = m.user_id WHERE g.tenant = ?",
                                (tenant,)):
            out[g].append(u)
    return {g: sorted(m) for g, m in out.items()}


def snapshot(d):
    with db(d) as con:
        return [con.execute("SELECT * FROM users ORDER BY id").fetchall(),
                con.execute("SELECT * FROM aliases ORDER BY address").fetchall(),
                con.execute("SELECT * FROM groups ORDER BY id").fetchall(),
                con.execute("SELECT * FROM group_members ORDER BY 1, 2").fetchall()]


def add_local_user(d, address):
    """A local user written straight into the database (source 'local')."""
    con = sqlite3.connect(str(Path(d.data_dir) / "mailark.db"))
    con.execute("PRAGMA busy_timeout=5000")
    now = int(time.time())
    with con:
        con.execute("INSERT INTO users(tenant, address, display_name, role, status, source, "
                    "created, updated) VALUES ('acme', ?, 'Dave Local', 'admin', 'active', "
                    "'local', ?, ?)", (address, now, now))
    con.close()


def setup_tenant(d, ldap, password=SVC_PW, *extra):
    d.cli("tenant", "add", "acme")
    d.cli("domain", "add", "acme", "acme.example")
    d.cli("tenant", "add", "other")
    d.cli("domain", "add", "other", "other.example")
    return d.cli("directory", "set", "acme", "--url", ldap.url, "--base-dn", SUFFIX,
                 "--bind-dn", SVC_DN, "--bind-password-stdin", "--interval", "0", *extra,
                 input=password + "\n")


def sync(d, check=True):
    p = d.cli("directory", "sync", "acme", "--json", check=check)
    return json.loads(p.stdout) if p.returncode == 0 else p


def test_sync_creates_users_aliases_groups(mailark_daemon, slapd):
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)
    add_local_user(d, "dave@acme.example")

    out = d.cli("directory", "sync", "acme").stdout
    assert "users: 3 added, 0 updated, 0 disabled" in out, out
    assert "groups: 2 added" in out and "errors: 2" in out, out
    assert "eve@other.example" in out and "dave@acme.example" in out, out

    u = users(d)
    assert set(u) == {"ann@acme.example", "bob@acme.example", "carol@acme.example",
                      "dave@acme.example"}
    assert u["ann@acme.example"] == {"name": "Ann Archer", "role": "user", "status": "active",
                                     "source": "directory"}
    assert u["bob@acme.example"]["status"] == "disabled"       # userAccountControl 514
    assert u["bob@acme.example"]["source"] == "directory"
    assert u["carol@acme.example"]["name"] is None
    # the local user is untouched: name, role and source as before
    assert u["dave@acme.example"] == {"name": "Dave Local", "role": "admin",
                                      "status": "active", "source": "local"}
    assert users(d, "other") == {}
    # SMTP:/smtp: proxy addresses, lower-cased, without the primary or X500: values
    assert aliases(d, "ann@acme.example") == ["ann.a@acme.example", "sales@acme.example"]
    assert aliases(d, "bob@acme.example") == []
    # Sales: ann through the group's member, carol through her memberOf
    assert groups(d) == {"Sales": ["ann@acme.example", "carol@acme.example"], "Ops": []}

    shown = json.loads(d.cli("directory", "show", "acme", "--json").stdout)
    assert shown["last_result"]["users_added"] == 3 and shown["last_result"]["ok"] is True
    assert shown["running"] is None


def test_second_sync_changes_nothing(mailark_daemon, slapd):
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)
    first = sync(d)
    assert first["users_added"] == 4 and first["errors"] == 1, first
    before = snapshot(d)
    time.sleep(1.1)     # an update would now change the `updated` column
    second = sync(d)
    assert (second["users_added"], second["users_updated"], second["users_disabled"],
            second["groups_added"], second["groups_updated"]) == (0, 0, 0, 0, 0), second
    assert second["users_unchanged"] == 4
    assert snapshot(d) == before


def test_directory_changes_are_followed(mailark_daemon, slapd):
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)
    sync(d)
    slapd.delete(person_dn("carol"))
    slapd.modify("dn: %s\nchangetype: modify\nreplace: displayName\ndisplayName: Ann B\n-\n"
                 "delete: proxyAddresses\nproxyAddresses: smtp:sales@acme.example\n\n"
                 "dn: %s\nchangetype: modify\nreplace: userAccountControl\n"
                 "userAccountControl: 512\n" % (person_dn("ann"), person_dn("bob")))
    r = sync(d)
    assert (r["users_added"], r["users_updated"], r["users_disabled"]) == (0, 2, 1), r
    u = users(d)
    # carol vanished from the directory: disabled, never deleted
    assert u["carol@acme.example"]["status"] == "disabled"
    assert u["bob@acme.example"]["status"] == "active"
    assert u["ann@acme.example"]["name"] == "Ann B"
    assert aliases(d, "ann@acme.example") == ["ann.a@acme.example"]
    assert groups(d)["Sales"] == ["ann@acme.example"]


def test_wrong_bind_password_changes_nothing(mailark_daemon, slapd):
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)
    sync(d)
    before = snapshot(d)
    d.cli("directory", "set", "acme", "--url", slapd.url, "--base-dn", SUFFIX,
          "--bind-dn", SVC_DN, "--bind-password-stdin", input="not-the-password\n")
    slapd.delete(person_dn("ann"))
    p = sync(d, check=False)
    assert p.returncode == 1
    assert "directory sync of acme failed" in p.stderr and "Invalid credentials" in p.stderr
    assert snapshot(d) == before
    shown = json.loads(d.cli("directory", "show", "acme", "--json").stdout)
    assert shown["last_result"]["ok"] is False


def test_unreachable_directory_is_a_clear_error(mailark_daemon, slapd):
    d = mailark_daemon()
    setup_tenant(d, slapd)
    slapd.stop()
    p = sync(d, check=False)
    assert p.returncode == 1 and "Can't contact LDAP server" in p.stderr, p.stderr
    assert users(d) == {}


def test_ldap_bind_sign_in(mailark_daemon, slapd):
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)
    ok = d.cli("directory", "login", "acme", "ann@acme.example", input=ANN_PW + "\n")
    assert "accepted" in ok.stdout
    # any of the user's addresses finds the entry (proxyAddresses smtp:)
    d.cli("directory", "login", "acme", "ann.a@acme.example", input=ANN_PW + "\n")
    bad = d.cli("directory", "login", "acme", "ann@acme.example", input="wrong\n", check=False)
    assert bad.returncode == 1 and "refused (denied)" in bad.stderr, bad.stderr
    nobody = d.cli("directory", "login", "acme", "zed@acme.example", input=ANN_PW + "\n",
                   check=False)
    assert nobody.returncode == 1 and "denied" in nobody.stderr
    # a disabled account (userAccountControl bit 2) is refused even with its password
    bob = d.cli("directory", "login", "acme", "bob@acme.example", input=BOB_PW + "\n",
                check=False)
    assert bob.returncode == 1 and "denied" in bob.stderr
    # filter metacharacters in the address cannot widen the search
    star = d.cli("directory", "login", "acme", "*", input=ANN_PW + "\n", check=False)
    assert star.returncode == 1 and "denied" in star.stderr
    log = d.log()
    assert ANN_PW not in log and BOB_PW not in log
    assert "directory_auth" in log


def test_settings_validation_and_masking(mailark_daemon, slapd):
    d = mailark_daemon()
    setup_tenant(d, slapd, SVC_PW, "--user-filter", "(&(objectClass=user)(mail=*))",
                 "--starttls", "no")
    shown = d.cli("directory", "show", "acme").stdout
    assert "bind password: ********" in shown and SVC_PW not in shown
    assert "(&(objectClass=user)(mail=*))" in shown
    j = json.loads(d.cli("directory", "show", "acme", "--json").stdout)
    assert j["url"] == slapd.url and j["bind_password"] == "********" and j["interval"] == 0
    # updating without a password keeps the stored one
    d.cli("directory", "set", "acme", "--url", slapd.url, "--base-dn", SUFFIX,
          "--bind-dn", SVC_DN, "--interval", "1h")
    assert sync(d)["ok"] is True
    for args, why in [
        (["--url", "http://x"], "ldap://"),
        (["--url", slapd.url, "--user-filter", "objectClass=user"], "filter"),
        (["--url", slapd.url, "--interval", "soon"], "interval"),
        (["--url", slapd.url, "--starttls", "maybe"], "starttls"),
    ]:
        p = d.cli("directory", "set", "acme", "--base-dn", SUFFIX, "--bind-dn", SVC_DN, *args,
                  check=False)
        assert p.returncode == 1 and why in p.stderr, (args, p.stderr)
    p = d.cli("directory", "set", "nosuch", "--url", slapd.url, "--base-dn", SUFFIX,
              "--bind-dn", SVC_DN, "--bind-password-stdin", input="x\n", check=False)
    assert p.returncode == 1 and "no tenant 'nosuch'" in p.stderr
    p = d.cli("directory", "sync", "other", check=False)
    assert p.returncode == 1 and "has no directory" in p.stderr
    # a first set without a password is refused
    p = d.cli("directory", "set", "other", "--url", slapd.url, "--base-dn", SUFFIX,
              "--bind-dn", SVC_DN, check=False)
    assert p.returncode == 1 and "bind password" in p.stderr
    assert d.cli("directory", "bogus", "acme", check=False).returncode == 2
    assert SVC_PW not in d.log()


def test_periodic_sync(mailark_daemon, slapd):
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)
    d.cli("directory", "set", "acme", "--url", slapd.url, "--base-dn", SUFFIX,
          "--bind-dn", SVC_DN, "--interval", "1s")
    d.wait_log(r"directory_sync tenant=acme .*added=4", timeout=15)
    assert users(d)["ann@acme.example"]["status"] == "active"
    slapd.delete(person_dn("ann"))
    deadline = time.monotonic() + 15
    while users(d)["ann@acme.example"]["status"] != "disabled":
        assert time.monotonic() < deadline, "periodic sync did not disable ann"
        time.sleep(0.2)


def test_sync_and_set_are_audited(mailark_daemon, slapd):
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)
    sync(d)
    with db(d) as con:
        rows = con.execute("SELECT action, object, outcome, coalesce(detail, '') FROM audit "
                           "WHERE action LIKE 'directory.%' ORDER BY seq").fetchall()
    actions = [r[0] for r in rows]
    assert "directory.set" in actions and "directory.sync" in actions, rows
    assert "directory.sync.finished" in actions, rows
    assert all(SVC_PW not in r[3] for r in rows)


def test_bind_password_is_sealed_at_rest(mailark_daemon, slapd):
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)
    with db(d) as con:
        (stored,) = con.execute("SELECT bind_password FROM directory_settings "
                                "WHERE tenant = 'acme'").fetchone()
    assert stored.startswith("v1:") and SVC_PW not in stored, stored
    # nowhere in the database's bytes, the write-ahead log included
    files = sorted(Path(d.data_dir).glob("mailark.db*"))
    assert Path(d.data_dir, "mailark.db") in files
    for f in files:
        assert SVC_PW.encode() not in f.read_bytes(), f
    # the daemon still opens it for the bind, also after a set that keeps it
    assert sync(d)["users_added"] == 4
    d.cli("directory", "set", "acme", "--url", slapd.url, "--base-dn", SUFFIX,
          "--bind-dn", SVC_DN, "--interval", "0")
    with db(d) as con:
        (kept,) = con.execute("SELECT bind_password FROM directory_settings "
                              "WHERE tenant = 'acme'").fetchone()
    assert kept == stored
    assert sync(d)["ok"] is True


def test_tampered_or_legacy_bind_password(mailark_daemon, slapd):
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)

    def write(value):
        con = sqlite3.connect(str(Path(d.data_dir) / "mailark.db"))
        con.execute("PRAGMA busy_timeout=5000")
        with con:
            con.execute("UPDATE directory_settings SET bind_password = ? "
                        "WHERE tenant = 'acme'", (value,))
        con.close()

    with db(d) as con:
        (stored,) = con.execute("SELECT bind_password FROM directory_settings").fetchone()
    body = stored[3:]
    write("v1:" + ("B" if body[0] == "A" else "A") + body[1:])
    p = sync(d, check=False)
    assert p.returncode == 1 and "cannot be opened" in p.stderr, p.stderr
    p = d.cli("directory", "login", "acme", "ann@acme.example", input=ANN_PW + "\n",
              check=False)
    assert p.returncode == 1 and "cannot be opened" in p.stderr, p.stderr
    assert d.running()
    # a legacy plain-text value still works and is sealed by the next set
    write(SVC_PW)
    assert sync(d)["ok"] is True
    d.cli("directory", "set", "acme", "--url", slapd.url, "--base-dn", SUFFIX,
          "--bind-dn", SVC_DN, "--interval", "0")
    with db(d) as con:
        (resealed,) = con.execute("SELECT bind_password FROM directory_settings").fetchone()
    assert resealed.startswith("v1:") and SVC_PW not in resealed
    assert sync(d)["ok"] is True
    assert SVC_PW not in d.log()


def test_missing_master_key_is_a_clear_error(mailark_daemon, slapd):
    d = mailark_daemon()
    key = Path(d.data_dir) / "keys" / "master.key"
    key.write_bytes(key.read_bytes()[:16])       # before the first use: never loaded
    d.cli("tenant", "add", "acme")
    p = d.cli("directory", "set", "acme", "--url", slapd.url, "--base-dn", SUFFIX,
              "--bind-dn", SVC_DN, "--bind-password-stdin", input=SVC_PW + "\n", check=False)
    assert p.returncode == 1 and str(key) in p.stderr and "32 bytes" in p.stderr, p.stderr
    key.unlink()
    p = d.cli("directory", "set", "acme", "--url", slapd.url, "--base-dn", SUFFIX,
              "--bind-dn", SVC_DN, "--bind-password-stdin", input=SVC_PW + "\n", check=False)
    assert p.returncode == 1 and str(key) in p.stderr and "missing" in p.stderr, p.stderr


def test_directory_user_signs_in_to_continuity(mailark_daemon, slapd):
    """Continuity IMAP and submission sign-in use the directory (LDAP bind) for synced users."""
    import imaplib
    import smtplib
    import ssl
    d = mailark_daemon()
    slapd.add(directory_entries())
    setup_tenant(d, slapd)
    sync(d)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def imap_login(password):
        with imaplib.IMAP4_SSL("127.0.0.1", d.imaps_port, ssl_context=ctx, timeout=20) as m:
            try:
                m.login("ann@acme.example", password)
            except imaplib.IMAP4.error as e:
                return str(e)
            typ, data = m.select("INBOX")
            assert typ == "OK", data
            m.logout()
            return "ok"

    # not in continuity: the right LDAP password is still refused
    assert "UNAVAILABLE" in imap_login(ANN_PW)
    d.cli("continuity", "drill", "start", "acme", "--users", "ann@acme.example")
    assert imap_login(ANN_PW) == "ok"
    assert "AUTHENTICATIONFAILED" in imap_login("wrong-Passw0rd")
    with smtplib.SMTP("127.0.0.1", d.submission_port, timeout=20) as s:
        s.starttls(context=ctx)
        s.login("ann@acme.example", ANN_PW)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s2 = smtplib.SMTP("127.0.0.1", d.submission_port, timeout=20)
            try:
                s2.starttls(context=ctx)
                s2.login("ann@acme.example", "wrong-Passw0rd")
            finally:
                s2.close()
    log = d.log()
    assert ANN_PW not in log
    assert "directory_auth" in log
