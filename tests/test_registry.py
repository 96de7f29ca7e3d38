"""The rule registry: rules declare themselves, and every derived list comes from the declarations.

Derived, never kept by hand: the topics each hook emits (and so the scenario tests' silent sets),
the value sets and thresholds the knowledge must hold, the prefetch templates and their code lists,
the discovery descriptions, and the topic table of docs/topics.md. A declaration must also be
true: every scenario runs each rule against a context that records what the rule reads, and what
it reads must be what it declared (otherwise a fully prefetched call could lack data it needs).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, ROOT, full_prefetch, hook_request, order_for, scenario_index
from conftest import scenario_resources as order_scenario_resources
from contexts import KB, SETTINGS, THRESHOLDS
from flask.testing import FlaskClient

from cds_service.errors import KnowledgeError
from hooks.context import build_context, focus_of, read_session
from hooks.context.model import ClinicalContext
from hooks.knowledge_base import load_knowledge
from hooks.knowledge_base.thresholds import FIELDS
from hooks.registry import ALWAYS, REGISTRY, discover
from hooks.rules.base import (
    OrderInput,
    OrderRule,
    PatientInput,
    PatientRule,
    PlasmaExchangeInput,
    PlasmaExchangeRule,
    Rule,
)

RULES_DIR = ROOT / "hooks" / "rules"
TODAY = date(2026, 6, 15)
VIEW_INDEX = json.loads((FIXTURES / "patient-view" / "index.json").read_text())["scenarios"]


def test_every_rule_module_is_found_and_nothing_lists_them_by_hand() -> None:
    declaring = sorted(
        path.stem
        for path in RULES_DIR.glob("*.py")
        if "\nRULE = " in path.read_text() or "\nRULES = " in path.read_text()
    )
    assert len(declaring) >= 15
    found = {rule.check.__module__.rsplit(".", 1)[-1] for rule in discover()}
    assert found == set(declaring)
    package = ast.parse((RULES_DIR / "__init__.py").read_text())
    assert not [n for n in ast.walk(package) if isinstance(n, ast.Import | ast.ImportFrom)], (
        "hooks/rules/__init__.py imports no rule module: the registry finds them"
    )


def test_each_topic_has_its_knowledge_and_the_display_order_is_the_topics_file() -> None:
    assert set(REGISTRY.topics()) <= set(KB.topics)
    ordered = SETTINGS.rules.topics()
    assert list(ordered) == [t for t in KB.topics if t in ordered]


def test_the_knowledge_check_comes_from_the_declarations(tmp_path: Path) -> None:
    assert REGISTRY.valuesets() <= set(KB.valuesets)
    assert REGISTRY.thresholds() <= set(FIELDS)
    with pytest.raises(KnowledgeError, match="no-such-value-set"):
        load_knowledge(required_valuesets={"no-such-value-set"})
    with pytest.raises(KnowledgeError, match="a-new-topic"):
        load_knowledge(required_topics={"a-new-topic"})


def test_discovery_prefetch_and_descriptions_are_derived(client: FlaskClient) -> None:
    services = {s["hook"]: s for s in client.get("/cds-services").get_json()["services"]}
    for hook, service in services.items():
        specs = SETTINGS.rules.prefetch(hook, KB)
        assert service["prefetch"] == {spec.key: spec.template for spec in specs}
        assert service["description"] == SETTINGS.rules.description(hook)
        for rule in SETTINGS.rules.for_hook(hook):
            assert rule.checks in service["description"]
        read = ALWAYS | {key for r in SETTINGS.rules.for_hook(hook) for key in r.reads.prefetch}
        assert set(service["prefetch"]) == read
    observations = services["order-select"]["prefetch"]["observations"]
    listed = set(observations.partition("&code=")[2].split(","))
    wanted = {f"{s}|{c}" for s, c in KB.observation_codes(REGISTRY.observations("order-select"))}
    assert listed == wanted and listed, "the Observation query names exactly the codes read"
    assert "5195-3" not in observations, "HBsAg is read by patient-view only"
    assert "5195-3" in services["patient-view"]["prefetch"]["observations"]


def test_a_new_rule_is_one_module_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule module dropped into a rules package is found, with no list to edit."""
    package = tmp_path / "more_rules"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "extra.py").write_text(
        "from hooks.rules.base import ORDER_HOOKS, OrderRule, Reads\n"
        "RULE = OrderRule(topic='extra-topic', hooks=ORDER_HOOKS, checks='an extra check',\n"
        "    fires_when='never', indicator='`info`', suggests='none',\n"
        "    reads=Reads(prefetch=frozenset({'observations'}), observations=('serum-igg',)),\n"
        "    check=lambda inp: None)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import more_rules  # type: ignore[import-not-found]

    from hooks.registry import Registry

    registry = Registry((*REGISTRY.rules, *discover(more_rules)))
    assert "extra-topic" in registry.topics("order-select")
    assert "an extra check" in registry.description("order-sign")
    template = {s.key: s.template for s in registry.prefetch("order-select", KB)}["observations"]
    assert "2465-3" in template, "the new rule's observation is prefetched"
    with pytest.raises(KnowledgeError, match="extra-topic"):
        load_knowledge(required_topics=registry.topics())


# --- declarations are true ------------------------------------------------------------------


class Reads:
    def __init__(self) -> None:
        self.valuesets: set[str] = set()
        self.observations: set[str] = set()
        self.thresholds: set[str] = set()
        self.keys: set[str] = set()


# Which prefetch keys a context attribute comes from.
ATTRIBUTE_KEYS = {
    "conditions": {"conditions"},
    "refuted_conditions": {"conditions"},
    "medications": {"medicationRequests", "medicationStatements"},
    "allergies": {"allergies"},
    "procedures": {"procedures"},
    "ig_history": {"medicationRequests", "medicationStatements"},
    "past_medications": {"medicationRequests", "medicationStatements"},
    "current_ig": {"medicationRequests", "medicationStatements"},
    "unusable": {"observations"},
    "patient": {"patient"},
    "age": {"patient"},
}


class RecordingContext:
    """A ClinicalContext that notes what is read of it."""

    def __init__(self, ctx: ClinicalContext, reads: Reads) -> None:
        self._ctx, self._reads = ctx, reads

    def __getattr__(self, name: str) -> Any:
        self._reads.keys |= ATTRIBUTE_KEYS.get(name, set())
        return getattr(self._ctx, name)

    def latest(self, concept: str) -> Any:
        self._reads.observations.add(concept)
        self._reads.keys.add("observations")
        return self._ctx.latest(concept)

    def latest_within(self, concept: str, days: int) -> Any:
        self._reads.observations.add(concept)
        self._reads.keys.add("observations")
        return self._ctx.latest_within(concept, days)

    def match(self, item: Any, concept_set: Any) -> Any:
        self._reads.valuesets.add(concept_set.id)
        return self._ctx.match(item, concept_set)

    def conditions_in(self, concept_set: Any, *, active_only: bool) -> Any:
        self._reads.valuesets.add(concept_set.id)
        self._reads.keys.add("conditions")
        return self._ctx.conditions_in(concept_set, active_only=active_only)

    def refuted_in(self, concept_set: Any) -> Any:
        self._reads.valuesets.add(concept_set.id)
        self._reads.keys.add("conditions")
        return self._ctx.refuted_in(concept_set)

    def medications_in(self, concept_set: Any) -> Any:
        self._reads.valuesets.add(concept_set.id)
        self._reads.keys |= ATTRIBUTE_KEYS["medications"]
        return self._ctx.medications_in(concept_set)

    def allergies_in(self, concept_set: Any) -> Any:
        self._reads.valuesets.add(concept_set.id)
        self._reads.keys.add("allergies")
        return self._ctx.allergies_in(concept_set)


class RecordingValuesets(dict[str, Any]):
    def __init__(self, source: Any, reads: Reads) -> None:
        super().__init__(source)
        self._reads = reads

    def __getitem__(self, name: str) -> Any:
        self._reads.valuesets.add(name)
        return super().__getitem__(name)


class RecordingKnowledge:
    def __init__(self, reads: Reads) -> None:
        self._reads = reads
        self.valuesets = RecordingValuesets(KB.valuesets, reads)

    def __getattr__(self, name: str) -> Any:
        return getattr(KB, name)

    def valueset(self, name: str) -> Any:
        self._reads.valuesets.add(name)
        return KB.valueset(name)


class RecordingThresholds:
    def __init__(self, reads: Reads) -> None:
        self._reads = reads

    def __getattr__(self, name: str) -> Any:
        self._reads.thresholds.add(name)
        return getattr(THRESHOLDS, name)


KNOWLEDGE_VALUESETS = {
    "excipient-rules.json": {r.valueset for r in KB.excipient_rules},
    "dose-ranges.json": {r.valueset for r in KB.dose_ranges},
    "indication-guidance.json": {g.valueset for g in KB.guidance},
}


def knowledge_named_valuesets(rule: Rule) -> set[str]:
    """Value sets a rule reads through the knowledge files it declares."""
    return {name for file in rule.reads.knowledge for name in KNOWLEDGE_VALUESETS[file]}


def contexts() -> Iterator[tuple[str, ClinicalContext]]:
    for scenario in scenario_index():
        resources = order_scenario_resources(scenario["name"])
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        names = scenario.get("orders") or [scenario["order"]]
        body = hook_request(
            "order-sign",
            patient["id"],
            [order_for(n, patient["id"]) for n in names],
            full_prefetch(resources),
        )
        yield scenario["name"], _context(body, "order-sign")
    for scenario in VIEW_INDEX:
        bundle = json.loads((FIXTURES / "patient-view" / f"{scenario['name']}.json").read_text())
        resources = [entry["resource"] for entry in bundle["entry"]]
        body = hook_request("patient-view", scenario["name"], [], full_prefetch(resources))
        yield scenario["name"], _context(body, "patient-view")


def _context(body: dict[str, Any], hook: str) -> ClinicalContext:
    from cds_service.fhir.client import bundle_resources

    session = read_session(hook, body["context"])
    prefetch = {
        key: bundle_resources(value) if value.get("resourceType") == "Bundle" else [value]
        for key, value in body["prefetch"].items()
    }
    return build_context(session, focus_of(session, {}, KB), prefetch, {}, KB, TODAY)


def recorded(rule: Rule, ctx: ClinicalContext) -> Iterator[Reads]:
    """What ``rule`` reads of ``ctx``, once per order (or once per call) it runs on."""
    if isinstance(rule, OrderRule):
        for order in ctx.ig_orders:
            reads = Reads()
            ctx_, kb, thresholds = _recording(ctx, reads)
            rule.check(OrderInput(ctx_, order, kb, thresholds))
            yield reads
    elif isinstance(rule, PlasmaExchangeRule):
        for plasma_exchange in ctx.plasma_exchange_orders:
            reads = Reads()
            ctx_, kb, thresholds = _recording(ctx, reads)
            rule.check(PlasmaExchangeInput(ctx_, plasma_exchange, kb, thresholds))
            yield reads
    elif isinstance(rule, PatientRule):
        reads = Reads()
        rule.check(PatientInput(*_recording(ctx, reads)))
        yield reads


def _recording(ctx: ClinicalContext, reads: Reads) -> tuple[Any, Any, Any]:
    """The context, knowledge and thresholds, each noting what is read of it into ``reads``."""
    return RecordingContext(ctx, reads), RecordingKnowledge(reads), RecordingThresholds(reads)


def test_every_rule_reads_only_what_it_declares() -> None:
    runs = 0
    for name, ctx in contexts():
        for rule in SETTINGS.rules.for_hook(ctx.hook):
            for reads in recorded(rule, ctx):
                runs += 1
                where = f"{rule.topic} ({rule.check.__module__}) on {name}"
                allowed = set(rule.reads.valuesets) | set(rule.reads.procedure_codes)
                assert reads.valuesets <= allowed | knowledge_named_valuesets(rule), where
                assert reads.observations <= set(rule.reads.observations), where
                assert reads.thresholds <= set(rule.reads.thresholds), where
                assert reads.keys <= rule.reads.prefetch | ALWAYS, where
    assert runs > 500
