"""What the benchmark and the load test share: request bodies built from the Synthea records,
starting and stopping a gunicorn server on loopback, its workers' memory, and percentiles.

Only loopback traffic; every wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = sorted((ROOT / "fhir_fixtures" / "synthea").glob("*.json"))
ORDER = json.loads((ROOT / "fhir_fixtures" / "orders" / "privigen-iv.json").read_text())
HOST = "127.0.0.1"
TYPES = {
    "conditions": "Condition",
    "observations": "Observation",
    "allergies": "AllergyIntolerance",
    "medicationRequests": "MedicationRequest",
    "medicationStatements": "MedicationStatement",
    "procedures": "Procedure",
}


# --- requests ---


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
    """An order-select call for the record's patient, with a Privigen draft order."""
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
    resources: list[dict[str, Any]], codes: dict[str, set[str]] | None, keys: set[str]
) -> dict[str, Any]:
    """The prefetch an EHR sends for these templates (``keys``); with ``codes`` (type ->
    template codes), Observation and Procedure are narrowed as the templates ask."""
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch: dict[str, Any] = {"patient": patient}
    for key, kind in TYPES.items():
        if key not in keys:
            continue
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


def narrow_bodies(service: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(record name, body) for every Synthea record, prefetched as ``service`` asks."""
    templates = service.get("prefetch", {})
    codes = template_codes(templates)
    bodies = []
    for path in SYNTHEA:
        resources = resources_of(path)
        prefetch = prefetch_of(resources, codes, set(templates))
        bodies.append((path.stem.split("_")[0], request_body(resources, prefetch, None)))
    return bodies


# --- servers ---


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_command() -> str:
    local = Path(sys.executable).parent / "ivig-cds"
    if local.exists():
        return str(local)
    return str(ROOT / ".venv" / "bin" / "ivig-cds")


def children(pid: int) -> list[int]:
    """Child pids of ``pid`` (the gunicorn master: its workers), from /proc."""
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            found.update(int(p) for p in text.split())
        return sorted(found)
    except OSError:
        pass
    for stat in Path("/proc").glob("[0-9]*/stat"):  # kernels without /proc/<pid>/task/*/children
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return sorted(found)


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def workers_rss(master: int) -> dict[int, int]:
    found = {}
    for pid in children(master):
        kb = rss_kb(pid)
        if kb is not None:
            found[pid] = kb
    return found


def get(port: int, path: str, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(
    proc: subprocess.Popen[bytes], port: int, workers: int, limit_s: float, path: str
) -> Any:
    """The JSON at ``path``, once it answers and every worker has booted."""
    deadline = time.monotonic() + limit_s
    answer = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} while starting")
        if answer is None:
            try:
                status, data = get(port, path, timeout=2)
                if status == 200:
                    answer = json.loads(data)
            except (OSError, http.client.HTTPException):
                pass
        if answer is not None and len(workers_rss(proc.pid)) >= workers:
            return answer
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {limit_s:.0f} s")


def stop(proc: subprocess.Popen[bytes], limit_s: float = 35) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]
