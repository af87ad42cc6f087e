# t_cron_pipes.sh: what a nightly job relies on: --output-cmd (success
# commits; a failing or vanishing consumer fails the backup and commits
# nothing), -o - with --no-commit and `vmaback commit`, pending checkpoints
# discarded by the next run, --config-file, and exit status 4 on a locked set.
. "$T_SRCDIR/lib.sh"

# setup: disk.raw (3 MiB + 5 bytes of random data with a hole) and the set s
# in st/; bk ARGS... backs it up.
setup() {
	command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
	rand disk.raw $((3 * 1048576 + 5))
	truncate -s $((5 * 1048576 + 5)) disk.raw
	SD=$PWD/st
}
bk() {
	run vb backup --set s --state-dir "$SD" -d drive-scsi0=disk.raw "$@"
}

# chain: the committed checkpoint names of set s, space-separated; PENDING
# the pending one's name ("None" if there is none).
chain() {
	vb checkpoints --set s --state-dir "$SD" --json >ck.json 2>/dev/null ||
		fail "vmaback checkpoints --json failed"
	CHAIN=$(jq_py ck.json '" ".join(c["name"] for c in d["checkpoints"])')
	PENDING=$(jq_py ck.json '(d["pending"] or {}).get("name")')
}

# restores_to_disk ARCHIVE...: the chain restores to disk.raw as it is now.
restores_to_disk() {
	rm -rf r
	run vb restore "$@" --to r --quiet
	expect_rc 0
	same disk.raw r/disk-drive-scsi0.raw
	rm -rf r
}

# The archive goes to a command's standard input; it exits 0: the backup
# succeeded, the checkpoint is committed, and what the command stored is the
# archive (restores, verifies, and has the SHA-256 the summary reports).
output_cmd_ok() {
	setup
	bk --checkpoint c1 --output-cmd 'cat > stored.tmp && mv stored.tmp stored.vma' --json
	expect_rc 0
	[ "$(jq_py "$OUT" 'd["checkpoint_state"]')" = committed ] || fail "checkpoint_state is not committed"
	[ "$(jq_py "$OUT" 'd["sha256"]')" = "$(sha256sum <stored.vma | cut -d' ' -f1)" ] ||
		fail "the summary's sha256 is not that of the bytes the command received"
	[ "$(jq_py "$OUT" 'd["output_bytes"]')" = "$(stat -c %s stored.vma)" ] ||
		fail "the summary's output_bytes is not the size the command received"
	run vb verify stored.vma
	expect_rc 0
	expect_out '^stored\.vma: OK \(full, 1 drive, '
	chain
	[ "$CHAIN" = c1 ] && [ "$PENDING" = None ] || fail "chain [$CHAIN] pending [$PENDING], expected [c1] and none"
	restores_to_disk stored.vma
	# The next run is an incremental through a compressing command.
	put disk.raw 65536 4096
	bk --checkpoint c2 --output-cmd 'zstd -q -c > inc.vma.zst'
	expect_rc 0
	chain
	[ "$CHAIN" = "c1 c2" ] || fail "chain is [$CHAIN], expected [c1 c2]"
	restores_to_disk stored.vma inc.vma.zst
	# The output command's own output and the one-line error stay apart.
	run vb backup -d d=disk.raw --output-cmd 'cat >/dev/null; echo consumer-says-hi >&2' --quiet
	expect_rc 0
	expect_err '^consumer-says-hi$'
}

# The command fails: the backup fails (exit 1), the message gives the
# command's status, the set's state is untouched.
output_cmd_fails() {
	setup
	bk --checkpoint c1 -o full.vma --quiet
	expect_rc 0
	state_keep st/s before
	bk --mode full --output-cmd 'exit 1'
	expect_fail 1 backup "output command 'exit 1'.*exit status 1"
	state_kept st/s before
	# reads a little, then fails
	bk --mode full --output-cmd 'head -c 1000 >/dev/null; exit 3'
	expect_fail 1 backup "output command 'head -c 1000 >/dev/null; exit 3'.*exit status 3"
	state_kept st/s before
	# reads everything, then fails (a full remote disk, say)
	bk --mode full --output-cmd 'cat >/dev/null; exit 3'
	expect_fail 1 backup "output command .*failed: exit status 3"
	state_kept st/s before
	# killed by a signal
	bk --mode full --output-cmd 'kill -9 $$'
	expect_fail 1 backup "output command .*killed by signal 9"
	state_kept st/s before
	# a command that cannot run at all
	bk --mode full --output-cmd 'no-such-command-here'
	expect_rc 1 # the shell's own "not found" is on stderr too
	expect_msg backup "output command 'no-such-command-here'.*exit status 127"
	state_kept st/s before
	chain
	[ "$CHAIN" = c1 ] && [ "$PENDING" = None ] || fail "chain [$CHAIN] pending [$PENDING] after failures"
	# the temp-then-rename pattern of the README leaves nothing under the final name
	bk --mode full --output-cmd 'cat > x.tmp && false && mv x.tmp x.vma'
	expect_rc 1
	absent x.vma
	state_kept st/s before
	entries . ck.json disk.raw full.vma st x.tmp
}

