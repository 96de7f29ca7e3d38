"""Failing and hostile FHIR servers, each a real HTTP server on 127.0.0.1 (tests/fhir_test_server).

Every fault ends within the request budget (plus one second of slack for a loaded machine): with a
412 OperationOutcome naming the key when the data is essential (patient, conditions), else with the
data-incomplete card naming the prefetch key and the checks it feeds. And the service is never led
off the configured base: no redirect followed, no next link off the base, the allowlist exact.
"""

from __future__ import annotations

import atexit
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fhir_test_server
import pytest
import requests
from conftest import (
    assert_card_shape,
    cards_by_topic,
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    scenario_resources,
)
from contexts import KB, SETTINGS
from fhir_test_server import (
    BASE_PATH,
    FhirTestServer,
    bundle_of,
    drop_connection,
    endless_next,
    outcome,
    pages,
    raw,
    redirect,
    sleep,
    status,
    trickle,
)

from cds_service.errors import FhirInvalidResponse, FhirRefused, FhirTimeout
from cds_service.fhir.client import (
    Deadline,
    FhirClient,
    FhirResponseTooLarge,
    is_allowed_server,
    is_under_base,
)

fhir_server = fhir_test_server.fhir_server  # the fixtures, made visible to this module's tests
other_host = fhir_test_server.other_host

SCENARIO = "ivig-in-dvt-resolved-history"
PATIENT = SCENARIO
URL = "/cds-services/ivig-order-select"
BUDGET_S = 1.0
TIMEOUT_S = 0.5
MAX_BYTES = 256 * 1024
HUGE = 1000  # Observations in the huge Bundle: about 700 KB, well past MAX_BYTES
MAX_RESOURCES = 50
MAX_PAGES = 3
PATHS = {
    "patient": f"Patient/{PATIENT}",
    "conditions": "Condition",
    "observations": "Observation",
    "allergies": "AllergyIntolerance",
}
# What discovery says each key is needed for (derived from the rules that read it).
CHECKS_AFFECTED = {
    spec.key: spec.needed_for
    for spec in SETTINGS.rules.prefetch("order-select", KB)
    if spec.key in ("observations", "allergies")
}


def _copies(kind: str, count: int) -> list[dict[str, Any]]:
    """``count`` valid resources of ``kind``, copies of the scenario's first one with new ids."""
    template = next(r for r in scenario_resources(SCENARIO) if r["resourceType"] == kind)
    return [template | {"id": f"{template['id']}-{n}"} for n in range(count)]


# A port nothing listens on: bound and never listened on, and held for the whole run, so no
# server another test starts can take it (a connection to it is refused).
_REFUSING = socket.socket()
_REFUSING.bind(("127.0.0.1", 0))
REFUSING_PORT = int(_REFUSING.getsockname()[1])
atexit.register(_REFUSING.close)


class Fault:
    """How to script one fault on a path, and the words the resulting gap must contain."""

    def __init__(
        self,
        script: Callable[[FhirTestServer, FhirTestServer, str], Any],
        expect: str,
        *,
        refused_port: bool = False,
    ) -> None:
        self.script = script
        self.expect = expect
        self.refused_port = refused_port


