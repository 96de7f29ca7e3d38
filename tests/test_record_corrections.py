"""Issue 11 corrections to how the record is read (card contract §8, §9): comparators,
hyperimmune and non-human globulins, the route of a nephrotoxic drug and loop diuretics,
pregnancy and the postpartum period, and another patient's data. One rule-level test per branch;
the scenarios (index.json) run the same cases through HTTP in both data modes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from contexts import KB, THRESHOLDS, TODAY, context_of
from flask.testing import FlaskClient

from hooks.context import ClinicalContext
from hooks.context.model import Comparator, ObservationEntry, compare
from hooks.context.read import names_patient
from hooks.findings import Finding
from hooks.rules import data_incomplete, hypersensitivity, iga_deficiency, renal, thrombosis
from hooks.rules.base import OrderInput

SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# 40 years old: no age factor for thrombosis (>= 65) or renal (> 65), no IgA age limit
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1986-03-10", "gender": "female"}
ORDER: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "id": "ivig",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "authoredOn": TODAY.isoformat(),
    "medicationCodeableConcept": {"text": "Privigen 10% (immune globulin intravenous)"},
    "dosageInstruction": [
        {
            "route": {"coding": [{"system": SCT, "code": "47625008"}]},
            "doseAndRate": [{"doseQuantity": {"value": 0.4, "unit": "g/kg"}}],
        }
    ],
}


def day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def context(*resources: dict[str, Any]) -> ClinicalContext:
    return context_of(resources, [ORDER], patient=PATIENT)


def order_input(ctx: ClinicalContext) -> OrderInput:
    return OrderInput(ctx, ctx.ig_orders[0], KB, THRESHOLDS)


def lab(
    code: str, value: float, unit: str, comparator: str | None = None, ident: str = "lab"
) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value, "unit": unit}
    if comparator:
        quantity["comparator"] = comparator
    return {
        "resourceType": "Observation",
        "id": ident,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": day(5),
        "valueQuantity": quantity,
    }


def condition(
    ident: str, code: dict[str, Any], onset: str | None, status: str = "active"
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": ident,
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": status,
                }
            ]
        },
        "code": code,
    }
    if onset:
        resource["onsetDateTime"] = onset
    return resource


def data_card(ctx: ClinicalContext) -> list[str]:
    return data_incomplete.problems(order_input(ctx))


# --- comparators ---------------------------------------------------------------------------


def entry(value: float, comparator: Comparator | None) -> ObservationEntry:
    return ObservationEntry(
        "Observation/x",
        "serum-iga",
        None,
        "IgA",
        "final",
        TODAY,
        value,
        "mg/dL",
        "",
        (),
        comparator,
    )


@pytest.mark.parametrize(
    ("value", "comparator", "op", "limit", "expected"),
    [
        (5, None, "<", 7, True),
        (7, None, "<", 7, False),
        (7, "<", "<", 7, True),  # "<7" is below 7
        (10, "<", "<", 7, None),  # "<10" may or may not be below 7
        (5, "<", "<", 7, True),
        (7, "<=", "<", 7, None),  # "<=7" may be 7
        (7, "<=", "<=", 7, True),
        (60, ">", "<", 60, False),  # eGFR ">60" is not below 60
        (60, ">=", "<", 60, False),
        (30, ">", "<", 60, None),  # eGFR ">30" may be below 60
        (0.5, "<", ">", 1.3, False),  # creatinine "<0.5" is not above 1.3
        (1000, ">", ">=", 1000, True),  # triglycerides ">1000"
        (1000, "<", ">=", 1000, False),  # "<1000" is below 1000
        (500, ">", ">=", 1000, None),
        (1000, ">=", ">=", 1000, True),
        (1000, "<=", ">", 1000, False),
    ],
)
def test_a_comparator_bounds_the_value(
    value: float, comparator: Comparator | None, op: Comparator, limit: float, expected: bool | None
) -> None:
    assert compare(entry(value, comparator), op, limit) is expected


def test_iga_recorded_below_7_is_iga_deficiency() -> None:
    ctx = context(lab("2458-8", 7, "mg/dL", "<"))
    iga = ctx.latest("serum-iga")
    assert iga is not None and iga.comparator == "<" and iga.value == 7
    found = iga_deficiency.check(order_input(ctx))
    assert found is not None and any("<7 mg/dL" in line for line in found.evidence)
    assert not [line for line in data_card(ctx) if "cannot be compared" in line]


def test_an_undecidable_iga_is_named_on_the_data_card_not_guessed() -> None:
    ctx = context(lab("2458-8", 10, "mg/dL", "<"))
    assert iga_deficiency.check(order_input(ctx)) is None
    [line] = data_card(ctx)
    assert "<10 mg/dL" in line and "cannot be compared with < 7 mg/dL" in line
    assert "IgA deficiency could not be decided" in line


def test_egfr_with_a_comparator_in_the_renal_rule() -> None:
    below = renal.risk_factors(order_input(context(lab("33914-3", 30, "mL/min/{1.73_m2}", "<"))))
    assert [(f.name, f.high) for f in below] == [("eGFR <30", "eGFR < 30")]  # severe, decided
    open_ = context(lab("33914-3", 30, "mL/min/{1.73_m2}", ">"))
    assert renal.risk_factors(order_input(open_)) == []
    assert "renal insufficiency (renal boxed warning) could not be decided" in data_card(open_)[0]
    above = context(lab("33914-3", 60, "mL/min/{1.73_m2}", ">"))
    assert renal.risk_factors(order_input(above)) == [] and data_card(above) == []


def test_creatinine_with_a_comparator_and_the_rise() -> None:
    high = renal.risk_factors(order_input(context(lab("2160-0", 1.5, "mg/dL", ">"))))
    assert [f.name for f in high] == ["creatinine >1.50 mg/dL"]
    # "<0.5" two days before 1.0 is no exact number to subtract: no rise is computed from it
    earlier = lab("2160-0", 0.5, "mg/dL", "<", ident="earlier") | {"effectiveDateTime": day(7)}
    ctx = context(earlier, lab("2160-0", 1.0, "mg/dL"))
    assert renal.creatinine_rise(ctx, THRESHOLDS) is None


def test_triglycerides_with_a_comparator() -> None:
    def names(ctx: ClinicalContext) -> list[str]:
        return [f.name for f in thrombosis.risk_factors(order_input(ctx))]

    assert names(context(lab("2571-8", 1000, "mg/dL", ">"))) == ["very high triglycerides"]
    assert names(context(lab("2571-8", 1000, "mg/dL", "<"))) == []
    open_ = context(lab("2571-8", 500, "mg/dL", ">"))
    assert names(open_) == [] and "hyperviscosity" in data_card(open_)[0]


def test_a_comparator_outside_r4_makes_the_value_unusable() -> None:
    ctx = context(lab("2458-8", 5, "mg/dL", "~"))
    assert ctx.latest("serum-iga") is None
    assert "comparator is not one of" in ctx.unusable[0].reason


# --- hypersensitivity: hyperimmune human globulins count, animal-derived and monoclonal not ---


def allergy(text: str, coding: dict[str, str] | None = None) -> dict[str, Any]:
    code: dict[str, Any] = {"text": text, **({"coding": [coding]} if coding else {})}
    return {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "patient": {"reference": "Patient/p1"},
        "criticality": "high",
        "code": code,
    }


def reaction(text: str, coding: dict[str, str] | None = None) -> Finding | None:
    return hypersensitivity.check(order_input(context(allergy(text, coding))))


@pytest.mark.parametrize(
    "text",
    [
        "RhoGAM",
        "WinRho SDF",
        "Anti-D",
        "HyperRAB",
        "HepaGam B",
        "Nabi-HB",
        "HyperTET",
        "Cytogam",
        "Varizig",
        "BabyBIG",
        "Rabies immune globulin (human)",
    ],
)
def test_a_hyperimmune_human_globulin_is_human_immune_globulin(text: str) -> None:
    found = reaction(text)
    assert found is not None and found.indicator == "critical"


@pytest.mark.parametrize(
    "text",
    [
        "Anti-thymocyte immunoglobulin (rabbit)",
        "Thymoglobulin",
        "Atgam (lymphocyte immune globulin, anti-thymocyte globulin [equine])",
        "CroFab (crotalidae polyvalent immune fab, ovine)",
        "Antivenom immunoglobulin",
        "Botulism antitoxin heptavalent (equine)",
        "Digoxin immune Fab",
        "Rituximab",
        "Monoclonal immunoglobulin G1",
        "Eculizumab (humanized immunoglobulin)",
    ],
)
def test_animal_derived_globulins_and_monoclonal_antibodies_do_not_count(text: str) -> None:
    assert reaction(text) is None


def test_a_code_of_human_immune_globulin_counts_whatever_the_text() -> None:
    coded = {"system": RXNORM, "code": "1426680", "display": "immunoglobulin G, human"}
    assert reaction("Thymoglobulin", coded) is not None


# --- renal: the route of a nephrotoxic drug; loop diuretics ----------------------------------


def medication(
    text: str,
    route: str | None = None,
    dosage_text: str | None = None,
    form: str | None = None,
) -> dict[str, Any]:
    dosage: dict[str, Any] = {}
    if route:
        dosage["route"] = {"text": route}
    if dosage_text:
        dosage["text"] = dosage_text
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-06-01",
        "medicationCodeableConcept": {"text": text},
        "dosageInstruction": [dosage] if dosage else [],
    }
    if form:  # the drug as a contained Medication with its dose form
        del resource["medicationCodeableConcept"]
        resource["contained"] = [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {"text": text},
                "form": {"text": form},
            }
        ]
        resource["medicationReference"] = {"reference": "#med"}
    return resource


def renal_lines(resource: dict[str, Any]) -> list[str]:
    return [f.evidence for f in renal.risk_factors(order_input(context(resource)))]


@pytest.mark.parametrize(
    ("resource", "counts", "why"),
    [
        (medication("Vancomycin 1 g", route="Intravenous"), True, "IV/IM (from its route)"),
        (medication("Gentamicin 80 mg", route="IM"), True, "IV/IM (from its route)"),
        (medication("Vancomycin", route="Oral route"), False, ""),
        (medication("Vancomycin 125 MG Oral Capsule"), False, ""),  # the dose form of the name
        (medication("Neomycin sulfate 500 MG", dosage_text="1 g by mouth"), False, ""),
        (medication("Ibuprofen 600 MG Oral Tablet"), True, "oral (from its dose form)"),
        (medication("Ibuprofen", dosage_text="600 mg by mouth"), True, "oral (from its dosage"),
        (medication("Diclofenac sodium 1% topical gel"), False, ""),
        (medication("Tobramycin", route="Ophthalmic"), False, ""),
        (medication("Neomycin/polymyxin B/hydrocortisone otic suspension"), False, ""),
        (medication("Tobramycin 300 MG/5ML Inhalation Solution"), False, ""),
        (medication("Vancomycin", form="Injectable solution"), True, "IV/IM (from its dose form)"),
        (medication("Vancomycin", form="Oral capsule"), False, ""),
        (medication("Vancomycin"), True, "route not recorded (counted)"),  # unknown counts
    ],
)
def test_a_nephrotoxic_drug_counts_by_its_route(
    resource: dict[str, Any], counts: bool, why: str
) -> None:
    lines = renal_lines(resource)
    assert bool(lines) is counts
    if counts:
        [line] = lines
        assert line.startswith("Nephrotoxic drug:") and why in line


def test_a_loop_diuretic_is_a_volume_depletion_factor_not_a_nephrotoxic_drug() -> None:
    factors = renal.risk_factors(order_input(context(medication("Furosemide 40 MG Oral Tablet"))))
    [factor] = factors
    assert factor.name == "loop diuretic (risk of volume depletion)"
    assert factor.high is None  # a common factor, not high-severity
    assert factor.evidence.startswith("Loop diuretic (risk of volume depletion):")
    assert not KB.valueset("nephrotoxic-medications").match((), ("furosemide",))


# --- thrombosis: pregnancy and the postpartum period ----------------------------------------

PREGNANT = {"coding": [{"system": SCT, "code": "77386006"}], "text": "Pregnant"}
NOT_PREGNANT = {"coding": [{"system": SCT, "code": "60001007"}], "text": "Not pregnant"}


def pregnancy(*resources: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [
        (f.name, f.high) for f in thrombosis.pregnancy_factors(order_input(context(*resources)))
    ]


def test_pregnancy_dated_within_42_weeks_counts() -> None:
    assert pregnancy(condition("p", PREGNANT, day(140))) == [("pregnancy", "pregnancy")]
    assert pregnancy(condition("p", PREGNANT, day(295))) == []  # 42 weeks = 294 days
    assert pregnancy(condition("p", PREGNANT, None)) == []  # undated: cannot be placed


@pytest.mark.parametrize(
    "ended_by",
    [
        condition("d", {"text": "Spontaneous vaginal delivery"}, day(70), "resolved"),
        condition("d", {"text": "Delivered by cesarean section"}, day(70), "resolved"),
        condition("n", NOT_PREGNANT, day(70)),
    ],
)
def test_a_later_delivery_or_not_pregnant_record_ends_a_pregnancy(ended_by: dict[str, Any]) -> None:
    assert pregnancy(condition("p", PREGNANT, day(200)), ended_by) == []


def test_an_earlier_delivery_does_not_end_a_new_pregnancy() -> None:
    delivered = condition("d", {"text": "Spontaneous vaginal delivery"}, day(400), "resolved")
    assert pregnancy(condition("p", PREGNANT, day(100)), delivered) == [("pregnancy", "pregnancy")]


def test_labour_without_delivery_is_no_delivery() -> None:
    labour = condition("l", {"text": "Preterm labor without delivery"}, day(30))
    assert pregnancy(condition("p", PREGNANT, day(200)), labour) == [("pregnancy", "pregnancy")]


def pregnancy_status(answer: str, display: str, days_ago: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"status-{answer}",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": LOINC, "code": "82810-3"}]},
        "effectiveDateTime": day(days_ago),
        "valueCodeableConcept": {"coding": [{"system": LOINC, "code": answer}], "text": display},
    }


def test_the_pregnancy_status_observation_is_a_pregnancy_record_or_ends_one() -> None:
    assert pregnancy(pregnancy_status("LA15173-0", "Pregnant", 30)) == [("pregnancy", "pregnancy")]
    assert pregnancy(pregnancy_status("LA15173-0", "Pregnant", 300)) == []
    not_pregnant = pregnancy_status("LA26683-5", "Not pregnant", 10)
    assert pregnancy(condition("p", PREGNANT, day(200)), not_pregnant) == []


@pytest.mark.parametrize(
    ("record", "counts"),
    [
        (condition("pp", {"text": "Postpartum state"}, day(28)), True),
        (condition("pp", {"text": "Postpartum state"}, day(42)), True),  # 6 weeks, included
        (condition("pp", {"text": "Postpartum state"}, day(43)), False),
        (condition("d", {"text": "Spontaneous vaginal delivery"}, day(28), "resolved"), True),
        (condition("d", {"text": "Spontaneous vaginal delivery"}, day(70), "resolved"), False),
    ],
)
def test_postpartum_within_6_weeks_counts(record: dict[str, Any], counts: bool) -> None:
    expected = [("postpartum (within 6 weeks)", "postpartum")] if counts else []
    assert pregnancy(condition("p", PREGNANT, day(250)), record) == expected


# --- another patient's data -----------------------------------------------------------------

SERVER = "https://fhir.example.org/r4"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/p1", True),
        ("Patient/p2", False),
        (f"{SERVER}/Patient/p1", True),
        (f"{SERVER}/Patient/p1/_history/3", True),
        ("https://elsewhere.example.org/fhir/Patient/p1", False),  # not under fhirServer
        ("Group/p1", False),
        ("urn:uuid:8d6b3c2e-5a0f-4b7e-9a61-0f5b2d7c9e11", None),  # cannot tell
    ],
)
def test_references_match_on_type_and_id(reference: str, expected: bool | None) -> None:
    assert names_patient(reference, "p1", SERVER) is expected


def test_another_patients_resources_are_never_used_and_counted() -> None:
    other = {"reference": "Patient/p2"}
    resources = [
        lab("2458-8", 5, "mg/dL", ident="iga") | {"subject": other},
        condition("c", {"coding": [{"system": SCT, "code": "190979003"}]}, day(9))
        | {"subject": other},
        allergy("Immune globulin") | {"patient": other},
        lab("2458-8", 150, "mg/dL", ident="own-iga"),
    ]
    ctx = context(*resources)
    assert ctx.other_patient == ("Observation/iga", "Condition/c", "AllergyIntolerance/a1")
    iga = ctx.latest("serum-iga")
    assert iga is not None and iga.value == 150
    assert ctx.conditions == () and ctx.allergies == ()
    [line] = data_card(ctx)
    assert "1 AllergyIntolerance, 1 Condition, 1 Observation" in line
    assert "Observation/iga" not in line  # the ids go to the audit only


def _post(client: FlaskClient, body: dict[str, Any]) -> Any:
    return client.post("/cds-services/ivig-order-sign", json=body)


def test_a_prefetched_patient_of_another_id_is_412(client: FlaskClient) -> None:
    from conftest import hook_request

    body = hook_request(
        "order-sign",
        "p1",
        [ORDER],
        prefetch={"patient": PATIENT | {"id": "p2"}, "conditions": None},
    )
    response = _post(client, body)
    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Patient/p2 but context.patientId is p1" in outcome["issue"][0]["diagnostics"]


def test_a_draft_order_for_another_patient_is_400(client: FlaskClient) -> None:
    from conftest import hook_request

    order = ORDER | {"subject": {"reference": "Patient/p2"}}
    response = _post(
        client, hook_request("order-sign", "p1", [order], prefetch={"patient": PATIENT})
    )
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "MedicationRequest/ivig for Patient/p2" in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize("mode", ["prefetch", "fhir-fetch"])
def test_another_patients_observation_over_http(
    client: FlaskClient, app: Any, fhir_mock: Any, mode: str
) -> None:
    """An EHR (or a FHIR server) that sends another patient's IgA of 5 mg/dL: no IgA card; the
    data card says one Observation was not used; the audit record names it, the answer does
    not. (Not a fixture scenario: a real FHIR server's patient-scoped search never returns it,
    so the integration run could not show it.)"""
    from conftest import (
        FHIR_BASE,
        FakeFhirServer,
        cards_by_topic,
        fired,
        full_prefetch,
        hook_request,
        order_for,
        scenario_resources,
    )
    from test_logs_audit import audit_rows

    name = "ivig-out-iga-normal"
    foreign = lab("2458-8", 5, "mg/dL", ident="foreign-iga") | {
        "subject": {"reference": "Patient/someone-else"}
    }
    resources = [*scenario_resources(name), foreign]
    orders = [order_for("privigen-iv", name)]
    if mode == "prefetch":
        body = hook_request("order-sign", name, orders, prefetch=full_prefetch(resources))
    else:
        FakeFhirServer(fhir_mock, resources)  # it answers every search with every resource
        body = hook_request("order-sign", name, orders, fhir_server=FHIR_BASE)
    response = _post(client, body)
    assert response.status_code == 200
    answer = response.get_json()
    assert fired(answer["cards"]) == {
        "data-incomplete": "warning",
        "hemolysis-risk": "info",
        "infusion-rate": "info",  # a first infusion ordered without a rate
    }
    detail = cards_by_topic(answer["cards"])["data-incomplete"]["detail"]
    assert "name another patient" in detail and ": 1 Observation" in detail
    assert "foreign-iga" not in json.dumps(answer)  # its id is not in the answer
    [row] = audit_rows(app)
    assert "Observation/foreign-iga" in row["notes"]
