# t_qmp_fail.sh: `vmaback backup --qmp` runs that fail while the guest
# writes: a read error on one disk (a blkdebug node under its qcow2 node)
# and a scratch directory too small for the copy-before-write data. The
# backup fails naming the drive, commits nothing and publishes no archive;
# the guest never sees an error; the next incremental holds every change.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"
. "$T_SRCDIR/vm_lib.sh"

# failing_run C ARGS...: a backup for C while the guest writes DURING
# ("DEV:OFF:LEN:PAT ...") and, with REDO=1, rewrites what changed, once the
# export exists; it must fail and change nothing.
failing_run() {
	local c=$1
	shift
	committed >before
	pit "$c"
	vbq_bg --checkpoint "$c" -o "$PWD/$c.vma" "$@"
	if py "$T_SRCDIR/vm.py" wait-export 60 "$PID"; then
		# shellcheck disable=SC2086
		gw $DURING
		[ "${REDO:-0}" = 0 ] || gwredo 77 "iv.$c"
	fi
	bg_wait 100
	[ "$RC" -ne 0 ] || fail "the backup of $c succeeded"
	if [ "$RC" -eq 137 ] || [ "$RC" -ge 124 ]; then fail "the backup of $c exited $RC (killed or timed out)"; fi
	committed >after
	same_list before after "the checkpoints before and after the failed backup"
	absent "$c.vma"
	rm -rf "snap/$c"
	no_write_error
	vm_clean
}

read_error() {
	vm_setup rerr virtio0:16 virtio1:24 virtio2:16
	vm_start
	gw virtio0:0:2M:0x10 virtio1:1M:4M:0x20 virtio2:8M:2M:0x30
	gwrand 1 20
	pit c1
	vbq --checkpoint c1 -o "$PWD/c1.vma"
	expect_rc 0
	vm_clean
	vm_quit

	# reads of virtio1's cluster at 3 MiB fail from now on (writes work)
	local sec
	sec=$(host_sector img/virtio1.qcow2 $((3 * 1048576))) || fail "no host offset"
	printf '[inject-error]\nevent = "read_aio"\niotype = "read"\nsector = "%s"\nerrno = "5"\nonce = "off"\n' \
		"$sec" >"$S/blkdebug.conf"
	VM_BLKDEBUG=virtio1:$S/blkdebug.conf vm_start
	gw virtio1:3M:64k:0x21 virtio0:64k:64k:0x11
	gwrand 2 20
	# vmaback's read of that cluster fails (the guest writes elsewhere)
	DURING="virtio1:1M:1M:0x23 virtio0:1M:512k:0x12 virtio2:0:1M:0x31"
	failing_run c2 --bwlimit 1M
	expect_msg backup 'drive-virtio1'
	only_message
	gwrand 3 10
	# the guest overwrites it during the run: copy-before-write cannot read
	# the old data, the snapshot breaks, the guest's write goes through
	DURING="virtio1:3M:64k:0x22 virtio1:1M:1M:0x24 virtio0:1M:512k:0x13"
	REDO=1 failing_run c2b --bwlimit 1M
	expect_msg backup 'drive-virtio1'
	only_message
	gwrand 5 10

	# without the error, the next incremental holds every change since c1
	vm_quit
	VM_BLKDEBUG="" vm_start
	gwrand 4 10
	pit c3
	vbq --checkpoint c3 -o "$PWD/c3.vma" --mode incremental --json
	expect_rc 0
	bytes_read_at_most "$(vm touched iv.c2 iv.c2b iv.c3)"
	vm_clean
	verify_all
	[ "$VERIFIED" -eq 2 ] || fail "$VERIFIED checkpoints restored, expected 2"
	vm_quit
	shadow_is_disk
	no_write_error
}

# --scratch-dir on a 2 MiB tmpfs while the guest overwrites 6 MiB that the
# (full) backup has not read yet: the scratch fills up; the backup fails,
# never a guest write.
scratch_full() {
	[ "$(id -u)" = 0 ] || skip "needs root to mount a small tmpfs"
	vm_setup scr virtio0:8 virtio1:8 virtio2:32
	mkdir scr
	mount -t tmpfs -o size=2m,mode=0700 none "$PWD/scr" 2>/dev/null ||
		skip "mounting a tmpfs is not permitted here"
	echo "$PWD/scr" >>"$S/mounts"
	vm_start
	gw virtio0:0:1M:0x10 virtio1:0:1M:0x20 virtio2:8M:10M:0x30
	gwrand 1 10
	pit c1
	vbq --checkpoint c1 -o "$PWD/c1.vma"
	expect_rc 0
	vm_clean
	gwrand 2 10
	DURING="virtio2:8M:6M:0x31"
	REDO=1 VM_SCRATCH=scr failing_run c2 --scratch-dir "$PWD/scr" --mode full --bwlimit 2M
	expect_msg backup 'drive drive-virtio[0-9].*the scratch directory .* KiB left'
	only_message
	[ -z "$(ls -A scr)" ] || fail "the scratch directory still holds $(ls -A scr | tr '\n' ' ')"
	gwrand 3 10
	pit c3
	vbq --checkpoint c3 -o "$PWD/c3.vma" --json
	expect_rc 0
	vm_clean
	verify_all
	[ "$VERIFIED" -eq 2 ] || fail "$VERIFIED checkpoints restored, expected 2"
	vm_quit
	shadow_is_disk
	no_write_error
}

# SIGTERM or SIGINT while the backup reads: vmaback takes the failure path
# at once (exit 128+N): QEMU is left clean without another run, nothing is
# committed, the guest's writes meanwhile all succeed; the next run holds
# every change.
signalled() {
	vm_setup sig virtio0:8 virtio1:16
	vm_start
	gw virtio0:0:2M:0x10 virtio1:0:8M:0x20
	vbq_ok c1
	local sig n i=1
	for sig in TERM INT; do
		i=$((i + 1))
		gw virtio1:0:6M:0x2$i
		committed >before
		pit "x$i"
		# vmaback itself, not vb's timeout, gets the signal
		bg "$VMABACK" backup --qmp "$S/qmp.sock" --set sig --state-dir "$PWD/st" \
			--checkpoint "x$i" -o "$PWD/x$i.vma" --bwlimit 1M
		py "$T_SRCDIR/vm.py" wait-export 60 "$PID" || { bg_wait 60; fail "no export appeared (exit $RC)"; }
		gwredo "$i" "iv.x$i"
		kill -0 "$PID" 2>/dev/null || fail "the backup ended before the signal"
		kill "-$sig" "$PID"
		bg_wait 30
		n=$(kill -l "$sig")
		[ "$RC" -eq $((128 + n)) ] || fail "SIG$sig: vmaback exited $RC, expected $((128 + n))"
		committed >after
		same_list before after "the checkpoints before and after SIG$sig"
		absent "x$i.vma"
		rm -rf "snap/x$i"
		vm_clean
	done
	gwrand 9 10
	vbq_ok c4 --mode incremental
	verify_all
	[ "$VERIFIED" -eq 2 ] || fail "$VERIFIED checkpoints restored, expected 2"
	vm_quit
	shadow_is_disk
	no_write_error
}

tcase read_error read_error
tcase signalled signalled
tcase scratch_full scratch_full