FAULTS: dict[str, Fault] = {
    "timeout": Fault(lambda s, o, p: s.on(p, sleep(3)), "no answer within 0.5 s"),
    "connection-refused": Fault(lambda s, o, p: None, "ConnectionError", refused_port=True),
    "connection-closed": Fault(lambda s, o, p: s.on(p, drop_connection()), "ConnectionError"),
    "http-500": Fault(lambda s, o, p: s.on(p, status(500)), "HTTP 500"),
    "http-401": Fault(lambda s, o, p: s.on(p, status(401)), "HTTP 401"),
    "http-403": Fault(lambda s, o, p: s.on(p, status(403)), "HTTP 403"),
    "malformed-json": Fault(
        lambda s, o, p: s.on(p, raw(200, b'{"resourceType": "Bundle", "entry": [')),
        "the body is not JSON",
    ),
    "html-200": Fault(
        lambda s, o, p: s.on(p, raw(200, b"<html><body>Login</body></html>", "text/html")),
        "the body is not JSON",
    ),
    "operation-outcome-200": Fault(
        lambda s, o, p: s.on(p, status(200, outcome("too-costly", "try later"))),
        "the server answered with an OperationOutcome",
    ),
    "redirect-to-other-host": Fault(
        lambda s, o, p: s.on(p, redirect(f"http://localhost:{o.port}{BASE_PATH}/{p}")),
        "HTTP 302 redirect not followed",
    ),
    "huge-bundle": Fault(
        lambda s, o, p: s.on(p, bundle_of(_copies("Observation", HUGE))),
        f"larger than {MAX_BYTES} bytes (Content-Length",
    ),
    "huge-bundle-streamed": Fault(
        lambda s, o, p: s.on(p, bundle_of(_copies("Observation", HUGE), length=False)),
        f"larger than {MAX_BYTES} bytes",
    ),
    "slow-trickle": Fault(
        lambda s, o, p: s.on(p, trickle(json.dumps(s.searchset([])).encode(), 0.05)),
        "time budget",
    ),
    "next-link-to-other-host": Fault(
        lambda s, o, p: s.on(
            p, bundle_of_next(f"http://localhost:{o.port}{BASE_PATH}/{p}?_page=2")
        ),
        "next link leaves the FHIR server base",
    ),
    "next-link-off-base-path": Fault(
        lambda s, o, p: s.on(p, bundle_of_next(f"{s.origin}/admin/{p}?_page=2")),
        "next link leaves the FHIR server base",
    ),
    "next-link-dot-segments": Fault(
        lambda s, o, p: s.on(p, bundle_of_next(f"{s.base}/../admin/{p}?_page=2")),
        "next link leaves the FHIR server base",
    ),
}
# Faults where part of the data was read: a gap, but not a 412 even for essential data.
TRUNCATIONS: dict[str, Fault] = {
    "endless-next-loop": Fault(
        lambda s, o, p: s.on(p, endless_next()),
        f"only part of the data was read: more pages than the paging limit ({MAX_PAGES})",
    ),
    "too-many-resources": Fault(
        lambda s, o, p: s.on(p, bundle_of(_copies(_kind(p), MAX_RESOURCES + 70))),
        f"only part of the data was read: more than {MAX_RESOURCES} resources",
    ),
    "too-many-resources-across-pages": Fault(
        lambda s, o, p: s.on(
            p,
            pages(
                lambda fs: fs.searchset(_copies(_kind(p), 30), f"{fs.base}/{p}?patient=x&_page=2"),
                lambda fs: fs.searchset(_copies(_kind(p), 30)),
            ),
        ),
        f"only part of the data was read: more than {MAX_RESOURCES} resources",
    ),
}


def bundle_of_next(next_url: str) -> Any:
    def behaviour(handler: Any, fhir: FhirTestServer) -> None:
        handler.send_json(200, fhir.searchset([], next_url))

    return behaviour


def _kind(path: str) -> str:
    return path.split("/")[0]


def _call(
    tmp_path: Path,
    server: FhirTestServer,
    other: FhirTestServer,
    fault: Fault,
    key: str,
) -> tuple[Any, float]:
    """Script ``fault`` on ``key``'s path, POST order-select without ``key``; (response, secs)."""
    server.resources = scenario_resources(SCENARIO)
    fault.script(server, other, PATHS[key])
    base = f"http://127.0.0.1:{REFUSING_PORT}{BASE_PATH}" if fault.refused_port else server.base
    client = make_app(
        tmp_path,
        ALLOWED_FHIR_SERVERS=[base],
        REQUEST_BUDGET_S=BUDGET_S,
        FHIR_TIMEOUT_S=TIMEOUT_S,
        FHIR_MAX_RESPONSE_BYTES=MAX_BYTES,
        FHIR_MAX_RESOURCES=MAX_RESOURCES,
        FHIR_MAX_PAGES=MAX_PAGES,
    ).test_client()
    prefetch = {k: v for k, v in full_prefetch(server.resources).items() if k != key}
    body = hook_request(
        "order-select",
        PATIENT,
        [order_for("privigen-iv", PATIENT)],
        prefetch=prefetch,
        fhir_server=base,
    )
    started = time.monotonic()
    response = client.post(URL, json=body)
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_S + 1.0, f"the fault held the request {elapsed:.2f} s"
    assert "secret-token" not in response.get_data(as_text=True)
    return response, elapsed


