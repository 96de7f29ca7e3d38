"""Every knowledge source links only to the document itself (contract §9 "Source links").

A link in ``hooks/knowledge/`` is a DOI, a DailyMed setid page, an FDA label PDF or a PubMed/PMC
record (``DOCUMENT_URL``); a source with none confirmed names its document and links nothing. The
walk below reads every knowledge file and tells identifiers from links by their place in the
structure, not by a list of values: a ``system`` (a Coding's or a ValueSet include's), a key that
names a code ``...System``, the canonical ``url`` of a FHIR resource and the ``url`` of a FHIR
extension name things; every other string that is a URL is a link. Prose (``url_note``, a source
extension's text) may mention a web page: it is not a link. The checks are shown to fail on a
home page, a search page and a marketing site.

The same holds on the cards: every scenario, both order hooks, both EHR profiles. A link the
clinical reference does not list says in its ``url_note`` where it was confirmed. Every code in
the knowledge names where it came from or carries the unverified mark.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    SHARED,
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    scenario_index,
    scenario_resources,
    service_id,
)
from flask.testing import FlaskClient

from cds_service.errors import KnowledgeError
from hooks.knowledge_base import KNOWLEDGE_DIR, load_knowledge
from hooks.knowledge_base.schema import DOCUMENT_URL
from hooks.knowledge_base.valuesets import EXT_SOURCE, EXT_UNVERIFIED

KNOWLEDGE_FILES = sorted(KNOWLEDGE_DIR.rglob("*.json"))
VALUESET_FILES = sorted((KNOWLEDGE_DIR / "valuesets").glob("*.json"))
URL = re.compile(r"https?://\S+")
CLINICAL_REFERENCE = SHARED / "clinical-reference.md"


def is_document_url(url: str) -> bool:
    return re.fullmatch(DOCUMENT_URL, url) is not None


def _is_identifier(parent: dict[str, Any], key: str) -> bool:
    """Whether ``parent[key]`` names something (a code system, a value set, an extension)
    rather than links to a document, judged by where it stands."""
    if key == "system" or key.endswith("System"):  # Coding.system, include.system, topicSystem
        return True
    if key == "url" and "resourceType" in parent:  # a FHIR resource's canonical URL
        return True
    # a FHIR extension: {"url": <its definition>, "value[x]": ...}
    return key == "url" and any(k.startswith("value") for k in parent)


def links(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, value) of every string in ``node`` that is a URL and not an identifier."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}/{key}"
            if isinstance(value, str):
                if URL.fullmatch(value) and not _is_identifier(node, key):
                    yield here, value
            else:
                yield from links(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            here = f"{path}[{index}]"
            if isinstance(item, str):
                if URL.fullmatch(item):
                    yield here, item
            else:
                yield from links(item, here)


def sources(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every citation object (``{"label": ..., "url"?: ..., "url_note"?: ...}``)."""
    if isinstance(node, dict):
        if isinstance(node.get("label"), str) and {"url", "url_note"} & node.keys():
            yield path, node
        elif path.endswith("/source") and isinstance(node.get("label"), str):
            yield path, node
        for key, value in node.items():
            yield from sources(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from sources(item, f"{path}[{index}]")


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


ALL_LINKS = [
    (f"{path.relative_to(KNOWLEDGE_DIR)}{where}", url)
    for path in KNOWLEDGE_FILES
    for where, url in links(read(path))
]


# --- the checker can fail ------------------------------------------------------------------------

NOT_DOCUMENTS = [
    "https://octagamusa.com",  # a product's marketing site
    "https://www.bivigam.com/healthcare-professionals/dosing-and-administration",
    "https://dailymed.nlm.nih.gov",  # a bare host
    "https://dailymed.nlm.nih.gov/dailymed/",  # a home page
    "https://dailymed.nlm.nih.gov/dailymed/search.cfm?query=1809671&searchdb=rxcui",  # a search
    "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=",  # no setid
    "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=7e5649da",  # half a setid
    "https://doi.org/",
    "https://www.fda.gov/",
    "https://www.drugs.com/ppa/immune-globulin.html",  # a secondary monograph
    "https://esid.org/layout/set/print/Education/IgA-Deficiency",
    "https://ivig.transfusionontario.org/dose",
    "https://pubmed.ncbi.nlm.nih.gov/?term=ivig",  # a PubMed search
    "http://doi.org/10.1111/ene.16073",  # not https
    "https://doi.org/10.1111/ene.16073 ",  # trailing text
]
DOCUMENTS = [
    "https://doi.org/10.1111/ene.16073",
    "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=7e5649da-75be-4a42-8eeb-4aeba562c401",
    "https://pubmed.ncbi.nlm.nih.gov/37814552/",
    "https://www.ncbi.nlm.nih.gov/pmc/articles/PMC7388344/",
]


@pytest.mark.parametrize("url", NOT_DOCUMENTS)
def test_the_checker_refuses_hosts_home_search_and_marketing_pages(url: str) -> None:
    assert not is_document_url(url)


@pytest.mark.parametrize("url", DOCUMENTS)
def test_the_checker_accepts_document_links(url: str) -> None:
    assert is_document_url(url)


def test_the_walk_finds_a_home_page_wherever_it_is_and_skips_identifiers() -> None:
    planted = {
        "resourceType": "ValueSet",
        "url": "https://ivig-cds.org/fhir/ValueSet/x",  # canonical: an identifier
        "extension": [
            {"url": "https://ivig-cds.org/fhir/StructureDefinition/y", "valueString": "z"}
        ],
        "compose": {"include": [{"system": "http://loinc.org"}]},
        "topicSystem": "https://ivig-cds.org/fhir/CodeSystem/card-topic",
        "topics": {
            "t": {"source": {"label": "Octagam", "url": "https://octagamusa.com"}},
            "u": {"more": ["https://esid.org"], "link": "https://www.drugs.com/x.html"},
            "v": {
                "source": {"label": "A", "url_note": "No link: https://octagamusa.com is a site"}
            },
        },
    }
    found = dict(links(planted))
    assert found == {
        "/topics/t/source/url": "https://octagamusa.com",
        "/topics/u/more[0]": "https://esid.org",
        "/topics/u/link": "https://www.drugs.com/x.html",
    }
    assert not any(is_document_url(url) for url in found.values())


# --- the real knowledge -------------------------------------------------------------------------


def test_the_walk_reads_every_knowledge_file() -> None:
    names = {path.name for path in KNOWLEDGE_FILES}
    assert {
        "products.json",
        "topics.json",
        "thresholds.json",
        "dose-ranges.json",
        "indication-guidance.json",
        "excipient-rules.json",
        "orderables.json",
    } <= names
    assert len(VALUESET_FILES) > 50
    linked_files = {where.split("/")[0] for where, _ in ALL_LINKS}
    assert {"products.json", "topics.json", "dose-ranges.json", "thresholds.json"} <= linked_files
    assert any("doi.org" in url for _, url in ALL_LINKS)
    assert any("dailymed" in url for _, url in ALL_LINKS)


@pytest.mark.parametrize(("where", "url"), ALL_LINKS, ids=[w for w, _ in ALL_LINKS])
def test_every_link_in_the_knowledge_is_a_document_link(where: str, url: str) -> None:
    assert is_document_url(url), f"{where} links {url}: not the document itself"


def test_every_source_names_its_document() -> None:
    found = [(f"{p.name}{w}", s) for p in KNOWLEDGE_FILES for w, s in sources(read(p))]
    assert len(found) > 100
    for where, source in found:
        assert source["label"].strip(), where
        assert not URL.fullmatch(source["label"].strip()), f"{where}: a URL for a name"


def test_a_threshold_source_linking_a_home_page_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    file = target / "thresholds.json"
    data = read(file)
    data["thresholds"]["thrombosis_age"]["source"]["url"] = "https://www.drugs.com"
    file.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(KnowledgeError, match=r"thresholds\.json.*source\.url"):
        load_knowledge(target)


def _identifier(url: str) -> str:
    """The part of a document link a citation list would quote: the setid, DOI, PMID or PMC id."""
    for marker in ("setid=", "doi.org/", "pubmed.ncbi.nlm.nih.gov/", "/articles/"):
        if marker in url:
            return url.split(marker, 1)[1].strip("/")
    return url


def test_a_link_the_clinical_reference_does_not_list_says_where_it_was_confirmed() -> None:
    if not CLINICAL_REFERENCE.is_file():
        pytest.skip(f"{CLINICAL_REFERENCE} is absent (../shared is not checked out here)")
    reference = CLINICAL_REFERENCE.read_text(encoding="utf-8")
    unlisted = 0
    for path in KNOWLEDGE_FILES:
        for where, source in sources(read(path)):
            url = source.get("url")
            if not url or _identifier(url) in reference:
                continue
            unlisted += 1
            note = source.get("url_note") or ""
            assert note.strip(), f"{path.name}{where}: {url} is not in the reference; say where"
    assert unlisted  # the DOIs confirmed with the search tool are among them


# --- codes: a source or the unverified mark -----------------------------------------------------


def _marked(element: dict[str, Any]) -> bool:
    return any(e.get("url") == EXT_UNVERIFIED for e in element.get("extension", []))


@pytest.mark.parametrize("path", VALUESET_FILES, ids=lambda p: p.stem)
def test_every_valueset_code_has_a_source_or_the_unverified_mark(path: Path) -> None:
    for index, include in enumerate(read(path)["compose"]["include"]):
        named = [
            e.get("valueString")
            for e in include.get("extension", [])
            if e.get("url") == EXT_SOURCE and str(e.get("valueString") or "").strip()
        ]
        for element in [*include.get("concept", []), *include.get("filter", [])]:
            code = element.get("code") or element.get("value")
            assert named or _marked(include) or _marked(element), (
                f"{path.name} include {index}: {code} names no source and is not marked unverified"
            )


def test_every_product_and_generic_code_has_a_source_or_the_unverified_mark() -> None:
    products = read(KNOWLEDGE_DIR / "products.json")
    codings = [
        (product["id"], coding) for product in products["products"] for coding in product["codings"]
    ]
    codings += [("generic", coding) for coding in products["generic"]["codings"]]
    assert codings
    for owner, coding in codings:
        assert str(coding.get("source") or "").strip() or coding.get("unverified") is True, (
            f"{owner}: {coding['system']}|{coding['code']} has no source and no unverified mark"
        )


def test_every_orderable_code_names_its_source() -> None:
    orderables = read(KNOWLEDGE_DIR / "orderables.json")["orderables"]
    for name, orderable in orderables.items():
        coded = orderable["code"].get("coding") or (orderable.get("route") or {}).get("coding")
        if coded:
            assert orderable["source"].strip(), f"{name} orders a code without a source"


# --- the cards ----------------------------------------------------------------------------------

SCENARIOS = scenario_index()
HOOKS = ("order-select", "order-sign")


def _request(scenario: dict[str, Any], hook: str) -> dict[str, Any]:
    resources = scenario_resources(scenario["name"])
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    names = scenario.get("orders") or [scenario["order"]]
    orders = [order_for(name, patient_id) for name in names]
    by_name = dict(zip(names, orders, strict=True))
    selected = scenario.get("selected") or [
        name for name, order in by_name.items() if order["resourceType"] == "MedicationRequest"
    ]
    return hook_request(
        hook,
        patient_id,
        orders,
        prefetch=full_prefetch(resources),
        selections=[f"{by_name[n]['resourceType']}/{by_name[n]['id']}" for n in selected],
    )


@pytest.mark.parametrize("profile", ["standard", "epic"])
def test_every_card_links_only_document_urls(tmp_path: Path, profile: str) -> None:
    """Every scenario, both order hooks: each card's ``source.url`` and each link in its detail
    is a document link (test_card_text.py checks the standard profile per scenario too)."""
    client: FlaskClient = make_app(tmp_path, REPEAT_WINDOW_S=0, EHR_PROFILE=profile).test_client()
    seen: set[str] = set()
    for hook in HOOKS:
        path = f"/cds-services/{service_id(client, hook)}"
        for scenario in SCENARIOS:
            response = client.post(path, json=_request(scenario, hook))
            assert response.status_code == 200, (scenario["name"], response.get_json())
            for card in response.get_json()["cards"]:
                where = f"{scenario['name']} {hook} {card['summary']!r}"
                assert card["source"]["label"].strip(), where
                url = card["source"].get("url")
                if url is not None:
                    assert is_document_url(url), f"{where}: source.url {url}"
                    seen.add(url)
                for link in re.findall(r"\]\((https?://[^)\s]+)\)", card.get("detail", "")):
                    assert is_document_url(link), f"{where}: the detail links {link}"
                    seen.add(link)
    assert any("doi.org" in url for url in seen) and any("dailymed" in url for url in seen)
