#!/usr/bin/env bash
# bench/spam/run.sh — mailark's classifier against SpamAssassin's, on the
# SpamAssassin public corpus (../shared/corpus/spamassassin).
#
#   bench/spam/run.sh [MAILARK_BIN]      (default: build/mailark)
#
# Split: files sorted by name within ham/ and spam/; every 3rd one (index
# 0, 3, 6, ...) is the test set, the rest the training set.
# mailark: a daemon in a temporary directory; `mailark spam train` on the
# training set, then `mailark spam classify` over the test set (one request
# per message on the control socket, sequential).
# SpamAssassin: `sa-learn` on the same training set into a private Bayes db,
# then spamd (local tests only, no network, one child) and `spamc -c` per
# test message, sequential — the same client → daemon shape as mailark's.
# Both say spam at score >= 5.0.  Prints caught / wrongly caught / speed.
# Environment: SPAM_BENCH_DIR (work dir, default a mktemp), SKIP_SA=1.
# The classifier's knobs are chosen by bench/spam/tune.sh (cross-validation
# on this training set only), never on this test set.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
corpus="$repo/../shared/corpus/spamassassin"
bin="${1:-$repo/build/mailark}"
work="${SPAM_BENCH_DIR:-$(mktemp -d -t mailark-spam-bench.XXXXXX)}"
[[ -x "$bin" ]] || { echo "no mailark binary at $bin" >&2; exit 1; }
[[ -d "$corpus/ham" ]] || { echo "no corpus at $corpus" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# ---- split ----------------------------------------------------------------
for set in train test; do mkdir -p "$work/$set/spam" "$work/$set/ham"; done
for kind in spam ham; do
	i=0
	while IFS= read -r f; do
		if (( i % 3 == 0 )); then dst=test; else dst=train; fi
		ln -sf "$corpus/$kind/$f" "$work/$dst/$kind/$f"
		i=$((i + 1))
	done < <(ls "$corpus/$kind" | LC_ALL=C sort)
done
n_test_spam=$(ls "$work/test/spam" | wc -l)
n_test_ham=$(ls "$work/test/ham" | wc -l)
echo "split: train $(ls "$work/train/spam" | wc -l) spam + $(ls "$work/train/ham" | wc -l) ham," \
	"test $n_test_spam spam + $n_test_ham ham"

# ---- mailark --------------------------------------------------------------
m="$work/mailark"
mkdir -p "$m"
cat > "$m/mailark.conf" <<CONF
[server]
data_dir = $m/var
[smtp]
listen = 127.0.0.1:$(free_port)
[http]
listen = 127.0.0.1:$(free_port)
[imap]
listen = 127.0.0.1:$(free_port)
tls_listen = 127.0.0.1:$(free_port)
[submission]
listen = 127.0.0.1:$(free_port)
[log]
level = warn
[hygiene]
enabled = yes
CONF
mk() { "$bin" -c "$m/mailark.conf" "$@"; }
mk init >/dev/null
"$bin" -c "$m/mailark.conf" serve >"$m/daemon.log" 2>&1 &   # not via mk: $! must be the daemon
daemon=$!
cleanup() {
	kill "$daemon" 2>/dev/null || true
	[[ -n "${spamd_pid:-}" ]] && kill "$spamd_pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [[ -S "$m/var/control.sock" ]] && break; sleep 0.1; done
mk tenant add bench >/dev/null

t0=$(now)
mk spam train bench --spam "$work/train/spam" --ham "$work/train/ham" | sed 's/^/mailark: /'
t1=$(now)
mk spam classify bench "$work"/test/spam/* > "$work/mailark-spam.txt" || true
mk spam classify bench "$work"/test/ham/* > "$work/mailark-ham.txt" || true
t2=$(now)
mk_train_s=$(echo "$t1 - $t0" | bc -l)
mk_class_s=$(echo "$t2 - $t1" | bc -l)
mk_caught=$(awk '$NF != "ham"' "$work/mailark-spam.txt" | wc -l)
mk_fp=$(awk '$NF != "ham"' "$work/mailark-ham.txt" | wc -l)

report() {   # name caught fp seconds train_seconds
	local n=$((n_test_spam + n_test_ham))
	printf '%-13s spam caught %6.2f%% (%d/%d)  ham wrongly caught %5.2f%% (%d/%d)  ' \
		"$1" "$(echo "100 * $2 / $n_test_spam" | bc -l)" "$2" "$n_test_spam" \
		"$(echo "100 * $3 / $n_test_ham" | bc -l)" "$3" "$n_test_ham"
	printf '%7.1f msg/s classify (%.1f s)  training %.1f s\n' \
		"$(echo "$n / $4" | bc -l)" "$4" "$5"
}
report mailark "$mk_caught" "$mk_fp" "$mk_class_s" "$mk_train_s"
[[ "${SKIP_SA:-0}" == 1 ]] && exit 0

# ---- SpamAssassin ---------------------------------------------------------
sa="$work/sa"
mkdir -p "$sa/conf" "$sa/bayes" "$sa/home"
cp /etc/spamassassin/*.pre "$sa/conf/"
cat > "$sa/conf/local.cf" <<CONF
use_bayes 1
bayes_auto_learn 0
bayes_path $sa/bayes/bayes
bayes_file_mode 0777
use_razor2 0
use_pyzor 0
skip_rbl_checks 1
dns_available no
required_score 5.0
CONF
sal() { sa-learn --siteconfigpath "$sa/conf" -L --no-sync "$@" >/dev/null; }
t0=$(now)
sal --spam "$work/train/spam"
sal --ham "$work/train/ham"
sa-learn --siteconfigpath "$sa/conf" --sync >/dev/null
t1=$(now)
sa_train_s=$(echo "$t1 - $t0" | bc -l)
chmod -R a+rwX "$sa"
port=$(free_port)
user=$(id -un); [[ "$user" == root ]] && user=nobody
spamd -L -x -m 1 -i 127.0.0.1 -p "$port" -u "$user" --siteconfigpath "$sa/conf" \
	--helper-home-dir "$sa/home" -r "$sa/spamd.pid" >"$sa/spamd.log" 2>&1 &
spamd_pid=$!
for _ in $(seq 300); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
	sleep 0.2
done
classify_sa() {   # dir → "file score" lines
	for f in "$1"/*; do
		printf '%s %s\n' "$f" "$(spamc -d 127.0.0.1 -p "$port" -c < "$f" || true)"
	done
}
t0=$(now)
classify_sa "$work/test/spam" > "$work/sa-spam.txt"
classify_sa "$work/test/ham" > "$work/sa-ham.txt"
t1=$(now)
sa_class_s=$(echo "$t1 - $t0" | bc -l)
sa_is_spam='{ split($2, s, "/"); if (s[1] + 0 >= 5.0) print }'
sa_caught=$(awk "$sa_is_spam" "$work/sa-spam.txt" | wc -l)
sa_fp=$(awk "$sa_is_spam" "$work/sa-ham.txt" | wc -l)
report spamassassin "$sa_caught" "$sa_fp" "$sa_class_s" "$sa_train_s"
printf 'speed ratio (mailark / SpamAssassin, classify): %.1fx\n' "$(echo "$sa_class_s / $mk_class_s" | bc -l)"
printf 'training ratio (SpamAssassin / mailark time): %.1fx\n' "$(echo "$sa_train_s / $mk_train_s" | bc -l)"
echo "work dir: $work"
