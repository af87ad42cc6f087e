# t_checkpoints.sh: backup sets: the lock, listing and removing checkpoints,
# pending checkpoints, damaged state, leftovers, and broken restore chains.
. "$T_SRCDIR/lib.sh"

# setup: two drives (a: sparse, 1 MiB + 3 bytes; b: 300001 random bytes) in
# the array DRV; the backup set s keeps its state in $SD.
setup() {
	command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
	: >a.raw
	truncate -s $((1048576 + 3)) a.raw
	put a.raw 0 70000
	put a.raw 500000 100000
	put a.raw 655360 65536 /dev/zero
	put a.raw 1048570 6
	rand b.raw 300001
	DRV=(-d a=a.raw -d b=b.raw)
	SD=$PWD/st
}

# bk ARGS...: a backup of set s with the drives of setup.
bk() {
	run vb backup --set s --state-dir "$SD" "${DRV[@]}" "$@"
}

# ckp ARGS... / cmt ARGS...: vmaback checkpoints / commit on set s.
ckp() {
	run vb checkpoints --set s --state-dir "$SD" "$@"
}
cmt() {
	run vb commit --set s --state-dir "$SD" "$@"
}

# jpy FILE EXPR: EXPR evaluated in Python with d = the JSON in FILE.
jpy() {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$1" "$2"
}

# meta ARCHIVE EXPR: EXPR with d = the archive's vmaback.json.
meta() {
	vb list --json "$1" >"$T_WORK/.io/$T_CASE/meta.json" || fail "vmaback list --json $1 failed"
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))["vmaback"]; print(eval(sys.argv[2]))' \
		"$T_WORK/.io/$T_CASE/meta.json" "$2"
}

# is EXPECTED ACTUAL WHAT: a value check.
is() {
	[ "$1" = "$2" ] || fail "$3 is '$2', expected '$1'"
}

# chain_json: `vmaback checkpoints --json` of set s into ck.json.
chain_json() {
	ckp --json
	expect_rc 0
	cp "$OUT" ck.json
}

# restored ARCHIVE...: the chain restores to the drives as they are now.
restored() {
	rm -rf restored
	run vb restore "$@" --to restored
	expect_rc 0
	same a.raw restored/disk-a.raw
	same b.raw restored/disk-b.raw
	rm -rf restored
}

# snapshot NAME / unchanged NAME: the state directory (file names and
# state.json bytes) before and after a run that must change nothing.
snapshot() {
	ls -A st/s >"$1.files"
	cp st/s/state.json "$1.state"
}
unchanged() {
	local tmp
	tmp=$(ls -A | grep '^\.' || true)
	[ -z "$tmp" ] || fail "a temporary file was left behind: $tmp"
	ls -A st/s >"$1.files2"
	cmp -s "$1.files" "$1.files2" ||
		fail "the state directory changed: [$(tr '\n' ' ' <"$1.files")] became [$(tr '\n' ' ' <"$1.files2")]"
	cmp -s "$1.state" st/s/state.json || fail "state.json changed"
}

# ------------------------------------------------------------------ cases

lock() {
	setup
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	snapshot before
	# -o: flock itself holds the lock, so killing it releases the lock.
	flock -o st/s/lock sleep 5 &
	LPID=$!
	for _ in $(seq 1 100); do
		flock -n st/s/lock true || break
		sleep 0.05
	done
	local t0 t1 rc_b
	t0=$(date +%s%N)
	bk -o i.vma
	t1=$(date +%s%N)
	rc_b=$RC
	cp "$ERR" err.backup
	ckp
	expect_fail 4 checkpoints 'locked'
	ckp --remove n1
	expect_fail 4 checkpoints 'locked'
	cmt n1
	expect_fail 4 commit 'locked'
	kill "$LPID"
	wait "$LPID" || true
	RC=$rc_b
	cp err.backup "$ERR"
	LAST="vmaback backup (set s locked)"
	expect_fail 4 backup "backup set 's' is locked"
	[ $(((t1 - t0) / 1000000)) -lt 3000 ] ||
		fail "the run on a locked set took $(((t1 - t0) / 1000000)) ms: it must fail at once"
	absent i.vma
	unchanged before
	# Once the lock is free the set works again.
	bk -o i.vma
	expect_rc 0
}

