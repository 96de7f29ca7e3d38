"""Integration: the production server (gunicorn) against a real FHIR server, over real HTTP.

Every fixture scenario runs with its prefetch resolved from the discovery templates against the
FHIR server, as an EHR does: these are the searches the scenario's data must answer (the code
filters among them). A sample of the scenarios also runs in the two other modes, which send the
same searches another way: no prefetch with ``fhirServer`` set (the service's own FHIR client), and
through a client the project did not write (@medplum/core). The sample holds every resource type
the fixtures use and every eighth scenario; ``IVIG_CDS_IT_ALL_MODES=1`` runs every scenario in all
three (about twice the time: `make test` keeps this suite lean). Each must give the cards the
scenario expects. The FHIR server is Medplum's engine (``tests/fhir_server``), or any FHIR R4 base
named by ``IVIG_CDS_IT_FHIR_BASE`` (for example the public HAPI sandbox; see the README).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, fired, hook_request, order_for, scenario_index
from medplum_server import medplum_fhir  # noqa: F401  (the FHIR server fixture)
from production_server import serving

from cds_service.fhir.client import FhirClient
from cds_service.fixtures_loader import DEFAULT_PREFIX, load
from cds_service.runtime import make_session

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVALUATION_DATE = "2026-06-15"
ORDER_SCENARIOS = [s for s in scenario_index()]
VIEW_SCENARIOS = json.loads((FIXTURES / "patient-view" / "index.json").read_text())["scenarios"]
MODES = ["prefetch", "fhir", "medplum-client"]
ALL_MODES = os.environ.get("IVIG_CDS_IT_ALL_MODES") == "1"
EVERY = 8  # the sample: every eighth scenario, and the first with each resource type


def _sampled(scenarios: list[dict[str, Any]], folder: str) -> set[str]:
    chosen = {s["name"] for s in scenarios[::EVERY]}
    seen: set[str] = set()
    for scenario in scenarios:
        bundle = json.loads((FIXTURES / folder / f"{scenario['name']}.json").read_text())
        types = {entry["resource"]["resourceType"] for entry in bundle["entry"]}
        if types - seen:
            chosen.add(scenario["name"])
            seen |= types
    return chosen


def _cases(scenarios: list[dict[str, Any]], folder: str) -> list[Any]:
    """(scenario, mode) pairs: prefetch for all, the other modes for the sample."""
    sample = _sampled(scenarios, folder)
    return [
        pytest.param(scenario, mode, id=f"{scenario['name']}-{mode}")
        for scenario in scenarios
        for mode in MODES
        if mode == "prefetch" or ALL_MODES or scenario["name"] in sample
    ]


@pytest.fixture(scope="session")
def fhir_base(request: pytest.FixtureRequest) -> str:
    external = os.environ.get("IVIG_CDS_IT_FHIR_BASE")
    if external:
        return external.rstrip("/")
    return str(request.getfixturevalue("medplum_fhir"))


@pytest.fixture(scope="session")
def loaded(fhir_base: str) -> str:
    client = FhirClient(
        fhir_base,
        session=make_session(4),
        token=os.environ.get("IVIG_CDS_IT_FHIR_TOKEN"),
        timeout_s=30,
        max_pages=20,
    )
    assert load(client, DEFAULT_PREFIX) > 100
    return fhir_base


@pytest.fixture(scope="session")
def service(loaded: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ivig-cds serve`` (gunicorn, 2 workers) allowed to call the FHIR server."""
    scratch = tmp_path_factory.mktemp("it")
    env = {
        "IVIG_CDS_ALLOWED_FHIR_SERVERS": loaded,
        "IVIG_CDS_EVALUATION_DATE": EVALUATION_DATE,
        "IVIG_CDS_REQUEST_BUDGET_S": "20",
        "IVIG_CDS_CHECK_BUDGET_S": "20",
        "IVIG_CDS_FHIR_TIMEOUT_S": "15",
        "IVIG_CDS_AUTH": "off",
    }
    with serving(scratch, **env) as port:
        yield f"http://127.0.0.1:{port}"


