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


PURE = (
    "engine.py",
    "findings.py",
    "registry.py",
    "dosing.py",
    "courses.py",
    "evidence.py",
    "text.py",
    "resources.py",
    "card_builder.py",
    "composer.py",
    "revision.py",
    "order_values.py",
    "body_weight.py",
    "rates.py",
    "catalogue.py",
    "terminology.py",
    "fhir_models.py",
)


def test_the_engine_rules_and_context_read_no_clock_and_do_no_io() -> None:
    """The clinical core is pure: the handler is resolve data -> build context -> evaluate ->
    make cards, and only the first step does I/O (through the injected data source)."""
    banned = {"flask", "werkzeug", "requests", "time", "sqlalchemy", "socket", "os", "pathlib"}
    banned_modules = {"cds_service.fhir", "cds_service.api", "cds_service.runtime"}
    hooks_dir = ROOT / "hooks"
    pure = [
        *modules("hooks", "rules"),
        *modules("hooks", "context"),
        *(hooks_dir / name for name in PURE),
    ]
    for path in pure:
        source = path.read_text()
        imported = imports_of(path)
        assert not {n.split(".")[0] for n in imported} & banned, path
        assert not {n for n in imported if n.startswith(tuple(banned_modules))}, path
        for forbidden in ("datetime.now", "date.today", "utcnow", "time.time", "open("):
            assert forbidden not in source, f"{path}: {forbidden}"


def test_rules_import_no_other_rule_modules_than_their_helpers() -> None:
    """A rule module reads the context; it does not reach into the data layer or the cards."""
    for path in modules("hooks", "rules"):
        imported = imports_of(path)
        assert not {
            n for n in imported if n.startswith(("hooks.card_builder", "hooks.services"))
        }, path


def test_nothing_reads_shared_at_run_time() -> None:
    for path in modules("cds_service") + modules("hooks"):
        assert "../shared" not in path.read_text() and "shared/" not in path.read_text(), path
