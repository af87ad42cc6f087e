# t_qemu_qcow2.sh: qcow2 and other image files as drives (through qemu-nbd),
# the checkpoint bitmaps vmaback keeps in qcow2 files, --bitmap, bitmaps
# that cannot be used, images in use, failed runs, restores into qcow2.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"

SIZE=$((64 * 1048576))

# img FILE: a 64 MiB qcow2 with data, a zero cluster range and holes.
img() {
	qemu-img create -q -f qcow2 "$1" $SIZE
	qemu-io -f qcow2 -c 'write -P 0xaa 0 2M' -c 'write -z 4M 1M' -c 'write -P 0 8M 64k' \
		-c 'write -P 0x11 20M 100k' -c 'write -P 0x22 63M 1M' "$1" >/dev/null
}

# bk ARGS...: a backup of set s (state in ./st) with --json.
bk() {
	run vb backup --set s --state-dir "$PWD/st" --json "$@"
}

# ------------------------------------------------------------------ cases

kinds() {
	need qemu-img qemu-io qemu-nbd "$PYTHON"
	img a.qcow2
	qemu-img convert -O raw a.qcow2 a.raw
	# a plain path named .qcow2 is read as qcow2, through qemu-nbd
	run vb backup -d a=a.qcow2 -o p.vma
	expect_rc 0
	vb list --json p.vma | grep -q '"source": *"qcow2"' || fail "kind is not qcow2"
	run vb restore p.vma --to r1
	expect_rc 0
	same a.raw r1/disk-a.raw
	# qcow2: names the format; raw: reads the file's bytes as they are
	run vb backup -d a=qcow2:a.qcow2 -d f=raw:a.qcow2 -o q.vma
	expect_rc 0
	run vb restore q.vma --to r2
	expect_rc 0
	same a.raw r2/disk-a.raw
	same a.qcow2 r2/disk-f.raw
	# other formats QEMU reads
	qemu-img convert -O vmdk a.qcow2 a.vmdk
	run vb backup -d v=vmdk:a.vmdk -o v.vma
	expect_rc 0
	run vb restore v.vma --to r3
	expect_rc 0
	same a.raw r3/disk-v.raw
	# a backing chain is read as QEMU reads it, by prefix or by name; the
	# same bytes under another name are raw
	qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 top.qcow2
	qemu-io -f qcow2 -c 'write -P 0x44 1M 64k' top.qcow2 >/dev/null
	qemu-img convert -O raw top.qcow2 top.raw
	cp top.qcow2 top.img
	run vb backup -d t=qcow2:top.qcow2 -d u=top.qcow2 -d i=top.img -o t.vma
	expect_rc 0
	run vb restore t.vma --to r4
	expect_rc 0
	same top.raw r4/disk-t.raw
	same top.raw r4/disk-u.raw
	same top.img r4/disk-i.raw
	# messages name the drive and the file
	run vb backup -d m=qcow2:missing.qcow2 -o m.vma
	expect_fail 2 backup 'drive m: cannot open missing.qcow2'
	run vb backup -d m=qcow2: -o m.vma
	expect_fail 2 backup 'drive m: qcow2:: no path'
	run vb backup -d m=qcow2:a.raw -o m.vma
	expect_fail 1 backup 'drive m: a.raw: qemu-nbd cannot serve it: .*qcow2'
}

