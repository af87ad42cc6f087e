# t_orphans.sh: the hidden temporary of a backup killed with SIGKILL (the
# OOM killer, a reboot) stays; the next backup into that directory and
# prune remove it and say so; a live writer's temporary is never touched
# (it holds a lock); read-only commands delete nothing.
. "$T_SRCDIR/lib.sh"

setup() {
	rand big.raw $((12 * 1048576))
	rand small.raw 100000
	SD=$PWD/st
	mkdir out
}

# temps DIR [BASE]: the names of the hidden temporaries in DIR (of BASE).
temps() {
	ls -A "$1" | grep -E "^\.${2:-.*}\.vbtmp\.[A-Za-z0-9]{6}$" || true
}

# slow DIR GLOB ARGS...: a backup of big.raw at 2 MiB/s (6 s) in the
# background, returned from once its temporary (.GLOB.vbtmp.*) in DIR holds
# data; PID, and its name in TEMP.
slow() {
	local i dir=$1 glob=$2
	shift 2
	bg "$VMABACK" backup -d drive-scsi0=big.raw --bwlimit 2M "$@"
	for i in $(seq 1 100); do
		TEMP=$(find "$dir" -maxdepth 1 -name ".$glob.vbtmp.*" -size +0 -printf '%f\n' 2>/dev/null | head -1)
		[ -n "$TEMP" ] && break
		kill -0 "$PID" 2>/dev/null || fail "the backup ended early (status $(wait "$PID"; echo $?))"
		sleep 0.05
	done
	[ -n "$TEMP" ] || fail "no temporary appeared in $dir"
}

# killed DIR GLOB ARGS...: slow, then SIGKILL: its temporary stays, in TEMP.
killed() {
	slow "$@"
	sleep 0.3
	kill -KILL "$PID"
	wait "$PID" 2>/dev/null || true
	[ -f "$1/$TEMP" ] || fail "the killed backup's temporary $TEMP is gone"
}

# re TEXT: TEXT as an ERE that matches it literally (names hold dots).
re() {
	printf '%s' "$1" | sed 's/[.[\*^$()+?{|]/\\&/g'
}

backup_sweeps() {
	setup
	# a writer that lives while the others come and go
	slow out b.vma -o out/b.vma
	live_pid=$PID
	live=$TEMP
	killed out a.vma -o out/a.vma
	absent out/a.vma
	[ "$(temps out | wc -l)" -eq 2 ] || fail "expected two temporaries: $(ls -A out)"
	orphan=$TEMP
	size=$(stat -c %s "out/$orphan")
	# commands that only read delete nothing
	run vb backup -d drive-scsi0=small.raw -o c.vma
	expect_rc 0
	mv c.vma out/c.vma
	run vb list out/c.vma
	expect_rc 0
	run vb verify out/c.vma
	expect_rc 0
	run vb ls out
	[ -f "out/$orphan" ] || fail "a read-only command removed the orphan"
	# the next backup into out/ removes the orphan, names it, and only it
	run vb backup -d drive-scsi0=small.raw -o out/d.vma
	expect_rc 0
	expect_err "^INFO: removed the temporary out/$(re "$orphan") left by a run that did not finish \($size bytes\)$"
	[ "$(grep -c 'removed the temporary' "$ERR")" -eq 1 ] || fail "more than one temporary removed"
	absent "out/$orphan"
	[ -f "out/$live" ] || fail "the live writer's temporary $live was removed"
	PID=$live_pid
	bg_wait 30
	expect_rc 0
	run vb verify out/b.vma
	expect_rc 0
	[ -z "$(temps out)" ] || fail "temporaries left: $(temps out)"
}

dumpdir_sweeps() {
	setup
	mkdir dump
	killed dump 'vzdump-*' --dumpdir dump --vmid 100
	run vb backup -d drive-scsi0=small.raw --dumpdir dump --vmid 100
	expect_rc 0
	expect_err "^INFO: removed the temporary /.*/dump/$(re "$TEMP") left by a run that did not finish \([0-9]+ bytes\)$"
	absent "dump/$TEMP"
	[ -z "$(temps dump)" ] || fail "temporaries left: $(temps dump)"
}

prune_sweeps() {
	setup
	mkdir -m 700 st
	run vb backup --set s --state-dir "$SD" -d drive-scsi0=small.raw -o out/a.vma
	expect_rc 0
	killed out b.vma --set s --state-dir "$SD" -o out/b.vma
	run vb prune --set s --state-dir "$SD" --keep-last 5 --dry-run
	expect_rc 0
	expect_err "^INFO: would remove the temporary .*out/$(re "$TEMP") left by a run"
	[ -f "out/$TEMP" ] || fail "prune --dry-run removed $TEMP"
	run vb ls --set s --state-dir "$SD"
	run vb checkpoints --set s --state-dir "$SD"
	[ -f "out/$TEMP" ] || fail "a read-only command removed $TEMP"
	run vb prune --set s --state-dir "$SD" --keep-last 5
	expect_rc 0
	expect_err "^INFO: removed the temporary .*out/$(re "$TEMP") left by a run that did not finish \([0-9]+ bytes\)$"
	absent "out/$TEMP"
	[ -f out/a.vma ] || fail "out/a.vma is gone"
}

# Only vmaback's own names, only regular files, never through a link.
only_ours() {
	setup
	echo keep >victim
	ln -s "$PWD/victim" out/.x.vma.vbtmp.Ab3xYz
	mkfifo out/.f.vma.vbtmp.Ab3xYz
	mkdir out/.d.vma.vbtmp.Ab3xYz
	echo 1 >out/.x.vma.vbtmp.Ab3x-z
	echo 1 >out/.x.vma.tmp.Ab3xYz
	echo 1 >out/x.vma.vbtmp.Ab3xYz
	run vb backup -d drive-scsi0=small.raw -o out/a.vma
	expect_rc 0
	! grep -q 'removed the temporary' "$ERR" || fail "removed something: $(cat "$ERR")"
	entries out .x.vma.vbtmp.Ab3xYz .f.vma.vbtmp.Ab3xYz .d.vma.vbtmp.Ab3xYz \
		.x.vma.vbtmp.Ab3x-z .x.vma.tmp.Ab3xYz x.vma.vbtmp.Ab3xYz a.vma
	[ "$(cat victim)" = keep ] || fail "the link's target changed"
}

tcase backup_sweeps backup_sweeps
tcase dumpdir_sweeps dumpdir_sweeps
tcase prune_sweeps prune_sweeps
tcase only_ours only_ours
