"""From resolved prefetch data to what rules read: the patient record and the IVIG history.

Shared by the order services and patient-view. The Patient must be valid and be the context's
patient: another patient's record is never checked in this patient's name.
"""

from __future__ import annotations

from cds_service.errors import InvalidHookRequest, Issue, PrefetchUnavailable
from cds_service.fhir.parse import parse_resources
from cds_service.service import HookCall, ResolvedData
from hooks.knowledge_base import KnowledgeBase
from hooks.orders import IgHistory, IgOrder, OrderRecogniser
from hooks.record import PatientRecord, as_date, build_record

NOT_HISTORY = ("entered-in-error", "cancelled", "draft")


def patient_record(data: ResolvedData, call: HookCall, kb: KnowledgeBase) -> PatientRecord:
    specs = {spec.key: spec for spec in call.service.prefetch}
    patients, _ = parse_resources(data.resources.get("patient", []))
    patient = next((p for p in patients if p.get_resource_type() == "Patient"), None)
    if patient is None:
        issue = Issue("Essential data 'patient' holds no valid FHIR R4 Patient", "prefetch.patient")
        raise PrefetchUnavailable("the Patient could not be obtained", [issue])
    if patient.id != call.context["patientId"]:
        message = (
            f"prefetch.patient is Patient/{patient.id} but context.patientId is "
            f"{call.context['patientId']}"
        )
        raise InvalidHookRequest(message, [Issue(message, "prefetch.patient")])
    raws = [r for key, found in data.resources.items() if key != "patient" for r in found]
    resources, skipped = parse_resources(raws)
    gaps = {
        key: f"{why}. Checks affected: {specs[key].needed_for}" if key in specs else why
        for key, why in data.gaps.items()
    }
    return build_record(patient, resources, kb, call.now.date(), skipped, gaps)


def ig_history(
    data: ResolvedData, record: PatientRecord, recogniser: OrderRecogniser
) -> tuple[IgHistory, ...]:
    """The patient's immune globulin orders and statements (drafts, cancelled, errors excluded)."""
    skipped = {s.reference for s in record.skipped}
    history = []
    for key in ("medicationRequests", "medicationStatements"):
        for raw in data.resources.get(key, []):
            if not isinstance(raw, dict):
                continue
            if f"{raw.get('resourceType')}/{raw.get('id')}" in skipped:
                continue
            if raw.get("status") in NOT_HISTORY:
                continue
            found = recogniser.recognise(raw, {}, lambda _reference: None)
            if isinstance(found, IgOrder):
                authored = as_date(raw.get("authoredOn") or raw.get("effectiveDateTime"))
                history.append(IgHistory(found, str(raw.get("status")), authored))
    return tuple(history)
