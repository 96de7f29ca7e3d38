"""infusion-rate and the hydration advice (card contract §8 "Rate" and "Volume"): the figures
are computed by hand here, never by calling the code under test."""

from __future__ import annotations

import itertools
from typing import Any

from builders import WEIGHT, condition, ig_order, observation, patient, quantity
from contexts import KB, PATIENT_ID, SETTINGS, TODAY, context_of

from hooks.card_builder import make_cards
from hooks.composer import compose
from hooks.context.model import IgOrder
from hooks.engine import Settings, evaluate
from hooks.findings import CreateOrder, Finding, ProductChange, RateCap, ReviseOrder
from hooks.knowledge_base import thresholds_for_site
from hooks.registry import REGISTRY
from hooks.resources import created, revised
from hooks.text import NOT_CHECKED

ADULT = patient(PATIENT_ID, "1986-03-10", "female")
MONTHLY = {"frequency": 1, "period": 4, "periodUnit": "wk"}
PID = condition(PATIENT_ID, "primary-immunodeficiency", "Common variable immunodeficiency", 1)
HTN = condition(PATIENT_ID, "hypertension", "Essential hypertension", 2)
W70 = observation(PATIENT_ID, WEIGHT, 70, "kg", 0)


def given_before(product: str) -> dict[str, Any]:
    """The same patient's previous administration, 4 weeks ago (a maintenance order)."""
    return ig_order(
        PATIENT_ID, "last", product, dose=0.5, status="completed", authored="2026-05-18"
    )


def pid_order(
    product: str, rate: float, unit: str, reason: str | None = "primary-immunodeficiency"
) -> dict[str, Any]:
    order = ig_order(PATIENT_ID, "o1", product, dose=0.5, repeat=MONTHLY, reason=reason)
    order["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"] = quantity(rate, unit)
    return order


def run(
    record: list[dict[str, Any]], order: dict[str, Any], settings: Settings = SETTINGS
) -> tuple[dict[str, Finding], Any]:
    ctx = context_of(record, [order], patient=ADULT)
    findings = evaluate(ctx, KB, settings)
    return {f.topic: f for f in findings}, compose(findings, ctx, KB, settings)


def revised_rate(plans: Any) -> dict[str, Any]:
    [revision] = [r for p in plans for r in p.revisions]
    rates: dict[str, Any] = revision.resource["dosageInstruction"][0]["doseAndRate"][0]
    return rates


def rechecked(record: list[dict[str, Any]], plans: Any) -> dict[str, Finding]:
    [revision] = [r for p in plans for r in p.revisions]
    again, _ = run(record, revision.resource)
    return again


def test_a_rate_in_ml_per_hour_above_the_labelled_maximum_is_revised_to_it() -> None:
    # 420 mL/h × 100 mg/mL = 42000 mg/h = 700 mg/min; ÷ 70 kg = 10 mg/kg/min > 8 (Privigen, PI)
    # limit: 8 mg/kg/min × 70 kg = 560 mg/min = 33.6 g/h = 336 mL/h of a 10% product
    record = [W70, PID, given_before("Privigen")]
    found, plans = run(record, pid_order("Privigen", 420, "mL/h"))
    rate = found["infusion-rate"]
    assert rate.indicator == "warning"
    text = "\n".join((rate.summary, *rate.evidence, rate.recommendation))
    assert "420 × 100 mg/mL ÷ 60 min/h ÷ 70 kg = 10 mg/kg/min" in text
    assert "8 mg/kg/min × 70 kg = 560 mg/min = 33.6 g/h = 336 mL/h" in text
    assert "labelled maximum of Privigen for PI" in text
    assert revised_rate(plans)["rateQuantity"]["value"] == 8
    assert revised_rate(plans)["rateQuantity"]["code"] == "mg/kg/min"
    assert "infusion-rate" not in rechecked(record, plans)


