# t_bad_archives.sh: inputs that are not VMA, truncated or corrupted archives,
# and unsafe device names: exit 3, a message, and nothing half-extracted left.
. "$T_SRCDIR/lib.sh"

# refuse_all FILE ERE: verify and extract of FILE, and of it on stdin, are
# exit 3 and leave no DIR (checked first, for all four), with a message matching ERE.
refuse_all() {
	local f=$1 re=$2 i
	mkdir -p "$T_WORK/.io/$T_CASE/ra"
	for i in 1 2 3 4; do
		case $i in
		1) run vb verify "$f" ;;
		2) run vb extract "$f" x ;;
		3) runin "$f" vb verify - ;;
		4) runin "$f" vb extract - x ;;
		esac
		cp "$ERR" "$T_WORK/.io/$T_CASE/ra/err$i"
		expect_rc 3
		absent x
	done
	for i in 1 2 3 4; do
		case $i in
		1 | 3) c=verify ;;
		*) c=extract ;;
		esac
		cp "$T_WORK/.io/$T_CASE/ra/err$i" "$ERR"
		LAST="$c ($i) of $f"
		expect_msg "$c" "$re"
	done
}

NOTVMA='not a vma|magic|unknown|not an archive|format|empty|short|truncat'

not_vma() {
	rand random.bin 65536
	refuse_all random.bin "$NOTVMA"
	run vb list random.bin
	expect_fail 3 list "$NOTVMA"
	printf 'memory: 512\nname: not an archive\n' >text.vma
	refuse_all text.vma "$NOTVMA"
	: >empty.vma
	refuse_all empty.vma "$NOTVMA"
	run vb list empty.vma
	expect_fail 3 list "$NOTVMA"
	# "VMA\0" and nothing else
	printf 'VMA\0' >magic-only.vma
	refuse_all magic-only.vma 'short|truncat|unexpected end|header'
	entries . random.bin text.vma empty.vma magic-only.vma
}

# make_archive: a.vma, one 10 MiB random drive (160 clusters: 3 extents) and
# a small one; made once per script, copied into each case.
make_archive() {
	local fix=$T_WORK/.fixture
	if [ ! -f "$fix/a.vma" ]; then
		mkdir -p "$fix/src"
		rand "$fix/src/d" 10485760
		rand "$fix/src/e" 3000
		run vb backup --drive drive-scsi0="$fix/src/d" --drive drive-scsi1="$fix/src/e" \
			-o "$fix/a.vma" --quiet
		expect_rc 0
	fi
	cp "$fix/a.vma" a.vma
	HSIZE=$(vma_field a.vma 56 4)
	EXTENTS=$(extent_offsets a.vma | tr '\n' ' ')
	[ "$(echo $EXTENTS | wc -w)" -ge 3 ] || fail "a.vma has extents at [$EXTENTS], expected 3 or more"
	[ "$(echo $EXTENTS | cut -d' ' -f1)" = "$HSIZE" ] || fail "first extent not at header_size $HSIZE"
}

truncated_header() {
	make_archive
	head -c 6000 a.vma >cut.vma
	refuse_all cut.vma 'truncat|short|unexpected end|header'
	run vb list cut.vma
	expect_fail 3 list 'truncat|short|unexpected end|header'
	head -c $((HSIZE - 1)) a.vma >cut2.vma
	refuse_all cut2.vma 'truncat|short|unexpected end|header'
}

truncated_extent() {
	make_archive
	local second
	second=$(echo $EXTENTS | cut -d' ' -f2)
	# inside the data of the first extent
	head -c $((HSIZE + 512 + 1000)) a.vma >cut1.vma
	refuse_all cut1.vma 'truncat|short|unexpected end|extent'
	# inside the header of the second extent
	head -c $((second + 100)) a.vma >cut2.vma
	refuse_all cut2.vma 'truncat|short|unexpected end|extent'
	# one byte short of the end
	head -c $(($(stat -c %s a.vma) - 1)) a.vma >cut3.vma
	refuse_all cut3.vma 'truncat|short|unexpected end|extent'
}

