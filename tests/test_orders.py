"""Immune globulin order recognition and route (contract §1)."""

from __future__ import annotations

from typing import Any

import pytest
from contexts import context_of, ig_order

from hooks.context import IgOrder
from hooks.context.build import read_session

IV = {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}
SC = {"coding": [{"system": "http://snomed.info/sct", "code": "34206005"}]}


def order(
    medication: dict[str, Any], route: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "o1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},  # the context patient (contexts.PATIENT)
    }
    resource.update(medication)
    if route:
        resource["dosageInstruction"] = [{"route": route}]
    resource.update(extra)
    return resource


def recognise(resource: dict[str, Any], medications: dict[str, Any] | None = None) -> Any:
    return ig_order(resource, medications)


@pytest.mark.parametrize(
    ("medication", "product"),
    [
        (
            {
                "medicationCodeableConcept": {
                    "coding": [
                        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1809671"}
                    ]
                }
            },
            "Gammagard Liquid",
        ),
        ({"medicationCodeableConcept": {"text": "PRIVIGEN 10 g/100 mL"}}, "Privigen"),
        ({"medicationCodeableConcept": {"text": "Octagam 10% solution"}}, "Octagam 10%"),
        ({"medicationCodeableConcept": {"text": "Hizentra 20%"}}, "Hizentra"),
    ],
)
def test_products_are_recognised(medication: dict[str, Any], product: str) -> None:
    found = recognise(order(medication, IV))
    assert isinstance(found, IgOrder) and found.product is not None
    assert found.product.brand == product


@pytest.mark.parametrize(
    "medication",
    [
        {
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]
            }
        },
        {
            "medicationCodeableConcept": {
                "coding": [{"system": "http://snomed.info/sct", "code": "333710000"}]
            }
        },
        {"medicationCodeableConcept": {"text": "IVIG 10% infusion"}},
        {"medicationCodeableConcept": {"text": "Immune globulin (human)"}},
    ],
)
def test_generic_immune_globulin_is_recognised_without_a_product(
    medication: dict[str, Any],
) -> None:
    found = recognise(order(medication, IV))
    assert isinstance(found, IgOrder) and found.product is None


@pytest.mark.parametrize(
    "text",
    [
        "RhoGAM Rho(D) immune globulin",
        "WinRho SDF",
        "HepaGam B hepatitis B immune globulin",
        "Cytogam cytomegalovirus immune globulin",
        "Varizig varicella zoster immune globulin",
        "rabies immune globulin",
        "tetanus immune globulin",
        "Thymoglobulin anti-thymocyte globulin",
    ],
)
def test_hyperimmune_globulins_are_not_immune_globulin_orders(text: str) -> None:
    assert recognise(order({"medicationCodeableConcept": {"text": text}}, IV)) is None


def test_hyperimmune_atc_class_is_excluded() -> None:
    medication = {
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BB01"}],
            "text": "immune globulin",
        }
    }
    assert recognise(order(medication, IV)) is None


def test_other_medications_are_not_immune_globulin() -> None:
    assert (
        recognise(order({"medicationCodeableConcept": {"text": "Acetaminophen 500 mg"}}, IV))
        is None
    )
    assert recognise(order({})) is None  # no medication element at all: nothing to check


@pytest.mark.parametrize(
    ("text", "route", "expected", "basis"),
    [
        ("Privigen", SC, "SC", "ordered route"),
        ("Privigen", None, "IV", "labelled route of Privigen"),
        ("Hizentra", None, "SC", "labelled route of Hizentra"),
        ("Gammagard Liquid", None, "IV", "assumed IV"),
        ("immune globulin", None, "IV", "assumed IV"),
        ("immune globulin", {"text": "Subcutaneous"}, "SC", "ordered route"),
    ],
)
def test_route(text: str, route: dict[str, Any] | None, expected: str, basis: str) -> None:
    found = recognise(order({"medicationCodeableConcept": {"text": text}}, route))
    assert isinstance(found, IgOrder)
    assert found.route == expected and basis in found.route_basis
    assert found.route_assumed is ("assumed" in basis)


def test_atc_route_is_used_when_the_order_has_none() -> None:
    medication = {
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA01"}]
        }
    }
    found = recognise(order(medication))
    assert isinstance(found, IgOrder) and found.route == "SC" and not found.route_assumed


def test_medication_reference_contained_draft_and_unidentified() -> None:
    contained = order(
        {"medicationReference": {"reference": "#m"}},
        IV,
        contained=[{"resourceType": "Medication", "id": "m", "code": {"text": "Privigen"}}],
    )
    assert isinstance(recognise(contained), IgOrder)
    in_drafts = order({"medicationReference": {"reference": "Medication/m2"}}, IV)
    drafts = {
        "Medication/m2": {"resourceType": "Medication", "id": "m2", "code": {"text": "Gamunex-C"}}
    }
    assert recognise(in_drafts, drafts).product.brand == "Gamunex-C"
    # A reference the service could not read and no display: nothing names immune globulin.
    assert recognise(order({"medicationReference": {"reference": "Medication/x"}}, IV)) is None
    named = order({"medicationReference": {"reference": "Medication/x", "display": "IVIG 10%"}})
    assert isinstance(recognise(named), IgOrder)


def test_orders_in_focus() -> None:
    drafts = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "MedicationRequest", "id": "a"}},
            {"resource": {"resourceType": "MedicationRequest", "id": "b"}},
        ],
    }
    context = {"patientId": "p", "draftOrders": drafts, "selections": ["MedicationRequest/b"]}
    assert read_session("order-select", context).in_focus == {"MedicationRequest/b"}
    assert read_session("order-sign", context).in_focus == {
        "MedicationRequest/a",
        "MedicationRequest/b",
    }


def test_the_sandbox_order_shape_is_read_as_the_well_formed_order() -> None:
    """The CDS Hooks Sandbox sends category and reasonCode as single objects."""
    gbs = {"coding": [{"system": "http://snomed.info/sct", "code": "40956001"}]}
    well_formed = order(
        {"medicationCodeableConcept": {"text": "Privigen"}},
        IV,
        category=[{"text": "inpatient"}],
        reasonCode=[gbs],
    )
    sandbox = {**well_formed, "category": {"text": "inpatient"}, "reasonCode": gbs}
    ctx = context_of(orders=[sandbox])
    assert [o.reference for o in ctx.ig_orders] == ["MedicationRequest/o1"]
    assert (
        ctx.ig_orders[0].order.reason_codes
        == context_of(orders=[well_formed]).ig_orders[0].order.reason_codes
    )
    # category is read by no rule: it is never looked at, so it is no deviation either.
    assert [d.path for d in ctx.deviations] == ["reasonCode"]


def test_an_order_with_no_medication_is_not_checked() -> None:
    """While a user types, the Sandbox sends orders with no medication at all."""
    ctx = context_of(orders=[order({}, IV)])
    assert ctx.ig_orders == ()


def test_a_malformed_dosage_disables_only_the_checks_that_read_it() -> None:
    broken = order({"medicationCodeableConcept": {"text": "Privigen"}}, dosageInstruction="IV")
    found = recognise(broken)
    assert isinstance(found, IgOrder) and found.product is not None
    assert "dosageInstruction" in found.order.unreadable
    assert found.route == "IV" and "labelled route of Privigen" in found.route_basis
