# t_durability.sh: when the fsync of a directory fails after a rename (the
# archive's, or state.json's), vmaback says what happened (written,
# committed, durability uncertain), exits non-zero, and never deletes a
# file that the now-current state names (tests/tools/preload/fsync_fail.c).
. "$T_SRCDIR/lib.sh"

setup() {
	[ -n "$TOOLS" ] && [ -f "$TOOLS/fsync_fail.so" ] || skip "fsync_fail.so not built (make tools)"
	command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
	rand a.raw 3000000
	mkdir -m 700 st
	mkdir out
	SD=$PWD/st
	SET=$SD/s
}

# failing DIR CMD ARGS...: runs CMD with every fsync of directory DIR failing.
# (An ASan build would refuse a library preloaded before its runtime.)
failing() {
	local dir=$1
	shift
	LD_PRELOAD=$TOOLS/fsync_fail.so VB_FSYNC_FAIL_DIR=$dir \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 "$@"
}

bk() {
	run vb backup --set s --state-dir "$SD" -d a=a.raw "$@"
}

# change: new data in the drive, for the next incremental.
change() {
	put a.raw $(((RANDOM % 40) * 65536)) 70000
}

# named_files_exist: every file state.json names is in the set directory.
named_files_exist() {
	local missing
	missing=$(python3 - "$SET" <<'EOF'
import json, os, re, sys
d = sys.argv[1]
def walk(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from walk(v)
    elif isinstance(x, str) and re.fullmatch(r'(bitmap|digests|manifest|adigests)-[0-9a-f]{16}\.bin', x):
        yield x
for f in walk(json.load(open(os.path.join(d, 'state.json')))):
    if not os.path.isfile(os.path.join(d, f)):
        print(f)
EOF
)
	[ -z "$missing" ] || fail "state.json names files that are gone: $missing"
}

not_nothing() {
	! grep -qi 'nothing was published' "$ERR" || fail "\`$LAST\` says 'nothing was published'"
}

state_dir_fails() {
	setup
	bk -o out/a.vma
	expect_rc 0
	change
	ls "$SET" >files.before
	failing "$SET" run vb backup --set s --state-dir "$SD" -d a=a.raw -o out/b.vma
	expect_fail 1 backup 'the archive was written and checkpoint [^ ]+ was committed, but the state directory .*st/s could not be made durable after state.json was replaced \(fsync: Input/output error\)'
	not_nothing
	expect_err '^INFO: backup failed after its end: archive out/b.vma written, checkpoint [^ ]+ of set s committed, but it may not survive a crash'
	[ -f out/b.vma ] || fail "the archive out/b.vma is gone"
	named_files_exist
	# while the directory cannot be made durable, the clean-up of the next
	# writer (here a commit that fails) keeps what the previous state names
	failing "$SET" run vb commit --set s --state-dir "$SD" nosuch
	expect_rc 2
	for f in $(cat files.before); do
		[ -e "$SET/$f" ] || fail "$f of the previous state was removed"
	done
	run vb checkpoints --set s --state-dir "$SD" --json
	expect_rc 0
	[ "$(jq_py "$OUT" 'len(d["checkpoints"])')" = 2 ] || fail "expected 2 checkpoints: $(cat "$OUT")"
	run vb verify --deep --set s --state-dir "$SD" out/a.vma out/b.vma
	expect_rc 0
	# the chain goes on from the committed checkpoint
	change
	bk -o out/c.vma
	expect_rc 0
	expect_err 'incremental backup'
	run vb verify --deep --set s --state-dir "$SD" out/a.vma out/b.vma out/c.vma
	expect_rc 0
	# pending: the same, recorded as pending
	change
	failing "$SET" run vb backup --set s --state-dir "$SD" -d a=a.raw -o out/d.vma --no-commit
	expect_fail 1 backup 'checkpoint [^ ]+ was recorded as pending, but the state directory'
	not_nothing
	named_files_exist
}

archive_dir_fails() {
	setup
	bk -o out/a.vma
	expect_rc 0
	state_keep "$SET" before
	change
	failing "$PWD/out" run vb backup --set s --state-dir "$SD" -d a=a.raw -o out/b.vma
	expect_fail 1 backup 'out/b.vma was written, but the fsync of directory out failed \(Input/output error\): it may not survive a crash; checkpoint [^ ]+ was not committed'
	not_nothing
	expect_err '^INFO: backup failed after its end: archive out/b.vma written, the checkpoints are unchanged'
	[ -f out/b.vma ] || fail "the published archive out/b.vma is gone"
	state_kept "$SET" before
	# without a set
	failing "$PWD/out" run vb backup -d a=a.raw -o out/c.vma
	expect_fail 1 backup 'out/c.vma was written, but the fsync of directory out failed'
	not_nothing
	[ -f out/c.vma ] || fail "the published archive out/c.vma is gone"
}

commit_fails() {
	setup
	bk -o out/a.vma --no-commit
	expect_rc 0
	name=$(jq_py "$SET/state.json" 'd["pending"]["name"]')
	failing "$SET" run vb commit --set s --state-dir "$SD" "$name"
	expect_fail 1 commit "checkpoint $name of set s was committed, but the state directory .* could not be made durable"
	named_files_exist
	run vb checkpoints --set s --state-dir "$SD" --json
	[ "$(jq_py "$OUT" 'd["checkpoints"][0]["name"]')" = "$name" ] || fail "not committed: $(cat "$OUT")"
}

remove_fails() {
	setup
	for x in a b c; do
		change
		bk -o out/$x.vma
		expect_rc 0
	done
	mid=$(jq_py "$SET/state.json" 'd["checkpoints"][1]["name"]')
	failing "$SET" run vb checkpoints --set s --state-dir "$SD" --remove "$mid"
	expect_fail 1 checkpoints "$mid was removed from set s, but the state directory"
	named_files_exist
	run vb verify --deep --set s --state-dir "$SD" out/a.vma out/b.vma out/c.vma
	expect_rc 0
}

prune_fails() {
	setup
	for x in a b c; do
		bk -o out/$x.vma --mode full
		expect_rc 0
	done
	failing "$SET" run vb prune --set s --state-dir "$SD" --keep-last 1
	expect_fail 1 prune '2 checkpoints of set s were removed from its state, but the state directory .* could not be made durable.*; their archives stay until the next prune'
	named_files_exist
	[ -f out/a.vma ] && [ -f out/b.vma ] || fail "prune deleted archives of a state that may not be durable"
	# still not durable: the next prune deletes nothing either
	failing "$SET" run vb prune --set s --state-dir "$SD" --keep-last 1
	expect_fail 1 prune 'the state directory .* could not be made durable \(fsync: Input/output error\)'
	[ -f out/a.vma ] && [ -f out/b.vma ] || fail "prune deleted archives of a state that may not be durable"
	run vb prune --set s --state-dir "$SD" --keep-last 1
	expect_rc 0
	expect_out 'removed 0 checkpoints and 2 archive files of set s'
	absent out/a.vma out/b.vma
	[ -f out/c.vma ] || fail "out/c.vma is gone"
}

merge_fails() {
	setup
	bk -o out/a.vma
	change
	bk -o out/b.vma
	mkdir m
	failing "$PWD/m" run vb merge -o m/full.vma out/a.vma out/b.vma
	expect_fail 1 merge 'm/full.vma was written, but the fsync of directory m failed'
	[ -f m/full.vma ] || fail "m/full.vma is gone"
}

tcase state_dir_fails state_dir_fails
tcase archive_dir_fails archive_dir_fails
tcase commit_fails commit_fails
tcase remove_fails remove_fails
tcase prune_fails prune_fails
tcase merge_fails merge_fails
