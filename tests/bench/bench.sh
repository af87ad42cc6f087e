#!/bin/sh
# bench.sh: `make bench`: vmaback against the physical limit (cat) and the
# tools users would pick instead (cp, zstd, qemu-img), measured in one run.
#
# Env: VMABACK (the binary), BENCH_SIZE (image size in MiB, default 4096, a
# multiple of 64), BENCH_QUICK=1 (512 MiB, for iterating), BENCH_ROUNDS
# (default 3), BENCH_DIR (scratch parent; default /dev/shm, else $TMPDIR),
# BENCH_OUT (results file, default bench-results.md next to the binary),
# BENCH_BIG (size of the sparse RSS drive in MiB, default 16384),
# BENCH_HUGE (the scale case's sparse drive in MiB, default 1048576: 1 TiB,
# with BENCH_HUGE_DATA MiB of data, default 1024; 0 skips it),
# BENCH_DRIVES (the scale case of many drives of 16 MiB, default 64; 0 skips).
# Every file lives in the scratch directory: on tmpfs all reads and writes
# are page-cache speed, the same for vmaback and the references.
set -eu

VMABACK=${VMABACK:-vmaback}
command -v "$VMABACK" >/dev/null 2>&1 || { echo "bench: no vmaback binary (set VMABACK)" >&2; exit 1; }
for p in zstd qemu-img qemu-io qemu-nbd python3; do
	command -v $p >/dev/null 2>&1 || { echo "bench: $p is needed (make deps)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is needed (package time)" >&2; exit 1; }
if [ "${BENCH_QUICK:-0}" = 1 ]; then SIZE_MIB=${BENCH_SIZE:-512}; else SIZE_MIB=${BENCH_SIZE:-4096}; fi
ROUNDS=${BENCH_ROUNDS:-3}
BIG_MIB=${BENCH_BIG:-16384}
HUGE_MIB=${BENCH_HUGE:-1048576}
HUGE_DATA=${BENCH_HUGE_DATA:-1024}
NDRIVES=${BENCH_DRIVES:-64}
case $SIZE_MIB$ROUNDS$BIG_MIB$HUGE_MIB$HUGE_DATA$NDRIVES in *[!0-9]* | '') echo "bench: BENCH_SIZE, BENCH_ROUNDS, BENCH_BIG are numbers" >&2; exit 2 ;; esac
[ $((SIZE_MIB % 64)) -eq 0 ] && [ "$SIZE_MIB" -ge 128 ] ||
	{ echo "bench: BENCH_SIZE must be a multiple of 64 (MiB), at least 128" >&2; exit 2; }
[ "$HUGE_MIB" = 0 ] || { [ "$HUGE_DATA" -ge 16 ] && [ $((HUGE_DATA % 16)) -eq 0 ] && [ "$HUGE_MIB" -ge $((HUGE_DATA * 16)) ]; } ||
	{ echo "bench: BENCH_HUGE_DATA must be a multiple of 16 (MiB), BENCH_HUGE at least 16 times it" >&2; exit 2; }
[ "$NDRIVES" -le 255 ] || { echo "bench: BENCH_DRIVES is at most 255 (VMA's limit)" >&2; exit 2; }
OUTFILE=${BENCH_OUT:-$(dirname "$(command -v "$VMABACK")")/bench-results.md}

# Peak scratch use: the image (3/4 allocated), its qcow2 copy (1/2), two
# archives (1/2 each) and one restored copy (1/2): about 2.75 x the image.
need_kib=$((SIZE_MIB * 1024 * 11 / 4 + 524288))
avail_kib() { df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }'; }
parent=${BENCH_DIR:-}
if [ -z "$parent" ]; then
	for p in /dev/shm "${TMPDIR:-/tmp}"; do
		a=$(avail_kib "$p" || echo 0)
		if [ -d "$p" ] && [ -w "$p" ] && [ "${a:-0}" -ge "$need_kib" ]; then
			parent=$p
			break
		fi
	done
