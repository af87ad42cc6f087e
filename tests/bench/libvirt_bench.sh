#!/bin/bash
# libvirt_bench.sh: `make bench`'s libvirt part: vmaback backup --domain side
# by side with virtnbdbackup (Debian package virtnbdbackup) in one run, on
# the same TCG domain with 3 qcow2 disks (a private session libvirtd,
# tests/integration/libvirt_lib.sh): full, incremental after the guest
# rewrote 1% of the disks, and the restore of that chain, with the spread
# of the rounds; every restore is compared with the disks. Then the
# SIGKILL case for both: a nightly incremental killed while it reads (the
# guest wrote 10% since the last backup), more writes, then the commands
# it takes to get the next incremental through, and whether the restore of
# the chain matches the disks (vmaback's killed run has --bwlimit 4M, so
# that the kill lands while it reads; virtnbdbackup is slower anyway). Skips (exit 0, with a message) when
# libvirtd cannot start a domain here.
#
# Env: VMABACK, BENCH_ROUNDS (default 3), LV_BENCH_MIB (the 3 disks' total
# in MiB, default 128).
set -u

VMABACK=${VMABACK:-vmaback}
ROUNDS=${BENCH_ROUNDS:-3}
TOTAL=${LV_BENCH_MIB:-128}
PYTHON=python3
skip() {
	echo "libvirt bench: skipped: $*" >&2
	exit 0
}
need() {
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || skip "$p is not installed (make deps)"
	done
}
. "$(cd "$(dirname "$0")/../integration" && pwd)/libvirt_lib.sh"
need virtnbdbackup virtnbdrestore qemu-nbd
lv_up
# lv_up's trap removes $L; the backups go there too (one directory)
B=$L/bench
mkdir -p "$B"
[ "$(id -u)" != 0 ] || chown 65534:65534 "$B"

# ------------------------------------------------------------ the domain

sizes=("$((TOTAL / 2))" "$((TOTAL / 4))" "$((TOTAL - TOTAL / 2 - TOTAL / 4))")
disks=""
for i in 0 1 2; do
	f=$L/img/d$i.qcow2
	qemu-img create -q -f qcow2 "$f" "${sizes[$i]}M"
	# every cluster data: a 1 MiB write of its own pattern per MiB
	$PYTHON -c '
import sys
for m in range(int(sys.argv[1])):
    print("write -P %d %dM 1M" % (m % 251 + 1, m))
' "${sizes[$i]}" | qemu-io -f qcow2 "$f" >/dev/null
	disks="$disks<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
	disks="$disks<source file='$f'/><target dev='vd$(printf "\\x$((61 + i))")' bus='virtio'/></disk>"
done
[ "$(id -u)" != 0 ] || chown -R 65534:65534 "$L/img"
cat >"$L/bt.xml" <<EOF
<domain type='qemu'><name>bt</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>$(command -v qemu-system-x86_64)</emulator>$disks
<video><model type='none'/></video><memballoon model='none'/></devices></domain>
EOF
virsh -q -c "$URI" create "$L/bt.xml" >"$L/create.out" 2>&1 ||
	skip "libvirt cannot start a TCG domain here: $(head -c 300 "$L/create.out")"

