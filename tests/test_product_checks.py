"""Card contract §8/§9: a sorbitol product under 2 years, the route of a product labelled for both
routes, and discontinued products; and that no switch ever chooses a discontinued product."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from builders import CREATININE, WEIGHT, condition, ig_order, observation, patient
from contexts import KB, PATIENT_ID, SETTINGS, THRESHOLDS, context_of

from hooks.card_builder import make_cards
from hooks.composer import compose
from hooks.engine import evaluate
from hooks.findings import Finding, ProductChange, ReviseOrder
from hooks.revision import Reviser
from hooks.rules import excipients, product_checks
from hooks.rules.base import OrderInput

DISCONTINUED = {p.id for p in KB.catalogue.products if p.discontinued}
SORBITOL = {p.id for p in KB.catalogue.products if "sorbitol" in p.possible_excipients}


def inputs(
    order: dict[str, Any], record: list[dict[str, Any]] = (), born: str = "1980-01-01"
) -> OrderInput:
    ctx = context_of(
        [observation(PATIENT_ID, WEIGHT, 70, "kg", 1), *record],
        [order],
        patient=patient(PATIENT_ID, born),
    )
    return OrderInput(ctx, ctx.ig_orders[0], KB, THRESHOLDS)


def switched_to(found: Finding) -> list[str]:
    return [
        change.product.id
        for proposal in found.proposals
        for action in proposal.actions
        if isinstance(action, ReviseOrder)
        for change in action.changes
        if isinstance(change, ProductChange)
    ]


def without_route(order: dict[str, Any]) -> dict[str, Any]:
    for dosage in order["dosageInstruction"]:
        del dosage["route"]
    return order


def refuted(resource: dict[str, Any]) -> dict[str, Any]:
    status = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
    return {**resource, "verificationStatus": {"coding": [{"system": status, "code": "refuted"}]}}


def in_error(resource: dict[str, Any]) -> dict[str, Any]:
    status = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
    return {
        **resource,
        "verificationStatus": {"coding": [{"system": status, "code": "entered-in-error"}]},
    }


HFI = condition(PATIENT_ID, "hereditary-fructose-intolerance", "Hereditary fructose intolerance", 2)
FLEBOGAMMA = ig_order(PATIENT_ID, "o1", "Flebogamma 10% DIF", dose=0.4)
TODDLER = "2024-12-10"  # 18 months on 2026-06-15


# --- sorbitol under 2 years -------------------------------------------------------------------


def test_a_sorbitol_product_under_2_years_is_a_critical_contraindication() -> None:
    found = excipients.check(inputs(FLEBOGAMMA, born=TODDLER))
    assert found is not None and found.indicator == "critical"
    assert "Patient aged 18 months (under 2 years)" in "\n".join(found.evidence)
    assert "fructose intolerance is excluded" in found.summary
    [product] = switched_to(found)
    assert product not in SORBITOL | DISCONTINUED
    assert all(p.recommended for p in found.proposals)


@pytest.mark.parametrize(
    ("born", "fires"),
    [("2024-06-16", True), ("2024-06-15", False), ("2023-03-01", False)],
    ids=["one-day-under-2", "2-today", "3-years"],
)
def test_the_age_limit_is_under_2_years(born: str, fires: bool) -> None:
    assert (excipients.check(inputs(FLEBOGAMMA, born=born)) is not None) is fires


def test_a_refuted_hfi_condition_is_the_record_that_hfi_was_excluded() -> None:
    assert excipients.check(inputs(FLEBOGAMMA, [refuted(HFI)], born=TODDLER)) is None


def test_an_hfi_condition_entered_in_error_excludes_nothing() -> None:
    found = excipients.check(inputs(FLEBOGAMMA, [in_error(HFI)], born=TODDLER))
    assert found is not None and found.indicator == "critical"


def test_a_refuted_hfi_condition_counts_as_neither_hfi_nor_anything_else() -> None:
    ctx = inputs(FLEBOGAMMA, [refuted(HFI)]).ctx
    assert not ctx.conditions_in(KB.valueset("hereditary-fructose-intolerance"), active_only=False)
    assert ctx.refuted_in(KB.valueset("hereditary-fructose-intolerance"))


def test_a_toddler_with_hfi_gets_one_sorbitol_finding() -> None:
    found = excipients.check(inputs(FLEBOGAMMA, [HFI], born=TODDLER))
    assert found is not None and found.indicator == "critical"
    assert sum("contains sorbitol" in line for line in found.evidence) == 1, "said once"


def test_a_family_entry_that_may_hold_sorbitol_is_a_warning_under_2() -> None:
    order = ig_order(PATIENT_ID, "o1", "Gammaplex", dose=0.4)
    found = excipients.check(inputs(order, born=TODDLER))
    assert found is not None and found.indicator == "warning"


def test_no_birth_date_gives_no_age_finding() -> None:
    ctx = context_of([], [FLEBOGAMMA], patient={"resourceType": "Patient", "id": PATIENT_ID})
    assert excipients.check(OrderInput(ctx, ctx.ig_orders[0], KB, THRESHOLDS)) is None


def test_a_non_sorbitol_product_under_2_is_silent() -> None:
    order = ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4)
    assert excipients.check(inputs(order, born=TODDLER)) is None


# --- the route ----------------------------------------------------------------------------------


def test_no_route_on_a_dual_route_product_is_a_dose_warning_with_iv_assumed() -> None:
    order = without_route(ig_order(PATIENT_ID, "o1", "Gammagard Liquid", dose=0.4))
    inp = inputs(order)
    assert inp.order.route == "IV" and inp.order.route_assumed
    found = product_checks.route_missing(inp)
    assert found is not None and found.indicator == "warning"
    assert "route not given; IV assumed for the checks" in found.summary
    assert not found.proposals, "no revised order sets a route"
    assert KB.card_groups.group_of(found.topic, found.indicator) == "DOSE"


@pytest.mark.parametrize(
    ("product", "route"),
    [("Gammagard Liquid", "IV"), ("Gammagard Liquid", "SC"), ("Gamunex-C", "SC")],
)
def test_a_route_given_is_not_missing(product: str, route: str) -> None:
    order = ig_order(PATIENT_ID, "o1", product, dose=0.4, route=route)
    assert product_checks.route_missing(inputs(order)) is None


def test_no_route_on_a_single_route_product_takes_its_labelled_route() -> None:
    inp = inputs(without_route(ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4)))
    assert not inp.order.route_assumed
    assert product_checks.route_missing(inp) is None


def test_the_iv_checks_run_on_an_order_without_a_route() -> None:
    order = without_route(ig_order(PATIENT_ID, "o1", "Gammagard Liquid", dose=0.4))
    ckd = condition(PATIENT_ID, "chronic-kidney-disease", "Chronic kidney disease stage 3", 3)
    ctx = inputs(order, [ckd, observation(PATIENT_ID, CREATININE, 1.0, "mg/dL", 4)]).ctx
    topics = {f.topic for f in evaluate(ctx, KB, SETTINGS)}
    assert {"route-missing", "renal-risk"} <= topics


@pytest.mark.parametrize(
    ("product", "reason", "fires"),
    [
        ("Gamunex-C", "cidp", True),
        ("Gamunex-C", "immune-thrombocytopenia", True),
        ("Gamunex-C", "primary-immunodeficiency", False),
        ("Gammagard Liquid", "multifocal-motor-neuropathy", True),
        ("Gammagard Liquid", "primary-immunodeficiency", False),
        ("Hizentra", "cidp", False),
    ],
)
def test_sc_for_an_indication_labelled_iv_only(product: str, reason: str, fires: bool) -> None:
    order = ig_order(PATIENT_ID, "o1", product, dose=0.2, route="SC", reason=reason)
    found = product_checks.route_not_labelled(inputs(order))
    assert (found is not None) is fires
    if found is not None:
        assert found.indicator == "warning" and not found.proposals


def test_the_sc_card_names_sc_products_labelled_for_the_indication() -> None:
    order = ig_order(PATIENT_ID, "o1", "Gamunex-C", dose=0.2, route="SC", reason="cidp")
    found = product_checks.route_not_labelled(inputs(order))
    assert found is not None
    assert "Give Gamunex-C intravenously for CIDP" in found.recommendation
    assert "(Hizentra, HyQvia)" in found.recommendation


def test_iv_for_cidp_is_labelled() -> None:
    order = ig_order(PATIENT_ID, "o1", "Gamunex-C", dose=0.4, route="IV", reason="cidp")
    assert product_checks.route_not_labelled(inputs(order)) is None


def test_sc_without_a_reason_fires_only_when_no_active_indication_is_labelled_sc() -> None:
    order = ig_order(PATIENT_ID, "o1", "Gamunex-C", dose=0.2, route="SC")
    cidp = condition(PATIENT_ID, "cidp", "CIDP", 3)
    pi = condition(PATIENT_ID, "primary-immunodeficiency", "Common variable immunodeficiency", 4)
    assert product_checks.route_not_labelled(inputs(order, [cidp])) is not None
    assert product_checks.route_not_labelled(inputs(order, [cidp, pi])) is None


# --- discontinued products ------------------------------------------------------------------


def test_a_discontinued_product_is_flagged_with_current_alternatives() -> None:
    order = ig_order(PATIENT_ID, "o1", "Carimune NF", dose=0.4)
    found = product_checks.discontinued(inputs(order))
    assert found is not None and found.indicator == "warning"
    assert "discontinued in the US in 2018" in found.evidence[0]
    assert "Privigen" in found.recommendation
    [product] = switched_to(found)
    chosen = KB.catalogue.by_id(product)
    assert not chosen.discontinued and not chosen.family and "IV" in chosen.routes
    assert KB.card_groups.group_of(found.topic, found.indicator) == "PRODUCT"


def test_a_current_product_is_not_flagged() -> None:
    for product in KB.catalogue.products:
        if not product.discontinued:
            order = ig_order(PATIENT_ID, "o1", product.brand, dose=0.4, route=product.routes[0])
            assert product_checks.discontinued(inputs(order)) is None, product.brand


@pytest.mark.parametrize(
    ("route", "labels"), list(itertools.product(["IV", "SC"], [(), ("PI",), ("CIDP",)]))
)
def test_no_substitute_is_discontinued_or_off_route(route: str, labels: tuple[str, ...]) -> None:
    for ordered in [None, *KB.catalogue.products]:
        for product in KB.catalogue.substitutes(route, ordered, labels):
            assert not product.discontinued and not product.family
            assert route in product.routes and product is not ordered


def test_a_substitute_for_sc_cidp_is_labelled_sc_for_cidp() -> None:
    found = KB.catalogue.substitutes("SC", KB.catalogue.by_id("gamunex-c"), ("CIDP",))
    assert [p.brand for p in found] == ["Hizentra", "HyQvia"]


@pytest.mark.parametrize("ckd", [False, True])
def test_accepting_the_switch_from_a_discontinued_product_settles(ckd: bool) -> None:
    order = ig_order(PATIENT_ID, "o1", "Carimune NF", dose=0.4, reason="primary-immunodeficiency")
    record = [
        observation(PATIENT_ID, WEIGHT, 70, "kg", 1),
        observation(PATIENT_ID, CREATININE, 0.9, "mg/dL", 2),
    ]
    if ckd:
        record.append(
            condition(PATIENT_ID, "chronic-kidney-disease", "Chronic kidney disease stage 3", 3)
        )
    revised = _accepted(record, order)
    assert revised["medicationCodeableConcept"]["text"] != "Carimune NF"
    ctx = context_of(record, [revised])
    again = evaluate(ctx, KB, SETTINGS)
    assert not {f.topic for f in again} & {"discontinued-product", "excipient-contraindication"}
    product = ctx.ig_orders[0].product
    assert product is not None and not product.discontinued


def test_accepting_the_switch_for_a_toddler_settles_on_a_sorbitol_free_product() -> None:
    record = [observation(PATIENT_ID, WEIGHT, 11, "kg", 1)]
    toddler = patient(PATIENT_ID, TODDLER)
    revised = _accepted(record, FLEBOGAMMA, toddler)
    ctx = context_of(record, [revised], patient=toddler)
    assert ctx.ig_orders[0].product is not None
    assert ctx.ig_orders[0].product.id not in SORBITOL | DISCONTINUED
    assert not [f for f in evaluate(ctx, KB, SETTINGS) if f.indicator == "critical"]


def _accepted(
    record: list[dict[str, Any]], order: dict[str, Any], who: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The order after every recommended suggestion is accepted (the standard profile)."""
    ctx = context_of(record, [order], patient=who)
    plans = compose(evaluate(ctx, KB, SETTINGS), ctx, KB, SETTINGS)
    counter = itertools.count()
    cards = [c.to_json() for c in make_cards(plans, ctx, KB, lambda: f"u{next(counter)}")]
    updates = [
        action["resource"]
        for card in cards
        for suggestion in card.get("suggestions", [])
        if suggestion.get("isRecommended")
        for action in suggestion["actions"]
        if action["type"] == "update"
    ]
    assert len(updates) == 1, "one revised order"
    return dict(updates[0])


