"""The tier of a boxed-warning finding (contract §7.3): `warning` when a factor is high-severity,
when the order is a first infusion, or when a factor is new; otherwise `info`.

A routine maintenance order for a patient whose only factors are long-standing ones (hypertension,
diabetes, age) gets `info`: the pharmacist graded a warning on every monthly order as noise. A
factor is *new* when it began after the latest immune globulin order on record outside the
order's course (its onset, else recorded date; a drug's first order; a lab result's first abnormal
value in its latest run; the birthday on which an age limit was reached); an undated factor is not
new. ``new_factor`` is set
whenever a new factor is among the reasons for `warning`, so an EHR that remembers an override of
the earlier warning by its topic code does not hide this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from hooks.dosing import Dose
from hooks.evidence import plain_number
from hooks.findings import Indicator
from hooks.rules import ig_therapy
from hooks.rules.base import OrderInput

# The thresholds ``tier`` and ``high_dose`` read (the dose reads the recent weight).
TIER_THRESHOLDS = (
    *ig_therapy.THERAPY_THRESHOLDS,
    *ig_therapy.COURSE_THRESHOLDS,
    "high_dose_g_per_kg",
    "high_daily_dose_g_per_kg",
)


@dataclass(frozen=True)
class Factor:
    name: str  # short, for the summary
    evidence: str
    high: str | None = None  # why it is high-severity; None: an ordinary factor
    since: date | None = None  # when it began (None: undated, never new)


@dataclass(frozen=True)
class Tier:
    indicator: Indicator
    new_factor: bool
    factors: tuple[str, ...]  # one evidence line per factor, marked high-severity or new
    reasons: tuple[str, ...]  # first infusion or not, and why the tier is what it is

    @property
    def evidence(self) -> tuple[str, ...]:
        return (*self.factors, *self.reasons)


def birthday(born: date, years: int) -> date:
    """The day ``years`` after ``born`` (29 February gives 1 March in a common year)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


def high_dose(inp: OrderInput) -> Factor | None:
    """A course >= high_dose_g_per_kg (its total over the course's orders, contract §7.4), or a
    day's dose >= high_daily_dose_g_per_kg: high-severity together with any other factor (the
    caller adds it only when there is one)."""
    course, dose, limits = inp.course, inp.dose, inp.thresholds
    if course.at_least(limits.high_dose_g_per_kg):
        total = plain_number(course.known_g_per_kg)
        why = f"a course of ≥ {limits.high_dose_g_per_kg:g} g/kg with other risk factors"
        return Factor(
            f"{total} g/kg course",
            f"High-dose course: {total} g/kg in all ({'; '.join(course.steps)})",
            high=why,
        )
    day = dose.admin_g_per_kg if isinstance(dose, Dose) else None
    if day is not None and day >= limits.high_daily_dose_g_per_kg:
        why = f"≥ {limits.high_daily_dose_g_per_kg:g} g/kg in a day with other risk factors"
        return Factor(
            f"{plain_number(day)} g/kg in a day",
            f"High daily dose: {plain_number(day)} g/kg per administration",
            high=why,
        )
    return None


def tier(inp: OrderInput, factors: Sequence[Factor]) -> Tier:
    ctx, limits = inp.ctx, inp.thresholds
    last = ig_therapy.last_order_date(ctx, inp.course)
    first = ig_therapy.is_first_infusion(ctx, limits)
    high = [f for f in factors if f.high]
    new = [f for f in factors if last is not None and f.since is not None and f.since > last]
    lines = tuple(_marked(f, f in new, last) for f in factors)
    why = []
    if high:
        why.append("high-severity factor: " + "; ".join(f"{f.name} ({f.high})" for f in high))
    if first:
        why.append("first infusion")
    if new:
        why.append("new since the last immune globulin order: " + ", ".join(f.name for f in new))
    therapy = ig_therapy.therapy_lines(ctx, limits)
    if why:
        reasons = (*therapy, f"Warning because of: {'; '.join(why)}")
        return Tier("warning", bool(new), lines, reasons)
    since = f" ({last.isoformat()})" if last else ""
    reasons = (
        *therapy,
        "Info, not warning: no high-severity factor, not a first infusion, and no factor newer "
        f"than the last immune globulin order{since}",
    )
    return Tier("info", False, lines, reasons)


def _marked(factor: Factor, new: bool, last: date | None) -> str:
    marks = []
    if factor.high:
        marks.append(f"high-severity: {factor.high}")
    if new and factor.since and last:
        marks.append(f"new: {factor.since.isoformat()}, after the last order of {last.isoformat()}")
    return f"{factor.evidence} [{'; '.join(marks)}]" if marks else factor.evidence
