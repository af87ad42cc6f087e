#!/usr/bin/env python3
"""kill_loop.py: SIGKILL vmaback at random points of backups of a set, many
times with a fixed seed, and check after each kill that nothing was lost.

Each iteration changes the drives a little, starts a backup (full or
incremental, plain or zstd, to a file, into a dump directory (--dumpdir, the
name following the kind the run picks) or to --output-cmd) and SIGKILLs it
after a random number of milliseconds or of bytes written (/proc/PID/io
wchar).  Then, before any other vmaback command touches the set:

  * no archive under the final name unless the run had published it (killed
    after the rename): then it is a whole archive that restores to the drives
    as they were when the run started;
  * state.json is wholly the old one or wholly the new one (the old chain
    plus the new checkpoint), and every file it names exists;
  * every committed archive still has the SHA-256 the state recorded;
  * the next backup succeeds and leaves no leftover in the state directory;
  * every committed checkpoint restores bit-exact (`vmaback restore CHAIN
    --to DIR`) to a copy of the drives taken when its backup started.

For --output-cmd the consumer stores the stream, keeps it only if `vmaback
verify` accepts it, and renames it then: a stream cut by the kill must never
be accepted.  Now and then a run's consumer reads a few bytes and exits 0:
that backup must exit 1 and change nothing.

Usage: kill_loop.py --vmaback PATH [--runs N] [--seed S] [--work DIR]
                    [--set-every N] [--full-restore]
Prints one summary line "kill_loop: seed S: ..." with the counts; exit 0 when
every invariant held, 1 otherwise (the first violation is printed).
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MiB = 1048576
# The archive of a run into a dump directory, until resolve() finds its name.
DUMP = "dump:"


class Violation(Exception):
    pass


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def wchar(pid):
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pid_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class Loop:
    def __init__(self, a):
        self.a = a
        self.vb = a.vmaback
        self.rnd = random.Random(a.seed)
        self.work = a.work
        self.counts = dict(attempts=0, killed=0, finished_first=0, published_uncommitted=0,
                           committed_by_killed=0, truncated_streams_refused=0,
                           streams_stored=0, restores=0, completed_runs=0, sets=0,
                           early_consumers=0, dump_dir_runs=0)
        self.set_no = 0
        self.last_secs, self.last_bytes = 0.1, 2 * MiB

    # ------------------------------------------------------------ helpers

    def vmaback(self, *args, ok=(0,), stdin=subprocess.DEVNULL):
        p = subprocess.run([self.vb] + list(args), stdin=stdin, capture_output=True,
                           timeout=120)
        if p.returncode not in ok:
            raise Violation("`vmaback %s` exited %d: %s" % (
                " ".join(args), p.returncode, p.stderr.decode(errors="replace").strip()[-600:]))
        return p

    def new_set(self):
        self.set_no += 1
        self.counts["sets"] += 1
        self.set = "s%d" % self.set_no
        self.dir = os.path.join(self.work, self.set)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.out = os.path.join(self.dir, "out")
        self.snaps = os.path.join(self.dir, "snap")
        self.sd = os.path.join(self.dir, "st")
        os.makedirs(self.out)
        os.makedirs(self.snaps)
        self.drives = []
        # a: 3 MiB + 7 with holes; b: 1 MiB of random data
        a = os.path.join(self.dir, "a.raw")
        with open(a, "wb") as f:
            f.truncate(3 * MiB + 7)
            for off in (0, 1 * MiB + 4096, 3 * MiB - 100):
                f.seek(off)
                f.write(self.rnd.randbytes(200000 if off < 3 * MiB - 100 else 107))
        b = os.path.join(self.dir, "b.raw")
        with open(b, "wb") as f:
            f.write(self.rnd.randbytes(MiB))
        self.drives = [("a", a), ("b", b)]
        self.seq = 0
        self.archives = {}

    def mutate(self):
        for _, p in self.drives:
            size = os.path.getsize(p)
            with open(p, "r+b") as f:
                for _ in range(self.rnd.randint(0, 3)):
                    off = self.rnd.randrange(size)
                    n = min(self.rnd.randint(1, 100000), size - off)
                    f.seek(off)
                    f.write(self.rnd.randbytes(n) if self.rnd.random() < 0.8 else bytes(n))

    def snapshot(self, name):
        d = os.path.join(self.snaps, name)
        os.makedirs(d)
        for n, p in self.drives:
            shutil.copyfile(p, os.path.join(d, "disk-%s.raw" % n))

    def state_text(self):
        try:
            with open(os.path.join(self.sd, self.set, "state.json"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def chain(self, text):
        if text is None:
            return []
        return json.loads(text)["checkpoints"]

    # ------------------------------------------------------------ one run

    def command(self, name, kind, dump_ok=True):
        """argv, final archive path, consumer pid file (or None). In a dump
        directory (--dumpdir) the name follows the kind the run picks: the
        path is DUMP + name until resolve() finds the file."""
        zst = self.rnd.random() < 0.35
        ext = ".vma.zst" if zst else ".vma"
        final = os.path.join(self.out, name + ext)
        dump = dump_ok and self.rnd.random() < 0.25
        if dump:
            final = DUMP + name
            self.counts["dump_dir_runs"] += 1
        self.archives[name] = final
        argv = [self.vb, "backup", "--set", self.set, "--state-dir", self.sd,
                "--checkpoint", name, "--quiet"]
        for n, p in self.drives:
            argv += ["-d", "%s=%s" % (n, p)]
        if kind == "full" or (self.seq > 0 and self.rnd.random() < 0.15):
            argv += ["--mode", "full"]
        if zst:
            argv += ["--compress", "zstd", "--zstd-threads", str(self.rnd.choice([0, 2]))]
        cpid = None
        if dump:
            argv += ["--dumpdir", self.out, "--name-template", "kl-" + name]
            if not zst:
                argv += ["--compress", "none"]
        elif self.rnd.random() < 0.3:
            part = os.path.join(self.out, "." + name + ".part")
            cpid = os.path.join(self.out, "." + name + ".cpid")
            cmd = ('echo $$ > %s; cat > %s && "%s" verify -q %s 2>/dev/null && mv %s %s; '
                   'rm -f %s' % (cpid, part, self.vb, part, part, final, part))
            argv += ["--output-cmd", cmd]
        else:
            argv += ["-o", final]
        return argv, final, cpid

    def resolve(self, name, final):
        """A dump directory's archive: kl-NAME.vma[.zst], .vmainc[.zst] or
        .vmadiff[.zst] as the run chose (never two); else final as it is."""
        if not final.startswith(DUMP):
            return final
        found = [f for f in os.listdir(self.out)
                 if f.startswith("kl-%s.vma" % name) and not f.startswith(".")]
        if len(found) > 1:
            raise Violation("%s: two archives in the dump directory: %s" % (name, found))
        path = os.path.join(self.out, found[0] if found else "kl-%s.vma" % name)
        self.archives[name] = path
        return path

    def wait_consumer(self, cpid):
        """A killed vmaback leaves its consumer running: wait for it."""
        if not cpid:
            return
        for _ in range(2000):
            try:
                pid = int(open(cpid).read())
            except (OSError, ValueError):
                pid = None
            if pid is None or pid_gone(pid):
                break
            time.sleep(0.005)
        else:
            raise Violation("the output command still runs 10 s after vmaback was killed")
        try:
            os.unlink(cpid)
        except FileNotFoundError:
            pass

    def killed_run(self, name):
        self.counts["attempts"] += 1
        kind = "full" if self.seq == 0 else "auto"
        argv, final, cpid = self.command(name, kind)
        old = self.state_text()
        self.snapshot(name)
        by_bytes = self.rnd.random() < 0.5
        # up to a little past the end of a backup like the last one
        if by_bytes:
            limit = self.rnd.randint(0, int(self.last_bytes * 1.05))
        else:
            limit = self.rnd.uniform(0, self.last_secs * 1.05)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while p.poll() is None:
            if by_bytes:
                w = wchar(p.pid)
                if w is not None and w >= limit:
                    break
            elif time.monotonic() - t0 >= limit:
                break
            time.sleep(0.0005)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        self.wait_consumer(cpid)
        final = self.resolve(name, final)
        killed = p.returncode == -signal.SIGKILL
        if killed:
            self.counts["killed"] += 1
        else:
            self.counts["finished_first"] += 1
            if p.returncode != 0:
                raise Violation("%s exited %d without a kill: %s" % (name, p.returncode, err))
        self.check_after(name, final, old, killed, cpid is not None)

    # ------------------------------------------------------------ checks

    def check_after(self, name, final, old, killed, to_cmd):
        new = self.state_text()
        oldc = self.chain(old)
        if new != old:
            try:
                st = json.loads(new)
            except (TypeError, ValueError):
                raise Violation("%s: state.json is neither the old nor a valid new one" % name)
            names = [c["name"] for c in st["checkpoints"]]
            if names != [c["name"] for c in oldc] + [name] or st.get("pending"):
                raise Violation("%s: state.json changed to the chain %s (pending %s) from %s" % (
                    name, names, st.get("pending"), [c["name"] for c in oldc]))
            if killed:
                self.counts["committed_by_killed"] += 1
        self.check_files_named(new)
        committed = [c["name"] for c in self.chain(new)]
        if not killed and name not in committed:
            raise Violation("%s finished with exit 0 but its checkpoint is not committed" % name)
        leftovers = [f for f in os.listdir(self.out) if f.startswith(".")]
        if os.path.exists(final):
            if os.stat(final).st_mode & 0o777 != 0o600 and not to_cmd:
                raise Violation("%s has mode %o" % (final, os.stat(final).st_mode & 0o777))
            if name not in committed:
                # published, then killed before the commit: a whole archive
                self.counts["published_uncommitted"] += 1
                self.restore_check(self.chain_of(self.chain(new), None, extra=final), name)
                os.unlink(final)
                if to_cmd:
                    self.counts["streams_stored"] += 1
        elif name in committed:
            raise Violation("%s is committed but its archive %s does not exist" % (name, final))
        elif to_cmd and killed:
            self.counts["truncated_streams_refused"] += 1
        if to_cmd and name in committed:
            self.counts["streams_stored"] += 1
        # A killed file sink may leave its hidden temporary (nothing can
        # remove it after SIGKILL); it must never be under the final name.
        for f in leftovers:
            os.unlink(os.path.join(self.out, f))
        if name not in committed:
            shutil.rmtree(os.path.join(self.snaps, name))
        for c in self.chain(new):
            f = self.archives[c["name"]]
            if c.get("archive_sha256") and sha256(f) != c["archive_sha256"]:
                raise Violation("committed archive %s changed" % f)

    def check_files_named(self, text):
        if text is None:
            return
        st = json.loads(text)
        d = os.path.join(self.sd, self.set)
        used = set(st.get("manifests") or [])
        for c in st["checkpoints"] + ([st["pending"]] if st.get("pending") else []):
            for x in c["drives"]:
                used |= {x["bitmap"], x.get("digests"), x.get("archive_digests")} - {None}
        missing = used - set(os.listdir(d))
        if missing:
            raise Violation("state.json names files that do not exist: %s" % sorted(missing))
        return used

    def chain_of(self, ckpts, name, extra=None):
        """Archives restoring checkpoint name (or the latest plus extra)."""
        by_uuid = {c["uuid"]: c for c in ckpts}
        if extra is not None:
            if not ckpts:
                return [extra]
            meta = json.loads(self.vmaback("list", "--json", extra).stdout)["vmaback"]
            if meta["kind"] == "full":
                return [extra]
            c = by_uuid[meta["parent_uuid"]]
            return self.chain_of(ckpts, c["name"]) + [extra]
        c = next(x for x in ckpts if x["name"] == name)
        out = [self.archives[c["name"]]]
        while c["kind"] != "full":
            c = by_uuid[c["base_uuid"]]
            out.insert(0, self.archives[c["name"]])
        return out

    def restore_check(self, archives, name, keep_snap=True):
        to = os.path.join(self.dir, "restored")
        shutil.rmtree(to, ignore_errors=True)
        self.vmaback("restore", "--quiet", *archives, "--to", to)
        self.counts["restores"] += 1
        snap = os.path.join(self.snaps, name)
        for n, _ in self.drives:
            want = os.path.join(snap, "disk-%s.raw" % n)
            got = os.path.join(to, "disk-%s.raw" % n)
            if sha256(want) != sha256(got):
                raise Violation("restoring %s from %s: drive %s differs" % (
                    name, " ".join(os.path.basename(x) for x in archives), n))
        shutil.rmtree(to)
        if not keep_snap:
            shutil.rmtree(snap)

    def restore_committed(self, all_of_them):
        ckpts = self.chain(self.state_text())
        pick = ckpts if all_of_them else ckpts[-1:] + self.rnd.sample(ckpts, min(1, len(ckpts)))
        for c in pick:
            self.restore_check(self.chain_of(ckpts, c["name"]), c["name"])

    def early_consumer_run(self, name):
        """A consumer that reads a few bytes and exits 0: exit 1, the state
        unchanged, nothing under a final name, no temporary left."""
        argv, final, _ = self.command(name, "auto", dump_ok=False)
        i = argv.index("--output-cmd") if "--output-cmd" in argv else argv.index("-o")
        part = os.path.join(self.out, "." + name + ".early")
        # fewer bytes than any archive, compressed ones included
        argv[i:i + 2] = ["--output-cmd", "head -c %d > %s" % (self.rnd.randint(1, 64), part)]
        old = self.state_text()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        err = p.stderr.decode(errors="replace").strip()
        if p.returncode != 1:
            raise Violation("%s: a consumer that stopped early and exited 0: exit %d, "
                            "expected 1: %s" % (name, p.returncode, err[-600:]))
        if self.state_text() != old:
            raise Violation("%s: a consumer stopped early and the state changed" % name)
        if os.path.exists(final):
            raise Violation("%s: a consumer stopped early and %s exists" % (name, final))
        os.unlink(part)
        del self.archives[name]
        self.counts["early_consumers"] += 1

    def completed_run(self, name):
        argv, final, cpid = self.command(name, "full" if self.seq == 0 else "auto")
        self.snapshot(name)
        t0 = time.monotonic()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        self.last_secs = time.monotonic() - t0
        self.wait_consumer(cpid)
        final = self.resolve(name, final)
        if os.path.exists(final):
            self.last_bytes = os.path.getsize(final) + 65536
        if p.returncode != 0:
            raise Violation("the backup after a kill failed (%d): %s" % (
                p.returncode, p.stderr.decode(errors="replace").strip()[-600:]))
        self.counts["completed_runs"] += 1
        text = self.state_text()
        if self.chain(text)[-1]["name"] != name:
            raise Violation("%s succeeded but is not the latest checkpoint" % name)
        used = self.check_files_named(text) | {"state.json", "lock"}
        extra = set(os.listdir(os.path.join(self.sd, self.set))) - used
        if extra:
            raise Violation("leftovers in the state directory after %s: %s" % (name, extra))
        if [f for f in os.listdir(self.out) if f.startswith(".")]:
            raise Violation("a temporary is left in the output directory after %s" % name)

    # ------------------------------------------------------------ main

    def run(self):
        per_set = self.a.set_every
        for i in range(self.a.runs):
            if i % per_set == 0:
                if i:
                    self.restore_committed(True)
                    shutil.rmtree(self.dir)
                self.new_set()
            self.mutate()
            self.killed_run("k%d" % i)
            self.seq += 1
            if self.rnd.random() < 0.2:
                self.early_consumer_run("k%de" % i)
            self.mutate()
            self.completed_run("k%db" % i)
            self.seq += 1
            self.restore_committed(self.a.full_restore)
        self.restore_committed(True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmaback", required=True)
    ap.add_argument("--runs", type=int, default=int(os.environ.get("KILL_RUNS", "40")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("KILL_SEED", "6")))
    ap.add_argument("--work")
    ap.add_argument("--set-every", type=int, default=5,
                    help="start a new backup set every N iterations")
    ap.add_argument("--full-restore", action="store_true",
                    help="after every kill restore every committed checkpoint "
                         "(default: the latest and one at random; all at the end of a set)")
    a = ap.parse_args()
    a.vmaback = os.path.abspath(a.vmaback)
    own = a.work is None
    if own:
        a.work = tempfile.mkdtemp(prefix="vmaback-kill.")
    os.makedirs(a.work, exist_ok=True)
    loop = Loop(a)
    t0 = time.monotonic()
    rc = 0
    try:
        loop.run()
    except Violation as e:
        print("kill_loop: seed %d, run %d: %s" % (a.seed, loop.counts["attempts"], e),
              file=sys.stderr)
        rc = 1
    c = loop.counts
    print("kill_loop: seed %d: %d runs started, %d killed (%d after publishing, %d after "
          "committing), %d finished before the kill; %d stored streams, %d cut streams "
          "refused by the consumer's verify; %d backups after a kill; %d restores checked; "
          "%d sets; %d consumers that stopped early refused; %d runs into a dump "
          "directory; %.1f s" % (a.seed, c["attempts"], c["killed"], c["published_uncommitted"],
                             c["committed_by_killed"], c["finished_first"], c["streams_stored"],
                             c["truncated_streams_refused"], c["completed_runs"],
                             c["restores"], c["sets"], c["early_consumers"],
                             c["dump_dir_runs"], time.monotonic() - t0))
    if own and rc == 0:
        shutil.rmtree(a.work, ignore_errors=True)
    elif rc:
        print("kill_loop: the work directory is kept: %s" % a.work, file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
