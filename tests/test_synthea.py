"""Six Synthea R4 records through order-select with an IVIG order: 200, valid cards, no crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    FHIR_BASE,
    FIXTURES,
    FakeFhirServer,
    assert_card_shape,
    cards_by_topic,
    full_prefetch,
    hook_request,
    order_for,
)
from flask.testing import FlaskClient

BUNDLES = sorted((FIXTURES / "synthea").glob("*.json"))


def _resources(path: Path) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in json.loads(path.read_text())["entry"]]


def test_six_synthea_patients_are_present() -> None:
    assert len(BUNDLES) == 6


@pytest.mark.parametrize("mode", ["prefetch", "fhir"])
@pytest.mark.parametrize("bundle", BUNDLES, ids=[p.stem.split("_")[0] for p in BUNDLES])
def test_synthea_patient_through_order_select(
    client: FlaskClient, fhir_mock: Any, bundle: Path, mode: str
) -> None:
    resources = _resources(bundle)
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    order = order_for("privigen-iv", patient_id)
    if mode == "prefetch":
        body = hook_request("order-select", patient_id, [order], prefetch=full_prefetch(resources))
    else:
        FakeFhirServer(fhir_mock, resources)
        body = hook_request("order-select", patient_id, [order], fhir_server=FHIR_BASE)
    response = client.post("/cds-services/ivig-order-select", json=body)
    assert response.status_code == 200, response.get_json()
    cards = response.get_json()["cards"]
    for card in cards:
        assert_card_shape(card, f"Patient/{patient_id}")
    topics = cards_by_topic(cards)
    # Synthea vitals are years older than the evaluation date: the weight cannot be recent.
    assert topics["missing-data"]["indicator"] == "warning"
    assert "data-incomplete" not in topics or "skipped" in topics["data-incomplete"]["detail"]
