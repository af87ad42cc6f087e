# t_proxmox_layout.sh: archives laid out like Proxmox's writer (devices mixed,
# clusters out of order, 58 per extent; built by vma_forge) extract exactly.
. "$T_SRCDIR/lib.sh"

# make_images: three images of odd sizes with data, zero runs and holes.
make_images() {
	mkdir src
	rand src/a 1000001
	put src/a 200000 300000 /dev/zero
	: >src/b
	truncate -s $((5 * 1048576 + 4097)) src/b      # 81 clusters: more than one extent
	put src/b 0 1048576
	put src/b $((3 * 1048576)) 2000000
	rand src/c 70000
	printf 'memory: 1024\nscsi0: local:100/vm-100-disk-0.raw\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n' \
		>src/qemu-server.conf
	local n
	for n in a b c; do pad512 "src/$n" "src/$n.512"; done
}

forge_set() {
	forge -o "$1" --extent-clusters 58 --interleave --shuffle "$2" \
		--config src/qemu-server.conf \
		drive-scsi0=src/a drive-scsi1=src/b drive-virtio0=src/c
}

shuffled() {
	make_images
	forge_set p.vma 42
	run vb verify p.vma
	expect_rc 0
	expect_out '^p\.vma: OK \(.*3 drives, 99 clusters'
	run vb list p.vma
	expect_rc 0
	expect_out '^DEV: dev_id=1 size: 1000448 devname: drive-scsi0$'
	expect_out "^DEV: dev_id=2 size: $((5 * 1048576 + 4608)) devname: drive-scsi1\$"
	expect_out '^DEV: dev_id=3 size: 70144 devname: drive-virtio0$'
	run vb list --json p.vma
	python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["vmaback"] is None' "$OUT" ||
		fail "list --json: a foreign archive has a vmaback object"
	run vb extract p.vma x
	expect_rc 0
	# Without vmaback.json the header size is the size: the source padded to 512.
	same src/a.512 x/disk-drive-scsi0.raw
	same src/b.512 x/disk-drive-scsi1.raw
	same src/c.512 x/disk-drive-virtio0.raw
	same src/qemu-server.conf x/qemu-server.conf
	entries x disk-drive-scsi0.raw disk-drive-scsi1.raw disk-drive-virtio0.raw qemu-server.conf
	local used
	used=$(du -k x/disk-drive-scsi1.raw | cut -f1)
	[ "$used" -lt 4096 ] || fail "disk-drive-scsi1.raw uses $used KiB of 5 MiB: not sparse"
}

# Other seeds, compressed as vzdump does, read from a pipe.
vzdump_zst() {
	make_images
	local seed
	for seed in 1 7; do
		forge_set p$seed.vma "$seed"
		zstd -q --rm p$seed.vma -o vzdump-qemu-100-2026_01_0${seed}-10_00_00.vma.zst
	done
	runin vzdump-qemu-100-2026_01_01-10_00_00.vma.zst vb extract - x
	expect_rc 0
	same src/a.512 x/disk-drive-scsi0.raw
	same src/b.512 x/disk-drive-scsi1.raw
	same src/c.512 x/disk-drive-virtio0.raw
	run vb extract vzdump-qemu-100-2026_01_07-10_00_00.vma.zst y -d drive-scsi1
	expect_rc 0
	same src/b.512 y/disk-drive-scsi1.raw
	entries y disk-drive-scsi1.raw qemu-server.conf
	run vb verify vzdump-qemu-100-2026_01_07-10_00_00.vma.zst
	expect_rc 0
}

# One cluster per extent and the most, 59, a reader must accept.
extent_sizes() {
	make_images
	local n
	for n in 1 59; do
		forge -o e$n.vma --extent-clusters $n --interleave --shuffle 3 drive-scsi0=src/a drive-scsi1=src/b
		run vb extract e$n.vma x$n
		expect_rc 0
		same src/a.512 x$n/disk-drive-scsi0.raw
		same src/b.512 x$n/disk-drive-scsi1.raw
	done
}

# pve_listed DIR: the files Proxmox's storage layer lists as backups
# (PVE::Storage's backup content: *.vma, *.tar, *.tgz, optionally compressed).
pve_listed() {
	ls "$1" | grep -E '\.(tgz|(tar|vma)(\.(gz|lzo|zst|bz2))?)$' || true
}

