"""One call's work is bounded (issue 12): 200 orders of a patient with 5,000 Conditions once ran
78 s in process (116 s served) and answered 104 MB. Now what the rules ask of the record is
found once per call, a card lists each evidence line once and at most twelve, and the checks run
within the call's time budget: an order reached after it is named on the data card, not checked,
and given no suggestion."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import cards_by_topic, full_prefetch, hook_request, make_app, order_for, rendered
from conftest import scenario_resources as resources_of
from contexts import KB, SETTINGS, context_of
from ig_orders import ig
from production_server import serving

from cds_service.fhir import client as fhir_client
from hooks.card_builder import MAX_EVIDENCE_LINES
from hooks.engine import evaluate, evaluate_within

SCENARIO = "ivig-in-hypertension"
URL = "/cds-services/ivig-order-sign"


def _patient(resources: list[dict[str, Any]]) -> str:
    return next(r["id"] for r in resources if r["resourceType"] == "Patient")


def _orders(patient: str, count: int) -> list[dict[str, Any]]:
    return [order_for("privigen-iv", patient) | {"id": f"order-{n}"} for n in range(count)]


def _sign(client: Any, resources: list[dict[str, Any]], orders: list[dict[str, Any]]) -> Any:
    body = hook_request(
        "order-sign", _patient(resources), orders, prefetch=full_prefetch(resources)
    )
    return client.post(URL, json=body)


def test_the_engine_stops_at_the_budget_and_names_what_it_did_not_check() -> None:
    ctx = context_of([], [ig("a"), ig("b"), ig("c")])
    asked = iter([False, True])  # time for the first order only
    result = evaluate_within(ctx, KB, SETTINGS, lambda: next(asked))
    assert result.unchecked == ("MedicationRequest/b", "MedicationRequest/c")
    assert {f.order for f in result.findings if f.order} == {"MedicationRequest/a"}
    whole = evaluate(ctx, KB, SETTINGS)
    assert {f.order for f in whole if f.order} >= {"MedicationRequest/b", "MedicationRequest/c"}


def test_past_the_budget_every_order_is_named_and_none_gets_a_suggestion(tmp_path: Path) -> None:
    resources = resources_of(SCENARIO)
    orders = _orders(_patient(resources), 3)
    client = make_app(tmp_path, REQUEST_BUDGET_S=1e-9).test_client()
    response = _sign(client, resources, orders)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert list(cards_by_topic(cards)) == ["data-incomplete"]
    [card] = cards
    assert card["indicator"] == "warning"
    detail = rendered(card["detail"])
    assert "Not checked at all: MedicationRequest/order-0, MedicationRequest/order-1" in detail
    assert "ran out after 0 of 3 orders" in detail
    assert "suggestions" not in card or card["suggestions"] == []


def test_an_order_reached_after_the_budget_gets_no_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first order is checked, the two after the budget are not: the data card names them,
    and nothing on the screen changes or removes an order that was not checked."""
    answers = iter([False])
    monkeypatch.setattr(fhir_client.Deadline, "spent", lambda self: next(answers, True))
    resources = resources_of(SCENARIO)
    orders = _orders(_patient(resources), 3)
    cards = _sign(make_app(tmp_path).test_client(), resources, orders).get_json()["cards"]
    by_topic = cards_by_topic(cards)
    detail = rendered(by_topic["data-incomplete"]["detail"])
    assert "Not checked at all: MedicationRequest/order-1, MedicationRequest/order-2" in detail
    assert "ran out after 1 of 3 orders" in detail
    assert "thrombosis-risk" in by_topic  # order-0 was checked
    acted_on = {
        action.get("resourceId") or action.get("resource", {}).get("id")
        for card in cards
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
    }
    assert not acted_on & {"MedicationRequest/order-1", "MedicationRequest/order-2"}
    assert not acted_on & {"order-1", "order-2"}


