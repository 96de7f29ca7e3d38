"""One call's work is bounded (issue 12): 200 orders of a patient with 5,000 Conditions once ran
78 s in process (116 s served) and answered 104 MB. Now what the rules ask of the record is
found once per call, a card lists each evidence line once and at most twenty, and the checks run
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
from hooks.card_builder import KEPT_LAST, MAX_EVIDENCE_LINES
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
    client = make_app(tmp_path, CHECK_BUDGET_S=1e-9).test_client()
    response = _sign(client, resources, orders)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert list(cards_by_topic(cards)) == ["data-incomplete"]
    [card] = cards
    assert card["indicator"] == "warning"
    assert card["summary"] == "3 of 3 immune globulin orders NOT checked (time limit): Privigen"
    detail = rendered(card["detail"])
    assert "Not checked at all: Privigen (MedicationRequest/order-0), Privigen (Medic" in detail
    assert "after 0 of 3 orders" in detail
    assert "Check these orders by hand before they are signed" in detail
    assert "taken as one course" in detail and "checked as one course" not in detail
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
    assert "Privigen (MedicationRequest/order-1), Privigen (MedicationRequest/order-2)" in detail
    assert "after 1 of 3 orders" in detail
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
    [more] = [m for line in evidence if (m := re.fullmatch(r"- … and (\d+) more, not .*", line))]
    assert int(more[1]) > 5000 - MAX_EVIDENCE_LINES, more[0]
    # the rule's reasoning, listed last, is kept: it says why the card is a warning
    assert evidence[-1].startswith("- Warning because of: high-severity factor"), evidence[-1]
    assert "- Sum (course total): 400 g/kg" in detail  # the course's arithmetic, to its sum
    assert detail.count("No revised order offered: correct the dose first") == 1


def test_evidence_is_said_once_and_at_most_twenty_lines() -> None:
    from hooks.card_builder import _evidence_lines
    from hooks.findings import Finding

    found = Finding("thrombosis-risk", "warning", "s", ("a", "a", *map(str, range(30))), "r")
    lines = _evidence_lines(found)
    assert lines[:2] == ["- a", "- 0"]  # 31 distinct lines
    assert len(lines) == MAX_EVIDENCE_LINES + 1
    assert lines[-KEPT_LAST - 1] == f"- … and {31 - MAX_EVIDENCE_LINES} more, not listed here"
    assert lines[-KEPT_LAST:] == [f"- {n}" for n in range(30 - KEPT_LAST, 30)]
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
    with serving(tmp_path, IVIG_CDS_REQUEST_BUDGET_S="30", IVIG_CDS_CHECK_BUDGET_S="30") as port:
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


def _partial(monkeypatch: pytest.MonkeyPatch, checked: int) -> None:
    """The checks' budget lasts for ``checked`` orders."""
    answers = iter([False] * checked)
    monkeypatch.setattr(fhir_client.Deadline, "spent", lambda self: next(answers, True))


def test_the_unchecked_orders_stay_on_the_data_card_beside_another_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pharmacist's case: the data card showed one order's data findings only, so another
    gap in the course pushed "not checked" off it."""
    _partial(monkeypatch, 1)
    resources = resources_of(SCENARIO)
    orders = _orders(_patient(resources), 3)
    del orders[0]["dosageInstruction"][0]["route"]  # a gap of the checked order's own
    cards = _sign(make_app(tmp_path).test_client(), resources, orders).get_json()["cards"]
    detail = rendered(cards_by_topic(cards)["data-incomplete"]["detail"])
    assert "Not checked at all: Privigen (MedicationRequest/order-1)" in detail


def test_no_revised_order_anywhere_while_an_order_went_unchecked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchecked order of another course could be a duplicate of a revised one: no card of
    the call offers a revised order (its other suggestions, a lab order, stay)."""
    resources = resources_of("ivig-in-rate-first-infusion-no-rate")
    patient = _patient(resources)
    orders = [order_for("privigen-iv", patient), order_for("hizentra-sc", patient)]
    (tmp_path / "whole").mkdir()
    (tmp_path / "partial").mkdir()
    whole = _sign(make_app(tmp_path / "whole").test_client(), resources, orders)
    assert _revisions(whole.get_json()["cards"]), "the rate card revises the checked order"
    _partial(monkeypatch, 1)
    partial = _sign(make_app(tmp_path / "partial").test_client(), resources, orders)
    cards = partial.get_json()["cards"]
    assert "data-incomplete" in cards_by_topic(cards)
    assert not _revisions(cards)


def _revisions(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        action
        for card in cards
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action["type"] == "update"
        or (action["type"] == "create" and action["resource"].get("priorPrescription"))
    ]


def test_the_anaphylaxis_leads_the_card_however_many_mild_reactions_precede_it(
    tmp_path: Path,
) -> None:
    """A pharmacist's case: 30 mild urticaria reactions recorded before the anaphylaxis filled
    the capped evidence, and the line the critical card rests on was hidden."""
    resources = resources_of("ivig-in-ig-anaphylaxis")
    severe = next(r for r in resources if r["resourceType"] == "AllergyIntolerance")
    mild = [
        severe
        | {
            "id": f"mild-{n}",
            "criticality": "low",
            "recordedDate": f"2019-01-{n + 1:02d}",
            "reaction": [{"manifestation": [{"text": "Urticaria"}], "severity": "mild"}],
        }
        for n in range(30)
    ]
    record = [r for r in resources if r is not severe] + mild + [severe]
    cards = _sign(make_app(tmp_path).test_client(), record, _orders(_patient(record), 1))
    card = cards_by_topic(cards.get_json()["cards"])["ig-hypersensitivity"]
    assert card["indicator"] == "critical"
    evidence = rendered(card["detail"]).split("**Evidence**\n")[1].split("\n\n")[0]
    assert evidence.split("\n")[0].startswith(f"- AllergyIntolerance/{severe['id']}"), evidence


def test_a_product_switch_is_the_first_revised_order_listed(tmp_path: Path) -> None:
    """A pharmacist's case: 29 rate revisions of Privigen were listed before the switch of the
    one Flebogamma order, which the cap then hid."""
    resources = resources_of("ivig-in-hfi-flebogamma")
    patient = _patient(resources)
    orders = [*_orders(patient, 29), order_for("flebogamma-10-iv", patient)]
    for order in orders:  # small doses: a 30-order course of 2 g/kg is a dose error first
        dosage = order["dosageInstruction"][0]
        dosage["timing"]["repeat"]["count"] = 1
        dosage["doseAndRate"][0]["doseQuantity"]["value"] = 0.05
        dosage["text"] = "0.05 g/kg IV once"
    body = hook_request("order-select", patient, orders, prefetch=full_prefetch(resources))
    response = make_app(tmp_path).test_client().post("/cds-services/ivig-order-select", json=body)
    details = [rendered(c["detail"]) for c in response.get_json()["cards"]]
    revised = [
        line
        for detail in details
        for line in detail.split("\n")
        if line.startswith("- Revised order for")
    ]
    assert revised, details
    assert "instead" in revised[0], revised[:3]
