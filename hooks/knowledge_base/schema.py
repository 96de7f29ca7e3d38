"""The schema of every knowledge file in ``hooks/knowledge/`` (pydantic, strict).

A field the schema does not name is an error, so a typo in a pharmacist's edit is caught at
start-up rather than silently ignored. Fields marked *documentation* are checked for type and kept
for reviewers, but no rule reads them; everything else is read by the code. Cross-file checks (a
value set that must exist, an excipient that must be in the vocabulary) are in ``loader.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hooks.terminology import Code

NonEmpty = Annotated[str, StringConstraints(min_length=1)]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[^/\s]+")]
Route = Literal["IV", "SC"]
Indicator = Literal["warning", "critical"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Source(Model):
    """A citation a clinician can open: the document's label and an https URL."""

    label: NonEmpty
    url: HttpsUrl
    url_note: str | None = None  # documentation: why this URL stands for the document


class Coding(Model):
    system: NonEmpty
    code: NonEmpty
    display: str | None = None

    def as_code(self) -> Code:
        return Code(self.system, self.code, self.display)


# ------------------------------------------------------------------------------ products.json


class Iga(Model):
    text: NonEmpty
    max_ug_per_ml: float | None
    unverified: bool

    @property
    def shown(self) -> str:
        return self.text + (" (UNVERIFIED)" if self.unverified else "")


class Rate(Model):
    """Labelled infusion rates (mg/kg/min). Documentation until the rate rule reads them."""

    indication: NonEmpty
    initial_mg_kg_min: float | None
    max_mg_kg_min: float | None
    unverified: bool
    source: NonEmpty


class ProductCoding(Coding):
    unverified: bool = False  # documentation: the reference marks this code unverified
    source: str | None = None  # documentation: where the code was seen


class SiteLimit(Model):
    """Per-site volume and rate of a subcutaneous product for an age or weight group."""

    group: NonEmpty
    min_age_years: float | None
    max_age_years: float | None
    min_weight_kg: float | None
    max_weight_kg: float | None
    volume_ml_per_site: float | None
    rate_ml_per_h_per_site: float | None
    max_sites: int | None
    unverified: bool
    max_sites_unverified: bool
    note: str
    source: NonEmpty
    initial_rate_ml_per_h_per_site: float | None = None  # documentation
    indication: str | None = None  # documentation
    infusion: str | None = None  # documentation
    max_ml_per_day: float | None = None  # documentation

    def applies(self, age: int | None, weight_kg: float | None) -> bool:
        """min_* inclusive, max_* exclusive; a bounded group never applies to an unknown value."""

        def inside(value: float | None, low: float | None, high: float | None) -> bool:
            if low is None and high is None:
                return True
            if value is None:
                return False
            return (low is None or value >= low) and (high is None or value < high)

        return inside(age, self.min_age_years, self.max_age_years) and inside(
            weight_kg, self.min_weight_kg, self.max_weight_kg
        )


class Scig(Model):
    """Switching from IVIG to this subcutaneous product, and its per-site limits."""

    conversion_factor: float | None
    conversion_unverified: bool
    conversion_note: str  # documentation
    same_dose_and_interval: bool  # HyQvia: the IGIV dose and interval, unchanged
    site_limits: tuple[SiteLimit, ...]
    source: Source
    note: str | None = None  # documentation


class Product(Model):
    id: NonEmpty
    brand: NonEmpty
    generic_name: NonEmpty  # documentation
    manufacturer: NonEmpty  # documentation
    match_names: tuple[NonEmpty, ...] = Field(min_length=1)
    routes: tuple[Route, ...] = Field(min_length=1)
    concentration_percent: float | None  # documentation until volumes are computed
    excipients: frozenset[str]
    excipients_unverified: frozenset[str]
    iga: Iga
    low_iga: bool
    rate_cap_at_risk_mg_kg_min: float | None
    rates: tuple[Rate, ...]  # documentation
    codings: tuple[ProductCoding, ...]
    contraindication_notes: tuple[str, ...]  # documentation
    discontinued: bool
    unverified_notes: tuple[str, ...]  # documentation
    source: Source
    family: bool = False
    members: tuple[str, ...] = ()
    scig: Scig | None = None

    @property
    def possible_excipients(self) -> frozenset[str]:
        """Every excipient the product holds or may hold (unverified, or some family members)."""
        return self.excipients | self.excipients_unverified


class GenericCoding(Coding):
    route: Route | None
    unverified: bool
    source: NonEmpty  # documentation


class Generic(Model):
    codings: tuple[GenericCoding, ...]
    match_words: tuple[NonEmpty, ...]


class Exclusions(Model):
    description: str  # documentation
    atc_prefixes: tuple[NonEmpty, ...]
    match_words: tuple[NonEmpty, ...]


class LoadingStatement(Model):
    """Documentation: SCIG loading in IG-naive patients; not shown (the card fires from IVIG)."""

    text: str
    strength: str
    source: Source
    unverified_note: str


class ProductsFile(Model):
    version: NonEmpty
    excipient_vocabulary: frozenset[NonEmpty]
    products: tuple[Product, ...]
    family_entries_note: str  # documentation
    generic: Generic
    exclusions: Exclusions
    scig_loading_statement: LoadingStatement  # documentation
    scig_note: str  # documentation


