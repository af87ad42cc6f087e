# t_serve.sh: `vmaback serve`: a chain's newest point as NBD exports, read
# whole with nbdcopy, at random with libnbd, block status against the
# source's zero blocks; --once, --port, -d; refusals; stopping by a signal
# stops the nbdkit it started; memory bounded serving a 1 TiB sparse drive.
. "$T_SRCDIR/lib.sh"

PY=/usr/bin/python3

need_tools() {
	command -v nbdkit >/dev/null 2>&1 || skip "nbdkit is not installed"
	command -v nbdcopy >/dev/null 2>&1 || skip "nbdcopy (libnbd-bin) is not installed"
	"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
}

# rnd FILE OFFSET_KIB LEN_KIB: random bytes into FILE (not truncated)
rnd() {
	dd if=/dev/urandom of="$1" bs=1K seek="$2" count="$3" conv=notrunc status=none
}
zeros() {
	dd if=/dev/zero of="$1" bs=1K seek="$2" count="$3" conv=notrunc status=none
}

# drive NAME SIZE [OFF_KIB:LEN_KIB ...]: NAME.raw, SIZE (truncate's form;
# '-' leaves it as long as its data) with random data at each OFF:LEN.
drive() {
	local name=$1 size=$2 r
	shift 2
	[ "$size" = - ] || truncate -s "$size" "$name.raw"
	for r; do rnd "$name.raw" "${r%%:*}" "${r#*:}"; done
}

# full OUT NAME...: a full backup of NAME.raw as drive NAME ... into OUT.
full() {
	local out=$1 n
	shift
	set -- $(for n; do printf -- '-d %s=%s.raw ' "$n" "$n"; done)
	run vb backup "$@" -o "$out"
	expect_rc 0
}

# serve_start ARGS...: vmaback serve in the background until it says it is
# ready; SPID is serve's pid, NPID nbdkit's.
serve_start() {
	SERR=$PWD/serve.err
	# emptied here, not only by the background job's redirection: the
	# loop below could otherwise read the previous serve's "ready" line
	# (and nbdkit pid) before the job has truncated the file
	: >"$SERR"
	"$VMABACK" serve "$@" >uris 2>"$SERR" &
	SPID=$!
	local it=0 why=timeout
	for _ in $(seq 300); do
		it=$((it + 1))
		grep -q 'serves the exports' "$SERR" && { why=ok; break; }
		kill -0 "$SPID" 2>/dev/null || { why=dead; break; }
		sleep 0.1
	done
	grep -q 'serves the exports' "$SERR" || { cat "$SERR" >"$ERR"; ps -o pid,stat,cmd -p "$SPID" >>"$ERR"; fail "serve $* did not get ready ($why after $it)"; }
	NPID=$(sed -n 's/.*nbdkit (pid \([0-9]*\)).*/\1/p' "$SERR")
	[ -n "$NPID" ] && kill -0 "$NPID" || fail "no nbdkit pid in: $(cat "$SERR")"
}

# serve_stop: SIGTERM to serve; it exits 0, and the nbdkit it started is gone.
serve_stop() {
	local rc=0
	kill -TERM "$SPID"
	wait "$SPID" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$SERR" >"$ERR"; fail "serve exited $rc after SIGTERM"; }
	grep -q 'stopped by signal 15' "$SERR" || fail "serve did not say it was stopped"
	if kill -0 "$NPID" 2>/dev/null; then
		fail "nbdkit (pid $NPID) still runs after serve stopped"
	fi
	! grep -q 'came after the work' "$SERR" || fail "serve called the stop an interruption"
}

# check_export NAME SOURCE: the export read whole equals SOURCE; random reads
# and block status too.
check_export() {
	local uri="nbd+unix:///$1?socket=$PWD/s.sock"
	rm -f got.raw
	nbdcopy "$uri" got.raw || fail "nbdcopy $uri failed"
	same got.raw "$2"
	"$PY" "$T_SRCDIR/serve_check.py" "$uri" "$2" "$RANDOM" >check.out 2>&1 ||
		fail "serve_check $1 against $2: $(cat check.out)"
}

