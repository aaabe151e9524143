"""Turns bench-results/results.json into the Markdown of summary.md (the
tables copied into BENCHMARKS.md)."""

TARGETS = {
    "poll_cpu_pct": 10.0,
    "poll_rss_mib": 64.0,
    "scrape_p99_ms": 15.0,
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


def _row(*cells):
    """One Markdown table row of `cells`."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


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


def _ratio(a, b):
    return a / b if a is not None and b else None


def paired_ratio(ours, theirs, key):
    """Median over rounds of ours / theirs, each round's two bursts taken
    back to back: the host's drift from round to round (often more than the
    difference measured) cancels within a pair."""
    rs = sorted(a[key] / b[key] for a, b in zip(ours, theirs) if a.get(key) and b.get(key))
    if not rs:
        return None
    mid = len(rs) // 2
    return rs[mid] if len(rs) % 2 else (rs[mid - 1] + rs[mid]) / 2


def target_rows(res):
    """Every issue-13 target measured in this run: (target, ours, reference,
    ratio, goal, met)."""
    rows = []
    vs = res.get("versus") or {}
    mo, mz = vs.get("metrics_ours") or {}, vs.get("metrics_zig") or {}
    if mo:
        r = _ratio(mo.get("rps"), mz.get("rps"))
        rows.append(("/metrics req/s, 16 upstreams (wrk -t2 -c32)", _f(mo.get("rps"), "{:.0f}"),
                     f"Zig {_f(mz.get('rps'), '{:.0f}')}" if mz else vs.get("zig_skipped", "n/a"),
                     _f(r), ">= 2", _ok(r is not None and r >= 2)))
    for mode in ("keep-alive", "close"):
        p = vs.get(f"poll_{mode}")
        if p:
            r = p.get("ratio_ours_to_zig")
            rows.append((f"CPU per poll, 16 {mode} upstreams", f"{_f(p['ours_us_per_poll'], '{:.0f}')} µs",
                         f"Zig {_f(p.get('zig_us_per_poll'), '{:.0f}')} µs", _f(r), "<= 1",
                         _ok(r is not None and r <= 1)))
    for p in res.get("polling", []):
        if p["upstreams"] == 1000 and p.get("cpu_s_per_1000_polls"):
            us = p["cpu_s_per_1000_polls"] * 1000
            rows.append(("CPU per poll, 1000 keep-alive upstreams", f"{us:.0f} µs", "", "",
                         "< 40 µs", _ok(us < 40)))
    sc = res.get("scrape")
    if sc:
        for label in ("openmetrics+gzip", "text", "text+gzip"):
            r = sc.get(label)
            if r:
                rows.append((f"/metrics p99, 1000 upstreams ({label})", f"{_f(r['p99_ms'])} ms",
                             "", "", "< 15 ms", _ok((r["p99_ms"] or 1e9) < 15)))
    tw = (res.get("timewait") or {}).get("rows") or []
    if len(tw) >= 2 and all(r.get("scrape_us") for r in tw):
        # "none" is the mean of the runs before and after the TIME_WAITs.
        nones = [r["scrape_us"] for r in tw if r["case"].startswith("no extra")]
        a, b = sum(nones) / len(nones), tw[1]["scrape_us"]
        rows.append(("CPU per scrape, +30,000 TIME_WAITs vs none (before/after)",
                     f"{b:.0f} vs {' / '.join(f'{x:.0f}' for x in nones)} µs", "",
                     _f(b / a), "flat (<= 1.2)", _ok(b / a <= 1.2)))
    for conns in (256, 1024):
        lp = [r for r in (res.get("burst") or {}).get("runs", [])
              if r["connections"] == conns and r["server"] == "leanpoint"]
        ng = [r for r in (res.get("burst") or {}).get("runs", [])
              if r["connections"] == conns and r["server"] == "nginx"]
        if lp and ng:
            lp, ng = lp[0], ng[0]
            r = _ratio(lp["p99_ms"], ng["p99_ms"])
            rows.append((f"burst of {conns} fresh connections: p99", f"{lp['p99_ms']:.0f} ms",
                         f"nginx {ng['p99_ms']:.0f} ms", _f(r), "<= 2", _ok(r is not None and r <= 2)))
            r = paired_ratio(lp["bursts"], ng["bursts"], "mib_per_s")
            means = _ratio(lp["mib_per_s"], ng["mib_per_s"])
            rows.append((f"burst of {conns}: throughput (median of paired bursts)",
                         f"{lp['mib_per_s']} MiB/s", f"nginx {ng['mib_per_s']} MiB/s",
                         f"{_f(r)} (means {_f(means)})", ">= 1",
                         _ok(r is not None and r >= 1)))
            r = paired_ratio(lp["bursts"], ng["bursts"], "server_cpu_ms")
            rows.append((f"burst of {conns}: server CPU per burst (median of paired bursts)",
                         f"{lp['cpu_ms_per_burst']} ms", f"nginx {ng['cpu_ms_per_burst']} ms",
                         _f(r), "(measured)", ""))
            if "machine_cpu_ms_per_burst" in lp:
                r = paired_ratio(lp["bursts"], ng["bursts"], "machine_cpu_ms")
                rows.append((f"burst of {conns}: machine CPU per burst, client's included "
                             "(median of paired bursts)",
                             f"{lp['machine_cpu_ms_per_burst']} ms",
                             f"nginx {ng['machine_cpu_ms_per_burst']} ms", _f(r), "(measured)", ""))
            rows.append((f"burst of {conns}: connections not served", str(lp["failed"]),
                         f"nginx {ng['failed']}", "", "0", _ok(lp["failed"] == 0)))
    big = res.get("bigstate")
    if big:
        grow = big["peak_rss_mib"] - big["rss_mib_before"]
        rows.append((f"{big['state_bytes'] / 1048576:.1f} MiB State, 256 concurrent downloads: RSS",
                     f"{big['rss_mib_before']} → {big['peak_rss_mib']} MiB", "", "",
                     "flat (< +16 MiB)", _ok(grow < 16)))
    for m in res.get("micro", []):
        if m["name"] == "verify_pair_64_mib":
            rows.append(("verify_pair, 64 MiB State (micro, median)",
                         f"{m['median_ns'] / 1e6:.0f} ms", "", "", "(measured)", ""))
    for f in res.get("freshness", []):
        download = f.get("metric_p99_le_ms") or 0
        goal = f["poll_ms"] + download
        rows.append((f"freshness p99, {f['poll_ms'] / 1000:g} s polls (p50 {_f(f['p50_ms'], '{:.0f}')} ms, "
                     f"{f['checkpoints']} checkpoints)", f"{_f(f['p99_ms'], '{:.0f}')} ms", "", "",
                     f"<= {goal:.0f} ms", _ok(f["p99_ms"] is not None and f["p99_ms"] <= goal)))
    return rows


def targets(res):
    out = ["### Every target of issue 13 in this run", "",
           "| target | ours | reference | ratio | goal | met |", "|---|---:|---:|---:|---|---|"]
    for row in target_rows(res):
        out.append("| " + " | ".join(row) + " |")
    return out


def versus(v):
    out = [f"### Ours and the Zig leanpoint, {v['upstreams']} upstreams, 1 s polls, "
           f"{v['window_s']} s windows (both polling at once)", ""]
    if v.get("zig_skipped"):
        out += [f"Zig columns skipped: {v['zig_skipped']}", ""]
    out += ["| upstreams | ours polls | ours µs CPU per poll | Zig polls | Zig µs CPU per poll | "
            "ours / Zig | ours RSS MiB | Zig RSS MiB | others' CPU % |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode in ("keep-alive", "close"):
        p = v.get(f"poll_{mode}")
        if p:
            out.append(f"| {mode} | {p['ours_polls']} | {p['ours_us_per_poll']} | "
                       f"{p.get('zig_polls', 'n/a')} | {p.get('zig_us_per_poll', 'n/a')} | "
                       f"{p.get('ratio_ours_to_zig', 'n/a')} | {p['ours_rss_mib']} | "
                       f"{p.get('zig_rss_mib', 'n/a')} | "
                       f"{p['machine_busy_pct_except_ours_and_zig']} |")
    out += ["", "| /metrics | req/s | p50 ms | p99 ms | body bytes | errors |",
            "|---|---:|---:|---:|---:|---:|"]
    for who in ("ours", "zig"):
        r = v.get(f"metrics_{who}")
        if r:
            body = (r.get("bytes_read") or 0) / r["requests"] if r.get("requests") else 0
            out.append(f"| {who} | {_f(r['rps'], '{:.0f}')} | {_f(r['p50_ms'])} | "
                       f"{_f(r['p99_ms'])} | {body:.0f} | {r['non_2xx'] + r['socket_errors']} |")
    return out


def burst(b):
    out = [f"### Bursts of fresh connections fetching the State ({b['state_bytes']} bytes), "
           f"{b['rounds']} bursts each, the two servers' bursts interleaved (scripts/burst.py)"
           + (f"; servers on CPU {b['pinned']['server_cpu']}, the client on "
              f"{b['pinned']['client_cpus']}" if b.get("pinned") else ""), "",
           "| server | connections | p50 ms | p99 ms (worst burst) | MiB/s | server CPU ms per burst "
           "| machine CPU ms per burst | served | failed | listen overflows "
           "| RSS MiB before / peak |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in b["runs"]:
        out.append(_row(r["server"], r["connections"], r["p50_ms"], r["p99_ms"], r["mib_per_s"],
                        r.get("cpu_ms_per_burst", ""), r.get("machine_cpu_ms_per_burst", ""),
                        r["served"], r["failed"],
                        r["listen_overflows"],
                        f"{r['rss_mib_before']} / {r['peak_rss_mib']}"))
    return out


def freshness(rows):
    out = ["### Freshness: the simulator's finalization to ours serving it (or a later one)", "",
           "| poll | slot | checkpoints | served | p50 ms | p99 ms | max ms | metric "
           "(majority → served) p50 / p99 bucket ms |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for f in rows:
        whole = "{:.0f}"
        out.append(_row(f"{f['poll_ms']} ms", f"{f['slot_ms']} ms", f["checkpoints"],
                        f["served_checkpoints"], _f(f["p50_ms"], whole), _f(f["p99_ms"], whole),
                        _f(f["max_ms"], whole),
                        f"{_f(f['metric_p50_le_ms'], '{:g}')} / {_f(f['metric_p99_le_ms'], '{:g}')}"))
    return out


def timewait(t):
    if t.get("skipped"):
        return ["### Scrape CPU against TIME_WAITs", "", f"Skipped: {t['skipped']}"]
    out = ["### Scrape CPU against TIME_WAITs (scripts/scrape-cpu.sh)", "",
           "| case | TCP_INFO µs per count | sock_diag µs per count | whole scrape µs CPU | sockets |",
           "|---|---:|---:|---:|---|"]
    for r in t["rows"]:
        out.append(_row(r["case"], _f(r.get("tcp_info_us"), "{:.1f}"),
                        _f(r.get("sock_diag_us"), "{:.0f}"), _f(r.get("scrape_us"), "{:.0f}"),
                        f"{r.get('root_line', '')} {r.get('tcp_line', '')}"))
    return out


def markdown(res):
    w = res["windows_s"]
    out = ["## Results" + (" (quick mode)" if res.get("quick") else ""), "",
           machine(res["machine"]), ""]
    out += targets(res) + [""]
    if res.get("versus"):
        out += versus(res["versus"]) + [""]
    if res.get("polling"):
        out += polling(res["polling"], res["poll_ms"], w["polling"]) + [""]
    if res.get("scrape"):
        out += scrape(res["scrape"], w["scrape"]) + [""]
    if res.get("burst"):
        out += burst(res["burst"]) + [""]
    if res.get("bigstate"):
        bs = res["bigstate"]
        d = bs["downloads"]
        out += [f"### {bs['state_bytes']} bytes State, 256 concurrent downloads", "",
                f"RSS {bs['rss_mib_before']} MiB before, {bs['peak_rss_mib']} MiB peak, "
                f"{bs['rss_mib_after']} MiB after; {d['served']} served, {d['failed']} failed, "
                f"p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, {d['mib_per_s']} MiB/s.", ""]
    if res.get("freshness"):
        out += freshness(res["freshness"]) + [""]
    if res.get("timewait"):
        out += timewait(res["timewait"]) + [""]
    if res.get("checkpoint"):
        out += checkpoint(res["checkpoint"], w["checkpoint"]) + [""]
    if res.get("faults"):
        out += faults(res["faults"], w["faults"]) + [""]
    if res.get("micro"):
        out += micro(res["micro"]) + [""]
    return "\n".join(out)
