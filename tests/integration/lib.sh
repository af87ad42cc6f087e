# lib.sh: helpers sourced by tests/integration/t_*.sh (bash): test cases,
# running vmaback, assertions on exit status, messages and files on disk.
#
# A test script defines functions and calls `tcase NAME FUNC` for each; FUNC
# runs in a subshell with `set -e`, in a fresh empty directory $T_WORK/NAME,
# and ends by returning (pass), calling fail (fail) or skip (skip).

set -u
: "${VMABACK:?}" "${RESULTS:?}" "${T_WORK:?}"
TOOLS=${TOOLS:-}
T_NAME=$(basename "$0" .sh)
T_CASE=""
# Longest any single vmaback run may take before it counts as a hang.
VB_TIMEOUT=${VB_TIMEOUT:-120}
export LC_ALL=C

# ------------------------------------------------------------------ cases

tcase() {
	local name=$1 fn=$2 rc t0 secs
	T_CASE=$name
	t0=$(date +%s%N)
	mkdir -p "$T_WORK/$name" "$T_WORK/.io/$name"
	(
		set -e
		cd "$T_WORK/$name"
		OUT=$T_WORK/.io/$name/out
		ERR=$T_WORK/.io/$name/err
		: >"$OUT"
		: >"$ERR"
		"$fn"
	)
	rc=$?
	secs=$(( ($(date +%s%N) - t0) / 1000000 ))
	secs=$((secs / 1000)).$(printf '%03d' $((secs % 1000)) | cut -c1-1)
	case $rc in
	0)
		echo "  ok   $name (${secs}s)"
		echo "pass $T_NAME/$name" >>"$RESULTS"
		;;
	77)
		echo "skip $T_NAME/$name: $(cat "$T_WORK/.io/$name/skip" 2>/dev/null)" >>"$RESULTS"
		;;
	*)
		[ -f "$T_WORK/.io/$name/failed" ] ||
			echo "  FAIL $name: a command failed (status $rc) outside an assertion" >&2
		echo "fail $T_NAME/$name" >>"$RESULTS"
		;;
	esac
	T_CASE=""
	return 0
}

# fail MESSAGE: the case fails; shows the last command's stderr and stdout.
fail() {
	: >"$T_WORK/.io/$T_CASE/failed"
	{
		echo "  FAIL $T_CASE: $*"
		if [ -s "$ERR" ]; then
			echo "    --- stderr of the last run:"
			head -c 2000 "$ERR" | sed 's/^/    | /'
		fi
		if [ -s "$OUT" ]; then
			echo "    --- stdout of the last run:"
			head -c 1000 "$OUT" | cat -v | cut -c1-200 | head -20 | sed 's/^/    | /'
			echo
		fi
	} >&2
	exit 1
}

# skip REASON: the case cannot run here (missing peer, not root, ...).
skip() {
	echo "$*" >"$T_WORK/.io/$T_CASE/skip"
	echo "  skip $T_CASE: $*"
	exit 77
}

# ------------------------------------------------------------------ running

# vb ARGS...: vmaback, killed if it hangs.
vb() {
	timeout --foreground -k 5 "$VB_TIMEOUT" "$VMABACK" "$@"
}

# run CMD ARGS...: stdin from /dev/null, stdout to $OUT, stderr to $ERR,
# status in $RC and $LAST (the command line, for messages).
run() {
	LAST="$*"
	RC=0
	"$@" <"${RUN_STDIN:-/dev/null}" >"$OUT" 2>"$ERR" || RC=$?
}

# runin FILE CMD ARGS...: like run, with stdin from FILE.
runin() {
	local f=$1
	shift
	RUN_STDIN=$f run "$@"
}

# expect_rc N: the last run exited with N.
expect_rc() {
	[ "$RC" -eq "$1" ] || fail "\`$LAST\` exited $RC, expected $1"
}

# expect_err ERE: the last run's stderr matches ERE (case-insensitive).
expect_err() {
	grep -Eiq -- "$1" "$ERR" || fail "\`$LAST\`: stderr does not match /$1/"
}

# expect_out ERE: the last run's stdout matches ERE (case-sensitive, per line).
expect_out() {
	grep -Eq -- "$1" "$OUT" || fail "\`$LAST\`: stdout does not match /$1/"
}

