"""The fixture loader (``ivig-cds fixtures load|unload``) against a real FHIR server (Medplum's
engine, ``tests/fhir_server``) and against a local server that refuses with an OperationOutcome.

Each test that writes to the shared Medplum server uses its own id prefix and removes what it put.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import medplum_server
import pytest
from conftest import make_app

from cds_service import cli, fixtures_loader
from cds_service.errors import FhirNotFound
from cds_service.fhir.client import Deadline, FhirClient
from cds_service.fixtures_loader import FixtureError, fixture_bundles, fixture_resources
from cds_service.runtime import make_session

medplum_fhir = medplum_server.medplum_fhir  # the fixture, made visible to this module's tests

TYPES = ("Patient", "Observation", "Condition", "AllergyIntolerance", "MedicationRequest")
PATIENT = "{{context.patientId}}"


def fhir_client(base: str) -> FhirClient:
    return FhirClient(base, session=make_session(2), token=None, timeout_s=30, max_pages=5)


def stored(client: FhirClient, prefix: str) -> set[str]:
    """``Type/id`` of every resource on the server whose id starts with ``prefix``."""
    found = set()
    for type_ in TYPES:
        result = client.search(f"{type_}?_count=5000", Deadline(30))
        assert not result.truncated
        found |= {f"{type_}/{r['id']}" for r in result.resources if r["id"].startswith(prefix)}
    return found


def expected(prefix: str) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in fixture_resources(prefix)}


@pytest.fixture
def loaded(medplum_fhir: str) -> Iterator[tuple[FhirClient, str]]:
    """The fixtures loaded under the prefix ``tl-``; unloaded afterwards."""
    client, prefix = fhir_client(medplum_fhir), "tl-"
    fixtures_loader.load(client, prefix)
    yield client, prefix
    fixtures_loader.unload(client, prefix)


# --- against the Medplum server ----------------------------------------------------------------


def test_cli_load_twice_is_idempotent(
    medplum_fhir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = "t2-"
    client = fhir_client(medplum_fhir)
    bundles = fixture_bundles(prefix)
    want = expected(prefix)
    assert len(bundles) == 125 and len(want) == 634
    try:
        for _ in range(2):
            status = cli.main(["fixtures", "load", "--fhir-base", medplum_fhir, "--prefix", prefix])
            lines = capsys.readouterr().out.splitlines()
            assert status == 0
            progress = [line for line in lines if line.startswith("[")]
            assert len(progress) == len(bundles)  # one line per bundle
            assert progress[0].startswith(f"[1/{len(bundles)}] scenarios/")
            assert lines[-1] == f"ivig-cds fixtures: {len(want)} resources put on {medplum_fhir}"
            assert stored(client, prefix) == want  # the same resources, no duplicates
        # Stored as put: the prefixed id and the rewritten patient reference.
        weight = client.read(f"Observation/{prefix}ivig-in-ig-anaphylaxis-weight", Deadline(10))
        assert weight["subject"] == {"reference": f"Patient/{prefix}ivig-in-ig-anaphylaxis"}
    finally:
        assert fixtures_loader.unload(client, prefix) == len(want)
    assert stored(client, prefix) == set()


def test_observations_of_a_scenario_patient_are_found_by_patient_and_code(
    loaded: tuple[FhirClient, str],
) -> None:
    client, prefix = loaded
    patient = f"{prefix}ivig-in-ig-anaphylaxis"
    query = f"Observation?patient={patient}&code=http://loinc.org|29463-7,http://loinc.org|2160-0"
    result = client.search(query, Deadline(10))
    assert sorted(r["id"] for r in result.resources) == [
        f"{patient}-creatinine",
        f"{patient}-weight",
    ]


def test_every_discovery_prefetch_template_finds_the_fixture_data(
    loaded: tuple[FhirClient, str], tmp_path: Path
) -> None:
    """Each template of each service returns exactly the fixture resources it asks for: proof
    that the templates are searches this engine understands. The engine scans every stored
    resource of the type per search (about 0.5 ms each), so not every patient is asked: per
    template, the first patient with matching data, the one with the most, and one with none."""
    client, prefix = loaded
    services = make_app(tmp_path).test_client().get("/cds-services").get_json()["services"]
    templates = sorted({t for s in services for t in s.get("prefetch", {}).values()})
    assert any("&code=" in t for t in templates)
    bundles = fixture_bundles(prefix)
    asked = 0
    for template in templates:
        answers = [(bundle, sorted(_matching(template, bundle))) for bundle in bundles]
        with_data = [pair for pair in answers if pair[1]]
        sample = [*with_data[:1], *[pair for pair in answers if not pair[1]][:1]]
        if with_data:
            sample.append(max(with_data, key=lambda pair: len(pair[1])))
        for bundle, want in sample:
            query = template.replace(PATIENT, bundle.patient_id)
            if "?" not in template:  # a read: Patient/{{context.patientId}}
                got = [f"Patient/{client.read(query, Deadline(10))['id']}"]
            else:
                got = sorted(
                    f"{r['resourceType']}/{r['id']}"
                    for r in client.search(query, Deadline(10)).resources
                )
            assert got == want, f"{bundle.name}: {template}"
            asked += 1
    assert asked >= len(templates) * 2


def _matching(template: str, bundle: fixtures_loader.FixtureBundle) -> list[str]:
    """What a correct FHIR server answers to ``template`` over this bundle's resources."""
    path, _, query = template.partition("?")
    if not query:
        return [f"Patient/{bundle.patient_id}"]
    params = {key: values[0] for key, values in parse_qs(query).items()}
    unknown = set(params) - {"patient", "code", "status"}
    assert not unknown, f"this test does not know the search parameters {unknown}"
    codes = set(params["code"].split(",")) if "code" in params else None
    found = []
    for resource in bundle.resources:
        if resource["resourceType"] != path:
            continue
        if "status" in params and resource.get("status") != params["status"]:
            continue
        if codes is not None:
            codings = resource.get("code", {}).get("coding", [])
            if not {f"{c.get('system')}|{c.get('code')}" for c in codings} & codes:
                continue
        found.append(f"{path}/{resource['id']}")
    return found


