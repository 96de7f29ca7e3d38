"""The knowledge document a pharmacy and therapeutics committee signs (``ivig-cds knowledge
report``): every topic, the thresholds in force with site overrides marked, every value set with
its codes and their verification, example cards from the fixture scenarios, and nothing fetched."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from hooks.knowledge_base import KNOWLEDGE_DIR, load_knowledge
from hooks.knowledge_base.valuesets import EXT_UNVERIFIED
from hooks.knowledge_document import knowledge_document, write_knowledge_document
from hooks.knowledge_examples import FIXTURES_DIR, esc, markdown, render_card
from hooks.registry import REGISTRY

KB = load_knowledge(required_valuesets=REGISTRY.valuesets(), required_topics=REGISTRY.topics())


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("knowledge") / "knowledge.html"
    write_knowledge_document(path, {}, {})
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def site_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A site with a thrombosis age of 70 and a formulary of two products."""
    formulary = tmp_path_factory.mktemp("site") / "formulary.json"
    formulary.write_text(
        json.dumps(
            {"version": "2026-12", "site": "General Hospital", "stocked": ["privigen", "hizentra"]}
        )
    )
    return knowledge_document({"IVIG_CDS_FORMULARY": str(formulary)}, {"THROMBOSIS_AGE": 70})


def section(page: str, topic: str) -> str:
    start = page.index(f'<section class="topic" id="topic-{topic}">')
    return page[start : page.index("</section>", start)]


def valueset_block(page: str, name: str) -> str:
    start = page.index(f'<div class="valueset" id="vs-{name}">')
    return page[start : page.index("</table></div>", start)]


def test_every_topic_of_the_registry_is_listed_in_display_order(page: str) -> None:
    found = re.findall(r'<section class="topic" id="topic-([a-z0-9-]+)">', page)
    assert set(found) == set(REGISTRY.topics())
    order = list(KB.topics)
    assert found == sorted(found, key=order.index)
    for topic in REGISTRY.topics():
        assert esc(KB.topics[topic].display) in section(page, topic)


def test_the_header_names_the_knowledge_version_and_has_a_sign_off_block(page: str) -> None:
    from hooks import build_registry

    assert build_registry({}, {}).knowledge_version in page
    assert "Generated</td>" in page
    for label in ("Name", "Role", "Date", "Signature"):
        assert f'<div class="line-label">{label}</div>' in page


def test_a_site_threshold_override_shows_as_one_with_its_value(page: str, site_page: str) -> None:
    assert KB.threshold_entries["thrombosis_age"].site
    row = re.search(
        r'<tr id="threshold-thrombosis_age">.*?</tr>', section(site_page, "thrombosis-risk")
    )
    assert row is not None
    assert "SITE OVERRIDE" in row.group(0) and "<strong>70</strong>" in row.group(0)
    assert "(file: 65)" in row.group(0)
    assert "+site-" in site_page and "<code>thrombosis_age</code> = 70" in site_page
    assert "SITE OVERRIDE" not in page  # the file's values: none is an override


def test_every_value_set_a_rule_reads_is_listed_with_its_codes(page: str) -> None:
    for name in REGISTRY.valuesets():
        block = valueset_block(page, name)
        raw = json.loads((KNOWLEDGE_DIR / "valuesets" / f"{name}.json").read_text())
        for include in raw["compose"]["include"]:
            for concept in include.get("concept", []):
                assert f"<code>{esc(concept['code'])}</code>" in block, (name, concept["code"])
    for rule in REGISTRY.rules:  # and under the rule itself
        for name in rule.reads.valuesets:
            assert f"<code>{name}</code></h5>" in section(page, rule.topic), (rule.topic, name)


def test_an_unverified_code_shows_as_unverified(page: str) -> None:
    raw = json.loads((KNOWLEDGE_DIR / "valuesets" / "central-venous-catheter.json").read_text())
    marked = [
        concept["code"]
        for include in raw["compose"]["include"]
        for concept in include.get("concept", [])
        if any(e["url"] == EXT_UNVERIFIED for e in concept.get("extension", []))
    ]
    assert marked
    block = valueset_block(page, "central-venous-catheter")
    for code in marked:
        row = re.search(rf"<tr><td>[^<]*</td><td><code>{re.escape(code)}</code>.*?</tr>", block)
        assert row is not None and "UNVERIFIED" in row.group(0), code
    assert "verified</span>" in block


