# t_block_devices.sh: loop devices as restore targets: a device is
# overwritten in place only with --force, every block of the drive is written
# (zeros too, since the device holds old data), a device smaller than the
# drive is refused before anything is written, and a chain restores onto one.
. "$T_SRCDIR/lib.sh"

# ones FILE BYTES: a file of 0xff bytes (old data a restore must replace).
ones() {
	head -c "$2" /dev/zero | tr '\0' '\377' >"$1"
}

# A drive of data, holes and zeros, restored onto a device full of 0xff:
# refused without --force (device untouched), then byte-exact with it.
onto_device() {
	sparse_disk d
	vb backup -q -d a=d -o x.vma
	ones dev.img $((21 * 1048576))
	cp dev.img old.img
	loopdev dev.img
	run vb restore x.vma --target a="$DEV"
	expect_fail 2 restore "$DEV is a block device.*add --force"
	cmp -s dev.img old.img || fail "the device was written without --force"
	run vb restore x.vma --target a="$DEV" --force
	expect_rc 0
	cmp -n "$(stat -c %s d)" d "$DEV" || fail "the device differs from the drive"
	# what lies past the drive's end is not the restore's to touch
	cmp -s -i "$(stat -c %s d)" dev.img old.img ||
		fail "bytes past the drive's end were changed"
}

# A device smaller than the drive: refused, nothing written.
device_too_small() {
	rand d 2097152
	vb backup -q -d a=d -o x.vma
	ones dev.img 1048576
	cp dev.img old.img
	loopdev dev.img
	run vb restore x.vma --target a="$DEV" --force
	expect_fail 2 restore "$DEV holds 1048576 bytes, drive a needs 2097152"
	cmp -s dev.img old.img || fail "the device was written"
}

# full, then an incremental: restoring the incremental onto a device gives
# the latest bytes, the full's clusters included.
chain_onto_device() {
	rand d 3145728
	vb backup -q --set s --state-dir st -d a=d -o f.vma
	put d 1048576 65536
	put d 2097152 65536 /dev/zero
	vb backup -q --set s --state-dir st -d a=d -o i.vma
	ones dev.img 3145728
	loopdev dev.img
	run vb restore f.vma i.vma --target a="$DEV" --force
	expect_rc 0
	cmp d "$DEV" || fail "the device differs from the latest drive"
}

tcase onto_device onto_device
tcase device_too_small device_too_small
tcase chain_onto_device chain_onto_device
