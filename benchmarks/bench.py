"""Measure the service against a floor (``make bench``). Figures go in the README; no test asserts
speed.

1. Over HTTP, in one run and interleaved: the floor (``benchmarks/floor.py``, a Flask app that
   answers ``{"cards": []}``) and the service (``ivig-cds serve``), both under gunicorn with the
   same settings, called with order-select and the narrow prefetch of each Synthea record of
   ``fhir_fixtures/synthea``: p50 latency at concurrency 1, throughput at concurrency 16, errors.
   Rounds alternate floor and service, so both see the same machine; each figure is the median of
   the rounds.
2. In process (Flask test client, one core): the median of one call per record.
3. No prefetch: a local FHIR server (a subprocess) that takes 50 ms per query; the seven queries
   should overlap, so the call takes about one round trip, not seven.

The load generator is this process: one keep-alive connection per client thread, the request
bytes built beforehand. Only loopback traffic; every phase stops by itself.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    HOST,
    ROOT,
    SYNTHEA,
    coded,
    codes_of_param,
    free_port,
    narrow_bodies,
    percentile,
    request_body,
    resources_of,
    searchset,
    server_command,
    stop,
    wait_ready,
)

from cds_service.cli import worker_class

SERVICE = "ivig-order-select"
DELAY_S = 0.050
GOALS = {"p50": 3.5, "throughput": 0.30, "in_process_ms": 2.0}


# --- the load generator ---


class Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared requests and reads the answers."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _open(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, b""
        return sock

    def call(self, request: bytes) -> int:
        """Send one request; the status of the answer (the body is read and dropped)."""
        sock = self.sock or self._open()
        sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            key.strip().lower(): value.strip()
            for key, _, value in (line.partition(":") for line in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-answer")
            rest += chunk
        self.buffer = rest[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(lines[0].split()[1])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""


def prepared(port: int, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST /cds-services/{SERVICE} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def latencies(port: int, requests: list[bytes], count: int) -> tuple[list[float], int]:
    """Concurrency 1: ``count`` calls one after another; (latencies in ms, errors)."""
    conn, found, errors = Connection(port, 30), [], 0
    for n in range(count):
        began = time.perf_counter()
        try:
            ok = conn.call(requests[n % len(requests)]) == 200
        except OSError:
            ok = False
            conn.close()
        found.append((time.perf_counter() - began) * 1000)
        errors += not ok
    conn.close()
    return found, errors


def throughput(port: int, requests: list[bytes], clients: int, seconds: float) -> tuple[float, int]:
    """``clients`` threads calling for ``seconds``; (requests per second, errors)."""
    done, errors, lock = [0], [0], threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(offset: int) -> None:
        conn, n, ok_count, bad = Connection(port, 30), offset, 0, 0
        while time.monotonic() < stop_at:
            try:
                if conn.call(requests[n % len(requests)]) == 200:
                    ok_count += 1
                else:
                    bad += 1
            except OSError:
                bad += 1
                conn.close()
            n += 1
        conn.close()
        with lock:
            done[0] += ok_count
            errors[0] += bad

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 35)
    return done[0] / (time.monotonic() - started), errors[0]


# --- the servers ---


def start(cmd: list[str], env: dict[str, str], tmp: str, name: str) -> subprocess.Popen[bytes]:
    log = (Path(tmp) / f"{name}.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)


def http_phase(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "IVIG_CDS_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        "IVIG_CDS_EVALUATION_DATE": "2026-06-15",
        "IVIG_CDS_LOG_LEVEL": "WARNING",
        "IVIG_CDS_AUTH": "off",
        "PYTHONPATH": str(ROOT),
    }
    ports = {"floor": free_port(), "service": free_port()}
    workers = str(args.workers)
    procs = {
        "floor": start(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "floor.py"),
                "--port",
                str(ports["floor"]),
                "--workers",
                workers,
            ],
            env,
            tmp,
            "floor",
        ),
        "service": start(
            [
                server_command(),
                "serve",
                "--host",
                HOST,
                "--port",
                str(ports["service"]),
                "--workers",
                workers,
            ],
            env,
            tmp,
            "service",
        ),
    }
    try:
        discovery = wait_ready(
            procs["service"], ports["service"], args.workers, 60, "/cds-services"
        )
        wait_ready(procs["floor"], ports["floor"], args.workers, 60, "/cds-services")
        service = next(s for s in discovery["services"] if s["id"] == SERVICE)
        bodies = narrow_bodies(service)
        requests = {t: [prepared(ports[t], body) for _, body in bodies] for t in ports}
        for target in ports:  # warm-up: imports, caches, connection pools
            latencies(ports[target], requests[target], args.warmup)
        results: dict[str, Any] = {
            t: {"p50": {name: [] for name, _ in bodies}, "all": [], "rps": [], "errors": 0}
            for t in ports
        }
        for round_ in range(args.rounds):
            for target in ("floor", "service") if round_ % 2 == 0 else ("service", "floor"):
                found = results[target]
                for index, (name, _) in enumerate(bodies):
                    sample, errors = latencies(
                        ports[target], [requests[target][index]], args.requests
                    )
                    found["p50"][name].append(statistics.median(sample))
                    found["all"].extend(sample)
                    found["errors"] += errors
                rps, errors = throughput(ports[target], requests[target], 16, args.seconds)
                found["rps"].append(rps)
                found["errors"] += errors
        return {"results": results, "bodies": bodies, "service": service}
    finally:
        for proc in procs.values():
            stop(proc)


def report_http(found: dict[str, Any], args: argparse.Namespace) -> None:
    floor, service = found["results"]["floor"], found["results"]["service"]
    print(
        f"Over HTTP: gunicorn, {args.workers} {worker_class()} workers, the same settings for "
        f"both; {os.cpu_count()} CPUs shared with the load "
        f"generator; {args.rounds} interleaved rounds (median of rounds)"
    )
    print(f"  {'concurrency 1, p50 ms':28} {'floor':>8} {'service':>8} {'ratio':>7}")
    for name, _ in found["bodies"]:
        f, s = statistics.median(floor["p50"][name]), statistics.median(service["p50"][name])
        print(f"  {name:28} {f:8.2f} {s:8.2f} {s / f:6.2f}x")
    f_all, s_all = statistics.median(floor["all"]), statistics.median(service["all"])
    p99 = percentile(sorted(service["all"]), 99)
    print(
        f"  {'all records':28} {f_all:8.2f} {s_all:8.2f} {s_all / f_all:6.2f}x"
        f"   (service p99 {p99:.2f} ms)"
    )
    f_rps, s_rps = statistics.median(floor["rps"]), statistics.median(service["rps"])
    print(f"  {'concurrency 16, req/s':28} {f_rps:8.0f} {s_rps:8.0f} {s_rps / f_rps:6.2f}x")
    print(f"  errors: floor {floor['errors']}, service {service['errors']}")
    goal_p50 = s_all / f_all <= GOALS["p50"]
    goal_rps = s_rps / f_rps >= GOALS["throughput"]
    print(
        f"  goal p50 <= {GOALS['p50']}x floor: {'met' if goal_p50 else 'NOT met'}; "
        f"throughput >= {GOALS['throughput']}x floor: {'met' if goal_rps else 'NOT met'}; "
        f"0 errors: {'met' if floor['errors'] + service['errors'] == 0 else 'NOT met'}"
    )


# --- in process ---


def in_process(args: argparse.Namespace, tmp: str, service: dict[str, Any]) -> None:
    from cds_service import create_app

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # this process: one core
    fhir_base = f"http://{HOST}:{free_port()}/fhir"
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp}/in-process.sqlite3",
            "AUDIT_SPOOL_DIR": f"{tmp}/in-process-spool",
            "ALLOWED_FHIR_SERVERS": [fhir_base],
            "CLOCK": lambda: datetime(2026, 6, 15, 12, tzinfo=UTC),
        }
    )
    client = app.test_client()

    def timed(body: dict[str, Any], runs: int) -> list[float]:
        payload = json.dumps(body)
        samples = []
        for _ in range(runs):
            began = time.perf_counter()
            response = client.post(
                f"/cds-services/{SERVICE}", data=payload, content_type="application/json"
            )
            samples.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.get_data(as_text=True)
        return samples

    runtime = app.extensions["ivig_cds"]

    def writers_done() -> None:
        assert runtime.audit.flush(60) and runtime.repeats.flush(60)

    # The audit and memory writers write after the answer (threads here, greenlets under the
    # production server): their CPU is not in a call's time, and is shown beside it, per call.
    print(f"\nIn process (Flask test client, one core, {args.runs} calls after 20 warm-up):")
    print(
        f"  {'record':10} {'resources':>9} {'cards':>5} {'median ms':>10} {'p95 ms':>8} "
        f"{'CPU ms, writers included':>25}"
    )
    medians = []
    for name, body in narrow_bodies(service):
        count = sum(
            len(v.get("entry", [])) if v.get("resourceType") == "Bundle" else 1
            for v in body["prefetch"].values()
        )
        timed(body, 20)
        writers_done()
        cpu = time.process_time()
        samples = sorted(timed(body, args.runs))
        writers_done()
        cpu_ms = (time.process_time() - cpu) / args.runs * 1000
        cards = len(client.post(f"/cds-services/{SERVICE}", json=body).get_json()["cards"])
        medians.append(statistics.median(samples))
        print(
            f"  {name:10} {count:9} {cards:5} {medians[-1]:10.2f} "
            f"{percentile(samples, 95):8.2f} {cpu_ms:25.2f}"
        )
    worst = max(medians)
    print(
        f"  goal median <= {GOALS['in_process_ms']:g} ms for every record: "
        f"{'met' if worst <= GOALS['in_process_ms'] else 'NOT met'} (worst {worst:.2f} ms)"
    )
    fhir_fetch(app, fhir_base, args)
    runtime.audit.close()  # its spool is in ``tmp``, removed next
    runtime.repeats.close()


# --- no prefetch: a slow local FHIR server ---


class SlowFhir(BaseHTTPRequestHandler):
    resources: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        time.sleep(DELAY_S)
        parts = urlsplit(self.path)
        kind, _, rid = parts.path.strip("/").removeprefix("fhir/").partition("/")
        if rid:
            body: Any = next(
                r for r in self.resources if r["resourceType"] == kind and r["id"] == rid
            )
        else:
            query = parse_qs(parts.query)
            assert "patient" in query
            found = [r for r in self.resources if r["resourceType"] == kind]
            if "code" in query:  # a real server filters by code, so this one does too
                found = [r for r in found if coded(r, codes_of_param(query["code"][0]))]
            body = searchset(found)
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        return


def serve_fhir(port: int, path: str) -> None:
    SlowFhir.resources = resources_of(Path(path))
    ThreadingHTTPServer((HOST, port), SlowFhir).serve_forever()


def fhir_fetch(app: Any, base: str, args: argparse.Namespace) -> None:
    port = int(urlsplit(base).port or 0)
    biggest = max(SYNTHEA, key=lambda p: p.stat().st_size)
    fhir = multiprocessing.Process(target=serve_fhir, args=(port, str(biggest)), daemon=True)
    fhir.start()
    try:
        client = app.test_client()
        body = json.dumps(request_body(resources_of(biggest), None, base))
        call: Callable[[], Any] = lambda: client.post(  # noqa: E731
            f"/cds-services/{SERVICE}", data=body, content_type="application/json"
        )
        time.sleep(0.3)  # let the FHIR stub start
        for _ in range(5):
            call()
        samples = []
        for _ in range(max(20, args.runs // 10)):
            began = time.perf_counter()
            assert call().status_code == 200
            samples.append((time.perf_counter() - began) * 1000)
        queries = len(app.extensions["ivig_cds"].registry.get(SERVICE).prefetch)
        print(
            f"\nNo prefetch, FHIR server at {DELAY_S * 1000:.0f} ms per query ({queries} queries; "
            f"{queries * DELAY_S * 1000:.0f} ms one after another): median "
            f"{statistics.median(samples):.1f} ms (n={len(samples)})"
        )
    finally:
        fhir.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="per record per round, c=1")
    parser.add_argument("--seconds", type=float, default=5, help="per round, concurrency 16")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300, help="in-process calls per record")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ivig-bench-") as tmp:
        found = http_phase(args, tmp)
        report_http(found, args)
        in_process(args, tmp, found["service"])


if __name__ == "__main__":
    main()
