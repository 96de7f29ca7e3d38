"""The clinical knowledge in hooks/knowledge: it loads, is sourced, and broken copies are refused.

Each failure case copies the real knowledge directory to tmp_path, applies ONE defect in code and
checks that ``load_knowledge`` (and ``create_app``) refuse it with a KnowledgeError naming the file
and the problem.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED, make_app

from cds_service.errors import KnowledgeError
from hooks.context import IgOrder
from hooks.context.orders import read_medication_order
from hooks.context.orders import recognise as recognise_order
from hooks.context.read import Reader
from hooks.knowledge_base import KNOWLEDGE_DIR, KnowledgeBase, load_knowledge
from hooks.knowledge_base.schema import DOCUMENT_URL
from hooks.knowledge_base.valuesets import EXT_SOURCE, EXT_UNVERIFIED
from hooks.registry import REGISTRY
from hooks.terminology import ICD10CM, RXNORM, SNOMED, normalise_code

REQUIRED_VALUESETS = tuple(sorted(REGISTRY.valuesets()))
ORDER_TOPICS = REGISTRY.topics()
CLINICAL_REFERENCE = SHARED / "clinical-reference.md"
VALUESET_FILES = sorted((KNOWLEDGE_DIR / "valuesets").glob("*.json"))


def load(directory: Path = KNOWLEDGE_DIR) -> KnowledgeBase:
    return load_knowledge(
        directory, required_valuesets=REQUIRED_VALUESETS, required_topics=ORDER_TOPICS
    )


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    data = read_json(path)
    change(data)
    write_json(path, data)


def reference_text() -> str:
    if not CLINICAL_REFERENCE.is_file():
        pytest.skip(f"{CLINICAL_REFERENCE} is absent (../shared is not checked out here)")
    return CLINICAL_REFERENCE.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text of the section whose heading starts with ``heading`` up to the next heading."""
    match = re.search(rf"^#+ {re.escape(heading)}.*?$(.*?)(?=^#+ )", text, re.M | re.S)
    assert match, f"clinical-reference.md has no section {heading!r}"
    return match.group(1)


# --- the real knowledge -------------------------------------------------------------------------


def test_the_real_knowledge_loads_with_everything_the_rules_need(kb: KnowledgeBase) -> None:
    assert set(REQUIRED_VALUESETS) <= kb.valuesets.keys()
    assert set(kb.valuesets) == {path.stem for path in VALUESET_FILES}
    assert set(ORDER_TOPICS) <= kb.topics.keys()
    assert kb.catalogue.products
    assert kb.observations
    assert kb.orderables
    assert kb.route_codes
    assert set(kb.route_phrases) == {"IV", "SC"}


@pytest.mark.parametrize("path", VALUESET_FILES, ids=lambda p: p.stem)
def test_every_valueset_include_names_its_source(path: Path) -> None:
    valueset = read_json(path)
    includes = valueset["compose"]["include"]
    assert includes, f"{path.name} has no include"
    for index, include in enumerate(includes):
        sources = [
            ext.get("valueString")
            for ext in include.get("extension", [])
            if ext.get("url") == EXT_SOURCE
        ]
        assert sources, f"{path.name} include {index} ({include.get('system')}) names no source"
        assert all(isinstance(s, str) and s.strip() for s in sources), (path.name, index)


@pytest.mark.parametrize("topic", ORDER_TOPICS)
def test_every_topic_the_rules_emit_names_its_source(kb: KnowledgeBase, topic: str) -> None:
    """A named document, and a link only where one to the document itself is confirmed."""
    found = kb.topics[topic]
    assert found.source.label.strip()
    url = found.source.url
    assert url is None or re.fullmatch(DOCUMENT_URL, url), url
    assert found.display.strip()


# A sample of codes clinical-reference.md marks UNVERIFIED (its §6 tables and §11).
UNVERIFIED_SAMPLE = [
    (RXNORM, "1426680"),
    (ICD10CM, "Z86.718"),
    (ICD10CM, "Z86.711"),
    (ICD10CM, "D89.1"),
    (ICD10CM, "E86.0"),
    (ICD10CM, "G82.20"),
    (RXNORM, "72143"),
    (RXNORM, "11124"),
    (RXNORM, "4124"),
]


