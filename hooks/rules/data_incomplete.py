"""data-incomplete: data a rule needs could not be obtained (contract §3, §6).

Prefetch keys that were missing or an OperationOutcome and could not be fetched, paging cut short,
resources that did not validate, values in units that cannot be converted (unless missing-data
already reports them), medications that could not be identified, and a missing birth date. The
card names the checks that could not run, so silence is never mistaken for safety.
"""

from __future__ import annotations

from hooks import evidence
from hooks.rules.base import Finding, RuleInput
from hooks.rules.missing_data import RENAL_CONCEPTS, renal_labs_missing, weight_missing

TOPIC = "data-incomplete"


def problems(inp: RuleInput) -> list[str]:
    record = inp.record
    found = [f"Prefetch '{key}': {why}" for key, why in sorted(record.gaps.items())]
    found += [f"{item.reference} was skipped: {item.reason}" for item in record.skipped]
    reported_by_missing_data = set()
    if weight_missing(inp):
        reported_by_missing_data.add("body-weight")
    if renal_labs_missing(inp):
        reported_by_missing_data.update(RENAL_CONCEPTS)
    found += [
        evidence.unusable(item)
        for item in record.unusable
        if item.entry.concept not in reported_by_missing_data
    ]
    found += [
        f"{m.reference}: the medication could not be identified "
        "(estrogen and nephrotoxic-drug checks may miss it)"
        for m in record.medications
        if not m.identified
    ]
    if record.birth_date is None:
        found.append(
            f"{record.patient_reference} has no birth date: age-based risk factors "
            "(thrombosis, renal, IgA) could not be checked"
        )
    return found


def check(inp: RuleInput) -> Finding | None:
    found = problems(inp)
    if not found:
        return None
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary="Some immune globulin safety checks could not run: patient data incomplete",
        evidence=tuple(found),
        recommendation=(
            "Review the chart for the items listed before the infusion: the service could not see "
            "them, so the absence of a warning about them does not mean there is no risk."
        ),
    )
