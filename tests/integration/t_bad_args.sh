# t_bad_args.sh: every kind of bad command line is exit 2 with a message that
# names the problem, and leaves no file behind (no archive, no temporary).
. "$T_SRCDIR/lib.sh"

ALL_COMMANDS="backup restore list verify extract config merge checkpoints commit"

# setup: src/ (sources) and out/ (where the archive would go, empty).
setup() {
	mkdir src out
	rand src/a 100000
	rand src/b 5000
	printf 'memory: 1\n' >src/qemu-server.conf
}

# refused ERE ARGS...: `vmaback backup ARGS -o out/a.vma` is exit 2 with a
# backup message matching ERE; out/ and the case directory are unchanged.
refused() {
	local re=$1
	shift
	run vb backup "$@" -o out/a.vma
	expect_fail 2 backup "$re"
	empty_dir out
	entries . src out
}

missing_source() {
	setup
	refused 'src/nosuch.*(no such file|not found|does not exist)' --drive d=src/nosuch
	# the first drive is good: still nothing written
	refused 'src/nosuch' --drive a=src/a --drive d=src/nosuch
}

directory_source() {
	setup
	mkdir src/dir
	refused 'src/dir.*(regular file|block device|directory)' --drive d=src/dir
}

fifo_source() {
	setup
	mkfifo src/fifo
	# Nobody writes the FIFO: vmaback must refuse it, not block opening it.
	VB_TIMEOUT=10 refused 'src/fifo.*(regular file|block device|fifo|pipe)' --drive d=src/fifo
	rm src/fifo
}

char_device_source() {
	setup
	refused '/dev/null.*(regular file|block device|character)' --drive d=/dev/null
}

# Unreadable: as root permissions do not apply, so run as nobody then.
unreadable_source() {
	setup
	chmod 000 src/a
	if [ "$(id -u)" != 0 ]; then
		refused 'src/a.*permission denied' --drive d=src/a
		return 0
	fi
	command -v setpriv >/dev/null 2>&1 || skip "root without setpriv: cannot drop privileges"
	local nobody
	nobody=$(id -u nobody 2>/dev/null) || skip "no user nobody"
	chmod 711 "$T_WORK" .
	chmod 777 src out
	setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups \
		"$VMABACK" --version >/dev/null 2>&1 || skip "nobody cannot run $VMABACK"
	run setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups \
		"$VMABACK" backup --drive d=src/a -o out/a.vma
	expect_fail 2 backup 'src/a.*permission denied'
	empty_dir out
}

empty_source() {
	setup
	: >src/empty
	refused 'src/empty.*(empty|zero|size 0|0 bytes)' --drive d=src/empty
}

bad_names() {
	setup
	refused 'drive-scsi0.*(duplicate|twice|more than once)|duplicate.*drive-scsi0' \
		--drive drive-scsi0=src/a --drive drive-scsi0=src/b
	refused "name" --drive a/b=src/a
	refused "name" --drive =src/a
	refused "vmstate" --drive vmstate=src/a
	refused "name" --drive "$(printf 'bad\tname')"=src/a
	refused "name" --drive "$(head -c 256 /dev/zero | tr '\0' n)"=src/a
	refused "drive|NAME=PATH|=" --drive src/a
	refused "drive|NAME=PATH|path" --drive d=
}

# 255 drives is one too many (254 are accepted: t_roundtrip many_drives).
too_many_drives() {
	setup
	local i args=""
	for i in $(seq 1 255); do args="$args --drive d$i=src/b"; done
	# shellcheck disable=SC2086
	refused '254|too many' $args
}

no_drive() {
	setup
	refused 'drive' --config src/qemu-server.conf
}

bad_configs() {
	setup
	rand src/big.conf 65536
	refused 'big\.conf.*(65535|too (large|big|long))|(65535|too (large|big|long)).*big\.conf' \
		--drive d=src/a --config src/big.conf
	refused 'src/nosuch\.conf' --drive d=src/a --config src/nosuch.conf
	mkdir src/x src/y
	echo 1 >src/x/same.conf
	echo 2 >src/y/same.conf
	refused 'duplicate|same\.conf' --drive d=src/a --config src/x/same.conf --config src/y/same.conf
	echo '{}' >src/vmaback.json
	refused 'vmaback\.json|reserved' --drive d=src/a --config src/vmaback.json
	mkdir src/confdir
	refused 'confdir' --drive d=src/a --config src/confdir
}

bad_options() {
	setup
	refused 'level' --drive d=src/a --zstd-level 0
	refused 'level' --drive d=src/a --zstd-level 20
	refused 'level' --drive d=src/a --zstd-level abc
	refused 'level' --drive d=src/a --zstd-level 3x
	refused 'level' --drive d=src/a --zstd-level ''
	refused 'thread' --drive d=src/a --zstd-threads -1
	refused 'thread' --drive d=src/a --zstd-threads many
	refused 'compress|lz4' --drive d=src/a --compress lz4
}