def _valuesets_with(system: str, code: str) -> dict[str, bool]:
    """Value set file -> whether every occurrence of the code there carries the unverified mark."""
    found: dict[str, bool] = {}
    for path in VALUESET_FILES:
        for include in read_json(path)["compose"]["include"]:
            if include.get("system") != system:
                continue
            include_mark = any(e.get("url") == EXT_UNVERIFIED for e in include.get("extension", []))
            for concept in include.get("concept", []):
                if normalise_code(system, concept["code"]) != normalise_code(system, code):
                    continue
                mark = include_mark or any(
                    e.get("url") == EXT_UNVERIFIED for e in concept.get("extension", [])
                )
                found[path.name] = found.get(path.name, True) and mark
    return found


@pytest.mark.parametrize(
    ("system", "code"), UNVERIFIED_SAMPLE, ids=[c for _, c in UNVERIFIED_SAMPLE]
)
def test_codes_unverified_in_the_reference_carry_the_unverified_extension(
    kb: KnowledgeBase, system: str, code: str
) -> None:
    text = reference_text()
    unverified_list = section(text, "11.")
    in_tables = any(
        code in line and "UNVERIFIED" in line for line in text.splitlines() if line.startswith("|")
    )
    assert code in unverified_list or in_tables, f"{code} is not UNVERIFIED in the reference"

    found = _valuesets_with(system, code)
    if not found:
        pytest.skip(f"{code} appears in no value set, so there is nothing to mark")
    unmarked = sorted(name for name, marked in found.items() if not marked)
    assert not unmarked, f"{code} lacks the unverified extension in {unmarked}"
    # ... and the loaded concept sets say so too, so cards can report it.
    key = (system, normalise_code(system, code))
    for name in found:
        assert kb.valuesets[name.removesuffix(".json")].codes[key] is True, name


def test_the_unverified_generic_rxnorm_code_is_marked_in_the_catalogue(kb: KnowledgeBase) -> None:
    generic = {(g.system, g.code): g for g in kb.catalogue.generic_codings}
    assert generic[(RXNORM, "1426680")].unverified is True


# --- products -----------------------------------------------------------------------------------

REFERENCE_BRANDS = [
    "Gammagard Liquid",
    "Gammagard S/D",
    "Gamunex-C",
    "Gammaked",
    "Privigen",
    "Octagam 5%",
    "Octagam 10%",
    "Flebogamma",
    "Bivigam",
    "Panzyga",
    "Asceniv",
    "Gammaplex",
    "Carimune NF",
    "Alyglo",
    "Yimmugo",
    "Qivigy",
    "Hizentra",
    "Cuvitru",
    "Xembify",
    "Cutaquig",
    "HyQvia",
]

HYPERIMMUNE = [
    "RhoGAM",
    "WinRho",
    "HepaGam B",
    "Cytogam",
    "Varizig",
    "Thymoglobulin",
    "rabies immune globulin",
]


def medication_request(text: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "order-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": text},
    }


def recognise(kb: KnowledgeBase, text: str) -> Any:
    raw = medication_request(text)
    return recognise_order(
        read_medication_order(raw, Reader("MedicationRequest/order-1", []), {}), kb
    )


def test_the_brand_list_covers_every_product_row_of_the_reference() -> None:
    text = reference_text()
    rows = section(text, "1a.") + section(text, "1b.")
    bold_first = re.findall(r"^\| \*\*(.+?)\*\*", rows, re.M)
    assert len(bold_first) >= 20, bold_first
    missing = [name for name in bold_first if not any(name.startswith(b) for b in REFERENCE_BRANDS)]
    assert not missing, f"reference products not in REFERENCE_BRANDS: {missing}"


@pytest.mark.parametrize("brand", REFERENCE_BRANDS)
def test_every_reference_product_is_recognised(kb: KnowledgeBase, brand: str) -> None:
    for text in (brand, f"{brand} 10 g IV infusion", brand.upper()):
        found = recognise(kb, text)
        assert isinstance(found, IgOrder), f"{text!r} not recognised: {found}"
        assert found.product is not None, f"{text!r} recognised only generically"
        names = [name.lower() for name in found.product.match_names]
        assert brand.lower() in names, f"{text!r} matched {found.product.id} ({names})"


