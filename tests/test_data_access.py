"""How the order hooks get patient data: prefetch semantics, FHIR fetch, paging, failures.

CDS Hooks 2.0 #prefetch-template: a present key is used as-is (next pages fetched), null means no
data, a missing key or an OperationOutcome means fetch; essential data that cannot be had is a 412,
anything else the data-incomplete card.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from conftest import (
    FHIR_BASE,
    FakeFhirServer,
    assert_card_shape,
    cards_by_topic,
    full_prefetch,
    hook_request,
    load_json,
    make_app,
    order_for,
    scenario_resources,
    searchset,
)
from flask.testing import FlaskClient
from production_server import SEARCHED_TYPES

SCENARIO = "ivig-in-dvt-resolved-history"
PATIENT = SCENARIO
URL = "/cds-services/ivig-order-select"


def _request(
    prefetch: dict[str, Any] | None, server: str | None = None, order: str = "privigen-iv"
) -> dict[str, Any]:
    return hook_request(
        "order-select", PATIENT, [order_for(order, PATIENT)], prefetch=prefetch, fhir_server=server
    )


def _prefetch() -> dict[str, Any]:
    return full_prefetch(scenario_resources(SCENARIO))


def _topics(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.get_json()
    cards = response.get_json()["cards"]
    for card in cards:
        assert_card_shape(card, f"Patient/{PATIENT}")
    return cards_by_topic(cards)


def test_no_immune_globulin_answers_empty_without_touching_data(
    client: FlaskClient, fhir_mock: Any
) -> None:
    server = FakeFhirServer(fhir_mock, scenario_resources(SCENARIO))
    response = client.post(URL, json=_request(None, FHIR_BASE, order="acetaminophen"))
    assert response.status_code == 200 and response.get_json() == {"cards": []}
    assert server.requests == []


@pytest.mark.parametrize("order", ["rhogam-anti-d", "hepatitis-b-ig"])
def test_hyperimmune_globulins_never_trigger(client: FlaskClient, order: str) -> None:
    response = client.post(URL, json=_request(_prefetch(), order=order))
    assert response.get_json() == {"cards": []}


def test_missing_optional_keys_without_server_give_data_incomplete(client: FlaskClient) -> None:
    prefetch = {
        key: value for key, value in _prefetch().items() if key in ("patient", "conditions")
    }
    topics = _topics(client.post(URL, json=_request(prefetch)))
    detail = topics["data-incomplete"]["detail"]
    for key in ("observations", "allergies", "medicationRequests", "medicationStatements"):
        assert f"Prefetch '{key}'" in detail
    assert "the request names no fhirServer" in detail
    assert "hypersensitivity to immune globulin" in detail  # the checks affected are named
    assert "missing-data" not in topics  # unknown observations are not reported as absent
    assert "thrombosis-risk" in topics  # what could be checked still is


@pytest.mark.parametrize("key", ["patient", "conditions"])
def test_missing_essential_key_without_server_is_412(client: FlaskClient, key: str) -> None:
    prefetch = _prefetch()
    del prefetch[key]
    response = client.post(URL, json=_request(prefetch))
    assert response.status_code == 412
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["expression"] == [f"prefetch.{key}"]
    assert key in body["issue"][0]["diagnostics"]


def test_null_prefetch_means_no_data_not_missing(client: FlaskClient) -> None:
    prefetch = _prefetch() | {
        k: None for k in ("observations", "allergies", "medicationRequests", "medicationStatements")
    }
    topics = _topics(client.post(URL, json=_request(prefetch)))
    assert "data-incomplete" not in topics
    assert topics["missing-data"]["indicator"] == "warning"  # no weight at all


def test_operation_outcome_prefetch_is_fetched_from_the_server(
    client: FlaskClient, fhir_mock: Any
) -> None:
    server = FakeFhirServer(fhir_mock, scenario_resources(SCENARIO))
    prefetch = (
        _prefetch()
        | {
            "observations": load_json("requests/order-select-operationoutcome-prefetch.json")[
                "prefetch"
            ]["observations"]
        }
        if (
            Path(__file__).parents[1]
            / "fhir_fixtures/requests/order-select-operationoutcome-prefetch.json"
        ).exists()
        else _prefetch()
        | {
            "observations": {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "timeout", "diagnostics": "lab system down"}
                ],
            }
        }
    )
    topics = _topics(client.post(URL, json=_request(prefetch, FHIR_BASE)))
    assert [url.split("?")[0] for url in server.requests] == [f"{FHIR_BASE}/Observation"]
    assert set(topics) == {"thrombosis-risk", "hemolysis-risk"}  # 2 g/kg, no ABO group on file


def test_operation_outcome_prefetch_without_server_is_reported(client: FlaskClient) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "lab system down"}],
    }
    topics = _topics(client.post(URL, json=_request(_prefetch() | {"observations": outcome})))
    assert "OperationOutcome (lab system down)" in topics["data-incomplete"]["detail"]


def _paged(resources: list[dict[str, Any]], next_url: str) -> dict[str, Any]:
    bundle = searchset(resources)
    bundle["link"] = [
        {"relation": "self", "url": f"{FHIR_BASE}/Condition?patient={PATIENT}"},
        {"relation": "next", "url": next_url},
    ]
    return bundle


def test_paginated_prefetch_follows_next_with_the_token(
    client: FlaskClient, fhir_mock: Any
) -> None:
    conditions = [r for r in scenario_resources(SCENARIO) if r["resourceType"] == "Condition"]
    assert conditions, "the scenario has a DVT condition"
    page2 = f"{FHIR_BASE}/Condition?patient={PATIENT}&_page=2"
    fhir_mock.add(
        responses.GET,
        page2,
        json=searchset(conditions),
        match=[
            responses.matchers.header_matcher({"Authorization": "Bearer secret-token-never-logged"})
        ],
    )
    prefetch = _prefetch() | {"conditions": _paged([], page2)}
    topics = _topics(client.post(URL, json=_request(prefetch, FHIR_BASE)))
    assert "thrombosis-risk" in topics and "data-incomplete" not in topics
    assert len(fhir_mock.calls) == 1


def test_paginated_prefetch_without_server_is_incomplete(client: FlaskClient) -> None:
    prefetch = _prefetch() | {"conditions": _paged([], f"{FHIR_BASE}/Condition?_page=2")}
    topics = _topics(client.post(URL, json=_request(prefetch)))
    assert "more pages" in topics["data-incomplete"]["detail"]


def test_next_link_off_the_base_url_is_never_followed(client: FlaskClient, fhir_mock: Any) -> None:
    prefetch = _prefetch() | {"conditions": _paged([], "https://attacker.example/steal?x=1")}
    topics = _topics(client.post(URL, json=_request(prefetch, FHIR_BASE)))
    assert "leaves the FHIR server base" in topics["data-incomplete"]["detail"]
    assert len(fhir_mock.calls) == 0


def test_endless_next_loop_is_bounded(tmp_path: Path, fhir_mock: Any) -> None:
    client = make_app(tmp_path, FHIR_MAX_PAGES=3).test_client()
    loop = f"{FHIR_BASE}/Condition?patient={PATIENT}&_page=again"
    fhir_mock.add(responses.GET, loop, json=_paged([], loop))
    topics = _topics(
        client.post(URL, json=_request(_prefetch() | {"conditions": _paged([], loop)}, FHIR_BASE))
    )
    assert "only part of the data was read" in topics["data-incomplete"]["detail"]
    assert len(fhir_mock.calls) <= 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "{}"),
        (401, "{}"),
        (403, "{}"),
        (200, "<html>not json</html>"),
        (200, json.dumps({"resourceType": "OperationOutcome", "issue": []})),
    ],
)
def test_failing_server_for_optional_data_gives_data_incomplete(
    client: FlaskClient, fhir_mock: Any, status: int, body: str
) -> None:
    fhir_mock.add(responses.GET, f"{FHIR_BASE}/Observation", status=status, body=body)
    prefetch = {k: v for k, v in _prefetch().items() if k != "observations"}
    topics = _topics(client.post(URL, json=_request(prefetch, FHIR_BASE)))
    assert (
        "Prefetch 'observations': not prefetched, and the FHIR fetch failed"
        in topics["data-incomplete"]["detail"]
    )


@pytest.mark.parametrize("failure", [requests.ConnectionError("refused"), requests.Timeout("slow")])
def test_unreachable_server_for_essential_data_is_412(
    client: FlaskClient, fhir_mock: Any, failure: Exception
) -> None:
    fhir_mock.add(responses.GET, f"{FHIR_BASE}/Patient/{PATIENT}", body=failure)
    prefetch = {k: v for k, v in _prefetch().items() if k != "patient"}
    response = client.post(URL, json=_request(prefetch, FHIR_BASE))
    assert response.status_code == 412
    assert "secret-token" not in response.get_data(as_text=True)


def test_fhir_server_outside_the_allowlist_is_never_called(
    client: FlaskClient, fhir_mock: Any
) -> None:
    request = _request({"patient": _prefetch()["patient"]}, "https://evil.example/fhir")
    response = client.post(URL, json=request)
    assert response.status_code == 412
    assert "not an allowed FHIR server" in json.dumps(response.get_json())
    assert len(fhir_mock.calls) == 0


def test_a_refused_fhir_server_is_logged_without_its_query_or_userinfo(
    client: FlaskClient, fhir_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A code review's case: the refused URL was logged as sent, query and userinfo included."""
    server = "https://user:s3cret@evil.example/fhir?patient=example-7"
    with caplog.at_level(logging.WARNING):
        response = client.post(URL, json=_request({"patient": _prefetch()["patient"]}, server))
    assert response.status_code == 412
    assert "refused fhirServer https://evil.example/fhir" in caplog.text
    assert "s3cret" not in caplog.text and "example-7" not in caplog.text
    assert len(fhir_mock.calls) == 0


