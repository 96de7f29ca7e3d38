"""What every rule receives and returns. Rules are pure: no Flask, no requests, no clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cds_service.cards import Action, Indicator
from hooks.knowledge_base import KnowledgeBase
from hooks.orders import IgHistory, IgOrder
from hooks.record import ConditionEntry, MedicationEntry, PatientRecord
from hooks.settings import Thresholds
from hooks.terminology import ConceptSet, Match


@dataclass(frozen=True)
class RuleInput:
    record: PatientRecord
    order: IgOrder
    kb: KnowledgeBase
    thresholds: Thresholds
    draft_orders: tuple[dict[str, Any], ...] = ()  # every order of the ordering session
    ig_history: tuple[IgHistory, ...] = ()  # the patient's earlier immune globulin orders


@dataclass(frozen=True)
class ViewInput:
    """What the patient-view rules read: the record and the patient's immune globulin orders."""

    record: PatientRecord
    kb: KnowledgeBase
    thresholds: Thresholds
    ig_history: tuple[IgHistory, ...] = ()

    @property
    def current_ig(self) -> tuple[IgHistory, ...]:
        return tuple(h for h in self.ig_history if h.status in ("active", "on-hold"))


@dataclass(frozen=True)
class ProposedSuggestion:
    label: str
    actions: tuple[Action, ...]
    recommended: bool = False


@dataclass(frozen=True)
class Finding:
    topic: str
    indicator: Indicator
    summary: str
    evidence: tuple[str, ...]
    recommendation: str
    suggestions: tuple[ProposedSuggestion, ...] = ()
    selection: Literal["at-most-one", "any"] = "any"
    notes: tuple[str, ...] = ()
    source: tuple[str, str] | None = None  # (label, url) when the card's source is not the topic's


Rule = Callable[[RuleInput], Finding | None]


def conditions_in(
    record: PatientRecord, concept_set: ConceptSet, *, active_only: bool
) -> list[tuple[ConditionEntry, Match]]:
    """Counting conditions (contract §2) that match ``concept_set``; history includes resolved."""
    found = []
    for condition in record.conditions:
        if active_only and not condition.active:
            continue
        matched = concept_set.match(condition.codes, [condition.label])
        if matched:
            found.append((condition, matched))
    return found


def medications_in(
    record: PatientRecord, concept_set: ConceptSet
) -> list[tuple[MedicationEntry, Match]]:
    """Current medications that match ``concept_set`` by code or by ingredient name."""
    found = []
    for medication in record.medications:
        matched = concept_set.match(medication.codes, [medication.label])
        if matched:
            found.append((medication, matched))
    return found
