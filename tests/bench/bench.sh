#!/bin/sh
# bench.sh: `make bench`: throughput of vmaback backup (plain, zstd) and
# extract on one generated image, as ratios to cat, cp, zstd in the same run.
#
# Env: VMABACK (the binary), BENCH_SIZE (image size in MiB, default 2048, a
# multiple of 64), BENCH_ROUNDS (default 3), BENCH_DIR (scratch parent),
# BENCH_OUT (the results file, default bench-results.md next to the binary).
# Figures are warm-cache: the image is read from the page cache (or tmpfs).
set -eu

VMABACK=${VMABACK:-vmaback}
command -v "$VMABACK" >/dev/null 2>&1 || { echo "bench: no vmaback binary (set VMABACK)" >&2; exit 1; }
command -v zstd >/dev/null 2>&1 || { echo "bench: zstd is needed" >&2; exit 1; }
SIZE_MIB=${BENCH_SIZE:-2048}
ROUNDS=${BENCH_ROUNDS:-3}
case $SIZE_MIB in *[!0-9]* | '') echo "bench: BENCH_SIZE must be MiB" >&2; exit 2 ;; esac
[ $((SIZE_MIB % 64)) -eq 0 ] && [ "$SIZE_MIB" -ge 64 ] ||
	{ echo "bench: BENCH_SIZE must be a multiple of 64 (MiB)" >&2; exit 2; }
OUTFILE=${BENCH_OUT:-$(dirname "$(command -v "$VMABACK")")/bench-results.md}

