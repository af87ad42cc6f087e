# t_failures.sh: a backup that fails midway (disk full, signal, consumer gone,
# source shrinking) exits with the documented status and leaves no file.
. "$T_SRCDIR/lib.sh"

# small_fs DIR: a 2 MiB tmpfs mounted on DIR (unmounted when the case ends).
small_fs() {
	[ "$(id -u)" = 0 ] || skip "needs root to mount a tmpfs"
	mkdir "$1"
	mount -t tmpfs -o size=2m,mode=0755 tmpfs "$1" 2>/dev/null || skip "cannot mount a tmpfs"
	MOUNTED=$(realpath "$1")
	trap 'umount "$MOUNTED" 2>/dev/null || umount -l "$MOUNTED"' EXIT
}

disk_full() {
	small_fs full
	rand src 16777216
	run vb backup --drive drive-scsi0=src -o full/a.vma
	expect_fail 1 backup 'no space left'
	empty_dir full
	# compressed: random data does not shrink
	run vb backup --drive drive-scsi0=src -o full/a.vma.zst
	expect_fail 1 backup 'no space left'
	empty_dir full
	# the second drive fails: the first one's part is not kept either
	rand small 100000
	run vb backup --drive drive-scsi0=small --drive drive-scsi1=src -o full/b.vma
	expect_fail 1 backup 'no space left'
	empty_dir full
}

# start_slow_backup OUTDIR: a backup (level 19 zstd of 48 MiB of random data,
# several seconds) in the background, with job control so signals are not
# ignored; returns once its hidden temporary exists in OUTDIR. Sets PID.
start_slow_backup() {
	local out=$1 i
	shift
	mkdir -p "$out"
	[ -f big ] || rand big 50331648
	set -m
	"$VMABACK" backup "$@" --drive drive-scsi0=big --zstd-level 19 --zstd-threads 0 \
		-o "$out/a.vma.zst" >"$OUT" 2>"$ERR" </dev/null &
	PID=$!
	set +m
	for i in $(seq 1 200); do
		[ -n "$(ls -A "$out")" ] && break
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$(ls -A "$out")" ] || fail "no temporary appeared in $out"
	sleep 0.3
	kill -0 "$PID" 2>/dev/null || fail "the backup ended before the signal (too fast for this test)"
}

# wait_rc PID: its exit status in RC (killed after 60 s).
wait_rc() {
	local i
	for i in $(seq 1 600); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null && fail "still running 60 s after the signal"
	RC=0
	wait "$1" || RC=$?
}

sigterm() {
	start_slow_backup out
	kill -TERM "$PID"
	wait_rc "$PID"
	LAST="backup (SIGTERM)"
	expect_rc 143
	expect_err 'interrupt|signal|terminat|cancel'
	empty_dir out
}

sigint() {
	start_slow_backup out
	kill -INT "$PID"
	wait_rc "$PID"
	LAST="backup (SIGINT)"
	expect_rc 130
	expect_err 'interrupt|signal|cancel'
	empty_dir out
}

# --force over an existing archive, then a signal: the old archive stays intact.
sigterm_keeps_old() {
	mkdir out
	rand small 5000
	run vb backup --drive d=small -o out/a.vma.zst --quiet
	expect_rc 0
	cp out/a.vma.zst old.zst
	start_slow_backup out --force
	kill -TERM "$PID"
	wait_rc "$PID"
	LAST="backup --force (SIGTERM)"
	expect_rc 143
	entries out a.vma.zst
	same old.zst out/a.vma.zst
}

# The consumer of -o - exits early: exit 1 with a message, not death by SIGPIPE.
consumer_gone() {
	rand src 8388608
	local rc1
	vb backup --drive drive-scsi0=src -o - 2>"$ERR" | head -c 1000 >"$OUT"
	rc1=${PIPESTATUS[0]}
	LAST="backup -o - | head -c 1000"
	[ "$rc1" -ne 141 ] || fail "vmaback was killed by SIGPIPE"
	RC=$rc1 expect_fail 1 backup 'broken pipe|epipe|pipe'
	vb backup --drive drive-scsi0=src --compress zstd -o - 2>"$ERR" | head -c 10 >"$OUT"
	rc1=${PIPESTATUS[0]}
	LAST="backup --compress zstd -o - | head -c 10"
	RC=$rc1 expect_fail 1 backup 'broken pipe|epipe|pipe'
	# a reader whose stdout is closed early fails the same way
	run vb backup --drive drive-scsi0=src -o a.vma --quiet
	vb config a.vma -c vmaback.json 2>"$ERR" | true
	rc1=${PIPESTATUS[0]}
	[ "$rc1" -ne 141 ] || fail "vmaback config was killed by SIGPIPE"
}

# The source shrinks while it is read: a short read fails the backup.
source_shrinks() {
	rand first 100000
	start_slow_backup out --drive drive-scsi1=first
	truncate -s 1048576 big
	wait_rc "$PID"
	LAST="backup (source truncated while read)"
	expect_fail 1 backup 'drive-scsi0|big'
	expect_err 'shrank'
	empty_dir out
}

tcase disk_full disk_full
tcase sigterm sigterm
tcase sigint sigint
tcase sigterm_keeps_old sigterm_keeps_old
tcase consumer_gone consumer_gone
tcase source_shrinks source_shrinks