def test_a_rate_at_the_labelled_maximum_is_not_flagged() -> None:
    # 336 mL/h × 100 mg/mL ÷ 60 ÷ 70 kg = 8 mg/kg/min: at the PI maximum, not above it
    found, _ = run([W70, PID, given_before("Privigen")], pid_order("Privigen", 336, "mL/h"))
    assert "infusion-rate" not in found


def test_the_at_risk_cap_applies_with_a_boxed_warning_factor() -> None:
    # Octagam 10%, no labelled PI rate: lowest labelled maximum 4 (dermatomyositis); with
    # hypertension the at-risk cap 3.3 mg/kg/min: 3.3 × 70 × 60 ÷ 100 = 138.6 mL/h
    record = [W70, PID, HTN, given_before("Octagam 10%")]
    found, plans = run(record, pid_order("Octagam 10%", 6, "mg/kg/min"))
    text = "\n".join(found["infusion-rate"].evidence)
    assert "3.3 mg/kg/min (138.6 mL/h)" in text and "at risk" in text
    assert "4 mg/kg/min (168 mL/h)" in text  # 4 × 70 × 60 ÷ 100
    assert revised_rate(plans)["rateQuantity"]["value"] == 3.3
    # without the risk factor, 6 is above the label's 4 only
    found, plans = run(
        [W70, PID, given_before("Octagam 10%")], pid_order("Octagam 10%", 6, "mg/kg/min")
    )
    assert revised_rate(plans)["rateQuantity"]["value"] == 4


def test_a_first_infusion_gets_a_range_from_the_initial_rate() -> None:
    # Privigen PI: initial 0.5 mg/kg/min = 0.5 × 70 × 60 ÷ 100 = 21 mL/h; maximum 8 (336 mL/h)
    found, plans = run([W70, PID], pid_order("Privigen", 8, "mg/kg/min"))
    rate = found["infusion-rate"]
    assert rate.indicator == "warning"
    assert "first infusion" in "\n".join(rate.evidence)
    assert "Start at 0.5 mg/kg/min (21 mL/h)" in rate.recommendation
    span = revised_rate(plans)["rateRange"]
    assert (span["low"]["value"], span["high"]["value"]) == (0.5, 8)
    assert "infusion-rate" not in rechecked([W70, PID], plans)


def test_a_new_product_and_a_long_gap_are_titration_infusions_too() -> None:
    found, _ = run([W70, PID, given_before("Gamunex-C")], pid_order("Privigen", 8, "mg/kg/min"))
    assert "new product" in "\n".join(found["infusion-rate"].evidence)
    old = ig_order(
        PATIENT_ID, "last", "Privigen", dose=0.5, status="completed", authored="2026-03-01"
    )
    found, _ = run([W70, PID, old], pid_order("Privigen", 8, "mg/kg/min"))
    assert "106 days since the last administration" in "\n".join(found["infusion-rate"].evidence)


def test_an_unverified_labelled_rate_is_quoted_and_never_written() -> None:
    # Flebogamma 10% DIF: PI maximum 8 mg/kg/min, marked unverified in the reference
    record = [W70, PID, given_before("Flebogamma 10% DIF")]
    found, plans = run(record, pid_order("Flebogamma 10% DIF", 10, "mg/kg/min"))
    rate = found["infusion-rate"]
    assert NOT_CHECKED in "\n".join(rate.evidence)
    assert not rate.proposals
    assert not [
        r for p in plans for r in p.revisions if any(isinstance(c, RateCap) for c in r.changes)
    ]


def test_a_rate_that_cannot_be_converted_is_said_so() -> None:
    found, _ = run([PID, given_before("Privigen")], pid_order("Privigen", 420, "mL/h"))
    assert found["infusion-rate"].indicator == "info"
    assert "no recent body weight" in found["infusion-rate"].summary