# A full, two incrementals and a differential on a sparse and a dense drive;
# every point served and compared with the source as it was then.
chain() {
	need_tools
	local SD=$PWD/sd k
	drive sparse 48M 1024:3000 20000:64 40000:4
	drive dense $((6291456 + 3000)) 0:6144
	backup() {
		run vb backup --set s --state-dir "$SD" -d sparse=sparse.raw -d dense=dense.raw \
			--checkpoint "$@"
		expect_rc 0
	}
	backup c1 -o f.vma
	cp --sparse=always sparse.raw s1.raw; cp dense.raw d1.raw
	rnd sparse.raw 30000 128; zeros sparse.raw 1024 512; rnd dense.raw 100 10
	backup c2 -o i1.vma.zst
	cp --sparse=always sparse.raw s2.raw; cp dense.raw d2.raw
	rnd sparse.raw 1 3; zeros dense.raw 2048 1024; rnd dense.raw 6140 6
	backup c3 -o i2.vma
	cp --sparse=always sparse.raw s3.raw; cp dense.raw d3.raw
	rnd sparse.raw 45000 2000; zeros sparse.raw 30000 64
	backup c4 --mode differential --since c1 -o d.vma.zst
	cp --sparse=always sparse.raw s4.raw; cp dense.raw d4.raw
	local chain=(f.vma i1.vma.zst i2.vma d.vma.zst)
	for k in 1 2 3 4; do
		serve_start "${chain[@]:0:$k}" --socket "$PWD/s.sock"
		grep -qx "nbd+unix:///sparse?socket=$PWD/s.sock" uris || fail "no sparse URI in $(cat uris)"
		grep -q "of c$k\$" "$SERR" || fail "point $k is not c$k: $(cat "$SERR")"
		check_export sparse "s$k.raw"
		check_export dense "d$k.raw"
		serve_stop
		absent s.sock
	done
}

# -d one drive, over TCP on 127.0.0.1, --once: serve ends by itself.
once_port() {
	need_tools
	drive a 8M 100:200
	drive b - 0:100
	full f.vma a b
	local port=$((20000 + RANDOM % 20000)) rc=0
	: >serve.err
	"$VMABACK" serve f.vma -d a --port "$port" --bind 127.0.0.1 --once >uris 2>serve.err &
	SPID=$!
	for _ in $(seq 100); do grep -q 'serves the exports' serve.err && break; sleep 0.1; done
	grep -qx "nbd://127.0.0.1:$port/a" uris || fail "uris: $(cat uris)"
	nbdinfo --list "nbd://127.0.0.1:$port" >list.out 2>&1 || fail "nbdinfo: $(cat list.out)"
	grep -q 'export="a"' list.out || fail "no export a: $(cat list.out)"
	! grep -q 'export="b"' list.out || fail "drive b is served without -d b"
	# the listing was a client: a new serve for the copy
	wait "$SPID" || rc=$?
	[ "$rc" -eq 0 ] || fail "serve --once exited $rc: $(cat serve.err)"
	: >serve.err
	"$VMABACK" serve f.vma -d a --port "$port" --bind 127.0.0.1 --once >uris 2>serve.err &
	SPID=$!
	for _ in $(seq 100); do grep -q 'serves the exports' serve.err && break; sleep 0.1; done
	nbdcopy "nbd://127.0.0.1:$port/a" got.raw || fail "nbdcopy failed"
	same got.raw a.raw
	rc=0
	wait "$SPID" || rc=$?
	[ "$rc" -eq 0 ] || fail "serve --once exited $rc: $(cat serve.err)"
}

refusals() {
	need_tools
	drive a - 0:300
	full f.vma a
	run vb serve f.vma
	expect_fail 2 serve "one of --socket PATH or --port N"
	run vb serve f.vma --socket s.sock --port 1234
	expect_fail 2 serve "one of --socket"
	run vb serve f.vma --socket s.sock --bind 127.0.0.1
	expect_fail 2 serve "--bind needs --port"
	run vb serve --socket s.sock
	expect_fail 2 serve "expected the archives"
	run vb serve f.vma -d nope --socket s.sock
	expect_fail 2 serve "no drive named nope"
	absent s.sock
	: >s.sock
	run vb serve f.vma --socket s.sock
	expect_fail 2 serve "s.sock exists"
	rm s.sock
	# a single zstd frame (as Proxmox writes) and gzip cannot be read at random
	zstd -q -c f.vma >p.vma.zst
	run vb serve p.vma.zst --socket s.sock
	expect_fail 2 serve "without a seek table.*--cache-dir"
	gzip -c f.vma >p.vma.gz
	run vb serve p.vma.gz --socket s.sock
	expect_fail 2 serve "read from the start"
	head -c $(( $(stat -c %s f.vma) - 1000 )) f.vma >t.vma
	run vb serve t.vma --socket s.sock
	expect_fail 3 serve "stream ended inside"
	run vb serve missing.vma --socket s.sock
	expect_fail 2 serve "missing.vma"
	absent s.sock
}

