"""Load the clinical knowledge in ``hooks/knowledge/`` once at start-up; refuse to start on errors.

Checks: every ValueSet parses as FHIR R4B, its id matches its file and canonical URL, every include
says where its codes came from, filters are ICD-10-CM/ATC ``is-a`` only; every value set a rule
reads exists; products have routes, known excipients, unique match names and a source URL; every
topic has a source and coded override reasons with a display.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir.resources.R4B.valueset import ValueSet
from pydantic import ValidationError

from cds_service.cards import Coding
from cds_service.errors import KnowledgeError
from hooks.catalogue import ProductCatalogue, load_catalogue
from hooks.indications import DoseRange, Guidance, load_dose_ranges, load_guidance
from hooks.knowledge_files import read_json
from hooks.terminology import ATC, ICD10CM, Code, ConceptSet, normalise_code, phrase_pattern

KNOWLEDGE_DIR = Path(__file__).parent / "knowledge"
CANONICAL_BASE = "https://ivig-cds.org/fhir"
EXT_SOURCE = f"{CANONICAL_BASE}/StructureDefinition/source"
EXT_UNVERIFIED = f"{CANONICAL_BASE}/StructureDefinition/unverified"
EXT_TEXT_MATCH = f"{CANONICAL_BASE}/StructureDefinition/text-match"
TEXT_ONLY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/text-only"


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
class ExcipientRule:
    excipient: str
    valueset: str
    kind: str  # condition | allergy
    indicator: str
    finding: str
    basis: str
    source_label: str
    source_url: str


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
    excipient_rules: tuple[ExcipientRule, ...]
    dose_ranges: tuple[DoseRange, ...]
    dose_tolerance: float
    guidance: tuple[Guidance, ...]

    def valueset(self, valueset_id: str) -> ConceptSet:
        return self.valuesets[valueset_id]

    def observation_codes(self) -> list[Code]:
        """Every code of every observation concept, for the prefetch template."""
        codes: list[Code] = []
        for concept in self.observations.values():
            codes.extend(Code(system, code) for system, code in concept.concept_set.codes)
        return codes


def _extension(element: Any, url: str) -> str | None:
    for extension in getattr(element, "extension", None) or []:
        if extension.url == url:
            return str(extension.valueString)
    return None


def load_valueset(path: Path) -> ConceptSet:
    raw = read_json(path)
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


def _excipient_rules(
    raw: dict[str, Any], valuesets: dict[str, ConceptSet], vocabulary: set[str]
) -> tuple[ExcipientRule, ...]:
    rules = []
    for item in raw["rules"]:
        where = f"excipient-rules.json {item.get('excipient')}"
        if item.get("valueset") not in valuesets or item.get("excipient") not in vocabulary:
            raise KnowledgeError(f"{where}: unknown value set or excipient")
        if item.get("kind") not in ("condition", "allergy") or item.get("indicator") not in (
            "warning",
            "critical",
        ):
            raise KnowledgeError(f"{where}: kind condition|allergy, indicator warning|critical")
        source = item.get("source") or {}
        if not str(source.get("url", "")).startswith("https://"):
            raise KnowledgeError(f"{where}: needs a source https URL")
        rules.append(
            ExcipientRule(
                item["excipient"],
                item["valueset"],
                item["kind"],
                item["indicator"],
                item["finding"],
                item["basis"],
                source["label"],
                source["url"],
            )
        )
    return tuple(rules)


def content_hash(directory: Path) -> str:
    """A short hash of every knowledge file: any edit gives a new knowledge version."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.json")):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


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
    topics_raw = read_json(directory / "topics.json")
    topics = _topics(topics_raw)
    missing = sorted(set(required_topics) - topics.keys())
    if missing:
        raise KnowledgeError(f"topics.json lacks topics the rules emit: {missing}")
    routes_raw = read_json(directory / "routes.json")["routes"]
    vocabulary = set(read_json(directory / "products.json").get("excipient_vocabulary") or ())
    dose_ranges, tolerance = load_dose_ranges(directory / "dose-ranges.json", valuesets)
    return KnowledgeBase(
        version=f"{topics_raw['version']}+{content_hash(directory)}",
        valuesets=valuesets,
        catalogue=load_catalogue(directory / "products.json"),
        observations=_observations(read_json(directory / "observations.json"), valuesets),
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
        orderables=_orderables(read_json(directory / "orderables.json")),
        excipient_rules=_excipient_rules(
            read_json(directory / "excipient-rules.json"), valuesets, vocabulary
        ),
        dose_ranges=dose_ranges,
        dose_tolerance=tolerance,
        guidance=load_guidance(directory / "indication-guidance.json", valuesets),
    )
