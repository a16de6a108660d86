#!/usr/bin/env bash
# Runs every unit-test binary of a build directory: tests/run-unit.sh BUILD
# Prints one line per binary and a last line "unit BUILD: N passed, M failed"
# (counted in cmocka tests; a binary that dies without a summary counts as
# one failure).  Exit status is non-zero when anything failed.
set -uo pipefail

build="${1:?usage: tests/run-unit.sh BUILD}"
cd "$(dirname "$0")/.."

passed=0
failed=0
shopt -s nullglob
for src in tests/unit/test_*.c; do
	name="$(basename "$src" .c)"
	bin="$build/tests/$name"
	if [[ ! -x "$bin" ]]; then
		echo "FAIL $name: $bin was not built"
		failed=$((failed + 1))
		continue
	fi
	out="$(timeout 300 "$bin" 2>&1)"
	rc=$?
	p="$(grep -Eo '^\[  PASSED  \] [0-9]+' <<<"$out" | grep -Eo '[0-9]+$' | awk '{s+=$1} END {print s+0}')"
	f="$(grep -Eo '^\[  FAILED  \] [0-9]+ test' <<<"$out" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')"
	if [[ $rc -ne 0 && $f -eq 0 ]]; then
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [[ $rc -eq 0 && $f -eq 0 ]]; then
		echo "ok   $name ($p passed)"
	else
		echo "FAIL $name (exit $rc, $p passed, $f failed)"
		printf '%s\n' "$out" | sed 's/^/    /' | tail -n 80
	fi
done
echo "unit $build: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
