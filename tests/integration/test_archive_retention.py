"""Retention, legal holds, cases, purge, retention lock and four eyes,
against the real daemon.  Expiry is read straight from store.db
(messages.expires_at) and compared with what the policy says: the Date:
header plus the LONGEST of the default and every matching rule.  Changes
that need four eyes are requested by the CLI (actor cli@local) or one
tenant admin and approved by another tenant admin through the HTTP API.
"""

import os
import time

import pytest

from test_archive_common import (api, approve, arch, arch_refused, entries, import_, jcli,
                                 make_msg, rfc_date, search, sha, show_bytes, store_rows,
                                 tenant, user)

DAY = 86400


def expiries(d, tenant_="acme"):
    return {(h, mb): e for h, mb, e in
            store_rows(d, tenant_, "SELECT hash, mailbox, expires_at FROM messages")}


def wait_expiries(d, want, timeout=30):
    """Polls store.db until every (hash, mailbox) in want has its expiry."""
    deadline = time.monotonic() + timeout
    while True:
        got = expiries(d)
        bad = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        if not bad:
            return
        if time.monotonic() > deadline:
            raise AssertionError("expires_at (got, want) by (hash, mailbox): %s" % bad)
        time.sleep(0.3)


def put(d, tmp_path, name, data, *args):
    path = tmp_path / ("%s.eml" % name)
    path.write_bytes(data)
    res = import_(d, "acme", "--eml", str(path), *args)
    assert res["imported"] + res["duplicates"] == 1 and res["failed"] == 0, res
    return sha(data)


@pytest.fixture
def acme(mailark_daemon):
    """A daemon with tenant acme and two tenant admins (API tokens)."""
    d = mailark_daemon()
    tenant(d, "acme", "acme.example")
    adm1 = user(d, "acme", "adm1@acme.example", "admin")
    adm2 = user(d, "acme", "adm2@acme.example", "admin")
    return d, adm1, adm2


def policy(d):
    return arch(d, "retention", "show", "acme")


def rule_id(d, kind, match):
    for r in policy(d)["rules"]:
        if r["kind"] == kind and r["match"].lower() == match.lower():
            return r["id"]
    raise AssertionError("no %s rule %r in %s" % (kind, match, policy(d)))


