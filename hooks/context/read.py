"""Read FHIR R4 JSON leniently: only the elements the rules use, each checked as it is read.

An element no rule reads is never looked at, so it cannot make a resource unusable. An element that
is read and malformed raises :class:`Malformed` (the caller skips that resource, or, for an order,
disables the checks that read that element). One deviation real clients are known to send is
tolerated and recorded: a single object where R4 wants a list (the CDS Hooks Sandbox sends
``category`` and ``reasonCode`` so).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from hooks.terminology import Code

_PARTIAL_DATE = re.compile(r"(\d{4})(?:-(\d{2}))?")  # FHIR R4 allows YYYY and YYYY-MM


class Malformed(ValueError):
    """An element the rules read does not have its FHIR R4 form."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


@dataclass(frozen=True)
class Deviation:
    """A tolerated departure from R4 in what a client sent."""

    reference: str
    path: str

    def describe(self) -> str:
        return f"{self.reference} sends {self.path} as a single object where FHIR R4 wants a list"


class Concept(NamedTuple):
    """A CodeableConcept: its codes and its text."""

    codes: tuple[Code, ...]
    text: str | None

    @property
    def texts(self) -> tuple[str, ...]:
        """The text, then every display: what text matching looks at."""
        found = [self.text] if self.text else []
        found += [c.display for c in self.codes if c.display]
        return tuple(found)

    @property
    def label(self) -> str:
        """The first of ``texts`` (read for every coded element: without building them)."""
        if self.text:
            return self.text
        return next((c.display for c in self.codes if c.display), "")

    @property
    def first_code(self) -> str | None:
        return self.codes[0].code if self.codes else None


class Quantity(NamedTuple):
    value: float
    unit: str | None
    code: str | None
    comparator: str | None

    @property
    def unit_shown(self) -> str:
        return self.unit or self.code or ""

    def unit_keys(self) -> tuple[str, ...]:
        """The UCUM code, then the unit, normalised: trimmed, lower case, µ written u."""
        return tuple(
            key
            for unit in (self.code, self.unit)
            if unit and (key := unit.strip().replace("µ", "u").replace("μ", "u").lower())
        )


def parse_date(value: str) -> date | None:
    """A FHIR date, dateTime or instant as a date (a partial date takes its first day); None if
    it has none of those forms. A time with a UTC offset gives the date in UTC, the calendar the
    service's "today" is on: 2026-06-16T07:30:00+10:00 is 2026-06-15."""
    if len(value) >= 10 and value[4] == "-" and value[7] == "-":
        try:  # at C speed: the common cases
            if len(value) == 10:
                return date.fromisoformat(value)
            if value[10] != "T":
                return None
            moment = datetime.fromisoformat(value)
            return moment.astimezone(UTC).date() if moment.tzinfo is not None else moment.date()
        except (ValueError, OverflowError):  # OverflowError: year 1 moved across midnight
            return None
    matched = _PARTIAL_DATE.fullmatch(value)
    if matched is None:
        return None
    year, month = matched.groups()
    try:
        return date(int(year), int(month or 1), 1)
    except ValueError:  # year 0, month 13
        return None


def days_since(today: date, day: date) -> int:
    """Whole days from ``day`` to ``today``. A date one day ahead counts as today: a date without
    a time is on the sender's calendar, which can be up to a day ahead of UTC."""
    days = (today - day).days
    return 0 if days == -1 else days


def within_days(today: date, day: date | None, window: int) -> bool:
    """``day`` is at most ``window`` days before ``today`` and not in the future."""
    return day is not None and 0 <= days_since(today, day) <= window


