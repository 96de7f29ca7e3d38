"""nginx/ivig-cds.conf, the reverse proxy of docker-compose.yml, under a real nginx in front of
the production server (issue 12): calls pass through; slow clients are cut by nginx and do not
reach the service; what nginx refuses itself is an OperationOutcome with CORS.

nginx comes from the machine, else from Debian's package unpacked by `make test`
(``.venv/nginx``); without it these tests skip, and fail under IVIG_CDS_REQUIRE_SERVICES=1.
Loopback only; everything stops by itself (about 15 s)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import full_prefetch, hook_request, order_for, scenario_resources
from nginx_proxy import proxying
from production_server import (
    LARGE_HEADER,
    LONG_REQUEST_LINE,
    NOT_HTTP,
    free_port,
    raw_exchange,
    serving,
)

HEADER_TIMEOUT_S = 5.0  # client_header_timeout in nginx/ivig-cds.conf
SLOW_CLIENTS = 50


class Stack(NamedTuple):
    proxy: int  # nginx's port
    service: int
    scratch: Path  # the logs of both


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module's tests."""
    scratch = tmp_path_factory.mktemp("proxy")
    with serving(scratch) as service, proxying(scratch, service) as proxy:
        yield Stack(proxy, service, scratch)


def outcome_of(answer: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def test_a_hook_call_passes_through_the_proxy(stack: Stack) -> None:
    proxy = stack.proxy
    resources = scenario_resources("ivig-in-hypertension")
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    body = hook_request(
        "order-select",
        patient,
        [order_for("privigen-iv", patient)],
        prefetch=full_prefetch(resources),
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{proxy}/cds-services/ivig-order-select",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        cards = json.load(response)["cards"]
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert any("Thrombosis" in card["summary"] for card in cards)


REFUSED = {
    "body over 5 MiB": (
        b"POST /cds-services/ivig-order-select HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 6000000\r\n\r\n{",
        413,
    ),
    "request line over 8 KiB": (LONG_REQUEST_LINE, 414),
    "header over 8 KiB": (LARGE_HEADER, 400),
    "not HTTP": (NOT_HTTP, 400),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_the_proxy_refuses_is_an_operation_outcome_with_cors(stack: Stack, case: str) -> None:
    data, expected = REFUSED[case]
    status, headers, outcome = outcome_of(raw_exchange(stack.proxy, data, early_answer=True))
    assert status == expected
    assert headers["content-type"] == "application/json"
    assert headers["access-control-allow-origin"] == "*"
    assert outcome["resourceType"] == "OperationOutcome"
    assert "reverse proxy" in outcome["issue"][0]["diagnostics"]


def test_the_proxy_logs_no_query_string(stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.proxy}/healthz?patient=example-7"
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
    # nginx writes the line after the answer has gone: on a busy machine it can come a moment
    # after the client has read it (seen under two test workers).
    log = stack.scratch / "access.log"
    deadline = time.monotonic() + 10
    while '"GET /healthz" 200' not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = log.read_text()
    assert '"GET /healthz" 200' in logged
    assert "example-7" not in logged


def test_slow_clients_are_cut_by_the_proxy_and_never_reach_the_service(
    stack: Stack,
) -> None:
    """50 clients trickling a header byte a second: /healthz through the proxy answers at once
    throughout, and nginx closes each slow client at its header timeout."""
    proxy = stack.proxy
    closed_after: list[float] = []

    def trickle() -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", proxy), timeout=HEADER_TIMEOUT_S + 5) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(b"POST /cds-services/ivig-order-select HTTP/1.1\r\nX-Slow: ")
                while time.monotonic() - started < HEADER_TIMEOUT_S + 4:
                    sock.sendall(b"a")
                    if not _still_open(sock, 1.0):
                        break
            closed_after.append(time.monotonic() - started)

    clients = [threading.Thread(target=trickle, daemon=True) for _ in range(SLOW_CLIENTS)]
    for client in clients:
        client.start()
    worst = 0.0
    while any(client.is_alive() for client in clients):
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/healthz", timeout=5) as response:
            assert response.status == 200
        worst = max(worst, time.monotonic() - started)
        time.sleep(0.5)
    assert worst < 1.0, worst
    assert len(closed_after) == SLOW_CLIENTS
    assert max(closed_after) < HEADER_TIMEOUT_S + 2.5, sorted(closed_after)[-5:]


def _still_open(sock: socket.socket, seconds: float) -> bool:
    """Wait ``seconds`` for the peer to close; False once it has."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True


def test_a_service_that_is_down_is_a_502_operation_outcome(tmp_path: Path) -> None:
    with proxying(tmp_path, free_port()) as proxy:  # nothing listens upstream
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{proxy}/cds-services", timeout=10)
    assert refused.value.code == 502
    assert refused.value.headers["Access-Control-Allow-Origin"] == "*"
    outcome = json.load(refused.value)
    assert outcome["issue"][0]["code"] == "transient"
