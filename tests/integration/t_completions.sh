# t_completions.sh: the bash completion completes commands, options, values,
# files and drive names; zsh and fish scripts parse (when those shells exist).
. "$T_SRCDIR/lib.sh"

COMPDIR=$(cd "$T_SRCDIR/../../completions" && pwd)

# bcomp WORD...: the bash completions for a line whose last word is being typed.
bcomp() {
	bash --norc --noprofile -c '
		source "$1" || exit 1
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_vmaback 2>/dev/null
		printf "%s\n" "${COMPREPLY[@]}"
	' _ "$COMPDIR/vmaback.bash" "$VMABACK" "$@" | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//'
}

# expect_comp "EXPECTED" WORD...: the completions are exactly EXPECTED (sorted).
expect_comp() {
	local want=$1 got
	shift
	got=$(bcomp "$@")
	[ "$got" = "$want" ] || fail "completing [vmaback $*] gave [$got], expected [$want]"
}

bash_commands() {
	expect_comp "backup" b
	expect_comp "backup config extract help list verify" ""
	expect_comp "--help --version" --
	expect_comp "list" help l
	expect_comp "--help --json" list --
	expect_comp "--help --quiet" verify --
	expect_comp "--help -d" extract -
}

bash_backup_options() {
	expect_comp "--zstd-level --zstd-threads" backup --drive a=b --zs
	expect_comp "--compress --config" backup --co
	expect_comp "none zstd" backup --compress ""
	expect_comp "zstd" backup --compress z
	expect_comp "1 10 11 12 13 14 15 16 17 18 19" backup --zstd-level 1
	local o
	for o in --drive --config -o --force --compress --zstd-level --zstd-threads --quiet --json --help; do
		bcomp backup "" | tr ' ' '\n' | grep -qx -- "$o" || fail "backup does not complete $o"
	done
}

bash_files() {
	rand disk.img 10
	rand disk2.img 10
	mkdir dir
	expect_comp "disk.img disk2.img" backup --drive drive-scsi0 = dis
	expect_comp "drive-scsi0=disk.img drive-scsi0=disk2.img" backup --drive drive-scsi0=dis
	expect_comp "disk.img disk2.img" backup --config dis
	expect_comp "dir disk.img disk2.img" backup -o d
	expect_comp "disk.img disk2.img" list dis
	expect_comp "dir" extract disk.img d
}

bash_archive_names() {
	rand d1 5000
	rand d2 70000
	echo 'memory: 1' >qemu-server.conf
	run vb backup --drive drive-scsi0=d1 --drive drive-virtio1=d2 --config qemu-server.conf \
		-o a.vma.zst --quiet
	expect_rc 0
	expect_comp "drive-scsi0 drive-virtio1" extract a.vma.zst x -d ""
	expect_comp "drive-virtio1" extract a.vma.zst x -d drive-v
	expect_comp "drive-scsi0,drive-virtio1" extract a.vma.zst x -d drive-scsi0,drive-v
	expect_comp "qemu-server.conf vmaback.json" config a.vma.zst -c ""
	# No archive on the line, or standard input: nothing, and no hang.
	expect_comp "" extract - x -d ""
}

# Every command and option of the CLI is named in the zsh and fish scripts.
all_shells_cover_cli() {
	local f w
	for f in _vmaback vmaback.fish vmaback.bash; do
		for w in backup list config verify extract help drive config force compress \
			zstd-level zstd-threads quiet json version; do
			grep -q -- "$w" "$COMPDIR/$f" || fail "$f does not mention $w"
		done
	done
}

zsh_parses() {
	command -v zsh >/dev/null 2>&1 || skip "zsh is not installed"
	zsh -n "$COMPDIR/_vmaback" || fail "zsh -n rejects _vmaback"
	# Load it in a real completion system and check the function is defined.
	zsh -f -c "fpath=($COMPDIR \$fpath); autoload -Uz compinit; compinit -u -D; autoload -Uz _vmaback; (( \$+functions[_vmaback] ))" ||
		fail "zsh cannot load _vmaback"
}

fish_parses() {
	command -v fish >/dev/null 2>&1 || skip "fish is not installed"
	fish -n "$COMPDIR/vmaback.fish" || fail "fish -n rejects vmaback.fish"
	local got
	got=$(fish -c "source $COMPDIR/vmaback.fish; complete -C'vmaback ver'" | cut -f1)
	[ "$got" = verify ] || fail "fish completes 'vmaback ver' as [$got]"
}

tcase bash_commands bash_commands
tcase bash_backup_options bash_backup_options
tcase bash_files bash_files
tcase bash_archive_names bash_archive_names
tcase all_shells_cover_cli all_shells_cover_cli
tcase zsh_parses zsh_parses
tcase fish_parses fish_parses
