"""Load the clinical knowledge in ``hooks/knowledge/`` once at start-up; refuse to start on errors.

Checks: every ValueSet parses as FHIR R4B, its id matches its file and canonical URL, every include
says where its codes came from, filters are ICD-10-CM/ATC ``is-a`` only; every value set a rule
reads exists; products have routes, known excipients, unique match names and a source URL; every
topic has a source and coded override reasons with a display.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir.resources.R4B.valueset import ValueSet
from pydantic import ValidationError

from cds_service.cards import Coding
from cds_service.errors import KnowledgeError
from hooks.terminology import ATC, ICD10CM, Code, ConceptSet, normalise_code, phrase_pattern

KNOWLEDGE_DIR = Path(__file__).parent / "knowledge"
CANONICAL_BASE = "https://ivig-cds.org/fhir"
EXT_SOURCE = f"{CANONICAL_BASE}/StructureDefinition/source"
EXT_UNVERIFIED = f"{CANONICAL_BASE}/StructureDefinition/unverified"
EXT_TEXT_MATCH = f"{CANONICAL_BASE}/StructureDefinition/text-match"
TEXT_ONLY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/text-only"
ROUTES = ("IV", "SC")


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


@dataclass(frozen=True)
class ObservationConcept:
    id: str
    concept_set: ConceptSet
    unit: str | None
    factors: dict[str, float]  # normalised unit -> multiply factor to the canonical unit
    coded: bool


@dataclass(frozen=True)
class Topic:
    code: str
    display: str
    source_label: str
    source_url: str
    product_label: bool
    override_reasons: tuple[Coding, ...]


@dataclass(frozen=True)
class KnowledgeBase:
    version: str
    valuesets: dict[str, ConceptSet]
    catalogue: ProductCatalogue
    observations: dict[str, ObservationConcept]
    topic_system: str
    topics: dict[str, Topic]
    route_codes: dict[tuple[str, str], str]  # (system, code) -> IV | SC
    route_phrases: dict[str, Any]  # IV | SC -> compiled pattern
    orderables: dict[str, dict[str, Any]]

    def valueset(self, valueset_id: str) -> ConceptSet:
        return self.valuesets[valueset_id]

    def observation_codes(self) -> list[Code]:
        """Every code of every observation concept, for the prefetch template."""
        codes: list[Code] = []
        for concept in self.observations.values():
            codes.extend(Code(system, code) for system, code in concept.concept_set.codes)
        return codes


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KnowledgeError(f"{path.name}: cannot be read as JSON ({exc})") from exc


def _extension(element: Any, url: str) -> str | None:
    for extension in getattr(element, "extension", None) or []:
        if extension.url == url:
            return str(extension.valueString)
    return None


def load_valueset(path: Path) -> ConceptSet:
    raw = _read_json(path)
    try:
        valueset = ValueSet.model_validate(raw)
    except ValidationError as exc:
        raise KnowledgeError(
            f"{path.name}: not a valid FHIR R4 ValueSet: {exc.errors()[0]}"
        ) from exc
    if valueset.id != path.stem or valueset.url != f"{CANONICAL_BASE}/ValueSet/{path.stem}":
        raise KnowledgeError(f"{path.name}: id and url must match the file name")
    if not valueset.date or not valueset.compose or not valueset.compose.include:
        raise KnowledgeError(f"{path.name}: needs a date and compose.include")
    codes: dict[tuple[str, str], bool] = {}
    prefixes: dict[str, list[tuple[str, bool]]] = {}
    for include in valueset.compose.include:
        if not _extension(include, EXT_SOURCE):
            raise KnowledgeError(f"{path.name}: an include of {include.system} names no source")
        include_unverified = _extension(include, EXT_UNVERIFIED) is not None
        for concept in include.concept or []:
            unverified = include_unverified or _extension(concept, EXT_UNVERIFIED) is not None
            codes[(include.system, normalise_code(include.system, concept.code))] = unverified
        for rule in include.filter or []:
            if include.system not in (ICD10CM, ATC) or rule.op != "is-a":
                raise KnowledgeError(f"{path.name}: only ICD-10-CM/ATC is-a filters are supported")
            unverified = include_unverified or _extension(rule, EXT_UNVERIFIED) is not None
            prefix = normalise_code(include.system, rule.value)
            prefixes.setdefault(include.system, []).append((prefix, unverified))
    phrases = [
        str(ext.valueString) for ext in valueset.extension or [] if ext.url == EXT_TEXT_MATCH
    ]
    if not codes and not prefixes and not phrases:
        raise KnowledgeError(f"{path.name}: holds no code, filter or text phrase")
    return ConceptSet(
        id=path.stem,
        url=str(valueset.url),
        title=str(valueset.title or valueset.name or path.stem),
        codes=codes,
        prefixes={system: tuple(found) for system, found in prefixes.items()},
        phrases=phrase_pattern(phrases),
    )


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
    )


def load_catalogue(path: Path) -> ProductCatalogue:
    raw = _read_json(path)
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


def _observations(raw: dict[str, Any], valuesets: dict[str, ConceptSet]) -> dict[str, Any]:
    concepts = {}
    for concept_id, spec in raw["concepts"].items():
        if spec["valueset"] not in valuesets:
            raise KnowledgeError(f"observations.json {concept_id}: no value set {spec['valueset']}")
        factors = {
            unit: (rule["multiply"] if "multiply" in rule else 1 / rule["divide"])
            for unit, rule in (spec.get("convert") or {}).items()
        }
        if not spec.get("coded") and (not spec.get("unit") or not factors):
            raise KnowledgeError(f"observations.json {concept_id}: needs a unit and conversions")
        concepts[concept_id] = ObservationConcept(
            concept_id,
            valuesets[spec["valueset"]],
            spec.get("unit"),
            factors,
            bool(spec.get("coded")),
        )
    return concepts


def _topics(raw: dict[str, Any]) -> dict[str, Topic]:
    reasons = raw["overrideReasons"]
    topics = {}
    for code, spec in raw["topics"].items():
        source = spec.get("source") or {}
        if not source.get("label") or not str(source.get("url", "")).startswith("https://"):
            raise KnowledgeError(f"topics.json {code}: needs a source label and https URL")
        unknown = [reason for reason in spec.get("overrideReasons", ()) if reason not in reasons]
        if unknown:
            raise KnowledgeError(f"topics.json {code}: unknown override reasons {unknown}")
        topics[code] = Topic(
            code=code,
            display=spec["display"],
            source_label=source["label"],
            source_url=source["url"],
            product_label=bool(spec.get("productLabel")),
            override_reasons=tuple(
                Coding(raw["overrideReasonSystem"], reason, reasons[reason])
                for reason in spec.get("overrideReasons", ())
            ),
        )
    return topics


def _orderables(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for name, spec in raw["orderables"].items():
        kind = spec.get("resourceType")
        if kind not in ("ServiceRequest", "MedicationRequest") or not spec.get("source"):
            raise KnowledgeError(f"orderables.json {name}: needs a resourceType and a source")
        if not (spec.get("code") or {}).get("text"):
            raise KnowledgeError(f"orderables.json {name}: needs code.text")
    return dict(raw["orderables"])


def load_knowledge(
    directory: Path = KNOWLEDGE_DIR,
    required_valuesets: Iterable[str] = (),
    required_topics: Iterable[str] = (),
) -> KnowledgeBase:
    """Load and validate every knowledge file; raise KnowledgeError on the first problem."""
    valuesets = {
        path.stem: load_valueset(path) for path in sorted((directory / "valuesets").glob("*.json"))
    }
    missing = sorted(set(required_valuesets) - valuesets.keys())
    if missing:
        raise KnowledgeError(f"rules read value sets that do not exist: {missing}")
    topics_raw = _read_json(directory / "topics.json")
    topics = _topics(topics_raw)
    missing = sorted(set(required_topics) - topics.keys())
    if missing:
        raise KnowledgeError(f"topics.json lacks topics the rules emit: {missing}")
    routes_raw = _read_json(directory / "routes.json")["routes"]
    return KnowledgeBase(
        version=str(topics_raw["version"]),
        valuesets=valuesets,
        catalogue=load_catalogue(directory / "products.json"),
        observations=_observations(_read_json(directory / "observations.json"), valuesets),
        topic_system=topics_raw["topicSystem"],
        topics=topics,
        route_codes={
            (code["system"], code["code"]): route
            for route, spec in routes_raw.items()
            for code in spec["codes"]
        },
        route_phrases={
            route: phrase_pattern(spec["phrases"]) for route, spec in routes_raw.items()
        },
        orderables=_orderables(_read_json(directory / "orderables.json")),
    )
