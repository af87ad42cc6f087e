# t_interrupts.sh: SIGTERM and SIGINT in the middle of a backup of a set
# (slowed down with --bwlimit): the documented status, no archive, no
# temporary, the state unchanged; a second signal exits at once.
. "$T_SRCDIR/lib.sh"

# setup: big.raw (40 MiB of random data), committed as checkpoint c1 of set
# s in st/; out/ is empty. A full backup at 5 MiB/s then runs for 8 s.
setup() {
	rand big.raw $((40 * 1048576))
	SD=$PWD/st
	mkdir out
	run vb backup --set s --state-dir "$SD" -d drive-scsi0=big.raw --checkpoint c1 -o c1.vma --quiet
	expect_rc 0
	state_keep st/s before
}

# slow_backup ARGS...: the 8 s backup in the background (PID); returns once
# it has been running for a second.
slow_backup() {
	bg "$VMABACK" backup --set s --state-dir "$SD" -d drive-scsi0=big.raw --mode full \
		--bwlimit 5M "$@"
	sleep 1
	kill -0 "$PID" 2>/dev/null || fail "the backup ended within a second (status $(wait "$PID"; echo $?))"
}

# nothing_left: no archive or temporary in out/ or here, the state unchanged.
nothing_left() {
	empty_dir out
	entries . big.raw c1.vma out st
	state_kept st/s before
}

sigterm() {
	setup
	slow_backup -o out/a.vma
	[ -n "$(ls -A out)" ] || fail "no temporary archive in out/ while the backup runs"
	kill -TERM "$PID"
	bg_wait 20
	expect_rc 143
	expect_msg backup 'drive drive-scsi0: interrupted'
	expect_err '^INFO: backup failed: nothing was published and the checkpoints are unchanged'
	nothing_left
	# the set still works, from the old state
	run vb backup --set s --state-dir "$SD" -d drive-scsi0=big.raw -o out/i.vma --quiet --json
	expect_rc 0
	[ "$(jq_py "$OUT" 'd["kind"]')" = incremental ] || fail "the run after SIGTERM is not an incremental"
}

sigint() {
	setup
	slow_backup -o out/a.vma.zst
	kill -INT "$PID"
	bg_wait 20
	expect_rc 130
	expect_msg backup 'interrupted'
	nothing_left
}

# Into an output command: it is stopped too, and nothing is committed.
sigterm_output_cmd() {
	setup
	slow_backup --output-cmd "cat > $PWD/out/stored.vma"
	kill -TERM "$PID"
	bg_wait 20
	expect_rc 143
	# whatever the command stored is not a complete archive
	if [ -e out/stored.vma ]; then
		run vb verify out/stored.vma
		[ "$RC" -ne 0 ] || fail "the interrupted stream stored by the command verifies"
		rm out/stored.vma
	fi
	nothing_left
}

# nothing_valid_left: after an exit at once (a second signal), as
# nothing_left, except that the set may hold leftover files, which the next
# command on the set removes (state.json itself must be unchanged at once).
nothing_valid_left() {
	empty_dir out
	entries . big.raw c1.vma out st
	cmp -s "$T_WORK/.io/$T_CASE/before.state" st/s/state.json || fail "st/s/state.json changed"
	run vb checkpoints --set s --state-dir "$SD"
	expect_rc 0
	expect_out '^c1 '
	state_kept st/s before
}

# Two SIGTERMs in a row: exit 143 at once; no archive, no temporary, state unchanged.
double_sigterm() {
	setup
	slow_backup -o out/a.vma
	kill -TERM "$PID"
	sleep 0.02
	kill -TERM "$PID" 2>/dev/null || true
	bg_wait 5
	expect_rc 143
	[ "$WAITED_MS" -lt 3000 ] || fail "exit took $WAITED_MS ms after two signals"
	nothing_valid_left
}

# A consumer that stops reading (a hung ssh) blocks the backup in a write;
# one SIGTERM (systemd stopping the unit) must still end it, with 143.
sigterm_stalled_consumer() {
	setup
	slow_backup --output-cmd "echo \$\$ >$PWD/consumer.pid; exec sleep 60"
	local cpid
	cpid=$(cat consumer.pid)
	rm consumer.pid
	kill -TERM "$PID"
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" # the second signal ends it and its consumer
		bg_wait 5
		kill "$cpid" 2>/dev/null || true
		fail "one SIGTERM did not end a backup whose output command stopped reading (5 s)"
	fi
	bg_wait 5
	expect_rc 143
	nothing_valid_left
}

