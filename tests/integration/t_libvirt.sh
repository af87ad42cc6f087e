# t_libvirt.sh: backup --domain against a real libvirtd: a private
# session daemon (and its virtlogd), started here as user nobody with every
# directory of its own under one temporary directory, stopped by PID at the
# end; a domain of type qemu (TCG) with two qcow2 disks and no guest OS;
# "guest" writes through HMP qemu-io (virsh qemu-monitor-command; the test
# may use virsh, vmaback uses libvirt's C API), mirrored into shadow raw
# copies; every restore is compared with the shadow at that backup's point
# in time, which a --hook at backup-start (after the point in time, before
# the first read) copies and then writes into the guest again.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"
. "$T_SRCDIR/libvirt_lib.sh"

usage() {
	run vb backup --set s --qmp /tmp/x.qmp --domain d -o a.vma
	expect_fail 2 backup "either --qmp .* or --domain"
	run vb backup --set s --connect qemu:///system -d a=raw:x -o a.vma
	expect_fail 2 backup "--connect goes with --domain"
	run vb backup --set s -d a=libvirt:vda -o a.vma
	expect_fail 2 backup "libvirt:DEV drive needs --domain"
	run vb backup --set s --domain d -d a=qmp:vda -o a.vma
	expect_fail 2 backup "with --domain every drive is NAME=libvirt:"
	run vb backup --domain d -o a.vma
	expect_fail 2 backup "--domain needs --set"
	run vb backup --set s --domain d --fsfreeze --qga /tmp/q -o a.vma
	expect_fail 2 backup "--qga goes with --qmp"
	run vb recover --set s --domain d --qmp /tmp/x
	expect_fail 2 recover "--qmp SOCKET or --domain NAME"
	run vb backup --all --set s --dumpdir .
	expect_fail 2 backup "--set does not go with --all"
	run vb backup --all -o a.vma
	expect_fail 2 backup "-o does not go with --all"
	run vb backup --all
	expect_fail 2 backup "--all needs --dumpdir"
	run vb backup --all --domains a,b --dumpdir .
	expect_fail 2 backup "either --all or --domains"
	run vb backup --set s --include-stopped -d a=raw:x -o a.vma
	expect_fail 2 backup "--include-stopped goes with --domain"
}

# dom_up: domain vt, two qcow2 disks with data, and their shadows.
dom_up() {
	qemu-img create -q -f qcow2 "$L/img/a.qcow2" $((24 * 1048576))
	qemu-img create -q -f qcow2 "$L/img/b.qcow2" $((16 * 1048576))
	qemu-io -f qcow2 -c 'write -P 0x5a 0 2M' -c 'write -P 0x33 20M 1M' "$L/img/a.qcow2" >/dev/null
	qemu-io -f qcow2 -c 'write -P 0x77 1M 3M' "$L/img/b.qcow2" >/dev/null
	qemu-img convert -O raw "$L/img/a.qcow2" "$L/sh0.raw"
	qemu-img convert -O raw "$L/img/b.qcow2" "$L/sh1.raw"
	[ "$(id -u)" != 0 ] || chown -R 65534:65534 "$L/img"
	cat >"$L/vt.xml" <<EOF
<domain type='qemu'><name>vt</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>$(command -v qemu-system-x86_64)</emulator>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='$L/img/a.qcow2'/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='$L/img/b.qcow2'/><target dev='vdb' bus='virtio'/></disk>
<video><model type='none'/></video><memballoon model='none'/>
</devices></domain>
EOF
	virsh -q -c "$URI" create "$L/vt.xml" >"$L/create.out" 2>&1 ||
		skip "libvirt cannot start a TCG domain here: $(head -c 300 "$L/create.out")"
	# gw.sh FILE: the writes "DISK OFFSET LENGTH PATTERN" of FILE into the
	# guest (HMP qemu-io on the virtio backend) and into the shadows.
	cat >"$L/gw.sh" <<EOF
#!/bin/bash
set -e
while read -r d off len pat; do
	virsh -q -c '$URI' qemu-monitor-command --hmp vt \\
		"qemu-io -d /machine/peripheral/virtio-disk\$d/virtio-backend \\"write -P \$pat \$off \$len\\"" >/dev/null
done <"\$1"
$PYTHON - "\$1" '$L' <<'PY'
import sys
for line in open(sys.argv[1]):
    d, off, n, pat = map(int, line.split())
    with open(f"{sys.argv[2]}/sh{d}.raw", "r+b") as f:
        f.seek(off); f.write(bytes([pat]) * n)
PY
EOF
	# hook.sh: at backup-start (after the point in time), the shadows are
	# the point in time's bytes; then the "during" writes hit the guest.
	cat >"$L/hook.sh" <<EOF
#!/bin/sh
set -e
[ "\$1" = backup-start ] || exit 0
cp '$L/sh0.raw' '$L/pit0.raw'
cp '$L/sh1.raw' '$L/pit1.raw'
if [ -s '$L/during' ]; then bash '$L/gw.sh' '$L/during'; fi
EOF
}