def test_a_switch_restates_a_volume_rate_at_the_ordered_concentration() -> None:
    # 336 mL/h of Octagam 5% (50 mg/mL) at 70 kg: 336 × 50 ÷ 60 ÷ 70 = 4 mg/kg/min, kept on a 10%
    # product (the same 336 mL/h of a 10% product would be 8 mg/kg/min)
    raw = pid_order("Octagam 5%", 336, "mL/h")
    ctx = context_of([W70], [raw], patient=ADULT)
    [order] = ctx.ig_orders
    assert isinstance(order, IgOrder)
    privigen = KB.catalogue.by_id("privigen")
    resource = revised(order, (ProductChange(privigen, "switch"), RateCap(8, None, 70, 100)))
    rate = resource["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]
    assert (rate["value"], rate["code"]) == (4, "mg/kg/min")


# --- volume ---------------------------------------------------------------------------------


def hydration_orders(found: Finding) -> list[CreateOrder]:
    return [
        a
        for p in found.proposals
        for a in p.actions
        if isinstance(a, CreateOrder) and a.orderable == "pre-infusion-hydration"
    ]


def test_heart_failure_gets_the_volume_and_no_hydration_order() -> None:
    # 0.4 g/kg × 70 kg = 28 g; 28 g ÷ 10 g/100 mL = 280 mL; 280 ÷ 70 = 4 mL/kg
    failing = condition(PATIENT_ID, "heart-failure", "Heart failure", 3)
    found, _ = run([W70, failing], ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4))
    thrombosis = found["thrombosis-risk"]
    assert not hydration_orders(thrombosis)
    text = "\n".join(thrombosis.evidence)
    assert "280 mL per administration, 4 mL/kg" in text
    assert "volume-sensitive" in thrombosis.recommendation


def test_a_large_daily_volume_makes_the_patient_volume_sensitive() -> None:
    # 2 g/kg of a 5% product at 70 kg: 140 g ÷ 5 g/100 mL = 2800 mL = 40 mL/kg/day (> 20; > 1 L)
    found, _ = run([W70, HTN], ig_order(PATIENT_ID, "o1", "Octagam 5%", dose=2))
    text = "\n".join(found["thrombosis-risk"].evidence)
    assert "Order volume 40 mL/kg/day (> 20 mL/kg/day)" in text
    assert "Order volume 2800 mL/day (> 1000 mL/day)" in text


def test_without_a_site_protocol_the_card_quotes_the_label() -> None:
    found, _ = run([W70, HTN], ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4))
    thrombosis = found["thrombosis-risk"]
    assert not hydration_orders(thrombosis)
    assert "ensure adequate hydration" in thrombosis.recommendation


def test_a_site_protocol_orders_its_fluid_volume_and_rate() -> None:
    overrides = {"HYDRATION_PROTOCOL_VOLUME_ML": 500, "HYDRATION_PROTOCOL_RATE_ML_H": 250}
    thresholds, _ = thresholds_for_site(KB, {}, overrides)
    settings = Settings(REGISTRY.in_display_order(list(KB.topics)), thresholds)
    found, _ = run([W70, HTN], ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4), settings)
    [order] = hydration_orders(found["thrombosis-risk"])
    assert (order.volume_ml, order.rate_ml_h) == (500, 250)
    resource = created(
        KB.orderables[order.orderable],
        f"Patient/{PATIENT_ID}",
        TODAY,
        order.for_order,
        order.why,
        volume_ml=order.volume_ml,
        rate_ml_h=order.rate_ml_h,
    )
    [dose_and_rate] = resource["dosageInstruction"][0]["doseAndRate"]
    assert dose_and_rate["doseQuantity"]["value"] == 500
    assert dose_and_rate["rateQuantity"]["value"] == 250
    # a volume-sensitive patient gets none, protocol or not
    failing = condition(PATIENT_ID, "heart-failure", "Heart failure", 3)
    found, _ = run([W70, failing], ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4), settings)
    assert not hydration_orders(found["thrombosis-risk"])


def test_revise_order_is_the_rate_rules_only_change() -> None:
    found, _ = run([W70, PID, given_before("Privigen")], pid_order("Privigen", 420, "mL/h"))
    [proposal] = found["infusion-rate"].proposals
    [action] = proposal.actions
    assert isinstance(action, ReviseOrder)
    assert all(isinstance(c, RateCap) for c in action.changes)


