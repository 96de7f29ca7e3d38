"""Implausible values (card contract §8): doses no standard regimen gives, weights used in no
per-kg figure, and no revised dose when the indication is a guess. The arithmetic is written out
by hand in each test; the figures asserted are the card's."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from builders import CREATININE, HEIGHT, WEIGHT, condition, ig_order, observation, patient
from contexts import KB, SETTINGS, THRESHOLDS, context_of

from hooks.body_weight import dosing_weight
from hooks.composer import compose
from hooks.context import ClinicalContext
from hooks.courses import courses_of
from hooks.engine import evaluate
from hooks.findings import DoseChange, Finding, ReviseOrder
from hooks.rules.base import OrderInput
from hooks.text import CLOSE, OPEN

PRIVIGEN = "Privigen"
CHILD = "kd-child"  # 4 years, 20 kg, Kawasaki disease
ADULT = "adult"  # 45 years, 70 kg


def child(*extra: dict[str, Any], kg: float = 20) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return patient(CHILD, "2022-03-01"), [
        observation(CHILD, WEIGHT, kg, "kg", 1),
        observation(CHILD, CREATININE, 0.3, "mg/dL", 2),
        condition(CHILD, "kawasaki-disease", "Kawasaki disease", 1, onset="2026-06-10"),
        *extra,
    ]


def adult(*extra: dict[str, Any], kg: float = 70) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return patient(ADULT, "1981-03-01", "male"), [
        observation(ADULT, WEIGHT, kg, "kg", 1),
        observation(ADULT, HEIGHT, 178, "cm", 2),
        observation(ADULT, CREATININE, 0.9, "mg/dL", 3),
        *extra,
    ]


def kd(rid: str, dose: float, day: str | None = "2026-06-15", **kw: Any) -> dict[str, Any]:
    return ig_order(CHILD, rid, PRIVIGEN, dose=dose, day=day, reason="kawasaki-disease", **kw)


def run(
    who: tuple[dict[str, Any], list[dict[str, Any]]],
    orders: list[dict[str, Any]],
    hook: str = "order-sign",
) -> tuple[ClinicalContext, list[Finding]]:
    person, record = who
    ctx = context_of(record, orders, hook=hook, patient=person)
    return ctx, list(evaluate(ctx, KB, SETTINGS))


def ev(found: Finding) -> list[str]:
    """The evidence lines as read (without the marks around record text)."""
    return [line.replace(OPEN, "").replace(CLOSE, "") for line in found.evidence]


def of(found: list[Finding], topic: str) -> list[Finding]:
    return [f for f in found if f.topic == topic]


def revised(ctx: ClinicalContext, found: list[Finding]) -> list[Any]:
    plans = compose(found, ctx, KB, SETTINGS)
    return [r for plan in plans for r in plan.revisions]


# --- a single administration ------------------------------------------------------------------


def test_2_5_g_per_kg_once_is_a_warning_and_the_kawasaki_dose_is_offered() -> None:
    ctx, found = run(child(), [kd("kd-high", 2.5)])
    (implausible,) = of(found, "implausible-dose")
    assert implausible.indicator == "warning"
    assert implausible.summary == (
        "Dose 2.5 g/kg in one administration exceeds every standard regimen: confirm"
    )
    # 2.5 g/kg × 20 kg = 50 g; 2.5 > 2.2 (2 g/kg + 10%) but not > 4.4
    assert any("2.5 g/kg × 20 kg actual weight" in e and "= 50 g" in e for e in ev(implausible))
    assert any("2.5 g/kg per administration > 2.2 g/kg" in e for e in ev(implausible))
    (dose,) = of(found, "dose-check")  # 2.5 is outside Kawasaki 2 g/kg ± 10% (1.8-2.2)
    (change,) = [
        c
        for p in dose.proposals
        for a in p.actions
        if isinstance(a, ReviseOrder)
        for c in a.changes
    ]
    assert change == DoseChange(2.0, "g/kg", "dose for Kawasaki disease")
    (revision,) = revised(ctx, found)
    assert revision.offered
    again = evaluate_revision(revision.resource, child())
    assert not of(again, "implausible-dose") and not of(again, "dose-check")


def evaluate_revision(resource: dict[str, Any], who: Any) -> list[Finding]:
    return run(who, [resource])[1]


def test_2_g_per_kg_once_for_kawasaki_is_not_implausible() -> None:
    _, found = run(child(), [kd("kd-dose", 2)])
    assert of(found, "implausible-dose") == [] and of(found, "dose-check") == []


def test_5_g_per_kg_once_is_critical_and_the_revised_order_fixes_it() -> None:
    ctx, found = run(child(), [kd("kd-5", 5)])
    (implausible,) = of(found, "implausible-dose")
    assert implausible.indicator == "critical"  # 5 > 4.4 = 2 × 2.2
    assert "more than twice every standard regimen" in implausible.summary
    assert any("5 g/kg × 20 kg actual weight" in e and "= 100 g" in e for e in ev(implausible))
    assert any("5 g/kg per administration > 4.4 g/kg" in e for e in ev(implausible))
    (revision,) = revised(ctx, found)
    assert revision.offered  # dose-check's 2 g/kg: the re-check has no critical finding
    assert [c.value for c in revision.changes if isinstance(c, DoseChange)] == [2.0]


def test_an_absolute_gram_dose_is_checked_per_kg_of_the_weight() -> None:
    # 100 g ÷ 20 kg = 5 g/kg > 4.4: critical
    _, found = run(child(), [kd("kd-grams", 100, unit="g")])
    (implausible,) = of(found, "implausible-dose")
    assert implausible.indicator == "critical"
    assert any("100 g = 100 g ÷ 20 kg actual weight" in e for e in ev(implausible))


@pytest.mark.parametrize("dose", [0, -1])
def test_a_dose_of_zero_or_less_is_critical(dose: float) -> None:
    _, found = run(child(), [kd("kd-zero", dose)])
    (implausible,) = of(found, "implausible-dose")
    assert implausible.indicator == "critical"
    assert implausible.summary == "The dose is 0 or less: not a dose"
    assert ev(implausible) == [
        f"MedicationRequest/kd-zero (Privigen): {dose:g} g/kg per administration is not a dose",
    ]


# --- courses: several orders, a second Kawasaki dose ------------------------------------------


def gbs_days(per_day: float, n: int = 5) -> list[dict[str, Any]]:
    return [
        ig_order(
            ADULT,
            f"gbs-{i}",
            PRIVIGEN,
            dose=per_day,
            day=f"2026-06-{15 + i}",
            reason="guillain-barre-syndrome",
        )
        for i in range(n)
    ]


def gbs_adult() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return adult(condition(ADULT, "guillain-barre-syndrome", "Guillain-Barré syndrome", 1))


def test_five_daily_gbs_orders_of_2_g_per_kg_are_a_critical_10_g_per_kg_course() -> None:
    ctx, found = run(gbs_adult(), gbs_days(2))
    (implausible,) = of(found, "implausible-dose")
    assert implausible.indicator == "critical"
    assert implausible.summary == (
        "Dose 10 g/kg course total is more than twice every standard regimen: a likely dose error"
    )
    # 5 orders × 2 g/kg = 10 g/kg (× 70 kg = 700 g) > 6.6 g/kg = 2 × 3.3
    assert "Sum (course total): 10 g/kg = 700 g" in ev(implausible)
    assert "Course total: 10 g/kg > 6.6 g/kg" in ev(implausible)
    # each day's 2 g/kg is within 2.2 g/kg: no line per administration or per day
    assert not any("per administration >" in e or "in the day" in e for e in ev(implausible))
    assert revised(ctx, found) == []  # a suggestion never multiplies across the orders
    plans = compose(found, ctx, KB, SETTINGS)
    assert {p.group.code for p in plans if p.indicator == "critical"} == {"DOSE"}


def test_five_daily_gbs_orders_of_0_4_g_per_kg_are_plausible() -> None:
    _, found = run(gbs_adult(), gbs_days(0.4))  # 5 × 0.4 = 2 g/kg
    assert of(found, "implausible-dose") == []


def test_a_course_over_3_3_g_per_kg_is_a_warning() -> None:
    _, found = run(gbs_adult(), gbs_days(0.8))  # 5 × 0.8 = 4 g/kg: > 3.3, not > 6.6
    (implausible,) = of(found, "implausible-dose")
    assert implausible.indicator == "warning"
    assert "Course total: 4 g/kg > 3.3 g/kg" in ev(implausible)


def test_two_orders_on_one_day_add_up() -> None:
    orders = [
        ig_order(ADULT, f"same-{i}", PRIVIGEN, dose=1.5, day="2026-06-15", reason="cidp")
        for i in range(2)
    ]
    _, found = run(adult(condition(ADULT, "cidp", "CIDP", 1)), orders)
    (implausible,) = of(found, "implausible-dose")
    assert implausible.indicator == "warning"  # 1.5 + 1.5 = 3 g/kg in a day > 2.2; course 3 ≤ 3.3
    assert (
        "2026-06-15: 1.5 g/kg (MedicationRequest/same-0) + 1.5 g/kg (MedicationRequest/same-1) "
        "= 3 g/kg in the day > 2.2 g/kg"
    ) in ev(implausible)
    assert not any(e.startswith("Course total") for e in ev(implausible))


FIRST_KD = kd("kd-first", 2, day="2026-06-13T08:00:00Z", status="completed", authored="2026-06-13")


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_a_second_kawasaki_dose_40_hours_later_is_its_own_course(hook: str) -> None:
    # 2026-06-13 08:00 to 2026-06-15 00:00 is 16 + 24 = 40 h >= 36 h
    second = kd("kd-second", 2, day="2026-06-15T00:00:00Z")
    ctx, found = run(child(FIRST_KD), [second], hook)
    (course,) = courses_of(ctx, KB, THRESHOLDS)
    assert [m.reference for m in course.orders] == ["MedicationRequest/kd-second"]
    assert of(found, "implausible-dose") == [] and of(found, "dose-check") == []


def test_a_second_kawasaki_dose_24_hours_later_is_one_4_g_per_kg_course() -> None:
    second = kd("kd-second", 2, day="2026-06-14T08:00:00Z")  # 24 h < 36 h
    _, found = run(child(FIRST_KD), [second])
    (implausible,) = of(found, "implausible-dose")
    assert implausible.indicator == "warning"  # 2 + 2 = 4 g/kg > 3.3, not > 6.6
    assert "Course total: 4 g/kg > 3.3 g/kg" in ev(implausible)
    assert any("at least 36 h after the first" in e for e in ev(implausible))


def test_with_dates_only_two_days_apart_the_36_hours_cannot_be_shown() -> None:
    first = kd("kd-first", 2, day="2026-06-13", status="completed", authored="2026-06-13")
    # 2026-06-13 23:59 to 2026-06-15 00:00 may be as little as 24 h: one course, 4 g/kg
    _, found = run(child(first), [kd("kd-second", 2, day="2026-06-15")])
    assert [f.indicator for f in of(found, "implausible-dose")] == ["warning"]


def test_a_third_kawasaki_dose_joins_the_second() -> None:
    second = kd("kd-second", 2, day="2026-06-15T00:00:00Z", status="completed")
    third = kd("kd-third", 2, day="2026-06-16T18:00:00Z")  # 42 h after the second
    ctx, found = run(child(FIRST_KD, second), [third])
    (course,) = courses_of(ctx, KB, THRESHOLDS)
    assert sorted(m.reference for m in course.orders) == [
        "MedicationRequest/kd-second",
        "MedicationRequest/kd-third",
    ]
    assert [f.indicator for f in of(found, "implausible-dose")] == ["warning"]  # 2 + 2 = 4


def test_a_second_high_dose_that_is_not_kawasaki_is_one_course() -> None:
    first = ig_order(
        ADULT,
        "itp-first",
        PRIVIGEN,
        dose=2,
        day="2026-06-13T08:00:00Z",
        status="completed",
        authored="2026-06-13",
        reason="immune-thrombocytopenia",
    )
    second = ig_order(
        ADULT,
        "itp-second",
        PRIVIGEN,
        dose=2,
        day="2026-06-15T00:00:00Z",
        reason="immune-thrombocytopenia",
    )
    itp = condition(ADULT, "immune-thrombocytopenia", "Immune thrombocytopenia", 1)
    _, found = run(adult(itp, first), [second])
    (implausible,) = of(found, "implausible-dose")
    assert implausible.indicator == "warning"  # 40 h later, but ITP: 2 + 2 = 4 g/kg > 3.3
    assert "Course total: 4 g/kg > 3.3 g/kg" in ev(implausible)
    assert not any("Kawasaki" in e for e in ev(implausible))


# --- implausible weights ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kg", "used"), [(0.3, False), (0.31, True), (120, True), (349.9, True), (350, False)]
)
def test_a_weight_at_or_beyond_0_3_or_350_kg_is_used_in_no_per_kg_figure(
    kg: float, used: bool
) -> None:
    person, record = adult(kg=kg)
    order = ig_order(ADULT, "w", PRIVIGEN, dose=0.4, repeat={"period": 1, "periodUnit": "d"})
    ctx = context_of(record, [order], patient=person)
    (ig,) = ctx.ig_orders
    inp = OrderInput(ctx, ig, KB, THRESHOLDS)
    assert (inp.weight is not None) is used
    assert (dosing_weight(ctx, KB, THRESHOLDS) is not None) is used
    assert (inp.course.weight_kg is not None) is used


def test_a_400_kg_weight_asks_for_a_verified_weight_and_gives_no_per_kg_figures() -> None:
    # 28 g ÷ 400 kg would be 0.07 g/kg: a figure no check may use
    order = ig_order(ADULT, "w400", PRIVIGEN, dose=28, unit="g", reason="guillain-barre-syndrome")
    _, found = run(adult(kg=400), [order])
    (missing,) = of(found, "missing-data")
    assert missing.indicator == "warning"
    assert missing.summary == "Missing before immune globulin: recent verified weight"
    assert any(
        e.startswith("Implausible body weight:") and "400 kg" in e and "0.3 and 350 kg" in e
        for e in ev(missing)
    )
    assert missing.recommendation.startswith("Weigh the patient and record the verified weight.")
    assert [p.label for p in missing.proposals] == ["Measure body weight"]
    others = [f for f in found if f.topic != "missing-data"]
    text = " ".join(line for f in others for line in (f.summary, *ev(f), f.recommendation))
    assert "400" not in text and "0.07" not in text and "÷" not in text, text
    assert of(found, "implausible-dose") == [] and of(found, "dose-check") == []


def test_a_120_kg_weight_is_used() -> None:
    # 28 g ÷ 120 kg = 0.233 g/kg (one day of GBS 2 g/kg: dose-check's business, not missing-data)
    order = ig_order(ADULT, "w120", PRIVIGEN, dose=28, unit="g", reason="guillain-barre-syndrome")
    _, found = run(adult(kg=120), [order])
    assert of(found, "missing-data") == []


# --- no indication on the order, several on the record ----------------------------------------


def two_indications() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return adult(
        condition(ADULT, "guillain-barre-syndrome", "Guillain-Barré syndrome", 1),
        condition(ADULT, "myasthenia-gravis", "Myasthenia gravis", 2),
    )


def test_no_indication_and_two_that_fit_get_no_revised_dose() -> None:
    order = ig_order(ADULT, "no-reason", PRIVIGEN, dose=1.5)  # 1.5 g/kg once: fits neither 2 g/kg
    ctx, found = run(two_indications(), [order])
    (dose,) = of(found, "dose-check")
    assert dose.proposals == ()
    assert "No revised dose: the order names no indication and the patient has several" in (
        dose.recommendation
    )
    assert "Guillain-Barré syndrome" in dose.recommendation
    assert "Myasthenia gravis" in dose.recommendation
    # a first infusion: the only revision is the titration rate (infusion-rate), never a dose
    changes = [c for r in revised(ctx, found) for c in r.changes]
    assert changes and not [c for c in changes if isinstance(c, DoseChange)]


def test_with_the_indication_on_the_order_the_dose_is_revised() -> None:
    order = ig_order(ADULT, "gbs", PRIVIGEN, dose=1.5, reason="guillain-barre-syndrome")
    _, found = run(two_indications(), [order])
    (dose,) = of(found, "dose-check")
    changes = [
        c
        for p in dose.proposals
        for a in p.actions
        if isinstance(a, ReviseOrder)
        for c in a.changes
    ]
    assert changes == [DoseChange(2.0, "g/kg", "dose for Guillain-Barré syndrome")]  # 2 g/kg once


def test_in_obesity_the_dose_is_judged_per_kg_of_actual_weight() -> None:
    # 150 kg, 180 cm, male: BMI 150 / 1.8² = 46.3; IBW 50 + 2.3 × (180 / 2.54 - 60) = 75.0 kg;
    # adjusted 75.0 + 0.4 × (150 - 75.0) = 105.0 kg. 300 g once = 300 ÷ 150 = 2 g/kg of actual
    # weight (a standard single dose), though 300 ÷ 105 = 2.86 g/kg of adjusted weight
    person = patient(ADULT, "1981-03-01", "male")
    record = [
        observation(ADULT, WEIGHT, 150, "kg", 1),
        observation(ADULT, HEIGHT, 180, "cm", 2),
        observation(ADULT, CREATININE, 0.9, "mg/dL", 3),
        condition(ADULT, "guillain-barre-syndrome", "Guillain-Barré syndrome", 1),
    ]
    order = ig_order(ADULT, "obese", PRIVIGEN, dose=300, unit="g", reason="guillain-barre-syndrome")
    ctx, found = run((person, record), [order])
    assert round(dosing_weight(ctx, KB, THRESHOLDS).value, 1) == 105.0  # type: ignore[union-attr]
    assert of(found, "implausible-dose") == []
    # 450 g once = 450 ÷ 150 = 3 g/kg of actual weight > 2.2: a warning, written on actual weight
    _, found = run((person, record), [replace_dose(order, 450)])
    (implausible,) = of(found, "implausible-dose")
    assert any(
        "450 g = 450 g ÷ 150 kg actual weight" in e and "= 3 g/kg" in e for e in ev(implausible)
    )


def replace_dose(order: dict[str, Any], grams: float) -> dict[str, Any]:
    changed = copy.deepcopy(order)
    changed["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = grams
    return changed