# A pid named by the "locked" message must be the holder's, not that of an
# earlier run that has ended.
lock_pid() {
	setup
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	flock -o st/s/lock sleep 5 &
	LPID=$!
	for _ in $(seq 1 100); do
		flock -n st/s/lock true || break
		sleep 0.05
	done
	bk -o i.vma
	local held
	held=$(grep -Eo 'pid [0-9]+' "$ERR" | head -1 | cut -d' ' -f2)
	if [ -n "$held" ] && ! kill -0 "$held" 2>/dev/null; then
		kill "$LPID"
		fail "the message names pid $held, which is not running (the lock is held by" \
			"flock, pid $LPID): the lock file keeps the pid of an earlier vmaback run"
	fi
	kill "$LPID"
	wait "$LPID" || true
	expect_fail 4 backup 'locked'
}

list_json() {
	setup
	ckp
	expect_rc 0
	expect_out 'has no checkpoint'
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	put a.raw 0 100
	bk --checkpoint n2 -o i.vma.zst
	expect_rc 0
	put b.raw 200000 10
	bk --mode differential --since n1 --checkpoint n3 -o d.vma
	expect_rc 0
	ckp
	expect_rc 0
	is "n1 full|n2 incremental|n3 differential|" "$(awk '{printf "%s %s|", $1, $2}' "$OUT")" \
		"the checkpoint list"
	expect_out "^n1 .* $PWD/f.vma\$"
	expect_out "^n3 .* $PWD/d.vma\$"
	if grep -q pending "$OUT"; then fail "a committed checkpoint is listed as pending"; fi
	chain_json
	python3 - ck.json "$PWD" "$(meta f.vma 'd["uuid"]')" "$(meta i.vma.zst 'd["uuid"]')" \
		"$(meta d.vma 'd["uuid"]')" <<'EOF' || fail "checkpoints --json does not describe the chain"
import json, sys
d = json.load(open(sys.argv[1]))
c = d["checkpoints"]
assert d["set"] == "s" and d["pending"] is None, d
assert [x["name"] for x in c] == ["n1", "n2", "n3"], c
assert [x["kind"] for x in c] == ["full", "incremental", "differential"], c
assert [x["parent"] for x in c] == [None, "n1", "n2"], c
assert [x["uuid"] for x in c] == sys.argv[3:6], c
assert [x["base_uuid"] for x in c] == [None, sys.argv[3], sys.argv[3]], c
assert [x["archive"] for x in c] == [sys.argv[2] + "/" + f for f in ("f.vma", "i.vma.zst", "d.vma")]
assert not any(x["pending"] for x in c)
for x in c:
    assert [(y["name"], y["size"]) for y in x["drives"]] == [("a", 1048579), ("b", 300001)], x
    # plain archives to a file: vma-tree-1 (one hash pass), else SHA-256
    if x["archive"].endswith(".zst"):
        assert len(x["archive_sha256"]) == 64 and x["archive_digest"] is None, x
    else:
        assert x["archive_sha256"] is None, x
        assert x["archive_digest"].startswith("vma-tree-1:") and len(x["archive_digest"]) == 75, x
EOF
	# The archive's own record of its parent.
	is "$(meta f.vma 'd["uuid"]')" "$(meta d.vma 'd["parent_uuid"]')" "d.vma's parent_uuid"
	is n1 "$(meta d.vma 'd["parent_checkpoint"]')" "d.vma's parent_checkpoint"
	is None "$(meta f.vma 'd.get("parent_uuid")')" "f.vma's parent_uuid"
	ckp extra
	expect_fail 2 checkpoints 'unexpected argument'
}

