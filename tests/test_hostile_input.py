"""Deeply nested input (issue 12: once 500s): a clear 400, or the checks running on."""

from __future__ import annotations

import contextlib
import copy
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import full_prefetch, hook_request, order_for, scenario_resources
from flask.testing import FlaskClient
from production_server import LARGE_HEADER, LONG_REQUEST_LINE, NOT_HTTP, raw_exchange, serving

SCENARIO = "ivig-in-hypertension"
URL = "/cds-services/ivig-order-select"


def nested_extension(depth: int) -> dict[str, Any]:
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "v"}
    for _ in range(depth):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    return extension


def body_with(resources: list[dict[str, Any]], order: dict[str, Any]) -> dict[str, Any]:
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    return hook_request("order-select", patient, [order], prefetch=full_prefetch(resources))


def test_a_condition_with_121_nested_extensions_is_read_and_checked(client: FlaskClient) -> None:
    resources = copy.deepcopy(scenario_resources(SCENARIO))
    for resource in resources:
        if resource["resourceType"] == "Condition":
            resource["extension"] = [nested_extension(121)]
    response = client.post(URL, json=body_with(resources, order_for("privigen-iv", SCENARIO)))
    assert response.status_code == 200, response.get_json()
    assert "Essential hypertension" in response.get_data(as_text=True)  # the checks ran on


def test_an_order_nested_121_levels_deep_is_400_naming_it(client: FlaskClient) -> None:
    order = order_for("privigen-iv", SCENARIO) | {"extension": [nested_extension(121)]}
    response = client.post(URL, json=body_with(scenario_resources(SCENARIO), order))
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "nested deeper than 32 levels" in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize("frequency", [1, 10**9])
def test_a_repeat_count_of_a_billion_is_answered(client: FlaskClient, frequency: int) -> None:
    """Found by the property test: a timing.repeat.count of 10^9 with a start date listed the
    administration days one by one, 10^9 turns for one order (minutes), in a draft order or one
    on record; and 10^9 a day the same. Only the days within the listed span are listed now."""
    resources = copy.deepcopy(scenario_resources(SCENARIO))
    order = copy.deepcopy(order_for("privigen-iv", SCENARIO))
    repeat = order["dosageInstruction"][0]["timing"]["repeat"]
    repeat.update(count=10**9, frequency=frequency, period=1, periodUnit="d")
    repeat["boundsPeriod"] = {"start": "2026-01-01"}
    on_record = copy.deepcopy(order) | {"id": "on-record", "status": "active"}
    on_record["authoredOn"] = "2025-12-01"
    resources.append(on_record)  # prefetched as the patient's MedicationRequests
    response = client.post(URL, json=body_with(resources, order))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["cards"]


def test_a_body_nested_10000_deep_is_400_not_500(client: FlaskClient) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    response = client.post(URL, data=deep, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


def chunked_post(port: int, body: bytes) -> bytes:
    """POST ``body`` chunked (no Content-Length), as a proxy or a streaming client sends it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /cds-services/ivig-order-select HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # the server may answer before it has read it all
            for start in range(0, len(body), 65536):
                chunk = body[start : start + 65536]
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        while not _complete(answer):
            part = sock.recv(65536)
            if not part:
                break
            answer += part
        return answer


def _complete(answer: bytes) -> bool:
    """The status, the headers and a body of the declared Content-Length have arrived."""
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    lengths = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    return bool(lengths) and len(body) >= lengths[0]


def test_a_chunked_body_over_the_limit_is_413_not_400(tmp_path: Path) -> None:
    """Issue 12: on the production server a chunked body over the 5 MiB limit was cut at the
    limit and answered 400 "not JSON"."""
    body = b'{"hook": "order-select", "pad": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    with serving(tmp_path) as port:
        answer = chunked_post(port, body)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"Access-Control-Allow-Origin: *" in head
    assert b"OperationOutcome" in payload


TOKEN = "eyJhbGciOiJSUzM4NCJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl"
REFUSED_BY_GUNICORN = {
    # a 9,000-byte request line (gunicorn's limit is 4,094)
    "long-request-line": (LONG_REQUEST_LINE, 414),
    # one 10,000-byte header (limit 8,190)
    "large-header": (LARGE_HEADER, 431),
    # 150 headers (limit 100)
    "many-headers": (
        b"GET /cds-services HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % n for n in range(150))
        + b"\r\n",
        431,
    ),
    "garbage": (NOT_HTTP, 400),
    # a malformed header carrying a credential: gunicorn's own log line would quote it
    "bad-header": (
        b"GET /cds-services?patient=example HTTP/1.1\r\nHost: x\r\n"
        + f"Authori zation: Bearer {TOKEN}\r\n\r\n".encode(),
        400,
    ),
}


def test_what_gunicorn_refuses_is_an_operation_outcome_with_cors(tmp_path: Path) -> None:
    """Issue 12: a request line or headers over gunicorn's limits, or a malformed request, got
    gunicorn's HTML without CORS, which a browser client cannot read."""
    with serving(tmp_path) as port:
        answers = {
            name: raw_exchange(port, data) for name, (data, _) in REFUSED_BY_GUNICORN.items()
        }
    for name, (_, status) in REFUSED_BY_GUNICORN.items():
        head, _, payload = answers[name].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status), (name, head[:200])
        assert b"\r\nAccess-Control-Allow-Origin: *" in head, name
        assert b"\r\nContent-Type: application/json" in head, name
        outcome = json.loads(payload)
        assert outcome["resourceType"] == "OperationOutcome", name
        assert outcome["issue"][0]["severity"] == "error", name
    served_log = (tmp_path / "served.log").read_text()
    assert "refused a request from 127.0.0.1: 414 LimitRequestLine" in served_log
    assert TOKEN not in served_log and "c2VjcmV0" not in served_log
    assert "patient=example" not in served_log


def test_a_bad_header_from_the_application_is_a_500_not_a_client_error() -> None:
    from gunicorn.http import errors

    from cds_service.api.server_errors import refusal

    assert refusal(errors.InvalidResponseHeader("X-Bad", "\r\n"))[0] == 500
    assert refusal(errors.InvalidHeader("X-Bad"))[0] == 400
    assert refusal(errors.LimitRequestLine(9000, 4094))[:2] == (414, "URI Too Long")
    assert refusal(RuntimeError("boom"))[0] == 500