fi
if [ -z "$parent" ]; then
	echo "bench: no scratch space with $((need_kib / 1024)) MiB free (/dev/shm, ${TMPDIR:-/tmp}); set BENCH_DIR or BENCH_SIZE" >&2
	exit 1
fi
# Short: qemu-nbd's socket path must stay under 108 bytes.
dir=$(mktemp -d "$parent/vbb.XXXXXX")
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fs=$(df -PT "$dir" | awk 'NR == 2 { print $2 }')
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

V=$VMABACK
img=$dir/img.raw
CL=65536
NCL=$((SIZE_MIB * 16))                  # 64 KiB clusters in the image
export V img dir

echo "bench: $SIZE_MIB MiB image in $dir ($fs): 1/2 random, 1/4 written zeros, 1/4 holes"
truncate -s "${SIZE_MIB}M" "$img"
i=0
while [ $i -lt $((SIZE_MIB / 64)) ]; do
	dd if=/dev/urandom of="$img" bs=1M count=32 seek=$((i * 64)) conv=notrunc status=none iflag=fullblock
	dd if=/dev/zero of="$img" bs=1M count=16 seek=$((i * 64 + 32)) conv=notrunc status=none
	i=$((i + 1))
done

now() { date +%s.%N; }
# group ROUND_PREP LABEL PREP CMD [LABEL PREP CMD ...]: ROUNDS rounds; in each
# round ROUND_PREP, then every LABEL's PREP (untimed) and CMD (timed), in
# turn, so that the machine's noise falls on all of them alike. The median
# lands in $dir/t.LABEL, each round's seconds in $dir/r.LABEL.
group() {
	gprep=$1
	shift
	for l in $(printf '%s\n' "$@" | awk 'NR % 3 == 1'); do : >"$dir/r.$l"; done
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		ROUND=$r
		export ROUND
		sh -c "$gprep"
		n=$#
		k=0
		while [ $k -lt $n ]; do
			eval "label=\${$((k + 1))} prep=\${$((k + 2))} cmd=\${$((k + 3))}"
			sh -c "$prep"
			t0=$(now)
			if ! sh -c "$cmd" >"$dir/log" 2>&1; then
				echo "bench: '$label' failed: $cmd" >&2
				cat "$dir/log" >&2
				exit 1
			fi
			t1=$(now)
			awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >>"$dir/r.$label"
			k=$((k + 3))
		done
		r=$((r + 1))
	done
	for l in $(printf '%s\n' "$@" | awk 'NR % 3 == 1'); do
		sort -g "$dir/r.$l" | awk '{ v[NR] = $1 } END { n = NR; if (n % 2) m = v[(n + 1) / 2]; else m = (v[n / 2] + v[n / 2 + 1]) / 2; printf "%.3f\n", m }' >"$dir/t.$l"
		sort -g "$dir/r.$l" | awk '{ v[NR] = $1 } END { printf "%.3f-%.3f\n", v[1], v[NR] }' >"$dir/s.$l"
		printf '  %-22s %8.3f s  %s  (median of %s:%s)\n' "$l" "$(cat "$dir/t.$l")" "$(cat "$dir/s.$l")" \
			"$ROUNDS" "$(tr '\n' ' ' <"$dir/r.$l" | awk '{ for (i = 1; i <= NF; i++) printf " %.2f", $i }')"
	done
}
t() { cat "$dir/t.$1"; }
sp() { cat "$dir/s.$1"; }  # min-max of the rounds
# speed of A over speed of B (= time B / time A) on the same data
ratio() { awk -v a="$(t "$1")" -v b="$(t "$2")" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "inf" }'; }
# time A as a fraction of time B
frac() { awk -v a="$(t "$1")" -v b="$(t "$2")" 'BEGIN { if (b > 0) printf "%.4f", a / b; else print "inf" }'; }
mibs() { awk -v s="$2" -v t="$(t "$1")" 'BEGIN { if (t > 0) printf "%.0f", s / t; else print "inf" }'; }
ok() { awk -v v="$1" -v w="$2" -v op="$3" 'BEGIN { m = (op == ">=") ? v >= w : v <= w; print m ? "met" : "**missed**" }'; }

