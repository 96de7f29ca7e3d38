"""Build clinical contexts and orders for tests that check the engine without an app or HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from hooks.context import ClinicalContext, IgOrder, build_context, focus_of, read_session
from hooks.context.model import MedicationOrder
from hooks.context.orders import read_medication_order, recognise
from hooks.context.read import Reader, reference_of
from hooks.engine import Settings
from hooks.knowledge_base import load_knowledge, thresholds_for_site
from hooks.registry import REGISTRY

KB = load_knowledge()
THRESHOLDS, _ = thresholds_for_site(KB, {}, {})
SETTINGS = Settings(REGISTRY.in_display_order(list(KB.topics)), THRESHOLDS)
TODAY = date(2026, 6, 15)
PATIENT_ID = "p1"
PATIENT = {
    "resourceType": "Patient",
    "id": PATIENT_ID,
    "birthDate": "1961-06-15",
    "gender": "female",
}


def medication_order(
    raw: dict[str, Any], medications: dict[str, Any] | None = None
) -> MedicationOrder:
    return read_medication_order(raw, Reader(reference_of(raw), []), medications or {})


def ig_order(raw: dict[str, Any], medications: dict[str, Any] | None = None) -> IgOrder | None:
    return recognise(medication_order(raw, medications), KB)


def context_of(
    resources: Sequence[Any] = (),
    orders: Sequence[dict[str, Any]] = (),
    *,
    hook: str = "order-sign",
    patient: dict[str, Any] | None = None,
    selections: Sequence[str] | None = None,
    gaps: dict[str, str] | None = None,
    today: date = TODAY,
    strict: bool = False,
) -> ClinicalContext:
    """The context of a call: the patient, these record resources and these draft orders."""
    patient = patient or PATIENT
    context: dict[str, Any] = {"patientId": patient["id"]}
    if hook != "patient-view":
        context["draftOrders"] = {"entry": [{"resource": order} for order in orders]}
    if hook == "order-select":
        context["selections"] = list(
            selections
            if selections is not None
            else [reference_of(o) for o in orders if o["resourceType"] == "MedicationRequest"]
        )
    session = read_session(hook, context)
    focus = focus_of(session, {}, KB)
    return build_context(
        session,
        focus,
        {"patient": [patient], "record": list(resources)},
        gaps or {},
        KB,
        today,
        strict=strict,
    )
