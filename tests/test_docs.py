"""The README and docker-compose.yml stay true to the code they describe."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from cds_service.config import Settings
from hooks.rules import ORDER_TOPICS, VIEW_TOPICS
from hooks.settings import Thresholds

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_quick_start_is_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_setting_is_documented() -> None:
    for cls in (Settings, Thresholds):
        for field in dataclasses.fields(cls):
            assert f"`IVIG_CDS_{field.name.upper()}`" in README, field.name


def test_every_order_topic_is_in_the_topic_table() -> None:
    for topic in (*ORDER_TOPICS, *VIEW_TOPICS):
        assert f"| `{topic}` |" in README, topic


def test_compose_file_describes_the_service_and_its_database() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["ivig-cds"]
    assert service["build"] == "."
    assert (ROOT / "Dockerfile").exists()
    settings = {f"IVIG_CDS_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    settings |= {"IVIG_CDS_WORKERS", "IVIG_CDS_THREADS", "IVIG_CDS_TIMEOUT_S"}  # `ivig-cds serve`
    assert set(service["environment"]) <= settings
    assert "postgres" in service["depends_on"]
    assert service["environment"]["IVIG_CDS_DATABASE_URL"].startswith("postgresql+psycopg://")
