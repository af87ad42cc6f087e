# t_all_or_none.sh: restore and extract publish all their files or none: while
# they run no final name exists, and a failure on a later drive leaves the
# earlier drives' names absent and existing files untouched.
. "$T_SRCDIR/lib.sh"

# an archive of two drives, a (2 MiB) and b (300 KiB), in x.vma
two() {
	rand a 2097152
	rand b 300000
	vb backup -q -d a=a -d b=b -o x.vma
}

# feed FIFO: holds FIFO open, writes x.vma but its last 1000 bytes into it,
# and waits for the file "go" (at most 30 s, so that a failed case ends)
# before writing the rest (pid in FEED).
feed() {
	local n
	n=$(($(stat -c %s x.vma) - 1000))
	(exec 3>"$1"; head -c "$n" x.vma >&3
	 i=0; while [ ! -e go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	 tail -c 1000 x.vma >&3) &
	FEED=$!
}

# settle: waits until vmaback has read what feed wrote (its temporaries exist)
settle() {
	local i=0
	while [ "$(find "$1" -name '.*.vbtmp.*' 2>/dev/null | wc -l)" -lt "$2" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	sleep 0.3
}

extract_no_final_names() {
	two
	mkfifo in
	feed in
	vb extract - out <in >/dev/null 2>err &
	local p=$!
	settle out 2
	[ -z "$(ls out)" ] || fail "final names during the extract: $(ls out)"
	: >go
	wait "$p" || fail "extract failed: $(cat err)"
	wait "$FEED"
	same a out/disk-a.raw
	same b out/disk-b.raw
	[ -z "$(ls -A out | grep '^\.' || true)" ] || fail "temporaries left: $(ls -A out)"
}

# Drive b's target appears while the restore runs: nothing is published,
# drive a's final name stays absent, the file at b's name is not touched.
restore_later_drive_fails() {
	two
	mkfifo in
	feed in
	vb restore - --target a=ra --target b=rb <in >/dev/null 2>err &
	local p=$! rc=0
	settle . 2
	[ ! -e ra ] && [ ! -e rb ] || fail "final names during the restore"
	echo theirs >rb
	: >go
	wait "$p" || rc=$?
	wait "$FEED"
	[ "$rc" -eq 2 ] || fail "restore exited $rc, expected 2: $(cat err)"
	grep -q 'rb appeared meanwhile; not replaced, nothing published' err ||
		fail "message: $(cat err)"
	absent ra
	[ "$(cat rb)" = theirs ] || fail "rb was changed"
	[ -z "$(ls -A | grep vbtmp || true)" ] || fail "temporaries left: $(ls -A)"
}

# A failure while drive b is read (the archive is cut inside its clusters):
# drive a's final name is never made, an existing file there is untouched.
restore_cut_archive() {
	two
	head -c $(($(stat -c %s x.vma) - 70000)) x.vma >cut.vma
	echo old >ra
	run vb restore cut.vma --target a=ra --target b=rb --force
	[ "$RC" -ne 0 ] || fail "restore of a cut archive succeeded"
	[ "$(cat ra)" = old ] || fail "ra was replaced"
	absent rb
	run vb restore cut.vma --to d
	[ "$RC" -ne 0 ] || fail "restore of a cut archive succeeded"
	absent d
	run vb extract cut.vma e
	[ "$RC" -ne 0 ] || fail "extract of a cut archive succeeded"
	absent e
	[ -z "$(ls -A | grep vbtmp || true)" ] || fail "temporaries left: $(ls -A)"
}

tcase extract_no_final_names extract_no_final_names
tcase restore_later_drive_fails restore_later_drive_fails
tcase restore_cut_archive restore_cut_archive
