# t_source_format.sh: a source's format comes from its spec (FMT: prefix) or
# a regular file's name (.qcow2, ...), never from its content: a raw disk
# (file or block device) whose guest wrote an image header into it is backed
# up as raw, byte for byte (design.md §5).
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"

# planted DISK HEADER: DISK is 4 MiB of random bytes that start with the
# whole of the image file HEADER (as a guest writing it would leave them).
planted() {
	rand "$1" 4194304
	dd if="$2" of="$1" conv=notrunc status=none
}

# raw_exact SPEC DISK: backs up SPEC as drive d, which is raw, and restores
# exactly DISK's bytes.
raw_exact() {
	rm -rf x a.vma
	run vb backup -d d="$1" -o a.vma
	expect_rc 0
	vb list --json a.vma | grep -q '"source": *"raw"' || fail "$1 was not read as raw"
	run vb extract a.vma x
	expect_rc 0
	same "$2" x/disk-d.raw
}

# qcow2 headers in raw files: one claiming 10 TiB (read as qcow2 it would
# write zeros for many minutes, so the timeout is short), one naming a
# backing file on the host, one with an external data file.
files() {
	need qemu-img
	qemu-img create -q -f qcow2 h10t.qcow2 10T
	qemu-img create -q -f qcow2 -u -b /etc/passwd -F raw hback.qcow2 1M
	qemu-img create -q -f qcow2 -o data_file=/etc/hostname,data_file_raw=on hdata.qcow2 1M ||
		cp hback.qcow2 hdata.qcow2
	qemu-img create -q -f vmdk hv.vmdk 1T
	for h in h10t hback hdata hv; do
		planted "$h.img" "$h".*
		cp "$h.img" "$h-noext"
		VB_TIMEOUT=60 raw_exact "$h.img" "$h.img"
		VB_TIMEOUT=60 raw_exact "$h-noext" "$h-noext"
		VB_TIMEOUT=60 raw_exact "raw:$h-noext" "$h-noext"
	done
	# raw: wins over a name ending in .qcow2
	planted fake.qcow2 h10t.qcow2
	VB_TIMEOUT=60 raw_exact raw:fake.qcow2 fake.qcow2
}

# The same on a block device (a loop device), also reached through a symlink
# whose name ends in .qcow2: only a regular file's name counts.
block_device() {
	need qemu-img
	qemu-img create -q -f qcow2 h10t.qcow2 10T
	planted disk h10t.qcow2
	local dev
	loopdev disk
	dev=$DEV
	ln -s "$dev" dev.qcow2
	VB_TIMEOUT=60 raw_exact "$dev" disk
	VB_TIMEOUT=60 raw_exact dev.qcow2 disk
	losetup -d "$dev"
	trap - EXIT
}

# A regular file named .qcow2 is a qcow2 image (by its name, not its bytes):
# one whose content is not qcow2 fails in qemu-nbd, it is never read as raw.
by_name() {
	need qemu-img qemu-nbd
	rand junk.qcow2 1048576
	run vb backup -d d=junk.qcow2 -o a.vma
	expect_fail 1 backup 'drive d: junk.qcow2: qemu-nbd cannot serve it'
	absent a.vma
}

tcase files files
tcase block_device block_device
tcase by_name by_name