def test_expiry_from_date_rules_longest_wins_and_recompute(acme, tmp_path):
    d, adm1, _ = acme
    date, t = rfc_date(2015, 3, 1)
    mb = ("--mailbox", "u1@acme.example")
    h = {
        "plain": put(d, tmp_path, "plain", make_msg("plain one", date=date), *mb,
                     "--folder", "Inbox"),
        "legal": put(d, tmp_path, "legal", make_msg("legal one", date=date), *mb,
                     "--folder", "Legal"),
        "legalsub": put(d, tmp_path, "legalsub", make_msg("legal sub", date=date), *mb,
                        "--folder", "legal/2019"),
        "legalese": put(d, tmp_path, "legalese", make_msg("legalese", date=date), *mb,
                        "--folder", "Legalese"),
        "boss": put(d, tmp_path, "boss", make_msg("from the boss", date=date,
                                                  sender="The Boss <boss@partner.example>"), *mb),
        "dom": put(d, tmp_path, "dom", make_msg("from the firm", date=date,
                                                sender="<x@lawfirm.example>"), *mb),
        "subdom": put(d, tmp_path, "subdom", make_msg("from a subdomain", date=date,
                                                      sender="<y@sub.lawfirm.example>"), *mb),
        "kw": put(d, tmp_path, "kw", make_msg("status", date=date,
                                              body="about Project Falcon, phase two\n"), *mb),
    }
    key = {k: (v, "u1@acme.example") for k, v in h.items()}
    assert policy(d)["default_days"] == 3650
    wait_expiries(d, {key[k]: t + 3650 * DAY for k in h})

    for kind, match, keep in (("--folder", "Legal", "15y"), ("--address", "boss@partner.example",
                              "forever"), ("--domain", "lawfirm.example", "12y"),
                              ("--keyword", "project falcon", "20y"),
                              ("--folder", "Inbox", "1y")):
        r = arch(d, "retention", "add", "acme", kind, match, "--keep", keep)
        assert "pending_approval" not in r, r          # adding rules needs no approval
    want = {"plain": 3650, "legal": 5475, "legalsub": 5475, "legalese": 3650, "boss": None,
            "dom": 4380, "subdom": 3650, "kw": 7300}
    wait_expiries(d, {key[k]: (t + days * DAY if days else None) for k, days in want.items()})

    # lengthening the default: no approval, everything recomputed
    r = arch(d, "retention", "set", "acme", "--default", "16y")
    assert "pending_approval" not in r, r
    assert policy(d)["default_days"] == 5840
    want = {"plain": 5840, "legal": 5840, "legalsub": 5840, "legalese": 5840, "boss": None,
            "dom": 5840, "subdom": 5840, "kw": 7300}
    wait_expiries(d, {key[k]: (t + days * DAY if days else None) for k, days in want.items()})

    # removing a rule shortens: four eyes, then recomputed
    kw_rule = rule_id(d, "keyword", "project falcon")
    r = arch(d, "retention", "remove", "acme", str(kw_rule))
    assert r.get("pending_approval"), r
    time.sleep(1)
    assert expiries(d)[key["kw"]] == t + 7300 * DAY, "a pending change took effect"
    approve(d, adm1, "acme", r["pending_approval"])
    wait_expiries(d, {key["kw"]: t + 5840 * DAY})
    assert all(x["kind"] != "keyword" for x in policy(d)["rules"])

    # a message archived now gets its expiry at ingest
    late = put(d, tmp_path, "late", make_msg("late boss", date=rfc_date(2016, 1, 1)[0],
                                             sender="<boss@partner.example>"),
               "--mailbox", "u2@acme.example")
    wait_expiries(d, {(late, "u2@acme.example"): None})


