#!/usr/bin/env python3
# vm.py: the --qmp tests' view of a running QEMU (tests/integration/vm_lib.sh):
# guest writes that are mirrored into raw "shadow" copies of the disks, and
# checks of what vmaback leaves in QEMU. It talks to the test's own monitor
# ($VM_QMP, a second -qmp socket: vmaback has the first one).
#
# Usage: vm.py COMMAND ARGS...
#   gw SHDIR LOG DEV:OFF:LEN:PAT...   guest writes through DEV's virtio
#                                     backend (HMP qemu-io; OFF, LEN: 4096,
#                                     64k, 3M), the same bytes
#                                     into SHDIR/DEV.raw; "DEV OFF LEN PAT"
#                                     appended to LOG
#   gwrand SHDIR LOG SEED N DEV...    N seeded random writes spread over DEVs
#                                     (512 B to 192 KiB, 512-aligned)
#   gwredo SHDIR LOG SEED SRCLOG      the writes of SRCLOG again, new patterns
#   flush DEV...                      flush each device's disk (qcow2 caches
#                                     reach the file: survives a kill -9)
#   wait-export SECONDS [PID]         until a vmaback-* NBD export exists
#                                     (fails once process PID has ended)
#   check SET LATEST DEV=NODE[=-]... [--keep [NODE:]BITMAP]... [--paused]
#                                     nothing of vmaback's is left and each
#                                     node has exactly the bitmap
#                                     vmaback/SET/LATEST (none for LATEST
#                                     "-" or DEV=NODE=-: not in the set)
#                                     besides the --keep ones; the VM runs
#   bitmaps                           "NODE NAME COUNT FLAGS" per bitmap
#   status                            the run state (running, paused, ...)
#   q JSON...                         raw commands, each reply printed
#   touched LOG...                    the number of distinct 64 KiB clusters
#                                     (per DEV) the logged writes touch
#   chains CHECKPOINTS.json           per committed checkpoint, "NAME
#                                     ARCHIVE..." (the chain to restore it,
#                                     by base_uuid, from `checkpoints --json`)
# Exit 1 with the reason on stderr on any failure.
import json
import os
import random
import sys
import time

CLUSTER = 65536


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import QMP as _QMP  # noqa: E402 (the tests' one QMP client)


class QMP(_QMP):
    def hmp(self, line):
        out = self.cmd("human-monitor-command", **{"command-line": line})
        if out:  # HMP reports failures to run the command in its reply
            raise RuntimeError(f"{line}: {out.strip()}")


def qmp():
    return QMP(os.environ["VM_QMP"])


def backend(dev):  # the device's block backend, as vm_lib.sh's vm_start made it
    if dev.startswith("scsi"):
        return f"/machine/peripheral/{dev}"
    return f"/machine/peripheral/{dev}/virtio-backend"


def apply(q, shdir, log, writes):
    """writes: (dev, off, length, pat); the guest's and the shadow's."""
    with open(log, "a") as lf:
        for dev, off, n, pat in writes:
            q.hmp(f'qemu-io -d {backend(dev)} "write -P {pat} {off} {n}"')
            with open(os.path.join(shdir, dev + ".raw"), "r+b") as f:
                f.seek(off)
                f.write(bytes([pat]) * n)
            lf.write(f"{dev} {off} {n} {pat}\n")


def num(s):  # 4096, 64k, 3M, 0x11
    mult = {"k": 1024, "m": 1048576}.get(s[-1].lower(), 1)
    return int(s[:-1] if mult > 1 else s, 0) * mult


def gw(shdir, log, *specs):
    ws = []
    for s in specs:
        dev, off, n, pat = s.split(":")
        ws.append((dev, num(off), num(n), num(pat)))
    apply(qmp(), shdir, log, ws)


