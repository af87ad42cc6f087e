# t_progress.sh: what a person or a log sees: the progress bar on a
# terminal, INFO lines without one, --quiet, --progress, --log-file, the
# --json summary, and --bwlimit (a lower bound on time; holes are free).
. "$T_SRCDIR/lib.sh"

# on_tty CMD...: runs CMD on a pseudo-terminal (script from util-linux);
# what the terminal showed in $OUT (stdout and stderr together), status in RC.
on_tty() {
	command -v script >/dev/null 2>&1 || skip "script (util-linux) is not installed"
	local q="" a
	for a in "$@"; do
		q="$q $(printf '%q' "$a")"
	done
	LAST="(on a terminal)$q"
	RC=0
	script -qec "$q" /dev/null </dev/null >"$OUT" 2>"$ERR" || RC=$?
}

# The line for 40 MiB of random data read at 40 MiB/s: about a second, so
# the bar is redrawn a few times.
tty_bar() {
	rand big.raw $((40 * 1048576))
	rand small.raw 100000
	on_tty "$VMABACK" backup -d drive-scsi0=big.raw -d drive-scsi1=small.raw -o a.vma --bwlimit 40M
	expect_rc 0
	tr '\r' '\n' <"$OUT" >screen
	grep -Eq 'drive-scsi0 \(1/2\): +[0-9]+% [0-9.]+ [KMG]?i?B of 40\.0 MiB, .*/s, ETA [0-9:-]+' screen ||
		fail "no progress line with percent, size, rate and ETA for drive-scsi0 on the terminal"
	grep -Eq 'drive-scsi1 \(2/2\): +100% ' screen || fail "no progress line for drive-scsi1"
	grep -q 'zero ' screen || fail "the progress line does not show zero data"
	grep -q '^INFO: [0-9]*% ' screen && fail "INFO percent lines on a terminal (expected the bar)"
	run vb verify a.vma
	expect_rc 0
	# --quiet: nothing at all on the terminal
	on_tty "$VMABACK" backup -d drive-scsi1=small.raw -o b.vma --quiet
	expect_rc 0
	[ ! -s "$OUT" ] || fail "backup --quiet printed on a terminal: $(head -c 200 "$OUT" | cat -v)"
	# --progress none: the summary, no bar
	on_tty "$VMABACK" backup -d drive-scsi1=small.raw -o c.vma --progress none
	expect_rc 0
	grep -q 'finished' "$OUT" || fail "no summary with --progress none"
	grep -Eq '[0-9]+%' "$OUT" && fail "a progress line with --progress none"
	# --progress log on a terminal: INFO lines, no bar
	on_tty "$VMABACK" backup -d drive-scsi1=small.raw -o d.vma --progress log
	expect_rc 0
	grep -Eq '^INFO: 100% ' "$OUT" || fail "no INFO line with --progress log on a terminal"
	grep -q 'ETA' "$OUT" && fail "a bar with --progress log"
	return 0
}

# Not a terminal: vzdump-like INFO lines on stderr, never on stdout.
log_lines() {
	rand big.raw $((20 * 1048576))
	run vb backup -d drive-scsi0=big.raw -o a.vma
	expect_rc 0
	[ ! -s "$OUT" ] || fail "backup printed on stdout"
	grep -Eq '^INFO: [0-9]{1,3}% \([0-9.]+ [KMG]?i?B of 20\.0 MiB\) in [0-9]+s, read: [0-9.]+ [KMG]?i?B/s, write: [0-9.]+ [KMG]?i?B/s$' "$ERR" ||
		fail "no vzdump-like INFO progress line on stderr"
	expect_err '^INFO: 100% '
	expect_err '^INFO: full backup of 1 drive \(20\.0 MiB\) finished in [0-9.]+s: read 20\.0 MiB'
	expect_err "^INFO: archive a\\.vma: "
	grep -q "$(printf '\r')" "$ERR" && fail "carriage returns on stderr without a terminal"
	grep -q "$(printf '\033')" "$ERR" && fail "escape sequences on stderr without a terminal"
	# one line per 10% at most (and per 10 s): no flood
	[ "$(grep -c '^INFO: [0-9]*% ' "$ERR")" -le 11 ] || fail "more than 11 progress lines for a short backup"
	# -o -: the archive alone on stdout, the lines on stderr
	run vb backup -d drive-scsi0=big.raw -o -
	expect_rc 0
	is_vma "$OUT"
	expect_err '^INFO: 100% '
	cp "$OUT" piped.vma
	run vb verify piped.vma
	expect_rc 0
	# --quiet: stdout and stderr empty on success
	run vb backup -d drive-scsi0=big.raw -o b.vma --quiet
	expect_rc 0
	[ ! -s "$ERR" ] && [ ! -s "$OUT" ] || fail "--quiet printed something"
	# --progress none: the summary without progress lines
	run vb backup -d drive-scsi0=big.raw -o c.vma --progress none
	expect_rc 0
	expect_err 'finished'
	grep -Eq '^INFO: [0-9]+% ' "$ERR" && fail "progress lines with --progress none"
	# an error under --quiet is still printed
	run vb backup -d drive-scsi0=nosuch.raw -o d.vma --quiet
	expect_fail 2 backup 'nosuch\.raw'
}

