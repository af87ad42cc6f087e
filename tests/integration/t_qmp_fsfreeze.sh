# t_qmp_fsfreeze.sh: backup --qmp --fsfreeze --qga: the guest's file systems
# are frozen just before the point in time and thawed right after, on every
# path; an agent that does not answer gives a note and a crash-consistent
# backup; a run killed while the guest is frozen and paused is undone by the
# next run (or `vmaback recover`). The agent is tests/integration/fake_qga.py
# (no guest OS under TCG); the VM is a real qemu-system-x86_64.
. "$T_SRCDIR/lib.sh"
. "$T_SRCDIR/qemu_lib.sh"
. "$T_SRCDIR/vm_lib.sh"

# vm_up [--mute]: a VM with one 32 MiB disk (1 MiB written) and a fake
# guest agent (--mute: one that never answers) on $S/qga, its log
# $S/qga.log.
vm_up() {
	vm_setup vm virtio0:32
	qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' img/virtio0.qcow2 >/dev/null
	vm_start
	agent_up "$@"
}
agent_up() {
	"$PYTHON" "$T_SRCDIR/fake_qga.py" "$@" "$S/qga" "$S/qga.log" "$S/qga.pid.tmp" &
	# stopped by its PID when the case ends, before QEMU
	trap "kill $! 2>/dev/null; vm_cleanup" EXIT
	for _ in $(seq 1 200); do
		[ -s "$S/qga.pid.tmp" ] && return 0
		sleep 0.02
	done
	fail "the fake agent did not start"
}
# the agent's commands, in order, without times
agent_log() {
	awk '{ print $2 }' "$S/qga.log" | grep -v '^guest-sync' | tr '\n' ' '
}
fz() {
	run vb backup --set vm --state-dir "$PWD/st" --qmp "$S/qmp.sock" --fsfreeze --qga "$S/qga" \
		--progress none "$@"
}

freeze_thaw() {
	vm_up
	fz -o a.vma
	expect_rc 0
	[ "$(agent_log)" = "guest-fsfreeze-freeze guest-fsfreeze-thaw " ] ||
		fail "agent saw [$(agent_log)], expected a freeze then a thaw"
	# the thaw came right after the freeze: the guest is frozen only for
	# the point in time, not for the copy
	awk '$2 == "guest-fsfreeze-freeze" { f = $1 } $2 == "guest-fsfreeze-thaw" { t = $1 }
	     END { exit !(t - f < 2) }' "$S/qga.log" || fail "frozen for more than 2 s: $(cat "$S/qga.log")"
	[ "$(vm status)" = running ] ||
		fail "the VM does not run after the backup"
	run vb restore a.vma --to r
	expect_rc 0
	run qemu-img compare -U -f raw -F qcow2 r/disk-drive-virtio0.raw img/virtio0.qcow2
	expect_rc 0
}

mute_agent() {
	vm_up --mute
	local t0=$SECONDS
	fz -o a.vma
	expect_rc 0
	expect_err 'fsfreeze: .*crash-consistent'
	[ $((SECONDS - t0)) -lt 30 ] || fail "a mute agent made the run take $((SECONDS - t0)) s"
	is_vma a.vma || fail "no archive"
}

# Killed while the guest is paused and frozen: the next run resumes and
# thaws it, and its own backup is frozen and thawed again.
killed_while_frozen() {
	vm_up
	VMABACK_TEST_CRASH=while-paused fz -o a.vma
	expect_rc 137
	[ "$(vm status)" = paused ] ||
		fail "the crash point did not leave the VM paused"
	run vb recover --set vm --state-dir "$PWD/st" --qmp "$S/qmp.sock"
	expect_rc 0
	expect_err 'resumed the guest'
	[ "$(vm status)" = running ] ||
		fail "recover did not resume the VM"
	[ "$(agent_log)" = "guest-fsfreeze-freeze guest-fsfreeze-thaw " ] ||
		fail "agent saw [$(agent_log)], expected recover to thaw"
	fz -o b.vma
	expect_rc 0
}

usage() {
	run vb backup --set vm --qmp /nonexistent --fsfreeze -o a.vma
	expect_fail 2 backup 'fsfreeze needs --qga'
	run vb backup -d a=/dev/null --qga /x --fsfreeze -o a.vma
	expect_fail 2 backup 'go with --qmp'
	run vb backup --set vm --state-dir "$PWD/st" --qmp "$PWD/none.sock" -o a.vma
	expect_fail 2 backup 'none.sock'
}

tcase freeze_thaw freeze_thaw
tcase mute_agent mute_agent
tcase killed_while_frozen killed_while_frozen
tcase usage usage
