"""Concept sets loaded from FHIR ValueSets, and matching codes or text against them.

Codes match exactly, except ICD-10-CM ``is-a`` filters, which match the category and every code
under it (prefix, dots ignored). Text phrases match whole words, case-insensitively, against
``code.text`` and every ``coding.display``; the knowledge files use them only where the reference
gives no verified code or where free text is how the data arrives (allergies, medication names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"

SYSTEM_NAMES = {
    ICD10CM: "ICD-10-CM",
    SNOMED: "SNOMED CT",
    LOINC: "LOINC",
    RXNORM: "RxNorm",
    ATC: "ATC",
}


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str | None = None

    def label(self) -> str:
        return f"{SYSTEM_NAMES.get(self.system, self.system)} {self.code}"


@dataclass(frozen=True)
class Match:
    """How a record item matched a concept: by a code, or by a phrase in its text."""

    code: Code | None
    phrase: str | None
    unverified: bool

    def describe(self) -> str:
        if self.code is not None:
            return self.code.label() + (" (code marked unverified)" if self.unverified else "")
        return f"text '{self.phrase}'"


def normalise_code(system: str, code: str) -> str:
    return code.replace(".", "").upper() if system == ICD10CM else code.strip()


def phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted({p for p in phrases if p}, key=len, reverse=True)
    if not ordered:
        return None
    alternatives = "|".join(re.escape(p) for p in ordered)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class ConceptSet:
    id: str
    url: str
    title: str
    codes: dict[tuple[str, str], bool]  # (system, normalised code) -> unverified
    prefixes: dict[str, tuple[tuple[str, bool], ...]]  # system -> (normalised prefix, unverified)
    phrases: re.Pattern[str] | None

    def match(self, codes: Iterable[Code], texts: Iterable[str | None] = ()) -> Match | None:
        for code in codes:
            key = (code.system, normalise_code(code.system, code.code))
            if key in self.codes:
                return Match(code, None, self.codes[key])
            for prefix, unverified in self.prefixes.get(code.system, ()):
                if key[1].startswith(prefix):
                    return Match(code, None, unverified)
        if self.phrases is not None:
            for text in (*texts, *(code.display for code in codes)):
                found = self.phrases.search(text) if text else None
                if found:
                    return Match(None, found.group(0), False)
        return None