@pytest.mark.parametrize("name", HYPERIMMUNE)
def test_hyperimmune_globulins_are_not_recognised(kb: KnowledgeBase, name: str) -> None:
    for text in (name, f"{name} (human immune globulin) IV", f"IVIG: {name}"):
        assert recognise(kb, text) is None, f"{text!r} was taken for immune globulin"


def test_recognition_tells_products_apart(kb: KnowledgeBase) -> None:
    assert recognise(kb, "Privigen").product.id == "privigen"
    assert recognise(kb, "Hizentra").product.id == "hizentra"
    assert recognise(kb, "Octagam 10%").product.id != recognise(kb, "Octagam 5%").product.id
    assert recognise(kb, "acetaminophen 500 mg") is None
    generic = recognise(kb, "immune globulin 10% IV")
    assert isinstance(generic, IgOrder)
    assert generic.product is None


# --- broken copies ------------------------------------------------------------------------------


def _vs(root: Path, name: str) -> Path:
    return root / "valuesets" / f"{name}.json"


def valueset_not_json(root: Path) -> None:
    _vs(root, "hypertension").write_text('{"resourceType": "ValueSet", "id": ', encoding="utf-8")


def valueset_id_not_file_name(root: Path) -> None:
    edit_json(_vs(root, "hypertension"), lambda vs: vs.update(id="high-blood-pressure"))


def valueset_url_not_file_name(root: Path) -> None:
    edit_json(
        _vs(root, "hypertension"),
        lambda vs: vs.update(url="https://ivig-cds.org/fhir/ValueSet/high-blood-pressure"),
    )


def include_without_source(root: Path) -> None:
    def change(vs: dict[str, Any]) -> None:
        include = vs["compose"]["include"][0]
        include["extension"] = [e for e in include["extension"] if e["url"] != EXT_SOURCE]
        if not include["extension"]:
            del include["extension"]

    edit_json(_vs(root, "hypertension"), change)


def _first_filter(vs: dict[str, Any]) -> dict[str, Any]:
    return next(f for inc in vs["compose"]["include"] for f in inc.get("filter", []))


def filter_op_not_is_a(root: Path) -> None:
    edit_json(_vs(root, "hypertension"), lambda vs: _first_filter(vs).update(op="descendent-of"))


def filter_on_snomed(root: Path) -> None:
    def change(vs: dict[str, Any]) -> None:
        include = next(i for i in vs["compose"]["include"] if i["system"] == SNOMED)
        include["filter"] = [{"property": "concept", "op": "is-a", "value": "38341003"}]

    edit_json(_vs(root, "hypertension"), change)


def valueset_empty(root: Path) -> None:
    def change(vs: dict[str, Any]) -> None:
        source = {"url": EXT_SOURCE, "valueString": "test"}
        vs["compose"]["include"] = [{"system": SNOMED, "extension": [source]}]
        vs.pop("extension", None)

    edit_json(_vs(root, "hypertension"), change)


def rule_valueset_missing(root: Path) -> None:
    _vs(root, "hypertension").unlink()


