"""The archive against the real daemon: gateway ingest (inbound, outbound,
journal reports, kill -9 while archiving), byte-exact round trips of the
whole linux-mips Maildir, search answers checked against an independent
count made with Python's email parser (archive_pycount.py), paging, bad
queries, e-discovery export (zip, manifest, re-import), verify and
tampering, sealed storage, reindex and a lost or corrupt index, and who may
see what through the HTTP API.
"""

import base64
import csv
import io
import json
import os
import random
import re
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

import archive_pycount as pc
from conftest import free_port
from test_archive_common import (MAILDIR, api, api_search, arch, arch_refused, entries,
                                 finish_daemon, import_, jcli, maildir_subset, make_msg,
                                 need_corpus, own_daemon, read_mboxrd, search, search_all, send, sha,
                                 show_bytes, show_raw, store_rows, tenant, user, wait_total,
                                 archive_dir)

FAST = {"queue.retry_min": "1s", "queue.retry_max": "2s"}


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def queue_empty_of(d, qids, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        listing = d.cli("queue", "list").stdout
        left = [q for q in qids if q in listing]
        if not left:
            return
        assert time.monotonic() < deadline, "still queued: %s" % left
        time.sleep(0.3)


def metrics(d):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % d.http_port, timeout=10) as r:
        return r.read().decode()


# =====================================================================
# gateway


def test_gateway_inbound_and_outbound(mailark_daemon, smtp_primary):
    p = smtp_primary()
    d = mailark_daemon(FAST, **{"delivery.dns_resolver": "127.0.0.1@%d" % free_port(),
                                "delivery.connect_timeout": "2s"})
    tenant(d, "acme", "acme.example")
    d.cli("route", "set", "acme.example", "smtp://127.0.0.1:%d" % p.port)

    # inbound, two recipients (one in capitals): one blob, an entry per mailbox
    data = crlf(make_msg("Gateway Narwhal 4711", body="inbound body\n"))
    qid = send(d, "alice@elsewhere.example", ["bob@acme.example", "Carol@ACME.example"], data)
    m = d.wait_log(r"archived id=%s tenant=acme sha256=([0-9a-f]{64})" % qid, timeout=20)
    got = p.wait_for(1)[0]
    queue_empty_of(d, [qid])
    # archived raw == what the primary received, byte for byte
    assert m.group(1) == sha(got.data), "archived hash differs from the delivered bytes"
    r = wait_total(d, "acme", "subject:Narwhal", 2)
    assert {h["mailbox"] for h in r["hits"]} == {"bob@acme.example", "carol@acme.example"}
    assert {h["sha256"] for h in r["hits"]} == {sha(got.data)}
    for h in r["hits"]:
        assert show_bytes(d, "acme", h["id"]) == got.data
        e = arch(d, "show", "acme", str(h["id"]))
        assert e["source"] == "inbound" and e["queue_id"] == qid
        assert e["env_from"] == "alice@elsewhere.example"
        assert {a.strip().lower() for a in e["env_rcpts"].split(",")} == \
            {"bob@acme.example", "carol@acme.example"}
        assert base64.b64decode(e["raw_base64"]) == got.data and e["size"] == len(got.data)
    rows = store_rows(d, "acme", "SELECT mailbox FROM messages WHERE hash = ?", (sha(got.data),))
    assert sorted(x[0] for x in rows) == ["bob@acme.example", "carol@acme.example"]
    assert store_rows(d, "acme", "SELECT count(*) FROM blobs")[0][0] == 1

    # outbound from a relay network: the tenant's sender is the mailbox
    d.cli("relay", "add", "acme", "127.0.0.0/8")
    data2 = crlf(make_msg("Outbound Pangolin 99", sender="Alice <alice@acme.example>",
                          to="zed@elsewhere.example"))
    qid2 = send(d, "alice@acme.example", ["zed@elsewhere.example"], data2)
    d.wait_log(r"archived id=%s tenant=acme sha256=[0-9a-f]{64}" % qid2, timeout=20)
    r = wait_total(d, "acme", "subject:Pangolin", 1)
    hit = r["hits"][0]
    assert hit["mailbox"] == "alice@acme.example"
    e = arch(d, "show", "acme", str(hit["id"]))
    assert e["source"] == "outbound" and e["queue_id"] == qid2
    assert e["env_rcpts"].lower() == "zed@elsewhere.example"

    text = metrics(d)
    m = re.search(r"^mailark_archive_messages_total (\d+)$", text, re.M)
    assert m and int(m.group(1)) >= 2, text
    assert re.search(r"^mailark_archive_index_lag \d+$", text, re.M), text


