#!/bin/sh
# run.sh: runs every tests/integration/t_*.sh (or those named as arguments)
# against $VMABACK, each in its own temporary directory; prints "N passed, N failed".
#
# Usage: VMABACK=build/vmaback TOOLS=build/tools sh tests/integration/run.sh [t_name ...]
# SKIP_SCRIPTS="t_a t_b" leaves those scripts out (each counts as skipped).
# Each test script reports one line per case into $RESULTS (pass/fail/skip,
# see lib.sh); a script that reports nothing counts as one case by its exit
# status (0 pass, 77 skip, else fail); one that dies without reporting a
# failure counts as one failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)

if [ -z "${VMABACK:-}" ]; then
	echo "run.sh: set VMABACK to the vmaback binary" >&2
	exit 2
fi
case $VMABACK in /*) ;; *) VMABACK=$(pwd)/$VMABACK ;; esac
if [ ! -x "$VMABACK" ]; then
	echo "run.sh: $VMABACK is not an executable file" >&2
	exit 2
fi
TOOLS=${TOOLS:-}
case $TOOLS in /* | '') ;; *) TOOLS=$(pwd)/$TOOLS ;; esac
if ! command -v bash >/dev/null 2>&1; then
	echo "run.sh: bash is needed" >&2
	exit 2
fi
# Per test script: generous, only there so that a hang fails instead of blocking CI.
T_TIMEOUT=${T_TIMEOUT:-300}

work=""
results=""
remove_work() {
	if [ -n "$work" ] && [ -d "$work" ]; then
		# A test may have mounted a tmpfs inside its directory.
		awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts 2>/dev/null |
			sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
		rm -rf "$work"
	fi
	work=""
}
cleanup() {
	remove_work
	if [ -n "$results" ]; then rm -f "$results"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

results=$(mktemp "${TMPDIR:-/tmp}/vmaback-results.XXXXXX")

if [ $# -gt 0 ]; then
	scripts=""
	for n in "$@"; do
		n=${n%.sh}
		n=${n##*/}
		scripts="$scripts $here/$n.sh"
	done
else
	scripts=$(ls "$here"/t_*.sh 2>/dev/null)
fi

for t in $scripts; do
	name=$(basename "$t" .sh)
	# SKIP_SCRIPTS: names left out of this run (the sanitizer run leaves out
	# those that exercise no memory of vmaback's: packaging, completions)
	case " ${SKIP_SCRIPTS:-} " in *" $name "*)
		echo "skip $name: left out of this run (SKIP_SCRIPTS)" >>"$results"
		continue ;;
	esac
	if [ ! -f "$t" ]; then
		echo "fail $name (no such test script)" >>"$results"
		continue
	fi
	echo "== $name"
	work=$(mktemp -d "${TMPDIR:-/tmp}/vmaback-$name.XXXXXX")
	before=$(grep -c '^fail ' "$results")
	lines_before=$(wc -l <"$results")
	(cd "$work" && VMABACK=$VMABACK TOOLS=$TOOLS RESULTS=$results T_WORK=$work \
		T_SRCDIR=$here timeout --foreground -k 10 "$T_TIMEOUT" bash "$t")
	rc=$?
	after=$(grep -c '^fail ' "$results")
	if [ "$(wc -l <"$results")" -eq "$lines_before" ] && [ "$rc" -eq 0 ]; then
		# a script that does not use lib.sh's cases counts as one case
		echo "  ok   $name"
		echo "pass $name" >>"$results"
	elif [ "$(wc -l <"$results")" -eq "$lines_before" ] && [ "$rc" -eq 77 ]; then
		echo "  skip $name"
		echo "skip $name (script exited 77)" >>"$results"
	elif [ "$rc" -ne 0 ] && [ "$before" -eq "$after" ]; then
		if [ "$rc" -eq 124 ]; then
			echo "  FAIL $name: timed out after ${T_TIMEOUT}s"
		else
			echo "  FAIL $name: script exited with status $rc"
		fi
		echo "fail $name (script exited $rc)" >>"$results"
	fi
	remove_work
done

passed=$(grep -c '^pass ' "$results")
failed=$(grep -c '^fail ' "$results")
skipped=$(grep -c '^skip ' "$results")

if [ "$failed" -gt 0 ]; then
	echo "failed:"
	grep '^fail ' "$results" | sed 's/^fail /  /'
fi
if [ "$skipped" -gt 0 ]; then
	echo "skipped:"
	grep '^skip ' "$results" | sed 's/^skip /  /'
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