def test_the_reviser_never_switches_to_a_discontinued_product() -> None:
    """Even when a rule proposed it: the next product of the route is chosen instead."""
    inp = inputs(ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4))
    carimune = KB.catalogue.by_id("carimune-nf")
    reviser = Reviser(inp.order, set(), KB, lambda order: ())
    revision = reviser.revise([("a-rule", ProductChange(carimune, "a rule's choice"))])
    [change] = [c for c in revision.changes if isinstance(c, ProductChange)]
    assert not change.product.discontinued and "IV" in change.product.routes


def test_a_switch_on_an_order_without_a_route_does_not_choose_a_dual_route_product() -> None:
    """Flebogamma without a route is read as IV (its only route); a switch to Gammagard Liquid
    would leave the revised order with no route for a product labelled IV and SC, a finding the
    original lacked: the next product is chosen."""
    record = [observation(PATIENT_ID, WEIGHT, 11, "kg", 1)]
    toddler = patient(PATIENT_ID, TODDLER)
    order = without_route(ig_order(PATIENT_ID, "o1", "Flebogamma 10% DIF", dose=0.4))
    revised = _accepted(record, order, toddler)
    ctx = context_of(record, [revised], patient=toddler)
    product = ctx.ig_orders[0].product
    assert product is not None and product.routes == ("IV",) and product.id not in SORBITOL
    assert "route" not in revised["dosageInstruction"][0], "no revised order sets a route"
    assert not {f.topic for f in evaluate(ctx, KB, SETTINGS)} & {"route-missing"}
