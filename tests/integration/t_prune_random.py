#!/usr/bin/env python3
# t_prune_random.py: randomized series of daily backups over months into a
# dump directory, pruned with random keep rules (run by t_prune_random.sh).
"""Seeded random test of vmaback's prune.

Environment: VMABACK (the binary), T_WORK (a scratch directory), SEED (default:
20261123; SEED=random picks one; always printed), BUDGET (seconds, default 20; 10 under the sanitizers,
where ASAN_OPTIONS is set, with shorter series), MIN_SERIES (default 2; 1
under the sanitizers), VERBOSE=1.

Each series is a new backup set with one or two drives. Backups are taken at
times the test sets (VMABACK_TEST_NOW, the test-only clock), a few hours to a
few days apart, so days, ISO weeks, months and years are crossed: mostly
incremental, sometimes full or differential, some --protected, some with
--notes. Every few backups a prune runs with random --keep-* rules:
sometimes first as --dry-run (nothing may change, and the lines it prints
must name exactly the backups to go), sometimes killed (test-only hook)
right after its state change, which the next prune must finish.

The model chooses what to keep by its own simple implementation of Proxmox's
rules (pve-common's prune_mark_backup_group), then keeps the latest and every
backup a kept one builds on. After each prune: the archive files left are
exactly the kept ones (and their .notes/.log), the state's checkpoints are
the kept ones, every kept backup restores bit-exact from its chain, and the
next incremental backup still captures exactly the changes.
"""
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

CL = 65536
VB_TIMEOUT = int(os.environ.get("VB_TIMEOUT", "120"))
RULES = ["last", "hourly", "daily", "weekly", "monthly", "yearly"]


class Mismatch(Exception):
    pass


def period(rule, t):
    g = time.gmtime(t)
    if rule == "last":
        return t
    if rule == "hourly":
        return (g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour)
    if rule == "daily":
        return (g.tm_year, g.tm_mon, g.tm_mday)
    if rule == "weekly":
        return time.strftime("%G-%V", g)
    if rule == "monthly":
        return (g.tm_year, g.tm_mon)
    return g.tm_year


def model_select(backups, keep):
    """{checkpoint: rule or None}: Proxmox's marking, written from its rules."""
    marks = {b["ck"]: ("protected" if b["protected"] else None) for b in backups}
    if not any(keep.values()):
        return {ck: (m or "all") for ck, m in marks.items()}
    newest = sorted(backups, key=lambda b: (-b["time"], -b["seq"]))
    for rule in RULES:
        n = keep.get(rule, 0)
        if not n:
            continue
        held = {period(rule, b["time"]) for b in newest
                if marks[b["ck"]] not in (None, "protected", "remove")}
        taken = []
        for b in newest:
            if marks[b["ck"]] is not None:
                continue
            p = period(rule, b["time"])
            if p in held:
                continue
            if p not in taken:
                if len(taken) >= n:
                    break
                taken.append(p)
                marks[b["ck"]] = rule
            else:
                marks[b["ck"]] = "remove"
    return {ck: (None if m == "remove" else m) for ck, m in marks.items()}


