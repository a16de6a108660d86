#!/usr/bin/python3
"""Continuity benchmark driver (bench/continuity/run.sh runs it).

One mailark daemon with a tenant "bench" (domain bench.test) routed to
Postfix's smtp-sink, and, in the same run:

  1. failover: [continuity] probe_interval 2 s, probe_failures 3, mode auto.
     The sink is killed; the control socket is polled every 10 ms for the
     first failed probe (routes[].failures >= 1) and for state ACTIVE.
     Target: ACTIVE within two probe intervals of the first failed probe.
  2. failback replay: N messages (smtp-source) arrive while ACTIVE and are
     held; a fresh smtp-sink -M N is started and `continuity stop` begins
     the failback; time until the sink has all N -> msg/s.
  3. IMAP sync: M messages from the corpus are delivered to one user (and
     archived); a drill lets the user sign in; mbsync (IMAPS) copies the
     continuity INBOX into an empty Maildir.  The same M messages are put
     in a Maildir served by a private, unprivileged Dovecot (IMAPS, same
     certificate, same mbsync configuration but the port) and mbsync copies
     that too; with --runs N the two servers alternate run by run and the
     best of each counts.  Ratio mailark/dovecot, target <= 1.0.

Prints one line per figure and a summary table; --json FILE writes the
figures for the README.
"""

import argparse
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import imaplib
from pathlib import Path

