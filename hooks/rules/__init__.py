"""The order-hook rules, in the order their cards are shown (most severe topics first)."""

from __future__ import annotations

from hooks.rules import (
    data_incomplete,
    dose_check,
    dosing_weight,
    excipients,
    glucose_meter,
    guidance,
    hemolysis,
    hypersensitivity,
    iga_deficiency,
    meningitis,
    missing_data,
    plasma_exchange,
    renal,
    scig,
    thrombosis,
)
from hooks.rules.base import Finding, Rule, RuleInput

_MODULES = (
    hypersensitivity,
    iga_deficiency,
    excipients,
    plasma_exchange,
    thrombosis,
    renal,
    hemolysis,
    dose_check,
    glucose_meter,
    missing_data,
    dosing_weight,
    meningitis,
    scig,
    guidance,
    data_incomplete,
)
ORDER_RULES: tuple[Rule, ...] = tuple(module.check for module in _MODULES)
ORDER_TOPICS = tuple(module.TOPIC for module in _MODULES)

# Value sets named in code; those named in knowledge files are checked by the loader.
VALUESETS_READ = tuple(
    sorted(
        {
            *hypersensitivity.VALUESETS,
            *iga_deficiency.VALUESETS,
            *thrombosis.VALUESETS,
            *renal.VALUESETS,
            "current-smoker-answers",
            "diabetes",
            "migraine",
            "plasma-exchange",
        }
    )
)

__all__ = ["ORDER_RULES", "ORDER_TOPICS", "VALUESETS_READ", "Finding", "Rule", "RuleInput"]