def test_queries_run_in_parallel(client: FlaskClient, fhir_mock: Any) -> None:
    """All six searches must be in flight at once: a barrier of six breaks if they run in turn."""
    barrier = threading.Barrier(6, timeout=2)
    resources = scenario_resources(SCENARIO)

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        barrier.wait()
        kind = request.url.split("?")[0].rsplit("/", 1)[-1]
        return 200, {}, json.dumps(searchset([r for r in resources if r["resourceType"] == kind]))

    for kind in SEARCHED_TYPES:
        fhir_mock.add_callback(responses.GET, f"{FHIR_BASE}/{kind}", callback=answer)
    topics = _topics(
        client.post(URL, json=_request({"patient": _prefetch()["patient"]}, FHIR_BASE))
    )
    assert set(topics) == {"thrombosis-risk", "hemolysis-risk"}  # 2 g/kg, no ABO group


def test_slow_optional_query_is_cut_at_the_time_budget(tmp_path: Path, fhir_mock: Any) -> None:
    client = make_app(tmp_path, REQUEST_BUDGET_S=0.3).test_client()
    released = threading.Event()

    def slow(_: Any) -> tuple[int, dict[str, str], str]:
        released.wait(2)
        return 200, {}, json.dumps(searchset([]))

    fhir_mock.add_callback(responses.GET, f"{FHIR_BASE}/Observation", callback=slow)
    prefetch = {k: v for k, v in _prefetch().items() if k != "observations"}
    started = time.monotonic()
    topics = _topics(client.post(URL, json=_request(prefetch, FHIR_BASE)))
    released.set()
    assert "did not answer within the time budget" in topics["data-incomplete"]["detail"]
    assert time.monotonic() - started < 2  # answered without waiting for the slow server


