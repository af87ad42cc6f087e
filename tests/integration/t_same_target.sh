# t_same_target.sh: two restore targets that are one file or device, and a
# backup written onto one of its own sources, are refused before anything is
# written, with --force too (by path, by inode, by the device a node names).
. "$T_SRCDIR/lib.sh"

# an archive of two drives, a (1 MiB) and b (300 KiB)
two() {
	rand a 1048576
	rand b 300000
	vb backup -q -d a=a -d b=b -o x.vma
}

# nothing but the fixture is in the directory
untouched() {
	local got
	got=$(ls -A | tr '\n' ' ')
	[ "$got" = "$1" ] || fail "the directory holds '$got', expected '$1'"
}

targets_by_path() {
	two
	for f in "" --force; do
		run vb restore x.vma --target a=out --target b=./out $f
		expect_fail 2 restore 'drives a and b have the same target \(out, \./out\)'
		untouched "a b x.vma "
	done
	# a --target onto the file --to gives another drive
	mkdir r
	run vb restore x.vma --to r --target a=r/disk-b.raw --force
	expect_fail 2 restore 'drives a and b have the same target'
	[ -z "$(ls -A r)" ] || fail "r is not empty: $(ls -A r)"
}

targets_by_inode() {
	two
	rand old 4096
	cp old keep
	ln old link
	ln -s old sym
	for f in "" --force; do
		run vb restore x.vma --target a=link --target b=sym $f
		expect_fail 2 restore 'drives a and b have the same target \(link, sym\)'
		same old keep
	done
	untouched "a b keep link old sym x.vma "
}

targets_by_device() {
	two
	truncate -s 2M disk
	local dev
	loopdev disk # (root also for mknod)
	dev=$DEV
	# a second node for the same device
	mknod node b "$(stat -c '%t' "$dev" | xargs printf '%d')" \
		"$(stat -c '%T' "$dev" | xargs printf '%d')"
	run vb restore x.vma --target a="$dev" --target b=node --force
	expect_fail 2 restore "drives a and b have the same target \($dev, node\)"
	cmp -s -n 2097152 disk /dev/zero || fail "the device was written"
	losetup -d "$dev"
	trap - EXIT
}

output_onto_source() {
	rand a 1048576
	cp a keep
	ln a hard
	for f in "" --force; do
		run vb backup -d d=a -o a $f
		[ "$RC" -ne 0 ] || fail "backup onto its own source succeeded"
		run vb backup -d d=raw:a -o hard --force
		expect_fail 2 backup "the output hard is drive d's source a.*refused"
		same a keep
	done
	untouched "a hard keep "
}

output_onto_device() {
	rand disk 1048576
	cp disk keep
	local dev
	loopdev disk
	dev=$DEV
	ln -s "$dev" link
	run vb backup -d d="$dev" -o link --force
	expect_fail 2 backup "the output link is drive d's source $dev.*refused"
	[ -L link ] || fail "the symbolic link was replaced"
	same disk keep
	losetup -d "$dev"
	trap - EXIT
}

tcase targets_by_path targets_by_path
tcase targets_by_inode targets_by_inode
tcase targets_by_device targets_by_device
tcase output_onto_source output_onto_source
tcase output_onto_device output_onto_device