def test_purge_respects_holds_and_shared_blobs(acme, tmp_path):
    d, adm1, adm2 = acme
    old = lambda y, m=3: rfc_date(y, m, 1)[0]          # noqa: E731
    h_shared = put(d, tmp_path, "shared", make_msg("old shared", date=old(2005)),
                   "--mailbox", "ann@acme.example")
    put(d, tmp_path, "shared", make_msg("old shared", date=old(2005)),
        "--mailbox", "carl@acme.example")
    h_lynx = put(d, tmp_path, "lynx", make_msg("keepme Lynx", date=old(2005)),
                 "--mailbox", "carl@acme.example")
    h_gone = put(d, tmp_path, "gone", make_msg("old and gone", date=old(2006)),
                 "--mailbox", "dora@acme.example")
    h_june = put(d, tmp_path, "june", make_msg("june memo", date=old(2006, 6)),
                 "--mailbox", "dora@acme.example")
    h_new = put(d, tmp_path, "new", make_msg("recent", date=rfc_date(2025, 1, 1)[0]),
                "--mailbox", "dora@acme.example")
    assert len(entries(d, "acme")) == 6
    assert store_rows(d, "acme", "SELECT count(*) FROM blobs")[0][0] == 5

    arch(d, "case", "add", "acme", "Case-1")
    arch(d, "hold", "add", "acme", "h-ann", "--case", "Case-1", "--mailbox", "ann@acme.example")
    arch(d, "hold", "add", "acme", "h-lynx", "--query", "subject:lynx")
    arch(d, "hold", "add", "acme", "h-june", "--mailbox", "dora@acme.example",
         "--from", "2006-06-01", "--to", "2006-07-01")
    holds = {x["name"]: x for x in arch(d, "hold", "list", "acme")}
    assert set(holds) == {"h-ann", "h-lynx", "h-june"} and all(x["active"] for x in holds.values())

    before = sorted(entries(d, "acme"))
    dry = arch(d, "purge", "acme", "--dry-run")
    assert dry["messages"] == 2 and dry["held_skipped"] == 3, dry
    assert sorted(entries(d, "acme")) == before, "a dry run changed the archive"

    r = arch(d, "purge", "acme")
    assert r["messages"] == 2 and r["blobs"] == 1 and r["held_skipped"] == 3, r
    left = {(h, mb) for h, mb, _ in entries(d, "acme")}
    assert left == {(h_shared, "ann@acme.example"), (h_lynx, "carl@acme.example"),
                    (h_june, "dora@acme.example"), (h_new, "dora@acme.example")}
    blobs = {x[0] for x in store_rows(d, "acme", "SELECT hash FROM blobs")}
    assert h_gone not in blobs, "the purged message's blob is still there"
    assert blobs == {h_shared, h_lynx, h_june, h_new}, "shared blob gone or purged blob kept"
    assert search(d, "acme", "subject:gone")["total"] == 0
    r2 = search(d, "acme", '"old shared"')
    assert r2["total"] == 1 and r2["hits"][0]["mailbox"] == "ann@acme.example"
    assert show_bytes(d, "acme", r2["hits"][0]["id"]) == make_msg("old shared", date=old(2005))
    assert arch(d, "verify", "acme")["intact"] is True
    audit = jcli(d, "audit", "list", "--tenant", "acme", "--limit", "1000")
    assert any("purge" in e["action"] for e in audit), [e["action"] for e in audit]

    # a case with active holds cannot be deleted
    arch_refused(d, "case", "delete", "acme", "Case-1")
    # releasing a hold: four eyes; the requester cannot approve it
    rel = arch(d, "hold", "release", "acme", "h-ann")
    assert rel.get("pending_approval"), rel
    arch_refused(d, "approval", "approve", "acme", str(rel["pending_approval"]))
    assert arch(d, "purge", "acme")["messages"] == 0        # still held
    approve(d, adm2, "acme", rel["pending_approval"])
    r = arch(d, "purge", "acme")
    assert r["messages"] == 1 and r["blobs"] == 1, r
    assert h_shared not in {x[0] for x in store_rows(d, "acme", "SELECT hash FROM blobs")}
    assert (h_lynx, "carl@acme.example") in {(h, mb) for h, mb, _ in entries(d, "acme")}

    # the case (no active hold now) is deleted with four eyes too
    dl = arch(d, "case", "delete", "acme", "Case-1")
    assert dl.get("pending_approval"), dl
    assert any(c["name"] == "Case-1" for c in arch(d, "case", "list", "acme"))
    approve(d, adm1, "acme", dl["pending_approval"])
    assert not any(c["name"] == "Case-1" for c in arch(d, "case", "list", "acme"))


def test_retention_lock_binds_everyone(acme, tmp_path):
    d, adm1, adm2 = acme
    date, t = rfc_date(2015, 3, 1)
    h = put(d, tmp_path, "m", make_msg("locked memo", date=date), "--folder", "Legal")
    arch(d, "retention", "add", "acme", "--folder", "Legal", "--keep", "forever")
    wait_expiries(d, {(h, ""): None})
    rid = rule_id(d, "folder", "Legal")
    arch(d, "retention", "add", "acme", "--folder", "Board", "--keep", "12y")
    p = d.cli("archive", "retention", "lock", "acme", check=False)
    assert p.returncode == 2 and "--yes" in p.stderr           # needs confirmation
    arch(d, "retention", "lock", "acme", "--yes")
    assert policy(d)["locked"] in (True, 1)

    assert "lock" in arch_refused(d, "retention", "set", "acme", "--default", "5y")
    assert "lock" in arch_refused(d, "retention", "remove", "acme", str(rid))
    assert "lock" in arch_refused(d, "settings", "acme", "four_eyes", "off")
    assert "lock" in arch_refused(d, "shred", "acme", "--yes")
    op = jcli(d, "token", "create", "--name", "op")["token"]      # the operator, via the API
    st, js = api(d, "PUT", "/api/v1/tenants/acme/archive/retention", op, {"default_days": 30})
    assert 400 <= st < 500 and st != 404, (st, js)
    st, js = api(d, "DELETE", "/api/v1/tenants/acme/archive/retention/rules/%s" % rid, adm1)
    assert 400 <= st < 500, (st, js)
    pol = policy(d)
    assert pol["default_days"] == 3650 and any(r["id"] == rid for r in pol["rules"])
    assert not any(a.get("state") == "pending" for a in arch(d, "approval", "list", "acme"))
    assert show_bytes(d, "acme", 1) == make_msg("locked memo", date=date)   # not shredded
    assert os.path.exists(os.path.join(d.data_dir, "archive", "acme", "datakey"))

    # lengthening still works; nothing expires early
    arch(d, "retention", "set", "acme", "--default", "12y")
    assert policy(d)["default_days"] == 4380
    assert arch(d, "purge", "acme")["messages"] == 0
    assert len(entries(d, "acme")) == 1


