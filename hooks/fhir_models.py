"""The fhir.resources R4B models, where the service uses them: to validate every resource it
writes (suggestions), every input resource in strict mode, and to know which elements are lists.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

ElementShape = tuple[bool, str | None]  # (0..* list, the element's complex type if any)


@cache
def model(type_name: str) -> type[BaseModel] | None:
    try:
        found: type[BaseModel] = get_fhir_model_class(type_name)
        return found
    except (KeyError, ValueError):
        return None


def _shape(annotation: Any) -> ElementShape:
    is_list = False
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is list:
            is_list, arg = True, typing.get_args(arg)[0]
        name = getattr(arg, "__name__", "")
        if name.endswith("Type") and model(name.removesuffix("Type")) is not None:
            return is_list, name.removesuffix("Type")
    return is_list, None


@cache
def element_shapes(type_name: str) -> dict[str, ElementShape]:
    """JSON name -> shape, for every element of a resource or data type."""
    found = model(type_name)
    if found is None:
        return {}
    return {
        field.alias or name: _shape(field.annotation) for name, field in found.model_fields.items()
    }


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): faster than ``copy.deepcopy``."""
    if type(value) is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if type(value) is list:
        return [json_copy(item) for item in value]
    return value


def as_r4_lists(type_name: str, value: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``value`` with every lone object where R4 wants a list put in a list."""
    shapes = element_shapes(type_name)
    copied: dict[str, Any] = {}
    for key, item in value.items():
        is_list, child = shapes.get(key, (False, None))
        if is_list and type(item) is dict:
            item = [item]
        if child is None or child == "Resource":
            copied[key] = json_copy(item)
        elif type(item) is list:
            copied[key] = [as_r4_lists(child, x) if type(x) is dict else json_copy(x) for x in item]
        elif type(item) is dict:
            copied[key] = as_r4_lists(child, item)
        else:
            copied[key] = item
    return copied


def validation_error(raw: dict[str, Any]) -> str | None:
    """Why ``raw`` is not a valid R4 resource (location and message, never a value), or None."""
    found = model(str(raw.get("resourceType")))
    if found is None:
        return f"unknown resourceType {raw.get('resourceType')!r}"
    try:
        found.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"invalid FHIR R4 at {where}: {first['msg']}"
    except (ValueError, TypeError, RecursionError) as exc:  # raised for some primitives
        return f"invalid FHIR R4: {type(exc).__name__}"
    return None
