"""A real unbound on loopback serving the special-use zone "test." from
local-data, for tests that need DNS (MX, SPF/DKIM/DMARC TXT records, DNS
blocklists, MTA-STS): the daemon forwards to it with delivery.dns_resolver
= unbound.address.  Records are zone-file lines such as
'mx.test. IN MX 10 mail.mx.test.' or
'sel._domainkey.acme.test. IN TXT "v=DKIM1; k=rsa; p=..."'
(a TXT longer than 255 bytes must be given as several quoted strings).
"""

import socket
import subprocess
import time
from pathlib import Path

from conftest import free_port


class Unbound:
    """unbound -d on loopback with the zone "test." from local-data."""

    def __init__(self, workdir, records):
        self.port = free_port()
        self.workdir = Path(workdir)
        conf = self.workdir / "unbound.conf"
        lines = [
            "server:",
            "  interface: 127.0.0.1",
            "  port: %d" % self.port,
            "  do-daemonize: no",
            '  username: ""',
            '  chroot: ""',
            '  directory: "%s"' % self.workdir,
            '  pidfile: ""',
            "  use-syslog: no",
            "  do-ip6: no",
            "  do-not-query-localhost: no",
            "  access-control: 127.0.0.0/8 allow",
            '  module-config: "iterator"',
            '  local-zone: "test." static',
        ]
        lines += ["  local-data: '%s'" % r for r in records]
        lines += ["remote-control:", "  control-enable: no", ""]
        conf.write_text("\n".join(lines))
        self.log = open(self.workdir / "unbound.log", "wb")
        self.proc = subprocess.Popen(["unbound", "-d", "-c", str(conf)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self):
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x02mx\x04test\x00\x00\x0f\x00\x01")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("unbound exited: %s"
                                     % (self.workdir / "unbound.log").read_text())
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.2)
                try:
                    s.sendto(query, ("127.0.0.1", self.port))
                    if s.recv(512)[:2] == b"\x12\x34":
                        return
                except OSError:
                    pass
        raise AssertionError("unbound not answering on port %d" % self.port)

    @property
    def address(self):
        return "127.0.0.1@%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
