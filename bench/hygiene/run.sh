#!/usr/bin/env bash
# bench/hygiene/run.sh — what the filtering pipeline costs: the same inbound
# load through one mailark with [hygiene] enabled = yes (the default tenant
# policy: sender authentication, antivirus when clamd is there, attachment
# policy, impersonation, antispam with the built-in classifier) and through
# one with enabled = no, one after the other in the same run; prints msg/s
# of each and the ratio.
#
#   bench/hygiene/run.sh [MAILARK_BIN]        (default: build/mailark)
#
# smtp-source -> mailark (127.0.0.1) -> smtp-sink.  DNS (SPF/DMARC of the
# sender domain bench.test) is a private unbound on loopback answering the
# zone "test." (NXDOMAIN at once), so the figures measure mailark, not the
# network.  Antivirus: a private clamd with a one-signature database (as the
# integration tests run it) when /usr/sbin/clamd exists; CLAMD=0 skips it.
# Knobs: BENCH_MSGS (2000), BENCH_SESSIONS (20), BENCH_SIZE (10240),
# HYGIENE_THREADS (4).  Both daemons log at level info (the "hygiene" line
# per message is counted).  Needs root for smtp-sink -u postfix, as bench/run.sh.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:-$repo/build/mailark}"
MSGS="${BENCH_MSGS:-2000}"
SESS="${BENCH_SESSIONS:-20}"
SIZE="${BENCH_SIZE:-10240}"
THREADS="${HYGIENE_THREADS:-4}"
[[ -x "$bin" ]] || { echo "no mailark binary at $bin" >&2; exit 1; }
command -v smtp-source >/dev/null || { echo "smtp-source (postfix) missing" >&2; exit 1; }

tmp="$(mktemp -d /tmp/mailark-hygiene-bench.XXXXXX)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "port $1 never opened" >&2
	return 1
}

# ---- DNS -------------------------------------------------------------------
dns_port=$(free_port)
cat >"$tmp/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $dns_port
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$tmp"
  pidfile: ""
  use-syslog: no
  do-ip6: no
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "test." static
remote-control:
  control-enable: no
CONF
unbound -d -c "$tmp/unbound.conf" >"$tmp/unbound.log" 2>&1 &
pids+=($!)

# ---- clamd (optional) ------------------------------------------------------
clamd_sock=""
if [[ "${CLAMD:-1}" != 0 && -x /usr/sbin/clamd ]]; then
	mkdir -p "$tmp/clamd/db"
	# the EICAR test string, as the integration tests' clamd_helper defines it
	printf 'Eicar-Signature:0:*:58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a\n' \
		>"$tmp/clamd/db/test.ndb"
	cat >"$tmp/clamd/clamd.conf" <<CONF
Foreground yes
LocalSocket $tmp/clamd/clamd.sock
DatabaseDirectory $tmp/clamd/db
LogFile $tmp/clamd/clamd.log
PidFile $tmp/clamd/clamd.pid
User root
ScanMail yes
StreamMaxLength 20M
CONF
	/usr/sbin/clamd -c "$tmp/clamd/clamd.conf" >/dev/null 2>&1 &
	pids+=($!)
	for _ in $(seq 300); do [[ -S "$tmp/clamd/clamd.sock" ]] && break; sleep 0.1; done
	[[ -S "$tmp/clamd/clamd.sock" ]] && clamd_sock="$tmp/clamd/clamd.sock"
fi

# ---- one daemon per setting ---------------------------------------------------
start_mailark() { # start_mailark NAME ENABLED SINKPORT -> sets port
	local d="$tmp/$1"
	port=$(free_port)
	mkdir -p "$d"
	cat >"$d/mailark.conf" <<CONF
[server]
data_dir = $d/var
[smtp]
listen = 127.0.0.1:$port
[http]
listen = 127.0.0.1:$(free_port)
[imap]
listen = 127.0.0.1:$(free_port)
tls_listen = 127.0.0.1:$(free_port)
[submission]
listen = 127.0.0.1:$(free_port)
[delivery]
dns_resolver = 127.0.0.1@$dns_port
[log]
level = info
[hygiene]
enabled = $2
threads = $THREADS
clamd_socket = $clamd_sock
CONF
	"$bin" -c "$d/mailark.conf" init >/dev/null 2>&1
	"$bin" -c "$d/mailark.conf" serve >"$d/daemon.log" 2>&1 &
	pids+=($!)
	mailark_pid=$!
	for _ in $(seq 100); do [[ -S "$d/var/control.sock" ]] && break; sleep 0.1; done
	local mk=("$bin" -c "$d/mailark.conf")
	"${mk[@]}" tenant add bench >/dev/null
	"${mk[@]}" domain add bench bench.test >/dev/null
	"${mk[@]}" route set bench.test "smtp://127.0.0.1:$3" >/dev/null
	wait_port "$port"
}

run() { # run NAME ENABLED -> prints "accepted e2e cpu" into $tmp/NAME.res
	local sinkport
	sinkport=$(free_port)
	smtp-sink -u postfix -M "$MSGS" "127.0.0.1:$sinkport" 512 >/dev/null 2>&1 &
	local sink=$!
	wait_port "$sinkport"
	start_mailark "$1" "$2" "$sinkport"
	local t0 t1 t2
	t0=$(now)
	smtp-source -d -s "$SESS" -l "$SIZE" -m "$MSGS" -f bench@bench.test \
		-t user@bench.test "127.0.0.1:$port"
	t1=$(now)
	local deadline=$((SECONDS + 300))
	while kill -0 "$sink" 2>/dev/null && [[ $SECONDS -lt $deadline ]]; do sleep 0.02; done
	t2=$(now)
	local cpu
	cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$mailark_pid/stat")
	kill "$mailark_pid" 2>/dev/null || true
	kill "$sink" 2>/dev/null || true
	wait "$mailark_pid" 2>/dev/null || true
	local scanned
	scanned=$(grep -c ' hygiene id=' "$tmp/$1/daemon.log" || true)
	awk -v m="$MSGS" -v a="$t0" -v b="$t1" -v c="$t2" -v cpu="$cpu" -v s="$scanned" \
		'BEGIN { printf "%.1f %.1f %.2f %d\n", m / (b - a), m / (c - a), cpu * 1000 / m, s }' \
		>"$tmp/$1.res"
}

echo "load: $MSGS x $SIZE B over $SESS sessions; hygiene threads $THREADS;" \
	"clamd: $([[ -n $clamd_sock ]] && echo yes || echo no)" >&2
run on yes
run off no
read -r on_acc on_e2e on_cpu on_n <"$tmp/on.res"
read -r off_acc off_e2e off_cpu off_n <"$tmp/off.res"
printf '%-28s %12s %12s %8s\n' "figure" "hygiene on" "hygiene off" "on/off"
printf '%-28s %12s %12s %8.2f\n' "accepted msg/s" "$on_acc" "$off_acc" \
	"$(awk -v a="$on_acc" -v b="$off_acc" 'BEGIN { print a / b }')"
printf '%-28s %12s %12s %8.2f\n' "end-to-end msg/s" "$on_e2e" "$off_e2e" \
	"$(awk -v a="$on_e2e" -v b="$off_e2e" 'BEGIN { print a / b }')"
printf '%-28s %12s %12s %8.2f\n' "daemon CPU ms per message" "$on_cpu" "$off_cpu" \
	"$(awk -v a="$on_cpu" -v b="$off_cpu" 'BEGIN { print (b > 0) ? (a / b) : 0 }')"
printf '%-28s %12s %12s\n' "messages scanned (log)" "$on_n" "$off_n"
