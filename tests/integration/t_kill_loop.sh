# t_kill_loop.sh: the kill loop (tests/stress/kill_loop.py) in its short
# mode: backups of a set SIGKILLed at random points, KILL_RUNS times (default
# 50; the sanitizer build runs fewer) with the fixed seed KILL_SEED (6);
# after each kill nothing published or committed is lost. `make stress` runs
# the long mode.
. "$T_SRCDIR/lib.sh"

kill_loop() {
	command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
	[ -r /proc/self/io ] || skip "no /proc/PID/io to count written bytes"
	run python3 "$T_SRCDIR/../stress/kill_loop.py" --vmaback "$VMABACK" \
		--runs "${KILL_RUNS:-50}" --seed "${KILL_SEED:-6}" --work "$PWD/w"
	sed 's/^/    /' "$OUT" "$ERR"
	expect_rc 0
	expect_out '^kill_loop: seed [0-9]+: [0-9]+ runs started, [0-9]+ killed'
	grep -Eq ' 0 killed' "$OUT" && fail "no run was killed: the kills all came too late"
	rm -rf w
}

tcase kill_loop kill_loop