def test_journal_report_unwrapped_with_bcc(mailark_daemon):
    d = mailark_daemon(FAST)
    tenant(d, "acme", "acme.example", "journal.acme.example")
    d.cli("route", "set", "journal.acme.example", "archive:")
    orig = crlf(make_msg("Journal Okapi figures", sender="Ann <a@partner.example>",
                         to="Bee <b@acme.example>", body="the numbers\n",
                         msgid="<okapi-1@partner.example>"))
    report = crlf(
        b"From: Microsoft Exchange <postmaster@acme.example>\n"
        b"To: journal@journal.acme.example\n"
        b"Subject: Journal report\n"
        b"X-MS-Journal-Report:\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: multipart/mixed; boundary=\"JRNL-b0undary\"\n\n"
        b"--JRNL-b0undary\n"
        b"Content-Type: text/plain; charset=us-ascii\n\n"
        b"Sender: a@partner.example\n"
        b"Subject: Journal Okapi figures\n"
        b"Message-Id: <okapi-1@partner.example>\n"
        b"To: b@acme.example\n"
        b"Bcc: c@acme.example\n\n"
        b"--JRNL-b0undary\n"
        b"Content-Type: message/rfc822\n\n") + orig + b"\r\n--JRNL-b0undary--\r\n"
    qid = send(d, "postmaster@acme.example", ["journal@journal.acme.example"], report)
    m = d.wait_log(r"archived id=%s tenant=acme sha256=([0-9a-f]{64})" % qid, timeout=20)
    assert m.group(1) == sha(orig), "the archived copy is not the attached original"
    queue_empty_of(d, [qid])
    # only the original, once per recipient in the tenant's domains, Bcc included
    assert sorted(entries(d, "acme")) == [(sha(orig), "b@acme.example", ""),
                                          (sha(orig), "c@acme.example", "")]
    r = wait_total(d, "acme", "subject:Okapi", 2)
    for h in r["hits"]:
        assert show_bytes(d, "acme", h["id"]) == orig
        e = arch(d, "show", "acme", str(h["id"]))
        assert e["source"] == "journal"
        rcpts = {a.strip().lower() for a in (e["env_rcpts"] or "").split(",")}
        assert {"b@acme.example", "c@acme.example"} <= rcpts, e["env_rcpts"]
    # to: matches envelope recipients: the Bcc one is findable though in no header
    assert search(d, "acme", 'to:"c@acme.example"')["total"] >= 1
    assert search(d, "acme", 'cc:"c@acme.example"')["total"] == 0


def test_kill9_while_archiving_each_message_once(mailark_daemon, smtp_primary):
    p = smtp_primary()
    d = mailark_daemon(FAST)
    tenant(d, "acme", "acme.example")
    d.cli("route", "set", "acme.example", "smtp://127.0.0.1:%d" % p.port)
    n, rounds = 20, 3
    qids = []
    for r in range(rounds):        # kill -9 right after a batch got its 250s
        qids += [send(d, "alice@elsewhere.example", ["bob@acme.example"],
                      crlf(make_msg("Crashcheck %03d" % i, body=("x" * 70 + "\n") * 30)))
                 for i in range(r * n, (r + 1) * n)]
        d.kill9()
        d.start()
    n *= rounds
    p.wait_for(n, timeout=60)
    want = {"Crashcheck %03d" % i for i in range(n)}
    deadline = time.monotonic() + 30
    while True:
        got = {m.group(1).decode() for msg in list(p.messages)
               for m in [re.search(rb"Subject: (Crashcheck \d+)", msg.data)] if m}
        if got >= want:
            break
        assert time.monotonic() < deadline, "never delivered: %s" % sorted(want - got)
        time.sleep(0.3)
    queue_empty_of(d, qids, timeout=60)
    rows = store_rows(d, "acme", "SELECT queue_id, hash, mailbox FROM messages")
    per_qid = {}
    for q, h, mb in rows:
        per_qid.setdefault(q, []).append((h, mb))
    missing = [q for q in qids if q not in per_qid]
    dups = {q: v for q, v in per_qid.items() if len(v) != 1}
    assert not missing, "accepted but never archived: %s" % missing
    assert not dups, "archived more than once: %s" % dups
    assert len(rows) == n
    try:
        wait_total(d, "acme", "subject:Crashcheck", n)
    except AssertionError as e:
        v = json.loads(d.cli("archive", "verify", "acme", "--json", check=False).stdout)
        raise AssertionError("%s; stats %s; verify %s" % (e, arch(d, "stats", "acme"), v)) \
            from None
    delivered = {sha(m.data) for m in p.messages}
    assert {h for _, h, _ in rows} <= delivered, "archived bytes differ from delivered ones"


