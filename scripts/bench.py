#!/usr/bin/env python3
"""leanpoint's benchmarks, run by scripts/bench.sh (which builds first).

Scenarios (all by default, or name some on the command line):
  polling     leanpoint polling 1, 100 and 1000 simulated upstreams
  scrape      GET /metrics with 1000 upstreams (runs inside polling-1000)
  checkpoint  GET /lean/v0/states/finalized of a multi-MiB State, vs nginx
  faults      100 upstreams, 25 of them accept-hang, vs 100 healthy
  micro       cargo bench --bench micro
  versus      ours vs the Zig leanpoint ($ZIG_LEANPOINT), 16 upstreams: CPU per
              poll (keep-alive and closing upstreams), /metrics req/s
  burst       256 and 1024 fresh connections fetching the State, vs nginx
  bigstate    a 64 MiB State under 256 concurrent downloads
  freshness   checkpoint lag at 1 s, 4 s, 10 s polls
  timewait    scripts/scrape-cpu.sh (root): scrape CPU with 30,000 TIME_WAITs
  (scripts/benchvs.py has the last five)

Writes bench-results/results.json and bench-results/summary.md. BENCH_QUICK=1
shortens every window (15 s polling instead of 60 s) for iteration. Each
process it starts runs in its own session and is killed when the harness
exits for any reason; all traffic is to 127.0.0.1; the run is bounded by a
watchdog.
"""

import gzip
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as lib  # noqa: E402
import benchreport  # noqa: E402
import benchsim as sim  # noqa: E402
import benchvs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench-results")
LOGS = os.path.join(OUT, "logs")
# LEANPOINT_BENCH_BIN: another build of ours (an A/B of a change).
BIN = os.environ.get("LEANPOINT_BENCH_BIN") or os.path.join(ROOT, "target", "release", "leanpoint")
QUICK = lib.env_flag("BENCH_QUICK")

# Every load at most 20 s, so the whole run stays near 15 minutes.
POLL_WINDOW = 10 if QUICK else 20
SCRAPE_WINDOW = 5 if QUICK else 15
SERVE_WINDOW = 5 if QUICK else 15
FAULT_WINDOW = 10 if QUICK else 20
POLL_MS = 1000


def start_leanpoint(upstreams, tag, extra=(), poll_ms=POLL_MS):
    port = lib.free_port()
    argv = [BIN, "--bind", "127.0.0.1", "--port", str(port),
            "--upstreams-config", upstreams, "--poll-ms", str(poll_ms),
            "--log-level", "warn", *extra]
    p = lib.spawn(argv, os.path.join(LOGS, f"leanpoint-{tag}.log"))
    lib.wait_for("leanpoint /metrics", lambda: lib.http_get(port, "/metrics")[0] == 200,
                 30, proc=p)
    return p, port


# What Prometheus sends: OpenMetrics, gzip. The harness's own scrapes look
# like Prometheus's so they cost leanpoint what a real scrape would.
PROMETHEUS = {"Accept": "application/openmetrics-text; version=1.0.0",
              "Accept-Encoding": "gzip"}


def scrape(port):
    _, hdrs, body = lib.http_get(port, "/metrics", PROMETHEUS, timeout=30)
    if hdrs.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return lib.parse_metrics(body.decode())


def polls_total(port):
    return lib.metric_sum(scrape(port), "leanpoint_upstream_polls_total")


def steady(port, n, proc):
    """Waits until every upstream has been polled twice (connections made,
    first agreement reached), so the window measures steady polling."""
    lib.wait_for(f"{n} upstreams polled twice", lambda: polls_total(port) >= 2 * n, 60,
                 proc=proc, every=0.5)
    time.sleep(2)


