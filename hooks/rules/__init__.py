"""The order-hook rules, in the order their cards are shown (most severe topics first)."""

from __future__ import annotations

from hooks.rules import (
    data_incomplete,
    hypersensitivity,
    iga_deficiency,
    missing_data,
    renal,
    thrombosis,
)
from hooks.rules.base import Finding, Rule, RuleInput

ORDER_RULES: tuple[Rule, ...] = (
    hypersensitivity.check,
    iga_deficiency.check,
    thrombosis.check,
    renal.check,
    missing_data.check,
    data_incomplete.check,
)

ORDER_TOPICS = tuple(
    module.TOPIC
    for module in (
        hypersensitivity,
        iga_deficiency,
        thrombosis,
        renal,
        missing_data,
        data_incomplete,
    )
)

VALUESETS_READ = tuple(
    sorted(
        {
            *hypersensitivity.VALUESETS,
            *iga_deficiency.VALUESETS,
            *thrombosis.VALUESETS,
            *renal.VALUESETS,
        }
    )
)

__all__ = ["ORDER_RULES", "ORDER_TOPICS", "VALUESETS_READ", "Finding", "Rule", "RuleInput"]
