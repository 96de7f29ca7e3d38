"""Duplicate therapy and the IV → SC switch (card contract §7.5, §7.8) on the pure engine."""

from __future__ import annotations

import pytest
from ig_orders import call, day, findings, gbs_days, ig

from hooks.findings import DoseChange, RemoveOrder, ReviseOrder

HIZENTRA = "Hizentra 20% subcutaneous immune globulin"
GAMMAGARD = "Gammagard Liquid 10%"


def maintenance(rid: str, **given: object) -> dict[str, object]:
    """A current PID maintenance order on record: 0.4 g/kg every 4 weeks, no end."""
    fields: dict[str, object] = {
        "reason": "pid",
        "period": 4,
        "period_unit": "wk",
        "status": "active",
        "authored": day(-105),
    }
    fields.update(given)
    return ig(rid, **fields)  # type: ignore[arg-type]  # the keywords of ig()


# --- drafts of the call --------------------------------------------------------------------------


def test_two_drafts_that_are_not_one_course_are_a_duplicate_at_order_sign() -> None:
    ctx = call([ig("first", on=day(0), dose=2.0), ig("second", on=day(10), dose=2.0)])
    (found,) = findings(ctx, "duplicate-therapy")  # named once, on the later one
    assert found.order == "MedicationRequest/second" and found.indicator == "warning"
    assert "MedicationRequest/first" in " ".join(found.evidence)
    ((action,),) = (p.actions for p in found.proposals)
    assert action == RemoveOrder("MedicationRequest/first", action.description)


def test_a_course_written_as_daily_drafts_is_not_a_duplicate() -> None:
    assert findings(call(gbs_days(5)), "duplicate-therapy") == []


def test_order_select_an_unselected_draft_on_the_same_days_by_another_route() -> None:
    orders = [ig("iv", on=day(0)), ig("sc", on=day(0), route="SC", product=HIZENTRA)]
    (found,) = findings(call(orders, hook="order-select", selections=["iv"]), "duplicate-therapy")
    assert found.order == "MedicationRequest/iv" and "MedicationRequest/sc" in found.evidence[0]


def test_order_select_an_unselected_draft_on_other_days_is_not_named() -> None:
    orders = [ig("now", on=day(0), dose=2.0), ig("later", on=day(10), dose=2.0)]
    assert (
        findings(call(orders, hook="order-select", selections=["now"]), "duplicate-therapy") == []
    )


# --- orders on record ----------------------------------------------------------------------------


def test_a_current_order_of_another_product_still_running_is_a_duplicate() -> None:
    current = maintenance("gammagard-current", product=GAMMAGARD)
    new = ig("privigen-new", reason="pid", period=4, period_unit="wk", on=day(0))
    (found,) = findings(call([new], [current]), "duplicate-therapy")
    assert "MedicationRequest/gammagard-current" in found.evidence[0]
    # Keep one: the new draft goes by default; the current order is the prescriber's to stop.
    (remove,) = found.proposals
    assert remove.recommended
    assert [a.order for a in remove.actions] == ["MedicationRequest/privigen-new"]


def test_a_current_order_with_administrations_after_the_new_first_day_is_a_duplicate() -> None:
    running = ig(
        "itp-running", reason="itp", dose=1.0, status="active", start=day(-1), period=1, count=3
    )
    (found,) = findings(call([ig("gbs-new", on=day(0))], [running]), "duplicate-therapy")
    assert "administrations from" in found.evidence[0]


def test_a_renewal_of_the_same_family_route_and_regimen_is_a_continuation() -> None:
    current = maintenance("privigen-current")
    renewal = ig("privigen-renewal", reason="pid", period=4, period_unit="wk", on=day(0))
    assert findings(call([renewal], [current]), "duplicate-therapy") == []
    undated = ig("privigen-undated", reason="pid", period=4, period_unit="wk")
    assert findings(call([undated], [current]), "duplicate-therapy") == []


