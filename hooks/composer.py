"""One coherent answer per order (contract §7): the findings of a call, grouped into one card per
decision for each order or course, and one revised order per immune globulin order.

Rules propose *changes* (product, dose, rate cap, instructions); ``hooks.revision`` merges them
into the order's one revised order, re-checked with the same rules. Here the findings become card
plans: one per decision group for each course (or the patient), exactly one of which carries the
course's revised orders; companion orders once per response; do-not-give removes, never revises.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from hooks.context.model import ClinicalContext, IgOrder
from hooks.context.read import Concept
from hooks.courses import course_references
from hooks.engine import Settings, evaluate_order
from hooks.findings import (
    CreateOrder,
    DoseChange,
    Finding,
    Indicator,
    ProductChange,
    Proposal,
    RemoveOrder,
    ReviseOrder,
)
from hooks.knowledge_base import KnowledgeBase
from hooks.knowledge_base.schema import CardGroup
from hooks.revision import Reviser, Revision, changes_for, describe
from hooks.rules.base import OrderInput
from hooks.rules.common import infusion_volume, volume_sensitivity
from hooks.rules.data_incomplete import TOPIC as DATA_TOPIC
from hooks.text import record

RANK: Mapping[str, int] = {"info": 0, "warning": 1, "critical": 2}
CARRIERS = ("PRODUCT", "DOSE", "BOXEDWARNING")  # the first that contributes carries the revision
DO_NOT_GIVE = "DONOTGIVE"
DATA = "DATA"


@dataclass(frozen=True)
class CardPlan:
    """One card: a decision group for one order or course (or the patient)."""

    group: CardGroup
    course: tuple[str, ...]  # the references of the course's orders in focus (() : the patient)
    findings: tuple[Finding, ...]  # the lead finding first
    proposals: tuple[Proposal, ...]
    selection: Literal["at-most-one", "any"]
    notes: tuple[str, ...] = ()
    revisions: tuple[Revision, ...] = ()  # the revised orders this card carries
    # The course's revised orders, whichever card carries them: once accepted, they are the
    # orders every card of the course is about (the order-select -> order-sign memory).
    course_revisions: tuple[Revision, ...] = ()
    # Why the course's revised orders are withheld, if they are: part of what a card says, so
    # a card that could not offer one at order-select is shown again once it can.
    withheld: tuple[str, ...] = ()

    @property
    def indicator(self) -> Indicator:
        return max((f.indicator for f in self.findings), key=RANK.__getitem__)

    @property
    def new_factor(self) -> bool:
        return self.group.code == "BOXEDWARNING" and any(f.new_factor for f in self.findings)

    @property
    def topic_code(self) -> str:
        suffix = "NEWFACTOR" if self.new_factor else ""
        return f"IVIG{self.group.code}{self.indicator.upper()}{suffix}"


def compose(
    findings: Sequence[Finding],
    ctx: ClinicalContext,
    kb: KnowledgeBase,
    settings: Settings,
) -> tuple[CardPlan, ...]:
    """The cards of a call: one per decision group for each course (or the patient)."""
    groups = kb.card_groups
    course_of = _course_index(ctx, course_references(ctx, kb, settings.thresholds))
    position = {group.code: index for index, group in enumerate(groups.groups)}
    topic_rank = {topic: index for index, topic in enumerate(groups.topics)}
    buckets: dict[tuple[tuple[str, ...], str], list[Finding]] = {}
    placed = [(course_of.get(found.order, ()) if found.order else (), found) for found in findings]
    # The reaction that makes an order do-not-give is evidence on that card, never a card of
    # its own that says "premedicate" beside "do not give".
    stopped = {
        course
        for course, found in placed
        if groups.group_of(found.topic, found.indicator) == DO_NOT_GIVE
    }
    for course, found in placed:
        code = groups.group_of(found.topic, found.indicator)
        if course in stopped and groups.group_of(found.topic, "critical") == DO_NOT_GIVE:
            code = DO_NOT_GIVE
        elif course in stopped and found.indicator == "info":
            # A reminder for an order the service says not to give (labs before the course, a
            # monitoring note) is not worth reading beside "do not give": it is left out.
            continue
        buckets.setdefault((course, code), []).append(found)
    keys = sorted(buckets, key=lambda k: (_course_rank(k[0], ctx), position[k[1]]))
    by_code = {group.code: group for group in groups.groups}
    plans = []
    for course, code in keys:
        members = sorted(
            buckets[(course, code)], key=lambda f: (-RANK[f.indicator], topic_rank[f.topic])
        )
        plans.append(_Draft(by_code[code], course, tuple(_one_per_topic(members)), tuple(members)))
    return tuple(_Composer(ctx, kb, settings, plans).plans())


@dataclass(frozen=True)
class _Draft:
    group: CardGroup
    course: tuple[str, ...]
    findings: tuple[Finding, ...]  # shown: each topic once
    every: tuple[Finding, ...]  # every order's findings (a course's orders each have theirs)


class _Composer:
    def __init__(
        self, ctx: ClinicalContext, kb: KnowledgeBase, settings: Settings, drafts: list[_Draft]
    ) -> None:
        self.ctx, self.kb, self.settings, self.drafts = ctx, kb, settings, drafts
        self.orders = {order.reference: order for order in ctx.ig_orders}
        self.companions_offered: set[str] = set()
        # Orders a card recommends removing (a duplicate of a current order; immune globulin
        # before plasma exchange in anti-GBM disease): revising them, or ordering labs for them,
        # on another card would be a second answer for one order.
        self.removable = {
            action.order
            for draft in drafts
            for found in draft.every
            for proposal in found.proposals
            if proposal.recommended
            for action in proposal.actions
            if isinstance(action, RemoveOrder)
        }

    def plans(self) -> Iterator[CardPlan]:
        revisions = {
            course: tuple(self._revision(ref, course) for ref in course)
            for course in self._carriers()
        }
        self.drafts = [
            kept for draft in self.drafts if (kept := _without_moot(draft, revisions)) is not None
        ]
        carriers = self._carriers()  # a dropped draft may have been the carrier
        revisions = {course: revisions[course] for course in carriers}
        for draft in self.drafts:
            yield self._plan(draft, carriers, revisions)

    def _carriers(self) -> dict[tuple[str, ...], str]:
        """For each course with changes, the group whose card carries the revised orders."""
        chosen: dict[tuple[str, ...], str] = {}
        for code in CARRIERS:
            for draft in self.drafts:
                if draft.group.code == code and draft.course not in chosen:
                    if any(changes_for(f) for f in draft.every):
                        chosen[draft.course] = code
        return chosen

    def _plan(
        self,
        draft: _Draft,
        carriers: Mapping[tuple[str, ...], str],
        revisions: Mapping[tuple[str, ...], tuple[Revision, ...]],
    ) -> CardPlan:
        proposals: list[Proposal] = []
        notes: list[str] = []
        carried: tuple[Revision, ...] = ()
        blocked = self._do_not_give(draft.course) or bool(self.removable & set(draft.course))
        carrier = carriers.get(draft.course)
        course_revisions = revisions.get(draft.course, ())
        if draft.group.code == DO_NOT_GIVE:
            return self._do_not_give_plan(draft)
        if carrier == draft.group.code:
            offered = tuple(r for r in course_revisions if r.offered)
            if offered:
                carried = offered
                proposals.append(_revision_proposal(offered))
            notes += [r.withheld for r in course_revisions if r.withheld]
            # What the revised order brings (the ABO group before a course it raises to 2
            # g/kg) is offered here: an EHR sends no second call for the accepted order.
            brought = [b for r in offered for b in r.brings]
            notes += [
                f"Accepting the revised order also brings a reminder: {summary}."
                for summary in dict.fromkeys(b.summary for b in brought)
            ]
            proposals += self._companions(brought, self._drafted_companions(brought))
        elif any(changes_for(f) for f in draft.every) and carrier is not None:
            lead = next(
                d.findings[0]
                for d in self.drafts
                if d.course == draft.course and d.group.code == carrier
            )
            if any(r.offered for r in course_revisions):
                notes.append(
                    "The change this card asks for is in the revised order on the card "
                    f"“{lead.summary}”."
                )
        if not blocked:
            drafted = self._drafted_companions(draft.findings)
            proposals += self._companions(draft.findings, drafted)
            notes += self._drafted_note(drafted)
        proposals += _removals(draft.findings)
        selection: Literal["at-most-one", "any"] = "any"
        if _alternatives(proposals):  # remove this order, or revise it: one or the other
            selection = "at-most-one"
            proposals = [replace(p, recommended=False) if _revises(p) else p for p in proposals]
        return CardPlan(
            group=draft.group,
            course=draft.course,
            findings=draft.findings,
            proposals=tuple(proposals),
            selection=selection,
            notes=tuple(notes),
            revisions=carried,
            course_revisions=tuple(r for r in course_revisions if r.offered),
            withheld=tuple(r.withheld for r in course_revisions if r.withheld),
        )

    def _do_not_give_plan(self, draft: _Draft) -> CardPlan:
        """Removal of each order of the course, recommended; an alternative the rules offer (the
        IgA case's lowest-IgA product) only as the other choice of ``at-most-one``."""
        removals = [
            Proposal(
                f"Remove the {self.orders[ref].product_name} order",
                (RemoveOrder(ref, f"Remove the {self.orders[ref].product_name} order"),),
                recommended=True,
            )
            for ref in draft.course
        ]
        alternatives = [
            replace(proposal, recommended=False)
            for found in draft.findings
            for proposal in found.proposals
            if any(isinstance(a, ReviseOrder) for a in proposal.actions)
        ]
        if len(removals) != 1:  # a course: remove its orders; alternatives are per order
            alternatives = []
        return CardPlan(
            group=draft.group,
            course=draft.course,
            findings=draft.findings,
            proposals=(*removals, *alternatives[:1]),
            selection="at-most-one" if alternatives else "any",
        )

    def _do_not_give(self, course: tuple[str, ...]) -> bool:
        return any(d.group.code == DO_NOT_GIVE and d.course == course for d in self.drafts)

    def _companions(
        self, findings: Sequence[Finding], drafted: Mapping[str, str]
    ) -> Iterator[Proposal]:
        """Each companion order once per response, and not when the session already has it
        (``drafted``, from ``_drafted_companions``)."""
        for found in findings:
            for proposal in found.proposals:
                for action in proposal.actions:
                    if not isinstance(action, CreateOrder):
                        continue
                    if action.orderable in self.companions_offered or action.orderable in drafted:
                        continue
                    self.companions_offered.add(action.orderable)
                    orderable = self.kb.orderables[action.orderable]
                    yield Proposal(f"Order: {orderable.named}", (action,))

    def _drafted_companions(self, findings: Sequence[Finding]) -> dict[str, str]:
        """Of the companion orders the findings ask for, those the session already has (the
        clinician accepted them a call ago): orderable -> the draft's reference."""
        drafts = [(order.reference, _keys(order.code)) for order in self.ctx.session_orders]
        found: dict[str, str] = {}
        for finding in findings:
            for proposal in finding.proposals:
                for action in proposal.actions:
                    if not isinstance(action, CreateOrder) or action.orderable in found:
                        continue
                    orderable = self.kb.orderables[action.orderable]
                    keys = {(c.system, c.code) for c in orderable.code.coding}
                    keys.add(("text", (orderable.code.text or "").casefold()))
                    reference = next((ref for ref, have in drafts if keys & have), None)
                    if reference is not None:
                        found[action.orderable] = reference
        return found

    def _drafted_note(self, drafted: Mapping[str, str]) -> list[str]:
        """The card says which of the orders it asks for are drafted already, instead of
        asking again in silence (a card left after its suggestions were accepted)."""
        if not drafted:
            return []
        named = ", ".join(
            f"{self.kb.orderables[orderable].named} ({record(reference)})"
            for orderable, reference in drafted.items()
        )
        return [f"Already among this session's orders: {named}."]

    # -- the revised order ------------------------------------------------------------------

    def _revision(self, reference: str, course: tuple[str, ...]) -> Revision:
        order = self.orders[reference]
        if self._do_not_give(course):
            return Revision(order, withheld="No revised order: the order should not be given.")
        own = [f for f in self._course_findings(course) if f.order == reference]
        proposed = [(f.topic, change) for f in own for change in changes_for(f)]
        if not proposed:
            return Revision(order)
        if not any(isinstance(change, DoseChange) for _, change in proposed) and any(
            f.topic == "implausible-dose" and f.indicator == "critical"
            for f in self._course_findings(course)
        ):  # a revised order would keep a likely dose error (contract §8)
            return Revision(
                order, withheld="No revised order offered: correct the dose first (dose card)."
            )
        if reference in self.removable:
            return Revision(
                order,
                withheld="No revised order offered: a card recommends removing this order; if "
                "it is kept, sign it again for its revised order.",
            )
        gaps = self._checks_not_run(order, course)
        if gaps:
            return Revision(
                order, withheld=f"No revised order offered: {gaps} (see the data card)."
            )
        topics = {f.topic for f in own}
        return Reviser(
            order, topics, self.kb, self.reevaluate, volume_sensitive=self._volume_sensitive(order)
        ).revise(proposed)

    def _volume_sensitive(self, order: IgOrder) -> bool:
        """As the boxed-warning cards judge it (``hooks.rules.common.volume_sensitivity``)."""
        inp = OrderInput(self.ctx, order, self.kb, self.settings.thresholds)
        return bool(volume_sensitivity(inp, infusion_volume(inp)))

    def _course_findings(self, course: tuple[str, ...]) -> Iterator[Finding]:
        for draft in self.drafts:
            if draft.course == course:
                yield from draft.every

    def _checks_not_run(self, order: IgOrder, course: tuple[str, ...]) -> str:
        """Partial answers (contract §7.1, §9): a revision depends on every check having run."""
        parts = []
        if any(found.not_checked for draft in self.drafts for found in draft.every):
            parts.append("an order of this call was not checked (time limit)")
        if self.ctx.gaps:
            parts.append("some of the record could not be read, so not every check ran")
        if any(
            draft.group.code == DATA
            and RANK[found.indicator] > RANK["info"]
            and not found.not_checked  # said above
            for draft in self.drafts
            if draft.course in ((), course)
            for found in draft.every
        ):  # a missing weight, an undecidable lab, another patient's data: a check did not run
            parts.append("a contraindication or dose check could not run")
        if order.order.unreadable:
            parts.append(
                f"part of the order could not be read ({', '.join(order.order.unreadable)})"
            )
        return "; ".join(parts)

    def reevaluate(self, order: IgOrder) -> tuple[Finding, ...]:
        """The rules over a revised order in the call's context, where it takes the place of
        the draft with its reference (its course included: ``hooks.courses.course_of``)."""
        return evaluate_order(self.ctx, order, self.kb, self.settings)


def _without_moot(
    draft: _Draft, revisions: Mapping[tuple[str, ...], tuple[Revision, ...]]
) -> _Draft | None:
    """The draft without the titration-rate information of a product the course's revised
    order replaces: the revised order carries the new product's own rates, and a card quoting
    the old product's would contradict it. None when nothing is left."""
    if not any(
        isinstance(c, ProductChange) for r in revisions.get(draft.course, ()) for c in r.changes
    ):
        return draft

    def moot(found: Finding) -> bool:
        return found.topic == "infusion-rate" and found.indicator == "info"

    shown = tuple(f for f in draft.findings if not moot(f))
    if not shown:
        return None
    return replace(draft, findings=shown, every=tuple(f for f in draft.every if not moot(f)))


def _removals(findings: Iterable[Finding]) -> Iterator[Proposal]:
    """Removals of other orders (a plasma exchange, a duplicate draft, the IV order an SC order
    replaces): each its own suggestion."""
    for found in findings:
        for proposal in found.proposals:
            if proposal.actions and all(isinstance(a, RemoveOrder) for a in proposal.actions):
                yield proposal


def _targets(proposal: Proposal) -> list[str]:
    return [a.order for a in proposal.actions if isinstance(a, ReviseOrder | RemoveOrder)]


def _alternatives(proposals: list[Proposal]) -> bool:
    """Whether two suggestions change one order (a removal and a revision of it)."""
    targets = [t for p in proposals for t in _targets(p)]
    return len(targets) != len(set(targets))


def _revises(proposal: Proposal) -> bool:
    return any(isinstance(a, ReviseOrder) for a in proposal.actions)


def _revision_proposal(revisions: tuple[Revision, ...]) -> Proposal:
    label = "; ".join(dict.fromkeys(describe(c) for r in revisions for c in r.changes))
    actions = tuple(
        ReviseOrder(r.order.reference, r.changes, f"Revise {r.order.product_name}: {label}")
        for r in revisions
    )
    return Proposal(f"Revise the order: {label}", actions, recommended=True)


def _one_per_topic(findings: list[Finding]) -> Iterator[Finding]:
    """A course's orders each raise the same patient-level findings; show each topic once. The
    data card is the exception: what each order's data lacks (an unreadable element, an order
    not checked) is its own, so it lists every line of the course's data findings."""
    first: dict[str, Finding] = {}
    lines: dict[str, dict[str, None]] = {}
    for found in findings:
        first.setdefault(found.topic, found)
        lines.setdefault(found.topic, {}).update(dict.fromkeys(found.evidence))
    for topic, found in first.items():
        yield replace(found, evidence=tuple(lines[topic])) if topic == DATA_TOPIC else found


def _course_index(
    ctx: ClinicalContext, courses: Sequence[Sequence[str]]
) -> dict[str, tuple[str, ...]]:
    index: dict[str, tuple[str, ...]] = {o.reference: (o.reference,) for o in ctx.ig_orders}
    for course in courses:
        for reference in course:
            index[reference] = tuple(course)
    return index


def _course_rank(course: tuple[str, ...], ctx: ClinicalContext) -> int:
    refs = [order.reference for order in ctx.ig_orders]
    return refs.index(course[0]) if course and course[0] in refs else len(refs)


def _keys(concept: Concept | None) -> set[tuple[str, str]]:
    """What identifies an ordered thing: its codes, and its text (our companions' drafts come
    back with the text we gave them, some without a code)."""
    if concept is None:
        return set()
    keys = {(code.system, code.code) for code in concept.codes}
    keys.update(("text", text.casefold()) for text in concept.texts)
    return keys
