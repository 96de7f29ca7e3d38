"""Courses (card contract §7.4) on the pure engine: which orders are one course, and the dose
checked once on the course total."""

from __future__ import annotations

from dataclasses import replace

import pytest
from contexts import KB, THRESHOLDS, ig_order, medication_order
from ig_orders import GROUP_A, call, day, findings, gbs_days, ig

from hooks.courses import COURSE_GAP_DAYS, administration_days, course_of, courses_of
from hooks.findings import DoseChange, ReviseOrder
from hooks.rules.base import OrderInput


def references(course_orders: tuple[object, ...]) -> list[str]:
    return [m.reference for m in course_orders]  # type: ignore[attr-defined]


# --- five daily GBS orders: one course, one dose evaluation on the sum -------------------------


def test_five_daily_gbs_orders_are_one_course_of_2_g_per_kg() -> None:
    ctx = call(gbs_days(5))
    (course,) = courses_of(ctx, KB, THRESHOLDS)
    assert references(course.orders) == [f"MedicationRequest/gbs-day-{i}" for i in range(1, 6)]
    assert course.lead.reference == "MedicationRequest/gbs-day-1"
    assert course.days == tuple(day(i) for i in range(5))
    assert not course.single_order
    assert course.total_g_per_kg == 2.0 and course.total_g == 140.0  # 0.4 × 70 kg × 5


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_five_daily_orders_of_0_4_g_per_kg_get_no_dose_finding(hook: str) -> None:
    assert findings(call(gbs_days(5), hook=hook), "dose-check") == []


def test_a_low_course_is_checked_once_on_its_lead_with_text_not_a_suggestion() -> None:
    ctx = call(gbs_days(5, dose=0.3))  # 1.5 g/kg in all
    (found,) = findings(ctx, "dose-check")
    assert found.order == "MedicationRequest/gbs-day-1"
    assert "1.5 g/kg" in found.summary and "5 orders" in found.summary
    assert "Course so far 1.5 g/kg; usual course 2 g/kg" in found.recommendation
    assert found.proposals == ()  # never a change multiplied across the five orders


def test_a_high_course_of_several_orders_is_text_only() -> None:
    (found,) = findings(call(gbs_days(5, dose=1.0)), "dose-check")  # 5 g/kg
    assert "Course total 5 g/kg" in found.recommendation and found.proposals == ()


def test_order_select_one_day_selected_sees_the_course_of_the_unselected_drafts() -> None:
    ctx = call(gbs_days(5), hook="order-select", selections=["gbs-day-3"])
    (course,) = courses_of(ctx, KB, THRESHOLDS)
    assert course.lead.reference == "MedicationRequest/gbs-day-3"
    assert [m.source for m in course.orders] == ["focus", *["draft"] * 4]
    assert course.total_g_per_kg == 2.0
    assert findings(ctx, "dose-check") == []


def test_order_select_a_listed_daily_dose_alone_is_never_low() -> None:
    """The first day of a course being ordered one order at a time."""
    assert (
        findings(call([ig("day-1", dose=0.4, on=day(0))], hook="order-select"), "dose-check") == []
    )
    # within 10% of 0.4 g/kg/day: still one day of a course
    assert findings(call([ig("day-1", dose=0.37)], hook="order-select"), "dose-check") == []


def test_order_select_a_low_total_gets_text_not_a_suggestion() -> None:
    ctx = call([ig("one", dose=0.3, period=1, count=5)], hook="order-select")  # 1.5 g/kg
    (found,) = findings(ctx, "dose-check")
    assert found.proposals == ()
    assert "Course so far 1.5 g/kg; usual course 2 g/kg" in found.recommendation
    assert "order-sign" in found.recommendation


def test_order_sign_one_order_covering_the_regimen_can_be_raised() -> None:
    ctx = call([ig("one", dose=0.3, period=1, count=5)])  # 5 × 0.3 = 1.5 g/kg
    (found,) = findings(ctx, "dose-check")
    ((action,),) = (p.actions for p in found.proposals)
    assert isinstance(action, ReviseOrder)
    assert action.changes == (DoseChange(0.4, "g/kg", "dose for Guillain-Barré syndrome"),)


def test_order_sign_one_day_of_a_course_is_not_raised_to_the_whole_course() -> None:
    (found,) = findings(call([ig("one", dose=0.4, on=day(0))]), "dose-check")
    assert found.proposals == () and "one day's dose" in found.recommendation


