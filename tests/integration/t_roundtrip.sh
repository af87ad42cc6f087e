# t_roundtrip.sh: backup then extract gives back the exact source bytes, for
# odd sizes, sparse images, plain/.zst archives, files, pipes and block devices.
. "$T_SRCDIR/lib.sh"

SIZES="1 511 4097 65535 65537 65536"

# make_set: src/ with one drive per odd size, a sparse 20 MiB image and two configs.
make_set() {
	mkdir src
	for s in $SIZES; do
		rand "src/d$s" "$s"
	done
	sparse_disk src/sparse
	printf 'boot: order=scsi0\nmemory: 2048\nscsi0: local:100/vm-100-disk-0.raw,size=1M\n' \
		>src/qemu-server.conf
	rand src/blob.bin 3000
	DRIVES=""
	for s in $SIZES; do
		DRIVES="$DRIVES --drive drive-scsi$s=src/d$s"
	done
	DRIVES="$DRIVES --drive drive-virtio0=src/sparse"
	CONFIGS="--config src/qemu-server.conf --config src/blob.bin"
}

# check_extract DIR: DIR holds exactly the set, byte for byte.
check_extract() {
	local d=$1 want="qemu-server.conf blob.bin vmaback.json disk-drive-virtio0.raw" s
	for s in $SIZES; do
		want="$want disk-drive-scsi$s.raw"
		same "src/d$s" "$d/disk-drive-scsi$s.raw"
		mode_is "$d/disk-drive-scsi$s.raw" 600
	done
	same src/sparse "$d/disk-drive-virtio0.raw"
	same src/qemu-server.conf "$d/qemu-server.conf"
	same src/blob.bin "$d/blob.bin"
	mode_is "$d/qemu-server.conf" 600
	mode_is "$d" 700
	# shellcheck disable=SC2086
	entries "$d" $want
	# Holes and zero blocks stay holes: ~0.5 MiB of data in 20 MiB.
	local used
	used=$(du -k "$d/disk-drive-virtio0.raw" | cut -f1)
	[ "$used" -lt 2048 ] || fail "disk-drive-virtio0.raw uses $used KiB, not sparse"
}

plain() {
	make_set
	# shellcheck disable=SC2086
	run vb backup $DRIVES $CONFIGS -o a.vma
	expect_rc 0
	expect_err 'drive'            # the one-line summary on stderr
	is_vma a.vma
	mode_is a.vma 600
	entries . src a.vma           # no temporary left behind
	run vb extract a.vma x
	expect_rc 0
	check_extract x
	# The header declares sizes rounded up to 512; the exact size comes from vmaback.json.
	run vb list a.vma
	expect_rc 0
	expect_out '^DEV: dev_id=1 size: 512 devname: drive-scsi1$'
	expect_out '^DEV: dev_id=4 size: 65536 devname: drive-scsi65535$'
	expect_out '^DEV: dev_id=5 size: 66048 devname: drive-scsi65537$'
	expect_out "^DEV: dev_id=7 size: $((20 * 1048576 + 512)) devname: drive-virtio0\$"
}

zst_by_name() {
	make_set
	# shellcheck disable=SC2086
	run vb backup $DRIVES $CONFIGS -o a.vma.zst --quiet
	expect_rc 0
	[ ! -s "$ERR" ] || fail "--quiet printed on stderr"
	[ ! -s "$OUT" ] || fail "backup printed on stdout without --json"
	is_zstd a.vma.zst
	mode_is a.vma.zst 600
	zstd -q -t a.vma.zst || fail "zstd -t rejects a.vma.zst"
	run vb extract a.vma.zst x
	expect_rc 0
	check_extract x
}

zst_by_option() {
	make_set
	# shellcheck disable=SC2086
	run vb backup $DRIVES $CONFIGS --compress zstd --zstd-level 9 --zstd-threads 0 -o a.vma
	expect_rc 0
	is_zstd a.vma
	run vb extract a.vma x
	expect_rc 0
	check_extract x
	# --compress none writes plain VMA.
	# shellcheck disable=SC2086
	run vb backup $DRIVES $CONFIGS --compress none --zstd-threads 2 -o b.vma
	expect_rc 0
	is_vma b.vma
}

