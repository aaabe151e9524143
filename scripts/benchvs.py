"""Side-by-side scenarios for scripts/bench.py (issue 13): our leanpoint and
a reference measured in the same run, reported as ratios.

  versus      16 healthy upstreams polled every second by ours and by the Zig
              leanpoint at once: CPU per poll against upstreams that keep the
              connection and against upstreams that close it after each
              response (nginx in front of the simulator, keepalive_timeout 0),
              then `wrk -t2 -c32` on each /metrics in turn.
  burst       256 and 1024 fresh connections at once fetching the State,
              ours vs nginx serving the same bytes (scripts/burst.py).
  bigstate    a 64 MiB State: ours under 256 concurrent downloads, RSS
              before / peak.
  freshness   the lag from a checkpoint's finalization on the simulator to
              ours serving it (or a later one), at 1 s, 4 s, 10 s polls.
  timewait    scripts/scrape-cpu.sh: CPU per scrape with and without 30,000
              TIME_WAITs in another namespace (root only).

The Zig leanpoint's path comes from $ZIG_LEANPOINT (see BENCHMARKS.md for
how to build it); without it the Zig columns are skipped with the reason
printed. Everything listens on 127.0.0.1 and is stopped on exit (benchlib).
"""

import json
import os
import random
import re
import subprocess
import sys
import time

import benchlib as lib
import benchreport
import benchsim as sim
import burst as burstlib


class Ctx:
    """What bench.py knows: binary, output dirs, windows."""

    def __init__(self, binary, out, logs, quick, start_leanpoint, scrape, scrape_polls,
                 nginx_serving):
        self.bin, self.out, self.logs, self.quick = binary, out, logs, quick
        self.start_leanpoint = start_leanpoint
        self.scrape = scrape
        self.scrape_polls = scrape_polls
        self.nginx_serving = nginx_serving


def zig_binary():
    """The reference binary from $ZIG_LEANPOINT, or (None, reason)."""
    path = os.environ.get("ZIG_LEANPOINT", "")
    if not path:
        return None, "ZIG_LEANPOINT is not set (see BENCHMARKS.md: building the Zig leanpoint)"
    if not os.access(path, os.X_OK):
        return None, f"ZIG_LEANPOINT={path} is not an executable file"
    return path, None


def start_zig(ctx, binary, upstreams, tag, poll_ms=1000):
    port = lib.free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--upstreams-config",
            upstreams, "--poll-ms", str(poll_ms), "--timeout-ms", "5000",
            "--stale-ms", "60000"]
    log = os.path.join(ctx.logs, f"zig-{tag}.log")
    p = lib.spawn(argv, log)
    lib.wait_for("zig leanpoint /metrics", lambda: lib.http_get(port, "/metrics")[0] == 200,
                 30, proc=p)
    return p, port, log


_CYCLE = re.compile(rb"^\[(\d+)\] \S+\s*\| (Consensus reached|No consensus|No upstreams)", re.M)


def zig_polls(log, n, t0_ms, t1_ms):
    """Polls the Zig leanpoint made between two wall-clock instants (ms): it
    polls its n upstreams one after the other, then sleeps, and logs one
    line per round (consensus or not), so rounds x n. It has no counter."""
    with open(log, "rb") as f:
        text = f.read()
    rounds = sum(1 for m in _CYCLE.finditer(text) if t0_ms <= int(m.group(1)) < t1_ms)
    return rounds * n


