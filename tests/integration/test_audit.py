"""The audit trail against the real daemon: CLI commands are recorded with
actor cli@local and their outcome; `mailark audit list` filters them;
after the daemon stops, editing, deleting or reordering rows of mailark.db
directly (Python's sqlite3, each on a fresh copy) makes `mailark audit
verify` exit 1 naming the first bad entry, and the untouched file verifies.
"""

import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path


def _entries(d, *args):
    p = d.cli("audit", "list", "--json", *args)
    return json.loads(p.stdout)


def _setup(mailark_daemon):
    d = mailark_daemon()
    d.cli("tenant", "add", "acme")
    d.cli("domain", "add", "acme", "acme.example")
    refused = d.cli("domain", "add", "nosuch", "nosuch.example", check=False)
    assert refused.returncode == 1
    d.cli("tenant", "add", "globex")
    return d


def test_list_shows_cli_commands(mailark_daemon):
    d = _setup(mailark_daemon)
    entries = _entries(d)
    assert [e["seq"] for e in entries] == [4, 3, 2, 1]          # newest first
    got = [(e["action"], e["actor"], e["role"], e["tenant"], e["outcome"]) for e in entries]
    assert got == [
        ("tenant.add", "cli@local", "operator", "globex", "ok"),
        ("domain.add", "cli@local", "operator", "nosuch", "failed"),
        ("domain.add", "cli@local", "operator", "acme", "ok"),
        ("tenant.add", "cli@local", "operator", "acme", "ok"),
    ]
    assert entries[1]["detail"] and "nosuch" in entries[1]["detail"]
    assert entries[2]["object"] == "tenant:acme domain:acme.example"
    assert all(e["source"] == "local" for e in entries)
    # Reads are not audited.
    d.cli("tenant", "list")
    assert len(_entries(d)) == 4

    assert [e["seq"] for e in _entries(d, "--tenant", "acme")] == [2, 1]
    assert [e["seq"] for e in _entries(d, "--limit", "1")] == [4]
    assert len(_entries(d, "--actor", "cli@local", "--since", "1h")) == 4
    assert _entries(d, "--actor", "someone@else") == []
    assert _entries(d, "--since", "2999-01-01T00:00:00Z") == []
    assert len(_entries(d, "--since", "2000-01-01")) == 4

    text = d.cli("audit", "list").stdout
    assert "domain.add" in text and "failed" in text and "cli@local" in text

    bad = d.cli("audit", "list", "--since", "yesterday-ish", check=False)
    assert bad.returncode != 0 and "invalid time" in bad.stderr
    bad = d.cli("audit", "list", "--bogus", check=False)
    assert bad.returncode == 2

    ok = d.cli("audit", "verify")
    assert ok.stdout.startswith("audit: ok: 4 entries")


def test_key_files_and_list_without_daemon(mailark_daemon):
    d = _setup(mailark_daemon)
    keys = Path(d.data_dir) / "keys"
    assert stat.S_IMODE(os.stat(keys / "audit.key").st_mode) == 0o600
    assert len((keys / "audit.key").read_bytes()) == 32
    assert len((keys / "audit.pub").read_text().strip()) == 64
    d.stop()
    # list falls back to reading the database when no daemon answers
    assert [e["seq"] for e in _entries(d)] == [4, 3, 2, 1]
    # the clean shutdown signed a checkpoint at the last entry
    v = d.cli("audit", "verify")
    assert "4 entries, 1 signed checkpoints (the last at entry 4" in v.stdout


def _tampered(d, pristine, sql, params=()):
    """Restores the pristine copy, applies sql, runs verify; returns it."""
    db = Path(d.data_dir) / "mailark.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.copyfile(pristine, db)
    if sql:
        con = sqlite3.connect(str(db))
        with con:
            con.executescript(sql) if not params else con.execute(sql, params)
        con.close()
    return d.cli("audit", "verify", check=False)


def test_verify_catches_tampering(mailark_daemon, tmp_path):
    d = _setup(mailark_daemon)
    for i in range(6):
        d.cli("relay", "add", "acme", "192.0.2.%d/32" % i)
    d.stop()
    pristine = tmp_path / "pristine.db"
    shutil.copyfile(Path(d.data_dir) / "mailark.db", pristine)
    n = 10

    p = _tampered(d, pristine, None)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("audit: ok: %d entries" % n)

    p = _tampered(d, pristine, "UPDATE audit SET object = 'tenant:nothing' WHERE seq = 3")
    assert p.returncode == 1
    assert p.stdout.strip() == "audit: entry 3: hash mismatch (edited?)"

    p = _tampered(d, pristine, "UPDATE audit SET outcome = 'ok' WHERE seq = 3")
    assert p.returncode == 1 and "audit: entry 3: hash mismatch" in p.stdout

    p = _tampered(d, pristine, "DELETE FROM audit WHERE seq = 5")
    assert p.returncode == 1
    assert p.stdout.strip() == "audit: entry 5: missing (deleted?)"

    # the last entry is under the shutdown checkpoint: cutting it off is caught
    p = _tampered(d, pristine, "DELETE FROM audit WHERE seq = %d" % n)
    assert p.returncode == 1
    assert p.stdout.startswith("audit: entry %d: missing" % n)

    # reorder: swap the whole contents (all but seq) of entries 4 and 7
    cols = ("time_us, actor, role, tenant, action, object, source, outcome, detail, "
            "prev_hash, hash")
    p = _tampered(d, pristine,
                  "CREATE TABLE t AS SELECT * FROM audit WHERE seq IN (4, 7);"
                  "UPDATE audit SET (%s) = (SELECT %s FROM t WHERE t.seq = 11 - audit.seq)"
                  " WHERE seq IN (4, 7); DROP TABLE t;" % (cols, cols))
    assert p.returncode == 1
    assert p.stdout.startswith("audit: entry 4: "), p.stdout
    assert "reordered" in p.stdout

    # a forged checkpoint signature
    p = _tampered(d, pristine,
                  "UPDATE audit_checkpoints SET signature = zeroblob(64) WHERE seq = %d" % n)
    assert p.returncode == 1
    assert p.stdout.strip() == "audit: entry %d: checkpoint signature invalid (forged?)" % n

    # untouched again: good
    p = _tampered(d, pristine, None)
    assert p.returncode == 0


def test_verify_against_offline_public_key(mailark_daemon, tmp_path):
    d = _setup(mailark_daemon)
    d.stop()
    keep = tmp_path / "audit.pub"
    shutil.copyfile(Path(d.data_dir) / "keys" / "audit.pub", keep)
    assert d.cli("audit", "verify", "--pubkey", keep).returncode == 0
    # an attacker who re-keys the data directory is caught by the kept copy
    other = tmp_path / "other.pub"
    other.write_text("00" * 32 + "\n")
    p = d.cli("audit", "verify", "--pubkey", other, check=False)
    assert p.returncode == 1 and "unknown key" in p.stdout
    j = json.loads(d.cli("audit", "verify", "--json").stdout)
    assert j["ok"] is True
