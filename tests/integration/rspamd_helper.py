"""A real rspamd (Debian's package) on loopback for the antispam tests.

It runs in the foreground from a temporary directory: Debian's stock rules
are read from /etc/rspamd, but everything rspamd writes (pid, logs, caches,
hyperscan blobs) goes to the temporary directory, and only the "normal"
(scanner) worker is started, on a free port of 127.0.0.1; no controller,
proxy or fuzzy worker, no redis.  Modules that look things up on the network
(DNS blocklists, SPF/DKIM/DMARC, fuzzy hashes, remote maps, ...) are turned
off, and the resolver is a closed loopback port, so a check never leaves
the host.  The test patterns are on, so the GTUBE variants that stand for
"add header", "rewrite subject" and "no action" work besides the standard
GTUBE (reject).

    r = Rspamd(tmpdir)       # waits until /ping answers
    r.url                    # "http://127.0.0.1:PORT"
    r.stop()
"""

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import free_port

# rspamd's GTUBE-like test patterns (its documentation, "GTUBE patterns"):
# the standard GTUBE means "reject"; the "Y" variant "add header".
GTUBE_ADD_HEADER = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

# Modules that would query DNS, remote maps or services, or need redis.
NETWORK_MODULES = [
    "antivirus", "arc", "asn", "bimi", "dcc", "dkim", "dkim_signing", "dmarc",
    "external_services", "fuzzy_check", "greylist", "hfilter", "history_redis",
    "multimap", "mx_check", "neural", "p0f", "phishing", "ratelimit", "rbl",
    "replies", "reputation", "rspamd_update", "spf", "surbl", "url_redirector",
    "whitelist", "emails", "spamassassin", "metadata_exporter", "clickhouse",
    "elastic", "mid", "mime_types",
]


def available():
    return shutil.which("rspamd") is not None and Path("/etc/rspamd/rspamd.conf").exists()


class Rspamd:
    """rspamd -f with a normal worker on 127.0.0.1:<free port>."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.dead_dns = free_port()    # nothing listens: lookups fail at once
        local = self.workdir / "local.d"
        local.mkdir(parents=True, exist_ok=True)
        # A short public-suffix list: compiling Debian's full one takes
        # rspamd some ten seconds at every start.
        tld = self.workdir / "tld.dat"
        tld.write_text("com\norg\nnet\ntest\nexample\n")
        (local / "options.inc").write_text(
            "enable_test_patterns = true;\n"
            'url_tld = "%s";\n'
            'tempdir = "%s";\n'
            "dns {\n"
            '  nameserver = ["127.0.0.1:%d"];\n'
            "  timeout = 0.2s;\n"
            "  retransmits = 1;\n"
            "}\n" % (tld, self.workdir, self.dead_dns))
        for mod in NETWORK_MODULES:
            (local / (mod + ".conf")).write_text("enabled = false;\n")
        # One rule of our own: shows in rspamd's log line the HELO it was
        # given, so tests can check the envelope a client passed on.
        (self.workdir / "rspamd.local.lua").write_text(
            "rspamd_config.TEST_HELO = {\n"
            "  callback = function(task)\n"
            "    local h = task:get_helo()\n"
            "    if h then return true, h end\n"
            "    return false\n"
            "  end,\n"
            "  score = 0.0,\n"
            "  description = 'the HELO rspamd was given',\n"
            "}\n")
        conf = self.workdir / "rspamd.conf"
        conf.write_text(
            '.include "$CONFDIR/common.conf"\n'
            "options {\n"
            '  pidfile = "$RUNDIR/rspamd.pid";\n'
            '  .include "$CONFDIR/options.inc"\n'
            '  .include(priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"\n'
            "}\n"
            "logging {\n"
            '  type = "file";\n'
            '  filename = "$LOGDIR/rspamd.log";\n'
            '  level = "info";\n'
            "}\n"
            'worker "normal" {\n'
            '  bind_socket = "127.0.0.1:%d";\n'
            "  count = 1;\n"
            "  mime = true;\n"
            "}\n" % self.port)
        self.start()

    def start(self):
        w = str(self.workdir)
        cmd = ["rspamd", "-f", "-i", "-u", "root", "-g", "root", "-c", str(self.workdir / "rspamd.conf"),
               "--var=CONFDIR=/etc/rspamd", "--var=LOCAL_CONFDIR=" + w,
               "--var=DBDIR=" + w, "--var=RUNDIR=" + w, "--var=LOGDIR=" + w]
        if os.geteuid() != 0:
            cmd = [c for c in cmd if c not in ("-u", "-g", "root")]
        self.out = open(self.workdir / "rspamd.out", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_ready()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def log(self):
        p = self.workdir / "rspamd.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def scans(self):
        """rspamd's log lines of the messages it checked, oldest first."""
        return [line for line in self.log().splitlines() if "task_write_log" in line]

    def _wait_ready(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("rspamd exited: %s\n%s" % (
                    (self.workdir / "rspamd.out").read_text(errors="replace"), self.log()))
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError("rspamd not answering on port %d:\n%s" % (self.port, self.log()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.out.close()