def _incomplete_detail(response: Any, key: str) -> str:
    assert response.status_code == 200, response.get_json()
    cards = response.get_json()["cards"]
    for card in cards:
        assert_card_shape(card, f"Patient/{PATIENT}")
    detail = str(cards_by_topic(cards)["data-incomplete"]["detail"])
    assert f"Prefetch '{key}'" in detail
    if key in CHECKS_AFFECTED:
        assert f"Checks affected: {CHECKS_AFFECTED[key]}" in detail
    return detail


def _assert_412(response: Any, key: str, expect: str) -> None:
    assert response.status_code == 412, response.get_json()
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["expression"] == [f"prefetch.{key}"]
    assert f"Essential data '{key}'" in issue["diagnostics"]
    assert expect in issue["diagnostics"]


def _assert_not_led_astray(server: FhirTestServer, other: FhirTestServer) -> None:
    assert other.total_hits == 0, other.requests
    assert not [path for path in server.hits if not path.startswith(BASE_PATH + "/")]


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_on_optional_data_gives_data_incomplete(
    tmp_path: Path, fhir_server: FhirTestServer, other_host: FhirTestServer, name: str
) -> None:
    response, _ = _call(tmp_path, fhir_server, other_host, FAULTS[name], "observations")
    detail = _incomplete_detail(response, "observations")
    assert FAULTS[name].expect in detail
    _assert_not_led_astray(fhir_server, other_host)
    # The checks still ran on what was had: a fault that used the FHIR budget once left the
    # order unchecked (the prior DVT's thrombosis card gone).
    cards = response.get_json()["cards"]
    assert "thrombosis-risk" in cards_by_topic(cards)
    assert not any("NOT checked" in card["summary"] for card in cards)


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_on_essential_conditions_is_412(
    tmp_path: Path, fhir_server: FhirTestServer, other_host: FhirTestServer, name: str
) -> None:
    response, _ = _call(tmp_path, fhir_server, other_host, FAULTS[name], "conditions")
    _assert_412(response, "conditions", FAULTS[name].expect)
    _assert_not_led_astray(fhir_server, other_host)


@pytest.mark.parametrize(
    "name",
    [
        "timeout",
        "connection-refused",
        "connection-closed",
        "http-500",
        "http-401",
        "http-403",
        "malformed-json",
        "html-200",
        "operation-outcome-200",
        "redirect-to-other-host",
        "slow-trickle",
    ],
)
def test_fault_on_essential_patient_read_is_412(
    tmp_path: Path, fhir_server: FhirTestServer, other_host: FhirTestServer, name: str
) -> None:
    response, _ = _call(tmp_path, fhir_server, other_host, FAULTS[name], "patient")
    _assert_412(response, "patient", FAULTS[name].expect)
    _assert_not_led_astray(fhir_server, other_host)


@pytest.mark.parametrize("key", ["conditions", "observations"])
@pytest.mark.parametrize("name", sorted(TRUNCATIONS))
def test_truncated_search_gives_data_incomplete_even_for_essential_data(
    tmp_path: Path,
    fhir_server: FhirTestServer,
    other_host: FhirTestServer,
    name: str,
    key: str,
) -> None:
    response, _ = _call(tmp_path, fhir_server, other_host, TRUNCATIONS[name], key)
    assert TRUNCATIONS[name].expect in _incomplete_detail(response, key)


def test_healthy_server_fills_every_missing_key_with_the_token(
    tmp_path: Path, fhir_server: FhirTestServer, other_host: FhirTestServer
) -> None:
    """The control: the same call against a well-behaved server has no gap at all."""
    response, _ = _call(
        tmp_path, fhir_server, other_host, Fault(lambda s, o, p: None, ""), "patient"
    )
    assert response.status_code == 200
    assert "data-incomplete" not in cards_by_topic(response.get_json()["cards"])
    assert fhir_server.hits_on(f"Patient/{PATIENT}") == 1
    assert fhir_server.authorizations == ["Bearer secret-token-never-logged"]