# =====================================================================
# the whole linux-mips Maildir (2015 messages), imported once for this module


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    need_corpus()
    d = own_daemon(tmp_path_factory, "full")
    try:
        tenant(d, "acme", "acme.example")
        t0 = time.monotonic()
        res = import_(d, "acme", "--maildir", str(MAILDIR))
        elapsed = time.monotonic() - t0
        files = sorted((MAILDIR / "new").iterdir())
        docs = pc.load([str(MAILDIR)])
        by_path = {}
        for f in files:
            by_path[str(f)] = sha(f.read_bytes())
        for doc in docs:
            doc["sha256"] = by_path[doc["path"]]
        yield {"d": d, "import": res, "files": files, "docs": docs, "hash_of": by_path,
               "import_secs": elapsed}
    finally:
        finish_daemon(d)


def test_maildir_import_byte_exact(full):
    d, res, files = full["d"], full["import"], full["files"]
    assert len(files) == 2015
    assert (res["imported"], res["duplicates"], res["failed"]) == (2015, 0, 0), res
    want = {full["hash_of"][str(f)] for f in files}
    rows = entries(d, "acme")
    assert len(rows) == 2015
    assert {h for h, _, _ in rows} == want
    assert {(mb, folder) for _, mb, folder in rows} == {("", "")}
    # show --raw gives the file's bytes back (a sample spread over the archive)
    ids = store_rows(d, "acme", "SELECT id, hash FROM messages ORDER BY id")
    path_of = {h: f for f in files for h in [full["hash_of"][str(f)]]}
    for ident, h in random.Random(4).sample(ids, 25):
        assert show_bytes(d, "acme", ident) == path_of[h].read_bytes()
    st = arch(d, "stats", "acme")
    assert st["messages"] == 2015 and st["blobs"] == 2015
    assert st["raw_bytes"] == sum(f.stat().st_size for f in files)
    # re-running adds nothing
    again = import_(d, "acme", "--maildir", str(MAILDIR))
    assert (again["imported"], again["duplicates"], again["failed"]) == (0, 2015, 0), again
    assert len(entries(d, "acme")) == 2015
    v = arch(d, "verify", "acme")
    assert v["intact"] is True and v["blobs"] == 2015 and v["entries"] == 2015, v
    assert v["blobs_bad"] == v["entries_missing_blob"] == v["blobs_unreferenced"] == 0
    assert v["index_missing"] == v["index_extra"] == 0


def _word_rx(phrase):
    words = phrase.split()
    return re.compile(r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, words)) + r"(?![^\W_])",
                      re.I)


def _expect(docs, field, phrase):
    rx = _word_rx(phrase)
    out = set()
    for doc in docs:
        value = doc[field]
        if isinstance(value, list):
            value = "\n".join(value)
        if rx.search(value):
            out.add(doc["sha256"])
    return out


