# t_prune.sh: dump directories (generated names, .notes, .log, .protected),
# ls, prune (dry run, locks, dependencies, a crash between the state change
# and the deletions), and verify --deep on archives of a dump directory with
# a flipped bit anywhere.
. "$T_SRCDIR/lib.sh"

# setup: one drive d.raw (5 clusters and a bit), set s in $SD, dump dir $DD.
setup() {
	command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
	rand d.raw $((5 * 65536 + 1000))
	SD=$PWD/st
	DD=$PWD/dump
	mkdir -p "$DD"
	export TZ=UTC
}

# bk DAY ARGS...: a backup of set s into $DD on day DAY of 2024 (at 01:00).
bk() {
	local day=$1
	shift
	VMABACK_TEST_NOW=$((1704070800 + day * 86400)) run vb backup -q --set s \
		--state-dir "$SD" -d drive-scsi0=d.raw --dumpdir "$DD" --vmid 100 "$@"
	expect_rc 0
	# incrementals and differentials are not named like full vzdump backups
	KIND[$day]=.vma
	ls "$DD" | grep -q "^$(name "$day" .vmainc)" && KIND[$day]=.vmainc
	ls "$DD" | grep -q "^$(name "$day" .vmadiff)" && KIND[$day]=.vmadiff
	true
}
declare -A KIND

# name DAY [EXT]: the archive name of day DAY (EXT .vma... follows its kind).
name() {
	local ext=${2-.vma.zst}
	case $ext in .vma*) ext=${KIND[$1]:-.vma}${ext#.vma} ;; esac
	echo "vzdump-qemu-100-$(date -u -d @$((1704070800 + $1 * 86400)) +%Y_%m_%d-%H_%M_%S)$ext"
}

pr() {
	run vb prune --set s --state-dir "$SD" --dumpdir "$DD" "$@"
}

dumpdir_files() {
	setup
	bk 0 --notes "first one" --protected
	put d.raw 70000 10
	bk 1 --compress none
	entries "$DD" "$(name 0)" "$(name 0).notes" "$(name 0).protected" "$(name 0 '').log" \
		"$(name 1 .vma)" "$(name 1 '').log"
	[ "$(cat "$DD/$(name 0).notes")" = "first one" ] || fail "notes: $(cat "$DD/$(name 0).notes")"
	grep -q "full backup" "$DD/$(name 0 '').log" || fail "the log has no INFO lines"
	is_zstd "$DD/$(name 0)"
	is_vma "$DD/$(name 1 .vma)"
	run vb backup -d x=d.raw --dumpdir "$DD"
	expect_fail 2 backup 'needs --vmid'
	run vb backup -d x=d.raw --dumpdir "$DD" --vmid 1 -o x.vma
	expect_fail 2 backup 'one of -o, --output-cmd and --dumpdir'
	run vb backup -d x=d.raw -o - --notes x
	expect_fail 2 backup 'need an archive file'
	run vb backup -d x=d.raw --vmid 1 -o x.vma
	expect_fail 2 backup 'go with --dumpdir'
	run vb backup -d x=d.raw --dumpdir "$DD" --name-template 'a/{date}'
	expect_fail 2 backup 'not a plain file name'
	VMABACK_TEST_NOW=1704070800 run vb backup -q -d x=d.raw --dumpdir "$DD" \
		--name-template 'web-{date}' --compress none
	expect_rc 0
	[ -f "$DD/web-2024_01_01-01_00_00.vma" ] || fail "no web-2024_01_01-01_00_00.vma"
}

ls_chains() {
	setup
	bk 0
	put d.raw 0 10
	bk 1
	put d.raw 70000 10
	bk 2
	run vb ls --dumpdir "$DD"
	expect_rc 0
	[ "$(grep -c complete "$OUT")" = 3 ] || fail "not 3 complete chains"
	run vb ls --set s --state-dir "$SD" --json
	expect_rc 0
	[ "$(jq_py "$OUT" '[x["kind"] for x in d]')" = "['full', 'incremental', 'incremental']" ] ||
		fail "kinds: $(jq_py "$OUT" '[x["kind"] for x in d]')"
	[ "$(jq_py "$OUT" 'd[2]["status"]')" = latest ] || fail "the newest is not latest"
	[ "$(jq_py "$OUT" 'd[2]["parent"] == d[1]["checkpoint"]')" = True ] || fail "parent"
	mv "$DD/$(name 1)" moved.vma.zst
	run vb ls --dumpdir "$DD" --json
	[ "$(jq_py "$OUT" '[x["complete"] for x in d]')" = "[True, False]" ] ||
		fail "a chain with a missing archive is complete: $(cat "$OUT")"
	run vb ls --set s --state-dir "$SD"
	expect_out 'missing'
	run vb ls
	expect_fail 2 ls 'expected --dumpdir'
}