USER = "reader@bench.test"
USER_PW = "bench-password-1"
HELD_RCPT = "held@bench.test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Sink:
    """smtp-sink on a port; -M count makes it exit after that many messages."""

    def __init__(self, port, count=None):
        cmd = ["smtp-sink"]
        if os.geteuid() == 0:
            cmd += ["-u", "postfix"]
        if count:
            cmd += ["-M", str(count)]
        cmd += ["127.0.0.1:%d" % port, "512"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)

    def wait(self, timeout):
        self.proc.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Mailark:
    def __init__(self, binary, tmp, sink_port, cert, key):
        self.bin, self.dir = binary, tmp / "mailark"
        self.dir.mkdir()
        self.smtp_port, self.imaps_port = free_port(), free_port()
        self.conf = self.dir / "mailark.conf"
        self.data = self.dir / "var"
        self.conf.write_text(
            "[server]\ndata_dir = %s\n[smtp]\nlisten = 127.0.0.1:%d\nmax_connections_per_ip = 1000\n"
            "[http]\nlisten = 127.0.0.1:%d\n[imap]\nlisten = \ntls_listen = 127.0.0.1:%d\n"
            "[submission]\nlisten = \n[tls]\ncert = %s\nkey = %s\n"
            "[queue]\nretry_min = 1s\nretry_max = 5s\n"
            "[continuity]\nprobe_interval = 2s\nprobe_failures = 3\nprobe_timeout = 1s\n"
            "[log]\nlevel = info\n"
            % (self.data, self.smtp_port, free_port(), self.imaps_port, cert, key))
        self.cli("init")
        self.logf = open(self.dir / "log", "ab")
        self.proc = subprocess.Popen([self.bin, "-c", str(self.conf), "serve"], stdout=self.logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_port(self.smtp_port)
        for _ in range(200):
            if (self.data / "control.sock").exists():
                break
            time.sleep(0.05)
        self.cli("tenant", "add", "bench")
        self.cli("domain", "add", "bench", "bench.test")
        self.cli("route", "set", "bench.test", "smtp://127.0.0.1:%d" % sink_port)
        self.cli("user", "add", "bench", USER, "--password-stdin", input=USER_PW + "\n")
        # The corpus is from 2002-2003: under the default retention period
        # the scheduled purge (a minute after start) would delete most of
        # the synced INBOX in the middle of the benchmark.
        self.cli("archive", "retention", "set", "bench", "--default", "forever")

    def cli(self, *args, input=None):
        p = subprocess.run([self.bin, "-c", str(self.conf), *args], capture_output=True,
                           text=True, input=input, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("mailark %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    def ctl(self, cmd, **args):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(60)
            s.connect(str(self.data / "control.sock"))
            s.sendall((json.dumps({"cmd": cmd, "args": args}) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data)
        if not reply.get("ok"):
            raise RuntimeError("%s: %s" % (cmd, reply.get("error")))
        return reply["result"]

    def state(self):
        st = self.ctl("continuity.status", tenant="bench")
        return str(st.get("state", "")).lower(), st

    def wait_state(self, want, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s, st = self.state()
            if s == want:
                return st
            time.sleep(0.05)
        raise RuntimeError("state never became %s (is %s)" % (want, s))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.logf.close()


# ---- 1. failover ---------------------------------------------------------------


def bench_failover(mk, sink_port, interval=2.0):
    mk.cli("continuity", "set", "bench", "mode", "auto")
    mk.cli("continuity", "set", "bench", "failback", "manual")
    sink = Sink(sink_port)
    deadline = time.monotonic() + 30
    while True:
        _, st = mk.state()
        routes = st.get("routes", [])
        if routes and all(r.get("state") == "up" for r in routes):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the route never became up: %r" % routes)
        time.sleep(0.1)
    sink.kill()
    t_kill = time.monotonic()
    t_first = None
    while True:
        s, st = mk.state()
        now = time.monotonic()
        if t_first is None and any((r.get("failures") or 0) >= 1 for r in st.get("routes", [])):
            t_first = now
        if s == "active":
            t_active = now
            break
        if now - t_kill > 60:
            raise RuntimeError("not ACTIVE 60 s after the primary died")
        time.sleep(0.01)
    if t_first is None:
        t_first = t_active
    res = {"failover_from_kill_s": round(t_active - t_kill, 2),
           "failover_from_first_failed_probe_s": round(t_active - t_first, 2),
           "probe_interval_s": interval,
           "failover_intervals": round((t_active - t_first) / interval, 2)}
    log("failover: %.2f s after the kill, %.2f s (%.2f intervals) after the first failed probe"
        % (t_active - t_kill, t_active - t_first, (t_active - t_first) / interval))
    return res


# ---- 2. failback replay ------------------------------------------------------------


def bench_replay(mk, sink_port, n, size):
    log("replay: %d messages of %d bytes held during the outage" % (n, size))
    subprocess.run(["smtp-source", "-d", "-s", "20", "-l", str(size), "-m", str(n),
                    "-f", "sender@elsewhere.test", "-t", HELD_RCPT,
                    "127.0.0.1:%d" % mk.smtp_port], check=True, timeout=600)
    deadline = time.monotonic() + 300
    while True:
        r = mk.ctl("continuity.report", tenant="bench")
        if r.get("accepted", 0) >= n:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("ledger has %s of %d" % (r.get("accepted"), n))
        time.sleep(0.2)
    sink = Sink(sink_port, count=n)
    t0 = time.monotonic()
    mk.cli("continuity", "stop", "bench")
    sink.wait(timeout=900)
    t1 = time.monotonic()
    # smtp-sink -M may exit before the last reply reaches us: that message
    # is retried, so a plain sink takes it and the outage can end.
    after = Sink(sink_port)
    try:
        mk.wait_state("normal", 120)
    finally:
        r = mk.ctl("continuity.report", tenant="bench")
        r.pop("pending_list", None)
        log("replay report: %s" % json.dumps(r))
        after.kill()
    rate = n / (t1 - t0)
    log("replay: %d messages in %.2f s = %.0f msg/s; report accepted=%s delivered=%s "
        "pending=%s failed=%s reconciles=%s" % (n, t1 - t0, rate, r.get("accepted"),
                                                r.get("delivered"), r.get("pending"),
                                                r.get("failed"), r.get("reconciles")))
    return {"replay_msgs": n, "replay_s": round(t1 - t0, 2), "replay_msg_per_s": round(rate),
            "replay_reconciles": r.get("reconciles")}


# ---- 3. IMAP sync against Dovecot ----------------------------------------------------


def corpus_messages(corpus, m):
    """m distinct messages (CRLF) recombined from the spamassassin corpus."""
    files = []
    for sub in ("spamassassin/ham", "spamassassin/spam"):
        d = corpus / sub
        if d.is_dir():
            files += sorted(p for p in d.iterdir() if p.is_file())
    if not files:
        raise RuntimeError("no corpus messages under %s" % corpus)
    out = []
    for i in range(m):
        raw = files[i % len(files)].read_bytes()
        if raw.startswith(b"From "):
            raw = raw.split(b"\n", 1)[1]
        raw = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
        if not raw.endswith(b"\r\n"):
            raw += b"\r\n"
        out.append(b"X-Bench-Seq: %d\r\n" % i + raw)
    return out


def deliver(mk, msgs, threads=4):
    errors = []

    def worker(part):
        try:
            with smtplib.SMTP("127.0.0.1", mk.smtp_port, timeout=120) as s:
                s.ehlo("bench.client")
                for raw in part:
                    s.sendmail("sender@elsewhere.test", [USER], raw)
        except Exception as e:
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(msgs[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("sending failed: %r" % errors[:3])


def imap_count(port, user, pw):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=60)
    try:
        c.login(user, pw)
        typ, data = c.status("INBOX", "(MESSAGES)")
        return int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))
    finally:
        c.logout()


def wait_idle(pid, timeout=300, quiet=0.05):
    """Waits until the process used under `quiet` CPU seconds in one second
    (the delivered mail archived and indexed): returns the seconds waited."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu():
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    t0 = time.monotonic()
    last = cpu()
    while time.monotonic() - t0 < timeout:
        time.sleep(1)
        now = cpu()
        if now - last < quiet:
            break
        last = now
    return time.monotonic() - t0


def mbsync_once(tmp, name, run, port, cert, user, pw, sync_dir=None):
    """One mbsync of the INBOX into an empty Maildir (under sync_dir when
    given): (seconds, messages)."""
    mdir = (sync_dir or tmp) / ("sync-%s-%d" % (name, run))
    mdir.mkdir()
    rc = tmp / ("mbsyncrc-%s-%d" % (name, run))
    rc.write_text("IMAPAccount a\nHost localhost\nPort %d\nUser %s\nPass %s\n"
                  "SSLType IMAPS\nCertificateFile %s\n\nIMAPStore remote\nAccount a\n\n"
                  "MaildirStore local\nPath %s/\nInbox %s/INBOX\n\nChannel c\n"
                  "Far :remote:INBOX\nNear :local:\nSync Pull\nCreate Near\nSyncState *\n"
                  % (port, user, pw, cert, mdir, mdir))
    # mbsync fsyncs every message: what earlier steps left to write back
    # (the delivery, the previous run's Maildir) must not land in this run.
    os.sync()
    t0 = time.monotonic()
    p = subprocess.run(["mbsync", "-q", "-c", str(rc), "c"], capture_output=True, text=True,
                       timeout=1800)
    took = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError("mbsync against %s: %s%s" % (name, p.stdout, p.stderr))
    n = sum(len(os.listdir(mdir / "INBOX" / sub)) for sub in ("cur", "new"))
    log("mbsync %s run %d: %d messages in %.2f s" % (name, run + 1, n, took))
    shutil.rmtree(mdir)
    return took, n


def mbsync_compare(tmp, servers, cert, user, pw, runs, sync_dir=None):
    """Alternates the servers run by run (a shared machine drifts; each
    server sees the same conditions) and keeps each one's best time."""
    best = {}
    for run in range(runs):
        for name, port in servers:
            took, n = mbsync_once(tmp, name, run, port, cert, user, pw, sync_dir)
            if name not in best or took < best[name][0]:
                best[name] = (took, n)
    return best


def start_dovecot(tmp, msgs, cert, key):
    d = tmp / "dovecot"
    for sub in ("run", "state", "home", "Maildir/cur", "Maildir/new", "Maildir/tmp"):
        (d / sub).mkdir(parents=True)
    base = int(time.time())
    for i, raw in enumerate(msgs):
        lf = raw.replace(b"\r\n", b"\n")
        (d / "Maildir" / "cur" / ("%d.M%dP1.bench,S=%d:2," % (base, i, len(lf)))).write_bytes(lf)
    port = free_port()
    uid = 65534
    (d / "dovecot.conf").write_text(
        "base_dir = %s/run\nstate_dir = %s/state\nlog_path = %s/dovecot.log\n"
        "protocols = imap\nlisten = 127.0.0.1\nssl = required\nssl_cert = <%s\nssl_key = <%s\n"
        "mail_location = maildir:%s/Maildir\nfirst_valid_uid = 1\nauth_mechanisms = plain login\n"
        "passdb {\n  driver = static\n  args = password=%s\n}\n"
        "userdb {\n  driver = static\n  args = uid=%d gid=%d home=%s/home\n}\n"
        "service imap-login {\n  chroot =\n  inet_listener imap {\n    port = 0\n  }\n"
        "  inet_listener imaps {\n    port = %d\n  }\n}\nservice anvil {\n  chroot =\n}\n"
        % (d, d, d, cert, key, d, USER_PW, uid, uid, d, port))
    for sub in ("Maildir", "home"):
        subprocess.run(["chown", "-R", "%d:%d" % (uid, uid), str(d / sub)], check=True)
    subprocess.run(["dovecot", "-c", str(d / "dovecot.conf")], check=True)
    wait_port(port)
    return d, port


def bench_sync(mk, tmp, corpus, m, runs, cert, key, sync_dir=None):
    log("sync: %d corpus messages to %s" % (m, USER))
    msgs = corpus_messages(corpus, m)
    sink = Sink(mk.sink_port)
    try:
        t0 = time.monotonic()
        deliver(mk, msgs)
        log("sync: sent in %.1f s" % (time.monotonic() - t0))
        mk.cli("continuity", "drill", "start", "bench", "--users", USER)
        deadline = time.monotonic() + 900
        while True:
            n = imap_count(mk.imaps_port, USER, USER_PW)
            if n >= m:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("continuity INBOX has %d of %d" % (n, m))
            time.sleep(1)
    finally:
        sink.kill()
    log("sync: mailark idle after %.0f s" % wait_idle(mk.proc.pid))
    dv_dir, dv_port = start_dovecot(tmp, msgs, cert, key)
    try:
        best = mbsync_compare(tmp, [("mailark", mk.imaps_port), ("dovecot", dv_port)], cert,
                              USER, USER_PW, runs, sync_dir)
        ours, n_ours = best["mailark"]
        theirs, n_theirs = best["dovecot"]
    finally:
        subprocess.run(["dovecot", "-c", str(dv_dir / "dovecot.conf"), "stop"],
                       capture_output=True)
    mk.cli("continuity", "drill", "stop", "bench")
    return {"sync_msgs": m, "sync_mailark_s": round(ours, 2), "sync_mailark_n": n_ours,
            "sync_dovecot_s": round(theirs, 2), "sync_dovecot_n": n_theirs,
            "sync_ratio": round(ours / theirs, 2) if theirs else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--replay", type=int, default=5000)
    ap.add_argument("--size", type=int, default=5120)
    ap.add_argument("--sync", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", default="failover,replay,sync")
    ap.add_argument("--sync-dir", help="where mbsync writes its Maildirs (default: the "
                    "temporary directory; a tmpfs such as /dev/shm takes the disk out)")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    only = set(a.only.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="mailark-continuity-bench."))
    os.chmod(tmp, 0o755)
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    sink_port = free_port()
    mk = Mailark(a.bin, tmp, sink_port, cert, key)
    mk.sink_port = sink_port
    res = {"cores": os.cpu_count()}
    try:
        if "failover" in only:
            res.update(bench_failover(mk, sink_port))
            # the sink comes and goes below: no outage may start by itself
            mk.cli("continuity", "set", "bench", "mode", "manual")
        if "replay" in only:
            if "failover" not in only:
                mk.cli("continuity", "set", "bench", "failback", "manual")
                mk.cli("continuity", "start", "bench")
            res.update(bench_replay(mk, sink_port, a.replay, a.size))
        if "sync" in only:
            sync_dir = None
            if a.sync_dir:
                sync_dir = Path(tempfile.mkdtemp(prefix="mailark-sync.", dir=a.sync_dir))
            try:
                res.update(bench_sync(mk, tmp, Path(a.corpus), a.sync, a.runs, cert, key,
                                      sync_dir))
            finally:
                if sync_dir is not None:
                    shutil.rmtree(sync_dir, ignore_errors=True)
    finally:
        mk.stop()
        if a.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("%-44s %s" % ("figure", "value"))
    rows = [("failover after the kill (s)", res.get("failover_from_kill_s")),
            ("failover after the first failed probe (s)", res.get("failover_from_first_failed_probe_s")),
            ("  in probe intervals (target <= 2)", res.get("failover_intervals")),
            ("failback replay (msg/s)", res.get("replay_msg_per_s")),
            ("  messages / seconds", "%s / %s" % (res.get("replay_msgs"), res.get("replay_s"))),
            ("mbsync %s msgs from mailark (s)" % res.get("sync_msgs"), res.get("sync_mailark_s")),
            ("mbsync %s msgs from Dovecot (s)" % res.get("sync_msgs"), res.get("sync_dovecot_s")),
            ("  ratio mailark/Dovecot (target <= 1.0)", res.get("sync_ratio"))]
    for k, v in rows:
        print("%-44s %s" % (k, "-" if v is None else v))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
