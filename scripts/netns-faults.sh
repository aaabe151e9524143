#!/usr/bin/env bash
# Network faults on a real network, not loopback: leanpoint and a simulated
# devnet in two network namespaces of this script's own, joined by a veth
# pair (10.203.0.1 <-> 10.203.0.2, addresses that exist only there), with
# faults injected by nftables inside the nodes' namespace:
#   node 2: 30% random loss both ways (numgen random)
#   node 3: 100% drop mid-body (conntrack: after 200 kB of a reply)
#   node 4: 100% drop after the response headers (TCP payload not starting
#           with "HTTP/1.1": the State's body, written after its head)
#   node 5: a black hole: every packet to it dropped, SYNs included (a SYN
#           drop alone would spare the keep-alive connection already open)
# then a partition that heals twice: a drop rule removed, and the link set
# down and up. Checked all along: /livez answers, fds and memory bounded, at
# most one request in flight per upstream, no leanpoint socket waiting past
# its deadline; after each heal, agreement again on the nodes' justified
# checkpoint. Needs root, ip (iproute2) and nft (nftables); skips with the
# reason where network namespaces cannot be created. Cleans up on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/debug/leanpoint
ns_lp=lpf-lp-$$
ns_node=lpf-node-$$
veth_lp=lpf$$a
veth_node=lpf$$b
dir=$(mktemp -d)
pids=()
passed=0
failed=0

cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$ns_lp" 2>/dev/null || true
  ip netns del "$ns_node" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

skip() { echo "netns-faults: SKIPPED: $*" >&2; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
for tool in ip nft curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "netns-faults: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
if ! ip netns add "$ns_lp" 2>"$dir/netns.err"; then
  skip "cannot create a network namespace: $(head -c 200 "$dir/netns.err")"
fi
ip netns add "$ns_node"
ip link add "$veth_lp" netns "$ns_lp" type veth peer name "$veth_node" netns "$ns_node"
ip -n "$ns_lp" addr add 10.203.0.1/30 dev "$veth_lp"
ip -n "$ns_node" addr add 10.203.0.2/30 dev "$veth_node"
for ns in "$ns_lp" "$ns_node"; do ip -n "$ns" link set lo up; done
ip -n "$ns_lp" link set "$veth_lp" up
ip -n "$ns_node" link set "$veth_node" up

check() { # check NAME COMMAND...: one assertion, counted
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name" >&2
  else failed=$((failed + 1)); echo "FAIL $name" >&2; diagnose; fi
}
diagnose() { # what leanpoint believed when a check failed
  local path
  for path in /status /api/upstreams; do
    echo "  --- $path ($(lp_get "$path")) at $(date +%T.%N)" >&2
    head -c 6000 "$dir/body" >&2 || true
    echo >&2
  done
}
in_lp() { ip netns exec "$ns_lp" "$@"; }
# lp_get PATH: leanpoint's status code (000: no complete answer in 5 s); body in $dir/body
lp_get() {
  local code
  code=$(in_lp curl -s --max-time 5 -o "$dir/body" -w '%{http_code}' "http://127.0.0.1:5555$1" 2>/dev/null) || code=000
  echo "$code"
}
node_get() { ip netns exec "$ns_node" curl -s --max-time 2 "http://10.203.0.2:9100$1" 2>/dev/null || true; }
# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds, or fail the check
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@"; do
    if [ $SECONDS -ge $end ]; then return 1; fi
    sleep 0.2
  done
}

cargo build --locked --bin leanpoint >&2

# The devnet: six nodes on 10.203.0.2:9100-9105, a State of about 850 KB
# (4096 validators, the registry limit, and 12,000 slots of history) so a
# download is many segments long, a slot every 10 s so the
# two stalled State downloads (3 s each) end before finality moves on.
# `ip netns exec` may fork: each process writes its own pid (bash execs it).
ip netns exec "$ns_node" bash -c "echo \$\$ >$dir/sim.pid; exec $bin sim --nodes 6:healthy \
  --bind 10.203.0.2 --base-port 9100 --validators 4096 --start-slot 12000 --slot-ms 10000 --log-level warn" \
  >"$dir/sim.out" 2>"$dir/sim.err" &
wait_for 10 "sim pid" test -s "$dir/sim.pid"
pids+=("$(cat "$dir/sim.pid")")
wait_for 30 "sim ready" grep -q '^sim-ready' "$dir/sim.out" || { cat "$dir/sim.err" >&2; exit 1; }

# The stalling nodes first: the State cache asks supporters in this order,
# so every new State is first asked of node 3 (mid-body) and node 4 (after
# the headers), and must come from node 0 after both deadlines.
printf '{"upstreams":[' >"$dir/upstreams.json"
first=1
for i in 3 4 0 1 2 5; do
  [ $first -eq 1 ] || printf ',' >>"$dir/upstreams.json"
  first=0
  printf '{"name":"node-%s","url":"http://10.203.0.2:910%s"}' $i $i >>"$dir/upstreams.json"
