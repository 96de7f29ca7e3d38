"""Findings several rules share: current smoking, BMI, and the mitigation suggestions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from hooks import evidence
from hooks.body_weight import computed_bmi, dosing_weight
from hooks.catalogue import Choice
from hooks.context.model import ClinicalContext, IgHistory, ObservationEntry
from hooks.dosing import Dose
from hooks.findings import (
    CreateOrder,
    Instruction,
    OrderChange,
    ProductChange,
    Proposal,
    RateCap,
    ReviseOrder,
)
from hooks.knowledge_base import KnowledgeBase, Thresholds
from hooks.knowledge_base.schema import Product, Rate
from hooks.rates import Conversion, mg_per_ml, number
from hooks.rules.base import OrderInput
from hooks.rules.ig_therapy import (
    COURSE_OBSERVATIONS,
    COURSE_THRESHOLDS,
    COURSE_VALUESETS,
    last_given,
    previous_orders,
)
from hooks.rules.indications import indications_of

OBESITY_READS = ("bmi", "body-weight", "body-height")


def obesity(inp: OrderInput) -> list[tuple[str, date | None]]:
    """BMI >= threshold: latest recent BMI, else computed from recent weight and latest height.
    Each with the date the BMI first reached the threshold in its latest run of values."""
    ctx, limit = inp.ctx, inp.thresholds.bmi_obese
    bmi = ctx.latest_within("bmi", inp.thresholds.window_weight_days)
    if bmi is not None and bmi.value is not None:
        if bmi.value < limit:
            return []
        since = run_start(ctx.values("bmi"), lambda v: v.value is not None and v.value >= limit)
        return [(f"{evidence.observation(bmi)} (BMI ≥ {limit:g})", since)]
    weight, height = inp.weight, ctx.latest("body-height")
    computed = computed_bmi(weight, height)
    if computed is not None and weight and height and computed >= limit:

        def obese(value: ObservationEntry) -> bool:
            found = computed_bmi(value, height)
            return found is not None and found >= limit

        return [
            (
                f"BMI {computed:.1f} computed from {evidence.observation(weight)} and "
                f"{evidence.observation(height)} (BMI ≥ {limit:g})",
                run_start(ctx.values("body-weight"), obese),
            )
        ]
    return []


def run_start(
    values: Sequence[ObservationEntry], meets: Callable[[ObservationEntry], bool]
) -> date | None:
    """The date of the earliest value of the latest unbroken run of values that meet a
    criterion (values latest first): when an abnormal result began. None when the latest value
    does not meet it, or the run's first value is undated."""
    start: date | None = None
    for value in values:
        if not meets(value):
            break
        start = value.date
    return start


def current_smoking(inp: OrderInput) -> list[tuple[str, date | None]]:
    """Current smoker: the latest smoking-status answer, or an active tobacco-use condition;
    each with the date it was first recorded (latest run of current-smoker answers; onset)."""
    found: list[tuple[str, date | None]] = []
    answers = inp.kb.valueset("current-smoker-answers")
    status = inp.ctx.latest("smoking-status")
    if status is not None:
        matched = answers.match(status.value_codes)
        if matched:
            since = run_start(
                inp.ctx.values("smoking-status"), lambda v: answers.match(v.value_codes) is not None
            )
            found.append((f"{evidence.observation(status)} ({matched.describe()})", since))
    found += [
        (evidence.condition(c, m), c.date)
        for c, m in inp.ctx.conditions_in(inp.kb.valueset("tobacco-use"), active_only=True)
    ]
    return found


