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

ALL_COMMANDS="backup checkpoints commit config decrypt extract help key list ls merge prune recover restore serve verify"

bash_commands() {
	expect_comp "backup" b
	expect_comp "$ALL_COMMANDS" ""
	expect_comp "checkpoints commit config" c
	expect_comp "--help --version" --
	expect_comp "list ls" help l
	expect_comp "$ALL_COMMANDS" help ""
	expect_comp "" help list ""
	expect_comp "--help --json --key" list --
	expect_comp "--checkpoint --deep --help --key --pubkey --quiet --set --state-dir" verify --
	expect_comp "--drive --help --key --quiet -d" extract -
	expect_comp "--bind --cache-dir --drive --help --key --once --overlay --port --quiet --socket -d" serve -
	expect_comp "--connect --define --drive --force --help --key --quiet --target --to -d" restore -
	expect_comp "--compress --force --help --key --output --quiet --recipient --zstd-level -o" merge -
	expect_comp "--config --help --key -c" config -
	expect_comp "--help --json --remove --set --state-dir" checkpoints -
	expect_comp "--help --set --state-dir" commit -
	expect_comp "--dumpdir --help --json --key --set --state-dir" ls -
	expect_comp "create id public" key ""
	expect_comp "--help --paper --passphrase-file" key -
	expect_comp "--help --key" decrypt -
	expect_comp "--keep-daily --keep-hourly --keep-last --keep-monthly --keep-weekly --keep-yearly" prune --keep
	expect_comp "--dry-run --dumpdir" prune --d
	expect_comp "0 1 12 2 24 3 30 4 5 6 7" prune --keep-daily ""
	expect_comp "--dumpdir" backup --du
	expect_comp "" frobnicate ""
}

bash_backup_options() {
	expect_comp "--zstd-level --zstd-threads" backup --drive a=b --zs
	expect_comp "--commit --compress --config --config-file --connect" backup --co
	expect_comp "qemu:///session qemu:///system" backup --connect ""
	expect_comp "--domain" recover --dom
	expect_comp "--bwlimit" backup --bwl
	expect_comp "none zstd" backup --compress ""
	expect_comp "zstd" backup --compress z
	expect_comp "auto differential full incremental" backup --mode ""
	expect_comp "incremental" backup --mode i
	expect_comp "auto bar log none" backup --progress ""
	# --opt=VALUE: bash splits it into --opt, =, VALUE
	expect_comp "auto differential full incremental" backup --mode = ""
	expect_comp "differential" backup --mode = d
	expect_comp "none zstd" merge --compress ""
	expect_comp "1 10 11 12 13 14 15 16 17 18 19" backup --zstd-level 1
	# after an option that takes a value, options again
	expect_comp "--no-bitmap --no-commit" backup --mode full --no-
	local o
	for o in --drive --config -o --output --output-cmd --force --compress --zstd-level \
		--zstd-threads --bwlimit --set --state-dir --mode --since --checkpoint --no-commit \
		--quiet --progress --log-file --json --config-file --help --dumpdir --vmid \
		--name-template --notes --protected; do
		bcomp backup - | tr ' ' '\n' | grep -qx -- "$o" || fail "backup does not complete $o"
	done
}

# Sets from the state directory; checkpoints (all, or pending) from the set.
bash_sets_checkpoints() {
	rand d1 5000
	run vb backup --set vm1 --state-dir "$PWD/st" -d a=d1 --checkpoint c1 -o a.vma --quiet
	expect_rc 0
	run vb backup --set vm1 --state-dir "$PWD/st" -d a=d1 --checkpoint c2 -o - --no-commit --quiet
	expect_rc 0
	mkdir st/vm2
	expect_comp "vm1 vm2" backup --state-dir "$PWD/st" --set ""
	expect_comp "vm1 vm2" checkpoints --state-dir = "$PWD/st" --set v
	expect_comp "c1 c2" checkpoints --state-dir "$PWD/st" --set vm1 --remove ""
	expect_comp "c1 c2" backup --set vm1 --state-dir "$PWD/st" --since ""
	expect_comp "c1 c2" verify --deep --set vm1 --state-dir "$PWD/st" --checkpoint c
	expect_comp "c2" commit --set vm1 --state-dir "$PWD/st" ""
	# the default state directory: $XDG_STATE_HOME/vmaback when not root
	if [ "$(id -u)" != 0 ]; then
		mkdir -p xdg/vmaback/home1
		XDG_STATE_HOME=$PWD/xdg expect_comp "home1" backup --set ""
	fi
	# no --set: no checkpoint names, and no hang
	expect_comp "" commit ""
}
bash_files() {
	rand disk.img 10
	rand disk2.img 10
	mkdir dir
	expect_comp "drive-sata0= drive-scsi0= drive-scsi1=" backup --drive drive-s
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
	expect_comp "drive-scsi0 drive-virtio1" restore a.vma.zst inc.vma -d ""
	expect_comp "drive-virtio1" restore a.vma.zst --drive drive-v
	expect_comp "drive-scsi0 drive-virtio1" serve a.vma.zst -d ""
	expect_comp "drive-scsi0= drive-virtio1=" restore a.vma.zst --target ""
	expect_comp "drive-scsi0=d1 drive-scsi0=d2" restore a.vma.zst --target drive-scsi0=d
	expect_comp "d1 d2" restore a.vma.zst --target drive-scsi0 = d
	expect_comp "qemu-server.conf vmaback.json" config a.vma.zst -c ""
	# No archive on the line, or standard input: nothing, and no hang.
	expect_comp "" extract - x -d ""
	expect_comp "" restore --target ""
}

