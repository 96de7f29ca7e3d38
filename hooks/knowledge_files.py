"""Reading knowledge files: one error, naming the file, for every way a file can be unreadable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cds_service.errors import KnowledgeError


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KnowledgeError(f"{path.name}: cannot be read as JSON ({exc})") from exc
