#!/bin/sh
# check-layers.sh: every #include "..." of a module names the module itself,
# a module it may use (the Makefile's DEPS_ table, design.md §2), or a test
# helper, or common/ (header-only helpers below every module, which include
# no header of the project); and only a module's own files include its
# private *_int.h.
# Arguments: MODULE:DIR:DEP+DEP+... for each module.
set -eu
bad=0
dir_of() {
	for spec in $ALL; do
		m=${spec%%:*}; rest=${spec#*:}; d=${rest%%:*}
		[ "$m" = "$1" ] && { echo "$d"; return; }
	done
}
ALL="$*"
for spec in "$@"; do
	mod=${spec%%:*}; rest=${spec#*:}; dir=${rest%%:*}; deps=$(echo "${rest#*:}" | tr + ' ')
	allowed="$dir common"
	for d in $deps; do allowed="$allowed $(dir_of "$d")"; done
	for f in "$dir"/*.c "$dir"/*.h; do
		[ -e "$f" ] || continue
		grep -n '^#include "' "$f" | while IFS= read -r line; do
			inc=$(echo "$line" | sed 's/.*#include "\([^"]*\)".*/\1/')
			idir=${inc%/*}
			ok=0
			for a in $allowed; do [ "$idir" = "$a" ] && ok=1; done
			case "$inc" in *_int.h) [ "$idir" = "$dir" ] || ok=0 ;; esac
			if [ $ok = 0 ]; then
				echo "check-layers: $f:${line%%:*}: $mod may not include $inc" >&2
				echo x
			fi
		done
	done
done | grep -c x >/dev/null && bad=1
if grep -n '^#include "' common/*.h >&2; then
	echo "check-layers: common/ may include system headers only" >&2
	bad=1
fi
[ $bad = 0 ] || exit 1
echo "check-layers: every module includes only what design.md allows"
