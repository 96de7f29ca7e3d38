"""The value sets for the knowledge document (``hooks.knowledge_document``): each code with its
system, display and verification, as the ValueSet file (``knowledge/valuesets/``) records them.

The loaded ConceptSet keeps no displays, so the file is read again; codes the reference marks
UNVERIFIED (the ``unverified`` extension on the include or on the code) are shown so.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from hooks.knowledge_base import KnowledgeBase
from hooks.knowledge_base.files import read_json
from hooks.knowledge_base.valuesets import EXT_SOURCE, EXT_TEXT_MATCH, EXT_UNVERIFIED
from hooks.knowledge_examples import esc

SYSTEMS = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://loinc.org": "LOINC",
    "http://www.whocc.no/atc": "ATC",
    "http://www.ama-assn.org/go/cpt": "CPT",
}


def _extension(element: dict[str, Any], url: str) -> str | None:
    for extension in element.get("extension", []) or []:
        if extension.get("url") == url:
            return str(extension.get("valueString", ""))
    return None


@lru_cache(maxsize=512)
def _file(path: Path) -> dict[str, Any]:
    return dict(read_json(path))


def knowledge_file_valuesets(kb: KnowledgeBase, files: Iterable[str]) -> list[str]:
    """The value sets the knowledge files a rule reads name (``Reads.knowledge``)."""
    names: list[str] = []
    for name in files:
        if name == "excipient-rules.json":
            names += [r.valueset for r in kb.excipient_rules]
            names += [r.excluded for r in kb.young_child_rules]
        elif name == "dose-ranges.json":
            names += [r.valueset for r in kb.dose_ranges]
        elif name == "indication-guidance.json":
            names += [g.valueset for g in kb.guidance]
    return list(dict.fromkeys(names))


def _status(marked: str | None) -> str:
    if marked is None:
        return '<span class="verified">verified</span>'
    return f'<span class="unverified">UNVERIFIED</span> {esc(marked)}'


def valueset_table(directory: Path, kb: KnowledgeBase, name: str, anchor: bool = False) -> str:
    """One value set: title, where its codes came from, each code, filter and text phrase."""
    raw = _file((directory / "valuesets" / f"{name}.json").resolve())
    title = kb.valuesets[name].title if name in kb.valuesets else name
    rows: list[str] = []
    origins: list[str] = []
    for include in raw.get("compose", {}).get("include", []):
        system = str(include.get("system", ""))
        shown = esc(SYSTEMS.get(system, system))
        whole = _extension(include, EXT_UNVERIFIED)
        origin = _extension(include, EXT_SOURCE)
        if origin:
            origins.append(f"{shown}: {esc(origin)}")
        for concept in include.get("concept", []):
            marked = _extension(concept, EXT_UNVERIFIED) or whole
            rows.append(
                f"<tr><td>{shown}</td><td><code>{esc(concept.get('code', ''))}</code></td>"
                f"<td>{esc(concept.get('display', ''))}</td><td>{_status(marked)}</td></tr>"
            )
        for rule in include.get("filter", []):
            marked = _extension(rule, EXT_UNVERIFIED) or whole
            rows.append(
                f"<tr><td>{shown}</td><td><code>{esc(rule.get('value', ''))}</code> and below "
                f"({esc(rule.get('op', ''))})</td><td>every code under it</td>"
                f"<td>{_status(marked)}</td></tr>"
            )
    phrases = [
        str(ext.get("valueString", ""))
        for ext in raw.get("extension", []) or []
        if ext.get("url") == EXT_TEXT_MATCH
    ]
    for phrase in phrases:
        rows.append(
            f'<tr><td>text</td><td>"{esc(phrase)}"</td><td>matched in record text</td>'
            f"<td>{_status(None)}</td></tr>"
        )
    ident = f' id="vs-{esc(name)}"' if anchor else ""
    where = f'<p class="muted">Codes from: {"; ".join(origins)}</p>' if origins else ""
    return (
        f'<div class="valueset"{ident}><h5>{esc(title)} <code>{esc(name)}</code></h5>{where}'
        "<table><tr><th>system</th><th>code</th><th>display</th><th>verification</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )
