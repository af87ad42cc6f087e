# t_reliability.sh: faults the other tests leave out: the state directory on
# a full file system, a read error in the middle of a drive of a 3-drive set
# (later drives never read), a dm error target, standard output closed,
# consumers that close their input, concurrent runs on one set, file modes
# under umask 0, restore/extract with links planted in the target, and
# sources opened read-only.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"

# small_fs DIR SIZE: a tmpfs of SIZE mounted on DIR (unmounted when the case ends).
small_fs() {
	[ "$(id -u)" = 0 ] || skip "needs root to mount a tmpfs"
	mkdir "$1"
	mount -t tmpfs -o "size=$2,mode=0700" tmpfs "$1" 2>/dev/null || skip "cannot mount a tmpfs"
	MOUNTED=$(realpath "$1")
	trap 'umount "$MOUNTED" 2>/dev/null || umount -l "$MOUNTED"' EXIT
}

# fill DIR: a filler file takes all the free space of DIR's file system.
fill() {
	dd if=/dev/zero of="$1/filler" bs=4096 status=none 2>/dev/null || true
	sync
}

state_dir_full() {
	small_fs st 1m
	rand a.raw 3000000
	rand b.raw 200000
	run vb backup --set s --state-dir "$PWD/st" -d a=a.raw -d b=b.raw --checkpoint n1 -o f.vma
	expect_rc 0
	put a.raw 100 100
	fill st
	state_keep st/s before
	local mode
	for mode in incremental full; do
		run vb backup --set s --state-dir "$PWD/st" -d a=a.raw -d b=b.raw --mode $mode -o x.vma
		expect_fail 1 backup 'st/s.*no space left|no space left.*st/s'
		absent x.vma
		[ -z "$(ls -A . | grep '^\.' || true)" ] || fail "a temporary was left: $(ls -A)"
		state_kept st/s before
	done
	# a refused state command changes nothing either
	run vb checkpoints --set s --state-dir "$PWD/st" --remove n1
	expect_rc 2
	state_kept st/s before
	rm st/filler
	run vb backup --set s --state-dir "$PWD/st" -d a=a.raw -d b=b.raw -o i.vma --json
	expect_rc 0
	[ "$(jq_py "$OUT" 'd["kind"]')" = incremental ] || fail "not an incremental after the full state fs"
	run vb restore f.vma i.vma --to r
	expect_rc 0
	same a.raw r/disk-a.raw
	same b.raw r/disk-b.raw
}

# Output and state on one full file system, through zstd and --output-cmd.
output_full_cmd() {
	small_fs full 2m
	rand src 8388608
	run vb backup --set s --state-dir "$PWD/st" -d a=src --output-cmd "cat > $PWD/full/a.vma"
	expect_rc 1   # besides cat's own "No space left" message
	expect_msg backup "output command .*exit status 1"
	run vb checkpoints --set s --state-dir "$PWD/st" --json
	expect_rc 0
	[ "$(jq_py "$OUT" 'len(d["checkpoints"])')" = 0 ] || fail "a checkpoint was committed"
	rm -f full/a.vma
	empty_dir full
}

# Drive b of a, b, c fails at an offset in its middle (nbdkit's error filter
# armed while b is read): the message names b and the offset, drive c is
# never read (nbdkit's log filter on c logs no read), nothing is committed.
read_error_mid_drive() {
	need nbdkit
	sockdir
	rand a.raw 100000
	nbdkit_up b --filter=error data '@0 1*16777216' size=16777216 \
		error-pread=EIO error-pread-rate=100% error-pread-file="$S/armed"
	nbdkit_up c --filter=log data '@0 "c"' size=1048576 logfile="$S/c.log"
	local ub="nbd+unix:///?socket=$S/b.sock" uc="nbd+unix:///?socket=$S/c.sock"
	run vb backup --set s --state-dir "$PWD/st" -d a=a.raw -d b="$ub" -d c="$uc" --checkpoint n1 -o f.vma
	expect_rc 0
	: >"$S/c.log"
	state_keep st/s before
	bg "$VMABACK" backup --set s --state-dir "$PWD/st" -d a=a.raw -d b="$ub" -d c="$uc" \
		--mode full --bwlimit 8M -o x.vma
	sleep 0.7
	kill -0 "$PID" 2>/dev/null || fail "the backup ended before the error was armed"
	touch "$S/armed"
	bg_wait 30
	expect_fail 1 backup 'drive b: read error at offset [0-9]+: .*Input/output error'
	local off
	off=$(grep -Eo 'at offset [0-9]+' "$ERR" | grep -Eo '[0-9]+')
	[ "$off" -gt 0 ] && [ "$off" -lt 16777216 ] || fail "offset $off is not in the middle of drive b"
	if grep -Eq 'Read|Pread' "$S/c.log"; then
		fail "drive c was read after drive b failed: $(grep -E 'Read|Pread' "$S/c.log" | head -2)"
	fi
	absent x.vma
	state_kept st/s before
	[ -z "$(ls -A . | grep '^\.' || true)" ] || fail "a temporary was left: $(ls -A)"
}