# Cut exactly at an extent boundary: every extent is whole, clusters are missing.
truncated_boundary() {
	make_archive
	local last
	last=$(echo $EXTENTS | awk '{ print $NF }')
	head -c "$last" a.vma >cut.vma
	refuse_all cut.vma 'missing cluster'
	run vb list cut.vma
	expect_rc 0    # list reads the header only
	# The header alone: no extent at all.
	head -c "$HSIZE" a.vma >hdr.vma
	refuse_all hdr.vma 'missing cluster'
	# The same cut stream compressed, as a vzdump archive would be.
	zstd -q -c cut.vma >cut.vma.zst
	refuse_all cut.vma.zst 'missing cluster'
}

# The same on an archive of another writer (no vmaback.json to compare with).
truncated_boundary_proxmox() {
	have_forge || skip "vma_forge not built"
	mkdir src
	rand src/d 10485760
	rand src/e 3000
	forge -o a.vma --extent-clusters 58 --interleave --shuffle 5 drive-scsi0=src/d drive-scsi1=src/e
	local last
	last=$(extent_offsets a.vma | tail -1)
	head -c "$last" a.vma >cut.vma
	refuse_all cut.vma 'missing cluster'
}

header_checksum() {
	make_archive
	cp a.vma bad.vma
	flip bad.vma 100      # reserved area, covered by the header MD5
	refuse_all bad.vma 'checksum|md5'
	run vb list bad.vma
	expect_fail 3 list 'checksum|md5'
	cp a.vma bad2.vma
	flip bad2.vma $((12288 + 5))   # inside the blob buffer
	refuse_all bad2.vma 'checksum|md5'
}

extent_checksum() {
	make_archive
	local second
	second=$(echo $EXTENTS | cut -d' ' -f2)
	cp a.vma bad.vma
	flip bad.vma $((second + 60))   # a blockinfo word of the second extent
	refuse_all bad.vma 'checksum|md5'
	cp a.vma bad2.vma
	flip bad2.vma "$second"         # the extent magic (the MD5 is checked first)
	refuse_all bad2.vma 'checksum|md5|magic'
}

extract_into_existing() {
	make_archive
	mkdir x
	echo keep >x/keep
	run vb extract a.vma x
	expect_fail 2 extract 'x.*exist|exist.*x'
	entries x keep
	[ "$(cat x/keep)" = keep ] || fail "x/keep changed"
	mkdir y
	run vb extract a.vma y
	expect_fail 2 extract 'exist'
	empty_dir y
	echo file >z
	run vb extract a.vma z
	expect_rc 2
	[ "$(cat z)" = file ] || fail "z changed"
}

# An unknown drive for -d is a usage error, and leaves no DIR.
extract_unknown_drive() {
	make_archive
	run vb extract a.vma x -d drive-scsi0,nosuch
	expect_fail 2 extract 'nosuch'
	absent x
}

# Device names that are not safe file names: refused, nothing written anywhere.
unsafe_names() {
	have_forge || skip "vma_forge not built"
	mkdir deep
	rand deep/img 70000
	local name tried=0 i=0
	for name in '../evil' '..' '.' 'sub/evil' '/tmp/evil' "$(printf 'ctl\001x')"; do
		i=$((i + 1))
		"$TOOLS/vma_forge" -o "deep/p$i.vma" drive-scsi0=deep/img "$name=deep/img" \
			>/dev/null 2>&1 || continue
		tried=$((tried + 1))
		RC=$(cd deep && { vb extract "p$i.vma" x >"$OUT" 2>"$ERR" </dev/null; echo $?; })
		LAST="extract p$i.vma (device name '$name')"
		expect_fail 3 extract 'name|unsafe|invalid'
		absent deep/x
		[ -z "$(find "$T_WORK" -name '*evil*' -newer deep/img 2>/dev/null | grep -v '\.vma$')" ] ||
			fail "a file named like the device '$name' was written: $(find "$T_WORK" -name '*evil*')"
	done
	[ "$tried" -gt 0 ] || skip "vma_forge refuses every unsafe name"
	ls /tmp/evil* >/dev/null 2>&1 && fail "/tmp/evil was written"
	return 0
}

