#!/usr/bin/env python3
# t_chain_random.py: randomized checkpoint chains (run by t_chain_random.sh): random disk
# sets and writes, random modes, injected failures; every archive restores exactly.
"""Seeded random test of vmaback's backup sets.

Environment: VMABACK (the binary), T_WORK (a scratch directory), SEED (default:
20261123; "random" picks one; always printed), RUNS (backup runs in all; default: as many as fit in
BUDGET seconds, default 60, 30 under the sanitizers, at least 40 and at most 400), SETS (backup sets,
default 3), FAULTS (the failure kinds to inject, default
enospc,kill,term,shrink), VERBOSE=1 (one line per run). Exit status 0 when
every check held, 1 on the first mismatch (the message names the seed and the
run, and how to run it again).

Model: for every archive written, the exact content (size and SHA-256 of every
64 KiB cluster) each drive had at that moment; for every committed checkpoint,
the clusters that changed since its parent (by content, as vmaback's digest
maps see them). After every run: a failed run left state.json as it was and no
archive; a successful one added the checkpoint, its archive holds the expected
kind, parent and cluster counts, verifies, and its chain (derived from the
archives' parent_uuid links) restores to exactly the model's bytes.
"""
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

CL = 65536
VB_TIMEOUT = int(os.environ.get("VB_TIMEOUT", "120"))
MIN_RUNS = 40
MAX_RUNS = 400


class Mismatch(Exception):
    pass


class Ck:
    """One successful backup: its archive, and (while in the chain) its bitmaps."""

    def __init__(self, name, uuid, parent_uuid, kind, path, snap, bits):
        self.name, self.uuid, self.parent_uuid = name, uuid, parent_uuid
        self.kind, self.path, self.snap, self.bits = kind, path, snap, bits


class BSet:
    def __init__(self, name, root):
        self.name, self.root = name, root
        self.disks = os.path.join(root, "disks")
        self.arch = os.path.join(root, "arch")
        os.makedirs(self.disks)
        os.makedirs(self.arch)
        self.drives = []        # [name, path], in backup order
        self.chain = []         # committed checkpoints, as the state holds them
        self.pending = None
        self.archives = {}      # uuid -> Ck, every archive ever written
        self.successes = 0
        self.ndrive = 0


def nclusters(size):
    return (size + CL - 1) // CL


def snapshot_of(drives):
    """[(name, size, [cluster digests])] of the drives as they are now."""
    out = []
    for name, path in drives:
        out.append((name,) + content(path))
    return out


def content(path):
    hs = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while True:
            b = f.read(CL)
            if not b:
                break
            hs.append(hashlib.sha256(b).digest()[:16])
    return size, hs


def has(pattern, text):
    """Whether text matches the regular expression (case-insensitive)."""
    return re.search(pattern, text, re.I) is not None


def sig(snap):
    return [(n, s) for n, s, _ in snap]


