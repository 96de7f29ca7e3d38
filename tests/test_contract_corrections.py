"""Card contract §8 (the clinical corrections) against what the service does.

Each correction of §8 is mapped to the topics that carry it and to the thresholds whose values the
contract states: a new correction in the contract without a line here fails, and so does a
threshold whose value no longer matches the figure the contract gives. The contract is in
``../shared`` (not shipped with the service): these tests skip, saying so, where it is absent.
"""

from __future__ import annotations

import re

import pytest
from conftest import SHARED

from hooks.knowledge_base import load_knowledge
from hooks.registry import REGISTRY

CONTRACT = SHARED / "card-contract.md"
KB = load_knowledge()

# correction (its bold lead in §8) -> (topics that carry it, {threshold: figure in the contract})
CORRECTIONS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "Dose reading": (
        ("dosing-weight", "dose-check"),
        {"dose_tolerance": "10%", "dosing_weight_min_height_cm": "152.4 cm"},
    ),
    "Implausible values": (
        ("implausible-dose", "missing-data"),
        {
            "implausible_day_g_per_kg": "2.2 g/kg",
            "implausible_course_g_per_kg": "3.3 g/kg",
            "kawasaki_repeat_hours": "36 h",
            "weight_min_kg": "0.3 kg",
            "weight_max_kg": "350 kg",
        },
    ),
    "Comparators": (("iga-deficiency", "data-incomplete"), {}),
    "Hypersensitivity": (("ig-hypersensitivity",), {}),
    "IgA": (("iga-deficiency",), {}),
    "Renal": (("renal-risk",), {}),
    "Thrombosis": (
        ("thrombosis-risk",),
        {"pregnancy_days": "42 weeks", "postpartum_days": "6 weeks"},
    ),
    "Sorbitol": (("excipient-contraindication",), {"sorbitol_hfi_age_years": "2 years"}),
    "Route": (("route-missing",), {}),
    "Plasma exchange": (("plasma-exchange-sequencing",), {"plex_after_ivig_days": "14 days"}),
    "Second GBS course": (
        ("gbs-second-course",),
        {
            "gbs_second_course_min_days": "3 days",
            "gbs_second_course_max_days": "8 weeks",
            "gbs_second_course_min_g_per_kg": "1.5 g/kg",
        },
    ),
    "Hemolysis": (("hemolysis-risk",), {"high_dose_g_per_kg": "2 g/kg"}),
    "Volume": (
        ("thrombosis-risk", "renal-risk"),
        {
            "volume_sensitive_age_years": "1 year",
            "volume_ml_per_kg_day": "20 mL/kg/day",
            "volume_ml_per_day": "1 L/day",
        },
    ),
    "Rate": (("infusion-rate",), {"rate_titration_gap_days": "8 weeks"}),
    "Discontinued products": (("discontinued-product",), {}),
    "Patient-view, IgG": (("igg-trough-low",), {"igg_trough_min_mg_dl": "500 mg/dL"}),
    "Patient-view, HBV": (
        ("hbv-reactivation",),
        {
            "anti_cd20_lookback_days": "12 months",
            "hbv_passive_anti_hbc_days": "6 months",
            "entecavir_min_age_years": "16 years",
            "entecavir_crcl_full_dose": "50 mL/min",
        },
    ),
    "Another patient's data": (("data-incomplete",), {}),
}

MONTHS_IN_DAYS = {12: 365, 6: 183}  # a month is not a fixed number of days: the values used


def _section_8() -> str:
    if not CONTRACT.is_file():
        pytest.skip(f"{CONTRACT} is absent (../shared is not checked out here)")
    text = CONTRACT.read_text(encoding="utf-8")
    match = re.search(r"^## 8\..*?$(.*?)(?=^## )", text, re.M | re.S)
    assert match, "card-contract.md has no section 8"
    return match.group(1)


def _bullets(section: str) -> dict[str, str]:
    """Each bullet of §8 by its bold lead (without the closing full stop or parenthesis)."""
    found: dict[str, str] = {}
    for bullet in re.split(r"^- ", section, flags=re.M)[1:]:
        lead = re.match(r"\*\*(.+?)\*\*", bullet)
        assert lead, f"a §8 bullet without a bold lead: {bullet[:60]!r}"
        found[lead.group(1).rstrip(".").strip()] = " ".join(bullet.split())
    return found


def _as_threshold(figure: str) -> tuple[float, str]:
    if figure.endswith("%"):
        return float(figure.rstrip("%")) / 100, "fraction"
    number, unit = figure.split(" ", 1)
    value = float(number)
    if unit in ("weeks", "week"):
        return value * 7, "days"
    if unit in ("months", "month"):
        return MONTHS_IN_DAYS[int(value)], "days"
    if unit == "L/day":
        return value * 1000, "mL/day"
    if unit == "h":
        return value, "hours"
    return value, {"year": "years"}.get(unit, unit)


def test_every_correction_of_the_contract_is_mapped_to_what_carries_it() -> None:
    assert set(_bullets(_section_8())) == set(CORRECTIONS)


@pytest.mark.parametrize("correction", sorted(CORRECTIONS))
def test_each_correction_is_carried_by_registered_topics(correction: str) -> None:
    topics, _ = CORRECTIONS[correction]
    emitted = set(REGISTRY.topics("order-sign")) | set(REGISTRY.topics("patient-view"))
    assert set(topics) <= emitted, correction
    assert set(topics) <= KB.topics.keys(), correction


@pytest.mark.parametrize("correction", sorted(c for c, (_, f) in CORRECTIONS.items() if f))
def test_the_thresholds_hold_the_figures_the_contract_states(correction: str) -> None:
    text = _bullets(_section_8())[correction]
    for name, figure in CORRECTIONS[correction][1].items():
        number = figure.split(" ")[0].rstrip("%")
        assert re.search(rf"(?<![\d.]){re.escape(number)}(?![\d.])", text), (correction, figure)
        threshold = KB.threshold_entries[name]
        value, unit = _as_threshold(figure)
        assert (threshold.value, threshold.unit) == (value, unit), (name, figure)


@pytest.mark.parametrize(
    ("figure", "expected"),
    [("42 weeks", (294, "days")), ("12 months", (365, "days")), ("1 L/day", (1000, "mL/day"))],
)
def test_figures_are_converted_as_a_pharmacist_would(
    figure: str, expected: tuple[float, str]
) -> None:
    assert _as_threshold(figure) == expected
