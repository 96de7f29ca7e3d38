"""Every fixture scenario, through both order hooks, with full prefetch and with FHIR fetch only.

The expectation table is fhir_fixtures/scenarios/index.json: which order-hook topics fire, with
which indicator. Every other topic the hook can emit (from the rule registry, never a hand-kept
list) must stay silent. Both data modes must give the same cards.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import (
    FHIR_BASE,
    FakeFhirServer,
    assert_card_shape,
    cards_by_topic,
    full_prefetch,
    hook_request,
    load_json,
    order_for,
    scenario_index,
    scenario_resources,
    service_id,
)
from conftest import (
    fired as fired_findings,
)
from flask.testing import FlaskClient
from production_server import SEARCHED_TYPES

from hooks.registry import REGISTRY

SCENARIOS = scenario_index()
HOOKS = ("order-select", "order-sign")


def _patient_id(resources: list[dict[str, Any]]) -> str:
    return next(r["id"] for r in resources if r["resourceType"] == "Patient")


def _call(client: FlaskClient, hook: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/cds-services/{service_id(client, hook)}", json=body)
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def silent_topics(hook: str, fires: dict[str, str]) -> set[str]:
    """Every topic the hook can emit that the scenario does not expect: all must stay silent."""
    return set(REGISTRY.topics(hook)) - fires.keys()


def _check(
    scenario: dict[str, Any], cards: list[dict[str, Any]], patient_id: str, hook: str
) -> None:
    for card in cards:
        assert_card_shape(card, f"Patient/{patient_id}")
    cards_by_topic(cards)  # each finding once
    fired = fired_findings(cards)
    expected = scenario.get("fires_at", {}).get(hook, scenario["fires"])  # a hook's own answer
    assert fired == expected, scenario["description"]
    assert not silent_topics(hook, expected) & fired.keys()


def test_index_covers_every_scenario_file() -> None:
    from conftest import FIXTURES

    files = {path.stem for path in (FIXTURES / "scenarios").glob("ivig-*.json")}
    assert files == {s["name"] for s in SCENARIOS}
    for scenario in SCENARIOS:
        assert set(scenario["fires"]) <= set(REGISTRY.topics("order-sign")), scenario["name"]


def test_silent_sets_are_derived_not_kept_by_hand() -> None:
    """A hand-kept list of silent topics goes stale when a rule is added; the index has none."""
    assert all("silent" not in scenario for scenario in SCENARIOS)
    assert silent_topics("order-select", {}) == set(REGISTRY.topics("order-select"))


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
    _check(scenario, _call(client, hook, body)["cards"], patient_id, hook)


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
    _check(scenario, _call(client, hook, body)["cards"], patient_id, hook)
    fetched = sorted(url.removeprefix(FHIR_BASE + "/").split("?")[0] for url in server.requests)
    assert fetched == sorted([f"Patient/{patient_id}", *SEARCHED_TYPES])


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

    assert len(prefetched) == 1  # thrombosis and renal risk: one boxed-warning card
    assert without_uuids(prefetched) == without_uuids(fetched)


# --- the CDS Hooks Sandbox's order shape (issue 9) ------------------------------------------

CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
            "code": "inpatient",
        }
    ]
}
NOTE = "Note for the EHR team:"


def well_formed(order: dict[str, Any]) -> dict[str, Any]:
    """The order with a category, as R4 writes it (a list)."""
    return (
        {**order, "category": [CATEGORY]} if order["resourceType"] == "MedicationRequest" else order
    )


def sandbox_shaped(order: dict[str, Any]) -> dict[str, Any]:
    """The same order as the unmodified CDS Hooks Sandbox sends it: ``category`` and
    ``reasonCode`` as single objects where R4 wants lists."""
    if order["resourceType"] != "MedicationRequest":
        return order
    shaped = {**order, "category": CATEGORY}
    if isinstance(order.get("reasonCode"), list) and len(order["reasonCode"]) == 1:
        shaped["reasonCode"] = order["reasonCode"][0]
    return shaped


def comparable(cards: list[dict[str, Any]]) -> list[str]:
    """Cards without their uuids and without the note for the EHR team."""
    import re

    text = json.dumps(cards, sort_keys=True)
    text = re.sub(r'"uuid": "[^"]+"', "", text)
    return [re.sub(r"\\n\\nNote for the EHR team: [^\"]*", "", text)]


@pytest.mark.parametrize("mode", ["prefetch", "fhir-fetch"])
@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_the_sandbox_order_shape_gets_the_cards_of_the_well_formed_order(
    client: FlaskClient, fhir_mock: Any, scenario: dict[str, Any], hook: str, mode: str
) -> None:
    resources = scenario_resources(scenario["name"])
    patient_id = _patient_id(resources)
    if mode == "fhir-fetch":
        FakeFhirServer(fhir_mock, resources)
    orders, selected = _orders(scenario, patient_id)
    answers = []
    for shape in (well_formed, sandbox_shaped):
        body = hook_request(
            hook,
            patient_id,
            [shape(order) for order in orders],
            prefetch=full_prefetch(resources) if mode == "prefetch" else None,
            fhir_server=FHIR_BASE if mode == "fhir-fetch" else None,
            selections=selected,
        )
        answers.append(_call(client, hook, body)["cards"])
    expected, sandbox = answers
    _check(scenario, sandbox, patient_id, hook)
    assert comparable(sandbox) == comparable(expected)
    lone_reason = any(isinstance(sandbox_shaped(o).get("reasonCode"), dict) for o in orders)
    notes = sum(card["detail"].count(NOTE) for card in sandbox)
    assert notes == (1 if lone_reason and sandbox else 0), "the deviation is said once"
    assert not any(NOTE in card["detail"] for card in expected)


@pytest.mark.parametrize("hook", HOOKS)
def test_a_sandbox_order_without_a_medication_gets_no_card(
    client: FlaskClient, fhir_mock: Any, hook: str
) -> None:
    """While the user types, the Sandbox sends its draft with no medication at all: nothing to
    check, so no card, and no patient data is read."""
    typing = load_json("requests/sandbox-order-select-typing.json")
    typing["hook"] = hook
    if hook == "order-sign":
        del typing["context"]["selections"]
    server = FakeFhirServer(fhir_mock, scenario_resources("ivig-in-dvt-resolved-history"))
    assert _call(client, hook, typing) == {"cards": []}
    assert server.requests == []


def test_the_sandbox_request_fixture_is_checked(client: FlaskClient) -> None:
    """The committed Sandbox-shaped request (its real draft: '{pill}' dose, lone category and
    reasonCode) gets immune globulin cards, and says once what it tolerated."""
    body = load_json("requests/sandbox-order-select.json")
    cards = _call(client, "order-select", body)["cards"]
    # the reason is read; a first infusion without a rate gets the titration rate
    assert set(fired_findings(cards)) == {"dose-check", "indication-guidance", "infusion-rate"}
    dose = cards_by_topic(cards)["dose-check"]
    assert "'{pill}' is not g, mg, g/kg or mg/kg" in dose["detail"]
    notes = [card["detail"] for card in cards if NOTE in card["detail"]]
    assert len(notes) == 1 and "reasonCode as a single object" in notes[0]
