"""Slow clients against the production server (issue 12): 50 connections that send a request
line and then one header byte a second must not stop the service. With gunicorn's gthread
workers (2 workers x 4 threads) ten such clients held every thread and /healthz stopped
answering; the gevent workers park each slow client as a greenlet.

Loopback only; the test stops its clients and the server by itself (about 10 s)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from production_server import serving

ROOT = Path(__file__).resolve().parents[1]
SLOW_CLIENTS = 50
REQUEST = ROOT / "fhir_fixtures" / "requests" / "order-select-full-prefetch.json"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    with serving(tmp_path) as port:
        yield port


def trickle(port: int, until: float, opened: list[int]) -> None:
    """A request line, then a header one byte a second, never finished (until the server
    drops the connection, which it may)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /cds-services/ivig-order-select HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        opened.append(1)
        while time.monotonic() < until:
            time.sleep(1)
            try:
                sock.sendall(b"a")
            except OSError:
                return


def timed(url: str, body: bytes | None = None) -> tuple[float, int]:
    started = time.monotonic()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()
        return time.monotonic() - started, response.status


def test_fifty_slow_clients_do_not_stop_the_service(server: int) -> None:
    until = time.monotonic() + 8
    opened: list[int] = []
    clients = [
        threading.Thread(target=trickle, args=(server, until, opened), daemon=True)
        for _ in range(SLOW_CLIENTS)
    ]
    for client in clients:
        client.start()
    time.sleep(1.5)
    assert len(opened) == SLOW_CLIENTS, "every slow client is connected"
    base = f"http://127.0.0.1:{server}"
    health = [timed(f"{base}/healthz") for _ in range(6) if not time.sleep(0.5)]
    call = timed(f"{base}/cds-services/ivig-order-select", REQUEST.read_bytes())
    for client in clients:
        client.join(timeout=15)
    assert all(status == 200 for _, status in health)
    assert max(seconds for seconds, _ in health) < 1.0, health
    assert call[1] == 200 and call[0] < 2.0, call
    assert json.loads(REQUEST.read_text())["hook"] == "order-select"
