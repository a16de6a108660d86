"""`mailark archive import`: mbox (mboxrd un-escaping, byte-exact, folder =
base name, --folder), Maildir trees (folder = relative path, Maildir++
names, tmp/ and dot files skipped), loose .eml files (dedup per mailbox,
failures reported), and the PST samples of ../shared/corpus/pst against
the per-folder mail counts readpst gives in its MANIFEST.tsv.
"""

import csv
import email
import json
import email.policy
import os
import re
import shutil
import warnings


from test_archive_common import (CORPUS, MAILDIR, MBOX2002, PSTDIR, arch, entries, import_,
                                 make_msg, need_corpus, read_mboxrd, search, sha, show_bytes,
                                 store_rows, tenant)


def test_mbox_byte_exact_and_folder(mailark_daemon, tmp_path):
    need_corpus(MBOX2002)
    d = mailark_daemon()
    tenant(d, "acme", "acme.example")
    tenant(d, "beta", "beta.example")
    src = MBOX2002 / "linux-mips-2002-04.mbox"
    originals = read_mboxrd(src.read_bytes())
    assert len(originals) == 145
    escaped = [m for m in originals if re.search(rb"\n>*From ", m)]
    assert escaped, "the month chosen must have >From lines to un-escape"
    res = import_(d, "acme", "--mbox", str(src))
    want = sorted(sha(m) for m in originals)
    assert res["imported"] + res["duplicates"] == 145 and res["failed"] == 0, res
    rows = entries(d, "acme")
    assert sorted(h for h, _, _ in rows) == sorted(set(want)) and len(rows) == len(set(want))
    assert {f for _, _, f in rows} == {"linux-mips-2002-04"}
    ids = {h: i for i, h in store_rows(d, "acme", "SELECT id, hash FROM messages")}
    for m in escaped:                  # the un-escaped bytes come back, not the >From form
        assert show_bytes(d, "acme", ids[sha(m)]) == m
    again = import_(d, "acme", "--mbox", str(src))
    assert again["imported"] == 0 and again["duplicates"] == 145, again
    # --folder overrides the base name
    r = import_(d, "beta", "--mbox", str(src), "--folder", "Lists/MIPS")
    assert r["imported"] + r["duplicates"] == 145
    assert {f for _, _, f in entries(d, "beta")} == {"Lists/MIPS"}
    assert search(d, "beta", 'folder:"Lists/MIPS"')["total"] == len(set(want))


def test_mbox_edge_cases_do_not_break_anything(mailark_daemon):
    edge = CORPUS / "mbox" / "edge-cases"
    need_corpus(edge)
    d = mailark_daemon()
    tenant(d, "acme", "acme.example")
    for f in sorted(edge.iterdir()):
        r = import_(d, "acme", "--mbox", str(f))
        assert r["imported"] + r["duplicates"] + r["failed"] >= 1, (f.name, r)
        for fail in r["failures"]:
            assert fail["item"] and fail["reason"], (f.name, fail)
    simple = [h for h, _, folder in entries(d, "acme") if folder == "mimekit-simple"]
    assert len(simple) == 3
    assert arch(d, "verify", "acme")["intact"] is True


def test_maildir_tree_folders(mailark_daemon, tmp_path):
    need_corpus()
    d = mailark_daemon()
    tenant(d, "acme", "acme.example")
    names = sorted(os.listdir(MAILDIR / "new"))[:8]
    root = tmp_path / "Mail"
    # (path under the root, source file, folder it must land in; None = skipped)
    plan = [
        ("new/" + names[0], names[0], ""),
        ("cur/" + names[1] + ":2,S", names[1], ""),
        (".Sent.2019/cur/" + names[2] + ":2,S", names[2], "Sent/2019"),
        ("Projects/Alpha/new/" + names[3], names[3], "Projects/Alpha"),
        ("Projects/Alpha/cur/" + names[4] + ":2,", names[4], "Projects/Alpha"),
        ("tmp/" + names[5], names[5], None),
        ("cur/.hidden-" + names[6], names[6], None),
        ("Projects/Alpha/tmp/" + names[7], names[7], None),
    ]
    for rel, src, _ in plan:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MAILDIR / "new" / src, root / rel)
    layout = {rel: folder for rel, _, folder in plan if folder is not None}
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(exist_ok=True)
    res = import_(d, "acme", "--maildir", str(root))
    assert (res["imported"], res["failed"]) == (len(layout), 0), res
    want = sorted((sha((root / rel).read_bytes()), folder) for rel, folder in layout.items())
    assert sorted((h, f) for h, _, f in entries(d, "acme")) == want
    assert search(d, "acme", 'folder:"Projects/Alpha"')["total"] == 2


