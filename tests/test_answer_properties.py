"""The whole answer, as a pharmacist checks it (contract §9 invariants): accept the cards'
suggestions, in any order, and re-check the resulting orders.

Hypothesis draws patients (age, sex, weight, height, renal labs, IgA), conditions that change the
answer (diabetes, hypertension, thrombosis, CKD, hereditary fructose intolerance,
hyperprolinemia, IgA deficiency, migraine, an indication), allergies (to immune globulin, to corn)
and one or two immune globulin orders (any catalogue product, IV or SC, g/kg or g, daily counts
or monthly, with or without a rate and a reason), at order-select or order-sign, in the
``standard`` and the ``epic`` profile. For every answer:

(a) the orders after accepting a set of suggestions do not depend on the order of acceptance;
(b) after every recommended suggestion is accepted, re-checking proposes no change, leaves no
    critical finding, raises no finding that a change fixed, the rate is not above the original,
    and there is no second immune globulin order for one order;
(c) no card offers, under ``any``, two suggestions that change one order, and no two cards offer
    versions of one order; in ``epic``, only create and delete, one action each.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date
from typing import Any

from builders import CREATININE, HEIGHT, WEIGHT, allergy, condition, ig_order, observation, patient
from contexts import KB, PATIENT_ID, TODAY, context_of
from contexts import SETTINGS as ENGINE_SETTINGS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.card_builder import make_cards
from hooks.composer import compose
from hooks.engine import evaluate
from hooks.findings import ReviseOrder

SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "max_examples": 120,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
FIXED_BY_A_CHANGE = {
    "excipient-contraindication",
    "discontinued-product",
    "glucose-meter-interference",
    "dose-check",
    "dosing-weight",
}
PRODUCTS = [p for p in KB.catalogue.products if not p.family]
# Conditions that change the answer: (value set, a code of it or None for text-only sets, text).
CONDITIONS = [
    ("diabetes", "Diabetes mellitus type 2"),
    ("hypertension", "Essential hypertension"),
    ("venous-thromboembolism", "Deep venous thrombosis"),
    ("chronic-kidney-disease", "Chronic kidney disease stage 3"),
    ("hereditary-fructose-intolerance", "Hereditary fructose intolerance"),
    ("hyperprolinemia", "Hyperprolinemia"),
    ("iga-deficiency", "Selective IgA deficiency"),
    ("migraine", "Migraine"),
    ("heart-failure", "Heart failure"),
]
INDICATIONS = [
    "guillain-barre-syndrome",
    "primary-immunodeficiency",
    "immune-thrombocytopenia",
    "cidp",
]


@st.composite
def records(draw: Callable[..., Any]) -> list[dict[str, Any]]:
    chosen = draw(st.lists(st.sampled_from(CONDITIONS), max_size=4, unique=True))
    resources = [condition(PATIENT_ID, vs, text, i) for i, (vs, text) in enumerate(chosen)]
    for index, (loinc, values, unit) in enumerate(
        [
            (WEIGHT, [12, 38, 70, 95, 140], "kg"),
            (HEIGHT, [90, 152, 165, 180], "cm"),
            (CREATININE, [0.8, 1.6, 3.2], "mg/dL"),
        ]
    ):
        if draw(st.booleans()):
            value = draw(st.sampled_from(values))
            resources.append(observation(PATIENT_ID, loinc, value, unit, index))
    if draw(st.booleans()):
        text = draw(st.sampled_from(["Corn", "Immune globulin"]))
        resources.append(allergy(PATIENT_ID, text, 1, draw(st.sampled_from(["low", "high"]))))
    return resources


REPEATS = [
    {"frequency": 1, "period": 1, "periodUnit": "d", "count": 1},
    {"frequency": 1, "period": 1, "periodUnit": "d", "count": 2},
    {"frequency": 1, "period": 1, "periodUnit": "d", "count": 5},
    {"frequency": 1, "period": 4, "periodUnit": "wk"},
    {"frequency": 1, "period": 1, "periodUnit": "wk"},
]


@st.composite
def ig_orders(draw: Callable[..., Any]) -> list[dict[str, Any]]:
    orders = []
    for index in range(draw(st.integers(1, 2))):
        product = draw(st.sampled_from(PRODUCTS))
        # mL: read as grams for a product of one concentration, so a switch between 5% and 10%
        # products must rewrite the dose (contract §9: mL doses with concentration changes).
        unit = draw(st.sampled_from(["g/kg", "g", "mL"]))
        doses = {"g/kg": [0.1, 0.4, 1, 2, 2.5], "g": [10, 25, 60, 140], "mL": [100, 280, 560]}
        orders.append(
            ig_order(
                PATIENT_ID,
                f"ig{index}",
                product.brand,
                dose=draw(st.sampled_from(doses[unit])),
                unit=unit,
                route=draw(st.sampled_from(product.routes)),
                repeat=draw(st.sampled_from(REPEATS)),
                rate_mg_kg_min=draw(st.sampled_from([None, 2.0, 8.0])),
                reason=draw(st.sampled_from([None, *INDICATIONS])),
                authored=TODAY.isoformat(),
            )
        )
    return orders


@st.composite
def calls(draw: Callable[..., Any]) -> dict[str, Any]:
    years = draw(st.sampled_from([1, 8, 45, 72]))
    return {
        "patient": patient(
            PATIENT_ID,
            date(TODAY.year - years, 1, 1).isoformat(),
            draw(st.sampled_from(["male", "female"])),
        ),
        "record": draw(records()),
        "orders": draw(ig_orders()),
        "hook": draw(st.sampled_from(["order-select", "order-sign"])),
        "profile": draw(st.sampled_from(["standard", "epic"])),
    }


def answer(call: dict[str, Any], orders: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    ctx = context_of(call["record"], orders, hook=call["hook"], patient=call["patient"])
    findings = evaluate(ctx, KB, ENGINE_SETTINGS)
    plans = compose(findings, ctx, KB, ENGINE_SETTINGS)
    counter = itertools.count()
    cards = make_cards(plans, ctx, KB, lambda: f"u{next(counter)}", call["profile"])
    return [card.to_json() for card in cards], (ctx, findings, plans)


def suggestions(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for card in cards for s in card.get("suggestions", [])]


def accept(orders: list[dict[str, Any]], accepted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the EHR does: update replaces the order, delete removes it, create adds a draft."""
    drafts = {f"{o['resourceType']}/{o['id']}": o for o in orders}
    for suggestion in accepted:
        for action in suggestion["actions"]:
            if action["type"] == "update":
                resource = action["resource"]
                key = f"{resource['resourceType']}/{resource['id']}"
                if key in drafts:
                    drafts[key] = resource
            elif action["type"] == "delete":
                drafts.pop(action["resourceId"], None)
            else:
                resource = {**action["resource"], "id": f"new-{suggestion['uuid']}"}
                drafts[f"{resource['resourceType']}/{resource['id']}"] = resource
    return sorted(drafts.values(), key=lambda o: (o["resourceType"], o["id"]))