def test_redirect_is_not_followed_and_the_token_stays_home(
    tmp_path: Path, fhir_server: FhirTestServer, other_host: FhirTestServer
) -> None:
    _call(tmp_path, fhir_server, other_host, FAULTS["redirect-to-other-host"], "observations")
    assert fhir_server.hits_on("Observation") == 1
    assert other_host.total_hits == 0 and other_host.authorizations == []


@pytest.mark.parametrize(
    "name", ["next-link-to-other-host", "next-link-off-base-path", "next-link-dot-segments"]
)
def test_next_link_off_the_base_is_not_followed(
    tmp_path: Path, fhir_server: FhirTestServer, other_host: FhirTestServer, name: str
) -> None:
    _call(tmp_path, fhir_server, other_host, FAULTS[name], "conditions")
    assert fhir_server.hits_on("Condition") == 1  # the first page, nothing after it
    assert fhir_server.hits[f"/admin/{PATHS['conditions']}"] == 0
    assert other_host.total_hits == 0


def test_endless_next_loop_stops_at_the_page_bound(
    tmp_path: Path, fhir_server: FhirTestServer, other_host: FhirTestServer
) -> None:
    _call(tmp_path, fhir_server, other_host, TRUNCATIONS["endless-next-loop"], "conditions")
    assert fhir_server.hits_on("Condition") == MAX_PAGES


def test_too_many_resources_are_cut_at_the_bound_not_dropped(tmp_path: Path) -> None:
    with FhirTestServer().start() as server:
        server.on("Condition", bundle_of(_copies("Condition", MAX_RESOURCES + 70)))
        result = _client(server.base).search(f"Condition?patient={PATIENT}", Deadline(BUDGET_S))
    assert result.truncated and len(result.resources) == MAX_RESOURCES
    assert f"more than {MAX_RESOURCES} resources" in result.why_truncated


def _client(base: str, **bounds: Any) -> FhirClient:
    settings: dict[str, Any] = {
        "timeout_s": TIMEOUT_S,
        "max_pages": MAX_PAGES,
        "max_response_bytes": MAX_BYTES,
        "max_resources": MAX_RESOURCES,
    }
    return FhirClient(base, session=requests.Session(), token="t", **(settings | bounds))


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "streamed"])
def test_huge_bundle_is_refused_by_size(fhir_server: FhirTestServer, length: bool) -> None:
    fhir_server.on("Observation", bundle_of(_copies("Observation", HUGE), length=length))
    with pytest.raises(FhirResponseTooLarge, match=f"larger than {MAX_BYTES} bytes"):
        _client(fhir_server.base).search(f"Observation?patient={PATIENT}", Deadline(BUDGET_S))
    assert issubclass(FhirResponseTooLarge, FhirInvalidResponse)
    # the same body within a bound that fits it is read: the refusal is the size, not the body
    result = _client(
        fhir_server.base, max_resources=HUGE, max_response_bytes=10 * MAX_BYTES
    ).search(f"Observation?patient={PATIENT}", Deadline(BUDGET_S))
    assert len(result.resources) == HUGE


def test_trickling_body_is_cut_at_the_deadline_in_the_client(fhir_server: FhirTestServer) -> None:
    """The fetch itself ends at the deadline: no worker thread held by a server that dribbles."""
    body = json.dumps(fhir_server.searchset([])).encode()
    fhir_server.on("Observation", trickle(body, 0.05))  # ~6 s in all, each byte within a timeout
    started = time.monotonic()
    with pytest.raises(FhirTimeout, match="time budget"):
        _client(fhir_server.base).search(f"Observation?patient={PATIENT}", Deadline(BUDGET_S))
    assert time.monotonic() - started < BUDGET_S + 0.3


def test_instance_read_cannot_climb_out_of_the_base(fhir_server: FhirTestServer) -> None:
    with pytest.raises(FhirRefused):
        _client(fhir_server.base).read("Medication/../../admin/x", Deadline(BUDGET_S))
    assert fhir_server.total_hits == 0


