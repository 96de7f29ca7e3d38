"""The README, the docs and docker-compose.yml stay true to the code they describe.

The topic and threshold tables are generated (`make docs`): a committed table that differs from
what the code and knowledge say fails here. `docs/adding-a-rule.md` is run: its rule module, topic
and test are put in place in a scratch copy and must work as the page says.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.config import Settings
from cds_service.errors import KnowledgeError
from hooks.docs import generated
from hooks.knowledge_base import KNOWLEDGE_DIR, load_knowledge
from hooks.registry import REGISTRY, Registry
from hooks.services import ServiceOptions

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
OPERATIONS = (DOCS / "operations.md").read_text()
WALKTHROUGH = (DOCS / "adding-a-rule.md").read_text()
GUNICORN_VARIABLES = ("IVIG_CDS_WORKERS", "IVIG_CDS_THREADS", "IVIG_CDS_TIMEOUT_S")


def test_quick_start_is_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_points_at_docs_that_exist() -> None:
    linked = set(re.findall(r"\(docs/([\w.-]+\.md)\)", README))
    assert {"integrators.md", "clinical-review.md", "operations.md", "adding-a-rule.md"} <= linked
    for name in linked:
        assert (DOCS / name).is_file(), name


def test_every_setting_is_documented() -> None:
    for cls in (Settings, ServiceOptions):
        for field in dataclasses.fields(cls):
            assert f"`IVIG_CDS_{field.name.upper()}`" in OPERATIONS, field.name
    for variable in (*GUNICORN_VARIABLES, "IVIG_CDS_MAX_REQUESTS"):
        assert f"`{variable}`" in OPERATIONS, variable


@pytest.mark.parametrize("name", sorted(generated()))
def test_generated_tables_are_current(name: str) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == generated()[name], f"docs/{name} is stale: run `make docs`"


def test_every_topic_is_in_the_topic_table() -> None:
    table = (DOCS / "topics.md").read_text()
    for topic in REGISTRY.topics():
        assert f"| `{topic}` |" in table, topic


def test_compose_file_describes_the_service_and_its_database() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["ivig-cds"]
    assert service["build"] == "."
    assert (ROOT / "Dockerfile").exists()
    settings = {f"IVIG_CDS_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    settings |= {*GUNICORN_VARIABLES}  # `ivig-cds serve`
    assert set(service["environment"]) <= settings
    assert "postgres" in service["depends_on"]
    assert service["environment"]["IVIG_CDS_DATABASE_URL"].startswith("postgresql+psycopg://")


# --- docs/adding-a-rule.md, run --------------------------------------------------------------


def walkthrough_files() -> dict[str, str]:
    """The page's code blocks, by the file each one names."""
    blocks = re.findall(r"```\w+ file=(\S+)\n(.*?)```", WALKTHROUGH, re.S)
    return {name: code for name, code in blocks}


def test_the_walkthrough_adds_a_rule_in_five_files() -> None:
    files = walkthrough_files()
    assert sorted(files) == [
        "hooks/knowledge/card-groups.json",
        "hooks/knowledge/topics.json",
        "hooks/rules/trough_before_maintenance.py",
        "tests/test_trough_before_maintenance.py",
    ]
    assert "`make docs` regenerates `docs/topics.md`" in WALKTHROUGH  # the fifth file


def test_the_walkthrough_rule_works_as_the_page_says(tmp_path: Path) -> None:
    files = walkthrough_files()
    module_name = "hooks.rules.trough_before_maintenance"
    source = tmp_path / "trough_before_maintenance.py"
    source.write_text(files["hooks/rules/trough_before_maintenance.py"])
    spec = importlib.util.spec_from_file_location(module_name, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        registry = Registry((*REGISTRY.rules, module.RULE))
        assert "trough-before-maintenance" in registry.topics("order-select")
        assert "an IgG trough before a maintenance dose" in registry.description("order-sign")

        knowledge = tmp_path / "knowledge"
        shutil.copytree(KNOWLEDGE_DIR, knowledge)
        with pytest.raises(KnowledgeError, match="trough-before-maintenance"):
            load_knowledge(knowledge, registry.valuesets(), registry.topics())
        topics = json.loads((knowledge / "topics.json").read_text())
        topics["topics"].update(json.loads("{" + files["hooks/knowledge/topics.json"] + "}"))
        (knowledge / "topics.json").write_text(json.dumps(topics))
        with pytest.raises(KnowledgeError, match=r"card-groups\.json lacks topics"):
            load_knowledge(knowledge, registry.valuesets(), registry.topics())
        groups = json.loads((knowledge / "card-groups.json").read_text())
        groups["topics"].update(json.loads("{" + files["hooks/knowledge/card-groups.json"] + "}"))
        (knowledge / "card-groups.json").write_text(json.dumps(groups))
        load_knowledge(knowledge, registry.valuesets(), registry.topics())

        namespace: dict[str, Any] = {}
        exec(
            compile(files["tests/test_trough_before_maintenance.py"], "walkthrough", "exec"),
            namespace,
        )
        tests = [f for name, f in namespace.items() if name.startswith("test_")]
        assert len(tests) == 2
        for test in tests:
            test()
    finally:
        del sys.modules[module_name]
