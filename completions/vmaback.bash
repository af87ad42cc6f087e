# vmaback.bash: bash completion for vmaback: commands, options, file names,
# --compress values, and for `extract -d` the drive names of the archive on the line.
# Self-contained: works with or without the bash-completion package.

_vmaback_commands="backup list config verify extract help"

# The drive names of an archive (its header only: cheap, even for .zst).
_vmaback_drives() {
	local prog=$1 archive=$2
	[ -n "$archive" ] && [ "$archive" != - ] && [ -r "$archive" ] || return 0
	command -v "$prog" >/dev/null 2>&1 || prog=vmaback
	timeout 3 "$prog" list "$archive" 2>/dev/null |
		sed -n 's/^DEV: dev_id=[0-9]* size: [0-9]* devname: //p'
}

# The blob names of an archive, for `config -c`.
_vmaback_configs() {
	local prog=$1 archive=$2
	[ -n "$archive" ] && [ "$archive" != - ] && [ -r "$archive" ] || return 0
	command -v "$prog" >/dev/null 2>&1 || prog=vmaback
	timeout 3 "$prog" list "$archive" 2>/dev/null |
		sed -n 's/^CFG: size: [0-9]* name: //p'
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

_vmaback() {
	local cur prev cmd i w archive="" prog=${COMP_WORDS[0]}
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=""
	[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}

	# The command is the first word that is not a global option.
	cmd=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [ -z "$cmd" ]; then
		case $cur in
		-*) COMPREPLY=($(compgen -W "--help --version" -- "$cur")) ;;
		*) COMPREPLY=($(compgen -W "$_vmaback_commands" -- "$cur")) ;;
		esac
		return 0
	fi

	case $cmd in
	backup)
		# --drive NAME=PATH: bash splits "NAME=PATH" at '=' (COMP_WORDBREAKS).
		if [ "$prev" = = ] && [ "$COMP_CWORD" -ge 3 ] &&
			[ "${COMP_WORDS[COMP_CWORD - 3]}" = --drive ]; then
			_vmaback_files "$cur"
			return 0
		fi
		if [ "$prev" = --drive ] && [[ $cur == *=* ]]; then
			local name=${cur%%=*}
			_vmaback_files "${cur#*=}"
			COMPREPLY=("${COMPREPLY[@]/#/$name=}")
			return 0
		fi
		case $prev in
		--drive)
			compopt -o nospace 2>/dev/null
			COMPREPLY=($(compgen -W "drive-scsi0= drive-scsi1= drive-virtio0= drive-virtio1= drive-sata0= drive-ide0= drive-efidisk0=" -- "$cur"))
			return 0
			;;
		--config | -o)
			_vmaback_files "$cur"
			return 0
			;;
		--compress)
			COMPREPLY=($(compgen -W "none zstd" -- "$cur"))
			return 0
			;;
		--zstd-level)
			COMPREPLY=($(compgen -W "$(seq 1 19)" -- "$cur"))
			return 0
			;;
		--zstd-threads)
			COMPREPLY=($(compgen -W "0 1 2 4 8" -- "$cur"))
			return 0
			;;
		esac
		COMPREPLY=($(compgen -W "--drive --config -o --force --compress --zstd-level --zstd-threads --quiet --json --help" -- "$cur"))
		return 0
		;;
	list)
		case $cur in
		-*) COMPREPLY=($(compgen -W "--json --help" -- "$cur")) ;;
		*) _vmaback_files "$cur" ;;
		esac
		return 0
		;;
	verify)
		case $cur in
		-*) COMPREPLY=($(compgen -W "--quiet --help" -- "$cur")) ;;
		*) _vmaback_files "$cur" ;;
		esac
		return 0
		;;
	config)
		for ((i = 2; i < COMP_CWORD; i++)); do
			w=${COMP_WORDS[i]}
			[ "${COMP_WORDS[i - 1]}" = -c ] && continue
			case $w in -*) ;; *) archive=$w; break ;; esac
		done
		if [ "$prev" = -c ]; then
			local IFS=$'\n'
			COMPREPLY=($(compgen -W "$(_vmaback_configs "$prog" "$archive")" -- "$cur"))
			return 0
		fi
		case $cur in
		-*) COMPREPLY=($(compgen -W "-c --help" -- "$cur")) ;;
		*) _vmaback_files "$cur" ;;
		esac
		return 0
		;;
	extract)
		local npos=0
		for ((i = 2; i < COMP_CWORD; i++)); do
			w=${COMP_WORDS[i]}
			[ "${COMP_WORDS[i - 1]}" = -d ] && continue
			case $w in
			-*) ;;
			*)
				npos=$((npos + 1))
				[ $npos -eq 1 ] && archive=$w
				;;
			esac
		done
		if [ "$prev" = -d ]; then
			# NAME[,NAME...]: complete the part after the last comma.
			local done_part="" last=$cur
			if [[ $cur == *,* ]]; then
				done_part=${cur%,*},
				last=${cur##*,}
			fi
			local IFS=$'\n'
			COMPREPLY=($(compgen -P "$done_part" -W "$(_vmaback_drives "$prog" "$archive")" -- "$last"))
			return 0
		fi
		case $cur in
		-*) COMPREPLY=($(compgen -W "-d --help" -- "$cur")) ;;
		*)
			if [ $npos -eq 1 ]; then
				_vmaback_dirs "$cur"
			else
				_vmaback_files "$cur"
			fi
			;;
		esac
		return 0
		;;
	help)
		COMPREPLY=($(compgen -W "$_vmaback_commands" -- "$cur"))
		return 0
		;;
	esac
	return 0
}

complete -F _vmaback vmaback