# dirty SEED PERCENT: 64 KiB guest writes (HMP qemu-io on the virtio
# backends, as a guest's) over PERCENT of each disk, in one HMP batch
dirty() {
	$PYTHON -c '
import random, sys
r = random.Random(int(sys.argv[1])); pct = int(sys.argv[2])
for i, s in enumerate(int(x) for x in sys.argv[3:]):
    for _ in range(max(1, s * 16 * pct // 100)):
        off = r.randrange(0, s * 16) * 65536
        print("virtio-disk%d %d %d" % (i, off, r.randrange(1, 250)))
' "$1" "$2" "${sizes[@]}" | while read -r dev off pat; do
		virsh -q -c "$URI" qemu-monitor-command --hmp bt \
			"qemu-io -d /machine/peripheral/$dev/virtio-backend \"write -P $pat $off 64k\"" >/dev/null
	done
}

secs() { # COMMAND...: wall seconds; the command's output in $B/last.out
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >"$B/last.out" 2>&1 || { echo "libvirt bench: $* failed: $(tail -3 "$B/last.out")" >&2; exit 1; }
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
stats() { # VALUES...: median min max
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f %.2f %.2f", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
# same DIR EXT: the restored images DIR/*EXT (disk order) match the disks
same() {
	local i=0 f ok=yes
	for f in $(ls "$1"/*"$2" | sort); do
		qemu-img compare -q -U "$f" "$L/img/d$i.qcow2" >/dev/null 2>&1 || ok=no
		i=$((i + 1))
	done
	[ $i = 3 ] || ok="no ($i images)"
	echo $ok
}

vb() { # vmaback backup of bt into $B/NAME.vma
	local name=$1
	shift
	"$VMABACK" backup --set bt --state-dir "$B/st" --domain bt --connect "$URI" \
		--scratch-dir "$L/scr" -o "$B/$name.vma" -q "$@"
}
# virtnbdbackup takes every qemu+ URI for a remote one (and asks for a
# password): qemu:///session as the daemon's user (nobody when root),
# which finds the daemon through XDG_RUNTIME_DIR
VURI=qemu:///session
VAS=("${AS[@]}" env XDG_RUNTIME_DIR="$L/run" HOME="$L/home")
vnb() { # virtnbdbackup of bt into DIR, level LEVEL
	"${VAS[@]}" virtnbdbackup -U "$VURI" -d bt -l "$2" -o "$1" -S "$L/scr" -f "$L/scr/vnb.sock" -n "${@:3}"
}
vnbr() { # virtnbdrestore of DIR into OUT
	"${VAS[@]}" virtnbdrestore -U "$VURI" -i "$1" -o "$2" -f "$L/scr/vnbr.sock" -n
}

# ------------------------------------------------------------ the rounds

# virtnbdbackup refuses to run beside another program's checkpoint: each
# tool's turn starts from none (deleted with their bitmaps)
drop_ckpts() {
	local c
	for c in $(virsh -q -c "$URI" checkpoint-list bt --name --topological 2>/dev/null | tac); do
		virsh -q -c "$URI" checkpoint-delete bt "$c" >/dev/null
	done
}

vf=() vi=() vr=() nf=() ni=() nr=() vsame=yes nsame=yes
for r in $(seq "$ROUNDS"); do
	drop_ckpts
	rm -rf "$B/st" "$B"/*.vma "$B/vnb" "$B/rv" "$B/rn"
	t=$(secs vnb "$B/vnb" full) || exit 1
	nf+=("$t")
	dirty "$r" 1
	t=$(secs vnb "$B/vnb" inc) || exit 1
	ni+=("$t")
	t=$(secs vnbr "$B/vnb" "$B/rn") || exit 1
	nr+=("$t")
	[ "$(same "$B/rn" .qcow2)" = yes ] || nsame="no (round $r)"
	drop_ckpts
	t=$(secs vb full --mode full) || exit 1
	vf+=("$t")
	dirty "$((r + 50))" 1
	t=$(secs vb inc --mode incremental) || exit 1
	vi+=("$t")
	t=$(secs "$VMABACK" restore "$B/full.vma" "$B/inc.vma" --to "$B/rv" -q) || exit 1
	vr+=("$t")
	[ "$(same "$B/rv" .raw)" = yes ] || vsame="no (round $r)"
done

# ------------------------------------------------------------ SIGKILL

# kill9 COMMAND...: starts it (a program, not a function: $! is its PID),
# SIGKILLs it once libvirt runs its backup job and 0.2 s more (it reads
# then); "killed", or "finished" if it ended first.
kill9() {
	"$@" >"$B/killed.out" 2>&1 &
	local pid=$! i
	for i in $(seq 1 400); do
		if virsh -q -c "$URI" backup-dumpxml bt >/dev/null 2>&1; then
			sleep 0.2
			kill -9 $pid 2>/dev/null && { wait $pid 2>/dev/null; echo killed; return; }
		fi
		kill -0 $pid 2>/dev/null || break
		sleep 0.01
	done
	wait $pid 2>/dev/null
	echo finished
}
# until_ok COMMAND...: runs it; on failure "virtnbdbackup -k" (its cleanup
# of a left backup job), then the command again: the commands it took
vnb_next() {
	if vnb "$@" >"$B/next.out" 2>&1; then echo 1; return; fi
	"${VAS[@]}" virtnbdbackup -U "$VURI" -d bt -k -o "$B/vnbk" >>"$B/next.out" 2>&1
	rm -rf "$B/vnbk"
	if vnb "$@" >>"$B/next.out" 2>&1; then echo 3; return; fi
	echo "failed ($(tail -1 "$B/next.out"))"
}

drop_ckpts
rm -rf "$B/st" "$B"/*.vma "$B/vnb" "$B/rv" "$B/rn"
vnb "$B/vnb" full >/dev/null 2>&1 || { echo "libvirt bench: virtnbdbackup full failed" >&2; exit 1; }
dirty 103 10
nk=$(kill9 "${VAS[@]}" virtnbdbackup -U "$VURI" -d bt -l inc -o "$B/vnb" -S "$L/scr" \
	-f "$L/scr/vnb.sock" -n)
dirty 104 1
nc=$(vnb_next "$B/vnb" inc)
nrc=0
vnbr "$B/vnb" "$B/rn" >"$B/restore.out" 2>&1 || nrc=$?
nks=$(same "$B/rn" .qcow2)

drop_ckpts
vb full --mode full || exit 1
dirty 101 10
vk=$(kill9 "$VMABACK" backup --set bt --state-dir "$B/st" --domain bt --connect "$URI" \
	--scratch-dir "$L/scr" -o "$B/dead.vma" -q --mode incremental --bwlimit 4M)
dirty 102 1
vc=1
vb inc --mode incremental || vc="failed"
"$VMABACK" restore "$B/full.vma" "$B/inc.vma" --to "$B/rv" -q || vc="$vc, restore failed"
vks=$(same "$B/rv" .raw)

read -r vfm vflo vfhi <<<"$(stats "${vf[@]}")"
read -r vim vilo vihi <<<"$(stats "${vi[@]}")"
read -r vrm vrlo vrhi <<<"$(stats "${vr[@]}")"
read -r nfm nflo nfhi <<<"$(stats "${nf[@]}")"
read -r nim nilo nihi <<<"$(stats "${ni[@]}")"
read -r nrm nrlo nrhi <<<"$(stats "${nr[@]}")"
echo "libvirt bench: TCG domain, 3 qcow2 disks, ${TOTAL} MiB in all, every cluster written; $ROUNDS rounds (median, min-max seconds)"
echo "                      vmaback --domain        virtnbdbackup $(virtnbdbackup -V 2>&1 | tail -1)"
printf '  full              %5s (%s-%s)      %5s (%s-%s)\n' "$vfm" "$vflo" "$vfhi" "$nfm" "$nflo" "$nfhi"
printf '  incremental, 1%%   %5s (%s-%s)      %5s (%s-%s)\n' "$vim" "$vilo" "$vihi" "$nim" "$nilo" "$nihi"
printf '  restore full+inc  %5s (%s-%s)      %5s (%s-%s)\n' "$vrm" "$vrlo" "$vrhi" "$nrm" "$nrlo" "$nrhi"
printf '  restores match    %-22s  %s\n' "$vsame" "$nsame"
printf '  commands a night  %-22s  %s\n' "1 (backup --domain)" "1 (virtnbdbackup -l inc)"
echo "  SIGKILL mid-incremental (10% written before, 1% after):"
printf '    the kill          %-22s  %s\n' "$vk" "$nk"
printf '    commands after    %-22s  %s\n' "$vc" "$nc"
printf '    restore matches   %-22s  %s (virtnbdrestore exit %s)\n' "$vks" "$nks" "$nrc"
[ "$nrc" = 0 ] || echo "    virtnbdrestore: $(grep -E 'ERROR|CRITICAL' "$B/restore.out" | tail -1 | cut -c1-200)"
[ "$nc" = 1 ] || echo "    virtnbdbackup after the kill: $(grep -E 'ERROR|CRITICAL' "$B/next.out" | head -1 | cut -c1-200)"