# What ``hydration`` reads (the rules that call it declare these).
# The conditions that make a patient volume-sensitive (contract §8 "Volume")
VOLUME_CONDITIONS = ("heart-failure", "end-stage-renal-disease", "oliguria")
# What volume_sensitivity reads: those, and the pregnancy value sets the dosing weight reads
VOLUME_VALUESETS = (*VOLUME_CONDITIONS, *COURSE_VALUESETS)
VOLUME_THRESHOLDS = (
    "volume_sensitive_age_years",
    "volume_ml_per_kg_day",
    "volume_ml_per_day",
    "hydration_protocol_volume_ml",
    "hydration_protocol_rate_ml_h",
    *COURSE_THRESHOLDS,
)
VOLUME_OBSERVATIONS = COURSE_OBSERVATIONS
# What ``minimum_rate`` reads beyond the boxed-warning rules' own declarations.
RATE_THRESHOLDS = ("rate_titration_gap_days",)
LABEL_HYDRATION = "ensure adequate hydration before administration (boxed warning)"


@dataclass(frozen=True)
class Hydration:
    """The hydration part of a boxed-warning card (card contract §8 "Volume"): a hydration order
    only from the site's protocol and never for a volume-sensitive patient; the lines that say
    why, and the infusion volume of a volume-sensitive patient."""

    proposals: tuple[Proposal, ...]
    lines: tuple[str, ...]
    advice: str  # the recommendation's sentence on fluids


@dataclass(frozen=True)
class Volume:
    ml: float  # per administration
    per_day_ml: float
    kg: float | None
    steps: str


def infusion_volume(inp: OrderInput) -> Volume | None:
    """The order's volume: grams per administration ÷ the product's g/mL; per day with the
    day's administrations; per kg of the dosing weight. None without a dose or concentration."""
    dose, product = inp.dose, inp.order.product
    if not isinstance(dose, Dose) or dose.admin_g is None or product is None:
        return None
    percent = product.concentration_percent
    if not percent:
        return None
    ml = dose.admin_g * 100 / percent
    repeat = inp.order.order.dosages[0].repeat if inp.order.order.dosages else None
    per_day = 1.0
    if repeat and repeat.period_unit == "d" and repeat.period and repeat.period <= 1:
        per_day = max(1.0, (repeat.frequency or 1) / repeat.period)
    weight = dosing_weight(inp.ctx, inp.kb, inp.thresholds)
    kg = weight.value if weight and weight.value else None
    steps = f"{number(dose.admin_g, 2)} g ÷ {percent:g} g/100 mL = {number(ml, 0)} mL"
    if per_day != 1:
        steps += f"; × {per_day:g} a day = {number(ml * per_day, 0)} mL/day"
    if kg:
        steps += f"; ÷ {number(kg, 2)} kg = {number(ml * per_day / kg, 1)} mL/kg/day"
    return Volume(ml, ml * per_day, kg, steps)


def volume_sensitivity(inp: OrderInput, volume: Volume | None) -> list[str]:
    """Why the patient is volume-sensitive (nothing: not): active heart failure, ESRD or
    dialysis, oliguric AKI, age under ``volume_sensitive_age_years``, or an order volume above
    ``volume_ml_per_kg_day`` or ``volume_ml_per_day``."""
    ctx, kb, limits = inp.ctx, inp.kb, inp.thresholds
    found = [
        evidence.condition(c, m)
        for name in VOLUME_CONDITIONS
        for c, m in ctx.conditions_in(kb.valueset(name), active_only=True)
    ]
    if ctx.age is not None and ctx.age < limits.volume_sensitive_age_years:
        found.append(f"Age under {limits.volume_sensitive_age_years}: {evidence.age(ctx)}")
    if volume is not None:
        if volume.kg and volume.per_day_ml / volume.kg > limits.volume_ml_per_kg_day:
            found.append(
                f"Order volume {number(volume.per_day_ml / volume.kg, 1)} mL/kg/day "
                f"(> {limits.volume_ml_per_kg_day:g} mL/kg/day)"
            )
        if volume.per_day_ml > limits.volume_ml_per_day:
            found.append(
                f"Order volume {number(volume.per_day_ml, 0)} mL/day "
                f"(> {limits.volume_ml_per_day:g} mL/day)"
            )
    return found


