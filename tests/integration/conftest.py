"""Fixtures shared by every integration test.

mailark_daemon(env=None, **conf) -> Daemon
    Writes a mailark.conf with free ports into a temporary directory, runs
    `mailark -c CONF init`, starts `mailark -c CONF serve` and waits until it
    listens.  conf keys are "section.key" (pass them as **{"queue.retry_min":
    "1s"} or as a positional dict); a value of None removes a default key, a
    list writes the key once per element.  Several daemons per test work.

smtp_primary(port=None, tls=False) -> Primary
    An aiosmtpd server on 127.0.0.1 that records every message it accepts.
    (`primary` is the same factory under a shorter name.)

free_port(), swaks(*args) are plain helpers: `from conftest import free_port, swaks`.
"""

import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parents[2]
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
START_TIMEOUT = 15
STOP_TIMEOUT = 15

_issued_ports = set()
_ports_lock = threading.Lock()


def free_port():
    """A TCP port on 127.0.0.1 that is free now and not handed out before."""
    with _ports_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _issued_ports:
                _issued_ports.add(port)
                return port
    raise RuntimeError("no free port found")


def swaks(*args, timeout=60, input=None):
    """Runs swaks with args; returns the CompletedProcess (text, full output)."""
    return subprocess.run(["swaks", *[str(a) for a in args]], capture_output=True,
                          text=True, timeout=timeout, input=input)


def mailark_bin():
    return os.environ.get("MAILARK_BIN") or str(REPO / "build" / "mailark")