def measure_window(lp, simp, port, window, extra_watch=None):
    """CPU, memory, fds and bytes over `window` seconds of steady polling."""
    w = lib.Watch(lp.pid)
    a_lp, a_sim, a_busy = lib.Sample(lp.pid), lib.Sample(simp.pid), lib.machine_busy()
    a_polls, a_tcp = polls_total(port), lib.tcp_bytes(lp.pid)
    a_extra = extra_watch() if extra_watch else None
    time.sleep(window)
    b_extra = extra_watch() if extra_watch else None
    b_polls, b_tcp = polls_total(port), lib.tcp_bytes(lp.pid)
    b_lp, b_sim, b_busy = lib.Sample(lp.pid), lib.Sample(simp.pid), lib.machine_busy()
    w.stop()
    wall = b_lp.t - a_lp.t
    polls = b_polls - a_polls
    cpu = b_lp.cpu_s - a_lp.cpu_s
    sim_cpu = b_sim.cpu_s - a_sim.cpu_s
    rx, tx = lib.tcp_delta(a_tcp, b_tcp)
    return {
        "window_s": round(wall, 2),
        "polls": int(polls),
        "polls_per_s": round(polls / wall, 1),
        "cpu_s": round(cpu, 3),
        "cpu_pct_of_core": round(100 * cpu / wall, 2),
        "cpu_s_per_1000_polls": round(1000 * cpu / polls, 4) if polls else None,
        "sim_cpu_pct_of_core": round(100 * sim_cpu / wall, 2),
        "others_cpu_pct_of_core": round(100 * ((b_busy - a_busy) - cpu - sim_cpu) / wall, 1),
        "rss_mib": round(b_lp.rss_kib / 1024, 1),
        "peak_rss_mib": round(max(w.peak_rss, b_lp.rss_kib) / 1024, 1),
        "hwm_mib": round(b_lp.hwm_kib / 1024, 1),
        "fds": b_lp.fds,
        "peak_fds": max(w.peak_fds, b_lp.fds),
        "sockets": b_lp.sockets,
        "threads": b_lp.threads,
        "bytes_in_per_poll": round(rx / polls) if polls else None,
        "bytes_out_per_poll": round(tx / polls) if polls else None,
        "extra": (a_extra, b_extra),
        "_cpu_rate": cpu / wall,
    }


def polling_point(n, results, with_scrape=False):
    simp, upstreams = sim.start(BIN, LOGS, n, tag=f"poll{n}")
    lp, port = start_leanpoint(upstreams, f"poll{n}")
    steady(port, n, lp)
    m = measure_window(lp, simp, port, POLL_WINDOW)
    m.pop("extra")
    m["upstreams"] = n
    results.setdefault("polling", []).append(m)
    print(f"polling {n}: {json.dumps(m)}", flush=True)
    if with_scrape:
        results["scrape"] = scrape_bench(lp, port, m["_cpu_rate"])
    lib.stop(lp)
    lib.stop(simp)


def scrape_bench(lp, port, baseline_cpu_rate):
    """GET /metrics at 1000 upstreams: size, latency, CPU per scrape. One
    connection, back to back, so each scrape's CPU is leanpoint's; the
    polling CPU measured just before is subtracted."""
    out = {"upstreams": 1000}
    _, _, plain = lib.http_get(port, "/metrics", timeout=30)
    _, hdrs, gz = lib.http_get(port, "/metrics", {"Accept-Encoding": "gzip"}, timeout=30)
    _, omh, om = lib.http_get(port, "/metrics", PROMETHEUS, timeout=30)
    out["body_bytes"] = len(plain)
    out["gzip_bytes"] = len(gz) if hdrs.get("content-encoding") == "gzip" else None
    out["openmetrics_gzip_bytes"] = len(om) if omh.get("content-encoding") == "gzip" else None
    out["series"] = sum(1 for line in plain.splitlines() if line and not line.startswith(b"#"))
    variants = (
        ("text", ()),
        ("text+gzip", ("Accept-Encoding: gzip",)),
        ("openmetrics+gzip", tuple(f"{k}: {v}" for k, v in PROMETHEUS.items())),
    )
    for label, headers in variants:
        a = lib.Sample(lp.pid)
        r = lib.run_wrk(f"http://127.0.0.1:{port}/metrics", 1, 1, SCRAPE_WINDOW, headers)
        b = lib.Sample(lp.pid)
        n = r.get("requests") or 0
        cpu = (b.cpu_s - a.cpu_s) - baseline_cpu_rate * (b.t - a.t)
        r["cpu_ms_per_scrape"] = round(1000 * cpu / n, 2) if n else None
        r["rss_mib_after"] = round(b.rss_kib / 1024, 1)
        out[label] = {k: v for k, v in r.items() if k != "raw"}
        print(f"scrape {label}: {json.dumps(out[label])}", flush=True)
    return out


