"""Attachment policy against the real daemon (no antivirus configured).

Inbound mail for tenant acme goes to an aiosmtpd primary.  An executable
inside a zip is refused at the end of DATA with 550 5.7.1 naming the path;
a renamed executable is found by its content; a clean PDF is delivered; an
encrypted zip is quarantined; macros follow attach.macros; attach.action tag
delivers with the finding in X-Mailark-Hygiene.
"""

import base64
import io
import json
import struct
import time
import zipfile

import hygiene_helper
from hygiene_helper import FAST_RETRY, hygiene_header, quarantined, send


QUIET = {"av.enabled": "no", "spf.enabled": "no", "dkim.verify": "no", "dmarc.enabled": "no",
         "spam.enabled": "no", "milter.enabled": "no", "impersonation.lookalike": "no"}

# A Windows PE executable as far as libmagic can tell.
EXE = bytearray(1024)
EXE[0:2] = b"MZ"
EXE[0x3c] = 0x80
EXE[0x80:0x86] = b"PE\0\0\x4c\x01"
EXE = bytes(EXE)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF\n"


def start(mailark_daemon, smtp_primary, **policy):
    settings = dict(QUIET)
    settings.update(policy)
    return hygiene_helper.start(mailark_daemon, smtp_primary, settings, FAST_RETRY)


def zip_of(files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
    return out.getvalue()


def encrypted_flag(zdata):
    """The zip with general-purpose bit 0 ("encrypted") set in every local
    and central header, as a password-protected zip has."""
    b = bytearray(zdata)
    for sig, flag_off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(sig)
        while i >= 0:
            (flags,) = struct.unpack_from("<H", b, i + flag_off)
            struct.pack_into("<H", b, i + flag_off, flags | 1)
            i = b.find(sig, i + 4)
    return bytes(b)


def message(subject, fname=None, data=None):
    head = ("From: <alice@beta.test>\r\nTo: <bob@acme.test>\r\nSubject: %s\r\n"
            "Message-ID: <%s@beta.test>\r\nMIME-Version: 1.0\r\n"
            % (subject, subject.replace(" ", ".")))
    if fname is None:
        return (head + "\r\nJust text.\r\n").encode()
    b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return (head + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            '--b1\r\nContent-Type: application/octet-stream; name="%s"\r\n'
            'Content-Disposition: attachment; filename="%s"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n%s--b1--\r\n"
            % (fname, fname, b64)).encode()


def test_exe_in_zip_rejected_clean_delivered(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    code, reply = send(d, message("zip", "invoice.zip",
                                  zip_of([("readme.txt", "hi"), ("setup.exe", EXE)])))
    assert code == 550, reply
    assert "5.7.1" in reply
    assert reply.endswith("attachment policy (blocked extension .exe: invoice.zip/setup.exe)"), \
        reply
    code, reply = send(d, message("renamed", "photo.jpg", EXE))
    assert code == 550, reply
    assert "blocked type application/" in reply and "photo.jpg" in reply
    code, reply = send(d, message("clean", "report.pdf", PDF))
    assert code == 250, reply
    got = p.wait_for(1)
    time.sleep(0.5)
    assert len(p.messages) == 1
    assert b"Subject: clean" in got[0].data


def test_encrypted_zip_quarantined(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary)
    zdata = encrypted_flag(zip_of([("secret.pdf", PDF)]))
    code, reply = send(d, message("locked", "statement.zip", zdata))
    assert code == 250, reply
    deadline = time.monotonic() + 10
    while not quarantined(d):
        assert time.monotonic() < deadline, "nothing quarantined"
        time.sleep(0.2)
    assert "attach:encrypted archive: statement.zip/secret.pdf" in json.dumps(quarantined(d))
    time.sleep(0.5)
    assert p.messages == []


def test_macros_reject_and_tag_action(mailark_daemon, smtp_primary):
    d, p = start(mailark_daemon, smtp_primary,
                 **{"attach.macros": "reject", "attach.action": "tag"})
    docm = zip_of([("[Content_Types].xml", "<Types/>"), ("word/document.xml", "<w/>"),
                   ("word/vbaProject.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))])
    code, reply = send(d, message("macro", "report.docx", docm))
    assert code == 550, reply
    assert reply.endswith("attachment policy (macros: report.docx)"), reply
    code, reply = send(d, message("tagged", "tool.exe", b"not really"))
    assert code == 250, reply
    got = p.wait_for(1)
    assert b"Subject: tagged" in got[0].data
    assert "attach:blocked extension .exe: tool.exe" in hygiene_header(got[0].data)
