"""indication-guidance: the seed guidance for the order's indication, each statement with its
guideline and year (``knowledge/indication-guidance.json``). Info; one card per order.

With plasma exchange in the session or in the record, the statements about sequencing come first.
"""

from __future__ import annotations

from hooks.findings import Finding
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.indications import indications_of
from hooks.rules.plasma_exchange import plasma_exchange_known

TOPIC = "indication-guidance"


def check(inp: OrderInput) -> Finding | None:
    guidance = {g.valueset: g for g in inp.kb.guidance}
    found = indications_of(inp.order.order, inp.ctx, inp.kb.valuesets, guidance.keys())
    if not found:
        return None
    plex_first = bool(plasma_exchange_known(inp.ctx, inp.kb))
    lines: list[str] = [f.evidence for f in found]
    first_source = None
    for indication in dict.fromkeys(f.valueset for f in found):
        item = guidance[indication]
        statements = sorted(
            item.statements, key=lambda s: not (plex_first and s.plasma_exchange_first)
        )
        for statement in statements:
            year = (
                f" {statement.year}"
                if statement.year and str(statement.year) not in statement.source.label
                else ""
            )
            flag = " (UNVERIFIED)" if statement.unverified else ""
            lines.append(f"{item.display}: {statement.text} [{statement.source.label}{year}]{flag}")
            first_source = first_source or (statement.source.label, statement.source.url)
    names = ", ".join(guidance[i].display for i in dict.fromkeys(f.valueset for f in found))
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=f"Guidance for immune globulin in {names}",
        evidence=tuple(lines),
        recommendation="Review the guidance statements for this indication.",
        source=first_source,
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="guidance for the indication",
    fires_when=(
        "an indication with seed guidance (GBS, myasthenia gravis, autoimmune encephalitis, "
        "C. difficile, anti-MAG/IgM neuropathy, anti-GBM disease, primary immunodeficiency) is "
        "the order's reason or an active condition"
    ),
    indicator="`info`",
    suggests=(
        "none; each statement names its guideline and year, and whether its wording is "
        "UNVERIFIED; plasma-exchange sequencing first when plasma exchange is in the session or "
        "the record"
    ),
    reads=Reads(
        prefetch=frozenset({"conditions", "procedures"}),
        valuesets=("plasma-exchange",),
        procedure_codes=("plasma-exchange",),
        knowledge=("indication-guidance.json",),
    ),
    check=check,
)