# A full and three incrementals through the checkpoint bitmaps: each reads
# exactly the clusters the seeded writes touched, the bitmaps rotate, and
# every prefix of the chain restores the image as it was.
chain() {
	need qemu-img qemu-io qemu-nbd nbdinfo "$PYTHON"
	img d.qcow2
	bk -d d=d.qcow2 --checkpoint c0 -o c0.vma
	expect_rc 0
	qemu-img convert -O raw d.qcow2 c0.raw
	[ "$(bitmaps d.qcow2)" = "vmaback/s/c0 auto" ] || fail "after c0: $(bitmaps d.qcow2)"
	for k in 1 2 3; do
		writes $((40 + k)) $SIZE 12 >w$k
		qwrite d.qcow2 w$k
		touched w$k >want$k
		dmap d.qcow2 vmaback/s/c$((k - 1)) >map$k
		same_list want$k map$k "the written clusters and bitmap vmaback/s/c$((k - 1))"
		bk -d d=d.qcow2 --checkpoint c$k -o c$k.vma
		expect_rc 0
		[ "$(jget "$OUT" kind)" = incremental ] || fail "c$k is not incremental"
		[ "$(jget "$OUT" dirty_clusters)" = "$(wc -l <want$k)" ] ||
			fail "c$k: $(jget "$OUT" dirty_clusters) changed clusters, wrote $(wc -l <want$k)"
		# nothing but the dirty clusters was read
		[ "$(jget "$OUT" bytes_read)" -le $(($(wc -l <want$k) * 65536)) ] ||
			fail "c$k read $(jget "$OUT" bytes_read) bytes"
		aclusters c$k.vma | awk '{ print $2 }' >got$k
		same_list want$k got$k "the written clusters and the clusters of c$k.vma"
		qemu-img convert -O raw d.qcow2 c$k.raw
	done
	bitmaps d.qcow2 >bm
	printf '%s\n' 'vmaback/s/c0 -' 'vmaback/s/c1 -' 'vmaback/s/c2 -' 'vmaback/s/c3 auto' >bm.want
	same_list bm.want bm "the image's bitmaps"
	run vb verify --deep --set s --state-dir "$PWD/st"
	expect_rc 0
	local chain=()
	for k in 0 1 2 3; do
		chain+=(c$k.vma)
		rm -rf r
		run vb restore "${chain[@]}" --to r
		expect_rc 0
		same c$k.raw r/disk-d.raw
	done
	# --no-bitmap finds the same (no) changes by reading everything
	bk -d d=d.qcow2 --checkpoint c4 --no-bitmap -o c4.vma
	expect_rc 0
	[ "$(jget "$OUT" dirty_clusters)" = 0 ] || fail "--no-bitmap found changes"
	[ "$(jget "$OUT" bytes_read)" -gt 1048576 ] || fail "--no-bitmap did not read the drive"
}

# --bitmap: a bitmap the user keeps, of any granularity, for one drive or all.
given() {
	need qemu-img qemu-io qemu-nbd nbdinfo "$PYTHON"
	img a.qcow2
	img b.qcow2
	bk -d a=a.qcow2 -d b=b.qcow2 --checkpoint c0 -o c0.vma
	expect_rc 0
	qemu-img bitmap --add -g 1M a.qcow2 coarse
	qemu-img bitmap --add -g 512 b.qcow2 fine
	writes 7 $SIZE 6 >wa
	writes 8 $SIZE 6 >wb
	qwrite a.qcow2 wa
	qwrite b.qcow2 wb
	{ dmap a.qcow2 coarse | sed 's/^/1 /'; dmap b.qcow2 fine | sed 's/^/2 /'; } >want
	bk -d a=a.qcow2 -d b=b.qcow2 --bitmap a=coarse --bitmap b=fine --mode incremental \
		--checkpoint c1 -o c1.vma
	expect_rc 0
	aclusters c1.vma >got
	same_list want got "the clusters of the bitmaps and of c1.vma"
	[ "$(wc -l <want)" -gt "$(touched wa | wc -l)" ] || fail "1 MiB granules should mark more"
	qemu-img convert -O raw a.qcow2 a.raw
	qemu-img convert -O raw b.qcow2 b.raw
	run vb restore c0.vma c1.vma --to r
	expect_rc 0
	same a.raw r/disk-a.raw
	same b.raw r/disk-b.raw
	run vb verify --deep --set s --state-dir "$PWD/st"
	expect_rc 0
	# a bitmap that does not exist
	bk -d a=a.qcow2 -d b=b.qcow2 --bitmap nosuch --mode incremental -o x.vma
	expect_fail 2 backup 'drive a: a.qcow2 has no bitmap nosuch'
	absent x.vma
	bk -d a=a.qcow2 -d b=b.qcow2 --bitmap nosuch -o x.vma
	expect_rc 0
	grep -q 'INFO: drive a: a.qcow2 has no bitmap nosuch; full backup' "$ERR" ||
		fail "no note on the full backup"
	[ "$(jget "$OUT" kind)" = full ] || fail "not a full backup"
	# usage errors
	bk -d a=a.qcow2 --bitmap z=x -o y.vma
	expect_fail 2 backup '--bitmap z=x: no --drive named z'
	bk -d a=a.qcow2 --bitmap x --bitmap y -o y.vma
	expect_fail 2 backup 'given twice'
	run vb backup -d a=a.qcow2 --bitmap x -o y.vma
	expect_fail 2 backup 'need --set'
}