# Archives that cannot be read at random (vzdump's single-frame .vma.zst,
# gzip, lzop) through --cache-dir: decompressed once, reused, compared.
cache_dir() {
	need_tools
	drive a 16M 1000:3000
	drive b - 0:700
	full f.vma a b
	zstd -q -c f.vma >p.vma.zst
	gzip -c f.vma >p.vma.gz
	local f
	for f in p.vma.gz p.vma.zst; do
		rm -rf cache
		serve_start "$f" --socket "$PWD/s.sock" --cache-dir cache
		grep -q 'decompressed copy in cache' "$SERR" || fail "$f: no caching line: $(cat "$SERR")"
		grep -q 'caching: 100% of' "$SERR" || fail "$f: no progress line: $(cat "$SERR")"
		check_export a a.raw
		check_export b b.raw
		serve_stop
	done
	# one cache file per archive uuid (both are the same archive), 0600, sparse-able
	[ "$(ls cache | wc -l)" -eq 1 ] || fail "cache holds $(ls -A cache)"
	mode_is cache 700
	mode_is cache/vmaback-cache-*.vma 600
	same cache/vmaback-cache-*.vma f.vma
	# the second time it is reused, not decompressed again
	serve_start p.vma.zst --socket "$PWD/s.sock" --cache-dir cache
	grep -q 'decompressed before' "$SERR" || fail "the cache was not reused: $(cat "$SERR")"
	! grep -q 'caching:' "$SERR" || fail "decompressed again"
	check_export a a.raw
	serve_stop
	if command -v lzop >/dev/null 2>&1; then
		lzop -q -c f.vma >p.vma.lzo
		rm -rf cache
		serve_start p.vma.lzo --socket "$PWD/s.sock" --cache-dir cache
		check_export b b.raw
		serve_stop
	fi
}

# A cache directory without room for the decompressed archive: refused
# clearly, nothing left in it.
cache_no_room() {
	need_tools
	[ "$(id -u)" = 0 ] || skip "mounting a small tmpfs needs root"
	drive a 16M 0:6000
	full f.vma a
	zstd -q -1 -c f.vma >p.vma.zst
	mkdir small
	mount -t tmpfs -o size=3M tmpfs small 2>/dev/null || skip "cannot mount a tmpfs"
	# less room than the compressed archive: refused before writing
	run vb serve p.vma.zst --socket "$PWD/s.sock" --cache-dir small -q
	local rc=$RC
	ls -A small >left.txt
	umount small 2>/dev/null || umount -l small
	RC=$rc expect_fail 1 serve "no room in small for the decompressed .*p.vma.zst"
	[ ! -s left.txt ] || fail "the cache directory kept $(cat left.txt)"
	# a compressible drive: the copy fills the directory up
	yes 'the same line, again and again' | head -c 6M >c.raw
	full g.vma c
	zstd -q -c g.vma >q.vma.zst
	mount -t tmpfs -o size=3M tmpfs small
	run vb serve q.vma.zst --socket "$PWD/s.sock" --cache-dir small -q
	rc=$RC
	ls -A small >left.txt
	umount small 2>/dev/null || umount -l small
	RC=$rc expect_fail 1 serve "no room in small"
	[ ! -s left.txt ] || fail "the cache directory kept $(cat left.txt)"
	absent s.sock
}