def _topics(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    edit_json(root / "topics.json", change)


def topic_with_home_page_url(root: Path) -> None:
    _topics(
        root,
        lambda t: t["topics"]["renal-risk"]["source"].update(url="https://www.drugs.com/"),
    )


def topic_with_http_source(root: Path) -> None:
    _topics(
        root,
        lambda t: t["topics"]["renal-risk"]["source"].update(url="http://dailymed.nlm.nih.gov"),
    )


def topic_unknown_override_reason(root: Path) -> None:
    _topics(root, lambda t: t["topics"]["renal-risk"]["overrideReasons"].append("felt-like-it"))


def required_topic_missing(root: Path) -> None:
    _topics(root, lambda t: t["topics"].pop("renal-risk"))


def _product(root: Path, product_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    def apply(data: dict[str, Any]) -> None:
        change(next(p for p in data["products"] if p["id"] == product_id))

    edit_json(root / "products.json", apply)


def product_route_im(root: Path) -> None:
    _product(root, "privigen", lambda p: p.update(routes=["IM"]))


def product_without_route(root: Path) -> None:
    _product(root, "privigen", lambda p: p.update(routes=[]))


def product_unknown_excipient(root: Path) -> None:
    _product(root, "privigen", lambda p: p["excipients"].append("trehalose"))


def product_unknown_unverified_excipient(root: Path) -> None:
    _product(root, "privigen", lambda p: p.update(excipients_unverified=["mannitol"]))


def product_with_search_page_url(root: Path) -> None:
    search = "https://dailymed.nlm.nih.gov/dailymed/search.cfm?query=1809671&searchdb=rxcui"
    _product(root, "privigen", lambda p: p["source"].update(url=search))


def product_duplicate_match_name(root: Path) -> None:
    _product(root, "hizentra", lambda p: p["match_names"].append("PRIVIGEN"))


def product_route_label_off_route(root: Path) -> None:
    label = {"route": "SC", "indications": ["PI"], "source": "a test"}
    _product(root, "privigen", lambda p: p.update(route_labels=[label]))


def young_child_rule_unknown_valueset(root: Path) -> None:
    edit_json(
        root / "excipient-rules.json",
        lambda e: e["young_children"][0].update(excluded="fructose-intolerance-ruled-out"),
    )


def _observation(root: Path, concept: str, change: Callable[[dict[str, Any]], None]) -> None:
    edit_json(root / "observations.json", lambda o: change(o["concepts"][concept]))


def observation_unknown_valueset(root: Path) -> None:
    _observation(root, "body-weight", lambda c: c.update(valueset="body-mass-of-patient"))


def observation_without_unit(root: Path) -> None:
    _observation(root, "serum-creatinine", lambda c: c.pop("unit"))


def orderable_without_source(root: Path) -> None:
    edit_json(root / "orderables.json", lambda o: o["orderables"]["bun"].pop("source"))


def product_field_typo(root: Path) -> None:
    _product(root, "privigen", lambda p: p.update(excipents=p.pop("excipients")))


def dose_range_not_a_number(root: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["indications"][0]["regimens"][0]["high_g_per_kg"] = "two"

    edit_json(root / "dose-ranges.json", change)


def threshold_missing(root: Path) -> None:
    edit_json(root / "thresholds.json", lambda t: t["thresholds"].pop("thrombosis_age"))


def threshold_without_source(root: Path) -> None:
    edit_json(root / "thresholds.json", lambda t: t["thresholds"]["egfr"].pop("source"))


def excipient_rule_unknown_indicator(root: Path) -> None:
    edit_json(
        root / "excipient-rules.json", lambda e: e["rules"][0].update(indicator="catastrophic")
    )


# case -> (defect, words the KnowledgeError message must contain)
BROKEN: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "valueset-not-json": (valueset_not_json, ("hypertension.json", "JSON")),
    "valueset-id-not-file-name": (valueset_id_not_file_name, ("hypertension.json", "id")),
    "valueset-url-not-file-name": (valueset_url_not_file_name, ("hypertension.json", "url")),
    "include-without-source": (include_without_source, ("hypertension.json", "source")),
    "filter-op-not-is-a": (filter_op_not_is_a, ("hypertension.json", "is-a")),
    "filter-on-snomed": (filter_on_snomed, ("hypertension.json", "filter")),
    "valueset-without-code-filter-or-text": (valueset_empty, ("hypertension.json", "no code")),
    "rule-reads-missing-valueset": (rule_valueset_missing, ("value sets", "hypertension")),
    "topic-with-home-page-url": (topic_with_home_page_url, ("topics.json", "renal-risk", "url")),
    "topic-with-http-source": (topic_with_http_source, ("topics.json", "renal-risk", "https")),
    "topic-unknown-override-reason": (
        topic_unknown_override_reason,
        ("topics.json", "renal-risk", "felt-like-it"),
    ),
    "required-topic-missing": (required_topic_missing, ("topics.json", "renal-risk")),
    "product-route-im": (product_route_im, ("products.json", "privigen", "route")),
    "product-without-route": (product_without_route, ("products.json", "privigen", "route")),
    "product-unknown-excipient": (
        product_unknown_excipient,
        ("products.json", "privigen", "trehalose"),
    ),
    "product-unknown-unverified-excipient": (
        product_unknown_unverified_excipient,
        ("products.json", "privigen", "mannitol"),
    ),
    "product-with-search-page-url": (
        product_with_search_page_url,
        ("products.json", "privigen", "url"),
    ),
    "product-duplicate-match-name": (
        product_duplicate_match_name,
        ("products.json", "match_names", "privigen"),
    ),
    "product-route-label-off-route": (
        product_route_label_off_route,
        ("products.json", "privigen", "route_labels", "SC"),
    ),
    "young-child-rule-unknown-valueset": (
        young_child_rule_unknown_valueset,
        ("value sets", "fructose-intolerance-ruled-out"),
    ),
    "observation-unknown-valueset": (
        observation_unknown_valueset,
        ("observations.json", "body-weight", "body-mass-of-patient"),
    ),
    "observation-without-unit": (
        observation_without_unit,
        ("observations.json", "serum-creatinine", "unit"),
    ),
    "orderable-without-source": (orderable_without_source, ("orderables.json", "bun", "source")),
    "product-field-typo": (product_field_typo, ("products.json", "privigen", "excipents")),
    "dose-range-not-a-number": (
        dose_range_not_a_number,
        ("dose-ranges.json", "indications[gbs].regimens[0].high_g_per_kg", "number"),
    ),
    "threshold-missing": (threshold_missing, ("thresholds.json", "thrombosis_age")),
    "threshold-without-source": (threshold_without_source, ("thresholds.json", "egfr", "source")),
    "excipient-rule-unknown-indicator": (
        excipient_rule_unknown_indicator,
        ("excipient-rules.json", "rules[0].indicator"),
    ),
}


def broken_copy(tmp_path: Path, case: str) -> Path:
    root = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, root)
    defect, _ = BROKEN[case]
    defect(root)
    return root


def test_an_unchanged_copy_loads(tmp_path: Path) -> None:
    root = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, root)
    copy = load(root)
    assert copy.valuesets.keys() == load().valuesets.keys()


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_copy_is_refused_naming_the_file_and_problem(tmp_path: Path, case: str) -> None:
    root = broken_copy(tmp_path, case)
    _, words = BROKEN[case]

    with pytest.raises(KnowledgeError) as raised:
        load(root)

    message = raised.value.message
    for word in words:
        assert word.lower() in message.lower(), f"{case}: {word!r} not in {message!r}"