def nginx_serving(path):
    """Starts nginx serving `path` as a static file: (process, port, URL path)."""
    tmp = os.path.join(OUT, "nginx")
    os.makedirs(os.path.join(tmp, "logs"), exist_ok=True)
    port = lib.free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {os.path.dirname(path)};
  }}
}}
""")
    p = lib.spawn(["nginx", "-c", conf, "-p", tmp], os.path.join(LOGS, "nginx.log"))
    name = os.path.basename(path)
    lib.wait_for("nginx", lambda: lib.http_get(port, f"/{name}")[0] == 200, 20, proc=p)
    return p, port, f"/{name}"


def checkpoint_bench(results):
    """Throughput and p99 of the finalized State, leanpoint vs nginx."""
    simp, upstreams = sim.start(BIN, LOGS, 3, tag="state", large_state=True)
    lp, port = start_leanpoint(upstreams, "state")
    path = "/lean/v0/states/finalized"
    lib.wait_for("a served State", lambda: lib.http_get(port, path)[0] == 200, 90, proc=lp)
    _, _, body = lib.http_get(port, path, timeout=30)
    state_file = os.path.join(OUT, "finalized_state.ssz")
    with open(state_file, "wb") as f:
        f.write(body)
    ng, ng_port, ng_path = nginx_serving(state_file)
    out = {"state_bytes": len(body), "runs": []}
    for conns in (32, 256):
        for server, p, url in (
            ("leanpoint", lp, f"http://127.0.0.1:{port}{path}"),
            ("nginx", ng, f"http://127.0.0.1:{ng_port}{ng_path}"),
        ):
            group = server == "nginx"  # master + workers
            w = lib.Watch(p.pid, every=0.2, group=group)
            a = lib.Sample(p.pid, group)
            r = lib.run_wrk(url, conns, 2, SERVE_WINDOW)
            b = lib.Sample(p.pid, group)
            w.stop()
            r.pop("raw")
            r.update(server=server, rss_mib_before=round(a.rss_kib / 1024, 1),
                     peak_rss_mib=round(max(w.peak_rss, b.rss_kib) / 1024, 1),
                     cpu_pct_of_core=round(100 * (b.cpu_s - a.cpu_s) / (b.t - a.t), 1),
                     mib_per_s=round((r.get("bytes_read") or 0) / SERVE_WINDOW / 1048576, 1))
            out["runs"].append(r)
            print(f"checkpoint {server} c={conns}: {json.dumps(r)}", flush=True)
    results["checkpoint"] = out
    for p in (ng, lp, simp):
        lib.stop(p)


def fault_point(hung, results):
    n = 100
    simp, upstreams = sim.start(BIN, LOGS, n, tag=f"faults{hung}", hung=hung)
    lp, port = start_leanpoint(upstreams, f"faults{hung}")
    healthy = set(sim.names(upstreams)[: n - hung])
    lib.wait_for("healthy upstreams polled twice",
                 lambda: lib.metric_sum(scrape(port), "leanpoint_upstream_polls_total",
                                        lambda l: l.get("upstream") in healthy)
                 >= 2 * len(healthy), 60, proc=lp)
    # A hung upstream's first poll ends at the total deadline (5 s default).
    time.sleep(7)

    def latency():
        s = scrape(port)
        def f(suffix):
            return lib.metric_sum(
                s, "leanpoint_upstream_request_duration_seconds" + suffix,
                lambda l: l.get("upstream") in healthy and l.get("endpoint") == "fork_choice")
        buckets = {}
        for name, l, v in s:
            if (name == "leanpoint_upstream_request_duration_seconds_bucket"
                    and l.get("upstream") in healthy and l.get("endpoint") == "fork_choice"):
                buckets[float(l["le"])] = buckets.get(float(l["le"]), 0) + v
        hung_names = lambda l: l.get("upstream") not in healthy  # noqa: E731
        return (f("_sum"), f("_count"), buckets,
                lib.metric_sum(s, "leanpoint_upstream_timeouts_total", hung_names),
                lib.metric_sum(s, "leanpoint_upstream_polls_skipped_total", hung_names))

    m = measure_window(lp, simp, port, FAULT_WINDOW, extra_watch=latency)
    (s0, c0, b0, t0, k0), (s1, c1, b1, t1, k1) = m.pop("extra")
    m["hung_timeouts"] = int(t1 - t0)
    m["hung_ticks_skipped"] = int(k1 - k0)
    cnt = c1 - c0
    m["healthy_requests"] = int(cnt)
    m["healthy_mean_latency_ms"] = round(1000 * (s1 - s0) / cnt, 3) if cnt else None
    m["healthy_latency_buckets"] = {str(k): b1[k] - b0.get(k, 0) for k in sorted(b1)}
    m["healthy_p99_le_ms"] = benchreport.bucket_quantile(m["healthy_latency_buckets"], 0.99)
    m["healthy_p50_le_ms"] = benchreport.bucket_quantile(m["healthy_latency_buckets"], 0.50)
    m["upstreams"], m["hung"] = n, hung
    results.setdefault("faults", []).append(m)
    print(f"faults hung={hung}: {json.dumps(m)}", flush=True)
    lib.stop(lp)
    lib.stop(simp)


def micro(results):
    """cargo bench --bench micro (divan), its table parsed: one row per case
    (a case with arguments gives one row per argument)."""
    import subprocess

    r = subprocess.run(["cargo", "bench", "--locked", "--bench", "micro"], cwd=ROOT,
                       capture_output=True, text=True, check=True, timeout=900)
    with open(os.path.join(LOGS, "micro.txt"), "w") as f:
        f.write(r.stdout)
    results["micro"] = parse_divan(r.stdout)


_UNITS_NS = {"ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def parse_divan(text):
    rows, parent = [], None
    for line in text.splitlines():
        if "│" not in line or "fastest" in line:
            continue
        # Arguments are nested: "│  ├─ arg" under a case, "   ╰─ arg" under the last.
        depth = 1 if line.startswith(("│ ", "   ")) else 0
        if line.startswith("│ "):
            line = line[1:]
        cols = [c.strip() for c in line.split("│")]
        head = cols[0]
        parts = head.replace("├─", "").replace("╰─", "").replace("│", "").split()
        if not parts:
            continue
        name = parts[0]
        fastest = " ".join(parts[1:])
        if not fastest:  # a case whose rows are its arguments
            parent = name
            continue
        full = f"{parent}({name})" if depth == 1 and parent else name
        if depth == 0:
            parent = None

        def ns(t):
            v, _, u = t.partition(" ")
            try:
                return float(v) * _UNITS_NS.get(u, 1.0)
            except ValueError:
                return None

        rows.append({"name": full, "fastest_ns": ns(fastest), "slowest_ns": ns(cols[1]),
                     "median_ns": ns(cols[2]), "mean_ns": ns(cols[3]),
                     "samples": cols[4], "iters": cols[5] if len(cols) > 5 else ""})
    return rows


def main():
    want = sys.argv[1:] or ["versus", "polling", "scrape", "burst", "bigstate", "freshness",
                            "timewait", "checkpoint", "faults", "micro"]
    known = {"polling", "scrape", "checkpoint", "faults", "micro", *benchvs.SCENARIOS}
    if set(want) - known:
        sys.exit(f"unknown scenario(s) {sorted(set(want) - known)}; known: {sorted(known)}")
    ctx = benchvs.Ctx(BIN, OUT, LOGS, QUICK, start_leanpoint, scrape, polls_total,
                      nginx_serving)
    os.makedirs(LOGS, exist_ok=True)
    lib.install_guards(limit_s=900 if QUICK else 2400)
    results = {"machine": lib.machine(), "quick": QUICK, "poll_ms": POLL_MS,
               "windows_s": {"polling": POLL_WINDOW, "scrape": SCRAPE_WINDOW,
                             "checkpoint": SERVE_WINDOW, "faults": FAULT_WINDOW}}
    results["machine"]["loadavg_before"] = open("/proc/loadavg").read().split()[:3]
    if "versus" in want:
        benchvs.versus(ctx, results)
    if "polling" in want:
        for n in (1, 100, 1000):
            polling_point(n, results, with_scrape=(n == 1000 and "scrape" in want))
    elif "scrape" in want:
        polling_point(1000, results, with_scrape=True)
    for name in ("burst", "bigstate", "freshness", "timewait"):
        if name in want:
            benchvs.SCENARIOS[name](ctx, results)
    if "checkpoint" in want:
        checkpoint_bench(results)
    if "faults" in want:
        for hung in (0, 25):
            fault_point(hung, results)
    if "micro" in want:
        micro(results)
    results["machine"]["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    for p in results.get("polling", []):
        p.pop("_cpu_rate", None)
    for p in results.get("faults", []):
        p.pop("_cpu_rate", None)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = benchreport.markdown(results)
    with open(os.path.join(OUT, "summary.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
