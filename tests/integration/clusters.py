#!/usr/bin/env python3
# clusters.py: which 64 KiB clusters an archive holds, and which clusters a
# dirty bitmap marks, one "DEV CLUSTER" or "CLUSTER" a line, for comparing.
#
# Usage: clusters.py archive FILE.vma   clusters of a plain (uncompressed) VMA
#        clusters.py map FILE.json      clusters touched by the dirty extents
#                                       (type & 1) of `nbdinfo --json --map=...`
import json
import struct
import sys

CLUSTER = 65536


def archive(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"VMA\0":
        sys.exit(f"{path}: not a plain VMA file")
    off = struct.unpack(">I", data[56:60])[0]  # header size
    out = []
    while off < len(data):
        if data[off:off + 4] != b"VMAE":
            sys.exit(f"{path}: no extent at offset {off}")
        blocks = struct.unpack(">H", data[off + 6:off + 8])[0]
        for i in range(59):
            bi = struct.unpack(">Q", data[off + 40 + 8 * i:off + 48 + 8 * i])[0]
            dev = (bi >> 32) & 0xff
            if dev:
                out.append((dev, bi & 0xffffffff))
        off += 512 + blocks * 4096
    for dev, c in sorted(out):
        print(dev, c)


def dirty_map(path):
    seen = set()
    for e in json.load(open(path)):
        if e["type"] & 1 and e["length"] > 0:
            first = e["offset"] // CLUSTER
            last = (e["offset"] + e["length"] - 1) // CLUSTER
            seen.update(range(first, last + 1))
    for c in sorted(seen):
        print(c)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("archive", "map"):
        sys.exit("usage: clusters.py archive FILE.vma | map FILE.json")
    (archive if sys.argv[1] == "archive" else dirty_map)(sys.argv[2])