def hydration(inp: OrderInput, why: str) -> Hydration:
    """No hydration order for a volume-sensitive patient (the card gives the volume instead);
    for others, one from the site's protocol (fluid: orderables.json pre-infusion-hydration;
    volume and rate: thresholds), else the label's words and no order."""
    volume = infusion_volume(inp)
    sensitive = volume_sensitivity(inp, volume)
    limits = inp.thresholds
    if sensitive:
        lines = [f"Volume-sensitive: {line}" for line in sensitive]
        if volume is not None:
            per_kg = f", {number(volume.ml / volume.kg, 1)} mL/kg" if volume.kg else ""
            lines.append(
                f"Infusion volume: {number(volume.ml, 0)} mL per administration{per_kg} "
                f"({volume.steps})"
            )
        else:
            lines.append("Infusion volume: not computed (no dose in grams or no concentration)")
        choice = ten_percent(inp)
        switch = choice.product
        if switch is not None:
            lines.append(f"A 10% product of the route: {switch.brand} (half the volume of 5%)")
        lines += not_stocked(choice)
        return Hydration(
            () if switch is None else (_switch_to(inp, switch),),
            tuple(lines),
            "The patient is volume-sensitive: no hydration order is suggested; weigh the "
            "infusion volume and any fluids with the treating team (a 10% product gives half "
            "the volume of a 5% one).",
        )
    volume_ml, rate = limits.hydration_protocol_volume_ml, limits.hydration_protocol_rate_ml_h
    if volume_ml > 0 and rate > 0:
        order = CreateOrder(
            "pre-infusion-hydration", why, inp.order.reference, volume_ml=volume_ml, rate_ml_h=rate
        )
        return Hydration(
            (
                Proposal(
                    f"Order pre-infusion hydration ({volume_ml:g} mL at {rate:g} mL/h)", (order,)
                ),
            ),
            (f"Hydration per the site protocol: {volume_ml:g} mL at {rate:g} mL/h",),
            "Hydrate before the infusion per the site protocol.",
        )
    return Hydration((), (), f"The label says: {LABEL_HYDRATION}.")


def ten_percent(inp: OrderInput) -> Choice:
    """For a volume-sensitive patient on a product under 10%: the first stocked 10% product of
    the route (labelled for the indication where one is), contract §8 "Volume", and the first
    over the whole catalogue; nothing for an order of a 10% product or an unknown one."""
    product = inp.order.product
    if product is None or product.concentration_percent is None:
        return Choice(None, None)
    if product.concentration_percent >= 10:
        return Choice(None, None)
    catalogue = inp.kb.catalogue
    found = catalogue.substitutes(inp.order.route, product, labelled_as(inp), stocked_only=False)
    return catalogue.choice([p for p in found if (p.concentration_percent or 0) >= 10])


def not_stocked(
    choice: Choice,
    best_is: str = "the first choice for this patient",
    none_left: str = "no stocked product fits",
) -> tuple[str, ...]:
    """The evidence line when the best product is not on the site's formulary (card contract
    §9); nothing without a formulary. It states facts only: whether the stocked second choice
    is offered is the revised order's to say (it may fail another check), so the line never
    promises one."""
    best = choice.best_not_stocked
    if best is None:
        return ()
    line = f"{best.brand}, {best_is}, is not on this site's formulary"
    if choice.product is not None:
        return (line,)
    return (f"{line}, and {none_left}: ask the pharmacy about a non-formulary supply",)


def _switch_to(inp: OrderInput, product: Product) -> Proposal:
    why = f"Volume-sensitive: {product.brand} (10%) gives half the volume of a 5% product"
    return Proposal(
        f"Switch to {product.brand} (10%)",
        (ReviseOrder(inp.order.reference, (ProductChange(product, why),), why),),
    )


