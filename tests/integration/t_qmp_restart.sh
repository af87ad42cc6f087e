# t_qmp_restart.sh: `vmaback backup --qmp` when QEMU itself stops: quit
# and started again on the same disks (the bitmaps persist), or killed -9
# (its bitmaps come back inconsistent or missing). The next --mode auto run
# reads those disks whole and every committed checkpoint restores to the
# guest's disks at its point in time; --mode incremental fails instead.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"
. "$T_SRCDIR/vm_lib.sh"

# QEMU quit and started again on the same disks: the bitmaps persisted, the
# next incremental reads only what changed. QEMU killed -9: its bitmaps
# come back inconsistent (loaded at its start) or missing (made since);
# --mode incremental then fails and commits nothing, --mode auto reads
# those disks whole (an INFO line) and restores exactly.
qemu_killed() {
	vm_setup qk virtio0:8 virtio1:12 virtio2:16
	vm_start
	gwrand 3 20
	vbq_ok c1
	gwrand 4 20
	vm_quit
	vm_start
	vm_clean
	gwrand 5 20
	vbq_ok c2 --mode incremental --json
	bytes_read_at_most "$(vm touched iv.c2)"
	vm_quit
	vm_start # c2's bitmaps are loaded (in use) now

	local round before
	for round in inconsistent missing; do
		gwrand "$((6 + ${#round}))" 20
		# shellcheck disable=SC2086
		vm flush $VM_DEVS
		vm_kill9
		vm_start
		vm bitmaps >bitmaps.$round
		if [ "$round" = inconsistent ]; then
			grep -q 'vmaback/qk/.*inconsistent' bitmaps.$round ||
				fail "after kill -9: no inconsistent vmaback bitmap: $(cat bitmaps.$round)"
		else
			! grep -q 'vmaback/qk/' bitmaps.$round ||
				fail "after kill -9: a bitmap made by that QEMU is back: $(cat bitmaps.$round)"
		fi
		committed >before
		pit "i-$round"
		vbq --checkpoint "i-$round" -o "$PWD/i-$round.vma" --mode incremental
		[ "$RC" -ne 0 ] || fail "--mode incremental without a usable bitmap ($round) succeeded"
		committed >after
		same_list before after "the checkpoints before and after the failed incremental"
		absent "i-$round.vma"
		rm -rf "snap/i-$round"
		pit "a-$round"
		vbq --checkpoint "a-$round" -o "$PWD/a-$round.vma"
		expect_rc 0
		grep -Eiq '^INFO: .*(bitmap|inconsistent|missing)' "$ERR" ||
			fail "no INFO line says why the disks were read whole ($round)"
		vm_clean
		verify_all
		gwrand "$((30 + ${#round}))" 15
		vbq_ok "n-$round" --mode incremental --json
		bytes_read_at_most "$(vm touched "iv.n-$round")"
		verify_all
	done
	vm_quit
	shadow_is_disk
	no_write_error
}

# vmaback killed during a run, then QEMU quit and started again before the
# next run: the crashed run's new bitmap was stored with the disks, its
# scratch files are still there; the next incremental removes both, keeps
# the set's bitmap (it recorded every change) and restores exactly.
crash_then_restart() {
	vm_setup cr virtio0:8 virtio1:12
	vm_start
	gwrand 40 20
	vbq_ok c1
	local p i=1
	for p in after-transaction mid-read after-rename; do
		i=$((i + 1))
		gwrand "$((40 + i))" 12
		pit "x$i"
		VMABACK_TEST_CRASH=$p vbq --checkpoint "x$i" -o "$PWD/x$i.vma" --bwlimit 4M
		[ "$RC" -eq 137 ] || fail "with VMABACK_TEST_CRASH=$p vmaback exited $RC, expected 137"
		vm_quit
		vm_start
		gwrand "$((60 + i))" 5
		vbq_ok "c$i" --mode incremental --json
		bytes_read_at_most "$(vm touched "iv.x$i" "iv.c$i")"
	done
	verify_all
	[ "$VERIFIED" -eq 4 ] || fail "$VERIFIED checkpoints restored, expected 4"
	vm_quit
	shadow_is_disk
	no_write_error
}

# QEMU killed -9 while a backup reads: the backup fails promptly (no hang),
# commits and publishes nothing; QEMU started again, the next run (auto)
# finds the changes by reading the disks whole and restores exactly.
qemu_dies_mid_run() {
	vm_setup qd virtio0:8 virtio1:16
	vm_start
	gw virtio0:0:2M:0x11 virtio1:2M:6M:0x22
	vbq_ok c1
	gwrand 70 20
	# shellcheck disable=SC2086
	vm flush $VM_DEVS
	committed >before
	pit x2
	vbq_bg --checkpoint x2 -o "$PWD/x2.vma" --mode full --bwlimit 1M
	py "$T_SRCDIR/vm.py" wait-export 60 "$PID" || { bg_wait 60; fail "no export appeared (exit $RC)"; }
	vm_kill9
	bg_wait 30
	[ "$RC" -ne 0 ] || fail "the backup succeeded although QEMU died while it read"
	[ "$RC" -ne 137 ] || fail "the backup was killed"
	expect_msg backup '.'
	committed >after
	same_list before after "the checkpoints before and after QEMU died"
	absent x2.vma
	rm -rf snap/x2
	vm_start
	vbq_ok c3
	expect_err '^INFO: .*no bitmap'
	verify_all
	[ "$VERIFIED" -eq 2 ] || fail "$VERIFIED checkpoints restored, expected 2"
	vm_quit
	shadow_is_disk
	no_write_error
}

tcase qemu_killed qemu_killed
tcase qemu_dies_mid_run qemu_dies_mid_run
tcase crash_then_restart crash_then_restart
