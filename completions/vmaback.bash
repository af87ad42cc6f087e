# vmaback.bash: bash completion for vmaback: every command and option, the
# values of --mode/--progress/--compress, files, backup sets, checkpoints,
# and drive names of the archive on the line (for -d and --target).
# Self-contained: works with or without the bash-completion package.

_vmaback_commands="backup restore list verify extract config merge checkpoints commit ls prune recover serve key decrypt help"

# Options of each command; those in _vmaback_arg_<cmd> take a value.
_vmaback_opts_backup="--drive -d --config -c --output -o --output-cmd --force --compress
	--zstd-level --zstd-threads --bwlimit --set --state-dir --mode --since --checkpoint
	--no-commit --commit --quiet --progress --log-file --json --config-file --help
	--dumpdir --vmid --name-template --notes --protected --hook --bitmap --no-bitmap --lockwait --max-chain --full-every --threshold
	--qmp --scratch-dir --fsfreeze --qga --domain --connect --all --domains --include-stopped --encrypt --recipient --sign"
_vmaback_arg_backup="-d --drive -c --config -o --output --output-cmd --compress --zstd-level
	--zstd-threads --bwlimit --set --state-dir --mode --since --checkpoint --progress
	--log-file --config-file --dumpdir --vmid --name-template --notes --hook --bitmap --lockwait --max-chain --full-every --threshold
	--qmp --scratch-dir --qga --domain --connect --domains --encrypt --recipient --sign"
_vmaback_opts_restore="--to --target --drive -d --define --connect --force --quiet --key --help"
_vmaback_arg_restore="--to --target -d --drive --define --connect --key"
_vmaback_opts_merge="--output -o --force --compress --zstd-level --quiet --key --recipient --help"
_vmaback_arg_merge="-o --output --compress --zstd-level --key --recipient"
_vmaback_opts_list="--json --key --help"
_vmaback_arg_list="--key"
_vmaback_opts_verify="--quiet --deep --set --state-dir --checkpoint --key --pubkey --help"
_vmaback_arg_verify="--set --state-dir --checkpoint --key --pubkey"
_vmaback_opts_extract="--drive -d --quiet --key --help"
_vmaback_arg_extract="-d --drive --key"
_vmaback_opts_serve="--drive -d --socket --port --bind --once --cache-dir --overlay --quiet --key --help"
_vmaback_arg_serve="-d --drive --socket --port --bind --cache-dir --overlay --key"
_vmaback_opts_config="--config -c --key --help"
_vmaback_arg_config="-c --config --key"
_vmaback_opts_checkpoints="--set --state-dir --json --remove --help"
_vmaback_arg_checkpoints="--set --state-dir --remove"
_vmaback_opts_recover="--qmp --domain --connect --set --state-dir --scratch-dir --help"
_vmaback_arg_recover="--qmp --domain --connect --set --state-dir --scratch-dir"
_vmaback_opts_commit="--set --state-dir --help"
_vmaback_arg_commit="--set --state-dir"
_vmaback_opts_ls="--dumpdir --set --state-dir --json --key --help"
_vmaback_arg_ls="--dumpdir --set --state-dir --key"
_vmaback_opts_key="--passphrase-file --paper --help"
_vmaback_arg_key="--passphrase-file"
_vmaback_opts_decrypt="--key --help"
_vmaback_arg_decrypt="--key"
_vmaback_opts_prune="--set --state-dir --dumpdir --keep-last --keep-hourly --keep-daily
	--keep-weekly --keep-monthly --keep-yearly --dry-run --quiet --help"
_vmaback_arg_prune="--set --state-dir --dumpdir --keep-last --keep-hourly --keep-daily
	--keep-weekly --keep-monthly --keep-yearly"

# _vmaback_list PROG ARCHIVE KIND: DEV (drive) or CFG (blob) names of an
# archive, from its header only (cheap, even compressed); not for '-'.
_vmaback_list() {
	local prog=$1 archive=$2 kind=$3
	[ -n "$archive" ] && [ "$archive" != - ] && [ -r "$archive" ] || return 0
	command -v "$prog" >/dev/null 2>&1 || prog=vmaback
	if [ "$kind" = DEV ]; then
		timeout 3 "$prog" list "$archive" 2>/dev/null |
			sed -n 's/^DEV: dev_id=[0-9]* size: [0-9]* devname: //p'
	else
		timeout 3 "$prog" list "$archive" 2>/dev/null | sed -n 's/^CFG: size: [0-9]* name: //p'
	fi
}

# _vmaback_state_dir: the --state-dir on the line, else the default.
_vmaback_state_dir() {
	if [ -n "$_vb_state_dir" ]; then
		echo "$_vb_state_dir"
	elif [ "$(id -u)" = 0 ]; then
		echo /var/lib/vmaback
	else
		echo "${XDG_STATE_HOME:-$HOME/.local/state}/vmaback"
	fi
}

