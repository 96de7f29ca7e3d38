"""``--since``: how far back a report reaches."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_RELATIVE = re.compile(r"(\d{1,5})([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """The instant ``text`` names, in UTC: ``48h``, ``30d`` or ``12w`` before ``now``, or an ISO
    date (``2026-11-01``: its midnight UTC). Anything else raises ``ValueError`` naming the
    value and the forms accepted."""
    value = text.strip().lower()
    anchor = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    relative = _RELATIVE.fullmatch(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return anchor - timedelta(**{_UNITS[unit]: amount})
    try:
        day = date.fromisoformat(value) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else None
    except ValueError:
        day = None
    if day is None:
        raise ValueError(
            f"{text!r} is not a period: use a number of hours, days or weeks "
            "(48h, 30d, 12w) or a date (YYYY-MM-DD, e.g. 2026-11-01)"
        )
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
