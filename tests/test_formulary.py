"""The site formulary (card contract §9, product substitution): validated at start-up, part of the
knowledge version, and no suggestion ever names a product the site does not stock. When the best
product is not stocked the card says so; when no stocked product fits, no switch is offered and
the card names the best one."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from builders import WEIGHT, condition, ig_order, observation, patient
from conftest import (
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    scenario_index,
    scenario_resources,
    service_id,
)
from contexts import KB, PATIENT_ID, THRESHOLDS, context_of
from flask import Flask

from cds_service.errors import KnowledgeError
from hooks import build_registry
from hooks.findings import Finding, ProductChange, ReviseOrder
from hooks.knowledge_base import KnowledgeBase
from hooks.knowledge_base.formulary import formulary_for_site
from hooks.knowledge_base.schema import Product
from hooks.rules import excipients, glucose_meter, iga_deficiency, product_checks
from hooks.rules.base import OrderInput
from hooks.terminology import Code, phrase_pattern

SCENARIOS = scenario_index()
HOOKS = ("order-select", "order-sign")
PRODUCTS = [p for p in KB.catalogue.products if not p.family]
NAMES = phrase_pattern(name for p in KB.catalogue.products for name in p.match_names)
BY_NAME = {name.lower(): p for p in KB.catalogue.products for name in p.match_names}


def formulary(stocked: list[str], **extra: Any) -> dict[str, Any]:
    return {"version": "2026-12", "site": "Example Hospital", "stocked": stocked, **extra}


def write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "formulary.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def site_kb(stocked: list[str]) -> KnowledgeBase:
    kb, suffix = formulary_for_site(KB, {}, {"FORMULARY": formulary(stocked)})
    assert suffix.startswith("+formulary-")
    return kb


def ids_except(*removed: str, route: str | None = None) -> list[str]:
    return [p.id for p in PRODUCTS if p.id not in removed and (route is None or route in p.routes)]


# --- loading and validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stocked", "named"),
    [
        (["privigen", "no-such-product"], "no-such-product"),
        (["privigen", "octagam"], "octagam"),  # a family entry, not a product
        (["privigen", "hizentra", "privigen"], "privigen"),
    ],
    ids=["unknown-id", "family-entry", "duplicate"],
)
def test_a_bad_formulary_stops_the_service_naming_the_file_and_the_id(
    tmp_path: Path, stocked: list[str], named: str
) -> None:
    path = write(tmp_path, formulary(stocked))
    with pytest.raises(KnowledgeError) as raised:
        formulary_for_site(KB, {"IVIG_CDS_FORMULARY": str(path)}, {})
    assert "formulary.json" in str(raised.value) and repr(named) in str(raised.value)


@pytest.mark.parametrize(
    "content",
    [formulary([]), {"site": "Example Hospital", "stocked": ["privigen"]}, formulary(["x"], y=1)],
    ids=["empty", "no-version", "unknown-field"],
)
def test_a_formulary_that_breaks_the_schema_is_refused(tmp_path: Path, content: Any) -> None:
    path = write(tmp_path, content)
    with pytest.raises(KnowledgeError, match=r"^formulary\.json: "):
        formulary_for_site(KB, {}, {"FORMULARY": str(path)})


def test_a_discontinued_product_may_be_listed_and_is_never_chosen() -> None:
    carimune = next(p for p in PRODUCTS if p.discontinued)
    kb = site_kb([carimune.id, "privigen"])
    assert kb.catalogue.stocked == {carimune.id, "privigen"}
    assert carimune not in kb.catalogue.substitutes("IV", None)


def test_no_formulary_leaves_the_knowledge_unchanged() -> None:
    for env, overrides in (({}, {}), ({"IVIG_CDS_FORMULARY": "/nowhere.json"}, {"FORMULARY": ""})):
        kb, suffix = formulary_for_site(KB, env, overrides)
        assert kb is KB and suffix == ""
    assert KB.catalogue.stocked is None


def test_the_formulary_is_part_of_the_knowledge_version(tmp_path: Path) -> None:
    plain = build_registry({}, {}).knowledge_version
    stocked = ["privigen", "hizentra", "gamunex-c"]
    path = write(tmp_path, formulary(stocked))
    digest = hashlib.sha256("\n".join(sorted(stocked)).encode()).hexdigest()[:8]
    from_env = build_registry({"IVIG_CDS_FORMULARY": str(path)}, {}).knowledge_version
    assert "+formulary-" not in plain
    assert from_env == f"{plain}+formulary-{digest}"
    reordered = build_registry({}, {"FORMULARY": formulary(stocked[::-1])}).knowledge_version
    assert reordered == from_env  # the same stock, listed in another order
    other = build_registry({}, {"FORMULARY": formulary(stocked[:2])}).knowledge_version
    assert other != from_env and other.startswith(plain + "+formulary-")


# --- every scenario: no suggestion names a product the site does not stock ----------------------


def _call(app: Flask, scenario: dict[str, Any], hook: str) -> tuple[list[dict[str, Any]], str]:
    """The scenario's cards for the hook, and the ids of the products its orders name."""
    resources = scenario_resources(scenario["name"])
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    names = scenario.get("orders") or [scenario["order"]]
    orders = [order_for(name, patient_id) for name in names]
    by_name = dict(zip(names, orders, strict=True))
    chosen = scenario.get("selected") or [
        n for n in names if by_name[n]["resourceType"] == "MedicationRequest"
    ]
    selected = [f"{by_name[n]['resourceType']}/{by_name[n]['id']}" for n in chosen]
    body = hook_request(hook, patient_id, orders, full_prefetch(resources), selections=selected)
    client = app.test_client()
    response = client.post(f"/cds-services/{service_id(client, hook)}", json=body)
    assert response.status_code == 200, response.get_json()
    ordered = {p.id for o in orders for p in _products_of_order(o)}
    return list(response.get_json()["cards"]), " ".join(sorted(ordered))


