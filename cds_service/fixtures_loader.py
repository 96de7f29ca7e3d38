"""Put the fixture patients of ``fhir_fixtures/`` on a FHIR R4 server, and take them off again.

Every ``scenarios/*.json`` and ``patient-view/*.json`` bundle (not ``index.json``) becomes one
``transaction`` Bundle of ``PUT`` entries. Each resource gets the stable id ``<prefix><id>`` (HAPI
refuses client-assigned ids that are purely numeric; ids stay within FHIR's 64 characters of
``[A-Za-z0-9-.]``) and every reference among them is rewritten to the prefixed ids: relative
``Type/id`` references, and references to a resource's ``fullUrl`` (``urn:uuid:...`` or absolute).
PUT with fixed ids makes loading idempotent; unloading DELETEs the same resources, the patient
last (servers that check referential integrity refuse to delete a referenced patient first).

All HTTP goes through :class:`cds_service.fhir.client.FhirClient`.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.errors import FhirError, FhirNotFound
from cds_service.fhir.client import Deadline, FhirClient

DEFAULT_PREFIX = "ivig-"
FIXTURE_SETS = ("scenarios", "patient-view")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PREFIX = re.compile(r"[A-Za-z0-9\-.]*")
_RELATIVE_REFERENCE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})")
_REQUEST_S = 120.0  # one transaction, one delete


class FixtureError(Exception):
    """A fixture file cannot be turned into a transaction, or the server refused one."""


@dataclass(frozen=True)
class FixtureBundle:
    """One fixture file, its resources already given their prefixed ids and references."""

    name: str  # "scenarios/ivig-in-age-65"
    patient_id: str  # prefixed
    resources: tuple[dict[str, Any], ...]

    def references(self) -> list[str]:
        return [f"{r['resourceType']}/{r['id']}" for r in self.resources]


def default_fixtures_dir() -> Path:
    """``$IVIG_CDS_FIXTURES_DIR``, else the checkout's ``fhir_fixtures``, else ``./fhir_fixtures``.

    (An installed package has no checkout beside it: the Docker image has ``/app/fhir_fixtures``.)
    """
    configured = os.environ.get("IVIG_CDS_FIXTURES_DIR")
    if configured:
        return Path(configured)
    beside_package = Path(__file__).resolve().parents[1] / "fhir_fixtures"
    if beside_package.is_dir():
        return beside_package
    return Path.cwd() / "fhir_fixtures"


def fixture_files(root: Path | None = None) -> list[Path]:
    root = default_fixtures_dir() if root is None else root
    files = [
        path
        for folder in FIXTURE_SETS
        for path in sorted((root / folder).glob("*.json"))
        if path.name != "index.json"
    ]
    if not files:
        raise FixtureError(f"no fixture bundles under {root} ({', '.join(FIXTURE_SETS)})")
    return files


def check_prefix(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise FixtureError(f"prefix {prefix!r}: only letters, digits, '-' and '.' may be used")
    return prefix


def fixture_bundles(prefix: str = DEFAULT_PREFIX, root: Path | None = None) -> list[FixtureBundle]:
    """Every fixture bundle, with prefixed ids and rewritten references."""
    check_prefix(prefix)
    return [_prefixed(path, prefix) for path in fixture_files(root)]


def fixture_resources(
    prefix: str = DEFAULT_PREFIX, root: Path | None = None
) -> list[dict[str, Any]]:
    """Every resource the loader puts on the server, as it puts it there."""
    return [resource for bundle in fixture_bundles(prefix, root) for resource in bundle.resources]


def transaction_bundle(bundle: FixtureBundle, base_url: str) -> dict[str, Any]:
    """The ``transaction`` Bundle that PUTs ``bundle``'s resources at their prefixed ids."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"{base_url}/{reference}",
                "resource": resource,
                "request": {"method": "PUT", "url": reference},
            }
            for resource, reference in zip(bundle.resources, bundle.references(), strict=True)
        ],
    }


