# t_qmp_crash.sh: `vmaback backup --qmp` killed at each phase of a run
# (VMABACK_TEST_CRASH=POINT: vmaback SIGKILLs itself there), and `vmaback
# recover` by hand (QEMU itself stopped and killed: t_qmp_restart). After
# each crash the next run recovers and succeeds, leaves nothing of
# vmaback's in QEMU, and every committed checkpoint restores to the guest's
# disks at its point in time.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"
. "$T_SRCDIR/vm_lib.sh"

POINTS="after-recovery after-scratch after-transaction after-exports mid-read after-rename after-commit after-teardown"

# crashed C POINT ARGS...: a run for checkpoint C killed at POINT (status
# 137); it committed C exactly when POINT comes after the commit.
crashed() {
	local c=$1 p=$2 n
	shift 2
	pit "$c"
	VMABACK_TEST_CRASH=$p vbq --checkpoint "$c" -o "$PWD/$c.vma" "$@"
	[ "$RC" -eq 137 ] || fail "with VMABACK_TEST_CRASH=$p vmaback exited $RC, expected 137 (SIGKILL)"
	n=$(committed | grep -c "^$c\$" || true)
	case $p in
	after-commit | after-teardown)
		[ "$n" -eq 1 ] || fail "crashed $p: checkpoint $c is not committed" ;;
	*)
		[ "$n" -eq 0 ] || fail "crashed $p (before the commit): checkpoint $c is committed" ;;
	esac
}

# a crash at each point of an incremental (and at mid-read of the first
# full), then a normal run: it succeeds, and every checkpoint restores (the
# new ones after each run, all of them again at the end).
crash_points() {
	vm_setup crash virtio0:8 virtio1:12 virtio2:16
	vm_start
	gw virtio0:0:1M:0x11 virtio1:2M:1M:0x22 virtio2:4M:2M:0x33
	gwrand 1 10
	crashed f0 mid-read --bwlimit 4M
	vbq_ok f1
	verify_all
	local p i=0
	for p in $POINTS; do
		i=$((i + 1))
		gwrand "$((10 + i))" 12
		crashed "k$i" "$p" --bwlimit 8M
		gwrand "$((50 + i))" 6
		vbq_ok "r$i" --json
		expect_out '"kind": *"incremental"'
		VERIFY_NEW=1 verify_all
	done
	verify_all
	vm_quit
	shadow_is_disk
	no_write_error
}

# `vmaback recover` after a crash removes everything the run left in QEMU
# (and only that); the next incremental then succeeds.
recover_by_hand() {
	vm_setup rec virtio0:8 virtio1:12
	vm_start
	vm q '{"execute":"block-dirty-bitmap-add","arguments":{"node":"d0","name":"userbm","persistent":true}}' >/dev/null
	VM_KEEP="--keep d0:userbm"
	gwrand 2 20
	vbq_ok c1
	local p i=1
	for p in after-transaction after-exports mid-read after-rename; do
		i=$((i + 1))
		gwrand "$((20 + i))" 12
		crashed "x$i" "$p" --bwlimit 4M
		run vb recover --qmp "$S/qmp.sock" --set rec --state-dir "$PWD/st"
		expect_rc 0
		vm_clean
		run vb recover --qmp "$S/qmp.sock" --set rec --state-dir "$PWD/st"
		expect_rc 0
		vbq_ok "c$i" --mode incremental --json
		bytes_read_at_most "$(vm touched "iv.x$i" "iv.c$i")"
	done
	verify_all
}

tcase crash_points crash_points
tcase recover_by_hand recover_by_hand
