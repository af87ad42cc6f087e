# t_qemu_nbd.sh: NBD exports as drives (nbdkit's memory and data plugins,
# qemu-nbd with a dirty bitmap, unix sockets and TCP), read errors from
# nbdkit's error filter, and restores onto an NBD export.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"

SIZE=$((32 * 1048576))

uri() {
	echo "nbd+unix:///?socket=$S/$1.sock"
}

# pull URI FILE: the export's bytes into FILE.
pull() {
	rm -f "$2"
	nbdcopy "$1" "$2" || fail "nbdcopy $1 failed"
}

# ------------------------------------------------------------------ cases

sources() {
	need nbdkit nbdcopy "$PYTHON"
	sockdir
	sparse_disk src.raw                         # 20 MiB + 3 bytes, holes and zeros
	truncate -s $SIZE src.raw
	nbdkit_up mem memory $SIZE
	nbdcopy src.raw "$(uri mem)"
	nbdkit_up dat data '@1048576 "hello" @^65536 1*65536 @30000000 "end"' size=$((SIZE + 3))
	run vb backup -d m="$(uri mem)" -d d="$(uri dat)" -o a.vma --json
	expect_rc 0
	# only data extents are read: the memory disk's data and a few blocks
	[ "$(jget "$OUT" bytes_read)" -lt $((5 * 1048576)) ] ||
		fail "read $(jget "$OUT" bytes_read) bytes of two mostly empty exports"
	vb list --json a.vma | grep -q '"source": *"nbd"' || fail "kind is not nbd"
	pull "$(uri dat)" dat.raw
	run vb restore a.vma --to r
	expect_rc 0
	same src.raw r/disk-m.raw
	same dat.raw r/disk-d.raw
	size_is r/disk-d.raw $((SIZE + 3))
}

tcp() {
	need nbdkit nbdcopy "$PYTHON"
	sockdir
	local port
	port=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	rand small.raw 300001
	nbdkit -i 127.0.0.1 -p "$port" -P "$S/tcp.pid" file small.raw || fail "nbdkit did not start"
	run vb backup -d t="nbd://127.0.0.1:$port/" -o t.vma
	expect_rc 0
	run vb restore t.vma --to r
	expect_rc 0
	same small.raw r/disk-t.raw
}

read_error() {
	need nbdkit "$PYTHON"
	sockdir
	# every read fails; the first data is at 8 MiB, after holes that are
	# not read, so the error comes mid-drive
	nbdkit_up bad --filter=error data '@8388608 "x" @16777216 "y"' size=$SIZE \
		error-pread=EIO error-pread-rate=100%
	rand ok.raw 100000
	run vb backup --set s --state-dir "$PWD/st" -d a=ok.raw -d b="$(uri bad)" -o x.vma
	expect_fail 1 backup 'drive b: read error at offset 8388608: .*Input/output error'
	absent x.vma
	run vb checkpoints --set s --state-dir "$PWD/st" --json
	expect_rc 0
	[ "$(py -c 'import json, sys; print(len(json.load(sys.stdin)["checkpoints"]))' <"$OUT")" = 0 ] ||
		fail "a checkpoint was committed"
	[ "$(ls -A | grep '^\.' || true)" = "" ] || fail "a temporary file was left: $(ls -A)"
}

# Without a state the next chunk is read on a helper thread while the one
# before is written: its read error (chunk 2 of an 8 MiB-deep failure,
# after chunk 1 of real data was written) fails the backup the same way.
read_error_ahead() {
	need nbdkit "$PYTHON"
	sockdir
	rand ok.raw 6000000
	nbdkit_up okd file ok.raw
	nbdkit_up bad --filter=error data '@8388608 "x" @16777216 "y"' size=$SIZE \
		error-pread=EIO error-pread-rate=100%
	run vb backup -d a="$(uri okd)" -d b="$(uri bad)" -o x.vma
	expect_fail 1 backup 'drive b: read error at offset 8388608: .*Input/output error'
	absent x.vma
	[ "$(ls -A | grep '^\.' || true)" = "" ] || fail "a temporary file was left: $(ls -A)"
	run vb backup -d a="$(uri okd)" -o y.vma
	expect_rc 0
	run vb restore y.vma --to r
	expect_rc 0
	same ok.raw r/disk-a.raw
}

