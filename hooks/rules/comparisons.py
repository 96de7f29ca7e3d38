"""The threshold comparisons of the order rules, declared once (card contract §8 "Comparators").

A value may be recorded with a comparator (``valueQuantity.comparator``): IgA "<7 mg/dL" is below
7; IgA "<10 mg/dL" may or may not be below 7. The rules compare through :meth:`Comparison.of`,
which answers True, False or None (left open by the comparator); a rule never guesses an open
comparison, and the data card names every one that is open (:func:`undecided`), so a check that
could not decide is not mistaken for a check that found nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from hooks import evidence
from hooks.context.model import ClinicalContext, Comparator, ObservationEntry, compare
from hooks.knowledge_base import Thresholds


@dataclass(frozen=True)
class Comparison:
    """The latest value of ``concept`` compared with a threshold, for ``check`` (a phrase)."""

    concept: str
    op: Comparator
    threshold: str  # a name in thresholds.json
    check: str
    applies_to_iv_only: bool = False

    def limit(self, limits: Thresholds) -> float:
        return float(getattr(limits, self.threshold))

    def of(self, entry: ObservationEntry | None, limits: Thresholds) -> bool | None:
        """True or False; None when there is no value, or its comparator leaves it open."""
        if entry is None:
            return None
        return compare(entry, self.op, self.limit(limits))

    def holds(self, entry: ObservationEntry | None, limits: Thresholds) -> bool:
        """It is known to hold (an open comparison does not: the data card names it)."""
        return self.of(entry, limits) is True

    def stated(self, limits: Thresholds, unit: str | None) -> str:
        return f"{self.op} {self.limit(limits):g} {unit or ''}".strip()


IGA_LOW = Comparison("serum-iga", "<", "iga_deficient_below_mg_dl", "IgA deficiency")
EGFR_LOW = Comparison(
    "egfr", "<", "egfr", "renal insufficiency (renal boxed warning)", applies_to_iv_only=True
)
EGFR_SEVERE = Comparison(
    "egfr", "<", "egfr_severe", "a severely reduced eGFR (renal tier)", applies_to_iv_only=True
)
CREATININE_HIGH = Comparison(
    "serum-creatinine",
    ">",
    "creatinine_mg_dl",
    "renal insufficiency (renal boxed warning)",
    applies_to_iv_only=True,
)
TRIGLYCERIDES_HIGH = Comparison(
    "triglycerides", ">=", "triglycerides_mg_dl", "hyperviscosity (thrombosis boxed warning)"
)
ORDER_COMPARISONS = (IGA_LOW, EGFR_LOW, EGFR_SEVERE, CREATININE_HIGH, TRIGLYCERIDES_HIGH)
CONCEPTS = tuple(dict.fromkeys(c.concept for c in ORDER_COMPARISONS))
THRESHOLDS = tuple(dict.fromkeys(c.threshold for c in ORDER_COMPARISONS))


def undecided(ctx: ClinicalContext, limits: Thresholds, route: str) -> list[str]:
    """A line for each latest value whose comparator leaves a rule's comparison open."""
    found = []
    for comparison in ORDER_COMPARISONS:
        if comparison.applies_to_iv_only and route != "IV":
            continue
        latest = ctx.latest(comparison.concept)
        if latest is None or latest.comparator is None:
            continue
        if comparison.of(latest, limits) is None:
            found.append(
                f"{evidence.observation(latest)}: cannot be compared with "
                f"{comparison.stated(limits, latest.unit)}, so {comparison.check} could not be "
                "decided from it; ask the laboratory for the value"
            )
    return found
