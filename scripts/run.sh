#!/usr/bin/env bash
# Runs mailark in the foreground from the current directory: scripts/run.sh BIN
# Uses ./mailark.conf when present (the built-in defaults otherwise: data in
# ./var, SMTP on 127.0.0.1:2525, HTTP on 127.0.0.1:8025), initialises the data
# directory when it is new, then serves; the daemon prints where it listens.
set -euo pipefail

bin="${1:?usage: scripts/run.sh BIN}"
[[ "$bin" == */* ]] || bin="./$bin"

args=()
if [[ -f ./mailark.conf ]]; then
	args=(-c ./mailark.conf)
	data_dir="$(sed -n 's/^[[:space:]]*data_dir[[:space:]]*=[[:space:]]*//p' ./mailark.conf | tail -n 1)"
else
	echo "run.sh: no ./mailark.conf, using the built-in defaults" >&2
fi
data_dir="${data_dir:-./var}"

if [[ ! -f "$data_dir/mailark.db" || ! -f "$data_dir/keys/master.key" ]]; then
	"$bin" "${args[@]}" init
fi
exec "$bin" "${args[@]}" serve
