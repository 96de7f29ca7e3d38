"""``ivig-cds serve`` (the production server, gunicorn) on a free loopback port, for tests that
are about it: started with the given environment, ready when ``/healthz`` answers, and stopped
(killed if a worker is still held after 15 s)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

# The searches the order services' prefetch templates make, besides the Patient read.
SEARCHED_TYPES = (
    "Condition",
    "Observation",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_listening(
    command: list[str], env: dict[str, str], cwd: Path, log_path: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """``python *command --port P`` (a ``serve`` command), once its own master listens on P.

    A port from ``free_port`` is free only when asked: a test in another xdist worker can take it
    first. Then this server cannot bind and exits, while ``/healthz`` on P answers from the other
    one, until that one stops mid-test (seen as "Connection refused"). So ready means gunicorn's
    "Listening at" line with this process's pid (the pid survives the gevent re-exec), and a server
    that could not bind is started again on another port."""
    for _ in range(5):
        port = free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, *command, "--port", str(port)],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        listening = f"Listening at: http://127.0.0.1:{port} ({process.pid})"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if listening in log_path.read_text(errors="replace"):
                return process, port
            time.sleep(0.1)
        stop(process)
    pytest.fail(f"ivig-cds serve did not listen (5 tries); its output:\n{output(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:  # a worker still held by a slow peer
        process.kill()
        process.wait(timeout=5)


def output(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-20_000:]


class Served(NamedTuple):
    process: subprocess.Popen[bytes]  # gunicorn's master
    port: int
    log: Path  # its output (access log, errors)


@contextlib.contextmanager
def served(scratch: Path, **env: str) -> Iterator[Served]:
    """The server, its database and audit spool in ``scratch``; stopped at the end if a test
    has not stopped it already."""
    environment = os.environ | {
        "IVIG_CDS_DATABASE_URL": f"sqlite:///{scratch / 'served.sqlite3'}",
        "IVIG_CDS_AUDIT_SPOOL_DIR": str(scratch / "audit-spool"),
        "IVIG_CDS_LOG_LEVEL": "WARNING",
        **env,
    }
    log_path = scratch / "served.log"
    process, port = start_listening(
        ["-m", "cds_service", "serve", "--workers", "2"], environment, scratch, log_path
    )
    try:
        for _ in range(150):  # the workers boot after the master listens
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"ivig-cds serve did not answer within 15 s:\n{output(log_path)}")
        yield Served(process, port, log_path)
    finally:
        stop(process)
        # Captured by pytest, which shows it only beside a failure: a worker that died says why.
        sys.stdout.write(f"--- ivig-cds serve output ({log_path}) ---\n{output(log_path)}\n")


@contextlib.contextmanager
def serving(scratch: Path, **env: str) -> Iterator[int]:
    """The server's port; its database and audit spool in ``scratch``."""
    with served(scratch, **env) as server:
        yield server.port


# Requests over the HTTP servers' limits, sent as they are: gunicorn's (4,094-byte request line,
# 8,190-byte header; tests/test_hostile_input.py) and nginx's (8 KiB; tests/test_reverse_proxy.py).
LONG_REQUEST_LINE = b"GET /cds-services?" + b"p" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
LARGE_HEADER = b"GET /cds-services HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 10_000 + b"\r\n\r\n"
NOT_HTTP = b"NOT AN HTTP REQUEST\r\n\r\n"


def raw_exchange(port: int, data: bytes, *, early_answer: bool = False) -> bytes:
    """Send ``data`` as it is and read the answer until the server closes. ``early_answer``: the
    server may answer and close before it has read it all (a reset then ends the reading)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(*((OSError,) if early_answer else ())):
            sock.sendall(data)
        answer = b""
        with contextlib.suppress(*((ConnectionResetError,) if early_answer else ())):
            while part := sock.recv(65536):
                answer += part
        return answer