# _vmaback_sets: the backup sets (directories of the state directory).
_vmaback_sets() {
	local d
	d=$(_vmaback_state_dir)
	[ -d "$d" ] || return 0
	(cd "$d" 2>/dev/null && for s in */; do [ -d "$s" ] && echo "${s%/}"; done)
}

# _vmaback_ckpts PROG [pending]: the checkpoints of the --set on the line.
_vmaback_ckpts() {
	local prog=$1 only=${2:-}
	[ -n "$_vb_set" ] || return 0
	command -v "$prog" >/dev/null 2>&1 || prog=vmaback
	local -a sd=()
	[ -n "$_vb_state_dir" ] && sd=(--state-dir "$_vb_state_dir")
	if [ "$only" = pending ]; then
		timeout 3 "$prog" checkpoints --set "$_vb_set" "${sd[@]}" 2>/dev/null |
			awk '/\[pending\]$/ { print $1 }'
	else
		timeout 3 "$prog" checkpoints --set "$_vb_set" "${sd[@]}" 2>/dev/null | awk '{ print $1 }'
	fi
}

# _vmaback_in WORD LIST: WORD is one of the words of LIST.
_vmaback_in() {
	local x
	for x in $2; do
		[ "$x" = "$1" ] && return 0
	done
	return 1
}

_vmaback_files() {
	local IFS=$'\n'
	compopt -o filenames 2>/dev/null
	COMPREPLY=($(compgen -f -- "$1"))
}

_vmaback_dirs() {
	local IFS=$'\n'
	compopt -o filenames 2>/dev/null
	COMPREPLY=($(compgen -d -- "$1"))
}

_vmaback_words() {
	local IFS=$' \t\n'
	COMPREPLY=($(compgen -W "$1" -- "$2"))
}

# _vmaback_name_file NAMES CUR: NAME=FILE: a name of NAMES (one per line)
# followed by '=', then a file name after the '='.
_vmaback_name_file() {
	if [[ $2 == *=* ]]; then
		local name=${2%%=*}
		_vmaback_files "${2#*=}"
		COMPREPLY=("${COMPREPLY[@]/#/$name=}")
	else
		compopt -o nospace 2>/dev/null
		local IFS=$'\n'
		COMPREPLY=($(compgen -S = -W "$1" -- "$2"))
	fi
}

# _vmaback_names LIST CUR: NAME[,NAME...] completion of the part after the last comma.
_vmaback_names() {
	local done_part="" last=$2 IFS=$'\n'
	if [[ $2 == *,* ]]; then
		done_part=${2%,*},
		last=${2##*,}
	fi
	COMPREPLY=($(compgen -P "$done_part" -W "$1" -- "$last"))
}

# _vmaback_scan CMD: from the words before the cursor: the positional
# arguments (_vb_pos), --set (_vb_set) and --state-dir (_vb_state_dir).
_vmaback_scan() {
	local cmd=$1 i w argopts
	eval "argopts=\$_vmaback_arg_$cmd"
	_vb_pos=() _vb_set="" _vb_state_dir=""
	for ((i = _vb_cmd_idx + 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if _vmaback_in "$w" "$argopts"; then
			local v_i=$((i + 1))
			[ "${COMP_WORDS[v_i]}" = = ] && v_i=$((v_i + 1))
			[ "$v_i" -lt "$COMP_CWORD" ] || break
			case $w in
			--set) _vb_set=${COMP_WORDS[v_i]} ;;
			--state-dir) _vb_state_dir=${COMP_WORDS[v_i]} ;;
			esac
			i=$v_i
			continue
		fi
		case $w in
		-*) ;;
		*) _vb_pos+=("$w") ;;
		esac
	done
}

