"""Helpers shared by the archive tests (test_archive*.py); no tests here.

The archive is driven the way an operator drives it: `mailark archive ...`
through the CLI (d.cli), the HTTP API with Bearer tokens of tenant users,
and mail through SMTP.  store.db is read with Python's sqlite3 (read-only
SELECTs while the daemon runs; writes only while it is stopped) to check
what is on disk independently of the product's own reports.
"""

import email.utils
import hashlib
import json
import os
import re
import shutil
import smtplib
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, Daemon

CORPUS = REPO.parent / "shared" / "corpus"
MAILDIR = CORPUS / "mbox" / "linux-mips-2019-09to11-maildir"
MBOX2002 = CORPUS / "mbox" / "linux-mips-2002-mboxrd"
PSTDIR = CORPUS / "pst"
QID = re.compile(r"queued as ([0-9A-Z]{16})")


def need_corpus(path=MAILDIR):
    if not Path(path).exists():
        pytest.skip("test corpus %s not there" % path)


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ---- CLI ---------------------------------------------------------------------


def jcli(d, *args, timeout=120):
    """`mailark ARGS --json` → the parsed result."""
    return json.loads(d.cli(*args, "--json", timeout=timeout).stdout)


def arch(d, *args, timeout=300):
    """`mailark archive ARGS --json` → the parsed result."""
    return jcli(d, "archive", *args, timeout=timeout)


def arch_refused(d, *args, timeout=120):
    """`mailark archive ARGS` must exit 1 with "mailark: ..." on stderr; returns stderr."""
    p = d.cli("archive", *args, check=False, timeout=timeout)
    assert p.returncode == 1, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith("mailark: "), p.stderr
    return p.stderr


def show_raw(d, tenant, ident):
    """The exact bytes `mailark archive show TENANT ID --raw` writes (not text)."""
    p = subprocess.run([d.bin, "-c", d.conf_path, "archive", "show", tenant, str(ident), "--raw"],
                       capture_output=True, timeout=60, env=d.env, cwd=str(d.workdir))
    d._note_sanitizer("cli archive show --raw", p.stderr.decode("utf-8", "replace"))
    return p


def show_bytes(d, tenant, ident):
    p = show_raw(d, tenant, ident)
    assert p.returncode == 0, p.stderr.decode("utf-8", "replace")
    return p.stdout


def search(d, tenant, query, limit=None, offset=None):
    args = ["search", tenant, query]
    if limit is not None:
        args += ["--limit", str(limit)]
    if offset is not None:
        args += ["--offset", str(offset)]
    return arch(d, *args)


def search_all(d, tenant, query):
    """Every hit of query (paging by 1000); returns (total, hits)."""
    hits, offset, total = [], 0, None
    while True:
        r = search(d, tenant, query, limit=1000, offset=offset)
        if total is None:
            total = r["total"]
        hits += r["hits"]
        offset += len(r["hits"])
        if not r["hits"] or offset >= r["total"]:
            return total, hits


