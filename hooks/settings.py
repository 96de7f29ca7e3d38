"""Clinical thresholds marked (config) in the card contract; env ``IVIG_CDS_<NAME>``."""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.config import ConfigError


@dataclass(frozen=True)
class Thresholds:
    thrombosis_age: int = 65  # thrombosis risk at age >= this ("advanced age" in the labels)
    renal_age: int = 65  # renal risk at age > this (the IGIV labels' own words: "age > 65")
    creatinine_mg_dl: float = 1.3  # renal insufficiency when the latest creatinine is above this
    egfr: float = 60.0  # renal insufficiency when the latest eGFR is below this
    triglycerides_mg_dl: float = 1000.0  # hyperviscosity when the latest triglycerides >= this
    bmi_obese: float = 30.0  # cardiovascular risk factor when BMI >= this
    window_weight_days: int = 30
    window_renal_days: int = 30
    window_igg_days: int = 90  # IgG trough due after this long on immune globulin
    window_igg_scig_start_days: int = 14  # ... and after this long in the first 8 weeks of SCIG
    igg_low_mg_dl: float = 400.0  # hypogammaglobulinemia for replacement candidacy
    recent_ivig_days: int = 90  # "recent IVIG" for SCIG conversion
    plex_after_ivig_days: int = 14  # plasma exchange this soon after IVIG washes it out
    dose_rounding_g: float = 5.0  # adjusted-weight doses rounded to this many grams (0: none)

    def validate(self) -> None:
        for name in (
            "window_weight_days",
            "window_renal_days",
            "recent_ivig_days",
            "plex_after_ivig_days",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"IVIG_CDS_{name.upper()} must not be negative")
