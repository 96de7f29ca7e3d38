"""The examples of ``openapi.yaml``, computed from the live app, so the document cannot drift.

The request examples are inputs (written by hand, realistic); the discovery and response examples
are what the app answers to them (fixed clock and numbered uuids), and the feedback examples name
cards and suggestions of those answers. ``tests/contract/test_openapi.py`` fails when a committed
example differs; ``make docs`` (``python tests/contract/openapi_examples.py --write``) rewrites
the examples block at the end of ``openapi.yaml``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from conftest import ROOT, make_app  # noqa: E402

OPENAPI = ROOT / "openapi.yaml"
MARKER = "\n  examples:\n"
# request example -> (service id, response example, its summary)
CALLS = {
    "OrderSelectRequest": (
        "ivig-order-select",
        "OrderSelectResponse",
        "The answer to the order-select example: thrombosis and renal risk (boxed warnings), "
        "and guidance for Guillain-Barré syndrome",
    ),
    "OrderSignRequest": (
        "ivig-order-sign",
        "OrderSignResponse",
        "The answer to the order-sign example",
    ),
    "PatientViewRequest": (
        "ivig-patient-view",
        "PatientViewResponse",
        "The answer to the patient-view example",
    ),
}


def document() -> dict[str, Any]:
    return dict(yaml.safe_load(OPENAPI.read_text(encoding="utf-8")))


def live_examples(examples: dict[str, Any]) -> dict[str, Any]:
    """The examples with every output recomputed from the app's answers to the inputs."""
    with tempfile.TemporaryDirectory() as tmp:
        client = make_app(Path(tmp)).test_client()
        found = dict(examples)
        found["DiscoveryResponse"] = {
            "summary": "The three IVIG services",
            "value": client.get("/cds-services").get_json(),
        }
        for request, (service, response, summary) in CALLS.items():
            answer = client.post(f"/cds-services/{service}", json=examples[request]["value"])
            assert answer.status_code == 200, answer.get_json()
            found[response] = {"summary": summary, "value": answer.get_json()}
        card = found["OrderSelectResponse"]["value"]["cards"][0]
        for name in ("FeedbackAccepted", "FeedbackOverridden"):
            item = found[name]["value"]["feedback"][0]
            item["card"] = card["uuid"]
            if "acceptedSuggestions" in item:
                item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
            if "overrideReason" in item:  # one of the card's own coded reasons
                item["overrideReason"]["reason"] = card["overrideReasons"][0]
    return found


def write(examples: dict[str, Any]) -> None:
    text = OPENAPI.read_text(encoding="utf-8")
    head, _, _ = text.rpartition(MARKER)
    body = yaml.safe_dump({"examples": examples}, sort_keys=False, allow_unicode=True, width=100)
    indented = "".join(f"  {line}" if line.strip() else line for line in body.splitlines(True))
    OPENAPI.write_text(f"{head}\n{indented}", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite openapi.yaml's examples")
    args = parser.parse_args()
    examples = live_examples(document()["components"]["examples"])
    if args.write:
        write(examples)
    else:
        yaml.safe_dump(examples, sys.stdout, sort_keys=False, allow_unicode=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
