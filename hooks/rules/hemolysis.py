"""hemolysis-risk: non-O blood group and a high-dose course (>= 2 g/kg) (labels' W&P, §3c).

The latest ABO result (883-9, 882-1) is read as text: A, B or AB is non-O. Unknown or O: silent.
"""

from __future__ import annotations

import re

from hooks import evidence, suggested_orders
from hooks.dosing import Dose, read_dose
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput

TOPIC = "hemolysis-risk"
_GROUP = re.compile(r"(?<![A-Za-z])(AB|A|B|O)(?![A-Za-z])")


def blood_group(text: str) -> str | None:
    found = _GROUP.search(text.replace("Rh", " ").replace("RhD", " "))
    return found.group(1) if found else None


def check(inp: RuleInput) -> Finding | None:
    dose = read_dose(
        inp.order.resource,
        inp.record.latest_within("body-weight", inp.thresholds.window_weight_days),
    )
    if not isinstance(dose, Dose) or not dose.high_dose:
        return None
    abo = inp.record.latest("abo-blood-group")
    texts = [abo.original, *(c.display or c.code for c in abo.value_codes)] if abo else []
    group = next((g for text in texts if text and (g := blood_group(text))), None)
    if abo is None or group in (None, "O"):
        return None
    why = "Hemolysis risk: non-O blood group and high-dose immune globulin"
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=f"Hemolysis risk: blood group {group} and a {dose.course_g_per_kg:g} g/kg course",
        evidence=(f"{evidence.observation(abo)} (group {group}: non-O)", *dose.steps),
        recommendation=(
            "Immune globulin carries anti-A/anti-B antibodies. Measure hemoglobin (and hematocrit) "
            "at baseline and 36-96 hours after the infusion, and watch for signs of hemolysis."
        ),
        suggestions=(
            ProposedSuggestion(
                "Hemoglobin at baseline and 36-96 h after the infusion",
                (
                    suggested_orders.create(
                        inp.kb, "hemoglobin", inp.record, inp.order, f"{why}: baseline"
                    ),
                    suggested_orders.create(
                        inp.kb,
                        "hemoglobin",
                        inp.record,
                        inp.order,
                        f"{why}: repeat 36-96 hours after the infusion",
                    ),
                ),
            ),
        ),
    )