def _products_of_order(order: dict[str, Any]) -> list[Product]:
    concept = order.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        return [p for p in PRODUCTS if p.brand.lower() in json.dumps(order).lower()]
    found = _identified(concept)
    if found is None:
        return []
    # the ordered product, its family and the family's members
    return [
        p
        for p in KB.catalogue.products
        if p.id == found.id or p.id in found.members or found.id in p.members
    ]


def _identified(concept: dict[str, Any]) -> Product | None:
    codes = [
        Code(c.get("system", ""), c.get("code", ""), c.get("display"))
        for c in concept.get("coding", [])
    ]
    texts = [concept["text"]] if concept.get("text") else []
    texts += [c["display"] for c in concept.get("coding", []) if c.get("display")]
    found = KB.catalogue.identify(codes, texts)
    return found.product if found is not None else None


def _named_in_suggestions(cards: list[dict[str, Any]]) -> set[str]:
    """Every product a suggestion names: in a suggested MedicationRequest's medication (coding
    or text), and by brand name in the suggestion's label. A suggestion that only deletes
    orders ("Stop the Privigen IV order") names the patient's own order, not a choice."""
    named: set[str] = set()
    for card in cards:
        for suggestion in card.get("suggestions", []):
            if all(action["type"] == "delete" for action in suggestion.get("actions", [])):
                continue
            assert NAMES is not None
            named |= {BY_NAME[m.group(0).lower()].id for m in NAMES.finditer(suggestion["label"])}
            for action in suggestion.get("actions", []):
                resource = action.get("resource") or {}
                concept = resource.get("medicationCodeableConcept")
                if isinstance(concept, dict):
                    product = _identified(concept)
                    if product is not None:
                        named.add(product.id)
    return named


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], set[str]]:
    """Without a formulary: what each scenario's suggestions name, beyond its ordered product."""
    app = make_app(tmp_path_factory.mktemp("plain"))
    found = {}
    for scenario in SCENARIOS:
        for hook in HOOKS:
            cards, ordered = _call(app, scenario, hook)
            found[scenario["name"], hook] = _named_in_suggestions(cards) - set(ordered.split())
    return found


