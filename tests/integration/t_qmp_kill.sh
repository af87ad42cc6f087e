# t_qmp_kill.sh: a kill loop of `vmaback backup --qmp` runs: QMP_KILL_RUNS
# runs (default 8; `make stress` runs more) of a set on a running VM, each
# SIGKILLed after a random delay (seed QMP_KILL_SEED) or left to finish,
# with guest writes between runs. After each kill the next run recovers and
# succeeds; after every successful run nothing of vmaback's is left in QEMU
# and every committed checkpoint restores to the guest's disks at its point
# in time (each new one at once, all of them again at the end).
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"
. "$T_SRCDIR/vm_lib.sh"

kill_loop() {
	local runs=${QMP_KILL_RUNS:-8} seed=${QMP_KILL_SEED:-3} i delay
	local killed=0 completed=0 recovered=0
	vm_setup kl virtio0:8 virtio1:12 virtio2:16
	vm_start
	gw virtio0:0:2M:0x11 virtio1:4M:2M:0x22 virtio2:8M:3M:0x33
	RANDOM=$seed
	VERIFIED=0
	for i in $(seq 1 "$runs"); do
		gwrand "$((seed * 1000 + i))" 20
		pit "k$i"
		LAST="backup --qmp (run $i)"
		bg "$VMABACK" backup --qmp "$S/qmp.sock" --set kl --state-dir "$PWD/st" \
			--checkpoint "k$i" -o "$PWD/k$i.vma" --bwlimit 8M
		delay=$((RANDOM % 900))
		sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
		kill -9 "$PID" 2>/dev/null || true
		RC=0
		{ wait "$PID"; } 2>/dev/null || RC=$? # no "Killed" notice
		case $RC in
		0) completed=$((completed + 1)) ;;
		137) killed=$((killed + 1)) ;;
		*) fail "run $i exited $RC: $(head -3 "$ERR")" ;;
		esac
		if [ "$RC" -eq 137 ]; then
			gwrand "$((seed * 1000 + 500 + i))" 5
			pit "r$i"
			vbq --checkpoint "r$i" -o "$PWD/r$i.vma"
			[ "$RC" -eq 0 ] || fail "the run after the kill of run $i (at ${delay} ms) exited $RC"
			recovered=$((recovered + 1))
		fi
		vm_clean
		VERIFY_NEW=1 verify_all
	done
	verify_all
	echo "    qmp kill loop: seed $seed: $runs runs, $killed killed, $completed completed, $recovered recoveries, $VERIFIED restores checked"
	[ "$runs" -lt 4 ] || [ "$killed" -gt 0 ] || fail "no run was killed: the kills all came too late"
	vm_quit
	shadow_is_disk
	no_write_error
}

tcase kill_loop kill_loop
