"""CDS Hooks 2.0 response objects and their JSON form.

Optional fields with no value are omitted, never sent as null or empty (CDS Hooks 2.0 #use-of-json).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Indicator = Literal["info", "warning", "critical"]
INDICATOR_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
SUMMARY_MAX = 139  # "<140-character summary"


def _compact(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if value not in (None, "", [], {})}


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _compact({"system": self.system, "code": self.code, "display": self.display})


@dataclass(frozen=True)
class Source:
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "label": self.label,
                "url": self.url,
                "icon": self.icon,
                "topic": self.topic.to_json() if self.topic else None,
            }
        )


@dataclass(frozen=True)
class Action:
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resource_id: str | None = None

    def __post_init__(self) -> None:
        if self.type in ("create", "update") and not self.resource:
            raise ValueError(f"a {self.type} action needs the whole resource")
        if self.type == "delete" and not self.resource_id:
            raise ValueError("a delete action needs resourceId")

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "type": self.type,
                "description": self.description,
                "resource": self.resource,
                "resourceId": self.resource_id,
            }
        )


@dataclass(frozen=True)
class Suggestion:
    label: str
    uuid: str
    actions: tuple[Action, ...] = ()
    is_recommended: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "label": self.label,
                "uuid": self.uuid,
                "isRecommended": self.is_recommended,
                "actions": [action.to_json() for action in self.actions],
            }
        )


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "url": self.url, "type": self.type}


@dataclass(frozen=True)
class Card:
    uuid: str
    summary: str
    indicator: Indicator
    source: Source
    detail: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    selection_behavior: Literal["at-most-one", "any"] | None = None
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = field(default=())
    extension: dict[str, Any] | None = None
    # Not sent: what the order-select -> order-sign memory compares (contract §7.6). ``digest``
    # hashes the card's findings and their evidence; ``orders`` are the fingerprints of the
    # orders it is about (as ordered, and as its revised order would make them).
    digest: str | None = field(default=None, compare=False)
    orders: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if len(self.summary) > SUMMARY_MAX:
            raise ValueError(f"card summary over {SUMMARY_MAX} characters: {self.summary!r}")
        if self.suggestions and self.selection_behavior is None:
            raise ValueError("a card with suggestions needs selectionBehavior")
        if any(not reason.display for reason in self.override_reasons):
            raise ValueError("every override reason needs a display")

    @property
    def topic(self) -> str | None:
        return self.source.topic.code if self.source.topic else None

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "uuid": self.uuid,
                "summary": self.summary,
                "detail": self.detail,
                "indicator": self.indicator,
                "source": self.source.to_json(),
                "suggestions": [suggestion.to_json() for suggestion in self.suggestions],
                "selectionBehavior": self.selection_behavior,
                "overrideReasons": [reason.to_json() for reason in self.override_reasons],
                "links": [link.to_json() for link in self.links],
                "extension": self.extension,
            }
        )
