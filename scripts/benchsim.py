"""Starts `leanpoint sim` for the benchmarks: N simulated lean nodes, each on
its own ephemeral port (as on a real devnet, one connection per upstream),
some of them hung, and the upstreams.json that points leanpoint at them."""

import json
import os

import benchlib as lib

# A long-running devnet's State: 32 bytes per slot of history plus 112 per
# validator (4096, the registry limit), about 3.5 MiB. The slot lasts an hour
# so the finalized State stays the same bytes for the whole serving benchmark
# (nginx serves a copy).
LARGE_STATE = ["--validators", "4096", "--start-slot", "100000", "--slot-ms", "3600000"]


# A 64 MiB State: 4096 validators and 123000 pending justification roots,
# 32 bytes and a vote bit per validator each (544 bytes), on a short history.
BIG_STATE = ["--validators", "4096", "--start-slot", "1000", "--slot-ms", "3600000",
             "--justification-roots", "123000"]


def start(binary, logs, n, tag, hung=0, large_state=False, big_state=False, extra=()):
    """Returns (process, upstreams.json path). Nodes 0..n-hung-1 are healthy,
    the last `hung` accept a connection, read the request and never answer."""
    upstreams = os.path.join(logs, f"upstreams-{tag}.json")
    if os.path.exists(upstreams):
        os.remove(upstreams)
    groups = f"{n - hung}:healthy" + (f",{hung}:accept-hang" if hung else "")
    argv = [binary, "sim", "--nodes", groups, "--write-upstreams", upstreams,
            "--log-level", "warn"]
    if large_state:
        argv += LARGE_STATE
    if big_state:
        argv += BIG_STATE
    argv += list(extra)
    p = lib.spawn(argv, os.path.join(logs, f"sim-{tag}.log"))

    def ready():
        with open(upstreams) as f:
            return len(json.load(f)["upstreams"]) == n

    lib.wait_for(f"the simulator's {upstreams}", ready, 240 if big_state else 60, proc=p)
    return p, upstreams


def names(upstreams):
    with open(upstreams) as f:
        return [u["name"] for u in json.load(f)["upstreams"]]
