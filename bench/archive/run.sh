#!/usr/bin/env bash
# Archive benchmark: mailark's archive against notmuch (Debian) on the same
# Maildir, in the same run.  Not run by CI; see bench/README.md "## Archive".
#
#   bench/archive/run.sh                 100 000 messages
#   N=1000000 bench/archive/run.sh       the 1M run (long: hours, ~10 GB)
#   BIG=1 N=5000 bench/archive/run.sh    ~100 kB messages (ingest only)
#
# Environment: N (100000), BIG (0), RUNS (search repetitions per query, 20),
# EXPORT (1: also time an e-discovery export of everything, eml),
# THREADS (ingest threads, default online CPUs), BUILD (build), NOTMUCH (1;
# 0 runs mailark alone), KEEP (0; 1 keeps the temporary directory),
# BENCH_TMP (parent of the temporary directory, default /tmp),
# MAILARK_CORPUS (the corpus root, default ../shared/corpus).
#
# Steps: build libmailark.a (make) and bench/archive/archive_bench.c against it;
# mkcorpus.py N messages; archive_bench ingest (timed) and notmuch new (timed,
# private NOTMUCH_CONFIG); on-disk sizes; search p50/p95 of queries.tsv on
# both; an export of everything; ratios.
set -euo pipefail

cd "$(dirname "$0")/../.."
root="$(pwd)"
PY=/usr/bin/python3
N="${N:-100000}"
BIG="${BIG:-0}"
RUNS="${RUNS:-20}"
THREADS="${THREADS:-$(nproc)}"
BUILD="${BUILD:-build}"
WITH_NOTMUCH="${NOTMUCH:-1}"
QUERIES="$root/bench/archive/queries.tsv"
PKGS="libevent_core libevent_openssl libevent_pthreads openssl sqlite3 jansson libmicrohttpd \
inih libunbound libsodium libzstd ldap gmime-3.0 libpst libarchive"

