#!/usr/bin/python3
# serve_check.py URI SOURCE [SEED]: one export of `vmaback serve` against the
# source file it was backed up from: random 4 KiB and 1 MiB reads (and the
# last bytes), and block status: every 4 KiB block the server calls a hole
# is zeros in the source, and every block of zeros is a hole (vmaback stores
# no zero block). Uses libnbd's Python binding (python3-libnbd).
import random
import sys

import nbd

uri, src = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
rnd = random.Random(seed)
data = open(src, "rb").read()
size = len(data)
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(uri)
if h.get_size() != size:
    sys.exit(f"{uri}: size {h.get_size()}, source {size}")
if not h.is_read_only():
    sys.exit(f"{uri}: not read-only")
for n, length in ((40, 4096), (12, 1 << 20)):
    for _ in range(n):
        length = min(length, size)
        off = rnd.randrange(0, size - length + 1)
        if rnd.random() < 0.5:
            off -= off % 4096
        got = h.pread(length, off)
        if got != data[off:off + length]:
            sys.exit(f"{uri}: {length} bytes at {off} differ from the source")
tail = min(size, 5000)
if h.pread(tail, size - tail) != data[size - tail:]:
    sys.exit(f"{uri}: the last {tail} bytes differ")

# block status over the whole export, at 4 KiB grain
runs = []


def collect(metacontext, offset, entries, err):
    if metacontext != nbd.CONTEXT_BASE_ALLOCATION:
        return 0
    pos = offset
    for i in range(0, len(entries), 2):
        runs.append((pos, entries[i], entries[i + 1]))
        pos += entries[i]
    return 0


off = 0
while off < size:
    before = len(runs)
    h.block_status(min(size - off, 1 << 30), off, collect)
    if len(runs) == before:
        sys.exit(f"{uri}: no block status at {off}")
    off = runs[-1][0] + runs[-1][1]
zero = bytes(4096)
holes = data_blocks = 0
for pos, length, flags in runs:
    end = min(pos + length, size)
    hole = bool(flags & nbd.STATE_HOLE)
    if hole != bool(flags & nbd.STATE_ZERO):
        sys.exit(f"{uri}: run at {pos}: hole and zero flags differ ({flags})")
    for b in range(pos, end, 4096):
        block = data[b:min(b + 4096, size)]
        is_zero = block == zero[:len(block)]
        if hole and not is_zero:
            sys.exit(f"{uri}: block at {b} is reported a hole but holds data")
        if not hole and is_zero:
            sys.exit(f"{uri}: block at {b} is zeros but reported as data")
        holes += hole
        data_blocks += not hole
h.shutdown()
print(f"ok {uri}: {len(runs)} runs, {holes} hole and {data_blocks} data blocks")
