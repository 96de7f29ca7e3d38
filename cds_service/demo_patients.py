"""The fixture patients as the demo order-entry page's little EHR holds them (issue 14).

The page is a CDS client: it sends each hook call the prefetch an EHR would, filled here from a
fixture bundle by the service's own discovery templates. Fixture records are written for an
evaluation date (``index.json``, 2026-06-15); an EHR shows a patient as of today, so every full
date in the record moves by the days between the two, and a weight "5 days ago" stays 5 days ago.
The service's clock stays its own: the record moves, not the service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cds_service.fixtures_loader import FIXTURE_SETS, default_fixtures_dir

_FULL_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?")
SET_TITLES = {"scenarios": "Order scenarios", "patient-view": "Chart-open scenarios"}
SUMMARY_ITEMS = 8  # per list: a summary, not the chart


class UnknownPatient(LookupError):
    """No fixture patient has this key."""


@dataclass(frozen=True)
class FixturePatient:
    key: str  # "<set>/<scenario name>"
    set_title: str
    purpose: str  # the scenario's description in its index.json
    path: Path
    evaluation_date: date
    orders: tuple[str, ...] = ()  # the scenario's draft orders (fhir_fixtures/orders/<name>.json)
    selected: tuple[str, ...] = ()  # those of them order-select has selected (default: all)


class FixturePatients:
    """The fixture patients of ``fhir_fixtures/`` (order and chart-open scenarios)."""

    def __init__(self, root: Path | None = None) -> None:
        root = default_fixtures_dir() if root is None else root
        self._orders_dir = root / "orders"
        self._patients: dict[str, FixturePatient] = {}
        for folder in FIXTURE_SETS:
            index = json.loads((root / folder / "index.json").read_text(encoding="utf-8"))
            evaluated = date.fromisoformat(index["evaluationDate"])
            for scenario in index["scenarios"]:
                key = f"{folder}/{scenario['name']}"
                self._patients[key] = FixturePatient(
                    key=key,
                    set_title=SET_TITLES[folder],
                    purpose=scenario["description"],
                    path=root / folder / f"{scenario['name']}.json",
                    evaluation_date=evaluated,
                    # "orders" (several) or "order" (one name), or none (chart-open scenarios)
                    orders=tuple(scenario.get("orders") or scenario.get("order", "").split()),
                    selected=tuple(scenario.get("selected", ())),
                )
        self._resources = lru_cache(maxsize=256)(self._read)

    def listing(self) -> list[dict[str, str]]:
        return [
            {"key": p.key, "group": p.set_title, "purpose": p.purpose}
            for p in self._patients.values()
        ]

    def record(
        self, key: str, today: date, templates: Mapping[str, Mapping[str, str]]
    ) -> dict[str, Any]:
        """The patient as of ``today``: id, summary, and the prefetch of each service
        (``templates``: service id -> prefetch key -> template)."""
        patient = self._patients.get(key)
        if patient is None:
            raise UnknownPatient(key)
        days = (today - patient.evaluation_date).days
        resources = shift_dates(list(self._resources(patient.path)), days)
        person = next(r for r in resources if r["resourceType"] == "Patient")
        orders = [self._order(name, person["id"], days) for name in patient.orders]
        return {
            "key": key,
            "patientId": person["id"],
            "purpose": patient.purpose,
            "datesMovedByDays": days,
            # The scenario's own draft orders, for the page's "Load the scenario's orders".
            "scenarioOrders": orders,
            "scenarioSelections": [
                f"{order['resourceType']}/{order['id']}"
                for name, order in zip(patient.orders, orders, strict=True)
                if not patient.selected or name in patient.selected
            ],
            "summary": summary(resources, today),
            "prefetch": {
                service: {name: prefetched(resources, template) for name, template in keys.items()}
                for service, keys in templates.items()
            },
        }

    def _order(self, name: str, patient_id: str, days: int) -> dict[str, Any]:
        text = (self._orders_dir / f"{name}.json").read_text(encoding="utf-8")
        order = json.loads(text.replace("Patient/PATIENT_ID", f"Patient/{patient_id}"))
        return dict(shift_dates(order, days))

    @staticmethod
    def _read(path: Path) -> tuple[dict[str, Any], ...]:
        bundle = json.loads(path.read_text(encoding="utf-8"))
        return tuple(entry["resource"] for entry in bundle["entry"])


def shift_dates(value: Any, days: int) -> Any:
    """``value`` with every full FHIR date or dateTime moved by ``days`` (partial dates such as
    a bare year stay: they name no day to move)."""
    if isinstance(value, dict):
        return {key: shift_dates(item, days) for key, item in value.items()}
    if isinstance(value, list):
        return [shift_dates(item, days) for item in value]
    if isinstance(value, str) and days and (match := _FULL_DATE.fullmatch(value)):
        moved = date.fromisoformat(match.group(1)) + timedelta(days=days)
        return moved.isoformat() + (match.group(2) or "")
    return value


# --------------------------------------------------------------------------------- prefetch


def prefetched(resources: list[dict[str, Any]], template: str) -> dict[str, Any] | None:
    """What an EHR answers for one prefetch template: the Patient for ``Patient/{{...}}``, else a
    searchset Bundle of the record's resources of that type that match the template's ``code``
    and ``status`` parameters (the ``patient`` one holds: the record is one patient's)."""
    parts = urlsplit(template)
    kind = parts.path.split("/")[0]
    if "/" in parts.path:  # a read: Patient/{{context.patientId}}
        return next((r for r in resources if r["resourceType"] == kind), None)
    query = parse_qs(parts.query)
    codes = {
        tuple(token.split("|", 1)) for value in query.get("code", []) for token in value.split(",")
    }
    statuses = {s for value in query.get("status", []) for s in value.split(",")}
    found = [
        r
        for r in resources
        if r["resourceType"] == kind
        and (not codes or codes & set(_codings(r.get("code"))))
        and (not statuses or r.get("status") in statuses)
    ]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "entry": [{"resource": r} for r in found],
    }


