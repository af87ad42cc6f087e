#!/usr/bin/python3
# serve_big.py URI SOURCE SEED BOUND_MIB DATA_MIB... -- PID...: a large sparse
# export of `vmaback serve` against its source, without reading the source
# whole: block status over the whole export must report data exactly at
# the 4 MiB regions of random data starting at each DATA_MIB (and holes
# everywhere else); random 4 KiB and 1 MiB reads, in the holes and in the
# data, equal the source. Then the peak resident memory (VmHWM) of each PID
# (nbdkit, vmaback serve) must be at most BOUND_MIB.
import os
import random
import sys

import nbd

args = sys.argv[1:]
uri, src, seed, bound = args[0], args[1], int(args[2]), int(args[3])
sep = args.index("--")
regions = [int(m) << 20 for m in args[4:sep]]
pids = args[sep + 1:]
REGION = 4 << 20
rnd = random.Random(seed)
fd = os.open(src, os.O_RDONLY)
size = os.fstat(fd).st_size
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(uri)
if h.get_size() != size:
    sys.exit(f"{uri}: size {h.get_size()}, source {size}")

# block status over the whole export, in requests of up to 2 GiB
data_runs = []
nruns = 0


def collect(metacontext, offset, entries, err):
    global nruns
    if metacontext != nbd.CONTEXT_BASE_ALLOCATION:
        return 0
    pos = offset
    for i in range(0, len(entries), 2):
        nruns += 1
        if not entries[i + 1] & nbd.STATE_HOLE:
            if data_runs and data_runs[-1][1] == pos:
                data_runs[-1][1] = pos + entries[i]
            else:
                data_runs.append([pos, pos + entries[i]])
        pos += entries[i]
    collect.end = pos
    return 0


off = 0
while off < size:
    collect.end = off
    h.block_status(min(size - off, 2 << 30), off, collect)
    if collect.end <= off:
        sys.exit(f"{uri}: no block status at {off}")
    off = collect.end
want = [[r, r + REGION] for r in sorted(regions)]
if data_runs != want:
    sys.exit(f"{uri}: data at {data_runs[:8]}, expected {want}")

# random reads: anywhere (mostly holes), and inside the data regions
reads = 0
for length in (4096, 1 << 20):
    for k in range(24):
        if k % 2:
            base = rnd.choice(regions)
            off = base + rnd.randrange(0, REGION - length + 1)
        else:
            off = rnd.randrange(0, size - length + 1)
        if rnd.random() < 0.5:
            off -= off % 4096
        if h.pread(length, off) != os.pread(fd, length, off):
            sys.exit(f"{uri}: {length} bytes at {off} differ from the source")
        reads += 1
h.shutdown()

peaks = []
for pid in pids:
    with open(f"/proc/{pid}/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    peaks.append(f"{pid}: {hwm // 1024} MiB")
    if hwm > bound * 1024:
        sys.exit(f"{uri}: process {pid} peaked at {hwm // 1024} MiB, more than {bound} MiB")
print(f"ok {uri}: {size >> 30} GiB, {nruns} runs, {len(data_runs)} data, "
      f"{reads} reads; peak resident {', '.join(peaks)}")