def test_four_eyes(acme, tmp_path):
    d, adm1, adm2 = acme
    aud = user(d, "acme", "aud@acme.example", "auditor")
    put(d, tmp_path, "m", make_msg("four eyes memo"))
    assert policy(d)["four_eyes"] in (True, 1)

    r = arch(d, "retention", "set", "acme", "--default", "1y")
    assert r.get("pending_approval"), r
    assert policy(d)["default_days"] == 3650, "shortened without approval"
    pend = [a for a in arch(d, "approval", "list", "acme") if a["state"] == "pending"]
    assert [a["id"] for a in pend] == [r["pending_approval"]]
    arch_refused(d, "approval", "approve", "acme", str(r["pending_approval"]))   # same actor
    st, js = api(d, "POST", "/api/v1/tenants/acme/archive/approvals/%s/approve"
                 % r["pending_approval"], aud)
    assert st == 403, (st, js)                    # auditors approve nothing
    approve(d, adm1, "acme", r["pending_approval"])
    assert policy(d)["default_days"] == 365

    # requested by one admin through the API: that admin cannot approve, another rejects
    st, js = api(d, "PUT", "/api/v1/tenants/acme/archive/settings/four_eyes", adm2,
                 {"value": "off"})
    assert st in (200, 201, 202) and js.get("pending_approval"), (st, js)
    aid = js["pending_approval"]
    st, js2 = api(d, "POST", "/api/v1/tenants/acme/archive/approvals/%s/approve" % aid, adm2)
    assert 400 <= st < 500, (st, js2)
    st, js2 = api(d, "POST", "/api/v1/tenants/acme/archive/approvals/%s/reject" % aid, adm1)
    assert st == 200, (st, js2)
    assert policy(d)["four_eyes"] in (True, 1)
    states = {a["id"]: a["state"] for a in arch(d, "approval", "list", "acme")}
    assert states[aid] == "rejected"
    st, js2 = api(d, "POST", "/api/v1/tenants/acme/archive/approvals/%s/approve" % aid, adm1)
    assert 400 <= st < 500, (st, js2)             # not pending any more
    assert policy(d)["four_eyes"] in (True, 1)

    # lengthening: at once
    r = arch(d, "retention", "set", "acme", "--default", "2y")
    assert "pending_approval" not in r and policy(d)["default_days"] == 730

    # exports under four_eyes_export wait for a second admin
    arch(d, "settings", "acme", "four_eyes_export", "on")
    assert policy(d)["four_eyes_export"] in (True, 1)
    st, js = api(d, "POST", "/api/v1/tenants/acme/archive/exports", aud,
                 {"query": "*", "format": "eml", "out": "fe.zip"})
    assert st in (200, 201, 202) and js.get("pending_approval"), (st, js)
    assert not os.path.exists(os.path.join(d.data_dir, "exports", "acme", "fe.zip"))
