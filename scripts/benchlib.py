"""Plumbing for scripts/bench.py: child processes that always stop, /proc
sampling, /metrics parsing, wrk runs. Standard library only.

Every child is started in its own session and killed (SIGTERM, then SIGKILL)
when the harness exits for any reason: normal end, exception, Ctrl-C,
SIGTERM, or the watchdog alarm. All traffic goes to 127.0.0.1.
"""

import atexit
import http.client
import os
import re
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_flag(name):
    """An on/off setting from the environment: unset, empty or 0 is off."""
    return os.environ.get(name, "0") not in ("", "0")


def machine_busy():
    """Busy core-seconds of the whole machine so far (/proc/stat: user to
    steal, less idle and iowait; guest time is already in user)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK
PAGE = os.sysconf("SC_PAGE_SIZE")

_children = []


def _stop(p, grace=5.0):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=grace)


def stop_all():
    while _children:
        _stop(_children.pop())


def _on_signal(signum, _frame):
    raise SystemExit(f"stopped by signal {signum}")


def install_guards(limit_s):
    """Stops every child at exit; the whole run is bounded by `limit_s`."""
    atexit.register(stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)

    def on_alarm(_s, _f):
        raise SystemExit(f"watchdog: the benchmark run exceeded {limit_s} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(limit_s))


def spawn(argv, log_path, env=None):
    """Starts `argv` in its own process group, output to `log_path`."""
    log = open(log_path, "wb")
    p = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    log.close()
    _children.append(p)
    return p


def stop(p):
    _stop(p)
    if p in _children:
        _children.remove(p)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, cond, timeout, proc=None, every=0.05):
    """Polls `cond` every `every` s until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last_err = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            v = cond()
            if v:
                return v
        except (OSError, http.client.HTTPException, ValueError) as e:
            last_err = e
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what} ({last_err})")


def http_get(port, path, headers=None, timeout=10.0):
    """GET http://127.0.0.1:port/path -> (status, headers dict, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the comm: state is [0], so stat field N is [N - 3].
        return f.read().rsplit(")", 1)[1].split()


def group_pids(pgid):
    """Every process in process group `pgid` (nginx's master and workers)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(_stat(d)[2]) == pgid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cpu_exact_s(pid):
    """CPU seconds of every thread of `pid` from /proc/PID/task/*/schedstat
    (the scheduler's nanosecond run time), for small deltas that the 10 ms
    ticks of /proc/PID/stat cannot resolve. Threads that exited are not
    counted: take deltas over processes whose threads live on."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


class Sample:
    """One reading of a process from /proc. With `group`, CPU and RSS are
    summed over its process group (the harness starts each child as the
    leader of its own group)."""

    def __init__(self, pid, group=False):
        self.t = time.monotonic()
        fields = _stat(pid)
        self.cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
        self.threads = int(fields[17])
        status = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                status[k] = v.strip()
        self.rss_kib = int(status.get("VmRSS", "0 kB").split()[0])
        self.hwm_kib = int(status.get("VmHWM", "0 kB").split()[0])
        if group:
            for other in group_pids(pid):
                if other == pid:
                    continue
                try:
                    f = _stat(other)
                    self.cpu_s += (int(f[11]) + int(f[12])) / CLK_TCK
                    self.rss_kib += int(f[21]) * PAGE // 1024
                except (OSError, IndexError, ValueError):
                    pass
        fds = os.listdir(f"/proc/{pid}/fd")
        self.fds = len(fds)
        self.sockets = 0
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    self.sockets += 1
            except OSError:
                pass


class Watch:
    """Samples a process every `every` s in a background thread: peaks of
    RSS, fds and sockets over a window."""

    def __init__(self, pid, every=0.5, group=False):
        import threading

        self.pid = pid
        self.group = group
        self.every = every
        self.peak_rss = self.peak_fds = self.peak_sockets = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                s = Sample(self.pid, self.group)
            except OSError:
                return
            self.peak_rss = max(self.peak_rss, s.rss_kib)
            self.peak_fds = max(self.peak_fds, s.fds)
            self.peak_sockets = max(self.peak_sockets, s.sockets)
            self.samples += 1
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._t.join(timeout=5)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text -> list of (name, labels dict, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(3) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(4))))
        except ValueError:
            pass
    return out


def metric_sum(samples, name, pred=lambda labels: True):
    return sum(v for n, l, v in samples if n == name and pred(l))


def tcp_bytes(pid):
    """Bytes received and acked by the peer on every TCP socket of `pid`,
    keyed by (local, peer). From `ss -tin` (tcp_info); /proc/PID/io rchar
    does not count recv(), which is what tokio reads sockets with."""
    out = subprocess.run(
        ["ss", "-tinpH"], capture_output=True, text=True, timeout=30
    ).stdout.splitlines()
    tag = f"pid={pid},"
    res = {}
    key = None
    for line in out:
        if not line[:1].isspace():
            cols = line.split()
            key = (cols[3], cols[4]) if tag in line and len(cols) > 4 else None
            continue
        if key is None:
            continue
        rx = re.search(r"bytes_received:(\d+)", line)
        tx = re.search(r"bytes_acked:(\d+)", line)
        res[key] = (int(rx.group(1)) if rx else 0, int(tx.group(1)) if tx else 0)
        key = None
    return res


def tcp_delta(before, after):
    """Bytes moved between two `tcp_bytes` readings (new sockets count whole)."""
    rx = tx = 0
    for k, (r, t) in after.items():
        r0, t0 = before.get(k, (0, 0))
        rx += max(0, r - r0)
        tx += max(0, t - t0)
    return rx, tx


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def run_wrk(url, conns, threads, duration_s, headers=(), timeout_s=10):
    """Runs wrk for a bounded time and parses its --latency output."""
    argv = ["wrk", f"-c{conns}", f"-t{threads}", f"-d{duration_s}s",
            f"--timeout={timeout_s}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=duration_s + timeout_s + 30)
    text = r.stdout
    res = {"raw": text, "conns": conns, "threads": threads, "duration_s": duration_s}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        res[f"p{pct}_ms"] = _ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", text)
    if m:
        res["requests"] = int(m.group(1))
        scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
        res["bytes_read"] = float(m.group(4)) * scale.get(m.group(5), 1)
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def machine():
    def first(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    mem_kib = int(first("/proc/meminfo", "MemTotal").split()[0])
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "memory_gib": round(mem_kib / 1048576, 1),
        "kernel": os.uname().release,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "rustc": rustc,
        "commit": commit + ("-dirty" if dirty else ""),
    }
