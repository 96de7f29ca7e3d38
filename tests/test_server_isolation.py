"""One slow FHIR server must not starve calls to another (issue 12), against the production
server (gevent workers). A server that trickles its response headers, a byte a second, once held
every fetch thread of the process: afterwards every call naming a healthy server got 412 after
the 4 s budget, and the healthy server got no request. Now each FHIR server has its own fetch
pool, and a fetch ends at the call's deadline, headers included.

Loopback only; the servers and clients stop by themselves (about 15 s)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import hook_request, order_for, scenario_resources
from fhir_test_server import FhirTestServer, Handler
from production_server import SEARCHED_TYPES, serving

SCENARIO = "ivig-in-hypertension"
BUDGET_S = 4.0  # IVIG_CDS_REQUEST_BUDGET_S, the default
# Each call makes 7 fetches and a worker had 8 fetch threads: 12 calls over the 2 workers fill
# both (all 12 on one worker would leave the other free: odds 1 in 2,048).
SLOW_CALLS = 12


def trickle_headers(handler: Handler, fhir: FhirTestServer) -> None:
    """A status line, then one header byte a second, never finished."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    handler.wfile.flush()
    while not fhir.stopping.wait(1.0):
        handler.wfile.write(b"a")
        handler.wfile.flush()
    handler.close_connection = True


@pytest.fixture
def servers() -> Iterator[tuple[FhirTestServer, FhirTestServer]]:
    resources = scenario_resources(SCENARIO)
    slow, healthy = FhirTestServer().start(), FhirTestServer(resources).start()
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    for path in (*SEARCHED_TYPES, f"Patient/{patient}"):
        slow.on(path, trickle_headers)
    try:
        yield slow, healthy
    finally:
        slow.stop()
        healthy.stop()


@pytest.fixture
def service(tmp_path: Path, servers: tuple[FhirTestServer, FhirTestServer]) -> Iterator[int]:
    allowed = ",".join(s.base for s in servers)
    with serving(tmp_path, IVIG_CDS_ALLOWED_FHIR_SERVERS=allowed) as port:
        yield port


def call(port: int, fhir_base: str) -> tuple[int, float, dict[str, Any]]:
    resources = scenario_resources(SCENARIO)
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    body = hook_request(
        "order-select", patient, [order_for("privigen-iv", patient)], fhir_server=fhir_base
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/cds-services/ivig-order-select",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, time.monotonic() - started, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, time.monotonic() - started, json.load(error)


def test_a_server_trickling_its_headers_does_not_starve_calls_to_another(
    service: int, servers: tuple[FhirTestServer, FhirTestServer]
) -> None:
    slow, healthy = servers
    answers: list[tuple[int, float, dict[str, Any]]] = []
    clients = [
        threading.Thread(target=lambda: answers.append(call(service, slow.base)), daemon=True)
        for _ in range(SLOW_CALLS)
    ]
    for client in clients:
        client.start()
    time.sleep(0.5)
    during = call(service, healthy.base)  # while those wait on the slow server
    for client in clients:
        client.join(timeout=20)
    after = call(service, healthy.base)
    assert during[0] == 200 and during[1] < 2.0, during[:2]
    assert after[0] == 200 and after[1] < 2.0, after[:2]
    assert healthy.total_hits >= 14  # both healthy calls fetched their data
    assert len(answers) == SLOW_CALLS
    for status, seconds, outcome in answers:  # the slow server's calls end at the budget
        assert status == 412, outcome
        assert seconds < BUDGET_S + 1.5, seconds


def test_spellings_of_one_server_share_one_pool() -> None:
    """Pools are keyed by the allowlist entry: a caller varying the case of the host or adding a
    slash cannot make a pool (and its threads) per spelling."""
    from cds_service.fhir.client import allowed_entry
    from cds_service.runtime import ServerPools

    allowed = ("https://fhir.example.org/r4",)
    spellings = [
        "https://fhir.example.org/r4",
        "HTTPS://FHIR.example.org/r4/",
        "https://fhir.example.org:443/r4",
    ]
    assert {allowed_entry(s, allowed) for s in spellings} == {allowed[0]}
    assert allowed_entry("https://fhir.example.org/r4-admin", allowed) is None
    pools = ServerPools(2)
    assert len({id(pools.for_server(allowed_entry(s, allowed) or "")) for s in spellings}) == 1
