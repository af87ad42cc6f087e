# t_qemu_live.sh: backing up a running QEMU over NBD with its dirty bitmaps,
# driven over QMP: the plain-QEMU route of the README, run for real.
#
# Live VMs: vmaback never talks to QEMU itself; QEMU (or libvirt) exports
# the disk over NBD with a bitmap of the changes, and vmaback reads the
# export with --bitmap.
#
# Plain QEMU, over QMP (what this test runs, with -machine none under TCG):
#   checkpoint:  transaction [block-dirty-bitmap-add {node, name: c1,
#                persistent: true}, block-dirty-bitmap-disable {node, c0}]
#                (the new bitmap starts recording and the old one freezes,
#                atomically; c0 then holds exactly the changes since c0)
#   export:      nbd-server-start {addr: unix socket}; block-export-add
#                {type: nbd, id, node-name, name: EXPORT, writable: false,
#                bitmaps: [c0]} (only a disabled bitmap may be exported)
#   backup:      vmaback backup --set S --checkpoint c1 --bitmap c0
#                -d NAME='nbd+unix:///EXPORT?socket=PATH' -o ...
#                (the first backup, a full one, needs no bitmap)
#   end:         block-export-del (wait for BLOCK_EXPORT_DELETED),
#                nbd-server-stop; on failure keep c0 and drop c1
#                (block-dirty-bitmap-remove) so the next run uses c0 again.
# While the guest writes, export a point-in-time view instead of the live
# node: a fleecing overlay (blockdev-add of a qcow2 backed by the disk, and
# blockdev-backup sync=none into it in the same transaction as the bitmap
# changes), as in docs/qemu-recipes.md section 4.5.
#
# libvirt (pull mode): `virsh backup-begin VM backup.xml checkpoint.xml`
# with <domainbackup mode='pull'><incremental>C0</incremental><server
# transport='unix' socket='/run/vmaback-VM.sock'/><disks><disk name='vda'
# backup='yes' type='file'><scratch file='/var/tmp/VM-vda.scratch'/></disk>
# </disks></domainbackup> and <domaincheckpoint><name>C1</name>
# </domaincheckpoint>; then vmaback backup --set VM --checkpoint C1
# --bitmap backup-vda -d drive-virtio0='nbd+unix:///vda?socket=/run/vmaback-VM.sock';
# then `virsh domjobabort VM`. C0 must be vmaback's latest checkpoint
# (vmaback checkpoints --set VM); leave <incremental> out for the first,
# full, backup. libvirt names the exported bitmap backup-DISK and the
# export DISK; the scratch file holds the point-in-time view.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"

live() {
	need qemu-img qemu-io "$PYTHON"
	command -v qemu-system-x86_64 >/dev/null 2>&1 ||
		skip "qemu-system-x86_64 is not installed (Debian package qemu-system-x86)"
	sockdir
	local size=$((64 * 1048576)) uri w
	qemu-img create -q -f qcow2 "$S/d0.qcow2" $size
	qemu-io -f qcow2 -c 'write -P 0x5a 0 3M' -c 'write -P 0x33 40M 1M' "$S/d0.qcow2" >/dev/null
	qemu-system-x86_64 -machine none -nodefaults -display none \
		-qmp "unix:$S/qmp.sock,server=on,wait=off" \
		-blockdev "driver=file,filename=$S/d0.qcow2,node-name=f0" \
		-blockdev driver=qcow2,file=f0,node-name=drive0 \
		</dev/null >"$S/qemu.log" 2>&1 &
	echo $! >"$S/qemu.pid"
	q() {
		py "$T_SRCDIR/qmp.py" "$S/qmp.sock" "$@" >>qmp.out || fail "QMP: $*"
	}
	export_add() { # EXPORT-ID [BITMAP]
		local bm=""
		[ -z "${2:-}" ] || bm=",\"bitmaps\":[\"$2\"]"
		echo "{\"execute\":\"block-export-add\",\"arguments\":{\"type\":\"nbd\",\"id\":\"$1\",\"node-name\":\"drive0\",\"name\":\"drive0\",\"writable\":false$bm}}"
	}
	export_del() {
		echo "{\"execute\":\"block-export-del\",\"arguments\":{\"id\":\"$1\"}}"
	}
	uri="nbd+unix:///drive0?socket=$S/nbd.sock"

	# checkpoint c0: its bitmap starts recording; the full backup reads the node
	q '{"execute":"transaction","arguments":{"actions":[{"type":"block-dirty-bitmap-add","data":{"node":"drive0","name":"c0","persistent":true}}]}}' \
		"{\"execute\":\"nbd-server-start\",\"arguments\":{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$S/nbd.sock\"}}}}" \
		"$(export_add e0)"
	run vb backup --set vm --state-dir "$PWD/st" -d drive0="$uri" --checkpoint c0 -o c0.vma
	expect_rc 0
	q "$(export_del e0)" wait:BLOCK_EXPORT_DELETED

	# the guest writes (seeded offsets), through the block layer
	writes 21 $size 10 >w
	local steps=()
	while read -r off len pat; do
		steps+=("hmp:qemu-io drive0 \"write -P $pat $off $len\"")
	done <w
	q "${steps[@]}"
	touched w | sed 's/^/1 /' >want

	# checkpoint c1: c1 records from now on, c0 freezes and is exported
	q '{"execute":"transaction","arguments":{"actions":[{"type":"block-dirty-bitmap-add","data":{"node":"drive0","name":"c1","persistent":true}},{"type":"block-dirty-bitmap-disable","data":{"node":"drive0","name":"c0"}}]}}' \
		"$(export_add e1 c0)"
	run vb backup --set vm --state-dir "$PWD/st" -d drive0="$uri" --bitmap c0 \
		--mode incremental --checkpoint c1 -o c1.vma --json
	expect_rc 0
	aclusters c1.vma >got
	same_list want got "the written clusters and the clusters of c1.vma"
	[ "$(jget "$OUT" bytes_read)" -le $(($(wc -l <want) * 65536)) ] ||
		fail "read $(jget "$OUT" bytes_read) bytes"
	q "$(export_del e1)" wait:BLOCK_EXPORT_DELETED '{"execute":"nbd-server-stop"}' \
		'{"execute":"quit"}'
	wait "$(cat "$S/qemu.pid")" || fail "QEMU exited with an error: $(cat "$S/qemu.log")"
	rm -f "$S/qemu.pid"

	# the chain restores the disk as QEMU left it; the bitmaps persisted
	run vb restore c0.vma c1.vma --to r
	expect_rc 0
	run qemu-img compare -f raw -F qcow2 r/disk-drive0.raw "$S/d0.qcow2"
	expect_rc 0
	[ "$(bitmaps "$S/d0.qcow2" | tr '\n' ' ')" = "c0 - c1 auto " ] ||
		fail "bitmaps after quit: $(bitmaps "$S/d0.qcow2")"
	run vb verify --deep --set vm --state-dir "$PWD/st"
	expect_rc 0
}

tcase live live
