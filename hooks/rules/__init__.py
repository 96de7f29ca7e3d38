"""The order-hook rules, in the order their cards are shown (most severe topics first)."""

from __future__ import annotations

from hooks.rules import (
    data_incomplete,
    dose_check,
    dosing_weight,
    excipients,
    glucose_meter,
    guidance,
    hbv,
    hemolysis,
    hypersensitivity,
    iga_deficiency,
    meningitis,
    missing_data,
    monitoring,
    plasma_exchange,
    renal,
    replacement,
    scig,
    thrombosis,
)
from hooks.rules.base import Finding, Rule, RuleInput, ViewInput

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

# patient-view: warnings first; quiet unless something is actionable.
VIEW_RULES = (
    hbv.check_reactivation,
    hbv.check_screening,
    monitoring.check_igg_trough,
    monitoring.check_renal,
    replacement.check,
)
VIEW_TOPICS = (
    hbv.REACTIVATION,
    hbv.SCREENING,
    monitoring.IGG_TOPIC,
    monitoring.RENAL_TOPIC,
    replacement.TOPIC,
)

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
            "positive-serology-answers",
            "anti-cd20-medications",
            "hbv-antivirals",
            "chronic-hepatitis-b",
            "hypogammaglobulinemia",
            "primary-immunodeficiency",
            "encapsulated-bacterial-infections",
        }
    )
)

__all__ = [
    "ORDER_RULES",
    "ORDER_TOPICS",
    "VALUESETS_READ",
    "VIEW_RULES",
    "VIEW_TOPICS",
    "Finding",
    "Rule",
    "RuleInput",
    "ViewInput",
]