def _check(d, query, want, docs):
    total, hits = search_all(d, "acme", query)
    got = {h["sha256"] for h in hits}
    name = {doc["sha256"]: os.path.basename(doc["path"]) for doc in docs}
    assert total == len(hits), (query, total, len(hits))
    assert got == want, "%s: archive %d, python %d; only archive: %s; only python: %s" % (
        query, len(got), len(want), [name.get(h) for h in sorted(got - want)][:5],
        [name.get(h) for h in sorted(want - got)][:5])


def test_search_matches_independent_count(full):
    d, docs = full["d"], full["docs"]
    ex = lambda f, w: _expect(docs, f, w)          # noqa: E731
    everything = {doc["sha256"] for doc in docs}
    for w in ("loongson", "kvm", "ingenic", "fix", "dts", "Namei"):
        assert ex("subject", w), w                  # the words must occur at all
        _check(d, "subject:%s" % w, ex("subject", w), docs)
    for w in ("paul", "bogendoerfer", "hellwig", "zoho"):
        _check(d, "from:%s" % w, ex("from_", w), docs)
    # cc: only Cc; to: To and Cc (and Bcc / envelope: none in imported files)
    _check(d, "cc:vger", ex("cc", "vger"), docs)
    _check(d, "to:vger", ex("to", "vger") | ex("cc", "vger"), docs)
    # phrases
    _check(d, 'subject:"page table"', ex("subject", "page table"), docs)
    _check(d, 'subject:"numa aware"', ex("subject", "numa aware"), docs)
    # boolean
    _check(d, "subject:kvm OR subject:loongson", ex("subject", "kvm") | ex("subject", "loongson"),
           docs)
    _check(d, "subject:mips -subject:patch", ex("subject", "mips") - ex("subject", "patch"), docs)
    _check(d, "subject:mips NOT subject:patch", ex("subject", "mips") - ex("subject", "patch"),
           docs)
    _check(d, "(subject:kvm OR subject:ingenic) AND from:paul",
           (ex("subject", "kvm") | ex("subject", "ingenic")) & ex("from_", "paul"), docs)
    _check(d, "SUBJECT:LOONGSON", ex("subject", "loongson"), docs)   # case-insensitive
    # dates (UTC; after inclusive, before exclusive)
    import calendar
    lo, hi = calendar.timegm((2019, 10, 1, 0, 0, 0)), calendar.timegm((2019, 11, 1, 0, 0, 0))
    in_oct = {doc["sha256"] for doc in docs if lo <= doc["date"] < hi}
    assert 0 < len(in_oct) < len(everything)
    _check(d, "after:2019-10-01 before:2019-11-01", in_oct, docs)
    _check(d, "subject:patch after:2019-10-01 before:2019-11-01",
           in_oct & ex("subject", "patch"), docs)
    # free text: subject, body and text attachments
    _check(d, "bisected", ex("subject", "bisected") | ex("body", "bisected"), docs)


def test_search_paging_newest_first(full):
    d = full["d"]
    total, every = search_all(d, "acme", "subject:mips")
    assert total > 300
    dates = [h["date"] for h in every]
    assert dates == sorted(dates, reverse=True), "not newest first"
    paged = []
    for offset in range(0, total, 97):
        r = search(d, "acme", "subject:mips", limit=97, offset=offset)
        assert r["total"] == total and r["offset"] == offset and r["limit"] == 97
        assert len(r["hits"]) == min(97, total - offset)
        paged += r["hits"]
    assert [h["id"] for h in paged] == [h["id"] for h in every]
    assert len({h["id"] for h in paged}) == total
    r = search(d, "acme", "subject:mips", limit=10, offset=total)
    assert r["total"] == total and r["hits"] == []
    h = every[0]
    for key in ("id", "sha256", "mailbox", "folder", "date", "from", "subject", "snippet", "size",
                "has_attachment"):
        assert key in h, key
    assert len(h["sha256"]) == 64 and isinstance(h["has_attachment"], bool)


@pytest.mark.parametrize("query", ['subject:(kvm', 'before:2019-13-45',
                                   'after:yesterday', "(" * 40 + "kvm" + ")" * 40,
                                   " ".join(["w%d" % i for i in range(80)]), "x" * 1200],
                         ids=["open-paren", "bad-date", "word-date", "nesting-40",
                              "terms-80", "bytes-1200"])