def wait_total(d, tenant, query, n, timeout=30):
    """Polls the search until query finds n messages; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        r = search(d, tenant, query, limit=1000)
        if r["total"] == n:
            return r
        if time.monotonic() > deadline:
            raise AssertionError("search %r: total %d, expected %d after %ss"
                                 % (query, r["total"], n, timeout))
        time.sleep(0.3)


def import_(d, tenant, *args, timeout=600):
    """`mailark archive import TENANT ARGS --json` → {imported, duplicates, failed, failures}."""
    return arch(d, "import", tenant, *args, timeout=timeout)


def tenant(d, name="acme", *domains):
    d.cli("tenant", "add", name)
    for dom in domains or ("%s.example" % name,):
        d.cli("domain", "add", name, dom)


def user(d, tenant_, address, role="user"):
    """Adds a user; returns an API token of theirs."""
    d.cli("user", "add", tenant_, address, "--role", role)
    return jcli(d, "token", "create", "--user", address)["token"]


# ---- on disk -----------------------------------------------------------------


def archive_dir(d, tenant_):
    return Path(d.data_dir) / "archive" / tenant_


def store_rows(d, tenant_, sql, params=()):
    """A SELECT on the tenant's store.db (the authoritative file); [] when the
    tenant has no archive (yet)."""
    path = archive_dir(d, tenant_) / "store.db"
    if not path.exists():
        return []
    db = sqlite3.connect(str(path), timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def entries(d, tenant_):
    """{(sha256, mailbox, folder)} of every archive entry, straight from store.db."""
    return store_rows(d, tenant_, "SELECT hash, mailbox, folder FROM messages")


# ---- mail ----------------------------------------------------------------------


def make_msg(subject, body="hello\n", sender="Alice Example <alice@elsewhere.example>",
             to="bob@acme.example", date=None, extra=(), msgid=None):
    """A small message (LF line ends, as files on disk have them)."""
    date = date or email.utils.formatdate(localtime=False)
    msgid = msgid or "<%s@test.example>" % sha(subject.encode())[:20]
    head = ["From: %s" % sender, "To: %s" % to, "Subject: %s" % subject, "Date: %s" % date,
            "Message-ID: %s" % msgid, *extra]
    return ("\n".join(head) + "\n\n" + body).encode()


def rfc_date(y, m, dd, hh=12):
    """An RFC 5322 date (UTC) and its unix time."""
    import calendar
    t = calendar.timegm((y, m, dd, hh, 0, 0))
    return email.utils.formatdate(t, usegmt=True), t


def send(d, sender, rcpts, data, ehlo="client.test"):
    """Sends one message; returns its queue id."""
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=30) as s:
        s.ehlo(ehlo)
        code, _ = s.mail(sender)
        assert code == 250
        for r in rcpts:
            code, msg = s.rcpt(r)
            assert code == 250, (r, code, msg)
        code, reply = s.data(data)
        assert code == 250, reply
    m = QID.search(reply.decode())
    assert m, reply
    return m.group(1)


def maildir_subset(dest, step=10, limit=None):
    """Every step-th message of the linux-mips Maildir (spread over Sept-Nov 2019)
    copied to dest/{cur,new,tmp}; returns the list of copied files."""
    need_corpus()
    dest = Path(dest)
    for sub in ("cur", "new", "tmp"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    names = sorted(os.listdir(MAILDIR / "new"))[::step]
    if limit:
        names = names[:limit]
    out = []
    for n in names:
        shutil.copyfile(MAILDIR / "new" / n, dest / "new" / n)
        out.append(dest / "new" / n)
    return out


def read_mboxrd(data):
    """mboxrd bytes -> the messages: every line starting "From " separates,
    ">From " lines (any number of '>') lose one '>', and the blank line
    that ends each message is not part of it."""
    msgs, cur = [], None
    for line in data.splitlines(keepends=True):
        if line.startswith(b"From "):
            if cur is not None:
                msgs.append(cur)
            cur = []
            continue
        if cur is None:
            continue
        if re.match(rb">+From ", line):
            line = line[1:]
        cur.append(line)
    if cur is not None:
        msgs.append(cur)
    out = []
    for m in msgs:
        assert m and m[-1] in (b"\n", b"\r\n"), "message not followed by a blank line"
        out.append(b"".join(m[:-1]))
    return out


# ---- HTTP API ----------------------------------------------------------------


def api(d, method, path, token, body=None):
    """(status, parsed JSON or None) of one API request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (d.http_port, path), data=data,
                                 method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, None


def api_search(d, token, tenant_, query, limit=None):
    q = "query=" + urllib.parse.quote(query)
    if limit:
        q += "&limit=%d" % limit
    return api(d, "GET", "/api/v1/tenants/%s/archive/search?%s" % (tenant_, q), token)


def approve(d, token, tenant_, approval_id):
    st, js = api(d, "POST", "/api/v1/tenants/%s/archive/approvals/%s/approve"
                 % (tenant_, approval_id), token)
    assert st == 200, (st, js)
    return js


# ---- a daemon of our own (module-scoped fixtures) -------------------------------


def own_daemon(tmp_path_factory, name, conf=None):
    d = Daemon(tmp_path_factory.mktemp(name), dict(conf or {}))
    d.init()
    d.start()
    return d


def finish_daemon(d):
    problems = d.finish()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
