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


@contextlib.contextmanager
def serving(scratch: Path, **env: str) -> Iterator[int]:
    """The server's port; its database and audit spool in ``scratch``."""
    port = free_port()
    environment = os.environ | {
        "IVIG_CDS_DATABASE_URL": f"sqlite:///{scratch / 'served.sqlite3'}",
        "IVIG_CDS_AUDIT_SPOOL_DIR": str(scratch / "audit-spool"),
        "IVIG_CDS_LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service", "serve", "--port", str(port), "--workers", "2"],
        cwd=scratch,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("ivig-cds serve did not answer within 15 s")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # a worker still held by a slow peer
            process.kill()
            process.wait(timeout=5)
