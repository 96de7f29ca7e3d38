"""Deeply nested input (issue 12: once 500s): a clear 400, or the checks running on."""

from __future__ import annotations

import copy
from typing import Any

from conftest import full_prefetch, hook_request, order_for, scenario_resources
from flask.testing import FlaskClient

SCENARIO = "ivig-in-hypertension"
URL = "/cds-services/ivig-order-select"


def nested_extension(depth: int) -> dict[str, Any]:
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "v"}
    for _ in range(depth):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    return extension


def body_with(resources: list[dict[str, Any]], order: dict[str, Any]) -> dict[str, Any]:
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    return hook_request("order-select", patient, [order], prefetch=full_prefetch(resources))


def test_a_condition_with_121_nested_extensions_is_read_and_checked(client: FlaskClient) -> None:
    resources = copy.deepcopy(scenario_resources(SCENARIO))
    for resource in resources:
        if resource["resourceType"] == "Condition":
            resource["extension"] = [nested_extension(121)]
    response = client.post(URL, json=body_with(resources, order_for("privigen-iv", SCENARIO)))
    assert response.status_code == 200, response.get_json()
    assert "Essential hypertension" in response.get_data(as_text=True)  # the checks ran on


def test_an_order_nested_121_levels_deep_is_400_naming_it(client: FlaskClient) -> None:
    order = order_for("privigen-iv", SCENARIO) | {"extension": [nested_extension(121)]}
    response = client.post(URL, json=body_with(scenario_resources(SCENARIO), order))
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "nested deeper than 32 levels" in outcome["issue"][0]["diagnostics"]


def test_a_body_nested_10000_deep_is_400_not_500(client: FlaskClient) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    response = client.post(URL, data=deep, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"