def labelled_as(inp: OrderInput) -> set[str]:
    """The order's indications as product labels name them (ITP, CIDP, PI ...)."""
    by_valueset = {r.valueset: r for r in inp.kb.dose_ranges}
    found = indications_of(inp.order.order, inp.ctx, inp.kb.valuesets, by_valueset)
    return {label for f in found for label in by_valueset[f.valueset].labelled_as}


def companion(label: str, inp: OrderInput, why: str, *orderables: str) -> Proposal:
    """A suggestion of one or more companion orders (labs, measurements) for the order."""
    return Proposal(
        label, tuple(CreateOrder(name, why, inp.order.reference) for name in orderables)
    )


def labelled_rates(inp: OrderInput, product: Product) -> tuple[list[Rate], str]:
    """The product's labelled IV rates (products.json ``rates``) for the order's indication, and
    which label indications they are; for an indication it is not labelled for, all of them
    (the lowest maximum is then the limit) and ""."""
    by_valueset = {r.valueset: r for r in inp.kb.dose_ranges}
    found = indications_of(inp.order.order, inp.ctx, inp.kb.valuesets, by_valueset)
    labels = {label for f in found for label in by_valueset[f.valueset].labelled_as}
    matched = [r for r in product.rates if r.indication in labels and r.max_mg_kg_min]
    if matched:
        return matched, ", ".join(dict.fromkeys(r.indication for r in matched))
    return [r for r in product.rates if r.max_mg_kg_min], ""


def titration(inp: OrderInput, product: Product) -> str | None:
    """Why this infusion starts at the labelled initial rate (a titration infusion), or None
    (maintenance): a first infusion (no earlier immune globulin order), a new product (a
    switch included), or more than ``rate_titration_gap_days`` since the last administration."""
    previous = previous_orders(inp.ctx)
    if not previous:
        return "first infusion: no earlier immune globulin order on record"
    if not any(_same_product(h, product) for h in previous):
        return f"new product: no earlier {product.brand} order on record"
    # The product the patient is on now (a current order), else the one given last: a switch
    # back to a product given years ago is a new product too.
    current = [h for h in previous if h.current]
    dated = [(d, h) for h, d in last_given(inp.ctx) if d is not None]
    latest = current
    if not latest and dated:
        latest = [max(dated, key=lambda dh: dh[0])[1]]
    if latest and not any(_same_product(h, product) for h in latest):
        names = ", ".join(dict.fromkeys(h.order.product_name for h in latest))
        return f"new product: the patient's latest immune globulin is {names}"
    if current:
        return None
    days = [d for d, _ in dated]
    if not days:
        return None
    last: date = max(days)
    gap, limit = (inp.ctx.today - last).days, inp.thresholds.rate_titration_gap_days
    if gap > limit:
        return f"{gap} days since the last administration ({last.isoformat()}; > {limit} days)"
    return None


def _same_product(history: IgHistory, product: Product) -> bool:
    other = history.order.product
    if other is None:
        return False
    return other.id == product.id or product.id in other.members or other.id in product.members


def initial_rate(entries: list[Rate]) -> tuple[float, bool, str] | None:
    """The labelled initial rate (the lowest of the entries), whether it is verified, and the
    label's steps where the catalogue has them."""
    starts = [r for r in entries if r.initial_mg_kg_min]
    first = min(starts, key=lambda r: r.initial_mg_kg_min or 0.0, default=None)
    if first is None or first.initial_mg_kg_min is None:
        return None
    return first.initial_mg_kg_min, not first.unverified, first.titration or ""