# expect_msg CMD ERE: exactly one "vmaback: CMD: ..." error line that matches ERE.
expect_msg() {
	local cmd=$1 re=$2
	grep -q "^vmaback: $cmd: " "$ERR" ||
		fail "\`$LAST\`: no line starting with 'vmaback: $cmd: ' on stderr"
	grep "^vmaback: $cmd: " "$ERR" | grep -Eiq -- "$re" ||
		fail "\`$LAST\`: the 'vmaback: $cmd:' message does not match /$re/"
}

# expect_fail RC CMD ERE: last run exited RC with a "vmaback: CMD:" message
# matching ERE, and nothing else on stderr but a "Try '...--help'" hint.
expect_fail() {
	expect_rc "$1"
	expect_msg "$2" "$3"
	only_message
}

# only_message: stderr has one "vmaback: " error line; besides it only a
# "Try '...--help'" hint and log lines ("INFO: ..."), no second message and
# nothing from a child process or library.
only_message() {
	local n extra
	n=$(grep -c '^vmaback: ' "$ERR" || true)
	[ "$n" -eq 1 ] || fail "\`$LAST\`: $n 'vmaback:' lines on stderr, expected one"
	extra=$(grep -v -E -e '^vmaback: ' -e "^Try '.*--help'" -e '^(INFO|WARN|WARNING): ' "$ERR" | head -3)
	[ -z "$extra" ] || fail "\`$LAST\`: stray lines on stderr: $extra"
}

# ------------------------------------------------------------------ files

# same A B: the files have the same bytes (and so the same size).
same() {
	[ -f "$1" ] || fail "$1 does not exist"
	[ -f "$2" ] || fail "$2 does not exist"
	cmp -s "$1" "$2" || fail "$1 and $2 differ ($(cmp "$1" "$2" 2>&1 | head -1); sizes $(stat -c %s "$1") and $(stat -c %s "$2"))"
}

