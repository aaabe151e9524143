"""Turns bench-results/results.json into the Markdown of summary.md (the
tables copied into BENCHMARKS.md)."""

TARGETS = {
    "poll_cpu_pct": 10.0,
    "poll_rss_mib": 64.0,
    "scrape_p99_ms": 50.0,
    "serve_ratio": 0.7,
}


def bucket_quantile(buckets, q):
    """Upper bound (ms) of the histogram bucket holding quantile `q`, from
    cumulative Prometheus buckets {le: count}; None without observations."""
    items = sorted((float(k), v) for k, v in buckets.items())
    if not items or items[-1][1] <= 0:
        return None
    rank = q * items[-1][1]
    for le, v in items:
        if v >= rank:
            return le * 1000 if le != float("inf") else None
    return None


def _f(v, fmt="{:.2f}"):
    return "n/a" if v is None else fmt.format(v)


def _ok(good):
    return "yes" if good else "**no**"


def machine(m):
    return "\n".join([
        f"- Date (UTC): {m['date_utc']}; commit {m['commit']}; {m['rustc']}",
        f"- CPU: {m['cpu_model']}, nproc {m['nproc']}; memory {m['memory_gib']} GiB; "
        f"kernel {m['kernel']}",
        f"- Load average before / after: {' '.join(m.get('loadavg_before', []))} / "
        f"{' '.join(m.get('loadavg_after', []))}",
    ])


def polling(rows, poll_ms, window):
    out = [f"### Polling at scale (--poll-ms {poll_ms}, {window} s window per point)", "",
           "| upstreams | polls/s | leanpoint CPU (% of a core) | CPU s per 1000 polls | "
           "RSS MiB (peak) | VmHWM MiB | fds (peak) | sockets | threads | bytes in / out "
           "per poll | simulator CPU % | others' CPU % |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(
            f"| {r['upstreams']} | {r['polls_per_s']} | {r['cpu_pct_of_core']} | "
            f"{_f(r['cpu_s_per_1000_polls'], '{:.4f}')} | {r['rss_mib']} ({r['peak_rss_mib']}) | "
            f"{r['hwm_mib']} | {r['fds']} ({r['peak_fds']}) | {r['sockets']} | {r['threads']} | "
            f"{r['bytes_in_per_poll']} / {r['bytes_out_per_poll']} | "
            f"{r['sim_cpu_pct_of_core']} | {r['others_cpu_pct_of_core']} |")
    big = [r for r in rows if r["upstreams"] == 1000]
    if big:
        r = big[0]
        out += ["", f"Targets at 1000 upstreams: CPU < {TARGETS['poll_cpu_pct']:.0f}% of a core: "
                f"{_ok(r['cpu_pct_of_core'] < TARGETS['poll_cpu_pct'])}; "
                f"RSS < {TARGETS['poll_rss_mib']:.0f} MiB: "
                f"{_ok(r['peak_rss_mib'] < TARGETS['poll_rss_mib'])}; "
                f"fds {r['peak_fds']} for 1000 upstreams "
                f"({r['peak_fds'] - 1000:+d} beyond one per upstream)."]
    return out