def minimum_rate(inp: OrderInput) -> Proposal:
    """Minimum practicable rate; the product's at-risk rate cap where its label gives one."""
    product = inp.order.product
    cap = product.rate_cap_at_risk_mg_kg_min if product else None
    changes: tuple[OrderChange, ...]
    if inp.order.route_assumed:
        # IV was assumed so the IV checks run: an IV rate is not written into an order whose
        # route is not given (it may be given SC); the route card asks for it
        text = (
            "Infuse at the minimum practicable rate (boxed warning); no rate is written into "
            "the order while its route is not given"
        )
        label = "Add a minimum-practicable-rate instruction to the order"
        changes = (Instruction(text),)
    elif product is not None and cap is not None:
        weight = dosing_weight(inp.ctx, inp.kb, inp.thresholds)
        conversion = Conversion(
            weight.value if weight else None, mg_per_ml(product.concentration_percent)
        )
        text = (
            f"Infuse at the minimum practicable rate, not above {conversion.shown(cap)} "
            "(label cap for at-risk patients)"
        )
        label = f"Cap the infusion rate at {conversion.shown(cap)}"
        # a titration infusion starts at the labelled initial rate (the range written from it)
        start = initial_rate(labelled_rates(inp, product)[0]) if titration(inp, product) else None
        initial = start[0] if start is not None and start[1] else None
        changes = (Instruction(text), RateCap(cap, initial, conversion.kg, conversion.mg_per_ml))
    elif product is not None and (started := _titration_range(inp, product)) is not None:
        # No at-risk cap in the label, but a titration infusion (contract §8 "Rate"): the order
        # gets the labelled initial rate up to the labelled maximum, never an unverified one.
        first, limit, steps, why = started
        weight = dosing_weight(inp.ctx, inp.kb, inp.thresholds)
        conversion = Conversion(
            weight.value if weight else None, mg_per_ml(product.concentration_percent)
        )
        text = (
            f"Infuse at the minimum practicable rate (boxed warning); {why}: start at "
            f"{conversion.shown(first)}, increase as tolerated to at most "
            f"{conversion.shown(limit)}" + (f" ({steps})" if steps else "")
        )
        label = f"Start at {conversion.shown(first)}, at most {conversion.shown(limit)}"
        changes = (Instruction(text), RateCap(limit, first, conversion.kg, conversion.mg_per_ml))
    else:
        text = "Infuse at the minimum practicable rate (boxed warning)"
        label = "Add a minimum-practicable-rate instruction to the order"
        changes = (Instruction(text),)
    return Proposal(label, (ReviseOrder(inp.order.reference, changes, text),))


def _titration_range(inp: OrderInput, product: Product) -> tuple[float, float, str, str] | None:
    """The labelled initial rate, the labelled limit for the indication (the lowest maximum for
    an unlabelled one), the label's steps and why the infusion is a titration one; None when it
    is not one or a figure is unverified (quoted by infusion-rate, never written)."""
    why = titration(inp, product)
    if why is None:
        return None
    entries, _ = labelled_rates(inp, product)
    start = initial_rate(entries)
    maxima = [r for r in entries if r.max_mg_kg_min]
    if start is None or not start[1] or not maxima:
        return None
    limit = min(maxima, key=lambda r: r.max_mg_kg_min or 0.0)
    if limit.unverified or limit.max_mg_kg_min is None:
        return None
    return start[0], limit.max_mg_kg_min, start[2], why.split(":")[0]


def instruction(inp: OrderInput, label: str, text: str) -> Proposal:
    return Proposal(label, (ReviseOrder(inp.order.reference, (Instruction(text),), text),))


def low_igg(
    ctx: ClinicalContext,
    kb: KnowledgeBase,
    thresholds: Thresholds,
    valuesets: Sequence[str],
    *,
    active_only: bool,
) -> list[str]:
    """Hypogammaglobulinemia: a condition of ``valuesets``, or the latest IgG below
    ``igg_low_mg_dl`` (the evidence lines)."""
    found = [
        evidence.condition(c, m)
        for name in valuesets
        for c, m in ctx.conditions_in(kb.valueset(name), active_only=active_only)
    ]
    igg, low = ctx.latest("serum-igg"), thresholds.igg_low_mg_dl
    if igg is not None and igg.value is not None and igg.value < low:
        found.append(f"{evidence.observation(igg)} (below {low:g} mg/dL)")
    return found