class Reader:
    """Reads the elements of one resource, recording tolerated deviations under its reference."""

    def __init__(self, reference: str, deviations: list[Deviation]) -> None:
        self.reference = reference
        self._deviations = deviations

    def objects(self, value: Any, path: str) -> list[dict[str, Any]]:
        """A list of objects (``0..*`` of a complex type); a lone object is a list of one."""
        if value is None:
            return []
        if isinstance(value, dict):
            self._deviations.append(Deviation(self.reference, path))
            return [value]
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise Malformed(path, "not a list of objects")
        return value

    def obj(self, value: Any, path: str) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Malformed(path, "not an object")
        return value

    def text(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise Malformed(path, "not a string")
        return value

    def code(self, value: Any, path: str) -> str | None:
        text = self.text(value, path)
        return text.strip() if text else None

    def number(self, value: Any, path: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Malformed(path, "not a number")
        number = float(value)
        if not math.isfinite(number):
            raise Malformed(path, "not a finite number")
        return number

    def integer(self, value: Any, path: str) -> int | None:
        number = self.number(value, path)
        if number is None:
            return None
        if number != int(number):
            raise Malformed(path, "not a whole number")
        return int(number)

    def date(self, value: Any, path: str) -> date | None:
        text = self.text(value, path)
        if text is None:
            return None
        found = parse_date(text)
        if found is None:
            raise Malformed(path, "not a FHIR date")
        return found

    def concept(self, value: Any, path: str) -> Concept | None:
        # The hottest reader (every coded element of every resource): checks inlined, and the
        # path of an element built only when it is malformed.
        if value is None:
            return None
        if type(value) is not dict:
            raise Malformed(path, "not an object")
        codings = value.get("coding")
        codes: list[Code] = []
        if codings is not None:
            if type(codings) is dict:
                codings = self.objects(codings, path + ".coding")
            elif type(codings) is not list:
                raise Malformed(path + ".coding", "not a list of objects")
            for coding in codings:
                if type(coding) is not dict:
                    raise Malformed(path + ".coding", "not a list of objects")
                code, system, display = (
                    coding.get("code"),
                    coding.get("system"),
                    coding.get("display"),
                )
                if code is None:
                    continue
                if type(code) is not str or not (system is None or type(system) is str):
                    raise Malformed(path + ".coding", "code and system must be strings")
                if not (display is None or type(display) is str):
                    raise Malformed(path + ".coding.display", "not a string")
                code = code.strip()
                if code:
                    codes.append(Code(system or "", code, display))
        text = value.get("text")
        if not (text is None or type(text) is str):
            raise Malformed(path + ".text", "not a string")
        return Concept(tuple(codes), text)

    def concepts(self, value: Any, path: str) -> tuple[Concept, ...]:
        found = (self.concept(item, path) for item in self.objects(value, path))
        return tuple(c for c in found if c is not None)

    def status(self, value: Any, path: str) -> str | None:
        """The first code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
        concept = self.concept(value, path)
        return concept.first_code if concept else None

    def quantity(self, value: Any, path: str) -> Quantity | None:
        quantity = self.obj(value, path)
        if quantity is None:
            return None
        number = self.number(quantity.get("value"), f"{path}.value")
        if number is None:
            return None
        comparator = self.code(quantity.get("comparator"), f"{path}.comparator")
        return Quantity(
            number,
            self.text(quantity.get("unit"), f"{path}.unit"),
            self.code(quantity.get("code"), f"{path}.code"),
            comparator,
        )

    def reference_to(self, value: Any, path: str) -> tuple[str | None, str | None]:
        """A Reference's ``reference`` and ``display``."""
        reference = self.obj(value, path)
        if reference is None:
            return None, None
        return (
            self.text(reference.get("reference"), f"{path}.reference"),
            self.text(reference.get("display"), f"{path}.display"),
        )


# A literal reference: [base/]Type/id[/_history/version] (FHIR R4 §2.3.0 "Literal references")
_LITERAL = re.compile(
    r"(?:(?P<base>.+)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?"
)


def names_patient(reference: str, patient_id: str, fhir_server: str | None) -> bool | None:
    """Whether a ``Reference.reference`` names the patient ``Patient/<patient_id>``: matched on
    type and id, relative or absolute under ``fhir_server``. False for another resource (another
    patient, a Group, a Patient on another server); None when it cannot tell (``urn:uuid:``,
    ``#contained``)."""
    if reference == f"Patient/{patient_id}":
        return True  # the common case, without the pattern
    found = _LITERAL.fullmatch(reference.strip())
    if found is None:
        return None
    base = found.group("base")
    same_base = base is None or (
        fhir_server is not None and base.rstrip("/").lower() == fhir_server.rstrip("/").lower()
    )
    return found.group("type") == "Patient" and found.group("id") == patient_id and same_base


def subject_of(raw: Mapping[str, Any]) -> str | None:
    """The reference of a resource's ``subject`` (else ``patient``, AllergyIntolerance's): who
    it is about. None when it has none, or none that is a literal reference string."""
    for name in ("subject", "patient"):
        value = raw.get(name)
        if isinstance(value, dict):
            reference = value.get("reference")
            return reference if isinstance(reference, str) else None
    return None


def about_another_patient(raw: Mapping[str, Any], patient_id: str, fhir_server: str | None) -> bool:
    """The resource's subject or patient names someone other than the context patient."""
    subject = subject_of(raw)
    return subject is not None and names_patient(subject, patient_id, fhir_server) is False


def reference_of(raw: dict[str, Any]) -> str:
    kind, rid = raw.get("resourceType"), raw.get("id")
    kind = kind if isinstance(kind, str) else "Resource"
    return f"{kind}/{rid if isinstance(rid, str) else '(no id)'}"
