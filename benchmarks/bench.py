"""Measure order-select latency (``make bench``). Figures go in the README; no test asserts speed.

1. Full prefetch of each Synthea record, in process on one core: as the narrow templates would be
   answered (observations and procedures filtered to the templates' codes), and unfiltered.
2. No prefetch: a real local FHIR server (a subprocess) that takes 50 ms per query; the seven
   queries should overlap, so the call takes about one round trip, not seven.
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
    "procedures": "Procedure",
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


def coded(resource: dict[str, Any], codes: set[str]) -> bool:
    return any(c.get("code") in codes for c in (resource.get("code") or {}).get("coding", []))


def prefetch_of(
    resources: list[dict[str, Any]], codes: dict[str, set[str]] | None
) -> dict[str, Any]:
    """Full prefetch; with ``codes`` (type -> template codes), narrowed as the templates are."""
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch: dict[str, Any] = {"patient": patient}
    for key, kind in TYPES.items():
        found = [r for r in resources if r["resourceType"] == kind]
        if codes is not None and kind in codes:
            found = [r for r in found if coded(r, codes[kind])]
        prefetch[key] = searchset(found)
    return prefetch


def codes_of_param(value: str) -> set[str]:
    """``system|code,system|code`` -> the codes."""
    return {token.split("|")[-1] for token in value.split(",")}


def template_codes(templates: dict[str, str]) -> dict[str, set[str]]:
    """The codes each prefetch template searches for, as discovery publishes them."""
    found: dict[str, set[str]] = {}
    for template in templates.values():
        kind, _, query = template.partition("?")
        for part in query.split("&"):
            if part.startswith("code="):
                found[kind] = codes_of_param(part.removeprefix("code="))
    return found


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
            query = parse_qs(parts.query)
            assert "patient" in query
            found = [r for r in self.resources if r["resourceType"] == kind]
            if "code" in query:  # a real server filters by code, so this one does too
                found = [r for r in found if coded(r, codes_of_param(query["code"][0]))]
            body = searchset(found)
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
        templates = app.extensions["ivig_cds"].registry.get("ivig-order-select").discovery_json()
        codes = template_codes(templates["prefetch"])
        queries = len(templates["prefetch"])
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
            f"({queries} queries; {queries * DELAY_S * 1000:.0f} ms if run one after another):"
        )
        print(
            f"  {biggest.stem.split('_')[0]:9} "
            f"{summary(timed(client, body, max(20, args.runs // 4)))}"
        )
        fhir.terminate()


if __name__ == "__main__":
    main()
