#!/usr/bin/env python3
# fake_qga.py: a stand-in for qemu-guest-agent's host-side socket, for the
# integration tests (--fsfreeze --qga), stdlib only.
#
# Usage: fake_qga.py [--mute] [--filesystems N] [--freeze-delay S]
#                    SOCKET LOG [PIDFILE]
#   SOCKET  the unix socket to listen on (must not exist; removed at SIGTERM,
#           as PIDFILE is)
#   LOG     one line appended per command received: "TIME CMD", TIME from
#           the monotonic clock (CLOCK_MONOTONIC, as vmaback's), e.g.
#           "12345.678901 guest-fsfreeze-freeze"
#   PIDFILE gets the pid once the socket listens (written whole, by rename):
#           wait for it, stop the agent with kill $(cat PIDFILE).
# Answers guest-sync-delimited (0xff, then {"return": ID}), guest-sync,
# guest-ping, guest-fsfreeze-freeze (returns N, default 2 "file systems";
# refused while frozen, as the real agent does), guest-fsfreeze-thaw
# (returns N, or 0 when thawed), guest-fsfreeze-status ("frozen"/"thawed");
# anything else is a CommandNotFound error. A 0xff byte from the client
# resets the parser, as in the real agent. --mute: accepts connections and
# logs commands but never answers (an agent that does not answer).
# --freeze-delay S: guest-fsfreeze-freeze answers after S seconds.
# Runs until killed; the freeze state is shared by every connection.
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time


class Agent:
    def __init__(self, args):
        self.args = args
        self.frozen = False
        self.lock = threading.Lock()
        fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW |
                     os.O_CLOEXEC, 0o600)
        self.log = os.fdopen(fd, "a", buffering=1)

    def note(self, cmd):
        with self.lock:
            self.log.write(f"{time.monotonic():.6f} {cmd}\n")

    def answer(self, msg):
        """The bytes to send for one command (b"" for none)."""
        cmd = msg.get("execute") if isinstance(msg, dict) else None
        self.note(cmd if isinstance(cmd, str) else "-")
        if self.args.mute:
            return b""
        args = (msg.get("arguments") or {}) if isinstance(msg, dict) else {}
        if cmd in ("guest-sync-delimited", "guest-sync"):
            reply = {"return": args.get("id")}
            prefix = b"\xff" if cmd == "guest-sync-delimited" else b""
            return prefix + json.dumps(reply).encode() + b"\n"
        with self.lock:
            if cmd == "guest-ping":
                reply = {"return": {}}
            elif cmd == "guest-fsfreeze-freeze":
                if self.frozen:
                    reply = {"error": {"class": "GenericError", "desc":
                                       "Command guest-fsfreeze-freeze has been disabled: "
                                       "the agent is in frozen state"}}
                else:
                    self.frozen = True
                    reply = {"return": self.args.filesystems}
            elif cmd == "guest-fsfreeze-thaw":
                reply = {"return": self.args.filesystems if self.frozen else 0}
                self.frozen = False
            elif cmd == "guest-fsfreeze-status":
                reply = {"return": "frozen" if self.frozen else "thawed"}
            else:
                reply = {"error": {"class": "CommandNotFound",
                                   "desc": f"The command {cmd} has not been found"}}
        if cmd == "guest-fsfreeze-freeze" and self.args.freeze_delay > 0:
            time.sleep(self.args.freeze_delay)
        return json.dumps(reply).encode() + b"\n"

    def serve(self, conn):
        dec = json.JSONDecoder()
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                if b"\xff" in buf:  # the client resets our parser
                    buf = buf[buf.rindex(b"\xff") + 1:]
                while True:
                    text = buf.decode("utf-8", "replace").lstrip()
                    if not text:
                        buf = b""
                        break
                    try:
                        msg, end = dec.raw_decode(text)
                    except ValueError:
                        if b"\n" in buf:  # a whole line that is not JSON
                            self.note("-")
                            buf = buf[buf.index(b"\n") + 1:]
                            continue
                        break  # wait for the rest
                    buf = text[end:].encode()
                    out = self.answer(msg)
                    try:
                        if out:
                            conn.sendall(out)
                    except OSError:
                        return


def main():
    ap = argparse.ArgumentParser(description="a fake qemu-guest-agent socket")
    ap.add_argument("--mute", action="store_true")
    ap.add_argument("--filesystems", type=int, default=2)
    ap.add_argument("--freeze-delay", type=float, default=0.0)
    ap.add_argument("socket")
    ap.add_argument("log")
    ap.add_argument("pidfile", nargs="?")
    args = ap.parse_args()

    agent = Agent(args)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.socket)  # fails if the path exists: never replace what is not ours
    srv.listen(8)

    def stop(signum, frame):
        for path in (args.socket, args.pidfile):
            try:
                if path:
                    os.unlink(path)
            except OSError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.pidfile:
        tmp = args.pidfile + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(tmp, args.pidfile)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=agent.serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
