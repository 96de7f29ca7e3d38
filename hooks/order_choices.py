"""What an order-entry form may offer for immune globulin, from the loaded knowledge: the
products (with their verified codes only), the routes each is labelled for, and the indications
of the dose table that have a verified SNOMED CT or ICD-10-CM code in their value set. The demo
order-entry page (issue 14) builds its draft MedicationRequests from these, so every code it
sends comes from the knowledge files.
"""

from __future__ import annotations

from typing import Any

from hooks.knowledge_base import KnowledgeBase
from hooks.knowledge_base.schema import Product
from hooks.terminology import ICD10CM, SNOMED

ROUTE_TEXT = {"IV": "Intravenous route", "SC": "Subcutaneous route"}


def order_choices(kb: KnowledgeBase) -> dict[str, Any]:
    """JSON for an order form: ``products``, ``routes`` and ``reasons``."""
    catalogue = kb.catalogue
    return {
        "products": [
            _product(product, catalogue.is_stocked(product))
            for product in catalogue.products
            if not product.family  # a clinician orders a product, not a family of them
        ],
        "routes": {
            route: {
                "text": ROUTE_TEXT[route],
                "coding": [
                    {"system": system, "code": code}
                    for (system, code), coded in kb.route_codes.items()
                    if coded == route
                ],
            }
            for route in ROUTE_TEXT
        },
        "reasons": [
            {"id": valueset_id, "text": kb.valueset(valueset_id).title, "coding": coding}
            # One reason per value set: the adult and child ITP ranges share theirs.
            for valueset_id in dict.fromkeys(i.valueset for i in kb.dose_ranges)
            if (coding := _reason_code(kb, valueset_id))
        ],
    }


def _product(product: Product, stocked: bool) -> dict[str, Any]:
    strength = product.concentration_percent
    text = product.brand
    if strength is not None and "%" not in text:
        text = f"{text} {strength:g}%"
    return {
        "id": product.id,
        "text": text,
        "names": list(product.match_names),  # how an order's text names it
        "routes": list(product.routes),
        "coding": [
            {"system": c.system, "code": c.code, "display": c.display}
            for c in product.codings
            if not c.unverified
        ],
        "discontinued": product.discontinued,
        "stocked": stocked,
    }


def _reason_code(kb: KnowledgeBase, valueset_id: str) -> list[dict[str, str]]:
    """The value set's first verified code, SNOMED CT before ICD-10-CM, without a display (the
    loaded value set keeps none): the reason's text names the indication."""
    verified = [key for key, unverified in kb.valueset(valueset_id).codes.items() if not unverified]
    for wanted in (SNOMED, ICD10CM):
        for system, code in verified:
            if system == wanted:
                return [{"system": system, "code": _as_spelled(system, code)}]
    return []


def _as_spelled(system: str, code: str) -> str:
    """ICD-10-CM as the code system writes it: the loaded codes lost their dot, which always
    follows the three-character category (G61.82)."""
    if system == ICD10CM and len(code) > 3:
        return f"{code[:3]}.{code[3:]}"
    return code
