"""Patient-view monitoring on immune globulin therapy (contract §4).

igg-trough-monitoring: current immune globulin and no IgG within 90 days (14 days during the first
8 weeks of SCIG, counted from the earliest subcutaneous order). renal-monitoring: current IV immune
globulin, a renal predisposing factor, and no creatinine or eGFR within 30 days.
"""

from __future__ import annotations

from datetime import date

from hooks import evidence
from hooks.context.read import within_days
from hooks.findings import CreateOrder, Finding, Proposal
from hooks.rules import renal
from hooks.rules.base import PATIENT_VIEW, PatientInput, PatientRule, Reads
from hooks.text import record

IGG_TOPIC = "igg-trough-monitoring"
RENAL_TOPIC = "renal-monitoring"
HISTORY_KEYS = frozenset({"medicationRequests", "medicationStatements"})


def _therapy_lines(inp: PatientInput, route: str | None = None) -> list[str]:
    return [
        f"{record(h.order.reference)}: {h.order.product_name} ({h.order.route}), "
        f"{record(h.status)}" + (f", authored {h.authored}" if h.authored else "")
        for h in inp.ctx.current_ig
        if route is None or h.order.route == route
    ]


def _scig_start(inp: PatientInput) -> date | None:
    started = [h.authored for h in inp.ctx.ig_history if h.order.route == "SC" and h.authored]
    return min(started) if started else None


def check_igg_trough(inp: PatientInput) -> Finding | None:
    ctx, t = inp.ctx, inp.thresholds
    if not ctx.current_ig:
        return None
    window = t.window_igg_days
    start = _scig_start(inp)
    lines = _therapy_lines(inp)
    if within_days(ctx.today, start, t.scig_start_days):
        window = t.window_igg_scig_start_days
        lines.append(f"First 8 weeks of SCIG (started {start}): IgG due every {window} days")
    if ctx.latest_within("serum-igg", window) is not None:
        return None
    latest = ctx.latest("serum-igg")
    lines.append(
        f"No IgG within {window} days; latest: {evidence.observation(latest)}"
        if latest
        else f"No IgG result on file (window {window} days)"
    )
    return Finding(
        topic=IGG_TOPIC,
        indicator="info",
        summary=f"IgG trough level due: none within {window} days on immune globulin",
        evidence=tuple(lines),
        recommendation=(
            "Check an IgG trough (just before the next dose) and titrate to clinical response; "
            "labels aim for at least 500 mg/dL."
        ),
        proposals=(
            Proposal(
                "Order a serum IgG level",
                (CreateOrder("igg-level", "IgG trough level on immune globulin therapy"),),
            ),
        ),
    )


def check_renal(inp: PatientInput) -> Finding | None:
    iv = _therapy_lines(inp, route="IV")
    if not iv:
        return None
    ctx, window = inp.ctx, inp.thresholds.window_renal_days
    if any(ctx.latest_within(c, window) for c in renal.OBSERVATIONS):
        return None
    factors = renal.predisposing_factors(ctx, inp.kb, inp.thresholds)
    if not factors:
        return None
    why = "Renal monitoring on IV immune globulin (IGIV labeling)"
    return Finding(
        topic=RENAL_TOPIC,
        indicator="info",
        summary=(
            f"Renal monitoring due on IV immune globulin: no creatinine or eGFR in {window} days"
        ),
        evidence=(
            *iv,
            *(factor.evidence for factor in factors),
            f"No creatinine or eGFR within {window} days",
        ),
        recommendation="Check BUN and serum creatinine; monitor renal function and urine output.",
        proposals=(
            Proposal(
                "Order BUN and serum creatinine",
                (CreateOrder("bun", why), CreateOrder("serum-creatinine", why)),
            ),
        ),
    )


RULES = (
    PatientRule(
        topic=IGG_TOPIC,
        hooks=PATIENT_VIEW,
        checks="IgG trough monitoring on immune globulin",
        fires_when=(
            "current immune globulin and no IgG within 90 days (14 days in the first 8 weeks of "
            "SCIG, from the earliest subcutaneous order)"
        ),
        indicator="`info`",
        suggests="serum IgG (LOINC 2465-3)",
        reads=Reads(
            prefetch=frozenset({"observations"}) | HISTORY_KEYS,
            observations=("serum-igg",),
            thresholds=("window_igg_days", "window_igg_scig_start_days", "scig_start_days"),
        ),
        check=check_igg_trough,
    ),
    PatientRule(
        topic=RENAL_TOPIC,
        hooks=PATIENT_VIEW,
        checks="renal monitoring on IV immune globulin",
        fires_when=(
            "current IV immune globulin, a renal predisposing factor (as `renal-risk`), and no "
            "creatinine or eGFR within 30 days"
        ),
        indicator="`info`",
        suggests="BUN and creatinine",
        reads=Reads(
            prefetch=renal.READS.prefetch | HISTORY_KEYS,
            valuesets=renal.READS.valuesets,
            observations=renal.READS.observations,
            thresholds=(*renal.READS.thresholds, "window_renal_days"),
        ),
        check=check_renal,
    ),
)
