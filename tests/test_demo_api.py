"""The demo order-entry page's own routes (issue 14): off unless asked for, its orderables from
the knowledge only, its fixture patients moved to today, and its prefetch, filled from the
service's own templates, giving the same answers as the tests' full prefetch."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    FIXTURES,
    full_prefetch,
    hook_request,
    load_json,
    make_app,
    order_for,
    scenario_index,
    scenario_resources,
)
from flask import Flask

from cds_service.config import ConfigError, Settings, load_settings
from cds_service.demo_patients import prefetched, shift_dates
from hooks.knowledge_base import KNOWLEDGE_DIR

SELECT = "ivig-order-select"


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return make_app(tmp_path_factory.mktemp("demo"), DEMO_PAGE=True)


def test_the_page_is_off_unless_asked_for(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    for path in ("/demo/", "/demo/choices", "/demo/patients", "/demo/static/demo.js"):
        assert client.get(path).status_code == 404, path


def test_the_page_is_refused_beside_jwt_authentication() -> None:
    env = {
        "IVIG_CDS_DEMO_PAGE": "1",
        "IVIG_CDS_AUTH": "jwt",
        "IVIG_CDS_TRUSTED_ISSUERS": "[]",
        "IVIG_CDS_PUBLIC_BASE_URL": "https://cds.example.org",
    }
    with pytest.raises(ConfigError, match="DEMO_PAGE"):
        load_settings(Settings, env, {})


def test_the_page_loads_only_its_own_files(demo_app: Flask) -> None:
    with demo_app.test_client().get("/demo/") as response:
        assert response.status_code == 200
        policy = response.headers["Content-Security-Policy"]
        html = response.get_data(as_text=True)
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert "http://" not in html and "https://" not in html  # no CDN
    assert "<script>" not in html and not re.search(r"\son[a-z]+\s*=", html)  # no inline code


def test_every_orderable_code_comes_from_the_knowledge(demo_app: Flask) -> None:
    choices = demo_app.test_client().get("/demo/choices").get_json()
    products = {p["id"]: p for p in load_json_knowledge("products.json")["products"]}
    for product in choices["products"]:
        known = products[product["id"]]
        assert not known.get("family")
        verified = {(c["system"], c["code"]) for c in known["codings"] if not c["unverified"]}
        assert {(c["system"], c["code"]) for c in product["coding"]} == verified
        assert set(product["routes"]) == set(known["routes"])
    for reason in choices["reasons"]:
        valueset = load_json_knowledge(f"valuesets/{reason['id']}.json")
        listed = {
            (include["system"], concept["code"])
            for include in valueset["compose"]["include"]
            for concept in include.get("concept", [])
        }
        assert {(c["system"], c["code"]) for c in reason["coding"]} <= listed
    assert {r["id"] for r in choices["reasons"]} >= {"guillain-barre-syndrome", "cidp"}
    assert choices["services"] == {
        "order-select": "ivig-order-select",
        "order-sign": "ivig-order-sign",
        "patient-view": "ivig-patient-view",
    }
    assert choices["today"] == "2026-06-15"  # the app's clock (the tests' evaluation date)


def load_json_knowledge(name: str) -> Any:
    return json.loads((Path(KNOWLEDGE_DIR) / name).read_text(encoding="utf-8"))


def test_every_fixture_patient_is_listed_with_its_purpose(demo_app: Flask) -> None:
    listed = demo_app.test_client().get("/demo/patients").get_json()["patients"]
    expected = {f"scenarios/{s['name']}" for s in scenario_index()} | {
        f"patient-view/{s['name']}" for s in load_json("patient-view/index.json")["scenarios"]
    }
    assert {p["key"] for p in listed} == expected
    assert all(p["purpose"] for p in listed)
    unknown = demo_app.test_client().get("/demo/patients/scenarios/no-such-patient")
    assert unknown.status_code == 404
    assert unknown.get_json()["resourceType"] == "OperationOutcome"


def test_a_record_is_moved_to_today(tmp_path: Path) -> None:
    later = datetime(2026, 6, 25, 12, tzinfo=UTC)  # ten days after the fixtures' date
    app = make_app(tmp_path, DEMO_PAGE=True, CLOCK=lambda: later)
    record = app.test_client().get("/demo/patients/scenarios/ivig-in-age-66").get_json()
    assert record["datesMovedByDays"] == 10
    summary = record["summary"]
    assert summary["headline"] == "Female, 66 years (born 1960-02-11)"  # 1960-02-01 + 10 days
    assert "Body weight: 70 kg (2026-06-20)" in summary["observations"]  # 2026-06-10 + 10
    weight = next(
        e["resource"]
        for e in record["prefetch"][SELECT]["observations"]["entry"]
        if e["resource"]["id"].endswith("-weight")
    )
    assert weight["effectiveDateTime"].startswith("2026-06-20T")


def test_dates_move_by_whole_days_and_partial_dates_stay() -> None:
    moved = shift_dates(
        {"a": "2026-06-10", "b": ["2026-06-10T09:00:00Z", "2026", "2026-06"], "c": "text"}, 30
    )
    assert moved == {
        "a": "2026-07-10",
        "b": ["2026-07-10T09:00:00Z", "2026", "2026-06"],
        "c": "text",
    }


def test_prefetch_follows_the_templates_code_and_status() -> None:
    weight = {"resourceType": "Observation", "id": "w", "code": _loinc("29463-7")}
    other = {"resourceType": "Observation", "id": "x", "code": _loinc("1234-5")}
    active = {"resourceType": "MedicationStatement", "id": "a", "status": "active"}
    stopped = {"resourceType": "MedicationStatement", "id": "s", "status": "stopped"}
    patient = {"resourceType": "Patient", "id": "p"}
    record = [patient, weight, other, active, stopped]
    observations = prefetched(
        record, "Observation?patient={{context.patientId}}&code=http://loinc.org|29463-7"
    )
    assert observations is not None
    assert [e["resource"]["id"] for e in observations["entry"]] == ["w"]
    statements = prefetched(
        record, "MedicationStatement?patient={{context.patientId}}&status=active"
    )
    assert statements is not None and [e["resource"]["id"] for e in statements["entry"]] == ["a"]
    assert prefetched(record, "Patient/{{context.patientId}}") == patient


def _loinc(code: str) -> dict[str, Any]:
    return {"coding": [{"system": "http://loinc.org", "code": code}]}


ORDER_SCENARIOS = [s for s in scenario_index() if "order" in s]


def test_the_pages_prefetch_answers_as_a_full_prefetch_does(demo_app: Flask) -> None:
    """For every order scenario, the page's prefetch (filtered by the templates) and the tests'
    full prefetch (every resource) give the same cards: the templates ask for all a rule reads."""
    client = demo_app.test_client()
    differences = []
    for scenario in ORDER_SCENARIOS:
        record = client.get(f"/demo/patients/scenarios/{scenario['name']}").get_json()
        patient = record["patientId"]
        order = [order_for(scenario["order"], patient)]
        answers = []
        for prefetch in (
            record["prefetch"][SELECT],
            full_prefetch(scenario_resources(scenario["name"])),
        ):
            body = hook_request("order-select", patient, order, prefetch)
            response = client.post(f"/cds-services/{SELECT}", json=body)
            assert response.status_code == 200, response.get_json()
            answers.append([(c["indicator"], c["summary"]) for c in response.get_json()["cards"]])
        if answers[0] != answers[1]:
            differences.append((scenario["name"], answers))
    assert not differences
    assert len(ORDER_SCENARIOS) > 100 and (FIXTURES / "scenarios").is_dir()


def test_the_summary_is_text_a_chart_banner_shows(demo_app: Flask) -> None:
    record = demo_app.test_client().get("/demo/patients/scenarios/ivig-in-diabetes").get_json()
    summary = record["summary"]
    assert summary["name"] and summary["headline"].startswith(("Female", "Male"))
    assert any("diabetes" in line.lower() for line in summary["conditions"]), summary
    assert date.fromisoformat(record["prefetch"][SELECT]["patient"]["birthDate"])


def test_the_summary_reads_statuses_as_a_chart_does(demo_app: Flask) -> None:
    client = demo_app.test_client()

    def summary(name: str) -> dict[str, Any]:
        return dict(client.get(f"/demo/patients/scenarios/{name}").get_json()["summary"])

    assert summary("ivig-out-ig-allergy-refuted")["allergies"] == [
        "Immune globulin (human) (active, refuted, criticality high)"
    ]
    assert summary("ivig-out-ig-allergy-entered-in-error")["allergies"] == []
    assert not any(
        line.startswith("Body weight")
        for line in summary("ivig-in-weight-cancelled-only")["observations"]
    )


def test_a_scenario_brings_its_own_draft_orders(demo_app: Flask) -> None:
    record = demo_app.test_client().get("/demo/patients/scenarios/ivig-in-plex-anti-gbm").get_json()
    orders = record["scenarioOrders"]
    assert [o["resourceType"] for o in orders] == ["MedicationRequest", "ServiceRequest"]
    assert all(o["subject"]["reference"] == f"Patient/{record['patientId']}" for o in orders)
    assert record["scenarioSelections"] == ["MedicationRequest/privigen-iv"]
    chart_only = demo_app.test_client().get("/demo/patients/patient-view/pv-out-healthy-adult")
    assert chart_only.get_json()["scenarioOrders"] == []