# A raw block device with a failing sector range (device-mapper's error
# target over a loop device), where the kernel has device-mapper.
dm_error() {
	[ "$(id -u)" = 0 ] || skip "needs root"
	[ -c /dev/mapper/control ] || skip "no device-mapper (/dev/mapper/control)"
	command -v dmsetup >/dev/null 2>&1 && command -v losetup >/dev/null 2>&1 ||
		skip "dmsetup or losetup missing"
	rand img 4194304
	local loop name=vbt$$
	loop=$(losetup -f --show img 2>/dev/null) || skip "losetup failed"
	trap 'dmsetup remove '$name' 2>/dev/null; losetup -d '$loop EXIT
	printf '0 4096 linear %s 0\n4096 64 error\n4160 4032 linear %s 4160\n' "$loop" "$loop" |
		dmsetup create "$name" 2>/dev/null || skip "dmsetup create failed"
	run vb backup -d d=/dev/mapper/$name -o x.vma
	expect_fail 1 backup 'drive d: read error at offset 2097152'
	absent x.vma
}

# Standard output closed (not a pipe that closes: no descriptor at all).
stdout_closed() {
	rand a.raw 300000
	RC=0
	vb backup --set s --state-dir "$PWD/st" -d a=a.raw -o - >&- 2>"$ERR" || RC=$?
	LAST="backup -o - >&-"
	expect_fail 1 backup 'standard output.*bad file descriptor'
	run vb checkpoints --set s --state-dir "$PWD/st" --json
	[ "$(jq_py "$OUT" 'len(d["checkpoints"])')" = 0 ] || fail "a checkpoint was committed"
	run vb backup -d a=a.raw -o a.vma --quiet
	expect_rc 0
	RC=0
	vb list a.vma >&- 2>"$ERR" || RC=$?
	LAST="list >&-"
	expect_rc 1
	expect_err 'standard output'
	RC=0
	vb config a.vma -c vmaback.json >&- 2>"$ERR" || RC=$?
	LAST="config >&-"
	expect_rc 1
}

# Consumers that close their input and go on, or exit 0 having read nothing.
consumer_closes() {
	rand a.raw 3000000
	run vb backup --set s --state-dir "$PWD/st" -d a=a.raw --checkpoint n1 -o f.vma
	expect_rc 0
	state_keep st/s before
	local c
	for c in 'exec 0<&-; sleep 0.3' 'exit 0' 'exec 0<&-; exit 0' 'head -c 100000 >/dev/null; exec sleep 0.2'; do
		run vb backup --set s --state-dir "$PWD/st" -d a=a.raw --mode full --output-cmd "$c"
		[ "$RC" -ne 141 ] || fail "killed by SIGPIPE with the consumer '$c'"
		expect_fail 1 backup 'output command .*exited before the end of the archive'
		state_kept st/s before
	done
}

# Consumers that exit 0 after reading only part of the stream, the rest of
# which still sits in the pipe (an incremental archive smaller than the
# pipe): fail with the count of bytes never read, nothing committed. The
# same for a reader of -o - (with --commit, which a pipeline must ask for).
consumer_stops_early() {
	rand a.raw 3000000
	run vb backup --set s --state-dir "$PWD/st" -d a=a.raw --checkpoint n1 -o f.vma
	expect_rc 0
	put a.raw 100 100
	state_keep st/s before
	local c
	for c in 'head -c 1000 > part' 'head -c 1 >/dev/null' 'exit 0'; do
		run vb backup --set s --state-dir "$PWD/st" -d a=a.raw --output-cmd "$c"
		expect_fail 1 backup 'output command .*(never read|exited before the end)'
		state_kept st/s before
	done
	# (the reader stays open a while after head: vmaback writes the whole
	# archive into the pipe, which then holds what was never read)
	run vb backup --set s --state-dir "$PWD/st" -d a=a.raw --output-cmd 'head -c 1000 > part; sleep 1'
	expect_err '[0-9]+ of its [0-9]+ bytes were never read'
	# (an archive that fits the 64 KiB of a shell's pipe)
	rand b.raw 8192
	{ RC=0; vb backup --set t --state-dir "$PWD/st" -d b=b.raw --commit -o - 2>"$ERR" ||
		RC=$?; echo "$RC" >rc; } | { head -c 1000 >/dev/null; sleep 1; }
	RC=$(cat rc)
	LAST="backup --commit -o - | head -c 1000"
	expect_fail 1 backup 'standard output: the reader of the pipe went away.*[0-9]+ of its [0-9]+ bytes were never read'
	run vb checkpoints --set t --state-dir "$PWD/st" --json
	[ "$(jq_py "$OUT" 'len(d["checkpoints"])')" = 0 ] || fail "a checkpoint was committed"
	state_kept st/s before
	# a consumer that reads it all still succeeds and commits
	run vb backup --set s --state-dir "$PWD/st" -d a=a.raw --output-cmd 'cat > whole.vma'
	expect_rc 0
	run vb restore f.vma whole.vma --to r
	expect_rc 0
	same a.raw r/disk-a.raw
}

