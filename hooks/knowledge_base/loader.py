"""Load every knowledge file, check them against each other, and build the KnowledgeBase."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cds_service.errors import KnowledgeError
from hooks.catalogue import Catalogue
from hooks.knowledge_base.files import read_model
from hooks.knowledge_base.schema import (
    CardGroupsFile,
    DoseRange,
    DoseRangesFile,
    ExcipientRule,
    ExcipientRulesFile,
    Guidance,
    GuidanceFile,
    ObservationConcept,
    ObservationsFile,
    Orderable,
    OrderablesFile,
    ProductsFile,
    RoutesFile,
    Threshold,
    ThresholdsFile,
    Topic,
    TopicsFile,
    YoungChildRule,
)
from hooks.knowledge_base.thresholds import Thresholds, overrides_digest, thresholds_in_force
from hooks.knowledge_base.valuesets import load_valuesets
from hooks.terminology import (
    Code,
    ConceptSet,
    MembershipIndex,
    normalise_code,
    phrase_pattern,
)

KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"


@dataclass(frozen=True)
class KnowledgeBase:
    version: str  # file version + content hash
    valuesets: Mapping[str, ConceptSet]
    catalogue: Catalogue
    observations: Mapping[str, ObservationConcept]
    observation_index: Mapping[tuple[str, str], str]  # (system, code) -> observation concept
    unit_factors: Mapping[str, Mapping[str, float]]  # concept -> normalised unit -> factor
    topic_system: str
    override_reason_system: str
    override_reasons: Mapping[str, str]
    topics: Mapping[str, Topic]
    card_groups: CardGroupsFile
    route_codes: Mapping[tuple[str, str], str]  # (system, code) -> IV | SC
    route_phrases: Mapping[str, re.Pattern[str]]  # IV | SC -> pattern
    orderables: Mapping[str, Orderable]
    excipient_rules: tuple[ExcipientRule, ...]
    young_child_rules: tuple[YoungChildRule, ...]
    dose_ranges: tuple[DoseRange, ...]
    guidance: tuple[Guidance, ...]
    threshold_entries: Mapping[str, Threshold]  # the file's values; see thresholds_for_site
    membership: MembershipIndex  # which value sets a record item belongs to, in one pass
    # R4B validation of suggested resources, per shape (hooks.card_builder): a cache, no knowledge.
    created_checks: dict[tuple[str, str, bool], str | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def valueset(self, valueset_id: str) -> ConceptSet:
        return self.valuesets[valueset_id]

    def observation_concept(self, codes: Iterable[Code]) -> tuple[str, Code] | None:
        """The observation concept a coded Observation is, and the code that says so."""
        for code in codes:
            concept = self.observation_index.get(
                (code.system, normalise_code(code.system, code.code))
            )
            if concept is not None:
                return concept, code
        return None

    def observation_codes(self, concepts: Iterable[str]) -> list[tuple[str, str]]:
        """The codes of these observation concepts, for a prefetch template's code list."""
        return sorted(
            {code for c in concepts for code in self.valuesets[self.observations[c].valueset].codes}
        )