def _get(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/fhir+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.load(response))


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(json.load(response))
    except urllib.error.HTTPError as error:
        return error.code, dict(json.load(error))


def _prefetch_from_templates(service: str, hook: str, fhir: str, patient_id: str) -> dict[str, Any]:
    """What an EHR sends: every discovery template of the service, run against the FHIR server."""
    services = _get(f"{service}/cds-services")["services"]
    templates = next(s for s in services if s["hook"] == hook)["prefetch"]
    prefetch = {}
    for key, template in templates.items():
        query = template.replace("{{context.patientId}}", patient_id)
        result = _get(f"{fhir}/{query}")
        if result.get("resourceType") == "Bundle":
            entries = [
                e for e in result.get("entry", []) if e.get("search", {}).get("mode") != "outcome"
            ]
            result = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        prefetch[key] = result
    return prefetch


def _topics(cards: list[dict[str, Any]]) -> dict[str, str]:
    return fired(cards)  # each finding's code and indicator (one card holds several)


def _order_request(scenario: dict[str, Any], hook: str, patient_id: str) -> dict[str, Any]:
    names = scenario.get("orders") or [scenario["order"]]
    orders = [order_for(name, patient_id) for name in names]
    by_name = dict(zip(names, orders, strict=True))
    selected = scenario.get("selected") or [
        n for n, o in by_name.items() if o["resourceType"] == "MedicationRequest"
    ]
    selections = [f"{by_name[n]['resourceType']}/{by_name[n]['id']}" for n in selected]
    return hook_request(hook, patient_id, orders, selections=selections)


CDS_CLIENT = ROOT / "tests" / "fhir_server" / "cds_client.mjs"


def _through_medplum_client(
    fhir: str, service: str, hook: str, context: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """A client the project did not write: @medplum/core buildCdsRequest resolves the prefetch."""
    result = subprocess.run(
        ["node", str(CDS_CLIENT), fhir, service, hook, json.dumps(context)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    answer = json.loads(result.stdout)
    assert answer["prefetchKeys"], "the client resolved the discovery prefetch templates"
    return answer["status"], answer["body"]


def _check(
    service: str, fhir: str, scenario: dict[str, Any], mode: str, body: dict[str, Any]
) -> None:
    """Send ``body`` in one mode and compare the cards with the scenario's expectation."""
    hook, patient_id = body["hook"], body["context"]["patientId"]
    if mode == "medplum-client":
        status, answer = _through_medplum_client(fhir, service, hook, body["context"])
    else:
        if mode == "prefetch":
            body["prefetch"] = _prefetch_from_templates(service, hook, fhir, patient_id)
        else:
            body["fhirServer"] = fhir
        status, answer = _post(f"{service}/cds-services/ivig-{hook}", body)
    assert status == 200, answer
    incomplete = [c for c in answer["cards"] if "data-incomplete" in fired([c])]
    why = [card["detail"] for card in incomplete] or scenario["description"]
    expected = scenario.get("fires_at", {}).get(hook, scenario["fires"])
    assert _topics(answer["cards"]) == expected, why


@pytest.mark.parametrize(("scenario", "mode"), _cases(ORDER_SCENARIOS, "scenarios"))
def test_order_scenario_over_real_http(
    service: str, loaded: str, scenario: dict[str, Any], mode: str
) -> None:
    patient_id = DEFAULT_PREFIX + scenario["name"]
    _check(service, loaded, scenario, mode, _order_request(scenario, "order-select", patient_id))


@pytest.mark.parametrize(("scenario", "mode"), _cases(VIEW_SCENARIOS, "patient-view"))
def test_patient_view_scenario_over_real_http(
    service: str, loaded: str, scenario: dict[str, Any], mode: str
) -> None:
    patient_id = DEFAULT_PREFIX + scenario["name"]
    _check(service, loaded, scenario, mode, hook_request("patient-view", patient_id, []))
