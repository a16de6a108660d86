"""The command line and the daemon around it: admin commands over the
control socket, --json, errors and exit codes, help, version, bad
configuration, /metrics over HTTP, socket permissions, the data-directory
lock."""

import json
import os
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, mailark_bin


def run(*args, cwd=None, timeout=30):
    return subprocess.run([mailark_bin(), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def jcli(daemon, *args):
    p = daemon.cli(*args, "--json")
    return json.loads(p.stdout)


def refused(daemon, *args):
    p = daemon.cli(*args, check=False)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith("mailark: "), p.stderr
    return p.stderr


def write_conf(path, data_dir, extra=""):
    path.write_text("[server]\ndata_dir = %s\n[smtp]\nlisten = 127.0.0.1:%d\n"
                    "[http]\nlisten = 127.0.0.1:%d\n%s"
                    % (data_dir, free_port(), free_port(), extra))
    return path


# ---- tenants, domains, routes, relays ---------------------------------------


def test_tenant_round_trip(mailark_daemon):
    d = mailark_daemon()
    out = d.cli("tenant", "add", "Acme").stdout
    assert "acme" in out
    d.cli("tenant", "add", "beta", "--region", "default")
    names = [t["name"] for t in jcli(d, "tenant", "list")]
    assert names == ["acme", "beta"]
    table = d.cli("tenant", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "REGION", "UNKNOWN-RECIPIENTS", "CREATED"]
    assert table[1].split()[:3] == ["acme", "default", "accept"]
    shown = jcli(d, "tenant", "show", "acme")
    assert shown["name"] == "acme" and shown["region"] == "default"
    assert shown["domains"] == [] and shown["relays"] == []
    d.cli("tenant", "remove", "beta")
    assert [t["name"] for t in jcli(d, "tenant", "list")] == ["acme"]
    assert "no tenant 'beta'" in refused(d, "tenant", "show", "beta")
    d.wait_log(r"info admin cmd=tenant\.add name=Acme")
    d.wait_log(r"info admin cmd=tenant\.remove name=beta")


def test_tenant_errors(mailark_daemon):
    d = mailark_daemon()
    d.cli("tenant", "add", "acme")
    assert "already exists" in refused(d, "tenant", "add", "acme")
    assert "invalid tenant name" in refused(d, "tenant", "add", "under_score")
    assert "invalid tenant name" in refused(d, "tenant", "add", "x" * 64)
    assert "region 'mars'" in refused(d, "tenant", "add", "other", "--region", "mars")
    assert "no tenant" in refused(d, "tenant", "remove", "ghost")


def test_domain_round_trip(mailark_daemon):
    d = mailark_daemon()
    d.cli("tenant", "add", "acme")
    d.cli("tenant", "add", "beta")
    out = d.cli("domain", "add", "acme", "Acme.Example").stdout
    assert out.strip() == "domain acme.example added to tenant acme"
    d.cli("domain", "add", "acme", "mail.acme.example")
    d.cli("domain", "add", "beta", "beta.example")
    all_domains = jcli(d, "domain", "list")
    assert sorted(x["domain"] for x in all_domains) == \
        ["acme.example", "beta.example", "mail.acme.example"]
    acme = jcli(d, "domain", "list", "acme")
    assert [x["domain"] for x in acme] == ["acme.example", "mail.acme.example"]
    assert all(x["tenant"] == "acme" and x["route"] is None for x in acme)
    assert "already belongs to tenant 'acme'" in refused(d, "domain", "add", "beta",
                                                          "acme.example")
    assert "invalid domain" in refused(d, "domain", "add", "acme", "bad..example")
    assert "invalid domain" in refused(d, "domain", "add", "acme", "a" * 64 + ".example")
    assert "no tenant" in refused(d, "domain", "add", "ghost", "ghost.example")
    assert "remove its domains first" in refused(d, "tenant", "remove", "beta")
    d.cli("domain", "remove", "beta", "beta.example")
    d.cli("tenant", "remove", "beta")
    assert "no domain" in refused(d, "domain", "remove", "acme", "beta.example")
    table = d.cli("domain", "list").stdout.splitlines()
    assert table[0].split() == ["DOMAIN", "TENANT", "ROUTE"]
    assert len(table) == 3


def test_route_round_trip(mailark_daemon):
    d = mailark_daemon()
    d.cli("tenant", "add", "acme")
    d.cli("domain", "add", "acme", "acme.example")
    assert "no routes" in d.cli("route", "list").stdout
    d.cli("route", "set", "acme.example", "smtp://127.0.0.1:2526")
    assert jcli(d, "route", "list") == [
        {"domain": "acme.example", "tenant": "acme", "route": "smtp://127.0.0.1:2526"}]
    d.cli("route", "set", "ACME.example", "smtp://[::1]:25?tls=required")
    assert jcli(d, "route", "list")[0]["route"] == "smtp://[::1]:25?tls=required"
    assert "invalid route" in refused(d, "route", "set", "acme.example", "http://x:1")
    assert "invalid route" in refused(d, "route", "set", "acme.example", "smtp://hostonly")
    assert "belongs to no tenant" in refused(d, "route", "set", "other.example",
                                             "smtp://127.0.0.1:25")
    d.cli("domain", "remove", "acme", "acme.example")
    assert jcli(d, "route", "list") == []


def test_relay_round_trip(mailark_daemon):
    d = mailark_daemon()
    d.cli("tenant", "add", "acme")
    d.cli("relay", "add", "acme", "192.0.2.77/24")
    d.cli("relay", "add", "acme", "2001:DB8::/32")
    assert jcli(d, "relay", "list", "acme") == [
        {"tenant": "acme", "cidr": "192.0.2.0/24"},
        {"tenant": "acme", "cidr": "2001:db8::/32"}]
    assert "already has" in refused(d, "relay", "add", "acme", "192.0.2.0/24")
    assert "invalid network" in refused(d, "relay", "add", "acme", "192.0.2.0/33")
    assert "no tenant" in refused(d, "relay", "add", "ghost", "10.0.0.0/8")
    d.cli("relay", "remove", "acme", "192.0.2.0/24")
    assert [r["cidr"] for r in jcli(d, "relay", "list")] == ["2001:db8::/32"]
    assert "no relay network" in refused(d, "relay", "remove", "acme", "192.0.2.0/24")
    table = d.cli("relay", "list").stdout.splitlines()
    assert table[0].split() == ["TENANT", "NETWORK"]


def test_queue_commands_on_empty_queue(mailark_daemon):
    d = mailark_daemon()
    assert jcli(d, "queue", "list") == []
    assert "queue is empty" in d.cli("queue", "list").stdout
    assert jcli(d, "queue", "flush") == {"entries": 0}
    for sub in ("show", "hold", "release", "delete"):
        assert "no queued message" in refused(d, "queue", sub, "0123456789ABCDEF")


def test_queue_list_shows_a_deferred_message(mailark_daemon):
    # The route points at a closed port: the message stays queued.
    d = mailark_daemon({"queue.retry_min": "1h"})
    d.cli("tenant", "add", "acme")
    d.cli("domain", "add", "acme", "acme.example")
    d.cli("route", "set", "acme.example", "smtp://127.0.0.1:%d" % free_port())
    from conftest import swaks
    p = swaks("--server", "127.0.0.1:%d" % d.smtp_port, "--from", "a@sender.example",
              "--to", "bob@acme.example", "--body", "hello")
    assert p.returncode == 0, p.stdout
    entries = jcli(d, "queue", "list")
    assert len(entries) == 1
    e = entries[0]
    assert e["sender"] == "a@sender.example"
    assert e["recipients"][0]["addr"] == "bob@acme.example"
    assert e["held"] is False
    table = d.cli("queue", "list").stdout.splitlines()
    assert table[0].split()[:5] == ["ID", "ARRIVAL", "SIZE", "SENDER", "RECIPIENTS"]
    assert e["id"] in table[1] and "bob@acme.example (pending)" in table[1]
    d.cli("queue", "hold", e["id"])
    assert jcli(d, "queue", "show", e["id"])["held"] is True
    d.cli("queue", "release", e["id"])
    assert jcli(d, "queue", "show", e["id"])["held"] is False
    d.cli("queue", "delete", e["id"])
    d.wait_log(r"admin cmd=queue\.delete id=%s" % e["id"])


# ---- errors, help, version, configuration -------------------------------------


def test_daemon_not_running(tmp_path):
    data_dir = tmp_path / "var"
    conf = write_conf(tmp_path / "mailark.conf", data_dir)
    assert run("-c", conf, "init").returncode == 0
    p = run("-c", conf, "tenant", "list")
    assert p.returncode == 1
    sock = "%s/control.sock" % data_dir
    assert p.stderr.strip() == ("mailark: the daemon is not running (no control socket at "
                                "%s); start it with 'mailark serve'" % sock)


def test_bad_config_exit_2(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[server]\ndata_dir = %s\n\n[smtp]\nmax_recipients = many\n" % tmp_path)
    for args in (("tenant", "list"), ("init",), ("serve",)):
        p = run("-c", conf, *args)
        assert p.returncode == 2, args
        assert p.stderr.startswith("%s:5: " % conf), p.stderr
        assert "max_recipients" in p.stderr
    conf.write_text("[smtp]\nnonsense = 1\n")
    p = run("-c", conf, "tenant", "list")
    assert p.returncode == 2 and "%s:2: unknown key 'nonsense'" % conf in p.stderr


def test_version_and_usage():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.strip() == "mailark 0.1.0"
    p = run("frobnicate")
    assert p.returncode == 2 and "usage:" in p.stderr and p.stdout == ""
    p = run()
    assert p.returncode == 2 and "usage:" in p.stderr
    p = run("tenant", "frob")
    assert p.returncode == 2 and "unknown subcommand" in p.stderr


COMMANDS = [
    ("init",), ("serve",), ("tenant",), ("tenant", "add"), ("tenant", "list"),
    ("tenant", "show"), ("tenant", "remove"), ("domain",), ("domain", "add"),
    ("domain", "list"), ("domain", "remove"), ("route",), ("route", "set"),
    ("route", "list"), ("relay",), ("relay", "add"), ("relay", "list"),
    ("relay", "remove"), ("queue",), ("queue", "list"), ("queue", "show"),
    ("queue", "flush"), ("queue", "hold"), ("queue", "release"), ("queue", "delete"),
]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_everywhere(flag, tmp_path):
    p = run(flag, cwd=tmp_path)
    assert p.returncode == 0 and "usage: mailark" in p.stdout
    for cmd in COMMANDS:
        p = run(*cmd, flag, cwd=tmp_path)
        assert p.returncode == 0, cmd
        assert "usage: mailark" in p.stdout, cmd
        assert " ".join(cmd) in p.stdout, cmd
    # help never touches a data directory
    assert not (tmp_path / "var").exists()


def test_init_idempotent(tmp_path):
    data_dir = tmp_path / "var"
    conf = write_conf(tmp_path / "mailark.conf", data_dir)
    assert run("-c", conf, "init").returncode == 0
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    key = data_dir / "keys" / "master.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes()) == 32
    for p in ("queue", "tls/cert.pem", "tls/key.pem", "mailark.db"):
        assert (data_dir / p).exists(), p
    before = key.read_bytes(), (data_dir / "tls" / "cert.pem").read_bytes()
    p = run("-c", conf, "init")
    assert p.returncode == 0 and "already initialised" in p.stdout
    assert before == (key.read_bytes(), (data_dir / "tls" / "cert.pem").read_bytes())


def test_serve_refuses_uninitialised(tmp_path):
    conf = write_conf(tmp_path / "mailark.conf", tmp_path / "var")
    p = run("-c", conf, "serve")
    assert p.returncode == 1
    assert "mailark init" in p.stderr


def test_default_config_from_cwd(tmp_path):
    data_dir = tmp_path / "elsewhere"
    write_conf(tmp_path / "mailark.conf", data_dir)
    assert run("init", cwd=tmp_path).returncode == 0
    assert (data_dir / "mailark.db").exists()


# ---- the running daemon -------------------------------------------------------


def test_metrics_and_health(mailark_daemon):
    d = mailark_daemon()
    base = "http://127.0.0.1:%d" % d.http_port
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        body = r.read().decode()
        assert r.status == 200
        assert "version=0.0.4" in r.headers["Content-Type"]
    assert "mailark_messages_accepted_total" in body
    with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
        assert r.read().decode().strip() == "ok"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/nothing", timeout=5)
    assert e.value.code == 404


def test_control_socket_mode(mailark_daemon):
    d = mailark_daemon()
    st = os.stat(Path(d.data_dir) / "control.sock")
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_control_socket_rejects_garbage(mailark_daemon):
    import socket
    d = mailark_daemon()
    path = str(Path(d.data_dir) / "control.sock")
    for req in (b"this is not json\n", b"[1,2]\n", b'{"cmd":"no.such"}\n',
                b'{"cmd":"tenant.add","args":{}}\n'):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(req)
            answer = json.loads(s.makefile().readline())
            assert answer["ok"] is False and answer["error"], req
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        try:
            # past the 96 MiB request limit (requests carry whole messages)
            s.sendall(b"x" * (97 * 1024 * 1024))
        except OSError:
            pass
        line = s.makefile().readline()
        assert "too long" in line
    # still alive
    assert jcli(d, "tenant", "list") == []


def test_second_serve_refused(mailark_daemon):
    d = mailark_daemon()
    p = d.cli("serve", check=False, timeout=20)
    assert p.returncode == 1
    assert "already running" in p.stderr
    # the first daemon is unharmed
    assert (Path(d.data_dir) / "control.sock").exists()
    assert jcli(d, "tenant", "list") == []


def test_sigterm_with_idle_session_exits_promptly(mailark_daemon):
    import socket
    import time
    d = mailark_daemon()
    with socket.create_connection(("127.0.0.1", d.smtp_port), timeout=5) as s:
        assert s.recv(512).startswith(b"220")
        t0 = time.monotonic()
        d.stop()          # asserts exit status 0
        assert time.monotonic() - t0 < 5
    assert not (Path(d.data_dir) / "control.sock").exists()


def test_port_in_use_is_fatal(mailark_daemon, tmp_path):
    d = mailark_daemon()
    data_dir = tmp_path / "var2"
    conf = tmp_path / "other.conf"
    conf.write_text("[server]\ndata_dir = %s\n[smtp]\nlisten = 127.0.0.1:%d\n"
                    "[http]\nlisten = 127.0.0.1:%d\n" % (data_dir, free_port(), d.http_port))
    assert run("-c", conf, "init").returncode == 0
    p = run("-c", conf, "serve", timeout=20)
    assert p.returncode == 1
    assert "start_failed" in p.stderr and "http" in p.stderr
