"""The whole answer for the cases the pharmacist's review found wrong (issue 10), through the
HTTP service in both data modes (everything prefetched; everything fetched from a FHIR server).

Each case accepts what the cards offer and checks the result, not only which rules fired.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import responses
from builders import (
    CREATININE,
    HEIGHT,
    WEIGHT,
    allergy,
    condition,
    ig_order,
    observation,
    patient,
)
from conftest import (
    FHIR_BASE,
    FakeFhirServer,
    cards_by_topic,
    fired,
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    scenario_resources,
    service_id,
)
from flask.testing import FlaskClient

from cds_service.config import ConfigError
from hooks.knowledge_base import load_knowledge

KB = load_knowledge()
MODES = ("prefetch", "fhir-fetch")
MONTHLY = {"frequency": 1, "period": 4, "periodUnit": "wk"}
WEEKLY = {"frequency": 1, "period": 1, "periodUnit": "wk"}
SORBITOL = {p.brand for p in KB.catalogue.products if "sorbitol" in p.possible_excipients}
MALTOSE = {p.brand for p in KB.catalogue.products if "maltose" in p.possible_excipients}


def answer(
    client: FlaskClient,
    mock: responses.RequestsMock,
    mode: str,
    hook: str,
    resources: list[dict[str, Any]],
    orders: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    if mode == "fhir-fetch":
        FakeFhirServer(mock, resources)
    body = hook_request(
        hook,
        patient_id,
        orders,
        prefetch=full_prefetch(resources) if mode == "prefetch" else None,
        fhir_server=FHIR_BASE if mode == "fhir-fetch" else None,
    )
    response = client.post(f"/cds-services/{service_id(client, hook)}", json=body)
    assert response.status_code == 200, response.get_json()
    cards: list[dict[str, Any]] = response.get_json()["cards"]
    return cards


def updates(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        action["resource"]
        for card in cards
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action["type"] == "update"
    ]


def card_of(cards: list[dict[str, Any]], group: str) -> dict[str, Any]:
    found = [c for c in cards if c["source"]["topic"]["code"].startswith(f"IVIG{group}")]
    assert len(found) == 1, [c["source"]["topic"]["code"] for c in cards]
    return found[0]


def dose_of(order: dict[str, Any]) -> dict[str, Any]:
    quantity: dict[str, Any] = order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    return quantity


# --- the patients --------------------------------------------------------------------------


def adult(
    patient_id: str, *extra: dict[str, Any], born: str = "1976-03-01"
) -> list[dict[str, Any]]:
    """An adult with a recent weight, height and creatinine (so no data card)."""
    return [
        patient(patient_id, born),
        observation(patient_id, WEIGHT, 70, "kg", 1),
        observation(patient_id, HEIGHT, 170, "cm", 2),
        observation(patient_id, CREATININE, 0.9, "mg/dL", 3),
        *extra,
    ]


def gbs_course(patient_id: str, per_day: float) -> list[dict[str, Any]]:
    return [
        ig_order(
            patient_id,
            f"gbs-day-{day}",
            "Privigen",
            dose=per_day,
            day=f"2026-06-{15 + day:02d}",
            reason="guillain-barre-syndrome",
        )
        for day in range(5)
    ]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("mode", MODES)
def test_a_gbs_course_as_five_daily_orders_is_one_course(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str, hook: str
) -> None:
    pid = "gbs-five"
    resources = adult(pid, condition(pid, "guillain-barre-syndrome", "Guillain-Barré syndrome", 1))
    cards = answer(client, fhir_mock, mode, hook, resources, gbs_course(pid, 0.4))
    cards_by_topic(cards)  # one set of cards: no finding twice
    assert "dose-check" not in fired(cards), "0.4 g/kg × 5 days is the 2 g/kg course"
    for resource in updates(cards):
        assert dose_of(resource)["value"] == 0.4, "no suggestion changes a day's dose"


@pytest.mark.parametrize("mode", MODES)
def test_a_course_written_as_the_course_dose_each_day_is_flagged_once_and_never_multiplied(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    pid = "gbs-five-over"
    resources = adult(pid, condition(pid, "guillain-barre-syndrome", "Guillain-Barré syndrome", 1))
    cards = answer(client, fhir_mock, mode, "order-sign", resources, gbs_course(pid, 2))
    dose_cards = [c for c in cards if "dose-check" in json.dumps(c.get("extension", {}))]
    assert len(dose_cards) == 1, "the 10 g/kg total is one finding"
    # 5 orders × 2 g/kg = 10 g/kg (× 70 kg = 700 g): more than 6.6 g/kg (twice 3.3), a likely
    # dose error, so the dose card is critical and holds the implausible-dose finding too
    [dose_card] = dose_cards
    assert dose_card["indicator"] == "critical"
    assert "implausible-dose" in json.dumps(dose_card["extension"])
    assert "10 g/kg" in dose_card["summary"]
    assert "Course total: 10 g/kg > 6.6 g/kg" in dose_card["detail"]
    # No revised order: a change never multiplies across the five orders, and a revised order
    # of another card would keep the 10 g/kg
    assert updates(cards) == []


def hfi_child(pid: str) -> list[dict[str, Any]]:
    """A 7-year-old (20 kg) with hereditary fructose intolerance and ITP."""
    return [
        patient(pid, "2019-02-01"),
        observation(pid, WEIGHT, 20, "kg", 1),
        observation(pid, CREATININE, 0.4, "mg/dL", 2),
        condition(pid, "hereditary-fructose-intolerance", "Hereditary fructose intolerance", 1),
        condition(pid, "immune-thrombocytopenia", "Immune thrombocytopenia", 2),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_sorbitol_product_with_a_paediatric_dose_error_gets_one_revised_order(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    pid = "hfi-child"
    resources = hfi_child(pid)
    order = ig_order(
        pid,
        "flebogamma-child",
        "Flebogamma 10% DIF",
        dose=2,
        repeat={"frequency": 1, "period": 1, "periodUnit": "d", "count": 2},
        reason="immune-thrombocytopenia",
    )
    cards = answer(client, fhir_mock, mode, "order-sign", resources, [order])
    revised = updates(cards)
    assert len(revised) == 1, "one revised order, not one per card"
    product = card_of(cards, "PRODUCT")
    assert product["indicator"] == "critical"
    assert any(a["type"] == "update" for s in product["suggestions"] for a in s["actions"])
    [resource] = revised
    assert resource["medicationCodeableConcept"]["text"] not in SORBITOL
    assert dose_of(resource) != dose_of(order), "the corrected dose is in the same order"


@pytest.mark.parametrize("mode", MODES)
def test_rate_cap_and_adjusted_weight_dose_are_both_kept(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    pid = "obese-at-risk"
    resources = [
        patient(pid, "1970-05-01", "female"),
        observation(pid, WEIGHT, 110, "kg", 1),
        observation(pid, HEIGHT, 160, "cm", 2),
        observation(pid, CREATININE, 0.8, "mg/dL", 3),
        condition(pid, "hypertension", "Essential hypertension", 1),
        condition(pid, "cidp", "Chronic inflammatory demyelinating polyneuropathy", 2),
    ]
    order = ig_order(
        pid,
        "panzyga-cidp",
        "Panzyga",
        dose=0.4,
        repeat={"frequency": 1, "period": 1, "periodUnit": "d", "count": 5},
        rate_mg_kg_min=8,
        reason="cidp",
    )
    cards = answer(client, fhir_mock, mode, "order-sign", resources, [order])
    assert {"dosing-weight", "thrombosis-risk"} <= set(fired(cards))
    [resource] = updates(cards)
    dose = dose_of(resource)
    assert dose["unit"] == "g" and dose["value"] < 0.4 * 110, "the dose on adjusted weight"
    # A first infusion: from Panzyga's labelled initial rate (1 mg/kg/min) up to the at-risk cap
    rate = resource["dosageInstruction"][0]["doseAndRate"][0]["rateRange"]
    assert (rate["high"]["value"], rate["high"]["code"]) == (3.3, "mg/kg/min"), "the at-risk cap"
    assert (rate["low"]["value"], rate["low"]["code"]) == (1, "mg/kg/min"), "the initial rate"
    assert "infusion-rate" in fired(cards)


@pytest.mark.parametrize("mode", MODES)
def test_diabetic_with_corn_allergy_on_a_maltose_product(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    pid = "maltose-diabetic-corn"
    resources = adult(
        pid,
        condition(pid, "diabetes", "Type 1 diabetes mellitus on insulin", 1),
        condition(pid, "primary-immunodeficiency", "Common variable immunodeficiency", 2),
        allergy(pid, "Corn", 1),
    )
    order = ig_order(
        pid,
        "octagam-pid",
        "Octagam 10%",
        dose=0.5,
        repeat=MONTHLY,
        reason="primary-immunodeficiency",
    )
    cards = answer(client, fhir_mock, mode, "order-sign", resources, [order])
    assert len(cards) <= 3, [c["summary"] for c in cards]
    product = card_of(cards, "PRODUCT")
    lead = product["extension"]["org.ivig-cds.findings"][0]["code"]
    assert lead == "glucose-meter-interference", "the hazard that can kill leads"
    assert "glucose" in product["summary"].lower()
    [resource] = updates(cards)
    assert resource["medicationCodeableConcept"]["text"] not in MALTOSE
    assert any(a["type"] == "update" for s in product["suggestions"] for a in s["actions"])


def on_record(
    pid: str, order_id: str, product: str, period: tuple[str, str], status: str
) -> dict[str, Any]:
    """A monthly 0.5 g/kg PID order on record, given over ``period``."""
    start, end = period
    return ig_order(
        pid,
        order_id,
        product,
        dose=0.5,
        repeat={**MONTHLY, "boundsPeriod": {"start": start, "end": end}},
        reason="primary-immunodeficiency",
        status=status,
        authored=start,
    )


def maintenance(pid: str, *, on_therapy: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    record = adult(
        pid,
        condition(pid, "hypertension", "Essential hypertension", 1),
        condition(pid, "diabetes", "Type 2 diabetes mellitus", 2),
        condition(pid, "primary-immunodeficiency", "Common variable immunodeficiency", 3),
    )
    if on_therapy:
        last_month = ("2026-05-18", "2026-06-14")
        record.append(on_record(pid, "privigen-last-month", "Privigen", last_month, "completed"))
    order = ig_order(
        pid, "privigen-pid", "Privigen", dose=0.5, repeat=MONTHLY, reason="primary-immunodeficiency"
    )
    return record, order


@pytest.mark.parametrize("mode", MODES)
def test_stable_maintenance_patient_gets_an_info_boxed_warning_and_no_guidance(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    record, order = maintenance("stable-maint", on_therapy=True)
    cards = answer(client, fhir_mock, mode, "order-sign", record, [order])
    boxed = card_of(cards, "BOXEDWARNING")
    assert boxed["indicator"] == "info"
    assert boxed["source"]["topic"]["code"] == "IVIGBOXEDWARNINGINFO"
    assert not [c for c in cards if "APPROPRIATENESS" in c["source"]["topic"]["code"]]


@pytest.mark.parametrize("mode", MODES)
def test_the_same_patients_first_infusion_gets_a_warning(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    record, order = maintenance("first-infusion", on_therapy=False)
    cards = answer(client, fhir_mock, mode, "order-sign", record, [order])
    boxed = card_of(cards, "BOXEDWARNING")
    assert boxed["indicator"] == "warning"
    assert boxed["source"]["topic"]["code"].startswith("IVIGBOXEDWARNINGWARNING")


@pytest.mark.parametrize("mode", MODES)
def test_duplicate_therapy_names_the_other_order(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    pid = "duplicate"
    record = adult(
        pid,
        condition(pid, "primary-immunodeficiency", "Common variable immunodeficiency", 1),
        on_record(pid, "gamunex-current", "Gamunex-C", ("2026-06-01", "2026-12-31"), "active"),
    )
    order = ig_order(
        pid, "privigen-new", "Privigen", dose=0.5, repeat=MONTHLY, reason="primary-immunodeficiency"
    )
    cards = answer(client, fhir_mock, mode, "order-sign", record, [order])
    product = card_of(cards, "PRODUCT")
    assert "duplicate-therapy" in fired([product])
    assert fired([product])["duplicate-therapy"] == "warning"
    assert "gamunex-current" in product["detail"].replace("\\", "")
    [remove] = [s for s in product["suggestions"] if s["actions"][0]["type"] == "delete"]
    assert remove["isRecommended"], "keep one: this draft goes unless the clinician says otherwise"
    assert remove["actions"][0]["resourceId"] == "MedicationRequest/privigen-new"


@pytest.mark.parametrize("mode", MODES)
def test_iv_to_sc_switch_says_to_stop_the_iv_order(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    pid = "iv-to-sc"
    record = adult(
        pid,
        condition(pid, "primary-immunodeficiency", "Common variable immunodeficiency", 1),
        ig_order(
            pid,
            "privigen-iv-current",
            "Privigen",
            dose=0.5,
            repeat=MONTHLY,
            reason="primary-immunodeficiency",
            status="active",
            authored="2026-05-20",
        ),
    )
    order = ig_order(
        pid,
        "hizentra-new",
        "Hizentra",
        dose=10,
        unit="g",
        route="SC",
        repeat=WEEKLY,
        reason="primary-immunodeficiency",
    )
    cards = answer(client, fhir_mock, mode, "order-sign", record, [order])
    product = card_of(cards, "PRODUCT")
    assert "scig-conversion" in fired([product])
    assert "duplicate-therapy" not in fired(cards), "the switch is one product card"
    assert re.search(r"stop", product["detail"], re.IGNORECASE)
    deletes = [
        a["resourceId"]
        for s in product["suggestions"]
        for a in s["actions"]
        if a["type"] == "delete"
    ]
    assert deletes == ["MedicationRequest/privigen-iv-current"]
    stop = next(s for s in product["suggestions"] if s["actions"][0]["type"] == "delete")
    assert stop["isRecommended"], "accepting what is recommended leaves one therapy"


@pytest.fixture
def epic_client(tmp_path: Path) -> FlaskClient:
    return make_app(tmp_path, EHR_PROFILE="epic").test_client()


@pytest.mark.parametrize("mode", MODES)
def test_the_epic_profile_offers_create_and_delete_only_one_action_each(
    epic_client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    pid = "epic-switch"
    resources = adult(
        pid,
        condition(pid, "diabetes", "Type 1 diabetes mellitus on insulin", 1),
        condition(pid, "hypertension", "Essential hypertension", 2),
        condition(pid, "primary-immunodeficiency", "Common variable immunodeficiency", 3),
    )
    order = ig_order(
        pid,
        "octagam-epic",
        "Octagam 10%",
        dose=0.5,
        repeat=MONTHLY,
        rate_mg_kg_min=8,
        reason="primary-immunodeficiency",
    )
    cards = answer(epic_client, fhir_mock, mode, "order-sign", resources, [order])
    for card in cards:
        if card.get("suggestions"):
            assert card["selectionBehavior"] == "any"
        for suggestion in card.get("suggestions", []):
            assert len(suggestion["actions"]) == 1
            assert suggestion["actions"][0]["type"] in ("create", "delete")
    product = card_of(cards, "PRODUCT")
    labels = [s["label"] for s in product["suggestions"]]
    assert labels[0].startswith("Remove ") and labels[1].startswith("Order "), labels
    assert all(s.get("isRecommended") for s in product["suggestions"][:2])
    create = product["suggestions"][1]["actions"][0]
    assert create["resource"]["medicationCodeableConcept"]["text"] not in MALTOSE
    for value in ("dose 0.5 g/kg", "route IV", "every 4 weeks", "8 mg/kg/min"):
        assert value in create["description"], f"the values to enter are written out: {value}"


@pytest.mark.parametrize("mode", MODES)
def test_do_not_give_recommends_removal_and_holds_the_reaction(
    client: FlaskClient, fhir_mock: responses.RequestsMock, mode: str
) -> None:
    pid = "iga-antibodies-reaction"
    resources = adult(
        pid,
        condition(pid, "iga-deficiency", "Selective IgA deficiency", 1),
        {**condition(pid, "iga-deficiency", "x", 2), "code": {"text": "Anti-IgA antibodies"}},
        allergy(pid, "Immune globulin", 1),
    )
    order = ig_order(pid, "privigen-stop", "Privigen", dose=0.5, repeat=MONTHLY)
    cards = answer(client, fhir_mock, mode, "order-sign", resources, [order])
    stop = card_of(cards, "DONOTGIVE")
    assert stop["indicator"] == "critical"
    assert {"iga-deficiency", "ig-hypersensitivity"} <= set(fired([stop])), "one card, both"
    assert not [c for c in cards if "IVIGDOSE" in c["source"]["topic"]["code"]], "no premedicate"
    first, *others = stop["suggestions"]
    assert first["isRecommended"] and first["actions"][0]["type"] == "delete"
    assert all(not s.get("isRecommended") for s in others)
    if others:
        assert stop["selectionBehavior"] == "at-most-one"
        assert "only if immune globulin is unavoidable" in others[0]["label"]
    assert not updates([c for c in cards if c is not stop]), "no revised order of it elsewhere"


def accept_all(order: dict[str, Any], cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The drafts after the clinician accepts every suggestion on the screen."""
    drafts = {f"MedicationRequest/{order['id']}": order}
    for card in cards:
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                if action["type"] == "update":
                    drafts[f"MedicationRequest/{action['resource']['id']}"] = action["resource"]
                elif action["type"] == "create":
                    new = {**action["resource"], "id": f"new-{suggestion['uuid']}"}
                    drafts[f"{new['resourceType']}/{new['id']}"] = new
                else:
                    drafts.pop(action["resourceId"], None)
    return list(drafts.values())


