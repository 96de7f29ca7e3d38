"""Cards a clinician sees per order over the scenario set (fhir_fixtures/scenarios/index.json):
for each scenario, at order-select and at order-sign, how many cards, how many of them warning or
critical, and how many suggestions. Everything prefetched, in process.

    python benchmarks/card_counts.py                        # a Markdown table on stdout
    python benchmarks/card_counts.py --json > before.json   # the counts of one version
    python benchmarks/card_counts.py --compare before.json  # before -> after, where they differ

Each scenario is sent to order-select, then to order-sign, by one user: what a clinician who
selects and then signs the order sees (version 2 does not repeat at order-sign what order-select
showed, unless it is critical or an unacknowledged dose or product warning).

Only the app factory, the fixtures and the benchmark harness, so the same script measures an older
checkout of the service: docs/card-counts.md compares version 1 with version 2 this way.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import ROOT, TYPES, searchset

FIXTURES = ROOT / "fhir_fixtures"


def _load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def _request(hook: str, scenario: dict[str, Any]) -> dict[str, Any]:
    resources = [e["resource"] for e in _load(f"scenarios/{scenario['name']}.json")["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    names = scenario.get("orders") or [scenario["order"]]
    orders = [
        json.loads(json.dumps(_load(f"orders/{name}.json")).replace("PATIENT_ID", patient["id"]))
        for name in names
    ]
    context: dict[str, Any] = {
        "userId": "Practitioner/example",
        "patientId": patient["id"],
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": o} for o in orders],
        },
    }
    if hook == "order-select":
        references = [f"{o['resourceType']}/{o['id']}" for o in orders]
        medication = [r for r in references if r.startswith("MedicationRequest/")]
        context["selections"] = medication or references
    prefetch: dict[str, Any] = {"patient": patient}
    for key, kind in TYPES.items():
        prefetch[key] = searchset([r for r in resources if r["resourceType"] == kind])
    return {
        "hook": hook,
        "hookInstance": f"counts-{scenario['name']}-{hook}",
        "context": context,
        "prefetch": prefetch,
    }


def counts() -> dict[str, dict[str, dict[str, int]]]:
    from cds_service import create_app

    scratch = Path(tempfile.mkdtemp(prefix="ivig-card-counts-"))
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{scratch / 'feedback.sqlite3'}",
            "AUDIT_SPOOL_DIR": str(scratch / "audit-spool"),
            "CLOCK": lambda: datetime(2026, 6, 15, 12, 0, tzinfo=UTC),
        }
    )
    client = app.test_client()
    services = {s["hook"]: s["id"] for s in client.get("/cds-services").get_json()["services"]}
    found: dict[str, dict[str, dict[str, int]]] = {}
    for scenario in _load("scenarios/index.json")["scenarios"]:
        for hook in ("order-select", "order-sign"):
            response = client.post(f"/cds-services/{services[hook]}", json=_request(hook, scenario))
            if response.status_code != 200:
                raise SystemExit(f"{scenario['name']} {hook}: {response.get_json()}")
            cards = response.get_json()["cards"]
            found.setdefault(scenario["name"], {})[hook] = {
                "cards": len(cards),
                "warnings": sum(c["indicator"] in ("warning", "critical") for c in cards),
                "suggestions": sum(len(c.get("suggestions", [])) for c in cards),
            }
    return found


def _cell(hooks: dict[str, Any], key: str) -> str:
    return f"{hooks['order-select'][key]}/{hooks['order-sign'][key]}"


def _totals(found: dict[str, dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    return {
        hook: {
            key: sum(hooks[hook][key] for hooks in found.values())
            for key in ("cards", "warnings", "suggestions")
        }
        for hook in ("order-select", "order-sign")
    }


def compare(before: dict[str, Any], after: dict[str, Any]) -> None:
    """A Markdown table: per scenario, select/sign before -> after, only where they differ
    (a scenario new in ``after`` is marked so)."""
    print("| scenario | cards | warning or critical | suggestions |")
    print("|---|---|---|---|")
    common = [name for name in after if name in before]  # totals over the same scenarios
    rows: list[tuple[str, Any, Any]] = [
        (
            f"**all {len(common)} scenarios of both**",
            _totals({n: before[n] for n in common}),
            _totals({n: after[n] for n in common}),
        )
    ]
    rows += [(n, before.get(n), after[n]) for n in after if before.get(n) != after[n]]
    for name, old, new in rows:
        cells = [
            f"{_cell(old, key) if old else 'new'} → {_cell(new, key)}"
            for key in ("cards", "warnings", "suggestions")
        ]
        print(f"| {name} | {' | '.join(cells)} |")


def main(argv: list[str]) -> None:
    found = counts()
    if "--json" in argv:
        print(json.dumps(found, indent=1, sort_keys=True))
    elif "--compare" in argv:
        compare(json.loads(Path(argv[argv.index("--compare") + 1]).read_text()), found)
    else:
        print("| scenario | cards (select/sign) | warning or critical | suggestions |")
        print("|---|---|---|---|")
        for name, hooks in found.items():
            cells = [_cell(hooks, key) for key in ("cards", "warnings", "suggestions")]
            print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