# _vmaback_value CMD OPT CUR: completes the value of OPT; false if OPT takes none.
_vmaback_value() {
	local cmd=$1 opt=$2 cur=$3 prog=${COMP_WORDS[0]}
	case $cmd:$opt in
	backup:--mode) _vmaback_words "auto full incremental differential" "$cur" ;;
	backup:--progress) _vmaback_words "auto bar log none" "$cur" ;;
	*:--compress) _vmaback_words "none zstd" "$cur" ;;
	*:--zstd-level) _vmaback_words "$(seq 1 19)" "$cur" ;;
	backup:--zstd-threads) _vmaback_words "0 1 2 4 8" "$cur" ;;
	backup:--bwlimit) _vmaback_words "800K 10M 50M 100M 1G" "$cur" ;;
	backup:--lockwait) _vmaback_words "1 5 10 30 60 180" "$cur" ;;
	backup:--max-chain) _vmaback_words "7 14 30 31" "$cur" ;;
	backup:--full-every) _vmaback_words "7 14 30" "$cur" ;;
	backup:--threshold) _vmaback_words "10M 100M 1G" "$cur" ;;
	*:--domain) _vmaback_words "$(virsh -q list --name 2>/dev/null)" "$cur" ;;
	backup:--domains) _vmaback_words "$(virsh -q list --all --name 2>/dev/null)" "$cur" ;;
	*:--connect) _vmaback_words "qemu:///system qemu:///session" "$cur" ;;
	backup:--drive | backup:-d)
		_vmaback_name_file $'drive-scsi0\ndrive-scsi1\ndrive-virtio0\ndrive-virtio1\ndrive-sata0\ndrive-ide0\ndrive-efidisk0' "$cur" ;;
	backup:--output-cmd | backup:--checkpoint | backup:--vmid | backup:--name-template | \
		backup:--notes | backup:--hook | backup:--bitmap) COMPREPLY=() ;;
	prune:--keep-*) _vmaback_words "0 1 2 3 4 5 6 7 12 24 30" "$cur" ;;
	*:--set) _vmaback_words "$(_vmaback_sets)" "$cur" ;;
	*:--state-dir | *:--dumpdir | restore:--to | serve:--cache-dir | serve:--overlay) _vmaback_dirs "$cur" ;;
	backup:--since | checkpoints:--remove | verify:--checkpoint)
		_vmaback_words "$(_vmaback_ckpts "$prog")" "$cur" ;;
	serve:--port | serve:--bind) COMPREPLY=() ;;
	extract:-d | extract:--drive | restore:-d | restore:--drive | serve:-d | serve:--drive)
		_vmaback_names "$(_vmaback_list "$prog" "${_vb_pos[0]}" DEV)" "$cur" ;;
	restore:--target) _vmaback_name_file "$(_vmaback_list "$prog" "${_vb_pos[0]}" DEV)" "$cur" ;;
	config:-c | config:--config) local IFS=$'\n'
		COMPREPLY=($(compgen -W "$(_vmaback_list "$prog" "${_vb_pos[0]}" CFG)" -- "$cur")) ;;
	*) _vmaback_files "$cur" ;; # -o, --config, --log-file, --config-file
	esac
}

_vmaback() {
	local cur prev cmd i w opts argopts prog=${COMP_WORDS[0]}
	local -a _vb_pos
	local _vb_set _vb_state_dir _vb_cmd_idx=0
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=""
	[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}

	# The command is the first word that is not a global option.
	cmd=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; _vb_cmd_idx=$i; break ;;
		esac
	done
	if [ -z "$cmd" ]; then
		case $cur in
		-*) _vmaback_words "--help --version" "$cur" ;;
		*) _vmaback_words "$_vmaback_commands" "$cur" ;;
		esac
		return 0
	fi
	case " $_vmaback_commands " in *" $cmd "*) ;; *) return 0 ;; esac
	if [ "$cmd" = help ]; then
		[ "$COMP_CWORD" -eq $((_vb_cmd_idx + 1)) ] && _vmaback_words "$_vmaback_commands" "$cur"
		return 0
	fi
	_vmaback_scan "$cmd"
	eval "opts=\$_vmaback_opts_$cmd; argopts=\$_vmaback_arg_$cmd"

	# --drive NAME=PATH and --target NAME=PATH: bash splits at '='
	# (COMP_WORDBREAKS): [--drive, NAME, =, PATH].
	if [ "$prev" = = ] && [ "$COMP_CWORD" -ge 3 ]; then
		w=${COMP_WORDS[COMP_CWORD - 3]}
		case $cmd:$w in
		backup:--drive | backup:-d | restore:--target)
			_vmaback_files "$cur"
			return 0
			;;
		esac
		# --opt=VALUE
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	elif [ "$cur" = = ]; then
		cur=""
	fi
	if _vmaback_in "$prev" "$argopts"; then
		_vmaback_value "$cmd" "$prev" "$cur"
		return 0
	fi

	case $cur in
	-*)
		_vmaback_words "$opts" "$cur"
		return 0
		;;
	esac
	# Positional arguments.
	case $cmd in
	extract)
		if [ "${#_vb_pos[@]}" -eq 1 ]; then
			_vmaback_dirs "$cur"
		else
			_vmaback_files "$cur"
		fi
		;;
	commit)
		_vmaback_words "$(_vmaback_ckpts "$prog" pending)" "$cur"
		;;
	key)
		if [ "${#_vb_pos[@]}" -eq 0 ]; then
			_vmaback_words "create public id" "$cur"
		else
			_vmaback_files "$cur"
		fi
		;;
	checkpoints | ls | prune | recover) ;;
	*)
		_vmaback_files "$cur"
		;;
	esac
	return 0
}

complete -F _vmaback vmaback
