"""CDS Hooks 2.0 protocol conformance of the service, requirement by requirement.

Each test names the Inferno requirement ID(s) (``cds-hooks_2.0_requirements``, rows whose actor is
"Service") it proves, as ``req_NNN``. Tests without an ID check the service's own HTTP rules
(``openapi.yaml``). Requests are the replayable examples in ``fhir_fixtures/requests/``.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from conftest import (
    FHIR_BASE,
    FIXTURES,
    FakeFhirServer,
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    scenario_index,
    scenario_resources,
    searchset,
    topics_of,
)
from flask.testing import FlaskClient
from responses import matchers

from hooks.services import Checker

PATIENT_ID = "ivig-in-dvt-resolved-history"
TOKEN = "secret-token-never-logged"
UNTRUSTED_SERVER = "https://untrusted.example/fhir"
ORDER_HOOKS = {"order-select": "ivig-order-select", "order-sign": "ivig-order-sign"}
SERVICE_FOR_HOOK = {**ORDER_HOOKS, "patient-view": "ivig-patient-view"}
ORDER_PREFETCH_KEYS = {
    "patient",
    "conditions",
    "observations",
    "allergies",
    "medicationRequests",
    "medicationStatements",
    "procedures",
}
ALLOWED_TOKENS = {
    "context.patientId",
    "context.encounterId",
    "context.userId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}
ABSOLUTE_URL = re.compile(r"^https?://[^/\s]+[^\s]*$")
RELATIVE_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
# Single-order scenarios; the multi-order ones (plasma exchange) run in test_scenarios.py.
FIRING_SCENARIOS = [s for s in scenario_index() if s["fires"] and "order" in s]


def request_fixture(name: str) -> dict[str, Any]:
    """One of the replayable request bodies in ``fhir_fixtures/requests/``."""
    return dict(json.loads((FIXTURES / "requests" / f"{name}.json").read_text(encoding="utf-8")))


def post(client: FlaskClient, service: str, body: Any) -> Any:
    return client.post(f"/cds-services/{service}", json=body)


def assert_operation_outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], "an OperationOutcome needs at least one issue"
    for issue in body["issue"]:
        assert issue["severity"] in {"error", "fatal"}
        assert isinstance(issue["code"], str)
        assert issue["code"]
        assert isinstance(issue["diagnostics"], str)
        assert issue["diagnostics"]
    return dict(body)


def expressions(outcome: dict[str, Any]) -> list[str]:
    return [expr for issue in outcome["issue"] for expr in issue.get("expression", [])]


def empty_values(value: Any, path: str = "$") -> list[str]:
    """Paths of every null, "", [] or {} inside ``value``."""
    if value is None or value in ("", [], {}):
        return [path]
    if isinstance(value, dict):
        return [bad for key, item in value.items() for bad in empty_values(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [bad for i, item in enumerate(value) for bad in empty_values(item, f"{path}[{i}]")]
    return []


# ---------------------------------------------------------------- cards of every firing scenario


@pytest.fixture(scope="module")
def scenario_calls(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every scenario that fires, sent to both order services with full prefetch."""
    # The repeat memory off: these calls check each answer whole, not order-select -> order-sign.
    app = make_app(tmp_path_factory.mktemp("scenario-cards"), REPEAT_WINDOW_S=0)
    client = app.test_client()
    calls = []
    for scenario in FIRING_SCENARIOS:
        order = order_for(scenario["order"], scenario["name"])
        prefetch = full_prefetch(scenario_resources(scenario["name"]))
        for hook, service in ORDER_HOOKS.items():
            response = post(
                client, service, hook_request(hook, scenario["name"], [order], prefetch)
            )
            assert response.status_code == 200, (scenario["name"], response.get_json())
            calls.append(
                {
                    "name": f"{hook}:{scenario['name']}",
                    "order": order,
                    "response": response,
                    "body": response.get_json(),
                }
            )
    return calls