def epic_answer(record: list[dict[str, Any]], order: dict[str, Any]) -> tuple[str, list[str]]:
    """The card text and the suggestion action types of the Epic profile."""
    ctx = context_of(record, [order], patient=ADULT)
    plans = compose(evaluate(ctx, KB, SETTINGS), ctx, KB, SETTINGS)
    counter = itertools.count()
    cards = [c.to_json() for c in make_cards(plans, ctx, KB, lambda: f"u{next(counter)}", "epic")]
    text = " ".join(card["detail"] for card in cards).replace("\\", "")
    actions = [
        a["type"] for card in cards for s in card.get("suggestions", []) for a in s["actions"]
    ]
    return text, actions


def test_the_epic_profile_writes_the_rate_out_in_both_units() -> None:
    """Epic: a rate change that keeps the product is text, every value written out."""
    text, actions = epic_answer([W70, PID], pid_order("Privigen", 420, "mL/h"))
    # first infusion: 0.5 mg/kg/min = 21 mL/h, up to 8 mg/kg/min = 336 mL/h
    assert "start at 0.5 mg/kg/min (21 mL/h), then up to 8 mg/kg/min (336 mL/h)" in text
    assert "update" not in actions


def test_esrd_dialysis_oliguria_and_infancy_are_volume_sensitive() -> None:
    dialysis = {
        "resourceType": "Condition",
        "id": f"{PATIENT_ID}-dialysis",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"text": "Dependence on hemodialysis"},
    }
    cases = [
        condition(PATIENT_ID, "end-stage-renal-disease", "End-stage renal disease", 3),
        condition(PATIENT_ID, "oliguria", "Oliguric acute kidney injury", 3),
        dialysis,
    ]
    order = ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4)
    for case in cases:
        found, _ = run([W70, HTN, case], order)
        boxed = found["thrombosis-risk"]  # hypertension: the card that would suggest fluids
        assert "Volume-sensitive" in "\n".join(boxed.evidence), case["code"]
        assert not hydration_orders(boxed)
    infant = patient(PATIENT_ID, "2025-12-01", "male")  # 6 months old on 2026-06-15
    ctx = context_of([observation(PATIENT_ID, WEIGHT, 7, "kg", 0), HTN], [order], patient=infant)
    [thrombosis] = [f for f in evaluate(ctx, KB, SETTINGS) if f.topic == "thrombosis-risk"]
    assert "Age under 1" in "\n".join(thrombosis.evidence)
    # 0.4 g/kg × 7 kg = 2.8 g ÷ 10 g/100 mL = 28 mL = 4 mL/kg
    assert "28 mL per administration, 4 mL/kg" in "\n".join(thrombosis.evidence)


def test_pregnancy_and_a_not_pregnant_record_are_not_volume_sensitivity() -> None:
    """Contract §8 "Volume" lists heart failure, ESRD or dialysis, oliguric AKI, age under 1 and
    a large order volume: a pregnancy record (or a not-pregnant one) keeps the label's hydration
    advice (found in the pharmacist's review: both once made the patient "volume-sensitive")."""
    order = ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4)
    for name, display in (("pregnancy", "Pregnancy"), ("not-pregnant", "Not pregnant")):
        found, _ = run([W70, HTN, condition(PATIENT_ID, name, display, 3)], order)
        boxed = found["thrombosis-risk"]
        assert "Volume-sensitive" not in "\n".join(boxed.evidence), name
        assert "ensure adequate hydration" in boxed.recommendation, name


