"""The IVIG/SCIG CDS services: clinical knowledge as data, a pure engine over a typed clinical
context, rules that declare themselves, and service definitions derived from them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cds_service.config import load_settings
from cds_service.service import ServiceRegistry
from hooks.engine import Settings
from hooks.knowledge_base import KNOWLEDGE_DIR, load_knowledge, thresholds_for_site
from hooks.knowledge_base.formulary import formulary_for_site
from hooks.order_choices import order_choices
from hooks.registry import REGISTRY
from hooks.services import ServiceOptions, build_services

__all__ = ["build_registry"]


def build_registry(env: Mapping[str, str], overrides: Mapping[str, Any]) -> ServiceRegistry:
    """Load and validate the knowledge the rules declare, apply the site's thresholds and
    formulary (``IVIG_CDS_FORMULARY``, test key ``FORMULARY``), and define the services."""
    kb = load_knowledge(
        Path(overrides.get("KNOWLEDGE_DIR", KNOWLEDGE_DIR)),
        required_valuesets=REGISTRY.valuesets(),
        required_topics=REGISTRY.topics(),
    )
    thresholds, version = thresholds_for_site(kb, env, overrides)
    kb, stocked = formulary_for_site(kb, env, overrides)
    version += stocked
    settings = Settings(REGISTRY.in_display_order(list(kb.topics)), thresholds)
    options = load_settings(ServiceOptions, env, overrides)
    return ServiceRegistry(
        build_services(kb, settings, options),
        knowledge_version=version,
        order_choices=order_choices(kb),
    )
