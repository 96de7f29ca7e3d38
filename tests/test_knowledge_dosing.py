"""The dose, guidance and excipient knowledge files refuse to load when they are wrong."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cds_service.errors import KnowledgeError
from hooks.knowledge_base import KNOWLEDGE_DIR, load_knowledge
from hooks.knowledge_base.schema import DOCUMENT_URL


def broken(tmp_path: Path, name: str, change: Callable[[Any], None]) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    data = json.loads((target / name).read_text())
    change(data)
    (target / name).write_text(json.dumps(data))
    return target


def _first(key: str) -> Callable[[Any], dict[str, Any]]:
    return lambda data: data[key][0]


CASES = {
    "regimen low above high": (
        "dose-ranges.json",
        lambda d: d["indications"][0]["regimens"][0].update(low_g_per_kg=3, high_g_per_kg=1),
        "low <= high",
    ),
    "regimen of an unknown kind": (
        "dose-ranges.json",
        lambda d: d["indications"][0]["regimens"][0].update(kind="weekly"),
        "regimens\\[0\\].kind",
    ),
    "dose range on a missing value set": (
        "dose-ranges.json",
        lambda d: d["indications"][0].update(valueset="no-such-set"),
        "no-such-set",
    ),
    "dose range without a source": (
        "dose-ranges.json",
        lambda d: d["indications"][0].update(source={"label": "x", "url": "http://insecure"}),
        "source.url: String should match pattern",
    ),
    "guidance statement without a source": (
        "indication-guidance.json",
        lambda d: d["indications"][0]["statements"][0].pop("source"),
        "statements\\[gbs-no-plex-after-ivig\\].source: Field required",
    ),
    "excipient rule on an unknown excipient": (
        "excipient-rules.json",
        lambda d: d["rules"][0].update(excipient="lactose"),
        "lactose: unknown excipient",
    ),
    "excipient rule with an info indicator": (
        "excipient-rules.json",
        lambda d: d["rules"][0].update(indicator="info"),
        "rules\\[0\\].indicator",
    ),
    "scig block without a source": (
        "products.json",
        lambda d: next(p for p in d["products"] if p.get("scig"))["scig"].update(source={}),
        "scig.source.label: Field required",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_file_refuses_to_load(tmp_path: Path, case: str) -> None:
    name, change, message = CASES[case]
    with pytest.raises(KnowledgeError, match=message):
        load_knowledge(broken(tmp_path, name, change))


def test_every_dose_range_and_statement_names_its_source() -> None:
    """A named document; a link only to the document itself (contract §9 "Source links")."""
    kb = load_knowledge()
    assert {r.id for r in kb.dose_ranges} >= {"gbs", "primary-immunodeficiency", "kawasaki"}
    sources = [item.source for item in kb.dose_ranges]
    sources += [s.source for guidance in kb.guidance for s in guidance.statements]
    for source in sources:
        assert source.label.strip()
        assert source.url is None or re.fullmatch(DOCUMENT_URL, source.url), source.url
    assert any(source.url for source in sources)  # the confirmed DOIs are linked
