"""What rules return: findings, and the changes they propose, as data (no FHIR is written here).

A rule proposes *changes* to an order (product, dose, rate, an instruction), new companion orders
(labs, hydration, referrals) or the removal of an order. The card maker turns them into CDS Hooks
actions with complete FHIR resources; a composer can merge the changes several findings propose
for one order into one revised order, because each change says only what it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hooks.knowledge_base.schema import Product

Indicator = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class ProductChange:
    product: Product
    why: str


@dataclass(frozen=True)
class Volume:
    """The mL a gram dose is of the revised order's product (contract §8 "Dose reading"), and
    the order's own volume when it was written in mL (so the change of volume is named)."""

    ml: float
    of: str  # the product and its concentration: "Privigen 10%"
    ordered_ml: float | None = None
    ordered_of: str | None = None  # the ordered product, when the revision switches it

    def describe(self) -> str:
        was = ""
        if self.ordered_ml is not None:
            was = f", was {self.ordered_ml:g} mL" + (
                f" of {self.ordered_of}" if self.ordered_of else ""
            )
        return f"{self.ml:g} mL of {self.of}{was}"


@dataclass(frozen=True)
class DoseChange:
    """The dose per administration; ``every_weeks`` also sets a weekly-interval regimen (SCIG).
    ``volume``: the mL of the chosen product, set by the reviser (hooks.revision)."""

    value: float
    unit: Literal["g", "g/kg"]
    why: str
    every_weeks: float | None = None
    volume: Volume | None = None

    def shown(self) -> str:
        """The dose as written on a card or an order: 35 g (350 mL of Privigen 10%, was 440 mL)."""
        volume = f" ({self.volume.describe()})" if self.volume else ""
        return f"{self.value:g} {self.unit}{volume}"


@dataclass(frozen=True)
class RateCap:
    """A labelled maximum rate (mg/kg/min); a lower ordered rate is never raised.

    ``initial_mg_kg_min``: a titration infusion (a first infusion, a new product, a long gap)
    starts at the labelled initial rate, so the order gets a range from it to the limit.
    ``kg`` and ``mg_per_ml`` (the dosing weight, the product's concentration) convert a rate the
    prescriber wrote in mL/h or mL/kg/min; without them such a rate is left as written."""

    mg_kg_min: float
    initial_mg_kg_min: float | None = None
    kg: float | None = None
    mg_per_ml: float | None = None


@dataclass(frozen=True)
class Instruction:
    """An administration instruction added to every dosage (and to the order's notes)."""

    text: str


OrderChange = ProductChange | DoseChange | RateCap | Instruction


@dataclass(frozen=True)
class ReviseOrder:
    order: str  # the reference of the order in focus
    changes: tuple[OrderChange, ...]
    description: str


@dataclass(frozen=True)
class CreateOrder:
    orderable: str  # a name in knowledge/orderables.json ("" for a product order)
    why: str
    for_order: str | None = None  # the order it accompanies (reasonReference)
    product: Product | None = None  # an immune globulin product (the Epic profile's switch)
    # a site hydration protocol (thresholds hydration_protocol_*): the fluid's volume and rate
    volume_ml: float | None = None
    rate_ml_h: float | None = None


@dataclass(frozen=True)
class RemoveOrder:
    order: str
    description: str


ProposedAction = ReviseOrder | CreateOrder | RemoveOrder


@dataclass(frozen=True)
class Proposal:
    """One suggestion: what the clinician accepts in one click."""

    label: str
    actions: tuple[ProposedAction, ...]
    recommended: bool = False


@dataclass(frozen=True)
class Finding:
    topic: str
    indicator: Indicator
    summary: str
    evidence: tuple[str, ...]
    recommendation: str
    order: str | None = None  # the order it is about (None: the patient); set by the engine
    proposals: tuple[Proposal, ...] = ()
    selection: Literal["at-most-one", "any"] = "any"
    notes: tuple[str, ...] = ()
    # (label, url) when not the topic's own source; url None: the document is named, not linked
    source: tuple[str, str | None] | None = None
    new_factor: bool = False  # the tier was raised by a risk factor newer than the last IG order
    # Its order was not checked at all (the checks' time budget): no revision on any card.
    not_checked: bool = False
