"""scig-conversion: a subcutaneous order for a patient on IVIG (current, or ordered in the last
90 days): the weekly dose from the product's conversion factor, and per-site limits (§8c, §8d).

Weekly g = previous IV dose (g) × factor ÷ weeks between IV doses; HyQvia keeps the IV dose and
interval. A previous dose that cannot be computed is said so, with why; no dose is guessed.
"""

from __future__ import annotations

from datetime import date

from hooks import suggested_orders
from hooks.dosing import Dose, read_dose
from hooks.orders import IgHistory
from hooks.record import plain_number
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput

TOPIC = "scig-conversion"
CURRENT = {"active", "on-hold"}
DEFAULT_INTERVAL_WEEKS = 4.0  # when the IV order states no interval; said on the card


def recent_ivig(inp: RuleInput) -> IgHistory | None:
    window = inp.thresholds.recent_ivig_days
    recent = [
        h
        for h in inp.ig_history
        if h.order.route == "IV"
        and (
            h.status in CURRENT
            or (h.authored is not None and 0 <= (inp.record.today - h.authored).days <= window)
        )
    ]
    return max(recent, key=lambda h: h.authored or date.min) if recent else None


def _site_lines(inp: RuleInput, weight_kg: float | None) -> list[str]:
    product = inp.order.product
    scig = product.scig if product else None
    if scig is None:
        return []
    lines = []
    for limit in scig.site_limits:
        if not limit.applies(inp.record.age, weight_kg):
            continue
        parts = [
            f"{plain_number(limit.volume_ml_per_site)} mL per site"
            if limit.volume_ml_per_site
            else "",
            f"{plain_number(limit.rate_ml_per_h_per_site)} mL/h per site"
            if limit.rate_ml_per_h_per_site
            else "",
            f"up to {limit.max_sites} sites" if limit.max_sites else "",
        ]
        text = ", ".join(p for p in parts if p) or "no figures in the reference"
        flag = " (UNVERIFIED)" if limit.unverified else ""
        lines.append(
            f"Site limits, {limit.group}: {text}{flag}{'; ' + limit.note if limit.note else ''}"
        )
    return lines


def check(inp: RuleInput) -> Finding | None:
    if inp.order.route != "SC":
        return None
    previous = recent_ivig(inp)
    if previous is None:
        return None
    weight = inp.record.latest_within("body-weight", inp.thresholds.window_weight_days)
    lines = [
        f"Previous IVIG: {previous.order.reference} {previous.order.product_name}, "
        f"{previous.status}, authored {previous.authored}"
    ]
    product = inp.order.product
    scig = product.scig if product else None
    dose = read_dose(previous.order.resource, weight)
    problem = None
    if scig is None or (scig.factor is None and not scig.same_dose_and_interval):
        problem = f"no conversion factor is known for {inp.order.product_name}"
    elif not isinstance(dose, Dose):
        problem = f"the previous IV dose cannot be read ({dose.reason})"
    elif dose.admin_g is None:
        problem = "the previous IV dose is per kg and there is no recent weight"
    if problem or not isinstance(dose, Dose) or scig is None or dose.admin_g is None:
        return Finding(
            topic=TOPIC,
            indicator="info",
            summary=(
                f"Switching to {inp.order.product_name} from IVIG: the weekly dose cannot "
                f"be computed"
            ),
            evidence=(
                *lines,
                f"Not computed: {problem}",
                *_site_lines(inp, weight.value if weight else None),
            ),
            recommendation=(
                "Compute the SCIG dose from the previous IVIG dose, interval and the "
                "product's conversion factor."
            ),
        )
    lines += list(dose.steps)
    weeks = dose.interval_days / 7 if dose.interval_days else DEFAULT_INTERVAL_WEEKS
    if not dose.interval_days:
        lines.append(
            f"The IV order states no interval: {plain_number(DEFAULT_INTERVAL_WEEKS)} weeks assumed"
        )
    if scig.same_dose_and_interval:
        grams, every = round(dose.admin_g, 1), weeks
        lines.append(
            f"{inp.order.product_name}: the IGIV dose and interval unchanged: "
            f"{plain_number(grams)} g every {plain_number(weeks)} weeks"
        )
    else:
        factor = scig.factor or 1.0
        grams, every = round(dose.admin_g * factor / weeks, 1), 1.0
        flag = " (UNVERIFIED factor)" if scig.factor_unverified else ""
        lines.append(
            f"Weekly dose = {plain_number(dose.admin_g)} g × {plain_number(factor)}{flag} ÷ "
            f"{plain_number(weeks)} weeks = {plain_number(grams)} g"
        )
    lines += _site_lines(inp, weight.value if weight else None)
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=(
            f"Switching to {inp.order.product_name} from IVIG: {plain_number(grams)} g "
            f"every {'week' if every == 1 else plain_number(every) + ' weeks'}"
        ),
        evidence=tuple(lines),
        recommendation=(
            "Start the subcutaneous product one week after the last IVIG dose (Hizentra label) and "
            "check the IgG trough after the switch."
        ),
        suggestions=(
            ProposedSuggestion(
                f"Set the dose to {plain_number(grams)} g every "
                f"{'week' if every == 1 else plain_number(every) + ' weeks'}",
                (
                    suggested_orders.with_dose(
                        inp.order, grams, "g", "converted from IVIG", weekly_every=every
                    ),
                ),
            ),
        ),
        source=(scig.source_label or product.source_label, scig.source_url) if product else None,
    )
