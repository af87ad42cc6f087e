# vm_lib.sh: helpers of the t_qmp_*.sh tests (sourced after lib.sh and
# qemu_lib.sh): a q35 QEMU under TCG with virtio disks and no guest OS, a
# "guest" that writes through the disks' virtio backends (HMP qemu-io),
# raw shadow copies of what the guest wrote, snapshotted at each backup's
# point in time, `vmaback backup --qmp` runs, and the checks that every
# committed checkpoint restores to its snapshot and that vmaback left
# nothing behind in QEMU.
#
# Layout of a case: $S (short, for sockets): qmp.sock (vmaback's monitor),
# qmp2.sock (the test's own: QEMU serves one client per monitor), qemu.log
# (QEMU's stdout: HMP qemu-io prints "wrote ..." or "write failed" there);
# $PWD/img/DEV.qcow2 the disks; $PWD/sh/DEV.raw their shadows;
# $PWD/snap/C/DEV.raw the shadows at checkpoint C's point in time;
# $PWD/iv the guest's writes since the last point in time (iv.C: those that
# checkpoint C's backup saw as changed); $PWD/st the state directory.

# vm_setup SET DEV:MIB...: skips without qemu-system-x86_64; a socket
# directory, the disks (empty qcow2) and their shadows; QEMU is stopped and
# any mount of the case is undone when the case ends.
vm_setup() {
	command -v qemu-system-x86_64 >/dev/null 2>&1 ||
		skip "qemu-system-x86_64 is not installed (Debian package qemu-system-x86)"
	need qemu-img qemu-io "$PYTHON"
	VSET=$1
	shift
	S=$(mktemp -d /tmp/vq.XXXXXX)
	trap vm_cleanup EXIT
	export VM_QMP=$S/qmp2.sock
	VM_DEVS=""
	VM_NWRITES=0
	LAST=""
	QPID=""
	mkdir -p img sh snap st
	: >iv
	local d
	for d in "$@"; do
		vm_disk "${d%%:*}" "${d#*:}"
	done
}

# vm_disk DEV MIB: a new empty disk and its shadow (not attached yet).
vm_disk() {
	qemu-img create -q -f qcow2 "img/$1.qcow2" "$(($2 * 1048576))"
	: >"sh/$1.raw"
	truncate -s "$(($2 * 1048576))" "sh/$1.raw"
	VM_DEVS="$VM_DEVS $1"
}

vm_cleanup() {
	local m
	if [ -n "$QPID" ]; then
		kill -9 "$QPID" 2>/dev/null || true
		wait "$QPID" 2>/dev/null || true
	fi
	if [ -f "$S/mounts" ]; then
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done <"$S/mounts"
	fi
	rm -rf "$S"
}

# node DEV: the qcow2 node of a disk (virtio0 -> d0, data -> ddata).
node() {
	echo "d${1#virtio}"
}

# vm_start: QEMU with the disks of VM_DEVS (a direct child: QPID), running
# (not -S: vmaback must leave it running): a virtio-blk device with the
# disk's name as its id, scsi-hd for a name scsi*. VM_BLKDEBUG=DEV:CONF puts a
# blkdebug node with that config between DEV's qcow2 node and its file.
vm_start() {
	local args=() d n scsi=""
	for d in $VM_DEVS; do
		n=${d#virtio}
		args+=(-blockdev "driver=file,filename=$PWD/img/$d.qcow2,node-name=f$n")
		if [ "${VM_BLKDEBUG%%:*}" = "$d" ]; then
			args+=(-blockdev "driver=blkdebug,config=${VM_BLKDEBUG#*:},image=f$n,node-name=g$n"
				-blockdev "driver=qcow2,file=g$n,node-name=d$n")
		else
			args+=(-blockdev "driver=qcow2,file=f$n,node-name=d$n")
		fi
		case $d in
		scsi*) # on one virtio-scsi controller
			[ -n "$scsi" ] || args+=(-device virtio-scsi-pci,id=vscsi)
			scsi=1
			args+=(-device "scsi-hd,drive=d$n,id=$d,bus=vscsi.0") ;;
		*) args+=(-device "virtio-blk-pci,drive=d$n,id=$d") ;;
		esac
	done
	rm -f "$S/qmp.sock" "$S/qmp2.sock"
	# stdbuf: HMP qemu-io's lines reach the log as they are printed
	stdbuf -oL qemu-system-x86_64 -machine q35,accel=tcg -nodefaults -display none -m 64 \
		-qmp "unix:$S/qmp.sock,server=on,wait=off" \
		-qmp "unix:$S/qmp2.sock,server=on,wait=off" \
		-device pcie-root-port,id=rp0,bus=pcie.0,chassis=1 \
		"${args[@]}" </dev/null >>"$S/qemu.log" 2>&1 &
	QPID=$!
	local i
	for i in $(seq 1 100); do
		[ -S "$S/qmp2.sock" ] && [ -S "$S/qmp.sock" ] && break
		kill -0 "$QPID" 2>/dev/null || fail "QEMU did not start: $(tail -5 "$S/qemu.log")"
		sleep 0.05
	done
	vm status >/dev/null
}
VM_BLKDEBUG=""