def test_a_volume_sensitive_patient_on_a_5_percent_product_is_offered_a_10_percent_one() -> None:
    """Contract §8 "Volume": heart failure, Octagam 5% 0.4 g/kg × 70 kg = 28 g = 560 mL a day
    (8 mL/kg); a 10% product of the route halves it (280 mL). Accepted, nothing more is asked."""
    failing = condition(PATIENT_ID, "heart-failure", "Heart failure", 3)
    record = [W70, failing]
    found, plans = run(record, ig_order(PATIENT_ID, "o1", "Octagam 5%", dose=0.4))
    switches = [
        c
        for p in found["thrombosis-risk"].proposals
        for a in p.actions
        if isinstance(a, ReviseOrder)
        for c in a.changes
        if isinstance(c, ProductChange)
    ]
    assert [(c.product.concentration_percent or 0) >= 10 for c in switches] == [True]
    assert "560 mL per administration, 8 mL/kg" in "\n".join(found["thrombosis-risk"].evidence)
    again = rechecked(record, plans)
    assert not any(
        isinstance(c, ProductChange)
        for f in again.values()
        for p in f.proposals
        for a in p.actions
        if isinstance(a, ReviseOrder)
        for c in a.changes
    )


# --- a titration infusion ordered without a rate (contract §8 "Rate") ------------------------


def unrated(product: str) -> dict[str, Any]:
    return ig_order(
        PATIENT_ID, "o1", product, dose=0.5, repeat=MONTHLY, reason="primary-immunodeficiency"
    )


def test_a_first_infusion_without_a_rate_gets_the_range_as_information() -> None:
    # Privigen PI: initial 0.5 mg/kg/min × 70 kg = 35 mg/min = 2.1 g/h = 21 mL/h of 100 mg/mL;
    # maximum 8 mg/kg/min × 70 kg = 560 mg/min = 33.6 g/h = 336 mL/h
    found, plans = run([W70, PID], unrated("Privigen"))
    rate = found["infusion-rate"]
    assert rate.indicator == "info"
    text = "\n".join(rate.evidence)
    assert "Ordered rate: none stated" in text
    assert "first infusion" in text
    assert "0.5 mg/kg/min × 70 kg = 35 mg/min = 2.1 g/h = 21 mL/h" in text
    assert "8 mg/kg/min × 70 kg = 560 mg/min = 33.6 g/h = 336 mL/h" in text
    assert rate.recommendation.startswith("Start at 0.5 mg/kg/min (21 mL/h)")
    span = revised_rate(plans)["rateRange"]
    assert (span["low"]["value"], span["high"]["value"]) == (0.5, 8)
    assert "infusion-rate" not in rechecked([W70, PID], plans)


def test_a_maintenance_infusion_without_a_rate_gets_no_rate_card() -> None:
    found, _ = run([W70, PID, given_before("Privigen")], unrated("Privigen"))
    assert "infusion-rate" not in found


def test_with_a_boxed_warning_factor_the_range_is_on_the_boxed_warning_card_only() -> None:
    # hypertension: the thrombosis card's minimum-rate revision carries the same 0.5 to 8 range
    record = [W70, PID, HTN]
    found, plans = run(record, unrated("Privigen"))
    assert "infusion-rate" not in found
    span = revised_rate(plans)["rateRange"]
    assert (span["low"]["value"], span["high"]["value"]) == (0.5, 8)
    assert "infusion-rate" not in rechecked(record, plans)


def test_an_unverified_initial_rate_without_an_ordered_rate_is_quoted_not_written() -> None:
    found, plans = run([W70, PID], unrated("Flebogamma 10% DIF"))
    rate = found["infusion-rate"]
    assert NOT_CHECKED in "\n".join(rate.evidence)
    assert not rate.proposals and "not written into the order" in rate.recommendation
    assert not [
        r for p in plans for r in p.revisions if any(isinstance(c, RateCap) for c in r.changes)
    ]


def test_epic_gets_the_titration_of_an_unrated_order_as_text() -> None:
    text, actions = epic_answer([W70, PID], unrated("Privigen"))
    assert "start at 0.5 mg/kg/min (21 mL/h), then up to 8 mg/kg/min (336 mL/h)" in text
    assert "update" not in actions