def test_fhir_server_named_differently_from_the_allowlist_is_never_called(
    tmp_path: Path, fhir_server: FhirTestServer
) -> None:
    """Configured as 127.0.0.1, called as localhost: a different host, refused (412, no hit)."""
    client = make_app(tmp_path, ALLOWED_FHIR_SERVERS=[fhir_server.base]).test_client()
    prefetch = {k: v for k, v in full_prefetch(scenario_resources(SCENARIO)).items()}
    del prefetch["conditions"]
    body = hook_request(
        "order-select",
        PATIENT,
        [order_for("privigen-iv", PATIENT)],
        prefetch=prefetch,
        fhir_server=f"http://localhost:{fhir_server.port}{BASE_PATH}",
    )
    response = client.post(URL, json=body)
    _assert_412(response, "conditions", "not an allowed FHIR server")
    assert fhir_server.total_hits == 0


CONFIGURED = ("https://fhir.example.org/r4", "http://127.0.0.1:8080/fhir/")


@pytest.mark.parametrize(
    "url",
    [
        "https://fhir.example.org/r4",
        "https://fhir.example.org/r4/",
        "https://FHIR.Example.ORG:443/r4/",
        "HTTPS://fhir.example.org/r4",
        "http://127.0.0.1:8080/fhir",
    ],
)
def test_allowlist_accepts_the_same_server_written_differently(url: str) -> None:
    assert is_allowed_server(url, CONFIGURED)


@pytest.mark.parametrize(
    "url",
    [
        "https://fhir.example.org.evil.com/r4",  # suffix host
        "https://evil.com/fhir.example.org/r4",
        "https://fhir.example.org@evil.com/r4",  # userinfo: the host is evil.com
        "https://user:pass@fhir.example.org/r4",  # userinfo on the right host
        "http://fhir.example.org/r4",  # http vs https
        "https://fhir.example.org:8443/r4",  # other port
        "https://fhir.example.org:80/r4",
        "https://fhir.example.org/r4-admin",  # not under /r4
        "https://fhir.example.org/r4/admin",  # the base is exact, not a prefix
        "https://fhir.example.org/",
        "https://fhir.example.org",
        "https://fhir.example.org/r4?x=1",  # query
        "https://fhir.example.org/r4?",
        "https://fhir.example.org/r4#frag",  # fragment
        "https://fhir.example.org/r4/..",
        "https://fhir.example.org/r4/%2e%2e/admin",
        "https://fhir.example.org/r\t4",  # parsers disagree on control characters
        "https://fhir.example.org\\@evil.com/r4",
        "ftp://fhir.example.org/r4",  # scheme
        "file:///etc/passwd",
        "javascript:alert(1)",
        "//fhir.example.org/r4",
        "https://fhir.example.org:99999/r4",  # no such port
        "http://localhost:8080/fhir",  # 127.0.0.1 is configured, localhost is another name
        "http://127.0.0.1/fhir",  # port 80, not 8080
        "",
    ],
)
def test_allowlist_refuses_lookalikes(url: str) -> None:
    assert not is_allowed_server(url, CONFIGURED)


def test_allowlist_with_userinfo_in_the_configuration_matches_nothing() -> None:
    assert not is_allowed_server(
        "https://fhir.example.org/r4", ("https://u:p@fhir.example.org/r4",)
    )


@pytest.mark.parametrize(
    ("url", "under"),
    [
        ("https://fhir.example.org/r4/Condition?page=2", True),
        ("https://fhir.example.org:443/r4/Condition?page=2", True),
        ("https://FHIR.example.org/r4", True),
        ("https://fhir.example.org/r4-admin/Condition", False),
        ("https://fhir.example.org/r4/../admin", False),
        ("https://user@fhir.example.org/r4/Condition", False),
        ("http://fhir.example.org/r4/Condition", False),
        ("https://fhir.example.org:8443/r4/Condition", False),
        ("https://fhir.example.org.evil.com/r4/Condition", False),
    ],
)
def test_next_links_must_stay_under_the_base(url: str, under: bool) -> None:
    assert is_under_base(url, "https://fhir.example.org/r4") is under