remove_middle() {
	setup
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	put a.raw 65536 10                   # a: cluster 1
	bk --checkpoint n2 -o i2.vma
	expect_rc 0
	put b.raw 131072 70000               # b: clusters 2 and 3
	bk --checkpoint n3 -o i3.vma.zst
	expect_rc 0
	cp a.raw a.n3
	cp b.raw b.n3
	put a.raw 900000 5                   # a: cluster 13
	ckp --remove n3
	expect_fail 2 checkpoints 'latest'
	ckp --remove nosuch
	expect_fail 2 checkpoints 'no checkpoint nosuch'
	snapshot before
	ckp --remove n2
	expect_rc 0
	expect_err 'n2 removed'
	chain_json
	is "n1 n3" "$(jpy ck.json '" ".join(x["name"] for x in d["checkpoints"])')" "the chain"
	is n1 "$(jpy ck.json 'd["checkpoints"][1]["parent"]')" "n3's parent"
	# Differential since n1: n2's changes (merged into n3), n3's and the new ones.
	bk --mode differential --since n1 --checkpoint n4 -o d4.vma
	expect_rc 0
	is "a:2 b:2" "$(meta d4.vma '" ".join("%s:%d" % (x["name"], x["clusters"]) for x in d["drives"])')" \
		"d4.vma's clusters per drive"
	restored f.vma d4.vma
	# The archives were not touched: the old chain still restores n3.
	rm -rf r3
	run vb restore f.vma i2.vma i3.vma.zst --to r3
	expect_rc 0
	same a.n3 r3/disk-a.raw
	same b.n3 r3/disk-b.raw
	# An incremental after the removal builds on n4.
	put b.raw 0 1
	bk --checkpoint n5 -o i5.vma
	expect_rc 0
	is "a:0 b:1" "$(meta i5.vma '" ".join("%s:%d" % (x["name"], x["clusters"]) for x in d["drives"])')" \
		"i5.vma's clusters per drive"
	restored f.vma d4.vma i5.vma
	# The first checkpoint, the full every later one builds on, stays.
	snapshot before_first
	ckp --remove n1
	expect_fail 2 checkpoints "n1 is the full checkpoint of set 's'.*cannot be removed.*--mode full"
	unchanged before_first
	put a.raw 1048576 3
	bk --mode differential --since n3 --checkpoint n6 -o d6.vma
	expect_rc 0
	is "a:2 b:1" "$(meta d6.vma '" ".join("%s:%d" % (x["name"], x["clusters"]) for x in d["drives"])')" \
		"d6.vma's clusters per drive"
	restored f.vma i2.vma i3.vma.zst d6.vma
}

pending() {
	setup
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	put a.raw 0 1000
	run bash -c 'set -o pipefail; "$@" | cat >i1.vma' sh "$VMABACK" backup --set s \
		--state-dir "$SD" "${DRV[@]}" --checkpoint p1 --no-commit -o -
	expect_rc 0
	expect_err "checkpoint p1 of set s is pending.*vmaback commit --set s p1"
	ckp
	expect_rc 0
	expect_out '^p1 .*\[pending\]$'
	chain_json
	is n1 "$(jpy ck.json '" ".join(x["name"] for x in d["checkpoints"])')" "the committed chain"
	is "p1 True" "$(jpy ck.json 'd["pending"]["name"] + " " + str(d["pending"]["pending"])')" \
		"the pending checkpoint"
	cmt nosuch
	expect_fail 2 commit 'no pending checkpoint named nosuch'
	cmt p1
	expect_rc 0
	expect_err 'p1 of set s committed'
	chain_json
	is "n1 p1 None" "$(jpy ck.json '" ".join(x["name"] for x in d["checkpoints"]) + " " + str(d["pending"])')" \
		"the chain after commit"
	cmt p1
	expect_fail 2 commit 'no pending checkpoint'
	restored f.vma i1.vma
	# A pending checkpoint never committed: the next backup discards it and
	# includes its changes again.
	put b.raw 1000 1000                  # b: cluster 0
	bk --checkpoint p2 --no-commit -o i2.vma
	expect_rc 0
	put a.raw 700000 1000                # a: cluster 10
	bk --checkpoint n3 -o i3.vma
	expect_rc 0
	expect_err 'discarded checkpoint p2'
	is p1 "$(meta i3.vma 'd["parent_checkpoint"]')" "i3.vma's parent checkpoint"
	is "a:1 b:1" "$(meta i3.vma '" ".join("%s:%d" % (x["name"], x["clusters"]) for x in d["drives"])')" \
		"i3.vma's clusters per drive"
	chain_json
	is "n1 p1 n3 None" "$(jpy ck.json '" ".join(x["name"] for x in d["checkpoints"]) + " " + str(d["pending"])')" \
		"the chain after the discard"
	restored f.vma i1.vma i3.vma
	cmt p2
	expect_fail 2 commit 'no pending checkpoint'
}

