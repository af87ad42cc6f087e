# t_man.sh: the man page is generated from the commands' --help and must be
# up to date; it renders without groff warnings.
. "$T_SRCDIR/lib.sh"

ROOT=$(cd "$T_SRCDIR/../.." && pwd)

up_to_date() {
	sh "$ROOT/scripts/gen-man.sh" "$VMABACK" "$ROOT/doc/vmaback.1.in" >gen.1 ||
		fail "gen-man.sh failed"
	diff -u "$ROOT/doc/vmaback.1" gen.1 >man.diff ||
		fail "doc/vmaback.1 differs from the commands' --help: run 'make man' ($(head -c 600 man.diff))"
	local c
	for c in $("$VMABACK" --help | awk '/^Commands:/ { on = 1; next } on && NF == 0 { exit }
		on && $1 != "help" { print $1 }'); do
		grep -q "^\.SS $c\$" gen.1 || fail "the man page has no section for $c"
	done
}

renders() {
	command -v groff >/dev/null 2>&1 || skip "groff is not installed"
	groff -man -ww -z -Tutf8 "$ROOT/doc/vmaback.1" 2>warn.txt
	[ ! -s warn.txt ] || fail "groff warns: $(head -5 warn.txt)"
}

tcase up_to_date up_to_date
tcase renders renders
