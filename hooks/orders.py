"""Which orders in focus are immune globulin, which product, and by which route (contract §1).

Works on the draft orders' JSON because it must also judge orders that do not validate (an
unreadable IVIG order is reported, not ignored). Hyperimmune globulins never count. The route is
the ordered one; else the ATC code's; else the product's first labelled route; else IV, said so,
because the renal boxed warning must not be skipped for lack of a route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from hooks.catalogue import Product
from hooks.knowledge_base import KnowledgeBase
from hooks.record import codes_of_json
from hooks.terminology import ATC, Code, phrase_pattern


@dataclass(frozen=True)
class IgOrder:
    reference: str
    resource: dict[str, Any]
    product: Product | None
    label: str  # what the order calls the medication
    matched_by: str
    route: str  # IV | SC
    route_basis: str

    @property
    def product_name(self) -> str:
        return self.product.brand if self.product else "immune globulin (product not identified)"


@dataclass(frozen=True)
class IgHistory:
    """An earlier immune globulin order of the patient (not a draft, cancelled or in error)."""

    order: IgOrder
    status: str
    authored: date | None


@dataclass(frozen=True)
class UnidentifiedOrder:
    """A MedicationRequest whose medication could not be identified at all."""

    reference: str
    why: str


def orders_in_focus(hook: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """order-select: the selected draft orders; order-sign: every draft order."""
    entries = [entry["resource"] for entry in context["draftOrders"].get("entry", [])]
    if hook != "order-select":
        return entries
    selected = set(context["selections"])
    return [r for r in entries if f"{r.get('resourceType')}/{r.get('id')}" in selected]


class OrderRecogniser:
    def __init__(self, kb: KnowledgeBase) -> None:
        catalogue = kb.catalogue
        self._kb = kb
        self._exclusion_words = phrase_pattern(catalogue.exclusion_words)
        self._generic_words = phrase_pattern(catalogue.generic_words)
        self._names = [
            (phrase_pattern([name]), product)
            for product in catalogue.products
            for name in sorted(product.match_names, key=len, reverse=True)
        ]
        self._names.sort(key=lambda item: -len(item[0].pattern if item[0] else ""))
        self._product_codes = {
            (code.system, code.code): product
            for product in catalogue.products
            for code in product.codings
        }
        self._generic_codes = {(g.code.system, g.code.code): g for g in catalogue.generic_codings}

    def recognise(
        self,
        order: dict[str, Any],
        medications: Mapping[str, dict[str, Any]],
        read: Callable[[str], dict[str, Any] | None],
    ) -> IgOrder | UnidentifiedOrder | None:
        """An IgOrder, an UnidentifiedOrder, or None when the order is not immune globulin."""
        reference = f"{order.get('resourceType')}/{order.get('id')}"
        if order.get("resourceType") not in ("MedicationRequest", "MedicationStatement"):
            return None
        concept = order.get("medicationCodeableConcept")
        if concept is None:
            found = self._referenced_medication(order, medications, read)
            if isinstance(found, str):
                return UnidentifiedOrder(reference, found)
            concept = found
        codes, texts = codes_of_json(concept)
        return self._classify(order, reference, codes, texts)

    def _referenced_medication(
        self,
        order: dict[str, Any],
        medications: Mapping[str, dict[str, Any]],
        read: Callable[[str], dict[str, Any] | None],
    ) -> dict[str, Any] | str:
        ref = order.get("medicationReference") or {}
        target = str(ref.get("reference") or "")
        contained = {
            f"#{c.get('id')}": c for c in order.get("contained") or [] if isinstance(c, dict)
        }
        medication = contained.get(target) or medications.get(target)
        if medication is None and target.startswith("Medication/"):
            medication = read(target)
        if isinstance(medication, dict) and isinstance(medication.get("code"), dict):
            return dict(medication["code"])
        if ref.get("display"):
            return {"text": str(ref["display"])}
        return (
            f"its medication {target or '(no reference)'} is not in the request, could not be "
            "read from the FHIR server, and has no display"
        )

    def _classify(
        self, order: dict[str, Any], reference: str, codes: list[Code], texts: list[str]
    ) -> IgOrder | None:
        if any(
            c.system == ATC and c.code.startswith(self._kb.catalogue.exclusion_atc_prefixes)
            for c in codes
        ) or any(self._exclusion_words and self._exclusion_words.search(t) for t in texts):
            return None
        label = texts[0] if texts else (codes[0].display or codes[0].label() if codes else "")
        product, matched_by, code_route = self._product(codes, texts)
        if matched_by is None:
            return None
        route, basis = self._route(order, product, code_route)
        return IgOrder(reference, order, product, label, matched_by, route, basis)

    def _product(
        self, codes: list[Code], texts: list[str]
    ) -> tuple[Product | None, str | None, str | None]:
        for code in codes:
            if (code.system, code.code) in self._product_codes:
                return self._product_codes[(code.system, code.code)], code.label(), None
        for pattern, product in self._names:
            for text in texts:
                found = pattern.search(text) if pattern else None
                if found:
                    return product, f"text '{found.group(0)}'", None
        for code in codes:
            generic = self._generic_codes.get((code.system, code.code))
            if generic:
                note = " (code marked unverified)" if generic.unverified else ""
                return None, code.label() + note, generic.route
        for text in texts:
            found = self._generic_words.search(text) if self._generic_words else None
            if found:
                return None, f"text '{found.group(0)}'", None
        return None, None, None

    def _route(
        self, order: dict[str, Any], product: Product | None, code_route: str | None
    ) -> tuple[str, str]:
        # MedicationRequest.dosageInstruction; MedicationStatement.dosage
        for dosage in order.get("dosageInstruction") or order.get("dosage") or []:
            codes, texts = codes_of_json((dosage or {}).get("route"))
            for code in codes:
                route = self._kb.route_codes.get((code.system, code.code))
                if route:
                    return route, f"ordered route ({code.label()})"
            for route, pattern in self._kb.route_phrases.items():
                if any(pattern.search(text) for text in texts):
                    return route, f"ordered route ('{texts[0]}')"
        if code_route:
            return code_route, "route of the ordered ATC class"
        if product and len(product.routes) == 1:
            return product.routes[0], f"labelled route of {product.brand}"
        labelled = f"{product.brand} is labelled {' and '.join(product.routes)}" if product else ""
        why = f"{labelled}; " if labelled else ""
        return "IV", f"no route on the order ({why}assumed IV so the IV checks run)"
