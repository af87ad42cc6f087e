# t_qmp_owned.sh: backup --qmp and recover touch only what is vmaback's in
# QEMU: another program's bitmaps, nodes and NBD server, and another backup
# set's bitmaps on the same VM, stay; one run per VM at a time; a VM the user
# paused stays paused. A real qemu-system-x86_64 (TCG, no guest OS).
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"
. "$T_SRCDIR/vm_lib.sh"

bk() { # SET ARGS...
	local set=$1
	shift
	run vb backup --set "$set" --state-dir "$PWD/st" --qmp "$S/qmp.sock" --progress none "$@"
}
# "NODE NAME" of every bitmap, sorted
bitmap_list() {
	vm q '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' | py -c '
import json, sys
for n in json.load(sys.stdin):
    for b in n.get("dirty-bitmaps", []):
        print(n["node-name"], b["name"])' | sort
}
node_names() {
	vm q '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' | py -c '
import json, sys
print(" ".join(sorted(n["node-name"] for n in json.load(sys.stdin))))'
}

foreign_objects() {
	vm_setup vm virtio0:32
	vm_start
	# another program's: bitmaps (one named like vmaback's but not of this
	# set, one of another set), a node, and nothing else of ours
	vm q '{"execute":"block-dirty-bitmap-add","arguments":{"node":"d0","name":"mine","persistent":true}}' \
		'{"execute":"block-dirty-bitmap-add","arguments":{"node":"d0","name":"vmaback.vm.c1"}}' \
		'{"execute":"block-dirty-bitmap-add","arguments":{"node":"d0","name":"vmaback/vmx/c1"}}' \
		'{"execute":"block-dirty-bitmap-add","arguments":{"node":"d0","name":"vmaback-tmp/vmx"}}' \
		'{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"vmaback_user","size":1048576}}' \
		>/dev/null || fail "QMP setup"
	bitmap_list >before
	bk vm --checkpoint c1 -o a.vma
	expect_rc 0
	bk vm --checkpoint c2 -o b.vma
	expect_rc 0
	run vb recover --set vm --state-dir "$PWD/st" --qmp "$S/qmp.sock"
	expect_rc 0
	bitmap_list | grep -v ' vmaback/vm/' >after
	same_list before after "the other programs' and sets' bitmaps before and after"
	[ "$(bitmap_list | grep -c ' vmaback/vm/')" = 1 ] || fail "set vm's bitmaps: $(bitmap_list)"
	bitmap_list | grep -q '^d0 vmaback/vm/c2$' || fail "no bitmap of the latest checkpoint: $(bitmap_list)"
	[ "$(node_names)" = "d0 f0 vmaback_user" ] || fail "nodes after the runs: $(node_names)"
}

# Two sets back up one VM in turn: each keeps its own bitmap, and each
# incremental holds exactly what changed since its own latest checkpoint.
two_sets() {
	vm_setup vm virtio0:32
	vm_start
	bk a --checkpoint a1 -o a1.vma
	expect_rc 0
	bk b --checkpoint b1 -o b1.vma
	expect_rc 0
	gw virtio0:4M:64k:0x11
	bk a --checkpoint a2 -o a2.vma --json
	expect_rc 0
	[ "$(jget "$OUT" dirty_clusters)" = 1 ] || fail "set a's incremental: $(cat "$OUT")"
	gw virtio0:8M:64k:0x22
	bk b --checkpoint b2 -o b2.vma --json
	expect_rc 0
	[ "$(jget "$OUT" dirty_clusters)" = 2 ] || fail "set b's incremental: $(cat "$OUT")"
	[ "$(bitmap_list | tr '\n' ' ')" = "d0 vmaback/a/a2 d0 vmaback/b/b2 " ] ||
		fail "bitmaps: $(bitmap_list)"
}

# QEMU has one NBD server: another program's makes the backup fail (exit 4)
# and stays running; a second vmaback run on the same VM waits for no one.
nbd_and_lock() {
	vm_setup vm virtio0:32
	vm_start
	vm q "{\"execute\":\"nbd-server-start\",\"arguments\":{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$S/user.nbd\"}}}}" >/dev/null
	bk vm -o a.vma
	expect_fail 4 backup 'another program started it'
	[ ! -e a.vma ] || fail "an archive was published"
	vm q '{"execute":"nbd-server-stop"}' >/dev/null || fail "the user's NBD server was stopped by vmaback"
	bitmap_list >left
	[ ! -s left ] || fail "bitmaps left after the failed run: $(cat left)"
	# the VM's lock: a run that holds it (paused at the point in time by
	# a slow read) makes a second one fail at once
	gw virtio0:0:3M:0x33
	"$VMABACK" backup --set vm --state-dir "$PWD/st" --qmp "$S/qmp.sock" --bwlimit 1M \
		-o slow.vma -q 2>slow.err &
	local pid=$!
	for _ in $(seq 1 100); do
		vm q '{"execute":"query-block-exports"}' | grep -q vmaback- && break
		sleep 0.05
	done
	bk other -o b.vma
	expect_fail 4 backup 'in use by another vmaback run'
	# --lockwait waits for the VM as for a set, then runs
	bk other -o c.vma --lockwait 1
	expect_rc 0
	expect_err 'in use by another vmaback run.*waiting for it'
	wait "$pid" || fail "the first run failed: $(cat slow.err)"
}

user_paused() {
	vm_setup vm virtio0:32
	vm_start
	vm q '{"execute":"stop"}' >/dev/null
	bk vm -o a.vma
	expect_rc 0
	[ "$(vm status)" = paused ] || fail "the VM the user paused is $(vm status)"
}

tcase foreign_objects foreign_objects
tcase two_sets two_sets
tcase nbd_and_lock nbd_and_lock
tcase user_paused user_paused
