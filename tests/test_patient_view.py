"""patient-view: every scenario in both data modes; quiet unless actionable; feedback stored.

The expectation table is fhir_fixtures/patient-view/index.json (contract §4).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import (
    FHIR_BASE,
    FIXTURES,
    FakeFhirServer,
    assert_card_shape,
    cards_by_topic,
    hook_request,
    searchset,
)
from conftest import (
    fired as fired_findings,
)
from flask.testing import FlaskClient

from hooks.registry import REGISTRY

INDEX = json.loads((FIXTURES / "patient-view" / "index.json").read_text())["scenarios"]
URL = "/cds-services/ivig-patient-view"
VIEW_KEYS = {
    "conditions": "Condition",
    "observations": "Observation",
    "medicationRequests": "MedicationRequest",
    "medicationStatements": "MedicationStatement",
}


def resources_of(name: str) -> list[dict[str, Any]]:
    bundle = json.loads((FIXTURES / "patient-view" / f"{name}.json").read_text())
    return [entry["resource"] for entry in bundle["entry"]]


def view_request(name: str, prefetch: dict[str, Any] | None, server: str | None) -> dict[str, Any]:
    return hook_request("patient-view", name, [], prefetch=prefetch, fhir_server=server)


def full_view_prefetch(resources: list[dict[str, Any]]) -> dict[str, Any]:
    prefetch: dict[str, Any] = {
        "patient": next(r for r in resources if r["resourceType"] == "Patient")
    }
    for key, kind in VIEW_KEYS.items():
        prefetch[key] = searchset([r for r in resources if r["resourceType"] == kind])
    return prefetch


def check(scenario: dict[str, Any], response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.get_json()
    cards = response.get_json()["cards"]
    for card in cards:
        assert_card_shape(card, f"Patient/{scenario['name']}")
    cards_by_topic(cards)  # each finding once
    fired = fired_findings(cards)
    assert fired == scenario["fires"], scenario["description"]
    silent = set(REGISTRY.topics("patient-view")) - scenario["fires"].keys()
    assert not silent & fired.keys()
    return list(cards)


def test_index_lists_every_file_and_topic() -> None:
    files = {p.stem for p in (FIXTURES / "patient-view").glob("pv-*.json")}
    assert files == {s["name"] for s in INDEX}
    for scenario in INDEX:
        assert "silent" not in scenario, "silent sets are derived from the registry"
        assert set(scenario["fires"]) <= set(REGISTRY.topics("patient-view")), scenario["name"]


@pytest.mark.parametrize("scenario", INDEX, ids=[s["name"] for s in INDEX])
def test_scenario_with_full_prefetch(client: FlaskClient, scenario: dict[str, Any]) -> None:
    body = view_request(scenario["name"], full_view_prefetch(resources_of(scenario["name"])), None)
    check(scenario, client.post(URL, json=body))


@pytest.mark.parametrize("scenario", INDEX, ids=[s["name"] for s in INDEX])
def test_scenario_fetched_from_fhir_server(
    client: FlaskClient, fhir_mock: Any, scenario: dict[str, Any]
) -> None:
    server = FakeFhirServer(fhir_mock, resources_of(scenario["name"]))
    check(scenario, client.post(URL, json=view_request(scenario["name"], None, FHIR_BASE)))
    fetched = sorted(url.removeprefix(FHIR_BASE + "/").split("?")[0] for url in server.requests)
    assert fetched == sorted([f"Patient/{scenario['name']}", *VIEW_KEYS.values()])


def test_healthy_patient_gets_no_cards_at_all(client: FlaskClient) -> None:
    name = "pv-out-healthy-adult"
    response = client.post(
        URL, json=view_request(name, full_view_prefetch(resources_of(name)), None)
    )
    assert response.get_json() == {"cards": []}


def test_observation_template_asks_only_for_what_the_rules_read(client: FlaskClient) -> None:
    services = client.get("/cds-services").get_json()["services"]
    view = next(s for s in services if s["hook"] == "patient-view")
    assert set(view["prefetch"]) == {"patient", *VIEW_KEYS}
    observation = view["prefetch"]["observations"]
    assert "http://loinc.org|2465-3" in observation  # IgG
    assert "http://loinc.org|29463-7" in observation  # weight: Cockcroft-Gault for entecavir
    assert "2458-8" not in observation  # IgA is the order hooks' business


def test_feedback_on_a_patient_view_card_is_stored(client: FlaskClient, app: Any) -> None:
    name = "pv-in-rituximab-hbsag-positive"
    cards = client.post(
        URL, json=view_request(name, full_view_prefetch(resources_of(name)), None)
    ).get_json()["cards"]
    card = cards[0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-06-15T12:05:00Z",
            }
        ]
    }
    response = client.post(f"{URL}/feedback", json=feedback)
    assert response.status_code == 200 and response.get_json() == {"stored": 1}
    assert app.extensions["ivig_cds"].store.count_feedback(card["uuid"]) == 1
    wrong_service = client.post("/cds-services/ivig-order-select/feedback", json=feedback)
    assert wrong_service.status_code == 404
