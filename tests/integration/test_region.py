"""Data residency: a node stores mail only for tenants of the regions it serves.

A tenant's region is fixed when it is created; `tenant add` refuses a region
the node does not serve, and when the node's [server] regions no longer
include a tenant's region, its mail is refused with 451 (so the sending MTA
tries an MX of the right region) and nothing is queued.
"""

import json
import smtplib


def test_tenant_add_refuses_unserved_region(mailark_daemon):
    daemon = mailark_daemon(**{"server.regions": "eu, ch"})
    daemon.cli("tenant", "add", "acme", "--region", "ch")
    r = daemon.cli("tenant", "add", "globex", "--region", "us", check=False)
    assert r.returncode == 1
    assert "region 'us' is not served" in r.stderr
    listing = daemon.cli("tenant", "list").stdout
    assert "acme" in listing and "globex" not in listing


def test_mail_for_unserved_region_is_refused_and_not_stored(mailark_daemon, smtp_primary):
    primary = smtp_primary()
    daemon = mailark_daemon(**{"server.regions": "eu"})
    daemon.cli("tenant", "add", "acme", "--region", "eu")
    daemon.cli("domain", "add", "acme", "acme.test")
    daemon.cli("route", "set", "acme.test", "smtp://127.0.0.1:%d" % primary.port)
    daemon.cli("relay", "add", "acme", "127.0.0.0/8")

    # The node is re-configured to serve another region only.
    daemon.stop()
    conf = open(daemon.conf_path).read().replace("regions = eu", "regions = us")
    assert "regions = us" in conf
    open(daemon.conf_path, "w").write(conf)
    daemon.start()

    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("alice@example.org")[0] == 250
        code, text = s.rcpt("bob@acme.test")          # inbound for acme
        assert code == 451 and b"region" in text, (code, text)
        code, text = s.rcpt("carol@elsewhere.test")    # outbound via acme's relay network
        assert code == 451, (code, text)
    assert "region_not_served" in daemon.log()
    assert json.loads(daemon.cli("queue", "list", "--json").stdout) == []