# --log-file: the same lines with timestamps, appended, mode 0600.
log_file() {
	rand disk.raw 300000
	umask 022
	run vb backup -d d=disk.raw -o a.vma --log-file run.log --quiet
	expect_rc 0
	[ ! -s "$ERR" ] || fail "--quiet --log-file printed on stderr"
	mode_is run.log 600
	local ts='^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} '
	grep -Evq "$ts" run.log && fail "a line of the log has no timestamp: $(grep -Ev "$ts" run.log | head -1)"
	grep -Eq "${ts}INFO: starting backup of 1 drive to a\\.vma$" run.log || fail "no start line in the log"
	grep -Eq "${ts}INFO: 100% " run.log || fail "no progress line in the log"
	grep -Eq "${ts}INFO: full backup of 1 drive .* finished in " run.log || fail "no summary in the log"
	grep -Eq "${ts}INFO: archive a\\.vma: .*sha256 $(sha256sum <a.vma | cut -d' ' -f1)\$" run.log ||
		fail "the log does not give the archive's sha256"
	local n
	n=$(wc -l <run.log)
	# appended, and a failure is logged with its message
	run vb backup -d d=disk.raw -o a.vma --log-file run.log --quiet
	expect_fail 2 backup 'a\.vma.*exists'
	run vb backup -d d=disk.raw -o b.vma --log-file run.log
	expect_rc 0
	[ "$(wc -l <run.log)" -gt $((n + 3)) ] || fail "the second run did not append to the log"
	[ "$(head -1 run.log | cut -c21-)" = "INFO: starting backup of 1 drive to a.vma" ] ||
		fail "the log's first line was overwritten"
	grep -Eq "${ts}INFO: archive b\\.vma: " run.log || fail "the second run's summary is not in the log"
	# what went to stderr is in the log, line for line, after the timestamp
	grep -E '^INFO: (starting|drive|full|archive)' "$ERR" >stderr.lines
	while IFS= read -r l; do
		grep -Fq " $l" run.log || fail "stderr line not in the log: $l"
	done <stderr.lines
	# a log in a missing directory is a usage error, and nothing is written
	run vb backup -d d=disk.raw -o c.vma --log-file nodir/run.log
	expect_fail 2 backup 'nodir/run\.log'
	absent c.vma
}

