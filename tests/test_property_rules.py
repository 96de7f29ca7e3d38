"""Hostile input, property-based (issue 5 item 4): arbitrary FHIR resources never break a rule.

Hypothesis draws Patients, Conditions, Observations, AllergyIntolerances, MedicationRequests,
MedicationStatements, Procedures and draft orders that mix codes the knowledge uses (value sets,
observation concepts, product and route codes) with random strings, odd units, partial dates,
zeros, huge numbers, NaN and infinities. They go through the real pipeline (parse, record, order
recognition, every order and patient-view rule, card building) and through whole hook calls on the
Flask app: never an exception, never a 5xx, every card contract-shaped, every 4xx an
OperationOutcome.

The example counts are small so that ``make test`` stays fast, and derandomized so CI is
reproducible. ``make fuzz`` runs many more (``IVIG_CDS_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import EVALUATED_AT, PREFETCH_TYPES, assert_card_shape, make_app, searchset
from contexts import KB, context_of, medication_order
from contexts import SETTINGS as ENGINE_SETTINGS
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.errors import InvalidHookRequest, PrefetchUnavailable
from hooks.card_builder import make_cards
from hooks.composer import compose
from hooks.context import ObservationEntry
from hooks.dosing import UnreadableDose, read_dose
from hooks.engine import evaluate

# `make fuzz` sets IVIG_CDS_FUZZ_EXAMPLES (e.g. 2000) to run many more examples than `make test`.
FUZZ_EXAMPLES = int(os.environ.get("IVIG_CDS_FUZZ_EXAMPLES") or 0)


def examples(default: int) -> int:
    return FUZZ_EXAMPLES or default


# Reproducible in CI (derandomize), no per-example deadline (the first call warms caches).
SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

TODAY = EVALUATED_AT.date()
PATIENT_ID = "fuzz-patient"
PATIENT_REF = f"Patient/{PATIENT_ID}"

# --- what the knowledge knows, so that many draws hit real rules -------------------------------

VALUESET_CODES = sorted({code for vs in KB.valuesets.values() for code in vs.codes})
OBSERVATION_CODES = sorted(
    {code for concept in KB.observations.values() for code in KB.valuesets[concept.valueset].codes}
)
PRODUCT_CODES = sorted(
    {(c.system, c.code) for product in KB.catalogue.products for c in product.codings}
)
GENERIC_CODES = sorted({(g.system, g.code) for g in KB.catalogue.generic_codings})
ROUTE_CODES = sorted(KB.route_codes)
# Indications with a dose range: the dose check runs only for these.
INDICATION_CODES = sorted({code for r in KB.dose_ranges for code in KB.valuesets[r.valueset].codes})
ATC = "http://www.whocc.no/atc"
EXCLUDED_ATC = [(ATC, prefix + "01") for prefix in KB.catalogue.exclusion_atc_prefixes]
PRODUCT_NAMES = sorted({name for p in KB.catalogue.products for name in p.match_names})
WORDS = sorted(
    {
        *KB.catalogue.generic_words,
        *KB.catalogue.exclusion_words,
        "plasma exchange",
        "intravenous",
        "subcutaneous",
        "IV",
        "SC",
        "estradiol",
    }
)
RANDOM_SYSTEMS = ["http://loinc.org", "http://snomed.info/sct", "urn:oid:1.2.3", "x", ""]

# --- primitive strategies -------------------------------------------------------------------

fhir_ids = st.from_regex(r"[A-Za-z0-9\-.]{1,20}", fullmatch=True)
odd_text = st.text(max_size=40)
texts = st.one_of(
    st.sampled_from(PRODUCT_NAMES + WORDS),
    st.builds(lambda a, b: f"{a} {b}", st.sampled_from(PRODUCT_NAMES + WORDS), odd_text),
    odd_text,
)
numbers = st.one_of(
    st.integers(-5, 5000),
    st.floats(min_value=-1e6, max_value=1e6),
    st.sampled_from([0, 0.0, -0.0, 1e-300, 5e-324, 1e20, 1e300, 1.7976931348623157e308, 10**30]),
    st.floats(),  # NaN and infinities too: Python's JSON parser (and so Flask's) accepts them
)
UNITS = [
    "kg",
    "g",
    "mg",
    "lb",
    "lbs",
    "[lb_av]",
    "mg/dL",
    "mg/dl",
    "MG/DL",
    "umol/L",
    "µmol/L",
    "μmol/L",
    "mmol/L",
    "g/L",
    "g/dL",
    "mL/min/{1.73_m2}",
    "mL/min/1.73m2",
    "mL/min",
    "cm",
    "m",
    "[in_i]",
    "kg/m2",
    "g/kg",
    "mg/kg",
    "%",
    "{score}",
    "",
    " ",
    "h",
    "d",
    "wk",
]
units = st.one_of(st.sampled_from(UNITS), odd_text)

years = st.integers(1900, 2035)
months = st.integers(1, 12)
OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
fhir_dates = st.one_of(
    years.map(lambda y: f"{y:04d}"),
    st.tuples(years, months).map(lambda ym: f"{ym[0]:04d}-{ym[1]:02d}"),
    st.dates(date(1900, 1, 1), date(2035, 12, 31)).map(date.isoformat),
)
fhir_datetimes = st.one_of(
    fhir_dates,
    st.datetimes(
        datetime(1900, 1, 1), datetime(2035, 12, 31), timezones=st.sampled_from(OFFSETS)
    ).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-06-15T12:00:00Z", "2026-06-14T23:59:59.999+14:00"]),
)
odd_dates = st.sampled_from(
    ["2020-13", "2020-02-30", "20200101", "0000", "yesterday", "", "2020-03-05T25:00:00Z"]
)
any_datetime = st.one_of(fhir_datetimes, fhir_datetimes, odd_dates)


def maybe(draw: Callable[..., Any], target: dict[str, Any], key: str, strategy: Any) -> None:
    """Set ``target[key]`` to a drawn value, or leave the key out."""
    if draw(st.booleans()):
        target[key] = draw(strategy)


@st.composite
def codings(draw: Callable[..., Any], known: list[tuple[str, str]]) -> dict[str, Any]:
    if known and draw(st.integers(0, 3)):
        system, code = draw(st.sampled_from(known))
    else:
        system, code = draw(st.sampled_from(RANDOM_SYSTEMS)), draw(odd_text)
    coding: dict[str, Any] = {"system": system, "code": code}
    maybe(draw, coding, "display", texts)
    return coding


def concepts(known: list[tuple[str, str]]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: Callable[..., Any]) -> dict[str, Any]:
        concept: dict[str, Any] = {}
        if draw(st.integers(0, 4)):
            concept["coding"] = draw(st.lists(codings(known), min_size=1, max_size=3))
        if not concept or draw(st.booleans()):
            concept["text"] = draw(texts)
        return concept

    return build()


@st.composite
def quantities(draw: Callable[..., Any]) -> dict[str, Any]:
    quantity: dict[str, Any] = {}
    maybe(draw, quantity, "value", numbers)
    maybe(draw, quantity, "unit", units)
    if draw(st.booleans()):
        quantity["system"] = "http://unitsofmeasure.org"
        quantity["code"] = draw(units)
    return quantity


def status_concept(codes: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.sampled_from(codes), odd_text).map(lambda c: {"coding": [{"code": c}]})


def subject() -> dict[str, str]:
    return {"reference": PATIENT_REF}


# --- resources ------------------------------------------------------------------------------


@st.composite
def patients(draw: Callable[..., Any], patient_id: str = PATIENT_ID) -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_id}
    maybe(draw, patient, "birthDate", st.one_of(fhir_dates, fhir_dates, odd_dates))
    maybe(draw, patient, "gender", st.sampled_from(["male", "female", "other", "unknown", "x"]))
    return patient


@st.composite
def conditions(draw: Callable[..., Any]) -> dict[str, Any]:
    condition: dict[str, Any] = {"resourceType": "Condition", "id": draw(fhir_ids)}
    condition["subject"] = subject()
    known = draw(st.sampled_from([VALUESET_CODES, INDICATION_CODES]))
    maybe(draw, condition, "code", concepts(known))
    statuses = ["active", "recurrence", "relapse", "inactive", "remission", "resolved"]
    maybe(draw, condition, "clinicalStatus", status_concept(statuses))
    verification = ["confirmed", "provisional", "refuted", "entered-in-error", "unconfirmed"]
    maybe(draw, condition, "verificationStatus", status_concept(verification))
    maybe(draw, condition, "onsetDateTime", any_datetime)
    maybe(draw, condition, "recordedDate", any_datetime)
    return condition


@st.composite
def observations(draw: Callable[..., Any]) -> dict[str, Any]:
    statuses = ["final", "amended", "corrected", "preliminary", "cancelled", "entered-in-error"]
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": draw(fhir_ids),
        "status": draw(st.one_of(st.sampled_from(statuses), odd_text)),
        "code": draw(concepts(OBSERVATION_CODES)),
        "subject": subject(),
    }
    value = draw(st.sampled_from(["quantity", "quantity", "string", "concept", "none"]))
    if value == "quantity":
        observation["valueQuantity"] = draw(quantities())
    elif value == "string":
        observation["valueString"] = draw(texts)
    elif value == "concept":
        observation["valueCodeableConcept"] = draw(concepts(VALUESET_CODES))
    effective = draw(st.sampled_from(["dateTime", "period", "instant", "none"]))
    if effective == "dateTime":
        observation["effectiveDateTime"] = draw(any_datetime)
    elif effective == "period":
        period: dict[str, Any] = {}
        maybe(draw, period, "start", any_datetime)
        maybe(draw, period, "end", any_datetime)
        observation["effectivePeriod"] = period
    elif effective == "instant":
        observation["effectiveInstant"] = "2026-06-01T08:00:00Z"
    maybe(draw, observation, "issued", st.sampled_from(["2026-06-01T08:00:00Z", "2020"]))
    return observation


@st.composite
def allergies(draw: Callable[..., Any]) -> dict[str, Any]:
    allergy: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": draw(fhir_ids),
        "patient": subject(),
    }
    maybe(draw, allergy, "code", concepts(VALUESET_CODES + PRODUCT_CODES))
    maybe(draw, allergy, "clinicalStatus", status_concept(["active", "inactive", "resolved"]))
    maybe(draw, allergy, "verificationStatus", status_concept(["confirmed", "refuted"]))
    criticality = st.sampled_from(["low", "high", "unable-to-assess", "extreme"])
    maybe(draw, allergy, "criticality", criticality)
    reaction = st.fixed_dictionaries(
        {"manifestation": st.lists(concepts(VALUESET_CODES), min_size=0, max_size=2)},
        optional={
            "severity": st.sampled_from(["mild", "moderate", "severe", "fatal"]),
            "substance": concepts(VALUESET_CODES + PRODUCT_CODES),
        },
    )
    maybe(draw, allergy, "reaction", st.lists(reaction, max_size=3))
    return allergy


MEDICATION_CODES = PRODUCT_CODES + GENERIC_CODES + EXCLUDED_ATC + VALUESET_CODES


DOSE_UNITS = ["g", "g/kg", "mg/kg", "mg", "G/KG", "g / kg", "mL"]
dose_quantities = st.one_of(
    quantities(),
    st.fixed_dictionaries(
        {
            "value": st.one_of(st.floats(0.01, 5), st.integers(1, 200), numbers),
            "unit": st.sampled_from(DOSE_UNITS),
        }
    ),
)
durations = st.one_of(
    quantities(),
    st.fixed_dictionaries(
        {
            "value": st.one_of(st.integers(0, 10), numbers),
            "unit": st.sampled_from(["d", "day", "days", "wk", "weeks", "h", "mo", "a", "x"]),
        }
    ),
)
periods = st.one_of(
    st.sampled_from([1, 3, 4, 0.5, 24]), st.sampled_from([5e-324, 1e-300, 1e300]), numbers
)


@st.composite
def weights(draw: Callable[..., Any]) -> dict[str, Any]:
    """A body weight, often plausible and recent, so that the dose checks have a weight."""
    value = draw(st.one_of(st.floats(0.5, 300), numbers))
    return {
        "resourceType": "Observation",
        "id": draw(fhir_ids),
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": subject(),
        "valueQuantity": {"value": value, "unit": draw(st.sampled_from(["kg", "[lb_av]", "g"]))},
        "effectiveDateTime": draw(st.sampled_from(["2026-06-10", "2026-06-15T09:00:00+02:00"])),
    }


@st.composite
def dosages(draw: Callable[..., Any]) -> dict[str, Any]:
    dosage: dict[str, Any] = {}
    maybe(draw, dosage, "text", texts)
    maybe(draw, dosage, "route", concepts(ROUTE_CODES))
    repeat: dict[str, Any] = {}
    huge_ints = st.one_of(
        st.integers(1, 10), st.sampled_from([0, 2**31 - 1, 2**31]), st.integers(0, 10**12)
    )
    period_units = st.sampled_from(["s", "min", "h", "d", "wk", "mo", "a", "x"])
    maybe(draw, repeat, "frequency", huge_ints)
    if draw(st.integers(0, 3)):  # mostly a regimen: a period and its unit
        repeat["period"], repeat["periodUnit"] = draw(periods), draw(period_units)
    else:
        maybe(draw, repeat, "period", periods)
        maybe(draw, repeat, "periodUnit", period_units)
    bounded = draw(st.sampled_from(["count", "bounds", "none", "none"]))
    if bounded == "count":
        repeat["count"] = draw(huge_ints)
    elif bounded == "bounds":
        repeat["boundsDuration"] = draw(durations)
    if repeat or draw(st.booleans()):
        dosage["timing"] = {"repeat": repeat} if repeat else {}
    rate = draw(st.sampled_from(["dose", "dose", "dose", "range", "none"]))
    if rate == "dose":
        dosage["doseAndRate"] = [{"doseQuantity": draw(dose_quantities)}]
    elif rate == "range":
        dosage["doseAndRate"] = [{"doseRange": {"low": draw(quantities())}}]
    return dosage


@st.composite
def medication_orders(
    draw: Callable[..., Any], kind: str | None = None, statuses: list[str] | None = None
) -> dict[str, Any]:
    kind = kind or draw(st.sampled_from(["MedicationRequest", "MedicationStatement"]))
    request = kind == "MedicationRequest"
    default = ["active", "on-hold", "completed", "stopped", "cancelled", "draft"]
    order: dict[str, Any] = {
        "resourceType": kind,
        "id": draw(fhir_ids),
        "status": draw(st.one_of(st.sampled_from(statuses or default), odd_text)),
        "subject": subject(),
    }
    if request:
        order["intent"] = draw(st.sampled_from(["order", "plan", "proposal", "original-order"]))
    medication = draw(st.sampled_from(["concept", "concept", "contained", "reference"]))
    if medication == "concept":
        order["medicationCodeableConcept"] = draw(concepts(MEDICATION_CODES))
    elif medication == "contained":
        code = draw(concepts(MEDICATION_CODES))
        order["contained"] = [{"resourceType": "Medication", "id": "med", "code": code}]
        order["medicationReference"] = {"reference": "#med"}
    else:
        reference: dict[str, Any] = {"reference": f"Medication/{draw(fhir_ids)}"}
        maybe(draw, reference, "display", texts)
        order["medicationReference"] = reference
    if draw(st.integers(0, 3)):
        order["dosageInstruction" if request else "dosage"] = draw(
            st.lists(dosages(), min_size=1, max_size=2)
        )
    maybe(draw, order, "authoredOn" if request else "effectiveDateTime", any_datetime)
    if request:
        maybe(draw, order, "reasonCode", st.lists(concepts(INDICATION_CODES), max_size=2))
    if request and draw(st.booleans()):
        order["dispenseRequest"] = {"expectedSupplyDuration": draw(durations)}
    return order


@st.composite
def procedures(draw: Callable[..., Any]) -> dict[str, Any]:
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": draw(fhir_ids),
        "status": draw(st.sampled_from(["completed", "in-progress", "not-done", "x"])),
        "subject": subject(),
        "code": draw(concepts(VALUESET_CODES)),
    }
    if draw(st.booleans()):
        procedure["performedDateTime"] = draw(any_datetime)
    else:
        maybe(draw, procedure, "performedPeriod", st.fixed_dictionaries({"start": any_datetime}))
    return procedure


@st.composite
def plasma_exchange_orders(draw: Callable[..., Any]) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": draw(fhir_ids),
        "status": "draft",
        "intent": "order",
        "subject": subject(),
        "code": draw(concepts(sorted(KB.valueset("plasma-exchange").codes))),
    }


record_resources = st.lists(
    st.one_of(
        conditions(), observations(), weights(), allergies(), medication_orders(), procedures()
    ),
    max_size=14,
)


def without_empty_values(value: Any) -> Any:
    """The value with every "", {} and [] removed, bottom-up (FHIR JSON allows no empty values)."""
    if isinstance(value, dict):
        pruned = {key: without_empty_values(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item not in ("", {}, [])}
    if isinstance(value, list):
        pruned_items = [without_empty_values(item) for item in value]
        return [item for item in pruned_items if item not in ("", {}, [])]
    return value


def as_draft(order: dict[str, Any]) -> dict[str, Any]:
    """A draft order as an EHR sends it in draftOrders.

    Dose and product suggestions are ``update`` actions that echo the order in its entirety, so
    an empty value, or a status or intent other than draft/order, in the client's draft would
    come back in the card: the drafts are kept FHIR-JSON clean (the record's resources are not).
    """
    order = without_empty_values(order)
    if order["resourceType"] == "MedicationRequest":
        order["intent"] = "order"
        order["status"] = "draft"
    return dict(order)


draft_orders = st.lists(
    st.one_of(
        medication_orders("MedicationRequest", ["draft"]),
        medication_orders("MedicationRequest", ["draft"]),
        plasma_exchange_orders(),
    ).map(as_draft),
    min_size=1,
    max_size=3,
    unique_by=lambda r: r["id"],
)

# --- the pipeline, rule by rule -------------------------------------------------------------


def new_uuid_factory() -> Callable[[], str]:
    count = 0

    def new_uuid() -> str:
        nonlocal count
        count += 1
        return f"00000000-0000-4000-8000-{count:012d}"

    return new_uuid


def check_cards(findings: tuple[Any, ...], ctx: Any, new_uuid: Callable[[], str]) -> None:
    plans = compose(findings, ctx, KB, ENGINE_SETTINGS)
    for card in make_cards(plans, ctx, KB, new_uuid):
        shaped = card.to_json()
        assert_card_shape(shaped, PATIENT_REF)
        json.dumps(shaped, allow_nan=False)  # no NaN or infinity reaches a card


@settings(max_examples=examples(200), **SETTINGS)
@given(patient=patients(), resources=record_resources, orders=draft_orders)
def test_every_rule_survives_arbitrary_resources(
    patient: dict[str, Any], resources: list[dict[str, Any]], orders: list[dict[str, Any]]
) -> None:
    """The whole engine, every hook: context, every rule, every card, on arbitrary input."""
    for hook in ("order-select", "order-sign", "patient-view"):
        try:
            ctx = context_of(
                resources, orders, hook=hook, patient=patient, gaps={"procedures": "gap"}
            )
        except (InvalidHookRequest, PrefetchUnavailable):
            continue  # a Patient that is not the context's is a 4xx before any rule
        check_cards(evaluate(ctx, KB, ENGINE_SETTINGS), ctx, new_uuid_factory())


@settings(max_examples=examples(300), **SETTINGS)
@given(
    order=medication_orders("MedicationRequest", ["draft"]).map(as_draft),
    kg=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
)
def test_dose_reading_is_finite_or_says_why(order: dict[str, Any], kg: float | None) -> None:
    weight = None
    if kg is not None:
        weight = ObservationEntry(
            "Observation/w", "body-weight", None, "Weight", "final", TODAY, kg, "kg", f"{kg} kg"
        )
    dose = read_dose(medication_order(order), weight)
    if isinstance(dose, UnreadableDose):
        assert dose.reason.startswith("the dose cannot be read")
        return
    figures = (dose.admin_g, dose.admin_g_per_kg, dose.course_g, dose.course_g_per_kg)
    assert all(math.isfinite(f) for f in (*figures, dose.interval_days or 0) if f is not None)
    assert dose.administrations >= 1


# --- whole hook calls through the Flask test client -----------------------------------------


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    return make_app(Path(tmp_path_factory.mktemp("fuzz"))).test_client()


SERVICES = {
    "order-select": "ivig-order-select",
    "order-sign": "ivig-order-sign",
    "patient-view": "ivig-patient-view",
}
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]}


@st.composite
def prefetch_values(draw: Callable[..., Any], kind: str) -> Any:
    choice = draw(st.sampled_from(["bundle", "bundle", "bundle", "null", "outcome", "junk"]))
    if choice == "null":
        return None
    if choice == "outcome":
        return OUTCOME
    if choice == "junk":
        return draw(st.sampled_from([{"resourceType": kind}, {"resourceType": "Bundle"}]))
    found = draw(st.lists(resource_strategies[kind], max_size=6))
    return searchset(found)


resource_strategies: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "Condition": conditions(),
    "Observation": observations(),
    "AllergyIntolerance": allergies(),
    "MedicationRequest": medication_orders("MedicationRequest"),
    "MedicationStatement": medication_orders("MedicationStatement"),
    "Procedure": procedures(),
}


@st.composite
def hook_bodies(draw: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    hook = draw(st.sampled_from(sorted(SERVICES)))
    orders = draw(draft_orders)
    context: dict[str, Any] = {"userId": "Practitioner/fuzz", "patientId": PATIENT_ID}
    if hook != "patient-view":
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": order} for order in orders],
        }
    if hook == "order-select":
        refs = [f"{o['resourceType']}/{o['id']}" for o in orders]
        picked = draw(st.lists(st.sampled_from(refs), min_size=1, unique=True))
        context["selections"] = draw(
            st.one_of(st.just(picked), st.just(picked), st.just([]), st.just(["X/unknown"]))
        )
    prefetch: dict[str, Any] = {}
    patient_id = draw(st.sampled_from([PATIENT_ID, PATIENT_ID, PATIENT_ID, "someone-else"]))
    patient = draw(st.one_of(patients(patient_id), st.just(OUTCOME), st.none()))
    if draw(st.integers(0, 5)):
        prefetch["patient"] = patient
    for key, kind in PREFETCH_TYPES.items():
        if draw(st.integers(0, 5)):
            prefetch[key] = draw(prefetch_values(kind))
    body = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
        "prefetch": prefetch,
    }
    return SERVICES[hook], body


def assert_answer(response: Any) -> list[dict[str, Any]]:
    assert response.status_code < 500, response.get_data(as_text=True)
    body = response.get_json()
    if response.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome" and body["issue"]
        for issue in body["issue"]:
            assert (
                issue["severity"] in ("error", "fatal") and issue["code"] and issue["diagnostics"]
            )
        return []
    assert response.status_code == 200
    return list(body["cards"])


@settings(max_examples=examples(100), **SETTINGS)
@given(call=hook_bodies())
def test_hook_calls_never_fail(http: FlaskClient, call: tuple[str, dict[str, Any]]) -> None:
    service, body = call
    # allow_nan: Flask's JSON parser accepts NaN and Infinity, so a hostile client can send them.
    text = json.dumps(body, allow_nan=True)
    response = http.post(f"/cds-services/{service}", data=text, content_type="application/json")
    for card in assert_answer(response):
        assert_card_shape(card, PATIENT_REF)
    json.loads(response.get_data(as_text=True), parse_constant=_reject_constant)


def _reject_constant(name: str) -> float:
    raise AssertionError(f"the response holds {name}, which is not JSON")


def json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(odd_text, children, max_size=4)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), odd_text),
    json_containers,
    max_leaves=20,
)


@settings(max_examples=examples(100), **SETTINGS)
@given(
    path=st.sampled_from(
        [f"/cds-services/{s}" for s in SERVICES.values()]
        + [f"/cds-services/{s}/feedback" for s in SERVICES.values()]
    ),
    body=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"hook": st.sampled_from(sorted(SERVICES)), "hookInstance": odd_text},
            optional={"context": json_values, "prefetch": json_values, "fhirServer": odd_text},
        ),
        st.fixed_dictionaries({"feedback": st.lists(json_values, max_size=3)}),
    ),
)
def test_arbitrary_json_is_a_4xx_never_a_5xx(http: FlaskClient, path: str, body: Any) -> None:
    text = json.dumps(body, allow_nan=True)
    assert_answer(http.post(path, data=text, content_type="application/json"))
