"""Shared fixtures: an app with a fixed clock, the fixture files, hook requests built on them."""

from __future__ import annotations

import contextlib
import copy
import html
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from cds_service import create_app

pytest_plugins = ["browser"]  # the chromium fixture (tests/browser.py)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fhir_fixtures"
SHARED = ROOT.parent / "shared"
FHIR_BASE = "https://fhir.test/r4"
EVALUATED_AT = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
REQUIRE_SERVICES = os.environ.get("IVIG_CDS_REQUIRE_SERVICES") == "1"

# Figures a test measured (tests/test_scale_out.py: calls, errors, feedback stored): printed in
# the run's summary, so CI's output shows them whether the test passed or not.
FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


POSTGRES_URL = os.environ.get(
    "IVIG_CDS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """The URL of a fresh schema on the test PostgreSQL, dropped afterwards: each test has a
    database of its own. Skips when the server cannot be reached, fails under
    IVIG_CDS_REQUIRE_SERVICES=1."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    admin = sqlalchemy.create_engine(POSTGRES_URL)
    schema = f"ivig_test_{uuid.uuid4().hex}"
    try:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        admin.dispose()
        message = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def redis_database(url: str) -> Iterator[Any]:
    """A connection to the test Redis database ``url``. Skips when Redis cannot be reached,
    fails under IVIG_CDS_REQUIRE_SERVICES=1."""
    import redis

    connection = redis.Redis.from_url(url, socket_connect_timeout=1.0)
    try:
        connection.ping()
    except redis.RedisError as error:
        connection.close()
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis at {url} is required (IVIG_CDS_REQUIRE_SERVICES=1): {error}")
        pytest.skip(f"Redis at {url} is not reachable: {error}")
    try:
        yield connection
    finally:
        connection.close()


def repeats_at_order_sign(card: dict[str, Any]) -> bool:
    """Card contract §7.6: critical cards, and dose or product warnings nobody answered, are
    shown again at order-sign; other cards order-select showed are left out."""
    if card["indicator"] == "critical":
        return True
    dose_or_product = str(card["source"]["topic"]["code"]).startswith(("IVIGDOSE", "IVIGPRODUCT"))
    return dose_or_product and card["indicator"] == "warning"


def load_json(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def scenario_index() -> list[dict[str, Any]]:
    return list(load_json("scenarios/index.json")["scenarios"])


def counter_uuids() -> Callable[[], str]:
    count = 0

    def next_uuid() -> str:
        nonlocal count
        count += 1
        return f"00000000-0000-4000-8000-{count:012d}"

    return next_uuid


# Long enough for a PostgreSQL write on a machine stalled by load; a writer that is stuck still
# fails the test that flushes it.
AUDIT_FLUSH_S = 30.0


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
        "AUDIT_SPOOL_DIR": str(tmp_path / "audit-spool"),
        "ALLOWED_FHIR_SERVERS": [FHIR_BASE],
        "CLOCK": lambda: EVALUATED_AT,
        "UUID_FACTORY": counter_uuids(),
        # A busy 2-core CI machine has stalled an in-process call past the 4 s default and turned
        # its cards into a 412; the budget's own tests set it themselves.
        "REQUEST_BUDGET_S": 30.0,
        # The same for the checks' own 2 s: on CI one order of two went unchecked ("time
        # limit") and the answer differed from the same call's other shape.
        "CHECK_BUDGET_S": 30.0,
        # One app per database here: feedback for an unknown card is refused at once, not after
        # the 2 s wait for another instance's writer (tests/test_scale_out.py, test_feedback.py).
        "FEEDBACK_WAIT_S": 0.0,
    }
    config.update(overrides)
    app = create_app(config)
    _MADE.append(app)
    return app


# Apps made by make_app in the running module. Each holds an audit-writer thread until it is
# closed: about 1,700 of them were closed one after another at the end of `make test`, which
# then took minutes to exit after its last test.
_MADE: list[Flask] = []


@pytest.fixture(autouse=True, scope="module")
def _close_the_modules_apps() -> Iterator[None]:
    start = len(_MADE)
    yield
    for app in _MADE[start:]:
        app.extensions["ivig_cds"].audit.close()
        app.extensions["ivig_cds"].repeats.close()
    del _MADE[start:]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def service_id(client: FlaskClient, hook: str) -> str:
    services = client.get("/cds-services").get_json()["services"]
    return next(s["id"] for s in services if s["hook"] == hook)


def order_for(name: str, patient_id: str) -> dict[str, Any]:
    order = load_json(f"orders/{name}.json")
    text = json.dumps(order).replace("PATIENT_ID", patient_id)
    return dict(json.loads(text))


def scenario_resources(name: str) -> list[dict[str, Any]]:
    bundle = load_json(f"scenarios/{name}.json")
    return [entry["resource"] for entry in bundle["entry"]]


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"{FHIR_BASE}/{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }


PREFETCH_TYPES = {
    "conditions": "Condition",
    "observations": "Observation",
    "allergies": "AllergyIntolerance",
    "medicationRequests": "MedicationRequest",
    "medicationStatements": "MedicationStatement",
    "procedures": "Procedure",
}


def full_prefetch(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """What an EHR sends when it satisfies every order-hook template for this patient."""
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch: dict[str, Any] = {"patient": patient}
    for key, kind in PREFETCH_TYPES.items():
        prefetch[key] = searchset([r for r in resources if r["resourceType"] == kind])
    return prefetch


def hook_request(
    hook: str,
    patient_id: str,
    orders: list[dict[str, Any]],
    prefetch: dict[str, Any] | None = None,
    fhir_server: str | None = None,
    selections: list[str] | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/example", "patientId": patient_id}
    if hook != "patient-view":  # the order hooks carry the ordering session
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": copy.deepcopy(order)} for order in orders],
        }
    if hook == "order-select":
        context["selections"] = selections or [
            f"{o['resourceType']}/{o['id']}"
            for o in orders
            if o["resourceType"] == "MedicationRequest"
        ]
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {
            "access_token": "secret-token-never-logged",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "ivig-cds",
        }
    return body


class FakeFhirServer:
    """A FHIR server answering searches over a fixed set of resources (``responses``-backed)."""

    def __init__(self, mock: responses.RequestsMock, resources: list[dict[str, Any]]) -> None:
        self.resources = resources
        self.requests: list[str] = []
        mock.add_callback(
            responses.GET, re.compile(re.escape(FHIR_BASE) + r"/.*"), callback=self._answer
        )

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.requests.append(request.url)
        assert request.headers["Authorization"] == "Bearer secret-token-never-logged"
        parts = urlsplit(request.url)
        path = parts.path.removeprefix(urlsplit(FHIR_BASE).path).strip("/")
        kind, _, resource_id = path.partition("/")
        if resource_id:
            found = [
                r for r in self.resources if r["resourceType"] == kind and r["id"] == resource_id
            ]
            if not found:
                return 404, {}, json.dumps({"resourceType": "OperationOutcome", "issue": []})
            return 200, {"Content-Type": "application/fhir+json"}, json.dumps(found[0])
        query = parse_qs(parts.query)
        assert "patient" in query, "every search is scoped to the patient"
        matches = [r for r in self.resources if r["resourceType"] == kind]
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(searchset(matches))


@pytest.fixture
def fhir_mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


FINDINGS_EXTENSION = "org.ivig-cds.findings"


def findings_of(card: dict[str, Any]) -> dict[str, str]:
    """The finding codes a card holds (its extension), with each finding's own indicator."""
    return {
        f["code"]: f["indicator"] for f in card.get("extension", {}).get(FINDINGS_EXTENSION, [])
    }


def rendered(markdown: str) -> str:
    """Markdown as a clinician reads it: backslash escapes and HTML entities resolved."""
    text = re.sub(r"\\([\\`*_{}\[\]()#+\-.!|~:])", r"\1", markdown)
    return html.unescape(text)


def cards_by_topic(cards: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each finding code -> the card that holds it (one card per decision group holds several),
    its detail as rendered (the escaping of record text is test_card_text's subject).
    A finding code on two cards is allowed only for different orders or courses."""
    found: dict[str, dict[str, Any]] = {}
    for card in cards:
        readable = {**card, "detail": rendered(card.get("detail", ""))}
        for topic in findings_of(card):
            assert topic not in found, f"two {topic} cards for one order"
            found[topic] = readable
    return found


def topics_of(cards: list[dict[str, Any]]) -> list[str]:
    """The finding codes of the cards, in card order."""
    return [code for card in cards for code in findings_of(card)]


def fired(cards: list[dict[str, Any]]) -> dict[str, str]:
    """Finding code -> the finding's indicator, over every card."""
    return {code: indicator for card in cards for code, indicator in findings_of(card).items()}


def _no_empty_values(value: Any, path: str) -> None:
    if isinstance(value, dict):
        assert value, f"{path} is an empty object"
        for key, item in value.items():
            _no_empty_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        assert value, f"{path} is an empty array"
        for index, item in enumerate(value):
            _no_empty_values(item, f"{path}[{index}]")
    else:
        assert value is not None and value != "", f"{path} is null or empty"


def assert_card_shape(card: dict[str, Any], patient_reference: str | None = None) -> None:
    """Card contract §5 and CDS Hooks 2.0 card rules, for one card."""
    _no_empty_values(card, "card")
    assert isinstance(card["uuid"], str) and len(card["uuid"]) >= 8
    assert 0 < len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert "**Evidence**" in card["detail"], "the detail lists the evidence"
    source = card["source"]
    assert source["label"]
    assert "url" not in source or source["url"].startswith("https://")  # no link: named only
    assert source["topic"]["system"] == "https://ivig-cds.org/fhir/CodeSystem/card-topic"
    # One card per decision group and tier (contract §7.2): letters and digits only, the tier in it.
    assert re.fullmatch(r"IVIG[A-Z0-9]+", source["topic"]["code"]), source["topic"]["code"]
    assert card["indicator"].upper() in source["topic"]["code"]
    assert findings_of(card), "the findings a card holds are in its extension"
    if card["indicator"] in ("warning", "critical"):
        assert card["overrideReasons"], "warning and critical cards carry override reasons"
    for reason in card.get("overrideReasons", []):
        assert reason["system"] and reason["code"] and reason["display"]
    suggestions = card.get("suggestions", [])
    assert ("selectionBehavior" in card) == bool(suggestions)
    if suggestions:
        assert card["selectionBehavior"] in ("at-most-one", "any")
    for suggestion in suggestions:
        assert suggestion["label"] and suggestion["uuid"]
        for action in suggestion["actions"]:
            assert action["type"] in ("create", "update", "delete") and action["description"]
            if action["type"] == "delete":
                assert re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]+", action["resourceId"])
                assert "resource" not in action
                continue
            resource = action["resource"]
            assert resource["resourceType"] in ("ServiceRequest", "MedicationRequest")
            assert resource["status"] == "draft" and resource["intent"] == "order"
            if patient_reference:
                assert resource["subject"]["reference"] == patient_reference
            if action["type"] == "update":
                assert resource.get("id"), "an update holds the whole resource, id included"
