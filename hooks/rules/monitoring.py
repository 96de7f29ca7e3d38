"""Patient-view monitoring on immune globulin therapy (contract §4).

igg-trough-monitoring: current immune globulin and no IgG within 90 days (14 days during the first
8 weeks of SCIG, counted from the earliest subcutaneous order). renal-monitoring: current IV immune
globulin, a renal predisposing factor, and no creatinine or eGFR within 30 days.
"""

from __future__ import annotations

from datetime import date

from hooks import evidence, suggested_orders
from hooks.rules.base import Finding, ProposedSuggestion, ViewInput
from hooks.rules.renal import predisposing_factors

IGG_TOPIC = "igg-trough-monitoring"
RENAL_TOPIC = "renal-monitoring"
SCIG_START_DAYS = 56  # "the first 8 weeks of SCIG"


def _therapy_lines(inp: ViewInput, route: str | None = None) -> list[str]:
    return [
        f"{h.order.reference}: {h.order.product_name} ({h.order.route}), {h.status}"
        + (f", authored {h.authored}" if h.authored else "")
        for h in inp.current_ig
        if route is None or h.order.route == route
    ]


def _scig_start(inp: ViewInput) -> date | None:
    started = [h.authored for h in inp.ig_history if h.order.route == "SC" and h.authored]
    return min(started) if started else None


def check_igg_trough(inp: ViewInput) -> Finding | None:
    if not inp.current_ig:
        return None
    record, window = inp.record, inp.thresholds.window_igg_days
    start = _scig_start(inp)
    lines = _therapy_lines(inp)
    if start is not None and 0 <= (record.today - start).days <= SCIG_START_DAYS:
        window = inp.thresholds.window_igg_scig_start_days
        lines.append(f"First 8 weeks of SCIG (started {start}): IgG due every {window} days")
    if record.latest_within("serum-igg", window) is not None:
        return None
    latest = record.latest("serum-igg")
    lines.append(
        f"No IgG within {window} days; latest: {evidence.observation(latest)}"
        if latest
        else f"No IgG result on file (window {window} days)"
    )
    why = "IgG trough level on immune globulin therapy"
    return Finding(
        topic=IGG_TOPIC,
        indicator="info",
        summary=f"IgG trough level due: none within {window} days on immune globulin",
        evidence=tuple(lines),
        recommendation=(
            "Check an IgG trough (just before the next dose) and titrate to clinical response; "
            "labels aim for at least 500 mg/dL."
        ),
        suggestions=(
            ProposedSuggestion(
                "Order a serum IgG level",
                (suggested_orders.create_for_patient(inp.kb, "igg-level", record, why),),
            ),
        ),
    )


def check_renal(inp: ViewInput) -> Finding | None:
    iv = _therapy_lines(inp, route="IV")
    if not iv:
        return None
    record, window = inp.record, inp.thresholds.window_renal_days
    if any(record.latest_within(c, window) for c in ("serum-creatinine", "egfr")):
        return None
    factors = predisposing_factors(record, inp.kb, inp.thresholds)
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
            *(line for _, line in factors),
            f"No creatinine or eGFR within {window} days",
        ),
        recommendation="Check BUN and serum creatinine; monitor renal function and urine output.",
        suggestions=(
            ProposedSuggestion(
                "Order BUN and serum creatinine",
                (
                    suggested_orders.create_for_patient(inp.kb, "bun", record, why),
                    suggested_orders.create_for_patient(inp.kb, "serum-creatinine", record, why),
                ),
            ),
        ),
    )
