# t_qmp_live.sh: `vmaback backup --qmp` of a running QEMU (q35 under TCG,
# no guest OS, virtio disks; the "guest" writes through the disks' virtio
# backends with HMP qemu-io). Every restored checkpoint must be the guest's
# disks at the point in time of its backup (the transaction), on every disk:
# writes made before the run are in, writes made while it reads are not.
# After every run nothing of vmaback's is left in QEMU, each disk has one
# bitmap (the set's latest checkpoint), and the VM runs.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"
. "$T_SRCDIR/vm_lib.sh"

# one backup of the set: before-writes are done; point in time C; the run
# (--bwlimit: it reads for a few seconds) starts; once its export exists
# the guest rewrites what changed (and some more), while the run reads.
# ARGS go to vmaback.
backup_during() {
	local c=$1 seed=$2
	shift 2
	pit "$c"
	vbq_bg --checkpoint "$c" -o "$PWD/$c.vma" --json "$@"
	py "$T_SRCDIR/vm.py" wait-export 60 "$PID" ||
		{ bg_wait 60; fail "no export of the run for $c appeared (vmaback exited $RC)"; }
	gwredo "$seed" "iv.$c"
	kill -0 "$PID" 2>/dev/null ||
		fail "the backup of $c ended before the guest's writes: the test needs a slower --bwlimit"
	gwrand "$((seed + 1))" 12
	bg_wait 100
	expect_rc 0
	vm_clean --keep userbm
}

# full, then two incrementals, then a differential: before, during and
# after each; every checkpoint restores exactly; incrementals read only
# the clusters that changed.
point_in_time() {
	vm_setup vm virtio0:32 virtio1:48 virtio2:64
	vm_start
	local d n
	for d in $VM_DEVS; do # a bitmap that is not vmaback's
		vm q "{\"execute\":\"block-dirty-bitmap-add\",\"arguments\":{\"node\":\"$(node "$d")\",\"name\":\"userbm\",\"persistent\":true}}" >/dev/null
	done
	gw virtio0:0:3M:0x11 virtio1:16M:3M:0x22 virtio2:40M:3M:0x33
	gwrand 1 20
	backup_during c1 100 --mode full --bwlimit 3M
	expect_out '"kind": *"full"'
	no_vm_lock
	gwrand 2 15 # after

	gwrand 3 15
	backup_during c2 200 --mode incremental --bwlimit 4M
	expect_out '"kind": *"incremental"'
	n=$(vm touched iv.c2)
	bytes_read_at_most "$n"
	gwrand 4 15

	gwrand 5 15
	backup_during c3 300 --bwlimit 4M # auto: incremental
	expect_out '"kind": *"incremental"'
	n=$(vm touched iv.c3)
	bytes_read_at_most "$n"
	gwrand 6 10

	pit c4
	vbq --mode differential --since c1 --checkpoint c4 -o "$PWD/c4.vma" --json
	expect_rc 0
	expect_out '"kind": *"differential"'
	vm_clean --keep userbm
	verify_all
	[ "$VERIFIED" -eq 4 ] || fail "$VERIFIED checkpoints restored, expected 4"

	vm_quit
	shadow_is_disk
	no_write_error
}

# --drive NAME=qmp:DEVICE: only those disks, under those names; a second
# set on the same VM leaves the first one's bitmaps alone.
named_drives() {
	vm_setup named virtio0:16 virtio1:16 virtio2:24
	vm_start
	gwrand 7 20
	VM_BACKED="virtio0 virtio2"
	pit n1
	vbq --drive sys=qmp:virtio0 --drive data=qmp:virtio2 --checkpoint n1 -o "$PWD/n1.vma"
	expect_rc 0
	vm_clean
	run vb list n1.vma
	expect_rc 0
	expect_out 'devname: sys$'
	expect_out 'devname: data$'
	grep -q virtio1 "$OUT" && fail "virtio1 is in the archive: $(cat "$OUT")"
	gwrand 8 20
	pit n2
	vbq --drive sys=qmp:virtio0 --drive data=qmp:virtio2 --checkpoint n2 -o "$PWD/n2.vma" --json
	expect_rc 0
	expect_out '"kind": *"incremental"'
	vm_clean
	verify_all virtio0=sys virtio2=data

	# another set, every disk: set named keeps its bitmaps
	VSET=other VM_BACKED=""
	pit o1
	vbq --checkpoint o1 -o "$PWD/o1.vma"
	expect_rc 0
	vm_clean --keep d0:vmaback/named/n2 --keep d2:vmaback/named/n2
	verify_all
	VSET=named VM_BACKED="virtio0 virtio2"
	gwrand 9 10
	pit n3
	vbq --drive sys=qmp:virtio0 --drive data=qmp:virtio2 --checkpoint n3 -o "$PWD/n3.vma" --json
	expect_rc 0
	expect_out '"kind": *"incremental"'
	vm_clean --keep vmaback/other/o1
	verify_all virtio0=sys virtio2=data
}

# disks are named as Proxmox names them from the device id when it is a
# Proxmox key (virtio0, efidisk0, scsi0: drive-ID), else by the id itself.
device_names() {
	vm_setup names virtio0:8 efidisk0:4 data:8 scsi0:8
	vm_start
	gwrand 14 20
	vbq_ok d1
	run vb list d1.vma
	local n
	for n in drive-virtio0 drive-efidisk0 data drive-scsi0; do
		grep -q "devname: $n\$" "$OUT" || fail "no drive $n in the archive: $(grep DEV "$OUT" | tr '\n' ' ')"
	done
	gwrand 15 20
	vbq_ok d2 --mode incremental --json
	bytes_read_at_most "$(vm touched iv.d2)"
	verify_all data=data
	vm_quit
	shadow_is_disk
	no_write_error
}

# a disk hot-plugged into the VM (blockdev-add, device_add) gets a full
# backup in --mode auto; the next incremental reads only what changed; a
# VM the user paused stays paused.
added_drive() {
	vm_setup add virtio0:16 virtio1:24
	vm_start
	gwrand 10 20
	pit a1
	vbq --checkpoint a1 -o "$PWD/a1.vma"
	expect_rc 0
	vm_clean
	vm_disk virtio3 20
	vm q "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"qcow2\",\"node-name\":\"d3\",\"file\":{\"driver\":\"file\",\"filename\":\"$PWD/img/virtio3.qcow2\",\"node-name\":\"f3\"}}}" \
		'{"execute":"device_add","arguments":{"driver":"virtio-blk-pci","bus":"rp0","drive":"d3","id":"virtio3"}}' >/dev/null
	gw virtio3:1M:2M:0x44
	gwrand 11 20
	pit a2
	vbq --checkpoint a2 -o "$PWD/a2.vma" --json
	expect_rc 0
	vm_clean
	run vb list a2.vma
	expect_out 'devname: drive-virtio3$'
	gwrand 12 20
	pit a3
	vbq --checkpoint a3 -o "$PWD/a3.vma" --json --mode incremental
	expect_rc 0
	bytes_read_at_most "$(vm touched iv.a3)"
	vm_clean
	verify_all
	[ "$VERIFIED" -eq 3 ] || fail "$VERIFIED checkpoints restored, expected 3"

	vm q '{"execute":"stop"}' >/dev/null
	gwrand 13 5
	pit a4
	vbq --checkpoint a4 -o "$PWD/a4.vma"
	expect_rc 0
	vm_clean --paused
	vm q '{"execute":"cont"}' >/dev/null
	verify_all
	vm_quit
	no_write_error
}

tcase point_in_time point_in_time
tcase named_drives named_drives
tcase device_names device_names
tcase added_drive added_drive