# Dependencies: a kept incremental keeps its full and the archives between.
prune_dependencies() {
	setup
	for day in 0 1 2 3 4; do
		put d.raw $((day * 65536)) 10
		bk $day
	done
	bk 5 --mode full
	put d.raw 0 3
	bk 6
	pr --keep-last 1 --dry-run
	expect_rc 0
	[ "$(grep -c '^would remove' "$OUT")" = 5 ] || fail "dry run: not 5 to remove"
	expect_out "^keep .*$(name 5).*restoring .* needs it"
	[ "$(ls "$DD" | grep -c 'zst$')" = 7 ] || fail "the dry run removed files"
	# protect day 3: days 0..3 stay (its chain), 4 goes
	: >"$DD/$(name 3).protected"
	pr --keep-last 1
	expect_rc 0
	entries "$DD" "$(name 0)" "$(name 1)" "$(name 2)" "$(name 3)" "$(name 3).protected" \
		"$(name 5)" "$(name 6)" "$(name 0 '').log" "$(name 1 '').log" "$(name 2 '').log" \
		"$(name 3 '').log" "$(name 5 '').log" "$(name 6 '').log"
	run vb restore -q "$DD/$(name 0)" "$DD/$(name 1)" "$DD/$(name 2)" "$DD/$(name 3)" --to r3
	expect_rc 0
	run vb restore -q "$DD/$(name 5)" "$DD/$(name 6)" --to r6
	expect_rc 0
	same r6/disk-drive-scsi0.raw d.raw
	# the next incremental still holds exactly the changes
	put d.raw 200000 5
	bk 7
	run vb restore -q "$DD/$(name 5)" "$DD/$(name 6)" "$DD/$(name 7)" --to r7
	expect_rc 0
	same r7/disk-drive-scsi0.raw d.raw
	run vb verify --deep -q "$DD/$(name 7)" --state-dir "$SD"
	expect_rc 0
}

# Killed between the state change and the deletions: the archives of the
# removed checkpoints are "pruned" for ls, a backup still works, and the
# next prune deletes them (but not a file that took one's name since).
prune_killed() {
	setup
	for day in 0 1 2 3; do
		put d.raw $((day * 65536)) 10
		if [ $day = 2 ]; then bk $day --notes "day $day" --mode full
		else bk $day --notes "day $day"; fi
	done
	VMABACK_TEST_KILL_AFTER_STATE=1 run vb prune --set s --state-dir "$SD" --keep-daily 1
	expect_rc 137
	[ "$(ls "$DD" | grep -c 'zst$')" = 4 ] || fail "files were deleted before the crash"
	run vb ls --set s --state-dir "$SD" --json
	expect_rc 0
	[ "$(jq_py "$OUT" '[x["status"] for x in d]')" = "['pruned', 'pruned', 'ok', 'latest']" ] ||
		fail "after the crash: $(jq_py "$OUT" '[x["status"] for x in d]')"
	put d.raw 100 10
	bk 4
	# a different archive now has day 1's name: it must stay
	cp "$DD/$(name 4)" "$DD/$(name 1)"
	pr --keep-last 5
	expect_rc 0
	expect_out 'removed 0 checkpoints and 1 archive file '
	entries "$DD" "$(name 1)" "$(name 1).notes" "$(name 2)" "$(name 2).notes" "$(name 3)" \
		"$(name 3).notes" "$(name 4)" "$(name 1 '').log" "$(name 2 '').log" \
		"$(name 3 '').log" "$(name 4 '').log"
	grep -q pruned "$SD/s/state.json" && fail "state.json still records pruned archives"
	run vb restore -q "$DD/$(name 2)" "$DD/$(name 3)" "$DD/$(name 4)" --to r
	expect_rc 0
	same r/disk-drive-scsi0.raw d.raw
}

prune_locked() {
	setup
	bk 0
	bk 1
	flock -o "$SD/s/lock" sleep 20 &
	local lp=$! i
	for ((i = 0; i < 100; i++)); do
		flock -n "$SD/s/lock" true || break
		sleep 0.05
	done
	pr --keep-last 1
	kill "$lp" 2>/dev/null
	wait "$lp" 2>/dev/null || true
	expect_fail 4 prune 'locked'
	[ "$(ls "$DD" | grep -c 'zst$')" = 2 ] || fail "a locked prune removed files"
	pr --keep-last x
	expect_fail 2 prune 'keep-last x'
	run vb prune --keep-last 1
	expect_fail 2 prune 'expected --set'
	pr
	expect_rc 0
	expect_out 'no keep rule given'
}