def test_bad_query_is_refused(full, query):
    err = arch_refused(full["d"], "search", "acme", query)
    assert len(err.strip()) > len("mailark: ") + 5


def test_export_zip_manifest_and_reimport(full, tmp_path):
    d = full["d"]
    query = "subject:loongson after:2019-10-15"
    total, hits = search_all(d, "acme", query)
    assert 5 < total < 200
    by_id = {h["id"]: h for h in hits}
    out = tmp_path / "case.zip"
    r = arch(d, "export", "acme", query, "--format", "eml", "--out", str(out))
    assert r["messages"] == total and r["out"] == str(out) and r["query"] == query
    assert r["bytes"] == out.stat().st_size and r["sha256"] == sha(out.read_bytes())
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        man = json.loads(z.read("manifest.json"))
        rows = list(csv.DictReader(io.StringIO(z.read("manifest.csv").decode("utf-8"))))
        emls = {n: z.read(n) for n in names if n.startswith("messages/")}
    assert man["tenant"] == "acme" and man["query"] == query and man["format"] == "eml"
    assert man["count"] == total == len(man["messages"]) == len(emls) == len(rows)
    assert names == set(emls) | {"manifest.json", "manifest.csv"}
    for m in man["messages"]:
        assert m["file"] == "messages/%d.eml" % m["archive_id"]
        data = emls[m["file"]]
        assert sha(data) == m["sha256"] == by_id[m["archive_id"]]["sha256"]
        assert m["size"] == len(data)
        assert m["date"] is not None and m["subject"] == by_id[m["archive_id"]]["subject"]
        assert (m["mailbox"], m["folder"]) == ("", "")
    for m in man["messages"][:10]:
        assert show_bytes(d, "acme", m["archive_id"]) == emls[m["file"]]
    assert {(row["archive_id"], row["sha256"]) for row in rows} == \
        {(str(m["archive_id"]), m["sha256"]) for m in man["messages"]}
    # the out path must not exist
    arch_refused(d, "export", "acme", query, "--format", "eml", "--out", str(out))

    mbox_zip = tmp_path / "case-mbox.zip"
    r = arch(d, "export", "acme", query, "--format", "mbox", "--out", str(mbox_zip))
    assert r["messages"] == total
    with zipfile.ZipFile(mbox_zip) as z:
        mbox = z.read("messages.mbox")
        man2 = json.loads(z.read("manifest.json"))
    assert man2["format"] == "mbox" and man2["count"] == total
    assert sorted(sha(m) for m in read_mboxrd(mbox)) == sorted(h["sha256"] for h in hits)
    (tmp_path / "case.mbox").write_bytes(mbox)

    # re-importing the export yields the same hashes
    emldir = tmp_path / "eml"
    emldir.mkdir()
    for name, data in emls.items():
        (emldir / os.path.basename(name)).write_bytes(data)
    tenant(d, "beta", "beta.example")
    tenant(d, "gamma", "gamma.example")
    r1 = import_(d, "beta", "--eml", str(emldir))
    r2 = import_(d, "gamma", "--mbox", str(tmp_path / "case.mbox"))
    assert r1["imported"] == total and r2["imported"] == total, (r1, r2)
    want = sorted(h["sha256"] for h in hits)
    assert sorted(h for h, _, _ in entries(d, "beta")) == want
    assert sorted(h for h, _, _ in entries(d, "gamma")) == want
    assert {f for _, _, f in entries(d, "gamma")} == {"case"}     # mbox base name
    # every export is in the audit trail
    audit = jcli(d, "audit", "list", "--tenant", "acme", "--limit", "1000")
    assert any(e["action"].startswith("archive.export") for e in audit)
    assert any(e["action"] == "archive.search" for e in audit)


# =====================================================================
# integrity: sealed storage, verify, tampering, reindex, lost index


def _synthetic(dirpath, n, word):
    dirpath.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        data = make_msg("%s secret report %d" % (word, i),
                        body=("%s plain body line %d\n" % (word, i)) * 40)
        (dirpath / ("%02d.eml" % i)).write_bytes(data)
        out.append(data)
    return out