# --json: one JSON object, on stdout, or on stderr when stdout is the archive.
json_summary() {
	command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
	rand disk.raw $((2 * 1048576))
	truncate -s $((6 * 1048576)) disk.raw
	run vb backup -d drive-scsi0=disk.raw -o a.vma.zst --json --quiet
	expect_rc 0
	[ "$(wc -l <"$OUT")" = 1 ] || fail "--json printed $(wc -l <"$OUT") lines, expected one"
	python3 - "$OUT" a.vma.zst "$(sha256sum <a.vma.zst | cut -d' ' -f1)" <<'EOF' || fail "the --json summary is not right"
import json, os, sys
d = json.load(open(sys.argv[1]))
for k in ("status", "kind", "checkpoint_state", "bytes_read", "output_bytes", "sha256",
          "uuid", "drives", "total_size", "bytes_zero", "seconds"):
    assert k in d, "no key %s in %s" % (k, d)
assert d["status"] == "ok", d
assert d["kind"] == "full", d
assert d["checkpoint_state"] == "none", d
assert d["drives"] == 1, d
assert d["total_size"] == 6 * 1048576, d
assert d["bytes_read"] == 2 * 1048576, d          # the hole is not read
assert d["output_bytes"] == os.path.getsize(sys.argv[2]), d
assert d["sha256"] == sys.argv[3], (d["sha256"], sys.argv[3])
EOF
	# with a set: the checkpoint, committed
	run vb backup --set s --state-dir st -d drive-scsi0=disk.raw -o b.vma --json --quiet --checkpoint k1
	expect_rc 0
	[ "$(jq_py "$OUT" 'd["checkpoint"] + " " + d["checkpoint_state"] + " " + d["kind"]')" = "k1 committed full" ] ||
		fail "--json with a set: $(cat "$OUT")"
	# an incremental: one changed cluster, the rest unchanged (not zeros)
	rand one.bin 65536
	dd if=one.bin of=disk.raw bs=64K seek=1 conv=notrunc status=none
	run vb backup --set s --state-dir st -d drive-scsi0=disk.raw -o i.vma --json --quiet --checkpoint k2
	expect_rc 0
	[ "$(jq_py "$OUT" '"%d %d %d" % (d["dirty_clusters"], d["bytes_unchanged"], d["bytes_zero"])')" = \
		"1 $((6 * 1048576 - 65536)) 0" ] || fail "--json of an incremental: $(cat "$OUT")"
	# -o -: the JSON on stderr (alone, with --quiet), the archive on stdout
	run vb backup -d drive-scsi0=disk.raw -o - --json --quiet
	expect_rc 0
	is_vma "$OUT"
	[ "$(wc -l <"$ERR")" = 1 ] || fail "stderr holds more than the JSON summary"
	[ "$(jq_py "$ERR" 'd["sha256"]')" = "$(sha256sum <"$OUT" | cut -d' ' -f1)" ] ||
		fail "sha256 of -o - is not that of the bytes on stdout"
	[ "$(jq_py "$ERR" 'd["output_bytes"]')" = "$(stat -c %s "$OUT")" ] ||
		fail "output_bytes of -o - is not the size of stdout"
}

# --bwlimit: 40 MiB of data at 20 MiB/s cannot take less than 1.8 s.
bwlimit_lower_bound() {
	rand big.raw $((40 * 1048576))
	local t0 ms
	t0=$(date +%s%N)
	run vb backup -d d=big.raw -o a.vma --bwlimit 20M --quiet
	ms=$((($(date +%s%N) - t0) / 1000000))
	expect_rc 0
	[ "$ms" -ge 1800 ] || fail "40 MiB at --bwlimit 20M took $ms ms, less than 1800"
	# a bare number is KiB/s: 2 MiB at 2048 (2 MiB/s; 2048 bytes/s would take hours)
	head -c $((2 * 1048576)) big.raw >two.raw
	t0=$(date +%s%N)
	run vb backup -d d=two.raw -o b.vma --bwlimit 2048 --quiet
	ms=$((($(date +%s%N) - t0) / 1000000))
	expect_rc 0
	[ "$ms" -ge 900 ] || fail "2 MiB at --bwlimit 2048 (KiB/s) took $ms ms, less than 900"
	run vb extract a.vma x --quiet
	expect_rc 0
	same big.raw x/disk-d.raw
	# bad rates: exit 2
	local r
	for r in 0 abc 5X -1 ""; do
		run vb backup -d d=two.raw -o c.vma --bwlimit "$r"
		expect_fail 2 backup "--bwlimit"
	done
	absent c.vma
}

# Holes cost nothing: 1 GiB with 4 MiB of data at 20 MiB/s is far below the
# 51 s that reading it all would take.
bwlimit_holes_free() {
	: >sparse.raw
	truncate -s 1G sparse.raw
	put sparse.raw $((500 * 1048576)) $((4 * 1048576))
	local t0 ms
	t0=$(date +%s%N)
	run vb backup -d d=sparse.raw -o a.vma --bwlimit 20M --quiet
	ms=$((($(date +%s%N) - t0) / 1000000))
	expect_rc 0
	[ "$ms" -lt 20000 ] || fail "1 GiB with 4 MiB of data at 20M took $ms ms: holes are charged"
}

tcase tty_bar tty_bar
tcase log_lines log_lines
tcase log_file log_file
tcase json_summary json_summary
tcase bwlimit_lower_bound bwlimit_lower_bound
tcase bwlimit_holes_free bwlimit_holes_free
