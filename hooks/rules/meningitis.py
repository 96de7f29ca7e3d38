"""aseptic-meningitis-risk: a history of migraine and a high-dose course (>= 2 g/kg). The labels
note migraine patients may be more susceptible, and the syndrome is more frequent at high doses."""

from __future__ import annotations

from hooks import evidence
from hooks.evidence import plain_number
from hooks.findings import Finding
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import (
    VOLUME_OBSERVATIONS,
    VOLUME_THRESHOLDS,
    VOLUME_VALUESETS,
    hydration,
    instruction,
)
from hooks.rules.ig_therapy import COURSE_OBSERVATIONS, COURSE_THRESHOLDS, COURSE_VALUESETS

TOPIC = "aseptic-meningitis-risk"


def check(inp: OrderInput) -> Finding | None:
    migraine = [
        evidence.condition(c, m)
        for c, m in inp.ctx.conditions_in(inp.kb.valueset("migraine"), active_only=False)
    ]
    if not migraine:
        return None
    course = inp.course  # the course total, once per course, on its lead (contract §7.4)
    if not course.leads(inp.order) or not course.at_least(inp.thresholds.high_dose_g_per_kg):
        return None
    fluids = hydration(inp, "Aseptic meningitis risk: hydrate before the infusion")
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=(
            f"Migraine history and a {plain_number(course.known_g_per_kg)} g/kg course: "
            "aseptic meningitis risk"
        ),
        evidence=(*migraine, *course.steps, *fluids.lines),
        recommendation=(
            "Use a slower infusion rate; counsel on headache, neck stiffness and fever. "
            f"{fluids.advice}"
        ),
        proposals=(
            instruction(
                inp,
                "Slower infusion rate",
                "Infuse slowly: aseptic meningitis is more frequent with high doses and fast "
                "infusion",
            ),
            *fluids.proposals,
        ),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="aseptic meningitis risk (migraine and a high-dose course)",
    fires_when="a history of migraine (any status) and a course of ≥ 2 g/kg",
    indicator="`info`",
    suggests=(
        "slower rate (order update); hydration only from a site protocol and never for a "
        "volume-sensitive patient"
    ),
    reads=Reads(
        # the course (contract §7.4): its orders on record, their reasons, the dosing weight
        prefetch=frozenset(
            {"patient", "conditions", "observations", "medicationRequests", "medicationStatements"}
        ),
        knowledge=("dose-ranges.json", "indication-guidance.json"),
        valuesets=("migraine", *COURSE_VALUESETS, *VOLUME_VALUESETS),
        observations=(*COURSE_OBSERVATIONS, *VOLUME_OBSERVATIONS),
        thresholds=("high_dose_g_per_kg", *COURSE_THRESHOLDS, *VOLUME_THRESHOLDS),
    ),
    check=check,
)