echo "bench: $ROUNDS rounds each, everything on $fs"

echo "== full backup, no compression"
group ':' \
	cat ':' 'cat "$img" >/dev/null' \
	vb_null ':' '"$V" backup --quiet -d d="$img" -o - >/dev/null' \
	cp_sparse 'rm -f "$dir/cp.raw"' 'cp --sparse=always "$img" "$dir/cp.raw"' \
	vb_file 'rm -f "$dir/a.vma"' '"$V" backup --quiet -d d="$img" -o "$dir/a.vma"'
rm -f "$dir/cp.raw"

echo "== restore of the plain archive to a sparse file"
group ':' \
	qemu_convert 'rm -f "$dir/q.raw"' 'qemu-img convert -f raw -O raw "$img" "$dir/q.raw"' \
	vb_restore 'rm -f "$dir/x.raw"' '"$V" restore --quiet "$dir/a.vma" --target d="$dir/x.raw"' \
	vb_extract 'rm -rf "$dir/x"' '"$V" extract --quiet "$dir/a.vma" "$dir/x"'
cmp "$img" "$dir/x.raw" || { echo "bench: the restored drive differs from the image" >&2; exit 1; }
cmp "$img" "$dir/x/disk-d.raw" || { echo "bench: the extracted drive differs from the image" >&2; exit 1; }
sz_vb=$(stat -c %s "$dir/a.vma")
rm -rf "$dir/q.raw" "$dir/x.raw" "$dir/x" "$dir/a.vma"

echo "== full backup with zstd (and encrypted), and its restore"
rm -f "$dir/bench.key"
"$V" key create "$dir/bench.key" >/dev/null
group ':' \
	zstd_T0 'rm -f "$dir/ref.zst"' 'zstd -q -T0 -3 -c "$img" >"$dir/ref.zst"' \
	vb_zstd 'rm -f "$dir/a.vma.zst"' '"$V" backup --quiet -d d="$img" -o "$dir/a.vma.zst"' \
	vb_zstd_enc 'rm -f "$dir/a.enc"' '"$V" backup --quiet -d d="$img" --compress zstd --encrypt "$dir/bench.key" -o "$dir/a.enc"'
sz_ref=$(stat -c %s "$dir/ref.zst")
sz_vbz=$(stat -c %s "$dir/a.vma.zst")
group ':' \
	zstd_d 'rm -f "$dir/ref.raw"' 'zstd -q -d "$dir/ref.zst" -o "$dir/ref.raw"' \
	vb_restore_zst 'rm -f "$dir/x.raw"' '"$V" restore --quiet "$dir/a.vma.zst" --target d="$dir/x.raw"' \
	vb_restore_enc 'rm -f "$dir/y.raw"' '"$V" restore --quiet --key "$dir/bench.key" "$dir/a.enc" --target d="$dir/y.raw"'
cmp "$img" "$dir/x.raw" || { echo "bench: the restored drive differs from the image" >&2; exit 1; }
cmp "$img" "$dir/y.raw" || { echo "bench: the decrypted drive differs from the image" >&2; exit 1; }
rm -f "$dir/ref.raw" "$dir/x.raw" "$dir/y.raw" "$dir/ref.zst" "$dir/a.vma.zst" "$dir/a.enc" "$dir/bench.key"

# 1% of the clusters, spread over the whole drive, get new data (the
# round number picks the qcow2 pattern, so every round changes them).
cat >"$dir/dirty_raw.py" <<'EOF'
import os, sys
with open(sys.argv[1], "r+b") as f:
    for c in range(0, int(sys.argv[2]), 100):
        f.seek(c * 65536)
        f.write(os.urandom(65536))