# -o - with --set: the checkpoint stays pending unless --commit.
stdout_pending() {
	rand a.raw 300000
	vb backup --set s --state-dir "$PWD/st" -d a=a.raw --checkpoint p1 -o - 2>"$ERR" |
		cat >p1.vma
	LAST="backup --set s -o - | cat"
	expect_err 'checkpoint p1 of set s is pending'
	run vb checkpoints --set s --state-dir "$PWD/st" --json
	[ "$(jq_py "$OUT" 'len(d["checkpoints"])')" = 0 ] || fail "-o - committed without --commit"
	run vb commit --set s --state-dir "$PWD/st" p1
	expect_rc 0
	vb backup --set s --state-dir "$PWD/st" -d a=a.raw --checkpoint c2 --commit -o - \
		2>"$ERR" | cat >c2.vma
	LAST="backup --set s --commit -o - | cat"
	expect_err 'checkpoint c2 of set s committed'
	run vb backup --set s --state-dir "$PWD/st" -d a=a.raw --commit --no-commit -o x.vma
	expect_fail 2 backup 'either --commit or --no-commit'
	run vb backup -d a=a.raw --commit -o x.vma
	expect_fail 2 backup 'need --set'
}

# Five backups of one set started at once: one proceeds, four exit 4 at once.
concurrent() {
	rand a.raw 4194304
	local i pids="" ok=0 locked=0 rc
	for i in 1 2 3 4 5; do
		"$VMABACK" backup --set s --state-dir "$PWD/st" -d a=a.raw --bwlimit 4M \
			--checkpoint c$i -o o$i.vma >out$i 2>err$i </dev/null &
		pids="$pids $!"
	done
	i=0
	for p in $pids; do
		i=$((i + 1))
		rc=0
		wait "$p" || rc=$?
		case $rc in
		0) ok=$((ok + 1)) ;;
		4) locked=$((locked + 1))
		   grep -q "^vmaback: backup: backup set 's' is locked" err$i ||
			fail "run $i exited 4 without the locked message: $(cat err$i)"
		   absent o$i.vma ;;
		*) fail "run $i exited $rc: $(cat err$i)" ;;
		esac
	done
	[ "$ok" = 1 ] && [ "$locked" = 4 ] || fail "$ok runs succeeded and $locked were locked out, expected 1 and 4"
	run vb checkpoints --set s --state-dir "$PWD/st" --json
	[ "$(jq_py "$OUT" 'len(d["checkpoints"])')" = 1 ] || fail "not exactly one checkpoint"
	[ "$(ls o*.vma | wc -l)" = 1 ] || fail "archives: $(ls o*.vma)"
}