# A consumer that stops reading and exits 0 (EPIPE): exit 1, not death by
# SIGPIPE (141), and nothing committed; for --output-cmd and for -o -.
consumer_epipe() {
	setup
	rand disk.raw $((8 * 1048576)) # more than a pipe holds
	bk --checkpoint c1 -o full.vma --quiet
	expect_rc 0
	state_keep st/s before
	bk --mode full --output-cmd 'head -c 1000 >/dev/null'
	[ "$RC" -ne 141 ] || fail "vmaback was killed by SIGPIPE"
	expect_fail 1 backup "output command 'head -c 1000 >/dev/null' exited before the end of the archive \\(exit status 0\\)"
	state_kept st/s before
	local rc1
	vb backup --set s --state-dir "$SD" -d drive-scsi0=disk.raw --mode full -o - 2>"$ERR" |
		head -c 1000 >/dev/null
	rc1=${PIPESTATUS[0]}
	LAST="backup --set s -o - | head -c 1000"
	[ "$rc1" -ne 141 ] || fail "vmaback -o - was killed by SIGPIPE"
	RC=$rc1 expect_fail 1 backup 'standard output.*(EPIPE|broken pipe)'
	state_kept st/s before
}

# -o - --no-commit: the checkpoint stays pending until `vmaback commit`.
pending_commit() {
	setup
	bk --checkpoint c1 -o full.vma --quiet
	expect_rc 0
	put disk.raw 1048576 70000
	bk --checkpoint n1 -o - --no-commit --json
	expect_rc 0
	cp "$OUT" n1.vma
	is_vma n1.vma
	# --json goes to stderr when stdout carries the archive
	grep '^{' "$ERR" >summary.json || fail "no JSON summary on stderr"
	[ "$(jq_py summary.json 'd["checkpoint_state"]')" = pending ] || fail "checkpoint_state is not pending"
	expect_err "checkpoint n1 of set s is pending: run 'vmaback commit --set s n1'"
	run vb checkpoints --set s --state-dir "$SD"
	expect_rc 0
	expect_out '^n1 .*\[pending\]'
	grep '^c1 ' "$OUT" | grep -q '\[pending\]' && fail "c1 is listed as pending"
	chain
	[ "$CHAIN" = c1 ] && [ "$PENDING" = n1 ] || fail "chain [$CHAIN] pending [$PENDING], expected [c1] and n1"
	# the stored stream is a valid incremental of the chain
	run vb verify n1.vma
	expect_rc 0
	expect_out '^n1\.vma: OK \(incremental, '
	restores_to_disk full.vma n1.vma
	# commit: n1 joins the chain
	run vb commit --set s --state-dir "$SD" n1
	expect_rc 0
	chain
	[ "$CHAIN" = "c1 n1" ] && [ "$PENDING" = None ] || fail "after commit: chain [$CHAIN] pending [$PENDING]"
	run vb checkpoints --set s --state-dir "$SD"
	grep -q '\[pending\]' "$OUT" && fail "a checkpoint is still listed as pending after commit"
	# committing again, or a name that was never pending: exit 2
	run vb commit --set s --state-dir "$SD" n1
	expect_fail 2 commit 'n1'
	run vb commit --set s --state-dir "$SD" nosuch
	expect_fail 2 commit 'nosuch'
	# the next incremental builds on n1
	put disk.raw 4000000 5000
	bk --checkpoint c3 -o c3.vma --quiet
	expect_rc 0
	[ "$(vb list --json c3.vma | python3 -c 'import json,sys; print(json.load(sys.stdin)["vmaback"]["parent_checkpoint"])')" = n1 ] ||
		fail "c3's parent is not n1"
	restores_to_disk full.vma n1.vma c3.vma
}

# A pending checkpoint never committed is discarded by the next run, which
# says so and again includes every change since the last committed one.
pending_discarded() {
	setup
	bk --checkpoint c1 -o full.vma --quiet
	expect_rc 0
	put disk.raw 0 5000                 # changed before n2: in n2 only
	bk --checkpoint n2 -o - --no-commit --quiet
	expect_rc 0
	cp "$OUT" n2.vma
	put disk.raw $((2 * 1048576)) 5000  # changed after n2
	# a run that fails leaves the pending checkpoint as it was
	cp "$SD/s/state.json" before.json
	bk --checkpoint f -o nodir/f.vma
	expect_fail 2 backup 'nodir'
	cmp -s before.json "$SD/s/state.json" || fail "a failed backup changed the state"
	bk --checkpoint c3 -o c3.vma --json
	expect_rc 0
	expect_err '^INFO: .*discarded checkpoint n2 .*never committed'
	# --json lists the warning as a record: kind, drive, message
	cp "$OUT" c3.json
	[ "$(jq_py c3.json '[(w["kind"], w["drive"]) for w in d["warnings"]]')" = "[('discarded', None)]" ] ||
		fail "warnings in --json: $(cat c3.json)"
	jq_py c3.json 'd["warnings"][0]["message"]' | grep -q '^discarded checkpoint n2 .*never committed' ||
		fail "warning message in --json: $(cat c3.json)"
	chain
	[ "$CHAIN" = "c1 c3" ] && [ "$PENDING" = None ] || fail "chain [$CHAIN] pending [$PENDING], expected [c1 c3]"
	# c3 holds both changes: the chain c1, c3 restores the disk without n2
	restores_to_disk full.vma c3.vma
	# and n2 cannot be committed any more
	run vb commit --set s --state-dir "$SD" n2
	expect_fail 2 commit 'n2'
}

