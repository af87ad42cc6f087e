#!/usr/bin/env python3
# qmp.py: a stdlib-only QMP client for the integration tests: runs commands
# on one connection to a QEMU monitor socket and prints each reply as JSON.
#
# Usage: qmp.py SOCKET STEP...   where a STEP is
#   a JSON object  {"execute": CMD, "arguments": {...}}: its "return" is printed
#   hmp:LINE       a human monitor command (e.g. qemu-io drive0 "write 0 64k")
#   wait:EVENT     waits (10 s at most) for an event, e.g. BLOCK_EXPORT_DELETED
# Exits 1 with the error on stderr when QEMU refuses a command.
import json
import socket
import sys
import time


class QMP:
    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for _ in range(200):  # QEMU creates the socket shortly after exec
            try:
                self.s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.05)
        else:
            raise TimeoutError(f"no QMP socket at {path}")
        self.s.settimeout(timeout)
        self.f = self.s.makefile("rwb")
        self.events = []
        self._read()  # the greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise EOFError("QMP connection closed")
        return json.loads(line)

    def send(self, msg):
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise RuntimeError(f"{msg.get('execute')}: {r['error']['class']}: "
                                   f"{r['error']['desc']}")
            return r.get("return")

    def cmd(self, _cmd, **args):  # not "name": QMP arguments use name=
        msg = {"execute": _cmd}
        if args:
            msg["arguments"] = args
        return self.send(msg)

    def wait_event(self, event, timeout=10):
        end = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == event:
                    return self.events.pop(i)
            if time.time() > end:
                raise TimeoutError(event)
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                r = self._read()
            except socket.timeout:
                continue
            if "event" in r:
                self.events.append(r)


def main(argv):
    if len(argv) < 2:
        print("usage: qmp.py SOCKET STEP...", file=sys.stderr)
        return 2
    q = QMP(argv[1])
    try:
        for step in argv[2:]:
            if step.startswith("hmp:"):
                out = q.cmd("human-monitor-command", **{"command-line": step[4:]})
                if out:  # HMP reports failures to run the command in its reply
                    raise RuntimeError(f"{step}: {out.strip()}")
                print(json.dumps(out))
            elif step.startswith("wait:"):
                print(json.dumps(q.wait_event(step[5:])))
            else:
                print(json.dumps(q.send(json.loads(step))))
    except (RuntimeError, TimeoutError, EOFError) as e:
        print(f"qmp.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