def _crowded_record() -> list[dict[str, Any]]:
    """The scenario's record and 5,000 copies of its Condition."""
    resources = resources_of(SCENARIO)
    condition = next(r for r in resources if r["resourceType"] == "Condition")
    copies = [
        condition | {"id": f"copy-{n}", "recordedDate": f"20{10 + n % 15}-01-{1 + n % 28:02d}"}
        for n in range(5000)
    ]
    return resources + copies


def test_a_record_of_5000_conditions_and_200_orders_gets_a_short_answer(tmp_path: Path) -> None:
    """Was 78 s in process and 632 kB (one thrombosis card listing 5,000 conditions)."""
    record = _crowded_record()
    response = _sign(make_app(tmp_path).test_client(), record, _orders(_patient(record), 200))
    assert response.status_code == 200
    assert len(response.data) < 100_000, len(response.data)
    detail = rendered(cards_by_topic(response.get_json()["cards"])["thrombosis-risk"]["detail"])
    evidence = detail.split("**Evidence**\n")[1].split("\n\n")[0].split("\n")
    assert len(evidence) == MAX_EVIDENCE_LINES + 1, evidence
    more = re.fullmatch(r"- … and (\d+) more, not listed here", evidence[-1])
    assert more and int(more[1]) > 5000 - MAX_EVIDENCE_LINES, evidence[-1]
    assert "- Sum (course total): 400 g/kg" in detail  # the course's arithmetic, to its sum
    assert detail.count("No revised order offered: correct the dose first") == 1


def test_evidence_is_said_once_and_at_most_twelve_lines() -> None:
    from hooks.card_builder import _evidence_lines
    from hooks.findings import Finding

    found = Finding("thrombosis-risk", "warning", "s", ("a", "a", *map(str, range(20))), "r")
    lines = _evidence_lines(found)
    assert lines[:2] == ["- a", "- 0"]
    assert len(lines) == MAX_EVIDENCE_LINES + 1
    assert lines[-1] == f"- … and {21 - MAX_EVIDENCE_LINES} more, not listed here"
    assert _evidence_lines(Finding("x", "info", "s", ("a", "a"), "r")) == ["- a"]
    json.dumps(lines)  # plain strings


def test_a_card_revising_200_orders_lists_twenty_and_offers_them_all(tmp_path: Path) -> None:
    resources = resources_of("ivig-in-dosing-weight-obese")
    body = hook_request(
        "order-select",
        _patient(resources),
        _orders(_patient(resources), 200),
        prefetch=full_prefetch(resources),
    )
    response = make_app(tmp_path).test_client().post("/cds-services/ivig-order-select", json=body)
    revising = [c for c in response.get_json()["cards"] if c.get("suggestions")]
    detail = rendered(revising[0]["detail"])
    listed = [line for line in detail.split("\n") if line.startswith("- Revised order for")]
    assert len(listed) == MAX_EVIDENCE_LINES
    assert re.search(r"- … and \d+ more, in the suggestion", detail)
    revised = [
        action for s in revising[0]["suggestions"] for action in s["actions"] if action["type"]
    ]
    assert len(revised) > MAX_EVIDENCE_LINES  # the suggestion still revises every order


def test_the_production_server_answers_the_crowded_call_in_full(tmp_path: Path) -> None:
    """Served, the same call once ran 116 s (the 30 s worker timeout never fired) and returned
    104 MB. Now it takes about 1 s and every order is checked. The budget is 30 s here: this
    is about the work, and a loaded CI machine must not turn it into the budget's test."""
    record = _crowded_record()
    body = hook_request(
        "order-sign",
        _patient(record),
        _orders(_patient(record), 200),
        prefetch=full_prefetch(record),
    )
    with serving(tmp_path, IVIG_CDS_REQUEST_BUDGET_S="30") as port:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{URL}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
    assert len(data) < 100_000, len(data)
    cards = json.loads(data)["cards"]
    assert "thrombosis-risk" in cards_by_topic(cards)
    assert not any("Not checked at all" in rendered(card["detail"]) for card in cards)
    assert "WORKER TIMEOUT" not in (tmp_path / "served.log").read_text()