done
printf ']}\n' >>"$dir/upstreams.json"
# count:2 so nodes 0 and 1 alone may agree: whether the lossy node is counted
# is left to chance, the rest is not.
in_lp bash -c "echo \$\$ >$dir/lp.pid; ulimit -n 256; exec $bin --bind 127.0.0.1 --port 5555 --upstreams-config $dir/upstreams.json \
  --poll-ms 500 --timeout-ms 1500 --connect-timeout-ms 500 --stale-ms 6000 --agreement count:2 \
  --log-level warn" 2>"$dir/lp.err" &
wait_for 10 "leanpoint pid" test -s "$dir/lp.pid"
lp_pid=$(cat "$dir/lp.pid")
pids+=("$lp_pid")
ready() { [ "$(lp_get /readyz)" = 200 ]; }
check "ready before faults" wait_for 40 ready ready

# Limits: fds are upstreams + a few listener/inbound + the runtime's; memory
# is the State (served and one being fetched) plus buffers.
FD_MAX=48
RSS_MAX_KB=$((200 * 1024))
# No leanpoint socket may go longer without receiving than the longest
# deadline (a State download: min(4 x 1500, 6000 / 2) = 3000 ms) plus one
# poll interval and slack; a SYN-SENT one no longer than the connect
# timeout (500 ms) plus slack.
LASTRCV_MAX_MS=5500
SYN_SENT_MAX_S=3
declare -A syn_seen=()
sample_bad=0
seen_sockets=0 # samples that saw leanpoint sockets with a lastrcv (the check sees something)
seen_syn_sent=0 # samples that saw a SYN-SENT socket (the black hole is real)
sample() { # one round of the always-true checks; prints why on failure
  local code fds rss bad=0
  code=$(lp_get /livez)
  [ "$code" = 200 ] || { echo "  /livez answered $code" >&2; bad=1; }
  fds=$(ls "/proc/$lp_pid/fd" | wc -l)
  [ "$fds" -le $FD_MAX ] || { echo "  $fds fds > $FD_MAX" >&2; bad=1; }
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$lp_pid/status")
  [ "$rss" -le $RSS_MAX_KB ] || { echo "  RSS ${rss} kB > $RSS_MAX_KB kB" >&2; bad=1; }
  code=$(lp_get /metrics)
  if [ "$code" = 200 ]; then
    local inflight
    inflight=$(awk '/^leanpoint_upstream_in_flight_requests\{/ && $2 > 1 {print}' "$dir/body")
    [ -z "$inflight" ] || { echo "  in flight > 1: $inflight" >&2; bad=1; }
  else
    echo "  /metrics answered $code" >&2; bad=1
  fi
  # leanpoint's own sockets to the nodes, with their last-receive age.
  in_lp ss -tinpH "dst 10.203.0.2" >"$dir/ss" 2>/dev/null || true
  local stale
  stale=$(awk -v pid="pid=$lp_pid," -v max=$LASTRCV_MAX_MS '
    /^[A-Z]/ { mine = index($0, pid) > 0; st = $1; peer = $5; next }
    mine && st != "SYN-SENT" && match($0, /lastrcv:[0-9]+/) {
      ms = substr($0, RSTART + 8, RLENGTH - 8) + 0
      if (ms > max) print st, peer, "lastrcv", ms "ms"
    }' "$dir/ss")
  [ -z "$stale" ] || { echo "  socket past its deadline: $stale" >&2; bad=1; }
  grep -q "pid=$lp_pid," "$dir/ss" && grep -q 'lastrcv:' "$dir/ss" && seen_sockets=$((seen_sockets + 1))
  grep -q "^SYN-SENT.*pid=$lp_pid," "$dir/ss" && seen_syn_sent=$((seen_syn_sent + 1))
  local now=$SECONDS key
  declare -A still=()
  while read -r key; do
    [ -n "$key" ] || continue
    still[$key]=1
    [ -n "${syn_seen[$key]:-}" ] || syn_seen[$key]=$now
    if [ $((now - syn_seen[$key])) -gt $SYN_SENT_MAX_S ]; then
      echo "  SYN-SENT $key for $((now - syn_seen[$key])) s" >&2; bad=1
    fi
  done < <(awk -v pid="pid=$lp_pid," '$1 == "SYN-SENT" && index($0, pid) { print $4 "->" $5 }' "$dir/ss")
  for key in "${!syn_seen[@]}"; do [ -n "${still[$key]:-}" ] || unset "syn_seen[$key]"; done
  [ $bad -eq 0 ] || sample_bad=$((sample_bad + 1))
  return $bad
}
# watch SECONDS: sample every 0.5 s; fails if any sample failed
watch() {
  local end=$((SECONDS + $1)) before=$sample_bad
  while [ $SECONDS -lt $end ]; do sample || true; sleep 0.5; done
  [ $sample_bad -eq $before ]
}
# watch_until SECONDS COMMAND...: sample until COMMAND holds; fails on a bad
# sample or at the deadline
watch_until() {
  local end=$((SECONDS + $1)) before=$sample_bad; shift
  until "$@"; do
    sample || true
    [ $SECONDS -lt $end ] || return 1
    sleep 0.5
  done
  [ $sample_bad -eq $before ]
}
agrees_with_nodes() { # leanpoint's justified checkpoint is node 0's
  [ "$(lp_get /lean/v0/checkpoints/justified)" = 200 ] || return 1
  local mine theirs
  mine=$(tr -d ' \n' <"$dir/body")
  theirs=$(node_get /lean/v0/checkpoints/justified | tr -d ' \n')
  [ -n "$theirs" ] && [ "$mine" = "$theirs" ]
}
not_ready() { [ "$(lp_get /readyz)" = 503 ]; }
state_current() { # leanpoint serves, whole, the State node 0 serves now
  local want got
  want=$(ip netns exec "$ns_node" curl -s --max-time 5 http://10.203.0.2:9100/lean/v0/states/finalized | sha256sum)
  got=$(in_lp curl -s --max-time 5 -f http://127.0.0.1:5555/lean/v0/states/finalized | sha256sum)
  [ "$got" = "$want" ]
}
counter() { # counter SERIES-PREFIX: its value in the last /metrics body, 0 if absent
  awk -v s="$1" 'index($0, s) == 1 { v = $NF } END { print v + 0 }' "$dir/body"
}
faults_bit() { # each fault ended requests at their deadlines
  [ "$(lp_get /metrics)" = 200 ] || return 1
  local mid heads syn
  mid=$(counter 'leanpoint_upstream_timeouts_total{upstream="node-3",phase="total"}')
  heads=$(counter 'leanpoint_upstream_timeouts_total{upstream="node-4",phase="total"}')
  syn=$(counter 'leanpoint_upstream_timeouts_total{upstream="node-5",phase="connect"}')
  echo "  timeouts: node-3 total $mid, node-4 total $heads, node-5 connect $syn" >&2
  grep '^leanpoint_upstream_timeouts_total' "$dir/body" | grep -v ' 0$' >&2 || true
  awk -v a="$mid" -v b="$heads" -v c="$syn" 'BEGIN { exit !(a >= 1 && b >= 1 && c >= 1) }'
}

check "bounded before faults" watch 3

ip netns exec "$ns_node" nft -f - <<'NFT'
table inet lpfault {
  chain out {
    type filter hook output priority 0;
    tcp sport 9102 numgen random mod 100 < 30 drop
    tcp sport 9103 ct reply bytes > 200000 drop
    tcp sport 9104 @ih,0,64 != 0x485454502f312e31 meta length > 100 drop
  }
  chain in {
    type filter hook input priority 0;
    tcp dport 9102 numgen random mod 100 < 30 drop
    tcp dport 9105 drop
  }
}
NFT
echo "faults in place: loss (node 2), mid-body (3), after headers (4), black hole (5)" >&2
check "faults: listener answers, fds/memory/sockets bounded (20 s)" watch 20
check "faults: still agreeing with the nodes" watch_until 15 agrees_with_nodes
check "faults: serves the nodes' current State, whole" watch_until 40 state_current
check "faults: stalled downloads and SYNs ended at their deadlines" watch_until 45 faults_bit
check "faults: the socket checks saw leanpoint's sockets ($seen_sockets samples)" test "$seen_sockets" -gt 10
check "faults: SYN-SENT sockets seen and each gone by its deadline ($seen_syn_sent samples)" test "$seen_syn_sent" -gt 0
drops=$(ip netns exec "$ns_node" nft list table inet lpfault | grep -c 'drop' || true)
check "faults: the rules are in place ($drops)" test "$drops" -eq 5

# Partition 1: every packet from leanpoint dropped, then the rule removed.
ip netns exec "$ns_node" nft add table inet lppart
ip netns exec "$ns_node" nft add chain inet lppart in '{ type filter hook input priority -10; }'
ip netns exec "$ns_node" nft add rule inet lppart in ip saddr 10.203.0.1 drop
check "partition (rule): not ready once stale, bounded meanwhile" watch_until 20 not_ready
check "partition (rule): bounded while cut off (5 s)" watch 5
ip netns exec "$ns_node" nft delete table inet lppart
check "healed (rule removed): ready again" watch_until 30 ready
check "healed (rule removed): agrees with the nodes" watch_until 15 agrees_with_nodes

# Partition 2: the link down, then up.
ip -n "$ns_node" link set "$veth_node" down
check "partition (link down): not ready once stale, bounded meanwhile" watch_until 20 not_ready
ip -n "$ns_node" link set "$veth_node" up
check "healed (link up): ready again" watch_until 30 ready
check "healed (link up): agrees with the nodes" watch_until 15 agrees_with_nodes
check "healed: serves the nodes' current State, whole" watch_until 40 state_current
check "leanpoint still running" kill -0 "$lp_pid"

if [ $failed -gt 0 ]; then
  echo "--- leanpoint stderr (last lines)" >&2; tail -n 60 "$dir/lp.err" >&2
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