def scrape(s, window):
    out = [f"### Scrape cost: GET /metrics with {s['upstreams']} upstreams "
           f"(wrk -c1 -t1, {window} s, back to back)", "",
           f"Body: {s['body_bytes']} bytes classic text ({s['series']} samples), "
           f"{_f(s['gzip_bytes'], '{}')} bytes gzip, "
           f"{_f(s.get('openmetrics_gzip_bytes'), '{}')} bytes OpenMetrics gzip (what "
           "Prometheus asks for).", "",
           "| format | scrapes/s | p50 ms | p90 ms | p99 ms | CPU ms per scrape | "
           "errors |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label in ("text", "text+gzip", "openmetrics+gzip"):
        r = s.get(label)
        if not r:
            continue
        out.append(f"| {label} | {_f(r['rps'])} | {_f(r['p50_ms'])} | {_f(r['p90_ms'])} | "
                   f"{_f(r['p99_ms'])} | {_f(r['cpu_ms_per_scrape'])} | "
                   f"{r['non_2xx'] + r['socket_errors']} |")
    p99 = max((s[k]["p99_ms"] or 0) for k in ("text", "text+gzip", "openmetrics+gzip")
              if k in s)
    out += ["", f"Target p99 < {TARGETS['scrape_p99_ms']:.0f} ms: "
            f"{_ok(p99 < TARGETS['scrape_p99_ms'])} (worst p99 {p99:.1f} ms)."]
    return out


def checkpoint(c, window):
    out = [f"### Checkpoint serving: GET /lean/v0/states/finalized, {c['state_bytes']} bytes "
           f"(wrk -t2, {window} s per run)", "",
           "| server | clients | req/s | MiB/s | p50 ms | p99 ms | CPU % of a core | "
           "RSS MiB before / peak | errors |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    by = {}
    for r in c["runs"]:
        by[(r["server"], r["conns"])] = r
        out.append(f"| {r['server']} | {r['conns']} | {_f(r['rps'])} | {r['mib_per_s']} | "
                   f"{_f(r['p50_ms'])} | {_f(r['p99_ms'])} | {r['cpu_pct_of_core']} | "
                   f"{r['rss_mib_before']} / {r['peak_rss_mib']} | "
                   f"{r['non_2xx'] + r['socket_errors']} |")
    out.append("")
    for conns in (32, 256):
        lp, ng = by.get(("leanpoint", conns)), by.get(("nginx", conns))
        if lp and ng and lp["rps"] and ng["rps"]:
            ratio = lp["rps"] / ng["rps"]
            out.append(f"- {conns} clients: leanpoint/nginx throughput {ratio:.2f} "
                       f"(target >= {TARGETS['serve_ratio']}: {_ok(ratio >= TARGETS['serve_ratio'])})")
    a, b = by.get(("leanpoint", 32)), by.get(("leanpoint", 256))
    if a and b:
        out.append(f"- leanpoint peak RSS at 32 clients {a['peak_rss_mib']} MiB, at 256 clients "
                   f"{b['peak_rss_mib']} MiB")
    return out


def faults(rows, window):
    out = [f"### Under faults: 100 upstreams, 25 accept-hang vs none ({window} s window)", "",
           "| hung | leanpoint CPU % | CPU s per 1000 polls | RSS MiB | fds (peak) | sockets | "
           "healthy fork_choice requests | healthy mean latency ms | healthy p50 / p99 bucket "
           "(ms, upper bound) | hung: timeouts / ticks skipped |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['hung']} | {r['cpu_pct_of_core']} | "
                   f"{_f(r['cpu_s_per_1000_polls'], '{:.4f}')} | {r['rss_mib']} | "
                   f"{r['fds']} ({r['peak_fds']}) | {r['sockets']} | {r['healthy_requests']} | "
                   f"{_f(r['healthy_mean_latency_ms'], '{:.3f}')} | "
                   f"{_f(r['healthy_p50_le_ms'], '{:g}')} / {_f(r['healthy_p99_le_ms'], '{:g}')} | "
                   f"{r['hung_timeouts']} / {r['hung_ticks_skipped']} |")
    return out


def micro(rows):
    out = ["### Micro-benchmarks (cargo bench --bench micro, divan)", "",
           "| case | fastest | median | mean | samples |", "|---|---:|---:|---:|---:|"]

    def h(ns):
        if ns is None:
            return "n/a"
        if ns >= 1e6:
            return f"{ns / 1e6:.2f} ms"
        if ns >= 1e3:
            return f"{ns / 1e3:.2f} µs"
        return f"{ns:.0f} ns"

    for r in rows:
        out.append(f"| {r['name']} | {h(r['fastest_ns'])} | {h(r['median_ns'])} | "
                   f"{h(r['mean_ns'])} | {r['samples']} |")
    return out


def markdown(res):
    w = res["windows_s"]
    out = ["## Results" + (" (quick mode)" if res.get("quick") else ""), "",
           machine(res["machine"]), ""]
    if res.get("polling"):
        out += polling(res["polling"], res["poll_ms"], w["polling"]) + [""]
    if res.get("scrape"):
        out += scrape(res["scrape"], w["scrape"]) + [""]
    if res.get("checkpoint"):
        out += checkpoint(res["checkpoint"], w["checkpoint"]) + [""]
    if res.get("faults"):
        out += faults(res["faults"], w["faults"]) + [""]
    if res.get("micro"):
        out += micro(res["micro"]) + [""]
    return "\n".join(out)