# ------------------------------------------------------------------------------ the other files


class ObservationConcept(Model):
    """An observation the rules read: its codes (a value set) and conversions to one unit."""

    valueset: NonEmpty
    unit: NonEmpty | None = None
    coded: bool = False  # the value is a code or text (ABO group, serology), not a quantity
    convert: dict[str, dict[Literal["multiply", "divide"], float]] = Field(default_factory=dict)

    def factors(self) -> dict[str, float]:
        """Normalised unit -> the factor that converts a value to ``unit``."""
        return {
            unit: (rule["multiply"] if "multiply" in rule else 1 / rule["divide"])
            for unit, rule in self.convert.items()
        }


class ObservationsFile(Model):
    version: NonEmpty
    source: NonEmpty  # documentation
    unitMatching: str  # documentation
    concepts: dict[str, ObservationConcept]


class Topic(Model):
    display: NonEmpty
    source: Source
    productLabel: bool = False  # the card's source is the topic's, then the ordered product's label
    overrideReasons: tuple[str, ...] = ()


class TopicsFile(Model):
    version: NonEmpty
    note: str  # documentation
    topicSystem: HttpsUrl
    overrideReasonSystem: HttpsUrl
    overrideReasons: dict[str, NonEmpty]
    topics: dict[str, Topic]


class OrderableCode(Model):
    coding: tuple[Coding, ...] = ()
    text: NonEmpty | None = None

    def as_json(self) -> dict[str, object]:
        """The CodeableConcept of a suggested resource."""
        concept: dict[str, object] = {}
        if self.coding:
            concept["coding"] = [c.model_dump(exclude_none=True) for c in self.coding]
        if self.text:
            concept["text"] = self.text
        return concept


class Orderable(Model):
    """What a suggestion orders: a lab, a measurement, a drug or a referral."""

    resourceType: Literal["ServiceRequest", "MedicationRequest"]
    code: OrderableCode  # its text is required (checked by the loader): it names the order
    source: NonEmpty  # documentation
    dosageText: str | None = None
    route: OrderableCode | None = None


class OrderablesFile(Model):
    version: NonEmpty
    description: str  # documentation
    orderables: dict[str, Orderable]


class RouteSpec(Model):
    codes: tuple[Coding, ...]
    phrases: tuple[NonEmpty, ...]


class RoutesFile(Model):
    version: NonEmpty
    source: NonEmpty  # documentation
    routes: dict[Route, RouteSpec]


class ExcipientRule(Model):
    excipient: NonEmpty
    valueset: NonEmpty
    kind: Literal["condition", "allergy"]
    indicator: Indicator
    finding: NonEmpty
    basis: NonEmpty
    source: Source


class ExcipientRulesFile(Model):
    version: NonEmpty
    description: str  # documentation
    rules: tuple[ExcipientRule, ...]


class Regimen(Model):
    kind: Literal["course", "cycle"]  # course: a total over days; cycle: one dose per cycle
    low_g_per_kg: float = Field(ge=0)
    high_g_per_kg: float = Field(ge=0)
    description: NonEmpty
    days: str | None = None  # documentation
    interval_weeks: float | str | None = None  # documentation: 4, or a span such as "3-4"
    unverified: bool = False  # documentation
    source: str | None = None  # documentation


class AgeBand(Model):
    min_years: int | None = None
    max_years: int | None = None


class DoseRange(Model):
    id: NonEmpty
    display: NonEmpty
    valueset: NonEmpty
    regimens: tuple[Regimen, ...] = Field(min_length=1)
    age: AgeBand | None
    source: Source
    unverified: bool = False  # documentation
    note: str = ""  # documentation

    def fits_age(self, age: int | None) -> bool:
        band = self.age or AgeBand()
        if band.min_years is None and band.max_years is None:
            return True
        if age is None:
            return False
        return (band.min_years is None or age >= band.min_years) and (
            band.max_years is None or age <= band.max_years
        )


class DoseRangesFile(Model):
    version: NonEmpty
    note: str  # documentation
    indications: tuple[DoseRange, ...]


class Statement(Model):
    id: NonEmpty
    text: NonEmpty
    source: Source
    year: int | None
    strength: NonEmpty  # documentation
    unverified: bool
    plasma_exchange_first: bool = False
    reference_status: str | None = None  # documentation
    unverified_note: str | None = None  # documentation


class Guidance(Model):
    id: NonEmpty
    display: NonEmpty
    valueset: NonEmpty
    statements: tuple[Statement, ...] = Field(min_length=1)


class GuidanceFile(Model):
    version: NonEmpty
    note: str  # documentation
    indications: tuple[Guidance, ...]


class ThresholdSource(Model):
    label: NonEmpty
    url: HttpsUrl | None = None


class Threshold(Model):
    """One clinical number, its unit and its source; ``site``: an environment variable may
    override it (``IVIG_CDS_<NAME>``)."""

    value: float
    unit: NonEmpty
    meaning: NonEmpty
    source: ThresholdSource
    site: bool = False
    unverified: bool = False


class ThresholdsFile(Model):
    version: NonEmpty
    note: str  # documentation
    thresholds: dict[str, Threshold]