def nginx_closing_proxy(ctx, upstreams, tag):
    """nginx in front of every simulated upstream, one port each, closing the
    client connection after every response (keepalive_timeout 0): upstreams
    that close each connection. Returns (process, upstreams.json path)."""
    with open(upstreams) as f:
        ups = json.load(f)["upstreams"]
    tmp = os.path.join(ctx.out, f"nginx-{tag}")
    os.makedirs(os.path.join(tmp, "logs"), exist_ok=True)
    servers, out = [], []
    for u in ups:
        port = lib.free_port()
        servers.append(f"  server {{ listen 127.0.0.1:{port}; location / {{ "
                       f"proxy_pass {u['url'].rstrip('/')}; }} }}")
        out.append({"name": u["name"], "url": f"http://127.0.0.1:{port}"})
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_timeout 0;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_buffering on;
  proxy_buffers 64 64k;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
{chr(10).join(servers)}
}}
""")
    p = lib.spawn(["nginx", "-c", conf, "-p", tmp], os.path.join(ctx.logs, f"nginx-{tag}.log"))
    path = os.path.join(ctx.logs, f"upstreams-{tag}-closing.json")
    with open(path, "w") as f:
        json.dump({"upstreams": out}, f)
    port = int(out[0]["url"].rsplit(":", 1)[1])
    lib.wait_for("nginx proxy", lambda: lib.http_get(port, "/lean/v0/health")[0] < 500, 20,
                 proc=p)
    return p, path


def _cpu_per_poll(ctx, n, window, ours, zig):
    """One window with ours and (if given) Zig polling the same upstreams."""
    lp, port = ours
    a_polls = ctx.scrape_polls(port)
    a, a_cpu = lib.Sample(lp.pid), lib.cpu_exact_s(lp.pid)
    za = lib.cpu_exact_s(zig[0].pid) if zig else None
    t0_ms = time.time() * 1000
    busy0 = lib.machine_busy()
    time.sleep(window)
    t1_ms = time.time() * 1000
    busy1 = lib.machine_busy()
    b, b_cpu = lib.Sample(lp.pid), lib.cpu_exact_s(lp.pid)
    zb = lib.cpu_exact_s(zig[0].pid) if zig else None
    zrss = lib.Sample(zig[0].pid).rss_kib if zig else None
    # The closing scrape's own CPU is outside the window: it comes after.
    b_polls = ctx.scrape_polls(port)
    wall = b.t - a.t
    polls = b_polls - a_polls
    cpu = b_cpu - a_cpu
    res = {"window_s": round(wall, 1), "ours_polls": int(polls),
           "ours_cpu_s": round(cpu, 4),
           "ours_us_per_poll": round(1e6 * cpu / polls, 1) if polls else None,
           "ours_rss_mib": round(b.rss_kib / 1024, 1)}
    other = (busy1 - busy0) - cpu
    if zig:
        zpolls = zig_polls(zig[2], n, t0_ms, t1_ms)
        zcpu = zb - za
        other -= zcpu
        res.update(zig_polls=zpolls, zig_cpu_s=round(zcpu, 4),
                   zig_us_per_poll=round(1e6 * zcpu / zpolls, 1) if zpolls else None,
                   zig_rss_mib=round(zrss / 1024, 1))
        if res["ours_us_per_poll"] and res["zig_us_per_poll"]:
            res["ratio_ours_to_zig"] = round(res["ours_us_per_poll"] / res["zig_us_per_poll"], 2)
    res["machine_busy_pct_except_ours_and_zig"] = round(100 * other / wall, 1)
    return res


def versus(ctx, results):
    n = 16
    window = 10 if ctx.quick else 20
    zbin, why = zig_binary()
    out = {"upstreams": n, "poll_ms": 1000, "window_s": window}
    if why:
        out["zig_skipped"] = why
        print(f"versus: Zig columns skipped: {why}", flush=True)
    simp, ups = sim.start(ctx.bin, ctx.logs, n, tag="vs")
    proxy, closing = nginx_closing_proxy(ctx, ups, "vs")
    for mode, path in (("keep-alive", ups), ("close", closing)):
        ours = ctx.start_leanpoint(path, f"vs-{mode}")
        zig = start_zig(ctx, zbin, path, f"vs-{mode}") if zbin else None
        lib.wait_for(f"{n} upstreams polled twice", lambda: ctx.scrape_polls(ours[1]) >= 2 * n,
                     60, proc=ours[0], every=0.5)
        time.sleep(2)
        m = _cpu_per_poll(ctx, n, window, ours, zig)
        out[f"poll_{mode}"] = m
        print(f"versus poll {mode}: {json.dumps(m)}", flush=True)
        if mode == "keep-alive":
            for who, port in (("ours", ours[1]), ("zig", zig[1] if zig else None)):
                if port is None:
                    continue
                r = lib.run_wrk(f"http://127.0.0.1:{port}/metrics", 32, 2, window)
                r.pop("raw")
                out[f"metrics_{who}"] = r
                print(f"versus /metrics {who}: {json.dumps(r)}", flush=True)
            if zig and out["metrics_zig"].get("rps"):
                out["metrics_ratio"] = round(out["metrics_ours"]["rps"] / out["metrics_zig"]["rps"], 2)
        lib.stop(ours[0])
        if zig:
            lib.stop(zig[0])
    lib.stop(proxy)
    lib.stop(simp)
    results["versus"] = out


def state_for_nginx(ctx, port):
    """Saves the State ours serves, for nginx to serve the same bytes."""
    _, _, body = lib.http_get(port, "/lean/v0/states/finalized", timeout=60)
    path = os.path.join(ctx.out, "finalized_state.ssz")
    with open(path, "wb") as f:
        f.write(body)
    return path, len(body)


def burst(ctx, results):
    """Fresh-connection bursts: ours vs nginx, the same bytes, alternately.

    The bursts of the two servers interleave (ours, nginx, nginx, ours, ...),
    so drift on the host (the Python client is what limits the rate on two
    cores) lands on both alike, and each round's two bursts make a pair
    for the report's paired ratio; each server's CPU is read around each of
    its bursts."""
    rounds = 4 if ctx.quick else 10
    pinned = lib.env_flag("BENCH_BURST_PIN")
    simp, ups = sim.start(ctx.bin, ctx.logs, 3, tag="burst", large_state=True)
    lp, port = ctx.start_leanpoint(ups, "burst")
    path = "/lean/v0/states/finalized"
    lib.wait_for("a served State", lambda: lib.http_get(port, path)[0] == 200, 90, proc=lp)
    state_file, size = state_for_nginx(ctx, port)
    ng, ng_port, ng_path = ctx.nginx_serving(state_file)
    out = {"state_bytes": size, "rounds": rounds, "runs": []}
    servers = (("leanpoint", lp, port, path), ("nginx", ng, ng_port, ng_path))
    workers = 2
    if pinned:
        out["pinned"] = pin_apart([lp.pid, *lib.group_pids(ng.pid)], [simp.pid])
        workers = len(out["pinned"]["client_cpus"])
    for conns in (256, 1024):
        aggs, watches = {}, {}
        for server, p, _, _ in servers:
            aggs[server] = {"server": server, "connections": conns, "bursts": [],
                            "rss_mib_before": round(lib.Sample(p.pid, server == "nginx").rss_kib
                                                    / 1024, 1)}
            watches[server] = lib.Watch(p.pid, every=0.1, group=server == "nginx")
        overflows = {name: 0 for name, _, _, _ in servers}
        for i in range(rounds):
            for server, p, prt, url in (servers if i % 2 == 0 else servers[::-1]):
                group = server == "nginx"
                before, nstat0 = server_cpu_s(p.pid, group), listen_overflows()
                # The machine's, not only the server's: on loopback the TCP
                # work of both ends runs in whichever context sends or ACKs.
                machine0 = lib.machine_busy()
                b = burstlib.burst(prt, url, conns, workers=workers, timeout=30)
                b["server_cpu_ms"] = round((server_cpu_s(p.pid, group) - before) * 1000, 2)
                b["machine_cpu_ms"] = round((lib.machine_busy() - machine0) * 1000, 1)
                aggs[server]["bursts"].append(b)
                overflows[server] += listen_overflows() - nstat0
                time.sleep(0.5)  # the previous burst's sockets leave the accept queue
        for server, _, _, _ in servers:
            agg = aggs[server]
            watches[server].stop()
            agg["listen_overflows"] = overflows[server]
            agg["peak_rss_mib"] = round(watches[server].peak_rss / 1024, 1)
            bs = agg["bursts"]
            agg["p99_ms"] = max(b["p99_ms"] or 0 for b in bs)  # the worst burst's p99
            agg["p50_ms"] = sorted(b["p50_ms"] or 0 for b in bs)[len(bs) // 2]
            agg["mib_per_s"] = round(sum(b["mib_per_s"] or 0 for b in bs) / len(bs), 1)
            agg["cpu_ms_per_burst"] = round(sum(b["server_cpu_ms"] for b in bs) / len(bs), 1)
            agg["machine_cpu_ms_per_burst"] = round(
                sum(b["machine_cpu_ms"] for b in bs) / len(bs), 1)
            agg["failed"] = sum(b["failed"] for b in bs)
            agg["served"] = sum(b["served"] for b in bs)
            out["runs"].append(agg)
            print(f"burst {server} {conns}: p50 {agg['p50_ms']} p99 {agg['p99_ms']} ms, "
                  f"{agg['mib_per_s']} MiB/s, CPU {agg['cpu_ms_per_burst']} ms per burst, "
                  f"failed {agg['failed']}, overflows {agg['listen_overflows']}", flush=True)
    for p in (ng, lp, simp):
        lib.stop(p)
    if pinned:
        os.sched_setaffinity(0, range(os.cpu_count()))
    results["burst"] = out


def pin_apart(servers, others):
    """BENCH_BURST_PIN: every thread of the servers on the last CPU, this
    harness (so the client's forked workers) and `others` on the rest. On two
    cores the client and the server otherwise share both, and the client is
    what limits the rate; apart, each server's CPU per burst is its own."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("BENCH_BURST_PIN needs at least two CPUs")
    server_cpu, client_cpus = cpus[-1], cpus[:-1]
    for pids, where in ((servers, {server_cpu}), (others, set(client_cpus))):
        for pid in pids:
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), where)
    os.sched_setaffinity(0, client_cpus)
    return {"server_cpu": server_cpu, "client_cpus": client_cpus}


