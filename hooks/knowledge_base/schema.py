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
from hooks.text import NOT_CHECKED

NonEmpty = Annotated[str, StringConstraints(min_length=1)]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[^/\s]+")]
# What a card's source may link to (contract §9 "Source links"): the document itself, as a DOI, a
# DailyMed setid page, an FDA label PDF, or a PubMed / PMC record. Never a site's home page.
DOCUMENT_URL = (
    r"^https://(?:"
    r"doi\.org/10\.\d{4,9}/\S+"
    r"|dailymed\.nlm\.nih\.gov/dailymed/(?:drugInfo|lookup)\.cfm\?setid="
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|www\.fda\.gov/media/\d+/download(?:\?attachment)?"
    r"|www\.accessdata\.fda\.gov/drugsatfda_docs/label/\d{4}/[\w.-]+\.pdf"
    r"|pubmed\.ncbi\.nlm\.nih\.gov/\d+/?"
    r"|(?:pmc\.ncbi\.nlm\.nih\.gov|www\.ncbi\.nlm\.nih\.gov/pmc)/articles/PMC\d+/?"
    r")$"
)
DocumentUrl = Annotated[str, StringConstraints(pattern=DOCUMENT_URL)]
Route = Literal["IV", "SC"]
Indicator = Literal["warning", "critical"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Source(Model):
    """A citation: the document's name (``label``, shown on the card) and, where one is
    confirmed, a link to the document itself (``url``, see ``DOCUMENT_URL``). Without a url the
    card names the document and links nothing."""

    label: NonEmpty
    url: DocumentUrl | None = None
    url_note: str | None = None  # documentation: where the url (or the citation) was confirmed


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
        """For a card: an unverified figure carries the plain phrase, never "unverified"
        (contract §7.7); a text that states no figure ("not given") has nothing to qualify."""
        states_figure = any(char.isdigit() for char in self.text)
        return self.text + (f" ({NOT_CHECKED})" if self.unverified and states_figure else "")


class Rate(Model):
    """Labelled IV infusion rates (mg/kg/min) for an indication, read by ``infusion-rate``:
    the maximum is the limit, the initial rate starts a titration infusion. An ``unverified``
    rate is quoted with the plain phrase and never written into an order."""

    indication: NonEmpty
    initial_mg_kg_min: float | None
    max_mg_kg_min: float | None
    unverified: bool
    source: NonEmpty  # documentation
    titration: str | None = None  # the label's steps, shown on the card


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


class RouteLabel(Model):
    """The indications one route of a product is labelled for (named as in ``rates``)."""

    route: Route
    indications: tuple[NonEmpty, ...] = Field(min_length=1)
    source: NonEmpty  # documentation


class Product(Model):
    id: NonEmpty
    brand: NonEmpty
    generic_name: NonEmpty  # documentation
    manufacturer: NonEmpty  # documentation
    match_names: tuple[NonEmpty, ...] = Field(min_length=1)
    routes: tuple[Route, ...] = Field(min_length=1)
    concentration_percent: float | None  # doses in mL, volumes, rates in mL/h, 10% preference
    excipients: frozenset[str]
    excipients_unverified: frozenset[str]
    iga: Iga
    low_iga: bool
    rate_cap_at_risk_mg_kg_min: float | None
    rates: tuple[Rate, ...]
    codings: tuple[ProductCoding, ...]
    contraindication_notes: tuple[str, ...]  # documentation
    discontinued: bool
    # When and where it was discontinued, shown on the card ("discontinued in the US, 2018").
    discontinued_note: str | None = None
    unverified_notes: tuple[str, ...]  # documentation
    source: Source
    family: bool = False
    members: tuple[str, ...] = ()
    scig: Scig | None = None
    # The indications (named as in ``rates``) a route of the product is labelled for, where its
    # label limits that route: Gamunex-C SC is labelled for PI only (card contract §9, missing
    # route). A route not listed here is labelled for the indications of ``rates`` (IV rates).
    route_labels: tuple[RouteLabel, ...] = ()

    @property
    def possible_excipients(self) -> frozenset[str]:
        """Every excipient the product holds or may hold (unverified, or some family members)."""
        return self.excipients | self.excipients_unverified

    def labelled_for(self, route: Route) -> frozenset[str]:
        """The indications the product is labelled for by ``route`` (empty: none known)."""
        for label in self.route_labels:
            if label.route == route:
                return frozenset(label.indications)
        if route not in self.routes:
            return frozenset()
        return frozenset(rate.indication for rate in self.rates)


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


class CardGroup(Model):
    code: str = Field(pattern=r"^[A-Z]+$")  # letters only: it is part of a card's topic code
    display: NonEmpty


class CardGroupsFile(Model):
    """How findings become cards: one card per group for each order or course (contract §7.2)."""

    version: NonEmpty
    note: str  # documentation
    groups: tuple[CardGroup, ...] = Field(min_length=1)
    # topic -> indicator ("critical" | "warning" | "info" | "default") -> group code
    topics: dict[str, dict[Literal["critical", "warning", "info", "default"], str]]

    def group_of(self, topic: str, indicator: str) -> str:
        by_indicator = self.topics[topic]
        for key, group in by_indicator.items():
            if key == indicator:
                return group
        return by_indicator["default"]


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


class OrderableDose(Model):
    """A drug's dose per administration (UCUM unit, e.g. ``mg``)."""

    value: float = Field(gt=0)
    unit: Literal["mg", "g", "mL"]


class OrderableTiming(Model):
    """``Timing.repeat``: ``frequency`` administrations per ``period`` ``periodUnit``."""

    frequency: int = Field(ge=1)
    period: int = Field(ge=1)
    periodUnit: Literal["h", "d", "wk"]


class Orderable(Model):
    """What a suggestion orders: a lab, a measurement, a drug or a referral. A drug with a
    ``dose`` and ``timing`` is a complete order (dose, route, frequency), not text alone."""

    resourceType: Literal["ServiceRequest", "MedicationRequest"]
    code: OrderableCode  # its text is required (checked by the loader): it names the order
    source: NonEmpty  # documentation
    dosageText: str | None = None
    route: OrderableCode | None = None
    dose: OrderableDose | None = None
    timing: OrderableTiming | None = None
    label: NonEmpty | None = None  # the suggestion's words when the code's text is not enough

    @property
    def named(self) -> str:
        """What a suggestion to order it says: the label, else the code's text."""
        return self.label or self.code.text or ""


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


class YoungChildRule(Model):
    """An excipient contraindicated in young children unless a record says the condition it
    harms has been excluded (sorbitol: hereditary fructose intolerance may not yet be diagnosed).
    The age is the threshold ``sorbitol_hfi_age_years``."""

    excipient: NonEmpty
    excluded: NonEmpty  # the value set of the condition a record must rule out
    indicator: Indicator
    basis: NonEmpty
    source: Source


class ExcipientRulesFile(Model):
    version: NonEmpty
    description: str  # documentation
    rules: tuple[ExcipientRule, ...]
    young_children: tuple[YoungChildRule, ...] = ()


class Regimen(Model):
    kind: Literal["course", "cycle"]  # course: a total over days; cycle: one dose per cycle
    low_g_per_kg: float = Field(ge=0)
    high_g_per_kg: float = Field(ge=0)
    description: NonEmpty
    # The daily doses (g/kg per day) of the regimens the description lists: a dose within the
    # tolerance of one is one day of a course (never "low" at order-select), and a revised dose
    # never exceeds the indication's highest. Empty: the source lists none.
    daily_g_per_kg: tuple[Annotated[float, Field(gt=0)], ...] = ()
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
    # The indication as product labels name it (products.json rates): a product switch prefers
    # a product labelled for the order's indication (card contract §9, product substitution).
    labelled_as: tuple[NonEmpty, ...] = ()

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


class Inappropriate(Model):
    """Immune globulin is not a guideline therapy for the indication: an appropriateness warning
    (contract §7.3). ``summary`` is the card's summary line."""

    summary: Annotated[str, StringConstraints(min_length=1, max_length=139)]
    # no warning when hypogammaglobulinemia is coded or the IgG is below igg_low_mg_dl
    unless_hypogammaglobulinemia: bool = False


class Guidance(Model):
    id: NonEmpty
    display: NonEmpty
    valueset: NonEmpty
    statements: tuple[Statement, ...] = Field(min_length=1)
    warning: Inappropriate | None = None


class GuidanceFile(Model):
    version: NonEmpty
    note: str  # documentation
    indications: tuple[Guidance, ...]


class Threshold(Model):
    """One clinical number, its unit and its source; ``site``: an environment variable may
    override it (``IVIG_CDS_<NAME>``)."""

    value: float
    unit: NonEmpty
    meaning: NonEmpty
    source: Source  # a link only to the document itself, as everywhere else
    site: bool = False
    unverified: bool = False


class ThresholdsFile(Model):
    version: NonEmpty
    note: str  # documentation
    thresholds: dict[str, Threshold]


# ------------------------------------------------------------------------------ the site formulary


class FormularyFile(Model):
    """The products a site stocks (``IVIG_CDS_FORMULARY``; not a file of ``hooks/knowledge/``):
    catalogue ids of products.json. Switches suggest only these (card contract §9)."""

    version: NonEmpty
    site: NonEmpty
    stocked: tuple[NonEmpty, ...] = Field(min_length=1)
    note: str | None = None  # documentation
