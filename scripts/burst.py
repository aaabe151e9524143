#!/usr/bin/env python3
"""N fresh connections at once, each fetching one URL to the end: what a
devnet restart does to a checkpoint-sync provider (every node syncs at
once). wrk cannot do this: it opens its connections once and keeps them.

    python3 scripts/burst.py PORT PATH CONNECTIONS [--workers 2] [--timeout 30]

Prints one JSON object: per-connection latency from the burst's start to the
last byte (p50/p90/p99/max), the makespan, throughput, and every failure by
kind (connect error, reset, short body, bad status, timeout). Each worker
process drives its share of the connections from one epoll loop; the workers
start together at a barrier. Bounded: every connection has the deadline
`--timeout`. Standard library only; 127.0.0.1 only. BURST_DISCARD=1 drops
the body in the kernel instead of copying it (lighter on the client).
"""

import argparse
import json
import multiprocessing as mp
import os
import resource
import selectors
import socket
import time

CHUNK = 1 << 20
# Until the head is in, read at most this much: a head is a few hundred
# bytes, and copying a whole first read (head and up to CHUNK of body) into
# `head` to search it cost the client a copy of 1 MiB per connection, more
# for whichever server got more of the body into the first read.
HEAD_READ = 8 << 10
# BURST_DISCARD=1: the body is dropped in the kernel (MSG_TRUNC) instead of
# copied out, so the client, not the server, is less often what limits the
# rate on a machine both share.
DISCARD = socket.MSG_TRUNC if os.environ.get("BURST_DISCARD", "0") not in ("", "0") else 0


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, need + 64)) if hard != resource.RLIM_INFINITY else need + 64
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Conn:
    __slots__ = ("sock", "state", "head", "want", "got", "status", "done")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connect"
        self.head = b""
        self.want = None  # body bytes (Content-Length) once the head is in
        self.got = 0
        self.status = None
        self.done = None


def _worker(port, path, n, timeout, barrier, out):
    raise_nofile(n)
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Connection: close\r\n\r\n").encode()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    sel = selectors.DefaultSelector()
    conns, fails, latencies, body_bytes, reads = [], {}, [], 0, 0
    barrier.wait()
    t0 = time.monotonic()
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        c = Conn(s)
        if err not in (0, 115):  # EINPROGRESS
            fails["connect"] = fails.get("connect", 0) + 1
            s.close()
            continue
        conns.append(c)
        sel.register(s, selectors.EVENT_WRITE, c)
    open_ = len(conns)
    deadline = t0 + timeout

    def finish(c, kind=None):
        nonlocal open_, body_bytes
        sel.unregister(c.sock)
        c.sock.close()
        open_ -= 1
        if kind:
            fails[kind] = fails.get(kind, 0) + 1
        else:
            latencies.append(time.monotonic() - t0)
            body_bytes += c.got

    while open_ and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            c = key.data
            if c.state == "connect":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    finish(c, "connect")
                    continue
                try:
                    c.sock.send(request)  # small: fits any fresh send buffer
                except OSError:
                    finish(c, "reset")
                    continue
                c.state = "read"
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            reads += 1
            try:
                if c.want is None:
                    k = c.sock.recv_into(view, HEAD_READ)
                else:
                    k = c.sock.recv_into(view, CHUNK, DISCARD)
            except BlockingIOError:
                continue
            except OSError:
                finish(c, "reset")
                continue
            if k == 0:
                if c.want is not None and c.got >= c.want:
                    finish(c)
                else:
                    finish(c, "short_body")
                continue
            if c.want is None:
                c.head += bytes(view[:k])
                end = c.head.find(b"\r\n\r\n")
                if end < 0:
                    continue
                lines = c.head[:end].split(b"\r\n")
                try:
                    c.status = int(lines[0].split()[1])
                except (IndexError, ValueError):
                    finish(c, "bad_head")
                    continue
                c.want = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        c.want = int(value.strip())
                c.got = len(c.head) - end - 4
                c.head = b""
                if c.status != 200:
                    finish(c, f"status_{c.status}")
                    continue
            else:
                c.got += k
            if c.got >= c.want:
                finish(c)
    for key in list(sel.get_map().values()):
        finish(key.data, "timeout")
    out.send({"t0": t0, "latencies": latencies, "fails": fails, "body_bytes": body_bytes,
              "reads": reads})
    out.close()


def _q(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def burst(port, path, connections, workers=2, timeout=30.0):
    """One burst; returns the summary dict (latencies in ms)."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers)
    procs, pipes = [], []
    share = [connections // workers + (1 if i < connections % workers else 0)
             for i in range(workers)]
    for n in share:
        rx, tx = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, args=(port, path, n, timeout, barrier, tx), daemon=True)
        p.start()
        tx.close()
        procs.append(p)
        pipes.append(rx)
    parts = []
    for rx in pipes:
        if rx.poll(timeout + 30):
            parts.append(rx.recv())
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    t0 = min((x["t0"] for x in parts), default=0.0)
    lat = sorted(x["t0"] - t0 + v for x in parts for v in x["latencies"])
    fails = {}
    for x in parts:
        for k, v in x["fails"].items():
            fails[k] = fails.get(k, 0) + v
    lost = connections - len(lat) - sum(fails.values())
    if lost:
        fails["worker_lost"] = lost
    makespan = lat[-1] if lat else None
    body = sum(x["body_bytes"] for x in parts)
    return {
        "connections": connections,
        "served": len(lat),
        "failed": sum(fails.values()),
        "fails": fails,
        "p50_ms": _ms(_q(lat, 0.50)),
        "p90_ms": _ms(_q(lat, 0.90)),
        "p99_ms": _ms(_q(lat, 0.99)),
        "max_ms": _ms(makespan),
        "mib_per_s": round(body / makespan / 1048576, 1) if makespan else None,
        "req_per_s": round(len(lat) / makespan, 1) if makespan else None,
        # recv calls: how finely the server's bytes arrived, the client's
        # main cost (fewer, larger reads are cheaper).
        "reads": sum(x["reads"] for x in parts),
    }


def _ms(s):
    return None if s is None else round(s * 1000, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("connections", type=int)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    print(json.dumps(burst(a.port, a.path, a.connections, a.workers, a.timeout)))


if __name__ == "__main__":
    main()