def server_cpu_s(pid, group):
    """CPU seconds of a server, to the nanosecond (schedstat): a burst
    costs a few tens of milliseconds, a handful of /proc/PID/stat ticks.
    With `group`, its process group (nginx's master and workers)."""
    pids = lib.group_pids(pid) if group else [pid]
    total = 0.0
    for p in pids:
        try:
            total += lib.cpu_exact_s(p)
        except OSError:
            pass
    return total


def listen_overflows():
    """TcpExtListenOverflows of this network namespace (/proc/net/netstat)."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            d = dict(zip(head.split()[1:], vals.split()[1:]))
            return int(d.get("ListenOverflows", 0))
    return 0


def bigstate(ctx, results):
    """A 64 MiB State (the simulator's pending justifications make it big):
    ours serving it to 256 concurrent downloads; RSS before and peak."""
    simp, ups = sim.start(ctx.bin, ctx.logs, 3, tag="big", big_state=True)
    lp, port = ctx.start_leanpoint(ups, "big")
    path = "/lean/v0/states/finalized"
    lib.wait_for("the 64 MiB State served", lambda: lib.http_get(port, path, {"Range": "bytes=0-0"})[0] in (200, 206),
                 240, proc=lp, every=1.0)
    size = int(lib.http_get(port, path, {"Range": "bytes=0-0"})[1]
               .get("content-range", "/0").rsplit("/", 1)[1])
    before = lib.Sample(lp.pid)
    w = lib.Watch(lp.pid, every=0.1)
    r = burstlib.burst(port, path, 256, workers=2, timeout=120)
    w.stop()
    after = lib.Sample(lp.pid)
    out = {"state_bytes": size, "downloads": r, "rss_mib_before": round(before.rss_kib / 1024, 1),
           "peak_rss_mib": round(w.peak_rss / 1024, 1),
           "rss_mib_after": round(after.rss_kib / 1024, 1)}
    print(f"bigstate: {json.dumps(out)}", flush=True)
    for p in (lp, simp):
        lib.stop(p)
    results["bigstate"] = out


def _admin_url(log):
    with open(log) as f:
        for line in f:
            if line.startswith("sim-admin "):
                return line.split()[1]
    return None


def _slot_of(port):
    """The slot of the State ours serves: bytes 8..16 (a Range request)."""
    st, _, body = lib.http_get(port, "/lean/v0/states/finalized", {"Range": "bytes=8-15"},
                               timeout=2)
    if st == 206 and len(body) == 8:
        return int.from_bytes(body, "little")
    return None


def freshness_point(ctx, poll_ms, slot_ms, window):
    """The simulator finalizes slot s when its head reaches s+3, at a slot
    boundary; the harness finds the boundaries' phase on the monotonic
    clock from the admin endpoint, then reads the served State's slot every
    10 ms. Lag of checkpoint s: the first moment ours serves s or later,
    minus the moment s was finalized."""
    tag = f"fresh{poll_ms}"
    simp, ups = sim.start(ctx.bin, ctx.logs, 4, tag=tag,
                          extra=["--slot-ms", str(slot_ms), "--start-slot", "64"])
    admin = _admin_url(os.path.join(ctx.logs, f"sim-{tag}.log"))
    aport = int(admin.rsplit(":", 1)[1].split("/")[0])

    def head():
        return json.loads(lib.http_get(aport, "/admin/chain")[2])["head_slot"]

    # Phase: the instant the head moves, found to within a few ms.
    h0 = head()
    while head() == h0:
        time.sleep(0.002)
    t_edge, h_edge = time.monotonic(), h0 + 1

    def finalized_at(s):  # when slot s became finalized (head s+3)
        return t_edge + (s + 3 - h_edge) * slot_ms / 1000

    # Polls start when leanpoint does: at a random phase of the slot.
    time.sleep(random.uniform(0, slot_ms / 1000))
    # --slot-ms: ours refuses finalized slots past what the chain's clock
    # allows, and the default is 4 s.
    lp, port = ctx.start_leanpoint(ups, tag, poll_ms=poll_ms,
                                   extra=["--slot-ms", str(slot_ms)])
    lib.wait_for("a served State", lambda: _slot_of(port), 60, proc=lp)
    before = _freshness_buckets(ctx, port)
    seen = {}  # served slot -> first time seen
    end = time.monotonic() + window
    first = _slot_of(port)
    while time.monotonic() < end:
        s = _slot_of(port)
        if s is not None and s not in seen:
            seen[s] = time.monotonic()
        time.sleep(0.01)
    after = _freshness_buckets(ctx, port)
    lib.stop(lp)
    lib.stop(simp)
    served = sorted(seen)
    lags = []
    for s in range(first + 1, max(served) + 1):
        later = [seen[x] for x in served if x >= s]
        if later:
            lags.append(min(later) - finalized_at(s))
    lags.sort()
    metric = {"count": after["count"] - before["count"],
              "buckets": {k: v - before["buckets"].get(k, 0)
                          for k, v in after["buckets"].items()}}
    return {
        "poll_ms": poll_ms, "slot_ms": slot_ms, "window_s": window,
        "checkpoints": len(lags), "served_checkpoints": len([s for s in served if s > first]),
        "p50_ms": round(1000 * burstlib._q(lags, 0.5), 1) if lags else None,
        "p99_ms": round(1000 * burstlib._q(lags, 0.99), 1) if lags else None,
        "max_ms": round(1000 * lags[-1], 1) if lags else None,
        "min_ms": round(1000 * lags[0], 1) if lags else None,
        "metric_observations": metric.get("count"),
        "metric_p50_le_ms": benchreport.bucket_quantile(metric.get("buckets", {}), 0.5),
        "metric_p99_le_ms": benchreport.bucket_quantile(metric.get("buckets", {}), 0.99),
    }


def _freshness_buckets(ctx, port):
    s = ctx.scrape(port)
    buckets = {}
    count = 0
    for name, labels, v in s:
        if name == "leanpoint_checkpoint_freshness_seconds_bucket":
            buckets[labels["le"]] = v
        elif name == "leanpoint_checkpoint_freshness_seconds_count":
            count = v
    return {"buckets": buckets, "count": count}


def freshness(ctx, results):
    rows = []
    for poll_ms in (1000, 4000, 10000):
        # 2.3 s slots: no multiple of any poll interval, so the polls meet
        # the finalizations at every phase over a window. Every checkpoint
        # counts, served or skipped (longer polls skip some): its lag is
        # until ours serves it or a later one.
        window = {1000: 30, 4000: 40, 10000: 60}[poll_ms] // (2 if ctx.quick else 1)
        r = freshness_point(ctx, poll_ms, 2300, window)
        rows.append(r)
        print(f"freshness {poll_ms} ms: {json.dumps(r)}", flush=True)
    results["freshness"] = rows


def timewait(ctx, results):
    """scripts/scrape-cpu.sh (root: it makes a network namespace)."""
    if os.geteuid() != 0:
        results["timewait"] = {"skipped": "not root (ip netns needs it)"}
        return
    r = subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "scrape-cpu.sh")],
                       capture_output=True, text=True, timeout=600)
    with open(os.path.join(ctx.logs, "scrape-cpu.log"), "w") as f:
        f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        results["timewait"] = {"skipped": f"scrape-cpu.sh exited {r.returncode}"}
        return
    parts = r.stdout.split("--- ")[1:]
    rows = []
    for part in parts:
        title = part.splitlines()[0]
        if title.startswith("made"):
            continue
        row = {"case": title}
        for key, pat in (("tcp_info_us", r"tcp_info \(TCP_INFO[^:]*:\s+([\d.]+) us"),
                         ("sock_diag_us", r"sock_diag dump\):\s+([\d.]+) us"),
                         ("scrape_us", r"whole /metrics scrape[^\n]*?:\s+([\d.]+) us"),
                         ("tcp_line", r"(namespace \S+ sockstat TCP:[^\n]*)"),
                         ("root_line", r"(root namespace sockstat TCP:[^\n]*)")):
            m = re.search(pat, part)
            if m:
                row[key] = float(m.group(1)) if key.endswith("_us") else m.group(1)
        rows.append(row)
    results["timewait"] = {"rows": rows}
    print(f"timewait: {json.dumps(rows)}", flush=True)


SCENARIOS = {"versus": versus, "burst": burst, "bigstate": bigstate,
             "freshness": freshness, "timewait": timewait}

if __name__ == "__main__":
    sys.exit("run scripts/bench.py, which calls these")
