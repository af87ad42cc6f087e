# t_hooks.sh: backup --hook CMD runs at job-start, backup-start, backup-end
# or backup-abort, job-end and log-end with the job in VMABACK_* variables;
# a failure at job-start or backup-start stops the backup before its first
# byte, a later one fails the run without undoing the committed backup.
. "$T_SRCDIR/lib.sh"

# hook.sh: appends "PHASE SET CHECKPOINT KIND STATUS ARCHIVE" to phases;
# exits 1 at the phase named in the file "failat".
hook_script() {
	cat >hook.sh <<'H'
echo "$1 ${VMABACK_SET-} ${VMABACK_CHECKPOINT-} ${VMABACK_KIND-} ${VMABACK_STATUS-} ${VMABACK_ARCHIVE-}" >>"$HOOKDIR/phases"
echo "hook output at $1"
[ "$(cat "$HOOKDIR/failat" 2>/dev/null)" != "$1" ]
H
	export HOOKDIR=$PWD
	rand a 300000
}

phases() {
	cut -d' ' -f1 phases | tr '\n' ' '
}

success_phases() {
	hook_script
	run vb backup --set s --state-dir st -d a=a --checkpoint c1 -o out.vma \
		--hook "sh $PWD/hook.sh"
	expect_rc 0
	[ "$(phases)" = "job-start backup-start backup-end job-end log-end " ] ||
		fail "phases: $(phases)"
	grep -qx "backup-end s c1 full ok $PWD/out.vma\|backup-end s c1 full ok out.vma" phases ||
		fail "backup-end saw: $(grep backup-end phases)"
	grep -q "hook output at backup-end" "$ERR" || fail "the hook's output is not on stderr"
	vb verify -q out.vma
}

start_fails() {
	hook_script
	echo backup-start >failat
	mkdir o
	run vb backup --set s --state-dir st -d a=a -o o/out.vma --hook "sh $PWD/hook.sh"
	expect_rc 1
	grep -q "hook failed at backup-start (exit status 1)" "$ERR" || fail "no message"
	grep -q "aborted by the hook at backup-start: nothing was written" "$ERR" ||
		fail "no 'aborted' line"
	[ "$(phases)" = "job-start backup-start backup-abort job-end log-end " ] ||
		fail "phases: $(phases)"
	empty_dir o
	[ ! -e st/s/state.json ] || fail "a state was written"
}

job_start_fails() {
	hook_script
	echo job-start >failat
	run vb backup -d a=a -o out.vma --hook "sh $PWD/hook.sh"
	expect_rc 1
	[ "$(phases)" = "job-start job-end log-end " ] || fail "phases: $(phases)"
	absent out.vma
}

end_fails_keeps_backup() {
	hook_script
	echo backup-end >failat
	run vb backup --set s --state-dir st -d a=a --checkpoint c1 -o out.vma \
		--hook "sh $PWD/hook.sh"
	expect_rc 1
	grep -q "hook failed at backup-end" "$ERR" || fail "no message"
	grep -q "the backup is published and its checkpoint recorded; only the hook failed" "$ERR" ||
		fail "no 'published' line"
	vb verify -q out.vma
	vb checkpoints --set s --state-dir st | grep -q c1 || fail "c1 is not committed"
}

abort_on_failure() {
	hook_script
	run vb backup --set s --state-dir st -d a=a --output-cmd 'head -c 10 >/dev/null' \
		--hook "sh $PWD/hook.sh"
	expect_rc 1
	[ "$(phases)" = "job-start backup-start backup-abort job-end log-end " ] ||
		fail "phases: $(phases)"
	grep -q "^backup-abort s .* failed" phases || fail "backup-abort saw: $(cat phases)"
}

# The archive on standard output is not mixed with the hook's output.
stdout_archive_clean() {
	hook_script
	vb backup -d a=a -o - --hook "sh $PWD/hook.sh" >x.vma 2>err
	vb verify -q x.vma
	vb extract x.vma e >/dev/null 2>&1
	same a e/disk-a.raw
}

from_config_file() {
	hook_script
	printf '{"drives": ["a=a"], "hook": "sh %s/hook.sh"}\n' "$PWD" >job.json
	run vb backup --config-file job.json -o out.vma
	expect_rc 0
	[ "$(phases)" = "job-start backup-start backup-end job-end log-end " ] ||
		fail "phases: $(phases)"
}

# A signal while a hook runs stops the hook too, and the run exits 128+N.
signal_stops_hook() {
	rand a 300000
	cat >slow.sh <<'H'
[ "$1" = backup-start ] || exit 0
echo $$ >hookpid
exec sleep 30
H
	"$VMABACK" backup -d a=a -o out.vma --hook "sh $PWD/slow.sh" 2>err &
	local p=$! rc=0 i=0
	while [ ! -s hookpid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -s hookpid ] || fail "the hook did not start"
	kill -TERM "$p"
	wait "$p" || rc=$?
	[ "$rc" -eq 143 ] || fail "exit $rc, expected 143: $(cat err)"
	sleep 0.2
	# gone, or a zombie that this container's init has not reaped yet
	case $(ps -o stat= -p "$(cat hookpid)" 2>/dev/null || true) in
	"" | Z*) ;;
	*) fail "the hook still runs: $(ps -o pid,ppid,pgid,stat,cmd -p "$(cat hookpid)")" ;;
	esac
	absent out.vma
}

tcase success_phases success_phases
tcase signal_stops_hook signal_stops_hook
tcase start_fails start_fails
tcase job_start_fails job_start_fails
tcase end_fails_keeps_backup end_fails_keeps_backup
tcase abort_on_failure abort_on_failure
tcase stdout_archive_clean stdout_archive_clean
tcase from_config_file from_config_file
