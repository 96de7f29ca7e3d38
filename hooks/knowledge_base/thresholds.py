"""The clinical numbers in force: ``knowledge/thresholds.json``, with the site's overrides.

The values and their sources are data; this class only gives them types, so rules read
``thresholds.thrombosis_age`` and mypy checks it. A site may override an entry marked ``site`` with
``IVIG_CDS_<NAME>`` (or the test mapping key ``<NAME>``); an override of a fixed entry is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds_service.config import ENV_PREFIX, ConfigError
from cds_service.errors import KnowledgeError
from hooks.knowledge_base.schema import Threshold

NON_NEGATIVE_SITE = (
    "window_weight_days",
    "window_renal_days",
    "recent_ivig_days",
    "plex_after_ivig_days",
    "thrombosis_lookback_days",
    "window_renal_acute_days",
    "window_hemoglobin_days",
    "rate_titration_gap_days",
    "hydration_protocol_volume_ml",
    "hydration_protocol_rate_ml_h",
    "anti_cd20_lookback_days",
    "hbv_passive_anti_hbc_days",
)


@dataclass(frozen=True)
class Thresholds:
    thrombosis_age: int
    renal_age: int
    creatinine_mg_dl: float
    egfr: float
    triglycerides_mg_dl: float
    bmi_obese: float
    window_weight_days: int
    window_renal_days: int
    window_igg_days: int
    window_igg_scig_start_days: int
    scig_start_days: int
    igg_trough_min_mg_dl: float
    igg_low_mg_dl: float
    replacement_min_infections: int
    replacement_lookback_days: int
    anti_cd20_lookback_days: int
    hbv_passive_anti_hbc_days: int
    entecavir_min_age_years: int
    entecavir_crcl_full_dose: float
    entecavir_crcl_moderate: float
    entecavir_crcl_severe: float
    cockcroft_gault_age_base: float
    cockcroft_gault_divisor: float
    cockcroft_gault_female_factor: float
    recent_ivig_days: int
    scig_default_interval_weeks: float
    plex_after_ivig_days: int
    gbs_second_course_min_days: int
    gbs_second_course_max_days: int
    gbs_second_course_min_g_per_kg: float
    iga_deficient_below_mg_dl: float
    iga_min_age_years: int
    sorbitol_hfi_age_years: int
    high_dose_g_per_kg: float
    high_daily_dose_g_per_kg: float
    thrombosis_lookback_days: int
    first_infusion_days: int
    rate_titration_gap_days: int
    volume_sensitive_age_years: int
    volume_ml_per_kg_day: float
    volume_ml_per_day: float
    hydration_protocol_volume_ml: float
    hydration_protocol_rate_ml_h: float
    pregnancy_days: int
    postpartum_days: int
    egfr_severe: float
    creatinine_rise_mg_dl: float
    creatinine_rise_days: int
    creatinine_rise_ratio: float
    creatinine_baseline_days: int
    window_renal_acute_days: int
    window_hemoglobin_days: int
    dose_tolerance: float
    implausible_day_g_per_kg: float
    implausible_course_g_per_kg: float
    gross_day_g_per_kg: float
    gross_course_g_per_kg: float
    kawasaki_repeat_hours: float
    weight_min_kg: float
    weight_max_kg: float
    dose_rounding_g: float
    dosing_weight_min_height_cm: float
    dosing_weight_min_age_years: int
    adjusted_weight_factor: float
    ibw_base_male_kg: float
    ibw_base_female_kg: float
    ibw_kg_per_inch: float


FIELDS = {field.name: field.type for field in dataclasses.fields(Thresholds)}


def _typed(name: str, value: Any) -> int | float:
    kind = FIELDS[name]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}: expected a number, got {value!r}") from None
    if kind == "int":
        if number != int(number):
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}: expected a whole number, got {value!r}")
        return int(number)
    return number


def thresholds_in_force(
    entries: Mapping[str, Threshold], env: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[Thresholds, dict[str, int | float]]:
    """The thresholds of the file, with site overrides applied; and the overrides that differ."""
    missing, unknown = sorted(FIELDS.keys() - entries.keys()), sorted(entries.keys() - FIELDS)
    if missing or unknown:
        raise KnowledgeError(
            f"thresholds.json: thresholds missing {missing}, unknown {unknown} "
            "(each must match a field of hooks.knowledge_base.thresholds.Thresholds)"
        )
    values = {name: _typed(name, entry.value) for name, entry in entries.items()}
    changed: dict[str, int | float] = {}
    for name, entry in entries.items():
        key = name.upper()
        given = overrides[key] if key in overrides else env.get(ENV_PREFIX + key)
        if given is None:
            continue
        if not entry.site:
            raise ConfigError(
                f"{ENV_PREFIX}{key}: {name} is fixed by its source ({entry.source.label}); "
                "only thresholds marked site in thresholds.json may be overridden"
            )
        value = _typed(name, given)
        if value != values[name]:
            changed[name] = value
        values[name] = value
    for name in NON_NEGATIVE_SITE:
        if values[name] < 0:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must not be negative")
    return Thresholds(**values), changed  # type: ignore[arg-type]  # typed field by field above


def overrides_digest(changed: Mapping[str, int | float]) -> str:
    """A short digest of the site overrides, part of the knowledge version."""
    text = json.dumps(dict(sorted(changed.items())), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]
