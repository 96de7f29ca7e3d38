"""What both reports share: card groups from topic codes, instants in UTC, the period."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

NO_TOPIC = "(no topic)"
UNKNOWN = "(unknown)"  # a column stored before it existed (hook on old rows)
INDICATORS = ("critical", "warning", "info")  # most severe first


def utc(value: datetime) -> datetime:
    """An aware UTC instant; a naive one is taken as UTC (SQLite hands back naive values, and
    the store writes UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def card_group(topic: str | None, groups: Mapping[str, str]) -> str:
    """The card group code of a topic code: ``IVIG`` + group code + indicator + optional
    ``NEWFACTOR``, so the longest group code the rest starts with (``IVIGDOSEWARNING`` ->
    ``DOSE``). A topic that matches no group is its own group (the raw topic code)."""
    if not topic:
        return NO_TOPIC
    rest = topic.removeprefix("IVIG") if topic.startswith("IVIG") else None
    if rest is not None:
        matches = [code for code in groups if code and rest.startswith(code)]
        if matches:
            return max(matches, key=len)
    return topic


def group_display(code: str, groups: Mapping[str, str]) -> str:
    return groups.get(code, code)


def group_order(codes: set[str], groups: Mapping[str, str]) -> list[str]:
    """The knowledge's order of card groups (``groups``' order), then the others by code."""
    known = [code for code in groups if code in codes]
    return known + sorted(codes - set(groups))


def indicator_order(values: set[str]) -> list[str]:
    known = [value for value in INDICATORS if value in values]
    return known + sorted(values - set(INDICATORS))


def iso_week(when: datetime) -> str:
    """The ISO 8601 week (Monday to Sunday, in UTC) of an instant: ``2026-W48``."""
    year, week, _ = utc(when).isocalendar()
    return f"{year}-W{week:02d}"


def period_text(since: datetime, until: datetime) -> str:
    return f"{utc(since):%Y-%m-%d %H:%M} UTC to {utc(until):%Y-%m-%d %H:%M} UTC"
