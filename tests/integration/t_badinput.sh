# t_badinput.sh: the bad-input catalogue, tests/badinput/cases.tsv: each line
# runs one command on a fresh copy of a fixture (sources, archives of a set s
# and a set t, their state, damaged archives and state files) and checks the
# exit status, the one "vmaback: CMD: ..." message, and what was written.
#
# Fields (TAB-separated; '#' lines and blank lines are skipped):
#   name  status  cmd  regex  post  setup  command
# status/cmd/regex: `vmaback` exits with status and prints exactly one line
# "vmaback: cmd: ..." matching regex (case-insensitive ERE), besides INFO/WARN
# lines and a "Try ... --help" hint; cmd '-' skips the message check.
# post: 'same' (no file in the case directory was added, removed or changed,
# the state included), 'nostate' (as same, and no state directory was
# created), 'any' (nothing checked), or 'empty:DIR' (DIR holds nothing, no
# archive and no temporary; state files unchanged; sources may differ).
# setup: shell run before the snapshot ('-' for none); command: shell, with
# the helpers below; `vb` runs vmaback.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"

CASES=$T_SRCDIR/../badinput/cases.tsv
FIX=$T_WORK/.fix

# ------------------------------------------------------------ helpers for commands

# midrun SECONDS ACTION CMD...: CMD in the background; ACTION (shell) after
# SECONDS; the status is CMD's.
midrun() {
	local t=$1 act=$2 p rc=0
	shift 2
	"$@" &
	p=$!
	sleep "$t"
	eval "$act"
	wait "$p" || rc=$?
	return "$rc"
}

# as_nobody CMD...: CMD as user nobody when root (permissions do not bind root).
as_nobody() {
	if [ "$(id -u)" != 0 ]; then
		"$@"
		return
	fi
	command -v setpriv >/dev/null 2>&1 || skip "root without setpriv"
	id -u nobody >/dev/null 2>&1 || skip "no user nobody"
	chmod 711 "$T_WORK" .
	setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups "$@"
}

# slow_nbd NAME: an nbdkit export of 16 MiB of data whose reads take 20 ms,
# on $S/NAME.sock; NBD_URI its URI.
slow_nbd() {
	need nbdkit
	sockdir
	nbdkit_up "$1" --filter=delay data '@0 1*16777216' size=16777216 rdelay=20ms >/dev/null
	NBD_URI="nbd+unix:///?socket=$S/$1.sock"
}

# ------------------------------------------------------------ fixture

# vbf ARGS...: vmaback for the fixture, which must succeed.
vbf() {
	"$VMABACK" "$@" --quiet >/dev/null || { echo "fixture: vmaback $* failed" >&2; exit 1; }
}

make_fixture() {
	local hs second last
	mkdir -p "$FIX"
	cd "$FIX" || exit 1
	mkdir src arch bad out
	rand src/a 100000
	rand src/b 5000
	rand src/big $((4 * 1048576))
	: >src/empty
	mkdir src/dir
	mkfifo src/fifo
	printf 'memory: 1\n' >src/vm.conf
	printf 'QFI\373' >src/fake.qcow2
	head -c 2000 /dev/urandom >>src/fake.qcow2
	# set s: F (n1), I1 (n2), I2 (n3, zstd); set t: G, J
	vbf backup --set s --state-dir st -d a=src/a -d b=src/b --checkpoint n1 -o arch/F.vma
	put src/a 0 100
	vbf backup --set s --state-dir st -d a=src/a -d b=src/b --checkpoint n2 -o arch/I1.vma
	put src/a 70000 100
	vbf backup --set s --state-dir st -d a=src/a -d b=src/b --checkpoint n3 -o arch/I2.vma.zst
	vbf backup --set t --state-dir st -d a=src/a -d b=src/b -o arch/G.vma
	put src/b 10 10
	vbf backup --set t --state-dir st -d a=src/a -d b=src/b -o arch/J.vma
	# P: a plain archive with several extents
	vbf backup -d drive-scsi0=src/big -d drive-scsi1=src/b -o arch/P.vma
	zstd -q -c arch/P.vma >arch/P.vma.zst
	hs=$(vma_field arch/P.vma 56 4)
	second=$(extent_offsets arch/P.vma | sed -n 2p)
	last=$(extent_offsets arch/P.vma | tail -1)
	# damaged archives
	: >bad/empty.vma
	rand bad/random.bin 65536
	{ head -c "$hs" arch/P.vma; head -c 20000 /dev/urandom; } >bad/hdr-garbage.vma
	head -c 100000 /dev/urandom | gzip -c >bad/gz-random.vma
	head -c $(($(stat -c %s arch/P.vma.zst) / 2)) arch/P.vma.zst >bad/zst-cut.vma.zst
	printf 'name: not an archive\n' | zstd -q -c >bad/zst-text.vma.zst
	gzip -c arch/P.vma | head -c 200000 >bad/gz-cut.vma.gz
	{ printf '\004\042\115\030'; head -c 5000 /dev/urandom; } >bad/lz4.vma
	printf 'VMA\0' >bad/magic-only.vma
	cp arch/P.vma bad/hdr-md5.vma
	flip bad/hdr-md5.vma 100
	cp arch/P.vma bad/ext-md5.vma
	flip bad/ext-md5.vma $((second + 60))
	head -c $((hs + 512 + 1000)) arch/P.vma >bad/cut-extent.vma
	head -c "$last" arch/P.vma >bad/cut-boundary.vma
	head -c $(($(stat -c %s arch/P.vma) - 1)) arch/P.vma >bad/cut-1.vma
	cp arch/P.vma.zst bad/zst-flip.vma.zst
	flip bad/zst-flip.vma.zst $(($(stat -c %s arch/P.vma.zst) - 2))
	# damaged state files
	local js=st/s/state.json
	head -c 100 $js >bad/state-trunc.json
	rand bad/state-random.json 3000
	: >bad/state-empty.json
	sed 's/"version":1,/"version":2,/' $js >bad/state-newer.json
	sed 's/"set":"s"/"set":"t"/' $js >bad/state-otherset.json
	sed 's/"format":"vmaback-state"/"format":"vmaback-stat"/' $js >bad/state-format.json
	python3 - "$js" bad/state-badname.json bad/state-negsize.json bad/state-notlist.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["checkpoints"][0]["drives"][0]["bitmap"] = "../../evil.bin"
json.dump(d, open(sys.argv[2], "w"))
d = json.load(open(sys.argv[1]))
d["checkpoints"][1]["drives"][1]["size"] = -5
json.dump(d, open(sys.argv[3], "w"))
d = json.load(open(sys.argv[1]))
d["checkpoints"] = {"n1": 1}
json.dump(d, open(sys.argv[4], "w"))
PY
	BITMAP_N3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["checkpoints"][-1]["drives"][0]["bitmap"])' $js)
	echo "$BITMAP_N3" >bad/bitmap-n3.name
	cd - >/dev/null || exit 1
}

