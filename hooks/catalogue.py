"""The immune globulin product catalogue (``knowledge/products.json``), loaded and validated.

Every product of the clinical reference with its labelled routes, excipients, IgA content, rate cap
for at-risk patients, the codes that identify it, and its label as a source. Family entries (a bare
brand with several concentrations) hold only the facts all members share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.errors import KnowledgeError
from hooks.knowledge_files import read_json
from hooks.terminology import Code

ROUTES = ("IV", "SC")


@dataclass(frozen=True)
class SiteLimit:
    group: str
    min_age: float | None
    max_age: float | None
    min_weight_kg: float | None
    max_weight_kg: float | None
    volume_ml_per_site: float | None
    rate_ml_per_h_per_site: float | None
    max_sites: int | None
    unverified: bool
    note: str

    def applies(self, age: int | None, weight_kg: float | None) -> bool:
        def inside(value: float | None, low: float | None, high: float | None) -> bool:
            if low is None and high is None:
                return True
            if value is None:
                return False
            return (low is None or value >= low) and (high is None or value < high)

        return inside(age, self.min_age, self.max_age) and inside(
            weight_kg, self.min_weight_kg, self.max_weight_kg
        )


@dataclass(frozen=True)
class ScigFacts:
    """Switching from IVIG to this subcutaneous product (clinical-reference §8c, §8d)."""

    factor: float | None
    factor_unverified: bool
    same_dose_and_interval: bool  # HyQvia: the IGIV dose and interval, unchanged
    note: str
    site_limits: tuple[SiteLimit, ...]
    source_label: str
    source_url: str


@dataclass(frozen=True)
class Product:
    id: str
    brand: str
    routes: tuple[str, ...]
    excipients: frozenset[str]
    excipients_unverified: frozenset[str]
    iga_text: str
    iga_max_ug_per_ml: float | None
    low_iga: bool
    rate_cap_at_risk_mg_kg_min: float | None
    codings: tuple[Code, ...]
    match_names: tuple[str, ...]
    discontinued: bool
    family: bool
    source_label: str
    source_url: str
    scig: ScigFacts | None = None


@dataclass(frozen=True)
class GenericCoding:
    code: Code
    route: str | None
    unverified: bool


@dataclass(frozen=True)
class ProductCatalogue:
    products: tuple[Product, ...]
    generic_codings: tuple[GenericCoding, ...]
    generic_words: tuple[str, ...]
    exclusion_atc_prefixes: tuple[str, ...]
    exclusion_words: tuple[str, ...]

    def by_id(self, product_id: str) -> Product:
        return next(product for product in self.products if product.id == product_id)


def _product(raw: dict[str, Any], vocabulary: set[str]) -> Product:
    name = raw.get("id", "?")
    routes = tuple(raw.get("routes") or ())
    if not routes or not set(routes) <= set(ROUTES):
        raise KnowledgeError(f"products.json {name}: routes must be IV and/or SC")
    excipients = set(raw.get("excipients") or ()) | set(raw.get("excipients_unverified") or ())
    if not excipients <= vocabulary:
        raise KnowledgeError(f"products.json {name}: unknown excipients {excipients - vocabulary}")
    source = raw.get("source") or {}
    if not str(source.get("url", "")).startswith("https://") or not source.get("label"):
        raise KnowledgeError(f"products.json {name}: needs a source label and https URL")
    if not raw.get("match_names"):
        raise KnowledgeError(f"products.json {name}: needs match_names")
    iga = raw.get("iga") or {}
    return Product(
        id=raw["id"],
        brand=raw["brand"],
        routes=routes,
        excipients=frozenset(raw.get("excipients") or ()),
        excipients_unverified=frozenset(raw.get("excipients_unverified") or ()),
        iga_text=str(iga.get("text") or "unknown")
        + (" (UNVERIFIED)" if iga.get("unverified") else ""),
        iga_max_ug_per_ml=iga.get("max_ug_per_ml"),
        low_iga=bool(raw.get("low_iga")),
        rate_cap_at_risk_mg_kg_min=raw.get("rate_cap_at_risk_mg_kg_min"),
        codings=tuple(
            Code(c["system"], c["code"], c.get("display")) for c in raw.get("codings") or ()
        ),
        match_names=tuple(raw["match_names"]),
        discontinued=bool(raw.get("discontinued")),
        family=bool(raw.get("family")),
        source_label=source["label"],
        source_url=source["url"],
        scig=_scig(raw.get("scig"), name),
    )


def _scig(raw: dict[str, Any] | None, name: str) -> ScigFacts | None:
    if not raw:
        return None
    source = raw.get("source") or {}
    if not str(source.get("url", "")).startswith("https://"):
        raise KnowledgeError(f"products.json {name}: the scig block needs a source https URL")
    limits = tuple(
        SiteLimit(
            group=str(limit.get("group", "")),
            min_age=limit.get("min_age_years"),
            max_age=limit.get("max_age_years"),
            min_weight_kg=limit.get("min_weight_kg"),
            max_weight_kg=limit.get("max_weight_kg"),
            volume_ml_per_site=limit.get("volume_ml_per_site"),
            rate_ml_per_h_per_site=limit.get("rate_ml_per_h_per_site"),
            max_sites=limit.get("max_sites"),
            unverified=bool(limit.get("unverified")),
            note=str(limit.get("note") or ""),
        )
        for limit in raw.get("site_limits") or ()
    )
    return ScigFacts(
        factor=raw.get("conversion_factor"),
        factor_unverified=bool(raw.get("conversion_unverified")),
        same_dose_and_interval=bool(raw.get("same_dose_and_interval")),
        note=str(raw.get("conversion_note") or ""),
        site_limits=limits,
        source_label=str(source.get("label") or ""),
        source_url=str(source["url"]),
    )


def load_catalogue(path: Path) -> ProductCatalogue:
    raw = read_json(path)
    vocabulary = set(raw.get("excipient_vocabulary") or ())
    products = tuple(_product(entry, vocabulary) for entry in raw.get("products") or ())
    names = [name.lower() for product in products for name in product.match_names]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise KnowledgeError(f"products.json: match_names used twice: {sorted(duplicates)}")
    generic = raw.get("generic") or {}
    exclusions = raw.get("exclusions") or {}
    return ProductCatalogue(
        products=products,
        generic_codings=tuple(
            GenericCoding(
                Code(c["system"], c["code"], c.get("display")),
                c.get("route"),
                bool(c.get("unverified")),
            )
            for c in generic.get("codings") or ()
        ),
        generic_words=tuple(generic.get("match_words") or ()),
        exclusion_atc_prefixes=tuple(exclusions.get("atc_prefixes") or ()),
        exclusion_words=tuple(exclusions.get("match_words") or ()),
    )