def test_invalid_resource_is_skipped_and_named(client: FlaskClient) -> None:
    prefetch = _prefetch()
    broken = {
        "resourceType": "Condition",
        "id": "broken-1",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "onsetDateTime": "not-a-date",
    }
    prefetch["conditions"]["entry"].append({"resource": broken})
    topics = _topics(client.post(URL, json=_request(prefetch)))
    assert (
        "Condition/broken-1 was skipped: onsetDateTime is not valid FHIR R4 (not a FHIR date)"
        in topics["data-incomplete"]["detail"]
    )
    assert "thrombosis-risk" in topics


def test_an_element_no_check_reads_never_stops_the_checks(client: FlaskClient) -> None:
    """Version 1 refused this whole order ("not valid FHIR R4"): no safety check ran."""
    well_formed = order_for("privigen-iv", PATIENT)
    invalid = well_formed | {"authoredOn": "yesterday", "category": "inpatient", "priority": 7}
    body = hook_request("order-select", PATIENT, [well_formed], prefetch=_prefetch())
    expected = _topics(client.post(URL, json=body))
    body = hook_request("order-select", PATIENT, [invalid], prefetch=_prefetch())
    topics = _topics(client.post(URL, json=body))
    assert {t: c["indicator"] for t, c in topics.items()} == {
        t: c["indicator"] for t, c in expected.items()
    }
    assert "thrombosis-risk" in topics