# Every command and option of the CLI is named in the zsh and fish scripts.
# help_options CMD: the long options CMD's --help lists (its option lines).
help_options() {
	"$VMABACK" "$1" --help | grep -E '^ +(-[a-zA-Z], )?--[a-z]' |
		sed -E 's/^ +(-[a-zA-Z], )?(--[a-z0-9-]+).*/\2/' | sort -u
}

# table_options CMD: the long options of CMD's real getopt_long table
# (struct command's options, printed by the cli_options tool).
table_options() {
	"$TOOLS/cli_options" "$1" | sed 's/^[a-z]* //' | sort -u
}

# Every long option of every command, from its real option table and from
# its --help (backup's --all, taken before getopt, is only there): bash
# completes it after CMD -, and zsh's and fish's scripts name it (so a new
# option cannot be forgotten in one shell); --help lists every option the
# table parses.
all_shells_cover_cli() {
	local c o n=0 t
	for c in $ALL_COMMANDS; do
		[ "$c" = help ] && continue
		t=$(table_options "$c") || fail "cli_options $c failed"
		[ -n "$t" ] || fail "cli_options $c: no options"
		for o in $t; do
			help_options "$c" | grep -qx -- "$o" || fail "$c --help does not list $o"
		done
		for o in $( (echo "$t"; help_options "$c") | sort -u); do
			n=$((n + 1))
			bcomp "$c" - | tr ' ' '\n' | grep -qx -- "$o" || fail "bash: $c does not complete $o"
			grep -q -- "$o" "$COMPDIR/_vmaback" || fail "_vmaback does not mention $o"
			grep -q -- "-l ${o#--}" "$COMPDIR/vmaback.fish" ||
				fail "vmaback.fish does not complete $o"
		done
	done
	[ "$n" -gt 40 ] || fail "only $n options found in the commands' --help"
	for o in $ALL_COMMANDS incremental differential auto bar log none; do
		for c in _vmaback vmaback.fish vmaback.bash; do
			grep -q -- "$o" "$COMPDIR/$c" || fail "$c does not mention $o"
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

# zcomp LINE: zsh's completions for LINE, sorted, on one line.
zcomp() {
	timeout 20 zsh -f "$T_SRCDIR/zsh_complete.zsh" "$COMPDIR" "$(dirname "$VMABACK")" "$1" |
		sort -u | tr '\n' ' ' | sed 's/ $//'
}

zsh_completes() {
	command -v zsh >/dev/null 2>&1 || skip "zsh is not installed"
	local got
	got=$(zcomp 'vmaback c')
	[ "$got" = "checkpoints commit config" ] || fail "zsh completes 'vmaback c' as [$got]"
	got=$(zcomp 'vmaback backup --mode ')
	[ "$got" = "auto differential full incremental" ] || fail "zsh completes --mode as [$got]"
	got=$(zcomp 'vmaback backup --zstd-')
	[ "$got" = "--zstd-level --zstd-threads" ] || fail "zsh completes --zstd- as [$got]"
}

fish_parses() {
	command -v fish >/dev/null 2>&1 || skip "fish is not installed"
	fish -n "$COMPDIR/vmaback.fish" || fail "fish -n rejects vmaback.fish"
	local got
	got=$(fish -c "source $COMPDIR/vmaback.fish; complete -C'vmaback ver'" | cut -f1)
	[ "$got" = verify ] || fail "fish completes 'vmaback ver' as [$got]"
	got=$(fish -c "source $COMPDIR/vmaback.fish; complete -C'vmaback backup --mode '" | cut -f1 | sort | tr '\n' ' ')
	[ "$got" = "auto differential full incremental " ] || fail "fish completes --mode as [$got]"
	got=$(fish -c "source $COMPDIR/vmaback.fish; complete -C'vmaback c'" | cut -f1 | sort | tr '\n' ' ')
	[ "$got" = "checkpoints commit config " ] || fail "fish completes 'vmaback c' as [$got]"
}

tcase bash_commands bash_commands
tcase bash_backup_options bash_backup_options
tcase bash_sets_checkpoints bash_sets_checkpoints
tcase bash_files bash_files
tcase bash_archive_names bash_archive_names
tcase all_shells_cover_cli all_shells_cover_cli
tcase zsh_parses zsh_parses
tcase zsh_completes zsh_completes
tcase fish_parses fish_parses
