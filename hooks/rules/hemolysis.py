"""hemolysis-risk: a high-dose course (>= 2 g/kg) and a non-O, or unknown, blood group (labels'
W&P, §3c; card contract §8 "Hemolysis").

The latest ABO result (883-9, 882-1) is read as text: A, B or AB is non-O; O is silent.

- Non-O: `warning` (a course >= 2 g/kg with a factor is high-severity in the boxed-warning tier
  too, contract §7.3). The hemoglobin 36-96 h after the course is suggested even with a baseline
  on file; the baseline only when no hemoglobin is within ``window_hemoglobin_days`` (§7.2).
- No ABO group on file (or one that names no group): `info`, and the card asks for the blood group
  and a baseline hemoglobin (the baseline only when none is within the window), and says to repeat
  the hemoglobin 36-96 h after the course if the group is not O. Absence of a group is not
  absence of risk; it is a request for data, so it does not raise the card's tier by itself.
"""

from __future__ import annotations

import re

from hooks import evidence
from hooks.context.model import ObservationEntry
from hooks.evidence import plain_number
from hooks.findings import CreateOrder, Finding, Proposal
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.ig_therapy import COURSE_OBSERVATIONS, COURSE_THRESHOLDS, COURSE_VALUESETS

TOPIC = "hemolysis-risk"
_GROUP = re.compile(r"(?<![A-Za-z])(AB|A|B|O)(?![A-Za-z])")


def blood_group(text: str) -> str | None:
    found = _GROUP.search(text.replace("Rh", " ").replace("RhD", " "))
    return found.group(1) if found else None


def check(inp: OrderInput) -> Finding | None:
    # The course total, once per course (contract §7.4): five daily orders of 0.4 g/kg are one
    # 2 g/kg course; the finding is about the course's lead order.
    course = inp.course
    if not course.leads(inp.order) or not course.at_least(inp.thresholds.high_dose_g_per_kg):
        return None
    abo = inp.ctx.latest("abo-blood-group")
    texts = [abo.original, *(c.display or c.code for c in abo.value_codes)] if abo else []
    group = next((g for text in texts if text and (g := blood_group(text))), None)
    if group == "O":
        return None
    window = inp.thresholds.window_hemoglobin_days
    baseline = inp.ctx.latest_within("hemoglobin", window)
    if abo is None or group is None:
        return _unknown_group(inp, abo, baseline)
    why = "Hemolysis risk: non-O blood group and high-dose immune globulin"
    order = inp.order.reference
    proposals = [
        Proposal(
            "Hemoglobin 36-96 h after the last infusion of the course",
            (
                CreateOrder(
                    "hemoglobin-post-infusion",
                    f"{why}: repeat 36-96 hours after the last infusion of the course",
                    order,
                ),
            ),
        )
    ]
    lines = [f"{evidence.observation(abo)} (group {group}: non-O)", *course.steps]
    if baseline is None:
        proposals.insert(0, _baseline(why, order))
    else:
        lines.append(_baseline_on_file(baseline, window))
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=(
            f"Hemolysis risk: blood group {group} and a "
            f"{plain_number(course.known_g_per_kg)} g/kg course"
        ),
        evidence=tuple(lines),
        recommendation=(
            "Immune globulin carries anti-A/anti-B antibodies. Measure hemoglobin (and hematocrit) "
            "at baseline and 36-96 hours after the infusion, and watch for signs of hemolysis."
        ),
        proposals=tuple(proposals),
    )


def _unknown_group(
    inp: OrderInput,
    abo: ObservationEntry | None,
    baseline: ObservationEntry | None,
) -> Finding:
    """No blood group on file before a high-dose course: ask for it and a baseline hemoglobin."""
    course, order = inp.course, inp.order.reference
    window = inp.thresholds.window_hemoglobin_days
    why = "High-dose immune globulin and no ABO group on file (hemolysis risk if not group O)"
    seen = (
        f"{evidence.observation(abo)}: names no ABO group"
        if abo is not None
        else "No ABO group on file (LOINC 883-9 or 882-1)"
    )
    lines = [seen, *course.steps]
    proposals = [
        Proposal("ABO blood group before the infusion", (CreateOrder("abo-group", why, order),))
    ]
    if baseline is None:
        proposals.append(_baseline(why, order))
    else:
        lines.append(_baseline_on_file(baseline, window))
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=(
            f"Hemolysis risk unknown: no ABO group on file before a "
            f"{plain_number(course.known_g_per_kg)} g/kg course"
        ),
        evidence=tuple(lines),
        recommendation=(
            "Immune globulin carries anti-A/anti-B antibodies: patients of group A, B or AB "
            "receiving 2 g/kg or more are at risk of hemolysis. Check the ABO group and a "
            "baseline hemoglobin before the infusion; if the group is not O, repeat the "
            "hemoglobin 36-96 hours after the last infusion of the course and watch for signs of "
            "hemolysis."
        ),
        proposals=tuple(proposals),
    )


def _baseline(why: str, order: str) -> Proposal:
    return Proposal(
        "Baseline hemoglobin before the infusion",
        (CreateOrder("hemoglobin", f"{why}: baseline before the infusion", order),),
    )


def _baseline_on_file(baseline: ObservationEntry, window: int) -> str:
    return (
        f"Baseline hemoglobin on file within {window} days, so none is suggested: "
        f"{evidence.observation(baseline)}"
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="hemolysis risk (blood group and a high-dose course)",
    fires_when=(
        "a course of ≥ 2 g/kg and the latest ABO group A, B or AB; or a course of ≥ 2 g/kg and "
        "no ABO group on file"
    ),
    indicator="`warning` for a non-O group; `info` when no group is on file",
    suggests=(
        "non-O: hemoglobin (LOINC 718-7) 36–96 h after the course, and at baseline unless one is "
        "on file within 7 days; no group: ABO group (LOINC 883-9) and the baseline hemoglobin "
        "unless one is on file within 7 days"
    ),
    reads=Reads(
        # the course (contract §7.4): its orders on record, their reasons, the dosing weight
        prefetch=frozenset({"observations", "medicationRequests", "medicationStatements"}),
        valuesets=COURSE_VALUESETS,
        observations=("abo-blood-group", "hemoglobin", *COURSE_OBSERVATIONS),
        knowledge=("dose-ranges.json", "indication-guidance.json"),
        thresholds=("high_dose_g_per_kg", "window_hemoglobin_days", *COURSE_THRESHOLDS),
    ),
    check=check,
)