@pytest.mark.parametrize(
    ("reason", "dose", "count"),
    [
        ("gbs", 0.1, 5),  # raised to 0.4 × 5
        ("gbs", 3.0, 1),  # lowered to 2 once
        ("mg", 0.2, 1),  # 2 g/kg once would exceed MG's highest daily dose, 1 g/kg
        ("mg", 0.1, 2),
        ("itp", 0.3, 1),
        ("gbs", 0.9, 5),  # 4.5 g/kg lowered
    ],
)
def test_a_revised_dose_never_exceeds_the_highest_daily_dose_or_the_range(
    reason: str, dose: float, count: int
) -> None:
    ctx = call([ig("one", dose=dose, reason=reason, period=1, count=count)])
    (found,) = findings(ctx, "dose-check")
    indication = next(r for r in KB.dose_ranges if r.display in found.summary)
    highest_daily = max(d for g in indication.regimens for d in g.daily_g_per_kg)
    highest = max(g.high_g_per_kg for g in indication.regimens)
    for proposal in found.proposals:
        for action in proposal.actions:
            assert isinstance(action, ReviseOrder)
            (change,) = action.changes
            assert isinstance(change, DoseChange) and change.unit == "g/kg"
            assert change.value <= highest_daily
            assert change.value * count <= highest


def test_a_gram_dose_is_revised_in_grams_within_the_range() -> None:
    ctx = call([ig("one", dose=20, unit="g", period=1, count=5)])  # 100 g = 1.43 g/kg
    (found,) = findings(ctx, "dose-check")
    ((action,),) = (p.actions for p in found.proposals)
    assert isinstance(action, ReviseOrder)
    assert action.changes[0] == DoseChange(28.0, "g", "dose for Guillain-Barré syndrome")


# --- grouping ------------------------------------------------------------------------------------


def test_orders_on_the_same_day_are_one_course_of_any_product() -> None:
    ctx = call(
        [
            ig("privigen", dose=1.0, on=day(0)),
            ig("gammagard", dose=1.0, on=day(0), product="Gammagard Liquid 10%"),
        ]
    )
    (course,) = courses_of(ctx, KB, THRESHOLDS)
    assert course.total_g_per_kg == 2.0 and len(course.orders) == 2
    assert findings(ctx, "dose-check") == []


def test_a_gap_of_two_days_is_the_same_course_three_days_a_new_one() -> None:
    assert COURSE_GAP_DAYS == 2
    joined = call([ig("a", dose=1.0, on=day(0)), ig("b", dose=1.0, on=day(2))])
    assert len(courses_of(joined, KB, THRESHOLDS)) == 1
    apart = call([ig("a", dose=1.0, on=day(0)), ig("b", dose=1.0, on=day(3))])
    assert [references(c.orders) for c in courses_of(apart, KB, THRESHOLDS)] == [
        ["MedicationRequest/a"],
        ["MedicationRequest/b"],
    ]


def test_the_window_runs_from_the_last_dose_of_a_multi_day_order() -> None:
    ctx = call([ig("a", start=day(0), period=1, count=3), ig("b", on=day(4), dose=0.8)])
    (course,) = courses_of(ctx, KB, THRESHOLDS)  # a: days 0-2; b: day 4, 2 days after
    assert course.total_g_per_kg == 2.0


def test_another_route_is_another_course() -> None:
    ctx = call([ig("iv", on=day(0)), ig("sc", on=day(0), route="SC", product="Hizentra 20%")])
    courses = courses_of(ctx, KB, THRESHOLDS)
    assert sorted(c.route for c in courses) == ["IV", "SC"]


def test_undated_drafts_of_one_call_are_one_course_dated_ones_apart() -> None:
    ctx = call([ig("u1"), ig("u2"), ig("dated", on=day(0))])
    courses = courses_of(ctx, KB, THRESHOLDS)
    assert sorted(references(c.orders) for c in courses) == [
        ["MedicationRequest/dated"],
        ["MedicationRequest/u1", "MedicationRequest/u2"],
    ]


def test_an_order_without_a_reason_takes_the_calls_reason() -> None:
    ctx = call([ig("a", on=day(0)), ig("b", on=day(1), reason=None)])
    (course,) = courses_of(ctx, KB, THRESHOLDS)
    assert course.indication == ("guillain-barre-syndrome",) and len(course.orders) == 2


def test_different_indications_are_different_courses() -> None:
    ctx = call([ig("gbs", on=day(0)), ig("itp", on=day(0), reason="itp", dose=1.0)])
    assert len(courses_of(ctx, KB, THRESHOLDS)) == 2


def test_an_order_on_record_joins_the_course_and_the_lead_is_in_focus() -> None:
    given = ig("yesterday", on=day(-1), status="completed", authored=day(-1), dose=1.0)
    ctx = call([ig("today", on=day(0), dose=1.0)], [given])
    (course,) = courses_of(ctx, KB, THRESHOLDS)
    assert references(course.orders) == ["MedicationRequest/today", "MedicationRequest/yesterday"]
    assert course.lead.reference == "MedicationRequest/today"
    assert course.total_g_per_kg == 2.0
    assert findings(ctx, "dose-check") == []