def _codings(concept: Any) -> Iterable[tuple[str, str]]:
    for coding in (concept or {}).get("coding", []):
        yield (coding.get("system", ""), coding.get("code", ""))


# ---------------------------------------------------------------------------------- summary


def summary(resources: list[dict[str, Any]], today: date) -> dict[str, Any]:
    """A short clinical summary, as a chart banner shows one: who, the latest of each
    measurement, the problems and the allergies (text only; the page escapes it). The page lists
    the medication orders itself, from the prefetch it sends, so that an order it discontinues
    shows so."""
    person = next(r for r in resources if r["resourceType"] == "Patient")
    return {
        "name": _name(person),
        "headline": _headline(person, today),
        "observations": _latest_observations(resources),
        "conditions": _listed(resources, "Condition", "code", _clinical_status),
        "allergies": _listed(resources, "AllergyIntolerance", "code", _allergy_status),
    }


def _name(person: Mapping[str, Any]) -> str:
    for name in person.get("name", []):
        given = " ".join(name.get("given", []))
        return " ".join(part for part in (given, name.get("family", "")) if part) or "(no name)"
    return "(no name)"


def _headline(person: Mapping[str, Any], today: date) -> str:
    parts = [str(person.get("gender", "sex not recorded")).capitalize()]
    born = person.get("birthDate", "")
    if _FULL_DATE.fullmatch(born):
        birth = date.fromisoformat(born[:10])
        age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
        parts.append(f"{age} years (born {born[:10]})")
    else:
        parts.append("no birth date")
    return ", ".join(parts)


def _text(concept: Any) -> str:
    concept = concept or {}
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    return "(not named)"


# What a chart shows as a result: not one cancelled or entered in error, nor one not yet
# final (a preliminary value is marked).
_RESULT_STATUSES = {"final": "", "amended": "", "corrected": "", "preliminary": ", preliminary"}


def _latest_observations(resources: list[dict[str, Any]]) -> list[str]:
    latest: dict[str, tuple[str, str]] = {}
    for r in resources:
        if r["resourceType"] != "Observation" or r.get("status") not in _RESULT_STATUSES:
            continue
        when = str(r.get("effectiveDateTime") or r.get("issued") or "")
        name = _text(r.get("code"))
        note = (when[:10] if when else "no date") + _RESULT_STATUSES[str(r.get("status"))]
        if name not in latest or when > latest[name][0]:
            latest[name] = (when, f"{name}: {_value(r)} ({note})")
    ordered = sorted(latest.values(), key=lambda item: item[0], reverse=True)
    return [line for _, line in ordered[:SUMMARY_ITEMS]]


# UCUM's bracketed customary units, as a chart writes them.
_UNIT_WORDS = {"[lb_av]": "lb", "[in_i]": "in", "[oz_av]": "oz", "[degF]": "°F"}


def _value(observation: Mapping[str, Any]) -> str:
    quantity = observation.get("valueQuantity")
    if quantity:
        comparator, unit = quantity.get("comparator", ""), str(quantity.get("unit", ""))
        return f"{comparator}{quantity.get('value')} {_UNIT_WORDS.get(unit, unit)}".strip()
    if "valueCodeableConcept" in observation:
        return _text(observation["valueCodeableConcept"])
    if "valueString" in observation:
        return str(observation["valueString"])
    return "(no value)"


def _listed(
    resources: list[dict[str, Any]],
    kind: str,
    field: str,
    status: Callable[[Mapping[str, Any]], str],
) -> list[str]:
    lines = [
        f"{_text(r.get(field))} ({state})"
        for r in resources
        if r["resourceType"] == kind and (state := status(r))
    ]
    return lines[:SUMMARY_ITEMS]


def _clinical_status(resource: Mapping[str, Any]) -> str:
    """The clinical status, and the verification status unless confirmed; '' (not listed) for
    an entry in error."""
    verification = _code(resource.get("verificationStatus"))
    if verification == "entered-in-error":
        return ""
    parts = [_code(resource.get("clinicalStatus")) or "no clinical status"]
    if verification and verification != "confirmed":
        parts.append(verification)  # refuted, unconfirmed, provisional, differential
    return ", ".join(parts)


def _allergy_status(resource: Mapping[str, Any]) -> str:
    state = _clinical_status(resource)
    if state and resource.get("criticality"):
        state += f", criticality {resource['criticality']}"
    return state


def _code(concept: Any) -> str:
    for coding in (concept or {}).get("coding", []):
        if coding.get("code"):
            return str(coding["code"])
    return ""
