"""The one revised order of an immune globulin order (card contract §7.1): the changes the rules
propose, merged field by field and re-checked until the rules propose nothing more.

Product first: the changes proposed for the ordered product (a cap from its label, its
instructions) are not those of another product, so after a switch the other changes are those the
rules propose on the new product. Then the changes are applied and re-checked: only a fixed point
is offered; one that still asks for a change, keeps a contraindication or raises a finding the
order did not have is withheld, with the reason. Pure: the re-check is the caller's function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from hooks.context.model import IgOrder
from hooks.context.orders import read_medication_order, recognise
from hooks.context.read import Quantity, Reader
from hooks.dosing import Strength, percent, product_strength, strength_of, unit_of
from hooks.findings import (
    DoseChange,
    Finding,
    Instruction,
    OrderChange,
    ProductChange,
    RateCap,
    ReviseOrder,
    Volume,
)
from hooks.knowledge_base import KnowledgeBase
from hooks.knowledge_base.schema import Product
from hooks.rates import Conversion
from hooks.resources import Unrevisable, revised, within_cap

# Which rule's dose wins when several propose one: the dosing weight is the basis of every dose
# (contract §7.1), and a converted SC dose is the only dose of an SC order.
DOSE_PRECEDENCE = ("dosing-weight", "scig-conversion", "dose-check")
MAX_ROUNDS = 6
PRODUCT_GROUPS = ("DONOTGIVE", "PRODUCT")  # card groups whose critical findings rule a product out


@dataclass(frozen=True)
class Revision:
    """The one revised order of an immune globulin order: its changes and the whole resource,
    or (``withheld``) why none is offered."""

    order: IgOrder
    changes: tuple[OrderChange, ...] = ()
    resource: dict[str, Any] | None = None
    withheld: str | None = None
    # Reminders the revised order brings that the ordered one did not (an info finding that asks
    # for a lab, not for a change): they do not block it; the card names them.
    brings: tuple[Finding, ...] = ()

    @property
    def offered(self) -> bool:
        return self.resource is not None and bool(self.changes)


class Reviser:
    """The fixed point of one order's proposed changes (contract §7.1).

    A product switch comes first: the changes proposed for the ordered product (a rate cap
    from its label, its instructions) are not those of another product, so the other changes
    are those the rules propose for the order on the new product. Then the changes are applied
    and re-checked until the rules propose nothing more.
    """

    def __init__(
        self,
        order: IgOrder,
        topics: set[str],
        kb: KnowledgeBase,
        recheck: Callable[[IgOrder], tuple[Finding, ...]],
        *,
        volume_sensitive: bool = False,
    ) -> None:
        """``topics``: what the rules found on the order; ``recheck``: the rules over a revised
        order, in the call's context; ``volume_sensitive``: a switch tries 10% products first
        (contract §9, half the volume of a 5% product)."""
        self.order, self.topics, self.kb, self.recheck = order, topics, kb, recheck
        self.volume_sensitive = volume_sensitive

    def revise(self, proposed: list[tuple[str, OrderChange]]) -> Revision:
        changes = merged(proposed)
        product = next((c for c in changes if isinstance(c, ProductChange)), None)
        if product is not None:
            switched = self._switch(product)
            if isinstance(switched, Revision):
                return switched
            changes = switched
        return self._settle(changes)

    def _switch(self, first: ProductChange) -> tuple[OrderChange, ...] | Revision:
        """The changes for the first product that passes every check (the rules' own choice
        first, then the route's other products), or why there is none."""
        dose = self.order.order.dosages[0].dose if self.order.order.dosages else None
        if (
            dose is not None
            and unit_of(dose) == "ml"
            and not isinstance(strength_of(self.order), Strength)
        ):
            return self._withheld(
                "the dose is a volume of a product whose concentration is not known, so another "
                "product cannot be given the same grams; state the dose in grams"
            )
        tried: list[str] = []
        candidate: ProductChange | None = first
        catalogue = self.kb.catalogue
        # a switch never chooses a discontinued product, nor one the site does not stock (§9)
        if first.product.discontinued or not catalogue.is_stocked(first.product):
            tried.append(first.product.id)
            following = self._next_product([], tried)
            candidate = ProductChange(following, _SWITCH_WHY) if following else None
        while candidate is not None:
            tried.append(candidate.product.id)
            outcome = self._check((candidate,))
            if isinstance(outcome, Revision):
                return outcome
            refound, pending = outcome
            product_problem = any(isinstance(c, ProductChange) for _, c in pending) or any(
                (f.topic not in self.topics and not rate_only(f)) or self._about_the_product(f)
                for f in refound
            )
            if not product_problem:
                return merged([("", candidate), *pending])
            following = self._next_product(pending, tried)
            candidate = ProductChange(following, _SWITCH_WHY) if following else None
        which = "catalogue product" if catalogue.stocked is None else "product on the formulary"
        return self._withheld(
            f"no {which} passes every check for this patient; choose one with the pharmacist"
        )

    def _settle(self, changes: tuple[OrderChange, ...]) -> Revision:
        order = self.order
        for _ in range(MAX_ROUNDS):
            changes = tuple(c for c in changes if not satisfied(order, c))
            if not changes:
                return Revision(order)
            if not any(isinstance(c, ProductChange | DoseChange) for c in changes):
                # Instructions and a rate cap change nothing the rules read (product, dose,
                # route, the record), so a re-check would find what it found: a fixed point.
                # tests/test_answer_properties.py re-checks accepted orders to hold this.
                return self._offer(changes)
            outcome = self._check(changes)
            if isinstance(outcome, Revision):
                return outcome
            refound, pending = outcome
            brings = tuple(f for f in refound if f.topic not in self.topics and _advisory(f))
            new = {f.topic for f in refound if not _advisory(f)} - self.topics
            critical = any(f.indicator == "critical" for f in refound)
            if not pending and not new and not critical:
                return replace(self._offer(changes), brings=brings)
            # a rate the new product's label asks for is a change to make (then it is satisfied)
            blocking = {f.topic for f in refound if not rate_only(f)} - self.topics
            if (
                blocking
                or (new and not pending)
                or critical
                or any(isinstance(c, ProductChange | DoseChange) for _, c in pending)
            ):
                return self._withheld(
                    "the proposed changes do not settle into one order that passes every check"
                )
            changes = merged([*(("", c) for c in changes), *pending])
        return self._withheld("the proposed changes do not settle into one order")

    def _check(
        self, changes: tuple[OrderChange, ...]
    ) -> tuple[tuple[Finding, ...], list[tuple[str, OrderChange]]] | Revision:
        """The order with ``changes``, what the rules find on it, and what they still ask."""
        try:
            resource = revised(self.order, with_volume(self.order, changes))
        except Unrevisable as exc:
            return self._withheld(exc.why)
        again = self._reread(resource)
        if again is None:
            return self._withheld("it would not be recognised as immune globulin")
        refound = self.recheck(again)
        pending = [(f.topic, c) for f in refound for c in changes_for(f) if not satisfied(again, c)]
        return refound, pending

    def _about_the_product(self, found: Finding) -> bool:
        """A critical finding the product causes (a contraindication) rules the product out."""
        group = self.kb.card_groups.group_of(found.topic, found.indicator)
        return found.indicator == "critical" and group in PRODUCT_GROUPS

    def _offer(self, changes: tuple[OrderChange, ...]) -> Revision:
        changes = with_volume(self.order, changes)
        try:
            return Revision(self.order, changes, revised(self.order, changes))
        except Unrevisable as exc:
            return self._withheld(exc.why)

    def _withheld(self, why: str) -> Revision:
        return Revision(self.order, withheld=f"No revised order offered: {why}.")

    def _reread(self, resource: dict[str, Any]) -> IgOrder | None:
        before = self.order.order
        read = read_medication_order(resource, Reader(before.reference, []), {})
        if "medicationReference" in resource:  # the product is unchanged: keep what it resolved to
            read = replace(
                read,
                medication=before.medication,
                medication_display=before.medication_display,
                strength_g_per_ml=before.strength_g_per_ml,
            )
        return recognise(read, self.kb)

    def _next_product(
        self, pending: list[tuple[str, OrderChange]], tried: list[str]
    ) -> Product | None:
        """The rules' own choices first, then every other product of the route, in catalogue
        order (§9: candidates of the same route, not discontinued, stocked)."""
        catalogue = self.kb.catalogue
        proposed = [
            c.product
            for _, c in pending
            if isinstance(c, ProductChange) and catalogue.is_stocked(c.product)
        ]
        ordered = self.order.product.id if self.order.product else None
        others = catalogue.substitutes(self.order.route, self.order.product)
        if self.volume_sensitive:  # stable: catalogue order within each concentration
            others = sorted(others, key=lambda p: (p.concentration_percent or 0) < 10)
        for product in [*proposed, *others]:
            if product.id not in tried and product.id != ordered and not product.discontinued:
                return product
        return None


def _advisory(found: Finding) -> bool:
    """A reminder, not a risk: an info finding that proposes no change to the order (the ABO
    group before a course the revision raises to 2 g/kg). A revision may bring one."""
    return found.indicator == "info" and not changes_for(found)


_SWITCH_WHY = "Product chosen to pass every check for this patient"


def satisfied(order: IgOrder, change: OrderChange) -> bool:
    """Whether the order already does what the change asks (so re-checking is a fixed point)."""
    raw = order.order.raw
    if isinstance(change, ProductChange):
        return order.product is not None and order.product.id == change.product.id
    dosages = [d for d in _as_list(raw.get("dosageInstruction")) if isinstance(d, dict)]
    if isinstance(change, Instruction):
        texts = {
            item.get("text")
            for d in dosages
            for item in _as_list(d.get("additionalInstruction"))
            if isinstance(item, dict)
        }
        return bool(dosages) and change.text in texts
    if isinstance(change, RateCap):
        return within_cap(raw, change)
    dose = order.order.dosages[0].dose if order.order.dosages else None
    return (
        dose is not None
        and dose.value == change.value
        and (dose.code or dose.unit) == change.unit
        and (change.every_weeks is None or _every_weeks(order) == change.every_weeks)
    )


def _every_weeks(order: IgOrder) -> float | None:
    repeat = order.order.dosages[0].repeat if order.order.dosages else None
    if repeat is None or repeat.period is None:
        return None
    unit = repeat.period_unit
    return repeat.period if unit == "wk" else (repeat.period / 7 if unit == "d" else None)


def merged(proposed: Iterable[tuple[str, OrderChange]]) -> tuple[OrderChange, ...]:
    """Field by field: the first product; the dose by precedence; the lowest rate cap; every
    instruction once. In that order, so equal sets of changes give equal orders."""
    items = list(proposed)
    product = next((c for _, c in items if isinstance(c, ProductChange)), None)
    doses = [(t, c) for t, c in items if isinstance(c, DoseChange)]
    doses.sort(key=lambda tc: DOSE_PRECEDENCE.index(tc[0]) if tc[0] in DOSE_PRECEDENCE else 99)
    caps = [c for _, c in items if isinstance(c, RateCap)]
    cap = _lowest(caps)
    instructions = dict.fromkeys(c for _, c in items if isinstance(c, Instruction))
    merged: list[OrderChange] = []
    if product is not None:
        merged.append(product)
    if doses:
        merged.append(doses[0][1])
    if cap is not None:
        merged.append(cap)
    merged += instructions
    return tuple(merged)


def _lowest(caps: list[RateCap]) -> RateCap | None:
    """One rate change: the lowest limit, the lowest initial rate (a titration infusion when any
    rule asks for one), and the patient's conversion (weight, concentration) where one has it."""
    if not caps:
        return None
    initials = [c.initial_mg_kg_min for c in caps if c.initial_mg_kg_min is not None]
    return RateCap(
        min(c.mg_kg_min for c in caps),
        min(initials) if initials else None,
        next((c.kg for c in caps if c.kg), None),
        next((c.mg_per_ml for c in caps if c.mg_per_ml), None),
    )


def rate_only(found: Finding) -> bool:
    """A finding that asks only for a rate or an instruction (not a product or a dose, and not
    critical): on a switched product it is a change to make, not a reason to refuse the product;
    once made, it no longer fires."""
    changes = changes_for(found)
    return (
        bool(changes)
        and found.indicator != "critical"
        and all(isinstance(c, RateCap | Instruction) for c in changes)
    )


def changes_for(found: Finding) -> list[OrderChange]:
    """The changes a finding proposes to its own order (a do-not-give alternative excluded)."""
    return [
        change
        for proposal in found.proposals
        for action in proposal.actions
        if isinstance(action, ReviseOrder) and action.order == found.order
        for change in action.changes
    ]


def with_volume(order: IgOrder, changes: tuple[OrderChange, ...]) -> tuple[OrderChange, ...]:
    """The changes with the grams of a revised dose given as mL of the chosen product, and the
    order's own volume, so the card names the change (contract §8 "Dose reading"). An order
    in grams (or mL) that switches product gets its dose restated, the same grams, in the new
    product's mL: mL of the ordered concentration would change the grams (a 5% → 10% switch
    halves the mL)."""
    switch = next((c for c in changes if isinstance(c, ProductChange)), None)
    dose = next((c for c in changes if isinstance(c, DoseChange)), None)
    before = strength_of(order)
    ordered = order.order.dosages[0].dose if order.order.dosages else None
    in_ml = ordered is not None and unit_of(ordered) == "ml"
    ordered_g = _grams(ordered, before)
    after = product_strength(switch.product) if switch is not None else before
    if dose is None and switch is not None and ordered_g is not None:
        if in_ml or isinstance(after, Strength):  # the same grams, in the new product's mL
            dose = DoseChange(ordered_g, "g", "the ordered dose, as grams of the new product")
            changes = (switch, dose, *(c for c in changes if c is not switch))
    if dose is None or dose.unit != "g" or not isinstance(after, Strength):
        return changes
    was_ml, was_of = None, None
    if ordered is not None and in_ml:
        was_ml = ordered.value
    elif switch is not None and ordered_g is not None and isinstance(before, Strength):
        was_ml = round(ordered_g / before.g_per_ml, 1)  # grams of the old product, in its mL
    if switch is not None and was_ml is not None and isinstance(before, Strength):
        was_of = _with_percent(order.product_name, before)
    product = switch.product if switch is not None else order.product
    name = product.brand if product is not None else "the ordered product"
    volume = Volume(
        round(dose.value / after.g_per_ml, 1), _with_percent(name, after), was_ml, was_of
    )
    return tuple(replace(c, volume=volume) if c is dose else c for c in changes)


def _grams(quantity: Quantity | None, strength: Strength | str) -> float | None:
    """An absolute dose in grams (g, mg, or mL of a known strength); None otherwise."""
    if quantity is None:
        return None
    unit = unit_of(quantity)
    if unit == "ml":
        return (
            round(quantity.value * strength.g_per_ml, 3) if isinstance(strength, Strength) else None
        )
    factor = {"g": 1.0, "mg": 0.001}.get(unit)
    return round(quantity.value * factor, 3) if factor is not None else None


def _with_percent(name: str, strength: Strength) -> str:
    return name if "%" in name else f"{name} {percent(strength.g_per_ml)}"


def describe(change: OrderChange) -> str:
    if isinstance(change, ProductChange):
        return f"{change.product.brand} instead"
    if isinstance(change, DoseChange):
        every = f" every {change.every_weeks:g} week(s)" if change.every_weeks else ""
        return f"{change.shown()} per administration{every}"
    if isinstance(change, RateCap):
        conversion = Conversion(change.kg, change.mg_per_ml)
        limit = f"rate ≤ {conversion.shown(change.mg_kg_min)}"
        if change.initial_mg_kg_min is None:
            return limit
        return f"start at {conversion.shown(change.initial_mg_kg_min)}, titrate to {limit}"
    return change.text


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
