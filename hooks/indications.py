"""Knowledge per indication: dose ranges (``dose-ranges.json``) and guidance statements
(``indication-guidance.json``), loaded and validated at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.errors import KnowledgeError
from hooks.knowledge_files import read_json
from hooks.terminology import ConceptSet

REGIMEN_KINDS = ("course", "cycle")


@dataclass(frozen=True)
class Regimen:
    kind: str  # course: total over a course of days; cycle: one dose per cycle of weeks
    low_g_per_kg: float
    high_g_per_kg: float
    description: str


@dataclass(frozen=True)
class Source:
    label: str
    url: str


@dataclass(frozen=True)
class DoseRange:
    id: str
    display: str
    valueset: str
    regimens: tuple[Regimen, ...]
    min_age: int | None
    max_age: int | None
    source: Source
    note: str


@dataclass(frozen=True)
class Statement:
    id: str
    text: str
    source: Source
    year: int | None
    unverified: bool
    plasma_exchange_first: bool


@dataclass(frozen=True)
class Guidance:
    id: str
    display: str
    valueset: str
    statements: tuple[Statement, ...]


def _source(raw: dict[str, Any], where: str) -> Source:
    if not raw or not raw.get("label") or not str(raw.get("url", "")).startswith("https://"):
        raise KnowledgeError(f"{where}: needs a source label and https URL")
    return Source(str(raw["label"]), str(raw["url"]))


def load_dose_ranges(
    path: Path, valuesets: dict[str, ConceptSet]
) -> tuple[tuple[DoseRange, ...], float]:
    raw = read_json(path)
    ranges = []
    for item in raw["indications"]:
        where = f"{path.name} {item.get('id')}"
        if item.get("valueset") not in valuesets:
            raise KnowledgeError(f"{where}: no value set {item.get('valueset')}")
        regimens = []
        for regimen in item.get("regimens") or []:
            low, high = regimen.get("low_g_per_kg"), regimen.get("high_g_per_kg")
            if (
                regimen.get("kind") not in REGIMEN_KINDS
                or low is None
                or high is None
                or low > high
            ):
                raise KnowledgeError(
                    f"{where}: a regimen needs kind course|cycle and low <= high g/kg"
                )
            regimens.append(
                Regimen(
                    regimen["kind"], float(low), float(high), str(regimen.get("description", ""))
                )
            )
        if not regimens:
            raise KnowledgeError(f"{where}: needs at least one regimen")
        age = item.get("age") or {}
        ranges.append(
            DoseRange(
                id=item["id"],
                display=item["display"],
                valueset=item["valueset"],
                regimens=tuple(regimens),
                min_age=age.get("min_years"),
                max_age=age.get("max_years"),
                source=_source(item.get("source"), where),
                note=str(item.get("note") or ""),
            )
        )
    return tuple(ranges), float(raw.get("tolerance", 0.10))


def load_guidance(path: Path, valuesets: dict[str, ConceptSet]) -> tuple[Guidance, ...]:
    raw = read_json(path)
    found = []
    for item in raw["indications"]:
        where = f"{path.name} {item.get('id')}"
        if item.get("valueset") not in valuesets:
            raise KnowledgeError(f"{where}: no value set {item.get('valueset')}")
        statements = tuple(
            Statement(
                id=s["id"],
                text=s["text"],
                source=_source(s.get("source"), f"{where} {s.get('id')}"),
                year=s.get("year"),
                unverified=bool(s.get("unverified")),
                plasma_exchange_first=bool(s.get("plasma_exchange_first")),
            )
            for s in item.get("statements") or []
        )
        if not statements:
            raise KnowledgeError(f"{where}: needs statements")
        found.append(Guidance(item["id"], item["display"], item["valueset"], statements))
    return tuple(found)
