"""Measure order-select latency (``make bench``). Figures go in the README; no test asserts speed.

1. Full prefetch of each Synthea record, in process on one core: as the narrow templates would be
   answered (observations filtered to the template's codes), and unfiltered (every Observation).
2. No prefetch: a real local FHIR server (a subprocess) that takes 50 ms per query; the six queries
   should overlap, so the call takes about one round trip, not six.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_service import create_app  # noqa: E402

SYNTHEA = sorted((ROOT / "fhir_fixtures" / "synthea").glob("*.json"))
ORDER = json.loads((ROOT / "fhir_fixtures" / "orders" / "privigen-iv.json").read_text())
TYPES = {
    "conditions": "Condition",
    "observations": "Observation",
    "allergies": "AllergyIntolerance",
    "medicationRequests": "MedicationRequest",
    "medicationStatements": "MedicationStatement",
}
DELAY_S = 0.050


def resources_of(path: Path) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in json.loads(path.read_text())["entry"]]


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


def request_body(
    resources: list[dict[str, Any]], prefetch: dict[str, Any] | None, server: str | None
) -> dict[str, Any]:
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    order = json.loads(json.dumps(ORDER).replace("PATIENT_ID", patient["id"]))
    body: dict[str, Any] = {
        "hook": "order-select",
        "hookInstance": "bench",
        "context": {
            "userId": "Practitioner/bench",
            "patientId": patient["id"],
            "selections": [f"MedicationRequest/{order['id']}"],
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": order}],
            },
        },
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    if server:
        body["fhirServer"] = server
        body["fhirAuthorization"] = {
            "access_token": "t",
            "token_type": "Bearer",
            "expires_in": 60,
            "scope": "patient/*.read",
            "subject": "bench",
        }
    return body


def prefetch_of(resources: list[dict[str, Any]], codes: set[str] | None) -> dict[str, Any]:
    prefetch: dict[str, Any] = {
        "patient": next(r for r in resources if r["resourceType"] == "Patient")
    }
    for key, kind in TYPES.items():
        found = [r for r in resources if r["resourceType"] == kind]
        if kind == "Observation" and codes is not None:
            found = [
                r for r in found if any(c.get("code") in codes for c in r["code"].get("coding", []))
            ]
        prefetch[key] = searchset(found)
    return prefetch


def timed(client: Any, body: dict[str, Any], runs: int) -> list[float]:
    payload = json.dumps(body)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.post(
            "/cds-services/ivig-order-select", data=payload, content_type="application/json"
        )
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)
    return samples


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered):6.1f} ms  p95 {p95:6.1f} ms  (n={len(ordered)})"


class SlowFhir(BaseHTTPRequestHandler):
    resources: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        time.sleep(DELAY_S)
        parts = urlsplit(self.path)
        kind, _, rid = parts.path.strip("/").removeprefix("fhir/").partition("/")
        if rid:
            body: Any = next(
                r for r in self.resources if r["resourceType"] == kind and r["id"] == rid
            )
        else:
            assert "patient" in parse_qs(parts.query)
            body = searchset([r for r in self.resources if r["resourceType"] == kind])
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        return


def serve(port: int, path: str) -> None:
    SlowFhir.resources = resources_of(Path(path))
    ThreadingHTTPServer(("127.0.0.1", port), SlowFhir).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = 18_000 + os.getpid() % 1000
        server_url = f"http://127.0.0.1:{port}/fhir"
        biggest = max(SYNTHEA, key=lambda p: p.stat().st_size)
        fhir = multiprocessing.Process(target=serve, args=(port, str(biggest)), daemon=True)
        fhir.start()
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # this process: one core
        app = create_app(
            {
                "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
                "ALLOWED_FHIR_SERVERS": [server_url],
                "CLOCK": lambda: datetime(2026, 6, 15, 12, tzinfo=UTC),
            }
        )
        client = app.test_client()
        codes = {
            c.code
            for c in app.extensions["ivig_cds"]
            .registry.get("ivig-order-select")
            .handler.kb.observation_codes()
        }
        print(
            f"order-select, full prefetch, in process, one core "
            f"({args.runs} runs after 10 warm-up):"
        )
        for path in SYNTHEA:
            resources = resources_of(path)
            for label, wanted in (("narrow", codes), ("unfiltered", None)):
                prefetch = prefetch_of(resources, wanted)
                body = request_body(resources, prefetch, None)
                count = sum(
                    len(v.get("entry", [])) if v.get("resourceType") == "Bundle" else 1
                    for v in prefetch.values()
                )
                timed(client, body, 10)
                print(
                    f"  {path.stem.split('_')[0]:9} {label:10} {count:4} resources  "
                    f"{summary(timed(client, body, args.runs))}"
                )
        time.sleep(0.3)  # let the FHIR stub start
        body = request_body(resources_of(biggest), None, server_url)
        timed(client, body, 5)
        print(
            f"order-select, no prefetch, FHIR server at {DELAY_S * 1000:.0f} ms per query "
            f"(6 queries; {6 * DELAY_S * 1000:.0f} ms if run one after another):"
        )
        print(
            f"  {biggest.stem.split('_')[0]:9} "
            f"{summary(timed(client, body, max(20, args.runs // 4)))}"
        )
        fhir.terminate()


if __name__ == "__main__":
    main()