class Test:
    def __init__(self):
        self.vb = os.environ["VMABACK"]
        # fsync is what costs here: on a tmpfs when root may mount one
        # (run.sh unmounts what is left under T_WORK).
        self.work = os.path.join(os.environ["T_WORK"], "prune-scratch")
        os.makedirs(self.work, exist_ok=True)
        self.mounted = os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", self.work],
            capture_output=True).returncode == 0
        # Fixed by default, so that CI runs the same series every time;
        # SEED=random explores new ones.
        seed = os.environ.get("SEED")
        if seed == "random":
            self.seed = random.SystemRandom().randrange(1, 1 << 30)
        else:
            self.seed = int(seed) if seed else 20261123
        self.rng = random.Random(self.seed)
        san = bool(os.environ.get("ASAN_OPTIONS"))
        self.budget = float(os.environ.get("BUDGET") or (10 if san else 20))
        self.min_series = int(os.environ.get("MIN_SERIES") or (1 if san else 2))
        self.series_len = (8, 16) if san else (10, 30)
        self.verbose = os.environ.get("VERBOSE") == "1"
        self.where = ""
        self.stats = dict(series=0, backups=0, fulls=0, differentials=0, protected=0,
                          prunes=0, dry_runs=0, kills=0, removed=0, restores=0,
                          deep_verifies=0)
        print("t_prune_random: SEED=%d" % self.seed, flush=True)

    def fail(self, msg):
        raise Mismatch("SEED=%d (%s): %s" % (self.seed, self.where, msg))

    def run(self, *args, ok=(0,), now=None):
        env = dict(os.environ, TZ="UTC")
        env.pop("VMABACK_TEST_KILL_AFTER_STATE", None)
        if now is not None:
            env["VMABACK_TEST_NOW"] = str(now)
        kill = args and args[0] == "KILL"
        if kill:
            args = args[1:]
            env["VMABACK_TEST_KILL_AFTER_STATE"] = "1"
        try:
            p = subprocess.run([self.vb] + list(args), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=VB_TIMEOUT, env=env)
        except subprocess.TimeoutExpired:
            self.fail("vmaback %s hung" % " ".join(args))
        err = p.stderr.decode(errors="replace")
        if ok is not None and p.returncode not in ok:
            self.fail("vmaback %s exited %d:\n%s%s" % (" ".join(args), p.returncode, err,
                                                      p.stdout.decode(errors="replace")))
        return p.returncode, p.stdout.decode(errors="replace"), err

    # ------------------------------------------------------------ one series

    def new_series(self, no):
        root = os.path.join(self.work, "series%d" % no)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        self.root = root
        self.dump = os.path.join(root, "dump")
        self.state = os.path.join(root, "state")
        os.makedirs(self.dump)
        self.set = "vm%d" % no
        self.drives = []
        for i in range(self.rng.choice([1, 1, 2])):
            path = os.path.join(root, "disk%d.raw" % i)
            size = self.rng.randrange(2, 12) * CL + self.rng.choice([0, 0, 512, 4096, 777])
            with open(path, "wb") as f:
                f.write(self.rng.randbytes(size))
            self.drives.append(("drive-scsi%d" % i, path))
        self.backups = []   # in the state, oldest first
        self.leftover = []  # removed from the state, files still there (killed prune)
        self.seq = 0
        self.now = self.rng.randrange(1577836800, 1700000000)  # 2020 .. 2023

    def scribble(self):
        for name, path in self.drives:
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                for _ in range(self.rng.randrange(0, 4)):
                    off = self.rng.randrange(size)
                    n = min(self.rng.choice([1, 100, 5000, CL]), size - off)
                    data = bytes(n) if self.rng.random() < 0.2 else self.rng.randbytes(n)
                    f.seek(off)
                    f.write(data)

    def digests(self):
        return [hashlib.sha256(open(p, "rb").read()).hexdigest() for _, p in self.drives]

    def backup(self):
        self.now += self.rng.choice([3600, 3 * 3600, 7 * 3600, 86400, 86400, 86400,
                                     2 * 86400, 4 * 86400, 9 * 86400])
        self.scribble()
        args = ["backup", "-q", "--json", "--dumpdir", self.dump, "--vmid", "100",
                "--set", self.set, "--state-dir", self.state]
        for name, path in self.drives:
            args += ["-d", "%s=%s" % (name, path)]
        mode = "auto"
        r = self.rng.random()
        if not self.backups or r < 0.1:
            mode = "full"
        elif r < 0.25 and len(self.backups) > 1:
            mode = "differential"
            since = self.rng.choice(self.backups[:-1])
            args += ["--mode", "differential", "--since", since["ck"]]
        if mode == "full":
            args += ["--mode", "full"]
        prot = self.rng.random() < 0.12
        if prot:
            args.append("--protected")
        notes = self.rng.random() < 0.3
        if notes:
            args += ["--notes", "backup %d" % self.seq]
        if self.rng.random() < 0.3:
            args += ["--compress", "none"]
        _, out, _ = self.run(*args, now=self.now)
        res = json.loads(out)
        base = None
        if mode == "differential":
            base = since["uuid"]
        elif mode == "auto":
            base = self.backups[-1]["uuid"]
        want_kind = {"auto": "incremental"}.get(mode, mode)
        if res["kind"] != want_kind:
            self.fail("backup %d: kind %s, expected %s" % (self.seq, res["kind"], want_kind))
        b = dict(ck=res["checkpoint"], uuid=res["uuid"], base=base, time=self.now,
                 path=res["archive"], protected=prot, seq=self.seq, kind=res["kind"],
                 sums=self.digests(), notes=notes)
        if os.path.dirname(b["path"]) != os.path.realpath(self.dump):
            self.fail("archive %s not in the dump directory" % b["path"])
        want = time.strftime("vzdump-qemu-100-%Y_%m_%d-%H_%M_%S.vma", time.gmtime(self.now))
        if not os.path.basename(b["path"]).startswith(want):
            self.fail("archive name %s, expected %s*" % (b["path"], want))
        self.backups.append(b)
        self.seq += 1
        self.stats["backups"] += 1
        self.stats["fulls"] += mode == "full"
        self.stats["differentials"] += mode == "differential"
        self.stats["protected"] += prot

    # ------------------------------------------------------------ checks

    def by_uuid(self, uuid):
        for b in self.backups:
            if b["uuid"] == uuid:
                return b
        self.fail("no backup with uuid %s in the model" % uuid)

    def chain(self, b):
        out = [b]
        while out[0]["base"]:
            out.insert(0, self.by_uuid(out[0]["base"]))
        return out

    def restore(self, b):
        dst = os.path.join(self.root, "restore")
        shutil.rmtree(dst, ignore_errors=True)
        chain = self.chain(b)
        self.run("restore", "-q", *[c["path"] for c in chain], "--to", dst)
        for (name, _), want in zip(self.drives, b["sums"]):
            got = hashlib.sha256(open(os.path.join(dst, "disk-%s.raw" % name), "rb").read())
            if got.hexdigest() != want:
                self.fail("restore of %s (chain %s): drive %s differs" % (
                    b["ck"], " ".join(c["ck"] for c in chain), name))
        shutil.rmtree(dst)
        self.stats["restores"] += 1

    def files(self):
        return sorted(os.listdir(self.dump))

    def expected_files(self, leftovers=()):
        out = []
        for b in list(self.backups) + list(leftovers):
            n = os.path.basename(b["path"])
            out.append(n)
            out.append(n.split(".vma")[0] + ".log")
            if b["notes"]:
                out.append(n + ".notes")
            if b["protected"]:
                out.append(n + ".protected")
        return sorted(out)

    def check_ls(self):
        _, out, _ = self.run("ls", "--set", self.set, "--state-dir", self.state, "--json",
                             "--dumpdir", self.dump)
        got = json.loads(out)
        live = [x for x in got if x["status"] != "pruned"]
        if [x["checkpoint"] for x in live] != [b["ck"] for b in self.backups]:
            self.fail("ls lists %s, the model %s" % ([x["checkpoint"] for x in live],
                                                       [b["ck"] for b in self.backups]))
        for x, b in zip(live, self.backups):
            if not x["complete"] or x["parent_uuid"] != b["base"] or x["kind"] != b["kind"]:
                self.fail("ls: %s is %s" % (b["ck"], x))
        pruned = sorted(x["checkpoint"] for x in got if x["status"] == "pruned")
        if pruned != sorted(b["ck"] for b in self.leftover):
            self.fail("ls shows pruned %s, the model %s" % (
                pruned, sorted(b["ck"] for b in self.leftover)))

    # ------------------------------------------------------------ prune

    def plan(self, keep):
        marks = model_select(self.backups, keep)
        if marks[self.backups[-1]["ck"]] is None:
            marks[self.backups[-1]["ck"]] = "latest"
        for b in reversed(self.backups):
            if marks[b["ck"]] is None:
                continue
            for c in self.chain(b)[:-1]:
                if marks[c["ck"]] is None:
                    marks[c["ck"]] = "needed"
        return marks

    def prune(self):
        keep = {}
        for r in RULES:
            if self.rng.random() < 0.45:
                keep[r] = self.rng.randrange(0, 5)
        args = ["prune", "--set", self.set, "--state-dir", self.state, "--dumpdir", self.dump]
        for r, n in keep.items():
            args += ["--keep-" + r, str(n)]
        marks = self.plan(keep)
        gone = [b for b in self.backups if marks[b["ck"]] is None]
        self.where = "prune %d %s" % (self.stats["prunes"], " ".join(args[7:]))
        if self.rng.random() < 0.3:
            before = self.files()
            st = open(os.path.join(self.state, self.set, "state.json")).read()
            _, out, _ = self.run(*(args + ["--dry-run"]))
            said = sorted(re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", l).group(0)
                          for l in out.splitlines() if l.startswith("would remove"))
            want = sorted([b["ck"] for b in gone] + [b["ck"] for b in self.leftover])
            if said != want:
                self.fail("dry run removes %s, the model %s\n%s" % (said, want, out))
            if self.files() != before or open(os.path.join(
                    self.state, self.set, "state.json")).read() != st:
                self.fail("a dry run changed something")
            self.stats["dry_runs"] += 1
        kill = self.rng.random() < 0.15
        out = "(killed)"
        if kill:
            self.run("KILL", *args, ok=(-9, 137))
            self.stats["kills"] += 1
        else:
            _, out, _ = self.run(*args)
        self.backups = [b for b in self.backups if marks[b["ck"]] is not None]
        # A prune first deletes what an interrupted one left, then changes
        # the state: killed after that, only its own removals are left.
        self.leftover = gone if kill else []
        self.stats["prunes"] += 1
        self.stats["removed"] += len(gone)
        if self.files() != self.expected_files(self.leftover):
            self.fail("files left: %s\nexpected: %s\nmodel: %s\nprune said:\n%s" % (
                self.files(), self.expected_files(self.leftover),
                " ".join("%s=%s" % (b["ck"], marks[b["ck"]]) for b in self.backups), out))
        self.check_ls()
        for b in self.backups:
            self.restore(b)
        if self.rng.random() < 0.3:
            self.run("verify", "--deep", "-q", "--set", self.set, "--state-dir", self.state)
            self.stats["deep_verifies"] += 1
        if self.verbose:
            print("  %s: kept %d, removed %d%s" % (self.where, len(self.backups), len(gone),
                                                   " (killed)" if kill else ""))

    def series(self, no):
        self.new_series(no)
        self.where = "series %d" % no
        n = self.rng.randrange(*self.series_len)
        next_prune = self.rng.randrange(2, 7)
        for i in range(n):
            self.where = "series %d, backup %d" % (no, i)
            self.backup()
            if self.rng.random() < 0.05:
                # unprotect one: a later prune may take it
                for b in self.backups:
                    if b["protected"]:
                        os.unlink(b["path"] + ".protected")
                        b["protected"] = False
                        break
            next_prune -= 1
            if next_prune == 0:
                self.prune()
                next_prune = self.rng.randrange(2, 7)
        self.prune()
        self.stats["series"] += 1
        shutil.rmtree(self.root)

    def main(self):
        t0 = time.time()
        no = 0
        while no < self.min_series or time.time() - t0 < self.budget:
            self.series(no)
            no += 1
        print("t_prune_random: %s in %.0fs" % (
            ", ".join("%s=%d" % kv for kv in self.stats.items()), time.time() - t0))
        if self.mounted:
            subprocess.run(["umount", self.work], capture_output=True)


if __name__ == "__main__":
    t = Test()
    try:
        t.main()
    except Mismatch as e:
        if t.mounted:
            subprocess.run(["umount", t.work], capture_output=True)
        print("t_prune_random: FAIL: %s" % e, file=sys.stderr)
        print("rerun: SEED=%d sh tests/integration/run.sh t_prune_random" % t.seed,
              file=sys.stderr)
        sys.exit(1)
