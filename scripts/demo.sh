#!/bin/sh
# demo.sh: `make demo`: backs up a generated VM disk set (two drives and a
# qemu-server.conf) to .vma.zst, lists, verifies, extracts and compares it;
# then changes a drive, makes an incremental backup and restores the chain.
set -eu

VMABACK=${VMABACK:-vmaback}
if ! command -v "$VMABACK" >/dev/null 2>&1; then
	echo "demo: no vmaback binary (set VMABACK, or run 'make demo')" >&2
	exit 1
fi
case $VMABACK in */*) VMABACK=$(cd "$(dirname "$VMABACK")" && pwd)/$(basename "$VMABACK") ;; esac
# Shown as "vmaback" in the transcript, whichever binary runs.
vmaback() { "$VMABACK" "$@"; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/vmaback-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() {
	printf '\n==> %s\n' "$*"
}
show() {
	printf '$ %s\n' "$*"
	"$@" 2>&1
}
same() {
	printf '$ cmp %s %s\n' "$1" "$2"
	cmp "$1" "$2"
	echo "  identical"
}

cd "$dir"
step "Making a sample VM in $dir"
mkdir vm100
# drive-scsi0: 64 MiB with a little data, zeros and holes (a mostly empty disk).
img0=vm100/vm-100-disk-0.raw
: >"$img0"
truncate -s 64M "$img0"
head -c 1048576 /dev/urandom | dd of="$img0" conv=notrunc status=none
head -c 2097152 /dev/zero | dd of="$img0" bs=1M seek=8 conv=notrunc status=none
head -c 300000 /dev/urandom | dd of="$img0" bs=1M seek=20 conv=notrunc status=none
head -c 4096 /dev/urandom | dd of="$img0" bs=4096 seek=16383 conv=notrunc status=none
# drive-virtio1: 1 MiB + 3 bytes, an odd size, all data.
img1=vm100/vm-100-disk-1.raw
head -c 1048579 /dev/urandom >"$img1"
cat >vm100/qemu-server.conf <<'EOF'
boot: order=scsi0
cores: 2
memory: 2048
name: demo
scsi0: local:100/vm-100-disk-0.raw,size=64M
virtio1: local:100/vm-100-disk-1.raw,size=1049088
#qmdump#map:scsi0:drive-scsi0:local:raw:
#qmdump#map:virtio1:drive-virtio1:local:raw:
EOF
ls -ls vm100

archive=vzdump-qemu-100-$(date +%Y_%m_%d-%H_%M_%S).vma.zst
step "Backing up both drives and the config into one zstd-compressed VMA archive"
echo "(backup set vm100: its checkpoints are kept in ./state for incremental backups)"
show vmaback backup --set vm100 --state-dir state --checkpoint monday \
	--drive drive-scsi0="$img0" \
	--drive drive-virtio1="$img1" \
	--config vm100/qemu-server.conf \
	-o "$archive"
ls -l "$archive"

step "Listing it (the same lines as Proxmox's 'vma list')"
show vmaback list "$archive"

step "Printing the stored qemu-server.conf"
show vmaback config "$archive"

step "Verifying every extent and that no cluster is missing"
show vmaback verify "$archive"

step "Extracting into a new directory"
show vmaback extract "$archive" "restore"
ls -ls "restore"

step "Comparing the restored disks and config with the originals"
same "$img0" restore/disk-drive-scsi0.raw
same "$img1" restore/disk-drive-virtio1.raw
same vm100/qemu-server.conf restore/qemu-server.conf

step "Restoring one drive from a stream (as from 'ssh host cat archive')"
printf '$ %s\n' "cat $archive | vmaback extract - restore2 -d drive-virtio1"
cat "$archive" | vmaback extract - restore2 -d drive-virtio1 2>&1
same "$img1" restore2/disk-drive-virtio1.raw

step "The VM writes 1 MiB to drive-scsi0; an incremental backup stores only that"
head -c 1048576 /dev/urandom | dd of="$img0" bs=1M seek=30 conv=notrunc status=none
show vmaback backup --set vm100 --state-dir state --checkpoint tuesday \
	--drive drive-scsi0="$img0" \
	--drive drive-virtio1="$img1" \
	--config vm100/qemu-server.conf \
	-o vm100-tuesday.vma.zst
ls -l "$archive" vm100-tuesday.vma.zst
show vmaback checkpoints --set vm100 --state-dir state

step "Restoring Tuesday: the full archive, then the incremental (oldest first)"
show vmaback restore "$archive" vm100-tuesday.vma.zst --to restore-tuesday
same "$img0" restore-tuesday/disk-drive-scsi0.raw
same "$img1" restore-tuesday/disk-drive-virtio1.raw

cd /
printf '\nDemo finished: every drive restored byte for byte, from a full backup and\nfrom a chain. (%s removed)\n' "$dir"
