#!/usr/bin/env bash
# Benchmark: smtp-source -> mailark -> smtp-sink, against the same load
# through a private Postfix relay on loopback, in the same run.
#
#   bench/run.sh            (or `make bench`)
#
# Environment: MAILARK_BIN (build/mailark), BENCH_MSGS (5000), BENCH_SESSIONS
# (50), BENCH_SIZE (10240 bytes), BENCH_LAT_MSGS (2000), BENCH_POSTFIX (1; 0 runs
# mailark alone, for quick comparisons of two builds).  All traffic stays on
# 127.0.0.1.  Needs root for the private Postfix instance (as Postfix does).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
BIN="${MAILARK_BIN:-build/mailark}"
[[ "$BIN" = /* ]] || BIN="$root/$BIN"
MSGS="${BENCH_MSGS:-5000}"
SESS="${BENCH_SESSIONS:-50}"
SIZE="${BENCH_SIZE:-10240}"
LAT_MSGS="${BENCH_LAT_MSGS:-2000}"
WITH_POSTFIX="${BENCH_POSTFIX:-1}"
PY=/usr/bin/python3
WAIT_LIMIT=600

tmp="$(mktemp -d /tmp/mailark-bench.XXXXXX)"
chmod 755 "$tmp"
mailark_pid=""
sink_pid=""
sampler_pid=""
pf_started=0

cleanup() {
	set +e
	[[ -n "$sampler_pid" ]] && kill "$sampler_pid" 2>/dev/null
	[[ -n "$sink_pid" ]] && kill "$sink_pid" 2>/dev/null
	if [[ -n "$mailark_pid" ]]; then
		kill -TERM "$mailark_pid" 2>/dev/null
		wait "$mailark_pid" 2>/dev/null
	fi
	[[ $pf_started -eq 1 ]] && postfix -c "$tmp/postfix/conf" stop >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now() { date +%s.%N; }

wait_port() { # wait_port PORT
	for _ in $(seq 1 300); do
		if "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "port $1 never opened" >&2
	return 1
}

# smtp-sink that exits after COUNT messages.
start_sink() { # start_sink PORT COUNT
	smtp-sink -u postfix -M "$2" "127.0.0.1:$1" 512 >/dev/null 2>&1 &
	sink_pid=$!
	wait_port "$1"
}

wait_sink() {
	local deadline=$((SECONDS + WAIT_LIMIT))
	while kill -0 "$sink_pid" 2>/dev/null; do
		if [[ $SECONDS -ge $deadline ]]; then
			echo "sink did not get every message within ${WAIT_LIMIT}s" >&2
			return 1
		fi
		sleep 0.02
	done
	wait "$sink_pid" 2>/dev/null || true
	sink_pid=""
}

# Sum of VmHWM (kB) of a set of pids.
hwm_of() {
	local sum=0 v
	for p in "$@"; do
		v="$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)"
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# Sum of Pss (kB, shared pages divided among their users) of a set of pids.
pss_of() {
	local sum=0 v
	for p in "$@"; do
		v="$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)"
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# Samples, every 0.2 s, the summed VmHWM of PID and its children and their
# summed Pss; keeps the maxima in FILE and FILE.pss.
start_sampler() { # start_sampler PID FILE
	(
		max=0
		pmax=0
		while kill -0 "$1" 2>/dev/null; do
			pids="$1 $(pgrep -P "$1" | tr '\n' ' ' || true)"
			cur="$(hwm_of $pids)"
			pcur="$(pss_of $pids)"
			((cur > max)) && max=$cur && echo "$max" >"$2"
			((pcur > pmax)) && pmax=$pcur && echo "$pmax" >"$2.pss"
			sleep 0.2
		done
	) &
	sampler_pid=$!
}

stop_sampler() {
	kill "$sampler_pid" 2>/dev/null || true
	wait "$sampler_pid" 2>/dev/null || true
	sampler_pid=""
}

# run_load NAME PORT SINKPORT: prints "accepted e2e p50 p99" into $tmp/NAME.res
run_load() {
	local name="$1" port="$2" sinkport="$3"
	echo "--- $name: $MSGS x ${SIZE} B over $SESS sessions (smtp-source)" >&2
	start_sink "$sinkport" "$MSGS"
	local t0 t1 t2
	t0="$(now)"
	smtp-source -d -s "$SESS" -l "$SIZE" -m "$MSGS" -f bench@bench.test \
		-t sink@bench.test "127.0.0.1:$port"
	t1="$(now)"
	wait_sink
	t2="$(now)"
	echo "--- $name: latency, $LAT_MSGS messages over $SESS sessions" >&2
	start_sink "$sinkport" "$LAT_MSGS"
	local lat
	lat="$("$PY" bench/smtp_latency.py 127.0.0.1 "$port" "$SESS" "$LAT_MSGS" "$SIZE" \
		bench@bench.test sink@bench.test)"
	wait_sink
	echo "    $lat" >&2
	local p50 p99
	p50="$(grep -Eo 'p50_ms=[0-9.]+' <<<"$lat" | cut -d= -f2)"
	p99="$(grep -Eo 'p99_ms=[0-9.]+' <<<"$lat" | cut -d= -f2)"
	awk -v m="$MSGS" -v a="$t0" -v b="$t1" -v c="$t2" -v p50="$p50" -v p99="$p99" \
		'BEGIN { printf "%.1f %.1f %s %s\n", m / (b - a), m / (c - a), p50, p99 }' \
		>"$tmp/$name.res"
}

# ---- mailark -----------------------------------------------------------------
setup_mailark() {
	local sinkport="$1"
	mk_port="$(free_port)"
	local http_port
	http_port="$(free_port)"
	mkdir -p "$tmp/mailark"
	cat >"$tmp/mailark/mailark.conf" <<EOF
[server]
data_dir = $tmp/mailark/var
[smtp]
listen = 127.0.0.1:$mk_port
max_connections_per_ip = 1000
[http]
listen = 127.0.0.1:$http_port
[queue]
retry_min = 1s
retry_max = 5s
[log]
level = warn
EOF
	"$BIN" -c "$tmp/mailark/mailark.conf" init >/dev/null
	"$BIN" -c "$tmp/mailark/mailark.conf" serve >"$tmp/mailark/log" 2>&1 &
	mailark_pid=$!
	wait_port "$mk_port"
	for _ in $(seq 1 100); do
		[[ -S "$tmp/mailark/var/control.sock" ]] && break
		sleep 0.1
	done
	local c=("$BIN" -c "$tmp/mailark/mailark.conf")
	"${c[@]}" tenant add bench >/dev/null
	"${c[@]}" domain add bench bench.test >/dev/null
	"${c[@]}" route set bench.test "smtp://127.0.0.1:$sinkport" >/dev/null
}

# ---- Postfix -------------------------------------------------------------------
setup_postfix() {
	local sinkport="$1"
	pf_port="$(free_port)"
	local d="$tmp/postfix"
	mkdir -p "$d/conf" "$d/queue" "$d/data"
	chown postfix "$d/data"
	cat >"$d/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench-postfix.localdomain
mydomain = localdomain
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$sinkport
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtputf8_enable = no
biff = no
maillog_file = $d/maillog
maillog_file_prefixes = $d
EOF
	cat >"$d/conf/master.cf" <<EOF
127.0.0.1:$pf_port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	postfix -c "$d/conf" start >"$d/start.log" 2>&1 || {
		cat "$d/start.log" >&2
		return 1
	}
	pf_started=1
	wait_port "$pf_port"
	for _ in $(seq 1 100); do
		[[ -s "$d/queue/pid/master.pid" ]] && break
		sleep 0.1
	done
	pf_master="$(tr -d ' \n' <"$d/queue/pid/master.pid")"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

[[ -x "$BIN" ]] || { echo "no mailark binary at $BIN (make first)" >&2; exit 1; }
for t in smtp-source smtp-sink $([[ "$WITH_POSTFIX" = 0 ]] || echo postfix); do
	command -v "$t" >/dev/null || { echo "$t not found (Debian package postfix)" >&2; exit 1; }
done

sink_port="$(free_port)"

setup_mailark "$sink_port"
start_sampler "$mailark_pid" "$tmp/mk.rss"
run_load mailark "$mk_port" "$sink_port"
stop_sampler
# CPU time of the daemon (all its threads) for both phases: steadier than
# rates on a busy machine, so the figure to compare two builds with.
mk_cpu="$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' \
	"/proc/$mailark_pid/stat")"
mk_rss="$(hwm_of "$mailark_pid")"
mk_pss="$(cat "$tmp/mk.rss.pss" 2>/dev/null || echo 0)"
kill -TERM "$mailark_pid"
wait "$mailark_pid" || true
mailark_pid=""

if [[ "$WITH_POSTFIX" = 0 ]]; then
	echo "0 0 0 0" >"$tmp/postfix.res"
	pf_rss=0
	pf_pss=0
else
	setup_postfix "$sink_port"
	start_sampler "$pf_master" "$tmp/pf.rss"
	run_load postfix "$pf_port" "$sink_port"
	stop_sampler
	pf_rss="$(cat "$tmp/pf.rss" 2>/dev/null || echo 0)"
	pf_pss="$(cat "$tmp/pf.rss.pss" 2>/dev/null || echo 0)"
	postfix -c "$tmp/postfix/conf" stop >/dev/null 2>&1 || true
	pf_started=0
fi

read -r mk_acc mk_e2e mk_p50 mk_p99 <"$tmp/mailark.res"
read -r pf_acc pf_e2e pf_p50 pf_p99 <"$tmp/postfix.res"

echo
echo "load: $MSGS messages of $SIZE bytes, $SESS sessions; latency: $LAT_MSGS messages; $(nproc) cores"
printf '%-28s %12s %12s %10s\n' "" mailark postfix ratio
printf '%-28s %12s %12s %10s\n' "accepted msg/s" "$mk_acc" "$pf_acc" "$(ratio "$mk_acc" "$pf_acc")"
printf '%-28s %12s %12s %10s\n' "end-to-end msg/s" "$mk_e2e" "$pf_e2e" "$(ratio "$mk_e2e" "$pf_e2e")"
printf '%-28s %12s %12s %10s\n' "p50 DATA->250 (ms)" "$mk_p50" "$pf_p50" "$(ratio "$mk_p50" "$pf_p50")"
printf '%-28s %12s %12s %10s\n' "p99 DATA->250 (ms)" "$mk_p99" "$pf_p99" "$(ratio "$mk_p99" "$pf_p99")"
printf '%-28s %12s %12s %10s\n' "peak RSS, VmHWM sum (kB)" "$mk_rss" "$pf_rss" "$(ratio "$mk_rss" "$pf_rss")"
printf '%-28s %12s %12s %10s\n' "peak PSS sum (kB)" "$mk_pss" "$pf_pss" "$(ratio "$mk_pss" "$pf_pss")"
echo "mailark CPU (user+sys, both phases): ${mk_cpu} s," \
	"$(awk -v c="$mk_cpu" -v n="$((MSGS + LAT_MSGS))" 'BEGIN { printf "%.0f", c * 1e6 / n }') us per message"