def ig_drafts(ctx_orders: list[dict[str, Any]], call: dict[str, Any]) -> int:
    ctx = context_of(call["record"], ctx_orders, hook=call["hook"], patient=call["patient"])
    return len(ctx.ig_orders)


def changed_order(suggestion: dict[str, Any]) -> set[str]:
    return {
        f"{a['resource']['resourceType']}/{a['resource']['id']}"
        if a["type"] == "update"
        else a.get("resourceId", "")
        for a in suggestion["actions"]
        if a["type"] in ("update", "delete")
    }


def proposes_change(found: Any) -> bool:
    return any(isinstance(a, ReviseOrder) for p in found.proposals for a in p.actions)


def max_rate(orders: list[dict[str, Any]]) -> float:
    rates = [
        r.get("rateQuantity", r.get("rateRange", {}).get("high", {})).get("value", 0)
        for o in orders
        if o["resourceType"] == "MedicationRequest"
        for d in o.get("dosageInstruction", [])
        for r in d.get("doseAndRate", [])
    ]
    return max(rates, default=0)


@settings(**SETTINGS)
@given(call=calls(), data=st.data())
def test_accepting_suggestions_in_any_order_gives_the_same_orders(
    call: dict[str, Any], data: st.DataObject
) -> None:
    orders = call["orders"]
    cards, _ = answer(call, orders)
    chosen: list[dict[str, Any]] = []
    for card in cards:
        offered = card.get("suggestions", [])
        if not offered:
            continue
        if card["selectionBehavior"] == "at-most-one":
            pick = data.draw(st.sampled_from([None, *offered]))
            chosen += [pick] if pick else []
        else:
            chosen += data.draw(st.lists(st.sampled_from(offered), unique_by=lambda s: s["uuid"]))
    shuffled = data.draw(st.permutations(chosen))
    assert accept(orders, chosen) == accept(orders, list(shuffled))