# patch_dev FILE DEV name=OTHER|size=N: sets device DEV's name pointer to
# that of device OTHER, or its size to N, and recomputes the header MD5 (a
# crafted archive, not damage).
patch_dev() {
	python3 - "$@" <<'PY'
import hashlib, struct, sys
f, dev, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
b = bytearray(open(f, "rb").read())
hs = struct.unpack(">I", b[56:60])[0]
e = 4096 + 32 * dev
key, val = what.split("=")
if key == "name":
    o = 4096 + 32 * int(val)
    b[e:e + 4] = b[o:o + 4]
else:
    b[e + 8:e + 16] = struct.pack(">Q", int(val))
b[32:48] = bytes(16)
b[32:48] = hashlib.md5(bytes(b[:hs])).digest()
open(f, "wb").write(b)
PY
}

# One device listed twice, in the header or in vmaback.json: refused by
# every reader (a verify that checks one drive twice misses another).
duplicate_devices() {
	have_forge || skip "vma_forge not built"
	mkdir src
	rand src/d 70000
	rand src/e 3000
	forge -o h.vma drive-scsi0=src/d drive-scsi1=src/e
	patch_dev h.vma 2 name=1
	refuse_all h.vma 'devices 1 and 2 are both named drive-scsi0'
	run vb list h.vma
	expect_fail 3 list 'both named drive-scsi0'
	run vb backup -d a=src/d -d b=src/e -o ours.vma --quiet
	expect_rc 0
	run vb config ours.vma -c vmaback.json
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d["drives"][1] = d["drives"][0]
open("vmaback.json", "w").write(json.dumps(d))' "$OUT"
	forge -o j.vma --config vmaback.json a=src/d b=src/e
	refuse_all j.vma 'lists drive a \(dev_id 1\) twice'
	run vb list j.vma
	expect_fail 3 list 'twice'
}

# A header size past 2^32 clusters (2^48 bytes), and 2^64-1 whose rounding
# to a sector overflows: refused by every reader, not read as some size.
device_too_big() {
	have_forge || skip "vma_forge not built"
	mkdir src
	rand src/d 3000
	forge -o a.vma drive-scsi0=src/d
	local size
	for size in 281474976710657 18446744073709551615; do
		cp a.vma big.vma
		patch_dev big.vma 1 size=$size
		refuse_all big.vma "device 1 \\(drive-scsi0\\): size $size is larger than a VMA archive can address \\(281474976710656 bytes"
		run vb list big.vma
		expect_fail 3 list 'larger than a VMA archive can address'
		run vb restore big.vma --to out
		expect_fail 3 restore 'larger than a VMA archive can address'
		absent out
	done
}

# Drive names: backup takes at most 242 bytes (disk-NAME.raw and Proxmox's
# tmp-disk-NAME.raw fit 255), and such a drive restores and extracts; a
# longer name from another writer is refused before anything is written;
# an lstat error other than ENOENT is reported, not taken for "exists".
long_names() {
	mkdir src
	rand src/d 3000
	local n242 n243 n251
	n242=$(printf 'a%.0s' $(seq 242))
	n243=$(printf 'b%.0s' $(seq 243))
	n251=$(printf 'c%.0s' $(seq 251))
	run vb backup -d "$n243=src/d" -o b.vma
	expect_fail 2 backup 'drive name of 243 bytes is too long: at most 242 bytes'
	absent b.vma
	run vb backup -d "$n242=src/d" -o a.vma --quiet
	expect_rc 0
	run vb restore a.vma --to r --quiet
	expect_rc 0
	cmp -s src/d "r/disk-$n242.raw" || fail "restore --to: drive of 242 bytes differs"
	run vb extract a.vma x
	expect_rc 0
	cmp -s src/d "x/disk-$n242.raw" || fail "extract: drive of 242 bytes differs"
	if have_forge; then
		forge -o c.vma drive-scsi0=src/d "$n251=src/d"
		run vb restore c.vma --to r2
		expect_fail 2 restore 'disk-NAME.raw would be longer than a file name may be \(255 bytes\); restore it with --target'
		absent r2
		run vb extract c.vma x2
		expect_fail 2 extract 'would be longer than a file name may be'
		absent x2
		run vb extract c.vma x3 -d drive-scsi0
		expect_rc 0
		run vb restore c.vma --target "$n251=r3.raw" --target drive-scsi0=r4.raw --quiet
		expect_rc 0
		cmp -s -n 3000 src/d r3.raw || fail "restore --target of a 251-byte drive name differs"
	fi
	echo file >f
	run vb restore a.vma --target "$n242=f/t.raw"
	expect_fail 2 restore 'f/t.raw: Not a directory'
}