def _scenario_topics() -> set[str]:
    topics: set[str] = set()
    for folder in ("scenarios", "patient-view"):
        index = json.loads((FIXTURES_DIR / folder / "index.json").read_text())
        for scenario in index["scenarios"]:
            topics |= set(scenario["fires"])
            for fires in scenario.get("fires_at", {}).values():
                topics |= set(fires)
    return topics & set(REGISTRY.topics())


def test_every_topic_the_scenarios_produce_has_an_example_card(page: str) -> None:
    produced = _scenario_topics()
    assert len(produced) >= len(REGISTRY.topics()) - 2
    for topic in REGISTRY.topics():
        shown = section(page, topic)
        if topic in produced:
            assert '<article class="card card-' in shown, topic
            assert '<div class="detail"><p>' in shown, topic  # the Markdown rendered
        else:
            assert "No fixture scenario produces this card." in shown


def test_the_example_card_is_drawn_as_an_ehr_shows_it(page: str) -> None:
    card = section(page, "ig-hypersensitivity")
    assert (
        '<article class="card card-critical">' in card
        or '<article class="card card-warning">' in card
    )
    assert "<strong>Evidence</strong>" in card
    assert re.search(r'<p class="card-source">Source: <a href="https://', card)
    assert "Override reasons:" in card


def test_record_text_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    card: dict[str, Any] = {
        "summary": hostile,
        "indicator": 'warning" onmouseover="x',
        "detail": f"**Evidence**\n- Condition/1: {hostile} <img src=x onerror=alert(1)>\n\n![x](https://e.org/x.png)",
        "source": {"label": hostile, "url": "javascript:alert(1)"},
        "suggestions": [{"label": hostile, "uuid": "1"}],
        "overrideReasons": [{"system": "s", "code": "<b>", "display": hostile}],
    }
    shown = render_card(card, markdown())
    assert "<script" not in shown and "<img" not in shown and "javascript:" not in shown
    assert "&lt;script&gt;" in shown and 'card-info"' in shown
    assert esc('<a href="x">&</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"


def test_the_page_reaches_for_nothing(page: str) -> None:
    assert not re.search(r"<(script|img|link|iframe|object|embed)\b", page, re.I)
    assert " src=" not in page and "@import" not in page and "url(" not in page
    for match in re.finditer(r'<(\w+)[^>]*\bhref="([^"]*)"', page):
        tag, target = match.groups()
        assert tag == "a" and (target.startswith("#") or target.startswith("https://")), target
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


def test_the_formulary_section(page: str, site_page: str) -> None:
    assert "No site formulary: every current catalogue product may be suggested" in page
    formulary = site_page[site_page.index('id="formulary"') : site_page.index('id="catalogue"')]
    stocked, _, others = formulary.partition("Catalogue products not stocked")
    assert "Privigen" in stocked and "Hizentra" in stocked and "General Hospital" in stocked
    assert "Privigen" not in others and "Cuvitru" in others


def test_the_catalogue_lists_every_product(page: str) -> None:
    catalogue = page[page.index('id="catalogue"') : page.index('id="valuesets"')]
    for product in KB.catalogue.products:
        assert f"<code>{product.id}</code>" in catalogue
    assert "UNVERIFIED" in catalogue  # Gammagard S/D's unconfirmed excipients


def test_without_markdown_it_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "markdown_it", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'ivig-cds[reports]'")):
        markdown()


def test_record_text_from_a_scenario_stays_text(tmp_path: Path) -> None:
    """A condition whose text is a script, run through the service: shown, never live."""
    import shutil

    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES_DIR / "orders", fixtures / "orders")
    (fixtures / "scenarios").mkdir()
    name = "ivig-in-hyperviscosity-myeloma"
    bundle = json.loads((FIXTURES_DIR / "scenarios" / f"{name}.json").read_text())
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Condition":
            entry["resource"]["code"]["display"] = "x"
            entry["resource"]["code"]["text"] = "<script>alert('myeloma')</script> Multiple myeloma"
    (fixtures / "scenarios" / f"{name}.json").write_text(json.dumps(bundle))
    index = json.loads((FIXTURES_DIR / "scenarios" / "index.json").read_text())
    index["scenarios"] = [s for s in index["scenarios"] if s["name"] == name]
    (fixtures / "scenarios" / "index.json").write_text(json.dumps(index))
    shown = knowledge_document({}, {}, fixtures)
    assert "alert(" in section(shown, "thrombosis-risk")  # the record text is on the card
    assert "<script" not in shown
