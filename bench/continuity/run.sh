#!/usr/bin/env bash
# Continuity benchmark: failover time, failback replay rate, and mbsync's
# time to sync a continuity INBOX against Dovecot (Debian) serving the same
# messages from a Maildir, in the same run.  Not run by CI; see
# bench/README.md "## Continuity".
#
#   bench/continuity/run.sh
#   REPLAY=1000 SYNC=2000 bench/continuity/run.sh       a quick run
#
# Environment: BUILD (build), MAILARK_BIN ($BUILD/mailark), REPLAY (messages
# held and replayed, 5000), SIZE (their size, 5120 bytes), SYNC (messages in
# the synced INBOX, 10000), RUNS (mbsync runs per server, the servers
# alternating, best kept, 1), ONLY (failover,replay,sync), JSON (write the
# figures there), MAILARK_CORPUS (the corpus root, default ../shared/corpus),
# SYNC_DIR (where mbsync writes its Maildirs; a tmpfs such as /dev/shm takes
# the disk out of the sync figure, leaving the servers).
#
# Needs smtp-sink and smtp-source (postfix), dovecot (dovecot-imapd), mbsync
# (isync) and openssl; root, for Dovecot's privilege separation and
# smtp-sink -u.  Everything listens on 127.0.0.1; the temporary directory
# is removed at the end (KEEP=1 keeps it).
set -euo pipefail

cd "$(dirname "$0")/../.."
root="$(pwd)"
BUILD="${BUILD:-build}"
BIN="${MAILARK_BIN:-$BUILD/mailark}"
[[ "$BIN" = /* ]] || BIN="$root/$BIN"
CORPUS="${MAILARK_CORPUS:-$root/../shared/corpus}"

for t in smtp-sink smtp-source dovecot mbsync openssl; do
	command -v "$t" >/dev/null || { echo "$t not found" >&2; exit 1; }
done
if [[ -z "${MAILARK_BIN:-}" ]]; then
	make --no-print-directory BUILD="$BUILD" "$BUILD/mailark" >/dev/null
fi
[[ -x "$BIN" ]] || { echo "no mailark binary at $BIN" >&2; exit 1; }

args=(--bin "$BIN" --corpus "$CORPUS" --replay "${REPLAY:-5000}" --size "${SIZE:-5120}"
	--sync "${SYNC:-10000}" --runs "${RUNS:-1}" --only "${ONLY:-failover,replay,sync}")
[[ -n "${JSON:-}" ]] && args+=(--json "$JSON")
[[ -n "${SYNC_DIR:-}" ]] && args+=(--sync-dir "$SYNC_DIR")
[[ "${KEEP:-0}" = 1 ]] && args+=(--keep)
echo "continuity bench: $(nproc) cores, $(date -u +%Y-%m-%d)"
exec /usr/bin/python3 bench/continuity/bench.py "${args[@]}"