# damaged NAME: state.json was replaced by a broken one; every command on
# the set fails with 3 and writes nothing.
damaged() {
	local re=$1
	snapshot "dmg"
	bk -o x.vma
	expect_fail 3 backup "$re"
	absent x.vma
	unchanged "dmg"
	ckp
	expect_fail 3 checkpoints "$re"
	cmt n1
	expect_fail 3 commit "$re"
	unchanged "dmg"
}

damaged_state() {
	setup
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	cp st/s/state.json good.json
	head -c 100 good.json >st/s/state.json
	damaged 'state.json is damaged'
	head -c 3000 /dev/urandom >st/s/state.json
	damaged 'state.json is damaged'
	: >st/s/state.json
	damaged 'state.json is damaged'
	printf '{"format":"vmaback-state","version":1,"set":"s","checkpoints":[{"name":1}]}' \
		>st/s/state.json
	damaged 'state.json is damaged'
	printf '{"format":"something-else","version":1}' >st/s/state.json
	damaged 'not a vmaback state'
	sed 's/"version":1,/"version":99,/' good.json >st/s/state.json
	grep -q '"version":99,' st/s/state.json || fail "could not set the state version"
	damaged 'newer vmaback'
	# Put back, the set works again.
	cp good.json st/s/state.json
	bk -o i.vma
	expect_rc 0
}

corrupt_digests() {
	setup
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	put a.raw 10 10
	local f n=0
	for f in st/s/digests-*.bin; do
		flip "$f" $(($(stat -c %s "$f") / 2))
		n=$((n + 1))
	done
	[ "$n" -eq 2 ] || fail "$n digest maps in the state, expected 2 (one per drive)"
	snapshot before
	bk --mode incremental -o i.vma
	expect_fail 3 backup 'digest map'
	absent i.vma
	unchanged before
	bk --mode differential --since n1 -o d.vma
	expect_fail 3 backup 'digest map'
	absent d.vma
	unchanged before
	bk --checkpoint n2 -o a.vma
	expect_rc 0
	expect_err 'digest map.*damaged.*full backup|full backup.*digest map'
	is full "$(meta a.vma 'd["kind"]')" "the kind of the auto backup"
	restored a.vma
	# The new maps are good again.
	put b.raw 5 5
	bk --mode incremental -o i2.vma
	expect_rc 0
	is "a:0 b:1" "$(meta i2.vma '" ".join("%s:%d" % (x["name"], x["clusters"]) for x in d["drives"])')" \
		"i2.vma's clusters per drive"
	restored a.vma i2.vma
	# A missing map is damage too.
	rm st/s/digests-*.bin
	put a.raw 0 1
	snapshot before2
	bk --mode incremental -o i3.vma
	expect_fail 3 backup 'digest map|damaged'
	absent i3.vma
	unchanged before2
	bk -o a3.vma
	expect_rc 0
	expect_err 'full backup'
	is full "$(meta a3.vma 'd["kind"]')" "the kind of the auto backup"
	restored a3.vma
}

strays() {
	setup
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	echo x >st/s/digests-00000000deadbeef.bin
	echo y >st/s/.state.json.Ab12Cd
	# not vmaback's names: never removed
	echo u >st/s/user.txt
	echo v >st/s/digests-dead.bin
	echo z >st/s/bitmap-0123456789abcdef.bin
	put a.raw 0 1
	bk -o i.vma
	expect_rc 0
	expect_err 'removed 3 leftover files'
	absent st/s/digests-00000000deadbeef.bin st/s/.state.json.Ab12Cd st/s/bitmap-0123456789abcdef.bin
	[ -f st/s/user.txt ] && [ -f st/s/digests-dead.bin ] || fail "a file not of vmaback's patterns was removed"
	# What is left is exactly what state.json names, and the two strangers.
	python3 - st/s <<'EOF' || fail "the state directory holds files state.json does not name"
import json, os, sys
d = sys.argv[1]
st = json.load(open(os.path.join(d, "state.json")))
used = {"state.json", "lock", "user.txt", "digests-dead.bin"} | set(st["manifests"])
for c in st["checkpoints"] + ([st["pending"]] if st["pending"] else []):
    for x in c["drives"]:
        used |= {x["bitmap"], x["digests"], x.get("archive_digests")} - {None}
extra = set(os.listdir(d)) - used
assert not extra, extra
missing = used - set(os.listdir(d))
assert not missing, missing
EOF
	restored f.vma i.vma
}

