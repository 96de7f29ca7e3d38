"""Patient-view monitoring on immune globulin therapy (contract §4, §8 "Patient-view, IgG").

The *first administration of the current therapy* is the earliest first administration day of the
current immune globulin orders (their timing, else ``authoredOn``), carried back through earlier
orders they continue (each last given at most ``first_infusion_days`` before the next began). An
IgG drawn on or before that day is a baseline: it is not a trough.

igg-trough-monitoring: current immune globulin and no trough (an IgG after the first
administration) within 90 days (14 days during the first 8 weeks of SCIG, counted from the
earliest subcutaneous order); the first trough is due that long after the first administration.
igg-trough-low: replacement therapy (a current order for PI or SID: its reason, else an active
condition) and the latest trough below ``igg_trough_min_mg_dl``. renal-monitoring: current IV
immune globulin, a renal predisposing factor, and no creatinine or eGFR within 30 days.
"""

from __future__ import annotations

from datetime import date

from hooks import evidence
from hooks.context.model import ClinicalContext, ObservationEntry
from hooks.context.read import days_since, within_days
from hooks.courses import last_administration, record_days
from hooks.evidence import plain_number
from hooks.findings import CreateOrder, Finding, Proposal
from hooks.knowledge_base import Thresholds
from hooks.rules import renal
from hooks.rules.base import PATIENT_VIEW, PatientInput, PatientRule, Reads
from hooks.rules.indications import indications_of
from hooks.text import record

IGG_TOPIC = "igg-trough-monitoring"
LOW_TROUGH_TOPIC = "igg-trough-low"
REPLACEMENT = ("primary-immunodeficiency", "secondary-hypogammaglobulinemia")
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


def therapy_start(ctx: ClinicalContext, limits: Thresholds) -> date | None:
    """The first administration of the current immune globulin therapy (None: not dated)."""
    firsts = [day for h in ctx.current_ig if (day := record_days(h).first) is not None]
    if not firsts:
        return None
    start = min(firsts)
    earlier = [h for h in ctx.ig_history if not h.current]
    moved = True
    while moved:  # each step moves the start back, so the loop ends
        moved = False
        for history in earlier:
            first, last = record_days(history).first, last_administration(history)
            if (
                first is not None
                and last is not None
                and first < start
                and 0 <= days_since(start, last) <= limits.first_infusion_days
            ):
                start, moved = first, True
    return start


def trough(ctx: ClinicalContext, start: date | None) -> ObservationEntry | None:
    """The latest IgG if it was drawn after the first administration (else it is a baseline);
    with an undated start, the latest IgG."""
    latest = ctx.latest("serum-igg")
    if latest is None or start is None:
        return latest
    return latest if latest.date is not None and latest.date > start else None


def _start_line(start: date | None) -> str:
    if start is None:
        return "First administration of the current therapy: not dated"
    return f"First administration of the current therapy: {start}"


def check_igg_trough(inp: PatientInput) -> Finding | None:
    ctx, t = inp.ctx, inp.thresholds
    if not ctx.current_ig:
        return None
    window = t.window_igg_days
    scig = _scig_start(inp)
    lines = _therapy_lines(inp)
    if within_days(ctx.today, scig, t.scig_start_days):
        window = t.window_igg_scig_start_days
        lines.append(f"First 8 weeks of SCIG (started {scig}): IgG due every {window} days")
    start = therapy_start(ctx, t)
    if start is not None and days_since(ctx.today, start) < window:
        return None  # the first trough is not due yet
    latest, on_therapy = ctx.latest("serum-igg"), trough(ctx, start)
    if on_therapy is not None and within_days(ctx.today, on_therapy.date, window):
        return None
    lines.append(_start_line(start))
    if latest is None:
        lines.append(f"No IgG result on file (window {window} days)")
    elif on_therapy is None:
        lines.append(
            f"No trough since the first administration; latest IgG: "
            f"{evidence.observation(latest)} (a baseline, drawn before it)"
        )
    else:
        lines.append(f"No IgG within {window} days; latest: {evidence.observation(latest)}")
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


def check_igg_low(inp: PatientInput) -> Finding | None:
    ctx, t = inp.ctx, inp.thresholds
    therapy = [
        (h, found)
        for h in ctx.current_ig
        if (found := indications_of(h.order.order, ctx, inp.kb.valuesets, REPLACEMENT))
    ]
    if not therapy:
        return None
    start = therapy_start(ctx, t)
    level = trough(ctx, start)
    minimum = t.igg_trough_min_mg_dl
    if level is None or level.value is None or level.value >= minimum:
        return None
    lines = [
        f"{record(h.order.reference)}: {h.order.product_name} ({h.order.route}), "
        f"{record(h.status)}, for {found[0].evidence}"
        for h, found in therapy
    ]
    lines.append(_start_line(start))
    lines.append(f"IgG trough: {evidence.observation(level)}, below {plain_number(minimum)} mg/dL")
    return Finding(
        topic=LOW_TROUGH_TOPIC,
        indicator="warning",
        summary=(
            f"IgG trough {plain_number(level.value)} mg/dL on replacement therapy: below the "
            f"labelled minimum of {plain_number(minimum)} mg/dL"
        ),
        evidence=tuple(lines),
        recommendation=(
            f"Below the labelled minimum trough ({plain_number(minimum)} mg/dL); troughs are "
            "individualised to infections. Review the dose and interval against the infection "
            "history with the treating immunologist, and recheck the trough just before the next "
            "dose."
        ),
        notes=(
            ()
            if start is not None
            else ("The therapy's start is not dated: this IgG may be a baseline result.",)
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
            "current immune globulin and no IgG after the first administration within 90 days "
            "(14 days in the first 8 weeks of SCIG, from the earliest subcutaneous order); the "
            "first trough is due that long after the first administration"
        ),
        indicator="`info`",
        suggests="serum IgG (LOINC 2465-3)",
        reads=Reads(
            prefetch=frozenset({"observations"}) | HISTORY_KEYS,
            observations=("serum-igg",),
            thresholds=(
                "window_igg_days",
                "window_igg_scig_start_days",
                "scig_start_days",
                "first_infusion_days",
            ),
        ),
        check=check_igg_trough,
    ),
    PatientRule(
        topic=LOW_TROUGH_TOPIC,
        hooks=PATIENT_VIEW,
        checks="the IgG trough on replacement therapy",
        fires_when=(
            "a current immune globulin order for PI or SID (its reason, else an active "
            "condition) and the latest IgG drawn after the therapy's first administration below "
            "500 mg/dL (earlier results are baseline)"
        ),
        indicator="`warning`",
        suggests="none; the card asks for a review of dose and interval against infections",
        reads=Reads(
            prefetch=frozenset({"conditions", "observations"}) | HISTORY_KEYS,
            valuesets=REPLACEMENT,
            observations=("serum-igg",),
            thresholds=("igg_trough_min_mg_dl", "first_infusion_days"),
        ),
        check=check_igg_low,
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
