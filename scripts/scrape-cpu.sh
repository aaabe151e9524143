#!/usr/bin/env bash
# CPU cost of counting leanpoint's own TCP sockets, and of a whole /metrics
# scrape, with and without 30,000 TIME_WAIT sockets elsewhere on the host
# (in a network namespace made here, deleted on exit). The kernel's TCP hash
# table is global, so sockets in another namespace are what a sock_diag dump
# walks past; TCP_INFO on own fds must not see them. Needs root (ip netns).
# A measurement, not a test: numbers go to BENCHMARKS.md.
#
#   scripts/scrape-cpu.sh [TIME_WAITS]        (default 30000)
set -euo pipefail
cd "$(dirname "$0")/.."

tw=${1:-30000}
ns=lp-tw-$$
lp_pid=""
cleanup() {
  [ -n "$lp_pid" ] && kill "$lp_pid" 2>/dev/null && wait "$lp_pid" 2>/dev/null
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT

cargo build --release --locked --bin leanpoint >&2
cargo bench --locked --bench scrape_cpu --no-run >&2

# CPU seconds leanpoint spends on $1 scrapes of /metrics over one keep-alive
# connection, per scrape, in microseconds.
scrape_cpu() {
  local scrapes=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local dead
  dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local dir
  dir=$(mktemp -d)
  printf '{"upstreams":[{"name":"dead","url":"http://127.0.0.1:%s"}]}' "$dead" >"$dir/u.json"
  target/release/leanpoint --bind 127.0.0.1 --port "$port" --upstreams-config "$dir/u.json" \
    --poll-ms 60000 --stale-ms 120000 --log-level warn 2>"$dir/err" &
  lp_pid=$!
  python3 - "$lp_pid" "$port" "$scrapes" <<'PY'
import http.client, os, sys, time
pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
deadline = time.time() + 20
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/metrics"); c.getresponse().read(); break
    except OSError:
        if time.time() > deadline: sys.exit("leanpoint did not start")
        time.sleep(0.05)
def cpu():
    # The scheduler's nanosecond run time of every thread (/proc/PID/stat
    # counts 10 ms ticks: +-10 us per scrape over 1000 scrapes).
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9
for _ in range(50): c.request("GET", "/metrics"); c.getresponse().read()
before = cpu()
for _ in range(n): c.request("GET", "/metrics"); c.getresponse().read()
print(f"whole /metrics scrape (release leanpoint, 1 upstream): {(cpu() - before) / n * 1e6:9.1f} us CPU per scrape ({n} scrapes)")
PY
  kill "$lp_pid"; wait "$lp_pid" 2>/dev/null || true; lp_pid=""
  rm -rf "$dir"
}

measure() {
  echo "--- $1"
  [ -n "${2:-}" ] && echo "namespace $2 sockstat $(ip netns exec "$2" grep '^TCP:' /proc/net/sockstat)"
  grep '^TCP:' /proc/net/sockstat | sed 's/^/root namespace sockstat /'
  cargo bench --locked --bench scrape_cpu 2>/dev/null | grep -v '^$'
  scrape_cpu 2000
}

measure "no extra sockets"

ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" python3 - "$tw" <<'PY'
import socket, sys
n = int(sys.argv[1])
# A listening port per 20,000 connections: the ephemeral range holds
# ~28,000 ports per destination. The client closes first, so the client
# side is TIME_WAIT (for 60 s: the earliest may be gone when measuring,
# so the live count is printed).
srv = []
for _ in range(n // 20000 + 1):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4096); srv.append(s)
for i in range(n):
    l = srv[i % len(srv)]
    c = socket.create_connection(l.getsockname()); a, _ = l.accept()
    c.close(); a.close()
PY
echo "--- made $tw TIME_WAIT sockets in namespace $ns"
measure "with $tw TIME_WAITs made in another namespace" "$ns"
# The machine's other load drifts: the same case again brackets it.
ip netns del "$ns"
measure "no extra sockets again (namespace deleted)"
