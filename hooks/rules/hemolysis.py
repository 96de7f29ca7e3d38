"""hemolysis-risk: non-O blood group and a high-dose course (>= 2 g/kg) (labels' W&P, §3c).

The latest ABO result (883-9, 882-1) is read as text: A, B or AB is non-O. Unknown or O: silent.
"""

from __future__ import annotations

import re

from hooks import evidence
from hooks.dosing import Dose
from hooks.findings import CreateOrder, Finding, Proposal
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads

TOPIC = "hemolysis-risk"
_GROUP = re.compile(r"(?<![A-Za-z])(AB|A|B|O)(?![A-Za-z])")


def blood_group(text: str) -> str | None:
    found = _GROUP.search(text.replace("Rh", " ").replace("RhD", " "))
    return found.group(1) if found else None


def check(inp: OrderInput) -> Finding | None:
    dose = inp.dose
    if not isinstance(dose, Dose) or not dose.at_least(inp.thresholds.high_dose_g_per_kg):
        return None
    abo = inp.ctx.latest("abo-blood-group")
    texts = [abo.original, *(c.display or c.code for c in abo.value_codes)] if abo else []
    group = next((g for text in texts if text and (g := blood_group(text))), None)
    if abo is None or group in (None, "O"):
        return None
    why = "Hemolysis risk: non-O blood group and high-dose immune globulin"
    order = inp.order.reference
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=f"Hemolysis risk: blood group {group} and a {dose.course_g_per_kg:g} g/kg course",
        evidence=(f"{evidence.observation(abo)} (group {group}: non-O)", *dose.steps),
        recommendation=(
            "Immune globulin carries anti-A/anti-B antibodies. Measure hemoglobin (and hematocrit) "
            "at baseline and 36-96 hours after the infusion, and watch for signs of hemolysis."
        ),
        proposals=(
            Proposal(
                "Hemoglobin at baseline and 36-96 h after the infusion",
                (
                    CreateOrder("hemoglobin", f"{why}: baseline", order),
                    CreateOrder(
                        "hemoglobin", f"{why}: repeat 36-96 hours after the infusion", order
                    ),
                ),
            ),
        ),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="hemolysis risk (non-O blood group and a high-dose course)",
    fires_when="latest ABO group A, B or AB and a course of ≥ 2 g/kg",
    indicator="`warning`",
    suggests="hemoglobin (LOINC 718-7) at baseline and 36–96 h after",
    reads=Reads(
        prefetch=frozenset({"observations"}),
        observations=("abo-blood-group", "body-weight"),
        thresholds=("high_dose_g_per_kg", "window_weight_days"),
    ),
    check=check,
)
