#!/usr/bin/env bash
# bench/spam/tune.sh — k-fold cross-validation of the classifier's knobs and
# score bands on the TRAINING part of bench/spam/run.sh's split only (the
# files run.sh trains on; its test set is never read), so that the knobs
# the daemon ships with are not fitted to the figures run.sh reports.
#
#   bench/spam/tune.sh [BUILD_DIR] [K]    (default: build, 5 folds)
#
# Builds bench/spam/tune.c against BUILD_DIR/libmailark.a (make it first:
# `make BUILD=BUILD_DIR BUILD_DIR/libmailark.a`) and prints, for every knob
# set of its grid and every band table, spam caught and ham wrongly caught
# at score >= 5.0 summed over the folds.  The default knobs are marked "dflt".
# TUNE_LR=1 bench/spam/tune.sh: the logistic regression's knobs instead
# (see tune.c).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
corpus="$repo/../shared/corpus/spamassassin"
build="${1:-build}"
k="${2:-5}"
[[ "$build" = /* ]] || build="$repo/$build"
[[ -f "$build/libmailark.a" ]] || { echo "no $build/libmailark.a" >&2; exit 1; }
work="$(mktemp -d -t mailark-spam-tune.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# the same split as run.sh: every 3rd file (index 0, 3, ...) is test, skipped here
for kind in spam ham; do
	mkdir -p "$work/train/$kind"
	i=0
	while IFS= read -r f; do
		(( i % 3 == 0 )) || ln -s "$corpus/$kind/$f" "$work/train/$kind/$f"
		i=$((i + 1))
	done < <(ls "$corpus/$kind" | LC_ALL=C sort)
done

pkgs="sqlite3 gmime-3.0 libevent_core libevent_openssl libevent_pthreads openssl jansson
      libmicrohttpd inih libunbound libsodium libzstd ldap libpst libarchive libcurl opendkim
      libmagic"
# shellcheck disable=SC2086
cc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -I"$repo/src" $(pkg-config --cflags $pkgs) \
	-o "$work/tune" "$repo/bench/spam/tune.c" "$build/libmailark.a" \
	$(pkg-config --libs $pkgs) -lspf2 -lopendmarc -lpthread -lm
"$work/tune" "$work/train" "$k"
