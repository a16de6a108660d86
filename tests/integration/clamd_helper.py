"""A real clamd for tests, with a tiny signature database of its own.

    from clamd_helper import Clamd, EICAR, VIRUS_NAME
    clamd = Clamd(tmp_path)          # started, answers PING
    ... daemon config "hygiene.clamd_socket": clamd.socket ...
    clamd.stop()                     # idempotent; clamd.start() runs it again

The database is one .ndb file written here: the EICAR test string anywhere
in any file is reported as VIRUS_NAME ("Eicar-Signature.UNOFFICIAL": clamd
adds ".UNOFFICIAL" to signatures from unsigned databases).  clamd scans
mail structure itself, so EICAR inside a base64 attachment is found too.
clamd listens only on a unix socket (`.socket`); the working directory holds
clamd.conf, clamd.log and db/.  Also usable for clamav-milter: point its
ClamdSocket at "unix:" + clamd.socket.
"""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
SIGNATURE = "Eicar-Signature"
VIRUS_NAME = SIGNATURE + ".UNOFFICIAL"
CLAMD = "/usr/sbin/clamd"
START_TIMEOUT = 30


class Clamd:
    """clamd --foreground on a unix socket in workdir (or a short temp dir
    when workdir's path is too long for a socket name)."""

    def __init__(self, workdir, stream_max="10M"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        sockdir = self.workdir
        self._sockdir_tmp = None
        if len(str(sockdir / "clamd.sock")) > 100:
            self._sockdir_tmp = tempfile.mkdtemp(prefix="clamd-")
            sockdir = Path(self._sockdir_tmp)
        self.socket = str(sockdir / "clamd.sock")
        db = self.workdir / "db"
        db.mkdir(exist_ok=True)
        (db / "mailark-test.ndb").write_text("%s:0:*:%s\n" % (SIGNATURE, EICAR.hex()))
        self.conf = self.workdir / "clamd.conf"
        self.conf.write_text("\n".join([
            "Foreground yes",
            "LocalSocket %s" % self.socket,
            "DatabaseDirectory %s" % db,
            "LogFile %s" % (self.workdir / "clamd.log"),
            "PidFile %s" % (self.workdir / "clamd.pid"),
            "StreamMaxLength %s" % stream_max,
            "SelfCheck 0",
            "",
        ]))
        self.proc = None
        self._out = None
        self.start()

    def start(self):
        """Starts clamd (if not running) and waits for PING/PONG."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self._out = open(self.workdir / "clamd.out", "ab")
        self.proc = subprocess.Popen([CLAMD, "--foreground", "-c", str(self.conf)],
                                     stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("clamd exited: %s" % self.log())
            if self.ping():
                return
            time.sleep(0.1)
        self.stop()
        raise AssertionError("clamd not answering on %s" % self.socket)

    def ping(self):
        """True when clamd answers zPING with PONG."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(self.socket)
                s.sendall(b"zPING\0")
                return s.recv(64).rstrip(b"\0\n") == b"PONG"
        except OSError:
            return False

    def log(self):
        text = ""
        for name in ("clamd.out", "clamd.log"):
            p = self.workdir / name
            if p.exists():
                text += p.read_text(errors="replace")
        return text

    def stop(self):
        """Stops clamd (idempotent); the socket is gone afterwards."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._out is not None:
            self._out.close()
            self._out = None
        if os.path.exists(self.socket):
            os.unlink(self.socket)
