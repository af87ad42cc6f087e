#!/bin/bash
# qmp_bench.sh: `make bench`'s running-VM part: a VM (TCG, no guest OS) with
# 3 qcow2 disks of 2 GiB in all, every cluster written; vmaback backup --qmp
# full, then incrementals after the guest rewrote 1% of the disks, against
# qemu-img convert of the same three disks (the full copy a user would
# make) in the same run, with the spread of the rounds.
#
# Env: VMABACK, BENCH_ROUNDS (default 3), BENCH_DIR (default /dev/shm, else
# $TMPDIR), QMP_BENCH_MIB (the 3 disks' total in MiB, default 2048).
set -eu

VMABACK=${VMABACK:-vmaback}
ROUNDS=${BENCH_ROUNDS:-3}
TOTAL=${QMP_BENCH_MIB:-2048}
for p in qemu-img qemu-system-x86_64 python3; do
	command -v $p >/dev/null 2>&1 || { echo "qmp bench: $p is needed (make deps)" >&2; exit 1; }
done
parent=${BENCH_DIR:-/dev/shm}
[ -d "$parent" ] && [ -w "$parent" ] || parent=${TMPDIR:-/tmp}
dir=$(mktemp -d "$parent/vqb.XXXXXX")
QPID=
cleanup() {
	if [ -n "$QPID" ]; then kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT
QMP="python3 $(cd "$(dirname "$0")/../integration" && pwd)/qmp.py $dir/t.sock"

# sizes: 1/4, 3/8, 3/8 of the total
sizes=("$((TOTAL / 4))" "$((TOTAL * 3 / 8))" "$((TOTAL - TOTAL / 4 - TOTAL * 3 / 8))")
args=()
for i in 0 1 2; do
	qemu-img create -q -f qcow2 "$dir/d$i.qcow2" "${sizes[$i]}M"
	# every cluster data (1 MiB writes of a pattern per MiB)
	python3 -c '
import sys
n = int(sys.argv[1])
for m in range(n):
    print("write -P %d %dM 1M" % (m % 251 + 1, m))
' "${sizes[$i]}" | qemu-io -f qcow2 "$dir/d$i.qcow2" >/dev/null
	args+=(-blockdev "driver=file,filename=$dir/d$i.qcow2,node-name=f$i"
	       -blockdev "driver=qcow2,file=f$i,node-name=d$i"
	       -device "virtio-blk-pci,drive=d$i,id=virtio$i")
done
qemu-system-x86_64 -machine q35,accel=tcg -nodefaults -display none \
	-qmp "unix:$dir/q.sock,server=on,wait=off" -qmp "unix:$dir/t.sock,server=on,wait=off" \
	"${args[@]}" </dev/null >"$dir/qemu.log" 2>&1 &
QPID=$!
for _ in $(seq 100); do [ -S "$dir/t.sock" ] && break; sleep 0.05; done

secs() { # COMMAND...: wall seconds
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1 || { echo "qmp bench: $* failed" >&2; exit 1; }
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
# dirty 1%: 64 KiB writes at seeded offsets, through the guest's devices
dirty() {
	python3 -c '
import random, sys
r = random.Random(int(sys.argv[1])); sizes = [int(x) for x in sys.argv[2:]]
for i, s in enumerate(sizes):
    for _ in range(s * 1024 // 64 // 100):
        off = r.randrange(0, s * 16) * 65536
        print("hmp:qemu-io -d /machine/peripheral/virtio%d/virtio-backend \"write -P 7 %d 64k\"" % (i, off))
' "$1" "${sizes[@]}" | tr '\n' '\0' | xargs -0 $QMP >/dev/null
}
stats() { # VALUES...: median min max
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f %.3f %.3f", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

ref=() full=() inc=()
for r in $(seq "$ROUNDS"); do
	rm -rf "$dir/st" "$dir"/*.vma "$dir"/conv*
	ref+=("$(secs sh -c "for i in 0 1 2; do qemu-img convert -U -O raw $dir/d\$i.qcow2 $dir/conv\$i; done")")
	rm -f "$dir"/conv*
	full+=("$(secs "$VMABACK" backup --set b --state-dir "$dir/st" --qmp "$dir/q.sock" -o "$dir/full.vma" -q)")
	dirty "$r"
	inc+=("$(secs "$VMABACK" backup --set b --state-dir "$dir/st" --qmp "$dir/q.sock" -o "$dir/inc.vma" -q)")
done
read -r rm rlo rhi <<<"$(stats "${ref[@]}")"
read -r fm flo fhi <<<"$(stats "${full[@]}")"
read -r im ilo ihi <<<"$(stats "${inc[@]}")"
echo "qmp bench: VM with 3 qcow2 disks, ${TOTAL} MiB in all, every cluster written; $ROUNDS rounds (median, min-max)"
echo "  qemu-img convert (3 disks)     ${rm}s ($rlo-$rhi)"
echo "  vmaback --qmp full             ${fm}s ($flo-$fhi)   $(awk -v a="$fm" -v b="$rm" 'BEGIN { printf "%.2f", a / b }') x qemu-img convert"
echo "  vmaback --qmp incremental, 1%  ${im}s ($ilo-$ihi)   $(awk -v a="$im" -v b="$fm" 'BEGIN { printf "%.3f", a / b }') x full"