# Scratch: the image plus every output at once, about 3.5 x the image.
need_kib=$((SIZE_MIB * 1024 * 7 / 2 + 262144))
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
dir=$(mktemp -d "$parent/vmaback-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

img=$dir/img.raw
echo "bench: making a $SIZE_MIB MiB image in $dir (1/2 random, 1/4 zeros, 1/4 holes)"
: >"$img"
truncate -s "${SIZE_MIB}M" "$img"
i=0
while [ $i -lt $((SIZE_MIB / 64)) ]; do
	# each 64 MiB: 32 MiB random, 16 MiB of written zeros, 16 MiB hole
	dd if=/dev/urandom of="$img" bs=1M count=32 seek=$((i * 64)) conv=notrunc status=none iflag=fullblock
	dd if=/dev/zero of="$img" bs=1M count=16 seek=$((i * 64 + 32)) conv=notrunc status=none
	i=$((i + 1))
done
sync
cat "$img" >/dev/null   # warm the cache

now() { date +%s.%N; }
# timed LABEL PREP CMD: runs sh -c PREP (untimed) then sh -c CMD, ROUNDS times;
# records the median seconds in $dir/t.LABEL.
timed() {
	label=$1 prep=$2 cmd=$3 r=0
	: >"$dir/rounds"
	while [ $r -lt "$ROUNDS" ]; do
		sh -c "$prep"
		t0=$(now)
		if ! sh -c "$cmd" 2>"$dir/log"; then
			echo "bench: '$label' failed: $cmd" >&2
			cat "$dir/log" >&2
			exit 1
		fi
		t1=$(now)
		awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >>"$dir/rounds"
		r=$((r + 1))
	done
	sort -g "$dir/rounds" | awk '{ v[NR] = $1 } END { n = NR; if (n % 2) m = v[(n + 1) / 2]; else m = (v[n / 2] + v[n / 2 + 1]) / 2; printf "%.3f\n", m }' \
		>"$dir/t.$label"
	printf '  %-18s %8.3f s (median of %s)\n' "$label" "$(cat "$dir/t.$label")" "$ROUNDS"
}

V=$VMABACK
export V img dir
echo "bench: $ROUNDS rounds each, warm cache"
timed cat ':' 'cat "$img" >/dev/null'
timed cp_sparse 'rm -f "$dir/cp.raw"' 'cp --sparse=always "$img" "$dir/cp.raw"'
rm -f "$dir/cp.raw"
timed zstd_T0 'rm -f "$dir/ref.zst"' 'zstd -q -T0 -3 -c "$img" >"$dir/ref.zst"'
timed vb_backup 'rm -f "$dir/a.vma"' '"$V" backup --quiet --drive drive-scsi0="$img" -o "$dir/a.vma"'
timed vb_backup_zstd 'rm -f "$dir/a.vma.zst"' '"$V" backup --quiet --drive drive-scsi0="$img" -o "$dir/a.vma.zst"'
timed vb_extract 'rm -rf "$dir/x"' '"$V" extract "$dir/a.vma" "$dir/x"'
cmp "$img" "$dir/x/disk-drive-scsi0.raw" || { echo "bench: extract differs from the image" >&2; exit 1; }
rm -rf "$dir/x"
timed vb_extract_zstd 'rm -rf "$dir/x"' '"$V" extract "$dir/a.vma.zst" "$dir/x"'
cmp "$img" "$dir/x/disk-drive-scsi0.raw" || { echo "bench: extract differs from the image" >&2; exit 1; }
rm -rf "$dir/x"
timed zstd_d 'rm -f "$dir/ref.raw"' 'zstd -q -d "$dir/ref.zst" -o "$dir/ref.raw"'
rm -f "$dir/ref.raw"

sz_ref=$(stat -c %s "$dir/ref.zst")
sz_vbz=$(stat -c %s "$dir/a.vma.zst")
sz_vb=$(stat -c %s "$dir/a.vma")

t() { cat "$dir/t.$1"; }
mibs() { awk -v s="$SIZE_MIB" -v t="$(t "$1")" 'BEGIN { if (t > 0) printf "%.0f", s / t; else print "inf" }'; }
# ratio A B: speed of A over speed of B (= time B / time A)
ratio() { awk -v a="$(t "$1")" -v b="$(t "$2")" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "inf" }'; }
sratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
fs=$(df -PT "$dir" | awk 'NR == 2 { print $2 }')

{
	echo "# vmaback benchmark"
	echo
	echo "$("$V" --version 2>/dev/null | head -1); $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) CPUs ($cpu); scratch on $fs."
	echo "Image: $SIZE_MIB MiB (1/2 random, 1/4 written zeros, 1/4 holes). Median of $ROUNDS rounds;"
	echo "warm cache (caches cannot be dropped reliably here). MiB/s = image size / time."
	echo "Load average at the end: $load (other work on the machine skews the figures)."
	echo
	echo "| operation | command | seconds | MiB/s | ratio |"
	echo "| --- | --- | ---: | ---: | --- |"
	echo "| read reference | \`cat img > /dev/null\` | $(t cat) | $(mibs cat) | |"
	echo "| copy reference | \`cp --sparse=always\` | $(t cp_sparse) | $(mibs cp_sparse) | |"
	echo "| zstd reference | \`zstd -T0 -3 -c img > out\` | $(t zstd_T0) | $(mibs zstd_T0) | |"
	echo "| unzstd reference | \`zstd -d\` | $(t zstd_d) | $(mibs zstd_d) | |"
	echo "| backup, plain | \`vmaback backup -o a.vma\` | $(t vb_backup) | $(mibs vb_backup) | $(ratio vb_backup cat) x cat |"
	echo "| backup, zstd | \`vmaback backup -o a.vma.zst\` | $(t vb_backup_zstd) | $(mibs vb_backup_zstd) | $(ratio vb_backup_zstd zstd_T0) x zstd -T0; size $(sratio "$sz_vbz" "$sz_ref") x |"
	echo "| extract, plain | \`vmaback extract a.vma x\` | $(t vb_extract) | $(mibs vb_extract) | $(ratio vb_extract cp_sparse) x cp --sparse |"
	echo "| extract, zstd | \`vmaback extract a.vma.zst x\` | $(t vb_extract_zstd) | $(mibs vb_extract_zstd) | $(ratio vb_extract_zstd zstd_d) x zstd -d |"
	echo
	echo "Sizes: a.vma $sz_vb bytes, a.vma.zst $sz_vbz bytes, zstd -T0 -3 of the image $sz_ref bytes."
	echo "A ratio above 1 means vmaback is faster than the reference."
} >"$dir/results.md"

echo
cat "$dir/results.md"
if cp "$dir/results.md" "$OUTFILE" 2>/dev/null; then
	echo
	echo "bench: written to $OUTFILE"
fi