# Bitmaps left inconsistent by a writer killed with -9 are never trusted.
inconsistent() {
	need qemu-img qemu-io qemu-nbd nbdinfo "$PYTHON"
	sockdir
	img a.qcow2
	bk -d a=a.qcow2 --checkpoint c0 -o c0.vma
	expect_rc 0
	qemu-img bitmap --add a.qcow2 mine
	qemu-nbd -f qcow2 -t -k "$S/w.sock" --fork --pid-file="$S/w.pid" a.qcow2
	qemu-io -f raw -c 'write -P 0x5 40M 64k' "nbd+unix:///?socket=$S/w.sock" >/dev/null
	kill -9 "$(cat "$S/w.pid")"
	for _ in $(seq 1 100); do qemu-img info a.qcow2 >/dev/null 2>&1 && break; sleep 0.02; done
	rm -f "$S/w.pid"
	bitmaps a.qcow2 | grep -q 'vmaback/s/c0 in-use' || fail "no inconsistent bitmap: $(bitmaps a.qcow2)"
	qemu-img convert -O raw a.qcow2 a.raw
	# a given bitmap: an explicit incremental refuses, auto takes a full backup
	bk -d a=a.qcow2 --bitmap mine --mode incremental -o x.vma
	expect_fail 3 backup 'drive a: bitmap mine of a.qcow2 is inconsistent'
	absent x.vma
	bk -d a=a.qcow2 --bitmap mine --checkpoint c1 -o c1.vma
	expect_rc 0
	grep -q 'INFO: drive a: bitmap mine of a.qcow2 is inconsistent.*; full backup' "$ERR" ||
		fail "no note on the full backup"
	[ "$(jget "$OUT" kind)" = full ] || fail "not a full backup"
	run vb restore c1.vma --to r
	expect_rc 0
	same a.raw r/disk-a.raw
	# vmaback's own bitmap: found inconsistent, the changes come from a
	# scan, and the rotation replaces it
	bitmaps a.qcow2 | grep -q 'vmaback/s/c1 auto' || fail "no bitmap for c1: $(bitmaps a.qcow2)"
	qemu-nbd -f qcow2 -t -k "$S/w.sock" --fork --pid-file="$S/w.pid" a.qcow2
	qemu-io -f raw -c 'write -P 0x6 50M 64k' "nbd+unix:///?socket=$S/w.sock" >/dev/null
	kill -9 "$(cat "$S/w.pid")"
	for _ in $(seq 1 100); do qemu-img info a.qcow2 >/dev/null 2>&1 && break; sleep 0.02; done
	rm -f "$S/w.pid"
	bk -d a=a.qcow2 --checkpoint c2 -o c2.vma
	expect_rc 0
	grep -q 'INFO: drive a: bitmap vmaback/s/c1 of a.qcow2 is inconsistent.*reading all of it' "$ERR" ||
		fail "no note on the scan"
	[ "$(jget "$OUT" kind)" = incremental ] || fail "not an incremental backup"
	[ "$(jget "$OUT" dirty_clusters)" = 1 ] || fail "$(jget "$OUT" dirty_clusters) changed clusters"
	bitmaps a.qcow2 >bm
	printf '%s\n' 'mine in-use,auto' 'vmaback/s/c2 auto' >bm.want
	same_list bm.want bm "the image's bitmaps"
}

# An image another program writes (a running VM) is refused before anything
# is written.
in_use() {
	need qemu-img qemu-io qemu-nbd "$PYTHON"
	sockdir
	img a.qcow2
	bk -d a=a.qcow2 --checkpoint c0 -o c0.vma
	expect_rc 0
	cp st/s/state.json state.before
	bitmaps a.qcow2 >bm.before
	qemu-nbd -f qcow2 -t -k "$S/w.sock" --fork --pid-file="$S/w.pid" a.qcow2
	bk -d a=a.qcow2 -o x.vma
	expect_fail 4 backup 'drive a: a.qcow2 is in use by another program.*write.* lock'
	run vb backup -d a=a.qcow2 -o x.vma
	expect_fail 4 backup 'drive a: a.qcow2 is in use by another program'
	absent x.vma
	cmp -s state.before st/s/state.json || fail "the state changed"
	kill "$(cat "$S/w.pid")"
	for _ in $(seq 1 100); do qemu-img info a.qcow2 >/dev/null 2>&1 && break; sleep 0.02; done
	bitmaps a.qcow2 >bm.after
	same_list bm.before bm.after "the image's bitmaps"
}

