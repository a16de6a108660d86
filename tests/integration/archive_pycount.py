"""Independent count for the archive search tests (stdlib only).

The archive parses mail with GMime (src/archive/archive_parse.c); this module
parses the same files with Python's ``email`` package so that a search total
can be checked against a count made by different code:

    import archive_pycount as pc
    docs = pc.load(["../shared/corpus/mbox/linux-mips-2019-09to11-maildir/new"])
    expected = pc.count(docs, "subject", "patch")

``load(paths)`` takes files and/or directories (walked recursively, hidden
files and *.md / *.tsv skipped) and returns one dict per message:

    subject, from_, to, cc, body   str ("" when absent)
    filenames                      list of str
    has_attachment                 bool
    date                           int, unix seconds (0 when missing/unparsable)
    path                           the file it came from

Text is taken the way the archive takes it: headers decoded (RFC 2047);
body = text/plain parts and other text parts (text attachments too, and
.txt/.csv/.log/.md attachments of any type), HTML parts reduced to text with
html.parser (script/style/head/title dropped) only when a
multipart/alternative has no plain part, HTML attachments left out, and the
subject and body of attached message/rfc822 parts included; nesting deeper
than 32 levels is not walked.  Each file is parsed with ``policy.default``;
when that raises, again with ``compat32``.

``count(docs, field, word)`` is the number of docs whose field contains the
word as a whole token: case-insensitive, bounded by non-word characters
(Unicode \\w).  Pick words for which tokenisation cannot differ between the
two implementations (plain ASCII words such as "linux" or "patch").
"""

import email
import email.header
import email.policy
import email.utils
import html.parser
import os
import re

MAX_DEPTH = 32
TEXT_EXTENSIONS = (".txt", ".csv", ".log", ".md")
FIELDS = ("subject", "from_", "to", "cc", "body", "filenames")


class _HtmlText(html.parser.HTMLParser):
    """Collects the text of an HTML document, without script/style/head/title."""

    SKIP = {"script", "style", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping > 0:
            self.skipping -= 1
        self.parts.append(" ")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(text):
    p = _HtmlText()
    try:
        p.feed(text)
        p.close()
    except Exception:  # html.parser is lenient, but never let it stop a count
        pass
    return " ".join("".join(p.parts).split())


def _decode_bytes(data, charset):
    """Bytes of a text part → str, as the archive does (Latin-1 fallback)."""
    cs = (charset or "").lower()
    if cs in ("", "us-ascii", "ascii"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    try:
        return data.decode(cs, errors="replace")
    except LookupError:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def _decode_one(value):
    if isinstance(value, str) and "=?" in value and not hasattr(value, "defects"):
        # compat32 hands back the raw header; decode RFC 2047 ourselves
        try:
            value = str(email.header.make_header(email.header.decode_header(value)))
        except Exception:
            pass
    return " ".join(str(value).split())


def _header(msg, name, every=False):
    """The first header of that name, or all of them joined with ", " (as the
    archive does for address headers), decoded; "" when absent."""
    values = msg.get_all(name) or []
    if not values:
        return ""
    if not every:
        values = values[:1]
    return ", ".join(_decode_one(v) for v in values)


def _filename(part):
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name and "=?" in name:
        try:
            name = str(email.header.make_header(email.header.decode_header(name)))
        except Exception:
            pass
    return name or ""


def _is_attachment(part):
    try:
        disp = part.get_content_disposition()
    except Exception:
        disp = None
    return bool(_filename(part)) or disp == "attachment"


def _part_text(part):
    payload = part.get_payload(decode=True)
    if not payload:
        return ""
    return _decode_bytes(payload, part.get_content_charset())


class _Walk:
    def __init__(self):
        self.body = []
        self.filenames = []
        self.has_attachment = False

    def walk(self, part, depth, want_body):
        if depth > MAX_DEPTH:
            return
        if _is_attachment(part):
            self.has_attachment = True
            if _filename(part):
                self.filenames.append(_filename(part))
        ctype = part.get_content_type()
        if ctype == "message/rfc822" or (part.is_multipart() and ctype.startswith("message/")):
            for inner in part.get_payload() or []:
                if want_body and _header(inner, "subject"):
                    self.body.append(_header(inner, "subject"))
                self.walk(inner, depth + 1, want_body)
        elif part.is_multipart():
            self.walk_multipart(part, depth, want_body)
        elif want_body:
            self.leaf(part, ctype)

    def walk_multipart(self, part, depth, want_body):
        children = part.get_payload()
        if not isinstance(children, list):
            return
        pick = None
        if want_body and part.get_content_type() == "multipart/alternative":
            for i, ch in enumerate(children):
                if (not ch.is_multipart() and ch.get_content_type() == "text/plain"
                        and not _is_attachment(ch)):
                    pick = i
                    break
        for i, ch in enumerate(children):
            self.walk(ch, depth + 1, want_body and (pick is None or i == pick))

    def leaf(self, part, ctype):
        named = _is_attachment(part)
        if ctype == "text/html":
            if not named:
                self.body.append(html_to_text(_part_text(part)))
        elif ctype.startswith("text/") or (
                named and _filename(part).lower().endswith(TEXT_EXTENSIONS)):
            self.body.append(_part_text(part))


def _date(msg):
    value = msg.get("date")
    if value is None:
        return 0
    try:
        return int(email.utils.parsedate_to_datetime(str(value)).timestamp())
    except Exception:
        return 0


def _extract(data, policy):
    msg = email.message_from_bytes(data, policy=policy)
    w = _Walk()
    w.walk(msg, 0, True)
    return {
        "subject": _header(msg, "subject"),
        "from_": _header(msg, "from", True),
        "to": _header(msg, "to", True),
        "cc": _header(msg, "cc", True),
        "body": "\n".join(w.body),
        "filenames": w.filenames,
        "has_attachment": w.has_attachment,
        "date": _date(msg),
    }


def parse_bytes(data):
    """One message's bytes → the dict described in the module comment."""
    if data.startswith(b"From "):  # mbox separator line, as the archive skips it
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    try:
        return _extract(data, email.policy.default)
    except Exception:
        return _extract(data, email.policy.compat32)


def _files(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for n in sorted(names):
                    if not n.startswith(".") and not n.endswith((".md", ".tsv")):
                        yield os.path.join(root, n)
        elif os.path.isfile(p):
            yield p


def load(paths):
    """Parses every message file under paths (files or directories)."""
    docs = []
    for path in _files(paths):
        with open(path, "rb") as f:
            data = f.read()
        if not data:
            continue
        doc = parse_bytes(data)
        doc["path"] = path
        docs.append(doc)
    return docs


def count(docs, field, word):
    """Docs whose field (one of FIELDS) holds word as a whole token, any case."""
    if field not in FIELDS:
        raise ValueError("unknown field %r" % field)
    rx = re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)
    n = 0
    for d in docs:
        value = d[field]
        if isinstance(value, list):
            value = "\n".join(value)
        if rx.search(value):
            n += 1
    return n


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 4:
        sys.exit("usage: archive_pycount.py FIELD WORD PATH...")
    print(count(load(sys.argv[3:]), sys.argv[1], sys.argv[2]))
