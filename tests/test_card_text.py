"""What a clinician reads on a card (contract §7.7; §9 "Escaping per field", "Verification status",
"Source links"), over HTTP, for every fixture scenario and both order hooks.

(a) No card field names an internal document, carries a section sign or says "unverified"; a
statement whose wording the knowledge marks unverified carries the plain phrase instead; a source
link is a document link (DOI, DailyMed setid page, FDA label PDF, PubMed/PMC record).
(b) With Markdown and HTML injected into the record's texts (conditions, allergies and their
reactions, medications, observations, procedures, the order's medication, route and reason; the
codes kept, so the same findings fire), no detail renders a tag, an image or a link of the
record's making, and no plain-text field holds an angle bracket or a backslash from the record.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from conftest import (
    fired,
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    scenario_index,
    scenario_resources,
    service_id,
)
from contexts import KB
from flask.testing import FlaskClient
from markdown_it import MarkdownIt

from hooks.knowledge_base.schema import DOCUMENT_URL
from hooks.text import NOT_CHECKED

SCENARIOS = scenario_index()
HOOKS = ("order-select", "order-sign")
INTERNAL = re.compile(
    r"clinical-reference|card-contract|\.md\b|seed material|\bthe seed\b|§|un-?verified",
    re.IGNORECASE,
)
IMAGE, TAG = "![x](http://evil.example/x.png)", "<img src=x>"
HOSTILE = f" {TAG} {IMAGE}"
RENDERER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# CodeableConcepts whose text or displays a card may quote (status and category codes are not).
QUOTED = ("code", "medicationCodeableConcept", "manifestation", "route", "reasonCode")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    # No order-select -> order-sign memory: every call shows every card it makes.
    return make_app(tmp_path_factory.mktemp("card-text"), REPEAT_WINDOW_S=0).test_client()


def _request(scenario: dict[str, Any], hook: str, inject: bool) -> dict[str, Any]:
    resources = scenario_resources(scenario["name"])
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    names = scenario.get("orders") or [scenario["order"]]
    orders = [order_for(name, patient_id) for name in names]
    by_name = dict(zip(names, orders, strict=True))
    selected = scenario.get("selected") or [
        name for name, order in by_name.items() if order["resourceType"] == "MedicationRequest"
    ]
    if inject:
        resources = [hostile(r) for r in resources]
        orders = [hostile(o) for o in orders]
    return hook_request(
        hook,
        patient_id,
        orders,
        prefetch=full_prefetch(resources),
        selections=[f"{by_name[n]['resourceType']}/{by_name[n]['id']}" for n in selected],
    )


def _cards(client: FlaskClient, hook: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(f"/cds-services/{service_id(client, hook)}", json=body)
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["cards"])


def hostile(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with HOSTILE appended to the text and every display of the concepts a card
    quotes (a concept with neither gets HOSTILE as its text); codes untouched."""
    changed = copy.deepcopy(resource)

    def concept(value: Any) -> None:
        if not isinstance(value, dict):
            return
        codings = [c for c in value.get("coding", []) if isinstance(c, dict)]
        for coding in codings:
            if isinstance(coding.get("display"), str):
                coding["display"] += HOSTILE
        if isinstance(value.get("text"), str):
            value["text"] += HOSTILE
        elif not any("display" in c for c in codings):
            value["text"] = HOSTILE.strip()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in QUOTED:
                    for one in item if isinstance(item, list) else [item]:
                        concept(one)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(changed)
    return changed


def plain_fields(card: dict[str, Any]) -> list[tuple[str, str]]:
    fields = [("summary", card["summary"]), ("source.label", card["source"]["label"])]
    for suggestion in card.get("suggestions", []):
        fields.append(("suggestion.label", suggestion["label"]))
        fields += [("action.description", a["description"]) for a in suggestion["actions"]]
    return fields


def unescaped(markdown: str) -> str:
    """The Markdown with each backslash escape replaced by a placeholder: what is left is the
    punctuation Markdown acts on."""
    return re.sub(r"\\[!-/:-@\[-`{-~]", "\x1a", markdown)


# Texts the knowledge marks unverified that a card may quote: guidance statements.
UNVERIFIED = [s.text for g in KB.guidance for s in g.statements if s.unverified]


# --- (a) the words on the card ------------------------------------------------------------------


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_no_internal_names_and_only_document_links(
    client: FlaskClient, scenario: dict[str, Any], hook: str
) -> None:
    for card in _cards(client, hook, _request(scenario, hook, inject=False)):
        for name, value in [*plain_fields(card), ("detail", card.get("detail", ""))]:
            found = INTERNAL.search(value)
            assert found is None, f"{name} says {found.group(0)!r}: {value}"
        url = card["source"].get("url")
        assert url is None or re.fullmatch(DOCUMENT_URL, url), f"not a document link: {url}"
        for link in re.findall(r"\]\((https?://[^)\s]+)\)", card.get("detail", "")):
            assert re.fullmatch(DOCUMENT_URL, link), f"the detail links {link}"
        for line in card.get("detail", "").splitlines():
            for statement in UNVERIFIED:
                if statement in line:
                    assert NOT_CHECKED in line, f"no plain phrase on: {line}"


def test_an_unverified_statement_reaches_a_card_with_the_plain_phrase(
    client: FlaskClient,
) -> None:
    """The check above is not vacuous: an autoimmune-encephalitis order quotes the statements on
    when IVIG or plasma exchange is preferred, whose wording the reference marks unverified."""
    scenario = next(s for s in SCENARIOS if s["name"] == "ivig-in-plex-autoimmune-encephalitis")
    cards = _cards(client, "order-sign", _request(scenario, "order-sign", inject=False))
    lines = [line for card in cards for line in card.get("detail", "").splitlines()]
    quoted = [line for line in lines if any(s in line for s in UNVERIFIED)]
    assert quoted and all(NOT_CHECKED in line for line in quoted)


# --- (b) the record's text, escaped per field ---------------------------------------------------


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_record_text_never_becomes_markup(
    client: FlaskClient, scenario: dict[str, Any], hook: str
) -> None:
    cards = _cards(client, hook, _request(scenario, hook, inject=True))
    assert fired(cards) == fired(_cards(client, hook, _request(scenario, hook, inject=False)))
    for card in cards:
        detail = card.get("detail", "")
        assert "<img" not in detail and "src=x>" not in detail
        assert "![x](" not in unescaped(detail) and "](http://evil" not in unescaped(detail)
        rendered = RENDERER.render(detail)
        assert "<img" not in rendered and "evil.example" not in "".join(
            re.findall(r"<a [^>]*>", rendered)
        )
        for name, value in plain_fields(card):  # our own words may say "eGFR < 60"
            assert "<img" not in value and "src=x>" not in value, f"{name}: {value}"
            assert "\\" not in value, f"{name} holds a backslash: {value}"


def test_the_injected_text_is_shown_escaped(client: FlaskClient) -> None:
    """The checks above are not vacuous: the record's text does reach the cards, escaped, in the
    detail and in a plain field (the thrombosis card names the condition in its summary)."""
    scenario = next(s for s in SCENARIOS if s["name"] == "ivig-in-dvt-resolved-history")
    cards = _cards(client, "order-sign", _request(scenario, "order-sign", inject=True))
    details = "".join(card.get("detail", "") for card in cards)
    assert "&lt;img src=x&gt;" in details
    assert r"\!\[x\]\(http" in details
    plain = [value for card in cards for _, value in plain_fields(card)]
    assert any("‹img src=x›" in value for value in plain)
