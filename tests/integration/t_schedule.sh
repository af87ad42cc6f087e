# t_schedule.sh: what nightly runs need: --lockwait waits for another run's
# lock (and gives up, or stops on a signal), --max-chain and --full-every
# start a new full backup in --mode auto.
. "$T_SRCDIR/lib.sh"

# kind_of: the "kind" of the JSON summary in $OUT
kind_of() {
	sed -n 's/.*"kind":"\([a-z]*\)".*/\1/p' "$OUT"
}

# hold_lock SECS: another run holds set s's lock for SECS seconds (its pid
# in HOLDER).
hold_lock() {
	mkdir -p st/s
	flock -o st/s/lock sleep "$1" &
	HOLDER=$!
	sleep 0.3
}

lockwait_waits() {
	rand a 100000
	hold_lock 2
	run vb backup --set s --state-dir st -d a=a -o x.vma --lockwait 1
	expect_rc 0
	grep -q "locked by another vmaback run; waiting for it, up to 1 minute (--lockwait)" "$ERR" ||
		fail "no waiting line"
	wait
}

lockwait_gives_up() {
	rand a 100000
	hold_lock 5
	run vb backup --set s --state-dir st -d a=a -o x.vma --lockwait 0.02
	expect_rc 4
	grep -q "backup set 's' is still locked after 0.02 minutes (--lockwait)" "$ERR" ||
		fail "no 'still locked' message"
	absent x.vma
	kill "$HOLDER" 2>/dev/null || true
	wait
}

lockwait_signal() {
	local p rc=0
	rand a 100000
	hold_lock 20
	"$VMABACK" backup --set s --state-dir st -d a=a -o x.vma --lockwait 5 2>err &
	p=$!
	sleep 0.5
	kill -HUP "$p"
	wait "$p" || rc=$?
	kill "$HOLDER" 2>/dev/null || true
	wait "$HOLDER" 2>/dev/null || true
	[ "$rc" -eq 129 ] || fail "exit $rc after SIGHUP, expected 129: $(cat err)"
	grep -q "interrupted while waiting for the lock" err || fail "message: $(cat err)"
	absent x.vma
}

max_chain() {
	rand a 300000
	local i kinds=""
	for i in 1 2 3 4 5 6 7; do
		put a $((i * 4096)) 100
		run vb backup --set s --state-dir st -d a=a -o x$i.vma --max-chain 3 --json
		expect_rc 0
		kinds="$kinds$(kind_of) "
	done
	[ "$kinds" = "full incremental incremental full incremental incremental full " ] ||
		fail "kinds: $kinds"
	grep -q "the chain since full backup .* holds 3 backups (--max-chain 3): full backup" "$ERR" ||
		fail "no rotation line"
	vb restore -q x7.vma --to r
	same a r/disk-a.raw
}

full_every() {
	rand a 300000
	local t=1800000000 kinds="" d
	for d in 0 3 6 7 8; do
		put a $((d * 4096)) 100
		VMABACK_TEST_NOW=$((t + d * 86400)) run vb backup --set s --state-dir st -d a=a \
			-o x$d.vma --full-every 7 --json
		expect_rc 0
		kinds="$kinds$(kind_of) "
	done
	[ "$kinds" = "full incremental incremental full incremental " ] || fail "kinds: $kinds"
}

# --threshold: a small incremental is not kept; the next one holds its
# changes, so the chain restores the latest bytes.
threshold() {
	rand a 4194304
	mkdir o
	vb backup -q --set s --state-dir st -d a=a -o o/f.vma
	put a 65536 100
	run vb backup --set s --state-dir st -d a=a -o o/i1.vma --threshold 1M --json
	expect_rc 0
	grep -q "backup skipped: 64.0 KiB changed (1 clusters), less than --threshold 1.0 MiB" "$ERR" ||
		fail "no 'skipped' line"
	grep -q '"status":"skipped"' "$OUT" || fail "JSON: $(cat "$OUT")"
	entries o f.vma
	[ "$(vb checkpoints --set s --state-dir st | wc -l)" -eq 1 ] ||
		fail "checkpoints: $(vb checkpoints --set s --state-dir st)"
	put a 1048576 2097152
	run vb backup --set s --state-dir st -d a=a -o o/i2.vma --threshold 1M
	expect_rc 0
	vb restore -q o/f.vma o/i2.vma --to r
	same a r/disk-a.raw
	run vb backup --set s --state-dir st -d a=a -o - --threshold 1M
	expect_fail 2 backup "cannot be taken back"
}

rotation_needs_auto() {
	rand a 1000
	run vb backup --set s --state-dir st -d a=a -o x.vma --mode incremental --max-chain 3
	expect_fail 2 backup "go with --mode auto"
	run vb backup -d a=a -o x.vma --lockwait 1
	expect_fail 2 backup "need --set NAME"
	run vb backup --set s --state-dir st -d a=a -o x.vma --lockwait 1x
	expect_fail 2 backup "--lockwait 1x: expected minutes"
}

tcase lockwait_waits lockwait_waits
tcase lockwait_gives_up lockwait_gives_up
tcase lockwait_signal lockwait_signal
tcase max_chain max_chain
tcase full_every full_every
tcase threshold threshold
tcase rotation_needs_auto rotation_needs_auto
