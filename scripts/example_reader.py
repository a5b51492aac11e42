#!/usr/bin/env python3
"""Example frontend reader for recstream's Redis keys, standard library only.

Reads a user's list with one command (GET rs:rec:{user}); when the user has no
list yet (a new user) it falls back to the trending list (GET rs:pop); and it
tells how fresh the model is (HGETALL rs:meta). Lists are JSON, the default
[redis] format; for the zset format use ZREVRANGE rs:rec:{user} 0 -1 WITHSCORES.

    scripts/example_reader.py USER [--host H] [--port P] [--prefix rs:] [--json]
"""
import argparse
import json
import socket
import sys
import time


class Redis:
    """Just enough RESP2 to send a command and read its reply."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.buf = b""

    def command(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("user")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--prefix", default="rs:")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    r = Redis(args.host, args.port)
    raw = r.command("GET", args.prefix + "rec:" + args.user)
    source = "personal"
    if raw is None:  # a new user: fall back to what is trending
        raw = r.command("GET", args.prefix + "pop")
        source = "trending"
    recs = json.loads(raw) if raw else []
    meta_list = r.command("HGETALL", args.prefix + "meta") or []
    meta = {meta_list[i].decode(): meta_list[i + 1].decode() for i in range(0, len(meta_list), 2)}
    age_s = None
    if "updated_at_ms" in meta:
        age_s = time.time() - int(meta["updated_at_ms"]) / 1000.0

    if args.json:
        print(json.dumps({"user": args.user, "source": source, "items": recs,
                          "model_age_seconds": age_s}))
        return 0
    print("%s list for %s (model updated %s ago)" % (
        source, args.user, "%.1f s" % age_s if age_s is not None else "never"))
    for rank, e in enumerate(recs, 1):
        why = "  because of %s" % e["why"] if e.get("why") else ""
        print("%3d. %-12s %.4f%s" % (rank, e["item"], e["score"], why))
    return 0 if recs else 1


if __name__ == "__main__":
    sys.exit(main())