@pytest.fixture(scope="module")
def all_cards(scenario_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cards = [card for call in scenario_calls for card in call["body"]["cards"]]
    assert len(cards) >= len(FIRING_SCENARIOS), "every firing scenario yields at least one card"
    return cards


def all_suggestions(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [suggestion for card in cards for suggestion in card.get("suggestions", [])]


def all_actions(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [action for s in all_suggestions(cards) for action in s.get("actions", [])]


def test_req_001_responses_are_json(client: FlaskClient, scenario_calls: list[dict[str, Any]]):
    """req_001: discovery and hook responses are JSON."""
    responses_ = [client.get("/cds-services")] + [call["response"] for call in scenario_calls]
    for response in responses_:
        assert response.mimetype == "application/json"
        assert isinstance(json.loads(response.get_data(as_text=True)), dict)


def test_req_003_no_null_or_empty_values(client: FlaskClient, scenario_calls: list[dict[str, Any]]):
    """req_003: no JSON element is null or empty, except the top-level ``cards`` array."""
    discovery = client.get("/cds-services").get_json()
    assert empty_values(discovery) == []
    for call in scenario_calls:
        body = call["body"]
        assert body["cards"], call["name"]
        for i, card in enumerate(body["cards"]):
            assert empty_values(card, f"{call['name']}.cards[{i}]") == []
        for key, value in body.items():
            if key != "cards":
                assert empty_values(value, f"{call['name']}.{key}") == []


def test_req_003_077_empty_cards_is_the_only_empty_value(client: FlaskClient):
    """req_003, req_077: with no guidance the body is exactly ``{"cards": []}``."""
    response = post(client, "ivig-order-select", request_fixture("order-select-not-ivig"))
    assert response.status_code == 200
    assert json.loads(response.get_data(as_text=True)) == {"cards": []}


# ---------------------------------------------------------------------------------- discovery


def test_req_004_005_013_discovery_at_cds_services(client: FlaskClient):
    """req_004, req_005, req_013: GET {baseUrl}/cds-services answers 200 with JSON."""
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"


def test_req_006_discovery_lists_services(client: FlaskClient):
    """req_006: the discovery response is an object holding a ``services`` array."""
    body = client.get("/cds-services").get_json()
    assert isinstance(body, dict)
    assert isinstance(body["services"], list)
    assert body["services"]


def test_req_007_to_012_service_fields(client: FlaskClient):
    """req_007 hook, req_008 title, req_009 description, req_010 id, req_011 prefetch,
    req_012 usageRequirements: each with its type; one service per hook, unique ids."""
    services = client.get("/cds-services").get_json()["services"]
    for service in services:
        for field in ("hook", "title", "description", "id"):
            assert isinstance(service[field], str), (service, field)
            assert service[field].strip(), (service, field)
        assert isinstance(service["prefetch"], dict)
        if "usageRequirements" in service:
            assert isinstance(service["usageRequirements"], str)
            assert service["usageRequirements"]
    assert {s["hook"]: s["id"] for s in services} == SERVICE_FOR_HOOK
    assert len(services) == 3
    assert len({s["id"] for s in services}) == 3


def test_req_016_service_endpoint_is_base_plus_id(client: FlaskClient):
    """req_016: each discovered id is callable at {baseUrl}/cds-services/{id}."""
    bodies = {
        "order-select": request_fixture("order-select-full-prefetch"),
        "order-sign": request_fixture("order-sign-full-prefetch"),
        "patient-view": request_fixture("patient-view"),
    }
    for service in client.get("/cds-services").get_json()["services"]:
        response = client.post(f"/cds-services/{service['id']}", json=bodies[service["hook"]])
        assert response.status_code == 200, (service["id"], response.get_json())
        assert "cards" in response.get_json()


def test_req_029_036_prefetch_templates_in_discovery(client: FlaskClient):
    """req_029, req_036: prefetch templates are registered in discovery, one key per template."""
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    for service_id in ORDER_HOOKS.values():
        assert set(services[service_id]["prefetch"]) == ORDER_PREFETCH_KEYS
    assert set(services["ivig-patient-view"]["prefetch"]) == {
        "patient",
        "conditions",
        "observations",
        "medicationRequests",
        "medicationStatements",
    }
    for service in services.values():
        for key, template in service["prefetch"].items():
            assert isinstance(key, str)
            assert key
            assert isinstance(template, str)
            assert template


def discovered_templates(client: FlaskClient) -> list[tuple[str, str, str]]:
    services = client.get("/cds-services").get_json()["services"]
    found = [(s["id"], k, t) for s in services for k, t in s["prefetch"].items()]
    assert len(found) == 2 * len(ORDER_PREFETCH_KEYS) + 5  # two order services, patient-view
    return found


def test_req_035_055_056_057_059_prefetch_tokens(client: FlaskClient):
    """req_035, req_055 ({{ }} delimiters), req_056 (context path or user identifier),
    req_057 (root-level primitive context fields only), req_059 (``context.<field>`` names)."""
    for service_id, key, template in discovered_templates(client):
        tokens = re.findall(r"\{\{(.*?)\}\}", template)
        assert tokens, (service_id, key, template)
        for token in tokens:
            assert token.strip() in ALLOWED_TOKENS, (service_id, key, token)
            assert token == token.strip(), f"{key}: token with spaces {token!r}"
        rest = re.sub(r"\{\{.*?\}\}", "", template)
        assert "{" not in rest, f"{key}: unbalanced delimiters in {template}"
        assert "}" not in rest, f"{key}: unbalanced delimiters in {template}"


def test_req_058_prefetch_query_subset(client: FlaskClient):
    """req_058: relative instance reads or type-level searches with simple parameters; no DSTU2
    ``sort:desc``, no FHIRPath (function calls, ``%`` variables, ``today()``)."""
    search_params = {"patient", "subject", "code", "status", "category", "date", "_count", "_sort"}
    for service_id, key, template in discovered_templates(client):
        assert "sort:desc" not in template, (service_id, key)
        assert not re.search(r"[()%]", template), f"{key}: FHIRPath in {template}"
        assert not template.startswith(("/", "http:", "https:")), f"{key}: not relative"
        path, _, query = template.partition("?")
        if query:
            assert re.fullmatch(r"[A-Z][A-Za-z]+", path), (key, template)
            names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
            assert names <= search_params, (key, names - search_params)
            assert "patient" in names, f"{key}: a search not scoped to the patient"
        else:
            assert re.fullmatch(r"[A-Z][A-Za-z]+/\{\{[A-Za-z.]+\}\}", path), (key, template)


# --------------------------------------------------------------------------------- prefetch


def test_req_028_full_prefetch_needs_no_fhir_server(client: FlaskClient, fhir_mock: Any):
    """req_028, req_034: with every key prefetched, cards come without any FHIR request."""
    body = request_fixture("order-select-full-prefetch")
    body["fhirServer"] = FHIR_BASE
    response = post(client, "ivig-order-select", body)
    assert response.status_code == 200
    topics = topics_of(response.get_json()["cards"])
    assert topics == ["thrombosis-risk", "hemolysis-risk"]  # 2 g/kg and no ABO group on file
    assert len(fhir_mock.calls) == 0


def test_req_034_060_missing_keys_fetched_from_fhir_server(client: FlaskClient, fhir_mock: Any):
    """req_034, req_060: keys the client did not prefetch are read from ``fhirServer``, and
    only those keys."""
    server = FakeFhirServer(fhir_mock, scenario_resources(PATIENT_ID))
    response = post(
        client, "ivig-order-select", request_fixture("order-select-missing-prefetch-keys")
    )
    assert response.status_code == 200, response.get_json()
    topics = topics_of(response.get_json()["cards"])
    assert topics == ["thrombosis-risk", "hemolysis-risk"], "labs were fetched: no missing-data"
    fetched = {urlsplit(url).path.rsplit("/", 1)[-1] for url in server.requests}
    assert fetched == {
        "Observation",
        "AllergyIntolerance",
        "MedicationRequest",
        "MedicationStatement",
        "Procedure",
    }


def test_prefetch_null_means_no_data_and_is_not_requeried(client: FlaskClient, fhir_mock: Any):
    """#prefetch-template: a ``null`` value means the client has no data: not re-queried even
    when a FHIR server is available."""
    body = request_fixture("order-select-null-prefetch-values")
    body["fhirServer"] = FHIR_BASE
    body["fhirAuthorization"] = request_fixture("order-select-missing-prefetch-keys")[
        "fhirAuthorization"
    ]
    server = FakeFhirServer(fhir_mock, scenario_resources(PATIENT_ID))
    response = post(client, "ivig-order-select", body)
    assert response.status_code == 200
    assert server.requests == []
    topics = set(topics_of(response.get_json()["cards"]))
    assert topics == {"thrombosis-risk", "hemolysis-risk", "missing-data"}, "no observations"


def test_req_052_operation_outcome_prefetch_is_refetched(client: FlaskClient, fhir_mock: Any):
    """req_052: a prefetch value that is an OperationOutcome is not data: the service fetches
    that key (and only that key) from the FHIR server."""
    body = request_fixture("order-select-operationoutcome-prefetch")
    assert body["prefetch"]["observations"]["resourceType"] == "OperationOutcome"
    server = FakeFhirServer(fhir_mock, scenario_resources(PATIENT_ID))
    response = post(client, "ivig-order-select", body)
    assert response.status_code == 200, response.get_json()
    assert [urlsplit(url).path for url in server.requests] == ["/r4/Observation"]
    topics = topics_of(response.get_json()["cards"])
    assert topics == ["thrombosis-risk", "hemolysis-risk"], "the refetched weight was used"


def test_req_052_operation_outcome_without_server_is_a_gap(client: FlaskClient):
    """req_052: an OperationOutcome prefetch is never read as data; without a FHIR server the
    service reports the gap instead of silently treating it as 'no observations'."""
    body = request_fixture("order-select-operationoutcome-prefetch")
    del body["fhirServer"], body["fhirAuthorization"]
    response = post(client, "ivig-order-select", body)
    assert response.status_code == 200
    topics = set(topics_of(response.get_json()["cards"]))
    assert "thrombosis-risk" in topics
    assert topics & {"data-incomplete", "missing-data"}, topics


def test_paginated_prefetch_next_page_is_followed(client: FlaskClient, fhir_mock: Any):
    """#prefetch-template (2.0): a paginated prefetch Bundle's ``next`` page is read from the FHIR
    server with the bearer token, and its resources are used (an IgA deficiency on page 2)."""
    body = request_fixture("order-select-paginated-prefetch")
    next_url = next(
        link["url"] for link in body["prefetch"]["conditions"]["link"] if link["relation"] == "next"
    )
    iga = next(
        r
        for r in scenario_resources("ivig-in-iga-deficiency-coded")
        if r["resourceType"] == "Condition"
    )
    iga = json.loads(json.dumps(iga).replace("ivig-in-iga-deficiency-coded", PATIENT_ID))
    base, _, query = next_url.partition("?")
    fhir_mock.add(
        responses.GET,
        base,
        json=searchset([iga]),
        match=[
            matchers.query_string_matcher(query),
            matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"}),
        ],
    )
    response = post(client, "ivig-order-select", body)
    assert response.status_code == 200, response.get_json()
    assert len(fhir_mock.calls) == 1
    topics = set(topics_of(response.get_json()["cards"]))
    assert topics == {"thrombosis-risk", "iga-deficiency", "hemolysis-risk"}


def without_keys(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    for key in keys:
        del body["prefetch"][key]
    return body


@pytest.mark.parametrize("missing", ["patient", "conditions"])
def test_req_054_412_without_fhir_server(client: FlaskClient, fhir_mock: Any, missing: str):
    """req_054: essential data neither prefetched nor fetchable (no fhirServer) -> 412 with an
    OperationOutcome naming the prefetch key."""
    body = without_keys(request_fixture("order-select-missing-prefetch-keys"), missing)
    del body["fhirServer"], body["fhirAuthorization"]
    outcome = assert_operation_outcome(post(client, "ivig-order-select", body), 412)
    assert f"prefetch.{missing}" in expressions(outcome)
    assert len(fhir_mock.calls) == 0


@pytest.mark.parametrize("missing", ["patient", "conditions"])
def test_req_054_412_fhir_server_not_allowed(client: FlaskClient, fhir_mock: Any, missing: str):
    """req_054: a fhirServer that is not on the allowlist is never contacted (the token is not
    sent to it): 412, and no HTTP request at all."""
    hits: list[str] = []
    fhir_mock.add_callback(
        responses.GET,
        re.compile(re.escape(UNTRUSTED_SERVER) + ".*"),
        callback=lambda request: hits.append(request.url) or (200, {}, "{}"),
    )
    body = without_keys(request_fixture("order-select-missing-prefetch-keys"), missing)
    body["fhirServer"] = UNTRUSTED_SERVER
    outcome = assert_operation_outcome(post(client, "ivig-order-select", body), 412)
    assert f"prefetch.{missing}" in expressions(outcome)
    assert hits == []
    assert len(fhir_mock.calls) == 0


def test_req_054_412_when_fhir_server_fails(client: FlaskClient, fhir_mock: Any):
    """req_054: the allowed FHIR server answers 503 for the Conditions -> 412."""
    fhir_mock.add(responses.GET, re.compile(re.escape(FHIR_BASE) + "/Condition.*"), status=503)
    body = without_keys(request_fixture("order-select-missing-prefetch-keys"), "conditions")
    outcome = assert_operation_outcome(post(client, "ivig-order-select", body), 412)
    assert "prefetch.conditions" in expressions(outcome)


def test_req_061_bearer_token_on_every_fhir_call(client: FlaskClient, fhir_mock: Any):
    """req_061: every FHIR call (instance read, searches, next pages) carries the access token."""
    FakeFhirServer(fhir_mock, scenario_resources(PATIENT_ID))
    body = without_keys(request_fixture("order-select-missing-prefetch-keys"), "patient")
    response = post(client, "ivig-order-select", body)
    assert response.status_code == 200, response.get_json()
    paginated = request_fixture("order-select-paginated-prefetch")
    assert post(client, "ivig-order-select", paginated).status_code == 200
    urls = [call.request.url for call in fhir_mock.calls]
    assert any("/Patient/" in url for url in urls), urls
    assert any("_page=2" in url for url in urls), urls
    assert len(urls) == 7  # patient read, five searches, one next page
    for call in fhir_mock.calls:
        assert call.request.headers.get("Authorization") == f"Bearer {TOKEN}", call.request.url


# --------------------------------------------------------------------------------- responses


@pytest.mark.parametrize(
    ("fixture", "service"),
    [
        ("order-select-full-prefetch", "ivig-order-select"),
        ("order-sign-full-prefetch", "ivig-order-sign"),
    ],
)
def test_req_074_200_with_cards(client: FlaskClient, fixture: str, service: str):
    """req_074: a successful call answers 200 with an object holding a ``cards`` array."""
    response = post(client, service, request_fixture(fixture))
    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body["cards"], list)
    assert body["cards"]
    assert set(body) <= {"cards", "systemActions", "extension"}


@pytest.mark.parametrize(
    ("fixture", "service"),
    [("order-select-not-ivig", "ivig-order-select"), ("patient-view", "ivig-patient-view")],
)
def test_req_077_no_guidance_is_empty_cards(
    client: FlaskClient, fhir_mock: Any, fixture: str, service: str
):
    """req_077: no decision support -> 200 ``{"cards": []}`` (a non-IVIG order; patient-view)."""
    response = post(client, service, request_fixture(fixture))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    assert len(fhir_mock.calls) == 0


def test_req_080_card_uuids_are_unique_strings(all_cards: list[dict[str, Any]]):
    """req_080, req_082, req_118, req_119: card and suggestion uuids are strings, all distinct."""
    uuids = [card["uuid"] for card in all_cards] + [s["uuid"] for s in all_suggestions(all_cards)]
    for value in uuids:
        assert isinstance(value, str)
        assert value
    assert len(set(uuids)) == len(uuids)


def test_req_083_summary_under_140(all_cards: list[dict[str, Any]]):
    """req_083: summary is a string of fewer than 140 characters."""
    for card in all_cards:
        assert isinstance(card["summary"], str)
        assert card["summary"].strip()
        assert len(card["summary"]) < 140, card["summary"]


def test_req_084_085_detail_is_markdown_text(all_cards: list[dict[str, Any]]):
    """req_084, req_085: detail, when present, is a Markdown string (no raw HTML)."""
    for card in all_cards:
        if "detail" in card:
            assert isinstance(card["detail"], str)
            assert card["detail"].strip()
            assert not re.search(r"<[A-Za-z/][^>]*>", card["detail"]), card["detail"]


def test_req_087_088_indicator(all_cards: list[dict[str, Any]]):
    """req_087, req_088: indicator is one of info, warning, critical."""
    for card in all_cards:
        assert card["indicator"] in {"info", "warning", "critical"}


def test_req_090_105_107_111_source(all_cards: list[dict[str, Any]]):
    """req_090 (source object), req_105 (label string), req_107 (url absolute), req_111 (icon
    absolute)."""
    for card in all_cards:
        source = card["source"]
        assert isinstance(source, dict)
        assert isinstance(source["label"], str)
        assert source["label"].strip()
        if "url" in source:  # absent when no document link is confirmed (contract §9)
            assert ABSOLUTE_URL.match(source["url"]), source["url"]
        if "icon" in source:
            assert ABSOLUTE_URL.match(source["icon"]), source["icon"]


def test_req_115_216_217_218_topic_coding(all_cards: list[dict[str, Any]]):
    """req_115, req_216, req_217, req_218, req_220: source.topic is a Coding with system+code."""
    for card in all_cards:
        topic = card["source"]["topic"]
        assert set(topic) <= {"system", "code", "display"}
        assert isinstance(topic["system"], str)
        assert ABSOLUTE_URL.match(topic["system"])
        assert isinstance(topic["code"], str)
        assert topic["code"]
        if "display" in topic:
            assert isinstance(topic["display"], str)
            assert topic["display"]


def test_req_092_093_095_096_selection_behavior_iff_suggestions(all_cards: list[dict[str, Any]]):
    """req_092, req_093, req_095, req_096: selectionBehavior (at-most-one|any) iff suggestions."""
    with_suggestions = [card for card in all_cards if "suggestions" in card]
    assert with_suggestions, "no card carries suggestions: nothing was checked"
    for card in all_cards:
        assert ("suggestions" in card) == ("selectionBehavior" in card), card["uuid"]
        if "suggestions" in card:
            assert isinstance(card["suggestions"], list)
            assert card["suggestions"]
            assert card["selectionBehavior"] in {"at-most-one", "any"}


def test_req_098_100_136_219_override_reasons_with_display(all_cards: list[dict[str, Any]]):
    """req_098, req_099, req_100, req_136, req_219: every warning/critical card offers override
    reasons, each a Coding with system, code and a human-readable display."""
    serious = [card for card in all_cards if card["indicator"] in {"warning", "critical"}]
    assert serious
    for card in serious:
        assert isinstance(card["overrideReasons"], list), card["uuid"]
        assert card["overrideReasons"], card["uuid"]
    for card in all_cards:
        for reason in card.get("overrideReasons", []):
            assert isinstance(reason["system"], str)
            assert reason["system"]
            assert isinstance(reason["code"], str)
            assert reason["code"]
            assert isinstance(reason["display"], str)
            assert reason["display"].strip()


def test_req_117_to_124_suggestions(all_cards: list[dict[str, Any]]):
    """req_117 label, req_119 uuid string, req_121/122 isRecommended boolean (several only with
    ``any``), req_124 actions array."""
    for card in all_cards:
        suggestions = card.get("suggestions", [])
        for suggestion in suggestions:
            assert isinstance(suggestion["label"], str)
            assert suggestion["label"].strip()
            assert isinstance(suggestion["uuid"], str)
            assert suggestion["uuid"]
            if "isRecommended" in suggestion:
                assert isinstance(suggestion["isRecommended"], bool)
            if "actions" in suggestion:
                assert isinstance(suggestion["actions"], list)
                assert suggestion["actions"]
        recommended = [s for s in suggestions if s.get("isRecommended") is True]
        if len(recommended) > 1:
            assert card["selectionBehavior"] == "any", card["uuid"]


def test_req_127_128_action_type_and_description(all_cards: list[dict[str, Any]]):
    """req_127, req_128: action type is create|update|delete, with a description string."""
    actions = all_actions(all_cards)
    assert {a["type"] for a in actions} == {"create", "update", "delete"}, "every type exercised"
    for action in actions:
        assert action["type"] in {"create", "update", "delete"}
        assert isinstance(action["description"], str)
        assert action["description"].strip()


def test_req_130_131_create_carries_a_new_resource(all_cards: list[dict[str, Any]]):
    """req_130, req_131: a create action carries a whole FHIR resource."""
    creates = [a for a in all_actions(all_cards) if a["type"] == "create"]
    assert creates
    for action in creates:
        assert isinstance(action["resource"], dict)
        assert re.fullmatch(r"[A-Z][A-Za-z]+", action["resource"]["resourceType"])
        assert "resourceId" not in action


def test_req_132_update_carries_the_entire_resource(scenario_calls: list[dict[str, Any]]):
    """req_130, req_132: an update of the draft order holds the resource in its entirety (every
    element of the original order, same id), not just the changed fields."""
    updates = 0
    for call in scenario_calls:
        order = call["order"]
        for action in all_actions(call["body"]["cards"]):
            if action["type"] != "update":
                continue
            updates += 1
            resource = action["resource"]
            assert resource["resourceType"] == order["resourceType"]
            assert resource["id"] == order["id"]
            missing = set(order) - set(resource)
            assert not missing, f"{call['name']}: update lacks {missing}"
            assert resource != order, "an update must change something"
    assert updates


def test_req_133_134_135_delete_names_resource_id(all_cards: list[dict[str, Any]]):
    """req_133, req_134, req_135: a delete action has resourceId ``Type/id`` and no resource."""
    deletes = [a for a in all_actions(all_cards) if a["type"] == "delete"]
    assert deletes
    for action in deletes:
        assert isinstance(action["resourceId"], str)
        assert RELATIVE_REFERENCE.match(action["resourceId"]), action["resourceId"]
        assert "resource" not in action


def test_req_103_138_to_147_links(all_cards: list[dict[str, Any]]):
    """req_103, req_138, req_139, req_141, req_142, req_144, req_147: links, when sent, have
    label, absolute url, type absolute|smart, and appContext only on smart links."""
    for card in all_cards:
        if "links" not in card:
            continue
        assert isinstance(card["links"], list)
        assert card["links"]
        for link in card["links"]:
            assert isinstance(link["label"], str)
            assert link["label"]
            assert ABSOLUTE_URL.match(link["url"]), link["url"]
            assert link["type"] in {"absolute", "smart"}
            if link["type"] == "absolute":
                assert "appContext" not in link
            elif "appContext" in link:
                assert isinstance(link["appContext"], str)
                assert link["appContext"]


# ------------------------------------------------------------------------------------- CORS

PREFLIGHT_HEADERS = {
    "Origin": "https://sandbox.cds-hooks.org",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def assert_cors(response: Any) -> None:
    assert response.headers.get("Access-Control-Allow-Origin") in {
        "*",
        PREFLIGHT_HEADERS["Origin"],
    }


@pytest.mark.parametrize(
    "path",
    [
        "/cds-services",
        "/cds-services/ivig-order-select",
        "/cds-services/ivig-order-select/feedback",
    ],
)
def test_req_208_cors_preflight(client: FlaskClient, path: str):
    """req_208: OPTIONS preflight answers 204 with the CORS headers a browser client needs."""
    response = client.options(path, headers=PREFLIGHT_HEADERS)
    assert response.status_code == 204
    assert response.data == b""
    assert_cors(response)
    allowed_headers = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed_headers
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert ("GET" if path == "/cds-services" else "POST") in methods


def test_req_208_cors_on_success_and_errors(tmp_path: Path):
    """req_208: CORS headers also on 200, 400, 404, 405 and 413 responses."""
    (tmp_path / "main").mkdir()
    client = make_app(tmp_path / "main").test_client()
    ok = post(client, "ivig-order-select", request_fixture("order-select-full-prefetch"))
    bad = client.post("/cds-services/ivig-order-select", data="{", content_type="application/json")
    missing = post(client, "no-such-service", request_fixture("order-select-full-prefetch"))
    not_allowed = client.get("/cds-services/ivig-order-select")
    small = make_app(tmp_path, MAX_REQUEST_BYTES=1000).test_client()
    too_large = small.post(
        "/cds-services/ivig-order-select", data=b" " * 2000, content_type="application/json"
    )
    statuses = [r.status_code for r in (ok, bad, missing, not_allowed, too_large)]
    assert statuses == [200, 400, 404, 405, 413]
    for response in (ok, bad, missing, not_allowed, too_large):
        assert_cors(response)


# --------------------------------------------------------------------- the service's HTTP rules


def test_req_014_076_malformed_json_is_400(client: FlaskClient):
    """req_014, req_076 (4xx allowed): a body that is not JSON -> 400 OperationOutcome."""
    response = client.post(
        "/cds-services/ivig-order-select", data='{"hook": ', content_type="application/json"
    )
    assert_operation_outcome(response, 400)


@pytest.mark.parametrize("body", [[], ["order-select"], "order-select", 42, None])
def test_body_not_an_object_is_400(client: FlaskClient, body: Any):
    """A JSON body that is not an object -> 400 OperationOutcome."""
    response = client.post(
        "/cds-services/ivig-order-select", data=json.dumps(body), content_type="application/json"
    )
    assert_operation_outcome(response, 400)


def test_empty_body_is_400(client: FlaskClient):
    """An empty body -> 400 OperationOutcome."""
    response = client.post("/cds-services/ivig-order-select", content_type="application/json")
    assert_operation_outcome(response, 400)


def named_field(outcome: dict[str, Any], field: str) -> bool:
    return field in expressions(outcome) or any(
        field in issue["diagnostics"] for issue in outcome["issue"]
    )


@pytest.mark.parametrize("field", ["hook", "hookInstance", "context"])
def test_missing_required_request_field_is_400(client: FlaskClient, field: str):
    """hook, hookInstance and context are required: 400 naming the field."""
    body = request_fixture("order-select-full-prefetch")
    del body[field]
    outcome = assert_operation_outcome(post(client, "ivig-order-select", body), 400)
    assert field in expressions(outcome), outcome
    assert named_field(outcome, field)


@pytest.mark.parametrize(("field", "value"), [("hook", 7), ("context", "x"), ("context", [])])
def test_wrong_type_request_field_is_400(client: FlaskClient, field: str, value: Any):
    """hook must be a string and context an object: 400 naming the field."""
    body = request_fixture("order-select-full-prefetch")
    body[field] = value
    outcome = assert_operation_outcome(post(client, "ivig-order-select", body), 400)
    assert field in expressions(outcome), outcome


@pytest.mark.parametrize(
    ("service", "fixture"),
    [
        ("ivig-order-select", "order-sign-full-prefetch"),
        ("ivig-order-sign", "order-select-full-prefetch"),
        ("ivig-patient-view", "order-select-full-prefetch"),
        ("ivig-order-select", "patient-view"),
    ],
)
def test_wrong_hook_for_service_is_400(client: FlaskClient, service: str, fixture: str):
    """A hook other than the service's hook -> 400 naming ``hook``."""
    outcome = assert_operation_outcome(post(client, service, request_fixture(fixture)), 400)
    assert expressions(outcome) == ["hook"]


@pytest.mark.parametrize("field", ["selections", "draftOrders", "userId", "patientId"])
def test_order_select_missing_context_field_is_400(client: FlaskClient, field: str):
    """order-select context requires selections, draftOrders, userId, patientId."""
    body = request_fixture("order-select-full-prefetch")
    del body["context"][field]
    outcome = assert_operation_outcome(post(client, "ivig-order-select", body), 400)
    assert f"context.{field}" in expressions(outcome), outcome


@pytest.mark.parametrize("field", ["draftOrders", "userId", "patientId"])
def test_order_sign_missing_context_field_is_400(client: FlaskClient, field: str):
    """order-sign context requires draftOrders, userId, patientId."""
    body = request_fixture("order-sign-full-prefetch")
    del body["context"][field]
    outcome = assert_operation_outcome(post(client, "ivig-order-sign", body), 400)
    assert f"context.{field}" in expressions(outcome), outcome


@pytest.mark.parametrize("selections", [["MedicationRequest/not-drafted"], [], ["privigen-iv"]])
def test_selection_not_in_draft_orders_is_400(client: FlaskClient, selections: list[str]):
    """Every selection must be a ``Type/id`` of an entry of draftOrders (and there is one)."""
    body = request_fixture("order-select-full-prefetch")
    body["context"]["selections"] = selections
    outcome = assert_operation_outcome(post(client, "ivig-order-select", body), 400)
    assert any(e.startswith("context.selections") for e in expressions(outcome)), outcome


def test_fhir_authorization_without_fhir_server_is_400(client: FlaskClient, fhir_mock: Any):
    """fhirServer is REQUIRED when fhirAuthorization is given (#calling-a-cds-service)."""
    body = request_fixture("order-select-missing-prefetch-keys")
    del body["fhirServer"]
    outcome = assert_operation_outcome(post(client, "ivig-order-select", body), 400)
    assert "fhirServer" in expressions(outcome), outcome
    assert len(fhir_mock.calls) == 0


def test_unknown_service_is_404(client: FlaskClient):
    """An unknown service id -> 404 OperationOutcome (code not-found)."""
    for path in ("/cds-services/ivig-order-dispatch", "/cds-services/ivig-order-dispatch/feedback"):
        response = client.post(path, json=request_fixture("order-select-full-prefetch"))
        outcome = assert_operation_outcome(response, 404)
        assert outcome["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cds-services/ivig-order-select"),
        ("DELETE", "/cds-services"),
        ("POST", "/cds-services"),
        ("PUT", "/cds-services/ivig-order-select/feedback"),
    ],
)
def test_method_not_allowed_is_405(client: FlaskClient, method: str, path: str):
    """A method a path does not support -> 405 OperationOutcome with an Allow header."""
    response = client.open(path, method=method)
    outcome = assert_operation_outcome(response, 405)
    assert outcome["issue"][0]["code"] == "not-supported"
    assert method not in {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.parametrize(
    "path", ["/cds-services/ivig-order-select", "/cds-services/ivig-order-select/feedback"]
)
def test_body_over_limit_is_413(tmp_path: Path, path: str):
    """A body over MAX_REQUEST_BYTES -> 413 OperationOutcome."""
    client = make_app(tmp_path, MAX_REQUEST_BYTES=1000).test_client()
    body = request_fixture("order-select-full-prefetch")
    body["extension"] = {"org.example.padding": "x" * 2000}
    data = json.dumps(body).encode()
    assert len(data) > 2000
    outcome = assert_operation_outcome(
        client.post(path, data=data, content_type="application/json"), 413
    )
    assert outcome["issue"][0]["code"] == "too-costly"


def test_body_under_limit_is_accepted(tmp_path: Path):
    """The same small app accepts a body under the limit (the 413 is about size)."""
    client = make_app(tmp_path, MAX_REQUEST_BYTES=1000).test_client()
    body = request_fixture("patient-view")
    patient_id = body["context"]["patientId"]
    keys = ("conditions", "observations", "medicationRequests", "medicationStatements")
    body["prefetch"] = {"patient": {"resourceType": "Patient", "id": patient_id}} | dict.fromkeys(
        keys
    )
    assert len(json.dumps(body)) < 1000
    assert post(client, "ivig-patient-view", body).status_code == 200


def test_unexpected_error_is_500_without_traceback(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """req_014, req_076 (5xx allowed): an unexpected exception -> 500 OperationOutcome that
    reveals nothing of the failure."""

    def boom(self: Any, call: Any) -> Any:
        raise RuntimeError("internal-detail-42 in /srv/ivig/hooks/services.py")

    monkeypatch.setattr(Checker, "__call__", boom)
    with caplog.at_level(logging.ERROR):
        response = post(client, "ivig-order-select", request_fixture("order-select-full-prefetch"))
    outcome = assert_operation_outcome(response, 500)
    assert outcome["issue"][0]["code"] == "exception"
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "internal-detail-42", "RuntimeError", "services.py", 'File "'):
        assert leak not in text
    assert_cors(response)
    assert "internal-detail-42" in caplog.text, "the details go to the log instead"


def test_access_token_and_patient_name_never_logged(
    client: FlaskClient, fhir_mock: Any, caplog: pytest.LogCaptureFixture
):
    """fhirAuthorization is transient (#passing-the-access-token): the token is never logged,
    and no PHI (the patient's name, from the fetched Patient) reaches the logs, at DEBUG level,
    on success, on FHIR failures and on a 412."""
    patient = next(r for r in scenario_resources(PATIENT_ID) if r["resourceType"] == "Patient")
    family = patient["name"][0]["family"]
    given = patient["name"][0]["given"][0]
    FakeFhirServer(fhir_mock, scenario_resources(PATIENT_ID))
    caplog.set_level(logging.DEBUG)

    fetched = without_keys(request_fixture("order-select-missing-prefetch-keys"), "patient")
    assert post(client, "ivig-order-select", fetched).status_code == 200
    for name in ("order-select-paginated-prefetch", "order-select-full-prefetch"):
        assert post(client, "ivig-order-select", request_fixture(name)).status_code == 200
    untrusted = without_keys(request_fixture("order-select-missing-prefetch-keys"), "conditions")
    untrusted["fhirServer"] = UNTRUSTED_SERVER
    assert post(client, "ivig-order-select", untrusted).status_code == 412
    bad = request_fixture("order-select-missing-prefetch-keys")
    bad["hookInstance"] = ""
    assert post(client, "ivig-order-select", bad).status_code == 400

    assert any(
        urlsplit(c.request.url).path.endswith(f"/Patient/{PATIENT_ID}") for c in fhir_mock.calls
    )
    assert any(
        r.name.startswith("cds_service") and r.levelno == logging.DEBUG for r in caplog.records
    ), "the service's DEBUG records (FHIR calls) were captured, so the check reads them"
    logged = caplog.text + "\n".join(
        f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records
    )
    assert TOKEN not in logged
    assert family not in logged
    assert not re.search(rf"\b{re.escape(given)}\b", logged)


@pytest.mark.parametrize("entry", ["not-an-entry", {"resource": "not-a-resource"}])
def test_req_052_unreadable_prefetch_bundle_entry_is_reported(client: FlaskClient, entry: Any):
    """req_052 (check prefetched data): a prefetched searchset entry that is not a resource is
    unreadable data, like an invalid Condition: the service must say so (a data-incomplete card,
    or 412 for the essential Conditions), never answer as if the data were complete."""
    body = request_fixture("order-select-full-prefetch")
    body["prefetch"]["conditions"]["entry"].append(entry)
    response = post(client, "ivig-order-select", body)
    if response.status_code == 412:
        assert_operation_outcome(response, 412)
        return
    assert response.status_code == 200
    topics = set(topics_of(response.get_json()["cards"]))
    assert "data-incomplete" in topics, topics