# A consumer that stops reading blocks the backup in a write; a second
# signal still ends it at once, and stops the consumer's process group.
double_sigterm_stalled_consumer() {
	setup
	slow_backup --output-cmd "echo \$\$ >$PWD/consumer.pid; exec sleep 60"
	[ -s consumer.pid ] || fail "the output command did not start"
	local cpid
	cpid=$(cat consumer.pid)
	rm consumer.pid
	kill -TERM "$PID"
	sleep 0.5
	kill -TERM "$PID" 2>/dev/null || true
	bg_wait 5
	expect_rc 143
	[ "$WAITED_MS" -lt 3000 ] || fail "exit took $WAITED_MS ms after the second signal"
	local i
	for ((i = 0; i < 40; i++)); do
		gone "$cpid" && break
		sleep 0.05
	done
	gone "$cpid" || { kill -9 "$cpid"; fail "the output command (pid $cpid) still runs"; }
	nothing_valid_left
}

# The signals that end a process by default; HUP is left out where the
# caller ignores it (nohup), which vmaback respects.
fatal_signals() {
	local ign
	ign=$(awk '/^SigIgn:/ { print $2 }' /proc/$$/status)
	[ $((0x$ign & 1)) -ne 0 ] || echo HUP
	echo INT QUIT TERM USR1 USR2 ALRM XCPU XFSZ
}

# Every fatal signal, in the middle of a backup to a file, a backup to an
# output command, an extract from a stalled pipe and a list (a command that
# does not poll): exit 128+N, no temporary, no final name, the consumer
# killed before it could see the end of its input and exit 0.
every_signal() {
	setup
	mkfifo in.fifo
	local sig n cpid wpid i
	for sig in $(fatal_signals); do
		n=$(kill -l "$sig")
		bg "$VMABACK" backup --set s --state-dir "$SD" -d drive-scsi0=big.raw --mode full \
			--bwlimit 5M -o out/a.vma
		sleep 0.3
		kill -s "$sig" "$PID"
		bg_wait 20
		LAST="backup -o FILE, SIG$sig"
		expect_rc $((128 + n))
		empty_dir out
		entries . big.raw c1.vma in.fifo out st
		state_kept st/s before

		bg "$VMABACK" backup --set s --state-dir "$SD" -d drive-scsi0=big.raw --mode full \
			--bwlimit 5M --output-cmd "echo \$\$ >$PWD/consumer.pid; cat >$PWD/out/stored.vma; echo \$? >$PWD/consumer.rc"
		sleep 0.3
		kill -s "$sig" "$PID"
		bg_wait 20
		LAST="backup --output-cmd, SIG$sig"
		expect_rc $((128 + n))
		cpid=$(cat consumer.pid)
		for ((i = 0; i < 100; i++)); do
			gone "$cpid" && break
			sleep 0.05
		done
		gone "$cpid" || { kill -9 "$cpid"; fail "SIG$sig: the output command still runs"; }
		[ ! -e consumer.rc ] || fail "SIG$sig: the output command exited $(cat consumer.rc) instead of being killed"
		rm -f consumer.pid out/stored.vma
		empty_dir out
		entries . big.raw c1.vma in.fifo out st
		state_kept st/s before

		(head -c 3000000 c1.vma; exec sleep 30) >in.fifo &
		wpid=$!
		RUN_STDIN=in.fifo bg "$VMABACK" extract - x
		sleep 0.3
		kill -s "$sig" "$PID"
		bg_wait 20
		kill "$wpid" 2>/dev/null || true
		wait "$wpid" 2>/dev/null || true
		LAST="extract - DIR, SIG$sig"
		expect_rc $((128 + n))
		[ ! -e x ] || fail "SIG$sig: extract left $(ls -A x)"

		(head -c 3000 c1.vma; exec sleep 30) >in.fifo &
		wpid=$!
		RUN_STDIN=in.fifo bg "$VMABACK" list -
		sleep 0.3
		kill -s "$sig" "$PID"
		bg_wait 20
		kill "$wpid" 2>/dev/null || true
		wait "$wpid" 2>/dev/null || true
		LAST="list -, SIG$sig"
		expect_rc $((128 + n))
	done
	rm in.fifo
	nothing_left
}

tcase sigterm sigterm
tcase sigint sigint
tcase sigterm_output_cmd sigterm_output_cmd
tcase double_sigterm double_sigterm
tcase sigterm_stalled_consumer sigterm_stalled_consumer
tcase double_sigterm_stalled_consumer double_sigterm_stalled_consumer
tcase every_signal every_signal
