"""One FHIR ValueSet per concept (``knowledge/valuesets/``), validated and reduced to a ConceptSet.

Checks: the file parses as an R4B ValueSet; its id and canonical URL match the file name; it has a
date and compose.include; every include names where its codes came from; filters are ICD-10-CM or
ATC ``is-a`` only; it holds at least one code, filter or text phrase. Codes the reference marks
UNVERIFIED carry the ``unverified`` extension, kept with each code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fhir.resources.R4B.valueset import ValueSet
from pydantic import ValidationError

from cds_service.errors import KnowledgeError
from hooks.knowledge_base.files import read_json
from hooks.terminology import ATC, ICD10CM, ConceptSet, normalise_code, phrase_pattern

CANONICAL_BASE = "https://ivig-cds.org/fhir"
EXT_SOURCE = f"{CANONICAL_BASE}/StructureDefinition/source"
EXT_UNVERIFIED = f"{CANONICAL_BASE}/StructureDefinition/unverified"
EXT_TEXT_MATCH = f"{CANONICAL_BASE}/StructureDefinition/text-match"


def _extension(element: Any, url: str) -> str | None:
    for extension in getattr(element, "extension", None) or []:
        if extension.url == url:
            return str(extension.valueString)
    return None


def load_valueset(path: Path) -> ConceptSet:
    raw = read_json(path)
    try:
        valueset = ValueSet.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise KnowledgeError(
            f"{path.name}: not a valid FHIR R4 ValueSet at {where}: {first['msg']}"
        ) from None
    if valueset.id != path.stem or valueset.url != f"{CANONICAL_BASE}/ValueSet/{path.stem}":
        raise KnowledgeError(f"{path.name}: id and url must match the file name")
    if not valueset.date or not valueset.compose or not valueset.compose.include:
        raise KnowledgeError(f"{path.name}: needs a date and compose.include")
    codes: dict[tuple[str, str], bool] = {}
    prefixes: dict[str, dict[str, bool]] = {}
    for include in valueset.compose.include:
        if not _extension(include, EXT_SOURCE):
            raise KnowledgeError(f"{path.name}: an include of {include.system} names no source")
        include_unverified = _extension(include, EXT_UNVERIFIED) is not None
        system = str(include.system)
        for concept in include.concept or []:
            unverified = include_unverified or _extension(concept, EXT_UNVERIFIED) is not None
            codes[(system, normalise_code(system, str(concept.code)))] = unverified
        for rule in include.filter or []:
            if include.system not in (ICD10CM, ATC) or rule.op != "is-a":
                raise KnowledgeError(f"{path.name}: only ICD-10-CM/ATC is-a filters are supported")
            unverified = include_unverified or _extension(rule, EXT_UNVERIFIED) is not None
            prefix = normalise_code(system, str(rule.value))
            prefixes.setdefault(system, {})[prefix] = unverified
    phrases = [
        str(ext.valueString) for ext in valueset.extension or [] if ext.url == EXT_TEXT_MATCH
    ]
    if not codes and not prefixes and not phrases:
        raise KnowledgeError(f"{path.name}: holds no code, filter or text phrase")
    return ConceptSet(
        id=path.stem,
        url=str(valueset.url),
        title=str(valueset.title or valueset.name or path.stem),
        codes=codes,
        prefixes=prefixes,
        phrases=phrase_pattern(phrases),
    )


def load_valuesets(directory: Path) -> dict[str, ConceptSet]:
    return {path.stem: load_valueset(path) for path in sorted(directory.glob("*.json"))}
