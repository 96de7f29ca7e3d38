"""Contract tests: ``openapi.yaml`` describes what the running app really sends and serves.

Real responses of the app are validated against the document's component schemas (JSON Schema
2020-12, as OpenAPI 3.1 uses), the example requests in ``fhir_fixtures/requests/`` against
``HookRequest``, and the document's paths and methods against the Flask URL map.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import (
    FIXTURES,
    ROOT,
    fired,
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    scenario_index,
    scenario_resources,
)
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OPENAPI_URI = "urn:ivig-cds:openapi"
REQUESTS = sorted((FIXTURES / "requests").glob("*.json"))
SERVICE_FOR_HOOK = {
    "order-select": "ivig-order-select",
    "order-sign": "ivig-order-sign",
    "patient-view": "ivig-patient-view",
}
# Scenarios covering every card topic and indicator, several cards at once, and every action type.
CARD_SCENARIOS = [
    "ivig-in-ig-anaphylaxis",
    "ivig-in-iga-deficiency-with-ig-reaction",
    "ivig-in-iga-antibodies-and-reaction",
    "ivig-in-hyperviscosity-myeloma",
    "ivig-in-dvt-resolved-history",
    "ivig-in-no-weight",
    "ivig-in-no-renal-labs",
    "ivig-in-dose-gbs-overdose-mg",
    "ivig-in-scig-after-ivig",
    "ivig-in-hfi-flebogamma",
    "ivig-in-dosing-weight-obese",
]
# Methods Werkzeug adds by itself: HEAD answers every GET route the same way, without a body.
IMPLICIT_METHODS = {"HEAD"}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def registry(openapi: dict[str, Any]) -> Registry:
    resource: Resource[Any] = Resource(contents=openapi, specification=DRAFT202012)
    return Registry().with_resource(OPENAPI_URI, resource)


def validator(registry: Registry, name: str) -> Draft202012Validator:
    schema = {"$ref": f"{OPENAPI_URI}#/components/schemas/{name}"}
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def assert_valid(registry: Registry, name: str, instance: Any) -> None:
    errors = sorted(validator(registry, name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def request_fixture(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def request_named(name: str) -> dict[str, Any]:
    return request_fixture(FIXTURES / "requests" / f"{name}.json")


def test_document_is_openapi_3_1(openapi: dict[str, Any]):
    assert re.fullmatch(r"3\.1\.\d+", openapi["openapi"])
    assert openapi["info"]["title"]
    assert openapi["paths"]
    for name in ("DiscoveryResponse", "HookRequest", "CdsResponse", "OperationOutcome"):
        assert name in openapi["components"]["schemas"]


def test_component_schemas_are_valid_2020_12(openapi: dict[str, Any]):
    for name, schema in openapi["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert isinstance(schema, dict), name


def test_schemas_reject_what_they_should(registry: Registry):
    """The validation below can fail: a card without source and an outcome with no issue."""
    card = {"summary": "x", "indicator": "warning"}
    assert list(validator(registry, "CdsResponse").iter_errors({"cards": [card]}))
    assert list(validator(registry, "OperationOutcome").iter_errors({"issue": []}))
    assert list(validator(registry, "HookRequest").iter_errors({"hook": "order-select"}))


# ------------------------------------------------------------------------------ responses


def test_discovery_response(client: FlaskClient, registry: Registry):
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert_valid(registry, "DiscoveryResponse", response.get_json())


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("scenario", CARD_SCENARIOS)
def test_cds_response_with_cards(client: FlaskClient, registry: Registry, scenario: str, hook: str):
    entry = next(s for s in scenario_index() if s["name"] == scenario)
    order = order_for(entry["order"], scenario)
    body = hook_request(hook, scenario, [order], full_prefetch(scenario_resources(scenario)))
    response = client.post(f"/cds-services/{SERVICE_FOR_HOOK[hook]}", json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert fired(cards) == entry["fires"]
    assert_valid(registry, "CdsResponse", response.get_json())


@pytest.mark.parametrize(
    ("fixture", "service"),
    [("order-select-not-ivig", "ivig-order-select"), ("patient-view", "ivig-patient-view")],
)
def test_empty_cds_response(client: FlaskClient, registry: Registry, fixture: str, service: str):
    response = client.post(f"/cds-services/{service}", json=request_named(fixture))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    assert_valid(registry, "CdsResponse", response.get_json())


def error_responses(tmp_path: Path) -> dict[str, Any]:
    main = tmp_path / "main"
    main.mkdir()
    client = make_app(main).test_client()
    small = make_app(tmp_path, MAX_REQUEST_BYTES=1000).test_client()
    wrong_hook = request_named("order-select-full-prefetch")
    wrong_hook["hook"] = "order-sign"
    no_conditions = request_named("order-select-missing-prefetch-keys")
    del no_conditions["prefetch"]["conditions"]
    del no_conditions["fhirServer"], no_conditions["fhirAuthorization"]
    return {
        "400 not JSON": client.post(
            "/cds-services/ivig-order-select", data="{", content_type="application/json"
        ),
        "400 wrong hook": client.post("/cds-services/ivig-order-select", json=wrong_hook),
        "404 unknown service": client.post("/cds-services/ivig-nothing", json=wrong_hook),
        "405 GET on a service": client.get("/cds-services/ivig-order-select"),
        "405 DELETE discovery": client.delete("/cds-services"),
        "412 no conditions": client.post("/cds-services/ivig-order-select", json=no_conditions),
        "413 too large": small.post(
            "/cds-services/ivig-order-select", data=b"{" * 2000, content_type="application/json"
        ),
    }


def test_error_bodies_are_operation_outcomes(tmp_path: Path, registry: Registry):
    found = error_responses(tmp_path)
    for label, response in found.items():
        assert response.status_code == int(label[:3]), (label, response.get_json())
        assert response.mimetype == "application/json", label
        assert_valid(registry, "OperationOutcome", response.get_json())


def issue_codes_documented_per_status(openapi: dict[str, Any], status: str) -> str:
    """The description of a status of ``POST /cds-services/{id}`` (resolving a $ref)."""
    answer = openapi["paths"]["/cds-services/{id}"]["post"]["responses"][status]
    if "$ref" in answer:
        answer = openapi["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
    return str(answer["description"])


def test_error_issue_codes_match_the_document(tmp_path: Path, openapi: dict[str, Any]):
    """Each error's issue code is the one the document gives for its status."""
    for label, response in error_responses(tmp_path).items():
        status = label[:3]
        description = issue_codes_documented_per_status(openapi, status)
        for issue in response.get_json()["issue"]:
            assert f"`{issue['code']}`" in description, (label, issue["code"])


# ------------------------------------------------------------------------------ feedback


def test_feedback_responses(client: FlaskClient, registry: Registry):
    body = request_named("order-select-full-prefetch")
    cards = client.post("/cds-services/ivig-order-select", json=body).get_json()["cards"]
    card = cards[0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": card["overrideReasons"][0]},
                "outcomeTimestamp": "2026-06-15T12:05:00Z",
            }
        ]
    }
    assert_valid(registry, "FeedbackRequest", feedback)
    stored = client.post("/cds-services/ivig-order-select/feedback", json=feedback)
    assert stored.status_code == 200, stored.get_json()
    assert stored.get_json() == {"stored": 1}
    assert_valid(registry, "FeedbackResponse", stored.get_json())

    feedback["feedback"][0]["card"] = "0b7e6a4c-1d52-4d0e-9b8f-3f0b8f2a9e11"
    unknown = client.post("/cds-services/ivig-order-select/feedback", json=feedback)
    assert unknown.status_code == 404
    assert_valid(registry, "OperationOutcome", unknown.get_json())


# ------------------------------------------------------------------------------- requests


def test_request_fixtures_exist():
    """The example requests are there, and the README of the folder lists every file."""
    names = {path.stem for path in REQUESTS}
    assert names >= {
        "order-select-full-prefetch",
        "order-sign-full-prefetch",
        "patient-view",
        "order-select-missing-prefetch-keys",
        "order-select-null-prefetch-values",
        "order-select-operationoutcome-prefetch",
        "order-select-paginated-prefetch",
        "order-select-not-ivig",
    }
    readme = (FIXTURES / "requests" / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert f"{name}.json" in readme


@pytest.mark.parametrize("path", REQUESTS, ids=[p.stem for p in REQUESTS])
def test_request_fixture_is_a_hook_request(path: Path, registry: Registry, client: FlaskClient):
    """Every example request satisfies HookRequest and is accepted by its service (no 400)."""
    body = request_fixture(path)
    assert_valid(registry, "HookRequest", body)
    response = client.post(f"/cds-services/{SERVICE_FOR_HOOK[body['hook']]}", json=body)
    assert response.status_code != 400, response.get_json()


# ------------------------------------------------------------------------ paths and methods


def app_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", "{}", rule.rule)
        for method in (rule.methods or set()) - IMPLICIT_METHODS:
            routes.add((path, method.lower()))
    return routes


def documented_routes(openapi: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return {
        (re.sub(r"\{[^{}]+\}", "{}", path), method)
        for path, item in openapi["paths"].items()
        for method in item
        if method in methods
    }


def test_every_served_route_is_documented_and_vice_versa(app: Flask, openapi: dict[str, Any]):
    served = app_routes(app)
    documented = documented_routes(openapi)
    assert served == documented, {
        "served, not documented": served - documented,
        "documented, not served": documented - served,
    }
    assert ("/cds-services/{}", "post") in served


def test_flask_static_route_serves_nothing(app: Flask, client: FlaskClient):
    """The route Flask adds by default is left out of the comparison above only because there
    is no static folder behind it: it answers nothing but 404."""
    assert not Path(app.static_folder or "").is_dir()
    assert client.get("/static/openapi.yaml").status_code == 404


def test_head_mirrors_get_on_discovery(client: FlaskClient):
    """HEAD is left out of the comparison as Werkzeug's implicit twin of GET."""
    response = client.head("/cds-services")
    assert response.status_code == 200
    assert response.data == b""


def test_examples_are_what_the_live_app_answers(openapi: dict[str, Any]) -> None:
    """Discovery and response examples equal the app's answers to the request examples (fixed
    clock, numbered uuids); refresh them with `make docs`."""
    from openapi_examples import live_examples

    committed = openapi["components"]["examples"]
    live = live_examples(committed)
    for name in ("DiscoveryResponse", "OrderSelectResponse", "OrderSignResponse"):
        assert committed[name]["value"] == live[name]["value"], f"{name}: run `make docs`"
    assert committed["PatientViewResponse"]["value"] == live["PatientViewResponse"]["value"]
    for name in ("FeedbackAccepted", "FeedbackOverridden"):
        assert committed[name] == live[name], f"{name}: run `make docs`"


def test_feedback_examples_are_accepted(tmp_path: Path, openapi: dict[str, Any]) -> None:
    examples = openapi["components"]["examples"]
    client = make_app(tmp_path).test_client()
    request = examples["OrderSelectRequest"]["value"]
    assert client.post("/cds-services/ivig-order-select", json=request).status_code == 200
    for name in ("FeedbackAccepted", "FeedbackOverridden"):
        response = client.post(
            "/cds-services/ivig-order-select/feedback", json=examples[name]["value"]
        )
        assert response.status_code == 200, (name, response.get_json())