# --overlay: a qcow2 per export whose backing file is the export; it reads
# as the source, and writes to it leave the export as it was.
overlay() {
	need_tools
	command -v qemu-img >/dev/null 2>&1 || skip "qemu-img is not installed"
	command -v qemu-io >/dev/null 2>&1 || skip "qemu-io is not installed"
	drive a 32M 3000:2000
	drive b - 0:1000
	full f.vma.zst a b
	serve_start f.vma.zst --socket s.sock --overlay ov
	[ -f ov/a.qcow2 ] && [ -f ov/b.qcow2 ] || fail "overlays: $(ls -A ov)"
	mode_is ov/a.qcow2 600
	grep -q "overlay ov/a.qcow2 on nbd+unix:///a?socket=$PWD/s.sock" "$SERR" ||
		fail "no overlay line: $(cat "$SERR")"
	run qemu-img compare -f qcow2 -F raw ov/a.qcow2 a.raw
	expect_rc 0
	run qemu-img compare -f qcow2 -F raw ov/b.qcow2 b.raw
	expect_rc 0
	run qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' ov/a.qcow2
	expect_rc 0
	run qemu-img compare -f qcow2 -F raw ov/a.qcow2 a.raw
	expect_rc 1
	check_export a a.raw
	serve_stop
	# an overlay that exists is not replaced
	run vb serve f.vma.zst --socket s.sock --overlay ov
	expect_fail 2 serve "ov/a.qcow2 exists"
	absent s.sock
}

# Memory stays bounded while a 1 TiB sparse drive (4 MiB of data at four
# places) is served: the whole export's block status and random reads, the
# peak resident size (VmHWM) of nbdkit and of vmaback serve (not measured
# under the sanitizers, whose shadow memory is no figure of vmaback's) at
# most SERVE_MEM_MIB. Only clusters with data take memory in the index.
SERVE_MEM_MIB=${SERVE_MEM_MIB:-64}
big_sparse() {
	need_tools
	local m pids
	drive big 1T
	for m in 0 1000 500000 900000; do
		dd if=/dev/urandom of=big.raw bs=1M seek="$m" count=4 conv=notrunc status=none
	done
	full big.vma.zst big
	serve_start big.vma.zst --socket "$PWD/s.sock"
	grep -q 'drive big (1.0 TiB, 256 clusters with data)' "$SERR" || fail "$(cat "$SERR")"
	# the index is built once, by serve: nbdkit, ready, has read the
	# archive's headers and seek table, not its extents again
	local rchar size
	rchar=$(sed -n 's/^rchar: //p' "/proc/$NPID/io")
	size=$(stat -c %s big.vma.zst)
	[ "$rchar" -lt $((size / 4)) ] ||
		fail "nbdkit read $rchar bytes of a $size-byte archive before it was ready"
	pids=$NPID
	ldd "$VMABACK" 2>/dev/null | grep -q libasan || pids="$pids $SPID"
	# shellcheck disable=SC2086
	"$PY" "$T_SRCDIR/serve_big.py" "nbd+unix:///big?socket=$PWD/s.sock" big.raw "$RANDOM" \
		"$SERVE_MEM_MIB" 0 1000 500000 900000 -- $pids >big.out 2>&1 ||
		fail "serve_big: $(cat big.out)"
	echo "    $(cat big.out)"
	serve_stop
}

# serve --key: encrypted archives (zstd and plain inside, one signed) read
# at random, chunk by chunk, by the plugin; no key: refused, naming it.
encrypted() {
	need_tools
	local SD=$PWD/sd kid
	drive sparse 20M 1024:3000 15000:64
	drive dense - 0:3000
	kid=$(vb key create k.key)
	run vb backup --set s --state-dir "$SD" -d sparse=sparse.raw -d dense=dense.raw \
		--checkpoint c1 --encrypt k.key --sign k.key -o f.vma.zst.enc --compress zstd
	expect_rc 0
	rnd sparse.raw 8000 300; zeros dense.raw 100 200
	run vb backup --set s --state-dir "$SD" -d sparse=sparse.raw -d dense=dense.raw \
		--checkpoint c2 --encrypt k.key -o i.vma.enc --compress none
	expect_rc 0
	serve_start f.vma.zst.enc i.vma.enc --key k.key --socket "$PWD/s.sock"
	check_export sparse sparse.raw
	check_export dense dense.raw
	serve_stop
	run vb serve f.vma.zst.enc --socket "$PWD/s.sock"
	expect_fail 2 serve "encrypted to key $kid: give its key file with --key"
	absent s.sock
}

tcase chain chain
tcase encrypted encrypted
tcase once_port once_port
tcase refusals refusals
tcase cache_dir cache_dir
tcase cache_no_room cache_no_room
tcase overlay overlay
tcase big_sparse big_sparse
