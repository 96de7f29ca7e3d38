"""indication-guidance: the seed guidance for the order's indication, each statement with its
guideline and year (``knowledge/indication-guidance.json``). Info; one card per order.

With plasma exchange in the session or in the record, the statements about sequencing come first.
"""

from __future__ import annotations

from hooks.rules.base import Finding, RuleInput
from hooks.rules.indications import indications_of
from hooks.rules.plasma_exchange import plasma_exchange_known

TOPIC = "indication-guidance"


def check(inp: RuleInput) -> Finding | None:
    guidance = {g.valueset: g for g in inp.kb.guidance}
    found = indications_of(inp.order.resource, inp.record, inp.kb.valuesets, set(guidance))
    if not found:
        return None
    plex_first = bool(plasma_exchange_known(inp))
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