# --config-file: the disk set and options in JSON, overridden by the command line.
config_file() {
	setup
	printf 'memory: 512\n' >vm.conf
	mkdir out
	cat >job.json <<EOF
{
  "set": "s",
  "state-dir": "$SD",
  "drives": ["drive-scsi0=$PWD/disk.raw"],
  "configs": ["$PWD/vm.conf"],
  "output": "$PWD/out/a.vma.zst",
  "zstd-level": 5,
  "quiet": true
}
EOF
	run vb backup --config-file job.json
	expect_rc 0
	[ ! -s "$ERR" ] || fail "\"quiet\": true in the file did not make the run quiet"
	is_zstd out/a.vma.zst
	run vb config out/a.vma.zst -c vm.conf
	same vm.conf "$OUT"
	chain
	[ "$(echo $CHAIN | wc -w)" = 1 ] || fail "chain is [$CHAIN] after one backup"
	# the command line wins: another output, a named checkpoint, an extra option
	put disk.raw 100 100
	run vb backup --config-file job.json -o out/b.vma --compress none --checkpoint mine --json
	expect_rc 0
	is_vma out/b.vma
	[ "$(jq_py "$OUT" 'd["checkpoint"]')" = mine ] || fail "--checkpoint on the command line was not used"
	[ "$(jq_py "$OUT" 'd["kind"]')" = incremental ] || fail "the second run is not incremental"
	restores_to_disk out/a.vma.zst out/b.vma
	# --drive on the command line replaces the file's drives
	rand other.raw 4096
	run vb backup --config-file job.json --set t -d other=other.raw -o out/c.vma
	expect_rc 0
	run vb list out/c.vma
	expect_out 'devname: other$'
	grep -q 'devname: drive-scsi0' "$OUT" && fail "the file's drive was kept despite --drive"
	# unknown key, wrong type, bad JSON, missing file: exit 2, nothing written
	echo '{"set": "s", "bogus": 1}' >bad.json
	run vb backup --config-file bad.json
	expect_fail 2 backup 'bad\.json: unknown setting "bogus"'
	echo '{"drives": "d=disk.raw", "output": "out/x.vma"}' >bad.json
	run vb backup --config-file bad.json
	expect_fail 2 backup 'bad\.json.*"drives" must be a list'
	echo '{"set": ' >bad.json
	run vb backup --config-file bad.json
	expect_fail 2 backup 'bad\.json: not valid JSON'
	echo '["set"]' >bad.json
	run vb backup --config-file bad.json
	expect_fail 2 backup 'bad\.json.*JSON object'
	run vb backup --config-file nosuch.json
	expect_fail 2 backup 'nosuch\.json.*no such file'
	entries out a.vma.zst b.vma c.vma
}

# A second run on a locked set: exit 4 at once, nothing written or changed.
locked() {
	setup
	bk --checkpoint c1 -o full.vma --quiet
	expect_rc 0
	state_keep st/s before
	flock -o st/s/lock sleep 20 &
	local lpid=$! i t0 ms
	for ((i = 0; i < 100; i++)); do
		flock -n st/s/lock true || break
		sleep 0.05
	done
	t0=$(date +%s%N)
	bk -o inc.vma
	ms=$((($(date +%s%N) - t0) / 1000000))
	expect_fail 4 backup "backup set 's' is locked"
	[ "$ms" -lt 5000 ] || fail "the locked run took $ms ms: it waited for the lock"
	absent inc.vma
	run vb commit --set s --state-dir "$SD" c1
	expect_fail 4 commit 'locked'
	kill "$lpid"
	wait "$lpid" 2>/dev/null || true
	state_kept st/s before
	# released: the next run works
	bk -o inc.vma --quiet
	expect_rc 0
}

tcase output_cmd_ok output_cmd_ok
tcase output_cmd_fails output_cmd_fails
tcase consumer_epipe consumer_epipe
tcase pending_commit pending_commit
tcase pending_discarded pending_discarded
tcase config_file config_file
tcase locked locked
