"""The clinical knowledge in ``hooks/knowledge/``, loaded and validated once at start-up.

Each file is checked against its schema (``schema.py``; errors name the file and the field), then
across files: every value set a rule or a knowledge file names exists; product excipients are in
the vocabulary and match names are unique; topics have sources and known override reasons;
observation concepts have a unit and conversions. The service refuses to start on any error.
"""

from __future__ import annotations

from hooks.knowledge_base.loader import (
    KNOWLEDGE_DIR,
    KnowledgeBase,
    load_knowledge,
    thresholds_for_site,
)
from hooks.knowledge_base.thresholds import Thresholds

__all__ = [
    "KNOWLEDGE_DIR",
    "KnowledgeBase",
    "Thresholds",
    "load_knowledge",
    "thresholds_for_site",
]