@settings(**SETTINGS)
@given(call=calls())
def test_one_version_of_each_order_and_the_profile_limits(call: dict[str, Any]) -> None:
    cards, _ = answer(call, call["orders"])
    versions: dict[str, set[str]] = {}  # order -> the cards that offer a revised version
    for card in cards:
        changed: list[str] = []
        for suggestion in card.get("suggestions", []):
            changed += changed_order(suggestion)
            for action in suggestion["actions"]:
                if action["type"] == "update":
                    key = f"{action['resource']['resourceType']}/{action['resource']['id']}"
                    versions.setdefault(key, set()).add(card["uuid"])
            if call["profile"] == "epic":
                assert len(suggestion["actions"]) == 1, "Epic: one action per suggestion"
                assert suggestion["actions"][0]["type"] in ("create", "delete")
        if card.get("selectionBehavior") == "any":
            assert len(changed) == len(set(changed)), (
                f"two changes of one order under any: {changed}"
            )
        if call["profile"] == "epic" and card.get("suggestions"):
            assert card["selectionBehavior"] == "any"
    # Epic (§9 c): a switch is "Remove X" + "Order Y" on one card, so no subset leaves more than
    # one immune globulin order per original order, except a create accepted without its delete.
    product_creates = [
        card["uuid"]
        for card in cards
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action["type"] == "create"
        and "medicationCodeableConcept" in action["resource"]
        and KB.catalogue.identify((), (action["resource"]["medicationCodeableConcept"]["text"],))
    ]
    assert len(product_creates) <= len(call["orders"]), "at most one new order per order"
    # A removal elsewhere (a duplicate draft) commutes with a revision: the order is gone.
    assert all(len(cards) == 1 for cards in versions.values()), f"two versions: {versions}"


@settings(**SETTINGS)
@given(call=calls())
def test_the_fully_accepted_answer_is_settled(call: dict[str, Any]) -> None:
    orders = call["orders"]
    cards, (ctx, findings, plans) = answer(call, orders)
    recommended = [s for s in suggestions(cards) if s.get("isRecommended")]
    after = accept(orders, recommended)
    _, (ctx2, findings2, plans2) = answer(call, after)
    more = [(p.group.code, r.changes) for p in plans2 for r in p.revisions]
    if call["profile"] == "epic":  # a change that keeps the product is text there: not accepted
        return
    assert not more, f"re-checked, the accepted orders ask for more: {more}"
    # Findings about the product or the dose itself: a revision that changed them fixes them.
    # Others (a risk factor, IgA deficiency) stay true of the patient and may come back, but
    # then asking for nothing more (the fixed-point check above).
    fixed = {
        (f.order, f.topic)
        for p in plans
        for r in p.revisions
        for f in findings
        if f.order == r.order.reference and f.topic in FIXED_BY_A_CHANGE and proposes_change(f)
    }
    again = {(f.order, f.topic) for f in findings2}
    assert not fixed & again, f"findings a change fixed came back: {fixed & again}"
    revised_something = any(p.revisions for p in plans)
    if revised_something and max_rate(orders) > 0:  # no rate ordered: a cap is no rise
        assert max_rate(after) <= max_rate(orders)
    if call["profile"] == "standard":
        assert len(ctx2.ig_orders) <= len(ctx.ig_orders)
    critical_before_fixable = [
        f for f in findings if f.indicator == "critical" and f.order is not None
    ]
    if critical_before_fixable and revised_something:
        left = [
            f for f in findings2 if f.indicator == "critical" and f.topic != "ig-hypersensitivity"
        ]
        assert not left, f"critical findings left after accepting: {[f.topic for f in left]}"
