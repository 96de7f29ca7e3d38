"""The IVIG/SCIG CDS services: clinical knowledge as data, pure rules, service definitions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cds_service.config import load_settings
from cds_service.service import ServiceRegistry
from hooks.knowledge_base import KNOWLEDGE_DIR, load_knowledge
from hooks.rules import ORDER_TOPICS, VALUESETS_READ, VIEW_TOPICS
from hooks.services import build_services
from hooks.settings import Thresholds

__all__ = ["build_registry"]


def build_registry(env: Mapping[str, str], overrides: Mapping[str, Any]) -> ServiceRegistry:
    """Load and validate the knowledge, read the thresholds, and define the services."""
    kb = load_knowledge(
        Path(overrides.get("KNOWLEDGE_DIR", KNOWLEDGE_DIR)),
        required_valuesets=VALUESETS_READ,
        required_topics=(*ORDER_TOPICS, *VIEW_TOPICS),
    )
    thresholds = load_settings(Thresholds, env, overrides)
    return ServiceRegistry(build_services(kb, thresholds), knowledge_version=kb.version)