# absent PATH...: nothing exists there.
absent() {
	local p
	for p in "$@"; do
		[ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p exists, expected nothing there"
	done
}

# entries DIR NAME...: DIR holds exactly these names (hidden ones included).
entries() {
	local d=$1 want got
	shift
	want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
	got=$(ls -A "$d" | sort)
	[ "$got" = "$want" ] ||
		fail "$d holds [$(echo $got)], expected [$(echo $want)]"
}

# empty_dir DIR: DIR exists and holds nothing (hidden temporaries included).
empty_dir() {
	[ -d "$1" ] || fail "$1 is not a directory"
	entries "$1"
}

# mode_is PATH OCTAL: permission bits.
mode_is() {
	local m
	m=$(stat -c %a "$1")
	[ "$m" = "$2" ] || fail "$1 has mode $m, expected $2"
}

# size_is PATH BYTES
size_is() {
	local s
	s=$(stat -c %s "$1")
	[ "$s" = "$2" ] || fail "$1 is $s bytes, expected $2"
}

# is_vma FILE: starts with "VMA\0"; is_zstd FILE: starts with the zstd magic.
is_vma() {
	[ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = "564d4100" ] ||
		fail "$1 does not start with the VMA magic"
}
is_zstd() {
	[ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = "28b52ffd" ] ||
		fail "$1 does not start with the zstd magic"
}

# ------------------------------------------------------------------ data

# rand FILE BYTES: random content.
rand() {
	head -c "$2" /dev/urandom >"$1"
}

# loopdev FILE: attaches FILE to a free loop device, its name in DEV,
# detached when the case ends; skips without root, losetup or a free device.
loopdev() {
	[ "$(id -u)" = 0 ] || skip "needs root for losetup"
	command -v losetup >/dev/null 2>&1 || skip "losetup missing"
	DEV=$(losetup -f --show "$1" 2>/dev/null) || skip "no loop device available"
	trap 'losetup -d "$DEV" 2>/dev/null' EXIT
}

# put FILE OFFSET BYTES [SRC]: writes BYTES bytes of SRC (default random) at OFFSET.
put() {
	dd if="${4:-/dev/urandom}" of="$1" bs=4096 count="$3" iflag=count_bytes \
		seek="$2" oflag=seek_bytes conv=notrunc status=none
}

# sparse_disk FILE: a 20 MiB + 3 bytes image with data, allocated zero blocks
# and holes (including a hole at the end and a partial last cluster).
sparse_disk() {
	: >"$1"
	truncate -s $((20 * 1048576 + 3)) "$1"
	put "$1" 0 70000
	put "$1" 1048576 65536 /dev/zero            # an allocated all-zero cluster
	put "$1" $((2 * 1048576 + 4096)) 5000       # data straddling blocks
	put "$1" $((3 * 1048576)) 3145728 /dev/zero # 3 MiB of allocated zeros
	put "$1" $((7 * 1048576 + 12345)) 200000
	put "$1" $((12 * 1048576)) 4096
	put "$1" $((12 * 1048576 + 8192)) 4096 /dev/zero
	put "$1" $((20 * 1048576 - 100)) 50
}

# pad512 SRC DST: a copy of SRC padded with zeros to a multiple of 512.
pad512() {
	cp "$1" "$2"
	local s
	s=$(stat -c %s "$1")
	truncate -s $(((s + 511) / 512 * 512)) "$2"
}

# vma_field FILE OFFSET LEN: a big-endian unsigned integer from the file.
vma_field() {
	local hex
	hex=$(od -An -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n')
	echo $((16#$hex))
}

# extent_offsets FILE: the offset of each extent of a plain VMA file, one a line.
extent_offsets() {
	local f=$1 off size bc
	size=$(stat -c %s "$f")
	off=$(vma_field "$f" 56 4)
	while [ "$off" -lt "$size" ]; do
		echo "$off"
		bc=$(vma_field "$f" $((off + 6)) 2)
		off=$((off + 512 + bc * 4096))
	done
}

# flip FILE OFFSET [MASK]: inverts the bits of MASK (default 255: all) in one byte.
flip() {
	local b
	b=$(od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ ${3:-255})))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# forge: TOOLS/vma_forge, or skip the case.
forge() {
	[ -n "$TOOLS" ] && [ -x "$TOOLS/vma_forge" ] || skip "vma_forge not built (TOOLS=$TOOLS)"
	"$TOOLS/vma_forge" "$@"
}
have_forge() {
	[ -n "$TOOLS" ] && [ -x "$TOOLS/vma_forge" ]
}

# ------------------------------------------------------------------ sets

# state_keep SETDIR TAG / state_kept SETDIR TAG: a backup set's state (its
# file names and state.json bytes) before and after a run that must change
# nothing; state_kept also fails on hidden temporaries left in SETDIR.
state_keep() {
	ls -A "$1" >"$T_WORK/.io/$T_CASE/$2.files"
	cp "$1/state.json" "$T_WORK/.io/$T_CASE/$2.state"
}
state_kept() {
	local io=$T_WORK/.io/$T_CASE
	ls -A "$1" >"$io/$2.files2"
	cmp -s "$io/$2.files" "$io/$2.files2" ||
		fail "$1 changed: [$(tr '\n' ' ' <"$io/$2.files")] became [$(tr '\n' ' ' <"$io/$2.files2")]"
	cmp -s "$io/$2.state" "$1/state.json" || fail "$1/state.json changed"
}

# jq_py FILE EXPR: prints EXPR evaluated in Python with d = the JSON in FILE.
jq_py() {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$1" "$2"
}

# ------------------------------------------------------------------ background

# bg CMD ARGS...: starts CMD in the background (stdout $OUT, stderr $ERR,
# stdin /dev/null) in its own process group, so SIGINT is not ignored; PID.
bg() {
	LAST="$*"
	# emptied before the job starts: a caller polling them must not read
	# the previous command's output before the job's redirections run
	: >"$OUT"
	: >"$ERR"
	set -m
	"$@" <"${RUN_STDIN:-/dev/null}" >"$OUT" 2>"$ERR" &
	PID=$!
	set +m
}

# bg_wait [SECONDS]: waits for $PID (default 60 s, then SIGKILL and fail);
# its exit status in RC, the time it took from now in WAITED_MS.
bg_wait() {
	local limit=$((${1:-60} * 20)) i t0
	t0=$(date +%s%N)
	for ((i = 0; i < limit; i++)); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$PID" 2>/dev/null; then
		kill -9 "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
		fail "\`$LAST\` still ran ${1:-60} s later"
	fi
	RC=0
	wait "$PID" || RC=$?
	WAITED_MS=$((($(date +%s%N) - t0) / 1000000))
}

# gone PID: the process has exited (a zombie nobody reaps counts as gone).
gone() {
	[ ! -e "/proc/$1" ] || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
