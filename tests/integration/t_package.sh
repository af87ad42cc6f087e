# t_package.sh: the Debian package: built from this checkout with
# dpkg-buildpackage (scripts/make-deb.sh), lintian reports nothing, its
# files are where Debian puts them, the installed binary backs up and
# restores, and systemd-analyze accepts the service and the timer.
. "$T_SRCDIR/lib.sh"

# package: builds the package (once for all cases, in $T_WORK/deb), checks
# it with lintian and unpacks it into ./root.
package() {
	if [ ! -d "$T_WORK/deb" ]; then
		sh "$T_SRCDIR/../../scripts/make-deb.sh" "$T_WORK/deb" >/dev/null 2>err ||
			fail "make-deb failed: $(cat err)"
	fi
	DEB=$(ls "$T_WORK"/deb/vmaback_*_*.deb)
	run lintian -I "$DEB"
	[ -z "$(grep -v 'root privileges' "$OUT" "$ERR" || true)" ] ||
		fail "lintian: $(cat "$OUT" "$ERR")"
	dpkg -x "$DEB" root
	for f in usr/bin/vmaback usr/share/man/man1/vmaback.1.gz \
		usr/share/bash-completion/completions/vmaback \
		usr/share/zsh/vendor-completions/_vmaback \
		usr/share/fish/vendor_completions.d/vmaback.fish \
		lib/systemd/system/vmaback@.service lib/systemd/system/vmaback@.timer \
		usr/share/doc/vmaback/copyright usr/share/doc/vmaback/examples/vm100.json; do
		[ -f "root/$f" ] || fail "the package lacks /$f"
	done
	# the documents a user needs offline: the README and the encryption
	# format (for a second implementation); dh_compress may gzip them
	for f in README.md encryption.md; do
		[ -f "root/usr/share/doc/vmaback/$f" ] || [ -f "root/usr/share/doc/vmaback/$f.gz" ] ||
			fail "the package lacks /usr/share/doc/vmaback/$f"
	done
	[ -d root/etc/vmaback ] || fail "the package lacks /etc/vmaback"
	mode_is root/var/lib/vmaback 700
}

installed_runs() {
	package
	local vb=root/usr/bin/vmaback
	"$vb" --version | grep -q '^vmaback [0-9]' || fail "--version: $("$vb" --version)"
	rand a 1048576
	"$vb" backup -q --set s --state-dir st -d drive-scsi0=a -o x.vma ||
		fail "the installed binary's backup failed"
	"$vb" restore -q x.vma --to r || fail "the installed binary's restore failed"
	same a r/disk-drive-scsi0.raw
	zcat root/usr/share/man/man1/vmaback.1.gz | grep -q 'vmaback' || fail "empty man page"
}

units_verify() {
	package
	mkdir u
	# an instance of the template, its ExecStart pointing into the package
	sed "s|/usr/bin/vmaback|$PWD/root/usr/bin/vmaback|" \
		root/lib/systemd/system/vmaback@.service >u/vmaback@vm100.service
	cp root/lib/systemd/system/vmaback@.timer u/vmaback@vm100.timer
	grep -q '^ExecStart=.*backup --config-file /etc/vmaback/%i.json' u/vmaback@vm100.service ||
		fail "ExecStart: $(grep ExecStart u/vmaback@vm100.service)"
	grep -q '^Persistent=true' u/vmaback@vm100.timer || fail "the timer is not Persistent"
	grep -q '^RandomizedDelaySec=' u/vmaback@vm100.timer || fail "the timer has no random delay"
	MANPATH=$PWD/root/usr/share/man run systemd-analyze verify u/vmaback@vm100.service \
		u/vmaback@vm100.timer
	expect_rc 0
	[ ! -s "$ERR" ] || fail "systemd-analyze: $(cat "$ERR")"
}

# The example job, its paths moved here, is one the installed binary runs.
example_config() {
	package
	rand d0 1048576
	rand d1 65536
	echo "name: vm100" >100.conf
	mkdir dump
	sed -e "s|/dev/vg0/vm-100-disk-0|$PWD/d0|" -e "s|/var/lib/images/vm100-data.qcow2|$PWD/d1|" \
		-e "s|qcow2:|raw:|" -e "s|/etc/pve/qemu-server/100.conf|$PWD/100.conf|" \
		-e "s|/var/backups/vmaback/vm100|$PWD/dump|" \
		root/usr/share/doc/vmaback/examples/vm100.json >job.json
	run root/usr/bin/vmaback backup --config-file job.json --state-dir st
	expect_rc 0
	run root/usr/bin/vmaback restore "$(ls dump/*.vma.zst)" --to r
	expect_rc 0
	same d0 r/disk-drive-scsi0.raw
	same d1 r/disk-drive-virtio1.raw
}

tcase installed_runs installed_runs
tcase units_verify units_verify
tcase example_config example_config