def gwrand(shdir, log, seed, n, *devs):
    r = random.Random(int(seed))
    ws = []
    for _ in range(int(n)):
        dev = r.choice(devs)
        size = os.path.getsize(os.path.join(shdir, dev + ".raw"))
        ln = r.choice([512, 4096, 65536, 65536, 99840, 196608])
        ws.append((dev, r.randrange(0, (size - ln) // 512) * 512, ln, r.randrange(1, 256)))
    apply(qmp(), shdir, log, ws)


def gwredo(shdir, log, seed, src):
    r = random.Random(int(seed))
    ws = []
    with open(src) as f:
        for line in f:
            dev, off, n, _ = line.split()
            ws.append((dev, int(off), int(n), r.randrange(1, 256)))
    apply(qmp(), shdir, log, ws)


def flush(*devs):
    q = qmp()
    for d in devs:
        q.hmp(f'qemu-io -d {backend(d)} "flush"')


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_export(secs, pid=None):
    q = qmp()
    end = time.time() + float(secs)
    while time.time() < end:
        if any(e.get("id", "").startswith("vmaback-") for e in q.cmd("query-block-exports")):
            return 0
        if pid is not None and not alive(pid):
            print(f"vm.py: process {pid} ended before any vmaback-* export appeared",
                  file=sys.stderr)
            return 1
        time.sleep(0.02)
    print("vm.py: no vmaback-* export appeared", file=sys.stderr)
    return 1


def all_bitmaps(q):
    out = []
    for n in q.cmd("query-named-block-nodes", flat=True):
        for b in n.get("dirty-bitmaps", []):
            out.append((n["node-name"], b))
    return out


def bitmaps():
    for node, b in all_bitmaps(qmp()):
        flags = [k for k in ("recording", "persistent", "inconsistent", "busy") if b.get(k)]
        print(node, b.get("name", "<unnamed>"), b.get("count"), ",".join(flags) or "-")


def check(setname, latest, *rest):
    """rest: DEV=NODE (the set backs it up), DEV=NODE=- (it does not),
    --keep [NODE:]BITMAP (others' bitmaps, left alone), --paused."""
    pairs, keep, paused = [], [], False
    it = iter(rest)
    for a in it:
        if a == "--keep":
            keep.append(next(it))
        elif a == "--paused":
            paused = True
        else:
            pairs.append((a.split("=") + [""])[:3])
    q = qmp()
    bad = []
    nodes = q.cmd("query-named-block-nodes", flat=True)
    bad += [f"node {n['node-name']} left" for n in nodes
            if n["node-name"].startswith("vmaback")]
    bad += [f"export {e['id']} left ({e.get('node-name')})"
            for e in q.cmd("query-block-exports")]
    bad += [f"job {j['id']} left ({j['status']})" for j in q.cmd("query-jobs")]
    probe = os.path.join(os.path.dirname(os.environ["VM_QMP"]), "probe.sock")
    try:
        q.cmd("nbd-server-start", addr={"type": "unix", "data": {"path": probe}})
        q.cmd("nbd-server-stop")
    except RuntimeError as e:
        bad.append(f"an NBD server is still running ({e})")
    inserted = {}
    for b in q.cmd("query-block"):  # qdev: a QOM path, or the id (scsi-hd)
        qd = b.get("qdev", "")
        qd = qd if qd.startswith("/") else "/machine/peripheral/" + qd
        inserted[qd] = b.get("inserted", {}).get("node-name")
    mine = f"vmaback/{setname}/{latest}"  # the set's bitmap, as live.c names it
    want = {}
    for dev, node, flag in pairs:
        got = inserted.get(backend(dev))
        if got != node:
            bad.append(f"device {dev} is attached to node {got}, not {node}")
        exp = [k.split(":", 1)[1] for k in keep if k.startswith(node + ":")]
        exp += [k for k in keep if ":" not in k]
        if flag != "-" and latest != "-":
            exp.append(mine)
        want[node] = (dev, sorted(set(exp)))
    seen = {node: [] for node in want}
    for node, b in all_bitmaps(q):
        name = b.get("name")
        if name is None:
            bad.append(f"an unnamed bitmap on node {node} (a job's) left")
            continue
        if node not in want:
            if name.startswith("vmaback"):
                bad.append(f"bitmap {name} on node {node}, not a drive's")
            continue
        seen[node].append(name)
        if name == mine:
            if not b.get("persistent") or not b.get("recording") or b.get("inconsistent") \
                    or b.get("busy"):
                bad.append(f"bitmap {name} on {node}: persistent {b.get('persistent')}, "
                           f"recording {b.get('recording')}, inconsistent "
                           f"{b.get('inconsistent')}, busy {b.get('busy')}")
    for node, names in seen.items():
        dev, exp = want[node]
        if sorted(names) != exp:
            bad.append(f"node {node} ({dev}) has bitmaps {sorted(names)}, expected {exp}")
    st = q.cmd("query-status")["status"]
    if st != ("paused" if paused else "running"):
        bad.append(f"the VM is {st}")
    for b in bad:
        print(f"vm.py check: {b}", file=sys.stderr)
    return 1 if bad else 0


def status():
    print(qmp().cmd("query-status")["status"])


def raw(*msgs):
    q = qmp()
    for m in msgs:
        print(json.dumps(q.send(json.loads(m))))


def touched(*logs):
    cl = set()
    for log in logs:
        with open(log) as f:
            for line in f:
                dev, off, n, _ = line.split()
                off, n = int(off), int(n)
                for c in range(off // CLUSTER, (off + n - 1) // CLUSTER + 1):
                    cl.add((dev, c))
    print(len(cl))


def chains(path):
    with open(path) as f:
        d = json.load(f)
    by = {c["uuid"]: c for c in d["checkpoints"]}
    for c in d["checkpoints"]:
        if c.get("pending"):
            continue
        chain, x = [], c
        while x is not None:  # a differential's base is its full
            chain.append(x["archive"])
            x = by[x["base_uuid"]] if x.get("base_uuid") else None
        print(c["name"], " ".join(reversed(chain)))


CMDS = {"gw": gw, "gwrand": gwrand, "gwredo": gwredo, "flush": flush,
        "wait-export": wait_export, "check": check, "bitmaps": bitmaps,
        "status": status, "q": raw, "touched": touched, "chains": chains}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CMDS:
        print("usage: vm.py COMMAND ARGS... (see the head of vm.py)", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(CMDS[sys.argv[1]](*sys.argv[2:]) or 0)
    except (RuntimeError, TimeoutError, EOFError, OSError, KeyError, ValueError) as e:
        print(f"vm.py {sys.argv[1]}: {e}", file=sys.stderr)
        sys.exit(1)