def test_no_rate_is_written_into_an_order_whose_route_is_not_given() -> None:
    # Gammagard Liquid is labelled IV and SC: with no route the IV checks run on an assumed IV
    # route, so the range is quoted (0.8 mg/kg/min × 70 kg × 60 ÷ 100 = 33.6 mL/h), not written
    order = unrated("Gammagard Liquid")
    del order["dosageInstruction"][0]["route"]
    found, plans = run([W70, PID], order)
    rate = found["infusion-rate"]
    assert "start at 0.8 mg/kg/min (33.6 mL/h)" in rate.summary
    assert not rate.proposals and "route is not given" in rate.recommendation
    assert not [
        r for p in plans for r in p.revisions if any(isinstance(c, RateCap) for c in r.changes)
    ]


def test_a_switch_back_to_a_product_given_long_ago_is_a_new_product() -> None:
    # Privigen in 2024, Gammagard Liquid 4 weeks ago, Privigen again: a switch (contract §8)
    old = ig_order(
        PATIENT_ID, "old", "Privigen", dose=0.5, status="completed", authored="2024-03-01"
    )
    found, plans = run([W70, PID, old, given_before("Gammagard Liquid")], unrated("Privigen"))
    rate = found["infusion-rate"]
    assert "new product: the patient's latest immune globulin is Gammagard Liquid" in (
        "\n".join(rate.evidence)
    )
    span = revised_rate(plans)["rateRange"]
    assert (span["low"]["value"], span["high"]["value"]) == (0.5, 8)


def test_the_titration_order_says_the_rate_in_ml_per_hour_for_the_nurse() -> None:
    _, plans = run([W70, PID], unrated("Privigen"))
    [revision] = [r for p in plans for r in p.revisions]
    assert revision.resource is not None
    [instruction] = revision.resource["dosageInstruction"][0]["additionalInstruction"]
    assert instruction["text"] == (
        "Titration infusion: start at 0.5 mg/kg/min (21 mL/h); if tolerated, increase "
        "stepwise to at most 8 mg/kg/min (336 mL/h)"
    )


def test_no_rate_is_written_on_a_boxed_warning_card_when_the_route_is_not_given() -> None:
    order = unrated("Gammagard Liquid")
    del order["dosageInstruction"][0]["route"]
    found, plans = run([W70, PID, HTN], order)
    assert "infusion-rate" not in found  # the boxed-warning card speaks for the rate
    assert not [
        r for p in plans for r in p.revisions if any(isinstance(c, RateCap) for c in r.changes)
    ]
    assert "route is not given" in "\n".join(
        c.text for p in plans for r in p.revisions for c in r.changes if hasattr(c, "text")
    )


def test_without_a_usable_weight_no_rate_is_written() -> None:
    found, plans = run([PID], unrated("Privigen"))
    rate = found["infusion-rate"]
    assert not rate.proposals and "without a usable body weight" in rate.recommendation
    assert "no usable body weight" in "\n".join(rate.evidence)
    assert not [r for p in plans for r in p.revisions]


def test_a_product_switch_takes_the_new_products_rates_and_drops_the_old_ones() -> None:
    """Hyperprolinemia on Privigen: the revised order is another product; the card quoting
    Privigen's initial rate would contradict the revised order's Gammagard Liquid 0.8 to 8
    mg/kg/min (0.8 × 70 × 60 ÷ 100 = 33.6 mL/h)."""
    prolinemia = condition(PATIENT_ID, "hyperprolinemia", "Hyperprolinemia", 3)
    record = [W70, PID, prolinemia]
    ctx = context_of(record, [unrated("Privigen")], patient=ADULT)
    findings = evaluate(ctx, KB, SETTINGS)
    assert "infusion-rate" in {f.topic for f in findings}  # found for Privigen ...
    plans = compose(findings, ctx, KB, SETTINGS)
    shown = {f.topic for p in plans for f in p.findings}
    assert "infusion-rate" not in shown  # ... and not shown beside the switch
    [revision] = [r for p in plans for r in p.revisions]
    assert any(isinstance(c, ProductChange) for c in revision.changes)
    span = revised_rate(plans)["rateRange"]
    assert (span["low"]["value"], span["high"]["value"]) == (0.8, 8)