# move_dev FILE FROM TO: moves device FROM's header entry to the empty slot
# TO and renumbers its clusters in every extent (MD5s recomputed): device
# ids with a gap, as a writer other than vmaback's may leave them.
move_dev() {
	python3 - "$@" <<'PY'
import hashlib, struct, sys
f, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = bytearray(open(f, "rb").read())
hs = struct.unpack(">I", d[56:60])[0]
ea, eb = 4096 + 32 * a, 4096 + 32 * b
d[eb:eb + 32], d[ea:ea + 32] = d[ea:ea + 32], bytes(32)
d[32:48] = bytes(16)
d[32:48] = hashlib.md5(bytes(d[:hs])).digest()
off = hs
while off < len(d):
    for s in range(59):
        w = off + 40 + 8 * s
        if d[w + 3] == a:
            d[w + 3] = b
    d[off + 24:off + 40] = bytes(16)
    d[off + 24:off + 40] = hashlib.md5(bytes(d[off:off + 512])).digest()
    off += 512 + 4096 * struct.unpack(">H", d[off + 6:off + 8])[0]
open(f, "wb").write(d)
PY
}

# merge writes only what extract accepts: device ids with a gap become
# 1..n (the drives unchanged), a config name extract refuses is refused.
merge_foreign() {
	have_forge || skip "vma_forge not built"
	mkdir src cfg
	rand src/d 200000
	rand src/e 3000
	printf 'memory: 1\n' >cfg/qemu-server.conf
	forge -o a.vma --config cfg/qemu-server.conf drive-scsi0=src/d drive-scsi1=src/e
	move_dev a.vma 2 5
	run vb verify a.vma
	expect_rc 0
	run vb merge -o m.vma a.vma
	expect_rc 0
	run vb verify m.vma
	expect_rc 0
	run vb extract a.vma xa
	expect_rc 0
	run vb extract m.vma xm
	expect_rc 0
	same xa/disk-drive-scsi0.raw xm/disk-drive-scsi0.raw
	same xa/disk-drive-scsi1.raw xm/disk-drive-scsi1.raw
	same cfg/qemu-server.conf xm/qemu-server.conf
	local bad
	bad=cfg/$(printf 'c\001x')
	printf 'x\n' >"$bad"
	forge -o b.vma --config "$bad" drive-scsi0=src/d
	run vb extract b.vma xb
	expect_fail 3 extract 'config name .* is not a safe file name'
	run vb merge -o mb.vma b.vma
	expect_fail 3 merge "config name 'c\\\\x01x' is not a safe file name; not merged"
	absent mb.vma
}

tcase not_vma not_vma
tcase truncated_header truncated_header
tcase truncated_extent truncated_extent
tcase truncated_boundary truncated_boundary
tcase header_checksum header_checksum
tcase extent_checksum extent_checksum
tcase truncated_boundary_proxmox truncated_boundary_proxmox
tcase extract_into_existing extract_into_existing
tcase extract_unknown_drive extract_unknown_drive
tcase unsafe_names unsafe_names
tcase duplicate_devices duplicate_devices
tcase long_names long_names
tcase merge_foreign merge_foreign
tcase device_too_big device_too_big
