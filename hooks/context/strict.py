"""Strict mode (``IVIG_CDS_STRICT_FHIR=1``): validate every input resource fully with the R4B
models, for integrators who want to know what of theirs is not valid FHIR R4.

A record resource that fails is skipped and named; an immune globulin order that fails is named but
still checked leniently, because safety checks are never dropped for a form error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hooks.context.read import reference_of
from hooks.fhir_models import validation_error


def validation_failures(raws: Iterable[Any]) -> dict[str, str]:
    """reference -> why, for every resource in ``raws`` that does not validate."""
    found = {}
    for raw in raws:
        if isinstance(raw, dict) and isinstance(raw.get("resourceType"), str):
            why = validation_error(raw)
            if why is not None:
                found[reference_of(raw)] = why
    return found
