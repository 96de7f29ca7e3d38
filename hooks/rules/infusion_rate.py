"""infusion-rate: the ordered IV rate against the product's labelled limit, and the labelled
initial rate of a titration infusion (card contract §8 "Rate").

The ordered rate is the highest ``doseAndRate`` rate, in mg/kg/min on the dosing weight
(``hooks.rates``). The limit is the labelled maximum for the order's indication (products.json
``rates``); for an indication the product is not labelled for, its lowest labelled maximum; with
any boxed-warning risk factor (thrombosis, or renal for IV), the label's at-risk cap where it
gives one (Panzyga, Octagam 10%: 3.3 mg/kg/min), else the card quotes "minimum infusion rate
practicable". A first infusion, a new product (a switch included) or more than
``rate_titration_gap_days`` since the last administration starts at the labelled initial rate.

Above the limit, or a titration infusion that starts above the initial rate: a warning, with the
rate change for the revised order (``RateCap``: the limit, and the initial rate as the low end of
a range). A rate the reference marks unverified is quoted with the plain phrase and never
written into an order; a rate that cannot be converted is said so. A titration infusion ordered
without a rate gets the range as information (with a boxed-warning risk factor the boxed-warning
card writes it instead, beside the minimum-practicable-rate advice).
"""

from __future__ import annotations

from dataclasses import dataclass

from hooks import evidence
from hooks.body_weight import dosing_weight
from hooks.findings import Finding, Instruction, Proposal, RateCap, ReviseOrder
from hooks.knowledge_base.schema import Product, Rate
from hooks.rates import Conversion, OrderedRate, mg_per_ml, ordered_rates
from hooks.rules import renal, thrombosis
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import initial_rate, labelled_rates, titration
from hooks.rules.ig_therapy import COURSE_OBSERVATIONS, COURSE_THRESHOLDS
from hooks.text import NOT_CHECKED, record

TOPIC = "infusion-rate"
EPSILON = 1e-6
MINIMUM_PRACTICABLE = "minimum infusion rate practicable"


@dataclass(frozen=True)
class Limit:
    mg_kg_min: float
    basis: str  # what the limit is, in words
    verified: bool


def label_limit(entries: list[Rate], indication: str, product: Product) -> Limit | None:
    lowest = min(entries, key=lambda r: r.max_mg_kg_min or 0.0, default=None)
    if lowest is None or lowest.max_mg_kg_min is None:
        return None
    if indication:
        basis = f"labelled maximum of {product.brand} for {lowest.indication}"
    else:
        basis = (
            f"lowest labelled maximum of {product.brand} ({lowest.indication}): no labelled rate "
            "for the order's indication, or it names none"
        )
    return Limit(lowest.max_mg_kg_min, basis, not lowest.unverified)


def boxed_factors(inp: OrderInput) -> list[str]:
    """The boxed-warning risk factors (thrombosis; renal, the rule being IV only), by name."""
    found = thrombosis.risk_factors(inp) + renal.risk_factors(inp)
    return list(dict.fromkeys(f.name for f in found))


