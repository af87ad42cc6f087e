# qemu_lib.sh: helpers of the t_qemu_*.sh tests (sourced after lib.sh):
# required peers, private socket directories, servers stopped at exit,
# seeded guest-like writes, dirty-bitmap maps and archive clusters.

# Python for the helpers: Debian's own (a pyenv shim costs 0.3 s a call).
if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
py() {
	"$PYTHON" "$@"
}

# need PROG...: skip the case unless every program is installed.
need() {
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || skip "$p is not installed (scripts/deps.sh installs it)"
	done
}

# sockdir: a private directory for unix sockets in $S (their paths must stay
# under 108 bytes, so not under $T_WORK), and a trap that stops every server
# recorded in $S/*.pid and removes the directory when the case ends.
sockdir() {
	S=$(mktemp -d /tmp/vq.XXXXXX)
	trap 'stop_servers' EXIT
}
stop_servers() {
	local f
	# Not our children (they daemonize): kill -0 would see them alive
	# until init reaps them, so do not wait; nothing reuses their sockets.
	for f in "$S"/*.pid; do
		if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
	done
	rm -rf "$S"
}

# nbdkit_up NAME ARGS...: nbdkit ARGS on $S/NAME.sock (pid in $S/NAME.pid);
# prints nothing; the URI is nbd+unix:///?socket=$S/NAME.sock.
nbdkit_up() {
	local name=$1
	shift
	rm -f "$S/$name.sock"
	nbdkit -U "$S/$name.sock" -P "$S/$name.pid" "$@" ||
		fail "nbdkit $* did not start"
	for _ in $(seq 1 100); do
		[ -S "$S/$name.sock" ] && return 0
		sleep 0.02
	done
	fail "nbdkit $* did not create its socket"
}
nbdkit_down() {
	kill "$(cat "$S/$1.pid")" 2>/dev/null || true
	rm -f "$S/$1.pid" "$S/$1.sock"
}

# writes SEED SIZE N: N seeded random writes "OFFSET LENGTH PATTERN" inside
# SIZE bytes (512-aligned, 512 bytes to 192 KiB), one a line.
writes() {
	py -c '
import random, sys
r = random.Random(int(sys.argv[1])); size = int(sys.argv[2])
for _ in range(int(sys.argv[3])):
    n = r.choice([512, 4096, 65536, 65536, 99840, 196608])
    print(r.randrange(0, (size - n) // 512) * 512, n, r.randrange(1, 256))
' "$@"
}

# qwrite IMAGE WRITES_FILE: applies the writes with qemu-io (as a guest would:
# enabled persistent bitmaps record them).
qwrite() {
	local args=() off len pat
	while read -r off len pat; do
		args+=(-c "write -P $pat $off $len")
	done <"$2"
	qemu-io -f qcow2 "${args[@]}" "$1" >/dev/null || fail "qemu-io writes into $1 failed"
}

# touched WRITES_FILE: the 64 KiB clusters the writes touch, one a line.
touched() {
	awk '{ for (c = int($1 / 65536); c <= int(($1 + $2 - 1) / 65536); c++) print c }' "$1" |
		sort -n -u
}

# dmap IMAGE BITMAP: the clusters bitmap BITMAP of the qcow2 IMAGE marks dirty.
dmap() {
	nbdinfo --json --map="qemu:dirty-bitmap:$2" -- [ qemu-nbd -r -f qcow2 -B "$2" "$1" ] \
		>"$T_WORK/.io/$T_CASE/map.json" || fail "nbdinfo cannot read bitmap $2 of $1"
	py "$T_SRCDIR/clusters.py" map "$T_WORK/.io/$T_CASE/map.json"
}

# aclusters ARCHIVE: the clusters a plain VMA archive holds ("DEV CLUSTER").
aclusters() {
	py "$T_SRCDIR/clusters.py" archive "$1"
}

# bitmaps IMAGE: "NAME FLAGS" per persistent bitmap of IMAGE (flags joined by
# commas, "-" for none), sorted by name.
bitmaps() {
	qemu-img info --output=json -U "$1" | py -c '
import json, sys
d = json.load(sys.stdin).get("format-specific", {}).get("data", {})
for b in sorted(d.get("bitmaps", []), key=lambda b: b["name"]):
    print(b["name"], ",".join(b["flags"]) or "-")
'
}

# jget FILE KEY: a top-level value of a JSON object (vmaback --json output).
jget() {
	py -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# same_list A B WHAT: two files of lines are equal.
same_list() {
	cmp -s "$1" "$2" || fail "$3 differ: [$(head -c 300 "$1" | tr '\n' ' ')] vs [$(head -c 300 "$2" | tr '\n' ' ')]"
}
