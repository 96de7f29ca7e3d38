"""data-incomplete: data a rule needs could not be obtained (contract §3, §6).

Prefetch keys that were missing or an OperationOutcome and could not be fetched, paging cut short,
resources that could not be read, values in units that cannot be converted (unless missing-data
already reports them), medications that could not be identified, a missing birth date, and
elements of the order itself that could not be read (the checks they feed did not run). The card
names the checks that could not run, so silence is never mistaken for safety.
"""

from __future__ import annotations

from dataclasses import replace

from hooks import evidence
from hooks.body_weight import WEIGHT_THRESHOLDS
from hooks.findings import Finding
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.comparisons import CONCEPTS as COMPARED
from hooks.rules.comparisons import THRESHOLDS as COMPARED_WITH
from hooks.rules.comparisons import undecided
from hooks.rules.missing_data import RENAL_CONCEPTS, renal_labs_missing, weight_missing
from hooks.text import record

TOPIC = "data-incomplete"
# Which checks an unreadable element of the order disables.
ORDER_ELEMENTS = {
    "medicationCodeableConcept": "the coded product (it was recognised by its name instead)",
    "medicationReference": "the referenced Medication (the product was recognised without it)",
    "dosageInstruction": "the route, dose, dosing-weight, hemolysis and meningitis checks",
    "dispenseRequest": "the course length of the dose check",
    "timing": "the administration days (course and duplicate-therapy checks)",
    "reasonCode": "the indication of the dose and guidance checks",
    "reasonReference": "the indication of the dose and guidance checks",
}


def problems(inp: OrderInput) -> list[str]:
    ctx = inp.ctx
    # Why a fetch failed or a resource was skipped may quote the server or the resource
    # (a validation message holds the offending value): marked as the record's text.
    found = [f"Prefetch '{key}': {record(why)}" for key, why in sorted(ctx.gaps.items())]
    found += [
        f"{record(item.reference)} was skipped: {record(item.reason)}" for item in ctx.skipped
    ]
    found += [
        f"{record(inp.order.reference)}: {record(why)}; not checked: {ORDER_ELEMENTS[element]}"
        for element, why in sorted(inp.order.order.unreadable.items())
        if element in ORDER_ELEMENTS  # other elements of a draft order are read by no check
    ]
    reported_by_missing_data = set()
    if weight_missing(inp):
        reported_by_missing_data.add("body-weight")
    if renal_labs_missing(inp):
        reported_by_missing_data.update(RENAL_CONCEPTS)
    found += [
        evidence.unusable(item)
        for item in ctx.unusable
        if item.entry.concept not in reported_by_missing_data
    ]
    found += [
        f"{record(m.reference)}: the medication could not be identified "
        "(estrogen and nephrotoxic-drug checks may miss it)"
        for m in ctx.medications
        if not m.identified
    ]
    found += undecided(ctx, inp.thresholds, inp.order.route)
    counts = ctx.other_patient_counts
    if counts:
        listed = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        found.append(
            f"Not used, because they name another patient (not {record(ctx.patient.reference)}): "
            f"{listed} (the audit record names them)"
        )
    if ctx.patient.birth_date is None:
        found.append(
            f"{record(ctx.patient.reference)} has no birth date: age-based risk factors "
            "(thrombosis, renal, IgA) could not be checked"
        )
    return found


def check(inp: OrderInput) -> Finding | None:
    found = problems(inp)
    if not found:
        return None
    return _finding(tuple(found))


def not_checked(
    unchecked: tuple[tuple[str, str], ...], total: int, budget_s: float
) -> tuple[Finding, ...]:
    """The orders (reference, product) the checks' time budget left unchecked (issue 12): said
    first on the data card, never silent. No rule ran on them: no card shows their
    contraindications, so no revised order is offered on any card of the call. One finding per
    order, each naming them all: the composer shows one data card per course."""
    names = ", ".join(f"{record(product)} ({record(ref)})" for ref, product in unchecked)
    count = f"{len(unchecked)} of {total}" if total > 1 else "The"
    summary = f"{count} immune globulin order{'s' if total > 1 else ''} NOT checked (time limit)"
    products = ", ".join(dict.fromkeys(record(product) for _, product in unchecked))
    if len(summary) + len(products) + 2 <= 120:  # room for the card's own prefix
        summary = f"{summary}: {products}"
    again = (
        "Select or sign fewer orders at once to have them checked" if total > 1 else "Or try again"
    )
    found = Finding(
        topic=TOPIC,
        indicator="warning",
        summary=summary,
        evidence=(
            f"Not checked at all: {names}. The checks ran out of their time ({budget_s:g} s) "
            f"after {total - len(unchecked)} of {total} orders",
        ),
        recommendation=(
            f"Check {'these orders' if total > 1 else 'this order'} by hand before "
            f"{'they are' if total > 1 else 'it is'} signed: the allergy and excipient "
            "contraindications, IgA, dose, infusion rate and duplicate-therapy checks did not "
            f"run. {again}."
        ),
        not_checked=True,
    )
    return tuple(replace(found, order=ref) for ref, _ in unchecked)


def _finding(found: tuple[str, ...]) -> Finding:
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary="Some immune globulin safety checks could not run: patient data incomplete",
        evidence=found,
        recommendation=(
            "Review the chart for the items listed before the infusion: the service could not see "
            "them, so the absence of a warning about them does not mean there is no risk."
        ),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="whether all the data the checks need could be read",
    fires_when=(
        "data a check needs could not be had: a prefetch key missing or an OperationOutcome and "
        "not fetchable, a failed or timed-out fetch, paging cut short, a resource that cannot be "
        "read, an element of the order that cannot be read, a value in a unit that cannot be "
        "converted, a value whose comparator leaves a threshold comparison open (IgA < 10 "
        "mg/dL against 7), resources naming another patient (ignored), an unidentified "
        "medication, no birth date, an order the checks' time budget left unchecked"
    ),
    indicator="`warning`",
    suggests="none: the card names the checks that could not run",
    reads=Reads(
        # It reads what missing-data reads, so as not to report the same value twice, and the
        # current medications, to name those it could not identify.
        prefetch=frozenset(
            {"patient", "observations", "medicationRequests", "medicationStatements"}
        ),
        # and the values the order rules compare with thresholds, to name those a comparator
        # leaves open ("<10 mg/dL" against 7)
        observations=tuple(dict.fromkeys(("body-weight", *RENAL_CONCEPTS, *COMPARED))),
        thresholds=(*WEIGHT_THRESHOLDS, "window_renal_days", *COMPARED_WITH),
    ),
    about_data=True,
    check=check,
)
