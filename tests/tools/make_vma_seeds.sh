#!/bin/sh
# make_vma_seeds.sh: regenerates the small seed archives of the fuzz_vma_reader
# corpus with vma_forge.  Usage: make_vma_seeds.sh VMA_FORGE OUTDIR
set -eu
forge=$1
out=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$out"
printf 'x' > "$tmp/one.img"
# 5000 bytes: a data block, then a partial block of text
{ head -c 4096 /dev/zero | tr '\0' 'A'; head -c 904 /dev/zero | tr '\0' 'b'; } > "$tmp/small.img"
# 70000 bytes, mostly zero: two clusters, a few stored blocks
{ printf 'boot'; head -c 69992 /dev/zero; printf 'tail'; } > "$tmp/sparse.img"
printf 'memory: 512\ncores: 1\n' > "$tmp/qemu-server.conf"

"$forge" -o "$out/empty.vma"
"$forge" -o "$out/one-byte.vma" --config "$tmp/qemu-server.conf" drive-scsi0="$tmp/one.img"
"$forge" -o "$out/two-interleaved.vma" --interleave --extent-clusters 1 \
	drive-scsi0="$tmp/small.img" drive-virtio1="$tmp/sparse.img"
"$forge" -o "$out/three-shuffled.vma" --shuffle 3 --extent-clusters 2 \
	--config "$tmp/qemu-server.conf" \
	drive-scsi0="$tmp/sparse.img" drive-scsi1="$tmp/one.img" drive-efidisk0="$tmp/small.img"
