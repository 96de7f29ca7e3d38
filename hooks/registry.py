"""The rules, found in ``hooks/rules/``, and everything derived from what they declare.

A rule module ends with ``RULE = ...`` or ``RULES = (...)``; nothing lists the modules by hand.
From the declarations come: the topics each hook can emit (and so the scenario tests' silent sets),
the value sets and thresholds the knowledge must hold, the prefetch templates (which keys, and the
codes of the Observation and Procedure queries), the discovery descriptions, and the topic table of
``docs/topics.md``. Cards are shown in the order of the topics in ``knowledge/topics.json``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType

from cds_service.service import PrefetchSpec
from hooks import rules as rules_package
from hooks.knowledge_base import KnowledgeBase
from hooks.rules.base import OrderRule, PatientRule, PlasmaExchangeRule, Rule

PATIENT = "{{context.patientId}}"


@dataclass(frozen=True)
class PrefetchKey:
    key: str
    resource_type: str
    template: str  # ``{codes}`` is filled with the codes the rules read
    essential: bool = False


PREFETCH_KEYS = (
    PrefetchKey("patient", "Patient", f"Patient/{PATIENT}", essential=True),
    PrefetchKey("conditions", "Condition", f"Condition?patient={PATIENT}", essential=True),
    PrefetchKey("observations", "Observation", f"Observation?patient={PATIENT}&code={{codes}}"),
    PrefetchKey("allergies", "AllergyIntolerance", f"AllergyIntolerance?patient={PATIENT}"),
    # Every status: completed immune globulin orders are the IVIG history that plasma exchange
    # sequencing and SCIG conversion need; current ones are filtered when the context is built.
    PrefetchKey("medicationRequests", "MedicationRequest", f"MedicationRequest?patient={PATIENT}"),
    PrefetchKey(
        "medicationStatements",
        "MedicationStatement",
        f"MedicationStatement?patient={PATIENT}&status=active",
    ),
    PrefetchKey("procedures", "Procedure", f"Procedure?patient={PATIENT}&code={{codes}}"),
)
ALWAYS = frozenset({"patient", "conditions"})  # essential: the context cannot be built without


def _rules_of(module: ModuleType) -> list[Rule]:
    found = getattr(module, "RULES", None) or ()
    single = getattr(module, "RULE", None)
    return [*found, *([single] if single is not None else [])]


def discover(package: ModuleType = rules_package) -> tuple[Rule, ...]:
    """Every rule declared by a module of ``package``, by module name."""
    found: list[Rule] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found += _rules_of(module)
    return tuple(found)


def _join(phrases: Iterable[str]) -> str:
    return "; ".join(dict.fromkeys(phrases))


@dataclass(frozen=True)
class Registry:
    rules: tuple[Rule, ...]

    def in_display_order(self, topic_order: Sequence[str]) -> Registry:
        """The rules sorted as their topics are listed in knowledge/topics.json."""
        position = {topic: index for index, topic in enumerate(topic_order)}
        return Registry(tuple(sorted(self.rules, key=lambda r: position.get(r.topic, 10**6))))

    def for_hook(self, hook: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if hook in rule.hooks)

    @cached_property
    def _by_hook(
        self,
    ) -> dict[
        str,
        tuple[tuple[OrderRule, ...], tuple[PlasmaExchangeRule, ...], tuple[PatientRule, ...]],
    ]:
        """Per hook, the rules of each kind: computed once, read on every call."""
        found = {}
        for hook in self.hooks():
            rules = self.for_hook(hook)
            found[hook] = (
                tuple(r for r in rules if isinstance(r, OrderRule)),
                tuple(r for r in rules if isinstance(r, PlasmaExchangeRule)),
                tuple(r for r in rules if isinstance(r, PatientRule)),
            )
        return found

    def order_rules(self, hook: str) -> tuple[OrderRule, ...]:
        return self._by_hook[hook][0] if hook in self._by_hook else ()

    def plasma_exchange_rules(self, hook: str) -> tuple[PlasmaExchangeRule, ...]:
        return self._by_hook[hook][1] if hook in self._by_hook else ()

    def patient_rules(self, hook: str) -> tuple[PatientRule, ...]:
        return self._by_hook[hook][2] if hook in self._by_hook else ()

    def topics(self, hook: str | None = None) -> tuple[str, ...]:
        """The topics a hook can emit (every hook's when None), in display order."""
        chosen = self.rules if hook is None else self.for_hook(hook)
        return tuple(dict.fromkeys(rule.topic for rule in chosen))

    def hooks(self) -> tuple[str, ...]:
        return tuple(sorted({hook for rule in self.rules for hook in rule.hooks}))

    def valuesets(self) -> set[str]:
        return {
            name
            for rule in self.rules
            for name in (*rule.reads.valuesets, *rule.reads.procedure_codes)
        }

    def thresholds(self) -> set[str]:
        return {name for rule in self.rules for name in rule.reads.thresholds}

    def observations(self, hook: str | None = None) -> set[str]:
        chosen = self.rules if hook is None else self.for_hook(hook)
        return {name for rule in chosen for name in rule.reads.observations}

    def prefetch(self, hook: str, kb: KnowledgeBase) -> tuple[PrefetchSpec, ...]:
        """The hook's prefetch templates: the keys its rules read, codes its rules read."""
        rules = self.for_hook(hook)
        read = ALWAYS | {key for rule in rules for key in rule.reads.prefetch}
        codes = {
            "Observation": kb.observation_codes(self.observations(hook)),
            "Procedure": sorted(
                {
                    code
                    for rule in rules
                    for name in rule.reads.procedure_codes
                    for code in kb.valueset(name).all_codes()
                }
            ),
        }
        specs = []
        for key in PREFETCH_KEYS:
            if key.key not in read:
                continue
            listed = ",".join(
                f"{system}|{code}" for system, code in codes.get(key.resource_type, ())
            )
            template = key.template.replace("{codes}", listed)
            readers = [r.checks for r in rules if key.key in r.reads.prefetch and not r.about_data]
            needed_for = _join(readers) if readers else "building the clinical context"
            specs.append(PrefetchSpec(key.key, template, needed_for, essential=key.essential))
        return tuple(specs)

    def description(self, hook: str) -> str:
        """The discovery description, from what the hook's rules check."""
        checks = _join(rule.checks for rule in self.for_hook(hook))
        if hook == "order-select":
            return f"When an immune globulin order is selected, checks: {checks}."
        if hook == "order-sign":
            return f"When immune globulin orders are signed, checks: {checks}."
        return f"On chart open: {checks}. Quiet otherwise."

    def usage_requirements(self, hook: str, kb: KnowledgeBase) -> str:
        types = [
            key.resource_type
            for key in PREFETCH_KEYS
            if key.key in {spec.key for spec in self.prefetch(hook, kb)}
        ]
        return (
            f"Needs read access to {', '.join(types[:-1])} and {types[-1]}, by prefetch or "
            "through fhirServer."
        )


REGISTRY = Registry(discover())
