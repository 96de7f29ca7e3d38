"""hemolysis-risk: non-O blood group and a high-dose course (>= 2 g/kg) (labels' W&P, §3c).

The latest ABO result (883-9, 882-1) is read as text: A, B or AB is non-O. Unknown or O: silent.
Always `warning`: it fires only for a course >= 2 g/kg with a factor (non-O group), which is a
high-severity combination in the boxed-warning tier too (contract §7.3). The hemoglobin 36-96 h
after the course is suggested even with a baseline on file; the baseline only when no hemoglobin
is within ``window_hemoglobin_days`` (contract §7.2).
"""

from __future__ import annotations

import re

from hooks import evidence
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
    if abo is None or group in (None, "O"):
        return None
    why = "Hemolysis risk: non-O blood group and high-dose immune globulin"
    order = inp.order.reference
    window = inp.thresholds.window_hemoglobin_days
    baseline = inp.ctx.latest_within("hemoglobin", window)
    proposals = [
        Proposal(
            "Hemoglobin 36-96 h after the last infusion of the course",
            (
                CreateOrder(
                    "hemoglobin",
                    f"{why}: repeat 36-96 hours after the last infusion of the course",
                    order,
                ),
            ),
        )
    ]
    lines = [f"{evidence.observation(abo)} (group {group}: non-O)", *course.steps]
    if baseline is None:
        proposals.insert(
            0,
            Proposal(
                "Baseline hemoglobin before the infusion",
                (CreateOrder("hemoglobin", f"{why}: baseline before the infusion", order),),
            ),
        )
    else:
        lines.append(
            f"Baseline hemoglobin on file within {window} days, so none is suggested: "
            f"{evidence.observation(baseline)}"
        )
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=f"Hemolysis risk: blood group {group} and a {course.known_g_per_kg:g} g/kg course",
        evidence=tuple(lines),
        recommendation=(
            "Immune globulin carries anti-A/anti-B antibodies. Measure hemoglobin (and hematocrit) "
            "at baseline and 36-96 hours after the infusion, and watch for signs of hemolysis."
        ),
        proposals=tuple(proposals),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="hemolysis risk (non-O blood group and a high-dose course)",
    fires_when="latest ABO group A, B or AB and a course of ≥ 2 g/kg",
    indicator="`warning`",
    suggests=(
        "hemoglobin (LOINC 718-7) 36–96 h after the course; at baseline unless one is on file "
        "within 7 days"
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
