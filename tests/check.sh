#!/usr/bin/env bash
# Everything `make check` runs (after scripts/deps.sh): the normal and the
# ASan+UBSan build, the unit tests of both, and the integration suite against
# both binaries.  Ends with one line "N passed, M failed" summed over all of
# it; exit status non-zero on any failure.
set -uo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"

total_passed=0
total_failed=0
steps_failed=()
integration_timeout="${MAILARK_IT_TIMEOUT:-1500}"
# Build directories (overridable so that an engineer can run this beside
# someone else's build).
B="${CHECK_BUILD:-build}"
BA="${CHECK_ASAN_BUILD:-build-asan}"

note() { printf '\n=== %s\n' "$*"; }

fail_step() {
	steps_failed+=("$1")
	total_failed=$((total_failed + ${2:-1}))
}

build() { # build NAME make-args...
	local name="$1"
	shift
	note "build $name"
	if make --no-print-directory -j2 "$@"; then
		return 0
	fi
	fail_step "build $name"
	return 1
}

unit() { # unit BUILD
	note "unit tests ($1)"
	local log
	log="$(mktemp)"
	bash tests/run-unit.sh "$1" | tee "$log"
	local rc=${PIPESTATUS[0]}
	local line
	line="$(grep -E '^unit .*: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)"
	rm -f "$log"
	if [[ -z "$line" ]]; then
		fail_step "unit $1 (no summary)"
		return
	fi
	local p f
	p="$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$line")"
	f="$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$line")"
	total_passed=$((total_passed + p))
	total_failed=$((total_failed + f))
	if [[ $rc -ne 0 ]]; then
		steps_failed+=("unit $1")
		[[ $f -eq 0 ]] && total_failed=$((total_failed + 1))
	fi
}

count_word() { # count_word WORD SUMMARYLINE -> number before WORD
	grep -Eo "[0-9]+ $1" <<<"$2" | grep -Eo '^[0-9]+' | head -n 1 || true
}

integration() { # integration LABEL BINARY [env...]
	local label="$1" bin="$2"
	shift 2
	note "integration tests ($label: $bin)"
	local have_tests
	have_tests="$(find tests/integration -name 'test_*.py' | head -n 1)"
	local log
	log="$(mktemp)"
	env PYTHONDONTWRITEBYTECODE=1 MAILARK_BIN="$root/$bin" "$@" \
		timeout "$integration_timeout" /usr/bin/python3 -m pytest -q -rfE \
		-p no:cacheprovider tests/integration 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]}
	local line
	line="$(grep -E '[0-9]+ (passed|failed|error|errors|skipped|deselected)' "$log" | tail -n 1)"
	rm -f "$log"
	local p f e
	p="$(count_word passed "$line")"
	f="$(count_word failed "$line")"
	e="$(count_word 'error' "$line")"
	p=${p:-0}
	f=$(( ${f:-0} + ${e:-0} ))
	total_passed=$((total_passed + p))
	total_failed=$((total_failed + f))
	if [[ $rc -eq 5 && -z "$have_tests" ]]; then
		return
	fi
	if [[ $rc -ne 0 ]]; then
		steps_failed+=("integration $label (pytest exit $rc)")
		[[ $f -eq 0 ]] && total_failed=$((total_failed + 1))
	fi
}

start=$(date +%s)

if build normal BUILD="$B"; then
	unit "$B"
	normal_ok=1
else
	normal_ok=0
fi
if build asan BUILD="$BA" SAN=1; then
	unit "$BA"
	asan_ok=1
else
	asan_ok=0
fi

if [[ $normal_ok -eq 1 ]]; then
	integration normal "$B/mailark"
fi
if [[ $asan_ok -eq 1 ]]; then
	integration asan "$BA/mailark" \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

elapsed=$(( $(date +%s) - start ))
note "summary (${elapsed}s)"
if [[ ${#steps_failed[@]} -gt 0 ]]; then
	printf 'failed: %s\n' "${steps_failed[@]}"
fi
echo "$total_passed passed, $total_failed failed"
[[ ${#steps_failed[@]} -eq 0 && $total_failed -eq 0 ]]