EOF
awk -v n="$NCL" -v cl="$CL" 'BEGIN { printf "qemu-io -f qcow2"; for (c = 0; c < n; c += 100) printf " -c \"write -P $1 %d 64k\"", c * cl; print " \"$2\" >/dev/null" }' >"$dir/dirty_q.sh"
dirty_raw='python3 "$dir/dirty_raw.py" "$img" '$NCL
dirty_q='sh "$dir/dirty_q.sh" $((ROUND % 200 + 1)) "$qimg"'
echo "== incremental, 1% dirty, through digest maps (raw file, set R)"
st=$dir/st
export st
group ':' \
	vb_full_set 'rm -f "$dir/f.vma"' '"$V" backup --quiet --set R --state-dir "$st" --mode full -d d="$img" -o "$dir/f.vma"' \
	vb_inc_digest "rm -f \"\$dir/i.vma\"; $dirty_raw" '"$V" backup --quiet --set R --state-dir "$st" --mode incremental -d d="$img" -o "$dir/i.vma"'
rm -f "$dir/f.vma" "$dir/i.vma"

echo "== incremental, 1% dirty, through a qcow2 checkpoint bitmap (set Q)"
qimg=$dir/img.qcow2
qemu-img convert -f raw -O qcow2 "$img" "$qimg"
export qimg
group ':' \
	qemu_convert_q 'rm -f "$dir/qc.raw"' 'qemu-img convert -f qcow2 -O raw "$qimg" "$dir/qc.raw"' \
	vb_full_qcow2 'rm -f "$dir/f.vma" "$dir/qc.raw"' '"$V" backup --quiet --set Q --state-dir "$st" --mode full -d d=qcow2:"$qimg" -o "$dir/f.vma"' \
	vb_inc_bitmap "rm -f \"\$dir/i.vma\"; $dirty_q" '"$V" backup --quiet --set Q --state-dir "$st" --mode incremental -d d=qcow2:"$qimg" -o "$dir/i.vma"'
ROUND=0 sh -c "$dirty_q"
"$V" backup --set Q --state-dir "$st" --mode incremental -d d=qcow2:"$qimg" -o "$dir/i2.vma" --json >"$dir/inc.json" 2>"$dir/log" || { cat "$dir/log" >&2; exit 1; }
inc_read=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("bytes_read", "?"))' "$dir/inc.json" 2>/dev/null || echo "?")
rm -f "$dir/f.vma" "$dir/i.vma" "$dir/i2.vma" "$qimg"
rm -rf "$st"

echo "== --bwlimit 20M on 40 MiB of data"
bw=$dir/bw.raw
dd if=/dev/urandom of="$bw" bs=1M count=40 status=none iflag=fullblock
export bw
group ':' vb_bwlimit ':' '"$V" backup --quiet --bwlimit 20M -d d="$bw" -o - >/dev/null'
rm -f "$bw"

echo "== compressible image ($((SIZE_MIB / 4)) MiB of system files)"
cimg=$dir/comp.raw
find /usr/lib /usr/bin /usr/share -xdev -type f -size +4k 2>/dev/null | sort |
	xargs cat 2>/dev/null | head -c $((SIZE_MIB / 4 * 1048576)) >"$cimg" || true
truncate -s $((SIZE_MIB / 4))M "$cimg"
export cimg
group ':' \
	zstd_T0_comp 'rm -f "$dir/ref.zst"' 'zstd -q -T0 -3 -c "$cimg" >"$dir/ref.zst"' \
	vb_zstd_comp 'rm -f "$dir/a.vma.zst"' '"$V" backup --quiet -d d="$cimg" -o "$dir/a.vma.zst"'
csz_ref=$(stat -c %s "$dir/ref.zst")
csz_vbz=$(stat -c %s "$dir/a.vma.zst")
rm -f "$dir/ref.zst" "$dir/a.vma.zst" "$cimg"

echo "== peak RSS"
big=$dir/big.raw
truncate -s "${BIG_MIB}M" "$big"
i=0
while [ $i -lt 16 ]; do  # 16 x 4 MiB of data spread over the drive
	dd if=/dev/urandom of="$big" bs=1M count=4 seek=$((i * BIG_MIB / 16)) conv=notrunc status=none iflag=fullblock
	i=$((i + 1))
