"""Load test of the production server (``make loadtest``). Figures go in the README.

Starts ``ivig-cds serve`` (gunicorn, all workers) on a free loopback port with a temporary SQLite
feedback database, then sends realistic order-select calls: the six Synthea patients in turn, each
with the full prefetch narrowed as the discovery templates ask, and an IVIG draft order.

1. Rising concurrency (client threads, one keep-alive connection each); every level ends after a
   request count or a time limit, whichever comes first: requests, errors, req/s, p50 and p99.
2. Sustained load at one concurrency, sampling the RSS of every gunicorn worker, with the trend
   (last sample against first, and a least-squares slope).
3. Worker RSS before and after, then SIGTERM to the server.

Exit status 1 if any request failed (non-200 or exception), a worker was replaced, or the server
could not start. Only loopback traffic; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    HOST,
    free_port,
    narrow_bodies,
    percentile,
    rss_kb,
    server_command,
    stop,
    wait_ready,
    workers_rss,
)

SERVICE = "ivig-order-select"
HEADER = (
    f"{'concurrency':>11} {'requests':>8} {'errors':>6} {'req/s':>8} "
    f"{'p50 ms':>8} {'p99 ms':>8} {'time s':>7}"
)
INSTANCE = "LOADTEST-HOOK-INSTANCE"  # replaced by a fresh uuid in every request


def request_payloads(service: dict[str, Any]) -> list[str]:
    """An order-select body per Synthea record, with ``INSTANCE`` as its hookInstance."""
    return [json.dumps({**body, "hookInstance": INSTANCE}) for _, body in narrow_bodies(service)]


# --- the load ---


@dataclass
class Run:
    """One bounded run: ``concurrency`` threads until ``max_requests`` or ``limit_s``."""

    port: int
    payloads: list[str]
    concurrency: int
    max_requests: int
    limit_s: float
    timeout_s: float
    issued: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    elapsed: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _next(self) -> int | None:
        with self.lock:
            if self.issued >= self.max_requests or time.monotonic() >= self.started + self.limit_s:
                return None
            self.issued += 1
            return self.issued

    def _worker(self) -> None:
        conn: http.client.HTTPConnection | None = None
        path = f"/cds-services/{SERVICE}"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        while (n := self._next()) is not None:
            body = self.payloads[n % len(self.payloads)].replace(INSTANCE, str(uuid.uuid4()))
            began = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout_s)
                conn.request("POST", path, body=body.encode(), headers=headers)
                response = conn.getresponse()
                data = response.read()
                took = (time.perf_counter() - began) * 1000
                if response.status != 200:
                    error = f"HTTP {response.status}: {data[:200]!r}"
                elif "cards" not in json.loads(data):
                    error = f"no cards: {data[:200]!r}"
                else:
                    error = None
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                took = (time.perf_counter() - began) * 1000
                error = f"{type(exc).__name__}: {exc}"
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.latencies_ms.append(took)
                if error is not None:
                    self.errors.append(error)
        if conn is not None:
            conn.close()

    def start(self) -> list[threading.Thread]:
        self.started = time.monotonic()
        threads = [
            threading.Thread(target=self._worker, daemon=True) for _ in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        return threads

    def join(self, threads: list[threading.Thread]) -> None:
        # Each thread stops at the deadline once its current request ends (socket timeout).
        for thread in threads:
            thread.join(timeout=max(0.0, self.started + self.limit_s - time.monotonic()) + 5)
            if thread.is_alive():
                thread.join(timeout=self.timeout_s + 1)
        self.elapsed = time.monotonic() - self.started
        if any(t.is_alive() for t in threads):
            self.errors.append("client thread still running after the time limit")

    def line(self) -> str:
        n = len(self.latencies_ms)
        ordered = sorted(self.latencies_ms) or [float("nan")]
        return (
            f"{self.concurrency:>11} {n:>8} {len(self.errors):>6} "
            f"{n / self.elapsed if self.elapsed else 0:>8.1f} "
            f"{percentile(ordered, 50):>8.1f} {percentile(ordered, 99):>8.1f} "
            f"{self.elapsed:>7.1f}"
        )


# --- slow clients (issue 12) ---


class SlowClients:
    """``count`` connections that each send a request line, then one header byte a second, for
    ``limit_s``; a connection the server drops is opened again, so ``count`` stay held."""

    def __init__(self, port: int, count: int, limit_s: float) -> None:
        self.port, self.count, self.until = port, count, time.monotonic() + limit_s
        self.dropped = 0
        self.threads = [threading.Thread(target=self._hold, daemon=True) for _ in range(count)]

    def _hold(self) -> None:
        import socket

        while time.monotonic() < self.until:
            try:
                with socket.create_connection((HOST, self.port), timeout=5) as sock:
                    sock.sendall(b"POST /cds-services/x HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    while time.monotonic() < self.until:
                        time.sleep(1)
                        sock.sendall(b"a")
            except OSError:
                self.dropped += 1
                time.sleep(0.2)

    def __enter__(self) -> SlowClients:
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)  # all connected before the load starts
        return self

    def __exit__(self, *_: object) -> None:
        self.until = 0.0
        for thread in self.threads:
            thread.join(timeout=3)


def health_probe(port: int, until: float, worst: list[float], failures: list[str]) -> None:
    """GET /healthz every 0.5 s until ``until``: the slowest answer, and what failed."""
    while time.monotonic() < until:
        began = time.monotonic()
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status != 200:
                failures.append("healthz not 200")
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"healthz {type(exc).__name__}")
        worst.append(time.monotonic() - began)
        time.sleep(0.5)


def with_slow_clients(args: argparse.Namespace, port: int, payloads: list[str]) -> bool:
    """The same level without, then with, ``--slow-clients`` held open the whole time: no
    errors, p99 within 2x, /healthz under 1 s throughout."""
    level, count = args.sustained_concurrency, args.slow_clients
    print(f"\nSlow clients: concurrency {level}, without and with {count} slow connections")
    print(HEADER)
    runs = []
    for slow in (0, count):
        run = Run(port, payloads, level, args.requests, args.seconds, args.timeout)
        worst: list[float] = []
        failures: list[str] = []
        with SlowClients(port, slow, args.seconds + 10) as held:
            probe = threading.Thread(
                target=health_probe,
                args=(port, time.monotonic() + args.seconds, worst, failures),
                daemon=True,
            )
            probe.start()
            run.join(run.start())
            probe.join(timeout=args.seconds + 10)
        slowest = max(worst, default=0.0)
        print(f"{run.line()}   slow {slow}, dropped {held.dropped}, /healthz worst {slowest:.3f} s")
        if run.errors:
            errors_summary(run.errors)
        args.errors += len(run.errors) + len(failures)
        runs.append((percentile(sorted(run.latencies_ms), 99), max(worst, default=0.0)))
    (p99_without, _), (p99_with, health_worst) = runs
    ok = p99_with <= 2 * p99_without and health_worst < 1.0
    print(
        f"  p99 {p99_with:.1f} ms with, {p99_without:.1f} ms without "
        f"({p99_with / p99_without:.2f}x; limit 2x); /healthz worst {health_worst:.3f} s "
        f"(limit 1 s) -> {'PASS' if ok else 'FAIL'}"
    )
    return ok


def slope_kb_per_min(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KB) points, in KB per minute."""
    if len(points) < 2:
        return 0.0
    xs = [x for x, _ in points]
    ys = [float(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def show_rss(label: str, rss: dict[int, int]) -> None:
    cells = "  ".join(f"pid {pid} {mb(kb)} MB" for pid, kb in sorted(rss.items()))
    print(f"  {label:7} {cells}  (total {mb(sum(rss.values()))} MB)")


def errors_summary(errors: list[str]) -> None:
    counts: dict[str, int] = {}
    for error in errors:
        counts[error] = counts.get(error, 0) + 1
    for error, count in sorted(counts.items(), key=lambda kv: -kv[1])[:5]:
        print(f"    {count} x {error}")


def sustained(args: argparse.Namespace, port: int, payloads: list[str], master: int) -> bool:
    """Sustained load with RSS samples; True if no worker shows a growth trend."""
    run = Run(
        port,
        payloads,
        args.sustained_concurrency,
        args.sustained_max_requests,
        args.sustained_seconds,
        args.timeout,
    )
    print(
        f"\nSustained: concurrency {run.concurrency} for {run.limit_s:.0f} s, "
        f"worker RSS (MB) every {args.sample_every:.0f} s"
    )
    workers = sorted(workers_rss(master))
    heads = "  ".join(f"{'pid ' + str(p):>10}" for p in workers)
    print(f"  {'t (s)':>6} {'requests':>8}  {heads}")
    samples: dict[int, list[tuple[float, int]]] = {pid: [] for pid in workers}
    threads = run.start()
    ticks = int(run.limit_s // args.sample_every) + 1
    for tick in range(ticks):  # bounded: one sample per interval until the time limit
        target = run.started + tick * args.sample_every
        time.sleep(max(0.0, target - time.monotonic()))
        now = time.monotonic() - run.started
        rss = {pid: rss_kb(pid) for pid in workers}
        with run.lock:
            done = len(run.latencies_ms)
        for pid, kb in rss.items():
            if kb is not None:
                samples[pid].append((now, kb))
        print(f"  {now:>6.0f} {done:>8}  " + "  ".join(f"{mb(rss[p]):>10}" for p in workers))
    run.join(threads)
    print(f"\n{HEADER}")
    print(run.line())
    if run.errors:
        errors_summary(run.errors)
    args.errors += len(run.errors)

    steady = True
    warm = args.warmup_seconds
    print(f"\n  RSS trend per worker (samples after {warm:.0f} s of warm-up):")
    for pid in workers:
        points = [(t, kb) for t, kb in samples[pid] if t >= warm]
        if len(points) < 2:
            print(f"    pid {pid}: too few samples")
            continue
        first, last = points[0][1], points[-1][1]
        slope = slope_kb_per_min(points)
        span_min = (points[-1][0] - points[0][0]) / 60
        limit = args.growth_kb_per_min
        growing = slope > limit and last - first > limit * span_min
        steady = steady and not growing
        print(
            f"    pid {pid}: first {mb(first)} MB, last {mb(last)} MB "
            f"({last - first:+d} KB), slope {slope:+.0f} KB/min -> "
            f"{'GROWING' if growing else 'flat'}"
        )
    print(
        f"  Memory trend: {'no growth' if steady else 'GROWING'} "
        f"(growing: slope and last-first both over {args.growth_kb_per_min:.0f} KB/min)"
    )
    return steady


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--levels", default="1,4,8,16", help="client threads per level")
    parser.add_argument("--requests", type=int, default=300, help="per level, at most")
    parser.add_argument("--seconds", type=float, default=20, help="per level, at most")
    parser.add_argument("--sustained-concurrency", type=int, default=8)
    parser.add_argument("--sustained-seconds", type=float, default=60)
    parser.add_argument("--sustained-max-requests", type=int, default=100_000)
    parser.add_argument("--sample-every", type=float, default=5, help="RSS sample interval, s")
    parser.add_argument("--warmup-seconds", type=float, default=10, help="of the sustained phase")
    parser.add_argument("--growth-kb-per-min", type=float, default=1024)
    parser.add_argument("--warmup-requests", type=int, default=24, help="before the levels")
    parser.add_argument("--timeout", type=float, default=30, help="per request, s")
    parser.add_argument(
        "--slow-clients", type=int, default=50, help="held open in the slow-client phase"
    )
    args = parser.parse_args(argv)
    args.errors = 0
    levels = [int(x) for x in args.levels.split(",") if x.strip()]

    with tempfile.TemporaryDirectory(prefix="ivig-loadtest-") as tmp:
        port = free_port()
        env = {
            **os.environ,
            "IVIG_CDS_DATABASE_URL": f"sqlite:///{tmp}/feedback.sqlite3",
            "IVIG_CDS_LOG_LEVEL": "WARNING",
            "IVIG_CDS_AUTH": "off",
            # No recycling during the test: a recycled worker would hide a leak, and one that
            # is replaced anyway has crashed.
            "IVIG_CDS_MAX_REQUESTS": "0",
        }
        log_path = Path(tmp) / "server.log"
        cmd = [server_command(), "serve", "--host", HOST, "--port", str(port)]
        cmd += ["--workers", str(args.workers)]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        ok = False
        try:
            discovery = wait_ready(proc, port, args.workers, limit_s=60, path="/cds-services")
            service = next(s for s in discovery["services"] if s["id"] == SERVICE)
            payloads = request_payloads(service)
            sizes = sorted(len(p) // 1024 for p in payloads)
            before = workers_rss(proc.pid)
            print(
                f"ivig-cds serve: gunicorn on http://{HOST}:{port}, {args.workers} "
                f"{os.environ.get('IVIG_CDS_WORKER_CLASS', 'gevent')} workers, "
                f"{os.cpu_count()} CPUs"
            )
            print(
                f"order-select, {len(payloads)} Synthea patients in turn, full narrow prefetch "
                f"+ IVIG draft order ({sizes[0]}-{sizes[-1]} KB per request)"
            )
            show_rss("before", before)

            print(
                f"\nRising concurrency (each level: at most {args.requests} requests "
                f"or {args.seconds:.0f} s):"
            )
            warm = Run(port, payloads, 4, args.warmup_requests, args.seconds, args.timeout)
            warm.join(warm.start())
            args.errors += len(warm.errors)
            print(f"(warm-up, not counted: {len(warm.latencies_ms)} requests at concurrency 4)")
            print(HEADER)
            for level in levels:
                run = Run(port, payloads, level, args.requests, args.seconds, args.timeout)
                run.join(run.start())
                print(run.line())
                if run.errors:
                    errors_summary(run.errors)
                args.errors += len(run.errors)

            slow_ok = with_slow_clients(args, port, payloads)
            steady = sustained(args, port, payloads, proc.pid)
            after = workers_rss(proc.pid)
            print("\nWorker RSS:")
            show_rss("before", before)
            show_rss("after", after)
            replaced = sorted(set(before) ^ set(after))
            if replaced:
                print(f"  workers replaced during the run: {replaced}")
            ok = args.errors == 0 and not replaced and steady and slow_ok
        except (RuntimeError, StopIteration, KeyError) as exc:
            print(f"loadtest: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            status = stop(proc)
            print(f"\nServer stopped (SIGTERM, exit status {status}).")
            if not ok:
                tail = log_path.read_text(errors="replace").splitlines()
                noisy = [line for line in tail if '"POST /cds-services' not in line]
                print("Server log (last lines, access log left out):", file=sys.stderr)
                for line in noisy[-20:]:
                    print(f"  {line}", file=sys.stderr)
    print(f"Errors: {args.errors}.  Result: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