def test_a_malformed_dosage_disables_only_the_checks_that_read_it(client: FlaskClient) -> None:
    order = order_for("privigen-iv", PATIENT) | {"dosageInstruction": "0.4 g/kg daily"}
    body = hook_request("order-select", PATIENT, [order], prefetch=_prefetch())
    topics = _topics(client.post(URL, json=body))
    assert "thrombosis-risk" in topics  # the checks that do not read the dosage still run
    detail = topics["data-incomplete"]["detail"]
    assert "MedicationRequest/privigen-iv: dosageInstruction not a list of objects" in detail
    assert "not checked: the route, dose" in detail


@pytest.mark.parametrize(
    ("element", "named"),
    [
        (
            {
                "medicationCodeableConcept": {
                    "text": "Privigen",
                    "coding": [{"code": "1", "display": 5}],
                }
            },
            "medicationCodeableConcept.coding.display not a string; not checked: the coded product",
        ),
        (
            {"medicationCodeableConcept": "Privigen 10%"},
            "medicationCodeableConcept not an object; not checked: the coded product",
        ),
        (
            {"medicationReference": "Medication/x"},
            "medicationReference not an object; not checked: the referenced Medication",
        ),
    ],
    ids=["bad-display", "concept-as-text", "reference-as-text"],
)
def test_a_malformed_medication_element_still_gets_the_checks_and_is_named(
    client: FlaskClient, element: dict[str, Any], named: str
) -> None:
    """It once left the order unrecognised: no card at all, as if it were not immune globulin."""
    order = order_for("privigen-iv", PATIENT) | element
    body = hook_request("order-select", PATIENT, [order], prefetch=_prefetch())
    topics = _topics(client.post(URL, json=body))
    assert "thrombosis-risk" in topics
    assert f"MedicationRequest/privigen-iv: {named}" in topics["data-incomplete"]["detail"]


def test_a_malformed_medication_that_names_no_immune_globulin_gets_no_card(
    client: FlaskClient,
) -> None:
    order = order_for("privigen-iv", PATIENT) | {"medicationCodeableConcept": "Amoxicillin"}
    body = hook_request("order-select", PATIENT, [order], prefetch=_prefetch())
    assert client.post(URL, json=body).get_json() == {"cards": []}


def test_external_medication_is_read_from_the_server(client: FlaskClient, fhir_mock: Any) -> None:
    medication = load_json("orders/medication-ivig-med-1.json") | {"code": {"text": "Privigen"}}
    fhir_mock.add(responses.GET, f"{FHIR_BASE}/Medication/ivig-med-1", json=medication)
    body = _request(_prefetch(), FHIR_BASE, order="ig-medication-reference-external")
    topics = _topics(client.post(URL, json=body))
    assert "recognised by text 'Privigen'" in topics["thrombosis-risk"]["detail"]


@pytest.mark.parametrize(
    "reference",
    [
        "Medication/..;/Patient/x",
        "Medication/..%2FPatient%2Fx",
        "Medication/..",
        "Medication/a?b=c",
    ],
)
def test_a_medication_reference_that_is_not_type_and_id_never_reaches_the_server(
    client: FlaskClient, fhir_mock: Any, reference: str
) -> None:
    """Issue 12: ``..;/`` and ``..%2F`` in a Medication reference reached the FHIR server as a
    path. Only ``Type/id`` is read; the order is checked on its display."""
    order = order_for("ig-medication-reference-external", PATIENT)
    order["medicationReference"] = {"reference": reference, "display": "Privigen"}
    body = hook_request(
        "order-select", PATIENT, [order], prefetch=_prefetch(), fhir_server=FHIR_BASE
    )
    response = client.post(URL, json=body)
    assert response.status_code == 200, response.get_json()
    assert [c.request.url for c in fhir_mock.calls if "Medication" in c.request.url] == []
    assert "Privigen" in _topics(response)["thrombosis-risk"]["summary"]


def test_external_medication_without_server_uses_the_display(client: FlaskClient) -> None:
    topics = _topics(
        client.post(URL, json=_request(_prefetch(), order="ig-medication-reference-external"))
    )
    assert "Privigen" in topics["thrombosis-risk"]["summary"]