@pytest.mark.parametrize(
    "case", ["valueset-not-json", "rule-reads-missing-valueset", "product-route-im"]
)
def test_create_app_refuses_to_start_on_broken_knowledge(tmp_path: Path, case: str) -> None:
    root = broken_copy(tmp_path, case)

    with pytest.raises(KnowledgeError):
        make_app(tmp_path, KNOWLEDGE_DIR=str(root))


def test_create_app_starts_on_an_unchanged_copy(tmp_path: Path) -> None:
    root = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, root)
    app = make_app(tmp_path, KNOWLEDGE_DIR=str(root))
    services = app.test_client().get("/cds-services").get_json()["services"]
    assert {s["id"] for s in services} >= {"ivig-order-select", "ivig-order-sign"}


# --- what a card quotes from the knowledge (contract §7.7, §9) ----------------------------------

# Names of internal documents, section signs and the word "unverified": never on a card.
INTERNAL = re.compile(
    r"clinical-reference|card-contract|\.md\b|seed material|\bthe seed\b|§|un-?verified",
    re.IGNORECASE,
)
KNOWLEDGE_FILES = sorted(KNOWLEDGE_DIR.glob("*.json"))


def _sources(value: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(path, source object) for every ``source`` object in a knowledge file."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "source" and isinstance(item, dict):
                found.append((f"{path}.{key}", item))
            found += _sources(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _sources(item, f"{path}[{index}]")
    return found


@pytest.mark.parametrize(
    # thresholds.json: its sources document the numbers for the docs; no card quotes them.
    "path",
    [p for p in KNOWLEDGE_FILES if p.name != "thresholds.json"],
    ids=lambda p: p.name,
)
def test_every_source_url_is_a_document_link(path: Path) -> None:
    """A DOI, a DailyMed setid page, an FDA label PDF or a PubMed/PMC record; otherwise no url
    and the label names the document (contract §9 "Source links")."""
    for where, source in _sources(read_json(path)):
        assert str(source.get("label", "")).strip(), f"{path.name}{where}: no label"
        url = source.get("url")
        assert url is None or re.fullmatch(DOCUMENT_URL, url), f"{path.name}{where}: {url}"


def test_the_document_link_pattern_refuses_home_pages_and_searches() -> None:
    linked = [
        "https://doi.org/10.1111/ene.16073",
        "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=7e5649da-75be-4a42-8eeb-4aeba562c401",
        "https://www.fda.gov/media/83205/download",
        "https://pubmed.ncbi.nlm.nih.gov/28356445/",
        "https://pmc.ncbi.nlm.nih.gov/articles/PMC4977114/",
    ]
    refused = [
        "https://pathway.md",
        "https://www.drugs.com/ppa/immune-globulin.html",
        "https://dailymed.nlm.nih.gov/dailymed/search.cfm?query=1809671&searchdb=rxcui",
        "https://ivig.transfusionontario.org/",
        "http://doi.org/10.1111/ene.16073",
        "https://doi.org/10.1111/ene.16073 trailing",
    ]
    assert all(re.fullmatch(DOCUMENT_URL, url) for url in linked)
    assert not any(re.fullmatch(DOCUMENT_URL, url) for url in refused)


def _quoted_texts(kb: KnowledgeBase) -> list[tuple[str, str]]:
    """(where, text) for every knowledge text a card can quote."""
    texts: list[tuple[str, str]] = []
    for name, topic in kb.topics.items():
        texts += [(f"topic {name}", topic.display), (f"topic {name} source", topic.source.label)]
    for product in kb.catalogue.products:
        where = f"product {product.id}"
        texts += [(where, product.brand), (f"{where} source", product.source.label)]
        texts.append((f"{where} IgA", product.iga.shown))
        if product.scig is not None:
            texts.append((f"{where} scig source", product.scig.source.label))
            for limit in product.scig.site_limits:
                texts += [(f"{where} site limit", limit.group), (f"{where} site limit", limit.note)]
    for rule in kb.excipient_rules:
        where = f"excipient rule {rule.excipient}/{rule.valueset}"
        texts += [(where, rule.basis), (f"{where} source", rule.source.label)]
    for indication in kb.dose_ranges:
        where = f"dose range {indication.id}"
        texts += [(where, indication.display), (f"{where} source", indication.source.label)]
        texts += [(where, regimen.description) for regimen in indication.regimens]
    for guidance in kb.guidance:
        texts.append((f"guidance {guidance.id}", guidance.display))
        for statement in guidance.statements:
            where = f"guidance {statement.id}"
            texts += [(where, statement.text), (f"{where} source", statement.source.label)]
    for name, orderable in kb.orderables.items():
        texts.append((f"orderable {name}", orderable.code.text or ""))
    return texts


def test_no_text_a_card_quotes_names_an_internal_document_or_says_unverified(
    kb: KnowledgeBase,
) -> None:
    """Unverified items stay marked in the knowledge (a field); a card shows only the plain
    phrase, which the rules and ``Iga.shown`` add from that field."""
    quoted = _quoted_texts(kb)
    assert len(quoted) > 200  # every file's texts were read
    offending = [(where, text) for where, text in quoted if INTERNAL.search(text)]
    assert offending == []


def test_an_unverified_iga_figure_carries_the_plain_phrase(kb: KnowledgeBase) -> None:
    cuvitru = kb.catalogue.by_id("cuvitru")
    assert cuvitru.iga.unverified
    assert cuvitru.iga.shown.endswith("(wording not yet checked against the source)")
    asceniv = kb.catalogue.by_id("asceniv")  # no figure stated: nothing to qualify
    assert asceniv.iga.unverified and asceniv.iga.shown == asceniv.iga.text
