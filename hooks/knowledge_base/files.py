"""Reading knowledge files: one error, naming the file and the field, for every way a file can be
unreadable or break its schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cds_service.errors import KnowledgeError

M = TypeVar("M", bound=BaseModel)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KnowledgeError(f"{path.name}: cannot be read as JSON ({exc})") from exc


def _where(raw: Any, location: tuple[int | str, ...]) -> str:
    """A dotted path to the field, naming list items by their ``id`` where they have one."""
    parts: list[str] = []
    node = raw
    for step in location:
        if isinstance(step, int) and isinstance(node, list) and 0 <= step < len(node):
            node = node[step]
            named = node.get("id") if isinstance(node, dict) else None
            parts.append(f"[{named}]" if isinstance(named, str) else f"[{step}]")
            continue
        parts.append(f".{step}" if parts else str(step))
        node = node.get(step) if isinstance(node, dict) else None
    return "".join(parts)


def read_model(path: Path, model: type[M]) -> M:
    """Read ``path`` and validate it against ``model``; the error names the file and field."""
    raw = read_json(path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{_where(raw, tuple(error['loc']))}: {error['msg']}" for error in exc.errors()[:5]
        ]
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise KnowledgeError(f"{path.name}: {'; '.join(problems)}{more}") from None
