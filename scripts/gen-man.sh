#!/bin/sh
# gen-man.sh: writes the manual page from doc/vmaback.1.in, putting each
# command's --help (as the binary prints it) in place of @COMMANDS@, so
# that the man page and --help never disagree.
#
# Usage: sh scripts/gen-man.sh VMABACK TEMPLATE > vmaback.1
set -eu

vb=$1
template=$2

# roff-safe preformatted text: backslashes, hyphens, leading dots/quotes.
roff() {
	sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

commands=$("$vb" --help | awk '/^Commands:/ { on = 1; next } on && NF == 0 { exit }
	on && $1 != "help" { print $1 }')
version=$("$vb" --version | awk '{ print $2 }')

body=$(mktemp)
trap 'rm -f "$body"' EXIT
for c in $commands; do
	printf '.SS %s\n.nf\n' "$c"
	"$vb" "$c" --help | roff
	printf '.fi\n'
done >"$body"

awk -v body="$body" -v version="$version" '
	/^@COMMANDS@$/ { while ((getline l < body) > 0) print l; next }
	{ gsub(/@VERSION@/, version); print }' "$template"