# One flipped bit anywhere in a chain's archives: verify --deep exits 3 and
# names the damaged file, and the drive and offset of damaged data (also in
# clusters the newer archive replaces), or the damaged header or extent.
deep_flipped_bits() {
	setup
	bk 0 --compress none
	put d.raw 70000 70000
	bk 1 --compress none
	local full inc size pos i
	full=$DD/$(name 0 .vma)
	inc=$DD/$(name 1 .vma)
	cp "$full" full.orig
	cp "$inc" inc.orig
	run vb verify --deep "$inc" --state-dir "$SD"
	expect_rc 0
	expect_out 'OK'
	for ((i = 0; i < 24; i++)); do
		if ((i % 3 == 0)); then f=$full; o=full.orig; else f=$inc; o=inc.orig; fi
		size=$(stat -c %s "$f")
		pos=$(((RANDOM * 32768 + RANDOM) % size))
		flip "$f" "$pos" $((1 << (i % 8)))
		run vb verify --deep "$inc" --state-dir "$SD"
		expect_rc 3
		expect_err "$(basename "$f")"
		# data: the drive and offset; else the damaged header or extent
		expect_err 'drive drive-scsi0: .*offset [0-9]+|header|extent at offset [0-9]+'
		if ! grep -q 'header\|extent at' "$ERR"; then
			expect_err "in .*$(basename "$f"): drive drive-scsi0: the data at offset [0-9]+"
		fi
		cp "$o" "$f"
	done
}

# A FIFO, a device, a symbolic link, a directory with an archive's name:
# ls and prune neither hang on it (open without blocking) nor treat it as
# an archive; a warning names each one, and prune leaves it alone.
not_regular() {
	setup
	bk 0
	bk 1 --mode full
	mkfifo "$DD/vzdump-qemu-100-2020_01_01-00_00_00.vma"
	mkfifo "$DD/fifo.vma.zst"
	ln -s /dev/zero "$DD/zero.vma"
	ln -s "$(name 0)" "$DD/link.vma.zst"
	mkdir "$DD/dir.vma"
	local VB_TIMEOUT=20 f
	for args in "--dumpdir $DD" "--set s --state-dir $SD --dumpdir $DD" \
		"--dumpdir $DD --json"; do
		# shellcheck disable=SC2086
		run vb ls $args
		expect_rc 0
		for f in vzdump-qemu-100-2020_01_01-00_00_00.vma fifo.vma.zst; do
			grep -q "^WARN: $DD/$f: a FIFO, not an archive file: skipped" "$ERR" ||
				fail "ls $args: no warning for $f"
		done
		expect_err "zero.vma: a symbolic link"
		expect_err "link.vma.zst: a symbolic link"
		expect_err "dir.vma: a directory"
		grep -q 'fifo\|zero\|link\|dir\.vma' "$OUT" && fail "ls $args lists a skipped file"
	done
	pr --keep-last 1
	expect_rc 0
	expect_err "fifo.vma.zst: a FIFO"
	expect_out 'removed 1 checkpoint and 1 archive file '
	[ -p "$DD/fifo.vma.zst" ] && [ -p "$DD/vzdump-qemu-100-2020_01_01-00_00_00.vma" ] &&
		[ -L "$DD/zero.vma" ] && [ -d "$DD/dir.vma" ] || fail "prune removed a skipped file"
	# a pruned record whose file became a FIFO: prune deletes nothing, and ends
	bk 2 --mode full
	mv "$DD/$(name 1)" "$DD/keep.vma.zst"
	mkfifo "$DD/$(name 1)"
	VMABACK_TEST_KILL_AFTER_STATE=1 run vb prune --set s --state-dir "$SD" --keep-last 1
	expect_rc 137
	rm "$DD/$(name 1)"
	mkfifo "$DD/$(name 1)"
	pr --keep-last 1
	expect_rc 0
	[ -p "$DD/$(name 1)" ] || fail "prune deleted a FIFO under a pruned archive's name"
}

tcase dumpdir_files dumpdir_files
tcase ls_chains ls_chains
tcase prune_dependencies prune_dependencies
tcase prune_killed prune_killed
tcase prune_locked prune_locked
tcase not_regular not_regular
tcase deep_flipped_bits deep_flipped_bits
