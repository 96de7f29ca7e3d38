"""Concept sets loaded from FHIR ValueSets, and matching codes or text against them.

Codes match exactly, except ICD-10-CM and ATC ``is-a`` filters, which match the category and every
code under it (prefix, dots ignored). Text phrases match whole words, case-insensitively, against
``code.text`` and every ``coding.display``; the knowledge files use them only where the reference
gives no verified code or where free text is how the data arrives (allergies, medication names).

Matching runs for every record item against every value set a rule asks about, so it is kept to
dictionary lookups: a prefix filter is looked up by each prefix of the code, and a text's phrase
match is cached per value set (record texts repeat across patients and calls).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

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


class Code(NamedTuple):
    """A coding. A tuple, because records hold many and they are built on every call."""

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
        """How it matched, for a card: the code, or the phrase. A code's verification status is
        the knowledge document's business and never shown (contract §9); ``unverified`` stays
        for the audit and the docs."""
        if self.code is not None:
            return self.code.label()
        return f"text '{self.phrase}'"


MAX_PHRASED = 50_000  # remembered phrase answers per knowledge base, at most (a few MB)


@lru_cache(maxsize=65536)
def _phrase_in(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(0) if found else None


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
    prefixes: dict[str, dict[str, bool]]  # system -> normalised prefix -> unverified
    phrases: re.Pattern[str] | None
    _prefix_lengths: dict[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lengths = {s: tuple(sorted({len(p) for p in found})) for s, found in self.prefixes.items()}
        object.__setattr__(self, "_prefix_lengths", lengths)

    def all_codes(self) -> list[tuple[str, str]]:
        """Every (system, code) listed (not the filters): what a prefetch template asks for."""
        return sorted(self.codes)

    def match_code(self, code: Code) -> Match | None:
        key = normalise_code(code.system, code.code)
        unverified = self.codes.get((code.system, key))
        if unverified is not None:
            return Match(code, None, unverified)
        prefixes = self.prefixes.get(code.system)
        if prefixes:
            for length in self._prefix_lengths[code.system]:
                found = prefixes.get(key[:length])
                if found is not None:
                    return Match(code, None, found)
        return None

    def match_text(self, codes: Sequence[Code], texts: Sequence[str]) -> Match | None:
        """A phrase in the texts, then in the codes' displays (the second half of ``match``)."""
        if self.phrases is None:
            return None
        for text in (*texts, *(code.display for code in codes)):
            if text:
                found = _phrase_in(self.phrases, text)
                if found is not None:
                    return Match(None, found, False)
        return None

    def match(self, codes: Iterable[Code], texts: Iterable[str | None] = ()) -> Match | None:
        """A coded match first; else a phrase in the texts, then in the codes' displays."""
        codes = tuple(codes)
        for code in codes:
            matched = self.match_code(code)
            if matched is not None:
                return matched
        return self.match_text(codes, tuple(t for t in texts if t))


class MembershipIndex:
    """Every value set a record item belongs to, from one pass over its codes and texts.

    Rules ask about dozens of value sets; asking each value set about each item repeats the same
    lookups. The index inverts them: a code is looked up once, and its ICD-10-CM/ATC prefixes once
    per prefix length. Text phrases are left to :meth:`ConceptSet.match_text`, asked only for the
    value sets a rule names, so that together the answer is :meth:`ConceptSet.match`'s.
    """

    def __init__(self, concept_sets: Iterable[ConceptSet]) -> None:
        sets = list(concept_sets)
        self._codes: dict[tuple[str, str], list[tuple[str, bool]]] = {}
        self._prefixes: dict[str, dict[str, list[tuple[str, bool]]]] = {}
        for cs in sets:
            for key, unverified in cs.codes.items():
                self._codes.setdefault(key, []).append((cs.id, unverified))
            for system, prefixes in cs.prefixes.items():
                for prefix, unverified in prefixes.items():
                    entry = self._prefixes.setdefault(system, {}).setdefault(prefix, [])
                    entry.append((cs.id, unverified))
        self._lengths = {
            system: tuple(sorted({len(p) for p in found}))
            for system, found in self._prefixes.items()
        }
        self._sets = {cs.id: cs for cs in sets}
        self._phrase_sets = [cs for cs in sets if cs.phrases is not None]
        self._texted: dict[tuple[str, tuple[str | None, ...]], dict[str, Match]] = {}

    def covers(self, concept_set: ConceptSet) -> bool:
        """Whether ``concept_set`` is the set this index holds under its id."""
        return self._sets.get(concept_set.id) is concept_set

    def members(self, codes: Sequence[Code], label: str) -> dict[str, Match]:
        """Every value set of the index an item belongs to, as :meth:`ConceptSet.match` says:
        by code first, else by a phrase in its label or its codes' displays."""
        texted = self._texted_members(codes, label)
        coded = self.coded(codes)
        return {**texted, **coded} if texted else coded

    def coded(self, codes: Sequence[Code]) -> dict[str, Match]:
        """Every value set the codes belong to, with the first code that says so."""
        found: dict[str, Match] = {}
        for code in codes:
            key = normalise_code(code.system, code.code)
            for vs, unverified in self._codes.get((code.system, key), ()):
                if vs not in found:
                    found[vs] = Match(code, None, unverified)
            prefixes = self._prefixes.get(code.system)
            if prefixes:
                for length in self._lengths[code.system]:
                    for vs, unverified in prefixes.get(key[:length], ()):
                        if vs not in found:
                            found[vs] = Match(code, None, unverified)
        return found

    def _texted_members(self, codes: Sequence[Code], label: str) -> dict[str, Match]:
        """The value sets whose phrases the label or the displays hold, remembered across
        calls: the same labels and displays come back call after call (a record's, a code
        system's), and the phrase search was the engine's costliest step (issue 9). Held in
        this process only, and emptied when it reaches ``MAX_PHRASED`` (the texts are record
        text)."""
        key = (label, tuple(code.display for code in codes))
        found = self._texted.get(key)
        if found is None:
            found = {
                cs.id: matched
                for cs in self._phrase_sets
                if (matched := cs.match_text(codes, (label,))) is not None
            }
            if len(self._texted) >= MAX_PHRASED:
                self._texted.clear()
            self._texted[key] = found
        return found