done
rss() { # LABEL CMD...: peak RSS in KiB of CMD into $dir/m.LABEL, its seconds into $dir/e.LABEL
	l=$1
	shift
	/usr/bin/time -f '%e %M' -o "$dir/tm" "$@" >/dev/null 2>"$dir/log" ||
		{ echo "bench: rss $l failed" >&2; cat "$dir/log" >&2; exit 1; }
	tail -1 "$dir/tm" | awk '{ print $2 }' >"$dir/m.$l"
	tail -1 "$dir/tm" | awk '{ print $1 }' >"$dir/e.$l"
	printf '  %-22s %8s KiB %8s s\n' "$l" "$(cat "$dir/m.$l")" "$(cat "$dir/e.$l")"
}
m() { awk -v k="$(cat "$dir/m.$1")" 'BEGIN { printf "%.1f", k / 1024 }'; }
e() { cat "$dir/e.$1"; }
for d in img big; do
	eval "f=\$$d"
	rss "plain_$d" "$V" backup --quiet -d d="$f" -o -
	rss "zstd_$d" "$V" backup --quiet --compress zstd -d d="$f" -o -
	rss "set_$d" "$V" backup --quiet --set "S$d" --state-dir "$dir/st" --compress zstd -d d="$f" -o "$dir/s.vma.zst"
	rss "restore_$d" "$V" restore --quiet "$dir/s.vma.zst" --target d="$dir/r.raw"
	rm -f "$dir/s.vma.zst" "$dir/r.raw"
done
rm -rf "$big" "$dir/st"

# Scale: time must grow with the data, not the size, and memory stay put.
# Each case runs once (plain to a file, set + zstd, restore), timed with
# its peak RSS; skipped with a message when the scratch space is short.
huge_done=0 many_done=0
if [ "$HUGE_MIB" -gt 0 ]; then
	# the data, its archive (+ 512 B per 59 clusters), the set's digest map
	# (32 B per cluster), the restored data, and a dense copy of the data
	hneed=$((HUGE_DATA * 1024 * 4 + HUGE_MIB / 64 * 41 + 524288))
	if [ "$(avail_kib "$dir")" -lt "$hneed" ]; then
		echo "== scale: $HUGE_MIB MiB sparse drive skipped: $((hneed / 1024)) MiB of scratch space needed"
	else
		echo "== scale: $HUGE_MIB MiB sparse drive with $HUGE_DATA MiB of data"
		huge=$dir/huge.raw dense=$dir/dense.raw
		truncate -s "${HUGE_MIB}M" "$huge"
		truncate -s "${HUGE_DATA}M" "$dense"
		i=0
		while [ $i -lt 16 ]; do  # 16 pieces of data spread over the drive
			dd if=/dev/urandom of="$dir/piece" bs=1M count=$((HUGE_DATA / 16)) status=none iflag=fullblock
			dd if="$dir/piece" of="$huge" bs=1M seek=$((i * (HUGE_MIB / 16))) conv=notrunc status=none
			dd if="$dir/piece" of="$dense" bs=1M seek=$((i * (HUGE_DATA / 16))) conv=notrunc status=none
			i=$((i + 1))
		done
		rm -f "$dir/piece"
		rss dense_plain "$V" backup --quiet -d d="$dense" -o "$dir/h.vma"
		rm -f "$dir/h.vma" "$dense"
		rss huge_plain "$V" backup --quiet -d d="$huge" -o "$dir/h.vma"
		rm -f "$dir/h.vma"
		rss huge_set "$V" backup --quiet --set H --state-dir "$dir/st" --compress zstd -d d="$huge" -o "$dir/h.vma.zst"
		rss huge_restore "$V" restore --quiet "$dir/h.vma.zst" --target d="$dir/hr.raw"
		# (cmp would read the whole size: the pieces and the size are enough)
		[ "$(stat -c %s "$dir/hr.raw")" = "$(stat -c %s "$huge")" ] &&
			cmp -n $((HUGE_DATA / 16 * 1048576)) "$huge" "$dir/hr.raw" &&
			cmp -n $((HUGE_DATA / 16 * 1048576)) "$huge" "$dir/hr.raw" $((HUGE_MIB / 16 * 15 * 1048576)) $((HUGE_MIB / 16 * 15 * 1048576)) ||
			{ echo "bench: the restored sparse drive differs" >&2; exit 1; }
		rm -rf "$huge" "$dir/hr.raw" "$dir/h.vma.zst" "$dir/st"
		huge_done=1
	fi