def test_no_suggestion_names_a_product_the_site_does_not_stock(
    baseline: dict[tuple[str, str], set[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The usual choices (every product a switch names without a formulary) are not stocked:
    every answer's suggestions name only stocked products (or the ordered one, kept unchanged
    by a revision of its dose or rate), and some switches still go to a stocked product."""
    usual = set().union(*baseline.values())
    assert usual, "no scenario suggests a switch: the test would prove nothing"
    stocked = [p.id for p in PRODUCTS if p.id not in usual]
    tmp = tmp_path_factory.mktemp("site")
    app = make_app(tmp, FORMULARY=str(write(tmp, formulary(stocked))))
    switched = 0
    for scenario in SCENARIOS:
        for hook in HOOKS:
            cards, ordered = _call(app, scenario, hook)
            named = _named_in_suggestions(cards) - set(ordered.split())
            assert named <= set(stocked), (scenario["name"], hook, sorted(named - set(stocked)))
            switched += bool(named)
    assert switched, "with the usual choices removed, no switch went to a stocked product"


# --- targeted: the best product not stocked, then none stocked that fits ------------------------


def inputs(
    order: dict[str, Any], record: list[dict[str, Any]], kb: KnowledgeBase, born: str = "1980-01-01"
) -> OrderInput:
    ctx = context_of(
        [observation(PATIENT_ID, WEIGHT, 70, "kg", 1), *record],
        [order],
        patient=patient(PATIENT_ID, born),
    )
    return OrderInput(ctx, ctx.ig_orders[0], kb, THRESHOLDS)


def switched_to(found: Finding | None) -> list[Product]:
    assert found is not None
    return [
        change.product
        for proposal in found.proposals
        for action in proposal.actions
        if isinstance(action, ReviseOrder)
        for change in action.changes
        if isinstance(change, ProductChange)
    ]


def second_choice_then_none(
    check: Any,
    order: dict[str, Any],
    record: list[dict[str, Any]],
    unfit: list[str],
    best_is: str = "the first choice for this patient",
    none_left: str = "no stocked product fits",
) -> None:
    """The rule's first choice without a formulary, removed from the formulary: the rule suggests
    another stocked product and says the first is not stocked. Stocking only ``unfit`` (products
    that do not fit): no switch, and the card names the first choice."""
    [best] = switched_to(check(inputs(order, record, KB)))
    assert all("formulary" not in line for line in check(inputs(order, record, KB)).evidence)
    kb = site_kb(ids_except(best.id))
    found = check(inputs(order, record, kb))
    [second] = switched_to(found)
    assert second.id != best.id and kb.catalogue.is_stocked(second)
    assert f"{best.brand}, {best_is}, is not on this site's formulary" in found.evidence
    none = check(inputs(order, record, site_kb(unfit)))
    assert switched_to(none) == []
    line = (
        f"{best.brand}, {best_is}, is not on this site's formulary, "
        f"and {none_left}: ask the pharmacy about a non-formulary supply"
    )
    assert line in none.evidence
    assert len(none.summary) <= 139


def test_a_discontinued_product_switches_to_the_next_stocked_product() -> None:
    carimune = ig_order(PATIENT_ID, "o1", "Carimune NF", dose=0.4)
    sc_only = [p.id for p in PRODUCTS if p.routes == ("SC",)]
    second_choice_then_none(product_checks.discontinued, carimune, [], sc_only)


def test_sorbitol_with_hereditary_fructose_intolerance_switches_to_a_stocked_product() -> None:
    hfi = condition(PATIENT_ID, "hereditary-fructose-intolerance", "HFI", 2)
    flebogamma = ig_order(PATIENT_ID, "o1", "Flebogamma 10% DIF", dose=0.4)
    sorbitol = [p.id for p in PRODUCTS if "sorbitol" in p.possible_excipients]
    second_choice_then_none(excipients.check, flebogamma, [hfi], sorbitol)


def test_maltose_with_diabetes_switches_to_a_stocked_maltose_free_product() -> None:
    diabetes = condition(PATIENT_ID, "diabetes", "Type 2 diabetes mellitus", 2)
    octagam = ig_order(PATIENT_ID, "o1", "Octagam 10%", dose=0.4)
    maltose = [p.id for p in PRODUCTS if "maltose" in p.possible_excipients]
    second_choice_then_none(glucose_meter.check, octagam, [diabetes], maltose)


def test_iga_deficiency_switches_to_the_lowest_iga_stocked_product() -> None:
    iga = condition(PATIENT_ID, "iga-deficiency", "Selective IgA deficiency", 2)
    privigen = ig_order(PATIENT_ID, "o1", "Privigen", dose=0.4)
    not_low = [p.id for p in PRODUCTS if not p.low_iga]
    second_choice_then_none(
        iga_deficiency.check,
        privigen,
        [iga],
        not_low,
        "the lowest-IgA product",
        "no other stocked product is low in IgA",
    )


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("ivig-in-discontinued-carimune", "discontinued-product"),
        ("ivig-in-hfi-flebogamma", "excipient-contraindication"),
        ("ivig-in-iga-deficiency-coded", "iga-deficiency"),
    ],
)
def test_the_card_names_the_best_product_when_none_stocked_fits(
    tmp_path: Path, name: str, rule: str
) -> None:
    """Through the service: a formulary of products that do not fit (the other route's) gives
    no switch; the card's detail names the best product and says it is not stocked."""
    [scenario] = [s for s in SCENARIOS if s["name"] == name]
    plain_cards, ordered = _call(make_app(_dir(tmp_path / "plain")), scenario, "order-sign")
    best_ids = _named_in_suggestions(plain_cards) - set(ordered.split())
    assert best_ids, f"{name}: no switch without a formulary"
    other_route = [p.id for p in PRODUCTS if p.routes == ("SC",)]  # the orders are IV
    site = make_app(_dir(tmp_path / "site"), FORMULARY=formulary(other_route))
    cards, _ = _call(site, scenario, "order-sign")
    assert not _named_in_suggestions(cards) - set(ordered.split())
    detail = " ".join(card["detail"] for card in cards)
    best = {KB.catalogue.by_id(i).brand for i in best_ids}
    said = [rf"{re.escape(b)}, the [^,]+, is not on this site's formulary" for b in best]
    assert any(re.search(pattern, detail) for pattern in said), detail
    assert all(len(card["summary"]) <= 139 for card in cards)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_substitutes_are_stocked_and_the_unfiltered_list_keeps_the_catalogue_order() -> None:
    """Every switch and the composer's revision (hooks.revision) choose from ``substitutes``."""
    every = KB.catalogue.substitutes("IV", None)
    stocked = [p.id for p in every[1::2]]  # every other current IV product
    catalogue = site_kb(stocked).catalogue
    assert [p.id for p in catalogue.substitutes("IV", None)] == stocked
    assert catalogue.substitutes("IV", None, stocked_only=False) == every
    choice = catalogue.choice(every)
    assert choice.best == every[0] and choice.product == every[1]
    assert choice.best_not_stocked == every[0]
    assert KB.catalogue.choice(every).best_not_stocked is None  # no formulary: nothing to say


def test_the_example_formulary_of_the_docs_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "docs" / "formulary.example.json"
    kb, suffix = formulary_for_site(KB, {"IVIG_CDS_FORMULARY": str(example)}, {})
    assert kb.catalogue.stocked == set(json.loads(example.read_text())["stocked"])
    assert suffix.startswith("+formulary-")