# qemu-nbd serving a qcow2 with its persistent bitmap: --bitmap reads the
# export's qemu:dirty-bitmap context, and only the dirty clusters.
nbd_bitmap() {
	need qemu-img qemu-io qemu-nbd nbdinfo "$PYTHON"
	sockdir
	qemu-img create -q -f qcow2 d.qcow2 $SIZE
	qemu-io -f qcow2 -c 'write -P 0x1 0 3M' -c 'write -P 0x2 20M 1M' d.qcow2 >/dev/null
	qemu-nbd -r -t -e 4 -f qcow2 -x d -k "$S/q.sock" --fork --pid-file="$S/q.pid" d.qcow2
	run vb backup --set s --state-dir "$PWD/st" -d d="nbd+unix:///d?socket=$S/q.sock" \
		--checkpoint c0 -o c0.vma
	expect_rc 0
	kill "$(cat "$S/q.pid")"
	for _ in $(seq 1 100); do qemu-img info d.qcow2 >/dev/null 2>&1 && break; sleep 0.02; done
	qemu-img bitmap --add -g 4096 d.qcow2 since-c0
	writes 11 $SIZE 8 >w
	qwrite d.qcow2 w
	touched w | sed 's/^/1 /' >want
	qemu-nbd -r -t -e 4 -f qcow2 -B since-c0 -x d -k "$S/q.sock" --fork --pid-file="$S/q.pid" \
		d.qcow2
	run vb backup --set s --state-dir "$PWD/st" -d d="nbd+unix:///d?socket=$S/q.sock" \
		--bitmap since-c0 --mode incremental --checkpoint c1 -o c1.vma --json
	expect_rc 0
	aclusters c1.vma >got
	same_list want got "the written clusters and the clusters of c1.vma"
	[ "$(jget "$OUT" bytes_read)" -le $(($(wc -l <want) * 65536)) ] ||
		fail "read $(jget "$OUT" bytes_read) bytes"
	qemu-img convert -U -O raw d.qcow2 d.raw
	run vb restore c0.vma c1.vma --to r
	expect_rc 0
	same d.raw r/disk-d.raw
	run vb verify --deep --set s --state-dir "$PWD/st"
	expect_rc 0
}

restore_nbd() {
	need nbdkit nbdcopy "$PYTHON"
	sockdir
	sparse_disk src.raw
	run vb backup -d a=src.raw -o a.vma
	expect_rc 0
	# a target full of old data: absent blocks must become zeros
	nbdkit_up t memory $SIZE
	rand junk.raw $SIZE
	nbdcopy junk.raw "$(uri t)"
	run vb restore a.vma --target a="$(uri t)"
	expect_fail 2 restore 'onto the NBD export .* overwrites it; add --force'
	run vb restore a.vma --target a="$(uri t)" --force
	expect_rc 0
	pull "$(uri t)" back.raw
	truncate -s "$(stat -c %s src.raw)" back.raw
	same src.raw back.raw
	# too small, read-only, nobody listening
	nbdkit_up small memory 1M
	run vb restore a.vma --target a="$(uri small)" --force
	expect_fail 2 restore 'holds 1048576 bytes, the drive needs'
	nbdkit_up ro -r memory $SIZE
	run vb restore a.vma --target a="$(uri ro)" --force
	expect_fail 2 restore 'read-only'
	run vb restore a.vma --target a="$(uri nobody)" --force
	expect_fail 1 restore 'drive a: .*nobody.sock: cannot connect'
}

errors() {
	need nbdkit "$PYTHON"
	sockdir
	run vb backup -d a="$(uri nobody)" -o x.vma
	expect_fail 1 backup "drive a \\(nbd\\+unix:///\\?socket=.*nobody.sock\\): cannot connect"
	absent x.vma
	nbdkit_up dat data '@0 "abc"' size=1M
	run vb backup --set s --state-dir "$PWD/st" -d a="$(uri dat)" --checkpoint c0 -o c0.vma
	expect_rc 0
	# nbdkit offers no dirty bitmaps
	run vb backup --set s --state-dir "$PWD/st" -d a="$(uri dat)" --bitmap b --mode incremental \
		-o x.vma
	expect_fail 2 backup 'drive a: the NBD export has no dirty bitmap b'
	absent x.vma
	run vb backup --set s --state-dir "$PWD/st" -d a="$(uri dat)" --bitmap b --json -o f.vma
	expect_rc 0
	grep -q 'INFO: drive a: the NBD export has no dirty bitmap b.*; full backup' "$ERR" ||
		fail "no note on the full backup"
	[ "$(jget "$OUT" kind)" = full ] || fail "not a full backup"
	nbdkit_up empty null 0
	run vb backup -d e="$(uri empty)" -o e.vma
	expect_fail 2 backup 'drive e .* is empty'
}

tcase sources sources
tcase tcp tcp
tcase read_error read_error
tcase read_error_ahead read_error_ahead
tcase nbd_bitmap nbd_bitmap
tcase restore_nbd restore_nbd
tcase errors errors