def control_request(d, cmd, timeout=30, **args):
    """One request on a daemon's control socket, as the local operator; the
    whole reply ({"ok": ..., "result"/"error": ...})."""
    import json
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(Path(d.data_dir) / "control.sock"))
        s.sendall((json.dumps({"cmd": cmd, "args": args}) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def _unix_open(path):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(str(path))
        return True
    except OSError:
        return False


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(text, n=60):
    return "\n".join(text.splitlines()[-n:])


# --------------------------------------------------------------------------
# the daemon


class Daemon:
    def __init__(self, workdir, conf, env=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.smtp_port = free_port()
        self.http_port = free_port()
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.submission_port = free_port()
        self.data_dir = str(self.workdir / "var")
        self.conf_path = str(self.workdir / "mailark.conf")
        self.log_path = str(self.workdir / "mailark.log")
        self.bin = mailark_bin()
        self.env = dict(os.environ)
        self.env.update({k: str(v) for k, v in (env or {}).items()})
        self.proc = None
        self.sanitizer_reports = []
        self._write_conf(conf)

    def _write_conf(self, conf):
        sections = {
            "server": {"data_dir": self.data_dir},
            "smtp": {"listen": "127.0.0.1:%d" % self.smtp_port},
            "http": {"listen": "127.0.0.1:%d" % self.http_port},
            "imap": {"listen": "127.0.0.1:%d" % self.imap_port,
                     "tls_listen": "127.0.0.1:%d" % self.imaps_port},
            "submission": {"listen": "127.0.0.1:%d" % self.submission_port},
            "log": {"level": "debug"},
            # The filtering pipeline looks up SPF/DKIM/DMARC and DNS blocklists:
            # tests of everything else run without it (no DNS, no clamd here);
            # the hygiene tests turn it on with {"hygiene.enabled": "yes"}.
            "hygiene": {"enabled": "no"},
        }
        for key, value in conf.items():
            if "." not in key:
                raise ValueError("config key must be 'section.key': %r" % key)
            section, name = key.split(".", 1)
            sect = sections.setdefault(section, {})
            if value is None:
                sect.pop(name, None)
            else:
                sect[name] = value
        lines = []
        for section, keys in sections.items():
            lines.append("[%s]" % section)
            for name, value in keys.items():
                values = value if isinstance(value, (list, tuple)) else [value]
                for v in values:
                    if isinstance(v, bool):
                        v = "yes" if v else "no"
                    lines.append("%s = %s" % (name, v))
            lines.append("")
        Path(self.conf_path).write_text("\n".join(lines))

    # -- processes ----------------------------------------------------------

    def _note_sanitizer(self, what, text):
        if text and any(m in text for m in SANITIZER_MARKERS):
            self.sanitizer_reports.append("%s:\n%s" % (what, text))

    def cli(self, *args, check=True, input=None, timeout=60, env=None):
        """Runs `mailark -c CONF args...`; returns the CompletedProcess (text)."""
        cmd = [self.bin, "-c", self.conf_path, *[str(a) for a in args]]
        run_env = dict(self.env)
        # Injected faults are meant for the daemon, not for init or the CLI.
        run_env.pop("MAILARK_FAULTS", None)
        run_env.update({k: str(v) for k, v in (env or {}).items()})
        p = subprocess.run(cmd, capture_output=True, text=True, input=input,
                           timeout=timeout, env=run_env, cwd=str(self.workdir))
        self._note_sanitizer("cli %s" % " ".join(map(str, args)), p.stderr)
        if check and p.returncode != 0:
            raise AssertionError("%s exited %d\n--- stdout:\n%s\n--- stderr:\n%s"
                                 % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
        return p

    def init(self):
        self.cli("init")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=START_TIMEOUT):
        """Starts `serve`; returns when SMTP, HTTP and control.sock accept
        connections (a stale control.sock left by kill -9 does not count: the
        control socket is opened after the listeners)."""
        assert not self.running(), "daemon already running"
        with open(self.log_path, "ab") as logf:
            logf.write(b"=== test harness: starting mailark serve ===\n")
            logf.flush()
            self.proc = subprocess.Popen([self.bin, "-c", self.conf_path, "serve"],
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env,
                                         cwd=str(self.workdir))
        sock = Path(self.data_dir) / "control.sock"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("mailark serve exited with %d during start-up\n%s"
                                     % (self.proc.returncode, _tail(self.log())))
            if _port_open(self.smtp_port) and _unix_open(sock) and _port_open(self.http_port):
                return self
            time.sleep(0.05)
        raise AssertionError("mailark serve not ready after %ds (smtp port %d, %s)\n%s"
                             % (timeout, self.smtp_port, sock, _tail(self.log())))

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, waits up to 15 s, asserts exit status 0."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("mailark did not exit %ds after SIGTERM\n%s"
                                     % (timeout, _tail(self.log())))
        rc = self.proc.returncode
        self.proc = None
        assert rc == 0, "mailark exited with %d\n%s" % (rc, _tail(self.log()))

    def kill9(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    # -- log ----------------------------------------------------------------

    def log(self):
        try:
            return Path(self.log_path).read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=10, since=0):
        """Waits until regex (re.M) matches the log (from char offset since);
        returns the match."""
        pat = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = pat.search(self.log(), since)
            if m:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError("no log line matching %r after %ss\n%s"
                                     % (regex, timeout, _tail(self.log())))
            time.sleep(0.05)

    # -- teardown -------------------------------------------------------------

    def finish(self):
        """Stops whatever runs; returns a list of problems (empty = fine)."""
        problems = []
        if self.running():
            try:
                self.stop()
            except AssertionError as e:
                problems.append(str(e))
        self.proc = None
        log = self.log()
        if any(m in log for m in SANITIZER_MARKERS):
            problems.append("sanitizer report in daemon log %s:\n%s"
                            % (self.log_path, _tail(log, 120)))
        problems.extend(self.sanitizer_reports)
        return problems


@pytest.fixture
def mailark_daemon(tmp_path_factory):
    daemons = []

    def factory(conf_dict=None, env=None, **conf):
        merged = dict(conf_dict or {})
        merged.update(conf)
        d = Daemon(tmp_path_factory.mktemp("d"), merged, env=env)
        daemons.append(d)
        d.init()
        d.start()
        return d

    yield factory
    problems = []
    for d in daemons:
        problems.extend(d.finish())
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------
# the primary server


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list
    data: bytes
    mail_options: list = field(default_factory=list)
    rcpt_options: list = field(default_factory=list)
    tls: bool = False
    peer: object = None


class _Handler:
    def __init__(self, primary):
        self.primary = primary

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        fail = self.primary.fail_rcpt
        if fail is not None:
            return "%d %s" % fail
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        fail = self.primary.fail_data
        if fail is not None:
            return "%d %s" % fail
        msg = Received(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
                       data=bytes(envelope.original_content),
                       mail_options=list(envelope.mail_options),
                       rcpt_options=list(envelope.rcpt_options),
                       tls=session.ssl is not None, peer=session.peer)
        self.primary._record(msg)
        return "250 OK delivered"


class Primary:
    def __init__(self, workdir, port=None, tls=False):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.tls = tls
        self.messages = []
        self.fail_rcpt = None
        self.fail_data = None
        self._cond = threading.Condition()
        self._controller = None
        self._tls_context = self._make_tls() if tls else None

    def _make_tls(self):
        cert = self.workdir / "primary-cert.pem"
        key = self.workdir / "primary-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        self.cert_path, self.key_path = str(cert), str(key)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def _record(self, msg):
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def start(self):
        assert self._controller is None, "primary already running"
        kwargs = {"enable_SMTPUTF8": True, "data_size_limit": 200 * 1024 * 1024}
        if self._tls_context is not None:
            kwargs.update(tls_context=self._tls_context, require_starttls=False)
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      **kwargs)
        self._controller.start()
        return self

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, n, timeout=20):
        """Waits until at least n messages arrived; returns a copy of the list."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("primary got %d message(s), expected %d within %ss"
                                         % (len(self.messages), n, timeout))
                self._cond.wait(left)
            return list(self.messages)


@pytest.fixture
def smtp_primary(tmp_path_factory):
    primaries = []

    def factory(port=None, tls=False):
        p = Primary(tmp_path_factory.mktemp("p"), port=port, tls=tls)
        primaries.append(p)
        return p.start()

    yield factory
    for p in primaries:
        p.stop()


@pytest.fixture
def primary(smtp_primary):
    return smtp_primary
