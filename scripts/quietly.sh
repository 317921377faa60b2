#!/usr/bin/env bash
# usage: scripts/quietly.sh [--warn] LOG SENTENCE COMMAND [ARGS...]
# Runs COMMAND with its output appended to LOG, and prints nothing when it succeeds. When it fails:
# the last lines of its output, then SENTENCE (what failed and what to do), and exit 1; with --warn
# (an optional step) the same, but exit 0 so that the install goes on.
set -u
warn=0
if [ "${1-}" = --warn ]; then warn=1; shift; fi
log=$1 sentence=$2
shift 2
mkdir -p "$(dirname "$log")"
printf '$ %s\n' "$*" >>"$log"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if "$@" >"$out" 2>&1; then
	cat "$out" >>"$log"
	exit 0
fi
cat "$out" >>"$log"
{
	echo "--- the last lines of: $* (all of it in $log) ---"
	tail -n 30 "$out"
	echo "---"
	echo "make setup: $sentence"
} >&2
[ "$warn" = 1 ] && exit 0
exit 1