def cidp_on_octagam(pid: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    resources = adult(
        pid,
        condition(pid, "venous-thromboembolism", "Deep venous thrombosis", 1),
        condition(pid, "cidp", "Chronic inflammatory demyelinating polyneuropathy", 2),
    )
    daily = {"frequency": 1, "period": 1, "periodUnit": "d", "count": 5}
    return resources, ig_order(pid, "o-cidp", "Octagam 10%", dose=0.4, reason="cidp", repeat=daily)


def diabetic_on_octagam(pid: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    resources = adult(
        pid,
        condition(pid, "diabetes", "Type 1 diabetes mellitus on insulin", 1),
        condition(pid, "primary-immunodeficiency", "Common variable immunodeficiency", 2),
        allergy(pid, "Corn", 1),
    )
    reason = "primary-immunodeficiency"
    return resources, ig_order(pid, "o-pid", "Octagam 10%", dose=0.5, repeat=MONTHLY, reason=reason)


@pytest.mark.parametrize("case", [cidp_on_octagam, diabetic_on_octagam])
def test_select_accept_everything_then_sign_asks_for_nothing_more(
    client: FlaskClient, case: Any
) -> None:
    """Select, accept every suggestion, sign: nothing left to revise, no companion order twice
    (a hydration order accepted at order-select is among the drafts at order-sign)."""
    pid = f"accept-{case.__name__}".replace("_", "-")  # a FHIR id: no underscores
    resources, order = case(pid)
    body = hook_request("order-select", pid, [order], prefetch=full_prefetch(resources))
    selected = client.post(f"/cds-services/{service_id(client, 'order-select')}", json=body)
    cards = selected.get_json()["cards"]
    assert updates(cards), "the select answer offers a revised order"
    drafts = accept_all(order, cards)
    body = hook_request("order-sign", pid, drafts, prefetch=full_prefetch(resources))
    again = client.post(f"/cds-services/{service_id(client, 'order-sign')}", json=body)
    signed = again.get_json()["cards"]
    assert not updates(signed), "nothing left to revise"
    offered = [s["label"] for c in signed for s in c.get("suggestions", [])]
    assert not offered, f"suggested again: {offered}"
    assert not [c for c in signed if c["indicator"] == "critical"]


SITE_CODE = {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288", "code": "31337"}


@pytest.mark.parametrize("configured", [False, True])
def test_epic_orders_a_switched_product_by_the_sites_preference_list_code(
    tmp_path: Path, configured: bool
) -> None:
    """Gamunex-C (labelled for ITP) has no verified RxNorm code: Epic gets an "Order" for it
    only with the site's preference-list code (IVIG_CDS_EPIC_PRODUCT_CODES), else text."""
    codes = {"EPIC_PRODUCT_CODES": json.dumps({"gamunex-c": SITE_CODE})} if configured else {}
    client = make_app(tmp_path, EHR_PROFILE="epic", **codes).test_client()
    pid = "hfi-child-epic"
    resources = hfi_child(pid)
    order = ig_order(
        pid, "flebogamma-epic", "Flebogamma 10% DIF", dose=1, reason="immune-thrombocytopenia"
    )
    body = hook_request("order-sign", pid, [order], prefetch=full_prefetch(resources))
    cards = client.post("/cds-services/ivig-order-sign", json=body).get_json()["cards"]
    product = card_of(cards, "PRODUCT")
    creates = [
        a["resource"]
        for s in product.get("suggestions", [])
        for a in s["actions"]
        if a["type"] == "create"
    ]
    if configured:
        [resource] = creates
        assert resource["medicationCodeableConcept"]["coding"] == [SITE_CODE]
        assert resource["medicationCodeableConcept"]["text"] == "Gamunex-C"
    else:
        assert not creates
        assert "no site preference-list code" in product["detail"].replace("\\", "")


def test_a_preference_list_code_for_an_unknown_product_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a catalogue product id"):
        make_app(tmp_path, EPIC_PRODUCT_CODES=json.dumps({"no-such-product": SITE_CODE}))


def test_a_card_left_after_its_orders_were_accepted_names_them(client: FlaskClient) -> None:
    """Hereditary fructose intolerance, Flebogamma, 2 g/kg, no ABO group: accept everything
    (the switch, the ABO group, the hemoglobin) and select again. The hemolysis card stays
    (the risk is unknown until the result), asks for nothing again, and says the orders are
    drafted, instead of repeating "no ABO group" as if nothing had been done."""
    resources = scenario_resources("ivig-in-hfi-flebogamma")
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    order = order_for("flebogamma-10-iv", pid)
    body = hook_request("order-select", pid, [order], prefetch=full_prefetch(resources))
    first = client.post(f"/cds-services/{service_id(client, 'order-select')}", json=body)
    cards = first.get_json()["cards"]
    asked = {s["label"] for c in cards for s in c.get("suggestions", [])}
    assert {"Order: ABO blood group", "Order: Hemoglobin"} <= asked
    drafts = accept_all(order, cards)
    body = hook_request("order-select", pid, drafts, prefetch=full_prefetch(resources))
    again = client.post(f"/cds-services/{service_id(client, 'order-select')}", json=body)
    left = again.get_json()["cards"]
    assert not [s for c in left for s in c.get("suggestions", [])], "nothing asked twice"
    [hemolysis] = [c for c in left if "hemolysis-risk" in fired([c])]
    abo = next(d["id"] for d in drafts if d.get("code", {}).get("text") == "ABO blood group")
    assert "Already among this session's orders: ABO blood group" in hemolysis["detail"]
    assert abo.replace("-", "\\-") in hemolysis["detail"]
    assert "Hemoglobin (ServiceRequest/" in hemolysis["detail"]
