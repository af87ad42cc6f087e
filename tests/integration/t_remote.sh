# t_remote.sh: the README's remote examples against real peers on
# loopback: an OpenSSH server started here (its own host key, config and
# port; reached through an ssh config alias, "backuphost"), and rclone's
# WebDAV server ("remote:"). Encrypted backups through both restore
# exactly; a connection killed mid-stream and a full remote disk are a
# failed backup with a clear message, nothing committed, nothing under the
# final name.
. "$T_SRCDIR/lib.sh"

# free_port: a TCP port nobody listens on (a guess; the caller retries).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || break
	done
	echo "$p"
}

# start_sshd: an sshd on 127.0.0.1 as root, for the alias backuphost; its
# commands run in ./remote (ForceCommand), as the remote user's home.
# bin/ssh makes `ssh` read the test's ssh config and records each pid.
start_sshd() {
	[ "$(id -u)" = 0 ] || skip "needs root (an sshd of its own)"
	[ -x /usr/sbin/sshd ] && command -v ssh >/dev/null 2>&1 ||
		skip "openssh-server and openssh-client are needed"
	local d=$PWD p i
	mkdir -p remote bin
	ssh-keygen -q -t ed25519 -f hostkey -N '' && ssh-keygen -q -t ed25519 -f id -N ''
	cp id.pub authorized_keys
	[ -d /run/sshd ] || mkdir -p -m 0755 /run/sshd
	for i in 1 2 3 4 5; do
		p=$(free_port)
		cat >sshd_config <<-CFG
		Port $p
		ListenAddress 127.0.0.1
		HostKey $d/hostkey
		PidFile $d/sshd.pid
		AuthorizedKeysFile $d/authorized_keys
		StrictModes no
		UsePAM no
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		ForceCommand cd $d/remote && eval "\$SSH_ORIGINAL_COMMAND"
		CFG
		echo "[127.0.0.1]:$p $(cat hostkey.pub)" >known_hosts
		cat >ssh_config <<-CFG
		Host backuphost
		  HostName 127.0.0.1
		  Port $p
		  User root
		  IdentityFile $d/id
		  IdentitiesOnly yes
		  UserKnownHostsFile $d/known_hosts
		  StrictHostKeyChecking yes
		  BatchMode yes
		CFG
		/usr/sbin/sshd -D -f "$d/sshd_config" -E "$d/sshd.log" &
		SSHD_PID=$!
		trap 'rc=$?; kill $SSHD_PID 2>/dev/null; wait $SSHD_PID 2>/dev/null || true; exit $rc' EXIT
		printf '#!/bin/sh\necho $$ >>%s/ssh.pids\nexec /usr/bin/ssh -F %s/ssh_config "$@"\n' \
			"$d" "$d" >bin/ssh
		chmod +x bin/ssh
		PATH=$d/bin:$PATH
		for _ in $(seq 50); do
			ssh backuphost true 2>/dev/null && return 0
			kill -0 $SSHD_PID 2>/dev/null || break
			sleep 0.1
		done
		kill $SSHD_PID 2>/dev/null || true
		wait $SSHD_PID 2>/dev/null || true
	done
	fail "sshd did not start: $(tail -3 sshd.log)"
}

# nothing_committed SETDIR: the set has no checkpoint (or no state yet).
nothing_committed() {
	[ ! -e "$1/state.json" ] || [ "$(jq_py "$1/state.json" 'len(d["checkpoints"])')" = 0 ] ||
		fail "a checkpoint was committed: $(head -c 300 "$1/state.json")"
}

setup_data() {
	mkdir src
	rand src/d1 3000000
	put src/d1 1000000 500000 /dev/zero
	printf 'memory: 64\n' >src/qemu-server.conf
	vb key create k.key >/dev/null
	vb key public k.key k.pub
}

# The README's ssh examples, as written (drives and keys of this test).
ssh_readme() {
	start_sshd
	setup_data
	mkdir st
	run vb backup --set vm100 --state-dir st -d drive-scsi0=src/d1 -c src/qemu-server.conf \
		--compress zstd --recipient k.pub --quiet \
		--output-cmd 'ssh backuphost "cat > vm100-$(date +%F).vma.zst.enc.part"'
	expect_rc 0
	ssh backuphost "mv vm100-$(date +%F).vma.zst.enc.part vm100-$(date +%F).vma.zst.enc" ||
		fail "the rename on the remote host failed"
	f=vm100-$(date +%F).vma.zst.enc
	[ -f "remote/$f" ] || fail "remote/$f was not written"
	# restore through a pipe from the remote host
	ssh backuphost cat "$f" | vb restore --key k.key - --to r || fail "restore from ssh failed"
	same src/d1 r/disk-drive-scsi0.raw
	ssh backuphost cat "$f" | vb extract --key k.key - x || fail "extract from ssh failed"
	same src/qemu-server.conf x/qemu-server.conf
	# an incremental: the full through the pipe, the incremental as a file
	put src/d1 0 70000
	run vb backup --set vm100 --state-dir st -d drive-scsi0=src/d1 --compress zstd \
		--recipient k.pub --quiet --output-cmd 'ssh backuphost "cat > inc.vma.zst.enc.part"'
	expect_rc 0
	ssh backuphost "mv inc.vma.zst.enc.part inc.vma.zst.enc"
	ssh backuphost cat "$f" | vb restore --key k.key - remote/inc.vma.zst.enc --to r2 ||
		fail "restore of the chain failed"
	same src/d1 r2/disk-drive-scsi0.raw
	# plain, as the README's first example, and -o - with commit
	run vb backup -d drive-scsi0=src/d1 --compress zstd --quiet \
		--output-cmd 'ssh backuphost "cat > plain.vma.zst"'
	expect_rc 0
	run vb verify remote/plain.vma.zst
	expect_rc 0
}

