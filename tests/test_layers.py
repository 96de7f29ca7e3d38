"""The import direction is the architecture: HTTP only in cds_service/api, FHIR HTTP only in the
client, and rules that are pure functions (no Flask, no requests, no clock)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules(*parts: str) -> list[Path]:
    return sorted((ROOT.joinpath(*parts)).rglob("*.py"))


def test_flask_only_in_the_api_package_and_the_factory() -> None:
    allowed = {ROOT / "cds_service" / "__init__.py"} | set(modules("cds_service", "api"))
    offenders = [
        p
        for p in modules("cds_service") + modules("hooks")
        if p not in allowed
        and any(name.split(".")[0] in ("flask", "werkzeug") for name in imports_of(p))
    ]
    assert offenders == []


def test_requests_only_in_the_fhir_client_and_the_runtime_session() -> None:
    allowed = {ROOT / "cds_service" / "fhir" / "client.py", ROOT / "cds_service" / "runtime.py"}
    offenders = [
        p
        for p in modules("cds_service") + modules("hooks")
        if p not in allowed and any(name.split(".")[0] == "requests" for name in imports_of(p))
    ]
    assert offenders == []


def test_rules_read_no_clock_and_do_no_io() -> None:
    banned = {"flask", "requests", "time", "sqlalchemy", "socket", "os"}
    hooks_dir = ROOT / "hooks"
    pure = [
        *modules("hooks", "rules"),
        *(hooks_dir / name for name in ("record.py", "evidence.py", "dosing.py", "orders.py")),
        hooks_dir / "suggested_orders.py",
    ]
    for path in pure:
        source = path.read_text()
        assert not {n.split(".")[0] for n in imports_of(path)} & banned, path
        for forbidden in ("datetime.now", "date.today", "utcnow", "time.time"):
            assert forbidden not in source, f"{path}: {forbidden}"


def test_nothing_reads_shared_at_run_time() -> None:
    for path in modules("cds_service") + modules("hooks"):
        assert "../shared" not in path.read_text() and "shared/" not in path.read_text(), path
