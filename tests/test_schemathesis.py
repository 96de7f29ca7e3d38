"""Hostile input against the contract (issue 5 item 4): schemathesis runs ``openapi.yaml`` on the
live WSGI app. Every operation, generated positive and negative requests: never a 5xx, and every
response conforms to the spec (documented status code, content type, headers, body schema).

A few examples per operation, derandomized, inside ``make test``; ``make fuzz`` runs many more
(``IVIG_CDS_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from conftest import ROOT, make_app
from flask import Flask
from schemathesis.checks import positive_data_acceptance

FUZZ_EXAMPLES = int(os.environ.get("IVIG_CDS_FUZZ_EXAMPLES") or 0)

schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
schema.config.update(base_url="http://localhost")
schema.config.generation.update(max_examples=FUZZ_EXAMPLES or 10, deterministic=True)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return make_app(Path(tmp_path_factory.mktemp("schemathesis")))


@schema.parametrize()
def test_the_live_app_conforms_to_openapi(case: schemathesis.Case, app: Flask) -> None:
    excluded = []
    if case.operation.label == "POST /cds-services/{id}":
        # A schemathesis false positive for this operation: a request can satisfy the JSON Schema
        # of HookRequest and still be one the spec itself documents as 400 or 412, because JSON
        # Schema cannot say that `hook` must be the hook of the service named in the path, that
        # `context.selections` must name entries of `context.draftOrders`, or that the Patient and
        # Conditions must be obtainable (prefetch or fhirServer). Only this check is skipped; the
        # response of every such request is still checked against the documented 400/412.
        excluded.append(positive_data_acceptance)
    response = case.call_and_validate(app=app, excluded_checks=excluded)
    assert response.status_code < 500