# backup -o - | extract - : a pipe on both ends, plain and compressed.
pipes() {
	make_set
	local rc1 rc2
	# shellcheck disable=SC2086
	vb backup $DRIVES $CONFIGS -o - 2>"$ERR" | vb extract - x 2>>"$ERR"
	rc1=${PIPESTATUS[0]} rc2=${PIPESTATUS[1]}
	LAST="backup -o - | extract - x"
	RC=$rc1 expect_rc 0
	RC=$rc2 expect_rc 0
	check_extract x
	# shellcheck disable=SC2086
	vb backup $DRIVES $CONFIGS --compress zstd -o - 2>"$ERR" | vb extract - y 2>>"$ERR"
	rc1=${PIPESTATUS[0]} rc2=${PIPESTATUS[1]}
	LAST="backup --compress zstd -o - | extract - y"
	RC=$rc1 expect_rc 0
	RC=$rc2 expect_rc 0
	check_extract y
	# A stream written to stdout is a complete archive when stored in a file.
	# shellcheck disable=SC2086
	run vb backup $DRIVES $CONFIGS -o -
	expect_rc 0
	cp "$OUT" piped.vma
	is_vma piped.vma
	runin piped.vma vb extract - z
	expect_rc 0
	check_extract z
	runin piped.vma vb verify -
	expect_rc 0
}

# --json: a JSON object on stdout, or on stderr when the archive goes to stdout.
json_summary() {
	make_set
	# shellcheck disable=SC2086
	run vb backup $DRIVES $CONFIGS --json -o a.vma
	expect_rc 0
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert isinstance(d, dict)' "$OUT" ||
		fail "backup --json: stdout is not one JSON object"
	# shellcheck disable=SC2086
	run vb backup $DRIVES $CONFIGS --json --quiet -o -
	expect_rc 0
	is_vma "$OUT"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert isinstance(d, dict)' "$ERR" ||
		fail "backup --json -o -: stderr is not one JSON object"
}

# 254 drives is the most an archive holds.
many_drives() {
	mkdir src
	local i args=""
	for i in $(seq 1 254); do
		printf 'drive %d\n' "$i" >"src/$i"
		args="$args --drive d$i=src/$i"
	done
	# shellcheck disable=SC2086
	run vb backup $args -o a.vma --quiet
	expect_rc 0
	run vb list a.vma
	expect_rc 0
	[ "$(grep -c '^DEV: ' "$OUT")" -eq 254 ] || fail "list shows $(grep -c '^DEV: ' "$OUT") devices, expected 254"
	expect_out '^DEV: dev_id=254 size: 512 devname: d254$'
	run vb extract a.vma x
	expect_rc 0
	same src/1 x/disk-d1.raw
	same src/254 x/disk-d254.raw
	[ "$(ls x | wc -l)" -eq 255 ] || fail "x holds $(ls x | wc -l) files, expected 254 disks + vmaback.json"
}

# A block device source (a loop device) is read like a file.
block_device() {
	rand img 1048576
	put img 300000 65536 /dev/zero
	local dev
	loopdev img
	dev=$DEV
	run vb backup --drive drive-scsi0="$dev" -o a.vma
	losetup -d "$dev"
	trap - EXIT
	expect_rc 0
	run vb extract a.vma x
	expect_rc 0
	same img x/disk-drive-scsi0.raw
}

# Extract -d chooses drives; the configs come along.
select_drives() {
	make_set
	# shellcheck disable=SC2086
	run vb backup $DRIVES $CONFIGS -o a.vma.zst
	expect_rc 0
	run vb extract a.vma.zst x -d drive-scsi4097,drive-virtio0
	expect_rc 0
	same src/d4097 x/disk-drive-scsi4097.raw
	same src/sparse x/disk-drive-virtio0.raw
	entries x disk-drive-scsi4097.raw disk-drive-virtio0.raw qemu-server.conf blob.bin vmaback.json
	run vb extract a.vma.zst y -d drive-scsi1
	expect_rc 0
	same src/d1 y/disk-drive-scsi1.raw
}

tcase plain plain
tcase zst_by_name zst_by_name
tcase zst_by_option zst_by_option
tcase pipes pipes
tcase json_summary json_summary
tcase many_drives many_drives
tcase block_device block_device
tcase select_drives select_drives