tmp="$(mktemp -d "${BENCH_TMP:-/tmp}/mailark-archive-bench.XXXXXX")"
cleanup() {
	if [[ "${KEEP:-0}" = 1 ]]; then
		echo "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

echo "== build"
make --no-print-directory BUILD="$BUILD" "$BUILD/libmailark.a" >/dev/null
# shellcheck disable=SC2086
cc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Isrc $(pkg-config --cflags $PKGS) \
	-o "$tmp/archive_bench" bench/archive/archive_bench.c "$BUILD/libmailark.a" \
	$(pkg-config --libs $PKGS) -lpthread -lm

echo "== corpus: $N messages$([[ $BIG = 1 ]] && echo ' of ~100 kB')"
big_flag=()
[[ "$BIG" = 1 ]] && big_flag=(--big)
$PY bench/archive/mkcorpus.py "$N" "$tmp/maildir" "${big_flag[@]}"
raw_bytes=$(find "$tmp/maildir" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}')
raw_disk=$(du -sk "$tmp/maildir" | cut -f1)
sync

# Runs a command, then prints "wall user sys maxrss_kB" of it.
timed() {
	/usr/bin/time -f '%e %U %S %M' -o "$tmp/time.out" "$@"
	cat "$tmp/time.out"
}

echo "== mailark ingest ($THREADS threads)"
timed "$tmp/archive_bench" ingest "$tmp/data" bench "$tmp/maildir" \
	"$THREADS" 2> >(grep -v ' info ' >&2) | tee "$tmp/ours.ingest"
ours_time=$(tail -1 "$tmp/ours.ingest")
"$tmp/archive_bench" size "$tmp/data" bench 2> >(grep -v ' info ' >&2) | tee "$tmp/ours.size"
ours_disk=$(du -sk "$tmp/data/archive/bench" | cut -f1)

nm_time="0 0 0"
nm_disk=0
if [[ "$WITH_NOTMUCH" = 1 ]]; then
	echo "== notmuch new"
	export NOTMUCH_CONFIG="$tmp/notmuch-config"
	cat >"$NOTMUCH_CONFIG" <<EOF
[database]
path=$tmp/nmdb
mail_root=$tmp/maildir
[user]
name=Bench
primary_email=bench@bench.mailark.test
[new]
tags=inbox;
ignore=
[search]
exclude_tags=
[maildir]
synchronize_flags=false
EOF
	mkdir -p "$tmp/nmdb"
	nm_time=$(timed notmuch new --quiet | tail -1)
	echo "$nm_time"
	nm_disk=$(du -sk "$tmp/nmdb" | cut -f1)
	notmuch count '*'
fi

echo "== search ($RUNS runs per query)"
"$tmp/archive_bench" search "$tmp/data" bench "$QUERIES" "$RUNS" \
	2> >(grep -v ' info ' >&2) >"$tmp/ours.search"
if [[ "${EXPORT:-1}" = 1 ]]; then
	echo "== mailark export of everything (eml)"
	timed "$tmp/archive_bench" export "$tmp/data" bench '*' "$tmp/export.zip" eml \
		2> >(grep -v ' info ' >&2) | tee "$tmp/ours.export"
	echo "export_maxrss_kb $(cut -d' ' -f4 "$tmp/time.out")" >>"$tmp/ours.export"
	ls -l "$tmp/export.zip"
	rm -f "$tmp/export.zip"
fi
if [[ "$WITH_NOTMUCH" = 1 ]]; then
	$PY - "$QUERIES" "$RUNS" >"$tmp/nm.search" <<'EOF'
# notmuch's side: each query through the CLI, as a user would run it, timed
# from spawn to exit (process start-up included: reported separately).
import subprocess, sys, time
def pct(v, p):
    v = sorted(v); k = max(1, -(-len(v) * p // 100)); return v[min(k, len(v)) - 1]
def run(args, runs):
    ms = []
    for _ in range(runs):
        t = time.monotonic(); out = subprocess.run(args, check=True, capture_output=True)
        ms.append((time.monotonic() - t) * 1000)
    return ms, out.stdout
runs = int(sys.argv[2])
base, _ = run(["notmuch", "count", "id:no-such-message@bench"], runs)
print("startup\t%.2f\t%.2f" % (pct(base, 50), pct(base, 95)))
allc, alls = [], []
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if line.startswith("#") or len(f) < 3:
        continue
    cms, out = run(["notmuch", "count", f[2]], runs)
    sms, _ = run(["notmuch", "search", "--output=summary", "--limit=50", f[2]], runs)
    allc += cms; alls += sms
    print("query\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f" % (f[0], out.decode().strip(), pct(cms, 50),
          pct(cms, 95), pct(sms, 50), pct(sms, 95)))
print("overall\t%.2f\t%.2f\t%.2f\t%.2f" % (pct(allc, 50), pct(allc, 95), pct(alls, 50), pct(alls, 95)))
EOF
fi

echo
echo "== results (N=$N$([[ $BIG = 1 ]] && echo ', ~100 kB messages'), $(nproc) CPUs)"
$PY - "$tmp" "$N" "$raw_bytes" "$raw_disk" "$ours_disk" "$nm_disk" "$ours_time" "$nm_time" \
	"$WITH_NOTMUCH" <<'EOF'
import sys
tmp, n, raw_bytes, raw_disk, ours_disk, nm_disk = sys.argv[1], int(sys.argv[2]), \
    int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
ours_t = [float(x) for x in sys.argv[7].split()]
nm_t = [float(x) for x in sys.argv[8].split()]
with_nm = sys.argv[9] == "1"
import os
kv = {}
for f in ("ours.ingest", "ours.size", "ours.export"):
    if not os.path.exists("%s/%s" % (tmp, f)):
        continue
    for line in open("%s/%s" % (tmp, f)):
        p = line.split()
        if len(p) == 2:
            kv[p[0]] = p[1]
ok = int(kv["ingest_ok"])
rate = ok / float(kv["ingest_seconds"])
print("raw maildir: %d messages, %.1f MB (%.1f MB on disk)" % (n, raw_bytes / 1e6, raw_disk / 1e3))
print("ingest  mailark: %.0f msg/s, %.1f MB/s (%.1f s wall, %.1f s user, %.1f s sys, %s threads)"
      % (rate, float(kv["ingest_mb_per_s"]), ours_t[0], ours_t[1], ours_t[2], kv["ingest_threads"]))
if with_nm:
    nrate = n / nm_t[0]
    print("ingest  notmuch: %.0f msg/s, %.1f MB/s (%.1f s wall, %.1f s user, %.1f s sys)"
          % (nrate, raw_bytes / nm_t[0] / 1e6, nm_t[0], nm_t[1], nm_t[2]))
    print("ingest  ratio mailark/notmuch: %.2f (CPU seconds per message: %.2f)"
          % (rate / nrate, (nm_t[1] + nm_t[2]) / max(ours_t[1] + ours_t[2], 1e-9)))
print("vs mailpiler's ~40 msg/s: %.1fx" % (rate / 40.0))
store, index = int(kv["size_store_bytes"]), int(kv["size_index_bytes"])
print("size  mailark: store %.1f MB + index %.1f MB = %.1f MB = %.1f %% of raw (dir %.1f MB)"
      % (store / 1e6, index / 1e6, (store + index) / 1e6, 100.0 * (store + index) / raw_bytes,
         ours_disk / 1e3))
print("      sealed blobs %.1f MB = %.1f %% of raw" % (int(kv["size_sealed_bytes"]) / 1e6,
      100.0 * int(kv["size_sealed_bytes"]) / raw_bytes))
if with_nm:
    print("size  notmuch xapian: %.1f MB = %.1f %% of raw (index only; the Maildir stays)"
          % (nm_disk / 1e3, 100.0 * nm_disk * 1e3 / raw_bytes))
if "export_messages" in kv:
    print("export  mailark (everything, eml): %s messages in %s s = %s msg/s, zip %.1f MB, "
          "peak RSS %.0f MB" % (kv["export_messages"], kv["export_seconds"],
          kv["export_msgs_per_s"], int(kv["export_bytes"]) / 1e6,
          int(kv["export_maxrss_kb"]) / 1e3))
ours = {}
for line in open("%s/ours.search" % tmp):
    p = line.rstrip("\n").split("\t")
    if p[0] == "query":
        ours[p[1]] = p[2:]
    elif p[0] == "overall":
        ours["*overall"] = p[1:]
nm = {}
if with_nm:
    for line in open("%s/nm.search" % tmp):
        p = line.rstrip("\n").split("\t")
        if p[0] == "query":
            nm[p[1]] = p[2:]
        elif p[0] in ("overall", "startup"):
            nm["*" + p[0]] = p[1:]
print()
print("%-11s %8s %8s %8s | %8s %8s %8s %8s %8s" % ("query", "hits", "p50 ms", "p95 ms",
      "nm hits", "cnt p50", "cnt p95", "srch p50", "srch p95"))
for q, v in ours.items():
    if q.startswith("*"):
        continue
    w = nm.get(q, ["-"] * 5)
    print("%-11s %8s %8s %8s | %8s %8s %8s %8s %8s" % (q, v[0], v[1], v[2], *w))
o = ours["*overall"]
w = nm.get("*overall", ["-"] * 4)
print("%-11s %8s %8s %8s | %8s %8s %8s %8s %8s" % ("overall", "", o[0], o[1], "", *w))
if with_nm:
    s = nm["*startup"]
    print("notmuch process start-up alone (count of a missing id): p50 %s ms, p95 %s ms" % tuple(s))
    print("search p95 ratio mailark/notmuch-count: %.2f" % (float(o[1]) / float(w[1])))
EOF
