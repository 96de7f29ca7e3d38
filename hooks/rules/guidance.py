"""indication-guidance: the appropriateness of immune globulin for the order's indication, with the
seed guidance statements, each with its guideline and year (``knowledge/indication-guidance.json``).

The indication is the order's reason; without one, the patient's only active immune globulin
indication (several and no reason: which one the order is for is unknown, so nothing is said).
Tier (contract §7.3): `warning` where immune globulin is not a guideline therapy (the knowledge's
``warning``: anti-GBM disease; anti-MAG neuropathy; C. difficile unless hypogammaglobulinemia is
coded or IgG < 400 mg/dL); else `info` on a first infusion, and nothing on a maintenance order.
A positive anti-MAG antibody result is not read: the reference gives no code for the test.
With plasma exchange in the session or in the record, the statements about sequencing come first.
"""

from __future__ import annotations

from hooks.findings import Finding
from hooks.knowledge_base.schema import Guidance, Inappropriate
from hooks.rules import ig_therapy
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import low_igg
from hooks.rules.indications import FoundIndication, indications_of
from hooks.rules.plasma_exchange import plasma_exchange_known
from hooks.text import NOT_CHECKED

TOPIC = "indication-guidance"
HYPOGAMMAGLOBULINEMIA = (
    "hypogammaglobulinemia",
    "primary-immunodeficiency",
    "secondary-hypogammaglobulinemia",
)


def indications(inp: OrderInput) -> list[FoundIndication]:
    """The order's indications among every immune globulin indication the knowledge names;
    without a reason on the order, the patient's active one if there is only one."""
    wanted = {r.valueset for r in inp.kb.dose_ranges} | {g.valueset for g in inp.kb.guidance}
    found = indications_of(inp.order.order, inp.ctx, inp.kb.valuesets, wanted)
    if not inp.order.order.has_reason and len({f.valueset for f in found}) > 1:
        return []
    return found


def hypogammaglobulinemia(inp: OrderInput) -> list[str]:
    """Coded (active), or the latest IgG below igg_low_mg_dl."""
    return low_igg(inp.ctx, inp.kb, inp.thresholds, HYPOGAMMAGLOBULINEMIA, active_only=True)


def _statements(inp: OrderInput, items: list[Guidance]) -> tuple[list[str], tuple[str, str]]:
    plex_first = bool(plasma_exchange_known(inp.ctx, inp.kb))
    lines: list[str] = []
    sources: list[tuple[str, str]] = []
    for item in items:
        statements = sorted(
            item.statements, key=lambda s: not (plex_first and s.plasma_exchange_first)
        )
        for statement in statements:
            year = (
                f" {statement.year}"
                if statement.year and str(statement.year) not in statement.source.label
                else ""
            )
            flag = f" ({NOT_CHECKED})" if statement.unverified else ""
            lines.append(f"{item.display}: {statement.text} [{statement.source.label}{year}]{flag}")
            sources.append((statement.source.label, statement.source.url or ""))
    return lines, sources[0]


def check(inp: OrderInput) -> Finding | None:
    if not inp.course.leads(inp.order):
        return None  # one appropriateness finding per course, on its first order (§7.3)
    guidance = {g.valueset: g for g in inp.kb.guidance}
    found = [f for f in indications(inp) if f.valueset in guidance]
    if not found:
        return None
    items = [guidance[name] for name in dict.fromkeys(f.valueset for f in found)]
    lines = [f.evidence for f in found]
    low_igg = hypogammaglobulinemia(inp)
    warned: list[tuple[Guidance, Inappropriate]] = []
    for item in items:
        if item.warning is None:
            continue
        if item.warning.unless_hypogammaglobulinemia and low_igg:
            lines += [
                f"No appropriateness warning with hypogammaglobulinemia: {x}" for x in low_igg
            ]
            continue
        warned.append((item, item.warning))
    first = ig_therapy.is_first_infusion(inp.ctx, inp.thresholds)
    if not warned and not first:
        return None  # a maintenance order: the guidance was shown on the first
    lines += ig_therapy.therapy_lines(inp.ctx, inp.thresholds)
    statements, source = _statements(inp, [item for item, _ in warned] or items)
    lines += statements
    if warned:
        summary = warned[0][1].summary
        recommendation = (
            "Confirm that immune globulin is intended: it is not a guideline therapy for this "
            "indication. Review the guidance statements."
        )
    else:
        summary = f"Guidance for immune globulin in {', '.join(i.display for i in items)}"
        recommendation = "Review the guidance statements for this indication."
    return Finding(
        topic=TOPIC,
        indicator="warning" if warned else "info",
        summary=summary,
        evidence=tuple(lines),
        recommendation=recommendation,
        source=source,
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="appropriateness for the indication",
    fires_when=(
        "an indication with seed guidance (GBS, myasthenia gravis, autoimmune encephalitis, "
        "C. difficile, anti-MAG/IgM neuropathy, anti-GBM disease, primary immunodeficiency) is "
        "the order's reason or, without a reason, the patient's only active immune globulin "
        "indication; on a first infusion (no immune globulin in 90 days), or at any order for "
        "anti-GBM disease, anti-MAG neuropathy and C. difficile"
    ),
    indicator=(
        "`warning` for anti-GBM disease, anti-MAG neuropathy and C. difficile (unless "
        "hypogammaglobulinemia is coded or IgG < 400 mg/dL); else `info`"
    ),
    suggests=(
        "none; each statement names its guideline and year, and whether its wording is "
        "UNVERIFIED; plasma-exchange sequencing first when plasma exchange is in the session or "
        "the record"
    ),
    reads=Reads(
        prefetch=frozenset({"conditions", "procedures", "observations"})
        | ig_therapy.THERAPY_PREFETCH,
        valuesets=("plasma-exchange", *HYPOGAMMAGLOBULINEMIA, *ig_therapy.COURSE_VALUESETS),
        procedure_codes=("plasma-exchange",),
        observations=("serum-igg", *ig_therapy.COURSE_OBSERVATIONS),
        thresholds=(
            "igg_low_mg_dl",
            *ig_therapy.THERAPY_THRESHOLDS,
            *ig_therapy.COURSE_THRESHOLDS,
        ),
        knowledge=ig_therapy.COURSE_KNOWLEDGE,
    ),
    check=check,
)