# tree DIR: every path with its type, mode, size and content hash.
tree() {
	# mtimes (ns) instead of content hashes: cheap, and no write escapes them
	# (one process: spawning is what costs here; readdir order is stable)
	find "$1" -mindepth 1 -name '.snap.*' -o \( -type d -o -name lock \) -printf '%p %y %m\n' \
		-o -printf '%p %y %m %s %T@\n'
}

# ------------------------------------------------------------ one case

C_RC="" C_CMD="" C_RE="" C_POST="" C_SETUP="" C_RUN=""

one_case() {
	# archives and damaged files are only read: hard links are enough (a
	# write to one would change its mtime, which the snapshot compares)
	cp -al "$FIX/arch" "$FIX/bad" .
	cp -a "$FIX/src" "$FIX/st" "$FIX/out" .
	if [ "$C_SETUP" != - ]; then
		eval "$C_SETUP" >/dev/null 2>&1 || fail "setup failed: $C_SETUP"
	fi
	tree . >.snap.before
	tree st >.snap.st1
	case $C_POST in nostate) rm -rf st ; tree . >.snap.before ;; esac
	LAST=$C_RUN
	RC=0
	{ eval "$C_RUN"; } </dev/null >"$OUT" 2>"$ERR" || RC=$?
	expect_rc "$C_RC"
	if [ "$C_CMD" != - ]; then
		expect_msg "$C_CMD" "$C_RE"
		only_message
	fi
	case $C_POST in
	any) return 0 ;;
	empty:*)
		empty_dir "${C_POST#empty:}"
		tree st >.snap.st2
		cmp -s .snap.st1 .snap.st2 || fail "the state changed"
		return 0
		;;
	esac
	tree . >.snap.after
	if ! cmp -s .snap.before .snap.after; then
		fail "files changed: $(diff .snap.before .snap.after | grep '^[<>]' | head -5 | tr '\n' ' ')"
	fi
}

[ -f "$CASES" ] || { echo "no catalogue $CASES" >&2; exit 1; }
(make_fixture) || exit 1
BITMAP_N3=$(cat "$FIX/bad/bitmap-n3.name")
n=0
while IFS=$'\t' read -r name rc cmd re post setup command; do
	case $name in '' | '#'*) continue ;; esac
	# BADINPUT_ONLY=ERE: only the cases whose name matches (while working)
	[ -z "${BADINPUT_ONLY:-}" ] || printf '%s\n' "$name" | grep -Eq "$BADINPUT_ONLY" || continue
	[ -n "$command" ] || { echo "cases.tsv: $name: fewer than 7 fields" >&2; exit 1; }
	n=$((n + 1))
	C_RC=$rc C_CMD=$cmd C_RE=$re C_POST=$post C_SETUP=$setup C_RUN=$command
	tcase "$name" one_case </dev/null
done <"$CASES"
echo "  $n bad inputs in the catalogue"
