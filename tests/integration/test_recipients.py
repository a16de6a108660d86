"""Unknown recipients of a tenant: accepted by default, refused on request.

With `tenant set NAME unknown-recipients reject`, only the addresses of the
tenant's users and aliases are accepted; others get 550 5.1.1 during the
session (no backscatter), and a user's address in another tenant does not count.
"""

import smtplib


def add_tenants(daemon):
    for t, d in (("acme", "acme.test"), ("beta", "beta.test")):
        daemon.cli("tenant", "add", t)
        daemon.cli("domain", "add", t, d)
    daemon.cli("user", "add", "acme", "ann@acme.test")
    daemon.cli("user", "alias", "add", "acme", "ann@acme.test", "sales@acme.test")


def rcpt_codes(daemon, rcpts):
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("x@example.org")[0] == 250
        return [s.rcpt(r)[0] for r in rcpts]


def test_unknown_recipients_default_accept_then_reject(mailark_daemon):
    daemon = mailark_daemon()
    add_tenants(daemon)
    rcpts = ["ann@acme.test", "sales@acme.test", "nobody@acme.test"]
    assert rcpt_codes(daemon, rcpts) == [250, 250, 250]

    daemon.cli("tenant", "set", "acme", "unknown-recipients", "reject")
    assert rcpt_codes(daemon, rcpts) == [250, 250, 550]
    assert "unknown_user" in daemon.log()
    # Other tenants keep their own setting.
    assert rcpt_codes(daemon, ["nobody@beta.test"]) == [250]
    assert "reject" in daemon.cli("tenant", "show", "acme").stdout

    daemon.cli("tenant", "set", "acme", "unknown-recipients", "accept")
    assert rcpt_codes(daemon, rcpts) == [250, 250, 250]


def test_tenant_set_refuses_bad_values(mailark_daemon):
    daemon = mailark_daemon()
    add_tenants(daemon)
    r = daemon.cli("tenant", "set", "acme", "unknown-recipients", "maybe", check=False)
    assert r.returncode == 1 and "accept or reject" in r.stderr
    r = daemon.cli("tenant", "set", "acme", "colour", "blue", check=False)
    assert r.returncode == 1 and "unknown tenant setting" in r.stderr
    r = daemon.cli("tenant", "set", "nosuch", "unknown-recipients", "reject", check=False)
    assert r.returncode == 1 and "no tenant" in r.stderr
