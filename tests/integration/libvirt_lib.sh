# libvirt_lib.sh: a private libvirtd and its virtlogd for the tests and
# the bench (tests/bench/libvirt_bench.sh): session mode, as user nobody
# when root, every directory of its own under one temporary directory $L,
# stopped by PID. Needs need and skip (lib.sh's, or the bench's own).

# lv_up: libvirtd and virtlogd in $L (session mode: as nobody when root);
# URI names its socket. Skips when they cannot run here.
lv_up() {
	need qemu-img qemu-io virsh libvirtd virtlogd "$PYTHON"
	command -v qemu-system-x86_64 >/dev/null 2>&1 ||
		skip "qemu-system-x86_64 is not installed (Debian package qemu-system-x86)"
	L=$(mktemp -d /tmp/vl.XXXXXX)
	trap 'lv_down' EXIT
	mkdir -p "$L/cfg" "$L/cache" "$L/run" "$L/home" "$L/img" "$L/scr"
	chmod 755 "$L"
	chmod 700 "$L/run" "$L/scr"
	AS=()
	if [ "$(id -u)" = 0 ]; then
		command -v setpriv >/dev/null 2>&1 || skip "setpriv (util-linux) is missing"
		chown -R 65534:65534 "$L"
		AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	fi
	local envs=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$L/home"
		XDG_CONFIG_HOME="$L/cfg" XDG_CACHE_HOME="$L/cache" XDG_RUNTIME_DIR="$L/run")
	"${AS[@]}" "${envs[@]}" virtlogd -d -p "$L/run/virtlogd.pid" >"$L/virtlogd.out" 2>&1 ||
		skip "virtlogd cannot run here: $(head -c 300 "$L/virtlogd.out")"
	"${AS[@]}" "${envs[@]}" libvirtd -d -p "$L/run/libvirtd.pid" >"$L/libvirtd.out" 2>&1 ||
		skip "libvirtd cannot run here: $(head -c 300 "$L/libvirtd.out")"
	URI="qemu+unix:///session?socket=$L/run/libvirt/libvirt-sock"
	for _ in $(seq 1 100); do
		virsh -q -c "$URI" version >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	skip "libvirtd did not answer on $L/run/libvirt/libvirt-sock: $(head -c 300 "$L/libvirtd.out")"
}

lv_down() {
	local f p d
	for d in $(virsh -q -c "$URI" list --name 2>/dev/null); do
		virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1 || true
	done
	# QEMU, should libvirtd not have stopped it, then the daemons.
	for f in "$L"/run/libvirt/qemu/run/*.pid "$L/run/libvirtd.pid" "$L/run/virtlogd.pid"; do
		[ -f "$f" ] || continue
		p=$(cat "$f")
		kill "$p" 2>/dev/null || continue
		for _ in $(seq 1 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.05
		done
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$L"
}