def test_sealed_verify_and_tamper(mailark_daemon, tmp_path):
    d = mailark_daemon()
    tenant(d, "acme", "acme.example")
    word = "Quokkazebrafish%d" % os.getpid()
    msgs = _synthetic(tmp_path / "eml", 6, word)
    assert import_(d, "acme", "--eml", str(tmp_path / "eml"))["imported"] == 6
    adir = archive_dir(d, "acme")
    for name in ("store.db", "store.db-wal"):
        f = adir / name
        if f.exists():
            assert word.encode() not in f.read_bytes(), "plain text in %s" % name
    assert oct((adir / "datakey").stat().st_mode & 0o777) == "0o600"
    v = arch(d, "verify", "acme")
    assert v["intact"] is True and v["blobs"] == 6 and v["entries"] == 6 and v["blobs_bad"] == 0

    target = sha(msgs[3])
    d.stop()
    import sqlite3
    db = sqlite3.connect(str(adir / "store.db"))
    sealed = bytearray(db.execute("SELECT sealed FROM blobs WHERE hash = ?", (target,)).fetchone()[0])
    sealed[len(sealed) // 2] ^= 0x01
    db.execute("UPDATE blobs SET sealed = ? WHERE hash = ?", (bytes(sealed), target))
    db.commit()
    db.close()
    d.start()

    p = d.cli("archive", "verify", "acme", "--json", check=False, timeout=120)
    assert p.returncode == 1, (p.stdout, p.stderr)
    v = json.loads(p.stdout)
    assert v["intact"] is False and v["blobs_bad"] == 1 and v["blobs"] == 6, v
    assert target in v["report"], v["report"]
    # the damaged message is refused, never handed out altered; the others still read
    ids = dict((h, i) for i, h in store_rows(d, "acme", "SELECT id, hash FROM messages"))
    bad = show_raw(d, "acme", ids[target])
    assert bad.returncode != 0 and bad.stdout == b""
    assert show_bytes(d, "acme", ids[sha(msgs[2])]) == msgs[2]


def test_reindex_and_lost_or_corrupt_index(mailark_daemon, tmp_path):
    d = mailark_daemon()
    tenant(d, "acme", "acme.example")
    files = maildir_subset(tmp_path / "md", step=20)
    n = len(files)
    assert import_(d, "acme", "--maildir", str(tmp_path / "md"))["imported"] == n
    docs = pc.load([str(tmp_path / "md")])
    want = pc.count(docs, "subject", "mips")
    assert 0 < want < n
    assert search(d, "acme", "subject:mips")["total"] == want
    st = arch(d, "stats", "acme")
    assert st["messages"] == n and st["index_lag"] == 0 and st["indexed_upto"] == st["max_id"]

    r = arch(d, "reindex", "acme")
    assert r["indexed"] == n
    assert search(d, "acme", "subject:mips")["total"] == want

    # index.db lost while stopped: rebuilt / caught up on start
    d.stop()
    adir = archive_dir(d, "acme")
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        if (adir / name).exists():
            (adir / name).unlink()
    d.start()
    wait_total(d, "acme", "subject:mips", want, timeout=30)
    assert arch(d, "verify", "acme")["intact"] is True

    # index.db garbage: the daemon still starts, mail is not lost, reindex repairs
    d.stop()
    for name in ("index.db-wal", "index.db-shm"):
        if (adir / name).exists():
            (adir / name).unlink()
    (adir / "index.db").write_bytes(b"this is not a database\n" * 512)
    d.start()
    deadline = time.monotonic() + 10
    while True:
        p = d.cli("archive", "search", "acme", "subject:mips", "--json", check=False)
        if p.returncode == 0 and json.loads(p.stdout)["total"] == want:
            break
        if time.monotonic() > deadline:
            arch(d, "reindex", "acme")
            assert search(d, "acme", "subject:mips")["total"] == want
            break
        time.sleep(0.5)
    assert len(entries(d, "acme")) == n
    first = Path(files[0]).read_bytes()
    ident = store_rows(d, "acme", "SELECT id FROM messages WHERE hash = ?", (sha(first),))[0][0]
    assert show_bytes(d, "acme", ident) == first


# =====================================================================
# who sees what


def test_roles_and_tenant_isolation_via_api(mailark_daemon, tmp_path):
    d = mailark_daemon()
    tenant(d, "acme", "acme.example")
    tenant(d, "beta", "beta.example")
    bob = user(d, "acme", "bob@acme.example")
    d.cli("user", "alias", "add", "acme", "bob@acme.example", "robert@acme.example")
    carol = user(d, "acme", "carol@acme.example")
    aud = user(d, "acme", "aud@acme.example", "auditor")
    adm = user(d, "acme", "adm@acme.example", "admin")
    eve = user(d, "beta", "eve@beta.example", "admin")
    msgs = {}
    for who, tn in (("bob", "acme"), ("robert", "acme"), ("carol", "acme"), ("eve", "beta")):
        data = make_msg("Ocelot memo for %s" % who, body="ocelot\n")
        path = tmp_path / ("%s.eml" % who)
        path.write_bytes(data)
        msgs[who] = data
        res = import_(d, tn, "--eml", str(path), "--mailbox", "%s@%s.example" % (who, tn))
        assert res["imported"] == 1
    ids = {}
    for i, h, mb in store_rows(d, "acme", "SELECT id, hash, mailbox FROM messages"):
        ids[mb.split("@")[0]] = i

    st, js = api_search(d, bob, "acme", "ocelot")
    assert st == 200, js
    assert js["total"] == 2 and {h["mailbox"] for h in js["hits"]} == \
        {"bob@acme.example", "robert@acme.example"}
    st, js = api(d, "GET", "/api/v1/tenants/acme/archive/messages/%d" % ids["bob"], bob)
    assert st == 200 and base64.b64decode(js["raw_base64"]) == msgs["bob"]
    st, js = api(d, "GET", "/api/v1/tenants/acme/archive/messages/%d" % ids["carol"], bob)
    assert st == 404, (st, js)
    assert "raw_base64" not in json.dumps(js or {})
    st, js = api_search(d, bob, "acme", 'mailbox:"carol@acme.example"')
    assert st == 200 and js["total"] == 0
    st, js = api_search(d, carol, "acme", "ocelot")
    assert st == 200 and js["total"] == 1 and js["hits"][0]["mailbox"] == "carol@acme.example"

    for tok in (aud, adm):
        st, js = api_search(d, tok, "acme", "ocelot")
        assert st == 200 and js["total"] == 3
        st, js = api(d, "GET", "/api/v1/tenants/acme/archive/messages/%d" % ids["carol"], tok)
        assert st == 200 and base64.b64decode(js["raw_base64"]) == msgs["carol"]
    st, js = api(d, "POST", "/api/v1/tenants/acme/archive/retention/rules", aud,
                 {"kind": "folder", "match": "Legal", "days": 9000})
    assert st == 403, (st, js)
    st, js = api(d, "POST", "/api/v1/tenants/acme/archive/retention/rules", adm,
                 {"kind": "folder", "match": "Legal", "days": 9000})
    assert st == 201, (st, js)
    # users neither export nor change anything
    st, js = api(d, "POST", "/api/v1/tenants/acme/archive/exports", bob,
                 {"query": "ocelot", "format": "eml", "out": "x.zip"})
    assert st == 403, (st, js)

    # another tenant's archive: never visible, 404 whatever the role
    for path in ("/archive/search?query=ocelot", "/archive/messages/%d" % ids["bob"],
                 "/archive/stats"):
        st, js = api(d, "GET", "/api/v1/tenants/acme" + path, eve)
        assert st == 404, (path, st, js)
    st, js = api_search(d, eve, "beta", "ocelot")
    assert st == 200 and js["total"] == 1
    st, js = api_search(d, adm, "beta", "ocelot")
    assert st == 404

    audit = jcli(d, "audit", "list", "--tenant", "acme", "--limit", "500")
    acts = {(e["action"], e["actor"]) for e in audit}
    assert ("archive.search", "bob@acme.example") in acts
    assert ("archive.show", "bob@acme.example") in acts
    assert ("archive.show", "aud@acme.example") in acts