# gwrites SEED N: N seeded writes on each disk, one "DISK OFF LEN PAT" a line.
gwrites() {
	{ writes "$1" $((24 * 1048576)) "$2" | sed 's/^/0 /'
	  writes "$(($1 + 1))" $((16 * 1048576)) "$2" | sed 's/^/1 /'; }
}

# lvb NAME ARGS...: a backup of vt into NAME.vma, the "during" writes made
# by the hook; the point in time's shadows kept as NAME.0.raw, NAME.1.raw.
lvb() {
	local name=$1
	shift
	rm -f "$L/pit0.raw" "$L/pit1.raw"
	run vb backup --set vt --state-dir "$PWD/st" --domain vt --connect "$URI" \
		--scratch-dir "$L/scr" --hook "sh $L/hook.sh" -o "$name.vma" --json "$@"
	cp "$OUT" "$name.json"
}
kept() {
	mv "$L/pit0.raw" "$1.0.raw"
	mv "$L/pit1.raw" "$1.1.raw"
}

# exact NAME ARCHIVE...: the chain restores NAME's point in time.
exact() {
	local name=$1
	shift
	rm -rf r
	run vb restore "$@" --to r
	expect_rc 0
	same r/disk-drive-virtio0.raw "$name.0.raw"
	same r/disk-drive-virtio1.raw "$name.1.raw"
}

# ours: vmaback's libvirt checkpoints of the domain, sorted.
ours() {
	virsh -q -c "$URI" checkpoint-list vt --name | grep '^vmaback\.' | sort || true
}
ckname() { # the set's checkpoint as libvirt names it
	echo "vmaback.vt.$(echo "$1" | sed 's/:/_3A/g')"
}