def load(
    client: FhirClient,
    prefix: str = DEFAULT_PREFIX,
    root: Path | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> int:
    """PUT every fixture bundle as one transaction each; the number of resources put."""
    bundles = fixture_bundles(prefix, root)
    count = 0
    for number, bundle in enumerate(bundles, start=1):
        try:
            response = client.transaction(
                transaction_bundle(bundle, client.base_url), Deadline(_REQUEST_S)
            )
        except FhirError as exc:
            raise FixtureError(_failure(bundle, exc)) from exc
        _check_transaction_response(bundle, response)
        count += len(bundle.resources)
        progress(
            f"[{number}/{len(bundles)}] {bundle.name}: {len(bundle.resources)} resources "
            f"(Patient/{bundle.patient_id})"
        )
    return count


def unload(
    client: FhirClient,
    prefix: str = DEFAULT_PREFIX,
    root: Path | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> int:
    """DELETE every fixture resource, each patient after its data; the number deleted (a
    resource already absent counts too: unloading twice is not an error)."""
    bundles = fixture_bundles(prefix, root)
    count = 0
    for number, bundle in enumerate(bundles, start=1):
        patients_last = sorted(bundle.references(), key=lambda ref: ref.startswith("Patient/"))
        for reference in patients_last:
            try:
                client.delete(reference, Deadline(_REQUEST_S))
            except FhirNotFound:
                pass
            except FhirError as exc:
                raise FixtureError(
                    f"{bundle.name}: DELETE {reference} failed: {exc}{_diagnostics(exc)}"
                ) from exc
            count += 1
        progress(
            f"[{number}/{len(bundles)}] {bundle.name}: {len(bundle.resources)} resources deleted"
        )
    return count


def wait_for_server(client: FhirClient, seconds: float, sleep: Callable[[float], None]) -> None:
    """Poll ``{base}/metadata`` until the server answers or ``seconds`` have passed."""
    deadline = Deadline(seconds)
    while True:
        try:
            client.read("metadata", Deadline(min(10.0, max(deadline.remaining(), 0.1))))
            return
        except FhirError as exc:
            if deadline.remaining() <= 0:
                raise FixtureError(
                    f"{client.base_url}/metadata did not answer within {seconds:g} s: {exc}"
                ) from exc
        sleep(min(2.0, deadline.remaining()))


def _prefixed(path: Path, prefix: str) -> FixtureBundle:
    name = f"{path.parent.name}/{path.stem}"
    try:
        source = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FixtureError(f"{name}: cannot read {path}: {exc}") from exc
    if not isinstance(source, dict) or source.get("resourceType") != "Bundle":
        raise FixtureError(f"{name}: {path} is not a FHIR Bundle")
    entries = source.get("entry") or []
    # Every id and fullUrl of the bundle, mapped to the reference it becomes.
    targets: dict[str, str] = {}
    resources: list[dict[str, Any]] = []
    for position, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise FixtureError(f"{name}: entry {position} holds no resource")
        resource = copy.deepcopy(resource)
        type_ = resource["resourceType"]
        full_url = entry.get("fullUrl")
        old_id = resource.get("id")
        if not old_id and isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
            old_id = full_url.removeprefix("urn:uuid:")
        if not isinstance(old_id, str) or not old_id:
            raise FixtureError(f"{name}: the {type_} in entry {position} has no id")
        new_id = f"{prefix}{old_id}"
        if not _ID.fullmatch(new_id) or new_id.isdigit():
            raise FixtureError(
                f"{name}: {type_}/{old_id} would get the id {new_id!r}, which is not a valid FHIR "
                "id here (1-64 of A-Z a-z 0-9 - ., not only digits)"
            )
        resource["id"] = new_id
        meta = resource.get("meta")
        if isinstance(meta, dict):  # the server assigns these
            meta.pop("versionId", None)
            meta.pop("lastUpdated", None)
        targets[f"{type_}/{old_id}"] = f"{type_}/{new_id}"
        if isinstance(full_url, str) and full_url:
            targets[full_url] = f"{type_}/{new_id}"
        resources.append(resource)
    patients = [r["id"] for r in resources if r["resourceType"] == "Patient"]
    if len(patients) != 1:
        raise FixtureError(f"{name}: expected one Patient, found {len(patients)}")
    for resource in resources:
        _rewrite_references(resource, targets, prefix)
    return FixtureBundle(name, patients[0], tuple(resources))


def _rewrite_references(node: Any, targets: dict[str, str], prefix: str) -> None:
    """Rewrite every ``reference`` in place: to a resource of the bundle (by ``Type/id`` or by
    ``fullUrl``), or, for another relative ``Type/id``, to ``Type/<prefix>id``, the id it has
    when it is a fixture too. Contained (``#x``) and other absolute references stay."""
    if isinstance(node, list):
        for item in node:
            _rewrite_references(item, targets, prefix)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "reference" and isinstance(value, str):
            if value in targets:
                node[key] = targets[value]
            elif match := _RELATIVE_REFERENCE.fullmatch(value):
                node[key] = f"{match[1]}/{prefix}{match[2]}"
        else:
            _rewrite_references(value, targets, prefix)


def _check_transaction_response(bundle: FixtureBundle, response: dict[str, Any]) -> None:
    """A transaction either succeeds as a whole or fails; still, check each entry's status."""
    entries = response.get("entry") or []
    for resource, entry in zip(bundle.resources, entries, strict=False):
        answer = entry.get("response") if isinstance(entry, dict) else None
        status = str((answer or {}).get("status", ""))
        if not status[:1] == "2":
            reference = f"{resource['resourceType']}/{resource['id']}"
            outcome = (answer or {}).get("outcome")
            raise FixtureError(
                f"{bundle.name}: the server did not store {reference} (status {status or '?'})"
                f"{_outcome_text(outcome)}"
            )


def _failure(bundle: FixtureBundle, exc: FhirError) -> str:
    """The bundle, the resource at fault when the OperationOutcome points at one, and why."""
    outcome = getattr(exc, "outcome", None)
    culprit = _culprit(bundle, outcome)
    at = f" at {culprit}" if culprit else ""
    return f"{bundle.name}: the transaction failed{at}: {exc}{_outcome_text(outcome)}"


def _culprit(bundle: FixtureBundle, outcome: Any) -> str | None:
    """The resource an OperationOutcome names: by ``Bundle.entry[n]`` in an issue's expression,
    location or diagnostics, or by one of the bundle's references appearing in its text."""
    if not isinstance(outcome, dict):
        return None
    references = bundle.references()
    texts = list(_issue_texts(outcome))
    for text in texts:
        if match := re.search(r"entry\[(\d+)\]", text):
            position = int(match[1])
            if position < len(references):
                return references[position]
    for text in texts:
        for reference in sorted(references, key=len, reverse=True):
            if reference in text:
                return reference
    return None


def _issue_texts(outcome: dict[str, Any]) -> Iterable[str]:
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        for key in ("expression", "location"):
            for value in issue.get(key) or []:
                if isinstance(value, str):
                    yield value
        if isinstance(issue.get("diagnostics"), str):
            yield issue["diagnostics"]
        details = issue.get("details")
        if isinstance(details, dict) and isinstance(details.get("text"), str):
            yield details["text"]


def _outcome_text(outcome: Any) -> str:
    """``; server says: <severity> <code>: <diagnostics / details> (<expression>)`` per issue."""
    if not isinstance(outcome, dict):
        return ""
    parts = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        found = issue.get("details")
        details: dict[str, Any] = found if isinstance(found, dict) else {}
        said = [
            text
            for text in (issue.get("diagnostics"), details.get("text"))
            if isinstance(text, str) and text
        ]
        where = [e for e in issue.get("expression") or [] if isinstance(e, str)]
        part = f"{issue.get('severity', 'error')} {issue.get('code', '?')}: " + (
            " / ".join(said) or "(no diagnostics)"
        )
        if where:
            part += f" ({', '.join(where)})"
        parts.append(part)
    return f"; server says: {'; '.join(parts)}" if parts else ""


def _diagnostics(exc: FhirError) -> str:
    return _outcome_text(getattr(exc, "outcome", None))