def test_an_order_nothing_names_as_immune_globulin_gets_no_card(client: FlaskClient) -> None:
    """Contract §9: an unidentified medication gets no card unless its text names immune
    globulin (then it is checked as generic immune globulin)."""
    order = order_for("ig-medication-reference-external", PATIENT)
    order["medicationReference"] = {"reference": "Medication/unknown-9"}
    body = hook_request("order-select", PATIENT, [order], prefetch=_prefetch())
    assert client.post(URL, json=body).get_json() == {"cards": []}
    order["medicationReference"]["display"] = "immune globulin 10%"
    body = hook_request("order-select", PATIENT, [order], prefetch=_prefetch())
    topics = _topics(client.post(URL, json=body))
    assert "immune globulin (product not identified)" in topics["thrombosis-risk"]["summary"]


def test_an_order_with_no_medication_gets_no_card(client: FlaskClient) -> None:
    """The CDS Hooks Sandbox sends such drafts while the user types, on every patient."""
    order = order_for("privigen-iv", PATIENT)
    del order["medicationCodeableConcept"]
    body = hook_request("order-select", PATIENT, [order], prefetch=_prefetch())
    assert client.post(URL, json=body).get_json() == {"cards": []}


def test_prefetched_patient_of_another_id_is_refused(client: FlaskClient) -> None:
    """Another patient's record is not this patient's essential data: 412 (contract §9)."""
    prefetch = _prefetch()
    prefetch["patient"] = prefetch["patient"] | {"id": "someone-else"}
    response = client.post(URL, json=_request(prefetch))
    assert response.status_code == 412
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == ["prefetch.patient"]
    assert "Patient/someone-else" in issue["diagnostics"]


@pytest.mark.parametrize("value", ["oops", 42, [], {"no": "resourceType"}])
def test_prefetch_value_that_is_not_a_resource_is_a_bad_request(
    client: FlaskClient, value: Any
) -> None:
    response = client.post(URL, json=_request(_prefetch() | {"observations": value}))
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["prefetch.observations"]


def test_bundle_entry_without_a_resource_is_reported(client: FlaskClient) -> None:
    prefetch = _prefetch()
    prefetch["conditions"]["entry"].append({"fullUrl": "urn:uuid:lost"})
    topics = _topics(client.post(URL, json=_request(prefetch)))
    assert "(not a resource) was skipped" in topics["data-incomplete"]["detail"]


@pytest.mark.parametrize("element", ["entry", "link"])
def test_a_bundle_element_that_is_not_a_list_is_reported_not_a_500(
    client: FlaskClient, element: str
) -> None:
    prefetch = _prefetch()
    prefetch["conditions"][element] = 5
    response = client.post(URL, json=_request(prefetch))
    assert response.status_code == 200
    if element == "entry":  # the Conditions are lost: said so, not taken for none
        assert "(not a resource) was skipped" in _topics(response)["data-incomplete"]["detail"]


def test_a_dropped_keep_alive_connection_is_retried_once(
    client: FlaskClient, fhir_mock: Any
) -> None:
    """A pooled connection the server closed while idle fails on reuse: one retry, then data."""
    url = f"{FHIR_BASE}/Observation"
    fhir_mock.add(responses.GET, url, body=requests.ConnectionError("Connection aborted"))
    fhir_mock.add(responses.GET, url, json=searchset([]))
    prefetch = {k: v for k, v in _prefetch().items() if k != "observations"}
    topics = _topics(client.post(URL, json=_request(prefetch, FHIR_BASE)))
    assert "data-incomplete" not in topics
    assert len([c for c in fhir_mock.calls if c.request.url.startswith(url)]) == 2


def test_a_timeout_is_not_retried(client: FlaskClient, fhir_mock: Any) -> None:
    url = f"{FHIR_BASE}/Observation"
    fhir_mock.add(responses.GET, url, body=requests.ReadTimeout("slow"))
    fhir_mock.add(responses.GET, url, json=searchset([]))
    prefetch = {k: v for k, v in _prefetch().items() if k != "observations"}
    topics = _topics(client.post(URL, json=_request(prefetch, FHIR_BASE)))
    assert "no answer within" in topics["data-incomplete"]["detail"]
    assert len([c for c in fhir_mock.calls if c.request.url.startswith(url)]) == 1