# The local ssh killed mid-stream: the backup fails, nothing is committed,
# and the README's recipe leaves only the .part name. (The truth about the
# recipe `cat > x.part && mv x.part x` on the remote side: the remote cat
# sees the end of its input when the connection drops, exits 0, and mv
# publishes the truncated file: readers then refuse it, exit 3.)
ssh_killed() {
	start_sshd
	setup_data
	rand src/big 40000000
	mkdir st
	: >ssh.pids
	bg vb backup --set s --state-dir st -d d=src/big --compress zstd --recipient k.pub \
		--quiet --bwlimit 8M --output-cmd 'ssh backuphost "cat > a.enc.part"'
	for _ in $(seq 100); do [ -s remote/a.enc.part ] && break; sleep 0.05; done
	sleep 0.5
	kill -9 "$(head -1 ssh.pids)"
	bg_wait 60
	expect_rc 1
	expect_msg backup "output command 'ssh backuphost .*' exited before the end of the archive"
	nothing_committed st/s
	absent remote/a.enc
	[ -f remote/a.enc.part ] || fail "nothing reached the remote host"
	# the other recipe: the truncated file under its final name
	: >ssh.pids
	bg vb backup -d d=src/big --compress zstd --recipient k.pub --quiet --bwlimit 8M \
		--output-cmd 'ssh backuphost "cat > b.enc.part && mv b.enc.part b.enc"'
	for _ in $(seq 100); do [ -s remote/b.enc.part ] && break; sleep 0.05; done
	sleep 0.5
	kill -9 "$(head -1 ssh.pids)"
	bg_wait 60
	expect_rc 1
	for _ in $(seq 50); do [ -f remote/b.enc ] && break; sleep 0.1; done
	[ -f remote/b.enc ] || fail "cat > x.part && mv: expected the truncated file as b.enc"
	run vb verify --key k.key remote/b.enc
	expect_fail 3 verify "truncated encrypted archive|does not authenticate"
}

# The remote disk full: cat fails, the backup fails, nothing committed.
ssh_full() {
	start_sshd
	setup_data
	rand src/big 6000000
	mkdir -p remote/small st
	mount -t tmpfs -o size=1m tmpfs remote/small || skip "cannot mount a tmpfs"
	run vb backup --set s --state-dir st -d d=src/big --compress zstd --recipient k.pub \
		--quiet --output-cmd 'ssh backuphost "cat > small/a.enc.part"'
	expect_rc 1
	expect_msg backup "output command 'ssh backuphost .*' (exited with status 1|exited before the end)"
	expect_err "No space left on device"
	nothing_committed st/s
	umount remote/small
}

# rclone against its own WebDAV server on loopback, as the README's
# `rclone rcat remote:...` and `rclone cat remote:... | vmaback extract -`.
rclone_webdav() {
	command -v rclone >/dev/null 2>&1 || skip "rclone is not installed"
	setup_data
	mkdir dav
	: >rclone.conf
	export RCLONE_CONFIG=$PWD/rclone.conf RCLONE_CONFIG_REMOTE_TYPE=webdav
	for i in 1 2 3 4 5; do
		p=$(free_port)
		rclone serve webdav dav --addr "127.0.0.1:$p" >rclone.log 2>&1 &
		RCLONE_PID=$!
		trap 'rc=$?; kill $RCLONE_PID 2>/dev/null; wait $RCLONE_PID 2>/dev/null || true; exit $rc' EXIT
		export RCLONE_CONFIG_REMOTE_URL=http://127.0.0.1:$p
		for _ in $(seq 50); do
			rclone lsd remote: >/dev/null 2>&1 && break 2
			kill -0 $RCLONE_PID 2>/dev/null || break
			sleep 0.1
		done
		kill $RCLONE_PID 2>/dev/null || true
		wait $RCLONE_PID 2>/dev/null || true
	done
	rclone lsd remote: >/dev/null 2>&1 || fail "rclone serve webdav did not start: $(tail -3 rclone.log)"
	run vb backup -d drive-scsi0=src/d1 -c src/qemu-server.conf --compress zstd --quiet \
		--encrypt k.key --output-cmd 'rclone rcat remote:backups/vm100-$(date +%F).vma.zst.enc'
	expect_rc 0
	f=backups/vm100-$(date +%F).vma.zst.enc
	[ -f "dav/$f" ] || fail "dav/$f was not written"
	rclone cat "remote:$f" | vb extract --key k.key - x || fail "rclone cat | extract failed"
	same src/d1 x/disk-drive-scsi0.raw
	same src/qemu-server.conf x/qemu-server.conf
	rclone cat "remote:$f" | vb restore --key k.key - --to r || fail "rclone cat | restore failed"
	same src/d1 r/disk-drive-scsi0.raw
	run vb backup -d drive-scsi0=src/d1 --compress zstd --quiet \
		--output-cmd 'rclone rcat remote:backups/plain.vma.zst'
	expect_rc 0
	rclone cat remote:backups/plain.vma.zst | vb extract - y || fail "plain: rclone cat | extract failed"
	same src/d1 y/disk-drive-scsi0.raw
}

tcase ssh_readme ssh_readme
tcase ssh_killed ssh_killed
tcase ssh_full ssh_full
tcase rclone_webdav rclone_webdav