# vm_quit: a clean QEMU exit (persistent bitmaps are stored).
vm_quit() {
	py "$T_SRCDIR/vm.py" q '{"execute":"quit"}' >/dev/null 2>&1 || true
	wait "$QPID" || fail "QEMU exited with an error: $(tail -5 "$S/qemu.log")"
	QPID=""
}

# vm_kill9: QEMU dies (its new bitmaps are lost, the old ones inconsistent).
vm_kill9() {
	kill -9 "$QPID"
	wait "$QPID" 2>/dev/null || true
	QPID=""
}

# vm ARGS...: vm.py ARGS (fails the case on failure).
vm() {
	py "$T_SRCDIR/vm.py" "$@" || fail "vm.py $*"
}

# gw DEV:OFF:LEN:PAT...: guest writes (recorded in iv and the shadows).
gw() {
	vm gw sh iv "$@"
	VM_NWRITES=$((VM_NWRITES + $#))
}

# gwrand SEED N [DEV...]: N seeded random guest writes (default: all disks).
gwrand() {
	local seed=$1 n=$2
	shift 2
	# shellcheck disable=SC2086
	[ $# -gt 0 ] || set -- $VM_DEVS
	vm gwrand sh iv "$seed" "$n" "$@"
	VM_NWRITES=$((VM_NWRITES + n))
}

# gwredo SEED LOG: the writes of LOG again, with other patterns.
gwredo() {
	vm gwredo sh iv "$1" "$2"
	VM_NWRITES=$((VM_NWRITES + $(wc -l <"$2")))
}

# no_write_error: every guest write so far succeeded (QEMU's log has one
# "wrote" line per write and no failure).
no_write_error() {
	local n
	if grep -Eq '^(write|read|flush) failed' "$S/qemu.log"; then
		fail "the guest saw an error: $(grep -E '^(write|read|flush) failed' "$S/qemu.log" | head -3)"
	fi
	n=$(grep -c '^wrote ' "$S/qemu.log" || true)
	[ "$n" -eq "$VM_NWRITES" ] || fail "QEMU logged $n successful writes, the guest made $VM_NWRITES"
}

# pit C [DEV...]: the shadows now are checkpoint C's point in time (call it
# just before starting the backup that makes C) for those disks (default:
# VM_BACKED, or all); iv.C gets the writes since the previous point in time.
pit() {
	local d c=$1
	shift
	# shellcheck disable=SC2086
	[ $# -gt 0 ] || set -- ${VM_BACKED:-$VM_DEVS}
	mkdir -p "snap/$c"
	for d in "$@"; do
		cp --sparse=always "sh/$d.raw" "snap/$c/$d.raw"
	done
	mv iv "iv.$c"
	: >iv
}

# vbq ARGS...: `vmaback backup --qmp` of the set on the VM (stdout $OUT,
# stderr $ERR, status $RC).
vbq() {
	run vb backup --qmp "$S/qmp.sock" --set "$VSET" --state-dir "$PWD/st" "$@"
}

# vbq_bg ARGS...: the same in the background (PID; bg_wait gets its RC).
vbq_bg() {
	bg vb backup --qmp "$S/qmp.sock" --set "$VSET" --state-dir "$PWD/st" "$@"
}

# vbq_ok C ARGS...: a run for checkpoint C (point in time now, archive
# ./C.vma) that succeeds and leaves QEMU clean.
vbq_ok() {
	local c=$1
	shift
	pit "$c"
	vbq --checkpoint "$c" -o "$PWD/$c.vma" "$@"
	expect_rc 0
	vm_clean
}

# latest: the set's latest committed checkpoint ("-" for none).
latest() {
	"$VMABACK" checkpoints --set "$VSET" --state-dir "$PWD/st" --json >cps.json 2>/dev/null ||
		{ echo -; return 0; }
	py -c '
import json, sys
c = [c["name"] for c in json.load(open(sys.argv[1]))["checkpoints"] if not c.get("pending")]
print(c[-1] if c else "-")' cps.json
}

# vm_clean [--keep [NODE:]BITMAP]... [--paused]: nothing of vmaback's is
# left in QEMU (nodes, exports, jobs, NBD server, the devices on their own
# nodes), each disk of the set (VM_BACKED, default all) has exactly the
# bitmap of the set's latest committed checkpoint (and the --keep ones),
# no scratch file is left, and the VM runs. VM_KEEP: more --keep options
# for every call.
vm_clean() {
	local pairs=() d left
	for d in $VM_DEVS; do
		case " ${VM_BACKED:-$VM_DEVS} " in
		*" $d "*) pairs+=("$d=$(node "$d")") ;;
		*) pairs+=("$d=$(node "$d")=-") ;;
		esac
	done
	# shellcheck disable=SC2086
	py "$T_SRCDIR/vm.py" check "$VSET" "$(latest)" "${pairs[@]}" ${VM_KEEP:-} "$@" 2>"$T_WORK/.io/$T_CASE/check" ||
		fail "after \`${LAST:-}\`: $(tr '\n' ';' <"$T_WORK/.io/$T_CASE/check")"
	left=$(find st "${VM_SCRATCH:-st}" -name 'vmaback-scratch*' 2>/dev/null | head -3)
	[ -z "$left" ] || fail "after \`${LAST:-}\`: scratch files left: $left"
}

# no_vm_lock: the VM's lock file (run directory, qmp-TAG.lock, TAG the first
# 64 bits of SHA-256 of the QMP socket's real path) is gone: a run that
# left nothing to recover removes it.
no_vm_lock() {
	local dir tag
	if [ "$(id -u)" = 0 ]; then dir=/run/vmaback
	elif [ -n "${XDG_RUNTIME_DIR:-}" ]; then dir=$XDG_RUNTIME_DIR/vmaback
	else dir=/tmp/vmaback-$(id -u); fi
	tag=$(printf '%s' "$(realpath "$S/qmp.sock")" | sha256sum | cut -c1-16)
	[ ! -e "$dir/qmp-$tag.lock" ] || fail "after \`${LAST:-}\`: $dir/qmp-$tag.lock is left"
}

# committed: the set's committed checkpoints, one a line, oldest first.
committed() {
	"$VMABACK" checkpoints --set "$VSET" --state-dir "$PWD/st" --json >cps.json ||
		fail "checkpoints --set $VSET failed"
	py "$T_SRCDIR/vm.py" chains cps.json | awk '{ print $1 }'
}

# verify_all [DEV=NAME...]: every committed checkpoint of the set restores
# (`vmaback restore CHAIN --to DIR`) byte for byte to its snapshot, on every
# disk of the snapshot, and to nothing else; a disk's archive name is
# drive-DEV unless given. VERIFIED counts the checkpoints checked; with
# VERIFY_NEW=1 only those not checked before (listed in ./verified).
verify_all() {
	local line c chain d name f m
	touch verified
	"$VMABACK" checkpoints --set "$VSET" --state-dir "$PWD/st" --json >cps.json ||
		fail "checkpoints --set $VSET failed"
	py "$T_SRCDIR/vm.py" chains cps.json >chains.txt || fail "bad checkpoints --json"
	while read -r line; do
		c=${line%% *}
		chain=${line#* }
		if [ "${VERIFY_NEW:-0}" = 1 ] && grep -qx -- "$c" verified; then
			continue
		fi
		[ -d "snap/$c" ] || fail "checkpoint $c is committed, but no backup was made for it"
		rm -rf rs
		# shellcheck disable=SC2086
		run vb restore $chain --to rs
		[ "$RC" -eq 0 ] || fail "restore of checkpoint $c ($chain) exited $RC"
		for f in snap/"$c"/*.raw; do
			d=$(basename "$f" .raw)
			name=drive-$d
			for m in "$@"; do
				[ "${m%%=*}" != "$d" ] || name=${m#*=}
			done
			[ -f "rs/disk-$name.raw" ] || fail "checkpoint $c: no disk-$name.raw restored ($(ls rs | tr '\n' ' '))"
			cmp -s "rs/disk-$name.raw" "$f" ||
				fail "checkpoint $c: $name differs from the guest's disk at its point in time: $(cmp "rs/disk-$name.raw" "$f" 2>&1 | head -1)"
			rm "rs/disk-$name.raw"
		done
		[ -z "$(ls -A rs)" ] || fail "checkpoint $c: restored drives no disk had: $(ls rs | tr '\n' ' ')"
		VERIFIED=$((${VERIFIED:-0} + 1))
		echo "$c" >>verified
	done <chains.txt
	rm -rf rs
}

# shadow_is_disk: after vm_quit, each disk's bytes equal its shadow (the
# shadows model the guest right).
shadow_is_disk() {
	local d
	for d in $VM_DEVS; do
		qemu-img compare -q -f raw -F qcow2 "sh/$d.raw" "img/$d.qcow2" ||
			fail "the shadow of $d is not the disk's content"
	done
}

# bytes_read_at_most CLUSTERS: the last --json run read at most that many
# 64 KiB clusters.
bytes_read_at_most() {
	local b
	b=$(jget "$OUT" bytes_read) || fail "no bytes_read in the --json output"
	[ "$b" -le $(($1 * 65536)) ] ||
		fail "\`$LAST\` read $b bytes; only $1 clusters ($(($1 * 65536)) bytes) changed"
}

# host_sector QCOW2 OFF: the host sector (512 B) that holds guest offset OFF
# of the image (allocated there): for a blkdebug rule's sector.
host_sector() {
	qemu-img map --output=json "$1" | py -c '
import json, sys
off = int(sys.argv[1])
for e in json.load(sys.stdin):
    if e["start"] <= off < e["start"] + e["length"] and e.get("data"):
        print((e["offset"] + off - e["start"]) // 512); break
else:
    sys.exit("offset %d is not allocated" % off)' "$2"
}