def test_a_stopped_order_on_record_is_not_part_of_a_course() -> None:
    stopped = ig("stopped", on=day(-1), status="stopped", authored=day(-1), dose=1.0)
    (course,) = courses_of(call([ig("today", on=day(0), dose=1.0)], [stopped]), KB, THRESHOLDS)
    assert course.single_order


def test_boxed_warning_rules_read_the_course_total_once() -> None:
    ctx = call(gbs_days(5), [GROUP_A])
    (found,) = findings(ctx, "hemolysis-risk")  # 2 g/kg in all; no order alone is 2 g/kg
    assert found.order == "MedicationRequest/gbs-day-1" and "2 g/kg course" in found.summary


def test_a_revised_order_being_rechecked_takes_its_drafts_place() -> None:
    ctx = call(gbs_days(5))
    first = ctx.ig_orders[0]
    raw = {**first.order.raw}
    raw["dosageInstruction"] = [
        {
            **raw["dosageInstruction"][0],
            "doseAndRate": [{"doseQuantity": {"value": 1.0, "unit": "g/kg"}}],
        }
    ]
    revised = ig_order(raw)
    assert revised is not None
    course = course_of(ctx, revised, KB, THRESHOLDS)
    assert course.orders[0].order is revised and course.total_g_per_kg == 2.6
    assert OrderInput(ctx, revised, KB, THRESHOLDS).course.total_g_per_kg == 2.6
    # the call's own courses are unchanged, and computed once
    assert courses_of(ctx, KB, THRESHOLDS) is courses_of(ctx, KB, THRESHOLDS)
    assert courses_of(ctx, KB, THRESHOLDS)[0].total_g_per_kg == 2.0
    assert courses_of(replace(ctx), KB, THRESHOLDS) is not courses_of(ctx, KB, THRESHOLDS)


# --- administration days -------------------------------------------------------------------------


def test_days_from_events_bounds_and_validity() -> None:
    days = administration_days(medication_order(ig("a", start=day(0), period=1, count=5)))
    assert days.listed == tuple(day(i) for i in range(5)) and days.basis.endswith("start")
    weekly = administration_days(
        medication_order(ig("w", start=day(0), period=1, period_unit="wk", count=3))
    )
    assert weekly.listed == (day(0), day(7), day(14)) and not weekly.open_ended
    ongoing = administration_days(
        medication_order(ig("m", start=day(0), period=4, period_unit="wk"))
    )
    assert ongoing.open_ended and ongoing.last == day(0)
    raw = ig("v", period=1, count=2)
    raw["dispenseRequest"] = {"validityPeriod": {"start": day(3).isoformat()}}
    assert administration_days(medication_order(raw)).listed == (day(3), day(4))
    assert administration_days(medication_order(ig("u"))).first is None  # undated
    # an order on record without dates starts on its authoredOn
    assert administration_days(medication_order(ig("r")), day(-9)).first == day(-9)


def test_a_malformed_date_disables_the_days_not_the_dose() -> None:
    raw = ig("bad", dose=0.4, period=1, count=5)
    raw["dosageInstruction"][0]["timing"]["event"] = ["not a date"]
    order = medication_order(raw)
    assert "timing" in order.unreadable and "dosageInstruction" not in order.unreadable
    assert administration_days(order).first is None
    assert findings(call([raw]), "dose-check") == []  # 2 g/kg still read


@pytest.mark.parametrize(
    "timing",
    [
        {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "count": 10**9}},
        {"repeat": {"frequency": 1, "period": -1, "periodUnit": "d", "count": 5}},
        {"repeat": {"frequency": 10**6, "period": 1e-300, "periodUnit": "h"}},
        {"repeat": {"period": 1, "periodUnit": "d", "boundsPeriod": {"start": "9999-12-30"}}},
        {
            "repeat": {
                "period": 1,
                "periodUnit": "wk",
                "count": 50,
                "boundsPeriod": {"start": "9999-01-01", "end": "1900-01-01"},
            }
        },
        {"event": "2026-06-15"},  # a lone dateTime where R4 wants a list
        {"event": [{"not": "a date"}]},
    ],
)
def test_hostile_timing_gives_days_or_none_never_an_error(timing: dict[str, object]) -> None:
    raw = ig("hostile")
    raw["dosageInstruction"][0]["timing"] = timing
    ctx = call([raw, *gbs_days(2)])
    courses = courses_of(ctx, KB, THRESHOLDS)
    for course in courses:
        assert all(len(m.days.listed) <= 3661 for m in course.orders)
        assert all(isinstance(step, str) for step in course.steps)
    assert len(findings(ctx, "dose-check")) <= len(courses)  # once per course, never an error
