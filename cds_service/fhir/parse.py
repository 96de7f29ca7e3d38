"""Parse raw FHIR JSON into ``fhir.resources`` R4B models at the boundary.

A resource that does not validate is skipped and reported (type, id, first error), never a 500.
The report holds the error location and message only, never the offending value, which may be PHI.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError


@dataclass(frozen=True)
class SkippedResource:
    reference: str
    reason: str


@cache
def _model(resource_type: str) -> type[Resource] | None:
    try:
        return get_fhir_model_class(resource_type)  # type: ignore[no-any-return]
    except (KeyError, ValueError):
        return None


def reference_of(raw: dict[str, Any]) -> str:
    return f"{raw.get('resourceType', 'Resource')}/{raw.get('id', '(no id)')}"


def parse_resource(raw: Any) -> Resource | SkippedResource:
    if not isinstance(raw, dict) or not isinstance(raw.get("resourceType"), str):
        return SkippedResource("(not a resource)", "not a JSON object with a resourceType")
    model = _model(raw["resourceType"])
    if model is None:
        return SkippedResource(reference_of(raw), f"unknown resourceType {raw['resourceType']!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return SkippedResource(reference_of(raw), f"invalid FHIR R4 at {where}: {first['msg']}")
    except (ValueError, TypeError) as exc:  # fhir.resources raises these for some primitives
        return SkippedResource(reference_of(raw), f"invalid FHIR R4: {type(exc).__name__}")


def parse_resources(raws: list[Any]) -> tuple[list[Resource], list[SkippedResource]]:
    parsed: list[Resource] = []
    skipped: list[SkippedResource] = []
    for raw in raws:
        result = parse_resource(raw)
        (skipped if isinstance(result, SkippedResource) else parsed).append(result)  # type: ignore[arg-type]
    return parsed, skipped