def check(inp: OrderInput) -> Finding | None:
    product = inp.order.product
    if inp.order.route != "IV" or product is None or product.family:
        return None
    rates = ordered_rates(inp.order.order.raw)
    entries, indication = labelled_rates(inp, product)
    if not entries:
        return None
    if not rates:
        return _unrated_titration(inp, product, entries, indication)
    weight = dosing_weight(inp.ctx, inp.kb, inp.thresholds)
    conversion = Conversion(
        weight.value if weight else None, mg_per_ml(product.concentration_percent)
    )
    values = [conversion.mg_kg_min(r.value, r.unit) for r in rates]
    if any(v is None for v in values):
        return _not_converted(inp, product, [record(r.written) for r in rates], weight is None)
    known = [v for v in values if v is not None]
    highest, lowest = max(known), min(known)
    limit = label_limit(entries, indication, product)
    if limit is None:
        return None
    lines = [_ordered_line(rates, known, conversion)]
    if weight is not None:
        lines.append(f"Dosing weight: {evidence.observation(weight)}")
    factors = boxed_factors(inp)
    at_risk = product.rate_cap_at_risk_mg_kg_min
    notes: list[str] = []
    if factors and at_risk is not None and at_risk < limit.mg_kg_min:
        lines.append(f"Label maximum: {_quoted(limit, conversion)} ({limit.basis})")
        limit = Limit(
            at_risk,
            f"{product.brand} label cap for patients at risk of thrombosis or renal "
            f"dysfunction ({', '.join(factors)})",
            True,
        )
    elif factors and at_risk is None:
        notes.append(
            f"Boxed-warning risk factors ({', '.join(factors)}): give the "
            f"{MINIMUM_PRACTICABLE}; the {product.brand} label gives no at-risk rate cap."
        )
    lines.append(f"Limit: {_quoted(limit, conversion)} ({limit.basis})")
    lines.append(
        f"Limit in mL/h: {conversion.steps(limit.mg_kg_min, product.concentration_percent)}"
    )
    why = titration(inp, product)
    initial = initial_rate(entries) if why else None
    above = highest > limit.mg_kg_min + EPSILON
    starts_high = initial is not None and lowest > initial[0] + EPSILON
    if not above and not starts_high:
        return None
    steps = ""
    if why and initial is not None:
        start, start_verified, how = initial
        shown = conversion.shown(start) + ("" if start_verified else f" ({NOT_CHECKED})")
        lines.append(f"Titration infusion ({why}): labelled initial rate {shown}")
        steps = (
            f" Start at {shown}"
            + (f" ({how})" if how else "")
            + f"; if tolerated, increase stepwise to at most {_quoted(limit, conversion)}."
        )
    cap = _rate_change(limit, highest, initial if starts_high else None, conversion)
    ordered = conversion.shown(highest)
    if above:
        summary = (
            f"{product.brand} rate {ordered} is above the limit of "
            f"{conversion.shown(limit.mg_kg_min)}"
        )
        recommendation = f"Infuse at no more than {_quoted(limit, conversion)}." + steps
    else:
        summary = f"{product.brand}, titration infusion: start at the labelled initial rate"
        recommendation = f"The ordered rate {ordered} starts above the initial rate." + steps
    if not limit.verified:
        what = "The rate is" if cap is None else "The labelled maximum is"
        recommendation += (
            f" {what} not written into the order: its labelled value is not yet checked "
            "against the source."
        )
    proposals: tuple[Proposal, ...] = ()
    if cap is not None:
        proposals = (
            Proposal(
                "Revise the infusion rate",
                (ReviseOrder(inp.order.reference, (cap,), recommendation),),
            ),
        )
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=summary,
        evidence=tuple(lines),
        recommendation=recommendation,
        proposals=proposals,
        notes=tuple(notes),
    )


def _unrated_titration(
    inp: OrderInput, product: Product, entries: list[Rate], indication: str
) -> Finding | None:
    """A titration infusion ordered without a rate and without a boxed-warning risk factor: the
    labelled initial rate up to the limit, as information (contract §8 "Rate"). The order states
    no rate to be wrong, but the labels relate adverse reactions to the infusion rate, and a
    first infusion at a pump's or an order set's default can be far above the initial rate."""
    why = titration(inp, product)
    limit = label_limit(entries, indication, product)
    start = initial_rate(entries)
    if why is None or limit is None or start is None or boxed_factors(inp):
        return None
    first, first_verified, how = start
    weight = dosing_weight(inp.ctx, inp.kb, inp.thresholds)
    conversion = Conversion(
        weight.value if weight else None, mg_per_ml(product.concentration_percent)
    )
    shown = conversion.shown(first) + ("" if first_verified else f" ({NOT_CHECKED})")
    lines = [
        "Ordered rate: none stated",
        f"Titration infusion ({why})",
        f"Labelled initial rate: {shown}",
        f"Initial rate in mL/h: {conversion.steps(first, product.concentration_percent)}",
        f"Limit: {_quoted(limit, conversion)} ({limit.basis})",
        f"Limit in mL/h: {conversion.steps(limit.mg_kg_min, product.concentration_percent)}",
    ]
    if weight is not None:
        lines.append(f"Dosing weight: {evidence.observation(weight)}")
    steps = (
        f"start at {shown}"
        + (f" ({how})" if how else "")
        + f"; if tolerated, increase stepwise to at most {_quoted(limit, conversion)}"
    )
    recommendation = steps[0].upper() + steps[1:] + "."
    proposals: tuple[Proposal, ...] = ()
    if inp.order.route_assumed:  # IV was assumed for the checks: the route comes first
        recommendation += (
            " The rate is not written into the order while its route is not given (route card)."
        )
    elif weight is None:  # a range a pump cannot be set to; the data card asks for the weight
        recommendation += " The rate is not written into the order without a usable body weight."
    elif first_verified and limit.verified:
        cap = RateCap(limit.mg_kg_min, first, conversion.kg, conversion.mg_per_ml)
        # the order's own text for the nurse, in mL/h too (rateRange is mg/kg/min)
        written = Instruction(f"Titration infusion: {steps}")
        proposals = (
            Proposal(
                "Add the titration rate to the order",
                (ReviseOrder(inp.order.reference, (cap, written), recommendation),),
            ),
        )
    else:
        recommendation += (
            " The rates are not written into the order: a labelled value is not yet checked "
            "against the source."
        )
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=f"{product.brand}, {why.split(':')[0]}: no rate ordered; start at {shown}",
        evidence=tuple(lines),
        recommendation=recommendation,
        proposals=proposals,
    )


