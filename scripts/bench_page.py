#!/usr/bin/env python3
"""The status page's weight and what one refresh costs the server.

    python3 scripts/bench_page.py [UPSTREAMS ...]    (default: 8 100)

Needs target/release/leanpoint (scripts/bench.sh builds it). For each count,
starts `leanpoint sim` (8: the demo's mix of 5 healthy, 1 hung, 1 lagging, 1
forked; more: all healthy) and leanpoint polling it every second, waits for
agreement and 20 s of history, then measures:

- weight: bytes of `/`, `/status.js`, the first `/api/history` and one steady
  refresh (`/status`, `/api/upstreams`, `/api/history?after=SEQ` with the SEQ
  of 2 s earlier, what the page asks every 2 s), raw and gzip;
- CPU per refresh: leanpoint's utime+stime (/proc/PID/stat) over 15 s of
  back-to-back refreshes by 2 clients, minus its idle rate over the 15 s
  just before, divided by the refreshes.

Prints a Markdown table. Standard library only; every process it starts is
stopped when it exits; all traffic is on 127.0.0.1.
"""

import collections
import gzip
import http.client
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as lib  # noqa: E402

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "leanpoint")
WINDOW_S = 15
CLIENTS = 2
REFRESH_S = 2.0
GZIP = {"Accept-Encoding": "gzip"}


def cpu_s(pid):
    st = lib._stat(pid)
    return (int(st[11]) + int(st[12])) / lib.CLK_TCK


def get(conn, path, headers=GZIP):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"{path}: HTTP {r.status}")
    raw = gzip.decompress(body) if r.getheader("Content-Encoding") == "gzip" else body
    return len(raw), len(body), raw


def refresh(conn, after):
    """One page refresh: (raw bytes, wire bytes, the history's seq)."""
    raw = wire = 0
    for path in ("/status", "/api/upstreams"):
        r, w, _ = get(conn, path)
        raw, wire = raw + r, wire + w
    r, w, body = get(conn, f"/api/history?after={after}")
    return raw + r, wire + w, json.loads(body)["seq"]


def start(n, logs):
    upstreams = os.path.join(logs, f"upstreams-{n}.json")
    groups = "5:healthy,1:accept-hang,1:lagging:3,1:fork" if n == 8 else f"{n}:healthy"
    sim = lib.spawn([BIN, "sim", "--nodes", groups, "--write-upstreams", upstreams,
                     "--slot-ms", "1000", "--log-level", "warn"], os.path.join(logs, f"sim-{n}.log"))

    def ready():
        with open(upstreams) as f:
            return len(json.load(f)["upstreams"]) == n

    lib.wait_for("the simulator", ready, 60, proc=sim)
    port = lib.free_port()
    lp = lib.spawn([BIN, "--bind", "127.0.0.1", "--port", str(port), "--upstreams-config", upstreams,
                    "--poll-ms", "1000", "--timeout-ms", "500", "--log-level", "warn"],
                   os.path.join(logs, f"leanpoint-{n}.log"))
    lib.wait_for("agreement", lambda: json.loads(lib.http_get(port, "/status")[2])["serving"], 60, proc=lp)
    return sim, lp, port


def measure(n, logs):
    sim, lp, port = start(n, logs)
    time.sleep(20)  # 20 s of history, as a page open for a while sees
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    page = get(c, "/")[:2]
    script = get(c, "/status.js")[:2]
    first = get(c, "/api/history?after=0")[:2]
    seq0 = refresh(c, 0)[2]
    time.sleep(REFRESH_S)
    steady = refresh(c, seq0)
    c.close()

    # Idle rate, then back-to-back refreshes, each asking for the 2 s of
    # history a page refreshing every 2 s would ask for.
    t0, c0 = time.monotonic(), cpu_s(lp.pid)
    time.sleep(WINDOW_S)
    idle_rate = (cpu_s(lp.pid) - c0) / (time.monotonic() - t0)
    # leanpoint closes idle keep-alive connections (--header-timeout-ms).
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seqs = collections.deque([(time.monotonic(), refresh(c, 0)[2])])
    c.close()
    done = [0] * CLIENTS
    stop_at = time.monotonic() + WINDOW_S
    lock = threading.Lock()

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop_at:
            now = time.monotonic()
            with lock:
                while len(seqs) > 1 and seqs[1][0] <= now - REFRESH_S:
                    seqs.popleft()
                after = seqs[0][1]
            seq = refresh(conn, after)[2]
            with lock:
                seqs.append((time.monotonic(), seq))
            done[k] += 1
        conn.close()

    t1, c1 = time.monotonic(), cpu_s(lp.pid)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, used = time.monotonic() - t1, cpu_s(lp.pid) - c1
    refreshes = sum(done)
    per = (used - idle_rate * elapsed) / refreshes
    lib.stop(lp)
    lib.stop(sim)
    return {"upstreams": n, "page": page, "script": script, "first_history": first,
            "refresh": steady[:2], "cpu_us_per_refresh": per * 1e6, "refreshes": refreshes,
            "refreshes_per_s": refreshes / elapsed, "idle_cpu_pct": idle_rate * 100}


def main():
    counts = [int(a) for a in sys.argv[1:]] or [8, 100]
    lib.install_guards(600 * len(counts))
    logs = tempfile.mkdtemp(prefix="leanpoint-bench-page-")
    rows = [measure(n, logs) for n in counts]
    print("| upstreams | `/` raw / gzip | `/status.js` raw / gzip | first `/api/history` raw / gzip "
          "| one refresh (3 requests) raw / gzip | server CPU per refresh | refreshes measured "
          "| leanpoint idle CPU |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    fmt = lambda p: f"{p[0]} / {p[1]}"  # noqa: E731
    for r in rows:
        print(f"| {r['upstreams']} | {fmt(r['page'])} | {fmt(r['script'])} | {fmt(r['first_history'])} "
              f"| {fmt(r['refresh'])} | {r['cpu_us_per_refresh']:.0f} µs | {r['refreshes']} "
              f"({r['refreshes_per_s']:.0f}/s) | {r['idle_cpu_pct']:.2f}% |")
    print(f"\nlogs: {logs}; load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
