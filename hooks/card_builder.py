"""Turn a rule's Finding into a CDS Hooks card (contract §5): evidence, source, suggestions."""

from __future__ import annotations

from collections.abc import Callable

from cds_service.cards import SUMMARY_MAX, Card, Coding, Source, Suggestion
from hooks.knowledge_base import KnowledgeBase
from hooks.orders import IgOrder
from hooks.rules.base import Finding


def _source(kb: KnowledgeBase, topic_code: str, order: IgOrder | None) -> Source:
    topic = kb.topics[topic_code]
    label, url = topic.source_label, topic.source_url
    if topic.product_label and order is not None and order.product is not None:
        label, url = f"{label}; {order.product.source_label}", order.product.source_url
    return Source(label=label, url=url, topic=Coding(kb.topic_system, topic.code, topic.display))


def _detail(finding: Finding, order: IgOrder | None, source: Source) -> str:
    lines = []
    if order is not None:
        lines.append(
            f"**Order:** {order.product_name} ({order.reference}), "
            f"{order.route}: {order.route_basis}; recognised by {order.matched_by}."
        )
        lines.append("")
    lines.append("**Evidence**")
    lines.extend(f"- {item}" for item in finding.evidence)
    lines += ["", f"**Recommendation:** {finding.recommendation}"]
    if finding.notes:
        lines += ["", "**Notes**"]
        lines.extend(f"- {note}" for note in finding.notes)
    lines += ["", f"**Source:** [{source.label}]({source.url})"]
    return "\n".join(lines)


def to_card(
    finding: Finding, order: IgOrder | None, kb: KnowledgeBase, new_uuid: Callable[[], str]
) -> Card:
    summary = finding.summary
    if len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 1].rstrip() + "…"
    source = _source(kb, finding.topic, order)
    if finding.source is not None:
        label, url = finding.source
        source = Source(label=label, url=url, topic=source.topic)
    suggestions = tuple(
        Suggestion(
            label=proposed.label,
            uuid=new_uuid(),
            actions=proposed.actions,
            is_recommended=True if proposed.recommended else None,
        )
        for proposed in finding.suggestions
    )
    indicator = finding.indicator
    return Card(
        uuid=new_uuid(),
        summary=summary,
        indicator=indicator,
        source=source,
        detail=_detail(finding, order, source),
        suggestions=suggestions,
        selection_behavior=finding.selection if suggestions else None,
        override_reasons=kb.topics[finding.topic].override_reasons if indicator != "info" else (),
    )