def content_hash(directory: Path) -> str:
    """A short hash of every knowledge file: any edit gives a new knowledge version."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.json")):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _require(found: Iterable[str], known: Mapping[str, Any], what: str) -> None:
    missing = sorted(set(found) - known.keys())
    if missing:
        raise KnowledgeError(f"{what} that do not exist: {missing}")


def _check_products(products: ProductsFile) -> None:
    for product in products.products:
        unknown = product.possible_excipients - products.excipient_vocabulary
        if unknown:
            raise KnowledgeError(
                f"products.json products[{product.id}].excipients: unknown excipients "
                f"{sorted(unknown)} (not in excipient_vocabulary)"
            )
    names = [(name.lower(), p.id) for p in products.products for name in p.match_names]
    seen: dict[str, str] = {}
    for name, product_id in names:
        if name in seen:
            raise KnowledgeError(
                f"products.json products[{product_id}].match_names: {name!r} is also a match "
                f"name of {seen[name]}"
            )
        seen[name] = product_id
    ids = {p.id for p in products.products}
    for product in products.products:
        _require(product.members, dict.fromkeys(ids), f"products.json {product.id}: members")


def _check_card_groups(groups: CardGroupsFile, topics: TopicsFile) -> None:
    codes = {group.code for group in groups.groups}
    for topic, by_indicator in groups.topics.items():
        unknown = sorted(set(by_indicator.values()) - codes)
        if unknown or "default" not in by_indicator:
            raise KnowledgeError(
                f"card-groups.json topics.{topic}: needs a 'default' and known groups ({unknown})"
            )
    missing = sorted(topics.topics.keys() - groups.topics.keys())
    if missing:
        raise KnowledgeError(f"card-groups.json lacks topics: {missing}")


def _check_topics(topics: TopicsFile, required: Iterable[str]) -> None:
    for code, topic in topics.topics.items():
        unknown = [r for r in topic.overrideReasons if r not in topics.overrideReasons]
        if unknown:
            raise KnowledgeError(f"topics.json topics.{code}: unknown override reasons {unknown}")
    missing = sorted(set(required) - topics.topics.keys())
    if missing:
        raise KnowledgeError(f"topics.json lacks topics the rules emit: {missing}")


def _observations(
    file: ObservationsFile, valuesets: Mapping[str, ConceptSet]
) -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for concept_id, concept in file.concepts.items():
        if concept.valueset not in valuesets:
            raise KnowledgeError(
                f"observations.json concepts.{concept_id}.valueset: no value set {concept.valueset}"
            )
        if not concept.coded and (not concept.unit or not concept.convert):
            raise KnowledgeError(
                f"observations.json concepts.{concept_id}: needs a unit and conversions"
            )
        for key in valuesets[concept.valueset].codes:
            index.setdefault(key, concept_id)
    return index


def load_knowledge(
    directory: Path = KNOWLEDGE_DIR,
    required_valuesets: Iterable[str] = (),
    required_topics: Iterable[str] = (),
) -> KnowledgeBase:
    """Load and validate every knowledge file; raise KnowledgeError on the first problem."""
    valuesets = load_valuesets(directory / "valuesets")
    _require(required_valuesets, valuesets, "rules read value sets")
    topics = read_model(directory / "topics.json", TopicsFile)
    _check_topics(topics, required_topics)
    card_groups = read_model(directory / "card-groups.json", CardGroupsFile)
    _check_card_groups(card_groups, topics)
    products = read_model(directory / "products.json", ProductsFile)
    _check_products(products)
    observations = read_model(directory / "observations.json", ObservationsFile)
    index = _observations(observations, valuesets)
    routes = read_model(directory / "routes.json", RoutesFile)
    orderables = read_model(directory / "orderables.json", OrderablesFile)
    for name, orderable in orderables.orderables.items():
        if not orderable.code.text:
            raise KnowledgeError(f"orderables.json orderables.{name}.code.text: required")
    excipients = read_model(directory / "excipient-rules.json", ExcipientRulesFile)
    excipient_names = [r.excipient for r in excipients.rules]
    for name in (*excipient_names, *(r.excipient for r in excipients.young_children)):
        if name not in products.excipient_vocabulary:
            raise KnowledgeError(
                f"excipient-rules.json {name}: unknown excipient (not in the vocabulary)"
            )
    dose_ranges = read_model(directory / "dose-ranges.json", DoseRangesFile)
    guidance = read_model(directory / "indication-guidance.json", GuidanceFile)
    named = [r.valueset for r in excipients.rules]
    named += [r.excluded for r in excipients.young_children]
    named += [r.valueset for r in dose_ranges.indications]
    named += [g.valueset for g in guidance.indications]
    _require(named, valuesets, "knowledge files name value sets")
    labelled = {rate.indication for product in products.products for rate in product.rates}
    for product in products.products:
        for label in product.route_labels:
            if label.route not in product.routes:
                raise KnowledgeError(
                    f"products.json {product.id}: route_labels names {label.route}, a route "
                    "the product is not labelled for"
                )
            labelled |= set(label.indications)
    for item in dose_ranges.indications:
        unknown = sorted(set(item.labelled_as) - labelled)
        if unknown:
            raise KnowledgeError(
                f"dose-ranges.json {item.id}: labelled_as names no product label indication "
                f"{unknown} (products.json rates)"
            )
        for regimen in item.regimens:
            if regimen.low_g_per_kg > regimen.high_g_per_kg:
                raise KnowledgeError(f"dose-ranges.json {item.id}: a regimen needs low <= high")
            if any(daily > regimen.high_g_per_kg for daily in regimen.daily_g_per_kg):
                raise KnowledgeError(
                    f"dose-ranges.json {item.id}: a daily dose above the regimen's high"
                )
    threshold_file = read_model(directory / "thresholds.json", ThresholdsFile)
    thresholds_in_force(threshold_file.thresholds, {}, {})  # every field typed and present
    return KnowledgeBase(
        version=f"{topics.version}+{content_hash(directory)}",
        valuesets=valuesets,
        catalogue=Catalogue(products),
        observations=observations.concepts,
        observation_index=index,
        unit_factors={cid: concept.factors() for cid, concept in observations.concepts.items()},
        topic_system=topics.topicSystem,
        override_reason_system=topics.overrideReasonSystem,
        override_reasons=topics.overrideReasons,
        topics=topics.topics,
        card_groups=card_groups,
        route_codes={
            (code.system, code.code): route
            for route, spec in routes.routes.items()
            for code in spec.codes
        },
        route_phrases={
            route: pattern
            for route, spec in routes.routes.items()
            if (pattern := phrase_pattern(spec.phrases)) is not None
        },
        orderables=orderables.orderables,
        excipient_rules=excipients.rules,
        young_child_rules=excipients.young_children,
        dose_ranges=dose_ranges.indications,
        guidance=guidance.indications,
        threshold_entries=threshold_file.thresholds,
        membership=MembershipIndex(valuesets.values()),
    )


def thresholds_for_site(
    kb: KnowledgeBase, env: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[Thresholds, str]:
    """The thresholds in force at this site, and the knowledge version that names them."""
    thresholds, changed = thresholds_in_force(kb.threshold_entries, env, overrides)
    version = kb.version + (f"+site-{overrides_digest(changed)}" if changed else "")
    return thresholds, version