# In a dump directory only full archives carry names Proxmox lists as vzdump
# backups; incrementals and differentials do not, and ls and prune still
# know them (and an old incremental under a vzdump name).
dumpdir_kinds() {
	rand d.raw $((4 * 65536))
	export TZ=UTC
	mkdir dump
	local day t names
	command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
	for day in 0 1 2 3; do
		put d.raw $((day * 65536)) 10
		t=$((1704070800 + day * 86400))
		case $day in
		2) VMABACK_TEST_NOW=$t run vb backup -q --set s --state-dir st -d drive-scsi0=d.raw \
			--dumpdir dump --vmid 100 --checkpoint c$day --mode differential --since c0 ;;
		*) VMABACK_TEST_NOW=$t run vb backup -q --set s --state-dir st -d drive-scsi0=d.raw \
			--dumpdir dump --vmid 100 --checkpoint c$day ;;
		esac
		expect_rc 0
	done
	entries dump vzdump-qemu-100-2024_01_01-01_00_00.vma.zst vzdump-qemu-100-2024_01_01-01_00_00.log \
		vzdump-qemu-100-2024_01_02-01_00_00.vmainc.zst vzdump-qemu-100-2024_01_02-01_00_00.log \
		vzdump-qemu-100-2024_01_03-01_00_00.vmadiff.zst vzdump-qemu-100-2024_01_03-01_00_00.log \
		vzdump-qemu-100-2024_01_04-01_00_00.vmainc.zst vzdump-qemu-100-2024_01_04-01_00_00.log
	names=$(pve_listed dump)
	[ "$names" = vzdump-qemu-100-2024_01_01-01_00_00.vma.zst ] ||
		fail "Proxmox would list as backups: $names"
	run vb ls --dumpdir dump --json
	expect_rc 0
	[ "$(jq_py "$OUT" '[x["kind"] for x in d]')" = \
		"['full', 'incremental', 'differential', 'incremental']" ] ||
		fail "ls: $(jq_py "$OUT" '[x["kind"] for x in d]')"
	[ "$(jq_py "$OUT" '[x["complete"] for x in d]')" = "[True, True, True, True]" ] ||
		fail "ls: chains $(cat "$OUT")"
	run vb restore -q dump/vzdump-qemu-100-2024_01_01-01_00_00.vma.zst \
		dump/vzdump-qemu-100-2024_01_03-01_00_00.vmadiff.zst \
		dump/vzdump-qemu-100-2024_01_04-01_00_00.vmainc.zst --to r
	expect_rc 0
	same r/disk-drive-scsi0.raw d.raw
	# an incremental written by an older vmaback under a full's name
	mv dump/vzdump-qemu-100-2024_01_02-01_00_00.vmainc.zst \
		dump/vzdump-qemu-100-2024_01_02-01_00_00.vma.zst
	run vb ls --dumpdir dump --json
	expect_rc 0
	[ "$(jq_py "$OUT" '[x["kind"] for x in d]')" = \
		"['full', 'incremental', 'differential', 'incremental']" ] ||
		fail "ls with an old name: $(jq_py "$OUT" '[x["kind"] for x in d]')"
	# (the state names the path an archive was written to: prune deletes that)
	mv dump/vzdump-qemu-100-2024_01_02-01_00_00.vma.zst \
		dump/vzdump-qemu-100-2024_01_02-01_00_00.vmainc.zst
	run vb prune --set s --state-dir st --dumpdir dump --keep-last 1
	expect_rc 0
	entries dump vzdump-qemu-100-2024_01_01-01_00_00.vma.zst vzdump-qemu-100-2024_01_01-01_00_00.log \
		vzdump-qemu-100-2024_01_03-01_00_00.vmadiff.zst vzdump-qemu-100-2024_01_03-01_00_00.log \
		vzdump-qemu-100-2024_01_04-01_00_00.vmainc.zst vzdump-qemu-100-2024_01_04-01_00_00.log
	# a synthetic full of the chain is a full: a full's name is what it gets
	run vb merge -q dump/vzdump-qemu-100-2024_01_01-01_00_00.vma.zst \
		dump/vzdump-qemu-100-2024_01_03-01_00_00.vmadiff.zst \
		dump/vzdump-qemu-100-2024_01_04-01_00_00.vmainc.zst -o m.vma
	expect_rc 0
	run vb ls --dumpdir . --json
	[ "$(jq_py "$OUT" '[x["kind"] for x in d]')" = "['full']" ] || fail "merge: $(cat "$OUT")"
}

tcase dumpdir_kinds dumpdir_kinds
tcase shuffled shuffled
tcase vzdump_zst vzdump_zst
tcase extent_sizes extent_sizes
