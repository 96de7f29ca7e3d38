"""The site formulary: the immune globulin products the pharmacy stocks (card contract §9).

``IVIG_CDS_FORMULARY`` (or the test-config key ``FORMULARY``) names a JSON file
(``docs/formulary.example.json``)::

    {"version": "2026-12", "site": "Example Hospital", "stocked": ["privigen", "hizentra"]}

Validated at start-up: every id must be a catalogue product of ``products.json`` (not a family
entry), once; the list must not be empty. A discontinued product may be listed (a switch never
chooses one anyway). Unset: no formulary, every catalogue product counts as stocked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cds_service.config import ENV_PREFIX
from cds_service.errors import KnowledgeError
from hooks.knowledge_base.files import read_model
from hooks.knowledge_base.loader import KnowledgeBase
from hooks.knowledge_base.schema import FormularyFile

SETTING = ENV_PREFIX + "FORMULARY"
OVERRIDE = "FORMULARY"


def read_formulary(where: str | PathLike[str] | Mapping[str, Any]) -> tuple[FormularyFile, str]:
    """The formulary at a path (or, in tests, its content as a mapping) and the name errors
    give it."""
    if isinstance(where, Mapping):
        name = "FORMULARY (test config)"
        try:
            return FormularyFile.model_validate(dict(where)), name
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(s) for s in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise KnowledgeError(f"{name}: {problems}") from None
    path = Path(where)
    return read_model(path, FormularyFile), path.name


def check_formulary(kb: KnowledgeBase, formulary: FormularyFile, name: str) -> frozenset[str]:
    """The stocked ids, each a catalogue product (not a family entry), none twice."""
    known = {p.id: p for p in kb.catalogue.products}
    seen: set[str] = set()
    for product_id in formulary.stocked:
        if product_id not in known:
            raise KnowledgeError(
                f"{name} stocked: {product_id!r} is not a product of products.json"
            )
        if known[product_id].family:
            raise KnowledgeError(
                f"{name} stocked: {product_id!r} is a family entry of products.json; list the "
                f"products the pharmacy stocks ({', '.join(known[product_id].members)})"
            )
        if product_id in seen:
            raise KnowledgeError(f"{name} stocked: {product_id!r} is listed twice")
        seen.add(product_id)
    return frozenset(seen)


def formulary_digest(stocked: frozenset[str]) -> str:
    """8 hex digits of the sha256 of the sorted stocked ids: part of the knowledge version."""
    return hashlib.sha256("\n".join(sorted(stocked)).encode()).hexdigest()[:8]


def formulary_for_site(
    kb: KnowledgeBase, env: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[KnowledgeBase, str]:
    """The knowledge with the site's formulary (its catalogue stocks only the listed products),
    and the version suffix that names it ("" without a formulary). The test-config key
    ``FORMULARY`` wins over the environment; None or "" there means no formulary."""
    where = overrides[OVERRIDE] if OVERRIDE in overrides else env.get(SETTING)
    if where is None or where == "":
        return kb, ""
    formulary, name = read_formulary(where)
    stocked = check_formulary(kb, formulary, name)
    site = replace(kb, catalogue=kb.catalogue.stocking(stocked), created_checks={})
    return site, f"+formulary-{formulary_digest(stocked)}"
