#!/usr/bin/python3
"""Builds a large Maildir for the archive benchmark from the real corpus.

    bench/archive/mkcorpus.py N OUTDIR [--big] [--corpus DIR] [--seed S]

Every message is a real message of ../shared/corpus/mbox (the Maildirs and
the mboxrd files) with new, unique headers: a new Message-ID, a Date spread
over ten years (2010-2019), From and To drawn from other corpus messages,
and a unique token ("bt" + 7 digits) appended to the Subject, so that every
message is distinct content (no deduplication helps the archive).
--big builds ~100 kB messages instead: a real text body plus a text
attachment made of further real messages (the size the issue compares with
mailpiler's ~40 msg/s).

Messages go to five folders, OUTDIR/{inbox,lists,work,archive,sent}/new
(each a Maildir, folder = directory name), 40/30/15/10/5 %.
"""
import argparse
import os
import random
import re
import sys

FOLDERS = [("inbox", 40), ("lists", 30), ("work", 15), ("archive", 10), ("sent", 5)]
DROP = {b"message-id", b"date", b"from", b"to", b"subject"}
TEN_YEARS = (1262304000, 1577836799)      # 2010-01-01 .. 2019-12-31 UTC
BIG_SIZE = 100 * 1024


def corpus_dir(arg):
    if arg:
        return arg
    env = os.environ.get("MAILARK_CORPUS")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "..", "shared", "corpus")


def read_maildirs(root):
    out = []
    for d in ("linux-mips-2019-09to11-maildir", "notmuch-default", "notmuch-lkml"):
        for dp, dns, fns in os.walk(os.path.join(root, d)):
            dns[:] = sorted(x for x in dns if not x.startswith("."))
            for fn in sorted(fns):
                if not fn.startswith("."):
                    with open(os.path.join(dp, fn), "rb") as f:
                        out.append(f.read())
    return out


def read_mboxrd(root):
    out = []
    d = os.path.join(root, "linux-mips-2002-mboxrd")
    unesc = re.compile(rb"^>(>*From )", re.M)
    for fn in sorted(os.listdir(d)):
        with open(os.path.join(d, fn), "rb") as f:
            data = f.read()
        for part in re.split(rb"(?:^|\n\n)From [^\n]*\n", data):
            if part.strip():
                out.append(unesc.sub(rb"\1", part.rstrip(b"\n") + b"\n"))
    return out


def split_msg(raw):
    """(header lines as list of (name_lower, full_bytes)), separator, body."""
    m = re.search(rb"\r?\n\r?\n", raw)
    if m is None:
        return [], b"\n", raw
    head, sep, body = raw[:m.start()], raw[m.start():m.end()], raw[m.end():]
    nl = b"\r\n" if sep.startswith(b"\r\n") else b"\n"
    fields = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + nl + line)
        else:
            name = line.split(b":", 1)[0].strip().lower()
            fields.append((name, line))
    return fields, sep, body


def header_value(fields, name):
    for n, line in fields:
        if n == name:
            return re.sub(rb"\r?\n[ \t]+", b" ", line.split(b":", 1)[1]).strip()
    return b""


def build_pools(msgs):
    froms, tos = [], []
    for raw in msgs:
        fields, _, _ = split_msg(raw)
        f, t = header_value(fields, b"from"), header_value(fields, b"to")
        if f and len(f) < 200:
            froms.append(f)
        if t and len(t) < 400:
            tos.append(t)
    return froms, tos


def rfc2822_date(ts):
    import email.utils
    return email.utils.formatdate(ts, usegmt=False).encode()


def new_headers(rng, i, subject, froms, tos, nl):
    ts = rng.randint(*TEN_YEARS)
    token = b"bt%07d" % i
    subj = (subject + b" " if subject else b"") + b"[" + token + b"]"
    return [
        b"Message-ID: <bench." + token + b"." + str(ts).encode() + b"@bench.mailark.test>",
        b"Date: " + rfc2822_date(ts),
        b"From: " + rng.choice(froms),
        b"To: " + rng.choice(tos),
        b"Subject: " + subj,
    ], nl


def recombine(rng, i, base, froms, tos):
    fields, sep, body = split_msg(base)
    nl = b"\r\n" if sep.startswith(b"\r\n") else b"\n"
    heads, nl = new_headers(rng, i, header_value(fields, b"subject"), froms, tos, nl)
    kept = [line for n, line in fields if n not in DROP]
    return nl.join(heads + kept) + sep + body


def text_body(raw):
    fields, _, body = split_msg(raw)
    ctype = header_value(fields, b"content-type").lower()
    if ctype and not ctype.startswith(b"text/plain"):
        return None
    return body.replace(b"\r\n", b"\n")


def big_message(rng, i, msgs, texts, froms, tos):
    base = rng.choice(texts)
    heads, nl = new_headers(rng, i, b"thread digest", froms, tos, b"\n")
    att = []
    size = len(base)
    while size < BIG_SIZE - 2048:
        t = rng.choice(msgs)
        att.append(t.replace(b"\r\n", b"\n"))
        size += len(t)
    boundary = b"=_bench_%07d" % i
    parts = [
        b"\n".join(heads + [b"MIME-Version: 1.0",
                            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"']),
        b"",
        b"--" + boundary,
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        base,
        b"--" + boundary,
        b'Content-Type: text/plain; charset=utf-8; name="thread.txt"',
        b'Content-Disposition: attachment; filename="thread.txt"',
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b"\n".join(att),
        b"--" + boundary + b"--",
        b"",
    ]
    return b"\n".join(parts)


def folder_for(rng):
    x = rng.randint(1, 100)
    for name, pct in FOLDERS:
        if x <= pct:
            return name
        x -= pct
    return FOLDERS[0][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--big", action="store_true", help="~100 kB messages")
    ap.add_argument("--corpus", help="corpus root (default: $MAILARK_CORPUS or ../shared/corpus)")
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    root = os.path.join(corpus_dir(args.corpus), "mbox")
    if not os.path.isdir(root):
        sys.exit("mkcorpus: no corpus at %s" % root)
    msgs = read_maildirs(root) + read_mboxrd(root)
    froms, tos = build_pools(msgs)
    texts = [t for t in (text_body(m) for m in msgs) if t]
    rng = random.Random(args.seed)
    for name, _ in FOLDERS:
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(args.outdir, name, sub), exist_ok=True)
    total = 0
    for i in range(args.n):
        if args.big:
            raw = big_message(rng, i, msgs, texts, froms, tos)
        else:
            raw = recombine(rng, i, msgs[i % len(msgs)], froms, tos)
        path = os.path.join(args.outdir, folder_for(rng), "new", "%010d.bench" % i)
        with open(path, "wb") as f:
            f.write(raw)
        total += len(raw)
    print("mkcorpus: %d messages, %d bytes (%d base messages) in %s"
          % (args.n, total, len(msgs), args.outdir))


if __name__ == "__main__":
    main()