def test_eml_dedup_per_mailbox_and_failures(mailark_daemon, tmp_path):
    d = mailark_daemon()
    tenant(d, "acme", "acme.example")
    one = tmp_path / "one.eml"
    one.write_bytes(make_msg("dedup me", body="same bytes\n"))
    r = import_(d, "acme", "--eml", str(one), "--mailbox", "ann@acme.example")
    assert (r["imported"], r["duplicates"]) == (1, 0)
    r = import_(d, "acme", "--eml", str(one), "--mailbox", "Bob@Acme.example")
    assert (r["imported"], r["duplicates"]) == (1, 0)
    r = import_(d, "acme", "--eml", str(one), "--mailbox", "ann@acme.example")
    assert (r["imported"], r["duplicates"]) == (0, 1)
    assert sorted(mb for _, mb, _ in entries(d, "acme")) == ["ann@acme.example",
                                                             "bob@acme.example"]
    st = arch(d, "stats", "acme")
    assert st["messages"] == 2 and st["blobs"] == 1
    assert st["raw_bytes"] == len(one.read_bytes())
    # several paths, one of them empty: it fails alone, with its name
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "a.eml").write_bytes(make_msg("batch a"))
    (batch / "b.eml").write_bytes(b"")
    (batch / "c.eml").write_bytes(make_msg("batch c"))
    r = import_(d, "acme", "--eml", str(batch), str(one), "--mailbox", "ann@acme.example")
    assert (r["imported"], r["duplicates"], r["failed"]) == (2, 1, 1), r
    assert "b.eml" in r["failures"][0]["item"] and r["failures"][0]["reason"]


# ---- PST ------------------------------------------------------------------------


def _pst_manifest():
    rows = []
    with open(PSTDIR / "MANIFEST.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            folders = {}
            items = row["readpst_items"]
            if not items.startswith("("):
                for part in items.split("; "):
                    path, what = part.rsplit(": ", 1)
                    n, kind = what.split("\u00d7")
                    if kind == ".eml":
                        folders[path] = int(n)
            rows.append((row["file"], folders))
    return rows


def _expected_folder(readpst_path):
    """readpst's path starts with the store's name; the archive drops it."""
    parts = readpst_path.split("/", 1)
    return {parts[1]} if len(parts) == 2 else {"", parts[0]}


def test_pst_import_counts_and_folders(mailark_daemon, tmp_path):
    need_corpus(PSTDIR)
    d = mailark_daemon()
    notes = []
    for i, (name, folders) in enumerate(_pst_manifest()):
        t = "pst%d" % i
        tenant(d, t, "%s.example" % t)
        r = import_(d, t, "--pst", str(PSTDIR / name))
        got = r["imported"] + r["duplicates"]
        want = sum(folders.values())
        for fail in r["failures"]:
            assert fail["item"] and fail["reason"], (name, fail)
        if got != want:
            # tolerated only when the importer's report explains it
            assert r["failed"] > 0 and got + r["failed"] >= want, (name, want, r)
            notes.append("%s: readpst %d mails, imported %d, failed %d: %s"
                         % (name, want, got, r["failed"],
                            "; ".join(f["reason"] for f in r["failures"][:3])))
        rows = entries(d, t)
        by_folder = {}
        for _, _, folder in rows:
            by_folder[folder] = by_folder.get(folder, 0) + 1
        if r["duplicates"] == 0 and r["failed"] == 0:
            for path, n in folders.items():
                hits = [f for f in by_folder if f in _expected_folder(path)]
                assert len(hits) == 1 and by_folder[hits[0]] == n, (name, path, n, by_folder)
            assert sum(by_folder.values()) == want
        # every message built from the PST is parseable mail with a header
        for h, _, _ in rows[:20]:
            ident = store_rows(d, t, "SELECT id FROM messages WHERE hash = ?", (h,))[0][0]
            raw = show_bytes(d, t, ident)
            assert sha(raw) == h
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            assert msg["Subject"] is not None or msg["From"] is not None, (name, raw[:200])
        # deterministic: the same PST again adds nothing
        again = import_(d, t, "--pst", str(PSTDIR / name))
        assert again["imported"] == 0 and again["duplicates"] == got, (name, r, again)
    if notes:
        warnings.warn("PST counts differing from readpst:\n" + "\n".join(notes))
    # the Outlook sample keeps its folder paths
    outlook = [i for i, (n, _) in enumerate(_pst_manifest()) if n == "aspose-Outlook.pst"][0]
    fol = {f for _, _, f in entries(d, "pst%d" % outlook)}
    assert {"Inbox", "Sent Items"} <= fol, fol


def test_not_a_pst_is_refused_cleanly(mailark_daemon, tmp_path):
    need_corpus(PSTDIR)
    d = mailark_daemon()
    tenant(d, "acme", "acme.example")
    text = tmp_path / "notes.pst"
    text.write_text("this is not an Outlook file\n" * 100)
    cut = tmp_path / "cut.pst"
    cut.write_bytes((PSTDIR / "aspose-Outlook.pst").read_bytes()[:70000])
    for f in (text, cut):
        p = d.cli("archive", "import", "acme", "--pst", str(f), "--json", check=False,
                  timeout=120)
        assert p.returncode in (0, 1), (p.returncode, p.stderr)
        if p.returncode == 0:
            r = json.loads(p.stdout)
            assert r["failed"] >= 1 and r["failures"] and r["failures"][0]["reason"], r
        else:
            assert p.stderr.startswith("mailark: ") and len(p.stderr) > 20
    assert d.running()
    # the daemon is fine afterwards
    good = tmp_path / "ok.eml"
    good.write_bytes(make_msg("after the bad pst"))
    assert import_(d, "acme", "--eml", str(good))["imported"] == 1
