"""The clinical engine: ``evaluate(context, knowledge, settings) -> findings``. Pure: no I/O, no
HTTP errors, no clock (the date is the context's; the time budget is asked of the caller). The
rule loop lives here and only here.

Order rules run once per immune globulin order in focus, plasma-exchange rules once per
plasma-exchange order in focus, patient rules once per call; findings come out in that order, and
within each in the display order of the settings' rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from hooks.context.model import ClinicalContext, IgOrder
from hooks.findings import Finding
from hooks.knowledge_base import KnowledgeBase, Thresholds
from hooks.registry import Registry
from hooks.rules.base import OrderInput, PatientInput, PlasmaExchangeInput

Input = TypeVar("Input", contravariant=True)


@dataclass(frozen=True)
class Settings:
    """What is in force at this site: the rules (in display order) and the thresholds."""

    rules: Registry
    thresholds: Thresholds


@dataclass(frozen=True)
class Evaluation:
    findings: tuple[Finding, ...]
    # The orders in focus (references) not checked: the checks' time budget ran out first.
    unchecked: tuple[str, ...] = ()


def evaluate(ctx: ClinicalContext, kb: KnowledgeBase, settings: Settings) -> tuple[Finding, ...]:
    return evaluate_within(ctx, kb, settings, _never).findings


def evaluate_within(
    ctx: ClinicalContext, kb: KnowledgeBase, settings: Settings, out_of_time: Callable[[], bool]
) -> Evaluation:
    """As ``evaluate``, asking ``out_of_time`` before each order: once it says yes, the orders
    left are not checked and are named (the caller says so on a card). The patient rules run
    in any case: they run once per call, however many orders there are."""
    hook, thresholds, rules = ctx.hook, settings.thresholds, settings.rules
    findings: list[Finding] = []
    unchecked: list[str] = []
    for order in ctx.ig_orders:
        if unchecked or out_of_time():
            unchecked.append(order.reference)
            continue
        findings += evaluate_order(ctx, order, kb, settings)
    for plex in ctx.plasma_exchange_orders:
        if unchecked or out_of_time():
            unchecked.append(plex.reference)
            continue
        findings += _run(
            rules.plasma_exchange_rules(hook), PlasmaExchangeInput(ctx, plex, kb, thresholds)
        )
    findings += _run(rules.patient_rules(hook), PatientInput(ctx, kb, thresholds))
    return Evaluation(tuple(findings), tuple(unchecked))


def _never() -> bool:
    return False


def evaluate_order(
    ctx: ClinicalContext, order: IgOrder, kb: KnowledgeBase, settings: Settings
) -> tuple[Finding, ...]:
    """The order rules' findings for one immune globulin order (the composer re-checks revised
    orders with it)."""
    order_input = OrderInput(ctx, order, kb, settings.thresholds)
    return tuple(
        replace(found, order=order.reference)
        for found in _run(settings.rules.order_rules(ctx.hook), order_input)
    )


def _run(rules: Iterable[_Checks[Input]], rule_input: Input) -> Iterator[Finding]:
    return (found for rule in rules if (found := rule.check(rule_input)) is not None)


class _Checks(Protocol[Input]):
    @property
    def check(self) -> Callable[[Input], Finding | None]: ...