fi
if [ "$NDRIVES" -gt 0 ]; then
	mneed=$((NDRIVES * 16 * 1024 * 3 / 2 + 524288))
	if [ "$(avail_kib "$dir")" -lt "$mneed" ]; then
		echo "== scale: $NDRIVES drives skipped: $((mneed / 1024)) MiB of scratch space needed"
	else
		echo "== scale: $NDRIVES drives of 16 MiB (8 MiB random, 8 MiB hole each)"
		mkdir "$dir/many"
		set --
		i=0
		while [ $i -lt "$NDRIVES" ]; do
			truncate -s 16M "$dir/many/d$i.raw"
			dd if=/dev/urandom of="$dir/many/d$i.raw" bs=1M count=8 conv=notrunc status=none iflag=fullblock
			set -- "$@" -d "d$i=$dir/many/d$i.raw"
			i=$((i + 1))
		done
		rss many_plain "$V" backup --quiet "$@" -o "$dir/m.vma"
		rm -f "$dir/m.vma"
		rss many_set "$V" backup --quiet --set M --state-dir "$dir/st" --compress zstd "$@" -o "$dir/m.vma.zst"
		rss many_restore "$V" restore --quiet "$dir/m.vma.zst" --to "$dir/mr"
		cmp "$dir/many/d0.raw" "$dir/mr/disk-d0.raw" || { echo "bench: a restored drive differs" >&2; exit 1; }
		rm -rf "$dir/many" "$dir/mr" "$dir/m.vma.zst" "$dir/st"
		set --
		many_done=1
	fi
fi

RSS_GOAL=64
worst() { # the largest RSS of LABELS..., in MiB
	for l in "$@"; do cat "$dir/m.$l"; done | sort -n | tail -1 | awk '{ printf "%.1f", $1 / 1024 }'
}
size_ratio=$(awk -v a="$sz_vbz" -v b="$sz_ref" 'BEGIN { printf "%.3f", a / b }')
csize_ratio=$(awk -v a="$csz_vbz" -v b="$csz_ref" 'BEGIN { printf "%.3f", a / b }')
bw_rate=$(awk -v t="$(t vb_bwlimit)" 'BEGIN { printf "%.2f", 40 / t }')
bw_acc=$(awk -v t="$(t vb_bwlimit)" 'BEGIN { printf "%.3f", 2.0 / t }')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
# target LABEL VALUE GOAL OP: one row of the targets table (no goal: GOAL -)
target() {
	if [ "$3" = - ]; then
		echo "| $1 | $2 | | |"
	else
		echo "| $1 | $2 | $4 $3 | $(ok "$2" "$3" "$4") |"
	fi
}
row() { # LABEL COMMAND TIMELABEL MIB (- : no rate)
	if [ "$4" = - ]; then r=; else r=$(mibs "$3" "$4"); fi
	echo "| $1 | \`$2\` | $(t "$3") | $(sp "$3") | $r |"
}

