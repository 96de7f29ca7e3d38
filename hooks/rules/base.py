"""What a rule is: a pure check with a declaration of what it reads, and the inputs it receives.

Each rule module ends with ``RULE = OrderRule(...)`` (or ``PatientRule``, ``PlasmaExchangeRule``;
``RULES = (...)`` for a module with several). The registry (``hooks.registry``) finds them; from
their declarations it derives the prefetch templates, the discovery text, the knowledge check and
the topic table. Rules are pure: no Flask, no requests, no clock (the date is ``ctx.today``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from hooks.body_weight import recent_weight
from hooks.context.model import ClinicalContext, IgOrder, ObservationEntry, SessionOrder
from hooks.courses import Course, course_of
from hooks.dosing import Dose, UnreadableDose, read_dose, strength_of
from hooks.findings import Finding
from hooks.knowledge_base import KnowledgeBase, Thresholds

ORDER_HOOKS = frozenset({"order-select", "order-sign"})
PATIENT_VIEW = frozenset({"patient-view"})


@dataclass(frozen=True)
class OrderInput:
    """One immune globulin order in focus, with the context it is checked in."""

    ctx: ClinicalContext
    order: IgOrder
    kb: KnowledgeBase
    thresholds: Thresholds

    @cached_property
    def weight(self) -> ObservationEntry | None:
        """The latest plausible body weight within the recent window (``hooks.body_weight``)."""
        return recent_weight(self.ctx, self.thresholds)

    @cached_property
    def dose(self) -> Dose | UnreadableDose:
        return read_dose(self.order.order, self.weight, strength_of(self.order))

    @cached_property
    def course(self) -> Course:
        """The order's course (contract §7.4): computed once per call, from the context."""
        return course_of(self.ctx, self.order, self.kb, self.thresholds)


@dataclass(frozen=True)
class PlasmaExchangeInput:
    ctx: ClinicalContext
    order: SessionOrder
    kb: KnowledgeBase
    thresholds: Thresholds


@dataclass(frozen=True)
class PatientInput:
    ctx: ClinicalContext
    kb: KnowledgeBase
    thresholds: Thresholds


@dataclass(frozen=True)
class Reads:
    """What a rule reads: prefetch keys, value sets, observation concepts, thresholds."""

    prefetch: frozenset[str]
    valuesets: tuple[str, ...] = ()
    observations: tuple[str, ...] = ()
    procedure_codes: tuple[str, ...] = ()  # value sets whose codes the Procedure query names
    thresholds: tuple[str, ...] = ()
    # Knowledge files whose value sets it reads: excipient-rules.json, dose-ranges.json,
    # indication-guidance.json (the knowledge loader checks those value sets exist).
    knowledge: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RuleSpec:
    topic: str
    hooks: frozenset[str]
    checks: str  # a phrase for the discovery description: "the thrombosis boxed warning"
    fires_when: str  # for the topic table of the docs
    indicator: str
    suggests: str
    reads: Reads
    # It reports what could not be read rather than checking the patient: a key it reads is
    # not "needed for" it, so it is left out of the lists of checks a missing key affects.
    about_data: bool = False


@dataclass(frozen=True, kw_only=True)
class OrderRule(RuleSpec):
    """Runs once per immune globulin order in focus."""

    check: Callable[[OrderInput], Finding | None]


@dataclass(frozen=True, kw_only=True)
class PlasmaExchangeRule(RuleSpec):
    """Runs once per plasma-exchange order in focus."""

    check: Callable[[PlasmaExchangeInput], Finding | None]


@dataclass(frozen=True, kw_only=True)
class PatientRule(RuleSpec):
    """Runs once per call, on the patient."""

    check: Callable[[PatientInput], Finding | None]


Rule = OrderRule | PlasmaExchangeRule | PatientRule