# A run that fails (a read error on another drive, mid-drive) commits
# nothing and leaves the qcow2's bitmaps as they were.
failure() {
	need qemu-img qemu-io qemu-nbd nbdkit "$PYTHON"
	sockdir
	img a.qcow2
	local data='@0 "first" @16777216 "second" @33554432 "third"'
	nbdkit_up good data "$data" size=$SIZE
	bk -d a=a.qcow2 -d b="nbd+unix:///?socket=$S/good.sock" --checkpoint c0 -o c0.vma
	expect_rc 0
	nbdkit_down good
	writes 3 $SIZE 4 >w
	qwrite a.qcow2 w
	cp st/s/state.json state.before
	bitmaps a.qcow2 >bm.before
	# reads of b fail from 16 MiB on: the error filter fails every read, and
	# nothing before 16 MiB is data
	nbdkit_up bad --filter=error data '@16777216 "second" @33554432 "third"' size=$SIZE \
		error-pread=EIO error-pread-rate=100%
	bk -d a=a.qcow2 -d b="nbd+unix:///?socket=$S/bad.sock" --checkpoint c1 -o c1.vma
	expect_fail 1 backup 'drive b: read error at offset 16777216: .*Input/output error'
	grep -q 'nothing was published and the checkpoints are unchanged' "$ERR" ||
		fail "no word on what was kept"
	absent c1.vma
	cmp -s state.before st/s/state.json || fail "the state changed"
	bitmaps a.qcow2 >bm.after
	same_list bm.before bm.after "the image's bitmaps"
	[ "$(ls -A | grep '^\.' || true)" = "" ] || fail "a temporary file was left: $(ls -A)"
}

restore_qcow2() {
	need qemu-img qemu-io qemu-nbd "$PYTHON"
	img a.qcow2
	writes 5 $SIZE 20 >w
	qwrite a.qcow2 w
	bk -d a=a.qcow2 --checkpoint c0 -o c0.vma
	expect_rc 0
	writes 6 $SIZE 10 >w2
	qwrite a.qcow2 w2
	bk -d a=a.qcow2 --checkpoint c1 -o c1.vma
	expect_rc 0
	run vb restore c0.vma c1.vma --target a=qcow2:out.qcow2
	expect_rc 0
	run qemu-img compare -f qcow2 -F qcow2 out.qcow2 a.qcow2
	expect_rc 0
	[ "$(qemu-img info --output=json out.qcow2 | py -c 'import json,sys; print(json.load(sys.stdin)["format"])')" = qcow2 ] ||
		fail "out.qcow2 is not a qcow2 file"
	mode_is out.qcow2 600
	# sparse: only the data is allocated (a fully allocated one is 64 MiB)
	local alloc
	alloc=$(qemu-img map --output=json out.qcow2 |
		py -c 'import json,sys; print(sum(e["length"] for e in json.load(sys.stdin) if e["data"]))')
	[ "$alloc" -lt $((12 * 1048576)) ] || fail "out.qcow2 has $alloc bytes of data"
	# an existing file is replaced only with --force
	run vb restore c0.vma c1.vma --target a=qcow2:out.qcow2
	expect_fail 2 restore 'out.qcow2 exists'
	run vb restore c0.vma --target a=qcow2:out.qcow2 --force
	expect_rc 0
	qemu-img convert -O raw out.qcow2 out.raw
	run vb restore c0.vma --to r
	expect_rc 0
	same r/disk-a.raw out.raw
	[ "$(ls -A | grep '^\.' || true)" = "" ] || fail "a temporary file was left: $(ls -A)"
	# a missing directory: nothing is created
	run vb restore c0.vma --target a=qcow2:nodir/out.qcow2
	expect_fail 2 restore 'nodir/out.qcow2: cannot create'
}

tcase kinds kinds
tcase chain chain
tcase given given
tcase inconsistent inconsistent
tcase in_use in_use
tcase failure failure
tcase restore_qcow2 restore_qcow2