class Test:
    def __init__(self):
        self.vb = os.environ.get("VMABACK")
        work = os.environ.get("T_WORK")
        if not self.vb or not work:
            print("t_chain_random: set VMABACK and T_WORK", file=sys.stderr)
            sys.exit(2)
        seed = os.environ.get("SEED")
        # Fixed by default, so that CI runs the same series every time;
        # SEED=random explores new ones.
        if seed == "random":
            self.seed = random.SystemRandom().randrange(1, 2**31)
        else:
            self.seed = int(seed) if seed else 20261123
        self.runs = int(os.environ["RUNS"]) if os.environ.get("RUNS") else None
        # shorter under the sanitizers (make check-san sets ASAN_OPTIONS)
        self.budget = float(os.environ.get("BUDGET") or
                            (30 if os.environ.get("ASAN_OPTIONS") else 60))
        self.nsets = int(os.environ.get("SETS", "3"))
        self.verbose = os.environ.get("VERBOSE") == "1"
        self.faults = os.environ.get("FAULTS", "enospc,kill,term,shrink,early").split(",")
        self.rng = random.Random(self.seed)
        self.work = tempfile.mkdtemp(prefix="chain_random.", dir=os.path.abspath(work))
        os.chdir(self.work)
        self.state_dir = os.path.join(self.work, "state")
        # Restores and extracts go to a tmpfs when possible: no fsync cost.
        self.scratch = os.path.join(self.work, "scratch")
        os.makedirs(self.scratch)
        self.run_no = 0
        self.where = "setup"
        self.stats = dict(runs=0, ok=0, refused=0, kills=0, kills_after_commit=0,
                          terms=0, enospc=0, shrinks=0, faults_missed=0,
                          restores=0, drives_compared=0, merges=0, differentials=0,
                          removes=0, commits=0, discards=0, leftovers=0, early=0)
        self.mount_ok = os.geteuid() == 0
        self.mounts = []
        if self.mount_ok and subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", self.scratch],
                capture_output=True).returncode == 0:
            self.mounts.append(self.scratch)
        self.libc = ctypes.CDLL(None, use_errno=True)

    # ------------------------------------------------------------ helpers

    def fail(self, msg):
        raise Mismatch("seed %d, run %d (%s): %s" % (self.seed, self.run_no, self.where, msg))

    def vbrun(self, *args, ok=(0,)):
        try:
            p = subprocess.run([self.vb] + list(args), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=VB_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("vmaback %s hung" % " ".join(args))
        err = p.stderr.decode(errors="replace")
        if ok is not None and p.returncode not in ok:
            self.fail("vmaback %s exited %d:\n%s" % (" ".join(args), p.returncode, err))
        return p.returncode, p.stdout.decode(errors="replace"), err

    def meta(self, path):
        _, out, _ = self.vbrun("list", "--json", path)
        m = json.loads(out).get("vmaback")
        if not m:
            self.fail("%s has no vmaback.json" % path)
        return m

    def ckpts(self, s):
        _, out, _ = self.vbrun("checkpoints", "--set", s.name, "--state-dir", self.state_dir,
                               "--json")
        return json.loads(out)

    def state_path(self, s):
        return os.path.join(self.state_dir, s.name, "state.json")

    def state_bytes(self, s):
        try:
            with open(self.state_path(s), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def strays(self, s):
        """Files of the set's state directory that state.json does not name."""
        d = os.path.join(self.state_dir, s.name)
        if not os.path.isdir(d):
            return []
        names = set(os.listdir(d)) - {"state.json", "lock"}
        raw = self.state_bytes(s)
        if raw is None:
            return sorted(names)
        st = json.loads(raw)
        used = set(st.get("manifests") or [])
        # retired: removed checkpoints whose archives a kept one still needs
        for c in (st.get("checkpoints") or []) + (st.get("retired") or []) + \
                ([st["pending"]] if st.get("pending") else []):
            for dr in c["drives"]:
                used.add(dr.get("bitmap"))
                used.add(dr.get("digests"))
                used.add(dr.get("archive_digests"))
        return sorted(names - used)

    # ------------------------------------------------------------ disks

    def rand_size(self):
        r = self.rng.random()
        if r < 0.08:
            size = self.rng.randint(1, 600)
        elif r < 0.25:
            size = self.rng.randint(600, 3 * CL)
        else:
            size = int(2 ** self.rng.uniform(17, 23))
        if self.rng.random() < 0.3:
            size = max(CL, size // CL * CL) + self.rng.choice([0, 0, 1, -1, 512, 4095])
        return max(1, size)

    def make_disk(self, s):
        name = self.rng.choice(["drive-scsi", "drive-virtio", "d"]) + str(s.ndrive)
        s.ndrive += 1
        path = os.path.join(s.disks, name + ".raw")
        size = self.rand_size()
        with open(path, "wb") as f:
            f.truncate(size)
        style = self.rng.choice(["dense", "sparse", "sparse", "zeros"])
        with open(path, "r+b") as f:
            if style == "dense":
                f.write(self.rng.randbytes(size))
            else:
                for _ in range(self.rng.randint(0, 12)):
                    off = self.rng.randrange(size)
                    n = self.rng.randint(1, min(size - off, 3 * CL))
                    zero = style == "zeros" and self.rng.random() < 0.6
                    f.seek(off)
                    f.write(bytes(n) if zero else self.rng.randbytes(n))
        return [name, path]

    def punch(self, path, off, n):
        fd = os.open(path, os.O_RDWR)
        try:
            # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
            self.libc.fallocate(fd, 3, ctypes.c_int64(off), ctypes.c_int64(n))
        finally:
            os.close(fd)

    def mutate(self, s):
        """Random writes between runs; rarely a size or drive-set change."""
        rng = self.rng
        if rng.random() < 0.06:
            name, path = rng.choice(s.drives)
            size = os.stat(path).st_size
            new = self.rand_size() if rng.random() < 0.5 else max(1, size + rng.randint(-9000, 9000))
            if new != size:
                os.truncate(path, new)
                if new > size and rng.random() < 0.5:
                    with open(path, "r+b") as f:
                        f.seek(new - 1)
                        f.write(b"\x01")
        elif rng.random() < 0.03:
            if len(s.drives) < 4 and (len(s.drives) == 1 or rng.random() < 0.5):
                s.drives.insert(rng.randint(0, len(s.drives)), self.make_disk(s))
            elif len(s.drives) > 1:
                s.drives.pop(rng.randrange(len(s.drives)))
        if rng.random() < 0.15:
            return
        for _ in range(rng.randint(1, 6)):
            name, path = rng.choice(s.drives)
            size = os.stat(path).st_size
            kind = rng.choices(["rand", "zeros", "cluster", "same", "punch", "byte"],
                               [30, 12, 20, 12, 8, 18])[0]
            off = rng.randrange(size)
            n = rng.randint(1, min(size - off, 200000))
            if kind == "cluster":
                off = rng.randrange(nclusters(size)) * CL
                n = min(CL, size - off)
            elif kind == "byte":
                n = 1
            if kind == "punch":
                self.punch(path, off, n)
                continue
            with open(path, "r+b") as f:
                f.seek(off)
                if kind == "same":
                    data = f.read(n)
                    f.seek(off)
                elif kind == "zeros" or (kind == "cluster" and rng.random() < 0.3):
                    data = bytes(n)
                else:
                    data = rng.randbytes(n)
                f.write(data)

    # ------------------------------------------------------------ one run

    def plan(self, s, mode, since, now):
        """(refusal regex or None, kind, parent uuid, clusters per drive, new bits)."""
        latest = s.chain[-1] if s.chain else None
        same = latest is not None and sig(latest.snap) == sig(now)
        if same:
            delta = {n: {i for i, (a, b) in enumerate(zip(old[2], new[2])) if a != b}
                     for n, old, new in ((x[0], x, y) for x, y in zip(latest.snap, now))}
        else:
            delta = {n: set(range(nclusters(size))) for n, size, _ in now}
        full = {n: nclusters(size) for n, size, _ in now}
        if mode == "incremental":
            if not latest:
                return "no checkpoint yet", None, None, None, None
            if not same:
                return "incremental backup is not possible", None, None, None, None
            return None, "incremental", latest.uuid, {n: len(v) for n, v in delta.items()}, delta
        if mode == "differential":
            k = next((i for i, c in enumerate(s.chain) if c.name == since), None)
            if k is None:
                return "has no checkpoint", None, None, None, None
            if any(sig(c.snap) != sig(now) for c in s.chain[k:]):
                return "take a full backup", None, None, None, None
            union = {n: set(v) for n, v in delta.items()}
            for c in s.chain[k + 1:]:
                for n in union:
                    union[n] |= c.bits[n]
            return None, "differential", s.chain[k].uuid, {n: len(v) for n, v in union.items()}, delta
        if mode == "full" or not latest or not same:
            return None, "full", None, full, delta
        return None, "incremental", latest.uuid, {n: len(v) for n, v in delta.items()}, delta

    def one_run(self, s):
        rng = self.rng
        self.mutate(s)
        now = snapshot_of(s.drives)
        mode = rng.choices(["auto", "full", "incremental", "differential"], [35, 12, 28, 25])[0]
        since = None
        if mode == "differential":
            # Mostly a checkpoint taken of the drives as they are now.
            usable = [c for c in s.chain if sig(c.snap) == sig(now)]
            pool = usable if usable and rng.random() < 0.8 else s.chain
            since = rng.choice(pool).name if pool else "nosuch"
        refusal, kind, parent, clusters, delta = self.plan(s, mode, since, now)
        zst = rng.random() < 0.4
        out_mode = rng.choices(["file", "redirect", "pipe", "cmd"], [50, 15, 20, 15])[0]
        fault = None
        if refusal is None and not s.pending and rng.random() < 0.3:
            if out_mode in ("pipe", "cmd") and rng.random() < 0.4:
                # a consumer that stops reading early and exits 0
                fault = "early"
            elif out_mode != "cmd":
                fault = rng.choice(["enospc", "kill", "term", "shrink", "kill"])
            if fault not in self.faults:
                fault = None
        no_commit = refusal is None and fault is None and rng.random() < 0.06
        ckname = "c%d" % self.run_no if rng.random() < 0.5 else None
        outdir = s.arch
        if fault == "enospc":
            if not self.mount_ok:
                fault = None
            else:
                outdir = os.path.join(self.work, "full")
                os.makedirs(outdir, exist_ok=True)
                est = sum(max(1, c) for c in clusters.values()) * CL
                size = max(4096, int(est * rng.uniform(0.05, 0.9)) // 4096 * 4096)
                r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs",
                                    outdir], capture_output=True)
                if r.returncode != 0:
                    self.mount_ok = False
                    fault = None
                    outdir = s.arch
                else:
                    self.mounts.append(outdir)
                    if out_mode == "pipe":
                        out_mode = "file"
        out = os.path.join(outdir, "%s-%d.vma%s" % (s.name, self.run_no, ".zst" if zst else ""))
        args = [self.vb, "backup", "--set", s.name, "--state-dir", self.state_dir,
                "--mode", mode, "--json", "--zstd-threads", str(rng.choice([0, 0, 2]))]
        for name, path in s.drives:
            args += ["-d", "%s=%s" % (name, path)]
        if since:
            args += ["--since", since]
        if ckname:
            args += ["--checkpoint", ckname]
        if no_commit:
            args += ["--no-commit"]
        elif out_mode in ("redirect", "pipe"):
            args += ["--commit"]  # -o - leaves it pending unless asked
        if zst and out_mode != "file":
            args += ["--compress", "zstd"]
        if out_mode == "cmd":
            # the consumer's exit status says whether it stored the bytes
            early = "head -c %d" % rng.randint(1, 64) if fault == "early" else "cat"
            args += ["--output-cmd", "%s > '%s'" % (early, out)]
        else:
            args += ["-o", out if out_mode == "file" else "-"]
        duration = 0.0
        if fault in ("kill", "term", "shrink"):
            # What vmaback will read: every data extent (incremental and
            # differential: once to find the changes, then the changed ones).
            alloc = sum(min(os.stat(p).st_blocks * 512, os.stat(p).st_size) for _, p in s.drives)
            est = alloc if kind == "full" else alloc + min(alloc, sum(clusters.values()) * CL)
            if est < 4096:
                fault = None
            else:
                duration = rng.uniform(0.3, 1.0)
                args += ["--bwlimit", "%dK" % max(1, int(est / duration / 1024))]
        self.where = "set %s, %s%s%s, -o %s%s%s" % (
            s.name, mode, " since " + since if since else "", " (zstd)" if zst else "",
            out_mode, ", fault " + fault if fault else "", ", no-commit" if no_commit else "")
        before_state = self.state_bytes(s)
        had_pending = s.pending
        strays_before = self.strays(s)
        arch_before = set(os.listdir(s.arch))
        rc, stdout, stderr, landed = self.execute(args, out, out_mode, fault, duration, s)
        self.stats["runs"] += 1
        if self.verbose:
            print("run %d: %s: rc %d%s" % (self.run_no, self.where, rc,
                                           "" if landed else " (fault missed)"), flush=True)
        if had_pending and rc == 0:
            # A pending checkpoint is replaced only by a run that commits (or
            # leaves its own pending one); a failed run keeps it.
            s.pending = None
            self.stats["discards"] += 1
            if "discarded checkpoint %s" % had_pending.name not in stderr:
                self.fail("a pending checkpoint was not reported as discarded:\n" + stderr)
        if strays_before and rc >= 0:
            self.stats["leftovers"] += 1
        if strays_before and rc >= 0 and not has(r"removed \d+ leftover", stderr):
            self.fail("leftover files %s were there and no 'removed ... leftover' note:\n%s"
                      % (strays_before, stderr))
        try:
            self.judge(s, rc, stdout, stderr, landed, fault, refusal, kind, parent, clusters,
                       delta, now, out, out_mode, ckname, no_commit, before_state,
                       had_pending, arch_before)
        finally:
            if fault == "enospc":
                self.umount(outdir)

    def execute(self, args, out, out_mode, fault, duration, s):
        errf = open(os.path.join(self.work, "stderr"), "w+b")
        outf = open(os.path.join(self.work, "stdout"), "w+b")
        cat = None
        if out_mode in ("file", "cmd"):
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=outf, stderr=errf)
        elif out_mode == "redirect":
            with open(out, "wb") as o:
                p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=o, stderr=errf)
        else:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=errf)
            # "early": a consumer that reads a few bytes and exits 0
            cat = subprocess.Popen(["sh", "-c", 'cat > "$1"' if fault != "early" else
                                    'head -c "$2" > "$1"', "sh", out,
                                    str(self.rng.randint(1, 64))], stdin=p.stdout)
            p.stdout.close()
        landed = True
        if fault in ("kill", "term", "shrink"):
            # The delay counts from when vmaback handles SIGTERM: before that,
            # a SIGTERM would meet the default action, as in any program.
            self.wait_handlers(p)
            time.sleep(self.rng.uniform(0.0, duration))
            if p.poll() is not None:
                landed = False
            elif fault == "shrink":
                name, path = max(s.drives, key=lambda d: os.stat(d[1]).st_size)
                size = os.stat(path).st_size
                if size > 1:
                    new = self.rng.randint(1, size - 1)
                    os.truncate(path, new)
                    self.where += "; %s truncated from %d to %d bytes while vmaback ran" % (
                        name, size, new)
                else:
                    landed = False
            else:
                p.send_signal(signal.SIGKILL if fault == "kill" else signal.SIGTERM)
        hung = []
        timer = threading.Timer(VB_TIMEOUT, lambda: (hung.append(1), p.kill()))
        timer.start()
        rc = p.wait()
        if cat:
            cat.wait()
        timer.cancel()
        if hung:
            self.fail("vmaback backup hung: %s" % " ".join(args))
        errf.seek(0)
        outf.seek(0)
        stderr = errf.read().decode(errors="replace")
        stdout = outf.read().decode(errors="replace")
        errf.close()
        outf.close()
        if fault and not landed:
            self.stats["faults_missed"] += 1
        return rc, stdout, stderr, landed

    @staticmethod
    def wait_handlers(p):
        """Until p has a handler for SIGTERM (or has ended)."""
        deadline = time.time() + 30
        while p.poll() is None and time.time() < deadline:
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if line.startswith("SigCgt:") and \
                                int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)):
                            return
            except OSError:
                return
            time.sleep(0.002)

    def summary(self, stdout, stderr):
        for line in (stdout + "\n" + stderr).splitlines():
            if line.startswith("{"):
                return json.loads(line)
        return None

    def judge(self, s, rc, stdout, stderr, landed, fault, refusal, kind, parent, clusters,
              delta, now, out, out_mode, ckname, no_commit, before_state, had_pending,
              arch_before):
        state = self.state_bytes(s)
        unchanged = state == before_state
        if fault == "shrink" and landed and rc == 0:
            self.where += ", and vmaback exited 0"
        if refusal:
            if rc != 2 or not has(refusal, stderr):
                self.fail("expected exit 2 and /%s/, got %d:\n%s" % (refusal, rc, stderr))
            self.stats["refused"] += 1
            return self.after_failure(s, unchanged, out, out_mode, arch_before, killed=False)
        if fault == "kill" and landed and rc == -signal.SIGKILL:
            self.stats["kills"] += 1
            if unchanged:
                if out_mode == "file" and os.path.exists(out):
                    # Killed between publishing the archive and the state: the
                    # archive is complete, only not a checkpoint.
                    self.vbrun("verify", "-q", out)
                    os.unlink(out)
                for f in os.listdir(os.path.dirname(out)):
                    if f.startswith("."):
                        os.unlink(os.path.join(os.path.dirname(out), f))
                return self.after_failure(s, True, out, out_mode, arch_before, killed=True)
            self.stats["kills_after_commit"] += 1
            info = self.ckpts(s)
            last = info["pending"] if no_commit else (info["checkpoints"] or [None])[-1]
            if not last or (ckname and last["name"] != ckname):
                self.fail("killed: state.json changed but holds no new checkpoint")
            return self.success(s, {"uuid": last["uuid"], "checkpoint": last["name"],
                                    "kind": last["kind"]}, stderr, kind, parent, clusters,
                                delta, now, out, ckname, no_commit)
        if fault == "early":
            # Whether the consumer was gone before the last write (a broken
            # pipe) or left bytes unread in the pipe, the backup failed.
            self.stats["early"] += 1
            if rc != 1 or not has(r"never read|before the end of the archive|closed the pipe", stderr):
                self.fail("a consumer that read a few bytes and exited 0: expected exit 1 "
                          "and a message saying so, got %d:\n%s" % (rc, stderr))
            return self.after_failure(s, unchanged, out, out_mode, arch_before, killed=False)
        if fault == "term" and landed and rc == 143:
            self.stats["terms"] += 1
            if not has("interrupted", stderr):
                self.fail("SIGTERM: no 'interrupted' message:\n" + stderr)
            return self.after_failure(s, unchanged, out, out_mode, arch_before, killed=False)
        if fault == "enospc" and rc == 1:
            self.stats["enospc"] += 1
            if not has("no space left", stderr):
                self.fail("disk full: no 'No space left' message:\n" + stderr)
            if out_mode == "redirect" and os.path.exists(out):
                os.unlink(out)
            left = os.listdir(os.path.dirname(out))
            if left:
                self.fail("disk full: %s left in the output directory" % left)
            return self.after_failure(s, unchanged, out, out_mode, arch_before, killed=False)
        if fault == "shrink" and landed and rc != 0:
            self.stats["shrinks"] += 1
            # A shrink that lands before vmaback sizes the drive (a slow
            # sanitizer build) is a size change: exit 2 for a chosen mode.
            if rc == 2 and has("changed size", stderr):
                pass
            elif rc != 1 or not has("shrank", stderr):
                self.fail("a drive shrank during the backup: expected exit 1 and /shrank/, "
                          "got %d:\n%s" % (rc, stderr))
            return self.after_failure(s, unchanged, out, out_mode, arch_before, killed=False)
        if rc != 0:
            self.fail("backup exited %d:\n%s" % (rc, stderr))
        if fault == "enospc":
            # It fitted: keep the archive outside the tmpfs.
            dst = os.path.join(s.arch, os.path.basename(out))
            shutil.move(out, dst)
            out = dst
            self.stats["faults_missed"] += 1
        elif fault and landed:
            self.stats["faults_missed"] += 1
        summ = self.summary(stdout, stderr)
        if not summ:
            self.fail("no JSON summary:\n" + stdout + stderr)
        self.success(s, summ, stderr, kind, parent, clusters, delta, now, out, ckname, no_commit)

    def after_failure(self, s, unchanged, out, out_mode, arch_before, killed):
        if not unchanged:
            self.fail("the run failed but state.json changed")
        if out_mode != "file" and os.path.exists(out):
            os.unlink(out)
        elif os.path.exists(out):
            self.fail("the run failed but %s exists" % out)
        extra = set(os.listdir(s.arch)) - arch_before
        if extra and not killed:
            self.fail("the failed run left %s in %s" % (sorted(extra), s.arch))
        for f in extra:
            os.unlink(os.path.join(s.arch, f))
        strays = self.strays(s)
        if strays and not killed:
            self.fail("the failed run left %s in the state directory" % strays)

    def success(self, s, summ, stderr, kind, parent, clusters, delta, now, out, ckname,
                no_commit):
        if summ["kind"] != kind:
            self.fail("expected a %s backup, got %s:\n%s" % (kind, summ["kind"], stderr))
        if ckname and summ["checkpoint"] != ckname:
            self.fail("checkpoint %s, expected %s" % (summ["checkpoint"], ckname))
        m = self.meta(out)
        want = {"kind": kind, "set": s.name, "uuid": summ["uuid"],
                "checkpoint": summ["checkpoint"], "parent_uuid": parent}
        for k, v in want.items():
            if m.get(k) != v:
                self.fail("vmaback.json %s is %r, expected %r" % (k, m.get(k), v))
        got = {d["name"]: (d["size"], d["clusters"]) for d in m["drives"]}
        exp = {n: (size, clusters[n]) for n, size, _ in now}
        if got != exp:
            self.fail("vmaback.json drives (size, clusters) %s, expected %s" % (got, exp))
        if kind == "differential":
            self.stats["differentials"] += 1
        if self.rng.random() < 0.35:
            self.vbrun("verify", "-q", out)
        ck = Ck(summ["checkpoint"], summ["uuid"], parent, kind, out, now, delta)
        s.archives[ck.uuid] = ck
        s.successes += 1
        self.stats["ok"] += 1
        if no_commit:
            s.pending = ck
        else:
            s.chain.append(ck)
        self.check_chain(s)
        strays = self.strays(s)
        if strays:
            self.fail("after a successful run the state directory holds %s" % strays)
        # The new checkpoint's chain, and now and then an older one's.
        self.restore(s, ck)
        if self.rng.random() < 0.3:
            self.restore(s, self.rng.choice(list(s.archives.values())))
        if s.successes % 4 == 0:
            self.merge(s, ck)
        if no_commit and self.rng.random() < 0.6:
            self.vbrun("commit", "--set", s.name, "--state-dir", self.state_dir, ck.name)
            s.chain.append(ck)
            s.pending = None
            self.stats["commits"] += 1
            self.check_chain(s)

    def check_chain(self, s):
        """The state's chain is the model's (`checkpoints --json`, or state.json)."""
        raw = self.state_bytes(s)
        if self.rng.random() < 0.25:
            info = self.ckpts(s)
        elif raw is None:
            info = {"checkpoints": [], "pending": None}
        else:
            info = json.loads(raw)
        got = [(c["name"], c["uuid"]) for c in info["checkpoints"]]
        want = [(c.name, c.uuid) for c in s.chain]
        if got != want:
            self.fail("checkpoints %s, expected %s" % (got, want))
        p = info["pending"]
        if (p and p["name"]) != (s.pending and s.pending.name):
            self.fail("pending checkpoint %s, expected %s" % (p and p["name"],
                                                              s.pending and s.pending.name))

    # ------------------------------------------------------------ restores

    def chain_of(self, s, ck):
        out = [ck]
        while out[0].parent_uuid:
            p = s.archives.get(out[0].parent_uuid)
            if not p:
                self.fail("archive %s: parent %s unknown" % (out[0].path, out[0].parent_uuid))
            out.insert(0, p)
        return out

    def compare(self, what, path, want):
        name, size, hs = want
        if not os.path.exists(path):
            self.fail("%s: %s was not written" % (what, path))
        gsize, ghs = content(path)
        if gsize != size:
            self.fail("%s: drive %s is %d bytes, expected %d" % (what, name, gsize, size))
        for i, (a, b) in enumerate(zip(ghs, hs)):
            if a != b:
                self.fail("%s: drive %s differs in cluster %d (offset %d)" % (what, name, i, i * CL))
        self.stats["drives_compared"] += 1

    def restore(self, s, ck):
        chain = self.chain_of(s, ck)
        dst = os.path.join(self.scratch, "restore")
        shutil.rmtree(dst, ignore_errors=True)
        self.vbrun("restore", "-q", *[c.path for c in chain], "--to", dst)
        what = "restore of checkpoint %s (%s)" % (ck.name, " ".join(
            os.path.basename(c.path) for c in chain))
        for d in ck.snap:
            self.compare(what, os.path.join(dst, "disk-%s.raw" % d[0]), d)
        shutil.rmtree(dst)
        self.stats["restores"] += 1

    def merge(self, s, ck):
        chain = self.chain_of(s, ck)
        merged = os.path.join(self.scratch, "merged.vma" + (".zst" if self.rng.random() < 0.5 else ""))
        dst = os.path.join(self.scratch, "extract")
        shutil.rmtree(dst, ignore_errors=True)
        self.vbrun("merge", "-q", "-f", "-o", merged, *[c.path for c in chain])
        self.vbrun("extract", "-q", merged, dst)
        for d in ck.snap:
            self.compare("merge of checkpoint %s, extracted" % ck.name,
                         os.path.join(dst, "disk-%s.raw" % d[0]), d)
        shutil.rmtree(dst)
        os.unlink(merged)
        self.stats["merges"] += 1

    def remove_one(self, s):
        """Sometimes: drop a middle checkpoint; the latest one cannot go, nor a
        full that the next checkpoint builds on."""
        if len(s.chain) >= 3 and self.rng.random() < 0.5:
            k = self.rng.randrange(len(s.chain) - 1)
            gone, child = s.chain[k], s.chain[k + 1]
            if gone.kind == "full" and child.kind != "full":
                rc, _, err = self.vbrun("checkpoints", "--set", s.name, "--state-dir",
                                        self.state_dir, "--remove", gone.name, ok=None)
                if rc != 2 or "cannot be removed" not in err:
                    self.fail("removing full checkpoint %s that %s builds on: exit %d, "
                              "expected 2:\n%s" % (gone.name, child.name, rc, err))
                self.check_chain(s)
                return
            self.vbrun("checkpoints", "--set", s.name, "--state-dir", self.state_dir,
                       "--remove", gone.name)
            for n in child.bits:
                if n in gone.bits:
                    a, b = child.snap, gone.snap
                    na = next(nclusters(x[1]) for x in a if x[0] == n)
                    nb = next(nclusters(x[1]) for x in b if x[0] == n)
                    child.bits[n] = child.bits[n] | gone.bits[n] if na == nb else set(range(na))
            del s.chain[k]
            self.stats["removes"] += 1
        elif s.chain:
            rc, _, err = self.vbrun("checkpoints", "--set", s.name, "--state-dir",
                                    self.state_dir, "--remove", s.chain[-1].name, ok=None)
            if rc != 2 or "latest" not in err:
                self.fail("removing the latest checkpoint: exit %d, expected 2:\n%s" % (rc, err))
        self.check_chain(s)

    def umount(self, d):
        subprocess.run(["umount", d], capture_output=True)
        if d in self.mounts:
            self.mounts.remove(d)

    # ------------------------------------------------------------ main

    def main(self):
        t0 = time.time()
        print("t_chain_random: SEED=%d %s SETS=%d" % (
            self.seed, "RUNS=%d" % self.runs if self.runs else
            "BUDGET=%gs (up to %d runs)" % (self.budget, MAX_RUNS), self.nsets), flush=True)
        sets = []
        for i in range(self.nsets):
            s = BSet("set%d" % i, os.path.join(self.work, "set%d" % i))
            for _ in range(self.rng.randint(1, 4)):
                s.drives.append(self.make_disk(s))
            sets.append(s)
        try:
            for self.run_no in range(1, (self.runs or MAX_RUNS) + 1):
                if not self.runs and self.run_no > MIN_RUNS and \
                        time.time() - t0 > self.budget * 0.75:
                    break
                # Each run draws from its own stream, so that a run's choices do not
                # depend on how the timing of an earlier fault turned out.
                self.rng = random.Random("%d:%d" % (self.seed, self.run_no))
                s = self.rng.choice(sets)
                self.one_run(s)
                if self.rng.random() < 0.04:
                    self.where = "set %s, checkpoints --remove" % s.name
                    self.remove_one(s)
            # Every committed checkpoint (and a pending one) of every set, again.
            for s in sets:
                self.where = "final restores of set %s" % s.name
                self.check_chain(s)
                for c in s.chain + ([s.pending] if s.pending else []):
                    self.restore(s, c)
        except Exception as e:  # a mismatch, or a bug of this test: say where
            if not isinstance(e, Mismatch):
                import traceback
                traceback.print_exc()
                e = "seed %d, run %d (%s): %r" % (self.seed, self.run_no, self.where, e)
            print("t_chain_random: FAIL: %s" % e, file=sys.stderr)
            print("t_chain_random: reproduce with SEED=%d RUNS=%d SETS=%d (files kept in %s)"
                  % (self.seed, self.run_no, self.nsets, self.work), file=sys.stderr)
            return 1
        finally:
            for d in list(self.mounts):
                self.umount(d)
        st = self.stats
        print("t_chain_random: seed %d: %d runs (%d ok, %d refused as expected), %d kills "
              "(%d after the commit; %d times leftovers cleaned by the next run), %d SIGTERMs, "
              "%d disk-full, %d shrinks, %d consumers that stopped early, %d faults that missed; %d differentials, %d removes, %d commits, %d pending discarded; "
              "%d chain restores (%d drives compared), %d merges; %.1f s"
              % (self.seed, st["runs"], st["ok"], st["refused"], st["kills"],
                 st["kills_after_commit"], st["leftovers"], st["terms"], st["enospc"], st["shrinks"],
                 st["early"], st["faults_missed"], st["differentials"], st["removes"], st["commits"],
                 st["discards"], st["restores"], st["drives_compared"], st["merges"],
                 time.time() - t0), flush=True)
        os.chdir("/")
        shutil.rmtree(self.work, ignore_errors=True)
        return 0


if __name__ == "__main__":
    sys.exit(Test().main())
