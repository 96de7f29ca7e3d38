"""Plasma-exchange sequencing, the second GBS course and the hemolysis check without a blood group
(card contract §8), on the engine's findings and the composer's cards.

The patient of ``contexts`` (p1, 65 years old, female) weighs 70 kg; the evaluation date is
2026-06-15. Dates and day counts below are worked out by hand.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from builders import CREATININE, HEIGHT, WEIGHT, condition, ig_order, observation
from contexts import KB, SETTINGS, THRESHOLDS, context_of

from hooks.composer import compose
from hooks.context.model import ClinicalContext
from hooks.engine import Settings, evaluate
from hooks.findings import CreateOrder, Finding, RemoveOrder
from hooks.text import NOT_CHECKED

PID = "p1"
DAILY_5 = {"frequency": 1, "period": 1, "periodUnit": "d", "count": 5}
RECORD = [
    observation(PID, WEIGHT, 70, "kg", 1),
    observation(PID, HEIGHT, 170, "cm", 2),
    observation(PID, CREATININE, 0.9, "mg/dL", 3),
]
GROUP_O = {
    "resourceType": "Observation",
    "id": "abo",
    "status": "final",
    "subject": {"reference": f"Patient/{PID}"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "883-9"}]},
    "effectiveDateTime": "2020-01-01",
    "valueCodeableConcept": {"text": "O"},
}


def gbs_ig(order_id: str = "ig", *, start: str | None = None, **kw: Any) -> dict[str, Any]:
    """Privigen 0.4 g/kg daily x 5 for GBS; ``start``: its boundsPeriod start."""
    order = ig_order(
        PID, order_id, "Privigen", dose=0.4, repeat=dict(DAILY_5), reason="guillain-barre-syndrome"
    )
    order.update(kw)
    if start:
        order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": start}
    return order


def exchange(order_id: str = "plex", **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PID}"},
        "code": {"text": "Therapeutic plasma exchange"},
        "authoredOn": "2026-06-15",
        **fields,
    }


def findings(ctx: ClinicalContext, topic: str, settings: Settings = SETTINGS) -> list[Finding]:
    return [f for f in evaluate(ctx, KB, settings) if f.topic == topic]


def sequencing(
    resources: list[dict[str, Any]], orders: list[dict[str, Any]], **kw: Any
) -> list[Finding]:
    return findings(
        context_of([*RECORD, GROUP_O, *resources], orders, **kw), "plasma-exchange-sequencing"
    )


GBS = condition(PID, "guillain-barre-syndrome", "Guillain-Barré syndrome", 1)


# --- plasma exchange: the dates -------------------------------------------------------------


def test_occurrence_timing_gives_every_session_day() -> None:
    series = exchange(
        occurrenceTiming={
            "repeat": {
                "boundsPeriod": {"start": "2026-06-15"},
                "count": 5,
                "frequency": 1,
                "period": 2,
                "periodUnit": "d",
            }
        }
    )
    ctx = context_of(RECORD, [series])
    (plex,) = ctx.plasma_exchanges_in_session
    # every other day from the 15th: 15, 17, 19, 21, 23
    assert [d.day for d in plex.occurrence] == [15, 17, 19, 21, 23]
    period = exchange(occurrencePeriod={"start": "2026-06-20", "end": "2026-06-28"})
    (plex,) = context_of(RECORD, [period]).plasma_exchanges_in_session
    assert [d.day for d in plex.occurrence] == [20, 28]


def test_an_exchange_up_to_14_days_after_the_last_dose_fires_and_15_does_not() -> None:
    # undated GBS course authored 2026-06-15: doses 15..19 June; +14 days = 3 July
    (found,) = sequencing([GBS], [gbs_ig(), exchange(occurrenceDateTime="2026-07-03")])
    assert found.indicator == "warning" and found.proposals == ()
    assert any(
        "2026-07-03 − last immune globulin dose before it 2026-06-19 = 14 days" in e
        for e in found.evidence
    )
    assert "Choose one treatment, or give the immune globulin after the last exchange" in (
        found.recommendation
    )
    assert found.source and found.source[1] == "https://doi.org/10.1111/ene.16073"  # EAN/PNS GBS
    assert sequencing([GBS], [gbs_ig(), exchange(occurrenceDateTime="2026-07-04")]) == []


def test_the_window_is_a_site_setting() -> None:
    seven = Settings(SETTINGS.rules, replace(THRESHOLDS, plex_after_ivig_days=7))
    ctx = context_of([*RECORD, GROUP_O, GBS], [gbs_ig(), exchange(occurrenceDateTime="2026-06-27")])
    assert findings(ctx, "plasma-exchange-sequencing")  # 8 days after the 19th: within 14
    assert findings(ctx, "plasma-exchange-sequencing", seven) == []  # not within 7


def test_immune_globulin_after_the_last_exchange_is_silent_and_between_exchanges_is_not() -> None:
    series = exchange(
        occurrenceTiming={
            "repeat": {
                "boundsPeriod": {"start": "2026-06-15"},
                "count": 5,
                "period": 2,
                "periodUnit": "d",
            }
        }
    )  # exchanges 15..23 June
    assert sequencing([GBS], [gbs_ig(start="2026-06-24"), series]) == []
    (found,) = sequencing([GBS], [gbs_ig(start="2026-06-20"), series])  # 21 and 23 follow it
    assert any("falls within the immune globulin course" in e for e in found.evidence)


def test_an_exchange_order_after_immune_globulin_on_record_uses_its_last_scheduled_dose() -> None:
    # completed course from 1 June: doses 1..5 June; the exchange ordered now is 10 days later
    given = gbs_ig("given", start="2026-06-01", status="completed", authoredOn="2026-06-01")
    (found,) = sequencing(
        [GBS, given], [exchange()], hook="order-select", selections=["ServiceRequest/plex"]
    )
    assert any(
        "2026-06-15 − last immune globulin dose before it 2026-06-05 = 10 days" in e
        for e in found.evidence
    )
    assert found.proposals == ()  # GBS: never a removal


def test_a_current_maintenance_regimen_counts_its_doses_up_to_the_exchange() -> None:
    # every 4 weeks from 5 January: 2 Feb, 2 Mar, 30 Mar, 27 Apr, 25 May, 22 Jun
    monthly = {"frequency": 1, "period": 4, "periodUnit": "wk"}
    current = ig_order(
        PID, "pid", "Privigen", dose=0.5, repeat=monthly, status="active", authored="2026-01-05"
    )
    current["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-01-05"}
    focus = {"hook": "order-select", "selections": ["ServiceRequest/plex"]}
    assert sequencing([current], [exchange()], **focus) == []  # 25 May: 21 days before
    late = exchange(occurrenceDateTime="2026-06-30")  # 22 June: 8 days before
    (found,) = sequencing([current], [late], **focus)
    assert any(
        "2026-06-30 − last immune globulin dose before it 2026-06-22 = 8 days" in e
        for e in found.evidence
    )
    stopped = {**current, "status": "completed"}  # no doses projected past a finished order
    assert sequencing([stopped], [late], **focus) == []


def test_one_finding_when_both_orders_are_in_focus() -> None:
    found = sequencing([GBS], [gbs_ig(), exchange()])
    assert len(found) == 1 and found[0].order == "MedicationRequest/ig"


# --- plasma exchange: what it says ---------------------------------------------------------


def test_anti_gbm_removes_the_immune_globulin_never_the_exchange() -> None:
    anti_gbm = condition(PID, "anti-gbm-disease", "Goodpasture's disease", 2)
    ig = ig_order(PID, "ig", "Privigen", dose=0.4, repeat=dict(DAILY_5))  # no reason: anti-GBM
    ctx = context_of([*RECORD, GROUP_O, anti_gbm], [ig, exchange()])
    (found,) = findings(ctx, "plasma-exchange-sequencing")
    removed = [a.order for p in found.proposals for a in p.actions if isinstance(a, RemoveOrder)]
    assert removed == ["MedicationRequest/ig"]
    assert all(p.recommended for p in found.proposals)
    assert "Keep the plasma exchange" in found.recommendation
    assert found.source and found.source[0].startswith("KDIGO 2021")
    plans = compose(evaluate(ctx, KB, SETTINGS), ctx, KB, SETTINGS)
    actions = [a for plan in plans for p in plan.proposals for a in p.actions]
    assert not any(
        isinstance(a, RemoveOrder) and a.order.startswith("ServiceRequest") for a in actions
    )
    assert not any(plan.revisions for plan in plans), "no revision of an order to be removed"


def test_an_exchange_order_in_anti_gbm_removes_a_draft_immune_globulin_not_in_focus() -> None:
    anti_gbm = condition(PID, "anti-gbm-disease", "Goodpasture's disease", 2)
    ig = ig_order(PID, "ig", "Privigen", dose=0.4, repeat=dict(DAILY_5))
    given = ig_order(PID, "old", "Privigen", dose=0.4, status="completed", authored="2026-06-10")
    ctx = context_of(
        [*RECORD, GROUP_O, anti_gbm, given],
        [ig, exchange()],
        hook="order-select",
        selections=["ServiceRequest/plex"],
    )
    (found,) = findings(ctx, "plasma-exchange-sequencing")
    removed = [a.order for p in found.proposals for a in p.actions if isinstance(a, RemoveOrder)]
    assert removed == ["MedicationRequest/ig"], (
        "the draft, not the completed order, never the exchange"
    )


def test_transplant_rejection_or_desensitisation_is_silent() -> None:
    ig = ig_order(PID, "ig", "Privigen", dose=0.4, repeat=dict(DAILY_5))
    ig["reasonCode"] = [{"text": "HLA desensitization protocol before kidney transplant"}]
    assert sequencing([], [ig, exchange()]) == []
    plain = ig_order(PID, "ig", "Privigen", dose=0.4, repeat=dict(DAILY_5))
    reason = [{"text": "Antibody-mediated rejection of kidney transplant"}]
    assert sequencing([], [plain, exchange(reasonCode=reason)]) == []
    assert sequencing([], [plain, exchange()]), "the same orders without the reason fire"


def test_myasthenia_gravis_cites_its_guideline() -> None:
    mg = condition(PID, "myasthenia-gravis", "Myasthenia gravis", 2)
    ig = ig_order(PID, "ig", "Privigen", dose=0.4, repeat=dict(DAILY_5))
    (found,) = sequencing([mg], [ig, exchange()])
    assert found.source and found.source[1] == "https://doi.org/10.1212/WNL.0000000000002790"
    assert found.proposals == ()


# --- second GBS course ---------------------------------------------------------------------


def second_course(previous: dict[str, Any], **kw: Any) -> list[Finding]:
    ctx = context_of([*RECORD, GROUP_O, GBS, previous], [gbs_ig(**kw)])
    return findings(ctx, "gbs-second-course")


def previous_course(start: str, per_day: float = 0.4, **kw: Any) -> dict[str, Any]:
    order = gbs_ig("first", start=start, status="completed", authoredOn=start, **kw)
    order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = per_day
    return order


def test_a_second_course_three_weeks_after_a_full_one_is_a_warning() -> None:
    # 25 May - 29 May 2026 (0.4 g/kg x 5 = 2 g/kg); new course from 15 June: 17 days later
    (found,) = second_course(previous_course("2026-05-25"))
    assert found.indicator == "warning"
    assert "SID-GBS" in found.summary and len(found.summary) < 140
    assert any(
        "2026-06-15 − last administration of the previous course 2026-05-29 = 17 days" in e
        for e in found.evidence
    )
    assert any("Previous course total: 2 g/kg" in e for e in found.evidence)
    assert "treatment-related fluctuation" in found.recommendation
    assert NOT_CHECKED in found.recommendation


def test_the_window_is_3_days_to_8_weeks() -> None:
    assert second_course(previous_course("2026-06-08"))  # last 12 June: 3 days
    assert second_course(previous_course("2026-04-16"))  # last 20 April: 56 days
    assert second_course(previous_course("2026-04-15")) == []  # last 19 April: 57 days
    # last dose 13 June, 2 days before: within the gap of one course, not a second course
    assert second_course(previous_course("2026-06-09")) == []


def test_only_after_a_course_of_at_least_1_5_g_per_kg() -> None:
    assert second_course(previous_course("2026-05-25", 0.3))  # 0.3 x 5 = 1.5 g/kg
    assert second_course(previous_course("2026-05-25", 0.28)) == []  # 1.4 g/kg


def test_a_medication_statement_of_an_earlier_course_counts() -> None:
    statement = previous_course("2026-05-25")
    statement = {
        **{
            k: v
            for k, v in statement.items()
            if k not in ("intent", "authoredOn", "dosageInstruction")
        },
        "resourceType": "MedicationStatement",
        "status": "active",
        "effectiveDateTime": "2026-05-25",
        "dosage": statement["dosageInstruction"],
    }
    assert second_course(statement)


def test_not_for_another_indication() -> None:
    itp = ig_order(
        PID,
        "first",
        "Privigen",
        dose=1,
        reason="immune-thrombocytopenia",
        status="completed",
        authored="2026-05-25",
    )
    assert second_course(itp) == []


# --- hemolysis without a blood group -------------------------------------------------------


def hemolysis(resources: list[dict[str, Any]], order: dict[str, Any]) -> list[Finding]:
    return findings(context_of([*RECORD, *resources], [order]), "hemolysis-risk")


def orderables(found: Finding) -> list[str]:
    return [a.orderable for p in found.proposals for a in p.actions if isinstance(a, CreateOrder)]


def test_no_blood_group_before_a_2_g_per_kg_course_asks_for_it_and_a_baseline() -> None:
    course = ig_order(PID, "ig", "Privigen", dose=0.4, repeat=dict(DAILY_5))  # 2 g/kg
    (found,) = hemolysis([], course)
    assert found.indicator == "info"
    assert orderables(found) == ["abo-group", "hemoglobin"]
    assert any("No ABO group on file" in line for line in found.evidence)
    recent_hb = observation(PID, "718-7", 13, "g/dL", 4, when="2026-06-12")
    (found,) = hemolysis([recent_hb], course)
    assert orderables(found) == ["abo-group"], "a hemoglobin within 7 days is the baseline"
    pending = {**GROUP_O, "valueCodeableConcept": {"text": "pending"}}
    (found,) = hemolysis([pending], course)
    assert orderables(found) == ["abo-group", "hemoglobin"], "a result naming no group is none"
    assert hemolysis([GROUP_O], course) == []
    one_day = ig_order(PID, "ig", "Privigen", dose=1)  # 1 g/kg: below 2
    assert hemolysis([], one_day) == []


def test_a_non_o_group_offers_both_hemoglobins_on_the_card() -> None:
    group_a = {**GROUP_O, "valueCodeableConcept": {"text": "A"}}
    course = ig_order(PID, "ig", "Privigen", dose=0.4, repeat=dict(DAILY_5))
    ctx = context_of([*RECORD, group_a], [course])
    plans = compose(evaluate(ctx, KB, SETTINGS), ctx, KB, SETTINGS)
    offered = [
        a.orderable
        for plan in plans
        for p in plan.proposals
        for a in p.actions
        if isinstance(a, CreateOrder)
    ]
    assert "hemoglobin" in offered and "hemoglobin-post-infusion" in offered