size_change() {
	setup
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	truncate -s 304097 b.raw
	snapshot before
	bk --mode incremental -o i.vma
	expect_fail 2 backup 'b changed size.*300001 to 304097'
	absent i.vma
	unchanged before
	bk --mode differential --since n1 -o d.vma
	expect_fail 2 backup 'changed size'
	absent d.vma
	unchanged before
	bk --checkpoint n2 -o a.vma
	expect_rc 0
	expect_err 'changed size.*full backup'
	is full "$(meta a.vma 'd["kind"]')" "the kind after a size change"
	restored a.vma
	# A drive added: a full backup again.
	rand c.raw 4097
	DRV+=(-d c=c.raw)
	bk --mode incremental -o i2.vma
	expect_fail 2 backup 'added or removed'
	bk --checkpoint n3 -o a2.vma
	expect_rc 0
	expect_err 'added or removed.*full backup'
	is full "$(meta a2.vma 'd["kind"]')" "the kind after a drive was added"
	rm -rf r
	run vb restore a2.vma --to r
	expect_rc 0
	same c.raw r/disk-c.raw
	# Since n2 the drives changed: no differential from there.
	bk --mode differential --since n2 -o d2.vma
	expect_fail 2 backup 'take a full backup'
}

# A drive that shrinks before its turn comes (the first drive is still being
# read): the backup must fail, not store zeros for the part that is gone.
shrink_before_read() {
	setup
	rand big.raw 4194304
	cp b.raw b.orig
	run vb backup --set s --state-dir "$SD" -d big=big.raw "${DRV[@]}" --checkpoint n1 -o f.vma
	expect_rc 0
	snapshot before
	# big is read first, at 4 MiB/s: b is truncated while big is being read.
	"$VMABACK" backup --set s --state-dir "$SD" -d big=big.raw "${DRV[@]}" --mode full \
		--bwlimit 4M -o g.vma \
		>"$OUT" 2>"$ERR" </dev/null &
	local pid=$!
	sleep 0.4
	kill -0 "$pid" 2>/dev/null || fail "the bwlimited backup ended too early for this test"
	truncate -s 100000 b.raw
	RC=0
	wait "$pid" || RC=$?
	LAST="vmaback backup (drive b truncated from 300001 to 100000 bytes before it was read)"
	if [ "$RC" -eq 0 ]; then
		rm -rf r
		vb restore -q g.vma --to r || true
		fail "exit 0 (expected 1, 'shrank'); the archive's drive b is $(stat -c %s r/disk-b.raw 2>/dev/null) bytes:" \
			"$(cmp r/disk-b.raw b.orig 2>&1 | head -1) against the drive before the truncation"
	fi
	expect_fail 1 backup 'shrank'
	absent g.vma
	unchanged before
}

restore_chain_errors() {
	setup
	bk --checkpoint n1 -o F.vma
	expect_rc 0
	put a.raw 0 5
	bk --checkpoint n2 -o I1.vma
	expect_rc 0
	put a.raw 70000 5
	bk --checkpoint n3 -o I2.vma.zst
	expect_rc 0
	put b.raw 9 9
	bk --mode differential --since n1 --checkpoint n4 -o D.vma
	expect_rc 0
	bk --mode full --checkpoint n5 -o F2.vma
	expect_rc 0
	# The chains that are right restore (D holds everything since n1).
	restored F.vma D.vma
	restored F.vma I1.vma I2.vma.zst D.vma
	restored F.vma I1.vma D.vma
	restored F2.vma
	run vb backup --set t --state-dir "$SD" "${DRV[@]}" -o G.vma
	expect_rc 0
	put b.raw 99 9
	run vb backup --set t --state-dir "$SD" "${DRV[@]}" -o J.vma
	expect_rc 0
	chain_fails() {
		local re=$1
		shift
		run vb restore "$@" --to out
		expect_fail 2 restore "$re"
		absent out
		run vb merge -o m.vma "$@"
		expect_fail 2 merge "$re"
		absent m.vma
	}
	chain_fails 'oldest first' F.vma D.vma I1.vma
	chain_fails 'older|oldest first|gap' F.vma I2.vma.zst I1.vma
	chain_fails 'gap' F.vma I2.vma.zst
	chain_fails 'given twice' F.vma I1.vma I1.vma
	chain_fails "belongs to backup set 't'" F.vma J.vma
	chain_fails 'only the first archive of a chain may be full' F.vma F2.vma
	chain_fails 'only the first archive of a chain may be full' F.vma I1.vma G.vma
	chain_fails 'starts with a full archive' I1.vma F.vma
	chain_fails 'starts with a full archive' D.vma
	run vb extract I1.vma xdir
	expect_fail 2 extract 'incremental'
	absent xdir
	run vb extract D.vma xdir
	expect_fail 2 extract 'differential'
	absent xdir
}