def test_unload_removes_them_and_may_run_twice(medplum_fhir: str) -> None:
    client, prefix = fhir_client(medplum_fhir), "tu-"
    assert fixtures_loader.load(client, prefix) == len(fixture_resources())
    patient = f"{prefix}ivig-in-ig-anaphylaxis"
    query = f"Observation?patient={patient}&code=http://loinc.org|29463-7"
    assert len(client.search(query, Deadline(10)).resources) == 1
    assert cli.main(["fixtures", "unload", "--fhir-base", medplum_fhir, "--prefix", prefix]) == 0
    assert stored(client, prefix) == set()
    assert client.search(query, Deadline(10)).resources == []
    with pytest.raises(FhirNotFound):
        client.read(f"Patient/{patient}", Deadline(10))
    # nothing left: not an error
    assert fixtures_loader.unload(client, prefix) == len(fixture_resources())


# --- a server that refuses ---------------------------------------------------------------------


class _Refusing(BaseHTTPRequestHandler):
    """Answers every POST/DELETE with the status and body the test put on the server."""

    server: Any

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.requests.append((self.command, self.path, self.rfile.read(length)))
        status, body = self.server.answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_DELETE = do_GET = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    server.requests = []
    server.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def outcome(diagnostics: str, expression: list[str] | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": "processing", "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def test_a_refused_transaction_names_the_resource_and_the_diagnostics(
    refusing: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    refusing.answer = (
        400,
        outcome("Observation.code: minimum required = 1", ["Bundle.entry[2].resource.code"]),
    )
    status = cli.main(["fixtures", "load", "--fhir-base", refusing.base])
    err = capsys.readouterr().err
    assert status == 1
    first = fixture_bundles()[0]
    assert f"{first.name}: the transaction failed at {first.references()[2]}" in err
    assert "HTTP 400" in err
    assert "Observation.code: minimum required = 1" in err
    assert len(refusing.requests) == 1  # stops at the first failure
    method, path, body = refusing.requests[0]
    sent = json.loads(body)
    assert (method, path, sent["type"]) == ("POST", "/fhir", "transaction")
    assert {e["request"]["method"] for e in sent["entry"]} == {"PUT"}


def test_a_diagnostic_naming_a_resource_is_enough_to_name_it(refusing: Any) -> None:
    first = fixture_bundles()[0]
    culprit = first.references()[-1]
    refusing.answer = (422, outcome(f"HAPI-0541: Resource {culprit} failed validation"))
    with pytest.raises(FixtureError, match=f"failed at {culprit}: .*HAPI-0541"):
        fixtures_loader.load(fhir_client(refusing.base))


def test_a_refused_delete_names_the_resource_and_the_diagnostics(refusing: Any) -> None:
    refusing.answer = (409, outcome("Unable to delete: it is referenced"))
    with pytest.raises(FixtureError) as caught:
        fixtures_loader.unload(fhir_client(refusing.base))
    message = str(caught.value)
    first = fixture_bundles()[0]
    assert f"{first.name}: DELETE {first.references()[1]} failed" in message
    assert "HTTP 409" in message and "Unable to delete: it is referenced" in message
    assert refusing.requests[0][0] == "DELETE"
    assert not refusing.requests[0][1].endswith(f"/Patient/{first.patient_id}")  # data first


def test_a_failed_entry_in_a_transaction_response_is_reported(refusing: Any) -> None:
    first = fixture_bundles()[0]
    refusing.answer = (
        200,
        {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": "201 Created"}}]
            + [
                {"response": {"status": "400 Bad Request", "outcome": outcome("bad value")}}
                for _ in first.resources[1:]
            ],
        },
    )
    with pytest.raises(FixtureError, match=rf"did not store {first.references()[1]} .*bad value"):
        fixtures_loader.load(fhir_client(refusing.base))


def test_an_unreachable_server_fails_with_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["fixtures", "unload", "--fhir-base", "http://127.0.0.1:9/fhir"])
    assert status == 1
    assert "ivig-cds fixtures unload: error:" in capsys.readouterr().err


# --- ids and references ------------------------------------------------------------------------


def write_bundle(root: Path, name: str, entries: list[dict[str, Any]]) -> None:
    folder = root / "scenarios"
    folder.mkdir(parents=True, exist_ok=True)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    (folder / f"{name}.json").write_text(json.dumps(bundle))
    (folder / "index.json").write_text("{}")


def test_ids_are_prefixed_and_every_reference_follows(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        "one",
        [
            {"fullUrl": "urn:uuid:0b7c", "resource": {"resourceType": "Patient", "id": "p"}},
            {
                "fullUrl": "urn:uuid:5f1a-obs",
                "resource": {
                    "resourceType": "Observation",
                    "subject": {"reference": "urn:uuid:0b7c"},
                    "hasMember": [{"reference": "Observation/o2"}],
                    "specimen": {"reference": "#contained"},
                    "meta": {"versionId": "7", "profile": ["x"]},
                },
            },
            {
                "fullUrl": "http://example.org/fhir/Observation/o2",
                "resource": {
                    "resourceType": "Observation",
                    "id": "o2",
                    "subject": {"reference": "Patient/p"},
                    "derivedFrom": [{"reference": "http://example.org/fhir/Observation/o2"}],
                },
            },
        ],
    )
    (bundle,) = fixture_bundles("x-", tmp_path)
    patient, first, second = bundle.resources
    assert bundle.name == "scenarios/one" and bundle.patient_id == "x-p" == patient["id"]
    assert first["id"] == "x-5f1a-obs"  # from its urn:uuid fullUrl
    assert first["subject"] == {"reference": "Patient/x-p"}
    assert first["hasMember"] == [{"reference": "Observation/x-o2"}]
    assert first["specimen"] == {"reference": "#contained"}
    assert first["meta"] == {"profile": ["x"]}
    assert second["subject"] == {"reference": "Patient/x-p"}
    assert second["derivedFrom"] == [{"reference": "Observation/x-o2"}]
    transaction = fixtures_loader.transaction_bundle(bundle, "http://h/fhir")
    assert transaction["entry"][2]["request"] == {"method": "PUT", "url": "Observation/x-o2"}
    assert transaction["entry"][2]["fullUrl"] == "http://h/fhir/Observation/x-o2"


@pytest.mark.parametrize(
    ("prefix", "resource_id", "message"),
    [
        ("", "12345", "not only digits"),
        ("ivig-", "a" * 60, "1-64"),
        ("bad prefix", "p", "only letters, digits"),
        ("ivig-", "p_1", "1-64"),
    ],
)
def test_invalid_ids_are_refused_before_anything_is_sent(
    tmp_path: Path, prefix: str, resource_id: str, message: str
) -> None:
    write_bundle(tmp_path, "one", [{"resource": {"resourceType": "Patient", "id": resource_id}}])
    with pytest.raises(FixtureError, match=message):
        fixture_bundles(prefix, tmp_path)


def test_the_real_fixtures_fit_the_id_rules_with_the_default_prefix() -> None:
    resources = fixture_resources()
    assert len(resources) == 634
    assert all(r["id"].startswith("ivig-") and len(r["id"]) <= 64 for r in resources)
    references = json.dumps(resources)
    assert '"Patient/ivig-ivig-in-ig-anaphylaxis"' in references
    assert "example.org" not in references
    assert urlsplit(fixtures_loader.default_fixtures_dir().as_uri()).path.endswith("fhir_fixtures")