# -o is required; missing directory; -o - to a terminal.
bad_outputs() {
	setup
	run vb backup --drive d=src/a
	expect_fail 2 backup '-o|output'
	entries . src out
	run vb backup --drive d=src/a -o out/missing/a.vma
	expect_fail 2 backup 'out/missing.*no such file|no such file.*out/missing'
	empty_dir out
	if command -v script >/dev/null 2>&1; then
		# script(1) gives vmaback a terminal on stdout.
		RC=0
		script -qec "$VMABACK backup --drive d=src/a -o -" /dev/null >"$OUT" 2>&1 </dev/null || RC=$?
		cp "$OUT" "$ERR"
		LAST="backup -o - (stdout a terminal)"
		expect_rc 2
		expect_err 'terminal|tty'
	fi
}

existing_output() {
	setup
	echo old >out/a.vma
	run vb backup --drive d=src/a -o out/a.vma
	expect_fail 2 backup 'out/a\.vma.*(exist|--force)|(exist|--force).*out/a\.vma'
	[ "$(cat out/a.vma)" = old ] || fail "out/a.vma was changed without --force"
	entries out a.vma
	run vb backup --drive d=src/a -o out/a.vma --force --quiet
	expect_rc 0
	is_vma out/a.vma
	mode_is out/a.vma 600
	entries out a.vma
	run vb verify out/a.vma
	expect_rc 0
}

commands() {
	run vb
	expect_rc 2
	expect_err 'usage|command'
	run vb frobnicate
	expect_rc 2
	expect_err 'unknown command.*frobnicate|frobnicate.*unknown command'
	run vb list
	expect_fail 2 list 'archive|argument|missing'
	run vb list a.vma b.vma
	expect_fail 2 list 'argument|too many|extra|b\.vma|expected one'
	run vb verify
	expect_fail 2 verify 'archive|argument|missing'
	run vb config
	expect_fail 2 config 'archive|argument|missing'
	run vb extract only-archive.vma
	expect_fail 2 extract 'dir|argument|missing'
	entries .
}

# An unknown option: exit 2, one "vmaback: CMD:" line that names it.
unknown_options() {
	setup
	refused "'?--bogus'?" --drive d=src/a --bogus
	# Exactly the message and the hint: nothing from getopt itself.
	printf "%s\n" "vmaback: backup: unrecognized option '--bogus'" \
		"Try 'vmaback backup --help'." >want
	same want "$ERR"
	run vb backup -o out/a.vma --drive
	expect_rc 2
	printf "%s\n" "vmaback: backup: option '--drive' needs an argument" \
		"Try 'vmaback backup --help'." >want
	same want "$ERR"
	empty_dir out
	local c
	for c in restore merge checkpoints commit verify config; do
		run vb "$c" --bogus
		expect_fail 2 "$c" "^vmaback: $c: unrecognized option '--bogus'\$"
		expect_err "^Try 'vmaback $c --help'\.\$"
	done
	run vb list --bogus x.vma
	expect_fail 2 list '--bogus'
	run vb extract a.vma x -z
	expect_fail 2 extract "-z|'z'"
	absent x
}

missing_archive() {
	run vb list nosuch.vma
	expect_fail 2 list 'nosuch\.vma.*no such file'
	run vb verify nosuch.vma
	expect_fail 2 verify 'nosuch\.vma.*no such file'
	run vb extract nosuch.vma x
	expect_fail 2 extract 'nosuch\.vma.*no such file'
	absent x
}

help_version() {
	run vb --version
	expect_rc 0
	expect_out '0\.[0-9]+\.[0-9]+'
	run vb --help
	expect_rc 0
	for c in $ALL_COMMANDS; do
		expect_out "^  $c "
	done
	run vb help
	expect_rc 0
	expect_out backup
	for c in $ALL_COMMANDS; do
		run vb "$c" --help
		expect_rc 0
		cp "$OUT" help.opt
		run vb help "$c"
		expect_rc 0
		same help.opt "$OUT"
	done
	run vb backup --help
	for o in --drive --config -o --output-cmd --force --compress --zstd-level --zstd-threads \
		--bwlimit --set --state-dir --mode --since --checkpoint --no-commit --quiet \
		--progress --log-file --json --config-file 'Exit status'; do
		grep -q -- "$o" "$OUT" || fail "backup --help does not mention $o"
	done
	run vb extract --help
	expect_out '-d'
	run vb help frobnicate
	expect_rc 2
	expect_err "^vmaback: unknown command 'frobnicate'\$"
	# help is a command too
	run vb help help
	expect_rc 0
	expect_out 'Usage: vmaback'
}

tcase missing_source missing_source
tcase directory_source directory_source
tcase fifo_source fifo_source
tcase char_device_source char_device_source
tcase unreadable_source unreadable_source
tcase empty_source empty_source
tcase bad_names bad_names
tcase too_many_drives too_many_drives
tcase no_drive no_drive
tcase bad_configs bad_configs
tcase bad_options bad_options
tcase bad_outputs bad_outputs
tcase existing_output existing_output
tcase commands commands
tcase missing_archive missing_archive
tcase unknown_options unknown_options
tcase help_version help_version