# A synthetic full from merge starts a chain that the set's later archives
# continue (an incremental whose parent is any archive it stands for, a
# differential since its full), also merged again; a parent it does not
# stand for is still a gap.
merge_chain() {
	setup
	bk --checkpoint n1 -o F.vma
	expect_rc 0
	put a.raw 0 5
	bk --checkpoint n2 -o I1.vma
	expect_rc 0
	run vb merge -o S1.vma F.vma I1.vma
	expect_rc 0
	is 2 "$(meta S1.vma 'len(d["merged_uuids"])')" "merged_uuids of S1"
	put a.raw 70000 5
	bk --checkpoint n3 -o I2.vma.zst
	expect_rc 0
	restored S1.vma I2.vma.zst
	put b.raw 9 9
	bk --checkpoint n4 -o I3.vma
	expect_rc 0
	restored S1.vma I2.vma.zst I3.vma
	run vb restore S1.vma I3.vma --to out
	expect_fail 2 restore 'gap in the chain'
	absent out
	run vb merge -o S2.vma.zst S1.vma I2.vma.zst
	expect_rc 0
	restored S2.vma.zst I3.vma
	run vb verify S2.vma.zst
	expect_rc 0
	run vb extract S2.vma.zst x
	expect_rc 0
	put b.raw 99 9
	bk --mode differential --since n1 --checkpoint n5 -o D.vma
	expect_rc 0
	restored S1.vma D.vma
	restored S2.vma.zst D.vma
}

# After --remove of a middle checkpoint, every archive a kept checkpoint's
# restore needs stays known to the state: ls shows the chain whole, verify
# --deep and restore of the latest work, prune keeps them; once a new full
# makes them unneeded, prune removes them all and the state forgets them.
remove_then_prune() {
	setup
	bk --checkpoint n1 -o f.vma
	expect_rc 0
	put a.raw 65536 10
	bk --checkpoint n2 -o i2.vma
	expect_rc 0
	put b.raw 131072 70000
	bk --checkpoint n3 -o i3.vma
	expect_rc 0
	ckp --remove n2
	expect_rc 0
	run vb prune --set s --state-dir "$SD" --keep-last 1
	expect_rc 0
	[ -f f.vma ] && [ -f i2.vma ] && [ -f i3.vma ] ||
		fail "prune deleted an archive restoring n3 needs: $(ls -- *.vma | tr '\n' ' ')"
	expect_out 'keep .* n1 .*restoring n3 needs it'
	run vb ls --set s --state-dir "$SD"
	expect_rc 0
	grep -q broken "$OUT" && fail "ls shows a broken chain: $(cat "$OUT")"
	run vb verify --deep --set s --state-dir "$SD" --checkpoint n3 --quiet
	expect_rc 0
	restored f.vma i2.vma i3.vma
	# the removed checkpoint is no checkpoint: nothing builds on it
	bk --mode differential --since n2 -o d.vma
	expect_fail 2 backup 'n2'
	put a.raw 0 10
	bk --mode full --checkpoint n4 -o f4.vma
	expect_rc 0
	run vb prune --set s --state-dir "$SD" --keep-last 1
	expect_rc 0
	absent f.vma i2.vma i3.vma
	[ -f f4.vma ] || fail "prune deleted f4.vma"
	jpy st/s/state.json '"retired" in d and d["retired"] and sys.exit(1)' >/dev/null ||
		fail "the state still holds retired records: $(cat st/s/state.json)"
	restored f4.vma
}