# Modes under umask 0: archives, state files, logs, restored and extracted
# files 0600, the directories vmaback creates 0700.
modes() {
	umask 000
	rand a.raw 300000
	run vb backup --set s --state-dir "$PWD/st/deep" -d a=a.raw -o a.vma --log-file b.log --quiet
	expect_rc 0
	mode_is a.vma 600
	mode_is b.log 600
	mode_is st 700
	mode_is st/deep 700
	mode_is st/deep/s 700
	local f
	for f in st/deep/s/*; do mode_is "$f" 600; done
	run vb backup -d a=a.raw -o c.vma.zst --quiet
	mode_is c.vma.zst 600
	run vb extract a.vma x
	expect_rc 0
	mode_is x 700
	for f in x/*; do mode_is "$f" 600; done
	run vb restore a.vma --to r
	expect_rc 0
	mode_is r 700
	mode_is r/disk-a.raw 600
	run vb merge -o m.vma a.vma
	expect_rc 0
	mode_is m.vma 600
	# A dump directory's archive and its .notes, .protected and .log.
	mkdir dump
	run vb backup -d a=a.raw --dumpdir dump --vmid 7 --notes n --protected --quiet
	expect_rc 0
	for f in dump/*; do mode_is "$f" 600; done
	[ "$(ls dump | wc -l)" = 4 ] || fail "dump directory holds $(ls dump)"
}

# Links planted in the target: never followed, never replaced without --force.
planted_links() {
	rand a.raw 300000
	rand b.raw 5000
	run vb backup -d a=a.raw -d b=b.raw -o a.vma --quiet
	mkdir r outside
	echo precious >outside/keep
	ln -s ../outside/keep r/disk-a.raw
	ln -s ../outside/nothing r/disk-b.raw
	run vb restore a.vma --to r
	expect_fail 2 restore 'r/disk-a\.raw exists'
	run vb restore a.vma --to r -d b
	expect_fail 2 restore 'r/disk-b\.raw exists'
	[ -L r/disk-b.raw ] || fail "the dangling link r/disk-b.raw was replaced without --force"
	absent outside/nothing
	[ "$(cat outside/keep)" = precious ] || fail "outside/keep was written through a link"
	# --force replaces the links themselves, and writes nothing through them
	run vb restore a.vma --to r --force
	expect_rc 0
	[ ! -L r/disk-a.raw ] && [ ! -L r/disk-b.raw ] || fail "a link is still in place"
	same a.raw r/disk-a.raw
	same b.raw r/disk-b.raw
	entries outside keep
	[ "$(cat outside/keep)" = precious ] || fail "outside/keep was written through a link"
	# extract into a link to a directory, or a dangling link: refused
	ln -s outside x
	run vb extract a.vma x
	expect_fail 2 extract 'exist'
	entries outside keep
	ln -s nowhere y
	run vb extract a.vma y
	expect_fail 2 extract 'exist'
	absent nowhere
	# backup and merge do not replace a planted link either
	ln -s outside/keep out.vma
	run vb backup -d a=a.raw -o out.vma
	expect_fail 2 backup 'exist'
	run vb merge -o out.vma a.vma
	expect_fail 2 merge 'exist'
	[ -L out.vma ] && [ "$(cat outside/keep)" = precious ] || fail "out.vma was replaced or written through"
}

# fd_flags PID FILE: the open flags (octal) of PID's descriptor on FILE.
fd_flags() {
	local fd
	for fd in /proc/$1/fd/*; do
		if [ "$(readlink "$fd")" = "$2" ]; then
			awk '/^flags:/ { print $2 }' "/proc/$1/fdinfo/${fd##*/}"
			return
		fi
	done
}

# Sources are opened O_RDONLY; qemu-nbd for a qcow2 source runs --read-only.
read_only() {
	rand a.raw 4194304
	bg "$VMABACK" backup -d a=a.raw --bwlimit 2M -o x.vma
	local flags="" i
	for ((i = 0; i < 100; i++)); do
		flags=$(fd_flags "$PID" "$PWD/a.raw")
		[ -n "$flags" ] && break
		sleep 0.02
	done
	kill "$PID" 2>/dev/null || true
	bg_wait 10
	[ -n "$flags" ] || fail "a.raw was not seen open"
	[ $((8#$flags & 3)) = 0 ] || fail "a.raw is open with flags $flags, not O_RDONLY"
	command -v qemu-img >/dev/null 2>&1 && command -v qemu-nbd >/dev/null 2>&1 ||
		skip "qemu-img/qemu-nbd not installed"
	qemu-img convert -f raw -O qcow2 a.raw a.qcow2
	bg "$VMABACK" backup -d a=qcow2:a.qcow2 --bwlimit 2M -o y.vma
	local args=""
	for ((i = 0; i < 100; i++)); do
		# "[qemu-nbd]": caught inside execve, before its argv is
		# mapped; look again until the arguments are there.
		args=$(ps -o args= --ppid "$PID" 2>/dev/null |
			grep qemu-nbd | grep -v '^\[' || true)
		[ -n "$args" ] && break
		sleep 0.02
	done
	kill "$PID" 2>/dev/null || true
	bg_wait 10
	[ -n "$args" ] || fail "no qemu-nbd child seen"
	case " $args " in
	*" --read-only "* | *" -r "*) ;;
	*) fail "qemu-nbd runs without --read-only: $args" ;;
	esac
}

tcase state_dir_full state_dir_full
tcase output_full_cmd output_full_cmd
tcase read_error_mid_drive read_error_mid_drive
tcase dm_error dm_error
tcase stdout_closed stdout_closed
tcase consumer_closes consumer_closes
tcase consumer_stops_early consumer_stops_early
tcase stdout_pending stdout_pending
tcase concurrent concurrent
tcase modes modes
tcase planted_links planted_links
tcase read_only read_only