{
	echo "# vmaback benchmark"
	echo
	echo "$("$V" --version 2>/dev/null | head -1); $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) CPUs ($cpu)."
	echo "Image: $SIZE_MIB MiB (1/2 random, 1/4 written zeros, 1/4 holes); compressible image:"
	echo "$((SIZE_MIB / 4)) MiB of /usr files. Every file on $fs (page-cache speed for all). Median of"
	echo "$ROUNDS rounds (min-max beside it), each round running vmaback and its references in turn."
	echo "MiB/s = image size / time. Load average before: $load_before; after: $load"
	echo "(other work on the machine skews the figures: compare the spreads)."
	echo
	echo "| operation | command | seconds | min-max | MiB/s |"
	echo "| --- | --- | ---: | ---: | ---: |"
	row "read limit" "cat img > /dev/null" cat "$SIZE_MIB"
	row "backup, plain, to /dev/null" "vmaback backup -d d=img -o - > /dev/null" vb_null "$SIZE_MIB"
	row "sparse copy" "cp --sparse=always img out" cp_sparse "$SIZE_MIB"
	row "backup, plain, to a file" "vmaback backup -d d=img -o a.vma" vb_file "$SIZE_MIB"
	row "convert" "qemu-img convert -O raw img out" qemu_convert "$SIZE_MIB"
	row "restore, plain" "vmaback restore a.vma --target d=out" vb_restore "$SIZE_MIB"
	row "extract, plain" "vmaback extract a.vma dir" vb_extract "$SIZE_MIB"
	row "compress" "zstd -T0 -3 -c img > out" zstd_T0 "$SIZE_MIB"
	row "backup, zstd" "vmaback backup -d d=img -o a.vma.zst" vb_zstd "$SIZE_MIB"
	row "backup, zstd, encrypted" "vmaback backup -d d=img --encrypt k -o a.enc" vb_zstd_enc "$SIZE_MIB"
	row "decompress" "zstd -d ref.zst -o out" zstd_d "$SIZE_MIB"
	row "restore, zstd" "vmaback restore a.vma.zst --target d=out" vb_restore_zst "$SIZE_MIB"
	row "restore, zstd, encrypted" "vmaback restore --key k a.enc --target d=out" vb_restore_enc "$SIZE_MIB"
	row "compress, compressible" "zstd -T0 -3 -c comp > out" zstd_T0_comp $((SIZE_MIB / 4))
	row "backup, zstd, compressible" "vmaback backup -d d=comp -o a.vma.zst" vb_zstd_comp $((SIZE_MIB / 4))
	row "full backup with digest map" "vmaback backup --set R --mode full" vb_full_set "$SIZE_MIB"
	row "incremental, 1% dirty, digest map" "vmaback backup --set R --mode incremental" vb_inc_digest -
	row "convert the qcow2" "qemu-img convert -f qcow2 -O raw img.qcow2 out" qemu_convert_q "$SIZE_MIB"
	row "full backup of the qcow2" "vmaback backup --set Q -d d=qcow2:img.qcow2" vb_full_qcow2 "$SIZE_MIB"
	row "incremental, 1% dirty, qcow2 bitmap" "... --set Q --mode incremental" vb_inc_bitmap -
	echo "| 40 MiB at --bwlimit 20M | \`vmaback backup --bwlimit 20M\` | $(t vb_bwlimit) | $(sp vb_bwlimit) | $bw_rate |"
	echo
	echo "| target | measured | goal | |"
	echo "| --- | ---: | ---: | --- |"
	target "backup plain vs cat (speed ratio, to /dev/null)" "$(ratio vb_null cat)" 1 '>='
	target "backup plain to a file vs cp --sparse=always (speed ratio)" "$(ratio vb_file cp_sparse)" 1 '>='
	target "backup zstd vs zstd -T0 -3 (speed ratio)" "$(ratio vb_zstd zstd_T0)" 0.95 '>='
	target "backup zstd encrypted vs backup zstd (speed ratio)" "$(ratio vb_zstd_enc vb_zstd)" 0.95 '>='
	target "backup zstd vs zstd -T0 -3 (size ratio)" "$size_ratio" 1.02 '<='
	target "compressible: backup zstd vs zstd -T0 -3 (speed ratio)" "$(ratio vb_zstd_comp zstd_T0_comp)" 0.95 '>='
	target "compressible: backup zstd vs zstd -T0 -3 (size ratio)" "$csize_ratio" 1.02 '<='
	target "restore plain to a sparse file vs qemu-img convert (speed ratio)" "$(ratio vb_restore qemu_convert)" 1 '>='
	target "restore zstd vs zstd -d (speed ratio)" "$(ratio vb_restore_zst zstd_d)" 1 '>='
	target "full backup with digest map vs plain backup to a file (speed ratio)" "$(ratio vb_full_set vb_file)" 0.9 '>='
	target "incremental 1% via digest map vs cat of the disk (time ratio)" "$(frac vb_inc_digest cat)" 1.1 '<='
	target "incremental 1% via digest map / full with digest map (time)" "$(frac vb_inc_digest vb_full_set)" - -
	target "full backup of the qcow2 vs qemu-img convert -O raw of it (speed ratio)" "$(ratio vb_full_qcow2 qemu_convert_q)" 0.9 '>='
	target "incremental 1% via qcow2 bitmap / full (time)" "$(frac vb_inc_bitmap vb_full_qcow2)" 0.02 '<='
	target "--bwlimit 20M: limit / achieved rate" "$bw_acc" - -
	target "peak RSS, $SIZE_MIB MiB drive (MiB, worst of plain, zstd, set, restore)" \
		"$(worst plain_img zstd_img set_img restore_img)" $RSS_GOAL '<='
	target "peak RSS, $BIG_MIB MiB sparse drive (MiB, same)" \
		"$(worst plain_big zstd_big set_big restore_big)" $RSS_GOAL '<='
	if [ $huge_done = 1 ]; then
		target "peak RSS, $HUGE_MIB MiB sparse drive, $HUGE_DATA MiB data (MiB, plain, set, restore)" \
			"$(worst huge_plain huge_set huge_restore)" $RSS_GOAL '<='
		target "$HUGE_MIB MiB sparse drive vs its $HUGE_DATA MiB of data as one drive (time of the plain backup)" \
			"$(awk -v a="$(e huge_plain)" -v b="$(e dense_plain)" 'BEGIN { printf "%.2f", a / b }')" - -
	else
		echo "| peak RSS, sparse drive of $HUGE_MIB MiB | skipped | <= $RSS_GOAL | |"
	fi
	if [ $many_done = 1 ]; then
		target "peak RSS, $NDRIVES drives of 16 MiB (MiB, plain, set, restore)" \
			"$(worst many_plain many_set many_restore)" $RSS_GOAL '<='
	else
		echo "| peak RSS, $NDRIVES drives | skipped | <= $RSS_GOAL | |"
	fi
	echo
	echo "Sizes: a.vma $sz_vb, a.vma.zst $sz_vbz, zstd -T0 -3 of the image $sz_ref bytes;"
	echo "compressible: a.vma.zst $csz_vbz, zstd $csz_ref bytes. The last qcow2 incremental read $inc_read bytes."
	echo "Peak RSS in MiB (plain / zstd / set+zstd / restore): $SIZE_MIB MiB drive $(m plain_img) / $(m zstd_img) / $(m set_img) / $(m restore_img);"
	echo "$BIG_MIB MiB sparse drive $(m plain_big) / $(m zstd_big) / $(m set_big) / $(m restore_big)."
	if [ $huge_done = 1 ]; then
		echo "Scale, one run each, seconds (peak RSS MiB): $HUGE_MIB MiB sparse drive with $HUGE_DATA MiB of data:"
		echo "plain $(e huge_plain) ($(m huge_plain)), set+zstd $(e huge_set) ($(m huge_set)), restore $(e huge_restore) ($(m huge_restore));"
		echo "the same data as one $HUGE_DATA MiB drive, plain $(e dense_plain) ($(m dense_plain))."
	fi
	if [ $many_done = 1 ]; then
		echo "$NDRIVES drives of 16 MiB: plain $(e many_plain) ($(m many_plain)), set+zstd $(e many_set) ($(m many_set)), restore $(e many_restore) ($(m many_restore))."
	fi
	echo "Speed ratio above 1: vmaback is faster than the reference."
} >"$dir/results.md"

echo
cat "$dir/results.md"
if cp "$dir/results.md" "$OUTFILE" 2>/dev/null; then
	echo
	echo "bench: written to $OUTFILE"
fi
