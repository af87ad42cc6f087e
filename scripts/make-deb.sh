#!/bin/sh
# make-deb.sh OUTDIR: builds vmaback's Debian package from this checkout in a
# copy under OUTDIR (the tree's own build/ stays as it is) and leaves
# OUTDIR/vmaback_VERSION_ARCH.deb. Needs dpkg-dev and debhelper
# (scripts/deps.sh installs them).
set -eu
out=$(realpath -m "$1")
src=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
mkdir -p "$out/src"
# the checkout's files (tracked, and new ones not ignored), nothing built;
# outside a git checkout, the tree without its build directories
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 tar cf - --no-recursion)
else
	(cd "$src" && tar cf - --exclude='./build*' .)
fi | (cd "$out/src" && tar xf -)
# The package's make is its own: nothing of a calling make (make check's
# B=build-san, sanitizer flags, job server) may reach it.
(cd "$out/src" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u B \
	-u EXTRA_CFLAGS -u EXTRA_LDFLAGS dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1) || {
	tail -40 "$out/build.log" >&2
	echo "make-deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
	exit 1
}
ls "$out"/vmaback_*.deb