def _rate_change(
    limit: Limit,
    highest: float,
    initial: tuple[float, bool, str] | None,
    conversion: Conversion,
) -> RateCap | None:
    """What the revised order's rate becomes: the verified limit (else the ordered rate, never
    raised), starting at the verified initial rate of a titration infusion. None: nothing
    verified to write."""
    start = initial[0] if initial is not None and initial[1] else None
    if not limit.verified and start is None:
        return None
    top = limit.mg_kg_min if limit.verified else highest
    return RateCap(top, start, conversion.kg, conversion.mg_per_ml)


def _quoted(limit: Limit, conversion: Conversion) -> str:
    return conversion.shown(limit.mg_kg_min) + ("" if limit.verified else f" ({NOT_CHECKED})")


def _ordered_line(rates: list[OrderedRate], values: list[float], conversion: Conversion) -> str:
    """Each ordered rate as written, and in mg/kg/min and mL/h, the arithmetic written out."""
    parts = []
    for rate, value in zip(rates, values, strict=True):
        written = record(rate.written)
        if rate.unit.strip().lower() == "mg/kg/min":
            parts.append(f"{written} ({rate.where}) = {conversion.shown(value)}")
        else:
            steps = conversion.from_steps(rate.value, rate.unit)
            parts.append(f"{written} ({rate.where}): {steps}")
    return "Ordered rate: " + "; ".join(parts)


def _not_converted(
    inp: OrderInput, product: Product, written: list[str], no_weight: bool
) -> Finding:
    why = (
        "there is no recent body weight"
        if no_weight
        else "its unit is not one the service converts (mg/kg/min, mL/kg/min, mL/kg/h, mL/h, "
        "mL/min)"
    )
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=f"{product.brand} rate not checked against the label: {why}",
        evidence=(f"Ordered rate: {'; '.join(written)}",),
        recommendation=(
            "Check the rate against the label's maximum for the indication (and its initial "
            "rate on a first infusion) by hand."
        ),
    )


def _union(*reads: Reads) -> Reads:
    return Reads(
        prefetch=frozenset().union(*(r.prefetch for r in reads)),
        valuesets=tuple(dict.fromkeys(v for r in reads for v in r.valuesets)),
        observations=tuple(dict.fromkeys(v for r in reads for v in r.observations)),
        thresholds=tuple(dict.fromkeys(v for r in reads for v in r.thresholds)),
        knowledge=tuple(dict.fromkeys(v for r in reads for v in r.knowledge)),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="the ordered IV infusion rate against the label",
    fires_when=(
        "IV order with a rate (mg/kg/min, mL/kg/min or mL/h on the dosing weight) above the "
        "labelled maximum for its indication (else the product's lowest labelled maximum; the "
        "at-risk cap, e.g. 3.3 mg/kg/min for Panzyga and Octagam 10%, with a boxed-warning risk "
        "factor); or a first infusion, a new product or > 8 weeks since the last administration "
        "that starts above the labelled initial rate; a rate that cannot be converted (info); "
        "a titration infusion ordered without a rate and without a boxed-warning risk factor "
        "(info)"
    ),
    indicator="`warning`; `info` when the rate could not be converted or none was ordered",
    suggests=(
        "the rate revised to the limit (mg/kg/min), with a range from the labelled initial rate "
        "on a titration infusion (also added to a titration order without a rate); an "
        "unverified labelled rate is quoted, never written"
    ),
    reads=_union(
        thrombosis.RULE.reads,
        renal.RULE.reads,
        Reads(
            prefetch=frozenset({"conditions", "medicationRequests", "medicationStatements"}),
            observations=COURSE_OBSERVATIONS,
            thresholds=(*COURSE_THRESHOLDS, "rate_titration_gap_days"),
            knowledge=("dose-ranges.json",),
        ),
    ),
    check=check,
)