def test_a_current_order_whose_last_administration_came_before_is_not_a_duplicate() -> None:
    done = maintenance("gammagard-done", product=GAMMAGARD, start=day(-120), count=3)
    new = ig("privigen-new", reason="pid", period=4, period_unit="wk", on=day(0))
    assert findings(call([new], [done]), "duplicate-therapy") == []


def test_another_regimen_of_the_same_product_is_not_a_continuation() -> None:
    current = maintenance("privigen-q4w")
    weekly = ig("privigen-q3w", reason="pid", period=3, period_unit="wk", on=day(0))
    assert len(findings(call([weekly], [current]), "duplicate-therapy")) == 1


def test_a_current_sc_order_and_a_new_iv_order_are_a_duplicate() -> None:
    current = maintenance("hizentra-current", product=HIZENTRA, route="SC", period=1)
    new = ig("privigen-new", reason="pid", period=4, period_unit="wk", on=day(0))
    (found,) = findings(call([new], [current]), "duplicate-therapy")
    assert "a current SC order" in found.evidence[0]


def test_completed_and_stopped_orders_are_not_duplicates() -> None:
    record = [
        maintenance("completed", product=GAMMAGARD, status="completed"),
        maintenance("stopped", product=GAMMAGARD, status="stopped"),
    ]
    new = ig("privigen-new", reason="pid", period=4, period_unit="wk", on=day(0))
    assert findings(call([new], record), "duplicate-therapy") == []


# --- the IV → SC switch --------------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_an_sc_order_with_a_current_iv_order_is_one_switch_card(hook: str) -> None:
    current = maintenance("privigen-iv")
    sc = ig("hizentra", product=HIZENTRA, route="SC", reason="pid", period=1, period_unit="wk")
    ctx = call([sc], [current], hook=hook)
    assert findings(ctx, "duplicate-therapy") == []  # the switch card is the product card
    (switch,) = findings(ctx, "scig-conversion")
    assert switch.indicator == "warning" and "stop the current IV order" in switch.summary
    removal, dose = switch.proposals
    (stop,) = removal.actions
    assert isinstance(stop, RemoveOrder) and stop.order == "MedicationRequest/privigen-iv"
    (revise,) = dose.actions
    assert isinstance(revise, ReviseOrder) and revise.order == "MedicationRequest/hizentra"
    # 0.4 g/kg × 70 kg = 28 g every 4 weeks × 1.37 ÷ 4 = 9.6 g weekly
    assert revise.changes == (DoseChange(9.6, "g", "converted from IVIG", every_weeks=1.0),)
    assert "about one week after the last IV dose" in switch.recommendation


def test_the_first_sc_dose_is_dated_from_the_last_iv_dose_when_the_order_gives_it() -> None:
    current = ig("privigen-iv", reason="pid", status="active", on=day(-6), authored=day(-30))
    sc = ig("hizentra", product=HIZENTRA, route="SC", reason="pid", period=1, period_unit="wk")
    (switch,) = findings(call([sc], [current]), "scig-conversion")
    assert f"on or about {day(1)} (last IV dose {day(-6)})" in switch.recommendation


def test_hyqvia_starts_as_its_label_says() -> None:
    sc = ig("hyqvia", product="HyQvia", route="SC", reason="pid", period=4, period_unit="wk")
    (switch,) = findings(call([sc], [maintenance("privigen-iv")]), "scig-conversion")
    assert "ramp-up" in switch.recommendation and "one week" not in switch.recommendation


def test_recent_ivig_that_is_no_longer_current_is_a_conversion_not_a_switch() -> None:
    completed = maintenance("privigen-iv", status="completed", authored=day(-30))
    sc = ig("hizentra", product=HIZENTRA, route="SC", reason="pid", period=1, period_unit="wk")
    (found,) = findings(call([sc], [completed]), "scig-conversion")
    assert found.indicator == "info"
    assert not any(isinstance(a, RemoveOrder) for p in found.proposals for a in p.actions)
