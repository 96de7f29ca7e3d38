"""Every fixture scenario, through both order hooks, with full prefetch and with FHIR fetch only.

The expectation table is fhir_fixtures/scenarios/index.json: which of the six order-hook topics
fire, with which indicator, and which must stay silent. Both data modes must give the same cards.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import (
    FHIR_BASE,
    FakeFhirServer,
    assert_card_shape,
    cards_by_topic,
    full_prefetch,
    hook_request,
    order_for,
    scenario_index,
    scenario_resources,
    service_id,
)
from flask.testing import FlaskClient

SCENARIOS = scenario_index()
HOOKS = ("order-select", "order-sign")


def _patient_id(resources: list[dict[str, Any]]) -> str:
    return next(r["id"] for r in resources if r["resourceType"] == "Patient")


def _call(client: FlaskClient, hook: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/cds-services/{service_id(client, hook)}", json=body)
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def _check(scenario: dict[str, Any], cards: list[dict[str, Any]], patient_id: str) -> None:
    for card in cards:
        assert_card_shape(card, f"Patient/{patient_id}")
    fired = {topic: card["indicator"] for topic, card in cards_by_topic(cards).items()}
    assert fired == scenario["fires"], scenario["description"]
    assert not set(scenario["silent"]) & fired.keys()


def test_index_covers_every_scenario_file() -> None:
    from conftest import FIXTURES

    from hooks.rules import ORDER_TOPICS

    files = {path.stem for path in (FIXTURES / "scenarios").glob("ivig-*.json")}
    assert files == {s["name"] for s in SCENARIOS}
    for scenario in SCENARIOS:
        listed = [*scenario["fires"], *scenario["silent"]]
        assert sorted(listed) == sorted(ORDER_TOPICS), scenario["name"]


def _orders(scenario: dict[str, Any], patient_id: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The scenario's draft orders and, for order-select, the selected ones."""
    names = scenario.get("orders") or [scenario["order"]]
    orders = [order_for(name, patient_id) for name in names]
    selected = scenario.get("selected") or [
        name
        for name, order in zip(names, orders, strict=True)
        if order["resourceType"] == "MedicationRequest"
    ]
    by_name = dict(zip(names, orders, strict=True))
    return orders, [f"{by_name[n]['resourceType']}/{by_name[n]['id']}" for n in selected]


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario_with_full_prefetch(
    client: FlaskClient, scenario: dict[str, Any], hook: str
) -> None:
    resources = scenario_resources(scenario["name"])
    patient_id = _patient_id(resources)
    orders, selected = _orders(scenario, patient_id)
    body = hook_request(
        hook, patient_id, orders, prefetch=full_prefetch(resources), selections=selected
    )
    _check(scenario, _call(client, hook, body)["cards"], patient_id)


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario_fetched_from_fhir_server(
    client: FlaskClient, fhir_mock: Any, scenario: dict[str, Any], hook: str
) -> None:
    resources = scenario_resources(scenario["name"])
    patient_id = _patient_id(resources)
    server = FakeFhirServer(fhir_mock, resources)
    orders, selected = _orders(scenario, patient_id)
    body = hook_request(hook, patient_id, orders, fhir_server=FHIR_BASE, selections=selected)
    _check(scenario, _call(client, hook, body)["cards"], patient_id)
    fetched = sorted(url.removeprefix(FHIR_BASE + "/").split("?")[0] for url in server.requests)
    assert fetched == sorted(
        [
            f"Patient/{patient_id}",
            "Condition",
            "Observation",
            "AllergyIntolerance",
            "MedicationRequest",
            "MedicationStatement",
            "Procedure",
        ]
    )


def test_same_cards_in_both_modes(client: FlaskClient, fhir_mock: Any) -> None:
    """Byte-for-byte the same card content apart from uuids, prefetched or fetched."""
    resources = scenario_resources("ivig-in-hyperviscosity-myeloma")
    patient_id = _patient_id(resources)
    order = order_for("privigen-iv", patient_id)
    prefetched = _call(
        client,
        "order-sign",
        hook_request("order-sign", patient_id, [order], prefetch=full_prefetch(resources)),
    )["cards"]
    FakeFhirServer(fhir_mock, resources)
    fetched = _call(
        client, "order-sign", hook_request("order-sign", patient_id, [order], fhir_server=FHIR_BASE)
    )["cards"]

    def without_uuids(cards: list[dict[str, Any]]) -> list[str]:
        import json
        import re

        return [re.sub(r'"uuid": "[^"]+"', "", json.dumps(card, sort_keys=True)) for card in cards]

    assert len(prefetched) == 2
    assert without_uuids(prefetched) == without_uuids(fetched)