# The chain from the first run on: point in time, crash, metadata loss.
domain() {
	lv_up
	dom_up
	local c

	gwrites 1 6 >"$L/during"
	lvb full
	expect_rc 0
	kept full
	[ "$(jget full.json kind)" = full ] || fail "first run: $(jget full.json kind)"
	exact full full.vma
	c=$(jget full.json checkpoint)
	[ "$(ours)" = "$(ckname "$c")" ] || fail "libvirt's checkpoints: $(ours)"
	vb config full.vma -c libvirt-domain.xml >dom.xml || fail "no libvirt-domain.xml blob"
	grep -q "<name>vt</name>" dom.xml || fail "the blob is not the domain's XML"

	# between runs, then during the incremental
	gwrites 11 8 >w
	bash "$L/gw.sh" w
	gwrites 21 5 >"$L/during"
	lvb inc1 --mode incremental
	expect_rc 0
	kept inc1
	exact inc1 full.vma inc1.vma
	# only what changed since the full was read (writes of up to 192 KiB)
	[ "$(jget inc1.json bytes_read)" -le $((2 * 14 * 4 * 65536)) ] ||
		fail "inc1 read $(jget inc1.json bytes_read) bytes"
	c=$(jget inc1.json checkpoint)
	[ "$(ours)" = "$(ckname "$c")" ] || fail "after inc1, libvirt's checkpoints: $(ours)"

	# SIGKILL mid-read: the job and the new checkpoint stay in libvirt
	gwrites 31 6 >w
	bash "$L/gw.sh" w
	: >"$L/during"
	VMABACK_TEST_CRASH=mid-read lvb dead
	expect_rc 137
	[ "$(ours | wc -l)" = 2 ] || fail "after the kill, libvirt's checkpoints: $(ours)"
	run vb recover --set vt --state-dir "$PWD/st" --domain vt --connect "$URI" \
		--scratch-dir "$L/scr"
	expect_rc 0
	[ "$(ours)" = "$(ckname "$c")" ] || fail "after recover, libvirt's checkpoints: $(ours)"
	virsh -q -c "$URI" backup-dumpxml vt >/dev/null 2>&1 && fail "a backup job is left"
	[ -z "$(ls -A "$L"/scr/vmaback.*)" ] || fail "scratch files left: $(ls "$L"/scr/vmaback.*)"
	gwrites 41 4 >w
	bash "$L/gw.sh" w
	# killed again, and no recover: the next backup cleans up by itself
	VMABACK_TEST_CRASH=mid-read lvb dead2 --mode incremental
	expect_rc 137
	[ "$(ours | wc -l)" = 2 ] || fail "after the second kill, libvirt's checkpoints: $(ours)"
	gwrites 51 4 >"$L/during"
	lvb inc2 --mode incremental
	expect_rc 0
	kept inc2
	exact inc2 full.vma inc1.vma inc2.vma
	[ "$(ours)" = "$(ckname "$(jget inc2.json checkpoint)")" ] ||
		fail "after inc2, libvirt's checkpoints: $(ours)"

	# libvirt loses the checkpoint's metadata: redefined from vmaback's copy
	c=$(jget inc2.json checkpoint)
	virsh -q -c "$URI" checkpoint-delete vt "$(ckname "$c")" --metadata >/dev/null
	[ -z "$(ours)" ] || fail "metadata not deleted: $(ours)"
	gwrites 61 5 >w
	bash "$L/gw.sh" w
	: >"$L/during"
	lvb inc3 --mode incremental
	expect_rc 0
	expect_err "redefined it from vmaback's copy"
	kept inc3
	exact inc3 full.vma inc1.vma inc2.vma inc3.vma
	[ "$(jget inc3.json bytes_read)" -le $((2 * 5 * 4 * 65536)) ] ||
		fail "inc3 read $(jget inc3.json bytes_read) bytes: not through the bitmap"

	# metadata and vmaback's copy lost: redefined from the disks' bitmaps
	c=$(jget inc3.json checkpoint)
	virsh -q -c "$URI" checkpoint-delete vt "$(ckname "$c")" --metadata >/dev/null
	rm -f st/.libvirt/*.xml
	gwrites 71 3 >w
	bash "$L/gw.sh" w
	lvb inc4 --mode incremental
	expect_rc 0
	expect_err "redefined it from its bitmaps in the disks"
	kept inc4
	exact inc4 full.vma inc1.vma inc2.vma inc3.vma inc4.vma
	[ "$(jget inc4.json bytes_read)" -le $((2 * 3 * 4 * 65536)) ] ||
		fail "inc4 read $(jget inc4.json bytes_read) bytes: not through the bitmap"

	# metadata and bitmaps lost (QEMU's bitmaps removed behind libvirt's
	# back): the disks are read whole and compared, still right
	c=$(ckname "$(jget inc4.json checkpoint)")
	virsh -q -c "$URI" checkpoint-delete vt "$c" --metadata >/dev/null
	virsh -q -c "$URI" qemu-monitor-command vt '{"execute":"query-named-block-nodes"}' >nodes.json
	py -c '
import json, sys
for n in json.load(open(sys.argv[1]))["return"]:
    for b in n.get("dirty-bitmaps", []):
        if b["name"] == sys.argv[2]:
            print(n["node-name"])
' nodes.json "$c" >bm.nodes
	[ "$(wc -l <bm.nodes)" = 2 ] || fail "bitmap $c on $(wc -l <bm.nodes) nodes"
	while read -r node; do
		virsh -q -c "$URI" qemu-monitor-command vt \
			"{\"execute\":\"block-dirty-bitmap-remove\",\"arguments\":{\"node\":\"$node\",\"name\":\"$c\"}}" >/dev/null
	done <bm.nodes
	gwrites 81 3 >w
	bash "$L/gw.sh" w
	lvb inc5 --mode incremental
	expect_rc 2
	lvb inc5
	expect_rc 0
	expect_err "finding its changes by reading all of it"
	kept inc5
	exact inc5 full.vma inc1.vma inc2.vma inc3.vma inc4.vma inc5.vma
	# a signal mid-read: the job ends and the new checkpoint goes at once
	c=$(jget inc5.json checkpoint)
	"$VMABACK" backup --set vt --state-dir "$PWD/st" --domain vt --connect "$URI" \
		--scratch-dir "$L/scr" --mode full --bwlimit 64K -o sig.vma >sig.out 2>&1 &
	local pid=$!
	for _ in $(seq 1 200); do
		[ "$(ours | wc -l)" = 2 ] && break
		sleep 0.05
	done
	[ "$(ours | wc -l)" = 2 ] || fail "no new checkpoint while the run reads: $(ours)"
	kill -TERM $pid
	local rc=0
	wait $pid || rc=$?
	[ $rc = 143 ] || fail "SIGTERM mid-read: exit $rc: $(tail -3 sig.out)"
	[ "$(ours)" = "$(ckname "$c")" ] || fail "after SIGTERM, libvirt's checkpoints: $(ours)"
	virsh -q -c "$URI" backup-dumpxml vt >/dev/null 2>&1 && fail "a backup job is left"

	# --fsfreeze without a guest agent: a note, a crash-consistent backup;
	# the incremental after the signal holds every change
	gwrites 91 2 >"$L/during"
	lvb inc6 --fsfreeze
	expect_rc 0
	expect_err "--fsfreeze: .*crash-consistent"
	kept inc6
	exact inc6 full.vma inc1.vma inc2.vma inc3.vma inc4.vma inc5.vma inc6.vma
	c=$(jget inc6.json checkpoint)
	[ "$(ours)" = "$(ckname "$c")" ] || fail "at the end, libvirt's checkpoints: $(ours)"
	[ -z "$(ls -A "$L"/scr/vmaback.*)" ] || fail "scratch files left"
	# a full backup, too, leaves only its own checkpoint in libvirt
	run vb backup --set vt --state-dir "$PWD/st" --domain vt --connect "$URI" \
		--scratch-dir "$L/scr" --mode full -o full2.vma --json
	expect_rc 0
	c=$(jget "$OUT" checkpoint)
	[ "$(ours)" = "$(ckname "$c")" ] || fail "after a full, libvirt's checkpoints: $(ours)"

	# another set, one disk under a name of its own: its own checkpoint,
	# which covers only that disk; set vt's stays
	run vb backup --set one --state-dir "$PWD/st" --domain vt --connect "$URI" \
		--scratch-dir "$L/scr" -d data=libvirt:vdb -o one.vma
	expect_rc 0
	[ "$(ours | grep -c '^vmaback\.one\.')" = 1 ] || fail "set one's checkpoints: $(ours)"
	[ "$(ours | grep '^vmaback\.vt\.')" = "$(ckname "$c")" ] || fail "set vt's: $(ours)"
	virsh -q -c "$URI" checkpoint-dumpxml vt "$(ours | grep '^vmaback\.one\.')" --no-domain >one.xml
	grep -q "name='vda' checkpoint='no'" one.xml || fail "set one's checkpoint covers vda"
	rm -rf r
	run vb restore one.vma --to r
	expect_rc 0
	same r/disk-data.raw "$L/sh1.raw"

	# restore --define: a new domain whose disks are the restored images
	run vb restore full.vma inc1.vma inc2.vma inc3.vma inc4.vma inc5.vma inc6.vma \
		--to rd --define vt-copy --connect "$URI"
	expect_rc 0
	expect_err "defined domain vt-copy"
	virsh -q -c "$URI" dumpxml vt-copy >copy.xml || fail "no domain vt-copy"
	grep -q "<source file='$PWD/rd/disk-drive-virtio0.raw'/>" copy.xml || fail "vda: $(grep -A3 '<disk' copy.xml)"
	grep -q "<source file='$PWD/rd/disk-drive-virtio1.raw'/>" copy.xml || fail "vdb: $(grep -A3 '<disk' copy.xml)"
	[ "$(grep -c "<driver name='qemu' type='raw'/>" copy.xml)" = 2 ] || fail "formats: $(grep driver copy.xml)"
	[ "$(virsh -q -c "$URI" domuuid vt-copy)" != "$(virsh -q -c "$URI" domuuid vt)" ] ||
		fail "vt-copy has vt's UUID"
	run vb restore full.vma --to rd2 --define vt-copy --connect "$URI"
	expect_rc 2
	expect_err "has a domain vt-copy already"
	# a drive renamed by -d: the archive's vmaback:drives names its disk
	run vb restore one.vma --to rd3 --define vt-copy2 --connect "$URI"
	expect_rc 0
	expect_err "disk vda was not backed up: left out of the domain"
	virsh -q -c "$URI" dumpxml vt-copy2 >copy2.xml || fail "no domain vt-copy2"
	grep -q "<source file='$PWD/rd3/disk-data.raw'/>" copy2.xml || fail "vdb: $(grep -A3 '<disk' copy2.xml)"
	grep -q "<target dev='vdb'" copy2.xml || fail "vdb: $(grep -A3 '<disk' copy2.xml)"
	[ "$(grep -c '<disk ' copy2.xml)" = 1 ] || fail "vt-copy2's disks: $(grep -A3 '<disk' copy2.xml)"
	vb config one.vma -c libvirt-domain.xml | grep -q "<vmaback:drive name=\"data\" dev=\"vdb\"/>" ||
		fail "no vmaback:drives in one.vma: $(vb config one.vma -c libvirt-domain.xml | grep -A3 metadata)"
	run vb verify --deep --set vt --state-dir "$PWD/st"
	expect_rc 0
}

# mkdom NAME DISK...: a running domain NAME (STOPPED=1: defined only); DISK is TARGET:SIZE_MIB, or
# TARGET:SIZE_MIB:ro for a read-only disk, TARGET:SIZE_MIB:raw for a raw one.
mkdom() {
	local name=$1 d t m ro f disks=""
	shift
	for d in "$@"; do
		IFS=: read -r t m ro <<<"$d"
		f=qcow2
		[ "$ro" != raw ] || f=raw
		qemu-img create -q -f $f "$L/img/$name-$t.qcow2" $((m * 1048576))
		qemu-io -f $f -c "write -P 0x$((RANDOM % 89 + 10)) 0 1M" "$L/img/$name-$t.qcow2" >/dev/null
		[ "$(id -u)" != 0 ] || chown 65534:65534 "$L/img/$name-$t.qcow2"
		disks="$disks<disk type='file' device='disk'><driver name='qemu' type='$f'/>"
		disks="$disks<source file='$L/img/$name-$t.qcow2'/><target dev='$t' bus='virtio'/>"
		[ "$ro" != ro ] || disks="$disks<readonly/>"
		disks="$disks</disk>"
	done
	cat >"$L/$name.xml" <<EOF
<domain type='qemu'><name>$name</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>$(command -v qemu-system-x86_64)</emulator>$disks
<video><model type='none'/></video><memballoon model='none'/></devices></domain>
EOF
	if [ -n "${STOPPED:-}" ]; then
		virsh -q -c "$URI" define "$L/$name.xml" >/dev/null || fail "cannot define $name"
		return
	fi
	virsh -q -c "$URI" create "$L/$name.xml" >"$L/create.out" 2>&1 ||
		skip "libvirt cannot start a TCG domain here: $(head -c 300 "$L/create.out")"
}

# --all: three running domains, one of which has no disk to back up.
all() {
	lv_up
	mkdom a vda:8 vdb:4
	mkdom b vda:4 vdb:4:raw
	mkdom c vda:4:ro
	STOPPED=1 mkdom d vda:6 vdc:4:raw
	mkdir dump
	run vb backup --all --connect "$URI" --state-dir "$PWD/st" --scratch-dir "$L/scr" \
		--dumpdir dump --json
	expect_rc 1
	expect_err "domain a: ok"
	expect_err "domain b: ok"
	expect_err "domain c: failed \(exit status 2\)"
	expect_err "3 domains, 2 ok, 1 failed"
	[ "$(wc -l <"$OUT")" = 3 ] || fail "--json: $(wc -l <"$OUT") lines, expected 3"
	py -c '
import json, sys
got = [(o["set"], o["status"], o.get("kind")) for o in map(json.loads, open(sys.argv[1]))]
want = [("a", "ok", "full"), ("b", "ok", "full"), ("c", "failed", None)]
assert got == want, got
' "$OUT" || fail "--json objects: $(cat "$OUT")"
	ls dump | grep -c '^vmaback-a-.*\.vma\.zst$' | grep -qx 1 || fail "dump: $(ls dump)"
	ls dump | grep -c '^vmaback-b-.*\.vma\.zst$' | grep -qx 1 || fail "dump: $(ls dump)"
	if ls dump | grep -q '^vmaback-c-.*\.vma'; then fail "an archive of c: $(ls dump)"; fi
	virsh -q -c "$URI" qemu-monitor-command --hmp a \
		'qemu-io -d /machine/peripheral/virtio-disk1/virtio-backend "write -P 0x11 64k 64k"' >/dev/null
	run vb backup --all --connect "$URI" --state-dir "$PWD/st" --scratch-dir "$L/scr" \
		--dumpdir dump
	expect_rc 1
	expect_err "drive drive-virtio1: disk vdb is not qcow2: libvirt keeps no bitmap of it"
	ls dump | grep -c '^vmaback-a-.*\.vmainc\.zst$' | grep -qx 1 || fail "dump: $(ls dump)"
	ls dump | grep -c '^vmaback-b-.*\.vmainc\.zst$' | grep -qx 1 || fail "dump: $(ls dump)"
	run vb restore dump/vmaback-a-*.vma.zst dump/vmaback-a-*.vmainc.zst --to r
	expect_rc 0
	if ls dump | grep -q '^vmaback-d-'; then fail "stopped d backed up without --include-stopped"; fi

	# --include-stopped: d too, read from its images, its XML in the archive
	sleep 1 # the archives' names have seconds
	run vb backup --all --include-stopped --connect "$URI" --state-dir "$PWD/st" \
		--scratch-dir "$L/scr" --dumpdir dump --json
	expect_rc 1
	expect_err "domain d is not running: reading its images"
	expect_err "domain c: failed"
	expect_err "4 domains, 3 ok, 1 failed"
	py -c '
import json, sys
got = [(o["set"], o["status"], o.get("kind")) for o in map(json.loads, open(sys.argv[1]))]
want = [("a", "ok", "incremental"), ("b", "ok", "incremental"), ("c", "failed", None),
        ("d", "ok", "full")]
assert got == want, got
' "$OUT" || fail "--json objects: $(cat "$OUT")"
	vb config dump/vmaback-d-*.vma.zst -c libvirt-domain.xml >d.xml || fail "no libvirt-domain.xml of d"
	grep -q '<vmaback:drive name="drive-virtio2" dev="vdc"/>' d.xml || fail "d's drives: $(grep -A4 metadata d.xml)"
	# a list of domains; d's next backup is incremental through its image
	qemu-io -f qcow2 -c 'write -P 0x66 1M 64k' "$L/img/d-vda.qcow2" >/dev/null
	sleep 1
	run vb backup --domains d,nosuch --include-stopped --connect "$URI" --state-dir "$PWD/st" \
		--scratch-dir "$L/scr" --dumpdir dump
	expect_rc 1
	expect_err "domain d: ok"
	expect_err "libvirt has no domain nosuch"
	expect_err "2 domains, 1 ok, 1 failed"
	ls dump | grep -c '^vmaback-d-.*\.vmainc\.zst$' | grep -qx 1 || fail "dump: $(ls dump)"
	rm -rf rdd
	run vb restore dump/vmaback-d-*.vma.zst dump/vmaback-d-*.vmainc.zst --to rdd \
		--define d-copy --connect "$URI"
	expect_rc 0
	run qemu-img compare -f raw -F qcow2 rdd/disk-drive-virtio0.raw "$L/img/d-vda.qcow2"
	expect_rc 0
	cmp rdd/disk-drive-virtio2.raw "$L/img/d-vdc.qcow2" || fail "d's raw vdc differs"
	virsh -q -c "$URI" dumpxml d-copy | grep -q "<source file='$PWD/rdd/disk-drive-virtio2.raw'/>" ||
		fail "d-copy: $(virsh -q -c "$URI" dumpxml d-copy | grep -A3 '<disk')"
	# a stopped domain's lock is the running one's: another set's run waits
	"$VMABACK" backup --set d2 --domain d --include-stopped --connect "$URI" \
		--state-dir "$PWD/st" --scratch-dir "$L/scr" --bwlimit 256K -o slow.vma >slow.out 2>&1 &
	local pid=$! rc=0
	for _ in $(seq 1 200); do
		grep -q "reading its images" slow.out && break
		sleep 0.05
	done
	run vb backup --set d3 --domain d --include-stopped --connect "$URI" \
		--state-dir "$PWD/st" --scratch-dir "$L/scr" -o d3.vma
	kill -TERM $pid
	wait $pid || rc=$?
	[ $rc = 143 ] || fail "the slow run: exit $rc: $(tail -3 slow.out)"
	expect_fail 4 backup "domain d is in use by another vmaback run"
	# d started (its images carry the offline runs' bitmaps): a live run of
	# the same set, the same drive names, then a chain that restores exactly
	virsh -q -c "$URI" start d >/dev/null || fail "d does not start after offline backups"
	virsh -q -c "$URI" qemu-monitor-command --hmp d \
		'qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -P 0x21 2M 64k"' >/dev/null
	sleep 1
	run vb backup --domains d --include-stopped --connect "$URI" --state-dir "$PWD/st" \
		--scratch-dir "$L/scr" --dumpdir dump
	expect_rc 0
	expect_err "domain d: ok"
	virsh -q -c "$URI" destroy d >/dev/null
	rm -rf rdd
	run vb restore dump/vmaback-d-*.vma.zst dump/vmaback-d-*.vmainc.zst --to rdd
	expect_rc 0
	run qemu-img compare -f raw -F qcow2 rdd/disk-drive-virtio0.raw "$L/img/d-vda.qcow2"
	expect_rc 0

	virsh -q -c "$URI" destroy a >/dev/null
	run qemu-img compare -f raw -F qcow2 r/disk-drive-virtio1.raw "$L/img/a-vdb.qcow2"
	expect_rc 0
}

# libvirt0 missing (its file hidden in a mount namespace): a clear error
# for --domain; the commands that need no libvirt never load it.
nolib() {
	[ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 || skip "needs root and unshare"
	local so
	so=$(ldconfig -p | awk '/libvirt\.so\.0 /{print $NF; exit}')
	[ -n "$so" ] || skip "libvirt.so.0 is not installed"
	unshare -m true 2>/dev/null || skip "unshare -m is refused here"
	# the sanitizer build links libvirt (make check-san's LIBVIRT_LINK=1)
	if ldd "$VMABACK" | grep -q 'libvirt\.so'; then skip "$VMABACK is linked with libvirt"; fi
	printf 'mount --bind /dev/null "%s" || exit 99\n"$@"\n' "$so" >nolib.sh
	run unshare -m sh nolib.sh "$VMABACK" backup --set s --domain d -o a.vma
	[ "$RC" != 99 ] || skip "cannot hide $so"
	expect_fail 1 backup "libvirt is needed for this and cannot be loaded: .*install the Debian package libvirt0"
	run unshare -m sh nolib.sh "$VMABACK" --version
	expect_rc 0
}

tcase usage usage
tcase nolib nolib
tcase domain domain
tcase all all