tcase lock lock
tcase lock_pid lock_pid
tcase list_json list_json
tcase remove_middle remove_middle
tcase remove_then_prune remove_then_prune
tcase pending pending
tcase damaged_state damaged_state
tcase corrupt_digests corrupt_digests
tcase strays strays
tcase size_change size_change
tcase shrink_before_read shrink_before_read
tcase restore_chain_errors restore_chain_errors
tcase merge_chain merge_chain

# data_at ARCHIVE: the offset of a byte of the first stored block (the
# extents walked from the header on).
data_at() {
	python3 - "$1" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
off = int.from_bytes(b[56:60], "big")
while off + 512 <= len(b):
    n = int.from_bytes(b[off + 6:off + 8], "big")
    if n:
        print(off + 512 + 100)
        break
    off += 512
PY
}

# A set's plain archive written to a file records its vma-tree-1 digest
# (derived from the cluster digests, no second hash of the bytes): one
# changed byte of a cluster fails verify --deep and commit; a record of an
# older version (SHA-256 of the bytes) still verifies.
tree_digest() {
	setup
	bk --checkpoint n1 -o f.vma --json
	expect_rc 0
	cp "$OUT" sum.json
	jpy sum.json 'd["vma-tree-1"]' | grep -Eq '^[0-9a-f]{64}$' || fail "no vma-tree-1 in the summary: $(cat "$OUT")"
	is None "$(jpy sum.json 'd["sha256"]')" "the summary's sha256"
	chain_json
	is "vma-tree-1:$(jpy sum.json 'd["vma-tree-1"]')" "$(jpy ck.json 'd["checkpoints"][0]["archive_digest"]')" \
		"the recorded digest"
	run vb verify --deep f.vma --state-dir "$SD"
	expect_rc 0
	cp f.vma f.orig
	flip f.vma "$(data_at f.vma)" 4
	run vb verify --deep f.vma --state-dir "$SD"
	expect_rc 3
	expect_err 'f.vma of checkpoint n1 has vma-tree-1 [0-9a-f]{64}, expected'
	run vb verify --deep --set s --state-dir "$SD"
	expect_rc 3
	expect_err 'f.vma'
	cp f.orig f.vma
	# a pending checkpoint: commit checks its file's tree digest
	put a.raw 0 1000
	bk --checkpoint p1 --no-commit -o i.vma
	expect_rc 0
	cp i.vma i.orig
	flip i.vma "$(data_at i.vma)" 1
	cmt p1
	expect_rc 3
	expect_err 'vma-tree-1'
	cp i.orig i.vma
	cmt p1
	expect_rc 0
	run vb verify --deep i.vma --state-dir "$SD"
	expect_rc 0
	# the record of an older version: SHA-256 of the bytes
	python3 - st/s/state.json "$(sha256sum <f.vma | cut -d' ' -f1)" <<'PY' || fail "cannot edit state.json"
import json, sys
st = json.load(open(sys.argv[1]))
c = st["checkpoints"][0]
c["archive_sha256"] = sys.argv[2]
del c["archive_digest"]
json.dump(st, open(sys.argv[1], "w"))
PY
	run vb verify --deep f.vma --state-dir "$SD"
	expect_rc 0
	flip f.vma "$(data_at f.vma)" 4
	run vb verify --deep f.vma --state-dir "$SD"
	expect_rc 3
	expect_err 'has SHA-256 [0-9a-f]{64}, expected'
}
tcase tree_digest tree_digest

# verify --deep of a sparse drive costs what its data costs: holes and
# zero clusters are not hashed (64 GiB of holes took 50-84 s, now well
# under a second; the timeout fails the case if they are hashed again).
deep_sparse() {
	setup
	truncate -s 64G big.raw
	put big.raw $((32 * 1073741824)) 70000
	run vb backup --set h --state-dir "$SD" -d big=big.raw -o h.vma --quiet
	expect_rc 0
	local VB_TIMEOUT=15
	run vb verify --deep --set h --state-dir "$SD"
	expect_rc 0
	expect_out '1048576 clusters compared cluster by cluster'
	flip h.vma "$(data_at h.vma)" 2
	run vb verify --deep h.vma --state-dir "$SD"
	expect_rc 3
	expect_err 'drive big: the data at offset 34359738368'
}
tcase deep_sparse deep_sparse
