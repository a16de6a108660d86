"""Storage faults injected with $MAILARK_FAULTS: a failed fsync or a full disk
must turn into a temporary SMTP error (never a 250), leave nothing in the
queue, and mail must flow again once the fault is gone."""

import json
import smtplib

import pytest

BODY = (b"From: <alice@beta.test>\r\nTo: <bob@acme.test>\r\nSubject: fault\r\n"
        b"Message-ID: <fault@beta.test>\r\n\r\nbody\r\n")


def setup_routes(daemon, primary):
    daemon.cli("tenant", "add", "acme")
    daemon.cli("domain", "add", "acme", "acme.test")
    daemon.cli("route", "set", "acme.test", "smtp://127.0.0.1:%d" % primary.port)


def send(daemon):
    """Returns (code, reply) of the end of DATA."""
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=20) as s:
        s.ehlo("client.test")
        code, reply = s.mail("alice@beta.test")
        assert code == 250, reply
        code, reply = s.rcpt("bob@acme.test")
        assert code == 250, reply
        return s.data(BODY)


def queue_entries(daemon):
    data = json.loads(daemon.cli("queue", "list", "--json").stdout)
    if isinstance(data, dict):
        for key in ("entries", "messages", "queue", "items"):
            if isinstance(data.get(key), list):
                return data[key]
    return data


@pytest.mark.parametrize("fault,code", [("fsync=eio@1", 451), ("write=enospc@1", 452)])
def test_storage_fault_gives_4xx_then_recovers(mailark_daemon, smtp_primary, fault, code):
    primary = smtp_primary()
    daemon = mailark_daemon({"queue.retry_min": "1s", "queue.retry_max": "2s"},
                            env={"MAILARK_FAULTS": fault})
    setup_routes(daemon, primary)

    got, reply = send(daemon)
    assert got == code, "%s: expected %d, got %d %r" % (fault, code, got, reply)
    assert queue_entries(daemon) == []
    # And again: the fault persists, the daemon keeps answering 4xx.
    got, reply = send(daemon)
    assert got == code, reply
    assert queue_entries(daemon) == []
    assert primary.messages == []

    daemon.stop()
    daemon.env.pop("MAILARK_FAULTS")
    daemon.start()
    got, reply = send(daemon)
    assert got == 250, reply
    msgs = primary.wait_for(1)
    assert len(msgs) == 1
    assert msgs[0].data.endswith(b"\r\n\r\nbody\r\n")
